//! `--init`: skiff's container init (crates/init), a static binary embedded in this crate at build
//! time. [`init_binary_path`] extracts it once per build under `<root>/init/`, and the container
//! code bind-mounts it read-only at [`INIT_PATH`] (docker's /sbin/docker-init) and runs
//! `INIT_PATH -- <args>` instead of `<args>` ([`apply`] does both on an OCI spec).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};

/// Where the init appears inside the container (docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The static init binary.
pub static INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/skiff-init"));

/// Identifies this build of the init (a hash of its bytes).
pub const INIT_ID: &str = env!("SKIFF_INIT_ID");

/// Errors of preparing the init.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Writing the binary failed.
    #[error("init binary {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// Building the OCI mount or editing the spec failed.
    #[error("init: {0}")]
    Spec(String),
}

/// Path of the init binary on the host, `<root>/init/skiff-init-<id>`, written atomically on first
/// use (mode 0755).
pub fn init_binary_path(root: &Path) -> Result<PathBuf, InitError> {
    let dir = root.join("init");
    let path = dir.join(format!("skiff-init-{INIT_ID}"));
    if fs::metadata(&path).is_ok_and(|m| m.len() == INIT_BINARY.len() as u64) {
        return Ok(path);
    }
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| InitError::Io { path: p, cause }
    };
    skiff_image::perms::open_root(root).map_err(err(root))?;
    skiff_image::perms::mkdir(&dir, skiff_image::perms::PRIVATE_DIR).map_err(err(&dir))?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), INIT_ID));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(&tmp)
        .map_err(err(&tmp))?;
    f.write_all(INIT_BINARY).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    drop(f);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(err(&tmp))?;
    fs::rename(&tmp, &path).map_err(err(&path))?;
    Ok(path)
}

/// The read-only bind mount of the init at [`INIT_PATH`].
pub fn init_mount(root: &Path) -> Result<Mount, InitError> {
    let src = init_binary_path(root)?;
    MountBuilder::default()
        .destination(INIT_PATH)
        .typ("bind")
        .source(src)
        .options(vec!["bind".to_string(), "ro".to_string()])
        .build()
        .map_err(|e| InitError::Spec(e.to_string()))
}

/// The process args with the init in front: `[INIT_PATH, "--", args...]`.
pub fn wrap_args(args: &[String]) -> Vec<String> {
    let mut v = vec![INIT_PATH.to_string(), "--".to_string()];
    v.extend(args.iter().cloned());
    v
}

/// Adds the init mount to `spec` and prepends the init to its process args.
pub fn apply(spec: &mut Spec, root: &Path) -> Result<(), InitError> {
    let m = init_mount(root)?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    let process = spec
        .process_mut()
        .as_mut()
        .ok_or_else(|| InitError::Spec("spec has no process".into()))?;
    let args = process.args().clone().unwrap_or_default();
    process.set_args(Some(wrap_args(&args)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_binary_is_static_elf() {
        assert_eq!(&INIT_BINARY[..4], b"\x7fELF");
        // A static binary has no PT_INTERP program header (no dynamic loader needed).
        let b = INIT_BINARY;
        let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16at(0x36), u16at(0x38));
        assert!(phnum > 0);
        for i in 0..phnum {
            let o = phoff + i * phentsize;
            let p_type = u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
            assert_ne!(p_type, 3, "skiff-init must be static (has PT_INTERP)");
        }
        let t = std::env::temp_dir().join(format!("skiff-init-unit-{}", std::process::id()));
        let p = init_binary_path(&t).unwrap();
        assert_eq!(fs::read(&p).unwrap(), INIT_BINARY);
        assert_eq!(init_binary_path(&t).unwrap(), p);
        let mut spec = Spec::default();
        apply(&mut spec, &t).unwrap();
        let args = spec.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(&args[..2], [INIT_PATH, "--"]);
        fs::remove_dir_all(&t).unwrap();
    }
}
