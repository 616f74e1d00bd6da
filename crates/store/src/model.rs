//! The experiment model shared by the NS front end, the store and the
//! scheduler.
//!
//! These types mirror Emulab's "virtual" tables (docs/emulab-model.md §8):
//! what a user's NS file says about an experiment, before any physical
//! resources are assigned. The NS front end (`tbevents-ns`) produces a
//! [`VirtualExperiment`]; a store writes it into the Emulab tables
//! (`virt_nodes`, `virt_lans`, `virt_agents`, `virt_programs`,
//! `virt_trafgens`, `event_groups`, `eventlist`); the scheduler reads the
//! agent and event views back ([`AgentRow`], [`EventRow`], [`GroupRow`]).
//!
//! Object and event types travel by name (`"LINK"`, `"MODIFY"`); the store
//! maps them to the `event_objecttypes` / `event_eventtypes` indexes.
//!
//! The second half of the file holds the store's own records: an
//! [`Experiment`] row and its [`ExperimentState`], the physical mapping of a
//! swap-in ([`NodeAssignment`]), and the minimal user/group tables the
//! control plane needs ([`User`], [`Group`], [`GroupMembership`]). Every type
//! here is plain data with no database handle, so a MySQL or XML-RPC backend
//! can produce the same values.

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// An experiment's identity: Emulab project id and experiment id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId {
    /// Project id (`experiments.pid`).
    pub pid: String,
    /// Experiment id within the project (`experiments.eid`).
    pub eid: String,
}

impl ExperimentId {
    /// Builds an id from its two parts (no validation; see
    /// [`ExperimentId::validate`] for Emulab's naming rules).
    pub fn new(pid: impl Into<String>, eid: impl Into<String>) -> Self {
        ExperimentId {
            pid: pid.into(),
            eid: eid.into(),
        }
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

impl ExperimentId {
    /// Checks Emulab's naming rules: the project id is 1 to 48 and the
    /// experiment id 1 to 32 characters from `A-Z a-z 0-9 _ -`, starting
    /// with a letter (the
    /// characters the XML-RPC server and `eventsys_control` accept, and
    /// safe as directory names under `/proj/<pid>/exp/<eid>`).
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name("project id", &self.pid, MAX_PID_LEN)?;
        check_name("experiment id", &self.eid, MAX_EID_LEN)
    }
}

/// Longest project id accepted (Emulab HEAD's `pid varchar(48)`).
pub const MAX_PID_LEN: usize = 48;
/// Longest experiment id accepted (Emulab's `eid varchar(32)`).
pub const MAX_EID_LEN: usize = 32;
/// Longest group id accepted.
pub const MAX_GID_LEN: usize = 32;
/// Longest user id accepted.
pub const MAX_UID_LEN: usize = 32;

const NAME_RULE_48: &str =
    "use 1 to 48 characters from A-Z, a-z, 0-9, `_` and `-`, starting with a letter";
const NAME_RULE_32: &str =
    "use 1 to 32 characters from A-Z, a-z, 0-9, `_` and `-`, starting with a letter";

/// Validates one identifier against the shared character rule.
pub(crate) fn check_name(
    what: &'static str,
    value: &str,
    max_len: usize,
) -> Result<(), StoreError> {
    let rule = if max_len == MAX_PID_LEN {
        NAME_RULE_48
    } else {
        NAME_RULE_32
    };
    // Emulab's rule: a name starts with a letter, so no name can look like
    // a command-line option (`-x`) or a number.
    let well_formed = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && value.len() <= max_len
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            what,
            value: shorten(value),
            rule,
        })
    }
}

