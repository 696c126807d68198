//! Integration tests of `skiff-runtime`: real containers in real namespaces, asserted from inside.

use serde_json::{json, Value};
use skiff_tests::*;
use std::path::Path;

fn run_sh(b: &mut Bundle, script: &str) -> std::process::Output {
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    let rt = Runtime::new();
    rt.run(b, &unique("sh"))
}

#[test]
fn init_is_pid1_with_hostname_env_and_cwd() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["hostname"] = "skiff-box".into();
    b.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("FOO=bar baz".into());
    b.config["process"]["cwd"] = "/work/dir".into();
    let out = ok(&run_sh(&mut b, "echo $$; hostname; echo $FOO; pwd"));
    assert_eq!(out, "1\nskiff-box\nbar baz\n/work/dir\n");
}

#[test]
fn exit_codes_propagate() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    assert_eq!(run_sh(&mut b, "exit 42").status.code(), Some(42));
    // Killed by a signal from outside: `run` reports 128 + signo, as runc does.
    let rt = Runtime::new();
    b.config["process"]["args"] = json!(["sleep", "1000"]);
    b.write();
    let id = unique("killed");
    let mut child = rt
        .cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    rt.wait_status(&id, "running");
    ok(&rt.out(&["kill", &id, "KILL"]));
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(
        !rt.root.path().join(&id).exists(),
        "run deletes the container after it exits"
    );
}

#[test]
fn mounts_are_visible_and_masked_paths_unreadable() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    let out = ok(&run_sh(
        &mut b,
        "grep -c ' /proc .* - proc ' /proc/self/mountinfo; cat /proc/keys | wc -c; ls /sys/firmware | wc -l; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo readonly; \
         grep ' /dev/pts ' /proc/self/mountinfo | wc -l; ls -l /dev/null | cut -c1",
    ));
    assert_eq!(out, "1\n0\n0\nreadonly\n1\nc\n");
}

#[test]
fn capabilities_follow_the_config() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = caps.clone();
    }
    b.config["process"]["capabilities"]["inheritable"] = json!([]);
    b.config["process"]["capabilities"]["ambient"] = json!([]);
    let out = ok(&run_sh(
        &mut b,
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
    ));
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5.
    assert_eq!(
        out,
        "CapInh:\t0000000000000000\nCapPrm:\t0000000000000021\nCapEff:\t0000000000000021\nCapBnd:\t0000000000000021\nCapAmb:\t0000000000000000\n"
    );
}

#[test]
fn user_groups_umask_and_rlimits() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23});
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]);
    let out = ok(&run_sh(
        &mut b,
        "id -u; id -g; id -G; umask; ulimit -n; ulimit -Hn",
    ));
    assert_eq!(out, "1000\n1001\n1001 10 20\n0027\n512\n1000\n");
}

#[test]
fn lifecycle_create_start_kill_delete_cleans_up() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let cg = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    b.write();
    let id = unique("life");
    let pidfile = b.path().join("pid");
    ok(&rt.out_detached(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]));
    let s = rt.state(&id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], id.as_str());
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert!(
        Path::new(&format!("/sys/fs/cgroup/memory{cg}")).exists(),
        "cgroup created"
    );
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{cg}/cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init placed in its cgroup"
    );
    // `list` shows it.
    let l: Value = serde_json::from_str(&ok(&rt.out(&["list", "--format", "json"]))).unwrap();
    assert_eq!(l[0]["id"], id.as_str());
    ok(&rt.out(&["start", &id]));
    assert_eq!(rt.state(&id)["status"], "running");
    // Starting twice is an error.
    assert!(!rt.out(&["start", &id]).status.success());
    // Deleting a running container without --force is refused.
    let d = rt.out(&["delete", &id]);
    assert!(!d.status.success());
    assert!(stderr(&d).contains("not stopped"), "{}", stderr(&d));
    ok(&rt.out(&["kill", &id, "KILL"]));
    rt.wait_status(&id, "stopped");
    ok(&rt.out(&["delete", &id]));
    assert!(!rt.out(&["state", &id]).status.success());
    assert!(!rt.root.path().join(&id).exists(), "state dir removed");
    for ctl in ["memory", "pids", "cpu", "freezer", "unified"] {
        assert!(
            !Path::new(&format!("/sys/fs/cgroup/{ctl}{cg}")).exists(),
            "cgroup {ctl} removed"
        );
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(b.rootfs().to_str().unwrap()),
        "no mount of the rootfs left on the host"
    );
}

