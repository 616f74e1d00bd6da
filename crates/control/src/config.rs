//! Where the scheduler control keeps its files and how it starts
//! `event-sched`: `/etc/tbevents/control.toml`.
//!
//! The proxy runs as root, so everything that decides what it executes and
//! where it writes comes from this root-owned file, never from the caller's
//! environment or flags. Every key is optional; see
//! `deploy/etc/control.toml` for an annotated example.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ControlError;

/// The configuration file the proxy reads unless root names another.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tbevents/control.toml";

/// Default directory of the pid and lock files (root-only).
pub const DEFAULT_RUN_DIR: &str = "/var/run/tbevents/evsched";

/// Default directory of the schedulers' logs (root-owned; each log is
/// readable by the experiment's group).
pub const DEFAULT_LOG_DIR: &str = "/var/log/tbevents/evsched";

/// Default directory of the per-experiment store snapshots (root-owned;
/// each snapshot is readable by the experiment's group).
pub const DEFAULT_SNAPSHOT_DIR: &str = "/var/lib/tbevents/snapshots";

/// Default scheduler binary.
pub const DEFAULT_EVENT_SCHED: &str = "/usr/local/bin/event-sched";

/// Seconds a stop waits after SIGTERM before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT_SECS: f64 = 10.0;

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    run_dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    snapshot_dir: Option<PathBuf>,
    event_sched: Option<PathBuf>,
    store: Option<String>,
    scheduler_store: Option<String>,
    server: Option<String>,
    port: Option<u16>,
    scheduler_args: Option<Vec<String>>,
    stop_timeout: Option<f64>,
}

/// The validated settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlConfig {
    /// Pid and lock files: `<run_dir>/<pid>_<eid>.pid` and `.lock`.
    pub run_dir: PathBuf,
    /// Scheduler logs: `<log_dir>/<pid>_<eid>.log` (and `.log.old`).
    pub log_dir: PathBuf,
    /// Per-experiment read-only snapshots: `<snapshot_dir>/<pid>_<eid>.db`.
    pub snapshot_dir: PathBuf,
    /// The `event-sched` binary.
    pub event_sched: PathBuf,
    /// The store the proxy reads experiments, users and groups from
    /// (`None`: `TBEVENTS_STORE`, else the default).
    pub store: Option<String>,
    /// The store URL handed to the scheduler. `None` (the default): a
    /// read-only snapshot of the experiment's own rows, written at each
    /// start, so the scheduler never sees the site's store.
    pub scheduler_store: Option<String>,
    /// Event router host the scheduler connects to.
    pub server: String,
    /// Event router port (`None`: 2917).
    pub port: Option<u16>,
    /// Extra scheduler flags, placed before `--` (for example
    /// `["--start-delay", "5"]`).
    pub scheduler_args: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL at stop.
    pub stop_timeout: std::time::Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            log_dir: PathBuf::from(DEFAULT_LOG_DIR),
            snapshot_dir: PathBuf::from(DEFAULT_SNAPSHOT_DIR),
            event_sched: PathBuf::from(DEFAULT_EVENT_SCHED),
            store: None,
            scheduler_store: None,
            server: "localhost".to_owned(),
            port: None,
            scheduler_args: Vec::new(),
            stop_timeout: std::time::Duration::from_secs_f64(DEFAULT_STOP_TIMEOUT_SECS),
        }
    }
}

impl ControlConfig {
    /// Reads `path`; a missing file gives the defaults only when `path` is
    /// the default location (a named file must exist).
    pub fn load(path: &Path) -> Result<ControlConfig, ControlError> {
        let bad = |message: String| ControlError::Config {
            path: path.to_owned(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error)
                if error.kind() == std::io::ErrorKind::NotFound
                    && path == Path::new(DEFAULT_CONFIG_PATH) =>
            {
                return Ok(ControlConfig::default());
            }
            Err(error) => return Err(bad(format!("cannot read it: {error}"))),
        };
        Self::parse(&text).map_err(bad)
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<ControlConfig, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let d = ControlConfig::default();
        let absolute = |key: &str, p: PathBuf| {
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!(
                    "{key} must be an absolute path, not {}",
                    p.display()
                ))
            }
        };
        let stop_timeout = file.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
        if !stop_timeout.is_finite() || !(0.1..=3600.0).contains(&stop_timeout) {
            return Err(format!(
                "stop_timeout = {stop_timeout}: give 0.1 to 3600 seconds"
            ));
        }
        let scheduler_args = file.scheduler_args.unwrap_or_default();
        if scheduler_args.iter().any(|a| a == "--") {
            return Err("scheduler_args must not contain `--`: the names follow it".to_owned());
        }
        Ok(ControlConfig {
            run_dir: absolute("run_dir", file.run_dir.unwrap_or(d.run_dir))?,
            log_dir: absolute("log_dir", file.log_dir.unwrap_or(d.log_dir))?,
            snapshot_dir: absolute("snapshot_dir", file.snapshot_dir.unwrap_or(d.snapshot_dir))?,
            event_sched: absolute("event_sched", file.event_sched.unwrap_or(d.event_sched))?,
            store: file.store,
            scheduler_store: file.scheduler_store,
            server: file.server.unwrap_or(d.server),
            port: file.port,
            scheduler_args,
            stop_timeout: std::time::Duration::from_secs_f64(stop_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = ControlConfig::parse("").unwrap();
        assert_eq!(c, ControlConfig::default());
        let c = ControlConfig::parse(
            "run_dir = \"/run/x\"\nserver = \"ops\"\nport = 2927\nscheduler_args = [\"-d\"]\n",
        )
        .unwrap();
        assert_eq!(c.run_dir, PathBuf::from("/run/x"));
        assert_eq!((c.server.as_str(), c.port), ("ops", Some(2927)));
        assert_eq!(c.scheduler_args, ["-d"]);
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        assert!(
            ControlConfig::parse("run_dir = \"rel\"")
                .unwrap_err()
                .contains("run_dir")
        );
        assert!(ControlConfig::parse("typo = 1").is_err());
        assert!(
            ControlConfig::parse("stop_timeout = 0")
                .unwrap_err()
                .contains("stop_timeout")
        );
        assert!(ControlConfig::parse("scheduler_args = [\"--\"]").is_err());
    }
}