/// Caps a hostile value at a displayable length for error messages.
pub(crate) fn shorten(value: &str) -> String {
    const SHOWN: usize = 80;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
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
    /// The node's name in the NS file.
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
///
/// The `q_*` fields are the member's outgoing queue: the queue packets wait
/// in on their way from this member's node into the link or LAN (Emulab's
/// NS `Queue` object `<link>-<node>`, the delay node's pipe in that
/// direction). They mirror Emulab's `virt_lans` columns; the RED parameters
/// (`q_maxthresh` to `q_gentle`) only take effect when `q_red` is set.
/// [`Default`] gives Emulab's defaults, those of an unconfigured NS queue
/// (see the `DEFAULT_Q_*` constants).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtLanMember {
    /// Link or LAN name.
    pub vname: String,
    /// Member node.
    pub vnode: String,
    /// The member's port (interface number) on its node.
    pub vport: u32,
    /// Experimental IP address of the member, dotted quad.
    pub ip: String,
    /// Netmask of the member's address, dotted quad.
    pub mask: String,
    /// One-way delay in milliseconds (toward the LAN).
    pub delay: f64,
    /// Bandwidth in kbit/s.
    pub bandwidth: u64,
    /// Packet loss rate, 0..=1.
    pub lossrate: f64,
    /// Reverse direction (from the LAN to this member).
    pub rdelay: f64,
    /// Reverse bandwidth in kbit/s.
    pub rbandwidth: u64,
    /// Reverse packet loss rate, 0..=1.
    pub rlossrate: f64,
    /// Queue length (`q_limit`, NS `limit_`): in packets, or in bytes when
    /// `q_qinbytes` is set.
    pub q_limit: u32,
    /// RED maximum threshold (`q_maxthresh`, NS `maxthresh_`): above this
    /// average queue length every packet is dropped (or marked).
    pub q_maxthresh: u32,
    /// RED minimum threshold (`q_minthresh`, NS `thresh_`): below this
    /// average queue length nothing is dropped.
    pub q_minthresh: u32,
    /// RED queue weight w_q (`q_weight`, NS `q_weight_`), in (0, 1]: how
    /// fast the average queue length follows the instantaneous one.
    pub q_weight: f64,
    /// RED `linterm` (`q_linterm`, NS `linterm_`): the maximum drop
    /// probability is 1/`q_linterm`.
    pub q_linterm: u32,
    /// Queue measured in bytes rather than packets (`q_qinbytes`, NS
    /// `queue-in-bytes_`); stored as Emulab's tinyint 0/1.
    pub q_qinbytes: bool,
    /// RED thresholds in bytes rather than packets (`q_bytes`, NS
    /// `bytes_`); stored as 0/1.
    pub q_bytes: bool,
    /// Mean packet size in bytes RED assumes (`q_meanpsize`, NS
    /// `mean_pktsize_`).
    pub q_meanpsize: u32,
    /// RED waits between drops (`q_wait`, NS `wait_`); stored as 0/1.
    pub q_wait: bool,
    /// RED marks packets (ECN) instead of dropping them (`q_setbit`, NS
    /// `setbit_`); stored as 0/1.
    pub q_setbit: bool,
    /// A full queue drops from the tail (`q_droptail`, NS `drop-tail_`);
    /// stored as 0/1. Set for every queue type by default, RED included,
    /// as in Emulab.
    pub q_droptail: bool,
    /// The queue is RED (`q_red`: link type `RED` or `GRED`, or NS
    /// `red_`); stored as 0/1.
    pub q_red: bool,
    /// Gentle RED (`q_gentle`: link type `GRED`, or NS `gentle_`); stored
    /// as 0/1.
    pub q_gentle: bool,
    /// `<vnode>:<vport>`.
    pub member: String,
    /// True for a LAN (`make-lan`), false for a duplex link.
    pub is_lan: bool,
    /// Set when the link must be shaped by a delay node: an event changes
    /// it, or its queue is RED.
    pub mustdelay: bool,
}

impl VirtLanMember {
    /// Emulab's queue length for an unconfigured queue, in packets.
    pub const DEFAULT_Q_LIMIT: u32 = 50;
    /// Emulab's RED maximum threshold.
    pub const DEFAULT_Q_MAXTHRESH: u32 = 15;
    /// Emulab's RED minimum threshold.
    pub const DEFAULT_Q_MINTHRESH: u32 = 5;
    /// Emulab's RED queue weight.
    pub const DEFAULT_Q_WEIGHT: f64 = 0.002;
    /// Emulab's RED `linterm` (maximum drop probability 1/10).
    pub const DEFAULT_Q_LINTERM: u32 = 10;
    /// Emulab's RED mean packet size, in bytes.
    pub const DEFAULT_Q_MEANPSIZE: u32 = 500;
    /// Emulab's `wait_` default (on).
    pub const DEFAULT_Q_WAIT: bool = true;
    /// Emulab's `drop-tail_` default (on).
    pub const DEFAULT_Q_DROPTAIL: bool = true;
}

