//! `--runtime`: containers run by another OCI runtime binary (runc), driven by skiff's monitor
//! and engine with runc's command line. Skipped when runc is not installed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use skiff_tests::{skip, stderr, stdout, EngineEnv, Pty};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// runc's path, or None (the test is skipped).
fn runc() -> Option<PathBuf> {
    let p = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("runc"))
        .find(|p| p.is_file());
    if p.is_none() {
        skip("runc is not installed (apt install runc)");
    }
    p
}

/// The runtime's private state root for `name` under the engine's run dir.
fn state_root(env: &EngineEnv, name: &str) -> PathBuf {
    env.root().join("run").join("runtimes").join(name)
}

/// Containers the runtime still knows under `root` (its state directories).
fn runtime_states(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An engine whose daemon.json names runc as `myrunc` too; on drop (after the engine's own
/// cleanup removed the containers) anything runc still holds is deleted.
struct Env {
    env: Option<EngineEnv>,
    runc: PathBuf,
}

impl Env {
    fn new(name: &str) -> Option<Env> {
        let runc = runc()?;
        let env = EngineEnv::new(name, |_| {});
        std::fs::write(
            env.root().join("daemon.json"),
            format!(
                // No default bridge (a host-wide device): as every engine test but the network one.
                "{{\"bridge\": \"none\", \"runtimes\": {{\"myrunc\": {{\"path\": \"{}\", \"runtimeArgs\": []}}}}}}\n",
                runc.display()
            ),
        )
        .unwrap();
        Some(Env {
            env: Some(env),
            runc,
        })
    }
    fn e(&self) -> &EngineEnv {
        self.env.as_ref().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let env = self.env.take().unwrap();
        // Whatever runc still holds (a test failed half-way) goes first, while its state root
        // exists; then the engine's cleanup removes every container, mount and cgroup.
        for name in ["runc", "myrunc"] {
            let root = state_root(&env, name);
            for id in runtime_states(&root) {
                let _ = std::process::Command::new(&self.runc)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &id])
                    .output();
            }
        }
        drop(env);
    }
}

#[test]
fn run_rm_with_runc_exits_with_the_code() {
    let Some(env) = Env::new("altrt-rm") else {
        return;
    };
    let e = env.e();
    let o = e.sk(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"), "{}", stderr(&o));
    // runc really ran it: it made its state under the engine's private root, and --rm left
    // nothing there.
    let root = state_root(e, "runc");
    assert!(root.is_dir(), "no runc state root at {}", root.display());
    assert!(
        runtime_states(&root).is_empty(),
        "{:?}",
        runtime_states(&root)
    );
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn detached_runc_container_exec_logs_stop_rm() {
    let Some(env) = Env::new("altrt-d") else {
        return;
    };
    let e = env.e();
    let id = e
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--runtime",
            "runc",
            "busybox",
            "sh",
            "-c",
            "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let root = state_root(e, "runc");
    // runc knows it, by the container's id, and says it runs.
    let st = std::process::Command::new(&env.runc)
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(st.status.success(), "runc state: {}", stderr(&st));
    let state: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    // exec: output, exit code, environment and the same namespaces as the init.
    let o = e.sk(&["exec", "web", "sh", "-c", "echo in-$((2+3)); exit 4"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(stdout(&o), "in-5\n");
    let o = e.sk(&[
        "exec",
        "-e",
        "X=y",
        "web",
        "sh",
        "-c",
        "echo $X; readlink /proc/1/ns/pid; readlink /proc/self/ns/pid",
    ]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "y");
    assert_eq!(
        lines[1], lines[2],
        "exec is not in the container's pid namespace"
    );
    // exec -d: started, it runs on in the container.
    e.ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "echo detached > /tmp/d; sleep 1000",
    ]);
    let mut seen = false;
    for _ in 0..50 {
        if stdout(&e.sk(&["exec", "web", "cat", "/tmp/d"])) == "detached\n" {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "exec -d did not run");
    // inspect shows the runtime; top and stats read its cgroup.
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Runtime}} {{.State.Status}}",
            "web"
        ]),
        "runc running\n"
    );
    let top = e.ok(&["top", "web"]);
    assert!(top.contains("sleep 1000"), "{top}");
    let stats = e.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "web"]);
    let pids: u32 = stats.trim().parse().unwrap_or(0);
    assert!(pids >= 2, "stats PIDs {stats:?}");
    // pause / unpause through the runtime.
    e.ok(&["pause", "web"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "paused\n"
    );
    e.ok(&["unpause", "web"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running\n"
    );
    // stop: the stop signal reaches the init, its exit code is reaped and recorded.
    e.ok(&["stop", "web"]);
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web"
        ]),
        "exited 7\n"
    );
    let logs = e.sk(&["logs", "web"]);
    assert_eq!(stdout(&logs), "started\nbye\n", "{}", stderr(&logs));
    // Its state in runc is gone with the run; rm leaves nothing of it.
    assert!(
        runtime_states(&root).is_empty(),
        "{:?}",
        runtime_states(&root)
    );
    // Started again, it runs under runc again.
    e.ok(&["start", "web"]);
    assert_eq!(runtime_states(&root), vec![id.clone()]);
    e.ok(&["rm", "-f", "web"]);
    assert!(
        runtime_states(&root).is_empty(),
        "{:?}",
        runtime_states(&root)
    );
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn run_it_with_runc_through_a_pty() {
    let Some(env) = Env::new("altrt-it") else {
        return;
    };
    let e = env.e();
    let mut t = Pty::spawn(
        e.cmd(&["run", "-it", "--rm", "--runtime", "runc", "busybox", "sh"]),
        24,
        80,
    );
    t.expect("# ", 30);
    t.write(b"tty; stty size\r");
    t.expect("/dev/pts/", 10);
    t.expect("24 80", 10);
    t.write(b"exit 5\r");
    let st = t.wait(30).expect("run -it did not end");
    assert_eq!(st.code(), Some(5), "{}", t.text());
    // exec -it into a runc container.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--runtime",
        "runc",
        "busybox",
        "sleep",
        "1000",
    ]);
    let mut t = Pty::spawn(e.cmd(&["exec", "-it", "ex", "sh"]), 24, 80);
    t.expect("# ", 30);
    t.write(b"echo hi-$((1+1))\r");
    t.expect("hi-2", 10);
    t.resize(33, 99);
    std::thread::sleep(Duration::from_millis(300));
    t.write(b"stty size\r");
    t.expect("33 99", 10);
    t.write(b"exit 6\r");
    let st = t.wait(30).expect("exec -it did not end");
    assert_eq!(st.code(), Some(6), "{}", t.text());
}