#[test]
fn signals_are_delivered() {
    require_root();
    let rt = Runtime::new();
    let out = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox(&["sh", "-c", "trap 'echo got-term > /out/sig; exit 7' TERM; echo ready > /out/ready; while true; do sleep 0.05; done"]);
    b.bind(out.path(), "/out", false);
    b.write();
    let id = unique("sig");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    for _ in 0..200 {
        if out.path().join("ready").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ok(&rt.out(&["kill", &id, "TERM"]));
    rt.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(out.path().join("sig")).unwrap(),
        "got-term\n"
    );
    ok(&rt.out(&["delete", &id]));
}

#[test]
fn exec_joins_the_running_container() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["hostname"] = "exec-box".into();
    b.write();
    let id = unique("exec");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let out = ok(&rt.out(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $X; pwd; echo $$",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], &["exec-box", "sleep 1000 ", "1", "/tmp"]);
    assert_ne!(lines[4], "1", "exec'd process is not the init");
    let e5 = rt.out(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(e5.status.code(), Some(5), "{}", stderr(&e5));
    let e = rt.out(&["exec", &id, "no-such-binary"]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("executable file not found"),
        "{}",
        stderr(&e)
    );
    // ps --format json lists the init.
    let pids: Vec<i64> =
        serde_json::from_str(&ok(&rt.out(&["ps", "--format", "json", &id]))).unwrap();
    assert!(pids.contains(&rt.state(&id)["pid"].as_i64().unwrap()));
    ok(&rt.out(&["delete", "--force", &id]));
}

#[test]
fn terminal_via_console_socket() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::busybox(&["sh", "-c", "tty; stty size; echo hello-tty"]);
    b.config["process"]["terminal"] = true.into();
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    b.write();
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = unique("tty");
    let rt_root = rt.root.path().to_path_buf();
    let bpath = b.path().to_path_buf();
    let sock2 = sock.clone();
    let id2 = id.clone();
    let creator = std::thread::spawn(move || {
        std::process::Command::new(bin("skiff-runtime"))
            .arg("--root")
            .arg(&rt_root)
            .args([
                "create",
                "--bundle",
                bpath.to_str().unwrap(),
                "--console-socket",
                sock2.to_str().unwrap(),
                &id2,
            ])
            .output()
            .unwrap()
    });
    let (conn, _) = listener.accept().unwrap();
    let master = skiff_runtime_recv(conn.as_raw_fd());
    let o = creator.join().unwrap();
    ok(&o);
    ok(&rt.out(&["start", &id]));
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    while !text.contains("hello-tty") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("hello-tty"), "{text}");
    rt.wait_status(&id, "stopped");
    ok(&rt.out(&["delete", &id]));
}

/// Receive the pty master fd from a console-socket connection.
fn skiff_runtime_recv(fd: i32) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([i32; 1]);
    let r = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    for c in r.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel installed this fd for us.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(v[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn hooks_fire_in_order_with_state_on_stdin() {
    require_root();
    let log = tempfile::tempdir().unwrap();
    let lp = log.path().join("log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $s\" | cut -c1-60 >> {}", lp.display())]});
    let mut b = Bundle::busybox(&["true"]);
    b.bind(log.path(), "/hooklog", false);
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        // startContainer runs inside the container: its path and log live in the container.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooklog/log"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    let rt = Runtime::new();
    ok(&rt.run(&b, &unique("hooks")));
    let text = std::fs::read_to_string(&lp).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("prestart {\"annotations\":{},\"bundle\":"),
        "state JSON on stdin: {text}"
    );
}

