//! The process around the protocol: SIGTERM shuts down cleanly with
//! Disconn(1) to every client, SIGHUP reloads the log level from the
//! configuration file, and the metrics listener reports traffic.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Client, emulab_event, eventd_process, eventd_with};
use elvin_proto::codes::disconn;
use elvin_proto::{Keys, Packet};
use tbevents_testkit::{free_port, signals};

#[test]
fn sigterm_sends_disconn_shutdown_to_every_client_and_exits_zero() {
    let mut router = eventd_process(&[]);
    let mut connected = Client::connect(router.addr());
    connected.subscribe("a == 1");
    let mut other = Client::connect(router.addr());
    // A channel without a session is told too.
    let mut fresh = Client::open(router.addr());
    fresh.sync();
    router.proc.signal(signals::SIGTERM);
    for client in [&mut connected, &mut other, &mut fresh] {
        client.expect_disconn(disconn::SHUTDOWN);
    }
    // Closing our ends ends the router's linger on each connection.
    drop((connected, other, fresh));
    let status = router.proc.wait(Duration::from_secs(10));
    assert!(status.success(), "eventd exited with {status}");
}

#[test]
fn the_library_shutdown_future_sends_disconn_shutdown_to_every_client() {
    let mut router = common::eventd();
    let mut connected = Client::connect(router.addr());
    connected.subscribe("a == 1");
    let mut fresh = Client::open(router.addr());
    fresh.sync();
    router.begin_stop();
    for client in [&mut connected, &mut fresh] {
        client.expect_disconn(disconn::SHUTDOWN);
    }
    // With our ends closed the router's run() returns; shutting down
    // waits for that (and would re-raise a panic from it).
    drop((connected, fresh));
    router.shutdown();
}

#[test]
fn sigint_shuts_down_too() {
    let mut router = eventd_process(&[]);
    let mut client = Client::connect(router.addr());
    router.proc.signal(signals::SIGINT);
    client.expect_disconn(disconn::SHUTDOWN);
    drop(client);
    assert!(router.proc.wait(Duration::from_secs(10)).success());
}

#[test]
fn sighup_reloads_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eventd.toml");
    std::fs::write(&config, "log_level = \"info\"\n").unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let mut router = eventd_process(&["--config", &config_arg]);
    let mut client = Client::connect(router.addr());

    // Nacks are logged at debug: not visible at info.
    assert!(matches!(
        client.sub_add("1 == 1", true, Keys::new()),
        Packet::Nack(_)
    ));
    client.sync();
    assert!(
        !router.proc.stderr().contains("nack"),
        "debug output at level info"
    );

    std::fs::write(&config, "log_level = \"debug\"\n").unwrap();
    router.proc.signal(signals::SIGHUP);
    router
        .proc
        .wait_for_output("configuration reloaded", Duration::from_secs(10));
    assert!(matches!(
        client.sub_add("2 == 2", true, Keys::new()),
        Packet::Nack(_)
    ));
    router.proc.wait_for_output("nack", Duration::from_secs(10));

    // A broken file is reported and changes nothing.
    std::fs::write(&config, "log_level = 5\n").unwrap();
    router.proc.signal(signals::SIGHUP);
    router
        .proc
        .wait_for_output("configuration not reloaded", Duration::from_secs(10));
    client.subscribe("still == 1");
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn metrics_report_traffic() {
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let router = eventd_with(|f| f.metrics_listen = Some(listen.clone()));
    let mut sub = Client::connect(router.addr());
    let mut producer = Client::connect(router.addr());
    sub.subscribe(r#"EXPT == "p/m""#);
    for seq in 0..5 {
        producer.emit(emulab_event("p/m", seq));
    }
    for _ in 0..5 {
        sub.recv_deliver();
    }
    assert!(matches!(
        sub.sub_add("1 == 1", true, Keys::new()),
        Packet::Nack(_)
    ));
    let mut bad = Client::open(router.addr());
    bad.send_raw(&[0, 0, 0, 5]);
    bad.expect_disconn(disconn::PROTOCOL_VIOLATION);
    drop(bad);
    // Closed connections (the test kit's probe, `bad`) leave the gauge as
    // soon as their tasks finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = http_get(metrics_port, "/metrics");
        if metric(&response, "eventd_connections") == 2 || std::time::Instant::now() > deadline {
            break response;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("text/plain; version=0.0.4"));
    assert_eq!(metric(&response, "eventd_notifications_in_total"), 5);
    assert_eq!(metric(&response, "eventd_deliveries_out_total"), 5);
    assert_eq!(metric(&response, "eventd_subscriptions"), 1);
    assert_eq!(metric(&response, "eventd_nacks_total"), 1);
    assert_eq!(metric(&response, "eventd_protocol_errors_total"), 1);
    assert_eq!(metric(&response, "eventd_connections"), 2);
    assert!(metric(&response, "eventd_connections_total") >= 3);
    assert_eq!(metric(&response, "eventd_notifications_dropped_total"), 0);
    assert!(metric(&response, "eventd_evaluations_total") >= 5);
    assert!(http_get(metrics_port, "/other").starts_with("HTTP/1.1 404"));
}

#[test]
fn help_describes_the_flags() {
    let output = std::process::Command::new(tbevents_testkit::bin_path("eventd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--config",
        "--log-level",
        "--metrics-listen",
        "--send-queue-drop-policy",
        "--idle-timeout",
        "elvin://0.0.0.0:2917",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn configuration_errors_exit_2_with_the_reason() {
    let output = std::process::Command::new(tbevents_testkit::bin_path("eventd"))
        .args(["--send-queue-drop-policy", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("send_queue_drop_policy"), "{stderr}");
}
