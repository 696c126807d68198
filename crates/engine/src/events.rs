//! The event log behind `skiff events`: one JSON object per line in `<root>/events.log`.
//!
//! There is no daemon to broadcast events, so every skiff process that changes state appends a line
//! with one `write(2)` on an `O_APPEND` descriptor (the kernel serialises appends to a regular file,
//! so concurrent writers never interleave inside a line). The log is bounded: when it grows past
//! [`MAX_LOG_BYTES`] the writer that notices renames it to `events.log.1` (replacing the previous
//! generation) under an exclusive `flock` of `events.lock`; a writer that opened the old file just
//! before the rename appends to `events.log.1`, which readers also read, so no line is lost.
//! Readers (`skiff events`) read `events.log.1` then `events.log`, and follow the live file by
//! polling its size and inode.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Size past which the log is rotated to `events.log.1`.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Reading or writing the log failed.
    #[error("event log {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> EventError + '_ {
    move |cause| EventError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// One event, as stored (one JSON line) and as `skiff events` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Object type: `container`, `image`, `volume` or `network`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened: `create`, `start`, `die`, `destroy`, `mount`, `pull`, ...
    pub action: String,
    /// The object's id (container id, image id or reference, volume name, network id).
    pub id: String,
    /// Attributes shown in parentheses: `name`, `image`, `exitCode`, labels, `driver`, ...
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch (set by [`emit`] when 0).
    #[serde(default)]
    pub time_nano: i64,
}

impl Event {
    /// An event of `kind`/`action` on `id` with no attributes, timestamped by [`emit`].
    pub fn new(kind: &str, action: &str, id: &str) -> Event {
        Event {
            kind: kind.to_string(),
            action: action.to_string(),
            id: id.to_string(),
            attributes: BTreeMap::new(),
            time_nano: 0,
        }
    }

    /// Adds one attribute (builder style).
    pub fn attr(mut self, k: &str, v: &str) -> Event {
        self.attributes.insert(k.to_string(), v.to_string());
        self
    }

    /// Docker's text line: `2024-01-02T03:04:05.000000000Z container start <id> (image=x, name=y)`.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{} {} {} {}",
            rfc3339_nano(self.time_nano),
            self.kind,
            self.action,
            self.id
        );
        if !self.attributes.is_empty() {
            let attrs: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!(" ({})", attrs.join(", ")));
        }
        s
    }

    /// Docker's JSON message shape (what `--format '{{json .}}'` shows).
    pub fn to_docker_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano.div_euclid(1_000_000_000),
            "timeNano": self.time_nano,
        });
        if self.kind == "container" || self.kind == "image" {
            v["status"] = self.action.clone().into();
            v["id"] = self.id.clone().into();
            if let Some(img) = self.attributes.get("image") {
                v["from"] = img.clone().into();
            }
        }
        v
    }
}

/// A container event with docker's attributes: the container's labels, then `image` and `name`
/// (plus whatever `extra` adds, e.g. `exitCode` for `die`, `signal` for `kill`).
pub fn container_event(
    action: &str,
    id: &str,
    name: &str,
    image: &str,
    labels: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
) -> Event {
    let mut ev = Event::new("container", action, id);
    ev.attributes = labels.clone();
    ev.attributes.insert("image".into(), image.into());
    ev.attributes
        .insert("name".into(), name.trim_start_matches('/').into());
    for (k, v) in extra {
        ev.attributes.insert((*k).into(), (*v).into());
    }
    ev
}

/// docker's `volume mount`/`unmount` event for a container using a volume.
pub fn volume_mount_event(
    action: &str,
    volume: &str,
    container_id: &str,
    destination: &str,
    read_write: bool,
) -> Event {
    Event::new("volume", action, volume)
        .attr("container", container_id)
        .attr("destination", destination)
        .attr("driver", "local")
        .attr("propagation", "")
        .attr("read/write", if read_write { "true" } else { "false" })
}

/// Nanoseconds since the epoch, now.
pub fn now_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Formats nanoseconds since the epoch as `2006-01-02T15:04:05.000000000Z` (docker's fixed nanos).
pub fn rfc3339_nano(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let base = skiff_image::time::rfc3339(secs);
    format!("{}.{frac:09}Z", base.trim_end_matches('Z'))
}

/// The live log file.
pub fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

fn rotated_path(root: &Path) -> PathBuf {
    root.join("events.log.1")
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), op) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Appends `ev` (timestamped now if its `time_nano` is 0) to `<root>/events.log` with one write.
pub fn emit(root: &Path, ev: &Event) -> Result<(), EventError> {
    emit_bounded(root, ev, MAX_LOG_BYTES)
}

/// [`emit`] with an explicit rotation size (tests use a small one).
pub fn emit_bounded(root: &Path, ev: &Event, max: u64) -> Result<(), EventError> {
    emit_all_bounded(root, std::slice::from_ref(ev), max)
}

