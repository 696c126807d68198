//! `skiff serve`: the Docker Engine API (crates/api) on a unix socket, for the docker CLI,
//! docker-compose, docker-py and other API clients.

use anyhow::{anyhow, Result};
use clap::Args;

use crate::Cli;

/// Flags of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where to listen: unix:///path (default unix:///run/skiff/docker.sock, for an ordinary
    /// user unix://$XDG_RUNTIME_DIR/skiff/docker.sock), tcp://IP:PORT (needs --tlsverify, or
    /// --tls=false on loopback), fd:// (systemd sockets)
    #[arg(short = 'H', long = "host")]
    pub host: Vec<String>,
    /// Serve TCP over TLS; --tls=false acknowledges plain TCP (loopback only; root for all)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls: Option<bool>,
    /// TLS with client certificates signed by --tlscacert (implies --tls)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tlsverify: Option<bool>,
    /// CA certificate (PEM) that signs accepted client certificates
    #[arg(long)]
    pub tlscacert: Option<std::path::PathBuf>,
    /// Server certificate (PEM)
    #[arg(long)]
    pub tlscert: Option<std::path::PathBuf>,
    /// Server private key (PEM)
    #[arg(long)]
    pub tlskey: Option<std::path::PathBuf>,
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(cli: &Cli, a: &ServeArgs) -> Result<i32> {
    let specs = if a.host.is_empty() && skiff_engine::rootless::active() {
        // A user's server listens in the user's run directory ($XDG_RUNTIME_DIR/skiff).
        let rd = skiff_engine::rootless::run_root()?;
        vec![format!("unix://{}", rd.join("docker.sock").display())]
    } else if a.host.is_empty() {
        vec!["unix:///run/skiff/docker.sock".to_string()]
    } else {
        a.host.clone()
    };
    let mut hosts = Vec::new();
    for h in &specs {
        hosts.push(skiff_api::parse_host(h).map_err(|e| anyhow!(e))?);
    }
    let exe =
        std::fs::read_link("/proc/self/exe").map_err(|e| anyhow!("find the skiff binary: {e}"))?;
    for h in &specs {
        eprintln!(
            "skiff serve: API {}-{} on {h}",
            skiff_api::MIN_API_VERSION,
            skiff_api::MAX_API_VERSION
        );
    }
    skiff_api::serve(skiff_api::Options {
        root: cli.root.clone(),
        runroot: cli.runroot.clone(),
        hosts,
        exe,
        tls: skiff_api::Tls {
            tls: a.tls,
            verify: a.tlsverify,
            ca: a.tlscacert.clone(),
            cert: a.tlscert.clone(),
            key: a.tlskey.clone(),
        },
    })?;
    Ok(0)
}
