//! `create`: turning an image and docker's `run`/`create` flags into a container record, its
//! directory (`upper/`, `work/`, `rootfs/`, hostname, hosts, resolv.conf) and volumes.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use skiff_image::perms;
use skiff_image::store::ImageRecord;
use skiff_image::Store;

use crate::error::{Error, IoCtx, Result};
use crate::model::{
    Config, Container, HostConfig, LogConfig, MountPoint, MountSpec, RestartPolicy, State,
    ZERO_TIME,
};
use crate::{flags, names, spec, volumes_api, Engine};

/// The flags of `run`/`create`, as typed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The image as typed.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// Command and arguments after the image.
    pub cmd: Vec<String>,
    /// `--entrypoint` (empty string clears the image's).
    pub entrypoint: Option<String>,
    /// More elements of the entrypoint after `entrypoint` (compose's and the API's list form).
    pub entrypoint_args: Vec<String>,
    /// `-e` (KEY=VALUE or KEY, taken from our environment).
    pub env: Vec<String>,
    /// `--env-file` paths.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// Foreground run: attach the streams (and stdin once with `-i`).
    pub attach: bool,
    /// `-l`.
    pub labels: Vec<String>,
    /// `--label-file` paths.
    pub label_files: Vec<PathBuf>,
    /// `-v`.
    pub volumes: Vec<String>,
    /// `--mount`.
    pub mounts: Vec<String>,
    /// `--tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--volumes-from`.
    pub volumes_from: Vec<String>,
    /// `--restart`.
    pub restart: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--memory`.
    pub memory: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `--pids-limit`, as typed.
    pub pids_limit: Option<String>,
    /// `--blkio-weight` (10-1000, 0 = unset).
    pub blkio_weight: Option<u16>,
    /// Resource, namespace and device flags beyond the basics (`--memory-swap`, `--pid`, `--shm-size`, …).
    pub host: crate::hostflags::HostFlags,
    /// `--ulimit`.
    pub ulimits: Vec<String>,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`, as typed.
    pub stop_timeout: Option<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `-p/--publish`.
    pub publish: Vec<String>,
    /// `-P/--publish-all`.
    pub publish_all: bool,
    /// `--expose`.
    pub expose: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--add-host host:ip`.
    pub add_host: Vec<String>,
    /// `--network-alias` (names on the container's user networks).
    pub network_aliases: Vec<String>,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_option: Vec<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--log-driver`.
    pub log_driver: Option<String>,
    /// `--log-opt`.
    pub log_opts: Vec<String>,
    /// `--init`.
    pub init: bool,
    /// `--runtime` (None or `skiff-runtime`: the built-in runtime).
    pub runtime: Option<String>,
    /// `--health-*`, `--no-healthcheck`.
    pub health: crate::health::HealthFlags,
    /// Values an API client sends already typed (see [`crate::api::CreateBody`]); each one set
    /// replaces the flag of the same meaning, so no number or list is formatted back into a flag.
    pub typed: Typed,
}

/// The typed half of a [`CreateRequest`]: what the Docker Engine API carries as numbers, lists
/// and objects. The CLI leaves it empty; `skiff serve` fills it from the request body.
#[derive(Debug, Clone, Default)]
pub struct Typed {
    /// `Config.Entrypoint` as an argv (`Some(vec![])` clears the image's).
    pub entrypoint: Option<Vec<String>>,
    /// `HostConfig.Memory` in bytes.
    pub memory: Option<i64>,
    /// `HostConfig.NanoCpus`.
    pub nano_cpus: Option<i64>,
    /// `HostConfig.PidsLimit`.
    pub pids_limit: Option<i64>,
    /// `Config.StopTimeout` in seconds.
    pub stop_timeout: Option<i64>,
    /// `HostConfig.RestartPolicy`.
    pub restart: Option<RestartPolicy>,
    /// `HostConfig.PortBindings`.
    pub port_bindings: Option<BTreeMap<String, Vec<crate::model::PortBinding>>>,
    /// `HostConfig.Ulimits`.
    pub ulimits: Option<Vec<crate::model::Ulimit>>,
    /// `Config.Healthcheck` (replaces the `--health-*` flags).
    pub healthcheck: Option<crate::model::HealthConfig>,
    /// `Config.AttachStdin/AttachStdout/AttachStderr`, as sent (replaces what `attach` implies).
    pub attach: Option<(bool, bool, bool)>,
    /// `Config.StdinOnce`.
    pub stdin_once: Option<bool>,
    /// `Config.Domainname`.
    pub domainname: Option<String>,
    /// `HostConfig.Mounts`.
    pub mounts: Option<Vec<TypedMount>>,
}

fn image_config(store: &Store, img: &ImageRecord) -> Result<Value> {
    let (cfg, _) = store.config(&img.id)?;
    Ok(cfg.config.unwrap_or(Value::Null))
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    })
}

fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split_once('=').map(|x| x.0).unwrap_or(&kv).to_string();
    env.retain(|e| e.split_once('=').map(|x| x.0).unwrap_or(e) != key);
    env.push(kv);
}

