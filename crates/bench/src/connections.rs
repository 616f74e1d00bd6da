//! `connections`: many idle sessions, each with one subscription.
//!
//! An Emulab testbed keeps a session open from every node (an `evproxy`
//! per node, each subscribed for its own host), so what matters at scale is
//! what an idle session costs the router and whether the router stays
//! quick with thousands of them. This test opens N sessions, each
//! subscribing with a distinct non-matching Emulab subscription, then
//! reads the router's resident memory and runs a short round-trip test
//! through all that idle state.
//!
//! Sessions are opened with bounded parallelism (`concurrency` at a time):
//! each sends ConnRqst and SubAddRqst in one write and waits for both
//! replies, so a router that refuses or drops a session is reported at
//! once with the session's number. Once set up, an idle session keeps only
//! its socket.

use std::time::{Duration, Instant};

use elvin_proto::{DEFAULT_MAX_PACKET_LENGTH, Keys, Message, Packet, SubAddRqst};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::error::{BenchError, format_nack};
use crate::pingpong::{self, PingPongConfig, PingPongReport};
use crate::procinfo;
use crate::shape;
use crate::wire::{self, FrameReader, Target};

/// Files the tool needs besides the idle sessions (standard streams, the
/// runtime, the round-trip sessions).
const SPARE_FILES: u64 = 64;

/// Settings of a connections run.
#[derive(Clone, Debug)]
pub struct ConnectionsConfig {
    /// Idle sessions to open.
    pub connections: usize,
    /// Sessions being set up at once.
    pub concurrency: usize,
    /// The round-trip test run with the sessions open (its target is the
    /// router).
    pub pingpong: PingPongConfig,
    /// The router's process id, if known.
    pub router_pid: Option<u32>,
}

/// Where the router's memory figure came from.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryReport {
    /// Process id measured, if any.
    pub pid: Option<u32>,
    /// How the pid was obtained, or why there is no figure.
    pub source: String,
    /// VmRSS before the idle sessions were opened, KiB.
    pub rss_before_kib: Option<u64>,
    /// VmRSS with all idle sessions open, KiB.
    pub rss_with_connections_kib: Option<u64>,
    /// VmRSS after the round-trip test, sessions still open, KiB.
    pub rss_after_pingpong_kib: Option<u64>,
}

/// Result of a connections run.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionsReport {
    /// Router URI.
    pub router: String,
    /// Idle sessions open during the measurement.
    pub connections: usize,
    /// Time to open and subscribe all of them, seconds.
    pub setup_s: f64,
    /// The open-file limit of the tool after raising it.
    pub fd_limit: u64,
    /// The router's resident memory.
    pub memory: MemoryReport,
    /// Round trips with all sessions open.
    pub pingpong: PingPongReport,
}

/// Runs the connections test.
pub async fn run(config: &ConnectionsConfig) -> Result<ConnectionsReport, BenchError> {
    let target = &config.pingpong.target;
    let needed = u64::try_from(config.connections)
        .unwrap_or(u64::MAX)
        .saturating_add(SPARE_FILES);
    let fd_limit = procinfo::raise_fd_limit(needed)?;
    let (pid, source) = locate_router(target, config.router_pid);
    let rss = |pid: Option<u32>| pid.and_then(|pid| procinfo::resident_kib(pid).ok());
    let rss_before_kib = rss(pid);

    let started = Instant::now();
    let sessions = open_idle_sessions(target, config).await?;
    let setup_s = started.elapsed().as_secs_f64();
    let rss_with_connections_kib = rss(pid);
    let pingpong = pingpong::run(&config.pingpong).await?;
    let rss_after_pingpong_kib = rss(pid);
    drop(sessions);
    Ok(ConnectionsReport {
        router: target.text.clone(),
        connections: config.connections,
        setup_s,
        fd_limit,
        memory: MemoryReport {
            pid,
            source,
            rss_before_kib,
            rss_with_connections_kib,
            rss_after_pingpong_kib,
        },
        pingpong,
    })
}

