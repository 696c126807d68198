#!/bin/sh
# Lifecycle benchmark (issue 3): create+start+wait+delete of /bin/true in a busybox bundle, measured as
# `X run --bundle B id` (run = create, start, wait for exit, delete) for skiff-runtime, runc and crun.
# Part 1 on this hybrid host (skiff vs runc, both placing the container in a cgroup). Part 2 in a
# private mount namespace with cgroup2 mounted at /sys/fs/cgroup, where crun 1.8 can run (with
# --cgroup-manager=disabled); skiff and runc run there too, so all three see the same host.
# Prints mean times, `ratio skiff/runc = X`, `ratio skiff/crun = Y`, and peak RSS of each run.
# Needs root, hyperfine, runc, crun, busybox-static, jq, bc; builds the static skiff-runtime.
set -eu
cd "$(dirname "$0")/.."
# The static release build (scripts/build-static-runtime.sh) unless SKIFF_RUNTIME names another.
SKIFF=$(readlink -f "${SKIFF_RUNTIME:-$(sh scripts/build-static-runtime.sh)}")
RUNS=${RUNS:-200}
B=$(mktemp -d /tmp/skiff-bench.XXXXXX)
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
ln -s busybox "$B/rootfs/bin/sh"
"$SKIFF" spec --bundle "$B"
jq '.process.terminal = false | .process.args = ["/bin/true"] | .root.readonly = true | .linux.cgroupsPath = "/skiff-bench/c"' \
    "$B/config.json" > "$B/c.json" && mv "$B/c.json" "$B/config.json"
cd "$B"

mean() { jq -r ".results[$1].mean * 1000" "$2"; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

echo "== hybrid host (cgroup v1 controllers + cgroup2 at /sys/fs/cgroup/unified)"
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$B/h.json" \
    "$SKIFF --root $B/s run skiff-bench" "runc --root $B/r run skiff-bench" >/dev/null
S=$(mean 0 "$B/h.json"); R=$(mean 1 "$B/h.json")
printf 'skiff-runtime %.2f ms   runc %.2f ms\n' "$S" "$R"
echo "ratio skiff/runc = $(echo "$S / $R" | bc -l | cut -c1-5)"
echo "peak RSS (KiB): skiff $(rss "$SKIFF" --root "$B/s" run rss1)  runc $(rss runc --root "$B/r" run rss1)"

cat > "$B/v2.sh" <<V2
set -e
mount -t cgroup2 none /sys/fs/cgroup
cd "$B"
mkdir -p v2 && jq --arg r "$B/rootfs" 'del(.linux.cgroupsPath) | .linux.resources = {} | .root.path = \$r' config.json > v2/config.json
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$B/v.json" \
    "$SKIFF --cgroup-manager=disabled --root $B/s2 run --bundle $B/v2 b" "crun --cgroup-manager=disabled --root $B/c2 run --bundle $B/v2 b" "runc --root $B/r2 run --bundle $B/v2 b" "$SKIFF --root $B/s3 run --bundle $B/v2 b" >/dev/null
V2
echo "== private mount namespace, cgroup2 at /sys/fs/cgroup (pure v2 view; skiff and crun with --cgroup-manager=disabled, runc with its cgroup)"
unshare -m --propagation private sh "$B/v2.sh"
S=$(mean 0 "$B/v.json"); C=$(mean 1 "$B/v.json"); R=$(mean 2 "$B/v.json"); SC=$(mean 3 "$B/v.json")
printf 'skiff-runtime %.2f ms   crun %.2f ms   runc %.2f ms   (skiff with a v2 cgroup: %.2f ms)\n' "$S" "$C" "$R" "$SC"
echo "ratio skiff/crun = $(echo "$S / $C" | bc -l | cut -c1-5)"
echo "ratio skiff/runc = $(echo "$S / $R" | bc -l | cut -c1-5)"
for d in /sys/fs/cgroup/*/skiff-bench /sys/fs/cgroup/unified/skiff-bench; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
