#!/bin/sh
# Issue 15's network benchmarks, skiff and Debian's dockerd side by side in one run.
#
# Item 1: what the default bridge costs `run --rm IMAGE true` over `--network none` (a private
# namespace with lo, made by the runtime), skiff and docker; skiff also with `-p 127.0.0.1::80`
# (two nft transactions: publish, unpublish). Prints mean times, `ratio bridge/none = X` (skiff)
# and `ratio skiff/docker (bridge added latency) = X`.
# Item 2: TCP throughput with iperf3 (Debian's, copied with its libraries into the image both
# engines import): host 127.0.0.1 → a container through a published port (docker: through
# docker-proxy, its default), and container → container on a user network. IPERF_REPS runs of
# IPERF_TIME seconds each, alternating the engines; the median of each side is printed, and
# `ratio skiff/docker (…) = X`.
# Item 3: the latency of one DNS lookup of a container name on a user network, inside a
# container, against 127.0.0.11: skiff's embedded server (served by the container's monitor) vs
# dockerd's. A lookup is timed as a loop of N `nslookup NAME 127.0.0.11` in `exec`, minus the
# same loop running `/bin/true` (fork+exec of busybox, the same on both sides), divided by N.
# Prints `ratio skiff/docker (dns lookup) = X`.
#
# Its own everything, deleted at the end: skiff's root, bridges (sknetbench0/1) and nft table
# (10.200.250.0/24, 10.200.251.0/24); dockerd's data root, exec root, socket, pid file, a bridge
# made here for it (dknetbench0, 10.203.250.0/24, given with -b) and a 10.202.0.0/16 pool for
# its user network; dockerd runs with iptables (its NAT and docker-proxy are what is measured)
# and every iptables rule and chain it adds is deleted afterwards (a snapshot taken before it
# starts is the reference; the FORWARD policy is put back too). Traffic stays on 127.0.0.1 and
# the bridges' subnets.
# Needs root, hyperfine, jq, bc, nft, iptables, busybox-static, iperf3, dockerd + docker (items 1
# and 2 for docker and item 3 are skipped without them). RUNS, DOCKER_RUNS, IPERF_TIME,
# IPERF_REPS and DNS_LOOKUPS tune the size; ITEMS="1 2 3" picks items; SKIFF_BIN_DIR skips the
# build (default: the release binaries, built here).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli
    SKIFF_BIN_DIR=$PWD/target/release
