//! Applying `linux.resources` to a resolved cgroup: v1 controller files on v1/hybrid hosts, the
//! unified files on v2. Values are converted between v1 and v2 the way runc does (shares ↔ weight).

use crate::{Cgroup, Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| {
        Error::Invalid(format!(
            "cgroup {}: set {file} = {value}: {e}",
            dir.display()
        ))
    })
}

/// runc's conversion of cpu shares [2, 262144] to cgroup v2 cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.saturating_sub(2)) * 9999) / 262142
}

/// blkio weight [10, 1000] to io.weight [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn v2limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl Cgroup {
    /// Apply every resource field this host's controllers support; a field whose controller is
    /// missing is an error naming the controller.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(u) = self.paths.get("unified") {
            if self.paths.len() == 1 {
                return self.apply_v2(u, r);
            }
        }
        self.apply_v1(r)
    }

    fn ctl(&self, name: &str) -> Result<&Path> {
        self.paths
            .get(name)
            .map(|p| p.as_path())
            .ok_or_else(|| Error::Invalid(format!("cgroup controller {name:?} not available here")))
    }

    fn apply_v1(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            let d = self.ctl("memory")?;
            if let Some(l) = m.limit() {
                if l > 0 && l < 6 * 1024 * 1024 {
                    return Err(Error::Invalid(format!("memory limit {l} below minimum 6M")));
                }
                // Raising limit above memsw needs memsw first; set swap after limit otherwise.
                if let Some(s) = m.swap() {
                    let _ = write(d, "memory.memsw.limit_in_bytes", &limit(s));
                }
                write(d, "memory.limit_in_bytes", &limit(l))?;
            }
            if let Some(s) = m.swap() {
                if d.join("memory.memsw.limit_in_bytes").exists() {
                    write(d, "memory.memsw.limit_in_bytes", &limit(s))?;
                }
            }
            if let Some(v) = m.reservation() {
                write(d, "memory.soft_limit_in_bytes", &limit(v))?;
            }
            if let Some(v) = m.swappiness() {
                if v > 100 {
                    return Err(Error::Invalid(format!("memory swappiness {v} above 100")));
                }
                write(d, "memory.swappiness", &v.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                write(d, "memory.oom_control", "1")?;
            }
        }
        if let Some(c) = r.cpu() {
            let d = self.ctl("cpu");
            if let Some(s) = c.shares() {
                write(d?, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(self.ctl("cpu")?, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(self.ctl("cpu")?, "cpu.cfs_quota_us", &limit(q))?;
            }
            if let Some(p) = c.realtime_period() {
                write(self.ctl("cpu")?, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(q) = c.realtime_runtime() {
                write(self.ctl("cpu")?, "cpu.rt_runtime_us", &q.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                write(self.ctl("cpuset")?, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(self.ctl("cpuset")?, "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = r.pids() {
            write(self.ctl("pids")?, "pids.max", &v2limit(p.limit()))?;
        }
        if let Some(b) = r.block_io() {
            let d = self.ctl("blkio")?;
            if let Some(w) = b.weight() {
                let f = if d.join("blkio.weight").exists() {
                    "blkio.weight"
                } else {
                    "blkio.bfq.weight"
                };
                write(d, f, &w.to_string())?;
            }
            for t in b.throttle_read_bps_device().iter().flatten() {
                write(
                    d,
                    "blkio.throttle.read_bps_device",
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
            for t in b.throttle_write_bps_device().iter().flatten() {
                write(
                    d,
                    "blkio.throttle.write_bps_device",
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
            for t in b.throttle_read_iops_device().iter().flatten() {
                write(
                    d,
                    "blkio.throttle.read_iops_device",
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
            for t in b.throttle_write_iops_device().iter().flatten() {
                write(
                    d,
                    "blkio.throttle.write_iops_device",
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            write(
                self.ctl("hugetlb")?,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                write(self.ctl("net_cls")?, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                write(
                    self.ctl("net_prio")?,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        if let Some(devs) = r.devices() {
            if let Ok(d) = self.ctl("devices") {
                for dev in devs {
                    let t = dev
                        .typ()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_else(|| "a".into());
                    let num =
                        |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
                    let rule = format!(
                        "{} {}:{} {}",
                        t,
                        num(dev.major()),
                        num(dev.minor()),
                        dev.access().clone().unwrap_or_else(|| "rwm".into())
                    );
                    write(
                        d,
                        if dev.allow() {
                            "devices.allow"
                        } else {
                            "devices.deny"
                        },
                        &rule,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn apply_v2(&self, d: &Path, r: &LinuxResources) -> Result<()> {
        let controllers = std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
        let need = |c: &str| -> Result<()> {
            if controllers.split_whitespace().any(|x| x == c) {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "cgroup controller {c:?} not available on v2 here (controllers: {:?})",
                    controllers.trim()
                )))
            }
        };
        if let Some(m) = r.memory() {
            need("memory")?;
            if let Some(l) = m.limit() {
                write(d, "memory.max", &v2limit(l))?;
            }
            if let Some(v) = m.reservation() {
                write(d, "memory.low", &v2limit(v))?;
            }
            if let (Some(s), Some(l)) = (m.swap(), m.limit()) {
                // v1 memsw = memory + swap; v2 swap.max is swap alone.
                let swap = if s < 0 {
                    "max".to_string()
                } else {
                    s.saturating_sub(l).max(0).to_string()
                };
                write(d, "memory.swap.max", &swap)?;
            }
        }
        if let Some(c) = r.cpu() {
            if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
                need("cpu")?;
            }
            if let Some(s) = c.shares() {
                write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = c.quota().map(v2limit).unwrap_or_else(|| "max".into());
                let p = c.period().unwrap_or(100_000);
                write(d, "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(cpus) = c.cpus() {
                need("cpuset")?;
                write(d, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                need("cpuset")?;
                write(d, "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = r.pids() {
            need("pids")?;
            write(d, "pids.max", &v2limit(p.limit()))?;
        }
        if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
            need("io")?;
            write(d, "io.weight", &blkio_to_io_weight(w).to_string())?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            need("hugetlb")?;
            write(
                d,
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        for (k, v) in r.unified().iter().flatten() {
            if k.contains('/') || k.starts_with("cgroup.") && k != "cgroup.freeze" {
                return Err(Error::Invalid(format!(
                    "linux.resources.unified: key {k:?} is not allowed"
                )));
            }
            write(d, k, v)?;
        }
        Ok(())
    }
}

impl Cgroup {
    /// Freeze every process of the group and wait until the kernel reports it frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaw the group and wait until it runs again.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, on: bool) -> Result<()> {
        if let Some(d) = self.paths.get("freezer") {
            let want = if on { "FROZEN" } else { "THAWED" };
            for _ in 0..2000 {
                write(d, "freezer.state", want)?;
                let s = std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
                if s.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Invalid(format!(
                "cgroup {}: freezer did not reach {want}",
                d.display()
            )));
        }
        if let Some(d) = self.paths.get("unified") {
            write(d, "cgroup.freeze", if on { "1" } else { "0" })?;
            let want = if on { "frozen 1" } else { "frozen 0" };
            for _ in 0..2000 {
                let ev = std::fs::read_to_string(d.join("cgroup.events")).unwrap_or_default();
                if ev.lines().any(|l| l.trim() == want) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Invalid(format!(
                "cgroup {}: did not reach {want}",
                d.display()
            )));
        }
        Err(Error::Invalid(
            "cgroup controller \"freezer\" not available here".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn converts_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }
}
