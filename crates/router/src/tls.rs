//! TLS for `elvin:/secure/host:port` endpoints.
//!
//! Builds a rustls server configuration with the `ring` crypto provider
//! (the one provider used across the project) from PEM files: the
//! certificate chain (leaf first), its private key, and optionally a CA
//! bundle against which client certificates are verified, either required
//! or merely checked when offered. Every failure names the file and says
//! what to fix, since this runs at start-up and on SIGHUP.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("TLS {what} file {path}: {message}")]
    File {
        /// Which file ("certificate", "private key", "client CA").
        what: &'static str,
        /// The path.
        path: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

fn file_error(what: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        what,
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            what,
            path,
            "holds no CERTIFICATE block: give a PEM file with the certificate(s)",
        ));
    }
    Ok(certs)
}

/// Builds the acceptor for TLS endpoints.
pub fn build_acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certs("certificate", &settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| {
        file_error(
            "private key",
            &settings.key,
            format!("{e}: give a PEM file with a PKCS#8, PKCS#1 or SEC1 private key"),
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs("client CA", ca_path)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("client CA", ca_path, e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if settings.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| file_error("client CA", ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("certificate and key do not go together: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            client_ca: None,
            require_client_cert: false,
        };
        let err = build_acceptor(&settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let settings = TlsSettings {
            cert: path.clone(),
            key: path,
            client_ca: None,
            require_client_cert: false,
        };
        let err = build_acceptor(&settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
