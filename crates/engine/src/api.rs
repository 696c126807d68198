//! Docker Engine API request models the engine takes (hand-written serde structs with the API's
//! field names, v1.24–v1.50), and their mapping onto the engine's typed operations. Unknown
//! fields are refused (`deny_unknown_fields`) so a client's typo is a 400 naming the field, not a
//! setting silently dropped; fields the API has but skiff does not implement are accepted when
//! they hold their zero value and refused by name otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::create::{CreateRequest, Typed};
use crate::error::{Error, Result};
use crate::model::{HealthConfig, PortBinding, RestartPolicy, Ulimit};

/// Docker's "strslice": a JSON string or an array of strings (null = unset).
fn str_or_vec<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

/// `POST /containers/create`: the container's `Config` with `HostConfig` and `NetworkingConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct CreateBody {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    pub healthcheck: Option<HealthConfig>,
    pub args_escaped: Option<bool>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    #[serde(deserialize_with = "str_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    pub network_disabled: Option<bool>,
    pub mac_address: Option<String>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    #[serde(deserialize_with = "str_or_vec")]
    pub shell: Option<Vec<String>>,
    pub host_config: Option<HostConfigBody>,
    pub networking_config: Option<NetworkingConfig>,
}

/// `HostConfig` of a create request (every field docker 28's CLI sends, plus the rest of v1.50).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct HostConfigBody {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: Option<LogConfigBody>,
    pub network_mode: String,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub restart_policy: Option<RestartPolicy>,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub console_size: Option<Vec<u32>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroupns_mode: String,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub ipc_mode: String,
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub storage_opt: Option<BTreeMap<String, String>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: i64,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub runtime: String,
    pub isolation: String,
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub blkio_weight_device: Option<Vec<Value>>,
    pub blkio_device_read_bps: Option<Vec<ThrottleBody>>,
    pub blkio_device_write_bps: Option<Vec<ThrottleBody>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<ThrottleBody>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<ThrottleBody>>,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_realtime_period: i64,
    pub cpu_realtime_runtime: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: Option<Vec<DeviceBody>>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub device_requests: Option<Vec<Value>>,
    pub kernel_memory: i64,
    #[serde(rename = "KernelMemoryTCP")]
    pub kernel_memory_tcp: i64,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub init: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub cpu_count: i64,
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps")]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth")]
    pub io_maximum_bandwidth: u64,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub mounts: Option<Vec<MountBody>>,
}

/// One `HostConfig.Mounts` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct MountBody {
    pub target: String,
    pub source: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub read_only: bool,
    pub consistency: String,
    pub bind_options: Option<Value>,
    pub volume_options: Option<Value>,
    pub image_options: Option<Value>,
    pub tmpfs_options: Option<TmpfsOptionsBody>,
}

/// `Mounts[].TmpfsOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct TmpfsOptionsBody {
    pub size_bytes: i64,
    pub mode: u32,
    pub options: Option<Vec<Vec<String>>>,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct LogConfigBody {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: Option<BTreeMap<String, String>>,
}

/// One throttled device (`BlkioDeviceReadBps` …).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct ThrottleBody {
    pub path: String,
    pub rate: u64,
}

/// One `HostConfig.Devices` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct DeviceBody {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `NetworkingConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, Value>>,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct ExecBody {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub console_size: Option<Vec<u16>>,
    pub detach_keys: String,
    pub detach: bool,
    /// Sent by docker-py (the container is the URL's); ignored.
    pub container: Option<String>,
    pub tty: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct ExecStartBody {
    pub detach: bool,
    pub tty: bool,
    pub console_size: Option<Vec<u16>>,
}

fn unsupported(field: &str) -> Error {
    Error::Invalid(format!("{field}: not supported by skiff"))
}

fn some_nonempty(v: Option<Vec<String>>) -> Vec<String> {
    v.unwrap_or_default()
}

