//! Placing a new process in its group without the kernel's global migration lock.
//!
//! Writing a pid to `cgroup.procs` migrates a whole thread group: the kernel write-locks
//! `cgroup_threadgroup_rwsem`, a per-cpu rwsem whose first writer after a quiet period waits for an
//! RCU grace period (5-20 ms on this 250 Hz host, longer than the rest of a container start). Two
//! ways in skip that lock, and a process can use them for itself only:
//! - v1: a single-threaded process writes `0` (itself, one thread) to each hierarchy's `tasks` file
//!   ([`Cgroup::open_tasks`], then [`Cgroup::join_tasks`] in the new process);
//! - v2: `clone3(CLONE_INTO_CGROUP)` creates the child directly inside the unified group
//!   ([`Cgroup::open_unified`]).
//!
//! The kernel checks a `tasks` write against the credentials of whoever opened the file, so the new
//! process needs no access of its own to the host's cgroup tree: the runtime opens the files and
//! passes the descriptors.

use crate::{Cgroup, Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    /// The distinct v1 directories of the group (every directory but the unified one), in the
    /// order [`Cgroup::open_tasks`] and [`Cgroup::join_tasks`] use.
    pub fn v1_dirs(&self) -> Vec<&Path> {
        let unified = self.paths.get("unified").map(|p| p.as_path());
        self.dirs()
            .into_iter()
            .filter(|d| Some(*d) != unified)
            .collect()
    }

    /// The unified directory opened `O_PATH`, for `clone3(CLONE_INTO_CGROUP)`; `None` without one.
    pub fn open_unified(&self) -> Result<Option<OwnedFd>> {
        match self.paths.get("unified") {
            Some(d) => open(d, libc::O_PATH | libc::O_DIRECTORY).map(Some),
            None => Ok(None),
        }
    }

    /// Each v1 directory's `tasks` file opened for writing, in [`Cgroup::v1_dirs`] order.
    pub fn open_tasks(&self) -> Result<Vec<OwnedFd>> {
        self.v1_dirs()
            .into_iter()
            .map(|d| open(&d.join("tasks"), libc::O_WRONLY))
            .collect()
    }

    /// In the new process: move the calling thread into every v1 hierarchy by writing `0` to the
    /// `tasks` descriptors from [`Cgroup::open_tasks`]. Only correct in a single-threaded process
    /// (it moves this thread, not its siblings).
    pub fn join_tasks(&self, fds: &[OwnedFd]) -> Result<()> {
        let dirs = self.v1_dirs();
        if dirs.len() != fds.len() {
            return Err(Error::Invalid(format!(
                "cgroup: {} tasks descriptors for {} v1 hierarchies",
                fds.len(),
                dirs.len()
            )));
        }
        for (dir, fd) in dirs.iter().zip(fds) {
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

    /// Move `pid` into the unified directory only, through `cgroup.procs` (for when
    /// `CLONE_INTO_CGROUP` was refused); this write takes the global migration lock.
    pub fn add_process_unified(&self, pid: i32) -> Result<()> {
        match self.paths.get("unified") {
            Some(d) => crate::write_file(d, "cgroup.procs", &pid.to_string()),
            None => Ok(()),
        }
    }

    /// Move `pid` into the v1 directories only, through `cgroup.procs`.
    pub fn add_process_v1(&self, pid: i32) -> Result<()> {
        for d in self.v1_dirs() {
            crate::write_file(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }
}
