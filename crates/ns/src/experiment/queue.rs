//! Link queues: the queue type a link or LAN is created with and the NS
//! `Queue` object's settings, as Emulab recorded them in `virt_lans`.
//!
//! Every member of a link or LAN has one outgoing queue: the queue packets
//! wait in on their way from the member's node into the link (on a delay
//! node, the pipe in that direction). On a duplex link the NS file reaches
//! it as `[$ns link $from $to] queue`, named `<link>-<from>`, and Emulab's
//! front end wrote its settings into the row of the member `from` only (the
//! first node's row held the first-to-second queue, the second node's row
//! the reverse; docs/emulab-model.md §8 lists the `virt_lans.q_*` columns). We do the
//! same, so a setting lands in exactly one row.
//!
//! The settings start at Emulab's defaults (the `DEFAULT_Q_*` constants of
//! [`VirtLanMember`]); the queue type sets the two flags Emulab derived from
//! it: `RED` sets `q_red`, `GRED` sets `q_red` and `q_gentle`, `DropTail`
//! sets neither. `q_droptail` (NS `drop-tail_`, what a full queue does) is
//! on for every type, RED included, exactly as Emulab had it: it is RED's
//! overflow behaviour, not the queue type.
//!
//! Values are checked where they are written, with the types of Emulab's
//! columns: whole numbers (at most `i32::MAX`, Emulab's `int`) for lengths,
//! thresholds, `linterm_` (at least 1: the drop probability is its inverse)
//! and the mean packet size; a fraction in (0, 1] for `q_weight_`; `0`,
//! `1`, `true` or `false` for the flags (Emulab turned `true`/`false` into
//! 1/0 for some flags and stored the raw word for others; we do it for all).
//! Once the file has run, a RED queue must have `thresh_` below
//! `maxthresh_`, since a delay node cannot be configured otherwise.

use tbevents_store::model::VirtLanMember;

use crate::error::{KindResult, NsError, NsErrorKind, NsResult};
use crate::units;

/// Largest whole-number queue value (Emulab's `virt_lans` columns are `int`).
const MAX_QUEUE_INTEGER: u64 = i32::MAX as u64;

/// The settings a `Queue` object accepts, for error messages.
const SETTABLE: &str = "limit_, queue-in-bytes_, maxthresh_, thresh_, linterm_, q_weight_, mean_pktsize_, bytes_, red_, gentle_, drop-tail_, setbit_, wait_";

/// The settings a `$ns at` queue event accepts (those Emulab's delay agent
/// can change at run time), for error messages.
const EVENT_SETTABLE: &str = "limit_, queue-in-bytes_, maxthresh_, thresh_, linterm_, q_weight_";

/// The queue discipline a link or LAN is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueType {
    /// First in, first out; drops when full.
    DropTail,
    /// Random Early Detection.
    Red,
    /// Gentle RED.
    Gred,
}

impl QueueType {
    /// The queue type argument of `duplex-link`: `DropTail`, `RED` or `GRED`.
    pub(crate) fn from_link_argument(text: &str) -> KindResult<Self> {
        match text {
            "DropTail" => Ok(QueueType::DropTail),
            "RED" => Ok(QueueType::Red),
            "GRED" => Ok(QueueType::Gred),
            _ => Err(NsErrorKind::InvalidValue {
                what: "queue type".into(),
                value: text.to_string(),
                reason: "use DropTail, RED or GRED".into(),
            }),
        }
    }

