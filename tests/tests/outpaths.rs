//! Paths skiff writes on the host, and what a failed image command leaves behind: `save -o` and
//! `export -o` refuse a symlink, FIFO, device node or directory at the output path (docker's
//! atomicwriter rule) and leave it untouched; `cp` copies every file type in both directions
//! (FIFOs, device nodes, hard links, symlinks; sockets skipped with a warning), never replaces a
//! host's FIFO or device node and never writes through a symlink the user did not name; a failed
//! `import`, `load` or `pull` leaves the content store's blobs, snapshots and temp dir as they were.
//! Device nodes are made with mknod in the test's own temp dirs, never the host's /dev.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_tests::{busybox_rootfs, require_root, skiff, stderr, unique, EngineEnv};

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// mknod(2) in a test directory, then the exact mode (mknod applies the umask).
fn mknod(p: &Path, kind: libc::mode_t, mode: u32, major: u32, minor: u32) {
    let c = cpath(p);
    // SAFETY: a NUL-terminated path; mknod has no memory preconditions.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | mode, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(p: &Path, mode: u32) {
    mknod(p, libc::S_IFIFO, mode, 0, 0);
}

fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `cmd` with a deadline (a skiff that opened a FIFO for writing would block forever),
/// reading its output as it comes.
fn run_bounded(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} hung: {}",
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Asserts a one-line `skiff: ` error containing every string of `want`.
fn refused(what: &str, o: &Output, want: &[&str]) {
    assert!(!o.status.success(), "{what} succeeded");
    let e = stderr(o);
    assert!(e.starts_with("skiff: "), "{what}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{what}: one line: {e}");
    for w in want {
        assert!(e.contains(w), "{what}: want {w:?} in: {e}");
    }
}

