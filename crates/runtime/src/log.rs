//! The runtime's debug log: what `--debug` adds to `--log` (or stderr), in runc's text or JSON line
//! shape. Off unless a caller (the `skiff-runtime` CLI, `skiff -D`) enables it, and then only the
//! runtime parent writes: each line opens the file with O_APPEND and closes it again, so no
//! descriptor of the log can reach a container process.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where debug lines go once enabled.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    /// Append to this file (`--log`); stderr when absent.
    pub path: Option<PathBuf>,
    /// One JSON object per line (`--log-format json`) instead of logfmt text.
    pub json: bool,
}

static DEBUG: OnceLock<Sink> = OnceLock::new();

/// Turn on debug lines for the rest of the process (the first call wins).
pub fn enable_debug(sink: Sink) {
    let _ = DEBUG.set(sink);
}

/// True when debug lines are written (callers may skip building a costly message otherwise).
pub fn debug_enabled() -> bool {
    DEBUG.get().is_some()
}

/// Write one debug line, if enabled: `time="…" level=debug msg="…"` or
/// `{"level":"debug","msg":"…","time":"…"}`. Failures to write are ignored.
pub fn debug(msg: std::fmt::Arguments) {
    let Some(sink) = DEBUG.get() else {
        return;
    };
    let msg = msg.to_string();
    let time = crate::util::now_rfc3339();
    let line = if sink.json {
        serde_json::json!({"level": "debug", "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level=debug msg={msg:?}")
    };
    match &sink.path {
        Some(p) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        None => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// `debug!("fmt", args…)`: a debug line through [`debug`], formatted only when enabled.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::debug_enabled() {
            $crate::log::debug(format_args!($($t)*));
        }
    };
}
