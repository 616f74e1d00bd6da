//! The shaper end to end: namespaces A, S (shaper) and B, a real eventd,
//! a real `delay-agent --backend shaper` and signed events from the event
//! library; the probes measure what the link does.

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
use tbevents_event::blocking::EventHandle;
use tbevents_linkshape::agent::link_event_tuple;
use tbevents_linkshape::probe::{tcp_sink, udp_echo_server, udp_ping, udp_send, udp_sink};
use tbevents_testkit::{Proc, Router};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const EXPT: &str = "tbtest/shape";

struct Events {
    handle: EventHandle,
}

impl Events {
    fn send(&self, objname: &str, eventtype: &str, args: &str) {
        let tuple = link_event_tuple(EXPT, objname, eventtype);
        let mut event = self.handle.new_notification(&tuple);
        event.set_arguments(args);
        self.handle.notify(&mut event).unwrap();
    }
}

/// Sends an event and waits until the agent logs that it handled it.
fn apply(agent: &mut Proc, events: &Events, objname: &str, eventtype: &str, args: &str) {
    events.send(objname, eventtype, args);
    let needle = format!("object=\"{objname}\" event=\"{eventtype}\" args=\"{args}\"");
    agent.wait_for_output(&needle, Duration::from_secs(10));
}

#[test]
fn delay_bandwidth_loss_and_up_down_through_the_agent() {
    if !root_or_skip("delay_bandwidth_loss_and_up_down_through_the_agent") {
        return;
    }
    let net = bridged("x");
    let router = Router::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("eventkey");
    std::fs::write(&keyfile, KEY).unwrap();
    let port = router.port.to_string();
    let mut agent = Proc::start(
        "delay-agent",
        [
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-e",
            EXPT,
            "-k",
            keyfile.to_str().unwrap(),
            "--backend",
            "shaper",
            "--netns",
            &net.s,
            "--link",
            "link0:nodea=sa:nodeb=sb",
        ],
    );
    agent.wait_for_output("delay-agent: ready", Duration::from_secs(20));
    let events = Events {
        handle: EventHandle::register_with_keyfile(&router.uri(), &keyfile).unwrap(),
    };

    let echo = udp_echo_server(&net.b, addr_b(7000)).unwrap();
    let sink = udp_sink(&net.b, addr_b(7001)).unwrap();
    let bulk = tcp_sink(&net.b, addr_b(7002)).unwrap();
    // The unshaped bridge forwards (ARP included).
    wait_until(
        "a first answer through the bridge",
        Duration::from_secs(10),
        || {
            let report = udp_ping(&net.a, addr_b(7000), 1, Duration::from_millis(200)).unwrap();
            report.median()
        },
    );

    // DELAY=50ms on the link: 50 ms each way.
    apply(&mut agent, &events, "link0", "MODIFY", "DELAY=50ms");
    let report = udp_ping(&net.a, addr_b(7000), 20, Duration::from_secs(1)).unwrap();
    let rtt = report.median().expect("pings answered").as_secs_f64() * 1000.0;
    eprintln!(
        "RTT with DELAY=50ms: median {rtt:.2} ms, lost {}",
        report.lost
    );
    assert!(
        (90.0..=110.0).contains(&rtt),
        "RTT {rtt} ms, expected 100 ms +-10%"
    );
    assert_eq!(report.lost, 0);

    // One direction only through the member object: +20 ms one way.
    apply(&mut agent, &events, "link0-nodeb", "MODIFY", "DELAY=70");
    let rtt = udp_ping(&net.a, addr_b(7000), 10, Duration::from_secs(1))
        .unwrap()
        .median()
        .unwrap();
    let rtt = rtt.as_secs_f64() * 1000.0;
    assert!(
        (108.0..=132.0).contains(&rtt),
        "RTT {rtt} ms, expected 120 ms"
    );

    // BANDWIDTH=1000 kbit/s: a TCP transfer runs at 1 Mbit/s +-15%.
    apply(
        &mut agent,
        &events,
        "link0",
        "MODIFY",
        "DELAY=0 BANDWIDTH=1000",
    );
    let rate = tcp_rate(
        &net.a,
        addr_b(7002),
        &bulk,
        Duration::from_secs(2),
        Duration::from_secs(4),
    );
    eprintln!("TCP goodput at BANDWIDTH=1000: {:.3} Mbit/s", rate / 1e6);
    assert!(
        (850_000.0..=1_150_000.0).contains(&rate),
        "rate {rate} bit/s"
    );

    // PLR=0.2: 20% +-5% of 2,000 packets lost (one way).
    // First a control burst without loss: every packet must arrive.
    apply(&mut agent, &events, "link0", "MODIFY", "BANDWIDTH=0");
    udp_send(&net.a, addr_b(7001), 2000, 200, Duration::from_micros(500)).unwrap();
    let control = settled(
        || sink.count(),
        Duration::from_millis(500),
        Duration::from_secs(10),
    );
    eprintln!("control burst: {control} of 2000 arrived");
    assert!(
        control >= 1990,
        "the unshaped link lost {} of 2000",
        2000 - control
    );
    apply(&mut agent, &events, "link0", "MODIFY", "PLR=0.2");
    udp_send(&net.a, addr_b(7001), 2000, 200, Duration::from_micros(500)).unwrap();
    let got = settled(
        || sink.count(),
        Duration::from_millis(500),
        Duration::from_secs(10),
    ) - control;
    let loss = 1.0 - got as f64 / 2000.0;
    eprintln!("loss at PLR=0.2: {:.3} ({got} of 2000 arrived)", loss);
    assert!((0.15..=0.25).contains(&loss), "loss {loss}");

    // DOWN stops traffic; UP restores it.
    apply(&mut agent, &events, "link0", "MODIFY", "PLR=0");
    apply(&mut agent, &events, "link0", "DOWN", "");
    let report = udp_ping(&net.a, addr_b(7000), 5, Duration::from_millis(200)).unwrap();
    assert_eq!(report.lost, 5, "traffic passed a down link");
    apply(&mut agent, &events, "link0", "UP", "");
    wait_until("traffic after UP", Duration::from_secs(10), || {
        udp_ping(&net.a, addr_b(7000), 1, Duration::from_millis(300))
            .unwrap()
            .median()
    });

    // A forged event (other key) is dropped; the next signed one applies.
    let forger = EventHandle::register_with(
        &router.uri(),
        tbevents_event::RegisterOptions::new().key(
            tbevents_event::EventKey::from_bytes(b"ffffffffffffffffffffffffffffffff".to_vec())
                .unwrap(),
        ),
    )
    .unwrap();
    let forged_tuple = link_event_tuple(EXPT, "link0", "MODIFY");
    let mut forged = forger.new_notification(&forged_tuple);
    forged.set_arguments("DELAY=300ms");
    forger.notify(&mut forged).unwrap();
    apply(&mut agent, &events, "link0", "MODIFY", "DELAY=1ms");
    assert!(
        !agent.stderr().contains("args=\"DELAY=300ms\""),
        "forged event applied"
    );
    let rtt = udp_ping(&net.a, addr_b(7000), 5, Duration::from_secs(1))
        .unwrap()
        .median()
        .unwrap();
    assert!(
        rtt < Duration::from_millis(50),
        "forged delay took effect: {rtt:?}"
    );
    assert!(echo.count() > 0);
}
