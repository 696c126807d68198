//! seccomp and Docker security options end to end: real containers run by `skiff-runtime` with the
//! config.json `docker_spec` produces (the one `skiff run` uses), probed from inside with busybox
//! and a small static C program (tests/probe/probe.c, built with `gcc -static` at test time).

use serde_json::Value;
use skiff_tests::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The static probe binary's bytes, compiled once per test process (in a temp dir removed at once).
fn probe_bin() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("probe");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/probe.c");
        let o = Command::new("gcc")
            .args(["-static", "-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("gcc (scripts/deps.sh installs it)");
        assert!(o.status.success(), "gcc: {}", stderr(&o));
        std::fs::read(&out).unwrap()
    })
}

/// A busybox bundle (plus /bin/probe) whose config.json comes from `docker_spec` with `opts`.
fn docker_bundle(opts: &[&str], args: &[&str]) -> Bundle {
    let mut b = Bundle::busybox(&["true"]);
    let probe = b.rootfs().join("bin/probe");
    std::fs::write(&probe, probe_bin()).unwrap();
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(b.rootfs().join("mnt")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_skiff-docker-spec"))
        .arg("--bundle")
        .arg(b.path())
        .args(["--cgroups-path", &format!("/skiff-test/{}", unique("sc"))])
        .args(opts)
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "docker spec: {}", stderr(&o));
    b.config =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    b
}

/// Run a container from `docker_spec` options and return (exit ok, stdout, stderr).
fn run(opts: &[&str], args: &[&str]) -> (bool, String, String) {
    run_in(&Runtime::new(), opts, args)
}

/// Like [`run`], with a given runtime root (whose seccomp cache later runs reuse).
fn run_in(rt: &Runtime, opts: &[&str], args: &[&str]) -> (bool, String, String) {
    let b = docker_bundle(opts, args);
    let o = rt.run(&b, &unique("seccomp"));
    (o.status.success(), stdout(&o), stderr(&o))
}

/// Run /bin/probe with `probes` and return probe -> result ("ok" or "errno=N").
fn probe(opts: &[&str], probes: &[&str]) -> HashMap<String, String> {
    probe_in(&Runtime::new(), opts, probes)
}

/// Like [`probe`], with a given runtime root.
fn probe_in(rt: &Runtime, opts: &[&str], probes: &[&str]) -> HashMap<String, String> {
    let mut args = vec!["/bin/probe"];
    args.extend(probes);
    let (okay, out, err) = run_in(rt, opts, &args);
    assert!(okay, "probe failed: {out} {err}");
    let m: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(m.len(), probes.len(), "every probe reported: {out}");
    m
}

/// The syscalls Docker's default profile denies that a default container would otherwise be able
/// to make (or reach the kernel's own checks with).
const BLOCKED: [&str; 10] = [
    "keyctl",
    "add_key",
    "reboot",
    "kexec_load",
    "bpf",
    "clone_newuser",
    "unshare_user",
    "mount",
    "personality_rie",
    "socket_vsock",
];

