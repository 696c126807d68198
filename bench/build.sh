#!/bin/sh
# `skiff build` against Debian's dockerd legacy builder (DOCKER_BUILDKIT=0, its own socket, data
# root and exec root) on the same busybox image: a 12-step, 2-stage Dockerfile (ARG, RUN, COPY,
# COPY --from, ENV, WORKDIR, CMD), timed cold (--no-cache on both sides) and as a no-change
# rebuild (everything cached), then the no-change rebuild of a 10,000-file context (COPY . /ctx).
# `buildah bud --layers` (its own storage root, runc, overlay) is measured on the same files when
# it is installed (apt-get install buildah), else skipped with a message.
# Prints mean times and `ratio skiff/docker = X`, `ratio skiff/buildah = Y` for each. Needs root,
# hyperfine, jq, bc, busybox-static; DOCKER=0 skips docker, BUILDAH=0 buildah. RUNS tunes the
# sample size; SKIFF_BIN_DIR names already built binaries (otherwise the release ones are built).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff
    SKIFF_BIN_DIR=$PWD/target/release
fi
SKIFF=$SKIFF_BIN_DIR/skiff
RUNS=${RUNS:-10}
DOCKER=${DOCKER:-1}
BUILDAH=${BUILDAH:-1}
B=$(mktemp -d /tmp/skiff-bench-build.XXXXXX)
R=$B/root
DSOCK=$B/docker.sock
cleanup() {
    if [ -f "$B/docker.pid" ]; then
        dpid=$(cat "$B/docker.pid")
        kill "$dpid" 2>/dev/null || true
        for _ in $(seq 50); do [ -e "/proc/$dpid" ] || break; sleep 0.2; done
    fi
    if [ -n "${BH:-}" ]; then
        $BH rm -a >/dev/null 2>&1 || true
        $BH rmi -a -f >/dev/null 2>&1 || true
    fi
    grep " $B" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for d in /sys/fs/cgroup/*/skiff-bench-build /sys/fs/cgroup/unified/skiff-bench-build; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$B"
}
trap cleanup EXIT INT TERM
SK="$SKIFF --root $R"

mkdir -p "$B/rootfs/bin" "$B/rootfs/etc" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
echo 'root:x:0:' > "$B/rootfs/etc/group"
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null

# The 12-step, 2-stage build.
C=$B/ctx
mkdir -p "$C/src"
for i in $(seq 20); do echo "line $i" > "$C/src/f$i.txt"; done
echo 'key=value' > "$C/conf"
cat > "$C/Dockerfile" <<'EOF'
FROM busybox AS build
ARG VERSION=1
WORKDIR /src
COPY src/ /src/
RUN for f in *.txt; do cat $f; done > /src/all && echo v$VERSION >> /src/all
RUN mkdir -p /out && cp /src/all /out/all
FROM busybox
ENV APP=/app
COPY --from=build /out/all /app/all
COPY conf /app/conf
RUN ls -l /app > /app/list
CMD ["cat", "/app/all"]
EOF
# The 10,000-file context.
BIG=$B/big
mkdir -p "$BIG"
for d in $(seq 100); do
    mkdir -p "$BIG/d$d"
    for f in $(seq 100); do echo "$d/$f" > "$BIG/d$d/f$f"; done
done
printf 'FROM busybox\nCOPY . /ctx\nRUN ls /ctx | wc -l\n' > "$BIG/Dockerfile"

DK=""
if [ "$DOCKER" = 1 ] && command -v dockerd >/dev/null && command -v docker >/dev/null; then
    dockerd --iptables=false --ip6tables=false --bridge=none -H "unix://$DSOCK" \
        --data-root "$B/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
        --cgroup-parent skiff-bench-build >"$B/dockerd.log" 2>&1 &
    for _ in $(seq 100); do docker -H "unix://$DSOCK" info >/dev/null 2>&1 && break; sleep 0.2; done
    if docker -H "unix://$DSOCK" info >/dev/null 2>&1 &&
        $SK save busybox:latest | docker -H "unix://$DSOCK" load >/dev/null 2>&1; then
        DK="env DOCKER_BUILDKIT=0 docker -H unix://$DSOCK build -q --network none"
    else
        echo "docker: dockerd did not come up here (see $B/dockerd.log); not measured"
    fi
fi

BH=""
BHB=""
if [ "$BUILDAH" = 1 ] && command -v buildah >/dev/null; then
    # crun refuses hybrid cgroups here; runc does not. The base comes from skiff save.
    BH="buildah --root $B/buildah --runroot $B/buildah-run --storage-driver overlay"
    $SK save -o "$B/busybox.tar" busybox:latest
    if $BH pull -q "docker-archive:$B/busybox.tar" >/dev/null 2>"$B/buildah.log"; then
        BHB="$BH bud --runtime runc --layers --network none --pull-never -q"
    else
        echo "buildah: could not load the base image (see $B/buildah.log); not measured"
    fi
else
    echo "buildah: not installed (apt-get install buildah) or BUILDAH=0; not measured"
fi

mean() { jq -r ".results[$1].mean * 1000" "$B/h.json"; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }
bench() { # name, skiff command, docker command, buildah command
    set -- "$1" "$2" "${DK:+$3}" "${BHB:+$4}"
    if [ -n "$3" ] && [ -n "$4" ]; then
        hyperfine -N -w 1 -r "$RUNS" --export-json "$B/h.json" -n skiff "$2" -n docker "$3" -n buildah "$4" >/dev/null
    elif [ -n "$3" ]; then
        hyperfine -N -w 1 -r "$RUNS" --export-json "$B/h.json" -n skiff "$2" -n docker "$3" >/dev/null
    elif [ -n "$4" ]; then
        hyperfine -N -w 1 -r "$RUNS" --export-json "$B/h.json" -n skiff "$2" -n buildah "$4" >/dev/null
    else
        hyperfine -N -w 1 -r "$RUNS" --export-json "$B/h.json" -n skiff "$2" >/dev/null
    fi
    s=$(mean 0)
    line=$(printf '%-28s skiff %8.1f ms' "$1" "$s")
    k=1
    if [ -n "$3" ]; then
        d=$(mean $k); k=$((k + 1))
        line="$line$(printf '   docker %8.1f ms (ratio skiff/docker = %s)' "$d" "$(ratio "$s" "$d")")"
    fi
    if [ -n "$4" ]; then
        b=$(mean $k)
        line="$line$(printf '   buildah %8.1f ms (ratio skiff/buildah = %s)' "$b" "$(ratio "$s" "$b")")"
    fi
    echo "$line"
}

bench "cold (--no-cache)" "$SK build -q --no-cache -t app $C" "$DK --no-cache -t app $C" "$BHB --no-cache -t app $C"
# Warm the caches once, then time builds that change nothing.
$SK build -q -t app "$C" >/dev/null
[ -z "$DK" ] || $DK -t app "$C" >/dev/null 2>&1
[ -z "$BHB" ] || $BHB -t app "$C" >/dev/null 2>&1
bench "no-change rebuild" "$SK build -q -t app $C" "$DK -t app $C" "$BHB -t app $C"
$SK build -q -t big "$BIG" >/dev/null
[ -z "$DK" ] || $DK -t big "$BIG" >/dev/null 2>&1
[ -z "$BHB" ] || $BHB -t big "$BIG" >/dev/null 2>&1
bench "no-change, 10000-file ctx" "$SK build -q -t big $BIG" "$DK -t big $BIG" "$BHB -t big $BIG"
