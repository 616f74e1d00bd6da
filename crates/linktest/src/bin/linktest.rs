//! `linktest`: the per-node linktest daemon. See docs/linktest.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tbevents_cli::{LogStyle, init_logging, termination};
use tbevents_linktest::daemon::{self, DaemonConfig};

/// The command line, with the original's flag letters.
#[derive(Debug, Parser)]
#[command(
    name = "linktest",
    version,
    about = "linktest node daemon: runs this node's part of linktest runs",
    long_about = "Waits for signed LINKTEST events of one experiment and, when a run names \
this node, runs its latency, routing, loss and bandwidth probes and reports what it finds. \
Start one on every node of a swapped-in experiment; run `tbevents linktest -e pid/eid` to test."
)]
struct Cli {
    /// Event router host.
    #[arg(short = 's', long, default_value = "localhost")]
    server: String,
    /// Event router port.
    #[arg(short = 'p', long, default_value_t = 2917)]
    port: u16,
    /// The experiment, pid/eid.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
    experiment: String,
    /// The experiment's event key file.
    #[arg(short = 'k', long = "keyfile", value_name = "FILE")]
    keyfile: PathBuf,
    /// This node's name in the experiment.
    #[arg(long, value_name = "VNODE")]
    vnode: String,
    /// Run the probes inside this network namespace (a name under
    /// /run/netns or a path); needs root.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        "linktest",
        cli.log_level.as_deref(),
        "info",
        LogStyle::Daemon,
    );
    if tbevents_store::ExperimentId::parse(&cli.experiment).is_none() {
        eprintln!("linktest: -e wants pid/eid, got {:?}", cli.experiment);
        return ExitCode::from(2);
    }
    let netns = cli.netns.map(|name| {
        if name.contains('/') {
            PathBuf::from(name)
        } else {
            PathBuf::from("/run/netns").join(name)
        }
    });
    let stop = match termination() {
        Ok(stop) => stop,
        Err(error) => {
            eprintln!("linktest: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = DaemonConfig {
        server: tbevents_event::server_uri(&cli.server, Some(cli.port)),
        expt: cli.experiment,
        key_file: cli.keyfile,
        vnode: cli.vnode,
        netns,
    };
    match daemon::run(config, async {
        let signal = stop.await;
        tracing::info!("{signal}: stopping");
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("linktest: {error}");
            ExitCode::FAILURE
        }
    }
}