fn read_lines(p: &Path, what: &str) -> Result<Vec<String>> {
    let s = std::fs::read_to_string(p).ctx(|| format!("{what} {}", p.display()))?;
    Ok(s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn env_entry(e: &str) -> Result<Option<String>> {
    flags::env(e)?;
    if e.contains('=') {
        return Ok(Some(e.to_string()));
    }
    Ok(std::env::var(e).ok().map(|v| format!("{e}={v}")))
}

/// `chown -R` without following symbolic links (a link is changed itself, never entered).
fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(p)?.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A mount still to be realized (volumes are created once the id exists).
struct PendingMount {
    mp: MountPoint,
    volume: Option<Option<String>>,
}

fn parse_volume_flag(v: &str) -> Result<PendingMount> {
    let parts: Vec<&str> = v.split(':').collect();
    let bad = || Error::Invalid(format!("invalid volume specification: '{v}'"));
    let (src, dst, mode) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [s, d] => (Some(*s), *d, ""),
        [s, d, m] => (Some(*s), *d, *m),
        _ => return Err(bad()),
    };
    if !dst.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid volume specification: '{v}': invalid mount config: destination must be an absolute path"
        )));
    }
    let mut rw = true;
    let mut propagation = String::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => rw = false,
            "rw" => rw = true,
            "z" | "Z" | "nocopy" | "copy" | "U" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                propagation = m.to_string()
            }
            _ => return Err(bad()),
        }
    }
    let mut mp = MountPoint {
        destination: dst.trim_end_matches('/').to_string(),
        mode: mode.to_string(),
        rw,
        ..Default::default()
    };
    if mp.destination.is_empty() {
        mp.destination = "/".into();
    }
    match src {
        Some(s) if s.starts_with('/') => {
            mp.kind = "bind".into();
            mp.source = s.to_string();
            mp.propagation = if propagation.is_empty() {
                "rprivate".into()
            } else {
                propagation
            };
            Ok(PendingMount { mp, volume: None })
        }
        Some(s) => {
            names::validate_name(s).map_err(|_| {
                Error::Invalid(format!(
                    "invalid volume specification: '{v}': \"{s}\" includes invalid characters for a local volume name"
                ))
            })?;
            mp.kind = "volume".into();
            mp.driver = "local".into();
            Ok(PendingMount {
                mp,
                volume: Some(Some(s.to_string())),
            })
        }
        None => {
            mp.kind = "volume".into();
            mp.driver = "local".into();
            mp.anonymous = true;
            Ok(PendingMount {
                mp,
                volume: Some(None),
            })
        }
    }
}

fn parse_mount_flag(v: &str) -> Result<(PendingMount, MountSpec)> {
    let mut kind = "volume".to_string();
    let mut src = String::new();
    let mut dst = String::new();
    let mut ro = false;
    let mut tmpfs_opts = Vec::new();
    // What docker's CLI records beside type/source/target (its typed options, each only when
    // one of its keys is given).
    let (mut bind_o, mut vol_o, mut tmpfs_o) = (Map::new(), Map::new(), Map::new());
    for kv in v.split(',') {
        let (k, val) = match kv.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (kv.trim(), "true"),
        };
        match k {
            "type" => kind = val.to_string(),
            "source" | "src" => src = val.to_string(),
            "target" | "destination" | "dst" => dst = val.to_string(),
            "readonly" | "ro" => ro = matches!(val, "true" | "1"),
            "tmpfs-size" => {
                let b = flags::ram_in_bytes(val).map_err(|_| {
                    flags::bad_flag("--mount", v, format!("invalid value for tmpfs-size: {val}"))
                })?;
                tmpfs_opts.push(format!("size={b}"));
                tmpfs_o.insert("SizeBytes".into(), json!(b));
            }
            "tmpfs-mode" => {
                flags::tmpfs_mode(val).map_err(|_| {
                    flags::bad_flag("--mount", v, format!("invalid value for tmpfs-mode: {val}"))
                })?;
                tmpfs_opts.push(format!("mode={val}"));
                // docker records the bits as a number (1770 → 1016).
                let bits = u32::from_str_radix(val, 8).unwrap_or_default();
                tmpfs_o.insert("Mode".into(), json!(bits));
            }
            "bind-propagation" => {
                bind_o.insert("Propagation".into(), json!(val));
            }
            "volume-nocopy" => {
                vol_o.insert("NoCopy".into(), json!(matches!(val, "true" | "1")));
                vol_o.insert("DriverConfig".into(), json!({}));
            }
            "consistency" | "volume-driver" => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "invalid argument for --mount: unexpected key '{k}' in '{kv}'"
                )))
            }
        }
    }
    let (p, mut spec) = mount_from_parts(&kind, src, dst, ro, tmpfs_opts, v)?;
    let some = |m: Map<String, Value>| (!m.is_empty()).then_some(Value::Object(m));
    spec.bind_options = some(bind_o);
    spec.volume_options = some(vol_o);
    spec.tmpfs_options = some(tmpfs_o);
    Ok((p, spec))
}

/// One `HostConfig.Mounts` entry of an API request (what `--mount` says, typed).
#[derive(Debug, Clone, Default)]
pub struct TypedMount {
    /// `bind`, `volume`, `tmpfs`.
    pub kind: String,
    /// Host path or volume name.
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// `TmpfsOptions.SizeBytes`.
    pub tmpfs_size: Option<i64>,
    /// `TmpfsOptions.Mode` (permission bits).
    pub tmpfs_mode: Option<u32>,
}

fn typed_mount(m: &TypedMount) -> Result<(PendingMount, MountSpec)> {
    let mut opts = Vec::new();
    if let Some(b) = m.tmpfs_size.filter(|b| *b != 0) {
        if b < 0 {
            return Err(Error::Invalid(format!(
                "Mounts: invalid TmpfsOptions.SizeBytes {b} for {}",
                m.target
            )));
        }
        opts.push(format!("size={b}"));
    }
    if let Some(mode) = m.tmpfs_mode.filter(|m| *m != 0) {
        opts.push(format!("mode={:o}", mode & 0o7777));
    }
    let shown = format!("type={},source={},target={}", m.kind, m.source, m.target);
    let (p, mut spec) = mount_from_parts(
        &m.kind,
        m.source.clone(),
        m.target.clone(),
        m.read_only,
        opts,
        &shown,
    )?;
    let mut t = Map::new();
    if let Some(b) = m.tmpfs_size.filter(|b| *b != 0) {
        t.insert("SizeBytes".into(), json!(b));
    }
    if let Some(mode) = m.tmpfs_mode.filter(|m| *m != 0) {
        t.insert("Mode".into(), json!(mode));
    }
    spec.tmpfs_options = (!t.is_empty()).then_some(Value::Object(t));
    Ok((p, spec))
}

