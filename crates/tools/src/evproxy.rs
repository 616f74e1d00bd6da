//! `evproxy`, the per-node event proxy: one upstream connection to the
//! event server shared by every agent on a node.
//!
//! Each experimental node runs its own router (`eventd` on localhost) for
//! its agents. `evproxy` joins the two:
//!
//! - **upstream → local**: it subscribes on the event server to this
//!   experiment's fired events that are broadcast or addressed to this
//!   node,
//!   ` ( EXPT == "pid/eid" ) && ( HOST == "*" || HOST == "<myaddr>" ) && SCHEDULER == 0 `,
//!   and republishes each one to the local router;
//! - **local → upstream**: it subscribes on the local router to this
//!   experiment's scheduler requests, ` ( EXPT == "pid/eid" ) && SCHEDULER == 1 `
//!   (for example a program agent's COMPLETE), and republishes each one to
//!   the event server, where the experiment's scheduler picks it up.
//!
//! Both expressions are built with the event library's tuple function
//! ([`AddressTuple::subscription_expression`]), so they are exactly what
//! any other tbevents component would subscribe with.
//!
//! # Unchanged, unsigned, unchecked
//!
//! Both connections are registered without a key. A handle without a key
//! neither signs nor checks, and notifications are republished with
//! [`EventHandle::notify_raw`], attribute for attribute: the producer's
//! `__hmac__` travels untouched and the final receiver checks it against
//! the experiment's key. The proxy never needs the key and cannot forge or
//! break a signature.
//!
//! # No loops
//!
//! Upstream → local carries only `SCHEDULER == 0` and local → upstream
//! only `SCHEDULER == 1`, and the proxy never changes `SCHEDULER`. What it
//! publishes on one router therefore never matches its own subscription on
//! that router, and a `SCHEDULER == 0` event published on the local router
//! is never sent upstream. The one configuration that would loop — the
//! "local" and "upstream" routers being the same router — is refused at
//! start when their addresses coincide ([`ProxyError::SameRouter`]).
//!
//! # HOST on scheduler requests
//!
//! The later original also required `HOST == "*"` on the local
//! subscription. This proxy does not: the scheduler ignores `HOST` on a
//! request (it rewrites it from its agent table), so the extra clause
//! could only drop an agent's request silently. Every scheduler request
//! for this experiment made on the node goes upstream.
//!
//! # Connections
//!
//! Both connections use the client library's automatic reconnect: a
//! router that is down at start or restarts later is retried every
//! `retry_interval` for ever, and the subscriptions are re-established on
//! the new connection without restarting the proxy. Events published
//! while a connection is down are lost (routers do not store them);
//! forwarding failures are counted and logged. TCP keep-alive probes (via
//! the client's TestConn) find a silently vanished event server.
//!
//! # Logging
//!
//! One line at start (addresses, expressions), a summary line with the
//! counts every `stats_interval` and one at exit, a line when a connection
//! is lost and when it is back, and with `-d` one line per forwarded event
//! (`EVENTTYPE OBJTYPE OBJNAME`, as the original printed).

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use elvin_client::{ConnectOptions, ConnectionEvent, Reconnect};
use elvin_proto::ElvinUri;
use tbevents_event::sender::{self, SenderSource};
use tbevents_event::{
    AddressTuple, EventError, EventHandle, EventSubscription, RegisterOptions, server_uri,
};
use tokio::time::Instant;

/// The local router when `-l` is not given.
pub const DEFAULT_LOCAL_SERVER: &str = "localhost";

/// Time between summary lines when `--stats-interval` is not given.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(60);

/// Time between reconnect attempts when `--retry-interval` is not given.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Longest `pid/eid` accepted, in bytes.
pub const MAX_EXPERIMENT_LENGTH: usize = 256;

/// Silence on a connection before the client probes the router.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Time allowed for each router to confirm the disconnect at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Least time between two "could not forward" warnings of one direction.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Which way an event is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the event server to the node's router (fired events).
    ToLocal,
    /// From the node's router to the event server (scheduler requests).
    ToUpstream,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ToLocal => "upstream->local",
            Direction::ToUpstream => "local->upstream",
        })
    }
}

