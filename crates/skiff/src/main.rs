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

mod build;
mod compose;
mod containers;
mod debug;
mod fscmds;
mod hostargs;
mod images;
mod networks;
mod registry;
mod serve;
mod system;
mod template;
mod volumes;

use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

/// Global flags and the command.
#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    about = "A daemonless, docker-compatible container engine"
)]
pub struct Cli {
    /// Root directory of skiff's persistent state.
    /// (default /var/lib/skiff; for a user, $XDG_DATA_HOME/skiff or ~/.local/share/skiff).
    #[arg(long, global = true, default_value = default_root_arg())]
    pub root: PathBuf,
    /// Directory of runtime state (default /run/skiff, for a user $XDG_RUNTIME_DIR/skiff or
    /// /tmp/skiff-<uid>; <root>/run when --root is given).
    #[arg(long, global = true)]
    pub runroot: Option<PathBuf>,
    /// Enable debug mode: the runtime's debug lines (e.g. where exec's seccomp filter came from)
    /// go to stderr.
    #[arg(short = 'D', long)]
    pub debug: bool,
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
    GenerateMan(system::ManArgs),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Manage builds (prune, du)
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Open a shell with tools in a container or image, even one without a shell
    Debug(debug::DebugArgs),
    /// Explain what isolates a container (or what an image would run with)
    Explain(debug::ExplainArgs),
    /// Run a command in skiff's rootless user and mount namespace (as `podman unshare`)
    Unshare(UnshareArgs),
    /// Define and run multi-container applications (docker compose)
    Compose(Box<compose::ComposeArgs>),
    /// Serve the Docker Engine API on a unix socket
    Serve(serve::ServeArgs),
    /// Container commands (run, ps, exec, ...)
    #[command(flatten)]
    Containers(Box<containers::TopCommand>),
    /// Filesystem and cleanup commands (cp, diff, export, commit, system prune)
    #[command(flatten)]
    Fs(fscmds::FsCommand),
}

/// Flags of `unshare`.
#[derive(clap::Args, Debug)]
pub struct UnshareArgs {
    /// The command and its arguments (default: $SHELL, else /bin/sh)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The default `--root` (by who runs skiff), as clap takes defaults.
fn default_root_arg() -> &'static str {
    static ROOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        skiff_engine::rootless::default_root()
            .to_string_lossy()
            .into_owned()
    })
}

/// For an ordinary user: the rootless run directory as the default `--runroot` of the default
/// root, then into the rootless namespace (see `skiff_engine::rootless`). Commands that touch no
/// state stay outside.
fn enter_rootless(cli: &mut Cli) -> anyhow::Result<()> {
    use skiff_engine::rootless;
    if rootless::in_namespace() {
        // Re-exec'd in the namespace (exec's sealed copy): only the paths.
        if cli.runroot.is_none() && rootless::data_root().is_ok_and(|d| d == cli.root) {
            cli.runroot = Some(rootless::run_root()?);
        }
        return Ok(());
    }
    if !rootless::is_user()
        || matches!(
            cli.command,
            Command::Version(_) | Command::Completion(_) | Command::GenerateMan(_)
        )
    {
        return Ok(());
    }
    rootless::check_root_access(&cli.root)?;
    let rundir = rootless::run_root()?;
    if matches!(cli.command, Command::System(system::SystemCommand::Migrate)) {
        rootless::stop_pause(&rundir);
        std::process::exit(0);
    }
    if cli.runroot.is_none() && rootless::data_root().is_ok_and(|d| d == cli.root) {
        cli.runroot = Some(rundir.clone());
    }
    rootless::enter(&rundir)?;
    Ok(())
}

