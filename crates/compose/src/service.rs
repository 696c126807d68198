//! One service of the model mapped onto the engine's create request (the same request
//! `skiff run` builds from its flags), its compose v2 labels and its configuration hash.

use serde_json::Value;
use sha2::{Digest, Sha256};
use skiff_engine::create::CreateRequest;

use crate::load::Project;
use crate::{Error, Result};

/// `com.docker.compose.project`.
pub const PROJECT: &str = "com.docker.compose.project";
/// `com.docker.compose.service`.
pub const SERVICE: &str = "com.docker.compose.service";
/// `com.docker.compose.container-number`.
pub const NUMBER: &str = "com.docker.compose.container-number";
/// `com.docker.compose.oneoff` (`True` for `run` containers).
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// `com.docker.compose.config-hash`.
pub const HASH: &str = "com.docker.compose.config-hash";
/// `com.docker.compose.project.working_dir`.
pub const WORKDIR: &str = "com.docker.compose.project.working_dir";
/// `com.docker.compose.project.config_files`.
pub const FILES: &str = "com.docker.compose.project.config_files";
/// `com.docker.compose.depends_on`.
pub const DEPENDS: &str = "com.docker.compose.depends_on";
/// `com.docker.compose.image` (the image id the container was made from).
pub const IMAGE: &str = "com.docker.compose.image";
/// `com.docker.compose.version`.
pub const VERSION: &str = "com.docker.compose.version";
/// `com.docker.compose.network` (on networks).
pub const NETWORK: &str = "com.docker.compose.network";
/// `com.docker.compose.volume` (on volumes).
pub const VOLUME: &str = "com.docker.compose.volume";

/// The version compose labels carry.
pub const COMPOSE_VERSION: &str = "2.29.0-skiff";

