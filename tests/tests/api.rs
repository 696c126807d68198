//! `skiff serve`: the Docker Engine API driven by the real docker CLI 28 (`docker` on PATH) and by
//! raw HTTP over the socket. Each test starts its own server on a socket in its own engine root.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::{stderr, stdout, EngineEnv, Pty};

/// A `skiff serve` on a socket in the engine root's temp dir; stopped (SIGTERM, then SIGKILL)
/// before the engine env is cleaned.
struct Server {
    child: Child,
    sock: PathBuf,
    docker_config: tempfile::TempDir,
    env: EngineEnv,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::start_with(name, None)
    }

    /// A server whose engine root has `daemon_json` (a bridge and nft table of the test's own).
    fn start_with(name: &str, daemon_json: Option<&str>) -> Server {
        let env = EngineEnv::new(name, |_| {});
        if let Some(d) = daemon_json {
            std::fs::write(env.root().join("daemon.json"), d).unwrap();
        }
        let sock = env.dir.path().join("docker.sock");
        let args = vec!["-H".to_string(), format!("unix://{}", sock.display())];
        let log = env.dir.path().join("serve.log");
        let child = skiff_tests::spawn_serve(&env, &[], &args, &log);
        let docker_config = tempfile::Builder::new()
            .prefix("skiff-api-docker-config-")
            .tempdir()
            .unwrap();
        // Built first, so that its drop stops the server should it never listen.
        let mut s = Server {
            child,
            sock,
            docker_config,
            env,
        };
        let sock = s.sock.clone();
        skiff_tests::wait_serve(&mut s.child, &log, || UnixStream::connect(&sock).is_ok());
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.env.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `docker ARGS` against this server, with `--cgroup-parent` added to run/create.
    fn docker_cmd(&self, args: &[&str]) -> Command {
        let host = format!("unix://{}", self.sock.display());
        let config = self.docker_config.path();
        skiff_tests::docker_cli(config, &self.env.cgroup, Some(&host), &[], args)
    }

    fn docker(&self, args: &[&str]) -> Output {
        skiff_tests::docker_run(self.docker_cmd(args))
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let log = self.env.dir.path().join("serve.log");
        skiff_tests::docker_checked(self.docker(args), args, &log)
    }

    /// One raw HTTP/1.1 request; returns (status, head, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) before it has read a large body: ignore a reset write.
        let _ = s.write_all(body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        skiff_tests::split_response(&out)
    }

    /// The `message` of an error body.
    fn message(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Containers first (through the CLI, which needs no server), then the server.
        if let Ok(o) = self.env.cmd(&["ps", "-aq"]).output() {
            for id in stdout(&o).split_whitespace() {
                let _ = self.env.cmd(&["rm", "-f", "-v", id]).output();
            }
        }
        skiff_tests::stop_serve(&mut self.child);
    }
}

#[test]
fn version_ping_and_socket_mode() {
    let s = Server::start("api-version");
    let v = s.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v.trim(), "1.50");
    let (st, head, body) = s.http("HEAD", "/_ping", b"");
    assert_eq!(st, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("api-version: 1.50"),
        "{head}"
    );
    assert!(body.is_empty());
    let (st, _, body) = s.http("GET", "/v1.24/_ping", b"");
    assert_eq!((st, body.as_slice()), (200, &b"OK"[..]));
    let (st, _, body) = s.http("GET", "/v1.23/version", b"");
    assert_eq!(st, 400);
    assert!(Server::message(&body).contains("too old"));
    let (st, _, body) = s.http("GET", "/v1.51/info", b"");
    assert_eq!(st, 400, "{}", Server::message(&body));
    let (st, _, body) = s.http("GET", "/info", b"");
    assert_eq!(st, 200);
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["Images"], 1);
    // Never world-accessible: root:skiff 0660, or 0600 where no group could be made.
    let md = std::fs::metadata(&s.sock).unwrap();
    let mode = md.permissions().mode() & 0o777;
    assert_eq!(md.uid(), 0);
    assert!(mode == 0o660 || mode == 0o600, "socket mode {mode:o}");
    assert_eq!(mode & 0o007, 0);
}

