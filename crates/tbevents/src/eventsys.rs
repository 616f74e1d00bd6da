//! `tbevents eventsys start|stop|replay|status`, and the scheduler steps of
//! `swapin`, `swapout` and `state`.
//!
//! The user runs `tbevents`; only the proxy runs as root. So when we are
//! root the proxy's library does the work in this process, and otherwise
//! we run `sudo -n tbevents-eventsys-proxy OP -e PID/EID` (the proxy found
//! next to this executable, else on PATH), whose output the user sees.
//! The trust model is in `tbevents_control` and docs/eventsys.md.
//!
//! Scheduler control is part of an installation, not of every use of
//! `tbevents`: when there is no control configuration
//! (`/etc/tbevents/control.toml`, or `--control-config`), `swapin` and
//! `swapout` say so and leave the scheduler alone, and `state` shows only
//! the state.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use tbevents_control::proxy::{self, Caller, Operation};
use tbevents_control::{ControlError, DEFAULT_CONFIG_PATH};

/// The proxy program's name.
pub(crate) const PROXY: &str = "tbevents-eventsys-proxy";

/// The control configuration in use, if scheduler control is installed.
pub(crate) fn configured(config: Option<&Path>) -> Option<PathBuf> {
    match config {
        Some(path) => Some(path.to_owned()),
        None => Path::new(DEFAULT_CONFIG_PATH)
            .is_file()
            .then(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
    }
}

/// Runs one operation and returns what the proxy printed.
pub(crate) fn run(
    config: Option<&Path>,
    operation: Operation,
    experiment: &str,
) -> anyhow::Result<String> {
    let caller = Caller::of_this_process();
    let root = nix::unistd::geteuid().is_root();
    if root || operation == Operation::Status {
        match proxy::run(caller, config.map(Path::to_owned), operation, experiment) {
            // A control file only root may read (it holds a database
            // password): ask the proxy, as for the other operations.
            Err(ControlError::Config { message, .. })
                if !root && message.contains("cannot read") && config.is_none() => {}
            other => return Ok(other?),
        }
    }
    if config.is_some() {
        bail!("--control-config is for root only: the proxy reads {DEFAULT_CONFIG_PATH}");
    }
    let proxy = find_proxy()?;
    let op = match operation {
        Operation::Start => "start",
        Operation::Stop => "stop",
        Operation::Replay => "replay",
        Operation::Status => "status",
    };
    let output = Command::new("sudo")
        .arg("-n")
        .arg(&proxy)
        .args([op, "-e", experiment])
        .output()
        .with_context(|| {
            format!(
                "cannot run sudo to reach {}: starting and stopping schedulers needs root \
                 through sudo (see docs/eventsys.md), or ask your testbed operator",
                proxy.display()
            )
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned();
    if !output.status.success() {
        let why = if stderr.is_empty() { stdout } else { stderr };
        bail!("{why}");
    }
    Ok(stdout)
}

/// The proxy next to this executable, else on PATH.
fn find_proxy() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = crate::bins::own_dir() {
        let sibling = dir.join(PROXY);
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"] {
        let path = Path::new(dir).join(PROXY);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!("{PROXY} is not installed next to tbevents or in /usr/local/sbin; see docs/deploy.md")
}

/// `tbevents eventsys OP -e PID/EID`.
pub(crate) fn command(
    config: Option<&Path>,
    operation: Operation,
    experiment: &str,
) -> anyhow::Result<()> {
    println!("{}", run(config, operation, experiment)?);
    Ok(())
}

/// The scheduler step of `swapin` and `swapout`: the operation when
/// control is installed, a note when it is not.
pub(crate) fn lifecycle_step(
    config: Option<&Path>,
    operation: Operation,
    experiment: &str,
) -> anyhow::Result<()> {
    if configured(config).is_none() {
        println!(
            "event scheduler: not managed here (no {DEFAULT_CONFIG_PATH}); run event-sched \
             yourself or see docs/eventsys.md"
        );
        return Ok(());
    }
    let text = run(config, operation, experiment)?;
    println!("{text}");
    Ok(())
}

/// The line `tbevents state` adds when control is installed.
pub(crate) fn state_line(config: Option<&Path>, experiment: &str) -> Option<String> {
    configured(config)?;
    match run(config, Operation::Status, experiment) {
        Ok(text) => Some(text),
        Err(error) => Some(format!("event scheduler: unknown ({error})")),
    }
}
