//! The traffic generator: constant-bit-rate sources and sinks, UDP or
//! TCP, as the NS file's `Application/Traffic/CBR` objects describe them.
//!
//! One `trafgen` process serves every `virt_trafgens` row of its node. A
//! row is a **source** (named after its CBR object, sending to the
//! target's address and port) or a **sink** (named after its `Agent/Null`
//! or `Agent/TCPSink`, listening on its own address and port).
//!
//! # Events (OBJTYPE `TRAFGEN`)
//!
//! | event | to | what happens |
//! |---|---|---|
//! | `START` | source | applies `PACKETSIZE`, `RATE`, `INTERVAL`, `IPTOS` (see [`params`]) and sends |
//! | `STOP` | source | stops sending (sequence numbers continue at the next `START`) |
//! | `MODIFY` | source | applies the settings; a running source changes pace at once |
//! | `RESET` | source | stops and forgets the settings |
//! | `RESET` | sink | clears its counters |
//! | `START`, `STOP`, `MODIFY` | sink | logged and ignored: sinks always listen |
//! | `REPORT`, `COMPLETE` | any | ignored quietly (echoes of the agent's own reports) |
//! | other | any | logged and ignored |
//!
//! # Reports
//!
//! Every report interval (`--report-interval`, 1 s) each sink that has
//! received anything in the last five intervals logs what arrived and
//! publishes it as `OBJTYPE=TRAFGEN OBJNAME=<sink> EVENTTYPE=REPORT`,
//! signed, by default as a request to the scheduler, which re-publishes
//! it for every watcher of the experiment ([`ReportEvents`]), with `ARGS`
//!
//! ```text
//! RATE=<kbit/s> PPS=<packets/s> RECEIVED=<packets> LOST=<packets> LOSS=<fraction>
//! [DELAY=<mean one-way ms>] WINDOW=<seconds> TOTAL_RECEIVED=<n> TOTAL_LOST=<n> PROTO=<udp|tcp>
//! ```
//!
//! where the first five cover the interval. Loss comes from sequence
//! numbers in the packets ([`packet`], [`sink`]). Each report is also
//! appended, with a UTC time stamp, to `<logdir>/<sink>.report`.

pub mod packet;
pub mod params;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tbevents_event::ArgsBuilder;
use tbevents_store::VirtTrafgen;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::warn_unknown;
use crate::runtime::{Agent, Inbox, Incoming};
use params::CbrParams;
use sink::{SharedStats, SinkSpec, SinkStats, Window};
use source::{SourceSpec, SourceState};

/// Default time between sink reports.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A sink keeps reporting this many empty intervals after traffic stops,
/// so watchers see the rate fall to zero.
const QUIET_REPORTS: u32 = 5;

/// The transport of a source or sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP datagrams.
    Udp,
    /// A TCP byte stream.
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

/// The sources and sinks of a node, from its rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Sources by name.
    pub sources: Vec<SourceSpec>,
    /// Sinks by name.
    pub sinks: Vec<SinkSpec>,
}

