//! cgroup v2 delegation for rootless containers. An ordinary user cannot make cgroups, except in
//! a subtree delegated to it (systemd's `user@UID.service` with `Delegate=yes`: the directory and
//! its `cgroup.procs` and `cgroup.subtree_control` are the user's). When the user's own cgroup
//! lies in such a subtree offering the controllers a container's limits need, the container's
//! cgroup goes there (`<delegated>/skiff/<id>`, controllers enabled on the way down) and the
//! runtime applies the limits; otherwise `run` warns that they are not enforced.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A cgroup v2 subtree delegated to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, `/sys/fs/cgroup/unified`).
    pub mount: PathBuf,
    /// The delegated cgroup, relative to the hierarchy's root (no leading `/`).
    pub rel: String,
    /// The controllers it offers (its `cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// The cgroup2 mount point in a `/proc/self/mountinfo` text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The process's cgroup v2 path (the `0::` line) in a `/proc/self/cgroup` text.
pub fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The highest cgroup from `own` (a cgroup2 path) upwards, below the hierarchy's root, whose
/// directory, `cgroup.procs` and `cgroup.subtree_control` all satisfy `owned` — the delegated
/// subtree holding the process — with the controllers it offers.
pub fn find(mount: &Path, own: &str, owned: &dyn Fn(&Path) -> bool) -> Option<Delegation> {
    let own = own.trim_matches('/');
    let mut best: Option<&str> = None;
    let mut cur = own;
    while !cur.is_empty() {
        let dir = mount.join(cur);
        let delegated = [
            dir.clone(),
            dir.join("cgroup.procs"),
            dir.join("cgroup.subtree_control"),
        ]
        .iter()
        .all(|p| owned(p));
        if !delegated {
            break;
        }
        best = Some(cur);
        cur = cur.rfind('/').map_or("", |i| &cur[..i]);
    }
    let rel = best?;
    let controllers = fs::read_to_string(mount.join(rel).join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Some(Delegation {
        mount: mount.to_path_buf(),
        rel: rel.to_string(),
        controllers,
    })
}

/// The delegated subtree of this process on this host (owned: by the effective uid, which in
/// the rootless namespace is the user's), if any.
pub fn probe() -> Option<Delegation> {
    let mount = cgroup2_mount(&fs::read_to_string("/proc/self/mountinfo").ok()?)?;
    let own = own_cgroup(&fs::read_to_string("/proc/self/cgroup").ok()?)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    find(&mount, &own, &|p| {
        fs::symlink_metadata(p).is_ok_and(|m| m.uid() == uid)
    })
}

impl Delegation {
    /// The controllers of `wanted` this subtree does not offer.
    pub fn missing<'a>(&self, wanted: &[&'a str]) -> Vec<&'a str> {
        wanted
            .iter()
            .filter(|w| !self.controllers.iter().any(|c| c == *w))
            .copied()
            .collect()
    }

    /// The delegated directory.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(&self.rel)
    }

    /// Makes `<delegated>/skiff` with every offered controller of `wanted` enabled for its
    /// children (and in the delegated cgroup for it); returns the cgroup path containers of the
    /// user get under it (`/<rel>/skiff`). Fails (EBUSY) when the delegated cgroup itself holds
    /// processes, which cgroup v2 forbids next to enabled controllers.
    pub fn prepare(&self, wanted: &[&str]) -> io::Result<String> {
        let want: Vec<&str> = wanted
            .iter()
            .filter(|w| self.controllers.iter().any(|c| c == *w))
            .copied()
            .collect();
        let line: String = want
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let enable = |dir: &Path| -> io::Result<()> {
            if line.is_empty() {
                return Ok(());
            }
            let have = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if want
                .iter()
                .all(|w| have.split_whitespace().any(|h| h == *w))
            {
                return Ok(());
            }
            fs::write(dir.join("cgroup.subtree_control"), &line)
        };
        let top = self.dir();
        enable(&top)?;
        let sub = top.join("skiff");
        match fs::create_dir(&sub) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        enable(&sub)?;
        Ok(format!("/{}/skiff", self.rel))
    }
}

