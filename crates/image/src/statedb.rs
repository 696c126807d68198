//! The state database file, `<root>/skiff.db`, as every opener (image store, container engine,
//! volumes) reaches it: one gate that refuses to run on a database that was lost, emptied or
//! damaged while the root still holds containers, images or volumes.
//!
//! Without this gate a recreated database looks like "nothing exists", and a sweep or garbage
//! collection would treat every container directory, blob and volume as an orphan. The gate
//! costs one small read on the hot path: the file's first 100 bytes (the SQLite header: magic,
//! page size and page count, so garbage and truncation are caught before SQLite sees the file)
//! and `PRAGMA user_version`, which skiff stamps to [`STAMP`] once a database is known to be the
//! record of its root. Only an unstamped database (brand new, zero-length, or recreated behind
//! skiff's back) pays for a look at the root: a few `readdir` calls and `content/index.json`.
//!
//! The way out of every refusal is `skiff system check --repair`, which moves a damaged file
//! aside (never deletes it) and rebuilds the records from what is on disk.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

/// File name of the state database under a root.
pub const DB_FILE: &str = "skiff.db";

/// `PRAGMA user_version` of a database skiff has accepted as the record of its root.
pub const STAMP: i64 = 0x5c1ff;

/// The command to run when the database cannot be used, as every refusal names it.
pub const REPAIR_HINT: &str = "run `skiff system check --repair`";

/// Why the state database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDbError {
    /// The file is gone while the root still holds data.
    #[error("state database {path} is missing but the root holds {what}; refusing to start from an empty database (nothing was deleted): {REPAIR_HINT}")]
    Missing {
        /// The database file.
        path: PathBuf,
        /// The first thing found on disk that the database should record.
        what: String,
    },
    /// The file (or its records) are empty while the root still holds data.
    #[error("state database {path} is empty but the root holds {what}; refusing to start from an empty database (nothing was deleted): {REPAIR_HINT}")]
    Empty {
        /// The database file.
        path: PathBuf,
        /// The first thing found on disk that the database should record.
        what: String,
    },
    /// The file is not a (whole) SQLite database.
    #[error("state database {path} is corrupt: {why}; nothing was deleted: {REPAIR_HINT}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// SQLite failed for another reason.
    #[error("state database {path}: {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// Reading the file failed.
    #[error("state database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

static REPAIRING: AtomicBool = AtomicBool::new(false);

/// Lets this process open an unstamped database beside a non-empty root (only `system check
/// --repair`, which rebuilds the records and stamps the database when it is done).
pub fn set_repairing(on: bool) {
    REPAIRING.store(on, Ordering::SeqCst);
}

/// True when SQLite says the file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The first thing under `root` that a state database should have a record of: a container
/// directory, a volume directory or an image named in `content/index.json`. `None` for a root
/// with none of them (a fresh install). Trees renamed aside for deletion (`.removing-*`, `.rm-*`,
/// `.creating-*`) do not count: they are garbage by construction.
pub fn root_data(root: &Path) -> Option<String> {
    for (dir, what) in [("containers", "container"), ("volumes", "volume")] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    return Some(format!("{what} directory {dir}/{name}"));
                }
            }
        }
    }
    let index = root.join("content/index.json");
    if let Ok(data) = std::fs::read(&index) {
        let n = serde_json::from_slice::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| v["manifests"].as_array().map(Vec::len))
            .unwrap_or(0);
        if n > 0 {
            return Some(format!("{n} image manifest(s) in content/index.json"));
        }
    }
    None
}

