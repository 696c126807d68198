//! Root filesystems for containers: an overlay mount of an image's layer snapshots (lowerdirs),
//! with a per-container upper and work directory; or, when overlayfs is unavailable, a private copy
//! of the layers merged in order (whiteouts and opaque directories applied).

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::store::{ImageRecord, Store};
use crate::sys::{self, AsFdBorrowed};

/// How a container root filesystem was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// An overlay mount (must be unmounted with [`unmount`]).
    Overlay,
    /// A private copy of the merged layers.
    Copy,
}

/// A prepared container root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The directory to use as the container root.
    pub path: PathBuf,
    /// Overlay or copy.
    pub kind: RootfsKind,
}

fn check_opt_path(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::invalid("overlay path", format!("{} is not UTF-8", p.display())))?;
    if s.contains([',', ':', '\\']) {
        return Err(Error::invalid(
            "overlay path",
            format!("{s} contains ',', ':' or '\\'"),
        ));
    }
    Ok(s.to_string())
}

/// Mounts overlayfs at `target` with `lowers` (bottom layer first), `upper` and `work`. An empty
/// `lowers` is not allowed by overlayfs; give at least one layer.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    mount_overlay_with(lowers, upper, work, target, false)
}

/// Like [`mount_overlay`], with overlayfs' `volatile` option (Linux 5.10+): the overlay never
/// syncs its upper layer, so unmounting it costs no writeback of the host filesystem. For
/// containers that are discarded when they exit (`--rm`), as Podman does; a kernel without the
/// option gets a normal mount.
pub fn mount_overlay_volatile(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    match mount_overlay_with(lowers, upper, work, target, true) {
        Err(Error::Io { ref source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            mount_overlay_with(lowers, upper, work, target, false)
        }
        r => r,
    }
}

/// A volatile mount leaves `work/work/incompat/volatile` behind, and overlayfs refuses that work
/// directory until it is gone. Our unmounts are clean, so the upper layer is whole: drop the
/// marker so the next mount (volatile or not) succeeds.
fn clear_volatile_marker(work: &Path) {
    let marker = work.join("work/incompat/volatile");
    if fs::symlink_metadata(&marker).is_ok() {
        let _ = fs::remove_dir_all(&marker);
    }
}

/// Linux's limit on overlayfs lower layers (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// mount(2) copies at most one page of options: deeper stacks (or longer paths) go through
/// the new mount API instead.
const PAGE: usize = 4096;

/// fsconfig(2) refuses string values longer than this (`strndup_user(value, 256)`): a longer
/// layer path is handed over as a descriptor.
const FSCONFIG_MAX_STRING: usize = 255;

fn mount_overlay_with(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    volatile: bool,
) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::invalid(
            "overlay mount",
            "an image needs at least one layer",
        ));
    }
    if lowers.len() > MAX_LAYERS {
        return Err(Error::invalid(
            "overlay mount",
            format!(
                "the image has {} layers; overlayfs stacks at most {MAX_LAYERS}",
                lowers.len()
            ),
        ));
    }
    // Top layer first, as overlayfs lists them.
    let mut lower = Vec::with_capacity(lowers.len());
    for l in lowers.iter().rev() {
        lower.push(check_opt_path(l)?);
    }
    let layers = Layers {
        lower,
        upper: check_opt_path(upper)?,
        work: check_opt_path(work)?,
        volatile,
        userxattr: !sys::is_real_root(),
    };
    clear_volatile_marker(work);
    if layers.userxattr && fuse_forced() {
        return mount_fuse(lowers, upper, work, target, None);
    }
    let opts = layers.options(|s| s.to_string());
    let r = if opts.len() < PAGE {
        // The common case: one mount(2).
        mount_classic(&opts, target)
    } else {
        mount_deep(&layers, target)
    };
    match r {
        // Rootless on a kernel (or a filesystem under the store) where overlayfs cannot be
        // mounted in a user namespace: fuse-overlayfs, when installed and /dev/fuse is open.
        Err(Error::Io { ref source, .. })
            if layers.userxattr
                && matches!(
                    source.raw_os_error(),
                    Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::ENODEV)
                )
                && fuse_overlayfs_usable() =>
        {
            mount_fuse(lowers, upper, work, target, None)
        }
        r => r,
    }
}

