//! Container lifecycle verbs over the state database and the monitor: start (spawning the monitor),
//! stop, kill, remove, wait, pause/unpause, rename, exec, top, stats, and the reconciliation that
//! turns containers whose monitor died (or whose host rebooted) into `exited` ones.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, IoCtx, Result};
use crate::lock::Lock;
use crate::model::{Container, State};
use crate::monitor::MonitorArgs;
use crate::{proc, spec, volumes_api, Engine};
use skiff_image::perms;

/// Name prefix of a removed container's directory tree awaiting deletion.
pub const TRASH_PREFIX: &str = ".removing-";

/// Name prefix of a container's directory tree while `create` builds it (renamed to the bare id
/// once its row is written).
pub const CREATING_PREFIX: &str = ".creating-";

/// Name of the copy of a container's record kept in its directory, for `system check --repair`.
pub const RECORD_FILE: &str = "container.json";

/// Name of the marker a user's `stop`/`kill` leaves in the container's persistent directory
/// (docker's `HasBeenManuallyStopped`: `unless-stopped` is not restarted at boot); a start
/// removes it.
pub const MANUAL_STOP_FILE: &str = "stopped-by-user";

/// Deletes a tree renamed aside by [`Engine::remove_files_deferred`] (best effort: a tree that
/// cannot be deleted now is retried by the next sweep).
pub fn remove_trash(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}

/// A wait begun with [`Engine::wait_begin`].
#[derive(Debug, Clone)]
pub struct Wait {
    name: String,
    id: String,
    condition: String,
    finished_at: String,
    code: i32,
    since: i64,
}

/// What `exec` runs.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// `-d`.
    pub detach: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// The detach sequence of an interactive tty (empty: docker's default, ctrl-p ctrl-q).
    pub detach_keys: Vec<u8>,
}

fn signal(s: &str) -> Result<i32> {
    skiff_runtime::util::parse_signal(s).map_err(|_| Error::Invalid(format!("Invalid signal: {s}")))
}

/// Docker's go-units duration ("5 seconds", "About a minute", ...).
pub fn human_duration(since_rfc3339: &str) -> String {
    let secs = skiff_image::time::parse_rfc3339(since_rfc3339).unwrap_or(0);
    let s = skiff_image::time::ago(secs);
    s.strip_suffix(" ago").unwrap_or(&s).to_string()
}

