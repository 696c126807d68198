//! `skiff-runtime`: the runc-compatible command line over the skiff-runtime library.

mod commands;

fn main() {
    std::process::exit(commands::main());
}