/// The environment variable that makes rootless overlays use fuse-overlayfs even where the
/// kernel's overlayfs works in the user namespace (`SKIFF_ROOTLESS_OVERLAY=fuse-overlayfs`).
pub const OVERLAY_ENV: &str = "SKIFF_ROOTLESS_OVERLAY";

/// True when [`OVERLAY_ENV`] asks for fuse-overlayfs.
fn fuse_forced() -> bool {
    std::env::var(OVERLAY_ENV).is_ok_and(|v| v == "fuse-overlayfs")
}

/// The fuse-overlayfs binary when installed (Debian package fuse-overlayfs).
pub fn fuse_overlayfs_binary() -> Option<PathBuf> {
    ["/usr/bin/fuse-overlayfs", "/usr/local/bin/fuse-overlayfs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// True when fuse-overlayfs is installed and this process can open /dev/fuse.
pub fn fuse_overlayfs_usable() -> bool {
    fuse_overlayfs_binary().is_some()
        && fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok()
}

/// An id mapping for [`mount_fuse`]: the files' owners on disk (`0..size` from `from`) as the
/// mount shows them (`to..to+size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    /// First id shown by the mount.
    pub to: u32,
    /// Number of ids.
    pub size: u32,
}

/// Mounts fuse-overlayfs at `target` (a daemon of its own serves it until the mount goes): the
/// rootless fallback, and the way a container of `--userns auto` sees the layers' owners shifted
/// into its slice of ids (`shift`: disk ids 0.. shown as `to`..). Whiteouts and opaque
/// directories of layers unpacked rootless (`user.overlay.*` xattrs) are fuse-overlayfs's own
/// conventions too.
pub fn mount_fuse(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    shift: Option<IdShift>,
) -> Result<()> {
    let bin = fuse_overlayfs_binary().ok_or_else(|| {
        Error::invalid(
            "fuse-overlayfs",
            "not installed (Debian package fuse-overlayfs)",
        )
    })?;
    let mut lower = Vec::with_capacity(lowers.len());
    for l in lowers.iter().rev() {
        lower.push(check_opt_path(l)?);
    }
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        check_opt_path(upper)?,
        check_opt_path(work)?
    );
    if let Some(m) = shift {
        // fuse-overlayfs's mapping is container:host:size, the host side being what is on disk.
        opts.push_str(&format!(
            ",uidmapping=0:{to}:{n},gidmapping=0:{to}:{n}",
            to = m.to,
            n = m.size
        ));
    }
    let out = std::process::Command::new(&bin)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::io(format!("mount fuse-overlayfs at {}", target.display()), e))?;
    if !out.status.success() {
        return Err(Error::io(
            format!(
                "mount fuse-overlayfs at {}: {}",
                target.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            io::Error::from_raw_os_error(libc::EIO),
        ));
    }
    Ok(())
}

/// The paths of one overlay mount, as overlayfs takes them (top lower layer first).
struct Layers {
    lower: Vec<String>,
    upper: String,
    work: String,
    volatile: bool,
    /// `user.overlay.*` xattrs (rootless: the namespace cannot use `trusted.*`).
    userxattr: bool,
}

impl Layers {
    /// mount(2) options, each path written by `name`.
    fn options(&self, mut name: impl FnMut(&str) -> String) -> String {
        let lower: Vec<String> = self.lower.iter().map(|l| name(l)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}{}{}",
            lower.join(":"),
            name(&self.upper),
            name(&self.work),
            if self.volatile { ",volatile" } else { "" },
            if self.userxattr { ",userxattr" } else { "" }
        )
    }
}

