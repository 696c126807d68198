//! Build progress as BuildKit prints it in `--progress=plain` mode: `#N name`, the step's output
//! lines prefixed with `#N <seconds>`, then `#N CACHED`, `#N DONE 0.1s` or `#N ERROR: …`.

use std::io::Write;
use std::time::Instant;

/// Receives the build's progress.
pub trait Progress {
    /// A new step; returns its number.
    fn start(&mut self, name: &str) -> usize;
    /// Output of a step's process.
    fn log(&mut self, id: usize, data: &[u8]);
    /// A detail line (`writing image … done`).
    fn detail(&mut self, id: usize, text: &str);
    /// The step was found in the cache.
    fn cached(&mut self, id: usize);
    /// The step finished.
    fn done(&mut self, id: usize);
    /// The step failed.
    fn error(&mut self, id: usize, msg: &str);
    /// A warning about the build as a whole.
    fn warn(&mut self, msg: &str);
}

/// BuildKit's plain output on a writer (stderr for `skiff build`).
pub struct Plain<W: Write> {
    out: W,
    next: usize,
    started: Vec<Instant>,
    partial: Vec<Vec<u8>>,
}

impl<W: Write> Plain<W> {
    /// Progress onto `out`.
    pub fn new(out: W) -> Plain<W> {
        Plain {
            out,
            next: 0,
            started: Vec::new(),
            partial: Vec::new(),
        }
    }
    fn elapsed(&self, id: usize) -> f64 {
        self.started
            .get(id - 1)
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }
    fn flush_partial(&mut self, id: usize) {
        if let Some(p) = self.partial.get_mut(id - 1) {
            if !p.is_empty() {
                let line = String::from_utf8_lossy(p).into_owned();
                p.clear();
                let t = self.elapsed(id);
                let _ = writeln!(self.out, "#{id} {t:.3} {line}");
            }
        }
    }
}

impl<W: Write> Progress for Plain<W> {
    fn start(&mut self, name: &str) -> usize {
        self.next += 1;
        self.started.push(Instant::now());
        self.partial.push(Vec::new());
        let _ = writeln!(self.out, "#{} {name}", self.next);
        let _ = self.out.flush();
        self.next
    }
    fn log(&mut self, id: usize, data: &[u8]) {
        let Some(p) = self.partial.get_mut(id - 1) else {
            return;
        };
        p.extend_from_slice(data);
        while let Some(nl) = self.partial[id - 1].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[id - 1].drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let t = self.elapsed(id);
            let _ = writeln!(self.out, "#{id} {t:.3} {text}");
        }
        let _ = self.out.flush();
    }
    fn detail(&mut self, id: usize, text: &str) {
        let _ = writeln!(self.out, "#{id} {text}");
    }
    fn cached(&mut self, id: usize) {
        let _ = writeln!(self.out, "#{id} CACHED\n");
        let _ = self.out.flush();
    }
    fn done(&mut self, id: usize) {
        self.flush_partial(id);
        let t = self.elapsed(id);
        let _ = writeln!(self.out, "#{id} DONE {t:.1}s\n");
        let _ = self.out.flush();
    }
    fn error(&mut self, id: usize, msg: &str) {
        self.flush_partial(id);
        let _ = writeln!(self.out, "#{id} ERROR: {msg}");
        let _ = self.out.flush();
    }
    fn warn(&mut self, msg: &str) {
        let _ = writeln!(self.out, "{msg}");
    }
}

/// No output (`-q`, `--progress=quiet`).
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str) -> usize {
        0
    }
    fn log(&mut self, _: usize, _: &[u8]) {}
    fn detail(&mut self, _: usize, _: &str) {}
    fn cached(&mut self, _: usize) {}
    fn done(&mut self, _: usize) {}
    fn error(&mut self, _: usize, _: &str) {}
    fn warn(&mut self, _: &str) {}
}

