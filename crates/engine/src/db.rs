//! The `containers` table: immutable configuration as one JSON record, and the mutable parts (name,
//! state, restart count) in their own columns so concurrent writers never overwrite each other.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{db, Error, Result};
use crate::model::{Container, State};
use crate::Engine;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL,
  record TEXT NOT NULL,
  state TEXT NOT NULL,
  restart_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS userns_slices(
  container TEXT PRIMARY KEY,
  start INTEGER NOT NULL,
  size INTEGER NOT NULL
);
";

/// Opens `<root>/skiff.db` through the state database's gate ([`skiff_image::statedb::open`]:
/// refuses a lost, emptied or damaged database beside data) with WAL, a generous busy timeout
/// and the engine's schema.
pub fn open(root: &Path) -> Result<Connection> {
    let conn = skiff_image::statedb::open(root)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(db("busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(db("journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db("enable WAL"))?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db("set synchronous"))?;
    conn.execute_batch(SCHEMA).map_err(db("create schema"))?;
    // Short-lived processes: leave checkpoints to SQLite's automatic ones instead of fsyncing the
    // whole WAL back whenever the last connection closes.
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    Ok(conn)
}

/// WAL size above which a closing engine checkpoints: about 64 frames of 4 KiB pages.
const WAL_TRIM_BYTES: u64 = 64 * 4120;

/// Checkpoints and truncates the WAL once it has grown past [`WAL_TRIM_BYTES`]. No daemon keeps
/// the database open, so most skiff processes are the first to open it and SQLite rebuilds the
/// WAL index by reading every frame; left to the automatic checkpoint (1000 pages) that is up to
/// 4 MB of reads per command. Best effort and never waits: a busy database is trimmed next time.
pub fn trim_wal(conn: &Connection, wal: &Path) {
    let big = std::fs::metadata(wal)
        .map(|m| m.len() > WAL_TRIM_BYTES)
        .unwrap_or(false);
    if big {
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

fn row_to(r: &rusqlite::Row) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode(name: String, record: String, state: String, rc: i64) -> Result<Container> {
    let mut c: Container = serde_json::from_str(&record)
        .map_err(|e| Error::Other(format!("container {name}: corrupt record: {e}")))?;
    c.name = name;
    c.state = serde_json::from_str(&state)
        .map_err(|e| Error::Other(format!("container {}: corrupt state: {e}", c.name)))?;
    c.restart_count = rc;
    Ok(c)
}

impl Engine {
    /// Inserts a new container; a taken name is a [`Error::NameConflict`].
    pub fn insert(&self, c: &Container) -> Result<()> {
        let record = serde_json::to_string(c).map_err(|e| Error::Other(e.to_string()))?;
        let state = serde_json::to_string(&c.state).map_err(|e| Error::Other(e.to_string()))?;
        match self.conn.execute(
            "INSERT INTO containers(id, name, created, record, state, restart_count) VALUES(?1, ?2, ?3, ?4, ?5, 0)",
            params![c.id, c.name, c.created, record, state],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let id = self.id_of_name(&c.name)?.unwrap_or_default();
                Err(Error::NameConflict {
                    name: c.name.clone(),
                    id,
                })
            }
            Err(e) => Err(db("insert container")(e)),
        }
    }

    fn id_of_name(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("find name"))
    }

    /// The container with exactly this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<Container>> {
        let row = self
            .conn
            .query_row(
                "SELECT name, record, state, restart_count FROM containers WHERE id = ?1",
                params![id],
                row_to,
            )
            .optional()
            .map_err(db("read container"))?;
        match row {
            Some((n, rec, st, rc)) => Ok(Some(decode(n, rec, st, rc)?)),
            None => Ok(None),
        }
    }

    /// All containers, oldest first.
    pub fn list_raw(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, record, state, restart_count FROM containers ORDER BY created")
            .map_err(db("list containers"))?;
        let rows = stmt
            .query_map([], row_to)
            .map_err(db("list containers"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("list containers"))?;
        rows.into_iter()
            .map(|(n, rec, st, rc)| decode(n, rec, st, rc))
            .collect()
    }

    /// Resolves what a user typed (full id, name, `/name`, unique id prefix) to an id.
    pub fn resolve_id(&self, s: &str) -> Result<String> {
        if s.is_empty() {
            return Err(Error::NoSuchContainer(s.into()));
        }
        let name = s.strip_prefix('/').unwrap_or(s);
        let exact: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM containers WHERE id = ?1 OR name = ?2",
                params![s, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("find container"))?;
        if let Some(id) = exact {
            return Ok(id);
        }
        if s.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM containers WHERE substr(id, 1, ?2) = ?1 LIMIT 2")
                .map_err(db("find container"))?;
            let ids = stmt
                .query_map(params![s.to_ascii_lowercase(), s.len() as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(db("find container"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db("find container"))?;
            match ids.len() {
                1 => return Ok(ids[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "multiple IDs found with provided prefix: {s}"
                    )))
                }
            }
        }
        Err(Error::NoSuchContainer(s.into()))
    }

    /// Writes the state of `id`.
    pub fn set_state(&self, id: &str, st: &State) -> Result<()> {
        let state = serde_json::to_string(st).map_err(|e| Error::Other(e.to_string()))?;
        self.conn
            .execute(
                "UPDATE containers SET state = ?2 WHERE id = ?1",
                params![id, state],
            )
            .map_err(db("update state"))?;
        Ok(())
    }

    /// Writes the state and restart count of `id`.
    pub fn set_state_restarts(&self, id: &str, st: &State, restarts: i64) -> Result<()> {
        let state = serde_json::to_string(st).map_err(|e| Error::Other(e.to_string()))?;
        self.conn
            .execute(
                "UPDATE containers SET state = ?2, restart_count = ?3 WHERE id = ?1",
                params![id, state, restarts],
            )
            .map_err(db("update state"))?;
        Ok(())
    }

    /// Writes the state and restart count of `id` if its row still exists; false when it is
    /// gone (removed while its monitor was starting it).
    pub fn set_state_if_present(&self, id: &str, st: &State, restarts: i64) -> Result<bool> {
        let state = serde_json::to_string(st).map_err(|e| Error::Other(e.to_string()))?;
        let n = self
            .conn
            .execute(
                "UPDATE containers SET state = ?2, restart_count = ?3 WHERE id = ?1",
                params![id, state, restarts],
            )
            .map_err(db("update state"))?;
        Ok(n > 0)
    }

    /// Rewrites the record (config, host config, mounts) of `id`; its state, name and restart
    /// count keep their own columns, so concurrent state writers are never overwritten.
    pub fn set_record(&self, c: &Container) -> Result<()> {
        let record = serde_json::to_string(c).map_err(|e| Error::Other(e.to_string()))?;
        self.conn
            .execute(
                "UPDATE containers SET record = ?2 WHERE id = ?1",
                params![c.id, record],
            )
            .map_err(db("update record"))?;
        Ok(())
    }

    /// Renames `id`; a taken name is a [`Error::NameConflict`].
    pub fn set_name(&self, id: &str, name: &str) -> Result<()> {
        match self.conn.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let other = self.id_of_name(name)?.unwrap_or_default();
                Err(Error::NameConflict {
                    name: name.into(),
                    id: other,
                })
            }
            Err(e) => Err(db("rename container")(e)),
        }
    }

    /// Deletes the row of `id`.
    pub fn delete_row(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(db("delete container"))?;
        Ok(())
    }

    /// All ids in the table.
    pub fn all_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM containers")
            .map_err(db("list ids"))?;
        let v = stmt
            .query_map([], |r| r.get(0))
            .map_err(db("list ids"))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(db("list ids"))?;
        Ok(v)
    }
}

