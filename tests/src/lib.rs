//! Shared helpers for skiff's integration tests: locating the built binaries, building a busybox
//! bundle from Debian's busybox-static, and running commands.
