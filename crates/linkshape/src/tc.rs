//! The `tc` backend: shapes the egress of one interface with the kernel's
//! queueing disciplines and takes it up and down with `ip link`.
//!
//! The tree on the interface is fixed, so every event changes exactly one
//! or two nodes of it:
//!
//! ```text
//! root 1: htb default 1
//!   class 1:1 htb rate R ceil R          bandwidth (10 Gbit/s when unlimited)
//!     leaf 10: netem delay D loss P limit N      when there is delay or loss
//!          10: pfifo limit N | bfifo limit B      DropTail otherwise
//!          10: red ...                            RED/GRED otherwise
//! ```
//!
//! A leaf of the same kind is changed in place (`tc qdisc change`, queued
//! packets stay); a leaf of another kind is deleted and added. Kernels
//! without `netem` or `red` (the error is "Specified qdisc kind is
//! unknown") are detected on first use: the missing part is logged as an
//! error naming the remedy (`--backend shaper`) and the rest still applies.
//!
//! Commands run through [`CommandRunner`], so tests check the exact
//! command lines without touching the system.

use std::process::Command;

use crate::backend::{BackendError, LinkBackend};
use crate::params::{Direction, PipeParams};

/// The rate used when the bandwidth is unlimited (kbit/s): 10 Gbit/s.
pub const UNLIMITED_KBPS: u64 = 10_000_000;

/// The packet size used to turn packet counts into bytes for qdiscs that
/// only count bytes (RED) and bytes into packets for netem.
pub const TYPICAL_PACKET_BYTES: u32 = 1500;

/// Runs one external command.
pub trait CommandRunner: Send {
    /// Runs `argv`; `Err` carries the exit status and standard error.
    fn run(&mut self, argv: &[String]) -> Result<(), String>;
}

/// Runs commands for real.
#[derive(Debug, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&mut self, argv: &[String]) -> Result<(), String> {
        run_command(argv)
    }
}

/// Runs `argv` and waits; `Err` carries the exit status and standard
/// error, or why it could not run.
pub fn run_command(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command line")?;
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e} (is iproute2 installed?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The kind of leaf qdisc under class 1:1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    Netem,
    Pfifo,
    Bfifo,
    Red,
}

impl Leaf {
    fn name(self) -> &'static str {
        match self {
            Leaf::Netem => "netem",
            Leaf::Pfifo => "pfifo",
            Leaf::Bfifo => "bfifo",
            Leaf::Red => "red",
        }
    }
}

/// Shapes the egress of one interface with `tc`.
pub struct TcBackend {
    iface: String,
    netns: Option<String>,
    runner: Box<dyn CommandRunner>,
    root_installed: bool,
    leaf: Option<Leaf>,
    netem_missing: bool,
    red_missing: bool,
}

impl TcBackend {
    /// Shapes `iface` in the current network namespace.
    pub fn new(iface: &str) -> TcBackend {
        TcBackend::with_runner(iface, None, Box::new(SystemRunner))
    }

    /// Shapes `iface` in the named namespace (`tc -n NS`, `ip -n NS`), or
    /// the current one, running commands through `runner`.
    pub fn with_runner(
        iface: &str,
        netns: Option<&str>,
        runner: Box<dyn CommandRunner>,
    ) -> TcBackend {
        TcBackend {
            iface: iface.to_string(),
            netns: netns.map(str::to_string),
            runner,
            root_installed: false,
            leaf: None,
            netem_missing: false,
            red_missing: false,
        }
    }

    /// False once the kernel refused `netem` (delay and loss are then not
    /// applied by this backend).
    pub fn netem_available(&self) -> bool {
        !self.netem_missing
    }

    /// False once the kernel refused `red`.
    pub fn red_available(&self) -> bool {
        !self.red_missing
    }

    fn command(&self, program: &str, words: &[&str]) -> Vec<String> {
        let mut argv = vec![program.to_string()];
        if let Some(ns) = &self.netns {
            argv.push("-n".into());
            argv.push(ns.clone());
        }
        argv.extend(words.iter().map(|w| w.to_string()));
        argv
    }

