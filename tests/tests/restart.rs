//! Restart policies that survive their monitor (`skiff system boot`), docker's back-off and retry
//! count, `update` of a running and a stopped container, and the smaller docker-28 parities of
//! issue 14.6 (`rm -f` of a missing container, `ps --format '{{json .}}'`, exec events, prune
//! filters). Each test has its own root and cgroup parent; waits poll with generous deadlines.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::{stderr, stdout, EngineEnv};

struct Env(EngineEnv);

impl std::ops::Deref for Env {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.0
    }
}

impl Env {
    fn new(name: &str) -> Env {
        Env(EngineEnv::new(name, |_| {}))
    }

    fn fmt(&self, name: &str, f: &str) -> String {
        self.ok(&["inspect", "-f", f, name]).trim().to_string()
    }

    fn pid(&self, name: &str) -> i32 {
        self.fmt(name, "{{.State.Pid}}").parse().unwrap()
    }

    /// Polls `inspect -f f name` until it prints `want`.
    fn wait_for(&self, name: &str, f: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.fmt(name, f);
            if s == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {f} is {s:?}, waited {secs}s for {want:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The container's events of this test as docker's JSON objects.
    fn events(&self, id: &str) -> Vec<Value> {
        let out = self.ok(&[
            "events",
            "--since",
            "10m",
            "--until",
            "0s",
            "--filter",
            &format!("container={id}"),
            "--format",
            "{{json .}}",
        ]);
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The parent of `pid` (its monitor, for a container's init).
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// kill -9 of a container's monitor and then of its init: what a host crash leaves.
fn kill_monitor_and_init(env: &Env, name: &str) -> i32 {
    let pid = env.pid(name);
    let mon = parent_of(pid);
    let cmdline = std::fs::read_to_string(format!("/proc/{mon}/cmdline")).unwrap();
    assert!(
        cmdline.contains("monitor"),
        "{name}: parent {mon} is {cmdline:?}"
    );
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(mon, libc::SIGKILL) };
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while (alive(mon) || alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pid
}

fn started(out: &str) -> Vec<&str> {
    let mut v: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("started "))
        .collect();
    v.sort();
    v
}

#[test]
fn system_boot_restarts_what_dockers_daemon_start_would() {
    let env = Env::new("boot");
    let run = |name: &str, policy: &str| {
        env.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "1000",
        ]);
    };
    run("al", "always");
    run("al-stopped", "always");
    run("us", "unless-stopped");
    run("us-stopped", "unless-stopped");
    run("us-killed", "unless-stopped");
    run("no", "no");
    env.ok(&[
        "create",
        "--name",
        "never",
        "--restart",
        "always",
        "busybox",
        "true",
    ]);
    env.ok(&["stop", "-t", "1", "al-stopped"]);
    env.ok(&["stop", "-t", "1", "us-stopped"]);
    env.ok(&["kill", "us-killed"]);
    env.wait_for("us-killed", "{{.State.Status}}", "exited", 20);
    // A removal whose deleter died: garbage by name.
    let trash = env
        .root()
        .join("containers")
        .join(format!(".removing-{}", "ab".repeat(32)));
    std::fs::create_dir_all(trash.join("upper")).unwrap();
    // The host "crashes": monitors and inits die, the database still says running.
    let old: Vec<(String, i32)> = ["al", "us", "no"]
        .iter()
        .map(|n| (n.to_string(), kill_monitor_and_init(&env, n)))
        .collect();
    let out = env.ok(&["system", "boot"]);
    assert_eq!(
        started(&out),
        ["al", "al-stopped", "us"],
        "boot output: {out}"
    );
    assert!(!trash.exists(), "boot sweeps .removing- trees");
    for (name, old_pid) in &old {
        if name == "no" {
            assert_eq!(
                env.fmt(name, "{{.State.Status}} {{.State.Pid}}"),
                "exited 0",
                "a container without a policy is reconciled, not started"
            );
            continue;
        }
        assert_eq!(env.fmt(name, "{{.State.Status}}"), "running", "{name}");
        let pid = env.pid(name);
        assert!(
            pid > 0 && pid != *old_pid && alive(pid),
            "{name}: pid {pid}"
        );
        // Docker's daemon start resets the restart manager (containerStart with
        // resetRestartManager), so the count starts over.
        assert_eq!(env.fmt(name, "{{.RestartCount}}"), "0", "{name}");
    }
    for (name, status) in [
        ("us-stopped", "exited"),
        ("us-killed", "exited"),
        ("never", "created"),
    ] {
        assert_eq!(env.fmt(name, "{{.State.Status}}"), status, "{name}");
    }
    // Idempotent: a second boot finds every monitor alive and starts nothing.
    let pids: Vec<i32> = ["al", "al-stopped", "us"]
        .iter()
        .map(|n| env.pid(n))
        .collect();
    let out = env.ok(&["system", "boot"]);
    assert_eq!(started(&out), Vec::<&str>::new(), "{out}");
    let again: Vec<i32> = ["al", "al-stopped", "us"]
        .iter()
        .map(|n| env.pid(n))
        .collect();
    assert_eq!(pids, again);
    // Concurrent boots start a dead container once.
    kill_monitor_and_init(&env, "al");
    let boots: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(&["system", "boot"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = String::new();
    for b in boots {
        let o = b.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        all.push_str(&stdout(&o));
    }
    assert_eq!(started(&all), ["al"], "{all}");
    assert_eq!(env.fmt("al", "{{.State.Status}}"), "running");
    // A user start forgets the user's stop: unless-stopped comes back at boot again.
    env.ok(&["start", "us-stopped"]);
    kill_monitor_and_init(&env, "us-stopped");
    assert_eq!(started(&env.ok(&["system", "boot"])), ["us-stopped"]);
    // The units and their installation are printed, never installed.
    let install = env.ok(&["system", "boot", "--install"]);
    assert!(
        install.contains("/etc/systemd/system/skiff-boot.service"),
        "{install}"
    );
    let unit = env.ok(&["system", "boot", "--unit", "systemd"]);
    for l in [
        "Type=oneshot",
        "After=local-fs.target network-online.target",
        "ExecStart=/usr/bin/skiff system boot",
    ] {
        assert!(unit.lines().any(|x| x == l), "no {l} in {unit}");
    }
    for kind in ["openrc", "initd"] {
        let u = env.ok(&["system", "boot", "--unit", kind]);
        assert!(
            u.lines()
                .any(|l| l.trim().ends_with("system boot") && l.contains("\"")),
            "{kind}: {u}"
        );
    }
    let o = env.sk(&["system", "boot", "--unit", "upstart"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
}

#[test]
fn restart_policy_backoff_retries_and_user_stops() {
    let env = Env::new("backoff");
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "of",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 3",
        ])
        .trim()
        .to_string();
    env.wait_for("of", "{{.State.Status}} {{.RestartCount}}", "exited 2", 30);
    assert_eq!(env.fmt("of", "{{.State.ExitCode}}"), "3");
    // Three runs; between them docker's delays: 100 ms, then 200 ms.
    let evs = env.events(&id);
    let times = |action: &str| -> Vec<i64> {
        evs.iter()
            .filter(|e| e["Action"] == action)
            .map(|e| e["timeNano"].as_i64().unwrap())
            .collect()
    };
    let (starts, dies) = (times("start"), times("die"));
    assert_eq!((starts.len(), dies.len()), (3, 3), "{evs:?}");
    let gap = |i: usize| Duration::from_nanos((starts[i + 1] - dies[i]) as u64);
    assert!(
        gap(0) >= Duration::from_millis(90) && gap(0) < Duration::from_secs(10),
        "first delay {:?}",
        gap(0)
    );
    assert!(
        gap(1) >= Duration::from_millis(190) && gap(1) < Duration::from_secs(10),
        "second delay {:?}",
        gap(1)
    );
    // Up 10 s, the delay starts over at 100 ms: runs 1-3 fail at once (delays 100, 200,
    // 400 ms), run 4 lasts 10.5 s, so the delay after it is 100 ms again, not 800.
    let long = env
        .ok(&[
            "run",
            "-d",
            "--restart",
            "on-failure:4",
            "busybox",
            "sh",
            "-c",
            "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; \
             [ $n -eq 4 ] && sleep 10.5; exit 1",
        ])
        .trim()
        .to_string();
    env.wait_for(&long, "{{.State.Status}} {{.RestartCount}}", "exited 4", 60);
    let evs = env.events(&long);
    let times = |action: &str| -> Vec<i64> {
        evs.iter()
            .filter(|e| e["Action"] == action)
            .map(|e| e["timeNano"].as_i64().unwrap())
            .collect()
    };
    let (ls, ld) = (times("start"), times("die"));
    assert_eq!((ls.len(), ld.len()), (5, 5), "{evs:?}");
    let lgap = |i: usize| Duration::from_nanos((ls[i + 1] - ld[i]) as u64);
    assert!(
        ld[3] - ls[3] >= 10_000_000_000,
        "run 4 lasted {:?}",
        Duration::from_nanos((ld[3] - ls[3]) as u64)
    );
    assert!(
        lgap(2) >= Duration::from_millis(390),
        "third delay {:?}",
        lgap(2)
    );
    assert!(
        // (Without the reset it would be at least 800 ms, and longer than the one before.)
        lgap(3) >= Duration::from_millis(90)
            && (lgap(3) < Duration::from_millis(800) || lgap(3) < lgap(2)),
        "the delay after a 10 s run was {:?} (the one before it {:?})",
        lgap(3),
        lgap(2)
    );

    // Retries used up: boot leaves it; a user start counts from zero again.
    assert_eq!(started(&env.ok(&["system", "boot"])), Vec::<&str>::new());
    env.sk(&["start", "of"]);
    env.wait_for("of", "{{.State.Status}} {{.RestartCount}}", "exited 2", 30);

    // A process killed behind the engine's back is restarted by the policy; a user's kill or
    // stop ends it (docker's ExitOnNext), and `always` alone comes back at boot.
    for (name, policy) in [("al", "always"), ("us", "unless-stopped")] {
        env.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "1000",
        ]);
    }
    let pid = env.pid("al");
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_for("al", "{{.RestartCount}}", "1", 20);
    env.wait_for("al", "{{.State.Status}}", "running", 20);
    assert_ne!(env.pid("al"), pid);
    env.ok(&["kill", "al"]);
    env.ok(&["kill", "us"]);
    env.wait_for("al", "{{.State.Status}}", "exited", 20);
    env.wait_for("us", "{{.State.Status}}", "exited", 20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.fmt("al", "{{.State.Status}}"), "exited");
    assert_eq!(env.fmt("us", "{{.State.Status}}"), "exited");
    assert_eq!(started(&env.ok(&["system", "boot"])), ["al"]);
}

/// The container's cgroup file `name` as the container sees it (cgroup v2: /sys/fs/cgroup/NAME;
/// v1: /sys/fs/cgroup/<controller>/NAME).
fn cgroup_file(env: &Env, name: &str, v1: &str) -> String {
    let cmd = format!("cat /sys/fs/cgroup/{name} 2>/dev/null || cat /sys/fs/cgroup/{v1}");
    env.ok(&["exec", "up", "sh", "-c", &cmd]).trim().to_string()
}

#[test]
fn update_running_and_stopped_containers() {
    let env = Env::new("update");
    env.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    assert_eq!(
        env.ok(&["update", "--memory", "64m", "--memory-swap", "-1", "up"]),
        "up\n"
    );
    assert_eq!(
        cgroup_file(&env, "memory.max", "memory/memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        env.fmt("up", "{{.HostConfig.Memory}}"),
        (64u64 << 20).to_string()
    );
    env.ok(&[
        "update",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "up",
    ]);
    assert_eq!(cgroup_file(&env, "pids.max", "pids/pids.max"), "50");
    let cpu = cgroup_file(&env, "cpu.max", "cpu/cpu.cfs_quota_us");
    assert!(cpu == "50000 100000" || cpu == "50000", "cpu {cpu}");
    assert_eq!(
        env.fmt(
            "up",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}"
        ),
        "500000000 50 512"
    );
    // Docker's errors: a bad value, a missing container (exit 1 after the others are done).
    let o = env.sk(&["update", "--memory", "1k", "up"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&["update", "--cpus", "0.5", "--cpu-quota", "1000", "up"]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    let o = env.sk(&["update", "--memory", "32m", "nosuch", "up"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "up\n");
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&["update", "up"]);
    assert_ne!(code(&o), 0, "update without a flag is an error");
    // A stopped container: stored, applied at the next start.
    env.ok(&["stop", "-t", "0", "up"]);
    env.ok(&["update", "--memory", "48m", "--restart", "always", "up"]);
    assert_eq!(
        env.fmt(
            "up",
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}"
        ),
        format!("{} always", 48u64 << 20)
    );
    env.ok(&["start", "up"]);
    assert_eq!(
        cgroup_file(&env, "memory.max", "memory/memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    // The new policy holds: killed behind the engine's back, it comes back, with the limits
    // of an update made while it ran.
    env.ok(&["update", "--memory", "40m", "up"]);
    let pid = env.pid("up");
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_for("up", "{{.RestartCount}}", "1", 20);
    env.wait_for("up", "{{.State.Status}}", "running", 20);
    assert_eq!(
        cgroup_file(&env, "memory.max", "memory/memory.limit_in_bytes"),
        (40u64 << 20).to_string()
    );
    // --restart on a running container reaches its monitor too.
    env.ok(&["update", "--restart", "no", "up"]);
    env.wait_for("up", "{{.State.Status}}", "running", 20);
    let pid = env.pid("up");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_for("up", "{{.State.Status}}", "exited", 20);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        env.fmt("up", "{{.State.Status}} {{.RestartCount}}"),
        "exited 1"
    );
    let o = env.sk(&["update", "--restart", "bogus", "up"]);
    assert_ne!(code(&o), 0);
}

#[test]
fn rm_ps_json_exec_events_and_prune_filters() {
    let env = Env::new("parity");
    // rm -f of a missing container succeeds silently; plain rm still fails.
    let o = env.sk(&["rm", "-f", "missing"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let o = env.sk(&["rm", "missing"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("No such container: missing"),
        "{}",
        stderr(&o)
    );

    // ps --format '{{json .}}': docker 28's keys exactly.
    let id = env
        .ok(&[
            "run", "-d", "--name", "js", "-l", "a=b", "busybox", "sleep", "1000",
        ])
        .trim()
        .to_string();
    let line = env.ok(&["ps", "--format", "{{json .}}"]);
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Platform",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status"
        ]
    );
    assert_eq!(v["Names"], "js");
    assert_eq!(v["Labels"], "a=b");

    // exec and top leave docker's events.
    let o = env.sk(&["exec", "js", "sh", "-c", "exit 5"]);
    assert_eq!(code(&o), 5);
    env.ok(&["top", "js"]);
    let evs = env.events(&id);
    let actions: Vec<String> = evs
        .iter()
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect();
    let create = evs
        .iter()
        .find(|e| e["Action"].as_str().unwrap().starts_with("exec_create: "))
        .unwrap_or_else(|| panic!("no exec_create in {actions:?}"));
    assert_eq!(create["Action"], "exec_create: sh -c exit 5");
    let exec_id = create["Actor"]["Attributes"]["execID"].as_str().unwrap();
    assert_eq!(exec_id.len(), 64, "{create}");
    assert!(
        actions.iter().any(|a| a == "exec_start: sh -c exit 5"),
        "{actions:?}"
    );
    let die = evs
        .iter()
        .find(|e| e["Action"] == "exec_die")
        .unwrap_or_else(|| panic!("no exec_die in {actions:?}"));
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "5");
    assert_eq!(die["Actor"]["Attributes"]["execID"], exec_id);
    assert!(actions.iter().any(|a| a == "top"), "{actions:?}");
    // exec -d returns at once; its exec_die (with the code) comes when the process ends, and
    // the waiter that recorded it holds no lock: a stop right after works.
    env.ok(&["exec", "-d", "js", "sh", "-c", "sleep 2; exit 3"]);
    let ps = env.ok(&["exec", "js", "ps", "-o", "args"]);
    assert!(
        ps.contains("sleep 2"),
        "exec -d waited for its process: {ps}"
    );
    let found = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        env.events(&id)
            .iter()
            .any(|e| e["Action"] == "exec_die" && e["Actor"]["Attributes"]["exitCode"] == "3")
    });
    assert!(found, "no exec_die with code 3 for exec -d");
    let o = env.sk(&["exec", "-d", "js", "nosuchcmd"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));

    // container prune with label and until filters.
    for (name, label) in [("p1", "keep=no"), ("p2", "keep=yes")] {
        env.ok(&["run", "--name", name, "-l", label, "busybox", "true"]);
    }
    let out = env.ok(&["container", "prune", "-f", "--filter", "label=keep=no"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains("p1") && left.contains("p2"), "{left}");
    env.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert!(env
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .contains("p2"));
    // (Creation times count in whole seconds: let p2's second pass.)
    std::thread::sleep(Duration::from_millis(1100));
    env.ok(&["container", "prune", "-f", "--filter", "until=0s"]);
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "js", "running containers are never pruned");
    env.ok(&["rm", "-f", "js"]);
    assert!(!Path::new(&env.root().join("containers").join(&id)).exists());
}
