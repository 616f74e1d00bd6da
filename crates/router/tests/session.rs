//! Every packet exchange of docs/protocol.md §5 against the real `eventd` over
//! loopback TCP: connection and negotiation, subscriptions, delivery,
//! UNotify, TestConn, SecRqst, disconnection, and the unimplemented
//! optional features.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{Client, emulab_event, eventd, eventd_with, option, options};
use elvin_proto::codes::nack;
use elvin_proto::options::VENDOR_IDENTIFICATION;
use elvin_proto::{
    Attributes, ConnRply, ConnRqst, DisconnRqst, Keys, Packet, QnchAddRqst, QnchDelRqst, QosRqst,
    SecRqst, SubDelRqst, SubModRqst, UNotify, Value,
};

#[test]
fn connrqst_gets_connrply_with_vendor_and_key_schemes() {
    let router = eventd();
    let mut client = Client::open(router.addr());
    let reply = client.handshake(vec![]);
    assert_eq!(
        option(&reply, "Vendor-Identification"),
        Some(&Value::String(VENDOR_IDENTIFICATION.into()))
    );
    assert_eq!(
        option(&reply, "router.vendor-identification"),
        Some(&Value::String(VENDOR_IDENTIFICATION.into()))
    );
    assert_eq!(
        option(&reply, "Supported-Key-Schemes"),
        Some(&Value::String("SHA-1".into()))
    );
    assert_eq!(reply.len(), 3);
}

#[test]
fn negotiation_follows_the_rules_for_every_kind_of_request() {
    let router = eventd();
    let mut client = Client::open(router.addr());
    let reply = client.handshake(options(&[
        ("Packet.Max-Length", Value::Int32(8192)),
        ("router.subscription.max-count", Value::Int32(100)),
        ("router.coalesce-delay", Value::Int32(0)),
        ("Subscription.Max-Length", Value::String("1024".into())),
        ("Send-Queue.Drop-Policy", Value::String("bogus".into())),
        ("Attribute.Max-Count", Value::Int32(64)),
        ("No.Such-Option", Value::Int32(5)),
    ]));
    // Accepted: echoed as requested.
    assert_eq!(
        option(&reply, "Packet.Max-Length"),
        Some(&Value::Int32(8192))
    );
    // Legacy name answered under the legacy spelling.
    assert_eq!(
        option(&reply, "router.subscription.max-count"),
        Some(&Value::Int32(100))
    );
    assert!(option(&reply, "Subscription.Max-Count").is_none());
    // coalesce-delay 0 (send immediately) accepted and echoed in legacy terms.
    assert_eq!(
        option(&reply, "router.coalesce-delay"),
        Some(&Value::Int32(0))
    );
    // Wrong type and invalid value: the value in effect.
    assert_eq!(
        option(&reply, "Subscription.Max-Length"),
        Some(&Value::Int32(2048))
    );
    assert_eq!(
        option(&reply, "Send-Queue.Drop-Policy"),
        Some(&Value::String("oldest".into()))
    );
    assert_eq!(
        option(&reply, "Attribute.Max-Count"),
        Some(&Value::Int32(i32::MAX))
    );
    // Unknown: omitted.
    assert!(option(&reply, "No.Such-Option").is_none());
}

#[test]
fn negotiated_subscription_count_is_enforced() {
    let router = eventd();
    let mut client = Client::open(router.addr());
    client.handshake(options(&[(
        "router.subscription.max-count",
        Value::Int32(16),
    )]));
    for i in 0..16 {
        client.subscribe(&format!("n == {i}"));
    }
    match client.sub_add("n == 99", true, Keys::new()) {
        Packet::Nack(n) => {
            assert_eq!(n.error, nack::IMPL_LIMIT);
            assert_eq!(n.message, "Too many subscriptions");
        }
        other => panic!("expected Nack 2006, got {other:?}"),
    }
}

