//! The image store under one root directory:
//!
//! ```text
//! <root>/skiff.db                 SQLite (WAL): images, tags, repo digests
//! <root>/content/                 OCI image layout (oci-layout, index.json, blobs/sha256/<hex>)
//! <root>/snapshots/<chain>/fs     one unpacked layer each (+ meta.json), shared by chain id
//! <root>/tmp/                     in-flight blobs and archives (swept at startup)
//! ```
//!
//! Crash safety: a blob is written to `tmp/`, fsynced, verified against its digest and renamed into
//! `blobs/`; a snapshot is unpacked into `snapshots/.tmp-*` and renamed into place; an image row is
//! inserted (one transaction) only after all of its blobs and snapshots exist; `index.json` is
//! regenerated from the database (temp + fsync + rename). So `kill -9` anywhere leaves either no
//! image or a whole one. Every process holds a shared `flock` on `gc.lock`; the startup sweep and the
//! garbage collector run only under the exclusive lock, so they never delete another process's
//! in-flight files.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::compress;
use crate::digest::{Digest, Hasher, HashingReader, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::perms;
use crate::platform::Platform;
use crate::spec::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::sys;
use crate::time;
use crate::unpack::{self, UnpackOptions};

/// One image as recorded in the database.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRecord {
    /// Image id: the config digest.
    pub id: Digest,
    /// The platform manifest in the content store.
    pub manifest_digest: Digest,
    /// Media type of that manifest.
    pub manifest_media_type: String,
    /// Size of that manifest.
    pub manifest_size: u64,
    /// The index it was selected from, if any (its digest is the repo digest docker shows).
    pub index_digest: Option<Digest>,
    /// Platform of the image.
    pub platform: Platform,
    /// Unpacked size (sum of layer contents).
    pub size: u64,
    /// `created` of the config, epoch seconds (0 when absent).
    pub created: i64,
    /// Names (`registry/repo:tag`, fully qualified) pointing at it.
    pub tags: Vec<String>,
    /// `registry/repo@sha256:...` it was pulled or pushed as.
    pub repo_digests: Vec<String>,
}

/// What [`Store::record_image`] needs.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The platform manifest (already in the store).
    pub manifest: Descriptor,
    /// The index it came from.
    pub index_digest: Option<Digest>,
    /// Names to point at it (fully qualified `repo:tag`); moved from other images.
    pub tags: Vec<String>,
    /// Repo digests to record (`repo@sha256:...`).
    pub repo_digests: Vec<String>,
}

/// Snapshot metadata stored next to `fs/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Diff id of the layer.
    pub diff_id: Digest,
    /// Bytes of regular files.
    pub size: u64,
}

/// What garbage collection removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs: Vec<Digest>,
    /// Snapshots deleted.
    pub snapshots: usize,
    /// Bytes of blobs deleted.
    pub bytes: u64,
    /// False when another skiff process held the store, so nothing was deleted.
    pub ran: bool,
}

/// The blobs and snapshots present at one moment, so a failed operation can remove exactly what
/// it added ([`Store::discard_new`]).
#[derive(Debug, Clone, Default)]
pub struct ContentMark {
    blobs: HashSet<String>,
    snapshots: HashSet<String>,
}

