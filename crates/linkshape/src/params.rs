//! What one direction of a shaped link is set to, and the `MODIFY`
//! arguments that change it.
//!
//! Emulab's delay nodes shaped every link with two pipes, one per
//! direction; each pipe had a bandwidth, a delay, a loss rate and a queue
//! (DropTail, RED or gentle RED). [`PipeParams`] is one such pipe.
//! [`Modification::parse`] reads the ARGS of a `LINK MODIFY` event into an
//! ordered list of changes; the agent decides which pipes they reach (see
//! `docs/agents.md`, "delay-agent").
//!
//! A bad value makes the whole event invalid (nothing is applied, the agent
//! logs why); an unknown key is logged and skipped, as the original did.

use std::fmt;
use std::time::Duration;

use tbevents_event::args::parse_args;

/// One direction of a link. On a duplex link `AtoB` carries the packets the
/// first named node sends (Emulab's pipe 0); on a LAN member it is the
/// member's traffic into the LAN (pipe 0, "toward the switch").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From side A to side B (`PIPE=pipe0`).
    AtoB,
    /// From side B to side A (`PIPE=pipe1`).
    BtoA,
}

impl Direction {
    /// Both directions, A to B first.
    pub const BOTH: [Direction; 2] = [Direction::AtoB, Direction::BtoA];

    /// 0 for `AtoB`, 1 for `BtoA` (Emulab's pipe numbers).
    pub fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AtoB => "pipe0 (A->B)",
            Direction::BtoA => "pipe1 (B->A)",
        })
    }
}

/// RED (random early detection) parameters, as Emulab's `virt_lans`
/// `q_*` columns hold them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RedParams {
    /// Below this average queue length nothing is dropped (`THRESH`).
    pub min_thresh: u32,
    /// At and above this average queue length everything is dropped
    /// (`MAXTHRESH`; gentle RED ramps up to 2 x this instead).
    pub max_thresh: u32,
    /// Weight of the newest sample in the average (`Q_WEIGHT`), in (0, 1].
    pub weight: f64,
    /// The drop probability at `max_thresh` is 1/`linterm` (`LINTERM`).
    pub linterm: u32,
    /// Gentle RED (GRED): between `max_thresh` and 2 x `max_thresh` the
    /// drop probability rises linearly from 1/`linterm` to 1.
    pub gentle: bool,
    /// Thresholds count bytes rather than packets (`q_bytes`).
    pub thresholds_in_bytes: bool,
}

impl Default for RedParams {
    /// NS's (and Emulab's) defaults: thresholds 5 and 15 packets, weight
    /// 0.002, maximum drop probability 1/10, not gentle.
    fn default() -> Self {
        RedParams {
            min_thresh: 5,
            max_thresh: 15,
            weight: 0.002,
            linterm: 10,
            gentle: false,
            thresholds_in_bytes: false,
        }
    }
}

/// The queue packets wait in before the bandwidth limit lets them go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueParams {
    /// Length limit: packets, or bytes when `in_bytes`.
    pub limit: u32,
    /// `limit` counts bytes (`QUEUE-IN-BYTES=1`).
    pub in_bytes: bool,
    /// RED or gentle RED when set; DropTail otherwise.
    pub red: Option<RedParams>,
}

impl Default for QueueParams {
    /// Emulab's unconfigured queue: DropTail, 50 packets.
    fn default() -> Self {
        QueueParams {
            limit: 50,
            in_bytes: false,
            red: None,
        }
    }
}

/// One direction of a link (one of Emulab's dummynet pipes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PipeParams {
    /// Bandwidth in kbit/s; 0 means not limited.
    pub bandwidth_kbps: u64,
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Probability that a packet is dropped, 0..=1.
    pub plr: f64,
    /// The queue in front of the bandwidth limit.
    pub queue: QueueParams,
}

impl Default for PipeParams {
    /// An unshaped pipe: no bandwidth limit, no delay, no loss, the default
    /// queue.
    fn default() -> Self {
        PipeParams {
            bandwidth_kbps: 0,
            delay: Duration::ZERO,
            plr: 0.0,
            queue: QueueParams::default(),
        }
    }
}

impl fmt::Display for PipeParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bandwidth_kbps == 0 {
            f.write_str("bw unlimited")?;
        } else {
            write!(f, "bw {} kbit/s", self.bandwidth_kbps)?;
        }
        write!(
            f,
            ", delay {:.3} ms, plr {}, queue {} {}",
            self.delay.as_secs_f64() * 1000.0,
            self.plr,
            self.queue.limit,
            if self.queue.in_bytes {
                "bytes"
            } else {
                "packets"
            }
        )?;
        match self.queue.red {
            Some(red) if red.gentle => f.write_str(" GRED"),
            Some(_) => f.write_str(" RED"),
            None => f.write_str(" DropTail"),
        }
    }
}

