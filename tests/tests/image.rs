//! `skiff` image commands end to end: import → inspect → save → load, listing formats and filters,
//! tag/rmi/prune, skopeo interoperability, hostile archives and crash safety of `load`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use skiff_tests::{bin, busybox_rootfs};

use skiff_tests::{skiff, skiff_ok as ok};

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A temp dir with a busybox rootfs at `rootfs/` and an empty store root at `root/`.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("skiff-image-")
        .tempdir()
        .unwrap();
    let rootfs = t.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let root = t.path().join("root");
    (t, rootfs, root)
}

fn inspect(root: &Path, image: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("content/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn import_inspect_save_load_round_trip() {
    let (t, rootfs, root) = setup();
    let id = ok(
        &root,
        &[
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "ENV A=1",
            rootfs.to_str().unwrap(),
            "skiff-test/bb:v1",
        ],
    );
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let v = inspect(&root, "skiff-test/bb:v1");
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], serde_json::json!(["skiff-test/bb:v1"]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(v["Size"].as_u64().unwrap() > 1_000_000);
    let lower = v["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&lower).join("bin/busybox").is_file());
    assert!(std::fs::symlink_metadata(Path::new(&lower).join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Lookup by id prefix and --format.
    assert_eq!(
        ok(
            &root,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Id}} {{json .Config.Cmd}}",
                &id[7..19]
            ]
        )
        .trim(),
        format!("{id} [\"sh\"]")
    );

    let tar = t.path().join("save.tar");
    ok(
        &root,
        &["save", "-o", tar.to_str().unwrap(), "skiff-test/bb:v1"],
    );
    let root2 = t.path().join("root2");
    let out = ok(&root2, &["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: skiff-test/bb:v1");
    let v2 = inspect(&root2, "skiff-test/bb:v1");
    assert_eq!(v2["Id"], v["Id"]);
    assert_eq!(v2["RootFS"], v["RootFS"]);
    assert_eq!(v2["Size"], v["Size"]);

    // load from stdin too.
    let root3 = t.path().join("root3");
    let o = Command::new(bin("skiff"))
        .arg("--root")
        .arg(&root3)
        .arg("load")
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ok(&root3, &["images", "-q", "--no-trunc"]).trim(), id);

    // tag / rmi semantics.
    ok(&root, &["tag", "skiff-test/bb:v1", "other:v2"]);
    let o = skiff(&root, &["rmi", &id[7..19]]);
    assert!(
        !o.status.success(),
        "removing an id with two names must need -f"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be forced"));
    assert_eq!(ok(&root, &["rmi", "other:v2"]).trim(), "Untagged: other:v2");
    let out = ok(&root, &["rmi", "skiff-test/bb:v1"]);
    assert!(
        out.contains("Untagged: skiff-test/bb:v1") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");
    assert_eq!(blob_count(&root), 0, "rmi must leave no orphan blobs");
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        0
    );
    let o = skiff(&root, &["image", "inspect", "skiff-test/bb:v1"]);
    assert!(!o.status.success());
}

#[test]
fn images_formats_filters_history_prune() {
    let (_t, rootfs, root) = setup();
    let old = ok(
        &root,
        &["import", rootfs.to_str().unwrap(), "skiff-test/list:1"],
    )
    .trim()
    .to_string();
    std::fs::write(rootfs.join("etc/extra"), "x").unwrap();
    let new = ok(
        &root,
        &[
            "import",
            "-m",
            "second",
            rootfs.to_str().unwrap(),
            "skiff-test/list:1",
        ],
    )
    .trim()
    .to_string();
    assert_ne!(old, new);

    let table = ok(&root, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(
        lines[0].contains("TAG       IMAGE ID       CREATED"),
        "docker's column padding: {table}"
    );
    assert!(
        table.contains("<none>"),
        "the old image is dangling: {table}"
    );
    assert!(ok(&root, &["images", "--digests"])
        .lines()
        .next()
        .unwrap()
        .contains("DIGEST"));

    let dangling = ok(
        &root,
        &["images", "--filter", "dangling=true", "-q", "--no-trunc"],
    );
    assert_eq!(dangling.trim(), old);
    let tagged = ok(
        &root,
        &["images", "-f", "dangling=false", "-q", "--no-trunc"],
    );
    assert_eq!(tagged.trim(), new);
    assert_eq!(
        ok(
            &root,
            &["images", "--filter", "reference=skiff-test/*", "-q"]
        )
        .trim(),
        &new[7..19]
    );
    assert_eq!(
        ok(&root, &["images", "--filter", "reference=nomatch*", "-q"]),
        ""
    );
    assert_eq!(
        ok(&root, &["images", "skiff-test/list", "-q"]).trim(),
        &new[7..19]
    );

    let json_line = ok(
        &root,
        &["images", "--format", "{{json .}}", "skiff-test/list:1"],
    );
    let j: Value = serde_json::from_str(json_line.trim()).unwrap();
    for k in [
        "Containers",
        "CreatedAt",
        "CreatedSince",
        "Digest",
        "ID",
        "Repository",
        "Size",
        "Tag",
    ] {
        assert!(j.get(k).is_some(), "{k} missing in {j}");
    }
    assert_eq!(j["Repository"], "skiff-test/list");
    assert_eq!(j["Tag"], "1");
    let t = ok(
        &root,
        &[
            "images",
            "--format",
            "table {{.Repository}}:{{.Tag}}\t{{.ID}}",
            "skiff-test/list",
        ],
    );
    assert_eq!(
        t.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["REPOSITORY:TAG", "IMAGE", "ID"]
    );

    let h = ok(&root, &["history", "skiff-test/list:1"]);
    let hl: Vec<&str> = h.lines().collect();
    assert!(
        hl[0].starts_with("IMAGE") && hl[0].contains("CREATED BY") && hl[0].contains("COMMENT"),
        "{h}"
    );
    assert!(
        hl[1].starts_with(&new[7..19]) && hl[1].contains("second"),
        "{h}"
    );

    // prune removes only the dangling one, and its blobs.
    let blobs_before = blob_count(&root);
    let p = ok(&root, &["image", "prune", "-f"]);
    assert!(p.contains(&format!("deleted: {old}")), "{p}");
    assert!(p.contains("Total reclaimed space:"));
    assert_eq!(ok(&root, &["images", "-q", "--no-trunc"]).trim(), new);
    assert_eq!(
        blob_count(&root),
        blobs_before - 3,
        "old manifest, config and layer are gone"
    );
    ok(&root, &["image", "prune", "-a", "-f"]);
    assert_eq!(blob_count(&root), 0);
}

#[test]
fn skopeo_reads_the_store_and_archives() {
    let (t, rootfs, root) = setup();
    ok(
        &root,
        &["import", rootfs.to_str().unwrap(), "skiff-test/sk:v1"],
    );
    let p = t.path();
    let d1 = p.join("d1");
    sh(&format!(
        "skopeo copy oci:{}/content:docker.io/skiff-test/sk:v1 dir:{}",
        root.display(),
        d1.display()
    ));
    assert!(d1.join("manifest.json").is_file());

    let dar = p.join("docker.tar");
    ok(
        &root,
        &["save", "-o", dar.to_str().unwrap(), "skiff-test/sk:v1"],
    );
    let d2 = p.join("d2");
    sh(&format!(
        "skopeo copy docker-archive:{} dir:{}",
        dar.display(),
        d2.display()
    ));
    let oar = p.join("oci.tar");
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oar.to_str().unwrap(),
            "skiff-test/sk:v1",
        ],
    );
    let d3 = p.join("d3");
    sh(&format!(
        "skopeo copy oci-archive:{}:v1 dir:{}",
        oar.display(),
        d3.display()
    ));
    let inspect_cfg = sh(&format!(
        "skopeo inspect --config oci-archive:{}:v1",
        oar.display()
    ));
    assert!(inspect_cfg.contains("\"diff_ids\""));

    // Archives written by skopeo load into skiff (legacy docker-archive with plain layers, and oci).
    let sk_dar = p.join("from-skopeo.tar");
    sh(&format!(
        "skopeo copy dir:{} docker-archive:{}:skiff-test/fromskopeo:v2",
        d2.display(),
        sk_dar.display()
    ));
    let sk_oar = p.join("from-skopeo-oci.tar");
    sh(&format!(
        "skopeo copy dir:{} oci-archive:{}:skiff-test/fromskopeo-oci:v3",
        d2.display(),
        sk_oar.display()
    ));
    let root2 = p.join("root2");
    assert_eq!(
        ok(&root2, &["load", "-i", sk_dar.to_str().unwrap()]).trim(),
        "Loaded image: skiff-test/fromskopeo:v2"
    );
    ok(&root2, &["load", "-i", sk_oar.to_str().unwrap()]);
    let a = inspect(&root, "skiff-test/sk:v1");
    let b = inspect(&root2, "skiff-test/fromskopeo:v2");
    assert_eq!(a["Id"], b["Id"], "same config through skopeo");
    assert_eq!(a["RootFS"], b["RootFS"]);
    let ids = ok(&root2, &["images", "-q"]);
    assert_eq!(ids.lines().count(), 2, "{ids}");
}

/// A docker-archive whose single layer is `layer` (a plain tar file).
fn archive_with_layer(dir: &Path, layer: &Path) -> PathBuf {
    let diff = sh(&format!("sha256sum {} | cut -d' ' -f1", layer.display()))
        .trim()
        .to_string();
    let a = dir.join("arch");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::copy(layer, a.join("layer.tar")).unwrap();
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    std::fs::write(a.join("config.json"), cfg).unwrap();
    std::fs::write(
        a.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["skiff-test/hostile:1"],"Layers":["layer.tar"]}]"#,
    )
    .unwrap();
    let out = dir.join("hostile.tar");
    sh(&format!(
        "tar -C {} -cf {} manifest.json config.json layer.tar",
        a.display(),
        out.display()
    ));
    out
}

