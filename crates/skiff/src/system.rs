//! `skiff version`, `info`, `events`, `system df|info|events`, `completion`, and the hidden
//! `generate-man`: reports in docker's shapes, built from the engine's data.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use serde_json::{json, Value};
use skiff_engine::events::{self, EventFilter};
use skiff_engine::info::{self, ContainerSummary};
use skiff_engine::volumes::Volumes;
use skiff_image::time::human_size;
use skiff_image::Store;

use crate::template::{headers, tabwrite_rows, Template};
use crate::Cli;

/// `skiff system ...`
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show docker-style disk usage
    Df(DfArgs),
    /// Get real time events from the engine
    Events(EventsArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Remove unused data
    Prune(crate::fscmds::SystemPruneArgs),
    /// Compare the state database with the disk; --repair rebuilds lost records from disk
    Check(CheckArgs),
    /// Start containers whose restart policy says they run, after a reboot or a dead monitor
    Boot(BootArgs),
    /// Rootless: stop the pause process holding the user's namespace, so the next command makes
    /// a fresh one (after /etc/subuid or /etc/subgid changed)
    Migrate,
}

/// Flags of `system boot`.
#[derive(Args, Debug)]
pub struct BootArgs {
    /// Print how to install the boot units (systemd, OpenRC, sysvinit) instead of booting
    #[arg(long)]
    pub install: bool,
    /// Print one boot unit (systemd, openrc, initd) to stdout instead of booting
    #[arg(long, value_name = "KIND")]
    pub unit: Option<String>,
}

/// The boot units of `contrib/`, as shipped: (kind, file name, text, install path, mode, enable).
const UNITS: [(&str, &str, &str, &str, &str, &str); 3] = [
    (
        "systemd",
        "skiff-boot.service",
        include_str!("../../../contrib/skiff-boot.service"),
        "/etc/systemd/system/skiff-boot.service",
        "0644",
        "systemctl daemon-reload && systemctl enable skiff-boot.service",
    ),
    (
        "openrc",
        "skiff-boot.openrc",
        include_str!("../../../contrib/skiff-boot.openrc"),
        "/etc/init.d/skiff-boot",
        "0755",
        "rc-update add skiff-boot default",
    ),
    (
        "initd",
        "skiff-boot.initd",
        include_str!("../../../contrib/skiff-boot.initd"),
        "/etc/init.d/skiff-boot",
        "0755",
        "update-rc.d skiff-boot defaults",
    ),
];

/// Flags of `system check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Rebuild container, image and volume records from disk (a damaged database is moved aside)
    #[arg(long)]
    pub repair: bool,
}

/// Flags of `version`.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Flags of `info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Flags of `system df`.
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

/// Flags of `events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

/// Shells `completion` knows.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    /// GNU bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

/// Flags of `completion`.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to write a completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `generate-man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the man pages (section 1) into
    pub dir: PathBuf,
}

fn os_arch() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux".into(), arch.into())
}

fn version_json() -> Value {
    let (os, arch) = os_arch();
    json!({
        "Client": {
            "Platform": {"Name": "skiff"},
            "Version": info::VERSION,
            "ApiVersion": info::API_VERSION,
            "DefaultAPIVersion": info::API_VERSION,
            "GoVersion": info::RUST_VERSION,
            "RustVersion": info::RUST_VERSION,
            "Os": os,
            "Arch": arch,
            "Context": "default",
        },
        "Server": info::server_version(info::API_VERSION),
    })
}

