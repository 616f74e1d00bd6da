//! The LINKTEST events between the controller (`tbevents linktest`) and
//! the node daemons (`linktest`), one type per message.
//!
//! Every message is an ordinary Emulab event of the experiment
//! (`OBJTYPE LINKTEST`, `OBJNAME linktest`, `HOST *`, `SCHEDULER 0`),
//! signed with the experiment's key, so only the experiment's members can
//! start, steer or stop a run, and `eventdebug -e pid/eid` shows a run as
//! it happens. The original's event names keep their meaning: `START`
//! starts a run, `KILL` cancels it, `STOP` ends it, `REPORT` carries a
//! message, `COMPLETE` says a node finished something. We add `STEP` (the
//! controller's go-ahead for the next step) because our nodes advance in
//! lock step through the controller instead of a separate barrier server
//! (docs/linktest.md explains the exchange).
//!
//! Parameters travel in `ARGS` (`RUN=... NODE=... STEP=...`); the two
//! large or free-text values travel in their own string attributes:
//! [`LTMAP_ATTR`] (the topology, in START) and the error fields of a node's
//! REPORT ([`TEST_ATTR`], [`LINK_ATTR`], [`ERROR_ATTR`]).

use tbevents_event::args::{ArgsBuilder, arg_get};
use tbevents_event::{AddressTuple, EventNotification};

use crate::probe::Ports;
use crate::report::ErrorRecord;

/// The object type of every linktest event.
pub const OBJTYPE: &str = "LINKTEST";
/// The object name (the experiment's `linktest` agent).
pub const OBJNAME: &str = "linktest";
/// START's topology attribute.
pub const LTMAP_ATTR: &str = "LTMAP";
/// A node REPORT's test title.
pub const TEST_ATTR: &str = "LT_TEST";
/// A node REPORT's link description.
pub const LINK_ATTR: &str = "LT_LINK";
/// A node REPORT's error text.
pub const ERROR_ATTR: &str = "LT_ERROR";
/// The step number a node's COMPLETE carries to say it is ready (topology
/// read, listeners open) before step 1.
pub const READY_STEP: u32 = 0;

/// One linktest message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Controller → nodes: start run `run` over levels `start..=stop`.
    Start {
        /// Run id: every later message names it; strays are ignored.
        run: u32,
        /// First level.
        start: u8,
        /// Last level.
        stop: u8,
        /// The probe ports.
        ports: Ports,
        /// The topology text.
        ltmap: String,
    },
    /// Controller → nodes: do your part of step `step`.
    Step {
        /// Run id.
        run: u32,
        /// 1-based step number.
        step: u32,
    },
    /// Node → controller: `node` finished `step` ([`READY_STEP`]: ready).
    Complete {
        /// Run id.
        run: u32,
        /// The node.
        node: String,
        /// The step it finished.
        step: u32,
    },
    /// Node → controller: an error `node` found in `step`.
    NodeError {
        /// Run id.
        run: u32,
        /// The node that found it (whose error file it goes to).
        node: String,
        /// The step.
        step: u32,
        /// What it found.
        record: ErrorRecord,
    },
    /// Controller → anyone watching: a progress message.
    Report {
        /// Run id.
        run: u32,
        /// The text.
        message: String,
    },
    /// Cancel run `run` (any run when `None`, as the original's bare KILL).
    Kill {
        /// Run id.
        run: Option<u32>,
    },
    /// Controller → nodes: run `run` is over.
    Stop {
        /// Run id.
        run: u32,
    },
}

/// Why an event is not a linktest message we accept.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MessageError {
    /// Not a LINKTEST event at all.
    #[error("not a LINKTEST event")]
    NotLinktest,
    /// An event type we do not handle.
    #[error("unknown LINKTEST event type {0:?}")]
    UnknownType(String),
    /// A parameter is missing or malformed.
    #[error("LINKTEST {eventtype}: {reason}")]
    Bad {
        /// The event type.
        eventtype: String,
        /// What is wrong.
        reason: String,
    },
}

