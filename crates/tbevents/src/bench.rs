//! `tbevents bench-sched`: measures the scheduler against its speed
//! targets with real processes (eventd, event-sched, SQLite store), the
//! way an experiment uses it.
//!
//! | mode | what | target |
//! |---|---|---|
//! | `load` | N static events (default 100,000) loaded from SQLite and armed; the scheduler's resident memory after arming | < 1 s, < 100 MB |
//! | `accuracy` | N events (default 10,000) spread over S seconds (default 60); lateness at a subscriber (arrival − due) and at the scheduler (send − due) | p99 ≤ 1 ms, max ≤ 5 ms |
//! | `burst` | N events (default 10,000) due at the same instant; time from the due time to the last arrival | ≤ 100 ms |
//! | `dynamic` | N requests (default 1,000) sent one at a time "now" with the experiment key (what `tevc` does); time from send to a subscriber's receipt of the fired event | p50 ≤ 2 ms |
//!
//! Results go to stdout as plain lines; docs/scheduler.md records them.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use elvin_client::ConnectOptions;
use hdrhistogram::Histogram;
use tbevents_event::{AddressTuple, EventHandle, RegisterOptions};
use tbevents_sched::time::{from_sec_usec, now_micros};
use tbevents_store::{
    ExperimentId, StaticEvent, VirtAgent, VirtNode, VirtProgram, VirtualExperiment,
};

use crate::demo::{Lab, Scheduler};

/// `bench-sched` options.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Run the scheduler with -d (every fired event and its lateness in its
    /// log) and keep the temporary directory with the logs.
    #[arg(long, global = true)]
    keep: bool,
    /// Run event-sched with --realtime (when tbevents runs as root, it first
    /// raises its own RLIMIT_RTPRIO to 1 so the scheduler inherits it).
    #[arg(long, global = true)]
    realtime: bool,
    /// Pass --spin-window-us to event-sched (default: its own default).
    #[arg(long, global = true, value_name = "MICROS")]
    spin_window_us: Option<u32>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Load and arm N static events; report time and memory.
    Load {
        /// Number of static events.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Load from this store instead of a scratch SQLite file, e.g.
        /// mysql://root@127.0.0.1:3306/tbbench (experiment bench/sched is
        /// replaced there and deleted afterwards).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// N events spread over SPAN seconds; report lateness.
    Accuracy {
        /// Number of static events.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Seconds the events are spread over.
        #[arg(long, default_value_t = 60.0)]
        span: f64,
    },
    /// N events due at the same instant; report how long sending took.
    Burst {
        /// Number of static events.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Measure the scheduler alone: nobody subscribes, so the router
        /// delivers nothing (separates the scheduler's cost from delivery).
        #[arg(long)]
        no_subscriber: bool,
    },
    /// N dynamic events sent one at a time; report send-to-receipt time.
    Dynamic {
        /// Number of requests.
        #[arg(long, default_value_t = 1_000)]
        events: usize,
    },
}

