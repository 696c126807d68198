//! Files skiff writes at a path the user names (`save -o`, `export -o`, `generate-man`'s pages,
//! `cp`'s host destination). Docker's rule (moby/sys `atomicwriter`, used by the CLI's `save` and
//! `export`): the final component is looked at with `lstat` and only a regular file (without
//! setuid, setgid or sticky bits) or nothing may be there; a symbolic link, directory, FIFO,
//! socket or device node is refused with a one-line reason, so `save -o /dev/null` can never
//! replace the host's `/dev/null`. The data goes to a temp file created in the same directory with
//! `O_EXCL | O_NOFOLLOW` and an explicit mode, is fsynced, and is renamed over the name only after
//! the name has been checked again (`RENAME_NOREPLACE` when it was absent), so a failed write
//! leaves whatever was there untouched and never a partial file.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use skiff_image::sys;

use crate::error::{Error, Result};

/// Why a non-regular file at an output path is refused (docker's atomicwriter wording), or
/// `None` when a write may replace it.
pub fn refusal(st: &libc::stat) -> Option<&'static str> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG if st.st_mode & libc::S_ISUID != 0 => Some("cannot write to a setuid file"),
        libc::S_IFREG if st.st_mode & libc::S_ISGID != 0 => Some("cannot write to a setgid file"),
        libc::S_IFREG if st.st_mode & libc::S_ISVTX != 0 => {
            Some("cannot write to a sticky bit file")
        }
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("cannot write to a directory"),
        libc::S_IFLNK => Some("cannot write to a symbolic link directly"),
        libc::S_IFIFO => Some("cannot write to a named pipe (FIFO)"),
        libc::S_IFSOCK => Some("cannot write to a socket"),
        libc::S_IFCHR => Some("cannot write to a character device file"),
        libc::S_IFBLK => Some("cannot write to a block device file"),
        _ => Some("cannot write to a file of unknown type"),
    }
}

/// Splits a user's output path into its directory and last name; a path that names a directory
/// by its form (`/`, `x/`, `x/.`, `..`) or is empty is refused.
fn split(path: &Path) -> Result<(PathBuf, OsString)> {
    let invalid =
        |why: &str| Error::Invalid(format!("output {:?}: {why}", path.display().to_string()));
    if path.as_os_str().is_empty() {
        return Err(invalid("file name is empty"));
    }
    let bytes = path.as_os_str().as_bytes();
    if bytes.ends_with(b"/") || bytes.ends_with(b"/.") || bytes == b"." {
        return Err(invalid("cannot write to a directory"));
    }
    match (path.components().next_back(), path.parent()) {
        (Some(Component::Normal(name)), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_path_buf()
            };
            Ok((parent, name.to_os_string()))
        }
        _ => Err(invalid("cannot write to a directory")),
    }
}

/// Opens the directory an output goes into (following symlinks: the user named it).
fn open_parent(path: &Path, parent: &Path) -> Result<OwnedFd> {
    sys::open_dir(parent).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::ENOTDIR) {
            format!("{:?} is not a directory", parent.display().to_string())
        } else {
            format!("directory {:?}: {e}", parent.display().to_string())
        };
        Error::Invalid(format!(
            "output {:?}: invalid output path: {why}",
            path.display().to_string()
        ))
    })
}

