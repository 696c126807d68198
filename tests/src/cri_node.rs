//! A private containerd with its CRI plugin set up as a Kubernetes node runs it, for the CRI tests
//! and `skiff-cri-bench`: its own root, state, sockets and config.toml under one temporary
//! directory; skiff-runtime configured either as the default runtime or as the `skiff` handler
//! (RuntimeClass) beside runc; optionally a CNI bridge network of its own; a pause image built from
//! busybox and imported with `ctr`. Teardown (on drop, or [`CriNode::shutdown`], which also reports
//! what is left) removes every pod, shim, container, mount, cgroup, CNI device and file it made.

use crate::cri::{self, pb};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How the CRI plugin's runtimes are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtimes {
    /// The default handler (`runc`) runs skiff-runtime: its `BinaryName` is skiff-runtime's path.
    SkiffDefault,
    /// `runc` (real runc) stays the default; `skiff` is an extra handler running skiff-runtime,
    /// chosen per pod by `runtime_handler` (a Kubernetes RuntimeClass).
    SkiffHandler,
}

/// The CNI network a node's pods join: a bridge of its own and a /24 no host route uses.
#[derive(Debug, Clone)]
pub struct CniNet {
    /// CNI network name.
    pub name: String,
    /// The Linux bridge the plugin creates.
    pub bridge: String,
    /// `10.201.N`: the pods get `10.201.N.2` and up.
    pub prefix: String,
}

/// A running private containerd with the CRI plugin.
pub struct CriNode {
    dir: Option<tempfile::TempDir>,
    /// The temporary directory everything lives in.
    pub path: PathBuf,
    /// containerd's gRPC socket (CRI is served there).
    pub sock: PathBuf,
    child: Option<Child>,
    /// The runc shim's `Root` for the skiff-runtime handler: its state is under `<root>/k8s.io`.
    pub skiff_root: PathBuf,
    /// The runc shim's `Root` for the real runc handler ([`Runtimes::SkiffHandler`] only).
    pub runc_root: PathBuf,
    /// The cgroup parent (first level, every hierarchy) the node's pods are put under.
    pub cgroup: String,
    /// The CNI network, if the node has one.
    pub cni: Option<CniNet>,
    /// The sandbox image (`sandbox_image` in the config).
    pub pause_image: String,
    /// How the runtimes are configured.
    pub runtimes: Runtimes,
    /// The skiff-runtime binary the shim runs.
    pub skiff_runtime: PathBuf,
    torn_down: bool,
}

/// The `skiff-runtime` binary the nodes use (absolute).
pub fn skiff_runtime() -> PathBuf {
    std::fs::canonicalize(crate::bin("skiff-runtime")).unwrap()
}

/// Why this host cannot run a CRI node, if it cannot (binaries the test needs are missing).
pub fn missing(runtimes: Runtimes) -> Option<String> {
    for b in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        if which(b).is_none() {
            return Some(format!("{b} is not installed (Debian package containerd)"));
        }
    }
    if runtimes == Runtimes::SkiffHandler && which("runc").is_none() {
        return Some("runc is not installed (Debian package runc)".into());
    }
    None
}

/// Why this host cannot give pods a CNI bridge network, if it cannot.
pub fn cni_missing() -> Option<String> {
    for p in ["bridge", "host-local", "loopback"] {
        if !Path::new("/usr/lib/cni").join(p).exists() {
            return Some(format!(
                "/usr/lib/cni/{p} is missing (Debian package containernetworking-plugins)"
            ));
        }
    }
    None
}

