#!/bin/sh
# Build skiff-runtime as a fully static binary (glibc + libseccomp linked in): it is executed twice
# per container start (the CVE-2019-5736 re-exec), and a static binary skips the dynamic loader.
# Prints the path of the binary. Needs libseccomp-dev (for libseccomp.a).
set -eu
cd "$(dirname "$0")/.."
ARCH=$(uname -m)-unknown-linux-gnu
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/$(uname -m)-linux-gnu \
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -q --target "$ARCH" --target-dir target/static -p skiff-runtime-cli >&2
echo "$PWD/target/static/$ARCH/release/skiff-runtime"