fn version(a: &VersionArgs) -> Result<i32> {
    let v = version_json();
    if let Some(f) = &a.format {
        println!(
            "{}",
            Template::new(f)?.typed("command.VersionInfo").render(&v)?
        );
        return Ok(0);
    }
    let c = &v["Client"];
    let s = &v["Server"];
    let mut out = String::new();
    let kv = |out: &mut String, indent: usize, k: &str, val: &str| {
        let w = 20 - indent;
        out.push_str(&format!("{}{k:<w$}{val}\n", " ".repeat(indent)));
    };
    out.push_str("Client:\n");
    kv(&mut out, 1, "Version:", c["Version"].as_str().unwrap_or(""));
    kv(&mut out, 1, "API version:", info::API_VERSION);
    kv(&mut out, 1, "Rust version:", info::RUST_VERSION);
    kv(
        &mut out,
        1,
        "OS/Arch:",
        &format!(
            "{}/{}",
            c["Os"].as_str().unwrap_or(""),
            c["Arch"].as_str().unwrap_or("")
        ),
    );
    kv(&mut out, 1, "Context:", "default");
    out.push_str("\nServer: skiff Engine (daemonless)\n Engine:\n");
    kv(&mut out, 2, "Version:", s["Version"].as_str().unwrap_or(""));
    kv(
        &mut out,
        2,
        "API version:",
        &format!(
            "{} (minimum version {})",
            info::API_VERSION,
            info::MIN_API_VERSION
        ),
    );
    kv(&mut out, 2, "Rust version:", info::RUST_VERSION);
    kv(
        &mut out,
        2,
        "OS/Arch:",
        &format!(
            "{}/{}",
            s["Os"].as_str().unwrap_or(""),
            s["Arch"].as_str().unwrap_or("")
        ),
    );
    kv(&mut out, 2, "Experimental:", "false");
    print!("{out}");
    Ok(0)
}

/// Images with their layer chain ids and each layer's size (for shared/unique sizes).
struct ImageUsage {
    rec: skiff_image::store::ImageRecord,
    layers: Vec<(skiff_image::Digest, u64)>,
}