fn opt_str(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl CreateBody {
    /// The engine's create request for this body, named `name` (the `name=` query parameter).
    /// `Env` entries without `=` are dropped: the daemon side has no user environment to take
    /// their values from (docker's CLI resolves them before sending).
    pub fn into_request(self, name: Option<String>) -> Result<CreateRequest> {
        if self.image.is_empty() {
            return Err(Error::Invalid(
                "Image: the image to create from is required".into(),
            ));
        }
        let h = self.host_config.unwrap_or_default();
        if h.links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(unsupported(
                "HostConfig.Links (legacy links; use a user network)",
            ));
        }
        let mut mounts = Vec::new();
        for m in h.mounts.unwrap_or_default() {
            if m.image_options.is_some() || m.kind == "image" {
                return Err(unsupported("HostConfig.Mounts[].ImageOptions"));
            }
            let driver = m
                .volume_options
                .as_ref()
                .and_then(|v| v["DriverConfig"]["Name"].as_str())
                .unwrap_or("");
            if !driver.is_empty() && driver != "local" {
                return Err(unsupported(
                    "HostConfig.Mounts[].VolumeOptions.DriverConfig",
                ));
            }
            let t = m.tmpfs_options.unwrap_or_default();
            if t.options.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(unsupported("HostConfig.Mounts[].TmpfsOptions.Options"));
            }
            mounts.push(crate::create::TypedMount {
                kind: if m.kind.is_empty() {
                    "volume".into()
                } else {
                    m.kind
                },
                source: m.source,
                target: m.target,
                read_only: m.read_only,
                tmpfs_size: Some(t.size_bytes),
                tmpfs_mode: Some(t.mode),
            });
        }
        if h.device_requests.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported("HostConfig.DeviceRequests"));
        }
        if h.blkio_weight_device
            .as_ref()
            .is_some_and(|m| !m.is_empty())
        {
            return Err(unsupported("HostConfig.BlkioWeightDevice"));
        }
        // Another OCI runtime (see crate::ociruntime); resolved, or refused, by the create.
        let runtime = (!h.runtime.is_empty()).then(|| h.runtime.clone());
        if h.cpu_realtime_period != 0 || h.cpu_realtime_runtime != 0 {
            return Err(unsupported(
                "HostConfig.CpuRealtimePeriod/CpuRealtimeRuntime",
            ));
        }
        if h.storage_opt.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported("HostConfig.StorageOpt"));
        }
        if !h.volume_driver.is_empty() && h.volume_driver != "local" {
            return Err(unsupported("HostConfig.VolumeDriver"));
        }
        if self.network_disabled == Some(true) {
            return Err(unsupported("NetworkDisabled (use NetworkMode none)"));
        }
        let mut log_driver = None;
        let mut log_opts = Vec::new();
        if let Some(l) = h.log_config {
            log_driver = opt_str(l.kind);
            for (k, v) in l.config.unwrap_or_default() {
                log_opts.push(format!("{k}={v}"));
            }
        }
        let env: Vec<String> = some_nonempty(self.env)
            .into_iter()
            .filter(|e| e.contains('='))
            .collect();
        let network = match h.network_mode.as_str() {
            "" | "default" => None,
            m => Some(m.to_string()),
        };
        let mut port_bindings = BTreeMap::new();
        for (k, v) in h.port_bindings.unwrap_or_default() {
            port_bindings.insert(k, v.unwrap_or_default());
        }
        let ip = self
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .and_then(|m| m.values().next())
            .and_then(|ep| ep["IPAMConfig"]["IPv4Address"].as_str())
            .filter(|s| !s.is_empty())
            .map(String::from);
        let throttle = |v: Option<Vec<ThrottleBody>>| -> Vec<String> {
            v.unwrap_or_default()
                .into_iter()
                .map(|t| format!("{}:{}", t.path, t.rate))
                .collect()
        };
        let host = crate::hostflags::HostFlags {
            memory_swappiness: h.memory_swappiness,
            cpu_shares: (h.cpu_shares != 0).then_some(h.cpu_shares),
            cpu_period: (h.cpu_period != 0).then_some(h.cpu_period),
            cpu_quota: (h.cpu_quota != 0).then_some(h.cpu_quota),
            cpuset_cpus: opt_str(h.cpuset_cpus),
            cpuset_mems: opt_str(h.cpuset_mems),
            oom_kill_disable: h.oom_kill_disable.unwrap_or(false),
            oom_score_adj: (h.oom_score_adj != 0).then_some(h.oom_score_adj),
            sysctls: h
                .sysctls
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            group_add: some_nonempty(h.group_add),
            pid: opt_str(h.pid_mode),
            ipc: opt_str(h.ipc_mode),
            uts: opt_str(h.uts_mode),
            userns: opt_str(h.userns_mode),
            cgroupns: opt_str(h.cgroupns_mode),
            annotations: h
                .annotations
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            devices: h
                .devices
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    let mut s = d.path_on_host;
                    if !d.path_in_container.is_empty() {
                        s = format!("{s}:{}", d.path_in_container);
                        if !d.cgroup_permissions.is_empty() {
                            s = format!("{s}:{}", d.cgroup_permissions);
                        }
                    }
                    s
                })
                .collect(),
            device_cgroup_rules: some_nonempty(h.device_cgroup_rules),
            device_read_bps: throttle(h.blkio_device_read_bps),
            device_write_bps: throttle(h.blkio_device_write_bps),
            device_read_iops: throttle(h.blkio_device_read_iops),
            device_write_iops: throttle(h.blkio_device_write_iops),
            memory_swap_bytes: (h.memory_swap != 0).then_some(h.memory_swap),
            memory_reservation_bytes: (h.memory_reservation != 0).then_some(h.memory_reservation),
            shm_size_bytes: Some(h.shm_size),
            ..Default::default()
        };
        let tmpfs = h
            .tmpfs
            .unwrap_or_default()
            .into_iter()
            .map(|(d, o)| if o.is_empty() { d } else { format!("{d}:{o}") })
            .collect();
        Ok(CreateRequest {
            image: self.image,
            name: name.filter(|n| !n.is_empty()),
            cmd: self.cmd.unwrap_or_default(),
            entrypoint: None,
            env,
            workdir: opt_str(self.working_dir),
            user: opt_str(self.user),
            hostname: opt_str(self.hostname),
            tty: self.tty,
            interactive: self.open_stdin,
            attach: self.attach_stdout || self.attach_stderr,
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            volumes: some_nonempty(h.binds),
            tmpfs,
            volumes_from: some_nonempty(h.volumes_from),
            auto_remove: h.auto_remove,
            read_only: h.readonly_rootfs,
            privileged: h.privileged,
            cap_add: some_nonempty(h.cap_add),
            cap_drop: some_nonempty(h.cap_drop),
            security_opt: some_nonempty(h.security_opt),
            blkio_weight: (h.blkio_weight != 0).then_some(h.blkio_weight),
            host,
            stop_signal: self.stop_signal.filter(|s| !s.is_empty()),
            network,
            publish_all: h.publish_all_ports,
            expose: self.exposed_ports.unwrap_or_default().into_keys().collect(),
            ip,
            mac_address: self.mac_address.filter(|m| !m.is_empty()),
            add_host: some_nonempty(h.extra_hosts),
            dns: some_nonempty(h.dns),
            dns_search: some_nonempty(h.dns_search),
            dns_option: some_nonempty(h.dns_options),
            cgroup_parent: opt_str(h.cgroup_parent),
            log_driver,
            log_opts,
            init: h.init.unwrap_or(false),
            typed: Typed {
                entrypoint: self.entrypoint.map(|ep| {
                    if ep.len() == 1 && ep[0].is_empty() {
                        Vec::new()
                    } else {
                        ep
                    }
                }),
                memory: Some(h.memory),
                nano_cpus: Some(h.nano_cpus),
                pids_limit: h.pids_limit,
                stop_timeout: self.stop_timeout,
                restart: h.restart_policy,
                port_bindings: Some(port_bindings),
                ulimits: h.ulimits,
                healthcheck: self.healthcheck,
                attach: Some((self.attach_stdin, self.attach_stdout, self.attach_stderr)),
                stdin_once: Some(self.stdin_once),
                domainname: opt_str(self.domainname),
                mounts: Some(mounts),
            },
            runtime,
            ..Default::default()
        })
    }
}

