//! `skiff debug` and `skiff explain`: the flags, and the text report of `explain` (the engine does
//! the work: skiff_engine::debug and skiff_engine::explain).

use anyhow::{anyhow, Result};
use clap::Args;
use skiff_engine::debug::{DebugRequest, Temporary};
use skiff_engine::explain::{ImageReport, Report};
use skiff_engine::tty::Ended;
use skiff_engine::Error as EngineError;

use crate::containers::Ctx;
use crate::Cli;

/// Flags of `debug`.
#[derive(Args, Debug)]
pub struct DebugArgs {
    /// Keep STDIN open (default: when no command is given and STDIN is a terminal)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY (default: when no command is given and STDIN is a terminal)
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Every capability and no seccomp filter for the debug process (the container keeps its own)
    #[arg(long)]
    pub privileged: bool,
    /// The shell to start when no command is given: sh or bash (the toolbox must have it)
    #[arg(long)]
    pub shell: Option<String>,
    /// An image whose filesystem is the toolbox (default: the host's static busybox)
    #[arg(long)]
    pub toolbox: Option<String>,
    /// Override the key sequence for detaching
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Keep what the session changed as a new image (a stopped container or an image only)
    #[arg(long)]
    pub commit: bool,
    /// With --commit: tag the new image
    #[arg(long, value_name = "NAME")]
    pub tag: Option<String>,
    /// With install: accept a file that is not a static executable
    #[arg(short, long)]
    pub force: bool,
    /// Container or image; or `install PATH…`, `uninstall NAME…`, `ls` for the installed tools
    pub target: String,
    /// Command and arguments (default: the shell)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Flags of `explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Explain an image instead of a container
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Container
    #[arg(required_unless_present = "image")]
    pub container: Option<String>,
}

fn ctx(cli: &Cli) -> Ctx<'_> {
    Ctx {
        root: &cli.root,
        runroot: cli.runroot.as_deref(),
    }
}

/// `skiff debug`; returns the exit code.
pub fn debug(cli: &Cli, a: &DebugArgs) -> i32 {
    match debug_inner(cli, a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            match e.downcast_ref::<EngineError>() {
                Some(EngineError::Start { code, .. }) => *code,
                _ => 125,
            }
        }
    }
}

/// `skiff debug install|uninstall|ls`: the tools kept in the engine's toolbox.
fn tools(cli: &Cli, a: &DebugArgs) -> Result<i32> {
    let e = ctx(cli).engine()?;
    let mut force = a.force;
    let args: Vec<&String> = a
        .command
        .iter()
        .filter(|x| {
            let f = matches!(x.as_str(), "-f" | "--force");
            force |= f;
            !f
        })
        .collect();
    match a.target.as_str() {
        "install" | "uninstall" if args.is_empty() => Err(anyhow!(
            "\"skiff debug {}\" requires at least 1 argument",
            a.target
        )),
        "install" => {
            for p in args {
                let name = e.install_tool(std::path::Path::new(p), force)?;
                println!("{name}");
            }
            Ok(0)
        }
        "uninstall" => {
            for n in args {
                e.uninstall_tool(n)?;
                println!("{n}");
            }
            Ok(0)
        }
        _ => {
            if !args.is_empty() {
                return Err(anyhow!("\"skiff debug ls\" accepts no arguments"));
            }
            println!("{:<24} {:>10}   LINKING", "NAME", "SIZE");
            for t in e.list_tools()? {
                println!(
                    "{:<24} {:>10}   {}",
                    t.name,
                    t.size,
                    if t.is_static { "static" } else { "not static" }
                );
            }
            Ok(0)
        }
    }
}

