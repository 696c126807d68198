//! The executor: splits the Dockerfile into stages, builds the ones the target needs (its
//! `FROM` and `COPY --from` stages first), runs each instruction against the stage's state (an
//! image config plus its layers) and records the result as an image.
//!
//! Every step has a key: the parent's key and the instruction as expanded (plus the digests of
//! COPY/ADD sources and the build args a RUN sees). Steps that make a layer (RUN, COPY, ADD) are
//! looked up in the cache by that key; metadata steps are recomputed, deterministically (their
//! history entries take the parent's creation time), so an unchanged rebuild yields the same
//! image id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::Digest as _;
use skiff_image::digest::Digest;
use skiff_image::spec::{self, Descriptor, ImageConfig, Manifest};
use skiff_image::store::{ImageRecord, NewImage, Store};
use skiff_image::sys;

use crate::cache::Cache;
use crate::copy::{self, SrcRoot, WriteOpts};
use crate::expand::Lexer;
use crate::ignore::Matcher;
use crate::mounts::{MountReq, SecretSource};
use crate::parse::{self, Command, CopyArgs, Dockerfile, Form, Instruction, Source};
use crate::progress::Progress;
use crate::run::{self, Mounted, RunSpec};
use crate::BuildError;

/// Docker's default PATH for images without one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What to build.
pub struct BuildOptions<'a> {
    /// The engine's data root (database, content store).
    pub root: PathBuf,
    /// The engine's run root.
    pub runroot: PathBuf,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's name (for errors and progress).
    pub dockerfile_name: String,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The `.dockerignore` patterns.
    pub ignore: Matcher,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--label`.
    pub labels: Vec<(String, String)>,
    /// `-t` names, normalized.
    pub tags: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--network host` for every RUN.
    pub host_network: bool,
    /// `--secret` values by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--build-context name=dir|docker-image://ref`.
    pub contexts: BTreeMap<String, NamedContext>,
    /// `--no-cache-filter` stage names.
    pub no_cache_filter: Vec<String>,
    /// Resolves an image name to a local image.
    pub resolve: &'a (dyn Fn(&Store, &str) -> Result<ImageRecord, String> + Sync),
}

/// A `--build-context` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory.
    Dir(PathBuf),
    /// `docker-image://ref`: a local image.
    Image(String),
}

/// The state of a stage after some steps.
#[derive(Clone)]
struct State {
    key: String,
    img: Value,
    layers: Vec<Descriptor>,
    cmd_set: bool,
}

#[derive(Clone)]
struct StageDef {
    name: Option<String>,
    base: String,
    from: Instruction,
    instrs: Vec<Instruction>,
}

struct Ctx {
    args: Vec<(String, String)>,
    declared: HashSet<String>,
}

fn sha(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    skiff_image::digest::to_hex(&h.finalize())
}

fn layer_media(m: &str) -> String {
    match m {
        spec::DOCKER_LAYER_GZIP => spec::OCI_LAYER_GZIP.to_string(),
        "application/vnd.docker.image.rootfs.diff.tar" => spec::OCI_LAYER_TAR.to_string(),
        other => other.to_string(),
    }
}

fn now() -> String {
    skiff_image::time::rfc3339(skiff_image::time::now_unix())
}

