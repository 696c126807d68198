//! skiff-engine owns containers as users see them: the state database (SQLite, WAL), names and ids,
//! per-container locks, the per-container monitor process, logs, restart policies, volumes and events.
//! It turns images (skiff-image) into OCI bundles and drives the runtime library (skiff-runtime).
//!
//! The API returns data and never prints, so the CLI (crates/skiff) and an API server share it.
//! On disk (root defaults to `/var/lib/skiff`, the run dir to `/run/skiff`, or `<root>/run` when only
//! a root is given):
//!
//! ```text
//! <root>/skiff.db                     tables `containers` (+ the image store's tables)
//! <root>/containers/<id>/             config.json (OCI bundle), rootfs/ (overlay), upper/, work/,
//!                                     ctr.log (json-file), hostname, hosts, resolv.conf, exit,
//!                                     health.json (State.Health, written by the monitor's checks)
//! <root>/locks/<id>                   the container's flock
//! <runroot>/runtime/<id>/             the runtime library's state
//! <runroot>/containers/<id>/          attach.sock, norestart (marker for the monitor)
//! ```

pub mod api;
pub mod attach;
pub mod boot;
pub mod cdi;
pub mod check;
pub mod commit;
pub mod create;
pub mod db;
pub mod debug;
pub mod delegation;
pub mod error;
pub mod events;
pub mod explain;
pub mod flags;
pub mod fsops;
pub mod health;
pub mod hostflags;
pub mod info;
pub mod init;
pub mod inspect;
pub mod lock;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod names;
pub mod network;
pub mod ociruntime;
pub mod ops;
pub mod outfile;
pub mod proc;
pub mod prune;
pub mod rootless;
pub mod spec;
pub mod tty;
pub mod update;
pub mod volumes;
pub mod volumes_api;

pub use error::{Error, Result};
pub use model::Container;
/// The network crate, for callers that name its types (networks, endpoints).
pub use skiff_net;

use std::path::{Path, PathBuf};

use error::IoCtx;
use skiff_image::perms;

/// An open engine: paths plus a connection to the state database.
pub struct Engine {
    /// Persistent root.
    pub root: PathBuf,
    /// Runtime (tmpfs) dir.
    pub runroot: PathBuf,
    pub(crate) conn: rusqlite::Connection,
    /// Whether [`Engine::list`] sweeps what killed processes left (every CLI command that lists
    /// does; a server that keeps engines open sweeps on a timer instead).
    pub(crate) sweep_on_list: bool,
}

/// The run dir to use when only `root` is given: `/run/skiff` for the default root, the user's
/// [`rootless::run_root`] for a user's default root, `<root>/run`
/// otherwise (so tests with temporary roots never share runtime state).
pub fn default_runroot(root: &Path) -> PathBuf {
    if root == Path::new("/var/lib/skiff") {
        PathBuf::from("/run/skiff")
    } else if (rootless::is_user() || rootless::in_namespace())
        && rootless::data_root().is_ok_and(|d| d == root)
    {
        rootless::run_root().unwrap_or_else(|_| root.join("run"))
    } else {
        root.join("run")
    }
}

impl Engine {
    /// Opens (creating) the engine state under `root` and `runroot`.
    pub fn open(root: &Path, runroot: Option<&Path>) -> Result<Engine> {
        let runroot = runroot
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_runroot(root));
        // Both roots private (0700), repaired once if an older skiff made them under the umask
        // (see skiff_image::perms); below them every directory is made 0700 at creation.
        for r in [root, runroot.as_path()] {
            perms::open_root(r).ctx(|| format!("create {}", r.display()))?;
        }
        for d in [
            root.join("containers"),
            root.join("locks"),
            runroot.join("containers"),
        ] {
            perms::mkdir(&d, perms::PRIVATE_DIR).ctx(|| format!("create {}", d.display()))?;
        }
        let conn = db::open(root)?;
        Ok(Engine {
            root: root.to_path_buf(),
            runroot,
            conn,
            sweep_on_list: true,
        })
    }
    /// `<root>/containers/<id>`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    /// `<runroot>/containers/<id>`.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }
    /// `State.Health` of a container with a healthcheck that has been started (None otherwise:
    /// docker's `none`).
    pub fn health(&self, c: &Container) -> Option<health::Health> {
        health::Probe::from_config(c.config.healthcheck.as_ref())?;
        health::read(&self.container_dir(&c.id))
    }
    /// Marks this engine as one kept open across operations (`skiff serve`): listing no longer
    /// sweeps, the keeper calls [`Engine::sweep`] on its own schedule.
    pub fn keep_open(&mut self) {
        self.sweep_on_list = false;
    }
    /// True unless a transaction is open on the state database (an engine kept open across
    /// operations, as `skiff serve` keeps them, is reused only then).
    pub fn is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }
    /// The runtime library's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }
    /// The container's lock file (outside its directory, so `create` holds it before the
    /// directory exists and the sweep never takes a directory that is being made).
    pub fn lock_path(&self, id: &str) -> PathBuf {
        self.root.join("locks").join(id)
    }
}

impl Drop for Engine {
    /// Keeps the WAL short (see [`db::trim_wal`]): the first process to open the database after
    /// the others closed it rebuilds SQLite's WAL index by reading every frame in the WAL.
    fn drop(&mut self) {
        db::trim_wal(&self.conn, &self.root.join("skiff.db-wal"));
    }
}
