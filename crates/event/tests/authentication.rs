//! HMAC authentication end to end through a real `eventd`: keyed handles
//! sign and accept good events; forged, swapped, missing and stale
//! signatures are dropped before the subscriber sees them; keyless handles
//! see everything; relays forward signatures untouched.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{KEY, OTHER_KEY, Router, key_file, marks, soon};
use hmac::{KeyInit, Mac};
use tbevents_event::{
    AddressTuple, Attributes, EventError, EventHandle, EventKey, EventNotification, Value,
};

fn tuple() -> AddressTuple {
    AddressTuple::new()
        .expt("p/e")
        .objname("cbr0")
        .eventtype("START")
}

async fn keyed(router: &Router, key: &[u8]) -> (EventHandle, common::KeyFile) {
    let file = key_file(key);
    let handle = EventHandle::register_with_keyfile(&router.uri(), &file.path)
        .await
        .expect("register with key");
    (handle, file)
}

async fn keyless(router: &Router) -> EventHandle {
    EventHandle::register(&router.uri())
        .await
        .expect("register")
}

/// A signed event from `signer`, as attributes (to be tampered with).
fn signed(signer: &EventHandle, mark: &str) -> EventNotification {
    let mut event = signer.new_notification(&tuple());
    event.put("MARK", mark);
    signer.insert_hmac(&mut event).expect("signer has a key");
    event
}

