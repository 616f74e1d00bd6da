//! Command-line plumbing shared by the tools: logging set-up, the
//! manual-page layout of `--help`, and waiting for SIGTERM or SIGINT.
//!
//! Each tool owns its flags, messages and exit statuses; what lives here
//! is only what every tool must do the same way, so that an operator sees
//! one log format and one `--help` layout across `tevc`, `eventdebug`,
//! `evproxy` and `tbevents-relay`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The layout of `-h` and `--help` for the daemons: a manual page (NAME,
/// SYNOPSIS, DESCRIPTION from `before_help`, OPTIONS, then `after_help`).
pub const MANPAGE_HELP_TEMPLATE: &str = "\
NAME
    {name} - {about}

SYNOPSIS
    {usage}

{before-help}OPTIONS
{options}
{after-help}";

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// Long-running programs (`evproxy`, `tbevents-relay`): timestamps and
    /// targets, for a log file or the journal.
    Daemon,
    /// One-shot and interactive tools (`tevc`, `eventdebug`): just the
    /// message, since the user is reading it as it happens.
    Tool,
}

/// Sends log lines to standard error.
///
/// The filter is `level` (a `--log-level` flag) if given, else `RUST_LOG`,
/// else `default`. A bad `level` is reported and replaced by `default`.
/// Colours only on a terminal, so captured logs stay plain text.
pub fn init_logging(program: &str, level: Option<&str>, default: &str, style: LogStyle) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|error| {
            eprintln!("{program}: bad --log-level {level:?} ({error}); using {default}");
            EnvFilter::new(default)
        }),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialisation (tests call `main` repeatedly) is harmless.
    let _ = match style {
        LogStyle::Daemon => builder.try_init(),
        LogStyle::Tool => builder.without_time().with_target(false).try_init(),
    };
}

/// Resolves with the signal's name when SIGTERM or SIGINT arrives. Both
/// handlers are installed before this returns, so a signal sent right
/// after start-up is not lost.
pub fn termination()
-> std::io::Result<impl std::future::Future<Output = &'static str> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}
