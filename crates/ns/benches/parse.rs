//! How long parsing takes: the shipped examples, a large generated
//! experiment, and a hostile file that runs the command budget out (the
//! worst case any input can cost).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 200 nodes in a chain of links, each with a program, and 4000 events.
fn large_experiment() -> String {
    let mut text = String::from("set ns [new Simulator]\nsource tb_compat.tcl\n");
    text.push_str("for {set i 0} {$i < 200} {incr i} {\n  set n($i) [$ns node]\n");
    text.push_str("  set p($i) [$n($i) program-agent -command \"run-test $i\"]\n}\n");
    text.push_str("for {set i 1} {$i < 200} {incr i} {\n");
    text.push_str(
        "  set l($i) [$ns duplex-link $n([expr {$i - 1}]) $n($i) 100Mb 1ms DropTail]\n}\n",
    );
    text.push_str("for {set t 0} {$t < 1990} {incr t} {\n");
    text.push_str(
        "  $ns at $t \"$l([expr {$t % 199 + 1}]) down; $p([expr {$t % 200}]) start\"\n}\n",
    );
    text.push_str("for {set t 0} {$t < 20} {incr t} { $ns at 2000.$t \"$ns halt\" }\n");
    text.push_str("$ns run\n");
    text
}

fn bench(c: &mut Criterion) {
    let demo = example("demo.ns");
    let every = example("every-form.ns");
    let large = large_experiment();
    assert_eq!(
        tbevents_ns::parse_str(&large, "large.ns")
            .map(|e| e.events.len())
            .ok(),
        Some(4000)
    );
    let hostile = "set ns [new Simulator]\nfor {set i 0} {1} {} { set a 1; set b 2; set c 3; set d 4; set e 5; set f 6; set g 7; set h 8; set i 0 }\n$ns run\n";
    assert!(tbevents_ns::parse_str(hostile, "hostile.ns").is_err());

    c.bench_function("parse demo.ns", |b| {
        b.iter(|| tbevents_ns::parse_str(black_box(&demo), "demo.ns"))
    });
    c.bench_function("parse every-form.ns", |b| {
        b.iter(|| tbevents_ns::parse_str(black_box(&every), "every-form.ns"))
    });
    c.bench_function("parse 200 nodes, 4000 events", |b| {
        b.iter(|| tbevents_ns::parse_str(black_box(&large), "large.ns"))
    });
    let mut group = c.benchmark_group("worst case");
    group.sample_size(10);
    group.bench_function("runaway loop to the command budget", |b| {
        b.iter(|| tbevents_ns::parse_str(black_box(hostile), "hostile.ns"))
    });
    let long_line = format!(
        "set ns [new Simulator]\nset x {}\n$ns run\n",
        "[list]".repeat(500_000)
    );
    group.bench_function("one 3 MB line of 500,000 [list]", |b| {
        b.iter(|| tbevents_ns::parse_str(black_box(&long_line), "long.ns"))
    });
    let long_condition = format!(
        "set ns [new Simulator]\nfor {{set i 0}} {{{}1}} {{incr i}} {{}}\n$ns run\n",
        " ".repeat(500_000)
    );
    group.bench_function(
        "loop condition of 500,000 bytes to the substitution budget",
        |b| b.iter(|| tbevents_ns::parse_str(black_box(&long_condition), "cond.ns")),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
