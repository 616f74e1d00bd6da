//! The firing thread: holds the armed schedule and sends each event on
//! time.
//!
//! # Why a dedicated thread
//!
//! tokio's timer wheel has millisecond granularity, and a runtime worker
//! may be busy with network I/O just when an event is due; the accuracy
//! target (p99 lateness ≤ 1 ms, max ≤ 5 ms) needs better. One plain OS
//! thread owns the heap and waits in two stages:
//!
//! 1. until [`FiringConfig::spin_window`] before the head's due time, it
//!    blocks on its command channel with a timeout (a futex wait: no CPU,
//!    and a new, earlier event wakes it at once);
//! 2. for the last stretch it spins on the clock, checking the channel,
//!    so the send starts within microseconds of the due time.
//!
//! Everything due at the same time is built, signed and handed to the
//! [`Outlet`] as one batch (bursts of 10,000 events go out in a few
//! milliseconds rather than one wake-up per event).
//!
//! # Building at the last moment
//!
//! Records are compact (see `schedule`); the notification is built here:
//! SITE `*`, EXPT, GROUP `*`, HOST, OBJTYPE, OBJNAME, EVENTTYPE,
//! SCHEDULER 0, ARGS, `time_sec`/`time_usec` = the due time, and
//! `___SENDER___` when known. The outlet signs it with the experiment key.
//! The original put `time_sec`/`time_usec` only on dynamic events; every
//! event carries them here so any subscriber can measure lateness.

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use elvin_proto::Attributes;

use crate::schedule::{Action, Catalog, Scheduled, SimulatorOrigin};
use crate::stats::Stats;
use crate::time::{format_sec_usec, now_micros, to_sec_usec};

/// Attribute names of the wire model (docs/emulab-model.md §1).
pub mod attr {
    /// Unused site, always `*`.
    pub const SITE: &str = "SITE";
    /// `pid/eid`.
    pub const EXPT: &str = "EXPT";
    /// Unused group, always `*`.
    pub const GROUP: &str = "GROUP";
    /// Control IP of the target node, or `*`.
    pub const HOST: &str = "HOST";
    /// Object type.
    pub const OBJTYPE: &str = "OBJTYPE";
    /// Object (agent) name.
    pub const OBJNAME: &str = "OBJNAME";
    /// Event type.
    pub const EVENTTYPE: &str = "EVENTTYPE";
    /// 1 = a request for the scheduler, 0 = deliver now.
    pub const SCHEDULER: &str = "SCHEDULER";
    /// Sender's IP.
    pub const SENDER: &str = "___SENDER___";
    /// Event arguments.
    pub const ARGS: &str = "ARGS";
    /// Due time, seconds.
    pub const TIME_SEC: &str = "time_sec";
    /// Due time, microseconds.
    pub const TIME_USEC: &str = "time_usec";
    /// The MAC.
    pub const HMAC: &str = "__hmac__";
}

/// Where fired notifications go: the router connection in production, a
/// recorder in tests. The outlet signs each notification with the
/// experiment's key before sending it.
pub trait Outlet: Send + 'static {
    /// Signs and sends `batch`, in order. An error means some or all of the
    /// batch was not sent; it is logged and counted, and firing goes on.
    fn send_batch(&mut self, batch: &mut [Attributes]) -> Result<(), String>;
}

/// A SIMULATOR event handed to the simulator runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatorRequest {
    /// EVENTTYPE (`SWAPOUT`, `HALT`, ...).
    pub eventtype: String,
    /// Where it came from.
    pub origin: SimulatorOrigin,
}

/// Tuning of the firing thread.
#[derive(Clone, Debug)]
pub struct FiringConfig {
    /// How long before a due time the thread stops sleeping and spins.
    pub spin_window: Duration,
    /// Most notifications handed to the outlet in one batch.
    pub max_batch: usize,
    /// `___SENDER___` for the notifications the scheduler builds.
    pub sender: Option<String>,
    /// Run the firing thread with real-time priority (`SCHED_FIFO` 1) if
    /// the system allows it.
    pub realtime: bool,
}

