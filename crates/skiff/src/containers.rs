//! The container commands: `run`, `create`, `start`, `stop`, `restart`, `kill`, `rm`, `wait`,
//! `pause`, `unpause`, `rename`, `ps`, `inspect`, `exec`, `attach`, `logs`, `top`, `stats`,
//! `container …` and the hidden `monitor`. Flags, columns and exit codes follow docker's CLI; the
//! work is done by skiff-engine.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skiff_engine::attach::{self, AttachOpts};
use skiff_engine::create::CreateRequest;
use skiff_engine::network::NetworkAttachment;
use skiff_engine::ops::{self, ExecRequest};
use skiff_engine::tty::{self, Ended};
use skiff_engine::{Container, Engine, Error as EngineError};
use skiff_image::store::ImageRecord;
use skiff_image::Store;

use crate::images;
use crate::template::{headers, Template};
use crate::Cli;

/// Flags of `run` and `create`.
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Resource, namespace and device flags.
    #[command(flatten)]
    pub host: crate::hostargs::HostArgs,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Connect a container to a network (bridge, a user network, none, host); repeated: the
    /// first is the primary, the others are connected before the start
    #[arg(long, visible_alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Runtime to use for this container (skiff-runtime, a daemon.json `runtimes` name, a path, or a binary on PATH such as runc)
    #[arg(long = "runtime")]
    pub runtime: Option<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Proxy received signals to the process (accepted for compatibility)
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Image
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Flags of `start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `stop` and `restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true)]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short, long)]
    pub link: bool,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of commands that take only containers (`pause`, `unpause`).
#[derive(Args, Debug)]
pub struct ContainersArgs {
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Wait until the container is not-running, has its next-exit, or is removed
    #[arg(long)]
    pub condition: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Flags of `rename`.
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// Container
    pub container: String,
    /// New name
    pub new_name: String,
}

/// Flags of `port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    /// Container
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

/// Flags of `ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
}

/// Flags of `inspect` / `container inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type (container or image)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Names or IDs
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command (accepted; the container's privileges apply)
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Container
    pub container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Flags of `attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (accepted for compatibility)
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Container
    pub container: String,
}

/// Flags of `logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Container
    pub container: String,
}

