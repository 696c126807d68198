//! systemd socket activation (`-H fd://`): the listening sockets a service manager passed as
//! fds 3.. with `LISTEN_FDS` and `LISTEN_PID` (sd_listen_fds(3)'s protocol, no libsystemd).

use std::os::fd::{FromRawFd, RawFd};

use crate::listen::Bound;
use crate::ServeError;

const SD_LISTEN_FDS_START: RawFd = 3;

fn err(msg: String) -> ServeError {
    ServeError::Listen {
        addr: "fd://".into(),
        msg,
    }
}

/// The activated sockets, by fd; the `LISTEN_*` variables are removed so children do not
/// inherit them. Called before any thread exists.
pub(crate) fn take() -> Result<Vec<(RawFd, Bound)>, ServeError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let n = std::env::var("LISTEN_FDS").ok();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let (Some(pid), Some(n)) = (pid, n) else {
        return Err(err(
            "no sockets passed: LISTEN_FDS/LISTEN_PID are not set (start skiff serve from a systemd socket unit)".into(),
        ));
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(err(format!(
            "LISTEN_PID={pid} is not this process ({}): the sockets are not ours",
            std::process::id()
        )));
    }
    let n: RawFd = n
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| err(format!("LISTEN_FDS={n}: expected a count of 1 to 64")))?;
    let mut out = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        // SAFETY: a zeroed sockaddr_storage is a valid buffer for getsockname to fill.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: getsockname on an fd number with a valid buffer and its length.
        let r = unsafe { libc::getsockname(fd, std::ptr::addr_of_mut!(ss).cast(), &mut len) };
        if r != 0 {
            return Err(err(format!(
                "fd {fd}: not a socket: {}",
                std::io::Error::last_os_error()
            )));
        }
        let mut listening: libc::c_int = 0;
        let mut ll = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(SO_ACCEPTCONN) on a socket fd with an int buffer and its length.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                std::ptr::addr_of_mut!(listening).cast(),
                &mut ll,
            )
        };
        if r != 0 || listening == 0 {
            return Err(err(format!("fd {fd}: not a listening socket")));
        }
        // SAFETY: F_SETFD on a valid fd: the socket is not inherited by what we spawn.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let b = match i32::from(ss.ss_family) {
            libc::AF_UNIX => {
                // SAFETY: fd is a listening unix socket passed to this process, owned from here on.
                let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
                Bound::Unix(l)
            }
            libc::AF_INET | libc::AF_INET6 => {
                // SAFETY: fd is a listening TCP socket passed to this process, owned from here on.
                let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                Bound::Tcp(l)
            }
            f => return Err(err(format!("fd {fd}: unsupported socket family {f}"))),
        };
        out.push((fd, b));
    }
    Ok(out)
}
