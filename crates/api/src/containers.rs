//! `/containers/…`: create, list, inspect, start/stop/restart/kill/wait/pause/unpause, rename,
//! remove, logs, top, resize, attach (hijacked), prune.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::json;
use skiff_engine::attach;

use crate::http::{blocking, empty, full, json, ok_json, stream, ApiError, Ctx, Resp, R};

/// Routes `/containers/<rest>`.
pub async fn route(ctx: Ctx, s: &[&str]) -> R {
    let m = ctx.method.as_str().to_string();
    let id = s.first().map(|x| x.to_string()).unwrap_or_default();
    match (m.as_str(), s) {
        ("GET", ["json"]) => list(ctx).await,
        ("POST", ["create"]) => create(ctx).await,
        ("POST", ["prune"]) => prune(ctx).await,
        ("GET", [_, "json"]) => inspect(ctx, id).await,
        ("POST", [_, "start"]) => start(ctx, id).await,
        ("POST", [_, "stop"]) => stop(ctx, id).await,
        ("POST", [_, "restart"]) => restart(ctx, id).await,
        ("POST", [_, "kill"]) => kill(ctx, id).await,
        ("POST", [_, "wait"]) => wait(ctx, id).await,
        ("POST", [_, "pause"]) => simple(ctx, id, |e, id| e.pause(id)).await,
        ("POST", [_, "unpause"]) => simple(ctx, id, |e, id| e.unpause(id)).await,
        ("POST", [_, "rename"]) => rename(ctx, id).await,
        ("POST", [_, "update"]) => crate::more::update(ctx, id).await,
        ("POST", [_, "resize"]) => resize(ctx, id).await,
        ("POST", [_, "attach"]) => attach_route(ctx, id).await,
        ("POST", [_, "exec"]) => crate::exec::create(ctx, id).await,
        ("DELETE", [_]) => remove(ctx, id).await,
        ("GET", [_, "logs"]) => logs(ctx, id).await,
        ("GET", [_, "top"]) => top(ctx, id).await,
        ("GET", [_, "stats"]) => stats(ctx, id).await,
        ("GET", [_, "changes"]) => changes(ctx, id).await,
        ("GET", [_, "export"]) => export(ctx, id).await,
        ("GET" | "HEAD", [_, "archive"]) => archive_get(ctx, id).await,
        ("PUT", [_, "archive"]) => archive_put(ctx, id).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: {m} /containers/{}",
            s.join("/")
        ))),
    }
}

async fn list(ctx: Ctx) -> R {
    let all = ctx.query.bool("all");
    let limit = ctx.query.int("limit")?;
    let filters = ctx.query.filters()?;
    let st = ctx.state.clone();
    let rows = blocking(move || {
        let e = st.engine()?;
        let all = all || limit.is_some_and(|l| l > 0);
        let mut rows = skiff_engine::api::list_containers(&e, all, &filters)?;
        if let Some(l) = limit.filter(|l| *l > 0) {
            rows.truncate(l as usize);
        }
        Ok(skiff_engine::api::container_summaries(&e, &rows))
    })
    .await?;
    ok_json(&rows)
}

async fn create(mut ctx: Ctx) -> R {
    let name = ctx.query.get("name").map(String::from);
    let platform = ctx.query.get("platform").unwrap_or("").to_string();
    let body: skiff_engine::api::CreateBody = ctx.body(false).await?;
    let req = body.into_request(name)?;
    let st = ctx.state.clone();
    let (id, warnings) = blocking(move || {
        let e = st.engine()?;
        let store = st.store()?;
        let img = store.resolve(&req.image)?;
        if !platform.is_empty() && !platform.starts_with(&img.platform.os) {
            return Err(ApiError::not_found(format!(
                "image with reference {} was found but does not provide the specified platform ({platform})",
                req.image
            )));
        }
        let (c, warnings) = skiff_engine::create::create(&e, &store, &img, &req)?;
        Ok((c.id, warnings))
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": warnings}),
    ))
}

async fn inspect(ctx: Ctx, id: String) -> R {
    let size = ctx.query.bool("size");
    let st = ctx.state.clone();
    let mut v = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        let mut v = skiff_engine::inspect::container_json(&e, &c);
        if size {
            v["SizeRw"] = json!(0);
            v["SizeRootFs"] = json!(0);
        }
        Ok(v)
    })
    .await?;
    crate::compat::container_inspect(ctx.version, &mut v);
    ok_json(&v)
}

