//! `skiff compose` end to end (issue 18): real projects written by the tests, run over the
//! engine in real namespaces on a bridge network of the test's own (its /24 from 10.200.0.0/16
//! and its nft table), traffic only to 127.0.0.1 and the test's containers. Every test tears
//! down what it made in Drop guards, failed or not.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::{stderr, stdout, unique, EngineEnv};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Third octets of the 10.200.0.0/16 routes the host has now (other tests' bridges).
fn used_octets() -> Vec<u32> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let dst = u32::from_str_radix(l.split_whitespace().nth(1)?, 16).ok()?;
            ((dst & 0xffff) == 0xc80a).then_some((dst >> 16) & 0xff)
        })
        .collect()
}

/// An engine root whose default bridge and nft table are the test's own, a project directory,
/// and a free /24 for the project's network.
struct ComposeEnv {
    env: EngineEnv,
    bridge: String,
    table: String,
    /// The project's network, `10.200.N.0/24`.
    subnet: String,
    /// A second network's, `10.200.M.0/24`.
    subnet2: String,
    /// The project directory.
    dir: PathBuf,
    /// `-p`.
    project: String,
}

impl ComposeEnv {
    fn new(name: &str) -> ComposeEnv {
        skiff_tests::require_root();
        if Command::new("nft").arg("--version").output().is_err() {
            panic!("nft is missing: install the nftables package (scripts/deps.sh)");
        }
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let used = used_octets();
        let mut octet = (pid % 50) * 5 + n % 5 + 1;
        while used.contains(&octet) {
            octet = octet % 250 + 1;
        }
        let mut o2 = (octet + 120) % 250 + 1;
        while used.contains(&o2) || o2 == octet {
            o2 = o2 % 250 + 1;
        }
        let mut o3 = (o2 + 60) % 250 + 1;
        while used.contains(&o3) || o3 == octet || o3 == o2 {
            o3 = o3 % 250 + 1;
        }
        let bridge = format!("skc{}{n}", pid % 10000);
        let table = format!("skc{pid}_{n}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-compose-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("daemon.json"),
            format!(
                "{{\"bridge\": \"{bridge}\", \"bip\": \"10.200.{octet}.1/24\", \"nft-table\": \"{table}\", \"ip-forward\": false}}"
            ),
        )
        .unwrap();
        let env = EngineEnv {
            dir,
            cgroup: unique(&format!("skiff-test-compose-{name}")),
        };
        let rootfs = env.dir.path().join("rootfs");
        skiff_tests::busybox_rootfs(&rootfs);
        env.ok(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            rootfs.to_str().unwrap(),
            "busybox:latest",
        ]);
        let pdir = env.dir.path().join("proj");
        std::fs::create_dir_all(&pdir).unwrap();
        ComposeEnv {
            project: format!("c{pid}x{n}"),
            env,
            bridge,
            table,
            subnet: format!("10.200.{o2}.0/24"),
            subnet2: format!("10.200.{o3}.0/24"),
            dir: pdir,
        }
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    /// `skiff compose -p PROJECT ARGS` in the project directory.
    fn compose(&self, args: &[&str]) -> Output {
        let mut full = vec!["compose", "-p", &self.project];
        full.extend_from_slice(args);
        self.env.cmd(&full).current_dir(&self.dir).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.compose(args);
        assert!(
            o.status.success(),
            "compose {args:?} failed ({}): {}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// The project's containers as `name id`, sorted.
    fn containers(&self) -> Vec<(String, String)> {
        let out = self.env.ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.ID}}",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
        ]);
        let mut v: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    fn nft(&self) -> String {
        let o = Command::new("nft")
            .args(["list", "table", "ip", &self.table])
            .output()
            .unwrap();
        stdout(&o)
    }

    /// `x-base`: what every service of the tests' projects has (the test's cgroup parent).
    fn base(&self) -> String {
        format!(
            "x-base: &base\n  image: busybox\n  cgroup_parent: {}\n",
            self.env.cgroup
        )
    }
}

