//! One direction of the shaper, without any I/O: what happens to a packet
//! between arriving on one interface and leaving on the other.
//!
//! The model is a dummynet pipe, as on Emulab's delay nodes:
//!
//! 1. a link that is down drops everything;
//! 2. random loss drops a packet with probability PLR;
//! 3. the queue (DropTail by length, or RED/GRED by average length) may
//!    refuse it; the queue holds the packets the bandwidth limit has not
//!    sent yet;
//! 4. the bandwidth limit sends packets one after another, each taking
//!    `bits / rate` (so a full queue builds real queueing delay);
//! 5. after leaving the bandwidth stage a packet is delayed by the
//!    configured delay, then delivered. Packets are never reordered.
//!
//! Time is passed in, so tests drive the model with a virtual clock. The
//! random numbers come from a small xorshift generator seeded per pipe:
//! loss needs speed and a uniform distribution, not cryptographic quality.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::params::PipeParams;

/// Settings of one direction, swapped in whole when the agent changes
/// them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PipeConfig {
    /// Bandwidth, delay, loss and queue.
    pub params: PipeParams,
    /// False: drop everything.
    pub up: bool,
}

impl Default for PipeConfig {
    fn default() -> Self {
        PipeConfig {
            params: PipeParams::default(),
            up: true,
        }
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// The link is down.
    Down,
    /// Random loss (PLR).
    Loss,
    /// The queue was full (DropTail) or RED chose it.
    Queue,
    /// More bytes are held than the shaper allows (a safety bound).
    Overflow,
}

/// Most bytes one direction holds (queued plus in delay) before it drops
/// new packets: bounds memory whatever the settings.
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// One direction's state.
pub struct Pipe<P> {
    /// Packets in the bandwidth stage: when each finishes serializing, and
    /// its size.
    serializing: VecDeque<(Instant, u32)>,
    serializing_bytes: u64,
    last_departure: Option<Instant>,
    /// Packets waiting out the delay, in delivery order.
    delayed: VecDeque<(Instant, P)>,
    last_due: Option<Instant>,
    held_bytes: usize,
    red_average: f64,
    red_count: i64,
    idle_since: Option<Instant>,
    rng: u64,
}

impl<P> Pipe<P> {
    /// An empty pipe; `seed` seeds the loss and RED random numbers.
    pub fn new(seed: u64) -> Pipe<P> {
        Pipe {
            serializing: VecDeque::new(),
            serializing_bytes: 0,
            last_departure: None,
            delayed: VecDeque::new(),
            last_due: None,
            held_bytes: 0,
            red_average: 0.0,
            red_count: -1,
            idle_since: None,
            rng: seed | 1,
        }
    }

    /// A uniform random number in [0, 1).
    fn random(&mut self) -> f64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn drain_serialized(&mut self, now: Instant) {
        while let Some(&(departure, bytes)) = self.serializing.front() {
            if departure > now {
                break;
            }
            self.serializing.pop_front();
            self.serializing_bytes -= u64::from(bytes);
            if self.serializing.is_empty() {
                self.idle_since = Some(departure);
            }
        }
    }

    /// Starts a new bandwidth schedule after a settings change at `now`.
    ///
    /// Packets accepted before the change keep their due times (nothing
    /// queued is dropped or reordered); packets arriving after it are
    /// serialized at the new rate from `now` on and the queue length
    /// counts from the change. Without this, a slow setting's backlog
    /// would keep delaying and dropping traffic after the link was made
    /// fast again.
    pub fn reconfigured(&mut self, now: Instant) {
        if self.last_departure.is_some_and(|last| last > now) {
            self.last_departure = Some(now);
        }
        self.serializing.clear();
        self.serializing_bytes = 0;
    }

    /// Packets (and bytes) in the queue at `now`.
    pub fn queue_length(&mut self, now: Instant) -> (usize, u64) {
        self.drain_serialized(now);
        (self.serializing.len(), self.serializing_bytes)
    }

    /// Packets waiting to be delivered (queued or delayed).
    pub fn held(&self) -> usize {
        self.delayed.len()
    }

