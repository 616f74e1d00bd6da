//! Subscriptions built from tuples, through a real `eventd`: hostile values
//! are accepted by the router and match only their literal; ANY and ALL
//! behave as the original defined them; scheduler requests and live events
//! never cross.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{Router, marks, soon};
use tbevents_event::{AddressTuple, EventError, EventHandle};

async fn handle(router: &Router) -> EventHandle {
    EventHandle::register(&router.uri())
        .await
        .expect("register")
}

/// Sends an event built from `tuple` with a `MARK` attribute to tell
/// deliveries apart.
async fn send(handle: &EventHandle, tuple: &AddressTuple, mark: &str) {
    let mut event = handle.new_notification(tuple);
    event.put("MARK", mark);
    handle.notify(&mut event).await.expect("notify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_accepted_and_match_only_their_literal() {
    let router = Router::start(&[]);
    let producer = handle(&router).await;
    let consumer = handle(&router).await;

    // Single tokens (no spaces or commas) with every character that could
    // end a string literal or add clauses.
    let hostile = [
        r#"x"||EXPT=="y"#,
        r#"a\"b"#,
        r"c\\",
        r"\",
        r#"""#,
        "(d)||(e",
        "f)&&(g",
        "line\nbreak",
        "tab\there",
        "'single'",
        "naïve→ünïcode",
        "nul\0byte",
    ];
    for value in hostile {
        let tuple = AddressTuple::new().expt("p/e").objname(value);
        let mut subscription = consumer
            .subscribe(&tuple)
            .await
            .unwrap_or_else(|e| panic!("router refused the expression for {value:?}: {e}"));

        // Decoys first: anything the quoting could have widened to.
        let without_backslashes: String = value.chars().filter(|c| *c != '\\').collect();
        let decoys = [
            AddressTuple::new().expt("p/e").objname("y"),
            AddressTuple::new().expt("y").objname("y"),
            AddressTuple::new().expt("p/e").objname(format!("{value} ")),
            AddressTuple::new()
                .expt("p/e")
                .objname(format!("{value}{value}")),
            AddressTuple::new().expt("p/e").objname("*"),
            AddressTuple::new()
                .expt("p/e")
                .objname(without_backslashes.clone()),
        ];
        for decoy in &decoys {
            if decoy.objname.as_deref() != Some(value) {
                send(&producer, decoy, "decoy").await;
            }
        }
        send(&producer, &tuple, "literal").await;
        send(&producer, &tuple, "end").await;
        assert_eq!(
            marks(&mut subscription, &["end"]).await,
            ["literal"],
            "value {value:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_injection_with_spaces_becomes_separate_literals() {
    let router = Router::start(&[]);
    let producer = handle(&router).await;
    let consumer = handle(&router).await;

    // The classic injection: in the original this closed the string and
    // added `|| EXPT == "y"`, widening the subscription to experiment y.
    let tuple = AddressTuple::new().host(r#"x" || EXPT == "y"#);
    let mut subscription = consumer.subscribe(&tuple).await.expect("subscribe");
    send(
        &producer,
        &AddressTuple::new().expt("y").host("other"),
        "widened",
    )
    .await;
    send(&producer, &AddressTuple::new().host("x"), "unquoted").await;
    send(&producer, &AddressTuple::new().host(r#"x""#), "token").await;
    send(
        &producer,
        &AddressTuple::new().host("EXPT"),
        "another token",
    )
    .await;
    send(&producer, &AddressTuple::new().host("EXPT"), "end").await;
    assert_eq!(
        marks(&mut subscription, &["end"]).await,
        ["token", "another token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_values_and_oversized_expressions_fail_before_the_router() {
    let router = Router::start(&[]);
    let consumer = handle(&router).await;
    for value in ["", " , "] {
        let error = consumer
            .subscribe(&AddressTuple::new().host(value))
            .await
            .unwrap_err();
        assert!(
            matches!(error, EventError::Expression(_)),
            "{value:?}: {error}"
        );
    }
    let huge = AddressTuple::new().objname("o".repeat(20_000));
    let error = consumer.subscribe(&huge).await.unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");

    // Under our cap but over the router's Subscription.Max-Length (2048 by
    // default): the router's refusal comes back as a client error.
    let names: Vec<String> = (0..200).map(|i| format!("agent{i}")).collect();
    let long = AddressTuple::new().objname(names.join(","));
    let expression = long.subscription_expression().expect("under our cap");
    assert!(expression.len() > 2048 && expression.len() < 8192);
    let error = consumer.subscribe(&long).await.unwrap_err();
    assert!(error.client_error().is_some(), "{error}");

    // The handle still works afterwards.
    consumer
        .subscribe(&AddressTuple::new().objname("ok"))
        .await
        .expect("a normal subscription after the refusals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_versus_all_end_to_end() {
    let router = Router::start(&[]);
    let producer = handle(&router).await;
    let consumer = handle(&router).await;

    let mut directed_only = consumer
        .subscribe(&AddressTuple::new().expt("p/e").host("10.1.1.2"))
        .await
        .unwrap();
    let mut broadcast_and_directed = consumer
        .subscribe(&AddressTuple::new().expt("p/e").host("*,10.1.1.2"))
        .await
        .unwrap();
    let mut any_host = consumer
        .subscribe(&AddressTuple::new().expt("p/e"))
        .await
        .unwrap();

    // A producer's unset HOST goes out as "*".
    send(&producer, &AddressTuple::new().expt("p/e"), "broadcast").await;
    send(
        &producer,
        &AddressTuple::new().expt("p/e").host("10.1.1.2"),
        "directed",
    )
    .await;
    send(
        &producer,
        &AddressTuple::new().expt("p/e").host("10.1.1.3"),
        "elsewhere",
    )
    .await;
    send(
        &producer,
        &AddressTuple::new().expt("q/e").host("10.1.1.2"),
        "other experiment",
    )
    .await;
    // Matches all three subscriptions.
    send(
        &producer,
        &AddressTuple::new().expt("p/e").host("10.1.1.2"),
        "end",
    )
    .await;

    assert_eq!(marks(&mut directed_only, &["end"]).await, ["directed"]);
    assert_eq!(
        marks(&mut broadcast_and_directed, &["end"]).await,
        ["broadcast", "directed"]
    );
    assert_eq!(
        marks(&mut any_host, &["end"]).await,
        ["broadcast", "directed", "elsewhere"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_requests_and_live_events_never_cross() {
    let router = Router::start(&[]);
    let producer = handle(&router).await;
    let consumer = handle(&router).await;
    let mut live = consumer.subscribe(&AddressTuple::new()).await.unwrap();
    let mut requests = consumer
        .subscribe(&AddressTuple::new().scheduler(1))
        .await
        .unwrap();

    send(&producer, &AddressTuple::new(), "live").await;
    // A tuple with scheduler 1 produces a request directly (SCHEDULER comes
    // from the tuple).
    send(&producer, &AddressTuple::new().scheduler(1), "request").await;
    // A notification without SCHEDULER reaches no tuple subscription.
    let mut bare = tbevents_event::EventNotification::new();
    bare.put("MARK", "bare");
    producer.notify(&mut bare).await.unwrap();
    send(&producer, &AddressTuple::new(), "end live").await;
    send(&producer, &AddressTuple::new().scheduler(1), "end requests").await;

    assert_eq!(marks(&mut live, &["end live"]).await, ["live"]);
    assert_eq!(marks(&mut requests, &["end requests"]).await, ["request"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_attribute_arrives_with_its_type() {
    let router = Router::start(&[]);
    let producer = handle(&router).await;
    let consumer = handle(&router).await;
    let mut subscription = consumer
        .subscribe(&AddressTuple::new().expt("p/e"))
        .await
        .unwrap();
    let tuple = AddressTuple::new()
        .site("site")
        .expt("p/e")
        .group("grp")
        .host("10.1.1.2")
        .objtype("LINK")
        .objname("link0")
        .eventtype("DOWN")
        .timeline("tl");
    let mut event = producer.new_notification(&tuple);
    event.set_arguments("BANDWIDTH=100 ");
    producer.notify(&mut event).await.unwrap();

    let got = soon("the event", subscription.recv()).await.expect("event");
    assert_eq!(got.site(), Some("site"));
    assert_eq!(got.expt(), Some("p/e"));
    assert_eq!(got.group(), Some("grp"));
    assert_eq!(got.host(), Some("10.1.1.2"));
    assert_eq!(got.objtype(), Some("LINK"));
    assert_eq!(got.objname(), Some("link0"));
    assert_eq!(got.eventtype(), Some("DOWN"));
    assert_eq!(got.timeline(), Some("tl"));
    assert_eq!(got.scheduler(), Some(0));
    assert_eq!(got.arguments(), Some("BANDWIDTH=100 "));
    // The router is on loopback, so the route to it starts at 127.0.0.1.
    assert_eq!(got.sender(), Some("127.0.0.1"));
    assert_eq!(
        producer.sender().source,
        tbevents_event::SenderSource::RouteToRouter
    );
    // Nothing else: the keyless producer did not sign.
    assert_eq!(got.attributes().len(), 11);
    assert!(!got.contains("__hmac__"));
}