/// The hash that decides whether `up` recreates a service's containers: its normalised
/// configuration (replica count left out) and the image it runs.
pub fn config_hash(svc: &Value, image_id: &str) -> String {
    let mut s = svc.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("scale");
        if let Some(Value::Object(d)) = o.get_mut("deploy") {
            d.remove("replicas");
        }
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&s).unwrap_or_default());
    h.update(image_id.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The replicas `up` runs: `--scale`, else `deploy.replicas`, else `scale`, else 1.
pub fn replicas(svc: &Value, scale: Option<u32>) -> u32 {
    scale
        .or_else(|| svc["deploy"]["replicas"].as_u64().map(|n| n as u32))
        .or_else(|| svc["scale"].as_u64().map(|n| n as u32))
        .unwrap_or(1)
}

/// The image a service runs: `image`, else `<project>-<service>` (what a build would tag).
pub fn image_name(p: &Project, name: &str, svc: &Value) -> String {
    svc["image"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}-{name}", p.name))
}

/// The name of container `n` of a service.
pub fn container_name(p: &Project, name: &str, svc: &Value, n: u32) -> String {
    svc["container_name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}-{name}-{n}", p.name))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn seconds(d: &str) -> Result<String> {
    let ns = skiff_image::time::parse_go_duration_ns(d).map_err(Error::Invalid)?;
    Ok((ns / 1_000_000_000).to_string())
}

/// The networks of a service in attach order (`priority` high first, then name): the real
/// network name, and the aliases its peers know it by there.
pub fn networks(
    p: &Project,
    name: &str,
    svc: &Value,
) -> Vec<(String, Vec<String>, Option<String>)> {
    let mut nets: Vec<(i64, String, Value)> = svc["networks"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (v["priority"].as_i64().unwrap_or(0), k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    nets.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    nets.into_iter()
        .map(|(_, k, v)| {
            let real = p.networks[&k]["name"].as_str().unwrap_or(&k).to_string();
            let mut aliases = vec![name.to_string()];
            for a in strs(&v["aliases"]) {
                if !aliases.contains(&a) {
                    aliases.push(a);
                }
            }
            (real, aliases, v["ipv4_address"].as_str().map(String::from))
        })
        .collect()
}

/// Where a secret's or config's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSource {
    /// A host file (`file:`), bind-mounted as it is.
    File(std::path::PathBuf),
    /// Bytes (`content:`, `environment:`) skiff writes to a file of the project's.
    Content(Vec<u8>),
}

/// One secret or config of a service: mounted read-only at `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMount {
    /// `secret` or `config`.
    pub kind: &'static str,
    /// The top-level key (`source`).
    pub source: String,
    /// The absolute path in the container.
    pub target: String,
    /// Its bytes.
    pub from: FileSource,
    /// Owner, group and mode asked for (long syntax).
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Mode.
    pub mode: Option<u32>,
}

/// The secrets and configs of service `name`, as compose v2 mounts them: secrets at
/// `/run/secrets/<source or target>`, configs at `/<source>` or their target.
pub fn file_mounts(p: &Project, name: &str, svc: &Value) -> Result<Vec<FileMount>> {
    let mut out = Vec::new();
    for (key, kind, top, dir) in [
        ("secrets", "secret", &p.secrets, "/run/secrets/"),
        ("configs", "config", &p.configs, "/"),
    ] {
        for r in svc[key].as_array().into_iter().flatten() {
            let bad = |m: String| Error::Invalid(format!("service {name:?}: {key}: {m}"));
            let source = r["source"].as_str().unwrap_or_default().to_string();
            let def = top.get(&source).ok_or_else(|| {
                bad(format!(
                    "{kind} {source:?} is not defined in the top-level {key}"
                ))
            })?;
            let target = match r["target"].as_str() {
                Some(t) if t.starts_with('/') => t.to_string(),
                Some(t) if !t.is_empty() => format!("{dir}{t}"),
                _ => format!("{dir}{source}"),
            };
            let from = if let Some(f) = def["file"].as_str() {
                FileSource::File(f.into())
            } else if let Some(c) = def["content"].as_str().filter(|_| kind == "config") {
                FileSource::Content(c.as_bytes().to_vec())
            } else if let Some(var) = def["environment"].as_str() {
                let v = p.env.get(var).ok_or_else(|| {
                    bad(format!(
                        "{kind} {source:?}: environment variable {var:?} is not set"
                    ))
                })?;
                FileSource::Content(v.as_bytes().to_vec())
            } else if def["external"].as_bool() == Some(true) {
                return Err(bad(format!(
                    "{kind} {source:?} is external: external {key} need swarm, skiff supports file, environment{} sources",
                    if kind == "config" { " and content" } else { "" }
                )));
            } else {
                return Err(bad(format!(
                    "{kind} {source:?} has no file{} or environment",
                    if kind == "config" { ", content" } else { "" }
                )));
            };
            let id = |k: &str| r[k].as_str().and_then(|x| x.parse::<u32>().ok());
            out.push(FileMount {
                kind,
                source,
                target,
                from,
                uid: id("uid"),
                gid: id("gid"),
                mode: r["mode"].as_u64().map(|m| m as u32),
            });
        }
    }
    Ok(out)
}

/// What creating container `n` of a service needs besides the request: names that the
/// service's `network_mode: service:x` / `volumes_from: x` refer to, resolved by the caller.
pub struct Peers<'a> {
    /// Service name → the name of its first container.
    pub first_container: &'a dyn Fn(&str) -> Option<String>,
}

