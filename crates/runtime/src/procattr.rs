//! Kernel attributes of the container's processes from runtime-spec 1.2: `linux.personality`,
//! `linux.memoryPolicy`, `process.ioPriority`, `process.scheduler`. Each is validated before
//! anything is created (a value the kernel would reject, or that has no meaning, is refused with a
//! one-line error naming the field) and applied by the process itself right before it drops its
//! capabilities; none costs a syscall when it is not set. `process.execCPUAffinity` is parsed
//! here and applied by `exec` (it does not concern the init). `linux.intelRdt` is refused here
//! rather than ignored.

use crate::error::{Error, Result};
use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process, Spec,
};

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// Refuse what would be accepted without taking effect, and values the kernel would reject.
pub fn validate(spec: &Spec) -> Result<()> {
    let cfg = |m: String| Error::Config(m);
    if let Some(l) = spec.linux() {
        if l.intel_rdt().is_some() {
            // Refused either way (features: intelRdt.enabled false); the message says whether
            // the host could have had it.
            let host = if std::path::Path::new("/sys/fs/resctrl/info").exists() {
                "this runtime does not support resctrl groups"
            } else {
                "this host has no resctrl filesystem (/sys/fs/resctrl is not mounted)"
            };
            return Err(cfg(format!("linux.intelRdt: not applied: {host}")));
        }
        // SAFETY: geteuid has no preconditions.
        crate::netdev::validate(spec, unsafe { libc::geteuid() } != 0)?;
        // Like runc, a mount label means nothing without SELinux; with it, skiff does not label
        // mounts, so it refuses rather than leave them unlabelled.
        if l.mount_label().as_deref().is_some_and(|s| !s.is_empty())
            && std::path::Path::new("/sys/fs/selinux/enforce").exists()
        {
            return Err(cfg(
                "linux.mountLabel: labelling mounts for SELinux is not supported by this runtime"
                    .into(),
            ));
        }
        if let Some(p) = l.personality() {
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(cfg(format!(
                    "linux.personality.flags: {:?}: no flags are defined",
                    p.flags().as_deref().unwrap_or_default()
                )));
            }
        }
        if let Some(m) = l.memory_policy() {
            mempolicy_args(m)?;
        }
    }
    if let Some(p) = spec.process() {
        validate_process(p)?;
    }
    Ok(())
}

/// The process-level checks, also run for `exec`'s process.
pub fn validate_process(p: &Process) -> Result<()> {
    if let Some(io) = p.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(Error::Config(format!(
                "process.ioPriority.priority: {} is out of range 0..7",
                io.priority()
            )));
        }
    }
    if let Some(s) = p.scheduler() {
        sched_attr(s)?;
    }
    exec_affinity(p)?;
    Ok(())
}

/// `process.execCPUAffinity`, parsed: the CPUs an `exec`'s runtime process runs on before it
/// joins the container's cgroup (`initial`), and those the exec'd process runs on after
/// (`final`). Empty strings are absent (the spec: the affinity is then the kernel's choice).
#[derive(Debug, Default, Clone)]
pub struct ExecAffinity {
    /// `initial`.
    pub initial: Option<nix::sched::CpuSet>,
    /// `final`.
    pub last: Option<nix::sched::CpuSet>,
}

/// Parse `process.execCPUAffinity` (CPU lists like `0-3,7`).
pub fn exec_affinity(p: &Process) -> Result<ExecAffinity> {
    let Some(a) = p.exec_cpu_affinity() else {
        return Ok(ExecAffinity::default());
    };
    let parse = |field: &str, v: &Option<String>| -> Result<Option<nix::sched::CpuSet>> {
        let v = v.as_deref().unwrap_or("").trim();
        if v.is_empty() {
            return Ok(None);
        }
        let bad = |m: String| Error::Config(format!("process.execCPUAffinity.{field}: {v:?}: {m}"));
        let mut set = nix::sched::CpuSet::new();
        for cpu in parse_list(v).map_err(bad)? {
            set.set(cpu).map_err(|_| {
                bad(format!(
                    "CPU {cpu} is beyond {}",
                    nix::sched::CpuSet::count()
                ))
            })?;
        }
        Ok(Some(set))
    };
    Ok(ExecAffinity {
        initial: parse("initial", a.initial())?,
        last: parse("final", a.cpu_affinity_final())?,
    })
}

/// Pin the calling thread to `set` (`field` names the setting in the error).
pub fn set_affinity(set: &nix::sched::CpuSet, field: &str) -> Result<()> {
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set).map_err(|errno| Error::Sys {
        what: format!("process.execCPUAffinity.{field}: sched_setaffinity"),
        errno,
    })
}

