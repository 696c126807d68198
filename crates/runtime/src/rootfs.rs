//! Root filesystem: mount propagation, the `mounts[]` list, devices, pivot_root/chroot, masked and
//! read-only paths, sysctls. Every destination is resolved inside the rootfs with openat2
//! RESOLVE_IN_ROOT and mounted through /proc/self/fd, so symlinks in the image cannot redirect a mount.

use crate::error::{Error, Result};
use crate::fsutil::{fd_path, mkdir_all_in_root, openat_in_root, Kind};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use skiff_cgroups::Cgroup;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn sys<T>(r: nix::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|errno| Error::Sys {
        what: what(),
        errno,
    })
}

/// Parsed mount options.
#[derive(Debug, Clone)]
pub struct MountOpts {
    /// MS_* flags for the mount itself.
    pub flags: MsFlags,
    /// Flags to clear (from "rw", "suid", ...): only meaningful for remounts.
    pub clear: MsFlags,
    /// Propagation flags applied after mounting.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (options this table does not know), passed to the filesystem.
    pub data: Vec<String>,
    /// `bind` or `rbind` given.
    pub bind: bool,
    /// `idmap`/`ridmap` given.
    pub idmap: bool,
    /// `tmpcopyup` given: a tmpfs starts with a copy of what was under its mountpoint.
    pub tmpcopyup: bool,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(2) with AT_RECURSIVE.
    pub recursive: RecAttrs,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            idmap: false,
            tmpcopyup: false,
            recursive: RecAttrs::default(),
        }
    }
}

/// MOUNT_ATTR_* bits of mount_setattr(2) (linux/mount.h).
pub mod mount_attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x1;
    /// Ignore suid and sgid bits.
    pub const NOSUID: u64 = 0x2;
    /// Disallow access to device special files.
    pub const NODEV: u64 = 0x4;
    /// Disallow program execution.
    pub const NOEXEC: u64 = 0x8;
    /// The mask of the atime mode (an enum, not bits).
    pub const ATIME_MASK: u64 = 0x70;
    /// Atime mode: relatime (the kernel's default).
    pub const RELATIME: u64 = 0x0;
    /// Atime mode: never update atime.
    pub const NOATIME: u64 = 0x10;
    /// Atime mode: always update atime.
    pub const STRICTATIME: u64 = 0x20;
    /// Do not update directory access times.
    pub const NODIRATIME: u64 = 0x80;
    /// Idmapped mount.
    pub const IDMAP: u64 = 0x0010_0000;
    /// Do not follow symlinks.
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// The `struct mount_attr` of mount_setattr(2), for a whole mount tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecAttrs {
    /// MOUNT_ATTR_* bits to set.
    pub set: u64,
    /// MOUNT_ATTR_* bits to clear.
    pub clr: u64,
}

impl RecAttrs {
    /// True when no recursive attribute was asked for (the common case: no syscall at all).
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }

    fn set_bit(&mut self, bit: u64) {
        self.set |= bit;
        self.clr &= !bit;
    }

    fn clear_bit(&mut self, bit: u64) {
        self.clr |= bit;
        self.set &= !bit;
    }

    fn atime(&mut self, mode: u64) {
        self.clr |= mount_attr::ATIME_MASK;
        self.set = (self.set & !mount_attr::ATIME_MASK) | mode;
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), not yet named by nix.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Every mount option this runtime applies, as `skiff-runtime features` lists them (`mountOptions`).
/// Options outside this list are handed to the filesystem as data for a non-bind mount (the kernel
/// refuses what it does not know) and refused for a bind mount.
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Options that are refused with the reason, rather than accepted and silently not applied.
fn refused_option(o: &str) -> Option<&'static str> {
    Some(match o {
        "mand" => "mandatory locking was removed from Linux (5.15); the kernel ignores it",
        "remount" => "remounting is not supported in mounts[]",
        "copy-symlink" => "not supported (a crun extension)",
        _ => return None,
    })
}

/// Parse runtime-spec mount options. Fails on an option that would be accepted but not applied.
pub fn parse_options(opts: &[String]) -> Result<MountOpts> {
    parse(opts).map_err(Error::Config)
}

