//! Container Device Interface: `--device vendor.com/class=name` and `--gpus` resolved through
//! CDI spec files, as docker 28 does with its CDI support turned on.
//!
//! Spec files (`*.json`; CDI's `cdiVersion`, `kind`, `devices[].name`, `containerEdits`) are read
//! from daemon.json's `cdi-spec-dirs` (docker's key; default `/etc/cdi` then `/var/run/cdi`, a
//! later directory overriding an earlier one for the same device). A requested device's edits —
//! its spec's `containerEdits` and its own — are applied to the OCI spec at create: environment,
//! device nodes (with a device-cgroup allow rule each), mounts, hooks and additional groups. An
//! unknown device, a malformed spec file or an edit skiff cannot apply fails the create with one
//! line naming it; nothing is dropped silently.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The CDI kind `--gpus` selects devices of.
pub const GPU_KIND: &str = "nvidia.com/gpu";

/// One device request as docker records it in `HostConfig.DeviceRequests`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    /// `cdi` for `--device vendor/class=name`; `""` (or `nvidia`) for `--gpus`.
    pub driver: String,
    /// Number of devices (-1 all); `--gpus N`.
    pub count: i64,
    /// Device names (CDI qualified names, or GPU ids for `--gpus device=…`).
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Option<Vec<String>>,
    /// `[["gpu", …]]` for `--gpus`.
    pub capabilities: Option<Vec<Vec<String>>>,
    /// Driver options.
    pub options: Option<BTreeMap<String, String>>,
}

/// Whether `s` is a CDI qualified device name (`vendor.com/class=name`) rather than a path.
pub fn is_qualified_name(s: &str) -> bool {
    let Some((kind, name)) = s.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let ok = |p: &str, extra: &[char]| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    !s.starts_with('/')
        && ok(vendor, &['.', '-', '_'])
        && ok(class, &['-', '_'])
        && ok(name, &['-', '_', '.', ':'])
}

