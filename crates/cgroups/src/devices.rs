//! Device access rules (`linux.resources.devices`): v1 writes `devices.allow`/`devices.deny`; v2 has
//! no such files, so the rules are compiled into a BPF_PROG_TYPE_CGROUP_DEVICE program (raw eBPF
//! instructions generated here) and attached to the cgroup with BPF_PROG_ATTACH.
//!
//! The v2 program emulates v1 semantics: a rule for type `a` with no major/minor resets the
//! default (allow all / deny all); other rules are exceptions where the last matching one wins.

use crate::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Access bits as the kernel's device cgroup uses them.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One device rule, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// 'a', 'b' or 'c'.
    pub typ: char,
    /// Major number, `None` = any.
    pub major: Option<i64>,
    /// Minor number, `None` = any.
    pub minor: Option<i64>,
    /// Access bits (ACC_*).
    pub access: u32,
}

impl Rule {
    /// Normalise a runtime-spec rule, rejecting bad access strings.
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule> {
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => {
                return Err(Error::Invalid(
                    "device rule: type \"p\" (fifo) cannot be a cgroup device rule".into(),
                ))
            }
        };
        let acc_s = d.access().clone().unwrap_or_else(|| "rwm".into());
        let mut access = 0;
        for c in acc_s.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(Error::Invalid(format!(
                        "device rule {typ} {}:{}: unknown access {acc_s:?} (expected letters of \"rwm\")",
                        num(d.major()),
                        num(d.minor())
                    )))
                }
            };
        }
        let neg = |v: Option<i64>| v.filter(|x| *x >= 0);
        Ok(Rule {
            allow: d.allow(),
            typ,
            major: neg(d.major()),
            minor: neg(d.minor()),
            access,
        })
    }

    /// The v1 `devices.allow`/`devices.deny` line: `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let mut acc = String::new();
        if self.access & ACC_READ != 0 {
            acc.push('r');
        }
        if self.access & ACC_WRITE != 0 {
            acc.push('w');
        }
        if self.access & ACC_MKNOD != 0 {
            acc.push('m');
        }
        if self.typ == 'a' {
            return format!("a *:* {acc}");
        }
        format!("{} {}:{} {acc}", self.typ, num(self.major), num(self.minor))
    }

    fn is_reset(&self) -> bool {
        self.typ == 'a' && self.major.is_none() && self.minor.is_none()
    }
}

fn num(v: Option<i64>) -> String {
    match v {
        Some(x) if x >= 0 => x.to_string(),
        _ => "*".into(),
    }
}

/// Parse all rules.
pub fn rules(devs: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    devs.iter().map(Rule::from_spec).collect()
}

/// Write the rules to a v1 devices cgroup, in order.
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    use std::io::Write;
    // One open file per list; the kernel takes one rule per write(2).
    let mut files: [Option<std::fs::File>; 2] = [None, None];
    for r in rules {
        let (i, name) = if r.allow {
            (0, "devices.allow")
        } else {
            (1, "devices.deny")
        };
        let path = dir.join(name);
        if files[i].is_none() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| crate::io_err(&path, e))?;
            files[i] = Some(f);
        }
        let line = r.v1_line();
        if let Some(f) = files[i].as_mut() {
            f.write_all(line.as_bytes())
                .map_err(|source| Error::Write {
                    file: path,
                    value: line,
                    source,
                })?;
        }
    }
    Ok(())
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// Compile rules to a cgroup device program. Registers: r2 = type, r3 = access, r4 = major,
/// r5 = minor (from struct bpf_cgroup_dev_ctx {access_type, major, minor}); returns 1 to allow.
pub fn compile(rules: &[Rule]) -> Vec<Insn> {
    // Only the rules after the last reset matter; the reset sets the default.
    let (default_allow, tail) = match rules.iter().rposition(Rule::is_reset) {
        Some(i) => (rules[i].allow && rules[i].access == 7, &rules[i + 1..]),
        None => (true, rules),
    };
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(MOV64_X, 3, 2, 0, 0),      // r3 = r2
        insn(RSH64_K, 3, 0, 0, 16),     // r3 >>= 16 (access)
        insn(AND64_K, 2, 0, 0, 0xffff), // r2 &= 0xffff (type)
        insn(LDX_W, 4, 1, 4, 0),        // r4 = ctx->major
        insn(LDX_W, 5, 1, 8, 0),        // r5 = ctx->minor
    ];
    for r in tail.iter().rev() {
        let mut block = Vec::new();
        match r.typ {
            'b' => block.push((JNE_K, 2, DEV_BLOCK)),
            'c' => block.push((JNE_K, 2, DEV_CHAR)),
            _ => {}
        }
        if let Some(m) = r.major {
            block.push((JNE_K, 4, m as i32));
        }
        if let Some(m) = r.minor {
            block.push((JNE_K, 5, m as i32));
        }
        // Tail: r6 = r3 & mask; test; r0 = verdict; exit.
        let tail_len = 5usize;
        let total = block.len() + tail_len;
        for (i, (code, reg, imm)) in block.iter().enumerate() {
            let skip = (total - i - 1) as i16;
            p.push(insn(*code, *reg, 0, skip, *imm));
        }
        p.push(insn(MOV64_X, 6, 3, 0, 0));
        if r.allow {
            // Every requested bit must be granted: (access & !granted) == 0.
            p.push(insn(AND64_K, 6, 0, 0, (!r.access & 7) as i32));
            p.push(insn(JNE_K, 6, 0, 2, 0));
            p.push(insn(MOV64_K, 0, 0, 0, 1));
        } else {
            // Any requested bit that is denied denies.
            p.push(insn(AND64_K, 6, 0, 0, r.access as i32));
            p.push(insn(JEQ_K, 6, 0, 2, 0));
            p.push(insn(MOV64_K, 0, 0, 0, 0));
        }
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: `attr` is a valid, initialised repr(C) bpf_attr prefix of the given size that lives
    // for the call; any pointers inside it point at buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load a compiled device program; returns its fd.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"skiff_device");
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd owned by us.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(_) => {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let e = bpf(BPF_PROG_LOAD, &mut attr).err();
            let msg = String::from_utf8_lossy(&log);
            let msg = msg.trim_end_matches('\0').trim();
            Err(Error::Sys {
                what: format!(
                    "load the device cgroup eBPF program ({} instructions){}",
                    prog.len(),
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(" [verifier: {}]", msg.lines().last().unwrap_or(""))
                    }
                ),
                source: e.unwrap_or_else(std::io::Error::last_os_error),
            })
        }
    }
}