/// [`parse_options`] with the bare reason, for [`mount_options`] to prefix with the mount.
fn parse(opts: &[String]) -> std::result::Result<MountOpts, String> {
    use mount_attr as a;
    let mut m = MountOpts::default();
    for o in opts {
        if let Some(why) = refused_option(o) {
            return Err(format!("option {o:?}: {why}"));
        }
        let rec = &mut m.recursive;
        let (set, clear) = match o.as_str() {
            "defaults" => continue,
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
            "bind" => {
                m.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                m.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "idmap" | "ridmap" => {
                m.idmap = true;
                continue;
            }
            "tmpcopyup" => {
                m.tmpcopyup = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let rec = o.starts_with('r');
                let p = match o.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                m.propagation
                    .push(if rec { p | MsFlags::MS_REC } else { p });
                continue;
            }
            // Recursive attributes: mount_setattr(2) with AT_RECURSIVE on the whole tree.
            "rro" => {
                rec.set_bit(a::RDONLY);
                continue;
            }
            "rrw" => {
                rec.clear_bit(a::RDONLY);
                continue;
            }
            "rnosuid" => {
                rec.set_bit(a::NOSUID);
                continue;
            }
            "rsuid" => {
                rec.clear_bit(a::NOSUID);
                continue;
            }
            "rnodev" => {
                rec.set_bit(a::NODEV);
                continue;
            }
            "rdev" => {
                rec.clear_bit(a::NODEV);
                continue;
            }
            "rnoexec" => {
                rec.set_bit(a::NOEXEC);
                continue;
            }
            "rexec" => {
                rec.clear_bit(a::NOEXEC);
                continue;
            }
            "rnodiratime" => {
                rec.set_bit(a::NODIRATIME);
                continue;
            }
            "rdiratime" => {
                rec.clear_bit(a::NODIRATIME);
                continue;
            }
            "rnosymfollow" => {
                rec.set_bit(a::NOSYMFOLLOW);
                continue;
            }
            "rsymfollow" => {
                rec.clear_bit(a::NOSYMFOLLOW);
                continue;
            }
            // The atime mode is one value: the last option wins. "Not noatime" and "not
            // strictatime" are the kernel's default, relatime; "not relatime" is strictatime.
            "rrelatime" | "ratime" | "rnostrictatime" => {
                rec.atime(a::RELATIME);
                continue;
            }
            "rnoatime" => {
                rec.atime(a::NOATIME);
                continue;
            }
            "rstrictatime" | "rnorelatime" => {
                rec.atime(a::STRICTATIME);
                continue;
            }
            other => {
                m.data.push(other.to_string());
                continue;
            }
        };
        // difference(), not `& !`: bitflags' `!` drops bits nix does not name (MS_NOSYMFOLLOW).
        m.flags = m.flags.union(set).difference(clear);
        m.clear = m.clear.union(clear).difference(set);
    }
    Ok(m)
}

/// Parse the options of `m` (`mounts[i]`), naming the mount on error: `mount /data: option "rfoo" unknown`.
pub fn mount_options(m: &Mount) -> Result<MountOpts> {
    let name = m.destination().display();
    let mut opts = parse(m.options().as_deref().unwrap_or(&[]))
        .map_err(|e| Error::Config(format!("mount {name}: {e}")))?;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "rbind" {
        opts.flags |= MsFlags::MS_REC;
    }
    let bind = opts.bind || typ == "bind" || typ == "rbind";
    // A bind mount (and the runtime's own cgroup mounts) pass no data to a filesystem: an option
    // not in the table would be dropped, so it is refused. The one exception: `key=value`
    // filesystem parameters on a bind mount, which runc, crun and youki accept and which
    // runtime-tools' own `mounts` test sets; `config::load` warns about them by name.
    let cgroup = typ == "cgroup" || typ == "cgroup2";
    if let Some(o) = opts
        .data
        .iter()
        .find(|o| cgroup || bind && !o.contains('='))
    {
        return Err(Error::Config(format!("mount {name}: option {o:?} unknown")));
    }
    if bind {
        for (f, o) in [
            (MsFlags::MS_SYNCHRONOUS, "sync"),
            (MsFlags::MS_DIRSYNC, "dirsync"),
        ] {
            if opts.flags.contains(f) {
                return Err(Error::Config(format!(
                    "mount {name}: option {o:?} is a filesystem flag, which a bind mount cannot change"
                )));
            }
        }
    }
    if opts.tmpcopyup && typ != "tmpfs" {
        return Err(Error::Config(format!(
            "mount {name}: option \"tmpcopyup\" is only valid for a tmpfs"
        )));
    }
    Ok(opts)
}

/// Filesystem parameters (`key=value`) given to a bind mount, which has no filesystem to give
/// them to: accepted as runc does, and named in a warning by `config::load`.
pub fn ignored_bind_data(m: &Mount) -> Vec<String> {
    let typ = m.typ().as_deref().unwrap_or("");
    match mount_options(m) {
        Ok(o) if o.bind || typ == "bind" || typ == "rbind" => o.data,
        _ => Vec::new(),
    }
}

/// Apply recursive attributes to the mount tree at `fd` with one mount_setattr(2) (AT_RECURSIVE).
pub fn set_attrs_recursive(
    fd: &OwnedFd,
    attrs: RecAttrs,
    userns_fd: Option<i32>,
) -> nix::Result<()> {
    let ma: [u64; 4] = [attrs.set, attrs.clr, 0, userns_fd.unwrap_or(0) as u64];
    // SAFETY: `ma` is a struct mount_attr (attr_set, attr_clr, propagation, userns_fd) of the size
    // passed; the empty path is a valid C string; AT_EMPTY_PATH makes the call act on `fd`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32,
            ma.as_ptr(),
            std::mem::size_of_val(&ma),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Flags of an existing mount that must be preserved on a bind remount (locked in user namespaces).
fn locked_flags(fd: &OwnedFd) -> MsFlags {
    match nix::sys::statvfs::fstatvfs(fd) {
        Ok(s) => {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (a, b) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(a) {
                    m |= b;
                }
            }
            m
        }
        Err(_) => MsFlags::empty(),
    }
}

/// Context for preparing one rootfs.
pub struct Ctx<'a> {
    /// The spec.
    pub spec: &'a Spec,
    /// Absolute host path of the rootfs.
    pub rootfs: PathBuf,
    /// True when the container has its own user namespace (mknod impossible, flags locked).
    pub userns: bool,
    /// True when the container has its own network namespace.
    pub netns: bool,
    /// The container's cgroup (for cgroup mounts).
    pub cgroup: &'a Cgroup,
    /// Prepared idmapped mount trees by mount index.
    pub idmapped: &'a std::collections::HashMap<usize, OwnedFd>,
}

