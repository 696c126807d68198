//! A lost or damaged state database must never delete data: with `skiff.db` deleted, truncated,
//! emptied or overwritten while one container runs and another (stopped) holds data in its upper
//! layer, every command refuses (exit 125, one line naming the file and the repair command) and
//! deletes nothing; `system check` reports what the records lack; `system check --repair`
//! restores containers (names, images, state; the running one adopted with its monitor, so
//! `exec`/`stop`/`rm` work), images and volumes.

use std::path::{Path, PathBuf};
use std::process::Output;

use skiff_tests::{stderr, stdout, EngineEnv};

/// The engine environment; repairs the root before the environment's own cleanup (which lists
/// containers through the database) if a test stopped half-way with the database damaged.
struct Env(EngineEnv);

impl std::ops::Deref for Env {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.0
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.sk(&["ps", "-aq"]).status.success() {
            let _ = self.sk(&["system", "check", "--repair"]);
        }
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn db(env: &Env) -> PathBuf {
    env.root().join("skiff.db")
}

/// Checkpoints the WAL into the main file and empties it, as at rest after the last command.
fn checkpoint(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// One container running (with a named volume) and one stopped with a file in its upper layer;
/// then `damage` is done to the database and the whole refuse / check / repair story is checked.
fn lose_the_database(label: &str, damage: impl FnOnce(&Path), expect: &str) {
    let env = Env(EngineEnv::new("dbcheck", |_| {}));
    let root = env.root();
    env.ok(&["volume", "create", "keepvol"]);
    let runner = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "runner",
            "-v",
            "keepvol:/data",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    env.ok(&["exec", "runner", "sh", "-c", "echo vol > /data/f"]);
    let o = env.sk(&[
        "run",
        "--name",
        "stopped",
        "busybox",
        "sh",
        "-c",
        "echo precious > /keep; exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let stopped = env
        .ok(&["inspect", "-f", "{{.Id}}", "stopped"])
        .trim()
        .to_string();
    let pid: i64 = env
        .ok(&["inspect", "-f", "{{.State.Pid}}", "runner"])
        .trim()
        .parse()
        .unwrap();
    let upper = root.join("containers").join(&stopped).join("upper/keep");
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "precious\n");

    damage(&db(&env));

    // Every command refuses, with one line naming the file and the way out; nothing goes.
    for args in [
        &["ps", "-a"][..],
        &["images"][..],
        &["volume", "ls"][..],
        &["run", "--rm", "busybox", "true"][..],
        &["rm", "-f", "stopped"][..],
        &["system", "prune", "-f"][..],
    ] {
        let o = env.sk(args);
        assert_eq!(
            code(&o),
            125,
            "{label}: {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{label}: {args:?}: one line: {err}");
        assert!(
            err.contains("skiff.db") && err.contains("skiff system check --repair"),
            "{label}: {args:?}: {err}"
        );
        assert!(err.contains(expect), "{label}: {args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(&upper).unwrap(),
        "precious\n",
        "{label}: the stopped container's upper layer is kept"
    );
    assert!(root.join("containers").join(&runner).is_dir(), "{label}");
    assert!(alive(pid), "{label}: the running container keeps running");
    assert_eq!(
        std::fs::read_to_string(root.join("volumes/keepvol/_data/f")).unwrap(),
        "vol\n"
    );

    // The check reports, one line per problem, and exits 1.
    let o = env.sk(&["system", "check"]);
    assert_eq!(code(&o), 1, "{label}: {}{}", stdout(&o), stderr(&o));
    let report = stdout(&o);
    for want in [
        format!("containers/{stopped} has no record"),
        format!("containers/{runner} has no record"),
        format!(
            "container {} is running (pid {pid}) but not recorded",
            &runner[..12]
        ),
        "volume directory volumes/keepvol has no record".to_string(),
        "busybox:latest) in content/index.json has no record".to_string(),
        "is referenced by no image".to_string(),
    ] {
        assert!(report.contains(&want), "{label}: no {want:?} in:\n{report}");
    }

    // The repair restores the records from disk.
    let o = env.sk(&["system", "check", "--repair"]);
    assert_eq!(code(&o), 0, "{label}: {}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("restored container"), "{label}: {out}");
    let aside: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("skiff.db.corrupt-"))
        .collect();
    if label != "deleted" {
        assert!(
            aside
                .iter()
                .any(|n| !n.ends_with("-wal") && !n.ends_with("-shm")),
            "{label}: the damaged file is kept aside: {aside:?}"
        );
    }
    assert_eq!(code(&env.sk(&["system", "check"])), 0, "{label}");
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Image}} {{.State}}"]);
    assert!(ps.contains("runner busybox running"), "{label}: {ps}");
    assert!(ps.contains("stopped busybox exited"), "{label}: {ps}");
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.State.Pid}}",
            "stopped"
        ])
        .trim(),
        "3 0"
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Pid}}", "runner"])
            .trim(),
        pid.to_string()
    );
    assert!(env.ok(&["images"]).contains("busybox"), "{label}");
    assert!(env.ok(&["volume", "ls"]).contains("keepvol"), "{label}");
    // The adopted running container works as before.
    assert_eq!(env.ok(&["exec", "runner", "cat", "/data/f"]), "vol\n");
    let o = env.sk(&["volume", "rm", "keepvol"]);
    assert_ne!(code(&o), 0, "{label}: the volume is in use again");
    env.ok(&["stop", "-t", "1", "runner"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "runner"])
            .trim(),
        "exited"
    );
    assert!(!alive(pid), "{label}");
    env.ok(&["start", "runner"]);
    env.ok(&["rm", "-f", "runner"]);
    let o = env.sk(&["start", "-a", "stopped"]);
    assert_eq!(
        code(&o),
        3,
        "{label}: the stopped one starts again: {}",
        stderr(&o)
    );
    assert_eq!(
        env.ok(&["diff", "stopped"]).lines().collect::<Vec<_>>(),
        vec!["A /keep"]
    );
    env.ok(&["rm", "stopped"]);
    env.ok(&["volume", "rm", "keepvol"]);
    assert_eq!(code(&env.sk(&["system", "check"])), 0, "{label}");
    assert_eq!(
        std::fs::read_dir(root.join("containers")).unwrap().count(),
        0,
        "{label}"
    );
}

