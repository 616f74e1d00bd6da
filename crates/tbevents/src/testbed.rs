//! `tbevents testbed up|down|status`: the emulated testbed from the
//! command line.
//!
//! The work is in `tbevents-testbed`; this module resolves the defaults an
//! operator expects (the store, the event server, the programs next to
//! `tbevents`, building them once on a fresh clone) and prints what was
//! made in tables.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tbevents_testbed::plan::NamespaceKind;
use tbevents_testbed::{Config, State};

use crate::bins;
use crate::experiments::parse_experiment;
use crate::table::Table;

/// `tbevents testbed` options.
#[derive(Debug, Args)]
pub(crate) struct TestbedArgs {
    #[command(subcommand)]
    command: TestbedCommand,
}

/// Options every testbed subcommand takes.
#[derive(Debug, Args)]
struct Common {
    /// The experiment, pid/eid.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
    experiment: String,
    /// Directory of state files.
    #[arg(long, value_name = "DIR", default_value = tbevents_testbed::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum TestbedCommand {
    /// Build the experiment's nodes, links and agents in network
    /// namespaces (root, Linux). Leftovers of an earlier run of the same
    /// experiment are removed first.
    #[command(
        after_help = "The experiment must be swapped in (`tbevents swapin`): each \
node's control address from the mapping is the HOST its events carry. The event server is \
the experiment's router as this host reaches it; node namespaces reach it through a \
forwarder, never through an address or route added to the host.\n\n\
EXAMPLE:\n  tbevents testbed up -e testbed/web --server 127.0.0.1:2917"
    )]
    Up {
        #[command(flatten)]
        common: Common,
        /// The experiment's event server, HOST:PORT (default: $TBEVENTS_SERVER, else
        /// 127.0.0.1:2917).
        #[arg(short = 's', long, value_name = "HOST:PORT")]
        server: Option<String>,
        /// Run programs as this user (default: the experiment's swapper).
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// Log directory (default: logs/testbed in the experiment directory).
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
    /// Remove everything `up` made for the experiment (and only that).
    Down {
        #[command(flatten)]
        common: Common,
    },
    /// Show the experiment's namespaces and processes.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

/// The event server: the flag, `TBEVENTS_SERVER`, else the local router.
fn server(flag: Option<String>) -> String {
    let text = flag
        .or_else(|| std::env::var("TBEVENTS_SERVER").ok())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    if text.contains(':') {
        text
    } else {
        format!("{text}:{}", tbevents_event::constants::ELVIN_PORT)
    }
}

/// The directory holding every program the experiment's testbed needs
/// (next to `tbevents`; in a source tree, missing ones are built once).
pub(crate) fn program_dir(
    store_url: &str,
    id: &tbevents_store::ExperimentId,
) -> anyhow::Result<PathBuf> {
    let plan = tbevents_testbed::plan_for(store_url, id)?;
    let found = bins::find_siblings(&plan.programs())?;
    found
        .first()
        .and_then(|path| path.parent())
        .map(PathBuf::from)
        .context("no program directory")
}

/// Runs a testbed subcommand.
pub(crate) fn run(store_url: Option<&str>, args: TestbedArgs) -> anyhow::Result<()> {
    let store_url = tbevents_store::resolve_store_url(store_url)?;
    match args.command {
        TestbedCommand::Up {
            common,
            server: server_flag,
            user,
            log_dir,
        } => {
            let id = parse_experiment(&common.experiment)?;
            tbevents_testbed::require_root()?;
            let bin_dir = program_dir(&store_url, &id)?;
            let mut config = Config::new(store_url, server(server_flag), bin_dir);
            config.state_dir = common.state_dir;
            config.user = user;
            config.log_dir = log_dir;
            let state = tbevents_testbed::up(&config, &id)?;
            print_state(&state);
            println!(
                "{id}: testbed up ({} namespaces, {} processes); logs in {}; remove it with \
                 `tbevents testbed down -e {id}`",
                state.plan.namespaces.len(),
                state.processes.len(),
                state.log_dir.display()
            );
            Ok(())
        }
        TestbedCommand::Down { common } => {
            let id = parse_experiment(&common.experiment)?;
            let mut config = Config::new(store_url, String::new(), PathBuf::new());
            config.state_dir = common.state_dir;
            let removed = tbevents_testbed::down(&config, &id)?;
            if removed.namespaces.is_empty() && removed.processes == 0 && !removed.had_state {
                println!("{id}: no testbed to remove");
            } else {
                println!(
                    "{id}: testbed down ({} namespaces removed, {} processes stopped)",
                    removed.namespaces.len(),
                    removed.processes
                );
            }
            Ok(())
        }
        TestbedCommand::Status { common } => {
            let id = parse_experiment(&common.experiment)?;
            let mut config = Config::new(store_url, String::new(), PathBuf::new());
            config.state_dir = common.state_dir;
            let status = tbevents_testbed::status(&config, &id)?;
            match &status.state {
                Some(state) => print_state(state),
                None => println!("{id}: no state file in {}", config.state_dir.display()),
            }
            let recorded: Vec<&str> = status
                .state
                .iter()
                .flat_map(|s| s.plan.namespaces.iter().map(|n| n.name.as_str()))
                .collect();
            let stray: Vec<&String> = status
                .namespaces
                .iter()
                .filter(|n| !recorded.contains(&n.as_str()))
                .collect();
            if !stray.is_empty() {
                println!(
                    "leftover namespaces not in the state file (removed by `tbevents testbed down -e {id}`): {}",
                    stray
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
    }
}

fn print_state(state: &State) {
    let mut table = Table::new(&["KIND", "NAME", "NAMESPACE", "CONTROL IP", "INTERFACES"]);
    for ns in &state.plan.namespaces {
        let kind = match ns.kind {
            NamespaceKind::Node => "node",
            NamespaceKind::Lan => "lan",
            NamespaceKind::Delay => "delay",
        };
        let mut interfaces: Vec<String> = state
            .plan
            .veths
            .iter()
            .flat_map(|v| [&v.a, &v.b])
            .filter(|end| end.namespace == ns.name)
            .map(|end| match &end.address {
                Some(address) => format!("{}={address}", end.interface),
                None => end.interface.clone(),
            })
            .collect();
        interfaces.sort();
        let exists = if tbevents_testbed::netns::exists(&ns.name) {
            ""
        } else {
            " (missing)"
        };
        table.row(vec![
            kind.to_owned(),
            ns.vname.clone(),
            format!("{}{exists}", ns.name),
            ns.control_ip.clone().unwrap_or_else(|| "-".to_owned()),
            interfaces.join(" "),
        ]);
    }
    print!("{}", table.render());
    println!();
    let mut table = Table::new(&["PROGRAM", "NODE", "PID", "STATE", "LOG"]);
    for p in &state.processes {
        table.row(vec![
            p.program.clone(),
            p.vnode.clone().unwrap_or_else(|| "(host)".to_owned()),
            p.pid.to_string(),
            if p.alive() { "running" } else { "exited" }.to_owned(),
            p.log.display().to_string(),
        ]);
    }
    print!("{}", table.render());
}
