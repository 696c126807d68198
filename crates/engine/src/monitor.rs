//! `skiff monitor`: one small process per running container.
//!
//! `skiff run`/`start` spawns it detached (double fork + setsid, so it is nobody's child and outlives
//! the CLI). The monitor makes itself a child subreaper and forks a short-lived child that calls the
//! runtime library's create + start (the heavy code) with the container's stdio set to pipes (or a
//! pty whose master comes back over a socket); that child exits, so the container's init is
//! reparented to the monitor. The monitor then only polls: it copies output into the json-file log
//! and to attached clients (unix socket `attach.sock`), feeds stdin, applies resizes, reaps the init,
//! and on exit forks another short-lived child that records the exit (exit file, OOM flag, state
//! database), deletes the runtime state, unmounts or removes the container, before it applies the
//! restart policy (`no`, `on-failure[:N]`, `always`, `unless-stopped`, back-off doubling from
//! 100 ms, reset after 10 s of running). The monitor itself never touches SQLite or serde, so its
//! idle memory stays small.
//!
//! Fds at exec: 3 = notification pipe to the spawner (`0 <pid>\n` or `<code> <message>\n`),
//! 4 = a pre-connected attach client (when `--attach-fd` is given).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::attach;
use crate::logs::LogWriter;

/// The monitor's command line (after `skiff monitor`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorArgs {
    /// Engine root.
    pub root: PathBuf,
    /// Run dir.
    pub runroot: PathBuf,
    /// Container id.
    pub id: String,
    /// Container has a tty.
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub stdin: bool,
    /// Close stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// Restart policy name.
    pub restart: String,
    /// `on-failure:N`.
    pub max_retries: i64,
    /// `--rm`.
    pub auto_remove: bool,
    /// `max-size` in bytes (0 = none).
    pub log_max_size: u64,
    /// `max-file`.
    pub log_max_file: u32,
    /// `--log-driver none`: output is relayed to attached clients but not kept.
    pub log_none: bool,
    /// fd 4 is a pre-connected attach client.
    pub attach_fd: bool,
    /// Restart count so far (continues the record's count).
    pub restarts: i64,
    /// The healthcheck to run, if any.
    pub health: Option<crate::health::Probe>,
}

impl MonitorArgs {
    /// The argument vector after `monitor`.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--root".into(),
            self.root.to_string_lossy().into_owned(),
            "--runroot".into(),
            self.runroot.to_string_lossy().into_owned(),
            "--id".into(),
            self.id.clone(),
            "--restart".into(),
            format!("{}:{}", self.restart, self.max_retries),
            "--log".into(),
            format!("{}:{}", self.log_max_size, self.log_max_file),
            "--restarts".into(),
            self.restarts.to_string(),
        ];
        if let Some(p) = &self.health {
            v.push("--health".into());
            v.push(p.encode());
        }
        for (on, f) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.auto_remove, "--rm"),
            (self.attach_fd, "--attach-fd"),
            (self.log_none, "--no-log"),
        ] {
            if on {
                v.push(f.into());
            }
        }
        v
    }

    /// Parses [`MonitorArgs::to_args`] output.
    pub fn parse(args: &[String]) -> Option<MonitorArgs> {
        let mut a = MonitorArgs::default();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            match k.as_str() {
                "--root" => a.root = PathBuf::from(it.next()?),
                "--runroot" => a.runroot = PathBuf::from(it.next()?),
                "--id" => a.id = it.next()?.clone(),
                "--restart" => {
                    let (n, m) = it.next()?.split_once(':')?;
                    a.restart = n.into();
                    a.max_retries = m.parse().ok()?;
                }
                "--log" => {
                    let (s, f) = it.next()?.split_once(':')?;
                    a.log_max_size = s.parse().ok()?;
                    a.log_max_file = f.parse().ok()?;
                }
                "--restarts" => a.restarts = it.next()?.parse().ok()?,
                "--health" => a.health = Some(crate::health::Probe::decode(it.next()?)?),
                "--tty" => a.tty = true,
                "--stdin" => a.stdin = true,
                "--stdin-once" => a.stdin_once = true,
                "--rm" => a.auto_remove = true,
                "--attach-fd" => a.attach_fd = true,
                "--no-log" => a.log_none = true,
                _ => return None,
            }
        }
        Some(a)
    }

    /// The arguments a pre-started monitor receives on fd 3 once its container exists (everything
    /// but `--root`, `--runroot` and `--attach-fd`, which it was started with).
    pub fn deferred_args(&self) -> Vec<String> {
        let mut v = self.to_args();
        v.drain(..4);
        v.retain(|x| x != "--attach-fd");
        v
    }

    fn container_dir(&self) -> PathBuf {
        self.root.join("containers").join(&self.id)
    }
    fn run_dir(&self) -> PathBuf {
        self.runroot.join("containers").join(&self.id)
    }
}

/// The container's stdio as the monitor holds it.
struct Io {
    pid: i32,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    tty: bool,
}

struct Client {
    fd: OwnedFd,
    flags: u8,
    buf: Vec<u8>,
    stdin_done: bool,
}

fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut p = [0i32; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Some(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writing from a live buffer to an fd.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        if n == 0 {
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

/// Reads one newline-terminated message (or everything up to EOF, if the writer died first).
fn read_message(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if out.ends_with(b"\n") {
            return out;
        }
    }
}

fn wait_pid(pid: i32) -> i32 {
    let mut st = 0;
    loop {
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return skiff_runtime::util::status_code(st);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return -1;
        }
    }
}

fn fork() -> i32 {
    // SAFETY: the monitor is single-threaded, so the child's copy of the process is consistent.
    unsafe { libc::fork() }
}

fn exit_child(code: i32) -> ! {
    // SAFETY: _exit ends a forked child without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// Runs `f` in a forked child and waits for it; the child's heap use never lands in the monitor.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = fork();
    if pid == 0 {
        let code = f();
        exit_child(code);
    }
    if pid < 0 {
        return -1;
    }
    wait_pid(pid)
}

fn dup_onto(fd: RawFd, target: RawFd) {
    // SAFETY: dup2 onto a standard fd in a forked child.
    unsafe { libc::dup2(fd, target) };
}

/// Forks the create+start child and records the outcome in the state database. Returns the
/// container's stdio or (exit code, message), and the database connection it opened while the
/// child worked (on the other CPU, off the start's critical path).
/// `meanwhile` runs in the monitor once the child is forked (set-up that can wait until then).
fn spawn(
    a: &MonitorArgs,
    restarts: i64,
    meanwhile: &mut dyn FnMut(),
) -> (Result<Io, (i32, String)>, Option<crate::Engine>) {
    let mut engine = None;
    let r = spawn_inner(a, restarts, &mut engine, meanwhile);
    (r, engine)
}

fn spawn_inner(
    a: &MonitorArgs,
    restarts: i64,
    engine: &mut Option<crate::Engine>,
    meanwhile: &mut dyn FnMut(),
) -> Result<Io, (i32, String)> {
    let fail = |m: &str| {
        (
            125,
            format!("monitor: {m}: {}", std::io::Error::last_os_error()),
        )
    };
    let (ready_r, ready_w) = pipe().ok_or_else(|| fail("pipe"))?;
    let mut io = Io {
        pid: 0,
        out: None,
        err: None,
        stdin: None,
        tty: a.tty,
    };
    // Child ends: (stdin, stdout, stderr) or the console socket.
    let mut child_fds: Vec<(OwnedFd, RawFd)> = Vec::new();
    let mut console_pair = None;
    if a.tty {
        let (x, y) = skiff_runtime::console::socketpair().map_err(|e| (125, e.to_string()))?;
        console_pair = Some((x, y));
    } else {
        let (or, ow) = pipe().ok_or_else(|| fail("pipe"))?;
        let (er, ew) = pipe().ok_or_else(|| fail("pipe"))?;
        io.out = Some(or);
        io.err = Some(er);
        child_fds.push((ow, 1));
        child_fds.push((ew, 2));
        if a.stdin {
            let (ir, iw) = pipe().ok_or_else(|| fail("pipe"))?;
            io.stdin = Some(iw);
            child_fds.push((ir, 0));
        }
    }
    let pid = fork();
    if pid < 0 {
        return Err(fail("fork"));
    }
    if pid == 0 {
        drop(ready_r);
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .ok();
        if let Some(n) = &null {
            for t in 0..3 {
                dup_onto(n.as_raw_fd(), t);
            }
        }
        for (fd, t) in &child_fds {
            dup_onto(fd.as_raw_fd(), *t);
        }
        let msg = match crate::ociruntime::External::load(&a.container_dir()) {
            Some(x) => external_create_and_start(a, &x, console_pair.map(|(_, y)| y)),
            None => {
                let console = match console_pair {
                    Some((_, y)) => skiff_runtime::container::Console::Fd(y),
                    None => skiff_runtime::container::Console::None,
                };
                create_and_start(a, console)
            }
        };
        let _ = write_all(ready_w.as_raw_fd(), msg.as_bytes());
        exit_child(0);
    }
    drop(ready_w);
    drop(child_fds);
    meanwhile();
    *engine = crate::Engine::open(&a.root, Some(&a.runroot)).ok();
    // Read the record now, while the child works, for the start event.
    let record = engine.as_ref().and_then(|e| e.get(&a.id).ok().flatten());
    let msg = String::from_utf8_lossy(&read_message(ready_r.as_raw_fd())).into_owned();
    let Some(rest) = msg.strip_prefix('P') else {
        wait_pid(pid);
        let (code, m) = msg
            .strip_prefix('E')
            .and_then(|r| r.split_once(' '))
            .map(|(c, m)| (c.parse().unwrap_or(125), m.trim_end().to_string()))
            .unwrap_or((125, "monitor: the container did not start".to_string()));
        if let Some(e) = engine.as_ref() {
            record_start_failure(e, a, code, &m, restarts);
        }
        return Err((code, m));
    };
    // The child exits right after its report; the serve loop reaps it with the container's
    // other children, so the start does not wait for its teardown.
    io.pid = rest.trim().parse().unwrap_or(0);
    if let Some(e) = engine.as_ref() {
        if !record_running(e, a, io.pid, restarts, record.as_ref()) {
            // `rm -f` took the row while this start was under way (the CLI that held the lock
            // was killed): the container must not run on without a record. Its init goes, and
            // record_exit deletes the runtime state and cgroup.
            // SAFETY: kill with integer arguments; io.pid is our container's init.
            unsafe { libc::kill(io.pid, libc::SIGKILL) };
            wait_pid(io.pid);
            return Err((137, REMOVED_WHILE_STARTING.into()));
        }
    }
    if let Some((x, _)) = console_pair {
        match skiff_runtime::console::recv_master(x.as_raw_fd()) {
            Ok(m) => io.out = Some(m),
            Err(e) => return Err((125, format!("receive the terminal: {e}"))),
        }
    }
    Ok(io)
}

/// In the forked child: runtime create + start. Returns `P<pid>\n` or `E<code> <message>\n`.
fn create_and_start(a: &MonitorArgs, console: skiff_runtime::container::Console) -> String {
    let rt = a.runroot.join("runtime");
    if a.health.is_some() {
        crate::health::reset_for_start(&a.container_dir());
    }
    // Leftovers of a previous run (a monitor killed before it cleaned up).
    let _ = skiff_runtime::container::delete(&rt, &a.id, true);
    let opts = skiff_runtime::container::CreateOpts {
        root: rt.clone(),
        id: a.id.clone(),
        bundle: a.container_dir(),
        console,
        ..Default::default()
    };
    let r = skiff_runtime::container::create(opts);
    let r = r.and_then(|_| skiff_runtime::container::start(&rt, &a.id));
    match r {
        Ok(st) => format!("P{}\n", st.pid),
        Err(err) => {
            let _ = skiff_runtime::container::delete(&rt, &a.id, true);
            let msg = err.to_string().replace('\n', " ");
            format!("E{} {msg}\n", crate::error::start_code(&msg))
        }
    }
}

/// In the forked child, for a container of another OCI runtime: `<runtime> create --bundle
/// --pid-file [--console-socket]` with this process's stdio (the container's pipes) passed
/// through, the pty master (with a tty) forwarded on `console`, then `start`. The init is
/// reparented to the monitor (a subreaper) when the runtime exits. Returns what
/// [`create_and_start`] returns.
fn external_create_and_start(
    a: &MonitorArgs,
    x: &crate::ociruntime::External,
    console: Option<OwnedFd>,
) -> String {
    use crate::ociruntime::{accept_master, console_listener, log_error, PID_FILE};
    if a.health.is_some() {
        crate::health::reset_for_start(&a.container_dir());
    }
    let run = a.run_dir();
    let pid_file = run.join(PID_FILE);
    let log = run.join("runtime.log");
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(&log);
    let fail = |m: String| {
        x.delete(&a.id);
        let msg = m.replace('\n', " ");
        format!("E{} {msg}\n", crate::error::start_code(&msg))
    };
    // Leftovers of a previous run (a monitor killed before it cleaned up).
    x.delete(&a.id);
    if let Err(e) = x.make_root() {
        return fail(e.to_string());
    }
    let mut cmd = x.command("create", Some(&log));
    cmd.arg("--bundle")
        .arg(a.container_dir())
        .arg("--pid-file")
        .arg(&pid_file);
    let listener = match console.as_ref().map(|_| console_listener(&run)).transpose() {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    if let Some((_, _, path)) = &listener {
        cmd.arg("--console-socket").arg(path);
    }
    cmd.arg(&a.id);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(x.failed("create", &e.to_string()).to_string()),
    };
    if let (Some((_, l, _)), Some(sock)) = (&listener, &console) {
        if let Some(m) = accept_master(l, &mut child) {
            // A non-empty payload: on a stream socket an empty one carries no fd.
            let _ = skiff_runtime::console::send_master(sock.as_raw_fd(), &m, "console");
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(run.join("console.sock"));
    let status = child.wait();
    if !status.is_ok_and(|s| s.success()) {
        let msg = log_error(&log).unwrap_or_else(|| "failed".into());
        return fail(x.failed("create", &msg).to_string());
    }
    let mut start = x.command("start", None);
    start.arg(&a.id);
    if let Err(e) = x.run_quiet("start", start) {
        return fail(e.to_string());
    }
    match std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        Some(pid) => format!("P{pid}\n"),
        None => fail(x.failed("create", "it wrote no pid file").to_string()),
    }
}

/// The start error of a container whose record was removed while its monitor started it.
const REMOVED_WHILE_STARTING: &str = "monitor: the container was removed while it started";

/// Records a started container: running, its init and this monitor. False when the record is
/// gone (removed meanwhile); a database error counts as recorded (the sweep reconciles).
fn record_running(
    e: &crate::Engine,
    a: &MonitorArgs,
    pid: i32,
    restarts: i64,
    record: Option<&crate::Container>,
) -> bool {
    // SAFETY: getpid has no preconditions.
    let monitor = unsafe { libc::getpid() };
    let state = crate::model::State {
        status: "running".into(),
        running: true,
        pid,
        started_at: crate::proc::now(),
        finished_at: crate::model::ZERO_TIME.into(),
        monitor_pid: monitor,
        monitor_start: crate::proc::start_time(monitor).unwrap_or(0),
        ..Default::default()
    };
    if let Ok(false) = e.set_state_if_present(&a.id, &state, restarts) {
        return false;
    }
    if let Some(c) = record {
        e.event(c, "start", &[]);
    }
    true
}

/// Records a failed start (docker leaves a container that never ran "created").
fn record_start_failure(e: &crate::Engine, a: &MonitorArgs, code: i32, msg: &str, restarts: i64) {
    let Ok(Some(c)) = e.get(&a.id) else {
        return;
    };
    let mut state = c.state.clone();
    if restarts == c.restart_count && !c.state.running {
        state.status =
            if c.state.started_at.is_empty() || c.state.started_at == crate::model::ZERO_TIME {
                "created".into()
            } else {
                "exited".into()
            };
    } else {
        state.status = "exited".into();
    }
    state.running = false;
    state.restarting = false;
    state.pid = 0;
    state.exit_code = code;
    state.error = msg.to_string();
    state.monitor_pid = 0;
    state.monitor_start = 0;
    let _ = e.set_state(&a.id, &state);
}

fn oom_killed(cg: &skiff_cgroups::Cgroup) -> bool {
    let count = |p: PathBuf, key: &str| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let mut it = l.split_whitespace();
                    (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
                })
            })
            .unwrap_or(0)
    };
    if let Some(d) = cg.paths.get("memory") {
        if count(d.join("memory.oom_control"), "oom_kill") > 0 {
            return true;
        }
    }
    if let Some(d) = cg.paths.get("unified") {
        if count(d.join("memory.events"), "oom_kill") > 0 {
            return true;
        }
    }
    false
}

