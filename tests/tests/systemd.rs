//! The systemd cgroup manager against a real systemd: the test boots Debian's systemd as PID 1 of
//! its own pid, mount and cgroup namespaces (private /run, cgroup2 mounted at /sys/fs/cgroup,
//! rooted in a `skiff-test-systemd-*` group of the host's unified tree), then runs
//! `skiff-runtime --systemd-cgroup` inside those namespaces (nsenter). It asserts that the
//! container lands in the transient scope systemd created (delegated, active) and that `delete`
//! stops the unit and leaves no directory behind. Killing systemd ends the namespace.

use skiff_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SYSTEMD: &str = "/usr/lib/systemd/systemd";

/// systemd booted as PID 1 of fresh namespaces; killed and its cgroup removed on drop.
struct Systemd {
    child: Child,
    pid: i32,
    cgroup: PathBuf,
}

impl Systemd {
    fn boot() -> Option<Systemd> {
        require_root();
        if !Path::new(SYSTEMD).exists() {
            skip(&format!("{SYSTEMD} is not installed"));
            return None;
        }
        let unified = Path::new("/sys/fs/cgroup/unified");
        let base = if unified.join("cgroup.procs").exists() {
            unified.to_path_buf()
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            skip("no cgroup2 hierarchy on this host");
            return None;
        };
        let cgroup = base.join(unique("skiff-test-systemd"));
        std::fs::create_dir(&cgroup).unwrap();
        let script = format!(
            r#"set -e
echo $$ > {cg}/cgroup.procs
exec unshare -m -p -f -C --propagation private sh -c '
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
printf "[Unit]\nDescription=skiff test target\n" > /run/systemd/system/skiff-test.target
mount -t proc proc /proc
mount -t cgroup2 none /sys/fs/cgroup
exec {sd} --system --unit=skiff-test.target --log-target=null
'"#,
            cg = cgroup.display(),
            sd = SYSTEMD
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Systemd {
            child,
            pid: 0,
            cgroup,
        };
        // systemd is the child of `unshare -f`: find it as the process named systemd whose
        // cgroup is ours, then wait for its private socket.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if s.pid == 0 {
                s.pid = find_systemd(&s.cgroup).unwrap_or(0);
            }
            if s.pid != 0
                && Path::new(&format!("/proc/{}/root/run/systemd/private", s.pid)).exists()
            {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("systemd did not come up in its namespaces");
    }

    /// Run `cmd` inside systemd's pid, mount and cgroup namespaces.
    fn run(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-p", "-C", "--"])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `systemctl show -p PROP --value UNIT` inside the namespace.
    fn show(&self, unit: &str, prop: &str) -> String {
        stdout(&self.run(&["systemctl", "show", "-p", prop, "--value", unit]))
            .trim()
            .to_string()
    }
}

fn find_systemd(cgroup: &Path) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "systemd" {
            continue;
        }
        // Inside its cgroup namespace systemd sits in /init.scope below our group.
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let name = cgroup.file_name()?.to_string_lossy().to_string();
        if cg
            .lines()
            .any(|l| l.starts_with("0::") && l.contains(&name))
        {
            return Some(pid);
        }
    }
    None
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if self.pid != 0 {
            // SAFETY: kill(2) with integers; SIGKILL of a pid namespace's init ends the namespace.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cgroup.exists() && Instant::now() < deadline {
            let _ = Command::new("find")
                .arg(&self.cgroup)
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn systemd_manager_runs_the_container_in_a_delegated_transient_scope() {
    let Some(sd) = Systemd::boot() else { return };
    let id = unique("sd");
    let mut b = Bundle::busybox(&["sh", "-c", "cat /proc/self/cgroup; sleep 300"]);
    // No cgroup namespace, so /proc/self/cgroup shows the scope's path.
    b.config["linux"]["namespaces"] = serde_json::json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
    ]);
    b.config["linux"]["cgroupsPath"] = format!("system.slice:skiff:{id}").into();
    b.write();
    let rt = Runtime::new();
    let root = rt.root.path().to_str().unwrap().to_string();
    let rtbin = bin("skiff-runtime");
    let rtbin = rtbin.to_str().unwrap();
    let out_file = b.path().join("out");
    let o = sd.run(&[
        "sh",
        "-c",
        &format!(
            "{rtbin} --systemd-cgroup --root {root} create --bundle {} {id} >{} 2>&1 && {rtbin} --root {root} start {id}",
            b.path().display(),
            out_file.display()
        ),
    ]);
    assert!(
        o.status.success(),
        "create/start under systemd: {}{}",
        stderr(&o),
        std::fs::read_to_string(&out_file).unwrap_or_default()
    );
    let unit = format!("skiff-{id}.scope");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = std::fs::read_to_string(&out_file).unwrap_or_default();
        if seen.contains("0::") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen.contains(&format!("0::/system.slice/{unit}")),
        "container's cgroup: {seen}"
    );
    assert_eq!(sd.show(&unit, "ActiveState"), "active");
    assert_eq!(sd.show(&unit, "Delegate"), "yes");
    let dir = sd.cgroup.join("system.slice").join(&unit);
    assert!(dir.is_dir(), "{} missing", dir.display());

    let o = sd.run(&[rtbin, "--root", &root, "delete", "--force", &id]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(!dir.exists(), "{} left behind", dir.display());
    let state = sd.show(&unit, "LoadState");
    assert!(
        state == "not-found" || sd.show(&unit, "ActiveState") == "inactive",
        "unit {unit} still loaded: {state}"
    );
}

#[test]
fn systemd_manager_reports_a_clear_error_for_a_bad_path() {
    let Some(sd) = Systemd::boot() else { return };
    let id = unique("sdbad");
    let mut b = Bundle::busybox(&["true"]);
    b.config["linux"]["cgroupsPath"] = "/not/systemd/form".into();
    b.write();
    let rt = Runtime::new();
    let root = rt.root.path().to_str().unwrap().to_string();
    let rtbin = bin("skiff-runtime");
    let o = sd.run(&[
        rtbin.to_str().unwrap(),
        "--systemd-cgroup",
        "--root",
        &root,
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("slice:prefix:name"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}
