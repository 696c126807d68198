//! `skiff version`, `info`, `system df`, `events`, `completion` and `generate-man` end to end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_engine::events::{self, Event};
use skiff_tests::{bin, busybox_rootfs, skiff, skiff_ok as ok, stderr};

fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-sys-")
        .tempdir()
        .unwrap()
}

#[test]
fn version_shape_and_format() {
    let t = root();
    let out = ok(t.path(), &["version"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Client:");
    assert!(lines[1].starts_with(" Version:           0."), "{out}");
    assert!(out.contains(" API version:       1.43\n"), "{out}");
    assert!(out.contains(" Rust version:      rust1."), "{out}");
    assert!(out.contains("\n Engine:\n  Version:          0."), "{out}");
    assert!(out.contains("  API version:      1.43 (minimum version 1.24)"));
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    assert!(out.contains(&format!(" OS/Arch:           linux/{arch}")));
    assert_eq!(
        ok(
            t.path(),
            &[
                "version",
                "--format",
                "{{.Server.Version}}|{{.Client.ApiVersion}}|{{.Server.Os}}"
            ]
        )
        .trim(),
        format!("{}|1.43|linux", env!("CARGO_PKG_VERSION"))
    );
    let j: Value = serde_json::from_str(&ok(t.path(), &["version", "-f", "{{json .}}"])).unwrap();
    assert_eq!(j["Server"]["Components"][0]["Name"], "Engine");
    // docker ≥ 24's shorthand.
    let j2: Value = serde_json::from_str(&ok(t.path(), &["version", "--format", "json"])).unwrap();
    assert_eq!(j2["Client"]["ApiVersion"], "1.43");
    let o = skiff(t.path(), &["version", "-f", "{{.Nope}}"]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(stderr(&o).lines().count(), 1);
}

fn import_busybox(root: &Path, name: &str) -> String {
    let rootfs = root.join("..").join(format!("rootfs-{name}"));
    busybox_rootfs(&rootfs);
    let id = ok(root, &["import", rootfs.to_str().unwrap(), name]);
    std::fs::remove_dir_all(&rootfs).unwrap();
    id.trim().to_string()
}

#[test]
fn info_counts_images_containers_and_host() {
    let t = root();
    let r = t.path().join("root");
    let f = "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}} {{.Images}} {{.Driver}} {{.CgroupDriver}}";
    assert_eq!(
        ok(&r, &["info", "-f", f]).trim(),
        "0 0 0 0 0 overlay2 cgroupfs"
    );
    let id = import_busybox(&r, "skiff-test/sys:1");
    // Image commands log docker's image events.
    ok(&r, &["tag", "skiff-test/sys:1", "skiff-test/sys:2"]);
    ok(&r, &["rmi", "skiff-test/sys:2"]);
    assert_eq!(
        ok(
            &r,
            &[
                "events",
                "--since",
                "0",
                "--until",
                "0s",
                "--filter",
                "type=image",
                "--format",
                "{{.Action}} {{.Actor.Attributes.name}}"
            ]
        ),
        format!("tag skiff-test/sys:1\nimport {id}\ntag skiff-test/sys:2\nuntag {id}\n")
    );
    // The container code's table, written the way it writes it (state JSON with Status).
    let db = rusqlite::Connection::open(r.join("skiff.db")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS containers(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
           created TEXT NOT NULL, record TEXT NOT NULL, state TEXT NOT NULL,
           restart_count INTEGER NOT NULL DEFAULT 0);
         INSERT INTO containers VALUES('c1','a','','{{\"Image\":\"{id}\"}}','{{\"Status\":\"running\"}}',0);
         INSERT INTO containers VALUES('c2','b','','{{\"Image\":\"{id}\"}}','{{\"Status\":\"exited\"}}',0);
         INSERT INTO containers VALUES('c3','c','','{{}}','{{\"Status\":\"created\"}}',0);"
    ))
    .unwrap();
    assert_eq!(
        ok(&r, &["info", "-f", f]).trim(),
        "3 1 0 2 1 overlay2 cgroupfs"
    );
    assert_eq!(ok(&r, &["system", "info", "-f", "{{.Images}}"]).trim(), "1");

    let v: Value = serde_json::from_str(&ok(&r, &["info", "--format", "{{json .}}"])).unwrap();
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(
        v["KernelVersion"],
        String::from_utf8_lossy(&uname.stdout).trim()
    );
    assert_eq!(
        v["NCPU"].as_u64().unwrap(),
        std::thread::available_parallelism().unwrap().get() as u64
    );
    assert!(v["MemTotal"].as_u64().unwrap() > 1 << 20);
    let cg = if std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
    {
        "2"
    } else {
        "1"
    };
    assert_eq!(v["CgroupVersion"], cg);
    assert_eq!(v["DockerRootDir"], r.to_str().unwrap());
    assert!(!v["OperatingSystem"].as_str().unwrap().is_empty());
    let text = ok(&r, &["info"]);
    assert!(
        text.contains("\n Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 1\n"),
        "{text}"
    );
    assert!(text.contains(" Cgroup Driver: cgroupfs\n"));
    assert!(text.contains(" Total Memory: ") && text.contains("GiB"));
}

#[test]
fn system_df_reports_images_and_volumes() {
    let t = root();
    let r = t.path().join("root");
    let rootfs = t.path().join("rootfs-df");
    busybox_rootfs(&rootfs);
    ok(&r, &["import", rootfs.to_str().unwrap(), "skiff-test/df:1"]);
    ok(&r, &["volume", "create", "big"]);
    ok(&r, &["volume", "create", "empty"]);
    std::fs::write(r.join("volumes/big/_data/blob"), vec![1u8; 200_000]).unwrap();
    let out = ok(&r, &["system", "df"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    );
    assert!(
        lines[1].starts_with("Images          1         0         "),
        "{out}"
    );
    assert!(lines[1].ends_with("(100%)"), "{out}");
    assert_eq!(
        lines[3],
        "Local Volumes   2         0         200kB     200kB (100%)"
    );
    let f = ok(
        &r,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}:{{.TotalCount}}:{{.Size}}",
        ],
    );
    assert!(f.contains("Local Volumes:2:200kB"), "{f}");
    let v = ok(&r, &["system", "df", "-v"]);
    assert!(
        v.contains("skiff-test/df") && v.contains("\nbig           0         200kB\n"),
        "{v}"
    );

    // A second image with the same layer (another config): the layer counts once in the total,
    // and is shared in -v; a container using the first image makes nothing reclaimable.
    let one = ok(&r, &["system", "df", "--format", "{{.Size}}"]);
    let one_size = one.lines().next().unwrap().to_string();
    ok(
        &r,
        &[
            "import",
            "-c",
            "ENV SECOND=1",
            rootfs.to_str().unwrap(),
            "skiff-test/df:2",
        ],
    );
    let first = ok(
        &r,
        &["image", "inspect", "-f", "{{.Id}}", "skiff-test/df:1"],
    );
    let f = "{{.Type}}:{{.TotalCount}}:{{.Active}}:{{.Size}}:{{.Reclaimable}}";
    let two = ok(&r, &["system", "df", "--format", f]);
    assert_eq!(
        two.lines().next().unwrap(),
        format!("Images:2:0:{one_size}:{one_size} (100%)")
    );
    let v = ok(&r, &["system", "df", "-v"]);
    let row = v
        .lines()
        .find(|l| l.starts_with("skiff-test/df   2"))
        .expect(&v);
    let cols: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // REPOSITORY TAG ID CREATED SIZE SHARED UNIQUE CONTAINERS
    assert_eq!(cols[5], one_size, "{row}");
    assert_eq!(cols[6], "0B", "{row}");
    let db = rusqlite::Connection::open(r.join("skiff.db")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS containers(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
           created TEXT NOT NULL, record TEXT NOT NULL, state TEXT NOT NULL,
           restart_count INTEGER NOT NULL DEFAULT 0);
         INSERT INTO containers VALUES('c1','a','','{{\"Image\":\"{}\"}}','{{\"Status\":\"exited\"}}',0);",
        first.trim()
    ))
    .unwrap();
    let used = ok(&r, &["system", "df", "--format", f]);
    assert_eq!(
        used.lines().next().unwrap(),
        format!("Images:2:1:{one_size}:0B (0%)")
    );
    assert!(used.contains("Containers:1:0:0B:0B"), "{used}");
}