/// One published port of a [`ContainerSummary`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct PortSummary {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// The API's `ContainerSummary` (`GET /containers/json`, `docker ps`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<PortSummary>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: Value,
    pub network_settings: Value,
    pub mounts: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
}

/// Whether `c` (with health status `health`) passes one `ps` filter `key=value` (docker's keys:
/// health, name, id, status, label, ancestor, exited, volume, network).
pub fn container_matches(
    c: &crate::Container,
    health: Option<&str>,
    k: &str,
    v: &str,
) -> Result<bool> {
    Ok(match k {
        "health" => {
            use crate::health::{HEALTHY, NONE, STARTING, UNHEALTHY};
            if ![STARTING, HEALTHY, UNHEALTHY, NONE].contains(&v) {
                return Err(Error::Invalid(format!(
                    "Unrecognised filter value for health: {v}"
                )));
            }
            health.unwrap_or(NONE) == v
        }
        "name" => c.name.contains(v.trim_start_matches('/')),
        "id" => c.id.starts_with(v),
        "status" => {
            let ok = [
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ];
            if !ok.contains(&v) {
                return Err(Error::Invalid(format!(
                    "invalid filter 'status={v}': must be one of created, restarting, running, removing, paused, exited, dead"
                )));
            }
            c.state.status == v
        }
        "label" => match v.split_once('=') {
            Some((lk, lv)) => c.config.labels.get(lk).map(String::as_str) == Some(lv),
            None => c.config.labels.contains_key(v),
        },
        "ancestor" => {
            let norm = |s: &str| skiff_image::names::normalize(s).unwrap_or_else(|_| s.to_string());
            let hex = c.image.trim_start_matches("sha256:");
            norm(&c.image_ref) == norm(v)
                || c.image_ref == v
                || (v.len() >= 4 && hex.starts_with(v.trim_start_matches("sha256:")))
        }
        "exited" => c.state.status == "exited" && c.state.exit_code.to_string() == v,
        "volume" => c.mounts.iter().any(|m| m.name == v || m.destination == v),
        "network" => crate::network::network_name(c) == v,
        _ => return Err(Error::Invalid(format!("invalid filter '{k}'"))),
    })
}

