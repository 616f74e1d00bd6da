//! The node daemon (`linktest`): one per node, idle until a signed
//! LINKTEST START names its node, then steps through the run as the
//! controller says.
//!
//! Shape: one task reads the experiment's LINKTEST events; a run is a
//! second task (`NodeRun`) that owns the run's sockets and probe tasks.
//! KILL or STOP aborts that task, which drops every socket and probe with
//! it, so nothing of a cancelled run is left running; the daemon itself
//! stays up for the next run, as the original's did. The daemon runs no
//! user code, and opens only UDP sockets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tbevents_event::{EventHandle, RegisterOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::probe::{self, Counters, Ports};
use crate::protocol::{self, Message, READY_STEP};
use crate::report::ErrorRecord;
use crate::schedule::{self, Action, Step};
use crate::topology::Topology;
use crate::verdict;

/// The step number a node's COMPLETE carries to say it dropped a run after
/// KILL.
pub const KILLED_STEP: u32 = u32::MAX;

/// Latency probes per pair, and their spacing (the original's `ping -c 10
/// -i 0.1`).
const LATENCY_COUNT: u32 = 10;
const LATENCY_INTERVAL: Duration = Duration::from_millis(100);
/// How long after the last request a reply may still come.
const LATENCY_WAIT: Duration = Duration::from_secs(1);
/// How often, and for how long at most, a probe first asks for an echo so
/// that address resolution is done before it measures ([`probe::prime`]).
const PRIME_INTERVAL: Duration = Duration::from_millis(200);
const PRIME_LIMIT: Duration = Duration::from_secs(3);
/// How long a bandwidth flood lasts after its warm-up.
const FLOOD_TIME: Duration = Duration::from_secs(2);
/// The flood's rate relative to the configured bandwidth: enough above it
/// that the link, not the sender, sets the pace.
const FLOOD_OVERDRIVE: f64 = 1.25;

/// How a daemon is set up.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The event router (`elvin://host:port`).
    pub server: String,
    /// `pid/eid`.
    pub expt: String,
    /// The experiment's key file.
    pub key_file: PathBuf,
    /// This node's name in the experiment.
    pub vnode: String,
    /// Open probe sockets in this network namespace (a path such as
    /// `/run/netns/NAME`) instead of the daemon's own.
    pub netns: Option<PathBuf>,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Registering or subscribing failed.
    #[error("cannot use the event router {server}: {error}")]
    Router {
        /// The router.
        server: String,
        /// The error.
        error: tbevents_event::EventError,
    },
    /// The subscription ended (the router went away for good).
    #[error("the event subscription ended: {0}")]
    SubscriptionEnded(String),
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let router_error = |error| DaemonError::Router {
        server: config.server.clone(),
        error,
    };
    let options = RegisterOptions::new()
        .key_file(&config.key_file)
        .map_err(router_error)?
        .retry(tbevents_event::Reconnect {
            retry_interval: Duration::from_secs(1),
            max_retries: None,
        });
    let handle = EventHandle::register_with(&config.server, options)
        .await
        .map_err(router_error)?;
    let mut events = handle
        .subscribe(&protocol::subscription(&config.expt))
        .await
        .map_err(router_error)?;
    tracing::info!(node = %config.vnode, expt = %config.expt, "linktest daemon ready");
    let mut current: Option<(u32, mpsc::Sender<u32>, tokio::task::JoinHandle<()>)> = None;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => break,
            event = events.recv() => event,
        };
        let Some(event) = event else {
            return Err(DaemonError::SubscriptionEnded(
                events
                    .end_reason()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "closed".into()),
            ));
        };
        if let Some((_, _, task)) = &current
            && task.is_finished()
        {
            current = None;
        }
        let message = match Message::from_event(&event) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "ignoring a LINKTEST event");
                continue;
            }
        };
        match message {
            Message::Start {
                run,
                start,
                stop,
                ports,
                ltmap,
            } => {
                if let Some((busy, _, _)) = &current {
                    tracing::warn!(run, busy, "ignoring START: a run is in progress");
                    continue;
                }
                let topo = match Topology::parse_ltmap(&ltmap) {
                    Ok(topo) => topo,
                    Err(error) => {
                        tracing::warn!(run, %error, "ignoring START: bad topology");
                        continue;
                    }
                };
                if topo.hosts.binary_search(&config.vnode).is_err() {
                    tracing::info!(run, "this node has no links in the run; not taking part");
                    continue;
                }
                tracing::info!(run, start, stop, "linktest run starting");
                let (tx, rx) = mpsc::channel(16);
                let node_run = NodeRun {
                    run,
                    me: config.vnode.clone(),
                    expt: config.expt.clone(),
                    steps: schedule::steps(&topo, start, stop),
                    topo: Arc::new(topo),
                    ports,
                    netns: config.netns.clone(),
                    handle: handle.clone(),
                };
                current = Some((run, tx, tokio::spawn(node_run.drive(rx))));
            }
            Message::Step { run, step } => match &current {
                Some((active, tx, _)) if *active == run => {
                    if tx.try_send(step).is_err() {
                        tracing::warn!(run, step, "step ignored: the run is not keeping up");
                    }
                }
                _ => tracing::debug!(run, step, "step for a run this node is not in"),
            },
            Message::Kill { run } => {
                if let Some((active, _, task)) = &current
                    && run.is_none_or(|r| r == *active)
                {
                    let active = *active;
                    task.abort();
                    current = None;
                    tracing::info!(run = active, "linktest run killed");
                    publish(
                        &handle,
                        &config.expt,
                        &Message::Complete {
                            run: active,
                            node: config.vnode.clone(),
                            step: KILLED_STEP,
                        },
                    )
                    .await;
                }
            }
            Message::Stop { run } => {
                if let Some((active, _, task)) = &current
                    && *active == run
                {
                    task.abort();
                    current = None;
                    tracing::info!(run, "linktest run finished");
                }
            }
            Message::Complete { .. } | Message::NodeError { .. } | Message::Report { .. } => {}
        }
    }
    if let Some((_, _, task)) = current {
        task.abort();
    }
    let _ = handle.unregister().await;
    Ok(())
}

