//! Benchmarks of the subscription language on Emulab's workload: compiling
//! the expression evproxy sends, and evaluating it against an
//! Emulab-shaped notification held zero-copy in an `AttributesRef`, as the
//! router does. Target: evaluation under 200 ns.
//!
//! Run with `cargo bench -p elvin-sublang`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use elvin_proto::{AttributesRef, ValueRef};
use elvin_sublang::{Limits, Subscription, Truth};

/// The subscription evproxy builds for experiment p/e and one host.
const EMULAB_EXPRESSION: &str =
    r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.0.0.1" ) && SCHEDULER == 0 "#;

const HMAC: [u8; 20] = [0x5a; 20];

/// A notification as the Emulab event library sends it: the seven address
/// strings, SCHEDULER, the sender, ARGS, the firing time and the HMAC, in
/// the library's order.
fn emulab_notification(
    expt: &'static str,
    host: &'static str,
    scheduler: i32,
) -> AttributesRef<'static> {
    AttributesRef {
        entries: vec![
            ("SITE", ValueRef::String("*")),
            ("EXPT", ValueRef::String(expt)),
            ("GROUP", ValueRef::String("*")),
            ("HOST", ValueRef::String(host)),
            ("OBJTYPE", ValueRef::String("LINK")),
            ("OBJNAME", ValueRef::String("link0")),
            ("EVENTTYPE", ValueRef::String("MODIFY")),
            ("SCHEDULER", ValueRef::Int32(scheduler)),
            ("___SENDER___", ValueRef::String("10.0.0.254")),
            ("ARGS", ValueRef::String("BANDWIDTH=1000 DELAY=10ms ")),
            ("time_sec", ValueRef::Int32(1_087_828_041)),
            ("time_usec", ValueRef::Int32(50_467)),
            ("__hmac__", ValueRef::Opaque(&HMAC)),
        ],
    }
}

fn compile(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("compile emulab expression", |b| {
        b.iter(|| Subscription::compile(black_box(EMULAB_EXPRESSION), &limits))
    });
}

fn evaluate(c: &mut Criterion) {
    let sub = match Subscription::compile(EMULAB_EXPRESSION, &Limits::default()) {
        Ok(sub) => sub,
        Err(e) => panic!("the benchmark expression does not compile: {e}"),
    };
    let cases = [
        (
            "evaluate emulab: match",
            emulab_notification("p/e", "10.0.0.1", 0),
            Truth::True,
        ),
        (
            "evaluate emulab: no match, other experiment",
            emulab_notification("p/other", "*", 0),
            Truth::False,
        ),
        (
            "evaluate emulab: no match, other host",
            emulab_notification("p/e", "10.0.0.2", 0),
            Truth::False,
        ),
        (
            "evaluate emulab: no match, scheduler request",
            emulab_notification("p/e", "*", 1),
            Truth::False,
        ),
    ];
    for (name, notification, expected) in cases {
        assert_eq!(sub.evaluate(&notification), expected, "{name}");
        c.bench_function(name, |b| {
            b.iter(|| black_box(&sub).evaluate(black_box(&notification)))
        });
    }
}

/// The issue-8 attack: `wildcard(x, "*?{1500}z*")` against a 500 KB value
/// (a quadratic scan took 1.8 s per notification).
fn wildcard_attack(c: &mut Criterion) {
    let expression = format!("wildcard(x, \"*{}z*\")", "?".repeat(1500));
    let sub = Subscription::compile(&expression, &Limits::default()).expect("compiles");
    let mut notification = elvin_proto::Attributes::new();
    notification.insert("x", "a".repeat(500_000));
    c.bench_function("wildcard attack: 1,500 ? against 500 KB", |b| {
        b.iter(|| black_box(&sub).evaluate(black_box(&notification)))
    });
}

criterion_group!(benches, compile, evaluate, wildcard_attack);
criterion_main!(benches);
