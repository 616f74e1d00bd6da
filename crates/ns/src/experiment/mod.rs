//! The NS object world: what `$ns node`, `$ns duplex-link`, `new Program`
//! and friends create, and the methods those objects answer.
//!
//! NS is object-oriented Tcl: `set n0 [$ns node]` makes a node object and
//! `$n0 program-agent ...` calls a method on it. Emulab's front end names
//! each object after the variable it is first stored in (the node above is
//! called `n0`, and `set n(3) [$ns node]` gives `n-3`), and that name is what
//! ends up in the tables and in every event's OBJNAME. We do the same:
//! constructors return a temporary handle (`_o<N>`, a form no user variable
//! name can produce) and the interpreter's `set` calls
//! [`Experiment::adopt_name`] to rename it. Queues are the exception: their
//! name is fixed by Emulab as `<link>-<node>` (docs/emulab-model.md §9).
//!
//! Objects live in typed tables (`nodes`, `lanlinks`, ...) and refer to one
//! another by index, so renaming never breaks a reference; the name table
//! maps the current name to the object. Everything that depends on the
//! whole file (IP addresses, who is connected to whom, event targets'
//! nodes) is resolved once the file has run, in [`finish`](Experiment::finish).
//! The `$ns at` event forms are in the `events` submodule.

mod events;
mod finish;
mod queue;
mod simulator;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::error::{KindResult, Locate, NsError, NsErrorKind, NsResult, usage};
use crate::limits::{
    MAX_COMMAND_LINE_BYTES, MAX_GROUP_MEMBERS, MAX_LINK_MEMBERS, MAX_NAME_CHARS, MAX_OBJECTS,
};
use crate::units;

pub(crate) use events::PendingEvent;
use queue::{QueueSettings, QueueType};

/// A command argument after substitution, with the line its text started
/// on (so a loop body can be parsed with correct line numbers).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Arg {
    /// The substituted text.
    pub value: String,
    /// 1-based line where the word started.
    pub line: u32,
}

/// Index of an object in [`Experiment::objects`].
pub(crate) type ObjId = usize;

/// Agent names Emulab always creates; no object may take them.
const RESERVED_NAMES: [&str; 2] = ["linktest", "slothd"];

/// The interpreter's own commands. A word that names an object is a method
/// call, so an object with one of these names would hide the command.
const BUILTIN_COMMANDS: [&str; 8] = [
    "set", "source", "new", "list", "incr", "expr", "for", "foreach",
];

/// First transport port handed to traffic agents on a node; Emulab counts
/// up from 5000 and hands out the next number, so the first agent gets 5001.
const FIRST_AGENT_PORT_BASE: u32 = 5000;

/// The transport agents of `new Agent/...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrafficClass {
    Udp,
    Tcp,
    Null,
    TcpSink,
}

impl TrafficClass {
    fn class_name(self) -> &'static str {
        match self {
            TrafficClass::Udp => "Agent/UDP",
            TrafficClass::Tcp => "Agent/TCP",
            TrafficClass::Null => "Agent/Null",
            TrafficClass::TcpSink => "Agent/TCPSink",
        }
    }

    fn is_source(self) -> bool {
        matches!(self, TrafficClass::Udp | TrafficClass::Tcp)
    }
}

/// What an object is; the index points into the matching table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjKind {
    Simulator,
    Node(usize),
    LanLink(usize),
    Queue(usize),
    /// `[$ns link $a $b]`: one direction of a duplex link (a queue index).
    SimplexLink(usize),
    Program(usize),
    Traffic(usize),
    Cbr(usize),
    Group(usize),
}

/// One NS object.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    /// Current name (OBJNAME of its events).
    pub name: String,
    /// False while the object still has its temporary `_o<N>` handle.
    pub named: bool,
    pub kind: ObjKind,
    /// Line of the statement that created it.
    pub line: u32,
}

#[derive(Clone, Debug)]
struct NodeData {
    obj: ObjId,
    os: String,
    hardware: String,
    /// `(lanlink, member index)` per interface; the position is the vport.
    ports: Vec<(usize, usize)>,
    /// Address from `tb-set-ip`, applied to the node's only interface.
    whole_node_ip: Option<(Ipv4Addr, u32)>,
    /// Last transport port handed out on this node.
    last_agent_port: u32,
}

#[derive(Clone, Debug)]
struct MemberData {
    node: usize,
    vport: u32,
    /// Address from `tb-set-ip-link`/`-lan` (with its line), or assigned.
    ip: Option<(Ipv4Addr, u32)>,
    delay: f64,
    rdelay: f64,
    bandwidth: u64,
    rbandwidth: u64,
    loss: f64,
    rloss: f64,
    /// The member's outgoing queue (`virt_lans.q_*`).
    queue: QueueSettings,
}

#[derive(Clone, Debug)]
struct LanLinkData {
    obj: ObjId,
    is_lan: bool,
    members: Vec<MemberData>,
    mustdelay: bool,
}

#[derive(Clone, Debug)]
struct QueueData {
    obj: ObjId,
    lanlink: usize,
    member: usize,
}

#[derive(Clone, Debug)]
struct ProgramData {
    obj: ObjId,
    node: Option<usize>,
    command: String,
    /// `-dir` / `set dir`: the run's working directory (empty: default).
    dir: String,
    /// `-timeout` / `set timeout`: seconds, 0 for none.
    timeout: u32,
    /// `-expected-exit-code` / `set expected-exit-code`.
    expected_exit_code: u8,
}

impl ProgramData {
    fn new(obj: ObjId, node: Option<usize>) -> Self {
        ProgramData {
            obj,
            node,
            command: String::new(),
            dir: String::new(),
            timeout: 0,
            expected_exit_code: 0,
        }
    }

