//! The data root leaks nothing to other host users (the CVE-2021-41091 class): every directory
//! and file skiff makes under `--root` (and its run root, `<root>/run` here) is private by its
//! own mode, whatever the umask. The skiff processes of these tests run with umask 000, so a
//! mode that came from the umask shows up as world-writable.
//!
//! The rule the audit checks (see also skiff_image::perms), for every path below the root:
//!
//! * skiff's own directories and files (skiff.db and its -wal/-shm, config.json, ctr.log, exit,
//!   locks, blobs, index.json, snapshot meta.json, sockets, the runtime's state, the seccomp
//!   cache, markers) have no group or other bits at all: docker keeps these 0700/0600 too;
//! * `containers/<id>/{hostname,hosts,resolv.conf}` are 0644: they are bind-mounted into the
//!   container and read there by any uid (docker: 0644), and their directory is private;
//! * `init/skiff-init-*` is 0755: it is the `--init` PID 1, executed by the container's user;
//! * `debug/toolbox/bin` (the tools of `skiff debug install`, each 0755) is 0755: it is mounted
//!   into debug sessions, whose processes run as the container's user;
//! * content trees keep the image's or the container's modes and are not entered:
//!   `snapshots/<chain>/fs` (a layer), `containers/<id>/upper` (the writable layer, which is the
//!   container's `/`, so it is exactly 0755), `work` and `rootfs` (overlay's), and
//!   `volumes/<name>/_data`. Every one of them sits in a private directory, so a setuid file or a
//!   secret in there is out of reach — the second test checks exactly that as user `nobody`.
//!
//! The roots themselves (`<root>`, `<root>/run`) are 0700 and never group/world-anything.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use skiff_tests::{bin, busybox_rootfs, clean_engine_root, expect_ok, require_root, unique};

/// A data root whose parent any user may traverse (so only skiff's own modes stand between a
/// host user and the root's contents), used by skiff processes running with umask 000.
struct Env {
    dir: tempfile::TempDir,
    cgroup: String,
}

