//! compose v2's progress view: one line per resource (` ✔ Container p-web-1  Started  0.3s`)
//! redrawn in place on a terminal under a `[+] Running k/n` header, plain lines
//! (` Container p-web-1  Started`) otherwise, nothing when quiet. Writers on several threads
//! share one view (a mutex).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A line per event.
    Plain,
    /// Lines per resource, updated in place.
    Tty,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// `--progress VALUE`: `auto` (tty when stderr is a terminal), `tty`, `plain`, `quiet`.
    pub fn parse(s: &str, stderr_is_tty: bool) -> Result<Mode, String> {
        match s {
            "auto" | "" => Ok(if stderr_is_tty {
                Mode::Tty
            } else {
                Mode::Plain
            }),
            "tty" => Ok(Mode::Tty),
            "plain" => Ok(Mode::Plain),
            "quiet" => Ok(Mode::Quiet),
            other => Err(format!(
                "unsupported --progress value {other:?}: use auto, tty, plain or quiet"
            )),
        }
    }
}

struct Line {
    kind: String,
    name: String,
    status: String,
    start: Instant,
    end: Option<Instant>,
}

struct View {
    mode: Mode,
    lines: Vec<Line>,
    /// Lines drawn last time (the cursor is below them).
    drawn: usize,
}

static VIEW: Mutex<View> = Mutex::new(View {
    mode: Mode::Plain,
    lines: Vec::new(),
    drawn: 0,
});

/// Sets the mode for this process (before any event).
pub fn set_mode(m: Mode) {
    if let Ok(mut v) = VIEW.lock() {
        v.mode = m;
    }
}

/// The mode in force.
pub fn mode() -> Mode {
    VIEW.lock().map(|v| v.mode).unwrap_or(Mode::Plain)
}

/// Whether `status` ends an operation (`Created`, `Started`, …) rather than begins one.
fn done(status: &str) -> bool {
    !(status.ends_with("ing") || status == "Recreate")
}

fn failed(status: &str) -> bool {
    status.starts_with("Error")
}

/// Reports that resource `kind` `name` is now `status`.
pub fn event(kind: &str, name: &str, status: &str) {
    let Ok(mut v) = VIEW.lock() else { return };
    match v.mode {
        Mode::Quiet => {}
        Mode::Plain => {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, " {kind} {name}  {status}");
        }
        Mode::Tty => {
            let now = Instant::now();
            match v
                .lines
                .iter_mut()
                .find(|l| l.kind == kind && l.name == name)
            {
                Some(l) => {
                    if !done(status) && done(&l.status) {
                        l.start = now;
                    }
                    l.status = status.to_string();
                    l.end = done(status).then_some(now);
                }
                None => v.lines.push(Line {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    status: status.to_string(),
                    start: now,
                    end: done(status).then_some(now),
                }),
            }
            draw(&mut v);
        }
    }
}

fn draw(v: &mut View) {
    let now = Instant::now();
    let total = v.lines.len();
    let finished = v.lines.iter().filter(|l| done(&l.status)).count();
    let width = v
        .lines
        .iter()
        .map(|l| l.kind.len() + l.name.len() + 1)
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    if v.drawn > 0 {
        s.push_str(&format!("\x1b[{}A", v.drawn));
    }
    s.push_str(&format!("\x1b[2K[+] Running {finished}/{total}\n"));
    for l in &v.lines {
        let mark = if failed(&l.status) {
            "\x1b[31m✘\x1b[0m"
        } else if done(&l.status) {
            "\x1b[32m✔\x1b[0m"
        } else {
            "⠿"
        };
        let secs = l.end.unwrap_or(now).duration_since(l.start).as_secs_f64();
        let what = format!("{} {}", l.kind, l.name);
        s.push_str(&format!(
            "\x1b[2K {mark} {what:<width$}  {:<10} {secs:.1}s\n",
            l.status
        ));
    }
    v.drawn = total + 1;
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.flush();
}

/// Forgets the lines drawn so far: the next event starts a new view below them (between
/// commands of one process, or before log output).
pub fn finish() {
    if let Ok(mut v) = VIEW.lock() {
        v.lines.clear();
        v.drawn = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_states() {
        assert_eq!(Mode::parse("auto", true).unwrap(), Mode::Tty);
        assert_eq!(Mode::parse("auto", false).unwrap(), Mode::Plain);
        assert_eq!(Mode::parse("quiet", true).unwrap(), Mode::Quiet);
        assert!(Mode::parse("json", true).is_err());
        assert!(done("Started") && done("Created") && done("Healthy"));
        assert!(!done("Starting") && !done("Recreate") && !done("Waiting"));
    }
}
