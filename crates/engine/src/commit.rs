//! What a container changed, read from its overlay upper directory: `diff` (docker's A/C/D list)
//! and `commit` (the upper directory as a new image layer, with overlay whiteouts turned back into
//! OCI `.wh.` entries, on top of the container's image).
//!
//! Paths in the image's layers are looked up with `RESOLVE_IN_ROOT` against each layer directory,
//! and the upper directory is walked with `*at` calls that never follow symlinks.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use skiff_image::digest::{Digest, HashingWriter};
use skiff_image::spec::{self, Descriptor, Manifest};
use skiff_image::store::{ImageRecord, NewImage, Store};
use skiff_image::sys;

use crate::error::{Error, Result};
use crate::{Container, Engine};

/// Kind of one change, as docker prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Modified (`C`).
    Changed,
    /// Added (`A`).
    Added,
    /// Deleted (`D`).
    Deleted,
}

impl ChangeKind {
    /// Docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
    /// Docker's API `Kind` number (0 modified, 1 added, 2 deleted).
    pub fn number(self) -> u8 {
        match self {
            ChangeKind::Changed => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Files the engine itself places in every container (mount points of /etc/hosts etc. and the
/// kernel filesystems); docker keeps them in a hidden init layer, so they are not changes.
const ENGINE_PATHS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/proc",
    "/sys",
    "/dev",
];

fn is_engine_path(p: &str) -> bool {
    ENGINE_PATHS
        .iter()
        .any(|e| p == *e || (p.starts_with(e) && p.as_bytes().get(e.len()) == Some(&b'/')))
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|x| matches!(sys::fgetxattr(dir, x), Ok(Some(v)) if v == b"y"))
}

/// The image's layers (top first), each opened as a root for lookups.
struct Lowers(Vec<OwnedFd>);

impl Lowers {
    fn open(c: &Container) -> Result<Lowers> {
        let mut v = Vec::new();
        for d in c.lower_dirs.iter().rev() {
            v.push(sys::open_dir(Path::new(d)).map_err(io_err(format!("open layer {d}")))?);
        }
        Ok(Lowers(v))
    }
    /// The stat of `rel` in the topmost layer that has it, stopping at whiteouts.
    fn stat(&self, rel: &Path) -> Option<libc::stat> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name()?;
        for l in &self.0 {
            let Ok(dir) = sys::open_in_root(l.as_fd(), parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            else {
                continue;
            };
            if let Ok(Some(st)) = sys::lstatat(dir.as_fd(), name) {
                if is_whiteout(&st) {
                    return None;
                }
                return Some(st);
            }
        }
        None
    }
    /// Names in directory `rel` across all layers.
    fn children(&self, rel: &Path) -> Vec<OsString> {
        let mut out = std::collections::BTreeSet::new();
        for l in &self.0 {
            if let Ok(dir) =
                sys::open_in_root(l.as_fd(), rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            {
                if let Ok(names) = sys::list_dir(dir.as_fd()) {
                    out.extend(names);
                }
            }
        }
        out.into_iter()
            .filter(|n| self.stat(&rel.join(n)).is_some())
            .collect()
    }
}

fn abs(rel: &Path) -> String {
    format!("/{}", rel.display())
}

fn walk_changes(
    dir: BorrowedFd<'_>,
    rel: &Path,
    lowers: &Lowers,
    below_opaque: bool,
    out: &mut Vec<Change>,
) -> io::Result<()> {
    let mut names = sys::list_dir(dir)?;
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let Some(st) = sys::lstatat(dir, &name)? else {
            continue;
        };
        if is_whiteout(&st) {
            out.push(Change {
                path: abs(&r),
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let in_lower = if below_opaque { None } else { lowers.stat(&r) };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let kind = match &in_lower {
            Some(_) => ChangeKind::Changed,
            None => ChangeKind::Added,
        };
        let before = out.len();
        out.push(Change {
            path: abs(&r),
            kind,
        });
        if is_dir {
            let sub = sys::openat(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let opaque = in_lower.is_some() && is_opaque(sub.as_fd());
            walk_changes(sub.as_fd(), &r, lowers, below_opaque || opaque, out)?;
            if opaque {
                let upper: std::collections::HashSet<OsString> =
                    sys::list_dir(sub.as_fd())?.into_iter().collect();
                for n in lowers.children(&r) {
                    if !upper.contains(&n) {
                        out.push(Change {
                            path: abs(&r.join(&n)),
                            kind: ChangeKind::Deleted,
                        });
                    }
                }
            }
            // A directory copied up only because the engine placed its own files below it
            // (/etc for /etc/hosts), with the image's metadata, is not a change docker shows.
            if let (Some(l), ChangeKind::Changed) = (in_lower, kind) {
                let same =
                    l.st_mode == st.st_mode && l.st_uid == st.st_uid && l.st_gid == st.st_gid;
                let kids = &out[before + 1..];
                if same && !kids.is_empty() && kids.iter().all(|c| is_engine_path(&c.path)) {
                    out.remove(before);
                }
            }
        }
    }
    Ok(())
}

/// `diff`: the changes of a container's filesystem against its image, sorted by path.
pub fn diff(e: &Engine, s: &str) -> Result<Vec<Change>> {
    let c = e.container(s)?;
    let upper = e.container_dir(&c.id).join("upper");
    let lowers = Lowers::open(&c)?;
    let fd = sys::open_dir(&upper).map_err(io_err(format!("open {}", upper.display())))?;
    let mut out = Vec::new();
    walk_changes(fd.as_fd(), Path::new(""), &lowers, false, &mut out)
        .map_err(io_err(format!("read changes of container {s}")))?;
    out.retain(|c| !is_engine_path(&c.path));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Writes the upper directory as an OCI layer tar: whiteout devices become `.wh.<name>`, opaque
/// directories get a `.wh..wh..opq` entry; the engine's own mount point files are left out.
fn layer_tar<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    rel: &Path,
    links: &mut BTreeMap<(u64, u64), PathBuf>,
    skip: &[&str],
) -> io::Result<()> {
    let mut names = sys::list_dir(dir)?;
    names.sort();
    for name in names {
        let r = rel.join(&name);
        if is_engine_path(&abs(&r)) && !matches!(abs(&r).as_str(), "/dev" | "/proc" | "/sys") {
            continue;
        }
        if skip.contains(&abs(&r).as_str()) {
            continue;
        }
        let Some(st) = sys::lstatat(dir, &name)? else {
            continue;
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        if is_whiteout(&st) {
            let mut wh = OsString::from(".wh.");
            wh.push(&name);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            b.append_data(&mut h, rel.join(wh), io::empty())?;
            continue;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let sub = sys::openat(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                crate::fsops::append_xattrs(b, sub.as_fd())?;
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &r, io::empty())?;
                if is_opaque(sub.as_fd()) {
                    let mut o = tar::Header::new_gnu();
                    o.set_entry_type(tar::EntryType::Regular);
                    o.set_mode(0o600);
                    o.set_uid(0);
                    o.set_gid(0);
                    o.set_size(0);
                    o.set_mtime(st.st_mtime.max(0) as u64);
                    b.append_data(&mut o, r.join(".wh..wh..opq"), io::empty())?;
                }
                // The kernel filesystems' mount points stay empty in the image.
                if !matches!(abs(&r).as_str(), "/dev" | "/proc" | "/sys") {
                    layer_tar(b, sub.as_fd(), &r, links, skip)?;
                }
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&(st.st_dev, st.st_ino)) {
                        h.set_entry_type(tar::EntryType::Link);
                        b.append_link(&mut h, &r, first)?;
                        continue;
                    }
                    links.insert((st.st_dev, st.st_ino), r.clone());
                }
                let fd = sys::openat(dir, &name, libc::O_RDONLY, 0)?;
                crate::fsops::append_xattrs(b, fd.as_fd())?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                b.append_data(
                    &mut h,
                    &r,
                    crate::fsops::sized(File::from(fd), st.st_size as u64),
                )?;
            }
            _ => crate::fsops::append_special(b, &mut h, dir, &name, &r, &st)?,
        }
    }
    Ok(())
}

/// Writes an overlay upper directory into the content store as a gzip OCI layer (whiteouts
/// as `.wh.` entries, the engine's mount point files left out); returns the blob's digest and
/// size and the layer's diff id. `what` names the owner in errors; `skip` lists absolute paths
/// left out with everything below them. Also used by skiff-build.
pub fn write_layer(
    store: &Store,
    upper: &Path,
    what: &str,
    skip: &[&str],
) -> Result<(Digest, u64, Digest)> {
    let ufd = sys::open_dir(upper).map_err(io_err(format!("open {}", upper.display())))?;
    let blob = store.blob_writer()?;
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::new(3));
    let mut b = tar::Builder::new(HashingWriter::new(gz));
    layer_tar(
        &mut b,
        ufd.as_fd(),
        Path::new(""),
        &mut BTreeMap::new(),
        skip,
    )
    .map_err(io_err(format!("archive changes of {what}")))?;
    let hw = b
        .into_inner()
        .map_err(io_err(format!("archive changes of {what}")))?;
    let diff_id = hw.hasher.clone().finish();
    let blob = hw
        .inner
        .finish()
        .map_err(io_err(format!("compress layer of {what}")))?;
    let (layer_digest, layer_size) = blob.commit(None)?;
    Ok((layer_digest, layer_size, diff_id))
}

/// Options of `commit`.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// `-m`: history comment.
    pub message: Option<String>,
    /// `-a`: author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// `-p`: freeze a running container while its changes are read (docker's default).
    pub pause: bool,
    /// Fully qualified name to tag the image with.
    pub tag: Option<String>,
}

fn layer_media(m: &str) -> String {
    match m {
        spec::DOCKER_LAYER_GZIP => spec::OCI_LAYER_GZIP.to_string(),
        "application/vnd.docker.image.rootfs.diff.tar" => spec::OCI_LAYER_TAR.to_string(),
        other => other.to_string(),
    }
}

/// `commit`: records the container's changes as a new image on top of its image.
pub fn commit(e: &Engine, store: &Store, s: &str, opts: &CommitOptions) -> Result<ImageRecord> {
    for ch in &opts.changes {
        let instr = ch.split_whitespace().next().unwrap_or("");
        const OK: &[&str] = &[
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "EXPOSE",
            "HEALTHCHECK",
            "LABEL",
            "ONBUILD",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
        ];
        if !OK.contains(&instr.to_ascii_uppercase().as_str()) {
            return Err(Error::Invalid(format!(
                "--change: {instr} is not a valid change command (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
            )));
        }
    }
    let c = e.container(s)?;
    let paused = if opts.pause && c.state.status == "running" {
        e.pause(&c.id)?;
        true
    } else {
        false
    };
    let r = commit_inner(e, store, &c, opts);
    if paused {
        let _ = e.unpause(&c.id);
    }
    r
}

fn commit_inner(
    e: &Engine,
    store: &Store,
    c: &Container,
    opts: &CommitOptions,
) -> Result<ImageRecord> {
    let parent = store.get(&Digest::parse(&c.image)?)?;
    let upper = e.container_dir(&c.id).join("upper");
    let mut created_by = vec![c.path.clone()];
    created_by.extend(c.args.iter().cloned());
    let layer = NewLayer {
        upper: &upper,
        what: format!("container {}", c.name),
        process: Some(&c.config),
        created_by: created_by.join(" "),
        skip: &[],
    };
    commit_layer(store, &parent, &layer, opts)
}

/// One writable layer to record as an image on top of a parent image ([`commit_layer`]).
#[derive(Debug, Clone)]
pub struct NewLayer<'a> {
    /// The overlay upper directory holding the changes.
    pub upper: &'a Path,
    /// What the changes are of, for messages (`container "web"`).
    pub what: String,
    /// The container's process settings to put in the image config (None: the parent's stay).
    pub process: Option<&'a crate::model::Config>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// Absolute paths left out of the layer with everything below them (e.g. a debug toolbox).
    pub skip: &'a [&'a str],
}

