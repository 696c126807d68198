//! A container's filesystem from the host: `cp` in both directions, `export`, and the tar walker and
//! extractor they share. Every path inside a container is resolved with `openat2(RESOLVE_IN_ROOT)`
//! against a descriptor of its rootfs, and every final component is handled with `*at` calls that
//! never follow a symlink, so a container's symlink (`/tmp/x -> /etc`, `../../..`) can never make
//! skiff read or write a host file. A stopped container's overlay is mounted for the duration of
//! the operation (under its lock) and unmounted afterwards; a running one is reached through its
//! init's `/proc/<pid>/root`, so its volumes and tmpfs mounts are part of what `cp` sees.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use skiff_image::sys;

use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::{proc, Container, Engine};

/// A container's merged filesystem, mounted for as long as this lives.
pub struct MountedRoot {
    /// The container.
    pub container: Container,
    /// A descriptor of the merged rootfs directory.
    pub root: OwnedFd,
    rootfs: PathBuf,
    unmount: bool,
    _lock: Option<Lock>,
}

impl Drop for MountedRoot {
    fn drop(&mut self) {
        if self.unmount {
            proc::unmount(&self.rootfs);
        }
    }
}

impl Engine {
    /// Opens the merged filesystem of the container named by `s`: the live overlay of a running
    /// container (with `with_mounts`, its init's root, which also shows its volumes and tmpfs
    /// mounts), or a temporary mount of a stopped one (held under its lock until dropped).
    pub fn mount_root(&self, s: &str, with_mounts: bool) -> Result<MountedRoot> {
        let c = self.container(s)?;
        let lock = if c.is_active() {
            None
        } else {
            Some(
                Lock::acquire(&self.lock_path(&c.id))
                    .map_err(|_| Error::NoSuchContainer(s.into()))?,
            )
        };
        // Read the state again under the lock: it may have started meanwhile.
        let c = self.container(&c.id)?;
        let dir = self.container_dir(&c.id);
        let rootfs = dir.join("rootfs");
        let mut unmount = false;
        if !proc::is_mountpoint(&rootfs) {
            if c.is_active() {
                return Err(Error::State(format!(
                    "container {}: root filesystem is not mounted",
                    c.name
                )));
            }
            let lowers: Vec<PathBuf> = c.lower_dirs.iter().map(PathBuf::from).collect();
            skiff_image::overlay::mount_overlay(
                &lowers,
                &dir.join("upper"),
                &dir.join("work"),
                &rootfs,
            )?;
            unmount = true;
        }
        // A running container is reached through its init's root, so its volumes, binds and
        // tmpfs mounts are seen as inside the container; the init is checked again after the
        // open so a recycled pid cannot stand in for it.
        if c.is_active() && with_mounts {
            if let Ok(st) = self.live_init(&c.id) {
                if st.init_alive() {
                    if let Ok(fd) = sys::open_dir(Path::new(&format!("/proc/{}/root", st.pid))) {
                        if st.init_alive() {
                            return Ok(MountedRoot {
                                container: c,
                                root: fd,
                                rootfs,
                                unmount,
                                _lock: lock,
                            });
                        }
                    }
                }
            }
        }
        let root = match sys::open_dir(&rootfs) {
            Ok(fd) => fd,
            Err(e) => {
                if unmount {
                    proc::unmount(&rootfs);
                }
                return Err(Error::Io {
                    what: format!("open {}", rootfs.display()),
                    source: e,
                });
            }
        };
        Ok(MountedRoot {
            container: c,
            root,
            rootfs,
            unmount,
            _lock: lock,
        })
    }
}

/// Splits a user path into components below a root: leading `/` dropped, `.` skipped. `..` is kept
/// (RESOLVE_IN_ROOT clamps it at the root).
fn rel(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => out.push(".."),
            _ => {}
        }
    }
    out
}