fn debug_inner(cli: &Cli, a: &DebugArgs) -> Result<i32> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow!("debug needs root privileges; run skiff as root"));
    }
    if matches!(a.target.as_str(), "install" | "uninstall" | "ls") {
        return tools(cli, a);
    }
    let tag = match &a.tag {
        Some(_) if !a.commit => return Err(anyhow!("--tag needs --commit")),
        Some(r) => Some(
            skiff_image::names::normalize(r)
                .map_err(|e| anyhow!("invalid reference format: {r}: {e}"))?,
        ),
        None => None,
    };
    // This process enters the container: run from a read-only view of the binary (CVE-2019-5736).
    skiff_runtime::sealed::ensure_sealed_exe()?;
    let c = ctx(cli);
    let e = c.engine()?;
    let store = c.store()?;
    let term = skiff_engine::tty::isatty(0);
    // docker debug's detection: a shell on a terminal is interactive.
    let auto = a.command.is_empty() && !a.interactive && !a.tty && term;
    let (interactive, tty) = if auto {
        (true, true)
    } else {
        (a.interactive, a.tty)
    };
    if interactive && tty && !term {
        eprintln!("skiff: the input device is not a TTY");
        return Ok(1);
    }
    let req = DebugRequest {
        cmd: a.command.clone(),
        shell: a.shell.clone(),
        interactive,
        tty,
        env: a.env.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        privileged: a.privileged,
        detach_keys: crate::containers::detach_keys(a.detach_keys.as_deref())?,
        upper: None,
    };
    let toolbox = match &a.toolbox {
        Some(t) => {
            let img = crate::images::resolve(&store, t)
                .map_err(|err| anyhow!("toolbox image {t}: {err}"))?;
            skiff_engine::debug::image_toolbox(&store, &img)?
        }
        None => skiff_engine::debug::host_busybox()?,
    };
    if a.privileged {
        eprintln!("WARNING: --privileged: the debug process has every capability and no seccomp filter; it can change the host");
    }
    // A temporary container's session, kept as an image with --commit (its id printed last).
    let in_temporary = |t: Temporary| {
        if !a.commit {
            return e.debug(&t.container, &req, &toolbox);
        }
        let (ended, img) = t.debug_commit(&req, &toolbox, tag.clone())?;
        println!("{}", img.id);
        Ok(ended)
    };
    let r = match e.container(&a.target) {
        Ok(ct) if ct.state.status == "running" || ct.state.status == "paused" => {
            if a.commit {
                return Err(anyhow!(
                    "container {} is {}: --commit keeps the debug session of a stopped container or an image; a running container's own changes are kept with skiff commit",
                    ct.name,
                    ct.state.status
                ));
            }
            e.debug(&ct, &req, &toolbox)
        }
        Ok(ct) => in_temporary(Temporary::start(&e, &store, None, Some(&ct))?),
        Err(EngineError::NoSuchContainer(_)) => {
            let img = crate::images::resolve(&store, &a.target)
                .map_err(|_| anyhow!("No such container or image: {}", a.target))?;
            in_temporary(Temporary::start(&e, &store, Some(&img), None)?)
        }
        Err(err) => return Err(err.into()),
    };
    match r {
        Ok(Ended::Exited(code)) => Ok(code),
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

/// `skiff explain`; returns the exit code.
pub fn explain(cli: &Cli, a: &ExplainArgs) -> i32 {
    let r = (|| -> Result<()> {
        let c = ctx(cli);
        if let Some(i) = &a.image {
            let store = c.store()?;
            let img = crate::images::resolve(&store, i)?;
            let r = skiff_engine::explain::explain_image(&store, &img)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", image_text(&r));
            }
            return Ok(());
        }
        let name = a.container.as_deref().unwrap_or_default();
        let r = c.engine()?.explain(name)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", text(&r));
        }
        Ok(())
    })();
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skiff: {}", crate::error_text(&e));
            1
        }
    }
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", U[i])
    }
}

fn risks_text(out: &mut String, risks: &[skiff_engine::explain::Risk]) {
    if risks.is_empty() {
        out.push_str("Risks: none found\n");
        return;
    }
    out.push_str("Risks:\n");
    for r in risks {
        out.push_str(&format!("  [{}] {}\n", r.severity.to_uppercase(), r.text));
    }
}

