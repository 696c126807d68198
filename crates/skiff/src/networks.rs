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
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_delimiter = ',')]
    pub driver_opt: Vec<String>,
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
    /// Subnet in CIDR format that represents a network segment (an IPv4 one, and an IPv6 one
    /// with --ipv6)
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Option<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Option<String>,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable or disable IPv6 address assignment
    #[arg(long, default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set, default_value_t = false)]
    pub ipv6: bool,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
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
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
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
    /// Provide filter values (e.g. "until=<timestamp>", "label=k=v", "label!=k")
    #[arg(long)]
    pub filter: Vec<String>,
}

fn inspect_json(e: &Engine, n: &skiff_engine::skiff_net::Network) -> Result<Value> {
    // The same object as `GET /networks/{id}` (skiff serve).
    Ok(e.network_json(n)?)
}

/// `network inspect host|none`: docker's built-in networks and the containers on them.
fn builtin_json(e: &Engine, name: &str, _now: &str) -> Result<Value> {
    Ok(e.builtin_network_json(name)?)
}

fn remove(e: &Engine, s: &str) -> Result<String> {
    Ok(e.remove_network(s)?)
}

/// One row of `network ls`.
#[derive(Debug, Clone)]
struct LsRow {
    id: String,
    name: String,
    driver: &'static str,
    ipv6: bool,
    internal: bool,
    created: String,
    labels: std::collections::BTreeMap<String, String>,
    /// docker's predefined networks (`bridge`, `host`, `none`): `type=builtin`.
    builtin: bool,
}

