//! A round-trip probe between two namespaces: our own "ping" over UDP.
//!
//! ICMP echo needs raw sockets and `ping` is not on every machine, so the
//! testbed measures a link the way linktest does: a responder socket in
//! one node's namespace echoes each datagram straight back, and the prober
//! in the other node's namespace sends one every interval and times the
//! echo. A probe unanswered after [`LOST_AFTER`] counts as lost. Both
//! sockets are made on threads that joined the namespaces (see
//! [`crate::netns::run_in`]), so the packets really cross the emulated
//! link, shaper and all, and never leave the namespaces.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::netns;
use anyhow::Context as _;

/// A probe unanswered this long is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(1);
/// The payload's marker, so stray datagrams are not mistaken for echoes.
const MAGIC: &[u8; 8] = b"tbeprobe";

/// The outcome of one probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeResult {
    /// Its sequence number, from 0.
    pub seq: u64,
    /// The round-trip time, or `None` if lost.
    pub rtt: Option<Duration>,
}

/// A running probe; stops when dropped.
#[derive(Debug)]
pub struct RttProbe {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for RttProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Starts probing `target` (an address in namespace `to`) from namespace
/// `from` every `interval`; each probe's outcome is handed to `results`,
/// which returns false to stop probing.
pub fn start<F>(
    from: &str,
    to: &str,
    target: Ipv4Addr,
    interval: Duration,
    mut results: F,
) -> anyhow::Result<RttProbe>
where
    F: FnMut(ProbeResult) -> bool + Send + 'static,
{
    let responder = netns::run_in(to, move || {
        UdpSocket::bind((target, 0))
            .with_context(|| format!("cannot bind a probe responder on {target}"))
    })?;
    let target = responder.local_addr()?;
    let prober = netns::run_in(from, || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("cannot bind a probe socket")
    })?;
    let tick = Duration::from_millis(20);
    responder.set_read_timeout(Some(tick))?;
    prober.set_read_timeout(Some(tick))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let echo = std::thread::Builder::new()
        .name("probe-echo".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            while !echo_stop.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = responder.recv_from(&mut buf)
                    && n >= MAGIC.len()
                    && &buf[..MAGIC.len()] == MAGIC
                {
                    let _ = responder.send_to(&buf[..n], peer);
                }
            }
        })?;
    let probe_stop = Arc::clone(&stop);
    let probe = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || run_prober(&prober, target, interval, &probe_stop, &mut results))?;
    Ok(RttProbe {
        stop,
        threads: vec![echo, probe],
    })
}

fn run_prober(
    socket: &UdpSocket,
    target: SocketAddr,
    interval: Duration,
    stop: &AtomicBool,
    results: &mut dyn FnMut(ProbeResult) -> bool,
) {
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut seq = 0u64;
    let mut next = Instant::now();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next {
            let mut payload = [0u8; 16];
            payload[..8].copy_from_slice(MAGIC);
            payload[8..].copy_from_slice(&seq.to_be_bytes());
            // A send that fails (link down) is simply a lost probe.
            let _ = socket.send_to(&payload, target);
            pending.insert(seq, now);
            seq += 1;
            next += interval;
            if next < now {
                next = now + interval;
            }
        }
        if let Ok(n) = socket.recv(&mut buf)
            && n == 16
            && &buf[..8] == MAGIC
        {
            let mut number = [0u8; 8];
            number.copy_from_slice(&buf[8..16]);
            let answered = u64::from_be_bytes(number);
            if let Some(sent) = pending.remove(&answered) {
                let outcome = ProbeResult {
                    seq: answered,
                    rtt: Some(sent.elapsed()),
                };
                if !results(outcome) {
                    return;
                }
            }
        }
        let lost: Vec<u64> = pending
            .iter()
            .filter(|(_, sent)| sent.elapsed() > LOST_AFTER)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in lost {
            pending.remove(&seq);
            if !results(ProbeResult { seq, rtt: None }) {
                return;
            }
        }
    }
}
