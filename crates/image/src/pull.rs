//! Pull and push orchestration over a registry transport.
//!
//! Pull: resolve the reference to a manifest or index, pick the platform, fetch and verify the
//! config, then download the layers in parallel. Each layer streams once: a producer thread reads
//! the network (re-requesting from the current offset on transient errors), hashes and writes the
//! blob; a consumer thread decompresses and unpacks into the snapshot while the bytes arrive. The
//! snapshot is committed only when the uncompressed stream matches the config's diff id, the blob
//! only when it matches the manifest digest; the image row is written last. Layers already in the
//! store are skipped, so a pull killed at any point resumes at layer granularity.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::spec::{self, Descriptor, Document, ImageConfig};
use crate::store::{BlobWriter, ImageRecord, NewImage, Store};

/// The read side of a registry, for one repository.
pub trait Fetcher: Sync {
    /// Fetches a manifest or index by tag or digest: bytes and the Content-Type media type.
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)>;
    /// Opens a blob stream starting at byte `start` (a Range request when `start > 0`).
    fn get_blob(&self, digest: &Digest, start: u64) -> Result<Box<dyn Read + Send>>;
}

/// The write side of a registry, for one repository.
pub trait Pusher: Sync {
    /// True when the registry already has the blob.
    fn has_blob(&self, digest: &Digest) -> Result<bool>;
    /// Uploads a blob.
    fn put_blob(&self, digest: &Digest, size: u64, data: Box<dyn Read + Send>) -> Result<()>;
    /// Uploads a manifest under a tag (or digest).
    fn put_manifest(&self, reference: &str, media_type: &str, data: &[u8]) -> Result<()>;
}

/// Progress of a pull or push, reported per layer.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A layer is known and waiting.
    Waiting(Digest),
    /// The layer is already in the store.
    AlreadyExists(Digest),
    /// Bytes received so far / total.
    Downloading(Digest, u64, u64),
    /// A transient error; retrying from an offset.
    Retrying(Digest, u64, String),
    /// All bytes of the layer arrived (unpacking finishes with them).
    DownloadComplete(Digest),
    /// Download and unpack finished.
    PullComplete(Digest),
    /// Push: uploaded.
    Pushed(Digest),
    /// Push: the registry had it.
    LayerExists(Digest),
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// The recorded image.
    pub image: ImageRecord,
    /// The digest the reference resolved to (index or manifest).
    pub digest: Digest,
    /// False when everything was already present.
    pub downloaded: bool,
}

const RETRIES: u32 = 4;

/// A blob stream that tees into a [`BlobWriter`] and resumes from the current offset after
/// transient errors or a short read.
struct ResumingTee<'a> {
    fetcher: &'a dyn Fetcher,
    digest: Digest,
    size: u64,
    inner: Option<Box<dyn Read + Send>>,
    writer: BlobWriter,
    attempts: u32,
    progress: &'a (dyn Fn(Progress) + Sync),
    last_report: u64,
}

impl Read for ResumingTee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let done = self.writer.len();
            if self.inner.is_none() {
                match self.fetcher.get_blob(&self.digest, done) {
                    Ok(r) => self.inner = Some(r),
                    // A missing blob stays missing: no retry.
                    Err(e @ Error::NotFound(_)) => return Err(io::Error::other(e.to_string())),
                    Err(e) => {
                        self.attempts += 1;
                        if self.attempts > RETRIES {
                            return Err(io::Error::other(e.to_string()));
                        }
                        (self.progress)(Progress::Retrying(
                            self.digest.clone(),
                            done,
                            e.to_string(),
                        ));
                        std::thread::sleep(Duration::from_millis(200 << self.attempts));
                        continue;
                    }
                }
            }
            let r = self.inner.as_mut().map(|r| r.read(buf)).unwrap_or(Ok(0));
            match r {
                Ok(0) if done < self.size => {
                    self.inner = None;
                    self.attempts += 1;
                    if self.attempts > RETRIES {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "blob {} ended at {done} of {} bytes",
                                self.digest, self.size
                            ),
                        ));
                    }
                    (self.progress)(Progress::Retrying(
                        self.digest.clone(),
                        done,
                        "short read".into(),
                    ));
                }
                Ok(n) => {
                    if done + n as u64 > self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "blob {} is longer than its descriptor ({} bytes)",
                                self.digest, self.size
                            ),
                        ));
                    }
                    io::Write::write_all(&mut self.writer, &buf[..n])?;
                    let now = self.writer.len();
                    if n == 0 || now - self.last_report >= 512 * 1024 {
                        self.last_report = now;
                        (self.progress)(Progress::Downloading(self.digest.clone(), now, self.size));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.inner = None;
                    self.attempts += 1;
                    if self.attempts > RETRIES {
                        return Err(e);
                    }
                    (self.progress)(Progress::Retrying(self.digest.clone(), done, e.to_string()));
                    std::thread::sleep(Duration::from_millis(200 << self.attempts));
                }
            }
        }
    }
}

