//! Protocol violations (§5.4) from raw sockets close only the offending
//! connection, with Disconn 4 and a readable reason, while other clients
//! keep working; the idle timeout closes channels without a session;
//! limits protect the router (Packet.Max-Length before and after
//! negotiation, expression length, max connections).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, emulab_event, eventd, eventd_with, options};
use elvin_proto::codes::{disconn, nack};
use elvin_proto::{ConnRqst, DisconnRqst, Keys, NotifyEmit, Packet, SubAddRqst, Value, raw};

/// A bystander that must keep receiving while others misbehave.
struct Bystander {
    sub: Client,
    producer: Client,
    seq: i32,
}

impl Bystander {
    fn new(router: &common::InProcess) -> Bystander {
        let mut sub = Client::connect(router.addr());
        sub.subscribe(r#"EXPT == "p/bystander""#);
        Bystander {
            sub,
            producer: Client::connect(router.addr()),
            seq: 0,
        }
    }

    fn still_works(&mut self) {
        self.seq += 1;
        self.producer.emit(emulab_event("p/bystander", self.seq));
        let d = self.sub.recv_deliver();
        assert_eq!(d.attributes.get_i32("seq"), Some(self.seq));
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    raw::put_u32(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn encoded(packet: impl Into<Packet>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.into().encode(&mut out);
    out
}

#[test]
fn every_violation_closes_only_its_connection() {
    let router = eventd();
    let mut bystander = Bystander::new(&router);

    let cases: Vec<(&str, bool, Vec<u8>, &str)> = vec![
        // (name, connect first, bytes, expected text fragment)
        (
            "NotifyEmit before ConnRqst",
            false,
            encoded(NotifyEmit {
                attributes: emulab_event("p/bystander", 999),
                deliver_insecure: true,
                keys: Keys::new(),
            }),
            "No connection established for session",
        ),
        (
            "SubAddRqst before ConnRqst",
            false,
            encoded(SubAddRqst {
                xid: 1,
                expression: "a == 1".into(),
                accept_insecure: true,
                keys: Keys::new(),
            }),
            "No connection established for session",
        ),
        (
            "DisconnRqst before ConnRqst",
            false,
            encoded(DisconnRqst { xid: 1 }),
            "No connection established for session",
        ),
        (
            "second ConnRqst",
            true,
            encoded(ConnRqst {
                xid: 9,
                client_major: 4,
                client_minor: 0,
                options: vec![],
                notification_keys: Keys::new(),
                subscription_keys: Keys::new(),
            }),
            "Already connected",
        ),
        (
            "unknown packet id",
            true,
            frame(&7i32.to_be_bytes()),
            "Unknown message type: ID = 7",
        ),
        (
            "unaligned frame length",
            true,
            vec![0, 0, 0, 5, 0, 0, 0, 63, 0],
            "Frame length not 4 byte aligned",
        ),
        (
            "bad boolean",
            true,
            {
                let mut body = Vec::new();
                raw::put_i32(&mut body, 56);
                raw::put_count(&mut body, 0);
                raw::put_i32(&mut body, 2);
                raw::put_count(&mut body, 0);
                frame(&body)
            },
            "Error decoding NotifyEmit",
        ),
        (
            "leftover bytes",
            true,
            {
                let mut body = Vec::new();
                raw::put_i32(&mut body, 63);
                raw::put_i32(&mut body, 0);
                frame(&body)
            },
            "Error decoding TestConn",
        ),
        (
            "bad key scheme",
            true,
            {
                let mut body = Vec::new();
                raw::put_i32(&mut body, 58);
                raw::put_i32(&mut body, 1);
                raw::put_str(&mut body, "a == 1");
                raw::put_bool(&mut body, true);
                raw::put_count(&mut body, 1);
                raw::put_i32(&mut body, 9);
                raw::put_i32(&mut body, 1);
                raw::put_count(&mut body, 0);
                frame(&body)
            },
            "unknown key scheme 9",
        ),
        (
            "zero xid",
            true,
            encoded(DisconnRqst { xid: 0 }),
            "transaction id 0",
        ),
        (
            "bad UTF-8",
            true,
            {
                let mut body = Vec::new();
                raw::put_i32(&mut body, 58);
                raw::put_i32(&mut body, 1);
                raw::put_opaque(&mut body, &[0xff, 0xfe]);
                raw::put_bool(&mut body, true);
                raw::put_count(&mut body, 0);
                frame(&body)
            },
            "UTF-8",
        ),
    ];

    for (name, connect, bytes, expected) in cases {
        let mut bad = if connect {
            Client::connect(router.addr())
        } else {
            Client::open(router.addr())
        };
        bad.send_raw(&bytes);
        let text = bad.expect_disconn(disconn::PROTOCOL_VIOLATION);
        assert!(
            text.contains(expected),
            "{name}: Disconn text {text:?} lacks {expected:?}"
        );
        bystander.still_works();
    }
    // The NotifyEmit sent before ConnRqst was not delivered.
    bystander.sub.expect_nothing();
}

#[test]
fn oversize_frames_are_refused_before_and_after_negotiation() {
    let router = eventd();
    let mut bystander = Bystander::new(&router);

    // Before ConnRqst the configured 2 MiB applies to the header alone.
    let mut early = Client::open(router.addr());
    early.send_raw(&(3u32 * 1024 * 1024).to_be_bytes());
    let text = early.expect_disconn(disconn::PROTOCOL_VIOLATION);
    assert!(text.contains("Packet.Max-Length"), "{text}");
    bystander.still_works();

    // After negotiating 4096, a 5000-byte notification is refused.
    let mut small = Client::open(router.addr());
    small.handshake(options(&[("Packet.Max-Length", Value::Int32(4096))]));
    let mut attrs = emulab_event("p/x", 1);
    attrs.insert("blob", vec![0u8; 5000]);
    small.send(NotifyEmit {
        attributes: attrs,
        deliver_insecure: true,
        keys: Keys::new(),
    });
    let text = small.expect_disconn(disconn::PROTOCOL_VIOLATION);
    assert!(text.contains("larger than maximum 4096"), "{text}");
    bystander.still_works();

    // A client that negotiated a small maximum does not receive larger
    // notifications (they are dropped for it, not sent oversize).
    let mut receiver = Client::open(router.addr());
    receiver.handshake(options(&[("Packet.Max-Length", Value::Int32(1024))]));
    receiver.subscribe(r#"EXPT == "p/big""#);
    let mut producer = Client::connect(router.addr());
    let mut big = emulab_event("p/big", 1);
    big.insert("blob", vec![0u8; 2000]);
    producer.emit(big);
    producer.emit(emulab_event("p/big", 2));
    assert!(matches!(receiver.recv(), Packet::DropWarn(_)));
    assert_eq!(receiver.recv_deliver().attributes.get_i32("seq"), Some(2));
}

#[test]
fn long_expressions_are_refused() {
    let router = eventd_with(|f| f.subscription_max_length = Some(64));
    let mut client = Client::connect(router.addr());
    let long = format!("a == \"{}\"", "x".repeat(80));
    match client.sub_add(&long, true, Keys::new()) {
        Packet::Nack(n) => {
            assert_eq!(n.error, nack::IMPL_LIMIT);
            assert_eq!(n.message, "Subscription too long");
        }
        other => panic!("expected Nack 2006, got {other:?}"),
    }
    client.subscribe("a == 1");
}

#[test]
fn channels_without_a_session_are_closed_after_the_idle_timeout() {
    let router = eventd_with(|f| f.idle_timeout = Some(0.5));
    let mut bystander = Bystander::new(&router);
    let started = Instant::now();
    let mut idle = Client::open(router.addr());
    let text = idle.expect_disconn(disconn::PROTOCOL_VIOLATION);
    let waited = started.elapsed();
    assert!(text.contains("ConnRqst or UNotify"), "{text}");
    assert!(
        waited >= Duration::from_millis(400),
        "closed too early: {waited:?}"
    );
    // A session is not subject to it: once a second idle channel, opened
    // now, has been closed by the timeout, the session is still served.
    let mut second_idle = Client::open(router.addr());
    second_idle.expect_disconn(disconn::PROTOCOL_VIOLATION);
    bystander.still_works();
    // TestConn is no substitute for ConnRqst.
    let mut pinger = Client::open(router.addr());
    pinger.send(elvin_proto::TestConn);
    assert!(matches!(pinger.recv(), Packet::ConfConn(_)));
    pinger.expect_disconn(disconn::PROTOCOL_VIOLATION);
}

/// Opens a session, or `None` if the router closes the connection.
fn try_session(router: &common::InProcess) -> Option<Client> {
    let mut client = Client::open(router.addr());
    client.send(ConnRqst {
        xid: 1,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: Keys::new(),
        subscription_keys: Keys::new(),
    });
    match client.recv_within(Duration::from_secs(5)) {
        Some(Packet::ConnRply(_)) => Some(client),
        None => None,
        Some(other) => panic!("expected ConnRply or a refusal, got {other:?}"),
    }
}

/// Opens `n` sessions, retrying while connections that are still closing
/// (such as the test kit's readiness probe) hold places.
fn sessions(router: &common::InProcess, n: usize) -> Vec<Client> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut clients = Vec::new();
    while clients.len() < n {
        match try_session(router) {
            Some(client) => clients.push(client),
            None => {
                assert!(Instant::now() < deadline, "could not open {n} sessions");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    clients
}

#[test]
fn connections_beyond_the_maximum_are_refused() {
    let router = eventd_with(|f| f.max_connections = Some(3));
    let mut clients = sessions(&router, 3);
    let mut refused = Client::open(router.addr());
    refused.expect_closed();
    // Those inside still work.
    clients[0].subscribe("a == 1");
    // Room again after one leaves.
    clients.pop();
    let mut again = sessions(&router, 1);
    again[0].subscribe("a == 1");
}
