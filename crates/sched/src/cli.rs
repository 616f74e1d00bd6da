//! `event-sched`'s command line, compatible with the original's flags
//! (docs/emulab-model.md §6.1) plus long options for what the original
//! hard-coded. Part of the binary, not the library: the library takes the
//! plain [`Settings`] this turns into.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use tbevents_sched::run::Settings;
use tbevents_sched::simulator::{DEFAULT_HALT_COMMAND, DEFAULT_SWAPOUT_COMMAND};

/// Default pause between time zero's computation and time zero (the
/// original's 30 s pad).
pub(crate) const DEFAULT_START_DELAY_SECS: f64 = 30.0;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "event-sched",
    version,
    about = "The per-experiment event scheduler: fires an experiment's `$ns at` events on time \
             and forwards `tevc` events to the right agents",
    long_about = "event-sched runs for one experiment (pid/eid). It registers with the event \
router using the experiment's key, subscribes to the experiment's scheduler requests \
(SCHEDULER == 1), waits until the experiment is active in the store, loads its agents, event \
groups and static events, and then fires every static event at time zero plus its offset, where \
time zero is the moment the experiment was seen active plus --start-delay. Dynamic events (from \
tevc) are rewritten for their agents, re-signed and fired at their requested time.\n\n\
It never forks or daemonizes: the caller manages pid files and output. It refuses to run as \
root. SIGTERM or SIGINT ends it with exit status 0 after logging a summary. Setup failures \
(unreadable key, unknown experiment, unloadable events) exit with status 1.",
    after_help = "EXAMPLES:\n  \
event-sched -k /proj/testbed/exp/demo/tbdata/eventkey testbed demo\n  \
event-sched -d -s ops -p 2917 -l /proj/testbed/exp/demo/logs/event-sched.log \\\n      \
-k /proj/testbed/exp/demo/tbdata/eventkey --start-delay 5 testbed demo"
)]
pub(crate) struct Cli {
    /// More logging: once for every event fired (with its lateness) and the
    /// agent table, twice for everything.
    #[arg(short = 'd', long = "debug", action = clap::ArgAction::Count)]
    pub debug: u8,

    /// Event router host.
    #[arg(
        short = 's',
        long = "server",
        value_name = "HOST",
        default_value = "localhost"
    )]
    pub server: String,

    /// Event router port (default: the Elvin port, 2917).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,

    /// Append the log to FILE (created with mode 0640) instead of stderr.
    #[arg(short = 'l', long = "logfile", value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// The experiment's event key file (required).
    #[arg(short = 'k', long = "keyfile", value_name = "FILE", required = true)]
    pub keyfile: PathBuf,

    /// Experiment store URL (default: $TBEVENTS_STORE, else
    /// sqlite:/var/lib/tbevents/tbevents.db).
    #[arg(long = "store", value_name = "URL")]
    pub store: Option<String>,

    /// Seconds from loading to time zero (fractions allowed).
    #[arg(long = "start-delay", value_name = "SECS", default_value_t = DEFAULT_START_DELAY_SECS,
          value_parser = parse_seconds)]
    pub start_delay: f64,

    /// Seconds between checks of the experiment's state while waiting for it
    /// to become active.
    #[arg(long = "poll-interval", value_name = "SECS", default_value_t = 3.0,
          value_parser = parse_positive_seconds)]
    pub poll_interval: f64,

    /// Command run for a SIMULATOR SWAPOUT event ({pid} and {eid} are
    /// replaced; split on whitespace and run without a shell).
    #[arg(long = "swapout-command", value_name = "COMMAND",
          default_value = DEFAULT_SWAPOUT_COMMAND)]
    pub swapout_command: String,

    /// Command run for a SIMULATOR HALT event (same rules).
    #[arg(long = "halt-command", value_name = "COMMAND", default_value = DEFAULT_HALT_COMMAND)]
    pub halt_command: String,

    /// Tuning: microseconds before a due time at which the firing thread
    /// stops sleeping and spins on the clock (see docs/scheduler.md).
    #[arg(long = "spin-window-us", value_name = "MICROS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub spin_window_us: u32,

    /// Run the firing thread with real-time priority (SCHED_FIFO 1), so a
    /// busy machine delays events less. Needs RLIMIT_RTPRIO >= 1 or
    /// CAP_SYS_NICE; without them a warning is logged and it runs normally.
    #[arg(long = "realtime")]
    pub realtime: bool,

    /// Project id.
    pub pid: String,

    /// Experiment id.
    pub eid: String,
}

impl Cli {
    /// The scheduler's settings (logging flags are `main`'s).
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            pid: self.pid.clone(),
            eid: self.eid.clone(),
            server: self.server.clone(),
            port: self.port,
            keyfile: self.keyfile.clone(),
            store: self.store.clone(),
            start_delay: Duration::from_secs_f64(self.start_delay),
            poll_interval: Duration::from_secs_f64(self.poll_interval),
            swapout_command: self.swapout_command.clone(),
            halt_command: self.halt_command.clone(),
            spin_window_us: self.spin_window_us,
            realtime: self.realtime,
        }
    }
}

/// Longest delay accepted: one day.
const MAX_SECONDS: f64 = 86_400.0;

fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !value.is_finite() || !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(format!(
            "`{text}` is out of range: give 0 to {MAX_SECONDS} seconds"
        ));
    }
    Ok(value)
}

fn parse_positive_seconds(text: &str) -> Result<f64, String> {
    let value = parse_seconds(text)?;
    if value < 0.01 {
        return Err(format!("`{text}` is too short: give at least 0.01 seconds"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_flags_parse() {
        let cli = Cli::try_parse_from([
            "event-sched",
            "-d",
            "-d",
            "-s",
            "ops",
            "-p",
            "2917",
            "-l",
            "/tmp/x.log",
            "-k",
            "/k",
            "p",
            "e",
        ])
        .unwrap();
        assert_eq!(cli.debug, 2);
        assert_eq!(cli.server, "ops");
        assert_eq!(cli.port, Some(2917));
        assert_eq!(cli.start_delay, 30.0);
        assert_eq!((cli.pid.as_str(), cli.eid.as_str()), ("p", "e"));
    }

    #[test]
    fn key_and_both_names_are_required_and_delays_checked() {
        assert!(Cli::try_parse_from(["event-sched", "p", "e"]).is_err());
        assert!(Cli::try_parse_from(["event-sched", "-k", "/k", "p"]).is_err());
        let cli =
            Cli::try_parse_from(["event-sched", "-k", "/k", "--start-delay", "0.25", "p", "e"])
                .unwrap();
        assert_eq!(cli.settings().start_delay, Duration::from_millis(250));
        for bad in ["-1", "nan", "1e9", "x"] {
            assert!(
                Cli::try_parse_from(["event-sched", "-k", "/k", "--start-delay", bad, "p", "e"])
                    .is_err(),
                "{bad}"
            );
        }
    }
}
