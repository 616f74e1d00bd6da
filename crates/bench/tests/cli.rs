//! The `eventd-bench` command line: JSON and text output, exit statuses
//! and error messages, run as a separate process against the in-test
//! router.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::process::Command;

use common::{Faults, TestRouter};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eventd-bench"))
}

/// Runs the tool on a blocking thread so the in-test router (on this
/// test's runtime) keeps serving.
async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingpong_json_report() {
    let router = TestRouter::start(Faults::default()).await;
    let mut command = bench();
    command.args([
        "--json",
        "--router",
        &router.uri(),
        "pingpong",
        "--count",
        "50",
        "--warmup",
        "5",
    ]);
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["test"], "pingpong");
    let report = &json["report"];
    assert_eq!(report["round_trip"]["count"], 50);
    assert_eq!(report["warmup"], 5);
    assert_eq!(report["stopped_by"], "count");
    let p50 = report["round_trip"]["p50_us"].as_f64().unwrap();
    let p99 = report["round_trip"]["p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_text_report() {
    let router = TestRouter::start(Faults::default()).await;
    let mut command = bench();
    command.args([
        "throughput",
        "--router",
        &router.uri(),
        "-P",
        "1",
        "-S",
        "2",
        "--count",
        "2000",
        "--warmup",
        "100",
    ]);
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("1 publisher(s) -> 2 subscriber(s)"), "{text}");
    assert!(
        text.contains("expected 4000 deliveries, received 4000"),
        "{text}"
    );
    assert!(text.contains("order and completeness: OK"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_exit_with_status_3() {
    let router = TestRouter::start(Faults {
        drop_every: Some(50),
        ..Faults::default()
    })
    .await;
    let mut command = bench();
    command.args([
        "--json",
        "--router",
        &router.uri(),
        "throughput",
        "--count",
        "1000",
        "--warmup",
        "10",
    ]);
    let output = run(command).await;
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["report"]["missing"], 20);
}

#[test]
fn a_bad_router_uri_is_explained() {
    let output = bench()
        .args(["--router", "http://127.0.0.1:1", "pingpong"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad --router URI"), "{stderr}");
    assert!(stderr.contains("elvin://host:2917"), "{stderr}");
}

#[test]
fn an_absent_router_is_explained() {
    let port = tbevents_testkit::free_port();
    let output = bench()
        .args([
            "--router",
            &format!("elvin://127.0.0.1:{port}"),
            "pingpong",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to the router"), "{stderr}");
}

#[test]
fn usage_errors_exit_with_status_2() {
    let output = bench()
        .args(["throughput", "--window", "many"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
