//! linktest's own probes, all over UDP so no node needs raw sockets, `ping`
//! or `iperf`: an echo for round-trip times and reachability, a paced
//! stream for loss, and a flood for bandwidth.
//!
//! Every probe packet starts with a small header (magic, kind, run id, step
//! number, sequence number, send time) so a node ignores strays and
//! attributes each packet to the run and step that sent it. Each node
//! listens on two ports for the whole run: [`Ports::echo`] answers echo
//! requests, [`Ports::stream`] counts stream and flood packets per
//! (step, sender address).
//!
//! Sockets can be opened inside a named network namespace while the
//! process (and its event connection) stays where it is: [`udp_socket`]
//! opens them from a short-lived thread that joined the namespace, and a
//! socket keeps its namespace for life.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::topology::Edge;

/// The default echo port.
pub const DEFAULT_ECHO_PORT: u16 = 31780;
/// The default stream port.
pub const DEFAULT_STREAM_PORT: u16 = 31781;

/// Bytes of Ethernet, IPv4 and UDP headers around a probe's payload; the
/// bandwidth estimate counts whole frames, as link shaping does.
pub const FRAME_OVERHEAD: usize = 14 + 20 + 8;
/// The latency probe's payload size.
pub const ECHO_PAYLOAD: usize = 64;
/// The loss stream's payload size.
pub const STREAM_PAYLOAD: usize = 64;
/// The bandwidth flood's payload size.
pub const FLOOD_PAYLOAD: usize = 1400;

const MAGIC: &[u8; 4] = b"TBLT";
const HEADER: usize = 28;

/// The two UDP ports a run uses on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Echo requests and replies.
    pub echo: u16,
    /// Loss streams and bandwidth floods.
    pub stream: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            echo: DEFAULT_ECHO_PORT,
            stream: DEFAULT_STREAM_PORT,
        }
    }
}

/// What a probe packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    EchoRequest = 1,
    EchoReply = 2,
    Stream = 3,
}

/// A decoded probe header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    kind: Kind,
    run: u32,
    step: u32,
    seq: u32,
    sent_ns: u64,
}

fn encode(header: Header, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len.max(HEADER)];
    buf[..4].copy_from_slice(MAGIC);
    buf[4] = header.kind as u8;
    buf[8..12].copy_from_slice(&header.run.to_be_bytes());
    buf[12..16].copy_from_slice(&header.step.to_be_bytes());
    buf[16..20].copy_from_slice(&header.seq.to_be_bytes());
    buf[20..28].copy_from_slice(&header.sent_ns.to_be_bytes());
    buf
}

fn decode(buf: &[u8]) -> Option<Header> {
    if buf.len() < HEADER || &buf[..4] != MAGIC {
        return None;
    }
    let kind = match buf[4] {
        1 => Kind::EchoRequest,
        2 => Kind::EchoReply,
        3 => Kind::Stream,
        _ => return None,
    };
    let word = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&buf[20..28]);
    Some(Header {
        kind,
        run: word(8),
        step: word(12),
        seq: word(16),
        sent_ns: u64::from_be_bytes(sent),
    })
}

/// Opens a UDP socket bound to `bind`, inside the network namespace at
/// `netns` (a path such as `/run/netns/NAME`) when one is given, with IP
/// TTL `ttl` when given.
pub async fn udp_socket(
    netns: Option<&Path>,
    bind: SocketAddr,
    ttl: Option<u32>,
) -> io::Result<UdpSocket> {
    let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
    let socket = tokio::task::spawn_blocking(move || -> io::Result<std::net::UdpSocket> {
        // A fresh thread: joining a namespace changes only this thread,
        // which ends right after, so no other work runs in the namespace.
        std::thread::spawn(move || {
            if let Some(path) = netns {
                let file = std::fs::File::open(&path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open network namespace {}: {e}", path.display()),
                    )
                })?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    io::Error::other(format!(
                        "cannot enter network namespace {}: {e} (linktest needs root for --netns)",
                        path.display()
                    ))
                })?;
            }
            let socket = std::net::UdpSocket::bind(bind)?;
            if let Some(ttl) = ttl {
                socket.set_ttl(ttl)?;
            }
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .join()
        .map_err(|_| io::Error::other("the socket thread panicked"))?
    })
    .await
    .map_err(io::Error::other)??;
    UdpSocket::from_std(socket)
}