/// `unshare`: exec the command (in the namespace [`enter_rootless`] joined).
fn unshare(a: &UnshareArgs) -> i32 {
    use std::os::unix::process::CommandExt;
    let argv = if a.command.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
    } else {
        a.command.clone()
    };
    let e = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!("skiff: unshare: {}: {e}", argv[0]);
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// `skiff run` with only the `run` grammar: clap builds every command it knows before it parses,
/// and the whole docker-sized tree costs more than half a millisecond per start. Anything this
/// cannot parse (including `--help` and every error) goes to the full parser, so messages and
/// help are the full CLI's.
#[derive(Parser, Debug)]
#[command(name = "skiff", disable_help_flag = true, disable_version_flag = true)]
struct RunOnly {
    #[arg(long, global = true, default_value = default_root_arg())]
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

/// `skiff exec` with only the `exec` grammar, for the same reason as [`RunOnly`] (every exec,
/// healthcheck-style loops included, pays the full tree otherwise).
#[derive(Parser, Debug)]
#[command(name = "skiff", disable_help_flag = true, disable_version_flag = true)]
struct ExecOnly {
    #[arg(long, global = true, default_value = default_root_arg())]
    root: PathBuf,
    #[arg(long, global = true)]
    runroot: Option<PathBuf>,
    #[arg(short = 'D', long)]
    debug: bool,
    #[command(subcommand)]
    command: ExecOnlyCommand,
}

#[derive(Subcommand, Debug)]
enum ExecOnlyCommand {
    Exec(containers::ExecArgs),
}

/// Docker reads everything after `run`/`create`'s IMAGE and `exec`'s CONTAINER as the command,
/// even words that look like flags (`run IMG sh -c …`, `run --entrypoint sh IMG -c …`); clap would
/// take a known flag there (`-c` is `--cpu-shares`). This inserts `--` after that positional,
/// walking the verb's own flags (which of them take a value) as clap defines them.
fn end_options_after_target(argv: &mut Vec<String>) {
    let mut i = 1;
    let mut words: Vec<&str> = Vec::new();
    // Global flags, then the verb (`container`'s subcommand too).
    while i < argv.len() {
        match argv[i].as_str() {
            "--root" | "--runroot" => i += 2,
            w if w.starts_with("--root=") || w.starts_with("--runroot=") => i += 1,
            "-D" | "--debug" => i += 1,
            "container" if words.is_empty() => {
                words.push("container");
                i += 1;
            }
            w => {
                words.push(w);
                i += 1;
                break;
            }
        }
    }
    let verb = words.last().copied().unwrap_or("");
    let cmd = match verb {
        "run" | "create" => {
            <containers::RunArgs as clap::Args>::augment_args(clap::Command::new("run"))
        }
        "exec" => <containers::ExecArgs as clap::Args>::augment_args(clap::Command::new("exec")),
        _ => return,
    };
    let takes_value = |a: &clap::Arg| {
        a.get_action().takes_values() && a.get_num_args().is_none_or(|n| n.min_values() > 0)
    };
    while i < argv.len() {
        let w = argv[i].as_str();
        if w == "--" {
            return;
        }
        if let Some(long) = w.strip_prefix("--") {
            if !long.contains('=')
                && cmd
                    .get_arguments()
                    .find(|a| {
                        a.get_long() == Some(long)
                            || a.get_all_aliases().is_some_and(|v| v.contains(&long))
                    })
                    .is_some_and(takes_value)
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        if w.len() > 1 && w.starts_with('-') {
            // A cluster of short flags; the first one that takes a value ends it (the rest of
            // the word, or the next word, is the value).
            for (k, ch) in w[1..].char_indices() {
                if cmd
                    .get_arguments()
                    .find(|a| a.get_short() == Some(ch))
                    .is_some_and(takes_value)
                {
                    if k + ch.len_utf8() == w.len() - 1 {
                        i += 1;
                    }
                    break;
                }
            }
            i += 1;
            continue;
        }
        // The image (or container): what follows is the command.
        if argv.get(i + 1).is_some_and(|n| n != "--") {
            argv.insert(i + 1, "--".into());
        }
        return;
    }
}

fn fast_run_parse(argv: &[String]) -> Option<Cli> {
    // Only when `run` or `exec` is the first word that is not a global flag or its value.
    let mut words = argv.iter().skip(1);
    let verb = loop {
        match words.next()?.as_str() {
            "--root" | "--runroot" => {
                words.next()?;
            }
            w if w.starts_with("--root=") || w.starts_with("--runroot=") => {}
            "-D" | "--debug" => {}
            w => break w,
        }
    };
    match verb {
        "run" => {
            let p = RunOnly::try_parse_from(argv).ok()?;
            let RunOnlyCommand::Run(a) = p.command;
            Some(Cli {
                root: p.root,
                runroot: p.runroot,
                debug: false,
                command: Command::Containers(Box::new(containers::TopCommand::Run(a))),
            })
        }
        "exec" => {
            let p = ExecOnly::try_parse_from(argv).ok()?;
            let ExecOnlyCommand::Exec(a) = p.command;
            Some(Cli {
                root: p.root,
                runroot: p.runroot,
                debug: p.debug,
                command: Command::Containers(Box::new(containers::TopCommand::Exec(a))),
            })
        }
        _ => None,
    }
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
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.first().is_some_and(|a| compose::is_compose_name(a)) {
        argv.insert(1, "compose".into());
    }
    if argv.get(1).map(String::as_str) == Some("monitor") {
        std::process::exit(containers::monitor(&argv[2..]));
    }
    if argv.get(1).map(String::as_str) == Some(skiff_build::run::STEP_COMMAND) {
        std::process::exit(skiff_build::run::step_main(&argv[2..]));
    }
    end_options_after_target(&mut argv);
    let mut cli = match fast_run_parse(&argv)
        .map(Ok)
        .unwrap_or_else(|| Cli::try_parse_from(&argv))
    {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `skiff volume` alone: docker prints the command's help and succeeds.
            print!("{}", e.render());
            std::process::exit(0);
        }
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            let (msg, code) = usage_error(&e, &argv);
            eprintln!("{msg}");
            std::process::exit(code);
        }
    };
    if let Err(e) = enter_rootless(&mut cli) {
        eprintln!("skiff: {}", error_text(&e));
        std::process::exit(125);
    }
    if let Command::Unshare(a) = &cli.command {
        std::process::exit(unshare(a));
    }
    if let Command::System(system::SystemCommand::Migrate) = &cli.command {
        // Root has no rootless namespace.
        std::process::exit(0);
    }
    if cli.debug {
        skiff_runtime::log::enable_debug(skiff_runtime::log::Sink::default());
    }
    if let Command::Containers(c) = &cli.command {
        std::process::exit(containers::run(&cli, c));
    }
    if let Command::Compose(c) = &cli.command {
        std::process::exit(compose::run(&cli, c));
    }
    if let Command::Fs(c) = &cli.command {
        std::process::exit(fscmds::run(&cli, c));
    }
    match &cli.command {
        Command::Build(a) => std::process::exit(build::build(&cli, a)),
        Command::Debug(a) => std::process::exit(debug::debug(&cli, a)),
        Command::Explain(a) => std::process::exit(debug::explain(&cli, a)),
        _ => {}
    }
    let r = match &cli.command {
        Command::Builder(c) => build::builder(&cli, c),
        Command::Volume(c) => volumes::run(&cli, c),
        Command::Network(c) => networks::run(&cli, c),
        Command::Serve(a) => serve::run(&cli, a),
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
            eprintln!("skiff: {}", error_text(&e));
            // docker's CLI exits 1 for what its daemon refuses on pull, push and login
            // (an unreachable registry, a missing manifest, bad credentials), and on the
            // `network` commands (a predefined or overlapping network, a missing one…).
            if (is_registry_command(&cli.command) || matches!(cli.command, Command::Network(_)))
                && !is_state_db_error(&e)
            {
                1
            } else {
                125
            }
        }
    };
    std::process::exit(code);
}