fn tar_names(p: &Path) -> String {
    let o = Command::new("tar").arg("-tf").arg(p).output().unwrap();
    assert!(
        o.status.success(),
        "tar -tf {}: {}",
        p.display(),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn save_and_export_refuse_links_and_special_files_and_write_regular_ones_safely() {
    let env = EngineEnv::new("outpaths", |_| {});
    let c = unique("out");
    env.ok(&["create", "--name", &c, "busybox", "true"]);
    let dir = env.dir.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("target");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
    mkfifo(&dir.join("fifo"), 0o644);
    mknod(&dir.join("cdev"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&dir.join("bdev"), libc::S_IFBLK, 0o600, 7, 200);
    std::fs::create_dir(dir.join("subdir")).unwrap();
    std::fs::write(dir.join("setuid"), "suid").unwrap();
    std::fs::set_permissions(dir.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(dir.join("old.tar"), "old").unwrap();
    std::fs::set_permissions(dir.join("old.tar"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = names(&dir);

    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let cases = [
        ("link", "cannot write to a symbolic link directly"),
        ("fifo", "cannot write to a named pipe (FIFO)"),
        ("cdev", "cannot write to a character device file"),
        ("bdev", "cannot write to a block device file"),
        ("subdir", "cannot write to a directory"),
        ("setuid", "cannot write to a setuid file"),
    ];
    for (cmd, obj) in [("save", "busybox"), ("export", c.as_str())] {
        for (name, why) in cases {
            let out = p(name);
            let o = run_bounded(env.cmd(&[cmd, "-o", &out, obj]));
            refused(
                &format!("{cmd} -o {name}"),
                &o,
                &[&format!("{cmd}: output \"{out}\": {why}")],
            );
        }
        // The output is checked before the image or container is looked up, as docker does.
        let o = env.sk(&[cmd, "-o", &p("link"), "no-such-thing"]);
        refused(&format!("{cmd} -o link no-such"), &o, &["symbolic link"]);
        let o = env.sk(&[cmd, "-o", &p("missing/x.tar"), obj]);
        refused(
            &format!("{cmd} -o missing/x.tar"),
            &o,
            &["invalid output path"],
        );

        // Nothing was replaced, followed or left behind.
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read_link(dir.join("link")).unwrap(), target);
        assert!(lstat(&dir.join("fifo")).file_type().is_fifo());
        let cd = lstat(&dir.join("cdev"));
        assert!(cd.file_type().is_char_device());
        assert_eq!(cd.rdev(), libc::makedev(1, 3));
        assert!(lstat(&dir.join("bdev")).file_type().is_block_device());
        assert_eq!(std::fs::read_to_string(dir.join("setuid")).unwrap(), "suid");
        assert_eq!(names(&dir), before, "{cmd}: no file added or removed");

        // A regular file is replaced by a complete archive with docker's mode 0600.
        let out = p("old.tar");
        let o = run_bounded(env.cmd(&[cmd, "-o", &out, obj]));
        assert!(o.status.success(), "{cmd} -o old.tar: {}", stderr(&o));
        let md = lstat(Path::new(&out));
        assert!(md.file_type().is_file());
        assert_eq!(
            md.mode() & 0o7777,
            0o600,
            "{cmd}: explicit mode, not the umask"
        );
        let list = tar_names(Path::new(&out));
        let want = if cmd == "save" {
            "manifest.json"
        } else {
            "bin/busybox"
        };
        assert!(
            list.lines().any(|l| l.trim_end_matches('/') == want),
            "{cmd}: {list}"
        );
        // A new file is created with the same mode; `-` still means stdout.
        let new = p(&format!("new-{cmd}.tar"));
        let o = run_bounded(env.cmd(&[cmd, "-o", &new, obj]));
        assert!(o.status.success(), "{cmd} -o new: {}", stderr(&o));
        assert_eq!(lstat(Path::new(&new)).mode() & 0o7777, 0o600);
        std::fs::remove_file(&new).unwrap();
        let o = run_bounded(env.cmd(&[cmd, "-o", "-", obj]));
        assert!(
            o.status.success() && o.stdout.len() > 1024,
            "{cmd} -o -: {}",
            stderr(&o)
        );
        std::fs::write(&out, "old").unwrap();
        assert_eq!(names(&dir), before);
    }
}

#[test]
fn generate_man_refuses_a_symlink_among_its_pages() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man");
    std::fs::create_dir(&dir).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("skiff.1")).unwrap();
    let o = skiff(t.path(), &["generate-man", dir.to_str().unwrap()]);
    refused("generate-man", &o, &["symbolic link"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    std::fs::remove_file(dir.join("skiff.1")).unwrap();
    let fresh = t.path().join("fresh/man1");
    let o = skiff(t.path(), &["generate-man", fresh.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lstat(&fresh).mode() & 0o7777, 0o755);
    assert_eq!(lstat(&fresh.join("skiff.1")).mode() & 0o7777, 0o644);
}

/// The host-side view of a running container's root filesystem (its overlay mount).
fn rootfs_of(env: &EngineEnv, c: &str) -> PathBuf {
    let id = env.ok(&["inspect", "-f", "{{.Id}}", c]).trim().to_string();
    env.root().join("containers").join(id).join("rootfs")
}

/// Checks a copied tree against the source tree made in `cp_round_trips_every_file_type`.
fn check_tree(d: &Path, owner: Option<u32>) {
    let what = d.display();
    let f = lstat(&d.join("file"));
    assert!(f.file_type().is_file(), "{what}/file");
    assert_eq!(f.mode() & 0o7777, 0o640, "{what}/file mode");
    assert_eq!(std::fs::read_to_string(d.join("file")).unwrap(), "data\n");
    if let Some(uid) = owner {
        assert_eq!((f.uid(), f.gid()), (uid, uid + 1), "{what}/file owner");
    }
    let (h1, h2) = (lstat(&d.join("hl1")), lstat(&d.join("hl2")));
    assert_eq!(h1.ino(), h2.ino(), "{what}: hl1 and hl2 stay one file");
    assert_eq!(h1.nlink(), 2, "{what}/hl1 links");
    assert_eq!(
        std::fs::read_link(d.join("sym")).unwrap(),
        Path::new("file")
    );
    let fifo = lstat(&d.join("fifo"));
    assert!(fifo.file_type().is_fifo(), "{what}/fifo");
    assert_eq!(
        fifo.mode() & 0o7777,
        0o666,
        "{what}/fifo mode (not the umask's)"
    );
    let (f1, f2) = (lstat(&d.join("fifo")), lstat(&d.join("fifo2")));
    assert_eq!(f1.ino(), f2.ino(), "{what}: hard-linked FIFOs stay one");
    let cdev = lstat(&d.join("cdev"));
    assert!(cdev.file_type().is_char_device(), "{what}/cdev");
    assert_eq!(cdev.rdev(), libc::makedev(1, 3));
    assert_eq!(cdev.mode() & 0o7777, 0o666, "{what}/cdev mode");
    let bdev = lstat(&d.join("bdev"));
    assert!(bdev.file_type().is_block_device(), "{what}/bdev");
    assert_eq!(bdev.rdev(), libc::makedev(7, 200));
    assert!(
        std::fs::symlink_metadata(d.join("sock")).is_err(),
        "{what}/sock skipped"
    );
}

#[test]
fn cp_round_trips_every_file_type() {
    let env = EngineEnv::new("outpaths-cp", |_| {});
    let c = unique("cp");
    env.ok(&["run", "-d", "--name", &c, "busybox", "sleep", "600"]);
    let src = env.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), "data\n").unwrap();
    std::fs::set_permissions(src.join("file"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(src.join("file"), Some(1234), Some(1235)).unwrap();
    std::fs::write(src.join("hl1"), "linked\n").unwrap();
    std::fs::hard_link(src.join("hl1"), src.join("hl2")).unwrap();
    std::os::unix::fs::symlink("file", src.join("sym")).unwrap();
    mkfifo(&src.join("fifo"), 0o666);
    std::fs::hard_link(src.join("fifo"), src.join("fifo2")).unwrap();
    mknod(&src.join("cdev"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&src.join("bdev"), libc::S_IFBLK, 0o600, 7, 200);
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();

    // Host → container, keeping owners (-a): the socket is skipped with a warning.
    let o = run_bounded(env.cmd(&["cp", "-a", src.to_str().unwrap(), &format!("{c}:/data")]));
    assert!(o.status.success(), "cp host→container: {}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARNING") && e.contains("src/sock") && e.contains("socket"),
        "{e}"
    );
    let rootfs = rootfs_of(&env, &c);
    check_tree(&rootfs.join("data"), Some(1234));
    // The container sees them too.
    let ls = env.ok(&["exec", &c, "ls", "-l", "/data"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with('p') && l.ends_with("fifo")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with('c') && l.ends_with("cdev")),
        "{ls}"
    );

    // A socket made inside the container is skipped on the way out, with a warning.
    // (Bound through a descriptor of the directory: the full path is longer than sun_path.)
    let data = std::fs::File::open(rootfs.join("data")).unwrap();
    let short = format!(
        "/proc/self/fd/{}/sock2",
        std::os::fd::AsRawFd::as_raw_fd(&data)
    );
    let _sock2 = std::os::unix::net::UnixListener::bind(short).unwrap();
    assert!(lstat(&rootfs.join("data/sock2")).file_type().is_socket());
    let back = env.dir.path().join("back");
    let o = run_bounded(env.cmd(&["cp", "-a", &format!("{c}:/data"), back.to_str().unwrap()]));
    assert!(o.status.success(), "cp container→host: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("WARNING") && e.contains("data/sock2"), "{e}");
    check_tree(&back, Some(1234));
    assert!(std::fs::symlink_metadata(back.join("sock2")).is_err());

    // Without -a the copies belong to the caller (root).
    let plain = env.dir.path().join("plain");
    let o = run_bounded(env.cmd(&["cp", &format!("{c}:/data"), plain.to_str().unwrap()]));
    assert!(o.status.success(), "cp without -a: {}", stderr(&o));
    check_tree(&plain, None);
    assert_eq!(lstat(&plain.join("file")).uid(), 0);

    // Single special files both ways, and -L following a symlink given as the source.
    let one = env.dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    for n in ["fifo", "cdev", "sym"] {
        let o = run_bounded(env.cmd(&["cp", &format!("{c}:/data/{n}"), one.to_str().unwrap()]));
        assert!(o.status.success(), "cp {n}: {}", stderr(&o));
    }
    assert!(lstat(&one.join("fifo")).file_type().is_fifo());
    assert!(lstat(&one.join("cdev")).file_type().is_char_device());
    assert_eq!(
        std::fs::read_link(one.join("sym")).unwrap(),
        Path::new("file")
    );
    let o = run_bounded(env.cmd(&[
        "cp",
        "-L",
        &format!("{c}:/data/sym"),
        one.join("followed").to_str().unwrap(),
    ]));
    assert!(o.status.success(), "cp -L: {}", stderr(&o));
    assert!(lstat(&one.join("followed")).file_type().is_file());
    assert_eq!(
        std::fs::read_to_string(one.join("followed")).unwrap(),
        "data\n"
    );
    let o = run_bounded(env.cmd(&[
        "cp",
        src.join("fifo").to_str().unwrap(),
        &format!("{c}:/tmp/"),
    ]));
    assert!(o.status.success(), "cp fifo in: {}", stderr(&o));
    assert!(lstat(&rootfs.join("tmp/fifo")).file_type().is_fifo());
}

#[test]
fn cp_to_the_host_never_replaces_special_files_or_writes_through_unnamed_symlinks() {
    let env = EngineEnv::new("outpaths-cpdst", |rootfs| {
        std::fs::write(rootfs.join("etc/motd"), "motd\n").unwrap();
        std::fs::create_dir_all(rootfs.join("x")).unwrap();
        std::fs::write(rootfs.join("x/link"), "new\n").unwrap();
    });
    let c = unique("cpdst");
    env.ok(&["create", "--name", &c, "busybox", "true"]);
    let d = env.dir.path().join("dst");
    std::fs::create_dir(&d).unwrap();
    mkfifo(&d.join("motd"), 0o644);
    mknod(&d.join("null"), libc::S_IFCHR, 0o666, 1, 3);
    let motd = format!("{c}:/etc/motd");

    // Into a directory where the name is a FIFO: refused, the FIFO stays.
    let o = run_bounded(env.cmd(&["cp", &motd, d.to_str().unwrap()]));
    refused(
        "cp onto a FIFO",
        &o,
        &["cannot overwrite named pipe (FIFO)"],
    );
    assert!(lstat(&d.join("motd")).file_type().is_fifo());
    // Naming a device node (or a FIFO) as the destination: docker's "must be a directory or a
    // regular file".
    for (n, got) in [("null", "got a device"), ("motd", "got a named pipe")] {
        let o = run_bounded(env.cmd(&["cp", &motd, d.join(n).to_str().unwrap()]));
        refused(
            &format!("cp onto {n}"),
            &o,
            &["must be a directory or a regular file", got],
        );
    }
    let null = lstat(&d.join("null"));
    assert!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3));

    // A symlink inside the destination tree is replaced, never written through.
    let secret = env.dir.path().join("secret");
    std::fs::write(&secret, "keep\n").unwrap();
    std::fs::create_dir(d.join("x")).unwrap();
    std::os::unix::fs::symlink(&secret, d.join("x/link")).unwrap();
    let o = run_bounded(env.cmd(&["cp", &format!("{c}:/x"), d.to_str().unwrap()]));
    assert!(o.status.success(), "cp x: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "keep\n");
    assert!(lstat(&d.join("x/link")).file_type().is_file());
    assert_eq!(std::fs::read_to_string(d.join("x/link")).unwrap(), "new\n");

    // A symlink the user names is followed, as docker does: to a directory, the copy lands in it.
    let real = env.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, d.join("todir")).unwrap();
    let o = run_bounded(env.cmd(&["cp", &motd, d.join("todir").to_str().unwrap()]));
    assert!(o.status.success(), "cp to a named symlink: {}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(real.join("motd")).unwrap(),
        "motd\n"
    );
    // A dangling one is refused rather than created through.
    std::os::unix::fs::symlink(env.dir.path().join("nowhere"), d.join("dangling")).unwrap();
    let o = run_bounded(env.cmd(&["cp", &motd, d.join("dangling").to_str().unwrap()]));
    refused("cp to a dangling symlink", &o, &["symbolic link"]);
    assert!(!env.dir.path().join("nowhere").exists());
}

/// Everything in the store a failed command could leave behind: blob and snapshot names, temp
/// entries, and index.json.
fn store_state(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["content/blobs/sha256", "snapshots", "tmp", "content"] {
        for n in names(&root.join(d)) {
            v.push(format!("{d}/{n}"));
        }
    }
    v.push(std::fs::read_to_string(root.join("content/index.json")).unwrap());
    v
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// A one-line error that echoes no control bytes of the junk it was given.
fn clean_error(what: &str, o: &Output, want: &str) {
    refused(what, o, &[want]);
    let e = stderr(o);
    assert!(
        e.trim_end().bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{what}: raw bytes in {e:?}"
    );
}

#[test]
fn failed_import_and_load_leave_the_store_as_they_found_it() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let root = t.path().join("root");
    let o = skiff(&root, &["import", rootfs.to_str().unwrap(), "base:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = store_state(&root);
    let f = |n: &str| t.path().join(n).to_str().unwrap().to_string();

    // Junk with terminal escapes and NULs.
    let mut junk = b"\x1b[2J\x1b]0;pwned\x07".to_vec();
    junk.extend((0..8192u32).map(|i| (i * 7 % 256) as u8));
    std::fs::write(f("junk"), &junk).unwrap();
    let o = skiff(&root, &["import", &f("junk"), "x:1"]);
    clean_error("import junk", &o, "not a tar archive");
    assert_eq!(store_state(&root), before, "import junk");

    // A tar archive cut in the middle of a file.
    sh(&format!(
        "tar -C {} -cf {} .",
        rootfs.display(),
        f("good.tar")
    ));
    let len = std::fs::metadata(f("good.tar")).unwrap().len();
    sh(&format!(
        "head -c {} {} > {}",
        len / 2,
        f("good.tar"),
        f("cut.tar")
    ));
    let o = skiff(&root, &["import", &f("cut.tar"), "x:2"]);
    clean_error("import truncated", &o, "truncated tar archive");
    assert_eq!(store_state(&root), before, "import truncated");
    // The same through stdin, gzip-compressed.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c {} | {} --root {} import - x:3",
            f("cut.tar"),
            skiff_tests::bin("skiff").display(),
            root.display()
        ))
        .output()
        .unwrap();
    refused("import truncated gzip", &o, &["truncated"]);
    assert_eq!(store_state(&root), before, "import truncated gzip");

    // A well-formed tar whose entry leaves the layer: refused while unpacking, after the layer,
    // config and manifest blobs were written.
    let evil = t.path().join("evil");
    std::fs::create_dir_all(evil.join("in")).unwrap();
    std::fs::write(evil.join("escape"), "x").unwrap();
    sh(&format!(
        "cd {}/in && tar -cPf {} ../escape",
        evil.display(),
        f("evil.tar")
    ));
    let o = skiff(&root, &["import", &f("evil.tar"), "x:4"]);
    refused("import ../escape", &o, &["escape"]);
    assert_eq!(store_state(&root), before, "import ../escape");

    // load: junk, a truncated archive, and an archive with a corrupted blob. The archive is of
    // an image made in another store, so its blobs are all new to this one.
    let o = skiff(&root, &["load", "-i", &f("junk")]);
    clean_error("load junk", &o, "tar archive");
    assert_eq!(store_state(&root), before, "load junk");
    let other = t.path().join("other");
    std::fs::write(rootfs.join("etc/other"), "other\n").unwrap();
    let o = skiff(&other, &["import", rootfs.to_str().unwrap(), "other:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = skiff(&other, &["save", "-o", &f("other.tar"), "other:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let len = std::fs::metadata(f("other.tar")).unwrap().len();
    sh(&format!(
        "head -c {} {} > {}",
        len * 3 / 4,
        f("other.tar"),
        f("other-cut.tar")
    ));
    let o = skiff(&root, &["load", "-i", &f("other-cut.tar")]);
    refused("load truncated", &o, &["truncated"]);
    assert_eq!(store_state(&root), before, "load truncated");
    // Corrupt the largest blob (the layer) in place: same size, one byte changed.
    let x = t.path().join("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!("tar -C {} -xf {}", x.display(), f("other.tar")));
    let layer = std::fs::read_dir(x.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&layer).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&layer, data).unwrap();
    // Manifest and config first in the archive, so they are committed before the layer fails.
    sh(&format!(
        "cd {} && tar -cf {} oci-layout index.json manifest.json $(ls -S -r blobs/sha256/* )",
        x.display(),
        f("bad.tar")
    ));
    let o = skiff(&root, &["load", "-i", &f("bad.tar")]);
    refused("load corrupted", &o, &["digest mismatch"]);
    assert_eq!(store_state(&root), before, "load corrupted");
    // And the store still works: the good archive loads.
    let o = skiff(&root, &["load", "-i", &f("other.tar")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// sha256 of a file, as `sha256:<hex>`.
fn sha256(p: &Path) -> String {
    let out = sh(&format!("sha256sum {}", p.display()));
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// A registry of a few lines of HTTP serving one two-layer image whose second layer's bytes do
/// not match their digest; stops when dropped.
struct BadRegistry {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BadRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bad_registry(files: Vec<(String, String, Vec<u8>)>) -> BadRegistry {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let files = Arc::new(files);
    let thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            let conn = match listener.accept() {
                Ok((c, _)) => c,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let files = files.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    // A TLS hello (record type 0x16) is refused by closing, as plain HTTP does.
                    match r.fill_buf() {
                        Ok(b) if !b.is_empty() && b[0] != 0x16 => {}
                        _ => return,
                    }
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let hit = files.iter().find(|(p, _, _)| p == path);
                    let (status, ct, body): (&str, &str, &[u8]) = match hit {
                        Some((_, ct, b)) => ("200 OK", ct, b),
                        None if path == "/v2/" => ("200 OK", "application/json", b"{}"),
                        None => ("404 Not Found", "application/json", b"{\"errors\":[]}"),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if w.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    if method != "HEAD" && w.write_all(body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    BadRegistry {
        port,
        stop,
        thread: Some(thread),
    }
}

#[test]
fn failed_pull_leaves_the_store_as_it_found_it() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let root = t.path().join("root");
    let o = skiff(&root, &["import", rootfs.to_str().unwrap(), "base:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = store_state(&root);

    // Layer A: a good gzip layer; layer B: a plain tar served with one byte changed.
    let p = |n: &str| t.path().join(n);
    std::fs::create_dir_all(p("a/etc")).unwrap();
    std::fs::write(p("a/etc/a"), "a\n").unwrap();
    std::fs::create_dir_all(p("b/etc")).unwrap();
    std::fs::write(p("b/etc/b"), "b".repeat(100_000)).unwrap();
    sh(&format!(
        "tar -C {} -cf {} .",
        p("a").display(),
        p("a.tar").display()
    ));
    sh(&format!(
        "gzip -n -c {} > {}",
        p("a.tar").display(),
        p("a.tar.gz").display()
    ));
    sh(&format!(
        "tar -C {} -cf {} .",
        p("b").display(),
        p("b.tar").display()
    ));
    let (a_diff, a_digest) = (sha256(&p("a.tar")), sha256(&p("a.tar.gz")));
    let b_digest = sha256(&p("b.tar"));
    let a = std::fs::read(p("a.tar.gz")).unwrap();
    let mut b = std::fs::read(p("b.tar")).unwrap();
    let mid = 1024 + 50_000;
    b[mid] ^= 1;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{a_diff}","{b_digest}"]}}}}"#
    );
    std::fs::write(p("config.json"), &config).unwrap();
    let config_digest = sha256(&p("config.json"));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{a_digest}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{b_digest}","size":{}}}]}}"#,
        config.len(),
        a.len(),
        b.len()
    );
    let blob = |d: &str| format!("/v2/test/img/blobs/{d}");
    let mt = "application/vnd.oci.image.manifest.v1+json".to_string();
    let oct = "application/octet-stream".to_string();
    let reg = bad_registry(vec![
        ("/v2/test/img/manifests/1".into(), mt, manifest.into_bytes()),
        (blob(&config_digest), oct.clone(), config.into_bytes()),
        (blob(&a_digest), oct.clone(), a),
        (blob(&b_digest), oct, b),
    ]);
    let o = run_bounded({
        let mut c = Command::new(skiff_tests::bin("skiff"));
        c.arg("--root").arg(&root).args([
            "pull",
            "-q",
            &format!("127.0.0.1:{}/test/img:1", reg.port),
        ]);
        c
    });
    drop(reg);
    assert!(!o.status.success(), "pull of a corrupted layer succeeded");
    let e = stderr(&o);
    assert!(
        e.contains("digest mismatch") || e.contains("diff id"),
        "{e}"
    );
    assert_eq!(store_state(&root), before, "failed pull: {e}");
}
