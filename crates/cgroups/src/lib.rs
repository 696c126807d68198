//! skiff-cgroups owns everything skiff does with control groups: probing which kind of host this is
//! (cgroup v1, hybrid, or unified v2), resolving a container's `cgroupsPath` to concrete directories,
//! creating them, placing processes, applying `linux.resources`, freezing/thawing, stats, OOM
//! notifications, killing every process in a group and removing the tree again. It knows nothing of
//! namespaces or images.
//!
//! One type, [`Cgroup`], covers the three drivers; which one applies is decided by probing the
//! host's mounts ([`Layout::probe`]) when the group is resolved, and is visible in the group's paths:
//! only `unified` → v2, v1 controllers only → v1, both → hybrid.

mod attach;
mod convert;
pub mod dbus;
pub mod devices;
pub mod layout;
pub mod oom;
pub mod path;
mod resources;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

pub use convert::{blkio_to_io_weight, shares_to_weight, swap_to_v2};
pub use layout::{Driver, Layout};
pub use oom::OomNotifier;
pub use stats::Stats;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Writing a value into a cgroup control file failed.
    #[error("cgroup {file}: set {value:?}: {source}")]
    Write {
        /// The control file.
        file: PathBuf,
        /// The value written.
        value: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A controller the request needs is not available with this driver on this host.
    #[error("cgroup controller {controller:?} not available on {driver} here{why}")]
    Unavailable {
        /// The controller (`memory`, `hugetlb`, ...).
        controller: String,
        /// The driver in use (`v1`, `hybrid`, `v2`).
        driver: Driver,
        /// Extra explanation, starting with a separator, or empty.
        why: String,
    },
    /// The request cannot be honoured on this host or is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A raw system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was attempted.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
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
/// later commands (`kill --all`, `pause`, `update`, `events`, `delete`) find the group without the
/// bundle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    /// Controller name (`memory`, `pids`, ..., or `unified` for the cgroup2 directory) → directory.
    pub paths: BTreeMap<String, PathBuf>,
    /// With the systemd manager: the slice and transient unit systemd owns the group as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<SystemdUnit>,
}

/// The transient systemd unit behind a group (systemd cgroup manager).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemdUnit {
    /// The parent slice (`system.slice`).
    pub slice: String,
    /// The unit (`skiff-<id>.scope`).
    pub unit: String,
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read a control file, trimmed; `None` when it does not exist.
pub(crate) fn read_opt(path: &Path) -> Option<String> {
    read_small(path).ok().map(|s| s.trim().to_string())
}

/// Read a control file: open, read until EOF, close. (`fs::read_to_string` also stats the file for
/// a size hint, which cgroup files do not have: they report 0.)
pub(crate) fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Write `value` to `dir/file`, naming the file and value on failure.
pub(crate) fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|source| Error::Write {
        file: p,
        value: value.to_string(),
        source,
    })
}

impl Cgroup {
    /// Resolve `spec` to concrete per-controller directories without touching the filesystem,
    /// probing the host's cgroup mounts to choose the driver.
    pub fn resolve(spec: &CgroupSpec) -> Result<Cgroup> {
        if spec.manager == ManagerKind::Disabled {
            return Ok(Cgroup::default());
        }
        let layout = Layout::probe()?;
        Cgroup::resolve_in(spec, &layout)
    }

    /// Resolve `spec` against an explicit host `layout` (tests use this to force a driver).
    pub fn resolve_in(spec: &CgroupSpec, layout: &Layout) -> Result<Cgroup> {
        if spec.manager == ManagerKind::Disabled {
            return Ok(Cgroup::default());
        }
        let mut cg = Cgroup::default();
        if spec.manager == ManagerKind::Systemd {
            systemd::require_systemd()?;
            let raw = match spec.path.as_deref() {
                Some(p) if !p.is_empty() => p.to_string(),
                _ => format!("system.slice:skiff:{}", spec.id),
            };
            let (slice, unit) = systemd::unit_of(&raw)?;
            cg.systemd = Some(SystemdUnit { slice, unit });
        }
        let rel = path::relative_path(spec)?;
        for (ctl, mount) in &layout.v1 {
            cg.paths
                .insert(ctl.clone(), path::join_under(mount, &rel, ctl, spec)?);
        }
        if let Some(u) = &layout.unified {
            cg.paths
                .insert("unified".into(), path::join_under(u, &rel, "", spec)?);
        }
        if cg.paths.is_empty() {
            return Err(Error::Invalid(
                "no cgroup filesystem is mounted on this host".into(),
            ));
        }
        Ok(cg)
    }

