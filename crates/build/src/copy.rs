//! COPY/ADD file operations. Sources are read from a tree (the context, or another stage's root)
//! and destinations written into a mounted root; every path inside an image root is resolved
//! with `RESOLVE_IN_ROOT` and every entry is created with `*at` calls that never follow a
//! symlink, so an image's symlinks cannot lead a build outside its root.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use skiff_image::sys;

use crate::glob;
use crate::ignore::Matcher;

/// A context file's digest, valid while its identity and times are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// st_dev.
    pub dev: u64,
    /// st_ino.
    pub ino: u64,
    /// st_size.
    pub size: i64,
    /// st_mtime in nanoseconds.
    pub mtime_ns: i64,
    /// st_ctime in nanoseconds (a chmod, chown or rename-over changes it).
    pub ctime_ns: i64,
    /// sha256 of the contents, hex.
    pub digest: String,
}

/// The context's file index: paths to digests, so an unchanged file is not read again.
#[derive(Debug, Default)]
pub struct CtxIndex {
    /// Known entries by context-relative path.
    pub entries: std::collections::HashMap<String, IndexEntry>,
    /// Entries made or refreshed by this build.
    pub changed: Vec<(String, IndexEntry)>,
}

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

impl IndexEntry {
    fn matches(&self, st: &libc::stat) -> bool {
        self.dev == st.st_dev
            && self.ino == st.st_ino
            && self.size == st.st_size
            && self.mtime_ns == ns(st.st_mtime, st.st_mtime_nsec)
            && self.ctime_ns == ns(st.st_ctime, st.st_ctime_nsec)
    }
}

/// A tree to read sources from.
pub struct SrcRoot<'a> {
    /// The context's file index (context only).
    pub index: Option<std::sync::Arc<std::sync::Mutex<CtxIndex>>>,
    /// Its root directory, opened.
    pub fd: OwnedFd,
    /// `.dockerignore` (context only).
    pub ignore: Option<&'a Matcher>,
    /// Keep the sources' owners (another stage) instead of root (the context).
    pub keep_owner: bool,
}

/// One matched source.
#[derive(Debug, Clone)]
pub struct Found {
    /// Path relative to the source root.
    pub rel: String,
    /// Whether it is a directory (after following a top-level symlink).
    pub is_dir: bool,
}

/// How entries are written.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `--chown` ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod` mode.
    pub chmod: Option<u32>,
    /// `--exclude` patterns (relative to each source).
    pub excludes: Option<Matcher>,
}

fn proc_path(fd: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if !name.is_empty() {
        p.push(name);
    }
    p
}

fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

