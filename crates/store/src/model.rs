//! The experiment model shared by the NS front end, the store and the
//! scheduler.
//!
//! These types mirror Emulab's "virtual" tables (spec emulab-events-B §3):
//! what a user's NS file says about an experiment, before any physical
//! resources are assigned. The NS front end (`tbevents-ns`) produces a
//! [`VirtualExperiment`]; a store writes it into the Emulab tables
//! (`virt_nodes`, `virt_lans`, `virt_agents`, `virt_programs`,
//! `virt_trafgens`, `event_groups`, `eventlist`); the scheduler reads the
//! agent and event views back ([`AgentRow`], [`EventRow`], [`GroupRow`]).
//!
//! Object and event types travel by name (`"LINK"`, `"MODIFY"`); the store
//! maps them to the `event_objecttypes` / `event_eventtypes` indexes.

/// An experiment's identity: Emulab project id and experiment id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId {
    pub pid: String,
    pub eid: String,
}

impl ExperimentId {
    pub fn new(pid: impl Into<String>, eid: impl Into<String>) -> Self {
        ExperimentId { pid: pid.into(), eid: eid.into() }
    }

    /// Parses `pid/eid` (split at the first `/`; both parts non-empty).
    pub fn parse(s: &str) -> Option<Self> {
        let (pid, eid) = s.split_once('/')?;
        if pid.is_empty() || eid.is_empty() {
            return None;
        }
        Some(ExperimentId::new(pid, eid))
    }
}

impl std::fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pid, self.eid)
    }
}

/// Everything the NS front end extracts from one NS file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualExperiment {
    /// `set n [$ns node]`, in declaration order.
    pub nodes: Vec<VirtNode>,
    /// One row per member of each link or LAN (`virt_lans`).
    pub lan_members: Vec<VirtLanMember>,
    /// Addressable event agents (`virt_agents`).
    pub agents: Vec<VirtAgent>,
    /// Program agents (`virt_programs`).
    pub programs: Vec<VirtProgram>,
    /// Traffic generators (`virt_trafgens`).
    pub trafgens: Vec<VirtTrafgen>,
    /// Event group membership (`event_groups`).
    pub groups: Vec<GroupRow>,
    /// Static events (`eventlist`), in file order.
    pub events: Vec<StaticEvent>,
    /// The name the NS file gave the simulator object (`set ns [new Simulator]`
    /// gives `ns`); it is the SIMULATOR agent's name.
    pub simulator_name: String,
}

/// A virtual node (`virt_nodes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtNode {
    pub vname: String,
    /// Hardware type asked for (`tb-set-hardware`), empty for any.
    pub node_type: String,
    /// OS asked for (`tb-set-node-os`), empty for the default.
    pub osname: String,
    /// Routing (`$ns rtproto Static` gives `static`; default `none`).
    pub routertype: String,
    /// Space-separated `port:ip` list of this node's experimental interfaces.
    pub ips: String,
}

/// One member of a link or LAN (`virt_lans`). A duplex link has two rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtLanMember {
    /// Link or LAN name.
    pub vname: String,
    /// Member node.
    pub vnode: String,
    /// The member's port (interface number) on its node.
    pub vport: u32,
    /// Experimental IP address of the member, dotted quad.
    pub ip: String,
    pub mask: String,
    /// One-way delay in milliseconds (toward the LAN).
    pub delay: f64,
    /// Bandwidth in kbit/s.
    pub bandwidth: u64,
    /// Packet loss rate, 0..=1.
    pub lossrate: f64,
    /// Reverse direction (from the LAN to this member).
    pub rdelay: f64,
    pub rbandwidth: u64,
    pub rlossrate: f64,
    /// Queue length in packets (`q_limit`), and the queue options set by
    /// `Queue` objects.
    pub q_limit: u32,
    /// `<vnode>:<vport>`.
    pub member: String,
    /// True for a LAN (`make-lan`), false for a duplex link.
    pub is_lan: bool,
    /// Set when an event changes the link, so it must be shaped.
    pub mustdelay: bool,
}

/// An addressable agent (`virt_agents`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtAgent {
    /// Agent name; the OBJNAME of its events.
    pub vname: String,
    /// Node that runs it, or `*` for an agent every node may answer.
    pub vnode: String,
    /// Object type name (`PROGRAM`, `TRAFGEN`, `LINK`, `SIMULATOR`, ...).
    pub objtype: String,
}

/// A program agent (`virt_programs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtProgram {
    pub vnode: String,
    pub vname: String,
    pub command: String,
}

/// A traffic generator (`virt_trafgens`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtTrafgen {
    pub vnode: String,
    pub vname: String,
    /// `source` or `sink`.
    pub role: String,
    /// `udp` or `tcp`.
    pub proto: String,
    pub port: u32,
    pub ip: String,
    pub target_vnode: String,
    pub target_vname: String,
    pub target_port: u32,
    pub target_ip: String,
    /// `TG` (Emulab's trafgen) or `NSE`.
    pub generator: String,
}

/// One member of an event group (`event_groups`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRow {
    pub group_name: String,
    pub agent_name: String,
}

/// A static event as written by the NS front end (`eventlist`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaticEvent {
    /// Seconds after time zero.
    pub time: f64,
    /// Target node, `*`, or empty for links and queues.
    pub vnode: String,
    /// Target object name (OBJNAME).
    pub vname: String,
    /// Object type name (`LINK`, `TRAFGEN`, ...).
    pub objtype: String,
    /// Event type name (`START`, `MODIFY`, ...).
    pub eventtype: String,
    /// The ARGS string.
    pub arguments: String,
    /// The NS text of this one event.
    pub atstring: String,
}

/// A static event as the scheduler loads it: the `eventlist` row joined
/// with the type tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventRow {
    pub idx: u64,
    pub time: f64,
    pub vnode: String,
    pub vname: String,
    pub objtype: String,
    pub eventtype: String,
    pub arguments: String,
}

/// An agent as the scheduler loads it: `virt_agents` joined with
/// `reserved`, `nodes`, `node_types` and `interfaces` (spec B §1.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentRow {
    pub vname: String,
    /// `*` for broadcast agents.
    pub vnode: String,
    pub objtype: String,
    /// Physical node id (`reserved.node_id`), `None` when the vnode is not
    /// mapped (or is `*`).
    pub node_id: Option<String>,
    /// Control-network IPv4 of the physical host, `None` if unknown.
    pub ipaddr: Option<String>,
}
