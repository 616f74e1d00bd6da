//! `tbevents demo`: a whole experiment, end to end, on this machine.
//!
//! What it does, in order:
//!
//! 1. finds `eventd` and `event-sched` next to itself (building them on a
//!    fresh clone, see `bins`);
//! 2. makes a temporary directory holding an SQLite store, the experiment
//!    directory and the logs;
//! 3. starts a real `eventd` on 127.0.0.1:2917, or on a free port if 2917
//!    is taken;
//! 4. creates the experiment `tbdemo/demo` from the NS file (the embedded
//!    `examples/demo.ns` unless another is given), writes its key, and
//!    swaps it in with the default loopback mapping;
//! 5. subscribes to the experiment's fired events with the key (so the view
//!    shows only authenticated events), then starts a real `event-sched`
//!    with a short start delay. When the demo runs as root, the scheduler
//!    (which refuses root) runs as `nobody`, and the temporary directory is
//!    handed to `nobody` so it can read the key and the store;
//! 6. prints the `tevc` command line to send an event from another terminal;
//! 7. shows every event as it fires (time since time zero, object, type,
//!    event, ARGS, lateness; `DYNAMIC` for events not in the NS file);
//! 8. after the last static event plus a grace period, prints a summary,
//!    stops the scheduler with SIGTERM (and prints its own summary line),
//!    stops the router and removes the temporary directory. Ctrl-C does the
//!    same cleanup at any point.
//!
//! Run as root on Linux, the demo also builds the experiment on the
//! emulated testbed (`tbevents-testbed`) between steps 4 and 5: every node
//! in its own network namespace with its agents, so the events act — the
//! programs run (as `nobody`), the traffic generators send, the access link
//! is shaped by a delay node. The view then prints, once a second, what is
//! measured on the first shaped link (our own UDP round-trip probe every
//! 200 ms) and what each traffic sink receives, so `DELAY=50ms` shows up
//! as ~100 ms of round-trip time. The testbed is removed with everything
//! else. Elsewhere (not root, not Linux, `--no-testbed`), the demo says why
//! and shows the events only.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tbevents_cli::runtime::Threads;

use anyhow::{Context as _, bail};
use clap::Args;
use tbevents_event::{AddressTuple, EventHandle};
use tbevents_sched::time::{MICROS_PER_SEC, now_micros};
use tbevents_store::{ExperimentId, VirtualExperiment};
use tokio::process::{Child, Command};

use crate::bins;
use crate::effects::{Effects, Measurement};
use crate::experiments;
use crate::view::{StaticIndex, View, format_offset};

/// The example experiment, built in so the demo needs no files.
pub(crate) const EMBEDDED_DEMO_NS: &str = include_str!("../../../examples/demo.ns");

/// The demo experiment's name.
pub(crate) const DEMO_PID: &str = "tbdemo";
/// The demo experiment's name.
pub(crate) const DEMO_EID: &str = "demo";

/// `tbevents demo` options.
#[derive(Debug, Args)]
#[command(
    after_help = "The demo needs nothing installed and leaves nothing behind. While it \
runs, send your own event from another terminal with the tevc command it prints; it shows up \
marked DYNAMIC.\n\n\
EXAMPLES:\n  tbevents demo\n  tbevents demo --start-delay 1 my-experiment.ns"
)]
pub(crate) struct DemoArgs {
    /// NS file to run (default: the built-in examples/demo.ns).
    pub nsfile: Option<PathBuf>,
    /// Seconds between loading and time zero.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub start_delay: f64,
    /// Seconds to keep watching after the last static event.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub grace: f64,
    /// Router port (default: 2917 if free, else any free port).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Keep the temporary directory (store, key, logs) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Show the events only, even as root (no emulated testbed).
    #[arg(long)]
    pub no_testbed: bool,
}

/// Runs the demo.
pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(0.0..=3600.0).contains(&args.start_delay) || !(0.0..=3600.0).contains(&args.grace) {
        bail!("--start-delay and --grace must be between 0 and 3600 seconds");
    }
    tbevents_cli::runtime::block_on("tbevents-demo", Threads::Workers(2), demo(args))
        .context("cannot start the async runtime")?
}