#[test]
fn wrong_version_is_nacked_and_the_socket_stays_open() {
    let router = eventd();
    let mut client = Client::open(router.addr());
    client.send(ConnRqst {
        xid: 7,
        client_major: 4,
        client_minor: 1,
        options: vec![],
        notification_keys: Keys::new(),
        subscription_keys: Keys::new(),
    });
    match client.recv() {
        Packet::Nack(n) => {
            assert_eq!((n.xid, n.error), (7, nack::PROT_INCOMPAT));
            assert!(n.message.contains("4.0"), "{}", n.message);
        }
        other => panic!("expected Nack 1, got {other:?}"),
    }
    // Still unconnected and still open: a correct ConnRqst now works.
    client.handshake(vec![]);
    client.subscribe("a == 1");
}

#[test]
fn too_many_connection_keys_are_nacked() {
    let router = eventd_with(|f| f.connection_max_keys = Some(2));
    let mut client = Client::open(router.addr());
    let keys = Keys {
        entries: vec![elvin_proto::KeyEntry::Producer(vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
        ])],
    };
    client.send(ConnRqst {
        xid: 3,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: keys,
        subscription_keys: Keys::new(),
    });
    match client.recv() {
        Packet::Nack(n) => assert_eq!((n.xid, n.error), (3, nack::IMPL_LIMIT)),
        other => panic!("expected Nack 2006, got {other:?}"),
    }
    client.handshake(vec![]);
}

#[test]
fn subscription_requests_get_ids_and_precise_nacks() {
    let router = eventd();
    let mut client = Client::connect(router.addr());
    let first = client.subscribe(r#"EXPT == "p/e""#);
    let second = client.subscribe("SCHEDULER == 0");
    assert_ne!(first, second);
    assert!(first > 0 && second > 0);

    // A parse error: code, message and [column, token].
    match client.sub_add("a == ", true, Keys::new()) {
        Packet::Nack(n) => {
            assert!((2101..=2112).contains(&n.error), "code {}", n.error);
            assert_eq!(n.args.len(), 2);
            assert!(matches!(n.args[0], Value::Int32(_)));
            assert!(matches!(n.args[1], Value::String(_)));
        }
        other => panic!("expected a parse Nack, got {other:?}"),
    }
    // A constant expression.
    match client.sub_add("1 == 1", true, Keys::new()) {
        Packet::Nack(n) => assert_eq!(n.error, nack::EXP_IS_TRIVIAL),
        other => panic!("expected Nack 2110, got {other:?}"),
    }
    // Literal overflow: Avis sent nothing; we say OVERFLOW.
    match client.sub_add("a == 4294967296", true, Keys::new()) {
        Packet::Nack(n) => {
            assert_eq!(n.error, nack::OVERFLOW);
            assert_eq!(n.args[1], Value::String("4294967296".into()));
        }
        other => panic!("expected Nack 2105, got {other:?}"),
    }

    // SubMod with an unknown id: 1002 with the id as int64.
    let xid = client.xid();
    client.send(SubModRqst {
        xid,
        subscription_id: 987_654,
        expression: "a == 1".into(),
        accept_insecure: true,
        add_keys: Keys::new(),
        del_keys: Keys::new(),
    });
    match client.recv() {
        Packet::Nack(n) => {
            assert_eq!((n.xid, n.error), (xid, nack::NO_SUCH_SUB));
            assert_eq!(n.args, [Value::Int64(987_654)]);
        }
        other => panic!("expected Nack 1002, got {other:?}"),
    }

    // SubDel: the reply carries the deleted id; again is 1002.
    let xid = client.xid();
    client.send(SubDelRqst {
        xid,
        subscription_id: second,
    });
    match client.recv() {
        Packet::SubRply(r) => assert_eq!((r.xid, r.subscription_id), (xid, second)),
        other => panic!("expected SubRply, got {other:?}"),
    }
    let xid = client.xid();
    client.send(SubDelRqst {
        xid,
        subscription_id: second,
    });
    match client.recv() {
        Packet::Nack(n) => {
            assert_eq!(n.error, nack::NO_SUCH_SUB);
            assert_eq!(n.args, [Value::Int64(second)]);
        }
        other => panic!("expected Nack 1002, got {other:?}"),
    }
}

#[test]
fn submod_changes_or_keeps_the_expression() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let id = sub.subscribe("n == 1");

    // A bad expression: Nack, and the old subscription still works.
    let xid = sub.xid();
    sub.send(SubModRqst {
        xid,
        subscription_id: id,
        expression: "n ==".into(),
        accept_insecure: true,
        add_keys: Keys::new(),
        del_keys: Keys::new(),
    });
    assert!(matches!(sub.recv(), Packet::Nack(_)));
    producer.emit(Attributes::from_iter([("n", 1)]));
    assert_eq!(sub.recv_deliver().insecure_matches, [id]);

    // An empty expression keeps it (the id stays).
    let xid = sub.xid();
    sub.send(SubModRqst {
        xid,
        subscription_id: id,
        expression: String::new(),
        accept_insecure: true,
        add_keys: Keys::new(),
        del_keys: Keys::new(),
    });
    match sub.recv() {
        Packet::SubRply(r) => assert_eq!(r.subscription_id, id),
        other => panic!("expected SubRply, got {other:?}"),
    }
    producer.emit(Attributes::from_iter([("n", 1)]));
    assert_eq!(sub.recv_deliver().insecure_matches, [id]);

    // A new expression replaces it.
    let xid = sub.xid();
    sub.send(SubModRqst {
        xid,
        subscription_id: id,
        expression: "n == 2".into(),
        accept_insecure: true,
        add_keys: Keys::new(),
        del_keys: Keys::new(),
    });
    assert!(matches!(sub.recv(), Packet::SubRply(_)));
    producer.emit(Attributes::from_iter([("n", 1)]));
    producer.emit(Attributes::from_iter([("n", 2)]));
    let d = sub.recv_deliver();
    assert_eq!(d.attributes.get_i32("n"), Some(2));
    assert_eq!(d.insecure_matches, [id]);
}

