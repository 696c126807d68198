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
DPID=
cleanup() {
    [ -n "$DOCKER_HOST_SET" ] && "$DOCKER" rm -f $("$DOCKER" ps -aq 2>/dev/null) >/dev/null 2>&1
    "$SKIFF" --root "$W/skiff" rm -f $("$SKIFF" --root "$W/skiff" ps -aq 2>/dev/null) >/dev/null 2>&1
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
$SK import "$W/busybox.tar" compat/bb:1 >/dev/null || exit 1
$SK save -o "$W/bb-save.tar" compat/bb:1 || exit 1

mkdir -p "$W/docker/data" "$W/docker/exec" "$W/bind"
DOCKER_HOST=unix://$W/docker/docker.sock
export DOCKER_HOST
dockerd --iptables=false --ip6tables=false --bridge=none --host "$DOCKER_HOST" \
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
    args=$(printf '%s' "$args" | sed "s#{{BIND}}#$W/bind#g")
    # (A foreground run's exit status is the container's: the inspect below tells whether it was made.)
    # shellcheck disable=SC2086
    "$DOCKER" $verb --name "d-$name" $args </dev/null >/dev/null 2>"$W/d-$name.err"
    # shellcheck disable=SC2086
    $SK $verb --cgroup-parent "$CG" --name "s-$name" $args </dev/null >/dev/null 2>"$W/s-$name.err"
    "$DOCKER" inspect "d-$name" > "$W/d-$name.json" 2>/dev/null || { echo "docker $verb $name failed: $(cat "$W/d-$name.err")"; fails=$((fails+1)); continue; }
    $SK inspect "s-$name" > "$W/s-$name.json" 2>/dev/null || { echo "skiff $verb $name failed: $(cat "$W/s-$name.err")"; fails=$((fails+1)); continue; }
    compare "$name" "$W/d-$name.json" "$W/s-$name.json"
done <<'LIST'
default|run -d|compat/bb:1 sleep 1000
resources|run -d|-m 64m --cpus 0.5 -e A=b -e C=d -v {{BIND}}:/mnt --restart on-failure:3 compat/bb:1 sleep 1000
host|run -d|--network host compat/bb:1 sleep 1000
none|run -d|--network none -w /tmp -u 0:0 --read-only compat/bb:1 sleep 1000
created|create|--network none -i -t compat/bb:1 sh
exited|run|--network none compat/bb:1 false
LIST

# -s adds SizeRw and SizeRootFs.
"$DOCKER" inspect -s d-default > "$W/d-size.json" && $SK inspect -s s-default > "$W/s-size.json" &&
    compare "default -s" "$W/d-size.json" "$W/s-size.json"

"$DOCKER" image inspect compat/bb:1 > "$W/d-image.json"
$SK image inspect compat/bb:1 > "$W/s-image.json"
compare "image" "$W/d-image.json" "$W/s-image.json"

echo "inspect-compat: $((n+2)) objects compared, $fails with differences (docker $("$DOCKER" version --format '{{.Server.Version}}'))"
[ $fails = 0 ]
