//! TLS endpoints (`elvin:/secure/host:port`) with certificates generated
//! at test time: the full protocol over TLS, delivery between TLS and
//! plain TCP clients, and client-certificate checking against a CA.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, emulab_event};
use elvin_proto::Packet;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tbevents_testkit::{Router, free_port, wait_for_port};

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A CA, a server certificate for localhost and a client certificate, as
/// PEM files in `dir`.
struct Pki {
    ca: String,
    client_cert: String,
    client_key: String,
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["client.example".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();

    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca: ca.pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn tls_connect(port: u16, pki: &Pki, with_client_cert: bool) -> Client<TlsStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_client_cert {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Client::over(rustls::StreamOwned::new(connection, tcp))
}

/// A router with a plain and a TLS listener in one routing domain
/// (`;domain=public`), as a site serving both to the same users runs it.
fn start(dir: &Path, tls_port: u16, extra: &[&str]) -> Router {
    let plain_port = tbevents_testkit::free_port();
    let plain = format!("elvin://127.0.0.1:{plain_port};domain=public");
    let secure = format!("elvin:/secure/127.0.0.1:{tls_port};domain=public");
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let mut args = vec![
        "--listen",
        &plain,
        "--listen",
        &secure,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let proc = tbevents_testkit::Proc::start("eventd", &args);
    wait_for_port(([127, 0, 0, 1], plain_port).into(), Duration::from_secs(10));
    wait_for_port(([127, 0, 0, 1], tls_port).into(), Duration::from_secs(10));
    Router {
        proc,
        port: plain_port,
    }
}

#[test]
fn the_protocol_works_over_tls_and_meets_plain_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let tls_port = free_port();
    let router = start(dir.path(), tls_port, &[]);

    let mut secure_sub = tls_connect(tls_port, &pki, false);
    secure_sub.handshake(vec![]);
    let id = secure_sub.subscribe(r#"EXPT == "p/tls""#);
    let mut plain_producer = Client::connect(router.addr());
    for seq in 0..100 {
        plain_producer.emit(emulab_event("p/tls", seq));
    }
    for seq in 0..100 {
        let d = secure_sub.recv_deliver();
        assert_eq!(d.attributes.get_i32("seq"), Some(seq));
        assert_eq!(d.insecure_matches, [id]);
    }
    // And the other way round.
    let mut plain_sub = Client::connect(router.addr());
    let plain_id = plain_sub.subscribe(r#"EXPT == "p/back""#);
    secure_sub.emit(emulab_event("p/back", 1));
    assert_eq!(plain_sub.recv_deliver().insecure_matches, [plain_id]);
    // Clean close over TLS.
    secure_sub.send(elvin_proto::DisconnRqst { xid: 77 });
    assert_eq!(
        secure_sub.recv(),
        Packet::DisconnRply(elvin_proto::DisconnRply { xid: 77 })
    );
}

#[test]
fn client_certificates_are_checked_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let tls_port = free_port();
    let ca = dir.path().join("ca.pem");
    let _router = start(
        dir.path(),
        tls_port,
        &[
            "--tls-client-ca",
            ca.to_str().unwrap(),
            "--tls-require-client-cert",
        ],
    );

    let mut trusted = tls_connect(tls_port, &pki, true);
    trusted.handshake(vec![]);
    trusted.subscribe("a == 1");

    // Without a certificate the handshake is refused: no ConnRply ever.
    let mut anonymous = tls_connect(tls_port, &pki, false);
    let _ = anonymous.try_send_raw(&[0, 0, 0, 4, 0, 0, 0, 63]);
    assert!(
        anonymous.recv_within(Duration::from_secs(3)).is_none(),
        "a client without a certificate got an answer"
    );

    // A certificate from another CA is refused too.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger_pki = make_pki(other_dir.path());
    let mixed = Pki {
        ca: pki.ca.clone(),
        client_cert: stranger_pki.client_cert,
        client_key: stranger_pki.client_key,
    };
    let mut stranger = tls_connect(tls_port, &mixed, true);
    let _ = stranger.try_send_raw(&[0, 0, 0, 4, 0, 0, 0, 63]);
    assert!(stranger.recv_within(Duration::from_secs(3)).is_none());
}
