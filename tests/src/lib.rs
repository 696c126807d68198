//! Shared helpers for skiff's integration tests: locating the built binaries, building a busybox
//! bundle from Debian's busybox-static, and running the runtime as a subprocess.

pub mod cri;
pub mod cri_node;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The workspace's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target")
}

/// Path of a built binary (`SKIFF_BIN_DIR` overrides, else target/debug).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("SKIFF_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("debug"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A unique id for containers/cgroups in this test process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The busybox-static binary the tests build rootfs trees from.
pub const BUSYBOX: &str = "/bin/busybox";

/// Populate `rootfs` with busybox, its applet links, and minimal /etc files.
pub fn busybox_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))
        .expect("Debian's busybox-static must be installed at /bin/busybox");
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// A bundle directory (config.json + rootfs) in a temp dir, plus a runtime root to use with it.
pub struct Bundle {
    /// Keeps the temp dir alive.
    pub dir: tempfile::TempDir,
    /// The config being built.
    pub config: Value,
}

impl Bundle {
    /// A busybox bundle running `args`, starting from `skiff-runtime spec` with terminal off.
    pub fn busybox(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("skiff-bundle-")
            .tempdir()
            .unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let out = Command::new(bin("skiff-runtime"))
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        config["root"]["readonly"] = false.into();
        // Each test gets its own cgroup so tests can run in parallel and clean up.
        config["linux"]["cgroupsPath"] = format!("/skiff-test/{}", unique("c")).into();
        Bundle { dir, config }
    }

    /// The bundle path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Write config.json.
    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Add a bind mount of a host directory.
    pub fn bind(&mut self, host: &Path, dest: &str, ro: bool) {
        let mut opts = vec!["rbind", "rprivate"];
        if ro {
            opts.push("ro");
        }
        let m = serde_json::json!({"destination": dest, "type": "bind", "source": host, "options": opts});
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }
}

