//! The parent ↔ container-init channel: a SOCK_SEQPACKET socketpair carrying small tagged messages
//! (one datagram each) and, when needed, a file descriptor via SCM_RIGHTS.

use crate::error::{Error, Result};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most fds one message carries (the v1 `tasks` files of a cgroup: at most one per controller).
pub const MAX_FDS: usize = 16;

/// One end of the sync channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Messages exchanged during create/exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: uid/gid maps written and cgroup joined; continue.
    Go,
    /// Child → parent: please write the uid/gid maps for me (slow path after unshare).
    MapRequest,
    /// Child (intermediate) → parent: the pid of the container init.
    Pid(i32),
    /// Child → parent: rootfs prepared; run prestart/createRuntime hooks.
    HooksRequest,
    /// Parent → child: hooks done.
    HooksDone,
    /// Child → parent: seccomp notify fd attached.
    SeccompFd,
    /// Child → parent: setup complete; waiting for `start`.
    Ready,
    /// Parent → child: our cgroup is ready; the attached fds (maybe none) are the v1 `tasks`
    /// files to write ourselves into (see skiff_cgroups::Cgroup::join_tasks).
    Place,
    /// Either way: a fatal error, with its message.
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Go => b"G".to_vec(),
            Msg::MapRequest => b"M".to_vec(),
            Msg::Pid(p) => format!("P{p}").into_bytes(),
            Msg::HooksRequest => b"H".to_vec(),
            Msg::HooksDone => b"h".to_vec(),
            Msg::SeccompFd => b"S".to_vec(),
            Msg::Ready => b"R".to_vec(),
            Msg::Place => b"C".to_vec(),
            Msg::Error(e) => format!("E{e}").into_bytes(),
        }
    }

    fn decode(b: &[u8]) -> Result<Msg> {
        let rest = String::from_utf8_lossy(b.get(1..).unwrap_or_default()).into_owned();
        Ok(match b.first() {
            Some(b'G') => Msg::Go,
            Some(b'M') => Msg::MapRequest,
            Some(b'P') => Msg::Pid(
                rest.parse()
                    .map_err(|_| Error::Other("sync: bad pid".into()))?,
            ),
            Some(b'H') => Msg::HooksRequest,
            Some(b'h') => Msg::HooksDone,
            Some(b'S') => Msg::SeccompFd,
            Some(b'R') => Msg::Ready,
            Some(b'C') => Msg::Place,
            Some(b'E') => Msg::Error(rest),
            _ => {
                return Err(Error::Other(
                    "sync: unexpected message from container process".into(),
                ))
            }
        })
    }
}

/// Create a connected pair (parent end, child end), both close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Sys {
        what: "socketpair".into(),
        errno: e,
    })?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Wrap an inherited raw fd.
    ///
    /// # Safety
    /// `fd` must be an open socket owned by nobody else.
    pub unsafe fn from_raw(fd: RawFd) -> Channel {
        // SAFETY: the caller guarantees exclusive ownership of an open fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Channel { fd }
    }

    /// The raw descriptor (for keeping it across fd cleanup).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Send a message, optionally with one fd.
    pub fn send(&self, m: &Msg, fd: Option<RawFd>) -> Result<()> {
        match fd {
            Some(f) => self.send_fds(m, &[f]),
            None => self.send_fds(m, &[]),
        }
    }

    /// Send a message with any number (up to [`MAX_FDS`]) of fds.
    pub fn send_fds(&self, m: &Msg, fds: &[RawFd]) -> Result<()> {
        let data = m.encode();
        let iov = [std::io::IoSlice::new(&data)];
        let cmsg: Vec<ControlMessage> = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: "sync: send".into(),
                        errno: e,
                    })
                }
            }
        }
    }

    /// Receive one message (and an fd if one was attached). EOF is reported as an error.
    pub fn recv(&self) -> Result<(Msg, Option<OwnedFd>)> {
        self.recv_or_eof()?
            .ok_or_else(|| Error::Other("container process exited during setup".into()))
    }

    /// Receive one message, or `None` at EOF (every copy of the other end closed, e.g. by the
    /// close-on-exec of the peer's execve).
    pub fn recv_or_eof(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        Ok(self.recv_fds()?.map(|(m, mut fds)| (m, fds.pop())))
    }

    /// Receive one message with every fd attached to it, or `None` at EOF.
    pub fn recv_fds(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; 8192];
        let mut cspace = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cspace),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = Vec::new();
                    if let Ok(cms) = r.cmsgs() {
                        for c in cms {
                            if let ControlMessageOwned::ScmRights(v) = c {
                                for f in v {
                                    // SAFETY: the kernel just installed this fd for us; we own it.
                                    fds.push(unsafe { OwnedFd::from_raw_fd(f) });
                                }
                            }
                        }
                    }
                    break (r.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: "sync: recv".into(),
                        errno: e,
                    })
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((Msg::decode(&buf[..n])?, fds)))
    }

    /// Receive and require `want`, returning every fd attached to it.
    pub fn expect_fds(&self, want: &Msg) -> Result<Vec<OwnedFd>> {
        match self.recv_fds()? {
            Some((m, fds)) if &m == want => Ok(fds),
            Some((Msg::Error(e), _)) => Err(Error::Other(e)),
            Some((m, _)) => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
            None => Err(Error::Other("container process exited during setup".into())),
        }
    }

    /// Receive and require a specific message; an Error message becomes an Err.
    pub fn expect(&self, want: &Msg) -> Result<Option<OwnedFd>> {
        match self.recv()? {
            (m, fd) if &m == want => Ok(fd),
            (Msg::Error(e), _) => Err(Error::Other(e)),
            (m, _) => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
        }
    }
}