/// Appends several events with one open and one `write(2)` (e.g. exec's `exec_create` and
/// `exec_start`): readers see all of them or none. Each unset time is its own `now`.
pub fn emit_all(root: &Path, evs: &[Event]) -> Result<(), EventError> {
    emit_all_bounded(root, evs, MAX_LOG_BYTES)
}

fn emit_all_bounded(root: &Path, evs: &[Event], max: u64) -> Result<(), EventError> {
    let mut line = Vec::new();
    for ev in evs {
        let mut ev = ev.clone();
        if ev.time_nano == 0 {
            ev.time_nano = now_nano();
        }
        serde_json::to_writer(&mut line, &ev).expect("events serialize");
        line.push(b'\n');
    }
    let path = log_path(root);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err(&path))?;
    // One write(2): std's write_all loops only on a short write, which regular files do not do
    // short of ENOSPC.
    f.write_all(&line).map_err(io_err(&path))?;
    let size = f.metadata().map_err(io_err(&path))?.len();
    if size > max {
        rotate(root, size, max)?;
    }
    Ok(())
}

fn rotate(root: &Path, _seen: u64, max: u64) -> Result<(), EventError> {
    let lock_path = root.join("events.lock");
    let lock = skiff_image::perms::lock_file(&lock_path).map_err(io_err(&lock_path))?;
    flock(&lock, libc::LOCK_EX).map_err(io_err(&lock_path))?;
    let path = log_path(root);
    // Another writer may have rotated while we waited: check again under the lock.
    match fs::metadata(&path) {
        Ok(m) if m.len() > max => {
            fs::rename(&path, rotated_path(root)).map_err(io_err(&path))?;
        }
        _ => {}
    }
    Ok(())
}

/// A time bound for `--since`/`--until`, in nanoseconds since the epoch: unix seconds (with an
/// optional fraction), RFC 3339, or a Go duration (`10m`, `1h30m`, `45s`) meaning that long ago.
pub fn parse_time_bound(s: &str, now_nanos: i64) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Some((secs * 1e9) as i64);
        }
    }
    if let Some(secs) = skiff_image::time::parse_rfc3339(s) {
        let mut nanos = secs * 1_000_000_000;
        if let Some(dot) = s.find('.') {
            let frac: String = s[dot + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !frac.is_empty() {
                let padded = format!("{frac:0<9}");
                nanos += padded[..9].parse::<i64>().unwrap_or(0);
            }
        }
        return Some(nanos);
    }
    if let Some(d) = parse_go_duration(s) {
        return Some(now_nanos - d.as_nanos() as i64);
    }
    // A date alone, as docker accepts.
    skiff_image::time::parse_rfc3339(&format!("{s}T00:00:00Z")).map(|x| x * 1_000_000_000)
}

/// Parses a Go duration such as `1h30m`, `10m`, `45s`, `500ms`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    skiff_runtime::util::parse_go_duration(s).ok()
}

/// Filters of `skiff events --filter`: values of one key are OR-ed, keys are AND-ed (docker's rule).
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    filters: BTreeMap<String, Vec<String>>,
}

impl EventFilter {
    /// Parses `key=value` filters; keys: type, event, container, image, volume, network, label.
    pub fn parse(specs: &[String]) -> Result<EventFilter, String> {
        let mut f = EventFilter::default();
        for s in specs {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("bad format of filter {s:?} (expected name=value)"))?;
            match k {
                "type" | "event" | "container" | "image" | "volume" | "network" | "label" => {}
                other => return Err(format!("invalid filter '{other}'")),
            }
            f.filters
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        Ok(f)
    }

    /// True when `ev` passes every filter key.
    pub fn matches(&self, ev: &Event) -> bool {
        self.filters.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "type" => ev.kind == *v,
                "event" => ev.action == *v || ev.action.split(':').next() == Some(v.as_str()),
                "container" => {
                    ev.kind == "container"
                        && (ev.id.starts_with(v.as_str())
                            || ev.attributes.get("name") == Some(v)
                            || ev.attributes.get("container") == Some(v))
                }
                "image" => {
                    ev.attributes.get("image") == Some(v)
                        || (ev.kind == "image" && (ev.id == *v || ev.id.starts_with(v.as_str())))
                }
                "volume" => ev.kind == "volume" && ev.id == *v,
                "network" => ev.kind == "network" && (ev.id.starts_with(v.as_str())),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => ev.attributes.get(lk).map(String::as_str) == Some(lv),
                    None => ev.attributes.contains_key(v),
                },
                _ => false,
            })
        })
    }
}