/// The default profile answers EPERM to the dangerous syscalls (keyring, reboot, kexec, bpf, new
/// user namespaces through clone/unshare, mount, odd personalities, vsock) and ENOSYS to clone3.
#[test]
fn default_profile_blocks_dangerous_syscalls_with_eperm() {
    require_root();
    let mut all = BLOCKED.to_vec();
    all.push("clone3");
    // Twice on one runtime root: the second start loads the cached program.
    let rt = Runtime::new();
    for _ in 0..2 {
        let r = probe_in(&rt, &[], &all);
        for p in BLOCKED {
            assert_eq!(r[p], "errno=1", "{p} must fail with EPERM: {r:?}");
        }
        assert_eq!(
            r["clone3"], "errno=38",
            "clone3 -> ENOSYS so libc falls back to clone"
        );
    }
    assert_eq!(
        std::fs::read_dir(rt.root.path().join("seccomp@cache"))
            .unwrap()
            .count(),
        1
    );
    // The same through busybox's own applets.
    let (okay, out, err) = run(
        &[],
        &[
            "sh",
            "-c",
            "unshare -U true; echo unshare=$?; mount -t tmpfs t /mnt; echo mount=$?; grep Seccomp: /proc/self/status",
        ],
    );
    assert!(okay, "{err}");
    assert!(out.contains("unshare=1") && out.contains("mount=") && !out.contains("mount=0"));
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

/// The blocks come from the profile, not from missing capabilities: the same default profile
/// loaded through `--security-opt seccomp=FILE` with defaultErrnoRet 1234 makes every blocked call
/// return 1234, and without seccomp (`seccomp=unconfined`) the keyring and user-namespace probes
/// succeed. A runtime that ignored the profile fails both halves.
#[test]
fn blocks_come_from_the_profile_and_the_docker_format_loader() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut prof: Value =
        serde_json::from_str(skiff_runtime::seccomp_profile::DEFAULT_PROFILE_JSON).unwrap();
    prof["defaultErrnoRet"] = 1234.into();
    let path = dir.path().join("marked.json");
    std::fs::write(&path, serde_json::to_vec(&prof).unwrap()).unwrap();
    let opt = format!("seccomp={}", path.display());
    let r = probe(&["--security-opt", &opt], &BLOCKED);
    for p in BLOCKED {
        assert_eq!(
            r[p], "errno=1234",
            "{p} denied by the profile's default action: {r:?}"
        );
    }
    let r = probe(
        &["--security-opt", "seccomp=unconfined"],
        &[
            "keyctl",
            "add_key",
            "clone_newuser",
            "clone3",
            "personality_rie",
        ],
    );
    for p in ["keyctl", "add_key", "clone_newuser", "personality_rie"] {
        assert_eq!(r[p], "ok", "{p} works without seccomp: {r:?}");
    }
    assert_ne!(r["clone3"], "errno=38");
}

/// An ordinary busybox workload runs under the default profile: shell, files, processes, pipes,
/// fork/clone without namespace flags, threads (glibc tries clone3, gets ENOSYS, falls back to
/// clone), chroot (CAP_SYS_CHROOT is a default capability), sockets, allowed personality queries,
/// and ptrace of the container's own child.
#[test]
fn normal_workload_runs_under_the_default_profile() {
    require_root();
    let script = "set -e; ls / >/dev/null; cat /etc/passwd | wc -l; ps -o pid,comm | grep -c ps; \
                  echo hello > /tmp/f; cat /tmp/f; mkdir -p /tmp/d/e; mv /tmp/f /tmp/d/e/g; \
                  ln -s /tmp/d /tmp/l; ls /tmp/l/e; rm -r /tmp/d; id -u; date +%Y >/dev/null; \
                  sleep 0.05; chroot / true; echo abc | sed s/b/x/ | tr a-z A-Z; \
                  (sleep 0.01 &) ; wait; nc -l -p 5555 -s 127.0.0.1 -w 1 >/dev/null 2>&1 & \
                  sleep 0.1; echo hi | nc 127.0.0.1 5555 -w 1 || true; wait; \
                  /bin/probe clone_plain thread personality_query socket_unix ptrace_child; echo done";
    let (okay, out, err) = run(&[], &["sh", "-c", script]);
    assert!(okay, "workload failed: {out} {err}");
    for want in [
        "hello",
        "AXC",
        "clone_plain ok",
        "thread ok",
        "personality_query ok",
        "socket_unix ok",
        "ptrace_child ok",
        "done",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out} {err}");
    }
}

