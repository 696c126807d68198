//! skiff-image owns images: the content-addressed store (an OCI image layout under `content/`),
//! manifests, indexes and configs, platform matching, layer unpacking into snapshots (safe against
//! hostile tarballs), overlay mounts, the registry client and docker/oci archives. It knows nothing of
//! processes or namespaces.
//!
//! The entry point is [`store::Store`]: open it on a root directory (`/var/lib/skiff` by default),
//! then import, load, pull, tag, inspect, save or remove images through it.

pub mod archive;
pub mod compress;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod import;
pub mod inspect;
pub mod names;
pub mod overlay;
pub mod perms;
pub mod platform;
pub mod pull;
pub mod registry;
pub mod spec;
pub mod statedb;
pub mod store;
pub mod sys;
pub mod time;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use platform::Platform;
pub use store::Store;
