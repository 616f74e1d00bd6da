//! The running router: listeners, reloads, statistics and shutdown, as a
//! library that knows nothing of signals or command lines.
//!
//! The shape is mini-redis's: [`Router::bind`] takes validated
//! [`Settings`] and binds every endpoint first (so a port in use fails
//! start-up with a clear error rather than leaving a half-started router,
//! and port 0 works: [`Router::local_addrs`] says what was bound); then
//! [`Router::run`] spawns one accept loop per endpoint, the optional
//! metrics listener and the statistics logger, and serves until the
//! `shutdown` future the caller passes completes. Then it stops accepting,
//! tells every connection to send Disconn(1) and flush, waits for them (at
//! most `shutdown_timeout` plus a second) and returns.
//!
//! A [`Reloader`] (from [`Router::reloader`]) applies new settings to the
//! running router: the log filter, the per-connection limits, max
//! connections and the idle timeout for connections accepted from then on,
//! and the TLS certificate, key and client CA for handshakes from then on.
//! Listen endpoints, worker threads, the metrics listener, the statistics
//! interval and the log format are fixed at start-up.
//!
//! `eventd`'s `main` maps SIGTERM/SIGINT to the shutdown future and SIGHUP
//! to re-reading the configuration file and calling the reloader; tests
//! run a router in-process with a oneshot as the shutdown future.
//!
//! The connection registry is [`ServerContext`]: the routing table, the
//! counters, the live-connection count and the shutdown signal every
//! connection task watches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use elvin_proto::uri::{ElvinUri, Transport};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::{ConnectionLimits, Settings};
use crate::connection::{LiveConnections, serve_tcp, serve_tls};
use crate::metrics::{self, Metrics};
use crate::tls::build_acceptor;

/// Applies a new log filter directive; returns an explanation on failure.
pub use tbevents_cli::LogReloader;

/// A routing domain: the endpoints that share one routing table.
/// Notifications never cross from one domain to another, so one process can
/// serve the public port (2917) and the control server's internal bus
/// (2927) without node users seeing or injecting control events.
#[derive(Debug)]
pub struct Domain {
    /// The domain's name (a listen URI's `;domain=`, else the URI).
    pub name: String,
    /// Its routing table.
    pub broker: Arc<Broker>,
}

/// State shared by the listeners and every connection task.
pub struct ServerContext {
    /// The routing domains, in the order their first endpoint was given.
    pub domains: Vec<Arc<Domain>>,
    /// Open connections per source address, when capped.
    per_source: parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max_per_source: AtomicUsize,
    /// Bytes of partially received packets held by all connections, and
    /// the most allowed.
    partial_bytes: AtomicUsize,
    partial_budget: AtomicUsize,
    /// Longest a packet may stay incomplete.
    frame_timeout: RwLock<Duration>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    limits: RwLock<Arc<ConnectionLimits>>,
    idle_timeout: RwLock<Duration>,
    shutdown_timeout: Duration,
    max_connections: AtomicUsize,
    next_connection_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    live: Arc<LiveConnections>,
    tls: RwLock<Option<tokio_rustls::TlsAcceptor>>,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("limits", &*self.limits.read())
            .field("live", &self.live.count())
            .finish_non_exhaustive()
    }
}

impl ServerContext {
    /// A context for `settings` with an empty routing table.
    pub fn new(settings: &Settings) -> Arc<ServerContext> {
        let metrics = Arc::new(Metrics::default());
        elvin_sublang::RegexCache::global().set_budget(settings.limits.regex_bytes_total);
        let (shutdown, _) = watch::channel(false);
        let mut domains: Vec<Arc<Domain>> = Vec::new();
        for endpoint in &settings.endpoints {
            if !domains.iter().any(|d| d.name == endpoint.domain) {
                let broker = Broker::new(Arc::clone(&metrics));
                broker.set_evaluation_budget(settings.notification_time_budget);
                domains.push(Arc::new(Domain {
                    name: endpoint.domain.clone(),
                    broker,
                }));
            }
        }
        if domains.is_empty() {
            domains.push(Arc::new(Domain {
                name: "default".into(),
                broker: Broker::new(Arc::clone(&metrics)),
            }));
        }
        Arc::new(ServerContext {
            domains,
            per_source: parking_lot::Mutex::new(std::collections::HashMap::new()),
            max_per_source: AtomicUsize::new(settings.max_connections_per_source.unwrap_or(0)),
            partial_bytes: AtomicUsize::new(0),
            partial_budget: AtomicUsize::new(settings.partial_frame_budget),
            frame_timeout: RwLock::new(settings.frame_timeout),
            metrics,
            limits: RwLock::new(Arc::new(settings.limits.clone())),
            idle_timeout: RwLock::new(settings.idle_timeout),
            shutdown_timeout: settings.shutdown_timeout,
            max_connections: AtomicUsize::new(settings.max_connections),
            next_connection_id: AtomicU64::new(1),
            shutdown,
            live: Arc::new(LiveConnections::default()),
            tls: RwLock::new(None),
        })
    }

