//! `POST /build`: the legacy builder protocol (`DOCKER_BUILDKIT=0 docker build`, docker-compose
//! 1.x `build:`): the context as a (maybe compressed) tar body, the options as query parameters,
//! docker's JSON stream back (`{"stream": …}` lines, `{"aux": {"ID": …}}`, and on failure
//! `{"errorDetail": …, "error": …}`). The build itself is skiff-build's, as `skiff build` runs it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use serde_json::{json, Value};
use skiff_build::progress::Progress;
use skiff_build::{BuildError, BuildOptions};
use skiff_image::names::{self, familiar};
use skiff_image::store::{ImageRecord, Store};

use crate::http::{stream, ApiError, Ctx, R};

/// Progress as the legacy builder's `Step N/M : INSTRUCTION` stream.
struct Legacy {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    quiet: bool,
}

impl Legacy {
    fn send(&self, v: Value) {
        let _ = self.tx.blocking_send(Bytes::from(format!("{v}\r\n")));
    }
    fn stream(&self, s: &str) {
        if !self.quiet {
            self.send(json!({ "stream": s }));
        }
    }
}

impl Progress for Legacy {
    fn start(&mut self, name: &str) -> usize {
        // `[stage-0 2/3] RUN x` → `Step 2/3 : RUN x`; internal steps are not shown.
        if let Some(rest) = name.strip_prefix('[') {
            if let Some((label, instr)) = rest.split_once("] ") {
                if let Some((_, n)) = label.rsplit_once(' ') {
                    if label != "internal" && !label.starts_with("internal ") {
                        self.stream(&format!("Step {n} : {instr}\n"));
                    }
                }
            }
        }
        0
    }
    fn log(&mut self, _: usize, data: &[u8]) {
        self.stream(&String::from_utf8_lossy(data));
    }
    fn detail(&mut self, _: usize, _: &str) {}
    fn cached(&mut self, _: usize) {
        self.stream(" ---> Using cache\n");
    }
    fn done(&mut self, _: usize) {}
    fn error(&mut self, _: usize, _: &str) {}
    fn warn(&mut self, msg: &str) {
        if !msg.is_empty() {
            self.stream(&format!("[Warning] {msg}\n"));
        }
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = skiff_image::sys::remove_all(&self.0);
    }
}

/// The parameters of a build request, checked before the headers go out.
struct Params {
    tags: Vec<String>,
    dockerfile: String,
    build_args: BTreeMap<String, String>,
    labels: Vec<(String, String)>,
    target: Option<String>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    host_network: bool,
}

fn json_map(ctx: &Ctx, k: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match ctx.query.get(k).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(v) => {
            let m: BTreeMap<String, Option<String>> = serde_json::from_str(v)
                .map_err(|e| ApiError::bad(format!("{k}: invalid JSON object: {e}")))?;
            // A null build arg (`--build-arg A` with no A in the client's env) is left unset.
            Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
        }
    }
}

fn params(ctx: &Ctx) -> Result<Params, ApiError> {
    let q = &ctx.query;
    if let Some(r) = q.get("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad(format!(
            "remote {r}: remote build contexts are not supported by skiff"
        )));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = skiff_image::platform::Platform::host();
        let want = skiff_image::platform::Platform::parse(p)
            .map_err(|e| ApiError::bad(format!("platform: {e}")))?;
        if !want.matches(&host) {
            return Err(ApiError::bad(format!(
                "platform {p}: only the host platform ({}/{}) can be built here",
                host.os, host.architecture
            )));
        }
    }
    let host_network = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "none" | "bridge" => false,
        "host" => true,
        n => {
            return Err(ApiError::bad(format!(
                "networkmode {n}: must be default, bridge, none or host"
            )))
        }
    };
    let mut tags = Vec::new();
    for t in q.all("t").iter().filter(|t| !t.is_empty()) {
        tags.push(
            names::normalize(t).map_err(|e| ApiError::bad(format!("invalid tag {t:?}: {e}")))?,
        );
    }
    let dockerfile = q
        .get("dockerfile")
        .filter(|d| !d.is_empty())
        .unwrap_or("Dockerfile")
        .to_string();
    Ok(Params {
        tags,
        dockerfile,
        build_args: json_map(ctx, "buildargs")?,
        labels: json_map(ctx, "labels")?.into_iter().collect(),
        target: q
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        quiet: q.bool("q"),
        host_network,
    })
}

/// The Dockerfile named by the request, inside the unpacked context (never through a symlink
/// that leaves it).
fn read_dockerfile(ctx: &Path, name: &str) -> Result<String, String> {
    let rel = Path::new(name);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!(
            "the Dockerfile ({name}) must be a relative path inside the build context"
        ));
    }
    let root = std::fs::canonicalize(ctx).map_err(|e| e.to_string())?;
    let mut p = root.join(rel);
    if !p.exists() && name == "Dockerfile" && root.join("dockerfile").exists() {
        p = root.join("dockerfile");
    }
    let real = std::fs::canonicalize(&p)
        .map_err(|_| format!("Cannot locate specified Dockerfile: {name}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "the Dockerfile ({name}) must be within the build context"
        ));
    }
    std::fs::read_to_string(&real).map_err(|e| format!("read the Dockerfile {name}: {e}"))
}

