//! Interactive sessions through a real pseudo-terminal: `exec -it`, `exec -t`, `exec -i`,
//! `run -it`, `attach`, `start -ai` and docker's detach keys. Each test drives the `skiff` binary
//! on a pty of its own (`skiff_tests::Pty`), the way a user's terminal would.

use std::time::{Duration, Instant};

use skiff_tests::{EngineEnv, Pty};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn running(env: &EngineEnv, name: &str) -> bool {
    env.ok(&["inspect", "-f", "{{.State.Running}}", name])
        .trim()
        == "true"
}

fn cooked(t: &Pty) -> bool {
    let l = t.lflag();
    l & libc::ICANON != 0 && l & libc::ECHO != 0 && l & libc::ISIG != 0
}

/// Waits until the child has put the terminal into raw mode (it is attached and relaying).
fn wait_raw(t: &Pty) {
    let end = Instant::now() + Duration::from_secs(20);
    while t.lflag() & libc::ICANON != 0 {
        assert!(Instant::now() < end, "the terminal never went raw");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_it_is_live_sized_interruptible_and_exits_with_the_code() {
    let env = EngineEnv::new("tty-exec", |_| {});
    env.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    let mut t = Pty::spawn(env.cmd(&["exec", "-it", "ex", "sh"]), 24, 80);
    t.expect("# ", 30);
    // Output arrives while the shell runs, not when it exits.
    t.write(b"echo hi-$((1+1))\r");
    t.expect("hi-2", 10);
    assert!(t.child.try_wait().unwrap().is_none(), "{}", t.text());
    assert!(
        t.lflag() & libc::ICANON == 0,
        "the local terminal is not raw"
    );
    // The size at start, and after a resize (SIGWINCH → TIOCSWINSZ on the container's pty).
    t.write(b"stty size\r");
    t.expect("24 80", 10);
    t.resize(33, 99);
    std::thread::sleep(Duration::from_millis(300));
    t.write(b"stty size\r");
    t.expect("33 99", 10);
    // Ctrl-C is a byte through the pty: it interrupts the container's foreground job, and the
    // shell (and skiff) survive. Sent again if it raced the start of `sleep`.
    t.write(b"echo go-$((1+2)); sleep 100\r");
    t.expect("go-3", 10);
    let mut interrupted = false;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        t.write(b"\x03");
        if t.try_expect("# ", Duration::from_secs(2)).is_some() {
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "ctrl-c did not stop sleep: {}", t.text());
    t.write(b"echo alive-$((40+2))\r");
    t.expect("alive-42", 10);
    assert!(t.child.try_wait().unwrap().is_none(), "{}", t.text());
    t.write(b"exit 3\r");
    let st = t.wait(20).expect("exec -it did not end with its shell");
    assert_eq!(st.code(), Some(3), "{}", t.text());
    assert!(!t.text().contains("\r\r\n"), "doubled CR: {:?}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
}

/// `exec -it` on the fast path (`-D` names it): the static `skiff-exec` helper enters the
/// container, the pty is made there, and its master comes back through the helper to the CLI,
/// which relays it with the size and exit code as before.
#[test]
fn exec_it_through_the_helper() {
    let env = EngineEnv::new("tty-exec-helper", |_| {});
    env.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    let mut t = Pty::spawn(env.cmd(&["-D", "exec", "-it", "ex", "sh"]), 24, 80);
    t.expect("entering the container through", 30);
    t.expect("skiff-exec", 10);
    t.expect("# ", 30);
    t.write(b"tty; stty size\r");
    t.expect("/dev/pts/", 10);
    t.expect("24 80", 10);
    t.write(b"exit 4\r");
    let st = t.wait(20).expect("exec -it did not end with its shell");
    assert_eq!(st.code(), Some(4), "{}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
}

#[test]
fn exec_t_without_i_does_not_double_carriage_returns() {
    let env = EngineEnv::new("tty-exec-t", |_| {});
    env.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    let mut t = Pty::spawn(
        env.cmd(&["exec", "-t", "ex", "sh", "-c", "echo one; echo two; exit 4"]),
        24,
        80,
    );
    let st = t.wait(30).expect("exec -t did not end");
    assert_eq!(st.code(), Some(4), "{}", t.text());
    let out = t.text();
    assert!(out.contains("one\r\ntwo\r\n"), "{out:?}");
    assert!(!out.contains("\r\r\n"), "doubled CR: {out:?}");
    assert!(cooked(&t), "the terminal was left changed");
}

#[test]
fn exec_i_without_t_pipes_stdin_and_closes_it_at_eof() {
    let env = EngineEnv::new("tty-exec-i", |_| {});
    env.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    let mut c = env.cmd(&[
        "exec",
        "-i",
        "ex",
        "sh",
        "-c",
        "cat; echo err >&2; echo end",
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"x\ny\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x\ny\nend\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
}

#[test]
fn exec_detach_keys_leave_the_process_running() {
    let env = EngineEnv::new("tty-exec-detach", |_| {});
    env.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "1000"]);
    let mut t = Pty::spawn(env.cmd(&["exec", "-it", "ex", "sh"]), 24, 80);
    t.expect("# ", 30);
    t.write(b"\x10\x11");
    let st = t.wait(20).expect("ctrl-p ctrl-q did not detach exec");
    assert_eq!(st.code(), Some(1), "{}", t.text());
    assert!(t.text().contains("read escape sequence"), "{}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
    let ps = env.ok(&["exec", "ex", "ps"]);
    assert!(
        ps.lines().any(|l| l.trim_end().ends_with(" sh")),
        "the detached shell is gone: {ps}"
    );
    // A custom sequence; its prefix followed by another key passes both through.
    let mut t = Pty::spawn(
        env.cmd(&["exec", "-it", "--detach-keys", "ctrl-x,y", "ex", "cat"]),
        24,
        80,
    );
    wait_raw(&t);
    t.write(b"\x18q\r");
    t.expect("^Xq", 10);
    t.write(b"\x10\x11ab\r");
    t.expect("ab", 10);
    t.write(b"\x18y");
    let st = t.wait(20).expect("ctrl-x y did not detach exec");
    assert_eq!(st.code(), Some(1), "{}", t.text());
}

#[test]
fn run_it_and_attach_detach_with_default_and_custom_keys() {
    let env = EngineEnv::new("tty-run", |_| {});
    let mut t = Pty::spawn(
        env.cmd(&["run", "-it", "--name", "rt", "busybox", "sh"]),
        24,
        80,
    );
    t.expect("# ", 30);
    t.write(b"echo r-$((2+3))\r");
    t.expect("r-5", 10);
    t.write(b"\x10\x11");
    let st = t.wait(20).expect("ctrl-p ctrl-q did not detach run -it");
    assert_eq!(st.code(), Some(0), "{}", t.text());
    assert!(!t.text().contains("read escape sequence"), "{}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
    assert!(running(&env, "rt"));

    // attach: live again, with the size of the new terminal; detaching is docker's error, exit 1.
    let mut t = Pty::spawn(env.cmd(&["attach", "rt"]), 30, 90);
    wait_raw(&t);
    t.write(b"echo att-$((3+4)); stty size\r");
    t.expect("att-7", 10);
    t.expect("30 90", 10);
    t.write(b"\x10\x11");
    let st = t.wait(20).expect("ctrl-p ctrl-q did not detach attach");
    assert_eq!(st.code(), Some(1), "{}", t.text());
    assert!(t.text().contains("read escape sequence"), "{}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
    assert!(running(&env, "rt"));

    // A custom sequence on run; a prefix followed by another key passes both bytes through
    // (the container's line discipline echoes ctrl-x as ^X).
    let mut t = Pty::spawn(
        env.cmd(&[
            "run",
            "-it",
            "--detach-keys",
            "ctrl-x,y",
            "--name",
            "ct",
            "busybox",
            "cat",
        ]),
        24,
        80,
    );
    wait_raw(&t);
    t.write(b"\x18q\r");
    t.expect("^Xq", 20);
    t.write(b"\x18y");
    let st = t.wait(20).expect("ctrl-x y did not detach run -it");
    assert_eq!(st.code(), Some(0), "{}", t.text());
    assert!(running(&env, "ct"));
    // ... and on attach (the default sequence is then just two bytes for the container).
    let mut t = Pty::spawn(env.cmd(&["attach", "--detach-keys", "a,b", "ct"]), 24, 80);
    wait_raw(&t);
    t.write(b"xay\r");
    t.expect("xay", 10);
    t.write(b"ab");
    let st = t.wait(20).expect("a b did not detach attach");
    assert_eq!(st.code(), Some(1), "{}", t.text());
    assert!(running(&env, "ct"));

    // start -ai: interactive again, and the exit code comes back.
    env.ok(&["create", "-it", "--name", "st", "busybox", "sh"]);
    let mut t = Pty::spawn(env.cmd(&["start", "-ai", "st"]), 24, 80);
    t.expect("# ", 30);
    t.write(b"exit 5\r");
    let st = t.wait(20).expect("start -ai did not end");
    assert_eq!(st.code(), Some(5), "{}", t.text());
    assert!(cooked(&t), "the terminal was left raw");
}

#[test]
fn a_signal_restores_the_terminal() {
    let env = EngineEnv::new("tty-signal", |_| {});
    env.ok(&["run", "-dit", "--name", "rt", "busybox", "sh"]);
    let mut t = Pty::spawn(env.cmd(&["attach", "rt"]), 24, 80);
    wait_raw(&t);
    // SAFETY: kill with integer arguments, to our own child.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    let st = t.wait(20).expect("attach survived SIGTERM");
    assert!(!st.success());
    assert!(cooked(&t), "SIGTERM left the terminal raw");
    assert!(running(&env, "rt"));
}

#[test]
fn tty_without_a_terminal_and_bad_detach_keys_are_refused_as_docker_does() {
    let env = EngineEnv::new("tty-refuse", |_| {});
    env.ok(&["run", "-dit", "--name", "rt", "busybox", "sh"]);
    // stdin is /dev/null here.
    for args in [
        &["run", "-it", "busybox", "true"][..],
        &["exec", "-it", "rt", "true"],
        &["attach", "rt"],
    ] {
        let o = env.sk(args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("the input device is not a TTY"),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // -t alone needs no terminal; nor does -d.
    assert_eq!(
        env.ok(&["run", "--rm", "-t", "busybox", "echo", "x"]),
        "x\r\n"
    );
    env.ok(&["exec", "-dit", "rt", "true"]);
    for (args, want) in [
        (
            &["run", "--detach-keys", "ctrl-P", "busybox", "true"][..],
            125,
        ),
        (&["exec", "-it", "--detach-keys", "shift-a", "rt", "sh"], 1),
        (&["attach", "--detach-keys", "ctrl-1", "rt"], 1),
        (&["start", "-a", "--detach-keys", "a,", "rt"], 1),
    ] {
        let o = env.sk(args);
        assert_eq!(code(&o), want, "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("invalid detach keys ("),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