fn events_of(root: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["events", "--since", "0", "--until", "0s"];
    args.extend_from_slice(extra);
    ok(root, &args).lines().map(str::to_string).collect()
}

#[test]
fn events_history_filters_and_formats() {
    let t = root();
    let r = t.path();
    ok(r, &["volume", "create", "ev1"]);
    ok(r, &["volume", "rm", "ev1"]);
    // The container code emits through the library; the CLI shows docker's line.
    events::emit(
        r,
        &Event::new("container", "start", "0123456789abcdef")
            .attr("name", "web")
            .attr("image", "busybox"),
    )
    .unwrap();
    let all = events_of(r, &[]);
    assert_eq!(all.len(), 3, "{all:?}");
    let re = |l: &str, rest: &str| {
        // 2026-01-02T03:04:05.123456789Z <rest>
        let (ts, tail) = l.split_once(' ').unwrap();
        assert_eq!(ts.len(), 30, "{l}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{l}");
        assert_eq!(tail, rest);
    };
    re(&all[0], "volume create ev1 (driver=local)");
    re(&all[1], "volume destroy ev1 (driver=local)");
    re(
        &all[2],
        "container start 0123456789abcdef (image=busybox, name=web)",
    );
    assert_eq!(events_of(r, &["--filter", "type=volume"]).len(), 2);
    assert_eq!(
        events_of(r, &["--filter", "type=volume", "--filter", "event=destroy"]).len(),
        1
    );
    assert_eq!(events_of(r, &["--filter", "container=web"]).len(), 1);
    assert_eq!(events_of(r, &["--filter", "image=busybox"]).len(), 1);
    assert_eq!(
        events_of(r, &["--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"]),
        [
            "volume create ev1",
            "volume destroy ev1",
            "container start 0123456789abcdef"
        ]
    );
    let j: Value =
        serde_json::from_str(&events_of(r, &["--format", "{{json .}}", "-f", "type=container"])[0])
            .unwrap();
    assert_eq!(j["status"], "start");
    assert_eq!(j["from"], "busybox");
    assert_eq!(j["Actor"]["Attributes"]["name"], "web");
    assert!(j["timeNano"].as_i64().unwrap() > 0);
    // A window that ended before anything happened is empty; bad bounds are one-line errors.
    let old: Vec<String> = ok(r, &["events", "--since", "0", "--until", "1000"])
        .lines()
        .map(str::to_string)
        .collect();
    assert!(old.is_empty(), "{old:?}");
    let o = skiff(r, &["events", "--since", "yesterday-ish"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--since"));
    let o = skiff(r, &["events", "--filter", "colour=red"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn events_follow_live_until_deadline() {
    let t = root();
    let r = t.path().to_path_buf();
    std::fs::create_dir_all(&r).unwrap();
    // Follows with no --until: a later event shows up on the running command's stdout.
    let mut child = Command::new(bin("skiff"))
        .arg("--root")
        .arg(&r)
        .args(["events", "--filter", "type=volume"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    events::emit(&r, &Event::new("container", "start", "ignored")).unwrap();
    ok(&r, &["volume", "create", "live1"]);
    let line = rx.recv_timeout(Duration::from_secs(5)).expect("live event");
    assert!(
        line.ends_with(" volume create live1 (driver=local)"),
        "{line}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // --since in the past and --until in the future (absolute; a duration means "ago", as in
    // docker): history, then live, then exit by itself at the deadline.
    let t0 = Instant::now();
    let until = (skiff_image_now() + 2).to_string();
    let child = Command::new(bin("skiff"))
        .arg("--root")
        .arg(&r)
        .args([
            "events",
            "--since",
            "1h",
            "--until",
            &until,
            "--format",
            "{{.Actor.ID}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    ok(&r, &["volume", "create", "live2"]);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids, ["ignored", "live1", "live2"]);
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(1000) && el < Duration::from_secs(6),
        "{el:?}"
    );
}

fn skiff_image_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn event_log_concurrent_appends_and_rotation() {
    let t = root();
    let r = t.path().to_path_buf();
    // 8 writers x 200 events, no rotation: every line intact, none lost.
    let hs: Vec<_> = (0..8)
        .map(|w| {
            let r = r.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let ev = Event::new("container", "exec_start", &format!("w{w}-{i}"))
                        .attr("pad", &"x".repeat(300));
                    events::emit(&r, &ev).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let all = events::read(&r, 0, i64::MAX).unwrap();
    assert_eq!(all.len(), 1600);
    let text = std::fs::read_to_string(events::log_path(&r)).unwrap();
    assert!(text
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));

    // A small bound: the live file stays bounded, one older generation is kept, lines stay whole.
    let t2 = root();
    let r2 = t2.path();
    for i in 0..300 {
        events::emit_bounded(r2, &Event::new("volume", "create", &format!("v{i}")), 4096).unwrap();
    }
    let live = std::fs::metadata(events::log_path(r2)).unwrap().len();
    assert!(live <= 4096 + 200, "{live}");
    let old = r2.join("events.log.1");
    assert!(old.exists());
    let kept = events::read(r2, 0, i64::MAX).unwrap();
    assert!(kept.len() > 30 && kept.len() < 300, "{}", kept.len());
    assert_eq!(kept.last().unwrap().id, "v299");
    // What is kept is the most recent, in order.
    let ids: Vec<usize> = kept.iter().map(|e| e.id[1..].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
}

#[test]
fn completions_and_man_pages() {
    let t = root();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef skiff"),
        ("fish", "complete -c skiff"),
    ] {
        let out = ok(t.path(), &["completion", shell]);
        assert!(out.contains(marker), "{shell}");
        for sub in ["volume", "images", "pull", "events", "version"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // A shell skiff does not know is a usage error: 125, as docker's CLI exits on those.
    assert_eq!(
        skiff(t.path(), &["completion", "tcsh"]).status.code(),
        Some(125)
    );
    let dir = t.path().join("man");
    let o = skiff(t.path(), &["generate-man", dir.to_str().unwrap()]);
    assert!(o.status.success());
    let top = std::fs::read_to_string(dir.join("skiff.1")).unwrap();
    assert!(top.starts_with(".ie") && top.contains(".TH skiff 1"));
    for sub in [
        "volume",
        "images",
        "pull",
        "events",
        "version",
        "completion",
    ] {
        assert!(top.contains(sub), "skiff.1 lacks {sub}");
    }
    let vc = std::fs::read_to_string(dir.join("skiff-volume-create.1")).unwrap();
    assert!(vc.contains("\\-\\-label") && vc.contains("\\-\\-opt"));
    assert!(dir.join("skiff-image-ls.1").exists());
    // man(1) can format it (when man is installed).
    if Path::new("/usr/bin/man").exists() {
        let o = Command::new("man")
            .arg("-l")
            .arg(dir.join("skiff-volume-create.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("volume"));
    }
}

/// Completions know the engine's objects: bash completes container, image and volume names from
/// the same root the command line names (the words are the ones bash would pass).
#[test]
fn completions_complete_object_names() {
    let env = skiff_tests::EngineEnv::new("complete", |_| {});
    env.ok(&["create", "--name", "compme", "busybox", "true"]);
    env.ok(&["volume", "create", "volcomp"]);
    let script = env.dir.path().join("skiff.bash");
    std::fs::write(&script, env.ok(&["completion", "bash"])).unwrap();
    let root = env.root();
    let complete = |words: &[&str]| -> Vec<String> {
        let mut all = vec![bin("skiff").to_string_lossy().into_owned()];
        all.extend(["--root".to_string(), root.to_string_lossy().into_owned()]);
        all.extend(words.iter().map(|w| w.to_string()));
        let quoted: Vec<String> = all.iter().map(|w| format!("'{w}'")).collect();
        let prog = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _skiff_dynamic \"${{COMP_WORDS[0]}}\" \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            quoted.join(" "),
            all.len() - 1
        );
        let o = Command::new("bash").arg("-c").arg(&prog).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["start", "co"]), ["compme"]);
    assert_eq!(complete(&["rm", ""]), ["compme"]);
    // `stop` offers running containers only: compme never started.
    assert!(complete(&["stop", ""]).is_empty());
    assert_eq!(complete(&["run", "busy"]), ["busybox:latest"]);
    assert_eq!(complete(&["volume", "rm", "vol"]), ["volcomp"]);
    // Flags still come from the static script.
    assert!(complete(&["start", "--"]).iter().any(|f| f == "--attach"));
    env.ok(&["rm", "compme"]);
    env.ok(&["volume", "rm", "volcomp"]);
}