/// One change a `MODIFY` event asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// `BANDWIDTH=` kbit/s (0: unlimited).
    Bandwidth(u64),
    /// `DELAY=` milliseconds (`20`, `20ms`, `0.5ms`, `1s`).
    Delay(Duration),
    /// `PLR=` 0..=1.
    Plr(f64),
    /// `LIMIT=` queue length in slots; also switches the queue to slots,
    /// as the original did.
    Limit(u32),
    /// `QUEUE-IN-BYTES=` 0 (slots) or anything else (bytes).
    QueueInBytes(bool),
    /// `MAXTHRESH=` RED maximum threshold.
    MaxThresh(u32),
    /// `THRESH=` RED minimum threshold.
    Thresh(u32),
    /// `LINTERM=` RED: maximum drop probability is 1/value.
    Linterm(u32),
    /// `Q_WEIGHT=` RED averaging weight, (0, 1].
    QWeight(f64),
}

impl Change {
    /// True for the queue settings, which Emulab routed differently from
    /// bandwidth, delay and loss when no pipe was named.
    pub fn is_queue_setting(&self) -> bool {
        !matches!(
            self,
            Change::Bandwidth(_) | Change::Delay(_) | Change::Plr(_)
        )
    }

    /// Applies this change to `pipe`.
    pub fn apply_to(&self, pipe: &mut PipeParams) {
        match *self {
            Change::Bandwidth(kbps) => pipe.bandwidth_kbps = kbps,
            Change::Delay(delay) => pipe.delay = delay,
            Change::Plr(plr) => pipe.plr = plr,
            Change::Limit(limit) => {
                pipe.queue.limit = limit;
                pipe.queue.in_bytes = false;
            }
            Change::QueueInBytes(in_bytes) => pipe.queue.in_bytes = in_bytes,
            Change::MaxThresh(v) => red_mut(pipe).max_thresh = v,
            Change::Thresh(v) => red_mut(pipe).min_thresh = v,
            Change::Linterm(v) => red_mut(pipe).linterm = v,
            Change::QWeight(v) => red_mut(pipe).weight = v,
        }
    }
}

/// The RED parameters of `pipe`. Setting a RED parameter on a DropTail
/// queue makes it RED (with the defaults for the rest): the NS file can
/// only name RED parameters for a RED queue, so the operator means RED.
fn red_mut(pipe: &mut PipeParams) -> &mut RedParams {
    pipe.queue.red.get_or_insert_with(RedParams::default)
}

/// The parsed ARGS of a `MODIFY` event: changes in order, each with the
/// pipe an earlier `PIPE=` selected (`None`: the default target).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Modification {
    /// The changes, in the order the event lists them.
    pub changes: Vec<(Option<Direction>, Change)>,
    /// Keys the agent does not know; logged and skipped.
    pub unknown_keys: Vec<String>,
}

/// Why a `MODIFY` event's arguments were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModifyError {
    /// The ARGS string itself is malformed (an unterminated quote).
    #[error("ARGS cannot be read: {0}")]
    Syntax(String),
    /// A value is out of range or not a number.
    #[error("{key}={value:?} is invalid: {reason}")]
    BadValue {
        /// The key as written.
        key: String,
        /// The value as written.
        value: String,
        /// What is accepted.
        reason: &'static str,
    },
}

