//! Builds `skiff-init` (crates/init/src/main.rs, no dependencies) as a fully static binary with
//! rustc and hands it to the engine to embed: `skiff run --init` bind-mounts it into containers
//! whose images have no libc (busybox), so it must not need a dynamic loader.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let src = manifest.join("../init/src/main.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let out = out_dir.join("skiff-init");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets it");
    let status = Command::new(&rustc)
        .args([
            "--edition=2021",
            "--crate-name=skiff_init",
            "--crate-type=bin",
            "-Copt-level=s",
            "-Cpanic=abort",
            "-Cstrip=symbols",
            "-Ccodegen-units=1",
            "-Ctarget-feature=+crt-static",
            "--target",
            &target,
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("run {rustc} for skiff-init: {e}"));
    assert!(
        status.success(),
        "static build of skiff-init failed (needs the C library's static archive, e.g. libc6-dev)"
    );
    // `skiff version` shows the compiler in docker's "Go version" place.
    let rustc_version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SKIFF_RUSTC_VERSION=rust{rustc_version}");
    let bytes = std::fs::read(&out).expect("read skiff-init");
    // FNV-1a: names the extracted copy, so different builds never share a file.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    println!("cargo:rustc-env=SKIFF_INIT_ID={h:016x}");
}
