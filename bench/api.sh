#!/bin/sh
# API server benchmark (issue 16): the same docker CLI against `skiff serve` and against Debian's
# dockerd, side by side in one hyperfine run per comparison:
#   1. `docker run --rm --network none busybox true` (target: ratio <= 0.2);
#   2. `docker ps -a` with PS_N created containers on each side (target: ratio <= 0.5);
#   3. stress: STRESS_CLIENTS (50) concurrent API clients (bench/api_stress.py, one keep-alive
#      connection each) creating, starting, waiting for or force-removing containers for
#      STRESS_SECONDS (30) on each side; every request must succeed, and skiff must be left with
#      no container, cgroup, mount or monitor process, and no more server fds or threads than
#      before (pooled database connections counted apart).
# dockerd runs with its own socket, data root, exec root, pid file and cgroup parent; its busybox
# image is skiff's, loaded with `skiff save | docker load`. Both data roots live in one temp dir
# under /tmp. Prints mean times and `ratio skiff/docker = X` per comparison.
# Needs root, hyperfine, jq, bc, python3, busybox-static, docker (CLI) and dockerd. RUNS, PS_N,
# STRESS_SECONDS and STRESS_CLIENTS tune the sizes; PHASES picks phases (default "run ps stress");
# SKIFF_BIN_DIR names a directory with an already built skiff (default: a release build).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff
    SKIFF_BIN_DIR=$PWD/target/release