#[test]
fn hostile_archive_is_refused_and_nothing_escapes() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    let work = p.join("w/x/y");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(p.join("w/x/escape"), "payload").unwrap();
    // GNU tar -P keeps the "../" prefix: the entry is literally "../escape".
    let layer = p.join("layer.tar");
    sh(&format!(
        "cd {} && tar -cPf {} ../escape",
        work.display(),
        layer.display()
    ));
    std::fs::remove_file(p.join("w/x/escape")).unwrap();
    let arch = archive_with_layer(p, &layer);
    let root = p.join("root");
    let o = skiff(&root, &["load", "-i", arch.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("skiff: ") && err.contains("unsafe layer entry") && err.contains(".."),
        "{err}"
    );
    assert_eq!(
        ok(&root, &["images", "-q"]),
        "",
        "no half image may be listed"
    );
    assert!(!root.join("escape").exists() && !root.join("snapshots/escape").exists());
    let snaps: Vec<_> = std::fs::read_dir(root.join("snapshots")).unwrap().collect();
    assert!(
        snaps.is_empty(),
        "no snapshot committed for the hostile layer"
    );
}

#[test]
fn load_killed_at_random_points_never_shows_a_half_image() {
    let (t, rootfs, root) = setup();
    // ~60 MB of incompressible data across several files makes load take long enough to interrupt.
    sh(&format!(
        "for i in 1 2 3; do head -c 20000000 /dev/urandom > {}/data$i; done",
        rootfs.display()
    ));
    let src_root = t.path().join("src");
    ok(
        &src_root,
        &["import", rootfs.to_str().unwrap(), "skiff-test/crash:1"],
    );
    let tar = t.path().join("crash.tar");
    ok(
        &src_root,
        &["save", "-o", tar.to_str().unwrap(), "skiff-test/crash:1"],
    );
    let want = inspect(&src_root, "skiff-test/crash:1")["Id"].clone();

    let delays_ms = [5u64, 20, 40, 80, 120, 200, 300, 450];
    let mut interrupted = 0;
    for d in delays_ms {
        let mut child = Command::new(bin("skiff"))
            .arg("--root")
            .arg(&root)
            .args(["load", "-q", "-i"])
            .arg(&tar)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(d));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        // SIGKILL.
        let _ = child.kill();
        let _ = child.wait();
        // Whatever happened, listing works and shows either nothing or the whole image.
        let ids = ok(&root, &["images", "-q", "--no-trunc"]);
        for id in ids.lines() {
            assert_eq!(id, want.as_str().unwrap());
            let v = inspect(&root, id);
            let lower = v["GraphDriver"]["Data"]["UpperDir"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(
                std::fs::metadata(Path::new(&lower).join("data3"))
                    .unwrap()
                    .len(),
                20_000_000
            );
        }
        if !ids.is_empty() {
            ok(&root, &["rmi", "skiff-test/crash:1"]);
        }
    }
    assert!(
        interrupted > 0,
        "no load was interrupted; the test proves nothing"
    );
    // The store still works: the next open sweeps temp files, and a full load succeeds.
    ok(&root, &["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "temp files swept"
    );
    assert_eq!(inspect(&root, "skiff-test/crash:1")["Id"], want);
    ok(&root, &["image", "prune", "-a", "-f"]);
    assert_eq!(blob_count(&root), 0, "no orphan blobs after prune");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("snapshots")).unwrap().collect();
    assert!(leftovers.is_empty());
}