fi
ITEMS=${ITEMS:-1 2 3}
RUNS=${RUNS:-60}
DOCKER_RUNS=${DOCKER_RUNS:-20}
IPERF_TIME=${IPERF_TIME:-5}
IPERF_REPS=${IPERF_REPS:-3}
B=$(mktemp -d /tmp/skiff-bench-net.XXXXXX)
R=$B/root
SK="$SKIFF_BIN_DIR/skiff --root $R"
BR=sknetbench0
DBR=dknetbench0
TABLE=skiff_netbench
DK="docker -H unix://$B/docker.sock"
has() { case " $ITEMS " in *" $1 "*) return 0 ;; esac; return 1; }
ipt_snapshot() { iptables-save -t "$1" 2>/dev/null | grep -E '^(-A |:)' | sed -E 's/ \[[0-9]+:[0-9]+\]$//'; }
cleanup() {
    ids=$($SK ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SK rm -f $ids >/dev/null 2>&1 || true
    $SK network rm sknetdns >/dev/null 2>&1 || true
    if [ -f "$B/docker.pid" ]; then
        ids=$($DK ps -aq 2>/dev/null || true)
        [ -n "$ids" ] && $DK rm -f $ids >/dev/null 2>&1 || true
        $DK network rm dknetdns >/dev/null 2>&1 || true
        kill "$(cat "$B/docker.pid")" 2>/dev/null || true
        for _ in $(seq 20); do [ -f "$B/docker.pid" ] || break; sleep 1; done
    fi
    ip link del "$BR" 2>/dev/null || true
    ip link del sknetbench1 2>/dev/null || true
    ip link del "$DBR" 2>/dev/null || true
    nft delete table ip "$TABLE" 2>/dev/null || true
    for t in filter nat; do
        [ -f "$B/ipt.$t" ] || continue
        ipt_snapshot "$t" > "$B/ipt.$t.after"
        # Rules dockerd added, last first; then its chains; then the policies back.
        grep '^-A ' "$B/ipt.$t.after" | grep -vxF -f "$B/ipt.$t" | tac | while read -r _ rule; do
            eval "iptables -t $t -D $rule" 2>/dev/null || true
        done
        grep '^:' "$B/ipt.$t.after" | grep -vxF -f "$B/ipt.$t" | while read -r c p; do
            c=${c#:}
            if grep -q "^:$c " "$B/ipt.$t"; then
                pol=$(grep "^:$c " "$B/ipt.$t" | awk '{print $2}')
                [ "$pol" = "-" ] || iptables -t "$t" -P "$c" "$pol" 2>/dev/null || true
            else
                iptables -t "$t" -X "$c" 2>/dev/null || true
            fi
        done
    done
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
if has 2; then
    command -v iperf3 >/dev/null || { echo "iperf3 missing (scripts/deps.sh)"; exit 1; }
    # iperf3 with the libraries it links, at their host paths.
    mkdir -p "$B/rootfs/usr/bin"
    cp "$(command -v iperf3)" "$B/rootfs/usr/bin/iperf3"
    for l in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
        mkdir -p "$B/rootfs$(dirname "$l")"
        cp -L "$l" "$B/rootfs$l"
    done
    mkdir -p "$B/rootfs/tmp"
    chmod 1777 "$B/rootfs/tmp"
fi
$SK import -c 'CMD ["sh"]' "$B/rootfs" busybox:latest >/dev/null

DOCKER=0
if command -v dockerd >/dev/null && command -v docker >/dev/null && command -v iptables-save >/dev/null; then
    DOCKER=1
    ipt_snapshot filter > "$B/ipt.filter"
    ipt_snapshot nat > "$B/ipt.nat"
    ip link add "$DBR" type bridge
    ip addr add 10.203.250.1/24 dev "$DBR"
    ip link set "$DBR" up
    dockerd --data-root "$B/docker" --exec-root "$B/dexec" --pidfile "$B/docker.pid" \
        -H "unix://$B/docker.sock" --bridge="$DBR" \
        --default-address-pool base=10.202.0.0/16,size=24 >"$B/dockerd.log" 2>&1 &
    for _ in $(seq 100); do $DK version >/dev/null 2>&1 && break; sleep 0.2; done
    tar -C "$B/rootfs" -c . | $DK import -c 'CMD ["sh"]' - bb:latest >/dev/null
else
    echo "dockerd/docker/iptables missing: docker's side skipped"
fi

# --- item 1 ---------------------------------------------------------------------------------
if has 1; then
    hyperfine -N -w 5 -r "$RUNS" --export-json "$B/h.json" \
        "$SK run --rm --network none busybox true" \
        "$SK run --rm busybox true" \
        "$SK run --rm -p 127.0.0.1::80 busybox true" >/dev/null
    mean() { jq ".results[$1].mean * 1000" "$2"; }
    sd() { jq ".results[$1].stddev * 1000" "$2"; }
    printf 'skiff run --rm --network none %.2f ± %.2f ms\n' "$(mean 0 "$B/h.json")" "$(sd 0 "$B/h.json")"
    printf 'skiff run --rm (default bridge) %.2f ± %.2f ms\n' "$(mean 1 "$B/h.json")" "$(sd 1 "$B/h.json")"
    printf 'skiff run --rm -p 127.0.0.1::80 %.2f ± %.2f ms\n' "$(mean 2 "$B/h.json")" "$(sd 2 "$B/h.json")"
    echo "ratio bridge/none = $(echo "$(mean 1 "$B/h.json") / $(mean 0 "$B/h.json")" | bc -l | cut -c1-5)"
    if [ "$DOCKER" = 1 ]; then
        hyperfine -N -w 2 -r "$DOCKER_RUNS" --export-json "$B/hd.json" \
            "$DK run --rm --network none bb:latest true" \
            "$DK run --rm bb:latest true" >/dev/null
        printf 'docker run --rm --network none %.2f ± %.2f ms\n' "$(mean 0 "$B/hd.json")" "$(sd 0 "$B/hd.json")"
        printf 'docker run --rm (default bridge) %.2f ± %.2f ms\n' "$(mean 1 "$B/hd.json")" "$(sd 1 "$B/hd.json")"
        sk_add=$(echo "$(mean 1 "$B/h.json") - $(mean 0 "$B/h.json")" | bc -l)
        dk_add=$(echo "$(mean 1 "$B/hd.json") - $(mean 0 "$B/hd.json")" | bc -l)
        printf 'bridge added latency: skiff %.2f ms, docker %.2f ms\n' "$sk_add" "$dk_add"
        echo "ratio skiff/docker (bridge added latency) = $(echo "$sk_add / $dk_add" | bc -l | cut -c1-5)"
    fi
fi

# --- item 2 ---------------------------------------------------------------------------------
# One iperf3 client run against HOST:PORT from the host: its received bits/s as Gbit/s.
gbps() { jq '.end.sum_received.bits_per_second / 1e9'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if has 2; then
    SKP=$(shuf -i 20000-29999 -n 1)
    DKP=$((SKP + 10000))
    $SK network create --subnet 10.200.251.0/24 -o com.docker.network.bridge.name=sknetbench1 sknetdns >/dev/null
    $SK run -d --name iperf-pub -p "127.0.0.1:$SKP:5201" busybox iperf3 -s >/dev/null
    $SK run -d --name iperf-srv --network sknetdns busybox iperf3 -s >/dev/null
    SKSRV=$($SK inspect -f '{{(index .NetworkSettings.Networks "sknetdns").IPAddress}}' iperf-srv)
    if [ "$DOCKER" = 1 ]; then
        $DK network create --subnet 10.202.251.0/24 dknetdns >/dev/null
        $DK run -d --name iperf-pub -p "127.0.0.1:$DKP:5201" bb:latest iperf3 -s >/dev/null
        $DK run -d --name iperf-srv --network dknetdns bb:latest iperf3 -s >/dev/null
        DKSRV=$($DK inspect -f '{{(index .NetworkSettings.Networks "dknetdns").IPAddress}}' iperf-srv)
    fi
    sleep 1
    : > "$B/sk.pub"; : > "$B/sk.c2c"; : > "$B/dk.pub"; : > "$B/dk.c2c"
    for _ in $(seq "$IPERF_REPS"); do
        iperf3 -c 127.0.0.1 -p "$SKP" -t "$IPERF_TIME" -J | gbps >> "$B/sk.pub"
        $SK run --rm --network sknetdns busybox iperf3 -c "$SKSRV" -t "$IPERF_TIME" -J | gbps >> "$B/sk.c2c"
        if [ "$DOCKER" = 1 ]; then
            iperf3 -c 127.0.0.1 -p "$DKP" -t "$IPERF_TIME" -J | gbps >> "$B/dk.pub"
            $DK run --rm --network dknetdns bb:latest iperf3 -c "$DKSRV" -t "$IPERF_TIME" -J | gbps >> "$B/dk.c2c"
        fi
    done
    sk_pub=$(median < "$B/sk.pub"); sk_c2c=$(median < "$B/sk.c2c")
    printf 'skiff: 127.0.0.1 -> published port %.2f Gbit/s (runs: %s), container -> container %.2f Gbit/s (runs: %s)\n' \
        "$sk_pub" "$(tr '\n' ' ' < "$B/sk.pub" | cut -c1-60)" "$sk_c2c" "$(tr '\n' ' ' < "$B/sk.c2c" | cut -c1-60)"
    if [ "$DOCKER" = 1 ]; then
        dk_pub=$(median < "$B/dk.pub"); dk_c2c=$(median < "$B/dk.c2c")
        printf 'docker: 127.0.0.1 -> published port %.2f Gbit/s (runs: %s), container -> container %.2f Gbit/s (runs: %s)\n' \
            "$dk_pub" "$(tr '\n' ' ' < "$B/dk.pub" | cut -c1-60)" "$dk_c2c" "$(tr '\n' ' ' < "$B/dk.c2c" | cut -c1-60)"
        echo "ratio skiff/docker (127.0.0.1 published port) = $(echo "$sk_pub / $dk_pub" | bc -l | cut -c1-5)"
        echo "ratio skiff/docker (container to container) = $(echo "$sk_c2c / $dk_c2c" | bc -l | cut -c1-5)"
    fi
    $SK rm -f iperf-pub iperf-srv >/dev/null
    [ "$DOCKER" = 1 ] && $DK rm -f iperf-pub iperf-srv >/dev/null
fi

# --- item 3 ---------------------------------------------------------------------------------
has 3 || exit 0
if [ "$DOCKER" != 1 ]; then
    echo "dns: dockerd/docker missing, skipped"
    exit 0
fi
N=${DNS_LOOKUPS:-300}
$SK network inspect sknetdns >/dev/null 2>&1 ||
    $SK network create --subnet 10.200.251.0/24 -o com.docker.network.bridge.name=sknetbench1 sknetdns >/dev/null
$DK network inspect dknetdns >/dev/null 2>&1 || $DK network create --subnet 10.202.251.0/24 dknetdns >/dev/null
$SK run -d --name dnssrv --network sknetdns busybox sleep 1000 >/dev/null
$SK run -d --name dnscl --network sknetdns busybox sleep 1000 >/dev/null
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
