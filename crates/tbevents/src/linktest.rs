//! `tbevents linktest`: run linktest on a swapped-in experiment, or stop a
//! running one. The work is in `tbevents-linktest`'s controller; this is
//! the command line and the process plumbing (runtime, signals, exit
//! status). See docs/linktest.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tbevents_cli::runtime::{Threads, block_on};

use clap::Args;
use tbevents_linktest::control::{self, ControlError, RunOptions};
use tbevents_linktest::probe::Ports;
use tbevents_store::ExperimentId;

/// `tbevents linktest` flags.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs as the experiment's user (never as root). Every node needs its \
`linktest` daemon. Error files go to <experiment dir>/tbdata/linktest/<node>.error; the exit \
status is the number of nodes with errors (255 for a run cancelled before it found any).\n\n\
EXAMPLES:\n  tbevents linktest -e testbed/web\n  tbevents linktest -e testbed/web --level 2 --json\n  \
tbevents linktest -e testbed/web --kill"
)]
pub(crate) struct LinktestArgs {
    /// The experiment, pid/eid.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
    experiment: String,
    /// Run levels 1 up to N: 1 connectivity and latency, 2 static routing,
    /// 3 loss, 4 bandwidth.
    #[arg(short = 'l', long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(1..=4))]
    level: u8,
    /// Start at level N instead of 1.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=4))]
    start_level: u8,
    /// Stop the run in progress on this experiment instead.
    #[arg(long)]
    kill: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Event server (default: TBEVENTS_SERVER, /etc/tbevents/tbevents.toml, event-server).
    #[arg(short = 's', long, value_name = "HOST")]
    server: Option<String>,
    /// Event server port.
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,
    /// The experiment's key file (default: tbdata/eventkey in the experiment directory).
    #[arg(short = 'k', long = "keyfile", value_name = "FILE")]
    keyfile: Option<PathBuf>,
    /// Give up on the whole run after this many seconds.
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        default_value_t = 600
    )]
    timeout: u64,
    /// Give up when a node takes longer than this for one step.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    step_timeout: u64,
    /// Probe ports (echo, stream) every node listens on during a run.
    #[arg(long, value_name = "PORT", default_value_t = tbevents_linktest::probe::DEFAULT_ECHO_PORT)]
    echo_port: u16,
    /// See --echo-port.
    #[arg(long, value_name = "PORT", default_value_t = tbevents_linktest::probe::DEFAULT_STREAM_PORT)]
    stream_port: u16,
}

/// Runs the command; returns the process exit status.
pub(crate) fn run(store: Option<&str>, args: LinktestArgs) -> anyhow::Result<ExitCode> {
    let experiment = ExperimentId::parse(&args.experiment)
        .ok_or_else(|| anyhow::anyhow!("-e wants pid/eid, got {:?}", args.experiment))?;
    let host = tbevents_event::config::resolve_event_server(args.server.as_deref())?.host;
    let options = RunOptions {
        store: store.map(str::to_owned),
        experiment,
        start_level: args.start_level.min(args.level),
        stop_level: args.level,
        server: tbevents_event::server_uri(&host, args.port),
        key_file: args.keyfile,
        ports: Ports {
            echo: args.echo_port,
            stream: args.stream_port,
        },
        time_limit: Duration::from_secs(args.timeout.max(1)),
        step_timeout: Duration::from_secs(args.step_timeout.max(1)),
        results_dir: None,
        progress: !args.json,
    };
    block_on("tbevents-linktest", Threads::Workers(2), async move {
        if args.kill {
            return match control::stop(&options, Duration::from_secs(15)).await {
                Ok(pid) => {
                    if let Some(pid) = pid {
                        println!(
                            "Linktest (process {pid}) on {} has been stopped.",
                            options.experiment
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error @ ControlError::NotRunning(_)) => {
                    eprintln!("tbevents: {error} (sent KILL to the nodes anyway)");
                    Ok(ExitCode::FAILURE)
                }
                Err(error) => Err(error.into()),
            };
        }
        let cancel = async {
            match tbevents_cli::termination() {
                Ok(signal) => signal.await.to_owned(),
                Err(_) => std::future::pending().await,
            }
        };
        let summary = control::run(options, cancel).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary.to_text());
        }
        Ok(ExitCode::from(summary.exit_status()))
    })?
}
