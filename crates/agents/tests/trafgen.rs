//! trafgen end to end: a real `eventd`, two real `trafgen` processes (the
//! source's node and the sink's node), real UDP and TCP traffic on
//! loopback, and the sink's REPORT events read with the event library.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::{Fixture, arg, fire, next_for, watch};
use tbevents_event::EventSubscription;
use tbevents_store::VirtTrafgen;
use tbevents_testkit::{Proc, free_port, signals};

const WAIT: Duration = Duration::from_secs(20);

fn row(vnode: &str, name: &str, role: &str, proto: &str, port: u16, target: u16) -> VirtTrafgen {
    VirtTrafgen {
        vnode: vnode.into(),
        vname: name.into(),
        role: role.into(),
        proto: proto.into(),
        port: port.into(),
        ip: "127.0.0.1".into(),
        target_vnode: if vnode == "n0" { "n1" } else { "n0" }.into(),
        target_vname: "peer".into(),
        target_port: target.into(),
        target_ip: "127.0.0.1".into(),
        generator: "TG".into(),
    }
}

/// A source `src` on n0 and a sink `dst` on n1, over `proto`, with
/// both trafgens running.
fn setup(proto: &str) -> (Fixture, Proc, Proc) {
    let (source_port, sink_port) = (free_port(), free_port());
    let fx = Fixture::new(
        &[],
        vec![
            row("n0", "src", "source", proto, source_port, sink_port),
            row("n1", "dst", "sink", proto, sink_port, source_port),
        ],
    );
    let mut sink_args = fx.agent_args_for(&fx.logdir("n1"), "n1");
    sink_args.extend(["--host", "127.0.9.2", "--report-interval", "0.5"].map(String::from));
    let mut sink = Proc::start("trafgen", &sink_args);
    sink.wait_for_output("waiting for events", WAIT);
    sink.wait_for_output("dst: listening", WAIT);
    let mut source = Proc::start("trafgen", fx.agent_args(&fx.logdir("n0")));
    source.wait_for_output("waiting for events", WAIT);
    (fx, source, sink)
}

/// Skips `skip` reports of the sink `dst`, then averages the next `take`
/// (weighted by their windows): (kbit/s, packets lost, packets received).
async fn measure(reports: &mut EventSubscription, skip: usize, take: usize) -> (f64, u64, u64) {
    for _ in 0..skip {
        next_for(reports, "dst", WAIT).await;
    }
    let (mut kbits, mut seconds, mut lost, mut received) = (0.0, 0.0, 0, 0);
    for _ in 0..take {
        let report = next_for(reports, "dst", WAIT).await;
        let number = |key: &str| -> f64 {
            arg(&report, key)
                .unwrap_or_else(|| panic!("REPORT without {key}: {report:?}"))
                .parse()
                .unwrap()
        };
        let window = number("WINDOW");
        kbits += number("RATE") * window;
        seconds += window;
        lost += number("LOST") as u64;
        received += number("RECEIVED") as u64;
    }
    (kbits / seconds, lost, received)
}

fn assert_within(measured: f64, configured: f64, tolerance: f64, what: &str) {
    let error = (measured - configured).abs() / configured;
    assert!(
        error <= tolerance,
        "{what}: measured {measured:.1} kb/s, configured {configured} kb/s ({:.1} % off, allowed {:.0} %)",
        error * 100.0,
        tolerance * 100.0
    );
    eprintln!(
        "{what}: measured {measured:.1} kb/s for {configured} kb/s configured ({:+.2} %)",
        (measured - configured) / configured * 100.0
    );
}

/// START, MODIFY and STOP on one protocol, measured at the sink.
async fn rates_follow_the_events(proto: &str) {
    let (fx, mut source, mut sink) = setup(proto);
    let sender = fx.keyed().await;
    // Without a scheduler in this test, reports are seen as the requests
    // the sink sends it.
    let mut reports = watch(&sender, "REPORT", 1).await;

    // The NS front end's START: 1000-byte packets at 4 Mb/s (500/s).
    fire(
        &sender,
        "TRAFGEN",
        "src",
        "START",
        "PACKETSIZE=1000 RATE=4000 INTERVAL=-1 IPTOS=-1",
    )
    .await;
    let (rate, lost, received) = measure(&mut reports, 2, 6).await;
    assert_within(rate, 4000.0, 0.05, &format!("{proto} at 4000 kb/s"));
    assert_eq!(lost, 0, "no loss on loopback");
    assert!(received > 1000, "{received}");

    // A bad MODIFY changes nothing; a good one changes the rate (to the
    // demo's `$cbr0 set rate_ 40Mbps`: 5,000 packets/s).
    fire(&sender, "TRAFGEN", "src", "MODIFY", "RATE=0").await;
    source.wait_for_output("src: MODIFY ignored", WAIT);
    fire(&sender, "TRAFGEN", "src", "MODIFY", "RATE=40000").await;
    source.wait_for_output("now sending", WAIT);
    let (rate, lost, _) = measure(&mut reports, 2, 6).await;
    assert_within(
        rate,
        40000.0,
        0.05,
        &format!("{proto} after MODIFY RATE=40000"),
    );
    assert_eq!(lost, 0);

    // STOP: once everything the source sent has arrived, nothing more
    // does.
    fire(&sender, "TRAFGEN", "src", "STOP", "").await;
    let needle = "src: stopped after sending ";
    let log = source.wait_for_output(needle, WAIT);
    let at = log.find(needle).unwrap() + needle.len();
    let sent: u64 = log[at..].split(' ').next().unwrap().parse().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = next_for(&mut reports, "dst", WAIT).await;
        let total = |r: &tbevents_event::EventNotification, key: &str| -> u64 {
            arg(r, key).unwrap().parse().unwrap()
        };
        if total(&report, "TOTAL_RECEIVED") + total(&report, "TOTAL_LOST") == sent {
            assert_eq!(total(&report, "TOTAL_LOST"), 0, "{report:?}");
            let next = next_for(&mut reports, "dst", WAIT).await;
            assert_eq!(arg(&next, "RECEIVED").as_deref(), Some("0"), "{next:?}");
            assert_eq!(
                total(&next, "TOTAL_RECEIVED"),
                sent,
                "nothing arrives after STOP"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sink never accounted for the {sent} packets sent: {report:?}"
        );
    }
    assert!(source.try_wait().is_none() && sink.try_wait().is_none());
    let log = sink.stderr();
    assert!(
        log.contains("dst: received RATE="),
        "the sink logs its reports:\n{log}"
    );

    let lines = std::fs::read_to_string(fx.logdir("n1").join("dst.report")).unwrap();
    assert!(
        lines.lines().count() >= 14 && lines.contains(" RATE="),
        "the sink keeps its reports in <logdir>/dst.report:\n{lines}"
    );

    // Both stop cleanly when asked.
    for agent in [&mut source, &mut sink] {
        agent.signal(signals::SIGTERM);
        let status = agent.wait(WAIT);
        assert!(status.success(), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rates_within_five_percent_start_modify_stop() {
    rates_follow_the_events("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_rates_within_five_percent_start_modify_stop() {
    rates_follow_the_events("tcp").await;
}
