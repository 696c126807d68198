//! Loading a project: finding its files, reading `.env`, parsing YAML (anchors, `<<` merge keys,
//! `x-` extensions), interpolating, normalising each service to the long syntax, merging several
//! `-f` files by the spec's rules, resolving `extends` and `include`, applying profiles and the
//! project name rules. The result is the model `config` prints and `up` runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::dotenv;
use crate::interp::interpolate;
use crate::normalize::{self, merge_service};
use crate::{Error, Result};

/// The file names looked up when no `-f` is given, in compose's order of preference.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// How to find and read a project (the global flags of `compose`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files in order (`-` is stdin); empty = look up the default names.
    pub files: Vec<String>,
    /// `--project-directory`.
    pub project_dir: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file` (replacing `<project dir>/.env`).
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// The process environment (taken by the caller, so tests can give their own).
    pub env: BTreeMap<String, String>,
    /// The directory relative paths start from.
    pub cwd: PathBuf,
    /// Standard input's text, for `-f -`.
    pub stdin: Option<String>,
}

/// A loaded project.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// The project name (normalised).
    pub name: String,
    /// The project directory.
    pub working_dir: PathBuf,
    /// The files read, as absolute paths (`-` for stdin).
    pub config_files: Vec<String>,
    /// The interpolation environment (process environment over `.env`).
    pub env: BTreeMap<String, String>,
    /// Enabled services, normalised.
    pub services: BTreeMap<String, Value>,
    /// Services left out by profiles.
    pub disabled: BTreeMap<String, Value>,
    /// Top-level networks (with `name` resolved).
    pub networks: BTreeMap<String, Value>,
    /// Top-level volumes (with `name` resolved).
    pub volumes: BTreeMap<String, Value>,
    /// Top-level secrets.
    pub secrets: BTreeMap<String, Value>,
    /// Top-level configs.
    pub configs: BTreeMap<String, Value>,
}

/// One file as read: its name, text and parsed value.
struct Source {
    name: String,
    dir: PathBuf,
    text: String,
}

/// The line of `text` where the block-style key `path` (list indices skipped) is written.
pub fn locate(text: &str, path: &[String]) -> Option<usize> {
    let want: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|p| p.parse::<usize>().is_err())
        .collect();
    if want.is_empty() {
        return None;
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - t.len();
        let mut t = t;
        while let Some(rest) = t.strip_prefix("- ") {
            indent += 2;
            let r = rest.trim_start();
            indent += rest.len() - r.len();
            t = r;
        }
        let Some((k, _)) = t.split_once(':') else {
            continue;
        };
        let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
        if k.is_empty() || k.contains(' ') && !k.starts_with('"') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, k.to_string()));
        let keys: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        if keys == want {
            return Some(n + 1);
        }
        if best.is_none() && want.starts_with(&keys) && keys.len() + 1 == want.len() {
            best = Some(n + 1);
        }
    }
    best
}

impl Source {
    fn err(&self, path: &[String], msg: impl Into<String>) -> Error {
        Error::Config {
            file: self.name.clone(),
            line: locate(&self.text, path),
            key: path.join("."),
            msg: msg.into(),
        }
    }
}

/// compose's normalisation of a directory name into a project name: lower case, only
/// `[a-z0-9_-]`, starting with a letter or digit.
pub fn normalize_project_name(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_string()
}

fn valid_project_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        clean(&cwd.join(p))
    }
}

/// `a/./b/../c` → `a/c`, without touching the filesystem.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The files to read: `-f`, else `COMPOSE_FILE`, else the first default name found in the
/// working directory or one of its parents.
fn find_files(o: &Options) -> Result<Vec<String>> {
    if !o.files.is_empty() {
        return Ok(o
            .files
            .iter()
            .map(|f| {
                if f == "-" {
                    f.clone()
                } else {
                    absolute(&o.cwd, Path::new(f))
                        .to_string_lossy()
                        .into_owned()
                }
            })
            .collect());
    }
    if let Some(cf) = o.env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = o
            .env
            .get("COMPOSE_PATH_SEPARATOR")
            .cloned()
            .unwrap_or_else(|| ":".into());
        return Ok(cf
            .split(sep.as_str())
            .map(|f| {
                absolute(&o.cwd, Path::new(f))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect());
    }
    let start = o.project_dir.clone().unwrap_or_else(|| o.cwd.clone());
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        for n in DEFAULT_FILES {
            let p = d.join(n);
            if p.is_file() {
                let mut v = vec![p.to_string_lossy().into_owned()];
                // compose.override.yaml / docker-compose.override.yml beside it, merged after.
                let stem = n.rsplit_once('.').map(|x| x.0).unwrap_or(n);
                for ext in ["yaml", "yml"] {
                    let o = d.join(format!("{stem}.override.{ext}"));
                    if o.is_file() {
                        v.push(o.to_string_lossy().into_owned());
                        break;
                    }
                }
                return Ok(v);
            }
        }
        dir = d.parent();
    }
    Err(Error::NoConfig(format!(
        "no configuration file provided: not found (looked for {} in {} and its parents)",
        DEFAULT_FILES.join(", "),
        start.display()
    )))
}

/// Reads `.env` (or `--env-file`): the interpolation environment is the process environment
/// over it.
fn project_env(o: &Options, project_dir: &Path) -> Result<BTreeMap<String, String>> {
    let files: Vec<PathBuf> = if o.env_files.is_empty() {
        let p = project_dir.join(".env");
        if p.is_file() {
            vec![p]
        } else {
            vec![]
        }
    } else {
        o.env_files.iter().map(|f| absolute(&o.cwd, f)).collect()
    };
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::Config {
            file: f.display().to_string(),
            line: None,
            key: String::new(),
            msg: format!("read env file: {e}"),
        })?;
        let look = |k: &str| o.env.get(k).cloned().or_else(|| env.get(k).cloned());
        for (k, v) in
            dotenv::parse(&text, &f.display().to_string(), &look).map_err(|msg| Error::Config {
                file: f.display().to_string(),
                line: None,
                key: String::new(),
                msg,
            })?
        {
            if let Some(v) = v {
                env.insert(k, v);
            }
        }
    }
    for (k, v) in &o.env {
        env.insert(k.clone(), v.clone());
    }
    Ok(env)
}

fn read_source(o: &Options, f: &str) -> Result<Source> {
    if f == "-" {
        return Ok(Source {
            name: "-".into(),
            dir: o.project_dir.clone().unwrap_or_else(|| o.cwd.clone()),
            text: o.stdin.clone().unwrap_or_default(),
        });
    }
    let p = Path::new(f);
    let text = std::fs::read_to_string(p).map_err(|e| Error::Config {
        file: f.to_string(),
        line: None,
        key: String::new(),
        msg: format!("read: {e}"),
    })?;
    Ok(Source {
        name: f.to_string(),
        dir: p.parent().map(Path::to_path_buf).unwrap_or_default(),
        text,
    })
}

/// Parses YAML into JSON, `<<` merge keys applied; syntax errors carry their line.
fn parse_yaml(src: &Source) -> Result<Value> {
    let mut y: serde_norway::Value = serde_norway::from_str(&src.text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        Error::Config {
            file: src.name.clone(),
            line,
            key: String::new(),
            msg: e.to_string(),
        }
    })?;
    // A merged mapping may bring its own `<<` (an anchor that merges another anchor):
    // apply again until none is left, as YAML's merge of merges reads (bounded).
    for _ in 0..32 {
        y.apply_merge().map_err(|e| src.err(&[], e.to_string()))?;
        if !has_merge_key(&y) {
            break;
        }
    }
    let v: Value = serde_json::to_value(&y).map_err(|e| src.err(&[], e.to_string()))?;
    match v {
        Value::Null => Ok(json!({})),
        Value::Object(_) => Ok(v),
        _ => Err(src.err(&[], "top-level object must be a mapping")),
    }
}

/// Whether a `<<` key is left anywhere in `y`.
fn has_merge_key(y: &serde_norway::Value) -> bool {
    match y {
        serde_norway::Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
        serde_norway::Value::Sequence(s) => s.iter().any(has_merge_key),
        serde_norway::Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// Interpolates every string value (keys are left alone), reporting the key path.
fn interpolate_tree(
    v: &mut Value,
    path: &mut Vec<String>,
    env: &BTreeMap<String, String>,
    src: &Source,
) -> Result<()> {
    match v {
        Value::String(s) => {
            let look = |k: &str| env.get(k).cloned();
            *s = interpolate(s, &look).map_err(|m| src.err(path, m))?;
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                path.push(i.to_string());
                interpolate_tree(x, path, env, src)?;
                path.pop();
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                path.push(k.clone());
                interpolate_tree(x, path, env, src)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

const TOP_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs", "include",
];

/// One file, read, interpolated and normalised (services, networks, volumes as maps).
struct Loaded {
    name: Option<String>,
    services: BTreeMap<String, Value>,
    networks: Map<String, Value>,
    volumes: Map<String, Value>,
    secrets: Map<String, Value>,
    configs: Map<String, Value>,
    include: Vec<Value>,
}

fn load_source(src: &Source, env: &BTreeMap<String, String>, project_dir: &Path) -> Result<Loaded> {
    let mut v = parse_yaml(src)?;
    let obj = v.as_object_mut().expect("checked by parse_yaml");
    obj.retain(|k, _| !k.starts_with("x-"));
    for k in obj.keys() {
        if !TOP_KEYS.contains(&k.as_str()) {
            return Err(src.err(
                std::slice::from_ref(k),
                "additional property is not allowed",
            ));
        }
    }
    interpolate_tree(&mut v, &mut Vec::new(), env, src)?;
    let obj = v.as_object_mut().expect("an object");
    let section = |obj: &mut Map<String, Value>, key: &str| -> Result<Map<String, Value>> {
        match obj.remove(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(src.err(&[key.to_string()], "must be a mapping")),
        }
    };
    let raw_services = section(obj, "services")?;
    let mut services = BTreeMap::new();
    let ctx = normalize::Ctx {
        dir: project_dir,
        env,
    };
    for (name, s) in raw_services {
        let s = normalize::service(&name, s, &ctx).map_err(|(p, m)| {
            src.err(
                &[&["services".to_string(), name.clone()][..], &p].concat(),
                m,
            )
        })?;
        services.insert(name, s);
    }
    let include = match obj.remove("include") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a,
        Some(_) => return Err(src.err(&["include".into()], "must be a list")),
    };
    Ok(Loaded {
        name: match obj.get("name") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(src.err(&["name".into()], "must be a string")),
        },
        networks: section(obj, "networks")?,
        volumes: section(obj, "volumes")?,
        secrets: section(obj, "secrets")?
            .into_iter()
            .map(|(k, v)| (k, normalize::file_source(project_dir, v)))
            .collect(),
        configs: section(obj, "configs")?
            .into_iter()
            .map(|(k, v)| (k, normalize::file_source(project_dir, v)))
            .collect(),
        services,
        include,
    })
}

/// Maps merged key by key (the override's values win; nested maps merge).
fn merge_maps(a: &mut Map<String, Value>, b: Map<String, Value>) {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(Value::Object(x)), Value::Object(y)) => merge_maps(x, y),
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
}

/// Resolves `extends` of `name` (recursively, other files included), returning the service.
fn resolve_extends(
    name: &str,
    services: &BTreeMap<String, Value>,
    file: &str,
    env: &BTreeMap<String, String>,
    project_dir: &Path,
    seen: &mut Vec<String>,
) -> Result<Value> {
    let key = format!("{file}#{name}");
    if seen.contains(&key) {
        return Err(Error::Config {
            file: file.into(),
            line: None,
            key: format!("services.{name}.extends"),
            msg: format!("circular reference: {}", seen.join(" -> ")),
        });
    }
    seen.push(key);
    let mut s = services.get(name).cloned().ok_or_else(|| Error::Config {
        file: file.into(),
        line: None,
        key: format!("services.{name}"),
        msg: "extends a service that does not exist".into(),
    })?;
    let Some(ext) = s.as_object_mut().and_then(|o| o.remove("extends")) else {
        seen.pop();
        return Ok(s);
    };
    let (base_name, base_file) = match ext {
        Value::String(b) => (b, None),
        Value::Object(m) => (
            m.get("service")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            m.get("file").and_then(Value::as_str).map(String::from),
        ),
        _ => {
            return Err(Error::Config {
                file: file.into(),
                line: None,
                key: format!("services.{name}.extends"),
                msg: "must be a string or a mapping".into(),
            })
        }
    };
    let base = match base_file {
        None => resolve_extends(&base_name, services, file, env, project_dir, seen)?,
        Some(f) => {
            let dir = Path::new(file).parent().unwrap_or(project_dir);
            let p = absolute(dir, Path::new(&f));
            let src = read_source(&Options::default(), &p.to_string_lossy())?;
            let l = load_source(&src, env, project_dir)?;
            resolve_extends(&base_name, &l.services, &src.name, env, project_dir, seen)?
        }
    };
    seen.pop();
    let mut base = base;
    if let Some(o) = base.as_object_mut() {
        // Never inherited: links, volumes_from, depends_on (as compose documents).
        for k in ["depends_on", "volumes_from", "links"] {
            o.remove(k);
        }
    }
    Ok(merge_service(base, s))
}

/// Loads the project `o` describes.
pub fn load(o: &Options) -> Result<Project> {
    let files = find_files(o)?;
    let first_dir = files
        .iter()
        .find(|f| *f != "-")
        .and_then(|f| Path::new(f).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| o.cwd.clone());
    let project_dir = o
        .project_dir
        .as_ref()
        .map(|d| absolute(&o.cwd, d))
        .unwrap_or(first_dir);
    let env = project_env(o, &project_dir)?;
    let mut p = Project {
        working_dir: project_dir.clone(),
        config_files: files.clone(),
        ..Default::default()
    };
    let mut name_from_file = None;
    let mut services: BTreeMap<String, Value> = BTreeMap::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let (mut networks, mut volumes, mut secrets, mut configs) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for f in &files {
        let src = read_source(o, f)?;
        let l = load_source(&src, &env, &project_dir)?;
        if l.name.is_some() {
            name_from_file = l.name.clone();
        }
        // `include`: each entry's project is loaded on its own (relative to its own directory)
        // and its resources added; a service defined twice is an error.
        for inc in &l.include {
            let paths: Vec<String> = match inc {
                Value::String(s) => vec![s.clone()],
                Value::Object(m) => match m.get("path") {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect(),
                    _ => vec![],
                },
                _ => vec![],
            };
            if paths.is_empty() {
                return Err(src.err(&["include".into()], "an entry names no path"));
            }
            let inc_files: Vec<String> = paths
                .iter()
                .map(|x| {
                    absolute(&src.dir, Path::new(x))
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            let sub = load(&Options {
                files: inc_files.clone(),
                project_dir: Path::new(&inc_files[0]).parent().map(Path::to_path_buf),
                project_name: Some("included".into()),
                env: o.env.clone(),
                cwd: src.dir.clone(),
                profiles: vec!["*".into()],
                ..Default::default()
            })?;
            for (n, s) in sub.services {
                if services.contains_key(&n) {
                    return Err(src.err(
                        &["include".into()],
                        format!(
                            "service {n:?} is defined twice (by the include of {})",
                            inc_files[0]
                        ),
                    ));
                }
                services.insert(n.clone(), s);
                origin.insert(n, inc_files[0].clone());
            }
            // Their names are this project's (the included project's default names dropped).
            let unnamed = |k: &str, mut v: Value| {
                if v["name"] == json!(format!("included_{k}")) {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("name");
                    }
                }
                v
            };
            for (k, v) in sub.networks {
                let v = unnamed(&k, v);
                networks.entry(k).or_insert(v);
            }
            for (k, v) in sub.volumes {
                let v = unnamed(&k, v);
                volumes.entry(k).or_insert(v);
            }
        }
        for (n, s) in l.services {
            let merged = match services.remove(&n) {
                Some(a) => merge_service(a, s),
                None => s,
            };
            origin.entry(n.clone()).or_insert_with(|| src.name.clone());
            services.insert(n, merged);
        }
        merge_maps(&mut networks, l.networks);
        merge_maps(&mut volumes, l.volumes);
        merge_maps(&mut secrets, l.secrets);
        merge_maps(&mut configs, l.configs);
    }
    // extends
    let mut resolved = BTreeMap::new();
    for n in services.keys() {
        let file = origin.get(n).cloned().unwrap_or_default();
        let s = resolve_extends(n, &services, &file, &env, &project_dir, &mut Vec::new())?;
        resolved.insert(n.clone(), normalize::finish(s));
    }
    // Project name: -p, COMPOSE_PROJECT_NAME, `name:`, the directory's name.
    let (name, from_flag) = if let Some(n) = &o.project_name {
        (n.clone(), true)
    } else if let Some(n) = env.get("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()) {
        (n.clone(), true)
    } else if let Some(n) = name_from_file {
        (n, true)
    } else {
        let base = project_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        (normalize_project_name(&base), false)
    };
    if !valid_project_name(&name) {
        return Err(Error::Invalid(if from_flag {
            format!("invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number")
        } else {
            format!(
                "project name must not be empty (the directory {} gives none; use -p)",
                project_dir.display()
            )
        }));
    }
    p.name = name;
    // Profiles: --profile, else COMPOSE_PROFILES.
    let mut active: BTreeSet<String> = o.profiles.iter().cloned().collect();
    if active.is_empty() {
        if let Some(v) = env.get("COMPOSE_PROFILES") {
            active.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
    }
    for (n, s) in resolved {
        let profiles: Vec<&str> = s["profiles"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let on = profiles.is_empty()
            || active.contains("*")
            || profiles.iter().any(|x| active.contains(*x));
        if on {
            p.services.insert(n, s);
        } else {
            p.disabled.insert(n, s);
        }
    }
    // References: depends_on, networks, volumes.
    let file = files.first().cloned().unwrap_or_default();
    let cerr = |key: String, msg: String| Error::Config {
        file: file.clone(),
        line: None,
        key,
        msg,
    };
    for (n, s) in &p.services {
        for (d, spec) in s["depends_on"].as_object().into_iter().flatten() {
            let required = spec["required"].as_bool().unwrap_or(true);
            if p.disabled.contains_key(d) && required {
                return Err(cerr(
                    format!("services.{n}.depends_on"),
                    format!(
                        "service {n:?} depends on service {d:?}, which is disabled by its profiles"
                    ),
                ));
            }
            if !p.services.contains_key(d) && !p.disabled.contains_key(d) {
                return Err(cerr(
                    format!("services.{n}.depends_on"),
                    format!(
                        "service {n:?} depends on undefined service {d:?}: invalid compose project"
                    ),
                ));
            }
        }
        for net in s["networks"].as_object().into_iter().flatten().map(|x| x.0) {
            if net != "default" && !networks.contains_key(net) {
                return Err(cerr(
                    format!("services.{n}.networks"),
                    format!(
                        "service {n:?} refers to undefined network {net}: invalid compose project"
                    ),
                ));
            }
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            if v["type"] == "volume" {
                if let Some(src) = v["source"].as_str() {
                    if !volumes.contains_key(src) {
                        return Err(cerr(
                            format!("services.{n}.volumes"),
                            format!("service {n:?} refers to undefined volume {src}: invalid compose project"),
                        ));
                    }
                }
            }
        }
    }
    // Networks and volumes get their real names.
    let uses_default = p.services.values().any(|s| {
        s["networks"]
            .as_object()
            .is_some_and(|m| m.contains_key("default"))
    });
    if uses_default && !networks.contains_key("default") {
        networks.insert("default".into(), Value::Null);
    }
    for (k, v) in networks {
        p.networks.insert(k.clone(), named(&p.name, &k, v));
    }
    for (k, v) in volumes {
        p.volumes.insert(k.clone(), named(&p.name, &k, v));
    }
    for (k, v) in secrets {
        p.secrets.insert(k.clone(), v);
    }
    for (k, v) in configs {
        p.configs.insert(k.clone(), v);
    }
    p.env = env;
    Ok(p)
}

/// A top-level network or volume with its `name` filled in: `<project>_<key>`, or the
/// external resource's own name.
fn named(project: &str, key: &str, v: Value) -> Value {
    let mut m = match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let external = match m.get("external") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(e)) => {
            if let Some(n) = e.get("name").cloned() {
                m.insert("name".into(), n);
            }
            true
        }
        _ => false,
    };
    if external {
        m.insert("external".into(), Value::Bool(true));
    }
    if !m.contains_key("name") {
        let n = if external {
            key.to_string()
        } else {
            format!("{project}_{key}")
        };
        m.insert("name".into(), Value::String(n));
    }
    Value::Object(m)
}

impl Project {
    /// The normalised model as `config` prints it.
    pub fn to_value(&self) -> Value {
        let mut top = Map::new();
        top.insert("name".into(), json!(self.name));
        top.insert("services".into(), json!(self.services));
        if !self.networks.is_empty() {
            top.insert("networks".into(), json!(self.networks));
        }
        if !self.volumes.is_empty() {
            top.insert("volumes".into(), json!(self.volumes));
        }
        if !self.secrets.is_empty() {
            top.insert("secrets".into(), json!(self.secrets));
        }
        if !self.configs.is_empty() {
            top.insert("configs".into(), json!(self.configs));
        }
        Value::Object(top)
    }

    /// The services in dependency order (dependencies first); names sorted within a level.
    pub fn order(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        fn visit<'a>(
            p: &'a Project,
            n: &'a str,
            state: &mut BTreeMap<&'a str, u8>,
            out: &mut Vec<String>,
            stack: &mut Vec<&'a str>,
        ) -> Result<()> {
            match state.get(n) {
                Some(2) => return Ok(()),
                Some(1) => {
                    stack.push(n);
                    return Err(Error::Invalid(format!(
                        "dependency cycle detected: {}",
                        stack.join(" -> ")
                    )));
                }
                _ => {}
            }
            state.insert(n, 1);
            stack.push(n);
            if let Some(s) = p.services.get(n) {
                for d in s["depends_on"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|x| x.0)
                {
                    if p.services.contains_key(d.as_str()) {
                        visit(p, d, state, out, stack)?;
                    }
                }
            }
            stack.pop();
            state.insert(n, 2);
            out.push(n.to_string());
            Ok(())
        }
        for n in self.services.keys() {
            visit(self, n, &mut state, &mut out, &mut Vec::new())?;
        }
        Ok(out)
    }
}

/// The model as YAML (`config`'s default format).
pub fn to_yaml(v: &Value) -> std::result::Result<String, String> {
    serde_norway::to_string(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str, profiles: &[&str], env: &[(&str, &str)]) -> Result<Project> {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("Some-Dir_X");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), text).unwrap();
        load(&Options {
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: dir,
            ..Default::default()
        })
    }

    const TEXT: &str = "services:\n  a:\n    image: x\n  b:\n    image: x\n    profiles: [dev]\n  c:\n    image: x\n    profiles: [dev, test]\n    depends_on: [a]\n";

    #[test]
    fn profiles() {
        let names = |p: Project| p.services.keys().cloned().collect::<Vec<_>>().join(",");
        assert_eq!(names(project(TEXT, &[], &[]).unwrap()), "a");
        assert_eq!(names(project(TEXT, &["dev"], &[]).unwrap()), "a,b,c");
        assert_eq!(names(project(TEXT, &["test"], &[]).unwrap()), "a,c");
        assert_eq!(names(project(TEXT, &["*"], &[]).unwrap()), "a,b,c");
        assert_eq!(
            names(project(TEXT, &[], &[("COMPOSE_PROFILES", "test, dev")]).unwrap()),
            "a,b,c"
        );
        // An enabled service needing a disabled one is refused.
        let t = "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    profiles: [p]\n";
        let e = project(t, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("disabled by its profiles"), "{e}");
    }

    #[test]
    fn merge_of_a_merge() {
        let t = "x-a: &a\n  image: x\n  user: a\n  init: true\nx-b: &b\n  <<: *a\n  user: b\nservices:\n  s:\n    <<: *b\n    init: false\n";
        let p = project(t, &[], &[]).unwrap();
        let s = &p.services["s"];
        assert_eq!(s["image"], "x");
        assert_eq!(s["user"], "b");
        assert_eq!(s["init"], false);
    }

    #[test]
    fn project_names() {
        assert_eq!(project(TEXT, &[], &[]).unwrap().name, "some-dir_x");
        assert_eq!(
            project(&format!("name: given\n{TEXT}"), &[], &[])
                .unwrap()
                .name,
            "given"
        );
        assert_eq!(
            project(
                &format!("name: given\n{TEXT}"),
                &[],
                &[("COMPOSE_PROJECT_NAME", "env")]
            )
            .unwrap()
            .name,
            "env"
        );
        assert!(project(&format!("name: Bad!\n{TEXT}"), &[], &[]).is_err());
        assert_eq!(normalize_project_name("_My App.2"), "myapp2");
    }

    #[test]
    fn order_and_cycles() {
        let p = project(TEXT, &["*"], &[]).unwrap();
        assert_eq!(p.order().unwrap(), vec!["a", "b", "c"]);
        let t = "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n";
        let e = project(t, &[], &[])
            .unwrap()
            .order()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn locate_lines() {
        let t = "services:\n  web:\n    image: x\n    ports:\n      - 80\n  db:\n    image: y\n";
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(locate(t, &p("services.db.image")), Some(7));
        assert_eq!(locate(t, &p("services.web.ports.0")), Some(4));
    }
}
