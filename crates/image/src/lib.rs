//! skiff-image owns images: the content-addressed store (an OCI image layout under `content/`),
//! manifests, indexes and configs, platform matching, layer unpacking into snapshots (safe against
//! hostile tarballs), overlay mounts, the registry client and docker/oci archives. It knows nothing of
//! processes or namespaces.

pub mod reference;
pub mod registry;
