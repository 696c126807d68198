//! `skiff build` and `skiff builder prune|du`: flags as docker's, the context from a directory,
//! a tarball or stdin, progress as BuildKit's plain output on stderr.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use skiff_build::progress::{Plain, Progress, Quiet, Tty};
use skiff_build::{BuildError, BuildOptions};
use skiff_image::store::Store;
use skiff_image::{names, perms, sys};

use crate::Cli;

/// Flags of `build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set metadata for an image
    #[arg(long)]
    pub label: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Set the networking mode for the RUN instructions during build ("default", "none", "host")
    #[arg(long)]
    pub network: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or "id=x,env=VAR")
    #[arg(long)]
    pub secret: Vec<String>,
    /// SSH agent socket or keys to expose to the build (not supported)
    #[arg(long)]
    pub ssh: Vec<String>,
    /// Additional build contexts (e.g., name=path or name=docker-image://ref)
    #[arg(long = "build-context")]
    pub build_context: Vec<String>,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter")]
    pub no_cache_filter: Vec<String>,
    /// Output destination (format: "type=local,dest=path"; types local, tar, docker, oci, image)
    #[arg(short = 'o', long = "output")]
    pub output: Vec<String>,
    /// Write build result metadata to a file
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Set target platform for build (only the host's)
    #[arg(long)]
    pub platform: Option<String>,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pub pull: bool,
    /// Remove intermediate containers after a successful build (always)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub rm: bool,
    /// Always remove intermediate containers (always)
    #[arg(long = "force-rm", hide = true)]
    pub force_rm: bool,
    /// Build context: a directory, a tarball, or "-" for stdin
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// `builder` subcommands.
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(PruneArgs),
    /// Show build cache disk usage
    Du(DuArgs),
}

/// Flags of `builder prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Flags of `builder du`.
#[derive(Args, Debug)]
pub struct DuArgs {
    /// Provide a more verbose output
    #[arg(long)]
    pub verbose: bool,
}

/// A directory removed when dropped.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = sys::remove_all(p);
        }
    }
}

fn is_tar(data: &[u8]) -> bool {
    let mut rd = match skiff_image::compress::decompress(data) {
        Ok(r) => r,
        Err(_) => return false,
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match rd.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n >= 262 && &head[257..262] == b"ustar"
}

fn unpack_context(store: &Store, data: &[u8]) -> Result<PathBuf> {
    let dir = store.temp_dir("build-context")?;
    let rd = skiff_image::compress::decompress(data).context("read the context archive")?;
    skiff_image::unpack::unpack_layer(rd, &dir, &Default::default())
        .context("unpack the context archive")?;
    Ok(dir)
}

/// Runs `build`; returns the exit code.
pub fn build(cli: &Cli, a: &BuildArgs) -> i32 {
    skiff_build::run::guard_signals();
    match build_inner(cli, a) {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<BuildError>() {
                Some(BuildError::Interrupted) => {
                    eprintln!("ERROR: build interrupted");
                    let sig =
                        skiff_build::run::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst);
                    return 128 + sig;
                }
                Some(BuildError::RunFailed { step, msg, output }) => {
                    eprintln!("------\n > {step}:");
                    let lines: Vec<&str> = output.lines().collect();
                    for l in &lines[lines.len().saturating_sub(20)..] {
                        eprintln!("{l}");
                    }
                    eprintln!("------\nERROR: failed to solve: {msg}");
                }
                Some(be) => eprintln!("ERROR: failed to solve: {be}"),
                None => eprintln!("ERROR: {}", crate::error_text(&e)),
            }
            1
        }
    }
}

