# weir -- top-level entry points. `make test` and `make demo` work on a bare
# Debian machine: they install what is missing (as root, via apt-get).

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

.PHONY: all build deps test test-c test-asan demo clean help

all: build

help:
	@echo "make build      build libweir (static + shared), the tests and the demo"
	@echo "make test       install build dependencies, build, run every test"
	@echo "make test-asan  run the C tests under AddressSanitizer + UBSan"
	@echo "make demo       load a generated data set into weir and query it"
	@echo "make clean      remove build directories"

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test-c: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test: test-c

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	      -DWEIR_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	      ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/weir-demo

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
