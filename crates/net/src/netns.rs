//! Network namespaces pre-created by the engine and kept by a bind mount at
//! `<runroot>/netns/<id>` (podman's and `ip netns`' shape): the engine configures the namespace
//! completely before the container's process exists, and the runtime joins it by path. A thread
//! unshares, so the CLI process itself never changes namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::netlink::Netlink;
use crate::{Error, IoCtx, Result};

/// `<runroot>/netns/<id>`: where the namespace of container `id` is kept.
pub fn path(runroot: &Path, id: &str) -> PathBuf {
    runroot.join("netns").join(id)
}

/// Creates a new network namespace bound at `target`; returns it opened and a netlink socket
/// living in it.
pub fn create(target: &Path) -> Result<(File, Netlink)> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(target)
            .ctx(|| format!("create {}", target.display()))?;
    }
    let t = target.to_path_buf();
    let made = std::thread::spawn(move || -> Result<Netlink> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Io("unshare network namespace".into(), e.into()))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &t,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            Error::Io(
                format!("bind network namespace at {}", t.display()),
                e.into(),
            )
        })?;
        // No IPv6 in the container (docker's default without --ipv6): no link-local addresses,
        // DAD or router solicitations for the kernel to run on its interfaces. /proc/sys/net is
        // the opening thread's namespace's. Best effort: a kernel without IPv6 has no such file.
        for k in ["all", "default"] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
        }
        // The socket belongs to the namespace it is created in, whatever thread uses it later.
        Netlink::open()
    })
    .join()
    .map_err(|_| Error::Netlink("network namespace thread panicked".into()))?;
    let nl = match made {
        Ok(nl) => nl,
        Err(e) => {
            remove(target);
            return Err(e);
        }
    };
    let f = File::open(target).ctx(|| format!("open {}", target.display()))?;
    Ok((f, nl))
}

/// Opens a netlink socket inside the namespace bound at `target`.
pub fn enter(target: &Path) -> Result<Netlink> {
    let f = File::open(target).ctx(|| format!("open {}", target.display()))?;
    std::thread::spawn(move || -> Result<Netlink> {
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Io("enter network namespace".into(), e.into()))?;
        Netlink::open()
    })
    .join()
    .map_err(|_| Error::Netlink("network namespace thread panicked".into()))?
}

/// Writes `/proc/sys/net/<key>` inside the namespace `ns` (e.g. `ipv6/conf/eth0/disable_ipv6`).
pub fn sysctl(ns: &File, key: &str, value: &str) -> Result<()> {
    let f = ns
        .try_clone()
        .ctx(|| "duplicate a namespace descriptor".into())?;
    let (key, value) = (key.to_string(), value.to_string());
    std::thread::spawn(move || -> Result<()> {
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Io("enter network namespace".into(), e.into()))?;
        let p = format!("/proc/sys/net/{key}");
        std::fs::write(&p, &value).ctx(|| format!("write {p}"))
    })
    .join()
    .map_err(|_| Error::Netlink("network namespace thread panicked".into()))?
}

/// Unbinds and deletes the namespace at `target` (the kernel frees it with its last process).
pub fn remove(target: &Path) {
    let _ = umount2(target, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(target);
}
