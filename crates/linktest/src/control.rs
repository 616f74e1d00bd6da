//! The controller behind `tbevents linktest`: runs linktest over a
//! swapped-in experiment, as the experiment's user, and stops a running
//! one.
//!
//! A run: read the experiment and its topology from the store, clear the
//! results directory (`<experiment dir>/tbdata/linktest`) and claim it with
//! a pid file, send START with the topology, wait until every node's daemon
//! says it is ready, then for each step send STEP and wait until every node
//! says COMPLETE, collecting the errors nodes report on the way, and
//! finally send STOP and write the error files. Every wait has a deadline,
//! and the whole run has a time limit: a missing node, a lost event or a
//! hung probe turns into a cancelled run (KILL sent to every node), never a
//! hang. `stop` (`--kill`) signals the controller that owns the pid file
//! and also sends a bare KILL, so daemons left mid-run by a controller
//! that died are freed too.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tbevents_event::{EventHandle, EventSubscription, RegisterOptions};
use tbevents_store::{ExperimentId, ExperimentState};

use crate::daemon::KILLED_STEP;
use crate::probe::Ports;
use crate::protocol::{self, Message, READY_STEP};
use crate::report::Summary;
use crate::schedule::{self, Action};
use crate::topology::Topology;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Store URL (`None`: the default store).
    pub store: Option<String>,
    /// The experiment.
    pub experiment: ExperimentId,
    /// First level (1..=4).
    pub start_level: u8,
    /// Last level (1..=4).
    pub stop_level: u8,
    /// The event router (`elvin://host:port`).
    pub server: String,
    /// The key file (`None`: `<experiment dir>/tbdata/eventkey`).
    pub key_file: Option<PathBuf>,
    /// The probe ports.
    pub ports: Ports,
    /// The whole run's time limit.
    pub time_limit: Duration,
    /// How long nodes may take to say they are ready, and to finish one
    /// step.
    pub step_timeout: Duration,
    /// Where the error files go (`None`: `<experiment dir>/tbdata/linktest`).
    pub results_dir: Option<PathBuf>,
    /// Print progress to standard error.
    pub progress: bool,
}

/// Why linktest could not run (as opposed to a run that found errors).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Refused as root.
    #[error(
        "linktest runs as the experiment's user, never as root; run it as {swapper} (for example `sudo -u {swapper} tbevents linktest -e {experiment}`)"
    )]
    Root {
        /// Who should run it.
        swapper: String,
        /// pid/eid.
        experiment: String,
    },
    /// A store problem.
    #[error(transparent)]
    Store(#[from] tbevents_store::StoreError),
    /// The experiment is not swapped in.
    #[error("experiment {0} is {1}, not active: swap it in before running linktest")]
    NotActive(String, String),
    /// Nothing to test.
    #[error("experiment {0} has no links to test")]
    NoLinks(String),
    /// The topology could not be built.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// Another run owns the experiment.
    #[error(
        "linktest is already running on experiment {experiment} (process {pid}); stop it with `tbevents linktest --kill -e {experiment}`"
    )]
    AlreadyRunning {
        /// pid/eid.
        experiment: String,
        /// The running controller.
        pid: i32,
    },
    /// `--kill` found nothing to stop.
    #[error("linktest is not running on experiment {0}")]
    NotRunning(String),
    /// The router could not be reached or the key not read.
    #[error("cannot use the event router {server}: {error}")]
    Router {
        /// The router.
        server: String,
        /// What went wrong.
        error: tbevents_event::EventError,
    },
    /// A file in the results directory could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The controller to kill did not stop.
    #[error("linktest process {0} did not stop after SIGTERM")]
    StillRunning(i32),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ControlError + '_ {
    move |error| ControlError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// What a run needs from the store.
struct Prepared {
    topo: Topology,
    results: PathBuf,
    key_file: PathBuf,
}

