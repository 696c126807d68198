//! Named and anonymous volumes with docker's `local` driver semantics.
//!
//! State: the `volumes` table of `<root>/skiff.db` (WAL, busy timeout) and the data directory
//! `<root>/volumes/<name>/_data`. Anonymous volumes get a random 64-hex name and the label
//! `com.docker.volume.anonymous` (as docker ≥ 23 does), which is what `prune` without `-a` keys on.
//!
//! **In-use tracking (the contract with the container code):** this module owns a second table,
//! `container_volumes(container_id, volume)`. The container code records a use with
//! [`Volumes::attach`] (or [`Volumes::use_volume`], which also creates and mounts) when it creates a
//! container, and drops every use of a container with [`Volumes::release`] when it removes the
//! container (`rm -v` also removes that container's anonymous volumes through it). A volume with a
//! row there is "in use": `remove` refuses it (even with `force`, like docker), `prune` skips it and
//! `ls --filter dangling=true` hides it. A table rather than a callback keeps `skiff volume rm` and
//! `skiff rm` correct across processes without either parsing the other's JSON. Uses left behind by
//! a crash between removing a container and releasing its volumes are forgotten once the
//! `containers` table no longer has that id and the use is older than [`STALE_USE_SECS`] (the grace
//! covers a container being created: its use may be recorded before its row).
//!
//! Driver options (`-o type=…,device=…,o=…`) follow docker's local driver: the volume is mounted
//! with `mount(device, _data, type, o)` when a container first uses it ([`Volumes::mount`]) and
//! unmounted when the last user releases it or the volume is removed. `o=bind` (with `type=none`)
//! binds a host directory; `type=tmpfs` gives a fresh tmpfs. Removal never recurses through a
//! mount: `_data` is unmounted first and the tree walk stays on the volume's own filesystem.
//!
//! Crash safety: create makes the directory before the row (a crash leaves an unused directory that
//! the same name reuses); remove renames the directory to `volumes/.rm-*` and deletes the row in one
//! transaction before deleting files; `open` sweeps leftover `.rm-*` directories.
//!
//! Concurrency (many skiff processes at once): `remove` holds the volumes `flock`
//! (`volumes/.lock`) and one write transaction across "row still there, no users, unmount, rename,
//! delete row"; `attach` inserts a use only if the row exists in the same statement, so a use can
//! never point at a removed volume (`use_volume` then makes the volume again); `mount` and
//! `unmount_if_unused` run under the same flock after the use is recorded or dropped. Lock order is
//! always flock, then database write, never the reverse.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::events::{self, Event};

/// Age after which a use by a container missing from the `containers` table is forgotten.
pub const STALE_USE_SECS: i64 = 300;

/// Name of the copy of a volume's record kept beside its `_data`, for `skiff system check --repair`.
pub const RECORD_FILE: &str = "volume.json";

/// Label docker ≥ 23 puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Errors of volume operations; each names the volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such volume (docker's daemon message).
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// The name is shorter than two characters.
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    TooShort(String),
    /// The name does not match `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    /// The volume is used by containers.
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// Containers using it.
        containers: Vec<String>,
    },
    /// Bad driver or driver options.
    #[error("create {name}: {msg}")]
    BadOptions {
        /// The volume.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A database error.
    #[error("volume {what}: database: {cause}")]
    Db {
        /// The operation/volume.
        what: String,
        /// The cause.
        cause: rusqlite::Error,
    },
    /// The state database is missing, empty beside data, or damaged.
    #[error(transparent)]
    StateDb(#[from] skiff_image::statedb::StateDbError),
    /// A filesystem error.
    #[error("volume {what}: {path}: {cause}")]
    Io {
        /// The operation/volume.
        what: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
}

/// Result of volume operations.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

fn db_err(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> VolumeError {
    let what = what.into();
    move |cause| VolumeError::Db { what, cause }
}

fn io_err(what: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> VolumeError {
    let what = what.into();
    let path = path.to_path_buf();
    move |cause| VolumeError::Io { what, path, cause }
}

/// A volume as docker's `volume inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The name (64 hex characters for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// The data directory, `<root>/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// User labels (plus [`ANONYMOUS_LABEL`] on anonymous volumes).
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// True for volumes created without a name (`-v /data`, `VOLUME` in an image).
    pub anonymous: bool,
}

impl Volume {
    /// docker's `volume inspect` JSON object.
    pub fn inspect_json(&self) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": skiff_image::time::rfc3339(self.created_at),
            "Driver": self.driver,
            "Labels": if self.labels.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.labels) },
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": if self.options.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.options) },
            "Scope": "local",
        })
    }
}

