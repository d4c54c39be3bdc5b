#!/usr/bin/env bash
# Install what building and testing weir needs, if it is missing.
# Debian/Ubuntu only; needs root (or passwordless sudo) when something is
# missing, and does nothing when everything is already there.
set -euo pipefail

# --fuzz: also clang and its libFuzzer runtime (only the fuzzing steps need
# them; `make test` builds with gcc). --valgrind: also valgrind (for
# `make test-valgrind`).
fuzz=0
valgrind=0
for arg in "$@"; do
    case $arg in
    --fuzz) fuzz=1 ;;
    --valgrind) valgrind=1 ;;
    esac
done

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v gcc   >/dev/null 2>&1 || need+=(gcc)
command -v make  >/dev/null 2>&1 || need+=(make)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
# pkg-config, binutils' nm/objcopy/readelf: libweir.a is made with objcopy,
# and the packaging tests (tests/packaging/) inspect and consume what is
# installed.
command -v pkg-config >/dev/null 2>&1 || need+=(pkgconf)
command -v objcopy >/dev/null 2>&1 || need+=(binutils)
# Block compression codecs (weir builds without them, but tests expect both).
[ -f /usr/include/lz4.h ]  || need+=(liblz4-dev)
[ -f /usr/include/zstd.h ] || need+=(libzstd-dev)
# Python package: `python3 -m venv` (python3-venv) and the headers the
# extension compiles against (python3-dev).
if ! command -v python3 >/dev/null 2>&1; then
    need+=(python3 python3-venv python3-dev)
else
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
    python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1 || need+=(python3-dev)
fi

# The Redis store backend's tests start their own redis-server (tests/python/conftest.py).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# weir.cluster's tests join three redis-servers into a Redis Cluster with it.
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)

if [ $fuzz -eq 1 ]; then
    command -v clang >/dev/null 2>&1 || need+=(clang)
    # libFuzzer's runtime is packaged per clang version (Debian 12: 14).
    if ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
        # Under `set -e -o pipefail` a missing clang must not end the script.
        ver=""
        if command -v clang >/dev/null 2>&1; then
            ver=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
        fi
        if [ -z "$ver" ]; then
            ver=$( (apt-cache depends clang 2>/dev/null || true) |
                   sed -n 's/.*Depends: clang-\([0-9]*\)$/\1/p' | head -1)
        fi
        need+=("libclang-rt-${ver:-14}-dev")
    fi
fi

if [ $valgrind -eq 1 ]; then
    command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
    # CPython's debug symbols: memcheck's stacks name CPython's functions
    # instead of ???, which the suppressions in tests/valgrind/python.supp
    # match on. Debian ships them with the debug interpreter (python3.X-dbg).
    pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    if [ -n "$pyver" ] && ! dpkg -s "python${pyver}-dbg" >/dev/null 2>&1; then
        need+=("python${pyver}-dbg")
    fi
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: missing ${need[*]} and not root; install them and retry" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}"
