#!/bin/sh
# Install the Debian packages skiff's build, tests and benchmarks use. Run as root.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    busybox-static libseccomp-dev pkg-config gcc g++ make jq \
    runc crun containerd podman uidmap iproute2 systemd util-linux \
    docker-registry skopeo umoci apache2-utils openssl ca-certificates hyperfine bc iperf3 \
    sqlite3 procps strace docker.io docker-compose nftables containernetworking-plugins python3-venv passt \
    slirp4netns fuse-overlayfs bzip2 xz-utils \
    >/dev/null
# docker-py 7 (Debian's 5.0 is too old), pytest and testcontainers-python for tests/tests/api.rs,
# in a venv of their own.
VENV=${SKIFF_DOCKER_PY_VENV:-/tmp/skiff-dockerpy-venv}
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import docker, testcontainers.core.container' 2>/dev/null; then
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'docker>=7,<8' pytest 'testcontainers>=4,<5'
fi
# Rootless `--network pasta` (tests/tests/rootless.rs): pasta opens /dev/net/tun as the user;
# udev gives it 0666 on a normal Debian host, a VM without udev leaves the kernel's 0600.
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
# Rootless fuse-overlayfs (the fallback, and `--userns auto`): /dev/fuse opened by the user, as
# udev's 0666 on a normal host.
if [ -c /dev/fuse ]; then chmod 0666 /dev/fuse; fi