/// Set the propagation of `/` for the new mount namespace and bind the rootfs onto itself.
pub fn prepare_root(ctx: &Ctx) -> Result<()> {
    let prop = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flags = match prop.as_deref() {
        None | Some("") | Some("rslave") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some("slave") => MsFlags::MS_SLAVE,
        Some("private") => MsFlags::MS_PRIVATE,
        Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        // shared/unbindable are applied to the new root after pivot; the host side stays slave.
        Some("shared") | Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Some("unbindable") | Some("runbindable") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(o) => {
            return Err(Error::Config(format!(
                "linux.rootfsPropagation: unknown value {o:?}"
            )))
        }
    };
    sys(
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>),
        || "make / private/slave".into(),
    )?;
    // The parent mount of the rootfs must not be shared for pivot_root to work.
    sys(
        mount(
            Some(&ctx.rootfs),
            &ctx.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || format!("bind rootfs {}", ctx.rootfs.display()),
    )?;
    // pivot_root refuses a new root (or its parent mount) with shared propagation: keep both
    // private here; `finish` makes the new root shared after the pivot when asked.
    // (Only a shared "/" makes the parent mount shared; the default rslave does not.)
    let shared = matches!(prop.as_deref(), Some("shared") | Some("rshared"));
    if let Some(parent) = ctx.rootfs.parent().filter(|_| shared) {
        if let Some(mp) = mount_point_of(parent) {
            sys(
                mount(
                    None::<&str>,
                    &mp,
                    None::<&str>,
                    MsFlags::MS_PRIVATE,
                    None::<&str>,
                ),
                || format!("make {} private", mp.display()),
            )?;
        }
    }
    sys(
        mount(
            None::<&str>,
            &ctx.rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
        || "make rootfs private".into(),
    )?;
    Ok(())
}

/// The mount point (from /proc/self/mountinfo) whose mount contains `path`.
fn mount_point_of(path: &Path) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|mp| PathBuf::from(mp.replace("\\040", " ")))
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
}

fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    crate::fsutil::open_path(rootfs, libc::O_PATH | libc::O_DIRECTORY)
}

/// Perform every entry of `mounts[]` inside the rootfs.
pub fn mount_all(ctx: &Ctx) -> Result<()> {
    let root = open_root(&ctx.rootfs)?;
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        let opts = mount_options(m)?;
        mount_one(ctx, &root, i, m, &opts)
            .map_err(|e| Error::Other(format!("mount {}: {e}", m.destination().display())))?;
    }
    Ok(())
}

/// Reopen the mount now at `dest` (O_PATH: the walk ends on the top mount).
fn reopen(root: &OwnedFd, dest: &Path) -> Result<OwnedFd> {
    openat_in_root(root.as_raw_fd(), dest, libc::O_PATH, 0).map_err(|e| Error::Sys {
        what: "reopen".into(),
        errno: e,
    })
}

/// The per-mount flags (those a bind remount can change) of the mount at `fd`: one fstatvfs.
fn mount_flags(fd: &OwnedFd) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::fstatvfs(fd) else {
        return MsFlags::empty();
    };
    let bits = st.flags().bits();
    // ST_* values (linux/statfs.h); ST_NOSYMFOLLOW is not named by nix.
    [
        (0x0001, MsFlags::MS_RDONLY),
        (0x0002, MsFlags::MS_NOSUID),
        (0x0004, MsFlags::MS_NODEV),
        (0x0008, MsFlags::MS_NOEXEC),
        (0x0400, MsFlags::MS_NOATIME),
        (0x0800, MsFlags::MS_NODIRATIME),
        (0x1000, MsFlags::MS_RELATIME),
        (0x2000, MS_NOSYMFOLLOW),
    ]
    .into_iter()
    .filter(|(st, _)| bits & st != 0)
    .fold(MsFlags::empty(), |m, (_, f)| m.union(f))
}

