//! `create`, `start`, `run`, `state`, `kill`, `delete`, `list`, `ps`, `exec`, `features`, `spec`.

use super::Cli;
use anyhow::{bail, Context, Result};
use skiff_runtime::container::{self, Console, CreateOpts};
use skiff_runtime::state::State;
use std::path::PathBuf;

/// Flags of `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to receive the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring (accepted for compatibility).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional fds (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Detach from the container's process (run only).
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits (run only; accepted).
    #[arg(long)]
    pub keep: bool,
    /// Container id.
    pub id: String,
}

fn manager(cli: &Cli) -> skiff_cgroups::ManagerKind {
    match cli.cgroup_manager.as_deref() {
        Some("disabled") => return skiff_cgroups::ManagerKind::Disabled,
        Some("systemd") => return skiff_cgroups::ManagerKind::Systemd,
        Some(_) => return skiff_cgroups::ManagerKind::Cgroupfs,
        None => {}
    }
    if cli.systemd_cgroup {
        skiff_cgroups::ManagerKind::Systemd
    } else {
        skiff_cgroups::ManagerKind::Cgroupfs
    }
}

fn opts(cli: &Cli, a: &CreateArgs) -> CreateOpts {
    CreateOpts {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console: a
            .console_socket
            .clone()
            .map(Console::Path)
            .unwrap_or_default(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        manager: manager(cli),
    }
}

/// `create`.
pub fn create(cli: &Cli, a: &CreateArgs) -> Result<i32> {
    container::create(opts(cli, a))?;
    Ok(0)
}

/// `run`.
pub fn run(cli: &Cli, a: &CreateArgs) -> Result<i32> {
    Ok(container::run(opts(cli, a), a.detach)?)
}

/// Flags of verbs taking only an id.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Container id.
    pub id: String,
}

/// `start`.
pub fn start(cli: &Cli, a: &IdArgs) -> Result<i32> {
    container::start(&cli.root, &a.id)?;
    Ok(0)
}

/// `state`.
pub fn state(cli: &Cli, a: &IdArgs) -> Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&st.oci_state(&cli.root))?
    );
    Ok(0)
}

/// Flags of `kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Send the signal to all processes in the container.
    #[arg(short, long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name or number (default SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// `kill`.
pub fn kill(cli: &Cli, a: &KillArgs) -> Result<i32> {
    let sig = skiff_runtime::util::parse_signal(&a.signal)?;
    container::kill(&cli.root, &a.id, sig, a.all)?;
    Ok(0)
}

/// Flags of `delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is running.
    #[arg(short, long)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

/// `delete`.
pub fn delete(cli: &Cli, a: &DeleteArgs) -> Result<i32> {
    match container::delete(&cli.root, &a.id, a.force) {
        Err(skiff_runtime::Error::NotFound(_)) if a.force => Ok(0),
        r => {
            r?;
            Ok(0)
        }
    }
}

/// Flags of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `list`.
pub fn list(cli: &Cli, a: &ListArgs) -> Result<i32> {
    let all = container::list(&cli.root)?;
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<_> = all.iter().map(|s| s.oci_state(&cli.root)).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|s| {
                    let o = s.oci_state(&cli.root);
                    [
                        s.id.clone(),
                        o["pid"].to_string(),
                        o["status"].as_str().unwrap_or("").to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        s.owner.clone(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
            let mut w = head.map(str::len);
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.len());
                }
            }
            let line = |cols: [&str; 6]| {
                let mut s = String::new();
                for (i, c) in cols.iter().enumerate() {
                    if i == 5 {
                        s.push_str(c);
                    } else {
                        s.push_str(&format!("{:<width$}   ", c, width = w[i]));
                    }
                }
                println!("{}", s.trim_end());
            };
            line(head);
            for r in &rows {
                line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
            }
        }
        f => bail!("invalid format option {f:?}: use table or json"),
    }
    Ok(0)
}

/// Flags of `ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Output format: table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Container id.
    pub id: String,
    /// Options passed to ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `ps`.