fn build_inner(cli: &Cli, a: &BuildArgs) -> Result<i32> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow!(
            "build needs root privileges (rootless mode is not supported yet); run skiff as root"
        ));
    }
    if let Some(s) = a.ssh.first() {
        return Err(anyhow!(
            "--ssh {s}: ssh agent forwarding is not supported by skiff build"
        ));
    }
    let mut outputs = Vec::new();
    for o in &a.output {
        outputs.push(skiff_build::export::parse_output(o).map_err(|e| anyhow!(e))?);
    }
    let mut contexts = BTreeMap::new();
    for c in &a.build_context {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow!("--build-context {c}: expected name=path"))?;
        let nc = if let Some(r) = v.strip_prefix("docker-image://") {
            skiff_build::NamedContext::Image(r.to_string())
        } else if v.contains("://") || v.starts_with("git@") {
            return Err(anyhow!(
                "--build-context {c}: only local directories and docker-image:// are supported"
            ));
        } else {
            let p = PathBuf::from(v);
            if !p.is_dir() {
                return Err(anyhow!("--build-context {c}: {v} is not a directory"));
            }
            skiff_build::NamedContext::Dir(p)
        };
        contexts.insert(k.to_string(), nc);
    }
    let mut secrets = BTreeMap::new();
    for s in &a.secret {
        let (id, src) = skiff_build::mounts::parse_secret(s).map_err(|e| anyhow!(e))?;
        secrets.insert(id, src);
    }
    if let Some(p) = &a.platform {
        let host = skiff_image::platform::Platform::host();
        let want = skiff_image::platform::Platform::parse(p)?;
        if !want.matches(&host) {
            return Err(anyhow!(
                "--platform={p}: only the host platform ({}/{}) can be built here",
                host.os,
                host.architecture
            ));
        }
    }
    let progress = match a.progress.as_str() {
        "auto" | "plain" | "tty" | "quiet" | "rawjson" => a.progress.as_str(),
        p => {
            return Err(anyhow!(
                "invalid progress mode {p:?}: use auto, plain, tty or quiet"
            ))
        }
    };
    let host_network = match a.network.as_deref() {
        None | Some("default") | Some("none") | Some("bridge") => false,
        Some("host") => true,
        Some(n) => return Err(anyhow!("--network={n}: must be default, none or host")),
    };
    let store = Store::open(&cli.root)
        .with_context(|| format!("open image store {}", cli.root.display()))?;
    let mut tags = Vec::new();
    for t in &a.tag {
        tags.push(names::normalize(t).map_err(|e| anyhow!("invalid tag {t:?}: {e}"))?);
    }
    // The context and the Dockerfile.
    let mut stdin_used = false;
    let mut read_stdin = || -> Result<Vec<u8>> {
        if stdin_used {
            return Err(anyhow!(
                "the context and the Dockerfile cannot both be read from stdin"
            ));
        }
        stdin_used = true;
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v).context("read stdin")?;
        Ok(v)
    };
    let mut tmp = TempDir(None);
    let mut dockerfile_text: Option<String> = None;
    let context: PathBuf = if a.path == "-" {
        let data = read_stdin()?;
        if is_tar(&data) {
            let d = unpack_context(&store, &data)?;
            tmp.0 = Some(d.clone());
            d
        } else {
            // `docker build - < Dockerfile`: no context at all.
            dockerfile_text =
                Some(String::from_utf8(data).context("the Dockerfile on stdin is not UTF-8")?);
            let d = store.temp_dir("build-context")?;
            tmp.0 = Some(d.clone());
            d
        }
    } else {
        let p = PathBuf::from(&a.path);
        let md = std::fs::metadata(&p).map_err(|e| {
            anyhow!(
                "unable to prepare context: path {:?} not found: {e}",
                a.path
            )
        })?;
        if md.is_dir() {
            p
        } else {
            let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
            if !is_tar(&data) {
                return Err(anyhow!(
                    "unable to prepare context: {} is neither a directory nor a tar archive",
                    a.path
                ));
            }
            let d = unpack_context(&store, &data)?;
            tmp.0 = Some(d.clone());
            d
        }
    };
    let (df_name, df_path): (String, Option<PathBuf>) = match a.file.as_deref() {
        Some("-") => {
            let data = read_stdin()?;
            dockerfile_text =
                Some(String::from_utf8(data).context("the Dockerfile on stdin is not UTF-8")?);
            ("Dockerfile".into(), None)
        }
        Some(f) => {
            let p = if Path::new(f).is_absolute() || a.path == "-" {
                PathBuf::from(f)
            } else {
                // docker: -f is relative to the working directory.
                PathBuf::from(f)
            };
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.to_string());
            (name, Some(p))
        }
        None if dockerfile_text.is_some() => ("Dockerfile".into(), None),
        None => {
            let p = context.join("Dockerfile");
            let p = if p.exists() || !context.join("dockerfile").exists() {
                p
            } else {
                context.join("dockerfile")
            };
            ("Dockerfile".into(), Some(p))
        }
    };
    let dockerfile = match (dockerfile_text, &df_path) {
        (Some(t), _) => t,
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|e| anyhow!("failed to read dockerfile: open {}: {e}", p.display()))?,
        (None, None) => unreachable!("a Dockerfile source is always chosen"),
    };
    // .dockerignore: <Dockerfile>.dockerignore beside a named Dockerfile wins.
    let mut ignore_text = String::new();
    let beside = df_path.as_ref().map(|p| {
        let mut s = p.as_os_str().to_owned();
        s.push(".dockerignore");
        PathBuf::from(s)
    });
    for cand in beside
        .into_iter()
        .chain(std::iter::once(context.join(".dockerignore")))
    {
        if let Ok(t) = std::fs::read_to_string(&cand) {
            ignore_text = t;
            break;
        }
    }
    let ignore = skiff_build::ignore::Matcher::parse(&ignore_text)
        .map_err(|e| anyhow!(".dockerignore: {e}"))?;
    let mut build_args = BTreeMap::new();
    for ba in &a.build_arg {
        match ba.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(ba) {
                    build_args.insert(ba.clone(), v);
                }
            }
        }
    }
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let runroot = cli
        .runroot
        .clone()
        .unwrap_or_else(|| skiff_engine::default_runroot(&cli.root));
    // Base images: the local one, else (and always with --pull, once per name) pulled as
    // `docker build` does.
    let pulled = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
    let resolve =
        |s: &Store, name: &str| -> std::result::Result<skiff_image::store::ImageRecord, String> {
            let again = pulled.lock().map(|p| p.contains(name)).unwrap_or(false);
            if !a.pull || again {
                if let Ok(img) = crate::images::resolve(s, name) {
                    return Ok(img);
                }
                if again {
                    return Err(format!("No such image: {name}"));
                }
            }
            if name.starts_with("sha256:") || names::Name::parse(name).is_err() {
                return crate::images::resolve(s, name).map_err(|e| e.to_string());
            }
            if let Ok(mut p) = pulled.lock() {
                p.insert(name.to_string());
            }
            pull_quietly(s, name).map_err(|e| crate::error_text(&e))?;
            crate::images::resolve(s, name).map_err(|e| e.to_string())
        };
    let o = BuildOptions {
        root: cli.root.clone(),
        runroot,
        context,
        dockerfile_name: df_name,
        dockerfile,
        ignore,
        target: a.target.clone(),
        build_args,
        labels,
        tags,
        no_cache: a.no_cache,
        host_network,
        secrets,
        contexts,
        no_cache_filter: a.no_cache_filter.clone(),
        resolve: &resolve,
    };
    let quiet = a.quiet || progress == "quiet";
    let rec = if quiet {
        skiff_build::build(&store, &o, &mut Quiet)
    } else if progress == "tty"
        || (progress == "auto" && std::io::IsTerminal::is_terminal(&std::io::stderr()))
    {
        let mut p = Tty::new(std::io::stderr());
        let r = skiff_build::build(&store, &o, &mut p);
        p.finish();
        r
    } else {
        let mut p = Plain::new(std::io::stderr());
        let r = skiff_build::build(&store, &o, &mut p);
        if let Err(e) = &r {
            if !matches!(e, BuildError::RunFailed { .. }) {
                p.warn("");
            }
        }
        r
    }?;
    for out in &outputs {
        export(&store, &rec, out)?;
    }
    if let Some(f) = &a.metadata_file {
        let md = serde_json::json!({
            "containerimage.config.digest": rec.id.as_str(),
            "containerimage.digest": rec.manifest_digest.as_str(),
            "containerimage.descriptor": {
                "mediaType": rec.manifest_media_type,
                "digest": rec.manifest_digest.as_str(),
                "size": rec.manifest_size,
            },
            "image.name": rec.tags.join(","),
        });
        let text = serde_json::to_vec_pretty(&md)?;
        perms::write_file(f, &text, 0o600)
            .with_context(|| format!("write the build metadata to {}", f.display()))?;
    }
    if let Some(f) = &a.iidfile {
        perms::write_file(f, rec.id.as_str().as_bytes(), 0o600)
            .with_context(|| format!("write the image id to {}", f.display()))?;
    }
    if a.quiet {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", rec.id);
    }
    Ok(0)
}

