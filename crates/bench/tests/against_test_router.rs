//! Every subcommand, briefly, against the in-test router (`common`), plus
//! the failure modes an operator meets: nothing listening, a silent
//! router, refused subscriptions, and a router that loses events.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::{Faults, TestRouter, silent_listener};
use elvin_bench::BenchError;
use elvin_bench::StopReason;
use elvin_bench::connections::{self, ConnectionsConfig};
use elvin_bench::floor::{self, FloorConfig};
use elvin_bench::pingpong::{self, PingPongConfig};
use elvin_bench::subscriptions::{self, SubscriptionsConfig};
use elvin_bench::throughput::{self, ThroughputConfig};
use elvin_bench::wire::Target;

const TIMEOUT: Duration = Duration::from_secs(10);

fn pingpong_config(uri: &str, count: u64) -> PingPongConfig {
    PingPongConfig {
        target: Target::parse(uri).unwrap(),
        count,
        duration: Duration::from_secs(30),
        warmup: 10,
        payload: elvin_bench::shape::DEFAULT_PING_PAYLOAD,
        timeout: TIMEOUT,
    }
}

fn throughput_config(uri: &str, publishers: usize, subscribers: usize) -> ThroughputConfig {
    ThroughputConfig {
        target: Target::parse(uri).unwrap(),
        publishers,
        subscribers,
        count: 3_000,
        duration: Duration::from_secs(30),
        warmup: 300,
        window: 200,
        batch: 64,
        padding: 0,
        timeout: TIMEOUT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_measures_every_round_trip() {
    let router = TestRouter::start(Faults::default()).await;
    let report = pingpong::run(&pingpong_config(&router.uri(), 200))
        .await
        .unwrap();
    assert_eq!(report.round_trip.count, 200);
    assert_eq!(report.warmup, 10);
    assert_eq!(report.stopped_by, StopReason::Count);
    assert!(report.round_trip.is_ordered(), "{:?}", report.round_trip);
    assert!(report.round_trip.p50_us > 0.0);
    assert!(report.round_trip.mean_us <= report.round_trip.max_us);
    assert!(
        (380..=420).contains(&report.ping_bytes),
        "ping is {} bytes",
        report.ping_bytes
    );
    assert_eq!(report.drop_warns, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_stops_at_the_duration() {
    let router = TestRouter::start(Faults::default()).await;
    let mut config = pingpong_config(&router.uri(), u64::MAX / 2);
    config.duration = Duration::from_millis(300);
    let report = pingpong::run(&config).await.unwrap();
    assert_eq!(report.stopped_by, StopReason::Duration);
    assert!(
        report.elapsed_s >= 0.3 && report.elapsed_s < 5.0,
        "{}",
        report.elapsed_s
    );
    assert!(report.round_trip.count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_delivers_everything_in_order() {
    let router = TestRouter::start(Faults::default()).await;
    let config = throughput_config(&router.uri(), 2, 3);
    let report = throughput::run(&config).await.unwrap();
    assert_eq!(report.sent, 6_000);
    assert_eq!(report.sent_per_publisher, vec![3_000, 3_000]);
    assert_eq!(report.expected, 18_000);
    assert_eq!(report.received, 18_000);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.per_subscriber.len(), 3);
    for sub in &report.per_subscriber {
        assert_eq!(sub.received, 6_000);
        // Warm-up events (seq < 300) of both publishers are not measured.
        assert_eq!(sub.measured, 2 * (3_000 - 300));
        assert_eq!(sub.latency.count, sub.measured);
        assert!(sub.delivered_per_s > 0.0);
        assert!(sub.latency.is_ordered());
    }
    assert_eq!(report.latency.count, 3 * 2 * (3_000 - 300));
    assert!(report.latency.is_ordered(), "{:?}", report.latency);
    assert!(report.delivered_per_s > 0.0);
    assert!((380..=420).contains(&report.event_bytes));
    assert_eq!(report.stopped_by, StopReason::Count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_reports_lost_events() {
    let router = TestRouter::start(Faults {
        drop_every: Some(97),
        ..Faults::default()
    })
    .await;
    let config = throughput_config(&router.uri(), 1, 2);
    let report = throughput::run(&config).await.unwrap();
    assert_eq!(report.sent, 3_000);
    assert!(!report.is_clean());
    // 6,000 deliveries, every 97th dropped.
    assert_eq!(report.missing, 6_000 / 97);
    assert_eq!(report.received, 6_000 - 6_000 / 97);
    assert!(report.gaps > 0);
    assert_eq!(report.out_of_order, 0);
    assert!(report.to_string().contains("VIOLATIONS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_table_has_a_row_per_load() {
    let router = TestRouter::start(Faults::default()).await;
    let mut throughput = throughput_config(&router.uri(), 1, 1);
    throughput.count = 1_500;
    throughput.warmup = 100;
    let config = SubscriptionsConfig {
        layout: elvin_bench::subscriptions::Layout::Testbed,
        router_pid: None,
        throughput,
        loads: vec![0, 300],
        sub_conns: 4,
    };
    let report = subscriptions::run(&config).await.unwrap();
    assert_eq!(report.loads.len(), 2);
    assert_eq!(report.loads[0].subscriptions, 0);
    assert_eq!(report.loads[0].sessions, 0);
    assert_eq!(report.loads[1].subscriptions, 300);
    assert_eq!(report.loads[1].sessions, 4);
    assert!(report.loads[1].install_s > 0.0);
    assert!(report.loads[1].installed_per_s > 0.0);
    for row in &report.loads {
        assert_eq!(row.throughput.received, 1_500);
        assert!(row.throughput.is_clean());
    }
    let ratio = report.ratio_largest_to_none.unwrap();
    assert!(ratio > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_holds_idle_sessions_and_reads_router_memory() {
    let router = TestRouter::start(Faults::default()).await;
    let config = ConnectionsConfig {
        connections: 300,
        concurrency: 32,
        pingpong: pingpong_config(&router.uri(), 100),
        router_pid: None,
    };
    let report = connections::run(&config).await.unwrap();
    assert_eq!(report.connections, 300);
    // The in-test router runs inside this test process.
    assert_eq!(report.memory.pid, Some(std::process::id()));
    assert!(
        report.memory.source.contains("listening port"),
        "{}",
        report.memory.source
    );
    assert!(report.memory.rss_before_kib.unwrap() > 0);
    assert!(report.memory.rss_with_connections_kib.unwrap() > 0);
    assert_eq!(report.pingpong.round_trip.count, 100);
    assert!(report.pingpong.round_trip.is_ordered());
    assert!(report.fd_limit >= 364);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_echoes_through_a_relay_process() {
    let config = FloorConfig {
        relay_program: std::path::PathBuf::from(env!("CARGO_BIN_EXE_eventd-bench")),
        count: 300,
        duration: Duration::from_secs(30),
        warmup: 20,
        message_bytes: 400,
        timeout: TIMEOUT,
    };
    let report = floor::run(&config).await.unwrap();
    assert_eq!(report.round_trip.count, 300);
    assert_eq!(report.message_bytes, 400);
    assert!(report.round_trip.is_ordered());
    assert!(report.round_trip.p50_us > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connect_error() {
    let port = tbevents_testkit::free_port();
    let uri = format!("elvin://127.0.0.1:{port}");
    let error = pingpong::run(&pingpong_config(&uri, 1)).await.unwrap_err();
    assert!(matches!(error, BenchError::Connect { .. }), "{error}");
    assert!(error.to_string().contains("is it running"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_router_times_out_instead_of_hanging() {
    let (addr, _task) = silent_listener().await;
    let mut config = pingpong_config(&format!("elvin://{addr}"), 1);
    config.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let error = pingpong::run(&config).await.unwrap_err();
    assert!(matches!(error, BenchError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_reported_with_the_nack() {
    let router = TestRouter::start(Faults {
        refuse_subscriptions: true,
        ..Faults::default()
    })
    .await;
    let error = throughput::run(&throughput_config(&router.uri(), 1, 1))
        .await
        .unwrap_err();
    match &error {
        BenchError::SubscribeRefused {
            code,
            message,
            expression,
        } => {
            assert_eq!(*code, 2006);
            assert_eq!(message, "Too many subscriptions (0)");
            assert!(expression.contains("EXPT =="));
        }
        other => panic!("expected SubscribeRefused, got {other}"),
    }
    assert!(error.to_string().contains("--sub-conns"));
}