fn is_registry_command(c: &Command) -> bool {
    matches!(
        c,
        Command::Pull(_)
            | Command::Push(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Image(images::ImageCommand::Pull(_))
            | Command::Image(images::ImageCommand::Push(_))
    )
}

/// `e` and its causes on one line, each said once: an error whose message already includes its
/// cause's text (`open x: No such file or directory (os error 2)`) does not repeat it.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let t = c.to_string();
        if !msg.contains(&t) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&t);
        }
    }
    msg
}

/// The (sub)command `argv` names, as far as it names one: `skiff`, `skiff run`, `skiff volume ls`.
fn command_for(argv: &[String]) -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    let mut words = argv.iter().skip(1);
    while let Some(w) = words.next() {
        if w == "--root" || w == "--runroot" {
            words.next();
            continue;
        }
        if w.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(w) {
            Some(sub) if cmd.has_subcommands() => {
                let sub = sub.clone();
                cmd = sub;
            }
            _ => break,
        }
    }
    cmd
}

fn context(e: &clap::Error, k: ContextKind) -> Option<String> {
    match e.get(k)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(" ")),
        other => Some(other.to_string()),
    }
}

/// docker's name of the flag clap shows as `--memory <MEMORY>`: `-m, --memory`.
fn flag_name(cmd: &clap::Command, shown: &str) -> String {
    let word = shown.split([' ', '=']).next().unwrap_or(shown);
    let arg = cmd.get_arguments().find(|a| {
        word.strip_prefix("--")
            .is_some_and(|l| a.get_long() == Some(l))
            || word
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .is_some_and(|c| a.get_short() == Some(c) && word.len() == 2)
    });
    match arg {
        Some(a) => match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => word.to_string(),
        },
        None => word.to_string(),
    }
}

