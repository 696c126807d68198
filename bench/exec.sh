#!/bin/sh
# exec benchmark (issue 24): `exec <id> true` into a running busybox container whose config.json is
# docker_spec's (what `skiff run` generates, Docker's default seccomp profile included), side by side
# in one hyperfine run per comparison:
#   1. skiff-runtime exec, default profile vs the same container without linux.seccomp
#      (target: ratio <= 1.2 — the profile's compiled filter comes from the cache the container's
#      init filled, so only the kernel's attach is left);
#   2. skiff-runtime exec vs runc exec on the same bundle (target <= 0.3);
#   3. skiff exec bench-c true vs docker exec bench-c true (target <= 0.15, issue 14: <= 0.1), when
#      Debian's dockerd can be started here (its own socket, data root, exec root, pid file and
#      cgroup parent, as bench/run.sh does); otherwise that row is skipped with the reason;
#   4. skiff exec bench-c true vs a bare skiff-runtime exec into the same container (issue 14:
#      <= 1.5): what the engine adds (database, events, user/env, the skiff-exec helper).
# skiff runs from an install of its own: the release skiff and the static skiff-exec helper
# copied side by side into one directory (as an install puts them).
# Each comparison alternates the two commands over ROUNDS hyperfine rounds (default 10) and prints
# `ratio skiff/peer = X` (means), plus the ratios of medians and CPU times. Needs root, hyperfine, jq, bc, busybox-static, runc;
# builds the static skiff-runtime (SKIFF_RUNTIME names another), the release skiff (SKIFF_BIN_DIR
# names a directory with an already built one) and the skiff-docker-spec test helper
# (SKIFF_DOCKER_SPEC names a built one).
# DOCKER=0 skips docker; RUNS sets the number of timed runs.
set -eu
cd "$(dirname "$0")/.."
RT=$(readlink -f "${SKIFF_RUNTIME:-$(sh scripts/build-static-runtime.sh)}")
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-exec
    SKIFF_BIN_DIR=$(readlink -f "${CARGO_TARGET_DIR:-target}")/release
fi
if [ -z "${SKIFF_DOCKER_SPEC:-}" ]; then
    cargo build -q -p skiff-tests --bin skiff-docker-spec >&2
    SKIFF_DOCKER_SPEC=${CARGO_TARGET_DIR:-target}/debug/skiff-docker-spec
fi
SPEC=$(readlink -f "$SKIFF_DOCKER_SPEC")
RUNS=${RUNS:-200}
DOCKER=${DOCKER:-1}
B=$(mktemp -d /tmp/skiff-bench-exec.XXXXXX)
# The install: skiff with the static helper beside it (the helper built with the static runtime;
# else the one beside SKIFF_BIN_DIR's skiff).
mkdir -p "$B/bin"
cp "$SKIFF_BIN_DIR/skiff" "$B/bin/skiff"
if [ -x "$(dirname "$RT")/skiff-exec" ]; then
    cp "$(dirname "$RT")/skiff-exec" "$B/bin/skiff-exec"
elif [ -x "$SKIFF_BIN_DIR/skiff-exec" ]; then
    cp "$SKIFF_BIN_DIR/skiff-exec" "$B/bin/skiff-exec"
else
    echo "note: no skiff-exec helper found: skiff exec re-executes itself sealed"