/// Flags of `top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Container
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Flags of `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Containers
    pub containers: Vec<String>,
}

/// `skiff container …`
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// List containers
    #[command(visible_alias = "ps", visible_alias = "list")]
    Ls(PsArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Remove all stopped containers
    Prune(crate::fscmds::ContainerPruneArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::fscmds::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::fscmds::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::fscmds::ExportArgs),
    /// Create a new image from a container's changes
    Commit(crate::fscmds::CommitArgs),
}

/// The container commands at top level (flattened into the CLI's command enum by main.rs).
#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// List containers
    Ps(PsArgs),
    /// Return low-level information on containers or images
    Inspect(InspectArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
}

/// The engine paths from the global flags.
pub struct Ctx<'a> {
    pub(crate) root: &'a Path,
    pub(crate) runroot: Option<&'a Path>,
}

impl Ctx<'_> {
    pub(crate) fn engine(&self) -> Result<Engine> {
        Ok(Engine::open(self.root, self.runroot)?)
    }
    pub(crate) fn store(&self) -> Result<Store> {
        // Container commands only read the store (and pull): they hold a shared lock on its
        // gc.lock first, so opening it skips the crash sweep and index.json rewrite (fsyncs) that
        // the image commands do when they find the store idle.
        // Store::open below makes and repairs the root (perms::open_root); only a missing root
        // needs it first.
        let gc = self.root.join("gc.lock");
        let lock = skiff_image::perms::lock_file(&gc)
            .or_else(|e| {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e);
                }
                skiff_image::perms::open_root(self.root)?;
                skiff_image::perms::lock_file(&gc)
            })
            .map_err(|e| anyhow!("open {}: {e}", gc.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_SH) } == 0 {
            // Held for the life of this short-lived process.
            std::mem::forget(lock);
        }
        Store::open(self.root).with_context(|| format!("open image store {}", self.root.display()))
    }
}

/// Prints `skiff: msg` and gives the exit code for an engine error (run-like commands use
/// 125/126/127, the others docker's 1).
fn fail(e: &anyhow::Error, run_like: bool) -> i32 {
    eprintln!("skiff: {}", crate::error_text(e));
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Start { code, .. }) => *code,
        _ if run_like || crate::is_state_db_error(e) => 125,
        _ => 1,
    }
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow!(
            "container commands need root privileges (rootless mode is not supported yet); run skiff as root"
        ));
    }
    Ok(())
}

/// Runs a container command; returns the process exit code.
pub fn run(cli: &Cli, cmd: &TopCommand) -> i32 {
    let ctx = Ctx {
        root: &cli.root,
        runroot: cli.runroot.as_deref(),
    };
    let run_like = matches!(
        cmd,
        TopCommand::Run(_)
            | TopCommand::Create(_)
            | TopCommand::Container(ContainerCommand::Run(_))
            | TopCommand::Container(ContainerCommand::Create(_))
    );
    if let Err(e) = require_root() {
        return fail(&e, true);
    }
    let r = match cmd {
        TopCommand::Run(a) | TopCommand::Container(ContainerCommand::Run(a)) => run_cmd(&ctx, a),
        TopCommand::Create(a) | TopCommand::Container(ContainerCommand::Create(a)) => {
            create_cmd(&ctx, a)
        }
        TopCommand::Start(a) | TopCommand::Container(ContainerCommand::Start(a)) => start(&ctx, a),
        TopCommand::Stop(a) | TopCommand::Container(ContainerCommand::Stop(a)) => stop(&ctx, a),
        TopCommand::Restart(a) | TopCommand::Container(ContainerCommand::Restart(a)) => {
            restart(&ctx, a)
        }
        TopCommand::Kill(a) | TopCommand::Container(ContainerCommand::Kill(a)) => kill(&ctx, a),
        TopCommand::Rm(a) | TopCommand::Container(ContainerCommand::Rm(a)) => rm(&ctx, a),
        TopCommand::Wait(a) | TopCommand::Container(ContainerCommand::Wait(a)) => wait(&ctx, a),
        TopCommand::Pause(a) | TopCommand::Container(ContainerCommand::Pause(a)) => {
            each(&ctx, &a.containers, |e, c| Ok(e.pause(c)?))
        }
        TopCommand::Unpause(a) | TopCommand::Container(ContainerCommand::Unpause(a)) => {
            each(&ctx, &a.containers, |e, c| Ok(e.unpause(c)?))
        }
        TopCommand::Rename(a) | TopCommand::Container(ContainerCommand::Rename(a)) => ctx
            .engine()
            .and_then(|e| Ok(e.rename(&a.container, &a.new_name)?))
            .map(|_| 0),
        TopCommand::Port(a) | TopCommand::Container(ContainerCommand::Port(a)) => port(&ctx, a),
        TopCommand::Ps(a) | TopCommand::Container(ContainerCommand::Ls(a)) => ps(&ctx, a),
        TopCommand::Inspect(a) => inspect(&ctx, a, true),
        TopCommand::Container(ContainerCommand::Inspect(a)) => inspect(&ctx, a, false),
        TopCommand::Exec(a) | TopCommand::Container(ContainerCommand::Exec(a)) => exec(&ctx, a),
        TopCommand::Attach(a) | TopCommand::Container(ContainerCommand::Attach(a)) => {
            attach_cmd(&ctx, a)
        }
        TopCommand::Logs(a) | TopCommand::Container(ContainerCommand::Logs(a)) => logs(&ctx, a),
        TopCommand::Top(a) | TopCommand::Container(ContainerCommand::Top(a)) => top(&ctx, a),
        TopCommand::Stats(a) | TopCommand::Container(ContainerCommand::Stats(a)) => stats(&ctx, a),
        TopCommand::Update(a) | TopCommand::Container(ContainerCommand::Update(a)) => {
            update(&ctx, a)
        }
        TopCommand::Container(ContainerCommand::Prune(a)) => {
            crate::fscmds::container_prune(ctx.root, ctx.runroot, a)
        }
        TopCommand::Container(ContainerCommand::Cp(a)) => {
            crate::fscmds::cp(ctx.root, ctx.runroot, a)
        }
        TopCommand::Container(ContainerCommand::Diff(a)) => {
            crate::fscmds::diff(ctx.root, ctx.runroot, a)
        }
        TopCommand::Container(ContainerCommand::Export(a)) => {
            crate::fscmds::export(ctx.root, ctx.runroot, a)
        }
        TopCommand::Container(ContainerCommand::Commit(a)) => {
            crate::fscmds::commit_cmd(ctx.root, ctx.runroot, a)
        }
    };
    let create_like = matches!(
        cmd,
        TopCommand::Create(_) | TopCommand::Container(ContainerCommand::Create(_))
    );
    match r {
        Ok(code) => code,
        Err(e) if create_like => fail_create(&e),
        Err(e) => fail(&e, run_like),
    }
}

/// A failed `create`: docker 28's CLI exits 1 for what its daemon refuses and 125 for what it
/// checks itself (flag values, `--health-*` signs, `--cgroupns`, `--pull`, …), where `run`
/// says 125 for both. The daemon's refusals, as checked against dockerd: a name in use, no such
/// image, no command, and the resource and restart-policy checks below.
fn fail_create(e: &anyhow::Error) -> i32 {
    const DAEMON: [&str; 15] = [
        "No such image",
        "Range of CPUs",
        "no command specified",
        "Requested CPUs are not available",
        "Requested memory nodes are not available",
        "Minimum memory limit",
        "Minimum memoryswap",
        "CPU cfs",
        "Invalid value",
        "Interval in Healthcheck",
        "Timeout in Healthcheck",
        "StartPeriod in Healthcheck",
        "StartInterval in Healthcheck",
        "invalid restart policy",
        "maximum retry count",
    ];
    let code = fail(e, true);
    let text = crate::error_text(e);
    // skiff names the flag where dockerd does not (`invalid argument "4k" for "-m, --memory"
    // flag: Minimum memory limit …`): what follows decides.
    let text = match text.split_once("\" flag: ") {
        Some((head, rest)) if head.starts_with("invalid argument \"") => rest.to_string(),
        _ => text,
    };
    let daemon = matches!(
        e.downcast_ref::<EngineError>(),
        Some(EngineError::NameConflict { .. })
    ) || (DAEMON.iter().any(|p| text.starts_with(p))
        // (the CLI parses the `NAME[:N]` shape itself)
        && !text.starts_with("invalid restart policy format"));
    if code == 125 && daemon {
        1
    } else {
        code
    }
}

