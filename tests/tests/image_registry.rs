//! `skiff push`/`pull` against a real Debian `docker-registry` on 127.0.0.1 (temp storage, random
//! port): push → pull into an empty root with equal digests, multi-arch index selection with
//! `--platform`, `manifest inspect`, `kill -9` during pull; HTTPS with htpasswd Basic auth and
//! `login`/`logout`; Bearer tokens from a token server written here (RS256 JWTs signed with
//! openssl); a `docker-credential-*` helper; docker.io mirrors from the registries config file.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use skiff_tests::{bin, busybox_rootfs, free_port, registry, registry_with, Registry};

use skiff_tests::{skiff, skiff_ok as ok};

fn inspect(root: &Path, image: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("skiff-imgreg-")
        .tempdir()
        .unwrap();
    busybox_rootfs(&t.path().join("rootfs"));
    (t, PathBuf::from("rootfs"))
}

#[test]
fn push_then_pull_into_an_empty_root_gives_the_same_image() {
    let reg = registry();
    let (t, _) = setup();
    let root = t.path().join("a");
    let rootfs = t.path().join("rootfs");
    let name = format!("127.0.0.1:{}/skiff-test/bb:v1", reg.port);
    ok(
        &root,
        &[
            "import",
            "-c",
            "CMD [\"sh\"]",
            rootfs.to_str().unwrap(),
            &name,
        ],
    );
    let out = ok(&root, &["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    let pushed_digest = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    assert!(pushed_digest.starts_with("sha256:"), "{out}");
    // Pushing again finds everything there.
    assert!(ok(&root, &["push", &name]).contains("Layer already exists"));

    let root2 = t.path().join("b");
    let out = ok(&root2, &["pull", &name]);
    assert!(
        out.contains("Pull complete") && out.contains(&format!("Digest: {pushed_digest}")),
        "{out}"
    );
    assert_eq!(out.lines().last().unwrap(), name);
    let a = inspect(&root, &name);
    let b = inspect(&root2, &name);
    assert_eq!(a["Id"], b["Id"]);
    assert_eq!(a["RootFS"], b["RootFS"]);
    assert_eq!(a["Size"], b["Size"]);
    assert_eq!(
        b["RepoDigests"],
        json!([format!(
            "127.0.0.1:{}/skiff-test/bb@{pushed_digest}",
            reg.port
        )])
    );
    let lower = b["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&lower).join("bin/busybox").is_file());
    // Pull by digest resolves to the same image; a second pull is a no-op.
    let by_digest = format!("127.0.0.1:{}/skiff-test/bb@{pushed_digest}", reg.port);
    assert!(ok(&root2, &["pull", &by_digest]).contains("Image is up to date"));
    assert_eq!(inspect(&root2, &by_digest)["Id"], a["Id"]);
    // -q prints only the name.
    assert_eq!(ok(&root2, &["pull", "-q", &name]).trim(), name);
    // skopeo agrees on the manifest digest in the registry.
    let sk = sh(&format!(
        "skopeo inspect --tls-verify=false docker://{name}"
    ));
    let skv: Value = serde_json::from_str(&sk).unwrap();
    assert_eq!(skv["Digest"], pushed_digest.as_str());
    // A single-platform image must match an explicit --platform.
    let o = skiff(
        &t.path().join("c"),
        &["pull", "--platform", "linux/s390x", &name],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("does not match the specified platform: wanted linux/s390x"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Missing tags are a clear error.
    let o = skiff(
        &root2,
        &[
            "pull",
            &format!("127.0.0.1:{}/skiff-test/bb:nope", reg.port),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn multi_arch_index_selects_the_platform() {
    let reg = registry();
    let (t, _) = setup();
    let p = t.path();
    let root = p.join("a");
    let rootfs = p.join("rootfs");
    ok(
        &root,
        &[
            "import",
            "--platform",
            "linux/amd64",
            rootfs.to_str().unwrap(),
            "multi:amd64",
        ],
    );
    std::fs::write(rootfs.join("etc/arch"), "arm64").unwrap();
    ok(
        &root,
        &[
            "import",
            "--platform",
            "linux/arm64/v8",
            rootfs.to_str().unwrap(),
            "multi:arm64",
        ],
    );
    // Build an OCI layout with an index over both manifests (copied from skiff's content store).
    let layout = p.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    sh(&format!(
        "cp {}/content/blobs/sha256/* {}/blobs/sha256/",
        root.display(),
        layout.display()
    ));
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let desc = |tag: &str, arch: &str, variant: Option<&str>| {
        let d = inspect(&root, tag)["Descriptor"].clone();
        let mut plat = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            plat["variant"] = json!(v);
        }
        json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": plat})
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc("multi:amd64", "amd64", None), desc("multi:arm64", "arm64", Some("v8"))],
    });
    let ib = serde_json::to_vec(&index).unwrap();
    let ih = sh(&format!(
        "printf '%s' '{}' | sha256sum | cut -d' ' -f1",
        String::from_utf8_lossy(&ib)
    ))
    .trim()
    .to_string();
    std::fs::write(layout.join("blobs/sha256").join(&ih), &ib).unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{ih}"), "size": ib.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let name = format!("127.0.0.1:{}/skiff-test/multi:1", reg.port);
    sh(&format!(
        "skopeo copy -q --all --dest-tls-verify=false oci:{}:multi docker://{name}",
        layout.display()
    ));

    let arm = p.join("arm");
    ok(&arm, &["pull", "--platform", "linux/arm64", &name]);
    let v = inspect(&arm, &name);
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Id"], inspect(&root, "multi:arm64")["Id"]);
    let lower = v["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(Path::new(&lower).join("etc/arch")).unwrap(),
        "arm64"
    );
    assert_eq!(
        v["RepoDigests"],
        json!([format!(
            "127.0.0.1:{}/skiff-test/multi@sha256:{ih}",
            reg.port
        )])
    );

    let amd = p.join("amd");
    ok(&amd, &["pull", &name]);
    assert_eq!(
        inspect(&amd, &name)["Architecture"],
        "amd64",
        "default is the host platform"
    );
    let o = skiff(&amd, &["pull", "--platform", "linux/s390x", &name]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no matching manifest for linux/s390x"));

    let m: Value = serde_json::from_str(&ok(&amd, &["manifest", "inspect", &name])).unwrap();
    assert_eq!(m["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(m["manifests"][1]["platform"]["architecture"], "arm64");
    // -v: docker's verbose shape, one entry per platform manifest.
    let v: Value = serde_json::from_str(&ok(&amd, &["manifest", "inspect", "-v", &name])).unwrap();
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["Descriptor"]["platform"]["architecture"],
        "arm64"
    );
    assert_eq!(
        entries[1]["Ref"],
        format!(
            "127.0.0.1:{}/skiff-test/multi@{}",
            reg.port,
            entries[1]["Descriptor"]["digest"].as_str().unwrap()
        )
    );
    assert!(
        entries[0]["OCIManifest"]["layers"].is_array()
            || entries[0]["SchemaV2Manifest"]["layers"].is_array()
    );
    // A single manifest: the platform comes from its config.
    let single = format!(
        "127.0.0.1:{}/skiff-test/multi@{}",
        reg.port,
        entries[1]["Descriptor"]["digest"].as_str().unwrap()
    );
    let s: Value =
        serde_json::from_str(&ok(&amd, &["manifest", "inspect", "--verbose", &single])).unwrap();
    assert_eq!(s["Descriptor"]["platform"]["architecture"], "arm64");
    assert_eq!(s["Descriptor"]["platform"]["os"], "linux");
    assert!(s["Raw"].as_str().unwrap().len() > 100);
}

#[test]
fn pull_killed_at_random_points_then_pull_again_works() {
    let reg = registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    sh(&format!(
        "for i in 1 2 3; do head -c 15000000 /dev/urandom > {}/data$i; done",
        rootfs.display()
    ));
    let src = p.join("src");
    let name = format!("127.0.0.1:{}/skiff-test/crash:1", reg.port);
    ok(&src, &["import", rootfs.to_str().unwrap(), &name]);
    ok(&src, &["push", "-q", &name]);
    let want = inspect(&src, &name)["Id"].clone();
    let root = p.join("dst");
    let mut interrupted = 0;
    for d in [5u64, 30, 60, 100, 150, 250, 400] {
        let mut child = Command::new(bin("skiff"))
            .arg("--root")
            .arg(&root)
            .args(["pull", "-q", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(d));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let ids = ok(&root, &["images", "-q", "--no-trunc"]);
        for id in ids.lines() {
            assert_eq!(
                id,
                want.as_str().unwrap(),
                "only the whole image may ever be listed"
            );
            let lower = inspect(&root, id)["GraphDriver"]["Data"]["LowerDir"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(
                std::fs::metadata(Path::new(&lower).join("data3"))
                    .unwrap()
                    .len(),
                15_000_000
            );
        }
        if !ids.is_empty() {
            ok(&root, &["rmi", &name]);
        }
    }
    assert!(
        interrupted > 0,
        "no pull was interrupted; the test proves nothing"
    );
    ok(&root, &["pull", &name]);
    assert_eq!(inspect(&root, &name)["Id"], want);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    ok(&root, &["image", "prune", "-a", "-f"]);
    assert_eq!(
        std::fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "no orphan blobs after prune"
    );
}

/// `skiff --root root args...` with extra environment and optional stdin.
fn skiff_env(root: &Path, env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(bin("skiff"));
    c.arg("--root").arg(root).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run skiff");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok_env(root: &Path, env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> String {
    let o = skiff_env(root, env, args, stdin);
    assert!(
        o.status.success(),
        "skiff {args:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn err_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A self-signed RSA key and certificate for 127.0.0.1 in `dir` (`name.key`, `name.crt`).
fn tls_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, crt) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=127.0.0.1 \
         -addext subjectAltName=IP:127.0.0.1 -keyout {} -out {} 2>/dev/null",
        key.display(),
        crt.display()
    ));
    (key, crt)
}

/// An HTTPS registry with htpasswd Basic auth for alice / s3cret.
fn basic_registry() -> Registry {
    registry_with(|d| {
        let (key, crt) = tls_cert(d, "tls");
        sh(&format!(
            "htpasswd -Bbn alice s3cret > {}/htpasswd",
            d.display()
        ));
        (
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                crt.display(),
                key.display()
            ),
            format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}/htpasswd\n",
                d.display()
            ),
        )
    })
}

fn digest_of_push(out: &str) -> String {
    out.lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string()
}

#[test]
fn basic_auth_over_https_with_login_and_logout() {
    let reg = basic_registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let docker = p.join("docker");
    let env = [("DOCKER_CONFIG", docker.display().to_string())];
    let host = format!("127.0.0.1:{}", reg.port);
    let name = format!("{host}/skiff-test/basic:v1");
    let a = p.join("a");
    ok(&a, &["import", rootfs.to_str().unwrap(), &name]);

    let o = skiff_env(&a, &env, &["push", &name], None);
    assert_eq!(o.status.code(), Some(1), "{}", err_text(&o));
    assert!(
        err_text(&o).contains(&format!(
            "push access denied for {host}/skiff-test/basic: no basic auth credentials"
        )),
        "{}",
        err_text(&o)
    );

    let o = skiff_env(
        &a,
        &env,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("wrong\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("failed with status: 401 Unauthorized"),
        "{}",
        err_text(&o)
    );
    assert!(!docker.join("config.json").exists(), "no credentials kept");
    let o = skiff_env(&a, &env, &["login", &host], None);
    assert!(err_text(&o).contains("Cannot perform an interactive login from a non TTY device"));

    let out = ok_env(
        &a,
        &env,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret\n"),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg = docker.join("config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(
        v["auths"][&host]["auth"],
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );

    let digest = digest_of_push(&ok_env(&a, &env, &["push", &name], None));
    let b = p.join("b");
    let out = ok_env(&b, &env, &["pull", &name], None);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);

    let o = skiff_env(
        &a,
        &env,
        &["login", "-u", "alice", "-p", "s3cret", &host],
        None,
    );
    assert!(o.status.success());
    assert!(err_text(&o).contains("WARNING! Using --password via the CLI is insecure"));

    // On a terminal, login prompts (the stored user name is offered as the default).
    let mut c = Command::new("script")
        .args([
            "-qec",
            &format!("{} login {host}", bin("skiff").display()),
            "/dev/null",
        ])
        .env("DOCKER_CONFIG", &docker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"\ns3cret\n").unwrap();
    let o = c.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Username (alice): ") && out.contains("Password: "),
        "{out}"
    );
    assert!(out.contains("Login Succeeded"), "{out}");

    let out = ok_env(&a, &env, &["logout", &host], None);
    assert_eq!(out.trim(), format!("Removing login credentials for {host}"));
    let v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert!(v["auths"].get(&host).is_none(), "{v}");
    let out = ok_env(&a, &env, &["logout", &host], None);
    assert_eq!(out.trim(), format!("Not logged in to {host}"));
    let o = skiff_env(&p.join("c"), &env, &["pull", &name], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("pull access denied"),
        "{}",
        err_text(&o)
    );
}

#[test]
fn credential_helper_stores_and_supplies_credentials() {
    let reg = basic_registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let host = format!("127.0.0.1:{}", reg.port);
    let name = format!("{host}/skiff-test/helper:v1");
    // A docker-credential-* helper keeping one credential in a file beside itself.
    let bindir = p.join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let helper = bindir.join("docker-credential-skifftest");
    std::fs::write(
        &helper,
        r#"#!/bin/sh
d=$(dirname "$0")
case "$1" in
get) read -r server; echo "get $server" >> "$d/calls"
     if [ -f "$d/store" ]; then cat "$d/store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) cat > "$d/store"; echo store >> "$d/calls" ;;
erase) read -r server; rm -f "$d/store"; echo "erase $server" >> "$d/calls" ;;
*) exit 2 ;;
esac
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = p.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        json!({"credHelpers": {&host: "skifftest"}}).to_string(),
    )
    .unwrap();
    let env = [
        ("DOCKER_CONFIG", docker.display().to_string()),
        (
            "PATH",
            format!(
                "{}:{}",
                bindir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
    ];
    let a = p.join("a");
    ok(&a, &["import", rootfs.to_str().unwrap(), &name]);
    let o = skiff_env(&a, &env, &["push", &name], None);
    assert_eq!(o.status.code(), Some(1), "no credentials yet");

    let o = skiff_env(
        &a,
        &env,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret"),
    );
    assert!(o.status.success(), "{}", err_text(&o));
    assert!(
        !err_text(&o).contains("unencrypted"),
        "stored in the helper, not the file"
    );
    let stored: Value =
        serde_json::from_slice(&std::fs::read(bindir.join("store")).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({"ServerURL": host, "Username": "alice", "Secret": "s3cret"})
    );
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(docker.join("config.json")).unwrap()).unwrap();
    assert!(cfg.get("auths").is_none(), "{cfg}");

    ok_env(&a, &env, &["push", &name], None);
    let calls = std::fs::read_to_string(bindir.join("calls")).unwrap();
    assert!(calls.contains(&format!("get {host}")), "{calls}");

    let out = ok_env(&a, &env, &["logout", &host], None);
    assert!(out.contains("Removing login credentials"), "{out}");
    assert!(!bindir.join("store").exists());
    let o = skiff_env(&p.join("b"), &env, &["pull", &name], None);
    assert_eq!(o.status.code(), Some(1), "credentials erased");

    // credsStore serves every registry; its `get` answer is used as is.
    std::fs::write(
        docker.join("config.json"),
        json!({"credsStore": "skifftest"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        bindir.join("store"),
        json!({"ServerURL": host, "Username": "alice", "Secret": "s3cret"}).to_string(),
    )
    .unwrap();
    let b = p.join("b");
    ok_env(&b, &env, &["pull", &name], None);
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
}

/// (account, scopes) of every token issued.
type Issued = Arc<Mutex<Vec<(Option<String>, Vec<String>)>>>;

/// A token server for `auth: token` registries: alice/s3cret gets what she asks for, anonymous
/// callers only `pull`, wrong passwords a 401. Tokens are RS256 JWTs with the signing certificate
/// in `x5c`, signed by `openssl dgst`.
struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    issued: Issued,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn jwt(key: &Path, cert_der_b64: &str, account: &str, access: Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [cert_der_b64]});
    let claims = json!({
        "iss": "skiff-test-issuer", "sub": account, "aud": "skiff-test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
        "jti": format!("{now}-{}", std::process::id()), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let sig = c.wait_with_output().unwrap();
    assert!(sig.status.success());
    format!("{input}.{}", b64(&sig.stdout))
}

fn token_server(listener: TcpListener, key: PathBuf, cert: &Path) -> TokenServer {
    let port = listener.local_addr().unwrap().port();
    let pem = std::fs::read_to_string(cert).unwrap();
    let der: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let stop = Arc::new(AtomicBool::new(false));
    let issued: Issued = Arc::new(Mutex::new(Vec::new()));
    let (stop2, issued2) = (stop.clone(), issued.clone());
    let thread = std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut auth = None;
            let mut length = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = v.trim().strip_prefix("Basic ").map(|b| {
                            String::from_utf8(
                                base64::engine::general_purpose::STANDARD
                                    .decode(b.trim())
                                    .unwrap(),
                            )
                            .unwrap()
                        });
                    }
                }
            }
            // GET with the query (and Basic credentials), or POST of an OAuth2 refresh-token form.
            let form = if line.starts_with("POST ") {
                let mut body = vec![0u8; length];
                if std::io::Read::read_exact(&mut r, &mut body).is_err() {
                    continue;
                }
                String::from_utf8_lossy(&body).into_owned()
            } else {
                target
                    .split_once('?')
                    .map(|x| x.1)
                    .unwrap_or("")
                    .to_string()
            };
            let field = |name: &str| -> Vec<String> {
                form.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| pct_decode(v))
                    .collect()
            };
            let scopes: Vec<String> = field("scope")
                .iter()
                .flat_map(|s| s.split(' ').map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect();
            if line.starts_with("POST ") {
                auth = match field("refresh_token").first().map(String::as_str) {
                    Some("refresh-alice") => Some("alice:s3cret".into()),
                    _ => Some("refresh:token".into()),
                };
            }
            let account = match auth.as_deref() {
                None => None,
                Some("alice:s3cret") => Some("alice".to_string()),
                Some(_) => {
                    let _ = conn.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{\"details\":\"bad credentials\"}\n",
                    );
                    continue;
                }
            };
            let access: Vec<Value> = scopes
                .iter()
                .filter_map(|s| {
                    let mut it = s.splitn(3, ':');
                    let (ty, name, actions) = (it.next()?, it.next()?, it.next()?);
                    let granted: Vec<&str> = actions
                        .split(',')
                        .filter(|a| account.is_some() || *a == "pull")
                        .collect();
                    Some(json!({"type": ty, "name": name, "actions": granted}))
                })
                .collect();
            let token = jwt(
                &key,
                &der,
                account.as_deref().unwrap_or(""),
                Value::Array(access),
            );
            issued2.lock().unwrap().push((account, scopes));
            let body =
                json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    TokenServer {
        port,
        stop,
        issued,
        thread: Some(thread),
    }
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = listener.local_addr().unwrap().port();
    let keys = tempfile::Builder::new()
        .prefix("skiff-token-")
        .tempdir()
        .unwrap();
    let (key, cert) = tls_cert(keys.path(), "token");
    let tokens = token_server(listener, key, &cert);
    let reg = registry_with(|_| {
        (
            String::new(),
            format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: skiff-test-registry\n    issuer: skiff-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ),
        )
    });
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let docker = p.join("docker");
    let env = [("DOCKER_CONFIG", docker.display().to_string())];
    let host = format!("127.0.0.1:{}", reg.port);
    let name = format!("{host}/skiff-test/tok:v1");
    let a = p.join("a");
    ok(&a, &["import", rootfs.to_str().unwrap(), &name]);

    let o = skiff_env(&a, &env, &["push", &name], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("push access denied"),
        "anonymous tokens only pull: {}",
        err_text(&o)
    );
    let o = skiff_env(
        &a,
        &env,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("nope\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("incorrect username or password"),
        "{}",
        err_text(&o)
    );
    ok_env(
        &a,
        &env,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret\n"),
    );
    let digest = digest_of_push(&ok_env(&a, &env, &["push", &name], None));
    assert!(
        tokens.issued.lock().unwrap().iter().any(|(acct, scopes)| {
            acct.as_deref() == Some("alice")
                && scopes == &["repository:skiff-test/tok:pull,push".to_string()]
        }),
        "{:?}",
        tokens.issued.lock().unwrap()
    );

    // Anonymous pull (another, empty docker config) gets a pull-only token.
    let anon = [("DOCKER_CONFIG", p.join("nobody").display().to_string())];
    let b = p.join("b");
    let out = ok_env(&b, &anon, &["pull", &name], None);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
    assert!(tokens
        .issued
        .lock()
        .unwrap()
        .iter()
        .any(|(acct, scopes)| acct.is_none()
            && scopes == &["repository:skiff-test/tok:pull".to_string()]));
    let m: Value =
        serde_json::from_str(&ok_env(&b, &anon, &["manifest", "inspect", &name], None)).unwrap();
    assert_eq!(m["schemaVersion"], 2);

    // An identity token in config.json is exchanged at the realm (grant_type=refresh_token).
    let oauth = p.join("oauth");
    std::fs::create_dir_all(&oauth).unwrap();
    std::fs::write(
        oauth.join("config.json"),
        json!({"auths": {&host: {"auth": "", "identitytoken": "refresh-alice"}}}).to_string(),
    )
    .unwrap();
    let env = [("DOCKER_CONFIG", oauth.display().to_string())];
    let v2 = format!("{host}/skiff-test/tok:v2");
    ok(&a, &["tag", &name, &v2]);
    ok_env(&a, &env, &["push", &v2], None);
    std::fs::write(
        oauth.join("config.json"),
        json!({"auths": {&host: {"identitytoken": "stale"}}}).to_string(),
    )
    .unwrap();
    let o = skiff_env(&a, &env, &["push", &v2], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("incorrect username or password"),
        "{}",
        err_text(&o)
    );
}

#[test]
fn docker_io_pulls_go_to_the_configured_mirrors() {
    let full = registry();
    let empty = registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let a = p.join("a");
    let on_mirror = format!("127.0.0.1:{}/library/mirrored:1", full.port);
    ok(&a, &["import", rootfs.to_str().unwrap(), &on_mirror]);
    ok(&a, &["push", "-q", &on_mirror]);
    let cfg = p.join("registries.json");
    std::fs::write(
        &cfg,
        json!({"registry-mirrors": [
            format!("http://127.0.0.1:{}", free_port()),
            format!("http://127.0.0.1:{}", empty.port),
            format!("http://127.0.0.1:{}/", full.port),
        ]})
        .to_string(),
    )
    .unwrap();
    // Should the mirrors be skipped, docker.io would be tried: through a dead loopback proxy.
    let env = [
        ("SKIFF_REGISTRIES_CONFIG", cfg.display().to_string()),
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", free_port())),
        ("NO_PROXY", "127.0.0.1".to_string()),
        ("DOCKER_CONFIG", p.join("docker").display().to_string()),
    ];
    let b = p.join("b");
    let out = ok_env(&b, &env, &["pull", "mirrored:1"], None);
    assert!(out.starts_with("1: Pulling from library/mirrored"), "{out}");
    assert_eq!(out.lines().last().unwrap(), "docker.io/library/mirrored:1");
    let v = inspect(&b, "mirrored:1");
    assert_eq!(v["Id"], inspect(&a, &on_mirror)["Id"]);
    assert_eq!(v["RepoTags"], json!(["mirrored:1"]));

    std::fs::write(
        &cfg,
        r#"{"registry-mirrors": ["https://mirror.invalid/v2/"]}"#,
    )
    .unwrap();
    let o = skiff_env(&p.join("c"), &env, &["pull", "mirrored:1"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("invalid mirror") && err_text(&o).contains("registries.json"),
        "{}",
        err_text(&o)
    );
}

#[test]
fn pull_on_a_terminal_draws_progress_bars() {
    let reg = registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    sh(&format!(
        "head -c 6000000 /dev/urandom > {}/blob",
        rootfs.display()
    ));
    let name = format!("127.0.0.1:{}/skiff-test/tty:1", reg.port);
    let a = p.join("a");
    ok(&a, &["import", rootfs.to_str().unwrap(), &name]);
    ok(&a, &["push", "-q", &name]);
    let cmd = format!(
        "stty cols 150; {} --root {} pull {name}",
        bin("skiff").display(),
        p.join("b").display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Downloading ["), "{out:?}");
    assert!(
        out.contains("\x1b[1A\x1b[2K"),
        "lines redrawn in place: {out:?}"
    );
    assert!(out.contains("Pull complete"), "{out:?}");
    // Not a terminal: plain lines, no bars, no escapes.
    let out = ok(&p.join("c"), &["pull", &name]);
    assert!(
        !out.contains('\x1b') && !out.contains("Downloading"),
        "{out}"
    );
    assert!(out.contains(": Download complete\n") && out.contains(": Pull complete\n"));
}

/// Requests seen by [`FlakyProxy`]: (request line, Range header).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An HTTP proxy in front of a registry that cuts the first response for a blob after `cut`
/// bytes, to exercise resumption.
struct FlakyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Seen,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn flaky_proxy(upstream: u16, cut: usize) -> FlakyProxy {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let (stop2, seen2) = (stop.clone(), seen.clone());
    let thread = std::thread::spawn(move || {
        let cut_done = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for conn in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = conn else { continue };
            let (seen, cut_done) = (seen2.clone(), cut_done.clone());
            workers.push(std::thread::spawn(move || {
                let mut r = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                let mut range = None;
                let mut first = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    if first.is_empty() {
                        first = l.trim().to_string();
                    }
                    if l.trim().is_empty() {
                        break;
                    }
                    let lower = l.to_ascii_lowercase();
                    if lower.starts_with("range:") {
                        range = Some(l[6..].trim().to_string());
                    }
                    if !lower.starts_with("connection:") {
                        head.push(l);
                    }
                }
                head.push("Connection: close\r\n\r\n".into());
                seen.lock().unwrap().push((first.clone(), range.clone()));
                let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                up.write_all(head.concat().as_bytes()).unwrap();
                // Only the first response that grows past `cut` bytes is cut.
                let cut_this = first.starts_with("GET ")
                    && first.contains("/blobs/")
                    && range.is_none()
                    && !cut_done.load(Ordering::SeqCst);
                let mut client = client;
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0;
                loop {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let cutting =
                        cut_this && sent + n >= cut && !cut_done.swap(true, Ordering::SeqCst);
                    let n = if cutting { cut - sent } else { n };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if cutting {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
            }));
        }
        for w in workers {
            let _ = w.join();
        }
    });
    FlakyProxy {
        port,
        stop,
        seen,
        thread: Some(thread),
    }
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let reg = registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    sh(&format!(
        "head -c 8000000 /dev/urandom > {}/blob",
        rootfs.display()
    ));
    let a = p.join("a");
    let direct = format!("127.0.0.1:{}/skiff-test/cut:1", reg.port);
    ok(&a, &["import", rootfs.to_str().unwrap(), &direct]);
    ok(&a, &["push", "-q", &direct]);
    let proxy = flaky_proxy(reg.port, 3_000_000);
    let name = format!("127.0.0.1:{}/skiff-test/cut:1", proxy.port);
    let b = p.join("b");
    let out = ok(&b, &["pull", &name]);
    assert!(out.contains("Retrying from byte"), "{out}");
    assert_eq!(inspect(&a, &direct)["Id"], inspect(&b, &name)["Id"]);
    let seen = proxy.seen.lock().unwrap().clone();
    let resumed = seen.iter().find_map(|(line, range)| {
        let from: u64 = range
            .as_deref()?
            .strip_prefix("bytes=")?
            .trim_end_matches('-')
            .parse()
            .ok()?;
        (line.contains("/blobs/") && from > 0).then_some(from)
    });
    let from = resumed.unwrap_or_else(|| panic!("no ranged request: {seen:?}"));
    assert!(from > 1_000_000 && from <= 3_000_000, "resumed from {from}");
}

#[test]
fn https_registry_certificates_are_verified() {
    // A registry that is not insecure needs a name that is not loopback: `registry.skiff-test`,
    // mapped to 127.0.0.1 by an /etc/hosts bound in a private mount namespace per skiff call.
    let reg = registry_with(|d| {
        // A CA, and a server certificate it signs (webpki refuses a CA as the end entity).
        sh(&format!(
            "cd {0} && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=skiff-test-ca \
             -keyout ca.key -out ca.crt 2>/dev/null && \
             openssl req -newkey rsa:2048 -nodes -sha256 -subj /CN=registry.skiff-test \
             -keyout tls.key -out tls.csr 2>/dev/null && \
             printf 'subjectAltName=DNS:registry.skiff-test\\nbasicConstraints=CA:FALSE\\n' > ext && \
             openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -sha256 -extfile ext -out tls.crt 2>/dev/null",
            d.display()
        ));
        (
            format!(
                "  tls:\n    certificate: {0}/tls.crt\n    key: {0}/tls.key\n",
                d.display()
            ),
            String::new(),
        )
    });
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let hosts = p.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 registry.skiff-test localhost\n").unwrap();
    let ca = reg.dir.path().join("ca.crt");
    let name = format!("registry.skiff-test:{}/skiff-test/tls:1", reg.port);
    let in_ns = |root: &Path, trust: bool, args: &[&str]| -> Output {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/hosts && exec \"$@\"",
                hosts.display()
            ))
            .arg("sh")
            .arg(bin("skiff"))
            .arg("--root")
            .arg(root)
            .args(args)
            .env("DOCKER_CONFIG", p.join("docker"))
            .env_remove("SSL_CERT_DIR")
            .stdin(Stdio::null());
        if trust {
            c.env("SSL_CERT_FILE", &ca);
        } else {
            c.env_remove("SSL_CERT_FILE");
        }
        c.output().unwrap()
    };
    let a = p.join("a");
    ok(&a, &["import", rootfs.to_str().unwrap(), &name]);
    let o = in_ns(&a, true, &["push", &name]);
    assert!(o.status.success(), "{}", err_text(&o));

    let b = p.join("b");
    let o = in_ns(&b, false, &["pull", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("certificate"),
        "an unknown issuer is refused: {}",
        err_text(&o)
    );
    let o = in_ns(&b, true, &["pull", &name]);
    assert!(o.status.success(), "{}", err_text(&o));
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
    // --insecure skips verification.
    let c = p.join("c");
    let o = in_ns(&c, false, &["pull", "--insecure", &name]);
    assert!(o.status.success(), "{}", err_text(&o));
    // The registry's CA in the certs directory (docker's certs.d layout) is trusted for it.
    let certs = p.join("certs.d");
    let hostdir = certs.join(format!("registry.skiff-test:{}", reg.port));
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::copy(&ca, hostdir.join("ca.crt")).unwrap();
    let cfg = p.join("registries.json");
    std::fs::write(&cfg, json!({"certs-dir": certs}).to_string()).unwrap();
    let d = p.join("d");
    let o = {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/hosts && exec \"$@\"",
                hosts.display()
            ))
            .arg("sh")
            .arg(bin("skiff"))
            .arg("--root")
            .arg(&d)
            .args(["pull", &name])
            .env("SKIFF_REGISTRIES_CONFIG", &cfg)
            .env("DOCKER_CONFIG", p.join("docker"))
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    assert!(o.status.success(), "{}", err_text(&o));
    assert_eq!(inspect(&d, &name)["Id"], inspect(&a, &name)["Id"]);
}

#[test]
fn all_tags_push_and_pull() {
    let reg = registry();
    let (t, _) = setup();
    let p = t.path();
    let rootfs = p.join("rootfs");
    let a = p.join("a");
    let repo = format!("127.0.0.1:{}/skiff-test/many", reg.port);
    ok(
        &a,
        &["import", rootfs.to_str().unwrap(), &format!("{repo}:v1")],
    );
    std::fs::write(rootfs.join("etc/v2"), "2").unwrap();
    ok(
        &a,
        &["import", rootfs.to_str().unwrap(), &format!("{repo}:v2")],
    );
    ok(
        &a,
        &["tag", &format!("{repo}:v2"), &format!("{repo}:latest")],
    );
    let o = skiff(&a, &["push", "-a", &format!("{repo}:v1")]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("tag can't be used with --all-tags/-a"));
    let out = ok(&a, &["push", "--all-tags", &repo]);
    for tag in ["latest", "v1", "v2"] {
        assert!(out.contains(&format!("{tag}: digest: sha256:")), "{out}");
    }
    let b = p.join("b");
    let out = ok(&b, &["pull", "-a", &repo]);
    assert_eq!(out.lines().last().unwrap(), repo);
    for tag in ["latest", "v1", "v2"] {
        assert!(
            out.contains(&format!("{tag}: Pulling from skiff-test/many")),
            "{out}"
        );
        let name = format!("{repo}:{tag}");
        assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
    }
    assert_eq!(
        inspect(&b, &format!("{repo}:latest"))["Id"],
        inspect(&b, &format!("{repo}:v2"))["Id"]
    );
}

#[test]
fn schema1_manifests_get_a_clear_error() {
    // docker-registry 2.8 no longer stores schema1 manifests, so a few lines of HTTP serve one
    // the way old registries did.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // The HTTPS attempt, the /v2/ probe, then the manifest.
        for _ in 0..10 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            // A TLS hello (record type 0x16) is refused by closing, as plain HTTP servers do.
            if r.fill_buf()
                .map(|b| b.first() == Some(&0x16))
                .unwrap_or(true)
            {
                continue;
            }
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let (ct, body) = if line.contains("/manifests/") {
                (
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                    r#"{"schemaVersion":1,"name":"old/img","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}"#,
                )
            } else {
                ("application/json", "{}")
            };
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            if line.contains("/manifests/") {
                return;
            }
        }
    });
    let t = tempfile::tempdir().unwrap();
    // Plain HTTP: the HTTPS attempt on an insecure registry fails first (no TLS here).
    let o = skiff(t.path(), &["pull", &format!("127.0.0.1:{port}/old/img:1")]);
    let _ = server.join();
    assert_eq!(o.status.code(), Some(1));
    let e = err_text(&o);
    assert!(e.contains("schema 1") && e.contains("not supported"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

#[test]
fn client_certificates_from_the_certs_dir() {
    // A registry that requires a client certificate signed by the test's CA (mutual TLS).
    let pki = tempfile::Builder::new()
        .prefix("skiff-pki-")
        .tempdir()
        .unwrap();
    sh(&format!(
        "cd {0} && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=skiff-test-ca \
         -keyout ca.key -out ca.crt 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -sha256 -subj /CN=registry.skiff-test \
         -keyout tls.key -out tls.csr 2>/dev/null && \
         printf 'subjectAltName=DNS:registry.skiff-test\\nbasicConstraints=CA:FALSE\\n' > srv.ext && \
         openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
         -extfile srv.ext -out tls.crt 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -sha256 -subj /CN=skiff-client \
         -keyout client.key -out client.csr 2>/dev/null && \
         printf 'extendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > cli.ext && \
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
         -extfile cli.ext -out client.cert 2>/dev/null",
        pki.path().display()
    ));
    let d = pki.path().to_path_buf();
    let reg = registry_with(|_| {
        (
            format!(
                "  tls:\n    certificate: {0}/tls.crt\n    key: {0}/tls.key\n    clientcas:\n      - {0}/ca.crt\n",
                d.display()
            ),
            String::new(),
        )
    });
    let (t, _) = setup();
    let p = t.path();
    let hosts = p.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 registry.skiff-test localhost\n").unwrap();
    let name = format!("registry.skiff-test:{}/skiff-test/mtls:1", reg.port);
    let certs = p.join("certs.d");
    let hostdir = certs.join(format!("registry.skiff-test:{}", reg.port));
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::copy(d.join("ca.crt"), hostdir.join("ca.crt")).unwrap();
    let cfg = p.join("registries.json");
    std::fs::write(&cfg, json!({"certs-dir": certs}).to_string()).unwrap();
    let run = |root: &Path, args: &[&str]| -> Output {
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/hosts && exec \"$@\"",
                hosts.display()
            ))
            .arg("sh")
            .arg(bin("skiff"))
            .arg("--root")
            .arg(root)
            .args(args)
            .env("SKIFF_REGISTRIES_CONFIG", &cfg)
            .env("DOCKER_CONFIG", p.join("docker"))
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let a = p.join("a");
    ok(&a, &["import", p.join("rootfs").to_str().unwrap(), &name]);
    let o = run(&a, &["push", &name]);
    assert_eq!(o.status.code(), Some(1), "no client certificate yet");
    std::fs::copy(d.join("client.cert"), hostdir.join("client.cert")).unwrap();
    let o = run(&a, &["push", &name]);
    assert_eq!(o.status.code(), Some(1), "{}", err_text(&o));
    assert!(
        err_text(&o).contains("client.key"),
        "a .cert without its .key is named: {}",
        err_text(&o)
    );
    std::fs::copy(d.join("client.key"), hostdir.join("client.key")).unwrap();
    let o = run(&a, &["push", &name]);
    assert!(o.status.success(), "{}", err_text(&o));
    let b = p.join("b");
    let o = run(&b, &["pull", &name]);
    assert!(o.status.success(), "{}", err_text(&o));
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
}
