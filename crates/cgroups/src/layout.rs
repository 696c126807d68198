//! Probing the host: which cgroup hierarchies are mounted where, and so which driver applies.
//!
//! The probe reads `/proc/self/mountinfo` (so a private mount namespace with cgroup2 mounted at
//! `/sys/fs/cgroup` is seen as a pure v2 host). `SKIFF_CGROUP_DRIVER=v1|hybrid|v2` overrides the
//! choice when the needed hierarchies are mounted.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The three kinds of cgroup host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    /// Every controller in its own (or a co-mounted) v1 hierarchy.
    V1,
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid,
    /// One unified cgroup2 hierarchy at `/sys/fs/cgroup`.
    V2,
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::V1 => "v1",
            Driver::Hybrid => "hybrid",
            Driver::V2 => "v2",
        })
    }
}

/// v1 controllers skiff knows how to use.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// Where the hierarchies of this host are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// v1 controller → mount point of its hierarchy (co-mounted controllers share one).
    pub v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount point, if one is used.
    pub unified: Option<PathBuf>,
}

impl Layout {
    /// Probe the mounts of this process's mount namespace and pick the driver (honouring
    /// `SKIFF_CGROUP_DRIVER`).
    pub fn probe() -> Result<Layout> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| crate::io_err(Path::new("/proc/self/mountinfo"), e))?;
        let l = Layout::from_mountinfo(&info);
        match std::env::var("SKIFF_CGROUP_DRIVER").ok().as_deref() {
            None | Some("") => Ok(l),
            Some(v) => {
                let d = match v {
                    "v1" => Driver::V1,
                    "hybrid" => Driver::Hybrid,
                    "v2" => Driver::V2,
                    o => {
                        return Err(Error::Invalid(format!(
                            "SKIFF_CGROUP_DRIVER={o:?}: expected v1, hybrid or v2"
                        )))
                    }
                };
                l.force(d)
            }
        }
    }

    /// The driver this layout implies.
    pub fn driver(&self) -> Driver {
        match (self.v1.is_empty(), self.unified.is_some()) {
            (true, _) => Driver::V2,
            (false, true) => Driver::Hybrid,
            (false, false) => Driver::V1,
        }
    }

    /// Restrict this layout to `driver`: v1 drops the unified mount, v2 drops the v1 hierarchies;
    /// an error when the hierarchies that driver needs are not mounted.
    pub fn force(mut self, driver: Driver) -> Result<Layout> {
        match driver {
            Driver::V1 => {
                if self.v1.is_empty() {
                    return Err(Error::Invalid(
                        "cgroup driver v1 requested but no v1 hierarchy is mounted".into(),
                    ));
                }
                self.unified = None;
            }
            Driver::Hybrid => {
                if self.v1.is_empty() || self.unified.is_none() {
                    return Err(Error::Invalid(
                        "cgroup driver hybrid requested but v1 hierarchies and a cgroup2 mount are not both present"
                            .into(),
                    ));
                }
            }
            Driver::V2 => {
                if self.unified.is_none() {
                    return Err(Error::Invalid(
                        "cgroup driver v2 requested but no cgroup2 filesystem is mounted".into(),
                    ));
                }
                self.v1.clear();
            }
        }
        Ok(self)
    }

    /// Whether this host can weight block I/O per cgroup (docker's `BlkioWeight` in `info`): on
    /// v1 the blkio hierarchy's root offers `blkio.weight` (CFQ) or `blkio.bfq.weight` (BFQ); on
    /// v2 the `io` controller is available and either BFQ is an io scheduler of some block device
    /// or the root offers the iocost model (`io.cost.qos`), which is what gives children
    /// `io.bfq.weight` / `io.weight`. Without BFQ and CFQ (e.g. only mq-deadline, kyber, none)
    /// there is nothing a weight could be written to.
    pub fn offers_io_weight(&self) -> bool {
        if let Some(b) = self.v1.get("blkio") {
            return b.join("blkio.weight").exists() || b.join("blkio.bfq.weight").exists();
        }
        let Some(u) = &self.unified else {
            return false;
        };
        let io = std::fs::read_to_string(u.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "io"));
        io && (u.join("io.cost.qos").exists() || bfq_scheduler_present())
    }

    /// Parse `/proc/self/mountinfo` text.
    pub fn from_mountinfo(info: &str) -> Layout {
        let mut l = Layout::default();
        let mut v2_mounts: Vec<PathBuf> = Vec::new();
        for line in info.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let mountpoint = PathBuf::from(unescape(pre[4]));
            match post[0] {
                "cgroup2" => v2_mounts.push(mountpoint),
                "cgroup" => {
                    for opt in post[2].split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            l.v1.entry(opt.to_string())
                                .or_insert_with(|| mountpoint.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        // A later mount on the same mount point hides the earlier one: cgroup2 mounted over
        // /sys/fs/cgroup (pure v2) hides the v1 hierarchies below it.
        let root = Path::new("/sys/fs/cgroup");
        if let Some(u) = v2_mounts.iter().rev().find(|p| p.as_path() == root) {
            let last_root = info
                .lines()
                .rev()
                .find(|line| {
                    line.split(' ').nth(4).map(unescape).as_deref() == Some("/sys/fs/cgroup")
                })
                .unwrap_or("");
            if last_root.contains(" - cgroup2 ") {
                l.v1.clear();
                l.unified = Some(u.clone());
                return l;
            }
        }
        l.unified = v2_mounts
            .iter()
            .find(|p| p.as_path() == root.join("unified"))
            .or_else(|| v2_mounts.first())
            .cloned();
        l
    }
}

/// Whether any block device lists BFQ among its io schedulers (`/sys/block/*/queue/scheduler`).
pub fn bfq_scheduler_present() -> bool {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return false;
    };
    rd.flatten().any(|d| {
        std::fs::read_to_string(d.path().join("queue/scheduler")).is_ok_and(|s| {
            s.split_whitespace()
                .any(|w| w.trim_matches(|c| c == '[' || c == ']') == "bfq")
        })
    })
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct[0] <= b'3' && oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Controllers the kernel has bound to some v1 hierarchy (from `/proc/cgroups`); those cannot be
/// enabled in the unified hierarchy.
pub fn v1_bound_controllers() -> Vec<String> {
    let s = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[1] != "0").then(|| f[0].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_is_recognised() {
        let l = Layout::from_mountinfo(HYBRID);
        assert_eq!(l.driver(), Driver::Hybrid);
        assert_eq!(l.v1["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(!l.v1.contains_key("systemd"));
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(l.clone().force(Driver::V1).unwrap().driver(), Driver::V1);
        assert_eq!(l.force(Driver::V2).unwrap().driver(), Driver::V2);
    }

    #[test]
    fn cgroup2_over_the_root_hides_v1() {
        let info =
            format!("{HYBRID}99 23 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
        let l = Layout::from_mountinfo(&info);
        assert_eq!(l.driver(), Driver::V2);
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup")));
        let v1only = Layout::from_mountinfo(HYBRID).force(Driver::V1).unwrap();
        assert!(v1only.force(Driver::V2).is_err());
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
