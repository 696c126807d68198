//! One regression test per container-escape class skiff-runtime defends against. Each test names
//! the CVE and fails on a runtime without the defense.

use serde_json::{json, Value};
use skiff_tests::*;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// CVE-2024-21626 (runc "Leaky Vessels"): a host fd leaked into the container init let
/// `process.cwd = /proc/self/fd/N` put the process's cwd on the host. Asserts: (a) the container's
/// PID 1 holds no fd beyond stdio; (b) a cwd through /proc/self/fd/N is refused at create, with
/// nothing left behind.
#[test]
fn cve_2024_21626_no_leaked_fds_and_no_cwd_through_proc_fd() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    b.write();
    let id = unique("leaky");
    ok(&rt.out_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]));
    let fds = ok(&rt.out(&["exec", &id, "ls", "/proc/1/fd"]));
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "PID 1 holds only stdio"
    );
    ok(&rt.out(&["delete", "-f", &id]));
    for n in [3, 4, 5, 6, 7, 8, 9] {
        let mut b = Bundle::busybox(&["pwd"]);
        b.config["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        let rt = Runtime::new();
        let id = unique("cwdfd");
        let o = rt.run(&b, &id);
        assert!(
            !o.status.success(),
            "cwd /proc/self/fd/{n} must be refused, got {}",
            stdout(&o)
        );
        assert!(!rt.root.path().join(&id).exists());
    }
}

/// CVE-2021-30465 class (mount-target symlink races; also CVE-2025-31133/52565/52881): a symlink
/// in the rootfs pointing at a host path must not redirect a mount onto the host. The mount lands
/// inside the rootfs and the host directory stays untouched.
#[test]
fn cve_2021_30465_mount_target_symlink_stays_in_rootfs() {
    require_root();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("canary"), "host").unwrap();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "ls /evil/; grep -c \" $(readlink /evil) .* - tmpfs \" /proc/self/mountinfo",
    ]);
    // /evil -> <absolute host dir>; a tmpfs mounted at /evil must not cover the host dir.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
    );
    let rt = Runtime::new();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = ok(&rt.run(&b, &unique("symlink")));
    assert_eq!(
        out, "1\n",
        "tmpfs mounted (empty) inside the container: {out}"
    );
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !after.contains(host.path().to_str().unwrap()),
        "nothing mounted on the host path"
    );
    // Other tests mount and unmount in parallel, so compare only what is new since `before`:
    // no new host mount may sit on or under the host directory.
    let new: Vec<&str> = after.lines().filter(|l| !before.contains(*l)).collect();
    let hostp = host.path().to_str().unwrap();
    assert!(
        !new.iter()
            .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp.starts_with(hostp))),
        "a new host mount covers {hostp}: {new:?}"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("canary")).unwrap(),
        "host"
    );
    // The runtime created the target inside the rootfs, following the link only within it.
    assert!(b
        .rootfs()
        .join(host.path().strip_prefix("/").unwrap())
        .is_dir());
}

/// CVE-2025-31133 class: masking a path by bind-mounting /dev/null is only safe if /dev/null is
/// the real null device. With a /dev bound from the image in which `null` is a regular file, the
/// runtime must refuse instead of binding that file over /proc/keys.
#[test]
fn cve_2025_31133_fake_dev_null_is_refused_for_masking() {
    require_root();
    let mut b = Bundle::busybox(&["true"]);
    let fakedev = b.rootfs().join("fakedev");
    std::fs::create_dir_all(&fakedev).unwrap();
    std::fs::write(fakedev.join("null"), "not a device").unwrap();
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["destination"] != "/dev" && !m["destination"].as_str().unwrap().starts_with("/dev/")
        })
        .cloned()
        .collect();
    b.config["mounts"] = json!(mounts);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/dev", "type": "bind", "source": fakedev, "options": ["rbind"]}),
    );
    b.config["linux"]["maskedPaths"] = json!(["/proc/keys"]);
    let rt = Runtime::new();
    let id = unique("fakenull");
    let o = rt.run(&b, &id);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not the null device"), "{}", stderr(&o));
    assert!(!rt.root.path().join(&id).exists());
}

