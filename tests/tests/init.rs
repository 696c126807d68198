//! `--init`: skiff's static init as PID 1 of a real busybox container (no libc in the rootfs),
//! run by `skiff-runtime run`: exit codes propagate, signals are forwarded, orphans are reaped.

use std::path::Path;
use std::time::{Duration, Instant};

use skiff_engine::init::{init_binary_path, wrap_args, INIT_PATH};
use skiff_tests::{require_root, stdout, unique, Bundle, Runtime};

/// A busybox bundle whose process is `args`, optionally behind the init.
fn bundle(store: &Path, args: &[&str], with_init: bool) -> Bundle {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args = if with_init { wrap_args(&args) } else { args };
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut b = Bundle::busybox(&refs);
    if with_init {
        let bin = init_binary_path(store).unwrap();
        b.bind(&bin, INIT_PATH, true);
    }
    // The rootfs has no libc at all: the init must be static to start.
    assert!(!b.rootfs().join("lib").exists());
    b
}

fn store() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-init-")
        .tempdir()
        .unwrap()
}

#[test]
fn exit_codes_propagate() {
    require_root();
    let s = store();
    let rt = Runtime::new();
    let cases: [(&[&str], i32); 4] = [
        (&["sh", "-c", "echo hi; exit 7"], 7),
        (&["true"], 0),
        (&["sh", "-c", "kill -9 $$"], 137),
        (&["/no/such/binary"], 127),
    ];
    for (args, want) in cases {
        let b = bundle(s.path(), args, true);
        let o = rt.run(&b, &unique("init-exit"));
        assert_eq!(
            o.status.code(),
            Some(want),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if want == 7 {
            assert_eq!(stdout(&o), "hi\n");
        }
    }
}

#[test]
fn init_is_pid1_and_reaps_orphans() {
    require_root();
    let s = store();
    let rt = Runtime::new();
    // Orphans (double-forked children) are reparented to PID 1, which must be the init; each
    // reports its parent pid, then exits. Afterwards no zombie may be left (an init that did not
    // reap would leave five). `sleep` runs as an external process, and the shell is not PID 1.
    let script = "for i in 1 2 3 4 5; do (sh -c 'sleep 0.3; echo ppid=$(cut -d\\  -f4 /proc/$$/stat)' &) ; done; \
                  /bin/sleep 1; echo pid1=$(cat /proc/1/comm); \
                  for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s; done | grep -c Z || true";
    let b = bundle(s.path(), &["sh", "-c", script], true);
    let o = rt.run(&b, &unique("init-reap"));
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        out.matches("ppid=1\n").count(),
        5,
        "orphans not reparented to the init: {out}"
    );
    assert!(out.contains("pid1=docker-init"), "{out}");
    assert!(out.ends_with("\n0\n"), "zombies left with the init: {out}");
}

/// Starts `run` in the background and waits until the container is running.
fn start_bg(rt: &Runtime, b: &Bundle, id: &str) -> std::process::Child {
    b.write();
    let child = rt
        .cmd(&["run", "--bundle", b.path().to_str().unwrap(), id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rt.wait_status(id, "running");
    child
}

fn wait_exit(mut c: std::process::Child) -> (i32, String) {
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let o = c.wait_with_output().unwrap();
            return (st.code().unwrap_or(-1), stdout(&o));
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "container did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_is_forwarded() {
    require_root();
    let s = store();
    let rt = Runtime::new();

    // A shell that traps TERM: the init must pass it on; the trap's exit code comes back out.
    let b = bundle(
        s.path(),
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
        ],
        true,
    );
    let id = unique("init-term");
    let c = start_bg(&rt, &b, &id);
    std::thread::sleep(Duration::from_millis(300));
    assert!(rt.out(&["kill", &id, "TERM"]).status.success());
    let (code, out) = wait_exit(c);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("got-term"), "{out}");

    // A plain sleep has no handler: killed by the forwarded signal, the init exits 128+15.
    let b = bundle(s.path(), &["sleep", "100"], true);
    let id = unique("init-term2");
    let c = start_bg(&rt, &b, &id);
    std::thread::sleep(Duration::from_millis(200));
    assert!(rt.out(&["kill", &id, "TERM"]).status.success());
    assert_eq!(wait_exit(c).0, 143);

    // The whole process group gets it: a background job of the shell dies too, and the shell's
    // `wait` returns, so the container ends instead of hanging on the job.
    let b = bundle(s.path(), &["sh", "-c", "sleep 100 & wait"], true);
    let id = unique("init-term3");
    let c = start_bg(&rt, &b, &id);
    std::thread::sleep(Duration::from_millis(200));
    assert!(rt.out(&["kill", &id, "TERM"]).status.success());
    assert_eq!(wait_exit(c).0, 143);

    // Control without the init: PID 1 ignores a TERM it has no handler for.
    let b = bundle(s.path(), &["sleep", "100"], false);
    let id = unique("noinit-term");
    let c = start_bg(&rt, &b, &id);
    std::thread::sleep(Duration::from_millis(200));
    assert!(rt.out(&["kill", &id, "TERM"]).status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rt.state(&id)["status"], "running");
    assert!(rt.out(&["kill", &id, "KILL"]).status.success());
    assert_eq!(wait_exit(c).0, 137);
}

#[test]
fn command_owns_the_terminal() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    require_root();
    let s = store();
    let rt = Runtime::new();
    // With a tty, the init makes the command's process group the terminal's foreground group
    // (so ^C, ^Z and job control reach the shell, as with tini): pgrp == tpgid inside.
    let mut b = bundle(
        s.path(),
        &[
            "sh",
            "-c",
            "echo pg=$(cut -d' ' -f5,8 /proc/$$/stat) pid=$$",
        ],
        true,
    );
    b.config["process"]["terminal"] = true.into();
    b.write();
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = unique("init-tty");
    let creator = {
        let (root, bpath, sock, id) = (
            rt.root.path().to_path_buf(),
            b.path().to_path_buf(),
            sock.clone(),
            id.clone(),
        );
        std::thread::spawn(move || {
            std::process::Command::new(skiff_tests::bin("skiff-runtime"))
                .arg("--root")
                .arg(&root)
                .args(["create", "--bundle", bpath.to_str().unwrap()])
                .args(["--console-socket", sock.to_str().unwrap(), &id])
                .output()
                .unwrap()
        })
    };
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd());
    assert!(creator.join().unwrap().status.success());
    assert!(rt.out(&["start", &id]).status.success());
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 512];
    while !text.contains("pid=") || !text.ends_with('\n') {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    rt.wait_status(&id, "stopped");
    assert!(rt.out(&["delete", &id]).status.success());
    let line = text.lines().find(|l| l.starts_with("pg=")).expect(&text);
    let nums: Vec<&str> = line
        .trim_start_matches("pg=")
        .split([' ', '='])
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty())
        .collect();
    assert_eq!(nums.len(), 3, "{line}");
    assert_eq!(
        nums[0], nums[1],
        "command's group is not the foreground group: {line}"
    );
    assert_eq!(nums[0], nums[2], "the command leads its own group: {line}");
    assert_ne!(nums[0], "1");
}

/// Receives the pty master from a console-socket connection.
fn recv_fd(fd: i32) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([i32; 1]);
    let r = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    for c in r.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel installed this fd for us; we own it from here.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(v[0]) };
        }
    }
    panic!("no fd received on the console socket");
}