/// docker's container list: newest first; stopped ones only with `all` (or a `status` filter);
/// filters with the same key ORed (labels ANDed, as docker), different keys ANDed. Each with its health status.
pub fn list_containers(
    e: &crate::Engine,
    all: bool,
    filters: &[(String, String)],
) -> Result<Vec<(crate::Container, Option<String>)>> {
    let mut cs = e.list()?;
    cs.reverse();
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        const KEYS: [&str; 9] = [
            "health", "name", "id", "status", "label", "ancestor", "exited", "volume", "network",
        ];
        if !KEYS.contains(&k.as_str()) {
            return Err(Error::Invalid(format!("invalid filter '{k}'")));
        }
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    let mut out = Vec::new();
    for c in cs {
        if !all && !c.is_active() && !by_key.contains_key("status") {
            continue;
        }
        let health = e.health(&c).map(|h| h.status);
        let mut ok = true;
        for (k, vs) in &by_key {
            // docker: labels must all match (`MatchKVList`); other keys match any value.
            let mut hits = 0;
            for v in vs {
                hits += usize::from(container_matches(&c, health.as_deref(), k, v)?);
            }
            ok &= if *k == "label" {
                hits == vs.len()
            } else {
                hits > 0
            };
        }
        if ok {
            out.push((c, health));
        }
    }
    Ok(out)
}