/// Runs `f` on each container argument, printing the argument on success and `skiff: error` on
/// failure (exit 1 if any failed), as docker's multi-container commands do.
fn each(ctx: &Ctx, names: &[String], f: impl Fn(&Engine, &str) -> Result<()>) -> Result<i32> {
    let e = ctx.engine()?;
    let mut code = 0;
    for n in names {
        match f(&e, n) {
            Ok(()) => println!("{n}"),
            Err(err) => {
                eprintln!("skiff: {}", crate::error_text(&err));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Calls the registry pull with its output on stderr (stdout belongs to the container).
pub(crate) fn auto_pull(
    store: &Store,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let _ = io::stdout().flush();
    // SAFETY: dup/dup2 on the standard fds; restored below.
    let saved = unsafe { libc::dup(1) };
    // SAFETY: as above.
    unsafe { libc::dup2(2, 1) };
    let r = crate::registry::pull(
        store,
        &images::PullArgs {
            all_tags: false,
            platform: platform.map(String::from),
            quiet,
            insecure: false,
            disable_content_trust: true,
            name: image.to_string(),
        },
    );
    let _ = io::stdout().flush();
    if saved >= 0 {
        // SAFETY: restoring stdout from our dup, then closing the dup.
        unsafe {
            libc::dup2(saved, 1);
            libc::close(saved);
        }
    }
    r.map(|_| ())
}

/// `--platform` parsed as docker parses it (`os/arch[/variant]` or `arch`), with docker's error.
fn platform_arg(p: &str) -> Result<skiff_image::platform::Platform> {
    let ok = p.split('/').all(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '.')
    });
    match skiff_image::platform::Platform::parse(p) {
        Ok(pl) if ok => Ok(pl),
        _ => Err(anyhow!(
            "error parsing specified platform: \"{p}\": cannot parse platform specifier: invalid argument"
        )),
    }
}

fn find_image(store: &Store, a: &RunArgs) -> Result<ImageRecord> {
    match a.pull.as_str() {
        "missing" | "always" | "never" => {}
        p => {
            return Err(anyhow!(
                "invalid pull option: '{p}': must be one of \"always\", \"missing\" or \"never\""
            ))
        }
    }
    let tagged = || {
        let n = &a.image;
        let has_tag = n.contains('@')
            || n.rsplit('/')
                .next()
                .map(|l| l.contains(':'))
                .unwrap_or(false);
        if has_tag {
            n.clone()
        } else {
            format!("{n}:latest")
        }
    };
    // docker parses --platform before anything else, and a local image of another platform
    // does not count as present.
    let want = match a.platform.as_deref() {
        Some(p) => Some(platform_arg(p)?),
        None => None,
    };
    if a.pull == "always" {
        auto_pull(store, &a.image, a.platform.as_deref(), a.quiet)?;
        return images::resolve(store, &a.image);
    }
    match images::resolve(store, &a.image) {
        Ok(img) => match &want {
            Some(w) if !w.matches(&img.platform) && a.pull == "never" => Err(anyhow!(
                "image with reference {} was found but does not match the specified platform: wanted {w}, actual: {}",
                a.image,
                img.platform
            )),
            Some(w) if !w.matches(&img.platform) => {
                auto_pull(store, &a.image, a.platform.as_deref(), a.quiet)?;
                images::resolve(store, &a.image)
            }
            _ => Ok(img),
        },
        Err(e) if a.pull == "never" => Err(e),
        Err(_) => {
            eprintln!("Unable to find image '{}' locally", tagged());
            auto_pull(store, &a.image, a.platform.as_deref(), a.quiet)?;
            images::resolve(store, &a.image)
        }
    }
}

fn request(a: &RunArgs, attach: bool, first: Option<&NetworkAttachment>) -> CreateRequest {
    CreateRequest {
        image: a.image.clone(),
        name: a.name.clone(),
        cmd: a.command.clone(),
        entrypoint: a.entrypoint.clone(),
        entrypoint_args: Vec::new(),
        env: a.env.clone(),
        env_files: a.env_file.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        tty: a.tty,
        interactive: a.interactive,
        attach,
        labels: a.label.clone(),
        label_files: a.label_file.clone(),
        volumes: a.volume.clone(),
        mounts: a.mount.clone(),
        tmpfs: a.tmpfs.clone(),
        volumes_from: a.volumes_from.clone(),
        restart: a.restart.clone(),
        auto_remove: a.rm,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: a.security_opt.clone(),
        memory: a.memory.clone(),
        cpus: a.cpus.clone(),
        pids_limit: a.pids_limit.clone(),
        blkio_weight: a.blkio_weight,
        host: a.host.flags(),
        ulimits: a.ulimit.clone(),
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout.clone(),
        network: first.map(|f| f.target.clone()),
        network_aliases: first.map_or_else(|| a.network_alias.clone(), |f| f.aliases.clone()),
        domainname: a.domainname.clone(),
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        expose: a.expose.clone(),
        ip: first.map_or_else(|| a.ip.clone(), |f| f.ip.clone()),
        mac_address: first.map_or_else(|| a.mac_address.clone(), |f| f.mac.clone()),
        add_host: a.add_host.clone(),
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_option: a.dns_option.clone(),
        cgroup_parent: a.cgroup_parent.clone(),
        log_driver: a.log_driver.clone(),
        log_opts: a.log_opt.clone(),
        init: a.init,
        runtime: a.runtime.clone(),
        health: skiff_engine::health::HealthFlags {
            cmd: a.health_cmd.clone(),
            interval: a.health_interval.clone(),
            timeout: a.health_timeout.clone(),
            start_period: a.health_start_period.clone(),
            start_interval: a.health_start_interval.clone(),
            retries: a.health_retries.clone(),
            no_healthcheck: a.no_healthcheck,
            test: Vec::new(),
        },
        typed: Default::default(),
    }
}

/// The `--network` values parsed (docker 25+'s long form `name=N,alias=A,ip=IP,mac-address=M,
/// driver-opt=K=V` too), checked as docker's CLI checks them before the container exists; the
/// first one gets `--network-alias`, `--ip` and `--mac-address` (given twice for it: docker's
/// `conflicting options`). More than one (docker 28) must all be user networks; the further ones
/// are connected before the container starts ([`connect_extra`]).
fn parse_networks(e: &Engine, a: &RunArgs) -> Result<Vec<NetworkAttachment>> {
    let mut nets = Vec::new();
    for v in &a.network {
        let n = skiff_engine::network::parse_network_opt(v)?;
        if !n.aliases.is_empty() && !skiff_engine::network::embedded_dns(&n.target) {
            return Err(EngineError::Invalid(
                "network-scoped aliases are only supported for user-defined networks".into(),
            )
            .into());
        }
        if let Some(m) = &n.mac {
            skiff_engine::network::check_mac(m)?;
        }
        if nets
            .iter()
            .any(|p: &NetworkAttachment| p.target == n.target)
        {
            return Err(EngineError::Invalid(format!(
                "network \"{}\" is specified multiple times",
                n.target
            ))
            .into());
        }
        nets.push(n);
    }
    if let Some(f) = nets.first_mut() {
        let conflict = |what: &str| -> anyhow::Error {
            EngineError::Invalid(format!("conflicting options: cannot specify both {what}")).into()
        };
        if !f.aliases.is_empty() && !a.network_alias.is_empty() {
            return Err(conflict("--network-alias and per-network alias"));
        }
        if f.ip.is_some() && a.ip.is_some() {
            return Err(conflict("--ip and per-network IPv4 address"));
        }
        if f.mac.is_some() && a.mac_address.is_some() {
            return Err(conflict("--mac-address and per-network MAC address"));
        }
        if f.aliases.is_empty() {
            f.aliases = a.network_alias.clone();
        }
        f.ip = f.ip.take().or_else(|| a.ip.clone());
        f.mac = f.mac.take().or_else(|| a.mac_address.clone());
    }
    if nets.len() > 1 {
        for n in &nets {
            if !skiff_engine::network::embedded_dns(&n.target) {
                return Err(EngineError::Invalid(
                    "conflicting options: cannot attach both user-defined and non-user-defined network-modes".into(),
                )
                .into());
            }
            e.resolve_network(&n.target)?;
        }
    }
    Ok(nets)
}

/// After create: the first network's driver options recorded, the further networks connected
/// with their own settings; on failure the container is removed again, so nothing half-made is
/// left.
fn connect_extra(e: &Engine, c: &Container, nets: &[NetworkAttachment]) -> Result<()> {
    let r = (|| -> std::result::Result<(), EngineError> {
        if let Some(f) = nets.first().filter(|f| !f.driver_opts.is_empty()) {
            e.set_network_driver_opts(&c.id, &c.host_config.network_mode, &f.driver_opts)?;
        }
        for n in nets.iter().skip(1) {
            // docker: --network-alias names it on the first network only.
            e.connect_network_with(
                &n.target,
                &c.id,
                &skiff_engine::network::EndpointOpts {
                    ip: n.ip.as_deref(),
                    aliases: Some(&n.aliases),
                    mac: n.mac.as_deref(),
                    driver_opts: n.driver_opts.clone(),
                },
            )?;
        }
        Ok(())
    })();
    if let Err(err) = r {
        let _ = e.remove(&c.id, true, true);
        return Err(err.into());
    }
    Ok(())
}

fn create_container(ctx: &Ctx, a: &RunArgs, attach: bool) -> Result<(Engine, Container)> {
    let e = ctx.engine()?;
    let store = ctx.store()?;
    let img = find_image(&store, a)?;
    let nets = parse_networks(&e, a)?;
    let (c, warnings) =
        skiff_engine::create::create(&e, &store, &img, &request(a, attach, nets.first()))?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    connect_extra(&e, &c, &nets)?;
    Ok((e, c))
}

/// `run`'s create then start: the container comes back with its rootfs mounted and its spec
/// built; a start the engine fails (125) removes it again.
fn run_container(
    ctx: &Ctx,
    a: &RunArgs,
    attach: bool,
    monitor: ops::PendingMonitor,
) -> Result<(Engine, Container, i32)> {
    let e = ctx.engine()?;
    let store = ctx.store()?;
    let img = find_image(&store, a)?;
    let nets = parse_networks(&e, a)?;
    let (c, prepared) =
        skiff_engine::create::create_prepared(&e, &store, &img, &request(a, attach, nets.first()))?;
    for w in &prepared.warnings {
        eprintln!("WARNING: {w}");
    }
    connect_extra(&e, &c, &nets)?;
    let pid = e.start_new(&c, monitor, prepared)?;
    Ok((e, c, pid))
}

fn create_cmd(ctx: &Ctx, a: &RunArgs) -> Result<i32> {
    // As docker's `create` (which has no -d): the container is made to be attached to (stdout and
    // stderr, stdin with -i), which `start -a` and inspect's Config.Attach* show.
    let (_, c) = create_container(ctx, a, true)?;
    println!("{}", c.id);
    Ok(0)
}

/// Streams a foreground container through a pre-connected attach socket; returns its exit code.
pub(crate) fn foreground(e: &Engine, id: &str, o: AttachOpts, proxy: bool) -> Result<i32> {
    let (client, mon) = UnixStream::pair()?;
    (&client).write_all(&attach::hello(&o))?;
    let pid = e.start(id, Some(OwnedFd::from(mon)))?;
    follow(e, id, client, o, proxy, pid)
}

/// The detach sequence: `--detach-keys`, else `detachKeys` of docker's config.json, else
/// ctrl-p,ctrl-q. A bad flag is an error; a bad config value falls back to the default with a
/// warning (docker's CLI does the same).
pub(crate) fn detach_keys(flag: Option<&str>) -> Result<Vec<u8>> {
    if let Some(f) = flag.filter(|f| !f.is_empty()) {
        return Ok(tty::parse_detach_keys(f)?);
    }
    let path = skiff_image::credentials::DockerConfig::default_dir().join("config.json");
    let configured = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("detachKeys")?.as_str().map(String::from))
        .filter(|k| !k.is_empty());
    match configured.map(|k| tty::parse_detach_keys(&k)) {
        Some(Ok(k)) => Ok(k),
        Some(Err(err)) => {
            eprintln!("skiff: {}: {err}; using ctrl-p,ctrl-q", path.display());
            Ok(tty::DEFAULT_DETACH_KEYS.to_vec())
        }
        None => Ok(tty::DEFAULT_DETACH_KEYS.to_vec()),
    }
}

/// docker's check before streaming a tty: `-i` with `-t` needs a terminal on stdin (docker exits
/// 1 here, even for `run`).
fn check_tty(attach_stdin: bool, tty: bool) -> Option<i32> {
    if attach_stdin && tty && !tty::isatty(0) {
        eprintln!("skiff: the input device is not a TTY");
        return Some(1);
    }
    None
}

/// The attached part of a foreground container: signal proxying and the output stream; returns
/// its exit code.
fn follow(
    e: &Engine,
    id: &str,
    client: UnixStream,
    o: AttachOpts,
    proxy: bool,
    pid: i32,
) -> Result<i32> {
    // Before any thread starts: SIGWINCH must reach only the stream's signalfd.
    attach::block_winch();
    if proxy {
        proxy_signals(pid);
    }
    match attach::stream_after_hello(client, o)? {
        Ended::Exited(c) => Ok(c),
        // docker's run and start -a detach quietly, exit 0.
        Ended::Detached => Ok(0),
        Ended::Closed => {
            // The monitor vanished: report what the engine knows.
            match e.container(id) {
                Ok(c) if c.is_active() => Ok(0),
                Ok(c) => Ok(c.state.exit_code),
                Err(_) => Ok(0),
            }
        }
    }
}

/// Forwards the signals a user sends to a foreground `run`/`start -a` to the container's init
/// (docker's `--sig-proxy`): they are blocked in every thread and a thread waits for them.
fn proxy_signals(pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: building and installing a signal mask for this thread (inherited by later threads).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: sigwait on the set blocked above; kill with integer arguments.
        unsafe {
            if libc::sigwait(&set, &mut sig) == 0 {
                libc::kill(pid, sig);
            }
        }
    });
}

