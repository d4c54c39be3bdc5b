#!/usr/bin/env bash
# Run the atheris harnesses of tests/fuzz/python/ for SECONDS each, starting
# from the seed corpus in tests/fuzz/python/corpus/<harness>. New inputs go
# to a work corpus outside the repository (FUZZ_WORK, default
# build-fuzz-python/), so the committed corpus only changes when someone
# copies findings in. Prints the executions per harness and appends them to
# FUZZ_REPORT if set. Exits non-zero if a harness finds a failing input (an
# exception the API does not document, a wrong result, a crash or a hang);
# the reproducer is left in the work directory: replay it with
#   VENV/bin/python tests/fuzz/python/fuzz_<harness>.py REPRODUCER
#
# Usage: scripts/fuzz-python.sh VENV SECONDS [HARNESS...]
#   harnesses: codecs db store (default: all)
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
venv=${1:?usage: fuzz-python.sh VENV SECONDS [HARNESS...]}
secs=${2:?usage: fuzz-python.sh VENV SECONDS [HARNESS...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FUZZ_WORK:-$root/build-fuzz-python}
py="$venv/bin/python"
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
    harnesses=(codecs db store)
fi
"$py" -c 'import atheris' 2>/dev/null || {
    echo "fuzz-python: atheris is not installed in $venv (make fuzz-python installs it)" >&2
    exit 2
}
# Where the harnesses put their stores (tmpfs when there is one).
shm=/dev/shm
[ -d "$shm" ] || shm=${TMPDIR:-/tmp}
WEIR_FUZZ_TMP=$(mktemp -d "$shm/weir-fuzz-python-XXXXXX")
export WEIR_FUZZ_TMP
trap 'rm -rf "$WEIR_FUZZ_TMP"' EXIT
status=0
for h in "${harnesses[@]}"; do
    script="$root/tests/fuzz/python/fuzz_$h.py"
    if [ ! -f "$script" ]; then
        echo "fuzz-python: $script is missing" >&2
        exit 2
    fi
    mkdir -p "$work/$h/corpus" "$work/$h/artifacts"
    log="$work/$h/log.txt"
    echo "fuzz-python: fuzz_$h for $secs s ..."
    # -timeout: an input that runs 20 s is a hang (a deadlock in the store,
    # say); -rss_limit_mb: memory must not grow without bound.
    "$py" "$script" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/$h/artifacts/" \
        "$work/$h/corpus" "$root/tests/fuzz/python/corpus/$h" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    if [ $rc -ne 0 ]; then
        echo "fuzz_$h (python): FAILED (exit $rc) after ${execs:-?} executions; see $log and $work/$h/artifacts/"
        grep -E -A25 "Uncaught Python exception|ERROR: libFuzzer" "$log" | head -40
        status=1
    else
        echo "fuzz_$h (python): ${execs:-?} executions in ${secs} s, coverage ${cov:-?} edges, no failures"
    fi
    if [ -n "${FUZZ_REPORT:-}" ]; then
        echo "fuzz-python $h seconds $secs execs ${execs:-0} cov ${cov:-0} failed $((rc != 0))" >> "$FUZZ_REPORT"
    fi
done
exit $status
