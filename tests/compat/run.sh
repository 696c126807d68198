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
# COMPAT_CONTAINERS=1 runs the @containers lines even when skiff has no `run` yet,
# COMPAT_COMMANDS=FILE runs another command list (e.g. a slice of commands.txt while fixing one row).
#
# Networks: dockerd gets no default bridge and no iptables (--bridge=none --iptables=false
# --ip-forward=false; published ports then go through its docker-proxy) and skiff's root the same
# (daemon.json: "bridge": "none", no ip_forward, its own nft table). The `network` rows create
# user-defined bridges only with the private 10.N.x.0/24 subnets they name ({{NET}} = a 10.N/16
# the host has no route into), publish only on
# 127.0.0.1, and reach containers only from the host's loopback and from containers on those
# networks; on exit every network either side made (bridge device included) and skiff's nft table
# are removed.
set -u
cd "$(dirname "$0")/../.."
COMMANDS=${COMPAT_COMMANDS:-tests/compat/commands.txt}
VERBOSE=0; [ "${1:-}" = "-v" ] && VERBOSE=1
[ "$(id -u)" = 0 ] || { echo "compat: needs root" >&2; exit 1; }
SKIFF=${SKIFF:-$PWD/target/debug/skiff}
[ -x "$SKIFF" ] || cargo build -q -p skiff || exit 1
DOCKER=${DOCKER:-docker}
command -v "$DOCKER" >/dev/null || { echo "compat: no docker client ($DOCKER)" >&2; exit 1; }