fn mount_error(target: &Path, e: io::Error, detail: &str) -> Error {
    let why = match e.raw_os_error() {
        Some(libc::ENODEV) => "overlayfs is not available in this kernel".to_string(),
        Some(libc::EPERM) => "not permitted (rootless without overlay support?)".to_string(),
        _ if !detail.is_empty() => format!("{e} ({detail})"),
        _ => e.to_string(),
    };
    Error::io(format!("mount overlay at {}: {why}", target.display()), e)
}

/// One mount(2) with `opts` (shorter than a page).
fn mount_classic(opts: &str, target: &Path) -> Result<()> {
    let src = CString::new("overlay").map_err(|e| Error::invalid("overlay", e))?;
    let tgt = CString::new(target.as_os_str().as_bytes())
        .map_err(|e| Error::invalid("overlay target", e))?;
    let data = CString::new(opts).map_err(|e| Error::invalid("overlay options", e))?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if r < 0 {
        return Err(mount_error(target, io::Error::last_os_error(), ""));
    }
    Ok(())
}

/// Whether this kernel's overlayfs takes `lowerdir+` through fsconfig(2) (Linux 6.8+): found out
/// by the first deep mount of the process and remembered.
static LOWERDIR_PLUS: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Whether fsconfig(2) takes layers as descriptors (`FSCONFIG_SET_FD`, Linux 6.13+).
static LAYER_FDS: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// Makes deep mounts of this process use the fallback for kernels without `lowerdir+` (classic
/// mount(2) options naming each layer by a short `/proc/self/fd/N` path), as on Linux < 6.8.
/// For tests of that path on newer kernels.
#[doc(hidden)]
pub fn force_classic_deep_mounts(on: bool) {
    LOWERDIR_PLUS.store(if on { NO } else { UNKNOWN }, Ordering::Relaxed);
}

