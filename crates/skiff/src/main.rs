//! `skiff`: the docker-compatible command line. Thin: parses flags as docker does and calls the
//! engine and image crates.

fn main() {
    eprintln!("skiff: no commands yet");
    std::process::exit(125);
}