    /// Sets one of the settings a program agent takes (`command`, `dir`,
    /// `timeout`, `expected-exit-code`, Emulab's later names); `Ok(false)`
    /// when `field` is none of them.
    fn set(&mut self, field: &str, value: &str) -> KindResult<bool> {
        match field {
            "command" => {
                check_command_length(value)?;
                self.command = value.to_owned();
            }
            "dir" => {
                check_command_length(value)?;
                if !value.starts_with('/') {
                    return Err(NsErrorKind::InvalidValue {
                        what: "program dir".into(),
                        value: value.to_owned(),
                        reason: "it must be an absolute directory path such as /tmp".into(),
                    });
                }
                self.dir = value.to_owned();
            }
            "timeout" => {
                let seconds =
                    units::parse_integer_in("program timeout", value, 0, MAX_PROGRAM_TIMEOUT)?;
                self.timeout = u32::try_from(seconds).unwrap_or(u32::MAX);
            }
            "expected-exit-code" => {
                let code = units::parse_integer_in("program expected-exit-code", value, 0, 255)?;
                self.expected_exit_code = u8::try_from(code).unwrap_or(u8::MAX);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Longest program timeout accepted, in seconds (one year).
const MAX_PROGRAM_TIMEOUT: u64 = 365 * 86_400;

/// The program settings `-option VALUE` and `set FIELD VALUE` accept.
const PROGRAM_FIELDS: &str = "command, dir, timeout, expected-exit-code";

#[derive(Clone, Debug)]
struct TrafficData {
    obj: ObjId,
    class: TrafficClass,
    node: Option<usize>,
    port: u32,
    /// The CBR source attached to this agent.
    application: Option<usize>,
    /// The agent at the other end, and the line of `$ns connect`.
    peer: Option<(usize, u32)>,
}

#[derive(Clone, Debug)]
struct CbrData {
    obj: ObjId,
    agent: Option<usize>,
    packet_size: String,
    rate: String,
    interval: String,
    iptos: String,
}

#[derive(Clone, Debug)]
struct GroupData {
    obj: ObjId,
    members: Vec<ObjId>,
}

/// Everything the NS file has built so far.
#[derive(Debug, Default)]
pub(crate) struct Experiment {
    objects: Vec<Object>,
    by_name: HashMap<String, ObjId>,
    simulator: Option<ObjId>,
    /// Line of `$ns run`, once seen.
    run_line: Option<u32>,
    routertype: Option<&'static str>,
    nodes: Vec<NodeData>,
    lanlinks: Vec<LanLinkData>,
    queues: Vec<QueueData>,
    programs: Vec<ProgramData>,
    traffic: Vec<TrafficData>,
    /// Traffic agents in `$ns attach-agent` order (Emulab's row order).
    attach_order: Vec<usize>,
    cbrs: Vec<CbrData>,
    groups: Vec<GroupData>,
    events: Vec<PendingEvent>,
    /// `(from node, to node)` to the queue leaving `from` on the first
    /// duplex link between them, for `$ns link` and `tb-set-link-loss`.
    link_index: HashMap<(usize, usize), usize>,
    /// Link and LAN memberships so far (bounded by [`MAX_LINK_MEMBERS`]).
    link_members: usize,
    /// `(group, member)` pairs, to keep each member once per group.
    group_members: HashSet<(usize, ObjId)>,
}

impl Experiment {
    pub(crate) fn new() -> Self {
        Experiment::default()
    }

    /// True once `$ns run` has been executed.
    pub(crate) fn has_run(&self) -> bool {
        self.run_line.is_some()
    }

    /// The object called `name`, if any.
    pub(crate) fn lookup(&self, name: &str) -> Option<ObjId> {
        self.by_name.get(name).copied()
    }

    fn object(&self, id: ObjId) -> KindResult<&Object> {
        self.objects
            .get(id)
            .ok_or_else(|| NsErrorKind::Invalid(format!("internal: no object #{id}")))
    }

    fn name_of(&self, id: ObjId) -> &str {
        self.objects.get(id).map(|o| o.name.as_str()).unwrap_or("?")
    }

    fn class_of(&self, id: ObjId) -> &'static str {
        match self.objects.get(id).map(|o| o.kind) {
            Some(ObjKind::Simulator) => "Simulator",
            Some(ObjKind::Node(_)) => "Node",
            Some(ObjKind::LanLink(l)) => {
                if self.lanlinks.get(l).is_some_and(|l| l.is_lan) {
                    "Lan"
                } else {
                    "Link"
                }
            }
            Some(ObjKind::Queue(_)) => "Queue",
            Some(ObjKind::SimplexLink(_)) => "SimplexLink",
            Some(ObjKind::Program(_)) => "Program",
            Some(ObjKind::Traffic(t)) => self
                .traffic
                .get(t)
                .map(|t| t.class.class_name())
                .unwrap_or("Agent"),
            Some(ObjKind::Cbr(_)) => "Application/Traffic/CBR",
            Some(ObjKind::Group(_)) => "EventGroup",
            None => "unknown object",
        }
    }

    /// Describes an object for messages: "the Node created on line 4".
    fn describe(&self, id: ObjId) -> String {
        match self.objects.get(id) {
            Some(o) => format!("the {} created on line {}", self.class_of(id), o.line),
            None => "another object".to_string(),
        }
    }

    /// Creates an object with a temporary handle and returns its id.
    fn create(&mut self, kind: ObjKind, line: u32) -> KindResult<ObjId> {
        if self.objects.len() >= MAX_OBJECTS {
            return Err(NsErrorKind::LimitExceeded {
                what: "number of NS objects".into(),
                limit: MAX_OBJECTS as u64,
            });
        }
        let id = self.objects.len();
        let name = format!("_o{id}");
        self.by_name.insert(name.clone(), id);
        self.objects.push(Object {
            name,
            named: false,
            kind,
            line,
        });
        Ok(id)
    }

    /// Creates an object with a fixed name (queues).
    fn create_named(&mut self, kind: ObjKind, name: String, line: u32) -> KindResult<ObjId> {
        if let Some(&other) = self.by_name.get(&name) {
            return Err(NsErrorKind::NameConflict {
                name,
                other: self.describe(other),
            });
        }
        let id = self.create(kind, line)?;
        if let Some(object) = self.objects.get_mut(id) {
            self.by_name.remove(&object.name);
            object.name = name.clone();
            object.named = true;
        }
        self.by_name.insert(name, id);
        Ok(id)
    }

    /// Called by `set var value`: when `value` is the temporary handle of a
    /// new object, the object takes its name from `var` (`n0`, or `n-3` for
    /// `n(3)`). Returns the new name, which the variable then holds.
    pub(crate) fn adopt_name(&mut self, value: &str, var: &str) -> KindResult<Option<String>> {
        let Some(id) = self.lookup(value) else {
            return Ok(None);
        };
        let object = self.object(id)?;
        if object.named || matches!(object.kind, ObjKind::SimplexLink(_) | ObjKind::Queue(_)) {
            return Ok(None);
        }
        let is_node = matches!(object.kind, ObjKind::Node(_));
        let name = derive_name(var);
        validate_name(&name, is_node)?;
        if BUILTIN_COMMANDS.contains(&name.as_str()) || name.starts_with("tb-") {
            return Err(NsErrorKind::NameConflict {
                name,
                other: "a built-in command (an object of that name would hide it); choose another variable name".into(),
            });
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(NsErrorKind::NameConflict {
                name,
                other: "an agent Emulab always creates; choose another variable name".into(),
            });
        }
        if let Some(&other) = self.by_name.get(&name) {
            return Err(NsErrorKind::NameConflict {
                other: format!(
                    "{} (to create several objects in a loop, store them in an array such as {}($i))",
                    self.describe(other),
                    var
                ),
                name,
            });
        }
        self.rename(id, name.clone())?;
        Ok(Some(name))
    }

    fn rename(&mut self, id: ObjId, name: String) -> KindResult<()> {
        let kind = {
            let object = self
                .objects
                .get_mut(id)
                .ok_or_else(|| NsErrorKind::Invalid(format!("internal: no object #{id}")))?;
            self.by_name.remove(&object.name);
            object.name = name.clone();
            object.named = true;
            object.kind
        };
        self.by_name.insert(name, id);
        // Queue names are derived from their link's and node's names.
        let affected: Vec<usize> = match kind {
            ObjKind::Node(n) => (0..self.queues.len())
                .filter(|&q| self.queue_node(q) == Some(n))
                .collect(),
            ObjKind::LanLink(l) => (0..self.queues.len())
                .filter(|&q| self.queues.get(q).is_some_and(|d| d.lanlink == l))
                .collect(),
            _ => Vec::new(),
        };
        for q in affected {
            let new_name = self.queue_name(q);
            let Some(queue_obj) = self.queues.get(q).map(|d| d.obj) else {
                continue;
            };
            if let Some(&other) = self.by_name.get(&new_name)
                && other != queue_obj
            {
                return Err(NsErrorKind::NameConflict {
                    name: new_name,
                    other: self.describe(other),
                });
            }
            if let Some(object) = self.objects.get_mut(queue_obj) {
                self.by_name.remove(&object.name);
                object.name = new_name.clone();
            }
            self.by_name.insert(new_name, queue_obj);
        }
        Ok(())
    }

    fn queue_node(&self, q: usize) -> Option<usize> {
        let data = self.queues.get(q)?;
        Some(
            self.lanlinks
                .get(data.lanlink)?
                .members
                .get(data.member)?
                .node,
        )
    }

    /// `<link>-<node>`: Emulab's agent name for one direction of a link.
    fn queue_name(&self, q: usize) -> String {
        let Some(data) = self.queues.get(q) else {
            return String::new();
        };
        let link = self
            .lanlinks
            .get(data.lanlink)
            .map(|l| self.name_of(l.obj))
            .unwrap_or("?");
        let node = self
            .queue_node(q)
            .and_then(|n| self.nodes.get(n))
            .map(|n| self.name_of(n.obj))
            .unwrap_or("?");
        format!("{link}-{node}")
    }

    // ----- argument helpers -------------------------------------------------

    /// Resolves an argument that must name an object.
    fn object_arg(&self, arg: &str) -> KindResult<ObjId> {
        self.lookup(arg).ok_or_else(|| unknown_object(arg))
    }

    fn wrong_class(&self, id: ObjId, expected: &str) -> NsErrorKind {
        NsErrorKind::WrongClass {
            name: self.name_of(id).to_string(),
            expected: expected.to_string(),
            found: self.class_of(id).to_string(),
        }
    }

    fn node_arg(&self, arg: &str) -> KindResult<usize> {
        let id = self.object_arg(arg)?;
        match self.object(id)?.kind {
            ObjKind::Node(n) => Ok(n),
            _ => Err(self.wrong_class(id, "a Node")),
        }
    }

    /// A link (`want_lan == Some(false)`), a LAN (`Some(true)`) or either.
    fn lanlink_arg(&self, arg: &str, want_lan: Option<bool>) -> KindResult<usize> {
        let id = self.object_arg(arg)?;
        let expected = match want_lan {
            Some(true) => "a Lan (from $ns make-lan)",
            Some(false) => "a Link (from $ns duplex-link)",
            None => "a Link or Lan",
        };
        match self.object(id)?.kind {
            ObjKind::LanLink(l) => {
                let is_lan = self.lanlinks.get(l).is_some_and(|d| d.is_lan);
                if want_lan.is_none_or(|want| want == is_lan) {
                    Ok(l)
                } else {
                    Err(self.wrong_class(id, expected))
                }
            }
            _ => Err(self.wrong_class(id, expected)),
        }
    }

    fn traffic_arg(&self, arg: &str) -> KindResult<usize> {
        let id = self.object_arg(arg)?;
        match self.object(id)?.kind {
            ObjKind::Traffic(t) => Ok(t),
            _ => Err(self.wrong_class(
                id,
                "an Agent (Agent/UDP, Agent/TCP, Agent/Null or Agent/TCPSink)",
            )),
        }
    }

    // ----- constructors -------------------------------------------------------

    /// `new CLASS ?args?`.
    pub(crate) fn new_object(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        let Some(class) = args.first() else {
            return Err(NsError::at(line, usage("new CLASS ?$ns?")));
        };
        let rest = args.get(1..).unwrap_or(&[]);
        let id = match class.value.as_str() {
            "Simulator" => {
                if !rest.is_empty() {
                    return Err(NsError::at(line, usage("new Simulator")));
                }
                if let Some(existing) = self.simulator {
                    return Err(NsError::at(
                        line,
                        NsErrorKind::Invalid(format!(
                            "only one Simulator may be created; '{}' already exists",
                            self.name_of(existing)
                        )),
                    ));
                }
                let id = self.create(ObjKind::Simulator, line).at_line(line)?;
                self.simulator = Some(id);
                id
            }
            "Program" | "EventGroup" => {
                // Emulab's form is `new Program $ns`; the simulator argument
                // is optional here since there is only one simulator.
                if rest.len() > 1 {
                    return Err(NsError::at(
                        line,
                        usage(&format!("new {} $ns", class.value)),
                    ));
                }
                if let Some(sim) = rest.first() {
                    let id = self.object_arg(&sim.value).at_line(line)?;
                    if self.object(id).at_line(line)?.kind != ObjKind::Simulator {
                        return Err(NsError::at(line, self.wrong_class(id, "the Simulator")));
                    }
                }
                if class.value == "Program" {
                    let id = self
                        .create(ObjKind::Program(self.programs.len()), line)
                        .at_line(line)?;
                    self.programs.push(ProgramData::new(id, None));
                    id
                } else {
                    let id = self
                        .create(ObjKind::Group(self.groups.len()), line)
                        .at_line(line)?;
                    self.groups.push(GroupData {
                        obj: id,
                        members: Vec::new(),
                    });
                    id
                }
            }
            "Agent/UDP" | "Agent/TCP" | "Agent/Null" | "Agent/TCPSink" => {
                if !rest.is_empty() {
                    return Err(NsError::at(line, usage(&format!("new {}", class.value))));
                }
                let class = match class.value.as_str() {
                    "Agent/UDP" => TrafficClass::Udp,
                    "Agent/TCP" => TrafficClass::Tcp,
                    "Agent/Null" => TrafficClass::Null,
                    _ => TrafficClass::TcpSink,
                };
                let id = self
                    .create(ObjKind::Traffic(self.traffic.len()), line)
                    .at_line(line)?;
                self.traffic.push(TrafficData {
                    obj: id,
                    class,
                    node: None,
                    port: 0,
                    application: None,
                    peer: None,
                });
                id
            }
            "Application/Traffic/CBR" => {
                if !rest.is_empty() {
                    return Err(NsError::at(line, usage("new Application/Traffic/CBR")));
                }
                let id = self
                    .create(ObjKind::Cbr(self.cbrs.len()), line)
                    .at_line(line)?;
                // Emulab's CBR defaults.
                self.cbrs.push(CbrData {
                    obj: id,
                    agent: None,
                    packet_size: "210".into(),
                    rate: "100Mbps".into(),
                    interval: String::new(),
                    iptos: String::new(),
                });
                id
            }
            other
                if other.starts_with("Agent/TCP/FullTcp")
                    || other == "Application/FTP"
                    || other == "Application/Telnet" =>
            {
                return Err(NsError::at(
                    line,
                    NsErrorKind::Unsupported(format!(
                        "class {other} needs Emulab's NSE simulation, which this front end does not provide; use Agent/UDP or Agent/TCP with Application/Traffic/CBR"
                    )),
                ));
            }
            other => {
                return Err(NsError::at(
                    line,
                    NsErrorKind::Unsupported(format!(
                        "class '{other}' (supported: Simulator, Program, EventGroup, Agent/UDP, Agent/TCP, Agent/Null, Agent/TCPSink, Application/Traffic/CBR)"
                    )),
                ));
            }
        };
        Ok(self.name_of(id).to_string())
    }

    // ----- method dispatch ----------------------------------------------------

    /// `$obj method args...`.
    pub(crate) fn call(&mut self, id: ObjId, args: &[Arg], line: u32) -> NsResult<String> {
        let kind = self.object(id).at_line(line)?.kind;
        let Some(method) = args.first() else {
            return Err(NsError::at(
                line,
                usage(&format!("${} METHOD ?ARG ...?", self.name_of(id))),
            ));
        };
        let rest = args.get(1..).unwrap_or(&[]);
        let method = method.value.as_str();
        match kind {
            ObjKind::Simulator => self.simulator_method(method, rest, line),
            ObjKind::Node(n) => self.node_method(n, method, rest, line),
            ObjKind::SimplexLink(q) => match (method, rest) {
                ("queue", []) => Ok(self
                    .name_of(self.queues.get(q).map_or(usize::MAX, |d| d.obj))
                    .to_string()),
                _ => Err(self.no_such_method(id, method, "queue", line)),
            },
            ObjKind::Queue(q) => self.queue_method(id, q, method, rest, line),
            ObjKind::Program(p) => self.program_method(id, p, method, rest, line),
            ObjKind::Cbr(c) => self.cbr_method(id, c, method, rest, line),
            ObjKind::Group(g) => match method {
                "add" => {
                    for member in rest {
                        self.add_group_member(g, &member.value).at_line(line)?;
                    }
                    Ok(String::new())
                }
                _ => Err(self.no_such_method(id, method, "add", line)),
            },
            ObjKind::LanLink(_) | ObjKind::Traffic(_) => {
                Err(self.no_such_method(id, method, "none outside $ns at", line))
            }
        }
    }

    fn no_such_method(&self, id: ObjId, method: &str, supported: &str, line: u32) -> NsError {
        NsError::at(
            line,
            NsErrorKind::Unsupported(format!(
                "{} method '{method}' on '{}' (supported: {supported})",
                self.class_of(id),
                self.name_of(id)
            )),
        )
    }

    fn simulator_name(&self) -> &str {
        self.simulator.map(|s| self.name_of(s)).unwrap_or("ns")
    }

    /// Creates a link or LAN over `nodes` with Emulab's per-member shaping:
    /// full bandwidth both ways, half the delay on each side (so two
    /// members see the delay given), no loss, and a default queue of
    /// `queue_type` for each member.
    fn add_lanlink(
        &mut self,
        is_lan: bool,
        nodes: &[usize],
        bandwidth: u64,
        delay: f64,
        queue_type: QueueType,
        line: u32,
    ) -> NsResult<ObjId> {
        let l = self.lanlinks.len();
        self.link_members = self.link_members.saturating_add(nodes.len());
        if self.link_members > MAX_LINK_MEMBERS {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "number of link and LAN memberships".into(),
                    limit: MAX_LINK_MEMBERS as u64,
                },
            ));
        }
        let id = self.create(ObjKind::LanLink(l), line).at_line(line)?;
        let mut members = Vec::with_capacity(nodes.len());
        for (member_index, &n) in nodes.iter().enumerate() {
            let node = self.nodes.get_mut(n).ok_or_else(|| {
                NsError::at(
                    line,
                    NsErrorKind::Invalid(format!("internal: no node #{n}")),
                )
            })?;
            let vport = u32::try_from(node.ports.len()).unwrap_or(u32::MAX);
            node.ports.push((l, member_index));
            members.push(MemberData {
                node: n,
                vport,
                ip: None,
                delay: delay / 2.0,
                rdelay: delay / 2.0,
                bandwidth,
                rbandwidth: bandwidth,
                loss: 0.0,
                rloss: 0.0,
                queue: QueueSettings::new(queue_type),
            });
        }
        self.lanlinks.push(LanLinkData {
            obj: id,
            is_lan,
            members,
            mustdelay: false,
        });
        if !is_lan {
            // The two directions' queues, named `<link>-<node>`.
            for member in 0..nodes.len() {
                let q = self.queues.len();
                self.queues.push(QueueData {
                    obj: usize::MAX,
                    lanlink: l,
                    member,
                });
                let name = self.queue_name(q);
                match self.create_named(ObjKind::Queue(q), name, line) {
                    Ok(obj) => {
                        if let Some(data) = self.queues.get_mut(q) {
                            data.obj = obj;
                        }
                        let from = nodes.get(member).copied().unwrap_or(usize::MAX);
                        let to = nodes.get(1 - member).copied().unwrap_or(usize::MAX);
                        self.link_index.entry((from, to)).or_insert(q);
                    }
                    Err(kind) => {
                        self.queues.pop();
                        return Err(NsError::at(line, kind));
                    }
                }
            }
        }
        Ok(id)
    }

