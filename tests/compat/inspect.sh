#!/bin/sh
# Inspect parity: creates equivalent containers with `skiff` and a real dockerd, then compares
# `inspect` (and `image inspect`) key by key with skiff-inspect-diff: every key docker shows must
# exist in skiff's output with the same JSON type; values must match unless
# tests/compat/inspect-allow.txt documents why they differ (ids, times, paths, sizes).
#
# The reference is the pair tests/compat/run.sh uses: the docker 28 CLI against Debian's dockerd
# 20.10 (API 1.41), started here on a private socket, data root, exec root and cgroup parent,
# without bridge or iptables. Both sides run the same busybox image: built by `skiff import`,
# written with `skiff save` and `docker load`ed (no registry access). Everything dockerd made
# (its containers, mounts, cgroups, data root) is removed on exit, also on failure.
# Not part of a default test run (it needs root and docker.io); exit 0 = parity, 1 = differences.
#
# Networks: dockerd runs without default bridge, iptables or ip_forward (--bridge=none
# --iptables=false --ip-forward=false) and skiff's root is configured the same (daemon.json:
# "bridge": "none", no ip_forward, an nft table of its own). One user-defined network is made
# with a private subnet 10.N.30.0/24 (the first 10.N/16, N = 213…250, without host routes), first on docker's side (container, inspect, removal),
# then on skiff's, so the two never hold it at once; its port is published on 127.0.0.1 only.
# On exit every network either side made, its bridge device and skiff's nft table are removed.
#
# Usage: tests/compat/inspect.sh    Env: SKIFF, SKIFF_INSPECT_DIFF (default target/debug/...),
# DOCKER (default docker), KEEP=1 keeps the work dir.
set -u
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "inspect-compat: needs root" >&2; exit 1; }
SKIFF=${SKIFF:-$PWD/target/debug/skiff}
DIFF=${SKIFF_INSPECT_DIFF:-$PWD/target/debug/skiff-inspect-diff}
[ -x "$SKIFF" ] || cargo build -q -p skiff || exit 1
[ -x "$DIFF" ] || cargo build -q -p skiff-tests --bin skiff-inspect-diff || exit 1
DOCKER=${DOCKER:-docker}
command -v "$DOCKER" >/dev/null || { echo "inspect-compat: no docker client ($DOCKER)" >&2; exit 1; }
command -v dockerd >/dev/null || { echo "inspect-compat: no dockerd (apt-get install docker.io)" >&2; exit 1; }
ALLOW=$PWD/tests/compat/inspect-allow.txt

