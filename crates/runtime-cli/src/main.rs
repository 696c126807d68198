//! `skiff-runtime`: the runc-compatible command line over the skiff-runtime library.

mod commands;

fn main() {
    // Behave like a C program when stdout is a closed pipe (`skiff-runtime list | head`).
    // SAFETY: restoring the default disposition of SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::exit(commands::main());
}
