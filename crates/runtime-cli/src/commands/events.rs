//! `events` (owned by the cgroups work; stub until implemented).

/// Flags of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// Run `events`.
pub fn run(_cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("container {:?}: events is not implemented yet", a.id)
}