    /// The domain named `name`, if there is one.
    pub fn domain(&self, name: &str) -> Option<&Arc<Domain>> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Counts a connection from `source`; `false` (and nothing counted)
    /// when that address is at its cap.
    fn admit_source(&self, source: std::net::IpAddr) -> bool {
        let cap = self.max_per_source.load(Ordering::Relaxed);
        if cap == 0 {
            return true;
        }
        let mut counts = self.per_source.lock();
        let count = counts.entry(source).or_insert(0);
        if *count >= cap {
            return false;
        }
        *count += 1;
        true
    }

    /// Un-counts a connection counted by [`Self::admit_source`].
    fn release_source(&self, source: std::net::IpAddr) {
        let mut counts = self.per_source.lock();
        if let Some(count) = counts.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&source);
            }
        }
    }

    /// Records that a connection now holds `now` bytes of an incomplete
    /// packet instead of `before`; `false` when that takes the router past
    /// its budget for partial packets (the caller closes the connection and
    /// then releases what it held with `now = 0`).
    pub fn charge_partial(&self, before: usize, now: usize) -> bool {
        if now >= before {
            let total = self.partial_bytes.fetch_add(now - before, Ordering::AcqRel) + now - before;
            now == before || total <= self.partial_budget.load(Ordering::Relaxed)
        } else {
            self.partial_bytes.fetch_sub(before - now, Ordering::AcqRel);
            true
        }
    }

    /// Longest a packet may stay incomplete.
    pub fn frame_timeout(&self) -> Duration {
        *self.frame_timeout.read()
    }

    /// The limits for a connection starting now.
    pub fn limits(&self) -> Arc<ConnectionLimits> {
        Arc::clone(&self.limits.read())
    }

    /// The idle timeout for a connection starting now.
    pub fn idle_timeout(&self) -> Duration {
        *self.idle_timeout.read()
    }

    /// Time allowed to flush a closing connection.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// A fresh connection id (for logs).
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A receiver that turns true when the router shuts down.
    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection to send Disconn(1) and close.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn apply(&self, settings: &Settings) {
        self.partial_budget
            .store(settings.partial_frame_budget, Ordering::Relaxed);
        *self.frame_timeout.write() = settings.frame_timeout;
        elvin_sublang::RegexCache::global().set_budget(settings.limits.regex_bytes_total);
        *self.limits.write() = Arc::new(settings.limits.clone());
        *self.idle_timeout.write() = settings.idle_timeout;
        self.max_connections
            .store(settings.max_connections, Ordering::Relaxed);
        self.max_per_source.store(
            settings.max_connections_per_source.unwrap_or(0),
            Ordering::Relaxed,
        );
        for domain in &self.domains {
            domain
                .broker
                .set_evaluation_budget(settings.notification_time_budget);
        }
    }
}

/// Resolves a listen URI to socket addresses.
async fn resolve(uri: &ElvinUri) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((uri.host.as_str(), uri.port))
        .await
        .with_context(|| format!("cannot resolve listen address {uri}"))?
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("listen address {uri} resolves to nothing");
    }
    Ok(addrs)
}

/// A bound endpoint.
struct Endpoint {
    listener: TcpListener,
    uri: ElvinUri,
    tls: bool,
    domain: Arc<Domain>,
    /// Most connections on this endpoint, and how many are open.
    max_connections: usize,
    open: Arc<AtomicUsize>,
}

/// Un-counts an endpoint's (and a source's) connection when its task ends.
struct EndpointGuard {
    open: Arc<AtomicUsize>,
    source: Option<(Arc<ServerContext>, std::net::IpAddr)>,
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some((ctx, source)) = &self.source {
            ctx.release_source(*source);
        }
    }
}

