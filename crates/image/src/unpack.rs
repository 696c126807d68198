//! Applying one layer tarball into an empty snapshot directory, in overlayfs form.
//!
//! Threat model: the tarball is hostile. Every entry path is split into components; `..` anywhere is
//! refused, a leading `/` is dropped. Parent directories are resolved with `openat2(RESOLVE_IN_ROOT)`
//! from the snapshot root, so a symlink planted by an earlier entry (`a -> /etc`, then `a/passwd`)
//! resolves inside the snapshot. The final component is created with `*at` calls that never follow
//! it (`O_NOFOLLOW|O_EXCL`, `linkat` without `AT_SYMLINK_FOLLOW`). Hard-link targets are resolved the
//! same way. Whiteouts become 0:0 character devices, opaque markers become
//! `trusted.overlay.opaque=y` (`user.overlay.opaque` when rootless); whiteouts naming `.`/`..` are
//! refused. Device nodes are skipped when rootless. Overlay xattrs carried by the tarball are dropped.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::error::{Error, Result};
use crate::sys::{self, AsFdBorrowed};

/// How a layer is unpacked.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// No CAP_MKNOD/CAP_CHOWN over arbitrary ids: skip devices, use `user.overlay.*` xattrs, and
    /// keep our own ownership (or, as root of a user namespace, the owners it maps).
    pub rootless: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            rootless: !sys::is_real_root(),
        }
    }
}

/// True when this process is root of a user namespace other than the initial one: it may chown
/// to the ids that namespace maps.
fn userns_root() -> bool {
    static R: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: geteuid has no preconditions.
    *R.get_or_init(|| unsafe { libc::geteuid() } == 0 && !sys::is_real_root())
}

/// What an unpack did.
#[derive(Debug, Clone, Default)]
pub struct UnpackStats {
    /// Sum of regular file sizes written.
    pub size: u64,
    /// Entries processed.
    pub entries: u64,
    /// Device nodes skipped (rootless).
    pub skipped_devices: u64,
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

struct Unpacker {
    root: OwnedFd,
    cache: Option<(Vec<OsString>, OwnedFd)>,
    dirs: Vec<DirMeta>,
    opts: UnpackOptions,
    stats: UnpackStats,
}

fn unsafe_entry(path: &[u8], reason: &str) -> Error {
    Error::UnsafeEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.to_string(),
    }
}

/// Splits an entry path into normal components; refuses `..`, drops `/` and `.`.
fn components(raw: &[u8]) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry(raw, "path contains '..'")),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(c);
    }
    p
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

