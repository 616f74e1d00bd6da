//! The tbevents command-line tools, one module per tool. Each module is
//! the tool's work (checking, connecting, relaying, printing) behind plain
//! settings; each binary in `src/bin/` owns its command line, manual,
//! logging set-up and signals, and turns the flags into those settings.

pub mod eventdebug;
pub mod evproxy;
pub mod relay;
pub mod tevc;
