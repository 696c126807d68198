//! `skiff-listen-fds SOCKET CMD ARGS…`: what systemd's socket activation does for a service, as
//! a test harness: binds a listening unix socket at SOCKET, makes it fd 3, sets `LISTEN_FDS=1`,
//! `LISTEN_PID` (this process, which keeps its pid across the exec) and `LISTEN_FDNAMES`, and
//! execs CMD.

use std::os::fd::IntoRawFd;
use std::os::unix::process::CommandExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: skiff-listen-fds SOCKET CMD [ARGS…]");
        std::process::exit(2);
    }
    let l = std::os::unix::net::UnixListener::bind(&args[0]).unwrap_or_else(|e| {
        eprintln!("skiff-listen-fds: bind {}: {e}", args[0]);
        std::process::exit(1)
    });
    let fd = l.into_raw_fd();
    if fd != 3 {
        // SAFETY: dup2 onto fd 3 of this single-threaded process; the old number is closed.
        unsafe {
            libc::dup2(fd, 3);
            libc::close(fd);
        }
    }
    // SAFETY: F_SETFD clears close-on-exec on fd 3 so the exec'd command inherits it.
    unsafe { libc::fcntl(3, libc::F_SETFD, 0) };
    let err = std::process::Command::new(&args[1])
        .args(&args[2..])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDNAMES", "docker.sock")
        .exec();
    eprintln!("skiff-listen-fds: exec {}: {err}", args[1]);
    std::process::exit(127);
}