/// Where an object is: a directory descriptor and a single name in it (`.` for the directory
/// itself, when the path has no last name such as `/` or `a/..`).
struct Loc {
    dir: OwnedFd,
    name: OsString,
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `readlinkat(dir, name)`.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid dirfd, NUL-terminated name and a writable buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsStr::from_bytes(&buf).to_os_string())
}

/// Resolves `path` (relative, below `root`) to its parent directory and last name; intermediate
/// symlinks resolve inside `root`; the last one is followed (inside `root`) only with `follow`.
fn locate(root: BorrowedFd<'_>, path: &Path, follow: bool) -> io::Result<Loc> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) if path.components().next_back() != Some(Component::ParentDir) => {
                (p.to_path_buf(), n.to_os_string())
            }
            _ => {
                let dir = sys::open_in_root(root, &path, libc::O_PATH | libc::O_DIRECTORY, 0)?;
                return Ok(Loc {
                    dir,
                    name: ".".into(),
                });
            }
        };
        let dir = sys::open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        if follow {
            if let Some(st) = sys::lstatat(dir.as_fd(), &name)? {
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    let target = readlinkat(dir.as_fd(), &name)?;
                    let t = Path::new(&target);
                    path = if t.is_absolute() {
                        rel(&t.to_string_lossy())
                    } else {
                        parent.join(t)
                    };
                    continue;
                }
            }
        }
        return Ok(Loc { dir, name });
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// The file type bits of a stat.
fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// The extended attributes of an open file (overlayfs' own ones left out), for `SCHILY.xattr.*`
/// PAX records: file capabilities and ACLs survive `commit` and `export`.
pub(crate) fn xattrs_of(fd: BorrowedFd<'_>) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    // SAFETY: valid fd and a writable buffer of the given length.
    let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names
        .split(|b| *b == 0)
        .filter(|k| !k.is_empty())
        .filter_map(|k| std::str::from_utf8(k).ok())
        .filter(|k| !k.starts_with("trusted.overlay.") && !k.starts_with("user.overlay."))
        .filter_map(|k| match sys::fgetxattr(fd, k) {
            Ok(Some(v)) => Some((k.to_string(), v)),
            _ => None,
        })
        .collect()
}

/// Writes `SCHILY.xattr.*` PAX records for the entry that follows.
pub(crate) fn append_xattrs<W: Write>(
    b: &mut tar::Builder<W>,
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    let xs = xattrs_of(fd);
    if xs.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = xs
        .iter()
        .map(|(k, _)| format!("SCHILY.xattr.{k}"))
        .collect();
    b.append_pax_extensions(
        keys.iter()
            .map(String::as_str)
            .zip(xs.iter().map(|(_, v)| v.as_slice())),
    )
}

/// Exactly `size` bytes of `f`: zero-padded if the file shrank while it was read, so the archive
/// stays well-formed.
pub(crate) fn sized(f: File, size: u64) -> impl Read {
    f.take(size).chain(io::repeat(0)).take(size)
}

/// Options of the tar walker.
#[derive(Default)]
struct Walk {
    /// (dev, ino) → first tar name, for hard links.
    links: HashMap<(u64, u64), PathBuf>,
    /// Sockets met (tar has no form for them; docker skips them with a warning too).
    skipped: Vec<PathBuf>,
}

fn header_for(st: &libc::stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Appends the symlink, device node or fifo `name` in `dir` (lstat'ed as `st`, its header `h`
/// already carrying mode, owner and time) as `tar_name`. Anything else (sockets, which have no
/// tar form; docker skips them too) is skipped. Shared by `export`/`cp` and `commit`.
pub(crate) fn append_special<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    tar_name: &Path,
    st: &libc::stat,
) -> io::Result<()> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let target = readlinkat(dir, name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(h, tar_name, Path::new(&target))
        }
        t @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
            h.set_entry_type(match t {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            // A FIFO's device fields are zeros (empty fields are not valid octal for readers).
            let (major, minor) = if t == libc::S_IFIFO {
                (0, 0)
            } else {
                (libc::major(st.st_rdev), libc::minor(st.st_rdev))
            };
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
            b.append_data(h, tar_name, io::empty())
        }
        _ => Ok(()),
    }
}

