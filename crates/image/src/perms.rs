//! Modes of everything skiff creates under its data root and run root (the CVE-2021-41091 class:
//! a host user who can reach a container's writable layer or a layer snapshot can execute a
//! setuid-root file a container or an image put there, and one who can read `config.json` or the
//! database reads every container's environment).
//!
//! The rule: skiff's own directories are 0700 and its own files 0600, given at creation (`mkdir`
//! and `open` with the mode, never the process umask). The only exceptions are the files a
//! container process reads through a bind mount (`hostname`, `hosts`, `resolv.conf`: 0644), the
//! `--init` binary (0755) and the roots of content trees, whose modes are the image's or the
//! container's (`snapshots/<chain>/fs`, `containers/<id>/upper`, `volumes/<name>/_data`): each
//! of those sits below a 0700 directory, so no other host user reaches it.
//!
//! A root made by an older skiff (0755 directories, 0644 files) is repaired when it is opened:
//! the root's own mode is the marker. A root that is not 0700 gets one walk of everything below
//! it (never into content trees, never across a mount) and is made 0700 last, so a crash in the
//! middle repeats the walk; a private root costs one `mkdir` and one `stat` per open.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Mode of every directory skiff keeps its own state in.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of every file skiff keeps its own state in.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the files bind-mounted into containers (`hostname`, `hosts`, `resolv.conf`).
pub const SHARED_FILE: u32 = 0o644;
/// Mode of directories whose inode becomes a container's or an image's root (`upper`, `fs`,
/// `_data`): the container's processes, whatever their uid, must be able to enter them.
pub const SHARED_DIR: u32 = 0o755;

/// The process umask, read once (two `umask` calls) and only by callers that create a file or
/// directory that other uids must be able to use.
pub fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        // SAFETY: umask cannot fail; the second call restores the value the first returned. A
        // file created by another thread in between gets a narrower mode, never a wider one.
        unsafe {
            let old = libc::umask(0o077);
            libc::umask(old);
            old as u32
        }
    })
}

/// True when the umask takes bits away from a mode that shares something with group or other
/// (private modes are never checked: the umask cannot widen them, and reading it costs syscalls).
fn narrowed(mode: u32) -> bool {
    mode & 0o077 != 0 && mode & umask() != 0
}

/// `mkdir(path, mode)`; `Ok(false)` when something already exists there (its mode is left alone).
pub fn mkdir(path: &Path, mode: u32) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// `mkdir -p` giving every directory it creates `mode`.
pub fn mkdir_all(path: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
}

/// Creates a directory others must be able to enter (`mode` has group/other bits), with exactly
/// `mode` even under a narrow umask; `Ok(false)` when it already existed.
pub fn mkdir_shared(path: &Path, mode: u32) -> io::Result<bool> {
    let made = mkdir(path, mode)?;
    if made && narrowed(mode) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(made)
}

/// Creates (or truncates) `path` with `mode` and writes `data`. A file that existed keeps its
/// inode, and gets `mode` too.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    if narrowed(mode) {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    f.write_all(data)
}

/// Opens (creating 0600 if needed) a file used only for `flock`.
pub fn lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Creates a new private file for writing (`O_EXCL`): temp files that are renamed into place.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Opens a SQLite database, creating the file 0600 first when it does not exist. SQLite itself
/// would create it 0644, and it gives the `-wal` and `-shm` files the database file's mode.
/// An existing database costs nothing extra: the first open does not create.
pub fn open_db(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match rusqlite::Connection::open_with_flags(path, flags) {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::CannotOpen => {
            let created = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(PRIVATE_FILE)
                .custom_flags(libc::O_CLOEXEC)
                .open(path);
            if let Err(err) = created {
                return Err(rusqlite::Error::SqliteFailure(
                    e,
                    Some(format!("create {}: {err}", path.display())),
                ));
            }
            rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_CREATE)
        }
        r => r,
    }
}

