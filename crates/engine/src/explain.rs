//! `skiff explain`: what isolates a container and what does not, read from its live state — the
//! runtime's state and bundle, /proc of the container's init (ns, status, mountinfo, attr) and its
//! cgroup files — rather than from the flags it was created with; and for an image, what running
//! it with the defaults would give ([`explain_image`]).
//!
//! Risks are phrased in docker's own documentation terms and carry a stable `id` for tools
//! (`--json`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use skiff_image::store::ImageRecord;
use skiff_image::Store;

use crate::error::{Error, Result};
use crate::model::Container;
use crate::Engine;

/// One risk of the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Risk {
    /// Stable identifier (`privileged`, `host-pid`, `docker-socket`, ...).
    pub id: String,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// One line, in docker's documentation terms.
    pub text: String,
}

/// One namespace of the container.
#[derive(Debug, Clone, Serialize)]
pub struct Namespace {
    /// `pid`, `net`, `ipc`, `uts`, `mnt`, `user`, `cgroup`, `time`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `private`, `host`, or `container:<name>` (shared with that container).
    pub state: String,
    /// The namespace's inode.
    pub inode: u64,
}

/// A limit with its usage now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    /// Memory limit in bytes (None: unlimited).
    pub memory_limit: Option<u64>,
    /// Memory in use, bytes.
    pub memory_usage: Option<u64>,
    /// Memory + swap limit in bytes (None: unlimited or not accounted).
    pub memory_swap_limit: Option<u64>,
    /// CFS quota in microseconds per period (None: unlimited).
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period_us: Option<u64>,
    /// CPUs the quota amounts to.
    pub cpus: Option<f64>,
    /// cpu.shares (v1) or cpu.weight (v2).
    pub cpu_shares: Option<u64>,
    /// pids.max (None: unlimited).
    pub pids_limit: Option<u64>,
    /// Processes now.
    pub pids_current: Option<u64>,
    /// blkio/io weight.
    pub io_weight: Option<u64>,
}

/// A capability with what it allows.
#[derive(Debug, Clone, Serialize)]
pub struct Cap {
    /// `CAP_…`.
    pub name: String,
    /// One line.
    pub meaning: &'static str,
    /// Not in docker's default set.
    pub beyond_default: bool,
}

/// A mount as the container sees it.
#[derive(Debug, Clone, Serialize)]
pub struct MountEntry {
    /// Where in the container.
    pub destination: String,
    /// `layers`, `volume`, `bind`, `tmpfs`, `system` (proc, sysfs, devpts, ...), `engine`
    /// (hosts, hostname, resolv.conf).
    pub group: String,
    /// Host source (bind, volume) or filesystem type.
    pub source: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Why it is host-sensitive, when it is.
    pub sensitive: Option<String>,
}

/// The seccomp state.
#[derive(Debug, Clone, Serialize)]
pub struct Seccomp {
    /// `filter`, `strict` or `disabled`, from /proc status.
    pub mode: String,
    /// `default`, `custom` or `unconfined`.
    pub profile: String,
    /// Counts and notable syscalls of the profile in force (None without a profile).
    pub summary: Option<skiff_runtime::seccomp_summary::SeccompSummary>,
}

/// The whole report for a container.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Image as given.
    pub image: String,
    /// Status.
    pub status: String,
    /// Host pid of the init (0 when not running).
    pub pid: i32,
    /// Risk summary, worst first.
    pub risks: Vec<Risk>,
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// `uid_map` of the init (one line per range), `0 0 4294967295` meaning no user namespace.
    pub uid_map: Vec<String>,
    /// True when uid 0 in the container is uid 0 on the host.
    pub root_is_host_root: bool,
    /// The init's real and effective uid and gid.
    pub process_user: String,
    /// Cgroup directories, by controller.
    pub cgroup: BTreeMap<String, PathBuf>,
    /// Limits in force and usage.
    pub limits: Limits,
    /// Effective capabilities.
    pub cap_effective: Vec<Cap>,
    /// Bounding set.
    pub cap_bounding: Vec<Cap>,
    /// Bounding capabilities beyond docker's default set.
    pub caps_beyond_default: Vec<String>,
    /// Capabilities of docker's default set that were dropped.
    pub caps_dropped_from_default: Vec<String>,
    /// seccomp.
    pub seccomp: Seccomp,
    /// no_new_privs of the init.
    pub no_new_privs: bool,
    /// AppArmor profile, when AppArmor is enabled on the host.
    pub apparmor: Option<String>,
    /// SELinux label, when SELinux is enabled on the host.
    pub selinux: Option<String>,
    /// Root filesystem mounted read-only.
    pub read_only_rootfs: bool,
    /// Masked paths (linux.maskedPaths).
    pub masked_paths: Vec<String>,
    /// Read-only paths (linux.readonlyPaths).
    pub readonly_paths: Vec<String>,
    /// Image layers under the root filesystem.
    pub layers: usize,
    /// Mounts.
    pub mounts: Vec<MountEntry>,
    /// Network mode.
    pub network_mode: String,
    /// Published ports, docker's `ps` text.
    pub ports: String,
}

