//! `POST /containers/{id}/update`, `POST /commit`, `POST /images/{name}/push`,
//! `GET /images/{name}/history`, `GET /images/search`, `GET /distribution/{name}/json`: thin
//! handlers over the engine's update and commit, and the image crate's push, history and
//! registry client. Registry credentials come from the client's `X-Registry-Auth` header (the
//! server's own docker config only when a request has none).

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use skiff_image::credentials::Credential;
use skiff_image::names::{familiar, Name};
use skiff_image::pull::Progress;

use crate::http::{blocking, json, ok_json, stream, ApiError, Ctx, R};

/// `POST /containers/{id}/update`: `{"Warnings": […]}`.
pub async fn update(mut ctx: Ctx, id: String) -> R {
    let body: skiff_engine::update::UpdateBody = ctx.body(false).await?;
    let req = body.into_request()?;
    let st = ctx.state.clone();
    let warnings = blocking(move || Ok(st.engine()?.update(&id, &req)?)).await?;
    ok_json(&json!({ "Warnings": warnings }))
}

/// Docker's quoting of one word for a Dockerfile instruction (JSON string form).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The `Config` body of `POST /commit` as Dockerfile instructions (docker merges it into the
/// image config; the engine's commit applies `--change` lines, one path for both).
fn config_changes(v: &Value) -> Result<Vec<String>, ApiError> {
    let Value::Object(m) = v else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(ApiError::bad(
                "invalid JSON: the commit body must be a container Config object",
            )),
        };
    };
    let strs = |k: &str| -> Result<Option<Vec<String>>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(String::from).ok_or_else(|| {
                        ApiError::bad(format!("invalid JSON: {k}: expected strings"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::bad(format!(
                "invalid JSON: {k}: expected a list of strings"
            ))),
        }
    };
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad(format!(
                "invalid JSON: {k}: expected a string"
            ))),
        }
    };
    let json_list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(",")
        )
    };
    let mut out = Vec::new();
    if let Some(c) = strs("Cmd")? {
        out.push(format!("CMD {}", json_list(&c)));
    }
    if let Some(c) = strs("Entrypoint")? {
        out.push(format!("ENTRYPOINT {}", json_list(&c)));
    }
    for e in strs("Env")?.unwrap_or_default() {
        let (k, v) = e.split_once('=').unwrap_or((&e, ""));
        out.push(format!("ENV {k}={}", quoted(v)));
    }
    if let Some(w) = text("WorkingDir")? {
        out.push(format!("WORKDIR {w}"));
    }
    if let Some(u) = text("User")? {
        out.push(format!("USER {u}"));
    }
    if let Some(s) = text("StopSignal")? {
        out.push(format!("STOPSIGNAL {s}"));
    }
    for (k, obj) in [
        ("Labels", true),
        ("ExposedPorts", false),
        ("Volumes", false),
    ] {
        match m.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for (key, val) in o {
                    out.push(match (k, obj) {
                        ("Labels", _) => format!(
                            "LABEL {}={}",
                            quoted(key),
                            quoted(val.as_str().unwrap_or_default())
                        ),
                        ("ExposedPorts", _) => format!("EXPOSE {key}"),
                        _ => format!("VOLUME [{}]", quoted(key)),
                    });
                }
            }
            Some(_) => {
                return Err(ApiError::bad(format!(
                    "invalid JSON: {k}: expected an object"
                )))
            }
        }
    }
    Ok(out)
}

/// `POST /commit?container=…&repo=…&tag=…&comment=…&author=…&pause=…&changes=…`: 201 `{"Id"}`.
pub async fn commit(mut ctx: Ctx) -> R {
    let container = ctx
        .query
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container: a container name or id is required"))?
        .to_string();
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, true) => None,
        (true, false) => return Err(ApiError::bad("tag: a tag needs a repo")),
        (false, true) => Some(repo.clone()),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let tag = match reference {
        Some(r) => Some(
            skiff_image::names::normalize(&r)
                .map_err(|e| ApiError::bad(format!("invalid reference format: {r}: {e}")))?,
        ),
        None => None,
    };
    // `pause` defaults to true (docker's BoolValueOrDefault).
    let pause = match ctx.query.get("pause") {
        None | Some("") => true,
        Some(_) => ctx.query.bool("pause"),
    };
    let mut changes: Vec<String> = ctx
        .query
        .all("changes")
        .iter()
        .flat_map(|c| c.lines().map(String::from).collect::<Vec<_>>())
        .filter(|c| !c.trim().is_empty())
        .collect();
    let body: Value = ctx.body(true).await?;
    changes.extend(config_changes(&body)?);
    let opts = skiff_engine::commit::CommitOptions {
        message: ctx
            .query
            .get("comment")
            .filter(|s| !s.is_empty())
            .map(String::from),
        author: ctx
            .query
            .get("author")
            .filter(|s| !s.is_empty())
            .map(String::from),
        changes,
        pause,
        tag,
    };
    let st = ctx.state.clone();
    let id = blocking(move || {
        let e = st.engine()?;
        let store = st.store()?;
        let img = skiff_engine::commit::commit(&e, &store, &container, &opts)?;
        Ok(img.id.to_string())
    })
    .await?;
    Ok(json(StatusCode::CREATED, &json!({ "Id": id })))
}

