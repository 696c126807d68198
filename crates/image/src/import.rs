//! `skiff import`: turns a root filesystem (a tarball, possibly compressed, or a directory) into a
//! one-layer image, stored as a gzip layer with an OCI manifest.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::compress;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::platform::Platform;
use crate::spec::{self, Descriptor, Manifest};
use crate::store::{ImageRecord, NewImage, Store};
use crate::time;

/// Where the root filesystem comes from.
pub enum ImportSource {
    /// A tar stream (plain, gzip or zstd).
    Tarball(Box<dyn Read + Send>),
    /// A directory to archive.
    Dir(PathBuf),
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Platform recorded in the config (default: host).
    pub platform: Option<Platform>,
    /// Dockerfile instructions applied to the config (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`,
    /// `LABEL`, `EXPOSE`, `STOPSIGNAL`, `VOLUME`).
    pub changes: Vec<String>,
    /// Commit message (history comment).
    pub message: Option<String>,
    /// Where it came from, for the history comment.
    pub source_name: String,
    /// Fully qualified names to tag it with.
    pub tags: Vec<String>,
}

fn json_or_shell(arg: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(arg.trim()) {
        Ok(v) => json!(v),
        Err(_) => json!(["/bin/sh", "-c", arg.trim()]),
    }
}

fn key_values(arg: &str) -> Vec<(String, String)> {
    let arg = arg.trim();
    if !arg.contains('=') {
        return match arg.split_once(char::is_whitespace) {
            Some((k, v)) => vec![(k.to_string(), v.trim().to_string())],
            None => vec![(arg.to_string(), String::new())],
        };
    }
    arg.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Applies `--change` instructions to a docker-style `config` object.
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for ch in changes {
        let ch = ch.trim();
        let (instr, arg) = ch.split_once(char::is_whitespace).unwrap_or((ch, ""));
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), json_or_shell(arg));
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), json_or_shell(arg));
            }
            "ENV" => {
                let env = cfg.entry("Env").or_insert_with(|| json!([]));
                if let Value::Array(list) = env {
                    for (k, v) in key_values(arg) {
                        list.retain(|e| {
                            e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek) != Some(&k)
                        });
                        list.push(json!(format!("{k}={v}")));
                    }
                }
            }
            "WORKDIR" => {
                cfg.insert("WorkingDir".into(), json!(arg.trim()));
            }
            "USER" => {
                cfg.insert("User".into(), json!(arg.trim()));
            }
            "STOPSIGNAL" => {
                cfg.insert("StopSignal".into(), json!(arg.trim()));
            }
            "LABEL" => {
                let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
                if let Value::Object(m) = labels {
                    for (k, v) in key_values(arg) {
                        m.insert(k, json!(v));
                    }
                }
            }
            "EXPOSE" => {
                let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
                if let Value::Object(m) = ports {
                    for p in arg.split_whitespace() {
                        let p = if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        };
                        m.insert(p, json!({}));
                    }
                }
            }
            "VOLUME" => {
                let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
                if let Value::Object(m) = vols {
                    let list = match serde_json::from_str::<Vec<String>>(arg.trim()) {
                        Ok(v) => v,
                        Err(_) => arg.split_whitespace().map(str::to_string).collect(),
                    };
                    for v in list {
                        m.insert(v, json!({}));
                    }
                }
            }
            other => {
                return Err(Error::invalid(
                    "--change",
                    format!("{other} is not supported by import"),
                ))
            }
        }
    }
    Ok(())
}

fn tar_dir<W: Write>(dir: &Path, out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    fn walk<W: Write>(b: &mut tar::Builder<W>, base: &Path, rel: &Path) -> Result<()> {
        let full = base.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&full)
            .ctx(|| format!("read {}", full.display()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for name in entries {
            let r = rel.join(&name);
            let p = base.join(&r);
            let md = std::fs::symlink_metadata(&p).ctx(|| format!("stat {}", p.display()))?;
            b.append_path_with_name(&p, &r)
                .ctx(|| format!("archive {}", p.display()))?;
            if md.is_dir() {
                walk(b, base, &r)?;
            }
        }
        Ok(())
    }
    walk(&mut b, dir, Path::new(""))?;
    b.into_inner().ctx(|| "finish tar".into())
}

/// Imports a root filesystem as a new one-layer image.
pub fn import(store: &Store, source: ImportSource, opts: &ImportOptions) -> Result<ImageRecord> {
    let blob = store.blob_writer()?;
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::new(3));
    let mut hw = HashingWriter::new(gz);
    match source {
        ImportSource::Tarball(r) => {
            let mut plain = compress::decompress(r).ctx(|| "read import source".into())?;
            io::copy(&mut plain, &mut hw).ctx(|| "read import source".into())?;
        }
        ImportSource::Dir(d) => {
            hw = tar_dir(&d, hw)?;
        }
    }
    let diff_id = hw.hasher.clone().finish();
    if hw.hasher.is_empty() {
        return Err(Error::invalid("import source", "is empty"));
    }
    let blob = hw.inner.finish().ctx(|| "compress layer".into())?;
    let (layer_digest, layer_size) = blob.commit(None)?;

    let platform = opts
        .platform
        .clone()
        .unwrap_or_else(Platform::host)
        .normalized();
    let now = time::rfc3339(time::now_unix());
    let mut cfg = Map::new();
    apply_changes(&mut cfg, &opts.changes)?;
    let mut history = json!({"created": now, "created_by": "skiff import"});
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", opts.source_name));
    history["comment"] = json!(comment);
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": now,
        "config": Value::Object(cfg),
        "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
        "history": [history],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::invalid("config", e))?;
    let config_digest = store.put_blob(&config_bytes, None)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Descriptor::new(spec::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers: vec![Descriptor::new(
            spec::OCI_LAYER_GZIP,
            layer_digest,
            layer_size,
        )],
        annotations: None,
        extra: BTreeMap::new(),
    };
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| Error::invalid("manifest", e))?;
    let mdigest = store.put_blob(&mbytes, None)?;
    store.record_image(&NewImage {
        manifest: Descriptor::new(spec::OCI_MANIFEST, mdigest, mbytes.len() as u64),
        index_digest: None,
        tags: opts.tags.clone(),
        repo_digests: vec![],
    })
}

/// The digest a manifest would have (helper for archives and tests).
pub fn manifest_digest(m: &Manifest) -> Result<(Digest, Vec<u8>)> {
    let b = serde_json::to_vec(m).map_err(|e| Error::invalid("manifest", e))?;
    Ok((Digest::of(&b), b))
}
