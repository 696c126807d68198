//! OOM notifications for `events`: on v1 an eventfd registered for `memory.oom_control` through
//! `cgroup.event_control`; on v2 inotify on `memory.events`, counting `oom`/`oom_kill`.

use crate::{io_err, read_opt, Cgroup, Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// What a wait for OOM events saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// This many OOM events happened since the last wait.
    Oom(u64),
    /// Nothing happened before the timeout.
    Timeout,
    /// The cgroup is gone (the container was deleted).
    Gone,
}

enum Kind {
    V1 {
        efd: OwnedFd,
        _ctl: std::fs::File,
        dir: PathBuf,
    },
    V2 {
        ino: OwnedFd,
        events: PathBuf,
        last: u64,
    },
}

/// A registration for OOM events of one group.
pub struct OomNotifier {
    kind: Kind,
}

fn sys(what: &str) -> Error {
    Error::Sys {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

fn v2_count(events: &std::path::Path) -> Option<u64> {
    let s = read_opt(events)?;
    let mut oom = 0;
    let mut kill = 0;
    for l in s.lines() {
        let mut it = l.split_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("oom"), Some(v)) => oom = v,
            (Some("oom_kill"), Some(v)) => kill = v,
            _ => {}
        }
    }
    Some(oom.max(kill))
}

impl Cgroup {
    /// Register for OOM notifications of this group's memory controller.
    pub fn oom_notifier(&self) -> Result<OomNotifier> {
        if let Some(dir) = self.paths.get("memory") {
            // SAFETY: eventfd has no memory-safety preconditions.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(sys("eventfd for OOM notifications"));
            }
            // SAFETY: eventfd returned a fresh fd that nothing else owns.
            let efd = unsafe { OwnedFd::from_raw_fd(fd) };
            let ctl_path = dir.join("memory.oom_control");
            let ctl = std::fs::File::open(&ctl_path).map_err(|e| io_err(&ctl_path, e))?;
            crate::write_file(
                dir,
                "cgroup.event_control",
                &format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
            )?;
            return Ok(OomNotifier {
                kind: Kind::V1 {
                    efd,
                    _ctl: ctl,
                    dir: dir.clone(),
                },
            });
        }
        let dir = self
            .dir_of("memory")
            .ok_or_else(|| self.unavailable("memory"))?;
        let events = dir.join("memory.events");
        // SAFETY: inotify_init1 has no memory-safety preconditions.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(sys("inotify for OOM notifications"));
        }
        // SAFETY: inotify_init1 returned a fresh fd that nothing else owns.
        let ino = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Invalid(format!("bad path {}", events.display())))?;
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::inotify_add_watch(ino.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
            return Err(Error::Sys {
                what: format!("watch {}", events.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        let last = v2_count(&events).unwrap_or(0);
        Ok(OomNotifier {
            kind: Kind::V2 { ino, events, last },
        })
    }
}

impl OomNotifier {
    /// Wait up to `timeout` for OOM events.
    pub fn wait(&mut self, timeout: Duration) -> Result<OomEvent> {
        let fd = match &self.kind {
            Kind::V1 { efd, .. } => efd.as_raw_fd(),
            Kind::V2 { ino, .. } => ino.as_raw_fd(),
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is a valid pollfd array of length 1 for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(OomEvent::Timeout);
            }
            return Err(Error::Sys {
                what: "poll for OOM events".into(),
                source: e,
            });
        }
        if n == 0 {
            return Ok(OomEvent::Timeout);
        }
        match &mut self.kind {
            Kind::V1 { efd, dir, .. } => {
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer from our eventfd.
                let r = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                if r != 8 {
                    return Err(sys("read the OOM eventfd"));
                }
                // The kernel also signals the eventfd when the group is removed.
                if !dir.join("memory.oom_control").exists() {
                    return Ok(OomEvent::Gone);
                }
                Ok(OomEvent::Oom(u64::from_ne_bytes(buf)))
            }
            Kind::V2 { ino, events, last } => {
                let mut buf = [0u8; 4096];
                // SAFETY: reading into a buffer of the given size from our inotify fd.
                unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let Some(now) = v2_count(events) else {
                    return Ok(OomEvent::Gone);
                };
                let d = now.saturating_sub(*last);
                *last = now;
                Ok(if d > 0 {
                    OomEvent::Oom(d)
                } else {
                    OomEvent::Timeout
                })
            }
        }
    }
}
