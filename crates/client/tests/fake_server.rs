//! The client against a scripted fake router over real TCP: negotiation,
//! request/reply matching, error mapping, misbehaving routers, bounds.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::{FakeServer, PROMPT, Peer};
use elvin_client::{
    Attributes, ClientError, ConnectOptions, ConnectionState, KeyChange, KeyEntry, Keys,
    NackCategory, ProtocolViolation, RequestedOptions, SubscribeOptions, SubscriptionChange,
    TimeoutKind, Value,
};
use elvin_proto::codes::{disconn, nack};
use elvin_proto::{
    Disconn, DisconnRply, DropWarn, Nack, NotifyDeliver, NotifyEmit, Packet, SecRply, SubRply,
    TestConn,
};

type Client = elvin_client::Client;

fn attrs(pairs: &[(&str, Value)]) -> Attributes {
    pairs.iter().cloned().collect()
}

fn quick() -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_millis(500))
        .close_timeout(Duration::from_millis(500))
}

/// Connects a client to the fake server and returns both ends.
async fn connect(server: &FakeServer, options: ConnectOptions) -> (Client, Peer) {
    let (client, (peer, _)) = tokio::join!(
        Client::connect(server.uri(), options),
        server.accept_connected(vec![])
    );
    (client.expect("connect"), peer)
}

/// Subscribes and answers with `router_id`.
async fn subscribe(
    client: &Client,
    peer: &mut Peer,
    expression: &str,
    options: SubscribeOptions,
    router_id: i64,
) -> elvin_client::Subscription {
    let (subscription, ()) = tokio::join!(client.subscribe(expression, options), async {
        match peer.recv().await {
            Packet::SubAddRqst(rqst) => {
                assert_eq!(rqst.expression, expression);
                peer.send(SubRply {
                    xid: rqst.xid,
                    subscription_id: router_id,
                })
                .await;
            }
            other => panic!("expected SubAddRqst, got {other:?}"),
        }
    });
    subscription.expect("subscribe")
}

#[tokio::test]
async fn connect_sends_the_requested_options_and_keys_and_reads_the_reply() {
    let server = FakeServer::bind().await;
    let uri = format!("{};Subscription.Max-Count=64", server.uri());
    let keys = Keys {
        entries: vec![KeyEntry::Producer(vec![b"secret".to_vec()])],
    };
    let options = quick()
        .options(
            RequestedOptions::new()
                .packet_max_length(8192)
                .send_immediately(true)
                .raw("router.coalesce-delay", 0),
        )
        .notification_keys(keys.clone());
    let (client, (peer, rqst)) = tokio::join!(
        Client::connect(uri.as_str(), options),
        server.accept_connected(vec![
            ("Packet.Max-Length".into(), Value::Int32(8192)),
            (
                "Vendor-Identification".into(),
                Value::String("fake 1.0".into())
            ),
        ])
    );
    let client = client.expect("connect");
    assert_eq!((rqst.client_major, rqst.client_minor), (4, 0));
    assert_ne!(rqst.xid, 0);
    assert_eq!(
        rqst.options,
        vec![
            ("Packet.Max-Length".to_owned(), Value::Int32(8192)),
            ("TCP.Send-Immediately".to_owned(), Value::Int32(1)),
            ("router.coalesce-delay".to_owned(), Value::Int32(0)),
            ("Subscription.Max-Count".to_owned(), Value::Int32(64)),
        ]
    );
    assert_eq!(rqst.notification_keys, keys);
    assert!(rqst.subscription_keys.is_empty());
    let negotiated = client.negotiated().expect("connected");
    assert_eq!(negotiated.packet_max_length(), 8192);
    assert_eq!(negotiated.vendor_identification(), Some("fake 1.0"));
    assert!(client.state().is_connected());
    drop(peer);
}