/// What to record after a run ended.
#[derive(Clone, Copy, PartialEq)]
enum After {
    Restarting,
    Final,
}

/// In a forked child: OOM check, runtime delete, exit file, database state (or removal).
/// `held` is the monitor's open connection, if it kept one (otherwise one is opened here).
/// Returns the removed (--rm) container's directory tree, for the caller to delete once it has
/// reported the exit.
fn record_exit(
    a: &MonitorArgs,
    code: i32,
    started_ok: bool,
    after: After,
    restarts: i64,
    held: Option<&crate::Engine>,
) -> Option<PathBuf> {
    let oom = match crate::ociruntime::External::load(&a.container_dir()) {
        Some(x) => {
            let oom = crate::ociruntime::bundle_cgroup(&a.container_dir(), &a.id)
                .is_some_and(|cg| oom_killed(&cg));
            x.delete(&a.id);
            let _ = std::fs::remove_file(a.run_dir().join(crate::ociruntime::PID_FILE));
            oom
        }
        None => {
            let rt = a.runroot.join("runtime");
            let oom = skiff_runtime::state::State::load(&rt, &a.id)
                .map(|st| oom_killed(&st.cgroup))
                .unwrap_or(false);
            let _ = skiff_runtime::container::delete(&rt, &a.id, true);
            oom
        }
    };
    let finished = crate::proc::now();
    let dir = a.container_dir();
    if a.health.is_some() {
        crate::health::mark_stopped(&dir);
    }
    // A --rm container is removed right below; only a kept one needs its exit on disk.
    if started_ok && !(a.auto_remove && after == After::Final) {
        let tmp = dir.join(".exit.tmp");
        let line = format!("{code} {} {finished}\n", oom as u8);
        if skiff_image::perms::write_file(&tmp, line.as_bytes(), skiff_image::perms::PRIVATE_FILE)
            .is_ok()
        {
            let _ = std::fs::rename(&tmp, dir.join("exit"));
        }
    }
    let opened;
    let e = match held {
        Some(e) => e,
        None => match crate::Engine::open(&a.root, Some(&a.runroot)) {
            Ok(e) => {
                opened = e;
                &opened
            }
            Err(_) => return None,
        },
    };
    if started_ok {
        if let Ok(Some(c)) = e.get(&a.id) {
            if oom {
                e.event(&c, "oom", &[]);
            }
            e.event(&c, "die", &[("exitCode", &code.to_string())]);
        }
    }
    if after == After::Final {
        crate::proc::unmount_container(&dir);
        // Veth, namespace and published ports go with the process; the address stays until rm.
        e.detach_network(&a.id);
        if a.auto_remove {
            // The spawning CLI may still hold the lock for a moment; `rm -f` holds it while it
            // waits for us and removes the container itself (it leaves a `removing` marker).
            // Poll finely at first: the CLI that started us lets go within a millisecond.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut pause = Duration::from_micros(200);
            while !a.run_dir().join("removing").exists() && Instant::now() < deadline {
                if let Ok(Some(_l)) = crate::lock::Lock::try_acquire(&e.lock_path(&a.id)) {
                    return e.remove_files_deferred(&a.id, true).ok().flatten();
                }
                // Someone else removed it (the CLI does when the start failed): nothing to wait for.
                if !e.lock_path(&a.id).exists() || matches!(e.get(&a.id), Ok(None)) {
                    return None;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }
    let Ok(Some(c)) = e.get(&a.id) else {
        return None;
    };
    let mut st = c.state.clone();
    if started_ok {
        st.exit_code = code;
        st.oom_killed = oom;
        st.finished_at = finished;
        st.error.clear();
    }
    st.pid = 0;
    st.paused = false;
    if after == After::Restarting {
        st.status = "restarting".into();
        st.running = true;
        st.restarting = true;
    } else {
        if started_ok || st.status != "created" {
            st.status = "exited".into();
        }
        st.running = false;
        st.restarting = false;
        st.monitor_pid = 0;
        st.monitor_start = 0;
    }
    let _ = e.set_state_restarts(&a.id, &st, restarts);
    None
}

fn should_restart(a: &MonitorArgs, code: i32, restarts: i64) -> bool {
    if a.run_dir().join("norestart").exists() || a.auto_remove {
        return false;
    }
    // `update --restart` of a running container leaves the new policy here.
    let updated = std::fs::read_to_string(a.run_dir().join(crate::update::RESTART_POLICY_FILE));
    let (policy, max) = match updated
        .as_deref()
        .ok()
        .and_then(|l| l.trim().split_once(':'))
    {
        Some((p, m)) => (p.to_string(), m.parse().unwrap_or(0)),
        None => (a.restart.clone(), a.max_retries),
    };
    match policy.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => code != 0 && (max <= 0 || restarts < max),
        _ => false,
    }
}

fn signalfd_chld() -> Option<OwnedFd> {
    // SAFETY: sigset manipulation on a zeroed set we own, then signalfd on it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    }
}

fn listen(dir: &Path) -> Option<OwnedFd> {
    let (_d, path) = attach::short_path(dir).ok()?;
    let _ = std::fs::remove_file(dir.join("attach.sock"));
    // The socket file gets the socket inode's mode (less the umask) at bind: make it 0600 first.
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    skiff_image::perms::fchmod(&sock, skiff_image::perms::PRIVATE_FILE).ok()?;
    let addr = nix::sys::socket::UnixAddr::new(path.as_str()).ok()?;
    nix::sys::socket::bind(sock.as_raw_fd(), &addr).ok()?;
    nix::sys::socket::listen(&sock, nix::sys::socket::Backlog::new(128).ok()?).ok()?;
    let l = std::os::unix::net::UnixListener::from(sock);
    l.set_nonblocking(true).ok()?;
    Some(OwnedFd::from(l))
}

fn accept(l: &OwnedFd) -> Option<OwnedFd> {
    // SAFETY: accept4 on a listening socket; the new fd is owned below.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: setting a send timeout on the socket we own; tv outlives the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        Some(OwnedFd::from_raw_fd(fd))
    }
}

fn broadcast(clients: &mut Vec<Client>, kind: u8, data: &[u8]) {
    let want = if kind == attach::STDERR { 4 } else { 2 };
    let f = attach::frame(kind, data);
    clients.retain(|c| {
        if kind != attach::EXIT && c.flags & want == 0 {
            return true;
        }
        write_all(c.fd.as_raw_fd(), &f)
    });
}

/// Handles the frames a client sent; false when it should be dropped.
fn client_input(c: &mut Client, io: &mut Io, stdin_once: bool) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into a buffer we own.
    let n = unsafe { libc::read(c.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    let closed = n <= 0;
    if !closed {
        c.buf.extend_from_slice(&buf[..n as usize]);
    }
    while c.buf.len() >= 5 {
        let len = u32::from_be_bytes([c.buf[1], c.buf[2], c.buf[3], c.buf[4]]) as usize;
        if c.buf.len() < 5 + len {
            break;
        }
        let kind = c.buf[0];
        let payload: Vec<u8> = c.buf[5..5 + len].to_vec();
        c.buf.drain(..5 + len);
        match kind {
            attach::HELLO => c.flags = payload.first().copied().unwrap_or(0),
            attach::STDIN if c.flags & 1 != 0 => {
                let target = if io.tty {
                    io.out.as_ref()
                } else {
                    io.stdin.as_ref()
                };
                if let Some(fd) = target {
                    write_all(fd.as_raw_fd(), &payload);
                }
            }
            attach::STDIN_EOF if c.flags & 1 != 0 => {
                c.stdin_done = true;
                if stdin_once && !io.tty {
                    io.stdin = None;
                }
            }
            attach::RESIZE if payload.len() == 4 => {
                if let (true, Some(m)) = (io.tty, io.out.as_ref()) {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    crate::tty::set_size(m.as_raw_fd(), rows, cols);
                }
            }
            _ => {}
        }
    }
    if closed && c.flags & 1 != 0 && !c.stdin_done && stdin_once && !io.tty {
        io.stdin = None;
    }
    !closed
}

/// Drops the monitor's clean file-backed pages (binary and library text and read-only data it
/// touched while starting) from its resident set, and turns off fault-around for them, so an idle
/// monitor keeps resident only the few pages its poll loop uses plus its small heap. Pages are
/// chosen one by one from /proc/self/pagemap: only pages still backed by the file (not copied on
/// write, like relocated data) are dropped, and the kernel re-reads them from the file on the
/// next access, so this changes memory use only, never content.
fn trim_rss(runs: &mut Vec<(usize, usize)>) {
    runs.clear();
    if let (Ok(maps), Ok(pagemap)) = (
        std::fs::read_to_string("/proc/self/maps"),
        std::fs::File::open("/proc/self/pagemap"),
    ) {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else {
                continue;
            };
            let path = f.nth(3).unwrap_or("");
            if !path.starts_with('/') || perms.contains('w') {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                file_page_runs(&pagemap, start, end, page, runs);
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    // Everything above ran in libc and the binary; from here on nothing but raw system calls
    // runs until we are back in the poll loop, so the dropped pages stay dropped.
    for &(addr, len) in runs.iter() {
        // SAFETY: each run lies in a read-only file mapping of ours: MADV_RANDOM turns off
        // fault-around; MADV_DONTNEED drops PTEs of pages that are the file's own (never a private
        // copy), which the kernel refills from the file on the next access.
        unsafe {
            raw_madvise(addr, len, libc::MADV_RANDOM);
            raw_madvise(addr, len, libc::MADV_DONTNEED);
        }
    }
}

/// madvise(2) without going through libc (whose text pages are among those being dropped).
///
/// # Safety
/// As madvise(2): the range must be one the caller may advise about.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_madvise(addr: usize, len: usize, advice: i32) {
    // SAFETY: the x86_64 Linux syscall ABI: number in rax, arguments in rdi/rsi/rdx; the kernel
    // clobbers rcx and r11; no stack use.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_madvise => _,
            in("rdi") addr,
            in("rsi") len,
            in("rdx") advice as usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
}

/// madvise(2) (other architectures go through libc).
///
/// # Safety
/// As madvise(2): the range must be one the caller may advise about.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_madvise(addr: usize, len: usize, advice: i32) {
    // SAFETY: forwarded contract.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) };
}

/// Appends to `runs` every run of pages in `[start, end)` that is either not resident or resident
/// as a page of the mapped file (pagemap bit 61), never a private copy (a relocated page).
fn file_page_runs(
    pagemap: &std::fs::File,
    start: usize,
    end: usize,
    page: usize,
    runs: &mut Vec<(usize, usize)>,
) {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const FILE: u64 = 1 << 61;
    let n = (end - start) / page;
    let mut entries = vec![0u8; n * 8];
    if pagemap
        .read_exact_at(&mut entries, (start / page * 8) as u64)
        .is_err()
    {
        return;
    }
    let droppable = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&entries[i * 8..i * 8 + 8]);
        let e = u64::from_le_bytes(b);
        e & PRESENT == 0 || e & FILE != 0
    };
    let mut i = 0;
    while i < n {
        if !droppable(i) {
            i += 1;
            continue;
        }
        let run = i;
        while i < n && droppable(i) {
            i += 1;
        }
        runs.push((start + run * page, (i - run) * page));
    }
}

