//! The router's configuration: a TOML file, command-line flags that
//! override it, and the validated [`Settings`] the rest of the crate uses.
//!
//! Configuration arrives in two layers. [`FileConfig`] is the TOML file as
//! written (every key optional, unknown keys rejected so a typo is an error
//! rather than a silently ignored setting); [`Flags`] holds the flags, every
//! one optional too. [`Settings::resolve`] merges them (a flag beats the
//! file, the file beats the built-in default) and validates the result, so
//! a bad value is reported once, at start-up or at SIGHUP, with the key's
//! name and what to write instead.
//!
//! The same merge runs again on SIGHUP with the flags given at start-up, so
//! a flag keeps overriding the file across reloads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use elvin_proto::options::DropPolicy;
use elvin_proto::uri::{ElvinUri, Transport};
use serde::Deserialize;

/// The endpoint used when no `--listen` flag or `listen` key is given.
pub const DEFAULT_LISTEN: &str = "elvin://0.0.0.0:2917";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("configuration file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's explanation (with line and column).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid setting {key}: {message}")]
    Invalid {
        /// The setting, as named in the file (`limits.packet_max_length`).
        key: &'static str,
        /// What is wrong and what would work.
        message: String,
    },
}

/// The TOML configuration file, as written. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Endpoints to listen on, as Elvin URIs.
    pub listen: Option<Vec<String>>,
    /// Runtime worker threads.
    pub workers: Option<usize>,
    /// Log filter (`info`, `debug`, or a `tracing` filter directive).
    pub log_level: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Seconds between counter log lines; 0 turns them off.
    pub stats_interval: Option<f64>,
    /// Address of the Prometheus `/metrics` HTTP listener.
    pub metrics_listen: Option<String>,
    /// Most simultaneous client connections per endpoint.
    pub max_connections: Option<usize>,
    /// Most simultaneous connections from one source address (all
    /// endpoints); absent or 0: no cap.
    pub max_connections_per_source: Option<usize>,
    /// Milliseconds one notification may spend in evaluation; 0: no limit.
    pub notification_time_budget_ms: Option<f64>,
    /// Seconds a packet may stay incomplete before the connection is cut.
    pub frame_timeout: Option<f64>,
    /// Bytes of partially received packets all connections together may hold.
    pub partial_frame_budget: Option<usize>,
    /// Seconds an unconnected channel may go without ConnRqst or UNotify.
    pub idle_timeout: Option<f64>,
    /// Seconds allowed for sending Disconn to every client at shutdown.
    pub shutdown_timeout: Option<f64>,
    /// Set TCP_NODELAY on every client socket.
    pub tcp_nodelay: Option<bool>,
    /// Per-connection limits.
    #[serde(default)]
    pub limits: FileLimits,
    /// TLS for `elvin:/secure/...` endpoints.
    pub tls: Option<FileTls>,
    /// Account to run as once every endpoint is bound (name or uid).
    pub user: Option<String>,
    /// Group to run as once every endpoint is bound (name or gid).
    pub group: Option<String>,
    /// Also log to the syslog socket (journald or syslogd).
    pub syslog: Option<bool>,
    /// The syslog socket (default /dev/log).
    pub syslog_socket: Option<PathBuf>,
}

/// The `[limits]` table of the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Packet.Max-Length default and ceiling, bytes.
    pub packet_max_length: Option<usize>,
    /// Subscription.Max-Count default and ceiling.
    pub subscription_max_count: Option<usize>,
    /// Subscription.Max-Length default and ceiling, bytes.
    pub subscription_max_length: Option<usize>,
    /// Subscription.Max-Keys default and ceiling.
    pub subscription_max_keys: Option<usize>,
    /// Connection.Max-Keys default and ceiling.
    pub connection_max_keys: Option<usize>,
    /// Send-Queue.Max-Length default and ceiling, bytes.
    pub send_queue_max_length: Option<usize>,
    /// Send-Queue.Drop-Policy default.
    pub send_queue_drop_policy: Option<String>,
    /// Receive-Queue.Max-Length default and ceiling, bytes.
    pub receive_queue_max_length: Option<usize>,
    /// Most bytes of compiled `regex()` patterns one subscription may use.
    pub regex_bytes_per_subscription: Option<usize>,
    /// Most bytes of compiled `regex()` patterns one connection's
    /// subscriptions may use together.
    pub regex_bytes_per_connection: Option<usize>,
    /// Most bytes all compiled patterns of the router may use (identical
    /// patterns are compiled once and shared).
    pub regex_bytes_total: Option<usize>,
}

