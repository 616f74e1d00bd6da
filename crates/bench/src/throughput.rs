//! `throughput`: how many Emulab events per second the router delivers.
//!
//! P publisher sessions send pipelined [`EventTemplate`] events; S
//! subscriber sessions each hold the Emulab subscription
//! [`shape::matching_subscription`], so every event goes to every
//! subscriber. Each subscriber timestamps arrivals (latency is receive time
//! minus the send time carried in the event), and checks each publisher's
//! sequence numbers for order and loss.
//!
//! **The window.** A router with deep queues can absorb a fast publisher
//! for a long time, so a plain "send as fast as possible" test measures
//! how fast the router *accepts*, not how fast it *delivers*, and ends in
//! dropped events or exhausted memory. Each publisher therefore keeps at
//! most `window` events in flight: it pauses while more than that many of
//! its events have not yet reached the slowest subscriber. What the
//! subscribers then see is the router's sustained delivery rate, and
//! nothing should be dropped; anything lost or reordered is reported.
//!
//! The shared state is a few atomics per publisher and subscriber
//! ([`Progress`]); subscribers wake a stalled publisher through a
//! [`tokio::sync::Notify`], whose stored permit means no wake-up is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use elvin_proto::{Disconn, DropWarn, Message, NotifyDeliver, peek_packet_id};
use serde::Serialize;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

use crate::StopReason;
use crate::error::BenchError;
use crate::shape::{self, EventTemplate, MAX_PUBLISHERS, MAX_SEQUENCE, now_us, read_event};
use crate::stats::{LatencyRecorder, LatencySummary};
use crate::wire::{self, ConnectOptions, FrameReader, Session, Target, disconn_error};

/// How long a subscriber waits for stragglers once every publisher has
/// finished and nothing arrives: enough for a router to flush its queues,
/// short enough that a lossy run ends promptly.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// How often an idle subscriber re-checks whether the run is over.
const POLL: Duration = Duration::from_millis(50);

/// Settings of a throughput run.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    /// The router.
    pub target: Target,
    /// Publisher sessions.
    pub publishers: usize,
    /// Subscriber sessions.
    pub subscribers: usize,
    /// Events per publisher, warm-up included.
    pub count: u64,
    /// Longest sending phase.
    pub duration: Duration,
    /// Events per publisher left out of the rate and latency figures.
    pub warmup: u64,
    /// Most events per publisher not yet at the slowest subscriber.
    pub window: u64,
    /// Most events per write.
    pub batch: usize,
    /// Extra bytes per event.
    pub padding: usize,
    /// Longest the router may go without making progress.
    pub timeout: Duration,
}

impl ThroughputConfig {
    fn validate(&self) -> Result<(), BenchError> {
        let fail = |text: &str| Err(BenchError::Config(text.to_owned()));
        if self.publishers == 0 || self.subscribers == 0 {
            return fail("-P and -S must be at least 1");
        }
        if self.publishers > MAX_PUBLISHERS as usize + 1 {
            return fail("at most 10,000 publishers (-P) are supported");
        }
        if self.subscribers > 10_000 {
            return fail("at most 10,000 subscribers (-S) are supported");
        }
        if self.count <= self.warmup {
            return fail("--count must be larger than --warmup");
        }
        if self.count > MAX_SEQUENCE {
            return fail("--count is too large (at most 999,999,999,999)");
        }
        if self.window == 0 || self.batch == 0 {
            return fail("--window and --batch must be at least 1");
        }
        Ok(())
    }
}

/// One subscriber's figures.
#[derive(Clone, Debug, Serialize)]
pub struct SubscriberReport {
    /// Events received (warm-up included).
    pub received: u64,
    /// Events received after the warm-up.
    pub measured: u64,
    /// Measured events per second at this subscriber.
    pub delivered_per_s: f64,
    /// Send-to-receive latency of the measured events.
    pub latency: LatencySummary,
    /// Events sent but never received.
    pub missing: u64,
    /// Sequence numbers skipped when a later event arrived first.
    pub gaps: u64,
    /// Events that arrived after a later one from the same publisher
    /// (reordered or repeated).
    pub out_of_order: u64,
    /// DropWarn packets received.
    pub drop_warns: u64,
}

