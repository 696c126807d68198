//! Image names as the store keeps them (fully qualified `registry/path:tag`) and as docker shows
//! them (familiar: `busybox:latest`, `myhost:5000/a/b:v1`).

use crate::error::{Error, Result};

/// The default registry host.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed name: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Registry host (with port).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub path: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<String>,
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

impl Name {
    /// Parses a docker reference, normalizing `busybox` to `docker.io/library/busybox`.
    pub fn parse(s: &str) -> Result<Name> {
        let bad = |why: &str| Error::invalid("reference format", format!("{s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                crate::digest::Digest::parse(d).map_err(|_| bad("invalid digest"))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
                && !t.starts_with('.')
                && !t.starts_with('-');
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p))
                if d.contains('.')
                    || d.contains(':')
                    || d == "localhost"
                    || d.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (d.to_string(), p.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !path
            .split('/')
            .all(|c| c.split("__").all(|_| true) && valid_component(c))
        {
            return Err(bad("repository name must be lowercase"));
        }
        Ok(Name {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path:tag`, with `latest` when neither tag nor digest was given.
    pub fn tagged(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(format!("{}:{t}", self.repo())),
            (None, None) => Some(format!("{}:latest", self.repo())),
            (None, Some(_)) => None,
        }
    }
}

/// Normalizes a user-given name to the stored `domain/path:tag` form (adds `:latest`).
pub fn normalize(s: &str) -> Result<String> {
    let n = Name::parse(s)?;
    n.tagged()
        .ok_or_else(|| Error::invalid("reference format", format!("{s:?} has a digest but no tag")))
}

/// Docker's familiar form of a stored name: drops `docker.io/` and `library/`.
pub fn familiar(full: &str) -> String {
    let s = full.strip_prefix("docker.io/").unwrap_or(full);
    match s.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest.to_string(),
        _ => s.to_string(),
    }
}

/// Splits a stored `repo:tag` into familiar repository and tag.
pub fn split_tag(full: &str) -> (String, String) {
    match full.rfind(':') {
        Some(i) if !full[i + 1..].contains('/') => {
            (familiar(&full[..i]), full[i + 1..].to_string())
        }
        _ => (familiar(full), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalization() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize("a/b:1").unwrap(), "docker.io/a/b:1");
        assert_eq!(
            normalize("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/x/y:v").unwrap(),
            "127.0.0.1:5000/x/y:v"
        );
        assert!(normalize("Busybox").is_err());
        assert_eq!(familiar("docker.io/library/busybox"), "busybox");
        assert_eq!(
            split_tag("127.0.0.1:5000/x:v"),
            ("127.0.0.1:5000/x".into(), "v".into())
        );
    }
}
