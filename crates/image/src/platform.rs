//! Platforms (`os/arch[/variant]`): parsing, the host default, normalization and matching against
//! the entries of an index.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::Descriptor;

/// A platform as written in indexes and configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture in GOARCH spelling (amd64, arm64, arm, 386, ...).
    pub architecture: String,
    /// Operating system in GOOS spelling.
    pub os: String,
    /// Architecture variant (v7, v8, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
    /// OS version (Windows only).
    #[serde(
        rename = "os.version",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_version: Option<String>,
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let v = variant.map(str::to_string).filter(|v| !v.is_empty());
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), v.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), v.filter(|v| v != "v8" && v != "8")),
        "armhf" | "armel" | "arm" => {
            let var = match (arch, v.as_deref()) {
                ("armhf", None) => Some("v7".into()),
                ("armel", None) => Some("v6".into()),
                (_, None) => Some("v7".into()),
                (_, Some(x)) if !x.starts_with('v') => Some(format!("v{x}")),
                _ => v,
            };
            ("arm".into(), var)
        }
        "i386" | "i686" | "386" => ("386".into(), v),
        other => (other.to_lowercase(), v),
    }
}

impl Platform {
    /// Parses `os/arch[/variant]` (or just `arch`, meaning linux) as docker's `--platform`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !a.is_empty() && *a != "linux" => ("linux", *a, None),
            [o, a] if !o.is_empty() && !a.is_empty() => (*o, *a, None),
            [o, a, v] if !o.is_empty() && !a.is_empty() && !v.is_empty() => (*o, *a, Some(*v)),
            _ => {
                return Err(Error::invalid(
                    "platform",
                    format!("{s:?}: expected os/arch[/variant]"),
                ))
            }
        };
        Ok(Platform {
            os: os.to_lowercase(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
        .normalized())
    }

    /// The platform of this machine.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: if arch == "arm" {
                Some("v7".into())
            } else {
                None
            },
            os_version: None,
        }
    }

    /// Canonical spelling (amd64, arm64 without the default v8 variant, arm with an explicit variant).
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, self.variant.as_deref());
        Platform {
            os: self.os.to_lowercase(),
            architecture,
            variant,
            os_version: self.os_version.clone(),
        }
    }

    /// True when an image for `other` runs on `self` (exact after normalization; a wanted platform
    /// without variant accepts any variant).
    pub fn matches(&self, other: &Platform) -> bool {
        let a = self.normalized();
        let b = other.normalized();
        a.os == b.os
            && a.architecture == b.architecture
            && (a.variant.is_none() || a.variant == b.variant)
    }

    /// Picks the manifest for this platform from an index: exact variant match first, then any
    /// variant of the architecture. Entries without platform (attestations) are skipped.
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        let want = self.normalized();
        let candidates = manifests.iter().filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
        });
        let mut fallback = None;
        for d in candidates {
            let p = d
                .platform
                .as_ref()
                .map(Platform::normalized)
                .unwrap_or_default();
            if p.os == want.os && p.architecture == want.architecture {
                if p.variant == want.variant {
                    return Some(d);
                }
                if want.variant.is_none() && fallback.is_none() {
                    fallback = Some(d);
                }
            }
        }
        fallback
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn desc(p: &str) -> Descriptor {
        let mut d = Descriptor::new(crate::spec::OCI_MANIFEST, Digest::of(p.as_bytes()), 1);
        d.platform = Some(Platform::parse(p).unwrap());
        d
    }

    #[test]
    fn parse_and_select() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(Platform::parse("arm").unwrap().to_string(), "linux/arm/v7");
        assert!(Platform::parse("a/b/c/d").is_err());
        let list = vec![
            desc("linux/amd64"),
            desc("linux/arm/v6"),
            desc("linux/arm/v7"),
            desc("linux/arm64"),
        ];
        let pick = |s: &str| {
            Platform::parse(s)
                .unwrap()
                .select(&list)
                .map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/arm64/v8"), Some(list[3].digest.clone()));
        assert_eq!(pick("linux/arm/v7"), Some(list[2].digest.clone()));
        assert_eq!(pick("linux/x86_64"), Some(list[0].digest.clone()));
        assert_eq!(pick("linux/s390x"), None);
    }
}
