//! skiff-cgroups owns everything skiff does with control groups: probing which kind of host this is
//! (cgroup v1, hybrid, or unified v2), resolving a container's `cgroupsPath` to concrete directories,
//! creating them, placing processes, applying `linux.resources`, freezing/thawing, stats, killing every
//! process in a group and removing the tree again. It knows nothing of namespaces or images.

pub mod resources;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Errors from cgroup operations; each names the cgroup or controller involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a cgroup file failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The request cannot be honoured on this host or is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Which cgroup manager the caller asked for (`--cgroup-manager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ManagerKind {
    /// Write the cgroup filesystem directly.
    #[default]
    Cgroupfs,
    /// Ask systemd (over D-Bus) to create scopes; only valid when systemd is PID 1.
    Systemd,
    /// Do not touch cgroups at all.
    Disabled,
}

/// What the runtime knows when it resolves a container's cgroup.
#[derive(Debug, Clone)]
pub struct CgroupSpec {
    /// `linux.cgroupsPath` from config.json, if any.
    pub path: Option<String>,
    /// The container id (used for the default path `/skiff/<id>`).
    pub id: String,
    /// Which manager to use.
    pub manager: ManagerKind,
    /// True when running rootless: failures to create cgroups are tolerated.
    pub rootless: bool,
}

/// A resolved cgroup: the concrete directories per controller. Serialized into the runtime state so
/// later commands (`kill --all`, `pause`, `delete`) find the group without the bundle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// Controller name (`memory`, `pids`, ..., or `unified`) → directory.
    pub paths: std::collections::BTreeMap<String, PathBuf>,
}

const ROOT: &str = "/sys/fs/cgroup";

fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Cgroup {
    /// Resolve `spec` to concrete per-controller directories without touching the filesystem.
    pub fn resolve(spec: &CgroupSpec) -> Result<Cgroup> {
        let mut cg = Cgroup::default();
        if spec.manager == ManagerKind::Disabled {
            return Ok(cg);
        }
        let rel = match &spec.path {
            Some(p) if p.starts_with('/') => p.trim_start_matches('/').to_string(),
            Some(p) if !p.is_empty() => p.clone(),
            _ => format!("skiff/{}", spec.id),
        };
        if rel.split('/').any(|c| c == "..") {
            return Err(Error::Invalid(format!(
                "cgroupsPath {rel:?} must not contain \"..\""
            )));
        }
        let root = std::path::Path::new(ROOT);
        if root.join("cgroup.controllers").exists() {
            cg.paths.insert("unified".into(), root.join(&rel));
            return Ok(cg);
        }
        for ctl in [
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
        ] {
            let d = root.join(ctl);
            if d.join("cgroup.procs").exists()
                && !cg
                    .paths
                    .values()
                    .any(|p| p.starts_with(d.canonicalize().unwrap_or(d.clone())))
            {
                cg.paths.insert(ctl.into(), d.join(&rel));
            }
        }
        let unified = root.join("unified");
        if unified.join("cgroup.procs").exists() {
            cg.paths.insert("unified".into(), unified.join(&rel));
        }
        Ok(cg)
    }

    /// Create every directory of the group.
    pub fn create(&self) -> Result<()> {
        for p in self.paths.values() {
            std::fs::create_dir_all(p).map_err(|e| io_err(p, e))?;
            if p.starts_with("/sys/fs/cgroup/cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let mut cur = std::path::PathBuf::from("/sys/fs/cgroup/cpuset");
                    for comp in p
                        .strip_prefix("/sys/fs/cgroup/cpuset")
                        .unwrap_or(p)
                        .components()
                    {
                        let parent_val = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
                        cur.push(comp);
                        let v = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
                        if v.trim().is_empty() {
                            let _ = std::fs::write(cur.join(f), parent_val.trim());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Move `pid` into every directory of the group.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for p in self.paths.values() {
            let f = p.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(|e| io_err(&f, e))?;
        }
        Ok(())
    }

    /// The pids currently in the group.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(p) = self
            .paths
            .get("pids")
            .or_else(|| self.paths.values().next())
        else {
            return Ok(Vec::new());
        };
        let f = p.join("cgroup.procs");
        let s = match std::fs::read_to_string(&f) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&f, e)),
        };
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Send `sig` to every process in the group.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        for pid in self.procs()? {
            // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }

    /// True when the group is frozen (v1 freezer FROZEN, v2 cgroup.freeze = 1).
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(p) = self.paths.get("freezer") {
            let s = std::fs::read_to_string(p.join("freezer.state")).unwrap_or_default();
            return Ok(s.trim() == "FROZEN");
        }
        if let Some(p) = self.paths.get("unified") {
            let s = std::fs::read_to_string(p.join("cgroup.freeze")).unwrap_or_default();
            return Ok(s.trim() == "1");
        }
        Ok(false)
    }

    /// Remove the group's directories (leaf first), retrying briefly while processes exit.
    pub fn destroy(&self) -> Result<()> {
        for p in self.paths.values() {
            if !p.exists() {
                continue;
            }
            let mut last = None;
            for _ in 0..100 {
                match std::fs::remove_dir(p) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if let Some(e) = last {
                return Err(io_err(p, e));
            }
        }
        Ok(())
    }
}
