//! The scheduler's life: start-up in the original's order (spec
//! docs/emulab-model.md §6.2), firing, and a clean exit on SIGTERM/SIGINT.
//!
//! 1. Read the key; open the store and check the experiment exists (a
//!    mistyped pid/eid is an error at once, not an endless wait).
//! 2. Register with the router using the key (retrying an unreachable
//!    router every second) and subscribe to the experiment's scheduler
//!    requests. Requests that arrive from now on are held (`dynamic`).
//! 3. Wait until the experiment's state is `active`, polling the store
//!    (every `--poll-interval`, logging every 10th try).
//! 4. Load the agents, groups and static events; resolve every event (an
//!    unknown object fails the start, naming it).
//! 5. Time zero = now + `--start-delay`, with microseconds (the original
//!    truncated its base time to whole seconds). Arm TIME START and the
//!    static events; release the held requests.
//! 6. Fire until the caller's `shutdown` future completes (in
//!    `event-sched`, SIGTERM or SIGINT), then return the summary.
//!
//! Like the router, the library takes plain [`Settings`] and a shutdown
//! future; the command line and the signals are the binary's.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use elvin_client::ConnectOptions;
use tbevents_event::{EventHandle, EventKey, Reconnect, RegisterOptions, server_uri};
use tbevents_store::{ExperimentId, ExperimentState, ExperimentStore, StoreError};

use crate::agents::AgentTable;
use crate::dynamic::{DEFAULT_HOLD_LIMIT, Intake};
use crate::firing::{Firing, FiringConfig};
use crate::intern::Interner;
use crate::network::{RouterOutlet, log_connection_events, pump_requests, request_tuple};
use crate::schedule::{Catalog, Plan};
use crate::simulator::{CommandTemplate, SimulatorCommands, start_runner};
use crate::stats::{Stats, Summary};
use crate::time::{duration_micros, format_sec_usec, now_micros};

/// Bytes of encoded events that may wait for the router (16 MiB: a burst
/// of 40,000 typical events).
pub const SEND_BUFFER_BYTES: usize = 16 << 20;

/// How often a waiting scheduler says it is still waiting, in polls.
pub const WAIT_LOG_EVERY: u64 = 10;

/// What one scheduler runs with (`event-sched`'s flags, parsed).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The experiment's project.
    pub pid: String,
    /// The experiment's name.
    pub eid: String,
    /// The event router's host (or an `elvin://` URI).
    pub server: String,
    /// The router's port, when not the default or in `server`.
    pub port: Option<u16>,
    /// The experiment's key file.
    pub keyfile: PathBuf,
    /// The store URL; `None` for `TBEVENTS_STORE`, then the default.
    pub store: Option<String>,
    /// From the moment the experiment is seen active to time zero.
    pub start_delay: Duration,
    /// Between two looks at the store while waiting for it.
    pub poll_interval: Duration,
    /// The command SWAPOUT runs (see [`crate::simulator`]).
    pub swapout_command: String,
    /// The command HALT runs.
    pub halt_command: String,
    /// How long before a due time the firing thread stops sleeping and
    /// spins, in microseconds.
    pub spin_window_us: u32,
    /// Ask for real-time priority for the firing thread.
    pub realtime: bool,
}

/// Runs the scheduler until `shutdown` completes; returns the run's
/// figures. A start-up failure (key, store, experiment, events) returns
/// at once with the reason.
///
/// Refuses to run with privilege (root, group root, capabilities), as
/// `event-sched` does: the scheduler runs the experiment's commands.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    if let Some(problem) = crate::privilege::privilege_problem() {
        anyhow::bail!(
            "refusing to run the scheduler with privilege ({problem}): run it as the experiment's user"
        );
    }
    let stats = Arc::new(Stats::new());
    let expt = format!("{}/{}", settings.pid, settings.eid);
    let served = serve(&settings, Arc::clone(&stats));
    tokio::pin!(served);
    tokio::select! {
        result = &mut served => {
            // `serve` returns only on a start-up failure; its success
            // case waits for ever.
            result?;
        }
        () = shutdown => {
            tracing::info!("stopping the scheduler for {expt}");
        }
    }
    Ok(stats.summary())
}

