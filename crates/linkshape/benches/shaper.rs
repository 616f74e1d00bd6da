//! Shaper benchmarks (run as root; builds its own namespaces):
//!
//! 1. throughput of a TCP transfer through the shaper at 0 ms configured
//!    delay, next to the same transfer over a plain veth pair;
//! 2. the delay the shaper adds at 0 ms configured delay: UDP round trips
//!    through it versus over the plain pair (each round trip crosses the
//!    shaper twice);
//! 3. event-to-effect latency: a signed LINK DOWN / UP event sent to a real
//!    eventd and a real `delay-agent --backend shaper`, timed until a
//!    10,000 packet/s UDP stream stops (DOWN) or resumes (UP).
//!
//! `cargo bench -p tbevents-linkshape --bench shaper` (optionally
//! `-- --rounds N` for the event test, default 100).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tbevents_event::blocking::EventHandle;
use tbevents_linkshape::agent::link_event_tuple;
use tbevents_linkshape::netns::{self, ADDR_B};
use tbevents_linkshape::probe::{PingReport, tcp_send_for, tcp_sink, udp_echo_server, udp_ping};
use tbevents_linkshape::shaper::Shaper;
use tbevents_testkit::{Proc, Router};

fn b(port: u16) -> SocketAddr {
    format!("{ADDR_B}:{port}").parse().unwrap()
}

fn prefix(tag: &str) -> String {
    format!("tbe{}{tag}", std::process::id())
}

fn goodput(from: &str, bulk: &tbevents_linkshape::probe::Server, target: SocketAddr) -> f64 {
    // Six seconds of sending; the rate is read from the sink's own
    // timestamped count over seconds 1 to 5.
    let start = Instant::now();
    tcp_send_for(from, target, Duration::from_secs(6)).unwrap();
    let from = start + Duration::from_secs(1);
    bulk.rate_between(from, from + Duration::from_secs(4))
        .expect("the sink counted bytes through the window")
        * 8.0
}

fn us(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn pings(ns: &str) -> PingReport {
    // Warm up (ARP, caches), then measure.
    let _ = udp_ping(ns, b(7000), 50, Duration::from_millis(200));
    udp_ping(ns, b(7000), 2000, Duration::from_millis(200)).unwrap()
}

fn quantiles(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let q = |p: f64| {
        if samples.is_empty() {
            f64::NAN
        } else {
            samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
        }
    };
    println!(
        "{label:<28} n={:<4} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        samples.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: shaper benchmarks because they need root for network namespaces");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize);
    if args.iter().any(|a| a == "--list") {
        return;
    }

    // 1 and 2: the plain pair, then through the shaper.
    let (direct_rate, direct_ping) = {
        let pair = netns::pair(&prefix("p")).unwrap();
        let _echo = udp_echo_server(&pair.b, b(7000)).unwrap();
        let bulk = tcp_sink(&pair.b, b(7002)).unwrap();
        let ping = pings(&pair.a);
        (goodput(&pair.a, &bulk, b(7002)), ping)
    };
    let (shaped_rate, shaped_ping, stats) = {
        let net = netns::bridged(&prefix("q")).unwrap();
        let shaper = Shaper::start_in_netns(&net.s, "sa", "sb").unwrap();
        let _echo = udp_echo_server(&net.b, b(7000)).unwrap();
        let bulk = tcp_sink(&net.b, b(7002)).unwrap();
        let ping = pings(&net.a);
        let rate = goodput(&net.a, &bulk, b(7002));
        let stats = shaper.stats(tbevents_linkshape::Direction::AtoB);
        (rate, ping, stats)
    };
    println!("== shaper throughput and added delay (0 ms configured) ==");
    println!(
        "TCP goodput, plain veth pair   {:>8.1} Mbit/s",
        direct_rate / 1e6
    );
    println!(
        "TCP goodput, through shaper    {:>8.1} Mbit/s",
        shaped_rate / 1e6
    );
    println!(
        "UDP RTT plain pair             p50 {:>7.1} us  p99 {:>7.1} us",
        us(direct_ping.median()),
        us(direct_ping.quantile(0.99))
    );
    println!(
        "UDP RTT through shaper         p50 {:>7.1} us  p99 {:>7.1} us  (lost {})",
        us(shaped_ping.median()),
        us(shaped_ping.quantile(0.99)),
        shaped_ping.lost
    );
    println!(
        "added per crossing (p50)       {:>7.1} us",
        (us(shaped_ping.median()) - us(direct_ping.median())) / 2.0
    );
    println!("shaper A->B counters: {stats:?}");

    // 3: event to effect.
    let net = netns::bridged(&prefix("r")).unwrap();
    let router = Router::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("eventkey");
    std::fs::write(&keyfile, "0123456789abcdef0123456789abcdef").unwrap();
    let port = router.port.to_string();
    let mut agent = Proc::start(
        "delay-agent",
        [
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-e",
            "bench/link",
            "-k",
            keyfile.to_str().unwrap(),
            "--backend",
            "shaper",
            "--netns",
            &net.s,
            "--link",
            "link0:na=sa:nb=sb",
        ],
    );
    agent.wait_for_output("delay-agent: ready", Duration::from_secs(60));
    let events = EventHandle::register_with_keyfile(&router.uri(), &keyfile).unwrap();
    let send = |eventtype: &str| {
        let tuple = link_event_tuple("bench/link", "link0", eventtype);
        let mut event = events.new_notification(&tuple);
        events.notify(&mut event).unwrap();
    };

    // Sink in B: arrival count and the time of the latest arrival.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let (s2, c2, l2) = (stop.clone(), count.clone(), last.clone());
    let sink = netns::spawn_in_netns(&net.b, move || {
        let socket = UdpSocket::bind(b(7001))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut buffer = [0u8; 64];
        while !s2.load(Ordering::Relaxed) {
            if socket.recv(&mut buffer).is_ok() {
                *l2.lock() = Instant::now();
                c2.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    })
    .unwrap();
    let s3 = stop.clone();
    let source = netns::spawn_in_netns(&net.a, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(b(7001))?;
        let start = Instant::now();
        let mut i = 0u32;
        while !s3.load(Ordering::Relaxed) {
            let due = start + Duration::from_micros(100) * i;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let _ = socket.send(&[0u8; 32]);
            i = i.wrapping_add(1);
        }
        Ok(())
    })
    .unwrap();
    let wait_count_grows = |from: u64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.load(Ordering::Relaxed) == from {
            assert!(Instant::now() < deadline, "traffic never resumed");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    wait_count_grows(count.load(Ordering::Relaxed));
    let mut down = Vec::new();
    let mut up = Vec::new();
    for _ in 0..rounds {
        // DOWN: the stream stops; the effect time is the last arrival.
        let t0 = Instant::now();
        send("DOWN");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let quiet = last.lock().elapsed();
            if quiet >= Duration::from_millis(30) {
                break;
            }
            assert!(Instant::now() < deadline, "traffic never stopped");
        }
        down.push(last.lock().saturating_duration_since(t0));
        // UP: the effect time is the first arrival after the event.
        let before = count.load(Ordering::Relaxed);
        let t1 = Instant::now();
        send("UP");
        wait_count_grows(before);
        up.push(last.lock().saturating_duration_since(t1));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sink.join();
    let _ = source.join();
    println!(
        "== event to effect (tevc-style signed event -> eventd -> delay-agent -> shaper), stream 10k pkt/s =="
    );
    quantiles("LINK DOWN (last packet)", &mut down);
    quantiles("LINK UP (first packet)", &mut up);
    agent.kill();
}