impl SrcRoot<'_> {
    /// Opens the parent directory of `rel` inside the root.
    fn parent(&self, rel: &str) -> io::Result<(OwnedFd, String)> {
        let (dir, name) = split(rel);
        let fd = sys::open_in_root(
            self.fd.as_fd(),
            Path::new(dir),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        Ok((fd, name.to_string()))
    }

    fn lstat(&self, rel: &str) -> io::Result<Option<libc::stat>> {
        if rel.is_empty() {
            return sys::lstatat(self.fd.as_fd(), OsStr::new("."));
        }
        let (d, n) = match self.parent(rel) {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        sys::lstatat(d.as_fd(), OsStr::new(&n))
    }

    fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.is_some_and(|m| m.excluded(rel))
    }

    /// Expands a source pattern (relative, cleaned) to the entries it names, in sorted order.
    pub fn glob(&self, pattern: &str) -> io::Result<Vec<Found>> {
        let pattern = crate::ignore::clean(pattern.trim_start_matches('/'));
        let pattern = if pattern == "." {
            String::new()
        } else {
            pattern
        };
        let mut cands = vec![String::new()];
        if !pattern.is_empty() {
            for comp in pattern.split('/') {
                let mut next = Vec::new();
                for c in &cands {
                    let join = |n: &str| {
                        if c.is_empty() {
                            n.to_string()
                        } else {
                            format!("{c}/{n}")
                        }
                    };
                    if glob::has_meta(comp) {
                        let Ok(d) = sys::open_in_root(
                            self.fd.as_fd(),
                            Path::new(c),
                            libc::O_RDONLY | libc::O_DIRECTORY,
                            0,
                        ) else {
                            continue;
                        };
                        let mut names: Vec<String> = sys::list_dir(d.as_fd())?
                            .into_iter()
                            .map(|n| n.to_string_lossy().into_owned())
                            .collect();
                        names.sort();
                        for n in names {
                            if glob::matches(comp, &n, Some('/')).unwrap_or(false) {
                                next.push(join(&n));
                            }
                        }
                    } else if self.lstat(&join(comp))?.is_some() {
                        next.push(join(comp));
                    }
                }
                cands = next;
            }
        }
        let mut out = Vec::new();
        for rel in cands {
            if self.ignored(&rel) {
                continue;
            }
            let is_dir = if rel.is_empty() {
                true
            } else {
                sys::open_in_root(
                    self.fd.as_fd(),
                    Path::new(&rel),
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )
                .is_ok()
            };
            out.push(Found { rel, is_dir });
        }
        Ok(out)
    }

    /// Feeds a digest of the named entry (and everything below it) to `h`: paths, types, modes,
    /// owners (for stages), link targets and contents.
    pub fn digest(&self, f: &Found, h: &mut sha2::Sha256) -> io::Result<()> {
        use sha2::Digest as _;
        let mut visit = |rel: &str,
                         st: &libc::stat,
                         data: &mut dyn FnMut(&mut sha2::Sha256) -> io::Result<()>|
         -> io::Result<()> {
            h.update(rel.as_bytes());
            h.update([0]);
            let own = if self.keep_owner {
                (st.st_uid, st.st_gid)
            } else {
                (0, 0)
            };
            h.update(format!("{:o} {} {} {}\0", st.st_mode, own.0, own.1, st.st_size).as_bytes());
            data(h)
        };
        self.walk(&f.rel, true, &mut |rel, dir, name, st| {
            visit(rel, st, &mut |h| match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => {
                    if let Some(ix) = &self.index {
                        let known = ix
                            .lock()
                            .ok()
                            .and_then(|ix| ix.entries.get(rel).filter(|e| e.matches(st)).cloned());
                        if let Some(e) = known {
                            h.update(e.digest.as_bytes());
                            return Ok(());
                        }
                    }
                    let fd = sys::openat(dir, name, libc::O_RDONLY, 0)?;
                    let mut file = File::from(fd);
                    let mut fh = sha2::Sha256::new();
                    io::copy(&mut file, &mut HashW(&mut fh))?;
                    let d = skiff_image::digest::to_hex(&fh.finalize());
                    h.update(d.as_bytes());
                    if let Some(ix) = &self.index {
                        // A file modified within the last seconds may change again within the
                        // same mtime tick: not recorded (git's "racy" rule).
                        let now = skiff_image::time::now_unix();
                        if st.st_mtime < now - 2 && st.st_ctime < now - 2 {
                            let e = IndexEntry {
                                dev: st.st_dev,
                                ino: st.st_ino,
                                size: st.st_size,
                                mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
                                ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
                                digest: d,
                            };
                            if let Ok(mut ix) = ix.lock() {
                                ix.entries.insert(rel.to_string(), e.clone());
                                ix.changed.push((rel.to_string(), e));
                            }
                        }
                    }
                    Ok(())
                }
                libc::S_IFLNK => {
                    let t = std::fs::read_link(proc_path(dir, name))?;
                    h.update(t.as_os_str().as_bytes());
                    Ok(())
                }
                _ => Ok(()),
            })
        })
    }

    /// Calls `f(rel, parent dir, name, stat)` for the entry and (pre-order) everything below it;
    /// a top-level symlink is followed (inside the root) when `follow_top`.
    fn walk(
        &self,
        rel: &str,
        follow_top: bool,
        f: &mut dyn FnMut(&str, BorrowedFd<'_>, &OsStr, &libc::stat) -> io::Result<()>,
    ) -> io::Result<()> {
        // The top entry: resolve it as a directory first (following symlinks inside the root).
        if follow_top {
            if let Ok(d) = sys::open_in_root(
                self.fd.as_fd(),
                Path::new(rel),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            ) {
                let st = sys::lstatat(d.as_fd(), OsStr::new("."))?
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
                f(rel, d.as_fd(), OsStr::new("."), &st)?;
                return self.walk_dir(rel, d.as_fd(), f);
            }
        }
        let (d, name) = self.parent(rel)?;
        let mut st = sys::lstatat(d.as_fd(), OsStr::new(&name))?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if follow_top && st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            // A symlinked file: read through the resolved target.
            let t = sys::open_in_root(self.fd.as_fd(), Path::new(rel), libc::O_PATH, 0)?;
            let mut s2: libc::stat = unsafe_zeroed_stat();
            // SAFETY: valid fd, empty C string and a valid stat buffer.
            let r =
                unsafe { libc::fstatat(t.as_raw_fd(), c"".as_ptr(), &mut s2, libc::AT_EMPTY_PATH) };
            if r == 0 && s2.st_mode & libc::S_IFMT == libc::S_IFREG {
                let (dir, n) = split_resolved(&self.fd, rel)?;
                st = s2;
                return f(rel, dir.as_fd(), OsStr::new(&n), &st);
            }
        }
        f(rel, d.as_fd(), OsStr::new(&name), &st)
    }

    fn walk_dir(
        &self,
        rel: &str,
        d: BorrowedFd<'_>,
        f: &mut dyn FnMut(&str, BorrowedFd<'_>, &OsStr, &libc::stat) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut names = sys::list_dir(d)?;
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            if self.ignored(&r) {
                let is_dir = matches!(sys::lstatat(d, &n)?, Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR);
                if !(is_dir && self.ignore.is_some_and(|m| m.may_reinclude_below(&r))) {
                    continue;
                }
            }
            let Some(st) = sys::lstatat(d, &n)? else {
                continue;
            };
            let ignored = self.ignored(&r);
            if !ignored {
                f(&r, d, &n, &st)?;
            }
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let sub = sys::openat(d, &n, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                self.walk_dir(&r, sub.as_fd(), f)?;
            }
        }
        Ok(())
    }

    /// Copies the entry into `dst` (an open directory of the destination root) under `name`;
    /// a directory's contents are copied into `dst/name` (or into `dst` itself when `name` is
    /// empty).
    pub fn copy_into(
        &self,
        f: &Found,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        o: &WriteOpts,
    ) -> io::Result<()> {
        let base = f.rel.clone();
        let mut dirs: Vec<(String, OwnedFd)> = Vec::new();
        let top_is_dir = f.is_dir;
        let root_dir: OwnedFd = if top_is_dir {
            if name.is_empty() {
                sys::open_in_root(dst, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?
            } else {
                ensure_child_dir(dst, name, o.chown.unwrap_or((0, 0)))?
            }
        } else {
            sys::open_in_root(dst, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?
        };
        self.walk(&f.rel, true, &mut |rel, sdir, sname, st| {
            let sub = rel
                .strip_prefix(&base)
                .unwrap_or(rel)
                .trim_start_matches('/');
            if let Some(ex) = &o.excludes {
                if !sub.is_empty() && ex.excluded(sub) {
                    return Ok(());
                }
            }
            let (uid, gid) = match o.chown {
                Some(x) => x,
                None if self.keep_owner => (st.st_uid, st.st_gid),
                None => (0, 0),
            };
            let mode = o.chmod.unwrap_or(st.st_mode & 0o7777);
            if top_is_dir && sub.is_empty() {
                // The source directory itself: its contents go into root_dir.
                return Ok(());
            }
            let (parent_rel, leaf) = split(sub);
            let (pfd, leaf_name): (BorrowedFd<'_>, &OsStr) = if !top_is_dir {
                (root_dir.as_fd(), name)
            } else if parent_rel.is_empty() {
                (root_dir.as_fd(), OsStr::new(leaf))
            } else {
                let d = dirs
                    .iter()
                    .rev()
                    .find(|(r, _)| r == parent_rel)
                    .map(|(_, d)| d.as_fd())
                    .ok_or_else(|| io::Error::other(format!("copy {rel}: parent not copied")))?;
                (d, OsStr::new(leaf))
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    let d = ensure_child_dir(pfd, leaf_name, (uid, gid))?;
                    sys::lchownat(d.as_fd(), OsStr::new(""), uid, gid)?;
                    sys::fchmod(d.as_fd(), mode)?;
                    let _ = sys::set_times(d.as_fd(), OsStr::new(""), st.st_mtime);
                    dirs.push((sub.to_string(), d));
                }
                libc::S_IFREG => {
                    remove_non_dir(pfd, leaf_name)?;
                    let src = sys::openat(sdir, sname, libc::O_RDONLY, 0)?;
                    let out = sys::openat(
                        pfd,
                        leaf_name,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                        0o600,
                    )?;
                    let mut out = File::from(out);
                    io::copy(&mut File::from(src), &mut out)?;
                    sys::lchownat(out.as_fd(), OsStr::new(""), uid, gid)?;
                    sys::fchmod(out.as_fd(), mode)?;
                    let _ = sys::set_times(out.as_fd(), OsStr::new(""), st.st_mtime);
                }
                libc::S_IFLNK => {
                    remove_non_dir(pfd, leaf_name)?;
                    let t = std::fs::read_link(proc_path(sdir, sname))?;
                    sys::symlinkat(t.as_os_str(), pfd, leaf_name)?;
                    sys::lchownat(pfd, leaf_name, uid, gid)?;
                    let _ = sys::set_times(pfd, leaf_name, st.st_mtime);
                }
                // Devices, fifos and sockets are left out.
                _ => {}
            }
            Ok(())
        })
    }
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    unsafe { std::mem::zeroed() }
}

