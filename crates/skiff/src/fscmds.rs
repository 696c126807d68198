//! The commands that work on a container's filesystem or clean up: `cp`, `diff`, `export`,
//! `commit`, `container prune` and `system prune`. Flags and output follow docker's CLI; the work
//! is done by skiff-engine (fsops, commit, prune).

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use skiff_engine::commit::{self, CommitOptions};
use skiff_engine::fsops::{self, CpEnd, CpOptions};
use skiff_engine::outfile::OutputFile;
use skiff_engine::prune;
use skiff_engine::Engine;
use skiff_image::time::human_size;
use skiff_image::Store;

use crate::Cli;

/// Flags of `cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar stream on stdin)
    #[arg(allow_hyphen_values = true)]
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar stream on stdout)
    #[arg(allow_hyphen_values = true)]
    pub dest: String,
}

/// Flags of `diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The container
    pub container: String,
}

/// Flags of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    /// The container
    pub container: String,
}

/// Flags of `commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pause: bool,
    /// The container
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// Flags of `container prune`.
#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Flags of `system prune`.
#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// The filesystem commands at top level (flattened into the CLI's command enum by main.rs).
#[derive(Subcommand, Debug)]
pub enum FsCommand {
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("container commands need root privileges (rootless mode is not supported yet); run skiff as root");
    }
    Ok(())
}

fn engine(root: &Path, runroot: Option<&Path>) -> Result<Engine> {
    Ok(Engine::open(root, runroot)?)
}

fn store(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("open image store {}", root.display()))
}

/// `system prune` (dispatched from system.rs): the exit code (docker's 1 on errors).
pub fn run_system_prune(cli: &Cli, a: &SystemPruneArgs) -> i32 {
    let r =
        require_root().and_then(|()| system_prune(cli.root.as_path(), cli.runroot.as_deref(), a));
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            if crate::is_state_db_error(&e) {
                125
            } else {
                1
            }
        }
    }
}

/// Runs a filesystem command; returns the exit code (docker's 1 on errors).
pub fn run(cli: &Cli, cmd: &FsCommand) -> i32 {
    let (root, runroot) = (cli.root.as_path(), cli.runroot.as_deref());
    let r = require_root().and_then(|()| match cmd {
        FsCommand::Cp(a) => cp(root, runroot, a),
        FsCommand::Diff(a) => diff(root, runroot, a),
        FsCommand::Export(a) => export(root, runroot, a),
        FsCommand::Commit(a) => commit_cmd(root, runroot, a),
    });
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            if crate::is_state_db_error(&e) {
                125
            } else {
                1
            }
        }
    }
}

/// `cp`.
pub fn cp(root: &Path, runroot: Option<&Path>, a: &CpArgs) -> Result<i32> {
    let src = CpEnd::parse(&a.src);
    let dst = CpEnd::parse(&a.dest);
    match (&src, &dst) {
        (CpEnd::Container { .. }, CpEnd::Container { .. }) => {
            bail!("copying between containers is not supported")
        }
        (CpEnd::Container { .. }, _) | (_, CpEnd::Container { .. }) => {}
        _ => bail!("must specify at least one container source"),
    }
    if matches!(dst, CpEnd::Stream) && io::stdout().is_terminal() && a.dest == "-" {
        bail!("cowardly refusing to write a tar archive to a terminal; redirect stdout");
    }
    let e = engine(root, runroot)?;
    let opts = CpOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    let mut stdin = io::stdin().lock();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let report = fsops::copy(&e, &src, &dst, &opts, &mut stdin, &mut stdout)?;
    stdout.flush()?;
    for p in &report.skipped_sockets {
        eprintln!(
            "WARNING: skipping {:?}: it is a socket (sockets cannot be copied)",
            p.display().to_string()
        );
    }
    Ok(0)
}

/// `diff`.
pub fn diff(root: &Path, runroot: Option<&Path>, a: &DiffArgs) -> Result<i32> {
    let e = engine(root, runroot)?;
    let changes = commit::diff(&e, &a.container)?;
    let mut out = io::stdout().lock();
    for c in changes {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(0)
}

/// `export`.
pub fn export(root: &Path, runroot: Option<&Path>, a: &ExportArgs) -> Result<i32> {
    match a.output.as_deref().filter(|p| *p != "-") {
        Some(path) => {
            // Checked before the container is looked at, as docker does; the archive goes to a
            // temp file beside the target, so a failed export leaves no partial file.
            let mut out = OutputFile::create(Path::new(path), 0o600).context("export")?;
            let e = engine(root, runroot)?;
            fsops::export(&e, &a.container, &mut out)?;
            out.commit().context("export")?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let e = engine(root, runroot)?;
            let mut w = io::BufWriter::new(io::stdout().lock());
            fsops::export(&e, &a.container, &mut w)?;
            w.flush()?;
        }
    }
    Ok(0)
}

/// `commit`.
pub fn commit_cmd(root: &Path, runroot: Option<&Path>, a: &CommitArgs) -> Result<i32> {
    let tag = match &a.reference {
        Some(r) => Some(
            skiff_image::names::normalize(r)
                .map_err(|e| anyhow!("invalid reference format: {r}: {e}"))?,
        ),
        None => None,
    };
    let e = engine(root, runroot)?;
    let st = store(root)?;
    let img = commit::commit(
        &e,
        &st,
        &a.container,
        &CommitOptions {
            message: a.message.clone(),
            author: a.author.clone(),
            changes: a.change.clone(),
            pause: a.pause,
            tag,
        },
    )?;
    println!("{}", img.id);
    Ok(0)
}

fn confirm(warning: &str) -> Result<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn print_report(
    containers: &[String],
    images: &[String],
    volumes: &[String],
    reclaimed: u64,
) -> Result<()> {
    let mut out = io::stdout().lock();
    for (title, list) in [
        ("Deleted Containers:", containers),
        ("Deleted Volumes:", volumes),
        ("Deleted Images:", images),
    ] {
        if !list.is_empty() {
            writeln!(out, "{title}")?;
            for l in list {
                writeln!(out, "{l}")?;
            }
            writeln!(out)?;
        }
    }
    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(())
}

/// `container prune`.
pub fn container_prune(root: &Path, runroot: Option<&Path>, a: &ContainerPruneArgs) -> Result<i32> {
    let filters = prune::parse_filters(&a.filter)?;
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let e = engine(root, runroot)?;
    let r = prune::prune_containers(&e, &filters)?;
    print_report(&r.containers, &[], &[], r.reclaimed)?;
    Ok(0)
}

/// `system prune`.
pub fn system_prune(root: &Path, runroot: Option<&Path>, a: &SystemPruneArgs) -> Result<i32> {
    let filters = prune::parse_filters(&a.filter)?;
    if !a.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n");
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        if a.all {
            w.push_str("  - all images without at least one container associated to them\n");
        } else {
            w.push_str("  - all dangling images\n");
        }
        if !confirm(&w)? {
            return Ok(0);
        }
    }
    let e = engine(root, runroot)?;
    let c = prune::prune_containers(&e, &filters)?;
    let (vols, vbytes) = if a.volumes {
        prune::prune_anonymous_volumes(&e)?
    } else {
        (Vec::new(), 0)
    };
    let st = store(root)?;
    let i = prune::prune_images(&e, &st, a.all)?;
    print_report(
        &c.containers,
        &i.images,
        &vols,
        c.reclaimed + vbytes + i.reclaimed,
    )?;
    Ok(0)
}