/// procfs and sysfs go on an ordinary directory only (runc: "must be mounted on ordinary
/// directory"): a symlink or file planted at the destination is refused instead of followed, so
/// an image cannot move /proc where masked paths do not reach.
fn ordinary_directory(root: &OwnedFd, dest: &Path, typ: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let Ok(dir) = openat_in_root(
        root.as_raw_fd(),
        parent,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    ) else {
        // A missing parent is created below, with an ordinary directory in it.
        return Ok(());
    };
    match nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            let what = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                "a symlink"
            } else {
                "not a directory"
            };
            Err(Error::Other(format!(
                "{typ} must be mounted on an ordinary directory ({dest:?} in the rootfs is {what})"
            )))
        }
        _ => Ok(()),
    }
}

/// Files under /proc a mount may cover (what lxcfs emulates; runc's list).
const PROC_MOUNTABLE: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Refuse a mount on `/proc` that is not procfs, and any mount inside `/proc` but
/// [`PROC_MOUNTABLE`]: covering `/proc/self/attr`, `/proc/sys` and the like with other content
/// would defeat LSM labels and sysctl protections (runc refuses the same).
fn proc_destination(at: &Path, dest: &Path, typ: &str, source: &Path, bind: bool) -> Result<()> {
    let Ok(inside) = at.strip_prefix("/proc") else {
        return Ok(());
    };
    if inside.as_os_str().is_empty() {
        let procfs = if bind {
            nix::sys::statfs::statfs(source)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        } else {
            typ == "proc"
        };
        if procfs {
            return Ok(());
        }
        return Err(Error::Other(format!(
            "only procfs may be mounted on /proc, not {}",
            if bind {
                format!("{source:?}")
            } else {
                format!("{typ:?}")
            }
        )));
    }
    if PROC_MOUNTABLE.iter().any(|p| Path::new(p) == at) {
        return Ok(());
    }
    let how = if at == dest {
        String::new()
    } else {
        format!(" (where {dest:?} leads)")
    };
    Err(Error::Other(format!(
        "cannot be mounted because {at:?}{how} is inside /proc; only {} may be covered",
        PROC_MOUNTABLE.join(", ")
    )))
}