/// Why a row cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trafgen row `{name}` cannot be used: {reason}")]
pub struct RowError {
    /// The row's name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

fn address(ip: &str, port: u32, what: &str, name: &str) -> Result<SocketAddr, RowError> {
    let error = |reason: String| RowError {
        name: name.to_owned(),
        reason,
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| error(format!("{what} address {ip:?} is not an IP address")))?;
    let port =
        u16::try_from(port).map_err(|_| error(format!("{what} port {port} is above 65535")))?;
    Ok(SocketAddr::new(ip, port))
}

/// Turns rows into sources and sinks; unusable rows come back as errors.
pub fn plan(rows: &[VirtTrafgen]) -> (Plan, Vec<RowError>) {
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    for row in rows {
        let name = row.vname.clone();
        let proto = match row.proto.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            other => {
                errors.push(RowError {
                    name,
                    reason: format!("protocol {other:?} is neither udp nor tcp"),
                });
                continue;
            }
        };
        let local = match address(&row.ip, row.port, "local", &name) {
            Ok(local) => local,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        match row.role.to_ascii_lowercase().as_str() {
            "source" | "client" => {
                match address(&row.target_ip, row.target_port, "target", &name) {
                    Ok(target) if target.port() != 0 => plan.sources.push(SourceSpec {
                        name,
                        proto,
                        local,
                        target,
                    }),
                    Ok(_) => errors.push(RowError {
                        name,
                        reason: "the target port is 0".into(),
                    }),
                    Err(error) => errors.push(error),
                }
            }
            "sink" | "server" => {
                if local.port() == 0 {
                    errors.push(RowError {
                        name,
                        reason: "a sink needs a port to listen on".into(),
                    });
                } else {
                    plan.sinks.push(SinkSpec { name, proto, local });
                }
            }
            other => errors.push(RowError {
                name,
                reason: format!("role {other:?} is neither source nor sink"),
            }),
        }
    }
    (plan, errors)
}

struct Source {
    spec: SourceSpec,
    state: watch::Sender<SourceState>,
    task: JoinHandle<()>,
}

struct Sink {
    spec: SinkSpec,
    stats: SharedStats,
    task: JoinHandle<()>,
    quiet: u32,
    last: Instant,
}

/// Where a sink's REPORT events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportEvents {
    /// As a request to the experiment's scheduler (`SCHEDULER` = 1), which
    /// re-publishes it as an event: the way a node's reports reach the
    /// experiment's router through `evproxy`, like `COMPLETE`.
    Scheduler,
    /// As an event (`SCHEDULER` = 0) on the node's own router only.
    Local,
    /// None: reports are only logged.
    Off,
}

/// Reporting settings.
#[derive(Clone, Debug)]
pub struct ReportConfig {
    /// Time between reports.
    pub interval: Duration,
    /// Where REPORT events go.
    pub events: ReportEvents,
    /// Each sink appends its reports to `<dir>/<sink>.report` (`None`:
    /// no files).
    pub dir: Option<PathBuf>,
}

/// The traffic generator of one node.
pub struct TrafgenAgent {
    agent: Agent,
    sources: BTreeMap<String, Source>,
    sinks: BTreeMap<String, Sink>,
    report: ReportConfig,
    report_file_failed: std::collections::BTreeSet<String>,
}

impl TrafgenAgent {
    /// Starts the sinks listening and the sources waiting for START.
    /// Call inside a tokio runtime.
    pub fn start(agent: Agent, plan: Plan, report: ReportConfig) -> TrafgenAgent {
        if let Some(dir) = &report.dir
            && !plan.sinks.is_empty()
            && let Err(error) = std::fs::create_dir_all(dir)
        {
            tracing::warn!("cannot create the log directory {}: {error}", dir.display());
        }
        let now = Instant::now();
        let sinks = plan
            .sinks
            .into_iter()
            .map(|spec| {
                let stats: SharedStats = Arc::new(Mutex::new(SinkStats::default()));
                let task = tokio::spawn(sink::run(spec.clone(), stats.clone()));
                let sink = Sink {
                    spec,
                    stats,
                    task,
                    quiet: QUIET_REPORTS,
                    last: now,
                };
                (sink.spec.name.clone(), sink)
            })
            .collect();
        let sources = plan
            .sources
            .into_iter()
            .map(|spec| {
                let (state, receiver) = watch::channel(SourceState {
                    running: false,
                    params: CbrParams::default(),
                });
                let task = tokio::spawn(source::run(spec.clone(), receiver));
                (spec.name.clone(), Source { spec, state, task })
            })
            .collect();
        TrafgenAgent {
            agent,
            sources,
            sinks,
            report,
            report_file_failed: std::collections::BTreeSet::new(),
        }
    }

