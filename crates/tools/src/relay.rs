//! The legacy relay behind `tbevents-relay`: a TCP forwarder that lets old
//! node images keep using the event port they were built with (the
//! original's inetd + `nc -w 3` entry, as one long-running program).
//!
//! What it does for the operator (half-close and linger, no idle timeout
//! but keep-alive, the connection limit, per-connection name lookup, the
//! log line) is described once, in docs/relay.md; `--help` prints the
//! terminal summary. The shape: an accept loop gated by a semaphore (the
//! connection limit), then one task per connection (`relay_connection`)
//! that resolves and connects the target and runs two copy loops (`pump`)
//! under one linger/idle clock.
//!
//! Memory is bounded: each connection holds two fixed copy buffers
//! ([`COPY_BUFFER_SIZE`] bytes each) and at most `max_connections` exist
//! at once; a rejected connection holds nothing once it is closed.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Default time allowed to resolve and connect to the target (the
/// original's `nc -w 3`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Default time a half-closed connection may stay silent before it is
/// closed.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(3);

/// Default limit on simultaneous relayed connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Bytes of copy buffer per direction of each connection.
pub const COPY_BUFFER_SIZE: usize = 16 * 1024;

/// Time allowed at shutdown for connection tasks to write their log lines.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// TCP keep-alive: silence before the first probe, and between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Most "connection refused: over the limit" lines logged per second; the
/// rest are counted and reported by the next line that is logged.
const REJECTION_LINES_PER_SECOND: u32 = 10;

/// Pause after an `accept` failure (typically running out of file
/// descriptors), so a persistent failure does not spin the CPU.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Where the relay connects: a host name or address and a port, resolved
/// again for every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
}

impl Target {
    /// Parses `HOST:PORT`, `IPV4:PORT` or `[IPV6]:PORT`.
    pub fn parse(text: &str) -> Result<Target, RelayError> {
        let bad = |reason: &str| RelayError::BadTarget {
            given: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address opened with [ is not closed with ]"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("the port is missing after the ]"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| bad("the port is missing"))?;
            if host.contains(':') {
                return Err(bad(
                    "write an IPv6 address in brackets, like [2001:db8::1]:2917",
                ));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host contains spaces or control characters"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("port 0 cannot be connected to"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Looks the target up now (through the system resolver).
    pub async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect())
    }
}

impl FromStr for Target {
    type Err = RelayError;

    fn from_str(text: &str) -> Result<Target, RelayError> {
        Target::parse(text)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything that decides how the relay behaves.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Address to listen on, `ADDR:PORT` (a host name is resolved once, at
    /// start, and the first address that can be bound is used).
    pub listen: String,
    /// Where every accepted connection is copied to.
    pub target: Target,
    /// Most connections relayed at once; more are accepted and closed.
    pub max_connections: usize,
    /// Time allowed to resolve the target and connect to it.
    pub connect_timeout: Duration,
    /// After one direction ends, how long the other may stay silent
    /// before the connection is closed.
    pub linger: Duration,
    /// Close a connection after this long without data in either
    /// direction; `None` (the default) never does.
    pub idle_timeout: Option<Duration>,
}

impl RelayConfig {
    /// A configuration with the defaults: 1000 connections, 3 s connect
    /// timeout, 3 s linger, no idle timeout.
    pub fn new(listen: impl Into<String>, target: Target) -> RelayConfig {
        RelayConfig {
            listen: listen.into(),
            target,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            linger: DEFAULT_LINGER,
            idle_timeout: None,
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The target is not `HOST:PORT`.
    #[error(
        "bad target {given:?}: {reason}; give HOST:PORT, for example ops.example.net:2917 or [2001:db8::1]:2917"
    )]
    BadTarget {
        /// The text given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening socket could not be opened.
    #[error(
        "cannot listen on {listen}: {source} (is another program using the port, is the address one of this host's, and may this user bind it?)"
    )]
    Listen {
        /// The listen address as given.
        listen: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A setting is out of range.
    #[error("{0}")]
    BadSetting(String),
}

/// Which end of a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The program that connected to the relay.
    Client,
    /// The server the relay connected to.
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Target => "target",
        })
    }
}