fn mount_one(ctx: &Ctx, root: &OwnedFd, index: usize, m: &Mount, opts: &MountOpts) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::Config(format!(
            "mounts: destination {dest:?} must be absolute"
        )));
    }
    let typ = m.typ().clone().unwrap_or_default();
    let is_bind = opts.bind || typ == "bind" || typ == "rbind" || ctx.idmapped.contains_key(&index);
    if typ == "cgroup" || typ == "cgroup2" {
        mount_cgroup(ctx, root, m, opts)?;
        return finish_mount(root, dest, opts);
    }
    let source = m.source().clone().unwrap_or_default();
    // Create the mountpoint: a file when binding a non-directory, else a directory.
    let kind = if is_bind {
        let src = if source.is_absolute() {
            source.clone()
        } else {
            std::env::current_dir().unwrap_or_default().join(&source)
        };
        match std::fs::metadata(&src) {
            Ok(md) if !md.is_dir() => Kind::File,
            Ok(_) => Kind::Dir,
            Err(e) => return Err(Error::Other(format!("bind source {}: {e}", src.display()))),
        }
    } else {
        Kind::Dir
    };
    if typ == "proc" || typ == "sysfs" {
        ordinary_directory(root, dest, &typ)?;
    }
    // Nothing but procfs on /proc, nothing inside it but the files lxcfs emulates (runc's
    // checkProcMount): once as written, and again where the path really lands in the rootfs
    // (a symlink in the image may lead there).
    proc_destination(
        &crate::fsutil::clean_in_root(dest),
        dest,
        &typ,
        &source,
        is_bind,
    )?;
    let target = mkdir_all_in_root(root.as_raw_fd(), dest, kind)?;
    let tpath = fd_path(&target);
    if let Ok(real) = std::fs::read_link(&tpath) {
        if let Ok(rel) = real.strip_prefix(&ctx.rootfs) {
            proc_destination(&Path::new("/").join(rel), dest, &typ, &source, is_bind)?;
        }
    }
    let data = opts.data.join(",");
    let data = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    if is_bind {
        let src_fd = crate::fsutil::open_path(&source, libc::O_PATH)?;
        let f = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        if let Some(tree) = ctx.idmapped.get(&index) {
            crate::idmap::attach(tree, &target)?;
        } else {
            sys(
                mount(
                    Some(&fd_path(&src_fd)),
                    &tpath,
                    None::<&str>,
                    f,
                    None::<&str>,
                ),
                || format!("bind {}", source.display()),
            )?;
        }
        // A bind mount starts with the source mount's flags; remount (top mount only, as
        // runc does) when the options change any of them.
        let want = opts.flags.difference(MsFlags::MS_BIND | MsFlags::MS_REC);
        if !want.is_empty() || !opts.clear.is_empty() {
            let newfd = reopen(root, dest)?;
            let cur = mount_flags(&newfd);
            let new = cur.union(want).difference(opts.clear);
            if new != cur {
                let r = mount(
                    None::<&str>,
                    &fd_path(&newfd),
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | new,
                    None::<&str>,
                );
                match r {
                    Ok(()) => {}
                    // In a user namespace the source's ro/nosuid/nodev/noexec/atime flags are
                    // locked: say which asked-for change the kernel refused.
                    Err(Errno::EPERM) if !cur.intersection(opts.clear).is_empty() => {
                        return Err(Error::Other(format!(
                            "bind {}: cannot clear {:?}: locked on the source's mount (user namespace): EPERM",
                            source.display(),
                            cur.intersection(opts.clear)
                        )))
                    }
                    Err(errno) => {
                        return Err(Error::Sys {
                            what: "remount bind with options".into(),
                            errno,
                        })
                    }
                }
            }
        }
    } else {
        // Read what is under the mountpoint before the tmpfs hides it.
        let below = if opts.tmpcopyup {
            Some(
                openat_in_root(
                    root.as_raw_fd(),
                    dest,
                    libc::O_DIRECTORY | libc::O_RDONLY,
                    0,
                )
                .map_err(|e| Error::Sys {
                    what: "tmpcopyup: open the mountpoint".into(),
                    errno: e,
                })?,
            )
        } else {
            None
        };
        let flags = opts.flags;
        let src = if source.as_os_str().is_empty() {
            PathBuf::from(&typ)
        } else {
            source.clone()
        };
        let r = mount(Some(&src), &tpath, Some(typ.as_str()), flags, data);
        match (r, typ.as_str()) {
            (Ok(()), _) => {}
            (Err(Errno::EPERM), "sysfs") | (Err(Errno::EPERM), "mqueue") => {
                // In a user namespace without a matching net/ipc namespace the kernel refuses a fresh
                // sysfs/mqueue; bind the host's instead, as runc does.
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                sys(
                    mount(
                        Some(host),
                        &tpath,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    ),
                    || format!("bind {host}"),
                )?;
                let newfd = reopen(root, dest)?;
                let keep = locked_flags(&newfd);
                sys(
                    mount(
                        None::<&str>,
                        &fd_path(&newfd),
                        None::<&str>,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | keep,
                        None::<&str>,
                    ),
                    || format!("remount the bound {host} with options"),
                )?;
            }
            (Err(Errno::EINVAL), "devpts")
                if data.is_some_and(|d| d.split(',').any(|o| o.starts_with("gid=")))
                    && mount(
                        Some(&src),
                        &tpath,
                        Some("devpts"),
                        flags,
                        data.map(without_gid).as_deref(),
                    )
                    .is_ok() =>
            {
                // A user namespace that does not map the tty group (rootless with a single id):
                // the ptys belong to the process's own group, as runc does.
            }
            (Err(Errno::EINVAL), _) if data.is_some() => {
                return Err(Error::Other(format!(
                    "{typ} refused the options {:?} (unknown option or bad value): EINVAL",
                    data.unwrap_or_default()
                )))
            }
            (Err(e), _) => {
                return Err(Error::Sys {
                    what: format!("mount {typ}"),
                    errno: e,
                })
            }
        }
        if let Some(below) = below {
            let top = openat_in_root(
                root.as_raw_fd(),
                dest,
                libc::O_DIRECTORY | libc::O_RDONLY,
                0,
            )
            .map_err(|e| Error::Sys {
                what: "tmpcopyup: open the tmpfs".into(),
                errno: e,
            })?;
            crate::fsutil::copy_tree(&below, &top)
                .map_err(|e| Error::Other(format!("tmpcopyup: {e}")))?;
        }
    }
    finish_mount(root, dest, opts)
}

/// After the mount itself: propagation, then the recursive attributes (one mount_setattr(2), and
/// only when some were asked for).
fn finish_mount(root: &OwnedFd, dest: &Path, opts: &MountOpts) -> Result<()> {
    if opts.propagation.is_empty() && opts.recursive.is_empty() {
        return Ok(());
    }
    let newfd = reopen(root, dest)?;
    for p in &opts.propagation {
        sys(
            mount(
                None::<&str>,
                &fd_path(&newfd),
                None::<&str>,
                *p,
                None::<&str>,
            ),
            || "set propagation".into(),
        )?;
    }
    if !opts.recursive.is_empty() {
        sys(set_attrs_recursive(&newfd, opts.recursive, None), || {
            format!(
                "mount_setattr(AT_RECURSIVE, set {:#x}, clear {:#x})",
                opts.recursive.set, opts.recursive.clr
            )
        })?;
    }
    Ok(())
}

