//! `skiff compose`: docker compose v2's command line over skiff-compose (which runs the
//! project over the engine in this process: no API, no daemon). Errors print as
//! `skiff: <message>` and exit 1, as compose's do.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skiff_compose::load::{self, Project};
use skiff_compose::project::{self as proj, label, Images, Runner, UpOpts};
use skiff_compose::service::{self, SERVICE};
use skiff_engine::attach::AttachOpts;
use skiff_engine::ops::ExecRequest;
use skiff_engine::tty::Ended;
use skiff_engine::{Container, Engine};
use skiff_image::store::ImageRecord;
use skiff_image::Store;

use crate::Cli;

/// `skiff compose` and its global flags.
#[derive(Args, Debug)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    pub file: Vec<String>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first Compose file)
    #[arg(long)]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long)]
    pub profile: Vec<String>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Set type of progress output (auto, tty, plain, quiet)
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// The command.
    #[command(subcommand)]
    pub command: ComposeCommand,
}

/// `compose` commands.
#[derive(Subcommand, Debug)]
pub enum ComposeCommand {
    /// Create and start containers
    Up(UpArgs),
    /// Creates containers for a service
    Create(UpArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
    /// View output from containers
    Logs(LogsArgs),
    /// Parse, resolve and render compose file in canonical format
    Config(ConfigArgs),
    /// Start services
    Start(Services),
    /// Stop services
    Stop(StopArgs),
    /// Restart service containers
    Restart(StopArgs),
    /// Force stop service containers
    Kill(KillArgs),
    /// Removes stopped service containers
    Rm(RmArgs),
    /// Pause services
    Pause(Services),
    /// Unpause services
    Unpause(Services),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Run a one-off command on a service
    Run(RunArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// Print the public port for a port binding
    Port(PortArgs),
    /// Display the running processes
    Top(Services),
    /// List images used by the created containers
    Images(Services),
    /// Pull service images
    Pull(Services),
    /// Push service images
    Push(PushArgs),
    /// Build or rebuild services
    Build(BuildArgs),
    /// Receive real time events from containers
    Events(EventsArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(CpArgs),
    /// Block until the first service container stops
    Wait(WaitArgs),
    /// Show the Docker Compose version information
    Version,
}

/// Services named on the command line.
#[derive(Args, Debug)]
pub struct Services {
    /// Services
    pub services: Vec<String>,
}

/// `up` / `create`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Wait for services to be running|healthy. Implies detached mode
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration (seconds) to wait for the project to be running|healthy
    #[arg(long)]
    pub wait_timeout: Option<u64>,
    /// Scale SERVICE to NUM instances
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Stops all containers if any container was stopped
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container
    #[arg(long)]
    pub exit_code_from: Option<String>,
    /// Use this timeout in seconds for container shutdown
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, default_value = "")]
    pub pull: String,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services
    pub services: Vec<String>,
}

/// `build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables for services
    #[arg(long)]
    pub build_arg: Vec<String>,
    /// Don't print anything to STDOUT
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services
    pub services: Vec<String>,
}

/// `push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push what it can and ignores images with push failures
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services
    pub services: Vec<String>,
}

/// `events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long)]
    pub json: bool,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Services
    pub services: Vec<String>,
}

/// `cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long)]
    pub index: Option<u32>,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// SERVICE:SRC_PATH or a local path or -
    #[arg(allow_hyphen_values = true)]
    pub src: String,
    /// SERVICE:DEST_PATH or a local path or -
    #[arg(allow_hyphen_values = true)]
    pub dest: String,
}

/// `wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Drops project when the first container stops
    #[arg(long)]
    pub down_project: bool,
    /// Services
    #[arg(required = true)]
    pub services: Vec<String>,
}

/// `down`.
#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")
    #[arg(long)]
    pub rmi: Option<String>,
    /// Remove named volumes declared in the "volumes" section and anonymous volumes
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
}

/// `ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter services by status
    #[arg(long)]
    pub status: Vec<String>,
    /// Services
    pub names: Vec<String>,
}

/// `logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub until: Option<String>,
    /// Services
    pub services: Vec<String>,
}

/// `config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Format the output. Values: [yaml | json]
    #[arg(long, default_value = "yaml")]
    pub format: String,
    /// Only validate the configuration, don't print anything
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Save to file (default to stdout)
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `stop` / `restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    /// Services
    pub services: Vec<String>,
}

/// `kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services
    pub services: Vec<String>,
}

/// `rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Services
    pub services: Vec<String>,
}

/// `exec`.
#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Service
    pub service: String,
    /// Command and arguments
    #[arg(required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `run`.
#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as specified username or uid
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long)]
    pub service_ports: bool,
    /// Add or override a label
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Service
    pub service: String,
    /// Command and arguments
    #[arg(allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// `port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Service
    pub service: String,
    /// Private port
    pub port: u16,
}

/// The CLI's image lookups and pulls for the runner.
struct CliImages<'a> {
    store: Store,
    cli: &'a Cli,
}

