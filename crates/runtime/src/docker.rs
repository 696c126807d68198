//! Docker's container defaults as an OCI spec: the function the engine calls to turn `skiff run`
//! flags into a config.json. It owns the default capability set, mounts, masked and read-only
//! paths, device rules, namespaces and the security options (`--privileged`, `--cap-add/--cap-drop`,
//! `--security-opt seccomp=…|no-new-privileges|apparmor=…|label=…`, `--read-only`); it knows nothing
//! of images, volumes or networks beyond the mounts and namespace paths the caller hands it.

use oci_spec::runtime::{Mount, Spec};
use serde_json::json;

/// An invalid option given to [`docker_spec`]; the message names the option and the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DockerSpecError(pub String);

/// How the container gets its network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkNs {
    /// A new, empty network namespace (`--network none`, and the default until bridges exist).
    #[default]
    New,
    /// The host's network namespace (`--network host`): no network namespace entry.
    Host,
    /// Join an existing namespace by path (`--network container:X`, or a bridge netns made by skiff-net).
    Path(String),
}

/// The `skiff run`/`create` options that shape the OCI spec, already parsed and resolved against
/// the image config by the engine (args = entrypoint + cmd, env merged, user resolved to ids).
#[derive(Debug, Clone, Default)]
pub struct DockerSpecOpts {
    /// process.args (non-empty).
    pub args: Vec<String>,
    /// process.env, `KEY=VALUE`, already merged (image env, then `-e`), PATH included.
    pub env: Vec<String>,
    /// process.cwd (absolute; "/" when the image and `-w` say nothing).
    pub cwd: String,
    /// process.user.uid.
    pub uid: u32,
    /// process.user.gid.
    pub gid: u32,
    /// process.user.additionalGids (`--group-add` and the user's groups from /etc/group).
    pub additional_gids: Vec<u32>,
    /// process.terminal (`-t`).
    pub terminal: bool,
    /// hostname (`-h`, default: the first 12 hex digits of the id).
    pub hostname: String,
    /// `--privileged`: all capabilities, all devices, no seccomp, no masked/read-only paths, rw sysfs.
    pub privileged: bool,
    /// `--read-only`: root.readonly.
    pub read_only: bool,
    /// `--cap-add` (names with or without `CAP_`, any case, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop` (names with or without `CAP_`, any case, or `ALL`).
    pub cap_drop: Vec<String>,
    /// `--security-opt` values verbatim: `seccomp=unconfined`, `seccomp=/path/profile.json`,
    /// `no-new-privileges[:true|false]`, `apparmor=…`, `label=…`, `systempaths=unconfined`.
    pub security_opt: Vec<String>,
    /// Network namespace choice.
    pub network: NetworkNs,
    /// Extra mounts appended after the defaults (volumes, binds, tmpfs, /etc/hosts, /etc/hostname,
    /// /etc/resolv.conf); a mount whose destination equals a default one replaces it.
    pub mounts: Vec<Mount>,
    /// `--ulimit name=soft[:hard]` as (RLIMIT_NAME, soft, hard).
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap` in bytes (-1 unlimited).
    pub memory_swap: Option<i64>,
    /// `--cpus` as a fraction of CPUs (quota = cpus * period, period 100000).
    pub cpus: Option<f64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--sysctl k=v`.
    pub sysctls: Vec<(String, String)>,
    /// `linux.cgroupsPath` (the engine picks e.g. `/skiff/<id>`).
    pub cgroups_path: Option<String>,
    /// OCI annotations.
    pub annotations: Vec<(String, String)>,
    /// Use a private cgroup namespace (Docker's default on cgroup v2 hosts; host on v1).
    pub cgroupns_private: bool,
    /// `--ipc host`: share the host IPC namespace.
    pub ipc_host: bool,
    /// `--pid host`: share the host PID namespace.
    pub pid_host: bool,
    /// `--uts host`: share the host UTS namespace.
    pub uts_host: bool,
}

/// Docker's 14 default capabilities (moby's `caps.DefaultCapabilities`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Builds the OCI spec for a container from Docker-style options: Docker's defaults (capabilities,
/// default seccomp profile, masked and read-only paths, default devices) adjusted by the options.
pub fn docker_spec(o: &DockerSpecOpts) -> Result<Spec, DockerSpecError> {
    if o.args.is_empty() {
        return Err(DockerSpecError(
            "no command specified: the image has no Entrypoint or Cmd and none was given".into(),
        ));
    }
    let caps: Vec<&str> = DEFAULT_CAPS.to_vec();
    let mut ns = vec![json!({"type": "mount"})];
    if !o.pid_host {
        ns.push(json!({"type": "pid"}));
    }
    if !o.ipc_host {
        ns.push(json!({"type": "ipc"}));
    }
    if !o.uts_host {
        ns.push(json!({"type": "uts"}));
    }
    match &o.network {
        NetworkNs::New => ns.push(json!({"type": "network"})),
        NetworkNs::Host => {}
        NetworkNs::Path(p) => ns.push(json!({"type": "network", "path": p})),
    }
    if o.cgroupns_private {
        ns.push(json!({"type": "cgroup"}));
    }
    let v = json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": o.terminal,
            "user": {"uid": o.uid, "gid": o.gid, "additionalGids": o.additional_gids},
            "args": o.args,
            "env": o.env,
            "cwd": if o.cwd.is_empty() { "/" } else { o.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        },
        "root": {"path": "rootfs", "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {
            "namespaces": ns,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                            "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    let mut spec: Spec = serde_json::from_value(v)
        .map_err(|e| DockerSpecError(format!("internal: default spec does not parse: {e}")))?;
    if !o.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in &o.mounts {
            mounts.retain(|d| d.destination() != m.destination());
            mounts.push(m.clone());
        }
        spec.set_mounts(Some(mounts));
    }
    if let Some(p) = &o.cgroups_path {
        if let Some(l) = spec.linux_mut() {
            l.set_cgroups_path(Some(p.into()));
        }
    }
    // The remaining options (privileged, cap add/drop, security_opt incl. the default seccomp
    // profile, ulimits, resources, sysctls, oom_score_adj, annotations) are applied by the
    // security work of issue 5; until then they are accepted and ignored here.
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let o = DockerSpecOpts {
            args: vec!["sh".into()],
            hostname: "abc".into(),
            ..Default::default()
        };
        let s = docker_spec(&o).unwrap();
        crate::config::parse(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(docker_spec(&DockerSpecOpts::default()).is_err());
    }
}
