//! Other OCI runtimes (docker's `--runtime`): runc, crun or any binary with runc's command line.
//!
//! skiff runs containers with its built-in runtime library (`skiff-runtime`) in-process. A
//! container created with `--runtime NAME` is run by another binary instead: NAME is a key of
//! daemon.json's `runtimes` (docker's shape: `{"NAME": {"path": "...", "runtimeArgs": [...]}}`),
//! an absolute path, or a program found on PATH. The choice is resolved once at create and kept
//! beside the bundle (`<container>/oci-runtime`); the container's monitor then drives it with
//! runc's verbs (`create --bundle --pid-file [--console-socket]`, `start`, `delete --force`),
//! and the engine with `kill`, `pause`, `resume` and `exec --process`. Each runtime keeps its
//! state under a private root of skiff's run dir (`<runroot>/runtimes/<name>`). Cgroups are the
//! spec's `cgroupsPath` (cgroupfs), so `ps`/`top`/`stats`/`update` read them as for any container.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use skiff_image::perms;

use crate::error::{Error, Result};

/// The name of the built-in runtime.
pub const BUILTIN: &str = "skiff-runtime";
/// The file in a container's directory naming its external runtime.
pub const FILE: &str = "oci-runtime";
/// The init's pid file the runtime writes, in the container's run dir.
pub const PID_FILE: &str = "init.pid";

/// One entry of daemon.json's `runtimes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeEntry {
    /// The binary (absolute, or a name looked up on PATH).
    pub path: String,
    /// Global arguments put before the verb.
    #[serde(default)]
    pub runtime_args: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DaemonRuntimes {
    runtimes: Option<BTreeMap<String, RuntimeEntry>>,
}

/// daemon.json's `runtimes` for the engine at `root` (its own daemon.json, else
/// /etc/skiff/daemon.json, as `cdi-spec-dirs`).
pub fn configured(root: &Path) -> Result<BTreeMap<String, RuntimeEntry>> {
    for p in [
        root.join("daemon.json"),
        PathBuf::from("/etc/skiff/daemon.json"),
    ] {
        match std::fs::read(&p) {
            Ok(b) => {
                let d: DaemonRuntimes = serde_json::from_slice(&b)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
                return Ok(d.runtimes.unwrap_or_default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Other(format!("read {}: {e}", p.display()))),
        }
    }
    Ok(BTreeMap::new())
}

/// `name` on PATH (an executable regular file), as a shell finds it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The runtimes `info` lists: daemon.json's, then runc and crun when they are on PATH, with
/// their paths (the built-in one is not included).
pub fn listed(root: &Path) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = configured(root)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.path))
        .collect();
    for n in ["runc", "crun"] {
        if !m.contains_key(n) {
            if let Some(p) = on_path(n) {
                m.insert(n.into(), p.to_string_lossy().into_owned());
            }
        }
    }
    m
}

/// An OCI runtime binary other than the built-in one, as a container uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// The name the user gave (`HostConfig.Runtime`).
    pub name: String,
    /// The binary.
    pub path: PathBuf,
    /// Global arguments before the verb (daemon.json's `runtimeArgs`).
    pub args: Vec<String>,
    /// Its private state root (`--root`).
    pub root: PathBuf,
}

fn unknown(name: &str) -> Error {
    Error::Invalid(format!("unknown or invalid runtime name: {name}"))
}

/// The runtime `name` resolves to: None for the built-in one (empty or `skiff-runtime`), else a
/// daemon.json entry, an absolute path or a program on PATH; anything else is docker's
/// "unknown or invalid runtime name".
pub fn resolve(root: &Path, runroot: &Path, name: &str) -> Result<Option<External>> {
    if name.is_empty() || name == BUILTIN {
        return Ok(None);
    }
    if name.contains('\n') || name.contains('\0') {
        return Err(unknown(&name.escape_debug().to_string()));
    }
    let (path, args) = match configured(root)?.remove(name) {
        Some(e) => {
            let p = if e.path.contains('/') {
                PathBuf::from(&e.path)
            } else {
                on_path(&e.path).ok_or_else(|| {
                    Error::Invalid(format!(
                        "runtime {name}: its path {:?} is not found on PATH",
                        e.path
                    ))
                })?
            };
            (p, e.runtime_args)
        }
        None if name.starts_with('/') => (PathBuf::from(name), Vec::new()),
        None if !name.contains('/') => (on_path(name).ok_or_else(|| unknown(name))?, Vec::new()),
        None => return Err(unknown(name)),
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let ok = std::fs::metadata(&path)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !ok || args.iter().any(|a| a.contains('\n')) {
            return Err(Error::Invalid(format!(
                "runtime {name}: {} is not an executable file",
                path.display()
            )));
        }
        if path.to_string_lossy().contains('\n') {
            return Err(unknown(name));
        }
    }
    let dir: String = name
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(Some(External {
        name: name.to_string(),
        path,
        args,
        root: runroot.join("runtimes").join(dir),
    }))
}

