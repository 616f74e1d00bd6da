//! A sink: receives a source's packets and measures what arrives.
//!
//! A sink listens from the moment the agent starts (a source may start at
//! any time) on its row's address and port, UDP or TCP. If the address is
//! not (yet) on this machine it retries every second, so an agent started
//! before its node's interfaces are up still works once they are.
//!
//! Every packet is counted into [`SinkStats`]: packets, bytes, one-way
//! delay (from the send time in the packet), and **loss from sequence
//! numbers**: per flow, a packet whose number is beyond the next expected
//! one means the ones in between were lost; a late packet (reordered)
//! that arrives afterwards is taken back off the loss count. The agent
//! takes a [`Window`] of the counts every report interval.
//!
//! A TCP sink serves at most [`MAX_CONNECTIONS`] connections at once and
//! closes a connection whose bytes are not trafgen packets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::Proto;
use super::packet::{HEADER_LEN, Header, MAX_PACKET, now_ns};

/// Receive buffer asked for on UDP sinks: room for about a second of
/// 40 Mb/s, so a sink that is briefly not scheduled (a busy machine)
/// does not lose packets the network delivered.
pub const UDP_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// Wait between attempts to bind the sink's address.
const BIND_RETRY: Duration = Duration::from_secs(1);

/// Most TCP connections a sink serves at once; more are closed at once,
/// so a flood of connections cannot exhaust memory.
pub const MAX_CONNECTIONS: usize = 64;

/// Most flows remembered per sink (a flow is one source process); the
/// oldest is forgotten past this, so a flood of forged flow numbers
/// cannot grow memory.
const MAX_FLOWS: usize = 64;

/// Where a sink listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSpec {
    /// OBJNAME.
    pub name: String,
    /// UDP or TCP.
    pub proto: Proto,
    /// Address and port to listen on.
    pub local: SocketAddr,
}

/// Counts over one report interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Window {
    /// Packets received.
    pub packets: u64,
    /// Bytes received (whole packets).
    pub bytes: u64,
    /// Packets found missing (net of late arrivals).
    pub lost: u64,
    /// Sum of one-way delays, ns (packets with a plausible send time).
    pub delay_ns_sum: u128,
    /// Packets in `delay_ns_sum`.
    pub delay_samples: u64,
}

impl Window {
    /// Mean one-way delay in milliseconds, if measured.
    pub fn mean_delay_ms(&self) -> Option<f64> {
        (self.delay_samples > 0).then(|| self.delay_ns_sum as f64 / self.delay_samples as f64 / 1e6)
    }

    /// Lost / (received + lost), 0 when nothing was expected.
    pub fn loss_fraction(&self) -> f64 {
        let expected = self.packets + self.lost;
        if expected == 0 {
            0.0
        } else {
            self.lost as f64 / expected as f64
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Flow {
    /// The next sequence number expected.
    next: u64,
    /// When this flow was last seen (for forgetting old flows).
    seen: u64,
}

/// A sink's counters, shared between its receive tasks and the agent.
#[derive(Debug, Default)]
pub struct SinkStats {
    window: Window,
    /// Packets received since start (or RESET).
    pub total_packets: u64,
    /// Packets lost since start (or RESET).
    pub total_lost: u64,
    /// Packets that were not trafgen packets.
    pub foreign: u64,
    flows: HashMap<u32, Flow>,
    clock: u64,
}

impl SinkStats {
    /// Counts one received packet.
    pub fn record(&mut self, header: &Header, received_ns: u64) {
        self.clock += 1;
        let clock = self.clock;
        if !self.flows.contains_key(&header.flow) && self.flows.len() >= MAX_FLOWS {
            let oldest = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.seen)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.flows.remove(&oldest);
            }
        }
        let flow = self.flows.entry(header.flow).or_insert(Flow {
            next: header.seq,
            seen: clock,
        });
        flow.seen = clock;
        if header.seq >= flow.next {
            let gap = header.seq - flow.next;
            self.window.lost += gap;
            self.total_lost += gap;
            flow.next = header.seq + 1;
        } else {
            // A late packet was counted lost when a later one arrived.
            self.window.lost = self.window.lost.saturating_sub(1);
            self.total_lost = self.total_lost.saturating_sub(1);
        }
        self.window.packets += 1;
        self.total_packets += 1;
        self.window.bytes += u64::from(header.length);
        // A send time in the future or over a minute old means the ends do
        // not share a clock; such packets count, but not for delay.
        if let Some(delay) = received_ns.checked_sub(header.sent_ns)
            && delay < 60_000_000_000
        {
            self.window.delay_ns_sum += u128::from(delay);
            self.window.delay_samples += 1;
        }
    }

    /// The counts since the last call, and a fresh window.
    pub fn take_window(&mut self) -> Window {
        std::mem::take(&mut self.window)
    }

    /// Forgets everything (RESET).
    pub fn reset(&mut self) {
        *self = SinkStats::default();
    }
}

/// Shared sink counters.
pub type SharedStats = Arc<Mutex<SinkStats>>;

fn record(stats: &SharedStats, header: &Header) {
    let now = now_ns();
    if let Ok(mut stats) = stats.lock() {
        stats.record(header, now);
    }
}

fn foreign(stats: &SharedStats) {
    if let Ok(mut stats) = stats.lock() {
        stats.foreign += 1;
    }
}

/// Runs a sink for ever (until the task is aborted).
pub async fn run(spec: SinkSpec, stats: SharedStats) {
    match spec.proto {
        Proto::Udp => {
            let socket = bind_with_retry(&spec, |a| async move { UdpSocket::bind(a).await }).await;
            enlarge_receive_buffer(&spec, &socket);
            udp(&spec, socket, stats).await;
        }
        Proto::Tcp => {
            let listener =
                bind_with_retry(&spec, |a| async move { TcpListener::bind(a).await }).await;
            tcp(&spec, listener, stats).await;
        }
    }
}

/// Asks for [`UDP_RECEIVE_BUFFER`]: beyond the system's limit when
/// allowed (`SO_RCVBUFFORCE` needs CAP_NET_ADMIN), else up to it.
fn enlarge_receive_buffer(spec: &SinkSpec, socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(UDP_RECEIVE_BUFFER).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket we own, with a c_int option value
    // whose size is passed.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    if forced != 0 {
        let _ = socket2::SockRef::from(socket).set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    }
    if let Ok(size) = socket2::SockRef::from(socket).recv_buffer_size() {
        tracing::debug!("{}: receive buffer {size} bytes", spec.name);
    }
}