/// Parses `--gpus` as docker does: `all`, a count, or comma-separated `count=`, `device=`,
/// `driver=`, `capabilities=` (a quoted `"device=0,1"` keeps its commas).
pub fn parse_gpus(v: &str) -> Result<DeviceRequest> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid argument \"{v}\" for \"--gpus\" flag: {why}"
        ))
    };
    let mut req = DeviceRequest {
        capabilities: Some(vec![vec!["gpu".to_string()]]),
        ..Default::default()
    };
    let fields = split_csv(v);
    if fields.is_empty() {
        return Err(bad("empty value"));
    }
    let mut seen_count = false;
    for f in fields {
        match f.split_once('=') {
            None if f == "all" => {
                req.count = -1;
                seen_count = true;
            }
            None => {
                req.count = f
                    .parse()
                    .map_err(|_| bad(&format!("unexpected value {f:?}")))?;
                seen_count = true;
            }
            Some(("count", n)) => {
                req.count = if n == "all" {
                    -1
                } else {
                    n.parse().map_err(|_| bad(&format!("bad count {n:?}")))?
                };
                seen_count = true;
            }
            Some(("device", ids)) => {
                req.device_ids = Some(
                    ids.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            Some(("driver", d)) => req.driver = d.to_string(),
            Some(("capabilities", c)) => {
                let mut caps: Vec<String> = c.split(',').map(str::to_string).collect();
                if !caps.iter().any(|c| c == "gpu") {
                    caps.push("gpu".into());
                }
                req.capabilities = Some(vec![caps]);
            }
            Some(("options", o)) => {
                let mut m = BTreeMap::new();
                for kv in o.split(',') {
                    let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                    m.insert(k.to_string(), val.to_string());
                }
                req.options = Some(m);
            }
            Some((k, _)) => return Err(bad(&format!("unexpected key {k:?}"))),
        }
    }
    if seen_count && req.device_ids.is_some() {
        return Err(bad("cannot set both Count and DeviceIDs on device request"));
    }
    Ok(req)
}

/// Splits on commas outside double quotes, dropping the quotes (docker reads `--gpus` as CSV).
fn split_csv(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in v.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || !out.is_empty() {
        out.push(cur);
    }
    out.retain(|s| !s.is_empty());
    out
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    devices: Vec<DeviceSpec>,
    #[serde(default)]
    container_edits: Option<Edits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceSpec {
    name: String,
    #[serde(default)]
    container_edits: Edits,
}

/// A CDI `containerEdits` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Edits {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    mounts: Vec<MountEdit>,
    #[serde(default)]
    hooks: Vec<HookEdit>,
    #[serde(default, rename = "additionalGIDs")]
    additional_gids: Vec<u32>,
    #[serde(default)]
    intel_rdt: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeviceNode {
    path: String,
    host_path: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    permissions: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MountEdit {
    host_path: String,
    container_path: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HookEdit {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    timeout: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct DaemonCdi {
    cdi_spec_dirs: Option<Vec<PathBuf>>,
}

/// The spec directories for the engine at `root`: daemon.json's `cdi-spec-dirs` (the engine's
/// own, else /etc/skiff/daemon.json), else CDI's defaults.
pub fn spec_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    for p in [
        root.join("daemon.json"),
        PathBuf::from("/etc/skiff/daemon.json"),
    ] {
        match std::fs::read(&p) {
            Ok(b) => {
                let d: DaemonCdi = serde_json::from_slice(&b)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
                if let Some(dirs) = d.cdi_spec_dirs {
                    return Ok(dirs);
                }
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Other(format!("read {}: {e}", p.display()))),
        }
    }
    Ok(vec![
        PathBuf::from("/etc/cdi"),
        PathBuf::from("/var/run/cdi"),
    ])
}

/// Every device of the spec files in `dirs`: qualified name → (spec-wide edits, device edits).
struct Registry {
    devices: BTreeMap<String, (Option<Edits>, Edits, PathBuf)>,
}

impl Registry {
    fn load(dirs: &[PathBuf]) -> Result<Registry> {
        let mut devices = BTreeMap::new();
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                // A spec file is read through no symlink at its last component and must be a
                // regular file (a FIFO or device would hang or feed the engine garbage).
                let md = std::fs::symlink_metadata(&f)
                    .map_err(|e| Error::Other(format!("CDI spec {}: {e}", f.display())))?;
                if !md.is_file() {
                    continue;
                }
                let b = std::fs::read(&f)
                    .map_err(|e| Error::Other(format!("CDI spec {}: {e}", f.display())))?;
                let s: SpecFile = serde_json::from_slice(&b)
                    .map_err(|e| Error::Invalid(format!("CDI spec {}: {e}", f.display())))?;
                if s.cdi_version.is_empty() || !s.kind.contains('/') {
                    return Err(Error::Invalid(format!(
                        "CDI spec {}: missing cdiVersion or kind vendor/class",
                        f.display()
                    )));
                }
                for dev in s.devices {
                    let q = format!("{}={}", s.kind, dev.name);
                    if !is_qualified_name(&q) {
                        return Err(Error::Invalid(format!(
                            "CDI spec {}: invalid device name {q:?}",
                            f.display()
                        )));
                    }
                    devices.insert(
                        q,
                        (s.container_edits.clone(), dev.container_edits, f.clone()),
                    );
                }
            }
        }
        Ok(Registry { devices })
    }

    /// The device names of `kind` (GPU ids), `all` excluded, in order.
    fn names_of(&self, kind: &str) -> Vec<String> {
        let prefix = format!("{kind}=");
        self.devices
            .keys()
            .filter_map(|q| q.strip_prefix(&prefix))
            .filter(|n| *n != "all")
            .map(str::to_string)
            .collect()
    }
}

/// The qualified CDI names `reqs` ask for, resolved against the registry (a GPU request becomes
/// devices of kind [`GPU_KIND`]).
fn qualified(reqs: &[DeviceRequest], reg: &Registry) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in reqs {
        if r.driver == "cdi" {
            out.extend(r.device_ids.iter().flatten().cloned());
            continue;
        }
        let gpu = |n: &str| format!("{GPU_KIND}={n}");
        let no_driver = || {
            // Go's %v of [][]string, as dockerd prints it: [[gpu]].
            let caps: Vec<String> = r
                .capabilities
                .iter()
                .flatten()
                .map(|c| format!("[{}]", c.join(" ")))
                .collect();
            Error::Invalid(format!(
                "could not select device driver {:?} with capabilities: [{}]",
                r.driver,
                caps.join(" ")
            ))
        };
        let names = reg.names_of(GPU_KIND);
        if let Some(ids) = &r.device_ids {
            for id in ids {
                if !reg.devices.contains_key(&gpu(id)) {
                    return Err(no_driver());
                }
                out.push(gpu(id));
            }
        } else if r.count < 0 {
            if reg.devices.contains_key(&gpu("all")) {
                out.push(gpu("all"));
            } else if names.is_empty() {
                return Err(no_driver());
            } else {
                out.extend(names.iter().map(|n| gpu(n)));
            }
        } else {
            let n = r.count as usize;
            if names.len() < n || names.is_empty() {
                return Err(no_driver());
            }
            out.extend(names.iter().take(n).map(|n| gpu(n)));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|q| seen.insert(q.clone()));
    Ok(out)
}

/// Applies the CDI edits of `reqs` to the OCI spec `v` (as JSON) for the engine at `root`.
pub fn apply(root: &Path, reqs: &[DeviceRequest], v: &mut Value) -> Result<()> {
    if reqs.is_empty() {
        return Ok(());
    }
    let reg = Registry::load(&spec_dirs(root)?)?;
    let names = qualified(reqs, &reg)?;
    let missing: Vec<&str> = names
        .iter()
        .filter(|q| !reg.devices.contains_key(*q))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "CDI device injection failed: unresolvable CDI devices {}",
            missing.join(", ")
        )));
    }
    let mut specs_done = std::collections::BTreeSet::new();
    for q in &names {
        let (common, own, file) = &reg.devices[q];
        if let Some(c) = common {
            if specs_done.insert(file.clone()) {
                apply_edits(c, v, q)?;
            }
        }
        apply_edits(own, v, q)?;
    }
    Ok(())
}

