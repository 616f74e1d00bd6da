//! Log set-up: tracing to stderr, or appended to the `-l` file.
//!
//! The original redirected stdout and stderr to its log file (opened for
//! append, mode 0640). We open the file the same way and write tracing's
//! plain-text lines to it. `-d` sets the level (once: every fired event
//! with its lateness, the agent table; twice: everything, including the
//! client library's debug output). As in every tbevents program
//! (`tbevents_cli::logging`), an explicit `-d` beats `RUST_LOG`, which
//! beats the default `info`.

use std::path::Path;

pub use tbevents_cli::logging::{LOG_FILE_MODE, LogFileError};
use tbevents_cli::logging::{LogSetup, init as init_subscriber};

/// The level `-d` given `debug` times asks for, if any.
pub fn debug_level(debug: u8) -> Option<&'static str> {
    match debug {
        0 => None,
        1 => Some("info,tbevents_sched=debug,event_sched=debug"),
        _ => Some("debug,tbevents_sched=trace,event_sched=trace"),
    }
}

/// Installs the global subscriber.
pub fn init(debug: u8, logfile: Option<&Path>) -> Result<(), LogFileError> {
    init_subscriber(&LogSetup {
        level: debug_level(debug),
        file: logfile,
        ..LogSetup::new("event-sched", "info")
    })
    .map(drop)
}