/// Records the upper directory `l.upper` as a new layer on top of `parent`, as a new image
/// (tagged `opts.tag`); `commit` of a container and `debug --commit` both end here.
pub fn commit_layer(
    store: &Store,
    parent: &ImageRecord,
    l: &NewLayer<'_>,
    opts: &CommitOptions,
) -> Result<ImageRecord> {
    let (pmanifest, _) = store.manifest(&parent.manifest_digest)?;
    let pconfig = store.read_blob(&parent.id)?;
    let mut config: Value = serde_json::from_slice(&pconfig)
        .map_err(|err| Error::Other(format!("image config {}: {err}", parent.id)))?;

    // The layer.
    let (layer_digest, layer_size, diff_id) = write_layer(store, l.upper, &l.what, l.skip)?;

    // The config: the parent's, with the container's process settings, then --change.
    let now = skiff_image::time::rfc3339(skiff_image::time::now_unix());
    let mut cfg = match config.get("config") {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(cc) = l.process {
        cfg.insert("Env".into(), json!(cc.env));
        cfg.insert("Cmd".into(), json!(cc.cmd));
        cfg.insert("Entrypoint".into(), json!(cc.entrypoint));
        cfg.insert("WorkingDir".into(), json!(cc.working_dir));
        cfg.insert("User".into(), json!(cc.user));
        if !cc.labels.is_empty() {
            cfg.insert("Labels".into(), json!(cc.labels));
        }
    }
    skiff_image::import::apply_changes(&mut cfg, &opts.changes)?;
    config["config"] = Value::Object(cfg);
    config["created"] = json!(now);
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    let mut diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(diff_id.as_str()));
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut h = json!({"created": now, "created_by": l.created_by});
    if let Some(a) = &opts.author {
        h["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        h["comment"] = json!(m);
    }
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history.push(h);
    config["history"] = json!(history);
    for k in ["container", "container_config"] {
        if let Some(o) = config.as_object_mut() {
            o.remove(k);
        }
    }
    let config_bytes =
        serde_json::to_vec(&config).map_err(|err| Error::Other(format!("image config: {err}")))?;
    let config_digest = store.put_blob(&config_bytes, None)?;

    let mut layers: Vec<Descriptor> = pmanifest
        .layers
        .iter()
        .map(|l| {
            let mut d = l.clone();
            d.media_type = layer_media(&l.media_type);
            d
        })
        .collect();
    layers.push(Descriptor::new(
        spec::OCI_LAYER_GZIP,
        layer_digest,
        layer_size,
    ));
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Descriptor::new(spec::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers,
        annotations: None,
        extra: BTreeMap::new(),
    };
    let mbytes =
        serde_json::to_vec(&manifest).map_err(|err| Error::Other(format!("manifest: {err}")))?;
    let mdigest = store.put_blob(&mbytes, None)?;
    Ok(store.record_image(&NewImage {
        manifest: Descriptor::new(spec::OCI_MANIFEST, mdigest, mbytes.len() as u64),
        index_digest: None,
        tags: opts.tag.iter().cloned().collect(),
        repo_digests: vec![],
    })?)
}

/// Bytes used by a container's writable layer (its upper directory), for `ps -s` and prune.
pub fn upper_size(e: &Engine, id: &str) -> u64 {
    fn walk(dir: BorrowedFd<'_>) -> u64 {
        let mut n = 0;
        let Ok(names) = sys::list_dir(dir) else {
            return 0;
        };
        for name in names {
            let Ok(Some(st)) = sys::lstatat(dir, &name) else {
                continue;
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                if let Ok(sub) = sys::openat(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                    n += walk(sub.as_fd());
                }
            } else if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                n += st.st_size as u64;
            }
        }
        n
    }
    match sys::open_dir(&e.container_dir(id).join("upper")) {
        Ok(fd) => walk(fd.as_fd()),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_paths() {
        assert!(is_engine_path("/etc/hosts"));
        assert!(is_engine_path("/dev/null"));
        assert!(!is_engine_path("/devices"));
        assert!(!is_engine_path("/etc/passwd"));
    }
}
