//! Engines kept open across requests. Opening an engine the way one CLI command does (root
//! checks, the state database's gate, SQLite open, pragmas and schema) costs more than most
//! requests; the server keeps the engines it opened in a small pool and hands one to each
//! request for as long as it runs.
//!
//! Nothing is cached above SQLite: an engine holds paths and a connection, and every query
//! outside a transaction reads the database as it is now, so what a CLI command commits is seen
//! by the next request at once. An engine holds no lock (container locks are taken per
//! operation), so pooled engines never block the CLI. A database replaced behind the server's
//! back (deleted, restored from a backup) is noticed by its inode: the pooled connections are
//! dropped and the next one goes through the gate again, as a CLI command would.

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use skiff_engine::Engine;

/// Idle engines kept at most (more may be in use at once; the extra ones close on return).
const MAX_IDLE: usize = 16;

/// `(dev, ino)` of `<root>/skiff.db`, if it exists.
fn db_identity(root: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(root.join("skiff.db"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// An idle engine and the database file it was opened on.
struct Idle {
    engine: Engine,
    db: Option<(u64, u64)>,
}

/// The server's engines.
pub(crate) struct EnginePool {
    root: PathBuf,
    runroot: Option<PathBuf>,
    idle: Mutex<Vec<Idle>>,
}

impl EnginePool {
    /// An empty pool for the engine at `root`/`runroot`.
    pub fn new(root: PathBuf, runroot: Option<PathBuf>) -> EnginePool {
        EnginePool {
            root,
            runroot,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An engine for one request: an idle one whose database file is still the one on disk,
    /// else a newly opened one.
    pub fn get(&self) -> skiff_engine::Result<PooledEngine<'_>> {
        let now = db_identity(&self.root);
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.last().is_some_and(|i| i.db != now) {
                // The file was replaced: none of the idle connections reads it.
                idle.clear();
            }
            idle.pop()
        };
        let engine = match reused {
            Some(i) => i.engine,
            None => {
                let mut e = Engine::open(&self.root, self.runroot.as_deref())?;
                e.keep_open();
                e
            }
        };
        Ok(PooledEngine {
            engine: Some(engine),
            db: now.or_else(|| db_identity(&self.root)),
            pool: self,
        })
    }
}

/// An engine lent to one request; back to the pool when dropped.
pub(crate) struct PooledEngine<'a> {
    engine: Option<Engine>,
    db: Option<(u64, u64)>,
    pool: &'a EnginePool,
}

impl Deref for PooledEngine<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        // Some until drop.
        self.engine.as_ref().expect("pooled engine present")
    }
}

impl DerefMut for PooledEngine<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("pooled engine present")
    }
}

impl Drop for PooledEngine<'_> {
    fn drop(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        // A connection left inside a transaction (a panic mid-operation) would hold a stale
        // snapshot: closed rather than reused.
        if !engine.is_autocommit() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                engine,
                db: self.db,
            });
        }
    }
}
