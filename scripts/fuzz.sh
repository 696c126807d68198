#!/bin/sh
# Build the libFuzzer targets in fuzz/ and run each for SECONDS (default 5; tests/run-all.sh passes
# 3), one after the other.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The targets are built with plain cargo, not cargo-fuzz (installing it compiles 56 crates, and
# `cargo fuzz build` instruments every dependency in a target directory of its own: 7.5 CPU-minutes
# on this 2-core machine): the same coverage flags cargo-fuzz passes (SanitizerCoverage with 8-bit
# counters, PC table, compare tracing, stack depth; --cfg fuzzing) are given only to the crates
# whose parsing we want the fuzzer to see — the fuzz targets, skiff-image, skiff-runtime, oci-spec
# and tar — through cargo's per-package profile rustflags (RUSTC_BOOTSTRAP=1 lets stable cargo take
# that flag). Every other dependency is the one `cargo build` already made in target/ (same debug
# profile and Cargo.lock), so after the workspace build this costs about a minute, not a fresh build
# of every dependency. (RUSTC_BOOTSTRAP also makes proc-macro2 rebuild, and with it the derive
# crates and their users: a later plain `cargo build` rebuilds those once.)
#
# Environment: FUZZ_PROFILE=release for an optimized build (every dependency then builds anew),
# FUZZ_SANITIZER=address to add AddressSanitizer to the instrumented crates, CARGO_TARGET_DIR to
# build elsewhere.
#
# Each target reads its committed seeds (fuzz/seeds/TARGET) and grows fuzz/corpus/TARGET; a crash is
# written to fuzz/artifacts/TARGET/ and fails the script (reproduce: run the printed binary with the
# artifact as its argument). Exit status 0 when no target crashed.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-5}
[ $# -gt 0 ] && shift
targets=$*
[ -n "$targets" ] || targets=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml)
profile=${FUZZ_PROFILE:-dev}

flags='"--cfg","fuzzing","-Cpasses=sancov-module"'
for o in level=4 inline-8bit-counters pc-table trace-compares stack-depth; do
    flags="$flags,\"-Cllvm-args=-sanitizer-coverage-$o\""
done
[ -z "${FUZZ_SANITIZER:-}" ] || flags="$flags,\"-Zsanitizer=$FUZZ_SANITIZER\""
set --
for p in skiff-fuzz skiff-image skiff-runtime oci-spec tar; do
    set -- "$@" --config "profile.$profile.package.$p.rustflags=[$flags]" \
        --config "profile.$profile.package.$p.opt-level=1"
done
start=$(date +%s)
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} RUSTC_BOOTSTRAP=1 \
    cargo -Zprofile-rustflags build --quiet --profile "$profile" --manifest-path fuzz/Cargo.toml --bins "$@"
echo "fuzz: built the targets in $(($(date +%s) - start)) s"

# layer_tar unpacks into $TMPDIR/skiff-fuzz-layer.PID: a private directory removed afterwards.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/skiff-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

dir=debug
[ "$profile" = dev ] || dir=$profile
bin=${CARGO_TARGET_DIR:-$PWD/target}/$dir
failed=""
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    seeds=""
    [ -d "fuzz/seeds/$t" ] && seeds="fuzz/seeds/$t"
    echo "== fuzz $t (${secs} s)"
    # -timeout: an input slower than this is a bug; -max_len: the layer seeds are ~10 KiB tars.
    if ! "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        "fuzz/corpus/$t" $seeds 2>"fuzz/artifacts/$t.log"; then
        tail -n 40 "fuzz/artifacts/$t.log"
        failed="$failed $t"
    else
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "fuzz/artifacts/$t.log")
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/artifacts/$t.log")
        echo "$t: $n runs, $eps execs/s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs, no crash"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: crashes in:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crash in $(echo $targets | wc -w) targets"
