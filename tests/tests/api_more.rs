//! `skiff serve`, second part: `docker update` and `docker commit`, `docker push` with
//! `X-Registry-Auth` to a local registry, history, search and distribution, the plain
//! (non-Upgrade) hijack of attach and exec with a half-closed stdin (a raw socket client), fields
//! gated by API version, TCP with TLS client certificates (docker CLI `--tlsverify`, certs made
//! by the `openssl` CLI) and systemd socket activation (`-H fd://`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::{bin, stderr, stdout, EngineEnv};

/// How the docker CLI reaches a server.
#[derive(Clone)]
enum Endpoint {
    Unix(PathBuf),
    /// `tcp://127.0.0.1:PORT` with extra docker CLI flags (`--tlsverify` …).
    Tcp(u16, Vec<String>),
}

/// A `skiff serve` of a test; stopped (SIGTERM, then SIGKILL) and its containers removed on drop.
struct Server {
    child: Child,
    ep: Endpoint,
    docker_config: tempfile::TempDir,
    env: EngineEnv,
    log: PathBuf,
}

impl Server {
    /// A server on a unix socket in the env's dir.
    fn unix(name: &str) -> Server {
        let env = EngineEnv::new(name, |_| {});
        let sock = env.dir.path().join("docker.sock");
        let args = vec!["-H".to_string(), format!("unix://{}", sock.display())];
        Server::start(env, &[], &args, Endpoint::Unix(sock))
    }

