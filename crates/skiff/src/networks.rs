//! `skiff network create/ls/inspect/rm/prune`, shaped like docker's.

use std::io::{self, Write};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skiff_engine::network::net_err;
use skiff_engine::Engine;

use crate::template::Template;
use crate::Cli;

/// `skiff network ...`
#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

/// Flags of `network connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// Network
    pub network: String,
    /// Container
    pub container: String,
}

/// Flags of `network disconnect`.
#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    /// Network
    pub network: String,
    /// Container
    pub container: String,
}

/// Flags of `network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Network name
    pub name: String,
}

/// Flags of `network ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

/// Flags of `network inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Networks
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// Flags of `network rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Networks
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// Flags of `network prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn inspect_json(e: &Engine, n: &skiff_engine::skiff_net::Network) -> Result<Value> {
    let net = e.net()?;
    let mut containers = serde_json::Map::new();
    for ep in net.endpoints_of(n).map_err(net_err)? {
        containers.insert(
            ep.container.clone(),
            json!({
                "Name": ep.name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": format!("{}/{}", ep.ip, n.prefix),
                "IPv6Address": "",
            }),
        );
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{"Subnet": n.cidr(), "Gateway": n.gateway.to_string()}],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    }))
}

/// Containers recorded on network `name` (started or not).
fn users(e: &Engine, name: &str) -> Result<Vec<String>> {
    Ok(e.list()?
        .into_iter()
        .filter(|c| c.host_config.network_mode == name)
        .map(|c| c.name)
        .collect())
}

fn remove(e: &Engine, s: &str) -> Result<String> {
    let net = e.net()?;
    let n = net.find(s, &skiff_engine::proc::now()).map_err(net_err)?;
    let u = users(e, &n.name)?;
    if !u.is_empty() && n.name != "bridge" {
        bail!(
            "error while removing network: network {} id {} has active endpoints ({})",
            n.name,
            n.id,
            u.join(", ")
        );
    }
    net.remove(&n.id).map_err(net_err)?;
    Ok(n.name)
}

/// Runs one `network` subcommand.
pub fn run(cli: &Cli, cmd: &NetworkCommand) -> Result<i32> {
    let e = Engine::open(&cli.root, cli.runroot.as_deref())?;
    let now = skiff_engine::proc::now();
    let mut out = io::stdout().lock();
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "bridge" {
                bail!(
                    "plugin \"{}\" not found (skiff has the bridge driver only)",
                    a.driver
                );
            }
            let labels = a
                .label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let n = e
                .net()?
                .create(
                    &skiff_engine::skiff_net::CreateRequest {
                        name: a.name.clone(),
                        subnet: a.subnet.clone(),
                        gateway: a.gateway.clone(),
                        internal: a.internal,
                        labels,
                    },
                    &now,
                )
                .map_err(net_err)?;
            writeln!(out, "{}", n.id)?;
        }
        NetworkCommand::Ls(a) => {
            let nets = e.net()?.list(&now).map_err(net_err)?;
            if a.quiet {
                for n in &nets {
                    writeln!(out, "{}", if a.no_trunc { &n.id } else { &n.id[..12] })?;
                }
                return Ok(0);
            }
            let rows: Vec<Value> = nets
                .iter()
                .map(|n| {
                    json!({
                        "ID": if a.no_trunc { n.id.clone() } else { n.id[..12].to_string() },
                        "Name": n.name,
                        "Driver": "bridge",
                        "Scope": "local",
                        "IPv6": "false",
                        "Internal": n.internal.to_string(),
                        "CreatedAt": n.created,
                    })
                })
                .collect();
            let t = Template::or_default(
                a.format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            )?;
            let headers = crate::template::headers(&[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("CreatedAt", "CREATED AT"),
            ]);
            write!(out, "{}", t.render_all(&rows, &headers)?)?;
        }
        NetworkCommand::Inspect(a) => {
            let net = e.net()?;
            let mut docs = Vec::new();
            let mut missing = None;
            for s in &a.networks {
                match net.find(s, &now) {
                    Ok(n) => docs.push(inspect_json(&e, &n)?),
                    Err(err) => missing = Some(net_err(err)),
                }
            }
            match &a.format {
                Some(f) => {
                    let t = Template::new(f)?.inspect();
                    for d in &docs {
                        writeln!(out, "{}", t.render(d)?)?;
                    }
                }
                None => writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?,
            }
            if let Some(m) = missing {
                return Err(anyhow!(m));
            }
        }
        NetworkCommand::Rm(a) => {
            let mut failed = false;
            for s in &a.networks {
                match remove(&e, s) {
                    Ok(_) => writeln!(out, "{s}")?,
                    Err(err) if a.force && err.to_string().ends_with("not found") => {}
                    Err(err) => {
                        eprintln!("skiff: {err:#}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        NetworkCommand::Connect(a) => {
            e.connect_network(&a.network, &a.container, a.ip.as_deref())?;
        }
        NetworkCommand::Disconnect(a) => {
            e.disconnect_network(&a.network, &a.container)?;
        }
        NetworkCommand::Prune(_) => {
            let nets = e.net()?.list(&now).map_err(net_err)?;
            let mut removed = Vec::new();
            for n in nets.iter().filter(|n| n.name != "bridge") {
                if users(&e, &n.name)?.is_empty() && remove(&e, &n.id).is_ok() {
                    removed.push(n.name.clone());
                }
            }
            if !removed.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for r in removed {
                    writeln!(out, "{r}")?;
                }
            }
        }
    }
    Ok(0)
}
