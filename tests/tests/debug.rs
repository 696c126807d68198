//! `skiff debug` and `skiff explain` against real containers: a scratch image holding one static
//! binary (skiff-init, idle with `--pause`) debugged with the host's busybox as toolbox, and the
//! isolation reports of default, privileged, host-namespace and locked-down containers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skiff_tests::{skip, stderr, stdout, EngineEnv, Pty};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// An engine with `scratch:1`: a tarball holding only `/app` (the static skiff-init) and a
/// setuid file, imported with `CMD ["/app", "--pause"]`.
fn scratch_env(name: &str) -> EngineEnv {
    let env = EngineEnv::new(name, |_| {});
    let dir = env.dir.path().join("scratch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app"), skiff_engine::init::INIT_BINARY).unwrap();
    std::fs::set_permissions(dir.join("app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("suid"), b"").unwrap();
    std::fs::set_permissions(dir.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let tar = env.dir.path().join("scratch.tar");
    let st = Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .args(["app", "suid"])
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&[
        "import",
        "-c",
        "CMD [\"/app\", \"--pause\"]",
        "-c",
        "EXPOSE 8080/tcp",
        tar.to_str().unwrap(),
        "scratch:1",
    ]);
    env
}

fn debug(env: &EngineEnv, args: &[&str]) -> std::process::Output {
    let mut v = vec!["debug"];
    v.extend_from_slice(args);
    env.sk(&v)
}

fn debug_ok(env: &EngineEnv, args: &[&str]) -> String {
    let o = debug(env, args);
    assert_eq!(code(&o), 0, "debug {args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn status_line(pid: &str, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or("")
        .to_string()
}

#[test]
fn debug_a_scratch_container_sees_its_processes_and_leaves_its_files_alone() {
    let env = scratch_env("debug-run");
    env.ok(&["run", "-d", "--name", "app", "scratch:1"]);
    let before = env.ok(&["diff", "app"]);
    // The container has no shell, no ls: nothing of the toolbox is in it.
    let o = env.sk(&["exec", "app", "ls", "/"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));

    let ls = debug_ok(&env, &["app", "--", "ls", "-a", "/"]);
    let names: Vec<&str> = ls.lines().collect();
    for n in ["app", "suid", "proc", "dev", "etc", ".skiff-debug"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    assert!(!names.contains(&"bin"), "{names:?}");
    let ps = debug_ok(&env, &["app", "--", "ps", "-o", "pid,args"]);
    assert!(ps.contains("1 /app --pause"), "{ps}");
    let cmdline = debug_ok(&env, &["app", "--", "cat", "/proc/1/cmdline"]);
    assert_eq!(cmdline, "/app\0--pause\0");
    // Writes outside volumes stay in the debug view; the exit code is the command's.
    let o = debug(
        &env,
        &[
            "app",
            "--",
            "sh",
            "-c",
            "echo x > /written && touch /app && rm /suid && ls /written",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = debug(&env, &["app", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert_eq!(
        env.ok(&["diff", "app"]),
        before,
        "the container's files changed"
    );
    let again = debug_ok(&env, &["app", "--", "ls", "/"]);
    assert!(!again.contains("written"), "{again}");
    assert!(again.contains("suid"), "{again}");
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "app"]);
    let upper = env.root().join("containers").join(id.trim()).join("upper");
    assert!(!upper.join(".skiff-debug").exists());

    // Same posture as the container: its bounding set and its seccomp filter.
    let pid = env.ok(&["inspect", "-f", "{{.State.Pid}}", "app"]);
    let pid = pid.trim();
    let mine = debug_ok(
        &env,
        &[
            "app",
            "--",
            "grep",
            "-E",
            "^(CapBnd|Seccomp):",
            "/proc/self/status",
        ],
    );
    assert!(mine.contains(&status_line(pid, "CapBnd")), "{mine}");
    assert!(mine.contains("Seccomp:\t2"), "{mine}");
    // Its cgroup, too.
    let cg = debug_ok(&env, &["app", "--", "cat", "/proc/self/cgroup"]);
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mine_unified = cg.lines().find(|l| l.starts_with("0::"));
    let theirs_unified = theirs.lines().find(|l| l.starts_with("0::"));
    if theirs_unified.is_some_and(|t| t.len() > 4) {
        // With a private cgroup namespace the container sees "/" for its own group.
        assert!(mine_unified.is_some(), "{cg}");
    }
    let o = debug(
        &env,
        &[
            "--privileged",
            "app",
            "--",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("Seccomp:\t0"), "{}", stdout(&o));
    assert!(stderr(&o).contains("WARNING"), "{}", stderr(&o));

    // exec-like flags.
    let id_u = debug_ok(&env, &["-u", "65534", "app", "--", "id", "-u"]);
    assert_eq!(id_u.trim(), "65534");
    let pwd = debug_ok(&env, &["-w", "/proc", "app", "--", "pwd"]);
    assert_eq!(pwd.trim(), "/proc");
    let e = debug_ok(
        &env,
        &["-e", "FOO=bar", "app", "--", "sh", "-c", "echo $FOO"],
    );
    assert_eq!(e.trim(), "bar");
    let o = debug(&env, &["app", "--", "no-such-tool"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    let o = debug(&env, &["--shell", "bash", "app"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("bash"), "{}", stderr(&o));
    // Any image as the toolbox: here the busybox image, with its applet links.
    let out = debug_ok(
        &env,
        &[
            "--toolbox",
            "busybox",
            "app",
            "--",
            "sh",
            "-c",
            "ls /.skiff-debug/bin | grep -c . ; ps -o args",
        ],
    );
    assert!(out.contains("/app --pause"), "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap_or("0")
            .parse::<u32>()
            .unwrap_or(0)
            > 100,
        "{out}"
    );
    assert_eq!(env.ok(&["diff", "app"]), before);
    env.ok(&["rm", "-f", "app"]);
}

#[test]
fn debug_a_stopped_container_and_an_image_in_a_throwaway_container() {
    let env = scratch_env("debug-stopped");
    env.ok(&["create", "--name", "st", "scratch:1"]);
    let note = env.dir.path().join("note");
    std::fs::write(&note, "left-in-the-container\n").unwrap();
    env.ok(&["cp", note.to_str().unwrap(), "st:/note"]);
    let images = env.ok(&["images", "-q", "-a"]);
    let out = debug_ok(&env, &["st", "--", "sh", "-c", "cat /note; ps -o args"]);
    assert!(out.contains("left-in-the-container"), "{out}");
    assert!(out.contains("--pause"), "{out}");
    let o = debug(&env, &["st", "--", "sh", "-c", "exit 5"]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    // The image: its files, nothing of the toolbox or the note.
    let out = debug_ok(&env, &["scratch:1", "--", "ls", "/"]);
    assert!(out.contains("app") && !out.contains("note"), "{out}");
    // Nothing left behind: only `st`, stopped, and the same images.
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "st created", "{ps}");
    assert_eq!(env.ok(&["images", "-q", "-a"]), images);
    let o = debug(&env, &["no-such-thing", "--", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("no-such-thing"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "st"]);
}

#[test]
fn debug_is_interactive_on_a_terminal() {
    let env = scratch_env("debug-pty");
    env.ok(&["run", "-d", "--name", "app", "scratch:1"]);
    let mut t = Pty::spawn(env.cmd(&["debug", "app"]), 24, 80);
    t.expect("# ", 30);
    t.write(b"ps -o pid,args | grep -c pause; echo sum-$((40+2))\r");
    t.expect("sum-42", 10);
    t.write(b"stty size\r");
    t.expect("24 80", 10);
    t.write(b"exit 4\r");
    let st = t.wait(20).expect("debug did not end with its shell");
    assert_eq!(st.code(), Some(4), "{}", t.text());
    std::thread::sleep(Duration::from_millis(50));
    env.ok(&["rm", "-f", "app"]);
}

fn explain(env: &EngineEnv, name: &str) -> Value {
    let out = env.ok(&["explain", "--json", name]);
    serde_json::from_str(&out).unwrap()
}

fn risk_ids(v: &Value) -> Vec<String> {
    v["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn ns_state(v: &Value, kind: &str) -> String {
    v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == kind)
        .map(|n| n["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn highs(v: &Value) -> Vec<String> {
    v["risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["severity"] == "high")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn explain_a_default_container() {
    let env = EngineEnv::new("explain-default", |_| {});
    env.ok(&["run", "-d", "--name", "dflt", "busybox", "sleep", "1000"]);
    let v = explain(&env, "dflt");
    assert!(highs(&v).is_empty(), "{v:#}");
    for k in ["pid", "net", "ipc", "uts", "mnt"] {
        assert_eq!(ns_state(&v, k), "private", "{k}: {v:#}");
    }
    assert_eq!(v["seccomp"]["mode"], "filter");
    assert_eq!(v["seccomp"]["profile"], "default");
    let blocked = &v["seccomp"]["summary"]["notable_blocked"];
    for s in ["mount", "unshare", "keyctl", "bpf"] {
        assert!(
            blocked.as_array().unwrap().iter().any(|x| x == s),
            "{s}: {blocked}"
        );
    }
    assert!(v["seccomp"]["summary"]["blocked"].as_u64().unwrap() > 20);
    assert_eq!(v["caps_beyond_default"], serde_json::json!([]));
    assert_eq!(v["cap_effective"].as_array().unwrap().len(), 14, "{v:#}");
    assert!(v["cap_effective"][0]["meaning"].as_str().unwrap().len() > 5);
    assert_eq!(v["read_only_rootfs"], false);
    assert!(v["root_is_host_root"].as_bool().unwrap());
    assert!(risk_ids(&v).contains(&"no-memory-limit".to_string()));
    assert!(v["masked_paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/kcore"));
    let groups: Vec<&str> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["group"].as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"layers") && groups.contains(&"system"),
        "{groups:?}"
    );
    // The text report leads with the risks.
    let text = env.ok(&["explain", "dflt"]);
    assert!(
        text.lines().nth(2).unwrap_or("").starts_with("Risks"),
        "{text}"
    );
    // An image: user, ports, setuid files.
    let img: Value =
        serde_json::from_str(&env.ok(&["explain", "--json", "--image", "busybox"])).unwrap();
    assert_eq!(img["user"], "root");
    assert!(img["runs_as_root"].as_bool().unwrap());
    env.ok(&["rm", "-f", "dflt"]);
}

#[test]
fn explain_a_privileged_container() {
    let env = EngineEnv::new("explain-priv", |_| {});
    env.ok(&[
        "run",
        "-d",
        "--name",
        "privd",
        "--privileged",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = explain(&env, "privd");
    assert_eq!(
        highs(&v).first().map(String::as_str),
        Some("privileged"),
        "{v:#}"
    );
    assert!(v["risks"][0]["text"]
        .as_str()
        .unwrap()
        .contains("container root is host root"));
    assert_eq!(v["seccomp"]["mode"], "disabled");
    assert_eq!(v["seccomp"]["profile"], "unconfined");
    let beyond = v["caps_beyond_default"].as_array().unwrap();
    assert!(beyond.iter().any(|c| c == "CAP_SYS_ADMIN"), "{beyond:?}");
    assert!(v["cap_bounding"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "CAP_SYS_ADMIN" && c["beyond_default"] == true));
    env.ok(&["rm", "-f", "privd"]);
}

#[test]
fn explain_host_namespaces_and_a_docker_socket() {
    let env = EngineEnv::new("explain-host", |_| {});
    // A socket of our own at the container's docker.sock path (never the host's real one).
    let sock = env.dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let vol = format!("{}:/var/run/docker.sock", sock.display());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hostns",
        "--pid",
        "host",
        "--network",
        "host",
        "-v",
        &vol,
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = explain(&env, "hostns");
    let h = highs(&v);
    for id in ["host-pid", "host-network", "docker-socket"] {
        assert!(h.iter().any(|x| x == id), "{id} not flagged: {v:#}");
    }
    assert_eq!(ns_state(&v, "pid"), "host");
    assert_eq!(ns_state(&v, "net"), "host");
    assert_eq!(ns_state(&v, "uts"), "private");
    let m = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/var/run/docker.sock")
        .cloned()
        .unwrap_or_default();
    assert_eq!(m["group"], "bind", "{v:#}");
    assert!(
        m["sensitive"]
            .as_str()
            .unwrap_or("")
            .contains("docker socket"),
        "{m}"
    );
    assert_eq!(v["network_mode"], "host");
    env.ok(&["rm", "-f", "hostns"]);
}

#[test]
fn explain_a_locked_down_container() {
    let env = EngineEnv::new("explain-tight", |_| {});
    env.ok(&[
        "run",
        "-d",
        "--name",
        "tight",
        "--cap-drop",
        "ALL",
        "--read-only",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = explain(&env, "tight");
    assert!(highs(&v).is_empty(), "{v:#}");
    assert_eq!(v["cap_effective"], serde_json::json!([]));
    assert_eq!(v["cap_bounding"], serde_json::json!([]));
    assert_eq!(v["caps_dropped_from_default"].as_array().unwrap().len(), 14);
    assert_eq!(v["read_only_rootfs"], true);
    let ids = risk_ids(&v);
    if Path::new("/sys/fs/cgroup/memory").exists()
        || Path::new("/sys/fs/cgroup/memory.max").exists()
    {
        assert_eq!(v["limits"]["memory_limit"], 64 * 1024 * 1024, "{v:#}");
        assert!(v["limits"]["memory_usage"].as_u64().unwrap() > 0);
        assert!(!ids.contains(&"no-memory-limit".to_string()), "{ids:?}");
    } else {
        skip("memory limit read-back: no memory controller");
    }
    if v["cgroup"].get("pids").is_some() || v["limits"]["pids_limit"].is_u64() {
        assert_eq!(v["limits"]["pids_limit"], 50, "{v:#}");
        assert!(v["limits"]["pids_current"].as_u64().unwrap() >= 1);
    } else {
        skip("pids limit read-back: no pids controller");
    }
    let text = env.ok(&["explain", "tight"]);
    assert!(text.contains("memory  64.0MiB"), "{text}");
    assert!(text.contains("read-only"), "{text}");
    env.ok(&["rm", "-f", "tight"]);
}

#[test]
fn explain_an_image() {
    let env = scratch_env("explain-image");
    let v: Value =
        serde_json::from_str(&env.ok(&["explain", "--json", "--image", "scratch:1"])).unwrap();
    assert_eq!(v["user"], "root");
    assert_eq!(v["exposed_ports"], serde_json::json!(["8080/tcp"]));
    assert_eq!(v["command"], serde_json::json!(["/app", "--pause"]));
    let suid = v["setuid_files"].as_array().unwrap();
    assert!(
        suid.iter()
            .any(|f| f.as_str().unwrap().starts_with("/suid (setuid")),
        "{suid:?}"
    );
    assert!(v["healthcheck"].is_null());
    let ids = risk_ids(&v);
    assert!(ids.contains(&"setuid-files".to_string()), "{ids:?}");
    let o = env.sk(&["explain", "no-such-container"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no-such-container"), "{}", stderr(&o));
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").to_string()
}

#[test]
fn debug_commit_keeps_the_session_of_an_image_or_a_stopped_container() {
    let env = scratch_env("debug-commit");
    let original = env.ok(&["inspect", "-f", "{{.Id}}", "scratch:1"]);
    // A session on the image: a file written (with a shell for `run` to use), one deleted, one
    // deep in new directories.
    let out = debug_ok(
        &env,
        &[
            "--commit",
            "--tag",
            "x",
            "scratch:1",
            "--",
            "sh",
            "-c",
            "cp /.skiff-debug/bin/busybox /busybox && echo made > /made && rm /suid && \
             mkdir -p /var/lib/t && echo deep > /var/lib/t/f",
        ],
    );
    let id = last_line(&out);
    assert!(id.starts_with("sha256:"), "{out}");
    assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", "x"]).trim(), id);
    let seen = env.ok(&[
        "run",
        "--rm",
        "x",
        "/busybox",
        "sh",
        "-c",
        "cat /made /var/lib/t/f; ls -a /; ls /suid 2>&1 || echo suid-gone",
    ]);
    assert!(seen.contains("made\ndeep\n"), "{seen}");
    assert!(seen.contains("suid-gone"), "{seen}");
    assert!(seen.contains("app"), "{seen}");
    // Neither the toolbox nor the temporary container's own mounts are in the image.
    assert!(!seen.contains(".skiff-debug"), "{seen}");
    assert!(!seen.contains(".skiff-tools"), "{seen}");
    // The image's config is the parent's, not the temporary container's `skiff-init --pause`.
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "x"])
            .trim(),
        r#"["/app","--pause"]"#
    );
    // The original image is unchanged.
    assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", "scratch:1"]), original);
    let ls = debug_ok(&env, &["scratch:1", "--", "ls", "/"]);
    assert!(ls.contains("suid") && !ls.contains("made"), "{ls}");

    // A stopped container: its own changes and the session's. (A session left by a killed
    // skiff, whose temporary container is gone, is cleaned up by the next one.)
    let stale = env.root().join("debug/sessions/0123abc/upper");
    std::fs::create_dir_all(&stale).unwrap();
    env.ok(&["create", "--name", "st", "scratch:1"]);
    let note = env.dir.path().join("note");
    std::fs::write(&note, "note\n").unwrap();
    env.ok(&["cp", note.to_str().unwrap(), "st:/note"]);
    let out = debug_ok(
        &env,
        &[
            "--commit",
            "--tag",
            "y",
            "st",
            "--",
            "sh",
            "-c",
            "echo more > /more",
        ],
    );
    assert!(last_line(&out).starts_with("sha256:"), "{out}");
    let both = debug_ok(&env, &["y", "--", "cat", "/note", "/more"]);
    assert_eq!(both, "note\nmore\n");

    // A running container's changes are `skiff commit`'s job.
    env.ok(&["run", "-d", "--name", "app", "scratch:1"]);
    let images = env.ok(&["images", "-q", "-a"]);
    let o = debug(&env, &["--commit", "app", "--", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("skiff commit"), "{}", stderr(&o));
    assert_eq!(env.ok(&["images", "-q", "-a"]), images);

    // Nothing left behind: no temporary containers, no session directories.
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = ps.lines().collect();
    names.sort();
    assert_eq!(names, ["app", "st"], "{ps}");
    let sessions = env.root().join("debug").join("sessions");
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 0);
    env.ok(&["rm", "-f", "app", "st"]);
}

#[test]
fn debug_install_adds_tools_to_every_later_session() {
    let env = scratch_env("debug-install");
    env.ok(&["run", "-d", "--name", "app", "scratch:1"]);
    let o = debug(&env, &["app", "--", "sh", "-c", "command -v my-init"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));

    // A static binary (the workspace's skiff-init) under another name.
    let tool = env.dir.path().join("my-init");
    std::fs::write(&tool, skiff_engine::init::INIT_BINARY).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        debug_ok(&env, &["install", tool.to_str().unwrap()]).trim(),
        "my-init"
    );
    let ls = debug_ok(&env, &["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("my-init ") && l.ends_with("static")),
        "{ls}"
    );
    let bin = env.root().join("debug").join("toolbox").join("bin");
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&bin.join("my-init")), 0o755);
    assert_eq!(mode(bin.parent().unwrap()), 0o700);
    // On PATH in the session, before the busybox toolbox, and it runs (skiff-init running the
    // toolbox's echo); for another uid too.
    for user in ["0", "65534"] {
        let out = debug_ok(
            &env,
            &[
                "-u",
                user,
                "app",
                "--",
                "sh",
                "-c",
                "command -v my-init; my-init echo via-tool",
            ],
        );
        assert_eq!(out, "/.skiff-tools/my-init\nvia-tool\n", "-u {user}");
    }
    // Read-only in the session; nothing of it in the container.
    let o = debug(&env, &["app", "--", "rm", "/.skiff-tools/my-init"]);
    assert_ne!(code(&o), 0);
    let o = env.sk(&["exec", "app", "/.skiff-tools/my-init", "true"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));

    // Refused: a symlink, a file that is not executable, a dynamically linked binary.
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(&tool, &link).unwrap();
    let o = debug(&env, &["install", link.to_str().unwrap()]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    let plain = env.dir.path().join("plain");
    std::fs::write(&plain, skiff_engine::init::INIT_BINARY).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = debug(&env, &["install", plain.to_str().unwrap()]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("not executable"), "{}", stderr(&o));
    let dynamic = ["/bin/ls", "/usr/bin/ls", "/bin/true", "/usr/bin/env"]
        .into_iter()
        .find(|p| {
            std::fs::read(p)
                .is_ok_and(|b| b.starts_with(b"\x7fELF") && !skiff_engine::debug::is_static_elf(&b))
        });
    match dynamic {
        Some(d) => {
            let o = debug(&env, &["install", d]);
            assert_eq!(code(&o), 125);
            assert!(stderr(&o).contains("dynamically linked"), "{}", stderr(&o));
            assert!(!bin.join(Path::new(d).file_name().unwrap()).exists());
        }
        None => skip("no dynamically linked binary on this host"),
    }
    let o = debug(&env, &["install"]);
    assert_eq!(code(&o), 125);

    // Uninstalled: gone from the list and from later sessions.
    assert_eq!(debug_ok(&env, &["uninstall", "my-init"]).trim(), "my-init");
    assert!(!debug_ok(&env, &["ls"]).contains("my-init"));
    let o = debug(&env, &["app", "--", "sh", "-c", "command -v my-init"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    let o = debug(&env, &["uninstall", "my-init"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("no such tool"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "app"]);
}