/// A private runtime state root.
pub struct Runtime {
    /// The temp dir used as `--root`.
    pub root: tempfile::TempDir,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A fresh root.
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("skiff-root-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A Command for `skiff-runtime --root <root> args...`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("skiff-runtime"));
        c.arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run to completion and capture output.
    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run a command whose container outlives it (`create`, `run -d`): the container inherits stdio,
    /// so capture through files instead of pipes (a pipe would stay open until the container exits).
    pub fn out_detached(&self, args: &[&str]) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&o).unwrap(),
            stderr: std::fs::read(&e).unwrap(),
        }
    }

    /// Run `run --bundle b id` and capture output.
    pub fn run(&self, b: &Bundle, id: &str) -> Output {
        b.write();
        self.cmd(&["run", "--bundle", b.path().to_str().unwrap(), id])
            .output()
            .unwrap()
    }

    /// The state JSON of `id`.
    pub fn state(&self, id: &str) -> Value {
        let o = self.out(&["state", id]);
        assert!(
            o.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Wait until `id` reports `status` (up to 5 s).
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..500 {
            let o = self.out(&["state", id]);
            if o.status.success() {
                let s: Value = serde_json::from_slice(&o.stdout).unwrap();
                if s["status"] == status {
                    return s;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {status}: {}", self.state(id));
    }
}

/// stdout as a String.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a String.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): stdout={} stderr={}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// True when running as root (integration tests need it; they fail loudly otherwise).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "integration tests must run as root");
}

/// Record that one assertion was skipped because the host lacks an optional feature: prints
/// `SKIP <test>: <reason>` on stderr and, when `SKIFF_SKIP_LOG` names a file (tests/run-all.sh
/// sets it), appends the same line there so the run's summary counts it. Call it instead of the
/// assertion, never instead of the whole test.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!("SKIP {test}: {reason}\n");
    eprint!("{line}");
    if let Some(path) = std::env::var_os("SKIFF_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Gives a test root a `daemon.json` with the default bridge disabled (`"bridge": "none"`, as
/// `dockerd -b none`) unless it has one: the default bridge is a host-wide device and subnet, so
/// only the network suite, which picks a bridge name and subnet of its own, uses one.
pub fn no_default_bridge(root: &Path) {
    let cfg = root.join("daemon.json");
    if !cfg.exists() {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root);
        // 0600, as skiff's own files: the permissions audit walks the root too.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&cfg)
        {
            let _ = f.write_all(b"{\"bridge\": \"none\"}\n");
        }
    }
}

/// Run `skiff --root <root> args...` and capture its output.
pub fn skiff(root: &Path, args: &[&str]) -> Output {
    no_default_bridge(root);
    Command::new(bin("skiff"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run skiff")
}

/// Run `skiff`, assert success, and return stdout.
pub fn skiff_ok(root: &Path, args: &[&str]) -> String {
    expect_ok(args, skiff(root, args))
}

/// Assert that the `skiff args` run that produced `o` succeeded (naming its output if not) and
/// return its stdout.
pub fn expect_ok(args: &[&str], o: Output) -> String {
    assert!(
        o.status.success(),
        "skiff {args:?} failed ({}): {}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `skiff --root <root> args...` with stdin closed, and `--cgroup-parent=<cgroup>` added to `run`
/// and `create` so a test's containers sit under a cgroup parent of its own.
pub fn skiff_cmd(root: &Path, cgroup: &str, args: &[&str]) -> Command {
    no_default_bridge(root);
    let mut c = Command::new(bin("skiff"));
    c.arg("--root").arg(root);
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if matches!(args.first(), Some(&"run") | Some(&"create")) {
        v.insert(1, format!("--cgroup-parent={cgroup}"));
    }
    c.args(v).stdin(Stdio::null());
    c
}

/// The directories of the cgroup parent `cgroup` in every hierarchy under /sys/fs/cgroup.
pub fn cgroup_parent_dirs(cgroup: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(cgroup))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Tear down what an engine test made under `root`: remove every container (with its anonymous
/// volumes), lazily unmount whatever is still mounted below `root`, and remove the test's cgroup
/// parent `cgroup` (and its child groups) in every hierarchy.
pub fn clean_engine_root(root: &Path, cgroup: &str) {
    if let Ok(o) = skiff_cmd(root, cgroup, &["ps", "-aq"]).output() {
        for id in stdout(&o).split_whitespace() {
            let _ = skiff_cmd(root, cgroup, &["rm", "-f", "-v", id]).output();
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in mounts.lines() {
        if let Some(mp) = l.split_whitespace().nth(4) {
            if mp.starts_with(root.to_str().unwrap()) {
                let _ = Command::new("umount").arg("-l").arg(mp).status();
            }
        }
    }
    for d in cgroup_parent_dirs(cgroup) {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&d);
    }
}

/// Lazily unmount every mount at or below `dir` (deepest first): what a daemon under test
/// (dockerd, podman) left mounted in its own data directory.
pub fn unmount_under(dir: &Path) {
    let me = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&me))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let c = std::ffi::CString::new(t).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH on a mount below the caller's own directory.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `[prefix…] skiff --root <env's root> serve <args…>` (a prefix such as
/// `systemd-socket-activate …`), stdin and stdout on /dev/null, stderr into `log`.
pub fn spawn_serve(
    env: &EngineEnv,
    prefix: &[PathBuf],
    args: &[String],
    log: &Path,
) -> std::process::Child {
    let mut argv: Vec<std::ffi::OsString> = prefix.iter().map(|p| p.into()).collect();
    argv.push(bin("skiff").into());
    argv.push("--root".into());
    argv.push(env.root().into());
    argv.push("serve".into());
    argv.extend(args.iter().map(Into::into));
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start skiff serve")
}

/// Waits (10 s at most) until `up` says a spawned `skiff serve` listens; panics with its `log`
/// when it exits or never listens.
pub fn wait_serve(child: &mut std::process::Child, log: &Path, up: impl Fn() -> bool) {
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let t = std::time::Instant::now();
    while !up() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("skiff serve exited ({st}): {}", read_log());
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "skiff serve did not listen: {}",
            read_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Stops a spawned `skiff serve`: SIGTERM, then SIGKILL after 5 s.
pub fn stop_serve(child: &mut std::process::Child) {
    // SAFETY: kill with integer arguments, on a process this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = std::time::Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if t.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The docker CLI (on PATH) for a test's server: config in `config`, no inherited API version,
/// context or TLS settings, `DOCKER_HOST=host` (unset when None), `global` flags before `args`,
/// and `--cgroup-parent=<cgroup>` added to run/create.
pub fn docker_cli(
    config: &Path,
    cgroup: &str,
    host: Option<&str>,
    global: &[String],
    args: &[&str],
) -> Command {
    let mut c = Command::new("docker");
    c.env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    match host {
        Some(h) => c.env("DOCKER_HOST", h),
        None => c.env_remove("DOCKER_HOST"),
    };
    c.args(global);
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if matches!(args.first(), Some(&"run") | Some(&"create")) {
        v.insert(1, format!("--cgroup-parent={cgroup}"));
    }
    c.args(v);
    c
}

/// A docker CLI command run with stdin on /dev/null.
pub fn docker_run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .expect("the docker CLI must be on PATH")
}

/// The stdout of a docker CLI run `docker args…`; panics on failure with its output and the
/// server's log (read then, from `log`).
pub fn docker_checked(o: Output, args: &[&str], log: &Path) -> String {
    assert!(
        o.status.success(),
        "docker {args:?} failed ({}): {}{}\nserver log:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    stdout(&o)
}

/// A raw HTTP/1.1 response split into (status, head, body); status 0 when there is none.
pub fn split_response(out: &[u8]) -> (u16, String, Vec<u8>) {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let body = out.get(split + 4..).unwrap_or(&[]).to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

/// A Debian `docker-registry` serving plain HTTP on 127.0.0.1 from temporary storage; killed on drop.
pub struct Registry {
    /// The registry process.
    pub child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its storage, config and log.
    pub dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain registry (image deletion enabled).
pub fn registry() -> Registry {
    registry_with(|_| (String::new(), String::new()))
}

/// A registry whose config gets extra YAML: `extra(dir)` returns lines for under `http:` (indented
/// by four spaces) and top-level sections.
pub fn registry_with(extra: impl FnOnce(&Path) -> (String, String)) -> Registry {
    let dir = tempfile::Builder::new()
        .prefix("skiff-registry-")
        .tempdir()
        .unwrap();
    let port = free_port();
    let (http_extra, top_extra) = extra(dir.path());
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{top_extra}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("registry.log")).unwrap(),
        ))
        .spawn()
        .expect("Debian's docker-registry must be installed");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Registry { child, port, dir };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "docker-registry did not start on port {port}: {}",
        std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
    );
}

/// A private engine root with a busybox image made by `skiff import` and a cgroup parent of its
/// own, for the engine suites; everything it made is removed on drop.
pub struct EngineEnv {
    /// Holds `rootfs/` (the imported tree) and `root/` (the engine's --root).
    pub dir: tempfile::TempDir,
    /// The `--cgroup-parent` given to run/create.
    pub cgroup: String,
}

impl EngineEnv {
    /// `name` labels the temp dir and the cgroup parent; `extra` adds files to the busybox tree
    /// before it is imported.
    pub fn new(name: &str, extra: impl FnOnce(&Path)) -> EngineEnv {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-{name}-"))
            .tempdir()
            .unwrap();
        let env = EngineEnv {
            dir,
            cgroup: unique(&format!("skiff-test-{name}")),
        };
        let rootfs = env.dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        extra(&rootfs);
        env.ok(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            rootfs.to_str().unwrap(),
            "busybox:latest",
        ]);
        env
    }

    /// The engine's --root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `skiff --root R ARGS` with `--cgroup-parent` added to run/create.
    pub fn cmd(&self, args: &[&str]) -> Command {
        skiff_cmd(&self.root(), &self.cgroup, args)
    }

    /// Runs `skiff ARGS`.
    pub fn sk(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs `skiff ARGS`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.sk(args))
    }
}

impl Drop for EngineEnv {
    fn drop(&mut self) {
        clean_engine_root(&self.root(), &self.cgroup);
    }
}

/// A command running on a pseudo-terminal of the test's own, as from an interactive shell: the
/// slave is its stdin, stdout, stderr and controlling terminal (new session, TIOCSCTTY), the test
/// holds the master. Killed on drop.
pub struct Pty {
    /// The pty master: what the user's terminal emulator would hold.
    pub master: std::os::fd::OwnedFd,
    /// A slave descriptor kept open, to read the terminal's settings after the child exits.
    pub slave: std::os::fd::OwnedFd,
    /// The command.
    pub child: std::process::Child,
    /// Everything read from the master so far.
    pub seen: Vec<u8>,
    /// How much of `seen` [`Pty::expect`] has consumed.
    pos: usize,
}

impl Pty {
    /// Spawns `cmd` on a new pty of `rows` x `cols` (its stdio is replaced by the slave).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        use std::os::unix::process::CommandExt;
        // Both ends close-on-exec from the start: other tests' children must not inherit them.
        let (master, slave, _) = skiff_runtime::console::open_pty(rows, cols).expect("open a pty");
        let io = |fd: &std::os::fd::OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: between fork and exec the closure only makes async-signal-safe system calls:
        // a new session, then fd 0 (the slave) becomes its controlling terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on a pty");
        Pty {
            master,
            slave,
            child,
            seen: Vec::new(),
            pos: 0,
        }
    }

    /// Reads what the master has within `timeout` (returns early at EOF/EIO).
    pub fn read_for(&mut self, timeout: std::time::Duration) {
        use std::os::fd::AsRawFd;
        let end = std::time::Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            let mut p = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
            if r <= 0 {
                return;
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), 4096) };
            if n <= 0 {
                return;
            }
            self.seen.extend_from_slice(&buf[..n as usize]);
            if left.is_zero() {
                return;
            }
        }
    }

    /// Waits up to `secs` for `needle` in the output after the previous match; returns the
    /// output up to and including it (panics with everything seen when it does not come).
    pub fn expect(&mut self, needle: &str, secs: u64) -> String {
        match self.try_expect(needle, std::time::Duration::from_secs(secs)) {
            Some(s) => s,
            None => panic!(
                "{needle:?} did not appear within {secs} s; the terminal showed {:?}",
                self.text()
            ),
        }
    }

    /// [`Pty::expect`] that returns `None` on timeout.
    pub fn try_expect(&mut self, needle: &str, timeout: std::time::Duration) -> Option<String> {
        use std::os::fd::AsRawFd;
        let end = std::time::Instant::now() + timeout;
        loop {
            let hay = &self.seen[self.pos..];
            if let Some(i) = hay
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                let got = String::from_utf8_lossy(&hay[..i + needle.len()]).into_owned();
                self.pos += i + needle.len();
                return Some(got);
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut p = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, left.as_millis().min(200) as i32) } > 0 {
                let mut buf = [0u8; 4096];
                // SAFETY: reading into a buffer we own.
                let n =
                    unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), 4096) };
                if n > 0 {
                    self.seen.extend_from_slice(&buf[..n as usize]);
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    /// Types `bytes` (as the terminal emulator sends keys).
    pub fn write(&self, bytes: &[u8]) {
        let f = std::fs::File::from(self.master.try_clone().unwrap());
        std::io::Write::write_all(&mut &f, bytes).unwrap();
    }

    /// Resizes the terminal: TIOCSWINSZ on the master, which makes the kernel send SIGWINCH to
    /// the terminal's foreground process group (the child).
    pub fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// Waits up to `secs` for the child to exit; `None` if it is still running.
    pub fn wait(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.read_for(std::time::Duration::from_millis(50));
                return Some(st);
            }
            if std::time::Instant::now() >= end {
                return None;
            }
            self.read_for(std::time::Duration::from_millis(20));
        }
    }

    /// The local-mode flags of the terminal now (ICANON, ECHO, ISIG… as the child left them).
    pub fn lflag(&self) -> libc::tcflag_t {
        use std::os::fd::AsRawFd;
        // SAFETY: termios is plain data that tcgetattr fills.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and termios pointer.
        let r = unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) };
        assert_eq!(r, 0, "tcgetattr on the test's pty");
        t.c_lflag
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
