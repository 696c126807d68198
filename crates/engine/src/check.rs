//! `skiff system check [--repair]`: compares the state database with what is on disk, and
//! rebuilds the records of a lost, emptied or damaged database from disk.
//!
//! The disk is the ground truth for data; the database is the index of it. [`check`] lists every
//! disagreement as one line (records without directories, directories without records, running
//! containers not recorded, images whose blobs are missing, blobs no image references, volumes
//! without records, images in `content/index.json` without records). [`repair`] moves a damaged
//! database aside (`skiff.db.corrupt-<time>`, never deleted) and restores:
//!
//! * images and their tags from `content/index.json` (the OCI layout skiff keeps in step with the
//!   records), and images containers still use from the manifests in the content store;
//! * volumes from `volumes/<name>/` and the `volume.json` copy written at create;
//! * containers from `containers/<id>/container.json` (the record copy written at create and
//!   rename; `config.json` alone gives a partial record), with their state from disk: a live
//!   init in the runtime state (adopted with its monitor, so `ps`, `exec`, `stop` and `rm -f`
//!   work again), else the `exit` file the monitor wrote, else `created`.
//!
//! Nothing is deleted by either: what only a human can judge stays reported.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use skiff_image::spec::{self, Descriptor};
use skiff_image::statedb::{self, DB_FILE};
use skiff_image::store::{NewImage, Store};
use skiff_image::Digest;

use crate::error::{Error, Result};
use crate::model::{Config, Container, State, ZERO_TIME};
use crate::ops::RECORD_FILE;
use crate::volumes::Volumes;
use crate::{names, proc, Engine};

