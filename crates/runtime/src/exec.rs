//! `exec`: run an additional process inside a running container's namespaces and cgroup, with the
//! same security settings path (rlimits, caps, user, seccomp) as the init.
//!
//! Everything `exec` needs from the container is read once from its state.json ([`ExecTarget`]),
//! without building the seccomp rules (most of that file): the program the init loaded is read
//! from `<root>/seccomp@cache` by the key its state records, so nothing is compiled.

use crate::container::Console;
use crate::error::{Error, Result};
use crate::state::{self, Status};
use crate::sync::{self, Msg};
use crate::{console, forward, init, namespaces, util};
use oci_spec::runtime::{LinuxNamespace, LinuxSeccomp, Process};
use serde::Deserialize;
use skiff_cgroups::Cgroup;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Options of `exec`.
#[derive(Debug)]
pub struct ExecOpts {
    /// Runtime root.
    pub root: PathBuf,
    /// Container id.
    pub id: String,
    /// The process to run.
    pub process: Process,
    /// Console socket for a terminal.
    pub console: Console,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--detach`.
    pub detach: bool,
    /// `--preserve-fds`.
    pub preserve_fds: i32,
}

/// A container as `exec` sees it, read once from `<root>/<id>/state.json`: the fields of
/// [`crate::state::State`] that locate the init, its process template, namespace types and the
/// cache key of its seccomp filter. The seccomp rules are skipped while parsing (serde ignores
/// them); they are parsed from the same bytes only when the cached program is missing or damaged.
#[derive(Debug, Deserialize)]
pub struct ExecTarget {
    /// Container id.
    pub id: String,
    /// Host pid of the init.
    pub pid: i32,
    /// Start time of `pid`, to detect pid reuse.
    pub pid_start: u64,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// The container's cgroup.
    pub cgroup: Cgroup,
    /// True once `start` released the init.
    pub started: bool,
    /// Cache key of the init's compiled seccomp filter.
    #[serde(default)]
    pub seccomp_key: Option<String>,
    config: ExecConfig,
    /// The state file's bytes, for the seccomp section when it must be compiled again.
    #[serde(skip)]
    raw: Vec<u8>,
}

/// The parts of config.json `exec` uses; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
struct ExecConfig {
    #[serde(rename = "ociVersion", default)]
    version: String,
    #[serde(default)]
    process: Option<Process>,
    #[serde(default)]
    linux: Option<ExecLinux>,
}

#[derive(Debug, Default, Deserialize)]
struct ExecLinux {
    #[serde(default)]
    namespaces: Option<Vec<LinuxNamespace>>,
    #[serde(default)]
    seccomp: Option<ExecSeccomp>,
    /// `linux.personality`, kept as JSON: applied to exec'd processes too.
    #[serde(default)]
    personality: Option<serde_json::Value>,
    /// `linux.memoryPolicy`, kept as JSON: applied to exec'd processes too.
    #[serde(default, rename = "memoryPolicy")]
    memory_policy: Option<serde_json::Value>,
}

/// Of `linux.seccomp`, only what the parent needs after the process is started.
#[derive(Debug, Default, Deserialize)]
struct ExecSeccomp {
    #[serde(rename = "listenerPath", default)]
    listener_path: Option<PathBuf>,
    #[serde(rename = "listenerMetadata", default)]
    listener_metadata: Option<String>,
}

/// Only `config.linux.seccomp`, in full.
#[derive(Deserialize)]
struct FullSeccomp {
    config: FullConfig,
}
#[derive(Deserialize)]
struct FullConfig {
    linux: FullLinux,
}
#[derive(Deserialize)]
struct FullLinux {
    seccomp: LinuxSeccomp,
}

impl ExecTarget {
    /// Read the state of container `id` under `root`.
    pub fn load(root: &Path, id: &str) -> Result<ExecTarget> {
        state::validate_id(id)?;
        let path = state::container_dir(root, id).join("state.json");
        let raw = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let mut t: ExecTarget = serde_json::from_slice(&raw)
            .map_err(|e| Error::Other(format!("{}: corrupt state: {e}", path.display())))?;
        t.raw = raw;
        Ok(t)
    }

    /// The live status of the container.
    pub fn status(&self, root: &Path) -> Status {
        state::live_status(
            root,
            &self.id,
            self.pid,
            self.pid_start,
            self.started,
            &self.cgroup,
        )
    }

    /// The container's `process` (the template for an exec's process).
    pub fn process(&self) -> Option<&Process> {
        self.config.process.as_ref()
    }

    /// The container's namespace types (CLONE_* flags), created or joined: the ones an exec joins.
    fn namespace_flags(&self) -> i32 {
        let l = self.config.linux.as_ref();
        l.and_then(|l| l.namespaces.as_ref())
            .into_iter()
            .flatten()
            .fold(0, |f, ns| f | namespaces::flag(ns.typ()))
    }

    /// `linux.personality` and `linux.memoryPolicy` as the runtime-spec type (None when
    /// neither is set), parsed before the clone so the child only applies them.
    fn process_attrs(&self) -> Result<Option<oci_spec::runtime::Linux>> {
        let Some(l) = self.config.linux.as_ref() else {
            return Ok(None);
        };
        if l.personality.is_none() && l.memory_policy.is_none() {
            return Ok(None);
        }
        let mut v = serde_json::Map::new();
        if let Some(p) = &l.personality {
            v.insert("personality".into(), p.clone());
        }
        if let Some(m) = &l.memory_policy {
            v.insert("memoryPolicy".into(), m.clone());
        }
        serde_json::from_value(serde_json::Value::Object(v))
            .map(Some)
            .map_err(|e| Error::Config(format!("container {:?}: stored linux: {e}", self.id)))
    }

    /// The process of `exec --process FILE`, read from `data` with runc 1.1.5's handling of
    /// absent fields (observed side by side, see tests/tests/runtime_spec.rs): `cwd` and `args`
    /// must be given; `user` defaults to uid 0 / gid 0; absent `capabilities`,
    /// `apparmorProfile` and `selinuxLabel` are the container's own (runc's finalizeNamespace
    /// falls back to the container config); `env`, `rlimits`, `noNewPrivileges`, `terminal`
    /// and `user.umask` are not inherited (no variables but HOME, the caller's limits, no
    /// no_new_privs, no terminal, umask 0022). A `selinuxLabel` on a host without SELinux is
    /// refused, as runc's validateProcessSpec does.
    pub fn process_from_json(&self, data: &[u8]) -> Result<Process> {
        let bad = |m: String| Error::Other(format!("process: {m}"));
        let mut v: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        let Some(o) = v.as_object_mut() else {
            return Err(bad("must be a JSON object".into()));
        };
        match o.get("cwd").and_then(|c| c.as_str()) {
            None | Some("") => return Err(bad("cwd: must not be empty".into())),
            Some(c) if !c.starts_with('/') => {
                return Err(bad(format!("cwd: {c:?} must be an absolute path")))
            }
            Some(_) => {}
        }
        if o.get("args")
            .and_then(|a| a.as_array())
            .is_none_or(|a| a.is_empty())
        {
            return Err(bad("args: must not be empty".into()));
        }
        o.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        let mut p: Process = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        let own = self.process();
        if p.capabilities().is_none() {
            p.set_capabilities(Some(
                own.and_then(|c| c.capabilities().clone())
                    .unwrap_or_else(crate::process::no_capabilities),
            ));
        }
        if p.apparmor_profile().as_deref().unwrap_or("").is_empty() {
            p.set_apparmor_profile(own.and_then(|c| c.apparmor_profile().clone()));
        }
        if !p.selinux_label().as_deref().unwrap_or("").is_empty()
            && !Path::new("/sys/fs/selinux/enforce").exists()
        {
            return Err(bad(
                "selinuxLabel: SELinux is disabled or not supported on this host".into(),
            ));
        }
        if p.selinux_label().as_deref().unwrap_or("").is_empty() {
            p.set_selinux_label(own.and_then(|c| c.selinux_label().clone()));
        }
        Ok(p)
    }

    fn seccomp(&self) -> Option<&ExecSeccomp> {
        self.config.linux.as_ref().and_then(|l| l.seccomp.as_ref())
    }

    /// `linux.seccomp` in full, parsed from the state file's bytes.
    fn seccomp_profile(&self) -> Result<LinuxSeccomp> {
        serde_json::from_slice::<FullSeccomp>(&self.raw)
            .map(|f| f.config.linux.seccomp)
            .map_err(|e| {
                Error::Other(format!(
                    "container {:?}: stored linux.seccomp: {e}",
                    self.id
                ))
            })
    }

    /// The init's seccomp program: from the cache by the recorded key; compiled (and the entry
    /// written again) when the entry is missing or rejected, or the state predates the key.
    fn filter(&self, root: &Path) -> Result<Option<crate::seccomp::CompiledFilter>> {
        if self.seccomp().is_none() {
            return Ok(None);
        }
        let cfg = |e: crate::seccomp::SeccompError| Error::Config(format!("linux.seccomp: {e}"));
        let c = match &self.seccomp_key {
            Some(k) => crate::seccomp::cache::get_by_key(k, root, || {
                self.seccomp_profile()
                    .map_err(|e| crate::seccomp::SeccompError(e.to_string()))
            })
            .map_err(cfg)?,
            None => crate::seccomp::cache::get(&self.seccomp_profile()?, root).map_err(cfg)?,
        };
        Ok(Some(c.filter))
    }
}

/// Run the exec; returns the process's exit code (0 when detached).
pub fn exec(o: ExecOpts) -> Result<i32> {
    let t = ExecTarget::load(&o.root, &o.id)?;
    exec_in(&t, o)
}

/// Run the exec in a container already read with [`ExecTarget::load`] (callers that build the
/// process from the container's own template read the state once).
pub fn exec_in(t: &ExecTarget, o: ExecOpts) -> Result<i32> {
    let detach = o.detach;
    let s = spawn_in(t, o)?;
    if detach {
        return Ok(0);
    }
    forward::wait(s.pid, s.master)
}

/// A started exec process.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid (in our pid namespace); our child unless detached (we are its subreaper).
    pub pid: i32,
    /// The pty master when `process.terminal` was asked for without a console socket.
    pub master: Option<OwnedFd>,
}

/// Starts the exec process and returns without waiting for it: the caller reaps it (this process
/// is made a child subreaper with every forwarded signal blocked, see [`forward::block_signals`])
/// and relays its terminal. With `detach`, nothing is left to the caller.
pub fn spawn(o: ExecOpts) -> Result<Spawned> {
    let t = ExecTarget::load(&o.root, &o.id)?;
    spawn_in(&t, o)
}

/// [`spawn`] in a container already read with [`ExecTarget::load`].
pub fn spawn_in(t: &ExecTarget, o: ExecOpts) -> Result<Spawned> {
    spawn_with(t, o, None, true)
}

/// [`spawn_in`] for a process that only starts the exec and leaves: this process's parent (a
/// child subreaper with the forwarded signals blocked beforehand, see [`crate::exec_helper`])
/// reaps the exec'd process and relays its terminal.
pub fn spawn_for_parent(t: &ExecTarget, o: ExecOpts) -> Result<Spawned> {
    spawn_with(t, o, None, false)
}

/// How a debug process (`skiff debug`) differs from an exec: its own mount view with a toolbox
/// ([`crate::debugview`]), and optionally no seccomp filter (`--privileged`).
#[derive(Debug)]
pub struct DebugOpts {
    /// The toolbox, opened on the host.
    pub toolbox: crate::debugview::Prepared,
    /// Leave the container's seccomp filter out.
    pub unconfined: bool,
}

/// [`spawn_in`] for a debug process.
pub fn spawn_debug(t: &ExecTarget, o: ExecOpts, d: &DebugOpts) -> Result<Spawned> {
    spawn_with(t, o, Some(d), true)
}

/// [`exec_in`] for a debug process.
pub fn exec_debug(t: &ExecTarget, o: ExecOpts, d: &DebugOpts) -> Result<i32> {
    let detach = o.detach;
    let s = spawn_with(t, o, Some(d), true)?;
    if detach {
        return Ok(0);
    }
    forward::wait(s.pid, s.master)
}

/// `reaper`: this process waits for the exec'd process (so it becomes its subreaper and blocks
/// the forwarded signals first); false when a parent does (the exec helper).
fn spawn_with(
    t: &ExecTarget,
    o: ExecOpts,
    debug: Option<&DebugOpts>,
    reaper: bool,
) -> Result<Spawned> {
    match t.status(&o.root) {
        Status::Running | Status::Created => {}
        Status::Paused => {
            return Err(Error::State {
                id: o.id.clone(),
                msg: "cannot exec in a paused container".into(),
            })
        }
        s => {
            return Err(Error::State {
                id: o.id.clone(),
                msg: format!("cannot exec in a {s} container"),
            })
        }
    }
    crate::process::validate(&o.process)?;
    let affinity = crate::procattr::exec_affinity(&o.process)?;
    let pid_file = o.pid_file.as_ref().map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    });
    // Open the init's namespaces (user first); skip ones we already share (setns into our own user
    // namespace is EINVAL).
    let flags = t.namespace_flags();
    let mut ns: Vec<(i32, OwnedFd)> = Vec::new();
    for f in namespaces::ORDER {
        if flags & f == 0 {
            continue;
        }
        let name = namespaces::proc_name(f);
        let theirs = format!("/proc/{}/ns/{name}", t.pid);
        let same = match (
            std::fs::metadata(&theirs),
            std::fs::metadata(format!("/proc/self/ns/{name}")),
        ) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            continue;
        }
        ns.push((
            f,
            crate::fsutil::open_path(Path::new(&theirs), libc::O_RDONLY)?,
        ));
    }
    let userns = flags & libc::CLONE_NEWUSER != 0;
    let filter = match debug {
        Some(d) if d.unconfined => None,
        _ => t.filter(&o.root)?,
    };
    let terminal = o.process.terminal().unwrap_or(false);
    let mut master_rx = None;
    let console = match o.console {
        Console::None if terminal && !o.detach => {
            let (a, b) = console::socketpair()?;
            master_rx = Some(a);
            Some(b)
        }
        Console::None => None,
        Console::Path(p) => Some(crate::container::connect_unix(&p.to_string_lossy())?),
        Console::Fd(f) => Some(f),
    };
    if terminal && console.is_none() {
        return Err(Error::Config(
            "process.terminal: a terminal needs --console-socket".into(),
        ));
    }
    if !o.detach && reaper {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        forward::block_signals()?;
    }
    let attrs = t.process_attrs()?;
    let (pchan, cchan) = sync::pair()?;
    // Join the container's cgroup without the kernel's global migration lock where possible:
    // cloned straight into the unified group, `tasks` for the v1 hierarchies
    // (skiff_cgroups::Cgroup::join_tasks).
    let (unified, tasks) = if t.cgroup.paths.is_empty() {
        (None, None)
    } else {
        (
            t.cgroup.open_unified().ok().flatten(),
            t.cgroup.open_tasks().ok(),
        )
    };
    let mut in_unified = false;
    // execCPUAffinity.initial holds *before* the cgroup transition, so the child is not cloned
    // straight into the unified group then: it pins itself, then joins.
    let into = unified.as_ref().filter(|_| affinity.initial.is_none());
    let c = match into.map(|fd| fd.as_raw_fd()) {
        Some(fd) => match util::clone_into_cgroup(0, fd) {
            Ok(c) => {
                in_unified = true;
                c
            }
            Err(_) => util::raw_clone(0)?,
        },
        None => util::raw_clone(0)?,
    };
    if c == 0 {
        drop(pchan);
        // Non-dumpable while we enter the container holding host fds (CVE-2016-9962).
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        let r = (|| -> Result<i32> {
            if let Some(set) = &affinity.initial {
                crate::procattr::set_affinity(set, "initial")?;
            }
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            if !t.cgroup.paths.is_empty() {
                match &tasks {
                    Some(fds) => t.cgroup.join_tasks(fds)?,
                    None => t.cgroup.add_process_v1(me)?,
                }
                if !in_unified {
                    t.cgroup.add_process_unified(me)?;
                }
            }
            drop(tasks);
            namespaces::setns_all(&ns)?;
            util::raw_clone(0)
        })();
        match r {
            Ok(0) => {
                // In the container's cgroup now: execCPUAffinity.final (without it the
                // kernel's choice stands, as the spec says). linux.personality and
                // linux.memoryPolicy hold for exec'd processes too.
                let r = match &affinity.last {
                    Some(set) => crate::procattr::set_affinity(set, "final"),
                    None => Ok(()),
                };
                if let Err(e) = r.and_then(|()| crate::procattr::apply_linux(attrs.as_ref())) {
                    let _ = cchan.send(&Msg::Error(e.to_string()), None);
                    // SAFETY: _exit in a forked child.
                    unsafe { libc::_exit(127) }
                }
                // A debug process builds its own view of the container's filesystem while it
                // still has the privileges to mount.
                if let Some(d) = debug {
                    if let Err(e) = crate::debugview::enter(&d.toolbox) {
                        let _ = cchan.send(&Msg::Error(format!("debug view: {e}")), None);
                        // SAFETY: _exit in a forked child.
                        unsafe { libc::_exit(125) }
                    }
                }
                let e = exec_child(
                    &o.process,
                    filter.as_ref(),
                    userns,
                    o.preserve_fds,
                    &cchan,
                    console,
                );
                let _ = cchan.send(&Msg::Error(e.to_string()), None);
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(127) }
            }
            Ok(p) => {
                let _ = cchan.send(&Msg::Pid(p), None);
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(0) }
            }
            Err(e) => {
                let _ = cchan.send(&Msg::Error(e.to_string()), None);
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(1) }
            }
        }
    }
    drop(cchan);
    // C reports the pid and C2 reports Ready; they race, so accept them in either order.
    let mut pid: Option<i32> = None;
    let mut ready = false;
    let mut notify: Option<OwnedFd> = None;
    let mut reaped_c = false;
    let fail = |pid: Option<i32>, reaped: bool, e: Error| {
        if !reaped {
            let _ = util::wait_code(c);
        }
        if let Some(p) = pid {
            let _ = util::wait_code(p);
        }
        Err(e)
    };
    while pid.is_none() || !ready {
        match pchan.recv() {
            Ok((Msg::Pid(p), _)) => {
                pid = Some(p);
                let _ = util::wait_code(c);
                reaped_c = true;
            }
            Ok((Msg::Ready, _)) => ready = true,
            Ok((Msg::SeccompFd, fd)) => notify = fd,
            Ok((Msg::Error(e), _)) => return fail(pid, reaped_c, Error::Other(e)),
            Ok((m, _)) => {
                return fail(
                    pid,
                    reaped_c,
                    Error::Other(format!("sync: unexpected {m:?}")),
                )
            }
            Err(e) => return fail(pid, reaped_c, e),
        }
    }
    let pid = pid.unwrap_or(0);
    if let Some(fd) = notify {
        let sc = t.seccomp();
        if let Some(path) = sc.and_then(|s| s.listener_path.as_ref()) {
            let meta = sc
                .and_then(|s| s.listener_metadata.clone())
                .unwrap_or_default();
            let s = serde_json::json!({"ociVersion": t.config.version, "id": o.id, "status": "running", "pid": pid, "bundle": t.bundle});
            crate::seccomp::send_to_listener(path, &meta, std::os::fd::AsFd::as_fd(&fd), &s)
                .map_err(|e| Error::Other(format!("linux.seccomp.listenerPath: {e}")))?;
        }
    }
    if let Some(p) = pid_file {
        crate::fsutil::write_pid_file(&p, pid)?;
    }
    if o.detach {
        return Ok(Spawned { pid, master: None });
    }
    let master = match master_rx {
        Some(rx) => Some(console::recv_master(rx.as_raw_fd())?),
        None => None,
    };
    Ok(Spawned { pid, master })
}

fn exec_child(
    p: &Process,
    filter: Option<&crate::seccomp::CompiledFilter>,
    userns: bool,
    preserve_fds: i32,
    chan: &sync::Channel,
    console_sock: Option<OwnedFd>,
) -> Error {
    let r = (|| -> Result<(PathBuf, Vec<String>, Vec<String>)> {
        if p.terminal().unwrap_or(false) {
            if let Some(sock) = console_sock {
                console::setup_terminal(p, sock)?;
            }
        }
        let notify = init::apply_process(p, filter, userns, preserve_fds, &[chan.raw()])?;
        if let Some(fd) = &notify {
            chan.send(&Msg::SeccompFd, Some(fd.as_raw_fd()))?;
        }
        drop(notify);
        let env = crate::process::build_env(p);
        let args = p.args().clone().unwrap_or_default();
        let path = crate::process::find_executable(&args[0], &env)?;
        Ok((path, args, env))
    })();
    match r {
        Ok((path, args, env)) => {
            if let Err(e) = chan.send(&Msg::Ready, None) {
                return e;
            }
            init::reset_signals();
            crate::process::exec(&path, &args, &env)
        }
        Err(e) => e,
    }
}
