//! A constant-bit-rate source's settings and how events change them.
//!
//! The NS front end writes a CBR's settings the way ns-2's CBR holds them
//! (`packetSize_`, `rate_`, `interval_`), and Emulab's trafgen read them
//! as `PACKETSIZE=<bytes> RATE=<kbit/s> INTERVAL=<seconds> IPTOS=<tos>`,
//! `-1` meaning "not set":
//!
//! - `INTERVAL` (seconds between packets) wins over `RATE` when both are
//!   set in one event;
//! - `RATE` (kbit/s of packet payload) gives the interval
//!   `PACKETSIZE × 8 / (RATE × 1000)`;
//! - with neither, the previous pacing stays (initially one packet every
//!   0.1 s).
//!
//! The last of `RATE` and `INTERVAL` set wins from then on: a CBR paced by
//! rate keeps its rate when `PACKETSIZE` changes (its interval changes),
//! as ns-2 recomputes `interval_` from `rate_` and `packetSize_`; one
//! paced by interval keeps its interval. A value that cannot be used
//! fails the whole event, and nothing changes.

use std::time::Duration;

use crate::args::{BadArgs, EventArgs, bad};

/// Default packet size, bytes (Emulab's trafgen).
pub const DEFAULT_PACKET_SIZE: u32 = 1024;
/// Default interval (Emulab's trafgen).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Largest interval accepted: one day.
const MAX_INTERVAL_SECS: f64 = 86_400.0;
/// Shortest interval accepted: one microsecond (8 Gbit/s of 1000-byte
/// packets; far beyond what one source can send).
const MIN_INTERVAL_SECS: f64 = 1e-6;
/// Largest PACKETSIZE accepted (what the NS front end accepts).
pub const MAX_PACKET_SIZE: i64 = 65_536;

/// How a source is paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// A fixed gap between packets.
    Interval(Duration),
    /// A payload rate in kbit/s.
    Rate(f64),
}

/// A source's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CbrParams {
    /// Bytes per packet (payload, header included).
    pub packet_size: u32,
    /// Pacing.
    pub pace: Pace,
    /// IP type-of-service byte.
    pub tos: u8,
}

impl Default for CbrParams {
    fn default() -> Self {
        CbrParams {
            packet_size: DEFAULT_PACKET_SIZE,
            pace: Pace::Interval(DEFAULT_INTERVAL),
            tos: 0,
        }
    }
}

/// Keys a CBR event may carry.
pub const KEYS: &[&str] = &["PACKETSIZE", "RATE", "INTERVAL", "IPTOS"];

impl CbrParams {
    /// The gap between packets.
    pub fn interval(&self) -> Duration {
        match self.pace {
            Pace::Interval(interval) => interval,
            Pace::Rate(kbps) => {
                let secs = f64::from(self.packet_size) * 8.0 / (kbps * 1000.0);
                Duration::from_secs_f64(secs.clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS))
            }
        }
    }

    /// The payload rate in kbit/s this pacing gives.
    pub fn rate_kbps(&self) -> f64 {
        f64::from(self.packet_size) * 8.0 / self.interval().as_secs_f64() / 1000.0
    }

    /// These settings changed by `ARGS`; an error leaves them unchanged.
    pub fn changed_by(&self, text: &str) -> Result<(CbrParams, Vec<String>), BadArgs> {
        let args = EventArgs::parse(text)?;
        let mut next = *self;
        if let Some(size) = args.i64_in("PACKETSIZE", -1..=MAX_PACKET_SIZE)?
            && size != -1
        {
            if size < 1 {
                return Err(bad(
                    "PACKETSIZE",
                    &size.to_string(),
                    "give 1 to 65536 bytes",
                ));
            }
            next.packet_size = u32::try_from(size).unwrap_or(DEFAULT_PACKET_SIZE);
        }
        if let Some(tos) = args.i64_in("IPTOS", -1..=255)? {
            next.tos = u8::try_from(tos).unwrap_or(0);
        }
        let interval = args.f64_in("INTERVAL", -1.0..=MAX_INTERVAL_SECS)?;
        let rate = args.f64_in("RATE", -1.0..=f64::from(u32::MAX))?;
        match (interval, rate) {
            (Some(i), _) if i >= 0.0 => {
                if i < MIN_INTERVAL_SECS {
                    return Err(bad(
                        "INTERVAL",
                        &i.to_string(),
                        "give at least 0.000001 seconds between packets",
                    ));
                }
                next.pace = Pace::Interval(Duration::from_secs_f64(i));
            }
            (_, Some(r)) if r >= 0.0 => {
                if r == 0.0 {
                    return Err(bad(
                        "RATE",
                        "0",
                        "give a rate above 0 kbit/s (use STOP to stop sending)",
                    ));
                }
                next.pace = Pace::Rate(r);
            }
            _ => {}
        }
        Ok((next, args.unknown_keys(KEYS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ns_start_event() {
        // `$cbr0 set packetSize_ 1000; $cbr0 set rate_ 20Mbps` then start.
        let (p, unknown) = CbrParams::default()
            .changed_by("PACKETSIZE=1000 RATE=20000 INTERVAL=-1 IPTOS=-1")
            .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(p.packet_size, 1000);
        assert_eq!(p.interval(), Duration::from_micros(400));
        assert!((p.rate_kbps() - 20_000.0).abs() < 1e-6);
        assert_eq!(p.tos, 0);

        // MODIFY RATE=40000 keeps the size and halves the interval.
        let (q, _) = p.changed_by("RATE=40000").unwrap();
        assert_eq!(q.interval(), Duration::from_micros(200));
        // A new size keeps the rate.
        let (r, _) = q.changed_by("PACKETSIZE=500").unwrap();
        assert_eq!(r.interval(), Duration::from_micros(100));
    }

    #[test]
    fn interval_wins_and_neither_keeps_the_pace() {
        let (p, _) = CbrParams::default()
            .changed_by("RATE=8 INTERVAL=0.5 IPTOS=16")
            .unwrap();
        assert_eq!(p.pace, Pace::Interval(Duration::from_millis(500)));
        assert_eq!(p.tos, 16);
        let (q, _) = p.changed_by("PACKETSIZE=100 RATE=-1 INTERVAL=-1").unwrap();
        assert_eq!(q.interval(), Duration::from_millis(500));
        assert_eq!(q.packet_size, 100);
        assert_eq!(CbrParams::default().interval(), DEFAULT_INTERVAL);
    }

    #[test]
    fn bad_values_change_nothing() {
        let p = CbrParams::default();
        for bad in [
            "RATE=0",
            "RATE=abc",
            "INTERVAL=0",
            "INTERVAL=100000",
            "PACKETSIZE=0",
            "PACKETSIZE=70000",
            "IPTOS=256",
            "RATE='x",
        ] {
            assert!(p.changed_by(bad).is_err(), "{bad}");
        }
        let (_, unknown) = p.changed_by("FOO=1 rate=5").unwrap();
        assert_eq!(unknown, ["FOO"]);
    }
}
