//! Costs on the event library's per-event paths: building a subscription
//! expression, building a notification, signing and verifying it, and
//! reading an argument from `ARGS`. The scheduler and the relays pay these
//! for every event, so they are measured here rather than guessed.
//!
//! Run with `cargo bench -p tbevents-event`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tbevents_event::{AddressTuple, EventKey, EventNotification, FiringTime, arg_get};

fn typical_event() -> EventNotification {
    let tuple = AddressTuple::new()
        .expt("testbed/demo")
        .host("10.1.1.2")
        .objtype("TRAFGEN")
        .objname("cbr0")
        .eventtype("MODIFY");
    let mut event = EventNotification::from_tuple(&tuple, "10.1.1.1");
    event.set_arguments("INTERVAL=0.2 PACKETSIZE=512 RATE=100 ");
    event.make_schedule_request(FiringTime {
        sec: 1_700_000_000,
        usec: 250_000,
    });
    event
}

fn benches(c: &mut Criterion) {
    let relay_tuple = AddressTuple::new().expt("testbed/demo").host("*,10.1.1.2");
    c.bench_function("expression/relay tuple", |b| {
        b.iter(|| black_box(&relay_tuple).subscription_expression())
    });
    let agents: Vec<String> = (0..40).map(|i| format!("prog{i}")).collect();
    let agent_tuple = AddressTuple::new()
        .expt("testbed/demo")
        .objtype("PROGRAM")
        .objname(agents.join(","));
    c.bench_function("expression/40 program agents", |b| {
        b.iter(|| black_box(&agent_tuple).subscription_expression())
    });

    let tuple = AddressTuple::new()
        .expt("testbed/demo")
        .objname("cbr0")
        .eventtype("START");
    c.bench_function("notification/from tuple", |b| {
        b.iter(|| EventNotification::from_tuple(black_box(&tuple), "10.1.1.1"))
    });

    let key = match EventKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()) {
        Ok(key) => key,
        Err(error) => panic!("{error}"),
    };
    let event = typical_event();
    c.bench_function("hmac/sign", |b| {
        b.iter(|| key.sign(black_box(event.attributes())))
    });
    let mut signed = typical_event();
    signed.insert_hmac(&key);
    c.bench_function("hmac/verify", |b| {
        b.iter(|| key.verify(black_box(signed.attributes())))
    });

    let args = "INTERVAL=0.2 PACKETSIZE=512 COMMAND='ls -l /tmp' SCRIPT={puts {a b}} RATE=100 ";
    c.bench_function("args/get last of five", |b| {
        b.iter(|| arg_get(black_box(args), "rate"))
    });
}

criterion_group!(event, benches);
criterion_main!(event);
