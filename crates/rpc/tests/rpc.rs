//! End-to-end tests: a real `tbevents-rpc` process over real TLS with
//! generated certificates, and over the ssh stdin/stdout framing through a
//! pipe, read by the client store the scheduler uses.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    SanType,
};
mod common;

use common::{EVENTS, Server, build_store, free_port};
use tbevents_rpc::XmlRpcStore;
use tbevents_store::{ExperimentId, ExperimentState, ExperimentStore, StoreError};

fn user_cert(dir: &Path, ca: &CertifiedIssuer<'static, KeyPair>, cn: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The store, the PKI and a running HTTPS server.
struct Setup {
    dir: tempfile::TempDir,
    store_url: String,
    id: ExperimentId,
    port: u16,
    _server: Server,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("boss.db").display());
    let id = ExperimentId::new("tproj", "texp");
    build_store(&store_url, &id);

    let ca = new_ca();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let server_cert = params.signed_by(&server_key, &ca).unwrap();
    std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
    user_cert(dir.path(), &ca, "alice");
    user_cert(dir.path(), &ca, "Mallory Example");
    std::fs::write(dir.path().join("subjects"), "Mallory Example mallory\n").unwrap();
    // A certificate from a CA the server does not trust.
    let rogue = new_ca();
    user_cert(dir.path(), &rogue, "rogue");

    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tbevents-rpc"))
        .args([
            "--store",
            &store_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--cert")
        .arg(dir.path().join("server.pem"))
        .arg("--key")
        .arg(dir.path().join("server.key"))
        .arg("--client-ca")
        .arg(dir.path().join("ca.pem"))
        .arg("--subject-map")
        .arg(dir.path().join("subjects"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tbevents-rpc did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Setup {
        dir,
        store_url,
        id,
        port,
        _server: server,
    }
}

impl Setup {
    fn https_url(&self, who: &str) -> String {
        let d = self.dir.path().display();
        format!(
            "xmlrpc+https://127.0.0.1:{}/RPC2?cert={d}/{who}.pem&key={d}/{who}.key&ca={d}/ca.pem",
            self.port
        )
    }
}

#[test]
fn https_member_reads_what_the_store_holds_and_others_are_refused() {
    let s = setup();
    let local = tbevents_store::open(&s.store_url).unwrap();
    let remote = XmlRpcStore::open(&s.https_url("alice")).unwrap();
    assert_eq!(remote.state(&s.id).unwrap(), ExperimentState::Active);
    assert_eq!(remote.events(&s.id).unwrap(), local.events(&s.id).unwrap());
    assert_eq!(remote.events(&s.id).unwrap().len(), EVENTS);
    assert_eq!(remote.agents(&s.id).unwrap(), local.agents(&s.id).unwrap());
    assert_eq!(remote.groups(&s.id).unwrap(), local.groups(&s.id).unwrap());

    // Unknown experiment: the store's own not-found error.
    let missing = ExperimentId::new("tproj", "nosuch");
    assert!(matches!(
        remote.events(&missing),
        Err(StoreError::ExperimentNotFound(_))
    ));
    // Writes are refused as read-only, like any read-only store's.
    let err = remote
        .set_state(&s.id, ExperimentState::Swapped)
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // Reads boss does not serve to schedulers say where to go instead.
    let err = remote.virtual_experiment(&s.id).unwrap_err().to_string();
    assert!(err.contains("offers only the scheduler's reads"), "{err}");

    // Another user's certificate (mapped to mallory) is refused, with no rows.
    let other = XmlRpcStore::open(&s.https_url("Mallory Example")).unwrap();
    let err = other.events(&s.id).unwrap_err().to_string();
    assert!(err.contains("permission"), "{err}");
    // A certificate from an unknown CA fails the handshake, clearly.
    let rogue = XmlRpcStore::open(&s.https_url("rogue")).unwrap();
    let err = rogue.state(&s.id).unwrap_err().to_string();
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn waitforactive_returns_when_the_state_changes() {
    let s = setup();
    let local = tbevents_store::open(&s.store_url).unwrap();
    local.set_state(&s.id, ExperimentState::Swapped).unwrap();
    let remote = XmlRpcStore::open(&s.https_url("alice")).unwrap();
    // With a short timeout the wait ends with Emulab's TIMEDOUT, after
    // waiting that long.
    let started = Instant::now();
    let err = remote
        .call(
            "experiment.waitforactive",
            &s.id,
            &[("timeout", tbevents_rpc::Value::Int(1))],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("Timed out"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let id = s.id.clone();
    let waiter = std::thread::spawn(move || {
        remote
            .call("experiment.waitforactive", &id, &[])
            .map(|v| v.as_str().map(str::to_owned))
    });
    // The timed-out call above showed that a wait does not end while the
    // experiment is swapped; this one must end with the new state.
    local.set_state(&s.id, ExperimentState::Active).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "waitforactive did not return");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = waiter.join().unwrap().unwrap();
    assert_eq!(answer.as_deref(), Some("active"));
}

#[test]
fn ssh_stdio_transport_through_a_pipe() {
    let s = setup();
    // Stand-in for ssh: runs the forced command with the user ssh would
    // have authenticated, ignoring ssh's own arguments.
    let fake = s.dir.path().join("fake-ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nexec {} --stdio --store {} --user \"$FAKE_SSH_USER\"\n",
            env!("CARGO_BIN_EXE_tbevents-rpc"),
            s.store_url
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&fake)
        .status()
        .unwrap();
    // SAFETY: only this test reads these variables.
    unsafe {
        std::env::set_var(tbevents_rpc::client::SSH_ENV, &fake);
        std::env::set_var("FAKE_SSH_USER", "alice");
    }
    let local = tbevents_store::open(&s.store_url).unwrap();
    let remote = XmlRpcStore::open("xmlrpc+ssh://alice@boss").unwrap();
    assert_eq!(remote.events(&s.id).unwrap(), local.events(&s.id).unwrap());
    assert_eq!(remote.agents(&s.id).unwrap(), local.agents(&s.id).unwrap());
    unsafe { std::env::set_var("FAKE_SSH_USER", "mallory") };
    let other = XmlRpcStore::open("xmlrpc+ssh://mallory@boss").unwrap();
    let err = other.events(&s.id).unwrap_err().to_string();
    assert!(err.contains("permission"), "{err}");
}

/// The end-to-end path: a user's real `event-sched` (as `nobody`,
/// never root) loads its experiment from boss over XML-RPC/HTTPS with the
/// user's client certificate, and fires its static events to a real eventd.
#[test]
fn a_scheduler_loads_its_experiment_over_https_and_fires_its_events() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: this test runs event-sched as nobody, which needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    // nobody must read the user's certificate, key and CA, and the key file.
    let dir = s.dir.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["alice.pem", "alice.key", "ca.pem"] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    common::scheduler_fires_its_events(dir, &s.https_url("alice"), &[]);
}

/// A server that completes the TLS handshake and then hangs up without an
/// answer (as a server refusing the client certificate after the
/// handshake may): the client retries, then says the certificate may be
/// the reason.
#[test]
fn a_session_dropped_after_the_handshake_is_retried_and_explained() {
    use rustls_pki_types::pem::PemObject;
    let s = setup();
    let dir = s.dir.path();
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hangups = std::thread::spawn(move || {
        let mut sessions = 0;
        for stream in listener.incoming() {
            let mut tcp = stream.unwrap();
            let mut tls = rustls::ServerConnection::new(config.clone()).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            sessions += 1;
            drop(tcp);
            if sessions == 5 {
                return sessions;
            }
        }
        sessions
    });
    let url = s
        .https_url("alice")
        .replace(&format!(":{}/", s.port), &format!(":{port}/"));
    let err = XmlRpcStore::open(&url)
        .unwrap()
        .state(&s.id)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    assert!(
        err.contains("boss may be refusing the client certificate"),
        "{err}"
    );
    assert_eq!(
        hangups.join().unwrap(),
        5,
        "every attempt reached the server"
    );
}
