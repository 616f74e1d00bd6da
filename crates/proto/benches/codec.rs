//! Codec benchmarks for the router's per-notification work: decoding an
//! Emulab-shaped NotifyEmit on the borrowed hot path, writing the
//! NotifyDeliver for one subscriber from its raw attribute bytes, and (for
//! comparison) the owned decoder and the key match.
//!
//! Run with `cargo bench -p elvin-proto --bench codec`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use elvin_proto::keys::{KeyEntry, Keys, keys_match};
use elvin_proto::{
    Attributes, NotifyEmit, Packet, Value, decode_notify_emit, encode_notify_deliver_raw,
};

/// A NotifyEmit frame body shaped like the events Emulab's event library
/// sends (string routing attributes, scheduler flag, timestamp, HMAC).
fn emulab_notify_emit_body() -> Vec<u8> {
    let mut attributes = Attributes::new();
    attributes.insert("SITE", "emulab.net");
    attributes.insert("EXPT", "testbed/myexp");
    attributes.insert("GROUP", "testbed");
    attributes.insert("HOST", "node1.myexp.testbed.emulab.net");
    attributes.insert("OBJTYPE", "TRAFGEN");
    attributes.insert("OBJNAME", "cbr0");
    attributes.insert("EVENTTYPE", "START");
    attributes.insert("ARGS", "PACKETSIZE=500 RATE=100000");
    attributes.insert("___SENDER___", "155.98.32.70");
    attributes.insert("SCHEDULER", 0);
    attributes.insert("time_sec", 1_700_000_000);
    attributes.insert("time_usec", 250_000);
    attributes.insert("__hmac__", Value::Opaque(vec![0xA5; 20]));
    let mut frame = Vec::new();
    Packet::from(NotifyEmit {
        attributes,
        deliver_insecure: true,
        keys: Keys::new(),
    })
    .encode(&mut frame);
    frame.split_off(4)
}

fn codec(c: &mut Criterion) {
    let body = emulab_notify_emit_body();

    c.bench_function("decode_notify_emit (emulab, 13 attrs)", |b| {
        b.iter(|| {
            let notify = decode_notify_emit(black_box(&body)).expect("valid frame");
            black_box(notify.attributes.entries.len())
        })
    });

    let notify = decode_notify_emit(&body).expect("valid frame");
    c.bench_function("has_duplicate_names (emulab, 13 attrs)", |b| {
        b.iter(|| black_box(&notify.attributes).has_duplicate_names())
    });

    let raw = notify.raw_attributes;
    let mut out = Vec::with_capacity(1024);
    c.bench_function("encode_notify_deliver_raw (emulab, 1 sub)", |b| {
        b.iter(|| {
            out.clear();
            encode_notify_deliver_raw(&mut out, black_box(raw), black_box(&[]), black_box(&[42]));
            black_box(out.len())
        })
    });

    c.bench_function("Packet::decode owned NotifyEmit (emulab)", |b| {
        b.iter(|| black_box(Packet::decode(black_box(&body)).expect("valid frame")))
    });

    let producer = Keys {
        entries: vec![KeyEntry::Producer(vec![b"alice".to_vec()])],
    }
    .to_public_for_notification();
    let subscription = Keys {
        entries: vec![KeyEntry::Producer(vec![
            vec![1; 20],
            vec![2; 20],
            producer_key(&producer),
        ])],
    };
    c.bench_function("keys_match (producer, 3 keys)", |b| {
        b.iter(|| black_box(keys_match(black_box(&subscription), black_box(&producer))))
    });
}

fn producer_key(keys: &Keys) -> Vec<u8> {
    match keys.entries.first() {
        Some(KeyEntry::Producer(set)) => set.first().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
