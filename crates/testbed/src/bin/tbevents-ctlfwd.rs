//! `tbevents-ctlfwd`: the emulated testbed's control forwarder (see the
//! `forward` module of `tbevents-testbed`). `tbevents testbed up` starts
//! one per experiment; it is not meant to be run by hand.
//!
//! It binds every listener inside its namespace, prints `ready` on
//! standard output (the testbed waits for that line), then relays until
//! SIGTERM or SIGINT.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use tbevents_cli::runtime::{Threads, block_on};
use tbevents_testbed::forward::{self, Listen};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tbevents-ctlfwd",
    version,
    about = "Relay node namespaces' control connections to the experiment's event server"
)]
struct Cli {
    /// The experiment's name prefix (only to tell forwarders apart in `ps`
    /// and for the testbed's clean-up).
    #[arg(long, value_name = "PREFIX")]
    testbed: String,
    /// The event server, HOST:PORT, as reached from the host.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: String,
    /// Listen inside NAMESPACE at ADDRESS:PORT (repeatable).
    #[arg(long, value_name = "NAMESPACE=ADDRESS:PORT", value_parser = forward::parse_listen, required = true)]
    listen: Vec<Listen>,
    /// Log filter (error, warn, info, debug, trace); beats RUST_LOG.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tbevents_cli::init_logging(
        "tbevents-ctlfwd",
        cli.log_level.as_deref(),
        "info",
        tbevents_cli::LogStyle::Daemon,
    );
    let bound = match forward::bind_all(&cli.listen) {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("tbevents-ctlfwd: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = block_on("tbevents-ctlfwd", Threads::Current, async {
        let shutdown = tbevents_cli::shutdown_requested()?;
        tracing::info!(testbed = %cli.testbed, upstream = %cli.upstream, listeners = bound.len(), "forwarding");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
        tokio::select! {
            result = forward::serve(bound, cli.upstream.clone()) => result,
            () = shutdown => Ok(()),
        }
    })
    .unwrap_or_else(|error| Err(anyhow::Error::new(error).context("cannot start the async runtime")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tbevents-ctlfwd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