/// Makes `root` (the data root or the run root) exist and be private: created 0700, or, found
/// with another mode, repaired with [`repair_tree`] and then made 0700.
pub fn open_root(root: &Path) -> io::Result<()> {
    let made = match mkdir(root, PRIVATE_DIR) {
        Ok(made) => made,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Parents are the administrator's (e.g. /var/lib): made as `mkdir -p` makes them.
            if let Some(parent) = root.parent() {
                mkdir_all(parent, 0o755)?;
            }
            mkdir(root, PRIVATE_DIR)?
        }
        Err(e) => return Err(e),
    };
    if made {
        return Ok(());
    }
    let md = fs::metadata(root)?;
    // 0710 with an access ACL is a private root too: its group bits are the ACL's mask, there
    // to let one named id search it (a rootless `--userns auto` container's root; the owning
    // group has nothing).
    let mode = md.mode() & 0o7777;
    if mode != PRIVATE_DIR && !(mode == 0o710 && has_access_acl(root)) {
        repair_tree(root)?;
        fs::set_permissions(root, fs::Permissions::from_mode(PRIVATE_DIR))?;
    }
    Ok(())
}

/// True when `path` (not followed) carries a POSIX access ACL.
fn has_access_acl(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: lgetxattr with a valid path and name, asking only for the size (no buffer).
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    n > 0
}

/// What [`repair_tree`] does with one entry, by its path relative to the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// skiff's own state: group and other bits (and setuid/setgid/sticky) are removed.
    Private,
    /// Read by container processes through a bind mount: at most 0644.
    Shared,
    /// The `--init` binary, executed by container processes: at most 0755.
    Executable,
    /// A content tree (an image's or a container's files): left as it is, not entered.
    Content,
}

/// The rule for a path below a data root, given as its components (`["containers", id, "hosts"]`).
/// The same rule is what the permissions audit test checks.
pub fn rule(rel: &[&OsStr]) -> Rule {
    let s: Vec<&[u8]> = rel
        .iter()
        .map(|c| std::os::unix::ffi::OsStrExt::as_bytes(*c))
        .collect();
    match s.as_slice() {
        // A layer snapshot's files (also in-flight `.tmp-*` unpacks).
        [b"snapshots", _, b"fs", ..] => Rule::Content,
        // A container's writable layer, overlay work dir and mounted root.
        [b"containers", _, b"upper" | b"work" | b"rootfs", ..] => Rule::Content,
        [b"containers", _, b"hostname" | b"hosts" | b"resolv.conf"] => Rule::Shared,
        [b"volumes", _, b"_data", ..] => Rule::Content,
        // skiff build: RUN --mount=type=cache directories, and a step's overlay (its upper
        // directory is the next layer) and the trees it mounts for COPY --from and bind mounts.
        [b"builder", b"cache", name, ..]
            if !name.ends_with(b".lock") && !name.starts_with(b".") =>
        {
            Rule::Content
        }
        [b"tmp", _, b"upper" | b"work" | b"rootfs" | b"empty", ..] => Rule::Content,
        [b"tmp", _, d, ..] if d.starts_with(b"from-") || d.starts_with(b"rw-") => Rule::Content,
        // `skiff debug install`'s tools (mounted into debug sessions, run by any uid) and a
        // `debug --commit` session's writable layer.
        [b"debug", b"toolbox", b"bin", ..] => Rule::Content,
        [b"debug", b"sessions", _, b"upper" | b"work", ..] => Rule::Content,
        [b"init", name] if name.starts_with(b"skiff-init-") => Rule::Executable,
        _ => Rule::Private,
    }
}

/// Walks `root` once and takes away what a umask gave: group/other bits of skiff's own
/// directories and files ([`rule`]). Never follows symlinks, never enters content trees or
/// another filesystem (a mounted rootfs, a bind or tmpfs volume).
pub fn repair_tree(root: &Path) -> io::Result<()> {
    let dev = fs::metadata(root)?.dev();
    let mut rel = Vec::new();
    repair_children(root, dev, &mut rel)
}