fn export(
    store: &Store,
    rec: &skiff_image::store::ImageRecord,
    out: &skiff_build::export::Output,
) -> Result<()> {
    use skiff_build::export::Output;
    let to = |dest: &str, f: &mut dyn FnMut(&mut dyn Write) -> Result<()>| -> Result<()> {
        if dest == "-" {
            let mut o = std::io::stdout().lock();
            f(&mut o)?;
            o.flush()?;
            Ok(())
        } else {
            let mut file = skiff_engine::outfile::OutputFile::create(Path::new(dest), 0o600)
                .with_context(|| format!("--output {dest}"))?;
            f(&mut file)?;
            file.commit().with_context(|| format!("--output {dest}"))?;
            Ok(())
        }
    };
    match out {
        Output::Local(d) => skiff_build::export::to_dir(store, rec, d)?,
        Output::Tar(dest) => to(dest, &mut |w| {
            Ok(skiff_build::export::to_tar(store, rec, w)?)
        })?,
        Output::Archive { oci, dest } => {
            let format = if *oci {
                skiff_image::archive::ArchiveFormat::Oci
            } else {
                skiff_image::archive::ArchiveFormat::Docker
            };
            let items = vec![(rec.clone(), rec.tags.clone())];
            to(dest, &mut |w| {
                Ok(skiff_image::archive::save(store, &items, format, w)?)
            })?
        }
        Output::Image(names) => {
            for n in names {
                let full = names::normalize(n).map_err(|e| anyhow!("--output name {n:?}: {e}"))?;
                store.tag(&rec.id, &full)?;
            }
        }
    }
    Ok(())
}

