//! Traffic probes for tests, benchmarks and linktest: a UDP echo server
//! and pinger (round-trip time and loss), a UDP counting sink and sender
//! (one-way loss), and a TCP bulk sink and source (throughput).
//!
//! `ping` and `iperf3` are not installed everywhere, and these run inside
//! a chosen network namespace (sockets are opened on a thread that joined
//! it, see [`crate::netns`]). Servers run until dropped.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::{in_netns, spawn_in_netns};

/// How often server loops check whether they should stop.
const POLL: Duration = Duration::from_millis(50);

/// Least time between two samples of a server's [`Counter`] timeline.
const SAMPLE_EVERY: Duration = Duration::from_millis(1);
/// Most samples a timeline keeps (the oldest go first): at least 100 s
/// of continuous traffic.
const MAX_SAMPLES: usize = 100_000;

/// What a probe server has received: a running total, and a timeline of
/// it stamped by the receiving thread as it counts. A rate read from the
/// timeline does not depend on when a reader happened to be scheduled,
/// which a rate from two reads of the total does on a loaded machine.
#[derive(Default)]
struct Counter {
    total: AtomicU64,
    timeline: Mutex<VecDeque<(Instant, u64)>>,
}

impl Counter {
    fn add(&self, n: u64) {
        let total = self.total.fetch_add(n, Ordering::Relaxed) + n;
        let now = Instant::now();
        let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        match timeline.back_mut() {
            // Within a sample's millisecond: it counts this too.
            Some((at, last)) if now.duration_since(*at) < SAMPLE_EVERY => *last = total,
            _ => {
                if timeline.len() == MAX_SAMPLES {
                    timeline.pop_front();
                }
                timeline.push_back((now, total));
            }
        }
    }
}

/// The count at `at` by a timeline (the total of its last sample at or
/// before `at`); `None` when the timeline does not reach back that far.
fn count_at(timeline: &VecDeque<(Instant, u64)>, at: Instant) -> Option<u64> {
    let later = timeline.partition_point(|(t, _)| *t <= at);
    later.checked_sub(1).map(|i| timeline[i].1)
}

/// A background server thread; stopped and joined when dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    count: Arc<Counter>,
}

impl Server {
    /// Datagrams (echo, sink) or bytes (TCP sink) received so far.
    pub fn count(&self) -> u64 {
        self.count.total.load(Ordering::Relaxed)
    }

    /// The rate (datagrams or bytes per second) the server received at
    /// between `from` and `to`, from its own timestamped counts (to within
    /// a millisecond at each end); `None` when its timeline does not reach
    /// back to `from` or the window is empty.
    pub fn rate_between(&self, from: Instant, to: Instant) -> Option<f64> {
        let timeline = self
            .count
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let seconds = to.checked_duration_since(from)?.as_secs_f64();
        let received = count_at(&timeline, to)?.checked_sub(count_at(&timeline, from)?)?;
        (seconds > 0.0).then(|| received as f64 / seconds)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a server thread in `netns`: `open` makes its socket there (its
/// error is returned to the caller), then `serve` runs until the server
/// is dropped.
fn start_server<S, O, F>(netns: &str, open: O, serve: F) -> io::Result<Server>
where
    S: 'static,
    O: FnOnce() -> io::Result<S> + Send + 'static,
    F: FnOnce(S, &AtomicBool, &Counter) -> io::Result<()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(Counter::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (s, c) = (stop.clone(), count.clone());
    let thread = spawn_in_netns(netns, move || {
        let socket = match open() {
            Ok(socket) => socket,
            Err(error) => {
                let _ = ready_tx.send(Err(error));
                return Ok(());
            }
        };
        let _ = ready_tx.send(Ok(()));
        serve(socket, &s, &c)
    })?;
    let mut server = Server {
        stop,
        thread: Some(thread),
        count,
    };
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(server),
        Ok(Err(error)) => Err(error),
        Err(_) => {
            let result = server.thread.take().map(|t| t.join());
            Err(io::Error::other(format!(
                "probe server did not start: {result:?}"
            )))
        }
    }
}

/// A UDP socket bound to `addr` with the server poll timeout.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Echoes every UDP datagram received on `addr` back to its sender.
pub fn udp_echo_server(netns: &str, addr: SocketAddr) -> io::Result<Server> {
    start_server(
        netns,
        move || bind_udp(addr),
        |socket, stop, count| {
            let mut buffer = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buffer) {
                    count.add(1);
                    let _ = socket.send_to(&buffer[..n], from);
                }
            }
            Ok(())
        },
    )
}

/// Counts UDP datagrams received on `addr`.
pub fn udp_sink(netns: &str, addr: SocketAddr) -> io::Result<Server> {
    start_server(
        netns,
        move || bind_udp(addr),
        |socket, stop, count| {
            let mut buffer = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if socket.recv_from(&mut buffer).is_ok() {
                    count.add(1);
                }
            }
            Ok(())
        },
    )
}

