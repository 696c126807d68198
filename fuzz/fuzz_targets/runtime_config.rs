//! config.json as `skiff-runtime create` reads it: parse and validate (the bundle's JSON is
//! untrusted), then what create derives from the spec before any process exists: the namespace
//! plan, mount options and the seccomp filter (compiled with libseccomp, never loaded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_runtime::{config, namespaces, rootfs, seccomp};

fuzz_target!(|data: &[u8]| {
    let spec = match config::parse(data) {
        Ok(spec) => spec,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.chars().any(char::is_control), "not one line: {msg:?}");
            return;
        }
    };
    // parse() validated it: the plan must succeed on the same spec.
    namespaces::plan(&spec).expect("a validated spec has a namespace plan");
    for m in spec.mounts().iter().flatten() {
        let _ = rootfs::parse_options(m.options().as_deref().unwrap_or(&[]));
    }
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let _ = seccomp::compile(s);
    }
});