fn run_cmd(ctx: &Ctx, a: &RunArgs) -> Result<i32> {
    // The monitor starts first and finishes its exec while we create the container (see
    // `PendingMonitor`); a monitor that never gets its container just exits.
    let runroot = ctx
        .runroot
        .map(Path::to_path_buf)
        .unwrap_or_else(|| skiff_engine::default_runroot(ctx.root));
    let keys = detach_keys(a.detach_keys.as_deref())?;
    if !a.detach {
        if let Some(code) = check_tty(a.interactive, a.tty) {
            return Ok(code);
        }
    }
    if a.detach {
        let pending = ops::prespawn_monitor(ctx.root, &runroot, None)?;
        let (_, c, _) = run_container(ctx, a, false, pending)?;
        println!("{}", c.id);
        return Ok(0);
    }
    let o = AttachOpts {
        stdin: a.interactive,
        stdout: true,
        stderr: true,
        tty: a.tty,
        detach_keys: keys,
        redraw: false,
    };
    let (client, mon) = UnixStream::pair()?;
    (&client).write_all(&attach::hello(&o))?;
    let pending = ops::prespawn_monitor(ctx.root, &runroot, Some(OwnedFd::from(mon)))?;
    let (e, c, pid) = run_container(ctx, a, true, pending)?;
    follow(&e, &c.id, client, o, a.sig_proxy, pid)
}