impl Message {
    /// The event type this message travels as.
    pub fn eventtype(&self) -> &'static str {
        match self {
            Message::Start { .. } => "START",
            Message::Step { .. } => "STEP",
            Message::Complete { .. } => "COMPLETE",
            Message::NodeError { .. } | Message::Report { .. } => "REPORT",
            Message::Kill { .. } => "KILL",
            Message::Stop { .. } => "STOP",
        }
    }

    /// Builds the (unsigned) event for experiment `expt`; `new` makes a
    /// notification from a tuple (normally
    /// [`tbevents_event::EventHandle::new_notification`]).
    pub fn to_event(
        &self,
        expt: &str,
        new: impl FnOnce(&AddressTuple) -> EventNotification,
    ) -> EventNotification {
        let tuple = AddressTuple::new()
            .expt(expt)
            .host("*")
            .objtype(OBJTYPE)
            .objname(OBJNAME)
            .eventtype(self.eventtype());
        let mut event = new(&tuple);
        let mut args = ArgsBuilder::new();
        // Values here are numbers and node names checked by the topology
        // parser, so pushing them cannot fail; the `let _` keeps a
        // malformed name from aborting a report.
        match self {
            Message::Start {
                run,
                start,
                stop,
                ports,
                ltmap,
            } => {
                let _ = args.push("RUN", run);
                let _ = args.push("STARTAT", start);
                let _ = args.push("STOPAT", stop);
                let _ = args.push("ECHOPORT", ports.echo);
                let _ = args.push("STREAMPORT", ports.stream);
                event.put(LTMAP_ATTR, ltmap.as_str());
            }
            Message::Step { run, step } => {
                let _ = args.push("RUN", run);
                let _ = args.push("STEP", step);
            }
            Message::Complete { run, node, step } => {
                let _ = args.push("RUN", run);
                let _ = args.push("NODE", node);
                let _ = args.push("STEP", step);
            }
            Message::NodeError {
                run,
                node,
                step,
                record,
            } => {
                let _ = args.push("RUN", run);
                let _ = args.push("NODE", node);
                let _ = args.push("STEP", step);
                event.put(TEST_ATTR, record.test.as_str());
                event.put(LINK_ATTR, record.link.as_str());
                event.put(ERROR_ATTR, record.message.as_str());
            }
            Message::Report { run, message } => {
                let _ = args.push("RUN", run);
                let _ = args.push("MESSAGE", message);
            }
            Message::Kill { run } => {
                if let Some(run) = run {
                    let _ = args.push("RUN", run);
                }
            }
            Message::Stop { run } => {
                let _ = args.push("RUN", run);
            }
        }
        event.set_arguments(args.finish());
        event
    }

    /// Reads a received event.
    pub fn from_event(event: &EventNotification) -> Result<Message, MessageError> {
        if event.objtype() != Some(OBJTYPE) {
            return Err(MessageError::NotLinktest);
        }
        let eventtype = event.eventtype().unwrap_or_default().trim().to_owned();
        let args = event.arguments().unwrap_or_default();
        let bad = |reason: String| MessageError::Bad {
            eventtype: eventtype.clone(),
            reason,
        };
        let get = |key: &str| -> Result<Option<&str>, MessageError> {
            arg_get(args, key).map_err(|e| bad(e.to_string()))
        };
        let number = |key: &str| -> Result<u32, MessageError> {
            get(key)?
                .ok_or_else(|| bad(format!("no {key}=")))?
                .parse()
                .map_err(|_| bad(format!("{key}= is not a number")))
        };
        let text = |key: &str| -> Result<String, MessageError> {
            Ok(get(key)?
                .ok_or_else(|| bad(format!("no {key}=")))?
                .to_owned())
        };
        let attr = |name: &str| -> Result<String, MessageError> {
            event
                .get_string(name)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("no {name} attribute")))
        };
        match eventtype.as_str() {
            "START" => {
                let level = |key: &str, default: u8| -> Result<u8, MessageError> {
                    match get(key)? {
                        None => Ok(default),
                        Some(v) => v
                            .parse::<u8>()
                            .ok()
                            .filter(|l| (1..=crate::schedule::MAX_LEVEL).contains(l))
                            .ok_or_else(|| bad(format!("{key}={v} is not a level 1-4"))),
                    }
                };
                let port = |key: &str, default: u16| -> Result<u16, MessageError> {
                    match get(key)? {
                        None => Ok(default),
                        Some(v) => v
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| bad(format!("{key}={v} is not a port"))),
                    }
                };
                let defaults = Ports::default();
                Ok(Message::Start {
                    run: number("RUN")?,
                    start: level("STARTAT", 1)?,
                    stop: level("STOPAT", crate::schedule::MAX_LEVEL)?,
                    ports: Ports {
                        echo: port("ECHOPORT", defaults.echo)?,
                        stream: port("STREAMPORT", defaults.stream)?,
                    },
                    ltmap: attr(LTMAP_ATTR)?,
                })
            }
            "STEP" => Ok(Message::Step {
                run: number("RUN")?,
                step: number("STEP")?,
            }),
            "COMPLETE" => Ok(Message::Complete {
                run: number("RUN")?,
                node: text("NODE")?,
                step: number("STEP")?,
            }),
            "REPORT" => {
                if get("NODE")?.is_some() {
                    Ok(Message::NodeError {
                        run: number("RUN")?,
                        node: text("NODE")?,
                        step: number("STEP")?,
                        record: ErrorRecord {
                            test: attr(TEST_ATTR)?,
                            link: event.get_string(LINK_ATTR).unwrap_or_default().to_owned(),
                            message: attr(ERROR_ATTR)?,
                        },
                    })
                } else {
                    Ok(Message::Report {
                        run: number("RUN")?,
                        message: text("MESSAGE")?,
                    })
                }
            }
            "KILL" => Ok(Message::Kill {
                run: match get("RUN")? {
                    None => None,
                    Some(_) => Some(number("RUN")?),
                },
            }),
            "STOP" => Ok(Message::Stop {
                run: number("RUN")?,
            }),
            other => Err(MessageError::UnknownType(other.to_owned())),
        }
    }
}

