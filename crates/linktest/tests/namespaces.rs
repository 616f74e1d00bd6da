//! linktest end to end on real network namespaces: three nodes in a line
//! (`a — link0 — b — link1 — c`, static routes through `b`), each link
//! shaped by a kernel token bucket (tbf) to the bandwidth the NS file asks
//! for, one real `eventd`, one real `linktest` daemon per node (probes
//! inside the node's namespace), and the real `tbevents linktest` running
//! as an unprivileged user.
//!
//! Traffic stays inside the test's own namespaces; everything the test
//! makes is removed when it ends (the [`Lab`] guard), also on failure.
//! Delay and loss go through a user-space delay node in `shaped.rs`; here
//! they stay 0: these tests cover connectivity, latency against a zero
//! delay, routing, zero loss and bandwidth, and a changed bandwidth or a
//! broken link behind linktest's back.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{LAB_LOCK, Lab, Topology, assert_no_errors, sh};
use tbevents_linktest::protocol::Message;
use tbevents_testkit::Proc;

#[test]
fn a_correct_topology_passes_every_level_then_a_changed_bandwidth_fails_level_4() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build(Topology::Line) else {
        return;
    };
    let (code, json, _) = lab.run_linktest(&[]);
    assert_no_errors(code, &json, &lab);
    // Latency (1), routing (1), loss: two rounds of send + check (4),
    // bandwidth: four directed edges, each its own round (8).
    assert_eq!(json["steps_planned"], 14, "{json:#}");
    assert_eq!(json["skipped"], serde_json::json!([]), "{json:#}");
    assert!(lab.error_file("a").is_none());
    assert!(lab.expdir().join("tbdata/linktest/ltmap").exists());

    // Behind linktest's back, b now sends to c at 10 Mb/s instead of 20.
    lab.shape("b", &lab.veth(1, "x"), "10mbit", "change");
    let (code, json, _) = lab.run_linktest(&["--start-level", "4", "--level", "4"]);
    assert_eq!(code, 1, "one node (c, the receiver) has errors: {json:#}");
    let errors = json["errors"].as_object().unwrap();
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["c"], "{json:#}");
    let c = lab.error_file("c").expect("c.error");
    assert!(
        c.starts_with(
            "Bandwidth\n  Link:  b to c (20 Mbps, 0ms, 0% loss)\n  Error: Bandwidth estimate "
        ),
        "{c}"
    );
    assert!(c.contains("differs from the expected 20.000 Mbps"), "{c}");
}

#[test]
fn a_broken_link_is_reported_at_level_1_and_routing_at_level_2() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build(Topology::Line) else {
        return;
    };
    // link1 silently down on c's side.
    sh(&[
        "ip",
        "-n",
        &lab.ns("c"),
        "link",
        "set",
        &lab.veth(1, "y"),
        "down",
    ]);
    let (code, json, _) = lab.run_linktest(&["--level", "2"]);
    let errors = json["errors"].as_object().unwrap();
    // Level 1: c pings b over link1 (the pair b→c sorts first, so its
    // destination c pings) and hears nothing. Level 2: a and c cannot
    // reach each other.
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["a", "c"],
        "{json:#}\n{}",
        lab.daemon_logs()
    );
    assert_eq!(code, 2);
    let c = lab.error_file("c").unwrap();
    assert!(
        c.contains("Latency (Round Trip)\n  Link:  b to c (20 Mbps, 0ms, 0% loss)\n  Error: No packets were received (n=10)"),
        "{c}"
    );
    assert!(
        c.contains("Static Routing\n  Error: c could not ping a"),
        "{c}"
    );
    let a = lab.error_file("a").unwrap();
    assert_eq!(a, "Static Routing\n  Error: a could not ping c\n\n");
}

#[test]
fn kill_stops_a_running_linktest_and_every_node_drops_its_part() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build(Topology::Line) else {
        return;
    };
    // Nothing to stop yet.
    let out = lab.linktest(&["--kill"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("linktest is not running on experiment lt/line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut running = Proc::spawn("tbevents-linktest", lab.linktest(&["--start-level", "4"]));
    running.wait_for_output("Testing Bandwidth", Duration::from_secs(60));
    // A second run is refused while this one holds the experiment.
    let out = lab.linktest(&["--level", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("linktest is already running on experiment lt/line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = lab.linktest(&["--kill"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("has been stopped"));
    assert_cancelled(&mut running, &lab, "cancelled by SIGTERM");
    for daemon in &lab.daemons {
        assert!(
            daemon.stderr().contains("linktest run killed"),
            "{}",
            daemon.stderr()
        );
    }
    // The daemons are idle again: a new run works.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, json, _) = loop {
        let result = lab.run_linktest(&["--level", "1"]);
        if result.0 == 0 || Instant::now() > deadline {
            break result;
        }
    };
    assert_no_errors(code, &json, &lab);
}

/// Sends `LINKTEST KILL` (no run number) to the lab's experiment, as
/// `tbevents linktest --kill` does alongside its signal.
fn send_kill_event(lab: &Lab) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = tbevents_event::server_uri("127.0.0.1", Some(lab.router.port));
        let options = tbevents_event::RegisterOptions::new()
            .key_file(lab.key_file())
            .unwrap();
        let handle = tbevents_event::EventHandle::register_with(&server, options)
            .await
            .unwrap();
        let mut kill =
            Message::Kill { run: None }.to_event("lt/line", |t| handle.new_notification(t));
        handle.notify(&mut kill).await.unwrap();
        handle.unregister().await.unwrap();
    });
}

#[test]
fn a_kill_event_from_elsewhere_ends_the_run_at_once_and_names_the_nodes() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::build(Topology::Line) else {
        return;
    };
    // A long step timeout: only the nodes' confirmations can end this run
    // before the test's deadline.
    let mut running = Proc::spawn(
        "tbevents-linktest",
        lab.linktest(&["--start-level", "4", "--step-timeout", "600"]),
    );
    running.wait_for_output("Testing Bandwidth", Duration::from_secs(60));
    // The controller is not signalled: it learns of the KILL only from
    // the nodes' confirmations, which arrive while it waits for a step.
    send_kill_event(&lab);
    for daemon in &mut lab.daemons {
        daemon.wait_for_output("linktest run killed", Duration::from_secs(20));
    }
    assert_cancelled(&mut running, &lab, "dropped the run: a KILL reached them");
}

/// Waits for a cancelled controller to exit and checks its report: exit
/// status 255, the reason, every node's confirmation, no pid file left.
fn assert_cancelled(running: &mut Proc, lab: &Lab, reason: &str) {
    let status = running.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(255), "{}", running.stdout());
    assert!(
        running.stdout().contains("Linktest has been cancelled: ")
            && running.stdout().contains(reason),
        "{}",
        running.stdout()
    );
    assert!(
        running
            .stderr()
            .contains("Every node stopped its part of the run."),
        "{}\n--- daemons\n{}",
        running.stderr(),
        lab.daemon_logs()
    );
    assert!(!lab.expdir().join("tbdata/linktest/linktest.pid").exists());
}

#[test]
fn linktest_refuses_root_and_names_the_user_to_run_it_as() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build(Topology::Line) else {
        return;
    };
    let port = lab.router.port.to_string();
    let out = lab
        .tbevents(&["linktest", "-e", "lt/line", "-s", "127.0.0.1", "-p", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never as root"), "{stderr}");
    assert!(!Path::new(&lab.expdir().join("tbdata/linktest/linktest.pid")).exists());
}