/// Reads every stored event (rotated generation first) with `since <= time <= until`.
pub fn read(root: &Path, since: i64, until: i64) -> Result<Vec<Event>, EventError> {
    let mut out = Vec::new();
    for p in [rotated_path(root), log_path(root)] {
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&p)(e)),
        };
        for line in BufReader::new(f).lines() {
            let line = line.map_err(io_err(&p))?;
            if let Ok(ev) = serde_json::from_str::<Event>(&line) {
                if ev.time_nano >= since && ev.time_nano <= until {
                    out.push(ev);
                }
            }
        }
    }
    out.sort_by_key(|e| e.time_nano);
    Ok(out)
}

/// Follows the live log from its current end (or from its start with `from_start`), calling `f`
/// for each event until `f` returns false or `deadline` (nanoseconds since the epoch) passes.
/// Survives rotation.
pub fn follow(
    root: &Path,
    from_start: bool,
    deadline: Option<i64>,
    mut f: impl FnMut(&Event) -> bool,
) -> Result<(), EventError> {
    let path = log_path(root);
    let open = |p: &Path| -> Result<Option<(File, u64)>, EventError> {
        match File::open(p) {
            Ok(f) => {
                let ino = f.metadata().map_err(io_err(p))?.ino();
                Ok(Some((f, ino)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(p)(e)),
        }
    };
    let mut cur = open(&path)?;
    if let Some((file, _)) = cur.as_mut().filter(|_| !from_start) {
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
    }
    let mut pending = Vec::new();
    // Processes the complete lines read so far; Ok(false) means stop.
    let mut drain = |file: &mut File, pending: &mut Vec<u8>| -> Result<bool, EventError> {
        io::Read::read_to_end(file, pending).map_err(io_err(&path))?;
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            if let Ok(ev) = serde_json::from_slice::<Event>(&line) {
                if deadline.is_some_and(|d| ev.time_nano > d) || !f(&ev) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    loop {
        match cur.as_mut() {
            Some((file, ino)) => {
                if !drain(file, &mut pending)? {
                    return Ok(());
                }
                // Rotated away? Drain what a late writer appended to the old file, then switch.
                let now_ino = fs::metadata(&path).map(|m| m.ino()).ok();
                if now_ino != Some(*ino) {
                    if !drain(file, &mut pending)? {
                        return Ok(());
                    }
                    if let Some(new) = open(&path)? {
                        cur = Some(new);
                        pending.clear();
                        continue;
                    }
                }
            }
            None => {
                cur = open(&path)?;
                if cur.is_some() {
                    continue;
                }
            }
        }
        if deadline.is_some_and(|d| now_nano() > d) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_and_roundtrip() {
        let mut ev = Event::new("container", "start", "abc")
            .attr("name", "web")
            .attr("image", "busybox");
        ev.time_nano = 1_700_000_000_123_456_789;
        assert_eq!(
            ev.to_line(),
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)"
        );
        let j = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), ev);
        assert_eq!(ev.to_docker_json()["from"], "busybox");
    }

    #[test]
    fn helpers() {
        let labels = BTreeMap::from([("tier".to_string(), "web".to_string())]);
        let mut ev = container_event(
            "die",
            "abc",
            "/web",
            "busybox",
            &labels,
            &[("exitCode", "3")],
        );
        ev.time_nano = 1;
        assert_eq!(
            ev.to_line(),
            "1970-01-01T00:00:00.000000001Z container die abc (exitCode=3, image=busybox, name=web, tier=web)"
        );
        let m = volume_mount_event("mount", "data", "abc", "/data", true);
        assert_eq!(m.attributes["read/write"], "true");
        assert_eq!(m.attributes["container"], "abc");
    }

    #[test]
    fn time_bounds() {
        let now = 1_000_000_000_000_000_000;
        assert_eq!(parse_time_bound("10", now), Some(10_000_000_000));
        assert_eq!(parse_time_bound("10m", now), Some(now - 600_000_000_000));
        assert_eq!(
            parse_time_bound("2023-11-14T22:13:20.5Z", now),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_time_bound("bogus", now), None);
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
    }

    #[test]
    fn filters() {
        let ev = Event::new("container", "start", "abcdef")
            .attr("name", "web")
            .attr("image", "busybox")
            .attr("tier", "front");
        let f = |s: &[&str]| {
            EventFilter::parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&["type=container", "event=start"]).matches(&ev));
        assert!(f(&["event=stop", "event=start"]).matches(&ev));
        assert!(!f(&["type=volume"]).matches(&ev));
        assert!(f(&["container=web"]).matches(&ev));
        assert!(f(&["container=abc"]).matches(&ev));
        assert!(f(&["image=busybox", "label=tier=front"]).matches(&ev));
        assert!(!f(&["label=tier=back"]).matches(&ev));
        assert!(EventFilter::parse(&["bogus=1".to_string()]).is_err());
    }
}
