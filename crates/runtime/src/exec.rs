//! `exec`: run an additional process inside a running container's namespaces and cgroup, with the
//! same security settings path (rlimits, caps, user, seccomp) as the init.

use crate::container::Console;
use crate::error::{Error, Result};
use crate::state::{State, Status};
use crate::sync::{self, Msg};
use crate::{console, forward, init, namespaces, util};
use oci_spec::runtime::{Process, Spec};
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

/// Run the exec; returns the process's exit code (0 when detached).
pub fn exec(o: ExecOpts) -> Result<i32> {
    let detach = o.detach;
    let s = spawn(o)?;
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
    let st = State::load(&o.root, &o.id)?;
    match st.status(&o.root) {
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
    let spec: Spec = serde_json::from_value(st.config.clone())
        .map_err(|e| Error::Other(format!("container {:?}: stored config: {e}", o.id)))?;
    let pid_file = o.pid_file.as_ref().map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    });
    // Open the init's namespaces (user first); skip ones we already share (setns into our own user
    // namespace is EINVAL).
    let plan = namespaces::plan(&spec)?;
    let mut ns: Vec<(i32, OwnedFd)> = Vec::new();
    for f in namespaces::ORDER {
        let wanted = plan.new_flags & f != 0 || plan.join.iter().any(|(j, _)| *j == f);
        if !wanted {
            continue;
        }
        let name = namespaces::proc_name(f);
        let theirs = format!("/proc/{}/ns/{name}", st.pid);
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
    let userns = plan.new_flags & libc::CLONE_NEWUSER != 0
        || plan.join.iter().any(|(j, _)| *j == libc::CLONE_NEWUSER);
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(
            crate::seccomp::compile(s).map_err(|e| Error::Config(format!("linux.seccomp: {e}")))?,
        ),
        None => None,
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
    if !o.detach {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        forward::block_signals()?;
    }
    let (pchan, cchan) = sync::pair()?;
    // Join the container's cgroup without the kernel's global migration lock where possible:
    // cloned straight into the unified group, `tasks` for the v1 hierarchies
    // (skiff_cgroups::Cgroup::join_tasks).
    let (unified, tasks) = if st.cgroup.paths.is_empty() {
        (None, None)
    } else {
        (
            st.cgroup.open_unified().ok().flatten(),
            st.cgroup.open_tasks().ok(),
        )
    };
    let mut in_unified = false;
    let c = match unified.as_ref().map(|fd| fd.as_raw_fd()) {
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
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            if !st.cgroup.paths.is_empty() {
                match &tasks {
                    Some(t) => st.cgroup.join_tasks(t)?,
                    None => st.cgroup.add_process_v1(me)?,
                }
                if !in_unified {
                    st.cgroup.add_process_unified(me)?;
                }
            }
            drop(tasks);
            namespaces::setns_all(&ns)?;
            util::raw_clone(0)
        })();
        match r {
            Ok(0) => {
                // linux.personality and linux.memoryPolicy hold for exec'd processes too.
                if let Err(e) = crate::procattr::apply_linux(spec.linux().as_ref()) {
                    let _ = cchan.send(&Msg::Error(e.to_string()), None);
                    // SAFETY: _exit in a forked child.
                    unsafe { libc::_exit(127) }
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
        let sc = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        if let Some(path) = sc.and_then(|s| s.listener_path().as_ref()) {
            let meta = sc
                .and_then(|s| s.listener_metadata().clone())
                .unwrap_or_default();
            let s = serde_json::json!({"ociVersion": spec.version(), "id": o.id, "status": "running", "pid": pid, "bundle": st.bundle});
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
