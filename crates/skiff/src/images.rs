//! The image commands: `images`, `image ls/inspect/rm/tag/history/save/load/import/prune`,
//! `pull`, `push`, `login`, `logout`, `manifest inspect`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use skiff_engine::outfile::OutputFile;
use skiff_image::names::{self, familiar, split_tag};
use skiff_image::store::ImageRecord;
use skiff_image::{archive, import, time, Digest, Platform, Store};

use crate::template::{go_format, headers, Template};

/// docker's `images` table headers (formatter.newImageContext).
const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// docker's `history` table headers.
const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];
use crate::{Cli, Command};

/// `skiff image ...`
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove", visible_alias = "rmi")]
    Rm(RmArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

/// `skiff manifest ...`
#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list
    Inspect(ManifestInspectArgs),
}

/// Flags of `images` / `image ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Repository[:tag] to list
    pub reference: Option<String>,
}

/// Flags of `image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Flags of `rmi` / `image rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    /// Images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Flags of `tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// Flags of `history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Image
    pub image: String,
}

/// Flags of `save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format: docker (docker-archive, also a valid OCI layout) or oci (oci-archive only)
    #[arg(long, default_value = "docker")]
    pub format: String,
    /// Images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Flags of `load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// Flags of `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|- (a tarball, or a directory)
    pub source: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// Flags of `image prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Flags of `pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Use plain HTTP (and accept any certificate) for this registry
    #[arg(long)]
    pub insecure: bool,
    /// Skip image verification (accepted for docker compatibility; skiff has no content trust)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// Flags of `push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Use plain HTTP (and accept any certificate) for this registry
    #[arg(long)]
    pub insecure: bool,
    /// Skip image signing (accepted for docker compatibility; skiff has no content trust)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// NAME[:TAG]
    pub name: String,
}

/// Flags of `login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Use plain HTTP for this registry
    #[arg(long)]
    pub insecure: bool,
    /// SERVER
    pub server: Option<String>,
}

/// Flags of `logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// SERVER
    pub server: Option<String>,
}

