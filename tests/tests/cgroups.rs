//! End-to-end cgroup tests: containers run by `skiff-runtime` with limits, observed from the host
//! (the cgroup files) and from inside (the effect), driven through `update`, `pause`/`resume`,
//! `events` and `kill --all`/`delete`. Each test puts its container under its own
//! `/skiff-test-<unique>` parent and removes that parent at the end. The pure-v2 test runs the
//! runtime inside `unshare -m` with cgroup2 mounted over /sys/fs/cgroup in that namespace only.

use serde_json::{json, Value};
use skiff_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A bundle whose cgroup sits under a fresh `/skiff-test-*` parent, removed on drop.
struct Ctr {
    b: Bundle,
    parent: String,
    rt: Runtime,
    id: String,
}

impl Ctr {
    fn new(tag: &str, args: &[&str]) -> Ctr {
        require_root();
        let mut b = Bundle::busybox(args);
        let parent = unique(&format!("skiff-test-{tag}"));
        b.config["linux"]["cgroupsPath"] = format!("/{parent}/ctr").into();
        Ctr {
            b,
            parent,
            rt: Runtime::new(),
            id: unique(tag),
        }
    }

    fn path(&self) -> String {
        format!("/{}/ctr", self.parent)
    }

    fn file(&self, ctl: &str, f: &str) -> String {
        let p = format!("/sys/fs/cgroup/{ctl}{}/{f}", self.path());
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    }

    fn start(&self) {
        self.b.write();
        ok(&self.rt.out_detached(&[
            "run",
            "-d",
            "--bundle",
            self.b.path().to_str().unwrap(),
            &self.id,
        ]));
    }

    fn rt(&self, args: &[&str]) -> std::process::Output {
        let mut v: Vec<&str> = args.to_vec();
        v.push(&self.id);
        self.rt.out(&v)
    }

    fn host_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join(&self.parent))
            .collect()
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.rt.out(&["delete", "-f", &self.id]);
        for d in self.host_dirs() {
            let _ = std::fs::remove_dir(d.join("ctr"));
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn events_reports_an_oom_kill_inside_the_container() {
    let out = tempfile::tempdir().unwrap();
    let mut c = Ctr::new(
        "oom",
        &[
            "sh",
            "-c",
            "while [ ! -e /out/go ]; do sleep 0.02; done; x=$(head -c 200000000 /dev/zero | tr '\\000' a); echo survived > /out/r; sleep 1000",
        ],
    );
    c.b.bind(out.path(), "/out", false);
    c.b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    c.start();
    assert_eq!(c.file("memory", "memory.limit_in_bytes"), "33554432");
    let mut ev =
        c.rt.cmd(&["events", "--interval", "10s", &c.id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(out.path().join("go"), "").unwrap();
    let mut lines = BufReader::new(ev.stdout.take().unwrap()).lines();
    let line = lines.next().expect("events printed nothing").unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v, json!({"type": "oom", "id": c.id}), "{line}");
    // The OOM-killed init ends the container, and with it the event stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ev.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "events did not exit after the container stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !out.path().join("r").exists(),
        "allocation past the limit survived"
    );
    c.rt.wait_status(&c.id, "stopped");
}

#[test]
fn events_stats_has_runcs_shape_and_the_limits() {
    let c = {
        let mut c = Ctr::new(
            "stats",
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 1000",
            ],
        );
        c.b.config["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        });
        c
    };
    c.start();
    std::thread::sleep(Duration::from_millis(300));
    let line = ok(&c.rt(&["events", "--stats"]));
    assert!(line.starts_with("{\"type\":\"stats\",\"id\":"), "{line}");
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["id"], c.id.as_str());
    let d = &v["data"];
    for k in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ] {
        assert!(d.get(k).is_some(), "data.{k} missing: {d}");
    }
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(d["pids"]["limit"], 20);
    assert!(d["pids"]["current"].as_u64().unwrap() >= 1);
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(d["memory"].get("kernelTCP").is_some());
    // `events` without --stats prints stats every interval.
    let mut ev =
        c.rt.cmd(&["events", "--interval", "100ms", &c.id])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(ev.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let v: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(v["type"], "stats");
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let e = stderr(&c.rt.out(&["events", "--stats", "no-such-ctr"]));
    assert!(e.contains("no-such-ctr"), "{e}");
}

