#!/bin/sh
# Install the Debian packages skiff's build, tests and benchmarks use. Run as root.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    busybox-static libseccomp-dev pkg-config gcc g++ make jq \
    runc crun containerd podman uidmap iproute2 systemd util-linux \
    docker-registry skopeo umoci apache2-utils openssl ca-certificates hyperfine bc \
    sqlite3 procps docker.io docker-compose nftables containernetworking-plugins \
    >/dev/null
