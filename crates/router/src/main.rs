//! `eventd`: the tbevents Elvin 4 event router.
//!
//! A thin wrapper over the `elvin_router` library: parse the flags and the
//! configuration file, set up logging (`tbevents_cli::logging`, with a reload handle for
//! SIGHUP),
//! raise the open-files limit so tens of thousands of clients can connect,
//! build the tokio runtime with the configured worker count, bind, and run
//! the router until SIGTERM or SIGINT; SIGHUP re-reads the configuration
//! file (the flags still win) and hands it to the router's reloader. The
//! signals live here, not in the library, so tests and embedders run a
//! router with any shutdown future. Exit codes: 0 after a clean shutdown,
//! 1 when the router fails while running (say, a port already in use),
//! 2 for a configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use elvin_router::config::{Flags, LogFormat, Settings};
use elvin_router::server::{LogReloader, Reloader, Router};
use tbevents_cli::runtime::Threads;
use tokio::signal::unix::{SignalKind, signal};

/// Command-line flags. Every flag overrides the configuration file's key
/// of the same name.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "eventd",
    version,
    about = "eventd: the tbevents Elvin 4 event router",
    long_about = "eventd routes Elvin 4 notifications between the tbevents tools, schedulers and \
                  agents, and any existing Elvin 4 client.\n\n\
                  Settings come from built-in defaults, then the TOML file given with --config, \
                  then these flags (a flag wins). SIGHUP re-reads the file and applies the log \
                  level, the limits and max connections for new connections, and the TLS \
                  certificates for new connections. SIGTERM or SIGINT sends Disconn (shutdown) to \
                  every client and exits 0.",
    after_help = "Examples:\n  \
                  eventd                                     listen on elvin://0.0.0.0:2917\n  \
                  eventd --listen elvin://127.0.0.1:2927     the control server's internal bus\n  \
                  eventd --config /etc/tbevents/eventd.toml --log-level debug\n  \
                  eventd --listen elvin://0.0.0.0:2917 --listen elvin:/secure/0.0.0.0:2918 \\\n      \
                  --tls-cert cert.pem --tls-key key.pem\n  \
                  eventd --metrics-listen 127.0.0.1:9917     then: curl http://127.0.0.1:9917/metrics\n\n\
                  See docs/eventd.md for every setting."
)]
struct Cli {
    /// TOML configuration file (see docs/eventd.md and crates/router/eventd.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Endpoint to listen on, as an Elvin URI; repeat for several. Plain TCP:
    /// elvin://HOST:PORT (e.g. elvin://0.0.0.0:2917); TLS: elvin:/secure/HOST:PORT.
    /// [default: elvin://0.0.0.0:2917]
    #[arg(long, value_name = "URI")]
    listen: Vec<String>,

    /// Runtime worker threads. [default: number of CPUs]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "elvin_router=debug". Beats log_level in the file, which beats RUST_LOG. [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,

    /// Log format. [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    log_format: Option<LogFormat>,

    /// Seconds between log lines with the counters; 0 turns them off. [default: 60]
    #[arg(long, value_name = "SECONDS")]
    stats_interval: Option<f64>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9917. [default: off]
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,

    /// Most simultaneous client connections on each endpoint (a listen URI's `;max_connections=N` overrides it for that endpoint); more are accepted and closed at once. [default: 100000]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Most simultaneous connections from one source address, all endpoints together. [default: no cap]
    #[arg(long, value_name = "N")]
    max_connections_per_source: Option<usize>,

    /// Milliseconds one notification may spend being evaluated against subscriptions; past it the remaining candidates are skipped and counted. 0 turns the limit off. [default: 20]
    #[arg(long, value_name = "MS")]
    notification_time_budget_ms: Option<f64>,

    /// Seconds a packet may stay incomplete (its bytes trickling in) before the connection is closed. [default: 30]
    #[arg(long, value_name = "SECONDS")]
    frame_timeout: Option<f64>,

    /// Bytes of partially received packets all connections together may hold; a connection that would pass it is closed. [default: 268435456]
    #[arg(long, value_name = "BYTES")]
    partial_frame_budget: Option<usize>,

    /// Seconds a channel may stay open without sending ConnRqst or UNotify. [default: 15]
    #[arg(long, value_name = "SECONDS")]
    idle_timeout: Option<f64>,

    /// Seconds allowed at shutdown for Disconn to reach every client. [default: 5]
    #[arg(long, value_name = "SECONDS")]
    shutdown_timeout: Option<f64>,

    /// Set TCP_NODELAY on client sockets (true/false). With false, a client's
    /// TCP.Send-Immediately=1 still turns it on for that client. [default: true]
    #[arg(long, value_name = "BOOL")]
    tcp_nodelay: Option<bool>,

    /// Packet.Max-Length: largest packet in either direction, bytes; clients may ask for less.
    /// Also applies before ConnRqst. [default: 2097152]
    #[arg(long, value_name = "BYTES")]
    packet_max_length: Option<usize>,

    /// Subscription.Max-Count: subscriptions per connection; clients may ask for less. [default: 2048]
    #[arg(long, value_name = "N")]
    subscription_max_count: Option<usize>,

