//! `tbevents-eventsys-proxy`: the root side of `tbevents eventsys`; see
//! `tbevents_control` and docs/eventsys.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tbevents_control::proxy::{self, Caller, Operation};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tbevents-eventsys-proxy",
    version,
    about = "Start, stop or replay an experiment's event scheduler (runs as root; users call it \
             through `tbevents eventsys`)",
    after_help = "EXAMPLES:\n  \
sudo tbevents-eventsys-proxy start -e testbed/web\n  \
sudo tbevents-eventsys-proxy stop -e testbed/web\n  \
tbevents-eventsys-proxy status -e testbed/web\n\n\
Settings come from /etc/tbevents/control.toml; see docs/eventsys.md."
)]
struct Cli {
    /// Configuration file (root only; default /etc/tbevents/control.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// What to do.
    #[arg(value_enum)]
    operation: Operation,
    /// The experiment, pid/eid.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
    experiment: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match proxy::run(
        Caller::of_this_process(),
        cli.config,
        cli.operation,
        &cli.experiment,
    ) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tbevents-eventsys-proxy: {error}");
            ExitCode::FAILURE
        }
    }
}
