//! The attach protocol between `skiff` (run/start -a/attach) and a container's monitor, over a unix
//! socket: frames of `[kind: u8][len: u32 BE][payload]`.
//!
//! Client → monitor: `HELLO` (payload: bit 0 stdin, bit 1 stdout, bit 2 stderr), `STDIN` data,
//! `STDIN_EOF`, `RESIZE` (rows u16 BE, cols u16 BE). Monitor → client: `STDOUT`, `STDERR` data and
//! `EXIT` (i32 BE code) once the container has stopped for good (and, with `--rm`, been removed).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

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
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOpts {
    /// Forward our stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
    /// The container has a tty (raw mode, resize, ctrl-p ctrl-q detaches).
    pub tty: bool,
}

/// The HELLO frame for `o`.
pub fn hello(o: &AttachOpts) -> Vec<u8> {
    let flags = (o.stdin as u8) | ((o.stdout as u8) << 1) | ((o.stderr as u8) << 2);
    frame(HELLO, &[flags])
}

fn winsize(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we pass.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
        Some((ws.ws_row, ws.ws_col))
    } else {
        None
    }
}

fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &p)
}

/// Raw mode on our terminal for the life of the guard.
struct RawMode {
    old: Option<libc::termios>,
}

impl RawMode {
    fn enter(fd: i32) -> RawMode {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and termios pointer.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return RawMode { old: None };
        }
        let old = t;
        // SAFETY: cfmakeraw edits the struct we own; tcsetattr applies it.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        RawMode { old: Some(old) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(old) = self.old {
            // SAFETY: restores the settings saved by `enter`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &old) };
        }
    }
}

/// Streams between our stdio and the monitor until the container exits (`Ok(Some(code))`), the user
/// detaches with ctrl-p ctrl-q (`Ok(None)`), or the monitor goes away (`Ok(None)`).
pub fn stream(sock: UnixStream, o: AttachOpts) -> io::Result<Option<i32>> {
    (&sock).write_all(&hello(&o))?;
    stream_after_hello(sock, o)
}

/// [`stream`] for a socket whose HELLO was already sent (the pre-connected foreground client).
pub fn stream_after_hello(sock: UnixStream, o: AttachOpts) -> io::Result<Option<i32>> {
    let mut w = sock.try_clone()?;
    // SAFETY: isatty on fd 0.
    let stdin_tty = unsafe { libc::isatty(0) } == 1;
    let _raw = (o.tty && o.stdin && stdin_tty).then(|| RawMode::enter(0));
    if o.tty {
        if let Some((r, c)) = winsize(0).or_else(|| winsize(1)) {
            w.write_all(&resize_frame(r, c))?;
        }
    }
    if o.stdin {
        let tty = o.tty;
        let detach_sock = sock.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut last_size = winsize(0);
            let mut saw_ctrl_p = false;
            loop {
                let mut p = libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, 200) };
                if tty {
                    let now = winsize(0);
                    if now != last_size {
                        last_size = now;
                        if let Some((r, c)) = now {
                            if w.write_all(&resize_frame(r, c)).is_err() {
                                return;
                            }
                        }
                    }
                }
                if r <= 0 {
                    continue;
                }
                // SAFETY: reading into a buffer we own from fd 0.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    let _ = w.write_all(&frame(STDIN_EOF, &[]));
                    return;
                }
                let data = &buf[..n as usize];
                if tty {
                    // ctrl-p ctrl-q detaches, as in docker.
                    for &b in data {
                        if saw_ctrl_p && b == 0x11 {
                            let _ = detach_sock.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        saw_ctrl_p = b == 0x10;
                    }
                }
                if w.write_all(&frame(STDIN, data)).is_err() {
                    return;
                }
            }
        });
    }
    let mut r = io::BufReader::new(sock);
    let mut out = io::stdout();
    let mut err = io::stderr();
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
                return Ok(Some(i32::from_be_bytes([d[0], d[1], d[2], d[3]])))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(_) => return Ok(None),
        }
    }
}
