//! One service brought to compose's canonical (long) form, type-checked key by key, and the
//! spec's merge of a service from a later file over the same service from an earlier one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::load::clean;

/// What normalising needs from the project: where relative paths start, and the variables
/// `env_file` values are interpolated with.
pub struct Ctx<'a> {
    /// The project directory.
    pub dir: &'a Path,
    /// The interpolation environment.
    pub env: &'a BTreeMap<String, String>,
}

/// A normalisation error: the key path below the service, and compose's message.
pub type NErr = (Vec<String>, String);

fn err<T>(key: &str, msg: impl Into<String>) -> Result<T, NErr> {
    Err((vec![key.to_string()], msg.into()))
}

/// Every key a service may have (compose-spec), plus `x-` extensions.
const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// A scalar as a string (compose accepts numbers and booleans where strings are meant).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_list(key: &str, v: Value) -> Result<Value, NErr> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Array(a) => {
            let mut out = Vec::new();
            for (i, x) in a.iter().enumerate() {
                match scalar(x) {
                    Some(s) => out.push(Value::String(s)),
                    None => {
                        return Err((vec![key.into(), i.to_string()], "must be a string".into()))
                    }
                }
            }
            Ok(Value::Array(out))
        }
        other => match scalar(&other) {
            Some(s) => Ok(json!([s])),
            None => err(key, "must be a string or a list of strings"),
        },
    }
}

/// `KEY=VALUE` lists or mappings → a mapping (values strings; `KEY` alone → null).
fn kv_map(key: &str, v: Value, sep: char) -> Result<Value, NErr> {
    let mut out = Map::new();
    match v {
        Value::Null => return Ok(Value::Null),
        Value::Array(a) => {
            for (i, x) in a.into_iter().enumerate() {
                let s = scalar(&x).ok_or_else(|| {
                    (
                        vec![key.to_string(), i.to_string()],
                        "must be a string".to_string(),
                    )
                })?;
                match s.split_once(sep) {
                    Some((k, v)) => out.insert(k.to_string(), json!(v)),
                    None => out.insert(s, Value::Null),
                };
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let v = match &x {
                    Value::Null => Value::Null,
                    other => Value::String(scalar(other).ok_or_else(|| {
                        (
                            vec![key.to_string(), k.clone()],
                            "must be a string, number or boolean".to_string(),
                        )
                    })?),
                };
                out.insert(k, v);
            }
        }
        _ => return err(key, "must be a mapping or a list"),
    }
    Ok(Value::Object(out))
}

fn boolean(key: &str, v: Value) -> Result<Value, NErr> {
    match &v {
        Value::Bool(_) | Value::Null => Ok(v),
        Value::String(s) if matches!(s.as_str(), "true" | "false") => Ok(json!(s == "true")),
        _ => err(key, "must be a boolean"),
    }
}

fn integer(key: &str, v: Value) -> Result<Value, NErr> {
    match &v {
        Value::Number(n) if n.is_i64() => Ok(v),
        Value::String(s) => s
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| (vec![key.into()], "must be an integer".into())),
        Value::Null => Ok(v),
        _ => err(key, "must be an integer"),
    }
}

fn string(key: &str, v: Value) -> Result<Value, NErr> {
    match v {
        Value::Null => Ok(Value::Null),
        other => scalar(&other)
            .map(Value::String)
            .ok_or_else(|| (vec![key.into()], "must be a string".into())),
    }
}

/// Splits a command string as a POSIX shell would (quotes and backslashes; no expansions).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            '\'' => {
                have = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(c) = it.next() {
                    cur.push(c);
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

fn command(key: &str, v: Value) -> Result<Value, NErr> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(s) => shell_split(&s)
            .map(|a| json!(a))
            .map_err(|m| (vec![key.into()], m)),
        Value::Array(_) => string_list(key, v),
        _ => err(key, "must be a string or a list"),
    }
}

