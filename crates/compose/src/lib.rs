//! skiff-compose owns `skiff compose`: the Compose Specification model (finding and reading the
//! files, `.env`, interpolation, merge, `extends`, `include`, profiles, the project name) and the
//! project's life cycle over the engine crate directly: no API round trips and no daemon. A
//! project's containers, networks and volumes carry docker compose v2's labels, so `up` again
//! changes only what changed, and other tools that read those labels see the same project.
//!
//! `load` gives a [`load::Project`]; [`project::Runner`] turns it into containers.

pub mod dotenv;
pub mod interp;
pub mod load;
pub mod normalize;
pub mod progress;
pub mod project;
pub mod service;

/// What can go wrong in compose.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the project is wrong: where, which key, why.
    #[error("{}{}{}", file, line.map(|l| format!(":{l}")).unwrap_or_default(), if key.is_empty() { format!(": {msg}") } else { format!(": {key}: {msg}") })]
    Config {
        /// The file.
        file: String,
        /// Its line, when known.
        line: Option<usize>,
        /// The key path (`services.web.ports`).
        key: String,
        /// The cause.
        msg: String,
    },
    /// No compose file was found.
    #[error("{0}")]
    NoConfig(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] skiff_engine::Error),
    /// The volume store refused.
    #[error(transparent)]
    Volume(#[from] skiff_engine::volumes::VolumeError),
    /// The image store refused.
    #[error(transparent)]
    Image(#[from] skiff_image::Error),
}

/// Result of compose operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
