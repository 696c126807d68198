//! The `run`/`create` flags for resources, namespaces and devices beyond the basics (docker's
//! `--memory-swap`, `--cpu-shares`, `--cpuset-cpus`, `--pid`, `--ipc`, `--device`, `--sysctl`, …):
//! parsed and validated at create time as docker's daemon validates them (so a bad value records
//! nothing), kept in `HostConfig` under docker's field names, and applied to the OCI spec at
//! start.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::flags::bad_flag;
use crate::spec::parse_size;

/// The flags as typed on the command line (or given by an API client).
#[derive(Debug, Clone, Default)]
pub struct HostFlags {
    /// `--memory-swap` (memory + swap; -1 unlimited).
    pub memory_swap: Option<String>,
    /// `--memory-reservation` (soft limit).
    pub memory_reservation: Option<String>,
    /// `--memory-swappiness` (0-100, -1 = the host's).
    pub memory_swappiness: Option<i64>,
    /// `--kernel-memory` (accepted and discarded with docker's warnings).
    pub kernel_memory: Option<String>,
    /// `--cpu-shares` / `-c`.
    pub cpu_shares: Option<i64>,
    /// `--cpu-period` (µs).
    pub cpu_period: Option<i64>,
    /// `--cpu-quota` (µs per period).
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i64>,
    /// `--shm-size`.
    pub shm_size: Option<String>,
    /// `--sysctl KEY=VALUE`.
    pub sysctls: Vec<String>,
    /// `--group-add` (names resolved in the container's /etc/group, or numbers).
    pub group_add: Vec<String>,
    /// `--pid` (`host`, `container:X`).
    pub pid: Option<String>,
    /// `--ipc` (`private`, `shareable`, `none`, `host`, `container:X`).
    pub ipc: Option<String>,
    /// `--uts` (`host`).
    pub uts: Option<String>,
    /// `--userns` (`host`).
    pub userns: Option<String>,
    /// `--cgroupns` (`host`, `private`).
    pub cgroupns: Option<String>,
    /// `--annotation KEY=VALUE`.
    pub annotations: Vec<String>,
    /// `--device HOST[:CONTAINER[:PERMS]]` or a CDI name `vendor.com/class=name`.
    pub devices: Vec<String>,
    /// `--gpus` (resolved through CDI devices of kind nvidia.com/gpu).
    pub gpus: Option<String>,
    /// `--device-cgroup-rule 'TYPE MAJOR:MINOR PERMS'`.
    pub device_cgroup_rules: Vec<String>,
    /// `--device-read-bps DEVICE:RATE`.
    pub device_read_bps: Vec<String>,
    /// `--device-write-bps DEVICE:RATE`.
    pub device_write_bps: Vec<String>,
    /// `--device-read-iops DEVICE:RATE`.
    pub device_read_iops: Vec<String>,
    /// `--device-write-iops DEVICE:RATE`.
    pub device_write_iops: Vec<String>,
    /// `HostConfig.MemorySwap` of an API request, in bytes (replaces `memory_swap`).
    pub memory_swap_bytes: Option<i64>,
    /// `HostConfig.MemoryReservation` of an API request, in bytes.
    pub memory_reservation_bytes: Option<i64>,
    /// `HostConfig.ShmSize` of an API request, in bytes (0 = docker's default).
    pub shm_size_bytes: Option<i64>,
}

/// One `--device` as docker records it in `HostConfig.Devices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    /// The device node on the host.
    pub path_on_host: String,
    /// Where it appears in the container.
    pub path_in_container: String,
    /// cgroup access (`rwm` or a subset).
    pub cgroup_permissions: String,
}

/// One throttled device as docker records it (`BlkioDeviceReadBps` and friends).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    /// The block device's path on the host.
    pub path: String,
    /// Bytes or operations per second.
    pub rate: u64,
}

