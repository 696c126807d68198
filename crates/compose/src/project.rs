//! A loaded project run over the engine: converging services to their containers (create,
//! recreate when the configuration hash changed, scale), in dependency order with the
//! `depends_on` conditions waited for; stopping in reverse order; the project's networks and
//! volumes; and the listing and log views of its containers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_engine::{Container, Engine};
use skiff_image::store::ImageRecord;
use skiff_image::Store;

use crate::load::Project;
use crate::service::{self, HASH, NUMBER, ONEOFF, PROJECT, SERVICE};
use crate::{Error, Result};

/// How the runner finds and pulls images (the CLI's registry code).
pub trait Images {
    /// The image store.
    fn store(&self) -> &Store;
    /// The local image `name` refers to, if any.
    fn find(&self, name: &str) -> Option<ImageRecord>;
    /// Pulls `name` (progress on stderr).
    fn pull(&self, name: &str) -> std::result::Result<(), String>;
    /// Builds a service's image and tags it `spec.tag`.
    fn build(&self, spec: &BuildSpec) -> std::result::Result<(), String> {
        Err(format!(
            "service {:?}: build not available in this skiff",
            spec.service
        ))
    }
}

/// A service's `build:` section, resolved: what building its image takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildSpec {
    /// The service.
    pub service: String,
    /// The context directory (absolute).
    pub context: PathBuf,
    /// The Dockerfile: a path relative to the context, or absolute.
    pub dockerfile: String,
    /// `dockerfile_inline`: the Dockerfile's text itself.
    pub dockerfile_inline: Option<String>,
    /// `args` (a name without a value takes the project environment's).
    pub args: BTreeMap<String, String>,
    /// `target`.
    pub target: Option<String>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `additional_contexts`: name → an absolute directory, or `docker-image://ref`.
    pub additional_contexts: BTreeMap<String, String>,
    /// `network` (`host`, `none`, or empty).
    pub network: Option<String>,
    /// The image name to tag.
    pub tag: String,
    /// `no_cache` or `build --no-cache`.
    pub no_cache: bool,
    /// `pull` or `build --pull`.
    pub pull: bool,
}

/// Whether `up` builds images: `--build`, `--no-build`, or as needed (a missing image).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildPolicy {
    /// Build services whose image is missing (or whose pull_policy is `build`).
    #[default]
    Missing,
    /// `--build`: build every service that has a `build:` section.
    Always,
    /// `--no-build`: never build.
    Never,
}

/// The [`BuildSpec`] of service `name` of `p` (None without a `build:` section).
pub fn build_spec(p: &Project, name: &str, svc: &Value) -> Option<BuildSpec> {
    let b = svc.get("build")?;
    let s = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let context = PathBuf::from(b["context"].as_str().unwrap_or("."));
    let map = |v: &Value| -> BTreeMap<String, String> {
        match v {
            Value::Object(m) => m
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::Null => p.env.get(k).map(|e| (k.clone(), e.clone())),
                    v => s(v).map(|x| (k.clone(), x)),
                })
                .collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .filter_map(|kv| match kv.split_once('=') {
                    Some((k, v)) => Some((k.to_string(), v.to_string())),
                    None => p.env.get(kv).map(|e| (kv.to_string(), e.clone())),
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let additional_contexts = map(&b["additional_contexts"])
        .into_iter()
        .map(|(k, v)| {
            if v.contains("://") || v.starts_with('/') {
                (k, v)
            } else {
                (k, context.join(&v).to_string_lossy().into_owned())
            }
        })
        .collect();
    Some(BuildSpec {
        service: name.to_string(),
        dockerfile: b["dockerfile"].as_str().unwrap_or("Dockerfile").to_string(),
        dockerfile_inline: b["dockerfile_inline"].as_str().map(String::from),
        args: map(&b["args"]),
        target: b["target"].as_str().map(String::from),
        labels: map(&b["labels"]),
        additional_contexts,
        network: b["network"].as_str().map(String::from),
        tag: service::image_name(p, name, svc),
        no_cache: b["no_cache"].as_bool().unwrap_or(false),
        pull: b["pull"].as_bool().unwrap_or(false),
        context,
    })
}

/// `up`'s options.
#[derive(Debug, Clone, Default)]
pub struct UpOpts {
    /// Services named on the command line (empty = all).
    pub services: Vec<String>,
    /// `--force-recreate`.
    pub force_recreate: bool,
    /// `--no-recreate`.
    pub no_recreate: bool,
    /// `--no-deps`.
    pub no_deps: bool,
    /// `--no-start` (`create`).
    pub no_start: bool,
    /// `--remove-orphans`.
    pub remove_orphans: bool,
    /// `--scale SERVICE=N`.
    pub scale: BTreeMap<String, u32>,
    /// `-t`: seconds a recreated container gets to stop.
    pub timeout: Option<i64>,
    /// How long a `depends_on` condition may take.
    pub wait_timeout: Option<Duration>,
    /// `--pull`: `always`, `missing`, `never` (empty: the services' pull_policy).
    pub pull: String,
    /// `--build` / `--no-build`.
    pub build: BuildPolicy,
}

/// The value of label `k` of `c` (empty when absent).
pub fn label<'a>(c: &'a Container, k: &str) -> &'a str {
    c.config.labels.get(k).map(String::as_str).unwrap_or("")
}