async fn start(ctx: Ctx, id: String) -> R {
    if ctx.query.get("detachKeys").is_some_and(|k| !k.is_empty()) {
        skiff_engine::tty::parse_detach_keys(ctx.query.get("detachKeys").unwrap_or(""))?;
    }
    let st = ctx.state.clone();
    let started = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        if c.is_active() {
            return Ok(false);
        }
        let pending = st
            .pending_attach
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&c.id));
        e.start(&c.id, pending)?;
        Ok(true)
    })
    .await?;
    empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

fn timeout_param(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    match ctx.query.int("t")? {
        Some(t) => Ok(Some(t)),
        None => ctx.query.int("timeout"),
    }
}

async fn stop(ctx: Ctx, id: String) -> R {
    let t = timeout_param(&ctx)?;
    let sig = ctx.query.get("signal").map(String::from);
    let st = ctx.state.clone();
    let stopped = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        if !c.is_active() {
            return Ok(false);
        }
        if let Some(s) = sig.filter(|s| !s.is_empty()) {
            e.kill(&c.id, &s)?;
        }
        e.stop(&c.id, t)?;
        Ok(true)
    })
    .await?;
    empty(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn restart(ctx: Ctx, id: String) -> R {
    let t = timeout_param(&ctx)?;
    let st = ctx.state.clone();
    blocking(move || {
        let e = st.engine()?;
        e.stop(&id, t)?;
        e.start(&id, None)?;
        Ok(())
    })
    .await?;
    empty(StatusCode::NO_CONTENT)
}

async fn kill(ctx: Ctx, id: String) -> R {
    let sig = ctx
        .query
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL")
        .to_string();
    simple(ctx, id, move |e, id| e.kill(id, &sig)).await
}

async fn simple(
    ctx: Ctx,
    id: String,
    f: impl FnOnce(&skiff_engine::Engine, &str) -> skiff_engine::Result<()> + Send + 'static,
) -> R {
    let st = ctx.state.clone();
    blocking(move || {
        let e = st.engine()?;
        f(&e, &id)?;
        Ok(())
    })
    .await?;
    empty(StatusCode::NO_CONTENT)
}

async fn rename(ctx: Ctx, id: String) -> R {
    let name = ctx
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("name: a new name is required"))?
        .to_string();
    simple(ctx, id, move |e, id| e.rename(id, &name)).await
}

/// `wait`: the headers go out once the state to wait from is recorded (docker's `run` starts
/// the container after that), the body when the condition holds.
async fn wait(ctx: Ctx, id: String) -> R {
    let cond = ctx
        .query
        .get("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running")
        .to_string();
    let st = ctx.state.clone();
    let w = blocking(move || Ok(st.engine()?.wait_begin(&id, &cond)?)).await?;
    let (tx, resp) = stream("application/json");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let r = st
            .engine()
            .and_then(|e| e.wait_end(w))
            .map_err(ApiError::from);
        let v = match r {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let _ = tx.blocking_send(Bytes::from(format!("{v}\n")));
    });
    Ok(resp)
}

async fn remove(ctx: Ctx, id: String) -> R {
    let force = ctx.query.bool("force");
    let v = ctx.query.bool("v");
    if ctx.query.bool("link") {
        return Err(ApiError::bad(
            "link: legacy links are not supported by skiff",
        ));
    }
    simple(ctx, id, move |e, id| e.remove(id, force, v)).await
}

async fn prune(ctx: Ctx) -> R {
    let filters: Vec<String> = ctx
        .query
        .filters()?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let st = ctx.state.clone();
    let rep = blocking(move || {
        let e = st.engine()?;
        let f = skiff_engine::prune::parse_filters(&filters)?;
        Ok(skiff_engine::prune::prune_containers(&e, &f)?)
    })
    .await?;
    ok_json(&json!({"ContainersDeleted": rep.containers, "SpaceReclaimed": rep.reclaimed}))
}

