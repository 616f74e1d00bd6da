//! `$ns at TIME "<event>[;<event>...]"`: the static events of docs/emulab-model.md §9.
//!
//! Each `;`-separated event is a Tcl list `OBJECT COMMAND ARGS...`; the
//! object's class decides the object type, event type and ARGS string,
//! exactly as Emulab's front end wrote them to `eventlist`:
//!
//! | class | forms |
//! |---|---|
//! | Link, Lan | `up`, `down` (LINK UP/DOWN), `bandwidth V` (MODIFY `BANDWIDTH=<kbps>`), `delay V` (MODIFY `DELAY=V`), `plr P` (MODIFY `PLR=P`) |
//! | Queue | `set limit_\|queue-in-bytes_\|maxthresh_\|thresh_\|linterm_\|q_weight_ V` (LINK MODIFY `LIMIT=V` ...) |
//! | Program | `start` (START `COMMAND=<command>`), `stop`, `kill SIG` (KILL `SIGNAL=SIG`) |
//! | CBR | `start` (TRAFGEN START `PACKETSIZE=.. RATE=.. INTERVAL=.. IPTOS=..`), `stop`, `reset`, `set packetSize_\|rate_\|interval_\|iptos_ V` (MODIFY) |
//! | Simulator | `halt`/`terminate` (SIMULATOR HALT), `swapout` (SIMULATOR SWAPOUT) |
//! | EventGroup | the event once per member, with the member's name |
//!
//! Arguments that depend on an object's settings (a program's command, a
//! CBR's packet size and rate) are taken as they stand when the `$ns at`
//! line runs, just as Tcl evaluated them there. The target's node is
//! resolved at the end of the file, so `$ns at` may come before
//! `$ns attach-agent`.
//!
//! Deliberate differences from the original (see the crate docs): an event
//! group no longer swallows the events after it in the same string; `$ns
//! bandwidth`, which Emulab turned into a row no agent could receive, is an
//! error; every event on a link or queue marks the link `mustdelay` (an
//! unshaped link cannot change), not only `plr`; and values are checked
//! here (a malformed delay, loss rate or packet size is an error at the line
//! that wrote it rather than an agent's warning at run time).

use super::{Experiment, ObjId, ObjKind};
use crate::error::{KindResult, NsError, NsErrorKind, NsResult, usage};
use crate::experiment::{Arg, unknown_object};
use crate::limits::{MAX_EVENT_TEXT_BYTES, MAX_EVENTS};
use crate::list;
use crate::units;

/// Object type names (docs/emulab-model.md §7).
pub(crate) const OBJ_LINK: &str = "LINK";
pub(crate) const OBJ_TRAFGEN: &str = "TRAFGEN";
pub(crate) const OBJ_PROGRAM: &str = "PROGRAM";
pub(crate) const OBJ_SIMULATOR: &str = "SIMULATOR";
pub(crate) const OBJ_LINKTEST: &str = "LINKTEST";
pub(crate) const OBJ_SLOTHD: &str = "SLOTHD";

/// Largest packet size the trafgen agent accepts.
const MAX_PACKET_SIZE: u64 = 65536;

/// A `$ns at` event, complete except for the target's node, which is known
/// only when the whole file has run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PendingEvent {
    pub time: f64,
    /// The object the event goes to (a group's member, never the group).
    pub target: ObjId,
    pub objtype: &'static str,
    pub eventtype: &'static str,
    pub arguments: String,
    pub atstring: String,
    /// Line of the `$ns at`.
    pub line: u32,
}

/// Checks a CBR packet size: a whole number of bytes from 1 to 65536.
pub(crate) fn check_packet_size(value: &str) -> KindResult<u64> {
    units::parse_integer_in("CBR packetSize_", value, 1, MAX_PACKET_SIZE)
}

/// Checks an IP type-of-service byte.
pub(crate) fn check_iptos(value: &str) -> KindResult<u64> {
    units::parse_integer_in("CBR iptos_", value, 0, 255)
}