#[test]
fn configured_runtime_name_and_info() {
    let Some(env) = Env::new("altrt-cfg") else {
        return;
    };
    let e = env.e();
    let o = e.sk(&["run", "--rm", "--runtime", "myrunc", "busybox", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    e.ok(&[
        "create",
        "--name",
        "cfg",
        "--runtime",
        "myrunc",
        "busybox",
        "true",
    ]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "cfg"]),
        "myrunc\n"
    );
    // A container of the built-in runtime shows docker's default name.
    e.ok(&["create", "--name", "builtin", "busybox", "true"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "builtin"]),
        "runc\n"
    );
    // An absolute path works as a name too.
    let o = e.sk(&[
        "run",
        "--rm",
        "--runtime",
        env.runc.to_str().unwrap(),
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let info = e.ok(&["info"]);
    // docker's line: every runtime's name, sorted (crun too when it is installed).
    let names: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix(" Runtimes: "))
        .unwrap_or_else(|| panic!("no Runtimes line: {info}"))
        .split(' ')
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{info}");
    for n in ["myrunc", "runc", "skiff-runtime"] {
        assert!(names.contains(&n), "{n} missing: {info}");
    }
    assert!(info.contains(" Default Runtime: skiff-runtime\n"), "{info}");
}

#[test]
fn unknown_runtime_is_a_one_line_125() {
    let Some(env) = Env::new("altrt-bad") else {
        return;
    };
    let e = env.e();
    for args in [
        vec![
            "run",
            "--rm",
            "--runtime",
            "no-such-runtime",
            "busybox",
            "true",
        ],
        vec!["create", "--runtime", "no-such-runtime", "busybox", "true"],
        vec!["run", "--runtime", "/nonexistent/runc", "busybox", "true"],
    ] {
        let o = e.sk(&args);
        assert_eq!(code(&o), 125, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("runtime"), "{err}");
    }
    // docker's words for a name that resolves to nothing, and nothing more.
    let o = e.sk(&["run", "--runtime", "no-such-runtime", "busybox", "true"]);
    assert_eq!(
        stderr(&o),
        "skiff: unknown or invalid runtime name: no-such-runtime\n"
    );
    // Nothing was left half-made.
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn runc_container_debug_is_refused_by_name() {
    let Some(env) = Env::new("altrt-debug") else {
        return;
    };
    let e = env.e();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "dbg",
        "--runtime",
        "runc",
        "busybox",
        "sleep",
        "1000",
    ]);
    let o = e.sk(&["debug", "dbg", "true"]);
    assert_ne!(code(&o), 0);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("runtime runc"), "{err}");
}

#[test]
fn runc_container_health_checks_and_restart_policy() {
    let Some(env) = Env::new("altrt-hc") else {
        return;
    };
    let e = env.e();
    // The monitor's probe runs through `runc exec`: unhealthy until the file exists.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--runtime",
        "runc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "busybox",
        "sh",
        "-c",
        "sleep 1; touch /tmp/ok; sleep 1000",
    ]);
    // on-failure:2 restarts the runc container twice, each run reaped with its code.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--runtime",
        "runc",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    let mut healthy = String::new();
    for _ in 0..100 {
        healthy = e.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
        if healthy == "healthy\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(healthy, "healthy\n");
    let mut rs = String::new();
    for _ in 0..100 {
        rs = e.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "rs",
        ]);
        if rs == "2 exited 1\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rs, "2 exited 1\n");
    assert_eq!(stdout(&e.sk(&["logs", "rs"])), "run\nrun\nrun\n");
    e.ok(&["rm", "-f", "hc", "rs"]);
    let root = state_root(e, "runc");
    assert!(
        runtime_states(&root).is_empty(),
        "{:?}",
        runtime_states(&root)
    );
}
