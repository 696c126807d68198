//! Command-line definition (runc's surface) and dispatch; one module per verb.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub mod events;
pub mod lifecycle;
pub mod pause;
pub mod update;

/// Global flags, as runc has them (containerd and podman pass these).
#[derive(Debug, Parser)]
#[command(
    name = "skiff-runtime",
    version,
    about = "skiff's OCI runtime (runc-compatible command line)"
)]
pub struct Cli {
    /// Root directory for storage of container state (default /run/skiff-runtime, or
    /// $XDG_RUNTIME_DIR/skiff-runtime when not root).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Log file for runtime errors (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Enable debug logging (to --log, or stderr): e.g. where the seccomp filter came from.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Cgroup manager: cgroupfs, systemd or disabled (crun's flag).
    #[arg(long = "cgroup-manager", global = true, value_parser = ["cgroupfs", "systemd", "disabled"])]
    pub cgroup_manager: Option<String>,
    /// Path to criu (accepted for runc compatibility).
    #[arg(long, global = true)]
    pub criu: Option<PathBuf>,
    /// Rootless mode: true, false or auto (accepted for runc compatibility).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (it waits for `start`).
    Create(lifecycle::CreateArgs),
    /// Start a created container.
    Start(lifecycle::IdArgs),
    /// Create and start a container, and wait for it unless --detach.
    Run(lifecycle::CreateArgs),
    /// Output the state of a container.
    State(lifecycle::IdArgs),
    /// Send a signal to a container's init.
    Kill(lifecycle::KillArgs),
    /// Delete a container and everything it holds.
    Delete(lifecycle::DeleteArgs),
    /// List containers.
    List(lifecycle::ListArgs),
    /// Show processes running in a container.
    Ps(lifecycle::PsArgs),
    /// Run a new process inside a container.
    Exec(Box<lifecycle::ExecArgs>),
    /// Show the runtime's features (runtime-spec features.md).
    Features,
    /// Write a default config.json.
    Spec(SpecArgs),
    /// Update resource limits of a running container.
    Update(Box<update::Args>),
    /// Suspend all processes of a container.
    Pause(pause::Args),
    /// Resume all processes of a paused container.
    Resume(pause::Args),
    /// Show container events and statistics.
    Events(events::Args),
}

/// Parse the command line, run the verb, and return the process exit code.
pub fn main() -> i32 {
    let mut cli = Cli::parse();
    if cli.root == std::path::Path::new(DEFAULT_ROOT) {
        cli.root = default_root();
    }
    if cli.debug {
        skiff_runtime::log::enable_debug(skiff_runtime::log::Sink {
            path: cli.log.clone(),
            json: cli.log_format == "json",
        });
    }
    let res = match cli.command {
        Command::Create(ref a) => lifecycle::create(&cli, a),
        Command::Start(ref a) => lifecycle::start(&cli, a),
        Command::Run(ref a) => lifecycle::run(&cli, a),
        Command::State(ref a) => lifecycle::state(&cli, a),
        Command::Kill(ref a) => lifecycle::kill(&cli, a),
        Command::Delete(ref a) => lifecycle::delete(&cli, a),
        Command::List(ref a) => lifecycle::list(&cli, a),
        Command::Ps(ref a) => lifecycle::ps(&cli, a),
        Command::Exec(ref a) => lifecycle::exec(&cli, a),
        Command::Features => lifecycle::features(),
        Command::Spec(ref a) => spec(a),
        Command::Update(ref a) => update::run(&cli, a),
        Command::Pause(ref a) => pause::pause(&cli, a),
        Command::Resume(ref a) => pause::resume(&cli, a),
        Command::Events(ref a) => events::run(&cli, a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            crate::commands::report_error(&cli, &e);
            1
        }
    }
}

/// Print an error the way runc does: to --log (text or json) if given, and always to stderr.
pub fn report_error(cli: &Cli, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    if let Some(log) = &cli.log {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
        {
            let line = if cli.log_format == "json" {
                serde_json::json!({"level": "error", "msg": msg}).to_string()
            } else {
                format!("level=error msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("skiff-runtime: {msg}");
}

/// Flags of `spec`.
#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Generate a config for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

fn spec(a: &SpecArgs) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let spec = skiff_runtime::defaults::runc_spec(a.rootless);
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(0)
}

/// The state root for root.
const DEFAULT_ROOT: &str = "/run/skiff-runtime";

/// runc's default state root: /run/<name> for root, $XDG_RUNTIME_DIR/<name> otherwise.
fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return PathBuf::from(DEFAULT_ROOT);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("skiff-runtime"),
        _ => PathBuf::from(format!("/tmp/skiff-runtime-{euid}")),
    }
}