/// Result of [`Volumes::prune`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Names removed.
    pub deleted: Vec<String>,
    /// Bytes freed (apparent file sizes).
    pub reclaimed: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS volumes(
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    created INTEGER NOT NULL,
    labels TEXT NOT NULL,
    options TEXT NOT NULL,
    anonymous INTEGER NOT NULL,
    populated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS container_volumes(
    container_id TEXT NOT NULL,
    volume TEXT NOT NULL,
    added INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(container_id, volume)
);
CREATE INDEX IF NOT EXISTS container_volumes_by_volume ON container_volumes(volume);
";

/// True when `name` is a valid local volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A random 64-hex name for an anonymous volume.
pub fn random_name() -> String {
    let mut buf = [0u8; 32];
    let ok = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if ok.is_err() {
        // Fall back to time and pid mixing; still unique enough for one host.
        let seed = events::now_nano() as u128 ^ ((std::process::id() as u128) << 64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed.rotate_left(i as u32 * 7) as u8) ^ (i as u8).wrapping_mul(151);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The volume store of one skiff root.
pub struct Volumes {
    root: PathBuf,
    db: Connection,
}

fn row_to_volume(root: &Path, row: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    let name: String = row.get(0)?;
    let labels: String = row.get(3)?;
    let options: String = row.get(4)?;
    Ok(Volume {
        mountpoint: root.join("volumes").join(&name).join("_data"),
        driver: row.get(1)?,
        created_at: row.get(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        options: serde_json::from_str(&options).unwrap_or_default(),
        anonymous: row.get::<_, i64>(5)? != 0,
        name,
    })
}

const COLUMNS: &str = "name, driver, created, labels, options, anonymous";

impl Volumes {
    /// Opens the volume store of `root` with its own connection to `<root>/skiff.db`.
    pub fn open(root: &Path) -> Result<Volumes> {
        skiff_image::perms::open_root(root).map_err(io_err("store", root))?;
        let db = skiff_image::statedb::open(root)?;
        Self::with_connection(root, db)
    }

    /// Uses an already opened connection to `<root>/skiff.db` (the engine's own).
    pub fn with_connection(root: &Path, db: Connection) -> Result<Volumes> {
        db.busy_timeout(Duration::from_secs(30))
            .map_err(db_err("busy timeout"))?;
        // Switching to WAL needs a moment alone with the file, and SQLite does not apply the
        // busy timeout to it: only switch when needed, retrying while another opener holds it.
        let mut tries = 0;
        loop {
            let mode: String = db
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(db_err("journal mode"))?;
            if mode.eq_ignore_ascii_case("wal") {
                break;
            }
            match db.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(e)
                    if tries < 200
                        && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(db_err("enable WAL")(e)),
            }
        }
        db.execute_batch(SCHEMA).map_err(db_err("create schema"))?;
        // 0700 (docker: 0701, for user-namespace remapping, which skiff does not do): a host user
        // must not reach a volume's data.
        let dir = root.join("volumes");
        skiff_image::perms::mkdir(&dir, skiff_image::perms::PRIVATE_DIR)
            .map_err(io_err("store", &dir))?;
        let v = Volumes {
            root: root.to_path_buf(),
            db,
        };
        v.sweep();
        Ok(v)
    }

    /// The directory holding all volumes.
    pub fn dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    fn sweep(&self) {
        let Ok(rd) = fs::read_dir(self.dir()) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_name().as_bytes().starts_with(b".rm-") {
                let _ = remove_tree(&e.path());
            }
        }
    }

    /// Creates a volume (a random name when `name` is None). Creating an existing name returns the
    /// existing volume unchanged, as docker does. `driver_opts` are the local driver's options.
    pub fn create(
        &self,
        name: Option<&str>,
        driver_opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume> {
        self.create_with_driver(name, "local", driver_opts, labels)
    }

    /// [`Volumes::create`] naming the driver (only `local` exists).
    pub fn create_with_driver(
        &self,
        name: Option<&str>,
        driver: &str,
        driver_opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume> {
        let anonymous = name.is_none();
        let name = match name {
            Some(n) => n.to_string(),
            None => random_name(),
        };
        if name.len() < 2 {
            return Err(VolumeError::TooShort(name));
        }
        if !valid_name(&name) {
            return Err(VolumeError::InvalidName(name));
        }
        if driver != "local" {
            return Err(VolumeError::BadOptions {
                name,
                msg: format!(
                    "error looking up volume plugin {driver}: plugin {driver:?} not found"
                ),
            });
        }
        parse_mount_opts(&name, driver_opts)?;
        if let Some(v) = self.find(&name)? {
            // docker logs a create event for an existing name too.
            let _ = events::emit(
                &self.root,
                &Event::new("volume", "create", &name).attr("driver", &v.driver),
            );
            return Ok(v);
        }
        let mut labels = labels.clone();
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
        }
        let vdir = self.dir().join(&name);
        let data = vdir.join("_data");
        // `volumes/<name>` is private; `_data` is what containers see at the mount point (0755,
        // as docker's, until the copy-up gives it the image's mode).
        skiff_image::perms::mkdir(&vdir, skiff_image::perms::PRIVATE_DIR)
            .and_then(|_| skiff_image::perms::mkdir_shared(&data, skiff_image::perms::SHARED_DIR))
            .map_err(io_err(format!("create {name}"), &data))?;
        let now = skiff_image::time::now_unix();
        // The record's copy beside `_data`, for `skiff system check --repair` (best effort: the
        // row below is the truth; without the copy a repair restores a plain local volume).
        let meta = serde_json::json!({
            "Driver": driver,
            "CreatedAt": now,
            "Labels": labels,
            "Options": driver_opts,
            "Anonymous": anonymous,
        });
        let _ = skiff_image::perms::write_file(
            &vdir.join(RECORD_FILE),
            meta.to_string().as_bytes(),
            skiff_image::perms::PRIVATE_FILE,
        );
        // OR IGNORE: a racing creator of the same name won; its row is the volume.
        self.db
            .execute(
                "INSERT OR IGNORE INTO volumes(name, driver, created, labels, options, anonymous)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    name,
                    driver,
                    now,
                    serde_json::to_string(&labels).expect("labels serialize"),
                    serde_json::to_string(driver_opts).expect("options serialize"),
                    anonymous as i64
                ],
            )
            .map_err(db_err(format!("create {name}")))?;
        // One event per successful call, as docker logs them.
        let _ = events::emit(
            &self.root,
            &Event::new("volume", "create", &name).attr("driver", driver),
        );
        self.get(&name)
    }

    /// Recreates the row of a volume whose directory `volumes/<name>` exists but whose record
    /// was lost (`skiff system check --repair`): from the `volume.json` copy written at create
    /// when there is one, else as a plain local volume (anonymous when the name is 64 hex
    /// digits, as anonymous names are). Returns `None` when the volume already has a row.
    pub fn adopt(&self, name: &str) -> Result<Option<Volume>> {
        if !valid_name(name) {
            return Err(VolumeError::InvalidName(name.to_string()));
        }
        if self.find(name)?.is_some() {
            return Ok(None);
        }
        let vdir = self.dir().join(name);
        let meta: serde_json::Value = fs::read(vdir.join(RECORD_FILE))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        let hexname = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let anonymous = meta["Anonymous"].as_bool().unwrap_or(hexname);
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(meta["Labels"].clone()).unwrap_or_default();
        if anonymous {
            labels.entry(ANONYMOUS_LABEL.to_string()).or_default();
        }
        let options: BTreeMap<String, String> =
            serde_json::from_value(meta["Options"].clone()).unwrap_or_default();
        let created = meta["CreatedAt"].as_i64().unwrap_or_else(|| {
            fs::metadata(&vdir)
                .map(|m| m.mtime())
                .unwrap_or_else(|_| skiff_image::time::now_unix())
        });
        let data = vdir.join("_data");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&data)
            .map_err(io_err(format!("adopt {name}"), &data))?;
        // Whatever is in `_data` is the volume's content: never copy an image over it.
        self.db
            .execute(
                "INSERT OR IGNORE INTO volumes(name, driver, created, labels, options, anonymous, populated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![
                    name,
                    meta["Driver"].as_str().unwrap_or("local"),
                    created,
                    serde_json::to_string(&labels).expect("labels serialize"),
                    serde_json::to_string(&options).expect("options serialize"),
                    anonymous as i64
                ],
            )
            .map_err(db_err(format!("adopt {name}")))?;
        self.get(name).map(Some)
    }

    fn find(&self, name: &str) -> Result<Option<Volume>> {
        self.db
            .query_row(
                &format!("SELECT {COLUMNS} FROM volumes WHERE name = ?1"),
                [name],
                |r| row_to_volume(&self.root, r),
            )
            .optional()
            .map_err(db_err(format!("get {name}")))
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        self.find(name)?
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// The volume called `name`, created (with no options) if missing: `run -v name:/dst`.
    pub fn get_or_create(&self, name: &str) -> Result<Volume> {
        match self.find(name)? {
            Some(v) => Ok(v),
            None => self.create(Some(name), &BTreeMap::new(), &BTreeMap::new()),
        }
    }

    /// All volumes, in docker's natural name order.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut st = self
            .db
            .prepare(&format!("SELECT {COLUMNS} FROM volumes"))
            .map_err(db_err("list"))?;
        let mut v = st
            .query_map([], |r| row_to_volume(&self.root, r))
            .map_err(db_err("list"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err("list"))?;
        v.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        Ok(v)
    }

    /// Forgets uses by containers the `containers` table no longer has (after the grace period).
    fn forget_stale_uses(&self) -> Result<()> {
        let has_table: bool = self
            .db
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'containers'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db_err("check containers table"))?
            > 0;
        if has_table {
            self.db
                .execute(
                    "DELETE FROM container_volumes WHERE added < ?1
                     AND container_id NOT IN (SELECT id FROM containers)",
                    [skiff_image::time::now_unix() - STALE_USE_SECS],
                )
                .map_err(db_err("forget stale uses"))?;
        }
        Ok(())
    }

    /// Containers recorded as using `name`.
    pub fn users(&self, name: &str) -> Result<Vec<String>> {
        self.forget_stale_uses()?;
        let mut st = self
            .db
            .prepare("SELECT container_id FROM container_volumes WHERE volume = ?1 ORDER BY 1")
            .map_err(db_err(format!("users of {name}")))?;
        let v = st
            .query_map([name], |r| r.get(0))
            .map_err(db_err(format!("users of {name}")))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(db_err(format!("users of {name}")))?;
        Ok(v)
    }

    /// Volumes recorded as used by `container_id` (what `--volumes-from` shares, `rm -v` frees).
    pub fn volumes_of(&self, container_id: &str) -> Result<Vec<String>> {
        let what = || format!("volumes of {container_id}");
        let mut st = self
            .db
            .prepare("SELECT volume FROM container_volumes WHERE container_id = ?1 ORDER BY 1")
            .map_err(db_err(what()))?;
        let v = st
            .query_map([container_id], |r| r.get(0))
            .map_err(db_err(what()))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(db_err(what()))?;
        Ok(v)
    }

    /// Records that `container_id` uses volume `name` (idempotent).
    pub fn attach(&self, container_id: &str, name: &str) -> Result<()> {
        // One statement: the use is recorded only if the volume exists at that instant, so it
        // can never point at a volume a concurrent `remove` just deleted.
        self.db
            .execute(
                "INSERT OR IGNORE INTO container_volumes(container_id, volume, added)
                 SELECT ?1, name, ?3 FROM volumes WHERE name = ?2",
                params![container_id, name, skiff_image::time::now_unix()],
            )
            .map_err(db_err(format!("attach {name}")))?;
        // Zero rows: already recorded (fine) or no such volume.
        self.get(name).map(|_| ())
    }

    /// What `run -v name:/dst` needs: the volume (created if missing; anonymous when `name` is
    /// None), recorded as used by `container_id`, and mounted if it has driver options. Bind the
    /// returned volume's `mountpoint` into the container.
    pub fn use_volume(&self, name: Option<&str>, container_id: &str) -> Result<Volume> {
        let mut attempts = 0;
        let v = loop {
            let v = match name {
                Some(n) => self.get_or_create(n)?,
                None => self.create(None, &BTreeMap::new(), &BTreeMap::new())?,
            };
            match self.attach(container_id, &v.name) {
                Ok(()) => break v,
                // Removed between get and attach by another process: make it again. Once
                // attached it is in use and no remover can take it, so this ends; the bound only
                // guards against a remover spinning in a loop (3 was lost to one under load).
                Err(VolumeError::NotFound(_)) if name.is_some() && attempts < 100 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        self.mount(&v)?;
        Ok(v)
    }

    /// Drops every use recorded for `container_id`, unmounts option-mounted volumes nobody uses any
    /// more, and with `remove_anonymous` (`rm -v`) removes the container's anonymous volumes that
    /// no other container uses. Returns the names removed.
    pub fn release(&self, container_id: &str, remove_anonymous: bool) -> Result<Vec<String>> {
        let names = self.volumes_of(container_id)?;
        self.db
            .execute(
                "DELETE FROM container_volumes WHERE container_id = ?1",
                [container_id],
            )
            .map_err(db_err(format!("release {container_id}")))?;
        let mut removed = Vec::new();
        for n in names {
            let Some(v) = self.find(&n)? else { continue };
            if remove_anonymous && v.anonymous {
                // remove() re-checks "unused" atomically; another user keeps it.
                match self.remove(&n, false) {
                    Ok(()) => removed.push(n),
                    Err(VolumeError::InUse { .. }) | Err(VolumeError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            } else {
                self.unmount_if_unused(&v)?;
            }
        }
        Ok(removed)
    }

    /// Mounts a volume that has driver options onto its `_data` (no-op otherwise or if already
    /// mounted); returns the mountpoint.
    pub fn mount(&self, v: &Volume) -> Result<PathBuf> {
        let Some(m) = parse_mount_opts(&v.name, &v.options)? else {
            return Ok(v.mountpoint.clone());
        };
        let _lock = self.lock()?;
        if is_mountpoint(&v.mountpoint) {
            return Ok(v.mountpoint.clone());
        }
        let what = format!("mount {}", v.name);
        let src = CString::new(m.device.as_bytes()).map_err(|_| VolumeError::BadOptions {
            name: v.name.clone(),
            msg: "device contains a NUL byte".into(),
        })?;
        let fstype = CString::new(m.fstype.as_bytes()).expect("checked");
        let data = CString::new(m.data.as_bytes()).expect("checked");
        let target = CString::new(v.mountpoint.as_os_str().as_bytes()).map_err(|_| {
            VolumeError::BadOptions {
                name: v.name.clone(),
                msg: "mountpoint contains a NUL byte".into(),
            }
        })?;
        // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                m.flags & !libc::MS_RDONLY,
                if m.data.is_empty() {
                    std::ptr::null()
                } else {
                    data.as_ptr().cast()
                },
            )
        };
        if r != 0 {
            return Err(io_err(what, &v.mountpoint)(io::Error::last_os_error()));
        }
        if m.flags & libc::MS_RDONLY != 0 {
            // A bind ignores MS_RDONLY on the first call; remount to apply it.
            let extra = if m.flags & libc::MS_BIND != 0 {
                libc::MS_BIND
            } else {
                0
            };
            // SAFETY: as above; null source/fstype are allowed for a remount.
            let r = unsafe {
                libc::mount(
                    std::ptr::null(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_RDONLY | extra | (m.flags & !libc::MS_RDONLY),
                    std::ptr::null(),
                )
            };
            if r != 0 {
                let e = io::Error::last_os_error();
                let _ = umount(&v.mountpoint);
                return Err(io_err(what, &v.mountpoint)(e));
            }
        }
        Ok(v.mountpoint.clone())
    }

    /// Unmounts an option-mounted volume when no container uses it. The check and the unmount
    /// happen under the lock `mount` takes after `attach`, so a container that attached
    /// meanwhile keeps its mount.
    pub fn unmount_if_unused(&self, v: &Volume) -> Result<()> {
        if v.options.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        if !self.users(&v.name)?.is_empty() {
            return Ok(());
        }
        while is_mountpoint(&v.mountpoint) {
            umount(&v.mountpoint).map_err(io_err(format!("unmount {}", v.name), &v.mountpoint))?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<File> {
        let p = self.dir().join(".lock");
        let f = skiff_image::perms::lock_file(&p).map_err(io_err("lock", &p))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("lock", &p)(io::Error::last_os_error()));
        }
        Ok(f)
    }

    /// Removes a volume. `force` only turns "no such volume" into success; an in-use volume is
    /// refused either way, as docker does.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        self.remove_inner(name, force, true)
    }

    fn remove_inner(&self, name: &str, force: bool, event: bool) -> Result<()> {
        let v = match self.find(name)? {
            Some(v) => v,
            None if force => return Ok(()),
            None => return Err(VolumeError::NotFound(name.to_string())),
        };
        let what = || format!("remove {name}");
        self.forget_stale_uses()?;
        // Lock order everywhere: the volumes flock, then a database write; nobody waits for the
        // flock while holding a write transaction.
        let _lock = self.lock()?;
        // The write transaction makes "not in use" and the removal one step: a concurrent
        // `attach` waits for it, then finds no volume (and `use_volume` creates a fresh one).
        let tx = rusqlite::Transaction::new_unchecked(&self.db, TransactionBehavior::Immediate)
            .map_err(db_err(what()))?;
        // The row may have gone (and a new directory of that name be half made by a creator)
        // since `find` above: only a row seen inside the transaction licenses the rename.
        let exists: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM volumes WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(db_err(what()))?;
        if exists == 0 {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.to_string()))
            };
        }
        let users: Vec<String> = {
            let mut st = tx
                .prepare("SELECT container_id FROM container_volumes WHERE volume = ?1 ORDER BY 1")
                .map_err(db_err(what()))?;
            let v = st
                .query_map([name], |r| r.get(0))
                .map_err(db_err(what()))?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db_err(what()))?;
            v
        };
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                containers: users,
            });
        }
        if !v.options.is_empty() {
            while is_mountpoint(&v.mountpoint) {
                umount(&v.mountpoint).map_err(io_err(what(), &v.mountpoint))?;
            }
        }
        if is_mountpoint(&v.mountpoint) {
            return Err(VolumeError::Io {
                what: what(),
                path: v.mountpoint.clone(),
                cause: io::Error::new(io::ErrorKind::ResourceBusy, "still mounted"),
            });
        }
        let vdir = self.dir().join(name);
        let trash = self
            .dir()
            .join(format!(".rm-{name}-{}", &random_name()[..8]));
        let moved = match fs::rename(&vdir, &trash) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(what(), &vdir)(e)),
        };
        let r = tx
            .execute("DELETE FROM volumes WHERE name = ?1", [name])
            .and_then(|_| tx.commit());
        if let Err(e) = r {
            if moved {
                let _ = fs::rename(&trash, &vdir);
            }
            return Err(db_err(what())(e));
        }
        if moved {
            remove_tree(&trash).map_err(io_err(what(), &trash))?;
        }
        if event {
            let _ = events::emit(
                &self.root,
                &Event::new("volume", "destroy", name).attr("driver", &v.driver),
            );
        }
        Ok(())
    }

    /// Removes unused volumes: anonymous ones only, or all unused with `all` (docker ≥ 23). Logs
    /// one `prune` event, as docker does, instead of a `destroy` per volume.
    /// `label_filters` are `key`, `key=value`, `label!=key[=value]`-style pairs already split:
    /// `(negate, "key" or "key=value")`.
    pub fn prune(&self, all: bool, label_filters: &[(bool, String)]) -> Result<PruneReport> {
        let mut rep = PruneReport::default();
        for v in self.list()? {
            if !all && !v.anonymous && !v.labels.contains_key(ANONYMOUS_LABEL) {
                continue;
            }
            if !label_filters
                .iter()
                .all(|(neg, f)| label_matches(&v.labels, f) != *neg)
            {
                continue;
            }
            if !self.users(&v.name)?.is_empty() {
                continue;
            }
            let size = if v.options.is_empty() {
                disk_usage(&v.mountpoint)
            } else {
                0
            };
            match self.remove_inner(&v.name, false, false) {
                Ok(()) => {
                    rep.deleted.push(v.name);
                    rep.reclaimed += size;
                }
                Err(VolumeError::InUse { .. }) | Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // docker logs one `prune` event (no per-volume `destroy`).
        let _ = events::emit(
            &self.root,
            &Event::new("volume", "prune", "").attr("reclaimed", &rep.reclaimed.to_string()),
        );
        Ok(rep)
    }

    /// Copies `image_dir` (the image's content at the mount destination) into the volume on its
    /// first use, like docker: only when the volume has never been populated, has no driver
    /// options, and its `_data` is empty. Owners, modes, times, symlinks, hard links, device
    /// nodes and (best effort) xattrs are preserved; symlinks are never followed. Returns true when
    /// it copied.
    pub fn populate_from(&self, v: &Volume, image_dir: &Path) -> Result<bool> {
        if !v.options.is_empty() {
            return Ok(false);
        }
        let what = format!("populate {}", v.name);
        let populated: i64 = self
            .db
            .query_row(
                "SELECT populated FROM volumes WHERE name = ?1",
                [&v.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err(what.clone()))?
            .ok_or_else(|| VolumeError::NotFound(v.name.clone()))?;
        if populated != 0 {
            return Ok(false);
        }
        let meta = match fs::symlink_metadata(image_dir) {
            Ok(m) if m.is_dir() => m,
            _ => return Ok(false),
        };
        let _lock = self.lock()?;
        let empty = fs::read_dir(&v.mountpoint)
            .map_err(io_err(what.clone(), &v.mountpoint))?
            .next()
            .is_none();
        if !empty {
            return Ok(false);
        }
        let mut links = HashMap::new();
        copy_children(image_dir, &v.mountpoint, meta.dev(), &mut links)
            .map_err(io_err(what.clone(), image_dir))?;
        copy_meta(image_dir, &v.mountpoint, &meta).map_err(io_err(what.clone(), image_dir))?;
        self.db
            .execute(
                "UPDATE volumes SET populated = 1 WHERE name = ?1",
                [&v.name],
            )
            .map_err(db_err(what))?;
        Ok(true)
    }

    /// [`Volumes::populate_from`] with the destination resolved inside `rootfs` (symlinks in the
    /// image are resolved relative to the rootfs, never to the host).
    pub fn populate_from_rootfs(&self, v: &Volume, rootfs: &Path, dest: &str) -> Result<bool> {
        match resolve_in_root(rootfs, dest) {
            Some(p) => self.populate_from(v, &p),
            None => Ok(false),
        }
    }

    /// Apparent size in bytes of a volume's data (0 for option-mounted volumes).
    pub fn size(&self, v: &Volume) -> u64 {
        if v.options.is_empty() {
            disk_usage(&v.mountpoint)
        } else {
            0
        }
    }
}

/// Matches a `key` or `key=value` label filter.
pub fn label_matches(labels: &BTreeMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(f),
    }
}

/// Docker's natural sort order (digit runs compared numerically).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                let o = ta.len().cmp(&tb.len()).then(ta.cmp(tb));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| **c == b'0').count();
    &d[n..]
}