fi
SKIFF=$B/bin/skiff
RUN=$B/run
DSOCK=$B/docker.sock
SK="$SKIFF --root $B/root --runroot $RUN"
cleanup() {
    for id in with without; do "$RT" --root "$RUN/rt" delete -f "$id" >/dev/null 2>&1 || true; done
    runc --root "$RUN/runc" delete -f with >/dev/null 2>&1 || true
    $SK rm -f bench-c >/dev/null 2>&1 || true
    if [ -f "$B/docker.pid" ]; then
        docker -H "unix://$DSOCK" rm -f bench-c >/dev/null 2>&1 || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        sleep 2
    fi
    grep " $B" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for d in /sys/fs/cgroup/*/skiff-bench-exec /sys/fs/cgroup/unified/skiff-bench-exec; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$B"
}
# Also on HUP and PIPE (e.g. `bench/exec.sh | head`): a container or cgroup must not outlive the bench.
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM
# Per-run state on a tmpfs, as /run is.
mkdir -p "$RUN"
mount -t tmpfs -o mode=0700 skiff-bench-exec "$RUN"

mkdir -p "$B/rootfs/bin" "$B/rootfs/etc" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
echo 'root:x:0:' > "$B/rootfs/etc/group"
"$SPEC" --bundle "$B" --read-only -- sleep 100000
# Three bundles over one read-only rootfs: the default profile (skiff-runtime and runc), and the
# same config without linux.seccomp; each container in its own cgroup.
for v in with without runc; do
    mkdir -p "$B/$v"
    jq --arg r "$B/rootfs" --arg c "/skiff-bench-exec/$v" \
        '.root.path = $r | .linux.cgroupsPath = $c' "$B/config.json" > "$B/$v/config.json"
done
jq 'del(.linux.seccomp)' "$B/without/config.json" > "$B/c.json" && mv "$B/c.json" "$B/without/config.json"
echo "default profile: $(jq '.linux.seccomp.syscalls | length' "$B/with/config.json") rules for $(jq -c '.linux.seccomp.architectures' "$B/with/config.json")"
for v in with without; do
    "$RT" --root "$RUN/rt" create --bundle "$B/$v" "$v" </dev/null >/dev/null 2>&1
    "$RT" --root "$RUN/rt" start "$v"
done
runc --root "$RUN/runc" create --bundle "$B/runc" with </dev/null >/dev/null 2>&1
runc --root "$RUN/runc" start with

# compare TAG LABEL0 LABEL1 CMD0 CMD1: ROUNDS hyperfine rounds of RUNS/ROUNDS runs each, so both
# commands see the same drift of the other work on this shared machine; prints mean, median and
# CPU (user + system) of each over all rounds, the ratios, and `ratio skiff/peer = X` (means).
ROUNDS=${ROUNDS:-10}
compare() {
    tag=$1 l0=$2 l1=$3 c0=$4 c1=$5
    for r in $(seq "$ROUNDS"); do
        if ! hyperfine -N --warmup 3 --runs $((RUNS / ROUNDS)) --export-json "$B/$tag.$r.json" \
            "$c0" "$c1" >"$B/hyperfine.log" 2>&1; then
            echo "hyperfine failed (round $r):"; grep -v '^ *$' "$B/hyperfine.log" | tail -5; return 1
        fi
    done
    for i in 0 1; do
        eval "$(jq -s -r --argjson i $i '
            [.[].results[$i].times[]] | sort as $t |
            "MEAN\($i)=\(add / length * 1000) MED\($i)=\($t[(length / 2 | floor)] * 1000)"' "$B/$tag".*.json)"
        eval "CPU$i=$(jq -s -r --argjson i $i '[.[].results[$i] | .user + .system] | add / length * 1000' "$B/$tag".*.json)"
    done
    printf '%s %.2f ms (median %.2f, cpu %.2f)   %s %.2f ms (median %.2f, cpu %.2f)\n' \
        "$l0" "$MEAN0" "$MED0" "$CPU0" "$l1" "$MEAN1" "$MED1" "$CPU1"
    echo "median ratio = $(ratio "$MED0" "$MED1"), cpu ratio = $(ratio "$CPU0" "$CPU1")"
    echo "ratio skiff/peer = $(ratio "$MEAN0" "$MEAN1")"
}
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }

echo "== skiff-runtime exec: default seccomp profile vs unconfined ($RUNS runs; target <= 1.2)"
compare h1 "default profile" unconfined "$RT --root $RUN/rt exec with true" "$RT --root $RUN/rt exec without true"

echo "== skiff-runtime exec vs runc exec, same bundle ($RUNS runs; target <= 0.3)"
compare h2 skiff-runtime runc "$RT --root $RUN/rt exec with true" "runc --root $RUN/runc exec with true"

echo "== skiff exec bench-c true vs docker exec bench-c true ($RUNS runs; target <= 0.15, issue 14: <= 0.1)"
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null
$SK run -d --name bench-c --cgroup-parent skiff-bench-exec busybox sleep 100000 >/dev/null
DOCKER_CMD=""
if [ "$DOCKER" != 1 ]; then
    echo "docker: DOCKER=0; skipped"
elif ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    echo "docker: dockerd or docker not installed; skipped"
else
    dockerd --iptables=false --ip6tables=false --bridge=none -H "unix://$DSOCK" \
        --data-root "$B/docker" --exec-root "$RUN/dexec" --pidfile "$B/docker.pid" \
        --cgroup-parent skiff-bench-exec \
        >"$B/dockerd.log" 2>&1 &
    for _ in $(seq 100); do docker -H "unix://$DSOCK" info >/dev/null 2>&1 && break; sleep 0.2; done
    if docker -H "unix://$DSOCK" info >/dev/null 2>&1 &&
        $SK save busybox:latest | docker -H "unix://$DSOCK" load >/dev/null 2>&1 &&
        docker -H "unix://$DSOCK" run -d --name bench-c --network none busybox sleep 100000 >/dev/null 2>&1; then
        DOCKER_CMD="docker -H unix://$DSOCK exec bench-c true"
    else
        echo "docker: dockerd did not run a container here; skipped. Its log:"
        tail -5 "$B/dockerd.log"
    fi
fi
if [ -n "$DOCKER_CMD" ]; then
    compare h3 "skiff exec" "docker exec" "$SK exec bench-c true" "$DOCKER_CMD"
else
    hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$B/h3.json" "$SK exec bench-c true" >/dev/null
    printf 'skiff exec %.2f ms\n' "$(jq -r '.results[0].mean * 1000' "$B/h3.json")"
fi

echo "== skiff exec bench-c true vs skiff-runtime exec into the same container ($RUNS runs; target <= 1.5)"
CID=$($SK inspect -f '{{.Id}}' bench-c)
compare h4 "skiff exec" "skiff-runtime exec" "$SK exec bench-c true" "$RT --root $RUN/runtime exec $CID true"
