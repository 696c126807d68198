//! Container logs in docker's json-file format (`{"log":"…\n","stream":"stdout","time":"…"}` per
//! line) with `max-size`/`max-file` rotation (`ctr.log`, `ctr.log.1`, …), and the reader behind
//! `skiff logs` (`--tail`, `--since`, `--until`, `-t`, `-f`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Longest partial line kept before it is written out on its own (docker uses 16 KiB).
const MAX_PARTIAL: usize = 16 * 1024;

/// Appends log lines to a json-file log, rotating by size.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' => out.extend_from_slice(b"\\u003c"),
            '>' => out.extend_from_slice(b"\\u003e"),
            '&' => out.extend_from_slice(b"\\u0026"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes())
            }
        }
    }
}

impl LogWriter {
    /// Opens (appending) `path`; `max_size` 0 means no rotation.
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> LogWriter {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(skiff_image::perms::PRIVATE_FILE)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// A writer that keeps nothing (`--log-driver none`).
    pub fn discard() -> LogWriter {
        LogWriter {
            path: PathBuf::new(),
            file: None,
            size: 0,
            max_size: 0,
            max_file: 1,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.max_file > 1 {
            let _ = std::fs::remove_file(name(self.max_file - 1));
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(skiff_image::perms::PRIVATE_FILE)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.path)
            .ok();
        self.size = 0;
    }

    fn write_line(&mut self, stream: usize, line: &[u8]) {
        if self.file.is_none() && self.path.as_os_str().is_empty() {
            return;
        }
        let mut rec = Vec::with_capacity(line.len() + 80);
        rec.extend_from_slice(b"{\"log\":\"");
        escape_into(&mut rec, &String::from_utf8_lossy(line));
        rec.extend_from_slice(b"\",\"stream\":\"");
        rec.extend_from_slice(if stream == 0 { b"stdout" } else { b"stderr" });
        rec.extend_from_slice(b"\",\"time\":\"");
        rec.extend_from_slice(skiff_runtime::util::now_rfc3339().as_bytes());
        rec.extend_from_slice(b"\"}\n");
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&rec).is_ok() {
                self.size += rec.len() as u64;
            }
        }
    }

    /// Logs a chunk of output of `stream` (0 stdout, 1 stderr), line by line.
    pub fn write(&mut self, stream: usize, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[stream]);
            line.extend_from_slice(&data[..=i]);
            self.write_line(stream, &line);
            data = &data[i + 1..];
        }
        self.partial[stream].extend_from_slice(data);
        if self.partial[stream].len() >= MAX_PARTIAL {
            let line = std::mem::take(&mut self.partial[stream]);
            self.write_line(stream, &line);
        }
    }

    /// Writes out partial lines (at exit).
    pub fn flush(&mut self) {
        for s in 0..2 {
            if !self.partial[s].is_empty() {
                let line = std::mem::take(&mut self.partial[s]);
                self.write_line(s, &line);
            }
        }
    }
}

/// One decoded log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text (with its newline, if it had one).
    pub log: String,
    /// RFC 3339 timestamp.
    pub time: String,
    /// The timestamp as Unix nanoseconds.
    pub nanos: i128,
}

/// Parses an RFC 3339 timestamp (any fraction, `Z` or offset) to Unix nanoseconds.
pub fn parse_time_nanos(s: &str) -> Option<i128> {
    let (main, frac_and_zone) = match s.find('.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => {
            let zi = s[10..].find(['Z', '+', '-']).map(|x| x + 10)?;
            (&s[..zi], &s[zi..])
        }
    };
    let secs = skiff_image::time::parse_rfc3339(&format!("{main}Z"))? as i128;
    let digits: String = frac_and_zone
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let zone = &frac_and_zone[digits.len()..];
    let mut nanos: i128 = 0;
    if !digits.is_empty() {
        let d = format!("{:0<9}", &digits[..digits.len().min(9)]);
        nanos = d.parse().ok()?;
    }
    let off: i128 = if zone.is_empty() || zone == "Z" {
        0
    } else {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let z = &zone[1..];
        let (h, m) = z.split_once(':').unwrap_or((z, "0"));
        sign * (h.parse::<i128>().ok()? * 3600 + m.parse::<i128>().ok()? * 60)
    };
    Some((secs - off) * 1_000_000_000 + nanos)
}

/// Parses docker's `--since`/`--until` values: RFC 3339 (or a date), Unix seconds (with fraction),
/// or a duration relative to now (`10m`, `1h30m`, `45s`).
pub fn parse_since(s: &str, now_nanos: i128) -> Option<i128> {
    if let Ok(f) = s.parse::<f64>() {
        return Some((f * 1e9) as i128);
    }
    if s.len() >= 10 && s.as_bytes()[4] == b'-' {
        if s.len() == 10 {
            return parse_time_nanos(&format!("{s}T00:00:00Z"));
        }
        return parse_time_nanos(s);
    }
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(now_nanos - (total * 1e9) as i128)
}

