//! Responses shaped by the client's API version, as dockerd's routers gate them: the engine
//! builds the newest (v1.50) objects, and these functions remove the fields an older version
//! did not have and put back the ones it still had. `GET /containers/json` needs nothing here:
//! the fields docker gates in it (`HostConfig.Annotations` from 1.46, `ImageManifestDescriptor`
//! from 1.48) are ones skiff's summaries do not carry (docker 28 with its graph-driver store
//! sends neither either).

use serde_json::{json, Map, Value};

use crate::http::Version;

fn lt(v: Version, major: u32, minor: u32) -> bool {
    v < (major, minor)
}

/// `GET /info`.
pub fn info(v: Version, j: &mut Value) {
    let Some(m) = j.as_object_mut() else { return };
    if lt(v, 1, 50) {
        m.remove("DiscoveredDevices");
        m.insert("BridgeNfIptables".into(), json!(false));
        m.insert("BridgeNfIp6tables".into(), json!(false));
    }
    if lt(v, 1, 49) {
        m.remove("FirewallBackend");
        // The commits' `Expected` (omitted from 1.49 on) equals their ID.
        for k in ["ContainerdCommit", "RuncCommit", "InitCommit"] {
            if let Some(Value::Object(c)) = m.get_mut(k) {
                let id = c.get("ID").cloned().unwrap_or(json!(""));
                c.insert("Expected".into(), id);
            }
        }
    }
    if lt(v, 1, 47) {
        if let Some(Value::Object(r)) = m.get_mut("RegistryConfig") {
            r.insert("AllowNondistributableArtifactsCIDRs".into(), Value::Null);
            r.insert(
                "AllowNondistributableArtifactsHostnames".into(),
                Value::Null,
            );
        }
    }
    if lt(v, 1, 46) {
        m.remove("Containerd");
    }
    if lt(v, 1, 44) {
        if let Some(Value::Object(rts)) = m.get_mut("Runtimes") {
            for rt in rts.values_mut() {
                if let Some(o) = rt.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if lt(v, 1, 39) {
        for k in ["KernelVersion", "OperatingSystem"] {
            if m.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                m.insert(k.into(), json!("<unknown>"));
            }
        }
    }
    if lt(v, 1, 25) {
        m.insert("ExecutionDriver".into(), json!("<not supported>"));
        // `name=seccomp,profile=default` → `seccomp`.
        if let Some(Value::Array(opts)) = m.get_mut("SecurityOptions") {
            for o in opts.iter_mut() {
                let name = o.as_str().and_then(|s| {
                    s.split(',')
                        .find_map(|kv| kv.strip_prefix("name="))
                        .map(String::from)
                });
                if let Some(n) = name {
                    *o = json!(n);
                }
            }
        }
    }
}

/// `GET /containers/{id}/json`.
pub fn container_inspect(v: Version, j: &mut Value) {
    if lt(v, 1, 48) {
        if let Some(m) = j.as_object_mut() {
            m.remove("ImageManifestDescriptor");
        }
    }
    if lt(v, 1, 46) {
        if let Some(Value::Object(h)) = j.get_mut("HostConfig") {
            h.remove("Annotations");
        }
    }
    if lt(v, 1, 45) {
        // Before 1.45 the aliases on user-defined networks held the short id and the hostname.
        let short: String = j["Id"].as_str().unwrap_or("").chars().take(12).collect();
        let hostname = j["Config"]["Hostname"].as_str().unwrap_or("").to_string();
        if let Some(Value::Object(nets)) = j["NetworkSettings"].get_mut("Networks") {
            for (name, ep) in nets.iter_mut() {
                if matches!(name.as_str(), "bridge" | "host" | "none" | "default")
                    || name.starts_with("container:")
                {
                    continue;
                }
                let mut aliases: Vec<Value> = ep["Aliases"].as_array().cloned().unwrap_or_default();
                for a in [&short, &hostname] {
                    if !a.is_empty() && !aliases.iter().any(|x| x.as_str() == Some(a)) {
                        aliases.push(json!(a));
                    }
                }
                ep["Aliases"] = json!(aliases);
            }
        }
    }
    if lt(v, 1, 44) {
        // DNSNames came in 1.44; before it the MAC address was Config.MacAddress.
        let mut mac = String::new();
        if let Some(Value::Object(nets)) = j["NetworkSettings"].get_mut("Networks") {
            for ep in nets.values_mut() {
                if let Some(o) = ep.as_object_mut() {
                    o.remove("DNSNames");
                    if mac.is_empty() {
                        mac = o
                            .get("MacAddress")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                    }
                }
            }
        }
        if let Some(Value::Object(c)) = j.get_mut("Config") {
            if !mac.is_empty() {
                c.insert("MacAddress".into(), json!(mac));
            }
        }
    }
}

fn image_common(v: Version, m: &mut Map<String, Value>) {
    let size = m.get("Size").cloned().unwrap_or(json!(0));
    if lt(v, 1, 44) {
        m.insert("VirtualSize".into(), size);
    } else {
        m.remove("VirtualSize");
    }
}

/// `GET /images/json` and the images of `GET /system/df`.
pub fn image_summaries(v: Version, rows: &mut [Value]) {
    for r in rows.iter_mut() {
        if let Some(m) = r.as_object_mut() {
            image_common(v, m);
        }
    }
}

/// `GET /images/{name}/json`.
pub fn image_inspect(v: Version, j: &mut Value) {
    let Some(m) = j.as_object_mut() else { return };
    image_common(v, m);
    if lt(v, 1, 45) {
        m.entry("Container").or_insert(json!(""));
        m.entry("ContainerConfig").or_insert(json!({}));
    } else {
        m.remove("Container");
        m.remove("ContainerConfig");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_by_version() {
        let new = json!({
            "FirewallBackend": {"Driver": "nftables"},
            "RuncCommit": {"ID": "x"},
            "Runtimes": {"r": {"path": "r", "status": {}}},
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "KernelVersion": "6.1",
            "OperatingSystem": "",
        });
        let mut j = new.clone();
        info((1, 50), &mut j);
        assert!(j.get("BridgeNfIptables").is_none());
        assert_eq!(j["FirewallBackend"]["Driver"], "nftables");
        let mut j = new.clone();
        info((1, 45), &mut j);
        assert_eq!(j["BridgeNfIptables"], false);
        assert!(j.get("FirewallBackend").is_none());
        assert_eq!(j["RuncCommit"]["Expected"], "x");
        assert!(j["Runtimes"]["r"].get("status").is_some());
        let mut j = new;
        info((1, 24), &mut j);
        assert_eq!(j["ExecutionDriver"], "<not supported>");
        assert_eq!(j["SecurityOptions"], json!(["seccomp"]));
        assert_eq!(j["OperatingSystem"], "<unknown>");
        assert!(j["Runtimes"]["r"].get("status").is_none());
    }

    #[test]
    fn inspect_by_version() {
        let new = json!({
            "Id": "0123456789abcdef",
            "Config": {"Hostname": "h"},
            "HostConfig": {"Annotations": {"a": "b"}},
            "NetworkSettings": {"Networks": {
                "bridge": {"Aliases": null, "DNSNames": null, "MacAddress": "02:42"},
                "mynet": {"Aliases": ["web"], "DNSNames": ["web", "0123456789ab"], "MacAddress": ""},
            }},
        });
        let mut j = new.clone();
        container_inspect((1, 50), &mut j);
        assert_eq!(j, new);
        container_inspect((1, 43), &mut j);
        assert!(j["HostConfig"].get("Annotations").is_none());
        assert_eq!(
            j["NetworkSettings"]["Networks"]["mynet"]["Aliases"],
            json!(["web", "0123456789ab", "h"])
        );
        assert!(j["NetworkSettings"]["Networks"]["mynet"]
            .get("DNSNames")
            .is_none());
        assert_eq!(j["Config"]["MacAddress"], "02:42");
    }
}
