//! Resource usage of a group, in the JSON shape of runc's `events --stats` (`types.Stats`), so
//! tools that read runc's output read skiff's. Gathered from v1 controller files, v2 interface
//! files, or both on a hybrid host.

use crate::{read_opt, Cgroup, Driver, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics of one group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// cpuset configuration.
    pub cpuset: CpuSet,
    /// Memory usage and limits.
    pub memory: Memory,
    /// Process counts.
    pub pids: Pids,
    /// Block IO.
    pub blkio: Blkio,
    /// Hugepage usage per page size (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT (not supported: always empty).
    pub intel_rdt: BTreeMap<String, serde_json::Value>,
    /// Network interfaces (not collected by the runtime: null, as in runc without a netns hook).
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

/// CPU usage (nanoseconds) and CFS throttling.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    /// Usage counters.
    pub usage: CpuUsage,
    /// CFS throttling counters.
    pub throttling: Throttling,
}

/// CPU time, nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per-CPU total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per-CPU kernel time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per-CPU user time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time.
    pub kernel: u64,
    /// User-mode time.
    pub user: u64,
}

/// CFS bandwidth throttling.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total throttled time, nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// cpuset state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuSet {
    /// CPUs the group may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// cpuset.cpu_exclusive.
    pub cpu_exclusive: u64,
    /// Memory nodes the group may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// cpuset.mem_hardwall.
    pub mem_hardwall: u64,
    /// cpuset.mem_exclusive.
    pub mem_exclusive: u64,
    /// cpuset.memory_migrate.
    pub memory_migrate: u64,
    /// cpuset.memory_spread_page.
    pub memory_spread_page: u64,
    /// cpuset.memory_spread_slab.
    pub memory_spread_slab: u64,
    /// cpuset.memory_pressure.
    pub memory_pressure: u64,
    /// cpuset.sched_load_balance.
    pub sched_load_balance: u64,
    /// cpuset.sched_relax_domain_level.
    pub sched_relax_domain_level: i64,
}

/// One memory counter set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MemoryEntry {
    /// Limit in bytes (u64::MAX-ish when unlimited).
    pub limit: u64,
    /// Current usage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    /// Page cache bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory + swap.
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Process counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pids {
    /// Processes in the group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// pids.max (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block IO counter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Block IO statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Blkio {
    /// Bytes transferred per device and direction.
    #[serde(
        rename = "ioServiceBytesRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// IO operations per device and direction.
    #[serde(
        rename = "ioServicedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// Hugepage usage of one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak bytes (v1 only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations refused by the limit.
    pub failcnt: u64,
}

fn num(dir: &Path, f: &str) -> u64 {
    read_opt(&dir.join(f))
        .map(|s| {
            if s == "max" {
                u64::MAX
            } else {
                s.parse().unwrap_or(0)
            }
        })
        .unwrap_or(0)
}

fn kv(dir: &Path, f: &str) -> BTreeMap<String, u64> {
    read_opt(&dir.join(f))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn list(s: &str) -> Vec<u16> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<u16>().ok()),
        }
    }
    v
}

fn nums(dir: &Path, f: &str) -> Vec<u64> {
    read_opt(&dir.join(f))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

fn v1_blkio(dir: &Path, f: &str) -> Vec<BlkioEntry> {
    read_opt(&dir.join(f))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            if p.len() != 3 {
                return None;
            }
            let (ma, mi) = p[0].split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: p[1].to_string(),
                value: p[2].parse().ok()?,
            })
        })
        .collect()
}

fn v2_hugetlb(d: &Path, out: &mut BTreeMap<String, Hugetlb>) {
    for size in crate::resources::hugepage_sizes() {
        let cur = d.join(format!("hugetlb.{size}.current"));
        if !cur.exists() {
            continue;
        }
        let ev = kv(d, &format!("hugetlb.{size}.events"));
        out.insert(
            size.clone(),
            Hugetlb {
                usage: num(d, &format!("hugetlb.{size}.current")),
                max: 0,
                failcnt: ev.get("max").copied().unwrap_or(0),
            },
        );
    }
}

