//! Judging measurements against what the experiment asked for.
//!
//! Each function takes what a probe measured and the edge's configured
//! parameters and returns `None` (consistent) or the error text the
//! original would have written. The rules, and where they differ from the
//! original, are in docs/linktest.md.

use std::time::Duration;

use crate::probe::{ECHO_PAYLOAD, FLOOD_PAYLOAD, FRAME_OVERHEAD};
use crate::topology::Edge;

/// The latency test may measure this much less than expected before it
/// calls the link misconfigured (milliseconds).
pub const LATENCY_LOW_BAND_MS: f64 = 0.5;
/// ... and this much more (milliseconds), plus [`LATENCY_HIGH_BAND_SHARE`]
/// of the expected RTT: queueing, scheduling and a user-space delay node
/// add a little on top of the configured delay, more on a loaded host.
pub const LATENCY_HIGH_BAND_MS: f64 = 3.5;
/// The part of the expected RTT added to the high band.
pub const LATENCY_HIGH_BAND_SHARE: f64 = 0.05;
/// The loss z-test's critical value: two-sided 99.9 % (the original used
/// 99 %, 2.58). With the larger samples we send, a changed loss rate is
/// still caught, and a correct link is misreported once in a thousand
/// runs per direction instead of once in a hundred.
pub const LOSS_Z_CRITICAL: f64 = 3.29;
/// The bandwidth estimate may differ from the configured value by this
/// fraction.
pub const BANDWIDTH_TOLERANCE: f64 = 0.10;

/// Two-sided 95 % critical values of Student's t for 1..=30 degrees of
/// freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The two-sided 95 % critical value of t with `df` degrees of freedom.
pub fn t_critical_95(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T95[df - 1],
        31..=60 => 2.00,
        61..=120 => 1.98,
        _ => 1.96,
    }
}