impl Drop for ComposeEnv {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "0", "--remove-orphans"]);
        if let Ok(o) = self.env.cmd(&["ps", "-aq"]).output() {
            for id in stdout(&o).split_whitespace() {
                let _ = self.env.cmd(&["rm", "-f", "-v", id]).output();
            }
        }
        if let Ok(o) = self
            .env
            .cmd(&["network", "ls", "--format", "{{.Name}}"])
            .output()
        {
            for n in stdout(&o).split_whitespace().filter(|n| *n != "bridge") {
                let _ = self.env.cmd(&["network", "rm", n]).output();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .output();
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// GET `path` from 127.0.0.1:port, retried while the server starts.
fn http_get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match r {
            Ok(s) if s.contains("200") => return s,
            r if Instant::now() > deadline => panic!("127.0.0.1:{port}{path}: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The web + db + worker project: web waits for db to be healthy, fetches db's page by the
/// service name and serves it on a published port; the worker runs 3 replicas that resolve
/// each other; `up` again changes nothing; one environment change recreates exactly that
/// service; `down -v` leaves nothing behind.
#[test]
fn web_db_worker_project() {
    let env = ComposeEnv::new("wdw");
    let port = skiff_tests::free_port();
    env.write(".env", "WORKER_MODE=one\n");
    env.write(
        "compose.yaml",
        &format!(
            r#"{base}
services:
  db:
    <<: *base
    command: ["sh", "-c", "mkdir -p /www && echo from-db > /www/index.html && sleep 1 && exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/index.html"]
      interval: 1s
      retries: 20
  web:
    <<: *base
    depends_on:
      db:
        condition: service_healthy
    command: sh -c 'mkdir -p /w && wget -q -O /w/index.html http://db/index.html && exec httpd -f -p 80 -h /w'
    ports:
      - "127.0.0.1:{port}:80"
  worker:
    <<: *base
    depends_on: [db]
    environment:
      MODE: ${{WORKER_MODE}}
    command: sleep 1000
    volumes:
      - data:/data
    deploy:
      replicas: 3
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
volumes:
  data: {{}}
"#,
            base = env.base(),
            subnet = env.subnet,
        ),
    );
    let o = env.compose(&["up", "-d"]);
    assert!(o.status.success(), "up: {}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    // db was healthy before web started.
    let healthy = err.find(&format!("{}-db-1  Healthy", env.project));
    let web_started = err.find(&format!("{}-web-1  Started", env.project));
    assert!(
        healthy.is_some() && web_started.is_some() && healthy < web_started,
        "{err}"
    );
    // web reached db by its service name; its port is published on 127.0.0.1.
    let body = http_get(port, "/index.html");
    assert!(body.contains("from-db"), "{body}");
    // Replicas: 3 workers, each resolvable by its container name and by the service name.
    let names: Vec<String> = env.containers().into_iter().map(|c| c.0).collect();
    let p = &env.project;
    assert_eq!(
        names,
        vec![
            format!("{p}-db-1"),
            format!("{p}-web-1"),
            format!("{p}-worker-1"),
            format!("{p}-worker-2"),
            format!("{p}-worker-3"),
        ]
    );
    let o = env.ok(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        &format!("ping -c1 -W5 {p}-worker-3 && ping -c1 -W5 worker && ping -c1 -W5 db"),
    ]);
    assert_eq!(o.matches("1 packets received").count(), 3, "{o}");
    let ps = env.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert_eq!(env.ok(&["ps", "-q"]).lines().count(), 5);
    assert_eq!(env.ok(&["ps", "--services"]), "db\nweb\nworker\n");
    assert_eq!(
        env.ok(&["port", "web", "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let insp: Value =
        serde_json::from_str(&env.env.ok(&["inspect", &format!("{p}-worker-2")])).unwrap();
    let labels = &insp[0]["Config"]["Labels"];
    assert_eq!(labels["com.docker.compose.project"], p.as_str());
    assert_eq!(labels["com.docker.compose.service"], "worker");
    assert_eq!(labels["com.docker.compose.container-number"], "2");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(
        labels["com.docker.compose.depends_on"],
        "db:service_started:false"
    );
    assert_eq!(
        labels["com.docker.compose.config-hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // `up` again: nothing recreated.
    let before = env.containers();
    let o = env.compose(&["up", "-d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Recreate"), "{}", stderr(&o));
    assert_eq!(env.containers(), before);
    // One environment change recreates exactly the worker's containers.
    env.write(".env", "WORKER_MODE=two\n");
    env.ok(&["up", "-d"]);
    let after = env.containers();
    for ((n0, id0), (n1, id1)) in before.iter().zip(&after) {
        assert_eq!(n0, n1);
        if n0.contains("-worker-") {
            assert_ne!(id0, id1, "{n0} was not recreated");
        } else {
            assert_eq!(id0, id1, "{n0} was recreated");
        }
    }
    let o = env.ok(&[
        "exec",
        "-T",
        "--index",
        "2",
        "worker",
        "sh",
        "-c",
        "echo $MODE",
    ]);
    assert_eq!(o.trim(), "two");
    // Scale down to 1.
    env.ok(&["up", "-d", "--scale", "worker=1"]);
    assert_eq!(env.containers().len(), 3);

    // down -v: no container, network, volume, nft element or bridge left.
    let net_id = env
        .env
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Id}}",
            &format!("{p}_default"),
        ])
        .trim()
        .to_string();
    assert!(env.nft().contains(&port.to_string()), "{}", env.nft());
    env.ok(&["down", "-v", "-t", "1"]);
    assert!(env.containers().is_empty());
    let nets = env.env.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&format!("{p}_default")), "{nets}");
    let vols = env.env.ok(&["volume", "ls", "-q"]);
    assert!(!vols.contains(&format!("{p}_data")), "{vols}");
    assert!(!env.nft().contains(&port.to_string()), "{}", env.nft());
    assert!(!Path::new("/sys/class/net")
        .join(format!("br-{}", &net_id[..12]))
        .exists());
}

/// `--abort-on-container-exit`: the first exit stops the others, its code is up's code;
/// attached mode prefixes each line with the container's name.
#[test]
fn abort_on_container_exit() {
    let env = ComposeEnv::new("abort");
    env.write(
        "compose.yaml",
        &format!(
            r#"{base}
services:
  quick:
    <<: *base
    network_mode: none
    command: sh -c 'sleep 1; echo bye; exit 3'
  slow:
    <<: *base
    network_mode: none
    init: true
    command: sleep 1000
"#,
            base = env.base()
        ),
    );
    let o = env.compose(&["up", "--abort-on-container-exit", "-t", "2"]);
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    let p = &env.project;
    let out = stdout(&o);
    assert!(out.contains(&format!("{p}-quick-1  | bye")), "{out}");
    assert!(
        out.contains(&format!("{p}-quick-1 exited with code 3")),
        "{out}"
    );
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    for l in ps.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["State"], "exited", "{l}");
    }
    // --exit-code-from picks the service whose code counts.
    let o = env.compose(&["up", "--exit-code-from", "slow", "-t", "2"]);
    assert_eq!(code(&o), 143, "{}{}", stdout(&o), stderr(&o));
}

/// A changed service is recreated with every service that depends on it, directly or through
/// another (compose v2's convergence); unrelated services and the dependencies stay.
#[test]
fn changed_service_recreates_its_dependents() {
    let env = ComposeEnv::new("deps");
    let write = |db: &str, web: &str| {
        env.write(
            "compose.yaml",
            &format!(
                r#"{base}
x-svc: &svc
  <<: *base
  network_mode: none
  init: true
  command: sleep 1000
services:
  db:
    <<: *svc
    environment: {{V: "{db}"}}
  web:
    <<: *svc
    environment: {{V: "{web}"}}
    depends_on: [db]
  worker:
    <<: *svc
    depends_on:
      web:
        condition: service_started
  alone:
    <<: *svc
"#,
                base = env.base()
            ),
        )
    };
    write("1", "1");
    env.ok(&["up", "-d"]);
    let ids = |env: &ComposeEnv| -> std::collections::BTreeMap<String, String> {
        let p = format!("{}-", env.project);
        env.containers()
            .into_iter()
            .map(|(n, id)| (n.trim_start_matches(&p).to_string(), id))
            .collect()
    };
    let changed = |a: &std::collections::BTreeMap<String, String>,
                   b: &std::collections::BTreeMap<String, String>| {
        assert_eq!(a.len(), 4, "{a:?}");
        a.iter()
            .filter(|(n, id)| b.get(*n) != Some(*id))
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let v0 = ids(&env);
    // db changed: db, web (depends on db) and worker (depends on web) are recreated.
    write("2", "1");
    let o = env.ok(&["up", "-d"]);
    let v1 = ids(&env);
    assert_eq!(changed(&v0, &v1), ["db-1", "web-1", "worker-1"], "{o}");
    // web changed: web and worker; db stays.
    write("2", "2");
    env.ok(&["up", "-d"]);
    let v2 = ids(&env);
    assert_eq!(changed(&v1, &v2), ["web-1", "worker-1"]);
    // Nothing changed: nothing recreated; all running.
    env.ok(&["up", "-d"]);
    assert_eq!(changed(&v2, &ids(&env)), Vec::<String>::new());
    let running = env.ok(&["ps", "--status", "running", "-q"]);
    assert_eq!(running.lines().count(), 4, "{running}");
}

/// `skiff compose ARGS` in `dir` (no engine needed: `config`).
fn config(dir: &Path, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut c = Command::new(skiff_tests::bin("skiff"));
    c.arg("compose").args(args).current_dir(dir);
    c.env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_FILE");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn config_json(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut a = args.to_vec();
    a.extend(["config", "--format", "json"]);
    let o = config(dir, &a, envs, None);
    assert!(o.status.success(), "{a:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Interpolation, `.env`, `--env-file`, several `-f` files merged, anchors, `extends`,
/// `include`, profiles and project names, checked against `config`'s output.
#[test]
fn config_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("My_Project.1");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let w = |f: &str, t: &str| std::fs::write(dir.join(f), t).unwrap();
    w(".env", "TAG=1.36\nEMPTY=\nPORT=8080\n");
    w("alt.env", "TAG=alt\n");
    w("web.env", "FROM_FILE=yes\nOVERRIDDEN=file\n");
    w(
        "compose.yaml",
        r#"x-env: &env
  COMMON: "1"
services:
  web:
    image: "busybox:${TAG}"
    env_file: web.env
    environment:
      <<: *env
      OVERRIDDEN: env
      DEF: ${UNSET:-fallback}
      DEF2: ${EMPTY-kept-empty}
      ALT: ${TAG:+tagged}
      DOLLAR: $$HOME
    ports: ["${PORT}:80"]
    volumes: ["./data:/data:ro", "cache:/cache"]
    cap_add: [NET_ADMIN]
    command: echo one
  base:
    image: busybox
    user: "1000"
    labels: {from: base}
  child:
    extends: base
    labels: {mine: "yes"}
  debug:
    image: busybox
    profiles: [debug]
volumes:
  cache: {}
include:
  - sub/compose.yaml
"#,
    );
    w(
        "override.yaml",
        r#"services:
  web:
    command: ["echo", "two"]
    environment:
      DEF: overridden
    ports: ["9090:90"]
    volumes: ["./other:/data"]
    cap_add: [SYS_TIME]
"#,
    );
    w(
        "sub/compose.yaml",
        "services:\n  extra:\n    image: busybox\n    working_dir: /x\n",
    );
    let v = config_json(&dir, &[], &[]);
    assert_eq!(v["name"], "my_project1");
    let web = &v["services"]["web"];
    assert_eq!(web["image"], "busybox:1.36");
    assert_eq!(web["environment"]["COMMON"], "1");
    assert_eq!(web["environment"]["FROM_FILE"], "yes");
    assert_eq!(web["environment"]["OVERRIDDEN"], "env");
    assert_eq!(web["environment"]["DEF"], "fallback");
    assert_eq!(web["environment"]["DEF2"], "");
    assert_eq!(web["environment"]["ALT"], "tagged");
    assert_eq!(web["environment"]["DOLLAR"], "$HOME");
    assert_eq!(web["ports"][0]["published"], "8080");
    assert_eq!(web["command"], serde_json::json!(["echo", "one"]));
    assert_eq!(
        web["volumes"][0]["source"],
        dir.join("data").to_str().unwrap()
    );
    assert_eq!(web["volumes"][0]["read_only"], true);
    assert_eq!(v["services"]["child"]["user"], "1000");
    assert_eq!(v["services"]["child"]["labels"]["from"], "base");
    assert_eq!(v["services"]["child"]["labels"]["mine"], "yes");
    assert_eq!(v["services"]["extra"]["working_dir"], "/x");
    assert!(v["services"].get("debug").is_none());
    assert_eq!(v["volumes"]["cache"]["name"], "my_project1_cache");
    assert_eq!(v["networks"]["default"]["name"], "my_project1_default");

    // Merge: -f a -f b.
    let v = config_json(&dir, &["-f", "compose.yaml", "-f", "override.yaml"], &[]);
    let web = &v["services"]["web"];
    assert_eq!(web["command"], serde_json::json!(["echo", "two"]));
    assert_eq!(web["environment"]["DEF"], "overridden");
    assert_eq!(web["environment"]["COMMON"], "1");
    assert_eq!(web["ports"].as_array().unwrap().len(), 2);
    assert_eq!(web["volumes"].as_array().unwrap().len(), 2);
    assert_eq!(
        web["volumes"][1]["source"],
        dir.join("other").to_str().unwrap()
    );
    assert_eq!(web["cap_add"], serde_json::json!(["NET_ADMIN", "SYS_TIME"]));

    // --env-file, the process environment over .env, project names.
    let v = config_json(&dir, &["--env-file", "alt.env"], &[]);
    assert_eq!(v["services"]["web"]["image"], "busybox:alt");
    let v = config_json(
        &dir,
        &[],
        &[("TAG", "env"), ("COMPOSE_PROJECT_NAME", "fromenv")],
    );
    assert_eq!(v["services"]["web"]["image"], "busybox:env");
    assert_eq!(v["name"], "fromenv");
    let v = config_json(
        &dir,
        &["-p", "flag"],
        &[("COMPOSE_PROJECT_NAME", "fromenv")],
    );
    assert_eq!(v["name"], "flag");
    let o = config(&dir, &["-p", "Bad Name", "config"], &[], None);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid project name"),
        "{}",
        stderr(&o)
    );

    // Profiles.
    let services = |args: &[&str], envs: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["config", "--services"]);
        stdout(&config(&dir, &a, envs, None))
    };
    assert!(!services(&[], &[]).contains("debug"));
    assert!(services(&["--profile", "debug"], &[]).contains("debug"));
    assert!(services(&[], &[("COMPOSE_PROFILES", "debug")]).contains("debug"));
    let o = config(&dir, &["config", "--volumes"], &[], None);
    assert_eq!(stdout(&o), "cache\n");

    // -f - and its name: key.
    let o = config(
        &dir,
        &["-f", "-", "config", "--format", "json"],
        &[],
        Some("name: piped\nservices:\n  s:\n    image: busybox\n"),
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "piped");

    // Errors name the file, the line and the key.
    w(
        "bad.yaml",
        "services:\n  web:\n    image: busybox\n    environment:\n      A: ${NEEDED:?give NEEDED}\n",
    );
    let o = config(&dir, &["-f", "bad.yaml", "config"], &[], None);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains("bad.yaml:5: services.web.environment.A: required variable NEEDED is missing a value: give NEEDED"),
        "{e}"
    );
    w(
        "bad2.yaml",
        "services:\n  web:\n    image: busybox\n    portz: [80]\n",
    );
    let e = stderr(&config(&dir, &["-f", "bad2.yaml", "config"], &[], None));
    assert!(e.contains("bad2.yaml:4: services.web.portz"), "{e}");
    w("bad3.yaml", "services:\n  web:\n    image: [busybox\n");
    let e = stderr(&config(&dir, &["-f", "bad3.yaml", "config"], &[], None));
    assert!(e.contains("bad3.yaml:"), "{e}");
    w(
        "bad4.yaml",
        "services:\n  web:\n    image: busybox\n    depends_on: [nope]\n",
    );
    let e = stderr(&config(&dir, &["-f", "bad4.yaml", "config"], &[], None));
    assert!(e.contains("undefined service \"nope\""), "{e}");
}