#[test]
fn one_deliver_per_client_listing_all_matching_subscriptions() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut other = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let a = sub.subscribe(r#"EXPT == "p/e""#);
    let b = sub.subscribe("SCHEDULER == 0");
    let _c = sub.subscribe(r#"EXPT == "p/nothing""#);
    let o = other.subscribe(r#"OBJNAME == "link0""#);
    producer.emit(emulab_event("p/e", 1));
    let d = sub.recv_deliver();
    let mut ids = d.insecure_matches.clone();
    ids.sort_unstable();
    assert_eq!(ids, [a, b]);
    assert!(d.secure_matches.is_empty());
    assert_eq!(d.attributes, emulab_event("p/e", 1));
    assert_eq!(other.recv_deliver().insecure_matches, [o]);
    // Exactly one each.
    sub.expect_nothing();
    other.expect_nothing();
    // The producer has no subscription: nothing for it.
    producer.expect_nothing();
}

#[test]
fn function_calls_with_a_space_before_the_paren_are_accepted_and_match() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    // The Elvin draft's own example, as existing clients send it.
    let id = sub.subscribe(
        "Presence-Protocol < 2000 && string (Groups) && fold-case (User) != \"matthew@home\"",
    );
    let spaced = sub
        .subscribe("require (Groups) && begins-with\t(User, \"M\") && int32 (Presence-Protocol)");
    let mut present = Attributes::new();
    present.insert("Presence-Protocol", 1000);
    present.insert("Groups", "elvin");
    present.insert("User", "Matthew@Work");
    producer.emit(present);
    let mut ids = sub.recv_deliver().insecure_matches;
    ids.sort_unstable();
    assert_eq!(ids, [id, spaced]);
}

#[test]
fn a_repeated_attribute_is_delivered_once_with_its_last_value() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let id = sub.subscribe("n == 2");
    // Attributes::insert replaces, so write the repeated name by hand.
    let mut body = Vec::new();
    elvin_proto::raw::put_i32(
        &mut body,
        <elvin_proto::NotifyEmit as elvin_proto::Message>::ID,
    );
    elvin_proto::raw::put_count(&mut body, 3);
    for (name, value) in [("n", 1), ("m", 7), ("n", 2)] {
        elvin_proto::raw::put_str(&mut body, name);
        elvin_proto::raw::put_value(&mut body, elvin_proto::ValueRef::Int32(value));
    }
    elvin_proto::raw::put_bool(&mut body, true);
    elvin_proto::raw::put_count(&mut body, 0);
    let mut frame = Vec::new();
    elvin_proto::raw::put_u32(&mut frame, body.len() as u32);
    frame.extend_from_slice(&body);
    producer.send_raw(&frame);
    let delivered = sub.recv_deliver();
    assert_eq!(delivered.insecure_matches, [id]);
    let mut expected = Attributes::new();
    expected.insert("n", 2);
    expected.insert("m", 7);
    assert_eq!(delivered.attributes, expected);
    assert_eq!(delivered.attributes.len(), 2, "one copy of n");
}

