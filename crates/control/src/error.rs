//! The one error type of scheduler control.
//!
//! Every variant is printed to the operator or the experiment's user by
//! `tbevents eventsys`, so each says what happened and what to do next.

use std::path::PathBuf;

use tbevents_store::{ExperimentId, StoreError};

/// Why a start, stop or status request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The experiment store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The configuration file is unreadable or invalid.
    #[error("configuration {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A file-system operation failed.
    #[error("{doing} {path}: {source}")]
    Io {
        /// What we were doing.
        doing: &'static str,
        /// On which path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },

    /// The pid-file directory (or a pid file) could be changed by someone
    /// other than root, so nothing in it can be trusted.
    #[error(
        "{path} is not root-only ({why}): pid files there cannot be trusted; make it owned by \
         root and not group- or world-writable (chown root {path}; chmod go-w {path})"
    )]
    Unsafe {
        /// The directory or file.
        path: PathBuf,
        /// Which check failed.
        why: String,
    },

    /// The experiment's swapper has no usable Unix account.
    #[error("cannot run the scheduler of {id} as its user: {why}")]
    Account {
        /// The experiment.
        id: ExperimentId,
        /// What is missing or refused.
        why: String,
    },

    /// The caller may not control this experiment's scheduler.
    #[error(
        "permission denied: Unix user {caller} is not a member of {id}'s group and not a testbed \
         administrator"
    )]
    NotPermitted {
        /// The caller's name (or uid when it has no name).
        caller: String,
        /// The experiment.
        id: ExperimentId,
    },

    /// The experiment is not swapped in, so its scheduler would have nothing
    /// to run.
    #[error("{id} is {state}, not active: swap it in first (tbevents swapin -e {id})")]
    NotActive {
        /// The experiment.
        id: ExperimentId,
        /// Its state.
        state: String,
    },

    /// The scheduler could not be started at all.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The scheduler binary.
        program: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },

    /// The scheduler exited within its first second.
    #[error(
        "the scheduler for {id} exited during its first second ({status}); the last lines of \
         its log {log}:\n{tail}"
    )]
    DiedAtStart {
        /// The experiment.
        id: ExperimentId,
        /// How it ended.
        status: String,
        /// The log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// The pid file names a live process that is not this experiment's
    /// scheduler: it was not signalled.
    #[error(
        "refusing to stop process {pid}: the pid file {path} names it, but {why}, so it is not \
         the scheduler of {id}; it was not signalled and the stale pid file was removed"
    )]
    NotOurScheduler {
        /// The experiment.
        id: ExperimentId,
        /// The process the file named.
        pid: i32,
        /// The pid file.
        path: PathBuf,
        /// Which identity check failed.
        why: String,
    },

    /// The scheduler did not exit, even after SIGKILL.
    #[error("the scheduler of {id} (process {pid}) did not exit after SIGTERM and SIGKILL")]
    WouldNotDie {
        /// The experiment.
        id: ExperimentId,
        /// Its process id.
        pid: i32,
    },

    /// A system call failed.
    #[error("{doing}: {source}")]
    Os {
        /// What we were doing.
        doing: String,
        /// The error number.
        source: nix::Error,
    },
}

impl ControlError {
    /// An [`ControlError::Io`] builder for `map_err`.
    pub(crate) fn io(
        doing: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| ControlError::Io {
            doing,
            path,
            source,
        }
    }
}