/// How a relayed connection ended (the `end=` field of its log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// Both sides ended their streams: the normal end.
    Completed,
    /// One side ended its stream (`first`) and the other moved no data
    /// for the linger time.
    LingerExpired {
        /// The side whose EOF started the linger.
        first: Side,
    },
    /// No data moved in either direction for the idle timeout.
    IdleTimeout,
    /// The target name did not resolve.
    ResolveFailed(String),
    /// Every address of the target refused or failed.
    ConnectFailed(String),
    /// Resolving and connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Reading from or writing to one side failed (for example a reset).
    Error {
        /// The side whose socket failed.
        side: Side,
        /// The system's error.
        error: String,
    },
    /// The relay is shutting down.
    Shutdown,
    /// The connection limit was reached; closed at once.
    OverLimit,
}

impl ConnectionEnd {
    /// A short, stable keyword for logs and scripts.
    pub fn keyword(&self) -> &'static str {
        match self {
            ConnectionEnd::Completed => "completed",
            ConnectionEnd::LingerExpired { .. } => "linger-expired",
            ConnectionEnd::IdleTimeout => "idle-timeout",
            ConnectionEnd::ResolveFailed(_) => "resolve-failed",
            ConnectionEnd::ConnectFailed(_) => "connect-failed",
            ConnectionEnd::ConnectTimeout => "connect-timeout",
            ConnectionEnd::Error {
                side: Side::Client, ..
            } => "client-error",
            ConnectionEnd::Error {
                side: Side::Target, ..
            } => "target-error",
            ConnectionEnd::Shutdown => "shutdown",
            ConnectionEnd::OverLimit => "over-limit",
        }
    }

    /// True when the end points at a problem with the target or the
    /// network rather than an ordinary close.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ConnectionEnd::ResolveFailed(_)
                | ConnectionEnd::ConnectFailed(_)
                | ConnectionEnd::ConnectTimeout
                | ConnectionEnd::Error { .. }
        )
    }
}

impl fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEnd::Completed => f.write_str("both sides closed"),
            ConnectionEnd::LingerExpired { first } => {
                write!(
                    f,
                    "{first} closed first; the other side then stayed silent for the linger time"
                )
            }
            ConnectionEnd::IdleTimeout => f.write_str("no data either way for the idle timeout"),
            ConnectionEnd::ResolveFailed(error) => {
                write!(f, "the target name did not resolve: {error}")
            }
            ConnectionEnd::ConnectFailed(error) => {
                write!(f, "could not connect to the target: {error}")
            }
            ConnectionEnd::ConnectTimeout => {
                f.write_str("the target did not accept within the connect timeout")
            }
            ConnectionEnd::Error { side, error } => write!(f, "{side} socket failed: {error}"),
            ConnectionEnd::Shutdown => f.write_str("the relay is shutting down"),
            ConnectionEnd::OverLimit => {
                f.write_str("refused: the connection limit is reached (see --max-connections)")
            }
        }
    }
}

/// What happened to one relayed connection; logged when it closes.
#[derive(Clone, Debug)]
pub struct ConnectionReport {
    /// The client's address.
    pub peer: SocketAddr,
    /// The target address connected to, if a connection was made.
    pub target: Option<SocketAddr>,
    /// Bytes copied from the client to the target.
    pub bytes_to_target: u64,
    /// Bytes copied from the target to the client.
    pub bytes_to_client: u64,
    /// Time from accept to close.
    pub duration: Duration,
    /// How it ended.
    pub end: ConnectionEnd,
}

/// Totals for the whole run, returned by [`Relay::run`] and logged at
/// exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelaySummary {
    /// Connections relayed (or attempted: the target may have failed).
    pub relayed: u64,
    /// Connections closed at once because of the limit.
    pub rejected: u64,
    /// Relayed connections that ended with a failure (target unreachable,
    /// socket error).
    pub failed: u64,
    /// Bytes copied from clients to the target.
    pub bytes_to_target: u64,
    /// Bytes copied from the target to clients.
    pub bytes_to_client: u64,
}