#[test]
fn update_changes_live_limits_seen_inside_the_container() {
    let c = Ctr::new("update", &["sleep", "1000"]);
    c.start();
    // A swap limit needs swap accounting (memory.memsw.*, the swapaccount=1 kernel option).
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let swap: &[&str] = if memsw {
        &["--memory-swap", "128m"]
    } else {
        skip("memsw read-back: swap accounting is off on this host (no memory.memsw.*)");
        &[]
    };
    let mut args = vec!["update", "--memory", "64m"];
    args.extend_from_slice(swap);
    args.extend_from_slice(&[
        "--cpu-share",
        "256",
        "--cpu-quota",
        "20000",
        "--pids-limit",
        "9",
    ]);
    ok(&c.rt(&args));
    assert_eq!(c.file("memory", "memory.limit_in_bytes"), "67108864");
    if memsw {
        assert_eq!(c.file("memory", "memory.memsw.limit_in_bytes"), "134217728");
    }
    assert_eq!(c.file("cpu", "cpu.shares"), "256");
    assert_eq!(c.file("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(c.file("pids", "pids.max"), "9");
    // The container sees its own cgroup with the new value.
    let inside = ok(&c.rt.out(&[
        "exec",
        &c.id,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]));
    assert_eq!(inside.trim(), "67108864");
    // -r FILE and -r - (stdin) take runtime-spec linux.resources.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        if memsw {
            r#"{"memory": {"limit": 100663296, "swap": 201326592}, "pids": {"limit": 11}}"#
        } else {
            r#"{"memory": {"limit": 100663296}, "pids": {"limit": 11}}"#
        },
    )
    .unwrap();
    ok(&c.rt(&["update", "-r", f.path().to_str().unwrap()]));
    assert_eq!(c.file("memory", "memory.limit_in_bytes"), "100663296");
    assert_eq!(c.file("pids", "pids.max"), "11");
    let mut p =
        c.rt.cmd(&["update", "-r", "-", &c.id])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(br#"{"cpu": {"shares": 1024}}"#)
        .unwrap();
    assert!(p.wait_with_output().unwrap().status.success());
    assert_eq!(c.file("cpu", "cpu.shares"), "1024");
    // A limit under the kernel minimum is refused, and the old value stays.
    let o = c.rt(&["update", "--memory", "4k"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("below minimum 6M"), "{}", stderr(&o));
    assert_eq!(c.file("memory", "memory.limit_in_bytes"), "100663296");
    // The fork limit bites inside: 11 pids allowed, more cannot start.
    let o = c.rt.out(&["exec", &c.id, "sh", "-c", "for i in $(seq 20); do sleep 100 </dev/null >/dev/null 2>&1 & done 2>/dev/null; echo spawned"]);
    let _ = o;
    let cur: u32 = c.file("pids", "pids.current").parse().unwrap();
    assert!(cur <= 11, "pids.current {cur} over the limit");
    assert_ne!(c.file("pids", "pids.events"), "max 0");
}

#[test]
fn paused_container_can_be_killed_through_its_cgroup_and_deleted() {
    let c = Ctr::new(
        "killall",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do sleep 1000 & done; sleep 1000",
        ],
    );
    c.start();
    wait_for("6 processes", 5, || c.file("pids", "pids.current") == "6");
    ok(&c.rt(&["pause"]));
    assert_eq!(c.rt.state(&c.id)["status"], "paused");
    assert_eq!(c.file("freezer", "freezer.state"), "FROZEN");
    let o = c.rt(&["pause"]);
    assert!(
        !o.status.success(),
        "pausing a paused container is an error"
    );
    ok(&c.rt.out(&["kill", "--all", &c.id, "KILL"]));
    wait_for("the group to empty", 10, || {
        c.file("pids", "pids.current") == "0"
    });
    ok(&c.rt(&["delete", "-f"]));
    for d in c.host_dirs() {
        assert!(!d.join("ctr").exists(), "{} left behind", d.display());
    }
}

#[test]
fn delete_removes_the_cgroup_even_while_processes_keep_forking() {
    // ~100 forks a second, each child living 0.5 s: a steady churn (busybox sh would exit if a
    // fork failed, so the limit is set well above the ~60 processes alive at once).
    let c = Ctr::new(
        "race",
        &["sh", "-c", "while :; do sleep 0.5 & sleep 0.01; done"],
    );
    {
        let mut c2 = c;
        c2.b.config["linux"]["resources"] = json!({"pids": {"limit": 500}});
        c2.start();
        wait_for("forks", 5, || {
            c2.file("pids", "pids.current").parse::<u32>().unwrap() >= 10
        });
        ok(&c2.rt(&["delete", "-f"]));
        for d in c2.host_dirs() {
            assert!(!d.join("ctr").exists(), "{} left behind", d.display());
        }
    }
}

#[test]
fn denied_device_cannot_be_opened_in_the_container() {
    // /dev/loop-control bound in from the host: allowed in one container, denied in the other.
    let host = Path::new("/dev/loop-control");
    assert!(host.exists(), "this machine has loop devices");
    let probe = [
        "sh",
        "-c",
        "if (: < /loopctl) 2>/dev/null; then echo opened; else echo denied; fi",
    ];
    let mut denied = Ctr::new("devdeny", &probe);
    denied.b.bind(host, "/loopctl", false);
    denied.b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    denied.b.write();
    let o = denied.rt.run(&denied.b, &denied.id);
    assert_eq!(stdout(&o).trim(), "denied", "{}", stderr(&o));
    let mut allowed = Ctr::new("devallow", &probe);
    allowed.b.bind(host, "/loopctl", false);
    allowed.b.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"}
    ]});
    let o = allowed.rt.run(&allowed.b, &allowed.id);
    assert_eq!(stdout(&o).trim(), "opened", "{}", stderr(&o));
}

