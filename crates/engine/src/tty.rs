//! The local-terminal side of interactive containers and execs: docker's detach keys (parsing and
//! matching), raw mode on the user's terminal (restored on drop, on error and on a fatal signal),
//! window sizes, and the relay between our stdio and an exec's pty master.
//!
//! An interactive `exec -t` needs no monitor: the CLI itself receives the pty master (SCM_RIGHTS
//! from the process entering the container) and relays it with one `poll` loop, so output reaches
//! the terminal with no extra hop.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, Result};

/// docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The process exited with this code (128+signal when killed).
    Exited(i32),
    /// The user typed the detach sequence; the process keeps running.
    Detached,
    /// The other side went away without an exit code (a monitor that vanished).
    Closed,
}

/// Parses docker's `--detach-keys` syntax: comma-separated keys, each a single character or
/// `ctrl-@`, `ctrl-a`…`ctrl-z`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`, `ctrl-_`, or `DEL`. An
/// empty string means docker's default (ctrl-p,ctrl-q).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    if s.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let mut out = Vec::new();
    for key in s.split(',') {
        let b = key.as_bytes();
        let code = match b {
            [c] => Some(*c),
            _ if key == "DEL" => Some(127),
            [b'c', b't', b'r', b'l', b'-', c] => match c {
                b'@' => Some(0),
                b'a'..=b'z' => Some(c - b'a' + 1),
                b'[' => Some(27),
                b'\\' => Some(28),
                b']' => Some(29),
                b'^' => Some(30),
                b'_' => Some(31),
                _ => None,
            },
            _ => None,
        };
        match code {
            Some(c) => out.push(c),
            None => {
                return Err(Error::Invalid(format!(
                    "invalid detach keys ({s}): Unknown character: '{key}'"
                )))
            }
        }
    }
    Ok(out)
}

/// Finds the detach sequence in a stream of input. Bytes that could start the sequence are held
/// back; when the next byte does not continue it, the held bytes pass through with it, so a
/// prefix followed by another key reaches the container unchanged.
#[derive(Debug, Clone)]
pub struct Detacher {
    keys: Vec<u8>,
    held: usize,
}

impl Detacher {
    /// A matcher for `keys` (empty: never detaches).
    pub fn new(keys: &[u8]) -> Detacher {
        Detacher {
            keys: keys.to_vec(),
            held: 0,
        }
    }

