//! Docker's container JSON (`inspect`) from a container record.
//!
//! The reference is what the docker 28 CLI prints against Debian's dockerd 20.10 (API 1.41), the
//! pair `tests/compat/inspect.sh` runs side by side: every key it shows exists here with the same
//! JSON type. Keys skiff does not model yet (DNS, links, port bindings, …) are filled with docker's
//! value for "not set" only when the record lacks them, so a field later added to `HostConfig`
//! shows its own value.

use serde_json::{json, Map, Value};

use crate::model::Container;
use crate::Engine;

/// HostConfig keys docker always shows, with its value for "not set" (API 1.41 shapes).
fn host_config_defaults() -> [(&'static str, Value); 22] {
    [
        ("ContainerIDFile", json!("")),
        ("PortBindings", json!({})),
        ("VolumeDriver", json!("")),
        ("Dns", json!([])),
        ("DnsOptions", json!([])),
        ("DnsSearch", json!([])),
        ("ExtraHosts", Value::Null),
        ("Cgroup", json!("")),
        ("Links", Value::Null),
        ("PublishAllPorts", json!(false)),
        ("Runtime", json!("runc")),
        ("ConsoleSize", json!([0, 0])),
        ("Isolation", json!("")),
        ("BlkioWeightDevice", json!([])),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("DeviceRequests", Value::Null),
        ("KernelMemoryTCP", json!(0)),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
    ]
}

/// HostConfig keys docker omits when empty (`omitempty` in its API types).
const HOST_CONFIG_OMIT_EMPTY: [&str; 5] = ["Annotations", "Init", "Mounts", "Sysctls", "Tmpfs"];

/// One endpoint of `NetworkSettings.Networks` with every value unset (API 1.41's shape).
pub fn empty_endpoint() -> Value {
    json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": null,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": null,
    })
}

/// The network `Networks` names for a `NetworkMode`: the default mode is docker's `bridge`
/// (skiff has no bridge yet, so its endpoint is empty, as dockerd's with `--bridge=none`).
pub fn network_name(mode: &str) -> &str {
    match mode {
        "" | "default" => "bridge",
        m => m,
    }
}

/// `NetworkSettings` of `c`: docker's shape with every value unset (the network code fills them).
pub fn network_settings(c: &Container) -> Value {
    let mut networks = Map::new();
    let name = network_name(&c.host_config.network_mode);
    let mut ep = empty_endpoint();
    if let Some(o) = c.network_driver_opts.get(name) {
        ep["DriverOpts"] = json!(o);
    }
    networks.insert(name.to_string(), ep);
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks,
    })
}

/// `HostConfig` of `c` as docker shows it.
fn host_config_json(c: &Container) -> Value {
    let hc = &c.host_config;
    let mut v = serde_json::to_value(hc).unwrap_or(Value::Null);
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    if hc.network_mode.is_empty() {
        o.insert("NetworkMode".into(), json!("default"));
    }
    for k in HOST_CONFIG_OMIT_EMPTY {
        let empty = match o.get(k) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if empty {
            o.remove(k);
        }
    }
    // docker records `-m` without `--memory-swap` as twice the memory (swap = memory).
    if hc.memory > 0 && hc.extra.memory_swap == 0 {
        o.insert("MemorySwap".into(), json!(hc.memory * 2));
    }
    if o.get("Ulimits") == Some(&Value::Null) {
        o.insert("Ulimits".into(), json!([]));
    }
    // `--ip`/`--mac-address` live in the endpoint's settings in docker's shape (IPAMConfig).
    o.remove("IpAddress");
    o.remove("MacAddress");
    // dockerd records capabilities in their CAP_ spelling.
    for k in ["CapAdd", "CapDrop"] {
        if let Some(Value::Array(caps)) = o.get_mut(k) {
            for c in caps.iter_mut() {
                if let Some(s) = c.as_str() {
                    *c = json!(cap_name(s));
                }
            }
        }
    }
    // dockerd adds `label=disable` for a container sharing the host's PID or IPC namespace
    // or privileged (no SELinux label can separate it).
    if hc.privileged || hc.extra.pid_mode == "host" || hc.extra.ipc_mode == "host" {
        let opts = o.entry("SecurityOpt").or_insert(Value::Null);
        if !opts.is_array() {
            *opts = json!([]);
        }
        if let Some(a) = opts.as_array_mut() {
            if !a.iter().any(|v| v == "label=disable") {
                a.push(json!("label=disable"));
            }
        }
    }
    let unconfined = hc.privileged
        || hc
            .security_opt
            .iter()
            .flatten()
            .any(|s| s.replace(':', "=") == "systempaths=unconfined");
    let (masked, readonly) = if unconfined {
        (Value::Null, Value::Null)
    } else {
        (
            json!(skiff_runtime::docker::MASKED_PATHS),
            json!(skiff_runtime::docker::READONLY_PATHS),
        )
    };
    o.entry("MaskedPaths").or_insert(masked);
    o.entry("ReadonlyPaths").or_insert(readonly);
    for (k, d) in host_config_defaults() {
        // A field the record has but leaves unset (null) shows docker's "not set" value too.
        match o.get(k) {
            None => {
                o.insert(k.into(), d);
            }
            Some(Value::Null) if !d.is_null() => {
                o.insert(k.into(), d);
            }
            _ => {}
        }
    }
    v
}

