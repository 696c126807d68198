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

/// Docker's device cgroup rules for an unprivileged container: deny everything, allow mknod of any
/// character or block device, and read/write/mknod on the default devices (null, zero, full,
/// random, urandom, tty, console, ptmx, pts/*, net/tun). As (type, major, minor, access); `None`
/// is the wildcard.
pub const DEFAULT_DEVICE_RULES: [(&str, Option<i64>, Option<i64>, &str); 12] = [
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", Some(1), Some(3), "rwm"),
    ("c", Some(1), Some(5), "rwm"),
    ("c", Some(1), Some(7), "rwm"),
    ("c", Some(1), Some(8), "rwm"),
    ("c", Some(1), Some(9), "rwm"),
    ("c", Some(5), Some(0), "rwm"),
    ("c", Some(5), Some(1), "rwm"),
    ("c", Some(5), Some(2), "rwm"),
    ("c", Some(136), None, "rwm"),
    ("c", Some(10), Some(200), "rwm"),
];

/// Paths masked in a container unless `--privileged` or `--security-opt systempaths=unconfined`
/// (docker 28's list, which `inspect` shows as `HostConfig.MaskedPaths`).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only in a container under the same conditions (`HostConfig.ReadonlyPaths`).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's smallest accepted `--memory` (6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// How seccomp is configured by `--security-opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SeccompChoice {
    Default,
    Unconfined,
    Profile(String),
}

/// `--security-opt` values, parsed.
#[derive(Debug, Clone)]
struct SecurityOpts {
    seccomp: SeccompChoice,
    no_new_privileges: bool,
    apparmor: Option<String>,
    selinux_label: Option<String>,
    systempaths_unconfined: bool,
}

fn bad_opt(opt: &str, why: impl std::fmt::Display) -> DockerSpecError {
    DockerSpecError(format!("invalid --security-opt {opt:?}: {why}"))
}

/// Parse `--security-opt` values as Docker does: `key=value` (or the deprecated `key:value`),
/// `no-new-privileges` alone, `label=disable`.
fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, DockerSpecError> {
    let mut s = SecurityOpts {
        seccomp: SeccompChoice::Default,
        no_new_privileges: false,
        apparmor: None,
        selinux_label: None,
        systempaths_unconfined: false,
    };
    // SELinux label parts: user, role, type, level (Docker's container defaults).
    let mut label = ["system_u", "system_r", "container_t", "s0"];
    let mut label_given = false;
    let mut label_disabled = false;
    for opt in opts {
        if opt == "no-new-privileges" {
            s.no_new_privileges = true;
            continue;
        }
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(|| bad_opt(opt, "expected key=value"))?;
        match k {
            "seccomp" => {
                s.seccomp = match v {
                    "" => return Err(bad_opt(opt, "empty seccomp profile")),
                    "unconfined" => SeccompChoice::Unconfined,
                    "builtin" | "default" => SeccompChoice::Default,
                    path => SeccompChoice::Profile(path.to_owned()),
                }
            }
            "no-new-privileges" => {
                s.no_new_privileges = match v {
                    "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
                    "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
                    _ => return Err(bad_opt(opt, "no-new-privileges takes true or false")),
                }
            }
            "apparmor" => {
                if v.is_empty() {
                    return Err(bad_opt(opt, "empty AppArmor profile"));
                }
                s.apparmor = (v != "unconfined").then(|| v.to_owned());
            }
            "label" => {
                if v == "disable" {
                    label_disabled = true;
                    continue;
                }
                let (lk, lv) = v.split_once(':').ok_or_else(|| {
                    bad_opt(opt, "expected label=user:|role:|type:|level:|disable")
                })?;
                let slot = match lk {
                    "user" => 0,
                    "role" => 1,
                    "type" => 2,
                    "level" => 3,
                    // The file label applies to volumes, not to the process.
                    "filetype" => continue,
                    _ => return Err(bad_opt(opt, format!("unknown label key {lk:?}"))),
                };
                if lv.is_empty() {
                    return Err(bad_opt(opt, format!("empty label {lk}")));
                }
                label[slot] = lv;
                label_given = true;
            }
            "systempaths" => {
                if v != "unconfined" {
                    return Err(bad_opt(opt, "systempaths only takes unconfined"));
                }
                s.systempaths_unconfined = true;
            }
            _ => return Err(bad_opt(opt, format!("unknown option {k:?}"))),
        }
    }
    if label_given && !label_disabled {
        // The level may itself contain ':' (s0:c1,c2); join the four parts.
        s.selinux_label = Some(label.join(":"));
    }
    Ok(s)
}

