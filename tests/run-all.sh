#!/bin/sh
# Run every check skiff has: formatting, clippy, unit tests and the integration tests that start real
# containers (needs root), then the drop-in test with containerd and a short run of every fuzz
# target. Dependencies: scripts/deps.sh.
#
# Every check runs even when an earlier one fails (cargo test --no-fail-fast), so one failure never
# hides another; the run ends with one summary line (passed, failed, ignored, skipped assertions)
# and exits 1 if anything failed. Assertions skipped because this host lacks an optional feature
# are listed (tests append them to $SKIFF_SKIP_LOG through skiff_tests::skip).
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-all.sh: integration tests need root (sudo $0)" >&2; exit 1; }

sh scripts/host-report.sh

logs=$(mktemp -d /tmp/skiff-run-all.XXXXXX)
chmod 700 "$logs"
SKIFF_SKIP_LOG="$logs/skips"
export SKIFF_SKIP_LOG
: >"$SKIFF_SKIP_LOG"
failed_checks=""

check() {
    name=$1
    shift
    echo "== $name"
    if ! "$@"; then
        failed_checks="$failed_checks $name"
    fi
}

check fmt cargo fmt --all -- --check
check fmt-fuzz cargo fmt --manifest-path fuzz/Cargo.toml -- --check
check clippy cargo clippy --workspace --all-targets -- -D warnings
if ! cargo build --workspace --bins; then
    echo "run-all.sh: build failed; nothing else can run" >&2
    exit 1
fi

echo "== cargo test --workspace --no-fail-fast"
{ cargo test --workspace --no-fail-fast; echo $? >"$logs/rc"; } 2>&1 | tee "$logs/test.log"
[ "$(cat "$logs/rc")" = 0 ] || failed_checks="$failed_checks cargo-test"

for t in tests/dropin/*.sh; do
    [ -f "$t" ] || continue
    check "$t" sh "$t" "$PWD/target/debug/skiff-runtime"
done
# Every fuzz target (fuzz/, its own workspace) for a few seconds each: catches a parser that panics
# on its committed seeds or on what a short run finds. bench/fuzz.sh runs them for minutes.
check fuzz sh scripts/fuzz.sh "${SKIFF_FUZZ_SECONDS:-3}"
# Remove the (empty) cgroup parents the tests used.
for d in /sys/fs/cgroup/*/skiff-test /sys/fs/cgroup/*/skiff /sys/fs/cgroup/skiff-test /sys/fs/cgroup/skiff; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
done

passed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i} END {print s + 0}' "$logs/test.log")
failed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) s += $i} END {print s + 0}' "$logs/test.log")
ignored=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^ignored/) s += $i} END {print s + 0}' "$logs/test.log")
skipped=$(wc -l <"$SKIFF_SKIP_LOG" | tr -d ' ')
if [ "$skipped" -gt 0 ]; then
    echo "== assertions skipped because this host lacks a feature:"
    sed 's/^/  /' "$SKIFF_SKIP_LOG"
fi
if [ "$failed" -gt 0 ]; then
    echo "== failed tests:"
    grep -E "^test .* \.\.\. FAILED$" "$logs/test.log" | sed 's/^/  /'
fi
# A test binary that crashed or did not build has no FAILED line: cargo-test's status covers it.
status=0
if [ "$failed" -gt 0 ] || [ -n "$failed_checks" ]; then status=1; fi
echo "summary: $passed passed, $failed failed, $ignored ignored, $skipped assertions skipped${failed_checks:+, failed checks:$failed_checks}"
rm -rf "$logs"
if [ "$status" = 0 ]; then echo "all tests passed"; fi
exit "$status"
