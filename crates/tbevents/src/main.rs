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
mod custody;
mod demo;
mod effects;
mod eventsys;
mod experiments;
mod linktest;
mod table;
mod testbed;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tbevents_control::proxy::Operation;

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
tbevents eventsys replay -e testbed/web\n  \
tbevents swapout -e testbed/web"
)]
struct Cli {
    /// Experiment store URL (sqlite:/path.db, a plain path, sqlite::memory:,
    /// mysql://user:password@host:port/database).
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,

    /// Scheduler control configuration (root only; default
    /// /etc/tbevents/control.toml, see docs/eventsys.md).
    #[arg(long, global = true, value_name = "PATH")]
    control_config: Option<PathBuf>,

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
        /// Also keep the event key in the store (`experiments.eventkey`).
        /// Off by default: the key file is the key's one home, so reading
        /// the store never yields a key.
        #[arg(long = "store-key")]
        store_key: bool,
        /// Unix group the key file belongs to (default: the experiment's
        /// group from the store's `groups` table, else the system group
        /// named like the project group).
        #[arg(long = "unix-group", value_name = "GROUP")]
        unix_group: Option<String>,
        /// The NS file.
        nsfile: PathBuf,
    },
    /// Record the physical mapping of every virtual node, make the
    /// experiment active and start its event scheduler.
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
        /// Do not start the experiment's event scheduler.
        #[arg(long = "no-eventsys")]
        no_eventsys: bool,
    },
    /// Stop the event scheduler, remove the physical mapping and set the
    /// state to `swapped`.
    Swapout {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
    /// Show the experiment's state (and whether its event scheduler runs),
    /// or set it.
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
    /// Start, stop or restart the experiment's event scheduler (as its
    /// swapper, through the root-side proxy), or show whether it runs.
    #[command(
        after_help = "`replay` stops the scheduler and starts it again, so the \
experiment's events run again from a new time zero. Each operation is safe to repeat. Users run \
this through sudo and tbevents-eventsys-proxy; see docs/eventsys.md.\n\n\
EXAMPLES:\n  tbevents eventsys start -e testbed/web\n  tbevents eventsys replay -e testbed/web"
    )]
    Eventsys {
        /// start, stop, replay or status.
        #[arg(value_enum)]
        operation: tbevents_control::proxy::Operation,
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
    },
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
    /// Write a read-only SQLite snapshot of one experiment (its rows and the
    /// type tables; no key, no other experiment) for its scheduler.
    #[command(
        after_help = "The file is mode 0640; run as root it belongs to root and the \
experiment's Unix group. Start the scheduler with --store sqlite:PATH.\n\n\
EXAMPLE:\n  tbevents snapshot -e testbed/web --to /var/lib/tbevents/snap/testbed_web.db"
    )]
    Snapshot {
        /// The experiment, pid/eid.
        #[arg(short = 'e', long = "experiment", value_name = "PID/EID")]
        experiment: String,
        /// Where to write the snapshot.
        #[arg(long = "to", value_name = "PATH")]
        to: PathBuf,
    },
    /// Copy every experiment, user, group and membership from one store
    /// into another, empty one (SQLite to MySQL or back).
    #[command(
        after_help = "EXAMPLE:\n  tbevents import --from sqlite:/var/lib/tbevents/tbevents.db \
--to mysql://tbevents:secret@127.0.0.1:3306/tbdb"
    )]
    Import {
        /// The store to read.
        #[arg(long = "from", value_name = "URL")]
        from: String,
        /// The store to fill (must hold no experiments, users or groups).
        #[arg(long = "to", value_name = "URL")]
        to: String,
    },
    /// Print the SQL that creates a least-privilege MySQL account for the
    /// scheduler (or the operator); run it with the mysql client as root.
    #[command(
        name = "mysql-grants",
        after_help = "EXAMPLE:\n  tbevents mysql-grants \
--account scheduler --user tbsched --password secret --database tbdb | mysql -u root"
    )]
    MysqlGrants {
        /// Which account.
        #[arg(long, value_enum, default_value = "scheduler")]
        account: custody::Account,
        /// The account's user name.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Where it connects from.
        #[arg(long, value_name = "HOST", default_value = "localhost")]
        host: String,
        /// Its password.
        #[arg(long, value_name = "PASSWORD")]
        password: String,
        /// The tbevents database.
        #[arg(long, value_name = "DB")]
        database: String,
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
    let control = cli.control_config.as_deref();
    let result = match cli.command {
        Command::Create {
            experiment,
            gid,
            uid,
            path,
            store_key,
            unix_group,
            nsfile,
        } => experiments::create(
            store,
            &experiment,
            experiments::CreateOptions {
                gid: gid.as_deref(),
                uid: uid.as_deref(),
                path,
                store_key,
                unix_group: unix_group.as_deref(),
            },
            &nsfile,
        ),
        Command::Snapshot { experiment, to } => custody::snapshot(store, &experiment, &to),
        Command::Import { from, to } => custody::import(&from, &to),
        Command::MysqlGrants {
            account,
            user,
            host,
            password,
            database,
        } => custody::mysql_grants(account, &user, &host, &password, &database),
        Command::Swapin {
            experiment,
            map,
            no_eventsys,
        } => experiments::swapin(store, &experiment, &map).and_then(|()| {
            if no_eventsys {
                Ok(())
            } else {
                eventsys::lifecycle_step(control, Operation::Start, &experiment).with_context(
                    || {
                        format!(
                            "{experiment} is active but its event scheduler did not start; fix \
                             the cause and run `tbevents eventsys start -e {experiment}`"
                        )
                    },
                )
            }
        }),
        Command::Swapout { experiment } => {
            // Swap out even when the stop fails, then report both.
            let stopped = eventsys::lifecycle_step(control, Operation::Stop, &experiment);
            experiments::swapout(store, &experiment).and(stopped)
        }
        Command::State { experiment, state } => {
            experiments::state(store, &experiment, state.as_deref()).map(|()| {
                if state.is_none()
                    && let Some(line) = eventsys::state_line(control, &experiment)
                {
                    println!("{line}");
                }
            })
        }
        Command::Eventsys {
            operation,
            experiment,
        } => eventsys::command(control, operation, &experiment),
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