impl State {
    fn cfg(&mut self) -> &mut Map<String, Value> {
        if !self.img.get("config").is_some_and(Value::is_object) {
            self.img["config"] = json!({});
        }
        self.img["config"]
            .as_object_mut()
            .expect("config is an object")
    }
    fn env(&self) -> Vec<String> {
        self.img["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn str_field(&self, k: &str) -> String {
        self.img["config"][k].as_str().unwrap_or("").to_string()
    }
    fn shell(&self) -> Vec<String> {
        match self.img["config"]["Shell"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }
    fn history(&mut self, created_by: &str, empty: bool) {
        let created = if empty {
            self.img["created"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(now)
        } else {
            now()
        };
        let mut h = json!({"created": created, "created_by": created_by, "comment": "buildkit.dockerfile.v0"});
        if empty {
            h["empty_layer"] = json!(true);
        }
        if !self.img["history"].is_array() {
            self.img["history"] = json!([]);
        }
        if let Some(a) = self.img["history"].as_array_mut() {
            a.push(h);
        }
        if !empty {
            self.img["created"] = json!(created);
        }
    }
    fn diff_ids(&self) -> Vec<Digest> {
        self.img["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Writes the config and manifest blobs; returns the manifest descriptor and config digest.
    fn persist(&self, store: &Store) -> Result<(Descriptor, Digest), BuildError> {
        let cbytes = serde_json::to_vec(&self.img).map_err(|e| BuildError::Other(e.to_string()))?;
        let cdigest = store.put_blob(&cbytes, None)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::OCI_MANIFEST.into()),
            config: Descriptor::new(spec::OCI_CONFIG, cdigest.clone(), cbytes.len() as u64),
            layers: self.layers.clone(),
            annotations: None,
            extra: BTreeMap::new(),
        };
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| BuildError::Other(e.to_string()))?;
        let md = store.put_blob(&mbytes, None)?;
        Ok((
            Descriptor::new(spec::OCI_MANIFEST, md, mbytes.len() as u64),
            cdigest,
        ))
    }
    fn load(store: &Store, key: &str, manifest: &Digest) -> Option<State> {
        let (m, _) = store.manifest(manifest).ok()?;
        if !m.layers.iter().all(|l| store.has_blob(&l.digest)) {
            return None;
        }
        let cfg = store.read_blob(&m.config.digest).ok()?;
        let img: Value = serde_json::from_slice(&cfg).ok()?;
        Some(State {
            key: key.to_string(),
            img,
            layers: m.layers,
            cmd_set: false,
        })
    }
    /// Whether `rel` exists in the state's filesystem: the topmost layer that has it, or a
    /// whiteout of it or of a parent, decides.
    fn path_exists(&self, store: &Store, rel: &str) -> Result<bool, BuildError> {
        let lowers = self.lowers(store)?;
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for l in lowers.iter().rev() {
            let mut p = l.clone();
            for (n, c) in comps.iter().enumerate() {
                p.push(c);
                match std::fs::symlink_metadata(&p) {
                    Ok(md) => {
                        use std::os::unix::fs::{FileTypeExt, MetadataExt};
                        if md.file_type().is_char_device() && md.rdev() == 0 {
                            return Ok(false);
                        }
                        if n + 1 == comps.len() {
                            return Ok(true);
                        }
                        if !md.is_dir() {
                            // A symlinked parent: leave the answer to the RUN/COPY that needs it.
                            return Ok(true);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(false)
    }

    /// The unpacked layer directories (bottom first).
    fn lowers(&self, store: &Store) -> Result<Vec<PathBuf>, BuildError> {
        if self.layers.is_empty() {
            return Ok(Vec::new());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::OCI_MANIFEST.into()),
            config: Descriptor::new(spec::OCI_CONFIG, Digest::of(b""), 0),
            layers: self.layers.clone(),
            annotations: None,
            extra: BTreeMap::new(),
        };
        let cbytes = serde_json::to_vec(&json!({"architecture": "", "os": "",
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids().iter().map(|d| d.as_str()).collect::<Vec<_>>()}}))
            .map_err(|e| BuildError::Other(e.to_string()))?;
        let config = ImageConfig::parse(&cbytes)?;
        let chains = store.ensure_snapshots(&manifest, &config)?;
        Ok(chains
            .iter()
            .map(|c| store.snapshot_dir(c).join("fs"))
            .collect())
    }
}

/// Runs a build; returns the recorded image.
pub fn build(
    store: &Store,
    o: &BuildOptions<'_>,
    p: &mut (dyn Progress + Send),
) -> Result<ImageRecord, BuildError> {
    let v = p.start(&format!(
        "[internal] load build definition from {}",
        o.dockerfile_name
    ));
    let df = parse::parse(&o.dockerfile_name, &o.dockerfile).map_err(BuildError::Parse)?;
    p.done(v);
    let cache = Cache::open(&o.root)?;
    let ctx_key = std::fs::canonicalize(&o.context)
        .unwrap_or_else(|_| o.context.clone())
        .to_string_lossy()
        .into_owned();
    let ctx_index = cache.load_index(&ctx_key)?;
    let mut b = Builder {
        store,
        o,
        df,
        stages: Vec::new(),
        meta: Vec::new(),
        done: HashMap::new(),
        cache,
        used_args: HashSet::new(),
        no_cache_now: false,
        ctx_index: std::sync::Arc::new(std::sync::Mutex::new(ctx_index)),
        abort: Default::default(),
    };
    b.split()?;
    let target = match &o.target {
        Some(t) => {
            let t = t.to_ascii_lowercase();
            b.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| {
                    BuildError::Other(format!("target stage \"{t}\" could not be found"))
                })?
        }
        None => b.stages.len() - 1,
    };
    let shared = SharedProgress(std::sync::Mutex::new(p));
    let r = b
        .parallel_deps(target, &shared)
        .and_then(|()| b.stage(target, &mut &shared, &mut Vec::new()));
    let p = shared
        .0
        .into_inner()
        .map_err(|_| BuildError::Other("progress poisoned".into()))?;
    // What was learnt about the context is kept even when the build failed.
    let ix = std::mem::take(
        &mut *b
            .ctx_index
            .lock()
            .map_err(|_| BuildError::Other("context index poisoned".into()))?,
    );
    b.cache.save_index(&ctx_key, &ix)?;
    let mut st = r?;
    let unused: Vec<&String> = o
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        p.warn(&format!(
            "[Warning] One or more build-args [{}] were not consumed",
            names.join(" ")
        ));
    }
    // Export.
    let v = p.start("exporting to image");
    if !o.labels.is_empty() {
        let cfg = st.cfg();
        let mut labels = cfg
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, val) in &o.labels {
            labels.insert(k.clone(), json!(val));
        }
        cfg.insert("Labels".into(), Value::Object(labels));
    }
    if st.img.get("created").is_none() {
        st.img["created"] = json!(now());
    }
    let (mdesc, cdigest) = st.persist(store)?;
    p.detail(v, &format!("writing image {cdigest} done"));
    let rec = store.record_image(&NewImage {
        manifest: mdesc,
        index_digest: None,
        tags: o.tags.clone(),
        repo_digests: vec![],
    })?;
    for t in &o.tags {
        p.detail(v, &format!("naming to {t} done"));
    }
    p.done(v);
    Ok(rec)
}

/// The work of a layer step: (builder, mounted root, temp dir, progress id, progress).
type StepWork<'w, 'b> = dyn FnMut(&mut Builder<'b>, &Mounted, &Path, usize, &mut dyn Progress) -> Result<(), BuildError>
    + 'w;

struct Builder<'a> {
    store: &'a Store,
    o: &'a BuildOptions<'a>,
    df: Dockerfile,
    stages: Vec<StageDef>,
    meta: Vec<(String, String)>,
    done: HashMap<usize, State>,
    cache: Cache,
    used_args: HashSet<String>,
    no_cache_now: bool,
    ctx_index: std::sync::Arc<std::sync::Mutex<crate::copy::CtxIndex>>,
    /// Set when a stage built in parallel failed: the others stop at their next step.
    abort: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A stage finished on another thread: its index, final state and the build args it used.
type StageDone = (usize, State, HashSet<String>);

/// The progress shared by stages built in parallel.
struct SharedProgress<'p>(std::sync::Mutex<&'p mut (dyn Progress + Send)>);

impl Progress for &SharedProgress<'_> {
    fn start(&mut self, name: &str) -> usize {
        self.0.lock().map(|mut p| p.start(name)).unwrap_or(0)
    }
    fn log(&mut self, id: usize, data: &[u8]) {
        if let Ok(mut p) = self.0.lock() {
            p.log(id, data)
        }
    }
    fn detail(&mut self, id: usize, text: &str) {
        if let Ok(mut p) = self.0.lock() {
            p.detail(id, text)
        }
    }
    fn cached(&mut self, id: usize) {
        if let Ok(mut p) = self.0.lock() {
            p.cached(id)
        }
    }
    fn done(&mut self, id: usize) {
        if let Ok(mut p) = self.0.lock() {
            p.done(id)
        }
    }
    fn error(&mut self, id: usize, msg: &str) {
        if let Ok(mut p) = self.0.lock() {
            p.error(id, msg)
        }
    }
    fn warn(&mut self, msg: &str) {
        if let Ok(mut p) = self.0.lock() {
            p.warn(msg)
        }
    }
}

fn platform_args() -> Vec<(String, String)> {
    let p = skiff_image::platform::Platform::host();
    let plat = match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
        _ => format!("{}/{}", p.os, p.architecture),
    };
    let variant = p.variant.clone().unwrap_or_default();
    let mut v = Vec::new();
    for pre in ["TARGET", "BUILD"] {
        v.push((format!("{pre}PLATFORM"), plat.clone()));
        v.push((format!("{pre}OS"), p.os.clone()));
        v.push((format!("{pre}ARCH"), p.architecture.clone()));
        v.push((format!("{pre}VARIANT"), variant.clone()));
    }
    v
}