fn prepare(options: &RunOptions) -> Result<Prepared, ControlError> {
    let url = tbevents_store::resolve_store_url(options.store.as_deref())?;
    let store = tbevents_store::open_read_only(&url)?;
    let experiment = store.experiment(&options.experiment)?;
    if nix::unistd::geteuid().is_root() {
        return Err(ControlError::Root {
            swapper: experiment.expt_swap_uid.clone(),
            experiment: options.experiment.to_string(),
        });
    }
    if experiment.state != ExperimentState::Active {
        return Err(ControlError::NotActive(
            options.experiment.to_string(),
            experiment.state.to_string(),
        ));
    }
    let topo = Topology::from_virtual(&store.virtual_experiment(&options.experiment)?)?;
    if topo.edges.is_empty() {
        return Err(ControlError::NoLinks(options.experiment.to_string()));
    }
    let tbdata = Path::new(&experiment.path).join("tbdata");
    Ok(Prepared {
        topo,
        results: options
            .results_dir
            .clone()
            .unwrap_or_else(|| tbdata.join("linktest")),
        key_file: options
            .key_file
            .clone()
            .unwrap_or_else(|| tbdata.join("eventkey")),
    })
}

/// The pid file that marks a running controller.
fn pid_file(results: &Path) -> PathBuf {
    results.join("linktest.pid")
}

/// The controller process named by `results`' pid file, if it is alive and
/// really a linktest controller.
fn running_controller(results: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file(results)).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_ours = cmdline.split(|b| *b == 0).any(|arg| arg == b"linktest");
    is_ours.then_some(pid)
}

