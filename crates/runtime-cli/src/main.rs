//! `skiff-runtime`: the runc-compatible command line over the skiff-runtime library.

mod commands;

fn main() {
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