/// Nanoseconds on a monotonic clock shared by every probe of a process.
fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Answers echo requests of run `run` until dropped.
pub async fn echo_responder(socket: UdpSocket, run: u32) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(header) = decode(&buf[..len]) else {
            continue;
        };
        if header.kind != Kind::EchoRequest || header.run != run {
            continue;
        }
        buf[4] = Kind::EchoReply as u8;
        let _ = socket.send_to(&buf[..len], from).await;
    }
}

/// Packets counted for one (step, sender).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Received {
    /// Packets that arrived (duplicates counted once).
    pub packets: u64,
    /// Frame bytes that arrived after the warm-up ([`FLOOD_WARMUP`]).
    pub bytes_after_warmup: u64,
    /// Arrival of the first packet after the warm-up.
    pub first_after_warmup: Option<Instant>,
    /// Arrival of the last packet.
    pub last: Option<Instant>,
    /// Arrival of the very first packet.
    pub first: Option<Instant>,
    seen: std::collections::HashSet<u32>,
}

/// How long the start of a flood is ignored: a shaper's token bucket lets
/// an initial burst through at line rate.
pub const FLOOD_WARMUP: Duration = Duration::from_millis(250);

/// What the stream port received, per (step, sender address).
pub type Counters = Arc<Mutex<HashMap<(u32, Ipv4Addr), Received>>>;

/// Counts stream packets of run `run` into `counters` until dropped.
pub async fn stream_listener(socket: UdpSocket, run: u32, counters: Counters) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let now = Instant::now();
        let Some(header) = decode(&buf[..len]) else {
            continue;
        };
        let SocketAddr::V4(from) = from else { continue };
        if header.kind != Kind::Stream || header.run != run {
            continue;
        }
        let Ok(mut map) = counters.lock() else { return };
        let slot = map.entry((header.step, *from.ip())).or_default();
        if !slot.seen.insert(header.seq) {
            continue;
        }
        slot.packets += 1;
        let first = *slot.first.get_or_insert(now);
        if now.duration_since(first) >= FLOOD_WARMUP {
            if slot.first_after_warmup.is_none() {
                slot.first_after_warmup = Some(now);
            } else {
                slot.bytes_after_warmup += (len + FRAME_OVERHEAD) as u64;
            }
        }
        slot.last = Some(now);
    }
}