/// The subscription both sides use: every LINKTEST event of `expt`.
pub fn subscription(expt: &str) -> AddressTuple {
    AddressTuple::new().expt(expt).objtype(OBJTYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message) {
        let event = message.to_event("p/e", |t| EventNotification::from_tuple(t, "127.0.0.1"));
        assert_eq!(event.objtype(), Some(OBJTYPE));
        assert_eq!(event.expt(), Some("p/e"));
        assert_eq!(event.host(), Some("*"));
        assert_eq!(event.scheduler(), Some(0));
        assert_eq!(Message::from_event(&event), Ok(message));
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Start {
            run: 42,
            start: 1,
            stop: 3,
            ports: Ports {
                echo: 1000,
                stream: 1001,
            },
            ltmap: "h a\nr none\n".into(),
        });
        round_trip(Message::Step { run: 42, step: 7 });
        round_trip(Message::Complete {
            run: 42,
            node: "node-1".into(),
            step: READY_STEP,
        });
        round_trip(Message::NodeError {
            run: 42,
            node: "a".into(),
            step: 1,
            record: ErrorRecord {
                test: "Latency (Round Trip)".into(),
                link: "a to b (1 Mbps, 10ms, 0% loss)".into(),
                message: "No packets were received (n=10)".into(),
            },
        });
        round_trip(Message::Report {
            run: 42,
            message: "Testing Loss ...".into(),
        });
        round_trip(Message::Kill { run: Some(42) });
        round_trip(Message::Kill { run: None });
        round_trip(Message::Stop { run: 42 });
    }

    #[test]
    fn malformed_messages_are_refused() {
        let make = |eventtype: &str, args: &str| {
            let tuple = AddressTuple::new()
                .expt("p/e")
                .objtype(OBJTYPE)
                .eventtype(eventtype);
            let mut event = EventNotification::from_tuple(&tuple, "127.0.0.1");
            event.set_arguments(args);
            event
        };
        for (eventtype, args, needle) in [
            ("START", "RUN=1 ", "no LTMAP attribute"),
            ("STEP", "RUN=1 STEP=x ", "STEP= is not a number"),
            ("COMPLETE", "STEP=1 ", "no RUN="),
            ("START", "RUN=1 STOPAT=9 ", "not a level"),
            ("DANCE", "", "unknown LINKTEST event type"),
        ] {
            let error = Message::from_event(&make(eventtype, args))
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{eventtype} {args}: {error}");
        }
        let tuple = AddressTuple::new().expt("p/e").objtype("LINK");
        let other = EventNotification::from_tuple(&tuple, "127.0.0.1");
        assert_eq!(Message::from_event(&other), Err(MessageError::NotLinktest));
    }
}
