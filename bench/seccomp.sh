#!/bin/sh
# seccomp benchmark (issue 5): the lifecycle of /bin/true (`skiff-runtime run` = create, start, wait,
# delete) in a busybox bundle whose config.json is docker_spec's (what `skiff run` uses), once with
# Docker's default seccomp profile and once with the same spec minus linux.seccomp. Prints both
# means, the difference in ms (target: the profile costs <= 1 ms) and `ratio seccomp/none = X`.
# Needs root, hyperfine, jq, bc, busybox-static; builds the static skiff-runtime and the
# skiff-docker-spec test helper.
set -eu
cd "$(dirname "$0")/.."
SKIFF=$(readlink -f "${SKIFF_RUNTIME:-$(sh scripts/build-static-runtime.sh)}")
cargo build -q -p skiff-tests --bin skiff-docker-spec >&2
SPEC=$(readlink -f "${CARGO_TARGET_DIR:-target}/debug/skiff-docker-spec")
RUNS=${RUNS:-300}
B=$(mktemp -d /tmp/skiff-bench-seccomp.XXXXXX)
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp" "$B/with" "$B/without"
cp /bin/busybox "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
"$SPEC" --bundle "$B" --read-only --cgroups-path /skiff-bench/seccomp -- /bin/true
jq --arg r "$B/rootfs" '.root.path = $r' "$B/config.json" > "$B/with/config.json"
jq --arg r "$B/rootfs" '.root.path = $r | del(.linux.seccomp)' "$B/config.json" > "$B/without/config.json"
echo "default profile: $(jq '.linux.seccomp.syscalls | length' "$B/with/config.json") rules for $(jq -c '.linux.seccomp.architectures' "$B/with/config.json")"

hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$B/h.json" \
    "$SKIFF --root $B/s1 run --bundle $B/with b" \
    "$SKIFF --root $B/s2 run --bundle $B/without b" >/dev/null
m() { jq -r ".results[$1].$2 * 1000" "$B/h.json"; }
W=$(m 0 mean); N=$(m 1 mean)
printf 'with default seccomp profile: mean %.2f ms (± %.2f), median %.2f, min %.2f\n' "$W" "$(m 0 stddev)" "$(m 0 median)" "$(m 0 min)"
printf 'without seccomp:              mean %.2f ms (± %.2f), median %.2f, min %.2f\n' "$N" "$(m 1 stddev)" "$(m 1 median)" "$(m 1 min)"
printf 'profile costs %.2f ms per lifecycle (mean), %.2f ms (median), %.2f ms (min)\n' \
    "$(echo "$W - $N" | bc -l)" "$(echo "$(m 0 median) - $(m 1 median)" | bc -l)" "$(echo "$(m 0 min) - $(m 1 min)" | bc -l)"
echo "ratio seccomp/none = $(echo "$W / $N" | bc -l | cut -c1-5)"
for d in /sys/fs/cgroup/*/skiff-bench /sys/fs/cgroup/unified/skiff-bench; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
