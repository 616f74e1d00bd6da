//! `eventd`: the tbevents Elvin 4 event router.
//!
//! A thin wrapper over the `elvin_router` library: parse the flags and the
//! configuration file, set up logging (with a reload handle for SIGHUP),
//! raise the open-files limit so tens of thousands of clients can connect,
//! build the tokio runtime with the configured worker count, and run the
//! server until SIGTERM or SIGINT. Exit codes: 0 after a clean shutdown,
//! 1 when the router fails while running (say, a port already in use),
//! 2 for a configuration error.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use elvin_router::config::{Cli, LogFormat, Settings};
use elvin_router::server::{self, LogReloader};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter at start-up: `--log-level`, then `log_level` in the
/// file, then `RUST_LOG`, then `info`.
fn initial_filter(settings: &Settings) -> EnvFilter {
    if let Some(level) = &settings.log_level {
        match EnvFilter::try_new(level) {
            Ok(filter) => return filter,
            Err(error) => eprintln!("eventd: bad log level {level:?} ({error}); using info"),
        }
    } else if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    EnvFilter::new("info")
}

fn init_logging(settings: &Settings) -> LogReloader {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(initial_filter(settings));
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colour codes only for a terminal, not for log files.
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    Arc::new(move |directive: &str| {
        let filter = EnvFilter::try_new(directive).map_err(|e| format!("{directive:?}: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every client is a file
/// descriptor, and the usual soft limit of 1024 is far below what a router
/// serving 10,000 agents needs.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open files limit"),
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open files limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open files limit already at its maximum"),
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli) {
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers)
        .thread_name("eventd-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(settings, cli, reload));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("eventd failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}