impl Default for VirtLanMember {
    /// Empty names and addresses, no shaping, and Emulab's default queue
    /// (DropTail, 50 packets, NS's RED parameters).
    fn default() -> Self {
        VirtLanMember {
            vname: String::new(),
            vnode: String::new(),
            vport: 0,
            ip: String::new(),
            mask: String::new(),
            delay: 0.0,
            bandwidth: 0,
            lossrate: 0.0,
            rdelay: 0.0,
            rbandwidth: 0,
            rlossrate: 0.0,
            q_limit: Self::DEFAULT_Q_LIMIT,
            q_maxthresh: Self::DEFAULT_Q_MAXTHRESH,
            q_minthresh: Self::DEFAULT_Q_MINTHRESH,
            q_weight: Self::DEFAULT_Q_WEIGHT,
            q_linterm: Self::DEFAULT_Q_LINTERM,
            q_qinbytes: false,
            q_bytes: false,
            q_meanpsize: Self::DEFAULT_Q_MEANPSIZE,
            q_wait: Self::DEFAULT_Q_WAIT,
            q_setbit: false,
            q_droptail: Self::DEFAULT_Q_DROPTAIL,
            q_red: false,
            q_gentle: false,
            member: String::new(),
            is_lan: false,
            mustdelay: false,
        }
    }
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
    /// Node the program runs on.
    pub vnode: String,
    /// Program agent name (OBJNAME of its events).
    pub vname: String,
    /// The command line the program agent runs.
    pub command: String,
    /// Working directory for its runs (`dir`, a later Emulab column); empty
    /// for the agent's default.
    pub dir: String,
    /// Seconds after which a run is stopped (`timeout`); 0 for none.
    pub timeout: u32,
    /// The exit code that counts as success (`expected_exit_code`).
    pub expected_exit_code: u8,
}

/// A traffic generator (`virt_trafgens`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtTrafgen {
    /// Node the generator runs on.
    pub vnode: String,
    /// Generator name (OBJNAME of its events).
    pub vname: String,
    /// `source` or `sink`.
    pub role: String,
    /// `udp` or `tcp`.
    pub proto: String,
    /// Local port.
    pub port: u32,
    /// Local IP address, dotted quad.
    pub ip: String,
    /// Node of the peer generator.
    pub target_vnode: String,
    /// Name of the peer generator.
    pub target_vname: String,
    /// Peer port.
    pub target_port: u32,
    /// Peer IP address, dotted quad.
    pub target_ip: String,
    /// `TG` (Emulab's trafgen) or `NSE`.
    pub generator: String,
}

/// One member of an event group (`event_groups`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRow {
    /// The group's name (an OBJNAME events can target).
    pub group_name: String,
    /// The member agent's name.
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
    /// `eventlist.idx`: the event's position in load order, from 1.
    pub idx: u64,
    /// Seconds after time zero.
    pub time: f64,
    /// Target node, `*`, or empty for links and queues.
    pub vnode: String,
    /// Target object name (OBJNAME).
    pub vname: String,
    /// Object type name from `event_objecttypes`.
    pub objtype: String,
    /// Event type name from `event_eventtypes`.
    pub eventtype: String,
    /// The ARGS string (empty when none).
    pub arguments: String,
}

/// An agent as the scheduler loads it: `virt_agents` joined with
/// `reserved`, `nodes`, `node_types` and `interfaces` (docs/emulab-model.md §6.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent name (OBJNAME).
    pub vname: String,
    /// `*` for broadcast agents.
    pub vnode: String,
    /// Object type name from `event_objecttypes`.
    pub objtype: String,
    /// Physical node id (`reserved.node_id`), `None` when the vnode is not
    /// mapped (or is `*`).
    pub node_id: Option<String>,
    /// Control-network IPv4 of the physical host, `None` if unknown.
    pub ipaddr: Option<String>,
}