impl<'a> Builder<'a> {
    fn err(&self, i: &Instruction, msg: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.df.file.clone(),
            line: i.line,
            text: self.df.lines.get(i.line - 1).cloned().unwrap_or_default(),
            msg: msg.into(),
        }
    }

    /// Splits instructions into global ARGs and stages; resolves the global ARGs.
    fn split(&mut self) -> Result<(), BuildError> {
        let ins = self.df.instructions.clone();
        let mut meta = platform_args();
        for i in ins {
            match &i.cmd {
                Command::From { image, name, .. } => self.stages.push(StageDef {
                    name: name.clone(),
                    base: image.clone(),
                    from: i.clone(),
                    instrs: Vec::new(),
                }),
                Command::Arg(kv) if self.stages.is_empty() => {
                    for (k, d) in kv {
                        let val = match self.o.build_args.get(k) {
                            Some(v) => {
                                self.used_args.insert(k.clone());
                                Some(v.clone())
                            }
                            None => match d {
                                Some(d) => Some(self.expand_with(&i, d, &meta)?),
                                None => None,
                            },
                        };
                        meta.retain(|(n, _)| n != k);
                        if let Some(v) = val {
                            meta.push((k.clone(), v));
                        }
                    }
                }
                _ if self.stages.is_empty() => {
                    return Err(self.err(&i, "no build stage in current context"));
                }
                _ => {
                    if let Some(s) = self.stages.last_mut() {
                        s.instrs.push(i)
                    }
                }
            }
        }
        if self.stages.is_empty() {
            return Err(BuildError::Other(format!(
                "{}: the Dockerfile has no FROM instruction",
                self.df.file
            )));
        }
        self.meta = meta;
        Ok(())
    }

    fn expand_with(
        &self,
        i: &Instruction,
        w: &str,
        vars: &[(String, String)],
    ) -> Result<String, BuildError> {
        let env = |k: &str| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        Lexer {
            escape: self.df.escape,
            env: &env,
        }
        .word(w)
        .map_err(|e| self.err(i, e.0))
    }

    /// Variables visible to expansion in a stage: ENV over ARG.
    fn vars(&self, st: &State, cx: &Ctx) -> Vec<(String, String)> {
        let mut v = cx.args.clone();
        for e in st.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.push((k.to_string(), val.to_string()));
            }
        }
        v
    }

    fn ex(&self, i: &Instruction, w: &str, st: &State, cx: &Ctx) -> Result<String, BuildError> {
        self.expand_with(i, w, &self.vars(st, cx))
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(n.as_str()))
        {
            return Some(i);
        }
        n.parse::<usize>().ok().filter(|i| *i < self.stages.len())
    }

    fn stage_label(&self, idx: usize) -> String {
        self.stages[idx]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{idx}"))
    }

    /// The stages `idx` needs first: its FROM stage and those named by `COPY --from` and
    /// `RUN --mount from=`.
    fn deps_of(&self, idx: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self.stages[idx]
            .instrs
            .iter()
            .filter_map(|i| match &i.cmd {
                Command::Copy(c) => c.from.clone(),
                Command::Run { mounts, .. } => mounts.iter().find_map(|m| {
                    m.split(',')
                        .find_map(|kv| kv.strip_prefix("from=").map(String::from))
                }),
                _ => None,
            })
            .filter(|f| !self.o.contexts.contains_key(f))
            .filter_map(|f| self.stage_index(&f))
            .filter(|d| *d < idx)
            .collect();
        let from = &self.stages[idx].from;
        if let Ok(base) = self.expand_with(from, &self.stages[idx].base.clone(), &self.meta) {
            if !self.o.contexts.contains_key(&base) {
                if let Some(b) = self
                    .stage_index(&base)
                    .filter(|b| *b < idx && self.stages[*b].name.is_some())
                {
                    v.push(b);
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A builder for another thread: the same plan and finished stages, its own database
    /// connection.
    fn fork(&self) -> Result<Builder<'a>, BuildError> {
        Ok(Builder {
            store: self.store,
            o: self.o,
            df: self.df.clone(),
            stages: self.stages.clone(),
            meta: self.meta.clone(),
            done: self.done.clone(),
            cache: Cache::open(&self.o.root)?,
            used_args: HashSet::new(),
            no_cache_now: false,
            ctx_index: self.ctx_index.clone(),
            abort: self.abort.clone(),
        })
    }

    /// Builds the stages the target needs, independent ones at the same time (each wave: every
    /// needed stage whose own needs are done), leaving the target itself to the caller.
    fn parallel_deps(&mut self, target: usize, p: &SharedProgress<'_>) -> Result<(), BuildError> {
        let mut needed = HashSet::new();
        let mut todo = vec![target];
        while let Some(x) = todo.pop() {
            for d in self.deps_of(x) {
                if needed.insert(d) {
                    todo.push(d);
                }
            }
        }
        loop {
            let mut wave: Vec<usize> = needed
                .iter()
                .copied()
                .filter(|s| !self.done.contains_key(s))
                .filter(|s| self.deps_of(*s).iter().all(|d| self.done.contains_key(d)))
                .collect();
            if wave.is_empty() {
                return Ok(());
            }
            wave.sort_unstable();
            if wave.len() == 1 {
                let mut pp = p;
                self.stage(wave[0], &mut pp, &mut Vec::new())?;
                continue;
            }
            let mut forks = Vec::new();
            for &s in &wave {
                forks.push((s, self.fork()?));
            }
            let results: Vec<Result<StageDone, BuildError>> = std::thread::scope(|sc| {
                let hs: Vec<_> = forks
                    .into_iter()
                    .map(|(s, mut b)| {
                        sc.spawn(move || {
                            let mut pp = p;
                            let r = b.stage(s, &mut pp, &mut Vec::new());
                            if r.is_err() {
                                b.abort.store(true, std::sync::atomic::Ordering::SeqCst);
                            }
                            r.map(|st| (s, st, b.used_args))
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BuildError::Other("a stage's thread panicked".into()))
                        })
                    })
                    .collect()
            });
            let mut first_err = None;
            for r in results {
                match r {
                    Ok((s, st, used)) => {
                        self.done.insert(s, st);
                        self.used_args.extend(used);
                    }
                    // The stage that failed first is the one to report, not those cancelled.
                    Err(e) => {
                        let cancelled = |e: &BuildError| matches!(e, BuildError::Other(m) if m.starts_with("cancelled:"));
                        match &first_err {
                            None => first_err = Some(e),
                            Some(f) if cancelled(f) && !cancelled(&e) => first_err = Some(e),
                            Some(_) => {}
                        }
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
    }

    /// Builds stage `idx` (and what it needs), memoized.
    fn stage(
        &mut self,
        idx: usize,
        p: &mut dyn Progress,
        chain: &mut Vec<usize>,
    ) -> Result<State, BuildError> {
        if let Some(s) = self.done.get(&idx) {
            return Ok(s.clone());
        }
        if chain.contains(&idx) {
            return Err(BuildError::Other(format!(
                "circular dependency detected on stage: {}",
                self.stage_label(idx)
            )));
        }
        chain.push(idx);
        let from = self.stages[idx].from.clone();
        let base = self.expand_with(&from, &self.stages[idx].base.clone(), &self.meta.clone())?;
        if let Command::From {
            platform: Some(pl), ..
        } = &from.cmd
        {
            let pl = self.expand_with(&from, pl, &self.meta.clone())?;
            let host = skiff_image::platform::Platform::host();
            match skiff_image::platform::Platform::parse(&pl) {
                Ok(want) if want.matches(&host) || host.matches(&want) => {}
                _ => {
                    return Err(self.err(
                        &from,
                        format!(
                            "--platform={pl}: only the host platform ({}/{}) can be built here",
                            host.os, host.architecture
                        ),
                    ))
                }
            }
        }
        // Stages named by COPY --from are built first.
        let deps: Vec<usize> = self.stages[idx]
            .instrs
            .iter()
            .filter_map(|i| match &i.cmd {
                Command::Copy(c) => c.from.clone(),
                Command::Run { mounts, .. } => mounts.iter().find_map(|m| {
                    m.split(',')
                        .find_map(|kv| kv.strip_prefix("from=").map(String::from))
                }),
                _ => None,
            })
            .filter_map(|f| self.stage_index(&f))
            .filter(|d| *d < idx)
            .collect();
        for d in deps {
            self.stage(d, p, chain)?;
        }
        let total = self.stages[idx].instrs.len() + 1;
        let label = self.stage_label(idx);
        let from_idx = self
            .stage_index(&base)
            .filter(|i| *i < idx && self.stages[*i].name.is_some());
        let v = p.start(&format!("[{label} 1/{total}] FROM {base}"));
        let mut st = match (self.o.contexts.get(&base), from_idx) {
            (Some(NamedContext::Image(r)), _) => {
                let rec = (self.o.resolve)(self.store, r)
                    .map_err(|e| self.err(&from, format!("--build-context {base}: {e}")))?;
                self.image_state(&rec)?
            }
            (Some(NamedContext::Dir(_)), _) => {
                return Err(self.err(
                    &from,
                    format!("FROM {base}: a directory build context cannot be a base image"),
                ))
            }
            (None, Some(i)) => self.stage(i, p, chain)?,
            (None, None) => self.base_state(&from, &base)?,
        };
        st.cmd_set = false;
        p.done(v);
        let mut cx = Ctx {
            args: Vec::new(),
            declared: HashSet::new(),
        };
        // Triggers of the base image run first.
        let mut instrs = self.stages[idx].instrs.clone();
        if let Some(trig) = st.img["config"]["OnBuild"].as_array().cloned() {
            let mut pre = Vec::new();
            for t in trig.iter().filter_map(Value::as_str) {
                let d = parse::parse("ONBUILD trigger", t).map_err(BuildError::Parse)?;
                for mut ins in d.instructions {
                    ins.line = from.line;
                    pre.push(ins);
                }
            }
            st.cfg().remove("OnBuild");
            pre.extend(instrs);
            instrs = pre;
        }
        for (n, ins) in instrs.iter().enumerate() {
            let name = format!("[{label} {}/{total}] {}", n + 2, ins.original);
            self.no_cache_now = self
                .o
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&label));
            self.step(&mut st, &mut cx, ins, &name, p)?;
        }
        chain.pop();
        self.done.insert(idx, st.clone());
        Ok(st)
    }

    fn base_state(&self, from: &Instruction, base: &str) -> Result<State, BuildError> {
        if base.eq_ignore_ascii_case("scratch") {
            let host = skiff_image::platform::Platform::host();
            let mut img = json!({
                "architecture": host.architecture,
                "os": host.os,
                "config": {"Env": [DEFAULT_PATH]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            });
            if let Some(v) = &host.variant {
                img["variant"] = json!(v);
            }
            return Ok(State {
                key: sha(&["scratch"]),
                img,
                layers: Vec::new(),
                cmd_set: false,
            });
        }
        let rec = (self.o.resolve)(self.store, base)
            .map_err(|e| self.err(from, format!("{base}: {e}")))?;
        self.image_state(&rec)
    }

    fn image_state(&self, rec: &ImageRecord) -> Result<State, BuildError> {
        let (m, _) = self.store.manifest(&rec.manifest_digest)?;
        let cfg = self.store.read_blob(&rec.id)?;
        let mut img: Value = serde_json::from_slice(&cfg)
            .map_err(|e| BuildError::Other(format!("image config {}: {e}", rec.id)))?;
        if let Some(o) = img.as_object_mut() {
            o.remove("container");
            o.remove("container_config");
            o.remove("docker_version");
        }
        if img["config"]["Env"].as_array().is_none_or(|a| a.is_empty()) {
            img["config"]["Env"] = json!([DEFAULT_PATH]);
        }
        Ok(State {
            key: sha(&["image", rec.id.as_str()]),
            img,
            layers: m
                .layers
                .iter()
                .map(|l| {
                    let mut d = l.clone();
                    d.media_type = layer_media(&l.media_type);
                    d
                })
                .collect(),
            cmd_set: false,
        })
    }

    fn form_args(&self, st: &State, f: &Form) -> Vec<String> {
        match f {
            Form::Exec(v) => v.clone(),
            Form::Shell(s) => {
                let mut v = st.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// A metadata step: new key, history entry without a layer.
    fn meta_step(&self, st: &mut State, created_by: &str) {
        st.key = sha(&[&st.key, created_by]);
        st.history(created_by, true);
    }

    fn step(
        &mut self,
        st: &mut State,
        cx: &mut Ctx,
        i: &Instruction,
        name: &str,
        p: &mut dyn Progress,
    ) -> Result<(), BuildError> {
        if crate::run::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            return Err(BuildError::Interrupted);
        }
        if self.abort.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BuildError::Other(
                "cancelled: a stage built alongside failed".into(),
            ));
        }
        match &i.cmd {
            Command::From { .. } => unreachable!("FROM splits stages"),
            Command::Env(kv) => {
                let mut pairs = Vec::new();
                for (k, v) in kv {
                    pairs.push((self.ex(i, k, st, cx)?, self.ex(i, v, st, cx)?));
                }
                let mut env = st.env();
                for (k, v) in &pairs {
                    env.retain(|e| e.split_once('=').map(|x| x.0).unwrap_or(e) != k);
                    env.push(format!("{k}={v}"));
                }
                st.cfg().insert("Env".into(), json!(env));
                let desc: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.meta_step(st, &format!("ENV {}", desc.join(" ")));
            }
            Command::Label(kv) => {
                let mut pairs = Vec::new();
                for (k, v) in kv {
                    pairs.push((self.ex(i, k, st, cx)?, self.ex(i, v, st, cx)?));
                }
                let cfg = st.cfg();
                let mut labels = cfg
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in &pairs {
                    labels.insert(k.clone(), json!(v));
                }
                cfg.insert("Labels".into(), Value::Object(labels));
                let desc: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.meta_step(st, &format!("LABEL {}", desc.join(" ")));
            }
            Command::Arg(kv) => {
                for (k, d) in kv {
                    let val = if let Some(v) = self.o.build_args.get(k) {
                        self.used_args.insert(k.clone());
                        Some(v.clone())
                    } else if let Some(d) = d {
                        Some(self.ex(i, d, st, cx)?)
                    } else {
                        self.meta
                            .iter()
                            .rev()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                    };
                    cx.declared.insert(k.clone());
                    cx.args.retain(|(n, _)| n != k);
                    if let Some(v) = &val {
                        cx.args.push((k.clone(), v.clone()));
                    }
                    st.key = sha(&[&st.key, "ARG", k, val.as_deref().unwrap_or("\0unset")]);
                }
            }
            Command::Workdir(w) => {
                let w = self.ex(i, w, st, cx)?;
                let cur = st.str_field("WorkingDir");
                let joined = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if cur.is_empty() { "/" } else { &cur })
                };
                let cleaned = crate::ignore::clean(&joined);
                st.cfg().insert("WorkingDir".into(), json!(cleaned));
                let rel = cleaned.trim_start_matches('/').to_string();
                if rel.is_empty() || st.path_exists(self.store, &rel)? {
                    self.meta_step(st, &format!("WORKDIR {cleaned}"));
                } else {
                    // The directory is made as a layer of its own, as BuildKit does.
                    let created_by = format!("WORKDIR {cleaned}");
                    let key = sha(&[&st.key, &created_by]);
                    self.layer_step(st, key, &created_by, name, p, &mut |b, m, _tmp, _v, _p| {
                        let root = sys::open_dir(&m.root)
                            .map_err(|e| BuildError::Other(format!("open the step's root: {e}")))?;
                        copy::mkdir_all(root.as_fd(), &rel, (0, 0))
                            .map_err(|e| b.err(i, format!("WORKDIR {cleaned}: {e}")))?;
                        Ok(())
                    })?;
                }
            }
            Command::User(u) => {
                let u = self.ex(i, u, st, cx)?;
                st.cfg().insert("User".into(), json!(u));
                self.meta_step(st, &format!("USER {u}"));
            }
            Command::StopSignal(s) => {
                let s = self.ex(i, s, st, cx)?;
                st.cfg().insert("StopSignal".into(), json!(s));
                self.meta_step(st, &format!("STOPSIGNAL {s}"));
            }
            Command::Expose(ports) => {
                let mut set = st.img["config"]["ExposedPorts"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut added = Vec::new();
                for port in ports {
                    let port = self.ex(i, port, st, cx)?;
                    let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = |x: &str| x.parse::<u16>().is_ok();
                    let valid = match num.split_once('-') {
                        Some((a, b)) => ok(a) && ok(b),
                        None => ok(num),
                    };
                    if !valid || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(self.err(i, format!("invalid containerPort: {port}")));
                    }
                    let key = format!("{num}/{proto}");
                    set.insert(key.clone(), json!({}));
                    added.push(format!("{key}:{{}}"));
                }
                st.cfg().insert("ExposedPorts".into(), Value::Object(set));
                self.meta_step(st, &format!("EXPOSE map[{}]", added.join(" ")));
            }
            Command::Volume(vols) => {
                let mut set = st.img["config"]["Volumes"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut ex = Vec::new();
                for v in vols {
                    let v = self.ex(i, v, st, cx)?;
                    if v.trim().is_empty() {
                        return Err(self.err(i, "VOLUME specified can not be an empty string"));
                    }
                    set.insert(v.clone(), json!({}));
                    ex.push(v);
                }
                st.cfg().insert("Volumes".into(), Value::Object(set));
                self.meta_step(
                    st,
                    &format!("VOLUME {}", serde_json::to_string(&ex).unwrap_or_default()),
                );
            }
            Command::Cmd(f) => {
                let args = self.form_args(st, f);
                st.cfg().insert("Cmd".into(), json!(args));
                st.cmd_set = true;
                self.meta_step(
                    st,
                    &format!("CMD {}", serde_json::to_string(&args).unwrap_or_default()),
                );
            }
            Command::Entrypoint(f) => {
                let args = self.form_args(st, f);
                st.cfg().insert("Entrypoint".into(), json!(args));
                if !st.cmd_set {
                    st.cfg().insert("Cmd".into(), Value::Null);
                }
                self.meta_step(
                    st,
                    &format!(
                        "ENTRYPOINT {}",
                        serde_json::to_string(&args).unwrap_or_default()
                    ),
                );
            }
            Command::Shell(v) => {
                st.cfg().insert("Shell".into(), json!(v));
                self.meta_step(
                    st,
                    &format!("SHELL {}", serde_json::to_string(v).unwrap_or_default()),
                );
            }
            Command::Onbuild(t) => {
                let mut list = st.img["config"]["OnBuild"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(t));
                st.cfg().insert("OnBuild".into(), Value::Array(list));
                self.meta_step(st, &format!("ONBUILD {t}"));
            }
            Command::Maintainer(m) => {
                let m = self.ex(i, m, st, cx)?;
                st.img["author"] = json!(m);
                self.meta_step(st, &format!("MAINTAINER {m}"));
            }
            Command::Healthcheck(h) => {
                let dur = |what: &str, v: &Option<String>| -> Result<i64, BuildError> {
                    match v {
                        None => Ok(0),
                        Some(s) => {
                            let ns = skiff_image::time::parse_go_duration_ns(s)
                                .map_err(|e| self.err(i, format!("--{what}: {e}")))?;
                            if ns != 0 && ns < 1_000_000 {
                                return Err(self.err(
                                    i,
                                    format!("Interval \"{what}\" cannot be less than 1ms"),
                                ));
                            }
                            Ok(ns)
                        }
                    }
                };
                let mut hc = json!({"Test": h.test});
                for (k, f, v) in [
                    ("Interval", "interval", &h.interval),
                    ("Timeout", "timeout", &h.timeout),
                    ("StartPeriod", "start-period", &h.start_period),
                    ("StartInterval", "start-interval", &h.start_interval),
                ] {
                    let ns = dur(f, v)?;
                    if ns != 0 {
                        hc[k] = json!(ns);
                    }
                }
                if let Some(r) = &h.retries {
                    let n: i64 = r
                        .parse()
                        .map_err(|_| self.err(i, format!("--retries: invalid value {r:?}")))?;
                    if n < 0 {
                        return Err(self.err(i, "--retries cannot be negative"));
                    }
                    if n != 0 {
                        hc["Retries"] = json!(n);
                    }
                }
                st.cfg().insert("Healthcheck".into(), hc);
                self.meta_step(st, &format!("HEALTHCHECK {}", h.test.join(" ")));
            }
            Command::Run {
                cmd,
                mounts,
                network,
                security,
            } => {
                self.run_step(
                    st,
                    cx,
                    i,
                    cmd,
                    mounts,
                    network.as_deref(),
                    security.as_deref(),
                    name,
                    p,
                )?;
            }
            Command::Copy(c) => self.copy_step(st, cx, i, c, false, name, p)?,
            Command::Add(c) => self.copy_step(st, cx, i, c, true, name, p)?,
        }
        Ok(())
    }

    /// A layer step: cache lookup by `key`, or `work` in a mounted overlay of the state, whose
    /// upper directory becomes the new layer.
    fn layer_step(
        &mut self,
        st: &mut State,
        key: String,
        created_by: &str,
        name: &str,
        p: &mut dyn Progress,
        work: &mut StepWork<'_, 'a>,
    ) -> Result<(), BuildError> {
        let v = p.start(name);
        if !self.o.no_cache && !self.no_cache_now {
            if let Some(m) = self.cache.get(&key)? {
                if let Some(mut s) = State::load(self.store, &key, &m) {
                    s.cmd_set = st.cmd_set;
                    *st = s;
                    p.cached(v);
                    return Ok(());
                }
            }
        }
        let lowers = st.lowers(self.store)?;
        let tmp = self.store.temp_dir("build")?;
        let r = (|| -> Result<(Digest, u64, Digest), BuildError> {
            let mut m = Mounted::new(&lowers, &tmp)?;
            work(self, &m, &tmp, v, p)?;
            m.unmount()?;
            Ok(skiff_engine::commit::write_layer(
                self.store,
                &m.upper,
                "the build step",
                &[],
            )?)
        })();
        let _ = sys::remove_all(&tmp);
        let r = match r {
            Err(_) if crate::run::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) != 0 => {
                Err(BuildError::Interrupted)
            }
            r => r,
        };
        let (digest, size, diff_id) = match r {
            Ok(x) => x,
            Err(e) => {
                match &e {
                    BuildError::RunFailed { msg, .. } => p.error(v, msg),
                    e => p.error(v, &e.to_string()),
                }
                return Err(e);
            }
        };
        st.layers
            .push(Descriptor::new(spec::OCI_LAYER_GZIP, digest, size));
        let mut ids = st.img["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ids.push(json!(diff_id.as_str()));
        st.img["rootfs"] = json!({"type": "layers", "diff_ids": ids});
        st.history(created_by, false);
        st.key = key.clone();
        let (mdesc, _) = st.persist(self.store)?;
        self.cache.put(&key, &mdesc.digest, created_by, size)?;
        p.done(v);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        st: &mut State,
        cx: &Ctx,
        i: &Instruction,
        cmd: &Form,
        mounts: &[String],
        network: Option<&str>,
        security: Option<&str>,
        name: &str,
        p: &mut dyn Progress,
    ) -> Result<(), BuildError> {
        // --mount values, expanded, parsed, and what of them enters the cache key.
        let mut reqs = Vec::new();
        let mut mount_key = String::new();
        for m in mounts {
            let m = self.ex(i, m, st, cx)?;
            let r = crate::mounts::parse(&m).map_err(|e| self.err(i, e))?;
            mount_key.push_str(&m);
            mount_key.push('\0');
            if let MountReq::Bind { source, from, .. } = &r {
                // The bound content is part of the key (a stage's by its key).
                match from {
                    None => {
                        let sroot = SrcRoot {
                            fd: sys::open_dir(&self.o.context).map_err(|e| {
                                self.err(i, format!("open {}: {e}", self.o.context.display()))
                            })?,
                            ignore: Some(&self.o.ignore),
                            keep_owner: false,
                            index: Some(self.ctx_index.clone()),
                        };
                        let mut h = sha2::Sha256::new();
                        let found = sroot
                            .glob(if source.is_empty() { "." } else { source })
                            .map_err(|e| self.err(i, format!("--mount source {source}: {e}")))?;
                        if found.is_empty() {
                            return Err(self.err(
                                i,
                                format!(
                                    "--mount: source {source:?} not found in the build context"
                                ),
                            ));
                        }
                        for f in &found {
                            sroot.digest(f, &mut h).map_err(|e| {
                                self.err(i, format!("--mount source {source}: {e}"))
                            })?;
                        }
                        mount_key.push_str(&skiff_image::digest::to_hex(&h.finalize()));
                    }
                    Some(f) => match self.stage_index(f).and_then(|x| self.done.get(&x)) {
                        Some(s) => mount_key.push_str(&s.key),
                        None => {
                            let rec = (self.o.resolve)(self.store, f)
                                .map_err(|e| self.err(i, format!("--mount from={f}: {e}")))?;
                            mount_key.push_str(rec.id.as_str());
                        }
                    },
                }
            }
            if let MountReq::Secret { id, required, .. } = &r {
                if *required && !self.o.secrets.contains_key(id) {
                    return Err(self.err(
                        i,
                        format!("secret {id}: not provided (--secret id={id},src=…)"),
                    ));
                }
            }
            reqs.push(r);
        }
        if let Some(s) = security {
            if s != "sandbox" {
                return Err(self.err(i, format!("RUN --security={s}: only sandbox is supported")));
            }
        }
        let host_network = match network.unwrap_or(if self.o.host_network {
            "host"
        } else {
            "default"
        }) {
            "host" => true,
            "none" | "default" => false,
            n => {
                return Err(self.err(
                    i,
                    format!("RUN --network={n}: must be default, none or host"),
                ))
            }
        };
        // The command, with heredocs.
        let mut files = Vec::new();
        let args = match cmd {
            Form::Shell(s)
                if i.heredocs.len() == 1
                    && s.trim().starts_with("<<")
                    && s.split_whitespace().count() == 1 =>
            {
                let h = &i.heredocs[0];
                if h.content.starts_with("#!") {
                    files.push(h.clone());
                    vec![format!("/dev/pipes/{}", h.name)]
                } else {
                    let mut v = st.shell();
                    v.push(h.content.clone());
                    v
                }
            }
            Form::Shell(s) if !i.heredocs.is_empty() => {
                let mut script = format!("{s}\n");
                for h in &i.heredocs {
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                    script.push('\n');
                }
                let mut v = st.shell();
                v.push(script);
                v
            }
            f => self.form_args(st, f),
        };
        // Build args the command sees (ENV wins), and proxies given with --build-arg.
        let env_now = st.env();
        let env_keys: HashSet<String> = env_now
            .iter()
            .map(|e| e.split_once('=').map(|x| x.0).unwrap_or(e).to_string())
            .collect();
        let mut arg_env: Vec<String> = cx
            .args
            .iter()
            .filter(|(k, _)| !env_keys.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for k in PROXY_ARGS {
            if let Some(v) = self.o.build_args.get(*k) {
                if !cx.declared.contains(*k) {
                    arg_env.push(format!("{k}={v}"));
                }
            }
        }
        let mut env = env_now.clone();
        env.extend(arg_env.iter().cloned());
        let shown: Vec<&String> = arg_env
            .iter()
            .filter(|e| !PROXY_ARGS.iter().any(|p| e.starts_with(&format!("{p}="))))
            .collect();
        let created_by = if shown.is_empty() {
            format!("RUN {} # buildkit", args.join(" "))
        } else {
            let s: Vec<&str> = shown.iter().map(|s| s.as_str()).collect();
            format!(
                "RUN |{} {} {} # buildkit",
                s.len(),
                s.join(" "),
                args.join(" ")
            )
        };
        let heredoc_bodies: Vec<&str> = i.heredocs.iter().map(|h| h.content.as_str()).collect();
        let key = sha(&[
            &st.key,
            "RUN",
            &serde_json::to_string(&args).unwrap_or_default(),
            &serde_json::to_string(&arg_env).unwrap_or_default(),
            &st.str_field("User"),
            &st.str_field("WorkingDir"),
            &serde_json::to_string(&env_now).unwrap_or_default(),
            if host_network { "host" } else { "none" },
            &heredoc_bodies.join("\0"),
            &mount_key,
        ]);
        let spec0 = RunSpec {
            args,
            env,
            cwd: {
                let w = st.str_field("WorkingDir");
                if w.is_empty() {
                    "/".into()
                } else {
                    w
                }
            },
            user: st.str_field("User"),
            host_network,
            mounts: Vec::new(),
        };
        let runroot = self.o.runroot.clone();
        let step_name = name.to_string();
        self.layer_step(st, key, &created_by, name, p, &mut |b, m, tmp, v, p| {
            let mut spec = spec0.clone();
            for h in &files {
                let f = tmp.join(format!("heredoc-{}", h.name));
                skiff_image::perms::write_file(&f, h.content.as_bytes(), 0o755)
                    .map_err(|e| BuildError::Other(format!("write heredoc {}: {e}", h.name)))?;
                spec.mounts.push(crate::mounts::bind(
                    &f,
                    &format!("/dev/pipes/{}", h.name),
                    true,
                )?);
            }
            // Held until the step's container is gone: overlays and cache locks.
            let mut guards = MountGuards::default();
            for (n, r) in reqs.iter().enumerate() {
                let mnt = b.prepare_mount(i, r, tmp, n, &mut guards)?;
                if let Some(mnt) = mnt {
                    spec.mounts.push(mnt);
                }
            }
            let id = format!("build-{}", skiff_engine::names::new_id());
            let mut output = Vec::new();
            let code = run::run(&runroot, m, tmp, &id[..24.min(id.len())], &spec, &mut |b| {
                output.extend_from_slice(b);
                p.log(v, b);
            })?;
            if code != 0 {
                let shown = spec.args.join(" ");
                return Err(BuildError::RunFailed {
                    step: step_name.clone(),
                    msg: format!(
                        "process \"{shown}\" did not complete successfully: exit code: {code}"
                    ),
                    output: String::from_utf8_lossy(&output).into_owned(),
                });
            }
            Ok(())
        })
    }

    /// The OCI mount of one `RUN --mount` (None: an optional secret that was not given).
    fn prepare_mount(
        &self,
        i: &Instruction,
        r: &MountReq,
        tmp: &Path,
        n: usize,
        g: &mut MountGuards,
    ) -> Result<Option<Value>, BuildError> {
        let other =
            |what: &str, e: &dyn std::fmt::Display| self.err(i, format!("--mount: {what}: {e}"));
        Ok(Some(match r {
            MountReq::Tmpfs { target, size } => {
                let mut opts = vec!["nosuid".to_string(), "nodev".into()];
                if let Some(sz) = size {
                    opts.push(format!("size={sz}"));
                }
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
            MountReq::Cache {
                target,
                id,
                sharing,
                ro,
                mode,
                uid,
                gid,
            } => {
                let base = self.o.root.join("builder").join("cache");
                skiff_image::perms::mkdir_all(&base, skiff_image::perms::PRIVATE_DIR)
                    .map_err(|e| other("cache directory", &e))?;
                let name = sha(&["cache", id]);
                // `shared`: a shared lock, many users at once; `locked`: an exclusive lock, the
                // next user waits. `private`: the first instance of the id that nobody uses
                // (`<name>`, `<name>-1`, …; a new, empty one when all are in use), so a
                // concurrent build gets its own directory instead of waiting, as BuildKit does.
                let (dir_name, lock) = if sharing == "private" {
                    let mut k = 0usize;
                    loop {
                        let n = if k == 0 {
                            name.clone()
                        } else {
                            format!("{name}-{k}")
                        };
                        let lock = skiff_image::perms::lock_file(&base.join(format!("{n}.lock")))
                            .map_err(|e| other("cache lock", &e))?;
                        if sys::flock(lock.as_fd(), true, true)
                            .map_err(|e| other("cache lock", &e))?
                        {
                            break (n, lock);
                        }
                        k += 1;
                    }
                } else {
                    let lock = skiff_image::perms::lock_file(&base.join(format!("{name}.lock")))
                        .map_err(|e| other("cache lock", &e))?;
                    // Users hold the directory's lock, so `builder prune` waits for them.
                    sys::flock(lock.as_fd(), sharing == "locked", false)
                        .map_err(|e| other("cache lock", &e))?;
                    (name, lock)
                };
                let dir = base.join(&dir_name);
                // Making it is serialized by another lock (two stages may ask for it at once).
                let making = skiff_image::perms::lock_file(&base.join(".make.lock"))
                    .map_err(|e| other("cache lock", &e))?;
                sys::flock(making.as_fd(), true, false).map_err(|e| other("cache lock", &e))?;
                if !dir.exists() {
                    let t = base.join(format!(".new-{dir_name}"));
                    let _ = sys::remove_all(&t);
                    std::fs::create_dir(&t).map_err(|e| other("cache directory", &e))?;
                    let f = std::fs::File::open(&t).map_err(|e| other("cache directory", &e))?;
                    sys::lchownat(f.as_fd(), OsStr::new(""), *uid, *gid)
                        .map_err(|e| other("cache directory", &e))?;
                    sys::fchmod(f.as_fd(), *mode).map_err(|e| other("cache directory", &e))?;
                    std::fs::rename(&t, &dir).map_err(|e| other("cache directory", &e))?;
                }
                drop(making);
                g.locks.push(lock);
                crate::mounts::bind(&dir, target, *ro)?
            }
            MountReq::Bind {
                target,
                source,
                from,
                rw,
            } => {
                let root: PathBuf = match from {
                    None => self.o.context.clone(),
                    Some(f) => {
                        let s = match self.stage_index(f).and_then(|x| self.done.get(&x)) {
                            Some(s) => s.clone(),
                            None => {
                                let rec = (self.o.resolve)(self.store, f)
                                    .map_err(|e| self.err(i, format!("--mount from={f}: {e}")))?;
                                self.image_state(&rec)?
                            }
                        };
                        let lowers = s.lowers(self.store)?;
                        let d = tmp.join(format!("from-{n}"));
                        skiff_image::perms::mkdir(&d, skiff_image::perms::PRIVATE_DIR)
                            .map_err(|e| other("mount", &e))?;
                        let m = Mounted::new(&lowers, &d)?;
                        let r = m.root.clone();
                        g.overlays.push(m);
                        r
                    }
                };
                // The source resolved inside its root, as a host path.
                let rootfd = sys::open_dir(&root).map_err(|e| other("source", &e))?;
                let fd = sys::open_in_root(
                    rootfd.as_fd(),
                    Path::new(source.trim_start_matches('/')),
                    libc::O_PATH,
                    0,
                )
                .map_err(|e| self.err(i, format!("--mount: source {source:?}: {e}")))?;
                let real = std::fs::read_link(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&fd)
                ))
                .map_err(|e| other("source", &e))?;
                let src = if *rw {
                    // Writes go to a throwaway upper directory.
                    let d = tmp.join(format!("rw-{n}"));
                    skiff_image::perms::mkdir(&d, skiff_image::perms::PRIVATE_DIR)
                        .map_err(|e| other("mount", &e))?;
                    if real.is_dir() {
                        let m = Mounted::new(std::slice::from_ref(&real), &d)?;
                        let r = m.root.clone();
                        g.overlays.push(m);
                        r
                    } else {
                        let f = d.join("file");
                        std::fs::copy(&real, &f).map_err(|e| other("source", &e))?;
                        f
                    }
                } else {
                    real
                };
                crate::mounts::bind(&src, target, !*rw)?
            }
            MountReq::Secret {
                id, target, mode, ..
            } => {
                let Some(sec) = self.o.secrets.get(id) else {
                    return Ok(None);
                };
                let data = match sec {
                    SecretSource::File(p) => std::fs::read(p).map_err(|e| {
                        self.err(i, format!("secret {id}: read {}: {e}", p.display()))
                    })?,
                    SecretSource::Value(v) => v.clone(),
                };
                let f = tmp.join(format!("secret-{n}"));
                skiff_image::perms::write_file(&f, &data, *mode)
                    .map_err(|e| other("secret", &e))?;
                crate::mounts::bind(&f, target, true)?
            }
        }))
    }

    /// The ids of `--chown` (names resolved in the destination root).
    fn chown_ids(
        &self,
        i: &Instruction,
        root: &Path,
        chown: &str,
    ) -> Result<(u32, u32), BuildError> {
        let (u, g) = match chown.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (chown, None),
        };
        let user = skiff_engine::spec::resolve_user(root, u)
            .map_err(|e| self.err(i, format!("--chown={chown}: {e}")))?;
        let gid = match g {
            None => {
                if u.parse::<u32>().is_ok() {
                    u.parse().unwrap_or(0)
                } else {
                    user.gid
                }
            }
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let r = skiff_engine::spec::resolve_user(root, &format!("0:{g}"))
                        .map_err(|e| self.err(i, format!("--chown={chown}: {e}")))?;
                    r.gid
                }
            },
        };
        Ok((user.uid, gid))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &mut self,
        st: &mut State,
        cx: &Ctx,
        i: &Instruction,
        c: &CopyArgs,
        add: bool,
        name: &str,
        p: &mut dyn Progress,
    ) -> Result<(), BuildError> {
        let kw = if add { "ADD" } else { "COPY" };
        let ex = |w: &str| self.ex(i, w, st, cx);
        let dest_raw = ex(&c.dest)?;
        let chown = c.chown.as_deref().map(ex).transpose()?;
        let chmod = match c.chmod.as_deref().map(ex).transpose()? {
            Some(m) => Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|x| *x <= 0o7777)
                    .ok_or_else(|| {
                        self.err(
                            i,
                            format!(
                                "invalid chmod parameter: {m} (only octal modes are supported)"
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        let from = c.from.as_deref().map(ex).transpose()?;
        let mut srcs = Vec::new();
        for s in &c.srcs {
            match s {
                Source::Path(pth) => {
                    let e = ex(pth)?;
                    if add && (e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(self.err(i, format!("ADD {e}: downloading from a URL is not supported by skiff build (no network access for builds here); download it into the context and COPY it")));
                    }
                    if add
                        && (e.starts_with("git@") || e.starts_with("git://") || e.ends_with(".git"))
                    {
                        return Err(self.err(i, format!("ADD {e}: git sources are not supported by skiff build; clone into the context and COPY it")));
                    }
                    srcs.push(Source::Path(e));
                }
                h => srcs.push(h.clone()),
            }
        }
        if add && c.keep_git_dir {
            return Err(self.err(
                i,
                "ADD --keep-git-dir: git sources are not supported by skiff build",
            ));
        }
        if c.checksum.is_some() {
            return Err(self.err(
                i,
                "ADD --checksum: only valid for URL sources, which skiff build does not fetch",
            ));
        }
        // The source tree: the context, another stage or an image.
        let mut src_state = None;
        let mut named_dir = None;
        if let Some(f) = &from {
            let idx = self.stage_index(f);
            let idx = match self.o.contexts.get(f) {
                Some(NamedContext::Dir(d)) => {
                    named_dir = Some(d.clone());
                    None
                }
                Some(NamedContext::Image(_)) => None,
                None => idx,
            };
            let s = match idx {
                Some(ix) => Some(self.done.get(&ix).cloned().ok_or_else(|| {
                    self.err(i, format!("--from={f}: stage not built before this one"))
                })?),
                None if named_dir.is_some() => None,
                None => {
                    let r = match self.o.contexts.get(f) {
                        Some(NamedContext::Image(r)) => r.clone(),
                        _ => f.clone(),
                    };
                    let rec = (self.o.resolve)(self.store, &r)
                        .map_err(|e| self.err(i, format!("--from={f}: {e}")))?;
                    Some(self.image_state(&rec)?)
                }
            };
            src_state = s;
        }
        let excludes = if c.excludes.is_empty() {
            None
        } else {
            let mut t = String::new();
            for e in &c.excludes {
                t.push_str(&ex(e)?);
                t.push('\n');
            }
            Some(Matcher::parse(&t).map_err(|e| self.err(i, e.to_string()))?)
        };
        // Where sources are read from, mounted for the step's duration.
        let src_tmp;
        let mut src_mount = None;
        let src_dir: PathBuf = match &src_state {
            None => named_dir.clone().unwrap_or_else(|| self.o.context.clone()),
            Some(s) => {
                let lowers = s.lowers(self.store)?;
                src_tmp = TempDir(self.store.temp_dir("build-src")?);
                let m = Mounted::new(&lowers, &src_tmp.0)?;
                let r = m.root.clone();
                src_mount = Some(m);
                r
            }
        };
        let ignore = if src_state.is_none() && named_dir.is_none() {
            Some(&self.o.ignore)
        } else {
            None
        };
        let sroot = SrcRoot {
            fd: sys::open_dir(&src_dir)
                .map_err(|e| self.err(i, format!("open {}: {e}", src_dir.display())))?,
            ignore,
            keep_owner: src_state.is_some(),
            index: (src_state.is_none() && named_dir.is_none()).then(|| self.ctx_index.clone()),
        };
        // Expand the sources and hash them.
        let mut hasher = sha2::Sha256::new();
        let mut found = Vec::new();
        for s in &srcs {
            match s {
                Source::Path(pth) => {
                    let f = sroot
                        .glob(pth)
                        .map_err(|e| self.err(i, format!("{pth}: {e}")))?;
                    if f.is_empty() {
                        let what = if src_state.is_some() {
                            ""
                        } else {
                            " in the build context"
                        };
                        return Err(self.err(
                            i,
                            format!("failed to compute cache key: \"{pth}\": not found{what}"),
                        ));
                    }
                    for x in f {
                        sroot
                            .digest(&x, &mut hasher)
                            .map_err(|e| self.err(i, format!("{}: {e}", x.rel)))?;
                        found.push((pth.clone(), x));
                    }
                }
                Source::Heredoc(n) => {
                    let h = &i.heredocs[*n];
                    hasher.update(h.name.as_bytes());
                    hasher.update(h.content.as_bytes());
                }
            }
        }
        let multi = found.len()
            + srcs
                .iter()
                .filter(|s| matches!(s, Source::Heredoc(_)))
                .count()
            > 1;
        let wd = st.str_field("WorkingDir");
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", if wd.is_empty() { "/" } else { &wd })
        };
        let dest_is_dir_syntax =
            dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        if multi && !dest_is_dir_syntax {
            return Err(self.err(i, format!("When using {kw} with more than one source file, the destination must be a directory and end with a /")));
        }
        let dest_rel = crate::ignore::clean(dest_abs.trim_start_matches('/'));
        let dest_rel = if dest_rel == "." {
            String::new()
        } else {
            dest_rel
        };
        // History as BuildKit writes it.
        let mut flags = String::new();
        if let Some(f) = &from {
            flags.push_str(&format!("--from={f} "));
        }
        if let Some(cw) = &chown {
            flags.push_str(&format!("--chown={cw} "));
        }
        if let Some(m) = &c.chmod {
            flags.push_str(&format!("--chmod={m} "));
        }
        let src_words: Vec<String> = srcs
            .iter()
            .map(|s| match s {
                Source::Path(p) => p.clone(),
                Source::Heredoc(n) => format!("<<{}", i.heredocs[*n].name),
            })
            .collect();
        let created_by = format!("{kw} {flags}{} {dest_raw} # buildkit", src_words.join(" "));
        let digest = skiff_image::digest::to_hex(&hasher.finalize());
        let key = sha(&[
            &st.key,
            kw,
            &created_by,
            &digest,
            &wd,
            if c.parents { "parents" } else { "" },
        ]);
        let vars = self.vars(st, cx);
        let escape = self.df.escape;
        let chown_s = chown.clone();
        let r = self.layer_step(st, key, &created_by, name, p, &mut |b, m, _tmp, _v, _p| {
            let owner = match &chown_s {
                Some(cw) => Some(b.chown_ids(i, &m.root, cw)?),
                None => None,
            };
            let root = sys::open_dir(&m.root)
                .map_err(|e| BuildError::Other(format!("open the step's root: {e}")))?;
            let dest_exists_dir = copy::is_dir(root.as_fd(), &dest_rel);
            let into_dir = dest_is_dir_syntax || dest_exists_dir;
            let wo = WriteOpts {
                chown: owner,
                chmod,
                excludes: excludes.clone(),
            };
            let io = |e: std::io::Error| b.err(i, format!("{kw} failed: {e}"));
            let own = owner.unwrap_or((0, 0));
            for s in &srcs {
                if let Source::Heredoc(n) = s {
                    let h = &i.heredocs[*n];
                    let content = if h.expand {
                        let env = |k: &str| {
                            vars.iter()
                                .rev()
                                .find(|(n, _)| n == k)
                                .map(|(_, v)| v.clone())
                        };
                        Lexer { escape, env: &env }
                            .heredoc(&h.content)
                            .map_err(|e| b.err(i, e.0))?
                    } else {
                        h.content.clone()
                    };
                    let (dir, fname) = if into_dir {
                        (dest_rel.clone(), h.name.clone())
                    } else {
                        let (d, f) = dest_rel.rsplit_once('/').unwrap_or(("", &dest_rel));
                        (d.to_string(), f.to_string())
                    };
                    let dfd = copy::mkdir_all(root.as_fd(), &dir, own).map_err(io)?;
                    copy::write_file(
                        dfd.as_fd(),
                        OsStr::new(&fname),
                        content.as_bytes(),
                        chmod.unwrap_or(0o644),
                        own,
                    )
                    .map_err(io)?;
                }
            }
            for (_, f) in &found {
                // ADD: a local tar archive is extracted into the destination directory.
                if add && !f.is_dir && is_archive(&src_dir, &f.rel) {
                    let dfd = copy::mkdir_all(root.as_fd(), &dest_rel, own).map_err(io)?;
                    let file =
                        sys::open_in_root(sroot.fd.as_fd(), Path::new(&f.rel), libc::O_RDONLY, 0)
                            .map_err(io)?;
                    let rd = add_decompress(std::fs::File::from(file)).map_err(io)?;
                    let dpath = PathBuf::from(format!(
                        "/proc/self/fd/{}",
                        std::os::fd::AsRawFd::as_raw_fd(&dfd)
                    ));
                    skiff_image::unpack::unpack_layer(rd, &dpath, &Default::default()).map_err(
                        |e| {
                            b.err(
                                i,
                                format!("ADD {}: corrupt or truncated archive: {e}", f.rel),
                            )
                        },
                    )?;
                    continue;
                }
                let base_name = f.rel.rsplit('/').next().unwrap_or(&f.rel).to_string();
                if c.parents {
                    // --parents: the source's path (after the non-glob prefix) is kept.
                    let keep = f.rel.clone();
                    let (pdir, leaf) = keep.rsplit_once('/').unwrap_or(("", &keep));
                    let target = if dest_rel.is_empty() {
                        pdir.to_string()
                    } else if pdir.is_empty() {
                        dest_rel.clone()
                    } else {
                        format!("{dest_rel}/{pdir}")
                    };
                    let dfd = copy::mkdir_all(root.as_fd(), &target, own).map_err(io)?;
                    sroot
                        .copy_into(f, dfd.as_fd(), OsStr::new(leaf), &wo)
                        .map_err(io)?;
                    continue;
                }
                if f.is_dir {
                    // A directory's contents go into the destination.
                    let dfd = copy::mkdir_all(root.as_fd(), &dest_rel, own).map_err(io)?;
                    sroot
                        .copy_into(f, dfd.as_fd(), OsStr::new(""), &wo)
                        .map_err(io)?;
                } else if into_dir {
                    let dfd = copy::mkdir_all(root.as_fd(), &dest_rel, own).map_err(io)?;
                    sroot
                        .copy_into(f, dfd.as_fd(), OsStr::new(&base_name), &wo)
                        .map_err(io)?;
                } else {
                    let (d, fname) = dest_rel.rsplit_once('/').unwrap_or(("", &dest_rel));
                    let dfd = copy::mkdir_all(root.as_fd(), d, own).map_err(io)?;
                    sroot
                        .copy_into(f, dfd.as_fd(), OsStr::new(fname), &wo)
                        .map_err(io)?;
                }
            }
            Ok(())
        });
        drop(sroot);
        drop(src_mount);
        r
    }
}

/// What a RUN step's mounts hold until its container is gone.
#[derive(Default)]
struct MountGuards {
    overlays: Vec<Mounted>,
    locks: Vec<std::fs::File>,
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = sys::remove_all(&self.0);
    }
}

/// A context file as ADD reads an archive, decompressed by its magic bytes as docker's
/// `DecompressStream` does: bzip2 and xz here, gzip and zstd as the image crate reads layers,
/// anything else as it is.
fn add_decompress(f: std::fs::File) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    use std::io::BufRead;
    let mut br = std::io::BufReader::new(f);
    let head = br.fill_buf()?;
    if head.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(br)));
    }
    if head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(Box::new(lzma_rust2::XzReader::new(br, true)));
    }
    skiff_image::compress::decompress(br)
}

/// Whether a context file is a tar archive (plain or compressed) that ADD extracts.
fn is_archive(ctx: &Path, rel: &str) -> bool {
    archive_head(ctx, rel).is_some()
}

fn archive_head(ctx: &Path, rel: &str) -> Option<()> {
    use std::io::Read;
    let d = sys::open_dir(ctx).ok()?;
    let f = sys::open_in_root(d.as_fd(), Path::new(rel), libc::O_RDONLY, 0).ok()?;
    let mut rd = add_decompress(std::fs::File::from(f)).ok()?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match rd.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    (n >= 262 && &head[257..262] == b"ustar").then_some(())
}