/// The readable report of a container.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "Container {} ({}), image {}, {}{}\n\n",
        r.name,
        &r.id[..12.min(r.id.len())],
        r.image,
        r.status,
        if r.pid > 0 {
            format!(", init pid {}", r.pid)
        } else {
            String::new()
        }
    ));
    risks_text(&mut o, &r.risks);
    if r.pid == 0 {
        o.push_str("\n(not running: namespaces, cgroup limits, capabilities and mounts are read from a running container only)\n");
    }
    if !r.namespaces.is_empty() {
        o.push_str("\nNamespaces:\n");
        for n in &r.namespaces {
            o.push_str(&format!("  {:<7} {}\n", n.kind, n.state));
        }
        o.push_str(&format!(
            "\nUser: {}; uid map: {}{}\n",
            r.process_user,
            r.uid_map.join(", "),
            if r.root_is_host_root {
                " (no user namespace: container root is host root)"
            } else {
                ""
            }
        ));
        let l = &r.limits;
        o.push_str("\nCgroup limits (usage now):\n");
        let opt = |v: Option<u64>| v.map(bytes).unwrap_or_else(|| "unlimited".into());
        o.push_str(&format!(
            "  memory  {} (using {})\n",
            opt(l.memory_limit),
            l.memory_usage.map(bytes).unwrap_or_else(|| "?".into())
        ));
        o.push_str(&format!(
            "  cpu     {}{}\n",
            l.cpus
                .map(|c| format!("{c:.2} CPUs"))
                .unwrap_or_else(|| "no quota".into()),
            l.cpu_shares
                .map(|s| format!(", shares/weight {s}"))
                .unwrap_or_default()
        ));
        o.push_str(&format!(
            "  pids    {} ({} now)\n",
            l.pids_limit
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unlimited".into()),
            l.pids_current
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into())
        ));
        if let Some(w) = l.io_weight {
            o.push_str(&format!("  io      weight {w}\n"));
        }
        for (k, p) in &r.cgroup {
            o.push_str(&format!("  path    {k}: {}\n", p.display()));
        }
        o.push_str("\nCapabilities (effective):\n");
        for c in &r.cap_effective {
            o.push_str(&format!(
                "  {}{:<24} {}\n",
                if c.beyond_default { "! " } else { "  " },
                c.name,
                c.meaning
            ));
        }
        if r.cap_effective.is_empty() {
            o.push_str("  none\n");
        }
        if !r.caps_beyond_default.is_empty() {
            o.push_str(&format!(
                "  beyond docker's default (bounding): {}\n",
                r.caps_beyond_default.join(", ")
            ));
        }
        if !r.caps_dropped_from_default.is_empty() {
            o.push_str(&format!(
                "  dropped from docker's default: {}\n",
                r.caps_dropped_from_default.join(", ")
            ));
        }
    }
    o.push_str(&format!(
        "\nseccomp: {} (profile {})",
        r.seccomp.mode, r.seccomp.profile
    ));
    if let Some(s) = &r.seccomp.summary {
        o.push_str(&format!(
            ": {} syscalls blocked, {} allowed, {} allowed with conditions; blocked include {}",
            s.blocked,
            s.allowed,
            s.conditional,
            s.notable_blocked.join(", ")
        ));
    }
    o.push('\n');
    o.push_str(&format!("no_new_privs: {}\n", r.no_new_privs));
    if let Some(a) = &r.apparmor {
        o.push_str(&format!("AppArmor: {a}\n"));
    }
    if let Some(s) = &r.selinux {
        o.push_str(&format!("SELinux: {s}\n"));
    }
    o.push_str(&format!(
        "root filesystem: {} ({} image layers)\n",
        if r.read_only_rootfs {
            "read-only"
        } else {
            "read-write"
        },
        r.layers
    ));
    if !r.masked_paths.is_empty() {
        o.push_str(&format!("masked paths: {}\n", r.masked_paths.join(" ")));
    }
    if !r.readonly_paths.is_empty() {
        o.push_str(&format!(
            "read-only paths: {}\n",
            r.readonly_paths.join(" ")
        ));
    }
    if !r.mounts.is_empty() {
        o.push_str("\nMounts:\n");
        for g in ["layers", "volume", "bind", "tmpfs", "engine", "system"] {
            for m in r.mounts.iter().filter(|m| m.group == g) {
                o.push_str(&format!(
                    "  {:<7} {:<28} {}{}{}\n",
                    g,
                    m.destination,
                    m.source,
                    if m.read_only { " (ro)" } else { "" },
                    m.sensitive
                        .as_ref()
                        .map(|s| format!("  ! {s}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    o.push_str(&format!(
        "\nNetwork: {}; published ports: {}\n",
        r.network_mode,
        if r.ports.is_empty() { "none" } else { &r.ports }
    ));
    o
}

/// The readable report of an image.
pub fn image_text(r: &ImageReport) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "Image {} {}\n\n",
        r.id.trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or(&r.id),
        r.tags.join(", ")
    ));
    risks_text(&mut o, &r.risks);
    o.push_str(&format!(
        "\nUser: {}{}\n",
        r.user,
        if r.runs_as_root && r.user != "root" {
            " (root)"
        } else {
            ""
        }
    ));
    o.push_str(&format!("Command: {}\n", r.command.join(" ")));
    o.push_str(&format!(
        "Exposed ports: {}\n",
        if r.exposed_ports.is_empty() {
            "none".into()
        } else {
            r.exposed_ports.join(", ")
        }
    ));
    o.push_str(&format!(
        "Volumes: {}\n",
        if r.volumes.is_empty() {
            "none".into()
        } else {
            r.volumes.join(", ")
        }
    ));
    o.push_str(&format!(
        "Healthcheck: {}\n",
        r.healthcheck
            .as_ref()
            .map(|t| t.join(" "))
            .unwrap_or_else(|| "none".into())
    ));
    o.push_str(&format!("Layers: {}\n", r.layers));
    o.push_str(&format!("Setuid/setgid files: {}\n", r.setuid_files.len()));
    for f in &r.setuid_files {
        o.push_str(&format!("  {f}\n"));
    }
    o
}
