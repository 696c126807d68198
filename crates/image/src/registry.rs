//! Registry client (distribution-spec): manifests and blobs over HTTP(S) with basic and bearer auth.
