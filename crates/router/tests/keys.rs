//! Secure delivery (docs/protocol.md §8) through the real router: the producer,
//! consumer and dual SHA-1 schemes, keys on connections and on messages,
//! secure/insecure id placement and accept_insecure = false.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{Client, eventd, eventd_with};
use elvin_proto::keys::sha1_public_key;
use elvin_proto::{Attributes, ConnRqst, KeyEntry, Keys, NotifyEmit, Packet};

fn public(private: &[u8]) -> Vec<u8> {
    sha1_public_key(private).to_vec()
}

fn subscribe(client: &mut Client, accept_insecure: bool, keys: Keys) -> i64 {
    match client.sub_add("n == 1", accept_insecure, keys) {
        Packet::SubRply(r) => r.subscription_id,
        other => panic!("expected SubRply, got {other:?}"),
    }
}

fn emit(client: &mut Client, deliver_insecure: bool, keys: Keys) {
    client.send(NotifyEmit {
        attributes: Attributes::from_iter([("n", 1)]),
        deliver_insecure,
        keys,
    });
}

/// (secure, insecure) ids of the next delivery, sorted.
fn ids(client: &mut Client) -> (Vec<i64>, Vec<i64>) {
    let mut d = client.recv_deliver();
    d.secure_matches.sort_unstable();
    d.insecure_matches.sort_unstable();
    (d.secure_matches, d.insecure_matches)
}

#[test]
fn producer_scheme_identifies_the_sender() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let secret = b"alice".to_vec();
    // Knows alice's public key; accepts only secure.
    let keyed = subscribe(
        &mut sub,
        false,
        Keys {
            entries: vec![KeyEntry::Producer(vec![public(&secret)])],
        },
    );
    // No keys, accepts insecure.
    let open = subscribe(&mut sub, true, Keys::new());
    // A subscription keyed to someone else that does not accept insecure.
    let _other = subscribe(
        &mut sub,
        false,
        Keys {
            entries: vec![KeyEntry::Producer(vec![public(b"mallory")])],
        },
    );

    let signed = Keys {
        entries: vec![KeyEntry::Producer(vec![secret.clone()])],
    };
    // Keys and deliver_insecure: secure to the keyed one, insecure to the
    // open one.
    emit(&mut producer, true, signed.clone());
    assert_eq!(ids(&mut sub), (vec![keyed], vec![open]));
    // Keys and deliver_insecure false: only the keyed one.
    emit(&mut producer, false, signed);
    assert_eq!(ids(&mut sub), (vec![keyed], vec![]));
    // No keys, insecure: only the open one.
    emit(&mut producer, true, Keys::new());
    assert_eq!(ids(&mut sub), (vec![], vec![open]));
    // A wrong key, not insecure: nothing.
    emit(
        &mut producer,
        false,
        Keys {
            entries: vec![KeyEntry::Producer(vec![b"eve".to_vec()])],
        },
    );
    producer.sync();
    sub.expect_nothing();
}

#[test]
fn consumer_scheme_lets_the_producer_choose_receivers() {
    let router = eventd();
    let mut bob = Client::connect(router.addr());
    let mut carol = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let bob_id = subscribe(
        &mut bob,
        false,
        Keys {
            entries: vec![KeyEntry::Consumer(vec![b"bob-secret".to_vec()])],
        },
    );
    subscribe(
        &mut carol,
        false,
        Keys {
            entries: vec![KeyEntry::Consumer(vec![b"carol-secret".to_vec()])],
        },
    );
    // The producer names bob by his public key.
    emit(
        &mut producer,
        false,
        Keys {
            entries: vec![KeyEntry::Consumer(vec![public(b"bob-secret")])],
        },
    );
    assert_eq!(ids(&mut bob), (vec![bob_id], vec![]));
    producer.sync();
    carol.expect_nothing();
}

#[test]
fn dual_scheme_needs_both_halves() {
    let router = eventd();
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let dual_sub = Keys {
        entries: vec![KeyEntry::Dual {
            producer: vec![public(b"prod")],
            consumer: vec![b"cons".to_vec()],
        }],
    };
    let id = subscribe(&mut sub, false, dual_sub);
    // Both halves match.
    emit(
        &mut producer,
        false,
        Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![b"prod".to_vec()],
                consumer: vec![public(b"cons")],
            }],
        },
    );
    assert_eq!(ids(&mut sub), (vec![id], vec![]));
    // Only the producer half: no match.
    emit(
        &mut producer,
        false,
        Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![b"prod".to_vec()],
                consumer: vec![public(b"someone-else")],
            }],
        },
    );
    producer.sync();
    sub.expect_nothing();
}