/// The `[tls]` table of the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM file with the certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key.
    pub key: Option<PathBuf>,
    /// PEM file of CA certificates that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (needs `client_ca`).
    pub require_client_cert: Option<bool>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What the command line gave: every field overrides the configuration
/// file's key of the same name (`eventd`'s clap parser in `main.rs` fills
/// it; the library takes it plain).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// TOML configuration file (see docs/eventd.md and crates/router/eventd.toml).
    pub config: Option<PathBuf>,

    /// Endpoint to listen on, as an Elvin URI; repeat for several. Plain TCP:
    /// elvin://HOST:PORT (e.g. elvin://0.0.0.0:2917); TLS: elvin:/secure/HOST:PORT.
    /// [default: elvin://0.0.0.0:2917]
    pub listen: Vec<String>,

    /// Runtime worker threads. [default: number of CPUs]
    pub workers: Option<usize>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "elvin_router=debug". Beats log_level in the file, which beats RUST_LOG. [default: info]
    pub log_level: Option<String>,

    /// Log format. [default: text]
    pub log_format: Option<LogFormat>,

    /// Seconds between log lines with the counters; 0 turns them off. [default: 60]
    pub stats_interval: Option<f64>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9917. [default: off]
    pub metrics_listen: Option<String>,

    /// Most simultaneous client connections on each endpoint (a listen URI's `;max_connections=N` overrides it for that endpoint); more are accepted and closed at once. [default: 100000]
    pub max_connections: Option<usize>,

    /// Most simultaneous connections from one source address, all endpoints together. [default: no cap]
    pub max_connections_per_source: Option<usize>,

    /// Milliseconds one notification may spend being evaluated against subscriptions; past it the remaining candidates are skipped and counted. 0 turns the limit off. [default: 20]
    pub notification_time_budget_ms: Option<f64>,

    /// Seconds a packet may stay incomplete (its bytes trickling in) before the connection is closed. [default: 30]
    pub frame_timeout: Option<f64>,

    /// Bytes of partially received packets all connections together may hold; a connection that would pass it is closed. [default: 268435456]
    pub partial_frame_budget: Option<usize>,

    /// Seconds a channel may stay open without sending ConnRqst or UNotify. [default: 15]
    pub idle_timeout: Option<f64>,

    /// Seconds allowed at shutdown for Disconn to reach every client. [default: 5]
    pub shutdown_timeout: Option<f64>,

    /// Set TCP_NODELAY on client sockets (true/false). With false, a client's
    /// TCP.Send-Immediately=1 still turns it on for that client. [default: true]
    pub tcp_nodelay: Option<bool>,

    /// Packet.Max-Length: largest packet in either direction, bytes; clients may ask for less.
    /// Also applies before ConnRqst. [default: 2097152]
    pub packet_max_length: Option<usize>,

    /// Subscription.Max-Count: subscriptions per connection; clients may ask for less. [default: 2048]
    pub subscription_max_count: Option<usize>,

    /// Subscription.Max-Length: longest subscription expression, bytes of UTF-8. [default: 2048]
    pub subscription_max_length: Option<usize>,

    /// Subscription.Max-Keys: keys on one subscription. [default: 256]
    pub subscription_max_keys: Option<usize>,

    /// Connection.Max-Keys: keys in each of a connection's two key sets. [default: 1024]
    pub connection_max_keys: Option<usize>,

    /// Send-Queue.Max-Length: bytes queued for one client before the drop policy applies.
    /// [default: 2097152]
    pub send_queue_max_length: Option<usize>,

    /// Send-Queue.Drop-Policy: oldest, newest, largest, fail or none (fail and none disconnect
    /// the client). [default: oldest]
    pub send_queue_drop_policy: Option<String>,

    /// Receive-Queue.Max-Length reported to clients, bytes (input is never dropped; reading is
    /// throttled instead). [default: 1048576]
    pub receive_queue_max_length: Option<usize>,

    /// PEM certificate chain for TLS endpoints.
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS endpoints.
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: verify client certificates against it.
    pub tls_client_ca: Option<PathBuf>,

    /// Refuse TLS clients that present no valid certificate (needs --tls-client-ca).
    pub tls_require_client_cert: bool,

    /// After binding every endpoint, run as this account (name or uid); needs eventd started as
    /// root. With --group, that group; otherwise the account's primary group.
    pub user: Option<String>,

    /// After binding, run with this group (name or gid).
    pub group: Option<String>,

    /// Also send log lines to the system log (/dev/log: journald or syslogd), as well as stderr.
    pub syslog: bool,

    /// The syslog socket for --syslog. [default: /dev/log]
    pub syslog_socket: Option<PathBuf>,
}