async fn bind_with_retry<T, F, Fut>(spec: &SinkSpec, bind: F) -> T
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let mut warned = false;
    loop {
        match bind(spec.local).await {
            Ok(bound) => {
                tracing::info!(
                    "{}: listening for {} traffic on {}",
                    spec.name,
                    spec.proto,
                    spec.local
                );
                return bound;
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(
                        "{}: cannot listen on {} ({}): {error}; retrying every second",
                        spec.name,
                        spec.local,
                        spec.proto
                    );
                    warned = true;
                }
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    }
}

async fn udp(spec: &SinkSpec, socket: UdpSocket, stats: SharedStats) {
    let mut buffer = vec![0u8; MAX_PACKET + 1];
    loop {
        match socket.recv(&mut buffer).await {
            Ok(length) => match buffer.get(..length).map(Header::read) {
                Some(Ok(header)) if usize::try_from(header.length) == Ok(length) => {
                    record(&stats, &header);
                }
                _ => foreign(&stats),
            },
            Err(error) => {
                tracing::debug!("{}: receive error: {error}", spec.name);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn tcp(spec: &SinkSpec, listener: TcpListener, stats: SharedStats) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(
                        "{}: refusing the connection from {peer}: already {MAX_CONNECTIONS} connections",
                        spec.name
                    );
                    continue;
                };
                tracing::info!("{}: connection from {peer}", spec.name);
                let name = spec.name.clone();
                let stats = stats.clone();
                tokio::spawn(async move {
                    let why = tcp_connection(stream, &stats).await;
                    tracing::info!("{name}: connection from {peer} ended: {why}");
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::debug!("{}: accept failed: {error}", spec.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads framed packets until the connection ends; returns why.
async fn tcp_connection(mut stream: TcpStream, stats: &SharedStats) -> String {
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut rest = vec![0u8; MAX_PACKET];
    loop {
        if let Err(error) = stream.read_exact(&mut header_bytes).await {
            return if error.kind() == std::io::ErrorKind::UnexpectedEof {
                "closed by the source".to_owned()
            } else {
                error.to_string()
            };
        }
        let header = match Header::read(&header_bytes) {
            Ok(header) => header,
            Err(error) => {
                foreign(stats);
                return format!("{error}; closing it");
            }
        };
        let body = usize::try_from(header.length)
            .unwrap_or(HEADER_LEN)
            .saturating_sub(HEADER_LEN);
        if let Some(body) = rest.get_mut(..body)
            && let Err(error) = stream.read_exact(body).await
        {
            return error.to_string();
        }
        record(stats, &header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flow: u32, seq: u64) -> Header {
        Header {
            length: 100,
            flow,
            seq,
            sent_ns: 1_000_000,
        }
    }

    #[test]
    fn loss_from_sequence_gaps_and_late_packets() {
        let mut stats = SinkStats::default();
        for seq in [10, 11, 14, 12, 15] {
            stats.record(&header(1, seq), 3_000_000);
        }
        let window = stats.take_window();
        // 13 never came; 12 came late.
        assert_eq!(window.packets, 5);
        assert_eq!(window.lost, 1);
        assert_eq!(window.bytes, 500);
        assert!((window.loss_fraction() - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(window.mean_delay_ms(), Some(2.0));
        assert_eq!(stats.take_window(), Window::default());
        // A second flow starts its own count.
        stats.record(&header(2, 500), 3_000_000);
        assert_eq!(stats.take_window().lost, 0);
        assert_eq!((stats.total_packets, stats.total_lost), (6, 1));
        stats.reset();
        assert_eq!(stats.total_packets, 0);
    }

    #[test]
    fn flows_are_bounded_and_bad_clocks_skip_delay() {
        let mut stats = SinkStats::default();
        for flow in 0..1000 {
            stats.record(&header(flow, 0), 0);
        }
        assert!(stats.flows.len() <= MAX_FLOWS);
        let window = stats.take_window();
        assert_eq!(window.packets, 1000);
        assert_eq!(window.mean_delay_ms(), None);
    }
}