impl Walk {
    /// For a non-directory with several names: appends a hard link to the first name this walk
    /// archived and returns true, or remembers this name as the first and returns false.
    fn hardlink<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        h: &mut tar::Header,
        st: &libc::stat,
        tar_name: &Path,
    ) -> io::Result<bool> {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = self.links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            b.append_link(h, tar_name, first)?;
            return Ok(true);
        }
        self.links.insert(key, tar_name.to_path_buf());
        Ok(false)
    }

    /// Appends `name` in `dir` (and, for a directory, everything below it) as `tar_name`; an
    /// empty `tar_name` for a directory appends only its children.
    fn append<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        tar_name: &Path,
    ) -> io::Result<()> {
        let st =
            sys::lstatat(dir, name)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mut h = header_for(&st);
        match kind(&st) {
            libc::S_IFDIR => {
                let sub = sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                if !tar_name.as_os_str().is_empty() {
                    append_xattrs(b, sub.as_fd())?;
                    h.set_entry_type(tar::EntryType::Directory);
                    b.append_data(&mut h, tar_name, io::empty())?;
                }
                let mut kids = sys::list_dir(sub.as_fd())?;
                kids.sort();
                for k in kids {
                    self.append(b, sub.as_fd(), &k, &tar_name.join(&k))?;
                }
            }
            libc::S_IFSOCK => self.skipped.push(tar_name.to_path_buf()),
            _ if st.st_nlink > 1 && self.hardlink(b, &mut h, &st, tar_name)? => {}
            libc::S_IFREG => {
                let fd = sys::openat(dir, name, libc::O_RDONLY, 0)?;
                append_xattrs(b, fd.as_fd())?;
                let f = File::from(fd);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                b.append_data(&mut h, tar_name, sized(f, st.st_size as u64))?;
            }
            _ => append_special(b, &mut h, dir, name, tar_name, &st)?,
        }
        Ok(())
    }
}

/// Writes a tar of `loc` to `out`: named `top` (or, with `top` empty and a directory, its
/// children at the top level). Returns the writer and the sockets that were skipped.
fn archive<W: Write>(loc: &Loc, top: &Path, out: W) -> io::Result<(W, Vec<PathBuf>)> {
    let mut b = tar::Builder::new(out);
    let mut w = Walk::default();
    w.append(&mut b, loc.dir.as_fd(), &loc.name, top)?;
    Ok((b.into_inner()?, w.skipped))
}

/// Where and how a tar is extracted.
struct Dest<'a> {
    /// The root every entry is resolved in.
    root: BorrowedFd<'a>,
    /// The directory (relative to `root`) entries are placed below.
    base: PathBuf,
    /// Keep the archive's uid/gid (`-a`); otherwise files belong to the caller.
    keep_owner: bool,
    /// The host side: an existing FIFO, socket or device node is never replaced (a copy could
    /// otherwise unlink a host's `/dev/null`); inside a container it is, as docker does.
    host: bool,
}

/// What an existing non-regular file is called in errors.
fn kind_name(st: &libc::stat) -> &'static str {
    match kind(st) {
        libc::S_IFIFO => "named pipe (FIFO)",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device file",
        libc::S_IFBLK => "block device file",
        libc::S_IFLNK => "symbolic link",
        libc::S_IFDIR => "directory",
        _ => "file",
    }
}

/// Cleans an entry name: no leading `/`, no `.`; `..` is refused.
fn entry_path(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("archive entry {} leaves its directory", p.display()),
                ))
            }
        }
    }
    Ok(out)
}