/// Running totals shared by the connection tasks.
#[derive(Default)]
struct Totals {
    relayed: AtomicU64,
    failed: AtomicU64,
    bytes_to_target: AtomicU64,
    bytes_to_client: AtomicU64,
}

impl Totals {
    fn record(&self, report: &ConnectionReport) {
        self.relayed.fetch_add(1, Ordering::Relaxed);
        if report.end.is_failure() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_to_target
            .fetch_add(report.bytes_to_target, Ordering::Relaxed);
        self.bytes_to_client
            .fetch_add(report.bytes_to_client, Ordering::Relaxed);
    }
}

/// A bound relay, ready to run.
pub struct Relay {
    listener: TcpListener,
    local: SocketAddr,
    config: Arc<RelayConfig>,
}

impl Relay {
    /// Checks `config` and binds the listening socket.
    pub async fn bind(config: RelayConfig) -> Result<Relay, RelayError> {
        if config.max_connections == 0 {
            return Err(RelayError::BadSetting(
                "--max-connections must be at least 1".to_owned(),
            ));
        }
        if config.connect_timeout.is_zero() {
            return Err(RelayError::BadSetting(
                "--connect-timeout must be longer than zero".to_owned(),
            ));
        }
        if config.idle_timeout.is_some_and(|idle| idle.is_zero()) {
            return Err(RelayError::BadSetting(
                "--idle-timeout must be longer than zero (leave it out to never time out idle connections)"
                    .to_owned(),
            ));
        }
        // Same form as the target; checked here so a typo is a usage error
        // with an example rather than a resolver message.
        Target::parse(&config.listen).map_err(|error| {
            RelayError::BadSetting(
                format!("--listen: {error}").replace("bad target", "bad address"),
            )
        })?;
        // The semaphore's limit.
        if config.max_connections > Semaphore::MAX_PERMITS {
            return Err(RelayError::BadSetting(format!(
                "--max-connections must be at most {}",
                Semaphore::MAX_PERMITS
            )));
        }
        let listener = TcpListener::bind(config.listen.as_str())
            .await
            .map_err(|source| RelayError::Listen {
                listen: config.listen.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| RelayError::Listen {
            listen: config.listen.clone(),
            source,
        })?;
        Ok(Relay {
            listener,
            local,
            config: Arc::new(config),
        })
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts and relays connections until `shutdown` completes, then
    /// stops accepting, closes every connection (each logs its line) and
    /// returns the totals.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RelaySummary {
        let Relay {
            listener,
            local,
            config,
        } = self;
        tracing::info!(
            listen = %local,
            target = %config.target,
            max_connections = config.max_connections,
            connect_timeout = %humantime::format_duration(config.connect_timeout),
            linger = %humantime::format_duration(config.linger),
            idle_timeout = %config
                .idle_timeout
                .map_or_else(|| "off".to_owned(), |idle| humantime::format_duration(idle).to_string()),
            "relaying connections"
        );
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let totals = Arc::new(Totals::default());
        let (stop_sender, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut rejections = RejectionLog::default();
        let mut rejected: u64 = 0;
        let mut accept_errors = RejectionLog::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match Arc::clone(&limit).try_acquire_owned() {
                        Ok(permit) => {
                            let config = Arc::clone(&config);
                            let totals = Arc::clone(&totals);
                            let stop = stop.clone();
                            tasks.spawn(async move {
                                let report = relay_connection(stream, peer, &config, stop).await;
                                log_report(&config.target, &report);
                                totals.record(&report);
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            rejected = rejected.saturating_add(1);
                            // Closing at once: the client sees EOF instead of
                            // hanging in the backlog.
                            drop(stream);
                            if let Some(unlogged) = rejections.allow(Instant::now()) {
                                tracing::warn!(
                                    peer = %peer,
                                    target = %config.target,
                                    to_target = 0,
                                    to_client = 0,
                                    duration = "0.000s",
                                    end = %ConnectionEnd::OverLimit.keyword(),
                                    limit = config.max_connections,
                                    not_logged_since_last = unlogged,
                                    "connection closed: {}",
                                    ConnectionEnd::OverLimit
                                );
                            }
                        }
                    },
                    Err(error) => {
                        if let Some(unlogged) = accept_errors.allow(Instant::now()) {
                            tracing::warn!(
                                %error,
                                not_logged_since_last = unlogged,
                                "accepting a connection failed (out of file descriptors?); retrying"
                            );
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        let open = tasks.len();
        tracing::info!(
            open_connections = open,
            "stopping: no longer accepting; closing open connections"
        );
        // Receivers only disappear with their tasks, which is fine.
        let _ = stop_sender.send(true);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        still_open = tasks.len(),
                        "connections did not close within {SHUTDOWN_GRACE:?}; abandoning them"
                    );
                    tasks.abort_all();
                    break;
                }
            }
        }
        let summary = RelaySummary {
            relayed: totals.relayed.load(Ordering::Relaxed),
            rejected,
            failed: totals.failed.load(Ordering::Relaxed),
            bytes_to_target: totals.bytes_to_target.load(Ordering::Relaxed),
            bytes_to_client: totals.bytes_to_client.load(Ordering::Relaxed),
        };
        tracing::info!(
            relayed = summary.relayed,
            rejected = summary.rejected,
            failed = summary.failed,
            to_target = summary.bytes_to_target,
            to_client = summary.bytes_to_client,
            "relay stopped"
        );
        summary
    }
}

/// Writes the one log line of a closed connection: at `info` for ordinary
/// ends, `warn` when the target or a socket failed.
fn log_report(target: &Target, report: &ConnectionReport) {
    let target_addr = report
        .target
        .map_or_else(|| "-".to_owned(), |addr| addr.to_string());
    let duration = format!("{:.3}s", report.duration.as_secs_f64());
    if report.end.is_failure() {
        tracing::warn!(
            peer = %report.peer,
            target = %target,
            target_addr = %target_addr,
            to_target = report.bytes_to_target,
            to_client = report.bytes_to_client,
            duration = %duration,
            end = %report.end.keyword(),
            "connection closed: {}",
            report.end
        );
    } else {
        tracing::info!(
            peer = %report.peer,
            target = %target,
            target_addr = %target_addr,
            to_target = report.bytes_to_target,
            to_client = report.bytes_to_client,
            duration = %duration,
            end = %report.end.keyword(),
            "connection closed: {}",
            report.end
        );
    }
}

/// Limits log lines to [`REJECTION_LINES_PER_SECOND`], counting the ones
/// left out.
#[derive(Default)]
struct RejectionLog {
    window_start: Option<Instant>,
    in_window: u32,
    unlogged: u64,
}

impl RejectionLog {
    /// `Some(lines left out since the last logged one)` when this event
    /// may be logged, `None` when it must be counted only.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        let fresh_window = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if fresh_window {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < REJECTION_LINES_PER_SECOND {
            self.in_window = self.in_window.saturating_add(1);
            Some(std::mem::take(&mut self.unlogged))
        } else {
            self.unlogged = self.unlogged.saturating_add(1);
            None
        }
    }
}

