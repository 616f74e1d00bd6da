//! The proxy program's logic: who is calling, what they asked, and the
//! answer printed for `tbevents eventsys`.
//!
//! The caller is the real uid, or `SUDO_UID` when sudo ran us (sudo sets
//! it and a user cannot choose its value). Only root itself may point the
//! proxy at another configuration file: a sudo caller gets
//! `/etc/tbevents/control.toml`, whatever it asks.

use std::path::PathBuf;

use tbevents_store::ExperimentId;

use crate::config::{ControlConfig, DEFAULT_CONFIG_PATH};
use crate::error::ControlError;
use crate::lifecycle::{Control, Started, Status, Stopped};

/// One request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    /// Start the scheduler (nothing to do if it runs).
    Start,
    /// Stop the scheduler (nothing to do if it does not run).
    Stop,
    /// Stop it, then start it again.
    Replay,
    /// Say whether it runs.
    Status,
}

/// Who asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's Unix uid.
    pub uid: u32,
    /// True when the caller is root itself (not a user through sudo).
    pub is_root: bool,
}

impl Caller {
    /// The calling user of this process.
    pub fn of_this_process() -> Caller {
        let ruid = nix::unistd::getuid().as_raw();
        if ruid == 0 {
            let sudo = std::env::var("SUDO_UID")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|uid| *uid != 0);
            match sudo {
                Some(uid) => Caller {
                    uid,
                    is_root: false,
                },
                None => Caller {
                    uid: 0,
                    is_root: true,
                },
            }
        } else {
            Caller {
                uid: ruid,
                is_root: false,
            }
        }
    }
}

/// Carries out `operation` for `experiment`; returns the lines to print.
pub fn run(
    caller: Caller,
    config_path: Option<PathBuf>,
    operation: Operation,
    experiment: &str,
) -> Result<String, ControlError> {
    let config_path = match config_path {
        Some(path) if caller.is_root => path,
        Some(path) if path.as_os_str() != DEFAULT_CONFIG_PATH => {
            return Err(ControlError::Config {
                path,
                message: "only root may choose another configuration file".to_owned(),
            });
        }
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    };
    let config = ControlConfig::load(&config_path)?;
    let id = ExperimentId::parse(experiment).ok_or_else(|| ControlError::Config {
        path: config_path.clone(),
        message: format!("`{experiment}` is not an experiment: write it as pid/eid"),
    })?;
    id.validate()?;
    if operation == Operation::Status {
        return status_text(&config, &id);
    }
    let url = tbevents_store::resolve_store_url(config.store.as_deref())?;
    let store = tbevents_store::open(&url)?;
    let control = Control::new(&config, &*store);
    control.authorize(&id, caller.uid)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(ControlError::Os {
            doing: "starting and stopping schedulers needs root: run this through sudo \
                    (see docs/eventsys.md)"
                .to_owned(),
            source: nix::Error::EPERM,
        });
    }
    Ok(match operation {
        Operation::Start => started(&id, control.start(&id)?),
        Operation::Stop => stopped(&id, control.stop(&id)?),
        Operation::Replay => {
            let (stop, start) = control.replay(&id)?;
            format!("{}\n{}", stopped(&id, stop), started(&id, start))
        }
        Operation::Status => status_text(&config, &id)?,
    })
}

/// What `status` prints.
fn status_text(config: &ControlConfig, id: &ExperimentId) -> Result<String, ControlError> {
    Ok(match crate::lifecycle::status(config, id)? {
        Status::Running { pid } => format!("event scheduler for {id}: running (pid {pid})"),
        Status::NotRunning => format!("event scheduler for {id}: not running"),
        Status::Stale { pid, why } => format!(
            "event scheduler for {id}: not running (stale pid file names process {pid}: {why})"
        ),
    })
}

fn started(id: &ExperimentId, result: Started) -> String {
    match result {
        Started::Started { pid, log } => format!(
            "started the event scheduler for {id} (pid {pid}); log: {}",
            log.display()
        ),
        Started::AlreadyRunning { pid } => {
            format!("the event scheduler for {id} is already running (pid {pid})")
        }
    }
}

fn stopped(id: &ExperimentId, result: Stopped) -> String {
    match result {
        Stopped::Stopped { pid, killed: false } => {
            format!("stopped the event scheduler for {id} (pid {pid})")
        }
        Stopped::Stopped { pid, killed: true } => format!(
            "stopped the event scheduler for {id} (pid {pid}) with SIGKILL: it ignored SIGTERM"
        ),
        Stopped::NotRunning => format!("the event scheduler for {id} was not running"),
    }
}