fn decode(line: &str) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let time = v["time"].as_str()?.to_string();
    Some(Entry {
        stream: v["stream"].as_str().unwrap_or("stdout").to_string(),
        log: v["log"].as_str().unwrap_or("").to_string(),
        nanos: parse_time_nanos(&time).unwrap_or(0),
        time,
    })
}

/// The log files of a container, oldest first (`ctr.log.N` … `ctr.log.1`, `ctr.log`).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for i in 1..1000u32 {
        let mut p = path.to_path_buf().into_os_string();
        p.push(format!(".{i}"));
        let p = PathBuf::from(p);
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

/// Reads every entry of the log at `path` (with its rotated files).
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for f in files(path) {
        if let Ok(file) = File::open(&f) {
            for line in BufReader::new(file).lines().map_while(|l| l.ok()) {
                if let Some(e) = decode(&line) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// [`read_all`], plus the byte offset in the current file (`path`) just past the last complete
/// line read: where [`follow`] must start so that no line written meanwhile is lost or repeated.
pub fn read_all_with_offset(path: &Path) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let fs = files(path);
    let last = fs.len().saturating_sub(1);
    for (i, f) in fs.iter().enumerate() {
        let Ok(data) = std::fs::read(f) else {
            continue;
        };
        let mut consumed = 0usize;
        for line in data.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            consumed += line.len();
            if let Some(e) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| decode(l.trim_end()))
            {
                out.push(e);
            }
        }
        if i == last {
            offset = consumed as u64;
        }
    }
    (out, offset)
}

/// Follows `path` from byte `offset`, calling `each` for new entries until `done()` is true (checked
/// when no new data arrives); reopens the file after rotation.
pub fn follow(path: &Path, offset: u64, each: impl FnMut(&Entry) -> bool, done: impl Fn() -> bool) {
    follow_file(path, File::open(path).ok(), offset, each, done)
}

/// [`follow`] on a file opened beforehand (so that a container removed meanwhile still has its
/// last lines read): the open file is read to its end before a rotated `path` is switched to,
/// and once more after `done()` turns true, so nothing written before the end is lost.
pub fn follow_file(
    path: &Path,
    mut file: Option<File>,
    mut offset: u64,
    mut each: impl FnMut(&Entry) -> bool,
    done: impl Fn() -> bool,
) {
    use std::os::unix::fs::MetadataExt;
    let mut ino = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.ino())
        .unwrap_or(0);
    let mut pending = String::new();
    let mut last = false;
    loop {
        let mut progressed = false;
        if file.is_none() {
            if let Ok(f) = File::open(path) {
                ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                offset = 0;
                file = Some(f);
            }
        }
        if let Some(f) = file.as_mut() {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let mut buf = String::new();
                if std::io::Read::read_to_string(f, &mut buf).is_ok() && !buf.is_empty() {
                    offset += buf.len() as u64;
                    pending.push_str(&buf);
                    progressed = true;
                    while let Some(i) = pending.find('\n') {
                        let line: String = pending.drain(..=i).collect();
                        if let Some(e) = decode(line.trim_end()) {
                            if !each(&e) {
                                return;
                            }
                        }
                    }
                }
            }
        }
        if progressed {
            continue;
        }
        if last {
            return;
        }
        // Rotated: the open file is read to its end (above); go on with the new one.
        let now = std::fs::metadata(path).map(|m| m.ino()).ok();
        if now.is_some_and(|n| n != ino) {
            file = None;
            continue;
        }
        if done() {
            last = true;
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rotates_and_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctr.log");
        let mut w = LogWriter::open(&p, 200, 3);
        for i in 0..20 {
            w.write(i % 2, format!("line \"{i}\"\n").as_bytes());
        }
        w.write(0, b"partial");
        w.flush();
        let fs = files(&p);
        assert_eq!(fs.len(), 3, "{fs:?}");
        let all = read_all(&p);
        assert!(all.len() < 21);
        assert_eq!(all.last().unwrap().log, "partial");
        assert!(all.iter().any(|e| e.stream == "stderr"));
        assert!(std::fs::metadata(&p).unwrap().len() <= 200);
    }

    #[test]
    fn times() {
        let a = parse_time_nanos("2026-01-02T03:04:05.5Z").unwrap();
        let b = parse_time_nanos("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(a - b, 500_000_000);
        let c = parse_time_nanos("2026-01-02T04:04:05+01:00").unwrap();
        assert_eq!(c, b);
        assert_eq!(parse_since("10s", 100_000_000_000), Some(90_000_000_000));
        assert_eq!(
            parse_since("1h1m", 4_000_000_000_000),
            Some(4_000_000_000_000 - 3_660_000_000_000)
        );
        assert_eq!(parse_since("12.5", 0), Some(12_500_000_000));
        assert!(parse_since("soon", 0).is_none());
    }
}