/// The API's summary of `c`.
pub fn container_summary(
    e: &crate::Engine,
    c: &crate::Container,
    health: Option<&str>,
) -> ContainerSummary {
    let eps = if crate::network::is_bridge(&c.host_config.network_mode) {
        e.net()
            .and_then(|n| n.endpoints(&c.id).map_err(crate::network::net_err))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    summary(c, health, &eps)
}

/// The API's summaries of `rows` (from [`list_containers`]), in order: the endpoints of all of
/// them are read in one query (one per container otherwise, each reading daemon.json).
pub fn container_summaries(
    e: &crate::Engine,
    rows: &[(crate::Container, Option<String>)],
) -> Vec<ContainerSummary> {
    let mut eps: BTreeMap<String, Vec<skiff_net::Endpoint>> = BTreeMap::new();
    if rows
        .iter()
        .any(|(c, _)| crate::network::is_bridge(&c.host_config.network_mode))
    {
        let all = e
            .net()
            .and_then(|n| n.all_endpoints().map_err(crate::network::net_err))
            .unwrap_or_default();
        for ep in all {
            eps.entry(ep.container.clone()).or_default().push(ep);
        }
    }
    rows.iter()
        .map(|(c, h)| {
            let mine = if crate::network::is_bridge(&c.host_config.network_mode) {
                eps.get(&c.id).map(Vec::as_slice).unwrap_or_default()
            } else {
                &[]
            };
            summary(c, h.as_deref(), mine)
        })
        .collect()
}

fn summary(
    c: &crate::Container,
    health: Option<&str>,
    eps: &[skiff_net::Endpoint],
) -> ContainerSummary {
    let mut ports = Vec::new();
    for p in eps.iter().flat_map(|ep| &ep.ports) {
        ports.push(PortSummary {
            ip: Some(p.host_ip.to_string()),
            private_port: p.port,
            public_port: Some(p.host_port),
            kind: p.proto.to_string(),
        });
    }
    let mut command = vec![c.path.clone()];
    command.extend(c.args.iter().cloned());
    let settings = crate::inspect::network_settings(c);
    ContainerSummary {
        id: c.id.clone(),
        names: vec![format!("/{}", c.name)],
        image: c.image_ref.clone(),
        image_id: c.image.clone(),
        command: command.join(" "),
        created: skiff_image::time::parse_rfc3339(&c.created).unwrap_or(0),
        ports,
        labels: c.config.labels.clone(),
        state: c.state.status.clone(),
        status: crate::ops::status_text(c, health),
        host_config: serde_json::json!({
            "NetworkMode": crate::inspect::network_name(&c.host_config.network_mode)
        }),
        // The endpoints' addresses and gateways as inspect shows them (testcontainers reads
        // the gateway from the list).
        network_settings: if eps.is_empty() {
            serde_json::json!({ "Networks": settings["Networks"] })
        } else {
            serde_json::json!({ "Networks": crate::inspect::endpoint_networks(c, eps) })
        },
        mounts: c
            .mounts
            .iter()
            .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
            .collect(),
        size_rw: None,
        size_root_fs: None,
    }
}

/// Logs docker's image event; best effort.
pub fn image_event(store: &skiff_image::Store, action: &str, id: &skiff_image::Digest, name: &str) {
    let ev = crate::events::Event::new("image", action, &id.to_string()).attr("name", name);
    let _ = crate::events::emit(store.root(), &ev);
}

/// `rmi` / `DELETE /images/{name}`: untags by name, deletes the image when no name is left and
/// no container uses it (docker's conflicts unless `force`). Returns docker's
/// `("Untagged", name)` / `("Deleted", id)` lines. Content is left for the caller's gc.
pub fn remove_image(
    store: &skiff_image::Store,
    s: &str,
    force: bool,
) -> Result<Vec<(&'static str, String)>> {
    use skiff_image::names::{self, familiar};
    let mut out = Vec::new();
    let img = store.resolve(s)?;
    // Containers keep their image (docker: a conflict unless forced; forced only untags).
    let users = crate::db::containers_using_image(store.root(), &img.id.to_string())?;
    let by_name = names::normalize(s).ok().filter(|n| img.tags.contains(n));
    let last_name = by_name.is_none() || img.tags.len() <= 1;
    if let (Some(c), true, false) = (users.first(), last_name, force) {
        return Err(Error::Image(skiff_image::Error::Conflict(format!(
            "conflict: unable to remove repository reference \"{s}\" (must force) - container {} is using its referenced image {}",
            &c[..12.min(c.len())],
            img.id.short()
        ))));
    }
    // By name: untag; delete only when no name is left.
    if let Some(n) = by_name {
        store.untag(&n)?;
        image_event(store, "untag", &img.id, &img.id.to_string());
        out.push(("Untagged", familiar(&n)));
        if img.tags.len() > 1 {
            return Ok(out);
        }
    } else {
        if img.tags.len() > 1 && !force {
            return Err(Error::Image(skiff_image::Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                img.id.short()
            ))));
        }
        for t in &img.tags {
            store.untag(t)?;
            image_event(store, "untag", &img.id, &img.id.to_string());
            out.push(("Untagged", familiar(t)));
        }
    }
    for rd in &img.repo_digests {
        let (r, d) = rd.split_once('@').unwrap_or((rd, ""));
        out.push(("Untagged", format!("{}@{d}", familiar(r))));
    }
    if !users.is_empty() {
        return Ok(out);
    }
    store.delete_image(&img.id)?;
    image_event(store, "delete", &img.id, &img.id.to_string());
    out.push(("Deleted", img.id.to_string()));
    Ok(out)
}

