//! Turning a container record into its OCI bundle at start: user resolution against the container's
//! own /etc/passwd and /etc/group (resolved inside the rootfs, never following links out of it), the
//! environment docker gives a process, mounts (binds, volumes, tmpfs, /etc/hosts, /etc/hostname,
//! /etc/resolv.conf) and the resource/security flags, through `skiff_runtime::docker::docker_spec`.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use oci_spec::runtime::{Mount, Spec};
use skiff_runtime::docker::{docker_spec, DockerSpecOpts, NetworkNs};

use crate::error::{Error, IoCtx, Result};
use crate::model::Container;

/// Docker's default PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resolved user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups from /etc/group.
    pub groups: Vec<u32>,
    /// Home directory (for HOME).
    pub home: String,
}

fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    let dir = skiff_image::sys::open_dir(rootfs).ok()?;
    let fd = skiff_image::sys::open_in_root(dir.as_fd(), Path::new(rel), libc::O_RDONLY, 0).ok()?;
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Resolves docker's `-u` forms (`name`, `uid`, `name:group`, `uid:gid`) against the rootfs.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = entries
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let mut out = match (found, u.parse::<u32>()) {
        (Some(f), _) => User {
            uid: f[2].parse().unwrap_or(0),
            gid: f[3].parse().unwrap_or(0),
            groups: vec![],
            home: f[5].to_string(),
        },
        (None, Ok(uid)) => User {
            uid,
            gid: 0,
            groups: vec![],
            home: "/".into(),
        },
        (None, Err(_)) => {
            return Err(Error::Start {
                msg: format!("unable to find user {u}: no matching entries in passwd file"),
                code: 125,
            })
        }
    };
    let name = found.map(|f| f[0]).unwrap_or("");
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = g {
        if let Ok(gid) = g.parse::<u32>() {
            out.gid = gid;
        } else if let Some(f) = groups.iter().find(|f| f[0] == g) {
            out.gid = f[2].parse().unwrap_or(0);
        } else {
            return Err(Error::Start {
                msg: format!("unable to find group {g}: no matching entries in group file"),
                code: 125,
            });
        }
    } else if !name.is_empty() {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(gid) = f[2].parse::<u32>() {
                    if gid != out.gid && !out.groups.contains(&gid) {
                        out.groups.push(gid);
                    }
                }
            }
        }
    }
    if out.groups.is_empty() {
        // As with docker, the process is always in its primary group's list (`id` shows it).
        out.groups.push(out.gid);
    }
    Ok(out)
}

/// The process environment docker gives: PATH (when the image has none), HOSTNAME, TERM for ttys,
/// the container's Env, and HOME from passwd when unset.
pub fn process_env(c: &Container, home: &str) -> Vec<String> {
    let mut env = Vec::new();
    let has = |k: &str| {
        c.config
            .env
            .iter()
            .any(|e| e.split_once('=').map(|x| x.0) == Some(k))
    };
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={}", c.config.hostname));
    if c.config.tty && !has("TERM") {
        env.push("TERM=xterm".into());
    }
    env.extend(c.config.env.iter().cloned());
    if !has("HOME") {
        env.push(format!("HOME={}", if home.is_empty() { "/" } else { home }));
    }
    env
}

fn bind(src: &Path, dst: &str, ro: bool, propagation: &str) -> Result<Mount> {
    let prop = if propagation.is_empty() {
        "rprivate"
    } else {
        propagation
    };
    let v = serde_json::json!({
        "destination": dst, "type": "bind", "source": src,
        "options": ["rbind", prop, if ro { "ro" } else { "rw" }],
    });
    serde_json::from_value(v).map_err(|e| Error::Other(format!("mount {dst}: {e}")))
}

/// Parses docker's memory sizes (`512m`, `1g`, `1024`, `10k`, `1.5g`): [`crate::flags::ram_in_bytes`].
pub fn parse_size(s: &str) -> Result<i64> {
    crate::flags::ram_in_bytes(s).map_err(Error::Invalid)
}