fn extract<R: Read>(d: &Dest<'_>, input: R) -> io::Result<()> {
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    // SAFETY: geteuid/getegid have no preconditions.
    let (me_u, me_g) = unsafe { (libc::geteuid(), libc::getegid()) };
    for entry in ar.entries()? {
        let mut e = entry?;
        let p = entry_path(&e.path()?)?;
        if p.as_os_str().is_empty() {
            continue;
        }
        let full = d.base.join(&p);
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            continue;
        };
        let name = name.to_os_string();
        let pdir = sys::open_in_root(d.root, parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", parent.display())))?;
        let pd = pdir.as_fd();
        let h = e.header().clone();
        let mode = h.mode()? & 0o7777;
        let (uid, gid) = if d.keep_owner {
            (h.uid()? as u32, h.gid()? as u32)
        } else {
            (me_u, me_g)
        };
        let mtime = h.mtime().unwrap_or(0) as i64;
        let existing = sys::lstatat(pd, &name)?;
        let et = h.entry_type();
        if et.is_dir() {
            match existing {
                Some(st) if kind(&st) == libc::S_IFDIR => {}
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "cannot overwrite non-directory {} with directory",
                            full.display()
                        ),
                    ))
                }
                None => sys::mkdirat(pd, &name, 0o700)?,
            }
            let fd = sys::openat(pd, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            sys::lchownat(fd.as_fd(), OsStr::new(""), uid, gid)?;
            dirs.push((full.clone(), mode, mtime as u64));
            continue;
        }
        if let Some(st) = existing {
            if kind(&st) == libc::S_IFDIR {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "cannot overwrite directory {} with non-directory",
                        full.display()
                    ),
                ));
            }
            if d.host && !matches!(kind(&st), libc::S_IFREG | libc::S_IFLNK) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "cannot overwrite {} {} on the host",
                        kind_name(&st),
                        full.display()
                    ),
                ));
            }
            // A regular file or a symlink is replaced, never written through.
            sys::unlinkat(pd, &name, false)?;
        }
        match et {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = sys::openat(
                    pd,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                let mut f = File::from(fd);
                io::copy(&mut e, &mut f)?;
                sys::lchownat(f.as_fd(), OsStr::new(""), uid, gid)?;
                sys::fchmod(f.as_fd(), mode)?;
                drop(f);
                sys::set_times(pd, &name, mtime)?;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name()?.unwrap_or_default().into_owned();
                sys::symlinkat(target.as_os_str(), pd, &name)?;
                sys::lchownat(pd, &name, uid, gid)?;
                sys::set_times(pd, &name, mtime)?;
            }
            tar::EntryType::Link => {
                let target = entry_path(&e.link_name()?.unwrap_or_default())?;
                let tfull = d.base.join(&target);
                let src = locate(d.root, &tfull, false)?;
                sys::linkat(src.dir.as_fd(), &src.name, pd, &name)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let t = match et {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                // Other tools leave a FIFO's device fields empty: they do not matter for it.
                let (major, minor) = if et == tar::EntryType::Fifo {
                    (0, 0)
                } else {
                    (
                        h.device_major()?.unwrap_or(0),
                        h.device_minor()?.unwrap_or(0),
                    )
                };
                sys::mknodat(pd, &name, t | mode, major, minor)?;
                sys::lchownat(pd, &name, uid, gid)?;
                // mknod applied the umask: set the archive's mode exactly.
                crate::outfile::chmod_nofollow(pd, &name, mode)?;
                sys::set_times(pd, &name, mtime)?;
            }
            // Pax/GNU metadata entries are consumed by the tar reader; anything else is skipped.
            _ => {}
        }
    }
    // Directory modes and times last, deepest first, so restrictive modes do not block writes.
    dirs.reverse();
    for (p, mode, mtime) in dirs {
        let loc = locate(d.root, &p, false)?;
        let fd = sys::openat(
            loc.dir.as_fd(),
            &loc.name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        sys::fchmod(fd.as_fd(), mode)?;
        sys::set_times(fd.as_fd(), OsStr::new(""), mtime as i64)?;
    }
    Ok(())
}

