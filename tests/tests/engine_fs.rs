//! `skiff cp`, `diff`, `export`, `commit`, `container prune` and `system prune` end to end: real
//! containers from an image made with `skiff import`, real overlay mounts, a private `--root`, and a
//! `skiff-test-*` cgroup parent per test. The symlink test plants container symlinks that point at
//! host paths and asserts the host is never read or written through them.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use skiff_tests::{stderr, stdout, unique, EngineEnv};

/// The shared engine environment, its image with /opt/dir/{a,b} (for diff) and /etc/motd.
struct Env(EngineEnv);

impl std::ops::Deref for Env {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(EngineEnv::new("enginefs", |rootfs| {
            std::fs::create_dir_all(rootfs.join("opt/dir")).unwrap();
            std::fs::write(rootfs.join("opt/dir/a"), "a\n").unwrap();
            std::fs::write(rootfs.join("opt/dir/b"), "b\n").unwrap();
            std::fs::write(rootfs.join("etc/motd"), "hello\n").unwrap();
        }))
    }

    /// A scratch directory on the host side of the test.
    fn host(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("host").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    /// Fails with exit 1 and a one-line message containing `want`.
    fn fails(&self, args: &[&str], want: &str) {
        let o = self.sk(args);
        assert_eq!(o.status.code(), Some(1), "skiff {args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.starts_with("skiff: ") && e.contains(want),
            "skiff {args:?}: {e}"
        );
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    }

    /// `skiff ARGS` with `input` on stdin.
    fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn exec(&self, c: &str, script: &str) -> String {
        self.ok(&["exec", c, "sh", "-c", script])
    }

    fn mounts_under_root(&self) -> usize {
        let root = self.root();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()))
            .count()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn tar_list(data: &[u8]) -> Vec<String> {
    let mut c = Command::new("tar")
        .arg("-tf")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "tar -t failed");
    stdout(&o)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    let (cp, ck) = (cpath(p), std::ffi::CString::new(k).unwrap());
    // SAFETY: NUL-terminated path and name, value pointer/length from a slice.
    let r = unsafe { libc::lsetxattr(cp.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(
        r,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn get_xattr(p: &Path, k: &str) -> Option<Vec<u8>> {
    let (cp, ck) = (cpath(p), std::ffi::CString::new(k).unwrap());
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated path and name, writable buffer of the given length.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), ck.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// The first `<dir>/<child>/<rel>` that exists.
fn find_file(dir: &Path, rel: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join(rel))
        .find(|p| p.exists())
}

#[test]
fn cp_both_directions_with_docker_path_forms() {
    let env = Env::new();
    let c = unique("cp");
    env.ok(&["run", "-d", "--name", &c, "busybox", "sleep", "600"]);
    env.exec(
        &c,
        "mkdir -p /data/sub && echo one > /data/one && echo two > /data/sub/two && \
         chown 123:45 /data/one && ln -s /data/one /data/link",
    );
    let cs = |p: &str| format!("{c}:{p}");

    // Container → host.
    let f = env.host("f");
    env.ok(&["cp", &cs("/data/one"), f.to_str().unwrap()]);
    assert_eq!(read(&f), "one\n");
    assert_eq!(
        std::fs::metadata(&f).unwrap().uid(),
        0,
        "without -a files belong to the caller"
    );
    let d = env.host("existing");
    std::fs::create_dir_all(&d).unwrap();
    env.ok(&["cp", &cs("/data/one"), d.to_str().unwrap()]);
    assert_eq!(read(&d.join("one")), "one\n");
    let a = env.host("archived");
    env.ok(&["cp", "-a", &cs("/data/one"), a.to_str().unwrap()]);
    let md = std::fs::metadata(&a).unwrap();
    assert_eq!((md.uid(), md.gid()), (123, 45), "-a keeps uid/gid");
    // A directory to a new name: created with the contents; into an existing one: nested.
    let nd = env.host("newdir");
    env.ok(&["cp", &cs("/data"), nd.to_str().unwrap()]);
    assert_eq!(read(&nd.join("sub/two")), "two\n");
    env.ok(&["cp", &cs("/data"), d.to_str().unwrap()]);
    assert_eq!(read(&d.join("data/sub/two")), "two\n");
    // `/.` copies the contents into an existing directory.
    let dot = env.host("dot");
    std::fs::create_dir_all(&dot).unwrap();
    env.ok(&["cp", &cs("/data/."), dot.to_str().unwrap()]);
    assert_eq!(read(&dot.join("one")), "one\n");
    assert!(!dot.join("data").exists());
    // Symlinks are copied as links; -L copies the target.
    let l = env.host("link");
    env.ok(&["cp", &cs("/data/link"), l.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(&l).unwrap(), PathBuf::from("/data/one"));
    let l2 = env.host("link-followed");
    env.ok(&["cp", "-L", &cs("/data/link"), l2.to_str().unwrap()]);
    assert_eq!(read(&l2), "one\n");
    // Errors: a missing source, a file into a missing directory, a directory onto a file.
    env.fails(
        &["cp", &cs("/nope"), f.to_str().unwrap()],
        "Could not find the file /nope",
    );
    let missing = format!("{}/", env.host("missing-dir").display());
    env.fails(&["cp", &cs("/data/one"), &missing], "does not exist");
    env.fails(
        &["cp", &cs("/data"), f.to_str().unwrap()],
        "cannot copy a directory to a file",
    );
    env.fails(
        &["cp", f.to_str().unwrap(), a.to_str().unwrap()],
        "must specify at least one container",
    );

    // Host → container.
    let src = env.host("in.txt");
    std::fs::write(&src, "from host\n").unwrap();
    std::os::unix::fs::chown(&src, Some(1000), Some(1000)).unwrap();
    env.ok(&["cp", src.to_str().unwrap(), &cs("/tmp/")]);
    env.ok(&["cp", src.to_str().unwrap(), &cs("/tmp/renamed.txt")]);
    env.ok(&["cp", "-a", src.to_str().unwrap(), &cs("/tmp/kept.txt")]);
    assert_eq!(
        env.exec(
            &c,
            "cat /tmp/in.txt /tmp/renamed.txt; stat -c %u:%g /tmp/in.txt /tmp/kept.txt"
        ),
        "from host\nfrom host\n0:0\n1000:1000\n"
    );
    env.ok(&["cp", nd.to_str().unwrap(), &cs("/srv")]);
    assert_eq!(env.exec(&c, "cat /srv/sub/two"), "two\n");
    env.fails(
        &["cp", src.to_str().unwrap(), &cs("/no/such/dir/")],
        "does not exist",
    );

    // Tar streams: `-` as the destination writes a tar; as the source extracts one.
    let o = env.sk(&["cp", &cs("/data"), "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = tar_list(&o.stdout);
    for want in ["data", "data/one", "data/sub/two", "data/link"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let tar = o.stdout;
    let o = env.with_stdin(&["cp", "-", &cs("/opt")], &tar);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        env.exec(&c, "cat /opt/data/sub/two; stat -c %u /opt/data/one"),
        "two\n0\n"
    );
    let o = env.with_stdin(&["cp", "-a", "-", &cs("/opt")], &tar);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(env.exec(&c, "stat -c %u:%g /opt/data/one"), "123:45\n");
    let o = env.with_stdin(&["cp", "-", &cs("/etc/passwd")], &tar);
    assert_eq!(o.status.code(), Some(1), "a tar stream needs a directory");

    // Volumes and tmpfs mounts of a running container are copied to and from, as in docker.
    let v = unique("cpvol");
    let c2 = unique("cpmounts");
    env.ok(&[
        "run",
        "-d",
        "--name",
        &c2,
        "-v",
        &format!("{v}:/vol"),
        "--tmpfs",
        "/scratch",
        "busybox",
        "sleep",
        "600",
    ]);
    env.ok(&["cp", src.to_str().unwrap(), &format!("{c2}:/vol/")]);
    env.ok(&["cp", src.to_str().unwrap(), &format!("{c2}:/scratch/")]);
    assert_eq!(
        read(&env.root().join("volumes").join(&v).join("_data/in.txt")),
        "from host\n"
    );
    assert_eq!(env.exec(&c2, "cat /scratch/in.txt"), "from host\n");
    env.exec(&c2, "echo tmp > /scratch/out");
    let t = env.host("from-tmpfs");
    env.ok(&["cp", &format!("{c2}:/scratch/out"), t.to_str().unwrap()]);
    assert_eq!(read(&t), "tmp\n");
    env.ok(&["rm", "-f", &c2]);

    // A stopped container: its overlay is mounted just for the copy.
    env.ok(&["stop", "-t", "1", &c]);
    let mounts = env.mounts_under_root();
    let s = env.host("stopped");
    env.ok(&["cp", &cs("/tmp/renamed.txt"), s.to_str().unwrap()]);
    assert_eq!(read(&s), "from host\n");
    env.ok(&["cp", src.to_str().unwrap(), &cs("/root/while-stopped")]);
    assert_eq!(env.mounts_under_root(), mounts, "cp left a mount behind");
    env.ok(&["start", &c]);
    assert_eq!(env.exec(&c, "cat /root/while-stopped"), "from host\n");
    env.fails(
        &["cp", &format!("{}-none:/x", c), s.to_str().unwrap()],
        "No such container",
    );
}

#[test]
fn cp_never_reaches_host_files_through_container_symlinks() {
    let env = Env::new();
    let c = unique("cpsym");
    // A host directory with a secret, and the same path inside the container.
    let h = env.host("victim");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::write(h.join("secret"), "host secret\n").unwrap();
    let hs = h.to_str().unwrap().to_string();
    env.ok(&["run", "-d", "--name", &c, "busybox", "sleep", "600"]);
    env.exec(
        &c,
        &format!(
            "mkdir -p {hs} && echo container > {hs}/secret && \
             ln -s {hs} /tmp/abs && ln -s ../../../../../../../../..{hs} /tmp/rel && \
             ln -s {hs}/secret /tmp/secretlink && ln -s /etc /tmp/etc && \
             ln -s ../../../../../../../../../ /tmp/up"
        ),
    );
    let cs = |p: &str| format!("{c}:{p}");
    let before: Vec<_> = std::fs::read_dir(&h)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let src = env.host("payload");
    std::fs::write(&src, "payload\n").unwrap();

    // Writes through absolute, relative and `..`-chain symlinks land in the container. (Every
    // write target is a path under this test's temporary directory, so a regression cannot
    // damage the host outside it; /tmp/etc -> /etc is only read.)
    env.ok(&["cp", src.to_str().unwrap(), &cs("/tmp/abs/")]);
    env.ok(&["cp", src.to_str().unwrap(), &cs("/tmp/rel/p2")]);
    env.ok(&["cp", src.to_str().unwrap(), &cs(&format!("/tmp/up{hs}/p3"))]);
    // A destination that is itself a symlink to a host path is replaced inside the container.
    env.ok(&["cp", src.to_str().unwrap(), &cs("/tmp/secretlink")]);
    // A tar stream whose symlink entry points at the host path, followed by a file below it.
    let t = env.host("tarsrc");
    std::fs::create_dir_all(t.join("f")).unwrap();
    std::os::unix::fs::symlink(&h, t.join("l")).unwrap();
    std::fs::write(t.join("f/pwned"), "pwned\n").unwrap();
    let tarf = env.host("evil.tar");
    let st = Command::new("tar")
        .args([
            "-cf",
            tarf.to_str().unwrap(),
            "-C",
            t.to_str().unwrap(),
            "l",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("tar")
        .args(["-rf", tarf.to_str().unwrap(), "-C", t.to_str().unwrap()])
        .args(["--transform", "s,^f/,l/,", "f/pwned"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = env.with_stdin(&["cp", "-", &cs("/root")], &std::fs::read(&tarf).unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    // An archive entry with `..` is refused.
    let o = Command::new("tar")
        .args([
            "-cPf",
            "-",
            "-C",
            t.to_str().unwrap(),
            "--transform",
            "s,^f/,../../../../x/,",
            "f/pwned",
        ])
        .output()
        .unwrap();
    let o = env.with_stdin(&["cp", "-", &cs("/root")], &o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // The host is untouched ...
    let after: Vec<_> = std::fs::read_dir(&h)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "files appeared in the host directory");
    assert_eq!(read(&h.join("secret")), "host secret\n");
    // ... and everything went into the container.
    assert_eq!(
        env.exec(&c, &format!("ls {hs}; cat /tmp/secretlink /root/l/pwned")),
        "p2\np3\npayload\npwned\nsecret\npayload\npwned\n"
    );

    // Reads through the same links see the container's files, never the host's.
    env.exec(
        &c,
        &format!("rm /tmp/secretlink; ln -s {hs}/secret /tmp/secretlink"),
    );
    for (src, follow) in [
        ("/tmp/secretlink", true),
        ("/tmp/abs/secret", false),
        ("/tmp/rel/secret", false),
    ] {
        let out = env.host(&unique("read"));
        let mut args = vec!["cp"];
        if follow {
            args.push("-L");
        }
        let s = cs(src);
        args.extend([s.as_str(), out.to_str().unwrap()]);
        env.ok(&args);
        assert_eq!(read(&out), "container\n", "{src}");
    }
    let o = env.sk(&["cp", &cs(&format!("/tmp/up{hs}/secret")), "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("host secret"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("container"));
    let out = env.host("passwd");
    env.ok(&["cp", &cs("/tmp/etc/passwd"), out.to_str().unwrap()]);
    assert_eq!(read(&out), read(&env.dir.path().join("rootfs/etc/passwd")));
}

#[test]
fn diff_lists_added_changed_and_deleted_paths() {
    let env = Env::new();
    let c = unique("diff");
    env.ok(&[
        "run",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "echo x > /tmp/new; echo bye >> /etc/motd; rm /opt/dir/a; \
         rm -rf /root && mkdir /root && touch /root/fresh; mkdir -p /var/lib/app",
    ]);
    let out = env.ok(&["diff", &c]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "C /etc",
        "C /etc/motd",
        "C /opt",
        "C /opt/dir",
        "D /opt/dir/a",
        "C /tmp",
        "A /tmp/new",
        "A /var",
        "A /var/lib",
        "A /var/lib/app",
        "A /root/fresh",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from:\n{out}");
    }
    // Engine-made mount points (/etc/hosts, /proc, ...) are not the container's changes.
    for hidden in [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/proc",
        "/sys",
        "/dev",
    ] {
        assert!(
            !lines.iter().any(|l| l[2..] == *hidden),
            "{hidden} in:\n{out}"
        );
    }
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| &l[2..]);
    assert_eq!(lines, sorted, "sorted by path");
    env.fails(&["diff", "no-such-container"], "No such container");
}

#[test]
fn export_and_commit_then_run_the_new_image() {
    let env = Env::new();
    let c = unique("commit");
    env.ok(&[
        "run", "-d", "--name", &c, "-e", "FROMRUN=1", "busybox", "sh", "-c",
        "echo committed > /root/file; rm /etc/motd; rm -rf /opt/dir; mkdir /opt/dir; echo c > /opt/dir/c; sleep 600",
    ]);
    for _ in 0..100 {
        if env
            .sk(&["exec", &c, "test", "-e", "/opt/dir/c"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // export: the whole filesystem as a tar, to stdout or -o.
    let o = env.sk(&["export", &c]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = tar_list(&o.stdout);
    for want in ["bin/busybox", "etc/passwd", "root/file", "opt/dir/c"] {
        assert!(names.iter().any(|n| n == want), "{want} not exported");
    }
    assert!(
        !names.iter().any(|n| n == "etc/motd"),
        "deleted file exported"
    );
    let f = env.host("export.tar");
    env.ok(&["export", "-o", f.to_str().unwrap(), &c]);
    assert_eq!(tar_list(&std::fs::read(&f).unwrap()), names);

    // An extended attribute on a changed file travels into the image layer (SCHILY.xattr).
    let cid = env.ok(&["inspect", "-f", "{{.Id}}", &c]).trim().to_string();
    let upper_file = env
        .root()
        .join("containers")
        .join(&cid)
        .join("upper/root/file");
    set_xattr(&upper_file, "user.skiff.test", b"kept");

    // commit (pauses the running container by default) with -m, -a and --change.
    let id = env.ok(&[
        "commit",
        "-m",
        "added a file",
        "-a",
        "Tester <t@example.com>",
        "-c",
        "ENV COMMITTED=yes",
        "-c",
        "CMD [\"cat\", \"/root/file\"]",
        "-c",
        "LABEL stage=two",
        "-c",
        "WORKDIR /root",
        &c,
        "committed:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", &c]).trim(),
        "running"
    );
    assert!(env.ok(&["images"]).contains("committed"));
    let hist = env.ok(&["history", "committed:v1"]);
    assert!(hist.contains("added a file"), "{hist}");
    // The new image runs with the changes: file there, deletions and opaque dir kept.
    assert_eq!(env.ok(&["run", "--rm", "committed:v1"]), "committed\n");
    let out = env.ok(&[
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "echo $COMMITTED $FROMRUN; pwd; ls /opt/dir; test -e /etc/motd || echo gone",
    ]);
    assert_eq!(out, "yes 1\n/root\nc\ngone\n");
    let snap = find_file(&env.root().join("snapshots"), Path::new("fs/root/file"))
        .expect("the committed layer is unpacked");
    assert_eq!(
        get_xattr(&snap, "user.skiff.test").as_deref(),
        Some(&b"kept"[..])
    );
    let cfg = env.ok(&["image", "inspect", "committed:v1"]);
    assert!(cfg.contains("stage") && cfg.contains("Tester"), "{cfg}");
    // commit of a stopped container, without a name: a dangling image.
    env.ok(&["stop", "-t", "1", &c]);
    env.ok(&["commit", "--pause=false", &c]);
    env.fails(&["commit", &c, "Bad Name"], "invalid reference format");
    env.fails(&["commit", "-c", "FROB x", &c], "FROB");
    env.fails(&["export", "no-such-container"], "No such container");
}

#[test]
fn container_and_system_prune() {
    let env = Env::new();
    let keep = unique("keep");
    let gone = unique("gone");
    let running = unique("running");
    env.ok(&["run", "--name", &keep, "-l", "keep=yes", "busybox", "true"]);
    env.ok(&[
        "run",
        "--name",
        &gone,
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/x",
    ]);
    env.ok(&["run", "-d", "--name", &running, "busybox", "sleep", "600"]);
    let gone_id = env
        .ok(&["inspect", "-f", "{{.Id}}", &gone])
        .trim()
        .to_string();
    env.fails(
        &["container", "prune", "-f", "--filter", "until=soon"],
        "until=soon",
    );
    env.fails(
        &["container", "prune", "-f", "--filter", "name=x"],
        "invalid filter",
    );
    // until= excludes containers made after the cut-off.
    let out = env.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    // Without -f it asks; anything but yes keeps everything.
    let o = env.with_stdin(&["container", "prune"], b"n\n");
    assert!(stderr(&o).contains("WARNING! This will remove all stopped containers."));
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 3);
    let out = env.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Containers:\n{gone_id}\n\nTotal reclaimed space: "
        )),
        "{out}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 2);

    // system prune: stopped containers, dangling images, then (-a) unused ones, (--volumes) volumes.
    env.ok(&["commit", &running]);
    env.exec(&running, "echo more > /root/more");
    env.ok(&["commit", &running, "unused:v1"]);
    let vols = env.root().join("volumes");
    assert_eq!(volume_dirs(&vols), 1, "the anonymous volume of {gone}");
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Deleted Images:\ndeleted: sha256:"), "{out}");
    assert!(!out.contains("untagged"), "only dangling images: {out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(volume_dirs(&vols), 1, "volumes kept without --volumes");
    let images = env.ok(&["images"]);
    assert!(
        images.contains("unused") && images.contains("busybox"),
        "{images}"
    );
    let out = env.ok(&["system", "prune", "-f", "-a", "--volumes"]);
    assert!(out.contains("Deleted Volumes:\n"), "{out}");
    assert!(out.contains("untagged: unused:v1"), "{out}");
    assert_eq!(volume_dirs(&vols), 0);
    // The running container's image stays.
    let images = env.ok(&["images"]);
    assert!(
        images.contains("busybox") && !images.contains("unused"),
        "{images}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    env.ok(&["rm", "-f", &running]);
    let out = env.ok(&["system", "prune", "-f", "-a"]);
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
}

/// The volumes under `<root>/volumes` (the volume store keeps its `.lock` file beside them).
fn volume_dirs(vols: &std::path::Path) -> usize {
    std::fs::read_dir(vols)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count()
}
