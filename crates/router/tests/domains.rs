//! Routing domains and per-endpoint limits through the real `eventd`: one
//! process serving the public port and the control bus keeps them apart
//! (nothing crosses unless the operator puts both listeners in one domain),
//! a flood of connections on one endpoint cannot lock out another, and an
//! optional cap per source address holds.
//!
//! "Nothing arrives" is checked with a sentinel: after the notification
//! that must not cross, a second one is sent on the subscriber's own side;
//! it must be the next thing the subscriber sees.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, emulab_event};
use elvin_proto::Packet;
use tbevents_testkit::{Proc, free_port, wait_for_port};

/// An eventd with two listeners on free ports; `public_opts` and
/// `control_opts` are appended to the two listen URIs.
struct TwoPorts {
    _proc: Proc,
    public: SocketAddr,
    control: SocketAddr,
}

fn two_ports(public_opts: &str, control_opts: &str, extra: &[&str]) -> TwoPorts {
    let (p, c) = (free_port(), free_port());
    let public_uri = format!("elvin://127.0.0.1:{p}{public_opts}");
    let control_uri = format!("elvin://127.0.0.1:{c}{control_opts}");
    let mut args = vec!["--listen", &public_uri, "--listen", &control_uri];
    args.extend_from_slice(extra);
    let proc = Proc::start("eventd", &args);
    let public = SocketAddr::from(([127, 0, 0, 1], p));
    let control = SocketAddr::from(([127, 0, 0, 1], c));
    wait_for_port(public, Duration::from_secs(20));
    wait_for_port(control, Duration::from_secs(20));
    TwoPorts {
        _proc: proc,
        public,
        control,
    }
}

/// `subscriber` (subscribed to `EXPT == "p/x"`) sees `sentinel_from`'s
/// sentinel next, so nothing sent before it reached the subscriber.
fn only_the_sentinel_arrives(subscriber: &mut Client, sentinel_from: &mut Client) {
    sentinel_from.emit(emulab_event("p/x", 999));
    let deliver = subscriber.recv_deliver();
    assert_eq!(
        deliver.attributes.get("seq"),
        Some(&elvin_proto::Value::Int32(999)),
        "a notification crossed domains: {deliver:?}"
    );
}

#[test]
fn each_listener_is_its_own_domain_by_default() {
    let router = two_ports("", "", &[]);
    let mut public_sub = Client::connect(router.public);
    let mut control_sub = Client::connect(router.control);
    let mut public_pub = Client::connect(router.public);
    let mut control_pub = Client::connect(router.control);
    public_sub.subscribe(r#"EXPT == "p/x""#);
    control_sub.subscribe(r#"EXPT == "p/x""#);
    // A public producer never reaches the control bus ...
    public_pub.emit(emulab_event("p/x", 1));
    assert_eq!(
        public_sub.recv_deliver().attributes.get("seq"),
        Some(&elvin_proto::Value::Int32(1))
    );
    only_the_sentinel_arrives(&mut control_sub, &mut control_pub);
    // ... and a control producer never reaches the public side.
    control_pub.emit(emulab_event("p/x", 2));
    only_the_sentinel_arrives(&mut public_sub, &mut public_pub);
}

#[test]
fn listeners_in_one_named_domain_share_it() {
    let router = two_ports(";domain=bus", ";domain=bus", &[]);
    let mut control_sub = Client::connect(router.control);
    let mut public_pub = Client::connect(router.public);
    control_sub.subscribe(r#"EXPT == "p/x""#);
    public_pub.emit(emulab_event("p/x", 7));
    assert_eq!(
        control_sub.recv_deliver().attributes.get("seq"),
        Some(&elvin_proto::Value::Int32(7))
    );
}

/// Connects and completes the handshake, or `None` if the router closes
/// the connection instead.
fn try_session(addr: SocketAddr) -> Option<Client> {
    let mut client = Client::open(addr);
    client.send(elvin_proto::ConnRqst {
        xid: 1,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: elvin_proto::Keys::new(),
        subscription_keys: elvin_proto::Keys::new(),
    });
    match client.recv_within(Duration::from_secs(5)) {
        Some(Packet::ConnRply(_)) => Some(client),
        _ => None,
    }
}

/// A session, retrying while connections the start-up probe opened are
/// still being closed by the router.
fn session_soon(addr: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(client) = try_session(addr) {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "no session on {addr} within 10 s"
        );
    }
}

#[test]
fn a_full_public_endpoint_does_not_lock_out_the_control_bus() {
    let router = two_ports("", "", &["--max-connections", "3"]);
    let held: Vec<Client> = (0..3).map(|_| session_soon(router.public)).collect();
    assert!(
        try_session(router.public).is_none(),
        "a 4th public connection must be refused"
    );
    // The control endpoint has its own budget.
    let mut control = try_session(router.control).expect("the control bus still accepts");
    control.subscribe(r#"EXPT == "p/x""#);
    drop(held);
    // Once public connections close, the endpoint accepts again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_session(router.public).is_none() {
        assert!(
            Instant::now() < deadline,
            "the public endpoint never recovered"
        );
    }
}

#[test]
fn an_endpoint_limit_in_the_listen_uri_and_a_cap_per_source() {
    let router = two_ports(
        ";max_connections=1",
        "",
        &["--max-connections-per-source", "2"],
    );
    let first = session_soon(router.public);
    assert!(try_session(router.public).is_none(), "public allows 1");
    let second = session_soon(router.control);
    assert!(
        try_session(router.control).is_none(),
        "a third from 127.0.0.1 is over the per-source cap"
    );
    drop((first, second));
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_session(router.control).is_none() {
        assert!(Instant::now() < deadline, "the cap was never released");
    }
}

#[test]
fn a_bad_listen_option_is_a_configuration_error() {
    let port = free_port();
    let listen = format!("elvin://127.0.0.1:{port};colour=blue");
    let mut proc = Proc::start("eventd", ["--listen", listen.as_str()]);
    let status = proc.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2));
    assert!(
        proc.stderr().contains("unknown listen option"),
        "{}",
        proc.stderr()
    );
}
