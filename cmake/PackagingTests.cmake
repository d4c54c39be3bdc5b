# Tests of what weir ships to C users (included from CMakeLists.txt when the
# tests are built; the scripts and sources are in tests/packaging/):
#   symbols_boundary     libweir.a and libweir.so define no global name
#                        but weir_* (nm), and the internal library does
#   static_symbol_clash  a program with its own encode_varint32 links
#                        statically against libweir.a and runs
#   version_macros       weir.h's WEIR_VERSION_* equal project()'s version
#                        and the library's weir_version()
# The install-and-consume test builds its own Release tree, so it runs from
# `make test-packaging`, not here.

add_test(NAME symbols_boundary
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/packaging/check_symbols.sh
                 $<TARGET_FILE:weir_static> $<TARGET_FILE:weir_shared> $<TARGET_FILE:weir_internal>)
set_tests_properties(symbols_boundary PROPERTIES ENVIRONMENT "NM=${CMAKE_NM}")

# The consumer is compiled when the test runs (not at build time), so a
# clash fails this test rather than the whole build.
set(WEIR_CLASH_LIBS "-pthread")
foreach(codec_target ${WEIR_CODEC_TARGETS})
  get_target_property(codec_location ${codec_target} IMPORTED_LOCATION)
  string(APPEND WEIR_CLASH_LIBS " ${codec_location}")
endforeach()
set(WEIR_CLASH_FLAGS "")
if(WEIR_SANITIZE)
  set(WEIR_CLASH_FLAGS "-fsanitize=${WEIR_SANITIZE}")
endif()
add_test(NAME static_symbol_clash
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/packaging/static_clash.sh
                 ${CMAKE_C_COMPILER} $<TARGET_FILE:weir_static>
                 ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_CURRENT_BINARY_DIR}/static_clash
                 "${WEIR_CLASH_FLAGS}" "${WEIR_CLASH_LIBS}")

add_executable(version_macros tests/packaging/version_macros.c)
target_compile_definitions(version_macros PRIVATE
                           WEIR_EXPECT_MAJOR=${PROJECT_VERSION_MAJOR}
                           WEIR_EXPECT_MINOR=${PROJECT_VERSION_MINOR}
                           WEIR_EXPECT_PATCH=${PROJECT_VERSION_PATCH}
                           WEIR_EXPECT_STRING="${PROJECT_VERSION}")
target_link_libraries(version_macros PRIVATE weir_shared)
add_test(NAME version_macros COMMAND version_macros)