    fn start(env: EngineEnv, prefix: &[PathBuf], args: &[String], ep: Endpoint) -> Server {
        let log = env.dir.path().join("serve.log");
        let child = skiff_tests::spawn_serve(&env, prefix, args, &log);
        let docker_config = tempfile::Builder::new()
            .prefix("skiff-api-docker-config-")
            .tempdir()
            .unwrap();
        let mut s = Server {
            child,
            ep,
            docker_config,
            env,
            log,
        };
        let ep = s.ep.clone();
        skiff_tests::wait_serve(&mut s.child, &s.log, || match &ep {
            Endpoint::Unix(p) => UnixStream::connect(p).is_ok(),
            Endpoint::Tcp(port, _) => std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok(),
        });
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sock(&self) -> &Path {
        match &self.ep {
            Endpoint::Unix(p) => p,
            Endpoint::Tcp(..) => panic!("not a unix server"),
        }
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let (host, global) = match &self.ep {
            Endpoint::Unix(p) => (Some(format!("unix://{}", p.display())), Vec::new()),
            Endpoint::Tcp(port, flags) => {
                let mut g = flags.clone();
                g.push("-H".into());
                g.push(format!("tcp://127.0.0.1:{port}"));
                (None, g)
            }
        };
        let config = self.docker_config.path();
        skiff_tests::docker_cli(config, &self.env.cgroup, host.as_deref(), &global, args)
    }

    fn docker(&self, args: &[&str]) -> Output {
        skiff_tests::docker_run(self.docker_cmd(args))
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        skiff_tests::docker_checked(self.docker(args), args, &self.log)
    }

    /// One raw HTTP/1.1 request with extra header lines; returns (status, head, body).
    fn http_with(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        skiff_tests::split_response(&out)
    }

    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        self.http_with(method, path, "", body)
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (st, _, body) = self.http("GET", path, b"");
        assert_eq!(st, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(o) = self.env.cmd(&["ps", "-aq"]).output() {
            for id in stdout(&o).split_whitespace() {
                let _ = self.env.cmd(&["rm", "-f", "-v", id]).output();
            }
        }
        skiff_tests::stop_serve(&mut self.child);
    }
}

/// Waits for a serve that must refuse to start; returns its exit status and log.
fn refused(
    env: &EngineEnv,
    prefix: &[PathBuf],
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Option<i32>, String) {
    let log = env.dir.path().join("refused.log");
    let mut c = Command::new(if prefix.is_empty() {
        bin("skiff")
    } else {
        prefix[0].clone()
    });
    c.arg("--root").arg(env.root()).arg("serve").args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            skiff_tests::stop_serve(&mut child);
            panic!("skiff serve {args:?} did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (st.code(), std::fs::read_to_string(&log).unwrap_or_default())
}

/// The stdout and stderr of a docker stdcopy stream.
fn demux(mut b: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while b.len() >= 8 {
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let end = (8 + n).min(b.len());
        match b[0] {
            2 => err.extend_from_slice(&b[8..end]),
            _ => out.extend_from_slice(&b[8..end]),
        }
        b = &b[end..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// A cgroup v1 (or v2) file of the container as the container sees it, if readable.
fn cgroup_value(s: &Server, c: &str, v1: &str, v2: &str) -> Option<String> {
    let o = s.docker(&[
        "exec",
        c,
        "sh",
        "-c",
        &format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"),
    ]);
    o.status.success().then(|| stdout(&o).trim().to_string())
}

#[test]
fn docker_update_and_commit() {
    let s = Server::unix("apimore-update");
    s.docker_ok(&["run", "-d", "--name", "upd", "busybox", "sleep", "300"]);
    let out = s.docker_ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:3",
        "upd",
    ]);
    assert_eq!(out.trim(), "upd");
    let f = s.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        "upd",
    ]);
    assert_eq!(f.trim(), "67108864 500000000 50 on-failure:3");
    // Live: the running container's cgroup has the new limits.
    match cgroup_value(&s, "upd", "pids/pids.max", "pids.max") {
        Some(v) => assert_eq!(v, "50"),
        None => skiff_tests::skip("the container cannot read its pids cgroup"),
    }
    match cgroup_value(&s, "upd", "memory/memory.limit_in_bytes", "memory.max") {
        Some(v) => assert_eq!(v, "67108864"),
        None => skiff_tests::skip("the container cannot read its memory cgroup"),
    }
    // The CLI sees the same record.
    let f = s
        .env
        .ok(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", "upd"]);
    assert_eq!(f.trim(), "50");
    // docker's errors: a 400 naming the problem, nothing changed.
    let o = s.docker(&["update", "--memory", "1k", "upd"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Minimum memory limit"),
        "{}",
        stderr(&o)
    );
    let o = s.docker(&["update", "--cpus", "1", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("no such container"),
        "{}",
        stderr(&o)
    );
    let (st, _, body) = s.http("POST", "/v1.45/containers/upd/update", br#"{"Memroy": 1}"#);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Memroy"));

    // commit: the container's change and a --change, tagged, runnable.
    s.docker_ok(&["exec", "upd", "sh", "-c", "echo committed > /c.txt"]);
    let id = s.docker_ok(&[
        "commit",
        "-c",
        "ENV FOO=bar",
        "-m",
        "via the api",
        "-a",
        "tester",
        "upd",
        "example/committed:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let out = s.docker_ok(&[
        "run",
        "--rm",
        "example/committed:1",
        "sh",
        "-c",
        "cat /c.txt; echo $FOO",
    ]);
    assert_eq!(out, "committed\nbar\n");
    let a = s.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Author}}",
        "example/committed:1",
    ]);
    assert_eq!(a.trim(), "tester");
    // The container runs on after the (paused) commit.
    let st = s.docker_ok(&["inspect", "-f", "{{.State.Status}}", "upd"]);
    assert_eq!(st.trim(), "running");
    // history through the API: the commit's comment on top, the image id, its tag.
    let h = s.docker_ok(&[
        "history",
        "--format",
        "{{.Comment}}|{{.ID}}",
        "example/committed:1",
    ]);
    let first = h.lines().next().unwrap_or("");
    assert!(first.starts_with("via the api|"), "{h}");
    assert_eq!(
        &first["via the api|".len()..],
        &id.trim()["sha256:".len()..][..12]
    );
    let v = s.json("/images/example/committed:1/history");
    assert_eq!(v[0]["Tags"], serde_json::json!(["example/committed:1"]));
    assert_eq!(v[0]["Comment"], "via the api");
    assert_eq!(v[1]["Id"], "<missing>");
    // A commit body (a container Config) applies too.
    let (st, _, body) = s.http(
        "POST",
        "/commit?container=upd&repo=example/cfg&tag=2&pause=0",
        br#"{"Cmd":["echo","from config"],"Labels":{"k":"v w"}}"#,
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let out = s.docker_ok(&["run", "--rm", "example/cfg:2"]);
    assert_eq!(out, "from config\n");
    let l = s.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"k\"}}",
        "example/cfg:2",
    ]);
    assert_eq!(l.trim(), "v w");
    let (st, _, _) = s.http("POST", "/commit?container=nosuch", b"");
    assert_eq!(st, 404);
}