    /// Subscription.Max-Length: longest subscription expression, bytes of UTF-8. [default: 2048]
    #[arg(long, value_name = "BYTES")]
    subscription_max_length: Option<usize>,

    /// Subscription.Max-Keys: keys on one subscription. [default: 256]
    #[arg(long, value_name = "N")]
    subscription_max_keys: Option<usize>,

    /// Connection.Max-Keys: keys in each of a connection's two key sets. [default: 1024]
    #[arg(long, value_name = "N")]
    connection_max_keys: Option<usize>,

    /// Send-Queue.Max-Length: bytes queued for one client before the drop policy applies.
    /// [default: 2097152]
    #[arg(long, value_name = "BYTES")]
    send_queue_max_length: Option<usize>,

    /// Send-Queue.Drop-Policy: oldest, newest, largest, fail or none (fail and none disconnect
    /// the client). [default: oldest]
    #[arg(long, value_name = "POLICY")]
    send_queue_drop_policy: Option<String>,

    /// Receive-Queue.Max-Length reported to clients, bytes (input is never dropped; reading is
    /// throttled instead). [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    receive_queue_max_length: Option<usize>,

    /// PEM certificate chain for TLS endpoints.
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for TLS endpoints.
    #[arg(long, value_name = "PATH")]
    tls_key: Option<PathBuf>,

    /// PEM CA bundle: verify client certificates against it.
    #[arg(long, value_name = "PATH")]
    tls_client_ca: Option<PathBuf>,

    /// Refuse TLS clients that present no valid certificate (needs --tls-client-ca).
    #[arg(long)]
    tls_require_client_cert: bool,

    /// After binding every endpoint, run as this account (name or uid); needs eventd started as
    /// root. With --group, that group; otherwise the account's primary group.
    #[arg(long, value_name = "USER")]
    user: Option<String>,

    /// After binding, run with this group (name or gid).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,

    /// Also send log lines to the system log (/dev/log: journald or syslogd), as well as stderr.
    #[arg(long)]
    syslog: bool,

    /// The syslog socket for --syslog. [default: /dev/log]
    #[arg(long, value_name = "PATH")]
    syslog_socket: Option<PathBuf>,

    /// Check the configuration, print the resolved settings and exit.
    #[arg(long)]
    check_config: bool,
}

impl Cli {
    /// The flags as the library takes them.
    fn flags(&self) -> Flags {
        self.clone().into_flags()
    }

    fn into_flags(self) -> Flags {
        Flags {
            config: self.config,
            listen: self.listen,
            workers: self.workers,
            log_level: self.log_level,
            log_format: self.log_format,
            stats_interval: self.stats_interval,
            metrics_listen: self.metrics_listen,
            max_connections: self.max_connections,
            max_connections_per_source: self.max_connections_per_source,
            notification_time_budget_ms: self.notification_time_budget_ms,
            frame_timeout: self.frame_timeout,
            partial_frame_budget: self.partial_frame_budget,
            idle_timeout: self.idle_timeout,
            shutdown_timeout: self.shutdown_timeout,
            tcp_nodelay: self.tcp_nodelay,
            packet_max_length: self.packet_max_length,
            subscription_max_count: self.subscription_max_count,
            subscription_max_length: self.subscription_max_length,
            subscription_max_keys: self.subscription_max_keys,
            connection_max_keys: self.connection_max_keys,
            send_queue_max_length: self.send_queue_max_length,
            send_queue_drop_policy: self.send_queue_drop_policy,
            receive_queue_max_length: self.receive_queue_max_length,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_client_ca: self.tls_client_ca,
            tls_require_client_cert: self.tls_require_client_cert,
            user: self.user,
            group: self.group,
            syslog: self.syslog,
            syslog_socket: self.syslog_socket,
        }
    }
}

/// `--log-format`: text or json.
fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a log format: use text or json")),
    }
}

