//! `save`/`load`: docker-archive and oci-archive tarballs.
//!
//! `save` writes the layout docker ≥ 25 writes: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus docker's `manifest.json`, so one file is both a docker-archive and an
//! oci-archive (`--format oci` leaves `manifest.json` out). Layers are written as stored.
//! `load` reads either shape, including legacy docker archives (`<id>/layer.tar`, symlinked layers),
//! streaming every file into the content store with its digest computed on the way.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::compress;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::platform::Platform;
use crate::spec::{self, Descriptor, Document, Index, LayerCompression, Manifest};
use crate::store::{ImageRecord, NewImage, Store};

/// Which archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// docker-archive (with an OCI layout inside, like docker 25+).
    Docker,
    /// oci-archive (an OCI image layout in a tar).
    Oci,
}

/// One entry of docker's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerManifestEntry {
    /// Path of the config in the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Names (familiar form).
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layers, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// An image that `load` recorded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Image id.
    pub id: Digest,
    /// Fully qualified names given to it.
    pub names: Vec<String>,
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
        .ctx(|| format!("write {path} to archive"))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, path, io::empty())
        .ctx(|| format!("write {path} to archive"))
}

/// Writes `images` (each with the fully qualified names to record) as an archive.
pub fn save<W: Write>(
    store: &Store,
    images: &[(ImageRecord, Vec<String>)],
    format: ArchiveFormat,
    out: W,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    let mut written = std::collections::HashSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    for (img, img_names) in images {
        let (manifest, _) = store.manifest(&img.manifest_digest)?;
        let mut blobs = vec![img.manifest_digest.clone(), manifest.config.digest.clone()];
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        for b in blobs {
            if !written.insert(b.clone()) {
                continue;
            }
            let f = store.open_blob(&b)?;
            let len = f.metadata().ctx(|| format!("stat blob {b}"))?.len();
            let mut h = tar::Header::new_ustar();
            h.set_size(len);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(
                &mut h,
                format!("blobs/sha256/{}", b.hex()),
                io::BufReader::with_capacity(256 * 1024, f),
            )
            .ctx(|| format!("write blob {b} to archive"))?;
        }
        let mut d = Descriptor::new(
            &img.manifest_media_type,
            img.manifest_digest.clone(),
            img.manifest_size,
        );
        if img_names.is_empty() {
            index.push(d.clone());
        }
        for n in img_names {
            let mut ann = BTreeMap::new();
            ann.insert(spec::ANNOTATION_IMAGE_NAME.to_string(), n.clone());
            ann.insert(
                spec::ANNOTATION_REF_NAME.to_string(),
                n.rsplit_once(':').map(|x| x.1).unwrap_or("latest").into(),
            );
            d.annotations = Some(ann);
            index.push(d.clone());
        }
        docker.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", manifest.config.digest.hex()),
            repo_tags: Some(img_names.iter().map(|n| names::familiar(n)).collect()),
            layers: manifest
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect(),
        });
    }
    append_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let idx = Index {
        schema_version: 2,
        media_type: Some(spec::OCI_INDEX.into()),
        manifests: index,
        annotations: None,
        extra: BTreeMap::new(),
    };
    append_file(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&idx).map_err(|e| Error::invalid("index.json", e))?,
    )?;
    if format == ArchiveFormat::Docker {
        let m = serde_json::to_vec(&docker).map_err(|e| Error::invalid("manifest.json", e))?;
        append_file(&mut tar, "manifest.json", &m)?;
    }
    let mut out = tar.into_inner().ctx(|| "finish archive".into())?;
    out.flush().ctx(|| "write archive".into())
}

/// Normalizes an archive path (`./a//b` → `a/b`); refuses `..`.
fn clean(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Parses an archive's docker `manifest.json`: each entry with its `RepoTags` normalized to full
/// names (the part of `load` that reads untrusted JSON without touching the store).
pub fn parse_manifest_json(bytes: &[u8]) -> Result<Vec<(DockerManifestEntry, Vec<String>)>> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid("archive manifest.json", e))?;
    entries
        .into_iter()
        .map(|e| {
            let names = e
                .repo_tags
                .iter()
                .flatten()
                .map(|t| names::normalize(t))
                .collect::<Result<Vec<_>>>()?;
            Ok((e, names))
        })
        .collect()
}

/// Parses an archive's OCI `index.json`: each manifest descriptor with the full image name its
/// annotations give, if any (the part of `load` that reads untrusted JSON without the store).
pub fn parse_index_json(bytes: &[u8]) -> Result<Vec<(Descriptor, Option<String>)>> {
    let idx: Index =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid("archive index.json", e))?;
    idx.manifests
        .into_iter()
        .map(|d| {
            let ann = d.annotations.as_ref();
            let name = ann
                .and_then(|a| a.get(spec::ANNOTATION_IMAGE_NAME))
                .or_else(|| {
                    ann.and_then(|a| a.get(spec::ANNOTATION_REF_NAME))
                        .filter(|r| r.contains('/') || r.contains(':'))
                })
                .map(|n| names::normalize(n))
                .transpose()?;
            Ok((d, name))
        })
        .collect()
}

const SMALL: &[&str] = &["manifest.json", "index.json", "repositories", "oci-layout"];

/// Reads an archive (docker-archive or oci-archive, plain or compressed) into the store. A failed
/// load leaves the store as it was: blobs and snapshots it added for images it did not record
/// are removed again.
pub fn load<R: Read + Send>(store: &Store, input: R) -> Result<Vec<Loaded>> {
    store.undo_on_error(|| load_inner(store, input))
}

