//! runtime-spec behaviours where skiff-runtime must mean what runc means (issue 19): each test runs
//! the same config.json under skiff-runtime and, when `runc` is installed, under runc 1.1.5 (its
//! own `--root`), and compares what is observed inside the container.

use serde_json::{json, Value};
use skiff_tests::*;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// One runtime binary (skiff-runtime or runc) with a private `--root`; deletes every container it
/// started when dropped, even when the test failed.
struct Rt {
    name: &'static str,
    /// Words put before the binary (e.g. `nsenter --net=…`).
    prefix: Vec<String>,
    bin: PathBuf,
    root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Rt {
    fn skiff() -> Rt {
        Rt::with("skiff", bin("skiff-runtime"))
    }

    /// runc, when installed (else the comparison is skipped with a reason).
    fn runc() -> Option<Rt> {
        let ok = Command::new("runc")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            skip("runc is not installed: no side-by-side comparison");
            return None;
        }
        Some(Rt::with("runc", PathBuf::from("runc")))
    }

    fn with(name: &'static str, bin: PathBuf) -> Rt {
        Rt {
            name,
            prefix: Vec::new(),
            bin,
            root: tempfile::Builder::new()
                .prefix("rt-spec-")
                .tempdir()
                .unwrap(),
            ids: Default::default(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match self.prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        c.arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `run -d` (stdio through files: the container keeps them open).
    fn run_d(&self, b: &Bundle, id: &str) -> Output {
        b.write();
        self.ids.borrow_mut().push(id.to_string());
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let status = self
            .cmd(&["run", "-d", "--bundle", b.path().to_str().unwrap(), id])
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

    /// `run` in the foreground.
    fn run(&self, b: &Bundle, id: &str) -> Output {
        b.write();
        self.ids.borrow_mut().push(id.to_string());
        self.out(&["run", "--bundle", b.path().to_str().unwrap(), id])
    }

    /// `exec --process FILE id`, the process written from `p`.
    fn exec_process(&self, id: &str, p: &Value) -> Output {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), serde_json::to_vec(p).unwrap()).unwrap();
        self.out(&["exec", "--process", f.path().to_str().unwrap(), id])
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.out(&["delete", "--force", id]);
        }
    }
}

/// The runtimes to compare: skiff first, then runc when installed.
fn runtimes() -> Vec<Rt> {
    let mut v = vec![Rt::skiff()];
    v.extend(Rt::runc());
    v
}

/// A busybox bundle whose cgroup is fresh for each runtime (they run one after the other).
fn bundle(args: &[&str]) -> Bundle {
    Bundle::busybox(args)
}

fn fresh_cgroup(b: &mut Bundle) {
    b.config["linux"]["cgroupsPath"] = format!("/skiff-test/{}", unique("c")).into();
}

/// Item 2 of issue 19: `exec --process FILE` with fields left out. Each absent field means what it
/// means to runc 1.1.5: no `user` is root, no `capabilities` is the container's own set, no
/// `noNewPrivileges`/`rlimits`/`env`/`user.umask` is not inherited from the container, no `cwd`
/// or `args` is refused, no PATH means a bare program name is not found.
#[test]
fn exec_process_file_with_absent_fields_matches_runc() {
    require_root();
    let mut b = bundle(&["sleep", "1000"]);
    b.config["process"]["noNewPrivileges"] = true.into();
    b.config["process"]["user"]["umask"] = 0o077.into();
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 777, "soft": 777}]);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": [], "ambient": []});
    let probe = "grep -E '^Cap|NoNewPrivs' /proc/self/status | tr -d '\\t'; id; umask; \
                 env | grep -v -E '^(SHLVL|PWD|PATH)=' | sort; ulimit -n; pwd";
    let cases: Vec<(&str, Value)> = vec![
        (
            "minimal",
            json!({"args": ["/bin/sh", "-c", probe], "cwd": "/tmp"}),
        ),
        (
            "no caps",
            json!({"args": ["/bin/sh", "-c", probe], "cwd": "/", "capabilities": {}}),
        ),
        (
            "uid only",
            json!({"args": ["/bin/sh", "-c", "id"], "cwd": "/", "user": {"uid": 5}}),
        ),
        ("no cwd", json!({"args": ["/bin/sh", "-c", "true"]})),
        (
            "relative cwd",
            json!({"args": ["/bin/sh", "-c", "true"], "cwd": "tmp"}),
        ),
        ("no args", json!({"cwd": "/"})),
        ("no PATH", json!({"args": ["sh", "-c", "true"], "cwd": "/"})),
    ];
    let mut seen: Vec<Vec<(bool, String)>> = Vec::new();
    for rt in runtimes() {
        fresh_cgroup(&mut b);
        let id = unique("xp");
        ok(&rt.run_d(&b, &id));
        let mut res = Vec::new();
        for (name, p) in &cases {
            let o = rt.exec_process(&id, p);
            eprintln!("{} {name}: {} {}", rt.name, stdout(&o), stderr(&o));
            res.push((o.status.success(), stdout(&o)));
        }
        // skiff's own expectations, independent of runc.
        if rt.name == "skiff" {
            let (good, out) = &res[0];
            assert!(good, "minimal process.json runs");
            assert_eq!(
                *out,
                "CapInh:0000000000000000\nCapPrm:0000000000000021\nCapEff:0000000000000021\n\
                 CapBnd:0000000000000021\nCapAmb:0000000000000000\nNoNewPrivs:0\n\
                 uid=0(root) gid=0(root)\n0022\nHOME=/root\n"
                    .to_string()
                    + &format!("{}\n/tmp\n", host_nofile()),
                "the container's capabilities, nothing else inherited"
            );
            assert!(
                res[1].0
                    && res[1].1.contains(
                        "CapPrm:0000000000000000\nCapEff:0000000000000000\nCapBnd:0000000000000000"
                    ),
                "{:?}",
                res[1]
            );
            assert_eq!(res[2], (true, "uid=5 gid=0(root)\n".to_string()));
            for (i, (name, _)) in cases.iter().enumerate().skip(3) {
                assert!(!res[i].0, "{name} is refused");
            }
        }
        seen.push(res);
    }
    if let [a, b] = &seen[..] {
        for (i, (name, _)) in cases.iter().enumerate() {
            assert_eq!(a[i], b[i], "{name}: skiff vs runc");
        }
    }
}

