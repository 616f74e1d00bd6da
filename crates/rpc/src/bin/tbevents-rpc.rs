//! `tbevents-rpc`: the boss XML-RPC server for the event system.
//!
//! Thin over `tbevents_rpc::server`; see docs/rpc.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tbevents_rpc::server::{self, Limits, TlsConfig};
use tbevents_rpc::service::Service;

/// Serves Emulab's event-system XML-RPC methods over HTTPS with client
/// certificates, or on stdin/stdout for an ssh forced command.
#[derive(Parser, Debug)]
#[command(name = "tbevents-rpc", version)]
struct Cli {
    /// The experiment store (default: TBEVENTS_STORE, then the SQLite default).
    #[arg(long)]
    store: Option<String>,
    /// Serve one session on stdin/stdout (an ssh forced command).
    #[arg(long)]
    stdio: bool,
    /// With --stdio: the authenticated user (default: the USER or LOGNAME
    /// environment variable, which sshd sets to the logged-in account).
    #[arg(long)]
    user: Option<String>,
    /// HTTPS listen address.
    #[arg(long, default_value = "0.0.0.0:3069")]
    listen: String,
    /// PEM server certificate chain.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PEM server private key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// PEM CA that signs the users' client certificates.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// File of `CN uid` lines mapping certificate subjects to users
    /// (a CN not listed is taken as the uid itself).
    #[arg(long)]
    subject_map: Option<PathBuf>,
    /// Largest request in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_request: usize,
    /// Most concurrent connections.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds allowed to read one request.
    #[arg(long, default_value_t = 30)]
    read_timeout: u64,
    /// Log filter (error, warn, info, debug, trace); beats RUST_LOG.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn parse_subject_map(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((cn, uid)) = line.rsplit_once(char::is_whitespace) else {
            anyhow::bail!("line {}: expected `CN uid`", n + 1);
        };
        map.insert(cn.trim().to_owned(), uid.to_owned());
    }
    Ok(map)
}

fn stdio_user(cli: &Cli) -> anyhow::Result<String> {
    if let Some(user) = &cli.user {
        return Ok(user.clone());
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(var)
            && !user.is_empty()
        {
            return Ok(user);
        }
    }
    anyhow::bail!("--stdio needs the user: pass --user UID or run it from sshd, which sets USER")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tbevents_cli::init_logging(
        "tbevents-rpc",
        cli.log_level.as_deref(),
        "info",
        tbevents_cli::LogStyle::Daemon,
    );
    let url = tbevents_store::resolve_store_url(cli.store.as_deref())?;
    let store = tokio::task::spawn_blocking(move || tbevents_store::open(&url))
        .await
        .context("the store task failed")??;
    let service = Arc::new(Service::new(Arc::from(store)));
    let limits = Limits {
        max_request: cli.max_request,
        read_timeout: Duration::from_secs(cli.read_timeout),
        max_connections: cli.max_connections.max(1),
        ..Limits::default()
    };
    if cli.stdio {
        let user = stdio_user(&cli)?;
        server::serve_stdio(user, service, &limits).await;
        return Ok(());
    }
    let (Some(cert), Some(key), Some(client_ca)) =
        (cli.cert.clone(), cli.key.clone(), cli.client_ca.clone())
    else {
        anyhow::bail!("HTTPS needs --cert, --key and --client-ca (or use --stdio for ssh)");
    };
    let subject_map = match &cli.subject_map {
        Some(path) => parse_subject_map(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("bad subject map {}", path.display()))?,
        None => HashMap::new(),
    };
    let config = TlsConfig {
        cert,
        key,
        client_ca,
        subject_map,
    };
    let acceptor = server::build_acceptor(&config)?;
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    tracing::info!("listening on {}", listener.local_addr()?);
    server::serve_https(listener, acceptor, Arc::new(config), service, limits).await;
    Ok(())
}
