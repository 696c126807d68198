//! Healthchecks with docker's semantics, run by the container's monitor (there is no daemon).
//!
//! The `--health-*` flags are validated and merged over the image's `Healthcheck` at create time
//! ([`resolve`]) into `Config.Healthcheck`. `start` hands the effective probe to the monitor on
//! its command line ([`Probe::encode`]); the monitor arms a timerfd in its poll loop and, when it
//! fires, forks a short-lived checker ([`check`]) that runs the probe through the runtime's exec
//! path with a timeout, applies docker's state machine ([`apply`]) to `health.json` in the
//! container's directory (written atomically, mode 0600) and emits `health_status: …` events on
//! a change. Its exit code tells the monitor the new status (for the start interval). So the
//! monitor stays single-threaded and its memory small: the probe's allocations, serde and the
//! database live and die in the checker. `inspect` and `ps` read `health.json` ([`read`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::flags::bad_flag;
use crate::model::HealthConfig;

/// The file in the container's directory that holds `State.Health`.
pub const HEALTH_FILE: &str = "health.json";
/// Results kept in `Log` (docker's maxLogEntries).
pub const MAX_LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept (docker's maxOutputLen).
pub const MAX_OUTPUT_LEN: usize = 4096;
/// docker's `starting`.
pub const STARTING: &str = "starting";
/// docker's `healthy`.
pub const HEALTHY: &str = "healthy";
/// docker's `unhealthy`.
pub const UNHEALTHY: &str = "unhealthy";
/// docker's `none` (no healthcheck, or never started).
pub const NONE: &str = "none";

/// Checker exit code: the container is still starting.
pub const CODE_STARTING: i32 = 0;
/// Checker exit code: healthy.
pub const CODE_HEALTHY: i32 = 1;
/// Checker exit code: unhealthy.
pub const CODE_UNHEALTHY: i32 = 2;
/// Checker exit code: nothing was recorded (not running, paused, or the checker failed).
pub const CODE_SKIPPED: i32 = 3;

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Docker's smallest non-zero healthcheck duration (1ms).
const MIN_DURATION_NS: i64 = 1_000_000;

/// The `run`/`create` healthcheck flags, as typed.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd`.
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--health-retries`.
    pub retries: Option<String>,
    /// `--no-healthcheck`.
    pub no_healthcheck: bool,
    /// A whole `Test` (`["CMD", "prog", "arg"]` or `["CMD-SHELL", "line"]`, as compose and the
    /// API give it); when not empty it is used instead of `cmd`.
    pub test: Vec<String>,
}

/// `Config.Healthcheck` of a new container: the flags (validated as docker's CLI and daemon do)
/// merged over the image's `Healthcheck` (docker's merge: unset fields come from the image).
pub fn resolve(f: &HealthFlags, image_config: &Value) -> Result<Option<HealthConfig>> {
    let dur = |flag: &str, v: &Option<String>| -> Result<i64> {
        match v {
            None => Ok(0),
            Some(s) => skiff_image::time::parse_go_duration_ns(s).map_err(|e| bad_flag(flag, s, e)),
        }
    };
    let interval = dur("--health-interval", &f.interval)?;
    let timeout = dur("--health-timeout", &f.timeout)?;
    let start_period = dur("--health-start-period", &f.start_period)?;
    let start_interval = dur("--health-start-interval", &f.start_interval)?;
    let retries = match &f.retries {
        None => 0,
        Some(s) => crate::flags::int_flag("--health-retries", s)?,
    };
    let cmd = f.cmd.as_deref().filter(|c| !c.is_empty());
    let test = match f.test.first().map(String::as_str) {
        None => None,
        Some("CMD" | "CMD-SHELL") if f.test.len() > 1 => Some(f.test.clone()),
        Some(_) => {
            return Err(Error::Invalid(format!(
                "healthcheck test {:?}: expected [\"CMD\", …] or [\"CMD-SHELL\", \"…\"]",
                f.test
            )))
        }
    };
    let have = cmd.is_some()
        || test.is_some()
        || interval != 0
        || timeout != 0
        || start_period != 0
        || start_interval != 0
        || retries != 0;
    let user = if f.no_healthcheck {
        if have {
            return Err(Error::Invalid(
                "--no-healthcheck conflicts with --health-* options".into(),
            ));
        }
        Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        })
    } else if have {
        for (flag, v) in [
            ("--health-interval", interval),
            ("--health-timeout", timeout),
            ("--health-retries", retries),
            ("--health-start-period", start_period),
            ("--health-start-interval", start_interval),
        ] {
            if v < 0 {
                return Err(Error::Invalid(format!("{flag} cannot be negative")));
            }
        }
        for (field, v) in [
            ("Interval", interval),
            ("Timeout", timeout),
            ("StartPeriod", start_period),
            ("StartInterval", start_interval),
        ] {
            if v != 0 && v < MIN_DURATION_NS {
                return Err(Error::Invalid(format!(
                    "{field} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        Some(HealthConfig {
            test: test.unwrap_or_else(|| {
                cmd.map(|c| vec!["CMD-SHELL".to_string(), c.to_string()])
                    .unwrap_or_default()
            }),
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        })
    } else {
        None
    };
    let image: Option<HealthConfig> = image_config
        .get("Healthcheck")
        .filter(|v| v.is_object())
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    Ok(match (user, image) {
        (None, i) => i,
        (Some(u), None) => Some(u),
        (Some(mut u), Some(i)) => {
            if u.test.is_empty() {
                u.test = i.test;
            }
            for (mine, theirs) in [
                (&mut u.interval, i.interval),
                (&mut u.timeout, i.timeout),
                (&mut u.start_period, i.start_period),
                (&mut u.start_interval, i.start_interval),
                (&mut u.retries, i.retries),
            ] {
                if *mine == 0 {
                    *mine = theirs;
                }
            }
            Some(u)
        }
    })
}

/// The probe a monitor runs: docker's defaults applied, the command resolved to an argv.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may run before it is killed.
    pub timeout: Duration,
    /// Time after a start during which failures do not count.
    pub start_period: Duration,
    /// Time between checks during the start period while still `starting`.
    pub start_interval: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
    /// What to exec in the container.
    pub argv: Vec<String>,
}

impl Probe {
    /// The probe of a container's `Healthcheck`, or None when it has none (no config, `NONE`,
    /// an empty command or an unknown test type).
    pub fn from_config(hc: Option<&HealthConfig>) -> Option<Probe> {
        let hc = hc?;
        let argv = match hc.test.first().map(String::as_str) {
            Some("CMD") if hc.test.len() > 1 => hc.test[1..].to_vec(),
            Some("CMD-SHELL") if hc.test.len() > 1 => vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                hc.test[1..].join(" "),
            ],
            _ => return None,
        };
        let d = |ns: i64, def: Duration| {
            if ns > 0 {
                Duration::from_nanos(ns as u64)
            } else {
                def
            }
        };
        Some(Probe {
            interval: d(hc.interval, DEFAULT_INTERVAL),
            timeout: d(hc.timeout, DEFAULT_TIMEOUT),
            start_period: d(hc.start_period, Duration::ZERO),
            start_interval: d(hc.start_interval, DEFAULT_START_INTERVAL),
            retries: if hc.retries > 0 {
                hc.retries.min(u32::MAX as i64) as u32
            } else {
                DEFAULT_RETRIES
            },
            argv,
        })
    }

    /// One whitespace-free token for the monitor's command line.
    pub fn encode(&self) -> String {
        let joined = self.argv.join("\0");
        let hex: String = joined.bytes().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:{}:{}:{}:{}:{hex}",
            self.interval.as_nanos(),
            self.timeout.as_nanos(),
            self.start_period.as_nanos(),
            self.start_interval.as_nanos(),
            self.retries
        )
    }

    /// Parses [`Probe::encode`] output.
    pub fn decode(s: &str) -> Option<Probe> {
        let mut it = s.split(':');
        let mut ns =
            || -> Option<Duration> { Some(Duration::from_nanos(it.next()?.parse().ok()?)) };
        let (interval, timeout, start_period, start_interval) = (ns()?, ns()?, ns()?, ns()?);
        let retries = it.next()?.parse().ok()?;
        let hex = it.next()?;
        if hex.len() % 2 != 0 || it.next().is_some() {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let joined = String::from_utf8(bytes?).ok()?;
        Some(Probe {
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
            argv: joined.split('\0').map(str::to_string).collect(),
        })
    }

    /// docker's next wait: the start interval while `starting` inside the start period, the
    /// interval otherwise.
    pub fn next_interval(&self, since_start: Duration, starting: bool) -> Duration {
        if since_start >= self.start_period || !starting {
            self.interval
        } else {
            self.start_interval
        }
    }
}

/// One probe result (docker's `HealthcheckResult`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthResult {
    /// RFC 3339 start.
    pub start: String,
    /// RFC 3339 end.
    pub end: String,
    /// 0 healthy, anything else a failure (-1: could not run, or timed out).
    pub exit_code: i64,
    /// The first 4096 bytes of stdout and stderr, or why it failed.
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: i64,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

/// Applies one result as docker's `handleProbeResult` does: a success makes the container
/// healthy and clears the streak; a failure while `starting` inside the start period does not
/// count; `retries` consecutive failures make it unhealthy. The log keeps the last five.
pub fn apply(h: &mut Health, r: HealthResult, retries: u32, in_start_period: bool) {
    if h.log.len() >= MAX_LOG_ENTRIES {
        let extra = h.log.len() + 1 - MAX_LOG_ENTRIES;
        h.log.drain(..extra);
    }
    let ok = r.exit_code == 0;
    h.log.push(r);
    if ok {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
        return;
    }
    if h.status == STARTING && in_start_period {
        return;
    }
    h.failing_streak += 1;
    if h.failing_streak >= i64::from(retries.max(1)) {
        h.status = UNHEALTHY.into();
    }
}

/// Reads `health.json` of the container directory `dir`.
pub fn read(dir: &Path) -> Option<Health> {
    let data = std::fs::read(dir.join(HEALTH_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Writes `health.json` atomically (a private temporary file renamed over it).
pub fn write(dir: &Path, h: &Health) -> std::io::Result<()> {
    let data = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    let tmp = dir.join(".health.json.tmp");
    skiff_image::perms::write_file(&tmp, &data, skiff_image::perms::PRIVATE_FILE)?;
    std::fs::rename(&tmp, dir.join(HEALTH_FILE))
}

/// At each start: `starting`, streak 0, the log kept (docker's `initHealthMonitor`).
pub fn reset_for_start(dir: &Path) {
    let mut h = read(dir).unwrap_or_default();
    h.status = STARTING.into();
    h.failing_streak = 0;
    let _ = write(dir, &h);
}

/// When the checks stop (the container stopped or was paused): `unhealthy`, as docker's
/// `CloseMonitorChannel` sets it "for compatibility reasons".
pub fn mark_stopped(dir: &Path) {
    if let Some(mut h) = read(dir) {
        if h.status != UNHEALTHY {
            h.status = UNHEALTHY.into();
            let _ = write(dir, &h);
        }
    }
}

/// The monitor's code for a status string.
pub fn status_code(s: &str) -> i32 {
    match s {
        STARTING => CODE_STARTING,
        HEALTHY => CODE_HEALTHY,
        _ => CODE_UNHEALTHY,
    }
}

/// What a checker needs to know besides the probe.
pub struct CheckCtx<'a> {
    /// Engine root (for the event).
    pub root: &'a Path,
    /// Run dir (for the event's database open).
    pub runroot: &'a Path,
    /// Container id.
    pub id: &'a str,
    /// The container's directory (holds `health.json`).
    pub dir: &'a Path,
    /// When this run of the container started.
    pub started: SystemTime,
}

/// The checker (a child the monitor forked): runs the probe once, records the result and returns
/// one of the `CODE_*` values as its exit code.
pub fn check(cx: &CheckCtx, probe: &Probe) -> i32 {
    if let Some(x) = crate::ociruntime::External::load(cx.dir) {
        return check_external(cx, probe, &x);
    }
    let rt = cx.runroot.join("runtime");
    // The exec path of `skiff exec`: the state read once with the seccomp rules skipped, the
    // filter from the runtime's cache.
    let Ok(st) = skiff_runtime::exec::ExecTarget::load(&rt, cx.id) else {
        return CODE_SKIPPED;
    };
    // docker runs no checks while the container is paused.
    if !matches!(st.status(&rt), skiff_runtime::state::Status::Running) {
        return CODE_SKIPPED;
    }
    let start = SystemTime::now();
    let start_s = crate::proc::now();
    let (exit_code, output) = run_probe(&rt, cx.id, &st, probe);
    // A probe cut short by a pause is dropped, as docker cancels it.
    if matches!(st.status(&rt), skiff_runtime::state::Status::Paused) {
        return CODE_SKIPPED;
    }
    record(cx, probe, start, start_s, exit_code, output)
}

/// [`check`] for a container of another OCI runtime: the probe runs through `<runtime> exec`;
/// pauses are read from the container's cgroup.
fn check_external(cx: &CheckCtx, probe: &Probe, x: &crate::ociruntime::External) -> i32 {
    let run_dir = cx.runroot.join("containers").join(cx.id);
    let Ok(live) = crate::ociruntime::live(cx.dir, &run_dir, cx.id) else {
        return CODE_SKIPPED;
    };
    let paused = || live.cgroup.is_frozen().unwrap_or(false);
    if !live.init_alive() || paused() {
        return CODE_SKIPPED;
    }
    let start = SystemTime::now();
    let start_s = crate::proc::now();
    let (exit_code, output) = run_probe_external(x, cx, &run_dir, probe);
    if paused() {
        return CODE_SKIPPED;
    }
    record(cx, probe, start, start_s, exit_code, output)
}

/// Records one probe's result in `health.json` (and the status change as an event); returns
/// the `CODE_*` of the new status.
fn record(
    cx: &CheckCtx,
    probe: &Probe,
    start: SystemTime,
    start_s: String,
    exit_code: i64,
    output: String,
) -> i32 {
    let result = HealthResult {
        start: start_s,
        end: crate::proc::now(),
        exit_code,
        output,
    };
    let mut h = read(cx.dir).unwrap_or_else(|| Health {
        status: STARTING.into(),
        ..Default::default()
    });
    let old = h.status.clone();
    let in_start_period = start
        .duration_since(cx.started)
        .map(|d| d < probe.start_period)
        .unwrap_or(true);
    apply(&mut h, result, probe.retries, in_start_period);
    if write(cx.dir, &h).is_err() {
        return CODE_SKIPPED;
    }
    if h.status != old {
        if let Ok(e) = crate::Engine::open(cx.root, Some(cx.runroot)) {
            if let Ok(Some(c)) = e.get(cx.id) {
                e.event(&c, &format!("health_status: {}", h.status), &[]);
            }
        }
    }
    status_code(&h.status)
}

/// Execs the probe in the container with stdout and stderr on a pipe; kills it after the
/// timeout. Returns (exit code, output) with docker's -1 and messages for a failed start or a
/// timeout.
fn run_probe(
    rt: &Path,
    id: &str,
    st: &skiff_runtime::exec::ExecTarget,
    probe: &Probe,
) -> (i64, String) {
    let Some(mut process) = st.process().cloned() else {
        return (-1, format!("container {id}: no stored process"));
    };
    process.set_args(Some(probe.argv.clone()));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    let mut p = [0i32; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return (
            -1,
            format!("health check pipe: {}", std::io::Error::last_os_error()),
        );
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    let null = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => OwnedFd::from(f),
        Err(e) => return (-1, format!("open /dev/null: {e}")),
    };
    // SAFETY: dup2 onto the standard fds of this single-threaded checker process; the exec'd
    // probe inherits them.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(w.as_raw_fd(), 1);
        libc::dup2(w.as_raw_fd(), 2);
    }
    // The checker is a child of the monitor, which runs sealed: this spawns directly (the
    // helper is for an unsealed caller such as the `skiff exec` CLI).
    let spawned = skiff_runtime::exec_helper::spawn(
        st,
        skiff_runtime::exec::ExecOpts {
            root: rt.to_path_buf(),
            id: id.to_string(),
            process,
            console: skiff_runtime::container::Console::None,
            pid_file: None,
            detach: false,
            preserve_fds: 0,
        },
    );
    // Only the probe holds the write end now: end of file comes when it (and its children) end.
    // SAFETY: as above.
    unsafe {
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(null.as_raw_fd(), 2);
    }
    drop(w);
    let pid = match spawned {
        Ok(s) => s.pid,
        Err(e) => return (-1, e.to_string()),
    };
    collect_probe(pid, r, probe, None)
}

/// Runs the probe with `<runtime> exec --process F --pid-file P ID` (stdout and stderr on a
/// pipe); the runtime's exit code is the probe's.
fn run_probe_external(
    x: &crate::ociruntime::External,
    cx: &CheckCtx,
    run_dir: &Path,
    probe: &Probe,
) -> (i64, String) {
    use std::process::Stdio;
    let Some(mut process) = crate::ops::bundle_process(cx.dir) else {
        return (-1, format!("container {}: no stored process", cx.id));
    };
    process.set_args(Some(probe.argv.clone()));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    let pf = run_dir.join("health-process.json");
    let pid_file = run_dir.join("health.pid");
    let _ = std::fs::remove_file(&pid_file);
    let written = serde_json::to_vec(&process)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            skiff_image::perms::write_file(&pf, &d, skiff_image::perms::PRIVATE_FILE)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        return (-1, format!("health check: write {}: {e}", pf.display()));
    }
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return (-1, format!("health check pipe: {e}")),
    };
    let w2 = match w.try_clone() {
        Ok(w) => w,
        Err(e) => return (-1, format!("health check pipe: {e}")),
    };
    let mut cmd = x.command("exec", None);
    cmd.arg("--process")
        .arg(&pf)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(cx.id)
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(w2);
    let child = cmd.spawn();
    drop(cmd);
    let child = match child {
        Ok(c) => c,
        Err(e) => return (-1, x.failed("exec", &e.to_string()).to_string()),
    };
    let r = collect_probe(child.id() as i32, r, probe, Some(&pid_file));
    let _ = std::fs::remove_file(&pf);
    let _ = std::fs::remove_file(&pid_file);
    r
}

/// Reads the probe's output until `pid` (our child) exits or the timeout, when it is killed
/// (and the process named in `pid_file`, the runtime's exec'd process, first).
fn collect_probe(pid: i32, r: OwnedFd, probe: &Probe, pid_file: Option<&Path>) -> (i64, String) {
    // SAFETY: F_SETFL on a descriptor we own.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let deadline = Instant::now() + probe.timeout;
    let mut out: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut open = true;
    let mut drain = |out: &mut Vec<u8>, open: &mut bool| loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            *open = false;
        }
        if n <= 0 {
            return;
        }
        let room = MAX_OUTPUT_LEN.saturating_sub(out.len());
        out.extend_from_slice(&buf[..(n as usize).min(room)]);
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            let mut st = 0;
            if let Some(p) = pid_file
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill with integer arguments (the runtime's exec'd probe).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            // SAFETY: signalling and reaping our own child (we are its subreaper).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut st, 0);
            }
            let ns = probe.timeout.as_nanos().min(i64::MAX as u128) as i64;
            return (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    skiff_image::time::format_go_duration(ns)
                ),
            );
        }
        let wait = (deadline - now).min(Duration::from_millis(20)).as_millis() as i32;
        let mut pfd = libc::pollfd {
            fd: if open { r.as_raw_fd() } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd (a negative fd is ignored by poll).
        unsafe { libc::poll(&mut pfd, 1, wait.max(1)) };
        if open {
            drain(&mut out, &mut open);
        }
        let mut status = 0;
        // SAFETY: non-blocking reap of our own child.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            if open {
                drain(&mut out, &mut open);
            }
            let code = skiff_runtime::util::status_code(status);
            return (i64::from(code), String::from_utf8_lossy(&out).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(code: i64) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn state_machine_as_docker() {
        let mut h = Health {
            status: STARTING.into(),
            ..Default::default()
        };
        // Failures inside the start period do not count while starting.
        apply(&mut h, res(1), 2, true);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        apply(&mut h, res(1), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        apply(&mut h, res(0), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        // Once healthy, the start period no longer shields failures.
        apply(&mut h, res(1), 2, true);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 1));
        apply(&mut h, res(-1), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        for _ in 0..10 {
            apply(&mut h, res(1), 2, false);
        }
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
    }

    #[test]
    fn exec_form_test_kept() {
        let f = HealthFlags {
            test: vec!["CMD".into(), "test".into(), "-f".into(), "/a b".into()],
            ..Default::default()
        };
        let hc = resolve(&f, &serde_json::Value::Null).unwrap().unwrap();
        assert_eq!(hc.test, vec!["CMD", "test", "-f", "/a b"]);
        let p = Probe::from_config(Some(&hc)).unwrap();
        assert_eq!(p.argv, vec!["test", "-f", "/a b"]);
        let bad = HealthFlags {
            test: vec!["WHAT".into(), "x".into()],
            ..Default::default()
        };
        assert!(resolve(&bad, &serde_json::Value::Null).is_err());
    }

    #[test]
    fn flags_validated_and_merged() {
        let img = serde_json::json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000i64, "Retries": 7}});
        let f = HealthFlags {
            timeout: Some("300ms".into()),
            ..Default::default()
        };
        let hc = resolve(&f, &img).unwrap().unwrap();
        assert_eq!(hc.test, vec!["CMD", "true"]);
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries),
            (5_000_000_000, 300_000_000, 7)
        );
        let none = HealthFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(resolve(&none, &img).unwrap().unwrap().test, vec!["NONE"]);
        assert!(Probe::from_config(resolve(&none, &img).unwrap().as_ref()).is_none());
        let msg = |f: HealthFlags| resolve(&f, &Value::Null).unwrap_err().to_string();
        assert!(msg(HealthFlags {
            interval: Some("-1s".into()),
            ..Default::default()
        })
        .contains("--health-interval cannot be negative"));
        assert!(msg(HealthFlags {
            timeout: Some("10us".into()),
            ..Default::default()
        })
        .contains("Timeout in Healthcheck cannot be less than 1ms"));
        assert!(msg(HealthFlags {
            retries: Some("-1".into()),
            ..Default::default()
        })
        .contains("--health-retries cannot be negative"));
        assert!(msg(HealthFlags {
            interval: Some("soon".into()),
            ..Default::default()
        })
        .contains("--health-interval"));
        assert!(msg(HealthFlags {
            cmd: Some("true".into()),
            no_healthcheck: true,
            ..Default::default()
        })
        .contains("conflicts"));
    }

    #[test]
    fn probe_round_trip_and_defaults() {
        let hc = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/ok && echo 'a b'".into()],
            ..Default::default()
        };
        let p = Probe::from_config(Some(&hc)).unwrap();
        assert_eq!(p.argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(
            (p.interval, p.timeout, p.retries),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3)
        );
        assert_eq!(Probe::decode(&p.encode()), Some(p.clone()));
        assert!(!p.encode().contains(char::is_whitespace));
        assert_eq!(p.next_interval(Duration::ZERO, true), DEFAULT_INTERVAL);
    }
}