W=$(mktemp -d /tmp/skiff-compat.XXXXXX)
DPID=
NFT_TABLE=skiffcompat$$
# Removes every container and user-defined network one side made; $1 = the program and its flags.
# The bridge devices of the removed networks (br-<id12> on both sides) are deleted if still there.
drop_networks() {
    ids=$(eval "$1 network ls -q --no-trunc --filter type=custom" 2>/dev/null)
    eval "$1 rm -f \$($1 ps -aq)" >/dev/null 2>&1
    for id in $ids; do
        eval "$1 network rm $id" >/dev/null 2>&1
        short=$(printf '%.12s' "$id")
        ip link show "br-$short" >/dev/null 2>&1 && ip link delete "br-$short" 2>/dev/null
    done
}
cleanup() {
    [ -n "$DPID" ] && drop_networks "'$DOCKER'"
    [ -x "$SKIFF" ] && [ -d "$W/skiff" ] && drop_networks "'$SKIFF' --root '$W/skiff'"
    nft delete table ip "$NFT_TABLE" 2>/dev/null
    nft delete table ip6 "$NFT_TABLE" 2>/dev/null
    if [ -n "$DPID" ]; then
        kill "$DPID" 2>/dev/null
        i=0; while kill -0 "$DPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 "$DPID" 2>/dev/null
    fi
    # Whatever dockerd or skiff left mounted under the work dir (tmpfs volumes, overlay).
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # Docker's containers' cgroups went under our own parent (--cgroup-parent): remove it.
    # (and compat-cp: the commands' own --cgroup-parent)
    for d in /sys/fs/cgroup/*/skiff-compat /sys/fs/cgroup/unified/skiff-compat /sys/fs/cgroup/*/compat-cp /sys/fs/cgroup/unified/compat-cp; do
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
# {{BIND}}: a host directory the bind-mount rows use; {{BLK}}: the disk holding / (blkio rows).
BIND=$W/bind
mkdir -p "$BIND" && echo bound > "$BIND/f"
BLK=/dev/null
dev=$(mountpoint -d / 2>/dev/null)
if [ -n "$dev" ] && [ -e "/sys/dev/block/$dev" ]; then
    b=$(basename "$(readlink -f "/sys/dev/block/$dev")")
    # A partition's throttle goes to its disk, as docker's blkio rules want a whole device.
    [ -e "/sys/dev/block/$dev/partition" ] && b=$(basename "$(dirname "$(readlink -f "/sys/dev/block/$dev")")")
    [ -b "/dev/$b" ] && BLK=/dev/$b
fi
# {{NET}}: the first 10.N (N = 213…250) the host has no route into, so the rows' N.x.0/24
# subnets collide with nobody's bridge (a route there would swallow the containers' traffic).
NET=
for o in $(seq 213 250); do
    ip -4 route show table all 2>/dev/null | grep -q "^10\.$o\." || { NET=10.$o; break; }
done
[ -n "$NET" ] || { echo "compat: no free 10.213-250.0.0/16 range for the network rows" >&2; exit 1; }

if [ -z "${DOCKER_HOST:-}" ]; then
    mkdir -p "$W/docker/data" "$W/docker/exec"
    DOCKER_HOST=unix://$W/docker/docker.sock
    dockerd --iptables=false --ip6tables=false --ip-forward=false --bridge=none --host "$DOCKER_HOST" \
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
# skiff's root configured as that dockerd: no default bridge, no ip_forward, an nft table of its own.
mkdir -p "$SROOT" && chmod 700 "$SROOT"
printf '{"bridge": "none", "ip-forward": false, "nft-table": "%s"}\n' "$NFT_TABLE" > "$SROOT/daemon.json"
chmod 600 "$SROOT/daemon.json"

HAVE_CONTAINERS=0
"$SKIFF" run --help >/dev/null 2>&1 && HAVE_CONTAINERS=1
[ "${COMPAT_CONTAINERS:-}" = 1 ] && HAVE_CONTAINERS=1

# Normalizes one side's output ($1 = its state root).
normalize() {
    sed -E \
        -e "s#$1#<root>#g" \
        -e 's#^(docker: )?(Error response from daemon: |Error: |skiff: |docker: )#error: #' \
        -e 's#^invalid argument "#error: invalid argument "#' \
        -e 's#sha256:[0-9a-f]{64}#<digest>#g' \
        -e 's#\b[0-9a-f]{64}\b#<id>#g' \
        -e 's#\b[0-9a-f]{12}\b#<short-id>#g' \
        -e 's#[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?( [A-Z]{3,4})?#<time>#g' \
        -e 's#(Less than a second|About a minute|About an hour|[0-9]+ (second|minute|hour|day|week|month|year)s?) ago#<ago>#g' \
        -e 's#  +#  #g' \
        -e 's#\b[0-9]+(\.[0-9]+)?(B|kB|MB|GB|KiB|MiB|GiB)\b#<size>#g' \
        -e 's#[ \t]+$##'
}

# Drops what docker's CLI adds around an error and skiff deliberately does not (its errors are
# one line, the house rule): the `Usage:` line and `Run 'docker run --help' …` hint after a bad
# flag or a failed run, the blank lines between, and the `exit status 1` line docker 28 prints
# after some refusals (network rm). The error line itself is still compared.
hints() {
    sed -E -e '/^Usage:  (docker|skiff) /d' -e "/^Run '(docker|skiff) .*--help' for more information\$/d" \
        -e '/^exit status [0-9]+$/d' -e '/^$/d'
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
        line=$(printf '%s' "$line" | sed -e "s#{{TAR}}#$TAR#g" -e "s#{{BIND}}#$BIND#g" -e "s#{{BLK}}#$BLK#g" -e "s#{{NET}}#$NET#g")
        printf '%s\n' "$line" > "$out/$n.cmd"
        eval "$PROG $line" </dev/null >"$out/$n.stdout" 2>"$out/$n.stderr"
        echo "exit=$?" >"$out/$n.code"
    done < "$COMMANDS"
    echo "$n"
}

PROG="'$DOCKER'"
N=$(run_side docker)
# Nothing of docker's side may hold a subnet or port when skiff's side runs.
drop_networks "'$DOCKER'"
PROG="'$SKIFF' --root '$SROOT'"
run_side skiff >/dev/null

same=0; differ=0; report=$W/report
: > "$report"
i=1
while [ $i -le "$N" ]; do
    for s in docker skiff; do
        root=$DROOT; [ $s = skiff ] && root=$SROOT
        { cat "$W/out-$s/$i.code"; echo "--- stdout"; cat "$W/out-$s/$i.stdout"; echo "--- stderr"; hints < "$W/out-$s/$i.stderr"; } \
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