/// The resolved settings, flattened into `HostConfig` under docker's names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostExtras {
    /// Memory + swap in bytes (-1 unlimited, 0 docker's default of twice the memory).
    pub memory_swap: i64,
    /// Soft memory limit in bytes.
    pub memory_reservation: i64,
    /// Swappiness (None: the host's).
    pub memory_swappiness: Option<i64>,
    /// Always 0: kernel memory limits are discarded, as docker 28 does.
    pub kernel_memory: i64,
    /// Relative CPU weight.
    pub cpu_shares: i64,
    /// CFS period in µs.
    pub cpu_period: i64,
    /// CFS quota in µs.
    pub cpu_quota: i64,
    /// CPUs the container may use.
    pub cpuset_cpus: String,
    /// Memory nodes the container may use.
    pub cpuset_mems: String,
    /// The OOM killer spares the container.
    pub oom_kill_disable: bool,
    /// The init's oom_score_adj.
    pub oom_score_adj: i64,
    /// /dev/shm size in bytes (docker's default 64 MiB).
    pub shm_size: i64,
    /// Namespaced sysctls.
    pub sysctls: Option<BTreeMap<String, String>>,
    /// Extra groups.
    pub group_add: Option<Vec<String>>,
    /// `""`, `host` or `container:<id>`.
    pub pid_mode: String,
    /// `private`, `shareable`, `none`, `host` or `container:<id>`.
    pub ipc_mode: String,
    /// `""` or `host`.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `""`, `host`, or (rootless) `keep-id` or `auto`.
    pub userns_mode: String,
    /// `--userns auto`: the container's slice of the rootless namespace's ids (start, size),
    /// allocated at create (recorded in the state database too, freed on rm).
    #[serde(rename = "SkiffUsernsSlice", skip_serializing_if = "Option::is_none")]
    pub userns_slice: Option<(u32, u32)>,
    /// `host` or `private`.
    pub cgroupns_mode: String,
    /// OCI annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// `--device` mappings.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule` values.
    pub device_cgroup_rules: Option<Vec<String>>,
    /// `--device-read-bps`.
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    /// `--device-write-bps`.
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    /// `--device-read-iops`.
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    /// `--device-write-iops`.
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// CDI devices and `--gpus` (docker's `DeviceRequests`), applied from CDI spec files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_requests: Option<Vec<crate::cdi::DeviceRequest>>,
}

/// docker's default `/dev/shm` size.
pub const DEFAULT_SHM: i64 = 64 << 20;

fn kv(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(bad_flag(flag, s, "expected KEY=VALUE")),
    }
}

/// One `--sysctl KEY=VALUE`, checked against docker's CLI list of namespaced sysctls (the
/// IPC ones, `fs.mqueue.*`, `net.*`); anything else is refused as docker refuses it.
pub fn sysctl_arg(s: &str) -> Result<(String, String)> {
    use skiff_runtime::docker::IPC_SYSCTLS as IPC;
    let refused = || bad_flag("--sysctl", s, format!("sysctl '{s}' is not allowed"));
    let (k, v) = s.split_once('=').ok_or_else(refused)?;
    if IPC.contains(&k) || k.starts_with("net.") || k.starts_with("fs.mqueue.") {
        Ok((k.to_string(), v.to_string()))
    } else {
        Err(refused())
    }
}

