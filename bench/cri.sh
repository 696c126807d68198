#!/bin/sh
# The Kubernetes node path: one pod with one container through containerd's CRI plugin —
# RunPodSandbox, CreateContainer, StartContainer, StopContainer, RemoveContainer, StopPodSandbox,
# RemovePodSandbox — with skiff-runtime (the `skiff` handler, a RuntimeClass) against runc (the
# default handler) under the same private containerd, alternating, host-network pods (a CNI add/del
# costs both sides the same). The driver is tests/src/bin/skiff-cri-bench.rs (its own containerd,
# socket, state and cgroups under /tmp, all removed after). Prints mean/median per handler and
# `ratio skiff/runc = X`. Needs root, containerd, runc, busybox-static. RUNS sets the number of
# pods per handler (default 30); SKIFF_BIN_DIR names already built binaries (else release ones are
# built).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SKIFF_BIN_DIR:-}" ]; then
    cargo build --release -q -p skiff -p skiff-runtime-cli -p skiff-tests --bin skiff-cri-bench
    SKIFF_BIN_DIR=$PWD/target/release
fi
export SKIFF_BIN_DIR
if [ -x "$SKIFF_BIN_DIR/skiff-cri-bench" ]; then
    BENCH=$SKIFF_BIN_DIR/skiff-cri-bench
else
    cargo build -q -p skiff-tests --bin skiff-cri-bench
    BENCH=$PWD/target/debug/skiff-cri-bench
fi
echo "containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -1), skiff-runtime from $SKIFF_BIN_DIR"
exec "$BENCH" "${RUNS:-30}"
