#!/bin/sh
# runc drop-in test: Debian's containerd drives skiff-runtime through its own runc shim
# (io.containerd.runc.v2 with --runc-binary), end to end, on a private socket and state dir.
# Usage: containerd.sh [RUNTIME_BINARY]   (default: target/debug/skiff-runtime). Needs root.
set -eu
cd "$(dirname "$0")/../.."
RT=$(readlink -f "${1:-target/debug/skiff-runtime}")
SKIFF=$(readlink -f "${SKIFF:-target/debug/skiff}")
[ -x "$RT" ] || { echo "containerd.sh: $RT not built" >&2; exit 1; }
T=$(mktemp -d /tmp/skiff-dropin.XXXXXX)
SOCK="$T/containerd.sock"
CPID=
NS=
cleanup() {
    # Containers a failed run left behind, then containerd itself.
    if [ -n "$NS" ] && [ -d "/run/containerd/runc/$NS" ]; then
        for c in t1 t2; do "$RT" --root "/run/containerd/runc/$NS" delete -f "$c" 2>/dev/null || true; done
        rm -rf "/run/containerd/runc/$NS"
    fi
    # The shim's cgroups are /<namespace>/<id> in every hierarchy.
    if [ -n "$NS" ]; then
        for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS"; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
    fi
    [ -n "$CPID" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null || true
    # A shim outlives containerd when a task was left running: stop ours.
    [ -n "$NS" ] && pkill -f "containerd-shim-runc-v2 -namespace $NS " 2>/dev/null || true
    # Unmount whatever containerd left (snapshots, shm), deepest first.
    grep " $T" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

cat > "$T/config.toml" <<CFG
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$T/debug.sock"
  level = "info"
CFG
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$T/containerd.log"; echo "containerd did not start" >&2; exit 1; }
NS=skiff-dropin-$$
CTR="ctr -a $SOCK -n $NS"

# An image made offline with project code: a busybox rootfs imported by skiff, saved as an archive.
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$T/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$T/rootfs/etc/passwd"
"$SKIFF" --root "$T/skiff" import "$T/rootfs" localhost/dropin/busybox:latest >/dev/null
"$SKIFF" --root "$T/skiff" save -o "$T/image.tar" localhost/dropin/busybox:latest
$CTR images import "$T/image.tar" >/dev/null
$CTR images ls -q | grep -q 'localhost/dropin/busybox:latest'

fail() { echo "FAIL: $*" >&2; tail -20 "$T/containerd.log" >&2; exit 1; }

# 1. Foreground run: output and exit code come back through containerd.
set +e
OUT=$($CTR run --rm --runc-binary "$RT" localhost/dropin/busybox:latest t1 /bin/sh -c 'echo hello-from-skiff; echo pid=$$; exit 3' 2>&1)
CODE=$?
set -e
echo "$OUT" | grep -q hello-from-skiff || fail "no output: $OUT"
echo "$OUT" | grep -q 'pid=1' || fail "not pid 1: $OUT"
[ "$CODE" = 3 ] || fail "exit code $CODE, want 3"

# 2. Detached task, exec into it, kill it, delete it.
$CTR run -d --runc-binary "$RT" localhost/dropin/busybox:latest t2 /bin/sleep 1000 >/dev/null
for _ in $(seq 100); do $CTR task ls | grep -q 't2.*RUNNING' && break; sleep 0.05; done
$CTR task ls | grep -q 't2.*RUNNING' || fail "t2 not running: $($CTR task ls)"
# The shim really drove skiff-runtime: skiff's state for t2 is in the shim's runtime root.
"$RT" --root /run/containerd/runc/$NS state t2 | grep -q '"status": "running"' || fail "skiff-runtime has no running t2"
EX=$($CTR task exec --exec-id e1 t2 /bin/sh -c 'echo exec-ok; cat /proc/1/cmdline | tr "\0" " "')
echo "$EX" | grep -q exec-ok || fail "exec output: $EX"
echo "$EX" | grep -q 'sleep 1000' || fail "exec did not see the init: $EX"
$CTR task kill -s SIGKILL t2
for _ in $(seq 100); do $CTR task ls | grep -q 't2.*STOPPED' && break; sleep 0.05; done
$CTR task rm t2 >/dev/null
$CTR container rm t2
echo "containerd drop-in: ok ($RT)"