/// A `--mount` (or an API `Mounts` entry) from its parts; `v` is how to show it in errors.
fn mount_from_parts(
    kind: &str,
    src: String,
    dst: String,
    ro: bool,
    tmpfs_opts: Vec<String>,
    v: &str,
) -> Result<(PendingMount, MountSpec)> {
    let kind = kind.to_string();
    if dst.is_empty() {
        return Err(Error::Invalid(format!(
            "invalid argument \"{v}\" for \"--mount\" flag: target is required"
        )));
    }
    let spec = MountSpec {
        kind: kind.clone(),
        source: src.clone(),
        target: dst.clone(),
        read_only: ro,
        ..Default::default()
    };
    let mut mp = MountPoint {
        kind: kind.clone(),
        destination: dst.clone(),
        rw: !ro,
        ..Default::default()
    };
    let pending = match kind.as_str() {
        "bind" => {
            if !src.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute"
                )));
            }
            if !Path::new(&src).exists() {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                )));
            }
            mp.source = src;
            mp.propagation = "rprivate".into();
            PendingMount { mp, volume: None }
        }
        "volume" => {
            mp.driver = "local".into();
            mp.mode = "z".into();
            if src.is_empty() {
                mp.anonymous = true;
                PendingMount {
                    mp,
                    volume: Some(None),
                }
            } else {
                PendingMount {
                    mp,
                    volume: Some(Some(src)),
                }
            }
        }
        "tmpfs" => {
            mp.options = if tmpfs_opts.is_empty() {
                String::new()
            } else {
                let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
                o.extend(tmpfs_opts);
                o.join(",")
            };
            PendingMount { mp, volume: None }
        }
        other => {
            return Err(Error::Invalid(format!(
                "invalid mount config for type \"{other}\": mount type unknown"
            )))
        }
    };
    Ok((pending, spec))
}

fn parse_tmpfs_flag(v: &str) -> Result<(PendingMount, String, String)> {
    let (dst, opts) = match v.split_once(':') {
        Some((d, o)) => (d, o),
        None => (v, ""),
    };
    if !dst.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid tmpfs mount: {v}: destination must be an absolute path"
        )));
    }
    let mut o = vec!["rw".to_string(), "noexec".into(), "nosuid".into()];
    if !opts.is_empty() {
        o = opts.split(',').map(String::from).collect();
    }
    for opt in &o {
        let checked = match opt.split_once('=') {
            Some(("size", v)) => flags::tmpfs_size(v),
            Some(("mode", v)) => flags::tmpfs_mode(v),
            _ => Ok(()),
        };
        checked.map_err(|why| flags::bad_flag("--tmpfs", v, why))?;
    }
    if !o.iter().any(|x| x.starts_with("size=")) {
        o.push("size=65536k".into());
    }
    let mp = MountPoint {
        kind: "tmpfs".into(),
        destination: dst.to_string(),
        rw: !o.iter().any(|x| x == "ro"),
        options: o.join(","),
        ..Default::default()
    };
    Ok((
        PendingMount { mp, volume: None },
        dst.to_string(),
        opts.to_string(),
    ))
}

/// What `run` keeps from creating its container for the start: the rootfs stays mounted
/// (`volatile` for `--rm`) and the OCI spec built to validate the container is the one it runs.
pub struct Prepared {
    /// The container's config.json.
    pub spec: oci_spec::runtime::Spec,
    /// Settings discarded on this host, as docker's `WARNING:` lines.
    pub warnings: Vec<String>,
}

/// Validates the request and creates the container; returns the record (state `created`).
/// Everything that can be checked is checked before anything is recorded, including the OCI
/// spec of the container (capabilities, security options, seccomp profile, the user in the
/// image's /etc/passwd); a failure leaves no row, name, directory, mount or volume use behind.
pub fn create(
    e: &Engine,
    store: &Store,
    img: &ImageRecord,
    req: &CreateRequest,
) -> Result<(Container, Vec<String>)> {
    create_inner(e, store, img, req, false).map(|(c, _, w)| (c, w))
}

/// [`create`] for `run`: the container's rootfs stays mounted and its spec is handed to
/// [`Engine::start_new`], so the start neither mounts nor builds it again.
pub fn create_prepared(
    e: &Engine,
    store: &Store,
    img: &ImageRecord,
    req: &CreateRequest,
) -> Result<(Container, Prepared)> {
    let (c, spec, warnings) = create_inner(e, store, img, req, true)?;
    let spec = spec.ok_or_else(|| Error::Other(format!("container {}: no spec", c.id)))?;
    Ok((c, Prepared { spec, warnings }))
}

/// Checks that need neither the image nor the disk, so that a bad value is refused before
/// anything (a named volume, a bind source directory) is created.
fn precheck_security(req: &CreateRequest) -> Result<()> {
    let invalid = |e: skiff_runtime::docker::DockerSpecError| Error::Invalid(e.to_string());
    for c in &req.cap_add {
        skiff_runtime::docker::normalize_cap("--cap-add", c).map_err(invalid)?;
    }
    for c in &req.cap_drop {
        skiff_runtime::docker::normalize_cap("--cap-drop", c).map_err(invalid)?;
    }
    skiff_runtime::docker::check_security_opts(&req.security_opt).map_err(invalid)
}