/// What a `cp` copies from and to.
#[derive(Debug, Clone, PartialEq)]
pub enum CpEnd {
    /// A host path.
    Local(String),
    /// A path in a container.
    Container {
        /// Container name or id.
        container: String,
        /// Path inside it.
        path: String,
    },
    /// A tar stream on stdin or stdout.
    Stream,
}

impl CpEnd {
    /// Parses docker's `CONTAINER:PATH`, `-` or a local path (a path with `/` before the first
    /// `:` is local, as in docker).
    pub fn parse(s: &str) -> CpEnd {
        if s == "-" {
            return CpEnd::Stream;
        }
        if s.starts_with('/') || s.starts_with('.') {
            return CpEnd::Local(s.into());
        }
        match s.split_once(':') {
            Some((c, p)) if !c.is_empty() && !c.contains('/') => CpEnd::Container {
                container: c.into(),
                path: p.into(),
            },
            _ => CpEnd::Local(s.into()),
        }
    }
}

/// `cp` flags.
#[derive(Debug, Clone, Default)]
pub struct CpOptions {
    /// `-a`: keep uid/gid from the source.
    pub archive: bool,
    /// `-L`: follow a symlink given as the source.
    pub follow_link: bool,
}

/// Facts about the source that decide the destination's shape.
struct SrcInfo {
    is_dir: bool,
    /// Source ends with `/.`: copy a directory's contents.
    contents: bool,
    /// The source's last name.
    base: OsString,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

/// Docker's rules for the destination: returns the directory entries go into and the top name
/// (empty: the source directory's contents go straight in). `dest_kind` is the destination's file
/// type, if it exists.
fn plan(src: &SrcInfo, dest: &str, dest_kind: Option<u32>) -> Result<(PathBuf, PathBuf)> {
    let dest_slash = dest.ends_with('/') || dest.ends_with("/.");
    let d = Path::new(dest);
    let split = || -> (PathBuf, PathBuf) {
        let parent = d.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = d.file_name().map(PathBuf::from).unwrap_or_default();
        (parent, name)
    };
    match (src.is_dir, dest_kind) {
        (false, Some(libc::S_IFDIR)) => Ok((d.to_path_buf(), PathBuf::from(&src.base))),
        (false, Some(_)) if dest_slash => Err(Error::Invalid(format!(
            "destination \"{dest}\" must be a directory"
        ))),
        (false, _) if dest_slash => Err(Error::Invalid(format!(
            "destination directory \"{dest}\" does not exist"
        ))),
        (false, _) => Ok(split()),
        (true, Some(libc::S_IFDIR)) if src.contents => Ok((d.to_path_buf(), PathBuf::new())),
        (true, Some(libc::S_IFDIR)) => Ok((d.to_path_buf(), PathBuf::from(&src.base))),
        (true, Some(_)) => Err(Error::Invalid(format!(
            "cannot copy a directory to a file: \"{dest}\" is not a directory"
        ))),
        (true, None) => Ok(split()),
    }
}

fn src_info(loc: &Loc, path: &str) -> Result<SrcInfo> {
    let st = sys::lstatat(loc.dir.as_fd(), &loc.name)
        .map_err(io_err(format!("stat {path}")))?
        .ok_or_else(|| Error::Invalid(format!("Could not find the file {path} in container")))?;
    let base = if loc.name == "." {
        OsString::from(".")
    } else {
        loc.name.clone()
    };
    Ok(SrcInfo {
        is_dir: kind(&st) == libc::S_IFDIR,
        contents: path.ends_with("/.") || path == ".",
        base,
    })
}

/// What a `cp` did that its caller should tell the user.
#[derive(Debug, Default)]
pub struct CpReport {
    /// Sockets in the source that were not copied (tar has no form for them), named as the
    /// source side names them (`/host/dir/sock`, `container:/dir/sock`).
    pub skipped_sockets: Vec<PathBuf>,
}

impl CpReport {
    /// A report of `skipped` archive names (below `top`), renamed to paths below `src`.
    fn skipped(src: &str, top: &Path, skipped: Vec<PathBuf>) -> CpReport {
        let base = src.trim_end_matches("/.").trim_end_matches('/');
        let skipped_sockets = skipped
            .into_iter()
            .map(|p| match p.strip_prefix(top) {
                Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(src),
                Ok(rest) => PathBuf::from(format!("{base}/{}", rest.display())),
                Err(_) => p,
            })
            .collect();
        CpReport { skipped_sockets }
    }
}

/// What is at a host destination the user named: its file type after following a symlink the
/// user named (as docker does), or `None` when nothing is there. A FIFO, socket or device node is
/// refused (docker's `ValidateOutputPath`), and so is a dangling symlink: skiff writes only into
/// a directory or over a regular file. Returns the path to use (the symlink resolved).
fn host_dest(dest: &str) -> Result<(String, Option<u32>)> {
    let invalid = |why: String| Error::Invalid(format!("invalid output path: {dest:?} {why}"));
    let p = Path::new(dest);
    let lst = match std::fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(Error::Invalid(format!(
                    "invalid output path: directory {:?} does not exist",
                    parent.display().to_string()
                )));
            }
            return Ok((dest.to_string(), None));
        }
        Err(e) => return Err(io_err(format!("stat {dest}"))(e)),
    };
    let mut dest = dest.to_string();
    if lst.file_type().is_symlink() {
        let resolved = std::fs::canonicalize(p)
            .map_err(|_| invalid("is a symbolic link to nothing".into()))?;
        let slash = if dest.ends_with('/') { "/" } else { "" };
        dest = format!("{}{slash}", resolved.display());
    }
    let md = std::fs::metadata(&dest).map_err(io_err(format!("stat {dest}")))?;
    let ft = md.file_type();
    if ft.is_dir() {
        return Ok((dest, Some(libc::S_IFDIR)));
    }
    if ft.is_file() {
        return Ok((dest, Some(libc::S_IFREG)));
    }
    use std::os::unix::fs::FileTypeExt;
    let what = if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_fifo() {
        "a named pipe (FIFO)"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "an irregular file"
    };
    Err(invalid(format!(
        "must be a directory or a regular file: got {what}"
    )))
}