async fn top(ctx: Ctx, id: String) -> R {
    let args = ctx.query.get("ps_args").unwrap_or("-ef").to_string();
    let st = ctx.state.clone();
    let v = blocking(move || {
        let e = st.engine()?;
        let pids = e.pids(&id)?;
        let out = std::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .map_err(|err| ApiError::internal(format!("top: run ps: {err}")))?;
        if !out.status.success() {
            return Err(ApiError::internal(format!(
                "top: ps {args}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let titles: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let col = titles
            .iter()
            .position(|h| h == "PID")
            .ok_or_else(|| ApiError::internal("top: couldn't find PID field in ps output"))?;
        let n = titles.len();
        let mut procs = Vec::new();
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
            {
                let mut cells: Vec<String> = f.iter().take(n - 1).map(|s| s.to_string()).collect();
                cells.push(f.iter().skip(n - 1).copied().collect::<Vec<_>>().join(" "));
                procs.push(cells);
            }
        }
        Ok(json!({"Titles": titles, "Processes": procs}))
    })
    .await?;
    ok_json(&v)
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// docker's stdcopy frame header: stream (1 stdout, 2 stderr), three zero bytes, length (BE).
pub(crate) fn stdcopy(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

async fn logs(ctx: Ctx, id: String) -> R {
    use skiff_engine::logs;
    let q = &ctx.query;
    let (want_out, want_err) = (q.bool("stdout"), q.bool("stderr"));
    if !want_out && !want_err {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = q.bool("follow");
    let timestamps = q.bool("timestamps");
    let now = now_nanos();
    let time_param = |k: &str| -> Result<Option<i128>, ApiError> {
        match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => logs::parse_since(s, now)
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("invalid value for \"{k}\": {s}"))),
        }
    };
    let since = time_param("since")?;
    let until = time_param("until")?;
    let tail: Option<usize> = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        t => match t.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return Err(ApiError::bad(format!("invalid value for \"tail\": {t}"))),
        },
    };
    let st = ctx.state.clone();
    // The file is opened and what it holds read before the headers go out: a client may remove
    // the container before it reads the body (docker-py's `run` does).
    let (cid, tty, path, file, entries, offset) = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        let path = e.container_dir(&c.id).join("ctr.log");
        let file = std::fs::File::open(&path).ok();
        let (entries, offset) = skiff_engine::logs::read_all_with_offset(&path);
        Ok((c.id, c.config.tty, path, file, entries, offset))
    })
    .await?;
    let ctype = crate::http::stream_type(ctx.version, tty);
    let (tx, resp) = stream(ctype);
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let send = |en: &logs::Entry| -> bool {
            if since.is_some_and(|s| en.nanos < s) {
                return true;
            }
            if until.is_some_and(|u| en.nanos > u) {
                return false;
            }
            let is_err = en.stream == "stderr";
            if (is_err && !want_err) || (!is_err && !want_out) {
                return true;
            }
            let mut line = String::new();
            if timestamps {
                line.push_str(&en.time);
                line.push(' ');
            }
            line.push_str(&en.log);
            let data = if tty {
                line.into_bytes()
            } else {
                stdcopy(if is_err { 2 } else { 1 }, line.as_bytes())
            };
            tx.blocking_send(Bytes::from(data)).is_ok()
        };
        let start = tail.map_or(0, |n| entries.len().saturating_sub(n));
        for en in &entries[start..] {
            if !send(en) {
                return;
            }
        }
        if follow && until.is_none() {
            let Ok(e) = st.engine() else { return };
            logs::follow_file(&path, file, offset, send, || {
                tx.is_closed()
                    || match e.container(&cid) {
                        Ok(c) => !c.is_active(),
                        // A busy database under load is not the end of the container.
                        Err(skiff_engine::Error::NoSuchContainer(_)) => true,
                        Err(_) => false,
                    }
            });
        }
    });
    Ok(resp)
}

/// Sends one RESIZE frame to a running container's monitor.
pub(crate) fn resize_container(
    e: &skiff_engine::Engine,
    id: &str,
    h: u16,
    w: u16,
) -> Result<(), ApiError> {
    let c = e.container(id)?;
    if !c.is_active() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let (_dir, path) = attach::short_path(&e.run_dir(&c.id))
        .map_err(|err| ApiError::internal(format!("resize {id}: {err}")))?;
    let mut s = UnixStream::connect(&path)
        .map_err(|err| ApiError::internal(format!("resize {id}: attach socket: {err}")))?;
    let mut p = h.to_be_bytes().to_vec();
    p.extend_from_slice(&w.to_be_bytes());
    let mut msg = attach::hello(&attach::AttachOpts::default());
    msg.extend(attach::frame(attach::RESIZE, &p));
    s.write_all(&msg)
        .map_err(|err| ApiError::internal(format!("resize {id}: {err}")))?;
    Ok(())
}