fn repair_children(dir: &Path, dev: u64, rel: &mut Vec<std::ffi::OsString>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let Ok(e) = e else { continue };
        let path = e.path();
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue; // removed meanwhile
        };
        if md.file_type().is_symlink() || md.dev() != dev {
            continue;
        }
        rel.push(e.file_name());
        let comps: Vec<&OsStr> = rel.iter().map(|c| c.as_os_str()).collect();
        let r = rule(&comps);
        let mode = md.mode() & 0o7777;
        let want = match r {
            Rule::Content => None,
            Rule::Private => Some(mode & 0o700),
            Rule::Shared => Some(mode & 0o644),
            Rule::Executable => Some(mode & 0o755),
        };
        if let Some(want) = want.filter(|w| *w != mode) {
            fs::set_permissions(&path, fs::Permissions::from_mode(want))?;
        }
        if r != Rule::Content && md.is_dir() {
            repair_children(&path, dev, rel)?;
        }
        rel.pop();
    }
    Ok(())
}

/// `fchmod` of an open file (a socket before `bind` gives the socket file that mode).
pub fn fchmod(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on a descriptor the caller owns.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn r(p: &str) -> Rule {
        let comps: Vec<&OsStr> = p.split('/').map(OsStr::new).collect();
        rule(&comps)
    }

    #[test]
    fn rules() {
        assert_eq!(r("skiff.db"), Rule::Private);
        assert_eq!(r("snapshots/abc"), Rule::Private);
        assert_eq!(r("snapshots/abc/meta.json"), Rule::Private);
        assert_eq!(r("snapshots/abc/fs"), Rule::Content);
        assert_eq!(r("snapshots/abc/fs/bin/su"), Rule::Content);
        assert_eq!(r("containers/x/upper"), Rule::Content);
        assert_eq!(r("containers/x/config.json"), Rule::Private);
        assert_eq!(r("containers/x/hosts"), Rule::Shared);
        assert_eq!(r("volumes/v/_data"), Rule::Content);
        assert_eq!(r("volumes/v"), Rule::Private);
        assert_eq!(r("init/skiff-init-1"), Rule::Executable);
        assert_eq!(r("builder/cache/abc/data"), Rule::Content);
        assert_eq!(r("builder/cache/abc.lock"), Rule::Private);
        assert_eq!(r("builder/cache"), Rule::Private);
        assert_eq!(r("tmp/build-1/upper/etc/shadow"), Rule::Content);
        assert_eq!(r("tmp/build-1/config.json"), Rule::Private);
        assert_eq!(r("tmp/build-1/from-0/rootfs"), Rule::Content);
    }

    #[test]
    fn repair_strips_group_and_other() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for p in ["containers/x/upper/bin", "snapshots/c/fs", "locks"] {
            fs::create_dir_all(root.join(p)).unwrap();
        }
        for (p, m) in [
            ("skiff.db", 0o644),
            ("containers/x/config.json", 0o666),
            ("containers/x/hosts", 0o666),
            ("containers/x/upper/bin/su", 0o4755),
        ] {
            fs::write(root.join(p), "").unwrap();
            fs::set_permissions(root.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        for p in [
            "",
            "containers",
            "containers/x",
            "snapshots",
            "snapshots/c/fs",
        ] {
            fs::set_permissions(root.join(p), fs::Permissions::from_mode(0o755)).unwrap();
        }
        open_root(&root).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("containers"), 0o700);
        assert_eq!(mode("containers/x"), 0o700);
        assert_eq!(mode("skiff.db"), 0o600);
        assert_eq!(mode("containers/x/config.json"), 0o600);
        assert_eq!(mode("containers/x/hosts"), 0o644);
        assert_eq!(mode("containers/x/upper/bin/su"), 0o4755);
        assert_eq!(mode("snapshots/c/fs"), 0o755);
    }
}