/// docker 28's report of a command line it cannot parse, and its exit status: the error on one
/// line, the command's usage, and where to read more. Bad flags and values exit 125; an unknown
/// command or missing arguments exit 1, as docker's do.
fn usage_error(e: &clap::Error, argv: &[String]) -> (String, i32) {
    let mut cmd = command_for(argv);
    let path = cmd
        .get_bin_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("skiff {}", cmd.get_name()))
        .replace("skiff skiff", "skiff");
    let usage = cmd
        .render_usage()
        .to_string()
        .replacen("Usage: ", "Usage:  ", 1);
    let run_help = format!("Run '{path} --help' for more information");
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let word = context(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let usage = if cmd.get_name() == "skiff" {
                String::new()
            } else {
                format!("{usage}\n\n")
            };
            (
                format!("skiff: unknown command: {path} {word}\n\n{usage}{run_help}"),
                1,
            )
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand => {
            let req: Vec<&clap::Arg> = cmd
                .get_positionals()
                .filter(|a| a.is_required_set())
                .collect();
            // docker says "at least" when more arguments may follow (`run IMAGE [COMMAND...]`).
            let many = cmd
                .get_positionals()
                .any(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1));
            let n = req.len().max(1);
            let s = if n == 1 { "" } else { "s" };
            let how = if many { "at least" } else { "exactly" };
            (
                format!(
                    "skiff: '{path}' requires {how} {n} argument{s}\n\n{usage}\n\nSee '{path} --help' for more information"
                ),
                1,
            )
        }
        ErrorKind::UnknownArgument => {
            let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
            let what = match arg.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => format!(
                    "unknown shorthand flag: '{}' in {arg}",
                    rest.chars().next().unwrap_or('?')
                ),
                _ => format!("unknown flag: {arg}"),
            };
            (format!("skiff: {what}\n\n{usage}\n\n{run_help}"), 125)
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
            let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
            let why = match std::error::Error::source(e) {
                Some(s) => s.to_string(),
                None => match context(e, ContextKind::ValidValue) {
                    Some(v) => format!("valid values are {v}"),
                    None => "invalid value".into(),
                },
            };
            (
                format!(
                    "skiff: invalid argument \"{value}\" for \"{}\" flag: {why}\n\n{usage}\n\n{run_help}",
                    flag_name(&cmd, &arg)
                ),
                125,
            )
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            (format!("skiff: {first}\n\n{usage}\n\n{run_help}"), 125)
        }
    }
}
