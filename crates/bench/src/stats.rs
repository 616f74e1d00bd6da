//! Latency recording and percentiles.
//!
//! Runs are bounded by time as well as count, so a recorder must not keep
//! every sample: a ten-minute run at 500,000 deliveries per second would
//! be three billion of them. [`LatencyRecorder`] is an HDR histogram
//! (fixed memory, about 3 significant digits at every magnitude) over
//! nanoseconds, from 1 ns to one hour; values outside that range are
//! clamped, never rejected. [`LatencySummary`] is what reports show.
//!
//! Percentiles are nearest-rank: p50 is the smallest recorded value (to
//! the histogram's precision) with at least half of the samples at or
//! below it, so p100 is the maximum and every percentile is a value that
//! was actually seen.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency tracked: one hour, in nanoseconds.
const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;

/// A fixed-size histogram of latencies.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    sum_ns: u128,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        // The bounds are constants within hdrhistogram's rules (low >= 1,
        // high >= 2 * low, at most 5 significant figures), so this cannot
        // fail at run time; nothing here depends on input.
        #[allow(clippy::expect_used)]
        let histogram = Histogram::new_with_bounds(1, HIGHEST_NS, 3)
            .expect("constant histogram bounds are valid");
        LatencyRecorder {
            histogram,
            sum_ns: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.record_ns(ns);
    }

    /// Records one latency in nanoseconds (clamped to 1 ns .. 1 hour).
    pub fn record_ns(&mut self, ns: u64) {
        let ns = ns.clamp(1, HIGHEST_NS);
        self.histogram.saturating_record(ns);
        self.sum_ns = self.sum_ns.saturating_add(u128::from(ns));
    }

    /// Records one latency in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.record_ns(us.saturating_mul(1_000));
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// Adds another recorder's samples to this one.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The nearest-rank value at `percentile` (0–100) in nanoseconds, or 0
    /// with no samples.
    pub fn percentile_ns(&self, percentile: f64) -> u64 {
        let total = self.len();
        let Some(rank) = nearest_rank(percentile, total) else {
            return 0;
        };
        let mut seen = 0u64;
        for bucket in self.histogram.iter_recorded() {
            seen = seen.saturating_add(bucket.count_at_value());
            if seen >= rank {
                // Report the bucket's middle, so that recording v and
                // asking for it gives v to 3 significant digits either way.
                let value = bucket.value_iterated_to();
                return self.histogram.median_equivalent(value).min(self.max_ns());
            }
        }
        self.max_ns()
    }

    /// Largest sample in nanoseconds (to the histogram's precision).
    pub fn max_ns(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.histogram.max()
    }

    /// The summary reports print.
    pub fn summary(&self) -> LatencySummary {
        let count = self.len();
        let us = |ns: u64| ns as f64 / 1_000.0;
        let mean_us = if count == 0 {
            0.0
        } else {
            (self.sum_ns as f64 / count as f64) / 1_000.0
        };
        LatencySummary {
            count,
            mean_us,
            p50_us: us(self.percentile_ns(50.0)),
            p90_us: us(self.percentile_ns(90.0)),
            p99_us: us(self.percentile_ns(99.0)),
            p999_us: us(self.percentile_ns(99.9)),
            max_us: us(self.max_ns()),
        }
    }
}

/// The 1-based nearest rank of `percentile` (0–100) among `total`
/// samples: the smallest rank r with r / total >= percentile / 100.
/// `None` when there are no samples.
pub fn nearest_rank(percentile: f64, total: u64) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let fraction = (percentile / 100.0).clamp(0.0, 1.0);
    // Round the product to 1e-9 first: 0.999 * 1000 is 999.0000000000001
    // in binary floating point, which must still be rank 999.
    let exact = fraction * total as f64;
    let rounded = (exact * 1e9).round() / 1e9;
    let rank = rounded.ceil() as u64;
    Some(rank.clamp(1, total))
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean (exact, not from the histogram).
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl LatencySummary {
    /// True when p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max, as percentiles must be.
    pub fn is_ordered(&self) -> bool {
        self.p50_us <= self.p90_us
            && self.p90_us <= self.p99_us
            && self.p99_us <= self.p999_us
            && self.p999_us <= self.max_us
    }
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs  mean {:.1} µs  ({} samples)",
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.mean_us,
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn nearest_rank_percentiles_of_1_to_1000() {
        let mut recorder = LatencyRecorder::new();
        for us in 1..=1000u64 {
            recorder.record_us(us);
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 1000);
        assert!(close(summary.p50_us, 500.0), "{summary:?}");
        assert!(close(summary.p90_us, 900.0), "{summary:?}");
        assert!(close(summary.p99_us, 990.0), "{summary:?}");
        assert!(close(summary.p999_us, 999.0), "{summary:?}");
        assert!(close(summary.max_us, 1000.0), "{summary:?}");
        assert!(close(summary.mean_us, 500.5), "{summary:?}");
        assert!(summary.is_ordered());
    }

    #[test]
    fn a_single_outlier_shows_only_in_the_tail() {
        let mut recorder = LatencyRecorder::new();
        for _ in 0..999 {
            recorder.record_us(100);
        }
        recorder.record_us(50_000);
        let summary = recorder.summary();
        assert!(close(summary.p50_us, 100.0));
        assert!(close(summary.p99_us, 100.0));
        // 999 of 1000 samples are 100 µs, so p99.9 is still 100 µs; only
        // the maximum sees the outlier.
        assert!(close(summary.p999_us, 100.0));
        assert!(close(summary.max_us, 50_000.0));
        assert!(close(summary.mean_us, (999.0 * 100.0 + 50_000.0) / 1000.0));
    }

    #[test]
    fn nearest_rank_is_exact_at_round_numbers() {
        assert_eq!(nearest_rank(50.0, 1000), Some(500));
        assert_eq!(nearest_rank(99.9, 1000), Some(999));
        assert_eq!(nearest_rank(99.0, 100), Some(99));
        assert_eq!(nearest_rank(99.0, 101), Some(100));
        assert_eq!(nearest_rank(0.0, 10), Some(1));
        assert_eq!(nearest_rank(100.0, 10), Some(10));
        assert_eq!(nearest_rank(150.0, 10), Some(10));
        assert_eq!(nearest_rank(50.0, 1), Some(1));
        assert_eq!(nearest_rank(50.0, 0), None);
    }

    #[test]
    fn empty_recorder_reports_zeros() {
        let summary = LatencyRecorder::new().summary();
        assert_eq!(summary, LatencySummary::default());
        assert!(summary.is_ordered());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_rejected() {
        let mut recorder = LatencyRecorder::new();
        recorder.record_ns(0);
        recorder.record_ns(u64::MAX);
        recorder.record(Duration::from_secs(100_000));
        assert_eq!(recorder.len(), 3);
        assert!(recorder.max_ns() >= HIGHEST_NS / 1000 * 999);
        assert!(recorder.percentile_ns(0.0) >= 1);
    }

    #[test]
    fn merging_combines_samples() {
        let mut low = LatencyRecorder::new();
        let mut high = LatencyRecorder::new();
        for _ in 0..50 {
            low.record_us(10);
            high.record_us(1_000);
        }
        low.merge(&high);
        assert_eq!(low.len(), 100);
        assert!(close(low.summary().p50_us, 10.0));
        assert!(close(low.summary().p90_us, 1_000.0));
        assert!(close(low.summary().mean_us, 505.0));
    }
}
