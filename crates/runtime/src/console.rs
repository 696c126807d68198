//! Terminals: create a pty inside the container, hand the master to the caller over the
//! `--console-socket` (SCM_RIGHTS), and make the slave the process's controlling terminal.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Open a new pty pair through the container's /dev/ptmx; returns (master, slave, slave path).
pub fn open_pty(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd, String)> {
    // SAFETY: path is a valid C string literal.
    let m = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(Error::Sys {
            what: "open /dev/ptmx".into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: fresh fd we own.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: master is a valid pty master fd.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } < 0 {
        return Err(Error::Sys {
            what: "unlockpt".into(),
            errno: Errno::last(),
        });
    }
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for its full length.
    if unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(Error::Sys {
            what: "ptsname".into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: ptsname_r NUL-terminated the buffer.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let cname =
        std::ffi::CString::new(name.clone()).map_err(|_| Error::Other("pty name".into()))?;
    // SAFETY: valid C string.
    let s = unsafe {
        libc::open(
            cname.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(Error::Sys {
            what: format!("open {name}"),
            errno: Errno::last(),
        });
    }
    // SAFETY: fresh fd we own.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    if rows > 0 || cols > 0 {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: ws is a valid winsize for TIOCSWINSZ.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    Ok((master, slave, name))
}

/// Send the pty master over a connected console socket, with the pty name as payload (as runc does).
pub fn send_master(sock: RawFd, master: &OwnedFd, name: &str) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::Sys {
        what: "send pty master to console socket".into(),
        errno: e,
    })?;
    Ok(())
}

/// Make `slave` the controlling terminal and stdio of this process (after setsid).
pub fn become_terminal(slave: &OwnedFd) -> Result<()> {
    // SAFETY: setsid/ioctl/dup2 take integer fds only.
    unsafe {
        libc::setsid();
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            return Err(Error::Sys {
                what: "TIOCSCTTY".into(),
                errno: Errno::last(),
            });
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(Error::Sys {
                    what: "dup2 pty".into(),
                    errno: Errno::last(),
                });
            }
        }
    }
    Ok(())
}

/// Bind the pty slave over /dev/console inside the container.
pub fn mount_console(slave_path: &str) -> Result<()> {
    let p = std::path::Path::new("/dev/console");
    if !p.exists() {
        let _ = std::fs::File::create(p);
    }
    nix::mount::mount(
        Some(slave_path),
        p,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::Sys {
        what: "bind pty to /dev/console".into(),
        errno: e,
    })
}

/// Receive a pty master sent with [`send_master`] (used by foreground `run`/`exec` and tests).
pub fn recv_master(sock: RawFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cspace = nix::cmsg_space!([RawFd; 1]);
    let r = recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut cspace),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::Sys {
        what: "receive pty master".into(),
        errno: e,
    })?;
    for c in r.cmsgs().map_err(|e| Error::Sys {
        what: "receive pty master".into(),
        errno: e,
    })? {
        if let ControlMessageOwned::ScmRights(v) = c {
            if let Some(&f) = v.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
    }
    Err(Error::Other(
        "console socket: no pty master received".into(),
    ))
}

/// A connected socketpair for handing a pty master within one process tree.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Sys {
        what: "socketpair".into(),
        errno: e,
    })
}

/// The whole terminal setup of a container process: a pty sized from `process.consoleSize`, the
/// master sent over `sock`, the slave made our controlling terminal and stdio. Returns the slave's
/// path (for /dev/console).
pub fn setup_terminal(p: &oci_spec::runtime::Process, sock: OwnedFd) -> Result<String> {
    let (rows, cols) = p
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16))
        .unwrap_or((0, 0));
    let (master, slave, name) = open_pty(rows, cols)?;
    send_master(sock.as_raw_fd(), &master, &name)?;
    drop(master);
    drop(sock);
    become_terminal(&slave)?;
    Ok(name)
}
