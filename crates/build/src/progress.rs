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
