//! The client against the real `eventd` router (run as a separate process
//! by tbevents-testkit): the protocol end to end, keys, close, reconnect
//! after the router is killed and restarted, the blocking API.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::Duration;

use elvin_client::{
    Attributes, Client, ClientError, ConnectOptions, ConnectionEvent, ConnectionState, KeyEntry,
    Keys, Reconnect, SubscribeOptions, SubscriptionChange, Value,
};
use elvin_proto::keys::sha1_public_key;
use tbevents_testkit::Router;

const PROMPT: Duration = Duration::from_secs(10);

fn event(pairs: &[(&str, Value)]) -> Attributes {
    pairs.iter().cloned().collect()
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
}

async fn next(sub: &mut elvin_client::Subscription) -> elvin_client::Notification {
    tokio::time::timeout(PROMPT, sub.recv())
        .await
        .expect("no notification in time")
        .expect("subscription ended")
}

/// Asserts that nothing reached `sub` before a sentinel: `producer` sends
/// `sentinel` (which `sub` matches) after whatever must not arrive, and
/// since one producer's notifications reach a subscriber in send order, the
/// next delivery on `sub` must be the sentinel itself.
async fn expect_only_sentinel(
    producer: &Client,
    sub: &mut elvin_client::Subscription,
    sentinel: &Attributes,
    deliver_insecure: bool,
    keys: &Keys,
) {
    producer
        .notify(sentinel, deliver_insecure, keys)
        .await
        .unwrap();
    assert_eq!(
        *next(sub).await.attributes,
        *sentinel,
        "something arrived before the sentinel"
    );
}

#[tokio::test]
async fn two_clients_exchange_notifications_through_eventd() {
    let router = Router::start(&[]);
    let producer = Client::connect(router.uri(), options()).await.unwrap();
    let consumer = Client::connect(router.uri(), options()).await.unwrap();
    let negotiated = consumer.negotiated().unwrap();
    assert!(negotiated.vendor_identification().is_some());

    let mut links = consumer
        .subscribe(
            r#"OBJTYPE == "LINK" && SCHEDULER == 0"#,
            SubscribeOptions::default(),
        )
        .await
        .unwrap();
    let mut all = consumer
        .subscribe("require(OBJTYPE)", SubscribeOptions::default())
        .await
        .unwrap();

    let down = event(&[
        ("OBJTYPE", Value::String("LINK".into())),
        ("EVENTTYPE", Value::String("DOWN".into())),
        ("SCHEDULER", Value::Int32(0)),
    ]);
    producer.notify(&down, true, &Keys::new()).await.unwrap();
    let got = next(&mut links).await;
    assert_eq!(*got.attributes, down);
    assert!(!got.secure);
    // The same notification reaches the second subscription too.
    assert_eq!(*next(&mut all).await.attributes, down);

    // A non-matching one reaches only the catch-all.
    let node = event(&[
        ("OBJTYPE", Value::String("NODE".into())),
        ("SCHEDULER", Value::Int32(0)),
    ]);
    producer.notify(&node, true, &Keys::new()).await.unwrap();
    assert_eq!(*next(&mut all).await.attributes, node);
    let sentinel = event(&[
        ("OBJTYPE", Value::String("LINK".into())),
        ("SCHEDULER", Value::Int32(0)),
        ("sentinel", Value::Int32(1)),
    ]);
    expect_only_sentinel(&producer, &mut links, &sentinel, true, &Keys::new()).await;

    producer.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn eventd_refusals_are_typed_nacks() {
    let router = Router::start(&[]);
    let client = Client::connect(router.uri(), options()).await.unwrap();
    let error = client
        .subscribe("OBJTYPE == ", SubscribeOptions::default())
        .await
        .unwrap_err();
    let nack = error.as_nack().expect("a Nack");
    assert_eq!(nack.category, elvin_client::NackCategory::Request);
    assert!(!nack.message.contains("%1"), "{}", nack.message);
    // Still connected afterwards.
    client.test_connection().await.unwrap();
}

#[tokio::test]
async fn modify_and_remove_through_eventd() {
    let router = Router::start(&[]);
    let client = Client::connect(router.uri(), options()).await.unwrap();
    let mut sub = client
        .subscribe("n == 1", SubscribeOptions::default())
        .await
        .unwrap();
    client
        .notify(&event(&[("n", Value::Int32(1))]), true, &Keys::new())
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.attributes.get_i32("n"), Some(1));

    sub.modify(SubscriptionChange::new().expression("n == 2"))
        .await
        .unwrap();
    assert_eq!(sub.expression().as_deref(), Some("n == 2"));
    client
        .notify(&event(&[("n", Value::Int32(1))]), true, &Keys::new())
        .await
        .unwrap();
    client
        .notify(&event(&[("n", Value::Int32(2))]), true, &Keys::new())
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.attributes.get_i32("n"), Some(2));
    let sentinel = event(&[("n", Value::Int32(2)), ("sentinel", Value::Int32(1))]);
    expect_only_sentinel(&client, &mut sub, &sentinel, true, &Keys::new()).await;

    // A bad change is refused and the old expression stays in force.
    assert!(
        sub.modify(SubscriptionChange::new().expression("n =="))
            .await
            .unwrap_err()
            .as_nack()
            .is_some()
    );
    client
        .notify(&event(&[("n", Value::Int32(2))]), true, &Keys::new())
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.attributes.get_i32("n"), Some(2));

    sub.remove().await.unwrap();
    // Removed: a new subscription sees later notifications, the old one
    // is gone (the router confirmed the removal).
    let mut again = client
        .subscribe("n == 2", SubscribeOptions::default())
        .await
        .unwrap();
    client
        .notify(&event(&[("n", Value::Int32(2))]), true, &Keys::new())
        .await
        .unwrap();
    assert_eq!(next(&mut again).await.attributes.get_i32("n"), Some(2));
    client.close().await.unwrap();
}

