//! Root filesystems for containers: an overlay mount of an image's layer snapshots, or a copy when
//! overlayfs is unavailable.