/// A parsed local-driver mount.
struct MountSpec {
    fstype: String,
    device: String,
    flags: libc::c_ulong,
    data: String,
}

/// Validates local driver options; Some when the volume needs a mount.
fn parse_mount_opts(name: &str, opts: &BTreeMap<String, String>) -> Result<Option<MountSpec>> {
    let bad = |msg: String| VolumeError::BadOptions {
        name: name.to_string(),
        msg,
    };
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(bad(format!("invalid option: {k:?}")));
        }
    }
    if opts.is_empty() {
        return Ok(None);
    }
    let fstype = opts.get("type").cloned().unwrap_or_default();
    let device = opts.get("device").cloned().unwrap_or_default();
    let o = opts.get("o").cloned().unwrap_or_default();
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let f = match opt {
            "bind" => libc::MS_BIND,
            "rbind" => libc::MS_BIND | libc::MS_REC,
            "ro" => libc::MS_RDONLY,
            "rw" => 0,
            "nosuid" => libc::MS_NOSUID,
            "nodev" => libc::MS_NODEV,
            "noexec" => libc::MS_NOEXEC,
            "sync" => libc::MS_SYNCHRONOUS,
            "noatime" => libc::MS_NOATIME,
            "nodiratime" => libc::MS_NODIRATIME,
            "relatime" => libc::MS_RELATIME,
            "strictatime" => libc::MS_STRICTATIME,
            "suid" | "dev" | "exec" | "async" | "defaults" => 0,
            other => {
                data.push(other.to_string());
                0
            }
        };
        flags |= f;
    }
    if let Some(size) = opts.get("size") {
        if fstype != "tmpfs" {
            return Err(bad("size option is only supported for type=tmpfs".into()));
        }
        data.push(format!("size={size}"));
    }
    let is_bind = flags & libc::MS_BIND != 0;
    if fstype.is_empty() && !is_bind {
        return Err(bad("missing required option: \"type\"".into()));
    }
    if device.is_empty() && !is_bind && fstype != "tmpfs" {
        return Err(bad("missing required option: \"device\"".into()));
    }
    if is_bind {
        if !device.starts_with('/') {
            return Err(bad(format!(
                "bind device {device:?} must be an absolute host path"
            )));
        }
        if !Path::new(&device).is_dir() {
            return Err(bad(format!("bind device {device:?}: no such directory")));
        }
    }
    let data = data.join(",");
    if fstype.contains('\0') || data.contains('\0') {
        return Err(bad("options contain a NUL byte".into()));
    }
    Ok(Some(MountSpec {
        fstype: if fstype.is_empty() || fstype == "none" && is_bind {
            "none".into()
        } else {
            fstype.clone()
        },
        device: if device.is_empty() { fstype } else { device },
        flags,
        data,
    }))
}