/// An experiment's life-cycle state: Emulab's `EXPTSTATE_*` values, stored
/// as their text in `experiments.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExperimentState {
    /// Created, never swapped in (`new`).
    New,
    /// Being parsed and set up before its first swap-in (`prerunning`).
    Prerunning,
    /// Defined but holding no nodes (`swapped`).
    Swapped,
    /// Waiting in the batch queue (`queued`).
    Queued,
    /// Being swapped out (`swapping`).
    Swapping,
    /// Being swapped in (`activating`).
    Activating,
    /// Swapped in and running; the scheduler waits for this (`active`).
    Active,
    /// Being torn down for good (`terminating`).
    Terminating,
    /// Terminated (`ended`).
    Ended,
    /// A modify is parsing the new NS file (`modify_parse`).
    ModifyParse,
    /// A modify is re-parsing (`modify_reparse`).
    ModifyReparse,
    /// A modify is re-swapping the nodes (`modify_reswap`).
    ModifyReswap,
    /// Being restarted (`restarting`).
    Restarting,
}

impl ExperimentState {
    /// Every state, in Emulab's order.
    pub const ALL: [ExperimentState; 13] = [
        ExperimentState::New,
        ExperimentState::Prerunning,
        ExperimentState::Swapped,
        ExperimentState::Queued,
        ExperimentState::Swapping,
        ExperimentState::Activating,
        ExperimentState::Active,
        ExperimentState::Terminating,
        ExperimentState::Ended,
        ExperimentState::ModifyParse,
        ExperimentState::ModifyReparse,
        ExperimentState::ModifyReswap,
        ExperimentState::Restarting,
    ];

    /// The text Emulab stores in `experiments.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentState::New => "new",
            ExperimentState::Prerunning => "prerunning",
            ExperimentState::Swapped => "swapped",
            ExperimentState::Queued => "queued",
            ExperimentState::Swapping => "swapping",
            ExperimentState::Activating => "activating",
            ExperimentState::Active => "active",
            ExperimentState::Terminating => "terminating",
            ExperimentState::Ended => "ended",
            ExperimentState::ModifyParse => "modify_parse",
            ExperimentState::ModifyReparse => "modify_reparse",
            ExperimentState::ModifyReswap => "modify_reswap",
            ExperimentState::Restarting => "restarting",
        }
    }

    /// The valid state names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for ExperimentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExperimentState {
    type Err = StoreError;

    /// Parses the exact lower-case Emulab spelling; anything else is an
    /// [`StoreError::InvalidState`] that lists the valid states.
    fn from_str(text: &str) -> Result<Self, StoreError> {
        Self::ALL
            .iter()
            .copied()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| StoreError::InvalidState {
                value: shorten(text),
                valid: Self::valid_names(),
            })
    }
}

/// What `create_experiment` needs: the columns an operator supplies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewExperiment {
    /// The experiment's pid/eid.
    pub id: ExperimentId,
    /// Project group the experiment belongs to (`experiments.gid`); Emulab
    /// uses the pid for the project's default group.
    pub gid: String,
    /// The creating user (`expt_head_uid`; also the first `expt_swap_uid`).
    pub creator_uid: String,
    /// Absolute experiment directory (`experiments.path`), conventionally
    /// `/proj/<pid>/exp/<eid>`; the event key file lives under it.
    pub path: String,
}

impl NewExperiment {
    /// Bundles the creation parameters.
    pub fn new(
        id: ExperimentId,
        gid: impl Into<String>,
        creator_uid: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        NewExperiment {
            id,
            gid: gid.into(),
            creator_uid: creator_uid.into(),
            path: path.into(),
        }
    }
}

