//! The mount view of a debug process (`skiff debug`): the container's own filesystem at `/`, plus
//! a toolbox at [`DEBUG_DIR`] that exists only in the debug process's own mount namespace.
//!
//! The container's files must never change, yet `/.skiff-debug` must exist where the container has
//! no such directory. So the debug process, already inside the container's mount namespace, makes
//! a private copy of it (`unshare(CLONE_NEWNS)`) and builds a new root there:
//!
//! 1. a detached clone of the container's root mount (open_tree, not recursive) is the lower layer
//!    of an overlay whose upper is a detached private tmpfs (fsopen/fsmount): the tmpfs holds the
//!    toolbox directory, and anything the debug shell writes outside the container's volumes;
//! 2. the container's other mounts (/proc, /dev, /sys, /etc/hosts, volumes, binds, masked paths)
//!    are cloned recursively and attached at the same places on the overlay, so they are the very
//!    same mounts the container uses, with the same flags;
//! 3. the overlay becomes the root (pivot_root) and the toolbox, a read-only detached clone opened
//!    on the host before entering the container, is attached in it.
//!
//! With `debug --commit` the upper layer is a directory the engine made on the host instead of
//! the tmpfs ([`Prepared::with_upper`]), so the session's changes can become an image layer. The
//! tools of `skiff debug install` are attached at [`TOOLS_DIR`] ([`Prepared::with_tools`]).
//!
//! The toolbox is either one static busybox (then the tmpfs gets `bin/<applet>` links to it) or a
//! directory tree (an image's root filesystem), attached as a whole.

use crate::error::{Error, Result};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the toolbox appears in the debug process's view.
pub const DEBUG_DIR: &str = "/.skiff-debug";
/// Where the tools of `skiff debug install` appear in the debug process's view (beside the
/// toolbox, so an image toolbox attached as a whole at [`DEBUG_DIR`] does not hide them).
pub const TOOLS_DIR: &str = "/.skiff-tools";

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_NO_AUTOMOUNT: u32 = 0x800;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
const FSCONFIG_SET_STRING: u32 = 1;
const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const MOUNT_ATTR_RDONLY: u64 = 1;
const MOUNT_ATTR_NOSUID: u64 = 2;
const MOUNT_ATTR_NODEV: u64 = 4;

/// What the toolbox is, as found on the host.
#[derive(Debug, Clone)]
pub enum Toolbox {
    /// One static busybox binary (host path), and the applet names to link to it.
    Busybox {
        /// The binary on the host.
        path: PathBuf,
        /// Its applets (`busybox --list`).
        applets: Vec<String>,
    },
    /// An image's layer directories on the host, bottom first, seen as one read-only tree; its
    /// `bin`, `usr/bin`, … go on PATH.
    Layers(Vec<PathBuf>),
}

/// A toolbox opened on the host, ready to be attached inside the container by [`enter`].
#[derive(Debug)]
pub struct Prepared {
    tree: OwnedFd,
    busybox_applets: Option<Vec<String>>,
    tools: Option<OwnedFd>,
    upper: Option<OwnedFd>,
}

impl Prepared {
    /// Also attaches the directory `dir` (on the host: the installed tools) read-only, nosuid and
    /// nodev at [`TOOLS_DIR`].
    pub fn with_tools(mut self, dir: &Path) -> Result<Prepared> {
        let t = open_tree(libc::AT_FDCWD, dir, OPEN_TREE_CLONE)?;
        set_attr(
            &t,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            false,
        )
        .map_err(|e| Error::Other(format!("tools {}: {e}", dir.display())))?;
        self.tools = Some(t);
        Ok(self)
    }

