//! Small helpers: time formatting, user names, raw clone, waiting.

use crate::error::{Error, Result};
use nix::errno::Errno;

/// Current UTC time as RFC 3339 with nanoseconds (`2026-11-24T10:00:00.123456789Z`).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Format seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (proleptic Gregorian), Howard Hinnant's published algorithm.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The user name of `uid` from /etc/passwd (or the number).
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// CLONE_INTO_CGROUP (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`raw_clone`], but the child starts inside the cgroup2 directory `cgroup_fd`
/// (clone3 with CLONE_INTO_CGROUP), so no migration, and no wait on the kernel's migration lock,
/// is needed. Errors (old kernel, a group that refuses the process) leave nothing behind and the
/// caller falls back to clone + cgroup.procs.
pub fn clone_into_cgroup(flags: i32, cgroup_fd: i32) -> std::result::Result<i32, Errno> {
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a clone_args of the size passed; stack 0 makes the child continue on a copy
    // of our stack like fork (the runtime is single-threaded), so no memory is shared.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r as i32)
}

/// fork-like clone(2) with namespace flags: the child continues on a copy of our stack. Only safe in
/// a single-threaded process (the runtime never starts threads).
pub fn raw_clone(flags: i32) -> Result<i32> {
    // SAFETY: clone with a NULL stack behaves like fork; the runtime is single-threaded so the child's
    // copy of the address space is consistent.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(Error::Sys {
            what: format!("clone (namespaces {flags:#x})"),
            errno: Errno::last(),
        });
    }
    Ok(r as i32)
}

/// waitpid for `pid`; returns the shell-style exit code (128+signal when killed).
pub fn wait_code(pid: i32) -> Result<i32> {
    let mut st = 0;
    loop {
        // SAFETY: st is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return Ok(status_code(st));
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return Err(Error::Sys {
                what: format!("wait for {pid}"),
                errno: Errno::last(),
            });
        }
    }
}

/// Convert a wait status to an exit code (128+signal when killed by a signal).
pub fn status_code(st: i32) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    }
}

/// Parse a signal given as a number, `KILL`, or `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Other(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            if let Some(off) = name
                .strip_prefix("RTMIN+")
                .and_then(|x| x.parse::<i32>().ok())
            {
                34 + off
            } else if let Some(off) = name
                .strip_prefix("RTMAX-")
                .and_then(|x| x.parse::<i32>().ok())
            {
                64 - off
            } else if name == "RTMIN" {
                34
            } else if name == "RTMAX" {
                64
            } else {
                return Err(Error::Other(format!("unknown signal {s:?}")));
            }
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
    }
    #[test]
    fn parses_signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), 35);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}

/// Parses a Go-style duration (`300ms`, `1.5s`, `1m30s`, `2h`; a bare `0` is zero), as runc's
/// `events --interval` and docker's `--since 10m` take them. The error names the input.
pub fn parse_go_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let bad = |why: &str| format!("invalid duration {s:?}{why}");
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad(""));
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(": missing unit"))?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad(""))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(bad(&format!(": unknown unit {u:?}"))),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad(""))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("h").is_err());
    }
}

/// True when this process is euid 0 of the initial user namespace (the full identity map).
/// Remembered per process (callers join namespaces, if ever, before asking).
pub fn is_real_root() -> bool {
    static R: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *R.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return false;
        }
        match std::fs::read_to_string("/proc/self/uid_map") {
            Ok(m) => {
                let f: Vec<&str> = m.split_whitespace().collect();
                f.len() >= 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
            }
            Err(_) => true,
        }
    })
}

/// The highest gid this process's user namespace maps (from /proc/self/gid_map; 0 if unreadable).
pub fn mapped_gid_top() -> u64 {
    std::fs::read_to_string("/proc/self/gid_map")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3 && f[2] > 0).then(|| f[0] + f[2] - 1)
        })
        .max()
        .unwrap_or(0)
        .min(2147483647)
}