fn fetch_small(f: &dyn Fetcher, d: &Digest, what: &str) -> Result<Vec<u8>> {
    let mut last = None;
    for attempt in 0..=RETRIES {
        let r = f.get_blob(d, 0).and_then(|mut r| {
            let mut buf = Vec::new();
            r.by_ref()
                .take(64 << 20)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(format!("read {what} {d}"), e))?;
            Ok(buf)
        });
        match r {
            Ok(b) => {
                d.verify(what, &b)?;
                return Ok(b);
            }
            Err(e @ Error::NotFound(_)) => return Err(e),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Registry(format!("fetch {what} {d}"))))
}

fn pull_layer(
    store: &Store,
    f: &dyn Fetcher,
    layer: &Descriptor,
    chain: &Digest,
    diff_id: &Digest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<()> {
    if spec::layer_compression(&layer.media_type).is_none() {
        return Err(Error::Unsupported(format!(
            "layer media type {:?}",
            layer.media_type
        )));
    }
    if store.has_blob(&layer.digest) {
        if !store.has_snapshot(chain) {
            let blob = io::BufReader::with_capacity(256 * 1024, store.open_blob(&layer.digest)?);
            store.unpack_snapshot(chain, diff_id, blob)?;
        }
        progress(Progress::AlreadyExists(layer.digest.clone()));
        return Ok(());
    }
    // The tee runs on a scoped thread so it may borrow the fetcher and the store.
    std::thread::scope(|s| -> Result<()> {
        let tee = ResumingTee {
            fetcher: f,
            digest: layer.digest.clone(),
            size: layer.size,
            inner: None,
            writer: store.blob_writer()?,
            attempts: 0,
            progress,
            last_report: 0,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(32);
        let producer = s.spawn(move || -> Result<BlobWriter> {
            let mut tee = tee;
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                let mut filled = 0;
                let mut eof = false;
                while filled < buf.len() {
                    match tee.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = tx.send(Err(e));
                            return Err(Error::Registry(format!("download {}: {msg}", tee.digest)));
                        }
                    }
                }
                if filled > 0 {
                    buf.truncate(filled);
                    if tx.send(Ok(buf)).is_err() {
                        return Err(Error::Registry(format!(
                            "download {}: unpack stopped",
                            tee.digest
                        )));
                    }
                }
                if eof {
                    (tee.progress)(Progress::DownloadComplete(tee.digest.clone()));
                    return Ok(tee.writer);
                }
            }
        });
        let reader = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let unpacked = store.unpack_snapshot(chain, diff_id, reader);
        let writer = producer
            .join()
            .map_err(|_| Error::Registry("download thread panicked".into()))?;
        let writer = match (writer, unpacked) {
            (Ok(w), Ok(_)) => w,
            (Err(e), _) => return Err(e),
            (Ok(_), Err(e)) => return Err(e),
        };
        writer.commit(Some(&layer.digest)).map_err(|e| match e {
            Error::DigestMismatch {
                expected, actual, ..
            } => Error::DigestMismatch {
                what: format!("layer {}", layer.digest),
                expected,
                actual,
            },
            e => e,
        })?;
        Ok(())
    })?;
    progress(Progress::PullComplete(layer.digest.clone()));
    Ok(())
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = (self.cur.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Pulls `reference` (a tag or `sha256:` digest) of repository `repo` (`domain/path`) for
/// `platform` (the host's when `None`), recording it under `repo:tag` when pulled by tag. A
/// single-platform image must match an explicitly requested platform, as in docker. A pull that
/// fails (digest mismatch, a registry that keeps dropping the connection) removes the blobs and
/// snapshots it had committed for layers that did arrive, so it leaves the store as it was.
pub fn pull(
    store: &Store,
    f: &dyn Fetcher,
    repo: &str,
    reference: &str,
    requested: Option<&Platform>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<PullResult> {
    store.undo_on_error(|| pull_inner(store, f, repo, reference, requested, progress))
}

fn pull_inner(
    store: &Store,
    f: &dyn Fetcher,
    repo: &str,
    reference: &str,
    requested: Option<&Platform>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<PullResult> {
    let host = Platform::host();
    let platform = requested.unwrap_or(&host);
    let by_digest = reference.starts_with("sha256:");
    let (bytes, mt) = f.get_manifest(reference)?;
    let top_digest = Digest::of(&bytes);
    if by_digest {
        Digest::parse(reference)?.verify("manifest", &bytes)?;
    }
    let (mbytes, mdesc, index_digest) = match spec::parse_document(&bytes, Some(&mt))? {
        Document::Manifest(_) => {
            let mt = if mt.is_empty() {
                spec::OCI_MANIFEST.to_string()
            } else {
                mt
            };
            let d = Descriptor::new(&mt, top_digest.clone(), bytes.len() as u64);
            (bytes, d, None)
        }
        Document::Index(idx) => {
            let pick = platform.select(&idx.manifests).ok_or_else(|| {
                Error::NotFound(format!(
                    "no matching manifest for {platform} in the manifest list entries"
                ))
            })?;
            let (b, cmt) = f.get_manifest(pick.digest.as_str())?;
            pick.digest.verify("manifest", &b)?;
            let mut d = pick.clone();
            if d.media_type.is_empty() {
                d.media_type = cmt;
            }
            d.size = b.len() as u64;
            (b, d, Some(top_digest.clone()))
        }
    };
    let manifest = match spec::parse_document(&mbytes, Some(&mdesc.media_type))? {
        Document::Manifest(m) => *m,
        Document::Index(_) => return Err(Error::Unsupported("nested image index".into())),
    };
    let config_bytes = if store.has_blob(&manifest.config.digest) {
        store.read_blob(&manifest.config.digest)?
    } else {
        fetch_small(f, &manifest.config.digest, "config")?
    };
    let config = ImageConfig::parse(&config_bytes)?;
    if let (Some(want), None) = (requested, &index_digest) {
        let actual = format!(
            "{}/{}{}",
            config.os,
            config.architecture,
            config
                .variant
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default()
        );
        if !Platform::parse(&actual).is_ok_and(|have| want.matches(&have)) {
            return Err(Error::NotFound(format!(
                "image with reference {repo}:{reference} was found but does not match the specified platform: wanted {want}, actual: {actual}"
            )));
        }
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid(
            "image",
            format!(
                "manifest has {} layers, config {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let chains = Digest::chain_ids(&config.rootfs.diff_ids);
    let missing_before = manifest.layers.iter().any(|l| !store.has_blob(&l.digest))
        || chains.iter().any(|c| !store.has_snapshot(c))
        || !store.has_blob(&mdesc.digest);
    for l in &manifest.layers {
        progress(Progress::Waiting(l.digest.clone()));
    }
    // Layers in parallel, at most 4 at a time.
    let next = AtomicUsize::new(0);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let workers = manifest.layers.len().clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= manifest.layers.len() {
                    return;
                }
                if first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                if let Err(e) = pull_layer(
                    store,
                    f,
                    &manifest.layers[i],
                    &chains[i],
                    &config.rootfs.diff_ids[i],
                    progress,
                ) {
                    if let Ok(mut slot) = first_err.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    store.put_blob(&config_bytes, Some(&manifest.config.digest))?;
    store.put_blob(&mbytes, Some(&mdesc.digest))?;
    let tags = if by_digest {
        vec![]
    } else {
        vec![format!("{repo}:{reference}")]
    };
    let image = store.record_image(&NewImage {
        manifest: Descriptor::new(&mdesc.media_type, mdesc.digest.clone(), mbytes.len() as u64),
        index_digest,
        tags,
        repo_digests: vec![format!("{repo}@{top_digest}")],
    })?;
    Ok(PullResult {
        image,
        digest: top_digest,
        downloaded: missing_before,
    })
}

/// Pushes an image to `repo` under `reference` (a tag); returns the manifest digest and size.
pub fn push(
    store: &Store,
    p: &dyn Pusher,
    image: &ImageRecord,
    repo: &str,
    reference: &str,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(Digest, u64)> {
    let (manifest, mbytes) = store.manifest(&image.manifest_digest)?;
    let mut blobs: Vec<&Descriptor> = manifest.layers.iter().collect();
    blobs.push(&manifest.config);
    for b in &blobs {
        progress(Progress::Waiting(b.digest.clone()));
    }
    let next = AtomicUsize::new(0);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..blobs.len().clamp(1, 4) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(b) = blobs.get(i) else { return };
                let r = (|| -> Result<()> {
                    if p.has_blob(&b.digest)? {
                        progress(Progress::LayerExists(b.digest.clone()));
                        return Ok(());
                    }
                    // Transient failures: upload again from a fresh read of the blob.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let f = store.open_blob(&b.digest)?;
                        match p.put_blob(
                            &b.digest,
                            b.size,
                            Box::new(io::BufReader::with_capacity(256 * 1024, f)),
                        ) {
                            Ok(()) => break,
                            Err(Error::Registry(why)) if attempt <= RETRIES / 2 => {
                                progress(Progress::Retrying(b.digest.clone(), 0, why));
                                std::thread::sleep(Duration::from_millis(200 << attempt));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    progress(Progress::Pushed(b.digest.clone()));
                    Ok(())
                })();
                if let Err(e) = r {
                    if let Ok(mut slot) = first_err.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    let mt = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| image.manifest_media_type.clone());
    p.put_manifest(reference, &mt, &mbytes)?;
    let d = Digest::of(&mbytes);
    store.record_image(&NewImage {
        manifest: Descriptor::new(&mt, d.clone(), mbytes.len() as u64),
        index_digest: None,
        tags: vec![],
        repo_digests: vec![format!("{repo}@{d}")],
    })?;
    Ok((d, mbytes.len() as u64))
}
