//! Facts for `skiff info`, `skiff version` and `skiff system df`: host (kernel, OS, CPUs, memory,
//! cgroup version) and state counts. Container rows are read from the container code's
//! `containers` table (`id`, `record` JSON with `Image`, `state` JSON with `Status`) when it exists;
//! with no such table every container count is 0.

use std::fs;
use std::path::Path;

use rusqlite::Connection;

/// The engine's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Docker Engine API version skiff's CLI and API follow.
pub const API_VERSION: &str = "1.43";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";
/// The compiler that built skiff (`rust1.xx.y`), shown where docker shows its Go version.
pub const RUST_VERSION: &str = env!("SKIFF_RUSTC_VERSION");

/// Host facts docker's `info` reports.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of /etc/os-release.
    pub operating_system: String,
    /// Machine (`x86_64`).
    pub architecture: String,
    /// Online CPUs.
    pub ncpu: u64,
    /// Bytes of RAM (MemTotal).
    pub mem_total: u64,
    /// `1` or `2`: version of the cgroup hierarchy at /sys/fs/cgroup.
    pub cgroup_version: String,
    /// The host name.
    pub name: String,
    /// `extfs`, `xfs`, `tmpfs`, ...: the filesystem under the root.
    pub backing_filesystem: String,
}

fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Default::default();
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.release), s(&u.machine), s(&u.nodename))
}

/// The host facts, read now. `root` is used for the backing filesystem.
pub fn host_info(root: &Path) -> HostInfo {
    let (kernel_version, architecture, name) = uname();
    let operating_system = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let mem_total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        * 1024;
    HostInfo {
        kernel_version,
        operating_system,
        architecture,
        ncpu,
        mem_total,
        cgroup_version: cgroup_version().to_string(),
        name,
        backing_filesystem: backing_fs(root),
    }
}

fn statfs_type(p: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())).ok()?;
    // SAFETY: statfs is plain data filled by the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and statfs pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_type as i64)
}

/// `2` when /sys/fs/cgroup is a cgroup2 mount (unified), else `1` (legacy or hybrid, as docker
/// reports a hybrid host).
pub fn cgroup_version() -> &'static str {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    if statfs_type(Path::new("/sys/fs/cgroup")) == Some(CGROUP2_SUPER_MAGIC) {
        "2"
    } else {
        "1"
    }
}

fn backing_fs(root: &Path) -> String {
    let mut p = root.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            break;
        }
    }
    match statfs_type(&p) {
        Some(0xef53) => "extfs",
        Some(0x5846_5342) => "xfs",
        Some(0x0102_1994) => "tmpfs",
        Some(0x9123_683e) => "btrfs",
        Some(0x794c_7630) => "overlayfs",
        Some(0x2fc1_2fc1) => "zfs",
        _ => "<unknown>",
    }
    .to_string()
}

/// One row of the container code's table, as far as info/df need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Container id.
    pub id: String,
    /// Image id (`sha256:…`).
    pub image: String,
    /// created, running, paused, restarting, exited, dead, ...
    pub status: String,
}

/// Every container in the `containers` table; empty when the table does not exist (yet).
pub fn containers(db: &Connection) -> Vec<ContainerSummary> {
    let Ok(mut st) = db.prepare("SELECT id, record, state FROM containers") else {
        return Vec::new();
    };
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1).unwrap_or_default(),
            r.get::<_, String>(2).unwrap_or_default(),
        ))
    });
    let Ok(rows) = rows else {
        return Vec::new();
    };
    rows.flatten()
        .map(|(id, record, state)| {
            let rec: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
            let st: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
            let status = st
                .get("Status")
                .or_else(|| st.get("status"))
                .and_then(|v| v.as_str())
                .unwrap_or("created")
                .to_string();
            ContainerSummary {
                id,
                image: rec
                    .get("Image")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                status,
            }
        })
        .collect()
}

/// Docker's counts: (total, running, paused, stopped). Restarting counts as running.
pub fn container_counts(list: &[ContainerSummary]) -> (u64, u64, u64, u64) {
    let mut c = (list.len() as u64, 0, 0, 0);
    for s in list {
        match s.status.as_str() {
            "running" | "restarting" => c.1 += 1,
            "paused" => c.2 += 1,
            _ => c.3 += 1,
        }
    }
    c
}