#[test]
fn a_deleted_database_refuses_then_repairs() {
    lose_the_database(
        "deleted",
        |db| std::fs::remove_file(db).unwrap(),
        "is missing",
    );
}

#[test]
fn a_truncated_database_refuses_then_repairs() {
    lose_the_database(
        "truncated",
        |db| {
            checkpoint(db);
            let len = std::fs::metadata(db).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            f.set_len(len / 2).unwrap();
        },
        "is corrupt: truncated",
    );
}

#[test]
fn a_zero_length_database_refuses_then_repairs() {
    lose_the_database(
        "zero-length",
        |db| {
            let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            f.set_len(0).unwrap();
        },
        "is empty",
    );
}

#[test]
fn a_garbage_database_refuses_then_repairs() {
    lose_the_database(
        "garbage",
        |db| {
            let junk: Vec<u8> = (0..65536u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            std::fs::write(db, junk).unwrap();
        },
        "is corrupt: not a SQLite database",
    );
}

/// The sweep run by `ps` takes only trees marked as garbage by name: a container directory the
/// records lack is reported by `system check`, never deleted; an interrupted create is swept.
#[test]
fn the_sweep_deletes_only_marked_trees() {
    let env = Env(EngineEnv::new("dbcheck", |_| {}));
    let root = env.root();
    env.ok(&["create", "--name", "c1", "busybox", "true"]);
    let unknown = root.join("containers").join("ab".repeat(32));
    std::fs::create_dir_all(unknown.join("upper")).unwrap();
    std::fs::write(unknown.join("upper/data"), "x").unwrap();
    // With its (free) lock file, as every container has: what the old sweep keyed on.
    std::fs::write(root.join("locks").join("ab".repeat(32)), "").unwrap();
    let creating = root
        .join("containers")
        .join(format!(".creating-{}", "cd".repeat(32)));
    std::fs::create_dir_all(creating.join("upper")).unwrap();
    let removing = root
        .join("containers")
        .join(format!(".removing-{}", "ef".repeat(32)));
    std::fs::create_dir_all(removing.join("upper")).unwrap();
    env.ok(&["ps", "-a"]);
    assert!(
        unknown.join("upper/data").exists(),
        "an unrecorded tree is kept"
    );
    assert!(!creating.exists(), "an interrupted create is swept");
    assert!(!removing.exists(), "an interrupted removal is swept");
    let o = env.sk(&["system", "check"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stdout(&o),
        format!(
            "container directory containers/{} has no record\n",
            "ab".repeat(32)
        )
    );
    std::fs::remove_dir_all(&unknown).unwrap();
    std::fs::remove_file(root.join("locks").join("ab".repeat(32))).unwrap();
    assert_eq!(code(&env.sk(&["system", "check"])), 0);
    // Every container directory holds the copy of its record the repair reads.
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", "c1"])
        .trim()
        .to_string();
    let rec =
        std::fs::read_to_string(root.join("containers").join(&id).join("container.json")).unwrap();
    assert!(rec.contains("\"Name\":\"c1\""), "{rec}");
    env.ok(&["rename", "c1", "c2"]);
    let rec =
        std::fs::read_to_string(root.join("containers").join(&id).join("container.json")).unwrap();
    assert!(rec.contains("\"Name\":\"c2\""), "{rec}");
    env.ok(&["rm", "c2"]);
}