fn umount(p: &Path) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `p` is a mount point in this process's mount namespace.
pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(p) else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape_mountinfo(m)) == canon)
    })
}

/// Removes a directory tree without crossing into other filesystems (a mount left inside is
/// skipped, never emptied).
fn remove_tree(p: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(p)?;
    remove_tree_on(p, meta.dev())
}

fn remove_tree_on(p: &Path, dev: u64) -> io::Result<()> {
    let meta = fs::symlink_metadata(p)?;
    if meta.is_dir() {
        if meta.dev() != dev || is_mountpoint(p) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{} is a mount point", p.display()),
            ));
        }
        // Make sure we can enter and list it even if the container made it 0000.
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
        for e in fs::read_dir(p)? {
            remove_tree_on(&e?.path(), dev)?;
        }
        fs::remove_dir(p)
    } else {
        fs::remove_file(p)
    }
}

/// Apparent size of the files under `p` (hard links counted once, not crossing filesystems).
pub fn disk_usage(p: &Path) -> u64 {
    fn walk(p: &Path, dev: u64, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(m) = fs::symlink_metadata(p) else {
            return 0;
        };
        if m.dev() != dev {
            return 0;
        }
        if m.is_dir() {
            let mut n = 0;
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    n += walk(&e.path(), dev, seen);
                }
            }
            n
        } else if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
            0
        } else {
            m.len()
        }
    }
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    walk(p, m.dev(), &mut Default::default())
}