    /// The queue type of `make-lan`, from ns-2's optional arguments after
    /// the delay: `LL`, `Queue/DropTail|Queue/RED`, the MAC, `Channel`,
    /// `Phy/WiredPhy`. Emulab LANs are switched Ethernet, so the link
    /// layer, an Ethernet MAC (`Mac`, `Mac/802_3`, `Mac/Csma/Cd`), the
    /// channel and the physical layer change nothing and are ignored; the
    /// queue class is kept. Anything else (a wireless MAC, another queue
    /// class) is refused, so nothing the file asks for is silently lost.
    pub(crate) fn from_make_lan_arguments(arguments: &[&str]) -> KindResult<Self> {
        let mut queue_type = QueueType::DropTail;
        for (position, &value) in arguments.iter().enumerate() {
            let (what, accepted, reason) = match position {
                0 => ("make-lan link-layer type", value == "LL", "write LL"),
                1 => match value {
                    "Queue/DropTail" => {
                        queue_type = QueueType::DropTail;
                        continue;
                    }
                    "Queue/RED" => {
                        queue_type = QueueType::Red;
                        continue;
                    }
                    _ => (
                        "make-lan queue type",
                        false,
                        "use Queue/DropTail or Queue/RED",
                    ),
                },
                2 => (
                    "make-lan MAC type",
                    matches!(
                        value.to_ascii_lowercase().as_str(),
                        "mac" | "mac/802_3" | "mac/csma/cd"
                    ),
                    "LANs are switched Ethernet: write Mac, Mac/802_3 or Mac/Csma/Cd, or leave it out",
                ),
                3 => ("make-lan channel type", value == "Channel", "write Channel"),
                4 => (
                    "make-lan physical layer type",
                    value == "Phy/WiredPhy",
                    "write Phy/WiredPhy",
                ),
                _ => (
                    "make-lan argument",
                    false,
                    "make-lan takes at most the node list, bandwidth, delay, LL, queue, MAC, channel and physical layer types",
                ),
            };
            if !accepted {
                return Err(NsErrorKind::InvalidValue {
                    what: what.into(),
                    value: value.to_string(),
                    reason: reason.into(),
                });
            }
        }
        Ok(queue_type)
    }
}

/// One settable queue parameter, by its NS name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    Limit,
    MaxThresh,
    Thresh,
    Weight,
    Linterm,
    QueueInBytes,
    Bytes,
    MeanPacketSize,
    Wait,
    SetBit,
    DropTail,
    Red,
    Gentle,
}

/// A checked value for a [`Param`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Integer(u32),
    Fraction(f64),
    Flag(bool),
}

impl Param {
    fn from_ns_name(name: &str) -> Option<Self> {
        Some(match name {
            "limit_" => Param::Limit,
            "maxthresh_" => Param::MaxThresh,
            "thresh_" => Param::Thresh,
            "q_weight_" => Param::Weight,
            "linterm_" => Param::Linterm,
            "queue-in-bytes_" => Param::QueueInBytes,
            "bytes_" => Param::Bytes,
            "mean_pktsize_" => Param::MeanPacketSize,
            "wait_" => Param::Wait,
            "setbit_" => Param::SetBit,
            "drop-tail_" => Param::DropTail,
            "red_" => Param::Red,
            "gentle_" => Param::Gentle,
            _ => return None,
        })
    }

    /// Checks `text` as this parameter's value (`name` is the NS name, for
    /// messages).
    fn parse(self, name: &str, text: &str) -> KindResult<Value> {
        let what = format!("queue {name}");
        let integer = |min: u64| {
            units::parse_integer_in(&what, text, min, MAX_QUEUE_INTEGER)
                .map(|v| Value::Integer(u32::try_from(v).unwrap_or(u32::MAX)))
        };
        match self {
            Param::Limit | Param::Linterm | Param::MeanPacketSize => integer(1),
            Param::MaxThresh | Param::Thresh => integer(0),
            Param::Weight => {
                let weight = units::parse_plain_number(&what, text)?;
                if weight > 0.0 && weight <= 1.0 {
                    Ok(Value::Fraction(weight))
                } else {
                    Err(NsErrorKind::InvalidValue {
                        what,
                        value: text.to_string(),
                        reason:
                            "the RED queue weight must be more than 0 and at most 1, such as 0.002"
                                .into(),
                    })
                }
            }
            Param::QueueInBytes
            | Param::Bytes
            | Param::Wait
            | Param::SetBit
            | Param::DropTail
            | Param::Red
            | Param::Gentle => match text {
                "1" | "true" => Ok(Value::Flag(true)),
                "0" | "false" => Ok(Value::Flag(false)),
                _ => Err(NsErrorKind::InvalidValue {
                    what,
                    value: text.to_string(),
                    reason: "use 0, 1, true or false".into(),
                }),
            },
        }
    }