/// `--cap-add SYS_ADMIN` unlocks the capability-conditional rules: mount and unshare are allowed by
/// the profile (and the capability), clone3 is no longer ENOSYS.
#[test]
fn cap_add_sys_admin_unlocks_mount() {
    require_root();
    let (okay, out, err) = run(
        &["--cap-add", "SYS_ADMIN"],
        &[
            "sh",
            "-c",
            "mount -t tmpfs skiff-t /mnt && grep -c ' /mnt tmpfs' /proc/mounts && /bin/probe unshare_user clone3",
        ],
    );
    assert!(okay, "{out} {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "tmpfs mounted: {out}");
    assert_eq!(lines[1], "unshare_user ok", "{out}");
    assert!(lines[2].starts_with("clone3 errno=") && lines[2] != "clone3 errno=38");
}

/// ptrace is allowed by the profile on kernels >= 4.8 (as in Docker), but a container cannot reach
/// processes outside it: with its own PID namespace outside pids do not exist (ESRCH), and with
/// `--pid host` the host's init cannot be attached without CAP_SYS_PTRACE (EPERM).
#[test]
fn ptrace_of_outside_pids_is_refused() {
    require_root();
    let me = std::process::id().to_string();
    let r = probe(&[], &[&format!("ptrace:{me}"), "ptrace_child"]);
    assert_eq!(r[&format!("ptrace:{me}")], "errno=3", "{r:?}");
    assert_eq!(r["ptrace_child"], "ok");
    let r = probe(&["--pid-host"], &["ptrace:1", &format!("ptrace:{me}")]);
    assert_eq!(r["ptrace:1"], "errno=1", "host init: {r:?}");
    assert_eq!(r[&format!("ptrace:{me}")], "errno=1", "test process: {r:?}");
}

/// `--privileged`: no seccomp, every capability, writable sysfs, the host's devices, and the
/// syscalls the default profile blocks reach the kernel (mount works).
#[test]
fn privileged_runs_unconfined() {
    require_root();
    let (okay, out, err) = run(
        &["--privileged"],
        &[
            "sh",
            "-c",
            "grep -E '^(Seccomp|CapEff):' /proc/self/status; grep ' /sys sysfs rw' /proc/mounts | wc -l; \
             ls /dev/kmsg; mount -t tmpfs t /mnt && echo mounted; /bin/probe keyctl",
        ],
    );
    assert!(okay, "{out} {err}");
    assert!(out.contains("Seccomp:\t0"), "{out}");
    // Every capability the host grants: the container's effective set is the engine's bounding set.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .unwrap();
    let full = format!("CapEff:\t{bnd}");
    assert!(out.contains(&full), "want {full} in {out}");
    for want in ["\n1\n", "/dev/kmsg", "mounted", "keyctl ok"] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
}

/// `--security-opt no-new-privileges` sets NoNewPrivs; `seccomp=unconfined` loads no filter;
/// `apparmor=`/`label=` on this host (neither LSM active) start the container with a warning.
#[test]
fn security_opts_take_effect() {
    require_root();
    let (okay, out, err) = run(
        &[
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=docker-default",
            "--security-opt",
            "label=type:container_t",
        ],
        &["grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"],
    );
    assert!(okay, "{out} {err}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t0"),
        "{out}"
    );
    assert!(err.contains("AppArmor is not enabled"), "{err}");
    assert!(err.contains("SELinux is not enabled"), "{err}");
    let (okay, out, _) = run(&[], &["grep", "-E", "^NoNewPrivs:", "/proc/self/status"]);
    assert!(okay && out.contains("NoNewPrivs:\t0"), "{out}");
    // Bad options are one-line errors naming the option, before anything runs.
    let b = Bundle::busybox(&["true"]);
    let o = Command::new(env!("CARGO_BIN_EXE_skiff-docker-spec"))
        .arg("--bundle")
        .arg(b.path())
        .args(["--security-opt", "seccomp-ish=1", "--", "true"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o),
        "skiff-docker-spec: invalid --security-opt \"seccomp-ish=1\": unknown option \"seccomp-ish\"\n"
    );
}

