//! Shared set-up for the namespace tests: topologies with a Drop guard,
//! waiting helpers, and the root check.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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

/// Measures the TCP goodput from `from_ns` to the sink `count` over a
/// window after a warm-up, in bit/s (a rate measured over a window, not a
/// sleep-then-assert).
pub fn tcp_rate(
    from_ns: &str,
    target: SocketAddr,
    count: impl Fn() -> u64,
    warmup: Duration,
    window: Duration,
) -> f64 {
    let ns = from_ns.to_string();
    let sender = std::thread::spawn(move || {
        tbevents_linkshape::probe::tcp_send_for(
            &ns,
            target,
            warmup + window + Duration::from_millis(500),
        )
    });
    // Samples of the sink's counter every 50 ms through the window, and the
    // least-squares slope through them: on a loaded machine one late
    // sample (the sink not yet scheduled to count what arrived) would
    // skew a two-point difference, but barely moves the fit.
    std::thread::sleep(warmup);
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < window {
        samples.push((start.elapsed().as_secs_f64(), count() as f64));
        std::thread::sleep(Duration::from_millis(50));
    }
    sender.join().unwrap().unwrap();
    let n = samples.len() as f64;
    let (mean_t, mean_c) = samples
        .iter()
        .fold((0.0, 0.0), |(t, c), (st, sc)| (t + st / n, c + sc / n));
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (t, c)| {
        (
            num + (t - mean_t) * (c - mean_c),
            den + (t - mean_t).powi(2),
        )
    });
    num / den * 8.0
}