/// One `experiments` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experiment {
    /// pid/eid.
    pub id: ExperimentId,
    /// Unique experiment index (`experiments.idx`), never reused.
    pub idx: u64,
    /// Project group (`gid`).
    pub gid: String,
    /// Creator (`expt_head_uid`).
    pub expt_head_uid: String,
    /// Who last swapped it (`expt_swap_uid`).
    pub expt_swap_uid: String,
    /// Life-cycle state (`state`).
    pub state: ExperimentState,
    /// Batch state (`batchstate`), when the batch system uses it.
    pub batchstate: Option<String>,
    /// Experiment directory (`path`).
    pub path: String,
    /// Swap log file (`logfile`), when one was recorded.
    pub logfile: Option<String>,
    /// Web access key hash (`keyhash`), when one was recorded.
    pub keyhash: Option<String>,
    /// The HMAC event key (`eventkey`), once set.
    pub eventkey: Option<String>,
    /// Linktest level 0..=4 (`linktest_level`).
    pub linktest_level: u8,
    /// When the row was created (`expt_created`, UTC, `YYYY-MM-DD HH:MM:SS`).
    pub expt_created: String,
}

/// One physical assignment made at swap-in: virtual node `vnode` runs on
/// physical node `node_id`, whose control-network address is `control_ip`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeAssignment {
    /// Virtual node name (a `virt_nodes.vname`).
    pub vnode: String,
    /// Physical node id (`reserved.node_id`, `nodes.node_id`).
    pub node_id: String,
    /// Control-network IPv4 address, dotted quad (`interfaces.IP`).
    pub control_ip: String,
}

/// A testbed user (`users`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Emulab user id (`uid`).
    pub uid: String,
    /// Unix uid the user's processes run as (`unix_uid`).
    pub unix_uid: u32,
    /// Account status (`status`), e.g. `active`.
    pub status: String,
    /// Testbed administrator (`admin`).
    pub admin: bool,
}

/// A project group (`groups`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Project id (`pid`).
    pub pid: String,
    /// Group id within the project (`gid`); the project's default group has
    /// `gid == pid`.
    pub gid: String,
    /// Unix gid (`unix_gid`).
    pub unix_gid: u32,
    /// Unix group name (`unix_name`).
    pub unix_name: String,
}

/// How much a member is trusted in a group (`group_membership.trust`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trust {
    /// Applied but not approved.
    None,
    /// Ordinary member.
    User,
    /// May control experiments as root on their nodes.
    LocalRoot,
    /// Group leader.
    GroupRoot,
    /// Project leader.
    ProjectRoot,
}

impl Trust {
    /// The text Emulab stores in `group_membership.trust`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::None => "none",
            Trust::User => "user",
            Trust::LocalRoot => "local_root",
            Trust::GroupRoot => "group_root",
            Trust::ProjectRoot => "project_root",
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trust {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        [
            Trust::None,
            Trust::User,
            Trust::LocalRoot,
            Trust::GroupRoot,
            Trust::ProjectRoot,
        ]
        .into_iter()
        .find(|trust| trust.as_str() == text)
        .ok_or_else(|| StoreError::InvalidTrust {
            value: shorten(text),
        })
    }
}

/// A user's membership in a project group (`group_membership`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMembership {
    /// The member (`uid`).
    pub uid: String,
    /// Project of the group (`pid`).
    pub pid: String,
    /// The group (`gid`).
    pub gid: String,
    /// Trust level (`trust`).
    pub trust: Trust,
}

/// One row of a type table (`event_objecttypes`, `event_eventtypes`,
/// `event_triggertypes`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeEntry {
    /// The table index (`idx`) other tables refer to.
    pub idx: u16,
    /// The type name (`type`).
    pub name: String,
}

/// Which type table [`crate::ExperimentStore::type_table`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeTable {
    /// `event_objecttypes`.
    ObjectTypes,
    /// `event_eventtypes`.
    EventTypes,
    /// `event_triggertypes`.
    TriggerTypes,
}

impl TypeTable {
    /// The SQL table name.
    pub fn table_name(self) -> &'static str {
        match self {
            TypeTable::ObjectTypes => "event_objecttypes",
            TypeTable::EventTypes => "event_eventtypes",
            TypeTable::TriggerTypes => "event_triggertypes",
        }
    }
}

// ----- validation of what callers hand the store -----
//
// The store checks values here, before any backend touches its database,
// so both backends refuse the same input with the same message and a bulk
// insert never fails half-way on a row the model could have refused.

/// Longest experiment path accepted (Linux `PATH_MAX`).
const MAX_PATH_LEN: usize = 4096;