/// The original library's MAC: values only, in the list's order, numbers
/// in host (little-endian) order, names not covered. Only used to show
/// that a swap would have passed it.
fn original_style_mac(key: &[u8], attributes: &Attributes) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    for (name, value) in attributes.iter() {
        if name == "__hmac__" {
            continue;
        }
        match value {
            Value::Int32(v) => mac.update(&v.to_le_bytes()),
            Value::Int64(v) => mac.update(&v.to_le_bytes()),
            Value::Real64(v) => mac.update(&v.to_le_bytes()),
            Value::String(s) => mac.update(s.as_bytes()),
            Value::Opaque(b) => mac.update(b),
        }
    }
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_are_accepted_and_tampered_ones_dropped() {
    let router = Router::start(&[]);
    let (signer, _f1) = keyed(&router, KEY).await;
    let (receiver, _f2) = keyed(&router, KEY).await;
    let raw_sender = keyless(&router).await;
    let mut subscription = receiver.subscribe(&tuple()).await.unwrap();

    // 1. Accepted: signed by notify itself.
    let mut good = signer.new_notification(&tuple());
    good.put("MARK", "good");
    signer.notify(&mut good).await.unwrap();
    assert!(good.has_hmac());
    assert_eq!(good.hmac().map(<[u8]>::len), Some(20));

    // 2. Forged: a value changed after signing.
    let mut forged = signed(&signer, "forged").into_attributes();
    forged.insert("ARGS", "RATE=1000000 ");
    raw_sender.notify_raw(&forged).await.unwrap();

    // 3. Swapped: two attributes' names exchanged, values left in place.
    // The original MAC (values only, in order) cannot see this.
    let original = signed(&signer, "swapped").into_attributes();
    let mut swapped = Attributes::new();
    for (name, value) in original.iter() {
        let name = match name {
            "OBJNAME" => "EVENTTYPE",
            "EVENTTYPE" => "OBJNAME",
            other => other,
        };
        swapped.insert(name, value.clone());
    }
    assert_eq!(swapped.get_str("OBJNAME"), Some("START"));
    assert_eq!(
        original_style_mac(KEY, &original),
        original_style_mac(KEY, &swapped),
        "the swap must be invisible to the original's MAC for this test to mean anything"
    );
    // Subscribe so the swapped event would be routed to us.
    let mut swapped_view = receiver
        .subscribe(&AddressTuple::new().expt("p/e").objname("START"))
        .await
        .unwrap();
    raw_sender.notify_raw(&swapped).await.unwrap();

    // 4. Missing: an unsigned event.
    let mut unsigned = raw_sender.new_notification(&tuple());
    unsigned.put("MARK", "unsigned");
    raw_sender.notify(&mut unsigned).await.unwrap();
    assert!(!unsigned.has_hmac());

    // 5. Signed with another experiment's key.
    let (stranger, _f3) = keyed(&router, OTHER_KEY).await;
    let mut foreign = stranger.new_notification(&tuple());
    foreign.put("MARK", "foreign");
    stranger.notify(&mut foreign).await.unwrap();

    // 6. A MAC that is not opaque.
    let mut wrong_type = signed(&signer, "wrong type").into_attributes();
    wrong_type.insert("__hmac__", "not-bytes");
    raw_sender.notify_raw(&wrong_type).await.unwrap();

    // A good one last, so ordering proves nothing slipped through.
    let mut last = signer.new_notification(&tuple());
    last.put("MARK", "last");
    signer.notify(&mut last).await.unwrap();
    // Good sentinels through the other two connections, after what they
    // sent: "last" (from the signer) and these end the waits below.
    for (sender, mark) in [(&raw_sender, "end raw"), (&stranger, "end stranger")] {
        sender
            .notify_raw(signed(&signer, mark).attributes())
            .await
            .unwrap();
    }
    let mut swapped_end =
        signer.new_notification(&AddressTuple::new().expt("p/e").objname("START"));
    swapped_end.put("MARK", "end swapped");
    signer.insert_hmac(&mut swapped_end).unwrap();
    raw_sender
        .notify_raw(swapped_end.attributes())
        .await
        .unwrap();

    assert_eq!(
        marks(&mut subscription, &["last", "end raw", "end stranger"]).await,
        ["good"]
    );
    assert_eq!(subscription.rejected(), 4);
    assert_eq!(
        marks(&mut swapped_view, &["end swapped"]).await,
        Vec::<String>::new()
    );
    assert_eq!(swapped_view.rejected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_handles_see_everything() {
    let router = Router::start(&[]);
    let (signer, _f) = keyed(&router, KEY).await;
    let watcher = keyless(&router).await;
    let mut subscription = watcher.subscribe(&tuple()).await.unwrap();

    let mut good = signer.new_notification(&tuple());
    good.put("MARK", "signed");
    signer.notify(&mut good).await.unwrap();
    let mut forged = signed(&signer, "forged").into_attributes();
    forged.insert("ARGS", "changed");
    watcher.notify_raw(&forged).await.unwrap();
    let mut unsigned = watcher.new_notification(&tuple());
    unsigned.put("MARK", "unsigned");
    watcher.notify(&mut unsigned).await.unwrap();
    // A sentinel after each producer's events.
    for (sender, mark) in [(&signer, "end signer"), (&watcher, "end watcher")] {
        let mut end = sender.new_notification(&tuple());
        end.put("MARK", mark);
        sender.notify(&mut end).await.unwrap();
    }

    // Two producers: arrival order between them is not defined.
    let mut seen = marks(&mut subscription, &["end signer", "end watcher"]).await;
    seen.sort();
    assert_eq!(seen, ["forged", "signed", "unsigned"]);
    assert_eq!(subscription.rejected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_events_are_re_signed_and_stale_signatures_fail() {
    let router = Router::start(&[]);
    let (producer, _f1) = keyed(&router, KEY).await;
    let (rewriter, _f2) = keyed(&router, KEY).await;
    let (agent, _f3) = keyed(&router, KEY).await;
    let mut requests = rewriter
        .subscribe(&AddressTuple::new().expt("p/e").scheduler(1))
        .await
        .unwrap();
    let mut fired = agent
        .subscribe(&AddressTuple::new().expt("p/e").host("10.1.1.2"))
        .await
        .unwrap();

    let mut request = producer.new_notification(&tuple());
    request.put("MARK", "request");
    producer
        .schedule(&mut request, std::time::SystemTime::now())
        .await
        .unwrap();

    // The scheduler's rewrite: received (verified), changed, sent on.
    let received = soon("the request", requests.recv()).await.unwrap();
    assert!(received.has_hmac(), "verified on receipt");
    let key = rewriter.key().unwrap();
    assert!(received.is_signed_with(key));

    // Stale: changed and sent without re-signing.
    let mut stale = received.clone();
    stale.set_scheduler(0);
    stale.set_host("10.1.1.2");
    stale.put("MARK", "stale");
    assert!(!stale.has_hmac(), "a change clears the flag");
    rewriter.notify_raw(stale.attributes()).await.unwrap();

    // Explicit re-sign, as the scheduler does.
    let mut explicit = received.clone();
    explicit.set_scheduler(0);
    explicit.set_host("10.1.1.2");
    explicit.put("MARK", "explicit");
    rewriter.insert_hmac(&mut explicit).unwrap();
    rewriter.notify(&mut explicit).await.unwrap();

    // Automatic: notify re-signs a changed notification.
    let mut automatic = received.clone();
    automatic.set_scheduler(0);
    automatic.set_host("10.1.1.2");
    automatic.put("MARK", "automatic");
    rewriter.notify(&mut automatic).await.unwrap();
    assert!(automatic.is_signed_with(key));
    let mut end = received.clone();
    end.set_scheduler(0);
    end.set_host("10.1.1.2");
    end.put("MARK", "end");
    rewriter.notify(&mut end).await.unwrap();

    assert_eq!(marks(&mut fired, &["end"]).await, ["explicit", "automatic"]);
    assert_eq!(fired.rejected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_forward_the_producers_signature_untouched() {
    let router_upstream = Router::start(&[]);
    let router_local = Router::start(&[]);
    let (producer, _f1) = keyed(&router_upstream, KEY).await;
    let relay_in = keyless(&router_upstream).await;
    let relay_out = keyless(&router_local).await;
    let (agent, _f2) = keyed(&router_local, KEY).await;

    let mut upstream = relay_in.subscribe(&tuple()).await.unwrap();
    let mut local = agent.subscribe(&tuple()).await.unwrap();

    let mut event = producer.new_notification(&tuple());
    event.put("MARK", "relayed");
    producer.notify(&mut event).await.unwrap();
    let original_mac = event.hmac().unwrap().to_vec();

    let mut forwarded = soon("upstream", upstream.recv()).await.unwrap();
    assert!(!forwarded.has_hmac(), "a keyless handle verifies nothing");
    relay_out.notify(&mut forwarded).await.unwrap();
    assert_eq!(forwarded.hmac(), Some(&original_mac[..]), "not re-signed");

    let got = soon("local", local.recv()).await.unwrap();
    assert_eq!(got.get_string("MARK"), Some("relayed"));
    assert_eq!(got.hmac(), Some(&original_mac[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_only_see_authenticated_events() {
    let router = Router::start(&[]);
    let (signer, _f1) = keyed(&router, KEY).await;
    let (receiver, _f2) = keyed(&router, KEY).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let subscription = receiver
        .subscribe_with(&tuple(), move |event| {
            let _ = tx.send(event.get_string("MARK").unwrap_or("?").to_owned());
        })
        .await
        .unwrap();
    let mut unsigned = signer.new_notification(&tuple());
    unsigned.put("MARK", "unsigned");
    signer.notify_raw(unsigned.attributes()).await.unwrap();
    let mut good = signer.new_notification(&tuple());
    good.put("MARK", "good");
    signer.notify(&mut good).await.unwrap();
    // A sentinel: the unsigned event, sent first on the same connection,
    // would have reached the callback before these if it got through.
    let mut last = signer.new_notification(&tuple());
    last.put("MARK", "last");
    signer.notify(&mut last).await.unwrap();

    assert_eq!(soon("callback", rx.recv()).await.as_deref(), Some("good"));
    assert_eq!(soon("callback", rx.recv()).await.as_deref(), Some("last"));
    assert_eq!(subscription.rejected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_problems_are_reported_before_connecting() {
    let router = Router::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("eventkey");
    let error = EventHandle::register_with_keyfile(&router.uri(), &missing)
        .await
        .unwrap_err();
    assert!(matches!(error, EventError::Key(_)), "{error}");
    assert!(error.to_string().contains("eventkey"), "{error}");

    let empty = key_file(b"");
    let error = EventHandle::register_with_keyfile(&router.uri(), &empty.path)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is empty"), "{error}");

    let keyless = keyless(&router).await;
    let mut event = keyless.new_notification(&tuple());
    assert!(matches!(
        keyless.insert_hmac(&mut event),
        Err(EventError::NoKey)
    ));

    // A key file with a trailing newline is the same key as without.
    let (plain, _f1) = keyed(&router, KEY).await;
    let mut with_newline = KEY.to_vec();
    with_newline.push(b'\n');
    let (newline, _f2) = keyed(&router, &with_newline).await;
    assert_eq!(plain.key(), newline.key());
    assert_eq!(
        plain.key().map(EventKey::as_bytes),
        Some(KEY),
        "the newline is not part of the key"
    );
}