/// Result of a throughput run.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputReport {
    /// Router URI.
    pub router: String,
    /// Publisher sessions.
    pub publishers: usize,
    /// Subscriber sessions.
    pub subscribers: usize,
    /// The in-flight window per publisher.
    pub window: u64,
    /// Bytes of one event frame as sent.
    pub event_bytes: usize,
    /// Events sent, all publishers.
    pub sent: u64,
    /// Events each publisher sent.
    pub sent_per_publisher: Vec<u64>,
    /// Deliveries expected (sent × subscribers).
    pub expected: u64,
    /// Deliveries received, all subscribers.
    pub received: u64,
    /// Measured deliveries per second, all subscribers together.
    pub delivered_per_s: f64,
    /// Send-to-receive latency of all measured deliveries.
    pub latency: LatencySummary,
    /// Per-subscriber figures.
    pub per_subscriber: Vec<SubscriberReport>,
    /// Deliveries missing, all subscribers.
    pub missing: u64,
    /// Sequence gaps, all subscribers.
    pub gaps: u64,
    /// Out-of-order arrivals, all subscribers.
    pub out_of_order: u64,
    /// DropWarn packets, subscribers and publishers.
    pub drop_warns: u64,
    /// Length of the sending phase in seconds.
    pub send_elapsed_s: f64,
    /// What ended the sending phase.
    pub stopped_by: StopReason,
}

impl ThroughputReport {
    /// True when every event reached every subscriber, in order, with no
    /// DropWarn.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.gaps == 0 && self.out_of_order == 0 && self.drop_warns == 0
    }
}

/// State shared by the publishers and subscribers of one run.
#[derive(Debug)]
pub struct Progress {
    publishers: usize,
    /// Events sent so far, per publisher.
    sent: Vec<AtomicU64>,
    /// `[subscriber * publishers + publisher]`: one past the highest
    /// sequence number that subscriber has seen from that publisher.
    seen: Vec<AtomicU64>,
    /// Wakes a publisher waiting for its window to open.
    wake: Vec<Notify>,
    publishers_done: AtomicUsize,
    /// Set when the run must end early (a session failed).
    abort: AtomicBool,
    /// DropWarns seen on publisher sessions.
    publisher_drop_warns: AtomicU64,
}

impl Progress {
    fn new(publishers: usize, subscribers: usize) -> Self {
        Progress {
            publishers,
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            seen: (0..publishers * subscribers)
                .map(|_| AtomicU64::new(0))
                .collect(),
            wake: (0..publishers).map(|_| Notify::new()).collect(),
            publishers_done: AtomicUsize::new(0),
            abort: AtomicBool::new(false),
            publisher_drop_warns: AtomicU64::new(0),
        }
    }