/// Mount cgroups for the container: cgroup2 on a v2 host; on v1/hybrid a tmpfs with the container's
/// own cgroup directory of each hierarchy bound in, read-only when asked.
fn mount_cgroup(ctx: &Ctx, root: &OwnedFd, m: &Mount, opts: &MountOpts) -> Result<()> {
    let dest = m.destination();
    let target = mkdir_all_in_root(root.as_raw_fd(), dest, Kind::Dir)?;
    let flags = opts
        .flags
        .difference(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        // Bind the container's own cgroup directory: the same view a cgroup2 mount inside its cgroup
        // namespace gives, without depending on when the namespace is unshared.
        if !ctx.cgroup.paths.contains_key("unified") {
            return sys(
                mount(
                    Some("cgroup2"),
                    &fd_path(&target),
                    Some("cgroup2"),
                    flags,
                    None::<&str>,
                ),
                || "mount cgroup2".into(),
            );
        }
        let src = ctx
            .cgroup
            .paths
            .get("unified")
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        sys(
            mount(
                Some(&src),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || "bind cgroup2".into(),
        )?;
        let keep = locked_flags(&target);
        let t2 =
            openat_in_root(root.as_raw_fd(), dest, libc::O_PATH, 0).map_err(|e| Error::Sys {
                what: "reopen".into(),
                errno: e,
            })?;
        return sys(
            mount(
                None::<&str>,
                &fd_path(&t2),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | keep,
                None::<&str>,
            ),
            || "remount cgroup2".into(),
        );
    }
    sys(
        mount(
            Some("tmpfs"),
            &fd_path(&target),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        ),
        || "mount tmpfs for cgroups".into(),
    )?;
    // The tmpfs is fresh and ours: create and open the per-hierarchy directories relative to it
    // (nothing in it can be a planted symlink), bind each container cgroup in, then make the whole
    // tree nosuid/nodev/noexec (and read-only when asked) with one recursive mount_setattr(2).
    let tmp = openat_in_root(
        root.as_raw_fd(),
        dest,
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .map_err(|e| Error::Sys {
        what: "open cgroup tmpfs".into(),
        errno: e,
    })?;
    for (ctl, hostdir) in &ctx.cgroup.paths {
        if !hostdir.exists() {
            continue;
        }
        let name = std::ffi::CString::new(ctl.as_str())
            .map_err(|_| Error::Other(format!("cgroup name {ctl:?}")))?;
        // SAFETY: valid dirfd and C string.
        if unsafe { libc::mkdirat(tmp.as_raw_fd(), name.as_ptr(), 0o755) } < 0
            && Errno::last() != Errno::EEXIST
        {
            return Err(Error::Sys {
                what: format!("mkdir cgroup {ctl}"),
                errno: Errno::last(),
            });
        }
        // SAFETY: valid dirfd and C string; O_NOFOLLOW.
        let t = unsafe {
            libc::openat(
                tmp.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if t < 0 {
            return Err(Error::Sys {
                what: format!("open cgroup {ctl}"),
                errno: Errno::last(),
            });
        }
        // SAFETY: fresh fd we own.
        let t = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(t) };
        sys(
            mount(
                Some(hostdir),
                &fd_path(&t),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("bind cgroup {ctl}"),
        )?;
    }
    let mut attr: u64 = 0x2 | 0x4 | 0x8; // MOUNT_ATTR_NOSUID | NODEV | NOEXEC
    if flags.contains(MsFlags::MS_RDONLY) {
        attr |= 0x1; // MOUNT_ATTR_RDONLY
    }
    let top = openat_in_root(root.as_raw_fd(), dest, libc::O_PATH, 0).map_err(|e| Error::Sys {
        what: "reopen cgroup tmpfs".into(),
        errno: e,
    })?;
    let ma: [u64; 4] = [attr, 0, 0, 0];
    // SAFETY: `ma` is a struct mount_attr (attr_set, attr_clr, propagation, userns_fd) of the size
    // passed; the empty path is a valid C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            top.as_raw_fd(),
            c"".as_ptr(),
            0x1000u32 | 0x8000u32,
            ma.as_ptr(),
            std::mem::size_of_val(&ma),
        )
    };
    if r < 0 {
        return Err(Error::Sys {
            what: "mount_setattr cgroup tree".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// The devices every container gets (runtime-spec "Default Devices").
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

/// A device node to create.
struct Dev<'a> {
    path: &'a Path,
    kind: libc::mode_t,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The directory `parent` (made if missing) inside the root, opened for *at() calls; the last one
/// is kept in `cache`, since devices mostly share /dev.
fn device_dir<'c>(
    root: &OwnedFd,
    parent: &Path,
    cache: &'c mut Option<(PathBuf, OwnedFd)>,
) -> Result<&'c OwnedFd> {
    if cache.as_ref().is_none_or(|(p, _)| p != parent) {
        let fd = match openat_in_root(
            root.as_raw_fd(),
            parent,
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        ) {
            Ok(fd) => fd,
            Err(_) => {
                let pfd = mkdir_all_in_root(root.as_raw_fd(), parent, Kind::Dir)?;
                crate::fsutil::open_path(&fd_path(&pfd), libc::O_DIRECTORY | libc::O_RDONLY)?
            }
        };
        *cache = Some((parent.to_path_buf(), fd));
    }
    cache
        .as_ref()
        .map(|(_, fd)| fd)
        .ok_or_else(|| Error::Other("device directory".into()))
}

fn make_device(
    ctx: &Ctx,
    root: &OwnedFd,
    cache: &mut Option<(PathBuf, OwnedFd)>,
    d: Dev,
) -> Result<()> {
    let Dev {
        path,
        kind,
        major,
        minor,
        mode,
        uid,
        gid,
    } = d;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("linux.devices: bad path {path:?}")))?;
    let dirfd = device_dir(root, parent, cache)?;
    let cname = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| Error::Config("device name".into()))?;
    // Remove whatever is there (only a plain entry; unlinkat never follows links).
    // SAFETY: valid dirfd and C string.
    unsafe { libc::unlinkat(dirfd.as_raw_fd(), cname.as_ptr(), 0) };
    let mut bind = ctx.userns;
    if !bind {
        // SAFETY: valid dirfd and C string; makedev is a pure computation.
        let r = unsafe {
            libc::mknodat(
                dirfd.as_raw_fd(),
                cname.as_ptr(),
                kind | (mode & 0o7777),
                libc::makedev(major as u32, minor as u32),
            )
        };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EPERM {
                bind = true;
            } else {
                return Err(Error::Sys {
                    what: format!("mknod {}", path.display()),
                    errno: e,
                });
            }
        } else {
            // SAFETY: valid dirfd and C string; AT_SYMLINK_NOFOLLOW never follows.
            unsafe {
                libc::fchownat(
                    dirfd.as_raw_fd(),
                    cname.as_ptr(),
                    uid,
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                );
            }
        }
    }
    if bind {
        // Without mknod rights, bind the host's device node of the same path.
        // SAFETY: valid dirfd and C string; O_EXCL|O_NOFOLLOW.
        let r = unsafe {
            libc::openat(
                dirfd.as_raw_fd(),
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            )
        };
        if r >= 0 {
            // SAFETY: we own r.
            unsafe { libc::close(r) };
        }
        let t =
            openat_in_root(root.as_raw_fd(), path, libc::O_PATH, 0).map_err(|e| Error::Sys {
                what: format!("resolve {}", path.display()),
                errno: e,
            })?;
        sys(
            mount(
                Some(path),
                &fd_path(&t),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
            || format!("bind device {}", path.display()),
        )?;
    }
    Ok(())
}

/// Create default and configured devices plus the standard /dev symlinks.
pub fn create_devices(ctx: &Ctx) -> Result<()> {
    let root = open_root(&ctx.rootfs)?;
    let mut cache = None;
    let dev_bound = ctx.spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && parse_options(m.options().as_deref().unwrap_or(&[])).is_ok_and(|o| o.bind)
    });
    let devices: Vec<LinuxDevice> = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    if !dev_bound {
        for (p, ma, mi) in default_devices() {
            if devices.iter().any(|d| d.path() == Path::new(p)) {
                continue;
            }
            make_device(
                ctx,
                &root,
                &mut cache,
                Dev {
                    path: Path::new(p),
                    kind: libc::S_IFCHR,
                    major: ma,
                    minor: mi,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                },
            )?;
        }
    }
    for d in &devices {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(Error::Config(format!(
                "linux.devices: path {:?} must be absolute under /dev",
                d.path()
            )));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::Config(format!(
                    "linux.devices: {:?}: type 'a' is only valid in cgroup rules",
                    d.path()
                )))
            }
        };
        let dev = Dev {
            path: d.path(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        make_device(ctx, &root, &mut cache, dev)?;
    }
    if !dev_bound {
        let dir = device_dir(&root, Path::new("/dev"), &mut cache)?;
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            let n = std::ffi::CString::new(name).unwrap_or_default();
            let t = std::ffi::CString::new(target).unwrap_or_default();
            if name == "ptmx" {
                // SAFETY: valid dirfd and C string.
                unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), 0) };
            }
            // SAFETY: valid dirfd and C strings.
            unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) };
        }
    }
    Ok(())
}