/// Who the scheduler runs as when the demo runs as root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A scratch environment: temporary directory, store, router.
pub(crate) struct Lab {
    /// The temporary directory (removed on drop unless kept).
    pub dir: tempfile::TempDir,
    /// `sqlite:<dir>/store.db`.
    pub store_url: String,
    /// The router's port on 127.0.0.1.
    pub port: u16,
    /// The router process.
    pub router: Child,
    /// Path of `event-sched`.
    pub event_sched: PathBuf,
    /// Set when running as root: the scheduler's user.
    pub run_as: Option<RunAs>,
}

impl Lab {
    /// Finds the programs, makes the directory and starts the router.
    pub(crate) async fn start(port: Option<u16>) -> anyhow::Result<Lab> {
        let found = bins::find_siblings(bins::DEMO_PROGRAMS)?;
        let (eventd, event_sched) = match found.as_slice() {
            [eventd, event_sched, ..] => (eventd.clone(), event_sched.clone()),
            _ => bail!("internal error: expected the program paths"),
        };
        let dir = tempfile::Builder::new()
            .prefix("tbevents-demo.")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let store_url = format!("sqlite:{}", dir.path().join("store.db").display());
        let port = match port {
            Some(port) => port,
            None => choose_port()?,
        };
        let log = std::fs::File::create(dir.path().join("eventd.log"))
            .context("cannot create the router log")?;
        let err = log.try_clone().context("cannot share the router log")?;
        let listen = format!("elvin://127.0.0.1:{port}");
        let mut router = Command::new(&eventd)
            .args(["--listen", &listen])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", eventd.display()))?;
        wait_for_router(&mut router, port, &dir.path().join("eventd.log")).await?;
        let run_as = if nix::unistd::geteuid().is_root() || nix::unistd::getuid().is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .context(
                    "running as root, the scheduler must run as an unprivileged user, but there \
                     is no user `nobody`: run the demo as an ordinary user",
                )?;
            Some(RunAs {
                uid: nobody.uid.as_raw(),
                gid: nobody.gid.as_raw(),
            })
        } else {
            None
        };
        Ok(Lab {
            dir,
            store_url,
            port,
            router,
            event_sched,
            run_as,
        })
    }

    /// The router's URI.
    pub(crate) fn router_uri(&self) -> String {
        format!("elvin://127.0.0.1:{}", self.port)
    }

    /// Creates and swaps in an experiment; returns its key file and the
    /// static schedule the view expects.
    pub(crate) fn experiment(
        &self,
        id: &ExperimentId,
        virt: VirtualExperiment,
    ) -> anyhow::Result<(PathBuf, StaticIndex)> {
        let store = tbevents_store::open(&self.store_url)?;
        let exp_dir = self.dir.path().join("exp").join(&id.eid);
        let created = experiments::create_from(
            &*store,
            id,
            &id.pid,
            "demo",
            &exp_dir,
            virt,
            experiments::KeyCustody::default(),
        )?;
        experiments::swapin_with(&*store, id, &[])?;
        let index = StaticIndex::build(&store.agents(id)?, &store.groups(id)?, &store.events(id)?)?;
        drop(store);
        Ok((created.key_path, index))
    }

    /// When running as root, gives the whole directory to the scheduler's
    /// user so it can read the key and use the store.
    pub(crate) fn hand_over(&self) -> anyhow::Result<()> {
        let Some(run_as) = self.run_as else {
            return Ok(());
        };
        chown_tree(self.dir.path(), run_as)
    }

    /// Starts `event-sched` for `id`.
    pub(crate) fn start_scheduler(
        &self,
        id: &ExperimentId,
        key: &Path,
        start_delay: f64,
        extra: &[&str],
    ) -> anyhow::Result<Scheduler> {
        let log_path = self.dir.path().join("event-sched.log");
        let mut command = Command::new(&self.event_sched);
        command
            .arg("-s")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(key)
            .arg("-l")
            .arg(&log_path)
            .arg("--store")
            .arg(&self.store_url)
            .arg("--start-delay")
            .arg(format!("{start_delay}"))
            .arg("--poll-interval")
            .arg("0.2")
            .args(extra)
            // Names after `--` can never be read as options.
            .arg("--")
            .arg(&id.pid)
            .arg(&id.eid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(run_as) = self.run_as {
            command.uid(run_as.uid).gid(run_as.gid);
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.event_sched.display()))?;
        Ok(Scheduler { child, log_path })
    }

    /// Stops the router.
    pub(crate) async fn stop_router(&mut self) {
        terminate(&mut self.router, Duration::from_secs(3)).await;
    }
}