#[test]
fn connection_keys_apply_to_every_notification_and_subscription() {
    let router = eventd();
    let secret = b"conn-secret".to_vec();
    // Subscriber: connection subscription keys hold the producer's public key.
    let mut sub = Client::open(router.addr());
    sub.send(ConnRqst {
        xid: 1,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: Keys::new(),
        subscription_keys: Keys {
            entries: vec![KeyEntry::Producer(vec![public(&secret)])],
        },
    });
    assert!(matches!(sub.recv(), Packet::ConnRply(_)));
    // Producer: connection notification keys hold the private key.
    let mut producer = Client::open(router.addr());
    producer.send(ConnRqst {
        xid: 1,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: Keys {
            entries: vec![KeyEntry::Producer(vec![secret])],
        },
        subscription_keys: Keys::new(),
    });
    assert!(matches!(producer.recv(), Packet::ConnRply(_)));
    let id = subscribe(&mut sub, false, Keys::new());
    emit(&mut producer, false, Keys::new());
    assert_eq!(ids(&mut sub), (vec![id], vec![]));
    // A UNotify uses only its own keys: the connection keys of a session
    // do not apply, so this one is not delivered.
    let mut unotifier = Client::open(router.addr());
    unotifier.send(elvin_proto::UNotify {
        client_major: 4,
        client_minor: 0,
        attributes: Attributes::from_iter([("n", 1)]),
        deliver_insecure: false,
        keys: Keys::new(),
    });
    // The router has handled the UNotify once it closes the channel
    // behind it.
    unotifier
        .stream
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    unotifier.expect_closed();
    sub.expect_nothing();
}

#[test]
fn too_many_subscription_keys_are_nacked() {
    let router = eventd_with(|f| f.subscription_max_keys = Some(1));
    let mut sub = Client::connect(router.addr());
    let reply = sub.sub_add(
        "n == 1",
        true,
        Keys {
            entries: vec![KeyEntry::Producer(vec![b"a".to_vec(), b"b".to_vec()])],
        },
    );
    match reply {
        Packet::Nack(n) => {
            assert_eq!(n.error, elvin_proto::codes::nack::IMPL_LIMIT);
            assert_eq!(n.message, "Too many keys");
        }
        other => panic!("expected Nack 2006, got {other:?}"),
    }
}

#[test]
fn submod_adds_and_removes_subscription_keys() {
    let router = eventd_with(|f| f.subscription_max_keys = Some(2));
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    let id = subscribe(&mut sub, false, Keys::new());
    let signed = Keys {
        entries: vec![KeyEntry::Producer(vec![b"k1".to_vec()])],
    };
    let modify = |sub: &mut Client, add: Keys, del: Keys| {
        let xid = sub.xid();
        sub.send(elvin_proto::SubModRqst {
            xid,
            subscription_id: id,
            expression: String::new(),
            accept_insecure: false,
            add_keys: add,
            del_keys: del,
        });
        sub.recv()
    };
    // Without keys the secure-only subscription gets nothing.
    emit(&mut producer, false, signed.clone());
    producer.sync();
    sub.expect_nothing();
    // Adding the producer's public key makes it a secure match.
    let public_k1 = Keys {
        entries: vec![KeyEntry::Producer(vec![public(b"k1")])],
    };
    assert!(matches!(
        modify(&mut sub, public_k1.clone(), Keys::new()),
        Packet::SubRply(_)
    ));
    emit(&mut producer, false, signed.clone());
    assert_eq!(ids(&mut sub), (vec![id], vec![]));
    // Over the per-subscription limit: Nack 2006 and nothing changes.
    let two_more = Keys {
        entries: vec![KeyEntry::Producer(vec![public(b"k2"), public(b"k3")])],
    };
    match modify(&mut sub, two_more, Keys::new()) {
        Packet::Nack(n) => assert_eq!(n.error, elvin_proto::codes::nack::IMPL_LIMIT),
        other => panic!("expected Nack 2006, got {other:?}"),
    }
    emit(&mut producer, false, signed.clone());
    assert_eq!(ids(&mut sub), (vec![id], vec![]));
    // Removing the key ends the secure match.
    assert!(matches!(
        modify(&mut sub, Keys::new(), public_k1),
        Packet::SubRply(_)
    ));
    emit(&mut producer, false, signed);
    producer.sync();
    sub.expect_nothing();
}
