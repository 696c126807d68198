//! The Kubernetes node path: containerd's CRI plugin runs skiff-runtime through its runc shim, and a
//! CRI client in the test does for pods what the kubelet does (critest's basic cases): version,
//! status, pods on the host network and on a CNI bridge, image pull from a local registry,
//! containers with command, env, mounts, resources and a security context, exec, logs, resource
//! updates, stats, stop and remove. Every call is checked against what really happened on the
//! host (processes, namespaces, cgroup files, files), skiff-runtime is shown to be the runtime that
//! ran each container (its state, in its own format, under the root the shim gives it), and
//! nothing the test started is left afterwards.

use serde_json::Value;
use skiff_tests::cri::{self, pb};
use skiff_tests::cri_node::{cni_missing, missing, CriNode, Runtimes};
use skiff_tests::{busybox_rootfs, registry, skiff_ok, skip};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The JSON in a verbose CRI answer's `info["info"]` (pid, runtime options, OCI spec).
fn info(map: &HashMap<String, String>) -> Value {
    serde_json::from_str(map.get("info").expect("verbose info")).expect("info is JSON")
}

/// The host pid of a running container.
fn container_pid(c: &mut cri::Client, id: &str) -> i32 {
    let st = c.container_status(id).unwrap();
    info(&st.info)["pid"]
        .as_i64()
        .expect("pid in the container's info") as i32
}

/// The host pid of a sandbox's pause process.
fn sandbox_pid(c: &mut cri::Client, id: &str) -> i32 {
    let st = c.pod_sandbox_status(id).unwrap();
    info(&st.info)["pid"]
        .as_i64()
        .expect("pid in the sandbox's info") as i32
}

/// The namespace `kind` of `pid` (`net:[4026531840]`).
fn ns(pid: i32, kind: &str) -> String {
    let p = if pid == 0 {
        format!("/proc/self/ns/{kind}")
    } else {
        format!("/proc/{pid}/ns/{kind}")
    };
    std::fs::read_link(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// A field of /proc/pid/status.
fn status_field(pid: i32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// The cgroup v1 directory of `pid` for `controller`, if that controller is mounted.
fn cgroup_dir(pid: i32, controller: &str) -> Option<std::path::PathBuf> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == controller).then(|| {
            Path::new("/sys/fs/cgroup")
                .join(ctrls)
                .join(path.trim_start_matches('/'))
        })
    })
}

/// A cgroup v1 file of `pid`'s `controller` group (`None`, with a printed skip, if the controller
/// is not mounted here).
fn cgroup_value(pid: i32, controller: &str, file: &str) -> Option<String> {
    match cgroup_dir(pid, controller) {
        Some(d) => Some(
            std::fs::read_to_string(d.join(file))
                .unwrap_or_else(|e| panic!("{}/{file}: {e}", d.display()))
                .trim()
                .to_string(),
        ),
        None => {
            skip(&format!(
                "no cgroup v1 {controller} controller: {file} unchecked"
            ));
            None
        }
    }
}

/// Asserts that skiff-runtime holds the state of container `id` under the root the shim gave it,
/// in skiff's own format (runc's state.json has `init_process_pid` instead), with `pid` as init.
fn assert_skiff_ran(node: &CriNode, id: &str, pid: i32) {
    let f = node.skiff_root.join("k8s.io").join(id).join("state.json");
    let s: Value = serde_json::from_slice(
        &std::fs::read(&f).unwrap_or_else(|e| panic!("skiff-runtime state {}: {e}", f.display())),
    )
    .unwrap();
    assert_eq!(s["id"], id, "{s}");
    assert_eq!(s["pid"], pid, "skiff-runtime's init pid for {id}");
    assert!(
        s.get("pid_start").is_some() && s.get("init_process_pid").is_none(),
        "not skiff-runtime's state format: {}",
        f.display()
    );
    let out = std::process::Command::new(skiff_tests::cri_node::skiff_runtime())
        .arg("--root")
        .arg(node.skiff_root.join("k8s.io"))
        .args(["state", id])
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("skiff-runtime state {id}: {}", skiff_tests::stderr(&out)));
    assert_eq!(st["status"], "running", "{st}");
}