    /// Keeps the debug view's writes in `dir/upper` (with `dir/work` as the overlay's work
    /// directory; both on the host, on one filesystem that overlayfs accepts as an upper layer)
    /// instead of a private tmpfs, so they can be read after the session (`debug --commit`).
    pub fn with_upper(mut self, dir: &Path) -> Result<Prepared> {
        // A detached clone: overlayfs takes an upper layer only from the caller's mount
        // namespace or a detached mount, and the debug process is in the container's.
        self.upper = Some(open_tree(libc::AT_FDCWD, dir, OPEN_TREE_CLONE)?);
        Ok(self)
    }
}

impl Toolbox {
    /// The directories to append to PATH inside the debug view.
    pub fn path_dirs(&self) -> Vec<String> {
        match self {
            Toolbox::Busybox { .. } => vec![format!("{DEBUG_DIR}/bin")],
            Toolbox::Layers(_) => ["usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin"]
                .iter()
                .map(|d| format!("{DEBUG_DIR}/{d}"))
                .collect(),
        }
    }

    /// Opens a read-only, nosuid, nodev detached clone of the toolbox (on the host, before the
    /// process enters the container: afterwards host paths mean nothing).
    pub fn prepare(&self) -> Result<Prepared> {
        let (tree, applets) = match self {
            Toolbox::Busybox { path, applets } => (
                open_tree(libc::AT_FDCWD, path, OPEN_TREE_CLONE)?,
                Some(applets.clone()),
            ),
            Toolbox::Layers(l) if l.len() == 1 => (
                open_tree(libc::AT_FDCWD, &l[0], OPEN_TREE_CLONE | AT_RECURSIVE)?,
                None,
            ),
            Toolbox::Layers(l) if l.is_empty() => {
                return Err(Error::Other("toolbox image has no layers".into()))
            }
            Toolbox::Layers(l) => {
                // overlayfs lists lower layers top first.
                let lowers: Vec<String> = l
                    .iter()
                    .rev()
                    .map(|p| p.to_string_lossy().replace(':', "\\:"))
                    .collect();
                (
                    fs_mount(c"overlay", &[("lowerdir", &lowers.join(":"))])?,
                    None,
                )
            }
        };
        set_attr(
            &tree,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            true,
        )
        .map_err(|e| Error::Other(format!("toolbox: {e}")))?;
        Ok(Prepared {
            tree,
            busybox_applets: applets,
            tools: None,
            upper: None,
        })
    }
}

fn sys_err(what: impl Into<String>) -> Error {
    Error::Sys {
        what: what.into(),
        errno: Errno::last(),
    }
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Other(format!("path {} has a NUL byte", p.display())))
}

fn owned(r: libc::c_long, what: &str) -> Result<OwnedFd> {
    if r < 0 {
        return Err(sys_err(what));
    }
    // SAFETY: a fresh descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

fn open_tree(dirfd: RawFd, path: &Path, flags: u32) -> Result<OwnedFd> {
    let c = cstr(path)?;
    let flags = flags | libc::O_CLOEXEC as u32 | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW;
    // SAFETY: a valid C string; open_tree returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) };
    owned(r, &format!("open_tree {}", path.display()))
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn set_attr(tree: &OwnedFd, set: u64, recursive: bool) -> Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let f = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: attr is a properly sized mount_attr; the empty path is a valid C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            f,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(sys_err("mount_setattr"));
    }
    Ok(())
}

/// Attaches the detached tree `tree` at `path` relative to `dirfd`.
fn attach(tree: &OwnedFd, dirfd: RawFd, path: &str) -> Result<()> {
    let c = CString::new(path).map_err(|_| Error::Other(format!("bad mount point {path:?}")))?;
    // SAFETY: both paths are valid C strings; the descriptors are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dirfd,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(sys_err(format!("attach at {path}")));
    }
    Ok(())
}