impl Modification {
    /// Parses `KEY=value` items. Keys are matched without regard to case;
    /// Emulab's were case-sensitive upper case, which this accepts.
    pub fn parse(args: &str) -> Result<Modification, ModifyError> {
        let items = parse_args(args).map_err(|e| ModifyError::Syntax(e.to_string()))?;
        let mut modification = Modification::default();
        let mut pipe = None;
        for item in items {
            let key = item.key;
            let value = item.value;
            let bad = |reason: &'static str| ModifyError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                reason,
            };
            let change = match key.to_ascii_uppercase().as_str() {
                "PIPE" => {
                    pipe = Some(match value.to_ascii_lowercase().as_str() {
                        "pipe0" | "0" => Direction::AtoB,
                        "pipe1" | "1" => Direction::BtoA,
                        _ => return Err(bad("use pipe0 or pipe1")),
                    });
                    continue;
                }
                "BANDWIDTH" => Change::Bandwidth(
                    parse_u32(value)
                        .map(u64::from)
                        .ok_or_else(|| bad("a whole number of kbit/s (0 = unlimited)"))?,
                ),
                "DELAY" => Change::Delay(
                    parse_delay(value).ok_or_else(|| {
                        bad("milliseconds, optionally with a unit: 20, 20ms, 0.5ms, 1s (at most 1 hour)")
                    })?,
                ),
                "PLR" => Change::Plr(
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| bad("a loss probability from 0 to 1"))?,
                ),
                "LIMIT" => Change::Limit(
                    parse_u32(value)
                        .filter(|&l| l > 0)
                        .ok_or_else(|| bad("a queue length of at least 1"))?,
                ),
                "QUEUE-IN-BYTES" => Change::QueueInBytes(
                    parse_u32(value).ok_or_else(|| bad("0 (packets) or 1 (bytes)"))? != 0,
                ),
                "MAXTHRESH" => Change::MaxThresh(
                    parse_u32(value).ok_or_else(|| bad("a whole number of packets or bytes"))?,
                ),
                "THRESH" => Change::Thresh(
                    parse_u32(value).ok_or_else(|| bad("a whole number of packets or bytes"))?,
                ),
                "LINTERM" => Change::Linterm(
                    parse_u32(value)
                        .filter(|&l| l >= 1)
                        .ok_or_else(|| bad("a whole number of at least 1"))?,
                ),
                "Q_WEIGHT" => Change::QWeight(
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|w| *w > 0.0 && *w <= 1.0)
                        .ok_or_else(|| bad("a weight greater than 0 and at most 1"))?,
                ),
                _ => {
                    modification.unknown_keys.push(key.to_string());
                    continue;
                }
            };
            modification.changes.push((pipe, change));
        }
        Ok(modification)
    }
}

fn parse_u32(value: &str) -> Option<u32> {
    value.trim().parse::<u32>().ok()
}

/// Longest delay accepted (one hour): anything longer is a typo, and it
/// bounds how long the shaper holds a packet.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A delay: a plain number of milliseconds, or a number with `ms`, `us`
/// or `s`. The original read the leading integer (`20ms` -> 20) and turned
/// `0.5` into 0; we keep fractions.
pub fn parse_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "ms" => number / 1e3,
        "us" => number / 1e6,
        "s" => number,
        _ => return None,
    };
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_DELAY.as_secs_f64() {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_in_every_accepted_form() {
        assert_eq!(parse_delay("50"), Some(Duration::from_millis(50)));
        assert_eq!(parse_delay("50ms"), Some(Duration::from_millis(50)));
        assert_eq!(parse_delay("0.5ms"), Some(Duration::from_micros(500)));
        assert_eq!(parse_delay("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_delay("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_delay("-1"), None);
        assert_eq!(parse_delay("10 parsecs"), None);
        assert_eq!(parse_delay("ms"), None);
        assert_eq!(parse_delay("7200s"), None);
    }

    #[test]
    fn modify_args_in_order_with_pipe_selection() {
        let m =
            Modification::parse("BANDWIDTH=1000 DELAY=10ms PIPE=pipe1 PLR=0.2 LIMIT=30").unwrap();
        assert_eq!(
            m.changes,
            vec![
                (None, Change::Bandwidth(1000)),
                (None, Change::Delay(Duration::from_millis(10))),
                (Some(Direction::BtoA), Change::Plr(0.2)),
                (Some(Direction::BtoA), Change::Limit(30)),
            ]
        );
        assert!(m.unknown_keys.is_empty());
    }

    #[test]
    fn unknown_keys_are_kept_for_the_log_and_bad_values_refuse_the_event() {
        let m = Modification::parse("COLOUR=blue DELAY=5").unwrap();
        assert_eq!(m.unknown_keys, vec!["COLOUR".to_string()]);
        assert_eq!(m.changes.len(), 1);
        for bad in [
            "PLR=1.5",
            "PLR=x",
            "BANDWIDTH=-3",
            "DELAY=soon",
            "LIMIT=0",
            "Q_WEIGHT=0",
            "LINTERM=0",
            "PIPE=pipe7",
        ] {
            assert!(
                matches!(Modification::parse(bad), Err(ModifyError::BadValue { .. })),
                "{bad} must be refused"
            );
        }
        assert!(matches!(
            Modification::parse("DELAY='5"),
            Err(ModifyError::Syntax(_))
        ));
    }

    #[test]
    fn red_settings_make_the_queue_red_and_limit_switches_to_slots() {
        let mut pipe = PipeParams::default();
        pipe.queue.in_bytes = true;
        Change::Limit(20).apply_to(&mut pipe);
        assert_eq!((pipe.queue.limit, pipe.queue.in_bytes), (20, false));
        Change::MaxThresh(30).apply_to(&mut pipe);
        let red = pipe.queue.red.unwrap();
        assert_eq!(red.max_thresh, 30);
        assert_eq!(red.min_thresh, 5);
    }
}