/// Claims `results` for this process, refusing when a live controller
/// holds it.
fn claim(results: &Path, experiment: &str) -> Result<PidFileGuard, ControlError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o775)
        .create(results)
        .map_err(io_error(results))?;
    let path = pid_file(results);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(mut file) => {
                writeln!(file, "{}", std::process::id()).map_err(io_error(&path))?;
                return Ok(PidFileGuard(path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(pid) = running_controller(results) {
                    return Err(ControlError::AlreadyRunning {
                        experiment: experiment.to_owned(),
                        pid,
                    });
                }
                tracing::info!("clearing a stale linktest pid file");
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Err(ControlError::Io {
        path: path.display().to_string(),
        error: std::io::Error::other("another run keeps creating it"),
    })
}

/// Removes the pid file when the run ends, however it ends.
struct PidFileGuard(PathBuf);

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs linktest; `cancel` resolving (SIGTERM, SIGINT) cancels the run.
/// Returns the summary; error files are written before it returns.
pub async fn run(
    options: RunOptions,
    cancel: impl std::future::Future<Output = String>,
) -> Result<Summary, ControlError> {
    let started = Instant::now();
    let prepared = prepare(&options)?;
    let expt = options.experiment.to_string();
    let _claim = claim(&prepared.results, &expt)?;
    clear_old_results(&prepared.results)?;
    let ltmap = prepared.topo.to_ltmap();
    let ltmap_path = prepared.results.join("ltmap");
    std::fs::write(&ltmap_path, &ltmap).map_err(io_error(&ltmap_path))?;

    let router_error = |error| ControlError::Router {
        server: options.server.clone(),
        error,
    };
    let handle = register(options.server.as_str(), &prepared.key_file).await?;
    let events = handle
        .subscribe(&protocol::subscription(&expt))
        .await
        .map_err(router_error)?;

    let start = options.start_level.clamp(1, schedule::MAX_LEVEL);
    let stop = options.stop_level.clamp(start, schedule::MAX_LEVEL);
    let steps = schedule::steps(&prepared.topo, start, stop);
    let mut summary = Summary {
        experiment: expt.clone(),
        run: rand::random::<u32>() | 1,
        levels: (start, stop),
        nodes: prepared.topo.hosts.clone(),
        steps_planned: steps.len() as u32,
        skipped: skipped_tests(&prepared.topo, start, stop),
        ..Summary::default()
    };
    let mut run = Conductor {
        handle: &handle,
        events,
        expt: &expt,
        summary: &mut summary,
        progress: options.progress,
        nodes: prepared.topo.hosts.iter().cloned().collect(),
        dropped: BTreeSet::new(),
    };
    let outcome = tokio::select! {
        // A signal wins over a step that failed at the same moment, so the
        // report names the real cause.
        biased;
        reason = cancel => Err(format!("cancelled by {reason}")),
        outcome = tokio::time::timeout(options.time_limit, run.conduct(&options, &steps, ltmap)) => {
            match outcome {
                Ok(result) => result,
                Err(_) => Err(format!("the run did not finish within its {} s limit", options.time_limit.as_secs())),
            }
        }
    };
    match outcome {
        Ok(()) => {
            run.send(&Message::Stop {
                run: run.summary.run,
            })
            .await;
        }
        Err(reason) => {
            run.say(&format!("Linktest is being cancelled: {reason}"));
            run.send(&Message::Kill {
                run: Some(run.summary.run),
            })
            .await;
            run.wait_for_kill_acks(Duration::from_secs(3)).await;
            run.summary.cancelled = Some(reason);
        }
    }
    drop(run);
    let _ = handle.unregister().await;
    summary.seconds = started.elapsed().as_secs_f64();
    summary
        .write_error_files(&prepared.results)
        .map_err(io_error(&prepared.results))?;
    Ok(summary)
}

/// Connects to `server` with the experiment's key.
async fn register(server: &str, key_file: &Path) -> Result<EventHandle, ControlError> {
    let router_error = |error| ControlError::Router {
        server: server.to_owned(),
        error,
    };
    let options = RegisterOptions::new()
        .key_file(key_file)
        .map_err(router_error)?;
    EventHandle::register_with(server, options)
        .await
        .map_err(router_error)
}

/// Removes the previous run's `*.error` files.
fn clear_old_results(results: &Path) -> Result<(), ControlError> {
    let entries = std::fs::read_dir(results).map_err(io_error(results))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "error") {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

/// What the schedule leaves out, so the operator knows.
fn skipped_tests(topo: &Topology, start: u8, stop: u8) -> Vec<String> {
    let mut out = Vec::new();
    let in_range = |level: u8| start <= level && level <= stop;
    if in_range(2) && !topo.static_routing {
        out.push(
            "Static Routing: the experiment does not ask for static routes (`$ns rtproto Static`)"
                .into(),
        );
    }
    for edge in &topo.edges {
        if in_range(3) && !schedule::loss_testable(edge) {
            out.push(format!(
                "Loss on {}: the test stream would not fit in the link",
                edge.describe()
            ));
        }
        if in_range(4) && !schedule::bandwidth_testable(edge) {
            out.push(format!(
                "Bandwidth on {}: only links of 64 kb/s to 100 Mb/s without configured loss are measured",
                edge.describe()
            ));
        }
    }
    out
}

/// One run in progress, from the controller's side.
struct Conductor<'a> {
    handle: &'a EventHandle,
    events: EventSubscription,
    expt: &'a str,
    summary: &'a mut Summary,
    progress: bool,
    nodes: BTreeSet<String>,
    /// Nodes that confirmed dropping this run (a KILL). Kept whichever
    /// wait saw the confirmation: `tbevents linktest --kill` sends its own
    /// KILL as well as the signal, so under load a node's confirmation can
    /// arrive while a step is still being waited for.
    dropped: BTreeSet<String>,
}

/// Why the nodes did not all finish a step.
#[derive(Debug, PartialEq, Eq)]
enum Shortfall {
    /// The deadline passed; these nodes had not reported.
    TimedOut(String),
    /// These nodes dropped the run (a KILL reached them), so they never will.
    Dropped(String),
}

impl Shortfall {
    /// The reason a run failed, with `timed_out` saying what the missing
    /// nodes did not do (`"did not finish step 3 in time"`).
    fn reason(self, timed_out: impl FnOnce(&str) -> String) -> String {
        match self {
            Shortfall::TimedOut(missing) => timed_out(&missing),
            Shortfall::Dropped(nodes) => {
                format!("node(s) {nodes} dropped the run: a KILL reached them")
            }
        }
    }
}

/// The bookkeeping of one wait for a step: which nodes it still waits
/// for. Kept apart from the event plumbing so its rules are unit-tested.
#[derive(Debug)]
struct StepWait {
    step: u32,
    waiting: BTreeSet<String>,
}

impl StepWait {
    /// A wait for `step` by `nodes`. A step other than `KILLED_STEP` cannot
    /// be finished once a node has dropped the run; the confirmation wait
    /// skips the nodes that already confirmed.
    fn new(
        step: u32,
        nodes: &BTreeSet<String>,
        dropped: &BTreeSet<String>,
    ) -> Result<StepWait, Shortfall> {
        if step != KILLED_STEP && !dropped.is_empty() {
            return Err(Shortfall::Dropped(list(dropped)));
        }
        Ok(StepWait {
            step,
            waiting: nodes.difference(dropped).cloned().collect(),
        })
    }

    /// Takes one node's COMPLETE for this run. A "dropped the run"
    /// confirmation is recorded in `dropped` whatever the wait is for, and
    /// ends any other wait.
    fn complete(
        &mut self,
        node: String,
        step: u32,
        dropped: &mut BTreeSet<String>,
    ) -> Result<(), Shortfall> {
        if step == KILLED_STEP {
            self.waiting.remove(&node);
            dropped.insert(node);
            if self.step != KILLED_STEP {
                return Err(Shortfall::Dropped(list(dropped)));
            }
        } else if step == self.step {
            self.waiting.remove(&node);
        }
        Ok(())
    }

    /// Whether every node has reported.
    fn done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The shortfall when the deadline passes now.
    fn timed_out(&self) -> Shortfall {
        Shortfall::TimedOut(list(&self.waiting))
    }
}

/// Node names for a message: `a, b, c`.
fn list(nodes: &BTreeSet<String>) -> String {
    nodes.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl Conductor<'_> {
    fn say(&self, text: &str) {
        if self.progress {
            eprintln!("{text}");
        }
    }

    async fn send(&self, message: &Message) {
        let mut event = message.to_event(self.expt, |t| self.handle.new_notification(t));
        if let Err(error) = self.handle.notify(&mut event).await {
            tracing::warn!(%error, "could not send LINKTEST {}", message.eventtype());
        }
    }

    async fn conduct(
        &mut self,
        options: &RunOptions,
        steps: &[schedule::Step],
        ltmap: String,
    ) -> Result<(), String> {
        let run = self.summary.run;
        self.say("Linktest in progress...");
        self.send(&Message::Start {
            run,
            start: self.summary.levels.0,
            stop: self.summary.levels.1,
            ports: options.ports,
            ltmap,
        })
        .await;
        self.wait_for(READY_STEP, options.step_timeout)
            .await
            .map_err(|shortfall| {
                shortfall
                    .reason(|missing| format!("no linktest daemon answered on node(s) {missing}"))
            })?;
        let mut level = 0;
        for step in steps {
            if step.level != level {
                level = step.level;
                let message = format!("Testing {} ...", step.title());
                self.say(&message);
                self.send(&Message::Report { run, message }).await;
            }
            self.send(&Message::Step {
                run,
                step: step.number,
            })
            .await;
            self.wait_for(step.number, options.step_timeout)
                .await
                .map_err(|shortfall| {
                    shortfall.reason(|missing| {
                        format!(
                            "node(s) {missing} did not finish step {} ({}) in time",
                            step.number,
                            action_name(&step.action)
                        )
                    })
                })?;
            self.summary.steps_completed = step.number;
        }
        Ok(())
    }

    /// Waits until every node reported COMPLETE for `step` (for
    /// `KILLED_STEP`: every node not already known to have dropped the
    /// run). Ends early when a node drops the run instead.
    async fn wait_for(&mut self, step: u32, timeout: Duration) -> Result<(), Shortfall> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wait = StepWait::new(step, &self.nodes, &self.dropped)?;
        while !wait.done() {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return Err(Shortfall::TimedOut("(the event connection closed)".into()));
                }
                Err(_) => return Err(wait.timed_out()),
            };
            match Message::from_event(&event) {
                Ok(Message::Complete { run, node, step }) if run == self.summary.run => {
                    wait.complete(node, step, &mut self.dropped)?;
                }
                Ok(Message::NodeError {
                    run, node, record, ..
                }) if run == self.summary.run && self.nodes.contains(&node) => {
                    self.say(&format!("{node}: {}: {}", record.test, record.message));
                    self.summary.errors.entry(node).or_default().push(record);
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "ignoring an event"),
            }
        }
        Ok(())
    }

    /// After KILL, waits briefly for the nodes to confirm they dropped the
    /// run, and says which did not.
    async fn wait_for_kill_acks(&mut self, timeout: Duration) {
        match self.wait_for(KILLED_STEP, timeout).await {
            Ok(()) => self.say("Every node stopped its part of the run."),
            Err(shortfall) => self.say(
                &shortfall.reason(|missing| format!("No confirmation from node(s) {missing}.")),
            ),
        }
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Latency(_) => "latency",
        Action::Routing => "routing",
        Action::LossSend(_) => "loss streams",
        Action::LossCheck(_) => "loss check",
        Action::BandwidthSend(_) => "bandwidth floods",
        Action::BandwidthCheck(_) => "bandwidth check",
    }
}