impl Unpacker {
    fn resolve_dir(&mut self, comps: &[OsString], create: bool, raw: &[u8]) -> Result<OwnedFd> {
        if comps.is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| Error::io("dup snapshot root", e));
        }
        if let Some((k, fd)) = &self.cache {
            if k.as_slice() == comps {
                return fd.try_clone().map_err(|e| Error::io("dup directory", e));
            }
        }
        let ctx = |e: io::Error| {
            Error::io(
                format!(
                    "layer entry {:?}: resolve parent",
                    String::from_utf8_lossy(raw)
                ),
                e,
            )
        };
        let fd = match sys::open_in_root(self.root.as_fd_borrowed(), &join(comps), DIR_FLAGS, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let mut cur = self.root.try_clone().map_err(ctx)?;
                for i in 0..comps.len() {
                    let prefix = join(&comps[..=i]);
                    cur = match sys::open_in_root(self.root.as_fd_borrowed(), &prefix, DIR_FLAGS, 0)
                    {
                        Ok(fd) => fd,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            match sys::mkdirat(cur.as_fd_borrowed(), &comps[i], 0o755) {
                                Ok(()) => {}
                                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                                Err(e) => return Err(ctx(e)),
                            }
                            sys::open_in_root(self.root.as_fd_borrowed(), &prefix, DIR_FLAGS, 0)
                                .map_err(ctx)?
                        }
                        Err(e) => return Err(ctx(e)),
                    };
                }
                cur
            }
            Err(e) => return Err(ctx(e)),
        };
        let ret = fd.try_clone().map_err(ctx)?;
        self.cache = Some((comps.to_vec(), fd));
        Ok(ret)
    }

    fn xattr_ok(&self, name: &str) -> bool {
        (name.starts_with("user.") && !name.starts_with("user.overlay."))
            || name == "security.capability"
    }

    fn chown(&self, dir: &OwnedFd, name: &OsStr, uid: u32, gid: u32, raw: &[u8]) -> Result<()> {
        if self.opts.rootless {
            // Root of a user namespace (skiff's rootless one) owns what its map covers; ids
            // outside it (a single-id map) stay the user's own.
            if userns_root() {
                let _ = sys::lchownat(dir.as_fd_borrowed(), name, uid, gid);
            }
            return Ok(());
        }
        sys::lchownat(dir.as_fd_borrowed(), name, uid, gid).map_err(|e| {
            Error::io(
                format!("layer entry {:?}: chown", String::from_utf8_lossy(raw)),
                e,
            )
        })
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let header = entry.header().clone();
        let kind = header.entry_type();
        let raw = entry.path_bytes().into_owned();
        let ioerr = |what: &str, e: io::Error| {
            Error::io(
                format!("layer entry {:?}: {what}", String::from_utf8_lossy(&raw)),
                e,
            )
        };
        let comps = components(&raw)?;
        let mode = header.mode().map_err(|e| ioerr("mode", e))? & 0o7777;
        let uid = header.uid().map_err(|e| ioerr("uid", e))? as u32;
        let gid = header.gid().map_err(|e| ioerr("gid", e))? as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        self.stats.entries += 1;

        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Ok(key) = ext.key() {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        if self.xattr_ok(name) {
                            xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }

        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("./").
            if kind == EntryType::Directory {
                self.dirs.push(DirMeta {
                    path: PathBuf::new(),
                    mode,
                    uid,
                    gid,
                    mtime,
                });
            }
            return Ok(());
        };
        let name = name.clone();
        let pfd = self.resolve_dir(parent, true, &raw)?;

        // Whiteouts.
        if let Some(target) = name.as_bytes().strip_prefix(b".wh.") {
            if target == b".wh..opq" {
                let key = if self.opts.rootless {
                    "user.overlay.opaque"
                } else {
                    "trusted.overlay.opaque"
                };
                sys::fsetxattr(pfd.as_fd_borrowed(), key, b"y")
                    .map_err(|e| ioerr("set opaque", e))?;
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." || target.starts_with(b".wh.")
            {
                return Err(unsafe_entry(&raw, "whiteout names no removable file"));
            }
            let target = OsStr::from_bytes(target);
            sys::remove_all_at(pfd.as_fd_borrowed(), target).map_err(|e| ioerr("replace", e))?;
            self.cache = None;
            sys::mknodat(pfd.as_fd_borrowed(), target, libc::S_IFCHR, 0, 0)
                .map_err(|e| ioerr("create whiteout", e))?;
            return Ok(());
        }

        // Replace whatever is there unless a directory meets a directory.
        if let Some(st) = sys::lstatat(pfd.as_fd_borrowed(), &name).map_err(|e| ioerr("stat", e))? {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !(is_dir && kind == EntryType::Directory) {
                sys::remove_all_at(pfd.as_fd_borrowed(), &name).map_err(|e| ioerr("replace", e))?;
                self.cache = None;
            }
        }

        match kind {
            EntryType::Directory => {
                match sys::mkdirat(pfd.as_fd_borrowed(), &name, 0o700) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(ioerr("mkdir", e)),
                }
                if !xattrs.is_empty() {
                    let d = sys::openat(pfd.as_fd_borrowed(), &name, DIR_FLAGS, 0)
                        .map_err(|e| ioerr("open", e))?;
                    for (k, v) in &xattrs {
                        sys::fsetxattr(d.as_fd_borrowed(), k, v)
                            .map_err(|e| ioerr("set xattr", e))?;
                    }
                }
                let mut path = join(parent);
                path.push(&name);
                self.dirs.push(DirMeta {
                    path,
                    mode,
                    uid,
                    gid,
                    mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = sys::openat(
                    pfd.as_fd_borrowed(),
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
                .map_err(|e| ioerr("create", e))?;
                let mut f = std::fs::File::from(fd);
                let n = copy_buf(&mut entry, &mut f).map_err(|e| ioerr("write", e))?;
                self.stats.size += n;
                let fd = OwnedFd::from(f);
                self.chown(&fd, OsStr::new(""), uid, gid, &raw)?;
                sys::fchmod(fd.as_fd_borrowed(), mode).map_err(|e| ioerr("chmod", e))?;
                for (k, v) in &xattrs {
                    sys::fsetxattr(fd.as_fd_borrowed(), k, v).map_err(|e| ioerr("set xattr", e))?;
                }
                sys::set_times(fd.as_fd_borrowed(), OsStr::new(""), mtime)
                    .map_err(|e| ioerr("set times", e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without target"))?;
                sys::symlinkat(OsStr::from_bytes(&target), pfd.as_fd_borrowed(), &name)
                    .map_err(|e| ioerr("symlink", e))?;
                self.chown(&pfd, &name, uid, gid, &raw)?;
                sys::set_times(pfd.as_fd_borrowed(), &name, mtime)
                    .map_err(|e| ioerr("set times", e))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&raw, "hard link without target"))?;
                let tcomps = components(&target)
                    .map_err(|_| unsafe_entry(&raw, "hard link target contains '..'"))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_entry(&raw, "hard link to the layer root"));
                };
                if tcomps == comps {
                    return Err(unsafe_entry(&raw, "hard link to itself"));
                }
                let tpfd = self.resolve_dir(tparent, false, &raw)?;
                sys::linkat(tpfd.as_fd_borrowed(), tname, pfd.as_fd_borrowed(), &name).map_err(
                    |e| {
                        ioerr(
                            &format!("hard link to {:?}", String::from_utf8_lossy(&target)),
                            e,
                        )
                    },
                )?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let fmt = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if self.opts.rootless && kind != EntryType::Fifo {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                sys::mknodat(pfd.as_fd_borrowed(), &name, fmt | mode, major, minor)
                    .map_err(|e| ioerr("mknod", e))?;
                self.chown(&pfd, &name, uid, gid, &raw)?;
                sys::set_times(pfd.as_fd_borrowed(), &name, mtime)
                    .map_err(|e| ioerr("set times", e))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        for d in std::mem::take(&mut self.dirs).iter().rev() {
            let fd = match sys::open_in_root(self.root.as_fd_borrowed(), &d.path, DIR_FLAGS, 0) {
                Ok(fd) => fd,
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    continue
                }
                Err(e) => return Err(Error::path("open directory", &d.path, e)),
            };
            if !self.opts.rootless {
                sys::lchownat(fd.as_fd_borrowed(), OsStr::new(""), d.uid, d.gid)
                    .map_err(|e| Error::path("chown directory", &d.path, e))?;
            } else if userns_root() {
                let _ = sys::lchownat(fd.as_fd_borrowed(), OsStr::new(""), d.uid, d.gid);
            }
            sys::fchmod(fd.as_fd_borrowed(), d.mode)
                .map_err(|e| Error::path("chmod directory", &d.path, e))?;
            sys::set_times(fd.as_fd_borrowed(), OsStr::new(""), d.mtime)
                .map_err(|e| Error::path("set times of directory", &d.path, e))?;
        }
        Ok(())
    }
}

fn copy_buf<R: Read, W: Write>(r: &mut R, w: &mut W) -> io::Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Unpacks a plain tar stream into `dest` (an existing, empty directory). Reads the stream to its
/// end so a hash wrapped around it covers all bytes.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let root = sys::open_dir(dest).map_err(|e| Error::path("open snapshot", dest, e))?;
    let mut u = Unpacker {
        root,
        cache: None,
        dirs: Vec::new(),
        opts: opts.clone(),
        stats: UnpackStats::default(),
    };
    let mut archive = tar::Archive::new(reader);
    {
        let entries = archive
            .entries()
            .map_err(|e| Error::io("read layer tar", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read layer tar", e))?;
            u.entry(entry)?;
        }
    }
    u.finish()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::io("read layer tar", e))?;
    Ok(u.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/fuzz_targets/layer_tar.rs): a header whose checksum is not a number
    /// made the tar crate's error quote the header's raw name, newline and escape sequence included,
    /// so `skiff pull`/`load` printed a multi-line error with terminal control bytes from the layer.
    #[test]
    fn corrupt_header_error_is_one_line() {
        let mut block = [0u8; 1024];
        let name = b"evil\n\x1b[31mred\rname";
        block[..name.len()].copy_from_slice(name);
        block[148..156].copy_from_slice(b"zzzzzzz\0");
        block[257..263].copy_from_slice(b"ustar\0");
        let d = tempfile::tempdir().unwrap();
        let opts = UnpackOptions { rootless: true };
        let e = unpack_layer(&block[..], d.path(), &opts)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("read layer tar: "), "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("evil\\n\\u{1b}[31mred\\rname"), "{e}");
    }

    #[test]
    fn components_refuse_dotdot() {
        assert!(components(b"a/../b").is_err());
        assert_eq!(
            components(b"/./a//b/").unwrap(),
            vec![OsString::from("a"), OsString::from("b")]
        );
    }
}