fn host_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}

/// Item 3 of issue 19: procfs and sysfs are mounted on an ordinary directory only. A symlink (or a
/// file) planted at the destination is refused with one line naming the mount, and nothing is
/// created where the link points — runc 1.1.5 refuses the same configs ("must be mounted on
/// ordinary directory").
#[test]
fn proc_and_sys_on_a_symlink_or_file_are_refused_like_runc() {
    require_root();
    for (dest, what) in [
        ("proc", "symlink"),
        ("sys", "symlink"),
        ("proc", "file"),
        ("sys", "file"),
    ] {
        for rt in runtimes() {
            let b = bundle(&["true"]);
            let r = b.rootfs();
            std::fs::remove_dir(r.join(dest)).unwrap();
            if what == "symlink" {
                std::os::unix::fs::symlink("tmp/elsewhere", r.join(dest)).unwrap();
            } else {
                std::fs::write(r.join(dest), "").unwrap();
            }
            let id = unique("symproc");
            let o = rt.run(&b, &id);
            let err = stderr(&o);
            assert!(
                !o.status.success(),
                "{}: /{dest} as a {what} is refused",
                rt.name
            );
            assert!(
                !r.join("tmp/elsewhere").exists(),
                "{}: the link's target was not created",
                rt.name
            );
            if rt.name == "skiff" {
                assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
                assert!(
                    err.contains("must be mounted on an ordinary directory")
                        && err.contains(&format!("\"/{dest}\"")),
                    "{err}"
                );
                assert!(!rt.root.path().join(&id).exists(), "nothing left");
            } else {
                assert!(
                    err.contains("must be mounted on ordinary directory"),
                    "{err}"
                );
            }
        }
    }
}

