//! Log set-up: tracing to stderr, or appended to the `-l` file.
//!
//! The original redirected stdout and stderr to its log file (opened for
//! append, mode 0640). We open the file the same way and write tracing's
//! plain-text lines to it; `-d` raises the level (once: every fired event
//! with its lateness, the agent table; twice: everything, including the
//! client library's debug output). `RUST_LOG`, when set, replaces the
//! level chosen by `-d`.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Mode the log file is created with.
pub const LOG_FILE_MODE: u32 = 0o640;

/// The log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}; check the directory exists and is writable")]
pub struct LogFileError {
    /// The file.
    pub path: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Installs the global subscriber.
pub fn init(debug: u8, logfile: Option<&Path>) -> Result<(), LogFileError> {
    let default = match debug {
        0 => "info",
        1 => "info,tbevents_sched=debug,event_sched=debug",
        _ => "debug,tbevents_sched=trace,event_sched=trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match logfile {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(LOG_FILE_MODE)
                .open(path)
                .map_err(|source| LogFileError {
                    path: path.display().to_string(),
                    source,
                })?;
            let _ = builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init();
        }
        None => {
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
    Ok(())
}