/// pivot_root into the rootfs (or MS_MOVE + chroot with `no_pivot`) and detach the old root.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    sys(nix::unistd::chdir(rootfs), || {
        format!("chdir {}", rootfs.display())
    })?;
    if no_pivot {
        sys(
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>),
            || "move rootfs to /".into(),
        )?;
        sys(nix::unistd::chroot("."), || "chroot".into())?;
        return sys(nix::unistd::chdir("/"), || "chdir /".into());
    }
    let old = crate::fsutil::open_path(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY)?;
    sys(nix::unistd::pivot_root(".", "."), || "pivot_root".into())?;
    sys(nix::unistd::fchdir(&old), || "fchdir old root".into())?;
    sys(
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ),
        || "make old root slave".into(),
    )?;
    sys(umount2(".", MntFlags::MNT_DETACH), || {
        "detach old root".into()
    })?;
    sys(nix::unistd::chdir("/"), || "chdir /".into())
}

/// After pivot: shared/unbindable root propagation, masked and read-only paths, read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let root = crate::fsutil::open_path(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)?;
    let linux = spec.linux().as_ref();
    match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some("shared") => sys(
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_SHARED,
                None::<&str>,
            ),
            || "make / shared".into(),
        )?,
        Some("rshared") => sys(
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            ),
            || "make / rshared".into(),
        )?,
        Some("unbindable") => sys(
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_UNBINDABLE,
                None::<&str>,
            ),
            || "make / unbindable".into(),
        )?,
        Some("runbindable") => sys(
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                None::<&str>,
            ),
            || "make / runbindable".into(),
        )?,
        _ => {}
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly_path(&root, Path::new(&p))
            .map_err(|e| Error::Other(format!("readonly path {p}: {e}")))?;
    }
    let mut null = None;
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask_path(&root, Path::new(&p), &mut null)
            .map_err(|e| Error::Other(format!("masked path {p}: {e}")))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let keep = locked_flags(&root);
        sys(
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | keep,
                None::<&str>,
            ),
            || "remount / read-only".into(),
        )?;
    }
    Ok(())
}

