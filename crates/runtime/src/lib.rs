//! skiff-runtime is the OCI runtime library: it turns an OCI bundle (config.json + rootfs) into a
//! running container. It owns namespaces, the root filesystem (mounts, pivot_root, devices, masked and
//! read-only paths), process setup (user, capabilities, rlimits, environment), seccomp, hooks, the
//! console, and the on-disk state of each container under the runtime root. It knows nothing of images;
//! cgroups are delegated to skiff-cgroups. The `skiff-runtime` binary (crates/runtime-cli) is a thin
//! runc-compatible command line over this library, and the engine calls the same functions.

pub mod error;
pub mod state;

pub use error::{Error, Result};
pub mod config;
pub mod console;
pub mod container;
pub mod debugview;
pub mod defaults;
pub mod docker;
pub mod exec;
pub mod exec_helper;
pub mod forward;
pub mod fsutil;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod log;
pub mod namespaces;
pub mod netdev;
pub mod procattr;
pub mod process;
pub mod rootfs;
pub mod sealed;
pub mod seccomp;
pub mod seccomp_profile;
pub mod seccomp_summary;
pub mod sync;
pub mod util;