    /// Offers a packet of `wire_bytes` on the wire at `now`. Accepted
    /// packets are held until [`Pipe::pop_due`] returns them.
    pub fn offer(
        &mut self,
        now: Instant,
        wire_bytes: u32,
        packet: P,
        packet_bytes: usize,
        config: &PipeConfig,
    ) -> Result<Instant, (Drop, P)> {
        let params = &config.params;
        if !config.up {
            return Err((Drop::Down, packet));
        }
        if params.plr > 0.0 && self.random() < params.plr {
            return Err((Drop::Loss, packet));
        }
        if self.held_bytes + packet_bytes > MAX_HELD_BYTES {
            return Err((Drop::Overflow, packet));
        }
        self.drain_serialized(now);
        let queue = &params.queue;
        if let Some(red) = queue.red
            && self.red_drops(now, wire_bytes, params, &red)
        {
            return Err((Drop::Queue, packet));
        }
        let full = if queue.in_bytes {
            self.serializing_bytes + u64::from(wire_bytes) > u64::from(queue.limit)
        } else {
            self.serializing.len() >= queue.limit as usize
        };
        if full {
            return Err((Drop::Queue, packet));
        }
        let start = match self.last_departure {
            Some(last) if last > now => last,
            _ => now,
        };
        // Serialization time: bits / (kbit/s), in nanoseconds; 0 kbit/s
        // means unlimited.
        let departure = match (u64::from(wire_bytes) * 8_000_000).checked_div(params.bandwidth_kbps)
        {
            Some(nanos) => start + Duration::from_nanos(nanos),
            None => start,
        };
        self.last_departure = Some(departure);
        if departure > now {
            self.serializing.push_back((departure, wire_bytes));
            self.serializing_bytes += u64::from(wire_bytes);
            self.idle_since = None;
        }
        let mut due = departure + params.delay;
        if let Some(last) = self.last_due
            && last > due
        {
            due = last;
        }
        self.last_due = Some(due);
        self.held_bytes += packet_bytes;
        self.delayed.push_back((due, packet));
        Ok(due)
    }

    /// RED's decision for an arriving packet (Floyd and Jacobson, with
    /// the gentle variant), updating the average queue length.
    fn red_drops(
        &mut self,
        now: Instant,
        wire_bytes: u32,
        params: &PipeParams,
        red: &crate::params::RedParams,
    ) -> bool {
        let current = if red.thresholds_in_bytes {
            self.serializing_bytes as f64
        } else {
            self.serializing.len() as f64
        };
        let weight = red.weight.clamp(1e-9, 1.0);
        if current == 0.0 {
            // An idle queue: decay the average as if `m` small packets had
            // gone through while it was empty.
            let m = match (self.idle_since, params.bandwidth_kbps) {
                (Some(since), kbps) if kbps > 0 && now > since => {
                    let per_packet = f64::from(wire_bytes.max(64)) * 8.0 / (kbps as f64 * 1000.0);
                    (now - since).as_secs_f64() / per_packet
                }
                _ => 0.0,
            };
            self.red_average *= (1.0 - weight).powf(m + 1.0);
        } else {
            self.red_average = (1.0 - weight) * self.red_average + weight * current;
        }
        let avg = self.red_average;
        let min = f64::from(red.min_thresh);
        let max = f64::from(red.max_thresh.max(red.min_thresh + 1));
        let max_p = 1.0 / f64::from(red.linterm.max(1));
        let probability = if avg < min {
            self.red_count = -1;
            return false;
        } else if avg < max {
            max_p * (avg - min) / (max - min)
        } else if red.gentle && avg < 2.0 * max {
            max_p + (1.0 - max_p) * (avg - max) / max
        } else {
            self.red_count = 0;
            return true;
        };
        self.red_count += 1;
        let spread = 1.0 - self.red_count as f64 * probability;
        let actual = if spread <= 0.0 {
            1.0
        } else {
            probability / spread
        };
        if self.random() < actual {
            self.red_count = 0;
            true
        } else {
            false
        }
    }

