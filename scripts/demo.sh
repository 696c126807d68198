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

# The same through the docker-compatible engine: import busybox as an image, run a container from it
# (a temporary --root, so the demo leaves nothing behind).
S=$PWD/target/release/skiff
R=$(mktemp -d /tmp/skiff-demo-root.XXXXXX)
T=$(mktemp -d /tmp/skiff-demo-fs.XXXXXX)
mkdir -p "$T/bin" "$T/etc" "$T/tmp"
cp /bin/busybox "$T/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$T/etc/passwd"
tar -C "$T" -c . | $S --root "$R" import - busybox:latest >/dev/null
$S --root "$R" run -d --name web busybox:latest sleep 300 >/dev/null
$S --root "$R" ps
$S --root "$R" exec web sh -c 'echo "exec in $(hostname): $(ps | wc -l) lines of ps"'
echo "pid on the host: $($S --root "$R" inspect -f '{{.State.Pid}}' web)"
$S --root "$R" run --rm busybox:latest echo hello from skiff run --rm
$S --root "$R" rm -f web >/dev/null
rm -rf "$R" "$T"