    /// The ARGS key Emulab's delay agent reads for a run-time change, for
    /// the parameters it can change.
    fn event_key(self) -> Option<&'static str> {
        Some(match self {
            Param::Limit => "LIMIT",
            Param::QueueInBytes => "QUEUE-IN-BYTES",
            Param::MaxThresh => "MAXTHRESH",
            Param::Thresh => "THRESH",
            Param::Linterm => "LINTERM",
            Param::Weight => "Q_WEIGHT",
            _ => return None,
        })
    }
}

/// One queue's settings, Emulab's defaults until the file changes them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QueueSettings {
    limit: u32,
    maxthresh: u32,
    minthresh: u32,
    weight: f64,
    linterm: u32,
    in_bytes: bool,
    bytes: bool,
    mean_packet_size: u32,
    wait: bool,
    setbit: bool,
    droptail: bool,
    red: bool,
    gentle: bool,
    /// Line of the last `$queue set` that changed these settings, for
    /// errors found once the whole file has run.
    last_set_line: Option<u32>,
}

impl QueueSettings {
    /// A fresh queue of `queue_type` with Emulab's defaults.
    pub(crate) fn new(queue_type: QueueType) -> Self {
        QueueSettings {
            limit: VirtLanMember::DEFAULT_Q_LIMIT,
            maxthresh: VirtLanMember::DEFAULT_Q_MAXTHRESH,
            minthresh: VirtLanMember::DEFAULT_Q_MINTHRESH,
            weight: VirtLanMember::DEFAULT_Q_WEIGHT,
            linterm: VirtLanMember::DEFAULT_Q_LINTERM,
            in_bytes: false,
            bytes: false,
            mean_packet_size: VirtLanMember::DEFAULT_Q_MEANPSIZE,
            wait: VirtLanMember::DEFAULT_Q_WAIT,
            setbit: false,
            droptail: VirtLanMember::DEFAULT_Q_DROPTAIL,
            red: matches!(queue_type, QueueType::Red | QueueType::Gred),
            gentle: queue_type == QueueType::Gred,
            last_set_line: None,
        }
    }

    /// True for a RED (or gentle RED) queue, which needs a delay node.
    pub(crate) fn is_red(&self) -> bool {
        self.red
    }

    /// `$queue set PARAM_ VALUE` on line `line`.
    pub(crate) fn set(&mut self, param: &str, value: &str, line: u32) -> KindResult<()> {
        let which = Param::from_ns_name(param).ok_or_else(|| {
            NsErrorKind::Unsupported(format!("queue parameter '{param}' (supported: {SETTABLE})"))
        })?;
        match (which, which.parse(param, value)?) {
            (Param::Limit, Value::Integer(v)) => self.limit = v,
            (Param::MaxThresh, Value::Integer(v)) => self.maxthresh = v,
            (Param::Thresh, Value::Integer(v)) => self.minthresh = v,
            (Param::Linterm, Value::Integer(v)) => self.linterm = v,
            (Param::MeanPacketSize, Value::Integer(v)) => self.mean_packet_size = v,
            (Param::Weight, Value::Fraction(v)) => self.weight = v,
            (Param::QueueInBytes, Value::Flag(v)) => self.in_bytes = v,
            (Param::Bytes, Value::Flag(v)) => self.bytes = v,
            (Param::Wait, Value::Flag(v)) => self.wait = v,
            (Param::SetBit, Value::Flag(v)) => self.setbit = v,
            (Param::DropTail, Value::Flag(v)) => self.droptail = v,
            (Param::Red, Value::Flag(v)) => self.red = v,
            (Param::Gentle, Value::Flag(v)) => self.gentle = v,
            (other, parsed) => {
                return Err(NsErrorKind::Invalid(format!(
                    "internal: {other:?} parsed as {parsed:?}"
                )));
            }
        }
        self.last_set_line = Some(line);
        Ok(())
    }