/// Checks `--security-opt` values without building a spec: the keys and values docker takes,
/// and for `seccomp=PATH` that the profile file can be read and parsed. The engine calls this
/// before it records a container, so a bad option never leaves one behind.
pub fn check_security_opts(opts: &[String]) -> Result<(), DockerSpecError> {
    if let SeccompChoice::Profile(path) = parse_security_opts(opts)?.seccomp {
        let text = std::fs::read(&path)
            .map_err(|e| DockerSpecError(format!("--security-opt seccomp={path}: {e}")))?;
        let bad = |e: crate::seccomp_profile::ProfileError| {
            DockerSpecError(format!("--security-opt seccomp={path}: {e}"))
        };
        let p = crate::seccomp_profile::parse(&text).map_err(bad)?;
        // Resolved for docker's default capabilities: the rules the container's own set picks
        // are resolved again when its spec is built.
        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        crate::seccomp_profile::resolve(&p, &caps, &crate::seccomp_profile::Host::current())
            .map_err(bad)?;
    }
    Ok(())
}

/// Every capability this kernel knows (up to /proc/sys/kernel/cap_last_cap) that the calling
/// process's bounding set still holds (a host may withhold some, e.g. CAP_SYS_RESOURCE, and no
/// container can get those), as `CAP_*` names in kernel order: the set `--privileged` and
/// `--cap-add ALL` grant.
pub fn all_caps() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(40);
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut v: Vec<caps::Capability> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= last && bounding.contains(c))
        .collect();
    v.sort_by_key(|c| c.index());
    v.into_iter().map(|c| c.to_string()).collect()
}

/// Normalize a `--cap-add`/`--cap-drop` name: any case, with or without `CAP_`; `ALL` stays `ALL`.
pub fn normalize_cap(flag: &str, name: &str) -> Result<String, DockerSpecError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    match full.parse::<caps::Capability>() {
        Ok(_) => Ok(full),
        Err(_) => Err(DockerSpecError(format!(
            "{flag}: unknown capability {name:?}"
        ))),
    }
}