/// The container number of `c`.
pub fn number(c: &Container) -> u32 {
    label(c, NUMBER).parse().unwrap_or(0)
}

/// Runs a project's operations against one engine.
pub struct Runner<'a> {
    /// The engine.
    pub e: Engine,
    /// The project.
    pub p: &'a Project,
    /// Image lookups and pulls.
    pub images: &'a dyn Images,
    /// No progress lines.
    pub quiet: bool,
}

/// A compose v2 progress event (` Container p-web-1  Started`), shown as
/// [`crate::progress`]'s mode says.
pub fn progress(quiet: bool, kind: &str, name: &str, what: &str) {
    if !quiet {
        crate::progress::event(kind, name, what);
    }
}

/// The containers of project `name` in engine `e` (one-off `run` containers with `oneoff`),
/// by service and number.
pub fn project_containers(e: &Engine, name: &str, oneoff: bool) -> Result<Vec<Container>> {
    let mut v: Vec<Container> = e
        .list()?
        .into_iter()
        .filter(|c| label(c, PROJECT) == name)
        .filter(|c| oneoff || label(c, ONEOFF) != "True")
        .collect();
    v.sort_by(|a, b| {
        label(a, SERVICE)
            .cmp(label(b, SERVICE))
            .then(number(a).cmp(&number(b)))
            .then(a.name.cmp(&b.name))
    });
    Ok(v)
}

/// Starts containers in parallel, one engine per thread.
pub fn start_all(e: &Engine, ids: &[(String, String)], quiet: bool) -> Result<()> {
    if let [(id, name)] = ids {
        progress(quiet, "Container", name, "Starting");
        e.start(id, None)?;
        progress(quiet, "Container", name, "Started");
        return Ok(());
    }
    let (root, runroot) = (e.root.clone(), e.runroot.clone());
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|(id, name)| {
                let (root, runroot) = (root.clone(), runroot.clone());
                s.spawn(move || -> std::result::Result<(), String> {
                    let e = Engine::open(&root, Some(&runroot)).map_err(|e| e.to_string())?;
                    progress(quiet, "Container", name, "Starting");
                    e.start(id, None)
                        .map_err(|e| format!("container {name}: {e}"))?;
                    progress(quiet, "Container", name, "Started");
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a start thread panicked".into()))
                    .err()
            })
            .collect()
    });
    match errors.first() {
        Some(m) => Err(Error::Invalid(m.clone())),
        None => Ok(()),
    }
}

/// Stops (then, with `remove`, removes) containers in parallel, one engine per thread.
pub fn stop_all(
    e: &Engine,
    ids: &[(String, String)],
    timeout: Option<i64>,
    remove: bool,
    volumes: bool,
    quiet: bool,
) -> Result<()> {
    let root = e.root.clone();
    let runroot = e.runroot.clone();
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|(id, name)| {
                let (root, runroot) = (root.clone(), runroot.clone());
                s.spawn(move || -> std::result::Result<(), String> {
                    let e = Engine::open(&root, Some(&runroot)).map_err(|e| e.to_string())?;
                    let c = e.container(id).map_err(|e| e.to_string())?;
                    if c.is_active() {
                        progress(quiet, "Container", name, "Stopping");
                        e.stop(id, timeout)
                            .map_err(|e| format!("container {name}: {e}"))?;
                        progress(quiet, "Container", name, "Stopped");
                    }
                    if remove {
                        progress(quiet, "Container", name, "Removing");
                        e.remove(id, true, volumes)
                            .map_err(|e| format!("container {name}: {e}"))?;
                        progress(quiet, "Container", name, "Removed");
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a stop thread panicked".into()))
                    .err()
            })
            .collect()
    });
    match errors.first() {
        Some(m) => Err(Error::Invalid(m.clone())),
        None => Ok(()),
    }
}

