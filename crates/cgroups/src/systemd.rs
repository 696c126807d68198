//! The systemd cgroup manager. skiff talks to systemd only when systemd is PID 1; everywhere else
//! (this includes every container and CI machine without systemd) asking for it is a clear error.
//! With systemd, a container's cgroup is a transient scope created over D-Bus (StartTransientUnit
//! with the init's pid, `Delegate=yes`), after which the cgroupfs driver writes its resources.
//! The systemd path form `slice:prefix:name` is understood by both managers.

use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::dbus::{Arg, Conn, Value};
use crate::{Error, Result};

/// Check that systemd runs as PID 1 (the `sd_booted` test plus PID 1's name).
pub fn require_systemd() -> Result<()> {
    let comm = std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let booted = std::path::Path::new("/run/systemd/system").is_dir();
    if comm != "systemd" || !booted {
        return Err(Error::Invalid(format!(
            "cgroup manager \"systemd\" needs systemd as PID 1, but PID 1 is {comm:?}; use --cgroup-manager cgroupfs"
        )));
    }
    Ok(())
}

/// The unit systemd creates for the cgroup path `slice:prefix:name`: `(slice, unit)`, e.g.
/// `("system.slice", "skiff-abc.scope")`; a `name` ending in `.slice` is a transient slice.
pub fn unit_of(p: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = p.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(Error::Invalid(format!(
            "cgroupsPath {p:?}: expected \"slice:prefix:name\""
        )));
    };
    let slice = if slice.is_empty() { "-.slice" } else { slice };
    let unit = if name.ends_with(".slice") || prefix.is_empty() {
        if name.ends_with(".slice") {
            name.to_string()
        } else {
            format!("{name}.scope")
        }
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok((slice.to_string(), unit))
}

const DEST: &str = "org.freedesktop.systemd1";
const OBJ: &str = "/org/freedesktop/systemd1";
const MGR: &str = "org.freedesktop.systemd1.Manager";

/// Resource properties systemd itself should know (so a `daemon-reload` does not reset them);
/// the cgroupfs driver writes the full set afterwards.
fn resource_props(res: Option<&LinuxResources>, v2: bool) -> Vec<(String, Value)> {
    let mut p = Vec::new();
    let Some(r) = res else { return p };
    if let Some(limit) = r
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
    {
        let key = if v2 { "MemoryMax" } else { "MemoryLimit" };
        p.push((key.into(), Value::U64(limit as u64)));
    }
    if let Some(cpu) = r.cpu().as_ref() {
        if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
            if v2 {
                let w = crate::shares_to_weight(shares);
                p.push(("CPUWeight".into(), Value::U64(w)));
            } else {
                p.push(("CPUShares".into(), Value::U64(shares)));
            }
        }
        if let (Some(q), period) = (cpu.quota().filter(|q| *q > 0), cpu.period()) {
            let period = period.filter(|p| *p > 0).unwrap_or(100_000);
            // systemd wants the quota per second of wall time, rounded up to 10 ms as runc does.
            let mut per_sec = (q as u64) * 1_000_000 / period;
            per_sec = per_sec.div_ceil(10_000) * 10_000;
            p.push(("CPUQuotaPerSecUSec".into(), Value::U64(per_sec)));
            p.push(("CPUQuotaPeriodUSec".into(), Value::U64(period)));
        }
    }
    if let Some(limit) = r.pids().as_ref().map(|pd| pd.limit()).filter(|l| *l > 0) {
        p.push(("TasksMax".into(), Value::U64(limit as u64)));
    }
    p
}

fn wait_job(conn: &mut Conn, job: &str, unit: &str) -> Result<()> {
    let mut result = String::new();
    conn.wait_signal(Duration::from_secs(30), &mut |m| {
        if m.member.as_deref() != Some("JobRemoved") {
            return false;
        }
        let s = m.strings();
        if s.get(1).map(String::as_str) == Some(job) {
            result = s.get(3).cloned().unwrap_or_default();
            true
        } else {
            false
        }
    })?;
    if result != "done" {
        return Err(Error::Invalid(format!(
            "systemd: job for unit {unit:?} finished with {result:?}"
        )));
    }
    Ok(())
}

fn subscribe(conn: &mut Conn) -> Result<()> {
    if conn.is_bus() {
        conn.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Arg::Val(Value::Str(
                "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'".into(),
            ))],
        )?;
    }
    conn.call(DEST, OBJ, MGR, "Subscribe", &[])?;
    Ok(())
}

