//! Loading and validating a bundle's config.json, with one-line errors naming the field at fault.

use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// Read `<bundle>/config.json` and validate it; returns the spec and the absolute rootfs path.
pub fn load(bundle: &Path) -> Result<(Spec, PathBuf)> {
    let path = bundle.join("config.json");
    let data =
        std::fs::read(&path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let spec = parse(&data)?;
    for m in spec.mounts().iter().flatten() {
        let ignored = crate::rootfs::ignored_bind_data(m);
        if !ignored.is_empty() {
            eprintln!(
                "skiff-runtime: warning: mount {}: options {ignored:?} ignored: filesystem parameters have no effect on a bind mount",
                m.destination().display()
            );
        }
    }
    let rootfs = rootfs_path(&spec, bundle)?;
    Ok((spec, rootfs))
}

/// Parse config.json bytes; errors name the JSON path of the bad field.
pub fn parse(data: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // The path and serde's message quote keys and values of the document as they are.
        Error::Config(one_line(&if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }))
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// `msg` with control characters escaped, so an error quoting the document stays on one line.
fn one_line(msg: &str) -> String {
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Semantic checks beyond the JSON schema.
pub fn validate(spec: &Spec) -> Result<()> {
    if spec.version().is_empty() {
        return Err(Error::Config("ociVersion: missing".into()));
    }
    if !spec.version().starts_with("1.") {
        return Err(Error::Config(format!(
            "ociVersion: unsupported version {:?} (want 1.x)",
            spec.version()
        )));
    }
    if spec.root().is_none() {
        return Err(Error::Config("root: missing".into()));
    }
    // process is optional at create; `start` fails when it is absent (runtime-spec).
    if let Some(p) = spec.process() {
        crate::process::validate(p)?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::Config(format!(
                "mounts[{i}].destination: {:?} must be an absolute path",
                m.destination()
            )));
        }
        crate::rootfs::mount_options(m)?;
    }
    crate::procattr::validate(spec)?;
    let plan = crate::namespaces::plan(spec)?;
    let has = |f: i32| plan.new_flags & f != 0 || plan.join.iter().any(|(j, _)| *j == f);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(libc::CLONE_NEWUTS) {
        return Err(Error::Config(
            "hostname: cannot set a hostname without a private UTS namespace".into(),
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(libc::CLONE_NEWUTS) {
        return Err(Error::Config(
            "domainname: cannot set a domainname without a private UTS namespace".into(),
        ));
    }
    Ok(())
}

fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root: missing".into()))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(Error::Config("root.path: empty".into()));
    }
    let abs = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    let canon = abs
        .canonicalize()
        .map_err(|e| Error::Config(format!("root.path: {}: {e}", abs.display())))?;
    if !canon.is_dir() {
        return Err(Error::Config(format!(
            "root.path: {} is not a directory",
            canon.display()
        )));
    }
    Ok(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/fuzz_targets/runtime_config.rs): serde_path_to_error's path quotes an
    /// unknown key as written, so a key holding a carriage return (or a newline, or an escape
    /// sequence) split the one-line error and could rewrite the terminal line it was printed on.
    #[test]
    fn error_quoting_the_document_is_one_line() {
        let e = parse(br#"{"oc;Ve\rsioex":"#).unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("oc;Ve\\rsioex"), "{e}");
        let e = parse(br#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid\n\u001b[2J"}]}}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("linux.namespaces[0].type"), "{e}");
    }
}
