//! CVE-2019-5736 defense: processes that enter a container must not have the host's runtime binary,
//! writable, as their `/proc/self/exe`; otherwise a container program that makes the kernel execute
//! `/proc/self/exe` (an image whose /bin/sh is `#!/proc/self/exe`) could reopen and overwrite it.
//! We re-execute the runtime through a detached, read-only bind mount of its own file (open_tree +
//! mount_setattr, no copy; writes through /proc/<pid>/exe then fail with EROFS), and fall back to a
//! sealed memfd copy where that is not permitted (rootless).

use crate::error::{Error, Result};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const F_SEAL_SEAL: i32 = 0x1;
const F_SEAL_SHRINK: i32 = 0x2;
const F_SEAL_GROW: i32 = 0x4;
const F_SEAL_WRITE: i32 = 0x8;
const MFD_EXEC: u32 = 0x10;

/// True when this process already runs from a sealed memfd or a read-only mount.
pub fn running_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl on an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & F_SEAL_WRITE != 0 {
        return true;
    }
    // SAFETY: a zeroed statvfs is a valid out buffer for fstatvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    unsafe { libc::fstatvfs(f.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0 }
}

/// A detached, read-only bind mount of our own binary (needs CAP_SYS_ADMIN for its mount ns);
/// `/proc/self/fd/<fd>` then executes this binary without making the host file anyone's exe.
pub fn readonly_self() -> Option<OwnedFd> {
    readonly_view(c"/proc/self/exe")
}

/// A detached, read-only bind mount of the file at `path` (see [`readonly_self`]); None where
/// mounts are not permitted.
pub fn readonly_view(path: &std::ffi::CStr) -> Option<OwnedFd> {
    // SAFETY: valid C string; open_tree returns a new fd or -1.
    let t = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            1u32 | libc::O_CLOEXEC as u32,
        )
    };
    if t < 0 {
        return None;
    }
    // SAFETY: fresh fd from open_tree.
    let tree = unsafe { OwnedFd::from_raw_fd(t as i32) };
    let attr: [u64; 4] = [0x1 /* MOUNT_ATTR_RDONLY */, 0, 0, 0];
    // SAFETY: attr is a struct mount_attr of the given size; the empty path is a valid C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            0x1000u32,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    (r == 0).then_some(tree)
}

/// An executable descriptor of the file at `path` that no process can write through: its
/// read-only view ([`readonly_view`]), else a sealed memfd copy (rootless, no mount rights).
pub fn sealed_view(path: &std::ffi::CStr) -> Result<OwnedFd> {
    match readonly_view(path) {
        Some(fd) => Ok(fd),
        None => sealed_copy(path),
    }
}

/// Unless already sealed, copy /proc/self/exe into a sealed memfd and re-execute it with the same
/// argv and environment. Returns only on failure (or when already sealed).
pub fn ensure_sealed_exe() -> Result<()> {
    if running_sealed() {
        return Ok(());
    }
    reexec(&sealed_view(c"/proc/self/exe")?)
}

/// The file at `path` copied into a memfd sealed against every write, growth and shrink.
fn sealed_copy(path: &std::ffi::CStr) -> Result<OwnedFd> {
    let shown = path.to_string_lossy();
    let src =
        std::fs::File::open(&*shown).map_err(|e| Error::Other(format!("open {shown}: {e}")))?;
    let len = src.metadata().map(|m| m.len()).unwrap_or(0);
    let name = c"skiff-runtime";
    let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | MFD_EXEC;
    // SAFETY: valid C string; returns a new fd or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // Kernels before 6.3 do not know MFD_EXEC; memfds are executable there anyway.
        flags &= !MFD_EXEC;
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(Error::Sys {
            what: "memfd_create".into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: fresh fd we own.
    let mfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut left = len as usize;
    while left > 0 {
        // SAFETY: both fds are open; null offsets use and advance the file positions.
        let n =
            unsafe { libc::sendfile(mfd.as_raw_fd(), src.as_raw_fd(), std::ptr::null_mut(), left) };
        if n <= 0 {
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(Error::Sys {
                what: "copy runtime binary to memfd".into(),
                errno: Errno::last(),
            });
        }
        left -= n as usize;
    }
    // SAFETY: fcntl on an fd we own.
    if unsafe {
        libc::fcntl(
            mfd.as_raw_fd(),
            libc::F_ADD_SEALS,
            F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
        )
    } < 0
    {
        return Err(Error::Sys {
            what: "seal runtime memfd".into(),
            errno: Errno::last(),
        });
    }
    Ok(mfd)
}

/// execveat(fd) with our argv and environment; returns only on failure.
fn reexec(fd: &OwnedFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend(v.into_encoded_bytes());
            CString::new(b).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings alive for the call;
    // AT_EMPTY_PATH executes the memfd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::Sys {
        what: "re-exec sealed runtime".into(),
        errno: Errno::last(),
    })
}