/// Why the proxy could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `-e` is not a usable `pid/eid`.
    #[error("bad experiment {given:?}: {reason}; give it as pid/eid, for example testbed/myexp")]
    BadExperiment {
        /// The text given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A router address could not be used.
    #[error("bad {role} router {given:?}: {reason}")]
    BadRouter {
        /// `upstream` or `local`.
        role: &'static str,
        /// The text given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `-i` is not an IPv4 address.
    #[error(
        "bad node address {given:?}: give this node's control-network IPv4 address (the HOST value events for this node carry), for example 10.1.1.2"
    )]
    BadAddress {
        /// The text given.
        given: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    BadSetting(String),
    /// The event server's configuration could not be read.
    #[error(transparent)]
    Config(#[from] tbevents_event::config::ConfigError),
    /// The upstream and local routers resolve to the same address.
    #[error(
        "the upstream router {upstream} and the local router {local} are the same ({address}): forwarding would loop; point -l at the node's own router"
    )]
    SameRouter {
        /// The upstream URI.
        upstream: String,
        /// The local URI.
        local: String,
        /// The address they share.
        address: SocketAddr,
    },
    /// No address for this node could be found.
    #[error(
        "cannot determine this node's address (no route to {upstream}, no IPv4 address for the host name, no /var/emulab/boot/myip): give it with -i"
    )]
    NoNodeAddress {
        /// The upstream URI.
        upstream: String,
    },
    /// Connecting or subscribing failed in a way retrying cannot fix.
    #[error("{role} router {uri}: {source}")]
    Router {
        /// `upstream` or `local`.
        role: &'static str,
        /// The router's URI.
        uri: String,
        /// What failed.
        #[source]
        source: EventError,
    },
    /// A subscription ended for good (for example the router refused it
    /// again after a reconnect).
    #[error(
        "the {direction} subscription ended: {reason}; restart evproxy (or let the init system do it)"
    )]
    SubscriptionEnded {
        /// The direction it fed.
        direction: Direction,
        /// Why, as far as the client library knows.
        reason: String,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
}

/// Checks a `pid/eid` and returns it unchanged.
///
/// Exactly one `/`, both parts non-empty, at most
/// [`MAX_EXPERIMENT_LENGTH`] bytes, and no spaces, commas, quotes,
/// backslashes or control characters: the tuple function splits values on
/// spaces and commas, so `a/b,c/d` would silently subscribe to two
/// experiments.
pub fn validate_experiment(text: &str) -> Result<String, ProxyError> {
    let bad = |reason: &str| ProxyError::BadExperiment {
        given: text.to_owned(),
        reason: reason.to_owned(),
    };
    if text.len() > MAX_EXPERIMENT_LENGTH {
        return Err(bad(&format!(
            "it is longer than {MAX_EXPERIMENT_LENGTH} bytes"
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '"' | '\\'))
    {
        return Err(bad(&format!("it contains {c:?}")));
    }
    let mut parts = text.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(pid), Some(eid), None) if !pid.is_empty() && !eid.is_empty() => Ok(text.to_owned()),
        (_, _, Some(_)) => Err(bad("it has more than one /")),
        (_, Some(_), None) => Err(bad("the pid or the eid is empty")),
        _ => Err(bad("the / between pid and eid is missing")),
    }
}

/// The upstream subscription's tuple: this experiment's fired events
/// (`SCHEDULER` 0) for everyone (`HOST` `*`) or for `node`.
pub fn upstream_tuple(experiment: &str, node: Ipv4Addr) -> AddressTuple {
    AddressTuple::new()
        .expt(experiment)
        .host(format!("*,{node}"))
        .scheduler(0)
}

/// The local subscription's tuple: this experiment's scheduler requests
/// (`SCHEDULER` 1), whatever their `HOST`.
pub fn local_tuple(experiment: &str) -> AddressTuple {
    AddressTuple::new().expt(experiment).scheduler(1)
}

