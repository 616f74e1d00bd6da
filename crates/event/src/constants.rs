//! Names and numbers every Emulab event component agrees on: attribute
//! names, ports, server names, key-file locations, and the object-type and
//! event-type vocabularies.
//!
//! They live in one module so that a tool, the scheduler and an agent can
//! never disagree on a spelling. The vocabularies are plain sorted-by-origin
//! slices (the original's lists, then later additions) with lookup
//! functions; they are small enough that a linear scan is the right data
//! structure.

use std::path::PathBuf;

/// Attribute `SITE` (string): which Emulab site; in practice always `*`.
pub const ATTR_SITE: &str = "SITE";
/// Attribute `EXPT` (string): the experiment, `pid/eid`.
pub const ATTR_EXPT: &str = "EXPT";
/// Attribute `GROUP` (string): a user-defined node group.
pub const ATTR_GROUP: &str = "GROUP";
/// Attribute `HOST` (string): the target node's control-network IPv4
/// address, or `*` for every node.
pub const ATTR_HOST: &str = "HOST";
/// Attribute `OBJTYPE` (string): the kind of object addressed (`LINK`,
/// `TRAFGEN`, ...).
pub const ATTR_OBJTYPE: &str = "OBJTYPE";
/// Attribute `OBJNAME` (string): the object's name (`cbr0`, `link0`, ...).
pub const ATTR_OBJNAME: &str = "OBJNAME";
/// Attribute `EVENTTYPE` (string): what happens (`START`, `STOP`, ...).
pub const ATTR_EVENTTYPE: &str = "EVENTTYPE";
/// Attribute `TIMELINE` (string): the timeline an event belongs to (a later
/// addition to the original; see [`crate::AddressTuple::timeline`]).
pub const ATTR_TIMELINE: &str = "TIMELINE";
/// Attribute `SCHEDULER` (int32): 1 for a request to the experiment's
/// scheduler, 0 for an event to act on now.
pub const ATTR_SCHEDULER: &str = "SCHEDULER";
/// Attribute `___SENDER___` (string): the sender's dotted IPv4 address.
pub const ATTR_SENDER: &str = "___SENDER___";
/// Attribute `ARGS` (string): the event's arguments, `KEY=value ...`.
pub const ATTR_ARGS: &str = "ARGS";
/// Attribute `time_sec` (int32): firing time, seconds since the epoch.
pub const ATTR_TIME_SEC: &str = "time_sec";
/// Attribute `time_usec` (int32): firing time, microseconds part.
pub const ATTR_TIME_USEC: &str = "time_usec";
/// Attribute `__hmac__` (opaque, 20 bytes): the HMAC-SHA1 signature.
pub const ATTR_HMAC: &str = "__hmac__";
/// Attribute `TOKEN` (int32): a request token echoed in a `COMPLETE`
/// event's `CTOKEN=` argument (a later addition to the original).
pub const ATTR_TOKEN: &str = "TOKEN";

/// The standard Elvin port: the event server users, `evproxy` and node
/// agents talk to.
pub const ELVIN_PORT: u16 = 2917;
/// The boss node's private event port (`BOSSEVENTPORT`), used for
/// testbed-control events (`tevc -c`, `eventdebug -b`).
pub const BOSS_EVENT_PORT: u16 = 2927;
/// The default event server's host name (a DNS alias of the node that runs
/// the users' router).
pub const DEFAULT_EVENT_SERVER: &str = "event-server";
/// Where a node keeps its experiment's event key.
pub const NODE_KEY_PATH: &str = "/var/emulab/boot/eventkey";
/// Where Emulab nodes keep their control-network address; the last resort
/// for `___SENDER___` (see [`crate::sender`]).
pub const NODE_MYIP_PATH: &str = "/var/emulab/boot/myip";

/// The server-side key file of experiment `pid/eid`:
/// `/proj/<pid>/exp/<eid>/tbdata/eventkey`.
pub fn experiment_key_path(pid: &str, eid: &str) -> PathBuf {
    PathBuf::from(format!("/proj/{pid}/exp/{eid}/tbdata/eventkey"))
}

