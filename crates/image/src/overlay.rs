//! Root filesystems for containers: an overlay mount of an image's layer snapshots (lowerdirs),
//! with a per-container upper and work directory; or, when overlayfs is unavailable, a private copy
//! of the layers merged in order (whiteouts and opaque directories applied).

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
    let mut lower = Vec::new();
    for l in lowers.iter().rev() {
        lower.push(check_opt_path(l)?);
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lower.join(":"),
        check_opt_path(upper)?,
        check_opt_path(work)?,
        if volatile { ",volatile" } else { "" }
    );
    clear_volatile_marker(work);
    if opts.len() >= 4096 {
        return Err(Error::invalid(
            "overlay mount",
            format!(
                "{} layers make the mount options longer than a page",
                lowers.len()
            ),
        ));
    }
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
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::ENODEV) => "overlayfs is not available in this kernel".to_string(),
            Some(libc::EPERM) => "not permitted (rootless without overlay support?)".to_string(),
            _ => e.to_string(),
        };
        return Err(Error::io(
            format!("mount overlay at {}: {why}", target.display()),
            e,
        ));
    }
    Ok(())
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
