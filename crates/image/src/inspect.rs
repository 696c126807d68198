//! Docker Engine API shapes of images (`image inspect`, `ImageSummary`), built here so that the
//! CLI and `skiff serve` print and send the same objects.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::names::familiar;
use crate::store::{ImageRecord, Store};
use crate::Digest;

fn docker_config(cfg: Option<&Value>) -> Value {
    let mut base = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
        "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null
    });
    if let (Some(Value::Object(src)), Value::Object(dst)) = (cfg, &mut base) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Docker's `image inspect` JSON for one image.
pub fn image_json(store: &Store, img: &ImageRecord) -> Result<Value> {
    let (cfg, raw) = store.config(&img.id)?;
    let rawv: Value =
        serde_json::from_slice(&raw).map_err(|e| Error::invalid("image config", e.to_string()))?;
    let repo_tags: Vec<String> = img.tags.iter().map(|t| familiar(t)).collect();
    let repo_digests: Vec<String> = img
        .repo_digests
        .iter()
        .map(|rd| match rd.split_once('@') {
            Some((r, d)) => format!("{}@{d}", familiar(r)),
            None => rd.clone(),
        })
        .collect();
    let layers: Vec<String> = cfg.rootfs.diff_ids.iter().map(|d| d.to_string()).collect();
    let chains = Digest::chain_ids(&cfg.rootfs.diff_ids);
    // docker's overlay2 layout for an image: its top layer is UpperDir, the others LowerDir
    // (top first, absent for one layer); MergedDir and WorkDir name where a mount would go.
    let mut dirs: Vec<std::path::PathBuf> =
        chains.iter().rev().map(|c| store.snapshot_dir(c)).collect();
    let mut graph = serde_json::Map::new();
    if !dirs.is_empty() {
        let top = dirs.remove(0);
        if !dirs.is_empty() {
            let lower: Vec<String> = dirs
                .iter()
                .map(|d| d.join("fs").display().to_string())
                .collect();
            graph.insert("LowerDir".into(), json!(lower.join(":")));
        }
        graph.insert(
            "MergedDir".into(),
            json!(top.join("merged").display().to_string()),
        );
        graph.insert(
            "UpperDir".into(),
            json!(top.join("fs").display().to_string()),
        );
        graph.insert(
            "WorkDir".into(),
            json!(top.join("work").display().to_string()),
        );
    }
    let comment = rawv
        .get("comment")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| cfg.history.last().and_then(|h| h.comment.clone()))
        .unwrap_or_default();
    let mut v = json!({
        "Id": img.id.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": cfg.created.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        // API 1.41 shows the committing container's id and config (docker-format images only).
        "Container": rawv.get("container").cloned().unwrap_or(json!("")),
        "ContainerConfig": docker_config(rawv.get("container_config")),
        "DockerVersion": rawv.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": cfg.author.clone().unwrap_or_default(),
        "Config": docker_config(cfg.config.as_ref()),
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": img.size,
        // Removed in API 1.44; the reference pair (docker 28 CLI, dockerd 20.10) still shows it.
        "VirtualSize": img.size,
        "GraphDriver": {"Data": graph, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": layers},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "Descriptor": {
            "mediaType": img.manifest_media_type,
            "digest": img.manifest_digest.to_string(),
            "size": img.manifest_size,
        },
    });
    if let Some(var) = &cfg.variant {
        v["Variant"] = json!(var);
    }
    Ok(v)
}

/// The API's `ImageSummary` (`GET /images/json`).
pub fn image_summary(store: &Store, img: &ImageRecord) -> Value {
    let labels = store
        .config(&img.id)
        .ok()
        .and_then(|(c, _)| c.config)
        .and_then(|c| c.get("Labels").cloned())
        .filter(|l| l.is_object())
        .unwrap_or(Value::Null);
    let repo_tags: Vec<String> = img.tags.iter().map(|t| familiar(t)).collect();
    let repo_digests: Vec<String> = img
        .repo_digests
        .iter()
        .map(|rd| match rd.split_once('@') {
            Some((r, d)) => format!("{}@{d}", familiar(r)),
            None => rd.clone(),
        })
        .collect();
    json!({
        "Id": img.id.to_string(),
        "ParentId": "",
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Created": img.created,
        "Size": img.size,
        "SharedSize": -1,
        "VirtualSize": img.size,
        "Labels": labels,
        "Containers": -1,
    })
}

/// The API's `HistoryResponseItem` list of an image (`GET /images/{name}/history`, `history`),
/// newest first: the top entry carries the image id and its tags, older ones `<missing>` (their
/// own images are not in the store, as with a pulled image in docker); sizes are the unpacked
/// sizes of the layers the non-empty entries made.
pub fn history(store: &Store, img: &ImageRecord) -> Result<Vec<Value>> {
    let (cfg, _) = store.config(&img.id)?;
    let chains = Digest::chain_ids(&cfg.rootfs.diff_ids);
    let mut sizes: Vec<u64> = chains
        .iter()
        .map(|c| store.snapshot_meta(c).map(|m| m.size).unwrap_or(0))
        .collect();
    let n = cfg.history.len();
    let mut out = Vec::with_capacity(n);
    for (i, h) in cfg.history.iter().enumerate().rev() {
        let empty = h.empty_layer.unwrap_or(false);
        let size = if empty { 0 } else { sizes.pop().unwrap_or(0) };
        let created = h
            .created
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
            .unwrap_or(0);
        let top = i + 1 == n;
        let tags: Vec<String> = if top {
            img.tags.iter().map(|t| familiar(t)).collect()
        } else {
            Vec::new()
        };
        out.push(json!({
            "Id": if top { img.id.to_string() } else { "<missing>".to_string() },
            "Created": created,
            "CreatedBy": h.created_by.clone().unwrap_or_default(),
            "Tags": if top { json!(tags) } else { Value::Null },
            "Size": size,
            "Comment": h.comment.clone().unwrap_or_default(),
        }));
    }
    Ok(out)
}