/// `skiff save` writes a docker-archive that Debian's podman loads (in a private podman root, vfs
/// driver), keeping the image id and tag, and `skiff save --format oci` an archive podman loads too.
#[test]
fn podman_loads_skiff_save_archives() {
    let (t, rootfs, root) = setup();
    ok(
        &root,
        &["import", rootfs.to_str().unwrap(), "skiff-test/pod:v1"],
    );
    let id = ok(
        &root,
        &["image", "inspect", "-f", "{{.Id}}", "skiff-test/pod:v1"],
    );
    let id = id.trim().trim_start_matches("sha256:").to_string();
    let p = t.path();
    let podman = format!(
        "podman --root {0}/podman/root --runroot {0}/podman/run --storage-driver vfs",
        p.display()
    );
    let dar = p.join("docker.tar");
    ok(
        &root,
        &["save", "-o", dar.to_str().unwrap(), "skiff-test/pod:v1"],
    );
    let out = sh(&format!("{podman} load -i {}", dar.display()));
    assert!(out.contains("skiff-test/pod:v1"), "{out}");
    let got = sh(&format!(
        "{podman} image inspect --format '{{{{.Id}}}}' skiff-test/pod:v1"
    ));
    assert_eq!(got.trim(), id, "podman sees the same image id");
    let oar = p.join("oci.tar");
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oar.to_str().unwrap(),
            "skiff-test/pod:v1",
        ],
    );
    let out = sh(&format!("{podman} load -i {}", oar.display()));
    assert!(out.contains("Loaded image"), "{out}");
    // podman's vfs layers are plain directories under the temp dir; nothing stays mounted.
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(p.to_str().unwrap()));
}
