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

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use elvin_router::config::{Cli, LogFormat, Settings};
use elvin_router::server::{LogReloader, Reloader, Router};
use tokio::signal::unix::{SignalKind, signal};

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
    let result = runtime.block_on(serve(settings, cli, reload));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("eventd failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, then runs the router until SIGTERM or SIGINT, reloading on SIGHUP.
async fn serve(settings: Settings, cli: Cli, log: LogReloader) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Handlers first, so a signal sent right after start-up is not lost.
    let termination = tbevents_cli::signals::termination().context("cannot watch SIGTERM")?;
    let mut hangups = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let router = Router::bind(settings).await?;
    let reloader = router.reloader(log);
    let shutdown = async move {
        tokio::pin!(termination);
        loop {
            tokio::select! {
                name = &mut termination => {
                    tracing::info!("{name}: shutting down");
                    return;
                }
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
    match Settings::load(cli) {
        Ok(settings) => reloader.apply(settings, &path.display().to_string()),
        Err(error) => {
            tracing::error!(%error, "SIGHUP: configuration not reloaded; the running settings stay");
        }
    }
}