    /// Runs until `shutdown` resolves or the subscription ends.
    pub async fn run(
        mut self,
        mut inbox: Inbox,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.report.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let ended = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                incoming = inbox.recv() => match incoming {
                    Some(event) => self.handle(event),
                    None => break Err(inbox.end_message()),
                },
                _ = ticker.tick() => self.report_all().await,
            }
        };
        // A source whose state channel closes stops, logs its total and
        // ends; wait for that briefly, then end whatever is left.
        let mut tasks = Vec::new();
        for (_, source) in std::mem::take(&mut self.sources) {
            source.state.send_modify(|s| s.running = false);
            drop(source.state);
            tasks.push(source.task);
        }
        for task in &mut tasks {
            if tokio::time::timeout(Duration::from_secs(1), &mut *task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        for sink in self.sinks.values() {
            sink.task.abort();
        }
        self.agent.close().await;
        ended
    }

    /// Acts on one event.
    pub fn handle(&mut self, event: Incoming) {
        let Incoming {
            objname,
            eventtype,
            args,
            ..
        } = event;
        tracing::info!("Event: {objname} {eventtype} {args}");
        if matches!(eventtype.as_str(), "REPORT" | "COMPLETE") {
            tracing::debug!("{objname}: {eventtype} (an echo of a report) ignored");
            return;
        }
        if let Some(source) = self.sources.get(&objname) {
            let current = *source.state.borrow();
            let next = match eventtype.as_str() {
                "START" | "MODIFY" => match current.params.changed_by(&args) {
                    Ok((params, unknown)) => {
                        warn_unknown(&objname, &eventtype, &unknown);
                        SourceState {
                            running: current.running || eventtype == "START",
                            params,
                        }
                    }
                    Err(error) => {
                        tracing::warn!("{objname}: {eventtype} ignored: {error}");
                        return;
                    }
                },
                "STOP" => SourceState {
                    running: false,
                    ..current
                },
                "RESET" => SourceState {
                    running: false,
                    params: CbrParams::default(),
                },
                other => {
                    tracing::warn!(
                        "{objname}: unknown event type {other:?} ignored (a source knows START, STOP, MODIFY, RESET)"
                    );
                    return;
                }
            };
            if next == current {
                tracing::info!("{objname}: {eventtype} changes nothing");
            } else if !next.running && next.params != current.params {
                tracing::info!(
                    "{objname}: will send {} packets of {} bytes at {:.1} kb/s to {} when started",
                    source.spec.proto,
                    next.params.packet_size,
                    next.params.rate_kbps(),
                    source.spec.target
                );
            }
            source.state.send_replace(next);
            return;
        }
        if let Some(sink) = self.sinks.get_mut(&objname) {
            match eventtype.as_str() {
                "RESET" => {
                    if let Ok(mut stats) = sink.stats.lock() {
                        stats.reset();
                    }
                    tracing::info!("{objname}: counters cleared");
                }
                "START" | "STOP" | "MODIFY" => tracing::info!(
                    "{objname}: {eventtype} ignored: a sink always listens (on {} {})",
                    sink.spec.proto,
                    sink.spec.local
                ),
                other => tracing::warn!(
                    "{objname}: unknown event type {other:?} ignored (a sink knows RESET)"
                ),
            }
            return;
        }
        tracing::warn!("{objname}: no such source or sink on this node; event ignored");
    }

    async fn report_all(&mut self) {
        let now = Instant::now();
        let mut reports = Vec::new();
        for (name, sink) in &mut self.sinks {
            let (window, totals) = match sink.stats.lock() {
                Ok(mut stats) => (stats.take_window(), (stats.total_packets, stats.total_lost)),
                Err(_) => continue,
            };
            let seconds = now.duration_since(sink.last).as_secs_f64().max(1e-3);
            sink.last = now;
            if window.packets > 0 {
                sink.quiet = 0;
            } else if sink.quiet >= QUIET_REPORTS {
                continue;
            } else {
                sink.quiet += 1;
            }
            reports.push((name.clone(), sink.spec.proto, window, seconds, totals));
        }
        for (name, proto, window, seconds, totals) in reports {
            let args = report_args(proto, &window, seconds, totals);
            tracing::info!("{name}: received {args}");
            self.append_report(&name, &args);
            let sent = match self.report.events {
                ReportEvents::Off => Ok(()),
                ReportEvents::Scheduler => self.agent.request_now(&name, "REPORT", &args).await,
                ReportEvents::Local => self.agent.notify(&name, "REPORT", &args).await,
            };
            if let Err(error) = sent {
                tracing::warn!("{name}: could not publish REPORT: {error}");
            }
        }
    }
}