/// Ids of the containers created from image `image_id` (`sha256:…`), for `rmi`/`image prune`
/// (docker refuses to delete an image a container uses). Opens the database under `root` directly.
pub fn containers_using_image(root: &Path, image_id: &str) -> Result<Vec<String>> {
    let conn = open(root)?;
    let mut stmt = conn
        .prepare("SELECT id FROM containers WHERE json_extract(record, '$.Image') = ?1")
        .map_err(db("find image users"))?;
    let v = stmt
        .query_map(params![image_id], |r| r.get(0))
        .map_err(db("find image users"))?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db("find image users"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_wal_is_checkpointed_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("skiff.db-wal");
        // A second connection stands for the other skiff processes: with it open, no closing
        // connection is the last one, so SQLite's own checkpoint-on-close never runs.
        let other = open(dir.path()).unwrap();
        let conn = open(dir.path()).unwrap();
        for i in 0..200 {
            conn.execute(
                "INSERT INTO containers(id, name, created, record, state) VALUES(?1, ?1, '', ?2, '{}')",
                params![format!("c{i}"), "x".repeat(3000)],
            )
            .unwrap();
        }
        let before = std::fs::metadata(&wal).unwrap().len();
        assert!(
            before > WAL_TRIM_BYTES,
            "the WAL only reached {before} bytes"
        );
        trim_wal(&conn, &wal);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        // Nothing was lost, and both connections still work.
        let n: i64 = other
            .query_row("SELECT count(*) FROM containers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
        // A short WAL is left alone (no checkpoint for a few frames).
        conn.execute("DELETE FROM containers WHERE id = 'c0'", [])
            .unwrap();
        let small = std::fs::metadata(&wal).unwrap().len();
        assert!(small > 0 && small < WAL_TRIM_BYTES);
        trim_wal(&conn, &wal);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), small);
    }
}