/// Turns a router given on the command line into an Elvin URI: `HOST`,
/// `HOST:PORT`, `[IPV6]:PORT`, a bare IPv6 address, or an `elvin:` URI.
/// `port` (from `-p`) applies to a value without one.
pub fn router_uri(
    role: &'static str,
    value: &str,
    port: Option<u16>,
) -> Result<String, ProxyError> {
    let bad = |reason: &str| ProxyError::BadRouter {
        role,
        given: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value.starts_with("elvin:") {
        if port.is_some() {
            return Err(bad("give the port inside the URI, not with -p"));
        }
        ElvinUri::parse(value).map_err(|error| bad(&error.to_string()))?;
        return Ok(value.to_owned());
    }
    let parse_port = |text: &str| -> Result<u16, ProxyError> {
        match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("the port is not a number from 1 to 65535")),
            Ok(port) => Ok(port),
        }
    };
    let (host, embedded_port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address opened with [ is not closed with ]"))?;
        match after {
            "" => (host, None),
            _ => {
                let text = after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("only :PORT may follow the ]"))?;
                (host, Some(parse_port(text)?))
            }
        }
    } else {
        match value.split_once(':') {
            Some((host, text)) if !text.contains(':') => (host, Some(parse_port(text)?)),
            // Several colons: a bare IPv6 address.
            _ => (value, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ';' | '"'))
    {
        return Err(bad(
            "the host contains spaces, control characters, / ; or \"",
        ));
    }
    let port = match (embedded_port, port) {
        (Some(_), Some(_)) => return Err(bad("a port is given both in the value and with -p")),
        (embedded, flag) => embedded.or(flag),
    };
    let uri = server_uri(host, port);
    ElvinUri::parse(&uri).map_err(|error| bad(&error.to_string()))?;
    Ok(uri)
}

/// Everything that decides what the proxy does.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The event server's URI.
    pub upstream: String,
    /// The node-local router's URI.
    pub local: String,
    /// The experiment, `pid/eid` (see [`validate_experiment`]).
    pub experiment: String,
    /// This node's address as events carry it in `HOST`; `None` finds it
    /// (see [`node_address`]).
    pub node_address: Option<Ipv4Addr>,
    /// Log one line per forwarded event.
    pub log_each_event: bool,
    /// Time between summary lines; `None` logs only the final one.
    pub stats_interval: Option<Duration>,
    /// Time between reconnect attempts.
    pub retry_interval: Duration,
}

/// Forwarding counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardCounts {
    /// Events republished on the local router.
    pub to_local: u64,
    /// Events that could not be republished on the local router.
    pub to_local_failed: u64,
    /// Scheduler requests republished on the event server.
    pub to_upstream: u64,
    /// Scheduler requests that could not be republished upstream.
    pub to_upstream_failed: u64,
    /// Events discarded because the proxy fell behind (its receive queues
    /// were full).
    pub dropped: u64,
}

/// The live counters behind [`ForwardCounts`].
#[derive(Default)]
struct Counters {
    to_local: AtomicU64,
    to_local_failed: AtomicU64,
    to_upstream: AtomicU64,
    to_upstream_failed: AtomicU64,
    dropped_to_local: AtomicU64,
    dropped_to_upstream: AtomicU64,
}

impl Counters {
    fn forwarded(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::ToLocal => &self.to_local,
            Direction::ToUpstream => &self.to_upstream,
        }
    }

    fn failed(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::ToLocal => &self.to_local_failed,
            Direction::ToUpstream => &self.to_upstream_failed,
        }
    }

    fn dropped(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::ToLocal => &self.dropped_to_local,
            Direction::ToUpstream => &self.dropped_to_upstream,
        }
    }

    fn snapshot(&self) -> ForwardCounts {
        ForwardCounts {
            to_local: self.to_local.load(Ordering::Relaxed),
            to_local_failed: self.to_local_failed.load(Ordering::Relaxed),
            to_upstream: self.to_upstream.load(Ordering::Relaxed),
            to_upstream_failed: self.to_upstream_failed.load(Ordering::Relaxed),
            dropped: self
                .dropped_to_local
                .load(Ordering::Relaxed)
                .saturating_add(self.dropped_to_upstream.load(Ordering::Relaxed)),
        }
    }
}

fn log_counts(message: &str, counts: ForwardCounts) {
    tracing::info!(
        upstream_to_local = counts.to_local,
        upstream_to_local_failed = counts.to_local_failed,
        local_to_upstream = counts.to_upstream,
        local_to_upstream_failed = counts.to_upstream_failed,
        dropped = counts.dropped,
        "{message}"
    );
}