/// CVE-2022-0492: with cgroup v1, a container with CAP_SYS_ADMIN in its own user namespace could
/// mount cgroupfs and set `release_agent` to run a host command. Asserts: the container's cgroup
/// mount is read-only, release_agent cannot be written, and mounting a cgroup hierarchy fails with
/// the default capabilities.
#[test]
fn cve_2022_0492_release_agent_is_not_writable() {
    require_root();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "echo /x > /sys/fs/cgroup/memory/release_agent 2>/dev/null && echo ra-written; \
        mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo mounted; \
        ls /sys/fs/cgroup/memory/release_agent 2>/dev/null; echo done",
    ]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    let rt = Runtime::new();
    assert_eq!(ok(&rt.run(&b, &unique("relagent"))), "done\n");
}

/// CVE-2016-9962: the container init must not be ptrace-able (non-dumpable) while it still holds
/// host resources. In a user-namespaced container waiting for `start`, /proc/<init>/ files of a
/// dumpable process would be owned by the mapped uid; non-dumpable makes them root-owned.
#[test]
fn cve_2016_9962_init_is_not_dumpable_before_exec() {
    require_root();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    std::process::Command::new("chown")
        .args(["-R", "200000:200000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    b.write();
    let rt = Runtime::new();
    let id = unique("dumpable");
    ok(&rt.out_detached(&["create", "--bundle", b.path().to_str().unwrap(), &id]));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let uid = |p: &str| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
    assert_eq!(
        uid(&format!("/proc/{pid}/mem")),
        0,
        "created init is non-dumpable"
    );
    ok(&rt.out(&["start", &id]));
    // After exec the user's program is dumpable again (owned by its mapped uid).
    let mut owner = 0;
    for _ in 0..100 {
        owner = uid(&format!("/proc/{pid}/mem"));
        if owner == 200000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(owner, 200000);
    ok(&rt.out(&["delete", "-f", &id]));
}

/// CVE-2022-29162: runc granted inheritable capabilities by default, so a setcap'ed program could
/// regain them. The default config from `spec` must leave CapInh empty; and supplementary groups of
/// the runtime must not leak: the process has exactly additionalGids (CVE-2023-25809 class).
#[test]
fn cve_2022_29162_no_inheritable_caps_and_exact_groups() {
    require_root();
    let mut b = Bundle::busybox(&["sh", "-c", "grep CapInh /proc/self/status; id -G"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let rt = Runtime::new();
    // The runtime itself runs with supplementary groups; none may reach the container.
    b.write();
    let o = std::process::Command::new("setpriv")
        .args(["--groups", "4,27,100", "--"])
        .arg(bin("skiff-runtime"))
        .arg("--root")
        .arg(rt.root.path())
        .args([
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            &unique("inh"),
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&o), "CapInh:\t0000000000000000\n1000\n");
    assert!(Path::new("/proc/self/status").exists());
}

/// CVE-2019-5736: a container program could make the kernel execute the runtime through
/// `/proc/self/exe`, keep an O_PATH handle on /proc/<pid>/exe, and once that process exited reopen
/// the handle for writing to overwrite the host binary. Asserts: the process that enters the
/// container does not run from a writable host file — reopening its exe for writing fails (a
/// read-only mount: EROFS; the sealed-memfd fallback: the write fails) — and the host binary is
/// untouched.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten_through_proc_exe() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    require_root();
    // A private copy of the runtime, so no other test keeps its inode busy (ETXTBSY would hide the
    // real answer).
    let dir = tempfile::tempdir().unwrap();
    let rtbin = dir.path().join("skiff-runtime");
    std::fs::copy(bin("skiff-runtime"), &rtbin).unwrap();
    let root = dir.path().join("root");
    let b = Bundle::busybox(&["true"]);
    b.write();
    let id = unique("exe");
    let run = |args: &[&str]| {
        std::process::Command::new(&rtbin)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    assert!(run(&["create", "--bundle", b.path().to_str().unwrap(), &id]).success());
    let st: Value = serde_json::from_slice(
        &std::process::Command::new(&rtbin)
            .arg("--root")
            .arg(&root)
            .args(["state", &id])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let host = std::fs::read(&rtbin).unwrap();
    // The attacker's handle, taken while the runtime process is alive.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .unwrap();
    assert!(run(&["delete", "-f", &id]).success());
    let reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let wrote = match reopened {
        Ok(mut f) => f.write_all(b"owned").is_ok(),
        Err(e) => {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EROFS),
                "refused because read-only, not merely busy: {e}"
            );
            false
        }
    };
    assert!(
        !wrote,
        "the runtime binary reachable from the container must not be writable"
    );
    assert_eq!(std::fs::read(&rtbin).unwrap(), host);
}

/// CVE-2019-5736 for `skiff exec`, which no longer re-executes the `skiff` binary: the process
/// that enters the container must be the small `skiff-exec` helper running from a read-only view
/// of its file, never `skiff` itself. The entering process is held inside the container (strace
/// delays its `setgroups`, which only it makes) while the test takes an attacker's O_PATH handle
/// on its `/proc/<pid>/exe`; after the exec ended the handle names the helper's file, not skiff's,
/// and reopening it for writing fails with EROFS. Fails on the old path (a sealed view of `skiff`).
#[test]
fn cve_2019_5736_skiff_exec_enters_through_the_sealed_helper() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    require_root();
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        skip("strace is not installed: the entering process cannot be held");
        return;
    }
    let env = EngineEnv::new("exe-helper", |_| {});
    let name = unique("eh");
    env.ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
    let init: i32 = env
        .ok(&["inspect", "-f", "{{.State.Pid}}", &name])
        .trim()
        .parse()
        .unwrap();
    let pidns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    // Private copies, so no other test keeps their inodes busy.
    let dir = tempfile::tempdir().unwrap();
    let (sk, helper) = (dir.path().join("skiff"), dir.path().join("skiff-exec"));
    std::fs::copy(bin("skiff"), &sk).unwrap();
    std::fs::copy(bin("skiff-exec"), &helper).unwrap();
    let before = (std::fs::read(&sk).unwrap(), std::fs::read(&helper).unwrap());
    let child = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=setgroups"])
        .args(["-e", "inject=setgroups:delay_exit=1500000"])
        .arg(&sk)
        .arg("--root")
        .arg(env.root())
        .args(["exec", &name, "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The attacker: any process of the container's pid namespace but its init.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let handle = loop {
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| p != init)
            .find(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok() == Some(pidns.clone()));
        if let Some(p) = found {
            if let Ok(h) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(format!("/proc/{p}/exe"))
            {
                break h;
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "no process entered the container"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let exe = std::fs::metadata(format!("/proc/self/fd/{}", handle.as_raw_fd())).unwrap();
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    assert_ne!(
        id(&exe),
        id(&std::fs::metadata(&sk).unwrap()),
        "the skiff binary itself entered the container"
    );
    assert_eq!(
        id(&exe),
        id(&std::fs::metadata(&helper).unwrap()),
        "the process in the container should run the skiff-exec helper"
    );
    let reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let wrote = match reopened {
        Ok(mut f) => f.write_all(b"owned").is_ok(),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
            false
        }
    };
    assert!(
        !wrote,
        "the helper reachable from the container is writable"
    );
    assert_eq!(
        (std::fs::read(&sk).unwrap(), std::fs::read(&helper).unwrap()),
        before
    );
    // Run by hand from its writable file, the helper refuses to do anything.
    let o = std::process::Command::new(&helper)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    env.ok(&["rm", "-f", &name]);
}