fn image_usage(root: &Path) -> Result<Vec<ImageUsage>> {
    let store =
        Store::open(root).with_context(|| format!("open image store {}", root.display()))?;
    let mut out = Vec::new();
    for rec in store.list()? {
        let layers = match store.config(&rec.id) {
            Ok((cfg, _)) => skiff_image::Digest::chain_ids(&cfg.rootfs.diff_ids)
                .into_iter()
                .map(|c| {
                    let size = store.snapshot_meta(&c).map(|m| m.size).unwrap_or(0);
                    (c, size)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        out.push(ImageUsage { rec, layers });
    }
    Ok(out)
}

fn container_rows(root: &Path) -> Vec<ContainerSummary> {
    info::open_db(root)
        .map(|db| info::containers(&db))
        .unwrap_or_default()
}

fn info_json(root: &Path) -> Result<Value> {
    // The same object as `GET /info` (skiff serve).
    Ok(info::info_json(root)?)
}

fn info_cmd(cli: &Cli, a: &InfoArgs) -> Result<i32> {
    let v = info_json(&cli.root)?;
    if let Some(f) = &a.format {
        println!("{}", Template::new(f)?.typed("system.Info").render(&v)?);
        return Ok(0);
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut o = String::new();
    o.push_str("Client:\n");
    o.push_str(&format!(" Version:    {}\n", info::VERSION));
    o.push_str(" Context:    default\n Debug Mode: false\n\nServer:\n");
    o.push_str(&format!(" Containers: {}\n", s("Containers")));
    o.push_str(&format!("  Running: {}\n", s("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", s("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", s("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", s("Images")));
    o.push_str(&format!(" Server Version: {}\n", s("ServerVersion")));
    o.push_str(" Storage Driver: overlay2\n");
    if let Some(ds) = v["DriverStatus"].as_array() {
        for pair in ds {
            o.push_str(&format!(
                "  {}: {}\n",
                pair[0].as_str().unwrap_or(""),
                pair[1].as_str().unwrap_or("")
            ));
        }
    }
    o.push_str(" Logging Driver: json-file\n");
    o.push_str(&format!(" Cgroup Driver: {}\n", s("CgroupDriver")));
    o.push_str(&format!(" Cgroup Version: {}\n", s("CgroupVersion")));
    o.push_str(" Plugins:\n  Volume: local\n  Network: host null\n  Log: json-file\n");
    // docker lists the runtimes' names in order, space-separated.
    let runtimes: Vec<&str> = v["Runtimes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    o.push_str(&format!(
        " Swarm: inactive\n Runtimes: {}\n Default Runtime: {}\n",
        runtimes.join(" "),
        s("DefaultRuntime")
    ));
    o.push_str(" Init Binary: docker-init\n");
    o.push_str(" Security Options:\n  seccomp\n   Profile: builtin\n");
    if v["SecurityOptions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "name=rootless"))
    {
        o.push_str("  rootless\n");
    }
    o.push_str(&format!(" Kernel Version: {}\n", s("KernelVersion")));
    o.push_str(&format!(" Operating System: {}\n", s("OperatingSystem")));
    o.push_str(" OSType: linux\n");
    o.push_str(&format!(" Architecture: {}\n", s("Architecture")));
    o.push_str(&format!(" CPUs: {}\n", s("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        info::bytes_size(v["MemTotal"].as_u64().unwrap_or(0))
    ));
    o.push_str(&format!(" Name: {}\n", s("Name")));
    o.push_str(&format!(" Docker Root Dir: {}\n", s("DockerRootDir")));
    o.push_str(" Debug Mode: false\n Experimental: false\n Live Restore Enabled: false\n");
    print!("{o}");
    Ok(0)
}

fn pct(part: u64, total: u64) -> String {
    if total == 0 {
        human_size(part)
    } else {
        format!(
            "{} ({}%)",
            human_size(part),
            (part as f64 * 100.0 / total as f64).round() as u64
        )
    }
}

fn df(cli: &Cli, a: &DfArgs) -> Result<i32> {
    let root = &cli.root;
    let usage = image_usage(root)?;
    let images: Vec<&skiff_image::store::ImageRecord> = usage.iter().map(|u| &u.rec).collect();
    let ctrs = container_rows(root);
    let vols = Volumes::open(root)?;
    let vlist = vols.list()?;

    // Layers shared between images count once in the totals (docker's rule); "reclaimable" is
    // what removing every image no container uses would free.
    let used_images: std::collections::BTreeSet<&str> =
        ctrs.iter().map(|c| c.image.as_str()).collect();
    let in_use = |u: &ImageUsage| used_images.contains(u.rec.id.to_string().as_str());
    let mut layer_users: std::collections::BTreeMap<&skiff_image::Digest, (u64, usize)> =
        Default::default();
    for u in &usage {
        for (c, size) in &u.layers {
            layer_users.entry(c).or_insert((*size, 0)).1 += 1;
        }
    }
    let img_total: u64 = layer_users.values().map(|(s, _)| s).sum();
    let kept: std::collections::BTreeSet<&skiff_image::Digest> = usage
        .iter()
        .filter(|u| in_use(u))
        .flat_map(|u| u.layers.iter().map(|(c, _)| c))
        .collect();
    let img_reclaim: u64 = layer_users
        .iter()
        .filter(|(c, _)| !kept.contains(*c))
        .map(|(_, (s, _))| s)
        .sum();
    let img_active = usage.iter().filter(|u| in_use(u)).count() as u64;
    let shared_of = |u: &ImageUsage| -> u64 {
        u.layers
            .iter()
            .filter(|(c, _)| layer_users.get(c).is_some_and(|(_, n)| *n > 1))
            .map(|(_, s)| s)
            .sum()
    };

    let ctr_sizes: Vec<(String, u64, bool)> = ctrs
        .iter()
        .map(|c| {
            let upper = root.join("containers").join(&c.id).join("upper");
            let active = matches!(c.status.as_str(), "running" | "paused" | "restarting");
            (
                c.id.clone(),
                skiff_engine::volumes::disk_usage(&upper),
                active,
            )
        })
        .collect();
    let ctr_total: u64 = ctr_sizes.iter().map(|c| c.1).sum();
    let ctr_active = ctr_sizes.iter().filter(|c| c.2).count() as u64;
    let ctr_reclaim: u64 = ctr_sizes.iter().filter(|c| !c.2).map(|c| c.1).sum();

    let mut vol_rows = Vec::new();
    for v in &vlist {
        let links = vols.users(&v.name)?.len() as u64;
        vol_rows.push((v.name.clone(), links, vols.size(v)));
    }
    let vol_total: u64 = vol_rows.iter().map(|v| v.2).sum();
    let vol_active = vol_rows.iter().filter(|v| v.1 > 0).count() as u64;
    let vol_reclaim: u64 = vol_rows.iter().filter(|v| v.1 == 0).map(|v| v.2).sum();

    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.to_string(),
               "Size": human_size(img_total), "Reclaimable": pct(img_reclaim, img_total)}),
        json!({"Type": "Containers", "TotalCount": ctrs.len().to_string(), "Active": ctr_active.to_string(),
               "Size": human_size(ctr_total), "Reclaimable": pct(ctr_reclaim, ctr_total)}),
        json!({"Type": "Local Volumes", "TotalCount": vlist.len().to_string(), "Active": vol_active.to_string(),
               "Size": human_size(vol_total), "Reclaimable": pct(vol_reclaim, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0",
               "Size": "0B", "Reclaimable": "0B"}),
    ];
    let mut out = io::stdout().lock();
    if let Some(f) = &a.format {
        let t = Template::or_default(
            Some(f),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )?
        .typed("*formatter.diskUsageImagesContext");
        let h = headers(&[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ]);
        write!(out, "{}", t.render_all(&rows, &h)?)?;
        return Ok(0);
    }
    if !a.verbose {
        let mut lines = vec!["TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE".to_string()];
        for r in &rows {
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}",
                r["Type"].as_str().unwrap_or(""),
                r["TotalCount"].as_str().unwrap_or(""),
                r["Active"].as_str().unwrap_or(""),
                r["Size"].as_str().unwrap_or(""),
                r["Reclaimable"].as_str().unwrap_or("")
            ));
        }
        writeln!(out, "{}", tabwrite_rows(&lines))?;
        return Ok(0);
    }
    // -v: one table per kind, like docker.
    writeln!(out, "Images space usage:\n")?;
    let mut lines = vec![
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"
            .to_string(),
    ];
    for u in &usage {
        let i = &u.rec;
        let n = ctrs.iter().filter(|c| c.image == i.id.to_string()).count();
        let shared = shared_of(u);
        let names: Vec<(String, String)> = if i.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.tags
                .iter()
                .map(|t| skiff_image::names::split_tag(t))
                .collect()
        };
        for (repo, tag) in names {
            lines.push(format!(
                "{repo}\t{tag}\t{}\t{}\t{}\t{}\t{}\t{n}",
                i.id.short(),
                skiff_image::time::ago(i.created),
                human_size(i.size),
                human_size(shared),
                human_size(i.size.saturating_sub(shared))
            ));
        }
    }
    writeln!(out, "{}\n", tabwrite_rows(&lines))?;
    writeln!(out, "Containers space usage:\n")?;
    let mut lines = vec!["CONTAINER ID\tIMAGE\tSIZE\tSTATUS".to_string()];
    for (c, (_, size, _)) in ctrs.iter().zip(&ctr_sizes) {
        lines.push(format!(
            "{}\t{}\t{}\t{}",
            &c.id[..12.min(c.id.len())],
            c.image
                .trim_start_matches("sha256:")
                .get(..12)
                .unwrap_or(""),
            human_size(*size),
            c.status
        ));
    }
    writeln!(out, "{}\n", tabwrite_rows(&lines))?;
    writeln!(out, "Local Volumes space usage:\n")?;
    let mut lines = vec!["VOLUME NAME\tLINKS\tSIZE".to_string()];
    for (n, l, s) in &vol_rows {
        lines.push(format!("{n}\t{l}\t{}", human_size(*s)));
    }
    writeln!(out, "{}\n", tabwrite_rows(&lines))?;
    writeln!(out, "Build cache usage: 0B")?;
    Ok(0)
}

fn events_cmd(cli: &Cli, a: &EventsArgs) -> Result<i32> {
    let now = events::now_nano();
    let bound = |what: &str, s: &Option<String>| -> Result<Option<i64>> {
        match s {
            None => Ok(None),
            Some(s) => match events::parse_time_bound(s, now) {
                Some(t) => Ok(Some(t)),
                None => bail!("invalid value for --{what}: {s:?} is not a timestamp or duration"),
            },
        }
    };
    let since = bound("since", &a.since)?;
    let until = bound("until", &a.until)?;
    let filter = EventFilter::parse(&a.filter).map_err(anyhow::Error::msg)?;
    let template = a
        .format
        .as_deref()
        .map(|f| Template::new(f).map(|t| t.typed("events.Message")))
        .transpose()?;
    let mut out = io::stdout().lock();
    let mut print = |ev: &events::Event| -> bool {
        if !filter.matches(ev) {
            return true;
        }
        let line = match &template {
            Some(t) => match t.render(&ev.to_docker_json()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("skiff: {e}");
                    return false;
                }
            },
            None => ev.to_line(),
        };
        writeln!(out, "{line}").is_ok() && out.flush().is_ok()
    };
    // Stored events first when a window into the past was asked for.
    if since.is_some() || until.is_some() {
        let upto = until.unwrap_or(now).min(now);
        for ev in events::read(&cli.root, since.unwrap_or(0), upto)? {
            if !print(&ev) {
                return Ok(0);
            }
        }
    }
    if until.is_some_and(|u| u <= now) {
        return Ok(0);
    }
    skiff_image::perms::open_root(&cli.root)
        .with_context(|| format!("create {}", cli.root.display()))?;
    // With a window into the past the live file is read from its start and what `read` already
    // printed is skipped, so nothing written in between is lost.
    let from_start = since.is_some();
    events::follow(&cli.root, from_start, until, |ev| {
        (from_start && ev.time_nano <= now) || print(ev)
    })?;
    Ok(0)
}

fn completion(a: &CompletionArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = io::stdout().lock();
    match a.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "skiff", &mut out);
            out.write_all(BASH_DYNAMIC.as_bytes())?;
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "skiff", &mut out);
            out.write_all(ZSH_DYNAMIC.as_bytes())?;
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "skiff", &mut out);
            out.write_all(FISH_DYNAMIC.as_bytes())?;
        }
    }
    Ok(0)
}

