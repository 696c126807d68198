//! Image references parsed exactly as docker does (`busybox` → `docker.io/library/busybox:latest`).
