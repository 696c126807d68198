//! `/images/…`: list, inspect, tag, remove, create (pull with docker's JSON progress stream).
//! Image names may contain slashes, so the verb is the last path segment.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use skiff_image::names::{self, familiar, Name};
use skiff_image::pull::Progress;

use crate::http::{blocking, empty, ok_json, stream, ApiError, Ctx, R};

/// Routes `/images/<rest>`.
pub async fn route(ctx: Ctx, s: &[&str]) -> R {
    let m = ctx.method.as_str().to_string();
    let last = s.last().copied().unwrap_or("");
    let name = |n: usize| s[..s.len().saturating_sub(n)].join("/");
    match (m.as_str(), s) {
        ("GET", ["json"]) => list(ctx).await,
        ("POST", ["create"]) => create(ctx).await,
        ("POST", ["prune"]) => prune(ctx).await,
        ("GET", ["get"]) => {
            let names = ctx.query.all("names");
            save(ctx, names).await
        }
        ("POST", ["load"]) => load(ctx).await,
        ("GET", ["search"]) => crate::more::search(ctx).await,
        ("POST", [_, ..]) if last == "push" && s.len() > 1 => crate::more::push(ctx, name(1)).await,
        ("GET", [_, ..]) if last == "history" && s.len() > 1 => {
            crate::more::history(ctx, name(1)).await
        }
        ("GET", [_, ..]) if last == "get" && s.len() > 1 => save(ctx, vec![name(1)]).await,
        ("GET", [_, ..]) if last == "json" && s.len() > 1 => inspect(ctx, name(1)).await,
        ("POST", [_, ..]) if last == "tag" && s.len() > 1 => tag(ctx, name(1)).await,
        ("DELETE", [_, ..]) => remove(ctx, name(0)).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: {m} /images/{}",
            s.join("/")
        ))),
    }
}

fn glob_match(pat: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

async fn list(ctx: Ctx) -> R {
    let filters = ctx.query.filters()?;
    let st = ctx.state.clone();
    let rows = blocking(move || {
        let store = st.store()?;
        let mut dangling = None;
        let mut refs = Vec::new();
        let mut labels = Vec::new();
        for (k, v) in &filters {
            match k.as_str() {
                "dangling" => dangling = Some(matches!(v.as_str(), "true" | "1")),
                "reference" => refs.push(v.clone()),
                "label" => labels.push(v.clone()),
                _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
            }
        }
        let mut out = Vec::new();
        for img in store.list()? {
            if dangling.is_some_and(|d| d != img.tags.is_empty()) {
                continue;
            }
            let v = skiff_image::inspect::image_summary(&store, &img);
            if !labels.is_empty() {
                let l = &v["Labels"];
                let ok = labels.iter().all(|f| match f.split_once('=') {
                    Some((k, val)) => l[k].as_str() == Some(val),
                    None => l.get(f).is_some(),
                });
                if !ok {
                    continue;
                }
            }
            if !refs.is_empty() {
                let ok = img.tags.iter().any(|t| {
                    let fam = familiar(t);
                    let (repo, _) = names::split_tag(t);
                    refs.iter()
                        .any(|p| glob_match(p, &fam) || glob_match(p, &familiar(&repo)))
                });
                if !ok {
                    continue;
                }
            }
            out.push(v);
        }
        Ok(out)
    })
    .await?;
    let mut rows = rows;
    crate::compat::image_summaries(ctx.version, &mut rows);
    ok_json(&rows)
}

async fn inspect(ctx: Ctx, name: String) -> R {
    let st = ctx.state.clone();
    let v = blocking(move || {
        let store = st.store()?;
        let img = store.resolve(&name)?;
        Ok(skiff_image::inspect::image_json(&store, &img)?)
    })
    .await?;
    let mut v = v;
    crate::compat::image_inspect(ctx.version, &mut v);
    ok_json(&v)
}

async fn tag(ctx: Ctx, name: String) -> R {
    let repo = ctx
        .query
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad("repo: a repository name is required"))?
        .to_string();
    let t = ctx.query.get("tag").unwrap_or("").to_string();
    let st = ctx.state.clone();
    blocking(move || {
        let store = st.store()?;
        let img = store.resolve(&name)?;
        let target = if t.is_empty() {
            repo
        } else {
            format!("{repo}:{t}")
        };
        let target = names::normalize(&target)?;
        store.tag(&img.id, &target)?;
        skiff_engine::api::image_event(&store, "tag", &img.id, &familiar(&target));
        Ok(())
    })
    .await?;
    empty(StatusCode::CREATED)
}