// Dynamic completion of object names: the static scripts (clap_complete) know the commands and
// flags; these wrappers complete the positional words of the commands that take containers,
// images, volumes or networks from the engine itself (`ps`, `images`, `volume ls`, `network ls`
// with `--format`), passing the command line's own --root/--runroot along.

/// bash: `_skiff_dynamic` answers for object names and defers to clap's `_skiff` otherwise.
const BASH_DYNAMIC: &str = r#"
_skiff_names() {
    local kind=$1 i global=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --root|--runroot) global+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}") ;;
        esac
    done
    case "$kind" in
        containers) "${COMP_WORDS[0]}" "${global[@]}" ps -a --format '{{.Names}}' 2>/dev/null ;;
        running) "${COMP_WORDS[0]}" "${global[@]}" ps --format '{{.Names}}' 2>/dev/null ;;
        images) "${COMP_WORDS[0]}" "${global[@]}" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>' ;;
        volumes) "${COMP_WORDS[0]}" "${global[@]}" volume ls -q 2>/dev/null ;;
        networks) "${COMP_WORDS[0]}" "${global[@]}" network ls --format '{{.Name}}' 2>/dev/null ;;
    esac
}
_skiff_dynamic() {
    local cur=${COMP_WORDS[COMP_CWORD]} i w words=() kind=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case "$w" in
            --root|--runroot) ((i++)) ;;
            -*) ;;
            *) words+=("$w") ;;
        esac
    done
    if [[ $cur != -* ]]; then
        case "${words[0]}" in
            start|rm|logs|inspect|port|rename|wait|diff|commit|export|cp|update|explain|debug) kind=containers ;;
            stop|restart|kill|exec|attach|pause|unpause|top|stats) kind=running ;;
            rmi|push|tag|save|history) kind=images ;;
            run|create) [ ${#words[@]} -eq 1 ] && kind=images ;;
            container) case "${words[1]}" in
                start|rm|logs|inspect|port|rename|wait|diff|commit|export|update) kind=containers ;;
                stop|restart|kill|exec|attach|pause|unpause|top|stats) kind=running ;;
                esac ;;
            image) case "${words[1]}" in rm|inspect|push|tag|save|history) kind=images ;; esac ;;
            volume) case "${words[1]}" in rm|inspect) kind=volumes ;; esac ;;
            network) case "${words[1]}" in
                rm|inspect) kind=networks ;;
                connect|disconnect) [ ${#words[@]} -eq 2 ] && kind=networks || kind=containers ;;
                esac ;;
        esac
    fi
    if [ -n "$kind" ]; then
        local IFS=$'
'
        COMPREPLY=($(compgen -W "$(_skiff_names "$kind")" -- "$cur"))
        return 0
    fi
    _skiff "$@"
}
complete -F _skiff_dynamic -o bashdefault -o default skiff
"#;

/// zsh: the same table, answered with compadd before clap's `_skiff`.
const ZSH_DYNAMIC: &str = r#"
_skiff_dynamic() {
    local -a global rest names
    local i kind=""
    for ((i = 2; i < CURRENT; i++)); do
        case "${words[i]}" in
            --root|--runroot) global+=("${words[i]}" "${words[i+1]}"); ((i++)) ;;
            -*) ;;
            *) rest+=("${words[i]}") ;;
        esac
    done
    if [[ ${words[CURRENT]} != -* ]]; then
        case "${rest[1]}" in
            start|rm|logs|inspect|port|rename|wait|diff|commit|export|cp|update|explain|debug) kind=containers ;;
            stop|restart|kill|exec|attach|pause|unpause|top|stats) kind=running ;;
            rmi|push|tag|save|history) kind=images ;;
            run|create) (( ${#rest} == 1 )) && kind=images ;;
            volume) [[ ${rest[2]} == (rm|inspect) ]] && kind=volumes ;;
            network) [[ ${rest[2]} == (rm|inspect) ]] && kind=networks ;;
        esac
    fi
    case "$kind" in
        containers) names=(${(f)"$(${words[1]} $global ps -a --format '{{.Names}}' 2>/dev/null)"}) ;;
        running) names=(${(f)"$(${words[1]} $global ps --format '{{.Names}}' 2>/dev/null)"}) ;;
        images) names=(${(f)"$(${words[1]} $global images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null)"}) ;;
        volumes) names=(${(f)"$(${words[1]} $global volume ls -q 2>/dev/null)"}) ;;
        networks) names=(${(f)"$(${words[1]} $global network ls --format '{{.Name}}' 2>/dev/null)"}) ;;
        *) _skiff "$@"; return ;;
    esac
    compadd -a names
}
compdef _skiff_dynamic skiff
"#;