/// Mounts a stack whose mount(2) options would not fit in a page: with the new mount API one
/// layer at a time (`lowerdir+`), else (older kernels) with classic options that name every
/// layer by a short `/proc/self/fd/N` path, which holds about 200 layers whatever the root path.
fn mount_deep(layers: &Layers, target: &Path) -> Result<()> {
    if LOWERDIR_PLUS.load(Ordering::Relaxed) != NO {
        match fsapi::mount(layers, target) {
            Ok(()) => {
                LOWERDIR_PLUS.store(YES, Ordering::Relaxed);
                return Ok(());
            }
            Err(fsapi::Failure::Unsupported(_))
                if LOWERDIR_PLUS.load(Ordering::Relaxed) == UNKNOWN =>
            {
                LOWERDIR_PLUS.store(NO, Ordering::Relaxed);
            }
            Err(fsapi::Failure::Unsupported(e) | fsapi::Failure::Failed(e)) => return Err(e),
        }
    }
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut err = None;
    let opts = layers.options(|p| match open_path(p) {
        Ok(fd) => {
            let s = format!("/proc/self/fd/{}", fd.as_raw_fd());
            held.push(fd);
            s
        }
        Err(e) => {
            err.get_or_insert(Error::path("open", Path::new(p), e));
            String::new()
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if opts.len() >= PAGE {
        return Err(Error::invalid(
            "overlay mount",
            format!(
                "{} layers do not fit in mount options on this kernel (overlayfs takes them one at a time from Linux 6.8)",
                layers.lower.len()
            ),
        ));
    }
    mount_classic(&opts, target)
}

/// An `O_PATH` descriptor of a layer directory.
fn open_path(p: &str) -> io::Result<OwnedFd> {
    let c = CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid NUL-terminated path; the result is checked and owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The new mount API (fsopen, fsconfig, fsmount, move_mount) for overlayfs.
mod fsapi {
    use super::*;

    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_SET_FD: libc::c_uint = 5;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

    /// Why a mount through the new API failed.
    pub(super) enum Failure {
        /// This kernel cannot do it this way (no fsopen, no `lowerdir+`): use the fallback.
        Unsupported(Error),
        /// A real error (a missing layer, a bad upper directory, ...).
        Failed(Error),
    }

    struct Ctx {
        fs: OwnedFd,
    }

    impl Ctx {
        /// The messages the kernel logged on this context (`e overlayfs: ...`), joined.
        fn log(&self) -> String {
            let mut out = Vec::new();
            let mut buf = [0u8; 512];
            for _ in 0..8 {
                // SAFETY: reading into a buffer we own, of the length given.
                let n =
                    unsafe { libc::read(self.fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                let m = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
                let m = m.get(2..).unwrap_or(&m).trim().to_string();
                out.push(m);
            }
            out.join("; ")
        }

        fn config(
            &self,
            cmd: libc::c_uint,
            key: Option<&CString>,
            value: Option<&CString>,
            aux: libc::c_int,
        ) -> io::Result<()> {
            let k = key.map_or(std::ptr::null(), |k| k.as_ptr());
            let v = value.map_or(std::ptr::null(), |v| v.as_ptr());
            // SAFETY: fsconfig on our context fd; key and value are NUL-terminated strings
            // (or null where the command takes none) that outlive the call.
            let r =
                unsafe { libc::syscall(libc::SYS_fsconfig, self.fs.as_raw_fd(), cmd, k, v, aux) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// Sets the path parameter `key`: as a string when it is short enough, else as a
        /// descriptor (or, before Linux 6.13, as the string `/proc/self/fd/N`).
        fn path(&self, key: &str, p: &str) -> io::Result<()> {
            let k = cstr(key)?;
            if p.len() <= FSCONFIG_MAX_STRING {
                return self.config(FSCONFIG_SET_STRING, Some(&k), Some(&cstr(p)?), 0);
            }
            let fd = open_path(p)?;
            if LAYER_FDS.load(Ordering::Relaxed) != NO {
                match self.config(FSCONFIG_SET_FD, Some(&k), None, fd.as_raw_fd()) {
                    Ok(()) => {
                        LAYER_FDS.store(YES, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(e)
                        if e.raw_os_error() == Some(libc::EINVAL)
                            && LAYER_FDS.load(Ordering::Relaxed) == UNKNOWN =>
                    {
                        LAYER_FDS.store(NO, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
            let s = cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
            self.config(FSCONFIG_SET_STRING, Some(&k), Some(&s), 0)
        }
    }

    fn cstr(s: &str) -> io::Result<CString> {
        CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// fsopen("overlay"), every layer, create, fsmount, move_mount onto `target`.
    pub(super) fn mount(l: &Layers, target: &Path) -> std::result::Result<(), Failure> {
        let name = cstr("overlay").map_err(|e| Failure::Failed(mount_error(target, e, "")))?;
        // SAFETY: fsopen with a valid NUL-terminated name; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS) => Failure::Unsupported(mount_error(target, e, "no fsopen")),
                _ => Failure::Failed(mount_error(target, e, "")),
            });
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fs = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let ctx = Ctx { fs };
        let failed = |e: io::Error, what: &str| {
            let log = ctx.log();
            let detail = if log.is_empty() {
                what.to_string()
            } else {
                format!("{what}: {log}")
            };
            mount_error(target, e, &detail)
        };
        // The source mountinfo shows, as with mount(2).
        let _ = ctx.config(
            FSCONFIG_SET_STRING,
            Some(&cstr("source").map_err(|e| Failure::Failed(failed(e, "source")))?),
            Some(&name),
            0,
        );
        for (i, p) in l.lower.iter().enumerate() {
            if let Err(e) = ctx.path("lowerdir+", p) {
                // Before Linux 6.8 overlayfs does not know `lowerdir+`.
                let unsupported = i == 0 && e.raw_os_error() == Some(libc::EINVAL);
                let e = failed(e, &format!("layer {p}"));
                return Err(if unsupported {
                    Failure::Unsupported(e)
                } else {
                    Failure::Failed(e)
                });
            }
        }
        ctx.path("upperdir", &l.upper)
            .map_err(|e| Failure::Failed(failed(e, &format!("upper directory {}", l.upper))))?;
        ctx.path("workdir", &l.work)
            .map_err(|e| Failure::Failed(failed(e, &format!("work directory {}", l.work))))?;
        if l.userxattr {
            let k = cstr("userxattr").map_err(|e| Failure::Failed(failed(e, "userxattr")))?;
            ctx.config(FSCONFIG_SET_FLAG, Some(&k), None, 0)
                .map_err(|e| Failure::Failed(failed(e, "userxattr")))?;
        }
        if l.volatile {
            let k = cstr("volatile").map_err(|e| Failure::Failed(failed(e, "volatile")))?;
            ctx.config(FSCONFIG_SET_FLAG, Some(&k), None, 0)
                .map_err(|e| Failure::Failed(failed(e, "volatile")))?;
        }
        if let Err(e) = ctx.config(FSCONFIG_CMD_CREATE, None, None, 0) {
            let log = ctx.log();
            // Kernels that parse overlay options the old way (before 6.5) accept any key until
            // here and log nothing of their own: an unexplained EINVAL means "no lowerdir+".
            let unsupported = log.is_empty() && e.raw_os_error() == Some(libc::EINVAL);
            let e = mount_error(target, e, &log);
            return Err(if unsupported {
                Failure::Unsupported(e)
            } else {
                Failure::Failed(e)
            });
        }
        // SAFETY: fsmount on our configured context; the result is checked.
        let m = unsafe { libc::syscall(libc::SYS_fsmount, ctx.fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
        if m < 0 {
            return Err(Failure::Failed(failed(
                io::Error::last_os_error(),
                "fsmount",
            )));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let m = unsafe { OwnedFd::from_raw_fd(m as libc::c_int) };
        let tgt = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| Failure::Failed(Error::invalid("overlay target", target.display())))?;
        let empty = cstr("").map_err(|e| Failure::Failed(failed(e, "move_mount")))?;
        // SAFETY: move_mount of our detached mount fd onto a valid NUL-terminated path.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                m.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                tgt.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(Failure::Failed(mount_error(
                target,
                io::Error::last_os_error(),
                "move_mount",
            )));
        }
        Ok(())
    }
}

/// Unmounts a root filesystem mounted by [`prepare_rootfs`] (no-op for copies).
pub fn unmount(rootfs: &Rootfs) -> Result<()> {
    if rootfs.kind != RootfsKind::Overlay {
        return Ok(());
    }
    let c = CString::new(rootfs.path.as_os_str().as_bytes())
        .map_err(|e| Error::invalid("rootfs path", e))?;
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if r < 0 {
        return Err(Error::path(
            "unmount",
            &rootfs.path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Prepares `<dir>/rootfs` for a container from an image: overlay with `<dir>/upper` and
/// `<dir>/work`, or (when overlay is unavailable or `force_copy`) a merged copy.
pub fn prepare_rootfs(
    store: &Store,
    image: &ImageRecord,
    dir: &Path,
    force_copy: bool,
) -> Result<Rootfs> {
    let lowers = store.layer_dirs(image)?;
    let target = dir.join("rootfs");
    let upper = dir.join("upper");
    let work = dir.join("work");
    // `upper` becomes the container's `/` (overlayfs takes the root's mode from it); the mount
    // point and overlay's work dir are skiff's own.
    crate::perms::mkdir_shared(&upper, crate::perms::SHARED_DIR)
        .ctx(|| format!("create {}", upper.display()))?;
    for d in [&target, &work] {
        crate::perms::mkdir(d, crate::perms::PRIVATE_DIR)
            .ctx(|| format!("create {}", d.display()))?;
    }
    if !force_copy {
        match mount_overlay(&lowers, &upper, &work, &target) {
            Ok(()) => {
                return Ok(Rootfs {
                    path: target,
                    kind: RootfsKind::Overlay,
                })
            }
            Err(Error::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENODEV) | Some(libc::EPERM) | Some(libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    copy_layers(&lowers, &target)?;
    Ok(Rootfs {
        path: target,
        kind: RootfsKind::Copy,
    })
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(f) = fs::File::open(dir) else {
        return false;
    };
    let fd = OwnedFd::from(f);
    for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(Some(v)) = sys::fgetxattr(fd.as_fd_borrowed(), key) {
            if v == b"y" {
                return true;
            }
        }
    }
    false
}

/// Merges layer snapshots (bottom first) into `target`, applying whiteouts (0:0 character devices)
/// and opaque directories. Every destination path is resolved inside `target` (`RESOLVE_IN_ROOT`),
/// so a symlink from a lower layer cannot redirect an upper layer's file outside.
pub fn copy_layers(lowers: &[PathBuf], target: &Path) -> Result<()> {
    fs::create_dir_all(target).ctx(|| format!("create {}", target.display()))?;
    let root = sys::open_dir(target).map_err(|e| Error::path("open", target, e))?;
    for l in lowers {
        copy_tree(l, Path::new(""), &root)?;
    }
    Ok(())
}

fn copy_tree(layer: &Path, rel: &Path, root: &OwnedFd) -> Result<()> {
    let src_dir = layer.join(rel);
    let parent = sys::open_in_root(
        root.as_fd_borrowed(),
        rel,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| Error::path("open", &src_dir, e))?;
    let mut names: Vec<_> = fs::read_dir(&src_dir)
        .ctx(|| format!("read {}", src_dir.display()))?
        .flatten()
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name();
        let src = e.path();
        let md = fs::symlink_metadata(&src).ctx(|| format!("stat {}", src.display()))?;
        let ft = md.file_type();
        let p = parent.as_fd_borrowed();
        let existing =
            sys::lstatat(p, &name).ctx(|| format!("stat {}", rel.join(&name).display()))?;
        let err = |what: &str, e: io::Error| {
            Error::io(format!("{what} {}", rel.join(&name).display()), e)
        };
        if ft.is_char_device() && md.rdev() == 0 {
            sys::remove_all_at(p, &name).map_err(|e| err("whiteout", e))?;
            continue;
        }
        if ft.is_dir() {
            let exists_dir = existing.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
            if exists_dir && is_opaque(&src) {
                sys::remove_all_at(p, &name).map_err(|e| err("clear opaque", e))?;
            } else if existing.is_some() && !exists_dir {
                sys::remove_all_at(p, &name).map_err(|e| err("replace", e))?;
            }
            match sys::mkdirat(p, &name, md.mode() & 0o7777) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err("mkdir", e)),
            }
            let _ = sys::lchownat(p, &name, md.uid(), md.gid());
            copy_tree(layer, &rel.join(&name), root)?;
            continue;
        }
        if existing.is_some() {
            sys::remove_all_at(p, &name).map_err(|e| err("replace", e))?;
        }
        if ft.is_symlink() {
            let t = fs::read_link(&src).ctx(|| format!("readlink {}", src.display()))?;
            sys::symlinkat(t.as_os_str(), p, &name).map_err(|e| err("symlink", e))?;
        } else if ft.is_file() {
            let fd = sys::openat(
                p,
                &name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )
            .map_err(|e| err("create", e))?;
            let mut out = fs::File::from(fd);
            let mut inp = fs::File::open(&src).ctx(|| format!("open {}", src.display()))?;
            io::copy(&mut inp, &mut out).map_err(|e| err("copy", e))?;
            let fd = OwnedFd::from(out);
            let _ = sys::lchownat(fd.as_fd_borrowed(), OsStr::new(""), md.uid(), md.gid());
            sys::fchmod(fd.as_fd_borrowed(), md.mode() & 0o7777).map_err(|e| err("chmod", e))?;
        } else {
            let (maj, min) = (libc::major(md.rdev()), libc::minor(md.rdev()));
            sys::mknodat(p, &name, md.mode(), maj, min).map_err(|e| err("mknod", e))?;
        }
        let _ = sys::lchownat(p, &name, md.uid(), md.gid());
    }
    Ok(())
}