async fn remove(ctx: Ctx, name: String) -> R {
    let force = ctx.query.bool("force");
    let st = ctx.state.clone();
    let lines = blocking(move || {
        let store = st.store()?;
        let lines = skiff_engine::api::remove_image(&store, &name, force)?;
        let _ = store.gc();
        Ok(lines)
    })
    .await?;
    let v: Vec<Value> = lines.into_iter().map(|(k, v)| json!({ k: v })).collect();
    ok_json(&v)
}

async fn prune(ctx: Ctx) -> R {
    let all = ctx
        .query
        .filters()?
        .iter()
        .any(|(k, v)| k == "dangling" && matches!(v.as_str(), "false" | "0"));
    let st = ctx.state.clone();
    let rep = blocking(move || {
        let e = st.engine()?;
        let store = st.store()?;
        Ok(skiff_engine::prune::prune_images(&e, &store, all)?)
    })
    .await?;
    let deleted: Vec<Value> = rep
        .images
        .iter()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| {
            let k = if k.eq_ignore_ascii_case("untagged") {
                "Untagged"
            } else {
                "Deleted"
            };
            json!({ k: v })
        })
        .collect();
    ok_json(&json!({"ImagesDeleted": deleted, "SpaceReclaimed": rep.reclaimed}))
}

fn progress_line(p: &Progress) -> Value {
    let id = |d: &skiff_image::Digest| d.short().to_string();
    match p {
        Progress::Waiting(d) => {
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": id(d)})
        }
        Progress::AlreadyExists(d) => {
            json!({"status": "Already exists", "progressDetail": {}, "id": id(d)})
        }
        Progress::Downloading(d, cur, total) => json!({
            "status": "Downloading",
            "progressDetail": {"current": cur, "total": total},
            "id": id(d),
        }),
        Progress::Retrying(d, off, why) => json!({
            "status": format!("Retrying from byte {off} ({why})"),
            "progressDetail": {},
            "id": id(d),
        }),
        Progress::DownloadComplete(d) => {
            json!({"status": "Download complete", "progressDetail": {}, "id": id(d)})
        }
        Progress::PullComplete(d) => {
            json!({"status": "Pull complete", "progressDetail": {}, "id": id(d)})
        }
        Progress::Pushed(d) => json!({"status": "Pushed", "progressDetail": {}, "id": id(d)}),
        Progress::LayerExists(d) => {
            json!({"status": "Layer already exists", "progressDetail": {}, "id": id(d)})
        }
    }
}

