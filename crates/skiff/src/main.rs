//! `skiff`: the docker-compatible command line. Thin: parses flags as docker does and calls the
//! engine and image crates. Errors print as `skiff: <message>` and exit 125, like docker's CLI.
//!
//! `no_main`: the C `main` below is the entry point, so Rust's start-up (which reads
//! /proc/self/maps to find the main thread's stack guard and maps an alternate signal stack) does
//! not run: every `run` executes this binary twice (the CLI and its monitor), and neither needs
//! that work. A stack overflow still faults on the guard page.
#![cfg_attr(not(test), no_main)]
// In the unit-test build the harness supplies `main`, so the entry point below is unused there.
#![cfg_attr(test, allow(dead_code))]

mod containers;
mod fscmds;
mod hostargs;
mod images;
mod networks;
mod registry;
mod system;
mod template;
mod volumes;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Global flags and the command.
#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    about = "A daemonless, docker-compatible container engine"
)]
pub struct Cli {
    /// Root directory of skiff's persistent state.
    #[arg(long, global = true, default_value = "/var/lib/skiff")]
    pub root: PathBuf,
    /// Directory of runtime state (default /run/skiff, or <root>/run when --root is given).
    #[arg(long, global = true)]
    pub runroot: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage images
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// List images
    Images(images::LsArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Log in to a registry
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
    /// Manage manifests and manifest lists
    #[command(subcommand)]
    Manifest(images::ManifestCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Manage skiff (df, events, info, prune)
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Show the skiff version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Get real time events from the engine
    Events(system::EventsArgs),
    /// Write a shell completion script (bash, zsh, fish) to stdout
    Completion(system::CompletionArgs),
    /// Write man pages for skiff and every subcommand into DIR
    #[command(hide = true)]
    GenerateMan(system::ManArgs),
    /// Container commands (run, ps, exec, ...)
    #[command(flatten)]
    Containers(Box<containers::TopCommand>),
    /// Filesystem and cleanup commands (cp, diff, export, commit, system prune)
    #[command(flatten)]
    Fs(fscmds::FsCommand),
}

/// `skiff run` with only the `run` grammar: clap builds every command it knows before it parses,
/// and the whole docker-sized tree costs more than half a millisecond per start. Anything this
/// cannot parse (including `--help` and every error) goes to the full parser, so messages and
/// help are the full CLI's.
#[derive(Parser, Debug)]
#[command(name = "skiff", disable_help_flag = true, disable_version_flag = true)]
struct RunOnly {
    #[arg(long, global = true, default_value = "/var/lib/skiff")]
    root: PathBuf,
    #[arg(long, global = true)]
    runroot: Option<PathBuf>,
    #[command(subcommand)]
    command: RunOnlyCommand,
}

#[derive(Subcommand, Debug)]
enum RunOnlyCommand {
    Run(containers::RunArgs),
}

fn fast_run_parse(argv: &[String]) -> Option<Cli> {
    // Only when `run` is the first word that is not a global flag or its value.
    let mut words = argv.iter().skip(1);
    let verb = loop {
        match words.next()?.as_str() {
            "--root" | "--runroot" => {
                words.next()?;
            }
            w if w.starts_with("--root=") || w.starts_with("--runroot=") => {}
            w => break w,
        }
    };
    if verb != "run" {
        return None;
    }
    let p = RunOnly::try_parse_from(argv).ok()?;
    let RunOnlyCommand::Run(a) = p.command;
    Some(Cli {
        root: p.root,
        runroot: p.runroot,
        command: Command::Containers(Box::new(containers::TopCommand::Run(a))),
    })
}

/// True when `e` is (or wraps) a refusal of the state database (lost, emptied or damaged beside
/// data): such errors exit 125 whatever the command, as engine errors do in docker.
pub fn is_state_db_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<skiff_image::statedb::StateDbError>()
            .is_some()
            || matches!(
                c.downcast_ref::<skiff_engine::Error>(),
                Some(skiff_engine::Error::StateDb(_))
            )
            || matches!(
                c.downcast_ref::<skiff_image::Error>(),
                Some(skiff_image::Error::StateDb(_))
            )
            || matches!(
                c.downcast_ref::<skiff_engine::volumes::VolumeError>(),
                Some(skiff_engine::volumes::VolumeError::StateDb(_))
            )
    })
}

/// The process entry point (see the crate documentation); arguments come from `std::env::args`.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // As Rust's own start-up does: a closed pipe is an EPIPE error to handle, not a signal.
    // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    cli_main();
    0
}

fn cli_main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("monitor") {
        std::process::exit(containers::monitor(&argv[2..]));
    }
    let cli = match fast_run_parse(&argv).map(Ok).unwrap_or_else(Cli::try_parse) {
        Ok(cli) => cli,
        // Usage errors exit 125 as docker's CLI does (clap would exit 2); help and version 0.
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
    if let Command::Containers(c) = &cli.command {
        std::process::exit(containers::run(&cli, c));
    }
    if let Command::Fs(c) = &cli.command {
        std::process::exit(fscmds::run(&cli, c));
    }
    let r = match &cli.command {
        Command::Volume(c) => volumes::run(&cli, c),
        Command::Network(c) => networks::run(&cli, c),
        Command::System(_)
        | Command::Version(_)
        | Command::Info(_)
        | Command::Events(_)
        | Command::Completion(_)
        | Command::GenerateMan(_) => system::run(&cli),
        _ => images::run(&cli),
    };
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("skiff: {msg}");
            125
        }
    };
    std::process::exit(code);
}
