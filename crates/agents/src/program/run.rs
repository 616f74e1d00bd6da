//! One run of a program: starting it with its logs, signalling its
//! process group, and writing its status when it ends.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::command::{self, Invocation};
use super::{ProgramConfig, Settings};

/// PATH for programs: the standard one, not the agent's (which, for an
/// agent started by root, may name directories the user cannot search).
pub(super) const PROGRAM_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Messages from a run's helper tasks to the agent.
#[derive(Debug)]
pub(crate) enum Internal {
    /// The run's process has exited (or could not be waited for).
    Exited {
        name: String,
        number: u64,
        status: std::io::Result<ExitStatus>,
    },
    /// The run's timeout has passed.
    TimedOut { name: String, number: u64 },
    /// The grace period after SIGTERM has passed.
    Escalate { name: String, number: u64 },
}

/// What is needed to start a run.
pub(crate) struct RunContext<'a> {
    pub name: &'a str,
    pub number: u64,
    pub settings: Settings,
    pub token: Option<i32>,
    pub config: &'a ProgramConfig,
}

/// A running run.
#[derive(Debug)]
pub(crate) struct Run {
    pub number: u64,
    pub pid: i32,
    pub settings: Settings,
    pub token: Option<i32>,
    pub started: SystemTime,
    pub timeout_fired: bool,
    stopping: bool,
    timer: Option<JoinHandle<()>>,
    out: PathBuf,
    err: PathBuf,
}

/// How a run ended, for the COMPLETE reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub number: u64,
    pub error: i32,
    pub exit_code: i32,
    pub signal: Option<String>,
    pub timeout_fired: bool,
    pub token: Option<i32>,
}

fn log_path(logdir: &Path, name: &str, kind: &str, number: u64) -> PathBuf {
    logdir.join(format!("{name}.{kind}.{number}"))
}

/// The highest run number of `name` with logs in `logdir` (0 if none).
pub(crate) fn highest_run(logdir: &Path, name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(logdir) else {
        return 0;
    };
    let prefixes = ["out", "err", "status"].map(|k| format!("{name}.{k}."));
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file = entry.file_name();
            let file = file.to_str()?;
            prefixes
                .iter()
                .find_map(|p| file.strip_prefix(p.as_str()))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Points `<name>.<kind>` at the run's file (best effort).
fn link_latest(logdir: &Path, name: &str, kind: &str, number: u64) {
    let link = logdir.join(format!("{name}.{kind}"));
    let target = format!("{name}.{kind}.{number}");
    let temp = logdir.join(format!(".{name}.{kind}.link"));
    let _ = std::fs::remove_file(&temp);
    if std::os::unix::fs::symlink(&target, &temp).is_ok() && std::fs::rename(&temp, &link).is_err()
    {
        let _ = std::fs::remove_file(&temp);
    }
}

/// Starts a run. On failure the run has already ended: the error is in
/// its `.err` file and the returned [`Ended`] carries ERROR 127 or 126.
pub(crate) fn start(
    context: RunContext<'_>,
    internal: &mpsc::UnboundedSender<Internal>,
) -> Result<Run, Ended> {
    let RunContext {
        name,
        number,
        settings,
        token,
        config,
    } = context;
    let out = log_path(&config.logdir, name, "out", number);
    let err = log_path(&config.logdir, name, "err", number);
    let started = SystemTime::now();
    let failed = |code: i32, message: String| {
        tracing::error!("{name}: run {number} could not start: {message}");
        if let Ok(mut file) = File::create(&err) {
            let _ = writeln!(file, "program-agent: {message}");
        }
        let _ = File::create(&out);
        let ended = Ended {
            number,
            error: code,
            exit_code: code,
            signal: None,
            timeout_fired: false,
            token,
        };
        write_status(config, name, &settings, started, &ended);
        ended
    };
    let invocation = match command::invocation(&settings.command) {
        Ok(invocation) => invocation,
        Err(error) => return Err(failed(126, format!("{error}: {:?}", settings.command))),
    };
    let (stdout, stderr) = match (File::create(&out), File::create(&err)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(error), _) | (_, Err(error)) => {
            return Err(failed(
                126,
                format!(
                    "cannot create the run's log files in {}: {error}",
                    config.logdir.display()
                ),
            ));
        }
    };
    let Invocation {
        program,
        args,
        shell,
    } = &invocation;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&settings.dir)
        .env_clear()
        .env("PATH", PROGRAM_PATH)
        .env("HOME", &config.user.home)
        .env("USER", &config.user.name)
        .env("LOGNAME", &config.user.name)
        .env("SHELL", command::SHELL)
        .env("TBEVENTS_EXPT", &config.expt)
        .env("TBEVENTS_VNODE", &config.vnode)
        .env("TBEVENTS_PROGRAM", name)
        .env("TBEVENTS_RUN", number.to_string())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if let Some(lang) = std::env::var_os("LANG") {
        cmd.env("LANG", lang);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(error) => {
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Err(failed(
                code,
                format!(
                    "cannot run {:?} in {}: {error}",
                    settings.command,
                    settings.dir.display()
                ),
            ));
        }
    };
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(0);
    for kind in ["out", "err"] {
        link_latest(&config.logdir, name, kind, number);
    }
    tracing::info!(
        "{name}: run {number} started, pid {pid}, as {}, {}: {}",
        config.user.name,
        if *shell {
            "through /bin/sh"
        } else {
            "without a shell"
        },
        settings.command
    );
    let tx = internal.clone();
    let owned = name.to_owned();
    tokio::spawn(async move {
        let status = child.wait().await;
        let _ = tx.send(Internal::Exited {
            name: owned,
            number,
            status,
        });
    });
    let timer = settings.timeout.map(|timeout| {
        let tx = internal.clone();
        let owned = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx.send(Internal::TimedOut {
                name: owned,
                number,
            });
        })
    });
    Ok(Run {
        number,
        pid,
        settings,
        token,
        started,
        timeout_fired: false,
        stopping: false,
        timer,
        out,
        err,
    })
}