/// A service's `secrets`/`configs` in long syntax: `[{source, target?, uid?, gid?, mode?}]`
/// (`mode` as a number; `0440`, `"0440"` and `"0o440"` all mean octal 440).
fn file_refs(key: &str, v: Value) -> Result<Value, NErr> {
    let list = match v {
        Value::Array(a) => a,
        Value::Null => return Ok(Value::Null),
        _ => return err(key, "must be a list"),
    };
    let mut out = Vec::new();
    for (i, x) in list.into_iter().enumerate() {
        let at = |m: &str| Err((vec![key.to_string(), i.to_string()], m.to_string()));
        let mut m = match x {
            Value::String(s) => {
                let mut m = Map::new();
                m.insert("source".into(), json!(s));
                m
            }
            Value::Object(m) => m,
            _ => return at("must be a string or a mapping"),
        };
        if !m.get("source").is_some_and(Value::is_string) {
            return at("source: must be a string");
        }
        for k in m.keys() {
            if !matches!(k.as_str(), "source" | "target" | "uid" | "gid" | "mode") {
                return Err((
                    vec![key.to_string(), i.to_string(), k.clone()],
                    "additional property is not allowed".into(),
                ));
            }
        }
        for k in ["uid", "gid"] {
            if let Some(v) = m.get(k) {
                match scalar(v).and_then(|s| s.parse::<u32>().ok()) {
                    Some(n) => {
                        m.insert(k.into(), json!(n.to_string()));
                    }
                    None => {
                        return Err((
                            vec![key.to_string(), i.to_string(), k.into()],
                            "must be a numeric id".into(),
                        ))
                    }
                }
            }
        }
        if let Some(v) = m.get("mode") {
            let digits = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim_start_matches("0o").to_string(),
                _ => String::new(),
            };
            match u32::from_str_radix(&digits, 8) {
                Ok(n) if n <= 0o7777 => {
                    m.insert("mode".into(), json!(n));
                }
                _ => {
                    return Err((
                        vec![key.to_string(), i.to_string(), "mode".into()],
                        format!("must be an octal file mode (not {v})"),
                    ))
                }
            }
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// A top-level `secrets`/`configs` entry with its `file` made absolute against `dir`.
pub fn file_source(dir: &Path, v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            if let Some(f) = m.get("file").and_then(Value::as_str) {
                let abs = host_path(dir, f);
                m.insert("file".into(), json!(abs));
            }
            Value::Object(m)
        }
        v => v,
    }
}

fn host_path(dir: &Path, s: &str) -> String {
    let p = if let Some(rest) = s.strip_prefix("~/") {
        Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(rest)
    } else {
        dir.join(s)
    };
    clean(&p).to_string_lossy().into_owned()
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
}

/// `[[ip:]published:]target[/proto]` (ranges expanded) → long syntax entries.
fn port_short(s: &str) -> Result<Vec<Value>, String> {
    let (body, proto) = match s.rsplit_once('/') {
        Some((b, p)) => (b, p),
        None => (s, "tcp"),
    };
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = body.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| format!("invalid port {s:?}"))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), body.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(format!("invalid port {s:?}")),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (p.to_string(), t.to_string()),
        None => (String::new(), rest.clone()),
    };
    let range = |r: &str| -> Result<(u32, u32), String> {
        let bad = || format!("invalid port {s:?}");
        match r.split_once('-') {
            Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
            None => {
                let n = r.parse().map_err(|_| bad())?;
                Ok((n, n))
            }
        }
    };
    let (t0, t1) = range(&target)?;
    let pub_range = if published.is_empty() {
        None
    } else {
        Some(range(&published)?)
    };
    if t1 < t0 || t1 > 65535 || t0 == 0 {
        return Err(format!("invalid port {s:?}"));
    }
    let mut out = Vec::new();
    for (i, t) in (t0..=t1).enumerate() {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if !ip.is_empty() {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(t));
        if let Some((p0, p1)) = pub_range {
            let p = if p1 - p0 == t1 - t0 {
                (p0 + i as u32).to_string()
            } else {
                format!("{p0}-{p1}")
            };
            m.insert("published".into(), json!(p));
        }
        m.insert("protocol".into(), json!(proto));
        out.push(Value::Object(m));
    }
    Ok(out)
}

