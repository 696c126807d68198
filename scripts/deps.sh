#!/bin/sh
# Install the Debian packages skiff's build, tests and benchmarks use. Run as root.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    busybox-static libseccomp-dev pkg-config gcc g++ make jq \
    runc crun containerd podman uidmap iproute2 systemd util-linux \
    docker-registry skopeo umoci apache2-utils openssl ca-certificates hyperfine bc \
    sqlite3 procps docker.io docker-compose nftables containernetworking-plugins passt \
    >/dev/null
# Rootless `--network pasta` (tests/tests/rootless.rs): pasta opens /dev/net/tun as the user;
# udev gives it 0666 on a normal Debian host, a VM without udev leaves the kernel's 0600.
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
