//! skiff-build owns `skiff build`: the Dockerfile parser ([`parse`], with BuildKit's frontend
//! semantics: heredocs, directives, exec/shell forms), word expansion ([`expand`]), the
//! `.dockerignore` matcher ([`ignore`]), the executor that turns the stages needed by the target
//! into image layers ([`exec`]: RUN in a container through skiff-runtime over an overlay snapshot
//! ([`run`]), COPY/ADD from the context ([`copy`])) and the build cache ([`cache`]: SQLite rows in
//! the engine's database over blobs in the content store).

pub mod cache;
pub mod copy;
pub mod exec;
pub mod expand;
pub mod export;
pub mod glob;
pub mod ignore;
pub mod mounts;
pub mod parse;
pub mod progress;
pub mod run;

pub use exec::{build, BuildOptions, NamedContext};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error("{0}")]
    Parse(parse::ParseError),
    /// An instruction is invalid in its context (bad expansion, missing source, ...).
    #[error("{file}:{line}: {msg}\n{line:>5} | {text}")]
    Step {
        /// Dockerfile name.
        file: String,
        /// Line of the instruction.
        line: usize,
        /// The source line.
        text: String,
        /// What is wrong.
        msg: String,
    },
    /// A RUN step exited non-zero.
    #[error("{step}: {msg}")]
    RunFailed {
        /// The step as progress shows it (`[stage-0 2/3] RUN false`).
        step: String,
        /// BuildKit's message (`process "…" did not complete successfully: exit code: 1`).
        msg: String,
        /// What the step printed.
        output: String,
    },
    /// The image store failed.
    #[error("{0}")]
    Image(#[from] skiff_image::Error),
    /// The engine failed.
    #[error("{0}")]
    Engine(#[from] skiff_engine::Error),
    /// SIGINT, SIGTERM or SIGHUP stopped the build (nothing half-made is left).
    #[error("build interrupted")]
    Interrupted,
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}