/// Accepts connections on one endpoint until shutdown.
async fn accept_loop(endpoint: Endpoint, ctx: Arc<ServerContext>) {
    let mut shutdown = ctx.shutdown_receiver();
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = endpoint.listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off rather than spin.
                tracing::warn!(endpoint = %endpoint.uri, %error, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Each endpoint has its own limit, so a flood on the public port
        // cannot lock out the control bus.
        let refusal = if endpoint.open.load(Ordering::Acquire) >= endpoint.max_connections {
            Some(
                "this endpoint's max_connections is reached (raise max_connections, or ;max_connections=N on the listen URI)",
            )
        } else if !ctx.admit_source(peer.ip()) {
            Some("this address has max_connections_per_source connections open")
        } else {
            None
        };
        if let Some(reason) = refusal {
            metrics::add(&ctx.metrics.connections_refused, 1);
            let now = Instant::now();
            if last_refusal_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                last_refusal_log = Some(now);
                tracing::warn!(
                    %peer,
                    endpoint = %endpoint.uri,
                    domain = %endpoint.domain.name,
                    refused_total = ctx.metrics.connections_refused.load(Ordering::Relaxed),
                    "refusing connection: {reason}"
                );
            }
            drop(stream);
            continue;
        }
        endpoint.open.fetch_add(1, Ordering::AcqRel);
        let counted_source =
            (ctx.max_per_source.load(Ordering::Relaxed) > 0).then(|| (Arc::clone(&ctx), peer.ip()));
        let endpoint_guard = EndpointGuard {
            open: Arc::clone(&endpoint.open),
            source: counted_source,
        };
        let tls = if endpoint.tls {
            match ctx.tls.read().clone() {
                Some(acceptor) => Some(acceptor),
                None => {
                    // Settings validation makes this unreachable; never
                    // fall back to plain TCP on a TLS endpoint.
                    tracing::error!(%peer, endpoint = %endpoint.uri, "no TLS configuration; closing");
                    continue;
                }
            }
        } else {
            None
        };
        let guard = ctx.live.enter();
        metrics::add(&ctx.metrics.connections_total, 1);
        metrics::add(&ctx.metrics.connections_current, 1);
        let ctx = Arc::clone(&ctx);
        let domain = Arc::clone(&endpoint.domain);
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => serve_tls(stream, peer, acceptor, Arc::clone(&ctx), domain).await,
                None => serve_tcp(stream, peer, Arc::clone(&ctx), domain).await,
            }
            metrics::sub(&ctx.metrics.connections_current, 1);
            drop(endpoint_guard);
            drop(guard);
        });
    }
}

