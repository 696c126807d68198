//! Mount options of `skiff-runtime`, asserted from inside real containers: recursive attributes
//! (`rro`, `rnosuid`, `rnodev`, `rnoexec`, ...) reach nested submounts, every option `features`
//! lists takes effect, an option that would not be applied is refused with its name, and the
//! `--pid-file` is written without following planted symlinks.

use serde_json::{json, Value};
use skiff_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A host directory `outer` with a tmpfs mounted (exec, suid, dev, rw) on `outer/inner`, holding a
/// copy of busybox: the nested submount the recursive options must reach. Unmounted on drop.
struct Nested {
    dir: tempfile::TempDir,
}

impl Nested {
    fn new() -> Nested {
        let dir = tempfile::Builder::new()
            .prefix("skiff-nested-")
            .tempdir()
            .unwrap();
        let inner = dir.path().join("outer/inner");
        std::fs::create_dir_all(&inner).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &inner,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=16m"),
        )
        .expect("mount a tmpfs for the nested submount");
        let n = Nested { dir };
        std::fs::copy(BUSYBOX, n.inner().join("busybox")).unwrap();
        n
    }

    fn outer(&self) -> PathBuf {
        self.dir.path().join("outer")
    }

    fn inner(&self) -> PathBuf {
        self.dir.path().join("outer/inner")
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.inner(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn add_mount(b: &mut Bundle, dest: &str, typ: &str, source: &Path, opts: &[&str]) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": dest, "type": typ, "source": source, "options": opts}));
}

fn run_sh(b: &mut Bundle, script: &str) -> std::process::Output {
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    Runtime::new().run(b, &unique("mnt"))
}

/// The per-mount options (mountinfo field 6) of the mount at `dest`, from inside the container.
fn opts_of<'a>(mountinfo: &'a str, dest: &str) -> BTreeSet<&'a str> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dest))
        .map(|l| l.split(' ').nth(5).unwrap_or("").split(',').collect())
        .unwrap_or_default()
}

#[test]
fn rro_makes_nested_submounts_read_only() {
    require_root();
    let n = Nested::new();
    let mut b = Bundle::busybox(&[]);
    add_mount(&mut b, "/data", "bind", &n.outer(), &["rbind", "rro"]);
    let out = ok(&run_sh(
        &mut b,
        "touch /data/top 2>&1; touch /data/inner/nested 2>&1; \
         grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6; \
         grep ' /data/inner ' /proc/self/mountinfo | cut -d' ' -f6",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("Read-only file system"), "{out}");
    assert!(
        lines[1].contains("Read-only file system"),
        "the nested submount must be read-only too: {out}"
    );
    assert!(lines[2].split(',').any(|o| o == "ro"), "{out}");
    assert!(lines[3].split(',').any(|o| o == "ro"), "{out}");
    assert!(!n.inner().join("nested").exists());
}

#[test]
fn rnoexec_rnosuid_rnodev_reach_nested_submounts() {
    require_root();
    let n = Nested::new();
    let mut b = Bundle::busybox(&[]);
    // The same tree twice: without options the copied busybox runs from the nested mount, with
    // the recursive options it cannot (EACCES), so the first line proves the second is the options.
    add_mount(&mut b, "/plain", "bind", &n.outer(), &["rbind"]);
    add_mount(
        &mut b,
        "/data",
        "bind",
        &n.outer(),
        &["rbind", "rnoexec", "rnosuid", "rnodev"],
    );
    let out = ok(&run_sh(
        &mut b,
        "/plain/inner/busybox true && echo ran; \
         /data/inner/busybox true 2>&1; echo status=$?; cat /proc/self/mountinfo",
    ));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ran"), "{out}");
    let denied = lines.next().unwrap_or("");
    assert!(denied.contains("Permission denied"), "{out}");
    assert_eq!(lines.next(), Some("status=126"), "{out}");
    let info: String = lines.collect::<Vec<_>>().join("\n");
    for dest in ["/data", "/data/inner"] {
        let o = opts_of(&info, dest);
        for want in ["noexec", "nosuid", "nodev"] {
            assert!(o.contains(want), "{dest} lacks {want}: {o:?}");
        }
    }
    let plain = opts_of(&info, "/plain/inner");
    assert!(!plain.contains("noexec"), "{plain:?}");
}

#[test]
fn options_that_would_not_be_applied_are_refused_by_name() {
    require_root();
    let host = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "bind",
            &["rbind", "rfoo"],
            "mount /data: option \"rfoo\" unknown",
        ),
        (
            "bind",
            &["bind", "newinstance"],
            "mount /data: option \"newinstance\" unknown",
        ),
        (
            "cgroup",
            &["ro", "size=1m"],
            "mount /data: option \"size=1m\" unknown",
        ),
        ("bind", &["bind", "mand"], "mount /data: option \"mand\""),
        ("bind", &["bind", "sync"], "mount /data: option \"sync\""),
        ("tmpfs", &["remount"], "mount /data: option \"remount\""),
        ("tmpfs", &["rfoo"], "\"rfoo\""),
        (
            "bind",
            &["bind", "tmpcopyup"],
            "mount /data: option \"tmpcopyup\"",
        ),
    ];
    for (typ, opts, want) in cases {
        let mut b = Bundle::busybox(&["true"]);
        add_mount(&mut b, "/data", typ, host.path(), opts);
        let rt = Runtime::new();
        let id = unique("refused");
        let o = rt.run(&b, &id);
        let err = stderr(&o);
        assert!(!o.status.success(), "{typ} {opts:?} must be refused");
        assert!(err.contains(want), "{typ} {opts:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!rt.root.path().join(&id).exists(), "nothing left behind");
    }
    // Filesystem parameters on a bind mount are accepted as runc does (runtime-tools sets them),
    // but named in a warning rather than dropped silently.
    let mut b = Bundle::busybox(&["true"]);
    add_mount(&mut b, "/data", "bind", host.path(), &["bind", "size=1k"]);
    let o = Runtime::new().run(&b, &unique("warned"));
    ok(&o);
    assert!(
        stderr(&o).contains("warning: mount /data: options [\"size=1k\"] ignored"),
        "{}",
        stderr(&o)
    );
}