/// The host's total CPU time in nanoseconds (docker's `system_cpu_usage`: the `cpu` line of
/// /proc/stat in clock ticks of 10 ms).
fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("cpu "))?;
            Some(
                l.split_whitespace()
                    .skip(1)
                    .take(7)
                    .filter_map(|x| x.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000,
            )
        })
        .unwrap_or(0)
}

/// The CPU half of docker's stats JSON.
fn cpu_stats_json(s: &skiff_cgroups::stats::Stats, system: u64) -> Value {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    serde_json::json!({
        "cpu_usage": {
            "total_usage": s.cpu.usage.total,
            "percpu_usage": s.cpu.usage.percpu,
            "usage_in_kernelmode": s.cpu.usage.kernel,
            "usage_in_usermode": s.cpu.usage.user,
        },
        "system_cpu_usage": system,
        "online_cpus": ncpu,
        "throttling_data": {
            "periods": s.cpu.throttling.periods,
            "throttled_periods": s.cpu.throttling.throttled_periods,
            "throttled_time": s.cpu.throttling.throttled_time,
        },
    })
}

/// One sample of a container's stats in docker's JSON (`GET /containers/{id}/stats`), with
/// `precpu_stats` from `prev` (a previous sample's `cpu_stats`, or empty).
pub fn container_stats_json(
    e: &crate::Engine,
    c: &crate::Container,
    prev: Option<&Value>,
) -> Result<Value> {
    let s = e.stats(c)?;
    let system = system_cpu_ns();
    let m = &s.memory;
    let blk: Vec<Value> = s
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|b| serde_json::json!({"major": b.major, "minor": b.minor, "op": b.op, "value": b.value}))
        .collect();
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |k| k * 1024);
    let limit = if m.usage.limit == 0 || m.usage.limit > host {
        host
    } else {
        m.usage.limit
    };
    Ok(serde_json::json!({
        "read": crate::proc::now(),
        "preread": if prev.is_some() { Value::from(crate::proc::now()) } else { Value::from("0001-01-01T00:00:00Z") },
        "name": format!("/{}", c.name),
        "id": c.id,
        "pids_stats": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio_stats": {"io_service_bytes_recursive": blk},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats_json(&s, system),
        "precpu_stats": prev.cloned().unwrap_or_else(|| serde_json::json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}})),
        "memory_stats": {
            "usage": m.usage.usage,
            "max_usage": m.usage.max,
            "limit": limit,
            "stats": m.raw,
        },
    }))
}