/// Sends `message`, logging (not failing on) an error: a lost report only
/// makes the controller wait for its deadline.
async fn publish(handle: &EventHandle, expt: &str, message: &Message) {
    let mut event = message.to_event(expt, |t| handle.new_notification(t));
    if let Err(error) = handle.notify(&mut event).await {
        tracing::warn!(%error, eventtype = message.eventtype(), "could not send a LINKTEST event");
    }
}

/// One run on this node.
struct NodeRun {
    run: u32,
    me: String,
    expt: String,
    topo: Arc<Topology>,
    steps: Vec<Step>,
    ports: Ports,
    netns: Option<PathBuf>,
    handle: EventHandle,
}

impl NodeRun {
    /// Opens the listeners, says READY, then does each step it is told to.
    async fn drive(self, mut steps: mpsc::Receiver<u32>) {
        let counters = Counters::default();
        let mut listeners = JoinSet::new();
        let any = |port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        match (
            probe::udp_socket(self.netns.as_deref(), any(self.ports.echo), None).await,
            probe::udp_socket(self.netns.as_deref(), any(self.ports.stream), None).await,
        ) {
            (Ok(echo), Ok(stream)) => {
                listeners.spawn(probe::echo_responder(echo, self.run));
                listeners.spawn(probe::stream_listener(
                    stream,
                    self.run,
                    Arc::clone(&counters),
                ));
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot open the probe ports; this node cannot take part");
                self.error(
                    0,
                    ErrorRecord {
                        test: "Setup".into(),
                        link: String::new(),
                        message: format!("cannot open the probe ports: {error}"),
                    },
                )
                .await;
                return;
            }
        }
        self.complete(READY_STEP).await;
        while let Some(number) = steps.recv().await {
            let Some(step) = self.steps.get((number as usize).wrapping_sub(1)) else {
                tracing::warn!(number, "no such step in this run");
                self.complete(number).await;
                continue;
            };
            for record in self.do_step(step, &counters).await {
                self.error(number, record).await;
            }
            self.complete(number).await;
        }
    }

