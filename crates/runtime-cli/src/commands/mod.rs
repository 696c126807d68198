//! Command-line definition (runc's surface) and dispatch; one module per verb.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub mod events;
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
    /// Root directory for storage of container state.
    #[arg(long, global = true, default_value = "/run/skiff-runtime")]
    pub root: PathBuf,
    /// Log file for runtime errors (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Enable debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Path to criu (accepted for runc compatibility).
    #[arg(long, global = true)]
    pub criu: Option<PathBuf>,
    /// Rootless mode: true, false or auto (accepted for runc compatibility).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Update resource limits of a running container.
    Update(update::Args),
    /// Suspend all processes of a container.
    Pause(pause::Args),
    /// Resume all processes of a paused container.
    Resume(pause::Args),
    /// Show container events and statistics.
    Events(events::Args),
}

/// Parse the command line, run the verb, and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let res = match cli.command {
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
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
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
