//! The program agent: starts, stops and signals an experiment's programs
//! on one node, and reports each run's end with a `COMPLETE` event.
//!
//! # Programs and settings
//!
//! Each `virt_programs` row of the node is one program, named by its
//! OBJNAME, with a command line. A program's **settings** are its command,
//! working directory, timeout and expected exit code:
//!
//! - they start as the row's `command`, `dir`, `timeout` and
//!   `expected_exit_code` (NS: `-dir`, `-timeout`, `-expected-exit-code`);
//!   without a directory, the user's home directory (or `/tmp` when the
//!   home directory does not exist); timeout 0 means none;
//! - `MODIFY` changes them for every later start;
//! - `START` may carry any of them (`COMMAND=`, `DIR=`, `TIMEOUT=`,
//!   `EXPECTED_EXIT_CODE=`) for **that run only**: a one-off command does
//!   not silently become the program's command (Emulab's first agent kept
//!   it; see docs/decisions.md).
//!
//! # Events
//!
//! | event | ARGS | what happens |
//! |---|---|---|
//! | `START`, `RUN` | optional settings, `COMMAND=` last | starts a run unless one is running (then: warning) |
//! | `STOP`, `HALT` | | SIGTERM to the run's process group, SIGKILL after the grace period (`--stop-grace`) |
//! | `KILL` | `SIGNAL=` name or number | the signal to the run's process group |
//! | `MODIFY` | settings | changes the settings of later starts |
//! | `COMPLETE`, `REPORT` | | ignored quietly (the scheduler's echo of our own replies) |
//! | anything else | | logged and ignored |
//!
//! `HALT` on a program that is not running answers with `COMPLETE
//! ERROR=0` at once, as Emulab's later agent did, so a sequence waiting
//! for it goes on.
//!
//! # Runs
//!
//! Every start is a numbered **run**. The program is started in its own
//! process group (so `STOP` reaches everything it started), with stdin
//! from `/dev/null` and stdout and stderr in `<logdir>/<name>.out.<run>`
//! and `<name>.err.<run>`. When the run ends the agent writes
//! `<name>.status.<run>` (command, directory, times, exit code, signal,
//! timeout) and points the links `<name>.out`, `<name>.err` and
//! `<name>.status` at the latest run. Run numbers continue from the
//! highest found in the log directory, so a restarted agent never
//! overwrites earlier logs. A run past its timeout is stopped like `STOP`
//! and its status says `TIMEOUT_FIRED=1`.
//!
//! # COMPLETE
//!
//! When a run ends the agent sends `COMPLETE` for the program to the
//! scheduler with `ARGS` `ERROR=<e> [CTOKEN=<token>] EXIT_CODE=<code>
//! RUN=<n> [SIGNAL=<name>] [TIMEOUT_FIRED=1]`. `ERROR` is 0 when the exit
//! code equals the expected one, else the exit code; a run ended by a
//! signal has `ERROR` = 128 + the signal number (never 0), as a shell
//! reports it. `CTOKEN` echoes the starting event's `TOKEN` when it had
//! one. A command that cannot be started at all (no such program or
//! directory) ends its run at once with `ERROR=127` (not found) or `126`
//! (any other failure), the error written to the run's `.err` file.

pub mod command;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tbevents_event::ArgsBuilder;
use tbevents_store::VirtProgram;
use tokio::sync::mpsc;

use crate::args::{BadArgs, EventArgs, bad, split_command, warn_unknown};
use crate::privilege::RunAs;
use crate::runtime::{Agent, Inbox, Incoming};
use run::{Ended, Internal, Run, RunContext};

/// Default wait between SIGTERM and SIGKILL on STOP.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The longest TIMEOUT accepted: one year, in seconds.
const MAX_TIMEOUT_SECS: f64 = 365.0 * 86_400.0;

/// What a program runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The command line.
    pub command: String,
    /// Working directory.
    pub dir: PathBuf,
    /// Stop the run after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// The exit code that counts as success.
    pub expected_exit_code: i32,
}

