//! OCI hooks: run each hook with the container state JSON on stdin, honouring `timeout`.
//!
//! A hook without `env` gets the environment runc 1.1.5 gives it (observed side by side): the
//! runtime's own for the hooks the runtime runs (prestart, createRuntime, poststart, poststop,
//! started in the bundle directory), the container process's `env` for createContainer (started
//! in the rootfs) and that plus HOME for startContainer. A failing poststart or poststop hook is a
//! warning and the hooks after it still run (the spec; runc stops the list there).

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which hook list (for error messages).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// prestart (deprecated, runs with createRuntime).
    Prestart,
    /// createRuntime.
    CreateRuntime,
    /// createContainer.
    CreateContainer,
    /// startContainer.
    StartContainer,
    /// poststart.
    Poststart,
    /// poststop.
    Poststop,
}

/// Where a hook runs and what it gets when it names no `env`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx<'a> {
    /// Working directory (None: the caller's).
    pub cwd: Option<&'a Path>,
    /// Environment of a hook without `env` (None: the runtime's own).
    pub env: Option<&'a [String]>,
}

impl Kind {
    /// A failure of this kind only warns (runtime-spec: poststart and poststop "MUST log a
    /// warning, but the remaining hooks and lifecycle continue").
    fn warns(self) -> bool {
        matches!(self, Kind::Poststart | Kind::Poststop)
    }
}

/// Run `hooks` in order. For a kind that fails the operation the first failure stops the list
/// and is returned; for poststart/poststop each failure is printed as a warning and the rest run.
pub fn run(
    kind: Kind,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
    ctx: Ctx<'_>,
) -> Result<()> {
    if hooks.is_none_or(|h| h.is_empty()) {
        return Ok(());
    }
    // A hook that exits without reading stdin must not kill the runtime with SIGPIPE.
    // SAFETY: changing the disposition of SIGPIPE; restored below.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let r = run_all(kind, hooks, state, ctx);
    // SAFETY: restoring the previous disposition.
    unsafe { libc::signal(libc::SIGPIPE, old) };
    r
}

fn run_all(
    kind: Kind,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
    ctx: Ctx<'_>,
) -> Result<()> {
    let data = state.to_string();
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run_one(h, &data, ctx) {
            let e = format!("{kind:?} hook #{i} ({}): {e}", h.path().display());
            if !kind.warns() {
                return Err(Error::Other(e));
            }
            eprintln!("skiff-runtime: warning: {e}");
        }
    }
    Ok(())
}

fn run_one(h: &Hook, state: &str, ctx: Ctx<'_>) -> std::result::Result<(), String> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    // `"env": []` is an empty environment; no `env` at all is the context's (see the module doc).
    if let Some(env) = h.env().as_deref().or(ctx.env) {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    if let Some(d) = ctx.cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read stdin is fine.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) if st.success() => return Ok(()),
            Some(st) => return Err(format!("exited with {st}")),
            None => {}
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