/// Sends one echo request stamped with the time since `epoch`. No route,
/// a down link or an ICMP error from an earlier request means this request
/// is lost, which is what the caller measures, not an error.
async fn send_echo_request(
    socket: &UdpSocket,
    to: SocketAddrV4,
    run: u32,
    step: u32,
    seq: u32,
    epoch: Instant,
) -> io::Result<()> {
    let packet = encode(
        Header {
            kind: Kind::EchoRequest,
            run,
            step,
            seq,
            sent_ns: now_ns(epoch),
        },
        ECHO_PAYLOAD,
    );
    match socket.send_to(&packet, to).await {
        Err(e) if !is_lost_packet(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Sequence numbers at and above this mark [`prime`]'s requests, so a late
/// answer to one is never taken for a measured request's.
const PRIME_SEQ: u32 = 1 << 30;

/// Sends echo requests from `socket` to `to` every `interval` until one is
/// answered or `limit` has passed; whether one was.
///
/// A measurement calls this first so that it measures the link and not
/// the first packet's wait for address resolution: an ARP request or
/// reply lost on a lossy link holds every packet queued behind it for a
/// second, which is a latency error that is not there and lost stream
/// packets the link never dropped.
pub async fn prime(
    socket: &UdpSocket,
    to: SocketAddrV4,
    run: u32,
    step: u32,
    interval: Duration,
    limit: Duration,
) -> io::Result<bool> {
    let epoch = Instant::now();
    let give_up = tokio::time::Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    let mut seq = PRIME_SEQ;
    while tokio::time::Instant::now() < give_up {
        send_echo_request(socket, to, run, step, seq, epoch).await?;
        seq = seq.wrapping_add(1);
        let next = (tokio::time::Instant::now() + interval).min(give_up);
        while let Ok(received) = tokio::time::timeout_at(next, socket.recv_from(&mut buf)).await {
            let Ok((len, from)) = received else { continue };
            if from == SocketAddr::V4(to)
                && let Some(h) = decode(&buf[..len])
                && h.kind == Kind::EchoReply
                && h.run == run
                && h.step == step
                && h.seq >= PRIME_SEQ
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Round-trip times of `count` echo requests sent `interval` apart from
/// `socket` to `to`; `None` for each request that got no answer within
/// `wait` after the last one was sent.
pub async fn ping(
    socket: &UdpSocket,
    to: SocketAddrV4,
    run: u32,
    step: u32,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> io::Result<Vec<Option<Duration>>> {
    let epoch = Instant::now();
    let mut rtts = vec![None; count as usize];
    let mut buf = vec![0u8; 2048];
    let mut next_send = tokio::time::Instant::now();
    let mut sent = 0u32;
    let mut deadline = None;
    loop {
        if sent < count && tokio::time::Instant::now() >= next_send {
            send_echo_request(socket, to, run, step, sent, epoch).await?;
            sent += 1;
            next_send += interval;
            if sent == count {
                deadline = Some(tokio::time::Instant::now() + wait);
            }
            continue;
        }
        let until = if sent < count {
            next_send
        } else {
            deadline.unwrap_or_else(tokio::time::Instant::now)
        };
        if sent == count
            && (tokio::time::Instant::now() >= until || rtts.iter().all(Option::is_some))
        {
            break;
        }
        match tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
            Ok(Ok((len, from))) => {
                let arrived = now_ns(epoch);
                if from != SocketAddr::V4(to) {
                    continue;
                }
                if let Some(h) = decode(&buf[..len])
                    && h.kind == Kind::EchoReply
                    && h.run == run
                    && h.step == step
                    && (h.seq as usize) < rtts.len()
                    && rtts[h.seq as usize].is_none()
                {
                    rtts[h.seq as usize] = Some(Duration::from_nanos(arrived - h.sent_ns));
                }
            }
            // An ICMP error reported on the socket (port unreachable,
            // TTL exceeded): the request is lost, keep going.
            Ok(Err(_)) => {}
            Err(_elapsed) => {}
        }
    }
    Ok(rtts)
}

/// How the loss test streams over `edge`: `(packets, packets per second)`,
/// or `None` when a stream large enough to judge the configured loss would
/// not fit in a quarter of the link's bandwidth within ten seconds.
///
/// The count follows the original for a lossless link (400); for a lossy
/// one, enough packets to expect about ten losses (`10 / loss`, the
/// original's rule) but at least 1,000 and at most 4,000, so the z-test
/// has the power to tell 10 % from 20 %.
pub fn loss_plan(edge: &Edge) -> Option<(u32, u32)> {
    let packets = if edge.loss > 0.0 {
        ((10.0 / edge.loss).round() as u32).clamp(1000, 4000)
    } else {
        400
    };
    let frame_bits = ((STREAM_PAYLOAD + FRAME_OVERHEAD) * 8) as u64;
    let pps = if edge.bandwidth_bps == 0 {
        1000
    } else {
        (edge.bandwidth_bps / 4 / frame_bits).min(1000)
    };
    if pps < 20 || packets / pps as u32 > 10 {
        return None;
    }
    Some((packets, pps as u32))
}

/// Sends `packets` stream packets at `pps` to `to`.
pub async fn send_stream(
    socket: &UdpSocket,
    to: SocketAddrV4,
    run: u32,
    step: u32,
    packets: u32,
    pps: u32,
) -> io::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(pps.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..packets {
        ticker.tick().await;
        let packet = encode(
            Header {
                kind: Kind::Stream,
                run,
                step,
                seq,
                sent_ns: 0,
            },
            STREAM_PAYLOAD,
        );
        send_retrying(socket, &packet, to).await?;
    }
    Ok(())
}

/// Floods `to` for `duration` at `rate_bps` (frame bits per second), in
/// bursts every millisecond.
pub async fn flood(
    socket: &UdpSocket,
    to: SocketAddrV4,
    run: u32,
    step: u32,
    rate_bps: u64,
    duration: Duration,
) -> io::Result<()> {
    let frame_bits = ((FLOOD_PAYLOAD + FRAME_OVERHEAD) * 8) as f64;
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u32;
    loop {
        ticker.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok(());
        }
        let due = (elapsed.as_secs_f64() * rate_bps as f64 / frame_bits) as u32 + 1;
        while seq < due {
            let packet = encode(
                Header {
                    kind: Kind::Stream,
                    run,
                    step,
                    seq,
                    sent_ns: 0,
                },
                FLOOD_PAYLOAD,
            );
            send_retrying(socket, &packet, to).await?;
            seq += 1;
        }
    }
}

/// Whether a send error means "the network lost it" rather than "the
/// probe is broken".
fn is_lost_packet(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ECONNREFUSED | libc::ENETDOWN)
    )
}

/// Sends one datagram; a full socket buffer (ENOBUFS) waits a moment
/// rather than failing the test: the link, not the sender, should drop.
async fn send_retrying(socket: &UdpSocket, packet: &[u8], to: SocketAddrV4) -> io::Result<()> {
    for _ in 0..100 {
        match socket.send_to(packet, to).await {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            // Unreachable, or an ICMP error from an earlier packet: the
            // receiver judges what arrived.
            Err(e) if is_lost_packet(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_strays_are_ignored() {
        let h = Header {
            kind: Kind::Stream,
            run: 7,
            step: 3,
            seq: 99,
            sent_ns: 123_456_789,
        };
        let buf = encode(h, 64);
        assert_eq!(buf.len(), 64);
        assert_eq!(decode(&buf), Some(h));
        assert_eq!(decode(&buf[..27]), None);
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), None);
        bad = buf;
        bad[4] = 9;
        assert_eq!(decode(&bad), None);
    }

    fn edge(bw: u64, loss: f64) -> Edge {
        Edge {
            src: "a".into(),
            dst: "b".into(),
            lan: "l".into(),
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            bandwidth_bps: bw,
            delay_s: 0.0,
            loss,
        }
    }

    #[test]
    fn the_loss_stream_fits_the_link_or_is_not_planned() {
        assert_eq!(loss_plan(&edge(100_000_000, 0.0)), Some((400, 1000)));
        assert_eq!(loss_plan(&edge(100_000_000, 0.2)), Some((1000, 1000)));
        assert_eq!(loss_plan(&edge(100_000_000, 0.001)), Some((4000, 1000)));
        // 1 Mb/s: a quarter is 250 kb/s, 106-byte frames: 294 packets/s.
        assert_eq!(loss_plan(&edge(1_000_000, 0.0)), Some((400, 294)));
        // 64 kb/s: 18 packets/s is too slow to judge anything.
        assert_eq!(loss_plan(&edge(64_000, 0.0)), None);
    }

    #[tokio::test]
    async fn echo_and_stream_work_on_loopback() {
        let responder = udp_socket(None, "127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let SocketAddr::V4(echo_addr) = responder.local_addr().unwrap() else {
            unreachable!()
        };
        let echo = tokio::spawn(echo_responder(responder, 5));
        let pinger = udp_socket(None, "127.0.0.1:0".parse().unwrap(), Some(1))
            .await
            .unwrap();
        let rtts = ping(
            &pinger,
            echo_addr,
            5,
            1,
            5,
            Duration::from_millis(10),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert!(rtts.iter().all(Option::is_some), "{rtts:?}");
        // Another run's responder does not answer.
        let rtts = ping(
            &pinger,
            echo_addr,
            6,
            1,
            2,
            Duration::from_millis(10),
            Duration::from_millis(200),
        )
        .await
        .unwrap();
        assert!(rtts.iter().all(Option::is_none), "{rtts:?}");
        // Priming stops at the first answer, and gives up on a silent peer
        // once its limit has passed.
        let started = tokio::time::Instant::now();
        let primed = prime(
            &pinger,
            echo_addr,
            5,
            1,
            Duration::from_millis(10),
            Duration::from_secs(5),
        );
        assert!(primed.await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        let primed = prime(
            &pinger,
            echo_addr,
            6,
            1,
            Duration::from_millis(10),
            Duration::from_millis(100),
        );
        assert!(!primed.await.unwrap());
        // A late answer to priming is not taken for a measured request's.
        let rtts = ping(
            &pinger,
            echo_addr,
            5,
            1,
            2,
            Duration::from_millis(10),
            Duration::from_secs(2),
        );
        assert!(rtts.await.unwrap().iter().all(Option::is_some));
        echo.abort();

        let counters = Counters::default();
        let listener = udp_socket(None, "127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let SocketAddr::V4(stream_addr) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        let task = tokio::spawn(stream_listener(listener, 5, Arc::clone(&counters)));
        send_stream(&pinger, stream_addr, 5, 2, 50, 1000)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = counters
                .lock()
                .unwrap()
                .get(&(2, Ipv4Addr::LOCALHOST))
                .map(|r| r.packets);
            if got == Some(50) {
                break;
            }
            assert!(Instant::now() < deadline, "received {got:?} of 50");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }
}