/// This node's address for the `HOST` clause: `explicit` if given, else
/// the local address of the route to the event server (the address the
/// server sees the connection come from), else the host name's IPv4
/// address, else `/var/emulab/boot/myip`.
pub async fn node_address(
    upstream: &ElvinUri,
    explicit: Option<Ipv4Addr>,
) -> Option<(Ipv4Addr, SenderSource)> {
    if let Some(address) = explicit {
        return Some((address, SenderSource::Explicit));
    }
    let (host, port) = (upstream.host.clone(), upstream.port);
    let found = tokio::task::spawn_blocking(move || sender::discover(&host, port))
        .await
        .ok()?;
    match found.source {
        SenderSource::Unknown => None,
        source => Some((found.address, source)),
    }
}

/// How the node address was found, for the start-up line.
fn address_source(source: SenderSource) -> &'static str {
    match source {
        SenderSource::Explicit => "-i",
        SenderSource::RouteToRouter => "route to the event server",
        SenderSource::Hostname => "host name",
        SenderSource::NodeFile => "/var/emulab/boot/myip",
        SenderSource::Unknown => "unknown",
    }
}

/// The first address both routers resolve to, if any (a proxy between a
/// router and itself would loop). Names that do not resolve yet are not
/// an error here: the connection attempts will report them.
async fn shared_address(upstream: &ElvinUri, local: &ElvinUri) -> Option<SocketAddr> {
    let lookup = |uri: &ElvinUri| {
        let (host, port) = (uri.host.clone(), uri.port);
        tokio::task::spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>)
                .unwrap_or_default()
        })
    };
    let (upstream_addresses, local_addresses) = tokio::join!(lookup(upstream), lookup(local));
    let (upstream_addresses, local_addresses) = (upstream_addresses.ok()?, local_addresses.ok()?);
    upstream_addresses
        .into_iter()
        .find(|address| local_addresses.contains(address))
}

/// Registers without a key, with reconnect for ever.
async fn register(
    role: &'static str,
    uri: &str,
    node: Ipv4Addr,
    retry_interval: Duration,
) -> Result<EventHandle, ProxyError> {
    let options = RegisterOptions::new()
        .retry(Reconnect {
            retry_interval,
            max_retries: None,
        })
        .connect_options(
            ConnectOptions::new()
                .keepalive(KEEPALIVE_IDLE)
                .close_timeout(CLOSE_TIMEOUT),
        )
        .sender(node);
    EventHandle::register_with(uri, options)
        .await
        .map_err(|source| ProxyError::Router {
            role,
            uri: uri.to_owned(),
            source,
        })
}

/// Logs a connection's losses and recoveries, naming its role and what
/// stops while it is down.
async fn watch_connection(role: &'static str, paused: Direction, handle: EventHandle) {
    let mut events = handle.client().events();
    drop(handle);
    loop {
        match events.recv().await {
            Ok(ConnectionEvent::Lost { error }) => tracing::warn!(
                %error,
                "{role} router connection lost; {paused} forwarding is paused until it is back"
            ),
            Ok(ConnectionEvent::Reconnected {
                resubscribed,
                failed,
                ..
            }) => tracing::info!(
                resubscribed,
                failed,
                "{role} router connection re-established; subscription renewed"
            ),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Limits "could not forward" warnings to one per
/// [`FAILURE_LOG_INTERVAL`], counting the rest.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl FailureLog {
    fn report(&mut self, direction: Direction, error: &EventError) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < FAILURE_LOG_INTERVAL)
        {
            self.unlogged = self.unlogged.saturating_add(1);
            return;
        }
        self.last = Some(now);
        let unlogged = std::mem::take(&mut self.unlogged);
        tracing::warn!(
            direction = %direction,
            %error,
            failures_not_logged_since_last = unlogged,
            "could not forward an event; it is lost"
        );
    }
}

