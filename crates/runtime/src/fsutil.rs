//! Race-free path handling inside a container root: every lookup goes through openat2(2) with
//! RESOLVE_IN_ROOT, so symlinks (absolute or `..`) planted in the rootfs can never lead outside it.

use crate::error::{Error, Result};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn cstr(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("path {p:?} contains a NUL byte")))
}

/// openat2(dirfd, path, flags) resolving `path` as if `dirfd` were `/`.
pub fn openat_in_root(
    root: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
) -> std::result::Result<OwnedFd, Errno> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstr(rel).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a properly sized open_how struct that
        // both outlive the call; the kernel returns a new fd or -1.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a fresh descriptor that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = Errno::last();
        if e != Errno::EINTR && e != Errno::EAGAIN {
            return Err(e);
        }
    }
}

/// Open a plain path (host side) with O_PATH|O_CLOEXEC, following symlinks.
pub fn open_path(path: &Path, flags: i32) -> Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string; open returns a new fd or -1.
    let r = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(Error::Sys {
            what: format!("open {}", path.display()),
            errno: Errno::last(),
        });
    }
    // SAFETY: fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The /proc/self/fd path naming `fd`, used as a mount source/target so the kernel acts on the exact
/// inode we resolved.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `path` normalized lexically as an absolute path below root (`.` dropped, `..` clamped at /).
pub fn clean_in_root(path: &Path) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(components(path));
    p
}

/// Normalize `path` lexically into components below root (drops `.`, `..` clamps at root).
fn components(path: &Path) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// What to create at the end of a path if it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// An empty regular file.
    File,
}

/// Resolve `path` inside `root`, creating missing directories (and the final entry as `kind`), and
/// return an O_PATH fd to it. Never leaves the root, whatever symlinks the rootfs contains.
pub fn mkdir_all_in_root(root: RawFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    mkdir_all_depth(root, path, kind, 0)
}

/// The target of `path` if it is a symlink inside the root (not followed).
fn dangling_link(root: RawFd, path: &Path) -> Option<PathBuf> {
    let parent = openat_in_root(root, path.parent()?, libc::O_PATH | libc::O_DIRECTORY, 0).ok()?;
    let name = cstr(Path::new(path.file_name()?)).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid dirfd, C string and a writable buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            parent.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
    ))
}

fn mkdir_all_depth(root: RawFd, path: &Path, kind: Kind, depth: u32) -> Result<OwnedFd> {
    match openat_in_root(root, path, libc::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Sys {
                what: format!("resolve {} in rootfs", path.display()),
                errno: e,
            })
        }
    }
    let comps = components(path);
    let mut cur = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let next = cur.join(c);
        match openat_in_root(root, &next, libc::O_PATH, 0) {
            Ok(_) => {}
            Err(Errno::ENOENT) if depth < 40 && dangling_link(root, &next).is_some() => {
                // A dangling symlink: create what it points to, resolved inside the root (an
                // absolute target is relative to the root, never to the host), then go on.
                let target = dangling_link(root, &next).unwrap_or_default();
                let base = if target.is_absolute() {
                    PathBuf::from("/")
                } else {
                    cur.clone()
                };
                let mut rest = base.join(target);
                for c in &comps[i + 1..] {
                    rest.push(c);
                }
                return mkdir_all_depth(root, &rest, kind, depth + 1);
            }
            Err(Errno::ENOENT) => {
                // Create it inside the (already safely resolved) parent.
                let parent = openat_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| Error::Sys {
                        what: format!("resolve {} in rootfs", cur.display()),
                        errno: e,
                    })?;
                let name = cstr(Path::new(c))?;
                if last && kind == Kind::File {
                    // SAFETY: valid dirfd and C string; O_EXCL|O_NOFOLLOW never follows a link.
                    let r = unsafe {
                        libc::openat(
                            parent.as_raw_fd(),
                            name.as_ptr(),
                            libc::O_CREAT
                                | libc::O_EXCL
                                | libc::O_NOFOLLOW
                                | libc::O_CLOEXEC
                                | libc::O_WRONLY,
                            0o644,
                        )
                    };
                    if r < 0 && Errno::last() != Errno::EEXIST {
                        return Err(Error::Sys {
                            what: format!("create {} in rootfs", next.display()),
                            errno: Errno::last(),
                        });
                    }
                    if r >= 0 {
                        // SAFETY: r is a descriptor we just opened and no one else closes.
                        unsafe { libc::close(r) };
                    }
                } else {
                    // SAFETY: valid dirfd and C string.
                    let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
                    if r < 0 && Errno::last() != Errno::EEXIST {
                        return Err(Error::Sys {
                            what: format!("mkdir {} in rootfs", next.display()),
                            errno: Errno::last(),
                        });
                    }
                }
            }
            Err(e) => {
                return Err(Error::Sys {
                    what: format!("resolve {} in rootfs", next.display()),
                    errno: e,
                })
            }
        }
        cur = next;
    }
    openat_in_root(root, path, libc::O_PATH, 0).map_err(|e| Error::Sys {
        what: format!("resolve {} in rootfs", path.display()),
        errno: e,
    })
}

/// Write `data` to a file (no create), e.g. under /proc.
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Mode of the runtime's state directories (the state root and `<root>/<id>`).
pub const STATE_DIR_MODE: u32 = 0o700;
/// Mode of the runtime's state files (state.json, pid files, exec.sock, seccomp cache entries).
pub const STATE_FILE_MODE: u32 = 0o600;

