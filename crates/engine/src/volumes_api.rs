//! The one place the container code calls into volumes. The volume store proper
//! (`crates/engine/src/volumes.rs`, `skiff volume …`) comes from the extras work; until it is merged
//! these functions keep docker's on-disk shape (`<root>/volumes/<name>/_data`) so the swap is a
//! change of this file only.

use std::path::{Path, PathBuf};

use crate::error::{IoCtx, Result};
use crate::Engine;

/// A volume as a container mount needs it.
#[derive(Debug, Clone)]
pub struct VolumeRef {
    /// Volume name (64 hex digits for anonymous volumes).
    pub name: String,
    /// The `_data` directory.
    pub mountpoint: PathBuf,
    /// True when this call created it.
    pub created: bool,
}

/// Gets or creates the named volume (a new 64-hex name when `name` is `None`).
pub fn get_or_create(e: &Engine, name: Option<&str>) -> Result<VolumeRef> {
    let name = match name {
        Some(n) => n.to_string(),
        None => crate::names::new_id(),
    };
    let dir = e.root.join("volumes").join(&name);
    let data = dir.join("_data");
    let created = !data.exists();
    std::fs::create_dir_all(&data).ctx(|| format!("create volume {name}"))?;
    Ok(VolumeRef {
        name,
        mountpoint: data,
        created,
    })
}

/// Copies what the image has at the mount destination into a new, empty volume (docker semantics).
pub fn populate_from(v: &VolumeRef, image_dir: &Path) -> Result<()> {
    if !v.created || !image_dir.is_dir() {
        return Ok(());
    }
    let empty = std::fs::read_dir(&v.mountpoint)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", image_dir.display()))
        .arg(&v.mountpoint)
        .status()
        .ctx(|| format!("populate volume {}", v.name))?;
    if !st.success() {
        return Err(crate::Error::Other(format!(
            "populate volume {}: cp failed",
            v.name
        )));
    }
    Ok(())
}

/// Removes an anonymous volume (`rm -v`).
pub fn remove(e: &Engine, name: &str) -> Result<()> {
    let dir = e.root.join("volumes").join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(crate::Error::Io {
            what: format!("remove volume {name}"),
            source: err,
        }),
    }
}
