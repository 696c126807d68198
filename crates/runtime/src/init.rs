//! The in-container stage: everything the container's init process does between clone and the
//! user's execve. Runs single-threaded in a forked copy of the runtime; reports failures to the parent
//! over the sync channel and exits.

use crate::error::{Error, Result};
use crate::namespaces::Plan;
use crate::sync::{Channel, Msg};
use crate::{console, hooks, process, rootfs};
use oci_spec::runtime::Spec;
use skiff_cgroups::Cgroup;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Everything the init stage needs; it lives in the forked child's copy of the parent's memory.
pub struct InitArgs<'a> {
    /// The validated spec.
    pub spec: &'a Spec,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Namespace plan.
    pub plan: &'a Plan,
    /// Child end of the sync channel.
    pub chan: Channel,
    /// Listening socket `start` connects to; `None` for `run`, which needs no exec.sock: there we
    /// go on to exec the user's program as soon as we have reported Ready.
    pub listener: Option<OwnedFd>,
    /// Connected console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
    /// chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Extra fds (3..3+n) to pass into the container.
    pub preserve_fds: i32,
    /// The container's cgroup.
    pub cgroup: &'a Cgroup,
    /// Compiled seccomp filter.
    pub seccomp: Option<&'a crate::seccomp::CompiledFilter>,
    /// State JSON template for createContainer/startContainer hooks.
    pub hook_state: serde_json::Value,
    /// Prepared idmapped mount trees by mount index.
    pub idmapped: &'a std::collections::HashMap<usize, OwnedFd>,
    /// Namespaces (CLONE_NEW* flags) the clone left for us to create: we make them first thing,
    /// while the parent prepares our cgroup.
    pub unshare: i32,
}

/// Who released us: a `start` connected to exec.sock, or the parent over the sync channel.
enum Started {
    /// The connection from `start`; errors are written back on it.
    Conn(OwnedFd),
    /// `run`: no one to wait for; errors go back to the parent on the sync channel.
    Chan,
}

/// Entry point of the init stage; never returns.
pub fn run(mut a: InitArgs) -> ! {
    let chan_fd = a.chan.raw();
    let err = match setup(&mut a) {
        Ok(started) => {
            // Released by `start`: exec the user's program.
            let e = finish_exec(&a, started);
            e.to_string()
        }
        Err(e) => {
            let _ = a.chan.send(&Msg::Error(e.to_string()), None);
            // SAFETY: _exit ends the process without running Rust destructors (forked child).
            unsafe { libc::_exit(1) }
        }
    };
    let _ = chan_fd;
    eprintln!("skiff-runtime: {err}");
    // SAFETY: see above.
    unsafe { libc::_exit(127) }
}

/// Ask the parent to run prestart/createRuntime hooks, then enter our cgroup namespace and become
/// non-dumpable.
fn sync_placed(a: &InitArgs) -> Result<()> {
    a.chan.send(&Msg::HooksRequest, None)?;
    a.chan.expect(&Msg::HooksDone)?;
    enter_placed(a)
}

/// Once in our cgroup: become non-dumpable and enter our cgroup namespace.
fn enter_placed(a: &InitArgs) -> Result<()> {
    // Non-dumpable until execve: no process in the container may ptrace us or open our /proc files
    // while we hold host fds (CVE-2016-9962); execve of the user program resets it. Set only after
    // the (possibly unprivileged) parent has written our uid_map and oom_score_adj (before Go), and
    // after prestart/createRuntime hooks, which may open our /proc/<pid>/ns files.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // We are in our cgroup now: the namespace's root is that cgroup.
    if a.plan.new_flags & libc::CLONE_NEWCGROUP != 0 {
        crate::namespaces::unshare(libc::CLONE_NEWCGROUP)?;
    }
    Ok(())
}

fn has(plan: &Plan, f: i32) -> bool {
    plan.new_flags & f != 0 || plan.join.iter().any(|(j, _)| *j == f)
}

