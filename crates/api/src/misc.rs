//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`, `/volumes/…`, `/networks/…`.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{
    blocking, empty, full, json, ok_json, stream, ApiError, Ctx, MAX_API_VERSION, MIN_API_VERSION,
    R,
};

/// `GET|HEAD /_ping`: `OK` with the version headers clients negotiate from.
pub fn ping(ctx: &Ctx) -> R {
    let body = if ctx.method == hyper::Method::HEAD {
        full("")
    } else {
        full("OK")
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Api-Version", MAX_API_VERSION)
        .header("Ostype", "linux")
        .header("Docker-Experimental", "false")
        .header("Builder-Version", "1")
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(body)
        .unwrap_or_else(|_| Response::new(full(""))))
}

/// `GET /version`.
pub fn version() -> R {
    let mut v = skiff_engine::info::server_version(MAX_API_VERSION);
    v["MinAPIVersion"] = json!(MIN_API_VERSION);
    ok_json(&v)
}

/// `GET /info`.
pub async fn info(ctx: Ctx) -> R {
    let st = ctx.state.clone();
    let mut v = blocking(move || Ok(skiff_engine::info::info_json(&st.root)?)).await?;
    crate::compat::info(ctx.version, &mut v);
    ok_json(&v)
}

/// `GET /system/df`: images, containers and volumes with their sizes.
pub async fn df(ctx: Ctx) -> R {
    let st = ctx.state.clone();
    let version = ctx.version;
    let v = blocking(move || {
        let e = st.engine()?;
        let store = st.store()?;
        let mut images: Vec<Value> = store
            .list()?
            .iter()
            .map(|i| skiff_image::inspect::image_summary(&store, i))
            .collect();
        crate::compat::image_summaries(version, &mut images);
        let containers: Vec<Value> = skiff_engine::api::list_containers(&e, true, &[])?
            .iter()
            .map(|(c, h)| {
                serde_json::to_value(skiff_engine::api::container_summary(&e, c, h.as_deref()))
                    .unwrap_or(Value::Null)
            })
            .collect();
        let vols = skiff_engine::volumes::Volumes::open(&st.root)?;
        let volumes: Vec<Value> = vols
            .list()?
            .iter()
            .map(|v| {
                let mut j = v.inspect_json();
                j["UsageData"] = json!({"Size": vols.size(v), "RefCount": vols.users(&v.name).map(|u| u.len()).unwrap_or(0)});
                j
            })
            .collect();
        Ok(json!({
            "LayersSize": store.disk_usage(),
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }))
    })
    .await?;
    ok_json(&v)
}

/// `GET /events`: the event log from `since` (or now), followed until `until` or the client
/// goes away; `filters` as docker's.
pub async fn events(ctx: Ctx) -> R {
    use skiff_engine::events;
    let now = events::now_nano();
    let bound = |k: &str| -> Result<Option<i64>, ApiError> {
        match ctx.query.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => events::parse_time_bound(s, now)
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("invalid value for {k}: {s}"))),
        }
    };
    let since = bound("since")?;
    let until = bound("until")?;
    let specs: Vec<String> = ctx
        .query
        .filters()?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let filter = events::EventFilter::parse(&specs).map_err(ApiError::bad)?;
    let (tx, resp) = stream("application/json");
    let root = ctx.state.root.clone();
    tokio::task::spawn_blocking(move || {
        let send = |ev: &events::Event| -> bool {
            if !filter.matches(ev) {
                return true;
            }
            tx.blocking_send(Bytes::from(format!("{}\n", ev.to_docker_json())))
                .is_ok()
        };
        if let Some(s) = since {
            for ev in events::read(&root, s, until.unwrap_or(now)).unwrap_or_default() {
                if !send(&ev) {
                    return;
                }
            }
        }
        if until.is_some_and(|u| u <= now) {
            return;
        }
        let _ = events::follow(&root, false, until, |ev| send(ev) && !tx.is_closed());
    });
    Ok(resp)
}