/// A new, detached filesystem of type `fstype` with string options `opts`.
fn fs_mount(fstype: &std::ffi::CStr, opts: &[(&str, &str)]) -> Result<OwnedFd> {
    // SAFETY: a valid C string; fsopen returns a new descriptor or -1.
    let fsfd = owned(
        unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) },
        &format!("fsopen {fstype:?}"),
    )?;
    let log = |what: String| {
        // The kernel explains a refused configuration in the context's message log.
        let mut buf = [0u8; 512];
        // SAFETY: reading into a buffer we own, of its own length.
        let n = unsafe { libc::read(fsfd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let mut e = sys_err(what);
        if n > 0 {
            if let Error::Sys { what, .. } = &mut e {
                what.push_str(&format!(
                    " ({})",
                    String::from_utf8_lossy(&buf[..n as usize])
                ));
            }
        }
        e
    };
    for (k, v) in opts {
        let (kc, vc) = (
            CString::new(*k).map_err(|_| Error::Other("bad option".into()))?,
            CString::new(*v).map_err(|_| Error::Other("bad option".into()))?,
        );
        // SAFETY: valid C strings; fsconfig only reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                kc.as_ptr(),
                vc.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(log(format!("{fstype:?} option {k}")));
        }
    }
    // SAFETY: fsconfig with no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    };
    if r < 0 {
        return Err(log(format!("create {fstype:?}")));
    }
    // SAFETY: fsmount on a created context returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    owned(r, &format!("fsmount {fstype:?}"))
}

fn mkdirat(dirfd: RawFd, path: &str, mode: libc::mode_t) -> Result<()> {
    let c = CString::new(path).map_err(|_| Error::Other("bad path".into()))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode) } < 0 && Errno::last() != Errno::EEXIST {
        return Err(sys_err(format!("mkdir {path}")));
    }
    Ok(())
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of the direct children of the root mount, in mount order, each once.
fn root_children(mountinfo: &str) -> (bool, Vec<String>) {
    let rows: Vec<(u64, u64, String, bool)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let ro = f.get(5)?.split(',').any(|o| o == "ro");
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                unescape(f.get(4)?),
                ro,
            ))
        })
        .collect();
    // The root mount: the last one mounted at "/" (the one on top).
    let Some((root_id, root_ro)) = rows.iter().rev().find(|r| r.2 == "/").map(|r| (r.0, r.3))
    else {
        return (false, Vec::new());
    };
    let mut seen = std::collections::HashSet::new();
    let kids = rows
        .iter()
        .filter(|r| r.1 == root_id && r.0 != root_id && r.2 != "/")
        .filter(|r| seen.insert(r.2.clone()))
        .map(|r| r.2.clone())
        .collect();
    (root_ro, kids)
}

