//! Every subcommand, briefly, against the real `eventd` (started on a
//! free port through `tbevents-testkit`), checking that the reports are
//! sane: counts match, nothing is lost or reordered, percentiles are
//! ordered, and the router's memory is read from its own process.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::Duration;

use elvin_bench::connections::{self, ConnectionsConfig};
use elvin_bench::pingpong::{self, PingPongConfig};
use elvin_bench::shape::DEFAULT_PING_PAYLOAD;
use elvin_bench::subscriptions::{self, SubscriptionsConfig};
use elvin_bench::throughput::{self, ThroughputConfig};
use elvin_bench::wire::Target;
use tbevents_testkit::Router;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Starts eventd off the async runtime (the fixture blocks while it waits
/// for the port).
async fn start_eventd() -> Router {
    tokio::task::spawn_blocking(|| Router::start(&[]))
        .await
        .unwrap()
}

fn pingpong_config(uri: &str, count: u64) -> PingPongConfig {
    PingPongConfig {
        target: Target::parse(uri).unwrap(),
        count,
        duration: Duration::from_secs(60),
        warmup: 20,
        payload: DEFAULT_PING_PAYLOAD,
        timeout: TIMEOUT,
    }
}

fn throughput_config(
    uri: &str,
    publishers: usize,
    subscribers: usize,
    count: u64,
) -> ThroughputConfig {
    ThroughputConfig {
        target: Target::parse(uri).unwrap(),
        publishers,
        subscribers,
        count,
        duration: Duration::from_secs(60),
        warmup: count / 10,
        window: 500,
        batch: 128,
        padding: 0,
        timeout: TIMEOUT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_through_eventd() {
    let router = start_eventd().await;
    let report = pingpong::run(&pingpong_config(&router.uri(), 300))
        .await
        .unwrap();
    assert_eq!(report.round_trip.count, 300);
    assert!(report.round_trip.is_ordered(), "{:?}", report.round_trip);
    assert!(report.round_trip.p50_us > 0.0);
    assert_eq!(report.drop_warns, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_through_eventd_is_complete_and_ordered() {
    let router = start_eventd().await;
    let report = throughput::run(&throughput_config(&router.uri(), 2, 2, 5_000))
        .await
        .unwrap();
    assert_eq!(report.sent, 10_000);
    assert_eq!(report.expected, 20_000);
    assert_eq!(report.received, 20_000);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.latency.count, 2 * 2 * (5_000 - 500));
    assert!(report.latency.is_ordered());
    assert!(report.delivered_per_s > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_through_eventd() {
    let router = start_eventd().await;
    let config = SubscriptionsConfig {
        layout: elvin_bench::subscriptions::Layout::Testbed,
        router_pid: None,
        throughput: throughput_config(&router.uri(), 1, 1, 2_000),
        loads: vec![0, 1_000],
        sub_conns: 10,
    };
    let report = subscriptions::run(&config).await.unwrap();
    assert_eq!(report.loads.len(), 2);
    assert_eq!(report.loads[1].subscriptions, 1_000);
    assert_eq!(report.loads[1].sessions, 10);
    for row in &report.loads {
        assert_eq!(row.throughput.received, 2_000);
        assert!(row.throughput.is_clean(), "{}", row.throughput);
    }
    assert!(report.ratio_largest_to_none.unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_through_eventd_reads_its_memory() {
    let router = start_eventd().await;
    let config = ConnectionsConfig {
        connections: 500,
        concurrency: 64,
        pingpong: pingpong_config(&router.uri(), 200),
        router_pid: None,
    };
    let report = connections::run(&config).await.unwrap();
    assert_eq!(report.connections, 500);
    assert_eq!(report.memory.pid, Some(router.proc.pid()));
    let before = report.memory.rss_before_kib.unwrap();
    let with = report.memory.rss_with_connections_kib.unwrap();
    assert!(before > 0 && with > 0);
    assert_eq!(report.pingpong.round_trip.count, 200);
    assert!(report.pingpong.round_trip.is_ordered());
}