    fn run(&mut self, argv: Vec<String>) -> Result<(), BackendError> {
        tracing::debug!(command = %argv.join(" "), "running");
        self.runner
            .run(&argv)
            .map_err(|detail| BackendError::Command {
                command: argv.join(" "),
                detail,
            })
    }

    /// The leaf kind and its arguments for `params`, given what the kernel
    /// is known to lack.
    fn leaf_for(&self, params: &PipeParams) -> (Leaf, Vec<String>) {
        let queue = &params.queue;
        let wants_netem = !params.delay.is_zero() || params.plr > 0.0;
        if wants_netem && !self.netem_missing {
            let packets = if queue.in_bytes {
                (queue.limit / TYPICAL_PACKET_BYTES).max(1)
            } else {
                queue.limit
            };
            let mut args = vec![
                "delay".to_string(),
                format!("{}us", params.delay.as_micros()),
            ];
            if params.plr > 0.0 {
                args.push("loss".into());
                args.push(format!("{}%", trim_float(params.plr * 100.0)));
            }
            args.push("limit".into());
            args.push(packets.to_string());
            return (Leaf::Netem, args);
        }
        if let Some(red) = queue.red
            && !self.red_missing
        {
            let avpkt = TYPICAL_PACKET_BYTES;
            let to_bytes = |n: u32| {
                if red.thresholds_in_bytes {
                    n
                } else {
                    n.saturating_mul(avpkt)
                }
            };
            let min = to_bytes(red.min_thresh).max(avpkt);
            let max = to_bytes(red.max_thresh).max(min + avpkt);
            let limit = if queue.in_bytes {
                queue.limit
            } else {
                queue.limit.saturating_mul(avpkt)
            }
            .max(max.saturating_mul(2));
            let burst = ((2 * u64::from(min) + u64::from(max)) / (3 * u64::from(avpkt))).max(1);
            let bandwidth = match params.bandwidth_kbps {
                0 => UNLIMITED_KBPS,
                b => b,
            };
            let args = vec![
                "limit".into(),
                limit.to_string(),
                "min".into(),
                min.to_string(),
                "max".into(),
                max.to_string(),
                "avpkt".into(),
                avpkt.to_string(),
                "burst".into(),
                burst.to_string(),
                "probability".into(),
                trim_float(1.0 / f64::from(red.linterm.max(1))),
                "bandwidth".into(),
                format!("{bandwidth}kbit"),
            ];
            return (Leaf::Red, args);
        }
        if queue.in_bytes {
            (Leaf::Bfifo, vec!["limit".into(), queue.limit.to_string()])
        } else {
            (Leaf::Pfifo, vec!["limit".into(), queue.limit.to_string()])
        }
    }

    fn install_leaf(&mut self, leaf: Leaf, args: &[String]) -> Result<(), BackendError> {
        let iface = self.iface.clone();
        let mut words: Vec<&str> = vec!["qdisc"];
        let verb = match self.leaf {
            Some(current) if current == leaf => "change",
            Some(_) => {
                let del = self.command(
                    "tc",
                    &[
                        "qdisc", "del", "dev", &iface, "parent", "1:1", "handle", "10:",
                    ],
                );
                self.run(del)?;
                self.leaf = None;
                "add"
            }
            None => "add",
        };
        words.extend([
            verb,
            "dev",
            &iface,
            "parent",
            "1:1",
            "handle",
            "10:",
            leaf.name(),
        ]);
        words.extend(args.iter().map(String::as_str));
        let argv = self.command("tc", &words);
        self.run(argv)?;
        self.leaf = Some(leaf);
        Ok(())
    }
}

