#!/bin/sh
# What the default bridge costs `skiff run --rm busybox true`: the same run with `--network none`
# (a private namespace with lo, made by the runtime), on the default bridge (namespace made by
# skiff-net, veth, address, route), and with `-p 127.0.0.1::80` (plus two nft transactions:
# publish, unpublish). Its own bridge, 10.200.250.0/24 and nft table, deleted at the end; no
# traffic is sent. Prints mean times and `ratio bridge/none = X`.
# Needs root, hyperfine, jq, nft, busybox-static. RUNS tunes the size; SKIFF_BIN_DIR skips the build
# (default: the release binaries, built here).
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
cleanup() {
    ids=$($SK ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SK rm -f $ids >/dev/null 2>&1 || true
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