/// Creates `path` (a directory) inside the rootfs if missing, never leaving the rootfs.
pub fn mkdir_in_root(rootfs: &Path, path: &str) -> Result<()> {
    let dir = skiff_image::sys::open_dir(rootfs).ctx(|| format!("open {}", rootfs.display()))?;
    skiff_runtime::fsutil::mkdir_all_in_root(
        dir.as_raw_fd(),
        Path::new(path.trim_start_matches('/')),
        skiff_runtime::fsutil::Kind::Dir,
    )
    .map_err(|e| Error::Other(format!("working directory {path}: {e}")))?;
    Ok(())
}

/// The cgroup path of a container: `/<parent>/<id>`, parent `skiff` unless `--cgroup-parent`.
pub fn cgroups_path(c: &Container) -> String {
    let parent = c.host_config.cgroup_parent.trim_matches('/');
    let parent = if parent.is_empty() { "skiff" } else { parent };
    format!("/{parent}/{}", c.id)
}

/// A rootless container's cgroup path when the user has a delegated cgroup v2 subtree offering
/// memory and pids: `/<delegated>/skiff/<id>` (made ready with the offered controllers of
/// memory, pids, cpu and io enabled), so the runtime can make it and apply the limits there.
/// None when not rootless or nothing is delegated.
fn rootless_cgroups_path(c: &Container) -> Result<Option<String>> {
    if !crate::rootless::active() {
        return Ok(None);
    }
    let Some(d) = crate::delegation::probe() else {
        return Ok(None);
    };
    if !d.missing(&["memory", "pids"]).is_empty() {
        return Ok(None);
    }
    let parent = d.prepare(&["memory", "pids", "cpu", "io"]).map_err(|e| {
        Error::Invalid(format!(
            "container \"{}\": delegated cgroup {}: enable its controllers: {e} (cgroup v2 allows them only in a cgroup without processes of its own)",
            c.name,
            d.dir().display()
        ))
    })?;
    Ok(Some(format!("{parent}/{}", c.id)))
}

