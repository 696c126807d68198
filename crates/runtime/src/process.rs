//! The container process: rlimits, user and groups, capabilities, no_new_privs, environment, cwd,
//! executable lookup, fd hygiene and the final execve.

use crate::error::{Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Validate the process section (called at create time, before anything is set up).
pub fn validate(p: &Process) -> Result<()> {
    crate::procattr::validate_process(p)?;
    let args = p.args().as_deref().unwrap_or(&[]);
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::Config(
            "process.args: must name a program to run".into(),
        ));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd: {:?} must be an absolute path",
            p.cwd()
        )));
    }
    let mut seen = Vec::new();
    for r in p.rlimits().iter().flatten() {
        if seen.contains(&r.typ()) {
            return Err(Error::Config(format!(
                "process.rlimits: duplicate {:?}",
                r.typ()
            )));
        }
        seen.push(r.typ());
        if r.soft() > r.hard() {
            return Err(Error::Config(format!(
                "process.rlimits: {:?} soft limit {} above hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            )));
        }
    }
    Ok(())
}

/// Apply process.rlimits.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: `lim` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) } < 0 {
            return Err(Error::Sys {
                what: format!(
                    "process.rlimits: set {:?} to {}/{}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// Set the no_new_privs bit.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(Error::Sys {
            what: "prctl(PR_SET_NO_NEW_PRIVS)".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        if let Ok(cap) = Capability::from_str(&format!("CAP_{c}")) {
            out.insert(cap);
        }
    }
    out
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drop the bounding set to `caps.bounding` (needs CAP_SETPCAP, so before changing user).
pub fn drop_bounding(c: Option<&LinuxCapabilities>) -> Result<()> {
    let keep = c.map(|c| to_caps(c.bounding())).unwrap_or_default();
    let last = last_cap();
    for cap in caps::all() {
        if cap.index() > last || keep.contains(&cap) {
            continue;
        }
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(|e| Error::Other(format!("drop bounding capability {cap}: {e}")))?;
    }
    Ok(())
}

/// Switch to the configured user (uid, gid, additional gids, umask) keeping capabilities across the
/// change, then set effective/permitted/inheritable/ambient exactly as configured.
pub fn set_user_and_caps(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<libc::gid_t> = u.additional_gids().clone().unwrap_or_default();
    if setgroups_allowed {
        // SAFETY: the pointer and length describe a live Vec.
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
            let e = Errno::last();
            // Inside a user namespace that denies setgroups (an unprivileged user's single-id
            // map, e.g. rootless skiff without /etc/subgid ranges) groups that add nothing to the
            // primary gid can be left alone.
            let denied = e == Errno::EPERM
                && std::fs::read_to_string("/proc/self/setgroups")
                    .is_ok_and(|s| s.trim() == "deny");
            if !(denied && groups.iter().all(|g| *g == u.gid())) {
                return Err(Error::Sys {
                    what: format!("process.user.additionalGids: setgroups {groups:?}"),
                    errno: e,
                });
            }
        }
    } else if !groups.is_empty() {
        return Err(Error::Config("process.user.additionalGids: cannot set groups: setgroups is denied in this user namespace".into()));
    }
    // SAFETY: plain integer syscalls.
    if unsafe { libc::setresgid(u.gid(), u.gid(), u.gid()) } < 0 {
        return Err(Error::Sys {
            what: format!("process.user.gid: setgid {}", u.gid()),
            errno: Errno::last(),
        });
    }
    // SAFETY: plain integer syscalls.
    if unsafe { libc::setresuid(u.uid(), u.uid(), u.uid()) } < 0 {
        return Err(Error::Sys {
            what: format!("process.user.uid: setuid {}", u.uid()),
            errno: Errno::last(),
        });
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(u.umask().unwrap_or(0o022) as libc::mode_t) };
    // No capabilities section: no capabilities (as runc), not oci-spec's default set.
    let c = p.capabilities().clone().unwrap_or_else(no_capabilities);
    let (e, pm, i, a) = (
        to_caps(c.effective()),
        to_caps(c.permitted()),
        to_caps(c.inheritable()),
        to_caps(c.ambient()),
    );
    caps::set(
        None,
        CapSet::Effective,
        &e.intersection(&caps::read(None, CapSet::Permitted).unwrap_or_default())
            .cloned()
            .collect(),
    )
    .map_err(|x| Error::Other(format!("process.capabilities.effective: {x}")))?;
    caps::set(None, CapSet::Permitted, &pm)
        .map_err(|x| Error::Other(format!("process.capabilities.permitted: {x}")))?;
    caps::set(None, CapSet::Effective, &e)
        .map_err(|x| Error::Other(format!("process.capabilities.effective: {x}")))?;
    caps::set(None, CapSet::Inheritable, &i)
        .map_err(|x| Error::Other(format!("process.capabilities.inheritable: {x}")))?;
    caps::clear(None, CapSet::Ambient).ok();
    // Ambient capabilities also need the inheritable bit; like runc, a cap that cannot be raised
    // (runc's own template lists ambient caps without inheritable ones) is skipped, not fatal.
    for cap in a {
        let _ = caps::raise(None, CapSet::Ambient, cap);
    }
    Ok(())
}

/// An empty capabilities section (every set present and empty).
pub fn no_capabilities() -> LinuxCapabilities {
    let none = Some(Default::default());
    let mut c = LinuxCapabilities::default();
    c.set_bounding(none.clone());
    c.set_effective(none.clone());
    c.set_permitted(none.clone());
    c.set_inheritable(none.clone());
    c.set_ambient(none);
    c
}

/// The environment for the process, with HOME added when missing (from the container's /etc/passwd).
pub fn build_env(p: &Process) -> Vec<String> {
    let mut env = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = p.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                        .then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Find the executable for args[0] using PATH from `env` (relative to the current root).
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let check = |p: &Path| -> std::result::Result<(), String> {
        let md = std::fs::metadata(p).map_err(|e| e.to_string())?;
        if md.is_dir() {
            return Err("is a directory".into());
        }
        Ok(())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(e) => Err(Error::Other(format!("exec: {arg0:?}: {e}"))),
        };
    }
    // Like runc (Go's exec.LookPath over the process's own environment): no PATH, no search.
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path.split(':').filter(|_| !path.is_empty()) {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if let Ok(md) = std::fs::metadata(&cand) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(Error::Other(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// Mark every fd from `first` upward close-on-exec, except those in `keep` (fd hygiene: nothing of the
/// runtime's leaks into the container — CVE-2024-21626).
pub fn cloexec_from(first: i32, keep: &[i32]) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (first..1024).collect(),
    };
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: fcntl on an integer fd; harmless if it is not open.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// execve the process; returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let cpath = match CString::new(path.as_os_str().as_bytes()) {
        Ok(c) => c,
        Err(_) => return Error::Other("exec: path contains NUL".into()),
    };
    let cargs: Vec<CString> = args
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let cenv: Vec<CString> = env
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings that outlive the call.
    unsafe { libc::execve(cpath.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Error::Sys {
        what: format!("exec {:?}", args.first().map(String::as_str).unwrap_or("")),
        errno: Errno::last(),
    }
}