/// What [`repair`] did and what is still wrong afterwards.
#[derive(Debug, Default, Clone)]
pub struct RepairReport {
    /// One line per restored record or moved file.
    pub actions: Vec<String>,
    /// The problems [`check`] still finds after the repair.
    pub problems: Vec<String>,
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Entries of `dir` whose names do not start with a dot.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The container record kept in the container's directory, if readable.
fn read_record(dir: &Path) -> Option<Container> {
    let data = std::fs::read(dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Is the database usable? `Ok(false)` when there is none and nothing needs one; an error line
/// when it is missing beside data, empty or damaged.
fn db_status(root: &Path) -> std::result::Result<bool, String> {
    let path = root.join(DB_FILE);
    if !path.exists() {
        return match statedb::root_data(root) {
            Some(_) => Err(statedb::open(root)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("state database {} is missing", path.display()))),
            None => Ok(false),
        };
    }
    statedb::open(root).map(|_| true).map_err(|e| e.to_string())
}

/// The live init of container `id` per the runtime state: (runtime state, its monitor's pid).
fn live_runtime(rt: &Path, id: &str) -> Option<(skiff_runtime::state::State, i32)> {
    let st = skiff_runtime::state::State::load(rt, id).ok()?;
    if !st.init_alive() {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", st.pid)).ok()?;
    let ppid: i32 = stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    // A monitor names itself `skiff-monitor <id12>` once it knows its container.
    let is_monitor = cmdline.starts_with(b"skiff-monitor ")
        || cmdline.split(|b| *b == 0).nth(1) == Some(b"monitor".as_slice());
    Some((st, if is_monitor { ppid } else { 0 }))
}

/// Lists every disagreement between the database and the disk under `root`, one line each.
/// Empty when they agree. Opens nothing that does not exist.
pub fn check(root: &Path, runroot: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let usable = match db_status(root) {
        Ok(u) => u,
        Err(line) => {
            problems.push(line);
            false
        }
    };
    let runroot = runroot
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::default_runroot(root));
    // Records (none when the database cannot be read: everything on disk is then unrecorded).
    let mut containers: Vec<Container> = Vec::new();
    let mut images = Vec::new();
    let mut volumes = Vec::new();
    let mut store = None;
    if usable {
        match Engine::open(root, Some(&runroot)).and_then(|e| e.list_raw()) {
            Ok(c) => containers = c,
            Err(e) => problems.push(format!("containers: cannot read records: {e}")),
        }
        match Store::open(root) {
            Ok(s) => {
                match s.list() {
                    Ok(i) => images = i,
                    Err(e) => problems.push(format!("images: cannot read records: {e}")),
                }
                store = Some(s);
            }
            Err(e) => problems.push(format!("images: cannot open the store: {e}")),
        }
        match Volumes::open(root).and_then(|v| v.list()) {
            Ok(v) => volumes = v,
            Err(e) => problems.push(format!("volumes: cannot read records: {e}")),
        }
    }

    // Containers.
    let cdir = root.join("containers");
    let known: HashMap<&str, &Container> = containers.iter().map(|c| (c.id.as_str(), c)).collect();
    for c in &containers {
        if !cdir.join(&c.id).is_dir() {
            problems.push(format!(
                "container {} ({}): record without directory containers/{}",
                short(&c.id),
                c.name,
                c.id
            ));
        }
    }
    for name in entries(&cdir) {
        if known.contains_key(name.as_str()) {
            continue;
        }
        let what = match read_record(&cdir.join(&name)) {
            Some(r) => format!(" (container.json: name {}, image {})", r.name, r.image_ref),
            None => String::new(),
        };
        problems.push(format!(
            "container directory containers/{name} has no record{what}"
        ));
    }
    let rt = runroot.join("runtime");
    for id in entries(&rt) {
        if !names::is_full_id(&id) {
            continue;
        }
        let Some((st, _)) = live_runtime(&rt, &id) else {
            continue;
        };
        match known.get(id.as_str()) {
            None => problems.push(format!(
                "container {} is running (pid {}) but not recorded",
                short(&id),
                st.pid
            )),
            Some(c) if !c.is_active() => problems.push(format!(
                "container {} ({}) is running (pid {}) but recorded as {}",
                short(&id),
                c.name,
                st.pid,
                c.state.status
            )),
            Some(_) => {}
        }
    }

    // Images and blobs.
    let blobs_dir = root.join("content/blobs/sha256");
    let mut referenced: HashSet<String> = HashSet::new();
    let have = |d: &Digest| blobs_dir.join(d.hex()).is_file();
    for img in &images {
        let label = if img.tags.is_empty() {
            img.id.short().to_string()
        } else {
            format!("{} ({})", img.id.short(), img.tags.join(", "))
        };
        let mut need = vec![
            ("manifest", img.manifest_digest.clone()),
            ("config", img.id.clone()),
        ];
        if let Some(s) = &store {
            if let Ok((m, _)) = s.manifest(&img.manifest_digest) {
                need.extend(m.layers.iter().map(|l| ("layer", l.digest.clone())));
            }
        }
        for (what, d) in need {
            referenced.insert(d.hex().to_string());
            if !have(&d) {
                problems.push(format!("image {label}: {what} blob {d} is missing"));
            }
        }
    }
    for hex in entries(&blobs_dir) {
        if !referenced.contains(&hex) {
            let size = std::fs::metadata(blobs_dir.join(&hex))
                .map(|m| m.len())
                .unwrap_or(0);
            problems.push(format!(
                "blob sha256:{hex} ({size} bytes) is referenced by no image"
            ));
        }
    }
    let recorded: HashSet<&str> = images.iter().map(|i| i.manifest_digest.as_str()).collect();
    for (digest, tags) in index_entries(&root.join("content/index.json")) {
        if !recorded.contains(digest.as_str()) {
            let what = if tags.is_empty() {
                String::new()
            } else {
                format!(" ({})", tags.join(", "))
            };
            problems.push(format!(
                "image manifest {digest}{what} in content/index.json has no record"
            ));
        }
    }

    // Volumes.
    let vdir = root.join("volumes");
    let vnames: HashSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    for v in &volumes {
        if !vdir.join(&v.name).is_dir() {
            problems.push(format!(
                "volume {}: record without directory volumes/{}",
                v.name, v.name
            ));
        }
    }
    for name in entries(&vdir) {
        if !vnames.contains(name.as_str()) {
            problems.push(format!("volume directory volumes/{name} has no record"));
        }
    }
    problems
}

/// The image manifests an index file (`content/index.json`) lists, by digest with their names.
fn index_entries(file: &Path) -> BTreeMap<Digest, Vec<String>> {
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let Ok(data) = std::fs::read(file) else {
        return out;
    };
    let Ok(index) = serde_json::from_slice::<spec::Index>(&data) else {
        return out;
    };
    for d in index.manifests {
        let names = out.entry(d.digest.clone()).or_default();
        if let Some(ann) = &d.annotations {
            if let Some(n) = ann
                .get(spec::ANNOTATION_IMAGE_NAME)
                .or_else(|| ann.get(spec::ANNOTATION_REF_NAME))
            {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
    }
    out
}

/// The descriptors of an index file, by manifest digest (first one wins).
fn index_descriptors(file: &Path) -> HashMap<Digest, Descriptor> {
    std::fs::read(file)
        .ok()
        .and_then(|d| serde_json::from_slice::<spec::Index>(&d).ok())
        .map(|i| {
            let mut m = HashMap::new();
            for d in i.manifests {
                m.entry(d.digest.clone()).or_insert(d);
            }
            m
        })
        .unwrap_or_default()
}

/// A manifest in the content store whose config is `config` (an image a container uses but
/// `index.json` no longer names). Reads only small blobs that mention the config's digest.
fn find_manifest(root: &Path, config: &Digest) -> Option<Descriptor> {
    let blobs = root.join("content/blobs/sha256");
    for hex in entries(&blobs) {
        let p = blobs.join(&hex);
        if std::fs::metadata(&p)
            .map(|m| m.len() > 1 << 20)
            .unwrap_or(true)
        {
            continue;
        }
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        if data.first() != Some(&b'{')
            || !data
                .windows(config.hex().len())
                .any(|w| w == config.hex().as_bytes())
        {
            continue;
        }
        if let Ok(spec::Document::Manifest(m)) = spec::parse_document(&data, None) {
            if &m.config.digest == config {
                let mt = m
                    .media_type
                    .clone()
                    .unwrap_or_else(|| spec::OCI_MANIFEST.to_string());
                return Some(Descriptor::new(&mt, Digest::of(&data), data.len() as u64));
            }
        }
    }
    None
}

/// The lower directories of the overlay mounted at `rootfs`, from /proc/self/mountinfo.
fn mounted_lowers(rootfs: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = rootfs.to_string_lossy();
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.get(4) != Some(&target.as_ref()) {
            continue;
        }
        if let Some(opts) = f.iter().rev().find(|o| o.contains("lowerdir=")) {
            for o in opts.split(',') {
                if let Some(v) = o.strip_prefix("lowerdir=") {
                    // Overlay lists the top layer first; skiff records the bottom first.
                    let mut v: Vec<String> = v.split(':').map(str::to_string).collect();
                    v.reverse();
                    return v;
                }
            }
        }
    }
    Vec::new()
}

/// A partial record from a bundle's config.json (a container made before `container.json`
/// existed): the process, hostname and, while it is mounted, the image layers.
fn record_from_bundle(id: &str, dir: &Path) -> Option<Container> {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
    let p = &cfg["process"];
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let argv = strs(&p["args"]);
    let created = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| skiff_image::time::rfc3339(d.as_secs() as i64))
        .unwrap_or_else(proc::now);
    Some(Container {
        id: id.to_string(),
        name: format!("recovered_{}", short(id)),
        created,
        path: argv.first().cloned().unwrap_or_default(),
        args: argv.iter().skip(1).cloned().collect(),
        config: Config {
            hostname: cfg["hostname"].as_str().unwrap_or("").to_string(),
            env: strs(&p["env"]),
            cmd: Some(argv),
            working_dir: p["cwd"].as_str().unwrap_or("").to_string(),
            tty: p["terminal"].as_bool().unwrap_or(false),
            ..Default::default()
        },
        lower_dirs: mounted_lowers(&dir.join("rootfs")),
        platform: "linux".into(),
        ..Default::default()
    })
}

/// The state of a recovered container, from the disk: a live init (with its monitor), else the
/// monitor's exit file, else never started.
fn recovered_state(e: &Engine, id: &str) -> State {
    let dir = e.container_dir(id);
    let rt = e.runtime_root();
    if let Some((st, monitor)) = live_runtime(&rt, id) {
        let paused = st.cgroup.is_frozen().unwrap_or(false);
        return State {
            status: if paused { "paused" } else { "running" }.into(),
            running: true,
            paused,
            pid: st.pid,
            started_at: if st.created.is_empty() {
                proc::now()
            } else {
                st.created.clone()
            },
            finished_at: ZERO_TIME.into(),
            monitor_pid: monitor,
            monitor_start: proc::start_time(monitor).unwrap_or(0),
            ..Default::default()
        };
    }
    if let Ok(s) = std::fs::read_to_string(dir.join("exit")) {
        let mut it = s.split_whitespace();
        let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(255);
        let oom = it.next() == Some("1");
        let finished = it.next().unwrap_or("").to_string();
        return State {
            status: "exited".into(),
            exit_code: code,
            oom_killed: oom,
            started_at: ZERO_TIME.into(),
            finished_at: if finished.is_empty() {
                proc::now()
            } else {
                finished
            },
            ..Default::default()
        };
    }
    if dir.join("config.json").exists() {
        // Started once, and no exit was recorded: as `reconcile` does for a lost monitor.
        return State {
            status: "exited".into(),
            exit_code: 255,
            started_at: ZERO_TIME.into(),
            finished_at: proc::now(),
            ..Default::default()
        };
    }
    State {
        status: "created".into(),
        started_at: ZERO_TIME.into(),
        finished_at: ZERO_TIME.into(),
        ..Default::default()
    }
}

/// Inserts `c`, moving to `<name>_recovered[_<short id>]` if its name was taken meanwhile.
fn insert_recovered(e: &Engine, c: &mut Container) -> Result<()> {
    let base = c.name.clone();
    for cand in [
        base.clone(),
        format!("{base}_recovered"),
        format!("{base}_recovered_{}", short(&c.id)),
    ] {
        c.name = cand;
        match e.insert(c) {
            Err(Error::NameConflict { .. }) => continue,
            r => return r,
        }
    }
    Err(Error::Other(format!(
        "container {}: every name tried is taken",
        c.id
    )))
}

/// Rebuilds the records of `root` from disk (see the module documentation); then checks again.
pub fn repair(root: &Path, runroot: Option<&Path>) -> Result<RepairReport> {
    let mut rep = RepairReport::default();
    let db = root.join(DB_FILE);
    // A damaged file goes aside, never away; so does a write-ahead log left without its file.
    let stale_wal = !db.exists() && root.join(format!("{DB_FILE}-wal")).exists();
    // A zero-length file counts as damaged: beside a leftover WAL, SQLite would rebuild a
    // partial database from it.
    let zero = std::fs::metadata(&db)
        .map(|m| m.len() == 0)
        .unwrap_or(false);
    let damaged = zero
        || (db.exists()
            && matches!(
                statedb::open(root),
                Err(statedb::StateDbError::Corrupt { .. })
            ));
    if damaged || stale_wal {
        let moved = statedb::move_aside(root).map_err(|e| Error::Io {
            what: format!("move {} aside", db.display()),
            source: e,
        })?;
        rep.actions.push(match moved {
            Some(p) => format!("moved the damaged database aside to {}", p.display()),
            None => format!(
                "moved the write-ahead log of the lost {} aside",
                db.display()
            ),
        });
    }
    // index.json is read before the store opens (which rewrites it from the records), and kept
    // as `index.json.repair` until the repair is done, so an interrupted repair can be re-run.
    let content = root.join("content");
    let saved = content.join("index.json.repair");
    if !saved.exists() && !index_entries(&content.join("index.json")).is_empty() {
        let tmp = content.join(".index.json.repair.tmp");
        std::fs::copy(content.join("index.json"), &tmp)
            .and_then(|_| std::fs::rename(&tmp, &saved))
            .map_err(|err| Error::Io {
                what: format!("save {}", saved.display()),
                source: err,
            })?;
    }
    let source = if saved.exists() {
        saved.clone()
    } else {
        content.join("index.json")
    };
    let index = index_entries(&source);
    let descs = index_descriptors(&source);
    statedb::set_repairing(true);
    let r = repair_records(root, runroot, &index, &descs, &mut rep);
    statedb::set_repairing(false);
    r?;
    let _ = std::fs::remove_file(&saved);
    rep.problems = check(root, runroot);
    Ok(rep)
}

fn repair_records(
    root: &Path,
    runroot: Option<&Path>,
    index: &BTreeMap<Digest, Vec<String>>,
    descs: &HashMap<Digest, Descriptor>,
    rep: &mut RepairReport,
) -> Result<()> {
    let e = Engine::open(root, runroot)?;
    let store = Store::open(root)?;
    let vols = Volumes::open(root).map_err(|x| Error::Other(x.to_string()))?;

    // Images, from index.json.
    let mut have: HashSet<String> = store
        .list()?
        .into_iter()
        .map(|i| i.manifest_digest.to_string())
        .collect();
    for (digest, tags) in index {
        if have.contains(digest.as_str()) {
            continue;
        }
        let Some(d) = descs.get(digest) else { continue };
        if matches!(d.media_type.as_str(), spec::OCI_INDEX | spec::DOCKER_LIST) {
            continue;
        }
        let new = NewImage {
            manifest: d.clone(),
            index_digest: None,
            tags: tags.clone(),
            repo_digests: Vec::new(),
        };
        match store.record_image(&new) {
            Ok(img) => {
                have.insert(digest.to_string());
                let names: Vec<String> = tags
                    .iter()
                    .map(|t| skiff_image::names::familiar(t))
                    .collect();
                rep.actions.push(format!(
                    "restored image {}{}",
                    img.id.short(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", names.join(", "))
                    }
                ));
            }
            Err(err) => rep
                .actions
                .push(format!("could not restore image manifest {digest}: {err}")),
        }
    }

    // Volumes.
    for name in entries(&vols.dir()) {
        match vols.adopt(&name) {
            Ok(Some(_)) => rep.actions.push(format!("restored volume {name}")),
            Ok(None) => {}
            Err(err) => rep
                .actions
                .push(format!("could not restore volume {name}: {err}")),
        }
    }

    // Containers.
    let known: BTreeSet<String> = e.all_ids()?.into_iter().collect();
    let cdir = root.join("containers");
    for id in entries(&cdir) {
        if known.contains(&id) || !names::is_full_id(&id) {
            continue;
        }
        let dir = cdir.join(&id);
        let (mut c, partial) = match read_record(&dir) {
            Some(c) if c.id == id => (c, false),
            _ => match record_from_bundle(&id, &dir) {
                Some(c) => (c, true),
                None => {
                    rep.actions.push(format!(
                        "could not restore container {}: neither {RECORD_FILE} nor config.json in containers/{id}",
                        short(&id)
                    ));
                    continue;
                }
            },
        };
        c.state = recovered_state(&e, &id);
        c.restart_count = 0;
        // Its image, if the index no longer names it but the store still holds it.
        if let Ok(img) = Digest::parse(&c.image) {
            if store.get(&img).is_err() {
                if let Some(d) = find_manifest(root, &img) {
                    let new = NewImage {
                        manifest: d,
                        index_digest: None,
                        tags: Vec::new(),
                        repo_digests: Vec::new(),
                    };
                    if store.record_image(&new).is_ok() {
                        rep.actions
                            .push(format!("restored image {} (untagged)", img.short()));
                    }
                }
            }
        }
        let lock = e.lock_path(&id);
        if !lock.exists() {
            skiff_image::perms::lock_file(&lock).map_err(|err| Error::Io {
                what: format!("create lock {}", lock.display()),
                source: err,
            })?;
        }
        insert_recovered(&e, &mut c)?;
        for m in c.mounts.iter().filter(|m| m.kind == "volume") {
            if !m.name.is_empty() {
                let _ = vols.attach(&id, &m.name);
            }
        }
        if !partial {
            let _ = crate::create::write_record(&dir, &c);
        }
        let monitor = if c.is_active() && c.state.monitor_pid == 0 {
            " without its monitor"
        } else {
            ""
        };
        rep.actions.push(format!(
            "restored container {} ({}, {}){}{monitor}",
            short(&id),
            c.name,
            c.state.status,
            if partial {
                " from config.json only: image and settings unknown"
            } else {
                ""
            }
        ));
    }
    statedb::stamp(&e.conn).map_err(|err| Error::Db {
        what: "stamp".into(),
        source: err,
    })?;
    Ok(())
}