fn setup(a: &mut InitArgs) -> Result<Started> {
    crate::namespaces::unshare(a.unshare)?;
    a.chan.expect(&Msg::Go)?;
    if !a.cgroup.paths.is_empty() {
        // The parent has made (or finished) our cgroup and sends the v1 `tasks` files to write
        // ourselves into (none: it has placed us itself); single-threaded here, so moving this
        // thread moves the process. Dropping the fds closes the host's files again.
        let tasks = a.chan.expect_fds(&Msg::Place)?;
        if !tasks.is_empty() {
            a.cgroup.join_tasks(&tasks)?;
        }
    }
    // linux.netDevices are moved by the parent in the same pause as these hooks.
    let runtime_hooks = a.spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    }) || a
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty());
    // In our cgroup now; with prestart/createRuntime hooks we stay dumpable until they have run
    // (they may open our /proc/<pid>/ns files).
    if !runtime_hooks {
        enter_placed(a)?;
    }
    // Devices and mountpoints get exactly the configured modes; process.user.umask applies later.
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(0) };
    let plan = a.plan;
    let userns = has(plan, libc::CLONE_NEWUSER);
    if userns {
        // SAFETY: plain integer syscalls; become root of the new user namespace.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    if let Some(h) = a.spec.hostname() {
        if !h.is_empty() {
            nix::unistd::sethostname(h).map_err(|e| Error::Sys {
                what: format!("hostname: sethostname {h:?}"),
                errno: e,
            })?;
        }
    }
    if let Some(d) = a.spec.domainname() {
        if !d.is_empty() {
            // SAFETY: pointer/len describe a live string.
            if unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) } < 0 {
                return Err(Error::Sys {
                    what: format!("domainname: setdomainname {d:?}"),
                    errno: nix::errno::Errno::last(),
                });
            }
        }
    }
    let ctx = rootfs::Ctx {
        spec: a.spec,
        rootfs: a.rootfs.clone(),
        userns,
        netns: has(plan, libc::CLONE_NEWNET),
        cgroup: a.cgroup,
        idmapped: a.idmapped,
    };
    let mntns = has(plan, libc::CLONE_NEWNS);
    if mntns {
        rootfs::prepare_root(&ctx)?;
        rootfs::mount_all(&ctx)?;
        rootfs::create_devices(&ctx)?;
        if let Some(p) = a.spec.process() {
            let root = crate::fsutil::open_path(&ctx.rootfs, libc::O_PATH | libc::O_DIRECTORY)?;
            crate::fsutil::mkdir_all_in_root(root.as_raw_fd(), p.cwd(), crate::fsutil::Kind::Dir)?;
        }
    }
    // prestart/createRuntime hooks must run before pivot_root.
    if runtime_hooks {
        sync_placed(a)?;
    }
    let hooks = a.spec.hooks().as_ref();
    let process_env = a.spec.process().as_ref().and_then(|p| p.env().as_deref());
    hooks::run(
        hooks::Kind::CreateContainer,
        hooks.and_then(|h| h.create_container().as_ref()),
        &a.hook_state,
        hooks::Ctx {
            cwd: Some(&ctx.rootfs),
            env: Some(process_env.unwrap_or(&[])),
        },
    )?;
    if mntns {
        rootfs::pivot(&ctx.rootfs, a.no_pivot)?;
        // sysctls before /proc/sys becomes read-only.
        rootfs::apply_sysctl(
            a.spec,
            has(plan, libc::CLONE_NEWNET),
            has(plan, libc::CLONE_NEWIPC),
            has(plan, libc::CLONE_NEWUTS),
        )?;
        rootfs::finish(a.spec)?;
    } else if ctx.rootfs != std::path::Path::new("/") {
        nix::unistd::chroot(&ctx.rootfs).map_err(|e| Error::Sys {
            what: "chroot".into(),
            errno: e,
        })?;
        nix::unistd::chdir("/").map_err(|e| Error::Sys {
            what: "chdir /".into(),
            errno: e,
        })?;
    }
    let Some(p) = a.spec.process().as_ref() else {
        // Nothing to run: the container can be created; `start` reports the missing process.
        let listener = a.listener.take();
        return wait_start(a, listener.as_ref());
    };
    if p.terminal().unwrap_or(false) {
        let sock = a.console.take().ok_or_else(|| {
            Error::Config("process.terminal is set but no --console-socket was given".into())
        })?;
        let name = console::setup_terminal(p, sock)?;
        console::mount_console(&name)?;
    }
    prepare_process(a, p, userns)
}