    /// The queue of the first duplex link between `a` and `b`, in the
    /// direction leaving `a`.
    fn find_link_queue(&self, a: usize, b: usize) -> Option<usize> {
        self.link_index.get(&(a, b)).copied()
    }

    fn attach_agent(&mut self, n: usize, t: usize) -> KindResult<()> {
        let agent_name = self
            .traffic
            .get(t)
            .map_or("?", |d| self.name_of(d.obj))
            .to_string();
        let Some(agent) = self.traffic.get(t) else {
            return Err(unknown_object(&agent_name));
        };
        if let Some(current) = agent.node {
            return Err(NsErrorKind::Invalid(format!(
                "agent '{agent_name}' is already attached to node '{}'",
                self.nodes.get(current).map_or("?", |d| self.name_of(d.obj))
            )));
        }
        let node = self
            .nodes
            .get_mut(n)
            .ok_or_else(|| NsErrorKind::Invalid(format!("internal: no node #{n}")))?;
        node.last_agent_port =
            node.last_agent_port
                .checked_add(1)
                .ok_or_else(|| NsErrorKind::LimitExceeded {
                    what: "traffic agents on one node".into(),
                    limit: u64::from(u32::MAX - FIRST_AGENT_PORT_BASE),
                })?;
        let port = node.last_agent_port;
        if let Some(agent) = self.traffic.get_mut(t) {
            agent.node = Some(n);
            agent.port = port;
        }
        self.attach_order.push(t);
        Ok(())
    }