fn start(ctx: &Ctx, a: &StartArgs) -> Result<i32> {
    let e = ctx.engine()?;
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(anyhow!(
                "you cannot start and attach multiple containers at once"
            ));
        }
        let keys = detach_keys(a.detach_keys.as_deref())?;
        let c = e.container(&a.containers[0])?;
        let o = AttachOpts {
            stdin: a.interactive && c.config.open_stdin,
            stdout: true,
            stderr: true,
            tty: c.config.tty,
            detach_keys: keys,
            redraw: c.is_active(),
        };
        if c.is_active() {
            // docker's start -a of a running container just attaches; a detach exits 0.
            return attach_running(&e, &c, o).map(|ended| match ended {
                Ended::Exited(code) => code,
                _ => 0,
            });
        }
        return foreground(&e, &c.id, o, true);
    }
    let mut code = 0;
    for n in &a.containers {
        match e.start(n, None) {
            Ok(_) => println!("{n}"),
            Err(err) => {
                eprintln!("skiff: {err}");
                code = match err {
                    EngineError::Start { code, .. } if code != 125 => code,
                    _ => 1,
                };
            }
        }
    }
    Ok(code)
}

fn stop(ctx: &Ctx, a: &StopArgs) -> Result<i32> {
    each(ctx, &a.containers, |e, c| {
        if let Some(sig) = &a.signal {
            let cur = e.container(c)?;
            if cur.is_active() {
                skiff_runtime_kill(e, &cur, sig)?;
            }
        }
        Ok(e.stop(c, a.time)?)
    })
}

fn skiff_runtime_kill(e: &Engine, c: &Container, sig: &str) -> Result<()> {
    Ok(e.kill(&c.id, sig)?)
}

fn restart(ctx: &Ctx, a: &StopArgs) -> Result<i32> {
    each(ctx, &a.containers, |e, c| {
        e.stop(c, a.time)?;
        e.start(c, None)?;
        Ok(())
    })
}

fn kill(ctx: &Ctx, a: &KillArgs) -> Result<i32> {
    each(ctx, &a.containers, |e, c| Ok(e.kill(c, &a.signal)?))
}

