//! Cgroup resources seen from both sides: the value in the cgroup file and its effect inside a real
//! container (hybrid host: v1 controllers).

use serde_json::json;
use skiff_tests::*;
use std::path::Path;

fn cg(b: &Bundle) -> String {
    b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn memory_limit_is_set_and_enforced_by_the_oom_killer() {
    require_root();
    let mut b = Bundle::busybox(&["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    let rt = Runtime::new();
    let o = rt.run(&b, &unique("oom"));
    let out = stdout(&o);
    assert!(out.starts_with("33554432\n"), "limit visible inside: {out}");
    assert!(
        !out.contains("survived"),
        "allocation past the limit must be OOM-killed: {out}"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    require_root();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "for i in $(seq 40); do sleep 1000 & done 2>/dev/null; sleep 1000",
    ]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.write();
    let p = cg(&b);
    let rt = Runtime::new();
    let id = unique("pids");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids{p}/{f}")).unwrap_or_default()
    };
    let mut events = String::new();
    for _ in 0..300 {
        events = read("pids.events");
        if events.trim() != "max 0" && !events.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(read("pids.max").trim(), "10");
    let current: u32 = read("pids.current").trim().parse().unwrap();
    assert!(current <= 10, "at most 10 processes, saw {current}");
    assert_ne!(
        events.trim(),
        "max 0",
        "forks beyond the limit were refused: {events}"
    );
    ok(&rt.out(&["delete", "-f", &id]));
}

#[test]
fn cpu_and_limits_read_back_from_cgroup_files() {
    require_root();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["resources"] =
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}});
    b.write();
    let rt = Runtime::new();
    let id = unique("cpu");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let p = cg(&b);
    let read = |ctl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}{p}/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    // update changes a live limit.
    ok(&rt.out(&["update", "--memory", "67108864", "--pids-limit", "7", &id]));
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("pids", "pids.max"), "7");
    ok(&rt.out(&["delete", "-f", &id]));
    assert!(!Path::new(&format!("/sys/fs/cgroup/cpu{p}")).exists());
}

/// `linux.resources.blockIO.weight` needs an io scheduler with weights (BFQ or CFQ). Where the
/// host has one, the weight reaches the cgroup; where it has none, the runtime refuses the
/// container as runc does (runc fails writing the missing file) and leaves nothing behind.
#[test]
fn blkio_weight_is_applied_or_refused_by_host_support() {
    require_root();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["resources"] = json!({"blockIO": {"weight": 300}});
    b.write();
    let rt = Runtime::new();
    let id = unique("blkio");
    let out = rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let p = cg(&b);
    let layout = skiff_cgroups::Layout::probe().unwrap();
    if layout.offers_io_weight() {
        ok(&out);
        let dir = format!("/sys/fs/cgroup/blkio{p}");
        let f = ["blkio.bfq.weight", "blkio.weight"]
            .into_iter()
            .find(|f| Path::new(&dir).join(f).exists())
            .unwrap();
        let v = std::fs::read_to_string(Path::new(&dir).join(f)).unwrap();
        assert_eq!(v.split_whitespace().last(), Some("300"), "{f}: {v}");
        ok(&rt.out(&["delete", "-f", &id]));
    } else {
        assert!(
            !out.status.success(),
            "a weight no scheduler offers must fail"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("has no blkio.weight (the host's io scheduler offers no weights)"),
            "{err}"
        );
        assert!(
            !rt.out(&["state", &id]).status.success(),
            "a refused container leaves no state"
        );
        assert!(!Path::new(&format!("/sys/fs/cgroup/blkio{p}")).exists());
        skip("blkio weight read-back: no io scheduler here offers weights (no bfq/cfq)");
    }
}

#[test]
fn pause_stops_a_counter_and_resume_restarts_it() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /out/n; sleep 0.01; done",
    ]);
    b.bind(out.path(), "/out", false);
    b.write();
    let rt = Runtime::new();
    let id = unique("pause");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    // `echo $i > /out/n` truncates before it writes: retry a read that lands in between.
    let n = || {
        for _ in 0..100 {
            let s = std::fs::read_to_string(out.path().join("n")).unwrap_or_default();
            if let Ok(v) = s.trim().parse::<u64>() {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        0
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    ok(&rt.out(&["pause", &id]));
    assert_eq!(rt.state(&id)["status"], "paused");
    let a = n();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(n(), a, "counter must not move while paused");
    ok(&rt.out(&["resume", &id]));
    assert_eq!(rt.state(&id)["status"], "running");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(n() > a, "counter moves again after resume");
    ok(&rt.out(&["delete", "-f", &id]));
}

#[test]
fn memory_limit_below_minimum_is_a_clear_error_and_leaves_nothing() {
    require_root();
    let mut b = Bundle::busybox(&["true"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 4096}});
    let p = cg(&b);
    let rt = Runtime::new();
    let id = unique("lowmem");
    let o = rt.run(&b, &id);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("below minimum 6M"), "{}", stderr(&o));
    assert!(!rt.root.path().join(&id).exists());
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory{p}")).exists(),
        "no half-created cgroup"
    );
}