/// Builds the debug view (see the module documentation). Runs in the debug process after it has
/// joined the container's namespaces (mount and pid included) and before it drops privileges.
pub fn enter(p: &Prepared) -> Result<()> {
    crate::namespaces::unshare(libc::CLONE_NEWNS)?;
    // SAFETY: valid C strings; no data pointer.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(sys_err("make the debug mounts private"));
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Io {
        path: "/proc/self/mountinfo".into(),
        source: e,
    })?;
    let (root_ro, kids) = root_children(&info);
    // Clones of the container's mounts, taken before anything covers them.
    let mut subs = Vec::new();
    for k in &kids {
        match open_tree(libc::AT_FDCWD, Path::new(k), OPEN_TREE_CLONE | AT_RECURSIVE) {
            Ok(t) => subs.push((k.trim_start_matches('/').to_string(), t)),
            // A mount hidden under another one at a parent path cannot be reached: skip it.
            Err(_) => continue,
        }
    }
    let lower = open_tree(libc::AT_FDCWD, Path::new("/"), OPEN_TREE_CLONE)?;
    // The upper layer: the engine's directory (kept for `--commit`) or a private tmpfs.
    let scratch: OwnedFd;
    let sfd = match &p.upper {
        Some(u) => u.as_raw_fd(),
        None => {
            scratch = fs_mount(c"tmpfs", &[("mode", "0755")])?;
            scratch.as_raw_fd()
        }
    };
    mkdirat(sfd, "upper", 0o755)?;
    mkdirat(sfd, "work", 0o700)?;
    let dir = DEBUG_DIR.trim_start_matches('/');
    mkdirat(sfd, &format!("upper/{dir}"), 0o755)?;
    let tools = TOOLS_DIR.trim_start_matches('/');
    if p.tools.is_some() {
        mkdirat(sfd, &format!("upper/{tools}"), 0o755)?;
    }
    if let Some(applets) = &p.busybox_applets {
        mkdirat(sfd, &format!("upper/{dir}/bin"), 0o755)?;
        let bb = CString::new(format!("upper/{dir}/bin/busybox")).unwrap_or_default();
        // SAFETY: a valid C string; the new descriptor is closed right away.
        let fd = unsafe {
            libc::openat(
                sfd,
                bb.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o755,
            )
        };
        if fd < 0 {
            return Err(sys_err("create the busybox mount point"));
        }
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(fd) };
        for a in applets {
            if a == "busybox" || a.contains('/') {
                continue;
            }
            let link = CString::new(format!("upper/{dir}/bin/{a}")).unwrap_or_default();
            // SAFETY: valid C strings.
            unsafe { libc::symlinkat(c"busybox".as_ptr(), sfd, link.as_ptr()) };
        }
    }
    let overlay = fs_mount(
        c"overlay",
        &[
            ("lowerdir", &format!("/proc/self/fd/{}", lower.as_raw_fd())),
            ("upperdir", &format!("/proc/self/fd/{sfd}/upper")),
            ("workdir", &format!("/proc/self/fd/{sfd}/work")),
        ],
    )?;
    drop(lower);
    attach(&overlay, libc::AT_FDCWD, "/")?;
    let ofd = overlay.as_raw_fd();
    for (rel, t) in &subs {
        // A mount point the overlay cannot show (a race with the container) is left out.
        let _ = attach(t, ofd, rel);
    }
    drop(subs);
    // SAFETY: fchdir to an open directory descriptor.
    if unsafe { libc::fchdir(ofd) } < 0 {
        return Err(sys_err("enter the debug root"));
    }
    // SAFETY: pivot_root(".", ".") then detaching the old root below: runc's way of switching
    // roots without a spare directory.
    let pivoted = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } == 0;
    if pivoted {
        // SAFETY: valid C string.
        if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } < 0 {
            return Err(sys_err("detach the container's root from the debug view"));
        }
    } else {
        // SAFETY: valid C string.
        if unsafe { libc::chroot(c".".as_ptr()) } < 0 {
            return Err(sys_err("enter the debug root"));
        }
    }
    // SAFETY: valid C string.
    if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
        return Err(sys_err("chdir /"));
    }
    let target = if p.busybox_applets.is_some() {
        format!("{dir}/bin/busybox")
    } else {
        dir.to_string()
    };
    // SAFETY: the root directory's descriptor is only used for the attach below.
    let root = unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    let root = owned(root as libc::c_long, "open /")?;
    attach(&p.tree, root.as_raw_fd(), &target)?;
    if let Some(t) = &p.tools {
        attach(t, root.as_raw_fd(), tools)?;
    }
    if root_ro {
        // A read-only container stays read-only in the debug view (its volumes keep their own
        // flags: they are separate mounts).
        set_attr(&overlay, MOUNT_ATTR_RDONLY, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_of_the_top_root_mount() {
        let mi = "1 0 8:1 / / rw - ext4 a rw\n\
                  20 1 0:5 / /proc rw - proc proc rw\n\
                  21 20 0:6 / /proc/kcore ro - tmpfs t ro\n\
                  22 1 0:7 / /etc/my\\040hosts rw - ext4 a rw\n\
                  23 1 0:7 / /etc/my\\040hosts rw - ext4 a rw\n";
        let (ro, kids) = root_children(mi);
        assert!(!ro);
        assert_eq!(kids, vec!["/proc", "/etc/my hosts"]);
    }
}