impl TrafgenAgent {
    /// Appends one report line to the sink's report file; a failure is
    /// logged once per sink and reporting goes on.
    fn append_report(&mut self, name: &str, args: &str) {
        use std::io::Write as _;
        let Some(dir) = &self.report.dir else {
            return;
        };
        let path = dir.join(format!("{name}.report"));
        let line = format!(
            "{} {args}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written
            && self.report_file_failed.insert(name.to_owned())
        {
            tracing::warn!("{name}: cannot write {}: {error}", path.display());
        }
    }
}

/// The ARGS of a sink's REPORT (see the module docs).
pub fn report_args(proto: Proto, window: &Window, seconds: f64, totals: (u64, u64)) -> String {
    let mut args = ArgsBuilder::new();
    let rate = window.bytes as f64 * 8.0 / seconds / 1000.0;
    let _ = args.push("RATE", format!("{rate:.1}"));
    let _ = args.push("PPS", format!("{:.1}", window.packets as f64 / seconds));
    let _ = args.push("RECEIVED", window.packets);
    let _ = args.push("LOST", window.lost);
    let _ = args.push("LOSS", format!("{:.4}", window.loss_fraction()));
    if let Some(delay) = window.mean_delay_ms() {
        let _ = args.push("DELAY", format!("{delay:.3}"));
    }
    let _ = args.push("WINDOW", format!("{seconds:.3}"));
    let _ = args.push("TOTAL_RECEIVED", totals.0);
    let _ = args.push("TOTAL_LOST", totals.1);
    let _ = args.push("PROTO", proto);
    args.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, role: &str, proto: &str, port: u32, target_port: u32) -> VirtTrafgen {
        VirtTrafgen {
            vnode: "n0".into(),
            vname: name.into(),
            role: role.into(),
            proto: proto.into(),
            port,
            ip: "10.0.0.1".into(),
            target_vnode: "n1".into(),
            target_vname: "x".into(),
            target_port,
            target_ip: "10.0.0.2".into(),
            generator: "TG".into(),
        }
    }

    #[test]
    fn rows_become_sources_and_sinks() {
        let (plan, errors) = plan(&[
            row("cbr0", "source", "udp", 4000, 5000),
            row("null0", "sink", "TCP", 5001, 0),
            row("bad1", "source", "sctp", 1, 2),
            row("bad2", "sink", "udp", 0, 0),
            row("bad3", "source", "udp", 1, 70_000),
            row("bad4", "router", "udp", 1, 2),
        ]);
        assert_eq!(plan.sources.len(), 1);
        assert_eq!(plan.sources[0].target, "10.0.0.2:5000".parse().unwrap());
        assert_eq!(plan.sinks.len(), 1);
        assert_eq!(plan.sinks[0].proto, Proto::Tcp);
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bad1", "bad2", "bad3", "bad4"]);
    }

    #[test]
    fn report_arguments() {
        let window = Window {
            packets: 500,
            bytes: 500_000,
            lost: 0,
            delay_ns_sum: 500 * 2_000_000,
            delay_samples: 500,
        };
        let args = report_args(Proto::Udp, &window, 1.0, (1500, 2));
        assert_eq!(
            args,
            "RATE=4000.0 PPS=500.0 RECEIVED=500 LOST=0 LOSS=0.0000 DELAY=2.000 WINDOW=1.000 TOTAL_RECEIVED=1500 TOTAL_LOST=2 PROTO=udp "
        );
    }
}
