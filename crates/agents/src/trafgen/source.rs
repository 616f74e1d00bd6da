//! A constant-bit-rate source: sends numbered packets at a steady pace
//! while started.
//!
//! One task per source. It waits while stopped; when started it opens a
//! UDP socket (bound to the row's address and port when it can be) or a
//! TCP connection to the target, and sends one packet per interval. The
//! pacing is by schedule, not by sleeping an interval after each send:
//! packet *n* is due at start + *n* × interval, and every wake-up sends
//! whatever is due, so timer granularity does not change the average
//! rate. When a source falls more than a second behind (a TCP connection
//! that cannot keep up, a stalled machine) the schedule restarts from now
//! instead of bursting the backlog.
//!
//! TCP writes never block the task: packets wait in a buffer written as
//! the socket accepts them, so `STOP` and `MODIFY` are handled at once
//! even when the network is not taking data. A lost connection is
//! re-established (every half second) while the source is started.
//!
//! Sequence numbers continue across `STOP`/`START`, so a sink sees one
//! unbroken flow and counts no loss for the pause.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Proto;
use super::packet::{HEADER_LEN, Header, MAX_PACKET, now_ns};
use super::params::CbrParams;

/// The furthest a source may fall behind its schedule before the
/// schedule restarts from now.
const MAX_BEHIND: Duration = Duration::from_secs(1);

/// How long a stopping TCP source may take to deliver what it queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Wait between connection attempts to a TCP sink.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// What a source should be doing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceState {
    /// Sending or not.
    pub running: bool,
    /// How.
    pub params: CbrParams,
}

/// Where a source sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    /// OBJNAME.
    pub name: String,
    /// UDP or TCP.
    pub proto: Proto,
    /// Local address and port to send from (port 0: any).
    pub local: SocketAddr,
    /// The sink.
    pub target: SocketAddr,
}

/// A packet schedule.
#[derive(Debug)]
struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Pacer {
            next: Instant::now(),
            interval,
        }
    }

    /// A new interval takes effect from the next packet.
    fn set_interval(&mut self, interval: Duration) {
        if interval != self.interval {
            let now = Instant::now();
            self.interval = interval;
            if self.next > now + interval {
                self.next = now + interval;
            }
        }
    }

    /// How many packets are due at `now`; advances the schedule past them.
    fn take_due(&mut self, now: Instant) -> u64 {
        if now < self.next {
            return 0;
        }
        if now.duration_since(self.next) > MAX_BEHIND {
            tracing::debug!("source fell more than 1 s behind its schedule; restarting it");
            self.next = now;
        }
        let behind = now.duration_since(self.next).as_nanos();
        let step = self.interval.as_nanos().max(1);
        let due = u64::try_from(behind / step)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let advance = self
            .interval
            .checked_mul(u32::try_from(due).unwrap_or(u32::MAX))
            .unwrap_or(MAX_BEHIND);
        self.next += advance;
        due
    }
}

/// Fills `packet` with packet `seq` of `flow`: `size` bytes (at least a
/// header, at most the largest UDP payload).
fn build(packet: &mut Vec<u8>, size: u32, flow: u32, seq: u64) {
    let length = usize::try_from(size)
        .unwrap_or(MAX_PACKET)
        .clamp(HEADER_LEN, MAX_PACKET);
    packet.clear();
    packet.resize(length, 0);
    Header {
        length: u32::try_from(length).unwrap_or(HEADER_LEN as u32),
        flow,
        seq,
        sent_ns: now_ns(),
    }
    .write(packet);
}

/// A flow number unlikely to repeat across source processes.
fn new_flow() -> u32 {
    let nanos = now_ns();
    (nanos as u32) ^ ((nanos >> 32) as u32) ^ std::process::id().rotate_left(16)
}

/// How a sending session ended.
enum SessionEnd {
    /// Told to stop (or the agent is going away).
    Stopped,
    /// The connection failed; try again while started.
    Failed,
}