/// Builds the OCI spec of `c` whose rootfs is mounted at `rootfs`; `dir` is the container dir;
/// `peer_pid` gives the running pid of another container (for `--pid/--ipc container:X`).
pub fn build(
    c: &Container,
    dir: &Path,
    rootfs: &Path,
    netns: Option<std::path::PathBuf>,
    peer_pid: &dyn Fn(&str) -> Result<i32>,
) -> Result<Spec> {
    let user = resolve_user(rootfs, &c.config.user)?;
    if !c.config.working_dir.is_empty() {
        mkdir_in_root(rootfs, &c.config.working_dir)?;
    }
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let mut mounts = Vec::new();
    for m in &c.mounts {
        match m.kind.as_str() {
            "bind" | "volume" => {
                let prop = if m.kind == "bind" { &m.propagation } else { "" };
                mounts.push(bind(Path::new(&m.source), &m.destination, !m.rw, prop)?)
            }
            "tmpfs" => {
                let mut opts = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
                if m.options.is_empty() {
                    opts.push("size=65536k".into());
                } else {
                    opts = m.options.split(',').map(String::from).collect();
                }
                let v = serde_json::json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts});
                mounts.push(
                    serde_json::from_value(v)
                        .map_err(|e| Error::Other(format!("tmpfs {}: {e}", m.destination)))?,
                );
            }
            other => {
                return Err(Error::Invalid(format!(
                    "mount {}: unknown type {other}",
                    m.destination
                )))
            }
        }
    }
    let user_dests: Vec<&str> = c.mounts.iter().map(|m| m.destination.as_str()).collect();
    for f in ["hostname", "hosts", "resolv.conf"] {
        let dst = format!("/etc/{f}");
        if !user_dests.contains(&dst.as_str()) {
            mounts.push(bind(&dir.join(f), &dst, c.host_config.readonly_rootfs, "")?);
        }
    }
    let h = &c.host_config;
    let mut ulimits = Vec::new();
    for u in h.ulimits.iter().flatten() {
        ulimits.push((
            format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
            u.soft as u64,
            u.hard as u64,
        ));
    }
    let o = DockerSpecOpts {
        args,
        env: process_env(c, &user.home),
        cwd: if c.config.working_dir.is_empty() {
            "/".into()
        } else {
            c.config.working_dir.clone()
        },
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.groups,
        terminal: c.config.tty,
        hostname: c.config.hostname.clone(),
        privileged: h.privileged,
        read_only: h.readonly_rootfs,
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        security_opt: h.security_opt.clone().unwrap_or_default(),
        network: match netns {
            _ if h.network_mode == "host" => NetworkNs::Host,
            // --network container:X: X's namespace, while X runs.
            _ if h.network_mode.starts_with("container:") => NetworkNs::Path(format!(
                "/proc/{}/ns/net",
                peer_pid(&h.network_mode["container:".len()..])?
            )),
            // A bridge network's namespace, made and configured by skiff-net before the start.
            Some(p) => NetworkNs::Path(p.to_string_lossy().into_owned()),
            None => NetworkNs::New,
        },
        mounts,
        ulimits,
        memory: (h.memory > 0).then_some(h.memory),
        cpus: (h.nano_cpus > 0).then(|| h.nano_cpus as f64 / 1e9),
        pids_limit: h.pids_limit,
        cgroups_path: Some(rootless_cgroups_path(c)?.unwrap_or_else(|| cgroups_path(c))),
        ..Default::default()
    };
    let mut o = o;
    crate::hostflags::apply_opts(&h.extra, &mut o);
    let spec = docker_spec(&o).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut spec = fill_unapplied(spec, &o, h.blkio_weight)?;
    let mut ns = std::collections::BTreeMap::new();
    for (t, mode) in [("pid", &h.extra.pid_mode), ("ipc", &h.extra.ipc_mode)] {
        if let Some(peer) = crate::hostflags::container_ref(mode) {
            let pid = peer_pid(peer)?;
            ns.insert(t, format!("/proc/{pid}/ns/{t}"));
        }
    }
    let gids = match &h.extra.group_add {
        Some(g) => crate::hostflags::resolve_groups(
            g,
            &read_in_root(rootfs, "etc/group").unwrap_or_default(),
        )?,
        None => Vec::new(),
    };
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
    crate::hostflags::apply_spec(&h.extra, &mut v, &ns, &gids)?;
    let uts = v["linux"]["namespaces"].as_array().is_some_and(|a| {
        a.iter()
            .any(|n| n["type"] == "uts" && n.get("path").is_none())
    });
    if !c.config.domainname.is_empty() && uts {
        // --domainname: the UTS namespace's domain name (setdomainname in the runtime).
        v["domainname"] = serde_json::json!(c.config.domainname);
    }
    if let (true, Some((start, size))) = (h.extra.userns_mode == "auto", h.extra.userns_slice) {
        crate::rootless::auto_map(&mut v, start, size)
            .map_err(|e| Error::Invalid(format!("container \"{}\": --userns auto: {e}", c.name)))?;
    }
    if h.extra.userns_mode == "keep-id" {
        crate::rootless::keep_id(&mut v, c.config.user.is_empty()).map_err(|e| {
            Error::Invalid(format!("container \"{}\": --userns keep-id: {e}", c.name))
        })?;
    }
    shm_source(&h.extra.ipc_mode, dir, &mut v)?;
    // A network namespace of its own with no network (`--network none`): loopback up, as
    // docker's sandbox has it (the runtime does it on this annotation).
    let new_netns = v["linux"]["namespaces"].as_array().is_some_and(|l| {
        l.iter()
            .any(|n| n["type"] == "network" && n.get("path").is_none())
    });
    if new_netns {
        if !v["annotations"].is_object() {
            v["annotations"] = serde_json::json!({});
        }
        v["annotations"][skiff_runtime::init::LOOPBACK_ANNOTATION] = "up".into();
    }
    if let Some(reqs) = &h.extra.device_requests {
        // dir is <root>/containers/<id>; the CDI spec directories are the engine's settings.
        let root = dir
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::Other(format!("container dir {}", dir.display())))?;
        crate::cdi::apply(root, reqs, &mut v)?;
    }
    spec = serde_json::from_value(v).map_err(|e| Error::Other(format!("spec: {e}")))?;
    if h.init == Some(true) {
        // dir is <root>/containers/<id>.
        let root = dir
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::Other(format!("container dir {}", dir.display())))?;
        crate::init::apply(&mut spec, root).map_err(|e| Error::Other(format!("--init: {e}")))?;
    }
    Ok(spec)
}