    async fn complete(&self, step: u32) {
        publish(
            &self.handle,
            &self.expt,
            &Message::Complete {
                run: self.run,
                node: self.me.clone(),
                step,
            },
        )
        .await;
    }

    async fn error(&self, step: u32, record: ErrorRecord) {
        tracing::info!(step, test = %record.test, link = %record.link, error = %record.message, "linktest error");
        publish(
            &self.handle,
            &self.expt,
            &Message::NodeError {
                run: self.run,
                node: self.me.clone(),
                step,
                record,
            },
        )
        .await;
    }

    /// This node's part of `step`; the errors it found.
    async fn do_step(&self, step: &Step, counters: &Counters) -> Vec<ErrorRecord> {
        let title = step.title();
        let topo = &self.topo;
        let mut jobs: JoinSet<Option<ErrorRecord>> = JoinSet::new();
        match &step.action {
            Action::Latency(pairs) => {
                for &(f, r) in pairs {
                    let (forward, reverse) = (&topo.edges[f], &topo.edges[r]);
                    if forward.dst != self.me {
                        continue;
                    }
                    let expected = verdict::expected_rtt_ms(forward, reverse);
                    let link = forward.describe();
                    let to = SocketAddrV4::new(forward.src_ip, self.ports.echo);
                    let bind = SocketAddr::V4(SocketAddrV4::new(forward.dst_ip, 0));
                    let (netns, run, number) = (self.netns.clone(), self.run, step.number);
                    jobs.spawn(async move {
                        let measure = async {
                            let socket = probe::udp_socket(netns.as_deref(), bind, Some(1)).await?;
                            probe::prime(&socket, to, run, number, PRIME_INTERVAL, PRIME_LIMIT)
                                .await?;
                            probe::ping(
                                &socket,
                                to,
                                run,
                                number,
                                LATENCY_COUNT,
                                LATENCY_INTERVAL,
                                LATENCY_WAIT,
                            )
                            .await
                        };
                        let message = match measure.await {
                            Ok(rtts) => verdict::latency(&rtts, expected),
                            Err(error) => Some(format!("could not send probes: {error}")),
                        };
                        message.map(|message| ErrorRecord {
                            test: title.into(),
                            link,
                            message,
                        })
                    });
                }
            }
            Action::Routing => {
                for target in &topo.hosts {
                    if *target == self.me || topo.are_neighbors(&self.me, target) {
                        continue;
                    }
                    let (Some(hops), Some(addr)) =
                        (topo.hops(&self.me, target), topo.address_of(target))
                    else {
                        continue;
                    };
                    let (netns, run, number) = (self.netns.clone(), self.run, step.number);
                    let (me, target, echo) = (self.me.clone(), target.clone(), self.ports.echo);
                    jobs.spawn(async move {
                        let to = SocketAddrV4::new(addr, echo);
                        let reach = |ttl: u32| {
                            let netns = netns.clone();
                            async move {
                                let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
                                let socket = probe::udp_socket(netns.as_deref(), any, Some(ttl)).await?;
                                probe::prime(&socket, to, run, number, PRIME_INTERVAL, PRIME_LIMIT)
                                    .await
                            }
                        };
                        let message = match reach(hops).await {
                            Ok(true) if hops > 1 => match reach(hops - 1).await {
                                Ok(true) => Some(format!(
                                    "{me} reached {target} in fewer than the {hops} hops the static routes give"
                                )),
                                Ok(false) => None,
                                Err(error) => Some(format!("{me} could not probe {target}: {error}")),
                            },
                            Ok(true) => None,
                            Ok(false) => Some(format!("{me} could not ping {target}")),
                            Err(error) => Some(format!("{me} could not probe {target}: {error}")),
                        };
                        message.map(|message| ErrorRecord {
                            test: title.into(),
                            link: String::new(),
                            message,
                        })
                    });
                }
            }
            Action::LossSend(edges) | Action::BandwidthSend(edges) => {
                let flood = matches!(step.action, Action::BandwidthSend(_));
                let mut grace = Duration::ZERO;
                for &e in edges {
                    let edge = &topo.edges[e];
                    if edge.src != self.me {
                        continue;
                    }
                    grace = grace.max(Duration::from_secs_f64(edge.delay_s * 2.0));
                    let to = SocketAddrV4::new(edge.dst_ip, self.ports.stream);
                    let bind = SocketAddr::V4(SocketAddrV4::new(edge.src_ip, 0));
                    let (netns, run, number) = (self.netns.clone(), self.run, step.number);
                    let link = edge.describe();
                    let plan = probe::loss_plan(edge);
                    let rate = (edge.bandwidth_bps as f64 * FLOOD_OVERDRIVE) as u64;
                    let echo_port = self.ports.echo;
                    jobs.spawn(async move {
                        let sent = async {
                            let socket = probe::udp_socket(netns.as_deref(), bind, None).await?;
                            // Resolve the receiver's address first, so a
                            // lost ARP packet does not count as stream loss.
                            let echo = SocketAddrV4::new(*to.ip(), echo_port);
                            probe::prime(&socket, echo, run, number, PRIME_INTERVAL, PRIME_LIMIT)
                                .await?;
                            if flood {
                                probe::flood(
                                    &socket,
                                    to,
                                    run,
                                    number,
                                    rate,
                                    probe::FLOOD_WARMUP + FLOOD_TIME,
                                )
                                .await
                            } else if let Some((packets, pps)) = plan {
                                probe::send_stream(&socket, to, run, number, packets, pps).await
                            } else {
                                Ok(())
                            }
                        }
                        .await;
                        sent.err().map(|error| ErrorRecord {
                            test: title.into(),
                            link,
                            message: format!("could not send the test stream: {error}"),
                        })
                    });
                }
                let mut found = collect(jobs).await;
                // Let the last packets cross the link (and its queue)
                // before this node says it is done.
                tokio::time::sleep(grace + Duration::from_millis(500)).await;
                found.sort_by(|a, b| a.link.cmp(&b.link));
                return found;
            }
            Action::LossCheck(edges) => {
                let map = counters.lock().map(|m| m.clone()).unwrap_or_default();
                return self.judge(edges, step, &map, |edge, got| {
                    let (packets, _) = probe::loss_plan(edge)?;
                    let received = got.map_or(0, |r| r.packets);
                    verdict::loss(u64::from(packets), received, edge.loss, &edge.src)
                });
            }
            Action::BandwidthCheck(edges) => {
                let map = counters.lock().map(|m| m.clone()).unwrap_or_default();
                return self.judge(edges, step, &map, |edge, got| {
                    let estimate = got.and_then(|r| {
                        let (first, last) = (r.first_after_warmup?, r.last?);
                        let secs = last.duration_since(first).as_secs_f64();
                        (r.bytes_after_warmup > 20 * verdict::FLOOD_FRAME_BYTES as u64
                            && secs > 0.1)
                            .then(|| r.bytes_after_warmup as f64 * 8.0 / secs)
                    });
                    verdict::bandwidth(estimate, edge.bandwidth_bps)
                });
            }
        }
        let mut found = collect(jobs).await;
        found.sort_by(|a, b| a.link.cmp(&b.link));
        found
    }

    /// Judges what arrived over each edge of `edges` that ends here, in
    /// the step before `step`.
    fn judge(
        &self,
        edges: &[usize],
        step: &Step,
        map: &HashMap<(u32, Ipv4Addr), probe::Received>,
        rule: impl Fn(&crate::topology::Edge, Option<&probe::Received>) -> Option<String>,
    ) -> Vec<ErrorRecord> {
        let send_step = step.number.saturating_sub(1);
        edges
            .iter()
            .map(|&e| &self.topo.edges[e])
            .filter(|edge| edge.dst == self.me)
            .filter_map(|edge| {
                rule(edge, map.get(&(send_step, edge.src_ip))).map(|message| ErrorRecord {
                    test: step.title().into(),
                    link: edge.describe(),
                    message,
                })
            })
            .collect()
    }
}

async fn collect(mut jobs: JoinSet<Option<ErrorRecord>>) -> Vec<ErrorRecord> {
    let mut found = Vec::new();
    while let Some(done) = jobs.join_next().await {
        if let Ok(Some(record)) = done {
            found.push(record);
        }
    }
    found
}
