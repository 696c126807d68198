//! `run`/`create` refuse bad input before anything is recorded, and a run that fails later
//! leaves nothing behind; deep images (128 and 500 layers) run under a 200-character `--root`.
//! Real containers, overlay mounts and cgroups under a per-test `skiff-test-*` parent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use skiff_tests::{busybox_rootfs, clean_engine_root, skiff_cmd, stderr, stdout, EngineEnv};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Nothing of any container is left under `root`: no row, tree, lock, runtime state, mount or
/// cgroup under the test's parent `cgroup`.
fn assert_nothing_recorded(root: &Path, cgroup: &str, what: &str) {
    let o = skiff_cmd(root, cgroup, &["ps", "-aq"]).output().unwrap();
    assert_eq!(stdout(&o).trim(), "", "{what}: containers left");
    let entries = |p: PathBuf| -> Vec<String> {
        std::fs::read_dir(&p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.contains('@'))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !entries(root.join("containers")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        entries(root.join("containers")),
        Vec::<String>::new(),
        "{what}: trees left"
    );
    assert_eq!(
        entries(root.join("locks")),
        Vec::<String>::new(),
        "{what}: locks left"
    );
    assert_eq!(
        entries(root.join("run/containers")),
        Vec::<String>::new(),
        "{what}"
    );
    assert_eq!(
        entries(root.join("run/runtime")),
        Vec::<String>::new(),
        "{what}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "{what}: mounts left under {}",
        root.display()
    );
    for d in skiff_tests::cgroup_parent_dirs(cgroup) {
        let kids: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(
            kids.is_empty(),
            "{what}: cgroups left in {}: {kids:?}",
            d.display()
        );
    }
    let sql = |q: &str| {
        let o = Command::new("sqlite3")
            .arg(root.join("skiff.db"))
            .arg(q)
            .output()
            .expect("sqlite3 (scripts/deps.sh) must be installed");
        assert!(o.status.success(), "{what}: {q}: {}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    assert_eq!(
        sql("SELECT count(*) FROM containers"),
        "0",
        "{what}: rows left"
    );
    // The volume store makes its tables on first use.
    if sql("SELECT count(*) FROM sqlite_master WHERE name = 'container_volumes'") == "1" {
        let uses = sql("SELECT count(*) FROM container_volumes");
        assert_eq!(uses, "0", "{what}: volume uses left");
    }
}

/// A refused command: exit `want`, exactly one line on stderr (`skiff: ...`) containing `says`.
fn assert_refused(o: &Output, want: i32, says: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), want, "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err}");
    assert!(err.starts_with("skiff: "), "{what}: {err}");
    assert!(err.contains(says), "{what}: {err:?} lacks {says:?}");
    assert_eq!(stdout(o), "", "{what}: stdout");
}

