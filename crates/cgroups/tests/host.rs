//! Library tests against the real cgroups of this machine. Each test creates its own
//! `/skiff-test-<unique>/<case>` group (in every hierarchy the driver uses), places `sh`/`sleep`
//! children there (never the test process itself), observes the effect, and removes what it made.
//!
//! Every case runs with the hybrid driver the host has, with the v1 driver forced, and, through
//! `pure_v2_in_a_private_mount_namespace`, again on a pure v2 layout: the test binary re-executes
//! itself inside `unshare -m` with cgroup2 mounted over /sys/fs/cgroup in that namespace only.
//! On this host the unified hierarchy only has `hugetlb` (every other controller is bound to v1),
//! so on v2 the memory/pids cases check the error that names the controller instead.

use serde_json::json;
use skiff_cgroups::{Cgroup, CgroupSpec, Driver, Layout, ManagerKind};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "skiff-test-{}-{}-{:x}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

/// Record one skipped assertion (the host lacks an optional feature): printed, and appended to
/// `SKIFF_SKIP_LOG` when tests/run-all.sh sets it, as `skiff_tests::skip` does for the
/// integration tests.
fn skip(reason: &str) {
    let thread = std::thread::current();
    let line = format!("SKIP {}: {reason}\n", thread.name().unwrap_or("?"));
    eprint!("{line}");
    if let Some(path) = std::env::var_os("SKIFF_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// A test group under a private `skiff-test-*` parent, removed (with its processes) on drop.
struct TestGroup {
    cg: Cgroup,
    parent: Cgroup,
    children: Vec<Child>,
}

impl TestGroup {
    fn new(layout: &Layout, tag: &str) -> TestGroup {
        let top = unique(tag);
        let spec = |p: String| CgroupSpec {
            path: Some(p),
            id: tag.into(),
            manager: ManagerKind::Cgroupfs,
            rootless: false,
        };
        let cg = Cgroup::resolve_in(&spec(format!("/{top}/case")), layout).unwrap();
        let parent = Cgroup::resolve_in(&spec(format!("/{top}")), layout).unwrap();
        cg.create().unwrap();
        TestGroup {
            cg,
            parent,
            children: Vec::new(),
        }
    }

    /// Spawn `sh -c "read _; <script>"` (it waits for `go`) and place it in the group.
    fn gated(&mut self, script: &str) -> usize {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.cg.add_process(child.id() as i32).unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    fn go(&mut self, i: usize) {
        let s = self.children[i].stdin.as_mut().unwrap();
        writeln!(s, "go").unwrap();
    }

    /// Wait for child `i` (up to `secs`), returning (stdout, killed-by-signal).
    fn finish(&mut self, i: usize, secs: u64) -> (String, Option<i32>) {
        let c = &mut self.children[i];
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "child did not finish in {secs}s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        use std::os::unix::process::ExitStatusExt;
        (out, status.signal())
    }

    fn file(&self, ctl: &str, f: &str) -> String {
        let d = self
            .cg
            .dir_of(ctl)
            .unwrap_or_else(|| panic!("no {ctl} dir"));
        std::fs::read_to_string(d.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", d.join(f).display()))
            .trim()
            .to_string()
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        let _ = self.cg.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.wait();
        }
        let r = self.cg.destroy();
        let _ = self.parent.destroy();
        if !std::thread::panicking() {
            r.unwrap();
            for d in self.cg.dirs().iter().chain(self.parent.dirs().iter()) {
                assert!(!d.exists(), "{} left behind", d.display());
            }
        }
    }
}

fn res(v: serde_json::Value) -> oci_spec::runtime::LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn hybrid() -> Layout {
    let l = Layout::probe().unwrap();
    assert_eq!(l.driver(), Driver::Hybrid, "this host is hybrid: {l:?}");
    l
}

fn v1() -> Layout {
    hybrid().force(Driver::V1).unwrap()
}

// ---- cases, each run per driver --------------------------------------------------------------

fn memory_limit_oom_kills_and_notifies(l: &Layout) {
    let mut g = TestGroup::new(l, "oom");
    let r = res(json!({"memory": {"limit": 33554432, "swap": 33554432}}));
    if g.cg.driver() == Driver::V2 {
        let e = g.cg.apply(&r).unwrap_err().to_string();
        assert!(
            e.contains("cgroup controller \"memory\" not available on v2 here"),
            "{e}"
        );
        return;
    }
    g.cg.apply(&r).unwrap();
    assert_eq!(g.file("memory", "memory.limit_in_bytes"), "33554432");
    let mut oom = g.cg.oom_notifier().unwrap();
    let i = g.gated("x=$(head -c 200000000 /dev/zero | tr '\\000' a); echo survived");
    g.go(i);
    let (out, sig) = g.finish(i, 60);
    assert!(
        !out.contains("survived"),
        "allocation past the limit survived"
    );
    assert_eq!(sig, Some(libc::SIGKILL), "killed by the OOM killer");
    let ev = oom.wait(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(ev, skiff_cgroups::oom::OomEvent::Oom(n) if n >= 1),
        "OOM notification: {ev:?}"
    );
    let ctl = g.file("memory", "memory.oom_control");
    assert!(!ctl.contains("oom_kill 0"), "{ctl}");
    let st = g.cg.stats().unwrap();
    assert_eq!(st.memory.usage.limit, 33554432);
    assert!(
        st.memory.usage.max >= 33554432 / 10 * 9,
        "peak usage reached the limit: {:?}",
        st.memory.usage
    );
}

fn pids_limit_stops_a_fork_bomb(l: &Layout) {
    let mut g = TestGroup::new(l, "pids");
    let r = res(json!({"pids": {"limit": 10}}));
    if g.cg.driver() == Driver::V2 {
        let e = g.cg.apply(&r).unwrap_err().to_string();
        assert!(e.contains("\"pids\" not available on v2"), "{e}");
        return;
    }
    g.cg.apply(&r).unwrap();
    assert_eq!(g.file("pids", "pids.max"), "10");
    let i = g.gated(
        "n=0; for i in $(seq 40); do sleep 1000 2>/dev/null & done 2>/dev/null; echo started; wait",
    );
    g.go(i);
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.file("pids", "pids.events") == "max 0" {
        assert!(Instant::now() < deadline, "fork bomb never hit the limit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let cur: u32 = g.file("pids", "pids.current").parse().unwrap();
    assert!(cur <= 10, "at most 10 tasks, saw {cur}");
    let st = g.cg.stats().unwrap();
    assert_eq!(st.pids.limit, 10);
    assert!(
        st.pids.current >= 2 && st.pids.current <= 10,
        "{:?}",
        st.pids
    );
    g.cg.kill_all(libc::SIGKILL).unwrap();
}

fn freeze_stops_a_counter_and_thaw_resumes_it(l: &Layout) {
    let mut g = TestGroup::new(l, "freeze");
    let dir = tempdir();
    let f = dir.join("n");
    let i = g.gated(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}; done",
        f.display()
    ));
    g.go(i);
    // The loop truncates and rewrites the file: retry a read that caught it empty.
    let n = || -> u64 {
        for _ in 0..1000 {
            if let Ok(v) = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while n() < 10 {
        assert!(Instant::now() < deadline, "counter never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    let a = n();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(n(), a, "the counter moved while frozen");
    // A non-fatal signal leaves a frozen group frozen.
    g.cg.kill_all(libc::SIGCONT).unwrap();
    assert!(g.cg.is_frozen().unwrap());
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(n() > a, "the counter did not resume after thaw");
    let _ = std::fs::remove_dir_all(&dir);
}

fn denied_device_cannot_be_opened(l: &Layout) {
    let mut g = TestGroup::new(l, "dev");
    // Deny everything but what the shell needs, then allow /dev/null read-only.
    g.cg.apply(&res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    ]})))
    .unwrap();
    if let Some(d) = g.cg.paths.get("devices") {
        let list = std::fs::read_to_string(d.join("devices.list")).unwrap();
        assert!(list.contains("c 1:3 r\n"), "{list}");
        assert!(!list.contains("a *:* rwm"), "{list}");
    }
    let i = g.gated(
        "[ \"$(head -c 1 /dev/zero | wc -c)\" = 1 ] && echo zero-ok; \
         cat /dev/null && echo null-read-ok; \
         (echo x > /dev/null) 2>&- && echo null-write-ok; \
         [ \"$(head -c 1 /dev/urandom 2>&- | wc -c)\" = 1 ] && echo urandom-ok; echo end",
    );
    g.go(i);
    let (out, _) = g.finish(i, 10);
    assert!(out.contains("zero-ok"), "{out}");
    assert!(out.contains("null-read-ok"), "{out}");
    assert!(
        !out.contains("null-write-ok"),
        "write to /dev/null must be denied: {out}"
    );
    assert!(
        !out.contains("urandom-ok"),
        "/dev/urandom must be denied: {out}"
    );
    assert!(out.contains("end"), "{out}");
}

/// Whether the unified tree offers hugetlb with 2MB and 1GB pages (this machine's hybrid layout).
fn hugetlb_in_unified(l: &Layout) -> bool {
    let Some(u) = &l.unified else {
        return false;
    };
    std::fs::read_to_string(u.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "hugetlb"))
        && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
        && Path::new("/sys/kernel/mm/hugepages/hugepages-1048576kB").exists()
}

fn limits_read_back(l: &Layout) {
    let g = TestGroup::new(l, "values");
    let cpus = "0";
    let r = res(json!({
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": cpus},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    }));
    match g.cg.driver() {
        Driver::V2 if !hugetlb_in_unified(l) => {
            skip("v2 hugetlb: the unified tree here has no hugetlb controller with 2MB pages");
        }
        Driver::V2 => {
            // Only hugetlb is available on this host's unified tree; cpu must be named missing.
            let e = g.cg.apply(&r).unwrap_err().to_string();
            assert!(e.contains("\"cpuset\" not available on v2"), "{e}");
            g.cg.apply(&res(
                json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            ))
            .unwrap();
            assert_eq!(g.file("hugetlb", "hugetlb.2MB.max"), "4194304");
        }
        Driver::Hybrid if !hugetlb_in_unified(l) => {
            // hugetlb bound to v1 (or absent): the v1 case below covers what this host has.
            g.cg.apply(&res(
                json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": cpus}}),
            ))
            .unwrap();
            assert_eq!(g.file("cpu", "cpu.shares"), "512");
            skip("hybrid hugetlb: the unified tree here has no hugetlb controller with 2MB and 1GB pages");
        }
        Driver::Hybrid => {
            g.cg.apply(&r).unwrap();
            assert_eq!(g.file("cpu", "cpu.shares"), "512");
            assert_eq!(g.file("cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(g.file("cpuset", "cpuset.cpus"), cpus);
            // hugetlb only exists in the unified tree here: the hybrid driver uses it there.
            assert_eq!(g.file("hugetlb", "hugetlb.2MB.max"), "4194304");
            g.cg.apply(&res(json!({"unified": {"hugetlb.1GB.max": "0"}})))
                .unwrap();
            assert_eq!(g.file("hugetlb", "hugetlb.1GB.max"), "0");
        }
        Driver::V1 if l.v1.contains_key("hugetlb") => {
            skip("v1 without hugetlb: this host mounts a v1 hugetlb hierarchy");
        }
        Driver::V1 => {
            let e = g.cg.apply(&r).unwrap_err().to_string();
            assert_eq!(
                e, "cgroup controller \"hugetlb\" not available on v1 here",
                "{e}"
            );
            let e =
                g.cg.apply(&res(json!({"unified": {"memory.max": "1"}})))
                    .unwrap_err()
                    .to_string();
            assert!(e.contains("needs a cgroup2 hierarchy"), "{e}");
        }
    }
    if g.cg.driver() != Driver::V2 {
        // Controllers this host lacks entirely are named.
        if l.v1.contains_key("net_cls") {
            skip("missing controller named: this host mounts net_cls");
        } else {
            let e =
                g.cg.apply(&res(json!({"network": {"classID": 1048577}})))
                    .unwrap_err()
                    .to_string();
            assert!(
                e.contains("cgroup controller \"net_cls\" not available on"),
                "{e}"
            );
        }
        // Memory/swap/pids/blkio and update of a live value. A swap limit needs swap accounting
        // (memory.memsw.*, the swapaccount=1 kernel option); without it the driver names that.
        let memsw =
            g.cg.dir_of("memory")
                .unwrap()
                .join("memory.memsw.limit_in_bytes")
                .exists();
        let swap = g.cg.apply(&res(
            json!({"memory": {"limit": 67108864, "swap": 134217728}}),
        ));
        if memsw {
            swap.unwrap();
            assert_eq!(g.file("memory", "memory.memsw.limit_in_bytes"), "134217728");
        } else {
            let e = swap.unwrap_err().to_string();
            assert!(e.contains("swap accounting is off on this host"), "{e}");
            skip("memsw read-back: swap accounting is off on this host (no memory.memsw.*)");
        }
        g.cg.apply(&res(
            json!({"memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10},
                               "pids": {"limit": 20}}),
        ))
        .unwrap();
        assert_eq!(g.file("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(g.file("memory", "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(g.file("pids", "pids.max"), "20");
        // A block I/O weight needs an io scheduler that offers weights (BFQ or CFQ); without one
        // the driver refuses, naming the reason, as runc fails writing the missing file.
        let weight = g.cg.apply(&res(json!({"blockIO": {"weight": 300}})));
        if l.offers_io_weight() {
            weight.unwrap();
            let f = ["blkio.bfq.weight", "blkio.weight"]
                .into_iter()
                .find(|f| g.cg.dir_of("blkio").unwrap().join(f).exists())
                .unwrap();
            assert_eq!(
                g.file("blkio", f).split_whitespace().last(),
                Some("300"),
                "{f}"
            );
        } else {
            let e = weight.unwrap_err().to_string();
            assert!(
                e.contains("has no blkio.weight (the host's io scheduler offers no weights)"),
                "{e}"
            );
            skip("blkio weight read-back: no io scheduler here offers weights (no bfq/cfq)");
        }
        // Growing past the old memsw limit needs memsw first: the driver orders the writes.
        if memsw {
            g.cg.apply(&res(
                json!({"memory": {"limit": 268435456, "swap": 536870912}}),
            ))
            .unwrap();
            assert_eq!(g.file("memory", "memory.limit_in_bytes"), "268435456");
            assert_eq!(g.file("memory", "memory.memsw.limit_in_bytes"), "536870912");
        }
        g.cg.apply(&res(
            json!({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}}),
        ))
        .unwrap();
        assert_eq!(g.file("pids", "pids.max"), "max");
        let e = g
            .cg
            .apply(&res(json!({"blockIO": {"throttleReadBpsDevice": [{"major": 253, "minor": 250, "rate": 1000}]}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown block device 253:250"), "{e}");
    }
}

fn errors_leave_no_half_created_group(l: &Layout) {
    let top = unique("half");
    let spec = CgroupSpec {
        path: Some(format!("/{top}/a/b")),
        id: "x".into(),
        manager: ManagerKind::Cgroupfs,
        rootless: false,
    };
    let cg = Cgroup::resolve_in(&spec, l).unwrap();
    let e = cg
        .apply(&res(json!({"memory": {"limit": 4096}})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("memory limit 4096 below minimum 6M"), "{e}");
    // create() fails half-way (a file where a later hierarchy's directory must go) and rolls back.
    let mut bad = cg.clone();
    let blocker = tempdir().join("file");
    std::fs::write(&blocker, "").unwrap();
    bad.paths.insert("zzz".into(), blocker.join("sub"));
    assert!(bad.create().is_err());
    for d in cg.dirs() {
        let top_dir: PathBuf = d.ancestors().find(|a| a.ends_with(&top)).unwrap().into();
        assert!(!top_dir.exists(), "{} left behind", top_dir.display());
    }
    let _ = std::fs::remove_dir_all(blocker.parent().unwrap());
}

fn stats_and_nested_groups(l: &Layout) {
    let mut g = TestGroup::new(l, "stats");
    let i = g.gated("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo busy-done; sleep 1000");
    g.go(i);
    std::thread::sleep(Duration::from_millis(300));
    // A nested group made inside (as a container's own systemd would) with a process in it.
    let mut nested = g.cg.clone();
    for p in nested.paths.values_mut() {
        *p = p.join("inner");
    }
    nested.create().unwrap();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    nested.add_process(sleeper.id() as i32).unwrap();
    let procs = g.cg.procs().unwrap();
    assert!(procs.contains(&(sleeper.id() as i32)), "{procs:?}");
    let st = g.cg.stats().unwrap();
    assert!(st.cpu.usage.total > 0, "cpu usage counted: {:?}", st.cpu);
    let v = serde_json::to_value(&st).unwrap();
    assert!(v["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    if g.cg.driver() != Driver::V2 {
        assert!(st.memory.usage.usage > 0);
        assert!(st.pids.current >= 2, "{:?}", st.pids);
    }
    // destroy kills what is left and removes the nested group too.
    g.cg.destroy().unwrap();
    let _ = sleeper.wait();
    for d in g.cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("tmp"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

macro_rules! per_driver {
    ($($case:ident),* $(,)?) => {
        mod hybrid_driver {
            $(#[test] fn $case() { super::$case(&super::hybrid()) })*
        }
        mod v1_driver {
            $(#[test] fn $case() { super::$case(&super::v1()) })*
        }
        /// Run only by `pure_v2_in_a_private_mount_namespace` (inside its namespace).
        mod v2_inner {
            $(#[test]
            #[ignore = "runs inside a private mount namespace via pure_v2_in_a_private_mount_namespace"]
            fn $case() {
                if std::env::var_os("SKIFF_TEST_PURE_V2").is_none() {
                    return;
                }
                let l = skiff_cgroups::Layout::probe().unwrap();
                assert_eq!(l.driver(), skiff_cgroups::Driver::V2, "{l:?}");
                super::$case(&l)
            })*
        }
    };
}

per_driver!(
    memory_limit_oom_kills_and_notifies,
    pids_limit_stops_a_fork_bomb,
    freeze_stops_a_counter_and_thaw_resumes_it,
    denied_device_cannot_be_opened,
    limits_read_back,
    errors_leave_no_half_created_group,
    stats_and_nested_groups,
);

#[test]
fn pure_v2_in_a_private_mount_namespace() {
    let exe = std::env::current_exe().unwrap();
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args(["v2_inner::", "--include-ignored", "--test-threads=2"])
        .env("SKIFF_TEST_PURE_V2", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "pure v2 run failed:\n{out}\n{err}");
    assert!(out.contains("test result: ok. 7 passed"), "{out}");
}

#[test]
fn device_program_on_the_unified_tree_is_replaced_not_stacked() {
    // The hybrid host's cgroup2 mount runs eBPF device programs for its members too.
    let l = hybrid();
    let mut g = TestGroup::new(&l, "bpf");
    let u = g.cg.paths["unified"].clone();
    let deny_null_write = skiff_cgroups::devices::rules(
        &res(json!({"devices": [
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
        ]}))
        .devices()
        .clone()
        .unwrap(),
    )
    .unwrap();
    skiff_cgroups::devices::apply_v2(&u, &deny_null_write).unwrap();
    skiff_cgroups::devices::apply_v2(&u, &deny_null_write).unwrap();
    let fd: std::os::fd::OwnedFd = std::fs::File::open(&u).unwrap().into();
    assert_eq!(skiff_cgroups::devices::attached(&fd).unwrap().len(), 1);
    let i =
        g.gated("(echo x > /dev/null) 2>/dev/null && echo write-ok; cat /dev/null && echo read-ok");
    g.go(i);
    let (out, _) = g.finish(i, 10);
    assert_eq!(out.trim(), "read-ok", "{out}");
}

#[test]
fn systemd_manager_is_a_clear_error_here() {
    let spec = CgroupSpec {
        path: Some("system.slice:skiff:abc".into()),
        id: "abc".into(),
        manager: ManagerKind::Systemd,
        rootless: false,
    };
    let e = Cgroup::resolve(&spec).unwrap_err().to_string();
    assert!(e.contains("needs systemd as PID 1"), "{e}");
    // The same path form under cgroupfs lands where systemd would have put it.
    let spec = CgroupSpec {
        manager: ManagerKind::Cgroupfs,
        ..spec
    };
    let cg = Cgroup::resolve(&spec).unwrap();
    assert_eq!(
        cg.paths["memory"],
        Path::new("/sys/fs/cgroup/memory/system.slice/skiff-abc.scope")
    );
}
