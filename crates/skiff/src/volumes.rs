//! `skiff volume create/ls/inspect/rm/prune`, shaped like docker's.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skiff_engine::volumes::{label_matches, Volume, VolumeError, Volumes};

use crate::template::Template;
use crate::Cli;

/// `skiff volume ...`
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

/// Flags of `volume create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    pub name_flag: Option<String>,
    /// Volume name
    pub name: Option<String>,
}

/// Flags of `volume ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

/// Flags of `volume inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// Flags of `volume rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    /// Volumes
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// Flags of `volume prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn open(cli: &Cli) -> Result<Volumes> {
    // The error already names the store and the cause ("volume store: <root>: Permission denied").
    Ok(Volumes::open(&cli.root)?)
}

/// Runs a volume command; returns the exit code.
pub fn run(cli: &Cli, cmd: &VolumeCommand) -> Result<i32> {
    // docker's CLI exits 1 when the daemon refuses a volume request (125 is for `run`).
    match run_inner(cli, cmd) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            Ok(if crate::is_state_db_error(&e) { 125 } else { 1 })
        }
    }
}

fn run_inner(cli: &Cli, cmd: &VolumeCommand) -> Result<i32> {
    let vols = open(cli)?;
    match cmd {
        VolumeCommand::Create(a) => create(&vols, a),
        VolumeCommand::Ls(a) => ls(&vols, a),
        VolumeCommand::Inspect(a) => inspect(&vols, a),
        VolumeCommand::Rm(a) => rm(&vols, a),
        VolumeCommand::Prune(a) => prune(&vols, a),
    }
}

fn kv_list(what: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, v),
            None if what == "label" => (i.as_str(), ""),
            None => bail!("invalid {what} {i:?}: expected key=value"),
        };
        if k.is_empty() {
            bail!("invalid {what} {i:?}: empty key");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

fn create(vols: &Volumes, a: &CreateArgs) -> Result<i32> {
    let name = match (&a.name, &a.name_flag) {
        (Some(p), Some(f)) if p != f => {
            bail!("conflicting options: either specify --name or provide positional arg, not both")
        }
        (Some(n), _) | (None, Some(n)) => Some(n.as_str()),
        (None, None) => None,
    };
    let opts = kv_list("option", &a.opt)?;
    let labels = kv_list("label", &a.label)?;
    let v = vols.create_with_driver(name, &a.driver, &opts, &labels)?;
    println!("{}", v.name);
    Ok(0)
}

/// The row docker's volume formatter exposes to `--format`.
fn row(v: &Volume) -> Value {
    let labels: Vec<String> = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
    json!({
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": "N/A",
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
        "Size": "N/A",
        "Status": "N/A",
    })
}

/// Header names of the volume table.
fn header() -> Value {
    json!({
        "Availability": "AVAILABILITY",
        "Driver": "DRIVER",
        "Group": "GROUP",
        "Labels": "LABELS",
        "Links": "LINKS",
        "Mountpoint": "MOUNTPOINT",
        "Name": "VOLUME NAME",
        "Scope": "SCOPE",
        "Size": "SIZE",
        "Status": "STATUS",
    })
}

fn parse_bool(k: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("Invalid filter '{k}=[{v}]'"),
    }
}

fn filtered(vols: &Volumes, filters: &[String]) -> Result<Vec<Volume>> {
    let mut dangling = None;
    let mut names = Vec::new();
    let mut labels = Vec::new();
    let mut drivers = Vec::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        match k {
            "dangling" => dangling = Some(parse_bool(k, v)?),
            "name" => names.push(v.to_string()),
            "label" => labels.push(v.to_string()),
            "driver" => drivers.push(v.to_string()),
            other => bail!("Invalid filter '{other}'"),
        }
    }
    let mut out = Vec::new();
    for v in vols.list()? {
        if let Some(d) = dangling {
            if d != vols.users(&v.name)?.is_empty() {
                continue;
            }
        }
        // docker: name filters are substring (regexp) matches, OR-ed.
        if !names.is_empty() && !names.iter().any(|n| v.name.contains(n.as_str())) {
            continue;
        }
        if !labels.iter().all(|l| label_matches(&v.labels, l)) {
            continue;
        }
        if !drivers.is_empty() && !drivers.contains(&v.driver) {
            continue;
        }
        out.push(v);
    }
    Ok(out)
}

fn ls(vols: &Volumes, a: &LsArgs) -> Result<i32> {
    let list = filtered(vols, &a.filter)?;
    let mut out = io::stdout().lock();
    if a.quiet {
        for v in &list {
            writeln!(out, "{}", v.name)?;
        }
        return Ok(0);
    }
    let t = Template::or_default(a.format.as_deref(), "table {{.Driver}}\t{{.Name}}")?
        .typed("*formatter.volumeContext");
    let rows: Vec<Value> = list.iter().map(row).collect();
    write!(out, "{}", t.render_all(&rows, &header())?)?;
    Ok(0)
}

fn inspect(vols: &Volumes, a: &InspectArgs) -> Result<i32> {
    let mut found = Vec::new();
    let mut failed = false;
    for n in &a.volumes {
        match vols.get(n) {
            Ok(v) => found.push(v.inspect_json()),
            Err(e @ VolumeError::NotFound(_)) => {
                eprintln!("skiff: {e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = io::stdout().lock();
    match a.format.as_deref() {
        // docker 28: `--format json` prints the array compactly on one line.
        Some("json") => writeln!(out, "{}", skiff_template::to_json(&Value::Array(found)))?,
        Some(f) => {
            let t = Template::new(f)?.inspect();
            for v in &found {
                // Templates see docker's Go struct, where an empty map prints as map[].
                // `{{json .}}` shows the daemon's JSON (null) unchanged.
                let mut v = v.clone();
                for k in ["Labels", "Options"] {
                    if v[k].is_null() && f != "{{json .}}" {
                        v[k] = json!({});
                    }
                }
                writeln!(out, "{}", t.render(&v)?)?;
            }
        }
        None => {
            let s = serde_json::to_string_pretty(&Value::Array(found))?;
            writeln!(out, "{}", indent4(&s))?;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Re-indents serde's 2-space pretty JSON with 4 spaces, as docker prints it.
pub fn indent4(s: &str) -> String {
    s.lines()
        .map(|l| {
            let n = l.len() - l.trim_start_matches(' ').len();
            format!("{}{}", " ".repeat(n * 2), &l[n..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rm(vols: &Volumes, a: &RmArgs) -> Result<i32> {
    let mut failed = false;
    for n in &a.volumes {
        match vols.remove(n, a.force) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("skiff: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn prune(vols: &Volumes, a: &PruneArgs) -> Result<i32> {
    let mut label_filters = Vec::new();
    let mut all = a.all;
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        match k {
            "label" => label_filters.push((false, v.to_string())),
            "label!" => label_filters.push((true, v.to_string())),
            "all" => all = parse_bool(k, v)?,
            other => bail!("invalid filter '{other}'"),
        }
    }
    if !a.force {
        let what = if all {
            "all local volumes not used by at least one container"
        } else {
            "all anonymous local volumes not used by at least one container"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let rep = vols.prune(all, &label_filters)?;
    let mut out = io::stdout().lock();
    if !rep.deleted.is_empty() {
        writeln!(out, "Deleted Volumes:")?;
        for d in &rep.deleted {
            writeln!(out, "{d}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        skiff_image::time::human_size(rep.reclaimed)
    )?;
    Ok(0)
}