/// Runs a benchmark.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let keep = args.keep;
    KEEP.store(keep, std::sync::atomic::Ordering::Relaxed);
    if args.realtime {
        REALTIME.store(true, std::sync::atomic::Ordering::Relaxed);
        if nix::unistd::geteuid().is_root() {
            use nix::sys::resource::{Resource, setrlimit};
            if let Err(error) = setrlimit(Resource::RLIMIT_RTPRIO, 1, 1) {
                eprintln!("tbevents: could not raise RLIMIT_RTPRIO: {error}");
            }
        }
    }
    if let Some(us) = args.spin_window_us {
        SPIN.store(us, std::sync::atomic::Ordering::Relaxed);
    }
    let result = runtime.block_on(async {
        match args.mode {
            Mode::Load { events, store } => load(events, store).await,
            Mode::Accuracy { events, span } => accuracy(events, span).await,
            Mode::Burst {
                events,
                no_subscriber,
            } => burst(events, no_subscriber).await,
            Mode::Dynamic { events } => dynamic(events).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// `--keep` (read by `setup` and the lab's drop).
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--realtime`.
static REALTIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--spin-window-us`, `u32::MAX` for the scheduler's default.
static SPIN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

const AGENTS: usize = 100;
const NODES: usize = 10;

/// A synthetic experiment: 10 nodes, 100 program agents, and `count`
/// START events at the offsets `time(i)` gives, round-robin over agents.
fn synthetic(count: usize, time: impl Fn(usize) -> f64) -> VirtualExperiment {
    let nodes = (0..NODES)
        .map(|n| VirtNode {
            vname: format!("n{n}"),
            routertype: "none".into(),
            ..VirtNode::default()
        })
        .collect();
    let agents = (0..AGENTS)
        .map(|a| VirtAgent {
            vname: format!("prog{a}"),
            vnode: format!("n{}", a % NODES),
            objtype: "PROGRAM".into(),
        })
        .collect();
    let programs = (0..AGENTS)
        .map(|a| VirtProgram {
            vnode: format!("n{}", a % NODES),
            vname: format!("prog{a}"),
            command: "/bin/true".into(),
            ..Default::default()
        })
        .collect();
    let events = (0..count)
        .map(|i| StaticEvent {
            time: time(i),
            vnode: format!("n{}", (i % AGENTS) % NODES),
            vname: format!("prog{}", i % AGENTS),
            objtype: "PROGRAM".into(),
            eventtype: "START".into(),
            arguments: format!("SEQ={i}"),
            atstring: String::new(),
        })
        .collect();
    VirtualExperiment {
        nodes,
        agents,
        programs,
        events,
        simulator_name: "ns".into(),
        ..VirtualExperiment::default()
    }
}

/// Starts a lab with the synthetic experiment and a scheduler.
async fn setup(
    virt: VirtualExperiment,
    start_delay: f64,
) -> anyhow::Result<(Lab, Scheduler, std::path::PathBuf, ExperimentId)> {
    setup_in(virt, start_delay, None).await
}

/// [`setup`] with the experiment in `store` (a URL) instead of the lab's
/// scratch SQLite file; an old bench/sched experiment there is replaced.
async fn setup_in(
    virt: VirtualExperiment,
    start_delay: f64,
    store: Option<&str>,
) -> anyhow::Result<(Lab, Scheduler, std::path::PathBuf, ExperimentId)> {
    let mut lab = Lab::start(Some(free_port()?)).await?;
    let id = ExperimentId::new("bench", "sched");
    if let Some(url) = store {
        lab.store_url = url.to_owned();
        delete_bench_experiment(url, &id)?;
    }
    let (key, _) = lab.experiment(&id, virt)?;
    lab.hand_over()?;
    let keep = KEEP.load(std::sync::atomic::Ordering::Relaxed);
    let mut extra: Vec<String> = Vec::new();
    if keep {
        extra.push("-d".into());
    }
    if REALTIME.load(std::sync::atomic::Ordering::Relaxed) {
        extra.push("--realtime".into());
    }
    let spin = SPIN.load(std::sync::atomic::Ordering::Relaxed);
    if spin != u32::MAX {
        extra.push(format!("--spin-window-us={spin}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let scheduler = lab.start_scheduler(&id, &key, start_delay, &extra)?;
    if keep {
        println!(
            "keeping {} (scheduler log: {})",
            lab.dir.path().display(),
            scheduler.log_path.display()
        );
    }
    Ok((lab, scheduler, key, id))
}

/// Stops the router and removes (or, with --keep, keeps) the directory.
async fn finish(mut lab: Lab) {
    lab.stop_router().await;
    if KEEP.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = lab.dir.keep();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A subscriber for the experiment's fired events, with a delivery queue
/// deep enough for a burst.
async fn subscriber(lab: &Lab, expt: &str) -> anyhow::Result<tbevents_event::EventSubscription> {
    let options =
        RegisterOptions::new().connect_options(ConnectOptions::new().delivery_capacity(1 << 17));
    let handle = EventHandle::register_with(&lab.router_uri(), options).await?;
    let subscription = handle.subscribe(&AddressTuple::new().expt(expt)).await?;
    // The subscription keeps the connection alive through its client.
    Ok(subscription)
}

async fn wait_for_log(
    scheduler: &mut Scheduler,
    needle: &str,
    within: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + within;
    loop {
        scheduler.check_running()?;
        if let Some(line) = scheduler.log().lines().find(|l| l.contains(needle)) {
            return Ok(line.to_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "the scheduler did not log {needle:?} within {within:?}:\n{}",
                scheduler.log_tail(10)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `key=` in a tracing line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = line.get(start..)?;
    let value: String = rest
        .trim_start_matches('"')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    Some(value)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3
    );
}

/// Removes the benchmark's experiment from a store it does not own.
fn delete_bench_experiment(url: &str, id: &ExperimentId) -> anyhow::Result<()> {
    let store = tbevents_store::open(url)?;
    match store.delete_experiment(id) {
        Ok(()) | Err(tbevents_store::StoreError::ExperimentNotFound(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn load(count: usize, store: Option<String>) -> anyhow::Result<()> {
    let virt = synthetic(count, |i| 1.0 + i as f64 * 0.001);
    let started = Instant::now();
    let (lab, mut scheduler, _, id) = setup_in(virt, 3600.0, store.as_deref()).await?;
    let backend = if store.is_some() {
        "the store"
    } else {
        "SQLite"
    };
    println!("store written in {:.1} s", started.elapsed().as_secs_f64());
    let line = wait_for_log(&mut scheduler, "static events (", Duration::from_secs(60)).await?;
    let load_ms = field(&line, "load_ms").unwrap_or_default();
    let read_ms = field(&line, "read_ms").unwrap_or_default();
    let rss = scheduler
        .child
        .id()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1024.0);
    println!("events: {count}");
    println!(
        "load (read from {backend} + resolve + arm): {load_ms} ms (of which {backend} read \
         {read_ms} ms)"
    );
    match rss {
        Some(mib) => println!("scheduler resident memory after arming: {mib:.1} MiB"),
        None => println!("scheduler resident memory: unknown (no /proc)"),
    }
    scheduler.stop().await;
    finish(lab).await;
    if let Some(url) = &store {
        delete_bench_experiment(url, &id)?;
    }
    Ok(())
}

async fn accuracy(count: usize, span: f64) -> anyhow::Result<()> {
    if count == 0 || !span.is_finite() || span <= 0.0 {
        bail!("give at least one event and a positive span");
    }
    let step = span / count as f64;
    let virt = synthetic(count, |i| 1.0 + i as f64 * step);
    let (lab, mut scheduler, _, id) = setup(virt, 2.0).await?;
    let mut events = subscriber(&lab, &id.to_string()).await?;
    let mut arrival = histogram()?;
    let deadline = Instant::now() + Duration::from_secs_f64(span + 20.0);
    while arrival.len() < count as u64 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Some(event)) => {
                let received = now_micros();
                let a = event.attributes();
                if a.get_str("OBJTYPE") == Some("TIME") {
                    continue;
                }
                if let (Some(s), Some(u)) = (a.get_i32("time_sec"), a.get_i32("time_usec")) {
                    let late = received - from_sec_usec(s, u);
                    arrival.saturating_record(u64::try_from(late).unwrap_or(0).max(1));
                }
            }
            Ok(None) => bail!("the subscription ended"),
            Err(_) => scheduler.check_running()?,
        }
    }
    println!("events: {count} over {span} s");
    report("lateness at a subscriber (arrival - due)", &arrival);
    if let Some(summary) = scheduler.stop().await {
        println!("scheduler's own figures (send - due): {summary}");
    }
    finish(lab).await;
    Ok(())
}

async fn burst(count: usize, no_subscriber: bool) -> anyhow::Result<()> {
    let virt = synthetic(count, |_| 1.0);
    let (lab, mut scheduler, _, id) = setup(virt, 2.0).await?;
    if no_subscriber {
        wait_for_log(&mut scheduler, "time zero", Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        println!("events: {count} due at the same instant; no subscriber");
        if let Some(summary) = scheduler.stop().await {
            println!("scheduler's own figures (send - due): {summary}");
        }
        finish(lab).await;
        return Ok(());
    }
    let mut events = subscriber(&lab, &id.to_string()).await?;
    let mut due = None;
    let mut first = None;
    let mut last = 0i64;
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < count && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Some(event)) => {
                let received = now_micros();
                let a = event.attributes();
                if a.get_str("OBJTYPE") == Some("TIME") {
                    continue;
                }
                if due.is_none()
                    && let (Some(s), Some(u)) = (a.get_i32("time_sec"), a.get_i32("time_usec"))
                {
                    due = Some(from_sec_usec(s, u));
                }
                first.get_or_insert(received);
                last = received;
                seen += 1;
            }
            Ok(None) => bail!("the subscription ended"),
            Err(_) => scheduler.check_running()?,
        }
    }
    let (Some(due), Some(first)) = (due, first) else {
        bail!("no events arrived");
    };
    println!("events: {count} due at the same instant; arrived: {seen}");
    println!(
        "first arrival {:.3} ms after due, last arrival {:.3} ms after due",
        (first - due) as f64 / 1e3,
        (last - due) as f64 / 1e3
    );
    if let Some(summary) = scheduler.stop().await {
        println!("scheduler's own figures (send - due): {summary}");
    }
    finish(lab).await;
    Ok(())
}

async fn dynamic(count: usize) -> anyhow::Result<()> {
    let virt = synthetic(0, |_| 0.0);
    let (lab, mut scheduler, key, id) = setup(virt, 0.0).await?;
    let expt = id.to_string();
    wait_for_log(&mut scheduler, "time zero", Duration::from_secs(30)).await?;
    let mut events = subscriber(&lab, &expt).await?;
    let sender = EventHandle::register_with_keyfile(&lab.router_uri(), &key).await?;
    let tuple = AddressTuple::new()
        .expt(&expt)
        .objname("prog0")
        .eventtype("START");
    // Let TIME START pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = events.try_recv() {}
    let mut latency = histogram()?;
    for i in 0..count {
        let mut request = sender.new_notification(&tuple);
        request.set_arguments(format!("SEQ={i}"));
        let sent = now_micros();
        sender
            .schedule(&mut request, std::time::SystemTime::now())
            .await?;
        let want = format!("SEQ={i}");
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(event)) if event.arguments() == Some(want.as_str()) => {
                    let took = now_micros() - sent;
                    latency.saturating_record(u64::try_from(took).unwrap_or(0).max(1));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("the subscription ended"),
                Err(_) => {
                    scheduler.check_running()?;
                    bail!("dynamic event {i} did not arrive within 5 s");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("dynamic events: {count}, sent one at a time");
    report(
        "send (tevc path) to receipt through router and scheduler",
        &latency,
    );
    scheduler.stop().await;
    finish(lab).await;
    Ok(())
}
