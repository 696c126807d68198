#!/bin/sh
# Long fuzzing run (issue 13): every target of fuzz/ for SECONDS each (default 300), one after the
# other, growing fuzz/corpus/. Prints each target's executions per second and corpus size; any crash
# is left in fuzz/artifacts/TARGET/ and makes the script exit 1. FUZZ_SANITIZER=address for ASan.
#   bench/fuzz.sh [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-300}
[ $# -gt 0 ] && shift
# Only this run's logs are summed up below.
rm -f fuzz/artifacts/*.log
sh scripts/fuzz.sh "$secs" "$@"
for log in fuzz/artifacts/*.log; do
    t=$(basename "$log" .log)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "$t: ${eps:-?} execs/s, ${n:-?} executions, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
done