impl External {
    /// Reads the runtime a container was created with (None: the built-in one).
    pub fn load(container_dir: &Path) -> Option<External> {
        let s = std::fs::read_to_string(container_dir.join(FILE)).ok()?;
        let mut l = s.lines();
        let name = l.next()?.to_string();
        let path = PathBuf::from(l.next()?);
        let root = PathBuf::from(l.next()?);
        let args = l.map(str::to_string).collect();
        Some(External {
            name,
            path,
            args,
            root,
        })
    }

    /// Records this runtime in a container's directory (read back by [`External::load`]).
    pub fn save(&self, container_dir: &Path) -> Result<()> {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.name,
            self.path.display(),
            self.root.display()
        );
        for a in &self.args {
            s.push_str(a);
            s.push('\n');
        }
        perms::write_file(&container_dir.join(FILE), s.as_bytes(), perms::PRIVATE_FILE).map_err(
            |e| Error::Io {
                what: format!("write {}/{FILE}", container_dir.display()),
                source: e,
            },
        )
    }

    /// A command line `<path> <runtimeArgs> --root <root> [--log L --log-format json] VERB`.
    pub fn command(&self, verb: &str, log: Option<&Path>) -> Command {
        let mut c = Command::new(&self.path);
        c.args(&self.args).arg("--root").arg(&self.root);
        if let Some(l) = log {
            c.arg("--log").arg(l).arg("--log-format").arg("json");
        }
        c.arg(verb);
        c
    }

    /// Makes the runtime's state root (private).
    pub fn make_root(&self) -> Result<()> {
        if let Some(parent) = self.root.parent() {
            perms::mkdir(parent, perms::PRIVATE_DIR).map_err(|e| Error::Io {
                what: format!("create {}", parent.display()),
                source: e,
            })?;
        }
        perms::mkdir(&self.root, perms::PRIVATE_DIR)
            .map(|_| ())
            .map_err(|e| Error::Io {
                what: format!("create {}", self.root.display()),
                source: e,
            })
    }

    /// Runs `cmd` with stdio closed; Err carries its one-line error (`runtime NAME: VERB: msg`).
    pub fn run_quiet(&self, verb: &str, mut cmd: Command) -> Result<()> {
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| self.failed(verb, &e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        Err(self.failed(verb, &last_line(&String::from_utf8_lossy(&out.stderr))))
    }

    /// The error of a failed verb, naming the runtime.
    pub fn failed(&self, verb: &str, msg: &str) -> Error {
        let msg = if msg.is_empty() { "failed" } else { msg };
        Error::Other(format!("runtime {}: {verb}: {msg}", self.name))
    }

    /// `kill [--all] ID SIG`.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let mut c = self.command("kill", None);
        if all {
            c.arg("--all");
        }
        c.arg(id).arg(sig.to_string());
        self.run_quiet("kill", c)
    }

    /// `delete --force ID` (ignores a container the runtime does not know).
    pub fn delete(&self, id: &str) {
        if !self.root.join(id).exists() {
            return;
        }
        let mut c = self.command("delete", None);
        c.arg("--force").arg(id);
        let _ = self.run_quiet("delete", c);
    }

    /// `pause ID` / `resume ID`.
    pub fn pause(&self, id: &str, pause: bool) -> Result<()> {
        let verb = if pause { "pause" } else { "resume" };
        let mut c = self.command(verb, None);
        c.arg(id);
        self.run_quiet(verb, c)
    }
}

/// The last non-empty line of a runtime's error output, without logrus' `time=… level=error
/// msg="…"` wrapping when it has one.
pub fn last_line(s: &str) -> String {
    let l = s
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if let Some(i) = l.find("msg=\"") {
        let m = &l[i + 5..];
        let end = m.rfind('"').unwrap_or(m.len());
        return m[..end].replace("\\\"", "\"");
    }
    l.to_string()
}

/// The error a runtime's `--log-format json` log ends with (the last `"level":"error"` message).
pub fn log_error(log: &Path) -> Option<String> {
    let s = std::fs::read_to_string(log).ok()?;
    s.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        matches!(v["level"].as_str(), Some("error" | "fatal"))
            .then(|| v["msg"].as_str().map(str::to_string))?
    })
}

/// The container's init and cgroup as any runtime left them: what `stop`, `rm -f`, `pause`,
/// `ps`, `top`, `stats`, `update` and `cp` need.
#[derive(Debug, Clone)]
pub struct Live {
    /// The init's host pid.
    pub pid: i32,
    /// Its start time (0: unknown, see [`Live::init_alive`]).
    pub pid_start: u64,
    /// The container's cgroup.
    pub cgroup: skiff_cgroups::Cgroup,
}

impl Live {
    /// Is the init still alive (and still the container's: with a start time recorded, the
    /// same process; without one, a member of the container's cgroup)?
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        if self.pid_start != 0 {
            return skiff_runtime::state::init_alive(self.pid, self.pid_start);
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        if unsafe { libc::kill(self.pid, 0) } != 0 {
            return false;
        }
        self.cgroup.paths.is_empty() || self.cgroup.procs().is_ok_and(|p| p.contains(&self.pid))
    }
}