W=$(mktemp -d /tmp/skiff-inspect-compat.XXXXXX)
CG=skiff-inspect-compat-$$
NFT_TABLE=skiffinspect$$
DPID=
# Removes the containers and user-defined networks of one side ($@ = the program and its flags),
# and the bridge devices of those networks (br-<id12> on both sides) if still there.
drop_side() {
    "$@" rm -f $("$@" ps -aq 2>/dev/null) >/dev/null 2>&1
    for id in $("$@" network ls -q --no-trunc --filter type=custom 2>/dev/null); do
        "$@" network rm "$id" >/dev/null 2>&1
        short=$(printf '%.12s' "$id")
        ip link show "br-$short" >/dev/null 2>&1 && ip link delete "br-$short" 2>/dev/null
    done
}
cleanup() {
    [ -n "$DOCKER_HOST_SET" ] && drop_side "$DOCKER"
    [ -d "$W/skiff" ] && drop_side "$SKIFF" --root "$W/skiff"
    nft delete table ip "$NFT_TABLE" 2>/dev/null
    nft delete table ip6 "$NFT_TABLE" 2>/dev/null
    if [ -n "$DPID" ]; then
        kill "$DPID" 2>/dev/null
        i=0; while kill -0 "$DPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 "$DPID" 2>/dev/null
    fi
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for d in /sys/fs/cgroup/*/$CG /sys/fs/cgroup/unified/$CG /sys/fs/cgroup/$CG; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
        rmdir "$d" 2>/dev/null
    done
    [ "${KEEP:-0}" = 1 ] && echo "inspect-compat: kept $W" || rm -rf "$W"
}
DOCKER_HOST_SET=
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# The image: busybox imported by skiff, saved, loaded into docker.
R=$W/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
SK="$SKIFF --root $W/skiff"
# skiff's root configured as the dockerd below: no default bridge, no ip_forward, its own nft table.
mkdir -p "$W/skiff" && chmod 700 "$W/skiff"
printf '{"bridge": "none", "ip-forward": false, "nft-table": "%s"}\n' "$NFT_TABLE" > "$W/skiff/daemon.json"
chmod 600 "$W/skiff/daemon.json"
$SK import "$W/busybox.tar" compat/bb:1 >/dev/null || exit 1
$SK save -o "$W/bb-save.tar" compat/bb:1 || exit 1

mkdir -p "$W/docker/data" "$W/docker/exec" "$W/bind"
NET=
for o in $(seq 213 250); do
    ip -4 route show table all 2>/dev/null | grep -q "^10\.$o\." || { NET=10.$o; break; }
done
# The disk holding / for the blkio throttle flags (a partition's disk), else none.
BLK=
dev=$(mountpoint -d / 2>/dev/null)
if [ -n "$dev" ] && [ -e "/sys/dev/block/$dev" ]; then
    b=$(basename "$(readlink -f "/sys/dev/block/$dev")")
    [ -e "/sys/dev/block/$dev/partition" ] && b=$(basename "$(dirname "$(readlink -f "/sys/dev/block/$dev")")")
    [ -b "/dev/$b" ] && BLK=/dev/$b
fi
DOCKER_HOST=unix://$W/docker/docker.sock
export DOCKER_HOST
dockerd --iptables=false --ip6tables=false --ip-forward=false --bridge=none --host "$DOCKER_HOST" \
    --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/docker.pid" \
    --containerd-namespace "$CG" --containerd-plugins-namespace "$CG-plugins" \
    --cgroup-parent "$CG" >"$W/docker/dockerd.log" 2>&1 &
DPID=$!
i=0
until "$DOCKER" version >/dev/null 2>&1; do
    i=$((i+1))
    if [ $i -gt 300 ] || ! kill -0 "$DPID" 2>/dev/null; then
        echo "inspect-compat: dockerd did not start:" >&2; tail -20 "$W/docker/dockerd.log" >&2; exit 1
    fi
    sleep 0.1
done
DOCKER_HOST_SET=1
"$DOCKER" load -i "$W/bb-save.tar" >/dev/null || exit 1

fails=0
compare() { # $1 = label, $2 = docker's json file, $3 = skiff's
    if "$DIFF" --allow "$ALLOW" --label "$1" "$2" "$3"; then
        echo "same    $1"
    else
        fails=$((fails+1))
    fi
}

# Equivalent containers: NAME and the run arguments (the same on both sides).
n=0
while IFS='|' read -r name verb args; do
    case "$name" in ''|'#'*) continue ;; esac
    n=$((n+1))
    case "$args" in *'{{BLK}}'*) [ -n "$BLK" ] || { echo "skip    $name (no block device for the blkio flags)"; continue; } ;; esac
    args=$(printf '%s' "$args" | sed -e "s#{{BIND}}#$W/bind#g" -e "s#{{BLK}}#$BLK#g")
    # (A foreground run's exit status is the container's: the inspect below tells whether it was made.)
    # The arguments are shell words (quotes allowed): eval'd alike on both sides.
    eval "\"\$DOCKER\" $verb --name \"d-$name\" $args" </dev/null >/dev/null 2>"$W/d-$name.err"
    eval "$SK $verb --cgroup-parent \"$CG\" --name \"s-$name\" $args" </dev/null >/dev/null 2>"$W/s-$name.err"
    # Each engine's root in a path (volumes' `_data`) reads <root>: the rest of the path compares.
    "$DOCKER" inspect "d-$name" > "$W/d-$name.raw" 2>/dev/null || { echo "docker $verb $name failed: $(cat "$W/d-$name.err")"; fails=$((fails+1)); continue; }
    $SK inspect "s-$name" > "$W/s-$name.raw" 2>/dev/null || { echo "skiff $verb $name failed: $(cat "$W/s-$name.err")"; fails=$((fails+1)); continue; }
    sed "s#$W/docker/data/#<root>/#g" "$W/d-$name.raw" > "$W/d-$name.json"
    sed "s#$W/skiff/#<root>/#g" "$W/s-$name.raw" > "$W/s-$name.json"
    compare "$name" "$W/d-$name.json" "$W/s-$name.json"
done <<'LIST'
default|run -d|compat/bb:1 sleep 1000
resources|run -d|-m 64m --cpus 0.5 -e A=b -e C=d -v {{BIND}}:/mnt --restart on-failure:3 compat/bb:1 sleep 1000
host|run -d|--network host compat/bb:1 sleep 1000
none|run -d|--network none -w /tmp -u 0:0 --read-only compat/bb:1 sleep 1000
created|create|--network none -i -t compat/bb:1 sh
exited|run|--network none compat/bb:1 false
limits|run -d|--network none --cpu-shares 512 --cpu-period 100000 --cpu-quota 50000 --cpuset-cpus 0 --cpuset-mems 0 --pids-limit 10 -m 64m --memory-reservation 32m --memory-swap 128m --oom-kill-disable --oom-score-adj 100 --device-read-bps {{BLK}}:1mb --device-write-iops {{BLK}}:100 compat/bb:1 sleep 1000
namespaces|run -d|--network none --shm-size 8m --ipc shareable --pid host --uts host --cgroupns host --userns host --group-add 1234 --sysctl net.ipv4.ip_forward=1 --ulimit nofile=100:200 compat/bb:1 sleep 1000
security|run -d|--network none --security-opt no-new-privileges --security-opt seccomp=unconfined --cap-add NET_ADMIN --cap-drop MKNOD --device /dev/null:/dev/xnull:r --device-cgroup-rule 'c 1:3 r' --read-only --tmpfs /t:size=1m compat/bb:1 sleep 1000
extras|run -d|--network none --init --stop-signal USR1 --stop-timeout 5 --health-cmd true --health-interval 30s --health-retries 2 --log-driver json-file --log-opt max-size=1k --log-opt max-file=2 --add-host a:10.1.2.3 --dns 10.1.2.3 --dns-search s.example --dns-option ndots:2 --hostname h1 --domainname example.org --label a=b --restart unless-stopped compat/bb:1 sleep 1000
mounts|run -d|--network none --mount type=bind,src={{BIND}},dst=/b,readonly --mount type=volume,src=iv1,dst=/v --mount type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770 -v iv2:/w:ro compat/bb:1 sleep 1000
nohealth|create|--network none --no-healthcheck --log-driver none compat/bb:1 sh
LIST

# A user-defined network and a container on it with a published port: docker's side made,
# inspected and removed first, then skiff's (same subnet, address and port). The network's
# `Containers` map is keyed by container id: the ids are replaced by <id> on both sides. The
# container has the same name on both sides (compat-netc; the engines are separate).
net_side() { # $1 = d or s, $2 = extra run flags, the rest = the program and its flags
    side=$1; runflags=$2; shift 2
    "$@" network create --subnet $NET.30.0/24 --gateway $NET.30.1 --label tier=web compat-inet >/dev/null 2>"$W/$side-net.err" ||
        { echo "$side: network create failed: $(cat "$W/$side-net.err")"; return 1; }
    # shellcheck disable=SC2086
    "$@" run $runflags -d --name compat-netc --network compat-inet --ip $NET.30.5 --network-alias web \
        -p 127.0.0.1:18091:80 --expose 90 compat/bb:1 sleep 1000 >/dev/null 2>>"$W/$side-net.err" ||
        { echo "$side: run on compat-inet failed: $(cat "$W/$side-net.err")"; "$@" network rm compat-inet >/dev/null 2>&1; return 1; }
    "$@" inspect compat-netc > "$W/$side-netctr.json"
    "$@" network inspect compat-inet | sed -E 's#"[0-9a-f]{64}": \{#"<id>": {#' > "$W/$side-network.json"
    "$@" rm -f compat-netc >/dev/null
    "$@" network rm compat-inet >/dev/null
}
# shellcheck disable=SC2086
if [ -z "$NET" ]; then
    echo "skip    network (no free 10.213-250.0.0/16 range)"
elif net_side d "" "$DOCKER" && net_side s "--cgroup-parent $CG" $SK; then
    n=$((n+2))
    compare "network container" "$W/d-netctr.json" "$W/s-netctr.json"
    compare "network" "$W/d-network.json" "$W/s-network.json"
else
    fails=$((fails+1))
fi

# -s adds SizeRw and SizeRootFs.
"$DOCKER" inspect -s d-default > "$W/d-size.json" && $SK inspect -s s-default > "$W/s-size.json" &&
    compare "default -s" "$W/d-size.json" "$W/s-size.json"

"$DOCKER" image inspect compat/bb:1 > "$W/d-image.json"
$SK image inspect compat/bb:1 > "$W/s-image.json"
compare "image" "$W/d-image.json" "$W/s-image.json"

echo "inspect-compat: $((n+2)) objects compared, $fails with differences (docker $("$DOCKER" version --format '{{.Server.Version}}'))"
[ $fails = 0 ]
