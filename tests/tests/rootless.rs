//! Rootless skiff: an ordinary user (made per test with useradd, subordinate id ranges added with
//! usermod) runs the built binaries through setpriv, with a HOME of its own and no
//! XDG_RUNTIME_DIR (so the private /tmp/skiff-<uid> fallback is used). Each user, its home, its
//! ranges, its processes and its run directory are removed on drop.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use skiff_tests::{bin, busybox_rootfs, require_root, skip, stderr, stdout};

/// The size of each test user's subordinate range.
const RANGE: u32 = 65536;

/// An unprivileged user made for one test, with a busybox image tarball it can read.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    /// First subordinate uid/gid (None: no range, the single-id fallback).
    base: Option<u32>,
    /// Holds busybox.tar (readable by everyone).
    files: tempfile::TempDir,
    /// The XDG_RUNTIME_DIR given to its commands (None: unset, the /tmp fallback).
    xdg: Option<PathBuf>,
    /// This user's slot among the test process's users (places its ranges).
    slot: u32,
    /// A second subordinate range (first id, count) added by [`User::add_range`].
    extra: Option<(u32, u32)>,
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

impl User {
    /// A fresh user; `ranges` gives it subordinate ids. None (after a printed skip) when the host
    /// lacks the uidmap tools.
    fn new(ranges: bool) -> Option<User> {
        require_root();
        if ranges && !Path::new("/usr/bin/newuidmap").exists() {
            skip("newuidmap (Debian package uidmap) is not installed");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("skrl{}x{n}", pid % 1_000_000);
        // useradd would pick ranges of its own: none, then exactly ours.
        run(Command::new("useradd").args([
            "-m",
            "-K",
            "SUB_UID_COUNT=0",
            "-K",
            "SUB_GID_COUNT=0",
            "-s",
            "/bin/sh",
            &name,
        ]));
        let id = |flag: &str| -> u32 {
            let o = run(Command::new("id").args([flag, &name]));
            stdout(&o).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let files = tempfile::Builder::new()
            .prefix("skiff-rootless-")
            .tempdir()
            .unwrap();
        let mut u = User {
            home: PathBuf::from(format!("/home/{name}")),
            name,
            uid,
            gid,
            base: None,
            files,
            xdg: None,
            slot: (pid % 2000) * 8 + n % 8,
            extra: None,
        };
        if ranges {
            // Apart from other test processes' users (overlap would still work, but be unclean).
            let base = 1_000_000 + ((pid % 2000) * 8 + n % 8) * RANGE;
            let r = format!("{base}-{}", base + RANGE - 1);
            run(Command::new("usermod").args(["--add-subuids", &r, "--add-subgids", &r, &u.name]));
            u.base = Some(base);
        }
        // The image tarball, built as root (owners 0) and readable by the user.
        let rootfs = u.files.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let tar = u.files.path().join("busybox.tar");
        run(Command::new("tar").args([
            "--numeric-owner",
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ]));
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(u.files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(u)
    }

    /// `skiff ARGS` as this user, with its own HOME and nothing else of the test's environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--init-groups",
            "--",
        ])
        .arg(bin("skiff"))
        .args(args)
        .env_clear()
        .env("HOME", &self.home)
        .env("USER", &self.name)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(&self.home)
        .stdin(std::process::Stdio::null());
        if let Some(x) = &self.xdg {
            c.env("XDG_RUNTIME_DIR", x);
        }
        c
    }

    /// Adds a second subordinate uid and gid range of `count` ids (apart from every first
    /// range), removed on drop.
    fn add_range(&mut self, count: u32) {
        assert!(count <= 2 * RANGE);
        let start = 400_000_000 + self.slot * 2 * RANGE;
        let r = format!("{start}-{}", start + count - 1);
        run(Command::new("usermod").args(["--add-subuids", &r, "--add-subgids", &r, &self.name]));
        self.extra = Some((start, count));
    }