/// Checks what is at `name` in `dir` now: `Ok(true)` a regular file a write may replace,
/// `Ok(false)` nothing; anything else is refused naming `path`.
fn check_target(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<bool> {
    let st = sys::lstatat(dir, name).map_err(|source| Error::Io {
        what: format!("output {:?}", path.display().to_string()),
        source,
    })?;
    match st {
        None => Ok(false),
        Some(st) => match refusal(&st) {
            None => Ok(true),
            Some(why) => Err(Error::Invalid(format!(
                "output {:?}: {why}",
                path.display().to_string()
            ))),
        },
    }
}

/// Checks that `path` may be written as an output file (absent, or a regular file) without
/// creating anything: for commands that check before they do the work, as docker's do.
pub fn check(path: &Path) -> Result<()> {
    let (parent, name) = split(path)?;
    let dir = open_parent(path, &parent)?;
    check_target(dir.as_fd(), &name, path).map(drop)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An output file being written: a temp file beside the target that becomes the target on
/// [`OutputFile::commit`] and is removed if dropped uncommitted.
pub struct OutputFile {
    dir: OwnedFd,
    name: OsString,
    tmp: OsString,
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
}

impl OutputFile {
    /// Checks `path` (see the module documentation) and creates the temp file with `mode`
    /// (exactly, whatever the umask).
    pub fn create(path: &Path, mode: u32) -> Result<OutputFile> {
        let (parent, name) = split(path)?;
        let dir = open_parent(path, &parent)?;
        check_target(dir.as_fd(), &name, path)?;
        let io_err = |source| Error::Io {
            what: format!("output {:?}: create temp file", path.display().to_string()),
            source,
        };
        let mut attempt = 0;
        let (tmp, fd) = loop {
            // A short name of its own, so a target name near NAME_MAX still fits.
            let tmp = OsString::from(format!(
                ".skiff-out-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match sys::openat(
                dir.as_fd(),
                &tmp,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                mode,
            ) {
                Ok(fd) => break (tmp, fd),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(io_err(e)),
            }
        };
        let file = File::from(fd);
        let fchmod = sys::fchmod(file.as_fd(), mode);
        let out = OutputFile {
            dir,
            name,
            tmp,
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            path: path.to_path_buf(),
        };
        // On error `out` is dropped, which removes the temp file.
        fchmod.map_err(io_err)?;
        Ok(out)
    }

    /// The path the user named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs the temp file and renames it over the target, which must still be a
    /// regular file or absent.
    pub fn commit(mut self) -> Result<()> {
        let what = format!("output {:?}", self.path.display().to_string());
        let w = self
            .file
            .take()
            .ok_or_else(|| Error::Other(format!("{what}: already committed")))?;
        let f = w.into_inner().map_err(|e| Error::Io {
            what: what.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(|source| Error::Io {
            what: what.clone(),
            source,
        })?;
        drop(f);
        // The name may have changed since `create`: check it again, and when it was absent let
        // the kernel refuse to replace whatever appeared since.
        for _ in 0..4 {
            let replace = check_target(self.dir.as_fd(), &self.name, &self.path)?;
            let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
            match renameat2(self.dir.as_fd(), &self.tmp, &self.name, flags) {
                Ok(()) => {
                    // The temp name is gone; nothing is left for Drop to remove.
                    self.tmp.clear();
                    // SAFETY: syncfs/fsync on a valid descriptor; best effort (O_PATH fds fail).
                    let _ = unsafe { libc::fsync(self.dir.as_raw_fd()) };
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(Error::Io { what, source }),
            }
        }
        Err(Error::Invalid(format!("{what}: the file keeps changing")))
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("output already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.tmp.is_empty() {
            let _ = sys::unlinkat(self.dir.as_fd(), &self.tmp, false);
        }
    }
}

/// `renameat2(dir, from, dir, to, flags)`.
fn renameat2(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr, flags: u32) -> io::Result<()> {
    let cstr = |s: &OsStr| {
        std::ffi::CString::new(s.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: a valid directory descriptor and two NUL-terminated names.
    let r = unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            f.as_ptr(),
            dir.as_raw_fd(),
            t.as_ptr(),
            flags,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `name` in `dir` as `O_PATH | O_NOFOLLOW` (the object itself, never a symlink's target).
pub(crate) fn open_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: a valid dirfd and a NUL-terminated name; the result is checked and owned.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is freshly opened and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets the mode of `name` in `dir` (a device node, FIFO or socket just created) exactly, without
/// following a symlink: through an `O_PATH` descriptor and its `/proc/self/fd` entry.
pub(crate) fn chmod_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let fd = open_nofollow(dir, name)?;
    // SAFETY: zeroed stat is a valid out-buffer; fstat on a valid O_PATH descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Ok(());
    }
    let p = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::other("fd path"))?;
    // SAFETY: a NUL-terminated path naming our own descriptor (not a symlink: checked above).
    if unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(path: &Path, data: &[u8]) -> Result<()> {
        let mut f = OutputFile::create(path, 0o600)?;
        f.write_all(data).unwrap();
        f.commit()
    }

    #[test]
    fn writes_new_and_replaces_regular_files_only() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out");
        run(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        run(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );

        let target = t.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = run(&link, b"x").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());

        let e = run(t.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let e = run(&t.path().join("missing/out"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid output path"), "{e}");
        // Nothing but what the test made is left in the directory.
        let mut names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["link", "out", "target"]);
    }

    #[test]
    fn dropped_output_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out");
        std::fs::write(&p, b"old").unwrap();
        {
            let mut f = OutputFile::create(&p, 0o600).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
