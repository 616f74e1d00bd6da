//! The one interface both link backends offer the agent.
//!
//! The agent owns the link's state (its pipes' settings and whether it is
//! up) and tells a backend what to install; the backend only makes the
//! data path match. That keeps Emulab's rules (a `MODIFY` while down is
//! remembered and applied at `UP`) in one place for both backends.

use crate::params::{Direction, PipeParams};

/// A backend could not make the data path match.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An external command (`tc`, `ip`) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and standard error, or why it could not run.
        detail: String,
    },
    /// A socket or system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system error.
        source: std::io::Error,
    },
    /// The backend cannot do what was asked on this machine.
    #[error("{0}")]
    Unsupported(String),
}

/// Makes one link's data path match its settings.
pub trait LinkBackend: Send {
    /// Installs `params` for the pipe `direction`.
    fn apply(&mut self, direction: Direction, params: &PipeParams) -> Result<(), BackendError>;

    /// Lets traffic pass (`true`) or stops all of it (`false`).
    fn set_up(&mut self, up: bool) -> Result<(), BackendError>;

    /// One line for logs: what this backend shapes.
    fn describe(&self) -> String;
}