/// When data last moved on a connection, readable from both copy loops.
struct Activity {
    origin: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }
}

/// A failure in one copy direction, naming the side whose socket failed.
struct PumpError {
    side: Side,
    error: io::Error,
}

/// Resolves the target and connects to the first address that accepts,
/// all within the connect timeout.
async fn connect_target(
    target: &Target,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectionEnd> {
    let attempt = async {
        let addresses = target
            .resolve()
            .await
            .map_err(|error| ConnectionEnd::ResolveFailed(error.to_string()))?;
        if addresses.is_empty() {
            return Err(ConnectionEnd::ResolveFailed(
                "the name has no addresses".to_owned(),
            ));
        }
        let mut failures = Vec::new();
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok((stream, address)),
                Err(error) => failures.push(format!("{address}: {error}")),
            }
        }
        Err(ConnectionEnd::ConnectFailed(failures.join("; ")))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(ConnectionEnd::ConnectTimeout))
}

/// Socket settings for both ends: no Nagle delay (the relay must not add
/// latency to small Elvin packets), and keep-alive probes so a peer that
/// vanished is noticed even with no idle timeout.
fn tune_socket(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "cannot enable TCP keep-alive");
    }
}

/// Relays one accepted connection to its end and reports how it went.
async fn relay_connection(
    client: TcpStream,
    peer: SocketAddr,
    config: &RelayConfig,
    mut stop: watch::Receiver<bool>,
) -> ConnectionReport {
    let started = Instant::now();
    let report = |target, up: u64, down: u64, end| ConnectionReport {
        peer,
        target,
        bytes_to_target: up,
        bytes_to_client: down,
        duration: started.elapsed(),
        end,
    };
    tune_socket(&client);
    let connected = tokio::select! {
        connected = connect_target(&config.target, config.connect_timeout) => connected,
        _ = stop.wait_for(|stopping| *stopping) => Err(ConnectionEnd::Shutdown),
    };
    let (server, target_addr) = match connected {
        Ok(connected) => connected,
        Err(end) => return report(None, 0, 0, end),
    };
    tune_socket(&server);

    let to_target = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);
    let activity = Activity::new();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(
        client_read,
        server_write,
        (Side::Client, Side::Target),
        &to_target,
        &activity,
    );
    let downstream = pump(
        server_read,
        client_write,
        (Side::Target, Side::Client),
        &to_client,
        &activity,
    );
    tokio::pin!(upstream, downstream);
    let mut upstream_done = false;
    let mut downstream_done = false;
    // The side whose EOF came first, once one has.
    let mut first_eof: Option<Side> = None;

    let end = loop {
        let linger_deadline = first_eof.map(|_| activity.last() + config.linger);
        let idle_deadline = config.idle_timeout.map(|idle| activity.last() + idle);
        let deadline = match (linger_deadline, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            result = &mut upstream, if !upstream_done => match result {
                Ok(()) => {
                    upstream_done = true;
                    first_eof.get_or_insert(Side::Client);
                }
                Err(PumpError { side, error }) => break ConnectionEnd::Error { side, error: error.to_string() },
            },
            result = &mut downstream, if !downstream_done => match result {
                Ok(()) => {
                    downstream_done = true;
                    first_eof.get_or_insert(Side::Target);
                }
                Err(PumpError { side, error }) => break ConnectionEnd::Error { side, error: error.to_string() },
            },
            () = sleep_until_deadline(deadline) => {
                // Data may have moved while sleeping; recompute before
                // deciding.
                let now = Instant::now();
                if let Some(first) = first_eof
                    && now >= activity.last() + config.linger {
                        break ConnectionEnd::LingerExpired { first };
                    }
                if let Some(idle) = config.idle_timeout
                    && now >= activity.last() + idle {
                        break ConnectionEnd::IdleTimeout;
                    }
            }
            _ = stop.wait_for(|stopping| *stopping) => break ConnectionEnd::Shutdown,
        }
        if upstream_done && downstream_done {
            break ConnectionEnd::Completed;
        }
    };
    report(
        Some(target_addr),
        to_target.load(Ordering::Relaxed),
        to_client.load(Ordering::Relaxed),
        end,
    )
}