/// Ids of the device programs attached to the cgroup open as `cg`.
pub fn attached(cg: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut q = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut q).map_err(|source| Error::Sys {
        what: "query the cgroup's device programs".into(),
        source,
    })?;
    ids.truncate(q.prog_cnt as usize);
    Ok(ids)
}

/// Compile `rules`, attach the program to the v2 cgroup `dir` and detach the programs that were
/// there before (so `update` replaces rather than stacks).
pub fn apply_v2(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = load(&compile(rules))?;
    let cg = std::fs::File::open(dir).map_err(|e| crate::io_err(dir, e))?;
    let cg: OwnedFd = cg.into();
    let old = attached(&cg)?;
    let mut a = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut a).map_err(|source| Error::Sys {
        what: format!(
            "cgroup {}: attach the device eBPF program (BPF_CGROUP_DEVICE)",
            dir.display()
        ),
        source,
    })?;
    for id in old {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut g) else {
            continue;
        };
        // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new fd owned by us.
        let old_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut d = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut d).map_err(|source| Error::Sys {
            what: format!(
                "cgroup {}: detach the previous device program {id}",
                dir.display()
            ),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, acc: u32) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: acc,
        }
    }

    /// A tiny interpreter for the instructions `compile` emits, to check the logic without a kernel.
    fn run(p: &[Insn], typ: i32, access: u32, major: u32, minor: u32) -> i64 {
        let ctx = [((access << 16) | typ as u32), major, minor];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = i64::from(ctx[i.off as usize / 4]),
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i64::from(i.imm),
                AND64_K => r[dst] &= i64::from(i.imm),
                RSH64_K => r[dst] >>= i.imm,
                JNE_K if r[dst] != i64::from(i.imm) => pc += i.off as usize,
                JEQ_K if r[dst] == i64::from(i.imm) => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_follows_v1_semantics() {
        let rules = vec![
            rule(false, 'a', None, None, 7),
            rule(true, 'c', Some(1), Some(3), 7), // /dev/null
            rule(true, 'c', Some(1), Some(5), ACC_READ), // /dev/zero read-only
            rule(true, 'c', Some(136), None, 7),  // pts
            rule(false, 'c', Some(136), Some(9), ACC_WRITE),
        ];
        let p = compile(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 2), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 9), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 136, 9), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 8), 0);
        // Default allow: only explicit denies bite.
        let p = compile(&[rule(false, 'b', Some(8), None, 7)]);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 1), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 9, 1), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 8, 1), 1);
    }

    #[test]
    fn v1_lines() {
        assert_eq!(
            rule(true, 'c', Some(1), None, ACC_READ | ACC_WRITE).v1_line(),
            "c 1:* rw"
        );
        assert_eq!(rule(false, 'a', None, None, 7).v1_line(), "a *:* rwm");
    }
}