/// Ask systemd to create the transient unit `unit` in `slice` holding `pid` (scopes; a slice unit
/// gets no pids), delegated so skiff may write the cgroup itself, and wait until the job is done.
pub fn start_unit(
    slice: &str,
    unit: &str,
    pid: i32,
    res: Option<&LinuxResources>,
    v2: bool,
) -> Result<()> {
    require_systemd()?;
    let mut conn = Conn::systemd()?;
    subscribe(&mut conn)?;
    let mut props: Vec<(String, Value)> = vec![(
        "Description".into(),
        Value::Str(format!("skiff container {unit}")),
    )];
    if unit.ends_with(".scope") {
        props.push(("Slice".into(), Value::Str(slice.into())));
        props.push(("PIDs".into(), Value::U32Array(vec![pid as u32])));
        props.push(("Delegate".into(), Value::Bool(true)));
    } else {
        props.push(("Wants".into(), Value::Str(slice.into())));
    }
    props.push(("DefaultDependencies".into(), Value::Bool(false)));
    props.push(("MemoryAccounting".into(), Value::Bool(true)));
    props.push(("CPUAccounting".into(), Value::Bool(true)));
    props.push(("TasksAccounting".into(), Value::Bool(true)));
    props.extend(resource_props(res, v2));
    let reply = conn
        .call(
            DEST,
            OBJ,
            MGR,
            "StartTransientUnit",
            &[
                Arg::Val(Value::Str(unit.into())),
                Arg::Val(Value::Str("replace".into())),
                Arg::Props(props),
                Arg::AuxUnits,
            ],
        )
        .map_err(|e| Error::Invalid(format!("systemd unit {unit:?}: {e}")))?;
    let job = reply.strings().into_iter().next().unwrap_or_default();
    wait_job(&mut conn, &job, unit)
}

/// Stop the transient unit `unit` and wait until systemd is done; a unit that is already gone
/// (systemd collects empty scopes by itself) is fine.
pub fn stop_unit(unit: &str) -> Result<()> {
    if require_systemd().is_err() {
        return Ok(());
    }
    let mut conn = Conn::systemd()?;
    subscribe(&mut conn)?;
    let job = match conn.call(
        DEST,
        OBJ,
        MGR,
        "StopUnit",
        &[
            Arg::Val(Value::Str(unit.into())),
            Arg::Val(Value::Str("replace".into())),
        ],
    ) {
        Ok(r) => r.strings().into_iter().next().unwrap_or_default(),
        Err(e) if e.to_string().contains("NoSuchUnit") => return Ok(()),
        Err(e) => return Err(e),
    };
    match wait_job(&mut conn, &job, unit) {
        Ok(()) => Ok(()),
        // A scope whose last process exits while we stop it reports "done" or is collected.
        Err(e) if e.to_string().contains("finished with") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Expand a slice name the way systemd lays slices out: `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`;
/// `""` and `-.slice` are the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    if slice.is_empty() || slice == "-.slice" {
        return Ok(String::new());
    }
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(Error::Invalid(format!(
            "systemd slice {slice:?} must end in \".slice\""
        )));
    };
    if stem.contains('/') || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(Error::Invalid(format!(
            "invalid systemd slice name {slice:?}"
        )));
    }
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out.join("/"))
}

/// Expand `slice:prefix:name` to a cgroup path (no leading `/`): `name` ending in `.slice` is a
/// slice itself, anything else becomes the scope `prefix-name.scope`.
pub fn expand(p: &str) -> Result<String> {
    let parts: Vec<&str> = p.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(Error::Invalid(format!(
            "cgroupsPath {p:?}: expected \"slice:prefix:name\""
        )));
    };
    let base = expand_slice(slice)?;
    let unit = if name.ends_with(".slice") {
        return Ok([base, name.to_string()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/"));
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(if base.is_empty() {
        unit
    } else {
        format!("{base}/{unit}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_like_systemd() {
        assert_eq!(expand_slice("system.slice").unwrap(), "system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "");
        assert!(expand_slice("bad").is_err());
        assert!(expand_slice("a--b.slice").is_err());
        assert_eq!(
            expand("system.slice:docker:abc").unwrap(),
            "system.slice/docker-abc.scope"
        );
        assert_eq!(expand(":skiff:abc").unwrap(), "skiff-abc.scope");
        assert_eq!(expand("user.slice::x").unwrap(), "user.slice/x.scope");
    }

    #[test]
    fn systemd_manager_is_refused_without_systemd() {
        // This machine (and CI) boots without systemd as PID 1.
        let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        if comm.trim() != "systemd" {
            let e = require_systemd().unwrap_err().to_string();
            assert!(e.contains("needs systemd as PID 1"), "{e}");
        }
    }
}