    /// Gives the user an XDG_RUNTIME_DIR (0700, its own, as pam_systemd makes), used by its
    /// commands from now on; removed on drop.
    fn set_xdg(&mut self) -> PathBuf {
        let x = PathBuf::from(format!("/tmp/skiff-test-xdg-{}", self.uid));
        let _ = std::fs::remove_dir_all(&x);
        std::fs::create_dir(&x).unwrap();
        std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&x, Some(self.uid), Some(self.gid)).unwrap();
        self.xdg = Some(x.clone());
        x
    }

    fn sk(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.sk(args);
        assert!(
            o.status.success(),
            "skiff {args:?} as {} failed ({}): {}{}",
            self.name,
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    fn import(&self) {
        let tar = self.files.path().join("busybox.tar");
        self.ok(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            tar.to_str().unwrap(),
            "busybox:latest",
        ]);
    }

    fn store(&self) -> PathBuf {
        self.home.join(".local/share/skiff")
    }

    fn rundir(&self) -> PathBuf {
        match &self.xdg {
            Some(x) => x.join("skiff"),
            None => PathBuf::from(format!("/tmp/skiff-{}", self.uid)),
        }
    }

    /// Pids of the user's processes.
    fn processes(&self) -> Vec<i32> {
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if std::fs::metadata(e.path()).is_ok_and(|m| m.uid() == self.uid) {
                v.push(pid);
            }
        }
        v
    }

    /// Removes every container (as the user), then stops the namespace's pause process; returns
    /// the user's processes still alive a few seconds later (none expected).
    fn shutdown(&self) -> Vec<i32> {
        if self.store().exists() {
            let ids = stdout(&self.sk(&["ps", "-aq"]));
            for id in ids.split_whitespace() {
                let _ = self.sk(&["rm", "-f", id]);
            }
            let _ = self.sk(&["system", "migrate"]);
        }
        for _ in 0..100 {
            if self.processes().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.processes()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let left = self.shutdown();
        for pid in left {
            // SAFETY: kill with integer arguments; the pid is a process of the user this test made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(self.rundir());
        let _ = std::fs::remove_dir_all(format!("/tmp/skiff-{}", self.uid));
        if let Some(x) = &self.xdg {
            let _ = std::fs::remove_dir_all(x);
        }
        if let Some((s, n)) = self.extra {
            let r = format!("{s}-{}", s + n - 1);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &r, "--del-subgids", &r, &self.name])
                .output();
        }
        if let Some(b) = self.base {
            let r = format!("{b}-{}", b + RANGE - 1);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &r, "--del-subgids", &r, &self.name])
                .output();
        }
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// Lines of the host's mount table that name `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