/// The healthcheck of one run: a timerfd in the poll loop, and at most one checker child (see
/// [`crate::health`]) at a time; the next check is timed from the end of the previous one.
struct Checks<'a> {
    probe: &'a crate::health::Probe,
    timer: OwnedFd,
    /// The running checker (0: none).
    pid: i32,
    /// Still `starting` (before the first success or the first `unhealthy`).
    starting: bool,
    began: Instant,
    began_wall: std::time::SystemTime,
}

impl<'a> Checks<'a> {
    fn new(probe: &'a crate::health::Probe) -> Option<Checks<'a>> {
        // SAFETY: timerfd_create with constant flags; the fd is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        let c = Checks {
            probe,
            // SAFETY: a fresh descriptor we own.
            timer: unsafe { OwnedFd::from_raw_fd(fd) },
            pid: 0,
            starting: true,
            began: Instant::now(),
            began_wall: std::time::SystemTime::now(),
        };
        c.arm(c.probe.next_interval(Duration::ZERO, true));
        Some(c)
    }

    /// One-shot in `d` (zero disarms).
    fn arm(&self, d: Duration) {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
            },
        };
        // SAFETY: timerfd_settime on our timer with a valid itimerspec.
        unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// The timer fired: fork a checker (unless one still runs).
    fn fire(&mut self, a: &MonitorArgs) {
        let mut n = [0u8; 8];
        // SAFETY: draining the timerfd's 8-byte counter into a buffer we own.
        unsafe { libc::read(self.timer.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
        if self.pid != 0 {
            return;
        }
        let pid = fork();
        if pid == 0 {
            // SAFETY: in the forked child: drop every inherited descriptor (the container's
            // stdio, attach clients, the signalfd) so none is held open by the check.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let dir = a.container_dir();
            let cx = crate::health::CheckCtx {
                root: &a.root,
                runroot: &a.runroot,
                id: &a.id,
                dir: &dir,
                started: self.began_wall,
            };
            exit_child(crate::health::check(&cx, self.probe));
        }
        if pid < 0 {
            self.arm(self.probe.interval);
            return;
        }
        self.pid = pid;
    }

    /// The checker exited with wait status `st`: note the status, time the next check.
    fn reaped(&mut self, st: i32) {
        self.pid = 0;
        if libc::WIFEXITED(st) {
            match libc::WEXITSTATUS(st) {
                crate::health::CODE_STARTING => self.starting = true,
                crate::health::CODE_HEALTHY | crate::health::CODE_UNHEALTHY => {
                    self.starting = false
                }
                _ => {}
            }
        }
        self.arm(
            self.probe
                .next_interval(self.began.elapsed(), self.starting),
        );
    }

    /// Stops the checks: kills a running checker, disarms the timer.
    fn stop(&mut self) {
        if self.pid > 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            wait_pid(self.pid);
            self.pid = 0;
        }
        self.arm(Duration::ZERO);
    }
}

