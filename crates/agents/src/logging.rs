//! Log set-up shared by the agents: tracing lines on stderr.
//!
//! Agents log one line per thing they did (an event acted on, a program
//! started or finished, a sink's measured rate), so stderr is their
//! activity log; whoever starts them (the testbed, an init script)
//! decides where it goes. `-d` raises the level; `RUST_LOG`, when set,
//! replaces the level chosen by `-d`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (a second call does nothing).
pub fn init(debug: u8) {
    let default = match debug {
        0 => "info",
        1 => "info,tbevents_agents=debug",
        _ => "debug,tbevents_agents=trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
