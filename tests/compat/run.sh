#!/bin/sh
# Behaviour comparison: runs tests/compat/commands.txt against `skiff` and a real docker, then diffs
# the outputs (stdout, stderr and exit code of every command) after normalizing what legitimately
# differs: ids, digests, timestamps, "N minutes ago", sizes, state roots and the error prefix.
#
# Needs root, Debian's docker.io (dockerd; scripts/deps.sh installs it) and busybox-static. It
# starts its own dockerd on a private socket/data root (no iptables, no bridge, no network), unless
# DOCKER_HOST is set. No registry or network access: both sides import the same busybox tarball.
#
# Usage: tests/compat/run.sh [-v]    (-v prints every diff; the summary is always printed)
# Env: SKIFF (default target/debug/skiff), DOCKER (default: docker in PATH), KEEP=1 keeps the work dir,
# COMPAT_CONTAINERS=1 runs the @containers lines even when skiff has no `run` yet.
set -u
cd "$(dirname "$0")/../.."
VERBOSE=0; [ "${1:-}" = "-v" ] && VERBOSE=1
[ "$(id -u)" = 0 ] || { echo "compat: needs root" >&2; exit 1; }
SKIFF=${SKIFF:-$PWD/target/debug/skiff}
[ -x "$SKIFF" ] || cargo build -q -p skiff || exit 1
DOCKER=${DOCKER:-docker}
command -v "$DOCKER" >/dev/null || { echo "compat: no docker client ($DOCKER)" >&2; exit 1; }

W=$(mktemp -d /tmp/skiff-compat.XXXXXX)
DPID=
cleanup() {
    if [ -n "$DPID" ]; then
        kill "$DPID" 2>/dev/null
        i=0; while kill -0 "$DPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 "$DPID" 2>/dev/null
    fi
    # Whatever dockerd or skiff left mounted under the work dir (tmpfs volumes, overlay).
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # Docker's containers' cgroups went under our own parent (--cgroup-parent): remove it.
    for d in /sys/fs/cgroup/*/skiff-compat /sys/fs/cgroup/unified/skiff-compat; do
        [ -d "$d" ] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
        rmdir "$d" 2>/dev/null
    done
    [ "${KEEP:-0}" = 1 ] && echo "compat: kept $W" || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# The image both sides import.
R=$W/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
TAR=$W/busybox.tar
tar -C "$R" -cf "$TAR" .

if [ -z "${DOCKER_HOST:-}" ]; then
    mkdir -p "$W/docker/data" "$W/docker/exec"
    DOCKER_HOST=unix://$W/docker/docker.sock
    dockerd --iptables=false --ip6tables=false --bridge=none --host "$DOCKER_HOST" \
        --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/docker.pid" \
        --containerd-namespace skiff-compat --containerd-plugins-namespace skiff-compat-plugins \
        --cgroup-parent skiff-compat \
        >"$W/docker/dockerd.log" 2>&1 &
    DPID=$!
    i=0
    until "$DOCKER" -H "$DOCKER_HOST" version >/dev/null 2>&1; do
        i=$((i+1))
        if [ $i -gt 300 ] || ! kill -0 "$DPID" 2>/dev/null; then
            echo "compat: dockerd did not start:" >&2; tail -20 "$W/docker/dockerd.log" >&2; exit 1
        fi
        sleep 0.1
    done
fi
export DOCKER_HOST
DROOT=$("$DOCKER" info --format '{{.DockerRootDir}}')
SROOT=$W/skiff

HAVE_CONTAINERS=0
"$SKIFF" run --help >/dev/null 2>&1 && HAVE_CONTAINERS=1
[ "${COMPAT_CONTAINERS:-}" = 1 ] && HAVE_CONTAINERS=1

# Normalizes one side's output ($1 = its state root).
normalize() {
    sed -E \
        -e "s#$1#<root>#g" \
        -e 's#^(Error response from daemon: |Error: |skiff: |docker: |Error response from daemon: )#error: #' \
        -e 's#sha256:[0-9a-f]{64}#<digest>#g' \
        -e 's#\b[0-9a-f]{64}\b#<id>#g' \
        -e 's#\b[0-9a-f]{12}\b#<short-id>#g' \
        -e 's#[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?( [A-Z]{3,4})?#<time>#g' \
        -e 's#(Less than a second|About a minute|About an hour|[0-9]+ (second|minute|hour|day|week|month|year)s?) ago#<ago>#g' \
        -e 's#  +#  #g' \
        -e 's#\b[0-9]+(\.[0-9]+)?(B|kB|MB|GB|KiB|MiB|GiB)\b#<size>#g' \
        -e 's#[ \t]+$##'
}

run_side() { # $1 = side name; $PROG = the shell-quoted program and its global flags
    out=$W/out-$1; mkdir -p "$out"
    n=0
    while IFS= read -r line; do
        case "$line" in ''|'#'*) continue ;; esac
        case "$line" in
            '@containers '*) [ $HAVE_CONTAINERS = 1 ] || continue; line=${line#@containers } ;;
        esac
        n=$((n+1))
        line=$(printf '%s' "$line" | sed "s#{{TAR}}#$TAR#g")
        printf '%s\n' "$line" > "$out/$n.cmd"
        eval "$PROG $line" </dev/null >"$out/$n.stdout" 2>"$out/$n.stderr"
        echo "exit=$?" >"$out/$n.code"
    done < tests/compat/commands.txt
    echo "$n"
}

PROG="'$DOCKER'"
N=$(run_side docker)
PROG="'$SKIFF' --root '$SROOT'"
run_side skiff >/dev/null

same=0; differ=0; report=$W/report
: > "$report"
i=1
while [ $i -le "$N" ]; do
    for s in docker skiff; do
        root=$DROOT; [ $s = skiff ] && root=$SROOT
        { cat "$W/out-$s/$i.code"; echo "--- stdout"; cat "$W/out-$s/$i.stdout"; echo "--- stderr"; cat "$W/out-$s/$i.stderr"; } \
            | normalize "$root" > "$W/out-$s/$i.norm"
    done
    if cmp -s "$W/out-docker/$i.norm" "$W/out-skiff/$i.norm"; then
        same=$((same+1))
        echo "same    $(cat "$W/out-docker/$i.cmd")" >> "$report"
    else
        differ=$((differ+1))
        echo "DIFFERS $(cat "$W/out-docker/$i.cmd")" >> "$report"
        if [ $VERBOSE = 1 ]; then
            diff -u --label docker --label skiff "$W/out-docker/$i.norm" "$W/out-skiff/$i.norm" | sed 's/^/        /' >> "$report"
        fi
    fi
    i=$((i+1))
done
cat "$report"
echo "compat: $N commands, $same identical after normalization, $differ differ (docker $("$DOCKER" version --format '{{.Server.Version}}'), containers: $([ $HAVE_CONTAINERS = 1 ] && echo yes || echo not yet))"
