//! `evproxy`: the per-node event proxy. The command line and the signals
//! live here; the proxy itself is `tbevents_tools::evproxy`, and
//! docs/evproxy.md describes it.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tbevents_cli::runtime::Threads;
use tbevents_event::config::resolve_event_server;
use tbevents_tools::evproxy::{
    DEFAULT_LOCAL_SERVER, ForwardCounts, ProxyConfig, ProxyError, router_uri, run,
    validate_experiment,
};

fn main() -> ExitCode {
    ExitCode::from(run_main())
}

/// Exit status when the proxy cannot run or stops on an error.
const EXIT_FAILURE: u8 = 1;

/// Exit status for bad arguments.
const EXIT_USAGE: u8 = 2;

/// The DESCRIPTION section of `--help`.
const DESCRIPTION: &str = "\
DESCRIPTION
    Runs on each experimental node and joins the node's own event router (-l, where the \
node's agents connect) to the experiment's event server (-s), so that all agents on the \
node share one upstream connection.

    Upstream to local: it subscribes on the event server to this experiment's fired events \
that are broadcast or addressed to this node,
        ( EXPT == \"pid/eid\" ) && ( HOST == \"*\" || HOST == \"<address>\" ) && SCHEDULER == 0
    and republishes each one, unchanged, on the local router.

    Local to upstream: it subscribes on the local router to this experiment's scheduler \
requests,
        ( EXPT == \"pid/eid\" ) && SCHEDULER == 1
    (whatever their HOST), and republishes each one, unchanged, on the event server.

";

/// The rest of the manual page, after the options.
const MANUAL: &str = "\
SIGNATURES
    evproxy holds no key: it neither signs nor checks, and republishes every attribute as \
received, __hmac__ included. The agents that receive an event check the producer's \
signature with the experiment key.

LOOPS
    Upstream to local carries only SCHEDULER == 0 and local to upstream only SCHEDULER == 1, \
and evproxy never changes SCHEDULER, so nothing it publishes can come back to it, and an \
event published on the local router with SCHEDULER == 0 never goes upstream. Pointing -s \
and -l at the same router would loop; evproxy refuses to start when they resolve to the \
same address.

NODE ADDRESS
    Events for one node carry its control-network IPv4 address in HOST. Without -i, \
evproxy uses the local address of its route to the event server (the address the server \
sees), else the host name's IPv4 address, else /var/emulab/boot/myip; it exits if none \
is found. The address is chosen once, at start.

CONNECTIONS
    A router that is down at start, restarts or vanishes is retried every --retry-interval \
for ever; subscriptions are renewed on the new connection without a restart. Events \
published while a connection is down are lost (routers keep nothing), counted and logged. \
evproxy runs in the foreground and writes no pid file: the init system manages it.

LOGGING
    To standard error: a line at start (addresses and subscriptions), a summary of the \
counts every --stats-interval and at exit (upstream_to_local, local_to_upstream, the \
failures of each, and events dropped because evproxy fell behind), a line when a \
connection is lost and when it is back, and with -d one line per forwarded event: \
direction, EVENTTYPE OBJTYPE OBJNAME. --log-level (or RUST_LOG) sets the filter.

SIGNALS
    SIGTERM or SIGINT: log the counts, disconnect from both routers and exit 0.

EXIT STATUS
    0 after a signal; 1 when evproxy cannot run (no node address, the routers are the same, \
a router refused the connection or a subscription for good); 2 for bad arguments.

ENVIRONMENT
    Without -s, the event server is taken from TBEVENTS_SERVER, else from event_server in \
the file named by TBEVENTS_CONFIG (default /etc/tbevents/tbevents.toml), else \
event-server.

EXAMPLES
    The usual node setup:
        evproxy -s event-server -e testbed/myexp

    A local router on another port, a fixed node address, every event logged:
        evproxy -s ops.example.net -p 2917 -l localhost:16505 -e testbed/myexp -i 10.1.1.2 -d

SEE ALSO
    eventd(8), tbevents-relay(8); docs/evproxy.md in the tbevents source.";

/// The command line of `evproxy`.
#[derive(Debug, Parser)]
#[command(
    name = "evproxy",
    version,
    about = "Forward an experiment's events between the event server and a node's router",
    help_template = tbevents_cli::MANPAGE_HELP_TEMPLATE,
    before_long_help = DESCRIPTION,
    after_long_help = MANUAL,
    after_help = "Run with --help for the full manual."
)]
struct Cli {
    /// The event server (upstream router): HOST, HOST:PORT or an elvin: URI.
    /// [default: TBEVENTS_SERVER, the configuration file, or event-server]
    #[arg(short = 's', long = "server", value_name = "SERVER")]
    server: Option<String>,

