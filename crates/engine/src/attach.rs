//! The attach protocol between `skiff` (run/start -a/attach) and a container's monitor, over a unix
//! socket: frames of `[kind: u8][len: u32 BE][payload]`.
//!
//! Client → monitor: `HELLO` (payload: bit 0 stdin, bit 1 stdout, bit 2 stderr), `STDIN` data,
//! `STDIN_EOF`, `RESIZE` (rows u16 BE, cols u16 BE). Monitor → client: `STDOUT`, `STDERR` data and
//! `EXIT` (i32 BE code) once the container has stopped for good (and, with `--rm`, been removed).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::tty::{self, Detacher, Ended, Terminal};

/// Stdin data (client → monitor).
pub const STDIN: u8 = 0;
/// Stdout data (monitor → client).
pub const STDOUT: u8 = 1;
/// Stderr data (monitor → client).
pub const STDERR: u8 = 2;
/// Exit code (monitor → client).
pub const EXIT: u8 = 3;
/// Client closed its stdin.
pub const STDIN_EOF: u8 = 5;
/// Terminal size.
pub const RESIZE: u8 = 6;
/// First frame of a client: which streams it wants.
pub const HELLO: u8 = 7;

/// Encodes one frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reads one frame; `None` at EOF.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > 1 << 24 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "attach: frame too large",
        ));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p)?;
    Ok(Some((h[0], p)))
}

/// Path of a container's attach socket as a short `/proc/self/fd/N/attach.sock` (unix socket paths
/// are limited to 108 bytes), with the directory fd that keeps it valid.
pub fn short_path(dir: &std::path::Path) -> io::Result<(OwnedFd, String)> {
    let f = std::fs::File::open(dir)?;
    let fd: OwnedFd = f.into();
    let p = format!("/proc/self/fd/{}/attach.sock", fd.as_raw_fd());
    Ok((fd, p))
}

/// What an attaching client wants.
#[derive(Debug, Clone, Default)]
pub struct AttachOpts {
    /// Forward our stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
    /// The container has a tty (raw mode, resize, detach keys).
    pub tty: bool,
    /// The detach sequence (empty: docker's default, ctrl-p ctrl-q).
    pub detach_keys: Vec<u8>,
    /// Attaching to a running container: nudge its size (rows+1, cols+1, then the real size) so
    /// a full-screen program or a shell redraws, as docker does.
    pub redraw: bool,
}

/// The HELLO frame for `o`.
pub fn hello(o: &AttachOpts) -> Vec<u8> {
    let flags = (o.stdin as u8) | ((o.stdout as u8) << 1) | ((o.stderr as u8) << 2);
    frame(HELLO, &[flags])
}

fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &p)
}

/// Blocks SIGWINCH in the calling thread (and the threads it starts later), so that only the
/// signalfd of [`stream_after_hello`] receives it. Call before starting other threads.
pub fn block_winch() {
    // SAFETY: building a signal set and adding it to this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Streams between our stdio and the monitor until the container exits, the user detaches, or
/// the monitor goes away.
pub fn stream(sock: UnixStream, o: AttachOpts) -> io::Result<Ended> {
    (&sock).write_all(&hello(&o))?;
    stream_after_hello(sock, o)
}

/// [`stream`] for a socket whose HELLO was already sent (the pre-connected foreground client).
/// With a tty: our terminal in raw mode (stdin forwarded) or without output processing, window
/// sizes at start and on SIGWINCH, and the detach keys matched in stdin.
pub fn stream_after_hello(sock: UnixStream, o: AttachOpts) -> io::Result<Ended> {
    let mut w = sock.try_clone()?;
    block_winch();
    let winch = if o.tty {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        nix::sys::signalfd::SignalFd::with_flags(
            &set,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )
        .ok()
    } else {
        None
    };
    let _term = if o.tty {
        Terminal::for_session(o.stdin)
    } else {
        None
    };
    if o.tty {
        if let Some((r, c)) = tty::local_size() {
            if o.redraw {
                w.write_all(&resize_frame(r.saturating_add(1), c.saturating_add(1)))?;
            }
            w.write_all(&resize_frame(r, c))?;
        }
    }
    let detached = Arc::new(AtomicBool::new(false));
    if o.stdin || winch.is_some() {
        let tty = o.tty;
        let stdin = o.stdin;
        let detach_sock = sock.try_clone()?;
        let detached = detached.clone();
        let mut keys = Detacher::new(if !tty {
            &[]
        } else if o.detach_keys.is_empty() {
            tty::DEFAULT_DETACH_KEYS
        } else {
            &o.detach_keys
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut fwd = Vec::with_capacity(buf.len());
            let mut stdin_open = stdin;
            loop {
                let winch_fd = winch.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
                if !stdin_open && winch_fd < 0 {
                    return;
                }
                let mut p = [
                    libc::pollfd {
                        fd: if stdin_open { 0 } else { -1 },
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: winch_fd,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: a valid array of pollfd of the given length.
                if unsafe { libc::poll(p.as_mut_ptr(), 2, -1) } <= 0 {
                    continue;
                }
                if p[1].revents != 0 {
                    if let Some(f) = &winch {
                        while let Ok(Some(_)) = f.read_signal() {}
                    }
                    if let Some((r, c)) = tty::local_size() {
                        if w.write_all(&resize_frame(r, c)).is_err() {
                            return;
                        }
                    }
                }
                if p[0].revents == 0 {
                    continue;
                }
                // SAFETY: reading into a buffer we own from fd 0.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    let _ = w.write_all(&frame(STDIN_EOF, &[]));
                    stdin_open = false;
                    continue;
                }
                fwd.clear();
                let detach = keys.feed(&buf[..n as usize], &mut fwd);
                if !fwd.is_empty() && w.write_all(&frame(STDIN, &fwd)).is_err() {
                    return;
                }
                if detach {
                    detached.store(true, Ordering::SeqCst);
                    let _ = detach_sock.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        });
    }
    let mut r = io::BufReader::new(sock);
    let mut out = io::stdout();
    let mut err = io::stderr();
    let gone = || {
        if detached.load(Ordering::SeqCst) {
            Ended::Detached
        } else {
            Ended::Closed
        }
    };
    loop {
        match read_frame(&mut r) {
            Ok(Some((STDOUT, d))) => {
                out.write_all(&d)?;
                out.flush()?;
            }
            Ok(Some((STDERR, d))) => {
                err.write_all(&d)?;
                err.flush()?;
            }
            Ok(Some((EXIT, d))) if d.len() == 4 => {
                return Ok(Ended::Exited(i32::from_be_bytes([d[0], d[1], d[2], d[3]])))
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Ok(gone()),
        }
    }
}