fn load_inner<R: Read + Send>(store: &Store, input: R) -> Result<Vec<Loaded>> {
    let plain = compress::decompress(BufReader::with_capacity(256 * 1024, input))
        .ctx(|| "read archive".into())?;
    let mut ar = tar::Archive::new(plain);
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut files: HashMap<String, (Digest, u64)> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    // The tar reader's messages can quote raw header bytes: say what is wrong, not the junk.
    let bad = |e: io::Error| {
        Error::invalid(
            "archive",
            format!(
                "not a well-formed tar archive ({})",
                crate::import::tar_reason(&e)
            ),
        )
    };
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry
            .path()
            .ctx(|| "read archive entry".into())?
            .into_owned();
        let Some(name) = clean(&path) else { continue };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if SMALL.contains(&name.as_str()) {
                    let mut buf = Vec::new();
                    entry
                        .by_ref()
                        .take(64 << 20)
                        .read_to_end(&mut buf)
                        .ctx(|| format!("read {name}"))?;
                    small.insert(name, buf);
                    continue;
                }
                let mut w = store.blob_writer()?;
                let size = entry.header().entry_size().unwrap_or(0);
                let got =
                    io::copy(&mut entry, &mut w).ctx(|| format!("read {name} from archive"))?;
                if got < size {
                    return Err(Error::invalid(
                        "archive",
                        format!("truncated: {name} has {got} of {size} bytes"),
                    ));
                }
                let expected = name
                    .strip_prefix("blobs/sha256/")
                    .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
                let (d, size) = w.commit(expected.as_ref()).map_err(|e| match e {
                    Error::DigestMismatch {
                        expected, actual, ..
                    } => Error::DigestMismatch {
                        what: format!("archive file {name}"),
                        expected,
                        actual,
                    },
                    e => e,
                })?;
                files.insert(name, (d, size));
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Ok(Some(t)) = entry.link_name() {
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        Path::new(&name).parent().unwrap_or(Path::new("")).join(&t)
                    } else {
                        t.into_owned()
                    };
                    // Resolve `..` lexically inside the archive.
                    let mut parts: Vec<String> = Vec::new();
                    for c in target.components() {
                        match c {
                            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                            Component::ParentDir => {
                                parts.pop();
                            }
                            _ => {}
                        }
                    }
                    links.insert(name, parts.join("/"));
                }
            }
            _ => {}
        }
    }
    let lookup = |p: &str| -> Result<(Digest, u64)> {
        let mut key = clean(Path::new(p)).unwrap_or_default();
        for _ in 0..8 {
            if let Some(v) = files.get(&key) {
                return Ok(v.clone());
            }
            match links.get(&key) {
                Some(t) => key = t.clone(),
                None => break,
            }
        }
        Err(Error::invalid(
            "archive",
            format!("{p} is referenced but missing"),
        ))
    };

    let mut loaded = Vec::new();
    if let Some(m) = small.get("manifest.json") {
        for (e, names) in parse_manifest_json(m)? {
            let (cfg_digest, cfg_size) = lookup(&e.config)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let (d, size) = lookup(l)?;
                let mut f = BufReader::new(store.open_blob(&d)?);
                let mt = match compress::detect(&mut f).ctx(|| format!("read layer {d}"))? {
                    LayerCompression::Gzip => spec::OCI_LAYER_GZIP,
                    LayerCompression::Zstd => spec::OCI_LAYER_ZSTD,
                    LayerCompression::None => spec::OCI_LAYER_TAR,
                };
                layers.push(Descriptor::new(mt, d, size));
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(spec::OCI_MANIFEST.into()),
                config: Descriptor::new(spec::OCI_CONFIG, cfg_digest, cfg_size),
                layers,
                annotations: None,
                extra: BTreeMap::new(),
            };
            let mb = serde_json::to_vec(&manifest).map_err(|e| Error::invalid("manifest", e))?;
            let md = store.put_blob(&mb, None)?;
            let rec = store.record_image(&NewImage {
                manifest: Descriptor::new(spec::OCI_MANIFEST, md, mb.len() as u64),
                index_digest: None,
                tags: names.clone(),
                repo_digests: vec![],
            })?;
            loaded.push(Loaded { id: rec.id, names });
        }
        return Ok(loaded);
    }
    let idx = small
        .get("index.json")
        .ok_or_else(|| Error::invalid("archive", "neither manifest.json nor index.json found"))?;
    for (d, name) in parse_index_json(idx)? {
        let mut desc = d;
        let data = store.read_blob(&desc.digest)?;
        let mut index_digest = None;
        if let Document::Index(inner) = spec::parse_document(&data, Some(&desc.media_type))? {
            let host = Platform::host();
            let pick = host.select(&inner.manifests).ok_or_else(|| {
                Error::NotFound(format!(
                    "no image for {host} in archive index {}",
                    desc.digest
                ))
            })?;
            index_digest = Some(desc.digest.clone());
            desc = pick.clone();
        }
        let rec = store.record_image(&NewImage {
            manifest: Descriptor::new(&desc.media_type, desc.digest.clone(), desc.size),
            index_digest,
            tags: name.iter().cloned().collect(),
            repo_digests: vec![],
        })?;
        loaded.push(Loaded {
            id: rec.id,
            names: name.into_iter().collect(),
        });
    }
    Ok(loaded)
}
