//! skiff-engine owns containers as users see them: the state database (SQLite, WAL), names and ids,
//! per-container locks, the per-container monitor process, logs, restart policies, volumes and events.
//! It turns images (skiff-image) into OCI bundles and drives the runtime library (skiff-runtime).

pub mod events;
pub mod info;
pub mod init;
pub mod volumes;
