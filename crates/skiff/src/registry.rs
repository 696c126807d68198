//! `pull`, `push`, `login`, `logout`, `manifest inspect`: wired once the registry client lands.

use anyhow::{bail, Result};
use skiff_image::Store;

use crate::images::{LoginArgs, LogoutArgs, ManifestInspectArgs, PullArgs, PushArgs};

/// `skiff pull`.
pub fn pull(_store: &Store, _a: &PullArgs) -> Result<i32> {
    bail!("pull is not available yet")
}
/// `skiff push`.
pub fn push(_store: &Store, _a: &PushArgs) -> Result<i32> {
    bail!("push is not available yet")
}
/// `skiff login`.
pub fn login(_a: &LoginArgs) -> Result<i32> {
    bail!("login is not available yet")
}
/// `skiff logout`.
pub fn logout(_a: &LogoutArgs) -> Result<i32> {
    bail!("logout is not available yet")
}
/// `skiff manifest inspect`.
pub fn manifest_inspect(_a: &ManifestInspectArgs) -> Result<i32> {
    bail!("manifest inspect is not available yet")
}