impl Run {
    /// Sends `signal` to the run's process group.
    pub(crate) fn signal(&self, name: &str, signal: Signal) {
        if self.pid <= 0 {
            return;
        }
        match killpg(Pid::from_raw(self.pid), signal) {
            Ok(()) => tracing::info!(
                "{name}: sent {signal} to run {} (process group {})",
                self.number,
                self.pid
            ),
            Err(error) => tracing::warn!(
                "{name}: cannot send {signal} to process group {}: {error}",
                self.pid
            ),
        }
    }

    /// SIGTERM now, SIGKILL after `grace` unless it has exited (once).
    pub(crate) fn stop(
        &mut self,
        name: &str,
        grace: Duration,
        internal: &mpsc::UnboundedSender<Internal>,
    ) {
        if self.stopping {
            tracing::info!("{name}: run {} is already stopping", self.number);
            return;
        }
        self.stopping = true;
        self.signal(name, Signal::SIGTERM);
        let tx = internal.clone();
        let owned = name.to_owned();
        let number = self.number;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = tx.send(Internal::Escalate {
                name: owned,
                number,
            });
        });
    }

    /// Records the end of the run: status file, links, log line.
    pub(crate) fn finish(
        self,
        name: &str,
        status: std::io::Result<ExitStatus>,
        config: &ProgramConfig,
    ) -> Ended {
        if let Some(timer) = &self.timer {
            timer.abort();
        }
        let (exit_code, signal) = match &status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(signal)) => (
                    128 + signal,
                    Some(
                        Signal::try_from(signal)
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_else(|_| signal.to_string()),
                    ),
                ),
                (None, None) => (255, None),
            },
            Err(error) => {
                tracing::error!("{name}: cannot wait for run {}: {error}", self.number);
                (255, None)
            }
        };
        let error = if signal.is_none() && exit_code == self.settings.expected_exit_code {
            0
        } else {
            exit_code
        };
        let ended = Ended {
            number: self.number,
            error,
            exit_code,
            signal,
            timeout_fired: self.timeout_fired,
            token: self.token,
        };
        tracing::info!(
            "{name}: run {} exited: exit code {exit_code}{}{} (logs {} and {})",
            self.number,
            ended
                .signal
                .as_deref()
                .map(|s| format!(", killed by {s}"))
                .unwrap_or_default(),
            if self.timeout_fired {
                ", timeout fired"
            } else {
                ""
            },
            self.out.display(),
            self.err.display(),
        );
        write_status(config, name, &self.settings, self.started, &ended);
        ended
    }
}

fn timestamp(time: SystemTime) -> (u64, String) {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = DateTime::<Utc>::from(time)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string();
    (secs, text)
}

/// Writes `<name>.status.<run>` and points the latest-run links at it.
fn write_status(
    config: &ProgramConfig,
    name: &str,
    settings: &Settings,
    started: SystemTime,
    ended: &Ended,
) {
    let (start_secs, start_text) = timestamp(started);
    let (end_secs, end_text) = timestamp(SystemTime::now());
    let mut text = String::new();
    let _ = writeln!(text, "NAME={name}");
    let _ = writeln!(text, "RUN={}", ended.number);
    let _ = writeln!(text, "COMMAND={}", settings.command);
    let _ = writeln!(text, "DIR={}", settings.dir.display());
    let _ = writeln!(
        text,
        "TIMEOUT={}",
        settings.timeout.map_or(0.0, |t| t.as_secs_f64())
    );
    let _ = writeln!(text, "TIMEOUT_FIRED={}", u8::from(ended.timeout_fired));
    let _ = writeln!(text, "USER={}", config.user.name);
    let _ = writeln!(text, "START_TIME_SECS={start_secs}");
    let _ = writeln!(text, "START_TIME={start_text}");
    let _ = writeln!(text, "END_TIME_SECS={end_secs}");
    let _ = writeln!(text, "END_TIME={end_text}");
    let _ = writeln!(text, "EXIT_CODE={}", ended.exit_code);
    if let Some(signal) = &ended.signal {
        let _ = writeln!(text, "SIGNAL={signal}");
    }
    let _ = writeln!(text, "EXPECTED_EXIT_CODE={}", settings.expected_exit_code);
    let _ = writeln!(text, "ERROR={}", ended.error);
    if let Some(token) = ended.token {
        let _ = writeln!(text, "TOKEN={token}");
    }
    let path = log_path(&config.logdir, name, "status", ended.number);
    if let Err(error) = std::fs::write(&path, text) {
        tracing::error!("{name}: cannot write {}: {error}", path.display());
    }
    for kind in ["out", "err", "status"] {
        link_latest(&config.logdir, name, kind, ended.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_numbers_continue_from_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(highest_run(dir.path(), "p"), 0);
        for file in [
            "p.out.1",
            "p.err.7",
            "p.status.3",
            "q.out.99",
            "p.out",
            "p.out.x",
        ] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        assert_eq!(highest_run(dir.path(), "p"), 7);
        assert_eq!(highest_run(dir.path(), "q"), 99);
        assert_eq!(highest_run(Path::new("/nonexistent/x"), "p"), 0);
    }
}