/// One line per capability: what holding it allows.
pub fn cap_meaning(name: &str) -> &'static str {
    match name {
        "CAP_CHOWN" => "change file owners",
        "CAP_DAC_OVERRIDE" => "bypass file read/write/execute permission checks",
        "CAP_DAC_READ_SEARCH" => "bypass file read and directory search checks; open files by handle (the 'shocker' escape)",
        "CAP_FOWNER" => "bypass checks that need the caller to own the file",
        "CAP_FSETID" => "keep setuid/setgid bits when modifying files",
        "CAP_KILL" => "send signals to any process",
        "CAP_SETGID" => "change group ids",
        "CAP_SETUID" => "change user ids",
        "CAP_SETPCAP" => "change capability sets of itself",
        "CAP_LINUX_IMMUTABLE" => "set immutable and append-only file flags",
        "CAP_NET_BIND_SERVICE" => "bind ports below 1024",
        "CAP_NET_BROADCAST" => "broadcast and listen to multicast",
        "CAP_NET_ADMIN" => "configure interfaces, routes, firewall rules of its network namespace",
        "CAP_NET_RAW" => "use raw and packet sockets (craft packets, ping)",
        "CAP_IPC_LOCK" => "lock memory (mlock)",
        "CAP_IPC_OWNER" => "bypass permission checks on System V IPC objects",
        "CAP_SYS_MODULE" => "load and unload kernel modules: full host control",
        "CAP_SYS_RAWIO" => "raw I/O ports and /dev/mem: full host control",
        "CAP_SYS_CHROOT" => "use chroot",
        "CAP_SYS_PTRACE" => "trace and inspect any process it can see",
        "CAP_SYS_PACCT" => "switch process accounting",
        "CAP_SYS_ADMIN" => "mount, namespaces, and much more: nearly root, the usual escape route",
        "CAP_SYS_BOOT" => "reboot the host (and load kexec kernels)",
        "CAP_SYS_NICE" => "raise priorities, set real-time scheduling of any process",
        "CAP_SYS_RESOURCE" => "override resource limits and quotas",
        "CAP_SYS_TIME" => "set the host's clock",
        "CAP_SYS_TTY_CONFIG" => "configure and hang up terminals",
        "CAP_MKNOD" => "create device nodes (use still needs the device cgroup)",
        "CAP_LEASE" => "take file leases",
        "CAP_AUDIT_WRITE" => "write the kernel audit log",
        "CAP_AUDIT_CONTROL" => "configure kernel auditing",
        "CAP_SETFCAP" => "set file capabilities",
        "CAP_MAC_OVERRIDE" => "override mandatory access control (LSM)",
        "CAP_MAC_ADMIN" => "configure mandatory access control (LSM)",
        "CAP_SYSLOG" => "read and clear the kernel log",
        "CAP_WAKE_ALARM" => "set wake-up alarms",
        "CAP_BLOCK_SUSPEND" => "prevent system suspend",
        "CAP_AUDIT_READ" => "read the audit log over netlink",
        "CAP_PERFMON" => "use perf and performance monitoring",
        "CAP_BPF" => "load BPF programs and maps",
        "CAP_CHECKPOINT_RESTORE" => "checkpoint/restore helpers (set pids, read other maps)",
        _ => "(unknown capability)",
    }
}

/// Capabilities that are as good as host root when held with the host's devices or namespaces.
const DANGEROUS_CAPS: [&str; 7] = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_DAC_READ_SEARCH",
    "CAP_NET_ADMIN",
    "CAP_BPF",
];

