//! `program-agent`: runs an experiment's programs on one node. See
//! `tbevents_agents::program` and docs/agents.md.

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::time::Duration;

use args::CommonArgs;
use clap::Parser;
use tbevents_agents::program::{self, DEFAULT_STOP_GRACE, ProgramAgent, ProgramConfig};
use tbevents_agents::runtime::{self, AgentSpec, shutdown_signal};
use tbevents_agents::{logging, privilege, rows};
use tbevents_cli::runtime::Threads;
use tbevents_event::EventKey;

#[derive(Debug, Parser)]
#[command(
    name = "program-agent",
    version,
    about = "Runs the experiment's programs on this node when the scheduler says START, STOP, \
             KILL or MODIFY, and reports each run's end with a COMPLETE event",
    after_help = "EXAMPLE:\n  program-agent -e testbed/demo -k /proj/testbed/exp/demo/tbdata/eventkey \\\n      \
                  --vnode client --host 10.200.0.2 --store sqlite:/var/lib/tbevents/tbevents.db \\\n      \
                  -l /proj/testbed/exp/demo/logs/client -u alice"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,

    /// The experiment's user, whom programs run as (required when started
    /// as root; never root itself).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,

    /// Seconds between SIGTERM and SIGKILL when a program is stopped.
    #[arg(long = "stop-grace", value_name = "SECS", default_value_t = DEFAULT_STOP_GRACE.as_secs_f64(),
          value_parser = parse_grace)]
    stop_grace: f64,
}

fn parse_grace(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0 to 3600"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init("program-agent", cli.common.debug);
    runtime::exit("program-agent", run(cli))
}

fn run(cli: Cli) -> Result<(), String> {
    let common = &cli.common;
    let user = privilege::resolve(cli.user.as_deref()).map_err(|e| e.to_string())?;
    // Read what may need root before giving it up.
    let key = EventKey::from_file(&common.keyfile).map_err(|e| e.to_string())?;
    let node = rows::load(common.store.as_deref(), &common.experiment, &common.vnode)
        .map_err(|e| e.to_string())?;
    program::prepare_logdir(&common.logdir, &user).map_err(|e| {
        format!(
            "cannot create the log directory {}: {e}",
            common.logdir.display()
        )
    })?;
    privilege::become_user(&user).map_err(|e| e.to_string())?;
    program::check_logdir(&common.logdir, &user)?;

    let host = common.host().or(node.control_ip.clone());
    let programs = node.programs;
    let config = ProgramConfig {
        expt: common.expt(),
        vnode: common.vnode.clone(),
        logdir: common.logdir.clone(),
        user,
        stop_grace: Duration::from_secs_f64(cli.stop_grace),
    };
    // Names are checked (file-name safe) before subscribing.
    let names: Vec<String> = programs
        .iter()
        .map(|p| p.vname.clone())
        .filter(|name| program::usable_name(name))
        .collect();
    let spec = AgentSpec {
        server: common.server_uri(),
        expt: common.expt(),
        host: host.clone(),
        objtype: "PROGRAM".to_owned(),
        names,
    };
    let describe = format!(
        "program-agent for {} on {} (HOST {}), router {}, programs: {}, running them as {}, logs in {}",
        spec.expt,
        config.vnode,
        host.as_deref().unwrap_or("any"),
        spec.server,
        runtime::list(spec.names.iter().cloned()),
        config.user.name,
        config.logdir.display()
    );
    runtime::serve(spec, key, Threads::Current, describe, |agent, inbox| {
        ProgramAgent::new(config, agent, programs).run(inbox, shutdown_signal())
    })
}