/// /dev/shm as docker's IPC modes give it: `shareable` binds the container's own tmpfs (mounted
/// at `<dir>/shm` by the start, so others can join it), `container:X` binds X's (refused unless X
/// is shareable and running, as dockerd does), `host` binds the host's /dev/shm; the other modes
/// keep the runtime's private tmpfs (or none).
fn shm_source(mode: &str, dir: &Path, v: &mut serde_json::Value) -> Result<()> {
    let src = match mode {
        "shareable" => dir.join(crate::proc::SHM_DIR),
        "host" => {
            if !crate::proc::is_mountpoint(Path::new("/dev/shm")) {
                return Err(Error::Invalid(
                    "/dev/shm is not mounted, but must be for --ipc=host".into(),
                ));
            }
            std::path::PathBuf::from("/dev/shm")
        }
        m => match crate::hostflags::container_ref(m) {
            Some(x) => {
                let p = dir
                    .parent()
                    .map(|d| d.join(x).join(crate::proc::SHM_DIR))
                    .unwrap_or_default();
                if !crate::proc::is_mountpoint(&p) {
                    return Err(Error::Invalid(format!(
                        "can't join IPC of container {x}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                    )));
                }
                p
            }
            None => return Ok(()),
        },
    };
    if let Some(mounts) = v["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != "/dev/shm");
        mounts.push(
            serde_json::json!({"destination": "/dev/shm", "type": "bind",
            "source": src, "options": ["rbind", "nosuid", "noexec", "nodev"]}),
        );
    }
    Ok(())
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Applies the resource, rlimit and capability flags that `docker_spec` leaves unset (it fills in
/// more of them as the security work lands; anything it already set is kept).
fn fill_unapplied(spec: Spec, o: &DockerSpecOpts, blkio_weight: u16) -> Result<Spec> {
    use serde_json::{json, Value};
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
    let res = &mut v["linux"]["resources"];
    if res.is_null() {
        *res = json!({});
    }
    if let Some(m) = o.memory {
        if res["memory"]["limit"].is_null() {
            res["memory"]["limit"] = json!(m);
        }
    }
    if let Some(c) = o.cpus {
        if res["cpu"]["quota"].is_null() {
            res["cpu"]["quota"] = json!((c * 100_000.0) as i64);
            res["cpu"]["period"] = json!(100_000u64);
        }
    }
    if blkio_weight != 0 {
        res["blockIO"]["weight"] = json!(blkio_weight);
    }
    if let Some(p) = o.pids_limit {
        if res["pids"]["limit"].is_null() && p != 0 {
            res["pids"]["limit"] = json!(p);
        }
    }
    let p = &mut v["process"];
    if !o.ulimits.is_empty() && p["rlimits"].as_array().is_none_or(|a| a.is_empty()) {
        p["rlimits"] = Value::Array(
            o.ulimits
                .iter()
                .map(|(t, s, h)| json!({"type": t, "soft": s, "hard": h}))
                .collect(),
        );
    }
    let defaults: Vec<String> = skiff_runtime::docker::DEFAULT_CAPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let current: Vec<String> = p["capabilities"]["bounding"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let unapplied = {
        let (mut a, mut b) = (current.clone(), defaults.clone());
        a.sort();
        b.sort();
        a == b
    };
    if o.privileged && unapplied {
        // --privileged: every capability and device, no masked or read-only paths, writable sysfs.
        let all = caps_all();
        for k in ["bounding", "effective", "permitted"] {
            p["capabilities"][k] = json!(all);
        }
        v["linux"]["maskedPaths"] = json!([]);
        v["linux"]["readonlyPaths"] = json!([]);
        v["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        for m in v["mounts"].as_array_mut().into_iter().flatten() {
            if m["type"] == "sysfs" {
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|x| x != "ro");
                    opts.push(json!("rw"));
                }
            }
        }
        return serde_json::from_value(v).map_err(|e| Error::Other(format!("config.json: {e}")));
    }
    let nnp = o.security_opt.iter().any(|s| {
        matches!(
            s.as_str(),
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
        )
    });
    let p = &mut v["process"];
    if nnp && p["noNewPrivileges"].is_null() {
        p["noNewPrivileges"] = json!(true);
    }
    if (!o.cap_add.is_empty() || !o.cap_drop.is_empty()) && unapplied {
        let all_caps: Vec<String> = caps_all();
        let known = caps_known();
        let mut set: Vec<String> = if o.cap_add.iter().any(|c| c.eq_ignore_ascii_case("all")) {
            all_caps.clone()
        } else {
            let mut s = defaults.clone();
            for c in &o.cap_add {
                let n = cap_name(c);
                if !known.contains(&n) {
                    return Err(Error::Invalid(format!("unknown capability: \"{n}\"")));
                }
                if !s.contains(&n) {
                    s.push(n);
                }
            }
            s
        };
        if o.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("all")) {
            set.retain(|c| o.cap_add.iter().any(|a| cap_name(a) == *c));
        } else {
            for c in &o.cap_drop {
                let n = cap_name(c);
                if !known.contains(&n) {
                    return Err(Error::Invalid(format!("unknown capability: \"{n}\"")));
                }
                set.retain(|x| *x != n);
            }
        }
        for k in ["bounding", "effective", "permitted"] {
            p["capabilities"][k] = json!(set);
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Other(format!("config.json: {e}")))
}

/// Every capability this process may grant (its bounding set), in bit order, as docker gives a
/// privileged container all of its own.
fn caps_all() -> Vec<String> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    caps_known()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1u64 << i) != 0)
        .map(|(_, c)| c)
        .collect()
}

fn caps_known() -> Vec<String> {
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect()
}

/// The /etc/hosts docker writes for a container without a bridge network.
pub fn hosts_file(hostname: &str, network: &str) -> String {
    if network == "host" {
        return std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    }
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
    )
}