#[test]
fn missing_controller_is_named_and_nothing_is_left() {
    let layout = skiff_cgroups::Layout::probe().unwrap();
    if layout.v1.contains_key("net_cls") || layout.driver() != skiff_cgroups::Driver::Hybrid {
        skip("missing controller: this host is not hybrid without net_cls");
        return;
    }
    let mut c = Ctr::new("nocls", &["true"]);
    c.b.config["linux"]["resources"] = json!({"network": {"classID": 1048577}});
    let o = c.rt.run(&c.b, &c.id);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cgroup controller \"net_cls\" not available on hybrid here"),
        "{}",
        stderr(&o)
    );
    for d in c.host_dirs() {
        assert!(
            !d.join("ctr").exists(),
            "half-created {} left behind",
            d.display()
        );
    }
}

/// The runtime on a pure v2 layout: cgroup2 over /sys/fs/cgroup in a private mount namespace.
/// Only `hugetlb` is available in this host's unified tree, so memory limits are refused with a
/// named controller, while pause/resume (cgroup.freeze), hugetlb limits and device eBPF work.
#[test]
fn pure_v2_layout_in_a_private_mount_namespace() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "if (: < /loopctl) 2>/dev/null; then echo opened > /out/dev; else echo denied > /out/dev; fi; i=0; while :; do i=$((i+1)); echo $i > /out/n; sleep 0.01; done",
    ]);
    let parent = unique("skiff-test-v2");
    b.config["linux"]["cgroupsPath"] = format!("/{parent}/ctr").into();
    b.bind(out.path(), "/out", false);
    b.bind(Path::new("/dev/loop-control"), "/loopctl", false);
    // What this host's unified tree offers decides two assertions: hugetlb with 2MB pages (a
    // limit read back), and memory bound to v1 (so a memory limit on v2 is refused by name).
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|w| w == c);
    let hugetlb = has("hugetlb") && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    let memory_on_v1 = !has("memory");
    b.config["linux"]["resources"] = if hugetlb {
        json!({
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
            "devices": [{"allow": false, "access": "rwm"}]
        })
    } else {
        skip("v2 hugetlb limit: the unified tree here has no hugetlb with 2MB pages");
        json!({"devices": [{"allow": false, "access": "rwm"}]})
    };
    // The second run asks for a memory limit too (refused by name when memory is bound to v1).
    let mut mem = b.config.clone();
    mem["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    std::fs::write(
        b.path().join("config-mem.json"),
        serde_json::to_vec_pretty(&mem).unwrap(),
    )
    .unwrap();
    b.write();
    let rt = Runtime::new();
    let id = unique("v2");
    let bin = skiff_tests::bin("skiff-runtime");
    let script = format!(
        r#"set -e
mount -t cgroup2 cgroup2 /sys/fs/cgroup
R="{bin} --root {root}"
# The counter is written with `echo > n`, which truncates first: retry a read that lands between.
n() {{ for t in 1 2 3 4 5 6 7 8 9 10; do v=$(cat {out}/n); [ -n "$v" ] && break; sleep 0.01; done; echo "$v"; }}
$R run -d --bundle {bundle} {id} </dev/null >/dev/null 2>&1
cat /sys/fs/cgroup/{parent}/ctr/hugetlb.2MB.max 2>/dev/null || echo no-hugetlb
sleep 0.3
$R pause {id}
$R state {id} | grep -o '"status": *"[a-z]*"' | tr -d ' '
grep frozen /sys/fs/cgroup/{parent}/ctr/cgroup.events
a=$(n); sleep 0.3; b=$(n)
[ "$a" = "$b" ] && echo still
$R resume {id}
sleep 0.3; c=$(n)
[ "$c" -gt "$b" ] && echo moving
$R events --stats {id} | grep -o '"type":"stats"'
cat {out}/dev
$R delete -f {id}
[ -e /sys/fs/cgroup/{parent}/ctr ] || echo removed
rmdir /sys/fs/cgroup/{parent}
mv {bundle}/config-mem.json {bundle}/config.json
$R run --bundle {bundle} {id}2 </dev/null 2>&1 || true
[ -e /sys/fs/cgroup/{parent}/ctr ] || echo nothing-left
"#,
        bin = bin.display(),
        root = rt.root.path().display(),
        bundle = b.path().display(),
        out = out.path().display(),
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let s = stdout(&o);
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/unified/{parent}/ctr"));
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/unified/{parent}"));
    assert!(o.status.success(), "stdout={s} stderr={}", stderr(&o));
    let want = [
        if hugetlb { "2097152" } else { "no-hugetlb" },
        "\"status\":\"paused\"",
        "frozen 1",
        "still",
        "moving",
        "\"type\":\"stats\"",
        "denied",
        "removed",
    ];
    for w in want {
        assert!(s.contains(w), "missing {w:?} in:\n{s}");
    }
    if memory_on_v1 {
        assert!(
            s.contains("cgroup controller \\\"memory\\\" not available on v2 here")
                || s.contains("cgroup controller \"memory\" not available on v2 here"),
            "{s}"
        );
    } else {
        skip("v2 memory refusal: this host's unified tree has the memory controller");
    }
    assert!(s.contains("nothing-left"), "{s}");
}