/// `update`: docker's output (each container as given, then the warnings) and errors (all of
/// them at the end, exit 1).
fn update(ctx: &Ctx, a: &UpdateArgs) -> Result<i32> {
    let req = skiff_engine::update::UpdateRequest {
        memory: a.memory.clone(),
        memory_swap: a.memory_swap.clone(),
        memory_reservation: a.memory_reservation.clone(),
        cpus: a.cpus.clone(),
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit.clone(),
        blkio_weight: a.blkio_weight,
        restart: a.restart.clone(),
    };
    if req.is_empty() {
        eprintln!("skiff: you must provide one or more flags when using this command");
        return Ok(1);
    }
    let e = ctx.engine()?;
    let mut out = io::stdout().lock();
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for n in &a.containers {
        match e.update(n, &req) {
            Ok(w) => {
                writeln!(out, "{n}")?;
                warnings.extend(w);
            }
            Err(err) => errors.push(err.to_string()),
        }
    }
    for w in &warnings {
        writeln!(out, "{w}")?;
    }
    for err in &errors {
        eprintln!("skiff: {err}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

fn rm(ctx: &Ctx, a: &RmArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let mut code = 0;
    for n in &a.containers {
        match e.remove(n, a.force, a.volumes) {
            Ok(()) => println!("{n}"),
            // docker 28: `rm -f` of a container that does not exist is not an error (and says
            // nothing); a plain `rm` still is.
            Err(EngineError::NoSuchContainer(_)) if a.force => {}
            Err(err) => {
                eprintln!("skiff: {err:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn wait(ctx: &Ctx, a: &WaitArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let mut code = 0;
    for n in &a.containers {
        let r = match a.condition.as_deref() {
            Some(cond) => e.wait_condition(n, cond),
            None => e.wait(n),
        };
        match r {
            Ok(c) => println!("{c}"),
            Err(err) => {
                eprintln!("skiff: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn command_text(c: &Container, trunc: bool) -> String {
    let mut parts = vec![c.path.clone()];
    parts.extend(c.args.iter().cloned());
    let s = parts.join(" ");
    let s = if trunc && s.chars().count() > 20 {
        format!("{}…", s.chars().take(19).collect::<String>())
    } else {
        s
    };
    format!("\"{s}\"")
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(md) = e.path().symlink_metadata() {
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    total += md.len();
                }
            }
        }
    }
    total
}

fn image_size(c: &Container) -> u64 {
    c.lower_dirs.iter().map(|d| dir_size(Path::new(d))).sum()
}

fn ps_row(e: &Engine, c: &Container, a: &PsArgs, health: Option<&str>) -> Value {
    let id = if a.no_trunc {
        c.id.clone()
    } else {
        c.short_id().to_string()
    };
    let created = skiff_image::time::parse_rfc3339(&c.created).unwrap_or(0);
    let labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let size = if a.size {
        let upper = dir_size(&e.container_dir(&c.id).join("upper"));
        format!(
            "{} (virtual {})",
            skiff_image::time::human_size(upper),
            skiff_image::time::human_size(upper + image_size(c))
        )
    } else {
        String::new()
    };
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            if m.name.is_empty() {
                m.source.clone()
            } else {
                m.name.clone()
            }
        })
        .collect();
    json!({
        "ID": id,
        "Image": c.image_ref,
        "Command": command_text(c, !a.no_trunc),
        "CreatedAt": skiff_image::time::docker_date(created),
        "RunningFor": skiff_image::time::ago(created),
        "Ports": e.ports_text(c),
        "State": c.state.status,
        "Status": ops::status_text(c, health),
        "Size": size,
        "Names": c.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": skiff_engine::network::network_name(c),
        "LocalVolumes": c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Platform": platform_json(&c.platform),
    })
}

/// docker 28's `Platform` of a `ps` row: the image's OCI platform (`{"architecture", "os"[,
/// "variant"]}`), null when unknown.
fn platform_json(p: &str) -> Value {
    let mut it = p.split('/');
    match (it.next(), it.next(), it.next()) {
        (Some(os), Some(arch), variant) if !os.is_empty() && !arch.is_empty() => {
            let mut v = json!({"architecture": arch, "os": os});
            if let Some(var) = variant.filter(|v| !v.is_empty()) {
                v["variant"] = var.into();
            }
            v
        }
        _ => Value::Null,
    }
}

/// docker's `ps` table headers (formatter.NewContainerContext).
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
    ("HealthStatus", "HEALTH STATUS"),
    ("IPAddresses", "IP ADDRESSES"),
];

fn ps(ctx: &Ctx, a: &PsArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let all = a.all || a.last >= 0 || a.latest;
    let mut filters = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        filters.push((k.to_string(), v.to_string()));
    }
    // The same list and filters as `GET /containers/json` (skiff serve).
    let mut rows = skiff_engine::api::list_containers(&e, all, &filters)?;
    if a.latest {
        rows.truncate(1);
    } else if a.last >= 0 {
        rows.truncate(a.last as usize);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|(c, h)| ps_row(&e, c, a, h.as_deref()))
        .collect();
    let mut out = io::stdout().lock();
    if a.quiet {
        for v in &values {
            writeln!(out, "{}", v["ID"].as_str().unwrap_or(""))?;
        }
        return Ok(0);
    }
    let mut default = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
    if a.size {
        default.push_str("\t{{.Size}}");
    }
    let t =
        Template::or_default(a.format.as_deref(), &default)?.typed("*formatter.ContainerContext");
    write!(out, "{}", t.render_all(&values, &headers(PS_HEADERS))?)?;
    Ok(0)
}

fn inspect(ctx: &Ctx, a: &InspectArgs, any_type: bool) -> Result<i32> {
    let e = ctx.engine()?;
    let kind = a.kind.as_deref();
    if let Some(k) = kind {
        if k != "container" && k != "image" {
            return Err(anyhow!("\"{k}\" is not a valid value for --type"));
        }
    }
    let want_containers = !matches!(kind, Some("image"));
    let want_images = any_type && !matches!(kind, Some("container"));
    let store = if want_images {
        Some(ctx.store()?)
    } else {
        None
    };
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        if want_containers {
            match e.container(n) {
                Ok(c) => {
                    let mut v = skiff_engine::inspect::container_json(&e, &c);
                    if a.size {
                        let upper = dir_size(&e.container_dir(&c.id).join("upper"));
                        v["SizeRw"] = json!(upper);
                        v["SizeRootFs"] = json!(upper + image_size(&c));
                    }
                    values.push(v);
                    continue;
                }
                Err(EngineError::NoSuchContainer(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(store) = &store {
            if let Ok(img) = images::resolve(store, n) {
                values.push(images::inspect_json(store, &img)?);
                continue;
            }
        }
        missing.push(if any_type {
            format!("No such object: {n}")
        } else {
            format!("No such container: {n}")
        });
    }
    crate::template::print_inspect(&values, a.format.as_deref(), &missing)
}

fn exec(ctx: &Ctx, a: &ExecArgs) -> Result<i32> {
    // What enters the container runs from a read-only view of its binary (CVE-2019-5736): the
    // small skiff-exec helper installed beside skiff, else this binary re-executed from one.
    if !skiff_runtime::exec_helper::available() {
        skiff_runtime::sealed::ensure_sealed_exe()?;
    }
    let e = ctx.engine()?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let s =
            std::fs::read_to_string(f).map_err(|err| anyhow!("env file {}: {err}", f.display()))?;
        env.extend(
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    env.extend(a.env.iter().cloned());
    let keys = detach_keys(a.detach_keys.as_deref())?;
    if !a.detach {
        if let Some(code) = check_tty(a.interactive, a.tty) {
            return Ok(code);
        }
    }
    let r = e.exec(
        &a.container,
        &ExecRequest {
            cmd: a.command.clone(),
            detach: a.detach,
            interactive: a.interactive,
            tty: a.tty,
            env,
            user: a.user.clone(),
            workdir: a.workdir.clone(),
            detach_keys: keys,
        },
    );
    match r {
        Ok(Ended::Exited(code)) => Ok(code),
        // docker's exec reports the detach as an error, exit 1; the process keeps running.
        Ok(_) => {
            eprintln!("skiff: read escape sequence");
            Ok(1)
        }
        Err(EngineError::Start { msg, code }) => {
            eprintln!("skiff: {msg}");
            Ok(code)
        }
        Err(err) => Err(err.into()),
    }
}

/// Attaches to a running container's monitor; returns how the session ended (a vanished monitor
/// is reported with the exit code the engine recorded).
fn attach_running(e: &Engine, c: &Container, o: AttachOpts) -> Result<Ended> {
    let dir = e.run_dir(&c.id);
    let (_fd, path) = attach::short_path(&dir)?;
    let sock = UnixStream::connect(&path).map_err(|err| anyhow!("attach to {}: {err}", c.name))?;
    Ok(match attach::stream(sock, o)? {
        Ended::Closed => match e.container(&c.id) {
            Ok(c) if !c.is_active() => Ended::Exited(c.state.exit_code),
            _ => Ended::Exited(0),
        },
        ended => ended,
    })
}

fn attach_cmd(ctx: &Ctx, a: &AttachArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let c = e.container(&a.container)?;
    if !c.is_active() {
        return Err(anyhow!(
            "You cannot attach to a stopped container, start it first"
        ));
    }
    if c.state.status == "paused" {
        return Err(anyhow!(
            "You cannot attach to a paused container, unpause it first"
        ));
    }
    let keys = detach_keys(a.detach_keys.as_deref())?;
    if let Some(code) = check_tty(!a.no_stdin, c.config.tty) {
        return Ok(code);
    }
    let o = AttachOpts {
        stdin: c.config.open_stdin && !a.no_stdin,
        stdout: true,
        stderr: true,
        tty: c.config.tty,
        detach_keys: keys,
        redraw: true,
    };
    match attach_running(&e, &c, o)? {
        Ended::Exited(code) => Ok(code),
        // docker's attach reports the detach as an error, exit 1; the container keeps running.
        _ => {
            eprintln!("skiff: read escape sequence");
            Ok(1)
        }
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn logs(ctx: &Ctx, a: &LogsArgs) -> Result<i32> {
    use skiff_engine::logs;
    let e = ctx.engine()?;
    let c = e.container(&a.container)?;
    if c.host_config.log_config.kind == "none" {
        bail!("configured logging driver does not support reading");
    }
    let path = e.container_dir(&c.id).join("ctr.log");
    let now = now_nanos();
    let since = match &a.since {
        Some(s) => Some(
            logs::parse_since(s, now).ok_or_else(|| anyhow!("invalid value for \"since\": {s}"))?,
        ),
        None => None,
    };
    let until = match &a.until {
        Some(s) => Some(
            logs::parse_since(s, now).ok_or_else(|| anyhow!("invalid value for \"until\": {s}"))?,
        ),
        None => None,
    };
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "" => None,
        t => match t.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return Err(anyhow!("invalid value for \"tail\": {t}")),
        },
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let show = |en: &logs::Entry| -> bool {
        if since.is_some_and(|s| en.nanos < s) {
            return true;
        }
        if until.is_some_and(|u| en.nanos > u) {
            return false;
        }
        let mut line = String::new();
        if a.timestamps {
            line.push_str(&en.time);
            line.push(' ');
        }
        line.push_str(&en.log);
        let r = if en.stream == "stderr" {
            stderr.lock().write_all(line.as_bytes())
        } else {
            let mut o = stdout.lock();
            o.write_all(line.as_bytes()).and_then(|_| o.flush())
        };
        r.is_ok()
    };
    let (entries, offset) = logs::read_all_with_offset(&path);
    let start = match tail {
        Some(n) => entries.len().saturating_sub(n),
        None => 0,
    };
    for en in &entries[start..] {
        if !show(en) {
            return Ok(0);
        }
    }
    if a.follow && until.is_none() {
        let id = c.id.clone();
        logs::follow(&path, offset, show, || match e.container(&id) {
            Ok(c) => !c.is_active(),
            Err(skiff_engine::Error::NoSuchContainer(_)) => true,
            Err(_) => false,
        });
    }
    Ok(0)
}

fn top(ctx: &Ctx, a: &TopArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let pids = e.pids(&a.container)?;
    let args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|err| anyhow!("top: run ps: {err}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "top: ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("top: couldn't find PID field in ps output"))?;
    let mut rows = vec![header.split_whitespace().collect::<Vec<_>>().join("\t")];
    let ncols = header.split_whitespace().count();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            // The last column (command) may contain spaces.
            let mut cells: Vec<String> = f.iter().take(ncols - 1).map(|s| s.to_string()).collect();
            cells.push(
                f.iter()
                    .skip(ncols - 1)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            rows.push(cells.join("\t"));
        }
    }
    println!("{}", crate::template::tabwrite_rows(&rows));
    Ok(0)
}

fn bytes_size(v: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = v as f64;
    let mut i = 0;
    while f >= 1024.0 && i < units.len() - 1 {
        f /= 1024.0;
        i += 1;
    }
    let s = format!("{f:.4}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    // go's %.4g: 4 significant digits.
    let digits: usize = s.chars().filter(|c| c.is_ascii_digit()).count();
    let s = if digits > 4 {
        let int_digits = s.split('.').next().unwrap_or("").len();
        format!("{:.*}", 4usize.saturating_sub(int_digits), f)
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn stats_row(e: &Engine, c: &Container, a: &StatsArgs) -> Result<Value> {
    let s1 = e.stats(c)?;
    let t1 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s2 = e.stats(c)?;
    let dt = t1.elapsed().as_nanos() as f64;
    let cpu = (s2.cpu.usage.total.saturating_sub(s1.cpu.usage.total)) as f64 / dt * 100.0;
    let m = &s2.memory;
    let inactive = m
        .raw
        .get("total_inactive_file")
        .or_else(|| m.raw.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    let usage = m.usage.usage.saturating_sub(inactive);
    let host_mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(u64::MAX);
    let limit = if m.usage.limit == 0 || m.usage.limit > host_mem {
        host_mem
    } else {
        m.usage.limit
    };
    let (mut rd, mut wr) = (0u64, 0u64);
    for en in &s2.blkio.io_service_bytes_recursive {
        match en.op.to_ascii_lowercase().as_str() {
            "read" => rd += en.value,
            "write" => wr += en.value,
            _ => {}
        }
    }
    let id = if a.no_trunc {
        c.id.clone()
    } else {
        c.short_id().to_string()
    };
    Ok(json!({
        "ID": id,
        "Container": id,
        "Name": c.name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        "MemPerc": format!("{:.2}%", usage as f64 / limit.max(1) as f64 * 100.0),
        "NetIO": "0B / 0B",
        "BlockIO": format!("{} / {}", skiff_image::time::human_size(rd), skiff_image::time::human_size(wr)),
        "PIDs": s2.pids.current.to_string(),
    }))
}

/// docker's `stats` table headers.
const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("Container", "CONTAINER"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn stats(ctx: &Ctx, a: &StatsArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let t = Template::or_default(
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    )?
    .typed("*container.statsContext");
    loop {
        let cs: Vec<Container> = if a.containers.is_empty() {
            e.list()?
                .into_iter()
                .filter(|c| matches!(c.state.status.as_str(), "running" | "paused"))
                .collect()
        } else {
            a.containers
                .iter()
                .map(|n| e.container(n))
                .collect::<std::result::Result<_, _>>()?
        };
        let mut rows = Vec::new();
        for c in &cs {
            match stats_row(&e, c, a) {
                Ok(v) => rows.push(v),
                Err(err) if !a.containers.is_empty() => return Err(err),
                Err(_) => {}
            }
        }
        let text = t.render_all(&rows, &headers(STATS_HEADERS))?;
        if !a.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        print!("{text}");
        io::stdout().flush()?;
        if a.no_stream {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(900));
    }
}

/// `skiff monitor ARGS` (hidden; dispatched before clap parses anything, to keep it small). The
/// monitor forks the process that enters the container, so it first re-executes itself from a
/// read-only view of its binary (CVE-2019-5736), as `skiff-runtime create` does.
pub fn monitor(args: &[String]) -> i32 {
    if let Err(e) = skiff_runtime::sealed::ensure_sealed_exe() {
        // The notification pipe (fd 3) tells the spawner why.
        let msg = format!("125 monitor: {e}\n");
        // SAFETY: writing a buffer we own to fd 3.
        unsafe { libc::write(3, msg.as_ptr().cast(), msg.len()) };
        return 1;
    }
    skiff_engine::monitor::main(args)
}

/// `port C [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080` lines, or just the host side of one port.
fn port(ctx: &Ctx, a: &PortArgs) -> Result<i32> {
    let e = ctx.engine()?;
    let c = e.container(&a.container)?;
    // (container port/proto, host address, host port)
    let ports: Vec<(String, String, u16)> =
        if skiff_engine::network::is_user_mode(&c.host_config.network_mode) {
            // pasta and slirp4netns forward the ports themselves: no endpoint.
            e.forwarded_ports(&c)
                .into_iter()
                .map(|p| {
                    let ip = p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string());
                    (format!("{}/{}", p.port, p.proto), ip, p.host_port)
                })
                .collect()
        } else {
            e.net()?
                .endpoints(&c.id)
                .map_err(skiff_engine::network::net_err)?
                .iter()
                .flat_map(|e| &e.ports)
                .map(|p| {
                    (
                        format!("{}/{}", p.port, p.proto),
                        p.host_ip.clone(),
                        p.host_port,
                    )
                })
                .collect()
        };
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut lines = Vec::new();
    for (key, ip, port) in ports {
        let host = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        match &want {
            Some(w) if *w == key => lines.push(host),
            Some(_) => {}
            None => lines.push(format!("{key} -> {host}")),
        }
    }
    if let (Some(_), true) = (&want, lines.is_empty()) {
        // docker names the port as typed (`99`, not `99/tcp`).
        return Err(anyhow!(
            "No public port '{}' published for {}",
            a.port.as_deref().unwrap_or_default(),
            a.container
        ));
    }
    let mut out = io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(0)
}