/// Settings an event asks for (each optional).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsChange {
    /// `COMMAND=`.
    pub command: Option<String>,
    /// `DIR=`.
    pub dir: Option<PathBuf>,
    /// `TIMEOUT=` (seconds; 0 = none).
    pub timeout: Option<Option<Duration>>,
    /// `EXPECTED_EXIT_CODE=`.
    pub expected_exit_code: Option<i32>,
}

const SETTING_KEYS: &[&str] = &["COMMAND", "DIR", "TIMEOUT", "EXPECTED_EXIT_CODE"];

impl SettingsChange {
    /// Reads the settings keys of `ARGS`. Unknown keys are returned for a
    /// warning; a bad value fails the whole change.
    pub fn parse(text: &str) -> Result<(SettingsChange, Vec<String>), BadArgs> {
        let (rest, command) = split_command(text);
        let args = EventArgs::parse(rest)?;
        let mut change = SettingsChange {
            command: command.map(str::to_owned),
            ..SettingsChange::default()
        };
        if let Some(command) = &change.command {
            command::invocation(command)
                .map_err(|e| bad("COMMAND", command, format!("{e}: give a command line")))?;
        }
        if let Some(dir) = args.get("DIR") {
            if !dir.starts_with('/') || dir.contains('\0') {
                return Err(bad("DIR", dir, "give an absolute directory path"));
            }
            change.dir = Some(PathBuf::from(dir));
        }
        if let Some(seconds) = args.f64_in("TIMEOUT", 0.0..=MAX_TIMEOUT_SECS)? {
            change.timeout = Some((seconds > 0.0).then(|| Duration::from_secs_f64(seconds)));
        }
        if let Some(code) = args.i64_in("EXPECTED_EXIT_CODE", 0..=255)? {
            change.expected_exit_code = i32::try_from(code).ok();
        }
        Ok((change, args.unknown_keys(SETTING_KEYS)))
    }

    /// `base` with this change applied.
    pub fn apply(&self, base: &Settings) -> Settings {
        Settings {
            command: self.command.clone().unwrap_or_else(|| base.command.clone()),
            dir: self.dir.clone().unwrap_or_else(|| base.dir.clone()),
            timeout: self.timeout.unwrap_or(base.timeout),
            expected_exit_code: self.expected_exit_code.unwrap_or(base.expected_exit_code),
        }
    }
}

/// How the agent was configured.
#[derive(Clone, Debug)]
pub struct ProgramConfig {
    /// `pid/eid`.
    pub expt: String,
    /// The node served.
    pub vnode: String,
    /// Per-run logs go here.
    pub logdir: PathBuf,
    /// Who programs run as (the agent already runs as this user).
    pub user: RunAs,
    /// SIGTERM to SIGKILL on STOP.
    pub stop_grace: Duration,
}

/// One program and its current run.
#[derive(Debug)]
struct Program {
    settings: Settings,
    run: Option<Run>,
    last_run: u64,
}

/// The program agent's state: every program of the node.
pub struct ProgramAgent {
    config: ProgramConfig,
    agent: Agent,
    programs: BTreeMap<String, Program>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
}

/// True when `name` can be used in a log file name.
pub fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && name.len() <= 200
}

/// A program's settings from its row: the row's directory (or
/// `default_dir` when the row has none, or one that is not absolute),
/// timeout (0: none) and expected exit code.
pub fn initial_settings(row: &VirtProgram, default_dir: &Path) -> Settings {
    let dir = if row.dir.starts_with('/') {
        PathBuf::from(&row.dir)
    } else {
        if !row.dir.is_empty() {
            tracing::warn!(
                "{}: the directory {:?} is not absolute; using {}",
                row.vname,
                row.dir,
                default_dir.display()
            );
        }
        default_dir.to_path_buf()
    };
    Settings {
        command: row.command.clone(),
        dir,
        timeout: (row.timeout > 0).then(|| Duration::from_secs(u64::from(row.timeout))),
        expected_exit_code: i32::from(row.expected_exit_code),
    }
}

