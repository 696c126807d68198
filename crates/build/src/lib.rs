//! skiff-build owns `skiff build`: the Dockerfile parser ([`parse`], with BuildKit's frontend
//! semantics: heredocs, directives, exec/shell forms), word expansion ([`expand`]), the
//! `.dockerignore` matcher ([`ignore`]), the executor that turns the stages needed by the target
//! into image layers ([`exec`]: RUN in a container through skiff-runtime over an overlay snapshot,
//! COPY/ADD from the context) and the build cache (SQLite rows in the engine's database over
//! blobs in the content store).

pub mod expand;
pub mod glob;
pub mod ignore;
pub mod parse;