    fn connect(&mut self, s: usize, d: usize, line: u32) -> KindResult<()> {
        let (Some(source), Some(sink)) = (self.traffic.get(s), self.traffic.get(d)) else {
            return Err(NsErrorKind::Invalid("internal: unknown agent".into()));
        };
        let source_name = self.name_of(source.obj).to_string();
        let sink_name = self.name_of(sink.obj).to_string();
        if !source.class.is_source() {
            return Err(self.wrong_class(source.obj, "a sending agent (Agent/UDP or Agent/TCP)"));
        }
        if sink.class.is_source() {
            return Err(
                self.wrong_class(sink.obj, "a receiving agent (Agent/Null or Agent/TCPSink)")
            );
        }
        if source.class == TrafficClass::Udp && sink.class == TrafficClass::TcpSink {
            return Err(NsErrorKind::Invalid(format!(
                "'{source_name}' sends UDP but '{sink_name}' is an Agent/TCPSink; use Agent/Null for UDP"
            )));
        }
        for (agent, name) in [(source, &source_name), (sink, &sink_name)] {
            if agent.node.is_none() {
                return Err(NsErrorKind::Invalid(format!(
                    "agent '{name}' is not attached to a node; call $ns attach-agent first"
                )));
            }
            if agent.peer.is_some() {
                return Err(NsErrorKind::Invalid(format!(
                    "agent '{name}' is already connected"
                )));
            }
        }
        if let Some(source) = self.traffic.get_mut(s) {
            source.peer = Some((d, line));
        }
        if let Some(sink) = self.traffic.get_mut(d) {
            sink.peer = Some((s, line));
        }
        Ok(())
    }