fn caps_from_hex(hex: &str) -> Vec<String> {
    let Ok(v) = u64::from_str_radix(hex.trim(), 16) else {
        return Vec::new();
    };
    let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.into_iter()
        .filter(|c| c.index() < 64 && v & (1u64 << c.index()) != 0)
        .map(|c| c.to_string())
        .collect()
}

fn to_caps(names: &[String]) -> Vec<Cap> {
    names
        .iter()
        .map(|n| Cap {
            name: n.clone(),
            meaning: cap_meaning(n),
            beyond_default: !skiff_runtime::docker::DEFAULT_CAPS.contains(&n.as_str()),
        })
        .collect()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn read(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn num(p: impl AsRef<Path>) -> Option<u64> {
    read(p)?.parse().ok()
}

/// Limits from the cgroup files (v1 controller directories where present, else the cgroup2 one).
fn limits(paths: &BTreeMap<String, PathBuf>) -> Limits {
    let v1 = |c: &str, f: &str| paths.get(c).map(|d| d.join(f)).filter(|p| p.exists());
    let v2 = |f: &str| {
        paths
            .get("unified")
            .map(|d| d.join(f))
            .filter(|p| p.exists())
    };
    // v1 reports "unlimited" as a huge number (PAGE_COUNTER_MAX pages).
    let cap = |v: u64| (v < (1u64 << 62)).then_some(v);
    let mut l = Limits::default();
    if let Some(p) = v1("memory", "memory.limit_in_bytes") {
        l.memory_limit = num(p).and_then(cap);
        l.memory_usage = v1("memory", "memory.usage_in_bytes").and_then(num);
        l.memory_swap_limit = v1("memory", "memory.memsw.limit_in_bytes")
            .and_then(num)
            .and_then(cap);
    } else if let Some(p) = v2("memory.max") {
        l.memory_limit = num(p);
        l.memory_usage = v2("memory.current").and_then(num);
        l.memory_swap_limit = v2("memory.swap.max").and_then(num);
    }
    if let Some(p) = v1("cpu", "cpu.cfs_quota_us") {
        l.cpu_quota_us = read(p)
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|q| *q > 0);
        l.cpu_period_us = v1("cpu", "cpu.cfs_period_us").and_then(num);
        l.cpu_shares = v1("cpu", "cpu.shares").and_then(num);
    } else if let Some(p) = v2("cpu.max") {
        let s = read(p).unwrap_or_default();
        let mut w = s.split_whitespace();
        l.cpu_quota_us = w.next().and_then(|q| q.parse().ok());
        l.cpu_period_us = w.next().and_then(|q| q.parse().ok());
        l.cpu_shares = v2("cpu.weight").and_then(num);
    }
    if let (Some(q), Some(p)) = (l.cpu_quota_us, l.cpu_period_us) {
        if p > 0 {
            l.cpus = Some(q as f64 / p as f64);
        }
    }
    if let Some(p) = v1("pids", "pids.max").or_else(|| v2("pids.max")) {
        l.pids_limit = num(p);
        l.pids_current = v1("pids", "pids.current")
            .or_else(|| v2("pids.current"))
            .and_then(num);
    }
    l.io_weight = v1("blkio", "blkio.weight")
        .or_else(|| v1("blkio", "blkio.bfq.weight"))
        .and_then(num)
        .or_else(|| {
            v2("io.weight").and_then(|p| {
                read(p)?
                    .lines()
                    .find_map(|l| l.strip_prefix("default ")?.parse().ok())
            })
        });
    l
}

fn ns_inode(pid: &str, kind: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Why a host path bound into a container is sensitive.
pub fn sensitive(source: &str, dest: &str) -> Option<String> {
    let s = source.trim_end_matches('/');
    let d = dest.trim_end_matches('/');
    if s.ends_with("docker.sock") || d.ends_with("docker.sock") {
        return Some("docker socket: full host control".into());
    }
    if s.ends_with("skiff.sock") || d.ends_with("skiff.sock") {
        return Some("skiff API socket: full host control".into());
    }
    if s.is_empty() && source.starts_with('/') {
        return Some("the host's root filesystem".into());
    }
    for (p, why) in [
        ("/proc", "host /proc: host processes and kernel settings"),
        ("/sys", "host /sys: kernel and device settings"),
        ("/dev", "host devices"),
        ("/etc", "host configuration (passwords, sudoers, ...)"),
        ("/boot", "host kernels and boot loader"),
        ("/root", "host root's home"),
        ("/var/lib/docker", "docker's state"),
        ("/var/lib/skiff", "skiff's state"),
        ("/run", "host runtime sockets"),
        ("/var/run", "host runtime sockets"),
    ] {
        if s == p || s.starts_with(&format!("{p}/")) {
            return Some(why.into());
        }
    }
    None
}

fn risk(id: &str, severity: &'static str, text: impl Into<String>) -> Risk {
    Risk {
        id: id.into(),
        severity,
        text: text.into(),
    }
}

/// The container's OCI bundle config (what the runtime was given).
fn bundle_spec(e: &Engine, c: &Container) -> Option<oci_spec::runtime::Spec> {
    let raw = std::fs::read(e.container_dir(&c.id).join("config.json")).ok()?;
    serde_json::from_slice(&raw).ok()
}

impl Engine {
    /// The report for container `s`.
    pub fn explain(&self, s: &str) -> Result<Report> {
        let c = self.container(s)?;
        let running = matches!(c.state.status.as_str(), "running" | "paused") && c.state.pid > 0;
        let pid = if running { c.state.pid } else { 0 };
        let h = &c.host_config;
        let spec = bundle_spec(self, &c);
        let linux = spec.as_ref().and_then(|s| s.linux().clone());
        let mut r = Report {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.config.image.clone(),
            status: c.state.status.clone(),
            pid,
            risks: Vec::new(),
            namespaces: Vec::new(),
            uid_map: Vec::new(),
            root_is_host_root: true,
            process_user: String::new(),
            cgroup: BTreeMap::new(),
            limits: Limits::default(),
            cap_effective: Vec::new(),
            cap_bounding: Vec::new(),
            caps_beyond_default: Vec::new(),
            caps_dropped_from_default: Vec::new(),
            seccomp: Seccomp {
                mode: "unknown".into(),
                profile: "default".into(),
                summary: None,
            },
            no_new_privs: false,
            apparmor: None,
            selinux: None,
            read_only_rootfs: h.readonly_rootfs,
            masked_paths: linux
                .as_ref()
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default(),
            readonly_paths: linux
                .as_ref()
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default(),
            layers: c.lower_dirs.len(),
            mounts: Vec::new(),
            network_mode: h.network_mode.clone(),
            ports: self.ports_text(&c),
        };
        // seccomp profile: what the runtime was given.
        let sc = linux.as_ref().and_then(|l| l.seccomp().clone());
        let opts = h.security_opt.clone().unwrap_or_default();
        let unconfined_by_flag = h.privileged
            || opts
                .iter()
                .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");
        r.seccomp.profile = if unconfined_by_flag || (sc.is_none() && spec.is_some()) {
            "unconfined".into()
        } else if opts
            .iter()
            .any(|o| o.starts_with("seccomp=") || o.starts_with("seccomp:"))
        {
            "custom".into()
        } else {
            "default".into()
        };
        r.seccomp.summary = sc.as_ref().map(skiff_runtime::seccomp_summary::summarize);
        if running {
            self.live(&c, pid, &mut r)?;
        } else {
            r.seccomp.mode = "not running".into();
        }
        r.risks = risks(&c, &r);
        Ok(r)
    }

    /// The parts read from /proc and the cgroup of a running container.
    fn live(&self, c: &Container, pid: i32, r: &mut Report) -> Result<()> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| {
            Error::Other(format!(
                "container {}: read /proc/{pid}/status: {e}",
                c.name
            ))
        })?;
        // Namespaces: the host's are skiff's own (pid 1 may be out of reach).
        let mut others: Vec<(String, i32)> = Vec::new();
        for o in self.list()? {
            if o.id != c.id && o.state.status == "running" && o.state.pid > 0 {
                others.push((o.name.clone(), o.state.pid));
            }
        }
        for kind in ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"] {
            let Some(ino) = ns_inode(&pid.to_string(), kind) else {
                continue;
            };
            let state = if ns_inode("self", kind) == Some(ino) {
                "host".to_string()
            } else if let Some((n, _)) = others
                .iter()
                .find(|(_, p)| ns_inode(&p.to_string(), kind) == Some(ino))
            {
                format!("container:{n}")
            } else {
                "private".to_string()
            };
            r.namespaces.push(Namespace {
                kind: kind.into(),
                state,
                inode: ino,
            });
        }
        r.uid_map = read(format!("/proc/{pid}/uid_map"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        r.root_is_host_root = r.uid_map.iter().any(|l| l.starts_with("0 0 "));
        let ids = |k: &str| {
            status_field(&status, k)
                .map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join("/"))
                .unwrap_or_default()
        };
        r.process_user = format!("uid={} gid={} (real/effective)", ids("Uid"), ids("Gid"));
        // Cgroup: the runtime's record of the container's directories.
        if let Ok(t) = self.live_init(&c.id) {
            r.cgroup = t.cgroup.paths.clone();
        }
        r.limits = limits(&r.cgroup);
        let eff = caps_from_hex(status_field(&status, "CapEff").unwrap_or(""));
        let bnd = caps_from_hex(status_field(&status, "CapBnd").unwrap_or(""));
        r.caps_beyond_default = bnd
            .iter()
            .filter(|n| !skiff_runtime::docker::DEFAULT_CAPS.contains(&n.as_str()))
            .cloned()
            .collect();
        r.caps_dropped_from_default = skiff_runtime::docker::DEFAULT_CAPS
            .iter()
            .filter(|d| !bnd.iter().any(|b| b == *d))
            .map(|d| d.to_string())
            .collect();
        r.cap_effective = to_caps(&eff);
        r.cap_bounding = to_caps(&bnd);
        r.seccomp.mode = match status_field(&status, "Seccomp") {
            Some("0") => "disabled",
            Some("1") => "strict",
            Some("2") => "filter",
            _ => "unknown",
        }
        .into();
        if r.seccomp.mode == "disabled" {
            r.seccomp.profile = "unconfined".into();
        }
        r.no_new_privs = status_field(&status, "NoNewPrivs") == Some("1");
        let attr =
            read(format!("/proc/{pid}/attr/current")).map(|s| s.trim_matches('\0').to_string());
        if Path::new("/sys/kernel/security/apparmor").exists() {
            r.apparmor = read(format!("/proc/{pid}/attr/apparmor/current")).or(attr);
        } else if Path::new("/sys/fs/selinux/enforce").exists() {
            r.selinux = attr;
        }
        // Mounts, as the container sees them.
        let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        let masked: BTreeSet<&str> = r.masked_paths.iter().map(String::as_str).collect();
        let ro_paths: BTreeSet<&str> = r.readonly_paths.iter().map(String::as_str).collect();
        for l in mi.lines() {
            let (pre, post) = l.split_once(" - ").unwrap_or((l, ""));
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            let (Some(dest), Some(opts)) = (f.get(4), f.get(5)) else {
                continue;
            };
            let dest = unescape(dest);
            let fstype = g.first().copied().unwrap_or("");
            let read_only = opts.split(',').any(|o| o == "ro");
            if dest == "/" {
                r.read_only_rootfs = read_only;
            }
            if masked.contains(dest.as_str()) || ro_paths.contains(dest.as_str()) {
                continue;
            }
            let conf = c.mounts.iter().find(|m| m.destination == dest);
            let (group, source) = match (dest.as_str(), conf, fstype) {
                ("/", _, _) => (
                    "layers".to_string(),
                    format!("{fstype}, {} layers", r.layers),
                ),
                (_, Some(m), _) => {
                    let g = if m.kind == "volume" {
                        "volume"
                    } else {
                        m.kind.as_str()
                    };
                    (g.to_string(), m.source.clone())
                }
                ("/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf", _, _) => {
                    ("engine".into(), fstype.into())
                }
                (_, _, "tmpfs") if !dest.starts_with("/dev") => ("tmpfs".into(), "tmpfs".into()),
                _ => ("system".into(), fstype.into()),
            };
            let sens = match conf {
                Some(m) if m.kind == "bind" => sensitive(&m.source, &m.destination),
                _ => None,
            };
            r.mounts.push(MountEntry {
                destination: dest,
                group,
                source,
                read_only,
                sensitive: sens,
            });
        }
        Ok(())
    }
}

