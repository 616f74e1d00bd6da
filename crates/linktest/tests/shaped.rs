//! linktest against a link shaped by a user-space delay node (the emulated
//! testbed's way of giving a link delay and loss on kernels without
//! netem): a correct link passes levels 1 and 3; a delay or loss changed on
//! the delay node behind linktest's back is reported at its level, with
//! the link named, in the right node's error file.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::{LAB_LOCK, Lab, Topology, assert_no_errors};

#[test]
fn delay_and_loss_through_a_delay_node_and_changes_behind_linktests_back() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build(Topology::Shaped) else {
        return;
    };
    let (code, json, _) = lab.run_linktest(&["--level", "3"]);
    assert_no_errors(code, &json, &lab);

    // Twice the configured delay: level 1 names the link.
    lab.set_link(Duration::from_millis(40), 0.1);
    let (code, json, _) = lab.run_linktest(&["--level", "1"]);
    assert_eq!(code, 1, "{json:#}\n{}", lab.daemon_logs());
    let b = lab.error_file("b").expect("b.error");
    assert!(
        b.starts_with("Latency (Round Trip)\n  Link:  a to b (10 Mbps, 20ms, 10% loss)\n  Error: Probable latency misconfiguration (expected=40.17ms, measured mean="),
        "{b}"
    );

    // Back to the right delay, but four times the loss: level 3 reports it
    // at both receivers.
    lab.set_link(Duration::from_millis(20), 0.4);
    let (code, json, _) = lab.run_linktest(&["--start-level", "3", "--level", "3"]);
    assert_eq!(code, 2, "{json:#}\n{}", lab.daemon_logs());
    let a = lab.error_file("a").expect("a.error");
    assert!(a.starts_with("Loss\n  Link:  b to a (10 Mbps, 20ms, 10% loss)\n  Error: Probable loss misconfiguration"), "{a}");
    let b = lab.error_file("b").expect("b.error");
    assert!(b.starts_with("Loss\n  Link:  a to b"), "{b}");
}