/// The other container named by `container:X` as (mode prefix, name); `None` for other modes.
pub fn container_ref(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

/// Parse and validate `f` as docker's daemon does. `memory` and `nano_cpus` are the already
/// validated `--memory`/`--cpus`; `hostname_given` is `-h`; `resolve` turns a container name into
/// its id (for `container:X` modes). Warnings (settings discarded on this host) are appended.
pub fn resolve(
    f: &HostFlags,
    memory: i64,
    nano_cpus: i64,
    hostname_given: bool,
    resolve: &dyn Fn(&str) -> Result<String>,
    warnings: &mut Vec<String>,
) -> Result<HostExtras> {
    let mut x = HostExtras {
        shm_size: DEFAULT_SHM,
        ipc_mode: "private".into(),
        // docker's default: private on a pure cgroup v2 host (cgroup2 at /sys/fs/cgroup: one
        // stat, not a mountinfo read on every create), host otherwise.
        cgroupns_mode: if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "private".into()
        } else {
            "host".into()
        },
        ..Default::default()
    };
    // Memory.
    let swap = match (f.memory_swap_bytes, &f.memory_swap) {
        (Some(v), _) => Some(v),
        (None, Some(s)) if s.trim() == "-1" => Some(-1),
        (None, Some(s)) => Some(parse_size(s).map_err(|e| bad_flag("--memory-swap", s, e))?),
        (None, None) => None,
    };
    if let Some(v) = swap {
        x.memory_swap = v;
        if x.memory_swap > 0 && memory == 0 {
            return Err(Error::Invalid(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            ));
        }
        if x.memory_swap > 0 && x.memory_swap < memory {
            return Err(Error::Invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
        if x.memory_swap > 0 && !swap_accounting() {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
            x.memory_swap = -1;
        }
    }
    let reservation = match (f.memory_reservation_bytes, &f.memory_reservation) {
        (Some(v), _) => Some(v),
        (None, Some(s)) => Some(parse_size(s).map_err(|e| bad_flag("--memory-reservation", s, e))?),
        (None, None) => None,
    };
    if let Some(v) = reservation {
        x.memory_reservation = v;
        if x.memory_reservation > 0 && x.memory_reservation < 6 << 20 {
            return Err(Error::Invalid(
                "Minimum memory reservation allowed is 6MB".into(),
            ));
        }
        if memory > 0 && x.memory_reservation > memory {
            return Err(Error::Invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
                    .into(),
            ));
        }
    }
    if let Some(s) = f.memory_swappiness {
        if s != -1 && !(0..=100).contains(&s) {
            return Err(Error::Invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        x.memory_swappiness = (s != -1).then_some(s);
    }
    if let Some(k) = &f.kernel_memory {
        let v = parse_size(k).map_err(|e| bad_flag("--kernel-memory", k, e))?;
        if v != 0 {
            warnings.push(
                "Specifying a kernel memory limit is deprecated and will be removed in a future release."
                    .into(),
            );
            warnings.push("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        }
    }
    if f.oom_kill_disable {
        x.oom_kill_disable = true;
        if memory == 0 {
            warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
        }
    }
    if let Some(a) = f.oom_score_adj {
        if !(-1000..=1000).contains(&a) {
            return Err(Error::Invalid(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            )));
        }
        x.oom_score_adj = a;
    }
    // CPU.
    if let Some(s) = f.cpu_shares {
        if s < 0 {
            return Err(bad_flag(
                "-c, --cpu-shares",
                &s.to_string(),
                "must not be negative",
            ));
        }
        x.cpu_shares = s;
    }
    if let Some(p) = f.cpu_period.filter(|p| *p != 0) {
        if nano_cpus > 0 {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        if !(1000..=1_000_000).contains(&p) {
            return Err(Error::Invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)".into()));
        }
        x.cpu_period = p;
    }
    if let Some(q) = f.cpu_quota.filter(|q| *q != 0) {
        if nano_cpus > 0 {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
            ));
        }
        if q > 0 && q < 1000 {
            return Err(Error::Invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
            ));
        }
        x.cpu_quota = q;
    }
    if let Some(c) = &f.cpuset_cpus {
        let want = parse_list(c)
            .ok_or_else(|| Error::Invalid(format!("Invalid value {c} for cpuset cpus")))?;
        let avail_s = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap_or_else(|_| "0".into());
        let avail = parse_list(avail_s.trim()).unwrap_or_default();
        if !want.iter().all(|c| avail.contains(c)) {
            return Err(Error::Invalid(format!(
                "Requested CPUs are not available - requested {c}, available: {}",
                avail_s.trim()
            )));
        }
        x.cpuset_cpus = c.clone();
    }
    if let Some(m) = &f.cpuset_mems {
        let want = parse_list(m)
            .ok_or_else(|| Error::Invalid(format!("Invalid value {m} for cpuset mems")))?;
        let avail_s = std::fs::read_to_string("/sys/devices/system/node/online")
            .unwrap_or_else(|_| "0".into());
        let avail = parse_list(avail_s.trim()).unwrap_or_default();
        if !want.iter().all(|n| avail.contains(n)) {
            return Err(Error::Invalid(format!(
                "Requested memory nodes are not available - requested {m}, available: {}",
                avail_s.trim()
            )));
        }
        x.cpuset_mems = m.clone();
    }
    // /dev/shm, sysctls, groups, annotations.
    if let Some(v) = f.shm_size_bytes {
        if v < 0 {
            return Err(Error::Invalid(format!(
                "invalid ShmSize {v}: SHM size can not be less than 0"
            )));
        }
        if v > 0 {
            x.shm_size = v;
        }
    } else if let Some(s) = &f.shm_size {
        let v = crate::flags::shm_size(s)?;
        if v < 0 {
            return Err(bad_flag("--shm-size", s, "SHM size can not be less than 0"));
        }
        // 0 means the default size, as dockerd reads a zero ShmSize.
        x.shm_size = if v == 0 { DEFAULT_SHM } else { v };
    }
    for s in &f.sysctls {
        let (k, v) = sysctl_arg(s)?;
        x.sysctls.get_or_insert_with(BTreeMap::new).insert(k, v);
    }
    for g in &f.group_add {
        if g.is_empty() || g.contains(':') {
            return Err(bad_flag("--group-add", g, "not a group name or id"));
        }
        x.group_add.get_or_insert_with(Vec::new).push(g.clone());
    }
    for a in &f.annotations {
        let (k, v) = kv("--annotation", a)?;
        x.annotations.get_or_insert_with(BTreeMap::new).insert(k, v);
    }
    // Namespaces.
    let joined = |flag: &str, v: &str| -> Result<String> {
        match container_ref(v) {
            Some("") => Err(bad_flag(flag, v, "no container named")),
            Some(name) => Ok(format!("container:{}", resolve(name)?)),
            None => Ok(v.to_string()),
        }
    };
    if let Some(p) = &f.pid {
        x.pid_mode = match p.as_str() {
            "" | "host" => p.clone(),
            v if v.starts_with("container:") => joined("--pid", v)?,
            v => return Err(bad_flag("--pid", v, "expected host or container:<name|id>")),
        };
    }
    if let Some(i) = &f.ipc {
        x.ipc_mode = match i.as_str() {
            "" => "private".into(),
            "private" | "shareable" | "none" | "host" => i.clone(),
            v if v.starts_with("container:") => joined("--ipc", v)?,
            v => return Err(Error::Invalid(format!("Invalid IPC mode: {v}"))),
        };
    }
    if let Some(u) = &f.uts {
        match u.as_str() {
            "" => {}
            "host" if hostname_given => {
                return Err(Error::Invalid(
                    "conflicting options: hostname and the UTS mode".into(),
                ))
            }
            "host" => x.uts_mode = "host".into(),
            v => return Err(bad_flag("--uts", v, "expected host")),
        }
    }
    if let Some(u) = &f.userns {
        match u.as_str() {
            "" => {}
            "host" => x.userns_mode = "host".into(),
            "keep-id" if crate::rootless::active() => x.userns_mode = "keep-id".into(),
            "auto" if crate::rootless::active() => x.userns_mode = "auto".into(),
            "auto" => {
                return Err(bad_flag(
                    "--userns",
                    "auto",
                    "auto is for rootless mode (an ordinary user's skiff)",
                ))
            }
            "keep-id" => {
                return Err(bad_flag(
                    "--userns",
                    "keep-id",
                    "keep-id is for rootless mode (an ordinary user's skiff)",
                ))
            }
            v => return Err(bad_flag(
                "--userns",
                v,
                "skiff does not remap users as root; only host (and keep-id or auto when rootless) is accepted",
            )),
        }
    }
    if let Some(c) = &f.cgroupns {
        match c.as_str() {
            "host" | "private" => x.cgroupns_mode = c.clone(),
            _ => return Err(Error::Invalid("--cgroupns: invalid CGROUP mode".into())),
        }
    }
    // Devices.
    let mut cdi_names = Vec::new();
    for d in &f.devices {
        if crate::cdi::is_qualified_name(d) {
            cdi_names.push(d.clone());
        } else {
            x.devices.push(parse_device(d)?);
        }
    }
    let mut requests = Vec::new();
    if !cdi_names.is_empty() {
        requests.push(crate::cdi::DeviceRequest {
            driver: "cdi".into(),
            device_ids: Some(cdi_names),
            ..Default::default()
        });
    }
    if let Some(g) = &f.gpus {
        requests.push(crate::cdi::parse_gpus(g)?);
    }
    if !requests.is_empty() {
        x.device_requests = Some(requests);
    }
    for r in &f.device_cgroup_rules {
        parse_cgroup_rule(r)?;
        x.device_cgroup_rules
            .get_or_insert_with(Vec::new)
            .push(r.clone());
    }
    for (flag, list, out, bytes) in [
        (
            "--device-read-bps",
            &f.device_read_bps,
            &mut x.blkio_device_read_bps,
            true,
        ),
        (
            "--device-write-bps",
            &f.device_write_bps,
            &mut x.blkio_device_write_bps,
            true,
        ),
        (
            "--device-read-iops",
            &f.device_read_iops,
            &mut x.blkio_device_read_iops,
            false,
        ),
        (
            "--device-write-iops",
            &f.device_write_iops,
            &mut x.blkio_device_write_iops,
            false,
        ),
    ] {
        for t in list {
            out.push(parse_throttle(flag, t, bytes)?);
        }
    }
    Ok(x)
}

/// Whether the host accounts swap per cgroup (v1 `memory.memsw.*`, or v2 `memory.swap.max`).
pub fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/memory.swap.max").exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
}

/// `0-2,5` → [0, 1, 2, 5]; `None` when malformed.
fn parse_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return None;
    }
    for part in s.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn valid_perms(p: &str) -> bool {
    !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c))
}

