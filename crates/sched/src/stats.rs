//! Counters and the lateness histogram behind the exit summary.
//!
//! The firing thread records the lateness of every notification it sends
//! (time the send call returned minus the due time, in microseconds); the
//! dynamic intake counts what it accepted and why it dropped the rest. At
//! exit the scheduler logs one [`Summary`] line, the figures an operator
//! needs to judge a run: how many events fired, how late (p50, p99, max),
//! and what was refused.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Shared counters. Cheap to update from any thread.
#[derive(Debug)]
pub struct Stats {
    /// `None` only if the histogram could not be allocated with its fixed,
    /// valid bounds (it always can); lateness is then not reported.
    lateness: Mutex<Option<Histogram<u64>>>,
    /// Static events sent (each group member counts once).
    pub static_fired: AtomicU64,
    /// TIME START broadcasts sent.
    pub time_start_fired: AtomicU64,
    /// Dynamic events sent (each agent entry counts once).
    pub dynamic_fired: AtomicU64,
    /// SIMULATOR events handled.
    pub simulator_events: AtomicU64,
    /// Notifications the router connection refused to take.
    pub send_failures: AtomicU64,
    /// Dynamic requests received (signed and for this experiment).
    pub dynamic_received: AtomicU64,
    /// Dynamic requests accepted (mapped to at least one agent).
    pub dynamic_accepted: AtomicU64,
    /// Dynamic requests that arrived before the agent table was loaded and
    /// were held until it was.
    pub dynamic_held: AtomicU64,
    /// Dropped: no `time_sec`/`time_usec`.
    pub dropped_no_time: AtomicU64,
    /// Dropped: no OBJNAME.
    pub dropped_no_objname: AtomicU64,
    /// Dropped: OBJNAME maps to no agent.
    pub dropped_unknown_object: AtomicU64,
    /// Dropped: the hold queue was full.
    pub dropped_hold_full: AtomicU64,
    /// Dropped: too many dynamic events were already waiting to fire.
    pub dropped_too_many_pending: AtomicU64,
    /// Dynamic events armed and not yet fired (a gauge, not a counter).
    pub pending_dynamic: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Largest lateness the histogram tracks exactly: one hour. Later values
/// are clamped (they are reported as "at least an hour late").
const MAX_TRACKED_LATENESS_US: u64 = 3_600_000_000;

impl Stats {
    /// Fresh counters.
    pub fn new() -> Stats {
        // Three significant digits over 1 µs .. 1 h: a few tens of KiB.
        let histogram = Histogram::new_with_bounds(1, MAX_TRACKED_LATENESS_US, 3).ok();
        Stats {
            lateness: Mutex::new(histogram),
            static_fired: AtomicU64::new(0),
            time_start_fired: AtomicU64::new(0),
            dynamic_fired: AtomicU64::new(0),
            simulator_events: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            dynamic_received: AtomicU64::new(0),
            dynamic_accepted: AtomicU64::new(0),
            dynamic_held: AtomicU64::new(0),
            dropped_no_time: AtomicU64::new(0),
            dropped_no_objname: AtomicU64::new(0),
            dropped_unknown_object: AtomicU64::new(0),
            dropped_hold_full: AtomicU64::new(0),
            dropped_too_many_pending: AtomicU64::new(0),
            pending_dynamic: AtomicU64::new(0),
        }
    }

    /// Records one sent notification's lateness in microseconds (negative
    /// values, an early send, count as zero).
    pub fn record_lateness(&self, lateness_us: i64) {
        let value = u64::try_from(lateness_us)
            .unwrap_or(0)
            .clamp(1, MAX_TRACKED_LATENESS_US);
        if let Ok(mut guard) = self.lateness.lock()
            && let Some(histogram) = guard.as_mut()
        {
            histogram.saturating_record(value);
        }
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot for the exit log line.
    pub fn summary(&self) -> Summary {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let guard = self.lateness.lock();
        let histogram = guard.as_ref().ok().and_then(|g| g.as_ref());
        let (p50, p99, max, samples) = match histogram {
            Some(h) if !h.is_empty() => (
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                h.len(),
            ),
            _ => (0, 0, 0, 0),
        };
        Summary {
            static_fired: load(&self.static_fired),
            time_start_fired: load(&self.time_start_fired),
            dynamic_fired: load(&self.dynamic_fired),
            simulator_events: load(&self.simulator_events),
            send_failures: load(&self.send_failures),
            dynamic_received: load(&self.dynamic_received),
            dynamic_accepted: load(&self.dynamic_accepted),
            dynamic_held: load(&self.dynamic_held),
            dropped: load(&self.dropped_no_time)
                + load(&self.dropped_no_objname)
                + load(&self.dropped_unknown_object)
                + load(&self.dropped_hold_full)
                + load(&self.dropped_too_many_pending),
            dropped_unknown_object: load(&self.dropped_unknown_object),
            lateness_samples: samples,
            lateness_p50_us: p50,
            lateness_p99_us: p99,
            lateness_max_us: max,
        }
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Static events sent.
    pub static_fired: u64,
    /// TIME START broadcasts sent.
    pub time_start_fired: u64,
    /// Dynamic events sent.
    pub dynamic_fired: u64,
    /// SIMULATOR events handled.
    pub simulator_events: u64,
    /// Sends the router connection refused.
    pub send_failures: u64,
    /// Dynamic requests received.
    pub dynamic_received: u64,
    /// Dynamic requests accepted.
    pub dynamic_accepted: u64,
    /// Dynamic requests held until the agent table was loaded.
    pub dynamic_held: u64,
    /// Dynamic requests dropped, all reasons.
    pub dropped: u64,
    /// Of which: unknown object.
    pub dropped_unknown_object: u64,
    /// Number of lateness samples.
    pub lateness_samples: u64,
    /// Median lateness, µs.
    pub lateness_p50_us: u64,
    /// 99th percentile lateness, µs.
    pub lateness_p99_us: u64,
    /// Worst lateness, µs.
    pub lateness_max_us: u64,
}

impl Summary {
    /// Every notification sent.
    pub fn total_fired(&self) -> u64 {
        self.static_fired + self.time_start_fired + self.dynamic_fired
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "events fired: {} ({} static, {} TIME START, {} dynamic), {} SIMULATOR events, \
             {} send failures; lateness p50 {} us, p99 {} us, max {} us; dynamic requests: \
             {} received, {} accepted ({} held until load), {} dropped ({} unknown object)",
            self.total_fired(),
            self.static_fired,
            self.time_start_fired,
            self.dynamic_fired,
            self.simulator_events,
            self.send_failures,
            self.lateness_p50_us,
            self.lateness_p99_us,
            self.lateness_max_us,
            self.dynamic_received,
            self.dynamic_accepted,
            self.dynamic_held,
            self.dropped,
            self.dropped_unknown_object,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_percentiles_and_counts() {
        let stats = Stats::new();
        for us in 1..=100 {
            stats.record_lateness(us);
        }
        stats.record_lateness(-5);
        Stats::bump(&stats.static_fired);
        Stats::bump(&stats.dropped_unknown_object);
        let summary = stats.summary();
        assert_eq!(summary.lateness_samples, 101);
        assert!((49..=51).contains(&summary.lateness_p50_us));
        assert!((98..=100).contains(&summary.lateness_p99_us));
        assert_eq!(summary.lateness_max_us, 100);
        assert_eq!(summary.dropped, 1);
        let line = summary.to_string();
        assert!(
            line.contains("events fired: 1") && line.contains("p99"),
            "{line}"
        );
    }
}