fn init_logging(settings: &Settings) -> LogReloader {
    let setup = tbevents_cli::LogSetup {
        level: settings.log_level.as_deref(),
        format: match settings.log_format {
            LogFormat::Text => tbevents_cli::LogFormat::Text,
            LogFormat::Json => tbevents_cli::LogFormat::Json,
        },
        syslog: settings.syslog.as_deref(),
        ..tbevents_cli::LogSetup::new("eventd", "info")
    };
    // Only a log file can fail to open, and eventd logs to stderr.
    tbevents_cli::logging::init(&setup).unwrap_or_else(|_| Arc::new(|_: &str| Ok(())))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every client is a file
/// descriptor, and the usual soft limit of 1024 is far below what a router
/// serving 10,000 agents needs.
fn raise_open_files_limit() {
    match tbevents_cli::limits::raise_open_files(None) {
        Ok(limit) if limit.now > limit.before => {
            tracing::info!(
                from = limit.before,
                to = limit.now,
                "raised the open files limit"
            )
        }
        Ok(limit) => tracing::debug!(limit = limit.now, "open files limit already at its maximum"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.flags()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("eventd: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        use std::io::Write as _;
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{settings:#?}");
        return ExitCode::SUCCESS;
    }
    let reload = init_logging(&settings);
    raise_open_files_limit();
    let threads = Threads::Workers(settings.workers);
    match tbevents_cli::runtime::block_on("eventd-worker", threads, serve(settings, cli, reload)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            tracing::error!("eventd failed: {error:#}");
            ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            ExitCode::FAILURE
        }
    }
}

/// Binds, then runs the router until SIGTERM or SIGINT, reloading on SIGHUP.
async fn serve(settings: Settings, cli: Cli, log: LogReloader) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Handlers first, so a signal sent right after start-up is not lost.
    let requested = tbevents_cli::shutdown_requested().context("cannot watch SIGTERM")?;
    let mut hangups = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let router = Router::bind(settings).await?;
    let reloader = router.reloader(log);
    let shutdown = async move {
        tokio::pin!(requested);
        loop {
            tokio::select! {
                () = &mut requested => return,
                _ = hangups.recv() => reload(&cli, &reloader),
            }
        }
    };
    router.run(shutdown).await
}

/// SIGHUP: re-reads the configuration file and applies what can change.
fn reload(cli: &Cli, reloader: &Reloader) {
    let Some(path) = &cli.config else {
        tracing::info!("SIGHUP: no --config file to re-read; nothing changed");
        return;
    };
    match Settings::load(&cli.flags()) {
        Ok(settings) => reloader.apply(settings, &path.display().to_string()),
        Err(error) => {
            tracing::error!(%error, "SIGHUP: configuration not reloaded; the running settings stay");
        }
    }
}

#[cfg(test)]
mod config_tests {
    //! The flags and the file together, as `eventd` resolves them.
    use std::time::Duration;

    use elvin_proto::options::DropPolicy;
    use elvin_proto::uri::ElvinUri;
    use elvin_router::config::*;

    use super::*;

    fn cli(args: &[&str]) -> Flags {
        let mut all = vec!["eventd"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().flags()
    }

    /// Why these flags alone (no configuration file) are refused.
    fn refusal(args: &[&str]) -> String {
        Settings::resolve(&FileConfig::default(), &cli(args))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_listen_on_the_standard_port() {
        let s = Settings::resolve(&FileConfig::default(), &cli(&[])).unwrap();
        assert_eq!(s.listen, vec![ElvinUri::parse(DEFAULT_LISTEN).unwrap()]);
        assert_eq!(s.limits, ConnectionLimits::default());
        assert_eq!(s.idle_timeout, Duration::from_secs(15));
        assert_eq!(s.stats_interval, Some(Duration::from_secs(60)));
        assert!(s.tls.is_none() && s.metrics_listen.is_none());
    }

    #[test]
    fn flags_beat_the_file() {
        let file = FileConfig::parse(
            r#"
            listen = ["elvin://127.0.0.1:2927"]
            log_level = "warn"
            stats_interval = 0
            [limits]
            packet_max_length = 4096
            send_queue_drop_policy = "newest"
            "#,
        )
        .unwrap();
        let s = Settings::resolve(&file, &cli(&["--packet-max-length", "8192"])).unwrap();
        assert_eq!(s.listen[0].port, 2927);
        assert_eq!(s.log_level.as_deref(), Some("warn"));
        assert_eq!(s.stats_interval, None);
        assert_eq!(s.limits.packet_max_length, 8192);
        assert_eq!(s.limits.send_queue_drop_policy, DropPolicy::Newest);
        let s = Settings::resolve(&file, &cli(&["--listen", "elvin://127.0.0.1:3000"])).unwrap();
        assert_eq!(s.listen.len(), 1);
        assert_eq!(s.listen[0].port, 3000);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = FileConfig::parse("listn = []").unwrap_err();
        assert!(err.contains("listn"), "{err}");
        let file = FileConfig::parse("[limits]\npacket_max_length = 12").unwrap();
        let err = Settings::resolve(&file, &cli(&[])).unwrap_err().to_string();
        assert!(err.contains("limits.packet_max_length"), "{err}");
        let err = refusal(&["--listen", "http://x"]);
        assert!(err.contains("listen"), "{err}");
        let err = refusal(&["--send-queue-drop-policy", "random"]);
        assert!(err.contains("oldest, newest"), "{err}");
        let err = refusal(&["--idle-timeout", "0"]);
        assert!(err.contains("idle_timeout"), "{err}");
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let file = FileConfig::parse(include_str!("../eventd.toml")).unwrap();
        let s = Settings::resolve(&file, &cli(&[])).unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.limits, ConnectionLimits::default());
    }

    #[test]
    fn tls_endpoint_needs_a_certificate() {
        let err = refusal(&["--listen", "elvin:/secure/127.0.0.1:2918"]);
        assert!(err.contains("tls.cert"), "{err}");
        let err = refusal(&["--tls-cert", "c.pem"]);
        assert!(err.contains("tls.key"), "{err}");
        let err = refusal(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-require-client-cert",
        ]);
        assert!(err.contains("client_ca"), "{err}");
    }
}
