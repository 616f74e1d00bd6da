//! Starting settings read from a real SQLite store loaded from the demo
//! NS file: the access link's two directions, its deeper router queue,
//! and the refusal of links the store does not have.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::time::Duration;

use tbevents_linkshape::LinkSpec;
use tbevents_linkshape::agent::{AgentConfig, BackendKind, starting_pipes};
use tbevents_store::{ExperimentId, NewExperiment};

fn config(store_url: &str, links: &[&str]) -> AgentConfig {
    AgentConfig {
        server: "elvin://127.0.0.1:1".into(),
        experiment: Some("tbtest/demo".into()),
        keyfile: None,
        host: None,
        store: Some(store_url.into()),
        backend: BackendKind::Shaper,
        netns: None,
        links: links.iter().map(|l| LinkSpec::parse(l).unwrap()).collect(),
    }
}

#[test]
fn the_demo_access_link_starts_as_the_ns_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = tbevents_store::open(&store_url).unwrap();
    let id = ExperimentId::parse("tbtest/demo").unwrap();
    store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "tbtest",
            "tester",
            dir.path().join("exp").display().to_string(),
        ))
        .unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.ns");
    let virt = tbevents_ns::parse_file(&demo).unwrap();
    store.load_virtual(&id, &virt).unwrap();

    let pipes = starting_pipes(&config(
        &store_url,
        &[
            "access:client=sa:router=sb",
            "serverlan:server1=s1:l1",
            "access:eth0",
        ],
    ))
    .unwrap();
    let [to_router, to_client] = pipes[0];
    // 100Mb 10ms DropTail; the router's side has limit_ 100.
    assert_eq!(to_router.delay, Duration::from_millis(10));
    assert_eq!(to_router.bandwidth_kbps, 100_000);
    assert_eq!(to_router.plr, 0.0);
    assert_eq!(to_router.queue.limit, 50);
    assert_eq!(to_client.queue.limit, 100);
    assert_eq!(to_client.delay, Duration::from_millis(10));
    // A LAN member: its own half each way (1Gb, 0ms).
    let [out, back] = pipes[1];
    assert_eq!(out.bandwidth_kbps, 1_000_000);
    assert_eq!(back.delay, Duration::ZERO);
    // No node named: starts unshaped.
    assert_eq!(pipes[2][0].bandwidth_kbps, 0);

    let error = starting_pipes(&config(&store_url, &["nosuch:a=x:b=y"])).unwrap_err();
    assert!(error.to_string().contains("no virt_lans rows"), "{error}");
    let error = starting_pipes(&config(&store_url, &["access:client=x:server1=y"])).unwrap_err();
    assert!(error.to_string().contains("server1"), "{error}");
}