/// The first `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Third octets of the 10.201.0.0/16 /24s some host route covers now.
fn used_octets() -> Vec<u32> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dst = u32::from_str_radix(f.nth(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.nth(5)?, 16).ok()?;
            // Little-endian: 10.201.x.y is 0xyyxxc90a. A route shorter than /16 (but not the
            // default route) covers all of it.
            if mask == 0 {
                return None;
            }
            if mask & 0xffff != 0xffff {
                return ((dst & mask) == (0x0000c90a & mask)).then_some(u32::MAX);
            }
            ((dst & 0xffff) == 0xc90a).then_some((dst >> 16) & 0xff)
        })
        .collect()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl CriNode {
    /// Starts containerd with the CRI plugin configured as `runtimes`, with a CNI bridge network
    /// when `cni` is true, and imports the pause image. Panics (after cleaning up) if it cannot.
    pub fn start(runtimes: Runtimes, cni: bool) -> CriNode {
        crate::require_root();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("skiff-cri-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        let cni = cni.then(|| {
            let used = used_octets();
            assert!(
                !used.contains(&u32::MAX),
                "a host route covers all of 10.201.0.0/16: no free /24 for the pod network"
            );
            let mut octet = (pid % 50) * 5 + n as u32 % 5 + 1;
            while used.contains(&octet) {
                octet = octet % 250 + 1;
            }
            CniNet {
                name: format!("skiff-cri-{pid}-{n}"),
                bridge: format!("skcri{}{n}", pid % 100000),
                prefix: format!("10.201.{octet}"),
            }
        });
        let mut node = CriNode {
            sock: path.join("containerd.sock"),
            skiff_root: path.join("skiff-runtime-root"),
            runc_root: path.join("runc-root"),
            cgroup: format!("skiff-test-cri-{pid}-{n}"),
            cni,
            pause_image: format!("localhost/skiff-cri/pause:{pid}-{n}"),
            runtimes,
            skiff_runtime: skiff_runtime(),
            path,
            dir: Some(dir),
            child: None,
            torn_down: false,
        };
        node.write_config();
        let log = std::fs::File::create(node.path.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(node.path.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        node.child = Some(child);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if node.sock.exists() {
                if let Ok(mut c) = cri::Client::connect(&node.sock) {
                    c.timeout = Duration::from_secs(5);
                    if c.version().is_ok() {
                        break;
                    }
                }
            }
            if let Some(st) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "containerd exited ({st}) before serving CRI: {}",
                    node.log_tail()
                );
            }
            assert!(
                Instant::now() < end,
                "containerd's CRI did not answer within 30 s: {}",
                node.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let pause = node.pause_image.clone();
        node.import_image(&pause, "[\"/bin/sleep\", \"2147483647\"]");
        node
    }

    /// The config.toml this node runs with (what the README shows, with this node's paths).
    pub fn config(&self) -> String {
        let p = self.path.display();
        let rt = self.skiff_runtime.display();
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let mut s = format!(
            r#"version = 2
root = "{p}/root"
state = "{p}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{p}/debug.sock"
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{p}/opt"
[{cri}]
  sandbox_image = "{pause}"
  # Sandboxes ask for oom_score_adj -998; without CAP_SYS_RESOURCE only as low as containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{p}/net.d"
  [{cri}.registry]
    config_path = "{p}/certs.d"
  [{cri}.containerd]
    default_runtime_name = "runc"
"#,
            sock = self.sock.display(),
            pause = self.pause_image,
        );
        match self.runtimes {
            Runtimes::SkiffDefault => {
                s += &format!(
                    r#"    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{rt}"
        Root = "{skiff_root}"
"#,
                    skiff_root = self.skiff_root.display()
                )
            }
            Runtimes::SkiffHandler => {
                s += &format!(
                    r#"    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{runc_root}"
    [{cri}.containerd.runtimes.skiff]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.skiff.options]
        BinaryName = "{rt}"
        Root = "{skiff_root}"
"#,
                    skiff_root = self.skiff_root.display(),
                    runc_root = self.runc_root.display()
                )
            }
        }
        s
    }

    fn write_config(&self) {
        std::fs::write(self.path.join("config.toml"), self.config()).unwrap();
        let netd = self.path.join("net.d");
        std::fs::create_dir_all(&netd).unwrap();
        std::fs::create_dir_all(self.path.join("certs.d")).unwrap();
        if let Some(net) = &self.cni {
            // No gateway address on the bridge (the plugin would turn on host-wide forwarding for
            // it) and no masquerading: pods reach each other over the bridge, nothing else.
            let conf = format!(
                r#"{{
  "cniVersion": "0.4.0",
  "name": "{name}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{prefix}.0/24"}}]],
        "dataDir": "{dir}/cni-ipam"
      }}
    }}
  ]
}}
"#,
                name = net.name,
                bridge = net.bridge,
                prefix = net.prefix,
                dir = self.path.display()
            );
            std::fs::write(netd.join("10-skiff-cri.conflist"), conf).unwrap();
        }
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A new CRI client on this node's socket.
    pub fn client(&self) -> cri::Client {
        cri::Client::connect(&self.sock).unwrap_or_else(|e| panic!("connect to CRI: {e}"))
    }

    /// Lets the CRI plugin pull from the plain-HTTP registry at `127.0.0.1:port` (a hosts.toml,
    /// as an operator writes for a private registry).
    pub fn allow_registry(&self, port: u16) {
        let d = self.path.join("certs.d").join(format!("127.0.0.1:{port}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            format!(
                "server = \"http://127.0.0.1:{port}\"\n[host.\"http://127.0.0.1:{port}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
    }

    /// The skiff engine root used to build images (import, save, push).
    pub fn skiff_engine_root(&self) -> PathBuf {
        self.path.join("skiff-engine")
    }

    /// Builds a busybox image `name` whose CMD is `cmd_json` with skiff, and imports it into the
    /// CRI plugin's namespace (`ctr -n k8s.io images import`).
    pub fn import_image(&self, name: &str, cmd_json: &str) {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let rootfs = self.path.join(format!("image-{n}"));
        crate::busybox_rootfs(&rootfs);
        let root = self.skiff_engine_root();
        crate::skiff_ok(
            &root,
            &[
                "import",
                "-c",
                &format!("CMD {cmd_json}"),
                rootfs.to_str().unwrap(),
                name,
            ],
        );
        let tar = self.path.join(format!("image-{n}.tar"));
        crate::skiff_ok(&root, &["save", "-o", tar.to_str().unwrap(), name]);
        let o = self.ctr(&["images", "import", tar.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "ctr images import {name}: {}",
            crate::stderr(&o)
        );
        let _ = std::fs::remove_file(&tar);
        let _ = std::fs::remove_dir_all(&rootfs);
        // The CRI plugin learns of the image from containerd's events: wait until it answers.
        let mut c = self.client();
        let end = Instant::now() + Duration::from_secs(10);
        while c.image_status(name).ok().flatten().is_none() {
            assert!(
                Instant::now() < end,
                "CRI does not see the imported image {name}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `ctr -a <sock> -n k8s.io args`.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// The `cgroup_parent` for a pod named `pod` (cgroupfs syntax, under the node's parent).
    pub fn pod_cgroup_parent(&self, pod: &str) -> String {
        format!("/{}/{pod}", self.cgroup)
    }

    /// A pod config as the kubelet sends it: metadata, log directory, cgroup parent, the pod's
    /// network (CNI) or the host's (`host_network`), containers' PID namespaces their own.
    pub fn pod_config(&self, name: &str, host_network: bool) -> pb::PodSandboxConfig {
        let uid = format!("uid-{name}-{}", std::process::id());
        let logs = self.path.join("pods").join(format!("default_{name}_{uid}"));
        std::fs::create_dir_all(&logs).unwrap();
        let mut labels = HashMap::new();
        labels.insert("app".to_string(), name.to_string());
        pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: if host_network {
                String::new()
            } else {
                format!("{name}-pod")
            },
            log_directory: logs.to_str().unwrap().into(),
            dns_config: None,
            labels,
            annotations: HashMap::new(),
            linux: Some(pb::LinuxPodSandboxConfig {
                cgroup_parent: self.pod_cgroup_parent(name),
                security_context: Some(pb::LinuxSandboxSecurityContext {
                    namespace_options: Some(pb::NamespaceOption {
                        network: if host_network {
                            pb::NS_NODE
                        } else {
                            pb::NS_POD
                        },
                        pid: pb::NS_CONTAINER,
                        ipc: pb::NS_POD,
                        target_id: String::new(),
                    }),
                    seccomp: Some(pb::SecurityProfile {
                        profile_type: pb::PROFILE_RUNTIME_DEFAULT,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                }),
                sysctls: HashMap::new(),
            }),
        }
    }

    /// Processes whose command line names this node's socket (containerd's shims).
    fn shim_pids(&self) -> Vec<i32> {
        let sock = self.sock.to_str().unwrap().as_bytes().to_vec();
        let me = self.child.as_ref().map(|c| c.id() as i32);
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if Some(pid) == me {
                    continue;
                }
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                if cmd.split(|b| *b == 0).any(|a| a == sock.as_slice()) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// The node's cgroup parent directories in every hierarchy that has one.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut v = crate::cgroup_parent_dirs(&self.cgroup);
        // A pure cgroup v2 host has the group right under /sys/fs/cgroup.
        let unified = Path::new("/sys/fs/cgroup").join(&self.cgroup);
        if unified.join("cgroup.procs").exists() {
            v.push(unified);
        }
        v
    }

    /// Mount points under the node's directory, deepest first.
    fn mounts(&self) -> Vec<String> {
        let prefix = format!("{}/", self.path.display());
        let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.len()));
        v
    }

    /// Files the CNI plugins cache outside the node's directory for this network.
    fn cni_cache_files(&self) -> Vec<PathBuf> {
        let Some(net) = &self.cni else {
            return Vec::new();
        };
        let mut v = Vec::new();
        for d in ["/var/lib/cni/results", "/var/lib/cni/networks"] {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name == net.name || name.starts_with(&format!("{}-", net.name)) {
                        v.push(e.path());
                    }
                }
            }
        }
        v
    }

    /// Removes every pod, stops containerd and its shims, and removes what they left: runtime
    /// state, cgroups, mounts, the CNI bridge and cache files, the directory.
    fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        // 1. As the kubelet would: stop and remove every pod (their containers go with them).
        if self.child.is_some() && self.sock.exists() {
            if let Ok(mut c) = cri::Client::connect(&self.sock) {
                c.timeout = Duration::from_secs(20);
                if let Ok(pods) = c.list_pod_sandbox(Default::default()) {
                    for p in pods {
                        let _ = c.stop_pod_sandbox(&p.id);
                        let _ = c.remove_pod_sandbox(&p.id);
                    }
                }
            }
        }
        // 2. containerd, then any shim still running (they outlive it by design).
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.shim_pids() {
            // SAFETY: kill(2) on a shim this node's containerd started (its argv names our socket).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // 3. Containers a failed run left: through the runtime that made them.
        for (root, bin) in [
            (&self.skiff_root, self.skiff_runtime.clone()),
            (&self.runc_root, PathBuf::from("runc")),
        ] {
            let ns = root.join("k8s.io");
            if let Ok(rd) = std::fs::read_dir(&ns) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = Command::new(&bin)
                            .arg("--root")
                            .arg(&ns)
                            .args(["delete", "-f"])
                            .arg(e.file_name())
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            }
        }
        // 4. Any process still in the node's cgroups, then the cgroups, deepest first.
        for _ in 0..50 {
            let mut left = false;
            for d in self.cgroup_dirs() {
                let mut dirs = Vec::new();
                walk_dirs(&d, &mut dirs);
                dirs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
                for sub in dirs {
                    for pid in std::fs::read_to_string(sub.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                    {
                        // SAFETY: kill(2) on a process inside this node's own cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    if std::fs::remove_dir(&sub).is_err() {
                        left = true;
                    }
                }
            }
            if !left {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // 5. Mounts (rootfs overlays, shm, netns bind mounts), deepest first.
        for m in self.mounts() {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 with a valid NUL-terminated path; MNT_DETACH has no other inputs.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        // 6. The CNI bridge and what the plugins cached outside our directory.
        if let Some(net) = &self.cni {
            if Path::new("/sys/class/net").join(&net.bridge).exists() {
                let _ = Command::new("ip")
                    .args(["link", "del", &net.bridge])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for f in self.cni_cache_files() {
            let _ = std::fs::remove_file(&f).or_else(|_| std::fs::remove_dir_all(&f));
        }
        // 7. The directory.
        if let Some(d) = self.dir.take() {
            if self.mounts().is_empty() {
                let _ = d.close();
            } else {
                // Never delete through a mount that would not go: keep the directory.
                let _ = d.keep();
            }
        }
    }

    /// Tears the node down and returns what is left of it (empty when everything is gone).
    pub fn shutdown(mut self) -> Vec<String> {
        self.teardown();
        self.leftovers()
    }

    /// What of this node still exists: processes, mounts, cgroups, network devices, files.
    pub fn leftovers(&self) -> Vec<String> {
        let mut v = Vec::new();
        for pid in self.shim_pids() {
            v.push(format!("process {pid} naming {}", self.sock.display()));
        }
        for m in self.mounts() {
            v.push(format!("mount {m}"));
        }
        for d in self.cgroup_dirs() {
            v.push(format!("cgroup {}", d.display()));
        }
        if let Some(net) = &self.cni {
            if Path::new("/sys/class/net").join(&net.bridge).exists() {
                v.push(format!("bridge {}", net.bridge));
            }
        }
        for f in self.cni_cache_files() {
            v.push(format!("CNI cache {}", f.display()));
        }
        if self.path.exists() {
            v.push(format!("directory {}", self.path.display()));
        }
        v
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// `d` and every directory below it (not following symlinks).
fn walk_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    if !d.is_dir() {
        return;
    }
    out.push(d.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk_dirs(&e.path(), out);
            }
        }
    }
}
