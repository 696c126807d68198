#!/bin/sh
# `skiff run --rm busybox true` rootless against the same command as root, in one run: root uses a
# fresh --root in /tmp (its own run dir below it) and `--network none`; the ordinary user (made
# here with useradd and a subordinate id range, removed at the end) uses its default store
# (~/.local/share/skiff, the same filesystem) and run dir (/tmp/skiff-<uid>), where the network
# default is none. The rootless side includes joining the user's namespace (setns to the pause
# process, made by the warm-up run) on every command; setpriv's own exec is in the rootless
# figure too, so the script times `setpriv … true` alone and prints it. With PODMAN=1 (default)
# also `podman run --rm --cgroups=disabled` rootless as the same user (crun refuses hybrid
# cgroups otherwise; rootless skiff makes no cgroup either), when podman can run here.
# Prints mean times and `ratio rootless/root = X` (target ≤ 1.5) and, if podman ran,
# `ratio skiff-rootless/podman-rootless = Y`. Needs root, hyperfine, busybox-static, uidmap;
# RUNS tunes the size; SKIFF_BIN_DIR skips the (release) build.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli
    SKIFF_BIN_DIR=$PWD/target/release
fi
SKIFF=$SKIFF_BIN_DIR/skiff
RUNS=${RUNS:-50}
PODMAN=${PODMAN:-1}
U=skbench$$
B=$(mktemp -d /tmp/skiff-bench-rootless.XXXXXX)
chmod 755 "$B"
R=$B/root
UID_=
cleanup() {
    ids=$($SKIFF --root "$R" ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && $SKIFF --root "$R" rm -f $ids >/dev/null 2>&1 || true
    if [ -n "$UID_" ]; then
        $AS $SKIFF system migrate >/dev/null 2>&1 || true
        [ "$PODMAN" = 1 ] && $AS podman system migrate >/dev/null 2>&1 || true
        for p in $(ps -o pid= -u "$UID_" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        sleep 0.5
        rm -rf "/tmp/skiff-$UID_" "/tmp/podman-run-$UID_" "/tmp/containers-user-$UID_"
        usermod --del-subuids 1900000-1965535 --del-subgids 1900000-1965535 "$U" 2>/dev/null || true
        userdel -r -f "$U" >/dev/null 2>&1 || true
    fi
    grep " $B" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$B"
}
trap cleanup EXIT INT TERM

# The image, built as root and readable by the user.
mkdir -p "$B/rootfs/bin" "$B/rootfs/etc" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /bin/busybox "$B/rootfs/bin/busybox"
for a in sh true id; do ln -s busybox "$B/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$B/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$B/rootfs/etc/group"
tar --numeric-owner -C "$B/rootfs" -cf "$B/busybox.tar" .
chmod 644 "$B/busybox.tar"

useradd -m -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -s /bin/sh "$U"
UID_=$(id -u "$U")
usermod --add-subuids 1900000-1965535 --add-subgids 1900000-1965535 "$U"
AS="setpriv --reuid=$UID_ --regid=$(id -g "$U") --init-groups env -i HOME=/home/$U USER=$U PATH=/usr/bin:/bin"

$SKIFF --root "$R" import -c 'CMD ["sh"]' "$B/busybox.tar" busybox:latest >/dev/null
$AS $SKIFF import -c 'CMD ["sh"]' "$B/busybox.tar" busybox:latest >/dev/null
# Warm-up (and the rootless side's pause process).
$SKIFF --root "$R" run --rm --network none busybox true
$AS $SKIFF run --rm busybox true

hyperfine -N -w 5 -r "$RUNS" --export-json "$B/h.json" \
    -n root "$SKIFF --root $R run --rm --network none busybox true" \
    -n rootless "$AS $SKIFF run --rm busybox true" \
    -n setpriv "$AS true"
mean() { jq -r ".results[] | select(.command==\"$1\") | .mean * 1000" "$B/h.json"; }
ROOT=$(mean root)
RL=$(mean rootless)
SP=$(mean setpriv)
printf 'root run --rm true:      %.2f ms\n' "$ROOT"
printf 'rootless run --rm true:  %.2f ms (of which setpriv+env: %.2f ms)\n' "$RL" "$SP"
echo "ratio rootless/root = $(echo "scale=2; $RL / $ROOT" | bc)"
echo "ratio rootless-without-setpriv/root = $(echo "scale=2; ($RL - $SP) / $ROOT" | bc)"

# What pasta as the rootless default network would cost (README "Rootless": why the default
# stays none): `run --rm` with --network pasta against none, and pasta's own start alone
# (`pasta --config-net -- /bin/true`) against `unshare -rn /bin/true`.
if command -v pasta >/dev/null && $AS test -w /dev/net/tun; then
    $AS $SKIFF run --rm --network pasta busybox true
    hyperfine -N -w 3 -r "$RUNS" --export-json "$B/n.json" \
        -n none "$AS $SKIFF run --rm busybox true" \
        -n pasta "$AS $SKIFF run --rm --network pasta busybox true" \
        -n pasta-alone "$AS pasta --config-net --quiet -t none -u none -T none -U none -- /bin/true" \
        -n unshare-alone "$AS unshare -rn /bin/true"
    nmean() { jq -r ".results[] | select(.command==\"$1\") | .mean * 1000" "$B/n.json"; }
    printf 'rootless run --rm: none %.2f ms, pasta %.2f ms; pasta alone %.2f ms, unshare -rn alone %.2f ms\n' \
        "$(nmean none)" "$(nmean pasta)" "$(nmean pasta-alone)" "$(nmean unshare-alone)"
    echo "ratio rootless-pasta/root = $(echo "scale=2; $(nmean pasta) / $ROOT" | bc)"
else
    echo "pasta or a user-writable /dev/net/tun missing: the pasta cost is not measured"
fi

if [ "$PODMAN" = 1 ] && command -v podman >/dev/null; then
    if $AS podman load -q -i "$B/busybox.tar" >/dev/null 2>&1 \
        || $AS podman import -q "$B/busybox.tar" localhost/busybox:latest >/dev/null 2>&1; then
        if $AS podman run --rm --cgroups=disabled --network none localhost/busybox:latest true >/dev/null 2>"$B/podman.err"; then
            hyperfine -N -w 3 -r "$RUNS" --export-json "$B/p.json" \
                -n podman "$AS podman run --rm --cgroups=disabled --network none localhost/busybox:latest true"
            PM=$(jq -r '.results[0].mean * 1000' "$B/p.json")
            printf 'podman rootless run --rm true: %.2f ms\n' "$PM"
            echo "ratio skiff-rootless/podman-rootless = $(echo "scale=2; $RL / $PM" | bc)"
        else
            echo "podman rootless cannot run here: $(head -c 300 "$B/podman.err")"
        fi
    else
        echo "podman rootless cannot import the image here"
    fi
fi
