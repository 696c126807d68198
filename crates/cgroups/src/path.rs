//! Turning `linux.cgroupsPath` into directories: absolute paths sit under each hierarchy's root,
//! relative ones under the cgroup the runtime itself runs in (as runc does), the systemd form
//! `slice:prefix:name` expands to systemd's layout (`/a.slice/a-b.slice/prefix-name.scope`), and the
//! default is `/skiff/<id>`.

use crate::{CgroupSpec, Error, ManagerKind, Result};
use std::path::{Path, PathBuf};

/// A cgroup path relative to some hierarchy root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    /// The path without a leading `/`.
    pub path: String,
    /// True when it is relative to the hierarchy root; false when relative to the runtime's own
    /// cgroup.
    pub absolute: bool,
}

/// True when `p` has the systemd `slice:prefix:name` form.
pub fn is_systemd_form(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3
        && !p.starts_with('/')
        && (parts[0].is_empty() || parts[0].ends_with(".slice"))
        && !parts[2].is_empty()
}

/// The path `spec` asks for, before it is placed under a hierarchy.
pub fn relative_path(spec: &CgroupSpec) -> Result<RelPath> {
    let raw = spec.path.as_deref().unwrap_or("");
    let rel = if spec.manager == ManagerKind::Systemd {
        let p = if raw.is_empty() {
            format!("system.slice:skiff:{}", spec.id)
        } else {
            raw.to_string()
        };
        if !is_systemd_form(&p) {
            return Err(Error::Invalid(format!(
                "cgroupsPath {p:?}: the systemd cgroup manager expects \"slice:prefix:name\""
            )));
        }
        RelPath {
            path: crate::systemd::expand(&p)?,
            absolute: true,
        }
    } else if is_systemd_form(raw) {
        RelPath {
            path: crate::systemd::expand(raw)?,
            absolute: true,
        }
    } else if raw.is_empty() {
        if spec.id.is_empty() || spec.id.contains('/') {
            return Err(Error::Invalid(format!(
                "container id {:?} cannot name a cgroup",
                spec.id
            )));
        }
        RelPath {
            path: format!("skiff/{}", spec.id),
            absolute: true,
        }
    } else {
        RelPath {
            path: raw.trim_start_matches('/').to_string(),
            absolute: raw.starts_with('/'),
        }
    };
    let clean: Vec<&str> = rel
        .path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if clean.contains(&"..") {
        return Err(Error::Invalid(format!(
            "cgroupsPath {raw:?} must not contain \"..\""
        )));
    }
    if clean.is_empty() && rel.absolute {
        return Err(Error::Invalid(format!(
            "cgroupsPath {raw:?} names the root cgroup, which a container cannot own"
        )));
    }
    Ok(RelPath {
        path: clean.join("/"),
        absolute: rel.absolute,
    })
}

/// The cgroup the current process is in for controller `ctl` (`""` = the unified hierarchy), from
/// `/proc/self/cgroup`.
pub fn own_cgroup(ctl: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in s.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctls, path) = (f.next()?, f.next()?, f.next()?);
        if ctl.is_empty() {
            if ctls.is_empty() {
                return Some(path.to_string());
            }
        } else if ctls.split(',').any(|c| c == ctl) {
            return Some(path.to_string());
        }
    }
    None
}

/// Place `rel` under the hierarchy mounted at `mount` (for controller `ctl`, `""` = unified).
pub fn join_under(mount: &Path, rel: &RelPath, ctl: &str, _spec: &CgroupSpec) -> Result<PathBuf> {
    if rel.absolute {
        return Ok(mount.join(&rel.path));
    }
    let own = own_cgroup(ctl).unwrap_or_else(|| "/".into());
    Ok(mount.join(own.trim_start_matches('/')).join(&rel.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: Option<&str>, m: ManagerKind) -> CgroupSpec {
        CgroupSpec {
            path: p.map(String::from),
            id: "c1".into(),
            manager: m,
            rootless: false,
        }
    }

    #[test]
    fn forms_of_cgroups_path() {
        let r = relative_path(&spec(None, ManagerKind::Cgroupfs)).unwrap();
        assert_eq!((r.path.as_str(), r.absolute), ("skiff/c1", true));
        let r = relative_path(&spec(Some("/a//b/"), ManagerKind::Cgroupfs)).unwrap();
        assert_eq!((r.path.as_str(), r.absolute), ("a/b", true));
        let r = relative_path(&spec(Some("x/y"), ManagerKind::Cgroupfs)).unwrap();
        assert_eq!((r.path.as_str(), r.absolute), ("x/y", false));
        let r =
            relative_path(&spec(Some("app-web.slice:skiff:c1"), ManagerKind::Cgroupfs)).unwrap();
        assert_eq!(r.path, "app.slice/app-web.slice/skiff-c1.scope");
        assert!(relative_path(&spec(Some("/a/../b"), ManagerKind::Cgroupfs)).is_err());
        assert!(relative_path(&spec(Some("/"), ManagerKind::Cgroupfs)).is_err());
    }
}