/// The image store.
pub struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
    gc_lock: File,
    unpack: UnpackOptions,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temp name `<prefix>-<pid>-<nanos>-<n>`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images(
  id TEXT PRIMARY KEY,
  manifest_digest TEXT NOT NULL,
  manifest_media_type TEXT NOT NULL,
  manifest_size INTEGER NOT NULL,
  index_digest TEXT,
  os TEXT NOT NULL, arch TEXT NOT NULL, variant TEXT,
  size INTEGER NOT NULL,
  created INTEGER NOT NULL,
  added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tags(name TEXT PRIMARY KEY, image_id TEXT NOT NULL, added INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS repo_digests(ref TEXT PRIMARY KEY, image_id TEXT NOT NULL);
";

/// A blob being written: hashes as it goes, becomes visible only on [`BlobWriter::commit`].
pub struct BlobWriter {
    inner: HashingWriter<io::BufWriter<File>>,
    tmp: PathBuf,
    blobs: PathBuf,
    committed: bool,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.hasher.len()
    }
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The running hash (for callers that tee elsewhere).
    pub fn hasher(&self) -> &Hasher {
        &self.inner.hasher
    }
    /// fsyncs, verifies against `expected` (if given) and renames into `blobs/sha256/`.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.inner
            .flush()
            .ctx(|| format!("write {}", self.tmp.display()))?;
        let digest = self.inner.hasher.clone().finish();
        let size = self.inner.hasher.len();
        if let Some(exp) = expected {
            if exp != &digest {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        self.inner
            .inner
            .get_ref()
            .sync_all()
            .ctx(|| format!("fsync {}", self.tmp.display()))?;
        let dst = self.blobs.join(digest.hex());
        fs::rename(&self.tmp, &dst).ctx(|| format!("commit blob {digest}"))?;
        sys::fsync_dir(&self.blobs).ctx(|| format!("fsync {}", self.blobs.display()))?;
        self.committed = true;
        Ok((digest, size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}", unique("tmp")));
    let r = (|| -> io::Result<()> {
        let mut f = perms::create_private(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sys::fsync_dir(dir)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.ctx(|| format!("write {}", path.display()))
}

impl Store {
    /// Opens (creating if needed) the store at `root`, sweeping leftovers of crashed processes when
    /// no other skiff process is using it.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        perms::open_root(&root).ctx(|| format!("create {}", root.display()))?;
        for d in [
            "content",
            "content/blobs",
            "content/blobs/sha256",
            "snapshots",
            "tmp",
        ] {
            perms::mkdir(&root.join(d), perms::PRIVATE_DIR)
                .ctx(|| format!("create {}", root.join(d).display()))?;
        }
        let gc_path = root.join("gc.lock");
        let gc_lock = perms::lock_file(&gc_path).ctx(|| format!("open {}", gc_path.display()))?;
        let exclusive = sys::flock(gc_lock.as_fd(), true, true).ctx(|| "lock store".into())?;
        let conn = crate::statedb::open(&root)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| Error::db("busy timeout", e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| Error::db("enable WAL", e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| Error::db("set synchronous", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| Error::db("create schema", e))?;
        let store = Store {
            root,
            db: Mutex::new(conn),
            gc_lock,
            unpack: UnpackOptions::default(),
        };
        let layout = store.content_dir().join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if exclusive {
            store.sweep()?;
            // index.json is regenerated from the records (a crash may have left it behind them),
            // except when there are no records at all: then it is the only list of the images
            // left, kept for `skiff system check --repair` rather than emptied.
            if !store.list()?.is_empty() || store.index_json_manifests().is_empty() {
                store.write_index_json()?;
            }
        }
        // Downgrade (or wait) to a shared lock held for the life of the store.
        sys::flock(store.gc_lock.as_fd(), false, false).ctx(|| "lock store".into())?;
        Ok(store)
    }

    fn sweep(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        // A build killed mid-step leaves its overlay mounted under tmp/ (skiff build mounts a
        // step's root there): no other skiff process has the store open now, so every mount
        // below tmp/ is stale. Detached first (deepest first), so the removal below never
        // reaches through one into its layers or fails on a busy mount point.
        if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
            let prefix = format!("{}/", tmp.display());
            let mut stale: Vec<&str> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|m| m.starts_with(&prefix))
                .collect();
            stale.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in stale {
                if let Ok(c) = std::ffi::CString::new(m) {
                    // SAFETY: a NUL-terminated path; MNT_DETACH of a mount skiff made below tmp/.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        for e in fs::read_dir(&tmp)
            .ctx(|| format!("read {}", tmp.display()))?
            .flatten()
        {
            sys::remove_all(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
        }
        let snaps = self.root.join("snapshots");
        for e in fs::read_dir(&snaps)
            .ctx(|| format!("read {}", snaps.display()))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                sys::remove_all(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
            }
        }
        let content = self.content_dir();
        for e in fs::read_dir(&content)
            .ctx(|| format!("read {}", content.display()))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The OCI layout directory.
    pub fn content_dir(&self) -> PathBuf {
        self.root.join("content")
    }
    /// Path of a blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("content/blobs/sha256").join(d.hex())
    }
    /// True if the blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }
    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {d} is not in the content store"))
            } else {
                Error::io(format!("open blob {d}"), e)
            }
        })
    }
    /// Reads a (small) blob and re-verifies its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut data)
            .ctx(|| format!("read blob {d}"))?;
        d.verify("blob", &data)?;
        Ok(data)
    }
    /// A new directory under `tmp/` (swept at startup if we crash).
    pub fn temp_dir(&self, prefix: &str) -> Result<PathBuf> {
        let p = self.root.join("tmp").join(unique(prefix));
        fs::DirBuilder::new()
            .mode(perms::PRIVATE_DIR)
            .create(&p)
            .ctx(|| format!("create {}", p.display()))?;
        Ok(p)
    }
    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let tmp = self.root.join("tmp").join(unique("blob"));
        let f = perms::create_private(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        Ok(BlobWriter {
            inner: HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, f)),
            tmp,
            blobs: self.root.join("content/blobs/sha256"),
            committed: false,
        })
    }
    /// Writes a whole blob from memory (verifying `expected` if given).
    pub fn put_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let d = Digest::of(data);
        if let Some(exp) = expected {
            exp.verify("blob", data)?;
        }
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer()?;
        w.write_all(data).ctx(|| "write blob".into())?;
        Ok(w.commit(Some(&d))?.0)
    }
    /// Moves an already hashed file (on the same filesystem) into the store as a blob.
    pub fn adopt_blob(&self, file: &Path, digest: &Digest) -> Result<()> {
        if self.has_blob(digest) {
            let _ = fs::remove_file(file);
            return Ok(());
        }
        File::open(file)
            .and_then(|f| f.sync_all())
            .ctx(|| format!("fsync {}", file.display()))?;
        let blobs = self.root.join("content/blobs/sha256");
        fs::rename(file, blobs.join(digest.hex())).ctx(|| format!("commit blob {digest}"))?;
        sys::fsync_dir(&blobs).ctx(|| format!("fsync {}", blobs.display()))
    }

    /// Directory of the snapshot for a chain id.
    pub fn snapshot_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain.hex())
    }
    /// True if the snapshot for a chain id is committed.
    pub fn has_snapshot(&self, chain: &Digest) -> bool {
        self.snapshot_dir(chain).join("meta.json").is_file()
    }
    /// Metadata of a committed snapshot.
    pub fn snapshot_meta(&self, chain: &Digest) -> Result<SnapshotMeta> {
        let p = self.snapshot_dir(chain).join("meta.json");
        let data = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(format!("snapshot {}", p.display()), e))
    }

    /// Unpacks a (possibly compressed) layer stream into the snapshot for `chain`, verifying the
    /// uncompressed stream against `diff_id`. A snapshot that already exists is left alone (the
    /// stream is still drained so callers' hashes cover it).
    pub fn unpack_snapshot<R: Read + Send>(
        &self,
        chain: &Digest,
        diff_id: &Digest,
        layer: R,
    ) -> Result<u64> {
        let tmp = self
            .root
            .join("snapshots")
            .join(format!(".{}", unique("tmp")));
        let fsdir = tmp.join("fs");
        // The snapshot directory is private (it holds an image's setuid files); `fs` is the
        // layer's root directory, which the unpacker gives the layer's `./` mode if it has one.
        perms::mkdir(&tmp, perms::PRIVATE_DIR)
            .and_then(|_| perms::mkdir_shared(&fsdir, perms::SHARED_DIR))
            .ctx(|| format!("create {}", fsdir.display()))?;
        let result = (|| -> Result<u64> {
            let plain =
                compress::decompress(layer).ctx(|| format!("decompress layer {diff_id}"))?;
            let mut hr = HashingReader::new(plain);
            let stats = unpack::unpack_layer(&mut hr, &fsdir, &self.unpack)?;
            io::copy(&mut hr, &mut io::sink()).ctx(|| format!("read layer {diff_id}"))?;
            let got = hr.hasher.finish();
            if &got != diff_id {
                return Err(Error::DigestMismatch {
                    what: "layer diff id".into(),
                    expected: diff_id.to_string(),
                    actual: got.to_string(),
                });
            }
            let meta = SnapshotMeta {
                diff_id: diff_id.clone(),
                size: stats.size,
            };
            let json = serde_json::to_vec(&meta).map_err(|e| Error::invalid("snapshot meta", e))?;
            perms::write_file(&tmp.join("meta.json"), &json, perms::PRIVATE_FILE)
                .ctx(|| format!("write {}", tmp.display()))?;
            Ok(stats.size)
        })();
        let size = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = sys::remove_all(&tmp);
                return Err(e);
            }
        };
        let dst = self.snapshot_dir(chain);
        if dst.exists() && !self.has_snapshot(chain) {
            // A half snapshot from an older layout: replace.
            let _ = sys::remove_all(&dst);
        }
        match fs::rename(&tmp, &dst) {
            Ok(()) => {}
            Err(e) if dst.exists() => {
                let _ = e;
                let _ = sys::remove_all(&tmp);
            }
            Err(e) => {
                let _ = sys::remove_all(&tmp);
                return Err(Error::io(format!("commit snapshot {chain}"), e));
            }
        }
        Ok(size)
    }

    /// Makes sure every layer of an image is unpacked, unpacking missing ones from local blobs in
    /// parallel. Returns the chain ids, bottom first.
    pub fn ensure_snapshots(
        &self,
        manifest: &Manifest,
        config: &ImageConfig,
    ) -> Result<Vec<Digest>> {
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::invalid(
                "image",
                format!(
                    "manifest has {} layers but config lists {} diff ids",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let chains = Digest::chain_ids(diff_ids);
        let missing: Vec<usize> = (0..chains.len())
            .filter(|&i| !self.has_snapshot(&chains[i]))
            .collect();
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = missing
                .iter()
                .map(|&i| {
                    let (chain, diff, layer) = (&chains[i], &diff_ids[i], &manifest.layers[i]);
                    s.spawn(move || -> Result<()> {
                        let f = self.open_blob(&layer.digest)?;
                        let mut hr =
                            HashingReader::new(io::BufReader::with_capacity(256 * 1024, f));
                        self.unpack_snapshot(chain, diff, &mut hr)?;
                        let (got, _) = hr.drain().ctx(|| format!("read blob {}", layer.digest))?;
                        if got != layer.digest {
                            return Err(Error::DigestMismatch {
                                what: format!("layer blob {}", layer.digest),
                                expected: layer.digest.to_string(),
                                actual: got.to_string(),
                            });
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| Error::invalid("unpack", "worker panicked"))??;
            }
            Ok(())
        })?;
        Ok(chains)
    }

    fn lock_meta(&self) -> Result<File> {
        let p = self.root.join("meta.lock");
        let f = perms::lock_file(&p).ctx(|| format!("open {}", p.display()))?;
        sys::flock(f.as_fd(), true, false).ctx(|| format!("lock {}", p.display()))?;
        Ok(f)
    }

    /// Reads and parses the manifest of a descriptor from the store.
    pub fn manifest(&self, d: &Digest) -> Result<(Manifest, Vec<u8>)> {
        let data = self.read_blob(d)?;
        match spec::parse_document(&data, None)? {
            spec::Document::Manifest(m) => Ok((*m, data)),
            spec::Document::Index(_) => Err(Error::invalid(format!("manifest {d}"), "is an index")),
        }
    }
    /// Reads and parses an image config from the store.
    pub fn config(&self, d: &Digest) -> Result<(ImageConfig, Vec<u8>)> {
        let data = self.read_blob(d)?;
        Ok((ImageConfig::parse(&data)?, data))
    }

    /// Records an image whose manifest, config and layer blobs are all in the store, unpacking any
    /// missing snapshot first. Tags move from other images to this one. Atomic.
    pub fn record_image(&self, new: &NewImage) -> Result<ImageRecord> {
        let (manifest, _) = self.manifest(&new.manifest.digest)?;
        let (config, _) = self.config(&manifest.config.digest)?;
        for l in &manifest.layers {
            if !self.has_blob(&l.digest) {
                return Err(Error::NotFound(format!(
                    "layer {} is not in the content store",
                    l.digest
                )));
            }
        }
        let chains = self.ensure_snapshots(&manifest, &config)?;
        let mut size = 0;
        for c in &chains {
            size += self.snapshot_meta(c)?.size;
        }
        let id = manifest.config.digest.clone();
        let platform = config.platform();
        let created = config
            .created
            .as_deref()
            .and_then(time::parse_rfc3339)
            .unwrap_or(0);
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| new.manifest.media_type.clone());
        let _lock = self.lock_meta()?;
        {
            let mut db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            let tx = db.transaction().map_err(|e| Error::db("begin", e))?;
            let now = time::now_unix();
            tx.execute(
                "INSERT INTO images(id, manifest_digest, manifest_media_type, manifest_size, index_digest, os, arch, variant, size, created, added)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)
                 ON CONFLICT(id) DO UPDATE SET manifest_digest=?2, manifest_media_type=?3, manifest_size=?4,
                   index_digest=COALESCE(?5, index_digest), size=?9",
                params![
                    id.as_str(),
                    new.manifest.digest.as_str(),
                    media_type,
                    new.manifest.size as i64,
                    new.index_digest.as_ref().map(Digest::as_str),
                    platform.os,
                    platform.architecture,
                    platform.variant,
                    size as i64,
                    created,
                    now
                ],
            )
            .map_err(|e| Error::db("insert image", e))?;
            for t in &new.tags {
                tx.execute(
                    "INSERT INTO tags(name, image_id, added) VALUES(?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET image_id=?2, added=?3",
                    params![t, id.as_str(), now],
                )
                .map_err(|e| Error::db("insert tag", e))?;
            }
            for r in &new.repo_digests {
                tx.execute(
                    "INSERT INTO repo_digests(ref, image_id) VALUES(?1, ?2) ON CONFLICT(ref) DO UPDATE SET image_id=?2",
                    params![r, id.as_str()],
                )
                .map_err(|e| Error::db("insert repo digest", e))?;
            }
            tx.commit().map_err(|e| Error::db("commit image", e))?;
        }
        self.write_index_json()?;
        self.get(&id)
    }

    fn row_to_record(db: &Connection, row: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
        let id: String = row.get(0)?;
        let parse = |s: String| {
            Digest::parse(&s).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        };
        let mut tags_stmt =
            db.prepare_cached("SELECT name FROM tags WHERE image_id=?1 ORDER BY added, name")?;
        let tags = tags_stmt
            .query_map([&id], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut rd_stmt =
            db.prepare_cached("SELECT ref FROM repo_digests WHERE image_id=?1 ORDER BY ref")?;
        let repo_digests = rd_stmt
            .query_map([&id], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ImageRecord {
            id: parse(id)?,
            manifest_digest: parse(row.get(1)?)?,
            manifest_media_type: row.get(2)?,
            manifest_size: row.get::<_, i64>(3)? as u64,
            index_digest: row.get::<_, Option<String>>(4)?.map(parse).transpose()?,
            platform: Platform {
                os: row.get(5)?,
                architecture: row.get(6)?,
                variant: row.get(7)?,
                os_version: None,
            },
            size: row.get::<_, i64>(8)? as u64,
            created: row.get(9)?,
            tags,
            repo_digests,
        })
    }

    const COLS: &'static str = "id, manifest_digest, manifest_media_type, manifest_size, index_digest, os, arch, variant, size, created";

    /// The tags held of repository `repo` (a name without tag), sorted, once each: what
    /// `push --all-tags` pushes.
    pub fn repo_tags(&self, repo: &str) -> Result<Vec<String>> {
        let prefix = format!("{repo}:");
        let mut t: Vec<String> = self
            .list()?
            .iter()
            .flat_map(|i| i.tags.iter())
            .filter_map(|t| t.strip_prefix(&prefix))
            .filter(|t| !t.contains('/'))
            .map(str::to_string)
            .collect();
        t.sort();
        t.dedup();
        Ok(t)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let db = self
            .db
            .lock()
            .map_err(|_| Error::invalid("database", "lock poisoned"))?;
        let mut stmt = db
            .prepare(&format!(
                "SELECT {} FROM images ORDER BY created DESC, added DESC, id",
                Self::COLS
            ))
            .map_err(|e| Error::db("list images", e))?;
        let rows = stmt
            .query_map([], |r| Self::row_to_record(&db, r))
            .map_err(|e| Error::db("list images", e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| Error::db("list images", e))?;
        Ok(rows)
    }

    /// The image with this exact id.
    pub fn get(&self, id: &Digest) -> Result<ImageRecord> {
        let db = self
            .db
            .lock()
            .map_err(|_| Error::invalid("database", "lock poisoned"))?;
        db.query_row(
            &format!("SELECT {} FROM images WHERE id=?1", Self::COLS),
            [id.as_str()],
            |r| Self::row_to_record(&db, r),
        )
        .optional()
        .map_err(|e| Error::db("get image", e))?
        .ok_or_else(|| Error::NotFound(format!("No such image: {id}")))
    }

    /// The image a fully qualified `repo:tag` names.
    pub fn by_tag(&self, name: &str) -> Result<Option<ImageRecord>> {
        let id: Option<String> = {
            let db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            db.query_row("SELECT image_id FROM tags WHERE name=?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| Error::db("find tag", e))?
        };
        id.map(|i| self.get(&Digest::parse(&i)?)).transpose()
    }

    /// The image a `repo@sha256:...` names (its manifest, index or a recorded repo digest).
    pub fn by_repo_digest(&self, repo: &str, digest: &Digest) -> Result<Option<ImageRecord>> {
        let key = format!("{repo}@{digest}");
        let id: Option<String> = {
            let db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            let by_ref: Option<String> = db
                .query_row(
                    "SELECT image_id FROM repo_digests WHERE ref=?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| Error::db("find digest", e))?;
            match by_ref {
                Some(i) => Some(i),
                None => db
                    .query_row(
                        "SELECT id FROM images WHERE manifest_digest=?1 OR index_digest=?1 LIMIT 1",
                        [digest.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| Error::db("find digest", e))?,
            }
        };
        id.map(|i| self.get(&Digest::parse(&i)?)).transpose()
    }

    /// Resolves what a user typed (name, name:tag, name@digest, id or id prefix) to an image;
    /// [`Error::NotFound`] with docker's `No such image: …` otherwise. The CLI and `skiff serve`
    /// both resolve through this.
    pub fn resolve(&self, s: &str) -> Result<ImageRecord> {
        let not_found = || Error::NotFound(format!("No such image: {s}"));
        if let Some(hex) = s.strip_prefix("sha256:") {
            return self.by_id_prefix(hex)?.ok_or_else(not_found);
        }
        if let Ok(n) = crate::names::Name::parse(s) {
            if let Some(d) = &n.digest {
                let d = Digest::parse(d)?;
                return self.by_repo_digest(&n.repo(), &d)?.ok_or_else(not_found);
            }
            if let Some(t) = n.tagged() {
                if let Some(img) = self.by_tag(&t)? {
                    return Ok(img);
                }
            }
        }
        if s.len() >= 4 || s.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(img) = self.by_id_prefix(s)? {
                return Ok(img);
            }
        }
        Err(not_found())
    }

    /// The image whose id starts with `prefix` (hex, optionally `sha256:`); errors when ambiguous.
    pub fn by_id_prefix(&self, prefix: &str) -> Result<Option<ImageRecord>> {
        let p = prefix.strip_prefix("sha256:").unwrap_or(prefix);
        if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let ids: Vec<String> = {
            let db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            let mut stmt = db
                .prepare("SELECT id FROM images WHERE id LIKE ?1")
                .map_err(|e| Error::db("find id", e))?;
            let like = format!("sha256:{}%", p.to_lowercase());
            let rows = stmt
                .query_map([like], |r| r.get(0))
                .map_err(|e| Error::db("find id", e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| Error::db("find id", e))?;
            rows
        };
        match ids.len() {
            0 => Ok(None),
            1 => Ok(Some(self.get(&Digest::parse(&ids[0])?)?)),
            _ => Err(Error::Conflict(format!(
                "multiple IDs found with provided prefix: {prefix}"
            ))),
        }
    }

    /// Points a fully qualified `repo:tag` at an image.
    pub fn tag(&self, id: &Digest, name: &str) -> Result<()> {
        let _lock = self.lock_meta()?;
        {
            let db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            db.execute(
                "INSERT INTO tags(name, image_id, added) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET image_id=?2, added=?3",
                params![name, id.as_str(), time::now_unix()],
            )
            .map_err(|e| Error::db("tag", e))?;
        }
        self.write_index_json()
    }

    /// Removes a name; returns false if it did not exist.
    pub fn untag(&self, name: &str) -> Result<bool> {
        let _lock = self.lock_meta()?;
        let n = {
            let db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            db.execute("DELETE FROM tags WHERE name=?1", [name])
                .map_err(|e| Error::db("untag", e))?
        };
        self.write_index_json()?;
        Ok(n > 0)
    }

    /// Deletes an image record with its tags and repo digests (blobs go at the next [`Store::gc`]).
    pub fn delete_image(&self, id: &Digest) -> Result<()> {
        let _lock = self.lock_meta()?;
        {
            let mut db = self
                .db
                .lock()
                .map_err(|_| Error::invalid("database", "lock poisoned"))?;
            let tx = db.transaction().map_err(|e| Error::db("begin", e))?;
            for sql in [
                "DELETE FROM tags WHERE image_id=?1",
                "DELETE FROM repo_digests WHERE image_id=?1",
                "DELETE FROM images WHERE id=?1",
            ] {
                tx.execute(sql, [id.as_str()])
                    .map_err(|e| Error::db("delete image", e))?;
            }
            tx.commit().map_err(|e| Error::db("delete image", e))?;
        }
        self.write_index_json()
    }

    /// Regenerates `content/index.json` from the database (one entry per name, plus one per
    /// untagged image).
    pub fn write_index_json(&self) -> Result<()> {
        let images = self.list()?;
        let mut manifests = Vec::new();
        for img in &images {
            let mut base = Descriptor::new(
                &img.manifest_media_type,
                img.manifest_digest.clone(),
                img.manifest_size,
            );
            base.platform = Some(img.platform.clone());
            if img.tags.is_empty() {
                manifests.push(base);
                continue;
            }
            for t in &img.tags {
                let mut d = base.clone();
                let mut ann = BTreeMap::new();
                ann.insert(spec::ANNOTATION_REF_NAME.to_string(), layout_ref_name(t));
                ann.insert(spec::ANNOTATION_IMAGE_NAME.to_string(), t.clone());
                d.annotations = Some(ann);
                manifests.push(d);
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(spec::OCI_INDEX.to_string()),
            manifests,
            annotations: None,
            extra: BTreeMap::new(),
        };
        let json =
            serde_json::to_vec_pretty(&index).map_err(|e| Error::invalid("index.json", e))?;
        let path = self.content_dir().join("index.json");
        // Regenerated by every first opener of the store: unchanged, it is not rewritten (two
        // fsyncs per command otherwise).
        if fs::read(&path).is_ok_and(|old| old == json) {
            return Ok(());
        }
        write_atomic(&path, &json)
    }

    /// The descriptors listed in `content/index.json` (empty when it is missing or unreadable).
    pub fn index_json_manifests(&self) -> Vec<Descriptor> {
        fs::read(self.content_dir().join("index.json"))
            .ok()
            .and_then(|d| serde_json::from_slice::<Index>(&d).ok())
            .map(|i| i.manifests)
            .unwrap_or_default()
    }

    /// Snapshot directories (`.../fs`) of an image, bottom layer first.
    pub fn layer_dirs(&self, img: &ImageRecord) -> Result<Vec<PathBuf>> {
        let (manifest, _) = self.manifest(&img.manifest_digest)?;
        let (config, _) = self.config(&img.id)?;
        let chains = self.ensure_snapshots(&manifest, &config)?;
        Ok(chains
            .iter()
            .map(|c| self.snapshot_dir(c).join("fs"))
            .collect())
    }

    /// The blob and snapshot names every recorded image references.
    fn referenced(&self) -> Result<(HashSet<String>, HashSet<String>)> {
        let mut keep_blobs = HashSet::new();
        let mut keep_snaps = HashSet::new();
        for img in self.list()? {
            keep_blobs.insert(img.manifest_digest.hex().to_string());
            keep_blobs.insert(img.id.hex().to_string());
            let (m, _) = self.manifest(&img.manifest_digest)?;
            for l in &m.layers {
                keep_blobs.insert(l.digest.hex().to_string());
            }
            let (c, _) = self.config(&img.id)?;
            for ch in Digest::chain_ids(&c.rootfs.diff_ids) {
                keep_snaps.insert(ch.hex().to_string());
            }
        }
        Ok((keep_blobs, keep_snaps))
    }

    /// Names of the entries of a store directory (temp entries, `.`-prefixed, left out).
    fn names_in(dir: &Path) -> Result<HashSet<String>> {
        Ok(fs::read_dir(dir)
            .ctx(|| format!("read {}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect())
    }

    /// The blobs and snapshots present now (see [`Store::discard_new`]).
    pub fn mark(&self) -> Result<ContentMark> {
        Ok(ContentMark {
            blobs: Self::names_in(&self.root.join("content/blobs/sha256"))?,
            snapshots: Self::names_in(&self.root.join("snapshots"))?,
        })
    }

    /// After a failed import, load or pull: deletes the blobs and snapshots that appeared since
    /// `mark` and that no image references, so the failure leaves the store as it found it. Like
    /// [`Store::gc`] it runs only when no other skiff process has the store open (another one may
    /// be about to record an image over the same blobs); otherwise it returns false and the next
    /// `image prune` removes them. Blobs that were there before are never touched (a pull killed
    /// earlier keeps its blobs for the next pull to reuse).
    pub fn discard_new(&self, mark: &ContentMark) -> Result<bool> {
        if !sys::flock(self.gc_lock.as_fd(), true, true).ctx(|| "lock store".into())? {
            return Ok(false);
        }
        let result = (|| -> Result<()> {
            let now = self.mark()?;
            let (keep_blobs, keep_snaps) = self.referenced()?;
            let blobs = self.root.join("content/blobs/sha256");
            for b in now.blobs.difference(&mark.blobs) {
                if !keep_blobs.contains(b) {
                    let p = blobs.join(b);
                    fs::remove_file(&p).ctx(|| format!("remove {}", p.display()))?;
                }
            }
            let snaps = self.root.join("snapshots");
            for sn in now.snapshots.difference(&mark.snapshots) {
                if !keep_snaps.contains(sn) {
                    let p = snaps.join(sn);
                    sys::remove_all(&p).ctx(|| format!("remove {}", p.display()))?;
                }
            }
            sys::fsync_dir(&blobs).ctx(|| format!("fsync {}", blobs.display()))
        })();
        sys::flock(self.gc_lock.as_fd(), false, false).ctx(|| "lock store".into())?;
        result.map(|()| true)
    }

    /// Runs `op`; if it fails, removes what it added to the store ([`Store::discard_new`]) and
    /// returns its error.
    pub fn undo_on_error<T>(&self, op: impl FnOnce() -> Result<T>) -> Result<T> {
        let mark = self.mark()?;
        let r = op();
        if r.is_err() {
            // Best effort: the operation's own error is the one to report.
            let _ = self.discard_new(&mark);
        }
        r
    }

    /// Deletes blobs and snapshots no image references. Runs only when no other skiff process has
    /// the store open (otherwise reports `ran: false`).
    pub fn gc(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        if !sys::flock(self.gc_lock.as_fd(), true, true).ctx(|| "lock store".into())? {
            return Ok(report);
        }
        let result = (|| -> Result<()> {
            let (keep_blobs, keep_snaps) = self.referenced()?;
            let blobs = self.root.join("content/blobs/sha256");
            for e in fs::read_dir(&blobs)
                .ctx(|| format!("read {}", blobs.display()))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep_blobs.contains(&name) {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    fs::remove_file(e.path()).ctx(|| format!("remove {}", e.path().display()))?;
                    report.bytes += len;
                    if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                        report.blobs.push(d);
                    }
                }
            }
            let snaps = self.root.join("snapshots");
            for e in fs::read_dir(&snaps)
                .ctx(|| format!("read {}", snaps.display()))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep_snaps.contains(&name) {
                    sys::remove_all(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
                    report.snapshots += 1;
                }
            }
            report.ran = true;
            Ok(())
        })();
        sys::flock(self.gc_lock.as_fd(), false, false).ctx(|| "lock store".into())?;
        result.map(|()| report)
    }

    /// Total bytes used under the root (blobs + snapshots), for reports.
    pub fn disk_usage(&self) -> u64 {
        fn walk(p: &Path, seen: &mut BTreeSet<(u64, u64)>) -> u64 {
            use std::os::unix::fs::MetadataExt;
            let Ok(md) = fs::symlink_metadata(p) else {
                return 0;
            };
            let mut n = 0;
            if md.is_dir() {
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        n += walk(&e.path(), seen);
                    }
                }
            } else if seen.insert((md.dev(), md.ino())) {
                n += md.blocks() * 512;
            }
            n
        }
        walk(&self.root, &mut BTreeSet::new())
    }
}

/// The `org.opencontainers.image.ref.name` skiff writes in its content layout: the whole fully
/// qualified `registry/repo:tag`, so `skopeo inspect oci:<root>/content:docker.io/library/busybox:latest`
/// names exactly one image.
pub fn layout_ref_name(name: &str) -> String {
    name.to_string()
}