/// A float without trailing zeros (`20`, `0.5`, `2.5`).
fn trim_float(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

fn kind_unknown(error: &BackendError) -> bool {
    matches!(error, BackendError::Command { detail, .. } if detail.contains("kind is unknown") || detail.contains("Unknown qdisc"))
}

impl LinkBackend for TcBackend {
    fn apply(&mut self, direction: Direction, params: &PipeParams) -> Result<(), BackendError> {
        if direction != Direction::AtoB {
            return Err(BackendError::Unsupported(format!(
                "the tc backend shapes only the egress of {} (pipe0); {direction} needs --backend shaper",
                self.iface
            )));
        }
        let iface = self.iface.clone();
        if !self.root_installed {
            let argv = self.command(
                "tc",
                &[
                    "qdisc", "replace", "dev", &iface, "root", "handle", "1:", "htb", "default",
                    "1",
                ],
            );
            self.run(argv)?;
            self.root_installed = true;
            self.leaf = None;
        }
        let rate = format!(
            "{}kbit",
            match params.bandwidth_kbps {
                0 => UNLIMITED_KBPS,
                b => b,
            }
        );
        let argv = self.command(
            "tc",
            &[
                "class", "replace", "dev", &iface, "parent", "1:", "classid", "1:1", "htb", "rate",
                &rate, "ceil", &rate,
            ],
        );
        self.run(argv)?;
        loop {
            let (leaf, args) = self.leaf_for(params);
            match self.install_leaf(leaf, &args) {
                Err(e) if leaf == Leaf::Netem && kind_unknown(&e) => {
                    self.netem_missing = true;
                    tracing::error!(
                        iface = %iface,
                        "this kernel has no netem qdisc, so the tc backend cannot apply delay {:?} or loss {} here; run delay-agent --backend shaper for delay and loss",
                        params.delay, params.plr
                    );
                }
                Err(e) if leaf == Leaf::Red && kind_unknown(&e) => {
                    self.red_missing = true;
                    tracing::error!(
                        iface = %iface,
                        "this kernel has no red qdisc, so the tc backend uses a DropTail queue of the same limit; run delay-agent --backend shaper for RED/GRED"
                    );
                }
                other => break other,
            }
        }?;
        if params.queue.red.is_some_and(|r| r.gentle) && self.leaf == Some(Leaf::Red) {
            tracing::warn!(iface = %iface, "Linux red has no gentle mode; GRED runs as plain RED with the tc backend");
        }
        Ok(())
    }

    fn set_up(&mut self, up: bool) -> Result<(), BackendError> {
        let iface = self.iface.clone();
        let state = if up { "up" } else { "down" };
        let argv = self.command("ip", &["link", "set", "dev", &iface, state]);
        self.run(argv)
    }

    fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!("tc egress of {} in namespace {ns}", self.iface),
            None => format!("tc egress of {}", self.iface),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;
    use crate::params::{QueueParams, RedParams};

    /// Records command lines; fails those whose qdisc kind is in `missing`.
    #[derive(Clone, Default)]
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
        missing: Vec<&'static str>,
    }

    impl CommandRunner for Recorder {
        fn run(&mut self, argv: &[String]) -> Result<(), String> {
            let line = argv.join(" ");
            self.log.lock().push(line.clone());
            if argv.iter().any(|w| self.missing.contains(&w.as_str())) && line.contains(" add ") {
                return Err("exit status: 2: Error: Specified qdisc kind is unknown.".into());
            }
            Ok(())
        }
    }

    fn backend(missing: Vec<&'static str>) -> (TcBackend, Arc<Mutex<Vec<String>>>) {
        let recorder = Recorder {
            missing,
            ..Recorder::default()
        };
        let log = recorder.log.clone();
        (
            TcBackend::with_runner("eth1", None, Box::new(recorder)),
            log,
        )
    }

    fn take(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        std::mem::take(&mut *log.lock())
    }

    #[test]
    fn bandwidth_only_builds_htb_with_a_pfifo_leaf_then_changes_in_place() {
        let (mut tc, log) = backend(vec![]);
        let params = PipeParams {
            bandwidth_kbps: 1000,
            ..PipeParams::default()
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log),
            vec![
                "tc qdisc replace dev eth1 root handle 1: htb default 1",
                "tc class replace dev eth1 parent 1: classid 1:1 htb rate 1000kbit ceil 1000kbit",
                "tc qdisc add dev eth1 parent 1:1 handle 10: pfifo limit 50",
            ]
        );
        let params = PipeParams {
            bandwidth_kbps: 0,
            queue: QueueParams {
                limit: 20,
                ..QueueParams::default()
            },
            ..params
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log),
            vec![
                "tc class replace dev eth1 parent 1: classid 1:1 htb rate 10000000kbit ceil 10000000kbit",
                "tc qdisc change dev eth1 parent 1:1 handle 10: pfifo limit 20",
            ]
        );
    }

    #[test]
    fn delay_and_loss_use_netem_and_a_kind_change_replaces_the_leaf() {
        let (mut tc, log) = backend(vec![]);
        tc.apply(Direction::AtoB, &PipeParams::default()).unwrap();
        take(&log);
        let params = PipeParams {
            bandwidth_kbps: 5000,
            delay: Duration::from_millis(50),
            plr: 0.2,
            ..PipeParams::default()
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log),
            vec![
                "tc class replace dev eth1 parent 1: classid 1:1 htb rate 5000kbit ceil 5000kbit",
                "tc qdisc del dev eth1 parent 1:1 handle 10:",
                "tc qdisc add dev eth1 parent 1:1 handle 10: netem delay 50000us loss 20% limit 50",
            ]
        );
        let params = PipeParams {
            plr: 0.0,
            delay: Duration::from_micros(2500),
            ..params
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log)[1],
            "tc qdisc change dev eth1 parent 1:1 handle 10: netem delay 2500us limit 50"
        );
    }

    #[test]
    fn byte_queues_and_red() {
        let (mut tc, log) = backend(vec![]);
        let params = PipeParams {
            queue: QueueParams {
                limit: 30000,
                in_bytes: true,
                red: None,
            },
            ..PipeParams::default()
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log)[2],
            "tc qdisc add dev eth1 parent 1:1 handle 10: bfifo limit 30000"
        );
        let params = PipeParams {
            bandwidth_kbps: 1000,
            queue: QueueParams {
                limit: 50,
                in_bytes: false,
                red: Some(RedParams::default()),
            },
            ..PipeParams::default()
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log)[1..],
            [
                "tc qdisc del dev eth1 parent 1:1 handle 10:",
                "tc qdisc add dev eth1 parent 1:1 handle 10: red limit 75000 min 7500 max 22500 avpkt 1500 burst 8 probability 0.1 bandwidth 1000kbit",
            ]
        );
    }

    #[test]
    fn missing_netem_and_red_fall_back_to_droptail_and_are_remembered() {
        let (mut tc, log) = backend(vec!["netem", "red"]);
        let params = PipeParams {
            delay: Duration::from_millis(10),
            queue: QueueParams {
                red: Some(RedParams::default()),
                ..QueueParams::default()
            },
            ..PipeParams::default()
        };
        tc.apply(Direction::AtoB, &params).unwrap();
        assert!(!tc.netem_available());
        assert!(!tc.red_available());
        let lines = take(&log);
        assert_eq!(
            lines.last().unwrap(),
            "tc qdisc add dev eth1 parent 1:1 handle 10: pfifo limit 50"
        );
        tc.apply(Direction::AtoB, &params).unwrap();
        assert_eq!(
            take(&log)[1],
            "tc qdisc change dev eth1 parent 1:1 handle 10: pfifo limit 50"
        );
    }

    #[test]
    fn up_down_and_namespaces() {
        let recorder = Recorder::default();
        let log = recorder.log.clone();
        let mut tc = TcBackend::with_runner("v0", Some("tbe1a"), Box::new(recorder));
        tc.set_up(false).unwrap();
        tc.set_up(true).unwrap();
        tc.apply(Direction::AtoB, &PipeParams::default()).unwrap();
        assert_eq!(
            take(&log)[..3],
            [
                "ip -n tbe1a link set dev v0 down",
                "ip -n tbe1a link set dev v0 up",
                "tc -n tbe1a qdisc replace dev v0 root handle 1: htb default 1",
            ]
        );
        assert!(tc.apply(Direction::BtoA, &PipeParams::default()).is_err());
    }
}