impl Drop for Checks<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one run of the container until its init exited and its output drained; returns the code.
fn serve(
    a: &MonitorArgs,
    io: &mut Io,
    sfd: &OwnedFd,
    listener: Option<&OwnedFd>,
    clients: &mut Vec<Client>,
    log: &mut LogWriter,
    mut dns: Option<&mut skiff_net::dns::Server>,
) -> i32 {
    let mut exited: Option<i32> = None;
    let mut deadline: Option<Instant> = None;
    let mut trimmed = false;
    let mut trim_runs: Vec<(usize, usize)> = Vec::new();
    let mut buf = [0u8; 16384];
    let mut checks = a.health.as_ref().and_then(Checks::new);
    loop {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5 + clients.len());
        let pfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        fds.push(pfd(sfd.as_raw_fd()));
        fds.push(pfd(listener.map(|l| l.as_raw_fd()).unwrap_or(-1)));
        fds.push(pfd(io.out.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1)));
        fds.push(pfd(io.err.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1)));
        fds.push(pfd(checks.as_ref().map_or(-1, |c| c.timer.as_raw_fd())));
        let dns_fds = dns.as_ref().map_or([-1, -1], |d| d.fds());
        fds.push(pfd(dns_fds[0]));
        fds.push(pfd(dns_fds[1]));
        for c in clients.iter() {
            fds.push(pfd(c.fd.as_raw_fd()));
        }
        let timeout = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).as_millis() as i32,
            None if !trimmed => 300,
            None => -1,
        };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r == 0 && deadline.is_none() {
            // Idle: give back the pages the busy part touched, then sleep in poll.
            trim_rss(&mut trim_runs);
            trimmed = true;
            continue;
        }
        trimmed = false;
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return exited.unwrap_or(255);
        }
        if fds[0].revents != 0 {
            let mut si = [0u8; 128];
            // SAFETY: draining the signalfd into a buffer we own.
            while unsafe { libc::read(sfd.as_raw_fd(), si.as_mut_ptr().cast(), si.len()) } > 0 {}
            loop {
                let mut st = 0;
                // SAFETY: reaping any child without blocking.
                let p = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                if p <= 0 {
                    break;
                }
                if p == io.pid {
                    exited = Some(skiff_runtime::util::status_code(st));
                    deadline = Some(Instant::now() + Duration::from_millis(2000));
                    // Checks stop with the container (a running one is killed).
                    if let Some(c) = checks.as_mut() {
                        c.stop();
                    }
                } else if let Some(c) = checks.as_mut().filter(|c| c.pid == p) {
                    c.reaped(st);
                }
            }
        }
        if fds[1].revents != 0 {
            if let Some(l) = listener {
                while let Some(fd) = accept(l) {
                    clients.push(Client {
                        fd,
                        flags: 0,
                        buf: Vec::new(),
                        stdin_done: false,
                    });
                }
            }
        }
        for (i, stream) in [(2usize, 0usize), (3, 1)] {
            if fds[i].revents == 0 {
                continue;
            }
            let fd = if stream == 0 { &io.out } else { &io.err };
            let Some(fd) = fd.as_ref() else { continue };
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let data = &buf[..n as usize];
                log.write(stream, data);
                broadcast(
                    clients,
                    if stream == 0 {
                        attach::STDOUT
                    } else {
                        attach::STDERR
                    },
                    data,
                );
            } else if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                if stream == 0 {
                    io.out = None;
                } else {
                    io.err = None;
                }
            }
        }
        if fds[4].revents != 0 && exited.is_none() {
            if let Some(c) = checks.as_mut() {
                c.fire(a);
            }
        }
        if let Some(d) = dns.as_deref_mut() {
            if fds[5].revents != 0 {
                d.on_query();
            }
            if fds[6].revents != 0 {
                d.on_answer();
            }
        }
        let nclients = fds.len() - 7;
        let mut keep = vec![true; clients.len()];
        for (j, c) in clients.iter_mut().enumerate().take(nclients) {
            if fds[7 + j].revents != 0 {
                keep[j] = client_input(c, io, a.stdin_once);
            }
        }
        let mut j = 0;
        clients.retain(|_| {
            j += 1;
            keep[j - 1]
        });
        if let Some(code) = exited {
            let drained = io.out.is_none() && io.err.is_none();
            if drained || deadline.is_some_and(|d| Instant::now() >= d) {
                io.stdin = None;
                io.out = None;
                io.err = None;
                log.flush();
                return code;
            }
        }
    }
}

