//! Counters an operator can read, and the HTTP responder that serves them.
//!
//! The counters are plain relaxed atomics: they are statistics, not
//! synchronisation, and the hot path adds to them once per read batch
//! rather than once per notification so that producers on different cores
//! do not fight over a cache line.
//!
//! [`serve_metrics`] is a deliberately small HTTP/1.1 responder for
//! Prometheus scrapes: one request per connection, the request head bounded
//! in size and time, `GET /metrics` answered with the text exposition
//! format, anything else with 404 or 405. A full HTTP stack would be a
//! large dependency for one fixed page.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The router's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client connections open now.
    pub connections_current: AtomicU64,
    /// Client connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: AtomicU64,
    /// Subscriptions in the routing table now.
    pub subscriptions: AtomicU64,
    /// Notifications received (NotifyEmit and UNotify).
    pub notifications_in: AtomicU64,
    /// NotifyDeliver packets queued for clients.
    pub deliveries_out: AtomicU64,
    /// NotifyDeliver packets dropped by a send-queue drop policy, or
    /// because they exceeded the client's Packet.Max-Length.
    pub notifications_dropped: AtomicU64,
    /// DropWarn packets written to clients.
    pub dropwarns_sent: AtomicU64,
    /// Connections closed for a protocol violation (Disconn 4).
    pub protocol_errors: AtomicU64,
    /// Nack replies sent.
    pub nacks: AtomicU64,
    /// Subscription expressions evaluated (the index's effectiveness: per
    /// notification this follows the number of candidates, not the number
    /// of subscriptions).
    pub evaluations: AtomicU64,
    /// Notifications whose evaluation stopped at the per-notification time
    /// budget (some candidate subscriptions were not evaluated).
    pub notifications_truncated: AtomicU64,
    /// Connections closed because a frame stayed incomplete too long, or
    /// because partially received frames exceeded the router's byte budget.
    pub frames_cut: AtomicU64,
}

/// A consistent-enough copy of the counters, for logging and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Metrics::connections_current`].
    pub connections_current: u64,
    /// See [`Metrics::connections_total`].
    pub connections_total: u64,
    /// See [`Metrics::connections_refused`].
    pub connections_refused: u64,
    /// See [`Metrics::subscriptions`].
    pub subscriptions: u64,
    /// See [`Metrics::notifications_in`].
    pub notifications_in: u64,
    /// See [`Metrics::deliveries_out`].
    pub deliveries_out: u64,
    /// See [`Metrics::notifications_dropped`].
    pub notifications_dropped: u64,
    /// See [`Metrics::dropwarns_sent`].
    pub dropwarns_sent: u64,
    /// See [`Metrics::protocol_errors`].
    pub protocol_errors: u64,
    /// See [`Metrics::nacks`].
    pub nacks: u64,
    /// See [`Metrics::evaluations`].
    pub evaluations: u64,
    /// See [`Metrics::notifications_truncated`].
    pub notifications_truncated: u64,
    /// See [`Metrics::frames_cut`].
    pub frames_cut: u64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Subtracts `n` from a gauge, stopping at zero.
pub fn sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

impl Metrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            connections_current: get(&self.connections_current),
            connections_total: get(&self.connections_total),
            connections_refused: get(&self.connections_refused),
            subscriptions: get(&self.subscriptions),
            notifications_in: get(&self.notifications_in),
            deliveries_out: get(&self.deliveries_out),
            notifications_dropped: get(&self.notifications_dropped),
            dropwarns_sent: get(&self.dropwarns_sent),
            protocol_errors: get(&self.protocol_errors),
            nacks: get(&self.nacks),
            evaluations: get(&self.evaluations),
            notifications_truncated: get(&self.notifications_truncated),
            frames_cut: get(&self.frames_cut),
        }
    }

    /// The counters in the Prometheus text exposition format (0.0.4).
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let rows: [(&str, &str, &str, u64); 13] = [
            (
                "eventd_notifications_truncated_total",
                "counter",
                "Notifications whose evaluation stopped at the time budget.",
                s.notifications_truncated,
            ),
            (
                "eventd_frames_cut_total",
                "counter",
                "Connections closed for a stalled or over-budget partial frame.",
                s.frames_cut,
            ),
            (
                "eventd_connections",
                "gauge",
                "Client connections open now.",
                s.connections_current,
            ),
            (
                "eventd_connections_total",
                "counter",
                "Client connections accepted.",
                s.connections_total,
            ),
            (
                "eventd_connections_refused_total",
                "counter",
                "Connections refused at max_connections.",
                s.connections_refused,
            ),
            (
                "eventd_subscriptions",
                "gauge",
                "Subscriptions in the routing table.",
                s.subscriptions,
            ),
            (
                "eventd_notifications_in_total",
                "counter",
                "Notifications received (NotifyEmit and UNotify).",
                s.notifications_in,
            ),
            (
                "eventd_deliveries_out_total",
                "counter",
                "NotifyDeliver packets queued for clients.",
                s.deliveries_out,
            ),
            (
                "eventd_notifications_dropped_total",
                "counter",
                "NotifyDeliver packets dropped (send-queue policy or size).",
                s.notifications_dropped,
            ),
            (
                "eventd_dropwarns_sent_total",
                "counter",
                "DropWarn packets written.",
                s.dropwarns_sent,
            ),
            (
                "eventd_protocol_errors_total",
                "counter",
                "Connections closed for protocol violations.",
                s.protocol_errors,
            ),
            (
                "eventd_nacks_total",
                "counter",
                "Nack replies sent.",
                s.nacks,
            ),
            (
                "eventd_evaluations_total",
                "counter",
                "Subscription expressions evaluated.",
                s.evaluations,
            ),
        ];
        let mut out = String::with_capacity(2048);
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections={} connections_total={} refused={} subscriptions={} notifications_in={} \
             deliveries_out={} dropped={} dropwarns={} protocol_errors={} nacks={} evaluations={}",
            self.connections_current,
            self.connections_total,
            self.connections_refused,
            self.subscriptions,
            self.notifications_in,
            self.deliveries_out,
            self.notifications_dropped,
            self.dropwarns_sent,
            self.protocol_errors,
            self.nacks,
            self.evaluations
        )
    }
}