    /// Sequence number every subscriber has passed, for `publisher`.
    fn slowest_seen(&self, publisher: usize) -> u64 {
        self.seen
            .iter()
            .skip(publisher)
            .step_by(self.publishers.max(1))
            .map(|seen| seen.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        for wake in &self.wake {
            wake.notify_one();
        }
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    fn all_sent(&self) -> bool {
        self.publishers_done.load(Ordering::SeqCst) == self.publishers
    }
}

/// Connects and subscribes `count` subscribers with the matching
/// subscription.
async fn connect_subscribers(
    config: &ThroughputConfig,
    options: &ConnectOptions,
) -> Result<Vec<Session>, BenchError> {
    let expression = shape::matching_subscription();
    let mut sessions = Vec::with_capacity(config.subscribers);
    for _ in 0..config.subscribers {
        let mut session = wire::connect(&config.target, options).await?;
        session.subscribe(&expression, config.timeout).await?;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Runs the throughput test.
pub async fn run(config: &ThroughputConfig) -> Result<ThroughputReport, BenchError> {
    config.validate()?;
    let options = ConnectOptions::new(config.timeout);
    let subscribers = connect_subscribers(config, &options).await?;
    let mut publishers = Vec::with_capacity(config.publishers);
    for _ in 0..config.publishers {
        publishers.push(wire::connect(&config.target, &options).await?);
    }
    let progress = Arc::new(Progress::new(config.publishers, config.subscribers));
    let mut templates = Vec::with_capacity(config.publishers);
    for (index, session) in publishers.iter().enumerate() {
        let number = u32::try_from(index).unwrap_or(MAX_PUBLISHERS);
        templates.push(EventTemplate::new(
            number,
            config.padding,
            session.max_packet_len,
        )?);
    }
    let event_bytes = templates.first().map_or(0, EventTemplate::frame_len);

    let mut subscriber_tasks = Vec::with_capacity(config.subscribers);
    for (index, session) in subscribers.into_iter().enumerate() {
        let progress = Arc::clone(&progress);
        let config = config.clone();
        subscriber_tasks.push(tokio::spawn(async move {
            let result = subscribe_loop(session.reader, index, &progress, &config).await;
            if result.is_err() {
                progress.abort();
            }
            // Keep the write half open until the end so the router does
            // not see a half-closed session.
            drop(session.writer);
            result
        }));
    }
    let started = Instant::now();
    let mut publisher_tasks = Vec::with_capacity(config.publishers);
    for ((index, session), template) in publishers.into_iter().enumerate().zip(templates) {
        let progress = Arc::clone(&progress);
        let config = config.clone();
        publisher_tasks.push(tokio::spawn(async move {
            let Session { reader, writer, .. } = session;
            let mut writer = writer;
            let watcher = tokio::spawn(watch_publisher(reader, Arc::clone(&progress)));
            let result = publish_loop(&mut writer, index, &template, &progress, &config).await;
            progress.publishers_done.fetch_add(1, Ordering::SeqCst);
            if result.is_err() {
                progress.abort();
            }
            // The write half goes back to the caller: dropping it would
            // shut the socket down and end the session before the
            // subscribers have drained.
            (result, watcher, writer)
        }));
    }

    let mut first_error = None;
    let mut stopped_by = StopReason::Count;
    let mut watchers = Vec::new();
    let mut publisher_writers = Vec::new();
    for task in publisher_tasks {
        match task.await {
            Ok((result, watcher, writer)) => {
                watchers.push(watcher);
                publisher_writers.push(writer);
                match result {
                    Ok(reason) => stopped_by = stopped_by.max(reason),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            Err(join) => {
                first_error.get_or_insert(BenchError::Local(format!(
                    "a publisher task failed: {join}"
                )));
            }
        }
    }
    let send_elapsed_s = started.elapsed().as_secs_f64();
    let mut outcomes = Vec::with_capacity(config.subscribers);
    for task in subscriber_tasks {
        match task.await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join) => {
                first_error.get_or_insert(BenchError::Local(format!(
                    "a subscriber task failed: {join}"
                )));
            }
        }
    }
    for watcher in watchers {
        // Stop watching before the sessions close, so their ends are not
        // mistaken for failures.
        watcher.abort();
        if let Ok(Err(error)) = watcher.await {
            first_error.get_or_insert(error);
        }
    }
    drop(publisher_writers);
    if let Some(error) = first_error {
        return Err(error);
    }
    let sent_per_publisher: Vec<u64> = progress
        .sent
        .iter()
        .map(|sent| sent.load(Ordering::SeqCst))
        .collect();
    Ok(summarise(
        config,
        event_bytes,
        sent_per_publisher,
        outcomes,
        progress.publisher_drop_warns.load(Ordering::SeqCst),
        send_elapsed_s,
        stopped_by,
    ))
}

/// Reads a publisher's session, which should stay silent: DropWarn is
/// counted, Disconn or a closed socket ends the run.
async fn watch_publisher(
    mut reader: FrameReader<OwnedReadHalf>,
    progress: Arc<Progress>,
) -> Result<(), BenchError> {
    const PHASE: &str = "publishing";
    loop {
        if let Err(error) = reader.fill(PHASE).await {
            progress.abort();
            return Err(error);
        }
        while let Some(body) = reader.next_frame(PHASE)? {
            match peek_packet_id(body) {
                Some(DropWarn::ID) => {
                    progress
                        .publisher_drop_warns
                        .fetch_add(1, Ordering::Relaxed);
                }
                Some(Disconn::ID) => {
                    progress.abort();
                    return Err(disconn_error(body, PHASE));
                }
                _ => {}
            }
        }
    }
}

/// One publisher: sends its events in batches, never more than the
/// window ahead of the slowest subscriber.
async fn publish_loop(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    index: usize,
    template: &EventTemplate,
    progress: &Progress,
    config: &ThroughputConfig,
) -> Result<StopReason, BenchError> {
    const PHASE: &str = "publishing";
    let mut batch = Vec::with_capacity(
        config
            .batch
            .saturating_mul(template.frame_len())
            .min(1 << 22),
    );
    let deadline = Instant::now() + config.duration;
    let mut seq = 0u64;
    let (Some(sent), Some(wake)) = (progress.sent.get(index), progress.wake.get(index)) else {
        return Err(BenchError::Local(format!(
            "publisher {index} has no progress slot"
        )));
    };
    loop {
        if progress.aborted() {
            return Ok(StopReason::Stall);
        }
        if seq >= config.count {
            return Ok(StopReason::Count);
        }
        if Instant::now() >= deadline {
            return Ok(StopReason::Duration);
        }
        let in_flight = seq.saturating_sub(progress.slowest_seen(index));
        if in_flight >= config.window {
            // Wait for a subscriber to make progress; the stored permit of
            // Notify covers progress made since the check above.
            let wait = config
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            if tokio::time::timeout(wait, wake.notified()).await.is_err()
                && Instant::now() < deadline
            {
                return Err(BenchError::Timeout {
                    what: format!(
                        "the router to deliver publisher {index}'s events ({in_flight} in flight)"
                    ),
                    timeout: config.timeout,
                });
            }
            continue;
        }
        let room = (config.window - in_flight)
            .min(config.count - seq)
            .min(config.batch as u64);
        batch.clear();
        for offset in 0..room {
            template.append(&mut batch, seq + offset, now_us());
        }
        match tokio::time::timeout(config.timeout, wire::write_batch(writer, &batch, PHASE)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: "the router to read our events (it stopped reading)".into(),
                    timeout: config.timeout,
                });
            }
        }
        seq += room;
        sent.store(seq, Ordering::SeqCst);
    }
}

/// What one subscriber measured.
#[derive(Debug)]
struct SubscriberOutcome {
    received: u64,
    measured: u64,
    first_measured_us: Option<u64>,
    last_us: u64,
    latency: LatencyRecorder,
    received_per_publisher: Vec<u64>,
    gaps: u64,
    out_of_order: u64,
    drop_warns: u64,
}

/// One subscriber: reads deliveries until every event sent has arrived (or
/// the router goes quiet), checking order and recording latency.
async fn subscribe_loop(
    mut reader: FrameReader<OwnedReadHalf>,
    index: usize,
    progress: &Progress,
    config: &ThroughputConfig,
) -> Result<SubscriberOutcome, BenchError> {
    const PHASE: &str = "receiving";
    let publishers = config.publishers;
    let base = index * publishers;
    let mut next = vec![0u64; publishers];
    let mut outcome = SubscriberOutcome {
        received: 0,
        measured: 0,
        first_measured_us: None,
        last_us: 0,
        latency: LatencyRecorder::new(),
        received_per_publisher: vec![0; publishers],
        gaps: 0,
        out_of_order: 0,
        drop_warns: 0,
    };
    let mut idle = Duration::ZERO;
    let mut drain_started: Option<Instant> = None;
    loop {
        let mut advanced = false;
        while let Some(body) = reader.next_frame(PHASE)? {
            match peek_packet_id(body) {
                Some(NotifyDeliver::ID) => {
                    let stamp = read_event(body).map_err(|source| BenchError::Decode {
                        phase: PHASE,
                        source,
                    })?;
                    let Some(stamp) = stamp else { continue };
                    let publisher = stamp.publisher as usize;
                    let (Some(expected), Some(count)) = (
                        next.get_mut(publisher),
                        outcome.received_per_publisher.get_mut(publisher),
                    ) else {
                        continue;
                    };
                    let now = now_us();
                    *count += 1;
                    outcome.received += 1;
                    if stamp.seq == *expected {
                        *expected += 1;
                    } else if stamp.seq > *expected {
                        outcome.gaps += stamp.seq - *expected;
                        *expected = stamp.seq + 1;
                    } else {
                        outcome.out_of_order += 1;
                    }
                    advanced = true;
                    if stamp.seq >= config.warmup {
                        outcome.measured += 1;
                        outcome.first_measured_us.get_or_insert(now);
                        outcome.last_us = now;
                        outcome.latency.record_us(now.saturating_sub(stamp.sent_us));
                    }
                }
                Some(DropWarn::ID) => outcome.drop_warns += 1,
                Some(Disconn::ID) => return Err(disconn_error(body, PHASE)),
                _ => {}
            }
        }
        if advanced {
            idle = Duration::ZERO;
            for (publisher, seen) in next.iter().enumerate() {
                if let Some(slot) = progress.seen.get(base + publisher) {
                    slot.store(*seen, Ordering::Release);
                }
                if let Some(wake) = progress.wake.get(publisher) {
                    wake.notify_one();
                }
            }
        }
        if progress.aborted() {
            return Ok(outcome);
        }
        if progress.all_sent() {
            let complete = next
                .iter()
                .zip(&progress.sent)
                .all(|(seen, sent)| *seen >= sent.load(Ordering::SeqCst));
            // However slowly the router trickles, the drain ends within
            // --timeout of the last send; what is still missing then is
            // reported as missing.
            let drain_started = *drain_started.get_or_insert_with(Instant::now);
            if complete
                || idle >= DRAIN_IDLE.min(config.timeout)
                || drain_started.elapsed() >= config.timeout
            {
                return Ok(outcome);
            }
        } else if idle >= config.timeout {
            return Err(BenchError::Timeout {
                what: format!("events at subscriber {index}"),
                timeout: config.timeout,
            });
        }
        match tokio::time::timeout(POLL, reader.fill(PHASE)).await {
            Ok(result) => result?,
            Err(_) => idle += POLL,
        }
    }
}

fn summarise(
    config: &ThroughputConfig,
    event_bytes: usize,
    sent_per_publisher: Vec<u64>,
    outcomes: Vec<SubscriberOutcome>,
    publisher_drop_warns: u64,
    send_elapsed_s: f64,
    stopped_by: StopReason,
) -> ThroughputReport {
    let sent: u64 = sent_per_publisher.iter().sum();
    let mut latency = LatencyRecorder::new();
    let mut per_subscriber = Vec::with_capacity(outcomes.len());
    let mut window_start = u64::MAX;
    let mut window_end = 0u64;
    let mut measured_total = 0u64;
    for outcome in &outcomes {
        latency.merge(&outcome.latency);
        let missing: u64 = sent_per_publisher
            .iter()
            .zip(&outcome.received_per_publisher)
            .map(|(sent, received)| sent.saturating_sub(*received))
            .sum();
        let delivered_per_s = match outcome.first_measured_us {
            Some(first) if outcome.last_us > first => {
                outcome.measured as f64 / ((outcome.last_us - first) as f64 / 1e6)
            }
            _ => 0.0,
        };
        if let Some(first) = outcome.first_measured_us {
            window_start = window_start.min(first);
            window_end = window_end.max(outcome.last_us);
        }
        measured_total += outcome.measured;
        per_subscriber.push(SubscriberReport {
            received: outcome.received,
            measured: outcome.measured,
            delivered_per_s,
            latency: outcome.latency.summary(),
            missing,
            gaps: outcome.gaps,
            out_of_order: outcome.out_of_order,
            drop_warns: outcome.drop_warns,
        });
    }
    let delivered_per_s = if window_end > window_start {
        measured_total as f64 / ((window_end - window_start) as f64 / 1e6)
    } else {
        0.0
    };
    ThroughputReport {
        router: config.target.text.clone(),
        publishers: config.publishers,
        subscribers: config.subscribers,
        window: config.window,
        event_bytes,
        sent,
        sent_per_publisher,
        expected: sent.saturating_mul(config.subscribers as u64),
        received: per_subscriber.iter().map(|s| s.received).sum(),
        delivered_per_s,
        latency: latency.summary(),
        missing: per_subscriber.iter().map(|s| s.missing).sum(),
        gaps: per_subscriber.iter().map(|s| s.gaps).sum(),
        out_of_order: per_subscriber.iter().map(|s| s.out_of_order).sum(),
        drop_warns: per_subscriber.iter().map(|s| s.drop_warns).sum::<u64>() + publisher_drop_warns,
        per_subscriber,
        send_elapsed_s,
        stopped_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_subscriber_bounds_the_window() {
        let progress = Progress::new(2, 3);
        // Publisher 1 as seen by subscribers 0, 1, 2.
        progress.seen[1].store(50, Ordering::SeqCst);
        progress.seen[3].store(20, Ordering::SeqCst);
        progress.seen[5].store(70, Ordering::SeqCst);
        progress.seen[0].store(5, Ordering::SeqCst);
        assert_eq!(progress.slowest_seen(1), 20);
        assert_eq!(progress.slowest_seen(0), 0);
    }

    #[test]
    fn configuration_is_checked() {
        let target = Target::parse("elvin://127.0.0.1:1").unwrap();
        let good = ThroughputConfig {
            target,
            publishers: 1,
            subscribers: 1,
            count: 10,
            duration: Duration::from_secs(1),
            warmup: 1,
            window: 10,
            batch: 10,
            padding: 0,
            timeout: Duration::from_secs(1),
        };
        assert!(good.validate().is_ok());
        for bad in [
            ThroughputConfig {
                publishers: 0,
                ..good.clone()
            },
            ThroughputConfig {
                count: 1,
                ..good.clone()
            },
            ThroughputConfig {
                window: 0,
                ..good.clone()
            },
            ThroughputConfig {
                publishers: 10_001,
                ..good.clone()
            },
        ] {
            assert!(matches!(bad.validate(), Err(BenchError::Config(_))));
        }
    }
}