#[test]
fn cgroup_namespace_shows_the_container_its_own_root() {
    let mut c = Ctr::new("cgns", &["cat", "/proc/self/cgroup"]);
    let ns = c.b.config["linux"]["namespaces"].as_array_mut().unwrap();
    if !ns.iter().any(|n| n["type"] == "cgroup") {
        ns.push(json!({"type": "cgroup"}));
    }
    let o = c.rt.run(&c.b, &c.id);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.contains(":memory:")), "{out}");
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "inside its cgroup namespace every path is /: {out}"
        );
    }
}

/// A cpuset parent that another process has made but not filled yet (empty cpus/mems, as a
/// fresh v1 cpuset directory starts) does not make the container's own cpuset empty: the runtime
/// fills the parent first, so the init can join (an empty cpuset refuses tasks with ENOSPC).
#[test]
fn empty_cpuset_parent_made_by_another_process_is_filled_first() {
    let cpuset = Path::new("/sys/fs/cgroup/cpuset");
    if !cpuset.join("cpuset.cpus").exists() {
        skip("empty cpuset parent: no cgroup v1 cpuset hierarchy here");
        return;
    }
    let c = Ctr::new(
        "cpusetrace",
        &["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
    );
    let parent = cpuset.join(&c.parent);
    std::fs::create_dir(&parent).unwrap();
    // What a racing creator leaves between its mkdir and its copy; the hierarchy's root may
    // give new directories their cpus at mkdir (cgroup.clone_children), so empty them here.
    let _ = std::fs::write(parent.join("cpuset.cpus"), "");
    let _ = std::fs::write(parent.join("cpuset.mems"), "");
    assert_eq!(
        std::fs::read_to_string(parent.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        "",
        "the test could not empty its parent cpuset"
    );
    c.b.write();
    let o =
        c.rt.out(&["run", "--bundle", c.b.path().to_str().unwrap(), &c.id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let root = std::fs::read_to_string(cpuset.join("cpuset.cpus")).unwrap();
    assert_eq!(
        std::fs::read_to_string(parent.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        root.trim()
    );
}
