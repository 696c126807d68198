//! Default OCI specs: runc's `spec` template and the Docker-equivalent defaults the engine uses.