fn create_inner(
    e: &Engine,
    store: &Store,
    img: &ImageRecord,
    req: &CreateRequest,
    keep_mounted: bool,
) -> Result<(Container, Option<oci_spec::runtime::Spec>, Vec<String>)> {
    let mut warnings = Vec::new();
    let blkio_weight = blkio_weight(req.blkio_weight, &mut warnings)?;
    let icfg = image_config(store, img)?;
    let given_name = match &req.name {
        Some(n) => Some(names::validate_name(n)?),
        None => None,
    };
    // Config.
    let mut env: Vec<String> = strings(&icfg["Env"]).unwrap_or_default();
    for f in &req.env_files {
        for l in read_lines(f, "env file")? {
            if l.split_once('=').map_or(l.as_str(), |x| x.0).is_empty() {
                return Err(Error::Invalid(format!(
                    "--env-file {}: poorly formatted environment: no variable name on line '{l}'",
                    f.display()
                )));
            }
            if let Some(kv) = env_entry(&l)? {
                set_env(&mut env, kv);
            }
        }
    }
    for v in &req.env {
        if let Some(kv) = env_entry(v)? {
            set_env(&mut env, kv);
        }
    }
    let entrypoint_flag = match (&req.typed.entrypoint, &req.entrypoint) {
        (Some(argv), _) => Some(argv.clone()),
        (None, Some(ep)) if ep.is_empty() && req.entrypoint_args.is_empty() => Some(Vec::new()),
        (None, Some(ep)) => {
            let mut v = vec![ep.clone()];
            v.extend(req.entrypoint_args.iter().cloned());
            Some(v)
        }
        (None, None) => None,
    };
    let (entrypoint, cmd) = match entrypoint_flag {
        Some(ep) if ep.is_empty() => (None, Some(req.cmd.clone())),
        Some(ep) => (Some(ep), Some(req.cmd.clone())),
        None => {
            let ep = strings(&icfg["Entrypoint"]);
            let cmd = if req.cmd.is_empty() {
                strings(&icfg["Cmd"])
            } else {
                Some(req.cmd.clone())
            };
            (ep, cmd)
        }
    };
    let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
    argv.extend(cmd.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    let mut labels: BTreeMap<String, String> = icfg["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut label_lines = Vec::new();
    for f in &req.label_files {
        label_lines.extend(read_lines(f, "label file")?);
    }
    label_lines.extend(req.labels.iter().cloned());
    for l in label_lines {
        let (k, v) = l.split_once('=').unwrap_or((&l, ""));
        if k.is_empty() {
            return Err(Error::Invalid(format!("invalid label: {l}")));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let mut network = e.resolve_network(&flags::network(req.network.as_deref())?)?;
    let port_bindings = match &req.typed.port_bindings {
        Some(pb) => crate::network::check_port_bindings(pb)?,
        None => crate::network::port_bindings(&req.publish)?,
    };
    if crate::rootless::active()
        && network == "default"
        && (!port_bindings.is_empty() || req.publish_all)
        && crate::network::pasta_binary().is_some()
    {
        // Rootless, no --network given, ports published: pasta is the one network that can
        // forward them, started only for such containers (see README "Rootless": pasta's own
        // start costs more than the rest of `run`, so it is not the default for every one).
        network = "pasta".into();
    }
    let gateway = if req.add_host.iter().any(|h| h.ends_with("host-gateway")) {
        // host-gateway: the gateway of the container's network, else the default bridge's.
        let net = e.net()?;
        let mode = if crate::network::is_bridge(&network) {
            network.as_str()
        } else {
            "bridge"
        };
        match net.find(mode, &crate::proc::now()) {
            Ok(n) if net.cfg.bridge != "none" || mode != "bridge" => Some(n.gateway),
            _ => {
                return Err(Error::Invalid(
                    "unable to derive the IP value for host-gateway (no bridge network)".into(),
                ))
            }
        }
    } else {
        None
    };
    let extra_hosts = crate::network::extra_hosts(&req.add_host, gateway)?;
    if !req.network_aliases.is_empty() && !crate::network::embedded_dns(&network) {
        return Err(Error::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    if let Some(d) = &req.domainname {
        if d.len() > 255 || d.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
            return Err(Error::Invalid(format!("invalid domainname: {d:?}")));
        }
    }
    for d in &req.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::Invalid(format!(
                "invalid argument \"{d}\" for \"--dns\" flag: {d} is not an ip address"
            )));
        }
    }
    if crate::rootless::active()
        && crate::network::is_bridge(&network)
        && (!port_bindings.is_empty() || req.publish_all)
    {
        return Err(Error::Invalid(format!(
            "-p on network {network}: a rootless user network is not reachable from the host; publish with --network pasta"
        )));
    }
    if network.starts_with("container:") && !port_bindings.is_empty() {
        return Err(Error::Invalid(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    if !crate::network::is_bridge(&network)
        && (!port_bindings.is_empty() || req.ip.is_some() || req.mac_address.is_some())
        && network != "host"
        && !(crate::network::is_user_mode(&network)
            && req.ip.is_none()
            && req.mac_address.is_none())
    {
        return Err(Error::Invalid(format!(
            "-p, --ip and --mac-address need a bridge network (--network {network} has none)"
        )));
    }
    let restart = match (&req.typed.restart, &req.restart) {
        (Some(r), _) => flags::check_restart(r.clone())?,
        (None, Some(r)) => flags::restart(r)?,
        (None, None) => RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        },
    };
    if req.auto_remove && !matches!(restart.name.as_str(), "no" | "") {
        return Err(Error::Invalid(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    let memory = match (req.typed.memory, &req.memory) {
        (Some(m), _) if m < 0 => {
            return Err(Error::Invalid(format!(
                "invalid memory limit {m}: negative"
            )))
        }
        (Some(m), _) if m > 0 && m < 6 << 20 => {
            return Err(Error::Invalid("Minimum memory limit allowed is 6MB".into()))
        }
        (Some(m), _) => m,
        (None, Some(m)) => flags::memory(m)?,
        (None, None) => 0,
    };
    let nano_cpus = match (req.typed.nano_cpus, &req.cpus) {
        (Some(n), _) if n < 0 => {
            return Err(Error::Invalid(format!("invalid NanoCpus {n}: negative")))
        }
        (Some(n), _) => n,
        (None, Some(c)) => {
            let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
            flags::nano_cpus(c, ncpu)?
        }
        (None, None) => 0,
    };
    let mut extras = crate::hostflags::resolve(
        &req.host,
        memory,
        nano_cpus,
        req.hostname.is_some(),
        &|name| Ok(e.container(name)?.id),
        &mut warnings,
    )?;
    let pids_limit = match req.typed.pids_limit {
        // The API's 0 and -1 both mean unlimited.
        Some(n) => (n > 0).then_some(n),
        None => req
            .pids_limit
            .as_deref()
            .map(flags::pids_limit)
            .transpose()?,
    };
    let stop_timeout = match req.typed.stop_timeout {
        Some(t) => Some(t),
        None => req
            .stop_timeout
            .as_deref()
            .map(flags::stop_timeout)
            .transpose()?,
    };
    let healthcheck = match &req.typed.healthcheck {
        Some(h) if h.test.is_empty() => crate::health::resolve(&req.health, &icfg)?,
        Some(h) => Some(h.clone()),
        None => crate::health::resolve(&req.health, &icfg)?,
    };
    let mut ulimits = Vec::new();
    for u in &req.ulimits {
        ulimits.push(flags::ulimit(u)?);
    }
    for u in req.typed.ulimits.iter().flatten() {
        ulimits.push(flags::check_ulimit(u.clone())?);
    }
    if let Some(s) = &req.stop_signal {
        skiff_runtime::util::parse_signal(s)
            .map_err(|_| Error::Invalid(format!("Invalid signal: {s}")))?;
    }
    let mut log_config = LogConfig::default();
    if let Some(d) = &req.log_driver {
        // `local` keeps docker's local-driver defaults (20 MB × 5 files) over the json-file
        // writer; `none` keeps nothing and `logs` refuses to read, as with docker.
        match d.as_str() {
            "json-file" | "local" | "none" => log_config.kind = d.clone(),
            // docker's other built-in drivers: skiff says it has not got them.
            "syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk" | "etwlogs"
            | "gcplogs" | "logentries" => {
                return Err(Error::Invalid(format!(
                    "log driver {d}: not supported (json-file, local and none are)"
                )));
            }
            _ => {
                // dockerd's words: any other name would be a logging plugin (skiff has none).
                return Err(Error::Invalid(format!(
                    "error looking up logging plugin {d}: plugin \"{d}\" not found"
                )));
            }
        }
    }
    if log_config.kind == "none" && !req.log_opts.is_empty() {
        return Err(Error::Invalid(
            "log driver none: it does not take --log-opt".into(),
        ));
    }
    for o in &req.log_opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("invalid log opt: {o}")))?;
        match k {
            "max-size" => {
                spec::parse_size(v).map_err(|e| {
                    Error::Invalid(format!("failed to initialize logging driver: {e}"))
                })?;
            }
            "max-file" => {
                let n: u32 = v
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid value for max-file: {v}")))?;
                if n == 0 {
                    return Err(Error::Invalid("max-file cannot be less than 1".into()));
                }
            }
            "compress" | "labels" | "env" | "tag" => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown log opt '{k}' for {} log driver",
                    log_config.kind
                )))
            }
        }
        log_config.config.insert(k.into(), v.into());
    }
    precheck_security(req)?;
    // The runtime, resolved before anything touches the disk (a bad name leaves nothing).
    let runtime =
        crate::ociruntime::resolve(&e.root, &e.runroot, req.runtime.as_deref().unwrap_or(""))?;
    if let (Some(r), true) = (&runtime, crate::rootless::active()) {
        return Err(Error::Invalid(format!(
            "runtime {}: rootless skiff runs containers with skiff-runtime only",
            r.name
        )));
    }
    // Mounts (parsed before anything touches the disk).
    let mut pending = Vec::new();
    let mut binds = Vec::new();
    for v in &req.volumes {
        pending.push(parse_volume_flag(v)?);
        binds.push(v.clone());
    }
    let mut mount_specs = Vec::new();
    for v in &req.mounts {
        let (p, s) = parse_mount_flag(v)?;
        pending.push(p);
        mount_specs.push(s);
    }
    for m in req.typed.mounts.iter().flatten() {
        let (p, s) = typed_mount(m)?;
        pending.push(p);
        mount_specs.push(s);
    }
    let mut tmpfs_map = BTreeMap::new();
    for v in &req.tmpfs {
        let (p, d, o) = parse_tmpfs_flag(v)?;
        pending.push(p);
        tmpfs_map.insert(d, o);
    }
    let mut vfrom_ids = Vec::new();
    for v in &req.volumes_from {
        let (src, mode) = match v.split_once(':') {
            Some((s, m)) => (s, Some(m)),
            None => (v.as_str(), None),
        };
        let id = e.resolve_id(src)?;
        let other = e
            .get(&id)?
            .ok_or_else(|| Error::NoSuchContainer(src.into()))?;
        for m in &other.mounts {
            if m.kind == "tmpfs" {
                continue;
            }
            let mut mp = m.clone();
            mp.anonymous = false;
            if m.kind == "volume" && !m.name.is_empty() {
                let name = m.name.clone();
                if let Some(mode) = mode {
                    mp.rw = mode != "ro";
                    mp.mode = mode.into();
                }
                pending.push(PendingMount {
                    mp,
                    volume: Some(Some(name)),
                });
                continue;
            }
            if let Some(mode) = mode {
                mp.rw = mode != "ro";
                mp.mode = mode.into();
            }
            pending.push(PendingMount { mp, volume: None });
        }
        vfrom_ids.push(v.clone());
    }
    for (dst, _) in icfg["Volumes"].as_object().into_iter().flatten() {
        let d = dst.trim_end_matches('/');
        if !pending.iter().any(|p| p.mp.destination == d) {
            pending.push(PendingMount {
                mp: MountPoint {
                    kind: "volume".into(),
                    destination: d.to_string(),
                    driver: "local".into(),
                    rw: true,
                    anonymous: true,
                    ..Default::default()
                },
                volume: Some(None),
            });
        }
    }
    {
        let mut seen = std::collections::BTreeSet::new();
        for p in &pending {
            if !seen.insert(p.mp.destination.clone()) {
                return Err(Error::Invalid(format!(
                    "Duplicate mount point: {}",
                    p.mp.destination
                )));
            }
        }
    }
    for p in &pending {
        if p.mp.kind == "bind" && !Path::new(&p.mp.source).exists() {
            // Docker creates missing `-v` host directories (0755, whatever the umask).
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&p.mp.source)
                .ctx(|| format!("create bind source {}", p.mp.source))?;
        }
    }

    let lowers = store.layer_dirs(img)?;
    let user = req
        .user
        .clone()
        .unwrap_or_else(|| icfg["User"].as_str().unwrap_or("").to_string());
    let id = names::new_id();
    let hostname = match &req.hostname {
        Some(h) => h.clone(),
        // Docker gives --network host containers the host's name.
        None if network == "host" => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| id[..12].to_string()),
        None => id[..12].to_string(),
    };
    // The tree is built under `.creating-<id>` and renamed to `<id>` once its row exists, so a
    // create killed half-way leaves a tree positively marked as garbage (see `Engine::sweep`)
    // and every `containers/<id>` has (or had) a record.
    let final_dir = e.container_dir(&id);
    let dir = e
        .root
        .join("containers")
        .join(format!("{}{id}", crate::ops::CREATING_PREFIX));
    let _lock = crate::lock::Lock::create(&e.lock_path(&id))?;
    // Private: it holds the writable layer (setuid files a container made) and config.json (the
    // environment). Inside it, `upper` is the container's `/` (overlayfs gives the root its mode)
    // and the three files bind-mounted into the container stay readable for its users.
    perms::mkdir(&dir, perms::PRIVATE_DIR).ctx(|| format!("create {}", dir.display()))?;
    let mut inserted = false;
    let result = (|| -> Result<(Container, Option<oci_spec::runtime::Spec>)> {
        perms::mkdir_shared(&dir.join("upper"), perms::SHARED_DIR)
            .ctx(|| format!("create {}/upper", dir.display()))?;
        for d in ["work", "rootfs"] {
            perms::mkdir(&dir.join(d), perms::PRIVATE_DIR)
                .ctx(|| format!("create {}", dir.join(d).display()))?;
        }
        let embedded = crate::network::embedded_dns(&network);
        let resolv = if embedded {
            crate::network::resolv_conf_embedded(&req.dns_search, &req.dns_option)
        } else {
            crate::network::resolv_conf(&network, &req.dns, &req.dns_search, &req.dns_option)
        };
        if embedded {
            let up = crate::network::dns_upstreams(&req.dns);
            perms::write_file(
                &dir.join(skiff_net::dns::UPSTREAM_FILE),
                up.as_bytes(),
                perms::PRIVATE_FILE,
            )
            .ctx(|| format!("write {}/{}", dir.display(), skiff_net::dns::UPSTREAM_FILE))?;
        }
        let files = [
            ("hostname", format!("{hostname}\n"), perms::SHARED_FILE),
            (
                "hosts",
                spec::hosts_file(&hostname, &network) + &extra_hosts.join(""),
                perms::SHARED_FILE,
            ),
            ("resolv.conf", resolv, perms::SHARED_FILE),
            ("ctr.log", String::new(), perms::PRIVATE_FILE),
        ];
        for (name, data, mode) in files {
            perms::write_file(&dir.join(name), data.as_bytes(), mode)
                .ctx(|| format!("write {}/{name}", dir.display()))?;
        }
        // The rootfs is mounted now: the user is resolved and volumes populated from it, and
        // `run` starts on it (volatile for --rm: its upper layer is thrown away at exit).
        let rootfs = dir.join("rootfs");
        let slice = if extras.userns_mode == "auto" {
            // Its slice of ids, and the layers' owners shifted into it by fuse-overlayfs (the
            // kernel's overlayfs cannot shift them for a user).
            if !skiff_image::overlay::fuse_overlayfs_usable() {
                return Err(Error::Invalid(
                    "--userns auto needs fuse-overlayfs (Debian package fuse-overlayfs) and /dev/fuse open to the user, to show the image's files owned by the container's ids".into(),
                ));
            }
            let who = given_name.as_deref().unwrap_or(&id[..12]);
            if let Some(a) = crate::rootless::unsearchable_ancestor(&e.root) {
                return Err(Error::Invalid(format!(
                    "container \"{who}\": --userns auto: {} is not searchable by other ids (chmod o+x it): the container's ids could not reach the store {}",
                    a.display(),
                    e.root.display()
                )));
            }
            let (start, size) = e.userns_slice(&id, who)?;
            extras.userns_slice = Some((start, size));
            // Its runtime resolves the bundle as the slice's root: search permission on the
            // store's private directories down to the container's, for that id alone.
            let containers = e.root.join("containers");
            for d in [e.root.as_path(), containers.as_path(), dir.as_path()] {
                crate::rootless::grant_search(d, start).map_err(|err| {
                    Error::Invalid(format!(
                        "container \"{who}\": --userns auto: give its ids search permission on {} (a POSIX ACL entry): {err}",
                        d.display()
                    ))
                })?;
            }
            Some((start, size))
        } else {
            None
        };
        mount_rootfs(&lowers, &dir, &rootfs, slice, req.auto_remove)?;
        if !user.is_empty() && pending.iter().any(|p| p.volume.is_some()) {
            // Before any volume is created.
            spec::resolve_user(&rootfs, &user)?;
        }
        let mut mounts = Vec::new();
        let mut volumes = Vec::new();
        for p in pending {
            let mut mp = p.mp;
            if let Some(name) = p.volume {
                let v = volumes_api::use_volume(e, name.as_deref(), &id)?;
                mp.name = v.name.clone();
                mp.source = v.mountpoint.to_string_lossy().into_owned();
                volumes.push((v.name, mp.destination.clone()));
            }
            mounts.push(mp);
        }
        // Fill new volumes with what the image has at their destination.
        for (name, dst) in &volumes {
            volumes_api::populate(e, name, &rootfs, dst)?;
        }
        let name = given_name.clone();
        let c = Container {
            id: id.clone(),
            name: name.clone().unwrap_or_default(),
            created: crate::proc::now(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            image: img.id.to_string(),
            image_ref: req.image.clone(),
            config: Config {
                hostname: hostname.clone(),
                domainname: req
                    .typed
                    .domainname
                    .clone()
                    .or_else(|| req.domainname.clone())
                    .unwrap_or_default(),
                user: user.clone(),
                attach_stdin: req
                    .typed
                    .attach
                    .map_or(req.attach && req.interactive, |a| a.0),
                attach_stdout: req.typed.attach.map_or(req.attach, |a| a.1),
                attach_stderr: req.typed.attach.map_or(req.attach, |a| a.2),
                tty: req.tty,
                open_stdin: req.interactive,
                stdin_once: req
                    .typed
                    .stdin_once
                    .unwrap_or(req.attach && req.interactive),
                env,
                cmd,
                image: req.image.clone(),
                volumes: icfg["Volumes"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                working_dir: req
                    .workdir
                    .clone()
                    .unwrap_or_else(|| icfg["WorkingDir"].as_str().unwrap_or("").to_string()),
                entrypoint,
                labels,
                stop_signal: req
                    .stop_signal
                    .clone()
                    .or_else(|| icfg["StopSignal"].as_str().map(String::from)),
                stop_timeout,
                healthcheck,
                exposed_ports: {
                    let mut m: BTreeMap<String, Value> = icfg["ExposedPorts"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    for x in req.expose.iter().chain(port_bindings.keys()) {
                        let k = if x.contains('/') {
                            x.clone()
                        } else {
                            format!("{x}/tcp")
                        };
                        m.insert(k, serde_json::json!({}));
                    }
                    (!m.is_empty()).then_some(m)
                },
            },
            host_config: HostConfig {
                binds: (!binds.is_empty()).then_some(binds),
                network_mode: network.clone(),
                restart_policy: restart,
                auto_remove: req.auto_remove,
                cap_add: (!req.cap_add.is_empty()).then(|| req.cap_add.clone()),
                cap_drop: (!req.cap_drop.is_empty()).then(|| req.cap_drop.clone()),
                privileged: req.privileged,
                readonly_rootfs: req.read_only,
                security_opt: (!req.security_opt.is_empty()).then(|| req.security_opt.clone()),
                memory,
                nano_cpus,
                pids_limit,
                blkio_weight,
                extra: extras,
                ulimits: (!ulimits.is_empty()).then_some(ulimits),
                tmpfs: (!tmpfs_map.is_empty()).then_some(tmpfs_map),
                cgroup_parent: req.cgroup_parent.clone().unwrap_or_default(),
                log_config,
                init: req.init.then_some(true),
                mounts: (!mount_specs.is_empty()).then_some(mount_specs),
                volumes_from: (!vfrom_ids.is_empty()).then_some(vfrom_ids),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                publish_all_ports: req.publish_all,
                ip_address: req.ip.clone(),
                mac_address: req.mac_address.clone(),
                extra_hosts: (!req.add_host.is_empty()).then(|| req.add_host.clone()),
                dns: (!req.dns.is_empty()).then(|| req.dns.clone()),
                dns_search: (!req.dns_search.is_empty()).then(|| req.dns_search.clone()),
                dns_options: (!req.dns_option.is_empty()).then(|| req.dns_option.clone()),
                runtime: runtime.as_ref().map(|r| r.name.clone()),
            },
            mounts,
            state: State {
                status: "created".into(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..Default::default()
            },
            restart_count: 0,
            lower_dirs: lowers
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            platform: img.platform.os.clone(),
            network_aliases: req.network_aliases.clone(),
            network_detached: false,
            network_aliases_on: BTreeMap::new(),
            network_driver_opts: BTreeMap::new(),
        };
        let mut c = c;
        // The whole OCI spec, as the start will build it: what it refuses is refused now. Its
        // host paths name the final directory (the tree is renamed there below).
        let spec = spec::build(&c, &final_dir, &rootfs, e.netns_path(&c), &|peer| {
            e.running_pid(peer)
        })?;
        if crate::rootless::active() {
            let delegated = crate::delegation::probe();
            warnings.extend(crate::rootless::limits_warning(
                spec.linux().as_ref(),
                delegated.as_ref(),
            ));
        }
        // `:U` (podman's): the source belongs to the container's user, as its namespace sees it.
        let owner = spec
            .process()
            .as_ref()
            .map(|p| (p.user().uid(), p.user().gid()));
        for m in c
            .mounts
            .iter()
            .filter(|m| m.mode.split(',').any(|o| o == "U"))
        {
            if let Some((uid, gid)) = owner {
                chown_tree(Path::new(&m.source), uid, gid)
                    .ctx(|| format!("chown {} (:U)", m.source))?;
            }
        }
        match name {
            Some(_) => e.insert(&c)?,
            None => {
                let mut tries = 0;
                loop {
                    c.name = names::random_name();
                    match e.insert(&c) {
                        Ok(()) => break,
                        Err(Error::NameConflict { .. }) if tries < 20 => tries += 1,
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        inserted = true;
        if let Some(r) = &runtime {
            r.save(&dir)?;
        }
        // A fresh tree: a plain write (a torn copy can only be left with its `.creating-` tree).
        let rec = serde_json::to_vec(&c).map_err(|err| Error::Other(err.to_string()))?;
        let rec_path = dir.join(crate::ops::RECORD_FILE);
        perms::write_file(&rec_path, &rec, perms::PRIVATE_FILE)
            .ctx(|| format!("write {}", rec_path.display()))?;
        if !keep_mounted {
            crate::proc::unmount_container(&dir);
        }
        // A mount below the tree moves with it.
        std::fs::rename(&dir, &final_dir).ctx(|| format!("create {}", final_dir.display()))?;
        e.event(&c, "create", &[]);
        Ok((c, keep_mounted.then_some(spec)))
    })();
    if result.is_err() {
        if inserted {
            let _ = e.delete_row(&id);
        }
        rollback(e, &id, &dir);
    }
    result.map(|(c, s)| (c, s, warnings))
}

/// Undoes a create that failed (its row, if any, is already deleted): volume uses (anonymous
/// volumes removed), the rootfs mount, the `.creating-` directory and the lock file.
fn rollback(e: &Engine, id: &str, dir: &Path) {
    let _ = volumes_api::release(e, id, true);
    e.release_userns_slice(id);
    crate::proc::unmount_container(dir);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(e.lock_path(id));
}

/// `--blkio-weight` as docker's daemon treats it: 0 is unset; on a host whose io schedulers
/// offer no weights (no BFQ/CFQ) the weight is discarded with docker's warning rather than
/// failing the run (the runtime itself refuses such a weight, as runc does), before the range is
/// looked at, as dockerd does; otherwise outside 10-1000 is an error.
pub(crate) fn blkio_weight(w: Option<u16>, warnings: &mut Vec<String>) -> Result<u16> {
    let w = w.unwrap_or(0);
    if w == 0 {
        return Ok(0);
    }
    let offered = skiff_cgroups::Layout::probe().is_ok_and(|l| l.offers_io_weight());
    if offered && !(10..=1000).contains(&w) {
        return Err(Error::Invalid(format!(
            "invalid argument \"{w}\" for \"--blkio-weight\" flag: range of blkio weight is from 10 to 1000"
        )));
    }
    if !offered {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                .into(),
        );
        return Ok(0);
    }
    Ok(w)
}

/// Writes `c` (docker's record, as the database holds it) to `<dir>/container.json`: the copy
/// `skiff system check --repair` rebuilds a lost database from. Replaced atomically (temp file
/// and rename), so a crash leaves the old copy or the new one.
pub fn write_record(dir: &Path, c: &Container) -> Result<()> {
    let data = serde_json::to_vec(c).map_err(|err| Error::Other(err.to_string()))?;
    let tmp = dir.join(".container.json.tmp");
    let path = dir.join(crate::ops::RECORD_FILE);
    perms::write_file(&tmp, &data, perms::PRIVATE_FILE)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .ctx(|| format!("write {}", path.display()))
}

/// A container's rootfs mounted at `rootfs` from its image's layers, upper and work dirs in
/// `dir`: by fuse-overlayfs with the owners shifted into its `--userns auto` slice (start,
/// size), else by overlayfs (volatile for `--rm`: its upper layer is thrown away at exit).
pub(crate) fn mount_rootfs(
    lowers: &[PathBuf],
    dir: &Path,
    rootfs: &Path,
    slice: Option<(u32, u32)>,
    auto_remove: bool,
) -> Result<()> {
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    if let Some((start, size)) = slice {
        let shift = skiff_image::overlay::IdShift { to: start, size };
        skiff_image::overlay::mount_fuse(lowers, &upper, &work, rootfs, Some(shift))?;
    } else if auto_remove {
        skiff_image::overlay::mount_overlay_volatile(lowers, &upper, &work, rootfs)?;
    } else {
        skiff_image::overlay::mount_overlay(lowers, &upper, &work, rootfs)?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let p = parse_volume_flag("/tmp:/data:ro").unwrap();
        assert_eq!((p.mp.kind.as_str(), p.mp.rw), ("bind", false));
        let p = parse_volume_flag("vol1:/data").unwrap();
        assert_eq!(p.volume, Some(Some("vol1".into())));
        let p = parse_volume_flag("/data").unwrap();
        assert!(p.mp.anonymous);
        assert!(parse_volume_flag("rel").is_err());
        assert!(parse_mount_flag("type=bind,target=/x").is_err());
        let (p, s) = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(s.kind, "tmpfs");
        assert!(p.mp.options.contains("size=1048576"), "{}", p.mp.options);
        assert!(parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=-1").is_err());
        assert!(parse_mount_flag("type=tmpfs,target=/t,tmpfs-mode=99").is_err());
        assert!(parse_tmpfs_flag("/t:size=64m,mode=1777").is_ok());
        let e = parse_tmpfs_flag("/t:size=-1").err().unwrap().to_string();
        assert_eq!(
            e,
            "invalid argument \"/t:size=-1\" for \"--tmpfs\" flag: invalid size: '-1'"
        );
    }
}
