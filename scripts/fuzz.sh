#!/usr/bin/env bash
# Run every libFuzzer harness in BUILD_DIR for SECONDS each, starting from
# the seed corpus in tests/fuzz/corpus/<harness>. New inputs go to a work
# corpus outside the repository (FUZZ_WORK, default BUILD_DIR/fuzz-work), so
# the committed corpus only changes when someone copies findings in.
# Prints the executions per harness and appends them to FUZZ_REPORT if set.
# Exits non-zero if any harness finds a crash, leak, hang or out-of-bounds
# read; the reproducer is left in the work directory.
#
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS [HARNESS...]
set -uo pipefail
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS [HARNESS...]}
secs=${2:?usage: fuzz.sh BUILD_DIR SECONDS [HARNESS...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FUZZ_WORK:-$build/fuzz-work}
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
    harnesses=(log_reader table manifest batch keys)
fi
status=0
for h in "${harnesses[@]}"; do
    bin="$build/fuzz_$h"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (build with -DWEIR_BUILD_FUZZ=ON)" >&2
        exit 2
    fi
    mkdir -p "$work/$h/corpus" "$work/$h/artifacts"
    log="$work/$h/log.txt"
    # -timeout: an input that takes a second is a hang; -rss_limit_mb and
    # -malloc_limit_mb: a corrupt length must not make weir allocate wildly.
    "$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$work/$h/artifacts/" \
        "$work/$h/corpus" "$root/tests/fuzz/corpus/$h" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    if [ $rc -ne 0 ]; then
        echo "fuzz_$h: FAILED (exit $rc) after ${execs:-?} executions; see $log and $work/$h/artifacts/"
        grep -E "ERROR|SUMMARY|returned|abort" "$log" | head -20
        status=1
    else
        echo "fuzz_$h: ${execs:-?} executions in ${secs} s, coverage ${cov:-?} edges, no failures"
    fi
    if [ -n "${FUZZ_REPORT:-}" ]; then
        echo "fuzz $h seconds $secs execs ${execs:-0} cov ${cov:-0} failed $((rc != 0))" >> "$FUZZ_REPORT"
    fi
done
exit $status
