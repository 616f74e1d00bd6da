//! Speed of the two bulk paths the scheduler depends on, on a real SQLite
//! file: writing 100,000 static events with `load_virtual`, and reading them
//! back with `events()`. The scheduler must load *and arm* 100,000 events in
//! under a second, so `events()` has to take well under that.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tbevents_store::{
    ExperimentId, ExperimentStore, GroupRow, NewExperiment, SqliteStore, StaticEvent, VirtAgent,
    VirtNode, VirtualExperiment,
};

const EVENTS: usize = 100_000;
const AGENTS: usize = 200;

/// 100,000 events over 200 program/trafgen/link agents, with times that
/// repeat (many events share a second) and realistic argument strings.
fn big_experiment() -> VirtualExperiment {
    let object_types = ["PROGRAM", "TRAFGEN", "LINK"];
    let event_types = ["START", "STOP", "MODIFY"];
    let nodes = (0..AGENTS / 4)
        .map(|n| VirtNode {
            vname: format!("node{n}"),
            ..VirtNode::default()
        })
        .collect();
    let agents = (0..AGENTS)
        .map(|a| VirtAgent {
            vname: format!("agent{a}"),
            vnode: format!("node{}", a / 4),
            objtype: object_types[a % 3].to_owned(),
        })
        .collect();
    let events = (0..EVENTS)
        .map(|i| {
            let a = i % AGENTS;
            StaticEvent {
                time: (i / 7) as f64 * 0.25,
                vnode: format!("node{}", a / 4),
                vname: format!("agent{a}"),
                objtype: object_types[a % 3].to_owned(),
                eventtype: event_types[i % 3].to_owned(),
                arguments: format!("BANDWIDTH={} DELAY={}ms", 1000 + i % 5000, i % 100),
                atstring: format!("$ns at {} \"$agent{a} start\"", (i / 7) as f64 * 0.25),
            }
        })
        .collect();
    VirtualExperiment {
        nodes,
        agents,
        events,
        groups: vec![GroupRow {
            group_name: "all".into(),
            agent_name: "agent0".into(),
        }],
        simulator_name: "ns".into(),
        ..VirtualExperiment::default()
    }
}

fn bench_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("open");
    let id = ExperimentId::new("bench", "big");
    store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "bench",
            "alice",
            "/proj/bench/exp/big",
        ))
        .expect("create");
    let virt = big_experiment();

    let mut group = c.benchmark_group("store_100k_events");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    // Replacing: deletes the previous 100,000 rows, then inserts.
    group.bench_function("load_virtual_replace", |b| {
        b.iter(|| store.load_virtual(&id, black_box(&virt)).expect("load"));
    });

    // Inserting into an experiment that has no rows yet (first load).
    let fresh = ExperimentId::new("bench", "fresh");
    let new_fresh = NewExperiment::new(fresh.clone(), "bench", "alice", "/proj/bench/exp/fresh");
    store.create_experiment(&new_fresh).expect("create");
    group.bench_function("load_virtual_fresh", |b| {
        b.iter_batched(
            || {
                store.delete_experiment(&fresh).expect("delete");
                store.create_experiment(&new_fresh).expect("create");
            },
            |()| store.load_virtual(&fresh, black_box(&virt)).expect("load"),
            BatchSize::PerIteration,
        );
    });

    store.load_virtual(&id, &virt).expect("load");
    // The scheduler keeps the rows it loads, so freeing them is not part of
    // the load time: drop them outside the timed section.
    group.bench_function("events", |b| {
        b.iter_with_large_drop(|| {
            let events = store.events(black_box(&id)).expect("events");
            assert_eq!(events.len(), EVENTS);
            events
        });
    });

    group.bench_function("agents", |b| {
        b.iter(|| store.agents(black_box(&id)).expect("agents"));
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
