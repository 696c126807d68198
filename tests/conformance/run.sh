#!/bin/sh
# Run an already-built opencontainers/runtime-tools validation suite against a runtime and print a
# per-test table and totals. This script neither fetches nor builds runtime-tools.
# Usage: run.sh RUNTIME_BINARY [RUNTIME_TOOLS_DIR]   (default dir: /work/ext/runtime-tools). Needs root.
set -u
RT=$(readlink -f "$1")
DIR=${2:-/work/ext/runtime-tools}
OUT=${OUT:-/tmp/conformance-$(basename "$RT")}
cd "$DIR" || exit 2
mkdir -p "$OUT"
pass=0; fail=0
for t in $(find validation -name '*.t' | sort); do
    name=$(basename "$t" .t)
    RUNTIME="$RT" timeout 120 "$t" >"$OUT/$name.tap" 2>&1
    code=$?
    # TAP: pass = exit 0 and no "not ok" (a plan of 1..0 is a skip, which prove counts as passed).
    if [ $code = 0 ] && ! grep -q '^not ok' "$OUT/$name.tap"; then
        pass=$((pass + 1)); echo "PASS $name"
    else
        fail=$((fail + 1)); echo "FAIL $name (exit $code, $(grep -c '^not ok' "$OUT/$name.tap") failed assertions)"
    fi
done
echo "total: $((pass + fail)) passed: $pass failed: $fail (TAP output in $OUT)"
