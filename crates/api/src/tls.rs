//! TCP listeners and TLS (`--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`, as
//! dockerd's flags). Anyone who can talk to the API is root on the host, so plain TCP is refused
//! unless explicitly acknowledged with `--tls=false` (docker 27's rule) and then only on
//! loopback with a loud warning; TLS without client certificates is loopback-only too; with
//! `--tlsverify` only clients holding a certificate signed by `--tlscacert` get in (rustls).

use std::path::PathBuf;
use std::sync::Arc;

use crate::{ServeError, State};

/// The TLS flags as given (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// `--tls[=BOOL]`: serve TCP over TLS (no client certificate required).
    pub tls: Option<bool>,
    /// `--tlsverify[=BOOL]`: TLS, and require client certificates signed by `ca`.
    pub verify: Option<bool>,
    /// `--tlscacert`: the CA that signs client certificates.
    pub ca: Option<PathBuf>,
    /// `--tlscert`: the server's certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `--tlskey`: the server's private key (PEM).
    pub key: Option<PathBuf>,
}

impl Tls {
    fn verify(&self) -> bool {
        self.verify == Some(true)
    }
    /// TLS is on (`--tls` or `--tlsverify`).
    pub fn enabled(&self) -> bool {
        self.verify() || self.tls == Some(true)
    }
    /// Plain TCP explicitly acknowledged (`--tls=false` or `--tlsverify=false`, no TLS).
    fn plain_acknowledged(&self) -> bool {
        !self.enabled() && (self.tls == Some(false) || self.verify == Some(false))
    }

    /// Whether a TCP listener on `a` is allowed with these flags (warning loudly when it is
    /// plain).
    pub(crate) fn check_tcp(&self, a: &std::net::SocketAddr) -> Result<(), ServeError> {
        let err = |msg: &str| ServeError::Listen {
            addr: format!("tcp://{a}"),
            msg: msg.to_string(),
        };
        if self.verify() {
            return Ok(());
        }
        if !a.ip().is_loopback() {
            return Err(err(
                "only loopback addresses are allowed without --tlsverify: anyone who can reach this port would be root on this host",
            ));
        }
        if self.enabled() {
            eprintln!(
                "WARNING: skiff serve: tcp://{a} uses TLS without client certificates (--tls without --tlsverify):\n\
                 WARNING: every local user and process that can connect to this port has full root access to this host."
            );
            return Ok(());
        }
        if !self.plain_acknowledged() {
            return Err(err(
                "refusing to listen on TCP without TLS: pass --tlsverify --tlscacert=CA --tlscert=CERT --tlskey=KEY, or --tls=false to accept an unauthenticated root-equivalent socket",
            ));
        }
        eprintln!(
            "WARNING: skiff serve is listening on tcp://{a} without TLS or authentication (--tls=false).\n\
             WARNING: every local user and process that can connect to this port has full root access to this host."
        );
        Ok(())
    }

    /// The acceptor for TCP connections (None without TLS).
    pub(crate) fn acceptor(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, ServeError> {
        if !self.enabled() {
            return Ok(None);
        }
        let err = |msg: String| ServeError::Listen {
            addr: "tls".into(),
            msg,
        };
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Err(err("--tls/--tlsverify need --tlscert and --tlskey".into()));
        };
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| err(format!("--tlscert {}: {e}", cert.display())))?;
        if certs.is_empty() {
            return Err(err(format!("--tlscert {}: no certificate", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| err(format!("--tlskey {}: {e}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?;
        let builder = if self.verify() {
            let Some(ca) = &self.ca else {
                return Err(err("--tlsverify needs --tlscacert".into()));
            };
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(format!("--tlscacert {}: {e}", ca.display())))?;
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| err(format!("--tlscacert {}: {e}", ca.display())))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| err(format!("--tlscacert {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(v)
        } else {
            builder.with_no_client_auth()
        };
        let cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| err(format!("--tlscert/--tlskey: {e}")))?;
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))))
    }
}

/// Serves one TCP connection over TLS (the handshake bounded in time; a failed one, e.g. a
/// client without an accepted certificate, just closes the connection).
pub(crate) fn serve(acceptor: tokio_rustls::TlsAcceptor, s: tokio::net::TcpStream, st: Arc<State>) {
    tokio::spawn(async move {
        let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(s)).await;
        if let Ok(Ok(tls)) = hs {
            crate::hijack::serve(tls, st).await;
        }
    });
}
