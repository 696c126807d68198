//! Namespaces: which to create, which to join (`path`), uid/gid maps and time offsets.

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// CLONE_NEWTIME (not in every libc version).
pub const CLONE_NEWTIME: i32 = 0x80;

/// The namespace plan of a container.
#[derive(Debug, Default)]
pub struct Plan {
    /// Namespaces to create (CLONE_* flags), including user/cgroup/time.
    pub new_flags: i32,
    /// Namespaces to join: (type flag, path).
    pub join: Vec<(i32, PathBuf)>,
    /// The uid/gid maps when a user namespace is created.
    pub uid_map: Vec<LinuxIdMapping>,
    /// gid map.
    pub gid_map: Vec<LinuxIdMapping>,
    /// Time namespace offsets: (clock name, secs, nanosecs).
    pub time_offsets: Vec<(String, i64, u32)>,
}

/// CLONE_* flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

/// The /proc/<pid>/ns/<name> file name of a namespace flag.
pub fn proc_name(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        CLONE_NEWTIME => "time",
        _ => "?",
    }
}

/// All namespace flags in the order they must be joined (user first so the rest are permitted).
pub const ORDER: [i32; 8] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    CLONE_NEWTIME,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWNS,
];

/// Build the namespace plan from a validated spec.
pub fn plan(spec: &Spec) -> Result<Plan> {
    let mut p = Plan::default();
    let Some(linux) = spec.linux() else {
        return Ok(p);
    };
    let mut seen = 0;
    for ns in linux.namespaces().iter().flatten() {
        let f = flag(ns.typ());
        if seen & f != 0 {
            return Err(Error::Config(format!(
                "linux.namespaces: duplicate namespace {:?}",
                proc_name(f)
            )));
        }
        seen |= f;
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                if !path.is_absolute() {
                    return Err(Error::Config(format!(
                        "linux.namespaces: {} path {path:?} must be absolute",
                        proc_name(f)
                    )));
                }
                p.join.push((f, path.clone()));
            }
            _ => p.new_flags |= f,
        }
    }
    if p.new_flags & libc::CLONE_NEWUSER != 0 {
        p.uid_map = linux.uid_mappings().clone().unwrap_or_default();
        p.gid_map = linux.gid_mappings().clone().unwrap_or_default();
        if p.uid_map.is_empty() || p.gid_map.is_empty() {
            return Err(Error::Config(
                "linux.uidMappings/gidMappings: required when creating a user namespace".into(),
            ));
        }
    } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        && !p.join.iter().any(|(f, _)| *f == libc::CLONE_NEWUSER)
    {
        return Err(Error::Config(
            "linux.uidMappings: set but no user namespace is requested".into(),
        ));
    }
    if let Some(offs) = linux.time_offsets() {
        if p.new_flags & CLONE_NEWTIME == 0 && !offs.is_empty() {
            return Err(Error::Config(
                "linux.timeOffsets: set but no new time namespace is requested".into(),
            ));
        }
        for (clock, o) in offs {
            if clock != "monotonic" && clock != "boottime" {
                return Err(Error::Config(format!(
                    "linux.timeOffsets: unknown clock {clock:?} (want monotonic or boottime)"
                )));
            }
            p.time_offsets.push((
                clock.clone(),
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0),
            ));
        }
    }
    Ok(p)
}

fn map_text(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

/// Write the uid/gid maps of `pid` (from the parent). Uses newuidmap/newgidmap when unprivileged and
/// the mapping is more than our own id.
pub fn write_maps(pid: i32, plan: &Plan) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        let single_self = |m: &[LinuxIdMapping], own: u32| {
            m.len() == 1 && m[0].host_id() == own && m[0].size() == 1
        };
        // SAFETY: getegid has no preconditions.
        let egid = unsafe { libc::getegid() };
        if !single_self(&plan.uid_map, euid) {
            return helper_map("newuidmap", pid, &plan.uid_map);
        }
        let f = format!("/proc/{pid}/uid_map");
        std::fs::write(&f, map_text(&plan.uid_map)).at(&f)?;
        if single_self(&plan.gid_map, egid) {
            let f = format!("/proc/{pid}/setgroups");
            std::fs::write(&f, "deny").at(&f)?;
            let f = format!("/proc/{pid}/gid_map");
            return std::fs::write(&f, map_text(&plan.gid_map)).at(&f);
        }
        return helper_map("newgidmap", pid, &plan.gid_map);
    }
    let f = format!("/proc/{pid}/uid_map");
    std::fs::write(&f, map_text(&plan.uid_map)).at(&f)?;
    let f = format!("/proc/{pid}/gid_map");
    std::fs::write(&f, map_text(&plan.gid_map)).at(&f)
}

fn helper_map(tool: &str, pid: i32, m: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string());
    for e in m {
        cmd.args([
            e.container_id().to_string(),
            e.host_id().to_string(),
            e.size().to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Other(format!("{tool}: {e} (install Debian's uidmap package)")))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Open the namespace files to join (before any setns changes what paths mean).
pub fn open_joins(join: &[(i32, PathBuf)]) -> Result<Vec<(i32, OwnedFd)>> {
    let mut v = Vec::new();
    for f in ORDER {
        for (jf, path) in join {
            if *jf == f {
                let fd = crate::fsutil::open_path(path, libc::O_RDONLY)?;
                v.push((f, fd));
            }
        }
    }
    Ok(v)
}

/// setns into each opened namespace (already in join order).
pub fn setns_all(fds: &[(i32, OwnedFd)]) -> Result<()> {
    for (f, fd) in fds {
        // SAFETY: fd is an open namespace file; setns has no memory-safety preconditions.
        if unsafe { libc::setns(fd.as_raw_fd(), *f) } < 0 {
            return Err(Error::Sys {
                what: format!("join {} namespace", proc_name(*f)),
                errno: nix::errno::Errno::last(),
            });
        }
    }
    Ok(())
}

/// unshare(2) wrapper.
pub fn unshare(flags: i32) -> Result<()> {
    // SAFETY: unshare has no memory-safety preconditions.
    if flags != 0 && unsafe { libc::unshare(flags) } < 0 {
        return Err(Error::Sys {
            what: format!("unshare namespaces {flags:#x}"),
            errno: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

/// Open `/proc/self/timens_offsets` for writing the offsets later (None when there are none).
///
/// With a new user namespace this must happen right after `unshare(CLONE_NEWUSER)`, before the
/// switch to the mapped root: that uid change makes the process non-dumpable, which turns its
/// `/proc/self` files over to the host's root and the open into EACCES. The write's capability
/// check uses the opener's credentials, which by then hold CAP_SYS_TIME in the new user namespace
/// that will own the time namespace.
pub fn open_time_offsets(offs: &[(String, i64, u32)]) -> Result<Option<std::fs::File>> {
    if offs.is_empty() {
        return Ok(None);
    }
    let p = Path::new("/proc/self/timens_offsets");
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .map(Some)
        .at(p)
}

/// Write time namespace offsets for the (not yet entered) time namespace of this process, through
/// the file from [`open_time_offsets`].
pub fn write_time_offsets(f: Option<std::fs::File>, offs: &[(String, i64, u32)]) -> Result<()> {
    let Some(mut f) = f else { return Ok(()) };
    let text: String = offs
        .iter()
        .map(|(c, s, n)| format!("{c} {s} {n}\n"))
        .collect();
    use std::io::Write;
    f.write_all(text.as_bytes()).map_err(|e| {
        Error::Other(format!(
            "linux.timeOffsets: write /proc/self/timens_offsets: {e}"
        ))
    })
}
