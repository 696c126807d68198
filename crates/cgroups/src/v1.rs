//! The v1 writer (also the hybrid one: v1 controllers, plus the unified directory for what only v2
//! offers on such hosts, typically hugetlb, and for `linux.resources.unified`).

use crate::resources::check_block_device;
use crate::{read_opt, write_file, Cgroup, Driver, Error, Result};
use oci_spec::runtime::{LinuxMemory, LinuxResources};
use std::path::Path;

fn v1num(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// A new cpuset directory starts with empty cpus/mems; copy the parent's so tasks can join. A
/// parent still empty (another process made it and has not filled it yet) is filled first from
/// its own parent, so two containers creating one parent at once never copy an empty value.
pub(crate) fn init_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = read_opt(&dir.join(f)).unwrap_or_default();
        if cur.is_empty() {
            let mut p = read_opt(&parent.join(f)).unwrap_or_default();
            if p.is_empty() && parent.join(f).exists() {
                init_cpuset(parent)?;
                p = read_opt(&parent.join(f)).unwrap_or_default();
            }
            write_file(dir, f, &p)?;
        }
    }
    Ok(())
}

impl Cgroup {
    fn need(&self, ctl: &str) -> Result<&Path> {
        self.paths
            .get(ctl)
            .map(|p| p.as_path())
            .ok_or_else(|| self.unavailable(ctl))
    }
}

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if let Some(c) = r.cpu() {
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write_file(cg.need("cpuset")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write_file(cg.need("cpuset")?, "cpuset.mems", mems)?;
        }
    }
    if let Some(m) = r.memory() {
        memory(cg, m)?;
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            let d = cg.need("cpu")?;
            write_file(d, "cpu.shares", &s.to_string())?;
            let got = read_opt(&d.join("cpu.shares")).unwrap_or_default();
            if got != s.to_string() {
                return Err(Error::Invalid(format!(
                    "cpu shares {s} out of the kernel's range: it set {got}"
                )));
            }
        }
        if let Some(p) = c.period().filter(|p| *p != 0) {
            write_file(cg.need("cpu")?, "cpu.cfs_period_us", &p.to_string())?;
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            write_file(cg.need("cpu")?, "cpu.cfs_quota_us", &v1num(q))?;
        }
        if let Some(b) = c.burst() {
            let d = cg.need("cpu")?;
            if !d.join("cpu.cfs_burst_us").exists() {
                return Err(Error::Invalid(
                    "cpu burst: this kernel has no cpu.cfs_burst_us".into(),
                ));
            }
            write_file(d, "cpu.cfs_burst_us", &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            let d = cg.need("cpu")?;
            if !d.join("cpu.idle").exists() {
                return Err(Error::Invalid(
                    "cpu idle: this kernel has no cpu.idle".into(),
                ));
            }
            write_file(d, "cpu.idle", &i.to_string())?;
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            write_file(cg.need("cpu")?, "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(rt) = c.realtime_runtime().filter(|v| *v != 0) {
            let d = cg.need("cpu")?;
            write_file(d, "cpu.rt_runtime_us", &rt.to_string()).map_err(|e| {
                Error::Invalid(format!(
                    "cpu realtime runtime {rt}: {e} (the parent cgroup's cpu.rt_runtime_us must leave room for it)"
                ))
            })?;
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l != 0 {
            let v = if l < 0 { "max".into() } else { l.to_string() };
            write_file(cg.need("pids")?, "pids.max", &v)?;
        }
    }
    if let Some(b) = r.block_io() {
        let needs_blkio = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
        if needs_blkio {
            let d = cg.need("blkio")?;
            let weight_file = |base: &str| -> Result<&'static str> {
                match base {
                    "weight" if d.join("blkio.weight").exists() => Ok("blkio.weight"),
                    "weight" if d.join("blkio.bfq.weight").exists() => Ok("blkio.bfq.weight"),
                    "weight_device" if d.join("blkio.weight_device").exists() => {
                        Ok("blkio.weight_device")
                    }
                    "weight_device" if d.join("blkio.bfq.weight_device").exists() => {
                        Ok("blkio.bfq.weight_device")
                    }
                    "leaf_weight" if d.join("blkio.leaf_weight").exists() => Ok("blkio.leaf_weight"),
                    "leaf_weight_device" if d.join("blkio.leaf_weight_device").exists() => {
                        Ok("blkio.leaf_weight_device")
                    }
                    _ => Err(Error::Invalid(format!(
                        "blkio {base}: {} has no blkio.{base} (the host's io scheduler offers no weights)",
                        d.display()
                    ))),
                }
            };
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                write_file(d, weight_file("weight")?, &w.to_string())?;
            }
            if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
                write_file(d, weight_file("leaf_weight")?, &w.to_string())?;
            }
            for wd in b.weight_device().iter().flatten() {
                check_block_device("blkio weight_device", wd.major(), wd.minor())?;
                if let Some(w) = wd.weight() {
                    write_file(
                        d,
                        weight_file("weight_device")?,
                        &format!("{}:{} {w}", wd.major(), wd.minor()),
                    )?;
                }
                if let Some(w) = wd.leaf_weight() {
                    write_file(
                        d,
                        weight_file("leaf_weight_device")?,
                        &format!("{}:{} {w}", wd.major(), wd.minor()),
                    )?;
                }
            }
            for (list, file) in [
                (
                    b.throttle_read_bps_device(),
                    "blkio.throttle.read_bps_device",
                ),
                (
                    b.throttle_write_bps_device(),
                    "blkio.throttle.write_bps_device",
                ),
                (
                    b.throttle_read_iops_device(),
                    "blkio.throttle.read_iops_device",
                ),
                (
                    b.throttle_write_iops_device(),
                    "blkio.throttle.write_iops_device",
                ),
            ] {
                for t in list.iter().flatten() {
                    check_block_device(file, t.major(), t.minor())?;
                    write_file(
                        d,
                        file,
                        &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    )?;
                }
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        if let Some(d) = cg.paths.get("hugetlb") {
            write_file(
                d,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                &h.limit().to_string(),
            )?;
        } else if let Some(u) = cg.dir_of("hugetlb") {
            crate::v2::hugetlb(u, h.page_size(), h.limit())?;
        } else {
            return Err(cg.unavailable("hugetlb"));
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write_file(cg.need("net_cls")?, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            write_file(
                cg.need("net_prio")?,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        let d = cg
            .paths
            .get("rdma")
            .map(|p| p.as_path())
            .or_else(|| cg.dir_of("rdma"))
            .ok_or_else(|| cg.unavailable("rdma"))?;
        crate::v2::rdma(d, rdma)?;
    }
    if let Some(devs) = r.devices() {
        let rules = crate::devices::rules(devs)?;
        if let Some(d) = cg.paths.get("devices") {
            crate::devices::apply_v1(d, &rules)?;
        } else if let (Driver::Hybrid, Some(u)) = (cg.driver(), cg.paths.get("unified")) {
            crate::devices::apply_v2(u, &rules)?;
        } else if !rules.is_empty() {
            return Err(cg.unavailable("devices"));
        }
    }
    if let Some(u) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        match cg.paths.get("unified") {
            Some(d) => crate::v2::unified(cg, d, u)?,
            None => return Err(Error::Invalid(
                "linux.resources.unified needs a cgroup2 hierarchy; this host is cgroup v1 only"
                    .into(),
            )),
        }
    }
    Ok(())
}

fn memory(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    let any = m.limit().is_some()
        || m.swap().is_some()
        || m.reservation().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    if !any {
        return Ok(());
    }
    let d = cg.need("memory")?;
    let usage = || {
        read_opt(&d.join("memory.usage_in_bytes"))
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let limit = m.limit().filter(|l| *l != 0);
    if let (Some(l), Some(true)) = (limit, m.check_before_update()) {
        let u = usage();
        if l > 0 && l < u {
            return Err(Error::Invalid(format!(
                "memory limit {l} is below the current usage {u} of {} (checkBeforeUpdate)",
                d.display()
            )));
        }
    }
    let swap = m.swap().filter(|s| *s != 0);
    let memsw = d.join("memory.memsw.limit_in_bytes").exists();
    if swap.is_some() && !memsw && swap != limit && swap != Some(-1) {
        return Err(Error::Invalid(
            "memory swap limit: swap accounting is off on this host (no memory.memsw.limit_in_bytes)"
                .into(),
        ));
    }
    let set_limit = |l: i64| -> Result<()> {
        write_file(d, "memory.limit_in_bytes", &v1num(l)).map_err(|e| match e {
            Error::Write { ref source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
                Error::Invalid(format!(
                    "memory limit {l} is below the current usage {} of {}",
                    usage(),
                    d.display()
                ))
            }
            e => e,
        })
    };
    let set_swap = |s: i64| write_file(d, "memory.memsw.limit_in_bytes", &v1num(s));
    match (limit, swap.filter(|_| memsw)) {
        (Some(l), Some(s)) => {
            // memsw must stay >= limit at every step: raise memsw first when growing.
            let cur: i64 = read_opt(&d.join("memory.limit_in_bytes"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MAX);
            if s == -1 || l < 0 || l > cur {
                set_swap(s)?;
                set_limit(l)?;
            } else {
                set_limit(l)?;
                set_swap(s)?;
            }
        }
        (Some(l), None) => {
            if l == -1 && memsw {
                set_swap(-1)?;
            }
            set_limit(l)?;
        }
        (None, Some(s)) => set_swap(s)?,
        (None, None) => {}
    }
    if let Some(v) = m.reservation().filter(|v| *v != 0) {
        write_file(d, "memory.soft_limit_in_bytes", &v1num(v))?;
    }
    if let Some(v) = m.kernel_tcp().filter(|v| *v != 0) {
        write_file(d, "memory.kmem.tcp.limit_in_bytes", &v1num(v))?;
    }
    if let Some(v) = m.swappiness() {
        write_file(d, "memory.swappiness", &v.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write_file(d, "memory.oom_control", "1")?;
    }
    Ok(())
}
