//! Process plumbing shared by every tbevents program, in one place so that
//! an operator sees one behaviour everywhere (like ripgrep's `crates/cli`).
//!
//! | module | what |
//! |---|---|
//! | [`logging`] | tracing set-up: one precedence rule (flag, then `RUST_LOG`, then the program's default), stderr or a log file, text or JSON, a reload handle for SIGHUP |
//! | [`syslog`] | log lines to `/dev/log` (journald or syslogd) as well |
//! | [`signals`] | waiting for SIGTERM or SIGINT |
//! | [`limits`] | raising the open-files limit |
//! | [`duration`] | `3s`, `250ms`, `1m` flags |
//! | [`programs`] | finding (and in a source tree, building) the sibling programs a command starts |
//! | [`help`] | the manual-page layout of the daemons' `--help` |
//! | [`args`] | parsing `argv` with the exit conventions; the one-line usage problem |
//! | [`runtime`] | running the main future on a Tokio runtime, with a bounded shutdown |
//!
//! Each program owns its flags, messages and exit statuses; nothing here
//! decides those.

pub mod args;
pub mod duration;
pub mod help;
pub mod limits;
pub mod logging;
pub mod programs;
pub mod runtime;
pub mod signals;
pub mod syslog;

pub use duration::parse_duration;
pub use help::MANPAGE_HELP_TEMPLATE;
pub use logging::{LogFormat, LogReloader, LogSetup, LogStyle, init_logging};
pub use signals::{shutdown_requested, termination};