impl Images for CliImages<'_> {
    fn store(&self) -> &Store {
        &self.store
    }
    fn find(&self, name: &str) -> Option<ImageRecord> {
        crate::images::resolve(&self.store, name).ok()
    }
    fn pull(&self, name: &str) -> std::result::Result<(), String> {
        crate::containers::auto_pull(&self.store, name, None, true).map_err(|e| e.to_string())
    }
    /// `skiff build` with the service's `build:` as its flags (its output on stderr, plain).
    fn build(&self, spec: &proj::BuildSpec) -> std::result::Result<(), String> {
        // `dockerfile_inline`: written to a private file the build reads and drops.
        let mut inline: Option<PathBuf> = None;
        let file = match &spec.dockerfile_inline {
            Some(text) => {
                let dir = self
                    .store
                    .temp_dir("compose-dockerfile")
                    .map_err(|e| e.to_string())?;
                let p = dir.join("Dockerfile");
                skiff_image::perms::write_file(&p, text.as_bytes(), 0o600)
                    .map_err(|e| format!("write {}: {e}", p.display()))?;
                inline = Some(dir);
                p
            }
            None => spec.context.join(&spec.dockerfile),
        };
        let args = crate::build::BuildArgs {
            tag: vec![spec.tag.clone()],
            file: Some(file.to_string_lossy().into_owned()),
            target: spec.target.clone(),
            build_arg: spec.args.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            label: spec
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            no_cache: spec.no_cache,
            quiet: false,
            iidfile: None,
            progress: if skiff_compose::progress::mode() == skiff_compose::progress::Mode::Quiet {
                "quiet".into()
            } else {
                "plain".into()
            },
            network: spec.network.clone(),
            secret: Vec::new(),
            ssh: Vec::new(),
            build_context: spec
                .additional_contexts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            no_cache_filter: Vec::new(),
            output: Vec::new(),
            metadata_file: None,
            platform: None,
            pull: spec.pull,
            rm: true,
            force_rm: false,
            path: spec.context.to_string_lossy().into_owned(),
        };
        let code = crate::build::build(self.cli, &args);
        if let Some(d) = inline {
            let _ = skiff_image::sys::remove_all(&d);
        }
        match code {
            0 => Ok(()),
            c => Err(format!(
                "service {:?}: failed to build its image {:?} (exit {c})",
                spec.service, spec.tag
            )),
        }
    }
}

/// True when argv[0] names compose itself (`docker-compose`, `skiff-compose` symlinks).
pub fn is_compose_name(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    matches!(base, "docker-compose" | "skiff-compose")
}

fn options(a: &ComposeArgs) -> Result<load::Options> {
    let stdin = if a.file.iter().any(|f| f == "-") {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("read the compose file from stdin")?;
        Some(s)
    } else {
        None
    };
    Ok(load::Options {
        files: a.file.clone(),
        project_dir: a.project_directory.clone(),
        project_name: a.project_name.clone(),
        env_files: a.env_file.clone(),
        profiles: a.profile.clone(),
        env: std::env::vars().collect(),
        cwd: std::env::current_dir().context("current directory")?,
        stdin,
    })
}

/// Runs `skiff compose …`; returns the exit code.
pub fn run(cli: &Cli, a: &ComposeArgs) -> i32 {
    match run_inner(cli, a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            1
        }
    }
}

fn open_store(cli: &Cli) -> Result<Store> {
    skiff_image::perms::open_root(&cli.root)
        .with_context(|| format!("create {}", cli.root.display()))?;
    let gc = cli.root.join("gc.lock");
    let lock =
        skiff_image::perms::lock_file(&gc).map_err(|e| anyhow!("open {}: {e}", gc.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_SH) } == 0 {
        // Held for the life of this process, as the container commands hold it.
        std::mem::forget(lock);
    }
    Store::open(&cli.root).with_context(|| format!("open image store {}", cli.root.display()))
}