/// Forwards every event of `subscription` to `destination` until the
/// subscription ends, and says why it ended.
async fn forward(
    direction: Direction,
    subscription: &mut EventSubscription,
    destination: &EventHandle,
    counters: &Counters,
    log_each_event: bool,
) -> ProxyError {
    let mut failures = FailureLog::default();
    while let Some(event) = subscription.recv().await {
        counters
            .dropped(direction)
            .store(subscription.dropped(), Ordering::Relaxed);
        match destination.notify_raw(event.attributes()).await {
            Ok(()) => {
                counters
                    .forwarded(direction)
                    .fetch_add(1, Ordering::Relaxed);
                if log_each_event {
                    tracing::info!(
                        direction = %direction,
                        "{} {} {}",
                        event.eventtype().unwrap_or("-"),
                        event.objtype().unwrap_or("-"),
                        event.objname().unwrap_or("-"),
                    );
                }
            }
            Err(error) => {
                counters.failed(direction).fetch_add(1, Ordering::Relaxed);
                failures.report(direction, &error);
            }
        }
    }
    ProxyError::SubscriptionEnded {
        direction,
        reason: subscription
            .end_reason()
            .map_or_else(|| "the connection was closed".to_owned(), |e| e.to_string()),
    }
}

/// Logs the counts every `interval` (never returns; with no interval it
/// just waits).
async fn log_periodically(counters: &Counters, interval: Option<Duration>) {
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        log_counts("forwarded so far", counters.snapshot());
    }
}

