//! Docker-format seccomp profiles: the built-in default profile (an allow-list equivalent to
//! Docker's, embedded from `seccomp_default.json`) and a loader that turns any profile in Docker's
//! format (`defaultAction`, `defaultErrnoRet`, `archMap` or `architectures`, `syscalls[]` with
//! `includes`/`excludes` on capabilities, architectures and kernel version) into the runtime-spec
//! `linux.seccomp` for one container, given its capabilities and the host's architecture and kernel.

use oci_spec::runtime::LinuxSeccomp;
use serde::Deserialize;
use serde_json::{json, Value};

/// The built-in default profile, in Docker's profile format.
pub const DEFAULT_PROFILE_JSON: &str = include_str!("seccomp_default.json");

/// An invalid Docker-format profile; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("seccomp profile: {0}")]
pub struct ProfileError(String);

/// A seccomp profile in Docker's format (a superset of runtime-spec `linux.seccomp`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action for syscalls no rule matches.
    #[serde(default)]
    pub default_action: String,
    /// errno for an SCMP_ACT_ERRNO/TRACE default action.
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Explicit architecture list (mutually exclusive with `archMap`).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Per-native-architecture lists: the entry matching the host contributes itself and its
    /// sub-architectures.
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    /// seccomp(2) filter flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Unix socket that receives the notify fd (SCMP_ACT_NOTIFY).
    #[serde(default)]
    pub listener_path: String,
    /// Opaque data sent with the notify fd.
    #[serde(default)]
    pub listener_metadata: String,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture (`SCMP_ARCH_X86_64`).
    pub architecture: String,
    /// Architectures whose syscalls the native one also runs (`SCMP_ARCH_X86`, `SCMP_ARCH_X32`).
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule of `syscalls[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Legacy single name (mutually exclusive with `names`).
    #[serde(default)]
    pub name: String,
    /// Syscall names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Action when the rule matches.
    #[serde(default)]
    pub action: String,
    /// errno for SCMP_ACT_ERRNO/TRACE.
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Argument comparisons (runtime-spec shape).
    #[serde(default)]
    pub args: Option<Vec<Value>>,
    /// Free text.
    #[serde(default)]
    pub comment: String,
    /// The rule applies only when all of these hold.
    #[serde(default)]
    pub includes: Filter,
    /// The rule is dropped when any of these holds.
    #[serde(default)]
    pub excludes: Filter,
}

/// `includes`/`excludes` conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Go-style architecture names (`amd64`, `arm64`, `x86`, `s390x`, ...).
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// Capability names (`CAP_SYS_ADMIN`).
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// Kernel version `major.minor`.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What the loader needs to know about the host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Go-style name of the native architecture (`amd64`, `arm64`, ...).
    pub arch: &'static str,
    /// Kernel (major, minor).
    pub kernel: (u32, u32),
}

impl Host {
    /// The running host.
    pub fn current() -> Host {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "x86",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64" => "mips64",
            "loongarch64" => "loong64",
            other => other,
        };
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| parse_kernel(&u.release().to_string_lossy()))
            .unwrap_or((0, 0));
        Host { arch, kernel }
    }

    /// The libseccomp name of the native architecture.
    fn scmp_arch(&self) -> Option<&'static str> {
        Some(match self.arch {
            "amd64" => "SCMP_ARCH_X86_64",
            "x86" => "SCMP_ARCH_X86",
            "arm64" => "SCMP_ARCH_AARCH64",
            "arm" => "SCMP_ARCH_ARM",
            "ppc64le" => "SCMP_ARCH_PPC64LE",
            "s390x" => "SCMP_ARCH_S390X",
            "riscv64" => "SCMP_ARCH_RISCV64",
            "mips64" => "SCMP_ARCH_MIPS64",
            _ => return None,
        })
    }
}

/// `major.minor[.patch][-extra]` -> (major, minor).
fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Parse a profile in Docker's format.
pub fn parse(text: &[u8]) -> Result<Profile, ProfileError> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ProfileError(if path == "." {
            format!("{}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        })
    })
}

/// The built-in default profile, parsed.
pub fn default_profile() -> Profile {
    // The embedded document is checked by a unit test; an empty profile is never produced.
    parse(DEFAULT_PROFILE_JSON.as_bytes()).unwrap_or_default()
}

/// The default profile resolved for a container with capabilities `caps` on this host.
pub fn default_seccomp(caps: &[String]) -> Result<LinuxSeccomp, ProfileError> {
    resolve(&default_profile(), caps, &Host::current())
}

fn has_cap(caps: &[String], c: &str) -> bool {
    caps.iter().any(|x| x.eq_ignore_ascii_case(c))
}

/// Whether a rule applies to a container with `caps` on `host` (Docker's semantics: every
/// `includes` condition must hold, and no `excludes` condition may hold).
fn applies(r: &Rule, caps: &[String], host: &Host, i: usize) -> Result<bool, ProfileError> {
    let kernel = |v: &str, what: &str| {
        parse_kernel(v).ok_or_else(|| {
            ProfileError(format!(
                "syscalls[{i}].{what}.minKernel: {v:?} is not a kernel version (major.minor)"
            ))
        })
    };
    let inc = &r.includes;
    if let Some(a) = &inc.arches {
        if !a.is_empty() && !a.iter().any(|x| x == host.arch) {
            return Ok(false);
        }
    }
    if let Some(c) = &inc.caps {
        if !c.iter().all(|x| has_cap(caps, x)) {
            return Ok(false);
        }
    }
    if let Some(k) = inc.min_kernel.as_deref().filter(|k| !k.is_empty()) {
        if host.kernel < kernel(k, "includes")? {
            return Ok(false);
        }
    }
    let exc = &r.excludes;
    if exc.arches.iter().flatten().any(|x| x == host.arch) {
        return Ok(false);
    }
    if exc.caps.iter().flatten().any(|x| has_cap(caps, x)) {
        return Ok(false);
    }
    if let Some(k) = exc.min_kernel.as_deref().filter(|k| !k.is_empty()) {
        if host.kernel >= kernel(k, "excludes")? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Turn a Docker-format profile into runtime-spec `linux.seccomp` for a container whose
/// capability set (bounding) is `caps`, on `host`.
pub fn resolve(p: &Profile, caps: &[String], host: &Host) -> Result<LinuxSeccomp, ProfileError> {
    if p.default_action.is_empty() {
        return Err(ProfileError("defaultAction is missing".into()));
    }
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(ProfileError(
            "both 'architectures' and 'archMap' are given; use one of them".into(),
        ));
    }
    let mut arches = p.architectures.clone();
    if let Some(native) = host.scmp_arch() {
        for m in p.arch_map.iter().filter(|m| m.architecture == native) {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.iter().flatten().cloned());
        }
    }
    let mut rules = Vec::new();
    for (i, r) in p.syscalls.iter().enumerate() {
        if !r.name.is_empty() && !r.names.is_empty() {
            return Err(ProfileError(format!(
                "syscalls[{i}]: use either 'name' or 'names', not both"
            )));
        }
        if r.action.is_empty() {
            return Err(ProfileError(format!("syscalls[{i}].action is missing")));
        }
        if !applies(r, caps, host, i)? {
            continue;
        }
        let names = if r.name.is_empty() {
            r.names.clone()
        } else {
            vec![r.name.clone()]
        };
        let mut rule = json!({"names": names, "action": r.action});
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = e.into();
        }
        if let Some(a) = r.args.as_ref().filter(|a| !a.is_empty()) {
            rule["args"] = a.clone().into();
        }
        rules.push(rule);
    }
    let mut v = json!({"defaultAction": p.default_action, "syscalls": rules});
    if let Some(e) = p.default_errno_ret {
        v["defaultErrnoRet"] = e.into();
    }
    if !arches.is_empty() {
        v["architectures"] = arches.into();
    }
    if !p.flags.is_empty() {
        v["flags"] = p.flags.clone().into();
    }
    if !p.listener_path.is_empty() {
        v["listenerPath"] = p.listener_path.clone().into();
    }
    if !p.listener_metadata.is_empty() {
        v["listenerMetadata"] = p.listener_metadata.clone().into();
    }
    let de = v.clone();
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Point at the rule in the user's profile: the resolved index differs after filtering.
        let path = e.path().to_string();
        let named = path
            .strip_prefix("syscalls[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(n, tail)| {
                let n: usize = n.parse().ok()?;
                let first = v["syscalls"][n]["names"][0]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                Some(format!("syscalls rule for {first:?}{tail}"))
            })
            .unwrap_or(path);
        ProfileError(format!("{named}: {}", e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompOperator};

    fn amd64() -> Host {
        Host {
            arch: "amd64",
            kernel: (6, 1),
        }
    }

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn allowed<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a oci_spec::runtime::LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn default_profile_is_an_allow_list_that_compiles() {
        let p = default_profile();
        assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(p.default_errno_ret, Some(1));
        let base = caps(&crate::docker::DEFAULT_CAPS);
        let s = resolve(&p, &base, &amd64()).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        let arches: Vec<String> = s
            .architectures()
            .iter()
            .flatten()
            .map(|a| {
                serde_json::to_value(a)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            arches,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        for blocked in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "reboot",
            "kexec_load",
            "bpf",
            "init_module",
            "open_by_handle_at",
            "io_uring_setup",
            "userfaultfd",
        ] {
            assert!(allowed(&s, blocked).is_empty(), "{blocked} must be blocked");
        }
        for ok in ["read", "execve", "chroot", "ptrace", "arch_prctl", "socket"] {
            assert!(!allowed(&s, ok).is_empty(), "{ok} must be allowed");
        }
        // clone only without namespace flags; clone3 -> ENOSYS.
        let clone = allowed(&s, "clone");
        assert_eq!(clone.len(), 1);
        let a = &clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.value_two(), a.op()),
            (
                0,
                0x7E02_0000,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
        let clone3 = allowed(&s, "clone3");
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));
        // personality is filtered by argument.
        assert!(allowed(&s, "personality")
            .iter()
            .all(|r| r.args().as_ref().is_some_and(|a| a.len() == 1)));
        let f = crate::seccomp::compile(&s).unwrap();
        assert!(f.len() > 100 && f.len() < 4096, "{} instructions", f.len());
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let p = default_profile();
        let mut c = caps(&crate::docker::DEFAULT_CAPS);
        c.extend(caps(&[
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_MODULE",
            "CAP_SYS_TIME",
        ]));
        let s = resolve(&p, &c, &amd64()).unwrap();
        for n in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "init_module",
            "settimeofday",
            "clone3",
        ] {
            assert!(
                allowed(&s, n)
                    .iter()
                    .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none()),
                "{n} unlocked"
            );
        }
        // The ENOSYS clone3 rule and the flag-filtered clone rule are gone with CAP_SYS_ADMIN.
        assert!(allowed(&s, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
        assert!(allowed(&s, "clone").iter().all(|r| r.args().is_none()));
        crate::seccomp::compile(&s).unwrap();
        // Without CAP_SYS_CHROOT, chroot is blocked.
        let s = resolve(&p, &caps(&["CAP_KILL"]), &amd64()).unwrap();
        assert!(allowed(&s, "chroot").is_empty());
    }

    #[test]
    fn arches_and_kernel_versions_select_rules() {
        let p = default_profile();
        let arm = Host {
            arch: "arm64",
            kernel: (4, 4),
        };
        let s = resolve(&p, &[], &arm).unwrap();
        assert!(allowed(&s, "arch_prctl").is_empty());
        assert!(!allowed(&s, "cacheflush").is_empty());
        assert!(allowed(&s, "ptrace").is_empty(), "ptrace needs 4.8");
        let s390 = Host {
            arch: "s390x",
            kernel: (6, 0),
        };
        let s = resolve(&p, &[], &s390).unwrap();
        let clone = allowed(&s, "clone");
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
    }

    #[test]
    fn user_profiles_in_docker_format_load() {
        let text = br#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": "/run/agent.sock",
            "syscalls": [
                {"name": "mkdir", "action": "SCMP_ACT_NOTIFY"},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "comment": "x"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "3.0"}}
            ]
        }"#;
        let s = resolve(&parse(text).unwrap(), &[], &amd64()).unwrap();
        assert_eq!(
            s.listener_path().as_deref(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
        assert_eq!(s.syscalls().as_ref().unwrap().len(), 2);
        assert!(crate::seccomp::compile(&s).unwrap().uses_notify());
    }

    #[test]
    fn bad_profiles_name_the_problem() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"syscalls": []}"#, "defaultAction is missing"),
            (
                br#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
                "both 'architectures' and 'archMap'",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0]: use either 'name' or 'names'",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_BOGUS"}]}"#,
                "syscalls rule for \"b\"",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}]}"#,
                "syscalls[0].includes.minKernel",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text)
                .and_then(|p| resolve(&p, &[], &amd64()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} should contain {want}");
        }
        let e = parse(b"{\"defaultAction\": 3}").unwrap_err().to_string();
        assert!(e.contains("defaultAction"), "{e}");
    }
}
