#!/bin/sh
# The main job on a fresh Debian machine: install dependencies, build skiff in release mode, make a
# busybox bundle from Debian's busybox-static and run a container in it with skiff-runtime.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo $0)" >&2; exit 1; }
sh scripts/deps.sh
cargo build --release --workspace --bins
RT=$(sh scripts/build-static-runtime.sh)
B=$(mktemp -d /tmp/skiff-demo.XXXXXX)
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/etc" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$B/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$B/rootfs/etc/passwd"
$RT spec --bundle "$B"
jq '.process.terminal = false | .hostname = "skiff-demo" | .process.args = ["sh", "-c", "echo hello from $(hostname), I am pid $$; id; grep CapEff /proc/self/status"]' \
    "$B/config.json" > "$B/config.json.new" && mv "$B/config.json.new" "$B/config.json"
$RT --root /run/skiff-demo run --bundle "$B" demo-$$
rm -rf "$B"
