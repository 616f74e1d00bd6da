//! TLS settings for `elvin:/secure/` routers.
//!
//! The project uses rustls with the `ring` provider everywhere, so this
//! module builds a `rustls::ClientConfig` with that provider from simple
//! inputs: the certificate authorities to trust (a PEM file, PEM bytes or
//! DER certificates) and, when the router asks for one, a client
//! certificate chain and private key. A ready-made `ClientConfig` can be
//! given instead for anything these inputs do not cover.
//!
//! There is no built-in set of public roots: Elvin routers in a testbed
//! use a private CA, and silently trusting the web PKI would be the wrong
//! default. Settings without any trusted root are refused with an error
//! that says so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::ClientError;

/// Where the trusted certificate authorities come from.
#[derive(Clone)]
enum Roots {
    None,
    PemFile(PathBuf),
    PemBytes(Vec<u8>),
    Der(Vec<CertificateDer<'static>>),
}

/// Where the client certificate and key come from.
#[derive(Clone)]
enum Identity {
    PemFiles {
        chain: PathBuf,
        key: PathBuf,
    },
    Der {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
    },
}

/// TLS settings for connecting to a router over `ssl,none,xdr`.
#[derive(Clone)]
pub struct TlsOptions {
    roots: Roots,
    identity: Option<Identity>,
    server_name: Option<String>,
    config: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::None => "none".to_owned(),
            Roots::PemFile(path) => format!("PEM file {}", path.display()),
            Roots::PemBytes(bytes) => format!("{} bytes of PEM", bytes.len()),
            Roots::Der(certs) => format!("{} DER certificates", certs.len()),
        };
        f.debug_struct("TlsOptions")
            .field("roots", &roots)
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .field("custom_config", &self.config.is_some())
            .finish()
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsOptions {
    /// Empty settings: give at least one trusted root before connecting.
    pub fn new() -> Self {
        TlsOptions {
            roots: Roots::None,
            identity: None,
            server_name: None,
            config: None,
        }
    }

    /// Uses a complete rustls configuration as is (roots, client
    /// certificate, protocol versions); the other settings except
    /// [`TlsOptions::server_name`] are ignored.
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> Self {
        TlsOptions {
            config: Some(config),
            ..Self::new()
        }
    }

    /// Trusts the CA certificates in a PEM file.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.roots = Roots::PemFile(path.into());
        self
    }

    /// Trusts the CA certificates in PEM text.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots = Roots::PemBytes(pem.into());
        self
    }

    /// Trusts these DER-encoded CA certificates.
    pub fn root_certificates(mut self, certificates: Vec<CertificateDer<'static>>) -> Self {
        self.roots = Roots::Der(certificates);
        self
    }

    /// Presents the certificate chain and private key in these PEM files
    /// when the router asks for a client certificate.
    pub fn client_cert_files(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(Identity::PemFiles {
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// Presents this DER certificate chain and private key.
    pub fn client_identity(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some(Identity::Der {
            chain,
            key: Arc::new(key),
        });
        self
    }

    /// The name to verify the router's certificate against, when it is not
    /// the host in the URI (for example when connecting by IP address to a
    /// router whose certificate names its host).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name checked against the router's certificate.
    pub(crate) fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned())
            .map_err(|e| format!("{name:?} cannot be checked against a certificate: {e}"))
    }

    /// Builds the rustls configuration (reading any files now).
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let roots = load_roots(&self.roots)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Config(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (chain, key) = load_identity(identity)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    ClientError::Config(format!(
                        "the client certificate and key cannot be used: {e}; \
                         check that the key belongs to the certificate"
                    ))
                })?
            }
        };
        Ok(Arc::new(config))
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, ClientError> {
    let certificates: Vec<CertificateDer<'static>> = match roots {
        Roots::None => {
            return Err(ClientError::Config(
                "no trusted CA certificates for TLS: use TlsOptions::ca_file(path) \
                 with the CA that signed the router's certificate"
                    .into(),
            ));
        }
        Roots::PemFile(path) => read_pem_certs(path)?,
        Roots::PemBytes(bytes) => CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Config(format!("bad CA certificate PEM: {e}")))?,
        Roots::Der(certs) => certs.clone(),
    };
    if certificates.is_empty() {
        return Err(ClientError::Config(
            "the CA certificate list is empty: give a PEM file holding at least one \
             \"BEGIN CERTIFICATE\" block"
                .into(),
        ));
    }
    let mut store = RootCertStore::empty();
    for certificate in certificates {
        store
            .add(certificate)
            .map_err(|e| ClientError::Config(format!("unusable CA certificate: {e}")))?;
    }
    Ok(store)
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            ClientError::Config(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ClientError::Config(format!("bad certificate PEM in {}: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "{} holds no \"BEGIN CERTIFICATE\" block",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_identity(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    match identity {
        Identity::PemFiles { chain, key } => {
            let chain = read_pem_certs(chain)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                ClientError::Config(format!(
                    "cannot read a private key from {}: {e}",
                    key.display()
                ))
            })?;
            Ok((chain, key))
        }
        Identity::Der { chain, key } => Ok((chain.clone(), key.clone_key())),
    }
}