#[tokio::test]
async fn secure_delivery_with_producer_keys() {
    let router = Router::start(&[]);
    let producer = Client::connect(router.uri(), options()).await.unwrap();
    let consumer = Client::connect(router.uri(), options()).await.unwrap();
    let private = b"experiment-secret".to_vec();
    let public = sha1_public_key(&private).to_vec();

    // Only notifications signed with the producer key, and only securely.
    let mut trusted = consumer
        .subscribe(
            "require(n)",
            SubscribeOptions::secure(Keys {
                entries: vec![KeyEntry::Producer(vec![public])],
            }),
        )
        .await
        .unwrap();
    // A keyless subscription that accepts insecure deliveries.
    let mut open = consumer
        .subscribe("require(n)", SubscribeOptions::default())
        .await
        .unwrap();

    let signed = Keys {
        entries: vec![KeyEntry::Producer(vec![private])],
    };
    // Signed and insecure delivery forbidden: only the keyed subscription.
    producer
        .notify(&event(&[("n", Value::Int32(1))]), false, &signed)
        .await
        .unwrap();
    let got = next(&mut trusted).await;
    assert_eq!(got.attributes.get_i32("n"), Some(1));
    assert!(got.secure);
    let sentinel = event(&[("n", Value::Int32(99))]);
    expect_only_sentinel(&producer, &mut open, &sentinel, true, &Keys::new()).await;

    // Unsigned: only the open subscription, as an insecure match.
    producer
        .notify(&event(&[("n", Value::Int32(2))]), true, &Keys::new())
        .await
        .unwrap();
    let got = next(&mut open).await;
    assert_eq!(got.attributes.get_i32("n"), Some(2));
    assert!(!got.secure);
    let sentinel = event(&[("n", Value::Int32(98))]);
    expect_only_sentinel(&producer, &mut trusted, &sentinel, false, &signed).await;
}

#[tokio::test]
async fn test_connection_and_a_clean_close() {
    let router = Router::start(&[]);
    let client = Client::connect(router.uri(), options()).await.unwrap();
    let rtt = client.test_connection().await.unwrap();
    assert!(rtt < PROMPT);
    let mut sub = client
        .subscribe("require(x)", SubscribeOptions::default())
        .await
        .unwrap();
    client.close().await.unwrap();
    assert!(matches!(
        client.state(),
        ConnectionState::Closed { error: None }
    ));
    assert!(sub.recv().await.is_none());
    assert!(matches!(
        client.test_connection().await,
        Err(ClientError::ClientClosed)
    ));
}

#[tokio::test]
async fn subscriptions_work_again_after_eventd_is_killed_and_restarted() {
    let mut router = Router::start(&[]);
    let port = router.port;
    let reconnect = Reconnect {
        retry_interval: Duration::from_millis(200),
        max_retries: None,
    };
    let client = Client::connect(router.uri(), options().reconnect(reconnect))
        .await
        .unwrap();
    let producer_uri = router.uri();
    let mut events = client.events();
    let mut sub = client
        .subscribe("require(n)", SubscribeOptions::default())
        .await
        .unwrap();

    router.proc.kill();
    match tokio::time::timeout(PROMPT, events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ConnectionEvent::Lost { .. } => {}
        other => panic!("expected Lost, got {other:?}"),
    }
    let _restarted = tokio::task::spawn_blocking(move || Router::start_on(port, &[]))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(PROMPT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ConnectionEvent::Reconnected { resubscribed, .. } => {
                assert_eq!(resubscribed, 1);
                break;
            }
            ConnectionEvent::ReconnectFailed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Without the user re-subscribing, notifications arrive again.
    let producer = Client::connect(producer_uri, options()).await.unwrap();
    producer
        .notify(&event(&[("n", Value::Int32(9))]), true, &Keys::new())
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.attributes.get_i32("n"), Some(9));
    producer.close().await.unwrap();
    client.close().await.unwrap();
}

#[test]
fn blocking_api_end_to_end() {
    let router = Router::start(&[]);
    let consumer = elvin_client::blocking::Client::connect(router.uri(), options()).unwrap();
    let producer = elvin_client::blocking::Client::connect(router.uri(), options()).unwrap();
    let sub = consumer
        .subscribe(r#"EVENTTYPE == "START""#, SubscribeOptions::default())
        .unwrap();
    assert!(consumer.try_recv().unwrap().is_none());
    producer
        .notify(
            &event(&[("EVENTTYPE", Value::String("START".into()))]),
            true,
            &Keys::new(),
        )
        .unwrap();
    let got = consumer.recv_timeout(PROMPT).unwrap().expect("delivery");
    assert_eq!(got.attributes.get_str("EVENTTYPE"), Some("START"));
    assert_eq!(Some(got.subscription), sub.id());
    sub.remove().unwrap();
    producer.close().unwrap();
    consumer.close().unwrap();
}