/// A running `event-sched`.
pub(crate) struct Scheduler {
    /// The process.
    pub child: Child,
    /// Its log file.
    pub log_path: PathBuf,
}

impl Scheduler {
    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails if the scheduler has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "event-sched exited ({status}); the end of its log:\n{}",
                self.log_tail(15)
            );
        }
        Ok(())
    }

    /// SIGTERM, wait, and return the scheduler's summary line.
    pub(crate) async fn stop(&mut self) -> Option<String> {
        terminate(&mut self.child, Duration::from_secs(5)).await;
        self.log()
            .lines()
            .rev()
            .find(|line| line.contains("exiting: events fired"))
            .and_then(|line| line.split_once("exiting: ").map(|(_, s)| s.to_owned()))
    }
}

/// SIGTERM, then SIGKILL after `patience`.
pub(crate) async fn terminate(child: &mut Child, patience: Duration) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(patience, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// 2917 if free on 127.0.0.1, else a free port.
fn choose_port() -> anyhow::Result<u16> {
    if TcpListener::bind(("127.0.0.1", tbevents_event::constants::ELVIN_PORT)).is_ok() {
        return Ok(tbevents_event::constants::ELVIN_PORT);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn wait_for_router(router: &mut Child, port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = router.try_wait() {
            bail!(
                "eventd exited ({status}) instead of listening on {address}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("eventd did not accept connections on {address} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn chown_tree(path: &Path, run_as: RunAs) -> anyhow::Result<()> {
    let uid = Some(nix::unistd::Uid::from_raw(run_as.uid));
    let gid = Some(nix::unistd::Gid::from_raw(run_as.gid));
    nix::unistd::chown(path, uid, gid)
        .with_context(|| format!("cannot hand {} to the scheduler's user", path.display()))?;
    if path.is_dir() {
        // The top directory is private to its owner; the owner is now the
        // scheduler's user and root can enter anyway.
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), run_as)?;
        }
    }
    Ok(())
}

/// Parses the demo's NS file.
fn load_ns(nsfile: Option<&Path>) -> anyhow::Result<(String, VirtualExperiment)> {
    match nsfile {
        Some(path) => Ok((path.display().to_string(), tbevents_ns::parse_file(path)?)),
        None => Ok((
            "examples/demo.ns (built in)".to_owned(),
            tbevents_ns::parse_str(EMBEDDED_DEMO_NS, "examples/demo.ns")?,
        )),
    }
}

/// A `tevc` example line for this experiment.
fn tevc_example(virt: &VirtualExperiment, port: u16, key: &Path, expt: &str) -> String {
    let tevc = bins::own_dir()
        .map(|dir| dir.join("tevc"))
        .ok()
        .filter(|path| path.is_file())
        .map_or_else(|| "tevc".to_owned(), |path| path.display().to_string());
    let pick = |objtype: &str| virt.agents.iter().find(|a| a.objtype == objtype);
    let (object, event) = if let Some(a) = pick("TRAFGEN") {
        (a.vname.as_str(), "stop")
    } else if let Some(a) = pick("PROGRAM") {
        (a.vname.as_str(), "start")
    } else if let Some(a) = pick("LINK") {
        (a.vname.as_str(), "down")
    } else {
        ("OBJECT", "start")
    };
    format!(
        "{tevc} -s 127.0.0.1 -p {port} -k {} -e {expt} now {object} {event}",
        key.display()
    )
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let (source, virt) = load_ns(args.nsfile.as_deref())?;
    // On the testbed the experiment's name carries the process id: its
    // namespaces are named after it, and two demos must never share them.
    let id = match testbed_unavailable(&args) {
        Some(_) => ExperimentId::new(DEMO_PID, DEMO_EID),
        None => ExperimentId::new(DEMO_PID, format!("{DEMO_EID}-{}", std::process::id())),
    };
    let mut lab = Lab::start(args.port).await?;
    let outcome = {
        let lab_ref = &mut lab;
        tokio::select! {
            result = watch(lab_ref, &args, &source, virt, &id) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (Ctrl-C); cleaned up")),
        }
    };
    lab.stop_router().await;
    if args.keep {
        let kept = lab.dir.keep();
        println!("kept {} (store, key, logs)", kept.display());
    }
    outcome
}

/// Everything between starting the router and stopping it. Dropping this
/// future (Ctrl-C) kills the scheduler (`kill_on_drop`).
async fn watch(
    lab: &mut Lab,
    args: &DemoArgs,
    source: &str,
    virt: VirtualExperiment,
    id: &ExperimentId,
) -> anyhow::Result<()> {
    let expt = id.to_string();
    // The example needs the agents; the store takes the experiment itself.
    let agents_only = VirtualExperiment {
        agents: virt.agents.clone(),
        ..VirtualExperiment::default()
    };
    let targets = MeasureTargets::from(&virt);
    let (key, index) = lab.experiment(id, virt)?;
    let tevc_line = tevc_example(&agents_only, lab.port, &key, &expt);
    lab.hand_over()?;
    let (mut testbed, testbed_line) = match testbed_unavailable(args) {
        Some(reason) => (
            None,
            format!("not used: {reason}; the view shows the events only"),
        ),
        None => match DemoTestbed::start(lab, id, &key, targets).await {
            Ok(testbed) => {
                let line = testbed.describe();
                (Some(testbed), line)
            }
            Err(error) => (
                None,
                format!("could not be built, so the view shows the events only: {error:#}"),
            ),
        },
    };
    let static_total = index.total;
    let last = index.last_offset;
    let mut view = View::new(index)?;

    let handle = EventHandle::register_with_keyfile(&lab.router_uri(), &key)
        .await
        .context("the view could not connect to the router")?;
    let mut events = handle
        .subscribe(&AddressTuple::new().expt(&expt))
        .await
        .context("the view could not subscribe")?;

    let simulator_note = "echo tbevents demo: SIMULATOR {pid}/{eid} event (the demo swaps nothing)";
    let mut scheduler = lab.start_scheduler(
        id,
        &key,
        args.start_delay,
        &[
            "--swapout-command",
            simulator_note,
            "--halt-command",
            simulator_note,
        ],
    )?;
    println!("tbevents demo");
    println!("  experiment  {expt} from {source}");
    println!(
        "  router      eventd on {} ({} static events, the last at {})",
        lab.router_uri(),
        static_total,
        format_offset(last)
    );
    println!(
        "  scheduler   event-sched{}, time zero in {:.1} s; log {}",
        if lab.run_as.is_some() {
            " (as user nobody, because the demo runs as root)"
        } else {
            ""
        },
        args.start_delay,
        scheduler.log_path.display()
    );
    println!("  testbed     {testbed_line}");
    println!("  send your own event from another terminal:");
    println!("    {tevc_line}");
    println!();
    println!(
        "{:>10}  {:<7}  {:<12} {:<9} {:<8} {:<34} LATENESS",
        "TIME", "KIND", "OBJECT", "TYPE", "EVENT", "ARGS"
    );

    let mut window = tokio::time::interval(Duration::from_secs(1));
    window.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let first_deadline = Duration::from_secs_f64(args.start_delay) + Duration::from_secs(30);
    let grace = (args.grace * 1e6) as i64;
    loop {
        scheduler.check_running()?;
        let wait_until = match view.time_zero() {
            Some(zero) => zero + last + grace,
            None => {
                if started.elapsed() > first_deadline {
                    bail!(
                        "no TIME START within {:.0} s; the end of the scheduler's log:\n{}",
                        first_deadline.as_secs_f64(),
                        scheduler.log_tail(15)
                    );
                }
                now_micros() + MICROS_PER_SEC
            }
        };
        let remaining = wait_until - now_micros();
        if remaining <= 0 {
            break;
        }
        let slice = Duration::from_micros(remaining.unsigned_abs()).min(Duration::from_millis(500));
        tokio::select! {
            received = tokio::time::timeout(slice, events.recv()) => match received {
                Ok(Some(event)) => {
                    let received = now_micros();
                    // Sink reports are measurements: the effect lines show
                    // them, instead of a line each per second.
                    if let Some(testbed) = testbed.as_mut()
                        && event.objtype() == Some("TRAFGEN")
                        && event.get_string("EVENTTYPE") == Some("REPORT")
                    {
                        if let Some((rate_kbps, loss)) =
                            crate::effects::parse_report(event.get_string("ARGS").unwrap_or(""))
                        {
                            testbed.effects.record(Measurement::Sink {
                                name: event.objname().unwrap_or("").to_owned(),
                                rate_kbps,
                                loss,
                            });
                        }
                        continue;
                    }
                    let seen = view.observe(event.attributes(), received);
                    // Beside the event: what was measured just before it.
                    match testbed.as_ref().and_then(|t| t.effects.latest()) {
                        Some(effect) => println!("{}  | {effect}", seen.line),
                        None => println!("{}", seen.line),
                    }
                }
                Ok(None) => bail!("the router connection ended"),
                Err(_) => {}
            },
            Some(measurement) = next_measurement(&mut testbed) => {
                if let Some(testbed) = testbed.as_mut() {
                    testbed.effects.record(measurement);
                }
            }
            _ = window.tick(), if testbed.is_some() => {
                if let Some(testbed) = testbed.as_mut() {
                    let line = testbed.effects.close_window();
                    let when = view
                        .time_zero()
                        .map_or_else(|| "      -".to_owned(), |zero| format_offset(now_micros() - zero));
                    println!("{when:>10}  {:<7}  {line}", "effect");
                }
            }
        }
    }
    println!();
    println!("{}", view.summary());
    let scheduler_summary = scheduler.stop().await;
    if let Some(line) = scheduler_summary {
        println!("scheduler: {line}");
    }
    let _ = handle.unregister().await;
    if let Some(testbed) = testbed.take() {
        let removed = tokio::task::spawn_blocking(move || testbed.stop())
            .await
            .context("the testbed clean-up failed")??;
        println!("testbed: removed {removed} namespaces and their processes");
    }
    if !view.all_static_seen() {
        bail!("not every static event arrived; see the scheduler's log above");
    }
    Ok(())
}

/// Why the demo does not use the emulated testbed, if it does not.
fn testbed_unavailable(args: &DemoArgs) -> Option<String> {
    if args.no_testbed {
        return Some("--no-testbed was given".to_owned());
    }
    if !cfg!(target_os = "linux") {
        return Some("the emulated testbed needs Linux network namespaces".to_owned());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some(
            "the emulated testbed needs root (network namespaces); run the demo with sudo to see \
             the events act"
                .to_owned(),
        );
    }
    None
}

/// What the demo measures, picked from the experiment's rows before they
/// go into the store: the first shaped duplex link (else the first link),
/// probed from its first member to its second, and every traffic sink.
#[derive(Clone, Debug, Default)]
struct MeasureTargets {
    /// (link, from vnode, to vnode, to address).
    link: Option<(String, String, String, std::net::Ipv4Addr)>,
    /// (sink vnode, sink name).
    sinks: Vec<(String, String)>,
}

impl MeasureTargets {
    fn from(virt: &VirtualExperiment) -> MeasureTargets {
        let mut links: Vec<(&str, Vec<&tbevents_store::VirtLanMember>)> = Vec::new();
        for member in &virt.lan_members {
            match links.iter_mut().find(|(name, _)| *name == member.vname) {
                Some((_, list)) => list.push(member),
                None => links.push((&member.vname, vec![member])),
            }
        }
        let duplex = |(_, members): &&(&str, Vec<&tbevents_store::VirtLanMember>)| {
            members.len() == 2 && !members.iter().any(|m| m.is_lan)
        };
        let chosen = links
            .iter()
            .filter(duplex)
            .find(|(_, members)| {
                members
                    .iter()
                    .any(|m| tbevents_testbed::plan::needs_shaping(m))
            })
            .or_else(|| links.iter().find(duplex));
        let link = chosen.and_then(|(name, members)| {
            let address = members[1].ip.parse().ok()?;
            Some((
                (*name).to_owned(),
                members[0].vnode.clone(),
                members[1].vnode.clone(),
                address,
            ))
        });
        let sinks = virt
            .trafgens
            .iter()
            .filter(|t| t.role == "sink")
            .map(|t| (t.vnode.clone(), t.vname.clone()))
            .collect();
        MeasureTargets { link, sinks }
    }
}

/// The demo's testbed, its measurements, and their clean-up.
struct DemoTestbed {
    config: tbevents_testbed::Config,
    id: ExperimentId,
    namespaces: usize,
    processes: usize,
    link: Option<String>,
    effects: Effects,
    measurements: tokio::sync::mpsc::UnboundedReceiver<Measurement>,
    probe: Option<tbevents_testbed::probe::RttProbe>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    down: bool,
}

impl DemoTestbed {
    /// Builds the testbed and starts measuring.
    async fn start(
        lab: &Lab,
        id: &ExperimentId,
        key: &Path,
        targets: MeasureTargets,
    ) -> anyhow::Result<DemoTestbed> {
        let store_url = lab.store_url.clone();
        let bin_dir = crate::testbed::program_dir(&store_url, id)?;
        let mut config =
            tbevents_testbed::Config::new(store_url, format!("127.0.0.1:{}", lab.port), bin_dir);
        // The machine-wide state directory, so a demo that was killed
        // before it could clean up is found and removed by the next one.
        sweep_dead_demos(&config);
        config.log_dir = Some(lab.dir.path().join("logs"));
        // Programs run as the same unprivileged user as the scheduler.
        config.user = Some("nobody".to_owned());
        let (up_config, up_id) = (config.clone(), id.clone());
        let state = tokio::task::spawn_blocking(move || tbevents_testbed::up(&up_config, &up_id))
            .await
            .context("the testbed set-up stopped")??;
        let (sender, measurements) = tokio::sync::mpsc::unbounded_channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut testbed = DemoTestbed {
            config,
            id: id.clone(),
            namespaces: state.plan.namespaces.len(),
            processes: state.processes.len(),
            link: None,
            effects: Effects::new("-"),
            measurements,
            probe: None,
            stop: std::sync::Arc::clone(&stop),
            down: false,
        };
        if let Some((link, from, to, address)) = targets.link {
            let namespace = |vnode: &str| state.plan.node(vnode).map(|ns| ns.name.clone());
            if let (Some(from_ns), Some(to_ns)) = (namespace(&from), namespace(&to)) {
                let probe_sender = sender.clone();
                testbed.probe = Some(tbevents_testbed::probe::start(
                    &from_ns,
                    &to_ns,
                    address,
                    Duration::from_millis(200),
                    move |result| probe_sender.send(Measurement::Probe(result)).is_ok(),
                )?);
                testbed.effects = Effects::new(&link);
                testbed.link = Some(format!("{link} ({from} -> {to} {address})"));
            }
        }
        for (vnode, _) in dedup_nodes(&targets.sinks) {
            if let Some(ns) = state.plan.node(&vnode) {
                watch_sink_reports(
                    ns.name.clone(),
                    key.to_owned(),
                    id.to_string(),
                    sender.clone(),
                    std::sync::Arc::clone(&stop),
                );
            }
        }
        Ok(testbed)
    }

    /// The header line.
    fn describe(&self) -> String {
        format!(
            "{} namespaces, {} processes; measuring {} every 200 ms",
            self.namespaces,
            self.processes,
            self.link.as_deref().unwrap_or("no link")
        )
    }

    /// Stops measuring and removes the testbed; the number of namespaces
    /// removed.
    fn stop(mut self) -> anyhow::Result<usize> {
        self.down = true;
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.probe = None;
        let removed = tbevents_testbed::down(&self.config, &self.id)?;
        Ok(removed.namespaces.len())
    }
}

impl Drop for DemoTestbed {
    /// Ctrl-C and errors drop the testbed without `stop`: remove it anyway.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.probe = None;
        if !self.down
            && let Err(error) = tbevents_testbed::down(&self.config, &self.id)
        {
            eprintln!("tbevents demo: removing the testbed failed: {error:#}");
        }
    }
}

/// Removes the testbeds of earlier demos whose process is gone (killed
/// with SIGKILL, or the machine's power cut before they cleaned up): their
/// state files are `tbdemo_demo-<pid>.json` in the state directory.
fn sweep_dead_demos(config: &tbevents_testbed::Config) {
    let Ok(entries) = std::fs::read_dir(&config.state_dir) else {
        return;
    };
    let start = format!("{DEMO_PID}_{DEMO_EID}-");
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&start)
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if tbevents_testbed::process::pid_alive(pid) {
            continue;
        }
        let id = ExperimentId::new(DEMO_PID, format!("{DEMO_EID}-{pid}"));
        match tbevents_testbed::down(config, &id) {
            Ok(removed) => println!(
                "tbevents demo: removed the testbed of an earlier demo (process {pid}, {} namespaces)",
                removed.namespaces.len()
            ),
            Err(error) => eprintln!(
                "tbevents demo: could not remove the testbed of an earlier demo (process {pid}): {error:#}"
            ),
        }
    }
}

