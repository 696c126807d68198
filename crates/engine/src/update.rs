//! `update`: changes the resource limits and the restart policy of a container, as docker's
//! `ContainerUpdate` does. The new values are validated (with the `run` flags' own checks plus
//! docker's update-only conflicts), recorded in `HostConfig`, and, while the container runs,
//! applied to its cgroup at once (the same resources a start would write, built from the new
//! record) and handed to its monitor (the restart policy). A stopped container gets them at its
//! next start.

use crate::error::{Error, Result};
use crate::hostflags::HostFlags;
use crate::lock::Lock;
use crate::model::Container;
use crate::{flags, spec, Engine};
use skiff_image::perms;

/// The flags of `update` as typed (None: not given).
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// `-m/--memory`.
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `-c/--cpu-shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<i64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<String>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
    /// `--restart`.
    pub restart: Option<String>,
}

impl UpdateRequest {
    /// No flag was given (docker's CLI refuses that).
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.memory_reservation.is_none()
            && self.cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpu_period.is_none()
            && self.cpu_quota.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.pids_limit.is_none()
            && self.blkio_weight.is_none()
            && self.restart.is_none()
    }
}

/// `POST /containers/{id}/update`: the API's `UpdateConfig` (the `Resources` of a `HostConfig`
/// and its `RestartPolicy`). Zero values mean "leave as is", as in docker; fields skiff cannot
/// change on a container are refused by name when set.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct UpdateBody {
    pub cpu_shares: i64,
    pub memory: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub blkio_weight_device: Option<Vec<serde_json::Value>>,
    pub blkio_device_read_bps: Option<Vec<serde_json::Value>>,
    pub blkio_device_write_bps: Option<Vec<serde_json::Value>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<serde_json::Value>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<serde_json::Value>>,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_realtime_period: i64,
    pub cpu_realtime_runtime: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: Option<Vec<serde_json::Value>>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub device_requests: Option<Vec<serde_json::Value>>,
    pub kernel_memory: i64,
    #[serde(rename = "KernelMemoryTCP")]
    pub kernel_memory_tcp: i64,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub nano_cpus: i64,
    pub oom_kill_disable: Option<bool>,
    pub init: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<serde_json::Value>>,
    pub cpu_count: i64,
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps")]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth")]
    pub io_maximum_bandwidth: u64,
    pub restart_policy: Option<crate::model::RestartPolicy>,
}

impl UpdateBody {
    /// The same request `skiff update`'s flags make (one validation path for both).
    pub fn into_request(self) -> Result<UpdateRequest> {
        let refuse = |field: &str| {
            Err(Error::Invalid(format!(
                "{field}: cannot be changed by update (skiff applies it at create only)"
            )))
        };
        let nonempty =
            |v: &Option<Vec<serde_json::Value>>| v.as_ref().is_some_and(|v| !v.is_empty());
        if !self.cgroup_parent.is_empty() {
            return refuse("CgroupParent");
        }
        for (name, v) in [
            ("BlkioWeightDevice", &self.blkio_weight_device),
            ("BlkioDeviceReadBps", &self.blkio_device_read_bps),
            ("BlkioDeviceWriteBps", &self.blkio_device_write_bps),
            ("BlkioDeviceReadIOps", &self.blkio_device_read_iops),
            ("BlkioDeviceWriteIOps", &self.blkio_device_write_iops),
            ("Devices", &self.devices),
            ("DeviceRequests", &self.device_requests),
            ("Ulimits", &self.ulimits),
        ] {
            if nonempty(v) {
                return refuse(name);
            }
        }
        if self
            .device_cgroup_rules
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            return refuse("DeviceCgroupRules");
        }
        if self.cpu_realtime_period != 0 || self.cpu_realtime_runtime != 0 {
            return refuse("CpuRealtimePeriod/CpuRealtimeRuntime");
        }
        if self.memory_swappiness.is_some_and(|s| s >= 0) {
            return refuse("MemorySwappiness");
        }
        if self.oom_kill_disable == Some(true) {
            return refuse("OomKillDisable");
        }
        if self.cpu_count != 0 || self.cpu_percent != 0 {
            return refuse("CpuCount/CpuPercent (Windows only)");
        }
        if self.io_maximum_iops != 0 || self.io_maximum_bandwidth != 0 {
            return refuse("IOMaximumIOps/IOMaximumBandwidth (Windows only)");
        }
        // KernelMemory is ignored from API 1.42 on, as docker does; Init is not a resource.
        let _ = (self.kernel_memory, self.kernel_memory_tcp, self.init);
        let nz = |v: i64| (v != 0).then(|| v.to_string());
        let restart = self.restart_policy.filter(|p| !p.name.is_empty()).map(|p| {
            if p.name == "on-failure" && p.maximum_retry_count > 0 {
                format!("on-failure:{}", p.maximum_retry_count)
            } else {
                p.name
            }
        });
        Ok(UpdateRequest {
            memory: nz(self.memory),
            memory_swap: nz(self.memory_swap),
            memory_reservation: nz(self.memory_reservation),
            // NanoCpus as the decimal `--cpus` value it stands for (exact: nine digits).
            cpus: (self.nano_cpus != 0).then(|| {
                let n = self.nano_cpus;
                let sign = if n < 0 { "-" } else { "" };
                let a = n.unsigned_abs();
                format!("{sign}{}.{:09}", a / 1_000_000_000, a % 1_000_000_000)
            }),
            cpu_shares: (self.cpu_shares != 0).then_some(self.cpu_shares),
            cpu_period: (self.cpu_period != 0).then_some(self.cpu_period),
            cpu_quota: (self.cpu_quota != 0).then_some(self.cpu_quota),
            cpuset_cpus: (!self.cpuset_cpus.is_empty()).then_some(self.cpuset_cpus),
            cpuset_mems: (!self.cpuset_mems.is_empty()).then_some(self.cpuset_mems),
            pids_limit: self.pids_limit.map(|p| p.to_string()),
            blkio_weight: (self.blkio_weight != 0).then_some(self.blkio_weight),
            restart,
        })
    }
}

/// The file through which `update --restart` reaches a running container's monitor
/// (`<name>:<max retries>`, in the container's run dir).
pub const RESTART_POLICY_FILE: &str = "restart-policy";

fn conflict(msg: &str) -> Error {
    Error::Invalid(format!("Conflicting options: {msg}"))
}

/// `c` with the update applied (docker's `UpdateContainer` rules: a value of 0/empty leaves the
/// current one), or docker's error. Warnings (settings discarded on this host) are appended.
pub fn updated(
    c: &Container,
    req: &UpdateRequest,
    warnings: &mut Vec<String>,
) -> Result<Container> {
    let mut n = c.clone();
    let h = &mut n.host_config;
    let memory = req.memory.as_deref().map(flags::memory).transpose()?;
    let nano = match &req.cpus {
        Some(s) => {
            let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some(flags::nano_cpus(s, ncpu)?)
        }
        None => None,
    };
    // NanoCPUs and the CFS period/quota set each other: neither may be changed once the other is.
    let (period, quota) = (req.cpu_period.unwrap_or(0), req.cpu_quota.unwrap_or(0));
    if nano.unwrap_or(0) > 0 && h.extra.cpu_period > 0 {
        return Err(conflict(
            "CPU Period cannot be updated as NanoCPUs has already been set",
        ));
    }
    if nano.unwrap_or(0) > 0 && h.extra.cpu_quota > 0 {
        return Err(conflict(
            "CPU Quota cannot be updated as NanoCPUs has already been set",
        ));
    }
    if period > 0 && h.nano_cpus > 0 && nano.is_none() {
        return Err(conflict(
            "CPU Period cannot be updated as NanoCPUs has already been set",
        ));
    }
    if quota > 0 && h.nano_cpus > 0 && nano.is_none() {
        return Err(conflict(
            "CPU Quota cannot be updated as NanoCPUs has already been set",
        ));
    }
    let new_memory = memory.filter(|m| *m != 0).unwrap_or(h.memory);
    // The run flags' own checks (ranges, swap against memory, reservation, cpusets).
    let f = HostFlags {
        memory_swap: req.memory_swap.clone(),
        memory_reservation: req.memory_reservation.clone(),
        cpu_shares: req.cpu_shares,
        cpu_period: req.cpu_period,
        cpu_quota: req.cpu_quota,
        cpuset_cpus: req.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: req.cpuset_mems.clone().filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let x = crate::hostflags::resolve(
        &f,
        new_memory,
        nano.unwrap_or(0),
        false,
        &|s| Ok(s.to_string()),
        warnings,
    )?;
    if let Some(m) = memory.filter(|m| *m != 0) {
        // Docker's update: a memory limit above the swap limit already set needs a new swap
        // limit (the default swap limit is twice the memory limit).
        let swap = match h.extra.memory_swap {
            0 if h.memory > 0 => h.memory * 2,
            s => s,
        };
        if swap > 0 && m > swap && req.memory_swap.is_none() {
            return Err(Error::Invalid(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
            ));
        }
        h.memory = m;
    }
    if req.memory_swap.is_some() && x.memory_swap != 0 {
        h.extra.memory_swap = x.memory_swap;
    }
    if req.memory_reservation.is_some() && x.memory_reservation != 0 {
        h.extra.memory_reservation = x.memory_reservation;
    }
    if h.extra.memory_reservation > 0 && h.memory > 0 && h.extra.memory_reservation > h.memory {
        return Err(Error::Invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if let Some(v) = nano.filter(|v| *v != 0) {
        h.nano_cpus = v;
    }
    if x.cpu_shares != 0 {
        h.extra.cpu_shares = x.cpu_shares;
    }
    if x.cpu_period != 0 {
        h.extra.cpu_period = x.cpu_period;
    }
    if x.cpu_quota != 0 {
        h.extra.cpu_quota = x.cpu_quota;
    }
    if !x.cpuset_cpus.is_empty() {
        h.extra.cpuset_cpus = x.cpuset_cpus;
    }
    if !x.cpuset_mems.is_empty() {
        h.extra.cpuset_mems = x.cpuset_mems;
    }
    if let Some(p) = req.pids_limit.as_deref() {
        h.pids_limit = Some(flags::pids_limit(p)?);
    }
    if req.blkio_weight.is_some() {
        let w = crate::create::blkio_weight(req.blkio_weight, warnings)?;
        if w != 0 {
            h.blkio_weight = w;
        }
    }
    if let Some(r) = &req.restart {
        let p = flags::restart(r)?;
        if !p.name.is_empty() {
            if p.name != "no" && h.auto_remove {
                return Err(Error::Invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
            h.restart_policy = p;
        }
    }
    Ok(n)
}

impl Engine {
    /// Writes the resources of the updated record `n` (the ones a start would write) to the
    /// cgroup of its running container and to its bundle's `config.json`, which the monitor
    /// reuses when the restart policy starts the container again.
    fn apply_resources(&self, n: &Container) -> Result<()> {
        let id = &n.id;
        let dir = self.container_dir(id);
        let built = spec::build(n, &dir, &dir.join("rootfs"), self.netns_path(n), &|peer| {
            self.running_pid(peer)
        })?;
        let mut res = built
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let bundle = dir.join("config.json");
        let mut spec: oci_spec::runtime::Spec = std::fs::read(&bundle)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .ok_or_else(|| {
                Error::Other(format!("container {id}: unreadable {}", bundle.display()))
            })?;
        if let Some(linux) = spec.linux_mut() {
            // The device rules stay those the container started with (as runc's update).
            let devices = linux.resources().as_ref().and_then(|r| r.devices().clone());
            let mut kept = res.clone();
            kept.set_devices(devices);
            linux.set_resources(Some(kept));
        }
        let data = serde_json::to_vec(&spec).map_err(|e| Error::Other(e.to_string()))?;
        let tmp = dir.join(".config.json.tmp");
        perms::write_file(&tmp, &data, perms::PRIVATE_FILE)
            .and_then(|()| std::fs::rename(&tmp, &bundle))
            .map_err(|e| Error::Io {
                what: format!("write {}", bundle.display()),
                source: e,
            })?;
        // Between two runs of a restart policy there is no cgroup: the next run reads the bundle.
        if let Ok(st) = self.live_init(id) {
            if st.init_alive() {
                res.set_devices(None);
                st.cgroup
                    .apply(&res)
                    .map_err(|e| Error::Other(format!("Cannot update container {id}: {e}")))?;
            }
        }
        Ok(())
    }

    /// `update` of container `s` (see the module documentation); returns docker's warnings.
    pub fn update(&self, s: &str, req: &UpdateRequest) -> Result<Vec<String>> {
        let id = self.resolve_id(s)?;
        let path = self.lock_path(&id);
        if !path.exists() {
            return Err(Error::NoSuchContainer(s.into()));
        }
        let _l = Lock::acquire(&path).map_err(|_| Error::NoSuchContainer(s.into()))?;
        let c = self.reconcile_locked(&id)?;
        let mut warnings = Vec::new();
        let n = updated(&c, req, &mut warnings).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("Cannot update container {id}: {m}")),
            e => e,
        })?;
        if c.is_active() {
            self.apply_resources(&n)?;
        }
        if n.host_config.restart_policy != c.host_config.restart_policy {
            let run = self.run_dir(&id);
            if run.is_dir() {
                let p = &n.host_config.restart_policy;
                let line = format!("{}:{}\n", p.name, p.maximum_retry_count);
                let _ = perms::write_file(
                    &run.join(RESTART_POLICY_FILE),
                    line.as_bytes(),
                    perms::PRIVATE_FILE,
                );
            }
        }
        self.set_record(&n)?;
        let _ = crate::create::write_record(&self.container_dir(&id), &n);
        self.event(&n, "update", &[]);
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> UpdateRequest {
        UpdateRequest::default()
    }

    #[test]
    fn api_body_maps_to_the_flags_request() {
        let b: UpdateBody = serde_json::from_str(
            r#"{"Memory":67108864,"NanoCpus":1500000000,"PidsLimit":42,"CpuShares":0,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}"#,
        )
        .unwrap();
        let r = b.into_request().unwrap();
        assert_eq!(r.memory.as_deref(), Some("67108864"));
        assert_eq!(r.cpus.as_deref(), Some("1.500000000"));
        assert_eq!(r.pids_limit.as_deref(), Some("42"));
        assert_eq!(r.cpu_shares, None);
        assert_eq!(r.restart.as_deref(), Some("on-failure:3"));
        let mut w = Vec::new();
        let n = updated(&Container::default(), &r, &mut w).unwrap();
        assert_eq!(n.host_config.nano_cpus, 1_500_000_000);
        assert_eq!(n.host_config.memory, 64 << 20);
        let b: UpdateBody = serde_json::from_str(r#"{"CgroupParent":"x"}"#).unwrap();
        assert!(b
            .into_request()
            .unwrap_err()
            .to_string()
            .contains("CgroupParent"));
        assert!(serde_json::from_str::<UpdateBody>(r#"{"Memroy":1}"#).is_err());
    }

    #[test]
    fn dockers_update_rules() {
        let mut c = Container::default();
        let mut w = Vec::new();
        assert!(req().is_empty());
        // Memory with unlimited swap; reservation under it.
        let n = updated(
            &c,
            &UpdateRequest {
                memory: Some("64m".into()),
                memory_swap: Some("-1".into()),
                memory_reservation: Some("32m".into()),
                ..req()
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(n.host_config.memory, 64 << 20);
        assert_eq!(n.host_config.extra.memory_swap, -1);
        assert_eq!(n.host_config.extra.memory_reservation, 32 << 20);
        // A memory limit above the (default, doubled) swap limit needs a new swap limit.
        c.host_config.memory = 16 << 20;
        let e = updated(
            &c,
            &UpdateRequest {
                memory: Some("64m".into()),
                ..req()
            },
            &mut w,
        )
        .unwrap_err();
        assert!(e.to_string().contains("update the memoryswap"), "{e}");
        // NanoCPUs against the CFS period.
        c.host_config.nano_cpus = 500_000_000;
        let e = updated(
            &c,
            &UpdateRequest {
                cpu_period: Some(100_000),
                ..req()
            },
            &mut w,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("NanoCPUs has already been set"),
            "{e}"
        );
        // Restart policies: parsed as `run` does, refused with --rm.
        assert!(updated(
            &c,
            &UpdateRequest {
                restart: Some("bogus".into()),
                ..req()
            },
            &mut w
        )
        .is_err());
        c.host_config.auto_remove = true;
        let e = updated(
            &c,
            &UpdateRequest {
                restart: Some("always".into()),
                ..req()
            },
            &mut w,
        )
        .unwrap_err();
        assert!(e.to_string().contains("AutoRemove"), "{e}");
        let e = updated(
            &c,
            &UpdateRequest {
                memory: Some("1k".into()),
                ..req()
            },
            &mut w,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("Minimum memory limit allowed is 6MB"),
            "{e}"
        );
    }
}