/// Per-connection limits. Each value is both what a client gets without
/// asking and the most it may ask for: clients may lower a limit in
/// ConnRqst, only the operator can raise one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Packet.Max-Length, bytes.
    pub packet_max_length: usize,
    /// Subscription.Max-Count.
    pub subscription_max_count: usize,
    /// Subscription.Max-Length, bytes.
    pub subscription_max_length: usize,
    /// Subscription.Max-Keys.
    pub subscription_max_keys: usize,
    /// Connection.Max-Keys.
    pub connection_max_keys: usize,
    /// Send-Queue.Max-Length, bytes.
    pub send_queue_max_length: usize,
    /// Send-Queue.Drop-Policy.
    pub send_queue_drop_policy: DropPolicy,
    /// Receive-Queue.Max-Length, bytes.
    pub receive_queue_max_length: usize,
    /// TCP_NODELAY on by default.
    pub tcp_nodelay: bool,
    /// Compiled-regex bytes per subscription.
    pub regex_bytes_per_subscription: usize,
    /// Compiled-regex bytes per connection.
    pub regex_bytes_per_connection: usize,
    /// Compiled-regex bytes for the whole router.
    pub regex_bytes_total: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            packet_max_length: 2 * 1024 * 1024,
            subscription_max_count: 2048,
            subscription_max_length: 2048,
            subscription_max_keys: 256,
            connection_max_keys: 1024,
            send_queue_max_length: 2 * 1024 * 1024,
            send_queue_drop_policy: DropPolicy::Oldest,
            regex_bytes_per_subscription: 4 << 20,
            regex_bytes_per_connection: 32 << 20,
            regex_bytes_total: elvin_sublang::DEFAULT_PROCESS_REGEX_BUDGET,
            receive_queue_max_length: 1024 * 1024,
            tcp_nodelay: true,
        }
    }
}

/// TLS settings for `elvin:/secure/...` endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle for client certificates.
    pub client_ca: Option<PathBuf>,
    /// Client certificates are mandatory.
    pub require_client_cert: bool,
}