/// The router's pid and how it was found (or why it was not).
pub(crate) fn locate_router(target: &Target, given: Option<u32>) -> (Option<u32>, String) {
    if let Some(pid) = given {
        return (Some(pid), "given by --router-pid".into());
    }
    if !target.is_loopback() {
        return (
            None,
            "unavailable: the router is not on this host (give --router-pid to a local router)"
                .into(),
        );
    }
    match procinfo::find_listener_pid(target.uri.port) {
        Some(pid) => (
            Some(pid),
            format!(
                "found by listening port {} via /proc/net/tcp and /proc/*/fd",
                target.uri.port
            ),
        ),
        None => (
            None,
            format!(
                "unavailable: no visible process listens on port {} (give --router-pid)",
                target.uri.port
            ),
        ),
    }
}

/// Opens `config.connections` sessions, each with one distinct
/// non-matching subscription.
async fn open_idle_sessions(
    target: &Target,
    config: &ConnectionsConfig,
) -> Result<Vec<TcpStream>, BenchError> {
    let timeout = config.pingpong.timeout;
    let mut sessions = Vec::with_capacity(config.connections);
    let mut pending = JoinSet::new();
    let mut next = 0usize;
    let concurrency = config.concurrency.max(1);
    while sessions.len() < config.connections {
        while next < config.connections && pending.len() < concurrency {
            let target = target.clone();
            let index = next;
            pending.spawn(async move { open_idle_session(&target, index, timeout).await });
            next += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(stream))) => sessions.push(stream),
            Some(Ok(Err(error))) => return Err(error),
            Some(Err(join)) => {
                return Err(BenchError::Local(format!(
                    "a connection task failed: {join}"
                )));
            }
            None => break,
        }
    }
    Ok(sessions)
}

/// Opens session `index`: ConnRqst and SubAddRqst in one write, then both
/// replies. Keeps only the socket.
async fn open_idle_session(
    target: &Target,
    index: usize,
    timeout: Duration,
) -> Result<TcpStream, BenchError> {
    const PHASE: &str = "idle connection setup";
    let stream = wire::open_tcp(target, timeout)
        .await
        .map_err(|error| match error {
            BenchError::Connect { address, source } => BenchError::Connect {
                address: format!("{address} (connection {index})"),
                source,
            },
            other => other,
        })?;
    let (read_half, mut write_half) = stream.into_split();
    let expression = shape::non_matching_subscription(index);
    let mut frames = Vec::with_capacity(256);
    wire::conn_request(1, &Vec::new()).encode_frame(&mut frames);
    SubAddRqst {
        xid: 2,
        expression: expression.clone(),
        accept_insecure: true,
        keys: Keys::new(),
    }
    .encode_frame(&mut frames);
    write_half
        .write_all(&frames)
        .await
        .map_err(|source| BenchError::Io {
            phase: PHASE,
            source,
        })?;
    let mut reader = FrameReader::with_chunk(read_half, DEFAULT_MAX_PACKET_LENGTH, 1024);
    wire::await_conn_reply(&mut reader, 1, timeout).await?;
    loop {
        match reader.next_packet(timeout, PHASE).await? {
            Packet::SubRply(reply) if reply.xid == 2 => break,
            Packet::Nack(nack) if nack.xid == 2 => {
                return Err(BenchError::SubscribeRefused {
                    expression,
                    code: nack.error,
                    message: format_nack(&nack.message, &nack.args),
                });
            }
            Packet::Disconn(disconn) => {
                return Err(BenchError::Disconnected {
                    phase: PHASE,
                    reason: disconn.reason,
                    args: disconn.args,
                });
            }
            _ => {}
        }
    }
    let read_half = reader.into_inner();
    read_half
        .reunite(write_half)
        .map_err(|_| BenchError::Local("socket halves did not match".into()))
}