fn risks(c: &Container, r: &Report) -> Vec<Risk> {
    let h = &c.host_config;
    let mut v = Vec::new();
    let ns_host = |k: &str| {
        r.namespaces
            .iter()
            .any(|n| n.kind == k && n.state == "host")
    };
    let live = !r.namespaces.is_empty();
    let host_by_flag = |k: &str| match k {
        "net" => h.network_mode == "host",
        "pid" => h.extra.pid_mode == "host",
        "ipc" => h.extra.ipc_mode == "host",
        "uts" => h.extra.uts_mode == "host",
        _ => false,
    };
    if h.privileged {
        v.push(risk(
            "privileged",
            "high",
            "privileged: container root is host root (all capabilities, all host devices, no seccomp or AppArmor confinement)",
        ));
    }
    for (k, id, sev, text) in [
        ("pid", "host-pid", "high", "host pid namespace: can see and signal host processes (--pid=host)"),
        ("net", "host-network", "high", "host network: shares the host's network stack, binds host ports and reaches host-local services (--network=host)"),
        ("ipc", "host-ipc", "medium", "host ipc namespace: shares the host's shared memory and semaphores (--ipc=host)"),
        ("uts", "host-uts", "low", "host uts namespace: can change the host's hostname (--uts=host)"),
    ] {
        if (live && ns_host(k)) || (!live && host_by_flag(k)) {
            v.push(risk(id, sev, text));
        }
    }
    if live && ns_host("mnt") {
        v.push(risk(
            "host-mount-namespace",
            "high",
            "host mount namespace: sees every host mount",
        ));
    }
    if live && ns_host("cgroup") {
        v.push(risk(
            "host-cgroup-namespace",
            "low",
            "host cgroup namespace: sees the host's cgroup paths (--cgroupns=host)",
        ));
    }
    let binds: Vec<(String, String)> = c
        .mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .map(|m| (m.source.clone(), m.destination.clone()))
        .collect();
    for (src, dst) in &binds {
        match sensitive(src, dst) {
            Some(why) if why.starts_with("docker socket") || why.starts_with("skiff API") => {
                v.push(risk(
                    "docker-socket",
                    "high",
                    format!("docker socket mounted at {dst}: full host control (anyone who can reach it can start a privileged container)"),
                ))
            }
            Some(why) if src.trim_end_matches('/').is_empty() => v.push(risk(
                "host-root-mount",
                "high",
                format!("host root filesystem mounted at {dst}: {why}"),
            )),
            Some(why) => v.push(risk(
                "sensitive-mount",
                "medium",
                format!("host {src} mounted at {dst}: {why}"),
            )),
            None => {}
        }
    }
    if !h.privileged {
        let dangerous: Vec<&String> = r
            .caps_beyond_default
            .iter()
            .filter(|c| DANGEROUS_CAPS.contains(&c.as_str()))
            .collect();
        if !dangerous.is_empty() {
            v.push(risk(
                "dangerous-capabilities",
                "high",
                format!(
                    "capabilities beyond docker's default that allow escapes: {}",
                    dangerous
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let others: Vec<&String> = r
            .caps_beyond_default
            .iter()
            .filter(|c| !DANGEROUS_CAPS.contains(&c.as_str()))
            .collect();
        if !others.is_empty() {
            v.push(risk(
                "extra-capabilities",
                "medium",
                format!(
                    "capabilities beyond docker's default: {}",
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if r.seccomp.profile == "unconfined" {
            v.push(risk(
                "seccomp-unconfined",
                "medium",
                "no seccomp profile: every syscall the capabilities allow can be made (seccomp=unconfined)",
            ));
        }
    }
    if r.root_is_host_root && r.process_user.starts_with("uid=0/0") {
        v.push(risk(
            "root-user",
            "low",
            "runs as root without a user namespace: uid 0 in the container is uid 0 on the host",
        ));
    }
    if live && r.limits.memory_limit.is_none() {
        v.push(risk(
            "no-memory-limit",
            "low",
            "no memory limit: can use all of the host's memory (-m)",
        ));
    }
    if live && r.limits.pids_limit.is_none() {
        v.push(risk(
            "no-pids-limit",
            "low",
            "no pids limit: a fork bomb reaches the host's limit (--pids-limit)",
        ));
    }
    let rank = |s: &str| match s {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    };
    v.sort_by_key(|x| rank(x.severity));
    v
}

/// What running an image with the defaults would give.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// Image id.
    pub id: String,
    /// Names.
    pub tags: Vec<String>,
    /// Config.User (`root` when empty).
    pub user: String,
    /// Runs as root.
    pub runs_as_root: bool,
    /// Entrypoint + Cmd.
    pub command: Vec<String>,
    /// Config.ExposedPorts.
    pub exposed_ports: Vec<String>,
    /// Config.Volumes.
    pub volumes: Vec<String>,
    /// Config.Healthcheck.Test, when set.
    pub healthcheck: Option<Vec<String>>,
    /// Layers.
    pub layers: usize,
    /// Files with the setuid or setgid bit in any layer: `path (setuid, owner uid N)`.
    pub setuid_files: Vec<String>,
    /// Risk summary.
    pub risks: Vec<Risk>,
}

fn walk_setuid(root: &Path, dir: &Path, out: &mut BTreeSet<String>, budget: &mut usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            walk_setuid(root, &p, out, budget);
        } else if md.is_file() && md.mode() & 0o6000 != 0 {
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let kind = match md.mode() & 0o6000 {
                0o6000 => "setuid+setgid",
                0o4000 => "setuid",
                _ => "setgid",
            };
            out.insert(format!("/{rel} ({kind}, owner uid {})", md.uid()));
        }
    }
}

/// The report for an image.
pub fn explain_image(store: &Store, img: &ImageRecord) -> Result<ImageReport> {
    let (cfg, _) = store.config(&img.id)?;
    let c = cfg.config.unwrap_or(serde_json::Value::Null);
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let user = c["User"].as_str().unwrap_or("").to_string();
    let uname = user.split(':').next().unwrap_or("");
    let runs_as_root = uname.is_empty() || uname == "root" || uname == "0";
    let mut command = strs(&c["Entrypoint"]);
    command.extend(strs(&c["Cmd"]));
    let healthcheck = c["Healthcheck"]["Test"]
        .as_array()
        .map(|_| strs(&c["Healthcheck"]["Test"]))
        .filter(|t| t.first().map(String::as_str) != Some("NONE"));
    let layers = store.layer_dirs(img)?;
    let mut found = BTreeSet::new();
    for l in &layers {
        let mut budget = 500_000;
        walk_setuid(l, l, &mut found, &mut budget);
    }
    let mut r = ImageReport {
        id: img.id.to_string(),
        tags: img.tags.clone(),
        user: if user.is_empty() { "root".into() } else { user },
        runs_as_root,
        command,
        exposed_ports: keys(&c["ExposedPorts"]),
        volumes: keys(&c["Volumes"]),
        healthcheck,
        layers: layers.len(),
        setuid_files: found.into_iter().collect(),
        risks: Vec::new(),
    };
    if r.runs_as_root {
        r.risks.push(risk(
            "root-user",
            "low",
            "runs as root by default (no USER): uid 0 in the container is uid 0 on the host without a user namespace",
        ));
    }
    if !r.setuid_files.is_empty() {
        r.risks.push(risk(
            "setuid-files",
            "low",
            format!(
                "{} setuid/setgid files: a way up to root for a non-root user unless no-new-privileges is set",
                r.setuid_files.len()
            ),
        ));
    }
    if r.healthcheck.is_none() {
        r.risks.push(risk(
            "no-healthcheck",
            "low",
            "no HEALTHCHECK: the engine cannot tell a hung service from a healthy one",
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_paths() {
        assert!(sensitive("/var/run/docker.sock", "/x")
            .unwrap()
            .contains("docker socket"));
        assert!(sensitive("/tmp/a/docker.sock", "/var/run/docker.sock").is_some());
        assert!(sensitive("/", "/host").unwrap().contains("root"));
        assert!(sensitive("/proc", "/hp").is_some());
        assert!(sensitive("/srv/data", "/data").is_none());
        assert!(sensitive("/running", "/data").is_none());
    }

    #[test]
    fn cap_bits() {
        assert_eq!(caps_from_hex("0000000000000001"), vec!["CAP_CHOWN"]);
        assert_eq!(caps_from_hex("0000000000200000"), vec!["CAP_SYS_ADMIN"]);
    }
}