impl Runner<'_> {
    /// The project's containers (see [`project_containers`]).
    pub fn containers(&self, oneoff: bool) -> Result<Vec<Container>> {
        project_containers(&self.e, &self.p.name, oneoff)
    }

    /// The containers of `service`.
    pub fn service_containers(&self, service: &str) -> Result<Vec<Container>> {
        Ok(self
            .containers(false)?
            .into_iter()
            .filter(|c| label(c, SERVICE) == service)
            .collect())
    }

    /// The services named (all when empty), with their dependencies when `deps`, in dependency
    /// order. An unknown name is an error.
    pub fn select(&self, names: &[String], deps: bool) -> Result<Vec<String>> {
        for n in names {
            if !self.p.services.contains_key(n) {
                return Err(Error::Invalid(if self.p.disabled.contains_key(n) {
                    format!("service {n:?} is not enabled by the active profiles")
                } else {
                    format!("no such service: {n}")
                }));
            }
        }
        let order = self.p.order()?;
        if names.is_empty() {
            return Ok(order);
        }
        let mut want: BTreeSet<String> = names.iter().cloned().collect();
        if deps {
            let mut stack: Vec<String> = names.to_vec();
            while let Some(n) = stack.pop() {
                for d in self.p.services[&n]["depends_on"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|x| x.0)
                {
                    if self.p.services.contains_key(d) && want.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
        Ok(order.into_iter().filter(|n| want.contains(n)).collect())
    }

    /// Builds service `name`'s image (its `build:` section), progress as compose v2's.
    pub fn build(&self, name: &str, svc: &Value, no_cache: bool, pull: bool) -> Result<()> {
        let Some(mut spec) = build_spec(self.p, name, svc) else {
            return Ok(());
        };
        spec.no_cache |= no_cache;
        spec.pull |= pull;
        progress(self.quiet, "Service", name, "Building");
        // The build's own output follows; a terminal view starts again below it.
        crate::progress::finish();
        self.images.build(&spec).map_err(|e| {
            progress(self.quiet, "Service", name, "Error");
            Error::Invalid(e)
        })?;
        progress(self.quiet, "Service", name, "Built");
        Ok(())
    }

    /// The image of a service: built as `build` and its `pull_policy` say, else pulled as its
    /// `pull_policy` (or `--pull`) says.
    pub fn image(
        &self,
        name: &str,
        svc: &Value,
        pull: &str,
        build: BuildPolicy,
    ) -> Result<(String, ImageRecord)> {
        let image = service::image_name(self.p, name, svc);
        let policy = if pull.is_empty() {
            svc["pull_policy"].as_str().unwrap_or("missing").to_string()
        } else {
            pull.to_string()
        };
        let has_build = svc.get("build").is_some();
        if has_build
            && build != BuildPolicy::Never
            && (build == BuildPolicy::Always
                || svc["pull_policy"].as_str() == Some("build")
                || self.images.find(&image).is_none())
        {
            self.build(name, svc, false, false)?;
        }
        if matches!(policy.as_str(), "always" | "daily" | "weekly") && !has_build {
            progress(self.quiet, "Image", &image, "Pulling");
            self.images.pull(&image).map_err(Error::Invalid)?;
            progress(self.quiet, "Image", &image, "Pulled");
        }
        if let Some(img) = self.images.find(&image) {
            return Ok((image, img));
        }
        if has_build {
            return Err(Error::Invalid(format!(
                "service {name:?}: image {image:?} does not exist and --no-build was given"
            )));
        }
        if policy == "never" {
            return Err(Error::Invalid(format!(
                "service {name:?}: image {image:?} not found and pull_policy is never"
            )));
        }
        progress(self.quiet, "Image", &image, "Pulling");
        self.images.pull(&image).map_err(Error::Invalid)?;
        progress(self.quiet, "Image", &image, "Pulled");
        self.images
            .find(&image)
            .map(|i| (image.clone(), i))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "service {name:?}: image {image:?} not found after pull"
                ))
            })
    }

    /// Creates the project's networks that do not exist yet (external ones must exist).
    pub fn ensure_networks(&self, services: &[String]) -> Result<()> {
        let used: BTreeSet<&str> = services
            .iter()
            .filter_map(|s| self.p.services.get(s))
            .flat_map(|s| {
                s["networks"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|x| x.0.as_str())
            })
            .collect();
        let net = self.e.net()?;
        for (key, n) in &self.p.networks {
            if !used.contains(key.as_str()) {
                continue;
            }
            let name = n["name"].as_str().unwrap_or(key);
            let now = skiff_engine::proc::now();
            if net.find(name, &now).is_ok() {
                continue;
            }
            if n["external"].as_bool() == Some(true) {
                return Err(Error::Invalid(format!(
                    "network {name} declared as external, but could not be found"
                )));
            }
            let ipam = &n["ipam"]["config"][0];
            let mut labels = BTreeMap::new();
            labels.insert(service::NETWORK.to_string(), key.clone());
            labels.insert(PROJECT.to_string(), self.p.name.clone());
            labels.insert(
                service::VERSION.to_string(),
                service::COMPOSE_VERSION.to_string(),
            );
            for (k, v) in n["labels"].as_object().into_iter().flatten() {
                labels.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
            progress(self.quiet, "Network", name, "Creating");
            net.create(
                &skiff_engine::skiff_net::CreateRequest {
                    name: name.to_string(),
                    subnet: ipam["subnet"].as_str().map(String::from),
                    gateway: ipam["gateway"].as_str().map(String::from),
                    internal: n["internal"].as_bool().unwrap_or(false),
                    labels,
                    ..Default::default()
                },
                &now,
            )
            .map_err(skiff_engine::network::net_err)?;
            progress(self.quiet, "Network", name, "Created");
        }
        Ok(())
    }

    /// Creates the project's named volumes that do not exist yet (external ones must exist).
    pub fn ensure_volumes(&self) -> Result<()> {
        let vols = skiff_engine::volumes::Volumes::open(&self.e.root)?;
        for (key, v) in &self.p.volumes {
            let name = v["name"].as_str().unwrap_or(key);
            if vols.get(name).is_ok() {
                continue;
            }
            if v["external"].as_bool() == Some(true) {
                return Err(Error::Invalid(format!(
                    "external volume {name:?} not found"
                )));
            }
            let mut labels = BTreeMap::new();
            labels.insert(service::VOLUME.to_string(), key.clone());
            labels.insert(PROJECT.to_string(), self.p.name.clone());
            labels.insert(
                service::VERSION.to_string(),
                service::COMPOSE_VERSION.to_string(),
            );
            for (k, x) in v["labels"].as_object().into_iter().flatten() {
                labels.insert(k.clone(), x.as_str().unwrap_or_default().to_string());
            }
            let opts: BTreeMap<String, String> = v["driver_opts"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                .collect();
            progress(self.quiet, "Volume", name, "Creating");
            vols.create(Some(name), &opts, &labels)?;
            progress(self.quiet, "Volume", name, "Created");
        }
        Ok(())
    }

    fn first_container(&self, service: &str) -> Option<String> {
        self.service_containers(service)
            .ok()?
            .into_iter()
            .next()
            .map(|c| c.name)
    }

    /// Creates container `n` of a service (its extra networks connected, its aliases set).
    #[allow(clippy::too_many_arguments)]
    pub fn create_one(
        &self,
        name: &str,
        svc: &Value,
        n: u32,
        image: &str,
        img: &ImageRecord,
        oneoff: bool,
        adjust: &dyn Fn(&mut skiff_engine::create::CreateRequest),
    ) -> Result<Container> {
        let first = |s: &str| self.first_container(s);
        let peers = service::Peers {
            first_container: &first,
        };
        let mut req = service::request(
            self.p,
            name,
            svc,
            n,
            image,
            &img.id.to_string(),
            oneoff,
            &peers,
        )?;
        for v in self.file_mounts(name, svc)? {
            req.volumes.push(v);
        }
        adjust(&mut req);
        let cname = req.name.clone().unwrap_or_default();
        progress(self.quiet, "Container", &cname, "Creating");
        let (c, warnings) = skiff_engine::create::create(&self.e, self.images.store(), img, &req)?;
        for w in warnings {
            eprintln!("WARNING: {w}");
        }
        if svc.get("network_mode").is_none() {
            let nets = service::networks(self.p, name, svc);
            // Each network's aliases apply on that network only; the union stays in
            // `network_aliases` for readers that know no per-network ones.
            let mut aliases: Vec<String> = Vec::new();
            let mut on: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (net, a, _) in &nets {
                for x in a {
                    if !aliases.contains(x) {
                        aliases.push(x.clone());
                    }
                }
                on.insert(net.clone(), a.clone());
            }
            self.e.set_network_aliases(&c.id, &aliases)?;
            self.e.set_network_aliases_on(&c.id, &on)?;
            for (net, _, ip) in nets.iter().skip(1) {
                self.e.connect_network(net, &c.id, ip.as_deref())?;
            }
        }
        progress(self.quiet, "Container", &c.name, "Created");
        Ok(c)
    }

    /// Where the project keeps the files it writes for containers (secrets and configs given
    /// as content or environment, or with an owner or mode): `<root>/compose/<project>`.
    pub fn data_dir(&self) -> PathBuf {
        self.e.root.join("compose").join(&self.p.name)
    }

    /// The `-v` binds of service `name`'s secrets and configs (read-only). A host file is bound
    /// as it is; content, and a file whose owner or mode is set, is written (mode 0444 unless
    /// set, owned as set) under [`Runner::data_dir`] and that is bound.
    fn file_mounts(&self, name: &str, svc: &Value) -> Result<Vec<String>> {
        use service::FileSource;
        let mounts = service::file_mounts(self.p, name, svc)?;
        let mut out = Vec::new();
        for (i, m) in mounts.into_iter().enumerate() {
            let what = format!("service {name:?}: {} {:?}", m.kind, m.source);
            let io = |e: std::io::Error, p: &std::path::Path| {
                Error::Invalid(format!("{what}: {}: {e}", p.display()))
            };
            let shaped = m.uid.is_some() || m.gid.is_some() || m.mode.is_some();
            let host = match &m.from {
                FileSource::File(f) if !shaped => {
                    let md = std::fs::metadata(f).map_err(|e| io(e, f))?;
                    if !md.is_file() && !md.is_dir() {
                        return Err(Error::Invalid(format!(
                            "{what}: {} is not a file",
                            f.display()
                        )));
                    }
                    f.clone()
                }
                src => {
                    let bytes = match src {
                        FileSource::Content(b) => b.clone(),
                        FileSource::File(f) => {
                            // Never through a symlink the user named: its target is read as
                            // the file it names, with O_NOFOLLOW on the last component.
                            use std::io::Read;
                            use std::os::unix::fs::OpenOptionsExt;
                            let mut b = Vec::new();
                            std::fs::OpenOptions::new()
                                .read(true)
                                .custom_flags(libc::O_NOFOLLOW)
                                .open(f)
                                .and_then(|mut h| h.read_to_end(&mut b))
                                .map_err(|e| io(e, f))?;
                            b
                        }
                    };
                    let dir = self.data_dir().join(name);
                    skiff_image::perms::mkdir_all(&dir, 0o700).map_err(|e| io(e, &dir))?;
                    let p = dir.join(format!("{}-{i}-{}", m.kind, m.source.replace('/', "_")));
                    let mode = m.mode.unwrap_or(0o444);
                    let _ = std::fs::remove_file(&p);
                    skiff_image::perms::write_file(&p, &bytes, 0o600).map_err(|e| io(e, &p))?;
                    std::os::unix::fs::chown(&p, m.uid.or(Some(0)), m.gid.or(Some(0)))
                        .map_err(|e| io(e, &p))?;
                    std::fs::set_permissions(
                        &p,
                        std::os::unix::fs::PermissionsExt::from_mode(mode),
                    )
                    .map_err(|e| io(e, &p))?;
                    p
                }
            };
            let hs = host.to_string_lossy();
            if hs.contains(':') || m.target.contains(':') {
                return Err(Error::Invalid(format!(
                    "{what}: paths with ':' cannot be mounted ({hs} -> {})",
                    m.target
                )));
            }
            out.push(format!("{hs}:{}:ro", m.target));
        }
        Ok(out)
    }

    /// Waits for the `depends_on` conditions of `name`.
    pub fn wait_deps(&self, name: &str, timeout: Option<Duration>) -> Result<()> {
        let svc = &self.p.services[name];
        for (dep, spec) in svc["depends_on"].as_object().into_iter().flatten() {
            if !self.p.services.contains_key(dep) {
                continue;
            }
            let cond = spec["condition"].as_str().unwrap_or("service_started");
            let required = spec["required"].as_bool().unwrap_or(true);
            if cond == "service_started" {
                continue;
            }
            let cs = self.service_containers(dep)?;
            if cs.is_empty() && !required {
                continue;
            }
            for c in cs {
                let r = self.wait_one(&c, cond, timeout);
                match r {
                    Err(e) if !required => eprintln!("WARNING: optional dependency {dep:?}: {e}"),
                    r => r?,
                }
            }
        }
        Ok(())
    }

    fn wait_one(&self, c: &Container, cond: &str, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        progress(self.quiet, "Container", &c.name, "Waiting");
        loop {
            let cur = self.e.container(&c.id)?;
            match cond {
                "service_healthy" => {
                    if !cur.is_active() {
                        return Err(Error::Invalid(format!(
                            "dependency failed to start: container {} exited ({})",
                            cur.name, cur.state.exit_code
                        )));
                    }
                    if cur
                        .config
                        .healthcheck
                        .as_ref()
                        .is_none_or(|h| h.test.first().map(String::as_str) == Some("NONE"))
                    {
                        return Err(Error::Invalid(format!(
                            "dependency failed to start: container {} has no healthcheck configured",
                            cur.name
                        )));
                    }
                    match self.e.health(&cur).map(|h| h.status) {
                        Some(s) if s == "healthy" => {
                            progress(self.quiet, "Container", &c.name, "Healthy");
                            return Ok(());
                        }
                        Some(s) if s == "unhealthy" => {
                            return Err(Error::Invalid(format!(
                                "dependency failed to start: container {} is unhealthy",
                                cur.name
                            )))
                        }
                        _ => {}
                    }
                }
                _ => {
                    if !cur.is_active() && cur.state.status != "created" {
                        if cur.state.exit_code == 0 {
                            progress(self.quiet, "Container", &c.name, "Exited");
                            return Ok(());
                        }
                        return Err(Error::Invalid(format!(
                            "service {:?} didn't complete successfully: exit {}",
                            label(&cur, SERVICE),
                            cur.state.exit_code
                        )));
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(Error::Invalid(format!(
                    "timed out waiting for container {} to be {}",
                    cur.name,
                    if cond == "service_healthy" {
                        "healthy"
                    } else {
                        "completed"
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `up`/`create`: converges the selected services (and their dependencies) and starts
    /// them; returns the containers of the selected services.
    pub fn up(&self, o: &UpOpts) -> Result<Vec<Container>> {
        let targets = self.select(&o.services, !o.no_deps)?;
        // Images first, so a missing one changes nothing.
        let mut images = BTreeMap::new();
        for n in &targets {
            images.insert(
                n.clone(),
                self.image(n, &self.p.services[n], &o.pull, o.build)?,
            );
        }
        self.ensure_networks(&targets)?;
        self.ensure_volumes()?;
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        // Services whose existing containers were replaced (not merely created or scaled up).
        let mut replaced: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        // A level at a time: its services converged in order, then their containers started
        // in parallel (their dependencies are in earlier levels, already started and waited for).
        for level in self.levels(&targets) {
            let mut to_start: Vec<(String, String)> = Vec::new();
            for n in &level {
                let svc = &self.p.services[n];
                let (image, img) = &images[n];
                if !o.no_start {
                    self.wait_deps(n, o.wait_timeout)?;
                }
                let hash = service::config_hash(svc, &img.id.to_string());
                let want = service::replicas(svc, o.scale.get(n).copied());
                if want > 1 && svc.get("container_name").is_some() {
                    return Err(Error::Invalid(format!(
                    "service {n:?}: container_name {:?} can run only one container (scale {want})",
                    svc["container_name"].as_str().unwrap_or_default()
                )));
                }
                // A dependency this service is bound to (its network namespace, its volumes, or
                // `restart: true`) was recreated or created: recreate this one too.
                let bound: Vec<String> = svc["depends_on"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, c)| c["restart"].as_bool() == Some(true))
                    .map(|(d, _)| d.clone())
                    .chain(
                        svc["network_mode"]
                            .as_str()
                            .and_then(|m| m.strip_prefix("service:"))
                            .map(String::from),
                    )
                    .chain(
                        svc["volumes_from"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v.as_str())
                            .map(|v| v.split(':').next().unwrap_or_default().to_string()),
                    )
                    .collect();
                // As compose v2: a service whose dependency (any `depends_on`) was replaced is
                // replaced too, so it never runs against a container that is gone.
                let dep_changed = bound.iter().any(|d| recreated.contains(d))
                    || svc["depends_on"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .any(|(d, _)| replaced.contains(d));
                let mut have: BTreeMap<u32, Container> = BTreeMap::new();
                let mut extra = Vec::new();
                for c in self.service_containers(n)? {
                    let k = number(&c);
                    if k == 0 || k > want || have.contains_key(&k) {
                        extra.push((c.id.clone(), c.name.clone()));
                    } else {
                        have.insert(k, c);
                    }
                }
                stop_all(&self.e, &extra, o.timeout, true, false, self.quiet)?;
                let mut mine = Vec::new();
                for k in 1..=want {
                    let c = match have.remove(&k) {
                        Some(c) => {
                            let stale = label(&c, HASH) != hash;
                            if !o.no_recreate && (o.force_recreate || stale || dep_changed) {
                                progress(self.quiet, "Container", &c.name, "Recreate");
                                stop_all(
                                    &self.e,
                                    &[(c.id.clone(), c.name.clone())],
                                    o.timeout,
                                    true,
                                    false,
                                    true,
                                )?;
                                recreated.insert(n.clone());
                                replaced.insert(n.clone());
                                let c = self.create_one(n, svc, k, image, img, false, &|_| {})?;
                                progress(self.quiet, "Container", &c.name, "Recreated");
                                c
                            } else {
                                if c.is_active() {
                                    progress(self.quiet, "Container", &c.name, "Running");
                                }
                                c
                            }
                        }
                        None => {
                            recreated.insert(n.clone());
                            self.create_one(n, svc, k, image, img, false, &|_| {})?
                        }
                    };
                    mine.push(c);
                }
                for c in &mine {
                    if !self.e.container(&c.id)?.is_active() {
                        to_start.push((c.id.clone(), c.name.clone()));
                    }
                }
                if o.services.is_empty() || o.services.contains(n) {
                    out.extend(mine);
                }
            }
            if !o.no_start {
                start_all(&self.e, &to_start, self.quiet)?;
            }
        }
        self.orphans(o.remove_orphans, o.timeout)?;
        Ok(out)
    }

    /// Containers of services no longer in the model: removed with `remove`, else a warning.
    pub fn orphans(&self, remove: bool, timeout: Option<i64>) -> Result<()> {
        let known: BTreeSet<&String> = self
            .p
            .services
            .keys()
            .chain(self.p.disabled.keys())
            .collect();
        let orphans: Vec<(String, String)> = self
            .containers(false)?
            .into_iter()
            .filter(|c| !known.contains(&label(c, SERVICE).to_string()))
            .map(|c| (c.id, c.name))
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        if remove {
            stop_all(&self.e, &orphans, timeout, true, false, self.quiet)
        } else {
            eprintln!(
                "WARNING: Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                orphans.iter().map(|o| o.1.as_str()).collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }

    /// `down`: stops and removes the project's containers (dependents first), its networks, and
    /// with `volumes` its named volumes and anonymous ones.
    pub fn down(&self, volumes: bool, remove_orphans: bool, timeout: Option<i64>) -> Result<()> {
        let order = self.p.order()?;
        let all = self.containers(true)?;
        let known: BTreeSet<&String> = self
            .p
            .services
            .keys()
            .chain(self.p.disabled.keys())
            .collect();
        // Orphans (and one-off containers) first, then the services in reverse order, a level
        // at a time: each service's containers in parallel.
        let mut groups: Vec<Vec<(String, String)>> = Vec::new();
        let orphans: Vec<(String, String)> = all
            .iter()
            .filter(|c| !known.contains(&label(c, SERVICE).to_string()))
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        if !orphans.is_empty() {
            if remove_orphans {
                groups.push(orphans);
            } else {
                eprintln!(
                    "WARNING: Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    orphans.iter().map(|o| o.1.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let oneoffs: Vec<(String, String)> = all
            .iter()
            .filter(|c| {
                label(c, ONEOFF) == "True" && known.contains(&label(c, SERVICE).to_string())
            })
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        if !oneoffs.is_empty() {
            groups.push(oneoffs);
        }
        for level in self.levels(&order).into_iter().rev() {
            let g: Vec<(String, String)> = all
                .iter()
                .filter(|c| {
                    label(c, ONEOFF) != "True" && level.contains(&label(c, SERVICE).to_string())
                })
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect();
            if !g.is_empty() {
                groups.push(g);
            }
        }
        for g in groups {
            stop_all(&self.e, &g, timeout, true, volumes, self.quiet)?;
        }
        let net = self.e.net()?;
        let now = skiff_engine::proc::now();
        for n in self.p.networks.values() {
            if n["external"].as_bool() == Some(true) {
                continue;
            }
            let name = n["name"].as_str().unwrap_or_default();
            if net.find(name, &now).is_ok() {
                progress(self.quiet, "Network", name, "Removing");
                net.remove(name).map_err(skiff_engine::network::net_err)?;
                progress(self.quiet, "Network", name, "Removed");
            }
        }
        let data = self.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .map_err(|e| Error::Invalid(format!("remove {}: {e}", data.display())))?;
        }
        if volumes {
            let vols = skiff_engine::volumes::Volumes::open(&self.e.root)?;
            for v in self.p.volumes.values() {
                if v["external"].as_bool() == Some(true) {
                    continue;
                }
                let name = v["name"].as_str().unwrap_or_default();
                if vols.get(name).is_ok() {
                    progress(self.quiet, "Volume", name, "Removing");
                    vols.remove(name, false)?;
                    progress(self.quiet, "Volume", name, "Removed");
                }
            }
        }
        Ok(())
    }

    /// The services in levels: each level depends only on earlier ones.
    pub fn levels(&self, order: &[String]) -> Vec<Vec<String>> {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        for n in order {
            let l = self.p.services[n]["depends_on"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(d, _)| level.get(d.as_str()).map(|x| x + 1))
                .max()
                .unwrap_or(0);
            level.insert(n, l);
        }
        let mut out: Vec<Vec<String>> = Vec::new();
        for (n, l) in level {
            while out.len() <= l {
                out.push(Vec::new());
            }
            out[l].push(n.to_string());
        }
        out
    }

    /// The directory holding a container's log.
    pub fn log_path(&self, c: &Container) -> PathBuf {
        self.e.container_dir(&c.id).join("ctr.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn build_spec_resolved() {
        let mut p = Project {
            name: "proj".into(),
            ..Default::default()
        };
        p.env.insert("FROM_ENV".into(), "e".into());
        let svc = json!({"build": {
            "context": "/src/app",
            "dockerfile": "Dockerfile.dev",
            "args": {"A": "1", "FROM_ENV": null, "MISSING": null},
            "target": "final",
            "labels": {"l": "v"},
            "additional_contexts": {"lib": "../lib", "abs": "/x", "img": "docker-image://busybox"},
        }});
        let b = build_spec(&p, "web", &svc).unwrap();
        assert_eq!(b.tag, "proj-web");
        assert_eq!(b.context, PathBuf::from("/src/app"));
        assert_eq!(b.dockerfile, "Dockerfile.dev");
        assert_eq!(
            b.args,
            BTreeMap::from([("A".into(), "1".into()), ("FROM_ENV".into(), "e".into())])
        );
        assert_eq!(b.target.as_deref(), Some("final"));
        assert_eq!(b.labels["l"], "v");
        assert_eq!(b.additional_contexts["lib"], "/src/app/../lib");
        assert_eq!(b.additional_contexts["abs"], "/x");
        assert_eq!(b.additional_contexts["img"], "docker-image://busybox");
        let tagged = json!({"image": "mine:2", "build": {"context": "/c"}});
        assert_eq!(build_spec(&p, "web", &tagged).unwrap().tag, "mine:2");
        assert!(build_spec(&p, "web", &json!({"image": "x"})).is_none());
    }
}