fn size_params(ctx: &Ctx) -> Result<(u16, u16), ApiError> {
    let h = ctx.query.int("h")?.unwrap_or(0);
    let w = ctx.query.int("w")?.unwrap_or(0);
    let h = u16::try_from(h).map_err(|_| ApiError::bad(format!("h: {h} out of range")))?;
    let w = u16::try_from(w).map_err(|_| ApiError::bad(format!("w: {w} out of range")))?;
    Ok((h, w))
}

async fn resize(ctx: Ctx, id: String) -> R {
    let (h, w) = size_params(&ctx)?;
    let st = ctx.state.clone();
    blocking(move || {
        let e = st.engine()?;
        resize_container(&e, &id, h, w)
    })
    .await?;
    empty(StatusCode::OK)
}

/// The 101 answer of a hijack.
pub(crate) fn upgrade_response(content_type: &str) -> Resp {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .header("Content-Type", content_type)
        .body(full(""))
        .unwrap_or_else(|_| Response::new(full("")))
}

async fn attach_route(mut ctx: Ctx, id: String) -> R {
    let q = &ctx.query;
    let (want_in, want_out, want_err) = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
    let (want_logs, want_stream) = (q.bool("logs"), q.bool("stream"));
    let keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => skiff_engine::tty::parse_detach_keys(k)?,
        None => skiff_engine::tty::DEFAULT_DETACH_KEYS.to_vec(),
    };
    let st = ctx.state.clone();
    let (tty, sock, backlog, gate) = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        // `logs=1`: what the container wrote so far, before the live stream.
        let mut backlog = Vec::new();
        if want_logs {
            let path = e.container_dir(&c.id).join("ctr.log");
            for en in skiff_engine::logs::read_all(&path) {
                let is_err = en.stream == "stderr";
                if (is_err && !want_err) || (!is_err && !want_out) {
                    continue;
                }
                if c.config.tty {
                    backlog.extend_from_slice(en.log.as_bytes());
                } else {
                    backlog.extend(stdcopy(if is_err { 2 } else { 1 }, en.log.as_bytes()));
                }
            }
        }
        if !want_stream {
            return Ok((c.config.tty, None, backlog, None));
        }
        let o = attach::AttachOpts {
            stdin: want_in && c.config.open_stdin,
            stdout: want_out,
            stderr: want_err,
            ..Default::default()
        };
        let hello = attach::hello(&o);
        let io = |err: std::io::Error| ApiError::internal(format!("attach {id}: {err}"));
        // Stdin of a client attached before the start waits for the container to run: the
        // monitor reads a pre-connected client's queued frames before the container has a stdin.
        let gate = (!c.is_active()).then(|| (st.clone(), c.id.clone()));
        let sock = if c.is_active() {
            let (_dir, path) = attach::short_path(&e.run_dir(&c.id)).map_err(io)?;
            let s = UnixStream::connect(&path).map_err(io)?;
            (&s).write_all(&hello).map_err(io)?;
            s
        } else {
            // Attached before the start (docker's `run`, `start -a`): the start hands the other
            // end to the monitor, which treats it as a client from its first byte.
            let (client, mon) = UnixStream::pair().map_err(io)?;
            (&client).write_all(&hello).map_err(io)?;
            if let Ok(mut m) = st.pending_attach.lock() {
                m.insert(c.id.clone(), OwnedFd::from(mon));
            }
            client
        };
        sock.set_nonblocking(true).map_err(io)?;
        Ok((c.config.tty, Some(sock), backlog, gate))
    })
    .await?;
    let ctype = crate::http::stream_type(ctx.version, tty);
    let Some(sock) = sock else {
        // `logs=1` without `stream=1`: the log, then the end.
        let (tx, resp) = stream(ctype);
        if !backlog.is_empty() {
            let _ = tx.send(Bytes::from(backlog)).await;
        }
        return Ok(resp);
    };
    let sock = tokio::net::UnixStream::from_std(sock)
        .map_err(|e| ApiError::internal(format!("attach: {e}")))?;
    if !ctx.wants_upgrade() {
        // Old clients without `Upgrade`: output only, as a streamed body.
        let (tx, resp) = stream(ctype);
        tokio::spawn(async move {
            if !backlog.is_empty() && tx.send(Bytes::from(backlog)).await.is_err() {
                return;
            }
            let (mut r, _w) = sock.into_split();
            while let Ok(Some((kind, p))) = read_frame(&mut r).await {
                let data = match kind {
                    attach::STDOUT | attach::STDERR if tty => p,
                    attach::STDOUT | attach::STDERR => stdcopy(kind, &p),
                    attach::EXIT => break,
                    _ => continue,
                };
                if tx.send(Bytes::from(data)).await.is_err() {
                    break;
                }
            }
        });
        return Ok(resp);
    }
    let on = ctx
        .take_hijack()
        .ok_or_else(|| ApiError::internal("attach: no connection to upgrade"))?;
    tokio::spawn(async move {
        if let Some(mut conn) = on.await {
            if !backlog.is_empty() {
                use tokio::io::AsyncWriteExt;
                if conn.write_all(&backlog).await.is_err() {
                    return;
                }
            }
            relay_attach(conn, sock, tty, want_in, keys, gate).await;
        }
    });
    Ok(upgrade_response(ctype))
}

