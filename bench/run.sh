#!/bin/sh
# `skiff run --rm --network none busybox true` (docker is timed with --network none too; the bridge
# costs are bench/net.sh's) — the whole daemonless path: CLI, SQLite, overlay mount, config.json,
# monitor spawn, runtime create+start, exit, cleanup and removal — against a bare
# `skiff-runtime run` of a bundle with the same config.json (the one the engine generated) and a
# copy of the rootfs, and against `docker run --rm --network none busybox true` on the same image
# when Debian's dockerd can be started here (its own socket, data root and exec root).
# Layout as installed: container roots, images, the database, the bare runtime's bundle and
# docker's data root on a fresh journaled ext4 (a loop-mounted image, as /var/lib is on a typical
# host; BENCH_DISK=tmp uses a directory in /tmp instead), per-run state on a tmpfs as /run is
# (skiff's --runroot, default /run/skiff; the bare runtime's --root, default /run/skiff-runtime,
# as runc uses /run/runc). This machine's root filesystem is ext4 without a journal, where every
# new inode scans the inodes deleted in the last minutes: hundreds of runs a second make that
# scan dominate whichever side creates more files, so results there swing by 20%.
# Then the idle memory of N monitors (`skiff run -d … sleep`), and of docker's shims if docker ran.
# Prints mean times and `ratio skiff/runtime = X`, `ratio skiff/docker = Y`.
# Podman too (its conmon is the monitor to compare with). Needs root, hyperfine, jq, bc,
# busybox-static; DOCKER=0 skips docker, PODMAN=0 podman. RUNS, N tune the sizes;
# SKIFF_BIN_DIR skips the build.
set -eu
cd "$(dirname "$0")/.."
# SKIFF_BIN_DIR names already built binaries; otherwise build the release ones.
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli
    SKIFF_BIN_DIR=$PWD/target/release
