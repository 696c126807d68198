//! Docker's container JSON (`inspect`) from a container record.

use serde_json::{json, Value};

use crate::model::Container;
use crate::Engine;

/// The `inspect` object of `c`.
pub fn container_json(e: &Engine, c: &Container) -> Value {
    let dir = e.container_dir(&c.id);
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut state = serde_json::to_value(&c.state).unwrap_or(Value::Null);
    if let Some(o) = state.as_object_mut() {
        o.remove("MonitorPid");
        o.remove("MonitorStart");
    }
    let mut lowers: Vec<&str> = c.lower_dirs.iter().map(String::as_str).collect();
    lowers.reverse();
    let net = match c.host_config.network_mode.as_str() {
        "host" => "host".to_string(),
        m if crate::network::is_bridge(m) => m.to_string(),
        _ => "none".to_string(),
    };
    let eps = e
        .net()
        .and_then(|n| n.endpoints(&c.id).map_err(crate::network::net_err))
        .unwrap_or_default();
    let mut host_config = serde_json::to_value(&c.host_config).unwrap_or(Value::Null);
    if let Some(o) = host_config.as_object_mut() {
        if o.get("NetworkMode") == Some(&json!("default")) {
            o.insert("NetworkMode".into(), json!("none"));
        }
    }
    let mut mounts = serde_json::to_value(&c.mounts).unwrap_or(json!([]));
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
        "Platform": if c.platform.is_empty() { "linux" } else { c.platform.as_str() },
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
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
        "Config": c.config,
        "NetworkSettings": network_settings(e, c, &net, &eps),
    })
}

/// `inspect`'s NetworkSettings: the container's endpoints, published ports and exposed ones.
fn network_settings(e: &Engine, c: &Container, net: &str, eps: &[skiff_net::Endpoint]) -> Value {
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
    let endpoint = |ep: Option<&skiff_net::Endpoint>| match ep {
        Some(ep) => json!({
            "IPAMConfig": Value::Null,
            "Links": Value::Null,
            "Aliases": Value::Null,
            "MacAddress": ep.mac,
            "NetworkID": ep.network.id,
            "EndpointID": ep.endpoint_id,
            "Gateway": ep.network.gateway.to_string(),
            "IPAddress": ep.ip.to_string(),
            "IPPrefixLen": ep.network.prefix,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": if ep.network.name == "bridge" { Value::Null } else {
                json!([c.name, &c.id[..12]])
            },
        }),
        None => json!({
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "MacAddress": "",
        }),
    };
    let mut networks = serde_json::Map::new();
    if eps.is_empty() {
        networks.insert(net.to_string(), endpoint(None));
    }
    for ep in eps {
        networks.insert(ep.network.name.clone(), endpoint(Some(ep)));
    }
    // Docker fills the top-level fields from the default bridge only.
    let def = eps.iter().find(|ep| ep.network.name == "bridge");
    let active = c.is_active();
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": if active && !eps.is_empty() {
            skiff_net::netns::path(&e.runroot, &c.id).to_string_lossy().into_owned()
        } else {
            String::new()
        },
        "HairpinMode": false,
        "Ports": ports,
        "Gateway": def.map(|d| d.network.gateway.to_string()).unwrap_or_default(),
        "IPAddress": def.map(|d| d.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": def.map(|d| d.network.prefix).unwrap_or(0),
        "MacAddress": def.map(|d| d.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}