fn arr<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Vec<Value> {
    let mut cur = v;
    for p in path {
        if cur.get(*p).is_none_or(|x| x.is_null()) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    if !cur.is_array() {
        *cur = json!([]);
    }
    cur.as_array_mut().expect("just made an array")
}

fn apply_edits(e: &Edits, v: &mut Value, dev: &str) -> Result<()> {
    let bad = |why: String| Error::Invalid(format!("CDI device {dev}: {why}"));
    if e.intel_rdt.is_some() {
        return Err(bad("intelRdt edits are not supported".into()));
    }
    for kv in &e.env {
        let key = kv.split_once('=').map(|x| x.0).unwrap_or(kv);
        let env = arr(v, &["process", "env"]);
        env.retain(|x| x.as_str().and_then(|s| s.split_once('=')).map(|p| p.0) != Some(key));
        env.push(json!(kv));
    }
    for n in &e.device_nodes {
        if !n.path.starts_with('/') {
            return Err(bad(format!(
                "device node path {:?} is not absolute",
                n.path
            )));
        }
        let host = n.host_path.as_deref().unwrap_or(&n.path);
        let (kind, major, minor, mode) = match (&n.kind, n.major, n.minor) {
            (Some(k), Some(ma), Some(mi)) => (k.clone(), ma, mi, n.file_mode),
            _ => {
                let md = std::fs::metadata(host)
                    .map_err(|err| bad(format!("device node {host}: {err}")))?;
                let ft = md.file_type();
                let k = if ft.is_char_device() {
                    "c"
                } else if ft.is_block_device() {
                    "b"
                } else {
                    return Err(bad(format!("{host} is not a device node")));
                };
                let rdev = md.rdev();
                (
                    n.kind.clone().unwrap_or_else(|| k.to_string()),
                    libc::major(rdev) as i64,
                    libc::minor(rdev) as i64,
                    Some(n.file_mode.unwrap_or(md.mode() & 0o7777)),
                )
            }
        };
        if !["c", "b", "u", "p"].contains(&kind.as_str()) {
            return Err(bad(format!("device node {}: bad type {kind:?}", n.path)));
        }
        let perms = n.permissions.clone().unwrap_or_else(|| "rwm".into());
        if perms.is_empty() || !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(bad(format!(
                "device node {}: bad permissions {perms:?}",
                n.path
            )));
        }
        let devices = arr(v, &["linux", "devices"]);
        devices.retain(|d| d["path"] != n.path.as_str());
        let mut d = json!({"path": n.path, "type": kind, "major": major, "minor": minor,
            "uid": n.uid.unwrap_or(0), "gid": n.gid.unwrap_or(0)});
        if let Some(m) = mode {
            d["fileMode"] = json!(m);
        }
        devices.push(d);
        if kind != "p" {
            let cg_type = if kind == "u" {
                "c".to_string()
            } else {
                kind.clone()
            };
            arr(v, &["linux", "resources", "devices"]).push(json!({"allow": true,
                "type": cg_type, "major": major, "minor": minor, "access": perms}));
        }
    }
    for m in &e.mounts {
        if !m.container_path.starts_with('/') {
            return Err(bad(format!(
                "mount destination {:?} is not absolute",
                m.container_path
            )));
        }
        let kind = m.kind.clone().unwrap_or_else(|| "bind".into());
        let mut opts = m.options.clone();
        if kind == "bind" && !opts.iter().any(|o| o == "bind" || o == "rbind") {
            opts.push("bind".into());
        }
        let mounts = arr(v, &["mounts"]);
        mounts.retain(|x| x["destination"] != m.container_path.as_str());
        mounts.push(
            json!({"destination": m.container_path, "source": m.host_path,
            "type": kind, "options": opts}),
        );
    }
    for h in &e.hooks {
        let stage = match h.hook_name.as_str() {
            s @ ("prestart" | "createRuntime" | "createContainer" | "startContainer"
            | "poststart" | "poststop") => s,
            s => return Err(bad(format!("unknown hook {s:?}"))),
        };
        let mut hook = json!({"path": h.path});
        if !h.args.is_empty() {
            hook["args"] = json!(h.args);
        }
        if !h.env.is_empty() {
            hook["env"] = json!(h.env);
        }
        if let Some(t) = h.timeout {
            hook["timeout"] = json!(t);
        }
        arr(v, &["hooks", stage]).push(hook);
    }
    if !e.additional_gids.is_empty() {
        let g = arr(v, &["process", "user", "additionalGids"]);
        for id in &e.additional_gids {
            if !g.iter().any(|x| x.as_u64() == Some(u64::from(*id))) {
                g.push(json!(id));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("vendor.com/class=name"));
        assert!(is_qualified_name("nvidia.com/gpu=all"));
        assert!(!is_qualified_name("/dev/null"));
        assert!(!is_qualified_name("/dev/a=b/c"));
        assert!(!is_qualified_name("vendor.com=name"));
        assert!(!is_qualified_name("vendor.com/class="));
    }

    #[test]
    fn gpus_forms() {
        assert_eq!(parse_gpus("all").unwrap().count, -1);
        assert_eq!(parse_gpus("2").unwrap().count, 2);
        let r = parse_gpus("\"device=0,2\"").unwrap();
        assert_eq!(r.device_ids, Some(vec!["0".into(), "2".into()]));
        assert_eq!(r.capabilities, Some(vec![vec!["gpu".to_string()]]));
        let r = parse_gpus("count=1,capabilities=compute,driver=nvidia");
        // `capabilities=compute,driver=nvidia` splits at the comma (docker's CSV reading).
        assert!(r.is_ok());
        assert!(parse_gpus("").is_err());
        assert!(parse_gpus("bogus=1").is_err());
        assert!(parse_gpus("x").is_err());
        assert!(parse_gpus("2,\"device=1\"").is_err());
    }

    #[test]
    fn edits_apply_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.json"),
            r#"{"cdiVersion":"0.6.0","kind":"t.example/dev",
               "containerEdits":{"env":["COMMON=1"]},
               "devices":[{"name":"a","containerEdits":{"env":["A=1"],
                 "deviceNodes":[{"path":"/dev/x","type":"c","major":1,"minor":3,"permissions":"rw"}],
                 "mounts":[{"hostPath":"/etc/hostname","containerPath":"/h","options":["ro"]}],
                 "hooks":[{"hookName":"createContainer","path":"/bin/true"}]}},
                 {"name":"bad","containerEdits":{"intelRdt":{}}}]}"#,
        )
        .unwrap();
        let reg = Registry::load(&[dir.path().to_path_buf()]).unwrap();
        let mut v = json!({"process": {"env": ["A=0"]}});
        let (c, own, _) = &reg.devices["t.example/dev=a"];
        apply_edits(c.as_ref().unwrap(), &mut v, "x").unwrap();
        apply_edits(own, &mut v, "x").unwrap();
        assert_eq!(v["process"]["env"], json!(["COMMON=1", "A=1"]));
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/x");
        assert_eq!(v["linux"]["resources"]["devices"][0]["access"], "rw");
        assert_eq!(v["mounts"][0]["options"], json!(["ro", "bind"]));
        assert_eq!(v["hooks"]["createContainer"][0]["path"], "/bin/true");
        let (_, bad, _) = &reg.devices["t.example/dev=bad"];
        assert!(apply_edits(bad, &mut v, "bad").is_err());
        let req = DeviceRequest {
            driver: "cdi".into(),
            device_ids: Some(vec!["t.example/dev=nope".into()]),
            ..Default::default()
        };
        let names = qualified(&[req], &reg).unwrap();
        assert!(!reg.devices.contains_key(&names[0]));
        let gpu = parse_gpus("all").unwrap();
        assert!(qualified(&[gpu], &reg)
            .unwrap_err()
            .to_string()
            .contains("could not select device driver"));
    }
}