/// A custom Docker-format profile with SCMP_ACT_NOTIFY and `listenerPath`: the runtime connects to
/// the listener and passes the notify fd with SCM_RIGHTS plus the container state JSON; the test
/// agent answers the container's mkdir with EXDEV, which the container sees. A second container on
/// the same runtime root takes its filter from the compiled-program cache and behaves the same.
#[test]
fn notify_profile_delivers_the_listener_fd() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "skiff-test-agent",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let path = dir.path().join("notify.json");
    std::fs::write(&path, profile.to_string()).unwrap();
    // One agent session per container.
    let session = move |listener: &UnixListener| {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed these fds in our table; we own them.
                fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
            }
        }
        let n = msg.bytes;
        let state: Value = serde_json::from_slice(&buf[..n]).unwrap();
        let fd = fd.expect("SCM_RIGHTS carried the notify fd");
        // Answer every notification until the container exits (the fd then reports POLLHUP).
        let mut names = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut pfd, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
                continue;
            }
            let ev = pfd[0].revents().unwrap_or(PollFlags::empty());
            if ev.contains(PollFlags::POLLIN) {
                let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
                names.push(req.data.syscall.get_name().unwrap_or_default());
                let resp = libseccomp::ScmpNotifResp::new_error(
                    req.id,
                    -libc::EXDEV,
                    libseccomp::ScmpNotifRespFlags::empty(),
                );
                let _ = resp.respond(fd.as_raw_fd());
            } else if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                break;
            }
        }
        (state, names)
    };
    let agent = std::thread::spawn(move || (session(&listener), session(&listener)));
    let opt = format!("seccomp={}", path.display());
    // The second container on the same runtime root gets its filter from the compiled-program cache
    // (<root>/seccomp@cache) and must behave the same, listener flag included.
    let rt = Runtime::new();
    for _ in 0..2 {
        let (okay, out, err) = run_in(
            &rt,
            &["--security-opt", &opt],
            &[
                "sh",
                "-c",
                "mkdir /tmp/x; echo rc=$?; ls -d /tmp/x 2>/dev/null | wc -l",
            ],
        );
        assert!(okay, "{out} {err}");
        assert!(
            err.contains("Invalid cross-device link"),
            "agent's answer: {err}"
        );
        assert!(
            out.contains("rc=1") && out.trim_end().ends_with('0'),
            "{out}"
        );
    }
    let cache = rt.root.path().join("seccomp@cache");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "one cached program"
    );
    let (first, second) = agent.join().unwrap();
    for (state, names) in [first, second] {
        assert_eq!(state["fds"], serde_json::json!(["seccompFd"]), "{state}");
        assert_eq!(state["metadata"], "skiff-test-agent");
        assert!(state["pid"].as_u64().unwrap_or(0) > 0, "{state}");
        assert!(state["state"]["id"]
            .as_str()
            .unwrap()
            .starts_with("seccomp-"));
        assert!(
            names.iter().any(|n| n.starts_with("mkdir")),
            "agent saw mkdir: {names:?}"
        );
    }
}

/// The one entry of a runtime root's compiled-filter cache: (key, path).
fn only_cache_entry(root: &Path) -> (String, std::path::PathBuf) {
    let dir = root.join("seccomp@cache");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1, "one cached program: {entries:?}");
    let key = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (key, entries[0].clone())
}

/// Mode bits of a path.
fn mode(p: &Path) -> u32 {
    std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(p).unwrap()) & 0o7777
}

