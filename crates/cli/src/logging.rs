//! Logging set-up for every tbevents program.
//!
//! **One precedence rule everywhere**: the level the operator gave
//! explicitly (a `--log-level` or `-d` flag, or the program's configuration
//! file) wins; otherwise `RUST_LOG`; otherwise the program's default. A bad
//! explicit level is reported on stderr and replaced by the default, so a
//! typo never silences a daemon.
//!
//! Lines go to standard error (colour only on a terminal) or, for programs
//! with a `-l` log file, are appended to that file (created mode 0640, as
//! the original scheduler's log), and optionally to syslog as well
//! ([`crate::syslog`]). Daemons get timestamps and targets;
//! interactive tools get just the message. Every set-up returns a
//! [`LogReloader`] so a daemon can change its level on SIGHUP.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Mode a log file is created with.
pub const LOG_FILE_MODE: u32 = 0o640;

/// Changes the log filter at run time (a directive such as `debug` or
/// `info,elvin_router=trace`); the error says what was wrong with it.
pub type LogReloader = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// Long-running programs: timestamps and targets, for a log file or
    /// the journal.
    Daemon,
    /// One-shot and interactive tools: just the message, since the user is
    /// reading it as it happens.
    Tool,
}

/// Text for people, or one JSON object per line for log collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Plain text.
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// What a program asks of [`init`].
#[derive(Clone, Copy, Debug)]
pub struct LogSetup<'a> {
    /// The program's name, for messages about the set-up itself.
    pub program: &'a str,
    /// The level the operator gave explicitly, if any.
    pub level: Option<&'a str>,
    /// The program's default level.
    pub default: &'a str,
    /// Daemon or tool lines.
    pub style: LogStyle,
    /// Text or JSON.
    pub format: LogFormat,
    /// Append to this file instead of writing to stderr.
    pub file: Option<&'a Path>,
    /// Also send every line to this syslog socket (normally `/dev/log`;
    /// see [`crate::syslog`]).
    pub syslog: Option<&'a Path>,
}

impl<'a> LogSetup<'a> {
    /// A daemon logging text to stderr at `default` unless told otherwise.
    pub fn new(program: &'a str, default: &'a str) -> Self {
        LogSetup {
            program,
            level: None,
            default,
            style: LogStyle::Daemon,
            format: LogFormat::Text,
            file: None,
            syslog: None,
        }
    }
}

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

/// The filter the precedence rule picks (see the module docs).
pub fn filter(program: &str, level: Option<&str>, default: &str) -> EnvFilter {
    if let Some(level) = level {
        return EnvFilter::try_new(level).unwrap_or_else(|error| {
            eprintln!("{program}: bad log level {level:?} ({error}); using {default}");
            EnvFilter::new(default)
        });
    }
    std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default))
}

type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// The formatting layer for `setup`, writing to `writer`.
fn fmt_layer<W>(
    setup: &LogSetup<'_>,
    writer: W,
    ansi: bool,
) -> Box<dyn Layer<Filtered> + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match (setup.format, setup.style) {
        (LogFormat::Json, _) => layer.json().boxed(),
        (LogFormat::Text, LogStyle::Daemon) => layer.boxed(),
        (LogFormat::Text, LogStyle::Tool) => layer.without_time().with_target(false).boxed(),
    }
}

/// Installs the global subscriber. A second call in one process (tests
/// that run a `main` twice) leaves the first in place.
pub fn init(setup: &LogSetup<'_>) -> Result<LogReloader, LogFileError> {
    let (filter_layer, handle) =
        reload::Layer::new(filter(setup.program, setup.level, setup.default));
    let output = match setup.file {
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
            fmt_layer(setup, Mutex::new(file), false)
        }
        None => fmt_layer(setup, std::io::stderr, std::io::stderr().is_terminal()),
    };
    let syslog = setup
        .syslog
        .map(|path| crate::syslog::SyslogLayer::new(setup.program, path));
    let _ = tracing_subscriber::registry()
        .with(filter_layer)
        .with(output)
        .with(syslog)
        .try_init();
    Ok(Arc::new(move |directive: &str| {
        let filter = EnvFilter::try_new(directive).map_err(|e| format!("{directive:?}: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// The tools' one-line set-up: text to stderr.
pub fn init_logging(program: &str, level: Option<&str>, default: &str, style: LogStyle) {
    let setup = LogSetup {
        level,
        style,
        ..LogSetup::new(program, default)
    };
    // Only a log file can fail to open; there is none here.
    let _ = init(&setup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_level_beats_rust_log_and_a_bad_one_falls_back() {
        // SAFETY: the test sets and clears a variable no other test reads.
        unsafe { std::env::set_var("RUST_LOG", "trace") };
        assert_eq!(filter("t", Some("warn"), "info").to_string(), "warn");
        assert_eq!(filter("t", None, "info").to_string(), "trace");
        assert_eq!(filter("t", Some("=!bad"), "info").to_string(), "info");
        // SAFETY: as above.
        unsafe { std::env::remove_var("RUST_LOG") };
        assert_eq!(filter("t", None, "error").to_string(), "error");
    }

    #[test]
    fn a_log_file_is_created_0640_and_reload_checks_the_directive() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let setup = LogSetup {
            file: Some(&path),
            ..LogSetup::new("t", "info")
        };
        let reload = init(&setup).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, LOG_FILE_MODE);
        assert!(reload("debug").is_ok());
        assert!(reload("=!bad").is_err());
        let missing = dir.path().join("no/such/dir.log");
        let error = init(&LogSetup {
            file: Some(&missing),
            ..LogSetup::new("t", "info")
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("check the directory exists"), "{error}");
    }
}
