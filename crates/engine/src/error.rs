//! The engine's error type: one-line messages that name the container, image or file and the cause.

/// Errors of engine operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container matches what the user typed.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// A name is already taken.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameConflict {
        /// The name.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// The operation does not fit the container's state.
    #[error("{0}")]
    State(String),
    /// Bad user input (flags, names, values).
    #[error("{0}")]
    Invalid(String),
    /// The container's process could not be started; `code` is docker's exit code (126/127/125).
    #[error("{msg}")]
    Start {
        /// Message.
        msg: String,
        /// 126 cannot invoke, 127 not found, 125 otherwise.
        code: i32,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error("state database: {what}: {source}")]
    Db {
        /// What was being done.
        what: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The image store failed (its message once: no repeated cause in `{:#}` chains).
    #[error(transparent)]
    Image(#[from] skiff_image::Error),
    /// The state database is missing, empty beside data, or damaged.
    #[error(transparent)]
    StateDb(#[from] skiff_image::statedb::StateDbError),
    /// The runtime library failed (its message once).
    #[error(transparent)]
    Runtime(#[from] skiff_runtime::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Engine result.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a message to io errors.
pub trait IoCtx<T> {
    /// Wraps the error with `what`.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoCtx<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

/// Attaches a message to SQLite errors.
pub(crate) fn db(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| {
        let what = if skiff_image::statedb::is_corrupt(&source) {
            format!(
                "{what} (the file is damaged: {})",
                skiff_image::statedb::REPAIR_HINT
            )
        } else {
            what.to_string()
        };
        Error::Db { what, source }
    }
}

/// Docker's exit code for a failed process start: 127 when the program does not exist, 126 when it
/// cannot be invoked, 125 for any other engine error.
pub fn start_code(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    if m.contains("not found in $path")
        || m.contains("no such file or directory")
        || m.contains("enoent")
    {
        127
    } else if m.contains("permission denied")
        || m.contains("eacces")
        || m.contains("is a directory")
        || m.contains("exec format error")
    {
        126
    } else {
        125
    }
}

impl Error {
    /// The docker exit code for this error when it ends `run`/`start`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Start { code, .. } => *code,
            _ => 125,
        }
    }
}