#[test]
fn rootless_run_exec_logs_volume_and_bind() {
    let Some(u) = User::new(true) else { return };
    let base = u.base.unwrap();
    u.import();

    // The store is the user's, private, and outside root's.
    let st = u.store();
    assert_eq!(owner(&st), (u.uid, u.gid));
    assert_eq!(std::fs::metadata(&st).unwrap().mode() & 0o777, 0o700);
    // Container root's files are the user's on the host.
    let snaps: Vec<PathBuf> = std::fs::read_dir(st.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/bin/busybox"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(snaps.len(), 1, "one unpacked layer with busybox");
    assert_eq!(owner(&snaps[0]), (u.uid, u.gid));

    // uid 0 inside; the namespace maps the user's range behind it.
    let out = u.ok(&["run", "--rm", "busybox", "id"]);
    assert!(out.starts_with("uid=0(root) gid=0(root)"), "{out}");
    let map = u.ok(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    let rows: Vec<Vec<u64>> = map
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert!(rows.contains(&vec![0, u.uid as u64, 1]), "{map}");
    assert!(rows.contains(&vec![1, base as u64, RANGE as u64]), "{map}");

    // A bind-mounted directory of the user's and a named volume: files container root makes are
    // the user's; files given to uid/gid 1000 are the range's 1000th id.
    let src = u.home.join("src");
    std::fs::create_dir(&src).unwrap();
    std::os::unix::fs::chown(&src, Some(u.uid), Some(u.gid)).unwrap();
    let bind = format!("{}:/src", src.display());
    u.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "touch /src/mine /data/mine && touch /src/his /data/his && chown 1000:1000 /src/his /data/his",
    ]);
    let vol = st.join("volumes/data/_data");
    for d in [&src, &vol] {
        assert_eq!(owner(&d.join("mine")), (u.uid, u.gid), "{}", d.display());
        assert_eq!(
            owner(&d.join("his")),
            (base + 999, base + 999),
            "{}",
            d.display()
        );
    }

    // --userns keep-id: the user's own uid inside too, so a source tree keeps its owner.
    let out = u.ok(&[
        "run",
        "--rm",
        "--userns",
        "keep-id",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "id -u; id -g; touch /src/kept",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [u.uid.to_string(), u.gid.to_string()]
    );
    assert_eq!(owner(&src.join("kept")), (u.uid, u.gid));

    // `:U` gives the source to the container's user (uid 1000 inside: the range's 1000th id),
    // so a non-root container process can write there.
    let work = u.home.join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("old"), "x").unwrap();
    std::os::unix::fs::chown(&work, Some(u.uid), Some(u.gid)).unwrap();
    std::os::unix::fs::chown(work.join("old"), Some(u.uid), Some(u.gid)).unwrap();
    let spec = format!("{}:/w:U", work.display());
    let o = u.sk(&[
        "run",
        "--rm",
        "--user",
        "1000:1000",
        "-v",
        &spec,
        "busybox",
        "touch",
        "/w/new",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["", "old", "new"] {
        assert_eq!(owner(&work.join(f)), (base + 999, base + 999), "{f}");
    }

    // Detached, exec, logs, ps, stop, rm -f.
    let id = u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(u.ok(&["exec", "web", "id", "-u"]).trim(), "0");
    assert!(u.ok(&["exec", "web", "ls", "/"]).contains("bin"));
    // The pause process stopped while web runs: the next command joins web's namespaces again
    // (through its monitor) rather than making new ones it could not exec from.
    let pause = std::fs::read_to_string(u.rundir().join("pause.pid")).unwrap();
    u.ok(&["system", "migrate"]);
    assert_eq!(
        u.ok(&["exec", "web", "echo", "rejoined"]).trim(),
        "rejoined"
    );
    let pause2 = std::fs::read_to_string(u.rundir().join("pause.pid")).unwrap();
    assert_ne!(pause, pause2);
    let mut logs = String::new();
    for _ in 0..50 {
        logs = u.ok(&["logs", "web"]);
        if logs.contains("started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs.trim(), "started");
    assert!(u.ok(&["ps"]).contains("web"));
    u.ok(&["stop", "-t", "1", "web"]);
    assert!(u.ok(&["ps", "-a"]).contains("Exited (137)"));
    u.ok(&["start", "web"]);
    assert_eq!(u.ok(&["exec", "web", "echo", "again"]).trim(), "again");
    u.ok(&["rm", "-f", "web"]);
    assert!(!u.ok(&["ps", "-a"]).contains("web"));
    assert!(!st.join("containers").join(id).exists());

    // Nothing stays: no container mounts (they lived in the user's namespace, not the host's),
    // and no process once the namespace's pause process is stopped.
    assert!(host_mounts_under(&st).is_empty());
    let left = u.shutdown();
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(host_mounts_under(&u.rundir()).is_empty());
}

#[test]
fn rootless_store_is_private_to_its_user() {
    let Some(a) = User::new(true) else { return };
    let Some(b) = User::new(true) else { return };
    a.import();
    // The run directory fallback is private too.
    let rd = a.rundir();
    let m = std::fs::symlink_metadata(&rd).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), m.mode() & 0o777), (a.uid, 0o700));
    // b cannot read a's store, neither directly nor through skiff.
    let mut ls = Command::new("setpriv");
    ls.args([
        &format!("--reuid={}", b.uid),
        &format!("--regid={}", b.gid),
        "--init-groups",
        "ls",
    ])
    .arg(a.store().join("snapshots"));
    let o = ls.output().unwrap();
    assert!(!o.status.success(), "b listed a's store: {}", stdout(&o));
    let o = b.sk(&["--root", a.store().to_str().unwrap(), "images"]);
    assert!(!o.status.success(), "b used a's store: {}", stdout(&o));
    // b's own store has nothing of a's.
    assert!(!b.ok(&["images"]).contains("busybox"));
    // Root's default store is not the user's.
    assert_ne!(a.store(), Path::new("/var/lib/skiff"));
}

#[test]
fn rootless_limits_warn_and_network_is_none() {
    let Some(u) = User::new(true) else { return };
    u.import();
    // -m is not silently dropped: the run warns that limits are not enforced, and still runs.
    let o = u.sk(&[
        "run",
        "--rm",
        "-m",
        "32m",
        "--pids-limit",
        "50",
        "busybox",
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("WARNING: rootless: resource limits are NOT enforced (memory, pids given)"),
        "{err}"
    );
    // Why: on this kind of host (no systemd user session) no cgroup v2 subtree is delegated to
    // the user. Where one is, the limits are applied there instead (not testable here; the
    // detection is unit-tested in skiff_engine::delegation against a fake tree).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if own.lines().any(|l| l.starts_with("0::")) {
        assert!(err.contains("none holds this process"), "{err}");
    }
    // Without limits, no warning.
    let o = u.sk(&["run", "--rm", "busybox", "true"]);
    assert!(
        o.status.success() && !stderr(&o).contains("WARNING"),
        "{}",
        stderr(&o)
    );
    // No network by default (only lo), and the bridge is refused with a reason.
    let links = u.ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{links}"
    );
    let o = u.sk(&["run", "--rm", "--network", "bridge", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("rootless"), "{}", stderr(&o));
    // info says what this engine is.
    let info = u.ok(&["info"]);
    for want in ["  rootless\n", "Cgroup Driver: none", "userxattr: true"] {
        assert!(info.contains(want), "{want}: {info}");
    }
    assert!(
        info.contains(&format!("Docker Root Dir: {}", u.store().display())),
        "{info}"
    );
}

#[test]
fn rootless_unshare_and_single_id_fallback() {
    let Some(u) = User::new(true) else { return };
    let base = u.base.unwrap();
    // `skiff unshare` runs a command in the namespace: root there, the user's range behind it,
    // and the store's files with their container owners.
    let out = u.ok(&["unshare", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    assert!(
        out.contains(&format!("{base}")) && out.contains(&format!("{}", u.uid)),
        "{out}"
    );
    u.import();
    let o = u.ok(&[
        "unshare",
        "sh",
        "-c",
        "stat -c %u ~/.local/share/skiff/snapshots/*/fs/bin/busybox",
    ]);
    assert_eq!(o.trim(), "0");
    assert!(u
        .ok(&["run", "--rm", "-t", "busybox", "tty"])
        .contains("/dev/pts/"));
    let o = u.sk(&["unshare", "/nonexistent-cmd"]);
    assert_eq!(o.status.code(), Some(127));

    // A user without any range: a warning naming the file to edit, and containers with one id.
    let Some(v) = User::new(false) else { return };
    let o = v.sk(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        v.files.path().join("busybox.tar").to_str().unwrap(),
        "busybox:latest",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no subordinate id range")
            && stderr(&o).contains("/etc/subuid")
            && stderr(&o).contains(&v.name),
        "{}",
        stderr(&o)
    );
    let out = v.ok(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    let rows: Vec<Vec<u64>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows, vec![vec![0, v.uid as u64, 1]], "{out}");
    assert!(v.ok(&["run", "--rm", "busybox", "id", "-u"]).trim() == "0");
    v.ok(&["run", "-d", "--name", "one", "busybox", "sleep", "1000"]);
    assert_eq!(v.ok(&["exec", "one", "id", "-u"]).trim(), "0");
    // A terminal too (devpts without the tty group, which one id cannot map).
    assert!(v
        .ok(&["run", "--rm", "-t", "busybox", "tty"])
        .contains("/dev/pts/"));
    v.ok(&["rm", "-f", "one"]);
}

#[test]
fn rootless_push_pull_save_load() {
    let Some(u) = User::new(true) else { return };
    let reg = skiff_tests::registry();
    let name = format!("127.0.0.1:{}/rootless/bb:v1", reg.port);
    let tar = u.files.path().join("busybox.tar");
    u.ok(&["import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), &name]);
    assert!(u.ok(&["push", &name]).contains("Pushed"));
    u.ok(&["rmi", &name]);
    let out = u.ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(u.ok(&["run", "--rm", &name, "id", "-u"]).trim(), "0");
    // Unpacked by the pull with container owners: the user's own on the host.
    let st = u.store();
    let bb: Vec<PathBuf> = std::fs::read_dir(st.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/bin/busybox"))
        .filter(|p| p.exists())
        .collect();
    assert!(!bb.is_empty());
    for p in &bb {
        assert_eq!(owner(p), (u.uid, u.gid));
    }
    // save, then load into a clean store.
    let out = u.home.join("bb.tar");
    u.ok(&["save", "-o", out.to_str().unwrap(), &name]);
    assert_eq!(owner(&out).0, u.uid);
    u.ok(&["rmi", &name]);
    assert!(u
        .ok(&["load", "-i", out.to_str().unwrap()])
        .contains("Loaded image"));
    assert_eq!(u.ok(&["run", "--rm", &name, "echo", "ok"]).trim(), "ok");
}

/// GET `path` from 127.0.0.1:`port`; the response text (empty on failure).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn rootless_pasta_publishes_a_port() {
    let Some(u) = User::new(true) else { return };
    if !Path::new("/usr/bin/pasta").exists() {
        skip("pasta (Debian package passt) is not installed");
        return;
    }
    let tun = std::fs::metadata("/dev/net/tun");
    if !tun.as_ref().is_ok_and(|m| m.mode() & 0o006 == 0o006) {
        skip("/dev/net/tun is not open to users (udev's 0666): pasta cannot make its tap");
        return;
    }
    u.import();
    // A port below the unprivileged start is refused, naming the sysctl.
    let o = u.sk(&[
        "run",
        "--rm",
        "--network",
        "pasta",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("net.ipv4.ip_unprivileged_port_start"),
        "{}",
        stderr(&o)
    );
    // The container has an address and a default route through pasta's tap.
    let routes = u.ok(&[
        "run",
        "--rm",
        "--network",
        "pasta",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(routes.contains("default via"), "{routes}");
    // A published port answers on the host's 127.0.0.1, and ps shows it.
    let port = skiff_tests::free_port();
    let publish = format!("{port}:80");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "pasta",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "echo rootless-web > /tmp/index.html && exec httpd -f -p 80 -h /tmp",
    ]);
    assert!(
        u.ok(&["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")),
        "{}",
        u.ok(&["ps"])
    );
    let mut got = String::new();
    for _ in 0..50 {
        got = http_get(port, "/index.html");
        if got.contains("rootless-web") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(got.contains("rootless-web"), "{got:?}");
    // Without --network, -p picks pasta; -p PORT gets a free host port.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "auto",
        "-p",
        "80",
        "busybox",
        "sh",
        "-c",
        "echo auto-web > /tmp/index.html && exec httpd -f -p 80 -h /tmp",
    ]);
    assert_eq!(
        u.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "auto"])
            .trim(),
        "pasta"
    );
    let ps = u.ok(&["ps"]);
    let chosen: u16 = ps
        .lines()
        .find(|l| l.contains("auto"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_suffix("->80/tcp"))
        })
        .and_then(|w| w.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host port in {ps}"));
    assert_ne!(chosen, 0);
    let mut got = String::new();
    for _ in 0..50 {
        got = http_get(chosen, "/index.html");
        if got.contains("auto-web") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(got.contains("auto-web"), "{got:?}");
    u.ok(&["rm", "-f", "web", "auto"]);
    // pasta went with the container (no process of the user but the pause process).
    for _ in 0..50 {
        let left: Vec<String> = u
            .processes()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
            .filter(|c| !c.starts_with("skiff-pause"))
            .collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<String> = u
        .processes()
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .filter(|c| !c.starts_with("skiff-pause"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(http_get(port, "/").is_empty());
}

#[test]
fn rootless_user_network_reaches_containers_by_name() {
    let Some(u) = User::new(true) else { return };
    u.import();
    // The bridge lives in the user's hub network namespace, not the host's.
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    u.ok(&["network", "create", "appnet"]);
    assert_eq!(
        std::fs::read_dir("/sys/class/net").unwrap().count(),
        host_links
    );
    u.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "echo db > /tmp/index.html && exec httpd -f -p 80 -h /tmp",
    ]);
    // By name: /etc/hosts and the embedded DNS server at 127.0.0.11.
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "ping -c 1 -W 5 db >/dev/null && echo pinged; nslookup db 127.0.0.11 | grep '^Address: ' | tail -1; echo GET / | nc -w 3 db 80 | head -1",
    ]);
    assert!(out.contains("pinged"), "{out}");
    assert!(out.contains("Address: 172."), "{out}");
    assert!(out.contains("HTTP/1.1"), "{out}");
    // The way out is the hub's pasta: the host's gateway address is the host's loopback there.
    let gw = std::fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[1] == "00000000")
                .then(|| u32::from_str_radix(f[2], 16).ok())
                .flatten()
        })
        .map(|g| std::net::Ipv4Addr::from(g.swap_bytes()));
    let tun_open = std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.mode() & 0o006 == 0o006);
    match gw {
        Some(gw) if Path::new("/usr/bin/pasta").exists() && tun_open => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                use std::io::Write;
                // Never blocks the test for good: a minute at most (a loaded CI host can take
                // more than ten seconds to start the container behind pasta).
                l.set_nonblocking(true).unwrap();
                for _ in 0..600 {
                    if let Ok((mut c, _)) = l.accept() {
                        use std::io::Read;
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(b"from-host\n");
                        // Close only after the client does: a reset right behind the reply can
                        // overtake it through pasta's splice.
                        let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                        let mut sink = Vec::new();
                        let _ = c.read_to_end(&mut sink);
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
            let out = u.ok(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                "busybox",
                "sh",
                "-c",
                // stdin stays open a moment: busybox nc quits at stdin's end, which can come
                // before the reply has crossed pasta.
                &format!("(echo x; sleep 3) | nc -w 5 {gw} {port}"),
            ]);
            server.join().unwrap();
            assert!(out.contains("from-host"), "{out}");
        }
        _ => skip("no default route, pasta or user-open /dev/net/tun: user networks stay internal"),
    }
    // Published ports would be unreachable from the host there: refused, pasta named.
    let o = u.sk(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "-p",
        "18089:80",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--network pasta"), "{}", stderr(&o));
    u.ok(&["rm", "-f", "db"]);
    u.ok(&["network", "rm", "appnet"]);
    assert_eq!(
        std::fs::read_dir("/sys/class/net").unwrap().count(),
        host_links
    );

    // compose: its project network is such a network, services find each other by name.
    let proj = u.home.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        "services:\n  web:\n    image: busybox\n    command: sh -c \"echo hi > /tmp/index.html && exec httpd -f -p 80 -h /tmp\"\n  client:\n    image: busybox\n    command: sh -c \"sleep 1; echo GET / | nc -w 3 web 80 | head -1; exec sleep 100\"\n    depends_on: [web]\n",
    )
    .unwrap();
    for p in [&proj, &proj.join("compose.yaml")] {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
    let file = proj.join("compose.yaml");
    let f = file.to_str().unwrap();
    u.ok(&["compose", "-f", f, "up", "-d"]);
    let mut logs = String::new();
    for _ in 0..50 {
        logs = u.ok(&["compose", "-f", f, "logs", "client"]);
        if logs.contains("HTTP/1.1") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.contains("HTTP/1.1"), "{logs}");
    u.ok(&["compose", "-f", f, "down"]);
    assert!(u.ok(&["ps", "-aq"]).trim().is_empty());
}

