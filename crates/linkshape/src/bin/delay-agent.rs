//! `delay-agent`: Emulab's link agent. Applies LINK UP/DOWN/MODIFY events
//! to the links given with `--link`, through `tc` or the built-in shaper.
//! See docs/agents.md ("delay-agent").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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

fn init_logging(logdir: Option<&PathBuf>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match logdir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
            let path = dir.join("delay-agent.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        None => {
            use std::io::IsTerminal;
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = init_logging(args.logdir.as_ref()) {
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
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("delay-agent: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    match runtime.block_on(run(config, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("delay-agent: {error}");
            ExitCode::FAILURE
        }
    }
}