/// Checks the SQLite header of a non-empty file: magic, and a page count that fits the file
/// (when no write-ahead log could hold the missing pages).
fn check_header(path: &Path, f: &mut File, len: u64) -> Result<(), StateDbError> {
    let corrupt = |why: String| StateDbError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    let mut h = [0u8; 100];
    let mut got = 0;
    while got < h.len() {
        match f.read(&mut h[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(StateDbError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
    }
    if got < h.len() {
        return Err(corrupt(format!(
            "truncated to {len} bytes, shorter than a SQLite header"
        )));
    }
    if &h[..16] != b"SQLite format 3\0" {
        return Err(corrupt("not a SQLite database (bad header)".into()));
    }
    let be32 = |o: usize| u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n => n as u64,
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(corrupt(format!("bad page size {page_size} in its header")));
    }
    let pages = be32(28) as u64;
    // The in-header size is valid only when "version-valid-for" matches the change counter.
    let size_valid = be32(92) == be32(24) && pages > 0;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_len = std::fs::metadata(PathBuf::from(wal))
        .map(|m| m.len())
        .unwrap_or(0);
    if size_valid && wal_len == 0 && pages * page_size > len {
        return Err(corrupt(format!(
            "truncated: {len} bytes, but its header says {} pages of {page_size} bytes",
            pages
        )));
    }
    Ok(())
}

/// True when some table of `conn` has a row.
fn has_rows(conn: &Connection) -> rusqlite::Result<bool> {
    let tables: Vec<String> = {
        let mut st = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        rows
    };
    for t in tables {
        let q = format!("SELECT 1 FROM \"{}\" LIMIT 1", t.replace('"', "\"\""));
        let mut st = conn.prepare(&q)?;
        if st.exists([])? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Opens `<root>/skiff.db` (creating it for a fresh root) after the checks in the module
/// documentation. Callers set their own pragmas and schema on the returned connection.
pub fn open(root: &Path) -> Result<Connection, StateDbError> {
    let path = root.join(DB_FILE);
    let repairing = REPAIRING.load(Ordering::SeqCst);
    match File::open(&path) {
        Ok(mut f) => {
            let len = f
                .metadata()
                .map_err(|e| StateDbError::Io {
                    path: path.clone(),
                    source: e,
                })?
                .len();
            if len == 0 {
                if !repairing {
                    if let Some(what) = root_data(root) {
                        return Err(StateDbError::Empty { path, what });
                    }
                }
            } else {
                check_header(&path, &mut f, len)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !repairing {
                if let Some(what) = root_data(root) {
                    return Err(StateDbError::Missing { path, what });
                }
            }
        }
        Err(e) => return Err(StateDbError::Io { path, source: e }),
    }
    let sql = |what: &str| {
        let path = path.clone();
        let what = what.to_string();
        move |e: rusqlite::Error| {
            if is_corrupt(&e) {
                StateDbError::Corrupt {
                    path,
                    why: e.to_string(),
                }
            } else {
                StateDbError::Sqlite {
                    path,
                    what,
                    source: e,
                }
            }
        }
    };
    let conn = crate::perms::open_db(&path).map_err(sql("open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(sql("busy timeout"))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql("read user_version"))?;
    if version != STAMP && !repairing {
        // Unstamped: brand new (fine on an empty root), written by an older skiff (it has
        // records: adopt it), or recreated behind our back beside data (refuse).
        if !has_rows(&conn).map_err(sql("read tables"))? {
            if let Some(what) = root_data(root) {
                return Err(StateDbError::Empty { path, what });
            }
        }
        stamp(&conn).map_err(sql("stamp"))?;
    }
    Ok(conn)
}

/// Marks `conn`'s database as the record of its root (see [`STAMP`]).
pub fn stamp(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "user_version", STAMP)
}

/// Moves a damaged or stale database (and its `-wal`/`-shm`) aside as
/// `skiff.db.corrupt-<unix time>[-wal|-shm]`; returns the new path of the main file, if it existed.
pub fn move_aside(root: &Path) -> std::io::Result<Option<PathBuf>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut main = None;
    for suffix in ["", "-wal", "-shm"] {
        let from = root.join(format!("{DB_FILE}{suffix}"));
        if !from.exists() {
            continue;
        }
        let mut n = 0;
        let to = loop {
            let cand = if n == 0 {
                root.join(format!("{DB_FILE}.corrupt-{now}{suffix}"))
            } else {
                root.join(format!("{DB_FILE}.corrupt-{now}.{n}{suffix}"))
            };
            if !cand.exists() {
                break cand;
            }
            n += 1;
        };
        std::fs::rename(&from, &to)?;
        if suffix.is_empty() {
            main = Some(to);
        }
    }
    crate::sys::fsync_dir(root)?;
    Ok(main)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("containers/abc")).unwrap();
        d
    }

    #[test]
    fn a_fresh_root_gets_a_stamped_database() {
        let d = tempfile::tempdir().unwrap();
        let c = open(d.path()).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, STAMP);
        drop(c);
        // Once stamped, an empty database beside data is fine (its records are the truth).
        std::fs::create_dir_all(d.path().join("volumes/v1")).unwrap();
        open(d.path()).unwrap();
    }

    #[test]
    fn missing_empty_and_unstamped_databases_beside_data_are_refused() {
        let d = seeded_root();
        let e = open(d.path()).unwrap_err();
        assert!(matches!(e, StateDbError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("containers/abc"), "{e}");
        assert!(!d.path().join(DB_FILE).exists(), "nothing created");
        std::fs::write(d.path().join(DB_FILE), b"").unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(matches!(e, StateDbError::Empty { .. }), "{e}");
        std::fs::remove_file(d.path().join(DB_FILE)).unwrap();
        Connection::open(d.path().join(DB_FILE))
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(matches!(e, StateDbError::Empty { .. }), "{e}");
        // An older skiff's database with records is adopted and stamped.
        Connection::open(d.path().join(DB_FILE))
            .unwrap()
            .execute_batch("INSERT INTO t VALUES(1)")
            .unwrap();
        open(d.path()).unwrap();
    }

    #[test]
    fn garbage_and_truncated_files_are_corrupt() {
        let d = seeded_root();
        let p = d.path().join(DB_FILE);
        std::fs::write(&p, vec![0x5au8; 8192]).unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(matches!(e, StateDbError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("skiff system check --repair"));
        // A real database cut short.
        std::fs::remove_file(&p).unwrap();
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES(randomblob(100000));")
                .unwrap();
        }
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len / 2).unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        f.set_len(40).unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let moved = move_aside(d.path()).unwrap().unwrap();
        assert!(moved.exists() && !p.exists());
    }
}