/// Counts the bytes of every TCP connection to `addr`.
pub fn tcp_sink(netns: &str, addr: SocketAddr) -> io::Result<Server> {
    let open = move || {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    start_server(netns, open, |listener, stop, count| {
        let mut buffer = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(POLL))?;
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        count.add(n as u64);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        Ok(())
    })
}

/// What a series of UDP pings saw.
#[derive(Clone, Debug, Default)]
pub struct PingReport {
    /// Round-trip times of the answered pings.
    pub rtts: Vec<Duration>,
    /// Pings not answered within the timeout.
    pub lost: usize,
}

impl PingReport {
    /// The median round-trip time, if any ping was answered.
    pub fn median(&self) -> Option<Duration> {
        let mut sorted = self.rtts.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    }

    /// The `q` quantile (0..=1) of the round-trip times.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.rtts.clone();
        sorted.sort();
        if sorted.is_empty() {
            return None;
        }
        let index = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        sorted.get(index).copied()
    }
}

/// Sends `count` UDP pings to an echo server at `target`, one at a time,
/// each waiting up to `timeout` for its answer (late answers to earlier
/// pings are ignored).
pub fn udp_ping(
    netns: &str,
    target: SocketAddr,
    count: usize,
    timeout: Duration,
) -> io::Result<PingReport> {
    in_netns(netns, move || -> io::Result<PingReport> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        let mut report = PingReport::default();
        if socket.connect(target).is_err() {
            // No route at all (the interface is down): every ping is lost.
            std::thread::sleep(timeout * count as u32);
            report.lost = count;
            return Ok(report);
        }
        let mut buffer = [0u8; 64];
        for seq in 0..count as u64 {
            let sent = Instant::now();
            let deadline = sent + timeout;
            if socket.send(&seq.to_be_bytes()).is_err() {
                // No route (the interface is down): a lost ping.
                std::thread::sleep(timeout);
                report.lost += 1;
                continue;
            }
            let answered = loop {
                let now = Instant::now();
                if now >= deadline {
                    break false;
                }
                socket.set_read_timeout(Some(deadline - now))?;
                match socket.recv(&mut buffer) {
                    Ok(8) if buffer[..8] == seq.to_be_bytes() => break true,
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break false;
                    }
                    // ICMP unreachable while a link is down, say.
                    Err(_) => {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                        break false;
                    }
                }
            };
            if answered {
                report.rtts.push(sent.elapsed());
            } else {
                report.lost += 1;
            }
        }
        Ok(report)
    })?
}

/// Sends `count` datagrams of `size` bytes to `target`, `interval` apart.
pub fn udp_send(
    netns: &str,
    target: SocketAddr,
    count: usize,
    size: usize,
    interval: Duration,
) -> io::Result<()> {
    in_netns(netns, move || -> io::Result<()> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(target)?;
        let payload = vec![0x5au8; size.clamp(8, 1472)];
        let start = Instant::now();
        for i in 0..count {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // A refused send (no ARP answer yet) counts as a lost packet.
            let _ = socket.send(&payload);
        }
        Ok(())
    })?
}

/// Writes as fast as TCP allows to `target` for `duration`; returns the
/// bytes written.
pub fn tcp_send_for(netns: &str, target: SocketAddr, duration: Duration) -> io::Result<u64> {
    in_netns(netns, move || -> io::Result<u64> {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_millis(200)))?;
        let chunk = vec![0xa5u8; 16 * 1024];
        let end = Instant::now() + duration;
        let mut written = 0u64;
        while Instant::now() < end {
            match stream.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_at_a_time_is_the_last_sample_before_it() {
        let zero = Instant::now();
        let at = |ms: u64| zero + Duration::from_millis(ms);
        let timeline: VecDeque<_> = [(at(10), 100), (at(20), 300), (at(40), 700)].into();
        assert_eq!(count_at(&timeline, at(5)), None, "before the first sample");
        assert_eq!(count_at(&timeline, at(10)), Some(100));
        assert_eq!(count_at(&timeline, at(39)), Some(300));
        assert_eq!(count_at(&timeline, at(1_000)), Some(700));
    }

    #[test]
    fn a_counter_keeps_its_total_and_a_bounded_timeline_of_it() {
        let counter = Counter::default();
        let started = Instant::now();
        for _ in 0..10_000 {
            counter.add(3);
        }
        assert_eq!(counter.total.load(Ordering::Relaxed), 30_000);
        let timeline = counter.timeline.lock().unwrap();
        // The last sample holds the total; samples are a millisecond apart
        // at least and counts only grow.
        assert_eq!(timeline.back().map(|(_, total)| *total), Some(30_000));
        assert!(timeline.len() as u128 <= started.elapsed().as_millis() + 1);
        assert!(
            timeline
                .iter()
                .zip(timeline.iter().skip(1))
                .all(|(a, b)| b.1 > a.1 && b.0 >= a.0 + SAMPLE_EVERY)
        );
        assert!(timeline.len() <= MAX_SAMPLES);
    }
}
