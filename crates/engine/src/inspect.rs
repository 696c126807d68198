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
        if let Some(h) = e.health(c) {
            o.insert(
                "Health".into(),
                serde_json::to_value(h).unwrap_or(Value::Null),
            );
        }
    }
    let mut lowers: Vec<&str> = c.lower_dirs.iter().map(String::as_str).collect();
    lowers.reverse();
    let net = if c.host_config.network_mode == "host" {
        "host"
    } else {
        "none"
    };
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
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "HairpinMode": false,
            "Ports": {},
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "MacAddress": "",
            "Networks": {
                net: {
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "MacAddress": "",
                }
            }
        },
    })
}