fi
SKIFF=$(readlink -f "$SKIFF_BIN_DIR/skiff")
RUNS=${RUNS:-30}
PS_N=${PS_N:-100}
PHASES=${PHASES:-run ps stress}
STRESS_SECONDS=${STRESS_SECONDS:-30}
STRESS_CLIENTS=${STRESS_CLIENTS:-50}
B=$(mktemp -d /tmp/skiff-bench-api.XXXXXX)
SSOCK=$B/skiff.sock
DSOCK=$B/docker.sock
SK="$SKIFF --root $B/root"
cleanup() {
    if [ -f "$B/skiff.pid" ]; then
        for id in $($SK ps -aq 2>/dev/null); do $SK rm -f "$id" >/dev/null 2>&1 || true; done
        kill "$(cat "$B/skiff.pid")" 2>/dev/null || true
    fi
    if [ -f "$B/docker.pid" ]; then
        ids=$(docker -H "unix://$DSOCK" ps -aq 2>/dev/null || true)
        [ -z "$ids" ] || docker -H "unix://$DSOCK" rm -f $ids >/dev/null 2>&1 || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        sleep 2
    fi
    grep " $B" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for d in /sys/fs/cgroup/*/skiff-bench-api /sys/fs/cgroup/unified/skiff-bench-api; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$B"
}
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM

# The busybox image, made as the test suites make it.
R=$B/rootfs
for d in bin proc sys dev etc tmp root; do mkdir -p "$R/$d"; done
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
mkdir -p "$B/root" && chmod 700 "$B/root"
$SK import -c 'CMD ["sh"]' "$R" busybox:latest >/dev/null

# skiff serve.
$SK serve -H "unix://$SSOCK" >"$B/serve.log" 2>&1 &
echo $! >"$B/skiff.pid"
for _ in $(seq 100); do [ -S "$SSOCK" ] && docker -H "unix://$SSOCK" version >/dev/null 2>&1 && break; sleep 0.1; done

# dockerd.
dockerd --iptables=false --ip6tables=false --bridge=none -H "unix://$DSOCK" \
    --data-root "$B/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
    --cgroup-parent skiff-bench-api >"$B/dockerd.log" 2>&1 &
for _ in $(seq 150); do docker -H "unix://$DSOCK" info >/dev/null 2>&1 && break; sleep 0.2; done
if ! docker -H "unix://$DSOCK" info >/dev/null 2>&1; then
    echo "dockerd did not come up here:" >&2
    tail -5 "$B/dockerd.log" >&2
    exit 1
fi
$SK save busybox:latest | docker -H "unix://$DSOCK" load >/dev/null

S="docker -H unix://$SSOCK"
D="docker -H unix://$DSOCK"
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }
compare() { # name, skiff command, docker command
    hyperfine -N -w 3 -r "$RUNS" --export-json "$B/h.json" -n skiff "$2" -n docker "$3" >/dev/null
    s=$(jq '.results[0].mean' "$B/h.json")
    d=$(jq '.results[1].mean' "$B/h.json")
    printf '%-28s skiff %.1f ms   docker %.1f ms\n' "$1" "$(echo "$s * 1000" | bc -l)" "$(echo "$d * 1000" | bc -l)"
    echo "ratio skiff/docker = $(ratio "$s" "$d")   ($1)"
}

phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

CG=--cgroup-parent=skiff-bench-api
if phase run; then
    compare "docker run --rm busybox true" \
        "$S run --rm $CG --network none busybox true" \
        "$D run --rm $CG --network none busybox true"
fi

if phase ps; then
    for i in $(seq "$PS_N"); do
        $S create $CG --network none busybox true >/dev/null
        $D create $CG --network none busybox true >/dev/null
    done
    compare "docker ps -a ($PS_N containers)" "$S ps -a" "$D ps -a"
    $S rm $($S ps -aq) >/dev/null
    $D rm $($D ps -aq) >/dev/null
fi

if phase stress; then
    SPID=$(cat "$B/skiff.pid")
    # The server's open files and threads, its pooled SQLite connections (skiff.db, -wal, -shm)
    # counted apart: the pool keeps a bounded number of them open on purpose.
    fds() { ls -l "/proc/$SPID/fd" 2>/dev/null | grep -c -- '->' || true; }
    dbfds() { ls -l "/proc/$SPID/fd" 2>/dev/null | grep -c -- "-> $B/root/skiff.db" || true; }
    threads() { ls "/proc/$SPID/task" | wc -l; }
    leftovers() { # what skiff left: containers, cgroups, mounts, processes
        echo "containers: $($SK ps -aq | wc -l)"
        echo "cgroups: $(find /sys/fs/cgroup/*/skiff-bench-api /sys/fs/cgroup/unified/skiff-bench-api -mindepth 1 -type d 2>/dev/null | wc -l)"
        echo "mounts: $(grep -c " $B/root/" /proc/self/mountinfo || true)"
        echo "server children (monitors): $(cat /proc/"$SPID"/task/*/children | wc -w)"
    }
    $S version >/dev/null
    f0=$(fds) d0=$(dbfds) t0=$(threads)
    python3 bench/api_stress.py "$SSOCK" "$STRESS_SECONDS" "$STRESS_CLIENTS" skiff-bench-api >"$B/stress-skiff.json"
    # Idle blocking threads of the server's runtime end 10 s after their last job.
    sleep 12
    f1=$(fds) d1=$(dbfds) t1=$(threads)
    left=$(leftovers)
    python3 bench/api_stress.py "$DSOCK" "$STRESS_SECONDS" "$STRESS_CLIENTS" skiff-bench-api >"$B/stress-docker.json"
    for side in skiff docker; do
        jq -r --arg s "$side" '"stress \($s): \(.cycles) cycles in \(.seconds) s (\(.cycles_per_s)/s), \(.requests) requests, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms, \(.errors) errors"' "$B/stress-$side.json"
        jq -r '.first_errors[]' "$B/stress-$side.json" | sed 's/^/  error: /'
    done
    echo "skiff server: fds $f0 -> $f1 (pooled database files $d0 -> $d1), threads $t0 -> $t1"
    echo "$left" | sed 's/^/skiff left /'
    sc=$(jq .cycles_per_s "$B/stress-skiff.json")
    dc=$(jq .cycles_per_s "$B/stress-docker.json")
    echo "ratio skiff/docker = $(ratio "$dc" "$sc")   (stress: time per cycle, $STRESS_CLIENTS clients)"
    fail=0
    [ "$(jq .errors "$B/stress-skiff.json")" = 0 ] || fail=1
    [ $((f1 - d1)) -le $((f0 - d0)) ] || fail=1
    [ "$t1" -le "$t0" ] || fail=1
    echo "$left" | grep -qv ': 0$' && fail=1
    if [ "$fail" = 1 ]; then
        echo "stress: FAILED (errors or leftovers above)"
        exit 1
    fi
    echo "stress: all requests succeeded, nothing left behind"
fi