/// Flags of `manifest inspect`.
#[derive(Args, Debug)]
pub struct ManifestInspectArgs {
    /// Allow communication with an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Output additional info including layers and platform
    #[arg(short, long)]
    pub verbose: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// Runs an image command; returns the exit code.
pub fn run(cli: &Cli) -> Result<i32> {
    let open = || {
        Store::open(&cli.root).with_context(|| format!("open image store {}", cli.root.display()))
    };
    match &cli.command {
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => ls(&open()?, a),
        Command::Image(ImageCommand::Inspect(a)) => inspect(&open()?, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi(&open()?, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => tag(&open()?, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history(&open()?, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => save(&open()?, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => load(&open()?, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => import_cmd(&open()?, a),
        Command::Image(ImageCommand::Prune(a)) => prune(&open()?, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
            crate::registry::pull(&open()?, a)
        }
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => {
            crate::registry::push(&open()?, a)
        }
        Command::Login(a) => crate::registry::login(a),
        Command::Logout(a) => crate::registry::logout(a),
        Command::Manifest(ManifestCommand::Inspect(a)) => crate::registry::manifest_inspect(a),
        _ => bail!("internal error: not an image command"),
    }
}

/// Resolves what a user typed (name, name:tag, name@digest, id or id prefix) to an image.
pub fn resolve(store: &Store, s: &str) -> Result<ImageRecord> {
    Ok(store.resolve(s)?)
}

fn id_str(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.short().to_string()
    }
}

fn glob_match(pat: &str, s: &str) -> bool {
    // path.Match semantics for '*' (not crossing '/') and '?'.
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

fn labels_of(store: &Store, img: &ImageRecord) -> Map<String, Value> {
    store
        .config(&img.id)
        .ok()
        .and_then(|(c, _)| c.config)
        .and_then(|c| c.get("Labels").cloned())
        .and_then(|l| l.as_object().cloned())
        .unwrap_or_default()
}

fn image_rows(store: &Store, a: &LsArgs) -> Result<Vec<(ImageRecord, Value)>> {
    let mut dangling: Option<bool> = None;
    let mut refs: Vec<String> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        match k {
            "dangling" => {
                dangling = Some(match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}'"),
                })
            }
            "reference" => refs.push(v.to_string()),
            "label" => labels.push(v.to_string()),
            other => bail!("invalid filter '{other}'"),
        }
    }
    if let Some(r) = &a.reference {
        refs.push(r.clone());
    }
    let mut rows = Vec::new();
    for img in store.list()? {
        if let Some(d) = dangling {
            if d != img.tags.is_empty() {
                continue;
            }
        }
        if !labels.is_empty() {
            let l = labels_of(store, &img);
            let ok = labels.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => l.get(k).and_then(Value::as_str) == Some(v),
                None => l.contains_key(f),
            });
            if !ok {
                continue;
            }
        }
        let mut entries: Vec<(String, String)> = img.tags.iter().map(|t| split_tag(t)).collect();
        if entries.is_empty() {
            if img.repo_digests.is_empty() {
                entries.push(("<none>".into(), "<none>".into()));
            } else {
                for rd in &img.repo_digests {
                    let repo = rd.split_once('@').map(|x| x.0).unwrap_or(rd);
                    let e = (familiar(repo), "<none>".to_string());
                    if !entries.contains(&e) {
                        entries.push(e);
                    }
                }
            }
        }
        for (repo, tag) in entries {
            if !refs.is_empty() {
                let full = format!("{repo}:{tag}");
                if !refs
                    .iter()
                    .any(|p| glob_match(p, &repo) || glob_match(p, &full))
                {
                    continue;
                }
            }
            let digest = img
                .repo_digests
                .iter()
                .find(|rd| rd.split_once('@').map(|x| familiar(x.0)) == Some(repo.clone()))
                .and_then(|rd| rd.split_once('@').map(|x| x.1.to_string()))
                .unwrap_or_else(|| "<none>".into());
            let size = time::human_size(img.size);
            let v = json!({
                "Containers": "N/A",
                "CreatedAt": time::docker_date(img.created),
                "CreatedSince": time::ago(img.created),
                "Digest": digest,
                "ID": id_str(&img.id, a.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            });
            rows.push((img.clone(), v));
        }
    }
    Ok(rows)
}

fn ls(store: &Store, a: &LsArgs) -> Result<i32> {
    let rows = image_rows(store, a)?;
    let mut out = io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for (img, _) in &rows {
            let id = id_str(&img.id, a.no_trunc);
            if seen.insert(id.clone()) {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(0);
    }
    // docker's defaults (formatter.NewImageFormat), `--digests` adding the digest column.
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
    };
    let format = match a.format.as_deref() {
        Some(f)
            if f.starts_with("table")
                && f != "table"
                && a.digests
                && !f.contains("{{.Digest}}") =>
        {
            Some(format!("{f}\t{{{{.Digest}}}}"))
        }
        f => f.map(str::to_string),
    };
    let t = Template::or_default(format.as_deref(), default)?.typed("*formatter.imageContext");
    let values: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    write!(out, "{}", t.render_all(&values, &headers(IMAGE_HEADERS))?)?;
    Ok(0)
}

/// Docker's `image inspect` JSON for one image (the image crate's, shared with `skiff serve`).
pub fn inspect_json(store: &Store, img: &ImageRecord) -> Result<Value> {
    Ok(skiff_image::inspect::image_json(store, img)?)
}

fn inspect(store: &Store, a: &InspectArgs) -> Result<i32> {
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for s in &a.images {
        match resolve(store, s) {
            Ok(img) => values.push(inspect_json(store, &img)?),
            Err(e) => missing.push(e.to_string()),
        }
    }
    crate::template::print_inspect(&values, a.format.as_deref(), &missing)
}

fn rmi(store: &Store, a: &RmArgs) -> Result<i32> {
    let mut failed = false;
    let mut out = io::stdout().lock();
    for s in &a.images {
        // The same removal as `DELETE /images/{name}` (skiff serve).
        match skiff_engine::api::remove_image(store, s, a.force) {
            Ok(lines) => {
                for (k, v) in lines {
                    writeln!(out, "{k}: {v}")?;
                }
            }
            Err(e) => {
                eprintln!(
                    "Error response from daemon: {}",
                    crate::error_text(&anyhow::Error::from(e))
                );
                failed = true;
            }
        }
    }
    store.gc()?;
    Ok(if failed { 1 } else { 0 })
}

fn tag(store: &Store, a: &TagArgs) -> Result<i32> {
    let img = resolve(store, &a.source)?;
    let target = names::normalize(&a.target)?;
    store.tag(&img.id, &target)?;
    image_event(store, "tag", &img.id, &familiar(&target));
    Ok(0)
}

/// Logs docker's image event (`skiff events`); best effort, never fails the command.
pub fn image_event(store: &Store, action: &str, id: &Digest, name: &str) {
    let ev = skiff_engine::events::Event::new("image", action, &id.to_string()).attr("name", name);
    let _ = skiff_engine::events::emit(store.root(), &ev);
}

fn history(store: &Store, a: &HistoryArgs) -> Result<i32> {
    let img = resolve(store, &a.image)?;
    let mut rows = Vec::new();
    for h in skiff_image::inspect::history(store, &img)? {
        let created = h["Created"].as_i64().unwrap_or(0);
        let size = h["Size"].as_u64().unwrap_or(0);
        let by = h["CreatedBy"].as_str().unwrap_or("").to_string();
        let by_short = if !a.no_trunc && by.chars().count() > 45 {
            format!("{}…", by.chars().take(44).collect::<String>())
        } else {
            by.clone()
        };
        let id = if h["Id"] == "<missing>" {
            "<missing>".into()
        } else {
            id_str(&img.id, a.no_trunc)
        };
        rows.push(json!({
            "ID": id,
            "CreatedSince": if a.human { time::ago(created) } else { time::rfc3339(created) },
            "CreatedAt": time::rfc3339(created),
            "CreatedBy": by_short,
            "Size": if a.human { time::human_size(size) } else { size.to_string() },
            "Comment": h["Comment"].as_str().unwrap_or(""),
        }));
    }
    let mut out = io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", go_format(&r["ID"]))?;
        }
        return Ok(0);
    }
    let t = Template::or_default(
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?
    .typed("*formatter.historyContext");
    write!(out, "{}", t.render_all(&rows, &headers(HISTORY_HEADERS))?)?;
    Ok(0)
}

fn save(store: &Store, a: &SaveArgs) -> Result<i32> {
    let format = match a.format.as_str() {
        "docker" | "docker-archive" => archive::ArchiveFormat::Docker,
        "oci" | "oci-archive" => archive::ArchiveFormat::Oci,
        other => bail!("unknown archive format {other:?} (docker or oci)"),
    };
    let save_items = || -> Result<Vec<_>> {
        let mut items = Vec::new();
        for s in &a.images {
            let img = resolve(store, s)?;
            // A name saves that name; an id saves the image with all of its names.
            let names = match names::normalize(s).ok().filter(|n| img.tags.contains(n)) {
                Some(n) => vec![n],
                None => img.tags.clone(),
            };
            items.push((img, names));
        }
        Ok(items)
    };
    match a.output.as_deref().filter(|p| p.as_os_str() != "-") {
        Some(p) => {
            // Docker's order: the output path is checked before any image is looked at.
            let mut out = OutputFile::create(p, 0o600).context("save")?;
            let items = save_items()?;
            archive::save(store, &items, format, &mut out)?;
            out.commit().context("save")?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let items = save_items()?;
            archive::save(
                store,
                &items,
                format,
                io::BufWriter::new(io::stdout().lock()),
            )?;
        }
    }
    Ok(0)
}

fn load(store: &Store, a: &LoadArgs) -> Result<i32> {
    let input: Box<dyn Read + Send> = match &a.input {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?)
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(io::stdin())
        }
    };
    let loaded = archive::load(store, input)?;
    for l in &loaded {
        image_event(store, "load", &l.id, &l.id.to_string());
    }
    if !a.quiet {
        let mut out = io::stdout().lock();
        for l in loaded {
            if l.names.is_empty() {
                writeln!(out, "Loaded image ID: {}", l.id)?;
            }
            for n in l.names {
                writeln!(out, "Loaded image: {}", familiar(&n))?;
            }
        }
    }
    Ok(0)
}