/// `cp` between a container and the host or a tar stream. `stdin`/`stdout` carry the stream
/// for `-`. Sockets are skipped and listed in the report, as docker does.
pub fn copy(
    e: &Engine,
    src: &CpEnd,
    dst: &CpEnd,
    opts: &CpOptions,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<CpReport> {
    match (src, dst) {
        (CpEnd::Container { container, path }, to) => {
            let m = e.mount_root(container, true)?;
            let r = rel(path);
            let loc = locate(m.root.as_fd(), &r, opts.follow_link).map_err(|err| {
                if err.kind() == io::ErrorKind::NotFound {
                    Error::Invalid(format!(
                        "Could not find the file {path} in container {container}"
                    ))
                } else {
                    io_err(format!("{container}:{path}"))(err)
                }
            })?;
            let info = src_info(&loc, path).map_err(|err| match err {
                Error::Invalid(_) => Error::Invalid(format!(
                    "Could not find the file {path} in container {container}"
                )),
                other => other,
            })?;
            match to {
                CpEnd::Stream => {
                    let top = if info.contents && info.is_dir {
                        PathBuf::new()
                    } else {
                        PathBuf::from(&info.base)
                    };
                    let (_, skipped) = archive(&loc, &top, stdout)
                        .map_err(io_err(format!("archive {container}:{path}")))?;
                    Ok(CpReport::skipped(
                        &format!("{container}:{path}"),
                        &top,
                        skipped,
                    ))
                }
                CpEnd::Local(dest) => {
                    let (dest, dk) = host_dest(dest)?;
                    let dest = dest.as_str();
                    let (dir, top) = plan(&info, dest, dk)?;
                    let dir = if dir.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        dir
                    };
                    let dfd =
                        sys::open_dir(&dir).map_err(io_err(format!("open {}", dir.display())))?;
                    let d = Dest {
                        root: dfd.as_fd(),
                        base: PathBuf::new(),
                        keep_owner: opts.archive,
                        host: true,
                    };
                    let skipped = pipe(&loc, &top, &d)
                        .map_err(io_err(format!("copy {container}:{path} to {dest}")))?;
                    Ok(CpReport::skipped(
                        &format!("{container}:{path}"),
                        &top,
                        skipped,
                    ))
                }
                CpEnd::Container { .. } => Err(Error::Invalid(
                    "copying between containers is not supported".into(),
                )),
            }
        }
        (from, CpEnd::Container { container, path }) => {
            let m = e.mount_root(container, true)?;
            let r = rel(path);
            let dest_kind = sys::open_in_root(m.root.as_fd(), &r, libc::O_PATH, 0)
                .ok()
                .and_then(|fd| fstat(fd.as_fd()).ok())
                .map(|st| kind(&st));
            match from {
                CpEnd::Stream => {
                    if dest_kind != Some(libc::S_IFDIR) {
                        return Err(Error::Invalid(format!(
                            "destination \"{container}:{path}\" must be a directory"
                        )));
                    }
                    let d = Dest {
                        root: m.root.as_fd(),
                        base: r,
                        keep_owner: opts.archive,
                        host: false,
                    };
                    extract(&d, stdin)
                        .map_err(io_err(format!("extract into {container}:{path}")))?;
                    Ok(CpReport::default())
                }
                CpEnd::Local(src) => {
                    let sp = Path::new(src);
                    let (parent, name) = local_split(sp, opts.follow_link)?;
                    let pfd = sys::open_dir(&parent)
                        .map_err(io_err(format!("open {}", parent.display())))?;
                    let loc = Loc { dir: pfd, name };
                    let mut info = src_info(&loc, src).map_err(|err| match err {
                        Error::Invalid(_) => Error::Invalid(format!(
                            "Could not find the file {src}: no such file or directory"
                        )),
                        other => other,
                    })?;
                    info.contents = src.ends_with("/.") || src == ".";
                    let (dir, top) = plan(&info, path, dest_kind)?;
                    let d = Dest {
                        root: m.root.as_fd(),
                        base: rel(&dir.to_string_lossy()),
                        keep_owner: opts.archive,
                        host: false,
                    };
                    // The target directory must exist (and be a directory) inside the container.
                    sys::open_in_root(m.root.as_fd(), &d.base, libc::O_PATH | libc::O_DIRECTORY, 0)
                        .map_err(io_err(format!(
                            "destination directory {container}:{}",
                            dir.display()
                        )))?;
                    let skipped = pipe(&loc, &top, &d)
                        .map_err(io_err(format!("copy {src} to {container}:{path}")))?;
                    Ok(CpReport::skipped(src, &top, skipped))
                }
                CpEnd::Container { .. } => unreachable!("handled above"),
            }
        }
        _ => Err(Error::Invalid(
            "must specify at least one container source".into(),
        )),
    }
}

