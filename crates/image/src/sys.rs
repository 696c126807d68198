//! Thin, safe wrappers over the `*at` system calls the unpacker and store need. Every path argument
//! here is a single component or a path resolved with `RESOLVE_IN_ROOT`, so nothing escapes a root.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a directory (O_PATH unless `readable`).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is checked and owned.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: every `..` and absolute
/// symlink is resolved as if `dir` were `/`, so the result is always inside `dir`.
pub fn open_in_root(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let p = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let c = cstr(p.as_os_str())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            mode as u64
        } else {
            0
        },
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `how` is a valid open_how of the size passed; `c` is NUL-terminated; the fd is
        // owned below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: fd is a freshly opened descriptor that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    }
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)` on one component.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated name; result checked and owned.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
}

/// `mknodat(dir, name, mode, dev)`.
pub fn mknodat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let c = cstr(name)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, dev) })
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// `linkat(odir, oname, ndir, nname, 0)`: never follows a symlink at `oname`.
pub fn linkat(
    odir: BorrowedFd<'_>,
    oname: &OsStr,
    ndir: BorrowedFd<'_>,
    nname: &OsStr,
) -> io::Result<()> {
    let o = cstr(oname)?;
    let n = cstr(nname)?;
    // SAFETY: valid dirfds and NUL-terminated names.
    check(unsafe {
        libc::linkat(
            odir.as_raw_fd(),
            o.as_ptr(),
            ndir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `Ok(None)` when absent.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, NUL-terminated name and a valid stat buffer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::NotFound {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(st))
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)` (empty name: the fd itself).
pub fn lchownat(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), c.as_ptr(), uid, gid, flags) })
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// Sets atime and mtime (seconds) of `name` in `dir` without following symlinks (empty name: `dir`).
pub fn set_times(dir: BorrowedFd<'_>, name: &OsStr, mtime: i64) -> io::Result<()> {
    let c = cstr(name)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    if name.is_empty() {
        // SAFETY: valid fd and a two-element timespec array.
        return check(unsafe { libc::futimens(dir.as_raw_fd(), times.as_ptr()) });
    }
    // SAFETY: valid dirfd, NUL-terminated name and a two-element timespec array.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), c.as_ptr(), times.as_ptr(), flags) })
}

/// `fsetxattr(fd, name, value)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    let n = cstr(OsStr::new(name))?;
    // SAFETY: valid fd, NUL-terminated name, and a value pointer/length pair from a slice.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `fgetxattr(fd, name)`; `Ok(None)` when absent.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let n = cstr(OsStr::new(name))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid fd, NUL-terminated name and a writable buffer of the given length.
    let r = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODATA) {
            return Ok(None);
        }
        return Err(e);
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

/// `unlinkat(dir, name, flags)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// Lists the names in a directory fd (excluding `.` and `..`).
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let fd = openat(dir, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = fd.as_raw_fd();
    std::mem::forget(fd);
    // SAFETY: raw is an fd we own; fdopendir takes ownership of it (closed by closedir).
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own raw.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: d is a valid DIR stream until closedir.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    // SAFETY: d is valid and closed exactly once.
    unsafe { libc::closedir(d) };
    Ok(out)
}

/// Removes `name` in `dir` and everything below it without following symlinks.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstatat(dir, name)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return unlinkat(dir, name, false);
    }
    {
        let sub = openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        for child in list_dir(sub.as_fd_borrowed())? {
            remove_all_at(sub.as_fd_borrowed(), &child)?;
        }
    }
    unlinkat(dir, name, true)
}

/// Removes a path and everything below it (no symlink following); absent is fine.
pub fn remove_all(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot remove a root path",
        ));
    };
    let p = match open_dir(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_all_at(p.as_fd_borrowed(), name)
}

/// Borrowing helper for `OwnedFd`.
pub trait AsFdBorrowed {
    /// Borrows the fd.
    fn as_fd_borrowed(&self) -> BorrowedFd<'_>;
}

impl AsFdBorrowed for OwnedFd {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

/// fsyncs a directory so renames inside it are durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    f.sync_all()
}

/// Takes a `flock` on `fd` (exclusive or shared); with `nonblock` returns `Ok(false)` if busy.
pub fn flock(fd: BorrowedFd<'_>, exclusive: bool, nonblock: bool) -> io::Result<bool> {
    let mut op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    if nonblock {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: valid fd.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if nonblock => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// True when this process may create device nodes and change ownership freely: euid 0 in the
/// initial user namespace.
pub fn is_real_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => {
            let f: Vec<&str> = m.split_whitespace().collect();
            f.len() >= 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
        }
        Err(_) => true,
    }
}