/// Waits (up to a minute) until container `id` has left `created` (or is gone).
async fn wait_started(st: std::sync::Arc<crate::State>, id: String) {
    for _ in 0..3000 {
        let (st, id) = (st.clone(), id.clone());
        let created = tokio::task::spawn_blocking(move || {
            st.engine()
                .and_then(|e| e.container(&id))
                .map(|c| c.state.status == "created")
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !created {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Reads one attach-protocol frame.
pub(crate) async fn read_frame(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    use tokio::io::AsyncReadExt;
    let mut h = [0u8; 5];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > 1 << 24 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "attach: frame too large",
        ));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p).await?;
    Ok(Some((h[0], p)))
}

/// Relays a hijacked connection and a monitor's attach socket until the container exits, the
/// client detaches (tty + detach keys) or either side goes away. The client's half-close of
/// its stdin becomes STDIN_EOF.
async fn relay_attach<C>(
    conn: C,
    sock: tokio::net::UnixStream,
    tty: bool,
    stdin: bool,
    keys: Vec<u8>,
    mut gate: Option<(std::sync::Arc<crate::State>, String)>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = tokio::io::split(conn);
    let (mut mr, mut mw) = sock.into_split();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut det = skiff_engine::tty::Detacher::new(if tty && stdin { &keys } else { &[] });
        loop {
            let r = cr.read(&mut buf).await;
            if let (Some((st, id)), true) = (gate.take(), stdin) {
                wait_started(st, id).await;
            }
            let n = match r {
                Ok(0) | Err(_) => {
                    if stdin {
                        let _ = mw.write_all(&attach::frame(attach::STDIN_EOF, &[])).await;
                    }
                    // Keep the monitor end open: the output goes on after a half-close.
                    std::future::pending::<()>().await;
                    return;
                }
                Ok(n) => n,
            };
            if !stdin {
                continue;
            }
            let mut out = Vec::with_capacity(n);
            let detached = det.feed(&buf[..n], &mut out);
            if !out.is_empty()
                && mw
                    .write_all(&attach::frame(attach::STDIN, &out))
                    .await
                    .is_err()
            {
                return;
            }
            if detached {
                return;
            }
        }
    });
    let mut input = input;
    loop {
        tokio::select! {
            f = read_frame(&mut mr) => {
                let Ok(Some((kind, p))) = f else { break };
                let data = match kind {
                    attach::STDOUT | attach::STDERR if tty => p,
                    attach::STDOUT | attach::STDERR => stdcopy(kind, &p),
                    attach::EXIT => break,
                    _ => continue,
                };
                if cw.write_all(&data).await.is_err() {
                    break;
                }
            }
            _ = &mut input => break,
        }
    }
    input.abort();
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
}

fn path_param(ctx: &Ctx) -> Result<String, ApiError> {
    ctx.query
        .get("path")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::bad("path: a path in the container is required"))
}

/// `GET|HEAD /containers/{id}/archive?path=P`: the stat header and (GET) a tar of P.
async fn archive_get(ctx: Ctx, id: String) -> R {
    use base64::Engine as _;
    let path = path_param(&ctx)?;
    let head = ctx.method == hyper::Method::HEAD;
    let st = ctx.state.clone();
    let (p2, id2) = (path.clone(), id.clone());
    let stat = blocking(move || {
        let e = st.engine()?;
        skiff_engine::fsops::stat_path(&e, &id2, &p2)?.ok_or_else(|| {
            ApiError::not_found(format!("Could not find the file {p2} in container {id2}"))
        })
    })
    .await?;
    let header = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&stat).unwrap_or_default());
    if head {
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("X-Docker-Container-Path-Stat", header)
            .header("Content-Type", "application/x-tar")
            .body(full(""))
            .unwrap_or_else(|_| Response::new(full(""))));
    }
    let (tx, mut resp) = stream("application/x-tar");
    if let Ok(v) = hyper::header::HeaderValue::from_str(&header) {
        resp.headers_mut().insert("X-Docker-Container-Path-Stat", v);
    }
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, crate::http::ChanWriter(tx));
        let src = skiff_engine::fsops::CpEnd::Container {
            container: id,
            path,
        };
        let _ = skiff_engine::fsops::copy(
            &e,
            &src,
            &skiff_engine::fsops::CpEnd::Stream,
            &Default::default(),
            &mut std::io::empty(),
            &mut w,
        );
        let _ = w.flush();
    });
    Ok(resp)
}