    /// Class of an object for event-group purposes, `None` when it cannot
    /// be a member.
    fn group_class(&self, id: ObjId) -> Option<&'static str> {
        match self.objects.get(id)?.kind {
            ObjKind::LanLink(_) => Some("Link/Lan"),
            ObjKind::Queue(_) => Some("Queue"),
            ObjKind::Program(_) => Some("Program"),
            ObjKind::Cbr(_) => Some("Application/Traffic/CBR"),
            _ => None,
        }
    }

    fn add_group_member(&mut self, g: usize, member: &str) -> KindResult<()> {
        let id = self.object_arg(member)?;
        let Some(class) = self.group_class(id) else {
            return Err(self.wrong_class(
                id,
                "a link, LAN, queue, program or CBR source (the objects events can target)",
            ));
        };
        let Some(group) = self.groups.get(g) else {
            return Err(NsErrorKind::Invalid(format!("internal: no group #{g}")));
        };
        if let Some(&first) = group.members.first() {
            let group_class = self.group_class(first).unwrap_or("?");
            if group_class != class {
                let named = self.objects.get(group.obj).is_some_and(|o| o.named);
                return Err(NsErrorKind::MixedGroup {
                    group: if named {
                        self.name_of(group.obj).to_string()
                    } else {
                        String::new()
                    },
                    member: member.to_string(),
                    member_class: self.class_of(id).to_string(),
                    group_class: group_class.to_string(),
                });
            }
        }
        // Listing a member twice would send it every event twice.
        if !self.group_members.insert((g, id)) {
            return Ok(());
        }
        if self.group_members.len() > MAX_GROUP_MEMBERS {
            return Err(NsErrorKind::LimitExceeded {
                what: "number of event group memberships".into(),
                limit: MAX_GROUP_MEMBERS as u64,
            });
        }
        if let Some(group) = self.groups.get_mut(g) {
            group.members.push(id);
        }
        Ok(())
    }

    fn node_method(&mut self, n: usize, method: &str, args: &[Arg], line: u32) -> NsResult<String> {
        let node_name = self
            .nodes
            .get(n)
            .map_or("?", |d| self.name_of(d.obj))
            .to_string();
        match method {
            "program-agent" => {
                // The object is created only once every option is valid.
                let mut settings = ProgramData::new(0, Some(n));
                let mut rest = args;
                while let [option, value, tail @ ..] = rest {
                    let known = option
                        .value
                        .strip_prefix('-')
                        .map(|field| settings.set(field, &value.value))
                        .transpose()
                        .at_line(line)?;
                    if known != Some(true) {
                        return Err(NsError::at(
                            line,
                            NsErrorKind::Unsupported(format!(
                                "program-agent option '{}' (supported: -command, -dir, -timeout, -expected-exit-code)",
                                option.value
                            )),
                        ));
                    }
                    rest = tail;
                }
                if !rest.is_empty() {
                    return Err(NsError::at(
                        line,
                        usage(&format!(
                            "${node_name} program-agent ?-command COMMAND? ?-dir DIR? ?-timeout SECS? ?-expected-exit-code N?"
                        )),
                    ));
                }
                let id = self
                    .create(ObjKind::Program(self.programs.len()), line)
                    .at_line(line)?;
                settings.obj = id;
                self.programs.push(settings);
                Ok(self.name_of(id).to_string())
            }
            other => Err(NsError::at(
                line,
                NsErrorKind::Unsupported(format!(
                    "Node method '{other}' on '{node_name}' (supported: program-agent)"
                )),
            )),
        }
    }

    fn queue_method(
        &mut self,
        id: ObjId,
        q: usize,
        method: &str,
        args: &[Arg],
        line: u32,
    ) -> NsResult<String> {
        let ("set", [param, value]) = (method, args) else {
            return Err(self.no_such_method(id, method, "set PARAM_ VALUE", line));
        };
        let value = value.value.as_str();
        // The queue of `<link>-<node>` is the outgoing queue of that node's
        // member row, where Emulab wrote it (see the `queue` module).
        let Some(queue) = self.queues.get(q).and_then(|d| {
            self.lanlinks
                .get_mut(d.lanlink)
                .and_then(|l| l.members.get_mut(d.member))
                .map(|member| &mut member.queue)
        }) else {
            return Err(NsError::at(
                line,
                NsErrorKind::Invalid(format!("internal: no queue #{q}")),
            ));
        };
        queue.set(&param.value, value, line).at_line(line)?;
        Ok(value.to_string())
    }

    fn program_method(
        &mut self,
        id: ObjId,
        p: usize,
        method: &str,
        args: &[Arg],
        line: u32,
    ) -> NsResult<String> {
        let ("set", [field, value]) = (method, args) else {
            return Err(self.no_such_method(
                id,
                method,
                "set node NODE, set command|dir|timeout|expected-exit-code VALUE",
                line,
            ));
        };
        if field.value == "node" {
            let n = self.node_arg(&value.value).at_line(line)?;
            if let Some(program) = self.programs.get_mut(p) {
                program.node = Some(n);
            }
            return Ok(value.value.clone());
        }
        let known = match self.programs.get_mut(p) {
            Some(program) => program.set(&field.value, &value.value).at_line(line)?,
            None => false,
        };
        if !known {
            return Err(NsError::at(
                line,
                NsErrorKind::Unsupported(format!(
                    "Program field '{}' (supported: node, {PROGRAM_FIELDS})",
                    field.value
                )),
            ));
        }
        Ok(value.value.clone())
    }

    fn cbr_method(
        &mut self,
        id: ObjId,
        c: usize,
        method: &str,
        args: &[Arg],
        line: u32,
    ) -> NsResult<String> {
        match (method, args) {
            ("attach-agent", [agent]) => {
                let t = self.traffic_arg(&agent.value).at_line(line)?;
                let Some(data) = self.traffic.get(t) else {
                    return Err(NsError::at(line, unknown_object(&agent.value)));
                };
                if !data.class.is_source() {
                    return Err(NsError::at(
                        line,
                        self.wrong_class(data.obj, "a sending agent (Agent/UDP or Agent/TCP)"),
                    ));
                }
                if data.application.is_some() {
                    return Err(NsError::at(
                        line,
                        NsErrorKind::Invalid(format!(
                            "agent '{}' already has a traffic source",
                            agent.value
                        )),
                    ));
                }
                if self.cbrs.get(c).is_some_and(|d| d.agent.is_some()) {
                    return Err(NsError::at(
                        line,
                        NsErrorKind::Invalid(format!(
                            "'{}' is already attached to an agent",
                            self.name_of(id)
                        )),
                    ));
                }
                if let Some(data) = self.traffic.get_mut(t) {
                    data.application = Some(c);
                }
                if let Some(cbr) = self.cbrs.get_mut(c) {
                    cbr.agent = Some(t);
                }
                Ok(String::new())
            }
            ("set", [param, value]) => {
                let value = value.value.clone();
                match param.value.as_str() {
                    "packetSize_" => {
                        events::check_packet_size(&value).at_line(line)?;
                    }
                    "rate_" => {
                        // Zero or empty means "no rate; use interval_".
                        if !value.is_empty() && !units::is_numeric_zero(&value) {
                            units::parse_bw(&value).at_line(line)?;
                        }
                    }
                    "interval_" => {
                        if !value.is_empty() {
                            units::parse_plain_number("CBR interval_", &value).at_line(line)?;
                        }
                    }
                    "iptos_" => {
                        if !value.is_empty() {
                            events::check_iptos(&value).at_line(line)?;
                        }
                    }
                    other => {
                        return Err(NsError::at(
                            line,
                            NsErrorKind::Unsupported(format!(
                                "CBR parameter '{other}' (supported: packetSize_, rate_, interval_, iptos_)"
                            )),
                        ));
                    }
                }
                if let Some(cbr) = self.cbrs.get_mut(c) {
                    match param.value.as_str() {
                        "packetSize_" => cbr.packet_size = value.clone(),
                        "rate_" => cbr.rate = value.clone(),
                        "interval_" => cbr.interval = value.clone(),
                        _ => cbr.iptos = value.clone(),
                    }
                }
                Ok(value)
            }
            _ => Err(self.no_such_method(id, method, "attach-agent AGENT, set PARAM_ VALUE", line)),
        }
    }

    // ----- tb-* commands ------------------------------------------------------

    /// Runs a `tb-*` command; `None` when `name` is not one we know.
    pub(crate) fn tb_command(
        &mut self,
        name: &str,
        args: &[Arg],
        line: u32,
    ) -> Option<NsResult<String>> {
        let values: Vec<&str> = args.iter().map(|a| a.value.as_str()).collect();
        let result = match name {
            "tb-set-node-os" => self.tb_set_node_string(&values, name, "OS", |n, v| n.os = v),
            "tb-set-hardware" => {
                self.tb_set_node_string(&values, name, "TYPE", |n, v| n.hardware = v)
            }
            "tb-set-ip" => self.tb_set_ip(&values, line),
            "tb-set-ip-link" => self.tb_set_ip_member(&values, false, line),
            "tb-set-ip-lan" => self.tb_set_ip_member(&values, true, line),
            "tb-set-link-loss" => self.tb_set_loss(&values, false),
            "tb-set-lan-loss" => self.tb_set_loss(&values, true),
            "tb-set-link-bandwidth" => self.tb_set_link_bandwidth(&values),
            "tb-set-link-delay" => self.tb_set_link_delay(&values),
            _ => return None,
        };
        Some(result.map(|()| String::new()).at_line(line))
    }

    fn tb_set_node_string(
        &mut self,
        values: &[&str],
        command: &str,
        what: &str,
        apply: fn(&mut NodeData, String),
    ) -> KindResult<()> {
        let [node, value] = values else {
            return Err(usage(&format!("{command} NODE {what}")));
        };
        let n = self.node_arg(node)?;
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(NsErrorKind::InvalidValue {
                what: what.to_string(),
                value: (*value).to_string(),
                reason: "it must be one word".into(),
            });
        }
        if let Some(data) = self.nodes.get_mut(n) {
            apply(data, (*value).to_string());
        }
        Ok(())
    }

    fn tb_set_ip(&mut self, values: &[&str], line: u32) -> KindResult<()> {
        let [node, ip] = values else {
            return Err(usage("tb-set-ip NODE IP"));
        };
        let n = self.node_arg(node)?;
        let ip = parse_ip(ip)?;
        if let Some(data) = self.nodes.get_mut(n) {
            data.whole_node_ip = Some((ip, line));
        }
        Ok(())
    }

    fn tb_set_ip_member(&mut self, values: &[&str], lan: bool, line: u32) -> KindResult<()> {
        let command = if lan {
            "tb-set-ip-lan NODE LAN IP"
        } else {
            "tb-set-ip-link NODE LINK IP"
        };
        let [node, lanlink, ip] = values else {
            return Err(usage(command));
        };
        let n = self.node_arg(node)?;
        let l = self.lanlink_arg(lanlink, Some(lan))?;
        let ip = parse_ip(ip)?;
        let member = self
            .lanlinks
            .get_mut(l)
            .and_then(|d| d.members.iter_mut().find(|m| m.node == n))
            .ok_or_else(|| {
                NsErrorKind::Invalid(format!("node '{node}' is not a member of '{lanlink}'"))
            })?;
        member.ip = Some((ip, line));
        Ok(())
    }

    /// `tb-set-link-loss LINK RATE`, `tb-set-link-loss NODE1 NODE2 RATE` and
    /// `tb-set-lan-loss LAN RATE`. The rate is end to end: each of the two
    /// halves a packet crosses gets 1 - sqrt(1 - RATE), as Emulab stores it.
    fn tb_set_loss(&mut self, values: &[&str], lan: bool) -> KindResult<()> {
        let (l, rate) = match (lan, values) {
            (true, [lan, rate]) => (self.lanlink_arg(lan, Some(true))?, *rate),
            (false, [link, rate]) => (self.lanlink_arg(link, Some(false))?, *rate),
            (false, [a, b, rate]) => {
                let a = self.node_arg(a)?;
                let b = self.node_arg(b)?;
                let q = self.find_link_queue(a, b).ok_or_else(|| {
                    NsErrorKind::Invalid("there is no duplex link between those nodes".into())
                })?;
                (self.queues.get(q).map_or(usize::MAX, |d| d.lanlink), *rate)
            }
            (true, _) => return Err(usage("tb-set-lan-loss LAN RATE")),
            (false, _) => return Err(usage("tb-set-link-loss LINK RATE | NODE1 NODE2 RATE")),
        };
        let rate = units::parse_loss(rate)?;
        let half = 1.0 - (1.0 - rate).sqrt();
        self.for_each_member(l, |m| {
            m.loss = half;
            m.rloss = half;
        })
    }

    fn tb_set_link_bandwidth(&mut self, values: &[&str]) -> KindResult<()> {
        let [link, bw] = values else {
            return Err(usage("tb-set-link-bandwidth LINK BANDWIDTH"));
        };
        let l = self.lanlink_arg(link, Some(false))?;
        let bandwidth = units::parse_bw(bw)?;
        self.for_each_member(l, |m| {
            m.bandwidth = bandwidth;
            m.rbandwidth = bandwidth;
        })
    }

    fn tb_set_link_delay(&mut self, values: &[&str]) -> KindResult<()> {
        let [link, delay] = values else {
            return Err(usage("tb-set-link-delay LINK DELAY"));
        };
        let l = self.lanlink_arg(link, Some(false))?;
        let delay = units::parse_delay(delay)?;
        self.for_each_member(l, |m| {
            m.delay = delay / 2.0;
            m.rdelay = delay / 2.0;
        })
    }

    fn for_each_member(
        &mut self,
        l: usize,
        mut apply: impl FnMut(&mut MemberData),
    ) -> KindResult<()> {
        let data = self
            .lanlinks
            .get_mut(l)
            .ok_or_else(|| NsErrorKind::Invalid(format!("internal: no link #{l}")))?;
        data.members.iter_mut().for_each(&mut apply);
        Ok(())
    }
}

