//! `skiff volume` end to end against real directories, real SQLite and real mounts. The container
//! side of the contract (recording uses, populating from an image) is driven through the engine
//! library, exactly as the container code calls it.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use skiff_engine::volumes::{is_mountpoint, Volumes};
use skiff_tests::{require_root, skiff, skiff_ok as ok, stderr, stdout};

fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-vol-")
        .tempdir()
        .unwrap()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

#[test]
fn create_ls_inspect_rm() {
    let t = root();
    let r = t.path();
    assert_eq!(ok(r, &["volume", "create", "data"]).trim(), "data");
    // Creating an existing name returns it, like docker.
    assert_eq!(ok(r, &["volume", "create", "data"]).trim(), "data");
    assert_eq!(
        ok(
            r,
            &["volume", "create", "--label", "tier=db", "--label", "x", "db-1"]
        )
        .trim(),
        "db-1"
    );
    let anon = ok(r, &["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()));

    let ls = ok(r, &["volume", "ls"]);
    let mut want = vec![
        "DRIVER    VOLUME NAME".to_string(),
        format!("local     {anon}"),
        "local     data".into(),
        "local     db-1".into(),
    ];
    want[1..].sort();
    assert_eq!(lines(&ls), want);
    assert_eq!(
        lines(&ok(r, &["volume", "ls", "-q", "--filter", "label=tier=db"])),
        ["db-1"]
    );
    assert_eq!(
        lines(&ok(r, &["volume", "ls", "-q", "-f", "name=at"])),
        ["data"]
    );
    assert_eq!(
        lines(&ok(
            r,
            &[
                "volume",
                "ls",
                "--format",
                "{{.Name}}:{{.Labels}}",
                "-f",
                "label=x"
            ]
        )),
        ["db-1:tier=db,x="]
    );

    let v: Value = serde_json::from_str(&ok(r, &["volume", "inspect", "db-1"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "db-1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["tier"], "db");
    // Empty maps are null, as docker's daemon returns them.
    assert_eq!(v["Options"], Value::Null);
    let mp = PathBuf::from(v["Mountpoint"].as_str().unwrap());
    assert_eq!(mp, r.join("volumes/db-1/_data"));
    assert!(mp.is_dir());
    assert!(v["CreatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        ok(
            r,
            &[
                "volume",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{index .Labels \"tier\"}}",
                "db-1"
            ]
        )
        .trim(),
        "db-1 local db"
    );
    let anon_v: Value = serde_json::from_str(&ok(r, &["volume", "inspect", &anon])).unwrap();
    assert!(anon_v[0]["Labels"]
        .as_object()
        .unwrap()
        .contains_key("com.docker.volume.anonymous"));

    // Errors: one line naming the object, docker's exit codes, no partial state.
    let o = skiff(r, &["volume", "inspect", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), "skiff: get nope: no such volume");
    // docker's CLI exits 1 when the daemon refuses a volume request.
    let o = skiff(r, &["volume", "create", "../escape"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("../escape"));
    assert!(!r.join("escape").exists() && !r.join("volumes/../escape").exists());
    let o = skiff(r, &["volume", "create", "x"]);
    assert_eq!(
        stderr(&o).trim(),
        "skiff: create x: volume name is too short, names should be at least two alphanumeric characters"
    );
    let o = skiff(r, &["volume", "create", "-o", "bogus=1", "bad1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad1") && stderr(&o).contains("bogus"));
    let o = skiff(r, &["volume", "create", "-d", "nfs-plugin", "bad2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!r.join("volumes/bad1").exists() && !r.join("volumes/bad2").exists());

    std::fs::write(mp.join("file"), b"x").unwrap();
    let o = skiff(r, &["volume", "rm", "db-1", "nope", "data"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&stdout(&o)), ["db-1", "data"]);
    assert_eq!(stderr(&o).trim(), "skiff: get nope: no such volume");
    assert!(!r.join("volumes/db-1").exists());
    // -f ignores missing volumes.
    assert_eq!(ok(r, &["volume", "rm", "-f", "nope"]).trim(), "nope");
    assert_eq!(lines(&ok(r, &["volume", "ls", "-q"])), vec![anon]);
}

#[test]
fn in_use_volumes_are_kept() {
    let t = root();
    let r = t.path();
    ok(r, &["volume", "create", "used"]);
    ok(r, &["volume", "create", "free"]);
    let vols = Volumes::open(r).unwrap();
    let anon = vols.use_volume(None, "ctr-a").unwrap();
    vols.use_volume(Some("used"), "ctr-a").unwrap();
    vols.use_volume(Some("used"), "ctr-b").unwrap();
    // use_volume creates a missing named volume (run -v name:/dst).
    let auto = vols.use_volume(Some("auto-made"), "ctr-b").unwrap();
    assert!(auto.mountpoint.is_dir());

    let o = skiff(r, &["volume", "rm", "-f", "used"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "skiff: remove used: volume is in use - [ctr-a, ctr-b]"
    );
    assert_eq!(
        lines(&ok(r, &["volume", "ls", "-q", "--filter", "dangling=true"])),
        ["free"]
    );
    let out = ok(r, &["volume", "prune", "-a", "-f"]);
    assert!(out.contains("free") && !out.contains("used"), "{out}");
    assert!(r.join("volumes/used/_data").is_dir());

    let mut of_a = vec![anon.name.clone(), "used".to_string()];
    of_a.sort();
    assert_eq!(vols.volumes_of("ctr-a").unwrap(), of_a);
    // rm -v of ctr-a: its anonymous volume goes, the shared one stays (ctr-b still uses it).
    std::fs::write(anon.mountpoint.join("f"), b"data").unwrap();
    let removed = vols.release("ctr-a", true).unwrap();
    assert_eq!(removed, vec![anon.name.clone()]);
    assert!(!r.join("volumes").join(&anon.name).exists());
    assert!(skiff(r, &["volume", "rm", "used"]).status.code() == Some(1));
    assert!(vols.release("ctr-b", false).unwrap().is_empty());
    assert_eq!(
        lines(&ok(r, &["volume", "rm", "used", "auto-made"])),
        ["used", "auto-made"]
    );
}

#[test]
fn uses_by_vanished_containers_expire() {
    let t = root();
    let r = t.path();
    let vols = Volumes::open(r).unwrap();
    vols.use_volume(Some("kept"), "ctr-live").unwrap();
    vols.use_volume(Some("kept"), "ctr-crashed").unwrap();
    vols.use_volume(Some("fresh"), "ctr-being-created").unwrap();
    // The container code's table knows only ctr-live; ctr-crashed's use is old, as if `skiff rm`
    // had died between deleting the row and releasing the volumes.
    let db = rusqlite::Connection::open(r.join("skiff.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS containers(id TEXT PRIMARY KEY, name TEXT, created TEXT,
           record TEXT, state TEXT, restart_count INTEGER DEFAULT 0);
         INSERT INTO containers(id, name, created, record, state) VALUES('ctr-live','l','','{}','{}');
         UPDATE container_volumes SET added = added - 3600 WHERE container_id = 'ctr-crashed';",
    )
    .unwrap();
    assert_eq!(vols.users("kept").unwrap(), ["ctr-live"]);
    // A use younger than the grace period counts even before its container row exists.
    assert_eq!(vols.users("fresh").unwrap(), ["ctr-being-created"]);
    let o = skiff(r, &["volume", "rm", "fresh"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    db.execute("DELETE FROM containers", []).unwrap();
    assert_eq!(vols.users("kept").unwrap(), ["ctr-live"], "fresh uses stay");
}

#[test]
fn prune_removes_only_anonymous_unless_all() {
    let t = root();
    let r = t.path();
    ok(r, &["volume", "create", "named"]);
    ok(r, &["volume", "create", "--label", "keep=1", "labelled"]);
    let anon = ok(r, &["volume", "create"]).trim().to_string();
    let anon_data = r.join("volumes").join(&anon).join("_data");
    std::fs::write(anon_data.join("blob"), vec![7u8; 5000]).unwrap();
    let out = ok(r, &["volume", "prune", "-f"]);
    assert_eq!(
        out,
        format!("Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 5kB\n")
    );
    assert_eq!(
        lines(&ok(r, &["volume", "ls", "-q"])),
        ["labelled", "named"]
    );
    let out = ok(
        r,
        &["volume", "prune", "-a", "-f", "--filter", "label!=keep"],
    );
    assert!(out.contains("named") && !out.contains("labelled"), "{out}");
    // Without -f it asks; "no" keeps everything.
    let o = Command::new(skiff_tests::bin("skiff"))
        .arg("--root")
        .arg(r)
        .args(["volume", "prune", "-a"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("Are you sure"));
    assert_eq!(lines(&ok(r, &["volume", "ls", "-q"])), ["labelled"]);
}

#[test]
fn bind_and_tmpfs_driver_options() {
    require_root();
    let t = root();
    let r = t.path();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("precious"), b"keep me").unwrap();
    let dev = format!("device={}", host.path().display());
    ok(
        r,
        &[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            &dev,
            "hostdir",
        ],
    );
    ok(
        r,
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=1m,nosuid",
            "scratch",
        ],
    );
    let v: Value = serde_json::from_str(&ok(r, &["volume", "inspect", "hostdir"])).unwrap();
    assert_eq!(v[0]["Options"]["o"], "bind");
    // A missing bind source is refused at create time.
    let o = skiff(
        r,
        &[
            "volume",
            "create",
            "-o",
            "o=bind",
            "-o",
            "device=/nonexistent/x",
            "nob",
        ],
    );
    assert_eq!(o.status.code(), Some(1));

    let vols = Volumes::open(r).unwrap();
    let hv = vols.use_volume(Some("hostdir"), "ctr-1").unwrap();
    assert!(is_mountpoint(&hv.mountpoint));
    assert_eq!(
        std::fs::read(hv.mountpoint.join("precious")).unwrap(),
        b"keep me"
    );
    let sv = vols.use_volume(Some("scratch"), "ctr-1").unwrap();
    // Using it twice mounts once.
    vols.use_volume(Some("scratch"), "ctr-2").unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mp = sv.mountpoint.to_str().unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(mp))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0].contains(" - tmpfs ") && ours[0].contains("size=1024k"),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains("nosuid"));

    // In use: refused; after release the bind is unmounted and removal never touches the host dir.
    assert_eq!(
        skiff(r, &["volume", "rm", "hostdir"]).status.code(),
        Some(1)
    );
    vols.release("ctr-1", true).unwrap();
    assert!(!is_mountpoint(&hv.mountpoint));
    assert!(is_mountpoint(&sv.mountpoint), "ctr-2 still uses scratch");
    vols.release("ctr-2", false).unwrap();
    assert!(!is_mountpoint(&sv.mountpoint));
    ok(r, &["volume", "rm", "hostdir", "scratch"]);
    assert_eq!(
        std::fs::read(host.path().join("precious")).unwrap(),
        b"keep me"
    );
    // Removing a volume whose bind is still mounted (e.g. after a crash) unmounts first.
    let hv = vols
        .create(
            Some("again"),
            &BTreeMap::from([
                ("o".to_string(), "bind".to_string()),
                ("device".to_string(), host.path().display().to_string()),
            ]),
            &BTreeMap::new(),
        )
        .unwrap();
    vols.mount(&hv).unwrap();
    assert!(is_mountpoint(&hv.mountpoint));
    ok(r, &["volume", "rm", "again"]);
    assert!(host.path().join("precious").exists());
    assert!(!is_mountpoint(&hv.mountpoint));
}

fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn meta(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode())
}

#[test]
fn populate_from_image_content_once() {
    require_root();
    let t = root();
    let r = t.path();
    let img = tempfile::tempdir().unwrap();
    let rootfs = img.path();
    let d = rootfs.join("var/lib/app");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("conf"), b"setting=1\n").unwrap();
    std::fs::write(d.join("sub/secret"), b"s3cr3t").unwrap();
    sh(&format!(
        "cd {} && chown 1234:5678 conf && chmod 4750 conf && chown -R 42:43 sub && chmod 0700 sub \
         && ln -s /etc/passwd abs-link && ln -s missing dangling && ln conf hard && mkfifo pipe \
         && touch -d '2001-02-03 04:05:06' conf",
        d.display()
    ));
    let xattr_ok = xattr::set(&d.join("sub/secret"), "user.skiff", b"yes");
    // The image reaches the directory through a symlink: resolved inside the rootfs.
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::os::unix::fs::symlink("/var/lib/app", rootfs.join("data/app")).unwrap();

    let vols = Volumes::open(r).unwrap();
    let v = vols.use_volume(Some("appdata"), "ctr-p").unwrap();
    assert!(vols.populate_from_rootfs(&v, rootfs, "/data/app").unwrap());
    let m = &v.mountpoint;
    assert_eq!(std::fs::read(m.join("conf")).unwrap(), b"setting=1\n");
    assert_eq!(meta(&m.join("conf")), meta(&d.join("conf")));
    assert_eq!(meta(&m.join("sub")), meta(&d.join("sub")));
    assert_eq!(meta(&m.join("sub/secret")), meta(&d.join("sub/secret")));
    assert_eq!(
        std::fs::read_link(m.join("abs-link")).unwrap(),
        PathBuf::from("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(m.join("dangling")).unwrap(),
        PathBuf::from("missing")
    );
    assert_eq!(
        std::fs::metadata(m.join("hard")).unwrap().ino(),
        std::fs::metadata(m.join("conf")).unwrap().ino()
    );
    assert!(std::fs::symlink_metadata(m.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(m.join("conf")).unwrap().mtime(),
        std::fs::metadata(d.join("conf")).unwrap().mtime()
    );
    assert_eq!(
        std::fs::metadata(m.join("conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4750
    );
    if xattr_ok {
        assert_eq!(
            xattr::get(&m.join("sub/secret"), "user.skiff").as_deref(),
            Some(&b"yes"[..])
        );
    }

    // Never again: not after the user emptied it, not for another container.
    std::fs::remove_file(m.join("conf")).unwrap();
    std::fs::remove_file(m.join("hard")).unwrap();
    assert!(!vols.populate_from(&v, &d).unwrap());
    assert!(!m.join("conf").exists());
    // A fresh volume that is not empty is not populated either.
    let v2 = vols.use_volume(Some("prefilled"), "ctr-p").unwrap();
    std::fs::write(v2.mountpoint.join("mine"), b"1").unwrap();
    assert!(!vols.populate_from(&v2, &d).unwrap());
    assert!(!v2.mountpoint.join("conf").exists());
    // A missing source copies nothing and leaves the volume eligible.
    let v3 = vols.use_volume(Some("later"), "ctr-p").unwrap();
    assert!(!vols.populate_from_rootfs(&v3, rootfs, "/nope").unwrap());
    assert!(vols.populate_from(&v3, &d).unwrap());
    vols.release("ctr-p", true).unwrap();
}

#[test]
fn parallel_creates() {
    let t = root();
    let r = t.path().to_path_buf();
    // 20 distinct names at once, plus 8 racing on one name: all succeed, one row each.
    let handles: Vec<_> = (0..28)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || {
                let name = if i < 20 {
                    format!("par-{i}")
                } else {
                    "same".to_string()
                };
                let o = Command::new(skiff_tests::bin("skiff"))
                    .arg("--root")
                    .arg(&r)
                    .args(["volume", "create", &name])
                    .output()
                    .unwrap();
                (name, o)
            })
        })
        .collect();
    for h in handles {
        let (name, o) = h.join().unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), name);
    }
    let names = lines(&ok(&r, &["volume", "ls", "-q"]));
    assert_eq!(names.len(), 21, "{names:?}");
    assert_eq!(names[0], "par-0");
    assert_eq!(names[2], "par-2", "natural order: {names:?}");
    assert_eq!(names[20], "same");
    // One create event per successful call, as docker logs them.
    let events = std::fs::read_to_string(r.join("events.log")).unwrap();
    assert_eq!(events.lines().count(), 28);
}

/// Tiny user-xattr helpers (no extra tool needed).
mod xattr {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Sets `name`; false when the filesystem does not support user xattrs.
    pub fn set(p: &Path, name: &str, val: &[u8]) -> bool {
        let (cp, cn) = (
            CString::new(p.as_os_str().as_bytes()).unwrap(),
            CString::new(name).unwrap(),
        );
        // SAFETY: valid NUL-terminated strings; the value pointer/length describe `val`.
        unsafe { libc::setxattr(cp.as_ptr(), cn.as_ptr(), val.as_ptr().cast(), val.len(), 0) == 0 }
    }

    /// Reads `name`.
    pub fn get(p: &Path, name: &str) -> Option<Vec<u8>> {
        let (cp, cn) = (
            CString::new(p.as_os_str().as_bytes()).unwrap(),
            CString::new(name).unwrap(),
        );
        let mut buf = vec![0u8; 256];
        // SAFETY: valid strings; buffer pointer/length describe `buf`.
        let n =
            unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    }
}

#[test]
fn remove_racing_with_use_never_leaves_a_dangling_use() {
    let t = root();
    let r = t.path().to_path_buf();
    Volumes::open(&r).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Removers: `skiff volume rm` processes and a library remover, as fast as they can.
    let removers: Vec<_> = (0..2)
        .map(|i| {
            let (r, stop) = (r.clone(), stop.clone());
            std::thread::spawn(move || {
                let vols = Volumes::open(&r).unwrap();
                let mut removed = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ok = if i == 0 {
                        skiff(&r, &["volume", "rm", "race"]).status.success()
                    } else {
                        vols.remove("race", false).is_ok()
                    };
                    removed += ok as usize;
                }
                removed
            })
        })
        .collect();
    let vols = Volumes::open(&r).unwrap();
    for i in 0..150 {
        let id = format!("ctr-{i}");
        let v = vols.use_volume(Some("race"), &id).unwrap();
        // While used: the volume row, its data dir and our use all exist.
        assert!(
            v.mountpoint.is_dir(),
            "round {i}: data dir gone while in use"
        );
        std::fs::write(v.mountpoint.join("f"), b"x").unwrap();
        assert_eq!(vols.get("race").unwrap().name, "race");
        assert_eq!(vols.users("race").unwrap(), vec![id.clone()]);
        vols.release(&id, false).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let removed: usize = removers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(removed > 0, "the removers never got a turn");
    // No leftover trash or orphan rows.
    let db = rusqlite::Connection::open(r.join("skiff.db")).unwrap();
    let orphans: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM container_volumes WHERE volume NOT IN (SELECT name FROM volumes)",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    let trash = std::fs::read_dir(r.join("volumes"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".rm-"))
        .count();
    assert_eq!(trash, 0);
}