/// A capability as dockerd records it: `CAP_` and upper case (`ALL` stays `ALL`).
fn cap_name(s: &str) -> String {
    let u = s.to_ascii_uppercase();
    if u == "ALL" || u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// `Config` of `c` as docker shows it.
fn config_json(c: &Container) -> Value {
    let mut v = serde_json::to_value(&c.config).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        if c.config.env.is_empty() {
            o.insert("Env".into(), Value::Null);
        }
        o.entry("OnBuild").or_insert(Value::Null);
        // The default network is docker's bridge, which skiff does not have yet: the container
        // gets a network namespace with only loopback, which dockerd (`--bridge=none`) reports so.
        if network_name(&c.host_config.network_mode) == "bridge" {
            o.insert("NetworkDisabled".into(), json!(true));
        }
    }
    v
}

/// The `inspect` object of `c`.
pub fn container_json(e: &Engine, c: &Container) -> Value {
    let dir = e.container_dir(&c.id);
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut state = serde_json::to_value(&c.state).unwrap_or(Value::Null);
    if let Some(o) = state.as_object_mut() {
        o.remove("MonitorPid");
        o.remove("MonitorStart");
        if let Some(h) = e.health(c) {
            o.insert(
                "Health".into(),
                serde_json::to_value(h).unwrap_or(Value::Null),
            );
        }
    }
    let mut lowers: Vec<&str> = c.lower_dirs.iter().map(String::as_str).collect();
    lowers.reverse();
    // A rootless user without networks has no hub namespace: nothing to look up, and no reason
    // to make one (with its pasta) for an inspect.
    let eps = if crate::network::hub_missing() {
        Vec::new()
    } else {
        e.net()
            .and_then(|n| n.endpoints(&c.id).map_err(crate::network::net_err))
            .unwrap_or_default()
    };
    let mut cfg = config_json(c);
    if !eps.is_empty() {
        // A real endpoint: the network is not disabled (see config_json).
        if let Some(o) = cfg.as_object_mut() {
            o.remove("NetworkDisabled");
        }
    }
    // `--tmpfs` mounts are HostConfig.Tmpfs only; docker lists `--mount type=tmpfs` ones.
    let shown: Vec<_> = c
        .mounts
        .iter()
        .filter(|m| {
            !(m.kind == "tmpfs"
                && c.host_config
                    .tmpfs
                    .as_ref()
                    .is_some_and(|t| t.contains_key(&m.destination)))
        })
        .collect();
    let mut mounts = serde_json::to_value(&shown).unwrap_or(json!([]));
    for m in mounts.as_array_mut().into_iter().flatten() {
        if let Some(o) = m.as_object_mut() {
            o.remove("Anonymous");
            o.remove("Options");
        }
    }
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image,
        "ResolvConfPath": d("resolv.conf"),
        "HostnamePath": d("hostname"),
        "HostsPath": d("hosts"),
        "LogPath": d("ctr.log"),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        // docker's container `Platform` is the OS alone.
        "Platform": c.platform.split('/').next().filter(|os| !os.is_empty()).unwrap_or("linux"),
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config_json(c),
        "GraphDriver": {
            "Data": {
                "LowerDir": lowers.join(":"),
                "MergedDir": d("rootfs"),
                "UpperDir": d("upper"),
                "WorkDir": d("work"),
            },
            "Name": "overlay2",
        },
        "Mounts": mounts,
        "Config": cfg,
        "NetworkSettings": network_settings_live(e, c, &eps),
    })
}

