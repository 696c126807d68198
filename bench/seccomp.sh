#!/bin/bash
# Re-run under bash when started as `sh bench/seccomp.sh` (the timing uses $EPOCHREALTIME).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
# seccomp benchmark (issue 5): the lifecycle of /bin/true (`skiff-runtime run` = create, start, wait,
# delete) in a busybox bundle whose config.json is docker_spec's (what `skiff run` uses), once with
# Docker's default seccomp profile and once with the same spec minus linux.seccomp. Prints mean,
# median, min and CPU time of both, the differences in ms (target: the profile costs <= 1 ms) and
# `ratio seccomp/none = X`.
# Needs root, hyperfine, jq, bc, busybox-static; builds the static skiff-runtime and the
# skiff-docker-spec test helper.
set -eu
cd "$(dirname "$0")/.."
SKIFF=$(readlink -f "${SKIFF_RUNTIME:-$(sh scripts/build-static-runtime.sh)}")
cargo build -q -p skiff-tests --bin skiff-docker-spec >&2
SPEC=$(readlink -f "${CARGO_TARGET_DIR:-target}/debug/skiff-docker-spec")
RUNS=${RUNS:-300}
B=$(mktemp -d /tmp/skiff-bench-seccomp.XXXXXX)
cleanup() {
    rm -rf "$B"
    for d in /sys/fs/cgroup/*/skiff-bench/seccomp-$$ /sys/fs/cgroup/*/skiff-bench /sys/fs/cgroup/unified/skiff-bench; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
}
trap cleanup EXIT
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp" "$B/with" "$B/without"
cp /bin/busybox "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
"$SPEC" --bundle "$B" --read-only --cgroups-path "/skiff-bench/seccomp-$$" -- /bin/true
jq --arg r "$B/rootfs" '.root.path = $r' "$B/config.json" > "$B/with/config.json"
jq --arg r "$B/rootfs" '.root.path = $r | del(.linux.seccomp)' "$B/config.json" > "$B/without/config.json"
mkdir -p "$B/tiny"
jq --arg r "$B/rootfs" '.root.path = $r | .linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}' \
    "$B/config.json" > "$B/tiny/config.json"
echo "default profile: $(jq '.linux.seccomp.syscalls | length' "$B/with/config.json") rules for $(jq -c '.linux.seccomp.architectures' "$B/with/config.json")"

# Other work on the host drifts over minutes, so the two variants alternate: ROUNDS hyperfine rounds
# of RUNS/ROUNDS runs each, and the statistics are over all runs together.
ROUNDS=${ROUNDS:-10}
for r in $(seq "$ROUNDS"); do
    hyperfine -N --warmup 5 --runs $((RUNS / ROUNDS)) --export-json "$B/h$r.json" \
        "$SKIFF --root $B/s1 run --bundle $B/with b" \
        "$SKIFF --root $B/s2 run --bundle $B/without b" >/dev/null 2>&1
done
# stat VARIANT FIELD: over all rounds, in ms (mean/median/min of wall time; cpu = mean user+system).
stat() {
    jq -s -r --argjson i "$1" --arg f "$2" '
        [.[].results[$i].times[]] | sort as $t |
        if $f == "mean" then (add / length)
        elif $f == "median" then $t[(length / 2 | floor)]
        elif $f == "min" then $t[0]
        else 0 end | . * 1000' "$B"/h*.json
}
cpu() { jq -s -r --argjson i "$1" '[.[].results[$i] | .user + .system] | add / length * 1000' "$B"/h*.json; }
for i in 0 1; do
    eval "MEAN$i=$(stat $i mean) MED$i=$(stat $i median) MIN$i=$(stat $i min) CPU$i=$(cpu $i)"
done
printf 'with default seccomp profile: mean %.2f ms, median %.2f, min %.2f, cpu %.2f\n' "$MEAN0" "$MED0" "$MIN0" "$CPU0"
printf 'without seccomp:              mean %.2f ms, median %.2f, min %.2f, cpu %.2f\n' "$MEAN1" "$MED1" "$MIN1" "$CPU1"
printf 'profile costs %.2f ms per lifecycle (mean), %.2f ms (median), %.2f ms (min), %.2f ms cpu\n' \
    "$(echo "$MEAN0 - $MEAN1" | bc -l)" "$(echo "$MED0 - $MED1" | bc -l)" "$(echo "$MIN0 - $MIN1" | bc -l)" "$(echo "$CPU0 - $CPU1" | bc -l)"
echo "ratio seccomp/none = $(echo "$MED0 / $MED1" | bc -l | cut -c1-5) (medians)"
# Interleaved estimate, robust to load drift: PAIRS rounds, each running the three variants back to
# back (the default profile, none, and a one-rule profile as a control for the fixed cost of having
# a filter at all), timed with bash's $EPOCHREALTIME; medians per variant and of the per-round
# differences.
PAIRS=${PAIRS:-300}
for i in $(seq "$PAIRS"); do
    line=""
    for v in with without tiny; do
        t0=$EPOCHREALTIME
        "$SKIFF" --root "$B/p" run --bundle "$B/$v" p >/dev/null
        t1=$EPOCHREALTIME
        line="$line $(echo "($t1 - $t0) * 1000" | bc -l)"
    done
    echo "$line"
done | awk '{ w[NR] = $1; n[NR] = $2; t[NR] = $3; dw[NR] = $1 - $2; dt[NR] = $3 - $2 }
    function med(a, k, i, j, x, c) { c = 0; for (i in a) x[++c] = a[i]
        for (i = 2; i <= c; i++) { k = x[i]; for (j = i - 1; j > 0 && x[j] > k; j--) x[j + 1] = x[j]; x[j + 1] = k }
        return x[int((c + 1) / 2)] }
    END { printf "interleaved (%d rounds): medians with %.2f ms, without %.2f ms, one-rule profile %.2f ms\n", NR, med(w), med(n), med(t)
          printf "interleaved: the default profile costs %.2f ms per lifecycle (median of round differences); a one-rule profile %.2f ms\n", med(dw), med(dt) }'
