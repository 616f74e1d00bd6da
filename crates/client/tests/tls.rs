//! TLS (`elvin:/secure/`) against a fake router behind a rustls server
//! with certificates made by rcgen: handshake, CA trust, client
//! certificates.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FakeServer, PROMPT, Peer};
use elvin_client::{Client, ClientError, ConnectOptions, SubscribeOptions, TlsOptions};
use elvin_proto::{ConnRply, Packet, SubRply};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor with `server` as its certificate, requiring a client
/// certificate from `client_ca` if given.
fn acceptor(server: &Leaf, client_ca: Option<&Pki>) -> TlsAcceptor {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pki) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![server.cert.clone()], server.key.clone_key())
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Accepts one TLS connection and answers its ConnRqst; returns the peer
/// and the client certificates it presented.
async fn accept_tls(
    server: &FakeServer,
    acceptor: &TlsAcceptor,
) -> Result<(Peer, Option<Vec<CertificateDer<'static>>>), std::io::Error> {
    let (tcp, _) = server.listener.accept().await?;
    let tls = acceptor.accept(tcp).await?;
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect());
    let mut peer = Peer::new(Box::new(tls));
    let rqst = peer.expect_conn_rqst().await;
    peer.send(ConnRply {
        xid: rqst.xid,
        options: vec![],
    })
    .await;
    Ok((peer, presented))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn secure_uri(server: &FakeServer) -> String {
    format!("elvin:/secure/127.0.0.1:{}", server.port)
}

fn options(tls: TlsOptions) -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(2))
        .tls(tls)
}

#[tokio::test]
async fn a_tls_session_works_with_the_ca_from_a_pem_file() {
    let pki = Pki::new("test CA");
    let server_leaf = pki.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(&dir, "ca.pem", &pki.ca_pem());
    let server = FakeServer::bind().await;
    let acceptor = acceptor(&server_leaf, None);

    let (client, accepted) = tokio::join!(
        Client::connect(
            secure_uri(&server),
            options(TlsOptions::new().ca_file(&ca_file))
        ),
        accept_tls(&server, &acceptor)
    );
    let client = client.unwrap();
    let (mut peer, presented) = accepted.unwrap();
    assert!(presented.is_none(), "no client certificate was configured");

    // A request round trip over TLS.
    let (sub, ()) = tokio::join!(
        client.subscribe("A == 1", SubscribeOptions::default()),
        async {
            let Packet::SubAddRqst(rqst) = peer.recv().await else {
                panic!("expected SubAddRqst")
            };
            peer.send(SubRply {
                xid: rqst.xid,
                subscription_id: 5,
            })
            .await;
        }
    );
    assert_eq!(sub.unwrap().router_id(), Some(5));
}

#[tokio::test]
async fn the_client_certificate_is_presented_when_configured() {
    let server_pki = Pki::new("server CA");
    let client_pki = Pki::new("client CA");
    let server_leaf = server_pki.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let client_leaf = client_pki.issue(&["tbevents-client"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    let cert_file = write(&dir, "client.pem", &client_leaf.cert_pem);
    let key_file = write(&dir, "client.key", &client_leaf.key_pem);
    let server = FakeServer::bind().await;
    let acceptor = acceptor(&server_leaf, Some(&client_pki));

    let tls = TlsOptions::new()
        .ca_pem(server_pki.ca_pem())
        .server_name("localhost")
        .client_cert_files(&cert_file, &key_file);
    let (client, accepted) = tokio::join!(
        Client::connect(secure_uri(&server), options(tls)),
        accept_tls(&server, &acceptor)
    );
    client.unwrap();
    let (_peer, presented) = accepted.unwrap();
    assert_eq!(presented.unwrap(), vec![client_leaf.cert.clone()]);

    // The same identity given as DER works too.
    let tls = TlsOptions::new()
        .root_certificates(vec![server_pki.ca.der().clone()])
        .server_name("localhost")
        .client_identity(vec![client_leaf.cert.clone()], client_leaf.key.clone_key());
    let (client, accepted) = tokio::join!(
        Client::connect(secure_uri(&server), options(tls)),
        accept_tls(&server, &acceptor)
    );
    client.unwrap();
    assert_eq!(accepted.unwrap().1.unwrap(), vec![client_leaf.cert]);
}

#[tokio::test]
async fn a_router_certificate_from_an_unknown_ca_is_a_tls_error() {
    let real = Pki::new("real CA");
    let other = Pki::new("other CA");
    let server_leaf = real.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server = FakeServer::bind().await;
    let acceptor = acceptor(&server_leaf, None);
    let (client, accepted) = tokio::join!(
        Client::connect(
            secure_uri(&server),
            options(TlsOptions::new().ca_pem(other.ca_pem()))
        ),
        accept_tls(&server, &acceptor)
    );
    assert!(accepted.is_err());
    match client.unwrap_err() {
        ClientError::Tls { message, .. } => {
            assert!(message.contains("handshake failed"), "{message}");
            assert!(message.contains("CA file"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_router_that_requires_a_client_certificate_is_reported_as_tls() {
    let pki = Pki::new("CA");
    let server_leaf = pki.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = FakeServer::bind().await;
    let acceptor = acceptor(&server_leaf, Some(&pki));
    let tls = TlsOptions::new()
        .ca_pem(pki.ca_pem())
        .server_name("localhost");
    let (client, accepted) = tokio::join!(
        tokio::time::timeout(PROMPT, Client::connect(secure_uri(&server), options(tls))),
        accept_tls(&server, &acceptor)
    );
    assert!(accepted.is_err(), "the server must refuse the session");
    match client.unwrap().unwrap_err() {
        ClientError::Tls { message, .. } => {
            assert!(message.contains("client certificate"), "{message}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn unusable_tls_settings_are_configuration_errors() {
    let server = FakeServer::bind().await;
    let error = Client::connect(secure_uri(&server), options(TlsOptions::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Config(text) if text.contains("ca_file")),
        "{error:?}"
    );
    let error = Client::connect(
        secure_uri(&server),
        options(TlsOptions::new().ca_file("/nonexistent/ca.pem")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ClientError::Config(text) if text.contains("/nonexistent/ca.pem")),
        "{error:?}"
    );
    let error = Client::connect(
        secure_uri(&server),
        options(TlsOptions::new().ca_pem("not a certificate")),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ClientError::Config(_)), "{error:?}");
}