/// The numbers of a list like `0-3,7` (kernel cpulist / nodelist format).
fn parse_list(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n < 4096)
                .ok_or_else(|| format!("bad number {x:?}"))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("bad range {part:?}"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Apply `linux.personality` and `linux.memoryPolicy` to the calling process (inherited by what
/// it executes).
pub fn apply_linux(linux: Option<&Linux>) -> Result<()> {
    let Some(l) = linux else { return Ok(()) };
    if let Some(p) = l.personality() {
        let persona = match p.domain() {
            LinuxPersonalityDomain::PerLinux => PER_LINUX,
            LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
        };
        // SAFETY: personality(2) takes a plain integer and has no memory effects.
        if unsafe { libc::personality(persona) } < 0 {
            return Err(Error::Sys {
                what: format!("linux.personality: personality({persona:#x})"),
                errno: Errno::last(),
            });
        }
    }
    if let Some(m) = l.memory_policy() {
        let (mode, mask) = mempolicy_args(m)?;
        let maxnode = if mask.is_empty() {
            0
        } else {
            mask.len() as libc::c_ulong * 64 + 1
        };
        let ptr = if mask.is_empty() {
            std::ptr::null()
        } else {
            mask.as_ptr()
        };
        // SAFETY: `ptr` is null or points to `mask`, whose `maxnode - 1` bits are readable.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
        if r < 0 {
            return Err(Error::Sys {
                what: format!("linux.memoryPolicy: set_mempolicy({})", m.mode()),
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// Apply `process.ioPriority` and `process.scheduler` to the calling process.
pub fn apply_process(p: &Process) -> Result<()> {
    if let Some(io) = p.io_priority() {
        let class: libc::c_int = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let prio = (class << IOPRIO_CLASS_SHIFT) | io.priority() as libc::c_int;
        // SAFETY: ioprio_set takes plain integers.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) } < 0 {
            return Err(Error::Sys {
                what: format!(
                    "process.ioPriority: ioprio_set({}, {})",
                    io.class(),
                    io.priority()
                ),
                errno: Errno::last(),
            });
        }
    }
    if let Some(s) = p.scheduler() {
        let attr = sched_attr(s)?;
        // SAFETY: `attr` is a struct sched_attr whose size field is its own size.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
            return Err(Error::Sys {
                what: format!("process.scheduler: sched_setattr({})", s.policy()),
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// struct sched_attr, SCHED_ATTR_SIZE_VER0 (no utilization clamps).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr> {
    let bad = |m: String| Error::Config(format!("process.scheduler.{m}"));
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(bad("policy: SCHED_ISO is not implemented by Linux".into()))
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin
            | LinuxSchedulerFlag::SchedFlagUtilClampMax => {
                return Err(bad(format!(
                    "flags: {f}: needs a clamp value, which runtime-spec has no field for"
                )))
            }
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad(format!("nice: {nice} is out of range -20..19")));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = policy == 1 || policy == 2;
    if realtime && !(1..=99).contains(&priority) || !realtime && priority != 0 {
        return Err(bad(format!(
            "priority: {priority} is invalid for {} (1..99 for SCHED_FIFO/SCHED_RR, else 0)",
            s.policy()
        )));
    }
    if policy == 6 && (s.runtime().is_none() || s.deadline().is_none()) {
        return Err(bad("runtime/deadline: required by SCHED_DEADLINE".into()));
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

/// The set_mempolicy(2) mode (with flags) and node mask of `linux.memoryPolicy`.
fn mempolicy_args(m: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(libc::c_int, Vec<u64>)> {
    let bad = |msg: String| Error::Config(format!("linux.memoryPolicy.{msg}"));
    let mode = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = m.nodes().as_deref().unwrap_or("").trim();
    let mut mask: Vec<u64> = Vec::new();
    for n in parse_list(nodes).map_err(|e| bad(format!("nodes: {nodes:?}: {e}")))? {
        if mask.len() <= n / 64 {
            mask.resize(n / 64 + 1, 0);
        }
        mask[n / 64] |= 1 << (n % 64);
    }
    let needs_nodes = matches!(mode, 2 | 3 | 5 | 6);
    if needs_nodes && mask.is_empty() {
        return Err(bad(format!("nodes: required by {}", m.mode())));
    }
    if matches!(mode, 0 | 4) && !mask.is_empty() {
        return Err(bad(format!("nodes: must be empty for {}", m.mode())));
    }
    Ok((mode | flags, mask))
}