/// The parent directory and last name of a host path (`-L` resolves a final symlink first).
fn local_split(p: &Path, follow: bool) -> Result<(PathBuf, OsString)> {
    let p = if follow {
        std::fs::canonicalize(p).map_err(io_err(format!("{}", p.display())))?
    } else {
        p.to_path_buf()
    };
    let s = p.to_string_lossy();
    let trimmed = s.trim_end_matches("/.");
    let tp = Path::new(if trimmed.is_empty() { "/" } else { trimmed });
    match (tp.parent(), tp.file_name()) {
        (Some(parent), Some(name)) if tp.components().next_back() != Some(Component::ParentDir) => {
            let parent = if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_path_buf()
            };
            Ok((parent, name.to_os_string()))
        }
        _ => Ok((tp.to_path_buf(), OsString::from("."))),
    }
}

/// Archives `loc` as `top` and extracts it at `d` through an in-process pipe (a thread writes);
/// returns the sockets the archiver skipped.
fn pipe(loc: &Loc, top: &Path, d: &Dest<'_>) -> io::Result<Vec<PathBuf>> {
    let (r, w) = nix::unistd::pipe().map_err(io::Error::from)?;
    let r = File::from(r);
    let w = File::from(w);
    std::thread::scope(|s| {
        let writer = s.spawn(move || archive(loc, top, w).map(|(_, skipped)| skipped));
        let res = extract(d, r);
        let wres = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("archiver panicked")));
        res.and(wres)
    })
}