/// Largest request head accepted by the metrics responder.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a scraper has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most metrics requests handled at once; more wait in the listen backlog.
const MAX_CONCURRENT_SCRAPES: usize = 16;

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    domains: Vec<Arc<crate::server::Domain>>,
) {
    let domains = Arc::new(domains);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SCRAPES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let domains = Arc::clone(&domains);
        tokio::spawn(async move {
            if let Err(error) = answer_scrape(stream, &metrics, &domains).await {
                tracing::debug!(%peer, %error, "metrics request failed");
            }
            drop(permit);
        });
    }
}

/// Binds the metrics listener.
pub async fn bind_metrics(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The response to a request head: status line and body.
fn response_for(
    head: &[u8],
    metrics: &Metrics,
    domains: &[Arc<crate::server::Domain>],
) -> (&'static str, String) {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(b"");
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next().unwrap_or(b"");
    let target = parts.next().unwrap_or(b"");
    let path = target.split(|&b| b == b'?').next().unwrap_or(b"");
    match (method, path) {
        (b"GET", b"/metrics") => {
            let mut body = metrics.render_prometheus();
            body.push_str(&render_domains(domains));
            ("200 OK", body)
        }
        (b"GET", _) => (
            "404 Not Found",
            "not found: the metrics are at /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "only GET /metrics is served\n".into(),
        ),
    }
}

/// Subscriptions per routing domain, labelled with the domain's name.
fn render_domains(domains: &[Arc<crate::server::Domain>]) -> String {
    let mut out = String::from(
        "# HELP eventd_domain_subscriptions Subscriptions in each routing domain.\n# TYPE eventd_domain_subscriptions gauge\n",
    );
    for domain in domains {
        let name = domain.name.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!(
            "eventd_domain_subscriptions{{domain=\"{name}\"}} {}\n",
            domain.broker.subscription_count()
        ));
    }
    out
}

async fn answer_scrape(
    mut stream: TcpStream,
    metrics: &Metrics,
    domains: &[Arc<crate::server::Domain>],
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return Ok(false);
            }
        }
    };
    let complete = match tokio::time::timeout(REQUEST_TIMEOUT, read_head).await {
        Ok(result) => result?,
        Err(_) => false,
    };
    let (status, body) = if complete {
        response_for(&head, metrics, domains)
    } else {
        (
            "400 Bad Request",
            "incomplete or oversized request\n".into(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_every_counter_with_help_and_type() {
        let metrics = Metrics::default();
        add(&metrics.notifications_in, 3);
        add(&metrics.nacks, 1);
        let text = metrics.render_prometheus();
        assert!(text.contains("# TYPE eventd_notifications_in_total counter\n"));
        assert!(text.contains("\neventd_notifications_in_total 3\n"));
        assert!(text.contains("\neventd_nacks_total 1\n"));
        assert!(text.contains("\neventd_connections 0\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 13);
    }

    #[test]
    fn only_get_metrics_is_served() {
        let metrics = Metrics::default();
        assert_eq!(
            response_for(b"GET /metrics HTTP/1.1\r\n\r\n", &metrics, &[]).0,
            "200 OK"
        );
        assert_eq!(
            response_for(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", &metrics, &[]).0,
            "200 OK"
        );
        assert_eq!(
            response_for(b"GET / HTTP/1.1\r\n\r\n", &metrics, &[]).0,
            "404 Not Found"
        );
        assert_eq!(
            response_for(b"POST /metrics HTTP/1.1\r\n\r\n", &metrics, &[]).0,
            "405 Method Not Allowed"
        );
    }

    #[test]
    fn gauges_do_not_wrap_below_zero() {
        let metrics = Metrics::default();
        sub(&metrics.subscriptions, 5);
        assert_eq!(metrics.snapshot().subscriptions, 0);
    }
}
