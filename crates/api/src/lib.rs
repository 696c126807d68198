//! skiff-api owns `skiff serve`: the Docker Engine API (v1.24–v1.50) on a unix socket, TCP with
//! TLS client certificates (or, acknowledged and loudly warned, plain loopback TCP) or systemd's
//! activated sockets, as a thin HTTP layer over the engine's typed operations. Every
//! request opens the engine like one CLI command does (no state of its own beyond pending attach
//! sockets and exec records), so what the CLI creates the API sees at once and vice versa.
//!
//! Blocking engine calls run on tokio's blocking pool; streams (logs, attach, exec, pull
//! progress) are relayed by tasks. Attach and exec use docker's connection hijack (`Upgrade:
//! tcp` → 101, or the plain hijack of older clients: hijack.rs). TCP is TLS with client
//! certificates (tls.rs) or explicitly acknowledged plain loopback; `fd://` takes systemd's
//! activated sockets (activation.rs). Responses are shaped by the client's API version
//! (compat.rs). Exec runs through the `skiff exec` binary (the engine's exec binds the calling
//! process's stdio and clones in-process, which a multi-threaded server must not do).

mod activation;
mod build;
mod compat;
mod containers;
mod exec;
mod hijack;
mod http;
mod images;
mod listen;
mod misc;
mod more;
mod pool;
mod tls;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use http::{MAX_API_VERSION, MIN_API_VERSION};
pub use listen::{parse_host, Host};
pub use tls::Tls;

/// What `skiff serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine's data root (`--root`).
    pub root: PathBuf,
    /// The engine's run root (`--runroot`).
    pub runroot: Option<PathBuf>,
    /// Where to listen (`-H`).
    pub hosts: Vec<Host>,
    /// The skiff binary (for `skiff exec`).
    pub exe: PathBuf,
    /// TLS of TCP listeners.
    pub tls: Tls,
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be set up.
    #[error("listen on {addr}: {msg}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        msg: String,
    },
    /// The async runtime could not start.
    #[error("start the server runtime: {0}")]
    Runtime(std::io::Error),
}

/// An exec instance (`POST /containers/{id}/exec`), kept in memory as docker's daemon keeps it.
#[derive(Debug, Clone)]
pub(crate) struct ExecRecord {
    pub container: String,
    pub body: skiff_engine::api::ExecBody,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
    /// The pty master of a running tty exec (for resize).
    pub pty: Option<Arc<OwnedFd>>,
    /// When it was created (records never started are dropped after a while).
    pub created: std::time::Instant,
}

/// Shared server state.
pub(crate) struct State {
    pub root: PathBuf,
    pub runroot: Option<PathBuf>,
    pub exe: PathBuf,
    /// Open engines, lent to one request at a time.
    pub engines: pool::EnginePool,
    /// Attach sockets of clients that attached before the container started (docker's `run`
    /// attaches, then starts): the monitor end, handed to the start.
    pub pending_attach: Mutex<HashMap<String, OwnedFd>>,
    /// Exec instances by id.
    pub execs: Mutex<HashMap<String, ExecRecord>>,
}

impl State {
    /// An open engine for one request (see pool.rs).
    pub fn engine(&self) -> skiff_engine::Result<pool::PooledEngine<'_>> {
        self.engines.get()
    }
    /// Opens the image store.
    pub fn store(&self) -> skiff_engine::Result<skiff_image::Store> {
        Ok(skiff_image::Store::open(&self.root)?)
    }
}

/// Runs the server until SIGINT or SIGTERM; the sockets it made are removed on the way out.
pub fn serve(o: Options) -> Result<(), ServeError> {
    // Bound before any thread exists: the umask that makes a new socket private is per process.
    let listeners = listen::bind_all(&o.hosts, &o.tls)?;
    let acceptor = o.tls.acceptor()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(256)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let state = Arc::new(State {
        root: o.root.clone(),
        runroot: o.runroot.clone(),
        exe: o.exe.clone(),
        engines: pool::EnginePool::new(o.root.clone(), o.runroot.clone()),
        pending_attach: Mutex::new(HashMap::new()),
        execs: Mutex::new(HashMap::new()),
    });
    listen::start_reaper();
    // Pooled engines do not sweep on every list as CLI commands do: what killed processes left
    // (`.removing-*`, dead creates) is swept here once a minute.
    {
        let st = state.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
            if let Ok(e) = st.engine() {
                e.sweep();
            }
        });
    }
    // `skiff system boot`'s work: restart `always`/`unless-stopped` containers.
    {
        let st = state.clone();
        rt.spawn_blocking(move || {
            if let Ok(e) = st.engine() {
                let _ = e.boot();
            }
        });
    }
    let r = rt.block_on(listen::run(listeners, acceptor, state));
    listen::cleanup(&o.hosts);
    r
}