/// `mkdir -p` with [`STATE_DIR_MODE`] for every directory it makes (given at creation, so the
/// umask can only narrow it).
pub fn mkdir_state(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(path)
}

/// Writes `data` to `tmp` (created or truncated with [`STATE_FILE_MODE`]) and renames it to `path`.
pub fn write_state_file(tmp: &Path, path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(STATE_FILE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)
        .map_err(io(tmp))?;
    f.write_all(data).map_err(io(tmp))?;
    drop(f);
    std::fs::rename(tmp, path).map_err(io(path))
}

/// Copy the tree under directory `from` into directory `to` (the `tmpcopyup` mount option: a fresh
/// tmpfs starts with what its mountpoint held): files, directories, symlinks and device nodes with
/// their modes and owners. Never follows a symlink; errors name the entry.
pub fn copy_tree(from: &OwnedFd, to: &OwnedFd) -> Result<()> {
    use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
    use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
    use std::os::fd::AsFd;
    let dup = nix::unistd::dup(from).map_err(|e| Error::Sys {
        what: "dup".into(),
        errno: e,
    })?;
    let mut dir = nix::dir::Dir::from_fd(dup).map_err(|e| Error::Sys {
        what: "opendir".into(),
        errno: e,
    })?;
    let names: Vec<CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.to_bytes() != b"." && n.to_bytes() != b"..")
        .collect();
    for name in names {
        let what = |op: &str| format!("{op} {}", name.to_string_lossy());
        let sys = |op: &str| {
            let w = what(op);
            move |errno| Error::Sys { what: w, errno }
        };
        let st = fstatat(from.as_fd(), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(sys("stat"))?;
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let fmt = st.st_mode & libc::S_IFMT;
        match fmt {
            libc::S_IFDIR => {
                mkdirat(to.as_fd(), name.as_c_str(), Mode::from_bits_truncate(0o700))
                    .map_err(sys("mkdir"))?;
                let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let src = openat(from.as_fd(), name.as_c_str(), flags, Mode::empty())
                    .map_err(sys("open"))?;
                let dst = openat(to.as_fd(), name.as_c_str(), flags, Mode::empty())
                    .map_err(sys("open"))?;
                copy_tree(&src, &dst)?;
            }
            libc::S_IFREG => {
                let src = openat(
                    from.as_fd(),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open"))?;
                let dst = openat(
                    to.as_fd(),
                    name.as_c_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(sys("create"))?;
                let mut src = std::fs::File::from(src);
                let mut dst = std::fs::File::from(dst);
                std::io::copy(&mut src, &mut dst)
                    .map_err(|e| Error::Other(format!("{}: {e}", what("copy"))))?;
            }
            libc::S_IFLNK => {
                let target = readlinkat(from.as_fd(), name.as_c_str()).map_err(sys("readlink"))?;
                nix::unistd::symlinkat(target.as_os_str(), to.as_fd(), name.as_c_str())
                    .map_err(sys("symlink"))?;
            }
            _ => {
                mknodat(
                    to.as_fd(),
                    name.as_c_str(),
                    SFlag::from_bits_truncate(fmt),
                    perm,
                    st.st_rdev,
                )
                .map_err(sys("mknod"))?;
            }
        }
        nix::unistd::fchownat(
            to.as_fd(),
            name.as_c_str(),
            Some(nix::unistd::Uid::from_raw(st.st_uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys("chown"))?;
        if fmt != libc::S_IFLNK {
            // After chown, which clears setuid/setgid bits.
            fchmodat(
                to.as_fd(),
                name.as_c_str(),
                perm,
                FchmodatFlags::FollowSymlink,
            )
            .map_err(sys("chmod"))?;
        }
    }
    Ok(())
}

/// Write `pid` to `path` atomically, as runc does (`--pid-file`): a temporary file with a random
/// name in the same directory, created O_EXCL|O_NOFOLLOW (a symlink planted at any name is never
/// followed), mode 0644, then renamed over `path` (which replaces a symlink there, never its target).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    use nix::fcntl::{open, openat, renameat, OFlag};
    use nix::sys::stat::Mode;
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("pid file {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let sys = |what: String| move |errno| Error::Sys { what, errno };
    let dirfd = open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(format!("pid file: open {}", dir.display())))?;
    let mut rnd = [0u8; 8];
    // SAFETY: getrandom writes at most rnd.len() bytes into the local buffer.
    let n = unsafe { libc::getrandom(rnd.as_mut_ptr() as *mut libc::c_void, rnd.len(), 0) };
    if n != rnd.len() as isize {
        return Err(Error::Sys {
            what: "pid file: getrandom".into(),
            errno: Errno::last(),
        });
    }
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = format!(".{}.{suffix}", name.to_string_lossy());
    let fd = openat(
        &dirfd,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(sys(format!("pid file: create {}/{tmp}", dir.display())))?;
    let res = (|| {
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o644))
            .map_err(sys(format!("pid file: chmod {}/{tmp}", dir.display())))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(pid.to_string().as_bytes())
            .map_err(|source| Error::Io {
                path: dir.join(&tmp),
                source,
            })?;
        drop(f);
        renameat(&dirfd, tmp.as_str(), &dirfd, name)
            .map_err(sys(format!("pid file: rename to {}", path.display())))
    })();
    if res.is_err() {
        let _ = nix::unistd::unlinkat(
            &dirfd,
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    res
}