/// Longest physical node id accepted at swap-in.
const MAX_NODE_ID_LEN: usize = 64;

/// Longest virtual name (node, link, agent, group) accepted: Emulab's
/// `varchar(64)` key columns, with room to spare.
pub const MAX_VNAME_LEN: usize = 255;

impl NewExperiment {
    /// Checks names against Emulab's rules and that the path is absolute.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.id.validate()?;
        check_name("group id", &self.gid, MAX_GID_LEN)?;
        check_name("user id", &self.creator_uid, MAX_UID_LEN)?;
        if !self.path.starts_with('/') || self.path.len() > MAX_PATH_LEN || self.path.contains('\0')
        {
            return Err(StoreError::InvalidInput(format!(
                "experiment directory `{}` must be an absolute path (such as /proj/<pid>/exp/<eid>) \
                 of at most {MAX_PATH_LEN} bytes",
                shorten(&self.path)
            )));
        }
        Ok(())
    }
}

/// A finite, non-negative quantity (times, delays).
fn check_non_negative(value: f64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}; it must be a finite number of at least 0",
            what()
        )))
    }
}

/// A loss rate: a probability.
fn check_rate(value: f64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}; it must be between 0 and 1",
            what()
        )))
    }
}

/// A value that fits a signed 64-bit column.
fn check_i64(value: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if i64::try_from(value).is_ok() {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}, larger than the store can hold",
            what()
        )))
    }
}

/// A name that is a key column: non-empty text of bounded length.
fn check_vname(value: &str, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if value.len() <= MAX_VNAME_LEN {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {} bytes long; names may be at most {MAX_VNAME_LEN} bytes",
            what(),
            value.len()
        )))
    }
}

/// The message for a row whose (vname, vnode) key is already taken.
fn declared_twice(what: &str, vname: &str, vnode: &str) -> String {
    format!(
        "{what} `{}` on vnode `{}` is declared twice",
        shorten(vname),
        shorten(vnode)
    )
}

/// Fails with `message()` when `key` was seen before.
fn once<'a, K: std::hash::Hash + Eq + 'a>(
    seen: &mut std::collections::HashSet<K>,
    key: K,
    message: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    if seen.insert(key) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(message()))
    }
}

impl VirtLanMember {
    /// Checks delays, loss rates, bandwidths and the queue weight.
    pub fn validate(&self) -> Result<(), StoreError> {
        let which = || {
            format!(
                "link/LAN `{}` member `{}`",
                shorten(&self.vname),
                shorten(&self.member)
            )
        };
        check_vname(&self.vname, || format!("the name of {}", which()))?;
        check_vname(&self.member, || format!("the member name of {}", which()))?;
        check_non_negative(self.delay, || format!("delay of {}", which()))?;
        check_non_negative(self.rdelay, || format!("reverse delay of {}", which()))?;
        check_rate(self.lossrate, || format!("loss rate of {}", which()))?;
        check_rate(self.rlossrate, || {
            format!("reverse loss rate of {}", which())
        })?;
        check_i64(self.bandwidth, || format!("bandwidth of {}", which()))?;
        check_i64(self.rbandwidth, || {
            format!("reverse bandwidth of {}", which())
        })?;
        if !(self.q_weight > 0.0 && self.q_weight <= 1.0) {
            return Err(StoreError::InvalidInput(format!(
                "queue weight of {} is {}; it must be more than 0 and at most 1",
                which(),
                self.q_weight
            )));
        }
        Ok(())
    }
}

