//! `delay-agent`: Emulab's link agent. Applies LINK UP/DOWN/MODIFY events
//! to the links given with `--link`, through `tc` or the built-in shaper.
//! See docs/agents.md ("delay-agent").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tbevents_cli::LogSetup;
use tbevents_cli::runtime::{Threads, block_on};
use tbevents_event::server_uri;
use tbevents_linkshape::LinkSpec;
use tbevents_linkshape::agent::{AgentConfig, BackendKind, run};

/// Applies an experiment's link events (UP, DOWN, MODIFY BANDWIDTH= DELAY=
/// PLR= and queue settings) to this node's links.
#[derive(Debug, Parser)]
#[command(name = "delay-agent", version)]
struct Args {
    /// Event router host.
    #[arg(short = 's', long, default_value = "localhost")]
    server: String,
    /// Event router port.
    #[arg(short = 'p', long, default_value_t = 2917)]
    port: u16,
    /// The experiment, PID/EID (Emulab's delay-agent spelled it -E).
    #[arg(short = 'e', short_alias = 'E', long)]
    experiment: Option<String>,
    /// The experiment's event key file; events with a bad HMAC are dropped
    /// and logged.
    #[arg(short = 'k', long)]
    keyfile: Option<PathBuf>,
    /// The HOST value this node answers to, besides "*".
    #[arg(long)]
    host: Option<String>,
    /// This node's name in the experiment (for logs).
    #[arg(long)]
    vnode: Option<String>,
    /// Experiment store to read the links' starting settings from
    /// (virt_lans; read only), e.g. sqlite:/var/lib/tbevents/tbevents.db.
    #[arg(long)]
    store: Option<String>,
    /// Directory for the log file delay-agent.log (default: standard error
    /// only).
    #[arg(short = 'l', long)]
    logdir: Option<PathBuf>,
    /// More logging (-d: debug, -dd: everything).
    #[arg(short = 'd', long, action = clap::ArgAction::Count)]
    debug: u8,
    /// tc: kernel qdiscs on one interface's egress; shaper: the built-in
    /// bridge between two interfaces.
    #[arg(long, value_enum, default_value = "tc")]
    backend: BackendKind,
    /// The network namespace (as in `ip netns`) holding the interfaces,
    /// if not this process's own; the event connection stays here.
    #[arg(long)]
    netns: Option<String>,
    /// A link to serve: NAME:IFACE or NAME:VNODE=IFACE (tc);
    /// NAME:VA=IFACE_A:VB=IFACE_B or NAME:VNODE=IFACE_A:IFACE_B (shaper).
    /// Repeat for more links.
    #[arg(long = "link", value_name = "SPEC", required = true, value_parser = parse_link)]
    links: Vec<LinkSpec>,
}

fn parse_link(text: &str) -> Result<LinkSpec, String> {
    LinkSpec::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log_file = args.logdir.as_ref().map(|dir| dir.join("delay-agent.log"));
    if let Some(dir) = &args.logdir
        && let Err(error) = std::fs::create_dir_all(dir)
    {
        eprintln!(
            "delay-agent: cannot create log directory {}: {error}",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let level = match args.debug {
        0 => None,
        1 => Some("debug"),
        _ => Some("trace"),
    };
    let setup = LogSetup {
        level,
        file: log_file.as_deref(),
        ..LogSetup::new("delay-agent", "info")
    };
    if let Err(error) = tbevents_cli::logging::init(&setup) {
        eprintln!("delay-agent: {error}");
        return ExitCode::from(2);
    }
    let config = AgentConfig {
        server: server_uri(&args.server, Some(args.port)),
        experiment: args.experiment,
        keyfile: args.keyfile,
        host: args.host,
        store: args.store,
        backend: args.backend,
        netns: args.netns,
        links: args.links,
    };
    tracing::info!(vnode = ?args.vnode, backend = ?config.backend, "delay-agent starting");
    let result = block_on("delay-agent", Threads::Current, async {
        let shutdown = tbevents_cli::shutdown_requested().map_err(|e| {
            tbevents_linkshape::agent::AgentError::Config(format!("cannot watch for SIGTERM: {e}"))
        })?;
        run(config, shutdown).await
    })
    .unwrap_or_else(|error| {
        Err(tbevents_linkshape::agent::AgentError::Config(format!(
            "cannot start the runtime: {error}"
        )))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("delay-agent: {error}");
            ExitCode::FAILURE
        }
    }
}
