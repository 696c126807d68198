//! The one place the container code calls into volumes (`crate::volumes`, docker's `local`
//! driver with in-use tracking in its `container_volumes` table).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::volumes::Volumes;
use crate::Engine;

/// A volume as a container mount needs it.
#[derive(Debug, Clone)]
pub struct VolumeRef {
    /// Volume name (64 hex digits for anonymous volumes).
    pub name: String,
    /// The `_data` directory.
    pub mountpoint: PathBuf,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

/// Gets or creates the named volume (anonymous when `name` is `None`) and records that
/// `container_id` uses it.
pub fn use_volume(e: &Engine, name: Option<&str>, container_id: &str) -> Result<VolumeRef> {
    let vols = Volumes::open(&e.root).map_err(err)?;
    let v = vols.use_volume(name, container_id).map_err(err)?;
    Ok(VolumeRef {
        name: v.name.clone(),
        mountpoint: v.mountpoint.clone(),
    })
}

/// Copies what the image has at `dest` (resolved inside `rootfs`) into the volume on its first use
/// (docker semantics; a no-op once populated).
pub fn populate(e: &Engine, name: &str, rootfs: &Path, dest: &str) -> Result<()> {
    let vols = Volumes::open(&e.root).map_err(err)?;
    let v = vols.get(name).map_err(err)?;
    vols.populate_from_rootfs(&v, rootfs, dest).map_err(err)?;
    Ok(())
}

/// Drops the uses of a removed container; with `remove_anonymous` (`rm -v`, `--rm`) also removes
/// its anonymous volumes that nobody else uses.
pub fn release(e: &Engine, container_id: &str, remove_anonymous: bool) -> Result<()> {
    let vols = Volumes::open(&e.root).map_err(err)?;
    vols.release(container_id, remove_anonymous).map_err(err)?;
    Ok(())
}