/// Mean and sample standard deviation.
pub fn mean_stddev(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = samples.iter().sum::<f64>() / n;
    if samples.len() < 2 {
        return (mean, 0.0);
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The round trip the latency probe should see over `forward` and back
/// over `reverse`, in milliseconds: both configured delays plus the time
/// to put the probe's frames on each shaped link.
pub fn expected_rtt_ms(forward: &Edge, reverse: &Edge) -> f64 {
    let frame_bits = ((ECHO_PAYLOAD + FRAME_OVERHEAD) * 8) as f64;
    let serialize = |e: &Edge| {
        if e.bandwidth_bps == 0 {
            0.0
        } else {
            frame_bits / e.bandwidth_bps as f64 * 1000.0
        }
    };
    (forward.delay_s + reverse.delay_s) * 1000.0 + serialize(forward) + serialize(reverse)
}

/// Level 1: `rtts` from pinging across the pair (`None` = no answer).
pub fn latency(rtts: &[Option<Duration>], expected_ms: f64) -> Option<String> {
    let samples: Vec<f64> = rtts
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    if samples.is_empty() {
        return Some(format!("No packets were received (n={})", rtts.len()));
    }
    let (mean, stddev) = mean_stddev(&samples);
    let diff = mean - expected_ms;
    let high_band = LATENCY_HIGH_BAND_MS + LATENCY_HIGH_BAND_SHARE * expected_ms;
    let outside_band = diff > high_band || -diff > LATENCY_LOW_BAND_MS;
    let significant = if stddev > 0.0 {
        (diff / (stddev / (samples.len() as f64).sqrt())).abs() > t_critical_95(samples.len() - 1)
    } else {
        diff != 0.0
    };
    (outside_band && significant).then(|| {
        format!(
            "Probable latency misconfiguration (expected={expected_ms:.2}ms, measured mean={mean:.2}ms, n={})",
            samples.len()
        )
    })
}

/// Level 3: `received` of `sent` stream packets over an edge with
/// configured loss `loss`.
pub fn loss(sent: u64, received: u64, loss: f64, src: &str) -> Option<String> {
    if received == 0 {
        return Some(format!("No packets received from {src}"));
    }
    if loss == 0.0 {
        return (received < sent)
            .then(|| format!("Unexpected loss occurred (n={sent}, received={received})"));
    }
    let n = sent as f64;
    let p = 1.0 - loss;
    let measured = received as f64 / n;
    let z = (measured - p) / (p * (1.0 - p) / n).sqrt();
    (z.abs() > LOSS_Z_CRITICAL).then(|| {
        format!(
            "Probable loss misconfiguration (n={sent}, received={received}; expected proportion={p:.4}, measured proportion={measured:.4})"
        )
    })
}

/// Level 4: an estimate in bits per second against the configured value.
pub fn bandwidth(estimate_bps: Option<f64>, configured_bps: u64) -> Option<String> {
    let configured = configured_bps as f64;
    let Some(estimate) = estimate_bps else {
        return Some("Too few packets arrived to estimate the bandwidth".to_owned());
    };
    ((estimate - configured).abs() > BANDWIDTH_TOLERANCE * configured).then(|| {
        format!(
            "Bandwidth estimate {:.3} Mbps differs from the expected {:.3} Mbps by more than {}%",
            estimate / 1e6,
            configured / 1e6,
            (BANDWIDTH_TOLERANCE * 100.0) as u32
        )
    })
}

/// The frame size the bandwidth flood uses, in bytes.
pub const FLOOD_FRAME_BYTES: usize = FLOOD_PAYLOAD + FRAME_OVERHEAD;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[f64]) -> Vec<Option<Duration>> {
        v.iter()
            .map(|&x| Some(Duration::from_secs_f64(x / 1000.0)))
            .collect()
    }

    #[test]
    fn latency_within_the_band_passes_and_a_changed_delay_fails() {
        let good = ms(&[20.1, 20.2, 20.05, 20.3, 20.1, 20.15, 20.2, 20.1, 20.4, 20.2]);
        assert_eq!(latency(&good, 20.0), None);
        let slow = ms(&[60.1, 60.2, 60.05, 60.3, 60.1, 60.15, 60.2, 60.1, 60.4, 60.2]);
        let error = latency(&slow, 20.0).unwrap();
        assert!(
            error.starts_with("Probable latency misconfiguration (expected=20.00ms"),
            "{error}"
        );
        // Missing delay (measured far less than configured) fails too.
        let fast = ms(&[0.1; 10]);
        assert!(latency(&fast, 20.0).is_some());
        // Some loss is not a latency error.
        let mut lossy = good.clone();
        lossy[3] = None;
        assert_eq!(latency(&lossy, 20.0), None);
        assert_eq!(
            latency(&[None; 10], 20.0).unwrap(),
            "No packets were received (n=10)"
        );
    }

    #[test]
    fn loss_uses_a_z_test_and_zero_loss_allows_none() {
        assert_eq!(loss(400, 400, 0.0, "a"), None);
        assert_eq!(
            loss(400, 399, 0.0, "a").unwrap(),
            "Unexpected loss occurred (n=400, received=399)"
        );
        assert_eq!(
            loss(400, 0, 0.2, "a").unwrap(),
            "No packets received from a"
        );
        // 20 % configured, about 20 % measured.
        assert_eq!(loss(2000, 1610, 0.2, "a"), None);
        // 20 % configured, 40 % measured.
        assert!(loss(2000, 1200, 0.2, "a").is_some());
        // 20 % configured, nothing lost.
        assert!(loss(2000, 2000, 0.2, "a").is_some());
    }

    #[test]
    fn bandwidth_allows_ten_percent() {
        assert_eq!(bandwidth(Some(9.5e6), 10_000_000), None);
        assert_eq!(bandwidth(Some(10.9e6), 10_000_000), None);
        let error = bandwidth(Some(5e6), 10_000_000).unwrap();
        assert_eq!(
            error,
            "Bandwidth estimate 5.000 Mbps differs from the expected 10.000 Mbps by more than 10%"
        );
        assert!(bandwidth(None, 10_000_000).is_some());
    }

    #[test]
    fn statistics() {
        let (m, s) = mean_stddev(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(t_critical_95(9), 2.262);
        assert_eq!(t_critical_95(1000), 1.96);
    }
}