fn run_inner(cli: &Cli, a: &ComposeArgs) -> Result<i32> {
    match &a.command {
        ComposeCommand::Version => {
            println!("skiff compose version {}", service::COMPOSE_VERSION);
            return Ok(0);
        }
        ComposeCommand::Ls(l) => return ls(cli, l),
        _ => {}
    }
    let project = load::load(&options(a)?)?;
    if let ComposeCommand::Config(c) = &a.command {
        return config(&project, c);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow!(
            "compose needs root privileges (rootless mode is not supported yet)"
        ));
    }
    skiff_compose::progress::set_mode(
        skiff_compose::progress::Mode::parse(&a.progress, io::stderr().is_terminal())
            .map_err(anyhow::Error::msg)?,
    );
    let images = CliImages {
        store: open_store(cli)?,
        cli,
    };
    let runner = Runner {
        e: Engine::open(&cli.root, cli.runroot.as_deref())?,
        p: &project,
        images: &images,
        quiet: false,
    };
    let color = !a.no_color && io::stdout().is_terminal();
    match &a.command {
        ComposeCommand::Up(u) => up(&runner, u, color && !u.no_color, false),
        ComposeCommand::Create(u) => up(&runner, u, false, true),
        ComposeCommand::Down(d) => {
            let rmi = match d.rmi.as_deref() {
                None => None,
                Some(m @ ("local" | "all")) => Some(m),
                Some(m) => return Err(anyhow!("invalid --rmi option {m:?}: use local or all")),
            };
            runner.down(d.volumes, d.remove_orphans, d.timeout)?;
            if let Some(m) = rmi {
                down_images(&runner, m)?;
            }
            Ok(0)
        }
        ComposeCommand::Push(p) => push(&runner, p),
        ComposeCommand::Build(b) => {
            for n in runner.select(&b.services, false)? {
                let mut svc = project.services[&n].clone();
                if svc.get("build").is_none() {
                    continue;
                }
                for kv in &b.build_arg {
                    let (k, v) = match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), json!(v)),
                        None => (kv.clone(), Value::Null),
                    };
                    if let Some(args) = svc["build"]
                        .as_object_mut()
                        .map(|m| m.entry("args").or_insert_with(|| json!({})))
                        .and_then(Value::as_object_mut)
                    {
                        args.insert(k, v);
                    }
                }
                runner.build(&n, &svc, b.no_cache, b.pull)?;
            }
            Ok(0)
        }
        ComposeCommand::Events(ev) => events(&runner, ev),
        ComposeCommand::Cp(c) => cp(cli, &runner, c),
        ComposeCommand::Wait(w) => wait(&runner, w),
        ComposeCommand::Ps(p) => ps(&runner, p),
        ComposeCommand::Logs(l) => logs(&runner, l, color && !l.no_color),
        ComposeCommand::Start(s) => {
            let names = runner.select(&s.services, false)?;
            for n in &names {
                runner.wait_deps(n, Some(Duration::from_secs(300)))?;
                for c in runner.service_containers(n)? {
                    if !c.is_active() {
                        proj::progress(false, "Container", &c.name, "Starting");
                        runner.e.start(&c.id, None)?;
                        proj::progress(false, "Container", &c.name, "Started");
                    }
                }
            }
            Ok(0)
        }
        ComposeCommand::Stop(s) => {
            for level in selected_levels(&runner, &s.services)?.into_iter().rev() {
                let ids = ids_of(&runner, &level)?;
                proj::stop_all(&runner.e, &ids, s.timeout, false, false, false)?;
            }
            Ok(0)
        }
        ComposeCommand::Restart(s) => {
            for level in selected_levels(&runner, &s.services)?.into_iter().rev() {
                let ids = ids_of(&runner, &level)?;
                proj::stop_all(&runner.e, &ids, s.timeout, false, false, true)?;
            }
            for level in selected_levels(&runner, &s.services)? {
                for (id, name) in ids_of(&runner, &level)? {
                    proj::progress(false, "Container", &name, "Restarting");
                    runner.e.start(&id, None)?;
                    proj::progress(false, "Container", &name, "Started");
                }
            }
            Ok(0)
        }
        ComposeCommand::Kill(k) => {
            for c in containers_of(&runner, &k.services)? {
                if c.is_active() {
                    proj::progress(false, "Container", &c.name, "Killing");
                    runner.e.kill(&c.id, &k.signal)?;
                    proj::progress(false, "Container", &c.name, "Killed");
                }
            }
            Ok(0)
        }
        ComposeCommand::Rm(r) => {
            let cs = containers_of(&runner, &r.services)?;
            if r.stop {
                let ids: Vec<(String, String)> =
                    cs.iter().map(|c| (c.id.clone(), c.name.clone())).collect();
                proj::stop_all(&runner.e, &ids, None, false, false, false)?;
            }
            let mut gone = 0;
            for c in cs {
                let c = runner.e.container(&c.id)?;
                if c.is_active() {
                    continue;
                }
                proj::progress(false, "Container", &c.name, "Removing");
                runner.e.remove(&c.id, true, r.volumes)?;
                proj::progress(false, "Container", &c.name, "Removed");
                gone += 1;
            }
            if gone == 0 {
                eprintln!("No stopped containers");
            }
            Ok(0)
        }
        ComposeCommand::Pause(s) => {
            for c in containers_of(&runner, &s.services)? {
                runner.e.pause(&c.id)?;
                proj::progress(false, "Container", &c.name, "Paused");
            }
            Ok(0)
        }
        ComposeCommand::Unpause(s) => {
            for c in containers_of(&runner, &s.services)? {
                runner.e.unpause(&c.id)?;
                proj::progress(false, "Container", &c.name, "Unpaused");
            }
            Ok(0)
        }
        ComposeCommand::Exec(x) => exec(&runner, x),
        ComposeCommand::Run(r) => run_oneoff(&runner, r),
        ComposeCommand::Port(p) => {
            let c = runner
                .service_containers(&p.service)?
                .into_iter()
                .find(|c| proj::number(c) == p.index)
                .ok_or_else(|| anyhow!("service {:?} has no container {}", p.service, p.index))?;
            let eps = runner
                .e
                .net()?
                .endpoints(&c.id)
                .map_err(skiff_engine::network::net_err)?;
            for pp in eps.iter().flat_map(|e| &e.ports) {
                if pp.port == p.port && pp.proto == p.protocol {
                    println!("{}:{}", pp.host_ip, pp.host_port);
                    return Ok(0);
                }
            }
            Err(anyhow!(
                "no port {}/{} published for service {:?}",
                p.port,
                p.protocol,
                p.service
            ))
        }
        ComposeCommand::Top(s) => {
            for c in containers_of(&runner, &s.services)? {
                if !c.is_active() {
                    continue;
                }
                println!("{}", c.name);
                println!("{:<8} {:<8} CMD", "UID", "PID");
                for pid in runner.e.pids(&c.id)? {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let cmd: Vec<String> = cmd
                        .split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find(|l| l.starts_with("Uid:"))
                                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
                        })
                        .unwrap_or_default();
                    println!("{uid:<8} {pid:<8} {}", cmd.join(" "));
                }
                println!();
            }
            Ok(0)
        }
        ComposeCommand::Images(s) => {
            let rows: Vec<Vec<String>> = containers_of(&runner, &s.services)?
                .iter()
                .map(|c| {
                    let (repo, tag) = split_ref(&c.image_ref);
                    let id = c.image.trim_start_matches("sha256:");
                    vec![
                        c.name.clone(),
                        repo,
                        tag,
                        id[..12.min(id.len())].to_string(),
                    ]
                })
                .collect();
            table(&["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID"], &rows);
            Ok(0)
        }
        ComposeCommand::Pull(s) => {
            for n in runner.select(&s.services, false)? {
                let svc = &project.services[&n];
                if svc.get("image").is_none() {
                    continue;
                }
                runner.image(&n, svc, "always", proj::BuildPolicy::Never)?;
            }
            Ok(0)
        }
        ComposeCommand::Config(_) | ComposeCommand::Ls(_) | ComposeCommand::Version => Ok(0),
    }
}

