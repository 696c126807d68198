#!/bin/sh
# Run every check skiff has: formatting, clippy, unit tests and the integration tests that start real
# containers (needs root), then the drop-in test with containerd. Dependencies: scripts/deps.sh.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-all.sh: integration tests need root (sudo $0)" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace
for t in tests/dropin/*.sh; do
    [ -f "$t" ] || continue
    echo "== $t"
    sh "$t" "$PWD/target/debug/skiff-runtime"
done
# Remove the (empty) cgroup parents the tests used.
for d in /sys/fs/cgroup/*/skiff-test /sys/fs/cgroup/*/skiff /sys/fs/cgroup/skiff-test /sys/fs/cgroup/skiff; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
done
echo "all tests passed"