/// Stops the run on `experiment`: SIGTERM to the controller that holds the
/// pid file (it sends KILL to the nodes and exits), and a bare KILL to the
/// nodes in any case. Waits up to `wait` for the controller to exit.
pub async fn stop(options: &RunOptions, wait: Duration) -> Result<Option<i32>, ControlError> {
    let prepared = prepare(options)?;
    let expt = options.experiment.to_string();
    let controller = running_controller(&prepared.results);
    if let Some(pid) = controller {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM)
            .map_err(|e| ControlError::Io {
                path: pid_file(&prepared.results).display().to_string(),
                error: std::io::Error::from(e),
            })?;
    }
    // Free daemons in any case (a controller that died leaves them mid-run).
    let router_error = |error| ControlError::Router {
        server: options.server.clone(),
        error,
    };
    let handle = register(options.server.as_str(), &prepared.key_file).await?;
    let mut kill = Message::Kill { run: None }.to_event(&expt, |t| handle.new_notification(t));
    handle.notify(&mut kill).await.map_err(router_error)?;
    let _ = handle.unregister().await;
    let Some(pid) = controller else {
        return Err(ControlError::NotRunning(expt));
    };
    let deadline = Instant::now() + wait;
    while Path::new(&format!("/proc/{pid}")).exists()
        && running_controller(&prepared.results) == Some(pid)
    {
        if Instant::now() >= deadline {
            return Err(ControlError::StillRunning(pid));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_step_waits_for_every_node_and_ignores_other_steps() {
        let mut dropped = BTreeSet::new();
        let mut wait = StepWait::new(3, &nodes(&["a", "b"]), &dropped).unwrap();
        wait.complete("a".into(), 3, &mut dropped).unwrap();
        wait.complete("b".into(), 2, &mut dropped).unwrap();
        assert!(!wait.done());
        assert_eq!(wait.timed_out(), Shortfall::TimedOut("b".into()));
        wait.complete("b".into(), 3, &mut dropped).unwrap();
        assert!(wait.done());
    }

    #[test]
    fn a_node_that_drops_the_run_ends_a_step_wait_even_as_the_last_one() {
        let mut dropped = BTreeSet::new();
        let mut wait = StepWait::new(3, &nodes(&["a", "b"]), &dropped).unwrap();
        wait.complete("a".into(), 3, &mut dropped).unwrap();
        assert_eq!(
            wait.complete("b".into(), KILLED_STEP, &mut dropped),
            Err(Shortfall::Dropped("b".into()))
        );
        assert_eq!(dropped, nodes(&["b"]));
        // The next step cannot even begin.
        assert_eq!(
            StepWait::new(4, &nodes(&["a", "b"]), &dropped).unwrap_err(),
            Shortfall::Dropped("b".into())
        );
    }

    #[test]
    fn the_confirmation_wait_counts_confirmations_seen_earlier() {
        let mut dropped = nodes(&["b"]);
        let mut wait = StepWait::new(KILLED_STEP, &nodes(&["a", "b", "c"]), &dropped).unwrap();
        assert_eq!(wait.timed_out(), Shortfall::TimedOut("a, c".into()));
        wait.complete("a".into(), KILLED_STEP, &mut dropped)
            .unwrap();
        wait.complete("c".into(), 5, &mut dropped).unwrap();
        assert!(!wait.done());
        wait.complete("c".into(), KILLED_STEP, &mut dropped)
            .unwrap();
        assert!(wait.done());
        let everyone = nodes(&["a", "b", "c"]);
        assert_eq!(dropped, everyone);
        assert!(
            StepWait::new(KILLED_STEP, &everyone, &dropped)
                .unwrap()
                .done()
        );
    }

    #[test]
    fn shortfalls_read_as_reasons() {
        let timed_out = |missing: &str| format!("node(s) {missing} did not finish step 2 in time");
        assert_eq!(
            Shortfall::TimedOut("a, c".into()).reason(timed_out),
            "node(s) a, c did not finish step 2 in time"
        );
        assert_eq!(
            Shortfall::Dropped("b".into()).reason(timed_out),
            "node(s) b dropped the run: a KILL reached them"
        );
    }
}
