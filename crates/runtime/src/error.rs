//! Error type of the runtime library.

use std::path::PathBuf;

/// Errors raised by the runtime; each message names the container, file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json is malformed or semantically invalid.
    #[error("config.json: {0}")]
    Config(String),
    /// A container with this id does not exist.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container {0:?} already exists")]
    Exists(String),
    /// The operation is not valid in the container's current state.
    #[error("container {id:?}: {msg}")]
    State {
        /// Container id.
        id: String,
        /// What is wrong.
        msg: String,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        errno: nix::errno::Errno,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] skiff_cgroups::Error),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

/// Result alias for the runtime.
pub type Result<T> = std::result::Result<T, Error>;

/// Extension to attach a path to io errors.
pub trait IoContext<T> {
    /// Wrap an io::Error with the path it concerns.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

/// Extension to attach a description to nix errors.
pub trait SysContext<T> {
    /// Wrap an errno with what was being attempted.
    fn sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            what: what(),
            errno,
        })
    }
}