    /// Appends to `out` what should be forwarded of `data`; true when the sequence was completed
    /// (whatever followed it in `data` is dropped, as the session ends).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return false;
        }
        for &b in data {
            if b != self.keys[self.held] && self.held > 0 {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
            }
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// True if `fd` is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// The window size (rows, cols) of the terminal on `fd`, if it is one and has a size.
pub fn size(fd: RawFd) -> Option<(u16, u16)> {
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

/// Sets the window size of the terminal (or pty master) on `fd`; the kernel signals SIGWINCH to
/// the foreground process group of its slave.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// The size of the user's terminal: stdin's, else stdout's.
pub fn local_size() -> Option<(u16, u16)> {
    size(0).or_else(|| size(1))
}

/// The settings to put back if a fatal signal arrives while a terminal is changed (read by the
/// signal handler; set once per change and never freed, so the handler can never see a dangling
/// pointer).
static SAVED: AtomicPtr<(RawFd, libc::termios)> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn restore_and_die(sig: libc::c_int) {
    let p = SAVED.load(Ordering::SeqCst);
    // SAFETY: `p` is null or a leaked, never-freed allocation made by `Terminal::change`;
    // tcsetattr, signal and raise are async-signal-safe.
    unsafe {
        if !p.is_null() {
            libc::tcsetattr((*p).0, libc::TCSANOW, &(*p).1);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Puts back the settings of the user's terminal when a signal that would kill us arrives
/// (signals blocked and waited for elsewhere, as by the signal proxy, never reach the handler).
fn restore_on_fatal_signals() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: sigaction queries and installs a handler with a zeroed (then filled) struct;
        // an ignored or caught signal is left alone.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = restore_and_die as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A change to the user's terminal, undone on drop (and by a fatal signal).
pub struct Terminal {
    fd: RawFd,
    old: libc::termios,
}

impl Terminal {
    fn change(fd: RawFd, edit: impl FnOnce(&mut libc::termios)) -> Option<Terminal> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid termios pointer; fails harmlessly if fd is no terminal.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let old = t;
        edit(&mut t);
        SAVED.store(Box::into_raw(Box::new((fd, old))), Ordering::SeqCst);
        restore_on_fatal_signals();
        // SAFETY: applies settings we own to a terminal fd.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
            SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
            return None;
        }
        Some(Terminal { fd, old })
    }

    /// Raw mode on `fd` (our stdin): every key, ctrl-c included, is a byte for the container.
    pub fn raw(fd: RawFd) -> Option<Terminal> {
        // SAFETY: cfmakeraw edits the struct it is given.
        Terminal::change(fd, |t| unsafe { libc::cfmakeraw(t) })
    }

    /// Output post-processing off on `fd` (our stdout), for a container tty whose line discipline
    /// already turned `\n` into `\r\n`; keys (and ctrl-c) keep working.
    pub fn raw_output(fd: RawFd) -> Option<Terminal> {
        Terminal::change(fd, |t| t.c_oflag &= !libc::OPOST)
    }

    /// The terminal set-up of a session with a container tty: raw stdin when it is forwarded
    /// and a terminal, else unprocessed output when stdout is a terminal.
    pub fn for_session(stdin: bool) -> Option<Terminal> {
        if stdin && isatty(0) {
            Terminal::raw(0)
        } else if isatty(1) {
            Terminal::raw_output(1)
        } else {
            None
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: restores the settings saved by `change`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.old) };
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writing from a live buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

fn read(fd: RawFd, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return n;
    }
}

/// Copies whatever the master has buffered to stdout, without waiting for more.
fn drain(master: RawFd, buf: &mut [u8]) {
    loop {
        let mut p = libc::pollfd {
            fd: master,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
            return;
        }
        let n = read(master, buf);
        if n <= 0 || !write_all(1, &buf[..n as usize]) {
            return;
        }
    }
}

/// Leaves a detached exec running: a child of ours keeps the pty master open (its process would
/// get SIGHUP if the master closed) and discards its output until the process is gone.
/// Must be called while this process is single-threaded.
fn hand_off(master: &OwnedFd) {
    // SAFETY: fork in a single-threaded process (the exec path starts no threads).
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return;
    }
    // SAFETY: in the forked child: SIGHUP ignored (our parent may exit, as the leader of the
    // user's terminal session, before we leave that session), a new session, stdio on
    // /dev/null, the default signal mask; then only reads until the slave side is gone, and _exit.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for t in 0..3 {
                libc::dup2(null, t);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let mut buf = [0u8; 4096];
        while read(master.as_raw_fd(), &mut buf) > 0 {}
        libc::_exit(0);
    }
}

/// Relays an exec's terminal until its process `pid` (our child, every signal blocked by
/// `skiff_runtime::exec::spawn`) exits, or the user types `detach_keys`: stdin (when `stdin`)
/// to the master through the detach matcher, the master to stdout, window sizes at start and on
/// SIGWINCH, and other signals forwarded to the process.
pub fn relay_exec(pid: i32, master: OwnedFd, stdin: bool, detach_keys: &[u8]) -> Result<Ended> {
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let sfd = SignalFd::with_flags(
        &SigSet::all(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .map_err(|e| Error::Other(format!("exec: signalfd: {e}")))?;
    let m = master.as_raw_fd();
    let _term = Terminal::for_session(stdin);
    if let Some((r, c)) = local_size() {
        set_size(m, r, c);
    }
    let mut keys = Detacher::new(detach_keys);
    let mut stdin_open = stdin;
    let mut master_open = true;
    let mut buf = vec![0u8; 32 * 1024];
    let mut fwd = Vec::with_capacity(buf.len());
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open { m } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            let n = read(m, &mut buf);
            if n <= 0 {
                // EIO: every slave fd is closed; the exit comes as SIGCHLD.
                master_open = false;
            } else {
                write_all(1, &buf[..n as usize]);
            }
        }
        if fds[2].revents != 0 {
            let n = read(0, &mut buf);
            if n <= 0 {
                stdin_open = false;
            } else {
                fwd.clear();
                let detach = keys.feed(&buf[..n as usize], &mut fwd);
                write_all(m, &fwd);
                if detach {
                    hand_off(&master);
                    return Ok(Ended::Detached);
                }
            }
        }
        if fds[0].revents != 0 {
            while let Ok(Some(si)) = sfd.read_signal() {
                let sig = si.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD => loop {
                        let mut st = 0;
                        // SAFETY: reaping any child without blocking; st is a valid out pointer.
                        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                        if r <= 0 {
                            break;
                        }
                        if r == pid {
                            if master_open {
                                drain(m, &mut buf);
                            }
                            return Ok(Ended::Exited(skiff_runtime::util::status_code(st)));
                        }
                    },
                    libc::SIGWINCH => {
                        if let Some((r, c)) = local_size() {
                            set_size(m, r, c);
                        }
                    }
                    _ => {
                        // SAFETY: kill with integer arguments.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-x,y").unwrap(), vec![24, b'y']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,DEL,a").unwrap(),
            vec![0, 27, 28, 29, 30, 31, 127, b'a']
        );
        for bad in ["shift-a", "ctrl-P", "ctrl-1", "ctrl-", "a,", "ab", "del"] {
            let e = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid detach keys ({bad}): ")),
                "{e}"
            );
        }
    }

    #[test]
    fn detacher_holds_a_prefix_and_passes_it_on_mismatch() {
        let mut d = Detacher::new(&[16, 17]);
        let mut out = Vec::new();
        assert!(!d.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!d.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        // A repeated first key: the first passes, the second may still start the sequence.
        assert!(!d.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10");
        assert!(d.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"\x10");
        let mut one = Detacher::new(b"x");
        out.clear();
        assert!(one.feed(b"abx", &mut out));
        assert_eq!(out, b"ab");
        let mut none = Detacher::new(&[]);
        out.clear();
        assert!(!none.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
