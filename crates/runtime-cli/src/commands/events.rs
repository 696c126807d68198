//! `events`: runc's event stream. `--stats` prints one `{"type":"stats","id":..,"data":{..}}` line
//! and exits; without it, stats are printed every `--interval` and `{"type":"oom","id":..}` as soon
//! as the kernel reports an OOM in the container's memory cgroup, until the container stops.

use serde::Serialize;
use skiff_cgroups::oom::OomEvent;
use skiff_runtime::state::{State, Status};
use std::io::Write;
use std::time::{Duration, Instant};

/// Flags of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stats collection interval (Go duration: 5s, 500ms, 1m30s).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Display the container's stats then exit.
    #[arg(long)]
    pub stats: bool,
    /// Container id.
    pub id: String,
}

/// Parse a Go-style duration (`300ms`, `1.5s`, `1m30s`, `2h`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    skiff_runtime::util::parse_go_duration(s).map_err(anyhow::Error::msg)
}

/// One event line, fields in runc's order.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<skiff_cgroups::Stats>,
}

fn emit(v: &Event<'_>) -> anyhow::Result<()> {
    let v = serde_json::to_string(v)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

fn stats_event(st: &State) -> anyhow::Result<Event<'_>> {
    let s = st
        .cgroup
        .stats()
        .map_err(|e| anyhow::anyhow!("container {:?}: stats: {e}", st.id))?;
    Ok(Event {
        typ: "stats",
        id: &st.id,
        data: Some(s),
    })
}

fn oom_event(st: &State) -> Event<'_> {
    Event {
        typ: "oom",
        id: &st.id,
        data: None,
    }
}

/// Run `events`.
pub fn run(cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    if st.status(&cli.root) == Status::Stopped {
        anyhow::bail!("container {:?} is not running", a.id);
    }
    if st.cgroup.paths.is_empty() {
        anyhow::bail!("container {:?} has no cgroup (cgroups are disabled)", a.id);
    }
    if a.stats {
        emit(&stats_event(&st)?)?;
        return Ok(0);
    }
    let interval = parse_duration(&a.interval)?;
    if interval.is_zero() {
        anyhow::bail!("--interval must be greater than 0");
    }
    let mut oom = match st.cgroup.oom_notifier() {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!(
                "skiff-runtime: warning: no OOM notifications for {:?}: {e}",
                a.id
            );
            None
        }
    };
    let mut next = Instant::now() + interval;
    loop {
        let now = Instant::now();
        if now >= next {
            if st.status(&cli.root) == Status::Stopped {
                return Ok(0);
            }
            emit(&stats_event(&st)?)?;
            next = now + interval;
            continue;
        }
        // Wake at least every 200 ms to notice the container stopping.
        let wait = (next - now).min(Duration::from_millis(200));
        let ev = match oom.as_mut() {
            Some(n) => n.wait(wait)?,
            None => {
                std::thread::sleep(wait);
                OomEvent::Timeout
            }
        };
        match ev {
            OomEvent::Oom(_) => emit(&oom_event(&st))?,
            OomEvent::Gone => return Ok(0),
            OomEvent::Timeout => {}
        }
        if st.status(&cli.root) == Status::Stopped {
            // Report an OOM that raced with the exit before leaving.
            if let Some(n) = oom.as_mut() {
                if let Ok(OomEvent::Oom(_)) = n.wait(Duration::ZERO) {
                    emit(&oom_event(&st))?;
                }
            }
            return Ok(0);
        }
    }
}