#[test]
fn push_with_registry_auth_history_search_distribution() {
    let reg = skiff_tests::registry_with(|dir| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "htpasswd -Bbn alice s3cret > {}/htpasswd",
                dir.display()
            ))
            .status()
            .unwrap();
        assert!(ok.success(), "htpasswd (apache2-utils) is needed");
        (
            String::new(),
            format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}/htpasswd\n",
                dir.display()
            ),
        )
    });
    let s = Server::unix("apimore-push");
    let host = format!("127.0.0.1:{}", reg.port);
    let name = format!("{host}/lib/bb:1");
    s.docker_ok(&["tag", "busybox", &name]);
    // No credentials: the registry's refusal comes back in the stream.
    let o = s.docker(&["push", &name]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let e = stderr(&o) + &stdout(&o);
    assert!(e.contains("auth") || e.contains("401"), "{e}");
    // After `docker login` the CLI sends X-Registry-Auth, and the push goes through.
    let o = s
        .docker_cmd(&["login", &host, "-u", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"s3cret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = s.docker_ok(&["push", &name]);
    assert!(
        out.contains(&format!("The push refers to repository [{host}/lib/bb]")),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {out}"))
        .to_string();
    // A second push finds every layer there.
    let out = s.docker_ok(&["push", &name]);
    assert!(out.contains("Layer already exists"), "{out}");
    // The registry has it: pulled back (with the same credentials) after removing it.
    s.docker_ok(&["rmi", &name]);
    let out = s.docker_ok(&["pull", &name]);
    assert!(out.contains(&digest), "{out}");
    // /distribution/{name}/json: the registry's descriptor, with the request's credentials.
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE
            .encode(br#"{"username":"alice","password":"s3cret"}"#)
    };
    let (st, _, body) = s.http_with(
        "GET",
        &format!("/v1.45/distribution/{name}/json"),
        &format!("X-Registry-Auth: {auth}\r\n"),
        b"",
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], digest.as_str());
    assert_eq!(v["Platforms"][0]["os"], "linux");
    let (st, _, _) = s.http(
        "GET",
        &format!("/distribution/{host}/lib/nosuch:1/json"),
        b"",
    );
    assert!(st == 401 || st == 404, "{st}");
    // Missing image: 404 before any stream.
    let (st, _, body) = s.http("POST", "/images/example/nosuch/push?tag=1", b"");
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
    // history: the docker CLI over the API prints what skiff's CLI prints.
    let fmt = "{{.ID}}|{{.CreatedBy}}|{{.Comment}}";
    assert_eq!(
        s.docker_ok(&["history", "--no-trunc", "--format", fmt, "busybox"]),
        s.env
            .ok(&["history", "--no-trunc", "--format", fmt, "busybox"])
    );
    // search: a clear error with a proper status, never a hang or a 500.
    let (st, _, body) = s.http("GET", "/images/search?term=busybox", b"");
    let msg = String::from_utf8_lossy(&body).into_owned();
    assert!(st == 503 || st == 501, "{st} {msg}");
    assert!(
        msg.contains("search") && msg.contains("\"message\""),
        "{msg}"
    );
    let o = s.docker(&["search", "busybox"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("search"), "{}", stderr(&o));
    let (st, _, _) = s.http("GET", "/images/search", b"");
    assert_eq!(st, 400);
}

/// Sends a plain (no `Upgrade`) hijack request; returns the stream after checking the 200 head.
fn plain_hijack(sock: &Path, path: &str, body: &[u8]) -> (UnixStream, String) {
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    // The head, byte by byte (what follows it is the raw stream).
    let mut h = Vec::new();
    let mut b = [0u8; 1];
    while !h.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut b).unwrap(),
            1,
            "eof in head: {:?}",
            String::from_utf8_lossy(&h)
        );
        h.push(b[0]);
    }
    let head = String::from_utf8_lossy(&h).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    (c, head)
}

