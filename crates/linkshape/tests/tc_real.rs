//! The tc backend on a real veth pair between two namespaces: bandwidth
//! really limited, DOWN/UP really stop and restore traffic. netem and red
//! are used where the kernel has them and skipped with a printed reason
//! where it does not.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use tbevents_linkshape::LinkBackend;
use tbevents_linkshape::netns::run_ip;
use tbevents_linkshape::params::{Direction, PipeParams, QueueParams, RedParams};
use tbevents_linkshape::probe::{tcp_sink, udp_echo_server, udp_ping};
use tbevents_linkshape::tc::{SystemRunner, TcBackend};

fn qdiscs(ns: &str) -> String {
    let output = std::process::Command::new("tc")
        .args(["-n", ns, "qdisc", "show", "dev", "a0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn tc_backend_limits_bandwidth_and_takes_the_link_down_and_up() {
    if !root_or_skip("tc_backend_limits_bandwidth_and_takes_the_link_down_and_up") {
        return;
    }
    let net = pair("t");
    let mut tc = TcBackend::with_runner("a0", Some(&net.a), Box::new(SystemRunner));
    let echo = udp_echo_server(&net.b, addr_b(7000)).unwrap();
    let bulk = tcp_sink(&net.b, addr_b(7002)).unwrap();
    wait_until("a first answer", Duration::from_secs(10), || {
        udp_ping(&net.a, addr_b(7000), 1, Duration::from_millis(200))
            .unwrap()
            .median()
    });

    // BANDWIDTH=1000: htb really limits a TCP transfer to 1 Mbit/s.
    let limited = PipeParams {
        bandwidth_kbps: 1000,
        ..PipeParams::default()
    };
    tc.apply(Direction::AtoB, &limited).unwrap();
    let shown = qdiscs(&net.a);
    assert!(
        shown.contains("htb 1:") && shown.contains("pfifo 10:"),
        "{shown}"
    );
    let rate = tcp_rate(
        &net.a,
        addr_b(7002),
        &bulk,
        Duration::from_secs(2),
        Duration::from_secs(3),
    );
    eprintln!("tc: TCP goodput at 1000 kbit/s: {:.3} Mbit/s", rate / 1e6);
    assert!(
        (850_000.0..=1_150_000.0).contains(&rate),
        "rate {rate} bit/s"
    );

    // DOWN stops traffic, UP restores it.
    tc.set_up(false).unwrap();
    let report = udp_ping(&net.a, addr_b(7000), 3, Duration::from_millis(200)).unwrap();
    assert_eq!(report.lost, 3, "traffic passed a down interface");
    tc.set_up(true).unwrap();
    wait_until("traffic after UP", Duration::from_secs(10), || {
        udp_ping(&net.a, addr_b(7000), 1, Duration::from_millis(300))
            .unwrap()
            .median()
    });
    assert!(echo.count() > 0);

    // DELAY via netem, where the kernel has it.
    let delayed = PipeParams {
        delay: Duration::from_millis(50),
        ..limited
    };
    tc.apply(Direction::AtoB, &delayed).unwrap();
    if tc.netem_available() {
        let rtt = udp_ping(&net.a, addr_b(7000), 10, Duration::from_secs(1))
            .unwrap()
            .median()
            .unwrap();
        assert!(
            (Duration::from_millis(45)..=Duration::from_millis(55)).contains(&rtt),
            "one-way 50 ms egress delay gave RTT {rtt:?}"
        );
    } else {
        eprintln!(
            "SKIPPED: tc netem delay/loss check because this kernel has no netem qdisc (tc: Specified qdisc kind is unknown); the backend fell back to pfifo as the log says"
        );
        assert!(qdiscs(&net.a).contains("pfifo 10:"));
    }

    // RED where the kernel has it.
    let red = PipeParams {
        queue: QueueParams {
            red: Some(RedParams::default()),
            ..QueueParams::default()
        },
        ..limited
    };
    tc.apply(Direction::AtoB, &red).unwrap();
    if tc.red_available() {
        assert!(qdiscs(&net.a).contains("red 10:"), "{}", qdiscs(&net.a));
    } else {
        eprintln!(
            "SKIPPED: tc RED queue check because this kernel has no red qdisc (tc: Specified qdisc kind is unknown); the backend fell back to a DropTail pfifo"
        );
        assert!(qdiscs(&net.a).contains("pfifo 10:"));
    }

    // A byte-counted DropTail queue becomes bfifo.
    let bytes = PipeParams {
        queue: QueueParams {
            limit: 30_000,
            in_bytes: true,
            red: None,
        },
        ..limited
    };
    tc.apply(Direction::AtoB, &bytes).unwrap();
    assert!(qdiscs(&net.a).contains("bfifo 10:"), "{}", qdiscs(&net.a));
    let _ = run_ip(&["-n", &net.a, "link", "show"]);
}
