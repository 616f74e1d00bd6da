//! `subscriptions`: throughput with K non-matching subscriptions installed.
//!
//! A testbed router holds one subscription set per node and per agent of
//! every running experiment, and each event matches only a handful of
//! them. A router that evaluates every subscription for every event slows
//! down in proportion to the total; one that indexes the equality
//! constraints (`EXPT == …`) does not. This test measures that: for each
//! K it installs K subscriptions of the Emulab shape that never match
//! (other experiments, hosts and objects), spread over `sub_conns`
//! sessions, then runs the throughput test beside them.
//!
//! The install is itself a measurement (a router may be slow to *add*
//! subscriptions): every session pipelines its SubAddRqsts and all
//! sessions run at once, and the time from the first request to the last
//! checked SubRply is reported.

use std::time::{Duration, Instant};

use elvin_proto::Value;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::error::BenchError;
use crate::shape;
use crate::throughput::{self, ThroughputConfig, ThroughputReport};
use crate::wire::{self, ConnectOptions, Session};

/// Subscriptions per session that every Elvin router accepts by default
/// (Avis's `Subscription.Max-Count` default and maximum).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION: usize = 2048;

/// Pause after closing a load's sessions so the router finishes removing
/// their subscriptions before the next measurement.
const SETTLE: Duration = Duration::from_millis(500);

/// Which load subscriptions to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// A real testbed ([`shape::testbed_subscription`]): experiments of 20
    /// nodes, one of them the benchmark's own.
    Testbed,
    /// Every load subscription in an experiment of its own
    /// ([`shape::non_matching_subscription`]): the EXPT equality alone
    /// rejects it.
    Distinct,
}

impl Layout {
    fn subscription(self, index: usize) -> String {
        match self {
            Layout::Testbed => shape::testbed_subscription(index),
            Layout::Distinct => shape::non_matching_subscription(index),
        }
    }
}

/// Settings of a subscriptions run.
#[derive(Clone, Debug)]
pub struct SubscriptionsConfig {
    /// The load subscriptions' layout.
    pub layout: Layout,
    /// The router's process id, to report memory per subscription (found
    /// from the port when `None`).
    pub router_pid: Option<u32>,
    /// The throughput test run at each load.
    pub throughput: ThroughputConfig,
    /// The loads: numbers of extra non-matching subscriptions.
    pub loads: Vec<usize>,
    /// Sessions the extra subscriptions are spread over.
    pub sub_conns: usize,
}

/// One row of the result table.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Extra non-matching subscriptions.
    pub subscriptions: usize,
    /// Sessions holding them.
    pub sessions: usize,
    /// Time to install them all (pipelined), seconds.
    pub install_s: f64,
    /// Install rate, subscriptions per second.
    pub installed_per_s: f64,
    /// The throughput measured beside them.
    pub throughput: ThroughputReport,
    /// Router resident memory added by installing them, per subscription,
    /// in bytes (when the router's process could be found).
    pub rss_per_subscription_bytes: Option<f64>,
}

/// Result of a subscriptions run.
#[derive(Clone, Debug, Serialize)]
pub struct SubscriptionsReport {
    /// Router URI.
    pub router: String,
    /// One row per load.
    pub loads: Vec<LoadReport>,
    /// Delivered/s at the largest load divided by delivered/s with none,
    /// when both were measured.
    pub ratio_largest_to_none: Option<f64>,
}

/// Runs the throughput test at each load.
pub async fn run(config: &SubscriptionsConfig) -> Result<SubscriptionsReport, BenchError> {
    if config.sub_conns == 0 {
        return Err(BenchError::Config("--sub-conns must be at least 1".into()));
    }
    let mut loads = Vec::with_capacity(config.loads.len());
    let (pid, _) = crate::connections::locate_router(&config.throughput.target, config.router_pid);
    let rss = || pid.and_then(|pid| crate::procinfo::resident_kib(pid).ok());
    for &subscriptions in &config.loads {
        let before = rss();
        let (sessions, install) = install_load(config, subscriptions).await?;
        let rss_per_subscription_bytes = match (before, rss()) {
            (Some(before), Some(after)) if subscriptions > 0 => {
                Some(after.saturating_sub(before) as f64 * 1024.0 / subscriptions as f64)
            }
            _ => None,
        };
        let throughput = throughput::run(&config.throughput).await?;
        let install_s = install.as_secs_f64();
        loads.push(LoadReport {
            subscriptions,
            sessions: sessions.len(),
            install_s,
            installed_per_s: if install_s > 0.0 {
                subscriptions as f64 / install_s
            } else {
                0.0
            },
            throughput,
            rss_per_subscription_bytes,
        });
        drop(sessions);
        tokio::time::sleep(SETTLE).await;
    }
    let rate_at = |k: usize| {
        loads
            .iter()
            .find(|row| row.subscriptions == k)
            .map(|row| row.throughput.delivered_per_s)
    };
    let largest = config.loads.iter().copied().max();
    let ratio_largest_to_none = match (rate_at(0), largest.and_then(rate_at)) {
        (Some(none), Some(most)) if none > 0.0 && largest != Some(0) => Some(most / none),
        _ => None,
    };
    Ok(SubscriptionsReport {
        router: config.throughput.target.text.clone(),
        loads,
        ratio_largest_to_none,
    })
}

/// Opens the sessions for a load and installs its subscriptions
/// (expression `i` goes to session `i % sessions`), returning the sessions
/// and the install time.
pub async fn install_load(
    config: &SubscriptionsConfig,
    subscriptions: usize,
) -> Result<(Vec<Session>, Duration), BenchError> {
    if subscriptions == 0 {
        return Ok((Vec::new(), Duration::ZERO));
    }
    let target = &config.throughput.target;
    let timeout = config.throughput.timeout;
    let sessions = config.sub_conns.min(subscriptions);
    let per_session = subscriptions.div_ceil(sessions);
    let mut options = ConnectOptions::new(timeout);
    if per_session > DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION {
        // Ask for room; a router that refuses answers the SubAddRqst
        // beyond its limit with a Nack, reported with a hint.
        options.options.push((
            "Subscription.Max-Count".into(),
            Value::Int32(i32::try_from(per_session).unwrap_or(i32::MAX)),
        ));
    }
    let needed = u64::try_from(sessions)
        .unwrap_or(u64::MAX)
        .saturating_add(64);
    crate::procinfo::raise_fd_limit(needed)?;
    let mut opened = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        opened.push(wire::connect(target, &options).await?);
    }
    let started = Instant::now();
    let mut installs = JoinSet::new();
    for (slot, mut session) in opened.into_iter().enumerate() {
        let expressions: Vec<String> = (slot..subscriptions)
            .step_by(sessions)
            .map(|index| config.layout.subscription(index))
            .collect();
        installs.spawn(async move {
            let result = session.subscribe_all(&expressions, timeout).await;
            result.map(|_| session)
        });
    }
    let mut ready = Vec::with_capacity(sessions);
    while let Some(joined) = installs.join_next().await {
        match joined {
            Ok(Ok(session)) => ready.push(session),
            Ok(Err(error)) => return Err(error),
            Err(join) => {
                return Err(BenchError::Local(format!(
                    "a subscription task failed: {join}"
                )));
            }
        }
    }
    Ok((ready, started.elapsed()))
}
