//! `skiff-exec`: started by `skiff` (and the engine) from a read-only view of this file to put
//! one process into a running container; see `skiff_runtime::exec_helper` for the protocol (a
//! request on fd 3, an answer with the process's pid). Not meant to be run by hand: it refuses
//! to run from a writable file.
//!
//! Installed next to `skiff`, built static like `skiff-runtime` (scripts/build-static-runtime.sh):
//! it is executed once per exec, and a static binary skips the dynamic loader. `no_main`, as the
//! other binaries: Rust's start-up work (stack guard lookup, alternate signal stack) is not needed.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

/// The process entry point (see the crate documentation).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    skiff_runtime::exec_helper::serve()
}
