//! `/containers/{id}/exec` and `/exec/{id}/…`: exec instances kept in memory (as docker's
//! daemon keeps them), started through the `skiff exec` binary with its stdio on pipes or on a
//! pty this server holds, relayed over the hijacked connection.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::{stdcopy, upgrade_response};
use crate::http::{blocking, empty, json, ok_json, stream, ApiError, Ctx, R};
use crate::{ExecRecord, State};

/// Exec records kept at most.
const MAX_EXECS: usize = 1024;

/// `POST /containers/{id}/exec`.
pub async fn create(mut ctx: Ctx, id: String) -> R {
    let body: skiff_engine::api::ExecBody = ctx.body(false).await?;
    if body.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad("Cmd: no exec command specified"));
    }
    if !body.detach_keys.is_empty() {
        skiff_engine::tty::parse_detach_keys(&body.detach_keys)?;
    }
    let st = ctx.state.clone();
    let cid = blocking(move || {
        let e = st.engine()?;
        let c = e.container(&id)?;
        match c.state.status.as_str() {
            "running" => Ok(c.id),
            "paused" => Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            ))),
            _ => Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            ))),
        }
    })
    .await?;
    let exec_id = skiff_engine::names::new_id();
    if let Ok(mut m) = ctx.state.execs.lock() {
        // Finished execs are kept for their inspect (the CLI asks right after the stream ends);
        // past MAX_EXECS records the finished ones go, so memory stays bounded.
        if m.len() >= MAX_EXECS {
            m.retain(|_, r| {
                r.exit_code.is_none()
                    && (r.running || r.created.elapsed() < std::time::Duration::from_secs(600))
            });
        }
        if m.len() >= MAX_EXECS {
            return Err(ApiError::conflict(format!(
                "too many exec instances ({MAX_EXECS}) not started or still running"
            )));
        }
        m.insert(
            exec_id.clone(),
            ExecRecord {
                container: cid,
                body,
                running: false,
                exit_code: None,
                pid: 0,
                pty: None,
                created: std::time::Instant::now(),
            },
        );
    }
    Ok(json(StatusCode::CREATED, &json!({"Id": exec_id})))
}

/// Routes `/exec/{id}/<rest>`.
pub async fn route(ctx: Ctx, id: &str, rest: &[&str]) -> R {
    let id = id.to_string();
    let m = ctx.method.as_str().to_string();
    match (m.as_str(), rest) {
        ("POST", ["start"]) => start(ctx, id).await,
        ("POST", ["resize"]) => resize(ctx, id).await,
        ("GET", ["json"]) => inspect(ctx, id),
        _ => Err(ApiError::not_found(format!(
            "page not found: {m} /exec/{id}/{}",
            rest.join("/")
        ))),
    }
}

fn record(st: &State, id: &str) -> Result<ExecRecord, ApiError> {
    st.execs
        .lock()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

fn update(st: &State, id: &str, f: impl FnOnce(&mut ExecRecord)) {
    if let Ok(mut m) = st.execs.lock() {
        if let Some(r) = m.get_mut(id) {
            f(r);
        }
    }
}

fn inspect(ctx: Ctx, id: String) -> R {
    let r = record(&ctx.state, &id)?;
    let cmd = r.body.cmd.clone().unwrap_or_default();
    ok_json(&json!({
        "ID": id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.body.tty,
            "entrypoint": cmd.first(),
            "arguments": cmd.get(1..).unwrap_or(&[]),
            "privileged": r.body.privileged,
            "user": r.body.user,
        },
        "OpenStdin": r.body.attach_stdin,
        "OpenStderr": r.body.attach_stderr,
        "OpenStdout": r.body.attach_stdout,
        "CanRemove": false,
        "ContainerID": r.container,
        "DetachKeys": r.body.detach_keys,
        "Pid": r.pid,
    }))
}

fn set_winsize(fd: &OwnedFd, h: u16, w: u16) {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ on a pty master we own, with a valid winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

async fn resize(ctx: Ctx, id: String) -> R {
    let h = ctx.query.int("h")?.unwrap_or(0);
    let w = ctx.query.int("w")?.unwrap_or(0);
    let (Ok(h), Ok(w)) = (u16::try_from(h), u16::try_from(w)) else {
        return Err(ApiError::bad("h, w: out of range"));
    };
    let r = record(&ctx.state, &id)?;
    if let Some(p) = &r.pty {
        set_winsize(p, h, w);
    }
    empty(StatusCode::OK)
}

/// The `skiff exec` command line for `r`.
fn command(st: &State, r: &ExecRecord, tty: bool) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(&st.exe);
    c.arg("--root").arg(&st.root);
    if let Some(rr) = &st.runroot {
        c.arg("--runroot").arg(rr);
    }
    c.arg("exec");
    if r.body.attach_stdin {
        c.arg("-i");
    }
    if tty {
        c.arg("-t");
    }
    for e in r.body.env.iter().flatten() {
        c.arg("-e").arg(e);
    }
    if !r.body.user.is_empty() {
        c.arg("-u").arg(&r.body.user);
    }
    if !r.body.working_dir.is_empty() {
        c.arg("-w").arg(&r.body.working_dir);
    }
    if !r.body.detach_keys.is_empty() {
        c.arg("--detach-keys").arg(&r.body.detach_keys);
    }
    c.arg(&r.container);
    c.args(r.body.cmd.iter().flatten());
    c.kill_on_drop(false);
    c
}

