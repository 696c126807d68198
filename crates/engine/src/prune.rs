//! `container prune` and the container and image parts of `system prune`: removes stopped
//! containers (with docker's `until=` and `label=`/`label!=` filters), dangling or unused images
//! and unused user networks, and reports what went and how many bytes that freed.

use skiff_image::store::Store;

use crate::error::{Error, Result};
use crate::{Container, Engine};

/// What a prune removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Full ids of removed containers.
    pub containers: Vec<String>,
    /// Docker's `untagged: NAME` / `deleted: sha256:…` lines for images.
    pub images: Vec<String>,
    /// Bytes freed.
    pub reclaimed: u64,
}

/// One parsed `--filter` of a prune.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneFilter {
    /// `until=TS`: only objects created before this epoch second.
    Until(i64),
    /// `label=K` / `label=K=V`.
    Label(String, Option<String>),
    /// `label!=K` / `label!=K=V`.
    NotLabel(String, Option<String>),
}

/// Parses docker's `until` value: RFC 3339, a date, unix seconds, or a Go duration (`24h`, `10m`)
/// counted back from `now`.
pub fn parse_until(v: &str, now: i64) -> Option<i64> {
    if let Some(t) = skiff_image::time::parse_rfc3339(v) {
        return Some(t);
    }
    if v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') {
        return skiff_image::time::parse_rfc3339(&format!("{v}T00:00:00Z"));
    }
    if let Ok(f) = v.parse::<f64>() {
        return Some(f as i64);
    }
    // Go durations: a sequence of <number><unit>.
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
    }
    if !num.is_empty() || v.is_empty() {
        return None;
    }
    Some(now - total as i64)
}

/// Parses `--filter` values of a prune.
pub fn parse_filters(fs: &[String]) -> Result<Vec<PruneFilter>> {
    let now = skiff_image::time::now_unix();
    let mut out = Vec::new();
    for f in fs {
        let split_kv = |v: &str| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (v.to_string(), None),
        };
        if let Some(v) = f.strip_prefix("label!=") {
            let (k, v) = split_kv(v);
            out.push(PruneFilter::NotLabel(k, v));
        } else if let Some(v) = f.strip_prefix("label=") {
            let (k, v) = split_kv(v);
            out.push(PruneFilter::Label(k, v));
        } else if let Some(v) = f.strip_prefix("until=") {
            let t = parse_until(v, now).ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid filter 'until={v}': expected a timestamp or a duration such as 24h"
                ))
            })?;
            out.push(PruneFilter::Until(t));
        } else {
            let name = f.split_once('=').map(|(k, _)| k).unwrap_or(f);
            return Err(Error::Invalid(format!(
                "invalid filter '{name}': prune supports until, label and label!="
            )));
        }
    }
    Ok(out)
}

fn label_match(
    labels: &std::collections::BTreeMap<String, String>,
    k: &str,
    v: &Option<String>,
) -> bool {
    match v {
        Some(v) => labels.get(k) == Some(v),
        None => labels.contains_key(k),
    }
}

/// True when an object created at `created` (RFC 3339; unparsable counts as the epoch) with
/// `labels` passes every filter.
fn passes(
    filters: &[PruneFilter],
    created: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let created = skiff_image::time::parse_rfc3339(created).unwrap_or(0);
    filters.iter().all(|f| match f {
        PruneFilter::Until(t) => created < *t,
        PruneFilter::Label(k, v) => label_match(labels, k, v),
        PruneFilter::NotLabel(k, v) => !label_match(labels, k, v),
    })
}

/// True when container `c` passes every filter.
pub fn container_matches(c: &Container, filters: &[PruneFilter]) -> bool {
    passes(filters, &c.created, &c.config.labels)
}

/// Removes every stopped container that passes `filters`.
pub fn prune_containers(e: &Engine, filters: &[PruneFilter]) -> Result<PruneReport> {
    let mut r = PruneReport::default();
    for c in e.list()? {
        if c.is_active() || !container_matches(&c, filters) {
            continue;
        }
        let size = crate::commit::upper_size(e, &c.id);
        match e.remove(&c.id, false, false) {
            Ok(()) => {
                r.containers.push(c.id);
                r.reclaimed += size;
            }
            // Started or removed by someone else meanwhile: not ours to prune.
            Err(Error::State(_)) | Err(Error::NoSuchContainer(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(r)
}

/// Removes dangling images (with `all`, every image no container uses), then collects the blobs
/// and snapshots nothing references any more.
pub fn prune_images(e: &Engine, store: &Store, all: bool) -> Result<PruneReport> {
    let mut r = PruneReport::default();
    let used: std::collections::HashSet<String> = e.list()?.into_iter().map(|c| c.image).collect();
    for img in store.list()? {
        if used.contains(&img.id.to_string()) || !(img.tags.is_empty() || all) {
            continue;
        }
        for t in &img.tags {
            store.untag(t)?;
            r.images
                .push(format!("untagged: {}", skiff_image::names::familiar(t)));
        }
        store.delete_image(&img.id)?;
        r.images.push(format!("deleted: {}", img.id));
    }
    let gc = store.gc()?;
    if gc.ran {
        r.reclaimed += gc.bytes;
    }
    Ok(r)
}

/// Removes anonymous volumes that no container uses (the volume store's prune, which checks
/// use in its `container_volumes` table). Named volumes are kept, as docker does since API 1.42.
pub fn prune_anonymous_volumes(e: &Engine) -> Result<(Vec<String>, u64)> {
    let vols = crate::volumes::Volumes::open(&e.root).map_err(|x| Error::Other(x.to_string()))?;
    let rep = vols
        .prune(false, &[])
        .map_err(|x| Error::Other(x.to_string()))?;
    Ok((rep.deleted, rep.reclaimed))
}

/// `network prune`: removes every user-defined network that passes `filters` and has no
/// container on it (docker skips networks in use); returns the names removed. The built-in
/// `bridge`, `host` and `none` always stay.
pub fn prune_networks(e: &Engine, filters: &[PruneFilter]) -> Result<Vec<String>> {
    let now = crate::proc::now();
    let nets = e.net()?.list(&now).map_err(crate::network::net_err)?;
    let mut removed = Vec::new();
    for n in nets {
        if matches!(n.name.as_str(), "bridge" | "host" | "none") {
            continue;
        }
        if !passes(filters, &n.created, &n.labels) {
            continue;
        }
        // remove_network refuses a network with containers on it (in use: not pruned), and
        // another process may have removed it meanwhile.
        match e.remove_network(&n.id) {
            Ok(_) => removed.push(n.name),
            Err(Error::State(_)) | Err(Error::Invalid(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_forms() {
        assert_eq!(parse_until("24h", 100_000), Some(100_000 - 86_400));
        assert_eq!(parse_until("1h30m", 10_000), Some(10_000 - 5400));
        assert_eq!(parse_until("1700000000", 0), Some(1_700_000_000));
        assert_eq!(parse_until("2023-11-14T22:13:20Z", 0), Some(1_700_000_000));
        assert_eq!(parse_until("soon", 0), None);
        assert_eq!(parse_until("10", 0), Some(10));
    }

    #[test]
    fn filters() {
        let f = parse_filters(&["label=a=b".into(), "label!=x".into()]).unwrap();
        assert_eq!(
            f,
            vec![
                PruneFilter::Label("a".into(), Some("b".into())),
                PruneFilter::NotLabel("x".into(), None)
            ]
        );
        assert!(parse_filters(&["name=x".into()]).is_err());
    }
}
