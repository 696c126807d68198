//! Per-container locks: an exclusive `flock` on `<root>/containers/<id>/lock`, held while a command
//! changes the container's state, so many `skiff` processes at once serialize per container.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{IoCtx, Result};

/// A held lock; released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}

fn open(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .mode(skiff_image::perms::PRIVATE_FILE)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn flock(f: &File, op: i32) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

impl Lock {
    /// Creates the lock file of a new container and takes it.
    pub fn create(path: &Path) -> Result<Lock> {
        let f = open(path, true).ctx(|| format!("create lock {}", path.display()))?;
        flock(&f, libc::LOCK_EX).ctx(|| format!("lock {}", path.display()))?;
        Ok(Lock { _file: f })
    }
    /// Waits for the exclusive lock of an existing container (its lock file must exist).
    pub fn acquire(path: &Path) -> Result<Lock> {
        let f = open(path, false).ctx(|| format!("open lock {}", path.display()))?;
        flock(&f, libc::LOCK_EX).ctx(|| format!("lock {}", path.display()))?;
        Ok(Lock { _file: f })
    }
    /// Takes the lock only if nobody holds it; `None` also when the lock file is gone (the
    /// container was removed).
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        let f = match open(path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(crate::Error::Io {
                    what: format!("open lock {}", path.display()),
                    source: e,
                })
            }
        };
        if flock(&f, libc::LOCK_EX | libc::LOCK_NB).ctx(|| format!("lock {}", path.display()))? {
            Ok(Some(Lock { _file: f }))
        } else {
            Ok(None)
        }
    }
}