/// Object types of the original system (its code's list, plus `SLOTHD`
/// from its database table).
pub const SEED_OBJECT_TYPES: &[&str] = &[
    "TBCONTROL",
    "TBNODESTATE",
    "TBNODEOPMODE",
    "TBEXPTSTATE",
    "LINK",
    "TRAFGEN",
    "TIME",
    "PROGRAM",
    "FRISBEE",
    "SIMULATOR",
    "LINKTEST",
    "NSE",
    "CANARYD",
    "SLOTHD",
];

/// Object types added to the original after its first event-system release
/// (timelines, sequences, node and console agents, ...).
pub const LATER_OBJECT_TYPES: &[&str] = &[
    "NODE",
    "GROUP",
    "TIMELINE",
    "SEQUENCE",
    "CONSOLE",
    "TOPOGRAPHY",
    "LINKTRACE",
    "EVPROXY",
    "BGMON",
    "PLABSCHED",
];

/// Event types of the original system's validation list (what its `tevc`
/// accepted), each name once. It mixes agent commands (`START`, `MODIFY`,
/// ...) with node states and operating modes (`ISUP`, `RELOADING`, ...).
///
/// `NORMALv1` is kept as spelled by the original even though a tool that
/// upper-cases its input can never match it.
pub const SEED_EVENT_TYPES: &[&str] = &[
    "START",
    "STOP",
    "KILL",
    "ISUP",
    "REBOOT",
    "UP",
    "DOWN",
    "MODIFY",
    "SET",
    "RESET",
    "HALT",
    "SWAPOUT",
    "NSESWAP",
    "NSEEVENT",
    "REPORT",
    "ALERT",
    "REBOOTED",
    "REBOOTING",
    "SHUTDOWN",
    "BOOTING",
    "TBSETUP",
    "RELOADSETUP",
    "RELOADING",
    "RELOADDONE",
    "UNKNOWN",
    "NORMAL",
    "DELAYING",
    "UNKNOWNOS",
    "NORMALv1",
    "MINIMAL",
    "RELOAD",
    "DELAY",
    "_BOOTWHAT_",
    "TIMEOUT",
];

/// Event types added to the original later (completion events, timelines,
/// logging, mobile nodes, ...).
pub const LATER_EVENT_TYPES: &[&str] = &[
    "UPDATE", "SETDEST", "SNAPSHOT", "COMPLETE", "CLEAR", "DEBUG", "LOG", "MESSAGE", "RUN",
    "CREATE", "STOPRUN",
];

/// True when `name` (exact spelling) is a known object type.
pub fn is_known_object_type(name: &str) -> bool {
    SEED_OBJECT_TYPES.contains(&name) || LATER_OBJECT_TYPES.contains(&name)
}

/// True when `name` (exact spelling) is a known event type: the original
/// list or a later addition. This is what `tevc` accepts for experiment
/// events.
pub fn is_known_event_type(name: &str) -> bool {
    SEED_EVENT_TYPES.contains(&name) || LATER_EVENT_TYPES.contains(&name)
}

/// True when `name` (exact spelling) may be sent as a testbed-control
/// (`TBCONTROL`) event: the original validation list, which is what the
/// original accepted in control mode.
pub fn is_control_event_type(name: &str) -> bool {
    SEED_EVENT_TYPES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_no_duplicates() {
        for list in [
            SEED_OBJECT_TYPES,
            LATER_OBJECT_TYPES,
            SEED_EVENT_TYPES,
            LATER_EVENT_TYPES,
        ] {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "{list:?}");
        }
        for name in LATER_EVENT_TYPES {
            assert!(!SEED_EVENT_TYPES.contains(name), "{name} listed twice");
        }
        for name in LATER_OBJECT_TYPES {
            assert!(!SEED_OBJECT_TYPES.contains(name), "{name} listed twice");
        }
    }

    #[test]
    fn lookups() {
        assert!(is_known_event_type("START"));
        assert!(is_known_event_type("COMPLETE"));
        assert!(!is_known_event_type("start"));
        assert!(!is_known_event_type("FROB"));
        assert!(is_control_event_type("REBOOT"));
        assert!(!is_control_event_type("COMPLETE"));
        assert!(is_known_object_type("PROGRAM"));
        assert!(is_known_object_type("TIMELINE"));
        assert!(!is_known_object_type("program"));
    }

    #[test]
    fn key_path_rule() {
        assert_eq!(
            experiment_key_path("testbed", "exp1"),
            PathBuf::from("/proj/testbed/exp/exp1/tbdata/eventkey")
        );
    }
}
