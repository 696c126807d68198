//! The systemd cgroup manager. skiff talks to systemd only when systemd is PID 1; everywhere else
//! (this includes every container and CI machine without systemd) asking for it is a clear error.
//! The systemd path form `slice:prefix:name` is understood by both managers.

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
    Err(Error::Invalid(
        "cgroup manager \"systemd\": creating scopes over D-Bus is not supported by this build; use --cgroup-manager cgroupfs"
            .into(),
    ))
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
