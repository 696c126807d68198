//! Process helpers: liveness checks that survive pid reuse (pid + start time), waiting for an
//! unrelated process to exit (pidfd), and mount checks.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Start time of `pid` (clock ticks since boot); `None` if gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    skiff_runtime::state::pid_start_time(pid)
}

/// True if `pid` is alive and is the process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// Waits until the process (`pid`, `start`) is gone or `timeout` passes; true when gone.
pub fn wait_gone(pid: i32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open with integer arguments; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd >= 0 && alive(pid, start) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r > 0 || left.is_zero() {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
    if fd >= 0 {
        // SAFETY: closing the pidfd we opened.
        unsafe { libc::close(fd) };
    }
    while alive(pid, start) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// True when `path` is a mount point (its device differs from its parent's).
pub fn is_mountpoint(path: &Path) -> bool {
    let (Ok(a), Some(Ok(b))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    a.dev() != b.dev()
}

/// Lazily unmounts `path` if it is a mount point.
pub fn unmount(path: &Path) {
    if !is_mountpoint(path) {
        return;
    }
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Unmounts what the engine mounted for a stopped container under its directory `dir`: the
/// rootfs overlay and a `--ipc shareable` /dev/shm tmpfs (`shm`; containers that joined it keep
/// their own reference to it until they stop).
pub fn unmount_container(dir: &Path) {
    unmount(&dir.join("rootfs"));
    unmount(&dir.join(SHM_DIR));
}

/// The directory of a container's shareable /dev/shm tmpfs, under its container directory.
pub const SHM_DIR: &str = "shm";

/// Mounts the `--ipc shareable` /dev/shm tmpfs of the container whose directory is `dir` (at
/// `<dir>/shm`, a private 0700 directory; the tmpfs itself is 1777 as /dev/shm is), unless it is
/// mounted already.
pub fn mount_shm(dir: &Path, size: i64) -> std::io::Result<()> {
    let target = dir.join(SHM_DIR);
    if is_mountpoint(&target) {
        return Ok(());
    }
    skiff_image::perms::mkdir(&target, skiff_image::perms::PRIVATE_DIR)?;
    let size = if size > 0 {
        size
    } else {
        crate::hostflags::DEFAULT_SHM
    };
    nix::mount::mount(
        Some("shm"),
        &target,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .map_err(std::io::Error::from)
}

/// Current time as RFC 3339 with nanoseconds.
pub fn now() -> String {
    skiff_runtime::util::now_rfc3339()
}

/// Names this process as `ps` shows it: `comm` (truncated to the kernel's 15 bytes) and the
/// command line, written over the process's argument block (truncated to its size, so nothing
/// else moves). For the monitor: `skiff-monitor <id12>`, not the `/proc/self/fd/N` it was
/// exec'd through.
pub fn set_title(comm: &str, title: &str) {
    let comm: Vec<u8> = comm.bytes().filter(|b| *b != 0).take(15).collect();
    if let Ok(c) = std::ffi::CString::new(comm) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes, which `c` is.
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
    }
    // arg_start and arg_end are fields 48 and 49 of /proc/self/stat (45 and 46 after the comm).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) = (
        f.get(45).map(|s| s.parse::<usize>()),
        f.get(46).map(|s| s.parse::<usize>()),
    ) else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }
    let len = end - start;
    let mut buf: Vec<u8> = title.bytes().filter(|b| *b != 0).take(len - 1).collect();
    buf.resize(len, 0);
    // SAFETY: [arg_start, arg_end) is this process's argument block, which the kernel mapped
    // writable at the top of the main thread's stack for the process's lifetime; the caller (the
    // single-threaded monitor) has copied its arguments out and never reads argv again, and we
    // write exactly `len` bytes, the last a NUL.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), start as *mut u8, len) };
}