/// Issue 24: `exec` into a default-profile container loads the program the init loaded, from the
/// cache by the key the init's state recorded, and compiles nothing (`--debug` says where the
/// filter came from); the filter is really in force in the exec'd process. The cache is private
/// whatever the umask (the create runs under umask 277), and a corrupt, truncated or foreign entry
/// is rejected: the exec still works under the same filter and the entry is written again.
#[test]
fn exec_takes_the_init_filter_from_the_cache() {
    require_root();
    let rt = Runtime::new();
    let b = docker_bundle(&[], &["sleep", "1000"]);
    b.write();
    let id = unique("seccomp-exec");
    let log = rt.root.path().join("debug.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // create under a umask that would leave files 0400 and directories 0500.
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let st = Command::new("sh")
        .args(["-c", "umask 277 && exec \"$@\"", "sh"])
        .arg(bin("skiff-runtime"))
        .arg("--root")
        .arg(rt.root.path())
        .args(["--debug", "--log"])
        .arg(&log)
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(&e).unwrap()
    );
    ok(&rt.out(&["start", &id]));
    let (key, entry) = only_cache_entry(rt.root.path());
    assert!(
        logs().contains(&format!("seccomp: compiled filter {key}")),
        "create compiles the profile once: {}",
        logs()
    );
    assert_eq!(mode(&rt.root.path().join("seccomp@cache")), 0o700);
    assert_eq!(mode(&entry), 0o600);
    let good = std::fs::read(&entry).unwrap();
    let exec = |args: &[&str]| {
        std::fs::write(&log, "").unwrap();
        let mut v = vec!["--debug", "--log", log.to_str().unwrap(), "exec", &id];
        v.extend(args);
        let out = ok(&rt.out(&v));
        (out, logs())
    };
    let (out, l) = exec(&[
        "sh",
        "-c",
        "grep -E '^Seccomp(_filters)?:' /proc/self/status",
    ]);
    assert!(
        out.contains("Seccomp:\t2") && out.contains("Seccomp_filters:\t1"),
        "{out}"
    );
    assert!(
        l.contains(&format!("seccomp: filter from cache {key}")),
        "exec must load the init's cached filter: {l}"
    );
    assert!(
        !l.contains("compiled filter"),
        "exec compiled a filter: {l}"
    );
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "entries are named by a SHA-256 key: {key}"
    );
    // The filter in force is the default profile's.
    let (out, _) = exec(&["/bin/probe", "keyctl", "clone3"]);
    assert!(
        out.contains("keyctl errno=1") && out.contains("clone3 errno=38"),
        "{out}"
    );
    // A second profile's entry, for the foreign case.
    let foreign = {
        let rt2 = Runtime::new();
        let (okay, _, err) = run_in(&rt2, &["--cap-add", "SYS_ADMIN"], &["true"]);
        assert!(okay, "{err}");
        let (k2, p2) = only_cache_entry(rt2.root.path());
        assert_ne!(k2, key, "another profile is another key");
        std::fs::read(p2).unwrap()
    };
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    for (what, bad) in [
        ("corrupt", flipped),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("foreign", foreign),
    ] {
        std::fs::write(&entry, &bad).unwrap();
        let (out, l) = exec(&[
            "sh",
            "-c",
            "grep -E '^Seccomp:' /proc/self/status; /bin/probe keyctl",
        ]);
        assert!(
            out.contains("Seccomp:\t2") && out.contains("keyctl errno=1"),
            "{what}: {out}"
        );
        assert!(
            l.contains(&format!("seccomp: cache entry {key} rejected"))
                && l.contains(&format!("seccomp: compiled filter {key}")),
            "{what} entry rejected and recompiled: {l}"
        );
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            good,
            "{what}: entry rewritten"
        );
        assert_eq!(mode(&entry), 0o600);
        let (_, l) = exec(&["true"]);
        assert!(
            l.contains(&format!("seccomp: filter from cache {key}")),
            "{what}: {l}"
        );
    }
    ok(&rt.out(&["delete", "-f", &id]));
}

/// `skiff exec` goes through the same path: the engine's exec into a default `skiff run`
/// container loads the init's filter from the runtime's cache (`skiff -D` prints the runtime's
/// debug lines), compiling nothing.
#[test]
fn skiff_exec_takes_the_init_filter_from_the_cache() {
    let env = EngineEnv::new("seccomp-exec", |_| {});
    let name = unique("sx");
    env.ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
    let (key, _) = only_cache_entry(&env.root().join("run/runtime"));
    let o = env.sk(&["-D", "exec", &name, "grep", "Seccomp:", "/proc/self/status"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout(&o).contains("Seccomp:\t2"), "{}", stdout(&o));
    assert!(
        err.contains(&format!("seccomp: filter from cache {key}")),
        "skiff exec must load the init's cached filter: {err}"
    );
    assert!(!err.contains("compiled filter"), "{err}");
    // Without -D nothing extra is printed.
    let o = env.sk(&["exec", &name, "true"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    env.ok(&["rm", "-f", &name]);
}
