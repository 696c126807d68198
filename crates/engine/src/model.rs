//! The container record as stored in the state database, with docker's field names so `inspect`
//! serializes it directly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Docker's `Config` of a container (what the image and `run` flags say the process is).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    /// Hostname inside the container.
    pub hostname: String,
    /// Domain name.
    pub domainname: String,
    /// `-u` or the image's User.
    pub user: String,
    /// Attach stdin (`-i` in the foreground).
    pub attach_stdin: bool,
    /// Attach stdout.
    pub attach_stdout: bool,
    /// Attach stderr.
    pub attach_stderr: bool,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Close stdin when the first attached client detaches (foreground `-i`).
    pub stdin_once: bool,
    /// Environment (image env, then `-e`/`--env-file`).
    pub env: Vec<String>,
    /// Command (after the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// The image as the user named it.
    pub image: String,
    /// Volumes declared by the image (`VOLUME`).
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// `-w` or the image's WorkingDir.
    pub working_dir: String,
    /// `--entrypoint` or the image's Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels (image labels, then `-l`).
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` or the image's StopSignal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout` seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `--health-*` flags merged over the image's `Healthcheck` (`Test: ["NONE"]` disables it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// The image's ExposedPorts plus `--expose` (`80/tcp` → `{}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// Docker's `HealthConfig` (durations in nanoseconds; zero means docker's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` off, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks (default 30s).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub interval: i64,
    /// Time a check may run (default 30s).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timeout: i64,
    /// Time after the start during which failures do not count (default 0).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub start_period: i64,
    /// Time between checks during the start period (default 5s).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub start_interval: i64,
    /// Consecutive failures that make the container unhealthy (default 3).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

/// Docker's restart policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no`, `on-failure`, `always`, `unless-stopped` (empty = no).
    pub name: String,
    /// Retries for `on-failure:N`.
    pub maximum_retry_count: i64,
}

/// Log driver configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// Always `json-file`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `--log-opt` (max-size, max-file).
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::new(),
        }
    }
}

/// One `--ulimit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// Name (`nofile`).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// A `--mount` as docker records it in HostConfig.Mounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path or volume name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// `bind-propagation`: `{"Propagation": …}`, as docker's CLI records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<serde_json::Value>,
    /// `volume-nocopy`: `{"NoCopy": true, "DriverConfig": {}}`, as docker's CLI records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<serde_json::Value>,
    /// `tmpfs-size`/`tmpfs-mode`: `{"SizeBytes": N, "Mode": M}` (each only when given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<serde_json::Value>,
}

/// Docker's `HostConfig` (the flags that shape how the container runs on this host).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v` values.
    pub binds: Option<Vec<String>>,
    /// `bridge` (the default network), a user network's name, `none`, `host`, or `default`
    /// (no network: the default bridge is disabled with `"bridge": "none"` in daemon.json).
    pub network_mode: String,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--cap-add`.
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`.
    pub cap_drop: Option<Vec<String>>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--security-opt`.
    pub security_opt: Option<Vec<String>>,
    /// `--memory` bytes (0 = unlimited).
    pub memory: i64,
    /// `--cpus` × 1e9.
    pub nano_cpus: i64,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (0 = unset).
    pub blkio_weight: u16,
    /// Resource, namespace and device settings under docker's names (`MemorySwap`, `PidMode`, …).
    #[serde(flatten)]
    pub extra: crate::hostflags::HostExtras,
    /// `--ulimit`.
    pub ulimits: Option<Vec<Ulimit>>,
    /// `--tmpfs` target → options.
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `--cgroup-parent`.
    pub cgroup_parent: String,
    /// `--log-driver`/`--log-opt`.
    pub log_config: LogConfig,
    /// `--init`.
    pub init: Option<bool>,
    /// `--mount` values.
    pub mounts: Option<Vec<MountSpec>>,
    /// `--volumes-from`.
    pub volumes_from: Option<Vec<String>>,
    /// `-p`: `80/tcp` → bindings, as docker records them.
    pub port_bindings: Option<BTreeMap<String, Vec<PortBinding>>>,
    /// `-P`.
    pub publish_all_ports: bool,
    /// `--ip`, `--mac-address` (docker keeps them in the endpoint config; kept here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// `--mac-address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// `--add-host host:ip`.
    pub extra_hosts: Option<Vec<String>>,
    /// `--dns`.
    pub dns: Option<Vec<String>>,
    /// `--dns-search`.
    pub dns_search: Option<Vec<String>>,
    /// `--dns-option`.
    pub dns_options: Option<Vec<String>>,
    /// `--runtime`: another OCI runtime's name (absent: the built-in one, shown as docker's
    /// default `runc`); see [`crate::ociruntime`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// One host binding of a published port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (empty = all).
    pub host_ip: String,
    /// Host port (empty = any free one).
    pub host_port: String,
}

