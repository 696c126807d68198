#!/bin/sh
# Print the host features skiff's tests probe, one `name: value` line each, so a failure on another
# machine can be diagnosed from the CI log alone. Read-only: changes nothing on the host.
set -u

yesno() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }

echo "== host report"
echo "kernel: $(uname -r) ($(uname -m))"
[ -r /etc/os-release ] && echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "cpus: $(nproc)  memory: $(awk '/MemTotal/ {printf "%d MiB", $2/1024}' /proc/meminfo)"
echo "uid: $(id -u)  capabilities (bounding): $(awk '/CapBnd/ {print $2}' /proc/self/status)"

# cgroups: which hierarchies are mounted where, and what the unified tree offers.
v1=$(awk '$3 == "cgroup" {print $2}' /proc/self/mounts | sort | tr '\n' ' ')
v2=$(awk '$3 == "cgroup2" {print $2}' /proc/self/mounts | tr '\n' ' ')
if [ -n "$v1" ] && [ -n "$v2" ]; then layout=hybrid; elif [ -n "$v2" ]; then layout=v2; elif [ -n "$v1" ]; then layout=v1; else layout=none; fi
echo "cgroup layout: $layout"
echo "cgroup v1 mounts: ${v1:-none}"
echo "cgroup2 mounts: ${v2:-none}"
for m in $v2; do
    [ -r "$m/cgroup.controllers" ] && echo "cgroup2 controllers ($m): $(cat "$m/cgroup.controllers")"
done
echo "v1 controllers (/proc/cgroups, enabled): $(awk 'NR > 1 && $4 == 1 && $2 != 0 {print $1}' /proc/cgroups | tr '\n' ' ')"
echo "own cgroup: $(tr '\n' ' ' </proc/self/cgroup)"

# Block I/O: schedulers per device and whether weights exist.
scheds=""
for q in /sys/block/*/queue/scheduler; do
    [ -r "$q" ] || continue
    d=${q#/sys/block/}; d=${d%%/*}
    scheds="$scheds $d=[$(cat "$q")]"
done
echo "io schedulers:${scheds:- none}"
bfq=no
case "$scheds" in *bfq*) bfq=yes ;; esac
echo "bfq available: $bfq"
w=no
for f in /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight; do
    [ -e "$f" ] && w="yes ($f)"
done
echo "blkio weights (v1): $w"
echo "swap accounting (memory.memsw): $(yesno test -e /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)"
echo "hugetlb on v1: $(yesno test -d /sys/fs/cgroup/hugetlb)"

# Filesystems and namespaces.
echo "overlay: $(yesno grep -qw overlay /proc/filesystems)"
ns=""
for n in cgroup ipc mnt net pid pid_for_children time time_for_children user uts; do
    [ -e /proc/self/ns/$n ] && ns="$ns $n"
done
echo "namespaces:$ns"
echo "user namespaces (max_user_namespaces): $(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo n/a)"
echo "unprivileged userns clone: $(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo n/a)"
echo "seccomp: $(grep -m1 Seccomp: /proc/self/status | awk '{print $2}') (actions: $(cat /proc/sys/kernel/seccomp/actions_avail 2>/dev/null || echo n/a))"

# Tools and peers the tests drive.
for t in nft ip busybox runc crun containerd ctr podman docker dockerd docker-registry skopeo umoci hyperfine sqlite3 criu newuidmap; do
    p=$(command -v "$t" 2>/dev/null || true)
    echo "tool $t: ${p:-missing}"
done
echo "nftables usable: $(yesno nft list tables)"
echo "== end host report"
