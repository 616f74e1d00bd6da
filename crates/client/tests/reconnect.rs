//! Automatic reconnect against a router that goes away and comes back on
//! the same port, and the blocking API end to end.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::ops::ControlFlow;
use std::time::Duration;

use common::{FakeServer, MiniRouter, PROMPT, Seen};
use elvin_client::{
    Attributes, Client, ClientError, ConnectOptions, ConnectionEvent, ConnectionState, KeyChange,
    KeyEntry, Keys, Reconnect, SubscribeOptions, Value,
};
use elvin_proto::Packet;

fn reconnecting(max_retries: Option<u32>) -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .reconnect(Reconnect {
            retry_interval: Duration::from_millis(100),
            max_retries,
        })
}

fn note(n: i32) -> Attributes {
    [("n", Value::Int32(n))].into_iter().collect()
}

async fn next_n(sub: &mut elvin_client::Subscription) -> i32 {
    let n = tokio::time::timeout(PROMPT, sub.recv())
        .await
        .expect("no notification in time")
        .expect("subscription ended");
    n.attributes.get_i32("n").expect("n attribute")
}

#[tokio::test]
async fn subscriptions_survive_a_router_restart_on_the_same_port() {
    let router = MiniRouter::start().await;
    let port = router.port;
    let uri = router.uri();
    let key = Keys {
        entries: vec![KeyEntry::Producer(vec![b"p".to_vec()])],
    };
    let client = Client::connect(uri.as_str(), reconnecting(None))
        .await
        .unwrap();
    let mut events = client.events();
    let mut sub = client
        .subscribe("n > 0", SubscribeOptions::default())
        .await
        .unwrap();
    let first_router_id = sub.router_id().unwrap();
    client
        .set_keys(KeyChange {
            add_notification_keys: key.clone(),
            ..KeyChange::default()
        })
        .await
        .unwrap();
    client.notify(&note(1), true, &Keys::new()).await.unwrap();
    assert_eq!(next_n(&mut sub).await, 1);

    router.stop().await;
    match tokio::time::timeout(PROMPT, events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ConnectionEvent::Lost { error } => assert!(error.is_connection_failure(), "{error:?}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    // While the router is down, notify fails at once with a clear error.
    let error = client
        .notify(&note(2), true, &Keys::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::NotConnected { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("reconnecting"), "{error}");
    assert!(matches!(
        client.state(),
        ConnectionState::Reconnecting { .. }
    ));

    let mut router = MiniRouter::start_on(port).await;
    // The new connection carries the keys set with set_keys.
    match router
        .wait_for(|s| matches!(s, Seen::Connected { .. }))
        .await
    {
        Seen::Connected { rqst, .. } => assert_eq!(rqst.notification_keys, key),
        _ => unreachable!(),
    }
    // The subscription is re-sent without the user doing anything.
    match router
        .wait_for(|s| {
            matches!(
                s,
                Seen::Packet {
                    packet: Packet::SubAddRqst(_),
                    ..
                }
            )
        })
        .await
    {
        Seen::Packet {
            packet: Packet::SubAddRqst(rqst),
            ..
        } => assert_eq!(rqst.expression, "n > 0"),
        _ => unreachable!(),
    }
    loop {
        match tokio::time::timeout(PROMPT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ConnectionEvent::Reconnected {
                resubscribed,
                failed,
                ..
            } => {
                assert_eq!((resubscribed, failed), (1, 0));
                break;
            }
            ConnectionEvent::ReconnectFailed { .. } => continue,
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(client.state().is_connected());
    // Same handle, new router id, deliveries flow again.
    let new_router_id = sub.router_id().unwrap();
    assert_ne!(new_router_id, first_router_id);
    client.notify(&note(3), true, &Keys::new()).await.unwrap();
    assert_eq!(next_n(&mut sub).await, 3);
    client.close().await.unwrap();
}

#[tokio::test]
async fn reconnect_gives_up_after_max_retries() {
    let router = MiniRouter::start().await;
    let client = Client::connect(router.uri(), reconnecting(Some(2)))
        .await
        .unwrap();
    let mut sub = client
        .subscribe("n > 0", SubscribeOptions::default())
        .await
        .unwrap();
    let mut states = client.state_changes();
    router.stop().await;
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    match state {
        ConnectionState::Closed { error: Some(error) } => {
            assert!(matches!(error, ClientError::Refused { .. }), "{error:?}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(sub.recv().await.is_none());
    assert!(matches!(
        sub.end_reason(),
        Some(ClientError::ConnectionLost(_))
    ));
}

#[tokio::test]
async fn connect_with_reconnect_retries_until_the_router_comes_up() {
    // A server that takes each attempt and hangs up before answering.
    let hangs_up = FakeServer::bind().await;
    let port = hangs_up.port;
    let uri = format!("elvin://127.0.0.1:{port}");
    let connecting =
        tokio::spawn(async move { Client::connect(uri.as_str(), reconnecting(None)).await });
    // Two attempts seen (the second proves it retried), and it goes on.
    for _ in 0..2 {
        let mut peer = tokio::time::timeout(PROMPT, hangs_up.accept())
            .await
            .expect("the client did not try (again)");
        peer.expect_conn_rqst().await;
    }
    assert!(
        !connecting.is_finished(),
        "connect should still be retrying"
    );
    drop(hangs_up);
    let _router = MiniRouter::start_on(port).await;
    let client = tokio::time::timeout(PROMPT, connecting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(client.state().is_connected());
}

#[tokio::test]
async fn connect_without_reconnect_fails_at_once() {
    let port = FakeServer::bind().await.port;
    let uri = format!("elvin://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let error = Client::connect(uri.as_str(), ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Refused { .. }));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn several_clients_publish_and_receive_through_one_router() {
    let router = MiniRouter::start().await;
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..5 {
        let client = Client::connect(router.uri(), ConnectOptions::new())
            .await
            .unwrap();
        subs.push(
            client
                .subscribe("n > 0", SubscribeOptions::default())
                .await
                .unwrap(),
        );
        clients.push(client);
    }
    for (i, client) in clients.iter().enumerate() {
        client
            .notify(&note(i as i32 + 1), true, &Keys::new())
            .await
            .unwrap();
    }
    for sub in &mut subs {
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(next_n(sub).await);
        }
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
    }
    for client in clients {
        client.close().await.unwrap();
    }
}

/// The blocking API runs its own runtime, so these tests are plain
/// `#[test]`s; the mini router runs on a runtime of the test's own.
fn with_router<T>(test: impl FnOnce(&str, &tokio::runtime::Runtime) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let router = runtime.block_on(MiniRouter::start());
    let uri = router.uri();
    let result = test(&uri, &runtime);
    runtime.block_on(router.stop());
    result
}

#[test]
fn blocking_client_polls_and_waits() {
    with_router(|uri, _| {
        let client = elvin_client::blocking::Client::connect(uri, ConnectOptions::new()).unwrap();
        let sub = client
            .subscribe("n > 0", SubscribeOptions::default())
            .unwrap();
        // Nothing yet: the non-blocking poll and the timed poll say so.
        assert!(client.try_recv().unwrap().is_none());
        assert!(
            client
                .recv_timeout(Duration::from_millis(50))
                .unwrap()
                .is_none()
        );
        client.notify(&note(7), true, &Keys::new()).unwrap();
        let got = client
            .recv_timeout(PROMPT)
            .unwrap()
            .expect("a notification");
        assert_eq!(got.attributes.get_i32("n"), Some(7));
        assert_eq!(Some(got.subscription), sub.id());
        assert!(client.test_connection().unwrap() < PROMPT);
        sub.remove().unwrap();
        client.close().unwrap();
    });
}

#[test]
fn blocking_run_loop_dispatches_and_can_be_stopped() {
    with_router(|uri, _| {
        let client = elvin_client::blocking::Client::connect(uri, ConnectOptions::new()).unwrap();
        let a = client
            .subscribe("n > 0", SubscribeOptions::default())
            .unwrap();
        let b = client
            .subscribe("n > 0", SubscribeOptions::default())
            .unwrap();
        for n in 1..=3 {
            client.notify(&note(n), true, &Keys::new()).unwrap();
        }
        // Each notification matches both subscriptions: six deliveries,
        // dispatched by subscription id; Break after the sixth.
        let mut per_sub = std::collections::HashMap::new();
        let mut count = 0;
        client
            .run(|n| {
                *per_sub.entry(n.subscription).or_insert(0) += 1;
                count += 1;
                if count == 6 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(per_sub.get(&a.id().unwrap()), Some(&3));
        assert_eq!(per_sub.get(&b.id().unwrap()), Some(&3));

        // A stopper ends a loop that has nothing to do.
        let stopper = client.stopper();
        let stopping = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stopper.stop();
        });
        let started = std::time::Instant::now();
        client.run(|_| ControlFlow::Continue(())).unwrap();
        assert!(started.elapsed() < PROMPT);
        stopping.join().unwrap();
        drop(a);
        drop(b);
        client.close().unwrap();
    });
}

#[test]
fn blocking_receivers_wake_with_the_error_when_the_connection_dies() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let router = runtime.block_on(MiniRouter::start());
    let client =
        elvin_client::blocking::Client::connect(router.uri(), ConnectOptions::new()).unwrap();
    let _sub = client
        .subscribe("n > 0", SubscribeOptions::default())
        .unwrap();
    runtime.block_on(router.stop());
    let error = client.recv().unwrap_err();
    assert!(matches!(error, ClientError::ConnectionLost(_)), "{error:?}");
    assert!(client.notify(&note(1), true, &Keys::new()).is_err());
}

#[tokio::test]
async fn a_resubscription_the_new_router_refuses_ends_that_subscription() {
    let server = FakeServer::bind().await;
    let (client, (mut peer, _)) = tokio::join!(
        Client::connect(server.uri(), reconnecting(None)),
        server.accept_connected(vec![])
    );
    let client = client.unwrap();
    let mut events = client.events();
    let (kept, refused) = {
        let subscribe_both = async {
            let kept = client
                .subscribe("A == 1", SubscribeOptions::default())
                .await;
            let refused = client
                .subscribe("B == 1", SubscribeOptions::default())
                .await;
            (kept.unwrap(), refused.unwrap())
        };
        let answer = async {
            for id in [1, 2] {
                let Packet::SubAddRqst(rqst) = peer.recv().await else {
                    panic!("expected SubAddRqst")
                };
                peer.send(elvin_proto::SubRply {
                    xid: rqst.xid,
                    subscription_id: id,
                })
                .await;
            }
        };
        tokio::join!(subscribe_both, answer).0
    };
    let (mut kept, mut refused) = (kept, refused);
    // A subscription dropped while disconnected is not re-sent.
    let dropped = {
        let (sub, ()) = tokio::join!(
            client.subscribe("C == 1", SubscribeOptions::default()),
            async {
                let Packet::SubAddRqst(rqst) = peer.recv().await else {
                    panic!("expected SubAddRqst")
                };
                peer.send(elvin_proto::SubRply {
                    xid: rqst.xid,
                    subscription_id: 3,
                })
                .await;
            }
        );
        sub.unwrap()
    };

    drop(peer);
    assert!(matches!(
        tokio::time::timeout(PROMPT, events.recv())
            .await
            .unwrap()
            .unwrap(),
        ConnectionEvent::Lost { .. }
    ));
    drop(dropped);
    // Subscribing while disconnected fails at once.
    assert!(matches!(
        client
            .subscribe("D == 1", SubscribeOptions::default())
            .await,
        Err(ClientError::NotConnected { .. })
    ));

    // The same listener takes the reconnection.
    let (mut peer, _) = server.accept_connected(vec![]).await;
    let mut resent = Vec::new();
    for _ in 0..2 {
        let Packet::SubAddRqst(rqst) = peer.recv().await else {
            panic!("expected SubAddRqst")
        };
        resent.push(rqst.expression.clone());
        if rqst.expression == "B == 1" {
            peer.send(elvin_proto::Nack {
                xid: rqst.xid,
                error: elvin_proto::codes::nack::IMPL_LIMIT,
                message: "Too many subscriptions".into(),
                args: vec![],
            })
            .await;
        } else {
            peer.send(elvin_proto::SubRply {
                xid: rqst.xid,
                subscription_id: 11,
            })
            .await;
        }
    }
    resent.sort();
    assert_eq!(resent, vec!["A == 1".to_owned(), "B == 1".to_owned()]);
    loop {
        match tokio::time::timeout(PROMPT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ConnectionEvent::Reconnected {
                resubscribed,
                failed,
                ..
            } => {
                assert_eq!((resubscribed, failed), (1, 1));
                break;
            }
            ConnectionEvent::ReconnectFailed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kept.router_id(), Some(11));
    assert!(refused.recv().await.is_none());
    let reason = refused.end_reason().unwrap();
    assert_eq!(reason.as_nack().unwrap().message, "Too many subscriptions");
    // The kept one still receives.
    peer.send(elvin_proto::NotifyDeliver {
        attributes: note(5),
        secure_matches: vec![],
        insecure_matches: vec![11],
    })
    .await;
    assert_eq!(next_n(&mut kept).await, 5);
}