/// Everything the router needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Endpoints, in the order given (without the `domain` and
    /// `max_connections` options, which are in [`Settings::endpoints`]).
    pub listen: Vec<ElvinUri>,
    /// Each endpoint's routing domain and connection limit, in the order of
    /// [`Settings::listen`].
    pub endpoints: Vec<EndpointSettings>,
    /// Most connections from one source address; `None`: no cap.
    pub max_connections_per_source: Option<usize>,
    /// Most time one notification may spend in evaluation (zero: no limit).
    pub notification_time_budget: Duration,
    /// Longest a packet may stay incomplete.
    pub frame_timeout: Duration,
    /// Most bytes of partially received packets, all connections together.
    pub partial_frame_budget: usize,
    /// Runtime worker threads.
    pub workers: usize,
    /// Log filter directive, if set by flag or file (otherwise RUST_LOG or `info`).
    pub log_level: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Interval of the counter log line; `None` when off.
    pub stats_interval: Option<Duration>,
    /// Metrics HTTP listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Time allowed without ConnRqst or UNotify.
    pub idle_timeout: Duration,
    /// Time allowed for the shutdown Disconn.
    pub shutdown_timeout: Duration,
    /// Per-connection limits.
    pub limits: ConnectionLimits,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// The configuration file, for SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Account to switch to after binding.
    pub user: Option<String>,
    /// Group to switch to after binding.
    pub group: Option<String>,
    /// The syslog socket, when logging to syslog as well.
    pub syslog: Option<PathBuf>,
}

/// What a listen URI's own options say about its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSettings {
    /// The routing domain: notifications reach only subscriptions of
    /// connections in the same domain. `;domain=NAME`; by default each
    /// endpoint is a domain of its own, named after its URI.
    pub domain: String,
    /// Most simultaneous connections on this endpoint
    /// (`;max_connections=N`, else `max_connections`).
    pub max_connections: usize,
}

/// Splits the endpoint options (`domain`, `max_connections`) off a listen
/// URI; any other option is an error (listen URIs take no connection
/// options).
fn endpoint_settings(
    uri: &mut ElvinUri,
    default_max: usize,
) -> Result<EndpointSettings, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "listen",
        message,
    };
    let mut domain = None;
    let mut max_connections = default_max;
    for (name, value) in std::mem::take(&mut uri.options) {
        match name.to_ascii_lowercase().as_str() {
            "domain" => {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(invalid(format!(
                        "domain {value:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
                    )));
                }
                domain = Some(value);
            }
            "max_connections" => {
                max_connections =
                    value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            invalid(format!(
                                "max_connections={value}: use a whole number above 0"
                            ))
                        })?;
            }
            _ => {
                return Err(invalid(format!(
                    "unknown listen option {name:?} in {uri}: a listen URI takes ;domain=NAME and ;max_connections=N"
                )));
            }
        }
    }
    Ok(EndpointSettings {
        domain: domain.unwrap_or_else(|| uri.to_string()),
        max_connections,
    })
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

fn seconds(key: &'static str, value: f64, allow_zero: bool) -> Result<Duration, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { key, message };
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) {
        let floor = if allow_zero {
            "0 or more"
        } else {
            "more than 0"
        };
        return Err(invalid(format!(
            "{value} is not a number of seconds {floor}"
        )));
    }
    Duration::try_from_secs_f64(value).map_err(|e| invalid(format!("{value} seconds: {e}")))
}

/// Checks an option-backed limit against the protocol's lower bound and
/// the int32 the wire can carry.
fn limit(key: &'static str, value: usize, min: usize) -> Result<usize, ConfigError> {
    if value < min || value > i32::MAX as usize {
        return Err(ConfigError::Invalid {
            key,
            message: format!(
                "{value} is out of range: use a value from {min} to {}",
                i32::MAX
            ),
        });
    }
    Ok(value)
}