#[test]
fn docker_run_rm_output_and_exit_codes() {
    let s = Server::start("api-run");
    let o = s.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert!(
        o.status.success(),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
    assert_eq!(stdout(&o), "hi\n");
    let o = s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    let o = s.docker(&["run", "--rm", "busybox", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    // run -i: stdin piped in before the container starts reaches it, and its end ends `cat`.
    let mut child = s
        .docker_cmd(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("docker run -i did not end after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "piped in\ndone\n");
    // --rm left nothing.
    assert_eq!(s.env.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn detached_container_lifecycle() {
    let s = Server::start("api-life");
    let id = s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "GREETING=hello",
        "busybox",
        "sh",
        "-c",
        "echo started $GREETING; echo warn >&2; while true; do sleep 1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = s.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.State}}"]);
    assert_eq!(ps.trim(), "web busybox running");
    let pid: i32 = s
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"])
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    let t = Instant::now();
    loop {
        let o = s.docker(&["logs", "web"]);
        if stdout(&o) == "started hello\n" && stderr(&o) == "warn\n" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "logs: {:?} {:?}",
            stdout(&o),
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // exec without a tty: output, stderr, exit code, stdin.
    let o = s.docker(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo in $GREETING; echo e2 >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in hello\n");
    assert_eq!(stderr(&o), "e2\n");
    let mut c = s.docker_cmd(&["exec", "-i", "web", "sh", "-c", "cat; echo done"]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "piped\ndone\n",
        "stdin half-close reached the process"
    );
    // The CLI sees the container the API made.
    let cli_ps = s.env.ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(cli_ps.trim(), "web");
    let o = s.docker(&["rm", "web"]);
    assert!(!o.status.success(), "removing a running container needs -f");
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
    s.docker_ok(&["stop", "-t", "1", "web"]);
    let st = s.docker_ok(&["inspect", "-f", "{{.State.Status}}", "web"]);
    assert_eq!(st.trim(), "exited");
    s.docker_ok(&["rm", "web"]);
    assert_eq!(s.docker_ok(&["ps", "-aq"]).trim(), "");
    let o = s.docker(&["inspect", "web"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("No such"), "{}", stderr(&o));
}

#[test]
fn exec_with_tty_through_a_pty() {
    let s = Server::start("api-tty");
    s.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    let mut pty = Pty::spawn(s.docker_cmd(&["exec", "-it", "box", "sh"]), 30, 90);
    pty.expect("# ", 15);
    pty.write(b"echo $((6*7)); stty size\n");
    pty.expect("42", 10);
    pty.expect("30 90", 10);
    pty.write(b"exit 4\n");
    let st = pty.wait(15).expect("docker exec -it exits");
    assert_eq!(st.code(), Some(4), "{}", pty.text());
}

#[test]
fn images_and_volumes() {
    let s = Server::start("api-imgvol");
    let imgs = s.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(imgs.trim(), "busybox:latest");
    s.docker_ok(&["tag", "busybox", "example/other:1"]);
    let insp = s.docker_ok(&["image", "inspect", "-f", "{{.RepoTags}}", "example/other:1"]);
    assert!(insp.contains("example/other:1"), "{insp}");
    // save and load through the API.
    let tar = s.env.dir.path().join("saved.tar");
    s.docker_ok(&["save", "-o", tar.to_str().unwrap(), "example/other:1"]);
    s.docker_ok(&["rmi", "example/other:1"]);
    let o = s.docker(&["image", "inspect", "example/other:1"]);
    assert!(!o.status.success());
    let loaded = s.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: example/other:1"), "{loaded}");
    s.docker_ok(&["rmi", "example/other:1"]);
    s.docker_ok(&["volume", "create", "data1"]);
    let ls = s.docker_ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "data1");
    // The CLI sees it, and a container can use it.
    assert_eq!(s.env.ok(&["volume", "ls", "-q"]).trim(), "data1");
    let o = s.docker(&[
        "run",
        "--rm",
        "-v",
        "data1:/d",
        "busybox",
        "sh",
        "-c",
        "echo x > /d/f; cat /d/f",
    ]);
    assert_eq!(stdout(&o), "x\n", "{}", stderr(&o));
    // --mount arrives as HostConfig.Mounts: volume, tmpfs with a size, read-only bind.
    let bsrc = s.env.dir.path().join("bindsrc");
    std::fs::create_dir_all(&bsrc).unwrap();
    std::fs::write(bsrc.join("f"), "bound\n").unwrap();
    let o = s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=data1,dst=/m",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1048576",
        "--mount",
        &format!("type=bind,src={},dst=/b,readonly", bsrc.display()),
        "busybox",
        "sh",
        "-c",
        "cat /m/f /b/f; df -k /t | tail -1; touch /b/y || echo ro",
    ]);
    let out = stdout(&o);
    assert!(out.starts_with("x\nbound\n"), "{out}{}", stderr(&o));
    assert!(out.contains(" 1024 ") && out.ends_with("ro\n"), "{out}");
    s.docker_ok(&["volume", "rm", "data1"]);
    assert_eq!(s.docker_ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn cli_and_api_see_each_other() {
    let s = Server::start("api-both");
    s.env
        .ok(&["run", "-d", "--name", "fromcli", "busybox", "sleep", "300"]);
    let ps = s.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "fromcli");
    s.docker_ok(&["create", "--name", "fromapi", "busybox", "true"]);
    let ps = s.env.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.contains("fromapi created"), "{ps}");
    // Filters as docker's.
    let f = s.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "status=created",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f.trim(), "fromapi");
    s.docker_ok(&["rm", "-f", "fromcli", "fromapi"]);
    assert_eq!(s.env.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn bad_requests_get_4xx_and_the_server_stays_up() {
    let s = Server::start("api-bad");
    let (st, _, body) = s.http("POST", "/v1.50/containers/create", b"{\"Image\": ");
    assert_eq!(st, 400, "{}", Server::message(&body));
    let (st, _, body) = s.http(
        "POST",
        "/containers/create",
        br#"{"Image": "busybox", "Bogus": 1}"#,
    );
    assert_eq!(st, 400);
    assert!(
        Server::message(&body).contains("Bogus"),
        "{}",
        Server::message(&body)
    );
    let (st, _, body) = s.http(
        "POST",
        "/containers/create",
        br#"{"Image": "busybox", "HostConfig": {"Memory": "lots"}}"#,
    );
    assert_eq!(st, 400);
    assert!(
        Server::message(&body).contains("HostConfig.Memory"),
        "{}",
        Server::message(&body)
    );
    let (st, _, body) = s.http("POST", "/containers/create", br#"{"Image": "nosuchimage"}"#);
    assert_eq!(st, 404, "{}", Server::message(&body));
    let (st, _, _) = s.http("POST", "/containers/nosuch/start", b"");
    assert_eq!(st, 404);
    let huge = vec![b' '; 4 << 20];
    let (st, _, _) = s.http("POST", "/containers/create", &huge);
    assert_eq!(st, 413);
    let (st, _, _) = s.http("GET", "/no/such/endpoint", b"");
    assert_eq!(st, 404);
    let (st, _, _) = s.http("GET", "/containers/json?filters=notjson", b"");
    assert_eq!(st, 400);
    let (st, _, _) = s.http(
        "GET",
        "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(st, 400);
    // Garbage that is not HTTP at all, and a hijack the client abandons at once.
    {
        let mut c = UnixStream::connect(&s.sock).unwrap();
        let _ = c.write_all(b"\x00\x01\x02 not http\r\n\r\n");
    }
    s.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "300"]);
    {
        let mut c = UnixStream::connect(&s.sock).unwrap();
        let _ = c.write_all(
            b"POST /containers/web/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        );
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    let (st, _, body) = s.http("GET", "/_ping", b"");
    assert_eq!((st, body.as_slice()), (200, &b"OK"[..]));
    let ps = s.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "web");
}

/// The docker-py venv: `SKIFF_DOCKER_PY_VENV`, else /tmp/skiff-dockerpy-venv (made by
/// `python3 -m venv /tmp/skiff-dockerpy-venv && /tmp/skiff-dockerpy-venv/bin/pip install 'docker>=7,<8' pytest`).
fn docker_py_venv() -> Option<PathBuf> {
    let v = std::env::var_os("SKIFF_DOCKER_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/skiff-dockerpy-venv"));
    let ok = Command::new(v.join("bin/python"))
        .args([
            "-c",
            "import docker, pytest; assert docker.__version__.startswith('7.')",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(v)
}

#[test]
fn docker_py_sdk() {
    let Some(venv) = docker_py_venv() else {
        skiff_tests::skip("docker-py 7 + pytest venv missing (see docker_py_venv)");
        return;
    };
    let s = Server::start("api-py");
    // A registry holding busybox:py for the streamed pull.
    let reg = skiff_tests::registry();
    let image = format!("127.0.0.1:{}/busybox:py", reg.port);
    s.env.ok(&["tag", "busybox:latest", &image]);
    s.env.ok(&["push", &image]);
    s.env.ok(&["rmi", &image]);
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dockerpy/test_skiff_api.py");
    let o = Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&tests)
        .env("SKIFF_SOCK", &s.sock)
        .env("SKIFF_CGROUP", &s.env.cgroup)
        .env("SKIFF_REGISTRY", format!("127.0.0.1:{}", reg.port))
        .env("DOCKER_CONFIG", s.docker_config.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pytest failed:\n{}{}\nserver log:\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
    assert!(stdout(&o).contains("7 passed"), "{}", stdout(&o));
}

/// testcontainers-python (PyPI, in the docker-py venv; scripts/deps.sh installs it) with Ryuk
/// disabled: a generic busybox container with a published port and a wait strategy on a log line
/// (`tests/dockerpy/test_testcontainers.py`). The server has a bridge of its own for `-p`.
#[test]
fn testcontainers_python() {
    let Some(venv) = docker_py_venv() else {
        skiff_tests::skip("docker-py 7 + pytest venv missing (see docker_py_venv)");
        return;
    };
    let has_tc = Command::new(venv.join("bin/python"))
        .args(["-c", "import testcontainers.core.container"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tc {
        skiff_tests::skip("testcontainers missing from the docker-py venv (scripts/deps.sh)");
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        panic!("nft is missing: install the nftables package (scripts/deps.sh)");
    }
    let c = ComposeServer::new("api-tc");
    let s = &c.s;
    let tests =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dockerpy/test_testcontainers.py");
    let o = Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&tests)
        .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        // Published ports through the host, as on a developer's machine: testcontainers guesses
        // docker-in-docker (the bridge gateway) where /.dockerenv exists, as on some CI VMs.
        .env("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        .env_remove("TESTCONTAINERS_HOST_OVERRIDE")
        .env_remove("TC_HOST")
        // No ~/.testcontainers.properties of the machine's user.
        .env("HOME", s.env.dir.path())
        .env("SKIFF_CGROUP", &s.env.cgroup)
        .env("DOCKER_CONFIG", s.docker_config.path())
        .current_dir(s.env.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pytest failed:\n{}{}\nserver log:\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
    assert!(stdout(&o).contains("2 passed"), "{}", stdout(&o));
    let left = s.docker_ok(&["ps", "-aq"]);
    assert_eq!(left.trim(), "", "testcontainers removed what it made");
}

/// The server keeps engines open between requests (crates/api/src/pool.rs): what the CLI does
/// between two requests is seen by the next one, CLI commands run beside 16 concurrent API
/// clients, and afterwards the server holds no more descriptors than before (SQLite's own files
/// of pooled connections apart) and nothing is left.
#[test]
fn pooled_engines_see_cli_changes_and_leak_nothing() {
    let s = Server::start("api-pool");
    let pid = s.child.id();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter(|e| {
                !std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().contains("/skiff.db"))
            })
            .count()
    };
    let (st, _, _) = s.http("GET", "/containers/json?all=1", b"");
    assert_eq!(st, 200);
    let before = fds();
    // CLI writes between API reads.
    s.env.ok(&[
        "create",
        "--name",
        "from-cli",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let (st, _, body) = s.http("GET", "/containers/from-cli/json", b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    s.env.ok(&["rename", "from-cli", "renamed-cli"]);
    let (_, _, body) = s.http("GET", "/containers/json?all=1", b"");
    let list = String::from_utf8_lossy(&body).into_owned();
    assert!(
        list.contains("/renamed-cli") && !list.contains("/from-cli"),
        "{list}"
    );
    s.env.ok(&["rm", "renamed-cli"]);
    let (st, _, _) = s.http("GET", "/containers/renamed-cli/json", b"");
    assert_eq!(st, 404);
    // 16 API clients creating, starting, waiting for and removing containers, beside the CLI.
    let create = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["true"],
        "HostConfig": {"NetworkMode": "none", "CgroupParent": s.env.cgroup},
    })
    .to_string();
    std::thread::scope(|sc| {
        let clients: Vec<_> = (0..16)
            .map(|i| {
                let (s, create) = (&s, &create);
                sc.spawn(move || {
                    for round in 0..3 {
                        let (st, _, body) = s.http("POST", "/containers/create", create.as_bytes());
                        let body = String::from_utf8_lossy(&body).into_owned();
                        assert_eq!(st, 201, "client {i} round {round}: create: {body}");
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let id = v["Id"].as_str().unwrap().to_string();
                        for (m, path, want) in [
                            ("POST", format!("/containers/{id}/start"), 204),
                            ("POST", format!("/containers/{id}/wait"), 200),
                            ("DELETE", format!("/containers/{id}"), 204),
                        ] {
                            let (st, _, body) = s.http(m, &path, b"");
                            assert_eq!(
                                st,
                                want,
                                "client {i} round {round}: {m} {path}: {}",
                                String::from_utf8_lossy(&body)
                            );
                        }
                    }
                })
            })
            .collect();
        for _ in 0..3 {
            s.env
                .ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
            s.env.ok(&["ps", "-a"]);
        }
        for c in clients {
            c.join().expect("an API client failed");
        }
    });
    assert_eq!(s.env.ok(&["ps", "-aq"]).trim(), "", "nothing left");
    let (_, _, body) = s.http("GET", "/containers/json?all=1", b"");
    assert_eq!(String::from_utf8_lossy(&body).trim(), "[]");
    let root = s.env.root();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!(" {}/", root.display())),
        "no mount left under the root"
    );
    // The server closes the clients' connections once they hung up.
    let t = Instant::now();
    while fds() > before && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fds() <= before,
        "server fds: {before} before, {} after",
        fds()
    );
}

#[test]
fn docker_cp_both_ways_and_stats() {
    let s = Server::start("api-cp");
    s.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    let host = s.env.dir.path().join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/f"), "from host\n").unwrap();
    let tree = host.join("tree");
    s.docker_ok(&["cp", tree.to_str().unwrap(), "box:/copied"]);
    let o = s.docker_ok(&["exec", "box", "cat", "/copied/sub/f"]);
    assert_eq!(o, "from host\n");
    let out = host.join("out");
    std::fs::create_dir_all(&out).unwrap();
    s.docker_ok(&["cp", "box:/etc/passwd", out.to_str().unwrap()]);
    let passwd = std::fs::read_to_string(out.join("passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0"), "{passwd}");
    s.docker_ok(&["cp", "box:/copied", out.join("back").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("back/sub/f")).unwrap(),
        "from host\n"
    );
    let o = s.docker(&["cp", "box:/no/such/file", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Could not find the file"),
        "{}",
        stderr(&o)
    );
    // A path outside the container's root stays inside it.
    let o = s.docker(&["cp", "box:/../../../../etc/shadow", out.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "the host's /etc/shadow is not the container's"
    );
    // stats: one sample with docker's fields (the CLI computes CPU % from cpu and precpu).
    let st = s.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "box",
    ]);
    let f: Vec<&str> = st.split_whitespace().collect();
    assert_eq!(f[0], "box", "{st}");
    assert_eq!(f[1], "1", "{st}");
    assert!(!f[2].starts_with("0B"), "memory usage reported: {st}");
}

#[test]
fn logs_follow_events_and_attach() {
    let s = Server::start("api-stream");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    // logs -f ends when the container does, with every line.
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.3; done",
    ]);
    let o = s.docker(&["logs", "-f", "-t", "counter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |x| x.1))
        .collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3"]);
    let tail = s.docker_ok(&["logs", "--tail", "1", "counter"]);
    assert_eq!(tail, "line 3\n");
    // Events of a container the CLI made, through the API.
    s.env
        .ok(&["run", "--rm", "--name", "clirun", "busybox", "true"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = s.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=clirun",
        "--format",
        "{{.Action}}",
    ]);
    let acts: Vec<&str> = ev.lines().collect();
    for a in ["create", "start", "die", "destroy"] {
        assert!(acts.contains(&a), "{a} in {acts:?}");
    }
    // attach to a running tty container through a pty, detach with ctrl-p ctrl-q.
    s.docker_ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    let mut pty = Pty::spawn(s.docker_cmd(&["attach", "shell"]), 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    pty.write(b"echo attached-$((2+3))\n");
    pty.expect("attached-5", 10);
    pty.write(b"\x10\x11");
    // The CLI matches the keys itself, says so and closes the hijacked connection.
    pty.expect("read escape sequence", 10);
    pty.wait(10).expect("docker attach ends after detaching");
    let state = s.docker_ok(&["inspect", "-f", "{{.State.Status}}", "shell"]);
    assert_eq!(state.trim(), "running", "detaching leaves it running");
}

#[test]
fn concurrent_clients_diff_export_and_attach_logs() {
    let s = Server::start("api-conc");
    // Eight clients at once, each a whole `docker run --rm`.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            s.docker_cmd(&["run", "--rm", "busybox", "echo", &format!("client-{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "client {i}: {}\n{}",
            stderr(&o),
            s.log()
        );
        assert_eq!(stdout(&o), format!("client-{i}\n"));
    }
    assert_eq!(s.env.ok(&["ps", "-aq"]).trim(), "", "--rm left nothing");
    // changes, export, and attach's logs=1 on a stopped container.
    s.docker_ok(&[
        "run",
        "--name",
        "fs",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; touch /newfile; rm /etc/group",
    ]);
    let d = s.docker_ok(&["diff", "fs"]);
    assert!(
        d.contains("A /newfile") && d.contains("D /etc/group"),
        "{d}"
    );
    let o = s
        .docker_cmd(&["export", "fs"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let list = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&o.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let names = stdout(&list);
    assert!(
        names.lines().any(|l| l == "newfile"),
        "export has the new file"
    );
    assert!(
        !names.lines().any(|l| l == "etc/group"),
        "and not the deleted one"
    );
    let (st, _, body) = s.http(
        "POST",
        "/containers/fs/attach?logs=1&stdout=1&stderr=1",
        b"",
    );
    assert_eq!(st, 200);
    // (The body is chunked: look for the two stdcopy frames in it.)
    let want = b"\x01\0\0\0\0\0\0\x04one\n\x02\0\0\0\0\0\0\x04two\n";
    assert!(
        body.windows(want.len()).any(|w| w == want),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
}

/// `docker build` with `DOCKER_BUILDKIT=0` (the legacy `POST /build` protocol).
fn legacy_build(s: &Server, args: &[&str]) -> Output {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    s.docker_cmd(&a)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI must be on PATH")
}

#[test]
fn legacy_builder_post_build() {
    let s = Server::start("api-build");
    let ctx = s.env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG A\nCOPY hello.txt /hello.txt\nRUN echo \"a=$A\" > /built && echo step-output\nCMD [\"cat\", \"/built\", \"/hello.txt\"]\n",
    )
    .unwrap();
    let o = legacy_build(
        &s,
        &["-t", "x", "--build-arg", "A=1", ctx.to_str().unwrap()],
    );
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "{out}{}\nserver log:\n{}",
        stderr(&o),
        s.log()
    );
    assert!(out.contains("Step 4/5 : RUN echo"), "{out}");
    assert!(out.contains("step-output"), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged x:latest"), "{out}");
    assert_eq!(
        s.docker_ok(&["run", "--rm", "x"]),
        "a=1\nfrom the context\n"
    );
    // -q prints only the id; a named Dockerfile elsewhere in the context.
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("sub/Other"), "FROM x\nLABEL k=v\n").unwrap();
    let o = legacy_build(
        &s,
        &[
            "-q",
            "-t",
            "y",
            "-f",
            ctx.join("sub/Other").to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        s.docker_ok(&["inspect", "-f", "{{.Config.Labels.k}} {{.Id}}", "y"])
            .trim(),
        format!("v {}", id.trim())
    );
    // A failing RUN: non-zero exit and the step's error.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo failing-step; exit 7\n",
    )
    .unwrap();
    let o = legacy_build(&s, &["-t", "z", ctx.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("failing-step"), "{all}");
    assert!(all.contains("returned a non-zero code"), "{all}");
    assert!(all.contains("exit code: 7"), "{all}");
    // A Dockerfile outside the context (through a symlink) is refused.
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("Evil")).unwrap();
    let o = legacy_build(&s, &["-f", "Evil", ctx.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(s.env.ok(&["images", "-q", "z"]).trim(), "");
}

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

/// A server whose default bridge and nft table are the test's own, a free /24 for a project
/// network, and a compose 1.x project directory; `down -v`, then every container, network,
/// the bridge and the table are removed on drop, failed or not.
struct ComposeServer {
    s: Server,
    bridge: String,
    table: String,
    subnet: String,
    dir: PathBuf,
    project: String,
}

impl ComposeServer {
    fn new(name: &str) -> ComposeServer {
        // Several in one test process: each its own bridge, table, subnets and project.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let used = used_octets();
        let mut octet = ((pid % 50) * 5 + 3 + n * 2) % 250 + 1;
        while used.contains(&octet) {
            octet = octet % 250 + 1;
        }
        let mut o2 = (octet + 97) % 250 + 1;
        while used.contains(&o2) || o2 == octet {
            o2 = o2 % 250 + 1;
        }
        let bridge = format!("ska{}x{n}", pid % 100000);
        let table = format!("ska{pid}x{n}");
        let s = Server::start_with(
            name,
            Some(&format!(
                "{{\"bridge\": \"{bridge}\", \"bip\": \"10.200.{octet}.1/24\", \"nft-table\": \"{table}\", \"ip-forward\": false}}"
            )),
        );
        let dir = s.env.dir.path().join("proj");
        std::fs::create_dir_all(&dir).unwrap();
        ComposeServer {
            s,
            bridge,
            table,
            subnet: format!("10.200.{o2}.0/24"),
            dir,
            project: format!("a{pid}x{n}"),
        }
    }

    /// `docker-compose -p PROJECT ARGS` (1.29) in the project directory, against the server.
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", format!("unix://{}", self.s.sock.display()))
            .env("DOCKER_CONFIG", self.s.docker_config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("COMPOSE_FILE")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env_remove("COMPOSE_PROJECT_NAME")
            .stdin(Stdio::null())
            .output()
            .expect("run docker-compose")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.compose(args);
        assert!(
            o.status.success(),
            "docker-compose {args:?} failed ({}): {}{}\nserver log:\n{}",
            o.status,
            stdout(&o),
            stderr(&o),
            self.s.log()
        );
        stdout(&o)
    }
}

impl Drop for ComposeServer {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "0"]);
        if let Ok(o) = self.s.env.cmd(&["ps", "-aq"]).output() {
            for id in stdout(&o).split_whitespace() {
                let _ = self.s.env.cmd(&["rm", "-f", "-v", id]).output();
            }
        }
        if let Ok(o) = self
            .s
            .env
            .cmd(&["network", "ls", "--format", "{{.Name}}"])
            .output()
        {
            for n in stdout(&o)
                .split_whitespace()
                .filter(|n| !matches!(*n, "bridge" | "host" | "none"))
            {
                let _ = self.s.env.cmd(&["network", "rm", n]).output();
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

#[test]
fn docker_compose_1_29_project() {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        skiff_tests::skip("docker-compose (1.x, Debian's docker-compose package) is not installed");
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        panic!("nft is missing: install the nftables package (scripts/deps.sh)");
    }
    let c = ComposeServer::new("api-compose");
    std::fs::write(
        c.dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  db:
    image: busybox
    cgroup_parent: {cg}
    command: sh -c 'echo db-up; while true; do echo pong | nc -l -p 7000; done'
    volumes: [data:/data]
    networks: [back]
  app:
    image: busybox
    cgroup_parent: {cg}
    command: sh -c 'until nc db 7000 </dev/null >/data/got; do sleep 0.2; done; echo app-up; sleep 300'
    volumes: [data:/data]
    networks: [back]
    depends_on: [db]
  built:
    build:
      context: ./b
      args:
        V: "7"
    cgroup_parent: {cg}
    networks: [back]
networks:
  back:
    ipam:
      config:
        - subnet: {subnet}
volumes:
  data:
"#,
            cg = c.s.env.cgroup,
            subnet = c.subnet
        ),
    )
    .unwrap();
    std::fs::create_dir_all(c.dir.join("b")).unwrap();
    std::fs::write(
        c.dir.join("b/Dockerfile"),
        "FROM busybox\nARG V\nRUN echo \"v=$V\" > /v\nCMD [\"sh\", \"-c\", \"cat /v; sleep 300\"]\n",
    )
    .unwrap();
    // `build:` goes through POST /build (docker-py's build, not the docker CLI).
    let out = c.ok(&["build"]);
    assert!(out.contains("Successfully built"), "{out}");
    c.ok(&["up", "-d"]);
    // ps: each service once (labels in a filter are ANDed), both up.
    let ps = c.ok(&["ps"]);
    let rows: Vec<&str> = ps.lines().filter(|l| l.contains(" Up")).collect();
    assert_eq!(rows.len(), 3, "{ps}");
    assert!(ps.contains(&format!("{}_db_1", c.project)), "{ps}");
    assert!(ps.contains(&format!("{}_app_1", c.project)), "{ps}");
    // app reached db by its service name and wrote into the shared named volume.
    let t = Instant::now();
    loop {
        let o = c.compose(&["exec", "-T", "app", "cat", "/data/got"]);
        if stdout(&o) == "pong\n" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "app never reached db: {}{}\n{}",
            stdout(&o),
            stderr(&o),
            c.ok(&["logs"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = c.ok(&["logs"]);
    assert!(logs.contains("db-up") && logs.contains("app-up"), "{logs}");
    assert!(logs.contains("v=7"), "{logs}");
    let o = c.compose(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "nc db 7000 </dev/null; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "pong\n");
    c.ok(&["down", "-v"]);
    assert_eq!(c.s.env.ok(&["ps", "-aq"]).trim(), "");
    let nets = c.s.env.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&c.project), "{nets}");
    assert_eq!(c.s.env.ok(&["volume", "ls", "-q"]).trim(), "");
}

/// The state of one `docker-compose ps` (1.29) row: `running` for `Up…`, `exited` for `Exit N`.
fn compose1_state(row: &str) -> &'static str {
    if row.contains(" Up") {
        "running"
    } else if row.contains(" Exit ") {
        "exited"
    } else {
        "other"
    }
}

/// A project brought up by `skiff compose up -d` is the project docker-compose 1.29 sees through
/// `skiff serve`: the same container names, services and states in `ps`; and its `down -v`
/// removes the containers, the network and the volume skiff compose made.
#[test]
fn skiff_compose_project_seen_by_docker_compose_1_29() {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        skiff_tests::skip("docker-compose (1.x, Debian's docker-compose package) is not installed");
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        panic!("nft is missing: install the nftables package (scripts/deps.sh)");
    }
    let c = ComposeServer::new("api-compose-x");
    std::fs::write(
        c.dir.join("docker-compose.yml"),
        format!(
            r#"services:
  db:
    image: busybox
    cgroup_parent: {cg}
    command: sleep 300
    volumes: [data:/data]
  web:
    image: busybox
    cgroup_parent: {cg}
    command: sleep 300
    depends_on: [db]
    deploy:
      replicas: 2
  once:
    image: busybox
    cgroup_parent: {cg}
    command: "true"
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
volumes:
  data: {{}}
"#,
            cg = c.s.env.cgroup,
            subnet = c.subnet
        ),
    )
    .unwrap();
    let skiff_compose = |args: &[&str]| -> String {
        let mut full = vec!["compose", "-p", &c.project];
        full.extend_from_slice(args);
        let o = c.s.env.cmd(&full).current_dir(&c.dir).output().unwrap();
        assert!(
            o.status.success(),
            "skiff compose {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    };
    skiff_compose(&["up", "-d"]);
    // `once` exits by itself.
    let t = Instant::now();
    while !skiff_compose(&["ps", "-a", "--status", "exited", "-q"]).contains(char::is_alphanumeric)
    {
        assert!(t.elapsed() < Duration::from_secs(20), "once never exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // skiff's view: name → (service, state).
    let mut ours = std::collections::BTreeMap::new();
    for l in skiff_compose(&["ps", "-a", "--format", "json"]).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        ours.insert(
            v["Name"].as_str().unwrap().to_string(),
            (
                v["Service"].as_str().unwrap().to_string(),
                v["State"].as_str().unwrap().to_string(),
            ),
        );
    }
    let p = &c.project;
    assert_eq!(
        ours.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{p}-db-1"),
            format!("{p}-once-1"),
            format!("{p}-web-1"),
            format!("{p}-web-2")
        ]
    );
    // docker-compose's view of the same project: names and states from `ps`, services from
    // `ps -q SERVICE` (container ids).
    let ps = c.ok(&["ps"]);
    let mut theirs = std::collections::BTreeMap::new();
    for row in ps.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let name = row.split_whitespace().next().unwrap().to_string();
        theirs.insert(name, compose1_state(row).to_string());
    }
    assert_eq!(
        theirs,
        ours.iter()
            .map(|(n, (_, st))| (n.clone(), st.clone()))
            .collect(),
        "docker-compose ps:\n{ps}"
    );
    for svc in ["db", "web", "once"] {
        let mut a: Vec<String> = skiff_compose(&["ps", "-a", "-q", svc])
            .split_whitespace()
            .map(String::from)
            .collect();
        let mut b: Vec<String> = c
            .ok(&["ps", "-q", svc])
            .split_whitespace()
            .map(String::from)
            .collect();
        a.sort();
        b.sort();
        assert!(!a.is_empty());
        assert_eq!(a, b, "service {svc}");
    }
    // docker-compose's down removes what skiff compose made.
    c.ok(&["down", "-v", "-t", "1"]);
    assert_eq!(c.s.env.ok(&["ps", "-aq"]).trim(), "");
    let nets = c.s.env.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&format!("{p}_default")), "{nets}");
    let vols = c.s.env.ok(&["volume", "ls", "-q"]);
    assert!(!vols.contains(&format!("{p}_data")), "{vols}");
    assert_eq!(skiff_compose(&["ps", "-a", "-q"]).trim(), "");
}