/// Resolves `dest` (an absolute path inside a container) under `rootfs`, following symlinks as
/// if `rootfs` were `/`. None when a component is missing or the chain is too long.
pub fn resolve_in_root(rootfs: &Path, dest: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = dest
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let mut p = rootfs.to_path_buf();
        p.extend(cur.iter());
        p.push(&c);
        let m = fs::symlink_metadata(&p).ok()?;
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&p).ok()?;
            if target.is_absolute() {
                cur.clear();
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        } else {
            cur.push(c);
        }
    }
    let mut p = rootfs.to_path_buf();
    p.extend(cur.iter());
    Some(p)
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_times(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    let c = cstr(p)?;
    let ts = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: valid path and a two-element timespec array.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies xattrs best effort (unsupported filesystems and denied namespaces are skipped).
fn copy_xattrs(src: &Path, dst: &Path) {
    let (Ok(s), Ok(d)) = (cstr(src), cstr(dst)) else {
        return;
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: buffer pointer/length describe `names`.
    let n = unsafe { libc::llistxattr(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return;
    }
    names.truncate(n as usize);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut val = vec![0u8; 65536];
        // SAFETY: valid strings; buffer pointer/length describe `val`.
        let n = unsafe {
            libc::lgetxattr(
                s.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if n < 0 {
            continue;
        }
        // SAFETY: valid strings; the value is the first n bytes of `val`.
        unsafe {
            libc::lsetxattr(
                d.as_ptr(),
                cname.as_ptr(),
                val.as_ptr().cast(),
                n as usize,
                0,
            );
        }
    }
}

fn copy_meta(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    lchown(dst, m.uid(), m.gid())?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    copy_xattrs(src, dst);
    set_times(dst, m)
}

fn copy_children(
    src: &Path,
    dst: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        copy_entry(&e.path(), &dst.join(e.file_name()), dev, links)?;
    }
    Ok(())
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let m = fs::symlink_metadata(src)?;
    let ft = m.file_type();
    if !ft.is_dir() && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            return fs::hard_link(first, dst);
        }
        links.insert((m.dev(), m.ino()), dst.to_path_buf());
    }
    if ft.is_dir() {
        fs::DirBuilder::new().mode(0o700).create(dst)?;
        if m.dev() == dev {
            copy_children(src, dst, dev, links)?;
        }
        copy_meta(src, dst, &m)
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
        lchown(dst, m.uid(), m.gid())?;
        copy_xattrs(src, dst);
        set_times(dst, &m)
    } else if ft.is_file() {
        let mut from = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(src)?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)?;
        io::copy(&mut from, &mut to)?;
        drop(to);
        copy_meta(src, dst, &m)
    } else {
        // Device nodes, fifos, sockets.
        let c = cstr(dst)?;
        // SAFETY: valid path; mode and rdev come from lstat of the source.
        if unsafe {
            libc::mknod(
                c.as_ptr(),
                m.mode() as libc::mode_t,
                m.rdev() as libc::dev_t,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        copy_meta(src, dst, &m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("data"));
        assert!(valid_name("a.b_c-1"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        let r = random_name();
        assert_eq!(r.len(), 64);
        assert!(r.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(r, random_name());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["v10", "v2", "v1", "a", "v02x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "v1", "v2", "v02x", "v10"]);
    }

    #[test]
    fn options() {
        let o = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(parse_mount_opts("v", &o(&[])).unwrap().is_none());
        assert!(parse_mount_opts("v", &o(&[("bogus", "1")])).is_err());
        let t = parse_mount_opts("v", &o(&[("type", "tmpfs"), ("o", "size=1m,nosuid")]))
            .unwrap()
            .unwrap();
        assert_eq!(t.data, "size=1m");
        assert_eq!(t.flags, libc::MS_NOSUID);
        let b = parse_mount_opts(
            "v",
            &o(&[("type", "none"), ("o", "bind"), ("device", "/tmp")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.flags, libc::MS_BIND);
        assert!(parse_mount_opts("v", &o(&[("o", "bind"), ("device", "rel")])).is_err());
    }

    #[test]
    fn resolve() {
        let d = tempfile_dir();
        fs::create_dir_all(d.join("usr/data")).unwrap();
        std::os::unix::fs::symlink("/usr/data", d.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../..", d.join("usr/up")).unwrap();
        assert_eq!(resolve_in_root(&d, "/data").unwrap(), d.join("usr/data"));
        assert_eq!(resolve_in_root(&d, "/usr/up/usr").unwrap(), d.join("usr"));
        assert!(resolve_in_root(&d, "/missing").is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let p = std::env::temp_dir().join(format!("skiff-vol-unit-{}", random_name()));
        fs::create_dir_all(&p).unwrap();
        p
    }
}