#[test]
fn failing_hook_fails_create_and_leaves_nothing() {
    require_root();
    let mut b = Bundle::busybox(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    let rt = Runtime::new();
    let id = unique("badhook");
    let o = rt.run(&b, &id);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("CreateRuntime hook"), "{}", stderr(&o));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn user_namespace_with_mapping() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // Files must be owned by the mapped root to be usable.
    std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    let out = ok(&run_sh(&mut b, "id -u; cat /proc/self/uid_map | tr -s ' '"));
    assert_eq!(out, "0\n 0 100000 65536\n");
}

#[test]
fn time_namespace_offsets() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 1000, "nanosecs": 0}});
    let out = ok(&run_sh(&mut b, "cut -d. -f1 /proc/uptime"));
    let up: u64 = out.trim().parse().unwrap();
    assert!(
        up >= 86400 * 1000,
        "uptime {up} includes the boottime offset"
    );
}

#[test]
fn cgroup_namespace_shows_own_root() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    let out = ok(&run_sh(
        &mut b,
        "grep -E ':(memory|pids):' /proc/self/cgroup | cut -d: -f3 | sort -u",
    ));
    assert_eq!(out, "/\n");
}

#[test]
fn join_network_namespace_by_path() {
    require_root();
    let rt = Runtime::new();
    let a = Bundle::busybox(&["sleep", "1000"]);
    a.write();
    let ida = unique("neta");
    ok(&rt.out_detached(&["run", "-d", "--bundle", a.path().to_str().unwrap(), &ida]));
    let pid = rt.state(&ida)["pid"].as_i64().unwrap();
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut b = Bundle::busybox(&["readlink", "/proc/self/ns/net"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = format!("/proc/{pid}/ns/net").into();
        }
    }
    let out = ok(&rt.run(&b, &unique("netb")));
    assert_eq!(out.trim(), want.to_str().unwrap());
    ok(&rt.out(&["delete", "-f", &ida]));
}

#[test]
fn readonly_rootfs_sysctl_and_no_pivot() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["root"]["readonly"] = true.into();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let out = ok(&run_sh(
        &mut b,
        "touch /x 2>/dev/null && echo rw || echo ro; cat /proc/sys/net/ipv4/ip_forward",
    ));
    assert_eq!(out, "ro\n1\n");
    let rt = Runtime::new();
    b.config["process"]["args"] = json!(["sh", "-c", "echo $$; ls /bin/busybox"]);
    b.write();
    let o = rt
        .cmd(&[
            "run",
            "--no-pivot",
            "--bundle",
            b.path().to_str().unwrap(),
            &unique("nopivot"),
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&o), "1\n/bin/busybox\n");
}

#[test]
fn devices_from_config_are_created() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
    let out = ok(&run_sh(&mut b, "echo x > /dev/mynull && echo ok; ls -l /dev/zero /dev/full /dev/urandom /dev/tty | cut -c1; readlink /dev/ptmx; readlink /dev/fd"));
    assert_eq!(out, "ok\nc\nc\nc\nc\npts/ptmx\n/proc/self/fd\n");
}

