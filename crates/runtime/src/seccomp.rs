//! seccomp: compiles `linux.seccomp` (and Docker-format profiles) into a BPF filter and loads it.
