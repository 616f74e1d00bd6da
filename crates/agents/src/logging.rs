//! Log set-up shared by the agents: tracing lines on stderr.
//!
//! Agents log one line per thing they did (an event acted on, a program
//! started or finished, a sink's measured rate), so stderr is their
//! activity log; whoever starts them (the testbed, an init script)
//! decides where it goes. As in every tbevents program
//! (`tbevents_cli::logging`), an explicit `-d` beats `RUST_LOG`, which
//! beats the default `info`.

use tbevents_cli::{LogStyle, init_logging};

/// The level `-d` given `debug` times asks for, if any.
pub fn debug_level(debug: u8) -> Option<&'static str> {
    match debug {
        0 => None,
        1 => Some("info,tbevents_agents=debug"),
        _ => Some("debug,tbevents_agents=trace"),
    }
}

/// Installs the global subscriber for `program` (a second call does
/// nothing).
pub fn init(program: &str, debug: u8) {
    init_logging(program, debug_level(debug), "info", LogStyle::Daemon);
}
