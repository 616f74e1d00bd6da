//! `tbevents`: the operator command for experiments, and the demo.
//!
//! One command carries every experiment operation an operator needs on a
//! tbevents installation without the rest of Emulab: create an experiment
//! from an NS file, swap it in and out (recording a physical mapping),
//! inspect and change its state, list its agents and events, delete it, and
//! `demo`, which runs a whole experiment end to end on loopback. See
//! docs/tbevents.md.
//!
//! The subcommands are thin: parsing is `tbevents-ns`, storage is
//! `tbevents-store`, events are `tbevents-event`, scheduling is the real
//! `event-sched` process. What lives here is argument handling, the
//! defaults an operator expects, readable tables, and the demo's process
//! orchestration and live view.

mod bench;
mod bins;
mod demo;
mod effects;
mod experiments;
mod linktest;
mod table;
mod testbed;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tbevents",
    version,
    about = "Create, swap and inspect tbevents experiments, and run the end-to-end demo",
    long_about = "tbevents manages experiments in the tbevents experiment store: it parses NS \
files into experiments (with their agents, event groups and static `$ns at` events), generates \
each experiment's event key, records swap-in mappings and experiment states, and shows what the \
scheduler will do.\n\n\
`tbevents demo` runs a complete experiment on this machine with nothing installed: a temporary \
store, a real event router (eventd), the example experiment, a real scheduler (event-sched), and \
a live view of every event as it fires.\n\n\
The store is chosen by --store, else the TBEVENTS_STORE environment variable, else \
sqlite:/var/lib/tbevents/tbevents.db.",
    after_help = "EXAMPLES:\n  \
tbevents demo\n  \
tbevents create -e testbed/web examples/demo.ns\n  \
tbevents swapin -e testbed/web --map client=pc12:10.0.0.12\n  \
tbevents events -e testbed/web\n  \
event-sched -k /proj/testbed/exp/web/tbdata/eventkey testbed web\n  \
tbevents swapout -e testbed/web"
)]
struct Cli {
    /// Experiment store URL (sqlite:/path.db, a plain path, sqlite::memory:).
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an experiment from an NS file: parse it, store its rows, and
    /// write a new event key to DIR/tbdata/eventkey (mode 0640).
    #[command(
        after_help = "The experiment directory defaults to /proj/<pid>/exp/<eid>. \
The new experiment is left in state `swapped`; `tbevents swapin` makes it active.\n\n\
EXAMPLE:\n  tbevents create -e testbed/web --path /tmp/web examples/demo.ns"
    )]
    Create {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
        /// Project group (default: the pid, Emulab's default group).
        #[arg(long, value_name = "GID")]
        gid: Option<String>,
        /// Creating user (default: the current Unix user).
        #[arg(long, value_name = "UID")]
        uid: Option<String>,
        /// Experiment directory (default: /proj/PID/exp/EID).
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The NS file.
        nsfile: PathBuf,
    },
    /// Record the physical mapping of every virtual node and make the
    /// experiment active.
    #[command(after_help = "Without --map, each virtual node gets node id \
`tb<idx>-<vnode>` and a loopback control address 127.<x>.<y>.<z> unique to the experiment \
(so a whole experiment runs on one machine). --map overrides single nodes.\n\n\
EXAMPLE:\n  tbevents swapin -e testbed/web --map client=pc12:10.0.0.12 --map router=pc13:10.0.0.13")]
    Swapin {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
        /// A mapping vnode=node_id:control_ip (repeatable).
        #[arg(long = "map", value_name = "VNODE=NODE:IP")]
        map: Vec<String>,
    },
    /// Remove the physical mapping and set the state to `swapped`.
    Swapout {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
    /// Show the experiment's state, or set it.
    #[command(
        after_help = "States: new, prerunning, swapped, queued, swapping, activating, \
active, terminating, ended, modify_parse, modify_reparse, modify_reswap, restarting."
    )]
    State {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
        /// The new state.
        state: Option<String>,
    },
    /// List every experiment.
    List,
    /// Show the experiment's agents (with the HOST their events carry) and
    /// event groups.
    Agents {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
    /// Show the experiment's static events in firing order.
    Events {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
    /// Delete the experiment and all its rows (the key file is left alone).
    Delete {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
    /// Run an experiment end to end on this machine, with a live view.
    Demo(demo::DemoArgs),
    /// The emulated testbed: build (`up`), remove (`down`) or show
    /// (`status`) an experiment's nodes and links in network namespaces;
    /// see docs/testbed.md.
    Testbed(testbed::TestbedArgs),
    /// Check the links of a swapped-in experiment (levels 1-4), or stop a
    /// running check; see docs/linktest.md.
    Linktest(linktest::LinktestArgs),
    /// Measure the scheduler (load, accuracy, burst, dynamic); see
    /// docs/scheduler.md.
    #[command(name = "bench-sched")]
    BenchSched(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let store = cli.store.as_deref();
    let result = match cli.command {
        Command::Create {
            experiment,
            gid,
            uid,
            path,
            nsfile,
        } => experiments::create(
            store,
            &experiment,
            gid.as_deref(),
            uid.as_deref(),
            path,
            &nsfile,
        ),
        Command::Swapin { experiment, map } => experiments::swapin(store, &experiment, &map),
        Command::Swapout { experiment } => experiments::swapout(store, &experiment),
        Command::State { experiment, state } => {
            experiments::state(store, &experiment, state.as_deref())
        }
        Command::List => experiments::list(store),
        Command::Agents { experiment } => experiments::agents(store, &experiment),
        Command::Events { experiment } => experiments::events(store, &experiment),
        Command::Delete { experiment } => experiments::delete(store, &experiment),
        Command::Demo(args) => demo::run(args),
        Command::Testbed(args) => testbed::run(store, args),
        Command::Linktest(args) => {
            return match linktest::run(store, args) {
                Ok(status) => status,
                Err(error) => {
                    eprintln!("tbevents: {error:#}");
                    ExitCode::from(255)
                }
            };
        }
        Command::BenchSched(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tbevents: {error:#}");
            ExitCode::FAILURE
        }
    }
}
