//! `skiff system boot`: what docker's daemon does for restart policies when it starts, for an
//! engine without a daemon. Run at host boot (the units in `contrib/`), by `skiff serve` on start,
//! or by hand after a monitor was killed, it
//!
//! 1. sweeps what crashed processes left and the stores positively mark as garbage (removed
//!    container trees, dead creates, the image store's temp files, removed volumes);
//! 2. reconciles every container: one recorded running (or restarting) whose monitor and init are
//!    dead becomes `exited` (see [`Engine::reconcile`]);
//! 3. starts, through the ordinary start path (a new monitor each), every stopped container that
//!    docker's restore would restart (`ShouldRestart` at daemon start): `always` ones, even after
//!    a `stop`; `unless-stopped` ones unless the user stopped them (`stop`, `kill`); `on-failure[:N]`
//!    ones whose last run failed and has retries left. A container that never ran is left alone,
//!    as docker leaves it.
//!
//! It is idempotent and safe next to other commands: boots serialize on `<runroot>/boot.lock`, and
//! each decision is taken under the container's own lock, so a container another command started
//! or stopped meanwhile is judged by its new state.

use crate::error::Result;
use crate::lock::Lock;
use crate::model::Container;
use crate::Engine;

/// What a boot did.
#[derive(Debug, Default, Clone)]
pub struct BootReport {
    /// Containers found running with a dead monitor and recorded exited (full ids).
    pub reconciled: Vec<String>,
    /// Containers started by their restart policy: (full id, name).
    pub started: Vec<(String, String)>,
    /// Containers whose start failed: (name, error).
    pub failed: Vec<(String, String)>,
}

/// Whether docker's daemon, starting, would restart the stopped container `c`: docker's
/// `RestartManager.ShouldRestart(exitCode, hasBeenManuallyStopped, …)` with the container's
/// restart count, for a container that has run before.
pub fn should_start_at_boot(c: &Container, manually_stopped: bool) -> bool {
    if c.is_active() || c.state.status != "exited" || c.host_config.auto_remove {
        return false;
    }
    let p = &c.host_config.restart_policy;
    match p.name.as_str() {
        "always" => true,
        "unless-stopped" => !manually_stopped,
        "on-failure" => {
            c.state.exit_code != 0
                && (p.maximum_retry_count <= 0 || c.restart_count < p.maximum_retry_count)
        }
        _ => false,
    }
}

impl Engine {
    /// The marker a user's `stop`/`kill` leaves in the container's persistent directory
    /// (docker's `HasBeenManuallyStopped`); a start removes it.
    pub fn manual_stop_marker(&self, id: &str) -> std::path::PathBuf {
        self.container_dir(id).join(crate::ops::MANUAL_STOP_FILE)
    }

    /// `skiff system boot` (see the module documentation).
    pub fn boot(&self) -> Result<BootReport> {
        let path = self.runroot.join("boot.lock");
        let _boot = Lock::create(&path)?;
        // The image store sweeps its temp files when it finds itself idle; opening the volume
        // store sweeps removed volumes.
        if let Ok(store) = skiff_image::Store::open(&self.root) {
            drop(store);
        }
        let _ = crate::volumes::Volumes::open(&self.root);
        self.sweep();
        let mut report = BootReport::default();
        for raw in self.list_raw()? {
            let was_active = raw.is_active();
            let c = match self.reconcile(raw) {
                Ok(c) => c,
                Err(crate::Error::NoSuchContainer(_)) => continue,
                Err(e) => return Err(e),
            };
            if was_active && !c.is_active() {
                report.reconciled.push(c.id.clone());
            }
            match self.start_at_boot(&c.id) {
                Ok(true) => report.started.push((c.id.clone(), c.name.clone())),
                Ok(false) | Err(crate::Error::NoSuchContainer(_)) => {}
                Err(e) => report.failed.push((c.name.clone(), e.to_string())),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(policy: &str, max: i64, status: &str, code: i32, restarts: i64) -> Container {
        let mut c = Container::default();
        c.host_config.restart_policy.name = policy.into();
        c.host_config.restart_policy.maximum_retry_count = max;
        c.state.status = status.into();
        c.state.exit_code = code;
        c.restart_count = restarts;
        c
    }

    #[test]
    fn docker_restore_rules() {
        // always: even after a user stop.
        assert!(should_start_at_boot(
            &ctr("always", 0, "exited", 0, 0),
            true
        ));
        // unless-stopped: only when the user did not stop it.
        assert!(should_start_at_boot(
            &ctr("unless-stopped", 0, "exited", 137, 0),
            false
        ));
        assert!(!should_start_at_boot(
            &ctr("unless-stopped", 0, "exited", 0, 0),
            true
        ));
        // on-failure: a failed last run with retries left.
        assert!(should_start_at_boot(
            &ctr("on-failure", 0, "exited", 1, 9),
            false
        ));
        assert!(should_start_at_boot(
            &ctr("on-failure", 2, "exited", 1, 1),
            false
        ));
        assert!(!should_start_at_boot(
            &ctr("on-failure", 2, "exited", 1, 2),
            false
        ));
        assert!(!should_start_at_boot(
            &ctr("on-failure", 0, "exited", 0, 0),
            false
        ));
        // never a container that never ran, one still running, or one without a policy.
        assert!(!should_start_at_boot(
            &ctr("always", 0, "created", 0, 0),
            false
        ));
        assert!(!should_start_at_boot(
            &ctr("always", 0, "running", 0, 0),
            false
        ));
        assert!(!should_start_at_boot(&ctr("no", 0, "exited", 1, 0), false));
        assert!(!should_start_at_boot(&ctr("", 0, "exited", 1, 0), false));
    }
}