/// The parent of a path resolved inside the root (symlinks followed) and its last name.
fn split_resolved(root: &OwnedFd, rel: &str) -> io::Result<(OwnedFd, String)> {
    let mut cur = rel.to_string();
    for _ in 0..40 {
        let (d, n) = split(&cur);
        let dfd = sys::open_in_root(
            root.as_fd(),
            Path::new(d),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        match sys::lstatat(dfd.as_fd(), OsStr::new(n))? {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                let t = std::fs::read_link(proc_path(dfd.as_fd(), OsStr::new(n)))?;
                let t = t.to_string_lossy();
                cur = if t.starts_with('/') {
                    crate::ignore::clean(t.trim_start_matches('/'))
                } else {
                    crate::ignore::clean(&format!("{d}/{t}"))
                };
                if cur.starts_with("..") {
                    cur = cur.trim_start_matches("../").to_string();
                }
            }
            _ => return Ok((dfd, n.to_string())),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

struct HashW<'h>(&'h mut sha2::Sha256);

impl io::Write for HashW<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn remove_non_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match sys::lstatat(dir, name)? {
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(io::Error::other(format!(
            "cannot replace directory {} with a file",
            name.to_string_lossy()
        ))),
        Some(_) => sys::unlinkat(dir, name, false),
        None => Ok(()),
    }
}

/// Opens (creating with 0755 and `owner` when missing) the directory `name` in `dir`; an
/// existing symlink is followed with `dir` as its root.
fn ensure_child_dir(dir: BorrowedFd<'_>, name: &OsStr, owner: (u32, u32)) -> io::Result<OwnedFd> {
    match sys::lstatat(dir, name)? {
        None => {
            sys::mkdirat(dir, name, 0o755)?;
            let d = sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            sys::lchownat(d.as_fd(), OsStr::new(""), owner.0, owner.1)?;
            sys::fchmod(d.as_fd(), 0o755)?;
            Ok(d)
        }
        Some(_) => sys::open_in_root(dir, Path::new(name), libc::O_RDONLY | libc::O_DIRECTORY, 0),
    }
}

/// Opens directory `rel` inside the root `root`, creating missing components (0755, `owner`).
pub fn mkdir_all(root: BorrowedFd<'_>, rel: &str, owner: (u32, u32)) -> io::Result<OwnedFd> {
    let mut cur = sys::open_in_root(root, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut path = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(comp);
        cur = match sys::open_in_root(
            root,
            Path::new(&path),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        ) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Create it in the resolved parent.
                let (pdir, _) = split(&path);
                let p = sys::open_in_root(
                    root,
                    Path::new(pdir),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )?;
                sys::mkdirat(p.as_fd(), OsStr::new(comp), 0o755)?;
                let d = sys::openat(
                    p.as_fd(),
                    OsStr::new(comp),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )?;
                sys::lchownat(d.as_fd(), OsStr::new(""), owner.0, owner.1)?;
                sys::fchmod(d.as_fd(), 0o755)?;
                d
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// Whether `rel` is a directory inside `root` (symlinks followed inside the root).
pub fn is_dir(root: BorrowedFd<'_>, rel: &str) -> bool {
    sys::open_in_root(root, Path::new(rel), libc::O_PATH | libc::O_DIRECTORY, 0).is_ok()
}

/// Writes `data` as file `name` in `dir` (replacing a non-directory).
pub fn write_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    data: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> io::Result<()> {
    use std::io::Write;
    remove_non_dir(dir, name)?;
    let out = sys::openat(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )?;
    let mut out = File::from(out);
    out.write_all(data)?;
    sys::lchownat(out.as_fd(), OsStr::new(""), owner.0, owner.1)?;
    sys::fchmod(out.as_fd(), mode)
}