/// Everything up to firing; then waits for ever (the caller's signal
/// handling ends it, dropping the firing thread, which stops it).
async fn serve(settings: &Settings, stats: Arc<Stats>) -> anyhow::Result<()> {
    let id = ExperimentId::new(&settings.pid, &settings.eid);
    id.validate().context("bad experiment name")?;
    let expt = id.to_string();
    let key = EventKey::from_file(&settings.keyfile)
        .with_context(|| format!("cannot use key file {}", settings.keyfile.display()))?;
    let simulator = SimulatorCommands {
        swapout: CommandTemplate::parse(&settings.swapout_command, "SWAPOUT")?,
        halt: CommandTemplate::parse(&settings.halt_command, "HALT")?,
        pid: settings.pid.clone(),
        eid: settings.eid.clone(),
    };

    let url = tbevents_store::resolve_store_url(settings.store.as_deref())?;
    // On ops the scheduler reads boss's store over XML-RPC (docs/rpc.md).
    tbevents_rpc::register();
    let store: Arc<dyn ExperimentStore> = {
        let url = url.clone();
        // Read-only: the scheduler never changes the store, so read access
        // (its experiment's snapshot, a SELECT-only account) is enough.
        tokio::task::spawn_blocking(move || tbevents_store::open_read_only(&url))
            .await
            .context("the store task failed")??
            .into()
    };
    let initial = blocking(&store, {
        let id = id.clone();
        move |s| s.state(&id)
    })
    .await?;
    let router = server_uri(&settings.server, settings.port);
    tracing::info!(
        store = %store.location(),
        router = %router,
        start_delay_s = settings.start_delay.as_secs_f64(),
        "event-sched for {expt} starting (experiment state: {initial})"
    );

    // A deep send buffer lets a burst of due events leave the firing thread
    // at once instead of waiting for the router to read each packet; it is
    // the bound on memory spent on unsent events.
    let options = RegisterOptions::new()
        .key(key.clone())
        .connect_options(ConnectOptions::new().send_buffer(SEND_BUFFER_BYTES))
        .retry(Reconnect {
            retry_interval: std::time::Duration::from_secs(1),
            max_retries: None,
        });
    let handle = EventHandle::register_with(&router, options)
        .await
        .with_context(|| format!("could not register with the event router at {router}"))?;
    tracing::info!("registered with the event router at {router}");
    tokio::spawn(log_connection_events(handle.clone()));

    let tuple = request_tuple(&expt);
    let subscription = handle
        .subscribe(&tuple)
        .await
        .context("could not subscribe to the experiment's scheduler requests")?;
    tracing::info!(
        expression = subscription.expression().unwrap_or_default(),
        "subscribed to scheduler requests"
    );
    let intake = Arc::new(Mutex::new(Intake::new(
        Arc::clone(&stats),
        DEFAULT_HOLD_LIMIT,
    )));
    tokio::spawn(pump_requests(subscription, Arc::clone(&intake)));

    wait_for_active(&store, &id, initial, settings).await?;

    let started = Instant::now();
    let (agents, groups, events) = patiently(&store, settings, "loading the experiment", {
        let id = id.clone();
        move |s| Ok((s.agents(&id)?, s.groups(&id)?, s.events(&id)?))
    })
    .await?;
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut strings = Interner::new();
    let table = AgentTable::build(&agents, &groups, &mut strings)
        .context("could not build the agent table")?;
    let plan =
        Plan::build(&events, &table, &mut strings).context("could not load the static events")?;
    drop((agents, groups, events));
    release_freed_memory();
    log_agent_table(&table, &strings);
    let catalog = Arc::new(Catalog {
        expt: expt.clone(),
        strings,
        agents: table,
    });

    let (simulator_tx, simulator_rx) = std::sync::mpsc::channel();
    start_runner(simulator, simulator_rx).context("could not start the SIMULATOR runner")?;
    let outlet = RouterOutlet::new(handle.clone(), key, tokio::runtime::Handle::current());
    let config = FiringConfig {
        sender: Some(handle.sender().address.to_string()),
        spin_window: std::time::Duration::from_micros(u64::from(settings.spin_window_us)),
        realtime: settings.realtime,
        ..FiringConfig::default()
    };
    let firing = Firing::start(
        Arc::clone(&catalog),
        Box::new(outlet),
        simulator_tx,
        Arc::clone(&stats),
        config,
    )
    .context("could not start the firing thread")?;

    let rows = plan.rows;
    let group_rows = plan.group_rows;
    let simulator_events = plan.simulator_events;
    let last_offset = plan.last_offset;
    let records = plan.len();
    let time_zero = now_micros().saturating_add(duration_micros(settings.start_delay));
    let mut next_seq = 0u64;
    let armed = plan.arm(time_zero, &mut next_seq);
    if !firing.handle().add(armed) {
        anyhow::bail!("the firing thread stopped before the schedule was armed");
    }
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        agents = catalog.agents.agent_count(),
        skipped_agents = catalog.agents.unmapped_count(),
        groups = catalog.agents.group_count(),
        events = rows,
        group_events = group_rows,
        records,
        simulator_events,
        strings = catalog.strings.len(),
        read_ms = format!("{read_ms:.1}"),
        load_ms = format!("{load_ms:.1}"),
        resident_mib = resident_mib()
            .map(|m| format!("{m:.1}"))
            .unwrap_or_default(),
        "loaded {} agents, {} event groups and {rows} static events ({records} to fire) in \
         {load_ms:.1} ms",
        catalog.agents.agent_count(),
        catalog.agents.group_count(),
    );
    tracing::info!(
        time_zero = %format_sec_usec(time_zero),
        "time zero (TIME START) is {} ({}), in {:.3} s; the last static event is at +{:.3} s",
        human_time(time_zero),
        format_sec_usec(time_zero),
        settings.start_delay.as_secs_f64(),
        last_offset as f64 / 1e6,
    );
    match intake.lock() {
        Ok(mut intake) => intake.ready(Arc::clone(&catalog), firing.handle(), next_seq),
        Err(_) => anyhow::bail!("the dynamic event intake is unusable"),
    }

    // Fire until the caller's signal handling drops this future; dropping
    // `firing` stops the firing thread, dropping `handle` the connection.
    let _keep = (firing, handle);
    std::future::pending::<()>().await;
    Ok(())
}