impl From<skiff_runtime::state::State> for Live {
    fn from(st: skiff_runtime::state::State) -> Live {
        Live {
            pid: st.pid,
            pid_start: st.pid_start,
            cgroup: st.cgroup,
        }
    }
}

/// The cgroup a bundle's `linux.cgroupsPath` names (cgroupfs, as runc resolves it).
pub fn bundle_cgroup(container_dir: &Path, id: &str) -> Option<skiff_cgroups::Cgroup> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(container_dir.join("config.json")).ok()?).ok()?;
    let path = spec["linux"]["cgroupsPath"].as_str().map(str::to_string);
    skiff_cgroups::Cgroup::resolve(&skiff_cgroups::CgroupSpec {
        path,
        id: id.to_string(),
        manager: Default::default(),
        rootless: !skiff_runtime::util::is_real_root(),
    })
    .ok()
}

/// The live init and cgroup of an external runtime's container: the pid its runtime wrote
/// (`<run dir>/init.pid`), the cgroup from the bundle.
pub fn live(container_dir: &Path, run_dir: &Path, id: &str) -> Result<Live> {
    let pid = std::fs::read_to_string(run_dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::State(format!("container {id} is not running")))?;
    let cgroup = bundle_cgroup(container_dir, id).unwrap_or_default();
    Ok(Live {
        pid,
        pid_start: 0,
        cgroup,
    })
}

/// A console socket for `--console-socket` at `dir/console.sock`, bound through a short
/// `/proc/self/fd` path; returns the directory fd (keeps the path valid), the listener and the
/// path another process (the runtime, as root) can connect to.
pub fn console_listener(dir: &Path) -> Result<(OwnedFd, std::os::unix::net::UnixListener, String)> {
    let io = |what: &str, e: std::io::Error| Error::Io {
        what: format!("{what} {}/console.sock", dir.display()),
        source: e,
    };
    let d: OwnedFd = std::fs::File::open(dir).map_err(|e| io("open", e))?.into();
    let _ = std::fs::remove_file(dir.join("console.sock"));
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| io("socket", e.into()))?;
    // The socket file gets the socket inode's mode (less the umask) at bind: 0600 first.
    perms::fchmod(&sock, perms::PRIVATE_FILE).map_err(|e| io("chmod", e))?;
    let own = format!("/proc/self/fd/{}/console.sock", d.as_raw_fd());
    let addr = nix::sys::socket::UnixAddr::new(own.as_str()).map_err(|e| io("bind", e.into()))?;
    nix::sys::socket::bind(sock.as_raw_fd(), &addr).map_err(|e| io("bind", e.into()))?;
    nix::sys::socket::listen(
        &sock,
        nix::sys::socket::Backlog::new(1).map_err(|e| io("listen", e.into()))?,
    )
    .map_err(|e| io("listen", e.into()))?;
    let l = std::os::unix::net::UnixListener::from(sock);
    l.set_nonblocking(true).map_err(|e| io("listen", e))?;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let other = format!("/proc/{pid}/fd/{}/console.sock", d.as_raw_fd());
    Ok((d, l, other))
}

/// Waits for the runtime (`child`, still running) to send the pty master on `l`; an error
/// when it exits without sending one (its own error is read by the caller).
pub fn accept_master(
    l: &std::os::unix::net::UnixListener,
    child: &mut std::process::Child,
) -> Option<OwnedFd> {
    loop {
        match l.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                return skiff_runtime::console::recv_master(conn.as_raw_fd()).ok();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
        if !matches!(child.try_wait(), Ok(None)) {
            // One last look: it may have connected just before it exited.
            return l.accept().ok().and_then(|(c, _)| {
                let _ = c.set_nonblocking(false);
                skiff_runtime::console::recv_master(c.as_raw_fd()).ok()
            });
        }
        let mut p = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 20) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logrus_lines() {
        assert_eq!(
            last_line("x\ntime=\"t\" level=error msg=\"container \\\"a\\\" does not exist\"\n"),
            "container \"a\" does not exist"
        );
        assert_eq!(last_line("plain error\n\n"), "plain error");
    }

    #[test]
    fn bogus_names() {
        let d = std::env::temp_dir();
        assert!(resolve(&d, &d, "no-such-runtime-xyz").is_err());
        assert!(resolve(&d, &d, "a/b").is_err());
        assert!(resolve(&d, &d, "skiff-runtime").unwrap().is_none());
    }

    #[test]
    fn save_load() {
        let d = std::env::temp_dir().join(format!("ocirt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let e = External {
            name: "r".into(),
            path: "/usr/bin/r".into(),
            args: vec!["--x".into(), "y".into()],
            root: "/run/r".into(),
        };
        e.save(&d).unwrap();
        assert_eq!(External::load(&d), Some(e));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