/// `NetworkSettings.Networks` of a container with endpoints `eps` (inspect and the list's
/// summaries show the same).
pub(crate) fn endpoint_networks(
    c: &Container,
    eps: &[skiff_net::Endpoint],
) -> serde_json::Map<String, Value> {
    let endpoint = |ep: &skiff_net::Endpoint| {
        let mut v = empty_endpoint();
        v["MacAddress"] = json!(ep.mac);
        v["NetworkID"] = json!(ep.network.id);
        v["EndpointID"] = json!(ep.endpoint_id);
        v["Gateway"] = json!(ep.network.gateway.to_string());
        v["IPAddress"] = json!(ep.ip.to_string());
        v["IPPrefixLen"] = json!(ep.network.prefix);
        if let (Some(ip6), Some((_, len6)), Some(gw6)) =
            (ep.ip6(), ep.network.subnet6(), ep.network.gateway6())
        {
            v["GlobalIPv6Address"] = json!(ip6.to_string());
            v["GlobalIPv6PrefixLen"] = json!(len6);
            v["IPv6Gateway"] = json!(gw6.to_string());
        }
        if ep.network.name != "bridge" {
            // docker 28: Aliases are the given ones; DNSNames every name the embedded DNS
            // answers for it (name, aliases, short id, hostname).
            if !ep.aliases.is_empty() {
                v["Aliases"] = json!(ep.aliases);
            }
            v["DNSNames"] = json!(crate::network::dns_names(c, &ep.aliases));
        } else {
            v["DNSNames"] = Value::Null;
        }
        if let Some(o) = c.network_driver_opts.get(&ep.network.name) {
            v["DriverOpts"] = json!(o);
        }
        v
    };
    let mut networks = serde_json::Map::new();
    for ep in eps {
        let mut v = endpoint(ep);
        // `--ip` on the container's own network: docker's endpoint IPAM config.
        if let (Some(ip), true) = (
            &c.host_config.ip_address,
            ep.network.name == c.host_config.network_mode,
        ) {
            v["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        networks.insert(ep.network.name.clone(), v);
    }
    networks
}

/// `inspect`'s NetworkSettings: the container's endpoints, published ports and exposed ones.
fn network_settings_live(e: &Engine, c: &Container, eps: &[skiff_net::Endpoint]) -> Value {
    if eps.is_empty() {
        // No endpoint (none, host, or the bridge switched off): docker's shape, values unset.
        let mut v = network_settings(c);
        let mode = c.host_config.network_mode.as_str();
        if c.network_detached {
            v["Networks"] = json!({});
        } else if matches!(mode, "host" | "none") {
            // docker's built-in networks have ids (stable, kept in the state database).
            if let Ok((id, _)) = e.net().and_then(|n| {
                n.builtin(mode, &crate::proc::now())
                    .map_err(crate::network::net_err)
            }) {
                v["Networks"][mode]["NetworkID"] = json!(id);
            }
        }
        return v;
    }
    let mut ports = serde_json::Map::new();
    if crate::network::is_bridge(&c.host_config.network_mode) {
        for k in c.config.exposed_ports.iter().flatten().map(|(k, _)| k) {
            ports.insert(k.clone(), Value::Null);
        }
    }
    for ep in eps {
        for p in &ep.ports {
            let k = format!("{}/{}", p.port, p.proto);
            let b = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
            match ports.get_mut(&k).and_then(Value::as_array_mut) {
                Some(a) => a.push(b),
                None => {
                    ports.insert(k, json!([b]));
                }
            }
        }
    }
    let networks = endpoint_networks(c, eps);
    // Docker fills the top-level fields from the default bridge only.
    let def = eps.iter().find(|ep| ep.network.name == "bridge");
    let mut v = network_settings(c);
    v["SandboxKey"] = json!(if c.is_active() {
        skiff_net::netns::path(&e.runroot, &c.id)
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    });
    v["Ports"] = Value::Object(ports);
    v["Networks"] = Value::Object(networks);
    if let Some(d) = def {
        v["EndpointID"] = json!(d.endpoint_id);
        v["Gateway"] = json!(d.network.gateway.to_string());
        v["IPAddress"] = json!(d.ip.to_string());
        v["IPPrefixLen"] = json!(d.network.prefix);
        v["MacAddress"] = json!(d.mac);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_is_docker_bridge_shape() {
        let mut c = Container::default();
        c.host_config.network_mode = "default".into();
        let n = network_settings(&c);
        assert_eq!(n["Networks"]["bridge"], empty_endpoint());
        assert_eq!(n["SecondaryIPAddresses"], Value::Null);
        assert_eq!(config_json(&c)["NetworkDisabled"], true);
        c.host_config.network_mode = "none".into();
        assert!(network_settings(&c)["Networks"]["none"].is_object());
        assert!(config_json(&c).get("NetworkDisabled").is_none());
    }

    #[test]
    fn host_config_types_match_docker() {
        let mut c = Container::default();
        c.host_config.memory = 64 << 20;
        let h = host_config_json(&c);
        assert_eq!(h["MemorySwap"], 128 << 20);
        assert_eq!(h["Ulimits"], json!([]));
        assert_eq!(h["Dns"], json!([]));
        assert_eq!(h["ExtraHosts"], Value::Null);
        assert_eq!(h["ConsoleSize"], json!([0, 0]));
        assert!(h.get("Mounts").is_none() && h.get("Init").is_none());
        assert!(h["MaskedPaths"].is_array());
        c.host_config.privileged = true;
        assert_eq!(host_config_json(&c)["MaskedPaths"], Value::Null);
    }
}
