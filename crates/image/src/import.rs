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
    /// `LABEL`, `EXPOSE`, `STOPSIGNAL`, `VOLUME`, `HEALTHCHECK`).
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
    words(arg)
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Splits `KEY=VALUE` words as a Dockerfile does: whitespace separates words except inside
/// double or single quotes, which are removed; a backslash escapes the next character.
fn words(arg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut quote: Option<char> = None;
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `Healthcheck` object of a Dockerfile `HEALTHCHECK [--interval=D] [--timeout=D]
/// [--start-period=D] [--start-interval=D] [--retries=N] CMD …` or `HEALTHCHECK NONE`, as docker's
/// builder records it (durations in nanoseconds, zero fields omitted).
fn healthcheck(arg: &str) -> Result<Value> {
    let bad = |why: String| Error::invalid("HEALTHCHECK", why);
    let mut rest = arg.trim();
    let mut hc = Map::new();
    while let Some(opt) = rest.strip_prefix("--") {
        let end = opt.find(char::is_whitespace).unwrap_or(opt.len());
        let (kv, tail) = opt.split_at(end);
        rest = tail.trim_start();
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("option --{kv} needs a value")))?;
        let field = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad(format!("--retries: invalid number {v:?}")))?;
                if n < 0 {
                    return Err(bad(format!("--retries cannot be negative ({n})")));
                }
                if n > 0 {
                    hc.insert("Retries".into(), json!(n));
                }
                continue;
            }
            _ => return Err(bad(format!("unknown flag: --{k}"))),
        };
        let ns = crate::time::parse_go_duration_ns(v).map_err(|e| bad(format!("--{k}: {e}")))?;
        if ns != 0 && ns < 1_000_000 {
            return Err(bad(format!("{field} \"{v}\" cannot be less than 1ms")));
        }
        if ns != 0 {
            hc.insert(field.into(), json!(ns));
        }
    }
    let (kind, cmd) = rest
        .split_once(char::is_whitespace)
        .map(|(k, c)| (k, c.trim()))
        .unwrap_or((rest, ""));
    match kind.to_ascii_uppercase().as_str() {
        "NONE" if cmd.is_empty() && hc.is_empty() => {
            hc.insert("Test".into(), json!(["NONE"]));
        }
        "NONE" => return Err(bad("NONE takes no arguments or options".into())),
        "CMD" if !cmd.is_empty() => {
            let test = match serde_json::from_str::<Vec<String>>(cmd) {
                Ok(argv) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(argv);
                    t
                }
                Err(_) => vec!["CMD-SHELL".to_string(), cmd.to_string()],
            };
            hc.insert("Test".into(), json!(test));
        }
        _ => return Err(bad("expects CMD <command> or NONE".into())),
    }
    Ok(Value::Object(hc))
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
            "HEALTHCHECK" => {
                cfg.insert("Healthcheck".into(), healthcheck(arg)?);
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

/// A reader that copies everything it reads into `w` and counts it.
struct Tee<'a, R, W> {
    r: R,
    w: &'a mut W,
    n: u64,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        self.n += n as u64;
        Ok(n)
    }
}

/// `s` with everything but printable ASCII replaced by `?`, at most 80 characters: an error
/// about junk input must never echo the junk's raw bytes to a terminal.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// The fixed part of a tar reader error (`numeric field was not a number: <raw bytes> when
/// getting cksum for <raw name>` → `numeric field was not a number`).
pub(crate) fn tar_reason(e: &io::Error) -> String {
    let t = e.to_string();
    let t = t.split(" when ").next().unwrap_or("");
    let t = t.split(':').next().unwrap_or("");
    printable(t.trim())
}

/// Copies a tar stream from `plain` into `out`, checking on the way that it is a well-formed tar
/// archive (headers, checksums, every entry's data complete), so junk is refused before any of it
/// is committed to the store.
fn copy_checked_tar<R: Read, W: Write>(plain: R, out: &mut W, source: &str) -> Result<()> {
    let mut tee = Tee {
        r: plain,
        w: out,
        n: 0,
    };
    let bad = |what: String| Error::invalid(format!("import source {source:?}"), what);
    {
        let mut ar = tar::Archive::new(&mut tee);
        let entries = ar
            .entries()
            .map_err(|e| bad(format!("not a tar archive ({})", tar_reason(&e))))?;
        for (i, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| {
                let r = tar_reason(&e);
                if i == 0 && !r.contains("EOF") {
                    bad(format!("not a tar archive ({r})"))
                } else if r.contains("EOF") || r.contains("entire block") {
                    bad(format!("truncated tar archive (after entry {i})"))
                } else {
                    bad(format!("corrupt tar archive at entry {} ({r})", i + 1))
                }
            })?;
            let size = entry.header().entry_size().unwrap_or(0);
            let got = io::copy(&mut entry, &mut io::sink())
                .map_err(|e| bad(format!("read entry {}: {}", i + 1, tar_reason(&e))))?;
            if got < size {
                return Err(bad(format!(
                    "truncated tar archive (entry {} has {got} of {size} bytes)",
                    i + 1
                )));
            }
        }
    }
    // What follows the end-of-archive blocks (padding) belongs to the layer too.
    io::copy(&mut tee, &mut io::sink()).ctx(|| format!("read import source {source:?}"))?;
    Ok(())
}

/// Imports a root filesystem as a new one-layer image. A failure leaves the content store as it
/// was: nothing is committed until the source has been read whole and checked, and blobs or
/// snapshots committed before a later step failed are removed again.
pub fn import(store: &Store, source: ImportSource, opts: &ImportOptions) -> Result<ImageRecord> {
    store.undo_on_error(|| import_inner(store, source, opts))
}

fn import_inner(store: &Store, source: ImportSource, opts: &ImportOptions) -> Result<ImageRecord> {
    let blob = store.blob_writer()?;
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::new(3));
    let mut hw = HashingWriter::new(gz);
    match source {
        ImportSource::Tarball(r) => {
            let what = format!("import source {:?}", printable(&opts.source_name));
            let plain = compress::decompress(r).ctx(|| format!("read {what}"))?;
            copy_checked_tar(plain, &mut hw, &printable(&opts.source_name))?;
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
    // As docker's import: no `created_by` (history shows an empty CREATED BY), the source in the
    // comment.
    let mut history = json!({"created": now});
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

#[cfg(test)]
mod key_value_tests {
    use super::*;

    #[test]
    fn quoted_key_values() {
        assert_eq!(
            key_values(r#""k"="v w" a=b c='x "y"' d=e\ f"#),
            vec![
                ("k".to_string(), "v w".to_string()),
                ("a".into(), "b".into()),
                ("c".into(), "x \"y\"".into()),
                ("d".into(), "e f".into()),
            ]
        );
        assert_eq!(
            key_values("A hello world"),
            vec![("A".to_string(), "hello world".to_string())]
        );
    }
}