/// `PUT /containers/{id}/archive?path=DIR`: extracts the tar body into DIR.
async fn archive_put(mut ctx: Ctx, id: String) -> R {
    let path = path_param(&ctx)?;
    let opts = skiff_engine::fsops::CpOptions {
        archive: ctx.query.bool("copyUIDGID"),
        follow_link: false,
    };
    let Some(body) = ctx.take_body() else {
        return Err(ApiError::bad("a tar body is required"));
    };
    let (mut rd, feeder) = crate::http::body_reader(body);
    let st = ctx.state.clone();
    let r = blocking(move || {
        let e = st.engine()?;
        let dst = skiff_engine::fsops::CpEnd::Container {
            container: id,
            path,
        };
        let r = skiff_engine::fsops::copy(
            &e,
            &skiff_engine::fsops::CpEnd::Stream,
            &dst,
            &opts,
            &mut rd,
            &mut std::io::sink(),
        );
        // Drain what the client still sends, so it reads our answer.
        while std::io::Read::read(&mut rd, &mut [0u8; 8192]).unwrap_or(0) > 0 {}
        Ok(r?)
    })
    .await;
    feeder.abort();
    r?;
    empty(StatusCode::OK)
}

/// `GET /containers/{id}/stats`: docker's stats JSON, one sample (`stream=0`; with `precpu_stats`
/// from a sample 100 ms earlier unless `one-shot`) or one a second until the client goes away
/// or the container stops.
async fn stats(ctx: Ctx, id: String) -> R {
    let streaming = ctx.query.get("stream").is_none() || ctx.query.bool("stream");
    let one_shot = ctx.query.bool("one-shot");
    let st = ctx.state.clone();
    let id2 = id.clone();
    // Checked before the headers: a missing or stopped container is an error response.
    blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id2)?;
        if !c.is_active() {
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        Ok(())
    })
    .await?;
    let (tx, resp) = stream("application/json");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let mut prev: Option<serde_json::Value> = None;
        if !one_shot {
            if let Ok(c) = e.container(&id) {
                prev = skiff_engine::api::container_stats_json(&e, &c, None)
                    .ok()
                    .map(|v| v["cpu_stats"].clone());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        loop {
            let Ok(c) = e.container(&id) else { return };
            if !c.is_active() {
                return;
            }
            let Ok(v) = skiff_engine::api::container_stats_json(&e, &c, prev.as_ref()) else {
                return;
            };
            if tx.blocking_send(Bytes::from(format!("{v}\n"))).is_err() || !streaming {
                return;
            }
            prev = Some(v["cpu_stats"].clone());
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
    Ok(resp)
}

/// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]` (0 modified, 1 added, 2 deleted).
async fn changes(ctx: Ctx, id: String) -> R {
    let st = ctx.state.clone();
    let v = blocking(move || {
        let e = st.engine()?;
        let ch = skiff_engine::commit::diff(&e, &id)?;
        Ok(ch
            .iter()
            .map(|c| json!({"Path": c.path, "Kind": c.kind.number()}))
            .collect::<Vec<_>>())
    })
    .await?;
    ok_json(&v)
}

/// `GET /containers/{id}/export`: a tar of the container's filesystem.
async fn export(ctx: Ctx, id: String) -> R {
    let st = ctx.state.clone();
    let id2 = id.clone();
    blocking(move || Ok(st.engine()?.container(&id2).map(|_| ())?)).await?;
    let (tx, resp) = stream("application/x-tar");
    let st = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, crate::http::ChanWriter(tx));
        let _ = skiff_engine::fsops::export(&e, &id, &mut w);
        let _ = w.flush();
    });
    Ok(resp)
}