/// The directory programs start in by default: the user's home, or `/tmp`.
pub fn default_dir(user: &RunAs) -> PathBuf {
    let home = PathBuf::from(&user.home);
    if home.is_absolute() && home.is_dir() {
        home
    } else {
        PathBuf::from("/tmp")
    }
}

impl ProgramAgent {
    /// An agent for the node's `virt_programs` rows. Names unusable in
    /// file names are left out with an error line.
    pub fn new(config: ProgramConfig, agent: Agent, programs: Vec<VirtProgram>) -> Self {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let dir = default_dir(&config.user);
        let mut table = BTreeMap::new();
        for row in programs {
            if !usable_name(&row.vname) {
                tracing::error!(program = %row.vname, "program name cannot be used in a log file name; ignoring this program");
                continue;
            }
            let last_run = run::highest_run(&config.logdir, &row.vname);
            let settings = initial_settings(&row, &dir);
            table.insert(
                row.vname,
                Program {
                    settings,
                    run: None,
                    last_run,
                },
            );
        }
        ProgramAgent {
            config,
            agent,
            programs: table,
            internal_tx,
            internal_rx,
        }
    }

    /// The names served.
    pub fn names(&self) -> Vec<String> {
        self.programs.keys().cloned().collect()
    }

    /// Runs until `shutdown` resolves or the subscription ends; then stops
    /// every running program (SIGTERM, SIGKILL after the grace period) and
    /// reports their ends before returning.
    pub async fn run(
        mut self,
        mut inbox: Inbox,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        tokio::pin!(shutdown);
        let ended = loop {
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("asked to stop: stopping every running program");
                    break Ok(());
                }
                incoming = inbox.recv() => match incoming {
                    Some(event) => self.handle(event).await,
                    None => break Err(inbox.end_message()),
                },
                Some(internal) = self.internal_rx.recv() => self.internal(internal).await,
            }
        };
        self.stop_all().await;
        self.agent.close().await;
        ended
    }

    async fn stop_all(&mut self) {
        let grace = self.config.stop_grace;
        for (name, program) in &mut self.programs {
            if let Some(run) = &mut program.run {
                run.stop(name, grace, &self.internal_tx);
            }
        }
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(2);
        while self.programs.values().any(|p| p.run.is_some()) {
            match tokio::time::timeout_at(deadline, self.internal_rx.recv()).await {
                Ok(Some(internal)) => self.internal(internal).await,
                _ => {
                    tracing::error!("some programs did not exit after SIGKILL; giving up on them");
                    break;
                }
            }
        }
    }

    /// Acts on one event.
    pub async fn handle(&mut self, event: Incoming) {
        let Incoming {
            objname,
            eventtype,
            args,
            token,
            ..
        } = event;
        tracing::info!("Event: {objname} {eventtype} {args}");
        let grace = self.config.stop_grace;
        let Some(program) = self.programs.get_mut(&objname) else {
            tracing::warn!(program = %objname, "no such program on this node; event ignored");
            return;
        };
        match eventtype.as_str() {
            "START" | "RUN" => {
                let change = match parse_change(&objname, &eventtype, &args) {
                    Some(change) => change,
                    None => return,
                };
                if let Some(run) = &program.run {
                    tracing::warn!(
                        "{objname}: run {} is still running (pid {}); {eventtype} ignored",
                        run.number,
                        run.pid
                    );
                    return;
                }
                let settings = change.apply(&program.settings);
                program.last_run += 1;
                let context = RunContext {
                    name: &objname,
                    number: program.last_run,
                    settings,
                    token,
                    config: &self.config,
                };
                match run::start(context, &self.internal_tx) {
                    Ok(run) => program.run = Some(run),
                    Err(ended) => self.finished(&objname, ended).await,
                }
            }
            "STOP" | "HALT" => {
                if let Some(run) = &mut program.run {
                    run.stop(&objname, grace, &self.internal_tx);
                } else if eventtype == "HALT" {
                    tracing::info!("{objname}: not running; HALT completes at once");
                    self.send_complete(&objname, "ERROR=0 ").await;
                } else {
                    tracing::warn!("{objname}: not running; STOP ignored");
                }
            }
            "KILL" => {
                let signal = match EventArgs::parse(&args).and_then(|a| {
                    let text = a.get("SIGNAL").ok_or(BadArgs::Missing {
                        key: "SIGNAL".into(),
                        expected: "a signal name or number such as INT, TERM or 9".into(),
                    })?;
                    command::parse_signal(text).ok_or_else(|| {
                        bad(
                            "SIGNAL",
                            text,
                            "a signal name or number such as INT, TERM or 9",
                        )
                    })
                }) {
                    Ok(signal) => signal,
                    Err(error) => {
                        tracing::warn!("{objname}: KILL ignored: {error}");
                        return;
                    }
                };
                match &program.run {
                    Some(run) => run.signal(&objname, signal),
                    None => tracing::warn!("{objname}: not running; KILL {signal} ignored"),
                }
            }
            "MODIFY" => {
                let Some(change) = parse_change(&objname, &eventtype, &args) else {
                    return;
                };
                program.settings = change.apply(&program.settings);
                let s = &program.settings;
                tracing::info!(
                    "{objname}: settings now COMMAND={:?} DIR={} TIMEOUT={} EXPECTED_EXIT_CODE={}",
                    s.command,
                    s.dir.display(),
                    s.timeout
                        .map_or("none".to_owned(), |t| format!("{}s", t.as_secs_f64())),
                    s.expected_exit_code
                );
            }
            "COMPLETE" | "REPORT" => {
                tracing::debug!("{objname}: {eventtype} (an echo of a reply) ignored");
            }
            other => {
                tracing::warn!(
                    "{objname}: unknown event type {other:?} ignored (the program agent knows START, RUN, STOP, HALT, KILL, MODIFY)"
                );
            }
        }
    }

    async fn internal(&mut self, message: Internal) {
        let grace = self.config.stop_grace;
        match message {
            Internal::Exited {
                name,
                number,
                status,
            } => {
                let Some(program) = self.programs.get_mut(&name) else {
                    return;
                };
                let Some(run) = program.run.take_if(|r| r.number == number) else {
                    return;
                };
                let ended = run.finish(&name, status, &self.config);
                self.finished(&name, ended).await;
            }
            Internal::TimedOut { name, number } => {
                if let Some(run) = self
                    .programs
                    .get_mut(&name)
                    .and_then(|p| p.run.as_mut())
                    .filter(|r| r.number == number)
                {
                    tracing::info!("{name}: run {number} reached its timeout; stopping it");
                    run.timeout_fired = true;
                    run.stop(&name, grace, &self.internal_tx);
                }
            }
            Internal::Escalate { name, number } => {
                if let Some(run) = self
                    .programs
                    .get(&name)
                    .and_then(|p| p.run.as_ref())
                    .filter(|r| r.number == number)
                {
                    tracing::warn!(
                        "{name}: run {number} still running {:.1} s after SIGTERM; sending SIGKILL",
                        grace.as_secs_f64()
                    );
                    run.signal(&name, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    }

    async fn finished(&self, name: &str, ended: Ended) {
        let mut args = ArgsBuilder::new();
        let _ = args.push("ERROR", ended.error);
        if let Some(token) = ended.token {
            let _ = args.push("CTOKEN", token);
        }
        let _ = args.push("EXIT_CODE", ended.exit_code);
        let _ = args.push("RUN", ended.number);
        if let Some(signal) = &ended.signal {
            let _ = args.push("SIGNAL", signal);
        }
        if ended.timeout_fired {
            let _ = args.push("TIMEOUT_FIRED", 1);
        }
        self.send_complete(name, args.as_str()).await;
    }

    async fn send_complete(&self, name: &str, args: &str) {
        match self.agent.complete(name, args).await {
            Ok(()) => tracing::info!("{name}: sent COMPLETE {args}"),
            Err(error) => tracing::error!("{name}: could not send COMPLETE {args}: {error}"),
        }
    }
}

fn parse_change(objname: &str, eventtype: &str, args: &str) -> Option<SettingsChange> {
    match SettingsChange::parse(args) {
        Ok((change, unknown)) => {
            warn_unknown(objname, eventtype, &unknown);
            Some(change)
        }
        Err(error) => {
            tracing::warn!("{objname}: {eventtype} ignored: {error}");
            None
        }
    }
}

/// Checks, as the programs' user, that the log directory can take new
/// files, so a wrong `-l` fails at start instead of every run.
pub fn check_logdir(logdir: &Path, user: &RunAs) -> Result<(), String> {
    use nix::unistd::{AccessFlags, access};
    access(logdir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|error| {
        format!(
            "user {} cannot create files in the log directory {}: {error}; give a directory it can write with -l",
            user.name,
            logdir.display()
        )
    })
}

/// The directory for per-run logs: created if missing (mode 0755) and
/// handed to the programs' user. An existing directory is left as it is.
pub fn prepare_logdir(logdir: &Path, user: &RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !logdir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(logdir)?;
        crate::privilege::hand_over(logdir, user)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings {
            command: "sleep 1".into(),
            dir: "/tmp".into(),
            timeout: None,
            expected_exit_code: 0,
        }
    }

    #[test]
    fn settings_from_args() {
        let (change, unknown) = SettingsChange::parse(
            "DIR=/var TIMEOUT=2.5 EXPECTED_EXIT_CODE=3 TAG=x COMMAND=ls -l /",
        )
        .unwrap();
        assert_eq!(unknown, ["TAG"]);
        let s = change.apply(&base());
        assert_eq!(s.command, "ls -l /");
        assert_eq!(s.dir, PathBuf::from("/var"));
        assert_eq!(s.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.expected_exit_code, 3);

        let (change, _) = SettingsChange::parse("TIMEOUT=0").unwrap();
        let mut with_timeout = base();
        with_timeout.timeout = Some(Duration::from_secs(1));
        assert_eq!(change.apply(&with_timeout).timeout, None);
        assert_eq!(SettingsChange::parse("").unwrap().0.apply(&base()), base());
    }

    #[test]
    fn bad_settings_are_refused_whole() {
        for bad in [
            "DIR=relative",
            "TIMEOUT=-1",
            "TIMEOUT=abc",
            "EXPECTED_EXIT_CODE=256",
            "COMMAND=   ",
            "DIR='open",
        ] {
            assert!(SettingsChange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_start_from_the_row() {
        let row = VirtProgram {
            vnode: "n0".into(),
            vname: "p".into(),
            command: "ls".into(),
            dir: "/var".into(),
            timeout: 30,
            expected_exit_code: 2,
        };
        let s = initial_settings(&row, Path::new("/home/u"));
        assert_eq!(s.dir, PathBuf::from("/var"));
        assert_eq!(s.timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.expected_exit_code, 2);
        let plain = VirtProgram {
            dir: String::new(),
            timeout: 0,
            ..row.clone()
        };
        let s = initial_settings(&plain, Path::new("/home/u"));
        assert_eq!((s.dir, s.timeout), (PathBuf::from("/home/u"), None));
        let relative = VirtProgram {
            dir: "rel".into(),
            ..row
        };
        assert_eq!(
            initial_settings(&relative, Path::new("/h")).dir,
            PathBuf::from("/h")
        );
    }

    #[test]
    fn names_that_cannot_be_file_names() {
        assert!(usable_name("fetch"));
        assert!(usable_name("a-b_c.1"));
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(!usable_name(bad), "{bad:?}");
        }
    }
}