    /// The event server's port. [default: 2917]
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port: Option<u16>,

    /// The node's own router: HOST, HOST:PORT or an elvin: URI.
    #[arg(short = 'l', long = "local", value_name = "LOCALSERVER", default_value = DEFAULT_LOCAL_SERVER)]
    local: String,

    /// The experiment, as pid/eid.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
    experiment: String,

    /// This node's control-network IPv4 address, as events for it carry in
    /// HOST. [default: the address the event server sees]
    #[arg(short = 'i', long = "address", value_name = "MYADDR")]
    address: Option<String>,

    /// Log one line per forwarded event.
    #[arg(short = 'd', long = "debug")]
    debug: bool,

    /// Time between summary lines of the counts; 0 logs only the final one.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = tbevents_cli::parse_duration)]
    stats_interval: Duration,

    /// Time between attempts to reach a router that is down.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = tbevents_cli::parse_duration)]
    retry_interval: Duration,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    /// Beats RUST_LOG. [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

/// Turns the command line into a configuration (usage errors only).
fn configure(cli: Cli) -> Result<ProxyConfig, ProxyError> {
    let experiment = validate_experiment(&cli.experiment)?;
    let local = router_uri("local", &cli.local, None)?;
    let node_address = cli
        .address
        .map(|text| {
            text.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::BadAddress { given: text })
        })
        .transpose()?;
    if cli.retry_interval.is_zero() {
        return Err(ProxyError::BadSetting(
            "--retry-interval must be longer than zero".to_owned(),
        ));
    }
    // Last: it may read the configuration file.
    let server = resolve_event_server(cli.server.as_deref())?;
    let upstream = router_uri("upstream", &server.host, cli.port)?;
    Ok(ProxyConfig {
        upstream,
        local,
        experiment,
        node_address,
        log_each_event: cli.debug,
        stats_interval: (!cli.stats_interval.is_zero()).then_some(cli.stats_interval),
        retry_interval: cli.retry_interval,
    })
}

/// Installs the signal handlers, then runs the proxy until SIGTERM or
/// SIGINT.
async fn run_until_signal(config: ProxyConfig) -> Result<ForwardCounts, ProxyError> {
    let shutdown = tbevents_cli::shutdown_requested().map_err(ProxyError::Signals)?;
    run(config, shutdown).await
}

/// Runs `evproxy` and returns the exit status: 0 after SIGTERM or SIGINT
/// (or for `--help`), 1 when the proxy cannot run, 2 for bad arguments.
fn run_main() -> u8 {
    let cli: Cli = match tbevents_cli::args::parse_or_exit(std::env::args_os(), EXIT_USAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    tbevents_cli::init_logging(
        "evproxy",
        cli.log_level.as_deref(),
        "info",
        tbevents_cli::LogStyle::Daemon,
    );
    let config = match configure(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("evproxy: {error}");
            return EXIT_USAGE;
        }
    };
    let result =
        tbevents_cli::runtime::block_on("evproxy", Threads::Workers(2), run_until_signal(config));
    match result {
        Ok(Ok(_)) => 0,
        Ok(Err(error)) => {
            tracing::error!("evproxy: {error}");
            EXIT_FAILURE
        }
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            EXIT_FAILURE
        }
    }
}