    /// When the next held packet is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.front().map(|(due, _)| *due)
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant, packet_bytes: impl Fn(&P) -> usize) -> Option<P> {
        match self.delayed.front() {
            Some((due, _)) if *due <= now => {
                let (_, packet) = self.delayed.pop_front()?;
                self.held_bytes = self.held_bytes.saturating_sub(packet_bytes(&packet));
                Some(packet)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{QueueParams, RedParams};

    fn config(params: PipeParams) -> PipeConfig {
        PipeConfig { params, up: true }
    }

    #[test]
    fn delay_and_bandwidth_set_the_due_time() {
        let t0 = Instant::now();
        let mut pipe = Pipe::new(1);
        let cfg = config(PipeParams {
            bandwidth_kbps: 1000,
            delay: Duration::from_millis(50),
            ..PipeParams::default()
        });
        // 1250 bytes at 1 Mbit/s take 10 ms each.
        let due1 = pipe.offer(t0, 1250, 1u32, 1250, &cfg).unwrap();
        let due2 = pipe.offer(t0, 1250, 2u32, 1250, &cfg).unwrap();
        assert_eq!(due1 - t0, Duration::from_millis(60));
        assert_eq!(due2 - t0, Duration::from_millis(70));
        assert_eq!(pipe.queue_length(t0 + Duration::from_millis(15)).0, 1);
        assert_eq!(pipe.pop_due(t0 + Duration::from_millis(59), |_| 1250), None);
        assert_eq!(
            pipe.pop_due(t0 + Duration::from_millis(60), |_| 1250),
            Some(1)
        );
        assert_eq!(pipe.next_due(), Some(due2));
    }

    #[test]
    fn droptail_in_packets_and_bytes() {
        let t0 = Instant::now();
        let mut pipe = Pipe::new(1);
        let mut params = PipeParams {
            bandwidth_kbps: 100,
            queue: QueueParams {
                limit: 3,
                ..QueueParams::default()
            },
            ..PipeParams::default()
        };
        let results: Vec<bool> = (0..5)
            .map(|i| pipe.offer(t0, 1000, i, 1000, &config(params)).is_ok())
            .collect();
        assert_eq!(results, vec![true, true, true, false, false]);
        let mut pipe = Pipe::new(1);
        params.queue = QueueParams {
            limit: 2500,
            in_bytes: true,
            red: None,
        };
        let results: Vec<bool> = (0..4)
            .map(|i| pipe.offer(t0, 1000, i, 1000, &config(params)).is_ok())
            .collect();
        assert_eq!(results, vec![true, true, false, false]);
    }

    #[test]
    fn loss_rate_is_close_to_plr_and_down_drops_all() {
        let t0 = Instant::now();
        let mut pipe = Pipe::new(42);
        let cfg = config(PipeParams {
            plr: 0.2,
            ..PipeParams::default()
        });
        let lost = (0..100_000)
            .filter(|&i| matches!(pipe.offer(t0, 100, i, 0, &cfg), Err((Drop::Loss, _))))
            .count();
        assert!((19_000..21_000).contains(&lost), "{lost}");
        let down = PipeConfig {
            up: false,
            ..PipeConfig::default()
        };
        assert!(matches!(
            pipe.offer(t0, 100, 0, 0, &down),
            Err((Drop::Down, _))
        ));
    }

    #[test]
    fn red_drops_early_and_gently() {
        let t0 = Instant::now();
        let red = RedParams {
            weight: 0.5,
            ..RedParams::default()
        };
        let mut pipe = Pipe::new(7);
        let cfg = config(PipeParams {
            bandwidth_kbps: 10,
            queue: QueueParams {
                limit: 1000,
                in_bytes: false,
                red: Some(red),
            },
            ..PipeParams::default()
        });
        // Offer a burst into a slow link: RED must start dropping well
        // before the 1000-packet limit, around its thresholds.
        let mut accepted = 0;
        for i in 0..200 {
            if pipe.offer(t0, 1000, i, 0, &cfg).is_ok() {
                accepted += 1;
            }
        }
        assert!((5..40).contains(&accepted), "{accepted}");
    }

    #[test]
    fn a_change_starts_a_new_schedule_without_dropping_the_backlog() {
        let t0 = Instant::now();
        let mut pipe = Pipe::new(1);
        let slow = config(PipeParams {
            bandwidth_kbps: 100,
            ..PipeParams::default()
        });
        for i in 0..50 {
            pipe.offer(t0, 1250, i, 0, &slow).unwrap();
        }
        assert!(pipe.offer(t0, 1250, 99, 0, &slow).is_err());
        pipe.reconfigured(t0);
        let fast = config(PipeParams::default());
        let due = pipe.offer(t0, 1250, 100, 0, &fast).unwrap();
        // Not dropped; delivered after the backlog (never reordered).
        assert_eq!(due - t0, Duration::from_millis(5000));
        assert_eq!(pipe.held(), 51);
    }

    #[test]
    fn packets_are_never_reordered_when_delay_shrinks() {
        let t0 = Instant::now();
        let mut pipe = Pipe::new(1);
        let slow = config(PipeParams {
            delay: Duration::from_millis(100),
            ..PipeParams::default()
        });
        let fast = config(PipeParams::default());
        let a = pipe.offer(t0, 100, 1, 0, &slow).unwrap();
        let b = pipe.offer(t0, 100, 2, 0, &fast).unwrap();
        assert!(b >= a);
    }
}