/// The resolv.conf for a container: the host's (loopback nameservers are dropped for containers
/// with their own network namespace, as docker does).
pub fn resolv_conf(network: &str) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if network == "host" {
        return host;
    }
    if network == "slirp4netns" {
        // slirp4netns's own DNS forwarder (10.0.2.3, as podman writes), which reaches the host's
        // resolvers, loopback ones included; the host's search and options lines stay.
        let mut out: String = host
            .lines()
            .filter(|l| !l.trim_start().starts_with("nameserver"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str("nameserver 10.0.2.3\n");
        return out;
    }
    let mut out = String::new();
    let mut ns = 0;
    for l in host.lines() {
        let t = l.trim();
        if let Some(addr) = t.strip_prefix("nameserver") {
            let a = addr.trim();
            if a.starts_with("127.") || a == "::1" {
                continue;
            }
            ns += 1;
        }
        out.push_str(l);
        out.push('\n');
    }
    if ns == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("10KB").unwrap(), 10 << 10);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn users() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nweb:x:1000:\naudio:x:29:web\n",
        )
        .unwrap();
        let u = resolve_user(d.path(), "web").unwrap();
        assert_eq!((u.uid, u.gid, u.groups.clone()), (1000, 1000, vec![29]));
        assert_eq!(u.home, "/home/web");
        assert_eq!(resolve_user(d.path(), "").unwrap().uid, 0);
        let u = resolve_user(d.path(), "42:7").unwrap();
        assert_eq!((u.uid, u.gid), (42, 7));
        assert_eq!(resolve_user(d.path(), "web:root").unwrap().gid, 0);
        assert!(resolve_user(d.path(), "nobody").is_err());
    }
}