/// fish: conditions on the subcommand, candidates from the engine.
const FISH_DYNAMIC: &str = r#"
complete -c skiff -n '__fish_seen_subcommand_from start rm logs inspect port rename wait diff commit export cp update explain debug' -f -a '(skiff ps -a --format "{{.Names}}" 2>/dev/null)'
complete -c skiff -n '__fish_seen_subcommand_from stop restart kill exec attach pause unpause top stats' -f -a '(skiff ps --format "{{.Names}}" 2>/dev/null)'
complete -c skiff -n '__fish_seen_subcommand_from rmi push tag save history' -f -a '(skiff images --format "{{.Repository}}:{{.Tag}}" 2>/dev/null)'
"#;

/// Creates `dir` and its missing ancestors with exactly `mode` (not the umask's); existing
/// directories are left as they are.
fn create_dirs(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) =
        d.filter(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
    {
        missing.push(p);
        d = p.parent();
    }
    for p in missing.into_iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `skiff.1` and one page per (nested) subcommand, `skiff-volume-create.1` style.
fn generate_man(a: &ManArgs) -> Result<i32> {
    fn render(cmd: &clap::Command, name: &str, dir: &Path, n: &mut usize) -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        // Man pages are documentation for everyone: 0644, whatever the umask; a symlink or
        // special file already at a page's name is refused, never written through.
        let mut f =
            skiff_engine::outfile::OutputFile::create(&path, 0o644).context("generate-man")?;
        f.write_all(&buf)
            .and_then(|()| f.flush())
            .with_context(|| format!("write {}", path.display()))?;
        f.commit().context("generate-man")?;
        *n += 1;
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            render(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
        }
        Ok(())
    }
    create_dirs(&a.dir, 0o755).with_context(|| format!("create {}", a.dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut n = 0;
    render(&cmd, "skiff", &a.dir, &mut n)?;
    eprintln!("wrote {n} man pages to {}", a.dir.display());
    Ok(0)
}

/// `system check [--repair]`: one line per problem (and per repair action) on stdout; exit 0
/// when the database and the disk agree (after the repair), 1 when problems remain.
fn check_cmd(cli: &Cli, a: &CheckArgs) -> Result<i32> {
    let runroot = cli.runroot.as_deref();
    let problems = if a.repair {
        let rep = skiff_engine::check::repair(&cli.root, runroot)
            .with_context(|| format!("repair {}", cli.root.display()))?;
        let mut out = io::stdout().lock();
        for l in &rep.actions {
            writeln!(out, "{l}")?;
        }
        rep.problems
    } else {
        skiff_engine::check::check(&cli.root, runroot)
    };
    let mut out = io::stdout().lock();
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// `system boot`: reconciles, sweeps and starts what the restart policies say runs (see
/// `skiff_engine::boot`); one `started NAME` line per container on stdout, exit 1 when a start
/// failed. `--install`/`--unit` only print.
fn boot_cmd(cli: &Cli, a: &BootArgs) -> Result<i32> {
    let mut out = io::stdout().lock();
    if let Some(kind) = &a.unit {
        let Some(u) = UNITS.iter().find(|u| u.0 == kind.as_str()) else {
            bail!("unknown unit kind {kind:?}: use systemd, openrc or initd");
        };
        out.write_all(u.2.as_bytes())?;
        return Ok(0);
    }
    if a.install {
        writeln!(
            out,
            "skiff has no daemon: `skiff system boot` must run once at boot. Install one unit:"
        )?;
        for (kind, file, _, dest, mode, enable) in UNITS {
            writeln!(
                out,
                "  {kind:<8} skiff system boot --unit {kind} > {dest} && chmod {mode} {dest} && {enable}"
            )?;
            writeln!(out, "           (the same file as contrib/{file})")?;
        }
        writeln!(
            out,
            "The units run /usr/bin/skiff; edit ExecStart/command if skiff is installed elsewhere."
        )?;
        return Ok(0);
    }
    let e = skiff_engine::Engine::open(&cli.root, cli.runroot.as_deref())?;
    let rep = e
        .boot()
        .with_context(|| format!("boot {}", cli.root.display()))?;
    for (_, name) in &rep.started {
        writeln!(out, "started {name}")?;
    }
    for (name, err) in &rep.failed {
        eprintln!("skiff: boot: start {name}: {err}");
    }
    Ok(if rep.failed.is_empty() { 0 } else { 1 })
}

/// Runs a system-level command; returns the exit code.
pub fn run(cli: &Cli) -> Result<i32> {
    use crate::Command as C;
    match &cli.command {
        C::Version(a) => version(a),
        C::Info(a) | C::System(SystemCommand::Info(a)) => info_cmd(cli, a),
        C::Events(a) | C::System(SystemCommand::Events(a)) => events_cmd(cli, a),
        C::System(SystemCommand::Df(a)) => df(cli, a),
        C::System(SystemCommand::Prune(a)) => Ok(crate::fscmds::run_system_prune(cli, a)),
        C::System(SystemCommand::Check(a)) => check_cmd(cli, a),
        C::System(SystemCommand::Boot(a)) => boot_cmd(cli, a),
        C::Completion(a) => completion(a),
        C::GenerateMan(a) => generate_man(a),
        _ => bail!("internal error: not a system command"),
    }
}