/// The credential of an `X-Registry-Auth` header (base64url JSON `AuthConfig`); `None` when
/// absent or empty (`e30=`, `{}`).
pub(crate) fn registry_auth(ctx: &Ctx) -> Result<Option<Credential>, ApiError> {
    use base64::Engine as _;
    let Some(h) = ctx.headers.get("X-Registry-Auth") else {
        return Ok(None);
    };
    let raw = h.as_bytes();
    if raw.is_empty() {
        return Ok(None);
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let data = engines
        .iter()
        .find_map(|e| e.decode(raw).ok())
        .ok_or_else(|| ApiError::bad("X-Registry-Auth: invalid base64"))?;
    let v: Value = serde_json::from_slice(&data)
        .map_err(|e| ApiError::bad(format!("X-Registry-Auth: invalid JSON: {e}")))?;
    let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
    if !field("identitytoken").is_empty() {
        return Ok(Some(Credential {
            username: "<token>".into(),
            secret: field("identitytoken"),
        }));
    }
    let (mut user, mut pass) = (field("username"), field("password"));
    if user.is_empty() && !field("auth").is_empty() {
        let dec = base64::engine::general_purpose::STANDARD
            .decode(field("auth"))
            .map_err(|_| ApiError::bad("X-Registry-Auth: auth: invalid base64"))?;
        let s = String::from_utf8_lossy(&dec).into_owned();
        if let Some((u, p)) = s.split_once(':') {
            (user, pass) = (u.to_string(), p.to_string());
        }
    }
    if user.is_empty() && pass.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: user,
        secret: pass,
    }))
}

/// A registry client that answers credential lookups with the request's `X-Registry-Auth`
/// credential; without one, with the server's own docker config (docker-py sends no header
/// for anonymous pulls, and the socket's users are root-equivalent anyway).
pub(crate) fn client(cred: Option<Credential>) -> Result<skiff_image::registry::Client, String> {
    let config = skiff_image::registry::RegistryConfig::load().map_err(|e| e.to_string())?;
    match cred {
        Some(c) => Ok(skiff_image::registry::Client::with_credentials(
            config,
            move |_| Ok(Some(c.clone())),
        )),
        None => {
            let docker =
                skiff_image::credentials::DockerConfig::load().map_err(|e| e.to_string())?;
            Ok(skiff_image::registry::Client::new(config, docker))
        }
    }
}

fn push_line(p: &Progress) -> Option<Value> {
    let id = |d: &skiff_image::Digest| d.short().to_string();
    Some(match p {
        Progress::Waiting(d) => json!({"status": "Preparing", "progressDetail": {}, "id": id(d)}),
        Progress::Pushed(d) => json!({"status": "Pushed", "progressDetail": {}, "id": id(d)}),
        Progress::LayerExists(d) => {
            json!({"status": "Layer already exists", "progressDetail": {}, "id": id(d)})
        }
        Progress::Retrying(d, _, why) => json!({
            "status": format!("Retrying ({why})"),
            "progressDetail": {},
            "id": id(d),
        }),
        _ => return None,
    })
}

/// `POST /images/{name}/push?tag=T`: docker's JSON progress stream; without `tag`, every tag of
/// the repository. A missing image is a 404 before the stream; registry errors come in it as
/// `{"errorDetail": …, "error": …}`.
pub async fn push(ctx: Ctx, name: String) -> R {
    let cred = registry_auth(&ctx)?;
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let n = Name::parse(&name).map_err(|e| ApiError::bad(e.to_string()))?;
    if n.digest.is_some() {
        return Err(ApiError::bad("cannot push a digest reference"));
    }
    let tag = if tag.is_empty() {
        n.tag.clone().unwrap_or_default()
    } else {
        tag
    };
    let repo = n.repo();
    let st = ctx.state.clone();
    let r2 = repo.clone();
    let items = blocking(move || {
        let store = st.store()?;
        let tags: Vec<String> = if tag.is_empty() {
            store.repo_tags(&r2)?
        } else {
            vec![tag]
        };
        let mut items = Vec::new();
        for t in tags {
            let img = store.resolve(&format!("{r2}:{t}")).map_err(|_| {
                ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    familiar(&r2)
                ))
            })?;
            items.push((t, img));
        }
        if items.is_empty() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                familiar(&r2)
            )));
        }
        Ok(items)
    })
    .await?;
    let (tx, resp) = stream("application/json");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(Bytes::from(format!("{v}\r\n")));
        };
        send(json!({"status": format!("The push refers to repository [{}]", familiar(&repo))}));
        let r = (|| -> Result<(), String> {
            let store = st.store().map_err(|e| e.to_string())?;
            let client = client(cred)?;
            let remote = client.repository(&n, true, false);
            for (t, img) in &items {
                let progress = |p: Progress| {
                    if let Some(v) = push_line(&p) {
                        send(v);
                    }
                };
                let (digest, size) =
                    skiff_image::pull::push(&store, &remote, img, &repo, t, &progress)
                        .map_err(|e| e.to_string())?;
                send(json!({"status": format!("{t}: digest: {digest} size: {size}")}));
                send(json!({
                    "progressDetail": {},
                    "aux": {"Tag": t, "Digest": digest.to_string(), "Size": size},
                }));
                skiff_engine::api::image_event(
                    &store,
                    "push",
                    &img.id,
                    &familiar(&format!("{repo}:{t}")),
                );
            }
            Ok(())
        })();
        if let Err(msg) = r {
            send(json!({"errorDetail": {"message": msg}, "error": msg}));
        }
    });
    Ok(resp)
}