/// The container's capability set after `--privileged`, `--cap-add` and `--cap-drop`, with
/// Docker's precedence: privileged grants all; `--cap-add ALL` grants all but the dropped ones;
/// `--cap-drop ALL` keeps only the added ones; otherwise the defaults minus drops plus adds.
pub fn effective_caps(
    privileged: bool,
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<Vec<String>, DockerSpecError> {
    let add = cap_add
        .iter()
        .map(|c| normalize_cap("--cap-add", c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = cap_drop
        .iter()
        .map(|c| normalize_cap("--cap-drop", c))
        .collect::<Result<Vec<_>, _>>()?;
    let all = all_caps();
    let has = |l: &[String], c: &str| l.iter().any(|x| x == c);
    let mut out: Vec<String> = if privileged {
        all
    } else if has(&add, "ALL") {
        all.into_iter().filter(|c| !has(&drop, c)).collect()
    } else if has(&drop, "ALL") {
        add
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !has(&drop, c))
            .collect();
        v.extend(add);
        v
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    Ok(out)
}

/// Map a `--ulimit` name (`nofile`, `RLIMIT_NOFILE`, any case) to its RLIMIT_* name.
pub fn rlimit_name(name: &str) -> Result<String, DockerSpecError> {
    const KNOWN: [&str; 16] = [
        "AS",
        "CORE",
        "CPU",
        "DATA",
        "FSIZE",
        "LOCKS",
        "MEMLOCK",
        "MSGQUEUE",
        "NICE",
        "NOFILE",
        "NPROC",
        "RSS",
        "RTPRIO",
        "RTTIME",
        "SIGPENDING",
        "STACK",
    ];
    let up = name.trim().to_ascii_uppercase();
    let short = up.strip_prefix("RLIMIT_").unwrap_or(&up);
    if KNOWN.contains(&short) {
        Ok(format!("RLIMIT_{short}"))
    } else {
        Err(DockerSpecError(format!("--ulimit: unknown limit {name:?}")))
    }
}

/// The sysctls of the IPC namespace docker accepts by name (besides `fs.mqueue.*`).
pub const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Check one `--sysctl` against the container's namespaces the way Docker does: only namespaced
/// keys, `net.*` only with a private network namespace, IPC keys only with a private IPC namespace,
/// `kernel.hostname`/`kernel.domainname` only with a private UTS namespace.
pub fn validate_sysctl(key: &str, o: &DockerSpecOpts) -> Result<(), DockerSpecError> {
    let bad = |why: &str| Err(DockerSpecError(format!("--sysctl {key:?}: {why}")));
    if key.contains(['/', '=']) || key.split('.').any(|p| p.is_empty() || p == "..") {
        return bad("not a sysctl name");
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        if o.ipc_host {
            return bad("not allowed with the host's IPC namespace (--ipc host)");
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if o.network == NetworkNs::Host {
            return bad("not allowed with the host's network namespace (--network host)");
        }
        return Ok(());
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if o.uts_host {
            return bad("not allowed with the host's UTS namespace (--uts host)");
        }
        return Ok(());
    }
    bad("not a namespaced sysctl; it would change the host")
}

/// The host's device nodes under /dev (what `--privileged` hands the container), skipping the
/// per-container trees Docker skips (pts, shm, mqueue, fd) and /dev/console.
pub fn host_devices() -> Vec<serde_json::Value> {
    fn walk(dir: &std::path::Path, out: &mut Vec<serde_json::Value>) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            let name = e.file_name();
            if ft.is_dir() {
                if ![".lxc", ".lxd-mounts", ".udev", "pts", "shm", "mqueue", "fd"]
                    .iter()
                    .any(|n| name == *n)
                {
                    walk(&path, out);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if path == std::path::Path::new("/dev/console") {
                continue;
            }
            out.push(json!({
                "path": path, "type": typ,
                "major": nix::sys::stat::major(md.rdev()), "minor": nix::sys::stat::minor(md.rdev()),
                "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()
            }));
        }
    }
    let mut out = Vec::new();
    walk(std::path::Path::new("/dev"), &mut out);
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

/// True when the host accounts swap in the memory cgroup (v1 memsw or v2 memory.swap.max), so a
/// memory+swap limit can be applied; Docker drops the swap limit otherwise.
fn swap_limit_supported() -> bool {
    let p = std::path::Path::new;
    p("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || (p("/sys/fs/cgroup/cgroup.controllers").exists()
            && std::fs::read_to_string("/proc/self/cgroup")
                .map(|s| s.contains("0::"))
                .unwrap_or(false)
            && std::fs::read_dir("/sys/fs/cgroup")
                .map(|d| {
                    d.flatten()
                        .any(|e| e.path().join("memory.swap.max").exists())
                })
                .unwrap_or(false))
}

/// `linux.resources` for the options (memory, swap, CPU, pids) plus the device rules.
fn resources(o: &DockerSpecOpts, privileged: bool) -> Result<serde_json::Value, DockerSpecError> {
    let mut r = serde_json::Map::new();
    let devices: Vec<serde_json::Value> = if privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        std::iter::once(json!({"allow": false, "access": "rwm"}))
            .chain(DEFAULT_DEVICE_RULES.iter().map(|(t, ma, mi, acc)| {
                let mut d = json!({"allow": true, "type": t, "access": acc});
                if let Some(ma) = ma {
                    d["major"] = (*ma).into();
                }
                if let Some(mi) = mi {
                    d["minor"] = (*mi).into();
                }
                d
            }))
            .collect()
    };
    r.insert("devices".into(), devices.into());
    let mut mem = serde_json::Map::new();
    if let Some(m) = o.memory.filter(|m| *m != 0) {
        if m < MIN_MEMORY {
            return Err(DockerSpecError(format!(
                "--memory {m}: the minimum memory limit is 6MB"
            )));
        }
        mem.insert("limit".into(), m.into());
    }
    match o.memory_swap.filter(|s| *s != 0) {
        // Unlimited swap without a memory limit changes nothing (Docker accepts it).
        Some(-1) if o.memory.is_none_or(|m| m == 0) => {}
        Some(s) => {
            let Some(m) = o.memory.filter(|m| *m != 0) else {
                return Err(DockerSpecError(format!(
                    "--memory-swap {s}: set --memory too when using --memory-swap"
                )));
            };
            if s != -1 && s < m {
                return Err(DockerSpecError(format!(
                    "--memory-swap {s}: must be at least --memory ({m}) or -1"
                )));
            }
            if swap_limit_supported() {
                mem.insert("swap".into(), s.into());
            }
        }
        None => {
            // Docker's default: as much swap as memory (memory+swap = 2 x memory).
            if let Some(m) = o.memory.filter(|m| *m > 0) {
                if swap_limit_supported() {
                    mem.insert("swap".into(), m.saturating_mul(2).into());
                }
            }
        }
    }
    if !mem.is_empty() {
        r.insert("memory".into(), mem.into());
    }
    let mut cpu = serde_json::Map::new();
    if let Some(c) = o.cpus.filter(|c| *c != 0.0) {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !c.is_finite() || !(0.01..=n as f64).contains(&c) {
            return Err(DockerSpecError(format!(
                "--cpus {c}: the range is 0.01 to {n}.00, as there are only {n} CPUs available"
            )));
        }
        let period: u64 = 100_000;
        cpu.insert("period".into(), period.into());
        cpu.insert("quota".into(), ((c * period as f64).round() as i64).into());
    }
    if let Some(s) = o.cpu_shares.filter(|s| *s != 0) {
        cpu.insert("shares".into(), s.into());
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), cpu.into());
    }
    // Docker: 0 or a negative limit means unlimited.
    if let Some(p) = o.pids_limit.filter(|p| *p > 0) {
        r.insert("pids".into(), json!({"limit": p}));
    }
    Ok(r.into())
}

/// Builds the OCI spec for a container from Docker-style options: Docker's defaults (capabilities,
/// default seccomp profile, masked and read-only paths, default devices) adjusted by the options.
pub fn docker_spec(o: &DockerSpecOpts) -> Result<Spec, DockerSpecError> {
    if o.args.is_empty() {
        return Err(DockerSpecError(
            "no command specified: the image has no Entrypoint or Cmd and none was given".into(),
        ));
    }
    let sec = parse_security_opts(&o.security_opt)?;
    let caps = effective_caps(o.privileged, &o.cap_add, &o.cap_drop)?;
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
    // Privileged containers get sysfs and the cgroup tree writable, as in Docker.
    let sys_opts: &[&str] = if o.privileged {
        &["nosuid", "noexec", "nodev", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let confined_paths = !o.privileged && !sec.systempaths_unconfined;
    let mut linux = json!({
        "namespaces": ns,
        "resources": resources(o, o.privileged)?,
    });
    if confined_paths {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if o.privileged {
        linux["devices"] = host_devices().into();
    }
    let mut sysctl = serde_json::Map::new();
    if o.network != NetworkNs::Host {
        // Docker's defaults for a private network namespace: unprivileged ICMP echo sockets and
        // binding low ports need no capability (the namespace bounds both).
        // In a user namespace (rootless) the range must hold only gids it maps.
        let top = if crate::util::is_real_root() {
            2147483647
        } else {
            crate::util::mapped_gid_top()
        };
        sysctl.insert(
            "net.ipv4.ping_group_range".into(),
            format!("0 {top}").into(),
        );
        sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
    }
    for (k, v) in &o.sysctls {
        validate_sysctl(k, o)?;
        sysctl.insert(k.clone(), v.clone().into());
    }
    if !sysctl.is_empty() {
        linux["sysctl"] = sysctl.into();
    }
    if let Some(p) = &o.cgroups_path {
        linux["cgroupsPath"] = p.clone().into();
    }
    let mut rlimits: Vec<(String, u64, u64)> = Vec::new();
    for (name, soft, hard) in &o.ulimits {
        let n = rlimit_name(name)?;
        if soft > hard {
            return Err(DockerSpecError(format!(
                "--ulimit {name}: soft limit {soft} is above the hard limit {hard}"
            )));
        }
        rlimits.retain(|r| r.0 != n);
        rlimits.push((n, *soft, *hard));
    }
    let mut process = json!({
        "terminal": o.terminal,
        "user": {"uid": o.uid, "gid": o.gid, "additionalGids": o.additional_gids},
        "args": o.args,
        "env": o.env,
        "cwd": if o.cwd.is_empty() { "/" } else { o.cwd.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": sec.no_new_privileges,
    });
    if !rlimits.is_empty() {
        process["rlimits"] = rlimits
            .iter()
            .map(|(t, s, h)| json!({"type": t, "soft": s, "hard": h}))
            .collect::<Vec<_>>()
            .into();
    }
    if let Some(adj) = o.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(DockerSpecError(format!(
                "--oom-score-adj {adj}: the range is [-1000, 1000]"
            )));
        }
        process["oomScoreAdj"] = adj.into();
    }
    if !o.privileged {
        // AppArmor and SELinux only as asked: the runtime warns when the host has neither.
        if let Some(a) = &sec.apparmor {
            process["apparmorProfile"] = a.clone().into();
        }
        if let Some(l) = &sec.selinux_label {
            process["selinuxLabel"] = l.clone().into();
        }
    }
    let mut v = json!({
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": "rootfs", "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": sys_opts},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": linux,
    });
    if !o.annotations.is_empty() {
        v["annotations"] = o
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
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
    // Privileged containers get no default profile; a profile file asked for explicitly still applies.
    let seccomp = match &sec.seccomp {
        SeccompChoice::Unconfined => None,
        SeccompChoice::Default if o.privileged => None,
        SeccompChoice::Default => Some(
            crate::seccomp_profile::default_seccomp(&caps)
                .map_err(|e| DockerSpecError(format!("default seccomp profile: {e}")))?,
        ),
        SeccompChoice::Profile(path) => {
            let text = std::fs::read(path)
                .map_err(|e| DockerSpecError(format!("--security-opt seccomp={path}: {e}")))?;
            let p = crate::seccomp_profile::parse(&text)
                .map_err(|e| DockerSpecError(format!("--security-opt seccomp={path}: {e}")))?;
            Some(
                crate::seccomp_profile::resolve(
                    &p,
                    &caps,
                    &crate::seccomp_profile::Host::current(),
                )
                .map_err(|e| DockerSpecError(format!("--security-opt seccomp={path}: {e}")))?,
            )
        }
    };
    if let (Some(sc), Some(l)) = (seccomp, spec.linux_mut()) {
        l.set_seccomp(Some(sc));
    }
    Ok(spec)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts_are_checked_without_a_spec() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_security_opts(&opts(&["seccomp=unconfined", "no-new-privileges"])).is_ok());
        let e = check_security_opts(&opts(&["bogus=1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option"), "{e}");
        let e = check_security_opts(&opts(&["seccomp=/no/such/profile.json"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--security-opt seccomp=/no/such/profile.json: "),
            "{e}"
        );
        let p = std::env::temp_dir().join(format!("skiff-check-opts-{}.json", std::process::id()));
        std::fs::write(&p, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
        let o = opts(&[&format!("seccomp={}", p.display())]);
        assert!(check_security_opts(&o).is_err());
        std::fs::write(&p, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        assert!(check_security_opts(&o).is_ok());
        let _ = std::fs::remove_file(&p);
    }
    use oci_spec::runtime::LinuxSeccompAction;

    fn base() -> DockerSpecOpts {
        DockerSpecOpts {
            args: vec!["sh".into()],
            hostname: "abc".into(),
            ..Default::default()
        }
    }

    fn spec(o: &DockerSpecOpts) -> serde_json::Value {
        let s = docker_spec(o).unwrap();
        let text = serde_json::to_vec(&s).unwrap();
        crate::config::parse(&text).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    fn err(o: &DockerSpecOpts) -> String {
        docker_spec(o).unwrap_err().to_string()
    }

    fn strs(v: &serde_json::Value) -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Capability lists come back from oci-spec's sets in any order.
    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn defaults_parse_and_validate() {
        let v = spec(&base());
        assert_eq!(
            sorted(strs(&v["process"]["capabilities"]["bounding"])),
            sorted(DEFAULT_CAPS.iter().map(|c| c.to_string()).collect())
        );
        assert!(v["process"]["capabilities"]["inheritable"].is_null());
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert!(strs(&v["linux"]["maskedPaths"]).contains(&"/proc/kcore".to_owned()));
        assert!(strs(&v["linux"]["readonlyPaths"]).contains(&"/proc/sys".to_owned()));
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["linux"]["seccomp"]["defaultErrnoRet"], 1);
        assert!(v["linux"]["devices"].is_null());
        assert_eq!(
            v["linux"]["sysctl"]["net.ipv4.ping_group_range"],
            "0 2147483647"
        );
        assert!(docker_spec(&DockerSpecOpts::default()).is_err());
    }

    #[test]
    fn default_device_rules_are_dockers() {
        let v = spec(&base());
        let d = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(d[0], json!({"allow": false, "access": "rwm"}));
        assert_eq!(d[1], json!({"allow": true, "type": "c", "access": "m"}));
        assert_eq!(d[2], json!({"allow": true, "type": "b", "access": "m"}));
        for (ma, mi) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            assert!(
                d.contains(
                    &json!({"allow": true, "type": "c", "major": ma, "minor": mi, "access": "rwm"})
                ),
                "{ma}:{mi}"
            );
        }
        assert!(d.contains(&json!({"allow": true, "type": "c", "major": 136, "access": "rwm"})));
        assert_eq!(d.len(), 13);
    }

    #[test]
    fn cap_add_and_drop_normalize_and_follow_dockers_precedence() {
        let mut o = base();
        o.cap_add = vec!["sys_admin".into(), "CAP_NET_ADMIN".into(), "Chown".into()];
        o.cap_drop = vec!["mknod".into(), "CAP_NET_RAW".into()];
        let v = spec(&o);
        let c = strs(&v["process"]["capabilities"]["effective"]);
        assert!(c.contains(&"CAP_SYS_ADMIN".into()) && c.contains(&"CAP_NET_ADMIN".into()));
        assert!(!c.contains(&"CAP_MKNOD".into()) && !c.contains(&"CAP_NET_RAW".into()));
        assert_eq!(
            c.iter().filter(|x| *x == "CAP_CHOWN").count(),
            1,
            "no duplicates"
        );
        assert_eq!(c.len(), 14);
        // CAP_SYS_ADMIN unlocks mount in the seccomp profile.
        let rules = v["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        assert!(rules
            .iter()
            .any(|r| strs(&r["names"]).contains(&"mount".into())));

        o.cap_add = vec!["all".into()];
        o.cap_drop = vec!["sys_module".into()];
        let c = strs(&spec(&o)["process"]["capabilities"]["bounding"]);
        assert_eq!(c.len(), all_caps().len() - 1);
        assert!(!c.contains(&"CAP_SYS_MODULE".into()));

        o.cap_add = vec!["kill".into()];
        o.cap_drop = vec!["ALL".into()];
        assert_eq!(
            strs(&spec(&o)["process"]["capabilities"]["permitted"]),
            ["CAP_KILL"]
        );

        o.cap_add = vec!["CAP_FLY".into()];
        assert_eq!(err(&o), "--cap-add: unknown capability \"CAP_FLY\"");
        o.cap_add = vec![];
        o.cap_drop = vec!["wings".into()];
        assert_eq!(err(&o), "--cap-drop: unknown capability \"wings\"");
    }

    #[test]
    fn privileged_lifts_the_confinement() {
        let mut o = base();
        o.privileged = true;
        o.security_opt = vec!["seccomp=unconfined".into()];
        let v = spec(&o);
        assert_eq!(
            sorted(strs(&v["process"]["capabilities"]["bounding"])),
            sorted(all_caps())
        );
        assert!(all_caps().contains(&"CAP_SYS_ADMIN".to_owned()));
        assert!(all_caps().len() > DEFAULT_CAPS.len());
        assert!(v["linux"]["seccomp"].is_null());
        assert!(v["linux"]["maskedPaths"].is_null() && v["linux"]["readonlyPaths"].is_null());
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let devs = v["linux"]["devices"].as_array().unwrap();
        assert!(devs
            .iter()
            .any(|d| d["path"] == "/dev/null" && d["major"] == 1 && d["minor"] == 3));
        assert!(!devs
            .iter()
            .any(|d| d["path"].as_str().unwrap().starts_with("/dev/pts/")));
        for m in v["mounts"].as_array().unwrap() {
            if m["type"] == "sysfs" || m["type"] == "cgroup" {
                assert!(!strs(&m["options"]).contains(&"ro".into()), "{m}");
            }
        }
        // An explicitly requested profile still applies to a privileged container.
        let dir = tempfile_dir();
        let p = dir.join("privileged.json");
        std::fs::write(&p, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}"#).unwrap();
        o.security_opt = vec![format!("seccomp={}", p.display())];
        assert_eq!(
            spec(&o)["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ALLOW"
        );
        o.security_opt = vec![];
        assert!(
            spec(&o)["linux"]["seccomp"].is_null(),
            "no default profile when privileged"
        );
        std::fs::remove_dir_all(dir).unwrap();
        // Without --privileged both stay read-only.
        let v = spec(&base());
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == "sysfs")
            .unwrap();
        assert!(strs(&sys["options"]).contains(&"ro".into()));
    }

    #[test]
    fn security_opts() {
        let mut o = base();
        o.security_opt = vec![
            "no-new-privileges".into(),
            "seccomp=unconfined".into(),
            "apparmor=my-profile".into(),
            "label=type:spc_t".into(),
            "label=level:s0:c1,c2".into(),
            "systempaths=unconfined".into(),
        ];
        let v = spec(&o);
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert!(v["linux"]["seccomp"].is_null());
        assert_eq!(v["process"]["apparmorProfile"], "my-profile");
        assert_eq!(
            v["process"]["selinuxLabel"],
            "system_u:system_r:spc_t:s0:c1,c2"
        );
        assert!(v["linux"]["maskedPaths"].is_null());
        assert!(!v["linux"]["seccomp"].is_object());

        o.security_opt = vec![
            "no-new-privileges:true".into(),
            "no-new-privileges=false".into(),
            "label=disable".into(),
            "apparmor=unconfined".into(),
        ];
        let v = spec(&o);
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert!(
            v["process"]["selinuxLabel"].is_null() && v["process"]["apparmorProfile"].is_null()
        );

        for (opt, want) in [
            (
                "bogus=1",
                "invalid --security-opt \"bogus=1\": unknown option \"bogus\"",
            ),
            (
                "nonsense",
                "invalid --security-opt \"nonsense\": expected key=value",
            ),
            (
                "no-new-privileges=maybe",
                "no-new-privileges takes true or false",
            ),
            ("label=colour:red", "unknown label key \"colour\""),
            ("systempaths=open", "systempaths only takes unconfined"),
            (
                "seccomp=/no/such/profile.json",
                "--security-opt seccomp=/no/such/profile.json: No such file",
            ),
        ] {
            o.security_opt = vec![opt.into()];
            let e = err(&o);
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    #[test]
    fn seccomp_profile_from_a_file() {
        let dir = tempfile_dir();
        let p = dir.join("profile.json");
        std::fs::write(
            &p,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#,
        )
        .unwrap();
        let mut o = base();
        o.security_opt = vec![format!("seccomp={}", p.display())];
        let s = docker_spec(&o).unwrap();
        let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(sc.syscalls().as_ref().unwrap().len(), 2);
        o.cap_add = vec!["SYS_ADMIN".into()];
        let s = docker_spec(&o).unwrap();
        let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert_eq!(sc.syscalls().as_ref().unwrap().len(), 1);
        std::fs::write(
            &p,
            "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": 5}",
        )
        .unwrap();
        let e = err(&o);
        assert!(
            e.starts_with(&format!(
                "--security-opt seccomp={}: seccomp profile: syscalls",
                p.display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "skiff-docker-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn resources_limits_and_oom() {
        let mut o = base();
        o.memory = Some(64 << 20);
        o.cpus = Some(0.5);
        o.cpu_shares = Some(512);
        o.pids_limit = Some(100);
        o.oom_score_adj = Some(500);
        let v = spec(&o);
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        if swap_limit_supported() {
            assert_eq!(
                r["memory"]["swap"],
                128 << 20,
                "Docker's default swap = 2 x memory"
            );
        }
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["pids"]["limit"], 100);
        assert_eq!(v["process"]["oomScoreAdj"], 500);

        assert!(spec(&DockerSpecOpts {
            memory_swap: Some(-1),
            ..base()
        })["linux"]["resources"]["memory"]
            .is_null());
        o.memory_swap = Some(-1);
        assert!(spec(&o)["linux"]["resources"]["memory"]["swap"]
            .as_i64()
            .is_none_or(|s| s == -1));
        o.pids_limit = Some(-1);
        assert!(spec(&o)["linux"]["resources"]["pids"].is_null());

        type Tweak = Box<dyn Fn(&mut DockerSpecOpts)>;
        let cases: Vec<(Tweak, &str)> = vec![
            (
                Box::new(|o| o.memory = Some(1 << 20)),
                "--memory 1048576: the minimum memory limit is 6MB",
            ),
            (
                Box::new(|o| o.memory_swap = Some(32 << 20)),
                "must be at least --memory",
            ),
            (
                Box::new(|o| {
                    o.memory = None;
                    o.memory_swap = Some(1 << 30)
                }),
                "set --memory too",
            ),
            (
                Box::new(|o| o.cpus = Some(1000.0)),
                "--cpus 1000: the range is 0.01 to",
            ),
            (Box::new(|o| o.cpus = Some(-1.0)), "--cpus -1"),
            (
                Box::new(|o| o.oom_score_adj = Some(1001)),
                "--oom-score-adj 1001: the range is [-1000, 1000]",
            ),
        ];
        for (f, want) in cases {
            let mut o = base();
            o.memory = Some(64 << 20);
            f(&mut o);
            let e = err(&o);
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    #[test]
    fn ulimits_sysctls_annotations() {
        let mut o = base();
        o.ulimits = vec![
            ("nofile".into(), 1024, 2048),
            ("RLIMIT_NPROC".into(), 10, 10),
            ("NoFile".into(), 512, 512),
        ];
        o.sysctls = vec![
            ("net.ipv4.ip_forward".into(), "1".into()),
            ("kernel.shmmax".into(), "1000000".into()),
            ("fs.mqueue.msg_max".into(), "20".into()),
        ];
        o.annotations = vec![("org.example/a".into(), "b".into())];
        let v = spec(&o);
        assert_eq!(
            v["process"]["rlimits"],
            json!([{"type": "RLIMIT_NPROC", "soft": 10, "hard": 10}, {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}])
        );
        assert_eq!(v["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
        assert_eq!(v["linux"]["sysctl"]["kernel.shmmax"], "1000000");
        assert_eq!(v["annotations"]["org.example/a"], "b");

        let mut o = base();
        o.ulimits = vec![("wings".into(), 1, 1)];
        assert_eq!(err(&o), "--ulimit: unknown limit \"wings\"");
        o.ulimits = vec![("nofile".into(), 2, 1)];
        assert!(err(&o).contains("soft limit 2 is above the hard limit 1"));

        let mut o = base();
        o.network = NetworkNs::Host;
        o.sysctls = vec![("net.ipv4.ip_forward".into(), "1".into())];
        assert!(err(&o).contains(
            "--sysctl \"net.ipv4.ip_forward\": not allowed with the host's network namespace"
        ));
        assert!(spec(&DockerSpecOpts {
            network: NetworkNs::Host,
            ..base()
        })["linux"]["sysctl"]
            .is_null());
        let mut o = base();
        o.ipc_host = true;
        o.sysctls = vec![("kernel.msgmax".into(), "1".into())];
        assert!(err(&o).contains("host's IPC namespace"));
        let mut o = base();
        o.sysctls = vec![("kernel.panic".into(), "1".into())];
        assert!(err(&o).contains("--sysctl \"kernel.panic\": not a namespaced sysctl"));
        o.sysctls = vec![("net/../../x".into(), "1".into())];
        assert!(err(&o).contains("not a sysctl name"));
    }
}