/// Polls the store until the experiment is active.
async fn wait_for_active(
    store: &Arc<dyn ExperimentStore>,
    id: &ExperimentId,
    initial: ExperimentState,
    settings: &Settings,
) -> anyhow::Result<()> {
    let mut state = initial;
    let mut tries: u64 = 0;
    while state != ExperimentState::Active {
        if tries == 0 {
            tracing::info!("waiting for {id} to become active (it is {state})");
        } else if tries.is_multiple_of(WAIT_LOG_EVERY) {
            tracing::info!("Waiting for {id} to become active: still {state} after {tries} checks");
        }
        tries += 1;
        tokio::time::sleep(settings.poll_interval).await;
        let id = id.clone();
        match blocking(store, move |s| s.state(&id)).await {
            Ok(now) => state = now,
            // The server went away: keep waiting; the store reconnects on
            // the next poll.
            Err(err) if is_transient(&err) => {
                tracing::warn!("cannot read the experiment's state, will retry: {err:#}");
            }
            Err(err) => return Err(err),
        }
    }
    if tries > 0 {
        tracing::info!("{id} is active");
    }
    Ok(())
}

/// How often a load is tried when the store server cannot be reached.
pub const LOAD_ATTEMPTS: u32 = 5;

/// True for store failures that may pass: the server could not be reached
/// or was busy.
fn is_transient(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Unreachable { .. } | StoreError::Busy { .. })
    )
}

/// Runs a store call, trying again (every `--poll-interval`, at most
/// [`LOAD_ATTEMPTS`] times) while the server cannot be reached; the last
/// error names the server.
async fn patiently<T, F>(
    store: &Arc<dyn ExperimentStore>,
    settings: &Settings,
    doing: &str,
    call: F,
) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: Fn(&dyn ExperimentStore) -> Result<T, StoreError> + Send + Sync + Clone + 'static,
{
    let mut attempt = 1;
    loop {
        match blocking(store, call.clone()).await {
            Err(err) if is_transient(&err) && attempt < LOAD_ATTEMPTS => {
                tracing::warn!("{doing}: {err:#}; trying again ({attempt}/{LOAD_ATTEMPTS})");
                attempt += 1;
                tokio::time::sleep(settings.poll_interval).await;
            }
            other => return other,
        }
    }
}

/// Runs a store call off the async runtime.
async fn blocking<T, F>(store: &Arc<dyn ExperimentStore>, call: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn ExperimentStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    let result = tokio::task::spawn_blocking(move || call(&*store))
        .await
        .context("the store task failed")?;
    Ok(result?)
}

/// The agent table dump of the original's `-d` (one line per entry).
fn log_agent_table(table: &AgentTable, strings: &Interner) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for (name, entry) in table.iter() {
        match entry.group {
            Some(_) => tracing::debug!(
                "Group: {} {}",
                strings.resolve(name),
                strings.resolve(entry.objname)
            ),
            None => tracing::debug!(
                "Agent: {} {} {} {}",
                strings.resolve(entry.objname),
                strings.resolve(entry.objtype),
                strings.resolve(entry.vnode),
                strings.resolve(entry.host)
            ),
        }
    }
}

/// A UTC timestamp for log lines.
fn human_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
        .unwrap_or_else(|| format_sec_usec(micros))
}

/// Hands the memory of the transient store rows back to the operating
/// system. glibc keeps freed heap pages for reuse; after loading 100,000
/// rows that is tens of MiB the scheduler will never need again.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no
    // preconditions and does not touch live allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// This process's resident memory in MiB, from /proc (Linux).
pub fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_library_refuses_privilege_too() {
        if crate::privilege::privilege_problem().is_none() {
            eprintln!("SKIPPED: this test checks the refusal, so it needs root");
            return;
        }
        let settings = Settings {
            pid: "p".into(),
            eid: "e".into(),
            server: "localhost".into(),
            port: None,
            keyfile: PathBuf::from("/nonexistent"),
            store: None,
            start_delay: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            swapout_command: String::new(),
            halt_command: String::new(),
            spin_window_us: 0,
            realtime: false,
        };
        let error = run(settings, std::future::pending()).await.unwrap_err();
        assert!(error.to_string().contains("privilege"), "{error}");
    }
}
