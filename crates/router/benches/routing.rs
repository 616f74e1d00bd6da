//! The in-process routing path, without sockets: decode one Emulab-shaped
//! NotifyEmit on the borrowed path, route it through the index against
//! 0, 1,000 or 100,000 non-matching subscriptions plus 1 matching one, and
//! queue the NotifyDeliver for the matching client. A regression in the
//! index, the evaluator or the outbox shows up here first.
//!
//! Run with `cargo bench -p elvin-router --bench routing`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use elvin_proto::options::DropPolicy;
use elvin_proto::{Attributes, Keys, NotifyEmit, Packet, decode_notify_emit};
use elvin_router::{Broker, Metrics, Notification, Outbox, QueueLimits, RouteScratch, Sink};
use elvin_sublang::{Limits, Subscription};
use tokio::sync::Notify;

/// A NotifyEmit body as the Emulab event library sends it.
fn emulab_body() -> Vec<u8> {
    let mut a = Attributes::new();
    a.insert("SITE", "emulab.net");
    a.insert("EXPT", "testbed/target");
    a.insert("GROUP", "testbed");
    a.insert("HOST", "*");
    a.insert("OBJTYPE", "TRAFGEN");
    a.insert("OBJNAME", "cbr0");
    a.insert("EVENTTYPE", "START");
    a.insert("ARGS", "PACKETSIZE=500 RATE=100000");
    a.insert("___SENDER___", "155.98.32.70");
    a.insert("SCHEDULER", 0);
    a.insert("time_sec", 1_700_000_000);
    a.insert("time_usec", 250_000);
    a.insert("__hmac__", vec![0xA5u8; 20]);
    let mut frame = Vec::new();
    Packet::from(NotifyEmit {
        attributes: a,
        deliver_insecure: true,
        keys: Keys::new(),
    })
    .encode(&mut frame);
    frame.split_off(4)
}

/// The subscription an agent or a scheduler of experiment `expt` holds.
fn emulab_subscription(expt: &str, host: &str) -> Subscription {
    let expression = format!(
        r#" ( EXPT == "{expt}" ) && ( HOST == "*" || HOST == "{host}" ) && ( OBJTYPE == "TRAFGEN" ) && SCHEDULER == 0 "#
    );
    Subscription::compile(&expression, &Limits::default()).expect("valid subscription")
}

fn outbox(metrics: &Arc<Metrics>) -> Arc<Outbox> {
    Outbox::new(
        Sink::Writer(Arc::new(Notify::new())),
        QueueLimits {
            max_bytes: usize::MAX / 2,
            policy: DropPolicy::Oldest,
            max_packet: 1 << 20,
        },
        Arc::clone(metrics),
    )
}

fn bench_routing(c: &mut Criterion) {
    let body = emulab_body();
    let mut group = c.benchmark_group("route_emulab_notify");
    group.throughput(Throughput::Elements(1));
    for non_matching in [0usize, 1_000, 100_000] {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(Arc::clone(&metrics));
        // Non-matching subscriptions spread over 100 clients.
        let others: Vec<_> = (0..100)
            .map(|_| broker.register_client(outbox(&metrics), Keys::new()))
            .collect();
        for i in 0..non_matching {
            let client = others[i % others.len()];
            broker.add_subscription(
                client,
                emulab_subscription(&format!("testbed/exp{i}"), &format!("node{i}")),
                true,
                Keys::new(),
            );
        }
        let target_outbox = outbox(&metrics);
        let target = broker.register_client(Arc::clone(&target_outbox), Keys::new());
        broker.add_subscription(
            target,
            emulab_subscription("testbed/target", "node1"),
            true,
            Keys::new(),
        );
        let mut scratch = RouteScratch::new();
        let no_keys = Keys::new();
        let mut drained = Vec::with_capacity(1 << 16);
        group.bench_function(BenchmarkId::from_parameter(non_matching), |b| {
            b.iter(|| {
                let notify = decode_notify_emit(black_box(&body)).expect("valid frame");
                let delivered = broker.route(
                    &Notification {
                        attributes: &notify.attributes,
                        raw_attributes: notify.raw_attributes,
                        deliver_insecure: notify.deliver_insecure,
                        message_keys: &no_keys,
                        producer_keys: &no_keys,
                    },
                    &mut scratch,
                );
                assert_eq!(delivered, 1);
                scratch.forget_touched();
                drained.clear();
                target_outbox.take_batch(&mut drained, usize::MAX);
                black_box(&drained);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