impl Cgroup {
    /// Collect the group's statistics.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        match self.driver() {
            Driver::V2 => self.stats_v2(&self.paths["unified"], &mut s),
            _ => self.stats_v1(&mut s),
        }
        Ok(s)
    }

    fn stats_v1(&self, s: &mut Stats) {
        if let Some(d) = self.paths.get("cpuacct") {
            s.cpu.usage.total = num(d, "cpuacct.usage");
            s.cpu.usage.percpu = nums(d, "cpuacct.usage_percpu");
            s.cpu.usage.percpu_kernel = nums(d, "cpuacct.usage_percpu_sys");
            s.cpu.usage.percpu_user = nums(d, "cpuacct.usage_percpu_user");
            let st = kv(d, "cpuacct.stat");
            let ns = 1_000_000_000 / clk_tck();
            s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * ns;
            s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * ns;
        }
        if let Some(d) = self.paths.get("cpu") {
            let st = kv(d, "cpu.stat");
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_time").copied().unwrap_or(0),
            };
        }
        if let Some(d) = self.paths.get("cpuset") {
            s.cpuset.cpus = list(&read_opt(&d.join("cpuset.cpus")).unwrap_or_default());
            s.cpuset.mems = list(&read_opt(&d.join("cpuset.mems")).unwrap_or_default());
            s.cpuset.cpu_exclusive = num(d, "cpuset.cpu_exclusive");
            s.cpuset.mem_exclusive = num(d, "cpuset.mem_exclusive");
            s.cpuset.mem_hardwall = num(d, "cpuset.mem_hardwall");
            s.cpuset.memory_migrate = num(d, "cpuset.memory_migrate");
            s.cpuset.memory_spread_page = num(d, "cpuset.memory_spread_page");
            s.cpuset.memory_spread_slab = num(d, "cpuset.memory_spread_slab");
            s.cpuset.memory_pressure = num(d, "cpuset.memory_pressure");
            s.cpuset.sched_load_balance = num(d, "cpuset.sched_load_balance");
            s.cpuset.sched_relax_domain_level =
                read_opt(&d.join("cpuset.sched_relax_domain_level"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
        }
        if let Some(d) = self.paths.get("memory") {
            let entry = |p: &str| MemoryEntry {
                limit: num(d, &format!("{p}limit_in_bytes")),
                usage: num(d, &format!("{p}usage_in_bytes")),
                max: num(d, &format!("{p}max_usage_in_bytes")),
                failcnt: num(d, &format!("{p}failcnt")),
            };
            s.memory.usage = entry("memory.");
            s.memory.swap = entry("memory.memsw.");
            s.memory.kernel = entry("memory.kmem.");
            s.memory.kernel_tcp = entry("memory.kmem.tcp.");
            s.memory.raw = kv(d, "memory.stat");
            s.memory.cache = s
                .memory
                .raw
                .get("total_cache")
                .or_else(|| s.memory.raw.get("cache"))
                .copied()
                .unwrap_or(0);
        }
        if let Some(d) = self.paths.get("pids") {
            s.pids.current = num(d, "pids.current");
            let l = num(d, "pids.max");
            s.pids.limit = if l == u64::MAX { 0 } else { l };
        }
        if let Some(d) = self.paths.get("blkio") {
            let pick = |a: &str, b: &str| {
                let v = v1_blkio(d, a);
                if v.is_empty() {
                    v1_blkio(d, b)
                } else {
                    v
                }
            };
            s.blkio.io_service_bytes_recursive = pick(
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
            );
            s.blkio.io_serviced_recursive = pick(
                "blkio.throttle.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
            );
        }
        if let Some(d) = self.paths.get("hugetlb") {
            for size in crate::resources::hugepage_sizes() {
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage: num(d, &format!("hugetlb.{size}.usage_in_bytes")),
                        max: num(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                        failcnt: num(d, &format!("hugetlb.{size}.failcnt")),
                    },
                );
            }
        } else if let Some(u) = self.dir_of("hugetlb") {
            v2_hugetlb(u, &mut s.hugetlb);
        }
    }

    fn stats_v2(&self, d: &Path, s: &mut Stats) {
        let cpu = kv(d, "cpu.stat");
        let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = g("usage_usec") * 1000;
        s.cpu.usage.user = g("user_usec") * 1000;
        s.cpu.usage.kernel = g("system_usec") * 1000;
        s.cpu.throttling = Throttling {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_usec") * 1000,
        };
        s.cpuset.cpus = list(&read_opt(&d.join("cpuset.cpus.effective")).unwrap_or_default());
        s.cpuset.mems = list(&read_opt(&d.join("cpuset.mems.effective")).unwrap_or_default());
        if d.join("memory.current").exists() {
            let ev = kv(d, "memory.events");
            s.memory.usage = MemoryEntry {
                limit: num(d, "memory.max"),
                usage: num(d, "memory.current"),
                max: num(d, "memory.peak"),
                failcnt: ev.get("max").copied().unwrap_or(0),
            };
            let swap_cur = num(d, "memory.swap.current");
            let swap_max = num(d, "memory.swap.max");
            s.memory.swap = MemoryEntry {
                limit: s.memory.usage.limit.saturating_add(swap_max),
                usage: s.memory.usage.usage + swap_cur,
                max: 0,
                failcnt: 0,
            };
            s.memory.raw = kv(d, "memory.stat");
            s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
        }
        if d.join("pids.current").exists() {
            s.pids.current = num(d, "pids.current");
            let l = num(d, "pids.max");
            s.pids.limit = if l == u64::MAX { 0 } else { l };
        }
        for line in read_opt(&d.join("io.stat")).unwrap_or_default().lines() {
            let mut it = line.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|x| x.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
                continue;
            };
            for f in it {
                let Some((k, v)) = f.split_once('=') else {
                    continue;
                };
                let value = v.parse().unwrap_or(0);
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
        v2_hugetlb(d, &mut s.hugetlb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(list(""), Vec::<u16>::new());
    }

    #[test]
    fn json_has_runcs_field_names() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        for k in [
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert!(v["memory"].get("kernelTCP").is_some());
        assert!(v["cpu"]["usage"].get("kernel").is_some());
    }
}