/// Each node once, in first-seen order.
fn dedup_nodes(sinks: &[(String, String)]) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (vnode, name) in sinks {
        if !seen.iter().any(|(v, _)| v == vnode) {
            seen.push((vnode.clone(), name.clone()));
        }
    }
    seen
}

/// The next measurement, or never when there is no testbed.
async fn next_measurement(testbed: &mut Option<DemoTestbed>) -> Option<Measurement> {
    match testbed {
        Some(testbed) => testbed.measurements.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the traffic sinks' REPORT events on the router of the node in
/// `namespace` (they stay on the node: evproxy sends only scheduler
/// requests upstream) until `stop` is set.
fn watch_sink_reports(
    namespace: String,
    key: PathBuf,
    expt: String,
    measurements: tokio::sync::mpsc::UnboundedSender<Measurement>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::spawn(move || {
        let label = namespace.clone();
        let result = tbevents_testbed::netns::run_in(&namespace, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let uri = format!(
                    "elvin://127.0.0.1:{}",
                    tbevents_testbed::plan::NODE_ROUTER_PORT
                );
                let handle = EventHandle::register_with_keyfile(&uri, &key).await?;
                let tuple = AddressTuple::new()
                    .expt(&expt)
                    .objtype("TRAFGEN")
                    .eventtype("REPORT");
                let mut reports = handle.subscribe(&tuple).await?;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(Some(event)) =
                        tokio::time::timeout(Duration::from_millis(200), reports.recv()).await
                    {
                        let name = event.objname().unwrap_or("").to_owned();
                        let args = event.get_string("ARGS").unwrap_or("");
                        if let Some((rate_kbps, loss)) = crate::effects::parse_report(args)
                            && measurements
                                .send(Measurement::Sink {
                                    name,
                                    rate_kbps,
                                    loss,
                                })
                                .is_err()
                        {
                            break;
                        }
                    }
                }
                let _ = handle.unregister().await;
                Ok(())
            })
        });
        if let Err(error) = result {
            eprintln!("tbevents demo: the traffic reports of {label} are not shown: {error:#}");
        }
    });
}