/// One step as the terminal display keeps it.
struct TtyStep {
    name: String,
    started: Instant,
    ended: Option<f64>,
    cached: bool,
    error: bool,
    tail: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

/// BuildKit's terminal display: a `[+] Building` header and one line per step, redrawn in place;
/// a running step shows its last output lines, which collapse when it is done.
pub struct Tty<W: Write> {
    out: W,
    steps: Vec<TtyStep>,
    drawn: usize,
    start: Instant,
    last_draw: Option<Instant>,
    width: usize,
    warnings: Vec<String>,
}

const TAIL: usize = 6;

fn term_width() -> usize {
    // SAFETY: a zeroed winsize is a valid out buffer for TIOCGWINSZ on stderr.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a valid fd and out pointer.
    let r = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_col > 20 {
        ws.ws_col as usize
    } else {
        80
    }
}

fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        s.chars().take(w.saturating_sub(1)).collect::<String>() + "…"
    }
}

impl<W: Write> Tty<W> {
    /// The display onto `out` (a terminal).
    pub fn new(out: W) -> Tty<W> {
        Tty {
            out,
            steps: Vec::new(),
            drawn: 0,
            start: Instant::now(),
            last_draw: None,
            width: term_width(),
            warnings: Vec::new(),
        }
    }

    fn draw(&mut self, force: bool, finished: bool) {
        if !force
            && self
                .last_draw
                .is_some_and(|t| t.elapsed().as_millis() < 100)
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let w = self.width;
        let mut lines = Vec::new();
        let done = self.steps.iter().filter(|s| s.ended.is_some()).count();
        lines.push(format!(
            "[+] Building {:.1}s ({done}/{}){}",
            self.start.elapsed().as_secs_f64(),
            self.steps.len(),
            if finished { " FINISHED" } else { "" }
        ));
        for s in &self.steps {
            let t = s.ended.unwrap_or_else(|| s.started.elapsed().as_secs_f64());
            let label = format!(
                " => {}{}{}",
                if s.cached { "CACHED " } else { "" },
                if s.error { "ERROR " } else { "" },
                s.name
            );
            let time = format!("{t:.1}s");
            let room = w.saturating_sub(time.len() + 1);
            let label = fit(&label, room);
            let pad = room.saturating_sub(label.chars().count());
            lines.push(format!("{label}{} {time}", " ".repeat(pad)));
            if s.ended.is_none() || s.error {
                for l in &s.tail {
                    lines.push(fit(&format!(" => => # {l}"), w));
                }
            }
        }
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A\r", self.drawn));
        }
        buf.push_str("\x1b[J");
        for l in &lines {
            buf.push_str(l);
            buf.push('\n');
        }
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
        self.drawn = lines.len();
    }

    /// Draws the final state and the warnings.
    pub fn finish(&mut self) {
        self.draw(true, true);
        self.drawn = 0;
        for w in std::mem::take(&mut self.warnings) {
            let _ = writeln!(self.out, "{w}");
        }
    }
}

impl<W: Write> Progress for Tty<W> {
    fn start(&mut self, name: &str) -> usize {
        self.steps.push(TtyStep {
            name: name.to_string(),
            started: Instant::now(),
            ended: None,
            cached: false,
            error: false,
            tail: Default::default(),
            partial: Vec::new(),
        });
        self.draw(true, false);
        self.steps.len()
    }
    fn log(&mut self, id: usize, data: &[u8]) {
        let Some(s) = self.steps.get_mut(id - 1) else {
            return;
        };
        s.partial.extend_from_slice(data);
        while let Some(nl) = s.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=nl).collect();
            s.tail
                .push_back(String::from_utf8_lossy(&line[..line.len() - 1]).replace('\t', "  "));
            if s.tail.len() > TAIL {
                s.tail.pop_front();
            }
        }
        self.draw(false, false);
    }
    fn detail(&mut self, _: usize, _: &str) {}
    fn cached(&mut self, id: usize) {
        if let Some(s) = self.steps.get_mut(id - 1) {
            s.cached = true;
            s.ended = Some(0.0);
        }
        self.draw(true, false);
    }
    fn done(&mut self, id: usize) {
        if let Some(s) = self.steps.get_mut(id - 1) {
            s.ended = Some(s.started.elapsed().as_secs_f64());
        }
        self.draw(true, false);
    }
    fn error(&mut self, id: usize, _msg: &str) {
        if let Some(s) = self.steps.get_mut(id - 1) {
            s.ended = Some(s.started.elapsed().as_secs_f64());
            s.error = true;
        }
        self.draw(true, false);
    }
    fn warn(&mut self, msg: &str) {
        if !msg.is_empty() {
            self.warnings.push(msg.to_string());
        }
    }
}