/// Pulls `name` with its output on stderr (stdout is the image id's with -q); one pull at a
/// time, as stdout is redirected for the process while it runs.
fn pull_quietly(store: &Store, name: &str) -> Result<()> {
    static PULL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PULL.lock();
    let _ = std::io::stdout().flush();
    // SAFETY: dup/dup2 on the standard descriptors; restored below.
    let saved = unsafe { libc::dup(1) };
    // SAFETY: as above.
    unsafe { libc::dup2(2, 1) };
    let r = crate::registry::pull(
        store,
        &crate::images::PullArgs {
            all_tags: false,
            platform: None,
            quiet: true,
            insecure: false,
            disable_content_trust: true,
            name: name.to_string(),
        },
    );
    let _ = std::io::stdout().flush();
    if saved >= 0 {
        // SAFETY: restoring stdout from our dup, then closing the dup.
        unsafe {
            libc::dup2(saved, 1);
            libc::close(saved);
        }
    }
    r.map(|_| ())
}

/// Runs `builder prune|du`.
pub fn builder(cli: &Cli, c: &BuilderCommand) -> Result<i32> {
    let cache = skiff_build::cache::Cache::open(&cli.root)?;
    match c {
        BuilderCommand::Prune(a) => {
            // -a/-f: there is no dangling/used distinction to make and no prompt to skip.
            let _ = (a.all, a.force);
            let mut before = None;
            for f in &a.filter {
                match f.split_once('=') {
                    Some(("until", v)) => {
                        let ns = skiff_image::time::parse_go_duration_ns(v)
                            .map_err(|e| anyhow!("--filter until={v}: {e}"))?;
                        before = Some(skiff_image::time::now_unix() - ns / 1_000_000_000);
                    }
                    _ => {
                        return Err(anyhow!(
                            "invalid filter {f:?}: only until=DURATION is supported"
                        ))
                    }
                }
            }
            let (_, bytes) = cache.prune(before)?;
            if before.is_none() {
                // RUN --mount=type=cache directories go too (each under its lock).
                let dir = cli.root.join("builder").join("cache");
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".lock") || name.starts_with('.') {
                            continue;
                        }
                        let lock = perms::lock_file(&dir.join(format!("{name}.lock")))?;
                        sys::flock(std::os::fd::AsFd::as_fd(&lock), true, false)?;
                        sys::remove_all(&e.path())
                            .with_context(|| format!("remove {}", e.path().display()))?;
                    }
                }
            }
            let store = Store::open(&cli.root)?;
            let gc = store.gc()?;
            println!(
                "Total:\t{}",
                skiff_image::time::human_size(bytes.max(gc.bytes))
            );
            Ok(0)
        }
        BuilderCommand::Du(a) => {
            let list = cache.list()?;
            let mut out = std::io::stdout().lock();
            let mut total = 0;
            if a.verbose {
                for e in &list {
                    writeln!(
                        out,
                        "ID:\t\t{}\nDescription:\t{}\nSize:\t\t{}\nCreated at:\t{}\nLast used:\t{}\n",
                        &e.key[..25.min(e.key.len())],
                        e.description,
                        skiff_image::time::human_size(e.size),
                        skiff_image::time::rfc3339(e.created),
                        skiff_image::time::ago(e.last_used),
                    )?;
                }
            } else {
                writeln!(
                    out,
                    "{:<28}{:<13}{:<10}LAST ACCESSED",
                    "ID", "RECLAIMABLE", "SIZE"
                )?;
                for e in &list {
                    writeln!(
                        out,
                        "{:<28}{:<13}{:<10}{}",
                        &e.key[..25.min(e.key.len())],
                        "true",
                        skiff_image::time::human_size(e.size),
                        skiff_image::time::ago(e.last_used)
                    )?;
                }
            }
            for e in &list {
                total += e.size;
            }
            writeln!(
                out,
                "Shared:\t\t0B\nPrivate:\t{}\nReclaimable:\t{}\nTotal:\t\t{}",
                skiff_image::time::human_size(total),
                skiff_image::time::human_size(total),
                skiff_image::time::human_size(total)
            )?;
            Ok(0)
        }
    }
}