async fn start(mut ctx: Ctx, id: String) -> R {
    let body: skiff_engine::api::ExecStartBody = ctx.body(true).await?;
    let r = record(&ctx.state, &id)?;
    if r.running || r.exit_code.is_some() {
        return Err(ApiError::conflict(format!(
            "exec {id} has already been started"
        )));
    }
    let st = ctx.state.clone();
    let tty = body.tty || r.body.tty;
    update(&st, &id, |r| r.running = true);
    if body.detach {
        let mut c = command(&st, &r, false);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c
            .spawn()
            .map_err(|e| ApiError::internal(format!("exec {id}: start skiff exec: {e}")))?;
        update(&st, &id, |r| r.pid = child.id().map_or(0, |p| p as i32));
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            update(&st, &id, |r| {
                r.running = false;
                r.exit_code = Some(code);
            });
        });
        return empty(StatusCode::OK);
    }
    let size = body
        .console_size
        .clone()
        .or_else(|| r.body.console_size.clone())
        .filter(|s| s.len() == 2);
    let ctype = crate::http::stream_type(ctx.version, tty);
    let upgrade = if ctx.wants_upgrade() {
        ctx.take_hijack()
    } else {
        None
    };
    if tty {
        let pty = nix::pty::openpty(None, None)
            .map_err(|e| ApiError::internal(format!("exec {id}: openpty: {e}")))?;
        if let Some(s) = &size {
            set_winsize(&pty.master, s[0], s[1]);
        }
        let master = Arc::new(pty.master);
        let slave = pty.slave;
        let mut c = command(&st, &r, true);
        let dup = |f: &OwnedFd| {
            f.try_clone()
                .map(Stdio::from)
                .map_err(|e| ApiError::internal(format!("exec {id}: {e}")))
        };
        c.stdin(dup(&slave)?)
            .stdout(dup(&slave)?)
            .stderr(dup(&slave)?);
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the pty becomes the child's
        // controlling terminal, so our resizes reach it as SIGWINCH.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = c
            .spawn()
            .map_err(|e| ApiError::internal(format!("exec {id}: start skiff exec: {e}")));
        drop(slave);
        let mut child = child?;
        update(&st, &id, |r| {
            r.pid = child.id().map_or(0, |p| p as i32);
            r.pty = Some(master.clone());
        });
        let (rd, wr) = (
            master.try_clone().map(std::fs::File::from),
            master.try_clone().map(std::fs::File::from),
        );
        let (Ok(rd), Ok(wr)) = (rd, wr) else {
            return Err(ApiError::internal(format!("exec {id}: dup pty")));
        };
        let mut rd = tokio::fs::File::from_std(rd);
        let mut wr = tokio::fs::File::from_std(wr);
        let Some(on) = upgrade else {
            let (tx, resp) = stream(ctype);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = rd.read(&mut buf).await {
                    if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
                let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                finish(&st, &id, code);
            });
            return Ok(resp);
        };
        tokio::spawn(async move {
            let Some(conn) = on.await else {
                let _ = child.start_kill();
                let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                finish(&st, &id, code);
                return;
            };
            let (mut cr, mut cw) = tokio::io::split(conn);
            let input = tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            // Half-close: the terminal's end-of-file character.
                            let _ = wr.write_all(&[4]).await;
                            std::future::pending::<()>().await;
                        }
                        Ok(n) => {
                            if wr.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            let _ = wr.flush().await;
                        }
                    }
                }
            });
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if cw.write_all(&buf[..n]).await.is_err() {
                            let _ = child.start_kill();
                            break;
                        }
                    }
                }
            }
            input.abort();
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            finish(&st, &id, code);
            let _ = cw.flush().await;
            let _ = cw.shutdown().await;
        });
        return Ok(upgrade_response(ctype));
    }
    // Without a tty: pipes, stdout and stderr multiplexed (docker's stdcopy).
    let mut c = command(&st, &r, false);
    c.stdin(if r.body.attach_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| ApiError::internal(format!("exec {id}: start skiff exec: {e}")))?;
    update(&st, &id, |r| r.pid = child.id().map_or(0, |p| p as i32));
    let stdin = child.stdin.take();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    for (kind, pipe) in [
        (
            1u8,
            out.map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            2u8,
            err.map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 || tx.send(stdcopy(kind, &buf[..n])).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let Some(on) = upgrade else {
        drop(stdin);
        let (btx, resp) = stream(ctype);
        tokio::spawn(async move {
            let mut rx = rx;
            while let Some(d) = rx.recv().await {
                if btx.send(Bytes::from(d)).await.is_err() {
                    break;
                }
            }
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            finish(&st, &id, code);
        });
        return Ok(resp);
    };
    tokio::spawn(async move {
        let mut rx = rx;
        let Some(conn) = on.await else {
            let _ = child.start_kill();
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            finish(&st, &id, code);
            return;
        };
        let (mut cr, mut cw) = tokio::io::split(conn);
        let input = tokio::spawn(async move {
            let mut stdin = stdin;
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // Half-close of the client's stdin: the process sees end-of-file.
                        drop(stdin.take());
                        std::future::pending::<()>().await;
                    }
                    Ok(n) => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&buf[..n]).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                }
            }
        });
        let mut gone = false;
        while let Some(d) = rx.recv().await {
            if !gone && cw.write_all(&d).await.is_err() {
                gone = true;
            }
        }
        input.abort();
        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
        finish(&st, &id, code);
        let _ = cw.flush().await;
        let _ = cw.shutdown().await;
    });
    Ok(upgrade_response(ctype))
}

fn finish(st: &State, id: &str, code: i32) {
    update(st, id, |r| {
        r.running = false;
        r.exit_code = Some(code);
        r.pty = None;
    });
}
