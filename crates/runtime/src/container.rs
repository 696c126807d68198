//! Container lifecycle verbs over the on-disk state: create, start, kill, delete, run.

use crate::error::{Error, IoContext, Result};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, CLONE_NEWTIME};
use crate::state::{self, State, Status};
use crate::sync::{self, Msg};
use crate::util;
use crate::{config, hooks};
use oci_spec::runtime::Spec;
use skiff_cgroups::{Cgroup, CgroupSpec, ManagerKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the terminal master of a `process.terminal` container goes.
#[derive(Debug, Default)]
pub enum Console {
    /// No console socket.
    #[default]
    None,
    /// Connect to this unix socket and send the master there (`--console-socket`).
    Path(PathBuf),
    /// An already connected socket (used by `run` in the foreground).
    Fd(OwnedFd),
}

/// The device cgroup rules of `res` followed by what every container may use, as runc does: mknod
/// of anything, the default devices, ptys and tun (not the `linux.devices` entries: their access
/// is what `linux.resources.devices` grants).
fn with_default_devices(
    res: &oci_spec::runtime::LinuxResources,
) -> oci_spec::runtime::LinuxResources {
    let mut res = res.clone();
    if res.devices().is_none() {
        return res;
    }
    let mut rules: Vec<serde_json::Value> = res
        .devices()
        .iter()
        .flatten()
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect();
    let rule = |t: &str, major: Option<i64>, minor: Option<i64>, access: &str| serde_json::json!({"allow": true, "type": t, "major": major, "minor": minor, "access": access});
    rules.push(rule("c", None, None, "m"));
    rules.push(rule("b", None, None, "m"));
    for (ma, mi) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(rule("c", Some(ma), Some(mi), "rwm"));
    }
    rules.push(rule("c", Some(136), None, "rwm"));
    // `linux.devices` entries get nodes, not access: as with runc, access comes only from
    // `linux.resources.devices` (docker's `--device /dev/x:/dev/x:r` is read-only that way).
    // Drop nulls (wildcards) so they deserialize as absent.
    for r in rules.iter_mut() {
        if let Some(o) = r.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
    }
    if let Ok(devs) = serde_json::from_value(serde_json::Value::Array(rules)) {
        res.set_devices(Some(devs));
    }
    res
}

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// Runtime state root (`--root`).
    pub root: PathBuf,
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console: Console,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--preserve-fds`.
    pub preserve_fds: i32,
    /// Cgroup manager.
    pub manager: ManagerKind,
}

/// Removes a half-created container when create fails.
struct Cleanup {
    /// linux.netDevices moved in (brought back first: the hold lives in `dir`).
    netdevs: Vec<crate::netdev::Dev>,
    dir: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    child: Option<i32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let (false, Some(d)) = (self.netdevs.is_empty(), &self.dir) {
            if let Err(e) = crate::netdev::move_out(&self.netdevs, self.child, d) {
                eprintln!("skiff-runtime: warning: {e}");
            }
        }
        if let Some(pid) = self.child {
            // SAFETY: kill/waitpid with integer arguments.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn hook_state(id: &str, status: &str, pid: i32, bundle: &Path, spec: &Spec) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    })
}

fn exec_sock_path(dir_fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}/exec.sock", dir_fd.as_raw_fd())
}

fn listen_exec_sock(dir: &Path) -> Result<OwnedFd> {
    let dfd = crate::fsutil::open_path(dir, libc::O_PATH | libc::O_DIRECTORY)?;
    let sock = unix_stream()?;
    // bind gives the socket file the socket inode's mode (less the umask).
    // SAFETY: fchmod on the socket we just made.
    if unsafe { libc::fchmod(sock.as_raw_fd(), crate::fsutil::STATE_FILE_MODE) } < 0 {
        return Err(Error::Sys {
            what: "chmod exec.sock".into(),
            errno: nix::errno::Errno::last(),
        });
    }
    let addr =
        nix::sys::socket::UnixAddr::new(exec_sock_path(&dfd).as_str()).map_err(|e| Error::Sys {
            what: "exec.sock address".into(),
            errno: e,
        })?;
    nix::sys::socket::bind(sock.as_raw_fd(), &addr).map_err(|e| Error::Sys {
        what: format!("bind {}/exec.sock", dir.display()),
        errno: e,
    })?;
    nix::sys::socket::listen(
        &sock,
        nix::sys::socket::Backlog::new(4).unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    )
    .map_err(|e| Error::Sys {
        what: "listen exec.sock".into(),
        errno: e,
    })?;
    Ok(sock)
}

/// A close-on-exec unix stream socket.
fn unix_stream() -> Result<OwnedFd> {
    nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::Sys {
        what: "socket".into(),
        errno: e,
    })
}

/// Connect a unix stream socket to `path` (console sockets, exec.sock).
pub(crate) fn connect_unix(path: &str) -> Result<OwnedFd> {
    let sock = unix_stream()?;
    let addr = nix::sys::socket::UnixAddr::new(path).map_err(|e| Error::Sys {
        what: format!("socket address {path}"),
        errno: e,
    })?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr).map_err(|e| Error::Sys {
        what: format!("connect {path}"),
        errno: e,
    })?;
    Ok(sock)
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    crate::fsutil::write_pid_file(path, pid)
}

/// Create a container: set up namespaces, rootfs and process, leaving it waiting for `start`.
pub fn create(o: CreateOpts) -> Result<State> {
    let bundle = load_bundle(&o.bundle)?;
    create_inner(o, bundle, false).map(|(st, _)| st)
}

/// A bundle's canonical path, spec and absolute rootfs path.
type Bundle = (PathBuf, Spec, PathBuf);

fn load_bundle(path: &Path) -> Result<Bundle> {
    let bundle = path
        .canonicalize()
        .map_err(|e| Error::Config(format!("bundle {}: {e}", path.display())))?;
    let (spec, rootfs) = config::load(&bundle)?;
    Ok((bundle, spec, rootfs))
}

/// `create`; with `direct` (run), no exec.sock is made: the init goes on to exec the user's
/// program as soon as it is set up, this returns once it has (the EOF of the init's close-on-exec
/// end of the channel), and the container is recorded as started.
fn create_inner(o: CreateOpts, b: Bundle, direct: bool) -> Result<(State, sync::Channel)> {
    state::validate_id(&o.id)?;
    let (bundle, spec, rootfs) = b;
    let plan = namespaces::plan(&spec)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let pid_file = o.pid_file.as_ref().map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    });

    // The state root and each container's directory are 0700: state.json holds the config (the
    // environment) and exec.sock starts the container.
    crate::fsutil::mkdir_state(&o.root).at(&o.root)?;
    let dir = state::container_dir(&o.root, &o.id);
    let made = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(crate::fsutil::STATE_DIR_MODE)
            .create(&dir)
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(o.id.clone()))
        }
        Err(e) => {
            return Err(Error::Io {
                path: dir,
                source: e,
            })
        }
    }
    let mut guard = Cleanup {
        netdevs: Vec::new(),
        dir: Some(dir.clone()),
        pid_file: None,
        cgroup: None,
        child: None,
    };
    let listener = if direct {
        None
    } else {
        Some(listen_exec_sock(&dir)?)
    };

    // Not root of the initial user namespace (an ordinary user, or root of a user namespace such
    // as skiff's rootless one): cgroups are best effort.
    let rootless = !util::is_real_root();
    let linux = spec.linux().as_ref();
    let cg_spec = CgroupSpec {
        path: linux
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        id: o.id.clone(),
        manager: o.manager,
        rootless,
    };
    let mut cg = Cgroup::resolve(&cg_spec)?;
    let slow = !plan.join.is_empty() || plan.new_flags & CLONE_NEWTIME != 0;
    // On the direct path only the unified directory (which the init is cloned into) is made
    // before the clone; the v1 ones and the limits follow while the init makes its namespaces.
    // With systemd, systemd makes the directories when it starts the unit (after the clone).
    let split = !slow && !rootless && !cg.is_systemd();
    let resources = linux
        .and_then(|l| l.resources().as_ref())
        .map(with_default_devices);
    let made = if split {
        cg.create_part(true)
    } else {
        cg.create()
    };
    match made {
        Ok(()) => guard.cgroup = Some(cg.clone()),
        Err(_) if rootless => cg = Cgroup::default(),
        Err(e) => return Err(e.into()),
    }
    // With systemd the group exists only once systemd started the unit holding the init.
    if let (Some(res), false) = (&resources, split || cg.paths.is_empty() || cg.is_systemd()) {
        cg.apply(res)?;
    }
    // From `<root>/seccomp@cache` when this profile was compiled before; the key goes into the
    // state so `exec` loads the very same program.
    let (filter, seccomp_key) = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let c = crate::seccomp::cache::get(s, &o.root)
                .map_err(|e| Error::Config(format!("linux.seccomp: {e}")))?;
            (Some(c.filter), Some(c.key))
        }
        None => (None, None),
    };
    let console = match o.console {
        Console::None => None,
        Console::Path(p) => Some(connect_unix(&p.to_string_lossy())?),
        Console::Fd(fd) => Some(fd),
    };
    if terminal && console.is_none() {
        return Err(Error::Config(
            "process.terminal: a terminal needs --console-socket".into(),
        ));
    }
    let idmapped = crate::idmap::prepare(&spec)?;
    let hs = hook_state(&o.id, "creating", 0, &bundle, &spec);
    let (pchan, cchan) = sync::pair()?;
    // On the direct path the init places itself: it is cloned into its unified group and joins its
    // v1 hierarchies through `tasks`, so no write of ours takes the kernel's global migration lock
    // (an RCU grace period, 5-20 ms here). Where that is not possible we write cgroup.procs.
    let unified_fd = if slow || cg.is_systemd() {
        None
    } else {
        cg.open_unified().ok().flatten()
    };
    let init_args = |chan, listener, console, unshare| InitArgs {
        spec: &spec,
        rootfs: rootfs.clone(),
        plan: &plan,
        chan,
        listener,
        console,
        no_pivot: o.no_pivot,
        preserve_fds: o.preserve_fds,
        cgroup: &cg,
        seccomp: filter.as_ref(),
        hook_state: hs.clone(),
        idmapped: &idmapped,
        unshare,
    };
    let mut in_unified = false;
    let pid = if !slow {
        // Only the pid (and user) namespace must come from the clone; the init unshares the
        // others itself (a network namespace alone costs ~0.5 ms) while we finish its cgroup.
        let flags = plan.new_flags & (libc::CLONE_NEWPID | libc::CLONE_NEWUSER);
        let unshare = plan.new_flags
            & (libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET);
        let pid = match unified_fd
            .as_ref()
            .map(|fd| util::clone_into_cgroup(flags, fd.as_raw_fd()))
        {
            Some(Ok(pid)) => {
                in_unified = true;
                pid
            }
            _ => util::raw_clone(flags)?,
        };
        if pid == 0 {
            drop(pchan);
            drop(unified_fd);
            init::run(init_args(cchan, listener, console, unshare));
        }
        pid
    } else {
        let joins = namespaces::open_joins(&plan.join)?;
        let s1 = util::raw_clone(0)?;
        if s1 == 0 {
            drop(pchan);
            stage1(&joins, &plan, init_args(cchan, listener, console, 0));
        }
        let pid = loop {
            match pchan.recv() {
                Ok((Msg::MapRequest, _)) => {
                    let r = namespaces::write_maps(s1, &plan);
                    if let Err(e) = r {
                        // SAFETY: kill/waitpid with integers.
                        unsafe { libc::kill(s1, libc::SIGKILL) };
                        let _ = util::wait_code(s1);
                        return Err(e);
                    }
                    pchan.send(&Msg::Go, None)?;
                }
                Ok((Msg::Pid(p), _)) => break p,
                Ok((Msg::Error(e), _)) => {
                    let _ = util::wait_code(s1);
                    return Err(Error::Other(e));
                }
                Ok((m, _)) => return Err(Error::Other(format!("sync: unexpected {m:?}"))),
                Err(e) => {
                    let _ = util::wait_code(s1);
                    return Err(e);
                }
            }
        };
        let _ = util::wait_code(s1);
        pid
    };
    guard.child = Some(pid);
    drop(cchan);
    if !slow && plan.new_flags & libc::CLONE_NEWUSER != 0 {
        namespaces::write_maps(pid, &plan)?;
    }
    // Before Go: the init may make itself non-dumpable right after it, and then only a privileged
    // parent could still write its /proc files.
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let f = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&f, adj.to_string())
            .map_err(|e| Error::Other(format!("process.oomScoreAdj: {adj}: {e}")))?;
    }
    pchan.send(&Msg::Go, None)?;
    drop(unified_fd);
    if !cg.paths.is_empty() {
        // The init waits for Place before it touches its rootfs: finish its cgroup (v1
        // directories, limits) and hand it the v1 `tasks` files to join through; where it cannot
        // place itself, write it into cgroup.procs here.
        if split {
            cg.create_part(false)?;
            if let Some(res) = &resources {
                cg.apply(res)?;
            }
        }
        let mut tasks = Vec::new();
        if cg.is_systemd() {
            // systemd moves the init into the unit's directories (which it creates) and the
            // limits go in after that.
            cg.start_systemd(pid, linux.and_then(|l| l.resources().as_ref()))?;
            if let Some(res) = &resources {
                cg.apply(res)?;
            }
        } else if slow {
            cg.add_process(pid)?;
        } else {
            if !in_unified {
                cg.add_process_unified(pid)?;
            }
            match cg.open_tasks() {
                Ok(t) if t.len() <= sync::MAX_FDS => tasks = t,
                _ => cg.add_process_v1(pid)?,
            }
        }
        let raw: Vec<i32> = tasks.iter().map(|f| f.as_raw_fd()).collect();
        pchan.send_fds(&Msg::Place, &raw)?;
    }
    let st = State {
        id: o.id.clone(),
        pid,
        pid_start: state::pid_start_time(pid).unwrap_or(0),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: util::now_rfc3339(),
        // SAFETY: geteuid has no preconditions.
        owner: util::user_name(unsafe { libc::geteuid() }),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup: cg.clone(),
        started: direct,
        seccomp_key,
        config: serde_json::to_value(&spec).unwrap_or_default(),
    };
    // Saved while the init sets itself up (the guard removes it again if that fails).
    st.save(&o.root)?;
    if let Some(p) = pid_file {
        write_pid_file(&p, pid)?;
        guard.pid_file = Some(p);
    }
    loop {
        // `run` (direct): no Ready, the init execs the user's program when it is done, and the
        // EOF of its close-on-exec end of the channel says so.
        let Some((m, fd)) = pchan.recv_or_eof()? else {
            if direct {
                break;
            }
            return Err(Error::Other("container process exited during setup".into()));
        };
        match m {
            Msg::HooksRequest => {
                // Before the hooks: prestart/createRuntime hooks see the devices in place.
                let devs = crate::netdev::devices(&spec);
                if !devs.is_empty() {
                    crate::netdev::move_in(&devs, pid, &dir)?;
                    guard.netdevs = devs;
                }
                let s = hook_state(&o.id, "creating", pid, &bundle, &spec);
                let h = spec.hooks().as_ref();
                let ctx = hooks::Ctx {
                    cwd: Some(&bundle),
                    env: None,
                };
                hooks::run(
                    hooks::Kind::Prestart,
                    h.and_then(|h| h.prestart().as_ref()),
                    &s,
                    ctx,
                )?;
                hooks::run(
                    hooks::Kind::CreateRuntime,
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &s,
                    ctx,
                )?;
                pchan.send(&Msg::HooksDone, None)?;
            }
            Msg::SeccompFd => {
                let sc = linux.and_then(|l| l.seccomp().as_ref());
                if let (Some(fd), Some(path)) = (fd, sc.and_then(|s| s.listener_path().as_ref())) {
                    let meta = sc
                        .and_then(|s| s.listener_metadata().clone())
                        .unwrap_or_default();
                    let s = hook_state(&o.id, "creating", pid, &bundle, &spec);
                    crate::seccomp::send_to_listener(
                        path,
                        &meta,
                        std::os::fd::AsFd::as_fd(&fd),
                        &s,
                    )
                    .map_err(|e| Error::Other(format!("linux.seccomp.listenerPath: {e}")))?;
                }
            }
            Msg::Ready => break,
            Msg::Error(e) => return Err(Error::Other(e)),
            other => return Err(Error::Other(format!("sync: unexpected {other:?}"))),
        }
    }
    guard.netdevs.clear();
    guard.dir = None;
    guard.pid_file = None;
    guard.cgroup = None;
    guard.child = None;
    Ok((st, pchan))
}

/// Slow path: join namespaces by path, unshare the new ones (asking the parent for uid/gid maps), set
/// time offsets, then fork the real init into them and report its pid.
fn stage1(joins: &[(i32, OwnedFd)], plan: &namespaces::Plan, args: InitArgs) -> ! {
    let r = (|| -> Result<i32> {
        namespaces::setns_all(joins)?;
        let newf = plan.new_flags & !libc::CLONE_NEWCGROUP;
        let mut offsets = None;
        if newf & libc::CLONE_NEWUSER != 0 {
            namespaces::unshare(libc::CLONE_NEWUSER)?;
            // Before the uid switch below makes /proc/self unwritable for us.
            offsets = namespaces::open_time_offsets(&plan.time_offsets)?;
            args.chan.send(&Msg::MapRequest, None)?;
            args.chan.expect(&Msg::Go)?;
            // SAFETY: plain integer syscalls.
            unsafe {
                libc::setresgid(0, 0, 0);
                libc::setresuid(0, 0, 0);
            }
        }
        if offsets.is_none() {
            offsets = namespaces::open_time_offsets(&plan.time_offsets)?;
        }
        namespaces::unshare(newf & !libc::CLONE_NEWUSER)?;
        namespaces::write_time_offsets(offsets, &plan.time_offsets)?;
        util::raw_clone(0)
    })();
    match r {
        Ok(0) => init::run(args),
        Ok(pid) => {
            let _ = args.chan.send(&Msg::Pid(pid), None);
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(0) }
        }
        Err(e) => {
            let _ = args.chan.send(&Msg::Error(e.to_string()), None);
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Release a created container's init to exec the user process.
pub fn start(root: &Path, id: &str) -> Result<State> {
    let mut st = State::load(root, id)?;
    match st.status(root) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::State {
                id: id.into(),
                msg: "cannot start a container that has stopped".into(),
            })
        }
        s => {
            return Err(Error::State {
                id: id.into(),
                msg: format!("cannot start an already {s} container"),
            })
        }
    }
    let dir = state::container_dir(root, id);
    let dfd = crate::fsutil::open_path(&dir, libc::O_PATH | libc::O_DIRECTORY)?;
    let conn = connect_unix(&exec_sock_path(&dfd)).map_err(|e| Error::State {
        id: id.into(),
        msg: format!("container init is not waiting: {e}"),
    })?;
    let mut buf = Vec::new();
    {
        use std::io::Read;
        // SAFETY: conn is an open socket we own; File takes ownership of the duplicate.
        let mut f = unsafe {
            std::fs::File::from_raw_fd(
                nix::unistd::dup(&conn)
                    .map_err(|e| Error::Sys {
                        what: "dup".into(),
                        errno: e,
                    })?
                    .into_raw_fd_compat(),
            )
        };
        let _ = f.read_to_end(&mut buf);
    }
    // Removing exec.sock is what records the container as running (see State::status), so the
    // state file need not be rewritten.
    let _ = std::fs::remove_file(dir.join("exec.sock"));
    if let Some(msg) = buf.strip_prefix(b"E") {
        return Err(Error::State {
            id: id.into(),
            msg: String::from_utf8_lossy(msg).into_owned(),
        });
    }
    st.started = true;
    poststart(&st);
    Ok(st)
}

/// Run the poststart hooks of a started container (failures are warnings, as in runc).
/// True when the recorded config has hooks of `kind` (so the spec is worth deserializing).
fn has_hooks(st: &State, kind: &str) -> bool {
    st.config
        .get("hooks")
        .and_then(|h| h.get(kind))
        .and_then(|v| v.as_array())
        .is_some_and(|v| !v.is_empty())
}

fn poststart(st: &State) {
    if !has_hooks(st, "poststart") {
        return;
    }
    let spec: Option<Spec> = serde_json::from_value(st.config.clone()).ok();
    if let Some(spec) = spec {
        let s = hook_state(&st.id, "running", st.pid, &st.bundle, &spec);
        // Failures are warnings (printed by hooks::run); the container keeps running.
        let _ = hooks::run(
            hooks::Kind::Poststart,
            spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()),
            &s,
            hooks::Ctx {
                cwd: Some(&st.bundle),
                env: None,
            },
        );
    }
}

trait IntoRawCompat {
    fn into_raw_fd_compat(self) -> i32;
}
impl IntoRawCompat for OwnedFd {
    fn into_raw_fd_compat(self) -> i32 {
        std::os::fd::IntoRawFd::into_raw_fd(self)
    }
}

/// Send a signal to the container's init (or, with `all`, every process in its cgroup).
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped && !all {
        return Err(Error::State {
            id: id.into(),
            msg: "container not running".into(),
        });
    }
    if all && !st.cgroup.paths.is_empty() {
        if status == Status::Paused {
            // Signals are queued while frozen; SIGKILL must still work.
            st.cgroup.kill_all(sig)?;
            return Ok(());
        }
        st.cgroup.kill_all(sig)?;
        return Ok(());
    }
    if status == Status::Stopped {
        return Ok(());
    }
    // SAFETY: kill with integer arguments.
    if unsafe { libc::kill(st.pid, sig) } < 0 {
        return Err(Error::Sys {
            what: format!("container {id:?}: kill {sig}"),
            errno: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

fn wait_gone(st: &State, timeout_ms: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    while st.init_alive() {
        // Reap it if it is our child (run, tests).
        // SAFETY: waitpid with WNOHANG on a pid; harmless if not our child.
        unsafe { libc::waitpid(st.pid, std::ptr::null_mut(), libc::WNOHANG) };
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    true
}

/// Delete a container: refuse a running one unless `force`, then run poststop hooks and remove its
/// cgroup and state.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = State::load(root, id)?;
    match st.status(root) {
        Status::Stopped => {}
        Status::Created => {
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(st.pid, libc::SIGKILL) };
            wait_gone(&st, 5000);
        }
        s if force => {
            if s == Status::Paused {
                let _ = st.cgroup.thaw();
            }
            let _ = st.cgroup.kill_all(libc::SIGKILL);
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(st.pid, libc::SIGKILL) };
            wait_gone(&st, 10000);
        }
        s => {
            return Err(Error::State {
                id: id.into(),
                msg: format!("cannot delete container that is not stopped: {s}"),
            })
        }
    }
    destroy(root, &st)
}

fn destroy(root: &Path, st: &State) -> Result<()> {
    if !st.cgroup.paths.is_empty() {
        // Kills whatever is left inside (a container without its own pid namespace can leave
        // processes behind its init) if the first rmdir finds the group busy.
        st.cgroup.destroy()?;
    }
    let spec: Option<Spec> = has_hooks(st, "poststop")
        .then(|| serde_json::from_value(st.config.clone()).ok())
        .flatten();
    let dir = state::container_dir(root, &st.id);
    // linux.netDevices go back to the host (from the namespace held since create: the init may
    // be gone) before the state directory holding that hold is removed.
    let net_devices = st.config["linux"]["netDevices"]
        .as_object()
        .is_some_and(|d| !d.is_empty());
    if net_devices {
        if let Ok(spec) = serde_json::from_value::<Spec>(st.config.clone()) {
            if let Err(e) = crate::netdev::move_out(&crate::netdev::devices(&spec), None, &dir) {
                eprintln!("skiff-runtime: warning: container {:?}: {e}", st.id);
            }
        }
        crate::netdev::release(&dir);
    }
    remove_state_dir(&dir)?;
    if let Some(spec) = spec {
        let s = hook_state(&st.id, "stopped", 0, &st.bundle, &spec);
        // Failures are warnings (printed by hooks::run); the container is deleted.
        let _ = hooks::run(
            hooks::Kind::Poststop,
            spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()),
            &s,
            hooks::Ctx {
                cwd: Some(&st.bundle),
                env: None,
            },
        );
    }
    Ok(())
}

/// Remove a container's state directory: state.json and exec.sock are all it normally holds, so
/// unlink those and rmdir; anything else there falls back to a recursive removal.
fn remove_state_dir(dir: &Path) -> Result<()> {
    for f in ["state.json", "exec.sock"] {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: dir.join(f),
                    source: e,
                })
            }
            _ => {}
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => std::fs::remove_dir_all(dir).at(dir),
    }
}

/// All containers under `root`.
pub fn list(root: &Path) -> Result<Vec<State>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => {
            return Err(Error::Io {
                path: root.into(),
                source: e,
            })
        }
    };
    for e in rd.flatten() {
        if let Some(name) = e.file_name().to_str() {
            if let Ok(s) = State::load(root, name) {
                v.push(s);
            }
        }
    }
    v.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(v)
}

/// `run`: create and start; unless `detach`, wait for the process (forwarding signals, proxying a
/// terminal), delete the container, and return its exit code.
pub fn run(mut o: CreateOpts, detach: bool) -> Result<i32> {
    let b = load_bundle(&o.bundle)?;
    let terminal =
        b.1.process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
    if !detach {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        crate::forward::block_signals()?;
    }
    let mut master_rx = None;
    if terminal && !detach && matches!(o.console, Console::None) {
        let (a, b) = crate::console::socketpair()?;
        master_rx = Some(a);
        o.console = Console::Fd(b);
    }
    let root = o.root.clone();
    // Returns once the init has executed the user's program (or died): only the poststart hooks
    // of `start` are left.
    let (st, chan) = create_inner(o, b, true)?;
    drop(chan);
    poststart(&st);
    if detach {
        return Ok(0);
    }
    let master = match master_rx {
        Some(rx) => Some(crate::console::recv_master(rx.as_raw_fd())?),
        None => None,
    };
    let code = crate::forward::wait(st.pid, master)?;
    // The init has exited (and was reaped by wait): what `delete --force` does for a stopped
    // container, without reading the state back.
    destroy(&root, &st)?;
    Ok(code)
}