/// Item 4 of issue 19: a time namespace together with a new user namespace. The offsets are
/// written through a descriptor opened before the switch to the mapped root (which makes
/// `/proc/self` unwritable); the container sees its boottime shifted in `/proc/uptime` and both
/// offsets in its `timens_offsets`. (runc 1.1.5 has no time namespace: nothing to compare.)
#[test]
fn time_namespace_offsets_with_a_new_user_namespace() {
    require_root();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("this kernel has no time namespaces");
        return;
    }
    let mut b = bundle(&[
        "sh",
        "-c",
        "cut -d. -f1 /proc/uptime; id -u; cat /proc/self/timens_offsets | tr -s ' '",
    ]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    ns.push(json!({"type": "time"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": 86400 * 1000, "nanosecs": 0},
        "monotonic": {"secs": 3600, "nanosecs": 5}});
    let st = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    let host_up: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rt = Rt::skiff();
    let out = ok(&rt.run(&b, &unique("timens")));
    let lines: Vec<&str> = out.lines().collect();
    let up: u64 = lines[0].parse().unwrap();
    assert!(
        up >= host_up + 86400 * 1000 && up < host_up + 86400 * 1000 + 120,
        "uptime {up} is the host's {host_up} plus the boottime offset: {out}"
    );
    assert_eq!(
        &lines[1..],
        ["0", "monotonic 3600 5", "boottime 86400000 0"],
        "root in the user namespace, both offsets: {out}"
    );
}

/// Item 5 of issue 19: a hook that names no `env` gets what runc 1.1.5 gives it — the runtime's
/// own environment for the hooks the runtime runs (started in the bundle directory), the
/// container process's `env` for createContainer (started in the rootfs) and that plus HOME for
/// startContainer; `"env": []` is an empty environment.
#[test]
fn hooks_without_env_get_the_environment_runc_gives_them() {
    require_root();
    let mut seen = Vec::new();
    for rt in runtimes() {
        let log = tempfile::tempdir().unwrap();
        let lp = log.path().display().to_string();
        let mut b = bundle(&["true"]);
        b.bind(log.path(), "/hooklog", false);
        let dump = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("env | sort > {dir}/{name}; pwd >> {dir}/{name}")]});
        let mut empty = dump(&lp, "emptyenv");
        empty["env"] = json!([]);
        b.config["hooks"] = json!({
            "prestart": [dump(&lp, "prestart")],
            "createRuntime": [dump(&lp, "createRuntime"), empty],
            "createContainer": [dump(&lp, "createContainer")],
            "startContainer": [dump("/hooklog", "startContainer")],
            "poststart": [dump(&lp, "poststart")],
            "poststop": [dump(&lp, "poststop")],
        });
        b.write();
        let id = unique("hookenv");
        rt.ids.borrow_mut().push(id.clone());
        let o = rt
            .cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/root")
            .env("HOOK_PROBE", "from the caller")
            .current_dir("/")
            .output()
            .unwrap();
        ok(&o);
        let bundle_dir = std::fs::canonicalize(b.path()).unwrap();
        let mut files = Vec::new();
        for name in [
            "prestart",
            "createRuntime",
            "emptyenv",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ] {
            let text = std::fs::read_to_string(log.path().join(name))
                .unwrap_or_else(|e| panic!("{}: hook {name} ran: {e}", rt.name));
            files.push((name, text.replace(bundle_dir.to_str().unwrap(), "BUNDLE")));
        }
        if rt.name == "skiff" {
            let host =
                "HOME=/root\nHOOK_PROBE=from the caller\nPATH=/usr/bin:/bin\nPWD=BUNDLE\nBUNDLE\n";
            let want = [
                ("prestart", host),
                ("createRuntime", host),
                ("emptyenv", "PWD=BUNDLE\nBUNDLE\n"),
                ("createContainer", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=BUNDLE/rootfs\nTERM=xterm\nBUNDLE/rootfs\n"),
                ("startContainer", "HOME=/root\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\nTERM=xterm\n/\n"),
                ("poststart", host),
                ("poststop", host),
            ];
            for ((name, got), (_, want)) in files.iter().zip(want) {
                assert_eq!(got, want, "skiff: {name} hook's environment and cwd");
            }
        }
        seen.push(files);
    }
    if let [a, b] = &seen[..] {
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "skiff vs runc");
        }
    }
}

