//! The docker-compatible container commands end to end: real containers from an image made with
//! `skiff import` (and, for the seed demo, pulled from a real `docker-registry` on 127.0.0.1), real
//! overlay mounts, monitors, cgroups under a per-test `skiff-test-*` parent, and SQLite state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::{bin, cgroup_parent_dirs, registry, stderr, stdout, EngineEnv};

/// The shared engine environment plus this suite's checks.
struct Env(EngineEnv);

impl std::ops::Deref for Env {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(EngineEnv::new("engine", |_| {}))
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    fn fmt(&self, name: &str, f: &str) -> String {
        self.ok(&["inspect", "-f", f, name]).trim().to_string()
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_parent_dirs(&self.cgroup)
    }

    /// Everything a removed container could leave behind.
    fn assert_no_leftovers(&self) {
        let root = self.root();
        let ids = self.ok(&["ps", "-aq"]);
        assert_eq!(ids.trim(), "", "containers left: {ids}");
        // A --rm monitor deletes the container's tree (renamed aside) right after it answers.
        let trash = || -> Vec<String> {
            std::fs::read_dir(root.join("containers"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !trash().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(trash(), Vec::<String>::new(), "container trees left");
        // Entries named by a container id (the runtime keeps e.g. its seccomp cache there too).
        let entries = |p: PathBuf| -> Vec<String> {
            std::fs::read_dir(&p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(entries(root.join("containers")), Vec::<String>::new());
        assert_eq!(entries(root.join("run/containers")), Vec::<String>::new());
        assert_eq!(entries(root.join("locks")), Vec::<String>::new());
        let left = entries(root.join("run/runtime"));
        // What a leftover runtime state says (and whether its init lives), to find the path
        // that left it.
        let detail: Vec<String> = left
            .iter()
            .map(|id| {
                let st =
                    std::fs::read_to_string(root.join("run/runtime").join(id).join("state.json"))
                        .unwrap_or_else(|e| format!("no state.json: {e}"));
                let files: Vec<String> = std::fs::read_dir(root.join("run/runtime").join(id))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                format!("{id}: files {files:?} state {st}")
            })
            .collect();
        assert!(left.is_empty(), "runtime state left: {detail:#?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(root.to_str().unwrap()),
            "mounts left under {}",
            root.display()
        );
        for d in self.cgroup_dirs() {
            let kids: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .collect();
            assert!(kids.is_empty(), "cgroups left in {}: {kids:?}", d.display());
        }
        let o = Command::new("sqlite3")
            .arg(root.join("skiff.db"))
            .arg("SELECT count(*) FROM containers")
            .output()
            .expect("sqlite3 (scripts/deps.sh) must be installed");
        assert_eq!(stdout(&o).trim(), "0", "database rows left: {}", stderr(&o));
    }
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn seed_demo_verbatim_with_auto_pull_from_a_registry() {
    let reg = registry();
    let src = Env::new();
    let image = format!("127.0.0.1:{}/alpine:latest", reg.port);
    src.ok(&["tag", "busybox:latest", &image]);
    src.ok(&["push", "-q", &image]);
    // A fresh root: `run` must pull the image itself.
    let env = Env::new();
    let skiff = format!("{} --root {}", bin("skiff").display(), env.root().display());
    let cg = &env.cgroup;
    // `script` gives `exec -it` a terminal. Its stdin is a pipe that stays open while the exec
    // runs: at EOF on stdin, script types an end-of-file byte into the session (with the
    // terminal in raw mode, as `exec -it` puts it, strace shows a NUL), which skiff forwards like
    // any typed key and the container's tty echoes as `^@` into the output under test.
    let script = format!(
        r#"set -e
{skiff} run --cgroup-parent={cg} -dit --name alpine {image} /bin/ash
ps -fp $({skiff} inspect -f '{{{{.State.Pid}}}}' alpine)
sleep 5 | script -qec "{skiff} exec -it alpine ps aux" /dev/null
ROOT_FS=$({skiff} inspect $({skiff} ps -q --filter "name=alpine") | jq '.[0].GraphDriver.Data.MergedDir' | sed 's/"//g')
ls $ROOT_FS/bin | grep ash
"#
    );
    let o = sh(&script);
    let out = stdout(&o);
    assert!(o.status.success(), "demo failed: {out}{}", stderr(&o));
    assert!(
        stderr(&o).contains("Unable to find image") && stderr(&o).contains("Pull complete"),
        "run did not auto-pull: {}",
        stderr(&o)
    );
    let lines: Vec<&str> = out.lines().collect();
    // ps -fp shows the container's shell on the host.
    assert!(lines.iter().any(|l| l.ends_with("/bin/ash")), "{out}");
    // In the container the shell is PID 1 and ps runs beside it.
    let pid1 = lines
        .iter()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no PID 1 line: {out}"));
    assert!(pid1.contains("/bin/ash"), "{pid1}");
    assert!(lines.iter().any(|l| l.contains("ps aux")), "{out}");
    assert_eq!(lines.last().map(|l| l.trim()), Some("ash"), "{out}");
    let v = env.inspect("alpine");
    assert_eq!(v["Name"], "/alpine");
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["Config"]["Tty"], true);
    assert_eq!(v["Config"]["OpenStdin"], true);
    env.ok(&["rm", "-f", "alpine"]);
    env.assert_no_leftovers();
}

#[test]
fn foreground_run_exit_codes_and_stdio() {
    let env = Env::new();
    let o = env.sk(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(code(&o), 3);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // Not found → 127, cannot invoke → 126, engine errors → 125.
    let o = env.sk(&["run", "--rm", "busybox", "no-such-program"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-program"), "{}", stderr(&o));
    let o = env.sk(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    let o = env.sk(&["run", "--rm", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).starts_with("skiff: invalid restart policy"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&["run", "--pull", "never", "nosuchimage"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("No such image"), "{}", stderr(&o));
    // stdin with -i reaches the container and closes with ours.
    let mut c = env
        .cmd(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "piped\ndone\n");
    // Signals sent to a foreground run reach the container (--sig-proxy).
    let mut c = env
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 6];
    use std::io::Read;
    c.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    assert_eq!(c.wait().unwrap().code(), Some(7));
    // -t through a real pty.
    let o = sh(&format!(
        "script -qec '{} --root {} run --cgroup-parent={} --rm -t busybox tty' /dev/null",
        bin("skiff").display(),
        env.root().display(),
        env.cgroup
    ));
    assert!(
        stdout(&o).contains("/dev/pts/0"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    env.assert_no_leftovers();
}

#[test]
fn lifecycle_create_start_stop_restart_pause_rename_rm() {
    let env = Env::new();
    let id = env
        .ok(&[
            "create",
            "--name",
            "web",
            "-l",
            "tier=front",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(env.fmt("web", "{{.State.Status}}"), "created");
    assert!(env.ok(&["ps", "-a"]).contains("Created"));
    assert_eq!(
        env.ok(&["ps", "-q"]).trim(),
        "",
        "created containers are not running"
    );
    // Name conflict, docker's message; `create` exits 1 for what the daemon refuses (docker 28's
    // CLI; `run` says 125).
    let o = env.sk(&["create", "--name", "web", "busybox"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("The container name \"/web\" is already in use by container"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.ok(&["start", "web"]).trim(), "web");
    let v = env.inspect("web");
    assert_eq!(v["State"]["Status"], "running");
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"][0], "1000");
    assert_eq!(v["Config"]["Labels"]["tier"], "front");
    let merged = v["GraphDriver"]["Data"]["MergedDir"].as_str().unwrap();
    assert!(Path::new(merged).join("bin/busybox").exists());
    assert!(env.ok(&["ps"]).contains("Up "));
    // Running containers cannot be removed without -f.
    let o = env.sk(&["rm", "web"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("container is running"),
        "{}",
        stderr(&o)
    );
    env.ok(&["pause", "web"]);
    assert_eq!(
        env.fmt("web", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    assert!(env.ok(&["ps"]).contains("(Paused)"));
    env.ok(&["unpause", "web"]);
    assert_eq!(env.fmt("web", "{{.State.Status}}"), "running");
    env.ok(&["rename", "web", "web2"]);
    assert_eq!(env.fmt(&id[..12], "{{.Name}}"), "/web2");
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL after -t.
    let t = Instant::now();
    assert_eq!(env.ok(&["stop", "-t", "1", "web2"]).trim(), "web2");
    assert!(t.elapsed() < Duration::from_secs(8));
    assert_eq!(
        env.fmt(
            "web2",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}"
        ),
        "exited 137 false"
    );
    assert!(env.ok(&["ps", "-a"]).contains("Exited (137)"));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(merged), "stopped containers are unmounted");
    // Start again; restart; kill with a signal; wait reports the code.
    env.ok(&["start", "web2"]);
    env.ok(&["restart", "-t", "0", "web2"]);
    assert_eq!(env.fmt("web2", "{{.State.Status}}"), "running");
    env.ok(&["kill", "-s", "KILL", "web2"]);
    assert_eq!(env.ok(&["wait", "web2"]).trim(), "137");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "trap",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while :; do sleep 0.05; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["kill", "-s", "USR1", "trap"]);
    assert_eq!(env.ok(&["wait", "trap"]).trim(), "9");
    env.ok(&["rm", "trap"]);
    let o = env.sk(&["kill", "web2"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    // Not found errors name the container.
    let o = env.sk(&["stop", "nosuch"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "skiff: No such container: nosuch\n");
    env.ok(&["rm", "web2"]);
    // Lifecycle events land in the event log with docker's attributes.
    let ev = env.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        &format!("container={id}"),
    ]);
    let actions: Vec<&str> = ev
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for a in [
        "create", "start", "pause", "unpause", "rename", "kill", "die", "stop", "destroy",
    ] {
        assert!(actions.contains(&a), "no {a} event in {ev}");
    }
    assert!(ev.contains("exitCode=137"), "{ev}");
    env.assert_no_leftovers();
}

#[test]
fn logs_with_tail_timestamps_follow_and_rotation() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three",
    ]);
    assert_eq!(env.ok(&["wait", "lg"]).trim(), "0");
    let o = env.sk(&["logs", "lg"]);
    assert_eq!(stdout(&o), "one\nthree\n");
    assert_eq!(stderr(&o), "two\n");
    assert_eq!(env.ok(&["logs", "--tail", "1", "lg"]), "three\n");
    let ts = env.ok(&["logs", "-t", "--tail", "1", "lg"]);
    assert!(ts.starts_with("20") && ts.contains("Z three"), "{ts}");
    assert_eq!(env.ok(&["logs", "--since", "2099-01-01", "lg"]), "");
    assert_eq!(env.ok(&["logs", "--until", "2000-01-01", "lg"]), "");
    assert_eq!(env.ok(&["logs", "--since", "1h", "lg"]), "one\nthree\n");
    // The log file is docker's json-file format.
    let path = env.fmt("lg", "{{.LogPath}}");
    let first = std::fs::read_to_string(&path).unwrap();
    let rec: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(rec["log"], "one\n");
    assert_eq!(rec["stream"], "stdout");
    // Follow until the container exits.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "fo",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
    ]);
    let o = env.sk(&["logs", "-f", "fo"]);
    assert_eq!(stdout(&o), "tick1\ntick2\ntick3\n");
    // Rotation keeps at most max-file files of at most max-size bytes.
    env.ok(&[
        "run",
        "--name",
        "ro",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done",
    ]);
    let path = PathBuf::from(env.fmt("ro", "{{.LogPath}}"));
    assert!(std::fs::metadata(&path).unwrap().len() <= 2048);
    assert!(path.with_extension("log.1").exists());
    assert!(!path.with_extension("log.2").exists());
    let out = env.ok(&["logs", "ro"]);
    assert!(out.ends_with("line199\n"), "{out}");
    assert!(!out.starts_with("line0\n"), "old lines were rotated away");
    // --log-driver none: a foreground run still prints, nothing is kept, `logs` refuses (exit 1,
    // docker's message); `local` keeps logs with its own defaults and reports its type.
    let o = env.ok(&[
        "run",
        "--name",
        "nolog",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "shown",
    ]);
    assert_eq!(o, "shown\n");
    let o = env.sk(&["logs", "nolog"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&o)
    );
    let path = PathBuf::from(env.fmt("nolog", "{{.LogPath}}"));
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), 0);
    assert_eq!(env.fmt("nolog", "{{.HostConfig.LogConfig.Type}}"), "none");
    env.ok(&[
        "run",
        "--name",
        "lolog",
        "--log-driver",
        "local",
        "busybox",
        "echo",
        "kept",
    ]);
    assert_eq!(env.ok(&["logs", "lolog"]), "kept\n");
    assert_eq!(env.fmt("lolog", "{{.HostConfig.LogConfig.Type}}"), "local");
    // --runtime: the built-in one by name, another runtime (tests/tests/altruntime.rs), or a
    // clear refusal (125), never a silent substitute.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--runtime",
            "skiff-runtime",
            "busybox",
            "echo",
            "rt"
        ]),
        "rt\n"
    );
    let o = env.sk(&["run", "--rm", "--runtime", "no-such-rt", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("unknown or invalid runtime name: no-such-rt"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&["run", "--log-driver", "syslog", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("log driver syslog"), "{}", stderr(&o));
}

/// `skiff exec`'s fast path: the CLI runs once and hands the step into the container to the
/// static `skiff-exec` helper beside it, started from a read-only view (`-D` names the path).
/// Everything an exec takes still applies through it: -e, -u, -w, -d, -i, the command's exit
/// code, an error from inside the container (a missing working directory) with its message and
/// code. Without the helper beside it, `skiff` falls back to re-executing itself sealed.
#[test]
fn exec_enters_through_the_helper() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "hx", "busybox", "sleep", "1000"]);
    let o = env.sk(&[
        "-D",
        "exec",
        "-e",
        "A=1",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "hx",
        "sh",
        "-c",
        "echo $A $(id -u) $(pwd)",
    ]);
    assert_eq!(stdout(&o), "1 65534 /tmp\n", "{}", stderr(&o));
    let through = "exec: entering the container through ";
    assert!(
        stderr(&o).contains(through) && stderr(&o).contains("skiff-exec"),
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&env.sk(&["exec", "hx", "sh", "-c", "exit 5"])), 5);
    let o = env.sk(&["exec", "-w", "/nonexistent", "hx", "true"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("chdir \"/nonexistent\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&env.sk(&["exec", "hx", "nosuchcmd"])), 127);
    assert_eq!(code(&env.sk(&["exec", "hx", "/etc"])), 126);
    // -d: the waiter starts it through the helper too; -i feeds stdin.
    env.ok(&["exec", "-d", "hx", "sh", "-c", "echo bg > /tmp/bg2"]);
    let end = Instant::now() + Duration::from_secs(10);
    while env
        .sk(&["exec", "hx", "test", "-f", "/tmp/bg2"])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < end, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = env
        .cmd(&["exec", "-i", "hx", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"in\n").unwrap();
    assert_eq!(stdout(&c.wait_with_output().unwrap()), "in\n");
    // A copy of skiff alone: the sealed re-exec of itself, same result.
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("skiff");
    std::fs::copy(bin("skiff"), &alone).unwrap();
    let o = Command::new(&alone)
        .arg("--root")
        .arg(env.root())
        .args(["-D", "exec", "-u", "nobody", "hx", "id", "-u"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "65534\n", "{}", stderr(&o));
    assert!(!stderr(&o).contains(through), "{}", stderr(&o));
    env.ok(&["rm", "-f", "hx"]);
}

#[test]
fn exec_env_user_workdir_and_exit_codes() {
    let env = Env::new();
    env.ok(&[
        "run", "-d", "--name", "ex", "-e", "FOO=bar", "busybox", "sleep", "1000",
    ]);
    assert_eq!(env.ok(&["exec", "ex", "sh", "-c", "echo $FOO"]), "bar\n");
    assert_eq!(
        env.ok(&["exec", "-e", "FOO=baz", "ex", "sh", "-c", "echo $FOO"]),
        "baz\n"
    );
    assert_eq!(
        env.ok(&["exec", "-u", "nobody", "ex", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(env.ok(&["exec", "-w", "/tmp", "ex", "pwd"]), "/tmp\n");
    // After the image (run) or the container (exec) every word is the command's, even one that
    // looks like a flag of skiff's (`-c` is --cpu-shares, `-t` --tty), as with docker.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            "busybox",
            "-c",
            "echo e $0"
        ]),
        "e sh\n"
    );
    // `exec ex -w …`: "-w" is the program (not found: 127), not --workdir.
    assert_eq!(code(&env.sk(&["exec", "ex", "-w", "/tmp"])), 127);
    assert_eq!(code(&env.sk(&["exec", "ex", "sh", "-c", "exit 7"])), 7);
    let o = env.sk(&["exec", "ex", "nosuchcmd"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    let o = env.sk(&["exec", "ex", "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    env.ok(&["exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.ok(&["exec", "ex", "cat", "/tmp/bg"]), "bg\n");
    // -i feeds stdin.
    let mut c = env
        .cmd(&["exec", "-i", "ex", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"in\n").unwrap();
    assert_eq!(stdout(&c.wait_with_output().unwrap()), "in\n");
    // top lists the container's processes; stats reads its cgroup.
    let top = env.ok(&["top", "ex"]);
    assert!(
        top.starts_with("UID") && top.contains("sleep 1000"),
        "{top}"
    );
    let stats = env.ok(&["stats", "--no-stream", "ex"]);
    assert!(stats.starts_with("CONTAINER ID"), "{stats}");
    assert!(stats.contains(" ex ") && stats.contains("iB / "), "{stats}");
    env.ok(&["stop", "-t", "0", "ex"]);
    let o = env.sk(&["exec", "ex", "true"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
}

#[test]
fn ps_filters_formats_and_inspect_templates() {
    let env = Env::new();
    env.ok(&[
        "run", "-d", "--name", "a1", "-l", "k=v", "busybox", "sleep", "1000",
    ]);
    env.ok(&["run", "--name", "b1", "busybox", "true"]);
    env.ok(&["create", "--name", "c1", "-l", "k=w", "busybox"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&a).lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["a1"]);
    assert_eq!(names(&["-a"]), ["a1", "b1", "c1"]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), ["b1"]);
    assert_eq!(names(&["-a", "--filter", "status=created"]), ["c1"]);
    assert_eq!(names(&["-a", "--filter", "label=k"]), ["a1", "c1"]);
    assert_eq!(names(&["-a", "--filter", "label=k=w"]), ["c1"]);
    assert_eq!(names(&["-a", "--filter", "name=b"]), ["b1"]);
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox"]),
        ["a1", "b1", "c1"]
    );
    assert_eq!(
        names(&["-a", "--filter", "ancestor=other"]),
        Vec::<String>::new()
    );
    let id = env.fmt("b1", "{{.Id}}");
    assert_eq!(
        names(&["-a", "--filter", &format!("id={}", &id[..10])]),
        ["b1"]
    );
    assert_eq!(names(&["-a", "-n", "1"]), ["c1"]);
    let o = env.sk(&["ps", "--filter", "status=bogus"]);
    assert_ne!(code(&o), 0);
    // Default table, -q, --no-trunc, json, table templates.
    let t = env.ok(&["ps", "-a"]);
    let header = t.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(t.contains("Exited (0)"), "{t}");
    assert!(env.ok(&["ps", "-aq"]).lines().all(|l| l.len() == 12));
    assert!(env
        .ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .all(|l| l.len() == 64));
    for line in env.ok(&["ps", "-a", "--format", "{{json .}}"]).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["Names"].is_string() && v["Status"].is_string() && v["ID"].is_string());
    }
    let t = env.ok(&["ps", "--format", "table {{.ID}}\t{{.Names}}"]);
    assert!(t.starts_with("CONTAINER ID   NAMES\n"), "{t}");
    let s = env.ok(&["ps", "-s", "--format", "{{.Size}}"]);
    assert!(s.contains("(virtual"), "{s}");
    // inspect templates, and inspect finds images too.
    assert_eq!(
        env.fmt("a1", "{{.Config.Image}} {{json .Config.Cmd}}"),
        r#"busybox ["sleep","1000"]"#
    );
    assert_eq!(env.fmt("a1", "{{index .Config.Labels \"k\"}}"), "v");
    assert_eq!(env.fmt("a1", "{{join .Args \",\"}}"), "1000");
    assert_eq!(env.fmt("a1", "{{upper .State.Status}}"), "RUNNING");
    let img = env.ok(&["inspect", "busybox"]);
    assert!(img.contains("RootFS"), "{img}");
    let o = env.sk(&["inspect", "nothing-here"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("No such object: nothing-here"));
    let o = env.sk(&["container", "inspect", "busybox"]);
    assert_eq!(code(&o), 1);
    let v = env.inspect("a1");
    for k in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Name",
        "Config",
        "HostConfig",
        "Mounts",
        "GraphDriver",
        "NetworkSettings",
    ] {
        assert!(!v[k].is_null(), "inspect lacks {k}: {v}");
    }
    for k in [
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "Error",
        "StartedAt",
        "FinishedAt",
    ] {
        assert!(!v["State"][k].is_null(), "State lacks {k}");
    }
    assert!(v["Image"].as_str().unwrap().starts_with("sha256:"));
    for k in ["LowerDir", "UpperDir", "MergedDir", "WorkDir"] {
        assert!(v["GraphDriver"]["Data"][k].is_string());
    }
    // Images in use by containers are kept.
    let o = env.sk(&["rmi", "busybox"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is using its referenced image"),
        "{}",
        stderr(&o)
    );
    env.ok(&["image", "prune", "-a", "-f"]);
    env.ok(&["inspect", "--type", "image", "busybox"]);
    env.ok(&["container", "prune", "-f"]);
    assert_eq!(names(&["-a"]), ["a1"]);
}

#[test]
fn mounts_volumes_tmpfs_readonly_and_networks() {
    let env = Env::new();
    let host = env.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host").unwrap();
    let bind = format!("{}:/data", host.display());
    assert_eq!(
        env.ok(&["run", "--rm", "-v", &bind, "busybox", "cat", "/data/f"]),
        "from host"
    );
    let bind_ro = format!("{}:/data:ro", host.display());
    let o = env.sk(&["run", "--rm", "-v", &bind_ro, "busybox", "touch", "/data/x"]);
    assert_eq!(code(&o), 1);
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    assert_eq!(
        env.ok(&["run", "--rm", "--mount", &m, "busybox", "cat", "/m/f"]),
        "from host"
    );
    // A named volume outlives its containers.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/v",
        "busybox",
        "sh",
        "-c",
        "echo kept > /v/k",
    ]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "vol1:/v", "busybox", "cat", "/v/k"]),
        "kept\n"
    );
    // Volumes are the volume store's: listed, and protected while a container uses them.
    assert!(env.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "vol1"));
    env.ok(&["create", "--name", "holder", "-v", "vol1:/v", "busybox"]);
    let o = env.sk(&["volume", "rm", "vol1"]);
    assert_ne!(code(&o), 0, "a used volume must not be removable");
    env.ok(&["rm", "holder"]);
    env.ok(&["volume", "rm", "vol1"]);
    // --init runs skiff's init as PID 1.
    let c = env.ok(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"]);
    assert!(c.contains("init"), "{c:?}");
    // An anonymous volume is removed by rm -v.
    env.ok(&["run", "--name", "anon", "-v", "/anon", "busybox", "true"]);
    let v = env.inspect("anon");
    let src = v["Mounts"][0]["Source"].as_str().unwrap().to_string();
    assert_eq!(v["Mounts"][0]["Type"], "volume");
    assert!(Path::new(&src).is_dir(), "{src}");
    env.ok(&["rm", "-v", "anon"]);
    assert!(!Path::new(&src).exists());
    // tmpfs and read-only root.
    let t = env.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        "busybox",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts",
    ]);
    assert!(t.contains("tmpfs"), "{t}");
    let o = env.sk(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // Per-container hostname, hosts, resolv.conf; none and host networks.
    assert_eq!(
        env.ok(&["run", "--rm", "-h", "box", "busybox", "hostname"]),
        "box\n"
    );
    let hosts = env.ok(&["run", "--rm", "-h", "box", "busybox", "cat", "/etc/hosts"]);
    assert!(hosts.contains("127.0.0.1\tbox"), "{hosts}");
    assert!(env
        .ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"])
        .contains("nameserver"));
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net"
        ]),
        "lo\n"
    );
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    let ctr_links = env.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(ctr_links.lines().count(), host_links);
    // Environment and working directory from flags.
    let envf = env.dir.path().join("envfile");
    std::fs::write(&envf, "# comment\nA=1\nB=2\n").unwrap();
    let out = env.ok(&[
        "run",
        "--rm",
        "--env-file",
        envf.to_str().unwrap(),
        "-e",
        "B=3",
        "-w",
        "/work",
        "busybox",
        "sh",
        "-c",
        "echo $A$B; pwd",
    ]);
    assert_eq!(out, "13\n/work\n");
    assert_eq!(
        env.ok(&["run", "--rm", "-u", "65534:65534", "busybox", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "hi"]),
        "hi\n"
    );
    env.assert_no_leftovers();
}

#[test]
fn restart_policies_and_attach() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = env.fmt("of", "{{.State.Status}} {{.RestartCount}}");
        if s == "exited 2" {
            break;
        }
        assert!(Instant::now() < deadline, "on-failure:2 ended as {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.fmt("of", "{{.State.ExitCode}}"), "1");
    assert_eq!(
        env.fmt("of", "{{.HostConfig.RestartPolicy.Name}}"),
        "on-failure"
    );
    // always restarts a container that exits, until it is stopped.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.fmt("al", "{{.RestartCount}}") == "0" {
        assert!(Instant::now() < deadline, "always never restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.ok(&["stop", "-t", "1", "al"]);
    let n = env.fmt("al", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        env.fmt("al", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {n}")
    );
    // attach receives output and the exit code; its stdin reaches the container.
    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "at",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; exit 4",
    ]);
    let mut c = env
        .cmd(&["attach", "at"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut w = c.stdin.take().unwrap();
    w.write_all(b"hello\n").unwrap();
    let o = c.wait_with_output().unwrap();
    drop(w);
    assert_eq!(stdout(&o), "got hello\n");
    assert_eq!(code(&o), 4);
    // start -a streams and returns the exit code.
    env.ok(&[
        "create",
        "--name",
        "sa",
        "busybox",
        "sh",
        "-c",
        "echo started; exit 5",
    ]);
    let o = env.sk(&["start", "-a", "sa"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (5, "started\n"));
    let o = env.sk(&["start", "-a", "sa"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (5, "started\n"),
        "a stopped container starts again"
    );
}

/// docker's CLI exits 125 on a usage error (clap's default is 2); help is not an error.
#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let env = Env::new();
    // docker 28: bad flags and values exit 125; an unknown command or missing arguments exit 1.
    // Each says what is wrong on its first line, then the usage and where to read more.
    #[rustfmt::skip]
    let table: &[(&[&str], i32, &str, &str)] = &[
        (&["run", "--bogus", "busybox", "true"], 125, "skiff: unknown flag: --bogus", "Run 'skiff run --help' for more information"),
        (&["ps", "-Z"], 125, "skiff: unknown shorthand flag: 'Z' in -Z", "Run 'skiff ps --help' for more information"),
        (&["ps", "-n", "abc"], 125, r#"skiff: invalid argument "abc" for "-n, --last" flag: "#, "Run 'skiff ps --help' for more information"),
        (&["run"], 1, "skiff: 'skiff run' requires at least 1 argument", "See 'skiff run --help' for more information"),
        (&["tag", "x"], 1, "skiff: 'skiff tag' requires exactly 2 arguments", "See 'skiff tag --help' for more information"),
        (&["no-such-command"], 1, "skiff: unknown command: skiff no-such-command", "Run 'skiff --help' for more information"),
        (&["volume", "bogus"], 1, "skiff: unknown command: skiff volume bogus", "Run 'skiff volume --help' for more information"),
    ];
    for (args, want, first, last) in table {
        let o = env.sk(args);
        let err = stderr(&o);
        assert_eq!(code(&o), *want, "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with(first), "{args:?}: {err}");
        assert_eq!(lines.last(), Some(last), "{args:?}: {err}");
        assert!(lines.len() <= 5, "{args:?}: not clap's block: {err}");
        assert!(
            !err.contains("error:") && !err.contains("tip:"),
            "{args:?}: {err}"
        );
    }
    for args in [
        &["run", "--help"][..],
        &["ps", "--help"][..],
        &["--version"][..],
        &["volume"][..],
    ] {
        let o = env.sk(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty(), "{args:?} prints to stdout");
    }
}

#[test]
fn run_rm_uses_a_volatile_overlay_and_trees_are_swept() {
    let env = Env::new();
    let count = "grep -c volatile /proc/self/mountinfo || true";
    let o = env.ok(&["run", "--rm", "busybox", "sh", "-c", count]);
    assert_eq!(o.trim(), "1", "a --rm container's overlay is volatile");
    let o = env.ok(&["run", "--name", "kept", "busybox", "sh", "-c", count]);
    assert_eq!(o.trim(), "0", "a kept container's overlay syncs");
    // The kept container starts again on the same upper and work directories.
    env.ok(&["start", "kept"]);
    assert_eq!(env.ok(&["wait", "kept"]).trim(), "0");
    env.ok(&["rm", "kept"]);
    // A tree whose removal was interrupted (the process killed after the rename) is swept.
    let orphan = env.root().join("containers/.removing-0123456789abcdef");
    std::fs::create_dir_all(orphan.join("upper/etc")).unwrap();
    std::fs::write(orphan.join("upper/etc/hosts"), "x").unwrap();
    env.ok(&["ps", "-a"]);
    assert!(!orphan.exists(), "ps sweeps interrupted removals");
    env.assert_no_leftovers();
}

/// `run` starts the monitor before the container exists; when the create fails the monitor must
/// go away with it.
#[test]
fn a_failed_run_leaves_no_monitor() {
    let env = Env::new();
    env.ok(&["create", "--name", "taken", "busybox", "true"]);
    for args in [
        &["run", "--name", "taken", "busybox", "true"][..],
        &["run", "-d", "--name", "taken", "busybox", "true"][..],
        &["run", "--rm", "busybox", "/no/such/program"][..],
    ] {
        let o = env.sk(args);
        assert!(!o.status.success(), "{args:?} succeeded");
    }
    let root = env.root();
    let mine = || -> Vec<String> {
        let o = Command::new("pgrep")
            .args(["-af", "skiff.monitor"])
            .output()
            .unwrap();
        stdout(&o)
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()))
            .map(str::to_string)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mine().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mine(), Vec::<String>::new(), "monitors left");
    env.ok(&["rm", "taken"]);
    env.assert_no_leftovers();
}

#[test]
fn fifty_parallel_run_rm_leave_nothing_behind() {
    let env = Env::new();
    let children: Vec<Child> = (0..50)
        .map(|i| {
            env.cmd(&["run", "--rm", "busybox", "sh", "-c", &format!("echo {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "run {i}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(stdout(&o), format!("{i}\n"));
    }
    env.assert_no_leftovers();
}

fn monitor_of(env: &Env, name: &str) -> i32 {
    let pid = env.fmt(name, "{{.State.Pid}}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn killed_monitors_and_clis_leave_a_consistent_state() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "mo", "busybox", "sleep", "1000"]);
    let mon = monitor_of(&env, "mo");
    let cmdline = std::fs::read_to_string(format!("/proc/{mon}/cmdline")).unwrap();
    assert!(cmdline.contains("monitor"), "{cmdline}");
    let ctr_pid: i32 = env.fmt("mo", "{{.State.Pid}}").parse().unwrap();
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(mon, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        env.fmt("mo", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !Path::new(&format!("/proc/{ctr_pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{ctr_pid}/cmdline"))
                .unwrap_or_default()
                .is_empty(),
        "the orphaned container was killed"
    );
    env.ok(&["start", "mo"]);
    assert_eq!(env.fmt("mo", "{{.State.Status}}"), "running");
    env.ok(&["rm", "-f", "mo"]);
    // kill -9 of `skiff run` at random points.
    for i in 0..12u64 {
        let mut c = env
            .cmd(&["run", "--rm", "busybox", "sh", "-c", "sleep 0.3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + (i * 37) % 160));
        let _ = c.kill();
        let _ = c.wait();
        let mut d = env
            .cmd(&["run", "-d", "busybox", "sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3 + (i * 53) % 120));
        let _ = d.kill();
        let _ = d.wait();
    }
    std::thread::sleep(Duration::from_millis(800));
    // Every container is in a state that matches reality.
    let out = env.ok(&["ps", "-a", "--format", "{{.ID}} {{.State}}"]);
    for l in out.lines() {
        let (id, state) = l.split_once(' ').unwrap();
        let v = env.inspect(id);
        match state {
            "running" => {
                let pid = v["State"]["Pid"].as_i64().unwrap();
                assert!(Path::new(&format!("/proc/{pid}")).exists(), "{l}");
            }
            "created" | "exited" => assert_eq!(v["State"]["Pid"], 0, "{l}"),
            other => panic!("unexpected state {other} for {id}"),
        }
    }
    for id in out.lines().filter_map(|l| l.split_whitespace().next()) {
        env.ok(&["rm", "-f", id]);
    }
    env.assert_no_leftovers();
}

#[test]
fn memory_limit_oom_is_recorded() {
    let env = Env::new();
    let o = env.sk(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(code(&o), 137, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        env.fmt("oom", "{{.State.OOMKilled}} {{.HostConfig.Memory}}"),
        "true 8388608"
    );
    // Capabilities, ulimits, pids limits and security options from flags reach the process.
    let o = env.sk(&[
        "run",
        "--rm",
        "--cap-drop",
        "chown",
        "busybox",
        "chown",
        "65534",
        "/tmp",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    env.ok(&["run", "--rm", "busybox", "chown", "65534", "/tmp"]);
    let n = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=42:42",
        "busybox",
        "sh",
        "-c",
        "ulimit -n",
    ]);
    assert_eq!(n, "42\n");
    let o = env.sk(&[
        "run",
        "--rm",
        "--pids-limit",
        "3",
        "busybox",
        "sh",
        "-c",
        "sleep 1 & sleep 1 & sleep 1 & sleep 1 & wait",
    ]);
    assert!(
        stderr(&o).contains("fork") || stderr(&o).contains("Resource"),
        "pids limit: {}",
        stderr(&o)
    );
    let status = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        env.ok(&a)
    };
    let field = |s: &str, k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        field(&status(&[]), "CapEff:"),
        "00000000a80425fb",
        "docker's default set"
    );
    let all = field(&status(&["--privileged"]), "CapEff:");
    let all = u64::from_str_radix(&all, 16).unwrap();
    assert!(
        all & (1 << 21) != 0,
        "privileged has CAP_SYS_ADMIN: {all:x}"
    );
    assert_eq!(
        field(
            &status(&["--security-opt", "no-new-privileges"]),
            "NoNewPrivs:"
        ),
        "1"
    );
    assert_eq!(field(&status(&[]), "NoNewPrivs:"), "0");
}

#[test]
fn without_root_a_clear_error() {
    let env = Env::new();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin("skiff"))
        .arg("--root")
        .arg(env.root())
        .arg("ps")
        .output()
        .unwrap();
    // Rootless skiff keeps a store of its own: root's is refused before any namespace is made.
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("is not accessible to uid 65534"),
        "{}",
        stderr(&o)
    );
}

/// `run --blkio-weight`: out of range is an error; on a host whose io schedulers offer weights it
/// reaches the container's blkio cgroup; on one without (no BFQ/CFQ) it is discarded with docker's
/// warning and the container still runs, with `HostConfig.BlkioWeight` 0 as docker records it.
#[test]
fn blkio_weight_applied_or_discarded_with_dockers_warning() {
    let env = Env::new();
    let offered = skiff_cgroups::Layout::probe().unwrap().offers_io_weight();
    // dockerd discards an unsupported weight before it looks at the range.
    let o = env.sk(&["run", "--rm", "--blkio-weight", "5", "busybox", "true"]);
    if offered {
        assert_eq!(code(&o), 125, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("range of blkio weight is from 10 to 1000"),
            "{}",
            stderr(&o)
        );
    } else {
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stderr(&o).contains("Weight discarded."), "{}", stderr(&o));
    }
    let o = env.sk(&[
        "run",
        "--name",
        "bw",
        "--blkio-weight",
        "300",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/blkio/blkio.bfq.weight /sys/fs/cgroup/blkio/blkio.weight 2>/dev/null; true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let recorded = env.fmt("bw", "{{.HostConfig.BlkioWeight}}");
    if offered {
        assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
        assert_eq!(recorded, "300");
        assert!(stdout(&o).contains("300"), "weight inside: {}", stdout(&o));
    } else {
        assert!(
            stderr(&o).contains(
                "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
            ),
            "{}",
            stderr(&o)
        );
        assert_eq!(recorded, "0");
        skiff_tests::skip("blkio weight inside the container: no io scheduler here offers weights");
    }
    env.ok(&["rm", "bw"]);
}

/// The resource flags docker users type, each checked from inside the container (its own cgroup
/// files, /proc, /dev) and in `inspect` under docker's HostConfig names.
#[test]
fn resource_and_device_flags_apply_inside_the_container() {
    let env = Env::new();
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    // A block device to throttle: the first whole disk in /sys/block that has a /dev node.
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .map(|n| format!("/dev/{n}"))
        .find(|p| Path::new(p).exists());
    let mut args: Vec<String> = [
        "run",
        "--rm",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "-c",
        "512",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--oom-score-adj",
        "300",
        "--shm-size",
        "16m",
        "--sysctl",
        "kernel.shmmax=1000000",
        "--group-add",
        "nogroup",
        "--group-add",
        "1234",
        "--device",
        "/dev/zero:/dev/myzero",
        "--device",
        "/dev/loop-control:/dev/myctl:r",
        "--device-cgroup-rule",
        "c 1:9 rw",
        "--kernel-memory",
        "64m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if memsw {
        args.extend(["--memory-swap".into(), "128m".into()]);
    } else {
        skiff_tests::skip("--memory-swap read-back: swap accounting is off on this host");
    }
    if let Some(d) = &disk {
        args.extend(["--device-read-bps".into(), format!("{d}:1mb")]);
    } else {
        skiff_tests::skip("--device-read-bps: no block device node here");
    }
    let script = "cd /sys/fs/cgroup; \
        echo res=$(cat memory/memory.soft_limit_in_bytes); \
        echo swp=$(cat memory/memory.swappiness); \
        echo oom=$(grep oom_kill_disable memory/memory.oom_control); \
        echo msw=$(cat memory/memory.memsw.limit_in_bytes 2>/dev/null); \
        echo shares=$(cat cpu/cpu.shares) period=$(cat cpu/cpu.cfs_period_us) quota=$(cat cpu/cpu.cfs_quota_us); \
        echo cpus=$(cat cpuset/cpuset.cpus) mems=$(cat cpuset/cpuset.mems); \
        echo adj=$(cat /proc/self/oom_score_adj); \
        echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}'); \
        echo shmmax=$(cat /proc/sys/kernel/shmmax); \
        echo groups=$(id -G); \
        echo zero=$(head -c 3 /dev/myzero | wc -c); \
        echo r=$( (: < /dev/myctl) 2>/dev/null && echo ok || echo denied); \
        echo w=$( (: > /dev/myctl) 2>/dev/null && echo ok || echo denied); \
        echo bps=$(cat blkio/blkio.throttle.read_bps_device)";
    args.extend(["busybox".into(), "sh".into(), "-c".into(), script.into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = env.sk(&refs);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out} {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("WARNING: Specifying a kernel memory limit is deprecated"),
        "{err}"
    );
    for want in [
        "res=33554432",
        "swp=10",
        "oom=oom_kill_disable 1",
        "shares=512 period=50000 quota=25000",
        "cpus=0 mems=0",
        "adj=300",
        "shm=16384",
        "shmmax=1000000",
        "zero=3",
        "r=ok",
        "w=denied",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    let groups = out.lines().find(|l| l.starts_with("groups=")).unwrap();
    assert!(
        groups.contains("65534") && groups.contains("1234"),
        "{groups}"
    );
    if memsw {
        assert!(out.contains("msw=134217728"), "{out}");
    }
    if let Some(d) = &disk {
        let rdev = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(d).unwrap().rdev()
        };
        let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
        assert!(out.contains(&format!("bps={ma}:{mi} 1048576")), "{out}");
    }
    // Kept in inspect under docker's names.
    env.ok(&[
        "create",
        "--name",
        "hc",
        "--memory-reservation",
        "32m",
        "--cpuset-cpus",
        "0",
        "--pid",
        "host",
        "--ipc",
        "none",
        "--shm-size",
        "16m",
        "--annotation",
        "a.b=c",
        "--device",
        "/dev/zero",
        "busybox",
        "true",
    ]);
    let hc = &env.inspect("hc")["HostConfig"];
    assert_eq!(hc["MemoryReservation"], 33554432);
    assert_eq!(hc["CpusetCpus"], "0");
    assert_eq!(hc["PidMode"], "host");
    assert_eq!(hc["IpcMode"], "none");
    assert_eq!(hc["ShmSize"], 16777216);
    assert_eq!(hc["Annotations"]["a.b"], "c");
    assert_eq!(hc["Devices"][0]["PathOnHost"], "/dev/zero");
    assert_eq!(hc["Devices"][0]["CgroupPermissions"], "rwm");
    env.ok(&["rm", "hc"]);
    // Bad values: one line naming the flag, exit 125, nothing recorded.
    for bad in [
        &["--memory-swap", "32m", "-m", "64m"][..],
        &["--memory-swappiness", "101"][..],
        &["--cpu-period", "10"][..],
        &["--cpus", "1", "--cpu-quota", "50000"][..],
        &["--cpuset-cpus", "0-999"][..],
        &["--oom-score-adj", "-1001"][..],
        &["--shm-size", "-1"][..],
        &["--device", "/etc/passwd"][..],
        &["--device-cgroup-rule", "x 1:2 r"][..],
        &["--pid", "container:nope"][..],
        &["--uts", "host", "-h", "name"][..],
        &["--userns", "remap"][..],
        &["--userns", "keep-id"][..],
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(bad);
        a.extend(["busybox", "true"]);
        let o = env.sk(&a);
        assert_eq!(code(&o), 125, "{bad:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim().lines().count(),
            1,
            "{bad:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// `--pid`, `--ipc` and `--uts`: the host's namespaces, another container's, or none.
#[test]
fn namespace_modes_host_container_and_none() {
    let env = Env::new();
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    let o = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "cat",
        "/proc/1/comm",
    ]);
    assert_eq!(o, host_init);
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = env.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    assert_eq!(o.trim(), host_name.trim());
    let o = env.ok(&[
        "run",
        "--rm",
        "--ipc",
        "none",
        "busybox",
        "sh",
        "-c",
        "grep -c ' /dev/shm ' /proc/mounts || true",
    ]);
    assert_eq!(o.trim(), "0");
    // --network none: a namespace of its own whose loopback is up, as docker's.
    let o = env.ok(&[
        "run", "--rm", "--network", "none", "busybox", "sh", "-c",
        "ip -o link show | grep -v ' lo:' | wc -l; ping -c 1 -W 5 127.0.0.1 | grep -c '1 packets received'",
    ]);
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "1"], "{o}");
    // --ipc host: the host's /dev/shm.
    let host_shm = std::path::Path::new("/dev/shm").join(skiff_tests::unique("skiff-ipc-host"));
    std::fs::write(&host_shm, "host shm\n").unwrap();
    let o = env.sk(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "cat",
        &host_shm.to_string_lossy(),
    ]);
    let _ = std::fs::remove_file(&host_shm);
    assert_eq!(stdout(&o), "host shm\n", "{}", stderr(&o));
    // A private container's IPC cannot be joined (dockerd's refusal).
    env.ok(&["run", "-d", "--name", "priv", "busybox", "sleep", "1000"]);
    let o = env.sk(&["run", "--rm", "--ipc", "container:priv", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("non-shareable IPC"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "priv"]);
    // Join a running shareable container's pid and ipc namespaces, and its /dev/shm.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "busybox",
        "sleep",
        "1000",
    ]);
    env.ok(&["exec", "peer", "sh", "-c", "echo shared > /dev/shm/x"]);
    let pid = env.fmt("peer", "{{.State.Pid}}");
    let peer_ipc = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    let o = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:peer",
        "--ipc",
        "container:peer",
        "busybox",
        "sh",
        "-c",
        "ps -o comm | grep -c sleep; readlink /proc/self/ns/ipc; cat /dev/shm/x; echo back > /dev/shm/y; df -k /dev/shm | tail -1",
    ]);
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(
        words[..3],
        ["1", peer_ipc.to_str().unwrap(), "shared"],
        "{o}"
    );
    // The 8m size is the donor's tmpfs.
    assert_eq!(words[4], "8192", "{o}");
    assert_eq!(env.ok(&["exec", "peer", "cat", "/dev/shm/y"]), "back\n");
    let shm_dir = env
        .root()
        .join("containers")
        .join(env.fmt("peer", "{{.Id}}"))
        .join("shm");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", shm_dir.display()))
    };
    assert!(mounted(), "shareable /dev/shm is a host-side tmpfs");
    env.ok(&["stop", "-t", "0", "peer"]);
    assert!(
        !mounted(),
        "a stopped container's /dev/shm tmpfs is unmounted"
    );
    env.ok(&["rm", "-f", "peer"]);
    let o = env.sk(&["run", "--rm", "--pid", "container:peer", "busybox", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
}

/// issue 23: `--format` is Go's text/template with docker's functions, tables and `json`.
#[test]
fn format_templates_go_and_docker() {
    let env = Env::new();
    let host = env.dir.path().join("fmt-host");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/data", host.display());
    env.ok(&[
        "run", "-d", "--name", "t1", "-l", "b=2", "-l", "a=1", "-v", &bind, "busybox", "sleep",
        "1000",
    ]);
    env.ok(&["create", "--name", "t2", "busybox"]);
    // Go's control structures, variables and functions on inspect's JSON.
    assert_eq!(
        env.fmt("t1", "{{range .Mounts}}{{.Destination}} {{end}}"),
        "/data"
    );
    assert_eq!(
        env.fmt("t1", "{{if .State.Running}}up{{else}}down{{end}}"),
        "up"
    );
    assert_eq!(
        env.fmt("t2", "{{if .State.Running}}up{{else}}down{{end}}"),
        "down"
    );
    assert_eq!(
        env.fmt("t1", "{{with .State}}{{.Status}}{{end}}"),
        "running"
    );
    assert_eq!(
        env.fmt(
            "t1",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"
        ),
        "a=1;b=2;"
    );
    let pid = env.fmt("t1", "{{.State.Pid}}");
    assert!(pid.parse::<u32>().unwrap() > 0, "{pid}");
    assert_eq!(
        env.fmt("t1", "{{printf \"%s-%d\" .Name .State.Pid}}"),
        format!("/t1-{pid}")
    );
    assert_eq!(
        env.fmt(
            "t1",
            "{{$n := len .Config.Cmd}}{{if gt $n 1}}{{join .Config.Cmd \" \"}}{{end}}"
        ),
        "sleep 1000"
    );
    // A key the object lacks is an error, as docker 28's inspect reports it (checked side by side
    // in tests/compat/commands.txt).
    let o = env.sk(&["inspect", "-f", "{{.Nope}}", "t1"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("executing \"\" at <.Nope>: map has no entry for key \"Nope\""),
        "{}",
        stderr(&o)
    );
    // One output line per object, in order.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}}", "t1", "t2"]),
        "/t1\n/t2\n"
    );
    // A template that does not parse: docker's message and exit status 64.
    let o = env.sk(&["inspect", "-f", "{{.Id", "t1"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("template parsing error: template: :1: unclosed action"),
        "{}",
        stderr(&o)
    );
    // An execution error names the column and the node, as Go does.
    let o = env.sk(&["inspect", "-f", "{{.Name.Foo}}", "t1"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "template: :1:2: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type string"
        ),
        "{}",
        stderr(&o)
    );
    // --format json: the compact array on one line.
    let j = env.ok(&["inspect", "--format", "json", "t1", "t2"]);
    assert_eq!(j.lines().count(), 1, "{j}");
    let v: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["Name"], "/t1");
    // ps: table headers are docker's, columns aligned by Go's tabwriter (min width 10, pad 3).
    let t = env.ok(&["ps", "--format", "table {{.Names}}\\t{{.State}}\\t{{.ID}}"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "NAMES     STATE     CONTAINER ID", "{t}");
    assert!(lines[1].starts_with("t1        running   "), "{t}");
    assert_eq!(lines.len(), 2, "{t}");
    let t = env.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{upper .Names}}: {{.Status}}",
    ]);
    assert!(t.starts_with("NAMES: STATUS\n"), "{t}");
    assert!(t.contains("T2: Created"), "{t}");
    // ps rows are docker's ContainerContext struct: an unknown field is an error, not <no value>.
    let o = env.sk(&["ps", "--format", "{{.Nope}}"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("at <.Nope>: can't evaluate field Nope in type"),
        "{}",
        stderr(&o)
    );
    // `json` and `{{json .}}`: one object per line with docker's field names.
    for f in ["json", "{{json .}}"] {
        let out = env.ok(&["ps", "-a", "--format", f]);
        assert_eq!(out.lines().count(), 2, "{out}");
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            for k in [
                "ID", "Names", "Image", "Command", "Status", "State", "Labels",
            ] {
                assert!(v[k].is_string(), "{k} in {line}");
            }
        }
    }
    // images: {{json .}}, and tables with custom text between columns.
    let out = env.ok(&["images", "--format", "{{json .}}"]);
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["Repository"], "busybox");
    assert_eq!(v["Tag"], "latest");
    assert_eq!(
        env.ok(&["images", "--format", "table {{.Repository}}:{{.Tag}}"]),
        "REPOSITORY:TAG\nbusybox:latest\n"
    );
    let t = env.ok(&["images"]);
    assert!(
        t.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{t}"
    );
    // history: docker's IMAGE header for .ID.
    let t = env.ok(&[
        "history",
        "--format",
        "table {{.ID}}\\t{{.Size}}",
        "busybox",
    ]);
    assert!(t.starts_with("IMAGE"), "{t}");
    assert!(!t.starts_with("IMAGE ID"), "{t}");
    // system df: docker's strings for counts.
    let out = env.ok(&["system", "df", "--format", "{{json .}}"]);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["Type"], "Images");
    assert_eq!(first["TotalCount"], "1");
    env.ok(&["rm", "-f", "t1", "t2"]);
}

/// The monitor shows in `ps` as `skiff-monitor <id12>` (comm `skiff-monitor`), not as the
/// `/proc/self/fd/N` it is exec'd through.
#[test]
fn monitor_is_named_in_ps() {
    let env = Env::new();
    let id = env.ok(&["run", "-d", "--name", "named", "busybox", "sleep", "100"]);
    let mon = monitor_of(&env, "named");
    let comm = std::fs::read_to_string(format!("/proc/{mon}/comm")).unwrap();
    assert_eq!(comm.trim(), "skiff-monitor");
    let cmdline = std::fs::read_to_string(format!("/proc/{mon}/cmdline")).unwrap();
    let shown = cmdline.trim_end_matches('\0');
    assert!(
        shown.starts_with(&format!("skiff-monitor {}", &id.trim()[..12])),
        "{shown:?}"
    );
    // system check still finds the live monitor.
    env.ok(&["system", "check"]);
    env.ok(&["rm", "-f", "named"]);
}

/// Polish of issue 14.8: registry errors exit 1 (run's 125), an OS error is said once, and
/// generate-man is listed.
#[test]
fn registry_errors_exit_1_and_os_errors_are_said_once() {
    let env = Env::new();
    let o = env.sk(&["pull", "127.0.0.1:1/nothing/here"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let o = env.sk(&["run", "--rm", "127.0.0.1:1/nothing/here"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let o = env.sk(&[
        "run",
        "--rm",
        "--env-file",
        "/no/such/env",
        "busybox",
        "true",
    ]);
    let err = stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let o = Command::new(bin("skiff"))
        .args(["--root", "/dev/null/x", "images"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    let help = env.ok(&["--help"]);
    assert!(help.contains("generate-man"), "{help}");
}

/// Refusals in dockerd's words (what tests/compat compares side by side), each exit 125 with
/// nothing recorded; `--sysctl` takes docker's list of namespaced sysctls (and applies it);
/// `--platform` is parsed, and a local image of another platform is not used under
/// `--pull never`.
#[test]
fn refused_flags_say_what_dockerd_says() {
    let env = Env::new();
    let out = env.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.shmmax=1048576",
        "busybox",
        "cat",
        "/proc/sys/kernel/shmmax",
    ]);
    assert_eq!(out.trim(), "1048576");
    let host = skiff_tests::skiff_ok(
        &env.root(),
        &[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "busybox",
        ],
    );
    let other = if host.trim() == "linux/arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--sysctl", "kernel.hostname=x"], "invalid argument \"kernel.hostname=x\" for \"--sysctl\" flag: sysctl 'kernel.hostname=x' is not allowed".into()),
        (vec!["--sysctl", "net.ipv4.ip_forward"], "invalid argument \"net.ipv4.ip_forward\" for \"--sysctl\" flag: sysctl 'net.ipv4.ip_forward' is not allowed".into()),
        (vec!["--ipc", "bogus"], "Invalid IPC mode: bogus".into()),
        (vec!["--cgroupns", "bogus"], "--cgroupns: invalid CGROUP mode".into()),
        (vec!["--uts", "host", "--hostname", "x"], "conflicting options: hostname and the UTS mode".into()),
        (vec!["--group-add", "nosuchgroup"], "Unable to find group nosuchgroup: no matching entries in group file".into()),
        (vec!["--device-cgroup-rule", "z 1:3 r"], "invalid argument \"z 1:3 r\" for \"--device-cgroup-rule\" flag: invalid device cgroup format 'z 1:3 r'".into()),
        (vec!["--stop-signal", "BOGUS"], "Invalid signal: BOGUS".into()),
        (vec!["--log-driver", "bogus"], "error looking up logging plugin bogus: plugin \"bogus\" not found".into()),
        (vec!["--log-opt", "max-size=bogus"], "failed to initialize logging driver: invalid size: 'bogus'".into()),
        (vec!["--mount", "type=bogus,dst=/t"], "invalid mount config for type \"bogus\": mount type unknown".into()),
        (vec!["--mount", "dst=/t,src=x,type=bind"], "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute".into()),
        (vec!["--add-host", "bad"], "invalid argument \"bad\" for \"--add-host\" flag: bad format for add-host: \"bad\"".into()),
        (vec!["--platform", "bogus/x/y/z"], "error parsing specified platform: \"bogus/x/y/z\": cannot parse platform specifier: invalid argument".into()),
        (vec!["--platform", other, "--pull", "never"], format!("image with reference busybox was found but does not match the specified platform: wanted {other}, actual: {}", host.trim())),
    ];
    for (flags, want) in cases {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(&flags);
        a.extend(["busybox", "true"]);
        let o = env.sk(&a);
        assert_eq!(code(&o), 125, "{flags:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.trim(), format!("skiff: {want}"), "{flags:?}");
    }
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        host.trim(),
        "busybox",
        "echo",
        "same",
    ]);
    assert_eq!(out.trim(), "same");
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// `create`'s exit codes are docker 28's CLI's: 1 for what the daemon refuses (no such image
/// under `--pull never`, CPUs not available), 125 for what the CLI checks itself (a flag value,
/// `--health-*`, `--cgroupns`); `run` says 125 for both. And what inspect shows of the flags as
/// dockerd records them: capabilities as CAP_*, `label=disable` beside a host PID namespace,
/// `--mount` options in HostConfig.Mounts, `--tmpfs` only in HostConfig.Tmpfs (a `--mount
/// type=tmpfs` in Mounts), and `inspect -f '{{.Name}}'` of a bind in Mounts empty, not an error.
#[test]
fn create_exit_codes_and_recorded_flags_as_dockerd() {
    let env = Env::new();
    for (args, want) in [
        (&["--pull", "never", "nosuch/image:1"][..], 1),
        (&["--cpuset-cpus", "999", "busybox"][..], 1),
        (
            &["--health-retries", "-1", "--health-cmd", "true", "busybox"][..],
            125,
        ),
        (&["--cgroupns", "bogus", "busybox"][..], 125),
        (&["--ulimit", "bogus=1", "busybox"][..], 125),
    ] {
        let mut a = vec!["create", "--network", "none"];
        a.extend_from_slice(args);
        let o = env.sk(&a);
        assert_eq!(code(&o), want, "{args:?}: {}", stderr(&o));
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(args);
        assert_eq!(code(&env.sk(&a)), 125, "run {args:?}");
    }
    let bind = env.dir.path().join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    let m_bind = format!("type=bind,src={},dst=/b,readonly", bind.display());
    env.ok(&[
        "create",
        "--name",
        "rec",
        "--network",
        "none",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "MKNOD",
        "--pid",
        "host",
        "--tmpfs",
        "/t1:size=1m",
        "--mount",
        "type=tmpfs,dst=/t2,tmpfs-size=1m,tmpfs-mode=1770",
        "--mount",
        "type=volume,src=recv,dst=/v,volume-nocopy",
        "--mount",
        &m_bind,
        "busybox",
    ]);
    let i = env.inspect("rec");
    let hc = &i["HostConfig"];
    assert_eq!(hc["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["CAP_MKNOD"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["label=disable"]));
    assert!(
        hc.get("IpAddress").is_none() && hc.get("MacAddress").is_none(),
        "{hc}"
    );
    assert_eq!(
        hc["Mounts"][0]["TmpfsOptions"],
        serde_json::json!({"SizeBytes": 1048576, "Mode": 1016})
    );
    assert_eq!(
        hc["Mounts"][1]["VolumeOptions"],
        serde_json::json!({"NoCopy": true, "DriverConfig": {}})
    );
    assert!(hc["Mounts"][2].get("TmpfsOptions").is_none());
    let dests: Vec<&str> = i["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Destination"].as_str().unwrap())
        .collect();
    assert!(
        dests.contains(&"/t2") && !dests.contains(&"/t1"),
        "{dests:?}"
    );
    let names = env.fmt("rec", "{{range .Mounts}}{{.Type}}:{{.Name}};{{end}}");
    assert!(
        names.contains("bind:;") && names.contains("volume:recv;"),
        "{names}"
    );
    env.ok(&["rm", "-v", "rec"]);
    env.ok(&["volume", "rm", "recv"]);
}