/// Docker's STATUS column: `Up 5 seconds`, `Up 2 minutes (Paused)`, `Exited (0) 3 seconds ago`,
/// `Created`, `Restarting (1) 2 seconds ago`; a running container with a healthcheck shows its
/// `health` status too: `Up 5 seconds (healthy)`, `Up 1 second (health: starting)`.
pub fn status_text(c: &Container, health: Option<&str>) -> String {
    let st = &c.state;
    match st.status.as_str() {
        "running" => match health {
            Some(crate::health::STARTING) => {
                format!("Up {} (health: starting)", human_duration(&st.started_at))
            }
            Some(h) => format!("Up {} ({h})", human_duration(&st.started_at)),
            None => format!("Up {}", human_duration(&st.started_at)),
        },
        "paused" => format!("Up {} (Paused)", human_duration(&st.started_at)),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(&st.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(&st.finished_at)
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

fn read_exit_file(p: &Path) -> Option<(i32, bool, String)> {
    let s = std::fs::read_to_string(p).ok()?;
    let mut it = s.split_whitespace();
    let code = it.next()?.parse().ok()?;
    let oom = it.next()? == "1";
    let t = it.next().unwrap_or("").to_string();
    Some((code, oom, t))
}

impl Engine {
    /// Appends a container event (docker's attributes) to the event log; best effort.
    pub fn event(&self, c: &Container, action: &str, extra: &[(&str, &str)]) {
        let ev = crate::events::container_event(
            action,
            &c.id,
            &c.name,
            &c.image_ref,
            &c.config.labels,
            extra,
        );
        let _ = crate::events::emit(&self.root, &ev);
    }

    /// Appends several container events with one write ([`crate::events::emit_all`]).
    fn events(&self, c: &Container, evs: &[(&str, &[(&str, &str)])]) {
        let evs: Vec<_> = evs
            .iter()
            .map(|(action, extra)| {
                crate::events::container_event(
                    action,
                    &c.id,
                    &c.name,
                    &c.image_ref,
                    &c.config.labels,
                    extra,
                )
            })
            .collect();
        let _ = crate::events::emit_all(&self.root, &evs);
    }

    pub(crate) fn lock(&self, id: &str) -> Result<Lock> {
        if !self.lock_path(id).exists() {
            return Err(Error::NoSuchContainer(id.into()));
        }
        Lock::acquire(&self.lock_path(id)).map_err(|_| Error::NoSuchContainer(id.into()))
    }

    fn must_get(&self, id: &str) -> Result<Container> {
        self.get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.into()))
    }

    /// The container named by `s` (id, prefix or name), reconciled with its monitor.
    pub fn container(&self, s: &str) -> Result<Container> {
        let id = self.resolve_id(s)?;
        let c = self.must_get(&id)?;
        self.reconcile(c)
    }

    /// The pid of container `s` (name or id), which must be running or paused: the process
    /// whose namespaces `--pid/--ipc container:X` join.
    pub fn running_pid(&self, s: &str) -> Result<i32> {
        let p = self.reconcile(self.container(s)?)?;
        match p.state.status.as_str() {
            "running" | "paused" if p.state.pid > 0 => Ok(p.state.pid),
            st => Err(Error::State(format!(
                "cannot join the namespaces of container {}: it is {st}, not running",
                p.name
            ))),
        }
    }

    /// All containers, reconciled, oldest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let raw = self.list_raw()?;
        if self.sweep_on_list {
            self.sweep();
        }
        for c in raw {
            match self.reconcile(c) {
                Ok(c) => out.push(c),
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn monitor_alive(c: &Container) -> bool {
        proc::alive(c.state.monitor_pid, c.state.monitor_start)
    }

    /// The OCI runtime binary container `id` was created with (None: the built-in one).
    pub fn external_runtime(&self, id: &str) -> Option<crate::ociruntime::External> {
        crate::ociruntime::External::load(&self.container_dir(id))
    }

    /// The live init and cgroup of container `id`, whichever runtime runs it.
    pub fn live_init(&self, id: &str) -> Result<crate::ociruntime::Live> {
        match self.external_runtime(id) {
            Some(_) => crate::ociruntime::live(&self.container_dir(id), &self.run_dir(id), id),
            None => Ok(skiff_runtime::state::State::load(&self.runtime_root(), id)?.into()),
        }
    }

    /// Deletes the runtime's state of container `id` (forced: a live init is killed).
    fn delete_runtime_state(&self, id: &str) {
        match self.external_runtime(id) {
            Some(x) => {
                x.delete(id);
                let _ = std::fs::remove_file(self.run_dir(id).join(crate::ociruntime::PID_FILE));
            }
            None => {
                let rt = self.runtime_root();
                if rt.join(id).exists() {
                    let _ = skiff_runtime::container::delete(&rt, id, true);
                }
            }
        }
    }

    /// Sends `sig` to the container's init (`all`: every process of it) through its runtime.
    fn kill_init(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        match self.external_runtime(id) {
            Some(x) => x.kill(id, sig, all),
            None => Ok(skiff_runtime::container::kill(
                &self.runtime_root(),
                id,
                sig,
                all,
            )?),
        }
    }

    /// If `c` claims to be running but its monitor is gone, kill what is left, record the exit
    /// (from the monitor's exit file, else 137 when we had to kill it, else 255) and unmount.
    pub fn reconcile(&self, c: Container) -> Result<Container> {
        if !c.is_active() || Self::monitor_alive(&c) {
            return Ok(c);
        }
        let Some(_l) = Lock::try_acquire(&self.lock_path(&c.id))? else {
            return Ok(c);
        };
        self.reconcile_locked(&c.id)
    }

    pub(crate) fn reconcile_locked(&self, id: &str) -> Result<Container> {
        let mut c = self.must_get(id)?;
        if !c.is_active() || Self::monitor_alive(&c) {
            return Ok(c);
        }
        let mut killed = false;
        if let Ok(st) = self.live_init(id) {
            if st.init_alive() {
                let _ = st.cgroup.thaw();
                let _ = st.cgroup.kill_all(libc::SIGKILL);
                // SAFETY: kill with integer arguments.
                unsafe { libc::kill(st.pid, libc::SIGKILL) };
                killed = true;
            }
            self.delete_runtime_state(id);
        }
        // What the dead monitor would have undone at the exit: the namespace's bind mount (the
        // kernel then drops the namespace and its veths) and the published ports' nft elements.
        self.detach_network(id);
        let dir = self.container_dir(id);
        let (code, oom, finished) = match read_exit_file(&dir.join("exit")) {
            Some(x) => x,
            None => (if killed { 137 } else { 255 }, false, proc::now()),
        };
        proc::unmount_container(&dir);
        if c.host_config.auto_remove {
            self.remove_files(id, true)?;
            return Err(Error::NoSuchContainer(id.into()));
        }
        c.state = State {
            status: "exited".into(),
            exit_code: code,
            oom_killed: oom,
            started_at: c.state.started_at.clone(),
            finished_at: if finished.is_empty() {
                proc::now()
            } else {
                finished
            },
            ..Default::default()
        };
        self.set_state(id, &c.state)?;
        Ok(c)
    }

    /// Starts a created or stopped container: mounts its rootfs, writes config.json and spawns its
    /// monitor; `attach` is a socket the monitor treats as an attached client from the first byte.
    /// Returns the init's pid. A container that is already running is left alone (pid returned).
    pub fn start(&self, s: &str, attach: Option<OwnedFd>) -> Result<i32> {
        self.start_with(s, attach, None, None)
    }

    /// [`Engine::start`] with a monitor started beforehand ([`prespawn_monitor`], which took
    /// the attach socket if there is one).
    pub fn start_prespawned(&self, s: &str, monitor: PendingMonitor) -> Result<i32> {
        self.start_with(s, None, Some(monitor), None)
    }

    /// Starts a container `run` has just made with [`crate::create::create_prepared`] (its
    /// rootfs mounted, its spec built) through a prespawned monitor. When the engine fails to
    /// start it (exit 125), the container is removed again, volumes and all, so a failed `run`
    /// leaves nothing; when its program cannot be run (126/127) it stays `Created`, as docker
    /// keeps it, unless it is `--rm`.
    pub fn start_new(
        &self,
        c: &Container,
        monitor: PendingMonitor,
        prepared: crate::create::Prepared,
    ) -> Result<i32> {
        match self.start_with(&c.id, None, Some(monitor), Some(prepared)) {
            Err(err) if err.exit_code() == 125 || c.host_config.auto_remove => {
                // (A --rm container the monitor reported on is already gone: no lock file.)
                if let Ok(_l) = self.lock(&c.id) {
                    let _ = self.remove_files(&c.id, true);
                }
                Err(err)
            }
            r => r,
        }
    }

    fn start_with(
        &self,
        s: &str,
        attach: Option<OwnedFd>,
        pending: Option<PendingMonitor>,
        prepared: Option<crate::create::Prepared>,
    ) -> Result<i32> {
        let id = self.resolve_id(s)?;
        let _l = self.lock(&id)?;
        let c = self.reconcile_locked(&id)?;
        self.start_locked(c, attach, pending, prepared)
    }

    /// [`crate::boot`]'s start of one container: under the container's lock, reconciled, and only
    /// when its restart policy says docker's daemon would start it now. True when it started.
    pub(crate) fn start_at_boot(&self, id: &str) -> Result<bool> {
        let _l = self.lock(id)?;
        let c = self.reconcile_locked(id)?;
        let manual = self.manual_stop_marker(id).exists();
        if !crate::boot::should_start_at_boot(&c, manual) {
            return Ok(false);
        }
        self.start_locked(c, None, None, None)?;
        Ok(true)
    }

    /// Starts `c` (reconciled, its lock held by the caller): docker's `containerStart` with
    /// `resetRestartManager`, so the restart count starts over and the user's stop is forgotten.
    fn start_locked(
        &self,
        c: Container,
        attach: Option<OwnedFd>,
        pending: Option<PendingMonitor>,
        prepared: Option<crate::create::Prepared>,
    ) -> Result<i32> {
        let id = c.id.clone();
        match c.state.status.as_str() {
            "running" | "paused" | "restarting" => return Ok(c.state.pid),
            "removing" | "dead" => {
                return Err(Error::State(format!(
                    "container {} is marked for removal and cannot be started",
                    c.name
                )))
            }
            _ => {}
        }
        let dir = self.container_dir(&id);
        let rootfs = dir.join("rootfs");
        let spec = match prepared {
            // Mounted and built by create_prepared, under this same lock file.
            Some(p) => p.spec,
            None => {
                if !proc::is_mountpoint(&rootfs) {
                    let lowers: Vec<std::path::PathBuf> =
                        c.lower_dirs.iter().map(std::path::PathBuf::from).collect();
                    // A --rm container's upper layer is thrown away when it exits: skip the
                    // writeback (and the sync on unmount) that only a kept container needs;
                    // --userns auto: the layers' owners shifted into its slice.
                    crate::create::mount_rootfs(
                        &lowers,
                        &dir,
                        &rootfs,
                        c.host_config.extra.userns_slice,
                        c.host_config.auto_remove,
                    )?;
                }
                match spec::build(&c, &dir, &rootfs, self.netns_path(&c), &|peer| {
                    self.running_pid(peer)
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        proc::unmount(&rootfs);
                        return Err(e);
                    }
                }
            }
        };
        if c.host_config.extra.ipc_mode == "shareable" {
            if let Err(e) = proc::mount_shm(&dir, c.host_config.extra.shm_size) {
                proc::unmount_container(&dir);
                return Err(Error::Other(format!(
                    "container {}: mount its shareable /dev/shm: {e}",
                    c.name
                )));
            }
        }
        let data = serde_json::to_vec(&spec).map_err(|e| Error::Other(e.to_string()))?;
        // 0600: the environment in it is the container's secrets.
        perms::write_file(&dir.join("config.json"), &data, perms::PRIVATE_FILE)
            .ctx(|| format!("write {}/config.json", dir.display()))?;
        let _ = std::fs::remove_file(dir.join("exit"));
        let _ = std::fs::remove_file(dir.join(MANUAL_STOP_FILE));
        let run = self.run_dir(&id);
        let _ = std::fs::remove_dir_all(&run);
        perms::mkdir(&run, perms::PRIVATE_DIR).ctx(|| format!("create {}", run.display()))?;
        let logcfg = &c.host_config.log_config.config;
        let local_log = c.host_config.log_config.kind == "local";
        let margs = MonitorArgs {
            root: self.root.clone(),
            runroot: self.runroot.clone(),
            id: id.clone(),
            tty: c.config.tty,
            stdin: c.config.open_stdin,
            stdin_once: c.config.stdin_once,
            restart: c.host_config.restart_policy.name.clone(),
            max_retries: c.host_config.restart_policy.maximum_retry_count,
            auto_remove: c.host_config.auto_remove,
            log_max_size: logcfg
                .get("max-size")
                .and_then(|s| spec::parse_size(s).ok())
                .unwrap_or(if local_log { 20 << 20 } else { 0 }) as u64,
            log_max_file: logcfg
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(if local_log { 5 } else { 1 }),
            log_none: c.host_config.log_config.kind == "none",
            attach_fd: attach.is_some() || pending.as_ref().is_some_and(|p| p.attach),
            restarts: 0,
            health: crate::health::Probe::from_config(c.config.healthcheck.as_ref()),
        };
        // The network is up before the container's first instruction, as with docker.
        // (A failed attach undoes itself; start_new removes a failed `run`'s container.)
        self.attach_network(&c)?;
        let spawned = match pending {
            Some(p) => p.go(&margs),
            None => spawn_monitor(&margs, attach),
        };
        match spawned {
            Ok(pid) => Ok(pid),
            Err(err) => {
                self.detach_network(&id);
                if c.host_config.auto_remove {
                    // The monitor cannot take our lock to honour --rm; do it here.
                    let _ = self.remove_files(&id, true);
                }
                Err(err)
            }
        }
    }

    /// The monitor must not restart the container after this run (docker's `ExitOnNext`).
    fn mark_no_restart(&self, id: &str) {
        let run = self.run_dir(id);
        if run.is_dir() {
            let _ = perms::write_file(&run.join("norestart"), b"", perms::PRIVATE_FILE);
        }
    }

    /// The user stopped the container (docker's `HasBeenManuallyStopped`), recorded beside its
    /// data so that it survives a reboot (see [`crate::boot`]).
    fn mark_manual_stop(&self, id: &str) {
        let dir = self.container_dir(id);
        if dir.is_dir() {
            let _ = perms::write_file(&dir.join(MANUAL_STOP_FILE), b"", perms::PRIVATE_FILE);
        }
    }

    /// `stop`: the stop signal, then SIGKILL after `timeout` seconds (container's or 10).
    pub fn stop(&self, s: &str, timeout: Option<i64>) -> Result<()> {
        let c = self.container(s)?;
        if !c.is_active() {
            return Ok(());
        }
        self.mark_no_restart(&c.id);
        self.mark_manual_stop(&c.id);
        let t = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let sig = match &c.config.stop_signal {
            Some(s) => signal(s)?,
            None => libc::SIGTERM,
        };
        let st = self.live_init(&c.id).ok();
        if c.state.status == "paused" {
            if let Some(st) = &st {
                let _ = st.cgroup.kill_all(libc::SIGKILL);
                let _ = st.cgroup.thaw();
            }
        } else if t != 0 {
            let _ = self.kill_init(&c.id, sig, false);
        }
        let (mp, ms) = (c.state.monitor_pid, c.state.monitor_start);
        let gone = match t {
            t if t < 0 => proc::wait_gone(mp, ms, Duration::from_secs(u32::MAX as u64)),
            0 => false,
            t => proc::wait_gone(mp, ms, Duration::from_secs(t as u64)),
        };
        if !gone {
            let _ = self.kill_init(&c.id, libc::SIGKILL, true);
            let _ = self.kill_init(&c.id, libc::SIGKILL, false);
            proc::wait_gone(mp, ms, Duration::from_secs(30));
        }
        self.event(&c, "stop", &[]);
        match self.container(&c.id) {
            Ok(_) | Err(Error::NoSuchContainer(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `kill -s SIG`.
    pub fn kill(&self, s: &str, sig: &str) -> Result<()> {
        let sig = signal(sig)?;
        let c = self.container(s)?;
        if !matches!(c.state.status.as_str(), "running" | "paused") {
            return Err(Error::State(format!(
                "cannot kill container: {s}: container {} is not running",
                c.id
            )));
        }
        // Docker's killWithSignal: SIGKILL, any signal when no stop signal is configured, or
        // the configured one ends the restart policy for this run; every kill counts as a
        // manual stop.
        let stop_sig = c.config.stop_signal.as_deref().map(signal).transpose()?;
        if sig == libc::SIGKILL || stop_sig.is_none_or(|s| s == sig) {
            self.mark_no_restart(&c.id);
        }
        self.mark_manual_stop(&c.id);
        self.kill_init(&c.id, sig, false)?;
        self.event(&c, "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    /// `rm [-f] [-v]`.
    pub fn remove(&self, s: &str, force: bool, volumes: bool) -> Result<()> {
        let id = self.resolve_id(s)?;
        let _l = self.lock(&id)?;
        let c = self.reconcile_locked(&id)?;
        if c.is_active() {
            if !force {
                let what = if c.state.status == "paused" {
                    "container is paused and must be unpaused first"
                } else {
                    "container is running: stop the container before removing or force remove"
                };
                return Err(Error::State(format!(
                    "cannot remove container \"/{}\": {what}",
                    c.name
                )));
            }
            self.mark_no_restart(&id);
            let _ = perms::write_file(
                &self.run_dir(&id).join("removing"),
                b"",
                perms::PRIVATE_FILE,
            );
            if let Ok(st) = self.live_init(&id) {
                let _ = st.cgroup.kill_all(libc::SIGKILL);
                let _ = st.cgroup.thaw();
                // SAFETY: kill with integer arguments.
                unsafe { libc::kill(st.pid, libc::SIGKILL) };
            }
            proc::wait_gone(
                c.state.monitor_pid,
                c.state.monitor_start,
                Duration::from_secs(30),
            );
        }
        self.remove_files(&id, volumes)
    }

    /// Removes everything of a stopped container (caller holds its lock): rootfs mount, runtime
    /// state, directories, database row and, with `volumes`, its anonymous volumes.
    pub fn remove_files(&self, id: &str, volumes: bool) -> Result<()> {
        if let Some(trash) = self.remove_files_deferred(id, volumes)? {
            remove_trash(&trash);
        }
        Ok(())
    }

    /// [`Engine::remove_files`] except the deletion of the container's directory tree, which is
    /// renamed aside (`containers/.removing-<id>`) and returned for the caller to delete with
    /// [`remove_trash`] once it has answered whoever waits (containerd's snapshotter removes the
    /// same way). The container is gone from the database and its name is free on return; a
    /// tree left by a killed process is deleted by the next [`Engine::sweep`].
    pub fn remove_files_deferred(&self, id: &str, volumes: bool) -> Result<Option<PathBuf>> {
        let c = self.get(id)?;
        let dir = self.container_dir(id);
        proc::unmount_container(&dir);
        self.delete_runtime_state(id);
        let _ = std::fs::remove_dir_all(self.run_dir(id));
        if c.as_ref()
            .is_some_and(|c| c.host_config.extra.userns_slice.is_some())
        {
            self.release_userns_slice(id);
        }
        if c.as_ref()
            .is_some_and(|c| crate::network::is_bridge(&c.host_config.network_mode))
        {
            self.release_network(id)?;
        }
        if let Some(c) = &c {
            if c.mounts.iter().any(|m| m.kind == "volume") {
                volumes_api::release(self, id, volumes)?;
            }
            self.event(c, "destroy", &[]);
        }
        let trash = self
            .root
            .join("containers")
            .join(format!("{TRASH_PREFIX}{id}"));
        let moved = match std::fs::rename(&dir, &trash) {
            Ok(()) => Some(trash),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => {
                // Keep the container (row included) rather than half-remove it.
                std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
                None
            }
        };
        self.delete_row(id)?;
        let _ = std::fs::remove_file(self.lock_path(id));
        Ok(moved)
    }

    /// Removes what killed processes left, and only what is positively marked as garbage:
    /// trees renamed aside for removal (`.removing-<id>`) and trees of a `create` that died
    /// before it finished (`.creating-<id>` whose lock nobody holds; rolled forward instead
    /// when its row was already written). A container directory the database lacks is never
    /// removed here: a lost database is repaired from those directories (`skiff system check
    /// --repair`), never "cleaned".
    pub fn sweep(&self) {
        let Ok(rd) = std::fs::read_dir(self.root.join("containers")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TRASH_PREFIX) {
                // A removal whose process died before it deleted the tree (or one in progress:
                // deleting it twice is harmless).
                remove_trash(&e.path());
                continue;
            }
            let Some(id) = name.strip_prefix(CREATING_PREFIX) else {
                continue;
            };
            if !crate::names::is_full_id(id) {
                continue;
            }
            let lock = self.lock_path(id);
            let _held = if lock.exists() {
                match Lock::try_acquire(&lock) {
                    Ok(Some(l)) => Some(l),
                    // A create in progress (or a lock we cannot read: leave it alone).
                    _ => continue,
                }
            } else {
                None
            };
            let dir = self.container_dir(id);
            match self.get(id) {
                Ok(Some(_)) if !dir.exists() => {
                    let _ = std::fs::rename(e.path(), &dir);
                }
                Ok(None) => {
                    proc::unmount_container(&e.path());
                    let _ = std::fs::remove_dir_all(e.path());
                    let _ = std::fs::remove_file(&lock);
                }
                _ => {}
            }
        }
    }

    /// `wait`: blocks until the container is stopped; returns its exit code.
    pub fn wait(&self, s: &str) -> Result<i32> {
        let id = self.resolve_id(s)?;
        loop {
            let c = match self.get(&id)? {
                Some(c) => self.reconcile(c)?,
                None => return Err(Error::NoSuchContainer(s.into())),
            };
            if c.is_active() {
                proc::wait_gone(
                    c.state.monitor_pid,
                    c.state.monitor_start,
                    Duration::from_secs(1),
                );
                continue;
            }
            if c.state.status == "created" && c.state.error.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            return Ok(c.state.exit_code);
        }
    }

    /// `wait --condition`: docker's wait conditions. `not-running` returns at once for a
    /// container that is not running (created, exited), `next-exit` waits for its next exit
    /// (through a restart), `removed` until it is removed; each returns the last exit code.
    pub fn wait_condition(&self, s: &str, condition: &str) -> Result<i32> {
        let w = self.wait_begin(s, condition)?;
        self.wait_end(w)
    }

    /// The first half of [`Engine::wait_condition`]: checks the condition and records the state
    /// to wait from, so that an API server can answer the request's headers before the client
    /// starts the container (docker's `run` waits, then starts).
    pub fn wait_begin(&self, s: &str, condition: &str) -> Result<Wait> {
        if !matches!(condition, "not-running" | "next-exit" | "removed") {
            return Err(Error::Invalid(format!(
                "invalid condition: \"{condition}\" (must be one of not-running, next-exit, removed)"
            )));
        }
        let id = self.resolve_id(s)?;
        let first = self.container(&id)?;
        Ok(Wait {
            name: s.to_string(),
            id,
            condition: condition.to_string(),
            finished_at: first.state.finished_at.clone(),
            code: first.state.exit_code,
            since: crate::events::now_nano(),
        })
    }

    /// The second half of [`Engine::wait_condition`]: blocks until the condition holds.
    pub fn wait_end(&self, w: Wait) -> Result<i32> {
        let Wait {
            name: s,
            id,
            condition,
            finished_at,
            mut code,
            since,
        } = w;
        let s = s.as_str();
        let condition = condition.as_str();
        let mut polls = 0u32;
        loop {
            let c = match self.get(&id)? {
                Some(c) => self.reconcile(c)?,
                // Removed between two polls: the exit it may have had since is in the event log.
                None if condition == "removed" => {
                    let last_die = crate::events::read(&self.root, since, i64::MAX)
                        .unwrap_or_default()
                        .into_iter()
                        .rev()
                        .filter(|ev| ev.id == id && ev.action == "die")
                        .find_map(|ev| ev.attributes.get("exitCode")?.parse().ok());
                    return Ok(last_die.unwrap_or(code));
                }
                None => return Err(Error::NoSuchContainer(s.into())),
            };
            code = c.state.exit_code;
            match condition {
                "not-running" if !c.is_active() => return Ok(code),
                "next-exit" if c.state.finished_at != finished_at => return Ok(code),
                _ => {}
            }
            // Short-lived containers (`docker run --rm`) end within the first polls: 10 ms
            // steps for the first second, then 100 ms. While the monitor runs, a step ends
            // early when it exits (its pidfd), so the exit is seen at once.
            polls += 1;
            let step = Duration::from_millis(if polls < 100 { 10 } else { 100 });
            if c.is_active() && Self::monitor_alive(&c) {
                proc::wait_gone(c.state.monitor_pid, c.state.monitor_start, step);
            } else {
                std::thread::sleep(step);
            }
        }
    }

    /// Waits for the container to stop after the monitor said it exited (used by `run --rm`
    /// whose row is gone): true when it is gone or stopped.
    pub fn wait_settled(&self, id: &str) -> bool {
        matches!(self.get(id), Ok(None)) || matches!(self.get(id), Ok(Some(c)) if !c.is_active())
    }

    fn set_paused(&self, s: &str, pause: bool) -> Result<()> {
        let id = self.resolve_id(s)?;
        let _l = self.lock(&id)?;
        let mut c = self.reconcile_locked(&id)?;
        let want = if pause { "running" } else { "paused" };
        if c.state.status != want {
            return Err(Error::State(if pause {
                if c.state.status == "paused" {
                    format!("container {id} is already paused")
                } else {
                    format!("container {id} is not running")
                }
            } else {
                format!("container {id} is not paused")
            }));
        }
        if let Some(x) = self.external_runtime(&id) {
            x.pause(&id, pause)?;
        } else {
            let st = skiff_runtime::state::State::load(&self.runtime_root(), &id)?;
            if pause {
                st.cgroup
                    .freeze()
                    .map_err(|e| Error::Other(format!("pause {id}: {e}")))?;
            } else {
                st.cgroup
                    .thaw()
                    .map_err(|e| Error::Other(format!("unpause {id}: {e}")))?;
            }
        }
        if pause && crate::health::Probe::from_config(c.config.healthcheck.as_ref()).is_some() {
            // docker stops the checks of a paused container and calls it unhealthy.
            crate::health::mark_stopped(&self.container_dir(&id));
        }
        c.state.status = if pause { "paused" } else { "running" }.into();
        c.state.paused = pause;
        self.set_state(&id, &c.state)?;
        self.event(&c, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// `pause`.
    pub fn pause(&self, s: &str) -> Result<()> {
        self.set_paused(s, true)
    }

    /// `unpause`.
    pub fn unpause(&self, s: &str) -> Result<()> {
        self.set_paused(s, false)
    }

    /// `rename OLD NEW`.
    pub fn rename(&self, s: &str, new: &str) -> Result<()> {
        let id = self.resolve_id(s)?;
        let new = crate::names::validate_name(new)?;
        let _l = self.lock(&id)?;
        let c = self.must_get(&id)?;
        if c.name == new {
            return Err(Error::Invalid(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        self.set_name(&id, &new)?;
        let mut renamed = c.clone();
        renamed.name = new;
        // Keep the on-disk copy of the record in step (best effort: the row is the truth).
        let _ = crate::create::write_record(&self.container_dir(&id), &renamed);
        self.rename_network(&id, &renamed.name);
        self.event(&renamed, "rename", &[("oldName", &format!("/{}", c.name))]);
        Ok(())
    }

    /// The init and cgroup of a running container.
    fn running_state(&self, c: &Container) -> Result<crate::ociruntime::Live> {
        if !matches!(c.state.status.as_str(), "running" | "paused") {
            return Err(Error::State(format!("container {} is not running", c.id)));
        }
        self.live_init(&c.id)
    }

    /// Pids of every process of the container (its cgroup), for `top` (docker's `top` event).
    pub fn pids(&self, s: &str) -> Result<Vec<i32>> {
        let c = self.container(s)?;
        let st = self.running_state(&c)?;
        let mut p = st
            .cgroup
            .procs()
            .map_err(|e| Error::Other(format!("container {}: {e}", c.name)))?;
        if p.is_empty() {
            p.push(st.pid);
        }
        p.sort();
        // `top` is the only reader; docker logs it.
        self.event(&c, "top", &[]);
        Ok(p)
    }

    /// Cgroup statistics of a running container.
    pub fn stats(&self, c: &Container) -> Result<skiff_cgroups::stats::Stats> {
        let st = self.running_state(c)?;
        st.cgroup
            .stats()
            .map_err(|e| Error::Other(format!("container {}: stats: {e}", c.name)))
    }

    /// `exec`: runs a process in the container with the CLI's stdio; returns how it ended (exit
    /// code 0 with `-d`). With `-t` this process relays the pty itself ([`crate::tty::relay_exec`]):
    /// live output, raw mode, window sizes, detach keys. 126/127 come back as [`Error::Start`].
    pub fn exec(&self, s: &str, req: &ExecRequest) -> Result<crate::tty::Ended> {
        let c = self.container(s)?;
        if c.state.status == "paused" {
            return Err(Error::State(format!(
                "container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if !matches!(c.state.status.as_str(), "running" | "paused") {
            return Err(Error::State(format!("container {} is not running", c.id)));
        }
        if req.cmd.is_empty() {
            return Err(Error::Invalid("exec requires at least 1 argument".into()));
        }
        // The runtime state is read once for the process template and the exec itself; the
        // seccomp filter comes from the runtime's cache by the key the container's init recorded.
        // Another OCI runtime's container: its process template is the bundle's.
        let ext = self.external_runtime(&c.id);
        let rt = self.runtime_root();
        let target = match ext {
            Some(_) => None,
            None => Some(skiff_runtime::exec::ExecTarget::load(&rt, &c.id)?),
        };
        let rootfs = self.container_dir(&c.id).join("rootfs");
        let stored = match &target {
            Some(t) => t.process().cloned(),
            None => bundle_process(&self.container_dir(&c.id)),
        };
        let mut process =
            stored.ok_or_else(|| Error::Other(format!("container {}: no stored process", c.id)))?;
        let mut env = process.env().clone().unwrap_or_default();
        exec_env(&mut env, &req.env, req.tty);
        exec_user_workdir(
            &mut process,
            &mut env,
            &rootfs,
            req.user.as_deref(),
            req.workdir.as_deref(),
        )?;
        // Docker's exec events: `exec_create: CMD ARGS` and `exec_start: CMD ARGS` with the
        // exec's id, `exec_die` with its exit code (for `-d` a small waiter process, the exec's
        // parent, records it when the process ends).
        // `exec_create` goes out with `exec_start` (or with `exec_die` when the command cannot
        // start) in one write.
        let exec_id = crate::names::new_id();
        let cmdline = format!("{} {}", req.cmd[0], req.cmd[1..].join(" "));
        let create = format!("exec_create: {cmdline}");
        let died = |code: i32| {
            self.event(
                &c,
                "exec_die",
                &[("execID", &exec_id), ("exitCode", &code.to_string())],
            );
        };
        if let Err(e) = check_executable(&rootfs, &req.cmd[0], &env) {
            let code = e.exit_code().to_string();
            self.events(
                &c,
                &[
                    (&create, &[("execID", &exec_id)]),
                    ("exec_die", &[("execID", &exec_id), ("exitCode", &code)]),
                ],
            );
            return Err(e);
        }
        self.events(
            &c,
            &[
                (&create, &[("execID", &exec_id)]),
                (&format!("exec_start: {cmdline}"), &[("execID", &exec_id)]),
            ],
        );
        process.set_env(Some(env));
        process.set_args(Some(req.cmd.clone()));
        let tty = req.tty && !req.detach;
        process.set_terminal(Some(tty));
        if tty {
            // The shell starts with the right size (docker's ConsoleSize); resizes follow.
            if let Some((rows, cols)) = crate::tty::local_size() {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(u32::from(rows))
                    .width(u32::from(cols))
                    .build()
                    .map_err(|e| Error::Other(format!("exec: console size: {e}")))?;
                process.set_console_size(Some(size));
            }
        }
        let saved = redirect_stdio(req)?;
        let (Some(target), None) = (target, &ext) else {
            let x = ext
                .as_ref()
                .expect("an external runtime when there is no target");
            let r = external_exec(x, &c.id, &self.run_dir(&c.id), &process, req, saved, &died);
            if !req.detach {
                match &r {
                    Ok(crate::tty::Ended::Exited(code)) => died(*code),
                    Err(e) => died(e.exit_code()),
                    Ok(_) => {}
                }
            }
            return r;
        };
        let opts = skiff_runtime::exec::ExecOpts {
            root: rt,
            id: c.id.clone(),
            process,
            console: skiff_runtime::container::Console::None,
            pid_file: None,
            detach: req.detach,
            preserve_fds: 0,
        };
        let ended = |r: &Result<crate::tty::Ended>| match r {
            Ok(crate::tty::Ended::Exited(code)) if !req.detach => died(*code),
            Err(e) => died(e.exit_code()),
            Ok(_) => {}
        };
        if req.detach {
            let r = detached_exec(&target, opts, &died);
            drop(saved);
            return r.map(|()| crate::tty::Ended::Exited(0)).map_err(start_err);
        }
        if !tty {
            let r = skiff_runtime::exec_helper::exec(&target, opts);
            drop(saved);
            let r = r.map(crate::tty::Ended::Exited).map_err(start_err);
            ended(&r);
            return r;
        }
        let spawned = skiff_runtime::exec_helper::spawn(&target, opts);
        drop(saved);
        let spawned = match spawned.map_err(start_err) {
            Ok(s) => s,
            Err(e) => {
                died(e.exit_code());
                return Err(e);
            }
        };
        let r = relay_spawned(spawned, "exec", &c.name, req.interactive, &req.detach_keys);
        ended(&r);
        r
    }
}

/// A process that failed to start in a container, as [`Error::Start`] with the exit code docker
/// gives that failure (126 cannot invoke, 127 not found).
pub(crate) fn start_err(e: impl std::fmt::Display) -> Error {
    let msg = e.to_string();
    let code = crate::error::start_code(&msg);
    Error::Start { msg, code }
}

/// The terminal of a process `what` (`exec`, `debug`) spawned in container `name` relayed to
/// this process's stdio until it ends or the detach keys (docker's default when empty) come.
pub(crate) fn relay_spawned(
    spawned: skiff_runtime::exec::Spawned,
    what: &str,
    name: &str,
    interactive: bool,
    detach_keys: &[u8],
) -> Result<crate::tty::Ended> {
    let Some(master) = spawned.master else {
        return Err(Error::Other(format!(
            "{what} in {name}: no terminal came back from the container"
        )));
    };
    relay(spawned.pid, master, interactive, detach_keys)
}

/// [`crate::tty::relay_exec`] with docker's default detach keys when none were given.
fn relay(
    pid: i32,
    master: OwnedFd,
    interactive: bool,
    detach_keys: &[u8],
) -> Result<crate::tty::Ended> {
    let keys = if detach_keys.is_empty() {
        crate::tty::DEFAULT_DETACH_KEYS
    } else {
        detach_keys
    };
    crate::tty::relay_exec(pid, master, interactive, keys)
}

/// The `process` of a bundle's config.json (an external runtime's container).
pub(crate) fn bundle_process(dir: &Path) -> Option<oci_spec::runtime::Process> {
    let spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
    spec.process().clone()
}

/// `exec` through another OCI runtime: `<runtime> exec --process F ID` with the CLI's stdio
/// (its exit code is the process's); `-d` with `--detach --pid-file` from a waiter process that
/// records the exit; `-t` with `--detach --console-socket --pid-file`, the CLI a subreaper so
/// that the process becomes its child, relayed as a built-in exec is.
fn external_exec(
    x: &crate::ociruntime::External,
    id: &str,
    run_dir: &Path,
    process: &oci_spec::runtime::Process,
    req: &ExecRequest,
    saved: SavedStdio,
    died: &dyn Fn(i32),
) -> Result<crate::tty::Ended> {
    use std::process::Stdio;
    let tag = crate::names::new_id();
    let pf = run_dir.join(format!("exec-{}.json", &tag[..12]));
    let pid_file = run_dir.join(format!("exec-{}.pid", &tag[..12]));
    let data = serde_json::to_vec(process).map_err(|e| Error::Other(e.to_string()))?;
    perms::write_file(&pf, &data, perms::PRIVATE_FILE).ctx(|| format!("write {}", pf.display()))?;
    struct Cleanup(Vec<PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let log = run_dir.join(format!("exec-{}.log", &tag[..12]));
    let _cleanup = Cleanup(vec![pf.clone(), pid_file.clone(), log.clone()]);
    // With -d the process inherits the runtime's stdio (/dev/null): its error is read from
    // its log instead.
    let mut cmd = x.command("exec", req.detach.then_some(log.as_path()));
    cmd.arg("--process").arg(&pf);
    let tty = req.tty && !req.detach;
    if !req.detach && !tty {
        cmd.arg(id);
        let st = cmd.status().map_err(|e| x.failed("exec", &e.to_string()))?;
        drop(saved);
        return Ok(crate::tty::Ended::Exited(st.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)
        })));
    }
    cmd.arg("--detach").arg("--pid-file").arg(&pid_file);
    let read_pid = || -> Result<i32> {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| x.failed("exec", "it wrote no pid file"))
    };
    if req.detach {
        cmd.arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The waiter is forked while fds 0-2 are still /dev/null: it must not hold the CLI's.
        let r = external_detached_exec(x, cmd, &log, &read_pid, died);
        drop(saved);
        return r.map(|()| crate::tty::Ended::Exited(0)).map_err(start_err);
    }
    // -t: the process is reparented to this (short-lived) CLI once the runtime exits.
    // SAFETY: prctl with integer arguments on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let (_dir, listener, path) = crate::ociruntime::console_listener(run_dir)?;
    cmd.arg("--tty").arg("--console-socket").arg(&path).arg(id);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| x.failed("exec", &e.to_string()))?;
    let master = crate::ociruntime::accept_master(&listener, &mut child);
    drop(listener);
    let _ = std::fs::remove_file(run_dir.join("console.sock"));
    let out = child
        .wait_with_output()
        .map_err(|e| x.failed("exec", &e.to_string()))?;
    drop(saved);
    if !out.status.success() {
        let msg = crate::ociruntime::last_line(&String::from_utf8_lossy(&out.stderr));
        return Err(start_err(x.failed("exec", &msg)));
    }
    let pid = read_pid()?;
    let master = master.ok_or_else(|| {
        Error::Other(format!(
            "exec in {id}: no terminal came back from runtime {}",
            x.name
        ))
    })?;
    // As skiff_runtime::exec::spawn leaves it for relay_exec: every signal blocked (the relay
    // reads them from a signalfd), and an exit that came before that still seen.
    // SAFETY: sigset manipulation on a set we own; raise with an integer argument.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::raise(libc::SIGCHLD);
    }
    relay(pid, master, req.interactive, &req.detach_keys)
}

/// `exec -d` through another runtime: a waiter process (a subreaper in its own session) runs
/// `<runtime> exec --detach`, reports whether it started, then waits for the process and
/// records its exit (`exec_die`).
fn external_detached_exec(
    x: &crate::ociruntime::External,
    mut cmd: std::process::Command,
    log: &Path,
    read_pid: &dyn Fn() -> Result<i32>,
    died: &dyn Fn(i32),
) -> Result<()> {
    let start = || {
        // SAFETY: prctl with integer arguments on this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        match cmd.status() {
            Ok(st) if st.success() => read_pid().map_err(|e| e.to_string()),
            Ok(_) => Err(x
                .failed(
                    "exec",
                    &crate::ociruntime::log_error(log).unwrap_or_else(|| "failed".into()),
                )
                .to_string()),
            Err(e) => Err(x.failed("exec", &e.to_string()).to_string()),
        }
    };
    let wait = |pid: i32| loop {
        let mut st = 0;
        // SAFETY: waiting for any child (the exec'd process was reparented to us).
        let p = unsafe { libc::waitpid(-1, &mut st, 0) };
        if p == pid {
            break skiff_runtime::util::status_code(st);
        }
        if p < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break 255;
        }
    };
    fork_waiter(start, wait, died).map_err(|e| match e {
        WaiterError::Sys(what, errno) => Error::Other(format!("exec -d: {what}: {errno}")),
        WaiterError::Start(msg) => Error::Other(msg),
    })
}

/// `exec -e`'s entries merged into a process environment (`KEY` alone takes this process's
/// value, or is skipped), and `TERM=xterm` with a tty unless set.
pub(crate) fn exec_env(env: &mut Vec<String>, extra: &[String], tty: bool) {
    for e in extra {
        let kv = if e.contains('=') {
            e.clone()
        } else if let Ok(v) = std::env::var(e) {
            format!("{e}={v}")
        } else {
            continue;
        };
        let key = kv.split_once('=').map(|x| x.0).unwrap_or("").to_string();
        env.retain(|x| x.split_once('=').map(|y| y.0) != Some(key.as_str()));
        env.push(kv);
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
}

/// `exec -u`/`-w`: the user resolved in the container's rootfs (with its groups and HOME) and an
/// absolute working directory, applied to the exec'd process.
pub(crate) fn exec_user_workdir(
    process: &mut oci_spec::runtime::Process,
    env: &mut Vec<String>,
    rootfs: &std::path::Path,
    user: Option<&str>,
    workdir: Option<&str>,
) -> Result<()> {
    if let Some(u) = user {
        let user = spec::resolve_user(rootfs, u)?;
        let mut pu = process.user().clone();
        pu.set_uid(user.uid);
        pu.set_gid(user.gid);
        pu.set_additional_gids(Some(user.groups));
        process.set_user(pu);
        env.retain(|e| !e.starts_with("HOME="));
        let home = if user.home.is_empty() {
            "/"
        } else {
            &user.home
        };
        env.push(format!("HOME={home}"));
    }
    if let Some(w) = workdir {
        if !w.starts_with('/') {
            return Err(Error::Invalid(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
        process.set_cwd(w.into());
    }
    Ok(())
}

/// `exec -d`: forks a waiter (its own session, stdio on /dev/null, no inherited descriptor but
/// its report pipe, so it holds no lock or database handle) that starts the process as its child,
/// reports the start, waits, and calls `died` with the exit code. Returns once the process runs.
fn detached_exec(
    target: &skiff_runtime::exec::ExecTarget,
    mut opts: skiff_runtime::exec::ExecOpts,
    died: &dyn Fn(i32),
) -> std::result::Result<(), skiff_runtime::Error> {
    opts.detach = false;
    let start = || skiff_runtime::exec_helper::spawn(target, opts).map_err(|e| e.to_string());
    let wait = |s: skiff_runtime::exec::Spawned| {
        skiff_runtime::forward::wait(s.pid, s.master).unwrap_or(255)
    };
    fork_waiter(start, wait, died).map_err(|e| match e {
        WaiterError::Sys(what, errno) => skiff_runtime::Error::Sys {
            what: format!("exec -d: {what}"),
            errno,
        },
        WaiterError::Start(msg) => skiff_runtime::Error::Other(msg),
    })
}

/// Why [`fork_waiter`] returned without a started process.
enum WaiterError {
    /// Its pipe or fork failed (`pipe`, `fork`).
    Sys(&'static str, nix::errno::Errno),
    /// The process did not start: the waiter's message.
    Start(String),
}

/// The waiter of an `exec -d`: a forked child in its own session holding no inherited
/// descriptor but its report pipe (so no lock, database handle or the CLI's stdio) that runs
/// `start`, reports whether it started, then `wait`s for the process and calls `died` with its
/// exit code. Returns once the waiter reported the start.
fn fork_waiter<P>(
    start: impl FnOnce() -> std::result::Result<P, String>,
    wait: impl FnOnce(P) -> i32,
    died: &dyn Fn(i32),
) -> std::result::Result<(), WaiterError> {
    use std::io::Write;
    let (r, w) = nix::unistd::pipe().map_err(|e| WaiterError::Sys("pipe", e))?;
    // SAFETY: the CLI is single-threaded here; the child only runs `start` and `wait`, writes to
    // the pipe and calls `died`, and leaves with _exit (no destructors run).
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(WaiterError::Sys("fork", e)),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            let keep = w.as_raw_fd();
            // SAFETY: closes descriptors this child has no use for (the CLI's saved stdio among
            // them: the waiter must not hold its caller's pipes); the pipe's write end is kept.
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
                libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
            }
            let _ = nix::unistd::setsid();
            let mut w = std::fs::File::from(w);
            let started = match start() {
                Ok(p) => {
                    let _ = w.write_all(b"0");
                    p
                }
                Err(e) => {
                    let _ = w.write_all(format!("1{e}").as_bytes());
                    // SAFETY: leaving the forked child without running the parent's destructors.
                    unsafe { libc::_exit(1) };
                }
            };
            drop(w);
            died(wait(started));
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            match msg.strip_prefix('1') {
                None if msg == "0" => Ok(()),
                Some(e) => Err(WaiterError::Start(e.to_string())),
                None => Err(WaiterError::Start(
                    "exec -d: the waiter process died before starting the process".into(),
                )),
            }
        }
    }
}

/// Restores fds 0-2 when dropped.
pub(crate) struct SavedStdio(Vec<(i32, OwnedFd)>);

impl Drop for SavedStdio {
    fn drop(&mut self) {
        for (t, fd) in &self.0 {
            // SAFETY: restoring a standard fd from a dup we own.
            unsafe { libc::dup2(fd.as_raw_fd(), *t) };
        }
    }
}

/// `exec` without `-i` reads /dev/null; `-d` writes to /dev/null too.
pub(crate) fn redirect_stdio(req: &ExecRequest) -> Result<SavedStdio> {
    let mut saved = Vec::new();
    let targets: &[i32] = match (req.detach, req.interactive) {
        (true, _) => &[0, 1, 2],
        (false, false) => &[0],
        (false, true) => &[],
    };
    if targets.is_empty() {
        return Ok(SavedStdio(saved));
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    for &t in targets {
        // SAFETY: F_DUPFD_CLOEXEC on a standard fd; the result is owned below.
        let d = unsafe { libc::fcntl(t, libc::F_DUPFD_CLOEXEC, 10) };
        if d >= 0 {
            // SAFETY: d is a fresh descriptor owned by nobody else.
            saved.push((t, unsafe { std::os::fd::FromRawFd::from_raw_fd(d) }));
        }
        // SAFETY: dup2 of /dev/null onto a standard fd.
        unsafe { libc::dup2(null.as_raw_fd(), t) };
    }
    Ok(SavedStdio(saved))
}

/// Finds `arg0` in the container (PATH from `env`) and reports docker's 127/126 before exec.
fn check_executable(rootfs: &Path, arg0: &str, env: &[String]) -> Result<()> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let Ok(root) = skiff_image::sys::open_dir(rootfs) else {
        return Ok(());
    };
    let stat = |p: &str| -> Option<std::fs::Metadata> {
        let fd = skiff_image::sys::open_in_root(
            root.as_fd(),
            Path::new(p.trim_start_matches('/')),
            libc::O_PATH,
            0,
        )
        .ok()?;
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
    };
    let check = |p: &str, md: std::fs::Metadata| -> Result<()> {
        if md.is_dir() || md.permissions().mode() & 0o111 == 0 {
            let why = if md.is_dir() {
                "is a directory"
            } else {
                "permission denied"
            };
            return Err(Error::Start {
                msg: format!("exec: \"{p}\": {why}"),
                code: 126,
            });
        }
        Ok(())
    };
    if arg0.contains('/') {
        return match stat(arg0) {
            Some(md) => check(arg0, md),
            None => Err(Error::Start {
                msg: format!("exec: \"{arg0}\": stat {arg0}: no such file or directory"),
                code: 127,
            }),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(spec::DEFAULT_PATH);
    for d in path.split(':') {
        let cand = format!("{}/{arg0}", d.trim_end_matches('/'));
        if let Some(md) = stat(&cand) {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(());
            }
        }
    }
    Err(Error::Start {
        msg: format!("exec: \"{arg0}\": executable file not found in $PATH"),
        code: 127,
    })
}

/// A close-on-exec duplicate of `fd` numbered 10 or higher (the original is closed).
fn above_stdio(fd: OwnedFd) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one or -1.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    // SAFETY: a fresh descriptor we now own.
    (n >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(n) })
}

/// A `skiff monitor` started before its container exists, so that its exec and start-up run on
/// the other CPU while `run` creates the container, mounts its rootfs and writes its bundle. It
/// waits for the rest of its arguments ([`PendingMonitor::go`]); dropping this ends it.
pub struct PendingMonitor {
    sock: OwnedFd,
    attach: bool,
}

impl PendingMonitor {
    /// Hands the monitor its container; returns like [`Engine::start`] (the init's pid).
    fn go(self, a: &MonitorArgs) -> Result<i32> {
        let line = format!("{}\n", a.deferred_args().join(" "));
        let mut f = std::fs::File::from(self.sock);
        std::io::Write::write_all(&mut f, line.as_bytes())
            .ctx(|| format!("container {}: hand over to the monitor", a.id))?;
        read_report(f, &a.id)
    }
}

/// Starts a monitor for a container `run` is about to create (see [`PendingMonitor`]); `attach`
/// is the foreground CLI's pre-connected attach socket.
pub fn prespawn_monitor(
    root: &Path,
    runroot: &Path,
    attach: Option<OwnedFd>,
) -> Result<PendingMonitor> {
    let mut args: Vec<String> = vec![
        "--root".into(),
        root.to_string_lossy().into_owned(),
        "--runroot".into(),
        runroot.to_string_lossy().into_owned(),
    ];
    let has_attach = attach.is_some();
    if has_attach {
        args.push("--attach-fd".into());
    }
    Ok(PendingMonitor {
        sock: exec_monitor(&args, attach)?,
        attach: has_attach,
    })
}

/// Spawns `skiff monitor` for a created container and waits for its report: the init's pid, or
/// the start error (126/127/125).
fn spawn_monitor(a: &MonitorArgs, attach: Option<OwnedFd>) -> Result<i32> {
    let sock = exec_monitor(&a.to_args(), attach)?;
    read_report(std::fs::File::from(sock), &a.id)
}

/// Reads a monitor's report from our end of its fd 3.
fn read_report(mut f: std::fs::File, id: &str) -> Result<i32> {
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    let s = s.trim();
    let (code, rest) = s.split_once(' ').unwrap_or((s, ""));
    match code.parse::<i32>() {
        Ok(0) => Ok(rest.trim().parse().unwrap_or(0)),
        Ok(code) => Err(Error::Start {
            msg: rest.to_string(),
            code,
        }),
        Err(_) => Err(Error::Start {
            msg: format!("container {id}: the monitor exited before the container started"),
            code: 125,
        }),
    }
}

/// Executes `skiff monitor ARGS` in its own session with fd 3 = one end of a socket pair (the
/// other is returned: arguments go in, the report comes out) and fd 4 = `attach`.
///
/// `posix_spawn` (a vfork, so the cost does not grow with this process's size) rather than a
/// double fork: the monitor is our child until we exit and is then reparented; nothing waits
/// for it but the read of its report.
fn exec_monitor(margs: &[String], attach: Option<OwnedFd>) -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").ctx(|| "find the skiff binary".into())?;
    // Exec the monitor straight from a read-only view of the binary, so it need not re-exec itself
    // for CVE-2019-5736 (one exec instead of two); fall back to the path.
    // Every descriptor the child's file actions read sits above the ones they write (0-4), so
    // no dup2 overwrites a source (or the exe path) before it is used.
    let ro = skiff_runtime::sealed::readonly_self().and_then(above_stdio);
    let exe = match &ro {
        Some(fd) => std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        // Already running from a sealed view (`debug` starting a temporary container): its
        // path is no file on the host, but the view itself can be executed again.
        None if skiff_runtime::sealed::running_sealed() => "/proc/self/exe".into(),
        None => exe,
    };
    let spawn_err = |what: &str, rc: i32| Error::Io {
        what: format!("spawn the monitor: {what}"),
        source: std::io::Error::from_raw_os_error(rc),
    };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::Io {
        what: "monitor socket".into(),
        source: e,
    })?;
    let high = |fd: OwnedFd| {
        above_stdio(fd).ok_or_else(|| Error::Io {
            what: "monitor descriptors".into(),
            source: std::io::Error::last_os_error(),
        })
    };
    let (ours, theirs) = (OwnedFd::from(ours), high(OwnedFd::from(theirs))?);
    let attach = attach.map(high).transpose()?;
    let cstr = |s: &str| std::ffi::CString::new(s).map_err(|e| Error::Other(e.to_string()));
    let path = cstr(&exe.to_string_lossy())?;
    let mut args = vec![cstr("skiff")?, cstr("monitor")?];
    for x in margs {
        args.push(cstr(x)?);
    }
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|c| c.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let env: Vec<std::ffi::CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            std::ffi::CString::new(kv).ok()
        })
        .collect();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    let null = high(OwnedFd::from(null))?;
    // SAFETY: the posix_spawn objects are initialised before use and destroyed on every path;
    // every pointer handed to them (paths, argv, envp) outlives the posix_spawn call.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut at: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawnattr_init(&mut at);
        let mut rc = 0;
        for t in 0..3 {
            rc |= libc::posix_spawn_file_actions_adddup2(&mut fa, null.as_raw_fd(), t);
        }
        rc |= libc::posix_spawn_file_actions_adddup2(&mut fa, theirs.as_raw_fd(), 3);
        if let Some(f) = &attach {
            rc |= libc::posix_spawn_file_actions_adddup2(&mut fa, f.as_raw_fd(), 4);
        }
        // A session of its own (no terminal signals from ours) and default signal handling
        // (this process ignores SIGPIPE; an ignored signal would stay ignored across exec).
        let mut def: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut def);
        libc::sigaddset(&mut def, libc::SIGPIPE);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        rc |= libc::posix_spawnattr_setsigdefault(&mut at, &def);
        rc |= libc::posix_spawnattr_setsigmask(&mut at, &mask);
        rc |= libc::posix_spawnattr_setflags(
            &mut at,
            libc::POSIX_SPAWN_SETSID
                | (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
        );
        let mut pid: libc::pid_t = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &fa,
                &at,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        } else {
            rc = libc::EINVAL;
        }
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut at);
        if rc != 0 {
            return Err(spawn_err(&exe.to_string_lossy(), rc));
        }
    }
    Ok(ours)
}
