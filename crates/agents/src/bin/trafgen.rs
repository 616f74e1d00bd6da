//! `trafgen`: the constant-bit-rate sources and sinks of one node. See
//! `tbevents_agents::trafgen` and docs/agents.md.

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::time::Duration;

use args::CommonArgs;
use clap::Parser;
use tbevents_agents::runtime::{self, AgentSpec, shutdown_signal};
use tbevents_agents::trafgen::{
    self, DEFAULT_REPORT_INTERVAL, ReportConfig, ReportEvents, TrafgenAgent,
};
use tbevents_agents::{logging, rows};
use tbevents_cli::runtime::Threads;
use tbevents_event::EventKey;

#[derive(Debug, Parser)]
#[command(
    name = "trafgen",
    version,
    about = "Sends and receives the experiment's constant-bit-rate traffic on this node (UDP or \
             TCP) when the scheduler says START, STOP or MODIFY; sinks report rate and loss",
    after_help = "EXAMPLE:\n  trafgen -e testbed/demo -k /proj/testbed/exp/demo/tbdata/eventkey \\\n      \
                  --vnode server2 --host 10.200.0.4 --store sqlite:/var/lib/tbevents/tbevents.db"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,

    /// Seconds between sink reports (log lines and REPORT events).
    #[arg(long = "report-interval", value_name = "SECS",
          default_value_t = DEFAULT_REPORT_INTERVAL.as_secs_f64(), value_parser = parse_interval)]
    report_interval: f64,

    /// Where sink REPORT events go: through the scheduler (to every
    /// watcher of the experiment), only to this node's router, or nowhere
    /// (log lines only).
    #[arg(long = "report-events", value_name = "WHERE", value_enum,
          default_value_t = ReportEvents::Scheduler)]
    report_events: ReportEvents,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.05..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0.05 to 3600"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init("trafgen", cli.common.debug);
    runtime::exit("trafgen", run(cli))
}

fn run(cli: Cli) -> Result<(), String> {
    let common = &cli.common;
    let key = EventKey::from_file(&common.keyfile).map_err(|e| e.to_string())?;
    let node = rows::load(common.store.as_deref(), &common.experiment, &common.vnode)
        .map_err(|e| e.to_string())?;
    let (plan, errors) = trafgen::plan(&node.trafgens);
    for error in errors {
        tracing::error!("{error}; skipping it");
    }
    let host = common.host().or(node.control_ip.clone());
    let report = ReportConfig {
        interval: Duration::from_secs_f64(cli.report_interval),
        events: cli.report_events,
        dir: Some(common.logdir.clone()),
    };
    let names: Vec<String> = plan
        .sources
        .iter()
        .map(|s| s.name.clone())
        .chain(plan.sinks.iter().map(|s| s.name.clone()))
        .collect();
    let spec = AgentSpec {
        server: common.server_uri(),
        expt: common.expt(),
        host: host.clone(),
        objtype: "TRAFGEN".to_owned(),
        names,
    };
    let describe = format!(
        "trafgen for {} on {} (HOST {}), router {}, sources: {}, sinks: {}",
        spec.expt,
        common.vnode,
        host.as_deref().unwrap_or("any"),
        spec.server,
        runtime::list(
            plan.sources
                .iter()
                .map(|s| format!("{} ({} to {})", s.name, s.proto, s.target))
        ),
        runtime::list(
            plan.sinks
                .iter()
                .map(|s| format!("{} ({} on {})", s.name, s.proto, s.local))
        ),
    );
    runtime::serve(spec, key, Threads::Workers(2), describe, |agent, inbox| {
        TrafgenAgent::start(agent, plan, report).run(inbox, shutdown_signal())
    })
}