/// `export`: a tar of the container's whole filesystem to `out`.
pub fn export(e: &Engine, s: &str, out: &mut dyn Write) -> Result<()> {
    let m = e.mount_root(s, false)?;
    let loc = Loc {
        dir: sys::openat(
            m.root.as_fd(),
            OsStr::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(io_err(format!("open rootfs of {s}")))?,
        name: ".".into(),
    };
    archive(&loc, Path::new(""), out).map_err(io_err(format!("export {s}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ends() {
        assert_eq!(CpEnd::parse("-"), CpEnd::Stream);
        assert_eq!(CpEnd::parse("/a:b"), CpEnd::Local("/a:b".into()));
        assert_eq!(
            CpEnd::parse("web:/etc/x"),
            CpEnd::Container {
                container: "web".into(),
                path: "/etc/x".into()
            }
        );
        assert_eq!(CpEnd::parse("dir/a:b"), CpEnd::Local("dir/a:b".into()));
    }

    #[test]
    fn entry_paths_stay_inside() {
        assert_eq!(
            entry_path(Path::new("/a/./b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(entry_path(Path::new("a/../../b")).is_err());
    }
}

/// What `HEAD /containers/{id}/archive` reports of a path in a container (docker's
/// `ContainerPathStat`; `mode` in Go's `os.FileMode` bits).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    /// The last name of the path.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go `os.FileMode`: permission bits plus type and setuid/setgid/sticky flags.
    pub mode: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// The target of a symlink (empty otherwise).
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` for a stat mode.
fn go_mode(m: u32) -> u32 {
    let mut g = m & 0o777;
    g |= match m & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if m & libc::S_ISUID != 0 {
        g |= 1 << 23;
    }
    if m & libc::S_ISGID != 0 {
        g |= 1 << 22;
    }
    if m & libc::S_ISVTX != 0 {
        g |= 1 << 20;
    }
    g
}

/// Stats `path` in container `s` without following a final symlink; `None` when nothing is
/// there. Resolved in the container's root as `cp` resolves it.
pub fn stat_path(e: &Engine, s: &str, path: &str) -> Result<Option<PathStat>> {
    let m = e.mount_root(s, true)?;
    let loc = match locate(m.root.as_fd(), &rel(path), false) {
        Ok(l) => l,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_err(format!("{s}:{path}"))(err)),
    };
    let Some(st) =
        sys::lstatat(loc.dir.as_fd(), &loc.name).map_err(io_err(format!("stat {s}:{path}")))?
    else {
        return Ok(None);
    };
    let link_target = if kind(&st) == libc::S_IFLNK {
        let c = std::ffi::CString::new(loc.name.as_bytes())
            .map_err(|_| Error::Invalid(format!("bad path {path}")))?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: valid dirfd, NUL-terminated name and a writable buffer of the given length.
        let n = unsafe {
            libc::readlinkat(
                loc.dir.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n > 0 {
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    let name = if loc.name == "." {
        Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        loc.name.to_string_lossy().into_owned()
    };
    Ok(Some(PathStat {
        name,
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: skiff_image::time::rfc3339(st.st_mtime),
        link_target,
    }))
}