/// The create request for container `n` of service `name`.
#[allow(clippy::too_many_arguments)]
pub fn request(
    p: &Project,
    name: &str,
    svc: &Value,
    n: u32,
    image: &str,
    image_id: &str,
    oneoff: bool,
    peers: &Peers,
) -> Result<CreateRequest> {
    let bad = |k: &str, m: String| Error::Invalid(format!("service {name:?}: {k}: {m}"));
    let mut r = CreateRequest {
        image: image.to_string(),
        name: Some(container_name(p, name, svc, n)),
        ..Default::default()
    };
    if oneoff {
        r.name = None;
    }
    // Entrypoint and command, each as the list compose gives.
    let command = svc.get("command").map(strs);
    match svc.get("entrypoint").map(strs) {
        Some(ep) if ep.is_empty() => {
            r.entrypoint = Some(String::new());
            r.cmd = command.unwrap_or_default();
        }
        Some(ep) => {
            r.entrypoint = Some(ep[0].clone());
            r.entrypoint_args = ep[1..].to_vec();
            r.cmd = command.unwrap_or_default();
        }
        None => r.cmd = command.unwrap_or_default(),
    }
    for (k, v) in svc["environment"].as_object().into_iter().flatten() {
        match v {
            Value::Null => r.env.push(k.clone()),
            v => r.env.push(format!("{k}={}", s(v).unwrap_or_default())),
        }
    }
    r.workdir = s(&svc["working_dir"]);
    r.user = s(&svc["user"]);
    r.hostname = s(&svc["hostname"]);
    r.tty = svc["tty"].as_bool().unwrap_or(false);
    r.interactive = svc["stdin_open"].as_bool().unwrap_or(false);
    r.read_only = svc["read_only"].as_bool().unwrap_or(false);
    r.privileged = svc["privileged"].as_bool().unwrap_or(false);
    r.init = svc["init"].as_bool().unwrap_or(false);
    r.cap_add = strs(&svc["cap_add"]);
    r.cap_drop = strs(&svc["cap_drop"]);
    r.security_opt = strs(&svc["security_opt"]);
    r.dns = strs(&svc["dns"]);
    r.dns_search = strs(&svc["dns_search"]);
    r.dns_option = strs(&svc["dns_opt"]);
    r.add_host = strs(&svc["extra_hosts"]);
    r.expose = strs(&svc["expose"]);
    r.tmpfs = strs(&svc["tmpfs"]);
    r.stop_signal = s(&svc["stop_signal"]);
    if let Some(g) = s(&svc["stop_grace_period"]) {
        r.stop_timeout = Some(seconds(&g).map_err(|e| bad("stop_grace_period", e.to_string()))?);
    }
    r.cgroup_parent = s(&svc["cgroup_parent"]);
    r.mac_address = s(&svc["mac_address"]);
    // Restart policy: `restart`, else deploy.restart_policy.
    r.restart = s(&svc["restart"]).or_else(|| {
        let rp = &svc["deploy"]["restart_policy"];
        match rp["condition"].as_str()? {
            "none" => Some("no".into()),
            "any" => Some("always".into()),
            "on-failure" => Some(match rp["max_attempts"].as_u64() {
                Some(m) => format!("on-failure:{m}"),
                None => "on-failure".into(),
            }),
            _ => None,
        }
    });
    // Resources.
    let lim = &svc["deploy"]["resources"]["limits"];
    r.memory = s(&svc["mem_limit"]).or_else(|| s(&lim["memory"]));
    r.cpus = s(&svc["cpus"]).or_else(|| s(&lim["cpus"]));
    r.pids_limit = s(&svc["pids_limit"]).or_else(|| s(&lim["pids"]));
    r.host.memory_reservation = s(&svc["mem_reservation"])
        .or_else(|| s(&svc["deploy"]["resources"]["reservations"]["memory"]));
    r.host.memory_swap = s(&svc["memswap_limit"]);
    r.host.memory_swappiness = svc["mem_swappiness"].as_i64();
    r.host.cpu_shares = svc["cpu_shares"].as_i64();
    r.host.cpu_period = svc["cpu_period"].as_i64();
    r.host.cpu_quota = svc["cpu_quota"].as_i64();
    r.host.cpuset_cpus = s(&svc["cpuset"]);
    r.host.oom_kill_disable = svc["oom_kill_disable"].as_bool().unwrap_or(false);
    r.host.oom_score_adj = svc["oom_score_adj"].as_i64();
    r.host.shm_size = s(&svc["shm_size"]);
    r.host.pid = s(&svc["pid"]);
    r.host.ipc = s(&svc["ipc"]);
    r.host.uts = s(&svc["uts"]);
    r.host.userns = s(&svc["userns_mode"]);
    r.host.group_add = strs(&svc["group_add"]);
    r.host.devices = strs(&svc["devices"]);
    r.host.device_cgroup_rules = strs(&svc["device_cgroup_rules"]);
    for (k, v) in svc["sysctls"].as_object().into_iter().flatten() {
        r.host
            .sysctls
            .push(format!("{k}={}", s(v).unwrap_or_default()));
    }
    for (k, v) in svc["ulimits"].as_object().into_iter().flatten() {
        match v {
            Value::Object(l) => r.ulimits.push(format!(
                "{k}={}:{}",
                l["soft"].as_i64().unwrap_or(0),
                l["hard"].as_i64().unwrap_or(0)
            )),
            v => r.ulimits.push(format!("{k}={}", v.as_i64().unwrap_or(0))),
        }
    }
    // Logging.
    r.log_driver = s(&svc["logging"]["driver"]);
    for (k, v) in svc["logging"]["options"].as_object().into_iter().flatten() {
        r.log_opts.push(format!("{k}={}", s(v).unwrap_or_default()));
    }
    // Healthcheck.
    let hc = &svc["healthcheck"];
    if hc.is_object() {
        let test = strs(&hc["test"]);
        if hc["disable"].as_bool() == Some(true) || test.first().map(String::as_str) == Some("NONE")
        {
            r.health.no_healthcheck = true;
        } else {
            match test.first().map(String::as_str) {
                Some("CMD-SHELL" | "CMD") => r.health.test = test,
                Some(_) => r.health.cmd = Some(test.join(" ")),
                None => {}
            }
            r.health.interval = s(&hc["interval"]);
            r.health.timeout = s(&hc["timeout"]);
            r.health.start_period = s(&hc["start_period"]);
            r.health.start_interval = s(&hc["start_interval"]);
            r.health.retries = s(&hc["retries"]);
        }
    }
    // Network: network_mode, else the first of its networks (the others are connected after).
    match s(&svc["network_mode"]) {
        Some(m) => {
            if let Some(other) = m.strip_prefix("service:") {
                let c = (peers.first_container)(other).ok_or_else(|| {
                    bad(
                        "network_mode",
                        format!("service {other:?} has no container"),
                    )
                })?;
                r.network = Some(format!("container:{c}"));
            } else {
                r.network = Some(m);
            }
        }
        None => {
            let nets = networks(p, name, svc);
            if let Some((net, _, ip)) = nets.first() {
                r.network = Some(net.clone());
                r.ip = ip.clone();
            }
        }
    }
    if r.network
        .as_deref()
        .is_some_and(|m| m != "host" && !m.starts_with("container:") && m != "none")
        || r.network.is_none()
    {
        for port in svc["ports"].as_array().into_iter().flatten() {
            let target = port["target"].as_u64().unwrap_or(0);
            let proto = port["protocol"].as_str().unwrap_or("tcp");
            let published = s(&port["published"]).unwrap_or_default();
            let ip = port["host_ip"].as_str().unwrap_or_default();
            if oneoff {
                continue;
            }
            r.publish.push(match (ip.is_empty(), published.is_empty()) {
                (true, true) => format!("{target}/{proto}"),
                (true, false) => format!("{published}:{target}/{proto}"),
                (false, _) => format!("{ip}:{published}:{target}/{proto}"),
            });
        }
    }
    // Mounts.
    for v in svc["volumes"].as_array().into_iter().flatten() {
        let target = v["target"].as_str().unwrap_or_default();
        let ro = v["read_only"].as_bool() == Some(true);
        let mut mode: Vec<&str> = Vec::new();
        if ro {
            mode.push("ro");
        }
        match v["type"].as_str().unwrap_or("volume") {
            "bind" => {
                if let Some(pr) = v["bind"]["propagation"].as_str() {
                    mode.push(pr);
                }
                let src = v["source"].as_str().unwrap_or_default();
                let m = if mode.is_empty() {
                    String::new()
                } else {
                    format!(":{}", mode.join(","))
                };
                r.volumes.push(format!("{src}:{target}{m}"));
            }
            "volume" => {
                if v["volume"]["nocopy"].as_bool() == Some(true) {
                    mode.push("nocopy");
                }
                let m = if mode.is_empty() {
                    String::new()
                } else {
                    format!(":{}", mode.join(","))
                };
                match v["source"].as_str() {
                    Some(src) => {
                        let real = p.volumes[src]["name"].as_str().unwrap_or(src);
                        r.volumes.push(format!("{real}:{target}{m}"));
                    }
                    None => r.volumes.push(target.to_string()),
                }
            }
            "tmpfs" => {
                let mut opts = Vec::new();
                if let Some(sz) = s(&v["tmpfs"]["size"]) {
                    opts.push(format!("size={sz}"));
                }
                if let Some(md) = v["tmpfs"]["mode"].as_u64() {
                    opts.push(format!("mode={md:o}"));
                }
                r.tmpfs.push(if opts.is_empty() {
                    target.to_string()
                } else {
                    format!("{target}:{}", opts.join(","))
                });
            }
            other => {
                return Err(bad(
                    "volumes",
                    format!("mount type {other:?} is not supported"),
                ))
            }
        }
    }
    for vf in strs(&svc["volumes_from"]) {
        let (src, mode) = match vf.rsplit_once(':') {
            Some((a, m)) if m == "ro" || m == "rw" => (a.to_string(), Some(m.to_string())),
            _ => (vf.clone(), None),
        };
        let c = match src.strip_prefix("container:") {
            Some(c) => c.to_string(),
            None => {
                let svc_name = src.strip_prefix("service:").unwrap_or(&src);
                (peers.first_container)(svc_name).ok_or_else(|| {
                    bad(
                        "volumes_from",
                        format!("service {svc_name:?} has no container"),
                    )
                })?
            }
        };
        r.volumes_from.push(match mode {
            Some(m) => format!("{c}:{m}"),
            None => c,
        });
    }
    // Labels: the user's, then compose's.
    for (k, v) in svc["labels"].as_object().into_iter().flatten() {
        r.labels.push(format!("{k}={}", s(v).unwrap_or_default()));
    }
    let depends: Vec<String> = svc["depends_on"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(d, c)| {
            format!(
                "{d}:{}:{}",
                c["condition"].as_str().unwrap_or("service_started"),
                c["restart"].as_bool().unwrap_or(false)
            )
        })
        .collect();
    for (k, v) in [
        (PROJECT, p.name.clone()),
        (SERVICE, name.to_string()),
        (NUMBER, n.to_string()),
        (ONEOFF, if oneoff { "True" } else { "False" }.to_string()),
        (HASH, config_hash(svc, image_id)),
        (WORKDIR, p.working_dir.display().to_string()),
        (FILES, p.config_files.join(",")),
        (DEPENDS, depends.join(",")),
        (IMAGE, image_id.to_string()),
        (VERSION, COMPOSE_VERSION.to_string()),
    ] {
        r.labels.push(format!("{k}={v}"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_mount_targets_and_sources() {
        let mut p = Project {
            name: "p".into(),
            ..Default::default()
        };
        p.env.insert("TOKEN".into(), "t0k".into());
        p.secrets.insert("a".into(), json!({"file": "/h/a"}));
        p.secrets
            .insert("b".into(), json!({"environment": "TOKEN"}));
        p.configs.insert("c".into(), json!({"content": "hello"}));
        p.configs.insert("x".into(), json!({"external": true}));
        let svc = json!({
            "secrets": [{"source": "a"}, {"source": "b", "target": "tok", "uid": "7", "mode": 0o400},
                        {"source": "a", "target": "/abs/a"}],
            "configs": [{"source": "c"}, {"source": "c", "target": "etc/c.conf"}],
        });
        let m = file_mounts(&p, "web", &svc).unwrap();
        let t: Vec<&str> = m.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(
            t,
            [
                "/run/secrets/a",
                "/run/secrets/tok",
                "/abs/a",
                "/c",
                "/etc/c.conf"
            ]
        );
        assert_eq!(m[0].from, FileSource::File("/h/a".into()));
        assert_eq!(m[1].from, FileSource::Content(b"t0k".to_vec()));
        assert_eq!(
            (m[1].uid, m[1].gid, m[1].mode),
            (Some(7), None, Some(0o400))
        );
        assert_eq!(m[3].from, FileSource::Content(b"hello".to_vec()));
        for bad in [
            json!({"secrets": [{"source": "nope"}]}),
            json!({"configs": [{"source": "x"}]}),
        ] {
            assert!(file_mounts(&p, "web", &bad).is_err(), "{bad}");
        }
        p.env.clear();
        assert!(file_mounts(&p, "web", &svc).is_err());
    }

    #[test]
    fn exec_forms_kept() {
        let p = Project {
            name: "p".into(),
            ..Default::default()
        };
        let svc = json!({
            "entrypoint": ["sh", "-c"],
            "command": ["echo hi"],
            "healthcheck": {"test": ["CMD", "test", "-f", "/a b"]},
        });
        let none = |_: &str| None;
        let r = request(
            &p,
            "web",
            &svc,
            1,
            "busybox",
            "i",
            false,
            &Peers {
                first_container: &none,
            },
        )
        .unwrap();
        assert_eq!(r.entrypoint.as_deref(), Some("sh"));
        assert_eq!(r.entrypoint_args, ["-c"]);
        assert_eq!(r.cmd, ["echo hi"]);
        assert_eq!(r.health.test, ["CMD", "test", "-f", "/a b"]);
        assert_eq!(r.health.cmd, None);
    }

    #[test]
    fn hash_ignores_replicas() {
        let a = json!({"image": "x", "deploy": {"replicas": 1}});
        let b = json!({"image": "x", "deploy": {"replicas": 3}});
        let c = json!({"image": "x", "environment": {"A": "1"}, "deploy": {"replicas": 3}});
        assert_eq!(config_hash(&a, "i"), config_hash(&b, "i"));
        assert_ne!(config_hash(&a, "i"), config_hash(&c, "i"));
        assert_ne!(config_hash(&a, "i"), config_hash(&a, "j"));
        assert_eq!(replicas(&b, None), 3);
        assert_eq!(replicas(&b, Some(2)), 2);
    }
}