fn device_node(path: &str) -> Result<(char, u64, u64, u32)> {
    let md = std::fs::metadata(path).map_err(|e| {
        Error::Invalid(format!(
            "error gathering device information while adding custom device \"{path}\": {e}"
        ))
    })?;
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return Err(Error::Invalid(format!(
            "error gathering device information while adding custom device \"{path}\": not a device node"
        )));
    };
    let rdev = md.rdev();
    Ok((
        kind,
        libc::major(rdev) as u64,
        libc::minor(rdev) as u64,
        md.mode() & 0o7777,
    ))
}

fn parse_device(d: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = d.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if valid_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => {
            return Err(bad_flag(
                "--device",
                d,
                "expected HOST[:CONTAINER[:PERMISSIONS]]",
            ))
        }
    };
    if !valid_perms(perms) {
        return Err(bad_flag(
            "--device",
            d,
            format!("bad permissions {perms:?} (any of r, w, m)"),
        ));
    }
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad_flag("--device", d, "device paths must be absolute"));
    }
    device_node(host)?;
    Ok(DeviceMapping {
        path_on_host: host.into(),
        path_in_container: ctr.into(),
        cgroup_permissions: perms.into(),
    })
}

/// `c 1:3 rwm` → (type, major, minor, access); `*` is a wildcard (None).
fn parse_cgroup_rule(r: &str) -> Result<(String, Option<i64>, Option<i64>, String)> {
    let bad = || {
        // docker's words; the rule is `TYPE MAJOR:MINOR PERMS` (a|b|c, * for any, of rwm).
        bad_flag(
            "--device-cgroup-rule",
            r,
            format!("invalid device cgroup format '{r}'"),
        )
    };
    let f: Vec<&str> = r.split_whitespace().collect();
    let [t, mm, p] = f.as_slice() else {
        return Err(bad());
    };
    if !["a", "b", "c"].contains(t) || !valid_perms(p) {
        return Err(bad());
    }
    let (ma, mi) = mm.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse::<i64>().map(Some).map_err(|_| bad())
        }
    };
    Ok((t.to_string(), num(ma)?, num(mi)?, p.to_string()))
}

