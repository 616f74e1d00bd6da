//! The handle API against a real `eventd`: scheduling requests, register
//! failures and retry, and the blocking handle's poll, blocking poll and
//! stoppable main loop.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{KEY, PROMPT, Router, key_file, soon};
use tbevents_event::blocking;
use tbevents_event::{
    AddressTuple, EventError, EventHandle, FiringTime, Reconnect, RegisterOptions,
};

/// One slice of a dispatch loop that runs until a condition or a deadline.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_sets_scheduler_and_time_once() {
    let router = Router::start(&[]);
    let file = key_file(KEY);
    let producer = EventHandle::register_with_keyfile(&router.uri(), &file.path)
        .await
        .unwrap();
    let scheduler = EventHandle::register_with_keyfile(&router.uri(), &file.path)
        .await
        .unwrap();
    let mut requests = scheduler
        .subscribe(&AddressTuple::new().expt("p/e").scheduler(1))
        .await
        .unwrap();

    let mut event = producer.new_notification(
        &AddressTuple::new()
            .expt("p/e")
            .objname("cbr0")
            .eventtype("STOP"),
    );
    assert_eq!(event.scheduler(), Some(0));
    let first = UNIX_EPOCH + Duration::new(1_800_000_000, 250_000_000);
    producer.schedule(&mut event, first).await.unwrap();
    // Scheduling again replaces the time (the original added a second
    // time_sec).
    producer
        .schedule_at(
            &mut event,
            FiringTime {
                sec: 1_800_000_100,
                usec: 7,
            },
        )
        .await
        .unwrap();

    let got = soon("first request", requests.recv()).await.unwrap();
    assert_eq!(got.scheduler(), Some(1));
    assert_eq!(
        got.firing_time(),
        Some(FiringTime {
            sec: 1_800_000_000,
            usec: 250_000
        })
    );
    let got = soon("second request", requests.recv()).await.unwrap();
    assert_eq!(
        got.firing_time(),
        Some(FiringTime {
            sec: 1_800_000_100,
            usec: 7
        })
    );
    let names: Vec<&str> = got.attributes().iter().map(|(n, _)| n).collect();
    for name in ["time_sec", "time_usec", "SCHEDULER", "__hmac__"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }

    // Times the int32 fields cannot carry are refused before sending.
    let error = producer
        .schedule(&mut event, UNIX_EPOCH + Duration::from_secs(1 << 32))
        .await
        .unwrap_err();
    assert!(matches!(error, EventError::Time(_)), "{error}");
    // Nothing was sent: a good request sent after it is the next to come.
    producer
        .schedule(&mut event, UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        .await
        .unwrap();
    let got = soon("the request after the refused one", requests.recv())
        .await
        .unwrap();
    assert_eq!(got.firing_time().map(|t| t.sec), Some(1_900_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_failures_are_typed() {
    let port = tbevents_testkit::free_port();
    let error = EventHandle::register(&format!("elvin://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(error.client_error().is_some(), "{error}");
    assert!(error.to_string().contains("could not connect"), "{error}");

    let error = EventHandle::register("http://event-server")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not an Elvin URI"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_retry_waits_for_the_router() {
    let port = tbevents_testkit::free_port();
    let uri = format!("elvin://127.0.0.1:{port}");
    let retry = Reconnect {
        retry_interval: Duration::from_millis(100),
        max_retries: None,
    };
    // Until the router comes, something on its port takes each attempt
    // and hangs up; two attempts prove that it retries.
    let hangs_up = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let registering =
        tokio::spawn(async move { EventHandle::register_with_retry(&uri, None, retry).await });
    for _ in 0..2 {
        let accepted = tokio::time::timeout(PROMPT, hangs_up.accept()).await;
        drop(accepted.expect("no (second) attempt to register").unwrap());
    }
    assert!(!registering.is_finished(), "still retrying");
    drop(hangs_up);
    let router = tokio::task::spawn_blocking(move || Router::start_on(port, &[]))
        .await
        .unwrap();
    let handle = soon("registration", registering).await.unwrap().unwrap();
    let mut events = handle.subscribe(&AddressTuple::new()).await.unwrap();
    let mut event = handle.new_notification(&AddressTuple::new().objname("x"));
    handle.notify(&mut event).await.unwrap();
    assert_eq!(
        soon("event", events.recv()).await.unwrap().objname(),
        Some("x")
    );
    handle.unregister().await.unwrap();
    drop(router);

    // A bounded retry gives up with the connect error.
    let port = tbevents_testkit::free_port();
    let retry = Reconnect {
        retry_interval: Duration::from_millis(50),
        max_retries: Some(2),
    };
    let error = EventHandle::register_with(
        &format!("elvin://127.0.0.1:{port}"),
        RegisterOptions::new().retry(retry),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("could not connect"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_sender_is_used() {
    let router = Router::start(&[]);
    let handle = EventHandle::register_with(
        &router.uri(),
        RegisterOptions::new().sender("192.0.2.7".parse().unwrap()),
    )
    .await
    .unwrap();
    let event = handle.new_notification(&AddressTuple::new());
    assert_eq!(event.sender(), Some("192.0.2.7"));
}

/// Events seen by blocking callbacks: (subscription label, OBJNAME).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn recorder(
    seen: &Seen,
    label: &str,
) -> impl FnMut(&blocking::EventHandle, tbevents_event::EventNotification) + Send + 'static {
    let seen = seen.clone();
    let label = label.to_owned();
    move |_, event| {
        seen.lock()
            .unwrap()
            .push((label.clone(), event.objname().unwrap_or("").to_owned()));
    }
}

/// A request and its reply on `handle`'s connection: everything the
/// router sent it before is in by the time this returns.
fn round_trip(handle: &blocking::EventHandle) {
    let token = handle
        .subscribe(&AddressTuple::new().objname("round-trip"), |_, _| {})
        .unwrap();
    handle.unsubscribe(token).unwrap();
}

fn send_blocking(handle: &blocking::EventHandle, objname: &str) {
    let mut event = handle.new_notification(&AddressTuple::new().objname(objname));
    handle.notify(&mut event).unwrap();
}

#[test]
fn blocking_poll_dispatches_to_the_right_callbacks() {
    let router = Router::start(&[]);
    let file = key_file(KEY);
    let producer = blocking::EventHandle::register_with_keyfile(&router.uri(), &file.path).unwrap();
    let consumer = blocking::EventHandle::register_with_keyfile(&router.uri(), &file.path).unwrap();
    let seen: Seen = Arc::default();
    consumer
        .subscribe(&AddressTuple::new().objname("a"), recorder(&seen, "A"))
        .unwrap();
    consumer
        .subscribe(&AddressTuple::new().objname("a,b"), recorder(&seen, "AB"))
        .unwrap();

    // Nothing has arrived: poll returns at once with nothing done.
    assert_eq!(consumer.poll().unwrap(), 0);
    // A blocking poll with a timeout returns 0 when nothing comes.
    let started = Instant::now();
    assert_eq!(
        consumer
            .poll_blocking(Some(Duration::from_millis(200)))
            .unwrap(),
        0
    );
    assert!(started.elapsed() >= Duration::from_millis(190));

    send_blocking(&producer, "a");
    send_blocking(&producer, "b");
    // Callbacks run only when we dispatch. A round trip on the producer's
    // connection means the router has routed both events; one on the
    // consumer's means both have reached the consumer (they are ahead of
    // its reply on the wire). Still nothing may have run.
    round_trip(&producer);
    round_trip(&consumer);
    assert!(seen.lock().unwrap().is_empty());
    let mut ran = consumer.poll_blocking(Some(PROMPT)).unwrap();
    let deadline = Instant::now() + PROMPT;
    while ran < 3 && Instant::now() < deadline {
        ran += consumer.poll_blocking(Some(POLL)).unwrap();
    }
    assert_eq!(ran, 3);
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("A".to_owned(), "a".to_owned()),
            ("AB".to_owned(), "a".to_owned()),
            ("AB".to_owned(), "b".to_owned()),
        ]
    );

    // Unsigned events are dropped before any callback runs.
    let unsigned = producer.new_notification(&AddressTuple::new().objname("a"));
    producer.notify_raw(unsigned.attributes()).unwrap();
    // A signed sentinel sent after it: once the sentinel's callback has run,
    // the unsigned event (sent first, same connection, so delivered first)
    // would have run too if it had not been dropped.
    send_blocking(&producer, "b");
    let deadline = Instant::now() + PROMPT;
    while seen.lock().unwrap().len() < 4 && Instant::now() < deadline {
        consumer.poll_blocking(Some(POLL)).unwrap();
    }
    assert_eq!(
        seen.lock().unwrap()[3..],
        [("AB".to_owned(), "b".to_owned())],
        "only the signed sentinel ran"
    );

    consumer.unregister().unwrap();
    producer.unregister().unwrap();
}

#[test]
fn blocking_main_runs_until_stopped_and_callbacks_can_reply() {
    let router = Router::start(&[]);
    let agent = blocking::EventHandle::register(&router.uri()).unwrap();
    let tester = blocking::EventHandle::register(&router.uri()).unwrap();
    let replies: Seen = Arc::default();
    tester
        .subscribe(
            &AddressTuple::new().eventtype("COMPLETE"),
            recorder(&replies, "reply"),
        )
        .unwrap();

    // The agent answers each START with a COMPLETE, from its callback.
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    agent
        .subscribe(
            &AddressTuple::new().eventtype("START"),
            move |handle, event| {
                counter.fetch_add(1, Ordering::SeqCst);
                // Dispatching from inside a callback is refused, not a
                // deadlock.
                assert!(matches!(handle.poll(), Err(EventError::AlreadyDispatching)));
                let tuple = AddressTuple::new()
                    .objname(event.objname().unwrap_or(""))
                    .eventtype("COMPLETE");
                let mut reply = handle.new_notification(&tuple);
                handle.notify(&mut reply).unwrap();
            },
        )
        .unwrap();
    let stop = agent.stop_handle();
    let main = std::thread::spawn(move || {
        let result = agent.main();
        (agent, result)
    });

    for name in ["p1", "p2"] {
        let mut start =
            tester.new_notification(&AddressTuple::new().objname(name).eventtype("START"));
        tester.notify(&mut start).unwrap();
    }
    let deadline = Instant::now() + PROMPT;
    while replies.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tester.poll_blocking(Some(POLL)).unwrap();
    }
    let mut got: Vec<String> = replies
        .lock()
        .unwrap()
        .iter()
        .map(|(_, o)| o.clone())
        .collect();
    got.sort();
    assert_eq!(got, ["p1", "p2"]);

    stop.stop();
    let (agent, result) = main.join().unwrap();
    result.expect("main returns Ok when stopped");
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    agent.unregister().unwrap();
}

#[test]
fn blocking_unsubscribe_from_inside_its_callback() {
    let router = Router::start(&[]);
    let handle = Arc::new(blocking::EventHandle::register(&router.uri()).unwrap());
    let token_slot: Arc<Mutex<Option<blocking::SubscriptionToken>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let (slot, counter) = (token_slot.clone(), count.clone());
    let token = handle
        .subscribe(&AddressTuple::new().objname("once"), move |handle, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Some(token) = slot.lock().unwrap().take() {
                handle.unsubscribe(token).unwrap();
            }
        })
        .unwrap();
    *token_slot.lock().unwrap() = Some(token);

    // A sentinel on its own subscription, sent after the three on the same
    // connection: once its callback has run, the three have been
    // dispatched, and any (wrong) callback after unsubscribing has run too.
    let sentinel_seen = Arc::new(AtomicUsize::new(0));
    let seen = sentinel_seen.clone();
    handle
        .subscribe(&AddressTuple::new().objname("sentinel"), move |_, _| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    for _ in 0..3 {
        send_blocking(&handle, "once");
    }
    send_blocking(&handle, "sentinel");
    let deadline = Instant::now() + PROMPT;
    while sentinel_seen.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        handle
            .poll_blocking(Some(Duration::from_millis(100)))
            .unwrap();
    }
    assert_eq!(sentinel_seen.load(Ordering::SeqCst), 1, "the sentinel came");
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "no callbacks after unsubscribing"
    );
}

#[test]
fn blocking_main_reports_a_lost_router() {
    let mut router = Router::start(&[]);
    let handle = blocking::EventHandle::register(&router.uri()).unwrap();
    handle.subscribe(&AddressTuple::new(), |_, _| {}).unwrap();
    let main = std::thread::spawn(move || handle.main());
    // Whether main() is already waiting or not yet called, a lost router
    // must end it.
    router.proc.kill();
    let deadline = Instant::now() + PROMPT;
    while !main.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        main.is_finished(),
        "main should end when the router goes away"
    );
    let result = main.join().unwrap();
    assert!(result.is_err(), "{result:?}");
}