    /// The whole-file check for queue `name`: a RED queue's minimum
    /// threshold must be below its maximum. The error is reported at the
    /// queue's last `set`, else at `created_line` (its link's creation).
    pub(crate) fn check(&self, name: &str, created_line: u32) -> NsResult<()> {
        if self.red && self.minthresh >= self.maxthresh {
            return Err(NsError::at(
                self.last_set_line.unwrap_or(created_line),
                NsErrorKind::Invalid(format!(
                    "queue '{name}' is RED but its thresh_ ({}) is not below its maxthresh_ ({}); set thresh_ lower than maxthresh_",
                    self.minthresh, self.maxthresh
                )),
            ));
        }
        Ok(())
    }

    /// Copies the settings into a `virt_lans` row.
    pub(crate) fn write_to(&self, row: &mut VirtLanMember) {
        row.q_limit = self.limit;
        row.q_maxthresh = self.maxthresh;
        row.q_minthresh = self.minthresh;
        row.q_weight = self.weight;
        row.q_linterm = self.linterm;
        row.q_qinbytes = self.in_bytes;
        row.q_bytes = self.bytes;
        row.q_meanpsize = self.mean_packet_size;
        row.q_wait = self.wait;
        row.q_setbit = self.setbit;
        row.q_droptail = self.droptail;
        row.q_red = self.red;
        row.q_gentle = self.gentle;
    }
}