fn parse_throttle(flag: &str, t: &str, bytes: bool) -> Result<ThrottleDevice> {
    let (path, rate) = t
        .rsplit_once(':')
        .ok_or_else(|| bad_flag(flag, t, "expected DEVICE:RATE"))?;
    let rate = if bytes {
        parse_size(rate).map_err(|e| bad_flag(flag, t, e))?
    } else {
        rate.parse::<i64>()
            .map_err(|_| bad_flag(flag, t, "the rate must be a positive integer"))?
    };
    if rate < 0 {
        return Err(bad_flag(flag, t, "the rate must be positive"));
    }
    let (kind, ..) = device_node(path)?;
    if kind != 'b' {
        return Err(bad_flag(flag, t, format!("{path} is not a block device")));
    }
    Ok(ThrottleDevice {
        path: path.into(),
        rate: rate as u64,
    })
}

/// What `x` changes in the `DockerSpecOpts` docker_spec reads (namespaces shared with the host,
/// cgroup namespace, sysctls, annotations, swap, shares, oom_score_adj).
pub fn apply_opts(x: &HostExtras, o: &mut skiff_runtime::docker::DockerSpecOpts) {
    o.pid_host = x.pid_mode == "host";
    o.ipc_host = x.ipc_mode == "host";
    o.uts_host = x.uts_mode == "host";
    if o.uts_host {
        // The host's UTS namespace keeps the host's name: the spec sets none.
        o.hostname.clear();
    }
    o.cgroupns_private = x.cgroupns_mode == "private";
    if x.memory_swap != 0 {
        o.memory_swap = Some(x.memory_swap);
    }
    if x.cpu_shares > 0 {
        o.cpu_shares = Some(x.cpu_shares as u64);
    }
    if x.oom_score_adj != 0 {
        o.oom_score_adj = Some(x.oom_score_adj as i32);
    }
    if let Some(s) = &x.sysctls {
        o.sysctls = s.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    if let Some(a) = &x.annotations {
        o.annotations = a.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
}

/// Applies what docker_spec has no option for to the spec as JSON: memory reservation,
/// swappiness and the OOM killer, CFS period/quota, cpusets, /dev/shm size (or none), namespaces
/// joined from another container (`ns` maps a namespace type to the path to join, e.g.
/// `/proc/<pid>/ns/pid`), devices and their cgroup rules, throttles, and extra group ids
/// (`gids`, already resolved).
pub fn apply_spec(
    x: &HostExtras,
    v: &mut Value,
    ns: &BTreeMap<&str, String>,
    gids: &[u32],
) -> Result<()> {
    let res = &mut v["linux"]["resources"];
    if res.is_null() {
        *res = json!({});
    }
    if x.memory_reservation > 0 {
        res["memory"]["reservation"] = json!(x.memory_reservation);
    }
    if let Some(s) = x.memory_swappiness {
        res["memory"]["swappiness"] = json!(s);
    }
    if x.oom_kill_disable {
        res["memory"]["disableOOMKiller"] = json!(true);
    }
    if x.cpu_period > 0 {
        res["cpu"]["period"] = json!(x.cpu_period);
    }
    if x.cpu_quota != 0 {
        res["cpu"]["quota"] = json!(x.cpu_quota);
        if x.cpu_period == 0 {
            res["cpu"]["period"] = json!(100_000);
        }
    }
    if !x.cpuset_cpus.is_empty() {
        res["cpu"]["cpus"] = json!(x.cpuset_cpus);
    }
    if !x.cpuset_mems.is_empty() {
        res["cpu"]["mems"] = json!(x.cpuset_mems);
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &x.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &x.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &x.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &x.blkio_device_write_iops),
    ] {
        for t in list {
            let (_, major, minor, _) = device_node(&t.path)?;
            let arr = &mut res["blockIO"][key];
            if arr.is_null() {
                *arr = json!([]);
            }
            if let Some(a) = arr.as_array_mut() {
                a.push(json!({"major": major, "minor": minor, "rate": t.rate}));
            }
        }
    }
    let mut rules: Vec<Value> = Vec::new();
    for r in x.device_cgroup_rules.iter().flatten() {
        let (t, ma, mi, p) = parse_cgroup_rule(r)?;
        rules.push(json!({"allow": true, "type": t, "major": ma, "minor": mi, "access": p}));
    }
    let mut devs: Vec<Value> = Vec::new();
    for d in &x.devices {
        let (kind, major, minor, mode) = device_node(&d.path_on_host)?;
        devs.push(json!({"path": d.path_in_container, "type": kind.to_string(), "major": major, "minor": minor, "fileMode": mode, "uid": 0, "gid": 0}));
        rules.push(json!({"allow": true, "type": kind.to_string(), "major": major, "minor": minor, "access": d.cgroup_permissions}));
    }
    if !rules.is_empty() {
        let arr = &mut res["devices"];
        if arr.is_null() {
            *arr = json!([]);
        }
        if let Some(a) = arr.as_array_mut() {
            a.extend(rules);
        }
    }
    if !devs.is_empty() {
        let arr = &mut v["linux"]["devices"];
        if arr.is_null() {
            *arr = json!([]);
        }
        if let Some(a) = arr.as_array_mut() {
            a.retain(|e| !devs.iter().any(|d| d["path"] == e["path"]));
            a.extend(devs);
        }
    }
    // /dev/shm: sized, or absent with --ipc none. (shareable, host and container:X bind a
    // host-side tmpfs instead: spec::build's shm_source.)
    if let Some(mounts) = v["mounts"].as_array_mut() {
        if x.ipc_mode == "none" {
            mounts.retain(|m| m["destination"] != "/dev/shm");
        } else if x.shm_size > 0 && x.shm_size != DEFAULT_SHM {
            for m in mounts.iter_mut() {
                if m["destination"] == "/dev/shm" && m["type"] == "tmpfs" {
                    if let Some(opts) = m["options"].as_array_mut() {
                        opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("size=")));
                        opts.push(json!(format!("size={}", x.shm_size)));
                    }
                }
            }
        }
    }
    if let Some(list) = v["linux"]["namespaces"].as_array_mut() {
        for (t, path) in ns {
            list.retain(|n| n["type"] != *t);
            list.push(json!({"type": t, "path": path}));
        }
    }
    if !gids.is_empty() {
        let g = &mut v["process"]["user"]["additionalGids"];
        if g.is_null() {
            *g = json!([]);
        }
        if let Some(a) = g.as_array_mut() {
            for id in gids {
                if !a.iter().any(|e| e.as_u64() == Some(u64::from(*id))) {
                    a.push(json!(id));
                }
            }
        }
    }
    Ok(())
}