/// Runs the proxy until `shutdown` completes (returning the counts) or a
/// subscription ends for good.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<ForwardCounts, ProxyError> {
    tokio::pin!(shutdown);
    let upstream_uri =
        ElvinUri::parse(&config.upstream).map_err(|error| ProxyError::BadRouter {
            role: "upstream",
            given: config.upstream.clone(),
            reason: error.to_string(),
        })?;
    let local_uri = ElvinUri::parse(&config.local).map_err(|error| ProxyError::BadRouter {
        role: "local",
        given: config.local.clone(),
        reason: error.to_string(),
    })?;
    if let Some(address) = shared_address(&upstream_uri, &local_uri).await {
        return Err(ProxyError::SameRouter {
            upstream: config.upstream.clone(),
            local: config.local.clone(),
            address,
        });
    }
    let (node, source) = node_address(&upstream_uri, config.node_address)
        .await
        .ok_or_else(|| ProxyError::NoNodeAddress {
            upstream: config.upstream.clone(),
        })?;
    let down_tuple = upstream_tuple(&config.experiment, node);
    let up_tuple = local_tuple(&config.experiment);
    tracing::info!(
        experiment = %config.experiment,
        upstream = %config.upstream,
        local = %config.local,
        node_address = %node,
        node_address_from = address_source(source),
        "evproxy starting"
    );

    let connecting = async {
        tokio::try_join!(
            register("upstream", &config.upstream, node, config.retry_interval),
            register("local", &config.local, node, config.retry_interval),
        )
    };
    let (upstream, local) = tokio::select! {
        connected = connecting => connected?,
        () = &mut shutdown => {
            log_counts("evproxy exiting before it connected", ForwardCounts::default());
            return Ok(ForwardCounts::default());
        }
    };
    let subscribe = |role: &'static str, handle: &EventHandle, tuple: &AddressTuple| {
        let (handle, tuple, uri) = (
            handle.clone(),
            tuple.clone(),
            handle.client().uri().to_string(),
        );
        async move {
            handle
                .subscribe(&tuple)
                .await
                .map_err(|source| ProxyError::Router { role, uri, source })
        }
    };
    let (mut from_upstream, mut from_local) = tokio::try_join!(
        subscribe("upstream", &upstream, &down_tuple),
        subscribe("local", &local, &up_tuple),
    )?;
    let watchers = [
        tokio::spawn(watch_connection(
            "upstream",
            Direction::ToLocal,
            upstream.clone(),
        )),
        tokio::spawn(watch_connection(
            "local",
            Direction::ToUpstream,
            local.clone(),
        )),
    ];
    tracing::info!(
        upstream_subscription = %from_upstream.expression().unwrap_or_default(),
        local_subscription = %from_local.expression().unwrap_or_default(),
        "forwarding"
    );

    let counters = Counters::default();
    let outcome = tokio::select! {
        error = forward(Direction::ToLocal, &mut from_upstream, &local, &counters, config.log_each_event) => Err(error),
        error = forward(Direction::ToUpstream, &mut from_local, &upstream, &counters, config.log_each_event) => Err(error),
        () = log_periodically(&counters, config.stats_interval) => Ok(()),
        () = &mut shutdown => Ok(()),
    };
    let counts = counters.snapshot();
    log_counts("evproxy exiting", counts);
    for watcher in watchers {
        watcher.abort();
    }
    drop((from_upstream, from_local));
    // Best effort: the routers drop the connections anyway when the
    // process exits.
    let _ = tokio::join!(upstream.unregister(), local.unregister());
    outcome.map(|()| counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_the_originals() {
        let node = Ipv4Addr::new(10, 1, 1, 2);
        assert_eq!(
            upstream_tuple("p/e", node)
                .subscription_expression()
                .unwrap(),
            r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.1.1.2" ) && SCHEDULER == 0 "#
        );
        assert_eq!(
            local_tuple("p/e").subscription_expression().unwrap(),
            r#" ( EXPT == "p/e" ) && SCHEDULER == 1 "#
        );
    }

    #[test]
    fn experiments_must_be_one_pid_and_one_eid() {
        assert_eq!(
            validate_experiment("testbed/my-exp_1").unwrap(),
            "testbed/my-exp_1"
        );
        for (bad, needle) in [
            ("testbed", "missing"),
            ("/eid", "empty"),
            ("pid/", "empty"),
            ("a/b/c", "more than one"),
            ("a/b,c/d", "','"),
            ("a/b c", "' '"),
            ("a/b\"", "'\"'"),
            ("a/b\n", "'\\n'"),
        ] {
            let error = validate_experiment(bad).unwrap_err().to_string();
            assert!(error.contains(needle), "{bad:?}: {error}");
            assert!(error.contains("pid/eid"), "{bad:?}: {error}");
        }
        let long = format!("p/{}", "e".repeat(MAX_EXPERIMENT_LENGTH));
        assert!(validate_experiment(&long).is_err());
    }

    #[test]
    fn routers_accept_hosts_ports_ipv6_and_uris() {
        let ok = |value: &str, port: Option<u16>| router_uri("local", value, port).unwrap();
        assert_eq!(ok("localhost", None), "elvin://localhost");
        assert_eq!(ok("event-server", Some(2927)), "elvin://event-server:2927");
        assert_eq!(ok("127.0.0.1:16505", None), "elvin://127.0.0.1:16505");
        assert_eq!(ok("[::1]:2917", None), "elvin://[::1]:2917");
        assert_eq!(ok("[::1]", Some(5)), "elvin://[::1]:5");
        assert_eq!(ok("::1", None), "elvin://[::1]");
        assert_eq!(ok("elvin://ops:2917", None), "elvin://ops:2917");
        for (value, port, needle) in [
            ("ops:0", None, "port"),
            ("ops:x", None, "port"),
            ("ops:2917", Some(1), "both"),
            ("elvin://ops", Some(1), "inside the URI"),
            ("", None, "empty"),
            ("a b", None, "spaces"),
            ("[::1", None, "not closed"),
            ("[::1]x", None, ":PORT"),
            ("elvin:nonsense", None, ""),
        ] {
            let error = router_uri("local", value, port).unwrap_err().to_string();
            assert!(error.contains(needle), "{value:?}: {error}");
            assert!(error.contains("local router"), "{value:?}: {error}");
        }
    }

    #[test]
    fn counters_add_up_by_direction() {
        let counters = Counters::default();
        counters
            .forwarded(Direction::ToLocal)
            .fetch_add(3, Ordering::Relaxed);
        counters
            .forwarded(Direction::ToUpstream)
            .fetch_add(1, Ordering::Relaxed);
        counters
            .failed(Direction::ToLocal)
            .fetch_add(2, Ordering::Relaxed);
        counters
            .dropped(Direction::ToLocal)
            .store(4, Ordering::Relaxed);
        counters
            .dropped(Direction::ToUpstream)
            .store(1, Ordering::Relaxed);
        assert_eq!(
            counters.snapshot(),
            ForwardCounts {
                to_local: 3,
                to_local_failed: 2,
                to_upstream: 1,
                to_upstream_failed: 0,
                dropped: 5,
            }
        );
    }
}
