//! The one error type of skiff-image: every variant names the object and the cause in one line.

use std::path::Path;

/// Errors of the image store, unpacker, archives and registry orchestration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{context}: {}", one_line(&.source.to_string()))]
    Io {
        /// What was being done, naming the object.
        context: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("image database: {context}: {source}")]
    Db {
        /// What was being done.
        context: String,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified (blob, layer, manifest).
        what: String,
        /// The announced digest.
        expected: String,
        /// The computed digest.
        actual: String,
    },
    /// No image, blob or tag matches.
    #[error("{0}")]
    NotFound(String),
    /// Input (JSON, reference, archive, flag) is malformed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was malformed.
        what: String,
        /// Why.
        reason: String,
    },
    /// A layer entry tried to leave its snapshot or is otherwise unsafe.
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry path as written in the tarball.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A format or feature that skiff does not support.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// The operation conflicts with the current state (image in use, ambiguous name...).
    #[error("{0}")]
    Conflict(String),
    /// A registry operation failed.
    #[error("registry: {0}")]
    Registry(String),
    /// The state database is missing, empty beside data, or damaged.
    #[error(transparent)]
    StateDb(#[from] crate::statedb::StateDbError),
}

/// `msg` with control characters escaped, so an error quoting untrusted text stays on one line: an
/// I/O error may quote hostile bytes (the tar crate puts a corrupt header's raw name in its message),
/// a registry's error body is whatever the server sent.
pub(crate) fn one_line(msg: &str) -> String {
    if !msg.chars().any(char::is_control) {
        return msg.to_string();
    }
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Result alias of skiff-image.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with a context string.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// An I/O error about a path: `"{what} {path}: {source}"`.
    pub fn path(what: &str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
    /// A malformed-input error.
    pub fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
    /// A database error with context.
    pub fn db(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::Db {
            context: context.into(),
            source,
        }
    }
}

/// Adds a context string to `io::Result`s.
pub trait IoContext<T> {
    /// Maps the error into [`Error::Io`] with `context`.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