#[test]
fn bad_config_is_a_one_line_error_and_leaves_nothing() {
    require_root();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "linux.namespaces",
            Box::new(|c: &mut Value| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "bogus"}))
            }),
        ),
        (
            "mounts[0].destination",
            Box::new(|c: &mut Value| c["mounts"][0]["destination"] = "relative/dir".into()),
        ),
        (
            "root.path",
            Box::new(|c: &mut Value| c["root"]["path"] = "no-such-rootfs".into()),
        ),
        (
            "process.args",
            Box::new(|c: &mut Value| c["process"]["args"] = json!([])),
        ),
        (
            "process.cwd",
            Box::new(|c: &mut Value| c["process"]["cwd"] = "rel".into()),
        ),
    ];
    for (field, f) in cases {
        let mut b = Bundle::busybox(&["true"]);
        f(&mut b.config);
        let rt = Runtime::new();
        let id = unique("bad");
        let o = rt.run(&b, &id);
        assert_eq!(o.status.code(), Some(1), "{field}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{field}: one line: {err}");
        assert!(err.contains(field), "{field} named in: {err}");
        assert!(
            !rt.root.path().join(&id).exists(),
            "{field}: nothing left behind"
        );
    }
    // Malformed JSON.
    let b = Bundle::busybox(&["true"]);
    std::fs::write(b.path().join("config.json"), "{\"ociVersion\": \"1.0.2\", ").unwrap();
    let rt = Runtime::new();
    let o = rt
        .cmd(&["run", "--bundle", b.path().to_str().unwrap(), "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

#[test]
fn spec_and_features_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(bin("skiff-runtime"))
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    ok(&o);
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(c["ociVersion"].as_str().unwrap().starts_with("1."));
    // A second spec refuses to overwrite.
    let o = std::process::Command::new(bin("skiff-runtime"))
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(c["hostname"], "skiff");
    let rl = tempfile::tempdir().unwrap();
    ok(&std::process::Command::new(bin("skiff-runtime"))
        .args(["spec", "--rootless", "--bundle"])
        .arg(rl.path())
        .output()
        .unwrap());
    let c: Value =
        serde_json::from_slice(&std::fs::read(rl.path().join("config.json")).unwrap()).unwrap();
    assert!(c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!({"type": "user"})));
    assert_eq!(c["linux"]["uidMappings"][0]["size"], 1);
    let f: Value = serde_json::from_slice(
        &std::process::Command::new(bin("skiff-runtime"))
            .arg("features")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("time")));
    let v = std::process::Command::new(bin("skiff-runtime"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(stdout(&v).contains("skiff-runtime"));
}

#[test]
fn unknown_runc_global_flags_are_accepted() {
    let rt = Runtime::new();
    let log = rt.root.path().join("log.json");
    let o = rt.out(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "--systemd-cgroup",
        "list",
    ]);
    ok(&o);
    // Errors go to the json log too.
    let o = rt.out(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!o.status.success());
    let line = std::fs::read_to_string(&log).unwrap();
    let v: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
}

#[test]
fn rootless_container_as_an_unprivileged_user() {
    require_root();
    // The whole bundle must be readable by the unprivileged user (65534, "nobody").
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "id -u; echo $$; cat /proc/self/uid_map | tr -s ' '; echo x > /dev/null && echo devnull-ok",
    ]);
    let ns: Vec<Value> = ["pid", "ipc", "uts", "mount", "user", "network"]
        .iter()
        .map(|t| json!({"type": t}))
        .collect();
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 65534, "size": 1}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 65534, "size": 1}]);
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] != "cgroup")
        .map(|m| {
            let mut m = m.clone();
            if m["destination"] == "/dev/pts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            m
        })
        .collect();
    b.config["mounts"] = json!(mounts);
    b.write();
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(b.path())
        .status()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    std::process::Command::new("chown")
        .arg("65534:65534")
        .arg(root.path())
        .status()
        .unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("skiff-runtime"))
        .arg("--root")
        .arg(root.path())
        .args([
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            &unique("rootless"),
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&o), "0\n1\n 0 65534 1\ndevnull-ok\n");
}

#[test]
fn preserve_fds_pass_exactly_the_extra_fds() {
    use std::os::unix::process::CommandExt;
    require_root();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3",
    ]);
    b.write();
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("msg"), "through-fd-3").unwrap();
    let f = std::fs::File::open(dir.path().join("msg")).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut cmd = rt.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &unique("fds"),
    ]);
    // SAFETY: dup2 in the child before exec; only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2(3, 3) keeps close-on-exec: clear it explicitly.
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let out = ok(&cmd.output().unwrap());
    // stdio, the preserved fd 3, and the fd `ls` itself opens for /proc/self/fd.
    assert_eq!(out, "0 1 2 3 4 through-fd-3");
}