/// `n0` stays `n0`; an array element `n(3)` becomes `n-3`, Emulab's naming.
fn derive_name(var: &str) -> String {
    var.chars()
        .filter_map(|c| match c {
            '(' => Some('-'),
            ')' => None,
            other => Some(other),
        })
        .collect()
}

/// Object names end up as host names (nodes) and agent names: letters,
/// digits and `-` (plus `_` for non-nodes), starting with a letter.
fn validate_name(name: &str, is_node: bool) -> KindResult<()> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || (!is_node && c == '_'));
    let starts_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if chars_ok && starts_ok && name.chars().count() <= MAX_NAME_CHARS {
        return Ok(());
    }
    let allowed = if is_node {
        "node names become host names: use letters, digits and '-', starting with a letter"
    } else {
        "use letters, digits, '-' and '_', starting with a letter"
    };
    Err(NsErrorKind::InvalidValue {
        what: if is_node { "node name" } else { "object name" }.into(),
        value: name.to_string(),
        reason: format!("{allowed}, at most {MAX_NAME_CHARS} characters"),
    })
}

fn parse_ip(text: &str) -> KindResult<Ipv4Addr> {
    text.parse::<Ipv4Addr>()
        .map_err(|_| NsErrorKind::InvalidValue {
            what: "IP address".into(),
            value: text.to_string(),
            reason: "write a dotted quad such as 10.1.1.2".into(),
        })
}

fn check_command_length(command: &str) -> KindResult<()> {
    if command.len() > MAX_COMMAND_LINE_BYTES {
        return Err(NsErrorKind::LimitExceeded {
            what: "program command length in bytes".into(),
            limit: MAX_COMMAND_LINE_BYTES as u64,
        });
    }
    Ok(())
}

/// The error for a name that is not an object, with advice for the common
/// mistake of braces stopping substitution.
pub(crate) fn unknown_object(name: &str) -> NsErrorKind {
    let hint = if name.starts_with('$') {
        " (variables inside {braces} are not substituted; use \"double quotes\")".to_string()
    } else if name.is_empty() {
        " (an empty name)".to_string()
    } else {
        String::new()
    };
    NsErrorKind::UnknownObject {
        name: name.to_string(),
        hint,
    }
}