/// A `skiff serve` of the user's, stopped (SIGTERM, then SIGKILL) on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill with integer arguments, on the server this test spawned.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rootless_serve_for_the_docker_cli() {
    let Some(mut u) = User::new(true) else { return };
    if Command::new("docker").arg("--version").output().is_err() {
        skip("the docker CLI is not installed");
        return;
    }
    let xdg = u.set_xdg();
    u.import();
    let sock = xdg.join("skiff/docker.sock");
    let log = u.files.path().join("serve.log");
    let mut c = u.cmd(&["serve"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let server = Server(c.spawn().unwrap());
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let serve_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        "no socket at {}: {}",
        sock.display(),
        serve_log()
    );
    // The user's alone: 0600, its owner and group (no group skiff).
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (u.uid, u.gid, 0o600),
        "{}",
        serve_log()
    );
    // The docker CLI, as the user, through it.
    let docker = |args: &[&str]| -> Output {
        let mut d = Command::new("setpriv");
        d.args([
            &format!("--reuid={}", u.uid),
            &format!("--regid={}", u.gid),
            "--init-groups",
            "--",
            "docker",
        ])
        .args(args)
        .env_clear()
        .env("HOME", &u.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .current_dir(&u.home)
        .stdin(std::process::Stdio::null());
        d.output().unwrap()
    };
    let o = docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert!(
        o.status.success() && stdout(&o) == "hi\n",
        "{}{}\nserver log:\n{}",
        stdout(&o),
        stderr(&o),
        serve_log()
    );
    let o = docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = docker(&["ps"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ps = stdout(&o);
    assert!(ps.starts_with("CONTAINER ID") && ps.contains("web"), "{ps}");
    // The CLI sees what the server made (one store).
    assert!(u.ok(&["ps"]).contains("web"));
    let o = docker(&["rm", "-f", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Its socket goes with it.
    drop(server);
    assert!(!sock.exists(), "the socket stays after the server stopped");
}

#[test]
fn rootless_build_runs_and_maps_owners() {
    let Some(u) = User::new(true) else { return };
    let base = u.base.unwrap();
    u.import();
    let ctx = u.home.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY hello.txt /hello.txt\nRUN echo built > /built && chown 1000:1000 /built && id -u > /whoami\nCMD [\"sh\", \"-c\", \"cat /hello.txt /built /whoami; stat -c %u /built\"]\n",
    )
    .unwrap();
    for p in [&ctx, &ctx.join("hello.txt"), &ctx.join("Dockerfile")] {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
    u.ok(&["build", "-t", "mine", "ctx"]);
    let out = u.ok(&["run", "--rm", "mine"]);
    assert_eq!(out, "hello from the context\nbuilt\n0\n1000\n", "{out}");
    // The RUN step's layer, on the host: container root's file is the user's, uid 1000's is
    // the range's 1000th id.
    let st = u.store();
    let built: Vec<PathBuf> = std::fs::read_dir(st.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/built"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(owner(&built[0]), (base + 999, base + 999));
    // The saved image records container ids (1000, not the host's).
    let tar = u.home.join("mine.tar");
    u.ok(&["save", "-o", tar.to_str().unwrap(), "mine"]);
    let o = run(Command::new("tar").arg("-tvf").arg(&tar));
    assert!(!stdout(&o).is_empty());
    let x = u.files.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x));
    let mut found = false;
    for e in std::fs::read_dir(x.join("blobs/sha256")).unwrap().flatten() {
        let o = Command::new("tar")
            .arg("-tvf")
            .arg(e.path())
            .output()
            .unwrap();
        let list = stdout(&o);
        if let Some(l) = list.lines().find(|l| l.ends_with(" built")) {
            assert!(l.contains("1000/1000"), "{l}");
            found = true;
        }
    }
    assert!(found, "no layer with /built");
}

#[test]
fn rootless_slirp4netns_publishes_a_port() {
    let Some(u) = User::new(true) else { return };
    if !Path::new("/usr/bin/slirp4netns").exists() {
        skip("slirp4netns (Debian package slirp4netns) is not installed");
        return;
    }
    let tun = std::fs::metadata("/dev/net/tun");
    if !tun.as_ref().is_ok_and(|m| m.mode() & 0o006 == 0o006) {
        skip("/dev/net/tun is not open to users: slirp4netns cannot make its tap");
        return;
    }
    u.import();
    // Its tap, address and route.
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns",
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show tap0; ip route; grep nameserver /etc/resolv.conf",
    ]);
    assert!(out.contains("inet 10.0.2.100/24"), "{out}");
    // DNS through slirp4netns's forwarder.
    assert!(out.ends_with("nameserver 10.0.2.3\n"), "{out}");
    assert!(out.contains("default via 10.0.2.2"), "{out}");
    // Low ports are refused naming the sysctl, as under pasta.
    let o = u.sk(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ip_unprivileged_port_start"),
        "{}",
        stderr(&o)
    );
    // A published port (given, and one chosen for -p PORT) answers on the host's 127.0.0.1.
    let port = skiff_tests::free_port();
    let publish = format!("{port}:80");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "slirp4netns",
        "-p",
        &publish,
        "-p",
        "8080",
        "busybox",
        "sh",
        "-c",
        "echo slirp-web > /tmp/index.html && (httpd -p 8080 -h /tmp) && exec httpd -f -p 80 -h /tmp",
    ]);
    let ps = u.ok(&["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    let chosen: u16 = ps
        .split(", ")
        .flat_map(|w| w.split_whitespace())
        .find_map(|w| w.strip_suffix("->8080/tcp"))
        .and_then(|w| w.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host port for 8080 in {ps}"));
    // `port` says the same (without making a hub network namespace for it).
    assert_eq!(
        u.ok(&["port", "web", "8080"]).trim(),
        format!("0.0.0.0:{chosen}")
    );
    for p in [port, chosen] {
        let mut got = String::new();
        for _ in 0..50 {
            got = http_get(p, "/index.html");
            if got.contains("slirp-web") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(got.contains("slirp-web"), "port {p}: {got:?}");
    }
    u.ok(&["rm", "-f", "web"]);
    // slirp4netns went with the container.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = u
            .processes()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
            .filter(|c| c.starts_with("slirp4netns"))
            .collect::<Vec<_>>();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "{left:?}");
    assert!(http_get(port, "/").is_empty());
}

/// Whether fuse-overlayfs can run for an ordinary user here (installed, /dev/fuse open to all);
/// prints the skip reason when not.
fn fuse_usable() -> bool {
    if !Path::new("/usr/bin/fuse-overlayfs").exists() {
        skip("fuse-overlayfs (Debian package fuse-overlayfs) is not installed");
        return false;
    }
    if !std::fs::metadata("/dev/fuse").is_ok_and(|m| m.mode() & 0o006 == 0o006) {
        skip("/dev/fuse is not open to users (udev's 0666): fuse-overlayfs cannot mount");
        return false;
    }
    true
}

/// The rows of a `/proc/<pid>/uid_map`-style text.
fn map_rows(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect()
}

#[test]
fn rootless_userns_auto_gives_disjoint_slices() {
    let Some(mut u) = User::new(true) else { return };
    if !fuse_usable() {
        return;
    }
    // 1 + 65536 + 131072 ids in the namespace: room for three slices of 65536.
    u.add_range(2 * RANGE);
    u.import();
    let mut maps = Vec::new();
    for name in ["a1", "a2", "a3"] {
        u.ok(&[
            "run", "-d", "--name", name, "--userns", "auto", "busybox", "sleep", "1000",
        ]);
        let m = u.ok(&[
            "exec",
            name,
            "cat",
            "/proc/self/uid_map",
            "/proc/self/gid_map",
        ]);
        let rows = map_rows(&m);
        assert_eq!(rows.len(), 2, "{m}");
        assert_eq!(rows[0], rows[1], "uid and gid slices differ: {m}");
        assert_eq!((rows[0][0], rows[0][2]), (0, RANGE as u64), "{m}");
        maps.push(rows[0][1]);
        // The image's files are the container root's, and it can write where root may.
        let out = u.ok(&[
            "exec",
            name,
            "sh",
            "-c",
            "stat -c %u:%g /bin/busybox /root; touch /root/mine && stat -c %u /root/mine",
        ]);
        assert_eq!(out, "0:0\n0:0\n0\n", "{name}: {out}");
    }
    // Disjoint, and none holds the user's own id (namespace id 0).
    let mut sorted = maps.clone();
    sorted.sort();
    assert!(sorted[0] >= 1, "{maps:?}");
    for w in sorted.windows(2) {
        assert!(w[0] + RANGE as u64 <= w[1], "overlapping slices {maps:?}");
    }
    // The container's process runs as a host id of the user's ranges, not the user.
    let pid = u.ok(&["inspect", "-f", "{{.State.Pid}}", "a1"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let host_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap();
    assert_ne!(host_uid, u.uid);
    // The ranges are full: a fourth is refused, naming the files to edit.
    let o = u.sk(&[
        "run", "-d", "--name", "a4", "--userns", "auto", "busybox", "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("/etc/subuid"), "{}", stderr(&o));
    assert!(!u.ok(&["ps", "-a"]).contains("a4"));
    // rm frees a slice: the next container gets that one.
    u.ok(&["rm", "-f", "a2"]);
    u.ok(&[
        "run", "-d", "--name", "a4", "--userns", "auto", "busybox", "sleep", "1000",
    ]);
    let m = u.ok(&["exec", "a4", "cat", "/proc/self/uid_map"]);
    assert_eq!(map_rows(&m)[0][1], maps[1], "{m}");
    // A stopped container keeps its slice and gets its files back when started again.
    u.ok(&["stop", "-t", "1", "a1"]);
    u.ok(&["start", "a1"]);
    assert_eq!(
        map_rows(&u.ok(&["exec", "a1", "cat", "/proc/self/uid_map"]))[0][1],
        maps[0]
    );
    assert_eq!(
        u.ok(&["exec", "a1", "stat", "-c", "%u", "/root/mine"])
            .trim(),
        "0"
    );
    u.ok(&["rm", "-f", "a1", "a3", "a4"]);
    // The fuse-overlayfs daemons went with their mounts.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = u
            .processes()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
            .filter(|c| c.starts_with("fuse-overlayfs"))
            .collect::<Vec<_>>();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn rootless_fuse_overlayfs_fallback_forced() {
    let Some(u) = User::new(true) else { return };
    if !fuse_usable() {
        return;
    }
    u.import();
    let root_fs = |extra_env: bool, args: &[&str]| -> Output {
        let mut c = u.cmd(args);
        if extra_env {
            c.env("SKIFF_ROOTLESS_OVERLAY", "fuse-overlayfs");
        }
        c.output().unwrap()
    };
    let fstype =
        "awk '$5 == \"/\" {for (i = 7; $i != \"-\"; i++); print $(i+1)}' /proc/self/mountinfo";
    // The kernel's overlay by default (this kernel mounts it in a user namespace) ...
    let o = root_fs(false, &["run", "--rm", "busybox", "sh", "-c", fstype]);
    assert_eq!(stdout(&o).trim(), "overlay", "{}", stderr(&o));
    // ... fuse-overlayfs when asked, with the same files, writable, kept across a restart.
    let o = root_fs(true, &["run", "--rm", "busybox", "sh", "-c", fstype]);
    assert_eq!(stdout(&o).trim(), "fuse.fuse-overlayfs", "{}", stderr(&o));
    let o = root_fs(
        true,
        &[
            "run",
            "-d",
            "--name",
            "fz",
            "busybox",
            "sh",
            "-c",
            "echo kept > /root/f; exec sleep 1000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = root_fs(true, &["stop", "-t", "1", "fz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = root_fs(true, &["start", "fz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = root_fs(
        true,
        &["exec", "fz", "sh", "-c", &format!("cat /root/f; {fstype}")],
    );
    assert_eq!(stdout(&o), "kept\nfuse.fuse-overlayfs\n", "{}", stderr(&o));
    // On the host the container's file is in its upper layer, the user's.
    let id = u.ok(&["inspect", "-f", "{{.Id}}", "fz"]);
    let f = u
        .store()
        .join("containers")
        .join(id.trim())
        .join("upper/root/f");
    assert_eq!(owner(&f), (u.uid, u.gid));
    u.ok(&["rm", "-f", "fz"]);
    let mut left = Vec::new();
    for _ in 0..50 {
        left = u
            .processes()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
            .filter(|c| c.starts_with("fuse-overlayfs"))
            .collect::<Vec<_>>();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "{left:?}");
}