    /// Which driver this group uses: only `unified` → v2, v1 controllers only → v1, both → hybrid.
    pub fn driver(&self) -> Driver {
        let has_unified = self.paths.contains_key("unified");
        match (has_unified, self.paths.len()) {
            (true, 1) => Driver::V2,
            (true, _) => Driver::Hybrid,
            _ => Driver::V1,
        }
    }

    /// The distinct directories of the group (controllers co-mounted in one hierarchy share one).
    pub fn dirs(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = self.paths.values().map(|p| p.as_path()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The directory of controller `ctl` (v1 name) on v1/hybrid, or the unified directory when the
    /// controller is enabled there.
    pub fn dir_of(&self, ctl: &str) -> Option<&Path> {
        if let Some(p) = self.paths.get(ctl) {
            return Some(p);
        }
        let u = self.paths.get("unified")?;
        if v2::enabled_controllers(u).iter().any(|c| c == ctl) {
            Some(u)
        } else {
            None
        }
    }

    pub(crate) fn unavailable(&self, controller: &str) -> Error {
        let driver = self.driver();
        let bound = layout::v1_bound_controllers();
        let why = if driver == Driver::V2 && bound.iter().any(|c| c == controller) {
            ": the kernel has it bound to a cgroup v1 hierarchy, so the unified tree cannot use it"
                .to_string()
        } else if let Some(u) = self.paths.get("unified") {
            let have = v2::enabled_controllers(u);
            format!(" (unified hierarchy offers: {})", have.join(" "))
        } else {
            String::new()
        };
        Error::Unavailable {
            controller: controller.into(),
            driver,
            why,
        }
    }

    /// Create every directory of the group. On failure, every directory this call created is
    /// removed again, so no half-created group is left behind.
    pub fn create(&self) -> Result<()> {
        if self.systemd.is_some() {
            // systemd creates the directories when it starts the unit (see `start_systemd`).
            return Ok(());
        }
        self.create_where(|_| true)?;
        self.delegate_unified()
    }

    /// [`Cgroup::create`] in two parts: with `unified`, only the unified directory (the runtime
    /// makes it before it clones the container's init into it); without, every other directory,
    /// and the unified tree's controllers are delegated down to the group (which the kernel allows
    /// with a process already inside), while the init sets up its namespaces.
    pub fn create_part(&self, unified: bool) -> Result<()> {
        self.create_where(|ctl| (ctl == "unified") == unified)?;
        if unified {
            return Ok(());
        }
        self.delegate_unified()
    }

    /// Enable every available controller along the unified directory's ancestors.
    fn delegate_unified(&self) -> Result<()> {
        match self.paths.get("unified") {
            Some(d) => v2::enable_controllers(d),
            None => Ok(()),
        }
    }

    fn create_where(&self, want: impl Fn(&str) -> bool) -> Result<()> {
        let mut made: Vec<PathBuf> = Vec::new();
        let r = self.create_inner(&mut made, want);
        if r.is_err() {
            for d in made.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
        r
    }

    fn create_inner(&self, made: &mut Vec<PathBuf>, want: impl Fn(&str) -> bool) -> Result<()> {
        for (ctl, dir) in &self.paths {
            if !want(ctl) || made.iter().any(|m| m == dir) {
                continue;
            }
            // Fast path: the parent usually exists, so one mkdir does it.
            let mut missing = Vec::new();
            match mkdir(dir) {
                Ok(()) => missing.push((dir.to_path_buf(), true)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut cur = dir.as_path();
                    while !cur.exists() {
                        missing.push((cur.to_path_buf(), false));
                        match cur.parent() {
                            Some(p) => cur = p,
                            None => break,
                        }
                    }
                    missing.reverse();
                }
                Err(e) => return Err(io_err(dir, e)),
            }
            for (d, done) in &missing {
                if !done {
                    match mkdir(d) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io_err(d, e)),
                    }
                }
                made.push(d.clone());
                if ctl == "cpuset" {
                    v1::init_cpuset(d)?;
                    if d != dir {
                        // A parent we made ourselves: let the kernel give its future children
                        // its cpus/mems at mkdir (cgroup.clone_children), so init_cpuset finds
                        // them set and has nothing to copy. Best effort.
                        let _ = write_file(d, "cgroup.clone_children", "1");
                    }
                }
            }
        }
        Ok(())
    }

    /// True when systemd owns this group (the systemd cgroup manager).
    pub fn is_systemd(&self) -> bool {
        self.systemd.is_some()
    }

    /// systemd manager: start the transient unit holding `pid` (systemd creates the directories
    /// and moves the process), then wait until the directories exist. `res` are passed on as unit
    /// properties; the caller applies the full set with [`Cgroup::apply`] afterwards.
    pub fn start_systemd(
        &self,
        pid: i32,
        res: Option<&oci_spec::runtime::LinuxResources>,
    ) -> Result<()> {
        let Some(u) = &self.systemd else {
            return self.add_process(pid);
        };
        systemd::start_unit(&u.slice, &u.unit, pid, res, self.driver() == Driver::V2)?;
        for d in self.dirs() {
            if !d.exists() {
                return Err(Error::Invalid(format!(
                    "systemd unit {:?} started but its cgroup {} does not exist",
                    u.unit,
                    d.display()
                )));
            }
        }
        Ok(())
    }

    /// Move `pid` into every directory of the group.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            write_file(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// The pids currently in the group, including those in nested child groups.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(p) = ["pids", "freezer", "memory", "unified"]
            .iter()
            .find_map(|c| self.paths.get(*c))
            .or_else(|| self.paths.values().next())
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        collect_procs(p, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Send `sig` to every process in the group. With a freezer, the group is frozen first so no
    /// process can fork past the signal; a SIGKILLed group is thawed again so the kills land, other
    /// signals leave a paused group paused. On v2, SIGKILL uses `cgroup.kill`.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        if let Some(u) = self.paths.get("unified") {
            if self.driver() == Driver::V2 && sig == libc::SIGKILL && u.join("cgroup.kill").exists()
            {
                return match write_file(u, "cgroup.kill", "1") {
                    Ok(()) => Ok(()),
                    Err(_) if !u.exists() => Ok(()),
                    Err(e) => Err(e),
                };
            }
        }
        let pids = self.procs()?;
        if pids.is_empty() {
            return Ok(());
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen && self.freeze().is_ok();
        let pids = if froze { self.procs()? } else { pids };
        for pid in pids {
            // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
        if froze || (was_frozen && sig == libc::SIGKILL) {
            self.thaw()?;
        }
        Ok(())
    }

    /// True when the group is frozen (v1 freezer FROZEN, v2 cgroup.freeze = 1).
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(p) = self.paths.get("freezer") {
            return Ok(read_opt(&p.join("freezer.state")).as_deref() == Some("FROZEN"));
        }
        if let Some(p) = self.paths.get("unified") {
            return Ok(read_opt(&p.join("cgroup.freeze")).as_deref() == Some("1"));
        }
        Ok(false)
    }

    /// Freeze every process of the group and wait until the kernel reports it frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaw the group and wait until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, on: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(d) = self.paths.get("freezer") {
            let want = if on { "FROZEN" } else { "THAWED" };
            let mut sleep = Duration::from_micros(100);
            loop {
                write_file(d, "freezer.state", want)?;
                let s = read_opt(&d.join("freezer.state")).unwrap_or_default();
                if s == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    if on {
                        let _ = write_file(d, "freezer.state", "THAWED");
                    }
                    return Err(Error::Invalid(format!(
                        "cgroup {}: freezer stuck in {s}, did not reach {want}",
                        d.display()
                    )));
                }
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(Duration::from_millis(10));
            }
        }
        if let Some(d) = self.paths.get("unified") {
            if !d.join("cgroup.freeze").exists() {
                return Err(self.unavailable("freezer"));
            }
            write_file(d, "cgroup.freeze", if on { "1" } else { "0" })?;
            let want = if on { "frozen 1" } else { "frozen 0" };
            let mut sleep = Duration::from_micros(100);
            loop {
                let ev = std::fs::read_to_string(d.join("cgroup.events")).unwrap_or_default();
                if ev.lines().any(|l| l.trim() == want) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    if on {
                        let _ = write_file(d, "cgroup.freeze", "0");
                    }
                    return Err(Error::Invalid(format!(
                        "cgroup {}: did not reach {want}",
                        d.display()
                    )));
                }
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(Duration::from_millis(10));
            }
        }
        Err(self.unavailable("freezer"))
    }

    /// Remove the group's directories, nested child groups first. Processes still inside (for
    /// example ones that raced with the kill) are SIGKILLed and the removal retried for up to 5 s.
    pub fn destroy(&self) -> Result<()> {
        if let Some(u) = &self.systemd {
            systemd::stop_unit(&u.unit)?;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut killed = false;
        for d in self.dirs() {
            loop {
                match remove_tree(d) {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => return Err(io_err(d, e)),
                    Err(_) => {
                        if !killed {
                            let _ = self.kill_all(libc::SIGKILL);
                            killed = true;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
        Ok(())
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let f = dir.join("cgroup.procs");
    match read_small(&f) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&f, e)),
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs(&e.path(), out)?;
            }
        }
    }
    Ok(())
}

/// rmdir `dir` after its child directories (cgroup directories hold only control files, which
/// rmdir removes with the directory).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    // Fast path: a leaf group goes with one rmdir.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// `mkdir` of a cgroup directory with mode 0755 whatever the umask (runc's mode): a umask of 0
/// would let any host user create child cgroups.
fn mkdir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o755).create(dir)
}