impl Default for FiringConfig {
    fn default() -> Self {
        FiringConfig {
            spin_window: DEFAULT_SPIN_WINDOW,
            max_batch: 1024,
            sender: None,
            realtime: false,
        }
    }
}

/// Default spin window. Futex timeouts on an idle Linux box wake within
/// ~100 µs, under load within a few hundred; one millisecond of spinning
/// covers that with margin. See docs/scheduler.md for the measurements.
pub const DEFAULT_SPIN_WINDOW: Duration = Duration::from_micros(1000);

/// Puts the calling thread in the `SCHED_FIFO` class at priority 1, the
/// lowest real-time priority: above every normal process, below anything
/// the system itself runs in real time. The thread sleeps between events
/// and spins at most one spin window, so it cannot monopolise a CPU.
fn set_realtime_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pthread_self() names the calling thread, which is alive, and
    // `param` is a valid sched_param for the duration of the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Messages to the firing thread.
#[derive(Debug)]
pub enum Command {
    /// Arm these records.
    Add(Vec<Scheduled>),
    /// Stop firing and exit the thread.
    Stop,
}

/// A running firing thread.
#[derive(Debug)]
pub struct Firing {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable handle for arming records on a running firing thread.
#[derive(Clone, Debug)]
pub struct FiringHandle {
    commands: Sender<Command>,
}

impl FiringHandle {
    /// A handle over a bare channel, for tests of the code that arms.
    #[cfg(test)]
    pub(crate) fn for_tests(commands: Sender<Command>) -> FiringHandle {
        FiringHandle { commands }
    }

    /// Arms records. Returns false if the thread has stopped.
    pub fn add(&self, records: Vec<Scheduled>) -> bool {
        self.commands.send(Command::Add(records)).is_ok()
    }
}

impl Firing {
    /// Starts the firing thread.
    pub fn start(
        catalog: Arc<Catalog>,
        outlet: Box<dyn Outlet>,
        simulator: Sender<SimulatorRequest>,
        stats: Arc<Stats>,
        config: FiringConfig,
    ) -> std::io::Result<Firing> {
        let (commands, inbox) = mpsc::channel();
        let realtime = config.realtime;
        let worker = Worker {
            catalog,
            outlet,
            simulator,
            stats,
            inbox,
            heap: BinaryHeap::new(),
            spin_window_us: crate::time::duration_micros(config.spin_window),
            max_batch: config.max_batch.max(1),
            sender: config.sender,
        };
        let thread = std::thread::Builder::new()
            .name("event-sched-fire".into())
            .spawn(move || {
                // Futex timeouts are rounded up by the thread's timer slack
                // (50 µs by default); ask for 1 µs so the sleep before the
                // spin ends close to when it was asked to.
                if let Err(error) = nix::sys::prctl::set_timerslack(1_000) {
                    tracing::debug!("could not lower the firing thread's timer slack: {error}");
                }
                if realtime {
                    match set_realtime_priority() {
                        Ok(()) => {
                            tracing::info!("the firing thread runs with SCHED_FIFO priority 1")
                        }
                        Err(error) => tracing::warn!(
                            "could not give the firing thread real-time priority ({error}); it \
                             runs at normal priority. Grant RLIMIT_RTPRIO >= 1 (systemd: \
                             LimitRTPRIO=1) or CAP_SYS_NICE to allow it"
                        ),
                    }
                }
                worker.run()
            })?;
        Ok(Firing {
            commands,
            thread: Some(thread),
        })
    }

    /// A handle for arming records from other threads.
    pub fn handle(&self) -> FiringHandle {
        FiringHandle {
            commands: self.commands.clone(),
        }
    }

    /// Stops the thread (events not yet due are discarded) and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the firing thread panicked");
        }
    }
}

