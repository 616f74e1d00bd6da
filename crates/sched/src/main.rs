//! `event-sched pid eid`: see `tbevents_sched` and docs/scheduler.md.

use std::process::ExitCode;

mod cli;

use clap::Parser;
use cli::Cli;
use tbevents_sched::privilege::privilege_problem;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(problem) = privilege_problem() {
        eprintln!(
            "event-sched: refusing to run with privilege ({problem}): the scheduler runs \
             commands for the experiment's user; start it as that user with the experiment's \
             group and no capabilities (for example `setpriv --reuid USER --regid GROUP \
             --init-groups`, or `tbevents eventsys start`)"
        );
        return ExitCode::FAILURE;
    }
    if let Err(error) = tbevents_sched::logging::init(cli.debug, cli.logfile.as_deref()) {
        eprintln!("event-sched: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("event-sched-io")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let expt = format!("{}/{}", cli.pid, cli.eid);
    let result = runtime.block_on(async {
        // Handlers first, so a signal sent during start-up is not lost.
        let shutdown = tbevents_cli::shutdown_requested()?;
        tbevents_sched::run::run(cli.settings(), shutdown).await
    });
    // Do not wait for blocked store calls or the router connection.
    runtime.shutdown_background();
    match result {
        Ok(summary) => {
            tracing::info!("Scheduler for {expt} exiting: {summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("event-sched for {expt} cannot run: {error:#}");
            ExitCode::FAILURE
        }
    }
}
