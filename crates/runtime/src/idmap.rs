//! Idmapped mounts (Linux 5.12+): a bind mount whose file ownership is shifted through a user
//! namespace's mapping. The detached mount trees are prepared by the runtime parent (with host
//! privileges) and attached by the container init with move_mount(2).

use crate::error::{Error, Result};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const AT_EMPTY_PATH: u32 = 0x1000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn maps_text(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

/// A user namespace fd carrying `uid`/`gid` maps, made by a short-lived child.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe().map_err(|e| Error::Sys {
        what: "pipe".into(),
        errno: e,
    })?;
    let pid = crate::util::raw_clone(libc::CLONE_NEWUSER)?;
    if pid == 0 {
        drop(w);
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a local buffer; then _exit in the forked child.
        unsafe {
            libc::read(r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1);
            libc::_exit(0)
        }
    }
    drop(r);
    let res = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), maps_text(uid))
            .map_err(|e| Error::Other(format!("idmapped mount: uid map: {e}")))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), maps_text(gid))
            .map_err(|e| Error::Other(format!("idmapped mount: gid map: {e}")))?;
        crate::fsutil::open_path(Path::new(&format!("/proc/{pid}/ns/user")), libc::O_RDONLY)
    })();
    drop(w);
    let _ = crate::util::wait_code(pid);
    res
}

/// For every mount that asks for an idmap (`idmap`/`ridmap` option or its own uid/gid mappings),
/// clone the source tree detached and set MOUNT_ATTR_IDMAP on it. Returns mount index → tree fd.
pub fn prepare(spec: &Spec) -> Result<HashMap<usize, OwnedFd>> {
    let mut out = HashMap::new();
    let linux = spec.linux().as_ref();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = crate::rootfs::mount_options(m)?;
        let has_maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if !opts.idmap && !has_maps {
            continue;
        }
        let what = format!("mounts[{i}] ({})", m.destination().display());
        let uid = m
            .uid_mappings()
            .clone()
            .or_else(|| linux.and_then(|l| l.uid_mappings().clone()))
            .unwrap_or_default();
        let gid = m
            .gid_mappings()
            .clone()
            .or_else(|| linux.and_then(|l| l.gid_mappings().clone()))
            .unwrap_or_default();
        if uid.is_empty() || gid.is_empty() {
            return Err(Error::Config(format!(
                "{what}: idmapped mount needs uidMappings and gidMappings"
            )));
        }
        let src = m
            .source()
            .clone()
            .ok_or_else(|| Error::Config(format!("{what}: idmapped mount needs a source")))?;
        let ns = userns_with(&uid, &gid)?;
        let recursive = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "rbind" || o == "ridmap");
        let csrc = std::ffi::CString::new(src.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Config(format!("{what}: bad source")))?;
        let flags =
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | if recursive { AT_RECURSIVE } else { 0 };
        // SAFETY: valid C string; returns a new fd or -1.
        let t = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, csrc.as_ptr(), flags) };
        if t < 0 {
            return Err(Error::Sys {
                what: format!("{what}: open_tree {}", src.display()),
                errno: Errno::last(),
            });
        }
        // SAFETY: fresh fd from open_tree.
        let tree = unsafe { OwnedFd::from_raw_fd(t as RawFd) };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: ns.as_raw_fd() as u64,
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
            return Err(Error::Sys {
                what: format!(
                    "{what}: idmapped mounts are not supported for {} here",
                    src.display()
                ),
                errno: Errno::last(),
            });
        }
        out.insert(i, tree);
    }
    Ok(out)
}

/// Attach a prepared tree at `target` (an O_PATH fd inside the rootfs).
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    // SAFETY: both fds are open; empty paths are valid C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Error::Sys {
            what: "move_mount idmapped tree".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}