fi
SKIFF=$SKIFF_BIN_DIR/skiff
RT=$SKIFF_BIN_DIR/skiff-runtime
RUNS=${RUNS:-100}
N=${N:-100}
DOCKER=${DOCKER:-1}
PODMAN=${PODMAN:-1}
B=$(mktemp -d /tmp/skiff-bench-run.XXXXXX)
D=$B/disk
R=$D/root
RUN=$B/run
DSOCK=$B/docker.sock
cleanup() {
    ids=$($SK ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SK rm -f $ids >/dev/null 2>&1 || true
    if [ -n "${CONTAINERS_CONF:-}" ]; then
        podman rm -af -t 0 >/dev/null 2>&1 || true
    fi
    if [ -f "$B/docker.pid" ]; then
        ids=$(docker -H "unix://$DSOCK" ps -aq 2>/dev/null || true)
        [ -n "$ids" ] && docker -H "unix://$DSOCK" rm -f $ids >/dev/null 2>&1 || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        sleep 2
    fi
    grep " $B" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    # podman (cgroupfs manager) puts conmon under libpod_parent: remove it if we made it.
    parents="/sys/fs/cgroup/*/skiff-bench /sys/fs/cgroup/unified/skiff-bench"
    [ -n "$LIBPOD_PARENT_BEFORE" ] || parents="$parents /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/unified/libpod_parent"
    for d in $parents; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$B"
}
LIBPOD_PARENT_BEFORE=$(ls -d /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true)
trap cleanup EXIT INT TERM

mkdir -p "$RUN" "$D"
mount -t tmpfs -o mode=0700 skiff-bench-run "$RUN"
if [ "${BENCH_DISK:-ext4}" = ext4 ]; then
    if truncate -s 8G "$B/disk.img" && mkfs.ext4 -q -F "$B/disk.img" &&
        mount -o loop "$B/disk.img" "$D"; then
        echo "disk: fresh journaled ext4 on a loop device"
    else
        echo "disk: no loop device here; using $D on $(df --output=fstype /tmp | tail -1)"
    fi
else
    echo "disk: $D on $(df --output=fstype /tmp | tail -1)"
fi
SK="$SKIFF --root $R --runroot $RUN"

mkdir -p "$B/rootfs/bin" "$B/rootfs/etc" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
echo 'root:x:0:' > "$B/rootfs/etc/group"
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null

# The bundle for the bare runtime: the config.json skiff generates for this container.
id=$($SK create --network none --cgroup-parent skiff-bench busybox true)
$SK start "$id" >/dev/null
$SK wait "$id" >/dev/null
mkdir -p "$D/bundle"
cp -a "$B/rootfs" "$D/bundle/rootfs"
jq '.linux.cgroupsPath = "/skiff-bench/bare"' "$R/containers/$id/config.json" > "$D/bundle/config.json"

mean() { jq -r ".results[$1].mean * 1000" "$B/h.json"; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }

DOCKER_CMD=""
if [ "$DOCKER" = 1 ] && command -v dockerd >/dev/null && command -v docker >/dev/null; then
    dockerd --iptables=false --ip6tables=false --bridge=none -H "unix://$DSOCK" \
        --data-root "$D/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
        --cgroup-parent skiff-bench \
        >"$B/dockerd.log" 2>&1 &
    for _ in $(seq 100); do docker -H "unix://$DSOCK" info >/dev/null 2>&1 && break; sleep 0.2; done
    if docker -H "unix://$DSOCK" info >/dev/null 2>&1 &&
        $SK save busybox:latest | docker -H "unix://$DSOCK" load >/dev/null 2>&1; then
        DOCKER_CMD="docker -H unix://$DSOCK run --rm --network none busybox true"
    else
        echo "docker: dockerd did not come up here (see $B/dockerd.log); not measured"
    fi
fi

# Podman 4 with runc (crun refuses hybrid cgroup hosts), cgroupfs, no network, and no default
# ulimits (raising hard limits needs CAP_SYS_RESOURCE, which this machine lacks); its storage on
# the same disk, its run state on the same tmpfs.
PODMAN_CMD=""
PODMAN_OK=""
if [ "$PODMAN" = 1 ] && command -v podman >/dev/null; then
    mkdir -p "$B/podman"
    cat >"$B/podman/containers.conf" <<EOF
[containers]
default_ulimits = []
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN/podman/events.log"
runtime = "runc"
tmp_dir = "$RUN/podman/tmp"
static_dir = "$D/podman/libpod"
volume_path = "$D/podman/volumes"
EOF
    cat >"$B/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$D/podman/storage"
runroot = "$RUN/podman/storage"
EOF
    export CONTAINERS_CONF="$B/podman/containers.conf" CONTAINERS_STORAGE_CONF="$B/podman/storage.conf"
    PODMAN_CMD="podman run --rm --network none --cgroup-parent /skiff-bench busybox true"
    if $SK save busybox:latest | podman load >/dev/null 2>&1 &&
        podman run -d --network none --cgroup-parent /skiff-bench busybox true >/dev/null 2>&1; then
        PODMAN_OK=1
        # Podman 4.3's attached run waits for conmon, and conmon here stays until its 20 s timeout
        # (measured: 20.2 s for `podman run busybox true`, 0.1 s with -d): time it only where an
        # attached run finishes promptly.
        if ! timeout 5 $PODMAN_CMD >/dev/null 2>&1; then
            echo "podman: an attached run waits out conmon's 20 s timeout here; run --rm not timed"
            PODMAN_CMD=""
        fi
    else
        echo "podman: does not run here; not measured"
        PODMAN_CMD=""
    fi
fi

echo "== run --rm busybox true ($RUNS runs)"
set -- "$SK run --rm --network none --cgroup-parent skiff-bench busybox true" "$RT --root $RUN/rt run --bundle $D/bundle bare"
[ -n "$DOCKER_CMD" ] && set -- "$@" "$DOCKER_CMD"
[ -n "$PODMAN_CMD" ] && set -- "$@" "$PODMAN_CMD"
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$B/h.json" "$@" >/dev/null
S=$(mean 0); T=$(mean 1)
printf 'skiff run --rm %.2f ms   skiff-runtime run %.2f ms\n' "$S" "$T"
echo "ratio skiff/runtime = $(ratio "$S" "$T")"
i=2
if [ -n "$DOCKER_CMD" ]; then
    DT=$(mean $i); i=$((i + 1))
    printf 'docker run --rm %.2f ms\n' "$DT"
    echo "ratio skiff/docker = $(ratio "$S" "$DT")"
fi
if [ -n "$PODMAN_CMD" ]; then
    PT=$(mean $i)
    printf 'podman run --rm %.2f ms\n' "$PT"
    echo "ratio skiff/podman = $(ratio "$S" "$PT")"
fi

echo "== idle memory of $N containers (busybox sleep)"
for _ in $(seq "$N"); do
    $SK run -d --network none --cgroup-parent skiff-bench busybox sleep 100000 >/dev/null
done
sleep 1
sum() { awk -v k="$1" '$1 == k":" {s += $2; n++} END {printf "%d %d", s, n}'; }
# report LABEL PID...: average RSS, PSS and private dirty memory of the processes.
report() {
    label=$1; shift
    [ $# -gt 0 ] || { echo "$label: none found"; return; }
    rss=$(for p in "$@"; do cat "/proc/$p/smaps_rollup"; done | sum Rss)
    pss=$(for p in "$@"; do cat "/proc/$p/smaps_rollup"; done | sum Pss)
    priv=$(for p in "$@"; do cat "/proc/$p/smaps_rollup"; done | sum Private_Dirty)
    set -- $rss; RS=$1; CNT=$2
    set -- $pss; PS=$1
    set -- $priv; PD=$1
    echo "$label: $CNT, RSS avg $((RS / CNT)) KiB, PSS avg $((PS / CNT)) KiB, private dirty avg $((PD / CNT)) KiB"
}
report "skiff monitors" $(pgrep -f "^skiff-monitor [0-9a-f]{12} --root $R\$" || true)
if [ -n "$DOCKER_CMD" ]; then
    for _ in $(seq 10); do docker -H "unix://$DSOCK" run -d --network none busybox sleep 100000 >/dev/null; done
    sleep 1
    report "containerd shims" $(pgrep -f containerd-shim || true)
fi
if [ -n "$PODMAN_OK" ]; then
    for _ in $(seq 10); do
        podman run -d --network none --cgroup-parent /skiff-bench busybox sleep 100000 >/dev/null
    done
    sleep 1
    report "podman conmons" $(pgrep -f "conmon .*$RUN/podman" || true)
fi