/// Everything until the server closes (a timeout fails, showing what came).
fn read_all(c: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) => panic!("{e}; read so far: {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

#[test]
fn plain_hijack_attach_and_exec_with_half_close() {
    let s = Server::unix("apimore-hijack");
    // An old client's `run -i`: create (StdinOnce), attach with a plain hijack, start.
    let create = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["sh", "-c", "cat; echo done"],
        "OpenStdin": true,
        "StdinOnce": true,
        "AttachStdin": true,
        "AttachStdout": true,
        "AttachStderr": true,
        "HostConfig": {"CgroupParent": s.env.cgroup},
    });
    let (st, _, body) = s.http(
        "POST",
        "/v1.24/containers/create?name=cat",
        create.to_string().as_bytes(),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let (mut c, head) = plain_hijack(
        s.sock(),
        "/v1.24/containers/cat/attach?stream=1&stdin=1&stdout=1&stderr=1",
        b"",
    );
    assert!(head.contains("application/vnd.docker.raw-stream"), "{head}");
    let (st, _, body) = s.http("POST", "/v1.24/containers/cat/start", b"");
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&body));
    c.write_all(b"hello over a plain hijack\n").unwrap();
    // Half-close: the container's stdin ends, its output goes on.
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let out = read_all(&mut c);
    let (o, _) = demux(&out);
    assert_eq!(o, "hello over a plain hijack\ndone\n");
    let code = s.docker_ok(&["wait", "cat"]);
    assert_eq!(code.trim(), "0");

    // exec start, the same way.
    s.docker_ok(&["run", "-d", "--name", "execbox", "busybox", "sleep", "300"]);
    let (st, _, body) = s.http(
        "POST",
        "/v1.24/containers/execbox/exec",
        br#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Cmd":["sh","-c","cat; echo end; echo oops >&2; exit 3"]}"#,
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut c, _) = plain_hijack(
        s.sock(),
        &format!("/v1.24/exec/{id}/start"),
        br#"{"Detach":false,"Tty":false}"#,
    );
    c.write_all(b"abc\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let out = read_all(&mut c);
    assert_eq!(demux(&out), ("abc\nend\n".into(), "oops\n".into()));
    let t = Instant::now();
    loop {
        let v = s.json(&format!("/exec/{id}/json"));
        if v["Running"] == false {
            assert_eq!(v["ExitCode"], 3, "{v}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A plain hijack of something missing is an ordinary error response.
    let mut c = UnixStream::connect(s.sock()).unwrap();
    c.write_all(b"POST /containers/nosuch/attach?stream=1 HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.read_to_end(&mut out);
    let (st, _, body) = skiff_tests::split_response(&out);
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&body).contains("nosuch"));
    // The server still serves ordinary requests on new connections.
    assert_eq!(s.http("GET", "/_ping", b"").0, 200);
}

#[test]
fn fields_gated_by_api_version() {
    let s = Server::unix("apimore-versions");
    let old = s.json("/v1.24/info");
    assert_eq!(old["ExecutionDriver"], "<not supported>");
    assert!(
        old["SecurityOptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| !o.as_str().unwrap().contains('=')),
        "{}",
        old["SecurityOptions"]
    );
    let mid = s.json("/v1.45/info");
    assert!(mid.get("ExecutionDriver").is_none());
    assert_eq!(mid["BridgeNfIptables"], false);
    assert!(mid.get("FirewallBackend").is_none());
    assert_eq!(mid["RuncCommit"]["Expected"], mid["RuncCommit"]["ID"]);
    assert!(mid["SecurityOptions"][0]
        .as_str()
        .unwrap()
        .starts_with("name="));
    let new = s.json("/v1.50/info");
    assert!(new.get("BridgeNfIptables").is_none());
    assert_eq!(new["FirewallBackend"]["Driver"], "nftables");
    assert!(new["RuncCommit"].get("Expected").is_none());
    // The docker CLI negotiates 1.50 and shows the firewall backend.
    let fw = s.docker_ok(&["info", "--format", "{{.FirewallBackend.Driver}}"]);
    assert_eq!(fw.trim(), "nftables");
    // Images: VirtualSize until 1.43, Container/ContainerConfig until 1.44.
    let l = s.json("/v1.24/images/json");
    assert_eq!(l[0]["VirtualSize"], l[0]["Size"]);
    let l = s.json("/v1.45/images/json");
    assert!(l[0].get("VirtualSize").is_none(), "{}", l[0]);
    let i = s.json("/v1.44/images/busybox/json");
    assert!(i.get("Container").is_some() && i.get("ContainerConfig").is_some());
    let i = s.json("/v1.45/images/busybox/json");
    assert!(
        i.get("Container").is_none() && i.get("VirtualSize").is_none(),
        "{i}"
    );
    // Unversioned is the newest.
    assert_eq!(s.json("/info")["FirewallBackend"]["Driver"], "nftables");
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI is needed");
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate (docker's TLS recipe).
fn make_certs(dir: &Path) {
    openssl(dir, &["genrsa", "-out", "ca-key.pem", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-key",
            "ca-key.pem",
            "-sha256",
            "-subj",
            "/CN=skiff test CA",
            "-out",
            "ca.pem",
        ],
    );
    openssl(dir, &["genrsa", "-out", "server-key.pem", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-subj",
            "/CN=127.0.0.1",
            "-sha256",
            "-new",
            "-key",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-sha256",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server-cert.pem",
            "-extfile",
            "server.ext",
        ],
    );
    openssl(dir, &["genrsa", "-out", "key.pem", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-subj",
            "/CN=client",
            "-new",
            "-key",
            "key.pem",
            "-out",
            "client.csr",
        ],
    );
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-sha256",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-extfile",
            "client.ext",
        ],
    );
    // A client certificate from a CA the server does not trust.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rogue",
            "-keyout",
            "rogue-key.pem",
            "-out",
            "rogue.pem",
        ],
    );
}

#[test]
fn tcp_needs_tls_client_certificates_or_an_explicit_ack() {
    let env = EngineEnv::new("apimore-tcp", |_| {});
    let port = skiff_tests::free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    // Plain TCP without a word: refused, naming the flags.
    let (code, log) = refused(&env, &[], &["-H", &tcp], &[]);
    assert_ne!(code, Some(0));
    assert!(
        log.contains("--tlsverify") && log.contains("--tls=false"),
        "{log}"
    );
    // Not on a non-loopback address without client certificates, even acknowledged.
    let (code, log) = refused(
        &env,
        &[],
        &["-H", &format!("tcp://0.0.0.0:{port}"), "--tls=false"],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(log.contains("loopback"), "{log}");
    // --tlsverify without the CA: refused.
    let (code, log) = refused(&env, &[], &["-H", &tcp, "--tlsverify"], &[]);
    assert_ne!(code, Some(0));
    assert!(
        log.contains("--tlscert") || log.contains("--tlscacert"),
        "{log}"
    );

    // Acknowledged plain loopback TCP: served, with a loud warning.
    {
        let s = Server::start(
            EngineEnv::new("apimore-tcp-plain", |_| {}),
            &[],
            &["-H".into(), tcp.clone(), "--tls=false".into()],
            Endpoint::Tcp(port, vec![]),
        );
        let v = s.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
        assert_eq!(v.trim(), "1.50");
        assert!(
            s.log().contains("WARNING") && s.log().contains("root"),
            "{}",
            s.log()
        );
    }

    // TLS with client certificates: the docker CLI with --tlsverify runs a container.
    let certs = tempfile::Builder::new()
        .prefix("skiff-tls-")
        .tempdir()
        .unwrap();
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let port = skiff_tests::free_port();
    let tls_client = vec![
        "--tlsverify".to_string(),
        format!("--tlscacert={}", c("ca.pem")),
        format!("--tlscert={}", c("cert.pem")),
        format!("--tlskey={}", c("key.pem")),
    ];
    let s = Server::start(
        env,
        &[],
        &[
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            format!("--tlscacert={}", c("ca.pem")),
            format!("--tlscert={}", c("server-cert.pem")),
            format!("--tlskey={}", c("server-key.pem")),
        ],
        Endpoint::Tcp(port, tls_client),
    );
    let out = s.docker_ok(&["run", "--rm", "busybox", "echo", "over tls"]);
    assert_eq!(out, "over tls\n");
    assert!(!s.log().contains("WARNING"), "{}", s.log());
    // Without a client certificate, with one from another CA, or in plain HTTP: no way in.
    let docker = |flags: Vec<String>| {
        Command::new("docker")
            .env("DOCKER_CONFIG", s.docker_config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .args(flags)
            .args([
                "-H",
                &format!("tcp://127.0.0.1:{port}"),
                "version",
                "--format",
                "{{.Server.APIVersion}}",
            ])
            .output()
            .unwrap()
    };
    let o = docker(vec![
        "--tlsverify".into(),
        format!("--tlscacert={}", c("ca.pem")),
    ]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).trim().is_empty());
    let o = docker(vec![
        "--tlsverify".into(),
        format!("--tlscacert={}", c("ca.pem")),
        format!("--tlscert={}", c("rogue.pem")),
        format!("--tlskey={}", c("rogue-key.pem")),
    ]);
    assert!(
        !o.status.success() && stdout(&o).trim().is_empty(),
        "{}",
        stdout(&o)
    );
    let o = docker(vec![]);
    assert!(
        !o.status.success() && stdout(&o).trim().is_empty(),
        "{}",
        stdout(&o)
    );
}

#[test]
fn systemd_socket_activation() {
    let env = EngineEnv::new("apimore-fd", |_| {});
    let sock = env.dir.path().join("activated.sock");
    // The sockets are only taken when LISTEN_PID names the server itself.
    let (code, log) = refused(
        &env,
        &[],
        &["-H", "fd://"],
        &[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")],
    );
    assert_ne!(code, Some(0));
    assert!(log.contains("LISTEN_PID"), "{log}");
    let (code, log) = refused(&env, &[], &["-H", "fd://"], &[]);
    assert_ne!(code, Some(0));
    assert!(log.contains("LISTEN_FDS"), "{log}");
    let s = Server::start(
        env,
        &[bin("skiff-listen-fds"), sock.clone()],
        &["-H".into(), "fd://".into()],
        Endpoint::Unix(sock.clone()),
    );
    let out = s.docker_ok(&["run", "--rm", "busybox", "echo", "activated"]);
    assert_eq!(out, "activated\n");
    // The variables are not passed on to what the server spawns (the containers' monitors).
    s.docker_ok(&["run", "-d", "--name", "envchk", "busybox", "sleep", "300"]);
    let mut children = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", s.child.id()))
        .unwrap()
        .flatten()
    {
        let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        children.extend(c.split_whitespace().map(String::from));
    }
    assert!(!children.is_empty(), "the monitor is a child of the server");
    for pid in &children {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&environ).contains("LISTEN_FDS="),
            "child {pid} inherited LISTEN_FDS"
        );
    }
    // The socket belongs to the service manager: the server leaves it in place on exit.
    let mut s = s;
    skiff_tests::stop_serve(&mut s.child);
    assert!(sock.exists());
}

/// `docker import` through the API (`POST /images/create?fromSrc=-`: the tar in the body, with
/// `-c` changes, `-m` and a tag; a URL and a non-tar refused in one line, nothing stored) and
/// `docker network prune` (`POST /networks/prune` with a label filter: an unlabelled unused
/// network goes; a kept label and a network a container uses stay).
#[test]
fn import_from_src_and_network_prune() {
    let env = EngineEnv::new("apimore-imp", |_| {});
    // No default bridge, and an nft table of the test's own should a network need one.
    std::fs::write(
        env.root().join("daemon.json"),
        format!(
            "{{\"bridge\": \"none\", \"nft-table\": \"skimp{}\"}}",
            std::process::id()
        ),
    )
    .unwrap();
    let sock = env.dir.path().join("docker.sock");
    let args = vec!["-H".to_string(), format!("unix://{}", sock.display())];
    let s = Server::start(env, &[], &args, Endpoint::Unix(sock));

    let src = s.env.dir.path().join("imp");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/greeting"), "hello from import\n").unwrap();
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", src.join("bin/busybox")).unwrap();
    let tar = s.env.dir.path().join("imp.tar");
    let o = Command::new("tar")
        .args([
            "-C",
            src.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = s.docker_ok(&[
        "import",
        "-c",
        "ENV IMPORTED=yes",
        "-c",
        "CMD [\"/bin/busybox\", \"cat\", \"/etc/greeting\"]",
        "-m",
        "made by the test",
        tar.to_str().unwrap(),
        "imp/one:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let cfg = s.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}}",
        "imp/one:1",
    ]);
    assert!(
        cfg.contains(r#"["/bin/busybox","cat","/etc/greeting"]"#),
        "{cfg}"
    );
    assert!(cfg.contains("IMPORTED=yes"), "{cfg}");
    assert!(cfg.contains("made by the test"), "{cfg}");
    // The imported tree is the image (the CLI sees it too).
    let inside = s.env.ok(&["run", "--rm", "--network", "none", "imp/one:1"]);
    assert_eq!(inside, "hello from import\n");
    let o = s.docker(&["import", "http://127.0.0.1:9/x.tar", "imp/url:1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("URL"), "{}", stderr(&o));
    let o = s.docker(&["import", "/proc/self/status", "imp/bad:1"]);
    assert!(!o.status.success(), "a non-tar was imported");
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(!s
        .env
        .sk(&["image", "inspect", "imp/bad:1"])
        .status
        .success());

    for (n, label) in [("pr-keep", true), ("pr-gone", false), ("pr-used", false)] {
        let mut a = vec!["network", "create", "--internal"];
        if label {
            a.extend(["--label", "keep=1"]);
        }
        a.push(n);
        s.docker_ok(&a);
    }
    s.docker_ok(&[
        "create",
        "--name",
        "pr-user",
        "--network",
        "pr-used",
        "busybox",
        "true",
    ]);
    let out = s.docker_ok(&["network", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.contains("pr-gone"), "{out}");
    assert!(
        !out.contains("pr-keep") && !out.contains("pr-used"),
        "{out}"
    );
    let ls = s.env.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.contains("pr-keep") && ls.contains("pr-used"), "{ls}");
    assert!(!ls.contains("pr-gone"), "{ls}");
    // A bad filter is a 400 naming it; the CLI's prune shares the code.
    let o = s.docker(&["network", "prune", "-f", "--filter", "bogus=1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bogus"), "{}", stderr(&o));
    s.docker_ok(&["rm", "pr-user"]);
    let out = s
        .env
        .ok(&["network", "prune", "-f", "--filter", "label=keep=1"]);
    assert!(out.contains("pr-keep") && !out.contains("pr-used"), "{out}");
    s.env.ok(&["network", "rm", "pr-used"]);
}
