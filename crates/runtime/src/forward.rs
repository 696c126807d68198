//! Foreground waiting for `run` and `exec`: forward signals to the container process, reap it, and
//! proxy a terminal between our stdio and the pty master.

use crate::error::{Error, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Signals we forward (everything catchable except SIGCHLD, which we use to reap).
fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            s.add(sig);
        }
    }
    s
}

/// Block the forwarded signals in this process (call before creating the container so none is lost).
/// The container init resets its mask before exec.
pub fn block_signals() -> Result<()> {
    forwarded().thread_block().map_err(|e| Error::Sys {
        what: "block signals".into(),
        errno: e,
    })
}

/// Put the terminal on `fd` into raw mode; returns the previous settings.
fn make_raw(fd: std::os::fd::BorrowedFd) -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios::*;
    let old = tcgetattr(fd).ok()?;
    let mut raw = old.clone();
    cfmakeraw(&mut raw);
    tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
    Some(old)
}

fn copy_winsize(from: i32, to: i32) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize buffer for both ioctls.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Wait for `pid` to exit, forwarding signals and (with `master`) proxying the terminal.
/// Returns the exit code (128+signal when killed).
pub fn wait(pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let mut mask = forwarded();
    mask.add(Signal::SIGCHLD);
    // Non-blocking: the loop below drains it, and a blocking read of an empty signalfd would stall
    // the terminal relay until the next signal.
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(
        |e| Error::Sys {
            what: "signalfd".into(),
            errno: e,
        },
    )?;
    let stdin = std::io::stdin();
    let restore = master.as_ref().and_then(|_| make_raw(stdin.as_fd()));
    if let Some(m) = &master {
        copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let code = 'outer: loop {
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(m) = &master {
            if master_open {
                fds.push(libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if stdin_open {
                fds.push(libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        // SAFETY: fds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == sfd.as_raw_fd() {
                while let Ok(Some(si)) = sfd.read_signal() {
                    let sig = si.ssi_signo as i32;
                    if sig == libc::SIGCHLD {
                        loop {
                            let mut st = 0;
                            // SAFETY: st is a valid out pointer.
                            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                            if r <= 0 {
                                break;
                            }
                            if r == pid {
                                // Drain what the process wrote before it exited.
                                if let Some(m) = &master {
                                    drain(m.as_raw_fd(), &mut buf);
                                }
                                break 'outer crate::util::status_code(st);
                            }
                        }
                    } else if sig == libc::SIGWINCH {
                        if let Some(m) = &master {
                            copy_winsize(0, m.as_raw_fd());
                        }
                    } else {
                        // SAFETY: kill with integer arguments.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            } else if p.fd == 0 {
                // SAFETY: buf is writable for its length.
                let r = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if r <= 0 {
                    stdin_open = false;
                } else if let Some(m) = &master {
                    write_all(m.as_raw_fd(), &buf[..r as usize]);
                }
            } else if let Some(m) = &master {
                // SAFETY: buf is writable for its length.
                let r = unsafe {
                    libc::read(
                        m.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                    )
                };
                if r <= 0 {
                    master_open = false;
                } else {
                    write_all(1, &buf[..r as usize]);
                }
            }
        }
    };
    if let Some(old) = restore {
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &old);
    }
    Ok(code)
}

fn drain(fd: i32, buf: &mut [u8]) {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
            return;
        }
        // SAFETY: buf is writable for its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if r <= 0 {
            return;
        }
        write_all(1, &buf[..r as usize]);
    }
}

fn write_all(fd: i32, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: b is a valid readable slice.
        let r = unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) };
        if r <= 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return;
        }
        b = &b[r as usize..];
    }
}