/// `POST /images/create?fromSrc=-&repo=NAME&tag=TAG&changes=…&message=…`: `docker import` of the
/// tar in the body (plain, gzip or zstd; a URL is refused: no network here to fetch it from).
/// Answers docker's one progress message holding the new image id.
async fn import(mut ctx: Ctx, src: String) -> R {
    if src != "-" {
        return Err(ApiError::bad(format!(
            "fromSrc {src:?}: importing from a URL is not supported; send the tar as the body (fromSrc=-)"
        )));
    }
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let tags = if repo.is_empty() {
        vec![]
    } else {
        let r = if tag.is_empty() {
            repo
        } else {
            format!("{repo}:{tag}")
        };
        vec![skiff_image::names::normalize(&r).map_err(|e| ApiError::bad(e.to_string()))?]
    };
    let platform = match ctx.query.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(skiff_image::Platform::parse(p).map_err(|e| ApiError::bad(e.to_string()))?),
        None => None,
    };
    let opts = skiff_image::import::ImportOptions {
        platform,
        changes: ctx.query.all("changes"),
        message: Some(
            ctx.query
                .get("message")
                .filter(|m| !m.is_empty())
                .map_or_else(|| "Imported from -".to_string(), String::from),
        ),
        source_name: "-".into(),
        tags,
    };
    let Some(body) = ctx.take_body() else {
        return Err(ApiError::bad("fromSrc=-: a tar body is required"));
    };
    let (rd, feeder) = crate::http::body_reader(body);
    let st = ctx.state.clone();
    let r = blocking(move || {
        let store = st.store()?;
        // The reader is the import's; what it leaves unread is dropped with the feeder.
        let img = skiff_image::import::import(
            &store,
            skiff_image::import::ImportSource::Tarball(Box::new(rd)),
            &opts,
        )?;
        for t in &img.tags {
            skiff_engine::api::image_event(&store, "tag", &img.id, &familiar(t));
        }
        skiff_engine::api::image_event(&store, "import", &img.id, &img.id.to_string());
        Ok(img.id.to_string())
    })
    .await;
    feeder.abort();
    let id = r?;
    Ok(hyper::Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(crate::http::full(format!(
            "{}\r\n",
            json!({ "status": id })
        )))
        .unwrap_or_else(|_| hyper::Response::new(crate::http::full(""))))
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: a pull, its progress streamed as docker's
/// JSON messages (errors after the headers as `{"errorDetail": …, "error": …}`).
async fn create(ctx: Ctx) -> R {
    if let Some(src) = ctx.query.get("fromSrc").map(String::from) {
        return import(ctx, src).await;
    }
    let from = ctx
        .query
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad("fromImage: an image name is required"))?
        .to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let full = if tag.is_empty() {
        from.clone()
    } else if tag.starts_with("sha256:") {
        format!("{from}@{tag}")
    } else {
        format!("{from}:{tag}")
    };
    let n = Name::parse(&full).map_err(|e| ApiError::bad(e.to_string()))?;
    let platform = match ctx.query.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(skiff_image::Platform::parse(p).map_err(|e| ApiError::bad(e.to_string()))?),
        None => None,
    };
    let cred = crate::more::registry_auth(&ctx)?;
    let (tx, resp) = stream("application/json");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(Bytes::from(format!("{v}\r\n")));
        };
        let reference = n
            .digest
            .clone()
            .or_else(|| n.tag.clone())
            .unwrap_or_else(|| "latest".into());
        send(json!({"status": format!("Pulling from {}", n.path), "id": reference}));
        let r = (|| -> Result<skiff_image::pull::PullResult, String> {
            let store = st.store().map_err(|e| e.to_string())?;
            let client = crate::more::client(cred)?;
            let repo = client.repository(&n, false, false);
            let progress = |p: Progress| send(progress_line(&p));
            skiff_image::pull::pull(
                &store,
                &repo,
                &n.repo(),
                &reference,
                platform.as_ref(),
                &progress,
            )
            .map_err(|e| e.to_string())
        })();
        match r {
            Ok(res) => {
                send(json!({"status": format!("Digest: {}", res.digest)}));
                let sep = if reference.starts_with("sha256:") {
                    '@'
                } else {
                    ':'
                };
                let shown = format!("{}{sep}{reference}", familiar(&n.repo()));
                send(json!({"status": if res.downloaded {
                    format!("Status: Downloaded newer image for {shown}")
                } else {
                    format!("Status: Image is up to date for {shown}")
                }}));
            }
            Err(msg) => send(json!({"errorDetail": {"message": msg}, "error": msg})),
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a docker-archive tar of the images
/// (a name saves that name; an id saves the image with all of its names, as `docker save`).
async fn save(ctx: Ctx, names_in: Vec<String>) -> R {
    if names_in.is_empty() {
        return Err(ApiError::bad("names: at least one image is required"));
    }
    let st = ctx.state.clone();
    // Resolved before the headers, so a missing image is a 404.
    let items = blocking(move || {
        let store = st.store()?;
        let mut items = Vec::new();
        for s in &names_in {
            let img = store.resolve(s)?;
            let ns = match names::normalize(s).ok().filter(|n| img.tags.contains(n)) {
                Some(n) => vec![n],
                None => img.tags.clone(),
            };
            items.push((img, ns));
        }
        Ok(items)
    })
    .await?;
    let (tx, resp) = stream("application/x-tar");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(store) = st.store() else { return };
        let w = std::io::BufWriter::with_capacity(64 * 1024, crate::http::ChanWriter(tx));
        let _ = skiff_image::archive::save(
            &store,
            &items,
            skiff_image::archive::ArchiveFormat::Docker,
            w,
        );
    });
    Ok(resp)
}

/// `POST /images/load`: a docker-archive or oci-archive tar body; docker's JSON stream answer.
async fn load(mut ctx: Ctx) -> R {
    // `quiet` only silences progress, which skiff's load does not send; the `Loaded image`
    // lines are always there (the docker CLI sets quiet when its output is not a terminal).
    let Some(body) = ctx.take_body() else {
        return Err(ApiError::bad("a tar body is required"));
    };
    let (mut rd, feeder) = crate::http::body_reader(body);
    let st = ctx.state.clone();
    let r = blocking(move || {
        let store = st.store()?;
        let r = skiff_image::archive::load(&store, &mut rd);
        while std::io::Read::read(&mut rd, &mut [0u8; 8192]).unwrap_or(0) > 0 {}
        let loaded = r?;
        let mut lines = Vec::new();
        for l in &loaded {
            skiff_engine::api::image_event(&store, "load", &l.id, &l.id.to_string());
            if l.names.is_empty() {
                lines.push(format!("Loaded image ID: {}", l.id));
            }
            for n in &l.names {
                lines.push(format!("Loaded image: {}", familiar(n)));
            }
        }
        Ok(lines)
    })
    .await;
    feeder.abort();
    let lines = r?;
    let mut body = String::new();
    for l in lines {
        body.push_str(&format!("{}\n", json!({"stream": format!("{l}\n")})));
    }
    Ok(hyper::Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(crate::http::full(body))
        .unwrap_or_else(|_| hyper::Response::new(crate::http::full(""))))
}
