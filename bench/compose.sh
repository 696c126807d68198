#!/bin/sh
# `compose up -d` and `compose down -v` of a 6-service busybox project (one network, two named
# volumes, a healthcheck with a 1 s interval on every service, five services depending on the
# first): skiff compose (over the engine, no daemon) against docker-compose 1.29 (Debian's
# `docker-compose`) talking to Debian's dockerd with its own data root, exec root and socket.
# The image reaches dockerd through `skiff save | docker load`. Each side gets its own bridge
# subnet and (for skiff) its own nft table; everything is removed at the end.
# Prints mean times and `ratio skiff/docker-compose = X` for up and for down.
# Needs root, hyperfine, jq, nft, busybox-static, docker.io (dockerd), docker-compose.
# RUNS tunes the size; SKIFF_BIN_DIR skips the build (default: the release binaries, built here).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli
    SKIFF_BIN_DIR=$PWD/target/release
fi
RUNS=${RUNS:-10}
B=$(mktemp -d /tmp/skiff-bench-compose.XXXXXX)
R=$B/root
SK="$SKIFF_BIN_DIR/skiff --root $R"
BR=skcbench0
TABLE=skiff_composebench
DSOCK=$B/docker.sock
cleanup() {
    (cd "$B/proj" 2>/dev/null && SUBNET=10.200.252.0/24 $SK compose -p bench down -v -t 0 >/dev/null 2>&1) || true
    ids=$($SK ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SK rm -f $ids >/dev/null 2>&1 || true
    if [ -f "$B/docker.pid" ]; then
        (cd "$B/proj" && SUBNET=10.200.253.0/24 DOCKER_HOST="unix://$DSOCK" docker-compose -p bench down -v -t 0 >/dev/null 2>&1) || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        for _ in $(seq 50); do [ -e "$B/docker.pid" ] || break; sleep 0.2; done
    fi
    ip link del "$BR" 2>/dev/null || true
    nft delete table ip "$TABLE" 2>/dev/null || true
    grep " $B" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$R" "$B/rootfs/bin" "$B/rootfs/etc" "$B/proj"
chmod 700 "$R"
printf '{"bridge": "%s", "bip": "10.200.250.1/24", "nft-table": "%s", "ip-forward": false}\n' "$BR" "$TABLE" > "$R/daemon.json"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
echo 'root:x:0:' > "$B/rootfs/etc/group"
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null

# The project (version 2.4: the newest format docker-compose 1.29 reads with healthchecks and
# ipam; skiff reads it as the compose spec does).
{
    echo 'version: "2.4"'
    echo 'x-svc: &svc'
    echo '  image: busybox:latest'
    echo "  command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 1000 & wait\"]"
    echo '  healthcheck: {test: ["CMD", "true"], interval: 1s, timeout: 1s, retries: 3}'
    echo 'services:'
    echo '  s1:'
    echo '    <<: *svc'
    echo '    volumes: ["v1:/v1", "v2:/v2"]'
    for i in 2 3 4 5 6; do
        echo "  s$i:"
        echo '    <<: *svc'
        echo '    depends_on: [s1]'
        [ "$i" = 2 ] && echo '    volumes: ["v1:/data"]'
        [ "$i" = 3 ] && echo '    volumes: ["v2:/data"]'
    done
    echo 'networks:'
    echo '  default:'
    echo '    ipam:'
    echo '      config:'
    echo '        - subnet: ${SUBNET}'
    echo 'volumes:'
    echo '  v1: {}'
    echo '  v2: {}'
} > "$B/proj/docker-compose.yml"

cd "$B/proj"
SKUP="env SUBNET=10.200.252.0/24 $SK compose -p bench up -d"
SKDOWN="env SUBNET=10.200.252.0/24 $SK compose -p bench down -v"
$SKUP >/dev/null 2>&1
$SKDOWN >/dev/null 2>&1

mean() { jq -r ".results[$1].mean * 1000" "$2"; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }

hyperfine -N -w 1 -r "$RUNS" --export-json "$B/sk-up.json" --prepare "$SKDOWN" "$SKUP" >/dev/null
hyperfine -N -w 1 -r "$RUNS" --export-json "$B/sk-down.json" --prepare "$SKUP" "$SKDOWN" >/dev/null
printf 'skiff compose up -d   %.1f ms\n' "$(mean 0 "$B/sk-up.json")"
printf 'skiff compose down -v %.1f ms\n' "$(mean 0 "$B/sk-down.json")"

if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
    echo "docker-compose: dockerd or docker-compose missing (apt-get install docker.io docker-compose); not measured"
    exit 0
fi
dockerd --iptables=false --ip6tables=false --bridge=none -H "unix://$DSOCK" \
    --data-root "$B/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
    >"$B/dockerd.log" 2>&1 &
for _ in $(seq 100); do docker -H "unix://$DSOCK" info >/dev/null 2>&1 && break; sleep 0.2; done
if ! docker -H "unix://$DSOCK" info >/dev/null 2>&1 ||
    ! $SK save busybox:latest | docker -H "unix://$DSOCK" load >/dev/null 2>&1; then
    echo "docker-compose: dockerd did not come up here (see $B/dockerd.log); not measured"
    exit 0
fi
DCUP="env SUBNET=10.200.253.0/24 DOCKER_HOST=unix://$DSOCK docker-compose -p bench up -d"
DCDOWN="env SUBNET=10.200.253.0/24 DOCKER_HOST=unix://$DSOCK docker-compose -p bench down -v"
hyperfine -N -w 1 -r "$RUNS" --export-json "$B/dc-up.json" --prepare "$DCDOWN" "$DCUP" >/dev/null
hyperfine -N -w 1 -r "$RUNS" --export-json "$B/dc-down.json" --prepare "$DCUP" "$DCDOWN" >/dev/null
printf 'docker-compose up -d   %.1f ms\n' "$(mean 0 "$B/dc-up.json")"
printf 'docker-compose down -v %.1f ms\n' "$(mean 0 "$B/dc-down.json")"
echo "ratio skiff/docker-compose up = $(ratio "$(mean 0 "$B/sk-up.json")" "$(mean 0 "$B/dc-up.json")")"
echo "ratio skiff/docker-compose down = $(ratio "$(mean 0 "$B/sk-down.json")" "$(mean 0 "$B/dc-down.json")")"
