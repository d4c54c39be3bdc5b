#!/usr/bin/env bash
# Run Python tests that exercise the C extension (weir._weir) under valgrind
# memcheck and report what it found. Used by `make test-valgrind`.
#
# Usage: scripts/valgrind-python.sh VENV [PYTEST_ARGS...]
#   VENV          the virtualenv that holds weir and the test extras (.venv)
#   PYTEST_ARGS   test files and pytest options (default: the extension's tests)
# Environment:
#   VALGRIND_PYTHON  the interpreter to run (default: Debian's python3.X of the
#                    venv's version, else the venv's own python)
#   VALGRIND_LOGS    where the logs go (default: build-valgrind/)
#
# Memory is allocated with PYTHONMALLOC=malloc so memcheck sees each object.
# Errors (invalid reads and writes, uses of uninitialised memory, bad frees)
# and *definite* leaks fail the run; "possibly lost" blocks are CPython's
# interned objects and caches, alive at exit by design. Suppressions for
# noise outside weir: tests/valgrind/python.supp.
#
# Why Debian's interpreter: the pyenv build of CPython 3.11.7 on the
# development machines reports uninitialised reads inside CPython itself
# (_PyLong_FromByteArray, from a bare `int.from_bytes`), thousands of them,
# before any weir code runs. Debian's 3.11 is clean, and the extension (built
# for 3.11) loads in it unchanged, with the venv's packages on PYTHONPATH.
set -uo pipefail

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] || [ $# -lt 1 ]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -lt 1 ] && exit 2 || exit 0
fi
venv=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -eq 0 ]; then
    set -- tests/python/test_db.py tests/python/test_db_features.py tests/python/test_codecs.py \
        tests/python/test_api_badinput.py
fi
command -v valgrind >/dev/null 2>&1 || { echo "valgrind-python: valgrind is missing (make deps installs it)" >&2; exit 2; }
vpy="$venv/bin/python"
ver=$("$vpy" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 2
site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || exit 2
py=${VALGRIND_PYTHON:-}
if [ -z "$py" ]; then
    if [ -x "/usr/bin/python$ver" ]; then py="/usr/bin/python$ver"; else py="$vpy"; fi
fi
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 2
if [ "$pyver" != "$ver" ]; then
    echo "valgrind-python: $py is Python $pyver but $venv has $ver" >&2
    exit 2
fi
# pip chose the venv's packages for the venv's interpreter (3.11.7 on the
# development machines); Debian's 3.11.2 takes some dependency markers the
# other way. redis-py wants async-timeout below 3.11.3, so a test importing
# redis would fail to import under Debian's interpreter without it.
if ! env PYTHONPATH="$site" "$py" -c 'import redis' >/dev/null 2>&1; then
    echo "valgrind-python: installing async-timeout, which redis-py needs on Python $("$py" -c 'import platform; print(platform.python_version())')"
    "$vpy" -m pip install -q 'async-timeout>=4.0.3' || exit 2
    env PYTHONPATH="$site" "$py" -c 'import redis' || exit 2
fi
logs=${VALGRIND_LOGS:-build-valgrind}
rm -rf "$logs"
mkdir -p "$logs"
echo "valgrind-python: memcheck on $py ($pyver) running pytest $*"
echo "valgrind-python: logs in $logs/ (one per process); this takes a few minutes"
start=$(date +%s)
# --fair-sched=yes: valgrind runs one thread at a time, and its default
# lock let one thread of a threaded test (test_bank_transfers' reader)
# keep the CPU for many minutes while the others starved.
env PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONMALLOC=malloc \
    valgrind --tool=memcheck --fair-sched=yes --suppressions=tests/valgrind/python.supp \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --error-exitcode=99 --num-callers=40 --log-file="$logs/memcheck-%p.log" \
    "$py" -s -m pytest -q -p no:cacheprovider "$@"
rc=$?
secs=$(( $(date +%s) - start ))
errors=0
leaked=0
for f in "$logs"/memcheck-*.log; do
    e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tr -d , | tail -1)
    l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | tail -1)
    errors=$((errors + ${e:-0}))
    leaked=$((leaked + ${l:-0}))
done
echo "valgrind-python: ${secs} s, $errors memcheck errors, $leaked bytes definitely lost"
if [ $rc -eq 99 ] || [ $errors -ne 0 ] || [ $leaked -ne 0 ]; then
    grep -l -E "ERROR SUMMARY: [1-9]|definitely lost: [1-9]" "$logs"/memcheck-*.log | head -5 |
        while read -r f; do echo "--- $f"; grep -m 60 -E "^==[0-9]+== " "$f" | sed -n '6,60p'; done
    exit 1
fi
exit $rc