/// `GET /images/{name}/history`.
pub async fn history(ctx: Ctx, name: String) -> R {
    let st = ctx.state.clone();
    let v = blocking(move || {
        let store = st.store()?;
        let img = store.resolve(&name)?;
        Ok(skiff_image::inspect::history(&store, &img)?)
    })
    .await?;
    ok_json(&v)
}

/// `GET /images/search?term=…`: skiff has no search of its own (the OCI distribution API has
/// none); docker asks Docker Hub's v1 index. That index is probed: unreachable (the usual case
/// on an offline host) is a 503 saying so, reachable a 501 (skiff does not speak the v1 search
/// API).
pub async fn search(ctx: Ctx) -> R {
    let term = ctx
        .query
        .get("term")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::bad("term: a search term is required"))?
        .to_string();
    if let Some(l) = ctx.query.int("limit")? {
        if !(1..=100).contains(&l) {
            return Err(ApiError::bad(format!(
                "limit {l} is outside the range of [1, 100]"
            )));
        }
    }
    ctx.query.filters()?;
    let host = match term.split_once('/') {
        Some((h, _)) if h.contains('.') || h.contains(':') || h == "localhost" => h.to_string(),
        _ => "index.docker.io".to_string(),
    };
    let target = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:443")
    };
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(target),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if reachable {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("search {term:?}: skiff does not implement registry search (the v1 search API of {host})"),
        ));
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("search {term:?}: the registry search index {host} is unreachable from this host (offline?)"),
    ))
}

/// `GET /distribution/{name}/json`: the registry's descriptor of `name` and the platforms it
/// offers (`X-Registry-Auth` as for a pull).
pub async fn distribution(ctx: Ctx, name: String) -> R {
    use skiff_image::pull::Fetcher;
    let cred = registry_auth(&ctx)?;
    let n = Name::parse(&name).map_err(|e| ApiError::bad(e.to_string()))?;
    let v = blocking(move || {
        let client = client(cred).map_err(ApiError::internal)?;
        let remote = client.repository(&n, false, false);
        let reference = n
            .digest
            .clone()
            .or_else(|| n.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let (bytes, media) = remote.get_manifest(&reference).map_err(|e| {
            let msg = e.to_string();
            let status = if msg.contains("unknown")
                || msg.contains("not found")
                || msg.contains("404")
            {
                StatusCode::NOT_FOUND
            } else if msg.contains("unauthorized") || msg.contains("401") || msg.contains("denied")
            {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            ApiError::new(status, format!("{}: {msg}", familiar(&n.repo())))
        })?;
        let digest = skiff_image::Digest::of(&bytes);
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("{}: manifest: {e}", familiar(&n.repo()))))?;
        let mut platforms = Vec::new();
        if let Some(ms) = doc["manifests"].as_array() {
            for m in ms {
                if m["platform"].is_object() {
                    platforms.push(m["platform"].clone());
                }
            }
        } else if let Some(cd) = doc["config"]["digest"].as_str() {
            let cfg = skiff_image::Digest::parse(cd)
                .ok()
                .and_then(|d| remote.get_blob(&d, 0).ok())
                .and_then(|r| serde_json::from_reader::<_, Value>(r).ok());
            if let Some(c) = cfg {
                let mut p = json!({"architecture": c["architecture"], "os": c["os"]});
                if let Some(v) = c["variant"].as_str() {
                    p["variant"] = json!(v);
                }
                platforms.push(p);
            }
        }
        Ok(json!({
            "Descriptor": {"mediaType": media, "digest": digest.to_string(), "size": bytes.len()},
            "Platforms": platforms,
        }))
    })
    .await?;
    ok_json(&v)
}
