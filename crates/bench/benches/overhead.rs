//! The tool's own per-event cost: encoding an event from its template and
//! reading a delivered event back. Both must be far below a router's
//! per-event cost (microseconds), or the tool would measure itself.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use elvin_bench::shape::{EventTemplate, read_event};
use std::hint::black_box;

fn overhead(c: &mut Criterion) {
    let template = EventTemplate::new(1, 0, 1 << 20).expect("template");
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(256));
    group.bench_function("encode 256 events", |b| {
        let mut batch = Vec::with_capacity(256 * template.frame_len());
        b.iter(|| {
            batch.clear();
            for seq in 0..256u64 {
                template.append(&mut batch, seq, seq * 3);
            }
            black_box(batch.len())
        })
    });
    let mut frame = Vec::new();
    template.append(&mut frame, 42, 4242);
    let body = frame[4..].to_vec();
    group.throughput(Throughput::Elements(1));
    group.bench_function("read 1 delivered event", |b| {
        b.iter(|| black_box(read_event(black_box(&body)).ok().flatten()))
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
