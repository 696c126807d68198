//! `pause` and `resume`: freeze and thaw every process of a container through its cgroup (v1
//! freezer or v2 `cgroup.freeze`), returning only once the kernel reports the new state.

use skiff_runtime::state::{State, Status};

/// Flags of `pause`/`resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// Run `pause`.
pub fn pause(cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    match st.status(&cli.root) {
        Status::Running | Status::Created => {}
        s => anyhow::bail!(
            "container {:?} is {s}: container not running or created",
            a.id
        ),
    }
    if st.cgroup.paths.is_empty() {
        anyhow::bail!(
            "container {:?}: pause needs a cgroup (cgroups are disabled)",
            a.id
        );
    }
    st.cgroup
        .freeze()
        .map_err(|e| anyhow::anyhow!("container {:?}: pause: {e}", a.id))?;
    Ok(0)
}

/// Run `resume`.
pub fn resume(cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    let s = st.status(&cli.root);
    if s != Status::Paused {
        anyhow::bail!("container {:?} is {s}: container not paused", a.id);
    }
    st.cgroup
        .thaw()
        .map_err(|e| anyhow::anyhow!("container {:?}: resume: {e}", a.id))?;
    Ok(0)
}
