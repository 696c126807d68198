//! `skiff push`/`pull` against a real Debian `docker-registry` on 127.0.0.1 (temp storage, random
//! port): push → pull into an empty root with equal digests, multi-arch index selection with
//! `--platform`, `manifest inspect`, and `kill -9` during pull.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use skiff_tests::{bin, busybox_rootfs};

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry() -> Registry {
    let dir = tempfile::Builder::new()
        .prefix("skiff-registry-")
        .tempdir()
        .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's docker-registry must be installed");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Registry {
                child,
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start on port {port}");
}

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
    let lower = b["GraphDriver"]["Data"]["LowerDir"]
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
    // Missing tags are a clear error.
    let o = skiff(
        &root2,
        &[
            "pull",
            &format!("127.0.0.1:{}/skiff-test/bb:nope", reg.port),
        ],
    );
    assert_eq!(o.status.code(), Some(125));
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
    let lower = v["GraphDriver"]["Data"]["LowerDir"]
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
