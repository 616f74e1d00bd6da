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

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use tbevents_event::{AddressTuple, EventHandle};
use tbevents_sched::time::{MICROS_PER_SEC, now_micros};
use tbevents_store::{ExperimentId, VirtualExperiment};
use tokio::process::{Child, Command};

use crate::bins;
use crate::experiments;
use crate::view::{StaticIndex, View, format_offset};

/// The example experiment, built in so the demo needs no files.
pub const EMBEDDED_DEMO_NS: &str = include_str!("../../../examples/demo.ns");

/// The demo experiment's name.
pub const DEMO_PID: &str = "tbdemo";
/// The demo experiment's name.
pub const DEMO_EID: &str = "demo";

/// `tbevents demo` options.
#[derive(Debug, Args)]
#[command(
    after_help = "The demo needs nothing installed and leaves nothing behind. While it \
runs, send your own event from another terminal with the tevc command it prints; it shows up \
marked DYNAMIC.\n\n\
EXAMPLES:\n  tbevents demo\n  tbevents demo --start-delay 1 my-experiment.ns"
)]
pub struct DemoArgs {
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
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(0.0..=3600.0).contains(&args.start_delay) || !(0.0..=3600.0).contains(&args.grace) {
        bail!("--start-delay and --grace must be between 0 and 3600 seconds");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(demo(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Who the scheduler runs as when the demo runs as root.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A scratch environment: temporary directory, store, router.
pub struct Lab {
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
    pub async fn start(port: Option<u16>) -> anyhow::Result<Lab> {
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
    pub fn router_uri(&self) -> String {
        format!("elvin://127.0.0.1:{}", self.port)
    }

    /// Creates and swaps in an experiment; returns its key file and the
    /// static schedule the view expects.
    pub fn experiment(
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
    pub fn hand_over(&self) -> anyhow::Result<()> {
        let Some(run_as) = self.run_as else {
            return Ok(());
        };
        chown_tree(self.dir.path(), run_as)
    }

    /// Starts `event-sched` for `id`.
    pub fn start_scheduler(
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
    pub async fn stop_router(&mut self) {
        terminate(&mut self.router, Duration::from_secs(3)).await;
    }
}

/// A running `event-sched`.
pub struct Scheduler {
    /// The process.
    pub child: Child,
    /// Its log file.
    pub log_path: PathBuf,
}

impl Scheduler {
    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails if the scheduler has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "event-sched exited ({status}); the end of its log:\n{}",
                self.log_tail(15)
            );
        }
        Ok(())
    }

    /// SIGTERM, wait, and return the scheduler's summary line.
    pub async fn stop(&mut self) -> Option<String> {
        terminate(&mut self.child, Duration::from_secs(5)).await;
        self.log()
            .lines()
            .rev()
            .find(|line| line.contains("exiting: events fired"))
            .and_then(|line| line.split_once("exiting: ").map(|(_, s)| s.to_owned()))
    }
}

/// SIGTERM, then SIGKILL after `patience`.
pub async fn terminate(child: &mut Child, patience: Duration) {
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
    let id = ExperimentId::new(DEMO_PID, DEMO_EID);
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
    let (key, index) = lab.experiment(id, virt)?;
    let tevc_line = tevc_example(&agents_only, lab.port, &key, &expt);
    lab.hand_over()?;
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
    println!("  send your own event from another terminal:");
    println!("    {tevc_line}");
    println!();
    println!(
        "{:>10}  {:<7}  {:<12} {:<9} {:<8} {:<34} LATENESS",
        "TIME", "KIND", "OBJECT", "TYPE", "EVENT", "ARGS"
    );

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
        match tokio::time::timeout(slice, events.recv()).await {
            Ok(Some(event)) => {
                let received = now_micros();
                let seen = view.observe(event.attributes(), received);
                println!("{}", seen.line);
            }
            Ok(None) => bail!("the router connection ended"),
            Err(_) => {}
        }
    }
    println!();
    println!("{}", view.summary());
    let scheduler_summary = scheduler.stop().await;
    if let Some(line) = scheduler_summary {
        println!("scheduler: {line}");
    }
    let _ = handle.unregister().await;
    if !view.all_static_seen() {
        bail!("not every static event arrived; see the scheduler's log above");
    }
    Ok(())
}