/// Pulls `name` without progress (a build's base image).
fn pull(store: &Store, name: &str) -> Result<(), String> {
    let n = names::Name::parse(name).map_err(|e| e.to_string())?;
    let config = skiff_image::registry::RegistryConfig::load().map_err(|e| e.to_string())?;
    let docker = skiff_image::credentials::DockerConfig::load().map_err(|e| e.to_string())?;
    let client = skiff_image::registry::Client::new(config, docker);
    let repo = client.repository(&n, false, false);
    let reference = n
        .digest
        .clone()
        .or_else(|| n.tag.clone())
        .unwrap_or_else(|| "latest".into());
    skiff_image::pull::pull(store, &repo, &n.repo(), &reference, None, &|_| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `POST /build`.
pub async fn build(mut ctx: Ctx) -> R {
    let p = params(&ctx)?;
    let Some(body) = ctx.take_body() else {
        return Err(ApiError::bad(
            "a tar body with the build context is required",
        ));
    };
    let (mut rd, feeder) = crate::http::body_reader(body);
    let (tx, resp) = stream("application/json");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let mut prog = Legacy {
            tx: tx.clone(),
            quiet: p.quiet,
        };
        let r = run(&st, &p, &mut rd, &mut prog);
        while std::io::Read::read(&mut rd, &mut [0u8; 8192]).unwrap_or(0) > 0 {}
        feeder.abort();
        match r {
            Ok(rec) => {
                let short = rec.id.as_str().trim_start_matches("sha256:");
                let short = &short[..short.len().min(12)];
                prog.send(json!({"aux": {"ID": rec.id.as_str()}}));
                if p.quiet {
                    prog.send(json!({ "stream": format!("{}\n", rec.id.as_str()) }));
                } else {
                    prog.stream(&format!("Successfully built {short}\n"));
                    for t in &p.tags {
                        prog.stream(&format!("Successfully tagged {}\n", familiar(t)));
                    }
                }
            }
            Err(e) => {
                let msg = match e {
                    BuildError::RunFailed { step, msg, .. } => {
                        let cmd = step.split_once("] ").map(|x| x.1).unwrap_or(&step);
                        format!("The command '{cmd}' returned a non-zero code: {msg}")
                    }
                    e => e.to_string(),
                };
                prog.send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

fn run(
    st: &crate::State,
    p: &Params,
    rd: &mut crate::http::BodyReader,
    prog: &mut Legacy,
) -> Result<ImageRecord, BuildError> {
    let store = st.store()?;
    let dir = TempDir(store.temp_dir("build-context")?);
    let unpacked = skiff_image::compress::decompress(&mut *rd)
        .map_err(|e| BuildError::Other(format!("read the build context: {e}")))
        .and_then(|r| {
            skiff_image::unpack::unpack_layer(r, &dir.0, &Default::default())
                .map_err(|e| BuildError::Other(format!("unpack the build context: {e}")))
        });
    unpacked?;
    let dockerfile = read_dockerfile(&dir.0, &p.dockerfile).map_err(BuildError::Other)?;
    let ignore_text = std::fs::read_to_string(dir.0.join(".dockerignore")).unwrap_or_default();
    let ignore = skiff_build::ignore::Matcher::parse(&ignore_text)
        .map_err(|e| BuildError::Other(format!(".dockerignore: {e}")))?;
    let runroot = st
        .runroot
        .clone()
        .unwrap_or_else(|| skiff_engine::default_runroot(&st.root));
    let pulled = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
    let resolve = |s: &Store, name: &str| -> Result<ImageRecord, String> {
        let again = pulled.lock().map(|p| p.contains(name)).unwrap_or(false);
        if !p.pull || again {
            if let Ok(img) = s.resolve(name) {
                return Ok(img);
            }
            if again {
                return Err(format!("No such image: {name}"));
            }
        }
        if name.starts_with("sha256:") || names::Name::parse(name).is_err() {
            return s.resolve(name).map_err(|e| e.to_string());
        }
        if let Ok(mut p) = pulled.lock() {
            p.insert(name.to_string());
        }
        pull(s, name)?;
        s.resolve(name).map_err(|e| e.to_string())
    };
    let name = Path::new(&p.dockerfile)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.dockerfile.clone());
    let o = BuildOptions {
        root: st.root.clone(),
        runroot,
        context: dir.0.clone(),
        dockerfile_name: name,
        dockerfile,
        ignore,
        target: p.target.clone(),
        build_args: p.build_args.clone(),
        labels: p.labels.clone(),
        tags: p.tags.clone(),
        no_cache: p.no_cache,
        host_network: p.host_network,
        secrets: BTreeMap::new(),
        contexts: BTreeMap::new(),
        no_cache_filter: Vec::new(),
        resolve: &resolve,
    };
    let rec = skiff_build::build(&store, &o, prog)?;
    for t in &rec.tags {
        skiff_engine::api::image_event(&store, "tag", &rec.id, t);
    }
    Ok(rec)
}