/// Resolves `--group-add` values against the container's `/etc/group` text.
pub fn resolve_groups(groups: &[String], etc_group: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for g in groups {
        if let Ok(n) = g.parse::<u32>() {
            out.push(n);
            continue;
        }
        let gid = etc_group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok())?
            })
            .next()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "Unable to find group {g}: no matching entries in group file"
                ))
            })?;
        out.push(gid);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> HostFlags {
        HostFlags::default()
    }

    fn go(f: &HostFlags, mem: i64, cpus: i64) -> Result<HostExtras> {
        resolve(
            f,
            mem,
            cpus,
            false,
            &|n| Ok(format!("id-{n}")),
            &mut Vec::new(),
        )
    }

    #[test]
    fn validation_matches_docker() {
        let mut f = flags();
        f.memory_swap = Some("64m".into());
        assert!(go(&f, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("always set the Memory"));
        assert!(go(&f, 128 << 20, 0)
            .unwrap_err()
            .to_string()
            .contains("larger than memory"));
        let mut f = flags();
        f.memory_reservation = Some("1m".into());
        assert!(go(&f, 0, 0).is_err());
        f.memory_reservation = Some("64m".into());
        assert!(go(&f, 32 << 20, 0).is_err());
        assert_eq!(go(&f, 0, 0).unwrap().memory_reservation, 64 << 20);
        let mut f = flags();
        f.memory_swappiness = Some(101);
        assert!(go(&f, 0, 0).is_err());
        f.memory_swappiness = Some(-1);
        assert_eq!(go(&f, 0, 0).unwrap().memory_swappiness, None);
        let mut f = flags();
        f.oom_score_adj = Some(1001);
        assert!(go(&f, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("[-1000, 1000]"));
        let mut f = flags();
        f.cpu_period = Some(999);
        assert!(go(&f, 0, 0).is_err());
        f.cpu_period = Some(50_000);
        assert!(go(&f, 0, 1_000_000_000)
            .unwrap_err()
            .to_string()
            .contains("Nano CPUs"));
        let mut f = flags();
        f.cpu_quota = Some(500);
        assert!(go(&f, 0, 0).is_err());
        let mut f = flags();
        f.cpuset_cpus = Some("0-99999".into());
        assert!(go(&f, 0, 0).is_err());
        f.cpuset_cpus = Some("x".into());
        assert!(go(&f, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("Invalid value x"));
        f.cpuset_cpus = Some("0".into());
        assert_eq!(go(&f, 0, 0).unwrap().cpuset_cpus, "0");
        let mut f = flags();
        f.shm_size = Some("-1".into());
        assert!(go(&f, 0, 0).is_err());
        f.shm_size = Some("0".into());
        assert_eq!(go(&f, 0, 0).unwrap().shm_size, DEFAULT_SHM);
        f.shm_size = Some("128m".into());
        assert_eq!(go(&f, 0, 0).unwrap().shm_size, 128 << 20);
        let mut f = flags();
        f.pid = Some("container:web".into());
        assert_eq!(go(&f, 0, 0).unwrap().pid_mode, "container:id-web");
        f.pid = Some("bogus".into());
        assert!(go(&f, 0, 0).is_err());
        let mut f = flags();
        f.ipc = Some("none".into());
        assert_eq!(go(&f, 0, 0).unwrap().ipc_mode, "none");
        f.ipc = Some("weird".into());
        assert!(go(&f, 0, 0).is_err());
        let mut f = flags();
        f.uts = Some("host".into());
        assert!(resolve(&f, 0, 0, true, &|n| Ok(n.into()), &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("hostname and the UTS mode"));
        let mut f = flags();
        f.userns = Some("remap".into());
        assert!(go(&f, 0, 0).is_err());
        let mut f = flags();
        f.sysctls = vec!["=1".into()];
        assert!(go(&f, 0, 0).is_err());
        // docker's CLI list: IPC sysctls, fs.mqueue.*, net.*; others and a missing value refused.
        for ok in [
            "kernel.shmmax=1048576",
            "net.ipv4.ip_forward=1",
            "fs.mqueue.msg_max=10",
        ] {
            let mut f = flags();
            f.sysctls = vec![ok.into()];
            assert!(go(&f, 0, 0).is_ok(), "{ok}");
        }
        for (bad, want) in [
            ("kernel.hostname=x", "invalid argument \"kernel.hostname=x\" for \"--sysctl\" flag: sysctl 'kernel.hostname=x' is not allowed"),
            ("net.ipv4.ip_forward", "invalid argument \"net.ipv4.ip_forward\" for \"--sysctl\" flag: sysctl 'net.ipv4.ip_forward' is not allowed"),
            ("vm.swappiness=1", "sysctl 'vm.swappiness=1' is not allowed"),
        ] {
            let mut f = flags();
            f.sysctls = vec![bad.into()];
            let e = go(&f, 0, 0).unwrap_err().to_string();
            assert!(e.ends_with(want), "{bad}: {e}");
        }
        let mut f = flags();
        f.devices = vec!["/etc/passwd".into()];
        assert!(go(&f, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("not a device node"));
        f.devices = vec!["/dev/null:/dev/n2:rx".into()];
        assert!(go(&f, 0, 0).is_err());
        f.devices = vec!["/dev/null:/dev/n2:r".into()];
        let d = &go(&f, 0, 0).unwrap().devices[0];
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/n2", "r")
        );
        let mut f = flags();
        f.device_cgroup_rules = vec!["c 1:3".into()];
        assert!(go(&f, 0, 0).is_err());
        f.device_cgroup_rules = vec!["c *:* m".into()];
        assert!(go(&f, 0, 0).is_ok());
        let mut f = flags();
        f.device_read_bps = vec!["/dev/null:1mb".into()];
        assert!(go(&f, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("not a block device"));
        let mut w = Vec::new();
        let mut f = flags();
        f.kernel_memory = Some("64m".into());
        resolve(&f, 0, 0, false, &|n| Ok(n.into()), &mut w).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn lists_and_groups() {
        assert_eq!(parse_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_list("2-1"), None);
        assert_eq!(parse_list(""), None);
        let g = "root:x:0:\naudio:x:29:\n";
        assert_eq!(
            resolve_groups(&["audio".into(), "7".into()], g).unwrap(),
            vec![29, 7]
        );
        assert!(resolve_groups(&["video".into()], g).is_err());
    }
}