/// One mount of a container as `inspect` shows it in `Mounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Volume name (volumes only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host path (the volume's `_data` for volumes).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Driver (`local` for volumes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// Mode string as given (`ro`, `z`, ...).
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Bind propagation.
    pub propagation: String,
    /// Anonymous volume (removed by `rm -v`); not shown by docker, kept for our bookkeeping.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// tmpfs options.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub options: String,
}

/// Docker's `State` of a container, plus the monitor bookkeeping skiff needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    /// created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    /// Running (also true while paused).
    pub running: bool,
    /// Paused.
    pub paused: bool,
    /// Restarting.
    pub restarting: bool,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Dead (removal failed).
    pub dead: bool,
    /// Host pid of the init (0 when not running).
    pub pid: i32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// RFC 3339 start time of the last run.
    pub started_at: String,
    /// RFC 3339 end time of the last run.
    pub finished_at: String,
    /// Pid of the `skiff monitor` (not in docker's JSON).
    #[serde(skip_serializing_if = "is_zero")]
    pub monitor_pid: i32,
    /// Start time (clock ticks) of the monitor, against pid reuse.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub monitor_start: u64,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Zero time as docker prints it for never-started containers.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Program (entrypoint + cmd)[0].
    pub path: String,
    /// The rest of the program's arguments.
    pub args: Vec<String>,
    /// Image id (`sha256:…`).
    pub image: String,
    /// The image as typed (`busybox`, `alpine:latest`).
    pub image_ref: String,
    /// Config.
    pub config: Config,
    /// HostConfig.
    pub host_config: HostConfig,
    /// Mounts.
    pub mounts: Vec<MountPoint>,
    /// State.
    pub state: State,
    /// How many times the monitor restarted it.
    pub restart_count: i64,
    /// Image layer snapshot dirs, bottom first.
    pub lower_dirs: Vec<String>,
    /// `linux/amd64`.
    pub platform: String,
    /// More names its peers on user networks resolve it by (compose's service name and
    /// `aliases`, docker's `EndpointSettings.Aliases`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// The network it was created on was disconnected (`network disconnect`): it starts on
    /// the networks connected since, or none.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network_detached: bool,
    /// Aliases per network name (compose's `networks: {net: {aliases: […]}}`); on a network
    /// listed here they replace `network_aliases`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub network_aliases_on: std::collections::BTreeMap<String, Vec<String>>,
    /// Endpoint driver options per network name (`--network name=N,driver-opt=K=V`, `network
    /// connect --driver-opt`), shown as `DriverOpts` in inspect.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub network_driver_opts:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

impl Container {
    /// The names (besides its own) peers on network `net` resolve this container by.
    pub fn aliases_on(&self, net: &str) -> &[String] {
        self.network_aliases_on
            .get(net)
            .unwrap_or(&self.network_aliases)
    }
}

impl Container {
    /// The 12-digit short id.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
    /// True when a monitor owns a live (or restarting) container.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.status.as_str(),
            "running" | "paused" | "restarting"
        )
    }
}
