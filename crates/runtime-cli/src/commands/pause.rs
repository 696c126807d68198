//! `pause` and `resume` (owned by the cgroups work; stub until implemented).

/// Flags of `pause`/`resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// Run `pause`.
pub fn pause(_cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("container {:?}: pause is not implemented yet", a.id)
}

/// Run `resume`.
pub fn resume(_cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("container {:?}: resume is not implemented yet", a.id)
}