/// Entry point of `skiff monitor ARGS`; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let Some(mut a) = MonitorArgs::parse(args) else {
        eprintln!("skiff monitor: bad arguments");
        return 2;
    };
    if a.id.is_empty() {
        // Started ahead of its container (see `ops::prespawn_monitor`): the rest of the arguments
        // arrive on fd 3 as one line; end of file means the container was never made.
        let line = read_message(3);
        let line = String::from_utf8_lossy(&line);
        let mut all: Vec<String> = args.to_vec();
        all.extend(line.split_whitespace().map(str::to_string));
        match MonitorArgs::parse(&all) {
            Some(full) if !full.id.is_empty() => a = full,
            _ => return 0,
        }
    }
    // `ps` shows `skiff-monitor <id12>` (with the root when it is not the default one, so
    // monitors of different roots stay apart) rather than the fd path it was exec'd through.
    let short = &a.id[..12.min(a.id.len())];
    let title = match args
        .iter()
        .position(|x| x == "--root")
        .and_then(|i| args.get(i + 1))
    {
        Some(r) if r != "/var/lib/skiff" => format!("skiff-monitor {short} --root {r}"),
        _ => format!("skiff-monitor {short}"),
    };
    crate::proc::set_title("skiff-monitor", &title);
    let keep_from = if a.attach_fd { 5 } else { 4 };
    // SAFETY: process-wide settings of a single-threaded process; close_range drops every fd we
    // inherited beyond stdio, the notification pipe and the attach client.
    unsafe {
        libc::syscall(libc::SYS_close_range, keep_from as u32, u32::MAX, 0u32);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    // SAFETY: fd 3 is the notification pipe (or socket) our spawner passed; we own it from here.
    let mut notify = Some(unsafe { OwnedFd::from_raw_fd(3) });
    let mut clients: Vec<Client> = Vec::new();
    if a.attach_fd {
        clients.push(Client {
            // SAFETY: fd 4 is the pre-connected attach client our spawner passed.
            fd: unsafe { OwnedFd::from_raw_fd(4) },
            flags: 0,
            buf: Vec::new(),
            stdin_done: false,
        });
    }
    if let Some(c) = clients.first_mut() {
        // The pre-connected client sent its HELLO before we were spawned: read it before the
        // container can produce output, so nothing is lost.
        let mut p = libc::pollfd {
            fd: c.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 2000) } > 0 {
            let mut no_io = Io {
                pid: 0,
                out: None,
                err: None,
                stdin: None,
                tty: false,
            };
            if !client_input(c, &mut no_io, false) {
                clients.clear();
            }
        }
    }
    let Some(sfd) = signalfd_chld() else {
        if let Some(n) = notify.take() {
            let _ = write_all(n.as_raw_fd(), b"125 monitor: signalfd failed\n");
        }
        return 1;
    };
    // The attach socket and the log file are made while the first create child works.
    let mut listener = None;
    let mut log = None;
    let mut restarts = a.restarts;
    let mut delay = Duration::from_millis(100);
    let mut trash = None;
    // The embedded DNS server (user networks), bound once the namespace exists; it lives
    // across restarts, as the namespace does.
    let mut dns = None;
    let mut removed = false;
    let final_code = loop {
        let began = Instant::now();
        let first = notify.is_some();
        if dns.is_none() {
            // Before the process starts: its first query must find the socket bound (it queues
            // until the serve loop reads it), not an ICMP port-unreachable.
            dns = embedded_dns(&a);
        }
        let (spawned, mut engine) = spawn(&a, restarts, &mut || {
            if log.is_none() {
                listener = listen(&a.run_dir());
                log = Some(open_log(&a));
            }
            // Bound before the container's process runs (its first lookup must find it); the
            // namespace exists by now (the runtime's create joined it).
            if dns.is_none() {
                dns = embedded_dns(&a);
            }
        });
        // A foreground run's CLI waits for the exit record and the --rm removal: keep the
        // connection for them. Otherwise close it, so an idle monitor holds no SQLite memory.
        if !(first && a.attach_fd) {
            engine = None;
        }
        let (code, started_ok) = match spawned {
            Ok(mut io) => {
                if let Some(n) = notify.take() {
                    let _ = write_all(n.as_raw_fd(), format!("0 {}\n", io.pid).as_bytes());
                }
                // Pre-connected clients (foreground run) may have queued stdin already.
                let log = log.get_or_insert_with(|| open_log(&a));
                let code = serve(
                    &a,
                    &mut io,
                    &sfd,
                    listener.as_ref(),
                    &mut clients,
                    log,
                    dns.as_mut(),
                );
                (code, true)
            }
            Err((code, msg)) => {
                if let Some(n) = notify.take() {
                    let _ = write_all(n.as_raw_fd(), format!("{code} {msg}\n").as_bytes());
                }
                removed = msg == REMOVED_WHILE_STARTING;
                (code, false)
            }
        };
        let again = !removed && (started_ok || !first) && should_restart(&a, code, restarts);
        let after = if again {
            After::Restarting
        } else {
            After::Final
        };
        if !again {
            // The monitor exits next: no need to keep this work out of its memory.
            trash = record_exit(&a, code, started_ok, after, restarts, engine.as_ref());
            break code;
        }
        // Never use a connection across fork.
        drop(engine);
        in_child(|| {
            record_exit(&a, code, started_ok, after, restarts, None);
            0
        });
        if began.elapsed() >= Duration::from_secs(10) {
            delay = Duration::from_millis(100);
        }
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if a.run_dir().join("norestart").exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        delay = (delay * 2).min(Duration::from_secs(60));
        if a.run_dir().join("norestart").exists() {
            in_child(|| {
                record_exit(&a, code, false, After::Final, restarts, None);
                0
            });
            break code;
        }
        restarts += 1;
    };
    broadcast(&mut clients, attach::EXIT, &final_code.to_be_bytes());
    drop(clients);
    if let Some(t) = trash {
        // Background work now: whatever runs next (often the next container) goes first.
        // SAFETY: sched_setscheduler on this process with a valid sched_param.
        unsafe {
            let p = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
        }
        crate::ops::remove_trash(&t);
    }
    let _ = std::io::stdout().flush();
    0
}