impl ConnectionLimits {
    fn resolve(file: &FileLimits, cli: &Flags, tcp_nodelay: bool) -> Result<Self, ConfigError> {
        let d = ConnectionLimits::default();
        let pick = |flag: Option<usize>, key: Option<usize>, default: usize| {
            flag.or(key).unwrap_or(default)
        };
        let policy_name = cli
            .send_queue_drop_policy
            .clone()
            .or_else(|| file.send_queue_drop_policy.clone());
        let send_queue_drop_policy = match policy_name {
            None => d.send_queue_drop_policy,
            Some(name) => DropPolicy::from_name(&name).ok_or(ConfigError::Invalid {
                key: "limits.send_queue_drop_policy",
                message: format!(
                    "{name:?} is not a drop policy: use oldest, newest, largest, fail or none"
                ),
            })?,
        };
        Ok(ConnectionLimits {
            packet_max_length: limit(
                "limits.packet_max_length",
                pick(
                    cli.packet_max_length,
                    file.packet_max_length,
                    d.packet_max_length,
                ),
                1024,
            )?,
            subscription_max_count: limit(
                "limits.subscription_max_count",
                pick(
                    cli.subscription_max_count,
                    file.subscription_max_count,
                    d.subscription_max_count,
                ),
                1,
            )?,
            subscription_max_length: limit(
                "limits.subscription_max_length",
                pick(
                    cli.subscription_max_length,
                    file.subscription_max_length,
                    d.subscription_max_length,
                ),
                16,
            )?,
            subscription_max_keys: limit(
                "limits.subscription_max_keys",
                pick(
                    cli.subscription_max_keys,
                    file.subscription_max_keys,
                    d.subscription_max_keys,
                ),
                0,
            )?,
            connection_max_keys: limit(
                "limits.connection_max_keys",
                pick(
                    cli.connection_max_keys,
                    file.connection_max_keys,
                    d.connection_max_keys,
                ),
                0,
            )?,
            send_queue_max_length: limit(
                "limits.send_queue_max_length",
                pick(
                    cli.send_queue_max_length,
                    file.send_queue_max_length,
                    d.send_queue_max_length,
                ),
                1024,
            )?,
            send_queue_drop_policy,
            receive_queue_max_length: limit(
                "limits.receive_queue_max_length",
                pick(
                    cli.receive_queue_max_length,
                    file.receive_queue_max_length,
                    d.receive_queue_max_length,
                ),
                1024,
            )?,
            tcp_nodelay,
            regex_bytes_per_subscription: file
                .regex_bytes_per_subscription
                .unwrap_or(d.regex_bytes_per_subscription),
            regex_bytes_per_connection: file
                .regex_bytes_per_connection
                .unwrap_or(d.regex_bytes_per_connection),
            regex_bytes_total: file.regex_bytes_total.unwrap_or(d.regex_bytes_total),
        })
    }
}