/// Runs a source until its state channel closes.
pub async fn run(spec: SourceSpec, mut state: watch::Receiver<SourceState>) {
    let flow = new_flow();
    let mut seq = 0u64;
    loop {
        loop {
            if state.borrow_and_update().running {
                break;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
        let before = seq;
        let started = Instant::now();
        let end = match spec.proto {
            Proto::Udp => udp_session(&spec, &mut state, flow, &mut seq).await,
            Proto::Tcp => tcp_session(&spec, &mut state, flow, &mut seq).await,
        };
        let sent = seq - before;
        match end {
            SessionEnd::Stopped => tracing::info!(
                "{}: stopped after sending {sent} packets in {:.1} s",
                spec.name,
                started.elapsed().as_secs_f64()
            ),
            SessionEnd::Failed => {
                tracing::debug!("{}: session ended after {sent} packets", spec.name);
                tokio::time::sleep(RECONNECT_INTERVAL).await;
            }
        }
        if state.has_changed().is_err() {
            return;
        }
    }
}

/// Reacts to a state change: `Some(end)` to end the session, `None` to go
/// on (with `params` updated).
fn on_change(
    spec: &SourceSpec,
    changed: Result<(), watch::error::RecvError>,
    state: &mut watch::Receiver<SourceState>,
    params: &mut CbrParams,
    pacer: &mut Pacer,
) -> Option<SessionEnd> {
    if changed.is_err() {
        return Some(SessionEnd::Stopped);
    }
    let now = *state.borrow_and_update();
    if !now.running {
        return Some(SessionEnd::Stopped);
    }
    if now.params != *params {
        *params = now.params;
        pacer.set_interval(params.interval());
        log_pace(spec, params, "now sending");
    }
    None
}

fn log_pace(spec: &SourceSpec, params: &CbrParams, what: &str) {
    tracing::info!(
        "{}: {what} {} packets of {} bytes every {:.3} ms ({:.1} kb/s, TOS {}) to {}",
        spec.name,
        spec.proto,
        params.packet_size,
        params.interval().as_secs_f64() * 1000.0,
        params.rate_kbps(),
        params.tos,
        spec.target
    );
}

fn set_tos(socket: socket2::SockRef<'_>, spec: &SourceSpec, tos: u8) {
    if spec.target.is_ipv4()
        && let Err(error) = socket.set_tos_v4(u32::from(tos))
    {
        tracing::warn!("{}: cannot set IP TOS {tos}: {error}", spec.name);
    }
}

async fn udp_socket(spec: &SourceSpec) -> std::io::Result<UdpSocket> {
    let any_port = SocketAddr::new(spec.local.ip(), 0);
    let unspecified = SocketAddr::new(
        match spec.target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        },
        0,
    );
    let mut last = None;
    for local in [spec.local, any_port, unspecified] {
        match UdpSocket::bind(local).await {
            Ok(socket) => {
                if local != spec.local {
                    tracing::warn!(
                        "{}: cannot send from {} ({}); sending from {local}",
                        spec.name,
                        spec.local,
                        last.as_ref()
                            .map_or(String::new(), |e: &std::io::Error| e.to_string())
                    );
                }
                socket.connect(spec.target).await?;
                return Ok(socket);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no local address to send from")))
}

async fn udp_session(
    spec: &SourceSpec,
    state: &mut watch::Receiver<SourceState>,
    flow: u32,
    seq: &mut u64,
) -> SessionEnd {
    let socket = match udp_socket(spec).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(
                "{}: cannot open a UDP socket to {}: {error}",
                spec.name,
                spec.target
            );
            return SessionEnd::Failed;
        }
    };
    let mut params = state.borrow().params;
    set_tos(socket2::SockRef::from(&socket), spec, params.tos);
    log_pace(spec, &params, "sending");
    let mut pacer = Pacer::new(params.interval());
    let mut packet = Vec::with_capacity(MAX_PACKET);
    let mut errors = 0u64;
    loop {
        tokio::select! {
            changed = state.changed() => {
                let tos = params.tos;
                if let Some(end) = on_change(spec, changed, state, &mut params, &mut pacer) {
                    if errors > 0 {
                        tracing::warn!("{}: {errors} packets could not be sent", spec.name);
                    }
                    return end;
                }
                if params.tos != tos {
                    set_tos(socket2::SockRef::from(&socket), spec, params.tos);
                }
            }
            () = tokio::time::sleep_until(pacer.next) => {
                for _ in 0..pacer.take_due(Instant::now()) {
                    build(&mut packet, params.packet_size, flow, *seq);
                    *seq += 1;
                    if let Err(error) = socket.send(&packet).await {
                        // No sink yet (ICMP refused), full buffers: a
                        // CBR source keeps its schedule.
                        if errors == 0 {
                            tracing::warn!("{}: sending to {} failed: {error} (counting further failures)", spec.name, spec.target);
                        }
                        errors += 1;
                    }
                }
            }
        }
    }
}

async fn tcp_connect(spec: &SourceSpec) -> std::io::Result<TcpStream> {
    let socket = match spec.target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Send from the row's address when it is ours; any port (a fixed
    // port would collide with its own TIME_WAIT after a reconnect).
    let _ = socket.bind(SocketAddr::new(spec.local.ip(), 0));
    tokio::time::timeout(Duration::from_secs(3), socket.connect(spec.target))
        .await
        .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connection timed out"))?
}

async fn tcp_session(
    spec: &SourceSpec,
    state: &mut watch::Receiver<SourceState>,
    flow: u32,
    seq: &mut u64,
) -> SessionEnd {
    let mut params = state.borrow().params;
    let mut pacer = Pacer::new(params.interval());
    let mut stream = loop {
        tokio::select! {
            changed = state.changed() => {
                if let Some(end) = on_change(spec, changed, state, &mut params, &mut pacer) {
                    return end;
                }
            }
            connected = tcp_connect(spec) => match connected {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::warn!("{}: cannot connect to the sink at {}: {error}; retrying", spec.name, spec.target);
                    return SessionEnd::Failed;
                }
            },
        }
    };
    let _ = stream.set_nodelay(true);
    set_tos(socket2::SockRef::from(&stream), spec, params.tos);
    log_pace(spec, &params, "connected; sending");
    let mut pacer = Pacer::new(params.interval());
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0usize;
    let mut packet = Vec::with_capacity(MAX_PACKET);
    loop {
        let has_pending = offset < pending.len();
        tokio::select! {
            changed = state.changed() => {
                let tos = params.tos;
                if let Some(end) = on_change(spec, changed, state, &mut params, &mut pacer) {
                    // Packets already numbered are delivered before the
                    // connection closes, so a sink sees every number.
                    let rest = pending.get(offset..).unwrap_or(&[]);
                    if !rest.is_empty() {
                        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(rest)).await;
                        if !matches!(flushed, Ok(Ok(()))) {
                            tracing::warn!("{}: {} queued bytes could not be delivered before closing", spec.name, rest.len());
                        }
                    }
                    return end;
                }
                if params.tos != tos {
                    set_tos(socket2::SockRef::from(&stream), spec, params.tos);
                }
            }
            ready = stream.ready(Interest::WRITABLE), if has_pending => {
                if let Err(error) = ready {
                    tracing::warn!("{}: connection to {} failed: {error}", spec.name, spec.target);
                    return SessionEnd::Failed;
                }
                match stream.try_write(pending.get(offset..).unwrap_or(&[])) {
                    Ok(written) => {
                        offset += written;
                        if offset >= pending.len() {
                            pending.clear();
                            offset = 0;
                        }
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(error) => {
                        tracing::warn!("{}: connection to {} failed: {error}; reconnecting", spec.name, spec.target);
                        return SessionEnd::Failed;
                    }
                }
            }
            () = tokio::time::sleep_until(pacer.next), if !has_pending => {
                for _ in 0..pacer.take_due(Instant::now()) {
                    build(&mut packet, params.packet_size, flow, *seq);
                    *seq += 1;
                    pending.extend_from_slice(&packet);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_sets_the_average_rate() {
        let mut pacer = Pacer::new(Duration::from_micros(400));
        let start = pacer.next;
        let mut sent = 0;
        // Wake every 1.3 ms for a second: 2500 packets are due.
        let mut now = start;
        while now < start + Duration::from_secs(1) {
            sent += pacer.take_due(now);
            now += Duration::from_micros(1300);
        }
        assert!((2499..=2501).contains(&sent), "{sent}");
        // Far behind: the schedule restarts instead of bursting.
        let late = now + Duration::from_secs(5);
        assert_eq!(pacer.take_due(late), 1);
        assert!(pacer.next > late);
    }

    #[test]
    fn packets_are_at_least_a_header_and_at_most_a_datagram() {
        let mut packet = Vec::new();
        build(&mut packet, 1, 7, 3);
        assert_eq!(packet.len(), HEADER_LEN);
        let header = Header::read(&packet).unwrap();
        assert_eq!((header.flow, header.seq, header.length), (7, 3, 28));
        build(&mut packet, 70_000, 7, 4);
        assert_eq!(packet.len(), MAX_PACKET);
        build(&mut packet, 1000, 7, 5);
        assert_eq!(packet.len(), 1000);
    }
}