#[test]
fn idmapped_bind_mount_shifts_ownership() {
    require_root();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "x").unwrap();
    std::process::Command::new("chown")
        .arg("0:0")
        .arg(host.path().join("f"))
        .status()
        .unwrap();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "stat -c %u:%g /idm/f; grep -c ' /idm .*idmapped' /proc/self/mountinfo",
    ]);
    let m = json!({"destination": "/idm", "type": "bind", "source": host.path(), "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]});
    b.config["mounts"].as_array_mut().unwrap().push(m);
    let rt = Runtime::new();
    assert_eq!(ok(&rt.run(&b, &unique("idmap"))), "1000:2000\n1\n");
}

#[test]
fn kill_all_signals_every_process_in_the_cgroup() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    b.write();
    let id = unique("killall");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let mut pids: Vec<i64> = Vec::new();
    for _ in 0..200 {
        pids = serde_json::from_str(&ok(&rt.out(&["ps", "--format", "json", &id]))).unwrap();
        if pids.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pids.len(), 3, "init and two sleeps: {pids:?}");
    ok(&rt.out(&["kill", "--all", &id, "KILL"]));
    rt.wait_status(&id, "stopped");
    for p in pids {
        let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        assert!(!alive, "pid {p} survived kill --all");
    }
    ok(&rt.out(&["delete", &id]));
}

#[test]
fn hook_timeout_is_enforced() {
    require_root();
    let mut b = Bundle::busybox(&["true"]);
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let rt = Runtime::new();
    let id = unique("hooktimeout");
    let t = std::time::Instant::now();
    let o = rt.run(&b, &id);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("timed out after 1s"), "{}", stderr(&o));
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn exec_with_tty_over_console_socket() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    require_root();
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    b.write();
    let id = unique("exectty");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("c.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut child = rt
        .cmd(&[
            "exec",
            "-t",
            "-d",
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "tty; echo exec-tty-ok",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = skiff_runtime_recv(conn.as_raw_fd());
    assert!(child.wait().unwrap().success());
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 512];
    while !text.contains("exec-tty-ok") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("exec-tty-ok"), "{text}");
    ok(&rt.out(&["delete", "-f", &id]));
}

#[test]
fn rootfs_propagation_private_and_shared() {
    require_root();
    for (prop, want) in [("rprivate", "private"), ("shared", "shared")] {
        let mut b = Bundle::busybox(&["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo | grep -q shared: && echo shared || echo private"]);
        b.config["linux"]["rootfsPropagation"] = prop.into();
        let rt = Runtime::new();
        assert_eq!(
            ok(&rt.run(&b, &unique("prop"))).trim(),
            want,
            "rootfsPropagation {prop}"
        );
    }
}