/// What a failing hook does to the operation, per kind (README "Hooks"): createRuntime and
/// createContainer fail `create` and leave nothing, as in runc; startContainer fails `start`
/// (the spec; runc 1.1.5 prints the error but exits 0) and the container is stopped, as in runc;
/// poststart and poststop only warn, the hooks after the failed one still run (the spec; runc
/// stops the list, and 1.1.5 runs poststart during `create`, failing it); `delete` succeeds.
#[test]
fn failing_hooks_fail_or_warn_per_kind() {
    require_root();
    for kind in [
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        for rt in runtimes() {
            let marks = tempfile::tempdir().unwrap();
            let second = marks.path().join("second");
            let mut b = bundle(&["sleep", "100"]);
            let path2 = if kind == "startContainer" {
                b.bind(marks.path(), "/marks", false);
                "/marks/second".to_string()
            } else {
                second.display().to_string()
            };
            b.config["hooks"] = json!({kind: [
                {"path": "/bin/false"},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("echo ran > {path2}")]}]});
            b.write();
            let id = unique("hookfail");
            rt.ids.borrow_mut().push(id.clone());
            let bp = b.path().to_str().unwrap();
            let create = {
                let dir = tempfile::tempdir().unwrap();
                let e = dir.path().join("err");
                let st = rt
                    .cmd(&["create", "--bundle", bp, &id])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&e).unwrap())
                    .status()
                    .unwrap();
                (st.success(), std::fs::read_to_string(&e).unwrap())
            };
            let start = rt.out(&["start", &id]);
            // runc's start returns before its init runs startContainer hooks: wait (up to 10 s
            // on a loaded host) for the status to settle.
            let status_now = || {
                serde_json::from_slice::<Value>(&rt.out(&["state", &id]).stdout)
                    .map(|v| v["status"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default()
            };
            let mut status = status_now();
            for _ in 0..1000 {
                let settled = if kind == "startContainer" {
                    status == "stopped"
                } else {
                    status != "created"
                };
                if settled || status.is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                status = status_now();
            }
            let _ = rt.out(&["kill", &id, "KILL"]);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let delete = rt.out(&["delete", &id]);
            let gone = !rt.out(&["state", &id]).status.success();
            let ran_second = second.exists();
            let what = format!(
                "{} {kind}: create {create:?}, start {} {}, status {status:?}, delete {} {}, second hook ran {ran_second}",
                rt.name,
                start.status,
                stderr(&start),
                delete.status,
                stderr(&delete)
            );
            eprintln!("{what}");
            assert!(gone, "{what}: nothing left after delete");
            match (kind, rt.name) {
                ("createRuntime" | "createContainer", _) => {
                    assert!(!create.0 && create.1.contains("hook"), "{what}");
                    assert!(!ran_second, "{what}: the list stops");
                }
                ("startContainer", name) => {
                    assert!(create.0, "{what}");
                    assert_eq!(status, "stopped", "{what}: the process never ran");
                    assert!(!ran_second, "{what}: the list stops");
                    if name == "skiff" {
                        assert!(!start.status.success(), "{what}: start fails");
                        assert!(stderr(&start).contains("StartContainer hook #0"), "{what}");
                    }
                }
                ("poststart", "skiff") => {
                    assert!(create.0 && start.status.success(), "{what}");
                    assert_eq!(status, "running", "{what}");
                    assert!(
                        stderr(&start).contains("warning: Poststart hook #0"),
                        "{what}"
                    );
                    assert!(ran_second, "{what}: the hooks after it still run");
                }
                ("poststart", _) => {
                    assert!(!create.0, "{what}: runc 1.1.5 runs poststart in create");
                }
                ("poststop", name) => {
                    assert!(create.0 && start.status.success(), "{what}");
                    assert!(delete.status.success(), "{what}: delete succeeds");
                    if name == "skiff" {
                        assert!(
                            stderr(&delete).contains("warning: Poststop hook #0"),
                            "{what}"
                        );
                        assert!(ran_second, "{what}: the hooks after it still run");
                    }
                }
                _ => unreachable!(),
            }
        }
    }
}