pub fn ps(cli: &Cli, a: &PsArgs) -> Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    let mut pids = st.cgroup.procs()?;
    if pids.is_empty() && st.init_alive() {
        pids.push(st.pid);
    }
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    if a.format != "table" {
        bail!("invalid format option {:?}: use table or json", a.format);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(0);
    };
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                println!("{l}");
            }
        }
    }
    Ok(0)
}

/// Flags of `exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Unix socket to receive the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Environment variables (KEY=VALUE), repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json describing the process.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the process.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// AppArmor profile.
    #[arg(long = "apparmor")]
    pub apparmor: Option<String>,
    /// SELinux process label.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability, repeatable.
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Pass N additional fds.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Join a sub-cgroup (accepted).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container (accepted).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Container id.
    pub id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `exec`.
pub fn exec(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    // The container's state is read once, here, for both the process template and the exec.
    let target = skiff_runtime::exec::ExecTarget::load(&cli.root, &a.id)?;
    let process: oci_spec::runtime::Process = if let Some(p) = &a.process {
        let data = std::fs::read(p).with_context(|| format!("process file {}", p.display()))?;
        target
            .process_from_json(&data)
            .with_context(|| format!("process file {}", p.display()))?
    } else {
        if a.command.is_empty() {
            bail!("exec: no command given");
        }
        let mut p = target.process().cloned().unwrap_or_default();
        p.set_args(Some(a.command.clone()));
        p.set_terminal(Some(a.tty));
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
        if let Some(c) = &a.cwd {
            p.set_cwd(c.clone());
        }
        if let Some(u) = &a.user {
            let (uid, gid) = match u.split_once(':') {
                Some((u, g)) => (u.parse::<u32>()?, Some(g.parse::<u32>()?)),
                None => (u.parse::<u32>()?, None),
            };
            p.user_mut().set_uid(uid);
            if let Some(g) = gid {
                p.user_mut().set_gid(g);
            }
        }
        if !a.additional_gids.is_empty() {
            p.user_mut()
                .set_additional_gids(Some(a.additional_gids.clone()));
        }
        if a.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        if !a.cap.is_empty() {
            let mut caps = p.capabilities().clone().unwrap_or_default();
            for c in &a.cap {
                let cap: oci_spec::runtime::Capability =
                    serde_json::from_value(serde_json::Value::String(c.clone()))
                        .with_context(|| format!("unknown capability {c:?}"))?;
                let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                    let mut s = s.clone().unwrap_or_default();
                    s.insert(cap);
                    Some(s)
                };
                caps.set_bounding(add(caps.bounding()));
                caps.set_effective(add(caps.effective()));
                caps.set_permitted(add(caps.permitted()));
            }
            p.set_capabilities(Some(caps));
        }
        if a.apparmor.is_some() {
            p.set_apparmor_profile(a.apparmor.clone());
        }
        if a.process_label.is_some() {
            p.set_selinux_label(a.process_label.clone());
        }
        p
    };
    let o = skiff_runtime::exec::ExecOpts {
        root: cli.root.clone(),
        id: a.id.clone(),
        process,
        console: a
            .console_socket
            .clone()
            .map(Console::Path)
            .unwrap_or_default(),
        pid_file: a.pid_file.clone(),
        detach: a.detach,
        preserve_fds: a.preserve_fds,
    };
    skiff_runtime::exec::exec_in(&target, o).with_context(|| format!("container {:?}: exec", a.id))
}

/// `features`: what this runtime supports, in the runtime-spec features.md shape.
pub fn features() -> Result<i32> {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut caps = caps;
    caps.sort();
    let v = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": skiff_runtime::rootfs::MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false, "schemata": false},
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        // runtime-spec 1.2's features have no field for these process settings; say so here.
        "annotations": {
            "org.opencontainers.runtime-spec.features.skiff.version": env!("CARGO_PKG_VERSION"),
            "org.opencontainers.runtime-spec.features.skiff.execCPUAffinity": "initial,final"
        }
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
