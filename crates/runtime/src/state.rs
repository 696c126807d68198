//! On-disk state of one container under the runtime root (`<root>/<id>/state.json`) and the live
//! status derived from it, in the shape runc reports.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use skiff_cgroups::Cgroup;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lifecycle status of a container, as runc names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The runtime is still setting the container up.
    Creating,
    /// Set up and waiting for `start`.
    Created,
    /// The user process is running.
    Running,
    /// The cgroup is frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// Everything later commands need to find and manage a container without re-reading the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Container id.
    pub id: String,
    /// Host pid of the container's init process (0 if never started).
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat), to detect pid reuse.
    pub pid_start: u64,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339 in UTC.
    pub created: String,
    /// Owner user name (runc reports the user that created it).
    pub owner: String,
    /// Annotations from config.json.
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroup.
    pub cgroup: Cgroup,
    /// True once `start` released the init process.
    pub started: bool,
    /// The cache key (`<root>/seccomp@cache/<key>`) of the compiled `linux.seccomp` filter the init
    /// loaded, so `exec` loads the same program without compiling or even parsing the profile.
    /// Absent without a profile (and in state written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_key: Option<String>,
    /// The config.json the container was created from (hooks, process, namespaces are needed later).
    pub config: serde_json::Value,
}

/// Directory holding a container's state under the runtime root.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Validate a container id the way runc does (no path separators, no `..`, not empty).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'"
        )))
    }
}

/// Read field 22 (starttime) of /proc/<pid>/stat; None if the process is gone.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    it.nth(18)?.parse().ok()
}

/// True if `pid` is alive and still the process that started at `pid_start`.
pub fn init_alive(pid: i32, pid_start: u64) -> bool {
    pid > 0 && pid_start_time(pid) == Some(pid_start)
}

/// The live status of a container from the fields of its state (see [`State::status`]).
pub fn live_status(
    root: &Path,
    id: &str,
    pid: i32,
    pid_start: u64,
    started: bool,
    cgroup: &Cgroup,
) -> Status {
    if !init_alive(pid, pid_start) {
        return Status::Stopped;
    }
    if !started && container_dir(root, id).join("exec.sock").exists() {
        return Status::Created;
    }
    if cgroup.is_frozen().unwrap_or(false) {
        return Status::Paused;
    }
    Status::Running
}

impl State {
    /// Load the state of container `id` under `root`.
    pub fn load(root: &Path, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = container_dir(root, id).join("state.json");
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::Other(format!("{}: corrupt state: {e}", path.display())))
    }

    /// Write the state atomically (temp file + rename).
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = container_dir(root, &self.id);
        let tmp = dir.join("state.json.tmp");
        let data = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::fsutil::write_state_file(&tmp, &dir.join("state.json"), &data)
    }

    /// True if the init process is still alive (and is the same process).
    pub fn init_alive(&self) -> bool {
        init_alive(self.pid, self.pid_start)
    }

    /// The live status of the container.
    pub fn status(&self, root: &Path) -> Status {
        live_status(
            root,
            &self.id,
            self.pid,
            self.pid_start,
            self.started,
            &self.cgroup,
        )
    }

    /// The OCI/runc state JSON for `state` and `list --format json`.
    pub fn oci_state(&self, root: &Path) -> serde_json::Value {
        let status = self.status(root);
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "pid": pid,
            "status": status.to_string(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}
