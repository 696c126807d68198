//! `update` (owned by the cgroups work; stub until implemented).

/// Flags of `update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// Run `update`.
pub fn run(_cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("container {:?}: update is not implemented yet", a.id)
}