/// Every option `features` lists, each on its own mount in one container, with the mountinfo
/// option it must produce (or None when it leaves no mark there). The set must equal `features`:
/// an option listed without being applied (or applied without being listed) fails here.
#[test]
fn features_lists_exactly_the_applied_mount_options() {
    require_root();
    let f: Value = serde_json::from_slice(
        &std::process::Command::new(bin("skiff-runtime"))
            .arg("features")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let listed: BTreeSet<String> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // (option, mount type, mark in mountinfo options that must be present, mark that must be absent)
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        ("async", "tmpfs", None, None),
        ("atime", "bind", None, Some("noatime")),
        ("bind", "bind", None, None),
        ("defaults", "tmpfs", None, None),
        ("dev", "tmpfs", None, Some("nodev")),
        ("diratime", "bind", None, Some("nodiratime")),
        ("dirsync", "tmpfs", Some("dirsync"), None),
        ("exec", "tmpfs", None, Some("noexec")),
        ("idmap", "bind", None, None),
        ("noatime", "bind", Some("noatime"), None),
        ("nodev", "bind", Some("nodev"), None),
        ("nodiratime", "bind", Some("nodiratime"), None),
        ("noexec", "bind", Some("noexec"), None),
        ("nomand", "tmpfs", None, None),
        ("norelatime", "tmpfs", None, None),
        ("nostrictatime", "tmpfs", None, None),
        ("nosuid", "bind", Some("nosuid"), None),
        ("nosymfollow", "bind", Some("nosymfollow"), None),
        ("private", "bind", None, None),
        ("ratime", "bind", None, Some("noatime")),
        ("rbind", "bind", None, None),
        ("rdev", "bind", None, Some("nodev")),
        ("rdiratime", "bind", None, Some("nodiratime")),
        ("relatime", "bind", Some("relatime"), None),
        ("rexec", "bind", None, Some("noexec")),
        ("ridmap", "bind", None, None),
        ("rnoatime", "bind", Some("noatime"), None),
        ("rnodev", "bind", Some("nodev"), None),
        ("rnodiratime", "bind", Some("nodiratime"), None),
        ("rnoexec", "bind", Some("noexec"), None),
        ("rnorelatime", "bind", None, Some("relatime")),
        ("rnostrictatime", "bind", Some("relatime"), None),
        ("rnosuid", "bind", Some("nosuid"), None),
        ("rnosymfollow", "bind", Some("nosymfollow"), None),
        ("ro", "bind", Some("ro"), None),
        ("rprivate", "bind", None, None),
        ("rrelatime", "bind", Some("relatime"), None),
        ("rro", "bind", Some("ro"), None),
        ("rrw", "bind", Some("rw"), None),
        ("rshared", "bind", Some("shared:"), None),
        ("rslave", "bind", None, None),
        ("rstrictatime", "bind", None, Some("relatime")),
        ("rsuid", "bind", None, Some("nosuid")),
        ("rsymfollow", "bind", None, Some("nosymfollow")),
        ("runbindable", "bind", Some("unbindable"), None),
        ("rw", "bind", Some("rw"), None),
        ("shared", "bind", Some("shared:"), None),
        ("slave", "bind", None, None),
        ("strictatime", "tmpfs", None, Some("relatime")),
        ("suid", "tmpfs", None, Some("nosuid")),
        ("symfollow", "bind", None, Some("nosymfollow")),
        ("sync", "tmpfs", Some("sync"), None),
        ("tmpcopyup", "tmpfs", None, None),
        ("unbindable", "bind", Some("unbindable"), None),
    ];
    let tested: BTreeSet<String> = cases.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(
        listed, tested,
        "features.mountOptions vs the options tested here"
    );
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox(&[]);
    for (i, (opt, typ, _, _)) in cases.iter().enumerate() {
        let dest = format!("/m/{i}");
        let mut opts = vec![*opt];
        if *typ == "bind" && *opt != "bind" && *opt != "rbind" {
            opts.insert(0, "rbind");
        }
        let mut m =
            json!({"destination": dest, "type": typ, "source": host.path(), "options": opts});
        if opt.contains("idmap") {
            m["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
            m["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        }
        b.config["mounts"].as_array_mut().unwrap().push(m);
    }
    // Field 6 of mountinfo has the per-mount flags, the optional fields (7 on) shared:N and
    // unbindable, and the superblock options (after "-", type and source) sync and dirsync.
    let info = ok(&run_sh(&mut b, "cat /proc/self/mountinfo"));
    for (i, (opt, _, present, absent)) in cases.iter().enumerate() {
        let dest = format!("/m/{i}");
        let line = info
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(dest.as_str()))
            .unwrap_or_else(|| panic!("{opt}: no mount at {dest}:\n{info}"));
        let fields: Vec<&str> = line.split(' ').collect();
        let per_mount: Vec<&str> = fields[5].split(',').collect();
        let sep = fields.iter().position(|f| *f == "-").unwrap();
        let optional = &fields[6..sep];
        let superblock: Vec<&str> = fields.get(sep + 3).unwrap_or(&"").split(',').collect();
        let has = |mark: &str| {
            if mark == "sync" || mark == "dirsync" {
                superblock.contains(&mark)
            } else if mark.ends_with(':') {
                optional.iter().any(|o| o.starts_with(mark))
            } else if mark == "unbindable" {
                optional.contains(&mark)
            } else {
                per_mount.contains(&mark)
            }
        };
        if let Some(p) = present {
            assert!(has(p), "{opt}: {p} missing: {line}");
        }
        if let Some(a) = absent {
            assert!(!has(a), "{opt}: {a} present: {line}");
        }
    }
}

#[test]
fn tmpcopyup_starts_the_tmpfs_with_the_mountpoint_contents() {
    require_root();
    let mut b = Bundle::busybox(&[]);
    std::fs::create_dir_all(b.rootfs().join("etc/sub")).unwrap();
    std::fs::write(b.rootfs().join("etc/sub/file"), "payload").unwrap();
    std::os::unix::fs::symlink("sub/file", b.rootfs().join("etc/link")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]}),
    );
    let out = ok(&run_sh(
        &mut b,
        "grep -c ' /etc .* - tmpfs ' /proc/self/mountinfo; cat /etc/link; echo; \
         grep -c ^root: /etc/passwd; touch /etc/new && echo writable",
    ));
    assert_eq!(out, "1\npayload\n1\nwritable\n");
    assert!(
        !b.rootfs().join("etc/new").exists(),
        "writes stay in the tmpfs"
    );
}

#[test]
fn pid_file_never_follows_a_planted_symlink() {
    require_root();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    b.write();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pidfile = dir.path().join("ctr.pid");
    // Every predictable temporary name, and the pid file itself, point at the victim.
    for name in ["ctr.skiff-tmp", "ctr.pid.skiff-tmp", ".ctr.pid", "ctr.pid"] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
    }
    let id = unique("pidfile");
    ok(&rt.out_detached(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let md = std::fs::symlink_metadata(&pidfile).unwrap();
    assert!(
        md.file_type().is_file(),
        "the symlink is replaced, not followed"
    );
    assert_eq!(md.mode() & 0o7777, 0o644);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ctr.pid."))
        .collect();
    assert!(left.is_empty(), "no temporary file left: {left:?}");
    ok(&rt.out(&["delete", "--force", &id]));
}
