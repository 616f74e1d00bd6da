//! Scheduler control: `tbevents eventsys start|stop|replay` and the small
//! root-side proxy that carries them out.
//!
//! # Trust model
//!
//! The experiment's user runs `tbevents eventsys`; only the proxy
//! (`tbevents-eventsys-proxy`) runs as root, reached through sudo (or
//! directly by root). The proxy trusts nothing from its caller but the
//! operation and the experiment name: the scheduler binary, the store, the
//! router and the file locations come from the root-owned
//! `/etc/tbevents/control.toml` ([`config`]). It checks that the caller may
//! control the experiment ([`account::authorize`]), keeps the pid files in
//! a directory only root can write ([`pidfile`]), and runs the scheduler as
//! the experiment's swapper, never as root ([`account::run_as`],
//! [`lifecycle`]). The proxy itself runs no user code and opens no file in
//! a directory a user can write.
//!
//! See docs/eventsys.md.

pub mod account;
pub mod config;
pub mod error;
pub mod lifecycle;
pub mod pidfile;
pub mod proxy;

pub use config::{ControlConfig, DEFAULT_CONFIG_PATH};
pub use error::ControlError;
pub use lifecycle::{Control, Started, Status, Stopped};
