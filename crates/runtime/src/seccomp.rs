//! seccomp: compiles `linux.seccomp` into a BPF program with libseccomp in the runtime parent (before
//! fork), and loads the raw program in the container process with seccomp(2) right before exec, so
//! the child does no BPF generation. SCMP_ACT_NOTIFY filters return the listener fd, which the
//! runtime sends to `listenerPath` with the container process state (runtime-spec).

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

pub mod cache;
pub use cache::CACHE_DIR;

/// A seccomp configuration error or load failure; the message names the field or syscall.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SeccompError(pub(crate) String);

/// A compiled filter: raw BPF instructions plus the seccomp(2) flags to load them with.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    notify: bool,
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: Option<u32>) -> ScmpAction {
    let e = errno.or(default_errno).unwrap_or(libc::EPERM as u32);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(e as i32),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(e as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

/// The libseccomp comparison for an OCI arg: (operator, datum). For SCMP_CMP_MASKED_EQ the OCI
/// `value` is the mask and `valueTwo` the datum compared after masking.
fn op(o: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> SeccompError {
    SeccompError(format!("{what}: {e}"))
}

/// The seccomp(2) flags the spec asks for (without NEW_LISTENER).
fn filter_flags(s: &LinuxSeccomp) -> u32 {
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
        };
    }
    flags
}

/// Compile the OCI seccomp section. Unknown syscall names are skipped (as runc does); rules whose
/// action equals the default action are redundant and skipped.
pub fn compile(s: &LinuxSeccomp) -> Result<CompiledFilter, SeccompError> {
    let default_errno = s.default_errno_ret();
    let default = action(s.default_action(), None, default_errno);
    let mut notify = matches!(default, ScmpAction::Notify);
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("defaultAction", e))?;
    // The runtime sets no_new_privs itself when asked; libseccomp must not.
    ctx.set_ctl_nnp(false)
        .map_err(|e| err("filter attribute", e))?;
    // A binary tree over syscall numbers instead of a linear list: for a Docker-size allow-list the
    // kernel's attach-time work (it runs the filter for every syscall number to build its action
    // cache) drops from ~0.7 ms to ~0.25 ms per container. libseccomp takes longer to build the
    // tree, which the cache (`cache::get`) pays once per profile.
    ctx.set_ctl_optimize(2)
        .map_err(|e| err("filter attribute", e))?;
    for a in s.architectures().iter().flatten() {
        let Some(sa) = arch(*a) else {
            return Err(SeccompError(format!(
                "architectures: {a:?} is not supported"
            )));
        };
        if let Err(e) = ctx.add_arch(sa) {
            // Adding the native arch twice is EEXIST; anything else is an error.
            if !ctx.is_arch_present(sa).unwrap_or(false) {
                return Err(err(format!("architectures: {a:?}"), e));
            }
        }
    }
    let mut flags = filter_flags(s);
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret(), default_errno);
        if act == default {
            continue;
        }
        if matches!(act, ScmpAction::Notify) {
            notify = true;
        }
        let args = rule.args().clone().unwrap_or_default();
        let mut conds = Vec::new();
        for (j, a) in args.iter().enumerate() {
            if a.index() > 5 {
                return Err(SeccompError(format!(
                    "syscalls[{i}].args[{j}].index: {} is above 5",
                    a.index()
                )));
            }
            let (o, datum) = op(a.op(), a.value(), a.value_two());
            conds.push(ScmpArgCompare::new(a.index() as u32, o, datum));
        }
        // libseccomp cannot AND two comparisons on the same argument: like runc, turn repeated
        // indexes into one rule per comparison (OR).
        let mut idx: Vec<u32> = args.iter().map(|a| a.index() as u32).collect();
        idx.sort_unstable();
        let repeated = idx.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if repeated {
                conds
                    .iter()
                    .try_for_each(|c| {
                        ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                            .map(|_| ())
                    })
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            r.map_err(|e| err(format!("syscalls[{i}] ({name})"), e))?;
        }
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
    }
    Ok(CompiledFilter {
        program: export(&ctx)?,
        flags,
        notify,
    })
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let fd =
        nix::sys::memfd::memfd_create(c"skiff-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| err("memfd", e))?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f).map_err(|e| err("export BPF", e))?;
    f.rewind().map_err(|e| err("export BPF", e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| err("export BPF", e))?;
    let n = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % n != 0 {
        return Err(SeccompError(format!(
            "export BPF: {} bytes is not a whole program",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(n)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl CompiledFilter {
    /// True when the filter has an SCMP_ACT_NOTIFY action (load returns a listener fd).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Number of BPF instructions (for diagnostics and benchmarks).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// True for an empty program (never produced by `compile`).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Load the filter into the calling thread; returns the notify listener fd if any.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at our live instruction vector for the duration of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(SeccompError(format!("load filter: {}", Errno::last())));
        }
        if self.flags & FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a fresh listener fd that we own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        Ok(None)
    }
}

/// Send the notify fd with the container process state to the agent at `listener_path`.
pub fn send_to_listener(
    listener_path: &Path,
    listener_metadata: &str,
    notify_fd: BorrowedFd,
    state: &serde_json::Value,
) -> Result<(), SeccompError> {
    use nix::sys::socket::{
        connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    let msg = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_else(|| "1.2.0".into()),
        "fds": ["seccompFd"],
        "pid": state.get("pid").cloned().unwrap_or(0.into()),
        "metadata": listener_metadata,
        "state": state,
    })
    .to_string();
    let what = format!("listenerPath {}", listener_path.display());
    let s = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err(&what, e))?;
    let addr = UnixAddr::new(listener_path).map_err(|e| err(&what, e))?;
    connect(s.as_raw_fd(), &addr).map_err(|e| err(&what, e))?;
    let fds = [notify_fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| err(&what, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(j: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn compiles_rules_with_args_and_skips_unknown_names() {
        let s = parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        let f = compile(&s).unwrap();
        assert!(!f.is_empty());
        assert!(!f.uses_notify());
    }

    #[test]
    fn notify_sets_the_listener_flag() {
        let s = parse(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        );
        assert!(compile(&s).unwrap().uses_notify());
    }

    #[test]
    fn bad_arg_index_names_the_field() {
        let s = parse(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
        );
        let e = compile(&s).unwrap_err().to_string();
        assert!(e.contains("syscalls[0].args[0].index"), "{e}");
    }
}
