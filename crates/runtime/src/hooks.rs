//! OCI hooks: run each hook with the container state JSON on stdin, honouring `timeout`.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
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

/// Run `hooks` in order; the first failure stops the list and is returned.
pub fn run(kind: Kind, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    if hooks.is_none_or(|h| h.is_empty()) {
        return Ok(());
    }
    // A hook that exits without reading stdin must not kill the runtime with SIGPIPE.
    // SAFETY: changing the disposition of SIGPIPE; restored below.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let r = run_all(kind, hooks, state);
    // SAFETY: restoring the previous disposition.
    unsafe { libc::signal(libc::SIGPIPE, old) };
    r
}

fn run_all(kind: Kind, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    let data = state.to_string();
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run_one(h, &data).map_err(|e| {
            Error::Other(format!("{kind:?} hook #{i} ({}): {e}", h.path().display()))
        })?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &str) -> std::result::Result<(), String> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
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
