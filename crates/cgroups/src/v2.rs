//! The v2 writer: the unified hierarchy's interface files, with v1-style values converted the way
//! runc converts them. Also used by the hybrid driver for controllers only the unified tree has.

use crate::convert::{blkio_to_io_weight, shares_to_weight, swap_to_v2};
use crate::resources::check_block_device;
use crate::{read_opt, write_file, Cgroup, Error, Result};
use oci_spec::runtime::{LinuxRdma, LinuxResources};
use std::collections::HashMap;
use std::path::Path;

/// Controllers enabled for `dir` (its `cgroup.controllers`).
pub(crate) fn enabled_controllers(dir: &Path) -> Vec<String> {
    read_opt(&dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Enable every available controller in the `cgroup.subtree_control` of each ancestor of `leaf`
/// (below the mount root) so the leaf gets them. Best effort: an ancestor with processes of its
/// own cannot delegate domain controllers, and `apply` then names what is missing.
pub(crate) fn enable_controllers(leaf: &Path) -> Result<()> {
    let mut chain = Vec::new();
    let mut cur = leaf.parent();
    while let Some(p) = cur {
        if !p.join("cgroup.controllers").exists() {
            break;
        }
        chain.push(p);
        cur = p.parent();
    }
    for dir in chain.iter().rev() {
        let avail = enabled_controllers(dir);
        let on = read_opt(&dir.join("cgroup.subtree_control")).unwrap_or_default();
        let on: Vec<&str> = on.split_whitespace().collect();
        for c in avail.iter().filter(|c| !on.contains(&c.as_str())) {
            let _ = write_file(dir, "cgroup.subtree_control", &format!("+{c}"));
        }
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn need<'a>(cg: &Cgroup, d: &'a Path, ctl: &str) -> Result<&'a Path> {
    if enabled_controllers(d).iter().any(|c| c == ctl) {
        Ok(d)
    } else {
        Err(cg.unavailable(ctl))
    }
}

/// Set one hugetlb limit in a v2 directory (and its reservation limit where the kernel has one).
pub(crate) fn hugetlb(d: &Path, size: &str, limit: i64) -> Result<()> {
    write_file(d, &format!("hugetlb.{size}.max"), &max_or(limit))?;
    let rsvd = format!("hugetlb.{size}.rsvd.max");
    if d.join(&rsvd).exists() {
        write_file(d, &rsvd, &max_or(limit))?;
    }
    Ok(())
}

/// Write `rdma.max` lines (same format on v1 and v2).
pub(crate) fn rdma(d: &Path, m: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut devs: Vec<_> = m.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        write_file(d, "rdma.max", &line)?;
    }
    Ok(())
}

/// Write `linux.resources.unified` key/values, refusing keys that would escape the directory or
/// manage the group itself, and naming a key's controller when it is not enabled.
pub(crate) fn unified(cg: &Cgroup, d: &Path, m: &HashMap<String, String>) -> Result<()> {
    let mut kv: Vec<_> = m.iter().collect();
    kv.sort();
    let enabled = enabled_controllers(d);
    for (k, v) in kv {
        if k.contains('/') || k.starts_with('.') || k.is_empty() {
            return Err(Error::Invalid(format!(
                "linux.resources.unified: key {k:?} is not a cgroup interface file"
            )));
        }
        let ctl = k.split('.').next().unwrap_or("");
        if ctl == "cgroup" {
            if matches!(
                k.as_str(),
                "cgroup.procs"
                    | "cgroup.threads"
                    | "cgroup.subtree_control"
                    | "cgroup.kill"
                    | "cgroup.freeze"
            ) {
                return Err(Error::Invalid(format!(
                    "linux.resources.unified: key {k:?} is managed by the runtime"
                )));
            }
        } else if !enabled.iter().any(|c| c == ctl) && !d.join(k).exists() {
            return Err(cg.unavailable(ctl));
        }
        if !d.join(k).exists() {
            return Err(Error::Invalid(format!(
                "linux.resources.unified: {} has no file {k:?}",
                d.display()
            )));
        }
        write_file(d, k, v)?;
    }
    Ok(())
}

pub(crate) fn apply(cg: &Cgroup, d: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(c) = r.cpu() {
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write_file(need(cg, d, "cpuset")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write_file(need(cg, d, "cpuset")?, "cpuset.mems", mems)?;
        }
    }
    if let Some(m) = r.memory() {
        let limit = m.limit().filter(|l| *l != 0);
        let swap = swap_to_v2(limit, m.swap().filter(|s| *s != 0))?;
        if limit.is_some() || swap.is_some() || m.reservation().is_some_and(|v| v != 0) {
            let d = need(cg, d, "memory")?;
            if let (Some(l), Some(true)) = (limit, m.check_before_update()) {
                let u: i64 = read_opt(&d.join("memory.current"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if l > 0 && l < u {
                    return Err(Error::Invalid(format!(
                        "memory limit {l} is below the current usage {u} of {} (checkBeforeUpdate)",
                        d.display()
                    )));
                }
            }
            if let Some(s) = swap {
                if !d.join("memory.swap.max").exists() {
                    if s != 0 && s != -1 {
                        return Err(Error::Invalid(
                            "memory swap limit: this kernel has no memory.swap.max (swap accounting off)"
                                .into(),
                        ));
                    }
                } else {
                    write_file(d, "memory.swap.max", &max_or(s))?;
                }
            }
            if let Some(l) = limit {
                write_file(d, "memory.max", &max_or(l))?;
            }
            if let Some(v) = m.reservation().filter(|v| *v != 0) {
                write_file(d, "memory.low", &max_or(v))?;
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write_file(
                need(cg, d, "cpu")?,
                "cpu.weight",
                &shares_to_weight(s).to_string(),
            )?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let d = need(cg, d, "cpu")?;
            let q = match quota {
                Some(q) => max_or(q),
                None => read_opt(&d.join("cpu.max"))
                    .and_then(|s| s.split_whitespace().next().map(String::from))
                    .unwrap_or_else(|| "max".into()),
            };
            let p = period.unwrap_or(100_000);
            write_file(d, "cpu.max", &format!("{q} {p}"))?;
        }
        if let Some(b) = c.burst() {
            write_file(need(cg, d, "cpu")?, "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            write_file(need(cg, d, "cpu")?, "cpu.idle", &i.to_string())?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::Invalid(
                "cpu realtime period/runtime: cgroup v2 has no realtime group scheduling".into(),
            ));
        }
    }
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            write_file(need(cg, d, "pids")?, "pids.max", &max_or(p.limit()))?;
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let d = need(cg, d, "io")?;
            if d.join("io.bfq.weight").exists() {
                write_file(d, "io.bfq.weight", &w.to_string())?;
            } else {
                write_file(d, "io.weight", &blkio_to_io_weight(w).to_string())?;
            }
        }
        for wd in b.weight_device().iter().flatten() {
            check_block_device("io weight_device", wd.major(), wd.minor())?;
            if let Some(w) = wd.weight() {
                let d = need(cg, d, "io")?;
                let (file, val) = if d.join("io.bfq.weight").exists() {
                    ("io.bfq.weight", u64::from(w))
                } else {
                    ("io.weight", blkio_to_io_weight(w))
                };
                write_file(d, file, &format!("{}:{} {val}", wd.major(), wd.minor()))?;
            }
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for t in list.iter().flatten() {
                check_block_device("io.max", t.major(), t.minor())?;
                let rate = if t.rate() == 0 {
                    "max".to_string()
                } else {
                    t.rate().to_string()
                };
                write_file(
                    need(cg, d, "io")?,
                    "io.max",
                    &format!("{}:{} {key}={rate}", t.major(), t.minor()),
                )?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        hugetlb(need(cg, d, "hugetlb")?, h.page_size(), h.limit())?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::Invalid(
                "linux.resources.network: net_cls/net_prio are cgroup v1 controllers; cgroup v2 has neither"
                    .into(),
            ));
        }
    }
    if let Some(m) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        rdma(need(cg, d, "rdma")?, m)?;
    }
    if let Some(devs) = r.devices() {
        let rules = crate::devices::rules(devs)?;
        crate::devices::apply_v2(d, &rules)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|m| !m.is_empty()) {
        unified(cg, d, u)?;
    }
    Ok(())
}