/// runtime-spec 1.2 process attributes, read back from inside the container (and from an `exec`'d
/// process): linux.personality, process.scheduler, process.ioPriority, linux.memoryPolicy.
#[test]
fn personality_scheduler_io_priority_and_memory_policy_apply() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let arch = std::env::consts::ARCH;
    let linux32 = match arch {
        "x86_64" => Some("i686"),
        "aarch64" => Some("armv8l"),
        _ => None,
    };
    if linux32.is_some() {
        b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    }
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let numa = Path::new("/proc/self/numa_maps").exists();
    if numa {
        b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    } else {
        skip("memoryPolicy: this kernel has no NUMA support (/proc/self/numa_maps)");
    }
    b.write();
    let id = unique("attrs");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    // uname -m; nice and policy (fields 19 and 41 of stat); ionice; the memory policy of the stack.
    let script = "uname -m; cut -d' ' -f19,41 /proc/self/stat; ionice -p $$; \
                  grep -c ' interleave:0 ' /proc/self/numa_maps || true";
    let init = ok(&rt.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/1/stat | cut -d' ' -f19,41",
    ]));
    assert_eq!(init, "7 3\n", "the init runs SCHED_BATCH at nice 7");
    let out = ok(&rt.out(&["exec", &id, "sh", "-c", script]));
    let lines: Vec<&str> = out.lines().collect();
    if let Some(m) = linux32 {
        assert_eq!(
            lines[0], m,
            "personality LINUX32 holds for exec'd processes: {out}"
        );
    }
    ok(&rt.out(&["delete", "--force", &id]));
    // The init's own view: run in the foreground.
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    let out = ok(&rt.run(&b, &unique("attrs-run")));
    let lines: Vec<&str> = out.lines().collect();
    if let Some(m) = linux32 {
        assert_eq!(lines[0], m, "{out}");
    }
    assert_eq!(lines[1], "7 3", "nice 7, SCHED_BATCH (3): {out}");
    assert!(
        lines[2].contains("best-effort") && lines[2].contains("prio 6"),
        "{out}"
    );
    if numa {
        assert_ne!(lines[3], "0", "pages are interleaved over node 0: {out}");
    }
}

/// Settings skiff cannot apply are refused in one line naming the field, and absent from
/// `features`; values the kernel would reject are refused before anything exists.
#[test]
fn unsupported_or_invalid_spec_1_2_settings_are_refused() {
    require_root();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "linux.intelRdt",
            Box::new(|c: &mut Value| c["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
        (
            "linux.netDevices",
            Box::new(|c: &mut Value| c["linux"]["netDevices"] = json!({"skiff-none9": {}})),
        ),
        (
            "process.execCPUAffinity.final",
            Box::new(|c: &mut Value| c["process"]["execCPUAffinity"] = json!({"final": "3-1"})),
        ),
        (
            "linux.personality.flags",
            Box::new(|c: &mut Value| {
                c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["X"]})
            }),
        ),
        (
            "process.scheduler.priority",
            Box::new(|c: &mut Value| {
                c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 0})
            }),
        ),
        (
            "process.ioPriority.priority",
            Box::new(|c: &mut Value| {
                c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9})
            }),
        ),
        (
            "linux.memoryPolicy.nodes",
            Box::new(|c: &mut Value| {
                c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "1-0"})
            }),
        ),
    ];
    for (field, f) in cases {
        let mut b = Bundle::busybox(&["true"]);
        f(&mut b.config);
        let rt = Runtime::new();
        let id = unique("unsup");
        let o = rt.run(&b, &id);
        assert_eq!(o.status.code(), Some(1), "{field}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{field}: one line: {err}");
        assert!(err.contains(field), "{field} named in: {err}");
        assert!(!rt.root.path().join(&id).exists(), "{field}: nothing left");
    }
    let f: Value = serde_json::from_slice(
        &std::process::Command::new(bin("skiff-runtime"))
            .arg("features")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(f["linux"]["intelRdt"]["enabled"], false);
    assert_eq!(f["linux"]["netDevices"]["enabled"], true);
}

/// `domainname` and `process.noNewPrivileges`, read back from inside (the audit of issue 19: each
/// accepted setting is seen to take effect).
#[test]
fn domainname_and_no_new_privileges_apply() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    b.config["domainname"] = "skiff.example".into();
    b.config["process"]["noNewPrivileges"] = true.into();
    let out = ok(&run_sh(
        &mut b,
        "cat /proc/sys/kernel/domainname; grep NoNewPrivs /proc/self/status | tr -d ' \\t'",
    ));
    assert_eq!(out, "skiff.example\nNoNewPrivs:1\n");
    b.config["process"]["noNewPrivileges"] = false.into();
    let out = ok(&run_sh(
        &mut b,
        "grep NoNewPrivs /proc/self/status | tr -d ' \\t'",
    ));
    assert_eq!(out, "NoNewPrivs:0\n");
}
