#!/bin/sh
# What the default bridge costs `skiff run --rm busybox true`: the same run with `--network none`
# (a private namespace with lo, made by the runtime), on the default bridge (namespace made by
# skiff-net, veth, address, route), and with `-p 127.0.0.1::80` (plus two nft transactions:
# publish, unpublish). Its own bridge, 10.200.250.0/24 and nft table, deleted at the end; no
# traffic is sent. Prints mean times and `ratio bridge/none = X`.
# Then (item 3 of issue 15, skipped with DNS=0) the latency of one DNS lookup of a container name
# on a user network, inside a container, against 127.0.0.11: skiff's embedded server (served by the
# container's monitor) vs dockerd's, side by side. Debian's dockerd is started here with its own
# data root, exec root, socket, `--iptables=false --bridge=none` and a 10.202.0.0/16 pool (its
# embedded DNS works without iptables: it binds inside the container's namespace), and stopped at
# the end. A lookup is timed as a loop of N `nslookup NAME 127.0.0.11` in `exec`, minus the same
# loop running `/bin/true` (fork+exec of busybox, the same on both sides), divided by N.
# Prints `ratio skiff/docker (dns lookup) = X`. Traffic stays inside the two bridges' subnets.
# Needs root, hyperfine, jq, nft, busybox-static (and dockerd + docker for item 3). RUNS and
# DNS_LOOKUPS tune the size; SKIFF_BIN_DIR skips the build (default: the release binaries, built
# here).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli
    SKIFF_BIN_DIR=$PWD/target/release
fi
RUNS=${RUNS:-60}
B=$(mktemp -d /tmp/skiff-bench-net.XXXXXX)
R=$B/root
SK="$SKIFF_BIN_DIR/skiff --root $R"
BR=sknetbench0
TABLE=skiff_netbench
DK="docker -H unix://$B/docker.sock"
cleanup() {
    ids=$($SK ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SK rm -f $ids >/dev/null 2>&1 || true
    $SK network rm sknetdns >/dev/null 2>&1 || true
    if [ -f "$B/docker.pid" ]; then
        ids=$($DK ps -aq 2>/dev/null || true)
        [ -n "$ids" ] && $DK rm -f $ids >/dev/null 2>&1 || true
        $DK network rm dknetdns >/dev/null 2>&1 || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -f "$B/docker.pid" ] || break; sleep 1; done
    fi
    ip link del "$BR" 2>/dev/null || true
    nft delete table ip "$TABLE" 2>/dev/null || true
    grep " $B" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$R" "$B/rootfs/bin" "$B/rootfs/etc"
chmod 700 "$R"
printf '{"bridge": "%s", "bip": "10.200.250.1/24", "nft-table": "%s", "ip-forward": false}\n' "$BR" "$TABLE" > "$R/daemon.json"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
echo 'root:x:0:' > "$B/rootfs/etc/group"
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null
hyperfine -N -w 5 -r "$RUNS" --export-json "$B/h.json" \
    "$SK run --rm --network none busybox true" \
    "$SK run --rm busybox true" \
    "$SK run --rm -p 127.0.0.1::80 busybox true" >/dev/null
mean() { jq ".results[$1].mean * 1000" "$B/h.json"; }
sd() { jq ".results[$1].stddev * 1000" "$B/h.json"; }
printf 'run --rm --network none %.2f ± %.2f ms\n' "$(mean 0)" "$(sd 0)"
printf 'run --rm (default bridge) %.2f ± %.2f ms\n' "$(mean 1)" "$(sd 1)"
printf 'run --rm -p 127.0.0.1::80 %.2f ± %.2f ms\n' "$(mean 2)" "$(sd 2)"
echo "ratio bridge/none = $(echo "$(mean 1) / $(mean 0)" | bc -l | cut -c1-5)"

[ "${DNS:-1}" = 1 ] || exit 0
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    echo "dns: dockerd/docker missing, skipped"
    exit 0
fi
N=${DNS_LOOKUPS:-300}
$SK network create --subnet 10.200.251.0/24 -o com.docker.network.bridge.name=sknetbench1 sknetdns >/dev/null
$SK run -d --name dnssrv --network sknetdns busybox sleep 1000 >/dev/null
$SK run -d --name dnscl --network sknetdns busybox sleep 1000 >/dev/null
dockerd --data-root "$B/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
    -H "unix://$B/docker.sock" --iptables=false --ip-masq=false --bridge=none \
    --default-address-pool base=10.202.0.0/16,size=24 >"$B/dockerd.log" 2>&1 &
for _ in $(seq 50); do $DK version >/dev/null 2>&1 && break; sleep 0.2; done
tar -C "$B/rootfs" -c . | $DK import -c 'CMD ["sh"]' - bb:latest >/dev/null
$DK network create --subnet 10.202.251.0/24 dknetdns >/dev/null
$DK run -d --name dnssrv --network dknetdns bb:latest sleep 1000 >/dev/null
$DK run -d --name dnscl --network dknetdns bb:latest sleep 1000 >/dev/null
# Both answer before timing starts.
$SK exec dnscl nslookup dnssrv 127.0.0.11 >/dev/null
$DK exec dnscl nslookup dnssrv 127.0.0.11 >/dev/null
loop() { echo "sh -c 'i=0; while [ \$i -lt $N ]; do $1 >/dev/null; i=\$((i+1)); done'"; }
hyperfine -N -w 2 -r "${DNS_RUNS:-10}" --export-json "$B/d.json" \
    "$SK exec dnscl $(loop 'nslookup dnssrv 127.0.0.11')" \
    "$SK exec dnscl $(loop /bin/true)" \
    "$DK exec dnscl $(loop 'nslookup dnssrv 127.0.0.11')" \
    "$DK exec dnscl $(loop /bin/true)" >/dev/null
dmean() { jq ".results[$1].mean * 1000000" "$B/d.json"; }
sk_us=$(echo "($(dmean 0) - $(dmean 1)) / $N" | bc -l)
dk_us=$(echo "($(dmean 2) - $(dmean 3)) / $N" | bc -l)
printf 'dns lookup of a container name: skiff %.0f us, docker %.0f us (%s lookups per run)\n' "$sk_us" "$dk_us" "$N"
echo "ratio skiff/docker (dns lookup) = $(echo "$sk_us / $dk_us" | bc -l | cut -c1-5)"