fn cpus_allowed(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Item 6 of issue 19: `process.execCPUAffinity` is applied to `exec`'d processes (`final` once in
/// the container's cgroup; `initial` while the runtime joins it) and not to the init, whose
/// affinity stays the cgroup's (the spec: "not applicable to the container's init process").
/// runc 1.1.5 has no execCPUAffinity: nothing to compare.
#[test]
fn exec_cpu_affinity_applies_to_exec_not_to_the_init() {
    require_root();
    let all = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 || all == "0" {
        skip("execCPUAffinity: this host has fewer than 2 CPUs to tell affinities apart");
        return;
    }
    let mut b = bundle(&["sleep", "1000"]);
    b.config["process"]["execCPUAffinity"] = json!({"final": "1"});
    let rt = Rt::skiff();
    let id = unique("affinity");
    ok(&rt.run_d(&b, &id));
    let init = ok(&rt.out(&["exec", &id, "cat", "/proc/1/status"]));
    assert_ne!(cpus_allowed(&init), "1", "the init is not pinned: {init}");
    let templ = ok(&rt.out(&["exec", &id, "cat", "/proc/self/status"]));
    assert_eq!(cpus_allowed(&templ), "1", "exec from the config's process");
    let probe = json!(["cat", "/proc/self/status"]);
    let both = ok(&rt.exec_process(
        &id,
        &json!({"args": probe, "cwd": "/", "env": ["PATH=/bin"],
                "execCPUAffinity": {"initial": "1", "final": "0"}}),
    ));
    assert_eq!(cpus_allowed(&both), "0", "final wins once in the cgroup");
    let initial = rt.exec_process(
        &id,
        &json!({"args": probe, "cwd": "/", "env": ["PATH=/bin"],
                "execCPUAffinity": {"initial": "0"}}),
    );
    ok(&initial);
    let bad = rt.exec_process(
        &id,
        &json!({"args": probe, "cwd": "/", "env": ["PATH=/bin"],
                "execCPUAffinity": {"final": "5000"}}),
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("process.execCPUAffinity.final"),
        "{}",
        stderr(&bad)
    );
}

/// A network namespace made (and removed) by the test, standing in for the host: the runtime
/// runs in it under `nsenter`, so no interface of the real host is touched.
struct TestNetns(String);

impl TestNetns {
    fn new() -> TestNetns {
        let name = unique("skns");
        let o = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(o.status.success(), "ip netns add: {}", stderr(&o));
        TestNetns(name)
    }

    fn ip(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap()
    }

    /// `link` with address 10.99.0.1/24, up: a dummy where the kernel has them, else one end of a
    /// veth pair.
    fn add_link(&self, link: &str) {
        if !self
            .ip(&["link", "add", link, "type", "dummy"])
            .status
            .success()
        {
            let peer = format!("{link}p");
            ok(&self.ip(&["link", "add", link, "type", "veth", "peer", "name", &peer]));
        }
        ok(&self.ip(&["addr", "add", "10.99.0.1/24", "dev", link]));
        ok(&self.ip(&["link", "set", link, "up"]));
    }

    fn mac(&self, link: &str) -> Option<String> {
        let o = self.ip(&["-o", "link", "show", link]);
        o.status.success().then(|| {
            let t = stdout(&o);
            t.split_whitespace()
                .skip_while(|w| *w != "link/ether")
                .nth(1)
                .unwrap_or("")
                .to_string()
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Item 6 of issue 19: `linux.netDevices` moves a host interface into the container's network
/// namespace under its new `name`, with its MAC, addresses and up state, and `delete` brings it
/// back under its host name — also after the init has exited (the namespace is held). A missing
/// interface, or a failure later in `create`, leaves the host as it was. (runc 1.1.5 ignores
/// `netDevices`: nothing to compare.)
#[test]
fn net_devices_move_in_renamed_and_back_on_delete() {
    require_root();
    let ns = TestNetns::new();
    ns.add_link("skd0");
    let mac = ns.mac("skd0").unwrap();
    let mut rt = Rt::skiff();
    rt.prefix = vec!["nsenter".into(), format!("--net=/run/netns/{}", ns.0)];
    let mut b = bundle(&["sleep", "1000"]);
    b.config["linux"]["netDevices"] = json!({"skd0": {"name": "ctr0"}});
    let id = unique("netdev");
    ok(&rt.run_d(&b, &id));
    let inside = ok(&rt.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ip -o addr show ctr0; ip -o link show ctr0; cat /sys/class/net/ctr0/address",
    ]));
    assert!(
        inside.contains("inet 10.99.0.1/24"),
        "address kept: {inside}"
    );
    assert!(inside.contains(",UP"), "still up: {inside}");
    assert!(inside.trim_end().ends_with(&mac), "MAC kept: {inside}");
    assert!(
        ns.mac("skd0").is_none(),
        "gone from the host while the container runs"
    );
    // The init exits first; delete still finds the interface in the held namespace.
    ok(&rt.out(&["kill", &id, "KILL"]));
    for _ in 0..1000 {
        if stdout(&rt.out(&["state", &id])).contains("\"stopped\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ok(&rt.out(&["delete", &id]));
    assert_eq!(
        ns.mac("skd0").as_deref(),
        Some(mac.as_str()),
        "back under its host name"
    );
    let back = stdout(&ns.ip(&["-o", "addr", "show", "skd0"]));
    assert!(
        back.contains("inet 10.99.0.1/24"),
        "with its address: {back}"
    );
    assert!(!rt.root.path().join(&id).exists(), "state and hold removed");

    // A failure after the move (a createRuntime hook) brings it back too.
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    fresh_cgroup(&mut b);
    let o = rt.run_d(&b, &unique("netdev-hook"));
    assert!(!o.status.success());
    assert_eq!(
        ns.mac("skd0").as_deref(),
        Some(mac.as_str()),
        "{}",
        stderr(&o)
    );

    // A missing interface: one line naming it, nothing left.
    b.config["hooks"] = json!({});
    b.config["linux"]["netDevices"] = json!({"skd9": {}});
    fresh_cgroup(&mut b);
    let id = unique("netdev-missing");
    let o = rt.run_d(&b, &id);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("linux.netDevices") && err.contains("\"skd9\""),
        "{err}"
    );
    assert!(!rt.root.path().join(&id).exists());
}

/// `linux.intelRdt` is refused in one line that says why (no resctrl here), and `features` says
/// it is not supported; netDevices and execCPUAffinity are listed.
#[test]
fn intel_rdt_refused_and_features_list_what_is_applied() {
    require_root();
    let mut b = bundle(&["true"]);
    b.config["linux"]["intelRdt"] = json!({"closID": "x"});
    let rt = Rt::skiff();
    let o = rt.run(&b, &unique("rdt"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("linux.intelRdt"), "{err}");
    if !std::path::Path::new("/sys/fs/resctrl/info").exists() {
        assert!(err.contains("no resctrl filesystem"), "{err}");
    }
    let f: Value = serde_json::from_slice(&rt.out(&["features"]).stdout).unwrap();
    assert_eq!(f["linux"]["intelRdt"]["enabled"], false);
    assert_eq!(f["linux"]["netDevices"]["enabled"], true);
    assert_eq!(
        f["annotations"]["org.opencontainers.runtime-spec.features.skiff.execCPUAffinity"],
        "initial,final"
    );
}

/// runc's checkProcMount: nothing but procfs on /proc and nothing inside /proc except the files
/// lxcfs emulates — also when a symlink in the image leads there. Each case is run under both
/// runtimes and must be refused (or accepted) by both.
#[test]
fn mounts_inside_proc_are_refused_like_runc() {
    require_root();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("cpuinfo"), "fake cpuinfo\n").unwrap();
    let dir = host.path().display().to_string();
    let file = host.path().join("cpuinfo").display().to_string();
    // (type, source, destination, accepted)
    let cases = [
        ("bind", dir.as_str(), "/proc/sys", false),
        ("bind", dir.as_str(), "/proc/../proc/sys", false),
        ("bind", dir.as_str(), "/sysl/kernel", false),
        ("bind", file.as_str(), "/proc/cpuinfo", true),
        ("bind", "/proc", "/proc", true),
        ("bind", dir.as_str(), "/procfoo", true),
    ];
    for (typ, src, dst, accepted) in cases {
        for rt in runtimes() {
            let mut b = bundle(&["sh", "-c", "head -1 /proc/cpuinfo"]);
            std::os::unix::fs::symlink("/proc/sys", b.rootfs().join("sysl")).unwrap();
            let opts = if typ == "bind" {
                json!(["rbind"])
            } else {
                json!([])
            };
            b.config["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": dst, "type": typ, "source": src, "options": opts}));
            let o = rt.run(&b, &unique("procmnt"));
            let what = format!("{} {typ} {src} on {dst}: {}", rt.name, stderr(&o));
            assert_eq!(o.status.success(), accepted, "{what}");
            if accepted && dst == "/proc/cpuinfo" {
                assert_eq!(stdout(&o), "fake cpuinfo\n", "{what}");
            }
            if !accepted {
                assert!(stderr(&o).contains("is inside /proc"), "{what}");
                if rt.name == "skiff" {
                    assert_eq!(stderr(&o).trim().lines().count(), 1, "{what}");
                }
            }
        }
    }
}
