//! The build cache: a table in the engine's SQLite database mapping a step's key (the parent
//! state's key, the instruction as expanded, the digests of what it reads) to the manifest of
//! the state after it, whose blobs live in the content store. A row whose blobs were pruned is
//! a miss.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use skiff_image::digest::Digest;

use crate::copy::{CtxIndex, IndexEntry};
use crate::BuildError;

/// An open cache.
pub struct Cache {
    conn: Connection,
}

/// One cache row, for `builder du`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The step key.
    pub key: String,
    /// The state's manifest digest.
    pub manifest: String,
    /// The step's description.
    pub description: String,
    /// Bytes of the step's own layer.
    pub size: u64,
    /// When it was made (unix seconds).
    pub created: i64,
    /// When it was last used (unix seconds).
    pub last_used: i64,
}

fn db(e: rusqlite::Error) -> BuildError {
    BuildError::Other(format!("build cache: {e}"))
}

impl Cache {
    /// Opens (creating the table) the cache in `<root>/skiff.db`.
    pub fn open(root: &Path) -> Result<Cache, BuildError> {
        let conn = skiff_image::perms::open_db(&root.join("skiff.db")).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS build_cache (
                key TEXT PRIMARY KEY,
                manifest TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                size INTEGER NOT NULL DEFAULT 0,
                created INTEGER NOT NULL,
                last_used INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS build_context_index (
                root TEXT NOT NULL,
                path TEXT NOT NULL,
                dev INTEGER NOT NULL,
                ino INTEGER NOT NULL,
                size INTEGER NOT NULL,
                mtime INTEGER NOT NULL,
                ctime INTEGER NOT NULL,
                digest TEXT NOT NULL,
                PRIMARY KEY (root, path)
            );",
        )
        .map_err(db)?;
        Ok(Cache { conn })
    }

    /// The manifest recorded for `key`, touching its last use.
    pub fn get(&self, key: &str) -> Result<Option<Digest>, BuildError> {
        let m: Option<String> = self
            .conn
            .query_row(
                "SELECT manifest FROM build_cache WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(m) = m else { return Ok(None) };
        let now = skiff_image::time::now_unix();
        self.conn
            .execute(
                "UPDATE build_cache SET last_used = ?2 WHERE key = ?1",
                params![key, now],
            )
            .map_err(db)?;
        Ok(Digest::parse(&m).ok())
    }

    /// Records a step's result.
    pub fn put(
        &self,
        key: &str,
        manifest: &Digest,
        description: &str,
        size: u64,
    ) -> Result<(), BuildError> {
        let now = skiff_image::time::now_unix();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO build_cache (key, manifest, description, size, created, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![key, manifest.as_str(), description, size as i64, now],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The file index of the context at `root` (a canonical path).
    pub fn load_index(&self, root: &str) -> Result<CtxIndex, BuildError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path, dev, ino, size, mtime, ctime, digest FROM build_context_index WHERE root = ?1")
            .map_err(db)?;
        let rows = st
            .query_map(params![root], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    IndexEntry {
                        dev: r.get::<_, i64>(1)? as u64,
                        ino: r.get::<_, i64>(2)? as u64,
                        size: r.get(3)?,
                        mtime_ns: r.get(4)?,
                        ctime_ns: r.get(5)?,
                        digest: r.get(6)?,
                    },
                ))
            })
            .map_err(db)?;
        let mut ix = CtxIndex::default();
        for r in rows {
            let (p, e) = r.map_err(db)?;
            ix.entries.insert(p, e);
        }
        Ok(ix)
    }

    /// Stores the entries this build made, in one transaction.
    pub fn save_index(&mut self, root: &str, ix: &CtxIndex) -> Result<(), BuildError> {
        if ix.changed.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO build_context_index (root, path, dev, ino, size, mtime, ctime, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(db)?;
            for (p, e) in &ix.changed {
                st.execute(params![
                    root,
                    p,
                    e.dev as i64,
                    e.ino as i64,
                    e.size,
                    e.mtime_ns,
                    e.ctime_ns,
                    e.digest
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Every row, newest first.
    pub fn list(&self) -> Result<Vec<Entry>, BuildError> {
        let mut st = self
            .conn
            .prepare("SELECT key, manifest, description, size, created, last_used FROM build_cache ORDER BY created DESC")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(Entry {
                    key: r.get(0)?,
                    manifest: r.get(1)?,
                    description: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    created: r.get(4)?,
                    last_used: r.get(5)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Deletes rows last used before `before` (all with None); returns how many and their
    /// layer bytes.
    pub fn prune(&self, before: Option<i64>) -> Result<(usize, u64), BuildError> {
        let before = before.unwrap_or(i64::MAX);
        let size: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(size), 0) FROM build_cache WHERE last_used < ?1",
                params![before],
                |r| r.get(0),
            )
            .map_err(db)?;
        let n = self
            .conn
            .execute(
                "DELETE FROM build_cache WHERE last_used < ?1",
                params![before],
            )
            .map_err(db)?;
        Ok((n, size as u64))
    }
}