impl VirtualExperiment {
    /// Checks every row a store would write, and that no key is used twice,
    /// so that writing the rows cannot fail half-way (the type names are
    /// checked against the store's type tables when it writes).
    pub fn validate(&self) -> Result<(), StoreError> {
        use std::collections::HashSet;
        let mut nodes = HashSet::new();
        for node in &self.nodes {
            if node.vname.is_empty() || node.vname == "*" {
                return Err(StoreError::InvalidInput(format!(
                    "virtual node name `{}` is not usable: node names must be non-empty and not `*`",
                    shorten(&node.vname)
                )));
            }
            check_vname(&node.vname, || "a virtual node name".to_owned())?;
            once(&mut nodes, node.vname.as_str(), || {
                format!("virtual node `{}` is declared twice", shorten(&node.vname))
            })?;
        }
        let mut members = HashSet::new();
        for lan in &self.lan_members {
            lan.validate()?;
            once(
                &mut members,
                (lan.vname.as_str(), lan.member.as_str()),
                || {
                    format!(
                        "link/LAN `{}` member `{}` appears twice",
                        shorten(&lan.vname),
                        shorten(&lan.member)
                    )
                },
            )?;
        }
        let mut agents = HashSet::new();
        for agent in &self.agents {
            check_vname(&agent.vname, || "an agent name".to_owned())?;
            check_vname(&agent.vnode, || "an agent's vnode".to_owned())?;
            once(
                &mut agents,
                (agent.vname.as_str(), agent.vnode.as_str()),
                || declared_twice("agent", &agent.vname, &agent.vnode),
            )?;
        }
        let mut programs = HashSet::new();
        for program in &self.programs {
            check_vname(&program.vname, || "a program name".to_owned())?;
            check_vname(&program.vnode, || "a program's vnode".to_owned())?;
            once(
                &mut programs,
                (program.vname.as_str(), program.vnode.as_str()),
                || declared_twice("program", &program.vname, &program.vnode),
            )?;
        }
        let mut trafgens = HashSet::new();
        for tg in &self.trafgens {
            check_vname(&tg.vname, || "a traffic generator name".to_owned())?;
            check_vname(&tg.vnode, || "a traffic generator's vnode".to_owned())?;
            once(
                &mut trafgens,
                (tg.vname.as_str(), tg.vnode.as_str()),
                || declared_twice("traffic generator", &tg.vname, &tg.vnode),
            )?;
        }
        for (position, event) in self.events.iter().enumerate() {
            check_vname(&event.vname, || {
                format!("the object name of event {}", position + 1)
            })?;
            check_vname(&event.vnode, || {
                format!("the vnode of event {}", position + 1)
            })?;
            check_non_negative(event.time, || {
                format!(
                    "the time of event {} (`{}` {} at {})",
                    position + 1,
                    shorten(&event.vname),
                    shorten(&event.eventtype),
                    event.time
                )
            })?;
        }
        Ok(())
    }
}

/// Checks a swap-in's assignments: well-formed node ids and control IPs,
/// each vnode and each physical node used once.
pub fn validate_assignments(assignments: &[NodeAssignment]) -> Result<(), StoreError> {
    use std::collections::HashSet;
    let mut vnodes = HashSet::new();
    let mut node_ids = HashSet::new();
    for assignment in assignments {
        let node_id = &assignment.node_id;
        let ok = !node_id.is_empty()
            && node_id.len() <= MAX_NODE_ID_LEN
            && node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(StoreError::InvalidInput(format!(
                "physical node id `{}` must be 1 to {MAX_NODE_ID_LEN} characters from \
                 A-Z, a-z, 0-9, `_`, `-` and `.`",
                shorten(node_id)
            )));
        }
        if assignment.control_ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(StoreError::InvalidInput(format!(
                "control IP `{}` of node {} is not a dotted-quad IPv4 address",
                shorten(&assignment.control_ip),
                assignment.node_id
            )));
        }
        once(&mut vnodes, assignment.vnode.as_str(), || {
            format!(
                "vnode `{}` is assigned twice; give each virtual node one physical node",
                shorten(&assignment.vnode)
            )
        })?;
        once(&mut node_ids, node_id.as_str(), || {
            format!("physical node {node_id} is assigned to two vnodes; give each its own node")
        })?;
    }
    Ok(())
}

impl User {
    /// Checks the uid and that a status is given.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name("user id", &self.uid, MAX_UID_LEN)?;
        if self.status.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "user `{}` needs a status such as `active`",
                self.uid
            )));
        }
        Ok(())
    }
}

impl Group {
    /// Checks the project, group and Unix group names.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name("project id", &self.pid, MAX_PID_LEN)?;
        check_name("group id", &self.gid, MAX_GID_LEN)?;
        check_name("Unix group name", &self.unix_name, MAX_GID_LEN)
    }
}
