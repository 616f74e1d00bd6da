//! Loads 100,000 static events over XML-RPC/HTTPS the way `event-sched`
//! does (`XmlRpcStore::events`), against an in-process server on loopback
//! with real TLS and client certificates. Goal: under 3 s.
//!
//! `cargo bench -p tbevents-rpc --bench load_events` (EVENTS=n to change
//! the count).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    SanType,
};
use tbevents_rpc::XmlRpcStore;
use tbevents_rpc::server::{self, Limits, TlsConfig};
use tbevents_rpc::service::Service;
use tbevents_store::{
    ExperimentId, ExperimentState, ExperimentStore, Group, GroupMembership, NewExperiment,
    StaticEvent, Trust, User, VirtAgent, VirtualExperiment,
};

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let store = tbevents_store::open(&format!("sqlite:{}", d.join("boss.db").display()))?;
    let id = ExperimentId::new("bproj", "bexp");
    store.create_user(&User {
        uid: "alice".into(),
        unix_uid: 2001,
        status: "active".into(),
        admin: false,
    })?;
    store.create_group(&Group {
        pid: "bproj".into(),
        gid: "bproj".into(),
        unix_gid: 3001,
        unix_name: "bproj".into(),
    })?;
    store.add_member(&GroupMembership {
        uid: "alice".into(),
        pid: "bproj".into(),
        gid: "bproj".into(),
        trust: Trust::User,
    })?;
    store.create_experiment(&NewExperiment::new(id.clone(), "bproj", "alice", "/tmp/b"))?;
    let virt = VirtualExperiment {
        agents: vec![VirtAgent {
            vname: "ns".into(),
            vnode: "*".into(),
            objtype: "SIMULATOR".into(),
        }],
        events: (0..count)
            .map(|i| StaticEvent {
                time: i as f64 * 0.001,
                vnode: "*".into(),
                vname: "ns".into(),
                objtype: "SIMULATOR".into(),
                eventtype: "REPORT".into(),
                arguments: format!("ARG{i}=value"),
                atstring: String::new(),
            })
            .collect(),
        simulator_name: "ns".into(),
        ..VirtualExperiment::default()
    };
    store.load_virtual(&id, &virt)?;
    store.set_state(&id, ExperimentState::Active)?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    std::fs::write(d.join("ca.pem"), ca.pem())?;
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse()?)];
    std::fs::write(
        d.join("server.pem"),
        params.signed_by(&server_key, &ca)?.pem(),
    )?;
    std::fs::write(d.join("server.key"), server_key.serialize_pem())?;
    let user_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "alice");
    params.distinguished_name = dn;
    std::fs::write(d.join("alice.pem"), params.signed_by(&user_key, &ca)?.pem())?;
    std::fs::write(d.join("alice.key"), user_key.serialize_pem())?;

    let config = TlsConfig {
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        client_ca: d.join("ca.pem"),
        subject_map: Default::default(),
    };
    let acceptor = server::build_acceptor(&config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let service = Arc::new(Service::new(Arc::from(store)));
    let limits = Limits::default();
    runtime.spawn(server::serve_https(
        listener,
        acceptor,
        Arc::new(config),
        service,
        limits,
    ));

    let url = format!(
        "xmlrpc+https://127.0.0.1:{port}/RPC2?cert={0}/alice.pem&key={0}/alice.key&ca={0}/ca.pem",
        d.display()
    );
    let client = XmlRpcStore::open(&url)?;
    for round in 1..=3 {
        let started = Instant::now();
        let events = client.events(&id)?;
        let took = started.elapsed();
        anyhow::ensure!(events.len() == count, "got {} events", events.len());
        println!(
            "round {round}: {count} events over XML-RPC/HTTPS in {:.3} s ({})",
            took.as_secs_f64(),
            if took.as_secs_f64() < 3.0 {
                "goal < 3 s met"
            } else {
                "GOAL < 3 s MISSED"
            }
        );
    }
    Ok(())
}