/// `network ls --filter`, as dockerd applies them: values of one key are OR-ed, keys AND-ed;
/// `name` and `id` match substrings (id: a prefix), `label` is `KEY` or `KEY=VALUE`, `type` is
/// `custom` or `builtin`, `dangling` keeps networks without containers (`in_use` tells).
fn ls_filter(
    rows: Vec<LsRow>,
    filters: &[String],
    in_use: impl Fn(&str) -> skiff_engine::Result<bool>,
) -> Result<Vec<LsRow>> {
    let mut by: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        match k {
            "driver" | "id" | "label" | "name" | "scope" | "dangling" => {}
            "type" if matches!(v, "custom" | "builtin") => {}
            "type" => bail!("invalid filter: 'type'='{v}'"),
            other => bail!("Invalid filter '{other}'"),
        }
        by.entry(k).or_default().push(v);
    }
    let dangling = match by.get("dangling").map(Vec::as_slice) {
        None => None,
        Some(vs) => Some(match vs {
            [v] if v.eq_ignore_ascii_case("true") || *v == "1" => true,
            [v] if v.eq_ignore_ascii_case("false") || *v == "0" => false,
            _ => bail!("invalid filter 'dangling=[{}]'", vs.join(" ")),
        }),
    };
    let any =
        |k: &str, f: &dyn Fn(&str) -> bool| by.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)));
    let mut out = Vec::new();
    for r in rows {
        let keep = any("driver", &|v| v == r.driver)
            && any("id", &|v| r.id.starts_with(v))
            && any("name", &|v| r.name.contains(v))
            && any("scope", &|v| v == "local")
            && any("type", &|v| (v == "builtin") == r.builtin)
            && by.get("label").is_none_or(|vs| {
                vs.iter()
                    .all(|l| skiff_engine::volumes::label_matches(&r.labels, l))
            });
        if !keep {
            continue;
        }
        if let Some(d) = dangling {
            // docker: the predefined networks are never dangling.
            let unused = !r.builtin && !in_use(&r.name)?;
            if d != unused {
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// Runs one `network` subcommand.
pub fn run(cli: &Cli, cmd: &NetworkCommand) -> Result<i32> {
    let e = Engine::open(&cli.root, cli.runroot.as_deref())?;
    let now = skiff_engine::proc::now();
    let mut out = io::stdout().lock();
    match cmd {
        NetworkCommand::Create(a) => {
            match a.driver.as_str() {
                "bridge" => {}
                d @ ("host" | "null") => {
                    bail!("only one instance of \"{d}\" network is allowed")
                }
                d @ ("overlay" | "macvlan" | "ipvlan") => bail!(
                    "network {}: the {d} driver is not supported (skiff has the bridge driver only)",
                    a.name
                ),
                d => bail!("plugin \"{d}\" not found (skiff has the bridge driver only)"),
            }
            let (mut v4, mut v6) = (None, None);
            for s in &a.subnet {
                let slot = if s.contains(':') { &mut v6 } else { &mut v4 };
                if slot.is_some() {
                    bail!(
                        "network {}: more than one {} subnet (skiff takes one of each)",
                        a.name,
                        if s.contains(':') { "IPv6" } else { "IPv4" }
                    );
                }
                *slot = Some(s.clone());
            }
            if v6.is_some() && !a.ipv6 {
                bail!("network {}: an IPv6 subnet needs --ipv6", a.name);
            }
            let mut options = std::collections::BTreeMap::new();
            for o in &a.opt {
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                options.insert(k.to_string(), v.to_string());
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
                        subnet: v4,
                        gateway: a.gateway.clone(),
                        internal: a.internal,
                        labels,
                        ip_range: a.ip_range.clone(),
                        attachable: a.attachable,
                        options,
                        ipv6: a.ipv6,
                        subnet6: v6,
                    },
                    &now,
                )
                .map_err(net_err)?;
            writeln!(out, "{}", n.id)?;
        }
        NetworkCommand::Ls(a) => {
            let net = e.net()?;
            let nets = net.list(&now).map_err(net_err)?;
            let mut all: Vec<LsRow> = nets
                .iter()
                .map(|n| LsRow {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    driver: "bridge",
                    ipv6: n.extra.subnet6.is_some(),
                    internal: n.internal,
                    created: n.created.clone(),
                    labels: n.labels.clone(),
                    builtin: n.name == "bridge",
                })
                .collect();
            // docker's built-in host and none too.
            for (name, driver) in [("host", "host"), ("none", "null")] {
                let (id, created) = net.builtin(name, &now).map_err(net_err)?;
                all.push(LsRow {
                    id,
                    name: name.to_string(),
                    driver,
                    ipv6: false,
                    internal: false,
                    created,
                    labels: Default::default(),
                    builtin: true,
                });
            }
            let mut all = ls_filter(all, &a.filter, |n| e.network_in_use(n))?;
            all.sort_by(|x, y| x.name.cmp(&y.name));
            if a.quiet {
                for n in &all {
                    writeln!(out, "{}", if a.no_trunc { &n.id } else { &n.id[..12] })?;
                }
                return Ok(0);
            }
            let rows: Vec<Value> = all
                .iter()
                .map(|n| {
                    json!({
                        "ID": if a.no_trunc { n.id.clone() } else { n.id[..12].to_string() },
                        "Name": n.name,
                        "Driver": n.driver,
                        "Scope": "local",
                        "IPv6": n.ipv6.to_string(),
                        "Internal": n.internal.to_string(),
                        "CreatedAt": n.created,
                        // docker joins them in map order; sorted here, so the output is stable.
                        "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
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
                ("Labels", "LABELS"),
            ]);
            write!(out, "{}", t.render_all(&rows, &headers)?)?;
        }
        NetworkCommand::Inspect(a) => {
            let net = e.net()?;
            let mut docs = Vec::new();
            let mut missing = None;
            for s in &a.networks {
                if let Some(b) = e.builtin_network_name(s)? {
                    docs.push(builtin_json(&e, b, &now)?);
                    continue;
                }
                match net.find(s, &now) {
                    Ok(n) => docs.push(inspect_json(&e, &n)?),
                    Err(err) => missing = Some(net_err(err)),
                }
            }
            match &a.format {
                Some(f) => {
                    let t = Template::new(f)?.inspect();
                    for d in &docs {
                        writeln!(out, "{}", t.render(&crate::template::typed_view(d))?)?;
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
            let mut driver_opts = std::collections::BTreeMap::new();
            for o in &a.driver_opt {
                // As docker's CLI here: trimmed, case kept (unlike `--network driver-opt=`).
                match o.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        driver_opts.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    _ => bail!("invalid key/value pair format in driver options"),
                }
            }
            e.connect_network_with(
                &a.network,
                &a.container,
                &skiff_engine::network::EndpointOpts {
                    ip: a.ip.as_deref(),
                    aliases: Some(&a.alias),
                    mac: None,
                    driver_opts,
                },
            )?;
        }
        NetworkCommand::Disconnect(a) => {
            e.disconnect_network(&a.network, &a.container)?;
        }
        NetworkCommand::Prune(a) => {
            let f = skiff_engine::prune::parse_filters(&a.filter)?;
            let removed = skiff_engine::prune::prune_networks(&e, &f)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, builtin: bool, labels: &[(&str, &str)]) -> LsRow {
        LsRow {
            id: format!("{:0<64}", name.len()),
            name: name.into(),
            driver: if name == "host" { "host" } else { "bridge" },
            ipv6: false,
            internal: false,
            created: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            builtin,
        }
    }

    fn names(filters: &[&str]) -> Result<Vec<String>> {
        let rows = vec![
            row("bridge", true, &[]),
            row("host", true, &[]),
            row("web", false, &[("tier", "web")]),
            row("db", false, &[("tier", "db"), ("x", "")]),
        ];
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        Ok(ls_filter(rows, &f, |n| Ok(n == "web"))?
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    #[test]
    fn ls_filters_as_dockerd() {
        assert_eq!(names(&[]).unwrap(), ["bridge", "host", "web", "db"]);
        assert_eq!(names(&["type=custom"]).unwrap(), ["web", "db"]);
        assert_eq!(names(&["type=builtin"]).unwrap(), ["bridge", "host"]);
        assert_eq!(names(&["driver=host"]).unwrap(), ["host"]);
        // name: substring, OR-ed; label: AND-ed, KEY or KEY=VALUE.
        assert_eq!(
            names(&["name=e", "name=d"]).unwrap(),
            ["bridge", "web", "db"]
        );
        assert_eq!(names(&["label=tier"]).unwrap(), ["web", "db"]);
        assert_eq!(names(&["label=tier", "label=x"]).unwrap(), ["db"]);
        assert_eq!(names(&["label=tier=web"]).unwrap(), ["web"]);
        // dangling: custom networks without containers; built-ins never.
        assert_eq!(names(&["dangling=true"]).unwrap(), ["db"]);
        assert_eq!(
            names(&["dangling=false"]).unwrap(),
            ["bridge", "host", "web"]
        );
        assert_eq!(
            names(&["bogus=1"]).unwrap_err().to_string(),
            "Invalid filter 'bogus'"
        );
        assert!(names(&["type=other"]).is_err());
        assert!(names(&["dangling=maybe"]).is_err());
        assert!(names(&["name"]).is_err());
    }

    #[test]
    fn template_view_has_the_typed_struct_fields() {
        let v =
            crate::template::typed_view(&json!({"IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}]}}));
        let t = Template::new("{{range .IPAM.Config}}{{.Subnet}}|{{.IPRange}}|{{.Gateway}}{{end}}")
            .unwrap()
            .inspect();
        assert_eq!(t.render(&v).unwrap(), "10.0.0.0/24||");
    }
}
