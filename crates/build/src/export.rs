//! `--output`: the built image's filesystem as a directory (`type=local`) or a tar stream
//! (`type=tar`), read from an overlay of its layers; `type=docker|oci` archives and `type=image`
//! are the CLI's (the image store's save).

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use skiff_image::store::{ImageRecord, Store};
use skiff_image::sys;

use crate::copy::{Found, SrcRoot, WriteOpts};
use crate::run::Mounted;
use crate::BuildError;

/// One `-o` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR` (or a bare path).
    Local(std::path::PathBuf),
    /// `type=tar,dest=FILE|-` (or `-`).
    Tar(String),
    /// `type=docker|oci,dest=FILE|-`.
    Archive {
        /// `oci` rather than docker.
        oci: bool,
        /// Destination (`-`: stdout).
        dest: String,
    },
    /// `type=image[,name=a,b]`: the default (extra names).
    Image(Vec<String>),
}

/// Parses `-o` as buildx does (`type=…,dest=…`; a bare path is `local`, `-` is `tar`).
pub fn parse_output(s: &str) -> Result<Output, String> {
    if !s.contains('=') {
        return Ok(if s == "-" {
            Output::Tar("-".into())
        } else {
            Output::Local(s.into())
        });
    }
    let mut typ = None;
    let mut dest = None;
    let mut names = Vec::new();
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--output {s}: expected key=value, got {kv:?}"))?;
        match k {
            "type" => typ = Some(v.to_string()),
            "dest" => dest = Some(v.to_string()),
            "name" => names.extend(v.split(';').map(String::from)),
            "push" if v == "false" => {}
            "push" => {
                return Err(format!(
                    "--output {s}: push is not supported; use skiff push"
                ))
            }
            _ => {}
        }
    }
    let need = |d: Option<String>| d.ok_or_else(|| format!("--output {s}: dest is required"));
    match typ.as_deref() {
        Some("local") => Ok(Output::Local(need(dest)?.into())),
        Some("tar") => Ok(Output::Tar(need(dest)?)),
        Some("docker") => Ok(Output::Archive {
            oci: false,
            dest: need(dest)?,
        }),
        Some("oci") => Ok(Output::Archive {
            oci: true,
            dest: need(dest)?,
        }),
        Some("image") | Some("moby") => Ok(Output::Image(names)),
        Some(t) => Err(format!("--output {s}: unsupported type {t:?}")),
        None => Err(format!("--output {s}: type is required")),
    }
}

fn with_root<T>(
    store: &Store,
    img: &ImageRecord,
    f: impl FnOnce(&Path) -> Result<T, BuildError>,
) -> Result<T, BuildError> {
    let lowers = store.layer_dirs(img)?;
    let tmp = store.temp_dir("build-export")?;
    let r = (|| {
        let m = Mounted::new(&lowers, &tmp)?;
        let r = f(&m.root);
        drop(m);
        r
    })();
    let _ = sys::remove_all(&tmp);
    r
}

/// Copies the image's filesystem into `dest` (created 0755 when missing; never through a
/// symlink), owners and modes kept.
pub fn to_dir(store: &Store, img: &ImageRecord, dest: &Path) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(dest) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            return Err(BuildError::Other(format!(
                "--output: {} exists and is not a directory",
                dest.display()
            )))
        }
        Err(_) => {
            skiff_image::perms::mkdir_all(dest, 0o755).map_err(|e| {
                BuildError::Other(format!("--output: create {}: {e}", dest.display()))
            })?;
        }
    }
    let dfd = sys::open_dir(dest)
        .map_err(|e| BuildError::Other(format!("--output: open {}: {e}", dest.display())))?;
    with_root(store, img, |root| {
        let src = SrcRoot {
            fd: sys::open_dir(root).map_err(|e| BuildError::Other(e.to_string()))?,
            ignore: None,
            keep_owner: true,
            index: None,
        };
        let top = Found {
            rel: String::new(),
            is_dir: true,
        };
        src.copy_into(&top, dfd.as_fd(), OsStr::new(""), &WriteOpts::default())
            .map_err(|e| BuildError::Other(format!("--output {}: {e}", dest.display())))
    })
}

/// Writes the image's filesystem as a tar stream.
pub fn to_tar(store: &Store, img: &ImageRecord, out: &mut dyn Write) -> Result<(), BuildError> {
    with_root(store, img, |root| {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        b.mode(tar::HeaderMode::Complete);
        for e in std::fs::read_dir(root).map_err(|e| BuildError::Other(e.to_string()))? {
            let e = e.map_err(|e| BuildError::Other(e.to_string()))?;
            let name = e.file_name();
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).map_err(|e| BuildError::Other(e.to_string()))?;
            let r = if md.is_dir() {
                b.append_dir_all(&name, &p)
            } else {
                b.append_path_with_name(&p, &name)
            };
            r.map_err(|e| BuildError::Other(format!("--output tar: {e}")))?;
        }
        b.finish()
            .map_err(|e| BuildError::Other(format!("--output tar: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_forms() {
        assert_eq!(parse_output("out").unwrap(), Output::Local("out".into()));
        assert_eq!(parse_output("-").unwrap(), Output::Tar("-".into()));
        assert_eq!(
            parse_output("type=local,dest=/x").unwrap(),
            Output::Local("/x".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=a.tar").unwrap(),
            Output::Archive {
                oci: true,
                dest: "a.tar".into()
            }
        );
        assert_eq!(
            parse_output("type=image,name=a:1").unwrap(),
            Output::Image(vec!["a:1".into()])
        );
        assert!(parse_output("type=local").is_err());
        assert!(parse_output("type=registry,dest=x").is_err());
        assert!(parse_output("type=image,push=true").is_err());
    }
}
