//! A deliberately stalled subscriber must not hurt anyone: while a producer
//! sends far more than the stalled client's send-queue limit, the router's
//! memory stays bounded, a second subscriber keeps receiving everything,
//! and the stalled one, when it finally reads, is told about its losses
//! with a DropWarn.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Client, eventd, eventd_process, options, rss_kib};
use elvin_proto::{Attributes, Packet, Value};

const NOTIFICATIONS: usize = 100_000;
const PAYLOAD: usize = 1000;
/// The producer never runs further ahead of the healthy subscriber than
/// this, so the healthy one stays well within its own queue limit.
const WINDOW: usize = 2_000;

fn event(seq: i32) -> Attributes {
    let mut a = Attributes::new();
    a.insert("EXPT", "p/flood");
    a.insert("seq", seq);
    a.insert("payload", vec![7u8; PAYLOAD]);
    a
}

#[test]
fn stalled_subscriber_is_bounded_and_harms_nobody() {
    let router = eventd_process(&["--send-queue-max-length", "8388608"]);
    let pid = router.proc.pid();

    // The stalled client asks for a small queue, subscribes, then stops
    // reading entirely.
    let mut stalled = Client::open(router.addr());
    stalled.handshake(options(&[("Send-Queue.Max-Length", Value::Int32(65_536))]));
    stalled.subscribe(r#"EXPT == "p/flood""#);

    let mut healthy = Client::connect(router.addr());
    healthy.subscribe(r#"EXPT == "p/flood""#);
    let mut producer = Client::connect(router.addr());
    // Every subscription is in place once the producer's round trip is.
    producer.sync();
    let baseline = rss_kib(pid);

    let received = Arc::new(AtomicUsize::new(0));
    let reader = {
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut worst_gap = Duration::ZERO;
            let mut last = Instant::now();
            for expected in 0..NOTIFICATIONS {
                let d = healthy.recv_deliver();
                assert_eq!(
                    d.attributes.get_i32("seq"),
                    Some(expected as i32),
                    "healthy subscriber lost or reordered a notification"
                );
                received.store(expected + 1, Ordering::Release);
                worst_gap = worst_gap.max(last.elapsed());
                last = Instant::now();
            }
            worst_gap
        })
    };

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let done = Arc::clone(&done);
        let peak = Arc::clone(&peak);
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let started = Instant::now();
    for seq in 0..NOTIFICATIONS {
        while seq >= received.load(Ordering::Acquire) + WINDOW {
            std::thread::yield_now();
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "healthy subscriber stalled"
            );
        }
        producer.emit(event(seq as i32));
    }
    let worst_gap = reader.join().expect("healthy subscriber failed");
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    sampler.join().unwrap();

    let sent_mib = (NOTIFICATIONS * PAYLOAD) as u64 / (1024 * 1024);
    let growth_mib = peak.load(Ordering::Relaxed).saturating_sub(baseline) / 1024;
    eprintln!(
        "sent {sent_mib} MiB in {elapsed:?}; router RSS grew {growth_mib} MiB; \
         worst gap between deliveries to the healthy subscriber {worst_gap:?}"
    );
    assert!(
        growth_mib < 40,
        "router RSS grew {growth_mib} MiB while {sent_mib} MiB went to a stalled client"
    );
    assert!(
        worst_gap < Duration::from_secs(2),
        "healthy subscriber waited {worst_gap:?}"
    );

    // With notifications still queued for it, the stalled client's
    // TestConn gets no ConfConn (only an idle queue is confirmed).
    // (The read below runs until 2 s of silence, so a ConfConn sent at any
    // point would be seen.)
    stalled.send(elvin_proto::TestConn);

    // The stalled client wakes up: it finds what its socket buffers held,
    // then a DropWarn, then only recent notifications.
    let mut saw_dropwarn = false;
    let mut delivered = 0usize;
    while let Some(packet) = stalled.recv_within(Duration::from_secs(2)) {
        match packet {
            Packet::DropWarn(_) => saw_dropwarn = true,
            Packet::NotifyDeliver(_) => delivered += 1,
            other => panic!("unexpected {other:?} (no ConfConn while a queue is full)"),
        }
    }
    assert!(
        saw_dropwarn,
        "the stalled client was never told about dropped notifications"
    );
    assert!(
        delivered < NOTIFICATIONS,
        "nothing was dropped for the stalled client"
    );
    // And it is still connected and usable.
    stalled.subscribe("other == 1");
}

#[test]
fn fail_policy_disconnects_a_client_that_cannot_keep_up() {
    let router = eventd();
    let mut stalled = Client::open(router.addr());
    stalled.handshake(options(&[
        ("Send-Queue.Max-Length", Value::Int32(16_384)),
        ("Send-Queue.Drop-Policy", Value::String("fail".into())),
    ]));
    stalled.subscribe(r#"EXPT == "p/flood""#);
    let mut producer = Client::connect(router.addr());
    // Far more than the socket buffers and the 16 KiB queue can hold.
    for seq in 0..20_000 {
        producer.emit(event(seq));
    }
    producer.sync();
    // Reading again: whatever the socket buffers held, then Disconn 4
    // explaining the overflow, then EOF; never a DropWarn.
    loop {
        match stalled.recv() {
            Packet::NotifyDeliver(_) => continue,
            Packet::Disconn(d) => {
                assert_eq!(d.reason, elvin_proto::codes::disconn::PROTOCOL_VIOLATION);
                assert!(d.args.contains("Send queue overflow"), "{}", d.args);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    stalled.expect_closed();
    // The producer is unaffected.
    producer.subscribe("x == 1");
}