/// Checks a `$ns at` queue event `set PARAM_ VALUE` and returns the ARGS
/// key for it (`LIMIT`, `QUEUE-IN-BYTES`, ...). The value is checked as a
/// static setting would be, except that flags must be `0` or `1`: the ARGS
/// carry the text as written, and the delay agent reads it as a number.
pub(crate) fn event_key(param: &str, value: &str) -> KindResult<&'static str> {
    let Some((which, key)) =
        Param::from_ns_name(param).and_then(|p| p.event_key().map(|key| (p, key)))
    else {
        return Err(NsErrorKind::Unsupported(format!(
            "queue parameter '{param}' in an event (supported: {EVENT_SETTABLE})"
        )));
    };
    if matches!(which.parse(param, value)?, Value::Flag(_)) && !matches!(value, "0" | "1") {
        return Err(NsErrorKind::InvalidValue {
            what: format!("queue {param}"),
            value: value.to_string(),
            reason: "in an event write 0 or 1".into(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(settings: &QueueSettings) -> VirtLanMember {
        let mut row = VirtLanMember {
            q_limit: 0,
            q_droptail: false,
            ..VirtLanMember::default()
        };
        settings.write_to(&mut row);
        row
    }

    #[test]
    fn queue_types_set_emulabs_flags() {
        let droptail = row(&QueueSettings::new(QueueType::DropTail));
        assert_eq!(droptail, VirtLanMember::default());
        let red = row(&QueueSettings::new(QueueType::Red));
        assert!(red.q_red && !red.q_gentle && red.q_droptail);
        let gred = row(&QueueSettings::new(QueueType::Gred));
        assert!(gred.q_red && gred.q_gentle && gred.q_droptail);
    }

    #[test]
    fn every_setting_reaches_its_column() {
        let mut queue = QueueSettings::new(QueueType::DropTail);
        for (param, value) in [
            ("limit_", "70"),
            ("maxthresh_", "30"),
            ("thresh_", "0"),
            ("q_weight_", "1"),
            ("linterm_", "4"),
            ("queue-in-bytes_", "true"),
            ("bytes_", "1"),
            ("mean_pktsize_", "1000"),
            ("wait_", "false"),
            ("setbit_", "1"),
            ("drop-tail_", "0"),
            ("red_", "1"),
            ("gentle_", "true"),
        ] {
            queue.set(param, value, 9).expect(param);
        }
        let expected = VirtLanMember {
            q_limit: 70,
            q_maxthresh: 30,
            q_minthresh: 0,
            q_weight: 1.0,
            q_linterm: 4,
            q_qinbytes: true,
            q_bytes: true,
            q_meanpsize: 1000,
            q_wait: false,
            q_setbit: true,
            q_droptail: false,
            q_red: true,
            q_gentle: true,
            ..VirtLanMember::default()
        };
        assert_eq!(row(&queue), expected);
        assert!(queue.check("l-a", 1).is_ok());
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let mut queue = QueueSettings::new(QueueType::Red);
        let before = queue.clone();
        for (param, value) in [
            ("limit_", "0"),
            ("limit_", "2147483648"),
            ("limit_", "12.5"),
            ("maxthresh_", "-1"),
            ("thresh_", "x"),
            ("linterm_", "0"),
            ("mean_pktsize_", "0"),
            ("q_weight_", "0"),
            ("q_weight_", "1.5"),
            ("q_weight_", "1e400"),
            ("wait_", "yes"),
            ("red_", "2"),
        ] {
            let err = queue.set(param, value, 3).expect_err(value);
            assert!(
                matches!(&err, NsErrorKind::InvalidValue { what, .. } if what.contains(param)),
                "{param} {value}: {err:?}"
            );
        }
        assert!(matches!(
            queue.set("adaptive_", "1", 3),
            Err(NsErrorKind::Unsupported(m)) if m.contains("adaptive_") && m.contains("gentle_")
        ));
        assert_eq!(queue, before);
    }

    #[test]
    fn red_thresholds_must_be_ordered() {
        let mut queue = QueueSettings::new(QueueType::Red);
        queue.set("thresh_", "15", 7).expect("thresh");
        let err = queue.check("link0-a", 2).expect_err("15 is not below 15");
        assert_eq!(err.line(), 7);
        assert!(err.to_string().contains("link0-a"), "{err}");
        // The same values on a DropTail queue are not used, so not checked.
        let mut droptail = QueueSettings::new(QueueType::DropTail);
        droptail.set("thresh_", "15", 7).expect("thresh");
        assert!(droptail.check("link0-a", 2).is_ok());
        // With no set, the creation line is reported.
        let mut red = QueueSettings::new(QueueType::DropTail);
        red.minthresh = 20;
        red.red = true;
        assert_eq!(red.check("q", 2).map_err(|e| e.line()), Err(2));
    }

    #[test]
    fn make_lan_arguments() {
        let ok = |args: &[&str]| QueueType::from_make_lan_arguments(args);
        assert_eq!(ok(&[]), Ok(QueueType::DropTail));
        assert_eq!(ok(&["LL", "Queue/RED"]), Ok(QueueType::Red));
        assert_eq!(
            ok(&[
                "LL",
                "Queue/DropTail",
                "MAC/Csma/Cd",
                "Channel",
                "Phy/WiredPhy"
            ]),
            Ok(QueueType::DropTail)
        );
        for bad in [
            &["LL/Sat"][..],
            &["LL", "Queue/SFQ"],
            &["LL", "Queue/DropTail", "Mac/802_11"],
            &["LL", "Queue/DropTail", "Mac", "Channel/WirelessChannel"],
            &["LL", "Queue/DropTail", "Mac", "Channel", "Phy/WirelessPhy"],
            &[
                "LL",
                "Queue/DropTail",
                "Mac",
                "Channel",
                "Phy/WiredPhy",
                "x",
            ],
        ] {
            assert!(
                matches!(ok(bad), Err(NsErrorKind::InvalidValue { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn event_keys_and_values() {
        assert_eq!(event_key("limit_", "30"), Ok("LIMIT"));
        assert_eq!(event_key("q_weight_", "0.004"), Ok("Q_WEIGHT"));
        assert_eq!(event_key("queue-in-bytes_", "1"), Ok("QUEUE-IN-BYTES"));
        assert!(event_key("queue-in-bytes_", "true").is_err());
        assert!(event_key("linterm_", "0").is_err());
        assert!(matches!(
            event_key("gentle_", "1"),
            Err(NsErrorKind::Unsupported(m)) if m.contains("in an event")
        ));
    }
}