#[test]
fn bad_flag_values_are_refused_in_one_line_and_record_nothing() {
    let env = EngineEnv::new("validate", |_| {});
    let root = env.root();
    #[rustfmt::skip]
    let table: &[(&[&str], &str)] = &[
        (&["--cpus", "NaN"], r#"invalid argument "NaN" for "--cpus" flag: failed to parse NaN as a rational number"#),
        (&["--cpus", "inf"], r#"invalid argument "inf" for "--cpus" flag"#),
        (&["--cpus", "-1"], r#"invalid argument "-1" for "--cpus" flag: Range of CPUs is from 0.01 to"#),
        (&["--cpus", "0.0000000001"], "value is too precise"),
        (&["-m", "99999999999999999999g"], r#"invalid argument "99999999999999999999g" for "-m, --memory" flag: invalid size"#),
        (&["-m", "4k"], "Minimum memory limit allowed is 6MB"),
        (&["-m", "64q"], r#"invalid argument "64q" for "-m, --memory" flag: invalid size: '64q'"#),
        (&["-m", "-1"], r#"invalid argument "-1" for "-m, --memory" flag: invalid size: '-1'"#),
        (&["--restart", "on-failure:-1"], "invalid restart policy: maximum retry count cannot be negative"),
        (&["--restart", "bogus"], "invalid restart policy: unknown policy 'bogus'"),
        (&["--restart", "always:3"], "maximum retry count can only be used with 'on-failure'"),
        (&["--shm-size", "-1"], r#"invalid argument "-1" for "--shm-size" flag: invalid size: '-1'"#),
        (&["--tmpfs", "/t:size=-1"], r#"invalid argument "/t:size=-1" for "--tmpfs" flag: invalid size: '-1'"#),
        (&["--mount", "type=tmpfs,target=/t,tmpfs-size=-1"], "invalid value for tmpfs-size: -1"),
        (&["--pids-limit", "abc"], r#"invalid argument "abc" for "--pids-limit" flag: parsing "abc": invalid syntax"#),
        (&["--pids-limit", "99999999999999999999"], "value out of range"),
        (&["--pids-limit", "1.5"], "invalid syntax"),
        (&["--ulimit", "nofile"], r#"invalid argument "nofile" for "--ulimit" flag: invalid ulimit argument: nofile"#),
        (&["--ulimit", "nofile=abc"], "invalid ulimit value"),
        (&["--ulimit", "nofile=2:1"], "soft limit must be less than or equal to hard limit"),
        (&["--ulimit", "wings=1"], "invalid ulimit type: wings"),
        (&["--stop-timeout", "1.5"], r#"invalid argument "1.5" for "--stop-timeout" flag"#),
        (&["--stop-timeout", "soon"], "invalid syntax"),
        // These roots disable the default bridge (tests/src: no_default_bridge).
        (&["--network", "bridge"], r#"network bridge not found (the default bridge is disabled: "bridge": "none" in daemon.json)"#),
        (&["--network", "nosuchnet"], "network nosuchnet not found"),
        (&["--network-alias", "x"], "network-scoped alias is supported only for containers in user defined networks"),
        (&["--network", "none", "--network", "other"], "conflicting options: cannot attach both user-defined and non-user-defined network-modes"),
        (&["--add-host", "gw:host-gateway"], "unable to derive the IP value for host-gateway"),
        (&["-p", "[::1]:8080:80"], "the IPv6 loopback [::1] cannot be forwarded"),
        (&["-p", "8010-8000:80"], "invalid hostPort: 8010-8000"),
        (&["-p", "bogus"], "invalid containerPort: bogus"),
        (&["-e", "=x"], r#"invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x"#),
        (&["-e", ""], "invalid environment variable"),
    ];
    // What dockerd (not docker's CLI) refuses: `create` exits 1 for these, as docker 28's CLI
    // does (checked against dockerd 20.10 with the 28 CLI); `run` says 125 for everything.
    let daemon_side = [
        "Minimum memory limit",
        "invalid restart policy: ",
        "maximum retry count",
        "Range of CPUs",
    ];
    for (flags, says) in table {
        for verb in [&["run", "--rm"][..], &["run"], &["run", "-d"], &["create"]] {
            let mut args: Vec<&str> = verb.to_vec();
            args.extend(["--name", "n1"]);
            args.extend(flags.iter());
            args.extend(["busybox", "true"]);
            let o = env.sk(&args);
            let want = if verb == ["create"] && daemon_side.iter().any(|d| says.contains(d)) {
                1
            } else {
                125
            };
            assert_refused(&o, want, says, &format!("{args:?}"));
        }
        assert_nothing_recorded(&root, &env.cgroup, &format!("{flags:?}"));
    }
    // The default network (no flag) and good values still work.
    let o = env.ok(&[
        "run",
        "--rm",
        "--cpus",
        "0.5",
        "-m",
        "64m",
        "--shm-size",
        "8m",
        "--pids-limit",
        "-1",
        "--stop-timeout",
        "-1",
        "--ulimit",
        "nofile=100:200",
        "--restart",
        "no",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1; ulimit -n",
    ]);
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(words.get(1), Some(&"8192"), "--shm-size 8m: {o}");
    assert_eq!(words.last(), Some(&"100"), "{o}");
    assert_nothing_recorded(&root, &env.cgroup, "good values");
}

#[test]
fn failed_runs_and_creates_leave_nothing_and_free_the_name() {
    let env = EngineEnv::new("validate-fail", |_| {});
    let root = env.root();
    let dir = env.dir.path();
    let bad_profile = dir.join("bad-profile.json");
    std::fs::write(
        &bad_profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_BOGUS"}]}"#,
    )
    .unwrap();
    let bad_profile = format!("seccomp={}", bad_profile.display());
    // A file bound onto a directory.
    let file_on_dir = "/etc/passwd:/bin".to_string();
    // (flags, message, caught before the start: also refused by `create`)
    #[rustfmt::skip]
    let table: Vec<(Vec<&str>, &str, bool)> = vec![
        (vec!["--cap-add", "FLY"], r#"--cap-add: unknown capability "FLY""#, true),
        (vec!["--cap-drop", "wings"], "unknown capability", true),
        (vec!["-u", "ghost"], "unable to find user ghost", true),
        (vec!["-u", "root:ghosts"], "unable to find group ghosts", true),
        (vec!["-u", "ghost", "-v", "vol1:/data"], "unable to find user ghost", true),
        (vec!["--security-opt", "seccomp=/no/such/profile.json"], "seccomp=/no/such/profile.json", true),
        (vec!["--security-opt", &bad_profile], "SCMP_ACT_BOGUS", true),
        (vec!["--security-opt", "bogus=1"], "unknown option", true),
        (vec!["--mount", "type=bind,source=/no/such/dir,target=/x"], "bind source path does not exist", true),
        // Refused by the kernel when the runtime mounts them.
        (vec!["--tmpfs", "/x:size=1m,bogus=1", "-v", "vol1:/data"], "mount /x", false),
        (vec!["-v", &file_on_dir], "mount /bin", false),
    ];
    for (flags, says, early) in &table {
        for verb in [&["run", "--rm"][..], &["run"], &["run", "-d"], &["create"]] {
            if verb == ["create"] && !early {
                continue;
            }
            let mut args: Vec<&str> = verb.to_vec();
            args.extend(["--name", "n1"]);
            args.extend(flags.iter());
            args.extend(["busybox", "true"]);
            let o = env.sk(&args);
            assert_refused(&o, 125, says, &format!("{args:?}"));
            assert_nothing_recorded(&root, &env.cgroup, &format!("{args:?}"));
        }
    }
    // The named volume was never created (the user was checked first) or its use released.
    let vols = env.ok(&["volume", "ls", "-q"]);
    assert!(!vols.contains("vol1") || env.sk(&["volume", "rm", "vol1"]).status.success());
    // A program that cannot run: 127/126 as docker; --rm leaves nothing.
    let o = env.sk(&["run", "--rm", "--name", "n1", "busybox", "no-such-program"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    let o = env.sk(&["run", "--rm", "--name", "n1", "busybox", "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    assert_nothing_recorded(&root, &env.cgroup, "126/127 with --rm");
    // The name was never held.
    assert_eq!(
        env.ok(&["run", "--rm", "--name", "n1", "busybox", "echo", "ok"]),
        "ok\n"
    );
    env.ok(&["create", "--name", "n1", "-u", "nobody", "busybox", "true"]);
    env.ok(&["rm", "n1"]);
    assert_nothing_recorded(&root, &env.cgroup, "after the good runs");
}

/// A private engine root whose path is `len` characters long, with a cgroup parent of its own.
struct LongRoot {
    dir: tempfile::TempDir,
    root: PathBuf,
    cgroup: String,
}

impl LongRoot {
    fn new(name: &str, len: usize) -> LongRoot {
        skiff_tests::require_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-{name}-"))
            .tempdir()
            .unwrap();
        let base = dir.path().to_str().unwrap().len() + 1;
        let mut root = dir.path().to_path_buf();
        let mut left = len.saturating_sub(base);
        while left > 0 {
            let n = left.min(60);
            let part = "r".repeat(n.saturating_sub(1).max(1));
            left = left.saturating_sub(part.len() + 1);
            root.push(part);
        }
        LongRoot {
            dir,
            root,
            cgroup: skiff_tests::unique(&format!("skiff-test-{name}")),
        }
    }

    fn sk(&self, args: &[&str]) -> Output {
        skiff_cmd(&self.root, &self.cgroup, args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        skiff_tests::expect_ok(args, self.sk(args))
    }
}

impl Drop for LongRoot {
    fn drop(&mut self) {
        clean_engine_root(&self.root, &self.cgroup);
    }
}

/// Writes a docker-archive with one image `deep:K` per K in `depths` (sharing their layers) to
/// `dir/deep.tar`: layer 0 is a busybox tree with `/bottom`; layer i adds `/layers/i`; every
/// layer rewrites `/top`.
fn deep_archive(dir: &Path, depths: &[usize]) -> PathBuf {
    let n = *depths.iter().max().unwrap();
    let work = dir.join("archive");
    std::fs::create_dir_all(&work).unwrap();
    let tree = dir.join("layer-trees");
    let mut layers = Vec::new();
    for i in 0..n {
        let t = tree.join(i.to_string());
        if i == 0 {
            busybox_rootfs(&t);
            std::fs::write(t.join("bottom"), "bottom\n").unwrap();
        } else {
            std::fs::create_dir_all(t.join("layers")).unwrap();
            std::fs::write(t.join("layers").join(i.to_string()), format!("{i}\n")).unwrap();
        }
        std::fs::write(t.join("top"), format!("{i}\n")).unwrap();
        let tar = format!("{i}.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&t)
            .arg("-cf")
            .arg(work.join(&tar))
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        layers.push(tar);
    }
    let sums = Command::new("sha256sum")
        .args(&layers)
        .current_dir(&work)
        .output()
        .unwrap();
    let diff_ids: Vec<String> = stdout(&sums)
        .lines()
        .map(|l| format!("sha256:{}", l.split_whitespace().next().unwrap()))
        .collect();
    assert_eq!(diff_ids.len(), n);
    let mut manifest = Vec::new();
    for &k in depths {
        let config = serde_json::json!({
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids[..k]},
        });
        std::fs::write(work.join(format!("config-{k}.json")), config.to_string()).unwrap();
        manifest.push(serde_json::json!({
            "Config": format!("config-{k}.json"),
            "RepoTags": [format!("deep:{k}")],
            "Layers": layers[..k],
        }));
    }
    std::fs::write(
        work.join("manifest.json"),
        serde_json::Value::from(manifest).to_string(),
    )
    .unwrap();
    let out = dir.join("deep.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(&out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(&work).unwrap();
    out
}

#[test]
fn a_128_layer_image_runs_under_a_200_character_root() {
    let env = LongRoot::new("deep", 200);
    assert!(
        env.root.to_str().unwrap().len() >= 195,
        "{}",
        env.root.display()
    );
    let tar = deep_archive(env.dir.path(), &[128]);
    env.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    // Bottom and top layers are there, the top one wins, writes land in the upper layer, and
    // --rm's overlay is still volatile.
    let o = env.ok(&[
        "run",
        "--rm",
        "deep:128",
        "sh",
        "-c",
        "cat /bottom /layers/1 /layers/127 /top; ls /layers | wc -l; \
         echo w > /written && cat /written; grep -c volatile /proc/self/mountinfo",
    ]);
    assert_eq!(
        o.split_whitespace().collect::<Vec<_>>(),
        ["bottom", "1", "127", "127", "127", "w", "1"],
        "{o}"
    );
    // A kept container: diff, export and commit read the deep stack.
    env.ok(&[
        "run",
        "--name",
        "kept",
        "deep:128",
        "sh",
        "-c",
        "echo new > /newfile; rm -f /layers/5",
    ]);
    let diff = env.ok(&["diff", "kept"]);
    assert!(
        diff.contains("A /newfile") && diff.contains("D /layers/5"),
        "{diff}"
    );
    let export = env.sk(&["export", "kept"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let names = Command::new("tar")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&export.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let listing = stdout(&names);
    assert!(listing.lines().any(|l| l.ends_with("layers/127")), "export");
    assert!(!listing.lines().any(|l| l.ends_with("layers/5")), "export");
    env.ok(&["commit", "kept", "deep:129"]);
    let layers = env.ok(&["inspect", "-f", "{{len .RootFS.Layers}}", "deep:129"]);
    assert_eq!(layers.trim(), "129");
    let o = env.ok(&[
        "run",
        "--rm",
        "deep:129",
        "sh",
        "-c",
        "cat /newfile; ls /layers | wc -l",
    ]);
    assert_eq!(
        o.split_whitespace().collect::<Vec<_>>(),
        ["new", "126"],
        "{o}"
    );
    env.ok(&["start", "kept"]);
    assert_eq!(env.ok(&["wait", "kept"]).trim(), "0");
    env.ok(&["rm", "kept"]);
    assert_nothing_recorded(&env.root, &env.cgroup, "deep image");
}

#[test]
fn overlayfs_limit_500_layers_runs_and_501_is_refused_by_name() {
    let env = LongRoot::new("deep500", 200);
    let tar = deep_archive(env.dir.path(), &[500, 501]);
    env.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    let o = env.sk(&["run", "--rm", "--name", "big", "deep:501", "true"]);
    assert_refused(
        &o,
        125,
        "the image has 501 layers; overlayfs stacks at most 500",
        "501",
    );
    assert_nothing_recorded(&env.root, &env.cgroup, "501 layers");
    let o = env.ok(&[
        "run",
        "--rm",
        "--name",
        "big",
        "deep:500",
        "sh",
        "-c",
        "cat /bottom /top; ls /layers | wc -l",
    ]);
    assert_eq!(
        o.split_whitespace().collect::<Vec<_>>(),
        ["bottom", "499", "499"],
        "{o}"
    );
    assert_nothing_recorded(&env.root, &env.cgroup, "500 layers");
}
