//! What a seccomp profile blocks, in numbers a person can read (`skiff explain`): the syscalls of
//! this architecture (libseccomp's table) sorted into allowed, allowed under argument conditions,
//! and blocked, and where a few notable ones land.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use serde::Serialize;

/// Syscalls whose fate says most about a profile: the ones container escapes and host
/// interference go through.
pub const NOTABLE: [&str; 24] = [
    "mount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "ptrace",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "reboot",
    "swapon",
    "clock_settime",
    "iopl",
    "ioperm",
    "acct",
    "syslog",
];

/// The summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SeccompSummary {
    /// The default action (`SCMP_ACT_ERRNO`, ...).
    pub default_action: String,
    /// Syscalls always allowed.
    pub allowed: usize,
    /// Syscalls allowed only for some arguments or conditions.
    pub conditional: usize,
    /// Syscalls always refused (errno, kill, trap, ...).
    pub blocked: usize,
    /// Notable syscalls that are blocked.
    pub notable_blocked: Vec<String>,
    /// Notable syscalls that are allowed (unconditionally or under conditions).
    pub notable_allowed: Vec<String>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Fate {
    Allowed,
    Conditional,
    Blocked,
}

fn fate(p: &LinuxSeccomp, name: &str) -> Fate {
    let mut best: Option<Fate> = None;
    for r in p.syscalls().iter().flatten() {
        if !r.names().iter().any(|n| n == name) {
            continue;
        }
        let f = match r.action() {
            LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog => {
                if r.args().as_ref().is_some_and(|a| !a.is_empty()) {
                    Fate::Conditional
                } else {
                    Fate::Allowed
                }
            }
            _ => Fate::Blocked,
        };
        best = Some(match (best, f) {
            (Some(Fate::Allowed), _) | (_, Fate::Allowed) => Fate::Allowed,
            (Some(Fate::Conditional), _) | (_, Fate::Conditional) => Fate::Conditional,
            _ => Fate::Blocked,
        });
    }
    best.unwrap_or(match p.default_action() {
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog => Fate::Allowed,
        _ => Fate::Blocked,
    })
}

/// Summarises `p` over this architecture's syscall table.
pub fn summarize(p: &LinuxSeccomp) -> SeccompSummary {
    let mut names = std::collections::BTreeSet::new();
    for nr in 0..1024 {
        if let Ok(n) = ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::Native) {
            names.insert(n);
        }
    }
    for n in NOTABLE {
        names.insert(n.to_string());
    }
    let mut s = SeccompSummary {
        default_action: serde_json::to_value(p.default_action())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        ..Default::default()
    };
    for n in &names {
        match fate(p, n) {
            Fate::Allowed => s.allowed += 1,
            Fate::Conditional => s.conditional += 1,
            Fate::Blocked => s.blocked += 1,
        }
    }
    for n in NOTABLE {
        match fate(p, n) {
            Fate::Blocked => s.notable_blocked.push(n.to_string()),
            _ => s.notable_allowed.push(n.to_string()),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_blocks_the_notable_ones() {
        let caps: Vec<String> = crate::docker::DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let spec = crate::seccomp_profile::default_seccomp(&caps).unwrap();
        let s = summarize(&spec);
        assert!(s.blocked > 20, "{s:?}");
        assert!(s.allowed > 250, "{s:?}");
        for n in ["mount", "keyctl", "bpf", "kexec_load", "open_by_handle_at"] {
            assert!(s.notable_blocked.iter().any(|x| x == n), "{n}: {s:?}");
        }
    }
}