/// The cgroup v2 controllers the limits of `resources` need, with the words the warning uses.
pub fn wanted(resources: &serde_json::Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for (key, what, ctl) in [
        ("memory", "memory", "memory"),
        ("cpu", "cpu", "cpu"),
        ("pids", "pids", "pids"),
        ("blockIO", "block I/O", "io"),
        ("hugepageLimits", "hugepages", "hugetlb"),
        ("rdma", "rdma", "rdma"),
        ("unified", "cgroup v2 (unified)", ""),
    ] {
        let set = match &resources[key] {
            serde_json::Value::Null => false,
            serde_json::Value::Object(m) => m.values().any(|x| !x.is_null()),
            serde_json::Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if set {
            out.push((what, ctl));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup2 tree: `dirs` made with the three control files (and `controllers`
    /// written in each).
    fn tree(dirs: &[&str], controllers: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in dirs {
            let p = t.path().join(d);
            fs::create_dir_all(&p).unwrap();
            for f in ["cgroup.procs", "cgroup.subtree_control"] {
                fs::write(p.join(f), "").unwrap();
            }
            fs::write(p.join("cgroup.controllers"), controllers).unwrap();
        }
        t
    }

    #[test]
    fn finds_the_highest_delegated_ancestor() {
        let svc = "user.slice/user-1000.slice/user@1000.service";
        let leaf = "user.slice/user-1000.slice/user@1000.service/app.slice/term.scope";
        let t = tree(
            &[
                "user.slice",
                "user.slice/user-1000.slice",
                svc,
                &format!("{svc}/app.slice"),
                leaf,
            ],
            "cpu memory pids",
        );
        let root = t.path().to_path_buf();
        // systemd's Delegate=yes: user@1000.service and below are the user's.
        let owned = |p: &Path| p.strip_prefix(&root).is_ok_and(|r| r.starts_with(svc));
        let d = find(&root, &format!("/{leaf}"), &owned).unwrap();
        assert_eq!(d.rel, svc);
        assert_eq!(d.controllers, ["cpu", "memory", "pids"]);
        assert!(d.missing(&["memory", "pids"]).is_empty());
        assert_eq!(d.missing(&["memory", "io"]), ["io"]);
        // Nothing delegated (a hybrid host's root-owned tree, or the root cgroup itself).
        assert_eq!(find(&root, &format!("/{leaf}"), &|_| false), None);
        assert_eq!(find(&root, "/", &|_| true), None);
        // A directory of the user's whose control files are not: not delegated.
        let only_dirs = |p: &Path| owned(p) && p.is_dir();
        assert_eq!(find(&root, &format!("/{leaf}"), &only_dirs), None);
    }

    #[test]
    fn prepare_enables_controllers_on_the_way_down() {
        let svc = "user.slice/user@1000.service";
        let t = tree(&[svc], "memory pids cpu");
        let d = Delegation {
            mount: t.path().to_path_buf(),
            rel: svc.into(),
            controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
        };
        let parent = d.prepare(&["memory", "pids", "io"]).unwrap();
        assert_eq!(parent, format!("/{svc}/skiff"));
        // A plain file here (cgroupfs would show the enabled set): what was written.
        let top = fs::read_to_string(t.path().join(svc).join("cgroup.subtree_control")).unwrap();
        assert_eq!(top, "+memory +pids");
        let sub =
            fs::read_to_string(t.path().join(svc).join("skiff/cgroup.subtree_control")).unwrap();
        assert_eq!(sub, "+memory +pids");
    }

    #[test]
    fn mount_and_own_cgroup_from_proc() {
        let mi = "25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n33 25 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pc = "12:memory:/user.slice\n0::/user.slice/user-1000.slice/session-1.scope\n";
        assert_eq!(
            own_cgroup(pc).as_deref(),
            Some("/user.slice/user-1000.slice/session-1.scope")
        );
        let w =
            wanted(&serde_json::json!({"memory": {"limit": 1}, "pids": {"limit": 5}, "cpu": {}}));
        assert_eq!(w, [("memory", "memory"), ("pids", "pids")]);
    }
}