fn split_ref(r: &str) -> (String, String) {
    let last = r.rsplit('/').next().unwrap_or(r);
    match last.rsplit_once(':') {
        Some((_, t)) => (r[..r.len() - t.len() - 1].to_string(), t.to_string()),
        None => (r.to_string(), "latest".to_string()),
    }
}

fn selected_levels(r: &Runner, names: &[String]) -> Result<Vec<Vec<String>>> {
    let sel = r.select(names, false)?;
    let order = r.p.order()?;
    Ok(r.levels(&order)
        .into_iter()
        .map(|l| {
            l.into_iter()
                .filter(|n| sel.contains(n))
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect())
}

fn ids_of(r: &Runner, services: &[String]) -> Result<Vec<(String, String)>> {
    Ok(r.containers(false)?
        .into_iter()
        .filter(|c| services.iter().any(|s| s == label(c, SERVICE)))
        .map(|c| (c.id, c.name))
        .collect())
}

fn containers_of(r: &Runner, names: &[String]) -> Result<Vec<Container>> {
    let sel = r.select(names, false)?;
    Ok(r.containers(false)?
        .into_iter()
        .filter(|c| sel.iter().any(|s| s == label(c, SERVICE)))
        .collect())
}

fn config(p: &Project, c: &ConfigArgs) -> Result<i32> {
    let mut out = String::new();
    if c.services {
        for n in p.order()? {
            out.push_str(&format!("{n}\n"));
        }
    } else if c.volumes {
        for n in p.volumes.keys() {
            out.push_str(&format!("{n}\n"));
        }
    } else if c.networks {
        for n in p.networks.keys() {
            out.push_str(&format!("{n}\n"));
        }
    } else if c.profiles {
        let mut all = std::collections::BTreeSet::new();
        for s in p.services.values().chain(p.disabled.values()) {
            for x in s["profiles"].as_array().into_iter().flatten() {
                all.insert(x.as_str().unwrap_or_default().to_string());
            }
        }
        for n in all {
            out.push_str(&format!("{n}\n"));
        }
    } else {
        let v = p.to_value();
        out = match c.format.as_str() {
            "json" => serde_json::to_string_pretty(&v)? + "\n",
            "yaml" => serde_norway_to_string(&v)?,
            f => return Err(anyhow!("unsupported format {f:?}: use yaml or json")),
        };
    }
    if c.quiet {
        return Ok(0);
    }
    match &c.output {
        Some(path) => skiff_image::perms::write_file(path, out.as_bytes(), 0o644)
            .with_context(|| format!("write {}", path.display()))?,
        None => print!("{out}"),
    }
    Ok(0)
}

fn serde_norway_to_string(v: &Value) -> Result<String> {
    skiff_compose::load::to_yaml(v).map_err(|e| anyhow!("{e}"))
}

/// The width-aligned table docker's CLIs print.
fn table(head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn ps(r: &Runner, a: &PsArgs) -> Result<i32> {
    if a.services {
        let mut seen = Vec::new();
        for c in containers_of(r, &a.names)? {
            if (a.all || c.is_active()) && !seen.contains(&label(&c, SERVICE).to_string()) {
                seen.push(label(&c, SERVICE).to_string());
            }
        }
        for s in seen {
            println!("{s}");
        }
        return Ok(0);
    }
    let cs: Vec<Container> = containers_of(r, &a.names)?
        .into_iter()
        .filter(|c| a.all || c.is_active() || !a.status.is_empty())
        .filter(|c| a.status.is_empty() || a.status.contains(&c.state.status))
        .collect();
    if a.quiet {
        for c in cs {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for c in &cs {
        let health = r.e.health(c).map(|h| h.status);
        let status = skiff_engine::ops::status_text(c, health.as_deref());
        let mut argv = vec![c.path.clone()];
        argv.extend(c.args.iter().cloned());
        let command = format!("\"{}\"", truncate(&argv.join(" "), 20));
        let created = format!("{} ago", skiff_engine::ops::human_duration(&c.created));
        let ports = r.e.ports_text(c);
        json_rows.push(json!({
            "ID": c.id, "Name": c.name, "Image": c.image_ref, "Command": argv.join(" "),
            "Project": r.p.name, "Service": label(c, SERVICE), "Created": c.created,
            "State": c.state.status, "Status": status, "Health": health.clone().unwrap_or_default(),
            "ExitCode": c.state.exit_code, "Publishers": ports, "Labels": c.config.labels,
        }));
        rows.push(vec![
            c.name.clone(),
            c.image_ref.clone(),
            command,
            label(c, SERVICE).to_string(),
            created,
            status,
            ports,
        ]);
    }
    match a.format.as_str() {
        "json" => {
            for j in json_rows {
                println!("{j}");
            }
        }
        "table" => table(
            &[
                "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
            ],
            &rows,
        ),
        f => return Err(anyhow!("unsupported format {f:?}: use table or json")),
    }
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

const COLORS: &[&str] = &["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// Log prefixes: `name  | ` padded to the longest name, coloured per service on a terminal.
struct Prefixes {
    width: usize,
    color: bool,
    services: Vec<String>,
    none: bool,
}

impl Prefixes {
    fn new(cs: &[Container], color: bool, none: bool) -> Prefixes {
        let mut services: Vec<String> = cs.iter().map(|c| label(c, SERVICE).to_string()).collect();
        services.dedup();
        Prefixes {
            // compose v2 pads names to the longest plus one: `p-web-1  | `.
            width: cs.iter().map(|c| c.name.len() + 1).max().unwrap_or(0),
            color,
            services,
            none,
        }
    }
    fn of(&self, c: &Container) -> String {
        if self.none {
            return String::new();
        }
        let p = format!("{:<w$} | ", c.name, w = self.width);
        if !self.color {
            return p;
        }
        let i = self
            .services
            .iter()
            .position(|s| s == label(c, SERVICE))
            .unwrap_or(0);
        format!("\x1b[{}m{p}\x1b[0m", COLORS[i % COLORS.len()])
    }
}

fn print_line(prefix: &str, e: &skiff_engine::logs::Entry, timestamps: bool) -> bool {
    let mut s = String::from(prefix);
    if timestamps {
        s.push_str(&e.time);
        s.push(' ');
    }
    s.push_str(&e.log);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    let mut o = io::stdout().lock();
    o.write_all(s.as_bytes()).and_then(|_| o.flush()).is_ok()
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// One container's log to follow: its id, log file and prefix.
type Followed = (String, PathBuf, String);

/// The logs of `cs` with their prefixes.
fn followed(r: &Runner, cs: &[Container], prefixes: &Prefixes) -> Vec<Followed> {
    cs.iter()
        .map(|c| (c.id.clone(), r.log_path(c), prefixes.of(c)))
        .collect()
}

/// Follows `logs` in threads (one engine each) until `stop` says so; the threads end once
/// their container is no longer running and their log is drained.
fn follow_logs(
    roots: (PathBuf, PathBuf),
    logs: &[Followed],
    timestamps: bool,
    tail: Option<usize>,
    window: Window,
    stop: &AtomicBool,
) {
    std::thread::scope(|s| {
        for (id, path, prefix) in logs {
            let (root, runroot) = roots.clone();
            s.spawn(move || {
                let entries = in_window(skiff_engine::logs::read_all(path), window);
                let start = tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
                for en in &entries[start..] {
                    if !print_line(prefix, en, timestamps) {
                        return;
                    }
                }
                let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let Ok(e) = Engine::open(&root, Some(&runroot)) else {
                    return;
                };
                skiff_engine::logs::follow(
                    path,
                    offset,
                    |en| {
                        if en.nanos > window.1 {
                            return false;
                        }
                        en.nanos < window.0 || print_line(prefix, en, timestamps)
                    },
                    || {
                        stop.load(Ordering::SeqCst)
                            || INTERRUPTED.load(Ordering::SeqCst)
                            || e.container(id).map(|c| !c.is_active()).unwrap_or(true)
                    },
                );
            });
        }
    });
}

/// `--since`/`--until` as Unix nanoseconds (inclusive bounds).
type Window = (i128, i128);

fn in_window(v: Vec<skiff_engine::logs::Entry>, w: Window) -> Vec<skiff_engine::logs::Entry> {
    v.into_iter()
        .filter(|e| e.nanos >= w.0 && e.nanos <= w.1)
        .collect()
}

/// A `--since`/`--until` value: a timestamp, Unix seconds or a duration ago.
fn time_bound(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => skiff_engine::events::parse_time_bound(s, skiff_engine::events::now_nano())
            .map(Some)
            .ok_or_else(|| {
                anyhow!("invalid value for --{flag}: {s:?} is not a timestamp or duration")
            }),
    }
}

fn logs(r: &Runner, a: &LogsArgs, color: bool) -> Result<i32> {
    let cs = containers_of(r, &a.services)?;
    let window: Window = (
        time_bound("since", &a.since)?
            .map(i128::from)
            .unwrap_or(i128::MIN),
        time_bound("until", &a.until)?
            .map(i128::from)
            .unwrap_or(i128::MAX),
    );
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| anyhow!("invalid value for \"tail\": {t}"))?
                .max(0) as usize,
        ),
    };
    let prefixes = Prefixes::new(&cs, color, a.no_log_prefix);
    if !a.follow {
        for c in &cs {
            let entries = in_window(skiff_engine::logs::read_all(&r.log_path(c)), window);
            let start = tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
            let p = prefixes.of(c);
            for en in &entries[start..] {
                print_line(&p, en, a.timestamps);
            }
        }
        return Ok(0);
    }
    catch_interrupts();
    let stop = AtomicBool::new(false);
    let roots = (r.e.root.clone(), r.e.runroot.clone());
    follow_logs(
        roots,
        &followed(r, &cs, &prefixes),
        a.timestamps,
        tail,
        window,
        &stop,
    );
    Ok(0)
}

fn up(r: &Runner, a: &UpArgs, color: bool, create_only: bool) -> Result<i32> {
    if a.build && a.no_build {
        return Err(anyhow!("--build and --no-build are incompatible"));
    }
    let mut scale = BTreeMap::new();
    for s in &a.scale {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --scale {s:?}: expected SERVICE=NUM"))?;
        scale.insert(
            k.to_string(),
            v.parse::<u32>()
                .map_err(|_| anyhow!("invalid --scale {s:?}: expected SERVICE=NUM"))?,
        );
    }
    if let Some(s) = &a.exit_code_from {
        if !r.p.services.contains_key(s) {
            return Err(anyhow!("no such service: {s}"));
        }
    }
    let detach = a.detach || a.wait || create_only;
    if detach && (a.abort_on_container_exit || a.exit_code_from.is_some()) {
        return Err(anyhow!(
            "--abort-on-container-exit and --exit-code-from cannot be combined with --detach"
        ));
    }
    let wait_timeout = a.wait_timeout.map(Duration::from_secs);
    let cs = r.up(&UpOpts {
        services: a.services.clone(),
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        no_deps: a.no_deps,
        no_start: a.no_start || create_only,
        remove_orphans: a.remove_orphans,
        scale,
        timeout: a.timeout,
        wait_timeout: wait_timeout.or(Some(Duration::from_secs(600))),
        pull: a.pull.clone(),
        build: if a.build {
            proj::BuildPolicy::Always
        } else if a.no_build {
            proj::BuildPolicy::Never
        } else {
            proj::BuildPolicy::Missing
        },
    })?;
    skiff_compose::progress::finish();
    if a.wait {
        let deadline = wait_timeout.map(|t| Instant::now() + t);
        for c in &cs {
            loop {
                let cur = r.e.container(&c.id)?;
                let health = r.e.health(&cur).map(|h| h.status);
                if !cur.is_active() {
                    if cur.state.exit_code == 0 && cur.host_config.restart_policy.name != "always" {
                        break;
                    }
                    return Err(anyhow!(
                        "container {} exited ({})",
                        cur.name,
                        cur.state.exit_code
                    ));
                }
                match health.as_deref() {
                    None | Some("healthy") => {
                        proj::progress(false, "Container", &cur.name, "Healthy");
                        break;
                    }
                    Some("unhealthy") => {
                        return Err(anyhow!("container {} is unhealthy", cur.name))
                    }
                    _ => {}
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(anyhow!(
                        "timed out waiting for container {} to be healthy",
                        cur.name
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    if detach {
        return Ok(0);
    }
    attached(r, &cs, a, color)
}

/// `up` in the foreground: every container's log, prefixed, until they all exit; Ctrl-C stops
/// them; `--abort-on-container-exit` stops them all when one exits.
fn attached(r: &Runner, cs: &[Container], a: &UpArgs, color: bool) -> Result<i32> {
    catch_interrupts();
    let prefixes = Prefixes::new(cs, color, a.no_log_prefix);
    let stop = AtomicBool::new(false);
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let ids: Vec<(String, String)> = cs.iter().map(|c| (c.id.clone(), c.name.clone())).collect();
    let mut code = 0;
    let roots = (r.e.root.clone(), r.e.runroot.clone());
    let logs = followed(r, cs, &prefixes);
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| follow_logs(roots, &logs, false, None, (i128::MIN, i128::MAX), &stop));
        let mut reported = std::collections::BTreeSet::new();
        let mut exit_from: Option<i32> = None;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if INTERRUPTED.load(Ordering::SeqCst) {
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                stop.store(true, Ordering::SeqCst);
                proj::stop_all(&r.e, &ids, a.timeout, false, false, false)?;
                code = 130;
                return Ok(());
            }
            let mut running = 0;
            let mut first_exit = None;
            for c in cs {
                let cur = r.e.container(&c.id)?;
                if cur.is_active() {
                    running += 1;
                    continue;
                }
                if reported.insert(cur.id.clone()) {
                    // Let the log thread drain first.
                    std::thread::sleep(Duration::from_millis(60));
                    println!("{} exited with code {}", cur.name, cur.state.exit_code);
                    if a.exit_code_from.as_deref() == Some(label(&cur, SERVICE)) {
                        exit_from = Some(cur.state.exit_code);
                    }
                    first_exit.get_or_insert(cur.state.exit_code);
                }
            }
            if abort && (first_exit.is_some() || exit_from.is_some()) {
                eprintln!("Aborting on container exit...");
                stop.store(true, Ordering::SeqCst);
                proj::stop_all(&r.e, &ids, a.timeout, false, false, false)?;
                code = match &a.exit_code_from {
                    Some(svc) => {
                        let c = cs.iter().find(|c| label(c, SERVICE) == svc);
                        match c {
                            Some(c) => r.e.container(&c.id)?.state.exit_code,
                            None => 0,
                        }
                    }
                    None => first_exit.unwrap_or(0),
                };
                return Ok(());
            }
            if running == 0 {
                stop.store(true, Ordering::SeqCst);
                code = exit_from.unwrap_or(0);
                return Ok(());
            }
        }
    })?;
    Ok(code)
}

fn exec(r: &Runner, x: &ExecArgs) -> Result<i32> {
    // As `skiff exec`: only sealed binaries enter the container (CVE-2019-5736).
    if !skiff_runtime::exec_helper::available() {
        skiff_runtime::sealed::ensure_sealed_exe()?;
    }
    let c = r
        .service_containers(&x.service)?
        .into_iter()
        .find(|c| proj::number(c) == x.index)
        .ok_or_else(|| anyhow!("service {:?} is not running", x.service))?;
    let tty = !x.no_tty && io::stdin().is_terminal();
    match r.e.exec(
        &c.id,
        &ExecRequest {
            cmd: x.command.clone(),
            detach: x.detach,
            interactive: !x.detach,
            tty,
            env: x.env.clone(),
            user: x.user.clone(),
            workdir: x.workdir.clone(),
            detach_keys: Vec::new(),
        },
    ) {
        Ok(Ended::Exited(code)) => Ok(code),
        Ok(_) => Ok(0),
        Err(skiff_engine::Error::Start { msg, code }) => {
            eprintln!("skiff: {msg}");
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

fn run_oneoff(r: &Runner, a: &RunArgs) -> Result<i32> {
    let svc =
        r.p.services
            .get(&a.service)
            .ok_or_else(|| anyhow!("no such service: {}", a.service))?;
    let deps: Vec<String> = svc["depends_on"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(d, _)| d.clone())
        .filter(|d| r.p.services.contains_key(d))
        .collect();
    if !a.no_deps && !deps.is_empty() {
        r.up(&UpOpts {
            services: deps,
            no_recreate: true,
            wait_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        })?;
        r.wait_deps(&a.service, Some(Duration::from_secs(600)))?;
    } else {
        r.ensure_networks(std::slice::from_ref(&a.service))?;
        r.ensure_volumes()?;
    }
    let (image, img) = r.image(&a.service, svc, "", proj::BuildPolicy::Missing)?;
    let tty = !a.no_tty && io::stdin().is_terminal() && !a.detach;
    let hex: String = skiff_engine::names::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{hex}", r.p.name, a.service));
    let mut svc = svc.clone();
    if !a.service_ports {
        if let Some(o) = svc.as_object_mut() {
            o.remove("ports");
        }
    }
    let c = r.create_one(&a.service, &svc, 1, &image, &img, true, &|req| {
        req.name = Some(name.clone());
        if !a.command.is_empty() {
            req.cmd = a.command.clone();
        }
        if let Some(ep) = &a.entrypoint {
            req.entrypoint = Some(ep.clone());
            req.entrypoint_args.clear();
            req.cmd = a.command.clone();
        }
        req.env.extend(a.env.iter().cloned());
        req.labels.extend(a.label.iter().cloned());
        if a.user.is_some() {
            req.user = a.user.clone();
        }
        if a.workdir.is_some() {
            req.workdir = a.workdir.clone();
        }
        req.auto_remove = a.rm;
        req.tty = tty;
        req.interactive = !a.detach;
        req.attach = !a.detach;
        req.restart = None;
    })?;
    if a.detach {
        r.e.start(&c.id, None)?;
        println!("{}", c.name);
        return Ok(0);
    }
    let o = AttachOpts {
        stdin: true,
        stdout: true,
        stderr: true,
        tty,
        detach_keys: Vec::new(),
        redraw: false,
    };
    crate::containers::foreground(&r.e, &c.id, o, true)
}

fn ls(cli: &Cli, a: &LsArgs) -> Result<i32> {
    let e = Engine::open(&cli.root, cli.runroot.as_deref())?;
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, String)> = BTreeMap::new();
    for c in e.list()? {
        let p = label(&c, service::PROJECT);
        if p.is_empty() {
            continue;
        }
        let entry = projects.entry(p.to_string()).or_default();
        *entry.0.entry(c.state.status.clone()).or_default() += 1;
        entry.1 = label(&c, service::FILES).to_string();
    }
    let mut rows = Vec::new();
    let mut js = Vec::new();
    for (name, (states, files)) in projects {
        if !a.all && !states.contains_key("running") {
            continue;
        }
        let status = states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        js.push(json!({"Name": name, "Status": status, "ConfigFiles": files}));
        rows.push(vec![name, status, files]);
    }
    if a.quiet {
        for r in rows {
            println!("{}", r[0]);
        }
    } else if a.format == "json" {
        println!("{}", Value::Array(js));
    } else {
        table(&["NAME", "STATUS", "CONFIG FILES"], &rows);
    }
    Ok(0)
}

/// `down --rmi`: the services' images (`local`: only those named after the project, that is
/// built for it and not given an `image:`), untagged, and deleted when nothing else names or
/// uses them.
fn down_images(r: &Runner, mode: &str) -> Result<()> {
    let store = r.images.store();
    let mut names: Vec<String> = Vec::new();
    for (n, svc) in r.p.services.iter().chain(r.p.disabled.iter()) {
        if mode == "local" && svc.get("image").is_some() {
            continue;
        }
        let name = service::image_name(r.p, n, svc);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let Ok(img) = crate::images::resolve(store, &name) else {
            continue;
        };
        let Ok(full) = skiff_image::names::normalize(&name) else {
            continue;
        };
        proj::progress(false, "Image", &name, "Removing");
        if img.tags.contains(&full) {
            store.untag(&full)?;
            crate::images::image_event(store, "untag", &img.id, &img.id.to_string());
        }
        let users = skiff_engine::db::containers_using_image(store.root(), &img.id.to_string())?;
        if img.tags.len() <= 1 && users.is_empty() {
            store.delete_image(&img.id)?;
            crate::images::image_event(store, "delete", &img.id, &img.id.to_string());
        }
        proj::progress(false, "Image", &name, "Removed");
    }
    store.gc()?;
    Ok(())
}

/// `push`: each selected service's image (services without `image:` are skipped, as compose
/// v2 does).
fn push(r: &Runner, a: &PushArgs) -> Result<i32> {
    for n in r.select(&a.services, false)? {
        let svc = &r.p.services[&n];
        let Some(image) = svc["image"].as_str() else {
            continue;
        };
        proj::progress(a.quiet, "Image", image, "Pushing");
        let res = crate::registry::push(
            r.images.store(),
            &crate::images::PushArgs {
                all_tags: false,
                quiet: true,
                insecure: false,
                disable_content_trust: true,
                name: image.to_string(),
            },
        );
        match res {
            Ok(_) => proj::progress(a.quiet, "Image", image, "Pushed"),
            Err(e) if a.ignore_push_failures => {
                proj::progress(a.quiet, "Image", image, "Error");
                eprintln!(
                    "WARNING: service {n:?}: push {image}: {}",
                    crate::error_text(&e)
                );
            }
            Err(e) => return Err(e.context(format!("service {n:?}: push {image}"))),
        }
    }
    Ok(0)
}

/// `events`: the engine's container events of this project (`--json`: compose v2's objects),
/// stored ones first with `--since`, then live ones until `--until` or Ctrl-C.
fn events(r: &Runner, a: &EventsArgs) -> Result<i32> {
    use skiff_engine::events;
    let since = time_bound("since", &a.since)?;
    let until = time_bound("until", &a.until)?;
    for s in &a.services {
        if !r.p.services.contains_key(s) && !r.p.disabled.contains_key(s) {
            return Err(anyhow!("no such service: {s}"));
        }
    }
    let project = r.p.name.clone();
    let mut out = io::stdout().lock();
    let mut print = |ev: &events::Event| -> bool {
        if ev.kind != "container"
            || ev.attributes.get(service::PROJECT) != Some(&project)
            || ev.attributes.get(service::ONEOFF).map(String::as_str) == Some("True")
        {
            return true;
        }
        let svc = ev
            .attributes
            .get(service::SERVICE)
            .cloned()
            .unwrap_or_default();
        if !a.services.is_empty() && !a.services.contains(&svc) {
            return true;
        }
        // compose v2 leaves its own labels out of the attributes.
        let attrs: BTreeMap<&String, &String> = ev
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with("com.docker.compose."))
            .collect();
        let time = events::rfc3339_nano(ev.time_nano);
        let line = if a.json {
            json!({
                "time": time, "type": "container", "service": svc, "id": ev.id,
                "action": ev.action, "attributes": attrs,
            })
            .to_string()
        } else {
            let list: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // compose v2's text time: `2006-01-02 15:04:05.000000`.
            let short = format!(
                "{} {}",
                &time[..10.min(time.len())],
                time.get(11..26).unwrap_or("")
            );
            format!(
                "{short} container {} {} ({})",
                ev.action,
                ev.id,
                list.join(", ")
            )
        };
        writeln!(out, "{line}").is_ok() && out.flush().is_ok()
    };
    let now = events::now_nano();
    if since.is_some() || until.is_some() {
        for ev in events::read(&r.e.root, since.unwrap_or(0), until.unwrap_or(now).min(now))? {
            if !print(&ev) {
                return Ok(0);
            }
        }
    }
    if until.is_some_and(|u| u <= now) {
        return Ok(0);
    }
    catch_interrupts();
    events::follow(&r.e.root, false, until, |ev| {
        !INTERRUPTED.load(Ordering::SeqCst) && print(ev)
    })?;
    Ok(0)
}

/// `cp`: `SERVICE:PATH` names the service's container `--index` (default: the first; copying
/// into a service without `--index` copies into each of its containers, as compose v2 does).
fn cp(cli: &Cli, r: &Runner, a: &CpArgs) -> Result<i32> {
    use skiff_engine::fsops::CpEnd;
    let to = matches!(CpEnd::parse(&a.dest), CpEnd::Container { .. });
    let (end, other) = if to {
        (&a.dest, &a.src)
    } else {
        (&a.src, &a.dest)
    };
    let CpEnd::Container {
        container: svc,
        path,
    } = CpEnd::parse(end)
    else {
        return Err(anyhow!(
            "copying between services is not supported; name one SERVICE:PATH and a local path"
        ));
    };
    if matches!(CpEnd::parse(other), CpEnd::Container { .. }) {
        return Err(anyhow!("copying between services is not supported"));
    }
    let cs: Vec<Container> = r
        .service_containers(&svc)
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .filter(|c| match a.index {
            Some(i) => proj::number(c) == i,
            None => true,
        })
        .collect();
    let cs: Vec<Container> = if to && a.index.is_none() && a.src != "-" {
        cs
    } else {
        cs.into_iter().take(1).collect()
    };
    if cs.is_empty() {
        return Err(anyhow!(
            "service {svc:?} has no container{}",
            a.index
                .map(|i| format!(" with index {i}"))
                .unwrap_or_default()
        ));
    }
    for c in cs {
        let there = format!("{}:{path}", c.name);
        let (src, dest) = if to {
            (a.src.clone(), there)
        } else {
            (there, a.dest.clone())
        };
        crate::fscmds::cp(
            &cli.root,
            cli.runroot.as_deref(),
            &crate::fscmds::CpArgs {
                archive: a.archive,
                follow_link: a.follow_link,
                quiet: true,
                src,
                dest,
            },
        )?;
    }
    Ok(0)
}

/// `wait`: blocks until the first container of the services stops; exits with its code
/// (`--down-project`: then takes the project down).
fn wait(r: &Runner, a: &WaitArgs) -> Result<i32> {
    r.select(&a.services, false)?;
    let cs: Vec<Container> = r
        .containers(false)?
        .into_iter()
        .filter(|c| a.services.iter().any(|s| s == label(c, SERVICE)))
        .collect();
    if cs.is_empty() {
        return Err(anyhow!("no containers for services {:?}", a.services));
    }
    catch_interrupts();
    let code = loop {
        let mut done = None;
        for c in &cs {
            let cur = r.e.container(&c.id)?;
            if !cur.is_active() {
                done = Some(cur.state.exit_code);
                break;
            }
        }
        if let Some(code) = done {
            break code;
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(130);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if a.down_project {
        r.down(false, false, None)?;
    }
    Ok(code)
}