async fn bind_endpoints(settings: &Settings, ctx: &ServerContext) -> anyhow::Result<Vec<Endpoint>> {
    let mut endpoints = Vec::new();
    for (index, uri) in settings.listen.iter().enumerate() {
        let spec = settings.endpoints.get(index);
        let domain = spec
            .and_then(|spec| ctx.domain(&spec.domain))
            .or_else(|| ctx.domains.first())
            .map(Arc::clone)
            .context("no routing domain for an endpoint")?;
        let max_connections = spec.map_or(settings.max_connections, |s| s.max_connections);
        for addr in resolve(uri).await? {
            let socket = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .with_context(|| format!("cannot create a socket for {uri}"))?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr).with_context(|| {
                format!("cannot listen on {uri} ({addr}): is another router running there?")
            })?;
            let listener = socket
                .listen(4096)
                .with_context(|| format!("cannot listen on {uri} ({addr})"))?;
            endpoints.push(Endpoint {
                listener,
                uri: uri.clone(),
                tls: uri.transport == Transport::Ssl,
                domain: Arc::clone(&domain),
                max_connections,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
    }
    Ok(endpoints)
}

/// Applies new settings to a running router (what SIGHUP does in
/// `eventd`). Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    ctx: Arc<ServerContext>,
    current: Arc<parking_lot::Mutex<Settings>>,
    log: LogReloader,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Applies what can change live from `settings` (re-read from `source`,
    /// named in the log); logs what needs a restart. New TLS material that
    /// does not load leaves every running setting as it was.
    pub fn apply(&self, settings: Settings, source: &str) {
        let ctx = &self.ctx;
        if let Some(tls) = &settings.tls {
            match build_acceptor(tls) {
                Ok(acceptor) => *ctx.tls.write() = Some(acceptor),
                Err(error) => {
                    tracing::error!(%error, "reload: TLS not reloaded; the running settings stay");
                    return;
                }
            }
        }
        let filter = settings
            .log_level
            .clone()
            .unwrap_or_else(|| "info".to_owned());
        if let Err(error) = (self.log)(&filter) {
            tracing::error!(%error, "reload: log level not changed");
        }
        ctx.apply(&settings);
        let mut current = self.current.lock();
        let fixed: Vec<&str> = [
            (
                settings.listen != current.listen || settings.endpoints != current.endpoints,
                "listen",
            ),
            (settings.workers != current.workers, "workers"),
            (
                settings.metrics_listen != current.metrics_listen,
                "metrics_listen",
            ),
            (
                settings.stats_interval != current.stats_interval,
                "stats_interval",
            ),
            (settings.log_format != current.log_format, "log_format"),
        ]
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect();
        if !fixed.is_empty() {
            tracing::warn!(
                settings = ?fixed,
                "reload: these settings only take effect after a restart"
            );
        }
        tracing::info!(config = %source, log_level = %filter, "configuration reloaded");
        *current = settings;
    }
}

/// A router whose endpoints are bound, ready to [`run`](Router::run).
pub struct Router {
    ctx: Arc<ServerContext>,
    settings: Arc<parking_lot::Mutex<Settings>>,
    endpoints: Vec<Endpoint>,
    metrics_listener: Option<TcpListener>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("local_addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Binds every endpoint (and the metrics listener), then gives up root
    /// if the settings name an account: nothing is served yet.
    pub async fn bind(settings: Settings) -> anyhow::Result<Router> {
        let ctx = ServerContext::new(&settings);
        if let Some(tls) = &settings.tls {
            *ctx.tls.write() = Some(build_acceptor(tls)?);
        }
        let endpoints = bind_endpoints(&settings, &ctx).await?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                metrics::bind_metrics(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            ),
            None => None,
        };
        // Every socket is bound: give up root before serving anyone.
        crate::privileges::drop_after_bind(&settings)?;
        Ok(Router {
            ctx,
            settings: Arc::new(parking_lot::Mutex::new(settings)),
            endpoints,
            metrics_listener,
        })
    }

    /// The address of every bound endpoint, in the order of the settings'
    /// listen URIs.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoints
            .iter()
            .filter_map(|e| e.listener.local_addr().ok())
            .collect()
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The shared state: routing domains, counters, connections.
    pub fn context(&self) -> &Arc<ServerContext> {
        &self.ctx
    }

    /// A handle that applies new settings while the router runs; `log`
    /// changes the log filter.
    pub fn reloader(&self, log: LogReloader) -> Reloader {
        Reloader {
            ctx: Arc::clone(&self.ctx),
            current: Arc::clone(&self.settings),
            log,
        }
    }

    /// Serves until `shutdown` completes, then closes every connection
    /// cleanly and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Router {
            ctx,
            settings,
            endpoints,
            metrics_listener,
        } = self;
        let (stats_interval, workers) = {
            let settings = settings.lock();
            (settings.stats_interval, settings.workers)
        };
        let metrics_task = metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving metrics at /metrics");
            }
            tokio::spawn(metrics::serve_metrics(
                listener,
                Arc::clone(&ctx.metrics),
                ctx.domains.clone(),
            ))
        });
        let stats_task = stats_interval.map(|interval| {
            let metrics = Arc::clone(&ctx.metrics);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    tracing::info!(stats = %metrics.snapshot(), "counters");
                }
            })
        });
        let mut accept_tasks = Vec::new();
        for endpoint in endpoints {
            tracing::info!(
                endpoint = %endpoint.uri,
                domain = %endpoint.domain.name,
                max_connections = endpoint.max_connections,
                addr = %endpoint.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "listening"
            );
            accept_tasks.push(tokio::spawn(accept_loop(endpoint, Arc::clone(&ctx))));
        }
        tracing::info!(version = env!("CARGO_PKG_VERSION"), workers, "eventd ready");

        shutdown.await;

        ctx.begin_shutdown();
        for task in accept_tasks {
            let _ = task.await;
        }
        let deadline = Instant::now() + ctx.shutdown_timeout + Duration::from_secs(1);
        ctx.live.wait_until_none(deadline).await;
        let left = ctx.live.count();
        if left > 0 {
            tracing::warn!(
                connections = left,
                "shutdown: some connections did not finish in time"
            );
        }
        if let Some(task) = metrics_task {
            task.abort();
        }
        if let Some(task) = stats_task {
            task.abort();
        }
        tracing::info!(stats = %ctx.metrics.snapshot(), "eventd stopped");
        Ok(())
    }
}