#[tokio::test]
async fn a_refused_connection_names_the_router_and_suggests_a_fix() {
    // Bind then drop to get a port nobody listens on.
    let port = FakeServer::bind().await.port;
    let uri = format!("elvin://127.0.0.1:{port}");
    let error = Client::connect(uri.as_str(), quick()).await.unwrap_err();
    match &error {
        ClientError::Refused { uri: named, source } => {
            assert_eq!(
                named,
                &format!("elvin:/127.0.0.1:{port}").replace(":/", "://")
            );
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("is eventd running"), "{text}");
}

#[tokio::test]
async fn a_bad_uri_is_reported_before_connecting() {
    let error = Client::connect("http://example", quick())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidUri(_)), "{error:?}");
    let error = Client::connect("elvin:/secure/127.0.0.1:1", quick())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Config(text) if text.contains("TLS")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_nack_to_conn_rqst_is_a_connection_category_error() {
    let server = FakeServer::bind().await;
    let (result, ()) = tokio::join!(Client::connect(server.uri(), quick()), async {
        let mut peer = server.accept().await;
        let rqst = peer.expect_conn_rqst().await;
        peer.send(Nack {
            xid: rqst.xid,
            error: nack::PROT_INCOMPAT,
            message: "Max supported protocol version is %1".into(),
            args: vec![Value::String("4.0".into())],
        })
        .await;
    });
    let error = result.unwrap_err();
    let details = error.as_nack().expect("a Nack error");
    assert_eq!(details.code, 1);
    assert_eq!(details.category, NackCategory::Connection);
    assert_eq!(details.message, "Max supported protocol version is 4.0");
    assert_eq!(details.request, "ConnRqst");
    assert_eq!(details.code_name(), Some("PROT_INCOMPAT"));
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out_in_bounded_time() {
    let server = FakeServer::bind().await;
    let options = quick().connect_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let (result, _peer) = tokio::join!(Client::connect(server.uri(), options), async {
        let mut peer = server.accept().await;
        peer.expect_conn_rqst().await;
        peer
    });
    let elapsed = started.elapsed();
    match result.unwrap_err() {
        ClientError::Timeout { what, after, .. } => {
            assert_eq!(what, TimeoutKind::ConnReply);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn a_disconn_during_connect_is_reported_with_its_reason() {
    let server = FakeServer::bind().await;
    let (result, ()) = tokio::join!(Client::connect(server.uri(), quick()), async {
        let mut peer = server.accept().await;
        peer.expect_conn_rqst().await;
        peer.send(Disconn {
            reason: disconn::REDIRECT,
            args: "elvin://other:2917".into(),
        })
        .await;
    });
    match result.unwrap_err() {
        ClientError::Disconnected {
            reason,
            reason_name,
            text,
            ..
        } => {
            assert_eq!(reason, 2);
            assert_eq!(reason_name, "redirected to another router");
            assert_eq!(text, "elvin://other:2917");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_subscription_nack_substitutes_the_arguments() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let (result, ()) = tokio::join!(
        client.subscribe("EXPT == ", SubscribeOptions::default()),
        async {
            let Packet::SubAddRqst(rqst) = peer.recv().await else {
                panic!("expected SubAddRqst")
            };
            assert!(rqst.accept_insecure, "Emulab-style default");
            peer.send(Nack {
                xid: rqst.xid,
                error: nack::PARSE_ERROR,
                message: "Parse error at column %1, token \"%2\"".into(),
                args: vec![Value::Int32(8), Value::String("<EOF>".into())],
            })
            .await;
        }
    );
    let error = result.unwrap_err();
    let details = error.as_nack().expect("Nack");
    assert_eq!(details.code, 2101);
    assert_eq!(details.category, NackCategory::Request);
    assert_eq!(details.message, "Parse error at column 8, token \"<EOF>\"");
    assert_eq!(
        details.args,
        vec![Value::Int32(8), Value::String("<EOF>".into())]
    );
    assert!(error.to_string().contains("SubAddRqst"), "{error}");
    // The connection is still fine after a refused request.
    let _sub = subscribe(
        &client,
        &mut peer,
        "EXPT == \"a\"",
        SubscribeOptions::default(),
        9,
    )
    .await;
}

#[tokio::test]
async fn deliveries_are_routed_by_the_id_lists_with_the_secure_flag() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let mut a = subscribe(
        &client,
        &mut peer,
        "A == 1",
        SubscribeOptions::default(),
        100,
    )
    .await;
    let mut b = subscribe(
        &client,
        &mut peer,
        "B == 1",
        SubscribeOptions::default(),
        200,
    )
    .await;
    assert_eq!(a.router_id(), Some(100));
    assert_ne!(a.id(), b.id());

    // Matches both: a securely (listed in both lists; secure wins, once),
    // b insecurely; 999 is unknown and ignored.
    peer.send(NotifyDeliver {
        attributes: attrs(&[("n", Value::Int32(1))]),
        secure_matches: vec![100, 999],
        insecure_matches: vec![200, 100, 200],
    })
    .await;
    // Only b.
    peer.send(NotifyDeliver {
        attributes: attrs(&[("n", Value::Int32(2))]),
        secure_matches: vec![],
        insecure_matches: vec![200],
    })
    .await;

    let first_a = tokio::time::timeout(PROMPT, a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_a.attributes.get_i32("n"), Some(1));
    assert!(first_a.secure);
    assert_eq!(first_a.subscription, a.id());
    let first_b = tokio::time::timeout(PROMPT, b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_b.attributes.get_i32("n"), Some(1));
    assert!(!first_b.secure);
    let second_b = tokio::time::timeout(PROMPT, b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second_b.attributes.get_i32("n"), Some(2));
    // a got exactly one.
    assert!(matches!(a.try_recv(), Ok(None)));
    assert!(matches!(b.try_recv(), Ok(None)));
}

#[tokio::test]
async fn a_disconn_ends_the_connection_with_its_reason() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let mut sub = subscribe(&client, &mut peer, "A == 1", SubscribeOptions::default(), 1).await;
    let mut states = client.state_changes();
    peer.send(Disconn {
        reason: disconn::SHUTDOWN,
        args: "router stopping".into(),
    })
    .await;
    assert!(
        tokio::time::timeout(PROMPT, sub.recv())
            .await
            .unwrap()
            .is_none()
    );
    let reason = sub.end_reason().expect("ended");
    match reason.root() {
        ClientError::Disconnected { reason, text, .. } => {
            assert_eq!(*reason, 1);
            assert_eq!(text, "router stopping");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let error = client
        .notify(&attrs(&[]), true, &Keys::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error.root(), ClientError::Disconnected { reason: 1, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("router shutting down"),
        "{error}"
    );
}

#[tokio::test]
async fn a_pending_request_fails_with_the_disconn_reason() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let (result, ()) = tokio::join!(
        client.subscribe("A == 1", SubscribeOptions::default()),
        async {
            peer.recv().await;
            peer.send(Disconn {
                reason: disconn::PROTOCOL_VIOLATION,
                args: "bad thing".into(),
            })
            .await;
        }
    );
    match result.unwrap_err() {
        ClientError::Disconnected { reason, text, .. } => {
            assert_eq!(reason, 4);
            assert_eq!(text, "bad thing");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

async fn expect_protocol_error(peer_action: impl AsyncFnOnce(&mut Peer)) -> ClientError {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let mut states = client.state_changes();
    peer_action(&mut peer).await;
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .expect("the client did not close the connection")
    .unwrap()
    .clone();
    // The client hung up.
    peer.expect_eof().await;
    match state {
        ConnectionState::Closed { error: Some(error) } => error,
        other => panic!("expected a closing error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_packet_type_is_a_protocol_error() {
    let error = expect_protocol_error(async |peer| {
        peer.send_raw(&[0, 0, 0, 4, 0, 0, 0, 7]).await;
    })
    .await;
    match &error {
        ClientError::Protocol {
            violation: ProtocolViolation::Decode(decode),
            ..
        } => assert_eq!(decode.to_string(), "Unknown message type: ID = 7"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(
        error.to_string().contains("connection was closed"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unaligned_frame_is_a_protocol_error() {
    let error = expect_protocol_error(async |peer| {
        peer.send_raw(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).await;
    })
    .await;
    assert!(
        matches!(
            error,
            ClientError::Protocol {
                violation: ProtocolViolation::Frame(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_undecodable_field_is_a_protocol_error() {
    let error = expect_protocol_error(async |peer| {
        // SubRply (61) cut short.
        peer.send_raw(&[0, 0, 0, 8, 0, 0, 0, 61, 0, 0, 0, 1]).await;
    })
    .await;
    assert!(
        error.to_string().contains("Error decoding SubRply"),
        "{error}"
    );
}

#[tokio::test]
async fn a_router_bound_packet_from_the_router_is_a_protocol_error() {
    let error = expect_protocol_error(async |peer| {
        peer.send(NotifyEmit {
            attributes: Attributes::new(),
            deliver_insecure: true,
            keys: Keys::new(),
        })
        .await;
    })
    .await;
    match error {
        ClientError::Protocol {
            violation: ProtocolViolation::UnexpectedPacket { packet },
            ..
        } => assert_eq!(packet, "NotifyEmit"),
        other => panic!("expected UnexpectedPacket, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reply_of_the_wrong_type_is_a_protocol_error() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let (result, ()) = tokio::join!(
        client.subscribe("A == 1", SubscribeOptions::default()),
        async {
            let Packet::SubAddRqst(rqst) = peer.recv().await else {
                panic!()
            };
            peer.send(SecRply { xid: rqst.xid }).await;
        }
    );
    match result.unwrap_err() {
        ClientError::Protocol {
            violation: ProtocolViolation::MismatchedReply { reply, request },
            ..
        } => assert_eq!((reply, request), ("SecRply", "SubAddRqst")),
        other => panic!("expected MismatchedReply, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_over_the_negotiated_maximum_is_refused_on_its_header() {
    let server = FakeServer::bind().await;
    let (client, (mut peer, _)) = tokio::join!(
        Client::connect(server.uri(), quick()),
        server.accept_connected(vec![("Packet.Max-Length".into(), Value::Int32(1024))])
    );
    let client = client.unwrap();
    let mut states = client.state_changes();
    // Only the header of a 4 KiB frame: refused before the body arrives.
    peer.send_raw(&4096u32.to_be_bytes()).await;
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let ConnectionState::Closed { error: Some(error) } = state else {
        panic!("expected an error")
    };
    assert!(
        error.to_string().contains("larger than maximum 1024"),
        "{error}"
    );
}

#[tokio::test]
async fn a_notification_over_the_negotiated_maximum_is_not_sent() {
    let server = FakeServer::bind().await;
    let (client, (mut peer, _)) = tokio::join!(
        Client::connect(server.uri(), quick()),
        server.accept_connected(vec![("Packet.Max-Length".into(), Value::Int32(1024))])
    );
    let client = client.unwrap();
    let big = attrs(&[("blob", Value::Opaque(vec![0; 2000]))]);
    match client.notify(&big, true, &Keys::new()).await.unwrap_err() {
        ClientError::TooLarge(e) => assert!(e.to_string().contains("1024"), "{e}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A small one goes through, and is the next thing the router sees.
    let small = attrs(&[("n", Value::Int32(1))]);
    client.notify(&small, false, &Keys::new()).await.unwrap();
    match peer.recv().await {
        Packet::NotifyEmit(emit) => {
            assert_eq!(emit.attributes, small);
            assert!(!emit.deliver_insecure);
        }
        other => panic!("expected NotifyEmit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_router_closing_in_the_middle_of_a_packet_is_a_mid_frame_close() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let mut states = client.state_changes();
    peer.send_raw(&[0, 0, 0, 12, 0, 0, 0, 61]).await;
    drop(peer);
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    match state {
        ConnectionState::Closed {
            error: Some(ClientError::Closed { mid_frame, .. }),
        } => assert!(mid_frame),
        other => panic!("expected a mid-frame close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_clean_close_by_the_router_is_not_mid_frame() {
    let server = FakeServer::bind().await;
    let (client, peer) = connect(&server, quick()).await;
    let mut states = client.state_changes();
    drop(peer);
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert!(
        matches!(
            state,
            ConnectionState::Closed {
                error: Some(ClientError::Closed {
                    mid_frame: false,
                    ..
                })
            }
        ),
        "{state:?}"
    );
}

#[tokio::test]
async fn a_router_that_stops_answering_times_requests_out_and_late_replies_are_cleaned_up() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let started = Instant::now();
    let (result, rqst) = tokio::join!(
        client.subscribe("A == 1", SubscribeOptions::default()),
        async {
            match peer.recv().await {
                Packet::SubAddRqst(rqst) => rqst,
                other => panic!("{other:?}"),
            }
        }
    );
    match result.unwrap_err() {
        ClientError::Timeout { what, .. } => {
            assert_eq!(what, TimeoutKind::Request("SubAddRqst"))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // The SubRply arrives late: the client removes the subscription it
    // no longer wants.
    peer.send(SubRply {
        xid: rqst.xid,
        subscription_id: 77,
    })
    .await;
    match peer.recv().await {
        Packet::SubDelRqst(del) => assert_eq!(del.subscription_id, 77),
        other => panic!("expected SubDelRqst, got {other:?}"),
    }
    // test_connection also gives up in bounded time.
    let (probe, ()) = tokio::join!(client.test_connection(), async {
        assert!(matches!(peer.recv().await, Packet::TestConn(_)));
    });
    assert!(
        matches!(
            probe,
            Err(ClientError::Timeout {
                what: TimeoutKind::TestConn,
                ..
            })
        ),
        "{probe:?}"
    );
}

#[tokio::test]
async fn test_connection_succeeds_on_conf_conn() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let (probe, ()) = tokio::join!(client.test_connection(), async {
        assert!(matches!(peer.recv().await, Packet::TestConn(_)));
        peer.send(elvin_proto::ConfConn).await;
    });
    assert!(probe.unwrap() < PROMPT);
}

#[tokio::test]
async fn the_routers_test_conn_is_answered_and_drop_warn_is_counted() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    peer.send(TestConn).await;
    assert!(matches!(peer.recv().await, Packet::ConfConn(_)));
    peer.send(DropWarn).await;
    peer.send(DropWarn).await;
    // Wait until both are processed (a TestConn round trip orders it).
    peer.send(TestConn).await;
    assert!(matches!(peer.recv().await, Packet::ConfConn(_)));
    assert_eq!(client.drop_warnings(), 2);
    assert!(client.state().is_connected());
}

#[tokio::test]
async fn xids_are_unique_and_replies_out_of_order_reach_the_right_caller() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let expressions = ["A == 1", "B == 2", "C == 3", "D == 4"];
    let subscribes = async {
        let (a, b, c, d) = tokio::join!(
            client.subscribe(expressions[0], SubscribeOptions::default()),
            client.subscribe(expressions[1], SubscribeOptions::default()),
            client.subscribe(expressions[2], SubscribeOptions::default()),
            client.subscribe(expressions[3], SubscribeOptions::default()),
        );
        vec![a, b, c, d]
    };
    let answers = async {
        let mut requests = Vec::new();
        for _ in 0..4 {
            match peer.recv().await {
                Packet::SubAddRqst(rqst) => requests.push(rqst),
                other => panic!("{other:?}"),
            }
        }
        let mut xids: Vec<i32> = requests.iter().map(|r| r.xid).collect();
        xids.sort();
        xids.dedup();
        assert_eq!(xids.len(), 4, "xids must be distinct");
        assert!(xids.iter().all(|x| *x != 0));
        // Answer in reverse order, id = 1000 + position of the expression.
        for rqst in requests.iter().rev() {
            let position = expressions
                .iter()
                .position(|e| *e == rqst.expression)
                .unwrap();
            peer.send(SubRply {
                xid: rqst.xid,
                subscription_id: 1000 + position as i64,
            })
            .await;
        }
    };
    let (results, ()) = tokio::join!(subscribes, answers);
    for (position, result) in results.into_iter().enumerate() {
        let sub = result.unwrap();
        assert_eq!(sub.router_id(), Some(1000 + position as i64));
        assert_eq!(sub.expression().as_deref(), Some(expressions[position]));
    }
}

#[tokio::test]
async fn a_slow_consumer_loses_the_oldest_notifications_and_sees_a_count() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let options = SubscribeOptions {
        capacity: Some(4),
        ..SubscribeOptions::default()
    };
    let mut sub = subscribe(&client, &mut peer, "A == 1", options, 5).await;
    for n in 0..10 {
        peer.send(NotifyDeliver {
            attributes: attrs(&[("n", Value::Int32(n))]),
            secure_matches: vec![],
            insecure_matches: vec![5],
        })
        .await;
    }
    // Make sure all ten were processed.
    peer.send(TestConn).await;
    assert!(matches!(peer.recv().await, Packet::ConfConn(_)));
    assert_eq!(sub.dropped(), 6);
    let mut got = Vec::new();
    while let Ok(Some(n)) = sub.try_recv() {
        got.push(n.attributes.get_i32("n").unwrap());
    }
    assert_eq!(got, vec![6, 7, 8, 9]);
}

#[tokio::test]
async fn modify_sends_the_change_and_keeps_what_was_not_changed() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let sub = subscribe(
        &client,
        &mut peer,
        "A == 1",
        SubscribeOptions::default(),
        42,
    )
    .await;
    let key = Keys {
        entries: vec![KeyEntry::Consumer(vec![b"k".to_vec()])],
    };
    let (result, ()) = tokio::join!(
        sub.modify(SubscriptionChange::new().add_keys(key.clone())),
        async {
            match peer.recv().await {
                Packet::SubModRqst(rqst) => {
                    assert_eq!(rqst.subscription_id, 42);
                    assert_eq!(rqst.expression, "", "empty means keep");
                    assert!(rqst.accept_insecure, "current flag re-sent");
                    assert_eq!(rqst.add_keys, key);
                    peer.send(SubRply {
                        xid: rqst.xid,
                        subscription_id: 42,
                    })
                    .await;
                }
                other => panic!("{other:?}"),
            }
        }
    );
    result.unwrap();
    assert_eq!(sub.expression().as_deref(), Some("A == 1"));

    // A new expression and flag; the router gives a new id.
    let (result, ()) = tokio::join!(
        sub.modify(
            SubscriptionChange::new()
                .expression("B == 2")
                .accept_insecure(false)
        ),
        async {
            match peer.recv().await {
                Packet::SubModRqst(rqst) => {
                    assert_eq!(rqst.expression, "B == 2");
                    assert!(!rqst.accept_insecure);
                    peer.send(SubRply {
                        xid: rqst.xid,
                        subscription_id: 43,
                    })
                    .await;
                }
                other => panic!("{other:?}"),
            }
        }
    );
    result.unwrap();
    assert_eq!(sub.expression().as_deref(), Some("B == 2"));
    assert_eq!(sub.router_id(), Some(43));

    // A refused change leaves the subscription as it was.
    let (result, ()) = tokio::join!(
        sub.modify(SubscriptionChange::new().expression("C ==")),
        async {
            let Packet::SubModRqst(rqst) = peer.recv().await else {
                panic!()
            };
            peer.send(Nack {
                xid: rqst.xid,
                error: nack::PARSE_ERROR,
                message: "bad".into(),
                args: vec![],
            })
            .await;
        }
    );
    assert!(result.unwrap_err().as_nack().is_some());
    assert_eq!(sub.expression().as_deref(), Some("B == 2"));
}

#[tokio::test]
async fn remove_waits_for_the_router_and_drop_unsubscribes_in_the_background() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let removed = subscribe(&client, &mut peer, "A == 1", SubscribeOptions::default(), 7).await;
    let (result, ()) = tokio::join!(removed.remove(), async {
        match peer.recv().await {
            Packet::SubDelRqst(del) => {
                assert_eq!(del.subscription_id, 7);
                peer.send(SubRply {
                    xid: del.xid,
                    subscription_id: 7,
                })
                .await;
            }
            other => panic!("{other:?}"),
        }
    });
    result.unwrap();

    let dropped = subscribe(&client, &mut peer, "B == 1", SubscribeOptions::default(), 8).await;
    drop(dropped);
    match peer.recv().await {
        Packet::SubDelRqst(del) => assert_eq!(del.subscription_id, 8),
        other => panic!("expected SubDelRqst, got {other:?}"),
    }

    // Removing when the router says it has no such subscription still
    // succeeds locally.
    let gone = subscribe(&client, &mut peer, "C == 1", SubscribeOptions::default(), 9).await;
    let (result, ()) = tokio::join!(gone.remove(), async {
        let Packet::SubDelRqst(del) = peer.recv().await else {
            panic!()
        };
        peer.send(Nack {
            xid: del.xid,
            error: nack::NO_SUCH_SUB,
            message: "No subscription with ID %1".into(),
            args: vec![Value::Int64(9)],
        })
        .await;
    });
    let error = result.unwrap_err();
    assert_eq!(
        error.as_nack().unwrap().message,
        "No subscription with ID 9"
    );
}

#[tokio::test]
async fn set_keys_sends_a_sec_rqst_and_waits_for_the_reply() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let key = Keys {
        entries: vec![KeyEntry::Producer(vec![b"p".to_vec()])],
    };
    let change = KeyChange {
        add_notification_keys: key.clone(),
        ..KeyChange::default()
    };
    let (result, ()) = tokio::join!(client.set_keys(change), async {
        match peer.recv().await {
            Packet::SecRqst(rqst) => {
                assert_eq!(rqst.add_notification_keys, key);
                assert!(rqst.del_notification_keys.is_empty());
                peer.send(SecRply { xid: rqst.xid }).await;
            }
            other => panic!("{other:?}"),
        }
    });
    result.unwrap();
}

#[tokio::test]
async fn close_says_goodbye_and_ends_subscriptions() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let mut sub = subscribe(&client, &mut peer, "A == 1", SubscribeOptions::default(), 1).await;
    let (result, ()) = tokio::join!(client.close(), async {
        match peer.recv().await {
            Packet::DisconnRqst(rqst) => {
                peer.send(DisconnRply { xid: rqst.xid }).await;
            }
            other => panic!("{other:?}"),
        }
        peer.expect_eof().await;
    });
    result.unwrap();
    assert!(sub.recv().await.is_none());
    assert!(matches!(
        sub.end_reason(),
        Some(ClientError::SubscriptionEnded)
    ));
    assert!(matches!(
        client.state(),
        ConnectionState::Closed { error: None }
    ));
    assert!(matches!(
        client.notify(&attrs(&[]), true, &Keys::new()).await,
        Err(ClientError::ClientClosed)
    ));
    // Closing again is a no-op.
    client.close().await.unwrap();
}

#[tokio::test]
async fn close_is_bounded_when_the_router_does_not_answer() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let started = Instant::now();
    let (result, ()) = tokio::join!(client.close(), async {
        assert!(matches!(peer.recv().await, Packet::DisconnRqst(_)));
        peer.expect_eof().await;
    });
    assert!(matches!(
        result,
        Err(ClientError::Timeout {
            what: TimeoutKind::Close,
            ..
        })
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(client.is_closed());
}

#[tokio::test]
async fn dropping_every_handle_says_goodbye() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    drop(client);
    match peer.recv().await {
        Packet::DisconnRqst(rqst) => peer.send(DisconnRply { xid: rqst.xid }).await,
        other => panic!("expected DisconnRqst, got {other:?}"),
    }
    peer.expect_eof().await;
}

#[tokio::test]
async fn a_callback_subscription_calls_back_for_each_notification() {
    let server = FakeServer::bind().await;
    let (client, mut peer) = connect(&server, quick()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (handle, ()) = tokio::join!(
        client.subscribe_with("A == 1", SubscribeOptions::default(), move |n| {
            let _ = tx.send(n.attributes.get_i32("n"));
        }),
        async {
            let Packet::SubAddRqst(rqst) = peer.recv().await else {
                panic!()
            };
            peer.send(SubRply {
                xid: rqst.xid,
                subscription_id: 3,
            })
            .await;
        }
    );
    let handle = handle.unwrap();
    for n in 0..3 {
        peer.send(NotifyDeliver {
            attributes: attrs(&[("n", Value::Int32(n))]),
            secure_matches: vec![3],
            insecure_matches: vec![],
        })
        .await;
    }
    for n in 0..3 {
        let got = tokio::time::timeout(PROMPT, rx.recv()).await.unwrap();
        assert_eq!(got, Some(Some(n)));
    }
    drop(handle);
    assert!(matches!(peer.recv().await, Packet::SubDelRqst(_)));
}

#[tokio::test]
async fn unotify_sends_one_session_less_notification() {
    let server = FakeServer::bind().await;
    let notification = attrs(&[("EVENTTYPE", Value::String("START".into()))]);
    let options = quick();
    let no_keys = Keys::new();
    let (result, packet) = tokio::join!(
        elvin_client::unotify(server.uri(), &options, &notification, true, &no_keys),
        async {
            let mut peer = server.accept().await;
            let packet = peer.recv().await;
            peer.expect_eof().await;
            packet
        }
    );
    result.unwrap();
    match packet {
        Packet::UNotify(u) => {
            assert_eq!((u.client_major, u.client_minor), (4, 0));
            assert_eq!(u.attributes, notification);
            assert!(u.deliver_insecure);
        }
        other => panic!("expected UNotify, got {other:?}"),
    }
}

#[tokio::test]
async fn several_clients_at_once_each_get_their_own_replies() {
    let server = FakeServer::bind().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&server, quick()).await);
    }
    let mut subs = Vec::new();
    for (i, (client, peer)) in clients.iter_mut().enumerate() {
        subs.push(
            subscribe(
                client,
                peer,
                "A == 1",
                SubscribeOptions::default(),
                10 + i as i64,
            )
            .await,
        );
    }
    for (i, (_, peer)) in clients.iter_mut().enumerate() {
        peer.send(NotifyDeliver {
            attributes: attrs(&[("who", Value::Int32(i as i32))]),
            secure_matches: vec![],
            insecure_matches: vec![10 + i as i64],
        })
        .await;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let n = tokio::time::timeout(PROMPT, sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n.attributes.get_i32("who"), Some(i as i32));
    }
}

#[tokio::test]
async fn keepalive_notices_a_router_that_went_silent() {
    let server = FakeServer::bind().await;
    let options = quick()
        .keepalive(Duration::from_millis(200))
        .request_timeout(Duration::from_millis(300));
    let (client, mut peer) = connect(&server, options).await;
    let mut states = client.state_changes();
    // The probe arrives after the idle period; the fake never answers.
    assert!(matches!(peer.recv().await, Packet::TestConn(_)));
    let state = tokio::time::timeout(
        PROMPT,
        states.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    match state {
        ConnectionState::Closed {
            error: Some(ClientError::Timeout { what, .. }),
        } => assert_eq!(what, TimeoutKind::Liveness),
        other => panic!("expected a liveness timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn keepalive_is_satisfied_by_an_answer() {
    let server = FakeServer::bind().await;
    let options = quick()
        .keepalive(Duration::from_millis(100))
        .request_timeout(Duration::from_millis(300));
    let (client, mut peer) = connect(&server, options).await;
    for _ in 0..3 {
        assert!(matches!(peer.recv().await, Packet::TestConn(_)));
        peer.send(elvin_proto::ConfConn).await;
    }
    assert!(client.state().is_connected());
}
