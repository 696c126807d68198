//! `skiff-runtime`: the runc-compatible command line over the skiff-runtime library.
//!
//! `no_main`: the C `main` below is the entry point, so Rust's start-up (which parses
//! /proc/self/maps to find the main thread's stack guard and maps an alternate signal stack) does
//! not run. Each container start executes this binary twice (the re-exec below), and that start-up
//! is work neither process needs: a stack overflow still faults on the guard page.
#![cfg_attr(not(test), no_main)]
// In the unit-test build the harness supplies `main`, so the CLI below is not reachable there.
#![cfg_attr(test, allow(dead_code))]

mod commands;

/// The process entry point (see the crate documentation); arguments come from `std::env::args`.
/// (Unit tests keep the test harness's own `main`.)
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // Behave like a C program when stdout is a closed pipe (`skiff-runtime list | head`).
    // SAFETY: restoring the default disposition of SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Verbs that put a process into a container run from a sealed copy of this binary
    // (CVE-2019-5736): the host file is never the exe of anything a container can reach.
    let verb = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && matches!(a.as_str(), "create" | "run" | "exec"));
    if verb.is_some() {
        if let Err(e) = skiff_runtime::sealed::ensure_sealed_exe() {
            eprintln!("skiff-runtime: {e}");
            std::process::exit(1);
        }
    }
    std::process::exit(commands::main());
}