/// Opens `<root>/skiff.db` read-mostly for the reports (WAL, busy timeout).
pub fn open_db(root: &Path) -> rusqlite::Result<Connection> {
    // Never create the file: a missing database is the state gate's to report.
    let c = Connection::open_with_flags(
        root.join("skiff.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c)
}

/// go-units `BytesSize` (binary units, 4 significant digits): `23.43GiB`.
pub fn bytes_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    // %.4g: four significant digits, trailing zeros trimmed.
    let int_digits = format!("{}", v.trunc() as u64).len();
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s2 = format!("{v:.decimals$}");
    if s2.contains('.') {
        s2 = s2.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s2}{}", units[i])
}

/// Docker's name for this machine's architecture (`amd64`, `arm64`, …).
pub fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The `Server` half of docker's `version` (`GET /version`), announcing `api_version`.
pub fn server_version(api_version: &str) -> serde_json::Value {
    use serde_json::json;
    let (os, arch) = ("linux", docker_arch());
    let kernel = host_info(Path::new("/")).kernel_version;
    json!({
        "Platform": {"Name": "skiff Engine (daemonless)"},
        "Components": [{
            "Name": "Engine",
            "Version": VERSION,
            "Details": {
                "ApiVersion": api_version,
                "MinAPIVersion": MIN_API_VERSION,
                "GoVersion": RUST_VERSION,
                "Os": os,
                "Arch": arch,
                "KernelVersion": kernel,
                "Experimental": "false",
            }
        }],
        "Version": VERSION,
        "ApiVersion": api_version,
        "MinAPIVersion": MIN_API_VERSION,
        "GoVersion": RUST_VERSION,
        "RustVersion": RUST_VERSION,
        "Os": os,
        "Arch": arch,
        "KernelVersion": kernel,
    })
}

/// docker's `info` object (`GET /info`, `skiff info`).
pub fn info_json(root: &Path) -> crate::Result<serde_json::Value> {
    use serde_json::json;
    let h = host_info(root);
    let ctrs = open_db(root).map(|db| containers(&db)).unwrap_or_default();
    let (total, running, paused, stopped) = container_counts(&ctrs);
    let images = skiff_image::Store::open(root)?.list()?.len();
    let arch = docker_arch();
    let rootless = crate::rootless::active();
    // docker's shape: name → {"path"}; the built-in one, then daemon.json's and runc/crun on PATH.
    let mut runtimes = serde_json::Map::new();
    runtimes.insert(
        crate::ociruntime::BUILTIN.into(),
        json!({"path": crate::ociruntime::BUILTIN}),
    );
    for (name, path) in crate::ociruntime::listed(root) {
        runtimes.insert(name, json!({ "path": path }));
    }
    let mut v = json!({
        "ID": "",
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [
            ["Backing Filesystem", h.backing_filesystem],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", if rootless { "true" } else { "false" }],
        ],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "LoggingDriver": "json-file",
        // docker's rootless mode without a delegated cgroup says `none`.
        "CgroupDriver": if rootless { "none" } else { "cgroupfs" },
        "CgroupVersion": h.cgroup_version,
        "KernelVersion": h.kernel_version,
        "OperatingSystem": h.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": h.architecture,
        "NCPU": h.ncpu,
        "MemTotal": h.mem_total,
        "DockerRootDir": root,
        "Name": h.name,
        "ServerVersion": VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": "skiff-runtime",
        "InitBinary": "docker-init",
        "SecurityOptions": if rootless {
            json!(["name=seccomp,profile=builtin", "name=rootless"])
        } else {
            json!(["name=seccomp,profile=builtin"])
        },
        "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": false,
        "Experimental": false,
        "ClientInfo": {"Version": VERSION, "Context": "default", "Debug": false},
        "Arch": arch,
    });
    // Port publishing and isolation are one nftables table (API 1.49's FirewallBackend).
    v["FirewallBackend"] = json!({"Driver": "nftables"});
    v["ContainerdCommit"] = json!({"ID": ""});
    v["RuncCommit"] = json!({"ID": VERSION});
    v["InitCommit"] = json!({"ID": VERSION});
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts() {
        assert_eq!(bytes_size(25_158_868_992), "23.43GiB");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(500), "500B");
        let db = Connection::open_in_memory().unwrap();
        assert!(containers(&db).is_empty());
        db.execute_batch(
            "CREATE TABLE containers(id TEXT, name TEXT, record TEXT, state TEXT);
             INSERT INTO containers VALUES('a','x','{\"Image\":\"sha256:1\"}','{\"Status\":\"running\"}');
             INSERT INTO containers VALUES('b','y','{}','{\"Status\":\"exited\"}');
             INSERT INTO containers VALUES('c','z','{}','{\"Status\":\"paused\"}');",
        )
        .unwrap();
        let l = containers(&db);
        assert_eq!(l[0].image, "sha256:1");
        assert_eq!(container_counts(&l), (3, 1, 1, 1));
        let h = host_info(Path::new("/"));
        assert!(h.ncpu >= 1 && h.mem_total > 0 && !h.kernel_version.is_empty());
    }
}
