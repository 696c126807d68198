#!/bin/sh
# Build skiff-runtime and skiff-exec (the helper `skiff exec` starts to enter a container) as fully
# static binaries (glibc + libseccomp linked in): the runtime is executed twice per container start
# (the CVE-2019-5736 re-exec), the helper once per exec, and a static binary skips the dynamic
# loader. Prints the path of skiff-runtime; skiff-exec is beside it (install it next to skiff).
# Needs libseccomp-dev (for libseccomp.a).
set -eu
cd "$(dirname "$0")/.."
ARCH=$(uname -m)-unknown-linux-gnu
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/$(uname -m)-linux-gnu \
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -q --target "$ARCH" --target-dir target/static -p skiff-runtime-cli -p skiff-exec >&2
echo "$PWD/target/static/$ARCH/release/skiff-runtime"