/// Polls `f` for up to `secs` seconds; panics naming `what` if it never holds.
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when `pid` has exited (gone, or a zombie not yet reaped).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

fn kv(k: &str, v: &str) -> pb::KeyValue {
    pb::KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

/// A container config as the kubelet sends it: `name` in the pod, its log at `<name>/0.log`.
fn container(name: &str, image: &str, command: &[&str], args: &[&str]) -> pb::ContainerConfig {
    let mut labels = HashMap::new();
    labels.insert("container".to_string(), name.to_string());
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::image_spec(image)),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: args.iter().map(|s| s.to_string()).collect(),
        labels,
        log_path: format!("{name}/0.log"),
        linux: Some(pb::LinuxContainerConfig {
            resources: None,
            security_context: Some(pb::LinuxContainerSecurityContext {
                namespace_options: Some(pb::NamespaceOption {
                    network: pb::NS_POD,
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
        }),
        ..Default::default()
    }
}

fn exec(c: &mut cri::Client, id: &str, cmd: &[&str]) -> (i32, String, String) {
    let r = c
        .exec_sync(id, cmd, 10)
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"));
    (
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

/// Bit `n` of a /proc/pid/status capability mask.
fn has_cap(mask: &str, n: u32) -> bool {
    u64::from_str_radix(mask, 16).unwrap() & (1 << n) != 0
}

/// True when a line is a CRI log record `<RFC 3339 time> <stream> <F|P> <text>`.
fn cri_log_line(line: &str, stream: &str, text: &str) -> bool {
    let mut f = line.splitn(4, ' ');
    let (Some(t), Some(s), Some(tag), Some(msg)) = (f.next(), f.next(), f.next(), f.next()) else {
        return false;
    };
    let time_ok = t.len() >= 20
        && t.as_bytes()[4] == b'-'
        && t.as_bytes()[10] == b'T'
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"-:T.Z+".contains(&b));
    time_ok && s == stream && tag == "F" && msg == text
}

/// One containerd, skiff-runtime its default runtime (the `runc` handler's BinaryName), pods on
/// a CNI bridge: the whole kubelet sequence for two pods, checked on the host at every step.
#[test]
fn cri_pods_run_by_skiff_runtime_as_the_default_runtime() {
    if let Some(why) = missing(Runtimes::SkiffDefault).or_else(cni_missing) {
        skip(&why);
        return;
    }
    let node = CriNode::start(Runtimes::SkiffDefault, true);
    let net = node.cni.clone().unwrap();
    let mut c = node.client();

    // Version and Status: the runtime is containerd speaking CRI v1, ready, with our network.
    let v = c.version().unwrap();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");
    let st = c.status().unwrap();
    let conds = st.status.clone().unwrap().conditions;
    for want in ["RuntimeReady", "NetworkReady"] {
        assert!(
            conds.iter().any(|k| k.r#type == want && k.status),
            "{want} not true: {conds:?}"
        );
    }
    let rt = skiff_tests::cri_node::skiff_runtime();
    assert!(
        st.info["config"].contains(rt.to_str().unwrap()),
        "the CRI config does not name skiff-runtime: {}",
        st.info["config"]
    );
    assert!(st.info["cniconfig"].contains(&net.name), "{:?}", st.info);

    // PullImage from the test's registry (what skiff pushed there, same digest).
    let reg = registry();
    node.allow_registry(reg.port);
    let image = format!("127.0.0.1:{}/skiff-cri/busybox:1", reg.port);
    let eroot = node.skiff_engine_root();
    let rootfs = node.path.join("app-rootfs");
    busybox_rootfs(&rootfs);
    skiff_ok(
        &eroot,
        &[
            "import",
            "-c",
            "CMD [\"sh\"]",
            rootfs.to_str().unwrap(),
            &image,
        ],
    );
    let pushed = skiff_ok(&eroot, &["push", &image]);
    let digest = pushed
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    assert!(c.image_status(&image).unwrap().is_none());
    let web_cfg = node.pod_config("web", false);
    let image_ref = c
        .pull_image(&image, Some(&web_cfg))
        .unwrap_or_else(|e| panic!("PullImage {image}: {e}\n{}", node.log_tail()));
    let img = c.image_status(&image).unwrap().expect("pulled image");
    assert_eq!(img.id, image_ref);
    assert!(img.repo_tags.contains(&image), "{img:?}");
    assert!(
        img.repo_digests.iter().any(|d| d.ends_with(&digest)),
        "{img:?} vs pushed {digest}"
    );

    // RunPodSandbox on the pod network: a pause process in a netns of its own with an address
    // from our subnet, attached to our bridge, run by skiff-runtime in the pod's cgroup.
    let bridge_ports = || {
        std::fs::read_dir(format!("/sys/class/net/{}/brif", net.bridge))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let web = c
        .run_pod_sandbox(&web_cfg, "")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.log_tail()));
    let ws = c.pod_sandbox_status(&web).unwrap().status.unwrap();
    assert_eq!(ws.state, pb::SANDBOX_READY);
    assert_eq!(ws.metadata.as_ref().unwrap().name, "web");
    let web_ip = ws.network.unwrap().ip;
    assert!(
        web_ip.starts_with(&format!("{}.", net.prefix)),
        "pod ip {web_ip} not in {}.0/24",
        net.prefix
    );
    let pause = sandbox_pid(&mut c, &web);
    let cmdline = std::fs::read(format!("/proc/{pause}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("sleep"));
    assert_ne!(ns(pause, "net"), ns(0, "net"), "pod network is the host's");
    assert_skiff_ran(&node, &web, pause);
    assert_eq!(bridge_ports(), 1, "the pod's veth is not on {}", net.bridge);
    if let Some(d) = cgroup_dir(pause, "memory") {
        let want = format!("/sys/fs/cgroup/memory/{}/web/", node.cgroup);
        assert!(d.to_str().unwrap().starts_with(&want), "{}", d.display());
    }

    // CreateContainer "server": non-root, read-only rootfs, env, a read-only and a writable
    // mount, resources, all capabilities dropped but one, seccomp RuntimeDefault.
    let www = node.path.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from pod web\n").unwrap();
    let data = node.path.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let mut server = container(
        "server",
        &image,
        &["/bin/sh", "-c"],
        &["echo started $GREETING; echo to-stderr >&2; id -u > /data/uid; httpd -f -p 8080 -h /www & trap 'exit 143' TERM; wait"],
    );
    server.envs = vec![kv("GREETING", "hello-cri")];
    server.mounts = vec![
        pb::Mount {
            container_path: "/www".into(),
            host_path: www.to_str().unwrap().into(),
            readonly: true,
            ..Default::default()
        },
        pb::Mount {
            container_path: "/data".into(),
            host_path: data.to_str().unwrap().into(),
            ..Default::default()
        },
    ];
    {
        let l = server.linux.as_mut().unwrap();
        l.resources = Some(pb::LinuxContainerResources {
            cpu_period: 100000,
            cpu_quota: 50000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        });
        let sc = l.security_context.as_mut().unwrap();
        sc.run_as_user = Some(pb::Int64Value { value: 65534 });
        sc.readonly_rootfs = true;
        sc.capabilities = Some(pb::Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
        });
    }
    let srv = c
        .create_container(&web, &server, &web_cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", node.log_tail()));
    let s = c.container_status(&srv).unwrap().status.unwrap();
    assert_eq!(s.state, pb::CONTAINER_CREATED);
    c.start_container(&srv)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", node.log_tail()));

    // A second container in the pod: root, NET_ADMIN added and NET_RAW dropped.
    let mut side = container("sidecar", &image, &["/bin/sleep", "3600"], &[]);
    side.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .capabilities = Some(pb::Capability {
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["NET_RAW".into()],
    });
    let sc = c.create_container(&web, &side, &web_cfg).unwrap();
    c.start_container(&sc).unwrap();

    // ContainerStatus against the host: running, its process, user, capabilities, seccomp,
    // cgroup limits, namespaces shared with the pause process, skiff-runtime's state.
    let s = c.container_status(&srv).unwrap().status.unwrap();
    assert_eq!(s.state, pb::CONTAINER_RUNNING);
    assert!(s.started_at >= s.created_at && s.started_at > 0, "{s:?}");
    let log = Path::new(&web_cfg.log_directory).join("server/0.log");
    assert_eq!(Path::new(&s.log_path), log);
    assert_eq!(s.labels["container"], "server");
    assert!(
        s.image_ref == image_ref || s.image_ref.ends_with(&format!("@{digest}")),
        "container image {} is neither {image_ref} nor @{digest}",
        s.image_ref
    );
    let spid = container_pid(&mut c, &srv);
    let sidepid = container_pid(&mut c, &sc);
    assert_skiff_ran(&node, &srv, spid);
    assert_skiff_ran(&node, &sc, sidepid);
    assert_eq!(
        status_field(spid, "Uid").split_whitespace().next(),
        Some("65534")
    );
    assert_eq!(status_field(spid, "CapBnd"), format!("{:016x}", 1u64 << 10));
    assert_eq!(status_field(spid, "Seccomp"), "2");
    let side_bnd = status_field(sidepid, "CapBnd");
    assert!(
        has_cap(&side_bnd, 12) && !has_cap(&side_bnd, 13),
        "{side_bnd}"
    );
    assert_eq!(status_field(sidepid, "CapEff"), side_bnd);
    assert_eq!(status_field(sidepid, "Seccomp"), "2");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns(spid, kind), ns(pause, kind), "{kind} not the pod's");
        assert_eq!(ns(sidepid, kind), ns(pause, kind), "{kind} not the pod's");
    }
    assert_ne!(
        ns(spid, "pid"),
        ns(sidepid, "pid"),
        "pid namespaces are per container"
    );
    if let Some(v) = cgroup_value(spid, "memory", "memory.limit_in_bytes") {
        assert_eq!(v, (64u64 << 20).to_string());
    }
    if let Some(v) = cgroup_value(spid, "cpu", "cpu.shares") {
        assert_eq!(v, "512");
    }
    if let Some(v) = cgroup_value(spid, "cpu", "cpu.cfs_quota_us") {
        assert_eq!(v, "50000");
    }
    wait_for("server writes /data/uid", 10, || data.join("uid").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("uid")).unwrap().trim(),
        "65534"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(data.join("uid")).unwrap().uid(), 65534);

    // ExecSync: identity, env, the pod's hostname; read-only rootfs and mount; exit codes.
    let (code, out, _) = exec(
        &mut c,
        &srv,
        &["sh", "-c", "id -u; echo $GREETING; hostname"],
    );
    assert_eq!((code, out.as_str()), (0, "65534\nhello-cri\nweb-pod\n"));
    let (code, _, err) = exec(&mut c, &srv, &["touch", "/etc/x"]);
    assert!(
        code != 0 && err.contains("Read-only file system"),
        "{code} {err}"
    );
    let (code, _, err) = exec(&mut c, &srv, &["touch", "/www/x"]);
    assert!(
        code != 0 && err.contains("Read-only file system"),
        "{code} {err}"
    );
    assert!(!www.join("x").exists());
    let (code, _, _) = exec(&mut c, &srv, &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);

    // The pod's containers share the network (localhost) and IPC (/dev/shm) namespaces.
    // (`timeout`, not `wget -T`: Debian's busybox-static wget crashes on -T.)
    let mut fetched;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = exec(
            &mut c,
            &sc,
            &[
                "timeout",
                "5",
                "wget",
                "-q",
                "-O",
                "-",
                "http://127.0.0.1:8080/",
            ],
        );
        fetched = out;
        if code == 0 {
            break;
        }
        if Instant::now() > end {
            let (_, ps, _) = exec(&mut c, &srv, &["netstat", "-ltn"]);
            panic!("sidecar cannot reach server on localhost:8080: {err}\nserver: {ps}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetched, "hello from pod web\n");
    let (code, _, err) = exec(
        &mut c,
        &srv,
        &["sh", "-c", "echo shm-token > /dev/shm/token"],
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = exec(&mut c, &sc, &["cat", "/dev/shm/token"]);
    assert_eq!(out, "shm-token\n");

    // The container's log file, in the CRI log format, both streams.
    wait_for("the server's log file has both lines", 10, || {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        s.lines()
            .any(|l| cri_log_line(l, "stdout", "started hello-cri"))
            && s.lines().any(|l| cri_log_line(l, "stderr", "to-stderr"))
    });

    // ListPodSandbox / ListContainers, with filters.
    let pods = c.list_pod_sandbox(Default::default()).unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(
        (pods[0].id.as_str(), pods[0].state),
        (web.as_str(), pb::SANDBOX_READY)
    );
    let in_web = c
        .list_containers(pb::ContainerFilter {
            pod_sandbox_id: web.clone(),
            ..Default::default()
        })
        .unwrap();
    let mut ids: Vec<&str> = in_web.iter().map(|k| k.id.as_str()).collect();
    ids.sort();
    let mut want = vec![srv.as_str(), sc.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(in_web.iter().all(|k| k.state == pb::CONTAINER_RUNNING));
    let mut sel = HashMap::new();
    sel.insert("container".to_string(), "sidecar".to_string());
    let only = c
        .list_containers(pb::ContainerFilter {
            label_selector: sel,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, sc);

    // UpdateContainerResources: skiff-runtime's update changes the cgroup files.
    c.update_container_resources(
        &srv,
        pb::LinuxContainerResources {
            cpu_period: 100000,
            cpu_quota: 25000,
            cpu_shares: 256,
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", node.log_tail()));
    if let Some(v) = cgroup_value(spid, "memory", "memory.limit_in_bytes") {
        assert_eq!(v, (96u64 << 20).to_string());
    }
    if let Some(v) = cgroup_value(spid, "cpu", "cpu.shares") {
        assert_eq!(v, "256");
    }
    if let Some(v) = cgroup_value(spid, "cpu", "cpu.cfs_quota_us") {
        assert_eq!(v, "25000");
    }

    // ContainerStats from the container's cgroup.
    let stats = c.container_stats(&srv).unwrap();
    assert_eq!(stats.attributes.as_ref().unwrap().id, srv);
    let cpu = stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
    assert!(cpu > 0, "cpu usage {cpu}");
    let mem = stats.memory.unwrap().working_set_bytes.unwrap().value;
    assert!(mem > 0 && mem < 96 << 20, "working set {mem}");
    if let Some(v) = cgroup_value(spid, "cpuacct", "cpuacct.usage") {
        assert!(v.parse::<u64>().unwrap() >= cpu, "{v} < {cpu}");
    }
    assert!(stats.writable_layer.is_some());

    // A second pod on the network: its own namespaces; it reaches the first pod's server by the
    // pod IP over the bridge, but its localhost is its own.
    let other_cfg = node.pod_config("other", false);
    let other = c.run_pod_sandbox(&other_cfg, "").unwrap();
    let other_ip = c
        .pod_sandbox_status(&other)
        .unwrap()
        .status
        .unwrap()
        .network
        .unwrap()
        .ip;
    assert!(other_ip.starts_with(&format!("{}.", net.prefix)) && other_ip != web_ip);
    assert_eq!(bridge_ports(), 2);
    let oc = c
        .create_container(
            &other,
            &container("client", &image, &["/bin/sleep", "3600"], &[]),
            &other_cfg,
        )
        .unwrap();
    c.start_container(&oc).unwrap();
    let opid = container_pid(&mut c, &oc);
    assert_skiff_ran(&node, &oc, opid);
    for kind in ["net", "ipc", "uts"] {
        assert_ne!(ns(opid, kind), ns(spid, kind), "{kind} shared across pods");
    }
    let (code, out, _) = exec(
        &mut c,
        &oc,
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/",
        ],
    );
    assert_ne!(code, 0, "another pod's localhost reached the server: {out}");
    let (code, _, _) = exec(&mut c, &oc, &["cat", "/dev/shm/token"]);
    assert_ne!(code, 0, "another pod sees the first pod's /dev/shm");
    let (code, out, err) = exec(
        &mut c,
        &oc,
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{web_ip}:8080/"),
        ],
    );
    assert_eq!((code, out.as_str()), (0, "hello from pod web\n"), "{err}");

    // StopContainer: SIGTERM, the trap's exit code; the process, skiff's state and the task go.
    c.stop_container(&srv, 10).unwrap();
    let s = c.container_status(&srv).unwrap().status.unwrap();
    assert_eq!(s.state, pb::CONTAINER_EXITED);
    assert_eq!(s.exit_code, 143);
    assert!(s.finished_at >= s.started_at, "{s:?}");
    assert!(gone(spid), "the server's process is still running");
    let sdir = node.skiff_root.join("k8s.io").join(&srv);
    wait_for("skiff-runtime deletes the stopped container", 10, || {
        !sdir.exists()
    });
    let mem_dir = cgroup_dir(sidepid, "memory").map(|d| d.parent().unwrap().join(&srv));
    // RemoveContainer.
    c.remove_container(&srv).unwrap();
    let left = c
        .list_containers(pb::ContainerFilter {
            pod_sandbox_id: web.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, sc);
    assert!(c.container_status(&srv).is_err());
    if let Some(d) = mem_dir {
        assert!(!d.exists(), "{} left", d.display());
    }

    // StopPodSandbox: every process of the pod dies, its netns and veth and address go.
    let ipam = node.path.join("cni-ipam").join(&net.name).join(&web_ip);
    assert!(ipam.exists(), "{} missing", ipam.display());
    c.stop_pod_sandbox(&web).unwrap();
    let ws = c.pod_sandbox_status(&web).unwrap().status.unwrap();
    assert_eq!(ws.state, pb::SANDBOX_NOTREADY);
    wait_for("the pod's processes exit", 10, || {
        gone(pause) && gone(sidepid)
    });
    assert_eq!(
        bridge_ports(),
        1,
        "the stopped pod's veth is still on the bridge"
    );
    assert!(
        !ipam.exists(),
        "the stopped pod's address is still allocated"
    );
    let ready = c
        .list_pod_sandbox(pb::PodSandboxFilter {
            state: Some(pb::PodSandboxStateValue {
                state: pb::SANDBOX_READY,
            }),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].id, other);
    let side_state = c.container_status(&sc).unwrap().status.unwrap();
    assert_eq!(side_state.state, pb::CONTAINER_EXITED);
    // RemovePodSandbox: the pod and its containers are gone from CRI and from skiff-runtime.
    c.remove_pod_sandbox(&web).unwrap();
    let pods = c.list_pod_sandbox(Default::default()).unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].id, other);
    assert!(c.container_status(&sc).is_err());
    for id in [&web, &sc] {
        assert!(!node.skiff_root.join("k8s.io").join(id).exists(), "{id}");
    }

    // The second pod is left running: teardown must take it down like everything else.
    drop(c);
    let left = node.shutdown();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// One containerd, runc its default runtime and skiff-runtime the extra `skiff` handler: a pod
/// asks for it by handler (a RuntimeClass), host-network pods under each, each container's state
/// where its own runtime keeps it, in that runtime's format; an unknown handler is refused.
#[test]
fn cri_runtime_class_skiff_beside_runc() {
    if let Some(why) = missing(Runtimes::SkiffHandler) {
        skip(&why);
        return;
    }
    let node = CriNode::start(Runtimes::SkiffHandler, false);
    let mut c = node.client();
    let st = c.status().unwrap();
    let cfg: Value = serde_json::from_str(&st.info["config"]).unwrap();
    let runtimes = &cfg["containerd"]["runtimes"];
    assert_eq!(
        runtimes["skiff"]["options"]["BinaryName"],
        skiff_tests::cri_node::skiff_runtime().to_str().unwrap(),
        "{runtimes}"
    );
    assert_eq!(runtimes["skiff"]["runtimeType"], "io.containerd.runc.v2");
    let image = node.pause_image.clone();
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();

    let mut pods = Vec::new();
    for (name, handler) in [("hs", "skiff"), ("hr", "runc")] {
        let cfg = node.pod_config(name, true);
        let pod = c
            .run_pod_sandbox(&cfg, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox {handler}: {e}\n{}", node.log_tail()));
        let ps = c.pod_sandbox_status(&pod).unwrap().status.unwrap();
        assert_eq!(ps.runtime_handler, handler);
        let ctr = c
            .create_container(
                &pod,
                &container("main", &image, &["/bin/sleep", "3600"], &[]),
                &cfg,
            )
            .unwrap();
        c.start_container(&ctr).unwrap();
        let pid = container_pid(&mut c, &ctr);
        // Host network: the host's network namespace and hostname.
        assert_eq!(ns(pid, "net"), ns(0, "net"));
        let (code, out, _) = exec(&mut c, &ctr, &["hostname"]);
        assert_eq!((code, out.as_str()), (0, host_hostname.as_str()));
        let (_, out, _) = exec(&mut c, &ctr, &["cat", "/proc/net/dev"]);
        assert!(out.contains("lo:"), "{out}");
        pods.push((pod, ctr, pid, handler));
    }
    let listed = c.list_pod_sandbox(Default::default()).unwrap();
    let mut handlers: Vec<&str> = listed.iter().map(|p| p.runtime_handler.as_str()).collect();
    handlers.sort();
    assert_eq!(handlers, ["runc", "skiff"]);

    // Each runtime holds its own containers: skiff-runtime's state format under the skiff
    // handler's root, runc's under runc's, and neither has the other's.
    for (pod, ctr, pid, handler) in &pods {
        let pause = sandbox_pid(&mut c, pod);
        let in_skiff = node.skiff_root.join("k8s.io").join(ctr);
        let in_runc = node.runc_root.join("k8s.io").join(ctr);
        if *handler == "skiff" {
            assert_skiff_ran(&node, pod, pause);
            assert_skiff_ran(&node, ctr, *pid);
            assert!(!in_runc.exists());
        } else {
            assert!(
                !in_skiff.exists(),
                "runc's container in skiff-runtime's root"
            );
            let s: Value =
                serde_json::from_slice(&std::fs::read(in_runc.join("state.json")).unwrap())
                    .unwrap();
            assert_eq!(s["init_process_pid"], *pid, "runc's state format");
        }
    }

    // A handler the config does not have is refused, and nothing is left of the attempt.
    let e = c
        .run_pod_sandbox(&node.pod_config("nope", true), "nope")
        .unwrap_err();
    assert!(e.message.contains("nope"), "{e}");
    assert_eq!(c.list_pod_sandbox(Default::default()).unwrap().len(), 2);

    for (pod, ctr, pid, _) in &pods {
        c.stop_container(ctr, 0).unwrap();
        c.remove_container(ctr).unwrap();
        c.stop_pod_sandbox(pod).unwrap();
        c.remove_pod_sandbox(pod).unwrap();
        assert!(gone(*pid), "{pid} still running after StopContainer");
    }
    assert!(c.list_pod_sandbox(Default::default()).unwrap().is_empty());
    let skiff_ns = node.skiff_root.join("k8s.io");
    let states: Vec<_> = std::fs::read_dir(&skiff_ns)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .map(|e| e.file_name())
        .collect();
    assert!(states.is_empty(), "skiff-runtime state left: {states:?}");
    drop(c);
    let left = node.shutdown();
    assert!(left.is_empty(), "left behind: {left:#?}");
}