/// `POST /auth`: credentials are checked by the registry at pull/push time; accepted here.
pub async fn auth(mut ctx: Ctx) -> R {
    let _: Value = ctx.body(true).await?;
    ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": ""}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
struct VolumeCreate {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    cluster_volume_spec: Option<Value>,
}

/// `/volumes/…`.
pub async fn volumes(mut ctx: Ctx, s: &[&str]) -> R {
    use skiff_engine::volumes::Volumes;
    let m = ctx.method.as_str().to_string();
    let st = ctx.state.clone();
    let name = s.first().map(|x| x.to_string()).unwrap_or_default();
    match (m.as_str(), s) {
        ("GET", []) => {
            let filters = ctx.query.filters()?;
            let v = blocking(move || {
                let vols = Volumes::open(&st.root)?;
                let mut out = Vec::new();
                'next: for v in vols.list()? {
                    for (k, f) in &filters {
                        let ok = match k.as_str() {
                            "name" => v.name.contains(f.as_str()),
                            "driver" => v.driver == *f,
                            "label" => skiff_engine::volumes::label_matches(&v.labels, f),
                            "dangling" => {
                                let unused = vols.users(&v.name)?.is_empty();
                                unused == matches!(f.as_str(), "true" | "1")
                            }
                            _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
                        };
                        if !ok {
                            continue 'next;
                        }
                    }
                    out.push(v.inspect_json());
                }
                Ok(json!({"Volumes": out, "Warnings": null}))
            })
            .await?;
            ok_json(&v)
        }
        ("POST", ["create"]) => {
            let b: VolumeCreate = ctx.body(true).await?;
            if b.cluster_volume_spec.is_some() {
                return Err(ApiError::bad("ClusterVolumeSpec: not supported by skiff"));
            }
            let v = blocking(move || {
                let vols = Volumes::open(&st.root)?;
                let driver = if b.driver.is_empty() {
                    "local"
                } else {
                    &b.driver
                };
                let name = (!b.name.is_empty()).then_some(b.name.as_str());
                let v = vols.create_with_driver(
                    name,
                    driver,
                    &b.driver_opts.unwrap_or_default(),
                    &b.labels.unwrap_or_default(),
                )?;
                Ok(v.inspect_json())
            })
            .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        ("POST", ["prune"]) => {
            let v = blocking(move || {
                let vols = Volumes::open(&st.root)?;
                let rep = vols.prune(false, &[])?;
                Ok(json!({"VolumesDeleted": rep.deleted, "SpaceReclaimed": rep.reclaimed}))
            })
            .await?;
            ok_json(&v)
        }
        ("GET", [_]) => {
            let v =
                blocking(move || Ok(Volumes::open(&st.root)?.get(&name)?.inspect_json())).await?;
            ok_json(&v)
        }
        ("DELETE", [_]) => {
            let force = ctx.query.bool("force");
            blocking(move || Ok(Volumes::open(&st.root)?.remove(&name, force)?)).await?;
            empty(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {m} /volumes/{}",
            s.join("/")
        ))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
struct NetworkCreate {
    name: String,
    check_duplicate: Option<bool>,
    driver: String,
    scope: String,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_only: bool,
    config_from: Option<Value>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
struct NetworkConnect {
    container: String,
    endpoint_config: Option<Value>,
    force: bool,
}

fn net_error(e: skiff_engine::Error) -> ApiError {
    let mut a = ApiError::from(e);
    if a.message.starts_with("network ") && a.message.ends_with(" not found") {
        a.status = StatusCode::NOT_FOUND;
    }
    a
}

/// `/networks/…`.
pub async fn networks(mut ctx: Ctx, s: &[&str]) -> R {
    let m = ctx.method.as_str().to_string();
    let st = ctx.state.clone();
    let id = s.first().map(|x| x.to_string()).unwrap_or_default();
    match (m.as_str(), s) {
        ("GET", []) => {
            let v = blocking(move || {
                let e = st.engine()?;
                let now = skiff_engine::proc::now();
                let nets = e
                    .net()?
                    .list(&now)
                    .map_err(skiff_engine::network::net_err)?;
                let mut out = Vec::new();
                for n in &nets {
                    out.push(e.network_json(n)?);
                }
                Ok(out)
            })
            .await?;
            ok_json(&v)
        }
        ("POST", ["create"]) => {
            let b: NetworkCreate = ctx.body(false).await?;
            if !b.driver.is_empty() && b.driver != "bridge" {
                return Err(ApiError::bad(format!(
                    "Driver: plugin \"{}\" not found (skiff has the bridge driver only)",
                    b.driver
                )));
            }
            if b.name.is_empty() {
                return Err(ApiError::bad("Name: a network name is required"));
            }
            if b.ingress || b.config_only || b.config_from.is_some() {
                return Err(ApiError::bad(
                    "Ingress/ConfigOnly/ConfigFrom: not supported by skiff",
                ));
            }
            let _ = (b.check_duplicate, b.scope, b.enable_ipv4);
            // The first IPv4 and the first IPv6 IPAM entries (docker takes one of each).
            let configs = b.ipam.and_then(|i| i.config).unwrap_or_default();
            let v4 = configs.iter().find(|c| !c.subnet.contains(':'));
            let v6 = configs.iter().find(|c| c.subnet.contains(':'));
            let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let req = skiff_engine::skiff_net::CreateRequest {
                name: b.name,
                subnet: v4.and_then(|c| nonempty(&c.subnet)),
                gateway: v4.and_then(|c| nonempty(&c.gateway)),
                internal: b.internal,
                labels: b.labels.unwrap_or_default(),
                ip_range: v4.and_then(|c| nonempty(&c.ip_range)),
                attachable: b.attachable,
                options: b.options.unwrap_or_default(),
                ipv6: b.enable_ipv6 == Some(true),
                subnet6: v6.and_then(|c| nonempty(&c.subnet)),
            };
            let v = blocking(move || {
                let e = st.engine()?;
                let n = e
                    .net()?
                    .create(&req, &skiff_engine::proc::now())
                    .map_err(skiff_engine::network::net_err)?;
                Ok(json!({"Id": n.id, "Warning": ""}))
            })
            .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        ("POST", ["prune"]) => {
            let filters: Vec<String> = ctx
                .query
                .filters()?
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let removed = blocking(move || {
                let e = st.engine()?;
                let f = skiff_engine::prune::parse_filters(&filters)?;
                Ok(skiff_engine::prune::prune_networks(&e, &f)?)
            })
            .await?;
            ok_json(&json!({ "NetworksDeleted": removed }))
        }
        ("GET", [_]) => {
            let v = blocking(move || {
                let e = st.engine()?;
                let n = e
                    .net()?
                    .find(&id, &skiff_engine::proc::now())
                    .map_err(|x| net_error(skiff_engine::network::net_err(x)))?;
                Ok(e.network_json(&n)?)
            })
            .await?;
            ok_json(&v)
        }
        ("DELETE", [_]) => {
            blocking(move || {
                let e = st.engine()?;
                e.remove_network(&id).map_err(net_error)?;
                Ok(())
            })
            .await?;
            empty(StatusCode::NO_CONTENT)
        }
        ("POST", [_, verb @ ("connect" | "disconnect")]) => {
            let b: NetworkConnect = ctx.body(false).await?;
            let ip = b
                .endpoint_config
                .as_ref()
                .and_then(|c| c["IPAMConfig"]["IPv4Address"].as_str())
                .filter(|s| !s.is_empty())
                .map(String::from);
            let aliases: Option<Vec<String>> = b
                .endpoint_config
                .as_ref()
                .and_then(|c| c["Aliases"].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                });
            let mac = b
                .endpoint_config
                .as_ref()
                .and_then(|c| c["MacAddress"].as_str())
                .filter(|s| !s.is_empty())
                .map(String::from);
            let driver_opts: std::collections::BTreeMap<String, String> = b
                .endpoint_config
                .as_ref()
                .and_then(|c| c["DriverOpts"].as_object())
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let connect = *verb == "connect";
            let _ = b.force;
            blocking(move || {
                let e = st.engine()?;
                if connect {
                    e.connect_network_with(
                        &id,
                        &b.container,
                        &skiff_engine::network::EndpointOpts {
                            ip: ip.as_deref(),
                            aliases: aliases.as_deref(),
                            mac: mac.as_deref(),
                            driver_opts,
                        },
                    )
                    .map_err(net_error)?;
                } else {
                    e.disconnect_network(&id, &b.container).map_err(net_error)?;
                }
                Ok(())
            })
            .await?;
            empty(StatusCode::OK)
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {m} /networks/{}",
            s.join("/")
        ))),
    }
}