/// Everything from rlimits to the final checks, then wait for `start`.
fn prepare_process(
    a: &mut InitArgs,
    p: &oci_spec::runtime::Process,
    userns: bool,
) -> Result<Started> {
    let seccomp = a.seccomp;
    let listener = a.listener.take();
    let mut keep: Vec<RawFd> = vec![a.chan.raw()];
    if let Some(l) = &listener {
        keep.push(l.as_raw_fd());
    }
    crate::procattr::apply_linux(a.spec.linux().as_ref())?;
    let notify = apply_process(p, seccomp, userns, a.preserve_fds, &keep)?;
    if let Some(fd) = &notify {
        a.chan.send(&Msg::SeccompFd, Some(fd.as_raw_fd()))?;
    }
    drop(notify);
    check_executable(p)?;
    wait_start(a, listener.as_ref())
}

/// Report Ready and block until `start` connects to exec.sock. For `run` (no exec.sock) go on at
/// once without a word: the parent has nothing left to do before the exec (state.json is written,
/// hooks have run), and the EOF of our close-on-exec end of the channel tells it the exec happened.
fn wait_start(a: &InitArgs, listener: Option<&OwnedFd>) -> Result<Started> {
    match listener {
        Some(l) => {
            a.chan.send(&Msg::Ready, None)?;
            accept_start(l).map(Started::Conn)
        }
        None => Ok(Started::Chan),
    }
}

/// Block until `start` connects to the listening socket.
fn accept_start(listener: &OwnedFd) -> Result<OwnedFd> {
    loop {
        // SAFETY: accept4 on our listening socket with null address pointers.
        let c = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if c >= 0 {
            // SAFETY: fresh fd from accept4.
            return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(c) });
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return Err(Error::Sys {
                what: "wait for start".into(),
                errno: nix::errno::Errno::last(),
            });
        }
    }
}