impl Experiment {
    /// `$ns at TIME EVENTS`.
    pub(super) fn ns_at(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        let ns = self.simulator_name().to_string();
        let [time, text] = args else {
            return Err(NsError::at(
                line,
                usage(&format!(
                    "${ns} at TIME \"OBJECT EVENT ?ARGS?[; OBJECT EVENT ...]\""
                )),
            ));
        };
        let time = units::parse_time(&time.value).map_err(|k| NsError::at(line, k))?;
        let mut any = false;
        for piece in text.value.split(';') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            any = true;
            let events = self
                .translate(piece, time, line)
                .map_err(|k| NsError::at(line, k))?;
            for event in events {
                if self.events.len() >= MAX_EVENTS {
                    return Err(NsError::at(
                        line,
                        NsErrorKind::TooManyEvents { limit: MAX_EVENTS },
                    ));
                }
                self.events.push(event);
            }
        }
        if !any {
            return Err(NsError::at(
                line,
                NsErrorKind::Invalid(format!("${ns} at {time} has no event to schedule")),
            ));
        }
        Ok(String::new())
    }

    /// Turns one event's text into eventlist rows.
    fn translate(&mut self, text: &str, time: f64, line: u32) -> KindResult<Vec<PendingEvent>> {
        if text.len() > MAX_EVENT_TEXT_BYTES {
            return Err(NsErrorKind::LimitExceeded {
                what: "length of one event's text in bytes".into(),
                limit: MAX_EVENT_TEXT_BYTES as u64,
            });
        }
        let words =
            list::split(text).map_err(|m| NsErrorKind::Syntax(format!("event \"{text}\": {m}")))?;
        let Some((object, command)) = words.split_first() else {
            return Err(NsErrorKind::Invalid("empty event".into()));
        };
        let target = self.lookup(object).ok_or_else(|| unknown_object(object))?;
        let kind = self.object(target)?.kind;
        if let ObjKind::Group(g) = kind {
            let members = self
                .groups
                .get(g)
                .map(|d| d.members.clone())
                .unwrap_or_default();
            if members.is_empty() {
                return Err(NsErrorKind::Invalid(format!(
                    "event group '{object}' has no members yet; add them before this $ns at"
                )));
            }
            let mut rows = Vec::with_capacity(members.len());
            for member in members {
                let member_name = self.name_of(member).to_string();
                let mut member_words = Vec::with_capacity(words.len());
                member_words.push(member_name.as_str());
                member_words.extend(command.iter().map(String::as_str));
                let atstring = list::join(&member_words);
                rows.push(self.translate_one(member, command, atstring, time, line)?);
            }
            return Ok(rows);
        }
        Ok(vec![self.translate_one(
            target,
            command,
            text.to_string(),
            time,
            line,
        )?])
    }

    /// One event on one (non-group) object.
    fn translate_one(
        &mut self,
        target: ObjId,
        command: &[String],
        atstring: String,
        time: f64,
        line: u32,
    ) -> KindResult<PendingEvent> {
        let name = self.name_of(target).to_string();
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        let kind = self.object(target)?.kind;
        let (objtype, eventtype, arguments) = match kind {
            ObjKind::LanLink(l) => {
                let row = link_event(&name, &words)?;
                if let Some(data) = self.lanlinks.get_mut(l) {
                    data.mustdelay = true;
                }
                row
            }
            ObjKind::Queue(q) => {
                let row = queue_event(&name, &words)?;
                let lanlink = self.queues.get(q).map(|d| d.lanlink);
                if let Some(data) = lanlink.and_then(|l| self.lanlinks.get_mut(l)) {
                    data.mustdelay = true;
                }
                row
            }
            ObjKind::Program(p) => match words.as_slice() {
                ["start"] => {
                    let command = self
                        .programs
                        .get(p)
                        .map(|d| d.command.as_str())
                        .unwrap_or("");
                    if command.is_empty() {
                        return Err(NsErrorKind::Invalid(format!(
                            "program '{name}' has no command yet; give it one (-command or $p set command) before this $ns at"
                        )));
                    }
                    (OBJ_PROGRAM, "START", format!("COMMAND={command}"))
                }
                ["stop"] => (OBJ_PROGRAM, "STOP", String::new()),
                ["kill", signal] => {
                    if signal.is_empty() || !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Err(NsErrorKind::InvalidValue {
                            what: "signal".into(),
                            value: (*signal).to_string(),
                            reason: "use a signal name or number such as TERM, SIGKILL or 9".into(),
                        });
                    }
                    (OBJ_PROGRAM, "KILL", format!("SIGNAL={signal}"))
                }
                _ => {
                    return Err(usage(&format!(
                        "{name} start | {name} stop | {name} kill SIGNAL"
                    )));
                }
            },
            ObjKind::Cbr(c) => match words.as_slice() {
                ["start"] => {
                    let cbr = self
                        .cbrs
                        .get(c)
                        .ok_or_else(|| NsErrorKind::Invalid(format!("internal: no CBR #{c}")))?;
                    let rate = if cbr.rate.is_empty() || units::is_numeric_zero(&cbr.rate) {
                        "-1".to_string()
                    } else {
                        units::parse_bw(&cbr.rate)?.to_string()
                    };
                    let or_unset = |v: &str| {
                        if v.is_empty() || units::is_numeric_zero(v) {
                            "-1".to_string()
                        } else {
                            v.to_string()
                        }
                    };
                    (
                        OBJ_TRAFGEN,
                        "START",
                        format!(
                            "PACKETSIZE={} RATE={rate} INTERVAL={} IPTOS={}",
                            cbr.packet_size,
                            or_unset(&cbr.interval),
                            or_unset(&cbr.iptos)
                        ),
                    )
                }
                ["stop"] => (OBJ_TRAFGEN, "STOP", String::new()),
                ["reset"] => (OBJ_TRAFGEN, "RESET", String::new()),
                ["set", "packetSize_", value] => {
                    check_packet_size(value)?;
                    (OBJ_TRAFGEN, "MODIFY", format!("PACKETSIZE={value}"))
                }
                ["set", "rate_", value] => (
                    OBJ_TRAFGEN,
                    "MODIFY",
                    format!("RATE={}", units::parse_bw(value)?),
                ),
                ["set", "interval_", value] => {
                    units::parse_plain_number("CBR interval_", value)?;
                    (OBJ_TRAFGEN, "MODIFY", format!("INTERVAL={value}"))
                }
                ["set", "iptos_", value] => {
                    check_iptos(value)?;
                    (OBJ_TRAFGEN, "MODIFY", format!("IPTOS={value}"))
                }
                _ => {
                    return Err(usage(&format!(
                        "{name} start | stop | reset | set packetSize_|rate_|interval_|iptos_ VALUE"
                    )));
                }
            },
            ObjKind::Simulator => match words.as_slice() {
                ["halt"] | ["terminate"] => (OBJ_SIMULATOR, "HALT", String::new()),
                ["swapout"] => (OBJ_SIMULATOR, "SWAPOUT", String::new()),
                ["bandwidth", ..] => {
                    return Err(NsErrorKind::Unsupported(format!(
                        "'${name} bandwidth' cannot be delivered to any agent (Emulab's scheduler failed to start on it); change one link with \"$link bandwidth BW\""
                    )));
                }
                _ => {
                    return Err(usage(&format!(
                        "{name} halt | {name} terminate | {name} swapout"
                    )));
                }
            },
            ObjKind::Node(_)
            | ObjKind::Traffic(_)
            | ObjKind::SimplexLink(_)
            | ObjKind::Group(_) => {
                return Err(NsErrorKind::Unsupported(format!(
                    "events on '{name}', a {}; events can target links, LANs, queues, programs, CBR sources, event groups and the simulator",
                    self.class_of(target)
                )));
            }
        };
        Ok(PendingEvent {
            time,
            target,
            objtype,
            eventtype,
            arguments,
            atstring,
            line,
        })
    }
}