/// Sleeps until `deadline`, or for ever when there is none.
async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Copies one direction until EOF, then shuts down the write half of the
/// other side so the EOF reaches it. `sides` names (reading side, writing
/// side) for error reports.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    sides: (Side, Side),
    moved: &AtomicU64,
    activity: &Activity,
) -> Result<(), PumpError> {
    let (read_side, write_side) = sides;
    let mut buffer = vec![0u8; COPY_BUFFER_SIZE];
    loop {
        let count = from.read(&mut buffer).await.map_err(|error| PumpError {
            side: read_side,
            error,
        })?;
        activity.touch();
        let Some(chunk) = buffer.get(..count) else {
            // A reader never reports more than the buffer holds.
            return Err(PumpError {
                side: read_side,
                error: io::Error::other("read reported more bytes than the buffer holds"),
            });
        };
        if chunk.is_empty() {
            return to.shutdown().await.map_err(|error| PumpError {
                side: write_side,
                error,
            });
        }
        to.write_all(chunk).await.map_err(|error| PumpError {
            side: write_side,
            error,
        })?;
        moved.fetch_add(count as u64, Ordering::Relaxed);
        activity.touch();
    }
}

/// Raises the soft open-files limit so `max_connections` relayed
/// connections (two descriptors each) fit, up to the hard limit; warns if
/// they cannot.
pub fn raise_open_files_limit(max_connections: usize) {
    // Two sockets per connection, plus room for the listener, the runtime
    // and the standard streams.
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(64);
    match tbevents_cli::limits::raise_open_files(Some(wanted)) {
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
        Ok(limit) if limit.now < wanted => tracing::warn!(
            open_files_limit = limit.now,
            needed = wanted,
            "the hard open-files limit is too low for --max-connections; connections beyond it will fail to be accepted (raise LimitNOFILE or ulimit -Hn)"
        ),
        Ok(limit) => tracing::debug!(from = limit.before, to = limit.now, "open-files limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_names_addresses_and_bracketed_ipv6() {
        let t = Target::parse("ops.example.net:2917").unwrap();
        assert_eq!((t.host(), t.port()), ("ops.example.net", 2917));
        assert_eq!(t.to_string(), "ops.example.net:2917");
        let t = Target::parse("10.0.0.1:1").unwrap();
        assert_eq!((t.host(), t.port()), ("10.0.0.1", 1));
        let t = Target::parse("[::1]:2917").unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 2917));
        assert_eq!(t.to_string(), "[::1]:2917");
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (text, needle) in [
            ("ops", "port is missing"),
            ("ops:", "not a number"),
            ("ops:70000", "not a number"),
            ("ops:0", "port 0"),
            (":2917", "host is empty"),
            ("::1:2917", "brackets"),
            ("[::1", "not closed"),
            ("[::1]2917", "port is missing"),
            ("a b:2917", "spaces"),
        ] {
            let error = Target::parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
            assert!(error.contains("HOST:PORT"), "{text:?}: {error}");
        }
    }

    #[test]
    fn rejection_lines_are_limited_per_second_and_count_the_rest() {
        let mut log = RejectionLog::default();
        let start = Instant::now();
        for _ in 0..REJECTION_LINES_PER_SECOND {
            assert_eq!(log.allow(start), Some(0));
        }
        assert_eq!(log.allow(start), None);
        assert_eq!(log.allow(start + Duration::from_millis(500)), None);
        assert_eq!(log.allow(start + Duration::from_secs(1)), Some(2));
        assert_eq!(log.allow(start + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn end_keywords_are_distinct() {
        let ends = [
            ConnectionEnd::Completed,
            ConnectionEnd::LingerExpired {
                first: Side::Client,
            },
            ConnectionEnd::IdleTimeout,
            ConnectionEnd::ResolveFailed(String::new()),
            ConnectionEnd::ConnectFailed(String::new()),
            ConnectionEnd::ConnectTimeout,
            ConnectionEnd::Error {
                side: Side::Client,
                error: String::new(),
            },
            ConnectionEnd::Error {
                side: Side::Target,
                error: String::new(),
            },
            ConnectionEnd::Shutdown,
            ConnectionEnd::OverLimit,
        ];
        let keywords: std::collections::HashSet<_> = ends.iter().map(|e| e.keyword()).collect();
        assert_eq!(keywords.len(), ends.len());
    }
}