/// A `build:` service: `up` builds its image when it is missing (context, dockerfile, args,
/// target, labels, additional_contexts) and tags it `<project>-<service>`; `up` again keeps it;
/// `up --build` rebuilds and recreates; `compose build` builds; `--no-build` refuses a missing
/// image; `down --rmi local` removes it.
#[test]
fn build_service() {
    let env = ComposeEnv::new("build");
    std::fs::create_dir_all(env.dir.join("app")).unwrap();
    std::fs::create_dir_all(env.dir.join("extra")).unwrap();
    env.write("extra/hello.txt", "from the extra context\n");
    env.write(
        "app/Dockerfile.dev",
        "FROM busybox AS base\nARG MSG\nRUN echo \"$MSG\" > /msg\nCOPY --from=extra hello.txt /hello.txt\nFROM base AS final\nRUN echo final > /stage\nFROM base AS other\nRUN echo other > /stage\n",
    );
    let project = |msg: &str| {
        format!(
            r#"services:
  app:
    cgroup_parent: {cg}
    network_mode: none
    command: sleep 1000
    build:
      context: ./app
      dockerfile: Dockerfile.dev
      target: final
      args:
        MSG: {msg}
      labels:
        built.by: compose
      additional_contexts:
        extra: ../extra
"#,
            cg = env.env.cgroup
        )
    };
    env.write("compose.yaml", &project("one"));
    let p = env.project.clone();
    let image = format!("{p}-app");
    let o = env.compose(&["--progress", "plain", "up", "-d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(" Service app  Built"), "{}", stderr(&o));
    let exec = |cmd: &str| env.ok(&["exec", "-T", "app", "sh", "-c", cmd]);
    assert_eq!(
        exec("cat /msg /stage /hello.txt"),
        "one\nfinal\nfrom the extra context\n"
    );
    assert_eq!(
        env.env
            .ok(&[
                "image",
                "inspect",
                "-f",
                "{{index .Config.Labels \"built.by\"}}",
                &image
            ])
            .trim(),
        "compose"
    );
    let first = env.containers();
    // The image exists: a changed arg alone does not rebuild.
    env.write("compose.yaml", &project("two"));
    let o = env.compose(&["up", "-d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Building"), "{}", stderr(&o));
    // The config changed (args are in the hash), so the container was recreated, same image.
    assert_eq!(exec("cat /msg"), "one\n");
    // --build rebuilds and the new image recreates the container.
    env.ok(&["up", "-d", "--build"]);
    assert_eq!(exec("cat /msg"), "two\n");
    assert_ne!(env.containers(), first);
    // compose build, with --build-arg over the file's.
    env.ok(&["build", "--build-arg", "MSG=three", "app"]);
    env.ok(&["up", "-d", "--force-recreate"]);
    assert_eq!(exec("cat /msg"), "three\n");
    // down --rmi local removes the built image; --no-build then refuses to go on without it.
    env.ok(&["down", "-t", "0", "--rmi", "local"]);
    assert!(!env.env.sk(&["image", "inspect", &image]).status.success());
    let o = env.compose(&["up", "-d", "--no-build"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--no-build"), "{}", stderr(&o));
    assert!(env.containers().is_empty());
}

/// `skiff inspect -f FORMAT NAME`.
fn inspect(env: &ComposeEnv, format: &str, name: &str) -> String {
    env.env
        .ok(&["inspect", "-f", format, name])
        .trim()
        .to_string()
}

/// Secrets and configs (file, environment and content sources; short and long syntax with
/// target, uid, gid and mode) mounted read-only where compose v2 puts them; aliases that apply
/// on their own network only; an exec-form (`CMD`) healthcheck and a list entrypoint kept as
/// lists in the container's config.
#[test]
fn secrets_configs_aliases_exec_forms() {
    let env = ComposeEnv::new("sec");
    env.write("db_pass.txt", "s3cret-file\n");
    env.write("app.conf", "setting=1\n");
    env.write(".env", "API_TOKEN=tok-from-env\n");
    env.write(
        "compose.yaml",
        &format!(
            r#"{base}
services:
  app:
    <<: *base
    entrypoint: ["sh", "-c"]
    command: ["touch '/tmp/ready file' && exec sleep 1000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready file"]
      interval: 1s
      retries: 30
    secrets:
      - db_pass
      - source: token
        target: api_token
        uid: "1000"
        gid: "1001"
        mode: 0440
    configs:
      - app_conf
      - source: inline
        target: /etc/inline.conf
    networks:
      front:
        aliases: [front-name]
      back:
        aliases: [back-name]
  fclient:
    <<: *base
    command: sleep 1000
    networks: [front]
  bclient:
    <<: *base
    command: sleep 1000
    networks: [back]
secrets:
  db_pass:
    file: ./db_pass.txt
  token:
    environment: API_TOKEN
configs:
  app_conf:
    file: ./app.conf
  inline:
    content: "inline ${{API_TOKEN}}"
networks:
  front:
    ipam:
      config:
        - subnet: {subnet}
  back:
    ipam:
      config:
        - subnet: {subnet2}
"#,
            base = env.base(),
            subnet = env.subnet,
            subnet2 = env.subnet2,
        ),
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60"]);
    let p = &env.project;
    let app = format!("{p}-app-1");
    let exec = |svc: &str, cmd: &str| env.ok(&["exec", "-T", svc, "sh", "-c", cmd]);
    // Secrets at /run/secrets/<name or target>, configs at /<name> or their target.
    assert_eq!(exec("app", "cat /run/secrets/db_pass"), "s3cret-file\n");
    assert_eq!(exec("app", "cat /run/secrets/api_token"), "tok-from-env");
    assert_eq!(exec("app", "cat /app_conf"), "setting=1\n");
    assert_eq!(exec("app", "cat /etc/inline.conf"), "inline tok-from-env");
    assert_eq!(
        exec("app", "stat -c '%u %g %a' /run/secrets/api_token").trim(),
        "1000 1001 440"
    );
    assert_eq!(
        exec("app", "stat -c '%a' /etc/inline.conf").trim(),
        "444",
        "content is written 0444 unless a mode is given"
    );
    // Read-only, every one of them.
    for f in [
        "/run/secrets/db_pass",
        "/run/secrets/api_token",
        "/app_conf",
        "/etc/inline.conf",
    ] {
        let o = env.compose(&["exec", "-T", "app", "sh", "-c", &format!("echo x > {f}")]);
        assert_ne!(code(&o), 0, "{f} is writable");
    }
    // Aliases: each on its own network only.
    let fhosts = exec("fclient", "cat /etc/hosts");
    let bhosts = exec("bclient", "cat /etc/hosts");
    let words = |h: &str| -> Vec<String> { h.split_whitespace().map(String::from).collect() };
    assert!(
        words(&fhosts).contains(&"front-name".to_string()),
        "{fhosts}"
    );
    assert!(
        !words(&fhosts).contains(&"back-name".to_string()),
        "{fhosts}"
    );
    assert!(
        words(&bhosts).contains(&"back-name".to_string()),
        "{bhosts}"
    );
    assert!(
        !words(&bhosts).contains(&"front-name".to_string()),
        "{bhosts}"
    );
    assert!(words(&fhosts).contains(&"app".to_string()), "{fhosts}");
    assert!(words(&bhosts).contains(&"app".to_string()), "{bhosts}");
    exec("fclient", "ping -c1 -W2 front-name >/dev/null");
    // Exec forms kept as compose gives them.
    assert_eq!(
        inspect(&env, "{{json .Config.Healthcheck.Test}}", &app),
        r#"["CMD","test","-f","/tmp/ready file"]"#
    );
    assert_eq!(
        inspect(&env, "{{json .Config.Entrypoint}}", &app),
        r#"["sh","-c"]"#
    );
    assert_eq!(
        inspect(&env, "{{json .Config.Cmd}}", &app),
        r#"["touch '/tmp/ready file' && exec sleep 1000"]"#
    );
    assert_eq!(inspect(&env, "{{.State.Health.Status}}", &app), "healthy");
    // down drops what compose wrote for the secrets.
    env.ok(&["down", "-t", "0"]);
    assert!(!env.env.dir.path().join("root/compose").join(p).exists());
}

/// `events` (the project's container events, compose v2's `--json` objects), `cp` both ways,
/// `logs --since/--until`, `wait`'s exit code, `push` to a registry, `down --rmi`, and the
/// progress view in its three modes.
#[test]
fn events_cp_logs_wait_push_rmi_progress() {
    let env = ComposeEnv::new("evt");
    let reg = skiff_tests::registry();
    let pushed = format!("127.0.0.1:{}/cmp/busy:1", reg.port);
    env.env.ok(&["tag", "busybox", &pushed]);
    env.env.ok(&["tag", "busybox", "mine:1"]);
    env.write(
        "compose.yaml",
        &format!(
            r#"{base}
services:
  talk:
    <<: *base
    image: {pushed}
    command: ["sh", "-c", "echo first; sleep 1.5; echo second; exec sleep 1000"]
  done:
    <<: *base
    image: mine:1
    command: ["sh", "-c", "sleep 1; exit 7"]
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
"#,
            base = env.base(),
            subnet = env.subnet,
        ),
    );
    let p = env.project.clone();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    // Progress: tty lines updated in place, plain lines, nothing.
    let o = env.compose(&["--progress", "tty", "up", "-d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let raw = stderr(&o);
    assert!(raw.contains("\x1b[2K") && raw.contains("\x1b["), "{raw}");
    let err = strip_ansi(&raw);
    assert!(err.contains("[+] Running"), "{err}");
    assert!(err.contains(&format!("✔ Container {p}-talk-1")), "{err}");
    assert!(err.contains(&format!("✔ Network {p}_default")), "{err}");
    // wait: the first container of `done` to stop gives its exit code.
    let o = env.compose(&["wait", "done"]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    // events: the project's create/start as compose v2's json, its labels left out.
    // A bound just past now: the stored events, then a second of following.
    let until = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1
    );
    let o = env.compose(&[
        "events",
        "--json",
        "--since",
        &t0.to_string(),
        "--until",
        &until,
    ]);
    let evs: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let talk_id = inspect(&env, "{{.Id}}", &format!("{p}-talk-1"));
    for action in ["create", "start"] {
        assert!(
            evs.iter().any(|e| e["action"] == action
                && e["service"] == "talk"
                && e["id"] == talk_id.as_str()
                && e["type"] == "container"
                && e["attributes"]["name"] == format!("{p}-talk-1").as_str()
                && e["attributes"].get("com.docker.compose.project").is_none()),
            "{action}: {evs:?}"
        );
    }
    assert!(evs
        .iter()
        .any(|e| e["action"] == "die" && e["service"] == "done"));
    let o = env.compose(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &until,
        "done",
    ]);
    let text = stdout(&o);
    assert!(text.lines().all(|l| l.contains(" container ")), "{text}");
    assert!(text.contains(&format!("name={p}-done-1")), "{text}");
    assert!(!text.contains(&format!("{p}-talk-1")), "{text}");
    // cp into the service and back out.
    std::fs::write(env.dir.join("in.txt"), "copied in\n").unwrap();
    env.ok(&["cp", "in.txt", "talk:/tmp/in.txt"]);
    assert_eq!(
        env.ok(&["exec", "-T", "talk", "cat", "/tmp/in.txt"]),
        "copied in\n"
    );
    env.ok(&["cp", "talk:/tmp/in.txt", "out.txt"]);
    assert_eq!(
        std::fs::read_to_string(env.dir.join("out.txt")).unwrap(),
        "copied in\n"
    );
    // logs --since / --until around the two lines' own timestamps.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stamped = loop {
        let s = env.ok(&["logs", "-t", "--no-log-prefix", "talk"]);
        if s.contains("second") {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stamp = |word: &str| -> String {
        stamped
            .lines()
            .find(|l| l.ends_with(word))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    let (first, second) = (stamp("first"), stamp("second"));
    assert_eq!(
        env.ok(&["logs", "--no-log-prefix", "--since", &second, "talk"]),
        "second\n"
    );
    assert_eq!(
        env.ok(&["logs", "--no-log-prefix", "--until", &first, "talk"]),
        "first\n"
    );
    // push: the services' images to their registry.
    env.ok(&["push", "talk"]);
    let tags = http_get(reg.port, "/v2/cmp/busy/tags/list");
    assert!(tags.contains("\"1\""), "{tags}");
    // Plain progress, then quiet.
    let o = env.compose(&["--progress", "plain", "stop", "-t", "0", "talk"]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(" Container {p}-talk-1  Stopped")),
        "{err}"
    );
    assert!(!err.contains('✔'), "{err}");
    let o = env.compose(&["--progress", "quiet", "start", "talk"]);
    assert!(o.status.success());
    assert!(!stderr(&o).contains("Container"), "{}", stderr(&o));
    // down --rmi local keeps images that have an image: name; --rmi all removes them.
    env.ok(&["down", "-t", "0", "--rmi", "local"]);
    env.env.ok(&["image", "inspect", "mine:1"]);
    env.ok(&["up", "-d", "--no-recreate", "done"]);
    env.ok(&["down", "-t", "0", "--rmi", "all"]);
    assert!(!env.env.sk(&["image", "inspect", "mine:1"]).status.success());
    assert!(!env.env.sk(&["image", "inspect", &pushed]).status.success());
    env.env.ok(&["image", "inspect", "busybox"]);
}

/// `s` without its ANSI escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
