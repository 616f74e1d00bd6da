//! `tbevents-relay`: the legacy event-port relay. The command line and the
//! signals live here; the relay itself is `tbevents_tools::relay`, and
//! docs/relay.md describes it.

// The flags' doc comments are `--help` text, where `[2001:db8::1]:2917`
// is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tbevents_cli::runtime::Threads;
use tbevents_tools::relay::{
    DEFAULT_MAX_CONNECTIONS, Relay, RelayConfig, RelayError, Target, raise_open_files_limit,
};

fn main() -> ExitCode {
    ExitCode::from(run_main())
}

/// Exit status for a relay that cannot run (listen socket, runtime).
const EXIT_FAILURE: u8 = 1;

/// Exit status for bad arguments (clap's own).
const EXIT_USAGE: u8 = 2;

/// The DESCRIPTION section of `--help`.
const DESCRIPTION: &str = "\
DESCRIPTION
    Accepts TCP connections on --listen and copies each one, byte for byte and in both \
directions, to --target. It replaces the inetd + \"nc -w 3\" entry that forwarded the \
old event port (boss:2917) to the event server: old node images keep connecting where \
they always did and their Elvin sessions run end to end with the real router, so \
subscriptions, keys and event signatures are unaffected.

    The target name is looked up again for every connection, so a DNS change (moving \
event-server) takes effect for the next connection without a restart.

";

/// The rest of the manual page, after the options.
const MANUAL: &str = "\
BEHAVIOUR
    The end of one direction is passed on as a TCP half-close; the connection closes when \
both directions have ended or the open one is silent for --linger. There is no idle \
timeout unless --idle-timeout is given (subscribers may wait hours); dead peers are found \
by TCP keep-alive. Beyond --max-connections a new connection is accepted and closed at \
once, with a log line. Each connection is logged once, when it closes, with its bytes, \
duration and how it ended (end=...). docs/relay.md has the details.

SIGNALS
    SIGTERM or SIGINT: stop accepting, close every open connection (each logs its \
line with end=shutdown) and exit.

EXIT STATUS
    0 after a signal; 1 if the listening socket cannot be opened or the runtime fails; \
2 for bad arguments.

EXAMPLES
    Forward the old event port on boss to the event server on ops:
        tbevents-relay --listen 192.0.2.1:2917 --target event-server:2917

    Allow 5000 old nodes and close connections silent for a day:
        tbevents-relay --listen 0.0.0.0:2917 --target ops:2917 \\
            --max-connections 5000 --idle-timeout 24h

SEE ALSO
    eventd(8), evproxy(8); docs/relay.md in the tbevents source.";

/// Parses `--target`.
fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).map_err(|error| error.to_string())
}

/// The command line of `tbevents-relay`.
#[derive(Debug, Parser)]
#[command(
    name = "tbevents-relay",
    version,
    about = "Copy connections on an old event port to the event server (the legacy relay)",
    help_template = tbevents_cli::MANPAGE_HELP_TEMPLATE,
    before_long_help = DESCRIPTION,
    after_long_help = MANUAL,
    after_help = "Run with --help for the full manual."
)]
struct Cli {
    /// Address and port to accept connections on, e.g. 0.0.0.0:2917 or the
    /// old server's own address. A host name is resolved once, at start.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: String,

    /// Where each connection is copied to, e.g. event-server:2917 or
    /// [2001:db8::1]:2917. Resolved again for every connection.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    target: Target,

    /// Most connections relayed at once; more are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Time allowed to resolve the target and connect to it; past it the
    /// client's connection is closed (the original's nc -w 3).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = tbevents_cli::parse_duration)]
    connect_timeout: Duration,

    /// After one side ends its stream, how long the other direction may
    /// move no data before the connection is closed. 0 closes at the first end.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = tbevents_cli::parse_duration)]
    linger: Duration,

    /// Close a connection that moves no data either way for this long.
    /// [default: off, since Elvin subscribers are quiet for hours]
    #[arg(long, value_name = "DURATION", value_parser = tbevents_cli::parse_duration)]
    idle_timeout: Option<Duration>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    /// Beats RUST_LOG. [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

async fn run_cli(cli: Cli) -> u8 {
    let shutdown = match tbevents_cli::shutdown_requested() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            tracing::error!(%error, "cannot install the SIGTERM/SIGINT handlers");
            return EXIT_FAILURE;
        }
    };
    let mut config = RelayConfig::new(cli.listen, cli.target);
    config.max_connections = cli.max_connections;
    config.connect_timeout = cli.connect_timeout;
    config.linger = cli.linger;
    config.idle_timeout = cli.idle_timeout;
    raise_open_files_limit(config.max_connections);
    let target = config.target.clone();
    let relay = match Relay::bind(config).await {
        Ok(relay) => relay,
        Err(error @ RelayError::BadSetting(_)) => {
            eprintln!("tbevents-relay: {error}");
            return EXIT_USAGE;
        }
        Err(error) => {
            tracing::error!("{error}");
            return EXIT_FAILURE;
        }
    };
    // Not fatal: the name is looked up again for every connection, and
    // DNS may well be fixed before the first client arrives.
    match target.resolve().await {
        Ok(addresses) if !addresses.is_empty() => {
            tracing::debug!(target = %target, ?addresses, "target resolves")
        }
        Ok(_) => tracing::warn!(target = %target, "the target name has no addresses (yet)"),
        Err(error) => {
            tracing::warn!(target = %target, %error, "the target name does not resolve (yet)")
        }
    }
    relay.run(shutdown).await;
    0
}

/// Runs `tbevents-relay` and returns the exit status: 0 after SIGTERM or
/// SIGINT (or for `--help`), 1 when the relay cannot run, 2 for bad
/// arguments.
fn run_main() -> u8 {
    let cli: Cli = match tbevents_cli::args::parse_or_exit(std::env::args_os(), EXIT_USAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    tbevents_cli::init_logging(
        "tbevents-relay",
        cli.log_level.as_deref(),
        "info",
        tbevents_cli::LogStyle::Daemon,
    );
    tbevents_cli::runtime::block_on("tbevents-relay", Threads::PerCore, run_cli(cli))
        .unwrap_or_else(|error| {
            tracing::error!(%error, "cannot start the runtime");
            EXIT_FAILURE
        })
}