/// Write `value` to the first of `/proc/thread-self/attr/<names>` that exists: the LSM context the
/// next execve switches to.
fn set_exec_attr(names: &[&str], value: &str) -> std::io::Result<()> {
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for n in names {
        match std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/thread-self/attr/{n}"))
        {
            Ok(mut f) => return std::io::Write::write_all(&mut f, value.as_bytes()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Apply rlimits, no_new_privs, seccomp, capabilities, user, cwd; close stray fds. Returns the seccomp
/// notify fd if the filter has one.
pub fn apply_process(
    p: &oci_spec::runtime::Process,
    seccomp: Option<&crate::seccomp::CompiledFilter>,
    userns: bool,
    preserve_fds: i32,
    keep: &[RawFd],
) -> Result<Option<OwnedFd>> {
    process::set_rlimits(p)?;
    // Before capabilities are dropped: a real-time class or a raised priority needs them.
    crate::procattr::apply_process(p)?;
    // Like runc: a profile or label is applied (at the execve) when its LSM is enabled, and only
    // warned about when the host has no such LSM.
    if let Some(prof) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        if std::path::Path::new("/sys/kernel/security/apparmor").exists() {
            set_exec_attr(&["apparmor/exec", "exec"], &format!("exec {prof}"))
                .map_err(|e| Error::Other(format!("process.apparmorProfile {prof:?}: {e}")))?;
        } else {
            eprintln!("skiff-runtime: warning: process.apparmorProfile {prof:?} ignored: AppArmor is not enabled on this host");
        }
    }
    if let Some(l) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
            set_exec_attr(&["exec"], l)
                .map_err(|e| Error::Other(format!("process.selinuxLabel {l:?}: {e}")))?;
        } else {
            eprintln!("skiff-runtime: warning: process.selinuxLabel ignored: SELinux is not enabled on this host");
        }
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        process::set_no_new_privs()?;
    }
    let mut notify = None;
    if let (Some(f), false) = (seccomp, nnp) {
        notify = f
            .load()
            .map_err(|e| Error::Other(format!("linux.seccomp: {e}")))?;
    }
    process::drop_bounding(p.capabilities().as_ref())?;
    let setgroups_ok = !userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    process::set_user_and_caps(p, setgroups_ok)?;
    // Close every fd the container must not inherit *before* chdir, so cwd cannot be made to point at
    // a leaked host directory (CVE-2024-21626), then verify cwd is inside our root.
    let mut keep = keep.to_vec();
    if let Some(n) = &notify {
        keep.push(n.as_raw_fd());
    }
    close_stray_fds(3 + preserve_fds, &keep);
    nix::unistd::chdir(p.cwd()).map_err(|e| Error::Sys {
        what: format!("process.cwd: chdir {:?}", p.cwd()),
        errno: e,
    })?;
    // A seccomp profile may deny getcwd (EPERM/ENOSYS); closing the fds above is the defense,
    // this check is the second line when the kernel lets us make it.
    match nix::unistd::getcwd() {
        Ok(cwd) if !cwd.is_absolute() || cwd.to_string_lossy().starts_with("(unreachable)") => {
            return Err(Error::Config(format!(
                "process.cwd: {:?} resolves outside the container root",
                p.cwd()
            )));
        }
        Ok(_)
        | Err(nix::errno::Errno::EPERM)
        | Err(nix::errno::Errno::ENOSYS)
        | Err(nix::errno::Errno::EACCES) => {}
        Err(e) => {
            return Err(Error::Sys {
                what: "process.cwd: getcwd".into(),
                errno: e,
            })
        }
    }
    if let (Some(f), true) = (seccomp, nnp) {
        notify = f
            .load()
            .map_err(|e| Error::Other(format!("linux.seccomp: {e}")))?;
    }
    Ok(notify)
}

fn close_stray_fds(first: i32, keep: &[RawFd]) {
    // close_range(2) over the gaps between the fds we keep: no /proc walk, one syscall per gap.
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&k| k >= first)
        .map(|&k| k as u32)
        .collect();
    keep.sort_unstable();
    let mut lo = first as u32;
    let mut ok = true;
    for k in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if k > lo {
            let hi = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range only closes descriptors; none of these is owned by live Rust objects
            // that will be used again (the kept ones are excluded).
            if unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) } < 0 {
                ok = false;
                break;
            }
        }
        lo = k.saturating_add(1);
    }
    if ok {
        return;
    }
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (first..4096).collect(),
    };
    for fd in fds {
        if fd >= first && !keep.contains(&(fd as u32)) {
            // SAFETY: closing an fd we do not use any more; no Rust object owns these.
            unsafe { libc::close(fd) };
        }
    }
}

/// Reset signal state inherited from the runtime (Rust ignores SIGPIPE; `run` blocks signals).
pub fn reset_signals() {
    // SAFETY: sigset manipulation on a local, then sigprocmask/signal with valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

fn finish_exec(a: &InitArgs, started: Started) -> Error {
    let hooks = a.spec.hooks().as_ref();
    let fail = |e: Error| {
        match &started {
            Started::Conn(conn) => {
                let msg = format!("E{e}");
                // SAFETY: writing a buffer we own to a connected socket.
                unsafe {
                    libc::write(
                        conn.as_raw_fd(),
                        msg.as_ptr() as *const libc::c_void,
                        msg.len(),
                    )
                };
            }
            Started::Chan => {
                let _ = a.chan.send(&Msg::Error(e.to_string()), None);
            }
        }
        e
    };
    let Some(p) = a.spec.process().as_ref() else {
        return fail(Error::Config("process: not set, nothing to start".into()));
    };
    let env = process::build_env(p);
    let mut st = a.hook_state.clone();
    st["status"] = "running".into();
    if let Err(e) = hooks::run(
        hooks::Kind::StartContainer,
        hooks.and_then(|h| h.start_container().as_ref()),
        &st,
        hooks::Ctx {
            cwd: None,
            env: Some(&env),
        },
    ) {
        return fail(e);
    }
    let args = p.args().clone().unwrap_or_default();
    let path = match process::find_executable(&args[0], &env) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    reset_signals();
    let e = process::exec(&path, &args, &env);
    fail(e)
}

/// Resolve the executable early (at create) so a missing program is reported by `create`, as runc does.
pub fn check_executable(p: &oci_spec::runtime::Process) -> Result<()> {
    let env = process::build_env(p);
    let args = p.args().clone().unwrap_or_default();
    process::find_executable(&args[0], &env).map(|_| ())
}