impl Env {
    fn new(name: &str) -> Env {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-perms-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Env {
            dir,
            cgroup: unique(&format!("skiff-test-perms-{name}")),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `skiff --root R ARGS` under umask 000, `--cgroup-parent` added to run/create.
    fn sk(&self, args: &[&str]) -> Output {
        skiff_tests::no_default_bridge(&self.root());
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if matches!(args.first(), Some(&"run") | Some(&"create")) {
            v.insert(1, format!("--cgroup-parent={}", self.cgroup));
        }
        Command::new("/bin/sh")
            .arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(bin("skiff"))
            .arg("--root")
            .arg(self.root())
            .args(v)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.sk(args))
    }

    /// Uses the root the way people do: an image with a setuid file, a volume with data, a
    /// running container (with --init, a secret in its environment, a setuid file in its
    /// writable layer and a log line), a created one, a --rm one, exec, commit, save and load.
    /// Returns the running container's id.
    fn workload(&self) -> String {
        let rootfs = self.dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        std::fs::copy("/bin/busybox", rootfs.join("bin/suid")).unwrap();
        std::fs::set_permissions(rootfs.join("bin/suid"), PermissionsExt::from_mode(0o4755))
            .unwrap();
        let fs = rootfs.to_str().unwrap();
        self.ok(&["import", "-c", "CMD [\"sh\"]", fs, "busybox:latest"]);
        self.ok(&["volume", "create", "vol1"]);
        let id = self
            .ok(&[
                "run",
                "-d",
                "--init",
                "--name",
                "keep",
                "-e",
                "SECRET=hunter2",
                "-v",
                "vol1:/data",
                "busybox",
                "sh",
                "-c",
                "echo volume-secret > /data/file && cp /bin/busybox /upper-suid && \
                 chmod 4755 /upper-suid && echo logged-secret && touch /ready && sleep 1000",
            ])
            .trim()
            .to_string();
        let ready = self.root().join("containers").join(&id).join("upper/ready");
        for _ in 0..200 {
            if ready.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(ready.exists(), "container {id} did not get ready");
        assert_eq!(
            self.ok(&["exec", "keep", "cat", "/data/file"]),
            "volume-secret\n"
        );
        self.ok(&["create", "--name", "created", "busybox", "true"]);
        // Container processes of any uid still read the files bound into them, enter `/` and
        // run the init.
        let out = self.ok(&[
            "run",
            "--rm",
            "--init",
            "-u",
            "65534",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname /etc/hosts /etc/resolv.conf >/dev/null && ls / >/dev/null && echo ok",
        ]);
        assert_eq!(out, "ok\n");
        self.ok(&["commit", "keep", "committed:v1"]);
        let tar = self.dir.path().join("saved.tar");
        self.ok(&["save", "-o", tar.to_str().unwrap(), "committed:v1"]);
        self.ok(&["rmi", "committed:v1"]);
        self.ok(&["load", "-i", tar.to_str().unwrap()]);
        // Restart-policy state: update's policy file for a running monitor, the marker of a
        // user's stop, boot's lock.
        self.ok(&["update", "--restart", "always", "keep"]);
        self.ok(&["run", "-d", "--name", "stopped", "busybox", "sleep", "1000"]);
        self.ok(&["stop", "-t", "0", "stopped"]);
        self.ok(&["system", "boot"]);
        // A tool of `debug install`: a shared directory (mounted into debug sessions) in a
        // private one.
        let tool = self.dir.path().join("tool");
        std::fs::write(&tool, skiff_engine::init::INIT_BINARY).unwrap();
        std::fs::set_permissions(&tool, PermissionsExt::from_mode(0o755)).unwrap();
        self.ok(&["debug", "install", tool.to_str().unwrap()]);
        id
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        clean_engine_root(&self.root(), &self.cgroup);
    }
}

/// What may be exposed, by path below the root (the rule in the module documentation).
enum Allowed {
    /// No group/other bits.
    Private,
    /// Exactly this mode.
    Exactly(u32),
    /// A content tree: not entered; its root must not be group/world-writable.
    Content,
}

fn allowed(rel: &[String]) -> Allowed {
    let r: Vec<&str> = rel.iter().map(String::as_str).collect();
    match r.as_slice() {
        ["snapshots", _, "fs"] => Allowed::Content,
        ["containers", _, "upper"] => Allowed::Exactly(0o755),
        ["containers", _, "work" | "rootfs"] => Allowed::Content,
        ["containers", _, "hostname" | "hosts" | "resolv.conf"] => Allowed::Exactly(0o644),
        ["volumes", _, "_data"] => Allowed::Content,
        ["init", n] if n.starts_with("skiff-init-") => Allowed::Exactly(0o755),
        ["debug", "toolbox", "bin"] => Allowed::Exactly(0o755),
        ["debug", "sessions", _, "upper"] => Allowed::Exactly(0o755),
        ["debug", "sessions", _, "work"] => Allowed::Content,
        _ => Allowed::Private,
    }
}

/// Walks the root and returns every path whose mode breaks the rule.
fn audit(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let m = std::fs::metadata(root).unwrap().mode() & 0o7777;
    if m != 0o700 {
        bad.push(format!("{} is {m:o}, want 700", root.display()));
    }
    walk(root, &mut Vec::new(), &mut bad);
    bad
}

fn walk(dir: &Path, rel: &mut Vec<String>, bad: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.file_type().is_symlink() {
            continue;
        }
        rel.push(e.file_name().to_string_lossy().into_owned());
        let mode = md.mode() & 0o7777;
        let name = rel.join("/");
        match allowed(rel) {
            Allowed::Private => {
                if mode & 0o7077 != 0 {
                    bad.push(format!(
                        "{name} is {mode:o}: group/other bits on skiff's own state"
                    ));
                }
                if md.is_dir() {
                    walk(&p, rel, bad);
                }
            }
            Allowed::Exactly(want) => {
                if mode != want {
                    bad.push(format!("{name} is {mode:o}, want {want:o}"));
                }
            }
            Allowed::Content => {
                if mode & 0o022 != 0 {
                    bad.push(format!(
                        "{name} is {mode:o}: a group/world-writable content root"
                    ));
                }
            }
        }
        rel.pop();
    }
}

#[test]
fn data_root_is_private_under_umask_000() {
    let env = Env::new("audit");
    let id = env.workload();
    let root = env.root();
    // The audit must see what it is about: the running container's state and the files in it.
    for p in [
        "skiff.db",
        "containers",
        "snapshots",
        "content/blobs/sha256",
        "volumes/vol1/_data/file",
        "locks",
        "run/runtime",
    ] {
        assert!(
            root.join(p).exists(),
            "{p} missing: the audit would not cover it"
        );
    }
    for p in ["config.json", "ctr.log", "hosts", "upper/upper-suid"] {
        assert!(
            root.join("containers").join(&id).join(p).exists(),
            "{p} missing"
        );
    }
    assert!(root
        .join("run/containers")
        .join(&id)
        .join("attach.sock")
        .exists());
    let bad = audit(&root);
    assert!(
        bad.is_empty(),
        "paths exposed under {}:\n{}",
        root.display(),
        bad.join("\n")
    );
}

/// Runs `args` as uid/gid 65534 with no supplementary groups; returns (success, stderr).
/// setpriv keeps its capabilities until it execs, so its own exec of `args[0]` would be made
/// with CAP_DAC_OVERRIDE: it execs a shell, which then execs `args` as a plain user.
fn as_nobody(args: &[&str]) -> (bool, String) {
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(["/bin/sh", "-c", "exec \"$@\"", "sh"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) must be installed");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_denied(what: &str, args: &[&str]) {
    let (ok, err) = as_nobody(args);
    assert!(!ok, "nobody could {what}: {args:?} succeeded");
    assert!(
        err.contains("Permission denied"),
        "nobody could not {what}, but not for lack of permission (want EACCES): {err}"
    );
}

#[test]
fn host_user_cannot_reach_containers_images_or_volumes() {
    let env = Env::new("nobody");
    let id = env.workload();
    let root = env.root();
    let cdir = root.join("containers").join(&id);
    let upper_suid = cdir.join("upper/upper-suid");
    let snap_suid = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/bin/suid"))
        .find(|p| p.exists())
        .expect("a layer snapshot holding bin/suid");
    for p in [&upper_suid, &snap_suid] {
        let m = std::fs::metadata(p).unwrap().mode();
        assert_eq!(m & 0o4000, 0o4000, "{} is not setuid", p.display());
    }
    // Control: the setup lets nobody reach the root's parent, so only skiff's modes stop them.
    let (ok, err) = as_nobody(&["/bin/ls", env.dir.path().to_str().unwrap()]);
    assert!(ok, "nobody cannot list the root's parent: {err}");

    let s = |p: &Path| p.to_str().unwrap().to_string();
    for (what, p) in [
        (
            "execute a setuid file in a container's writable layer",
            s(&upper_suid),
        ),
        ("execute a setuid file in a layer snapshot", s(&snap_suid)),
    ] {
        assert_denied(what, &[&p, "true"]);
    }
    let reads = [
        ("read config.json", cdir.join("config.json")),
        ("read ctr.log", cdir.join("ctr.log")),
        ("read the database", root.join("skiff.db")),
        ("read volume data", root.join("volumes/vol1/_data/file")),
        (
            "read the runtime's state",
            root.join("run/runtime").join(&id).join("state.json"),
        ),
        ("read the image's files", snap_suid.clone()),
    ];
    let wal = root.join("skiff.db-wal");
    let reads = reads
        .into_iter()
        .chain(wal.exists().then_some(("read the database's WAL", wal)));
    for (what, p) in reads {
        assert!(p.exists(), "{} missing", p.display());
        assert_denied(what, &["/bin/cat", p.to_str().unwrap()]);
    }
    assert_denied("list the data root", &["/bin/ls", root.to_str().unwrap()]);
    assert_denied(
        "list the containers",
        &["/bin/ls", &s(&root.join("containers"))],
    );
    // What the files hold, so the denials above protect something real.
    let config = std::fs::read_to_string(cdir.join("config.json")).unwrap();
    assert!(config.contains("SECRET=hunter2"));
    let log = std::fs::read_to_string(cdir.join("ctr.log")).unwrap();
    assert!(log.contains("logged-secret"));
}

#[test]
fn an_old_root_is_repaired_on_the_next_command() {
    let env = Env::new("repair");
    let id = env.workload();
    let root = env.root();
    env.ok(&["stop", "-t", "0", "keep"]);
    // What an older skiff left under umask 022: 0755 directories, 0644 files (content untouched).
    fn loosen(dir: &Path, rel: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            rel.push(e.file_name().to_string_lossy().into_owned());
            if !md.file_type().is_symlink() && matches!(allowed(rel), Allowed::Private) {
                let m = if md.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(e.path(), PermissionsExt::from_mode(m)).unwrap();
                if md.is_dir() {
                    loosen(&e.path(), rel);
                }
            }
            rel.pop();
        }
    }
    loosen(&root, &mut Vec::new());
    std::fs::set_permissions(&root, PermissionsExt::from_mode(0o755)).unwrap();
    assert!(!audit(&root).is_empty());
    env.ok(&["ps", "-a"]);
    let bad = audit(&root);
    assert!(
        bad.is_empty(),
        "not repaired under {}:\n{}",
        root.display(),
        bad.join("\n")
    );
    // Content keeps its modes: the repair does not touch a container's or an image's files.
    let m = std::fs::metadata(root.join("containers").join(&id).join("upper/upper-suid"))
        .unwrap()
        .mode();
    assert_eq!(m & 0o7777, 0o4755);
    // And the repaired root works.
    env.ok(&["start", "keep"]);
    assert_eq!(
        env.ok(&["exec", "keep", "cat", "/data/file"]),
        "volume-secret\n"
    );
}
