#!/usr/bin/env bash
# Builds weir from this source tree the way a packager does (a Release
# configure, build, and `cmake --install --prefix`), then checks what was
# installed and builds a C consumer (tests/packaging/consumer/) against the
# prefix four ways: pkg-config shared, pkg-config static, find_package(weir)
# with weir::weir (shared) and with WEIR_USE_STATIC_LIBS=ON (static). Each
# consumer runs. Also checked: the GNUInstallDirs layout, the SONAME, no
# debug info in the Release libweir.so, and which binaries need libweir.so.
#
# Usage: install_consumer.sh [WORK_DIR]   (default: a temporary directory,
# removed when every check passed)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/packaging"
work=${1:-}
keep=1
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/weir-install-XXXXXX")
    keep=0
fi
mkdir -p "$work"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
fail() { echo "install_consumer: FAIL: $*" >&2; echo "  (work dir kept: $work)" >&2; exit 1; }
step() { echo "install_consumer: $*"; }

prefix="$work/prefix"
step "configure + build (Release) + install into $prefix"
cmake -S "$root" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_BENCH=OFF > "$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/build" -j "$(nproc 2>/dev/null || echo 2)" > "$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log"; fail "build"; }
cmake --install "$work/build" --prefix "$prefix" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "install"; }

libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$work/build/CMakeCache.txt")
[ -n "$libdir" ] || fail "no CMAKE_INSTALL_LIBDIR in the cache (GNUInstallDirs not used?)"
for f in include/weir.h "$libdir/libweir.a" "$libdir/libweir.so" "$libdir/libweir.so.0" \
         "$libdir/pkgconfig/weir.pc" "$libdir/cmake/weir/weirConfig.cmake" \
         "$libdir/cmake/weir/weirConfigVersion.cmake" "$libdir/cmake/weir/weirTargets.cmake" bin/weir; do
    [ -e "$prefix/$f" ] || fail "$f was not installed"
done
step "installed: include/weir.h, $libdir/{libweir.a,libweir.so*,pkgconfig/weir.pc,cmake/weir/}, bin/weir"

so=$(readlink -f "$prefix/$libdir/libweir.so")
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libweir.so.0" ] || fail "SONAME is '$soname', not libweir.so.0"
if readelf -S "$so" | grep -q '\.debug_'; then
    fail "the Release libweir.so carries debug sections: $(readelf -S "$so" | grep -o '\.debug_[a-z]*' | tr '\n' ' ')"
fi
step "libweir.so: SONAME $soname, no debug sections"

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
cc=${CC:-cc}
db="$work/dbs"
run_consumer() { # LABEL BINARY MUST_NEED_LIBWEIR(0|1)
    local label=$1 bin=$2 need=$3
    local needs=0
    readelf -d "$bin" | grep -q 'NEEDED.*libweir\.so' && needs=1
    [ "$needs" = "$need" ] || fail "$label: links libweir.so dynamically = $needs, expected $need"
    rm -rf "$db" && mkdir -p "$db"
    "$bin" "$db" || fail "$label: the consumer failed"
    step "$label: ok"
}

pc_version=$(pkg-config --modversion weir) || fail "pkg-config cannot find weir.pc"
[ "$pc_version" = "$(sed -n 's/^#define WEIR_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/weir.h")" ] ||
    fail "weir.pc says version $pc_version, weir.h another"
# shellcheck disable=SC2046  # pkg-config output is a flag list
"$cc" -std=c11 -Wall -Werror "$here/consumer/consumer.c" -o "$work/pc_shared" \
    $(pkg-config --cflags --libs weir) -Wl,-rpath,"$(pkg-config --variable=libdir weir)" ||
    fail "pkg-config shared build"
run_consumer "pkg-config (shared)" "$work/pc_shared" 1
private=$(pkg-config --static --libs weir | sed 's/-L[^ ]*//g; s/-lweir//')
# shellcheck disable=SC2046,SC2086
"$cc" -std=c11 -Wall -Werror "$here/consumer/consumer.c" -o "$work/pc_static" \
    $(pkg-config --cflags weir) -Wl,-Bstatic $(pkg-config --libs weir) -Wl,-Bdynamic $private ||
    fail "pkg-config static build"
run_consumer "pkg-config (static: $(pkg-config --static --libs weir))" "$work/pc_static" 0

for mode in shared static; do
    static_flag=OFF
    [ $mode = static ] && static_flag=ON
    cmake -S "$here/consumer" -B "$work/consumer-$mode" "${gen[@]}" \
        -DCMAKE_PREFIX_PATH="$prefix" -DWEIR_USE_STATIC_LIBS=$static_flag \
        > "$work/consumer-$mode.log" 2>&1 || { cat "$work/consumer-$mode.log"; fail "find_package(weir) ($mode)"; }
    cmake --build "$work/consumer-$mode" >> "$work/consumer-$mode.log" 2>&1 ||
        { cat "$work/consumer-$mode.log"; fail "CMake consumer build ($mode)"; }
    need=1
    [ $mode = static ] && need=0
    run_consumer "find_package(weir) + weir::weir ($mode)" "$work/consumer-$mode/consumer" $need
done

[ $keep -eq 1 ] || rm -rf "$work"
echo "install_consumer: 4 consumers built against the installed prefix and ran"