/// Link and LAN events.
fn link_event(name: &str, words: &[&str]) -> KindResult<(&'static str, &'static str, String)> {
    Ok(match words {
        ["up"] => (OBJ_LINK, "UP", String::new()),
        ["down"] => (OBJ_LINK, "DOWN", String::new()),
        // Emulab's parser wanted a fourth list element here (`duplex`);
        // we accept the value alone or followed by `duplex`.
        ["bandwidth", value] | ["bandwidth", value, "duplex"] => (
            OBJ_LINK,
            "MODIFY",
            format!("BANDWIDTH={}", units::parse_bw(value)?),
        ),
        ["delay", value] => {
            units::parse_delay(value)?;
            (OBJ_LINK, "MODIFY", format!("DELAY={value}"))
        }
        ["plr", value] => {
            units::parse_loss(value)?;
            (OBJ_LINK, "MODIFY", format!("PLR={value}"))
        }
        _ => {
            return Err(usage(&format!(
                "{name} up | down | bandwidth BW | delay DELAY | plr RATE"
            )));
        }
    })
}

/// Queue events: `set <param>_ V` to LINK MODIFY `<PARAM>=V`, the value
/// checked as a static setting is (see the `queue` module).
fn queue_event(name: &str, words: &[&str]) -> KindResult<(&'static str, &'static str, String)> {
    let ["set", param, value] = words else {
        return Err(usage(&format!(
            "{name} set limit_|queue-in-bytes_|maxthresh_|thresh_|linterm_|q_weight_ VALUE"
        )));
    };
    let key = super::queue::event_key(param, value)?;
    Ok((OBJ_LINK, "MODIFY", format!("{key}={value}")))
}