/// The embedded DNS server of a container on a user network (its directory holds the
/// upstream list the engine wrote at create), bound in its network namespace; None otherwise or
/// when it cannot be bound (the container then resolves through /etc/hosts alone, as before).
fn embedded_dns(a: &MonitorArgs) -> Option<skiff_net::dns::Server> {
    let dir = a.container_dir();
    let upstream = std::fs::read_to_string(dir.join(skiff_net::dns::UPSTREAM_FILE)).ok()?;
    let netns = skiff_net::netns::path(&a.runroot, &a.id);
    skiff_net::dns::Server::bind(
        &netns,
        &dir.join("hosts"),
        skiff_net::dns::parse_upstreams(&upstream),
    )
    .ok()
}

/// The container's log writer: `ctr.log` with its rotation settings, or nothing (`none` driver).
fn open_log(a: &MonitorArgs) -> LogWriter {
    if a.log_none {
        LogWriter::discard()
    } else {
        LogWriter::open(
            &a.container_dir().join("ctr.log"),
            a.log_max_size,
            a.log_max_file,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = MonitorArgs {
            root: "/r".into(),
            runroot: "/run/x".into(),
            id: "abc".into(),
            tty: true,
            stdin: true,
            restart: "on-failure".into(),
            max_retries: 3,
            log_max_size: 1000,
            log_max_file: 2,
            attach_fd: true,
            log_none: true,
            restarts: 1,
            ..Default::default()
        };
        assert_eq!(MonitorArgs::parse(&a.to_args()), Some(a));
        assert!(MonitorArgs::parse(&["--bogus".into()]).is_none());
    }
}