impl Settings {
    /// Reads the file named by `cli.config` (if any) and merges it with the
    /// flags.
    pub fn load(cli: &Flags) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Settings::resolve(&file, cli)
    }

    /// Merges a parsed file with the flags and validates the result.
    pub fn resolve(file: &FileConfig, cli: &Flags) -> Result<Settings, ConfigError> {
        let listen_text: Vec<String> = if !cli.listen.is_empty() {
            cli.listen.clone()
        } else {
            file.listen
                .clone()
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()])
        };
        let listen = listen_text
            .iter()
            .map(|text| {
                ElvinUri::parse(text).map_err(|e| ConfigError::Invalid {
                    key: "listen",
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let workers = match cli.workers.or(file.workers) {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: "workers",
                    message: "0 worker threads cannot run anything: use 1 or more".into(),
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };

        let stats = seconds(
            "stats_interval",
            cli.stats_interval.or(file.stats_interval).unwrap_or(60.0),
            true,
        )?;
        let metrics_listen = match cli.metrics_listen.as_ref().or(file.metrics_listen.as_ref()) {
            None => None,
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|e| ConfigError::Invalid {
                        key: "metrics_listen",
                        message: format!(
                            "{text:?} is not an address:port ({e}); write e.g. 127.0.0.1:9917"
                        ),
                    })?,
            ),
        };
        let max_connections = cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(100_000);
        if max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                message: "0 would refuse every client: use 1 or more".into(),
            });
        }
        let tcp_nodelay = cli.tcp_nodelay.or(file.tcp_nodelay).unwrap_or(true);
        let limits = ConnectionLimits::resolve(&file.limits, cli, tcp_nodelay)?;

        let file_tls = file.tls.clone().unwrap_or_default();
        let cert = cli.tls_cert.clone().or(file_tls.cert);
        let key = cli.tls_key.clone().or(file_tls.key);
        let client_ca = cli.tls_client_ca.clone().or(file_tls.client_ca);
        let require_client_cert =
            cli.tls_require_client_cert || file_tls.require_client_cert.unwrap_or(false);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert,
                key,
                client_ca,
                require_client_cert,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "tls",
                    message: "a certificate needs its key and a key its certificate: set both \
                              tls.cert and tls.key (or --tls-cert and --tls-key)"
                        .into(),
                });
            }
        };
        if let Some(tls) = &tls
            && tls.require_client_cert
            && tls.client_ca.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "tls.require_client_cert",
                message: "requiring client certificates needs a CA bundle to check them \
                              against: set tls.client_ca (or --tls-client-ca)"
                    .into(),
            });
        }
        if tls.is_none() && listen.iter().any(|uri| uri.transport == Transport::Ssl) {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: "a TLS endpoint (elvin:/secure/...) needs a certificate and key: set \
                          tls.cert and tls.key (or --tls-cert and --tls-key)"
                    .into(),
            });
        }

        let mut listen = listen;
        let endpoints = listen
            .iter_mut()
            .map(|uri| endpoint_settings(uri, max_connections))
            .collect::<Result<Vec<_>, _>>()?;
        let max_connections_per_source = cli
            .max_connections_per_source
            .or(file.max_connections_per_source)
            .filter(|n| *n > 0);

        let budget_ms = cli
            .notification_time_budget_ms
            .or(file.notification_time_budget_ms)
            .unwrap_or(20.0);
        if !(0.0..=60_000.0).contains(&budget_ms) {
            return Err(ConfigError::Invalid {
                key: "notification_time_budget_ms",
                message: format!("{budget_ms} is out of range: use 0 (off) to 60000"),
            });
        }
        let notification_time_budget = Duration::from_secs_f64(budget_ms / 1000.0);

        let frame_timeout = seconds(
            "frame_timeout",
            cli.frame_timeout.or(file.frame_timeout).unwrap_or(30.0),
            false,
        )?;
        let partial_frame_budget = cli
            .partial_frame_budget
            .or(file.partial_frame_budget)
            .unwrap_or(256 << 20);

        Ok(Settings {
            listen,
            endpoints,
            max_connections_per_source,
            notification_time_budget,
            frame_timeout,
            partial_frame_budget,
            workers,
            log_level: cli.log_level.clone().or_else(|| file.log_level.clone()),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            stats_interval: (!stats.is_zero()).then_some(stats),
            metrics_listen,
            max_connections,
            idle_timeout: seconds(
                "idle_timeout",
                cli.idle_timeout.or(file.idle_timeout).unwrap_or(15.0),
                false,
            )?,
            shutdown_timeout: seconds(
                "shutdown_timeout",
                cli.shutdown_timeout
                    .or(file.shutdown_timeout)
                    .unwrap_or(5.0),
                false,
            )?,
            limits,
            tls,
            config_path: cli.config.clone(),
            user: cli.user.clone().or_else(|| file.user.clone()),
            group: cli.group.clone().or_else(|| file.group.clone()),
            syslog: (cli.syslog || cli.syslog_socket.is_some() || file.syslog == Some(true)).then(
                || {
                    cli.syslog_socket
                        .clone()
                        .or_else(|| file.syslog_socket.clone())
                        .unwrap_or_else(|| {
                            PathBuf::from(tbevents_cli::syslog::DEFAULT_SYSLOG_SOCKET)
                        })
                },
            ),
        })
    }
}
