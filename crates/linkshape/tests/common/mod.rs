//! Shared set-up for the namespace tests: topologies with a Drop guard,
//! waiting helpers, and the root check.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tbevents_linkshape::probe::Server;

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("SKIPPED: {test} because it needs root for network namespaces");
    false
}

/// Namespace names unique to this test process and `tag`.
pub fn ns_name(tag: &str, role: &str) -> String {
    format!("tbe{}{tag}{role}", std::process::id())
}

pub use tbevents_linkshape::netns::{ADDR_B, Bridged, Pair};

pub fn addr_b(port: u16) -> SocketAddr {
    format!("{ADDR_B}:{port}").parse().unwrap()
}

/// ns A <-veth-> ns B directly.
pub fn pair(tag: &str) -> Pair {
    tbevents_linkshape::netns::pair(&ns_name(tag, "")).unwrap()
}

/// ns A <-veth-> ns S (shaper, interfaces sa and sb) <-veth-> ns B.
pub fn bridged(tag: &str) -> Bridged {
    tbevents_linkshape::netns::bridged(&ns_name(tag, "")).unwrap()
}

/// Polls `check` until it returns `Some`, or panics naming `what` after
/// `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a counter stops growing for `quiet` (the last packets of a
/// burst have arrived); returns its value.
pub fn settled(count: impl Fn() -> u64, quiet: Duration, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = count();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = count();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "counter never settled (at {now})"
        );
    }
}

/// Measures the TCP goodput from `from_ns` to `sink` over a window after
/// a warm-up, in bit/s, from the sink's own timestamped count
/// (`Server::rate_between`): the sending call lasts past the window, so
/// nothing here waits on a clock.
pub fn tcp_rate(
    from_ns: &str,
    target: SocketAddr,
    sink: &Server,
    warmup: Duration,
    window: Duration,
) -> f64 {
    let start = Instant::now();
    tbevents_linkshape::probe::tcp_send_for(
        from_ns,
        target,
        warmup + window + Duration::from_millis(500),
    )
    .unwrap();
    let from = start + warmup;
    sink.rate_between(from, from + window)
        .expect("the sink counted bytes through the window")
        * 8.0
}