fn ports(v: Value) -> Result<Value, NErr> {
    let Value::Array(a) = v else {
        return if v.is_null() {
            Ok(v)
        } else {
            err("ports", "must be a list")
        };
    };
    let mut out = Vec::new();
    for (i, p) in a.into_iter().enumerate() {
        let at = |m: String| (vec!["ports".to_string(), i.to_string()], m);
        match p {
            Value::Object(mut m) => {
                let t = integer("target", m.remove("target").unwrap_or(Value::Null))
                    .map_err(|e| at(e.1))?;
                if t.is_null() {
                    return Err(at("target is required".into()));
                }
                m.insert("target".into(), t);
                if let Some(p) = m.remove("published") {
                    m.insert("published".into(), json!(scalar(&p).unwrap_or_default()));
                }
                m.entry("protocol").or_insert(json!("tcp"));
                m.entry("mode").or_insert(json!("ingress"));
                out.push(Value::Object(m));
            }
            other => {
                let s = scalar(&other).ok_or_else(|| at("must be a string or a number".into()))?;
                out.extend(port_short(&s).map_err(at)?);
            }
        }
    }
    Ok(Value::Array(out))
}

fn volumes(v: Value, dir: &Path) -> Result<Value, NErr> {
    let Value::Array(a) = v else {
        return if v.is_null() {
            Ok(v)
        } else {
            err("volumes", "must be a list")
        };
    };
    let mut out = Vec::new();
    for (i, x) in a.into_iter().enumerate() {
        let at = |m: &str| (vec!["volumes".to_string(), i.to_string()], m.to_string());
        let m = match x {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (src, dst, mode) = match parts.as_slice() {
                    [d] => (None, *d, ""),
                    [s, d] => (Some(*s), *d, ""),
                    [s, d, m] => (Some(*s), *d, *m),
                    _ => return Err(at("invalid volume specification")),
                };
                let mut m = Map::new();
                match src {
                    None => {
                        m.insert("type".into(), json!("volume"));
                    }
                    Some(s) if is_path(s) => {
                        m.insert("type".into(), json!("bind"));
                        m.insert("source".into(), json!(host_path(dir, s)));
                    }
                    Some(s) => {
                        m.insert("type".into(), json!("volume"));
                        m.insert("source".into(), json!(s));
                    }
                }
                m.insert("target".into(), json!(dst));
                for o in mode.split(',').filter(|o| !o.is_empty()) {
                    match o {
                        "ro" => {
                            m.insert("read_only".into(), json!(true));
                        }
                        "rw" => {}
                        "nocopy" => {
                            m.insert("volume".into(), json!({"nocopy": true}));
                        }
                        "z" | "Z" => {
                            m.insert("bind".into(), json!({"selinux": o}));
                        }
                        p => {
                            m.insert("bind".into(), json!({"propagation": p}));
                        }
                    }
                }
                if m["type"] == "bind" && !m.contains_key("bind") {
                    m.insert("bind".into(), json!({"create_host_path": true}));
                }
                m
            }
            Value::Object(mut m) => {
                let ty = m
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("volume")
                    .to_string();
                if !matches!(
                    ty.as_str(),
                    "volume" | "bind" | "tmpfs" | "npipe" | "image" | "cluster"
                ) {
                    return Err(at("type must be volume, bind or tmpfs"));
                }
                m.insert("type".into(), json!(ty));
                if m.get("target").and_then(Value::as_str).is_none() {
                    return Err(at("target is required"));
                }
                if ty == "bind" {
                    let s = m
                        .get("source")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    if s.is_empty() {
                        return Err(at("a bind mount needs a source"));
                    }
                    m.insert("source".into(), json!(host_path(dir, &s)));
                }
                if let Some(r) = m.remove("read_only") {
                    let r = boolean("read_only", r).map_err(|e| at(&e.1))?;
                    if r == json!(true) {
                        m.insert("read_only".into(), r);
                    }
                }
                m
            }
            _ => return Err(at("must be a string or a mapping")),
        };
        if !m["target"].as_str().unwrap_or_default().starts_with('/') {
            return Err(at("target must be an absolute path"));
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

fn env_file_entries(v: Value) -> Result<Vec<(String, bool)>, NErr> {
    let items = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut out = Vec::new();
    for (i, x) in items.into_iter().enumerate() {
        match x {
            Value::String(s) => out.push((s, true)),
            Value::Object(m) => out.push((
                m.get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                m.get("required").and_then(Value::as_bool).unwrap_or(true),
            )),
            _ => {
                return Err((
                    vec!["env_file".into(), i.to_string()],
                    "must be a string or a mapping".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// Normalises one service as written in one file.
pub fn service(name: &str, v: Value, ctx: &Ctx) -> Result<Value, NErr> {
    let m = match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => return Err((vec![], format!("service {name:?} must be a mapping"))),
    };
    let mut out = Map::new();
    let mut env_from_files: Map<String, Value> = Map::new();
    for (k, v) in m {
        if k.starts_with("x-") {
            out.insert(k, v);
            continue;
        }
        if !SERVICE_KEYS.contains(&k.as_str()) {
            return err(&k, "additional property is not allowed");
        }
        let v = match k.as_str() {
            "command" | "entrypoint" => command(&k, v)?,
            "environment" | "labels" | "annotations" => kv_map(&k, v, '=')?,
            "sysctls" => kv_map(&k, v, '=')?,
            "extra_hosts" => match v {
                Value::Object(m) => Value::Array(
                    m.into_iter()
                        .map(|(h, ip)| json!(format!("{h}={}", scalar(&ip).unwrap_or_default())))
                        .collect(),
                ),
                other => string_list(&k, other)?,
            },
            "env_file" => {
                for (f, required) in env_file_entries(v)? {
                    let p = Path::new(&host_path(ctx.dir, &f)).to_path_buf();
                    let text = match std::fs::read_to_string(&p) {
                        Ok(t) => t,
                        Err(_) if !required => continue,
                        Err(e) => {
                            return err(
                                "env_file",
                                format!("env file {} not found: {e}", p.display()),
                            )
                        }
                    };
                    let look = |k: &str| ctx.env.get(k).cloned();
                    for (key, val) in crate::dotenv::parse(&text, &p.display().to_string(), &look)
                        .map_err(|m| (vec!["env_file".to_string()], m))?
                    {
                        env_from_files.insert(key, val.map(Value::String).unwrap_or(Value::Null));
                    }
                }
                continue;
            }
            "cap_add"
            | "cap_drop"
            | "dns"
            | "dns_search"
            | "dns_opt"
            | "expose"
            | "tmpfs"
            | "security_opt"
            | "group_add"
            | "profiles"
            | "device_cgroup_rules"
            | "links"
            | "external_links"
            | "volumes_from" => string_list(&k, v)?,
            "ports" => ports(v)?,
            "volumes" => volumes(v, ctx.dir)?,
            "privileged" | "read_only" | "init" | "tty" | "stdin_open" | "oom_kill_disable" => {
                boolean(&k, v)?
            }
            "scale" | "cpu_shares" | "oom_score_adj" | "cpu_period" | "cpu_quota"
            | "mem_swappiness" | "pids_limit" => integer(&k, v)?,
            "image" | "container_name" | "hostname" | "domainname" | "user" | "working_dir"
            | "network_mode" | "restart" | "stop_signal" | "stop_grace_period" | "pid" | "ipc"
            | "pull_policy" | "platform" | "mac_address" | "cgroup_parent" | "userns_mode"
            | "uts" | "shm_size" | "mem_limit" | "memswap_limit" | "mem_reservation" | "cpus"
            | "cpuset" | "runtime" | "isolation" | "cgroup" => string(&k, v)?,
            "networks" => match v {
                Value::Array(a) => {
                    let mut n = Map::new();
                    for (i, x) in a.iter().enumerate() {
                        let s = x.as_str().ok_or_else(|| {
                            (
                                vec![k.clone(), i.to_string()],
                                "must be a string".to_string(),
                            )
                        })?;
                        n.insert(s.to_string(), Value::Null);
                    }
                    Value::Object(n)
                }
                Value::Object(m) => {
                    let mut n = Map::new();
                    for (net, cfg) in m {
                        let cfg = match cfg {
                            Value::Object(mut c) => {
                                if let Some(a) = c.remove("aliases") {
                                    c.insert(
                                        "aliases".into(),
                                        string_list("aliases", a).map_err(|e| {
                                            (vec![k.clone(), net.clone(), "aliases".into()], e.1)
                                        })?,
                                    );
                                }
                                Value::Object(c)
                            }
                            Value::Null => Value::Null,
                            _ => return Err((vec![k.clone(), net], "must be a mapping".into())),
                        };
                        n.insert(net, cfg);
                    }
                    Value::Object(n)
                }
                Value::Null => Value::Null,
                _ => return err(&k, "must be a list or a mapping"),
            },
            "depends_on" => {
                let mut n = Map::new();
                match v {
                    Value::Array(a) => {
                        for (i, x) in a.iter().enumerate() {
                            let s = x.as_str().ok_or_else(|| {
                                (
                                    vec![k.clone(), i.to_string()],
                                    "must be a string".to_string(),
                                )
                            })?;
                            n.insert(
                                s.to_string(),
                                json!({"condition": "service_started", "required": true}),
                            );
                        }
                    }
                    Value::Object(m) => {
                        for (d, cfg) in m {
                            let mut c = match cfg {
                                Value::Object(c) => c,
                                Value::Null => Map::new(),
                                _ => return Err((vec![k.clone(), d], "must be a mapping".into())),
                            };
                            let cond = c
                                .get("condition")
                                .and_then(Value::as_str)
                                .unwrap_or("service_started")
                                .to_string();
                            if !matches!(
                                cond.as_str(),
                                "service_started"
                                    | "service_healthy"
                                    | "service_completed_successfully"
                            ) {
                                return Err((
                                    vec![k.clone(), d, "condition".into()],
                                    format!("must be one of service_started, service_healthy, service_completed_successfully (not {cond:?})"),
                                ));
                            }
                            c.insert("condition".into(), json!(cond));
                            let req =
                                boolean("required", c.remove("required").unwrap_or(json!(true)))
                                    .map_err(|e| {
                                        (vec![k.clone(), d.clone(), "required".into()], e.1)
                                    })?;
                            c.insert("required".into(), req);
                            if let Some(r) = c.remove("restart") {
                                c.insert(
                                    "restart".into(),
                                    boolean("restart", r)
                                        .map_err(|e| (vec![k.clone(), d.clone()], e.1))?,
                                );
                            }
                            n.insert(d, Value::Object(c));
                        }
                    }
                    Value::Null => {}
                    _ => return err(&k, "must be a list or a mapping"),
                }
                Value::Object(n)
            }
            "healthcheck" => match v {
                Value::Object(mut h) => {
                    if let Some(t) = h.remove("test") {
                        let t = match t {
                            Value::String(s) => json!(["CMD-SHELL", s]),
                            Value::Array(_) => string_list("test", t)
                                .map_err(|e| (vec![k.clone(), "test".into()], e.1))?,
                            _ => {
                                return Err((
                                    vec![k.clone(), "test".into()],
                                    "must be a string or a list".into(),
                                ))
                            }
                        };
                        h.insert("test".into(), t);
                    }
                    for d in ["interval", "timeout", "start_period", "start_interval"] {
                        if let Some(x) = h.remove(d) {
                            h.insert(
                                d.into(),
                                string(d, x).map_err(|e| (vec![k.clone(), d.into()], e.1))?,
                            );
                        }
                    }
                    if let Some(r) = h.remove("retries") {
                        h.insert(
                            "retries".into(),
                            integer("retries", r)
                                .map_err(|e| (vec![k.clone(), "retries".into()], e.1))?,
                        );
                    }
                    if let Some(r) = h.remove("disable") {
                        h.insert(
                            "disable".into(),
                            boolean("disable", r)
                                .map_err(|e| (vec![k.clone(), "disable".into()], e.1))?,
                        );
                    }
                    Value::Object(h)
                }
                Value::Null => Value::Null,
                _ => return err(&k, "must be a mapping"),
            },
            "build" => match v {
                Value::String(s) => {
                    json!({"context": host_path(ctx.dir, &s), "dockerfile": "Dockerfile"})
                }
                Value::Object(mut b) => {
                    let c = b
                        .get("context")
                        .and_then(Value::as_str)
                        .unwrap_or(".")
                        .to_string();
                    b.insert("context".into(), json!(host_path(ctx.dir, &c)));
                    if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
                        b.insert("dockerfile".into(), json!("Dockerfile"));
                    }
                    if let Some(a) = b.remove("args") {
                        b.insert(
                            "args".into(),
                            kv_map("args", a, '=')
                                .map_err(|e| (vec![k.clone(), "args".into()], e.1))?,
                        );
                    }
                    Value::Object(b)
                }
                _ => return err(&k, "must be a string or a mapping"),
            },
            "ulimits" => match v {
                Value::Object(u) => {
                    let mut n = Map::new();
                    for (name, x) in u {
                        let x = match x {
                            Value::Object(l) => {
                                let soft =
                                    integer("soft", l.get("soft").cloned().unwrap_or(Value::Null))
                                        .map_err(|e| (vec![k.clone(), name.clone()], e.1))?;
                                let hard =
                                    integer("hard", l.get("hard").cloned().unwrap_or(Value::Null))
                                        .map_err(|e| (vec![k.clone(), name.clone()], e.1))?;
                                json!({"soft": soft, "hard": hard})
                            }
                            other => integer(&name, other)
                                .map_err(|e| (vec![k.clone(), name.clone()], e.1))?,
                        };
                        n.insert(name, x);
                    }
                    Value::Object(n)
                }
                _ => return err(&k, "must be a mapping"),
            },
            "devices" => match v {
                Value::Array(a) => {
                    let mut n = Vec::new();
                    for (i, d) in a.into_iter().enumerate() {
                        n.push(match d {
                            Value::String(s) => json!(s),
                            Value::Object(m) => {
                                let s = m.get("source").and_then(Value::as_str).unwrap_or_default();
                                let t = m.get("target").and_then(Value::as_str).unwrap_or(s);
                                let p = m
                                    .get("permissions")
                                    .and_then(Value::as_str)
                                    .unwrap_or("rwm");
                                json!(format!("{s}:{t}:{p}"))
                            }
                            _ => {
                                return Err((
                                    vec![k.clone(), i.to_string()],
                                    "must be a string".into(),
                                ))
                            }
                        });
                    }
                    Value::Array(n)
                }
                _ => return err(&k, "must be a list"),
            },
            "deploy" => match v {
                Value::Object(mut d) => {
                    if let Some(r) = d.remove("replicas") {
                        d.insert(
                            "replicas".into(),
                            integer("replicas", r)
                                .map_err(|e| (vec![k.clone(), "replicas".into()], e.1))?,
                        );
                    }
                    Value::Object(d)
                }
                Value::Null => Value::Null,
                _ => return err(&k, "must be a mapping"),
            },
            "secrets" | "configs" => file_refs(&k, v)?,
            "logging" | "extends" | "blkio_config" | "credential_spec" | "develop"
            | "storage_opt" | "attach" | "cpu_count" | "cpu_percent" | "cpu_rt_period"
            | "cpu_rt_runtime" => v,
            _ => v,
        };
        if !v.is_null() {
            out.insert(k, v);
        }
    }
    if !env_from_files.is_empty() {
        // environment wins over env_file.
        let env = out.entry("environment").or_insert_with(|| json!({}));
        if let Value::Object(e) = env {
            for (k, v) in env_from_files {
                e.entry(k).or_insert(v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Keys whose lists are appended (duplicates dropped) when files merge.
const APPEND: &[&str] = &[
    "cap_add",
    "cap_drop",
    "dns",
    "dns_search",
    "dns_opt",
    "expose",
    "tmpfs",
    "security_opt",
    "group_add",
    "profiles",
    "devices",
    "extra_hosts",
    "external_links",
    "links",
    "volumes_from",
    "device_cgroup_rules",
    "secrets",
    "configs",
    "ports",
];

/// The spec's merge of service `b` (later file) over `a`.
pub fn merge_service(a: Value, b: Value) -> Value {
    let (mut a, b) = match (a, b) {
        (Value::Object(a), Value::Object(b)) => (a, b),
        (_, b) => return b,
    };
    for (k, v) in b {
        let old = a.remove(&k);
        let merged = match (old, v) {
            (Some(Value::Array(mut x)), Value::Array(y)) if k == "volumes" => {
                // By target: the later mount of a path replaces the earlier one.
                for m in y {
                    x.retain(|o| o["target"] != m["target"]);
                    x.push(m);
                }
                Value::Array(x)
            }
            (Some(Value::Array(mut x)), Value::Array(y)) if APPEND.contains(&k.as_str()) => {
                for m in y {
                    if !x.contains(&m) {
                        x.push(m);
                    }
                }
                Value::Array(x)
            }
            (Some(Value::Object(x)), Value::Object(y))
                if !matches!(k.as_str(), "command" | "entrypoint") =>
            {
                merge_map(x, y)
            }
            (_, v) => v,
        };
        a.insert(k, merged);
    }
    Value::Object(a)
}

fn merge_map(mut a: Map<String, Value>, b: Map<String, Value>) -> Value {
    for (k, v) in b {
        let old = a.remove(&k);
        let merged = match (old, v) {
            (Some(Value::Object(x)), Value::Object(y)) => merge_map(x, y),
            // healthcheck.test and the like: replaced.
            (_, v) => v,
        };
        a.insert(k, merged);
    }
    Value::Object(a)
}

/// After merging and `extends`: a service with no networks (and no network_mode) is on
/// `default`.
pub fn finish(s: Value) -> Value {
    let Value::Object(mut m) = s else { return s };
    if !m.contains_key("networks") && !m.contains_key("network_mode") {
        m.insert("networks".into(), json!({"default": null}));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: Value) -> Value {
        let env = BTreeMap::new();
        service(
            "s",
            v,
            &Ctx {
                dir: Path::new("/p"),
                env: &env,
            },
        )
        .unwrap()
    }

    #[test]
    fn secrets_and_configs_long_syntax() {
        let s = norm(json!({
            "secrets": ["a", {"source": "b", "target": "t", "uid": 1000, "gid": "5", "mode": 440}],
            "configs": [{"source": "c", "mode": "0o640"}],
        }));
        assert_eq!(
            s["secrets"],
            json!([{"source": "a"}, {"source": "b", "target": "t", "uid": "1000", "gid": "5", "mode": 0o440}])
        );
        assert_eq!(s["configs"], json!([{"source": "c", "mode": 0o640}]));
        let env = BTreeMap::new();
        let ctx = Ctx {
            dir: Path::new("/p"),
            env: &env,
        };
        for bad in [
            json!({"secrets": [{"target": "x"}]}),
            json!({"secrets": [{"source": "x", "mode": 999}]}),
            json!({"configs": [{"source": "x", "uid": "root"}]}),
            json!({"configs": [{"source": "x", "other": 1}]}),
        ] {
            assert!(service("s", bad.clone(), &ctx).is_err(), "{bad}");
        }
        assert_eq!(
            file_source(Path::new("/p"), json!({"file": "./s.txt"})),
            json!({"file": "/p/s.txt"})
        );
    }

    #[test]
    fn short_syntax() {
        let s = norm(json!({
            "command": "sh -c 'echo \"a b\"; x'",
            "environment": ["A=1", "B"],
            "ports": ["127.0.0.1:8080:80", "9000-9001:90-91/udp", 5000],
            "volumes": ["data:/d:ro", "./src:/src", "/anon"],
            "depends_on": ["db"],
            "networks": ["front"],
            "healthcheck": {"test": "true", "interval": "1s"},
        }));
        assert_eq!(s["command"], json!(["sh", "-c", "echo \"a b\"; x"]));
        assert_eq!(s["environment"], json!({"A": "1", "B": null}));
        assert_eq!(
            s["ports"][0],
            json!({"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "tcp"})
        );
        assert_eq!(s["ports"][2]["published"], json!("9001"));
        assert_eq!(s["ports"][2]["target"], json!(91));
        assert_eq!(
            s["ports"][3],
            json!({"mode": "ingress", "target": 5000, "protocol": "tcp"})
        );
        assert_eq!(
            s["volumes"][0],
            json!({"type": "volume", "source": "data", "target": "/d", "read_only": true})
        );
        assert_eq!(s["volumes"][1]["source"], json!("/p/src"));
        assert_eq!(
            s["volumes"][2],
            json!({"type": "volume", "target": "/anon"})
        );
        assert_eq!(s["depends_on"]["db"]["condition"], json!("service_started"));
        assert_eq!(s["networks"], json!({"front": null}));
        assert_eq!(s["healthcheck"]["test"], json!(["CMD-SHELL", "true"]));
    }

    #[test]
    fn unknown_key_and_types() {
        let env = BTreeMap::new();
        let ctx = Ctx {
            dir: Path::new("/p"),
            env: &env,
        };
        let e = service("s", json!({"imagee": "x"}), &ctx).unwrap_err();
        assert_eq!(e.0, vec!["imagee".to_string()]);
        let e = service("s", json!({"ports": "80"}), &ctx).unwrap_err();
        assert_eq!(e.0, vec!["ports".to_string()]);
        let e = service("s", json!({"privileged": "maybe"}), &ctx).unwrap_err();
        assert!(e.1.contains("boolean"));
    }

    #[test]
    fn merge_rules() {
        let a = norm(json!({
            "image": "a", "command": ["x", "y"], "environment": {"A": "1", "B": "2"},
            "ports": ["80"], "volumes": ["v:/d", "/keep"], "cap_add": ["NET_ADMIN"],
            "labels": {"l": "1"}, "healthcheck": {"test": ["CMD", "a"], "interval": "5s"},
        }));
        let b = norm(json!({
            "image": "b", "command": ["z"], "environment": {"B": "3", "C": "4"},
            "ports": ["81"], "volumes": ["w:/d"], "cap_add": ["NET_ADMIN", "SYS_TIME"],
            "healthcheck": {"test": ["CMD", "b"]},
        }));
        let m = merge_service(a, b);
        assert_eq!(m["image"], json!("b"));
        assert_eq!(m["command"], json!(["z"]));
        assert_eq!(m["environment"], json!({"A": "1", "B": "3", "C": "4"}));
        assert_eq!(m["ports"].as_array().unwrap().len(), 2);
        assert_eq!(
            m["volumes"],
            json!([{"type": "volume", "target": "/keep"}, {"type": "volume", "source": "w", "target": "/d"}])
        );
        assert_eq!(m["cap_add"], json!(["NET_ADMIN", "SYS_TIME"]));
        assert_eq!(m["labels"], json!({"l": "1"}));
        assert_eq!(
            m["healthcheck"],
            json!({"test": ["CMD", "b"], "interval": "5s"})
        );
    }

    #[test]
    fn split() {
        assert_eq!(
            shell_split("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
            vec!["a", "b c", "d\"e", "f g"]
        );
        assert!(shell_split("'x").is_err());
    }
}