impl Drop for Firing {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

struct Worker {
    catalog: Arc<Catalog>,
    outlet: Box<dyn Outlet>,
    simulator: Sender<SimulatorRequest>,
    stats: Arc<Stats>,
    inbox: Receiver<Command>,
    heap: BinaryHeap<Scheduled>,
    spin_window_us: i64,
    max_batch: usize,
    sender: Option<String>,
}

/// What the worker should do after handling a command.
enum Flow {
    Continue,
    Stop,
}

impl Worker {
    fn run(mut self) {
        let mut batch: Vec<Attributes> = Vec::new();
        let mut dues: Vec<(i64, Kind)> = Vec::new();
        loop {
            // Take everything that arrived without blocking.
            loop {
                match self.inbox.try_recv() {
                    Ok(command) => {
                        if let Flow::Stop = self.apply(command) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let Some(head_due) = self.heap.peek().map(|head| head.due) else {
                match self.inbox.recv() {
                    Ok(command) => {
                        if let Flow::Stop = self.apply(command) {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                }
            };
            let now = now_micros();
            let wait = head_due.saturating_sub(now);
            if wait <= 0 {
                self.fire_due(&mut batch, &mut dues);
                continue;
            }
            if wait > self.spin_window_us {
                let sleep = (wait - self.spin_window_us).unsigned_abs();
                match self.inbox.recv_timeout(Duration::from_micros(sleep)) {
                    Ok(command) => {
                        if let Flow::Stop = self.apply(command) {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            // The last stretch: spin on the clock, still taking commands
            // (a dynamic event for "now" must not wait behind the spin).
            while now_micros() < head_due {
                match self.inbox.try_recv() {
                    Ok(command) => {
                        if let Flow::Stop = self.apply(command) {
                            return;
                        }
                        break;
                    }
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    fn apply(&mut self, command: Command) -> Flow {
        match command {
            Command::Add(records) => {
                self.heap.extend(records);
                Flow::Continue
            }
            Command::Stop => Flow::Stop,
        }
    }

    /// Pops every record that is due, builds the notifications, and sends
    /// them in batches.
    fn fire_due(&mut self, batch: &mut Vec<Attributes>, dues: &mut Vec<(i64, Kind)>) {
        let now = now_micros();
        while let Some(head) = self.heap.peek() {
            if head.due > now || batch.len() >= self.max_batch {
                break;
            }
            let Some(record) = self.heap.pop() else {
                break;
            };
            match record.action {
                Action::Simulator { eventtype, origin } => {
                    Stats::bump(&self.stats.simulator_events);
                    tracing::info!(
                        eventtype = %eventtype,
                        due = %format_sec_usec(record.due),
                        "SIMULATOR {eventtype} is due"
                    );
                    let request = SimulatorRequest {
                        eventtype: eventtype.into(),
                        origin,
                    };
                    if self.simulator.send(request).is_err() {
                        tracing::error!("the SIMULATOR runner has stopped; event not run");
                    }
                }
                action => {
                    if matches!(action, Action::Dynamic(_)) {
                        // Armed by the intake, which counted it as pending.
                        let _ = self.stats.pending_dynamic.fetch_update(
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                            |n| Some(n.saturating_sub(1)),
                        );
                    }
                    if let Some((attributes, kind)) = self.build(record.due, action) {
                        batch.push(attributes);
                        dues.push((record.due, kind));
                    }
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let result = self.outlet.send_batch(batch);
        let sent_at = now_micros();
        match result {
            Ok(()) => {
                for ((due, kind), attributes) in dues.iter().zip(batch.iter()) {
                    let lateness = sent_at.saturating_sub(*due);
                    self.stats.record_lateness(lateness);
                    Stats::bump(match kind {
                        Kind::Static => &self.stats.static_fired,
                        Kind::TimeStart => &self.stats.time_start_fired,
                        Kind::Dynamic => &self.stats.dynamic_fired,
                    });
                    tracing::debug!(
                        objname = attributes.get_str(attr::OBJNAME).unwrap_or(""),
                        eventtype = attributes.get_str(attr::EVENTTYPE).unwrap_or(""),
                        host = attributes.get_str(attr::HOST).unwrap_or(""),
                        due = %format_sec_usec(*due),
                        lateness_us = lateness,
                        "fired {kind:?} event"
                    );
                }
            }
            Err(error) => {
                let failed = u64::try_from(batch.len()).unwrap_or(u64::MAX);
                self.stats
                    .send_failures
                    .fetch_add(failed, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    "could not fire {failed} event(s): {error}; they are lost, the schedule goes on"
                );
            }
        }
        batch.clear();
        dues.clear();
    }

    /// Builds the notification for a due record.
    fn build(&self, due: i64, action: Action) -> Option<(Attributes, Kind)> {
        let Some((sec, usec)) = to_sec_usec(due) else {
            tracing::error!(
                due = %format_sec_usec(due),
                "an event is due at a time that does not fit int32 time_sec; not sent"
            );
            return None;
        };
        let strings = &self.catalog.strings;
        match action {
            Action::Static {
                entry,
                objtype,
                eventtype,
                args,
            } => {
                let entry = self.catalog.agents.entry(entry)?;
                let mut attributes = self.base(
                    strings.resolve(entry.host),
                    strings.resolve(objtype),
                    strings.resolve(entry.objname),
                    strings.resolve(eventtype),
                );
                attributes.insert(attr::ARGS, strings.resolve(args));
                attributes.insert(attr::TIME_SEC, sec);
                attributes.insert(attr::TIME_USEC, usec);
                Some((attributes, Kind::Static))
            }
            Action::TimeStart => {
                let mut attributes = self.base("*", "TIME", "*", "START");
                attributes.insert(attr::TIME_SEC, sec);
                attributes.insert(attr::TIME_USEC, usec);
                Some((attributes, Kind::TimeStart))
            }
            Action::Dynamic(attributes) => Some((*attributes, Kind::Dynamic)),
            Action::Simulator { .. } => None,
        }
    }

    fn base(&self, host: &str, objtype: &str, objname: &str, eventtype: &str) -> Attributes {
        let mut attributes = Attributes::with_capacity(13);
        attributes.insert(attr::SITE, "*");
        attributes.insert(attr::EXPT, self.catalog.expt.as_str());
        attributes.insert(attr::GROUP, "*");
        attributes.insert(attr::HOST, host);
        attributes.insert(attr::OBJTYPE, objtype);
        attributes.insert(attr::OBJNAME, objname);
        attributes.insert(attr::EVENTTYPE, eventtype);
        attributes.insert(attr::SCHEDULER, 0i32);
        if let Some(sender) = &self.sender {
            attributes.insert(attr::SENDER, sender.as_str());
        }
        attributes
    }
}

/// Which counter a sent notification belongs to.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Static,
    TimeStart,
    Dynamic,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tbevents_store::AgentRow;

    use super::*;
    use crate::agents::AgentTable;
    use crate::intern::Interner;
    use crate::schedule::Plan;

    /// Records what it is given, with the time it was given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(i64, Attributes)>>>);

    impl Outlet for Recorder {
        fn send_batch(&mut self, batch: &mut [Attributes]) -> Result<(), String> {
            let now = now_micros();
            let mut seen = self.0.lock().map_err(|e| e.to_string())?;
            seen.extend(batch.iter().cloned().map(|a| (now, a)));
            Ok(())
        }
    }

    fn catalog_and_plan() -> (Catalog, Plan) {
        let mut strings = Interner::new();
        let agents = AgentTable::build(
            &[AgentRow {
                vname: "prog0".into(),
                vnode: "client".into(),
                objtype: "PROGRAM".into(),
                node_id: Some("pc1".into()),
                ipaddr: Some("127.0.1.1".into()),
            }],
            &[],
            &mut strings,
        )
        .unwrap();
        let rows: Vec<tbevents_store::EventRow> = (1..=20)
            .map(|i| tbevents_store::EventRow {
                idx: i,
                time: 0.01 * (i / 2) as f64,
                vnode: "client".into(),
                vname: "prog0".into(),
                objtype: "PROGRAM".into(),
                eventtype: "START".into(),
                arguments: format!("I={i}"),
            })
            .collect();
        let plan = Plan::build(&rows, &agents, &mut strings).unwrap();
        let catalog = Catalog {
            expt: "p/e".into(),
            strings,
            agents,
        };
        (catalog, plan)
    }

    #[test]
    fn fires_every_record_on_time_in_order_with_full_attributes() {
        let (catalog, plan) = catalog_and_plan();
        let recorder = Recorder::default();
        let stats = Arc::new(Stats::new());
        let (sim_tx, _sim_rx) = mpsc::channel();
        let firing = Firing::start(
            Arc::new(catalog),
            Box::new(recorder.clone()),
            sim_tx,
            Arc::clone(&stats),
            FiringConfig::default(),
        )
        .unwrap();
        let time_zero = now_micros() + 50_000;
        let mut seq = 0;
        assert!(firing.handle().add(plan.arm(time_zero, &mut seq)));
        // Wait for the last record (due 100 ms after time zero) with a
        // generous deadline instead of sleeping a fixed margin.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while recorder.0.lock().unwrap().len() < 21 {
            assert!(
                std::time::Instant::now() < deadline,
                "not every record fired within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        firing.stop();
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 21);
        let first = &seen[0].1;
        assert_eq!(first.get_str(attr::OBJTYPE), Some("TIME"));
        assert_eq!(first.get_str(attr::EVENTTYPE), Some("START"));
        assert_eq!(first.get_str(attr::HOST), Some("*"));
        let args: Vec<&str> = seen[1..]
            .iter()
            .map(|(_, a)| a.get_str(attr::ARGS).unwrap())
            .collect();
        let expected: Vec<String> = (1..=20).map(|i| format!("I={i}")).collect();
        assert_eq!(args, expected);
        for (sent_at, attributes) in &seen {
            let due = crate::time::from_sec_usec(
                attributes.get_i32(attr::TIME_SEC).unwrap(),
                attributes.get_i32(attr::TIME_USEC).unwrap(),
            );
            assert!(*sent_at >= due, "sent before its due time");
            assert_eq!(attributes.get_str(attr::EXPT), Some("p/e"));
            assert_eq!(attributes.get_i32(attr::SCHEDULER), Some(0));
        }
        let one = &seen[1].1;
        assert_eq!(one.get_str(attr::HOST), Some("127.0.1.1"));
        assert_eq!(one.get_str(attr::OBJNAME), Some("prog0"));
        assert_eq!(one.get_str(attr::OBJTYPE), Some("PROGRAM"));
        let summary = stats.summary();
        assert_eq!(summary.static_fired, 20);
        assert_eq!(summary.time_start_fired, 1);
    }

    #[test]
    fn realtime_priority_is_granted_to_root_and_refused_cleanly_otherwise() {
        let policy = std::thread::spawn(|| {
            set_realtime_priority().map(|()| {
                let mut policy = 0;
                let mut param = libc::sched_param { sched_priority: 0 };
                // SAFETY: reads the calling thread's policy into valid locals.
                unsafe {
                    libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param)
                };
                (policy, param.sched_priority)
            })
        })
        .join()
        .unwrap();
        if nix::unistd::geteuid().is_root() {
            assert_eq!(policy.unwrap(), (libc::SCHED_FIFO, 1));
        } else if let Err(error) = policy {
            assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        }
    }

    #[test]
    fn an_earlier_record_preempts_a_later_one() {
        let (catalog, _) = catalog_and_plan();
        let recorder = Recorder::default();
        let (sim_tx, sim_rx) = mpsc::channel();
        let firing = Firing::start(
            Arc::new(catalog),
            Box::new(recorder.clone()),
            sim_tx,
            Arc::new(Stats::new()),
            FiringConfig::default(),
        )
        .unwrap();
        let now = now_micros();
        let far = Scheduled {
            due: now + 10_000_000,
            seq: 0,
            action: Action::TimeStart,
        };
        assert!(firing.handle().add(vec![far]));
        std::thread::sleep(Duration::from_millis(20));
        let soon = Scheduled {
            due: now_micros() + 10_000,
            seq: 1,
            action: Action::Simulator {
                eventtype: "HALT".into(),
                origin: SimulatorOrigin::Dynamic,
            },
        };
        assert!(firing.handle().add(vec![soon]));
        let request = sim_rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(request.eventtype, "HALT");
        firing.stop();
        assert!(
            recorder.0.lock().unwrap().is_empty(),
            "the far record fired"
        );
    }
}
