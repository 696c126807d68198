//! Placing a new process in its group without the kernel's global migration lock.
//!
//! Writing a pid to `cgroup.procs` migrates a whole thread group: the kernel write-locks
//! `cgroup_threadgroup_rwsem`, a per-cpu rwsem whose first writer after a quiet period waits for an
//! RCU grace period (5-20 ms on this 250 Hz host, longer than the rest of a container start). Two
//! ways in skip that lock, and a process can use them for itself only:
//! - v1: a single-threaded process writes `0` (itself, one thread) to each hierarchy's `tasks` file;
//! - v2: `clone3(CLONE_INTO_CGROUP)` creates the child directly inside the unified group.
//!
//! [`Placement`] holds the descriptors for both, opened by the runtime before it clones the
//! container's init. The kernel checks a `tasks` write against the credentials of whoever opened
//! the file, so the init needs no access of its own to the host's cgroup tree.

use crate::{Cgroup, Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Open descriptors to place one new process in a group (see the module documentation).
#[derive(Debug, Default)]
pub struct Placement {
    /// Each v1 directory and its `tasks` file, opened for writing.
    tasks: Vec<(PathBuf, OwnedFd)>,
    /// The unified (cgroup2) directory, opened `O_PATH` for `CLONE_INTO_CGROUP`.
    unified: Option<OwnedFd>,
}

fn open(path: &Path, flags: i32) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("cgroup path {} contains a NUL", path.display())))?;
    // SAFETY: `c` is a valid C string; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(crate::io_err(path, std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Cgroup {
    /// Open what a new process needs to join this (already created) group by itself.
    pub fn placement(&self) -> Result<Placement> {
        let mut p = Placement::default();
        let unified = self.paths.get("unified");
        for d in self.dirs() {
            if Some(&d.to_path_buf()) == unified {
                p.unified = Some(open(d, libc::O_PATH | libc::O_DIRECTORY)?);
            } else {
                let fd = open(&d.join("tasks"), libc::O_WRONLY)?;
                p.tasks.push((d.to_path_buf(), fd));
            }
        }
        Ok(p)
    }

    /// Move `pid` into the unified directory only, through `cgroup.procs` (for when
    /// `CLONE_INTO_CGROUP` was refused); this write takes the global migration lock.
    pub fn add_process_unified(&self, pid: i32) -> Result<()> {
        match self.paths.get("unified") {
            Some(d) => crate::write_file(d, "cgroup.procs", &pid.to_string()),
            None => Ok(()),
        }
    }
}

impl Placement {
    /// The unified directory's descriptor, for `clone3(CLONE_INTO_CGROUP)`.
    pub fn unified_fd(&self) -> Option<RawFd> {
        self.unified.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Move the calling thread into every v1 hierarchy of the group by writing `0` to `tasks`.
    /// Only correct in a single-threaded process (it moves this thread, not its siblings).
    pub fn join_v1_self(&self) -> Result<()> {
        for (dir, fd) in &self.tasks {
            // SAFETY: writing one byte from a static buffer to a descriptor we own.
            let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if n != 1 {
                return Err(Error::Write {
                    file: dir.join("tasks"),
                    value: "0".into(),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }
}