fn readonly_path(root: &OwnedFd, p: &Path) -> Result<()> {
    let fd = match openat_in_root(root.as_raw_fd(), p, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: "resolve".into(),
                errno: e,
            })
        }
    };
    sys(
        mount(
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || "bind".into(),
    )?;
    let fd2 =
        openat_in_root(root.as_raw_fd(), p, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(|e| {
            Error::Sys {
                what: "reopen".into(),
                errno: e,
            }
        })?;
    let keep = locked_flags(&fd2);
    sys(
        mount(
            None::<&str>,
            &fd_path(&fd2),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_REC | keep,
            None::<&str>,
        ),
        || "remount read-only".into(),
    )
}

/// The container's /dev/null, opened once per rootfs and verified to be the real null device (not
/// a file or link planted there) before anything is masked with it.
fn verified_null<'c>(root: &OwnedFd, cache: &'c mut Option<OwnedFd>) -> Result<&'c OwnedFd> {
    if cache.is_none() {
        let null = openat_in_root(
            root.as_raw_fd(),
            Path::new("/dev/null"),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| Error::Sys {
            what: "open /dev/null".into(),
            errno: e,
        })?;
        let ns = sys(nix::sys::stat::fstat(&null), || "stat /dev/null".into())?;
        if ns.st_mode & libc::S_IFMT != libc::S_IFCHR
            || libc::major(ns.st_rdev) != 1
            || libc::minor(ns.st_rdev) != 3
        {
            return Err(Error::Other(
                "/dev/null in the container is not the null device (1:3); refusing to mask with it"
                    .into(),
            ));
        }
        *cache = Some(null);
    }
    cache
        .as_ref()
        .ok_or_else(|| Error::Other("/dev/null".into()))
}

fn mask_path(root: &OwnedFd, p: &Path, null: &mut Option<OwnedFd>) -> Result<()> {
    let fd = match openat_in_root(root.as_raw_fd(), p, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ELOOP) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: "resolve".into(),
                errno: e,
            })
        }
    };
    let st = sys(nix::sys::stat::fstat(&fd), || "stat".into())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return sys(
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            ),
            || "mount tmpfs".into(),
        );
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Ok(());
    }
    let null = verified_null(root, null)?;
    sys(
        mount(
            Some(&fd_path(null)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
        || "bind /dev/null".into(),
    )
}

/// Apply `linux.sysctl`, refusing keys that are not namespaced to the container.
pub fn apply_sysctl(spec: &Spec, netns: bool, ipcns: bool, utsns: bool) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    let mut keys: Vec<_> = map.keys().cloned().collect();
    keys.sort();
    for k in keys {
        let v = &map[&k];
        let ipc = k.starts_with("kernel.msg")
            || k.starts_with("kernel.sem")
            || k.starts_with("kernel.shm")
            || k.starts_with("fs.mqueue.");
        let ok = (ipc && ipcns)
            || (k.starts_with("net.") && netns)
            || ((k == "kernel.hostname" || k == "kernel.domainname") && utsns)
            || k == "kernel.shm_rmid_forced" && ipcns;
        if !ok {
            return Err(Error::Config(format!(
                "linux.sysctl: {k:?} is not allowed: it is not namespaced to this container"
            )));
        }
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v)
            .map_err(|e| Error::Config(format!("linux.sysctl: {k} = {v:?}: {e}")))?;
    }
    Ok(())
}

/// Mount options without `gid=`.
fn without_gid(data: &str) -> String {
    data.split(',')
        .filter(|o| !o.starts_with("gid="))
        .collect::<Vec<_>>()
        .join(",")
}