#[test]
fn producers_receive_their_own_notifications() {
    let router = eventd();
    let mut client = Client::connect(router.addr());
    let id = client.subscribe(r#"EXPT == "p/self""#);
    client.emit(emulab_event("p/self", 1));
    assert_eq!(client.recv_deliver().insecure_matches, [id]);
}

#[test]
fn a_thousand_notifications_arrive_in_order() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    sub.subscribe(r#"EXPT == "p/order""#);
    for seq in 0..1000 {
        producer.emit(emulab_event("p/order", seq));
    }
    for seq in 0..1000 {
        let d = sub.recv_deliver();
        assert_eq!(d.attributes.get_i32("seq"), Some(seq));
    }
}

#[test]
fn unotify_is_delivered_without_a_session_and_never_answered() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let id = sub.subscribe(r#"EXPT == "p/u""#);
    let mut sender = Client::open(router.addr());
    for (major, minor, seq) in [(4, 0, 1), (4, 1, 2), (5, 0, 3), (4, 0, 4)] {
        sender.send(UNotify {
            client_major: major,
            client_minor: minor,
            attributes: emulab_event("p/u", seq),
            deliver_insecure: true,
            keys: Keys::new(),
        });
    }
    // Only the 4.0 ones arrive, in order.
    let d = sub.recv_deliver();
    assert_eq!(d.attributes.get_i32("seq"), Some(1));
    assert_eq!(d.insecure_matches, [id]);
    assert_eq!(sub.recv_deliver().attributes.get_i32("seq"), Some(4));
    sub.expect_nothing();
    sender.expect_nothing();
}

#[test]
fn testconn_is_answered_even_before_connrqst() {
    let router = eventd();
    let mut client = Client::open(router.addr());
    client.send(elvin_proto::TestConn);
    assert!(matches!(client.recv(), Packet::ConfConn(_)));
    client.handshake(vec![]);
    client.send(elvin_proto::TestConn);
    assert!(matches!(client.recv(), Packet::ConfConn(_)));
}

#[test]
fn secrqst_changes_keys_atomically_and_enforces_the_limit() {
    let router = eventd_with(|f| f.connection_max_keys = Some(2));
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let private = b"producer-secret".to_vec();
    let public = elvin_proto::keys::sha1_public_key(&private).to_vec();
    // The subscriber only accepts secure notifications.
    let id = match sub.sub_add("n == 1", false, Keys::new()) {
        Packet::SubRply(r) => r.subscription_id,
        other => panic!("{other:?}"),
    };
    // Subscriber adds the producer's public key to its connection keys;
    // the producer adds its private key to its notification keys.
    let xid = sub.xid();
    sub.send(SecRqst {
        xid,
        add_notification_keys: Keys::new(),
        del_notification_keys: Keys::new(),
        add_subscription_keys: Keys {
            entries: vec![elvin_proto::KeyEntry::Producer(vec![public.clone()])],
        },
        del_subscription_keys: Keys::new(),
    });
    assert_eq!(sub.recv(), Packet::SecRply(elvin_proto::SecRply { xid }));
    let xid = producer.xid();
    producer.send(SecRqst {
        xid,
        add_notification_keys: Keys {
            entries: vec![elvin_proto::KeyEntry::Producer(vec![private.clone()])],
        },
        del_notification_keys: Keys::new(),
        add_subscription_keys: Keys::new(),
        del_subscription_keys: Keys::new(),
    });
    assert!(matches!(producer.recv(), Packet::SecRply(_)));
    producer.send(elvin_proto::NotifyEmit {
        attributes: Attributes::from_iter([("n", 1)]),
        deliver_insecure: false,
        keys: Keys::new(),
    });
    let d = sub.recv_deliver();
    assert_eq!((d.secure_matches, d.insecure_matches), (vec![id], vec![]));

    // Three keys where two are allowed: Nack 2006 and no change.
    let xid = producer.xid();
    producer.send(SecRqst {
        xid,
        add_notification_keys: Keys {
            entries: vec![elvin_proto::KeyEntry::Producer(vec![
                b"x".to_vec(),
                b"y".to_vec(),
            ])],
        },
        del_notification_keys: Keys::new(),
        add_subscription_keys: Keys::new(),
        del_subscription_keys: Keys::new(),
    });
    match producer.recv() {
        Packet::Nack(n) => assert_eq!((n.xid, n.error), (xid, nack::IMPL_LIMIT)),
        other => panic!("expected Nack 2006, got {other:?}"),
    }
    // Removing the key (and a missing one, ignored) stops secure delivery.
    let xid = producer.xid();
    producer.send(SecRqst {
        xid,
        add_notification_keys: Keys::new(),
        del_notification_keys: Keys {
            entries: vec![elvin_proto::KeyEntry::Producer(vec![
                private,
                b"never-added".to_vec(),
            ])],
        },
        add_subscription_keys: Keys::new(),
        del_subscription_keys: Keys::new(),
    });
    assert!(matches!(producer.recv(), Packet::SecRply(_)));
    producer.send(elvin_proto::NotifyEmit {
        attributes: Attributes::from_iter([("n", 1)]),
        deliver_insecure: false,
        keys: Keys::new(),
    });
    producer.sync();
    sub.expect_nothing();
}

#[test]
fn disconnrqst_gets_disconnrply_then_close() {
    let router = eventd();
    let mut client = Client::connect(router.addr());
    client.subscribe("a == 1");
    client.send(DisconnRqst { xid: 42 });
    assert_eq!(
        client.recv(),
        Packet::DisconnRply(elvin_proto::DisconnRply { xid: 42 })
    );
    client.expect_closed();
}

#[test]
fn qos_and_quench_requests_are_not_implemented() {
    let router = eventd();
    let mut client = Client::connect(router.addr());
    client.send(QosRqst {
        xid: 5,
        options: vec![],
    });
    match client.recv() {
        Packet::Nack(n) => assert_eq!((n.xid, n.error), (5, nack::NOT_IMPL)),
        other => panic!("expected Nack 2007, got {other:?}"),
    }
    client.send(QnchAddRqst {
        xid: 6,
        names: vec!["OBJNAME".into()],
        deliver_insecure: true,
        keys: Keys::new(),
    });
    match client.recv() {
        Packet::Nack(n) => assert_eq!((n.xid, n.error), (6, nack::NOT_IMPL)),
        other => panic!("expected Nack 2007, got {other:?}"),
    }
    client.send(QnchDelRqst {
        xid: 7,
        quench_id: 1,
    });
    match client.recv() {
        Packet::Nack(n) => assert_eq!((n.xid, n.error), (7, nack::NOT_IMPL)),
        other => panic!("expected Nack 2007, got {other:?}"),
    }
    // The connection is still fine.
    client.subscribe("a == 1");
}

#[test]
fn router_packets_sent_by_a_client_are_ignored() {
    let router = eventd();
    let mut client = Client::connect(router.addr());
    client.send(ConnRply {
        xid: 1,
        options: vec![],
    });
    client.send(elvin_proto::DropWarn);
    client.expect_nothing();
    client.subscribe("a == 1");
}

#[test]
fn no_delivery_before_a_subscription() {
    let router = eventd();
    let mut quiet = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    producer.emit(emulab_event("p/e", 1));
    producer.sync();
    quiet.expect_nothing();
}

#[test]
fn nacks_never_exceed_the_clients_packet_limit() {
    let router = eventd_with(|f| f.subscription_max_length = Some(4096));
    let mut client = Client::open(router.addr());
    client.handshake(options(&[("Packet.Max-Length", Value::Int32(1024))]));
    // A 1000-byte expression whose error quotes a long token back.
    let expression = format!("a == \"{}", "x".repeat(990));
    match client.sub_add(&expression, true, Keys::new()) {
        Packet::Nack(n) => {
            let encoded = Packet::Nack(n.clone()).encoded_len();
            assert!(encoded <= 1024, "Nack of {encoded} bytes: {n:?}");
            assert!((2101..=2112).contains(&n.error));
        }
        other => panic!("expected a Nack, got {other:?}"),
    }
}