fn import_cmd(store: &Store, a: &ImportArgs) -> Result<i32> {
    let src = if a.source == "-" {
        import::ImportSource::Tarball(Box::new(io::stdin()))
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        bail!("importing from a URL is not supported; download it and import the file");
    } else {
        let p = PathBuf::from(&a.source);
        if p.is_dir() {
            import::ImportSource::Dir(p)
        } else {
            let f = std::fs::File::open(&p).with_context(|| format!("open {}", p.display()))?;
            import::ImportSource::Tarball(Box::new(io::BufReader::new(f)))
        }
    };
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let tags = match &a.reference {
        Some(r) => vec![names::normalize(r)?],
        None => vec![],
    };
    let opts = import::ImportOptions {
        platform,
        changes: a.change.clone(),
        // docker's CLI streams a local file as `-`, so its images say "Imported from -"; only a
        // URL is named.
        message: a.message.clone().or_else(|| {
            let url = a.source.starts_with("http://") || a.source.starts_with("https://");
            Some(format!(
                "Imported from {}",
                if url { a.source.as_str() } else { "-" }
            ))
        }),
        source_name: if a.source == "-" {
            "-".into()
        } else {
            a.source.clone()
        },
        tags,
    };
    let img = import::import(store, src, &opts)?;
    for t in &img.tags {
        image_event(store, "tag", &img.id, &familiar(t));
    }
    image_event(store, "import", &img.id, &img.id.to_string());
    println!("{}", img.id);
    Ok(0)
}

fn prune(store: &Store, a: &PruneArgs) -> Result<i32> {
    if let Some(f) = a.filter.first() {
        bail!("invalid filter '{f}': image prune filters are not supported yet");
    }
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut deleted = Vec::new();
    for img in store.list()? {
        let used = !skiff_engine::db::containers_using_image(store.root(), &img.id.to_string())?
            .is_empty();
        if (img.tags.is_empty() || a.all) && !used {
            for t in &img.tags {
                store.untag(t)?;
                image_event(store, "untag", &img.id, &img.id.to_string());
                deleted.push(format!("untagged: {}", familiar(t)));
            }
            store.delete_image(&img.id)?;
            image_event(store, "delete", &img.id, &img.id.to_string());
            deleted.push(format!("deleted: {}", img.id));
        }
    }
    let gc = store.gc()?;
    let mut out = io::stdout().lock();
    if !deleted.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for d in &deleted {
            writeln!(out, "{d}")?;
        }
        writeln!(out)?;
    }
    let mut reclaimed = gc.bytes;
    if !gc.ran {
        reclaimed = 0;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        time::human_size(reclaimed)
    )?;
    Ok(0)
}
