//! Turning the finished object world into a [`VirtualExperiment`].
//!
//! This is where whole-file rules are checked (every object named, every
//! program on a node, every traffic agent connected) and where Emulab's
//! swap-in conventions are applied:
//!
//! * **IP addresses.** Links and LANs are numbered in the order they were
//!   created. A link or LAN where the file set no address gets the subnet
//!   `10.1.<k>.0/24`, `k` counting up from 1 and skipping any subnet an
//!   explicit address already uses; its members get `.2`, `.3`, ... in
//!   member order (Emulab keeps `.1` free), skipping taken addresses. A link
//!   or LAN with some explicit addresses takes their subnet for the rest.
//!   The mask is always 255.255.255.0.
//! * **Ports.** A node's interfaces (vports) are numbered from 0 in the order
//!   the node joined links and LANs; `VirtNode.ips` lists them as `port:ip`.
//! * **Agents.** Emulab always creates `<sim name>` (SIMULATOR), `linktest`
//!   (LINKTEST) and `slothd` (SLOTHD) for vnode `*`; programs and traffic
//!   generators get an agent on their node; and, as its swap-in does, every
//!   link or LAN gets a LINK agent under its own name and one per member
//!   named `<lan>-<vnode>`, all for vnode `*`.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use tbevents_store::model::{
    GroupRow, StaticEvent, VirtAgent, VirtLanMember, VirtNode, VirtProgram, VirtTrafgen,
    VirtualExperiment,
};

use super::events::{OBJ_LINK, OBJ_LINKTEST, OBJ_PROGRAM, OBJ_SIMULATOR, OBJ_SLOTHD, OBJ_TRAFGEN};
use super::{Experiment, ObjKind};
use crate::error::{NsError, NsErrorKind, NsResult};

/// The fixed netmask of automatically and explicitly addressed interfaces.
const NETMASK: &str = "255.255.255.0";

/// Lowest and highest host numbers handed out in a /24.
const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

fn invalid(line: u32, message: String) -> NsError {
    NsError::at(line, NsErrorKind::Invalid(message))
}

impl Experiment {
    /// Checks the whole file and builds the experiment rows.
    pub(crate) fn finish(mut self) -> NsResult<VirtualExperiment> {
        let Some(sim) = self.simulator else {
            return Err(invalid(
                0,
                "the file never creates a simulator; start it with: set ns [new Simulator]".into(),
            ));
        };
        if self.run_line.is_none() {
            return Err(invalid(
                0,
                format!(
                    "the file never calls '${} run'; end it with that line",
                    self.name_of(sim)
                ),
            ));
        }
        // Every object that reaches the tables must have a real name.
        for (id, object) in self.objects.iter().enumerate() {
            if !object.named && !matches!(object.kind, ObjKind::SimplexLink(_)) {
                return Err(invalid(
                    object.line,
                    format!(
                        "this {} is never stored in a variable, so it has no name; write: set NAME [...]",
                        self.class_of(id)
                    ),
                ));
            }
        }
        self.check_queues()?;
        self.assign_ips()?;

        let simulator_name = self.name_of(sim).to_string();
        let nodes = self.node_rows();
        let lan_members = self.lan_member_rows();
        let programs = self.program_rows()?;
        let trafgens = self.trafgen_rows()?;
        let agents = self.agent_rows(&simulator_name, &programs, &trafgens)?;
        let groups = self.group_rows();
        let events = self.event_rows()?;
        Ok(VirtualExperiment {
            nodes,
            lan_members,
            agents,
            programs,
            trafgens,
            groups,
            events,
            simulator_name,
        })
    }

    /// Checks what only the finished queues can show (RED thresholds),
    /// naming each queue `<link>-<node>` as the file's events do.
    fn check_queues(&self) -> NsResult<()> {
        for lanlink in &self.lanlinks {
            let created_line = self.objects.get(lanlink.obj).map_or(0, |o| o.line);
            for member in &lanlink.members {
                let name = format!(
                    "{}-{}",
                    self.name_of(lanlink.obj),
                    self.node_name(member.node)
                );
                member.queue.check(&name, created_line)?;
            }
        }
        Ok(())
    }

    fn node_name(&self, n: usize) -> &str {
        self.nodes.get(n).map_or("?", |d| self.name_of(d.obj))
    }

    /// Gives every interface an address (see the module docs).
    fn assign_ips(&mut self) -> NsResult<()> {
        // `tb-set-ip` names a node's only interface.
        for n in 0..self.nodes.len() {
            let Some(node) = self.nodes.get(n) else {
                continue;
            };
            let Some((ip, line)) = node.whole_node_ip else {
                continue;
            };
            let [(l, m)] = node.ports.as_slice() else {
                return Err(invalid(
                    line,
                    format!(
                        "tb-set-ip needs a node with exactly one link or LAN, but '{}' has {}; use tb-set-ip-link or tb-set-ip-lan",
                        self.node_name(n),
                        node.ports.len()
                    ),
                ));
            };
            let (l, m) = (*l, *m);
            if let Some(member) = self.lanlinks.get_mut(l).and_then(|d| d.members.get_mut(m)) {
                if let Some((_, earlier)) = member.ip
                    && earlier > line
                {
                    continue; // a later tb-set-ip-link/-lan wins
                }
                member.ip = Some((ip, line));
            }
        }

        // Addresses and subnets the file chose.
        let mut used: HashMap<Ipv4Addr, u32> = HashMap::new();
        let mut used_subnets: HashSet<[u8; 3]> = HashSet::new();
        for lanlink in &self.lanlinks {
            for member in &lanlink.members {
                if let Some((ip, line)) = member.ip {
                    if used.insert(ip, line).is_some() {
                        return Err(invalid(
                            line,
                            format!("address {ip} is given to two interfaces"),
                        ));
                    }
                    used_subnets.insert(subnet_of(ip));
                }
            }
        }

        let mut next_subnet: u32 = 1;
        for l in 0..self.lanlinks.len() {
            let Some(lanlink) = self.lanlinks.get(l) else {
                continue;
            };
            let line = self.objects.get(lanlink.obj).map_or(0, |o| o.line);
            let name = self.name_of(lanlink.obj).to_string();
            let explicit: Vec<Ipv4Addr> = lanlink
                .members
                .iter()
                .filter_map(|m| m.ip.map(|(ip, _)| ip))
                .collect();
            let subnet = if let Some(first) = explicit.first() {
                let subnet = subnet_of(*first);
                if let Some(other) = explicit.iter().find(|ip| subnet_of(**ip) != subnet) {
                    return Err(invalid(
                        line,
                        format!(
                            "the addresses on '{name}' ({first} and {other}) are not in one /24 subnet"
                        ),
                    ));
                }
                subnet
            } else {
                loop {
                    let Ok(k) = u8::try_from(next_subnet) else {
                        return Err(invalid(
                            line,
                            format!(
                                "no free subnet left for '{name}' (10.1.1.0/24 to 10.1.255.0/24 are taken); set its addresses with tb-set-ip-link or tb-set-ip-lan"
                            ),
                        ));
                    };
                    next_subnet += 1;
                    let candidate = [10, 1, k];
                    if used_subnets.insert(candidate) {
                        break candidate;
                    }
                }
            };
            let mut host = FIRST_HOST;
            let member_count = lanlink.members.len();
            for m in 0..member_count {
                let needs_ip = self
                    .lanlinks
                    .get(l)
                    .and_then(|d| d.members.get(m))
                    .is_some_and(|member| member.ip.is_none());
                if !needs_ip {
                    continue;
                }
                let ip = loop {
                    if host > LAST_HOST {
                        return Err(invalid(
                            line,
                            format!(
                                "'{name}' has more members than free addresses in {}.{}.{}.0/24",
                                subnet[0], subnet[1], subnet[2]
                            ),
                        ));
                    }
                    let candidate = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], host);
                    host += 1;
                    if !used.contains_key(&candidate) {
                        break candidate;
                    }
                };
                used.insert(ip, line);
                if let Some(member) = self.lanlinks.get_mut(l).and_then(|d| d.members.get_mut(m)) {
                    member.ip = Some((ip, line));
                }
            }
        }
        Ok(())
    }

    /// The address of a node's interface `port`, as text.
    fn port_ip(&self, n: usize, port: usize) -> Option<String> {
        let &(l, m) = self.nodes.get(n)?.ports.get(port)?;
        let (ip, _) = self.lanlinks.get(l)?.members.get(m)?.ip?;
        Some(ip.to_string())
    }

    fn node_rows(&self) -> Vec<VirtNode> {
        let routertype = self.routertype.unwrap_or("none");
        (0..self.nodes.len())
            .filter_map(|n| {
                let node = self.nodes.get(n)?;
                let ips = (0..node.ports.len())
                    .map(|port| {
                        format!(
                            "{port}:{}",
                            self.port_ip(n, port).unwrap_or_else(|| "0.0.0.0".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                Some(VirtNode {
                    vname: self.name_of(node.obj).to_string(),
                    node_type: node.hardware.clone(),
                    osname: node.os.clone(),
                    routertype: routertype.to_string(),
                    ips,
                })
            })
            .collect()
    }

    /// One row per member. A link or LAN with a RED queue must be shaped
    /// (a plain wire cannot run RED), so it is marked `mustdelay`, as
    /// Emulab's later front end did.
    fn lan_member_rows(&self) -> Vec<VirtLanMember> {
        let mut rows = Vec::new();
        for lanlink in &self.lanlinks {
            let mustdelay = lanlink.mustdelay || lanlink.members.iter().any(|m| m.queue.is_red());
            for member in &lanlink.members {
                let vnode = self.node_name(member.node).to_string();
                let mut row = VirtLanMember {
                    vname: self.name_of(lanlink.obj).to_string(),
                    member: format!("{vnode}:{}", member.vport),
                    vnode,
                    vport: member.vport,
                    ip: member.ip.map(|(ip, _)| ip.to_string()).unwrap_or_default(),
                    mask: NETMASK.to_string(),
                    delay: member.delay,
                    bandwidth: member.bandwidth,
                    lossrate: member.loss,
                    rdelay: member.rdelay,
                    rbandwidth: member.rbandwidth,
                    rlossrate: member.rloss,
                    is_lan: lanlink.is_lan,
                    mustdelay,
                    ..VirtLanMember::default()
                };
                member.queue.write_to(&mut row);
                rows.push(row);
            }
        }
        rows
    }

    fn program_rows(&self) -> NsResult<Vec<VirtProgram>> {
        let mut rows = Vec::with_capacity(self.programs.len());
        for program in &self.programs {
            let name = self.name_of(program.obj).to_string();
            let Some(n) = program.node else {
                let line = self.objects.get(program.obj).map_or(0, |o| o.line);
                return Err(invalid(
                    line,
                    format!(
                        "program '{name}' is never placed on a node; add: ${name} set node $NODE"
                    ),
                ));
            };
            rows.push(VirtProgram {
                vnode: self.node_name(n).to_string(),
                vname: name,
                command: program.command.clone(),
                dir: program.dir.clone(),
                timeout: program.timeout,
                expected_exit_code: program.expected_exit_code,
            });
        }
        Ok(rows)
    }

    /// One source and one sink row per connection, in attach order.
    fn trafgen_rows(&self) -> NsResult<Vec<VirtTrafgen>> {
        // A CBR must be on an agent that is connected.
        for cbr in &self.cbrs {
            let name = self.name_of(cbr.obj);
            let line = self.objects.get(cbr.obj).map_or(0, |o| o.line);
            let Some(t) = cbr.agent else {
                return Err(invalid(
                    line,
                    format!(
                        "CBR source '{name}' is never attached to an agent; add: ${name} attach-agent $UDP_AGENT"
                    ),
                ));
            };
            if self.traffic.get(t).is_some_and(|a| a.peer.is_none()) {
                let agent = self.traffic.get(t).map_or("?", |a| self.name_of(a.obj));
                return Err(invalid(
                    line,
                    format!(
                        "the agent '{agent}' of CBR source '{name}' is never connected; add: $ns connect ${agent} $SINK"
                    ),
                ));
            }
        }
        let mut rows = Vec::new();
        for &t in &self.attach_order {
            let Some(agent) = self.traffic.get(t) else {
                continue;
            };
            let name = self.name_of(agent.obj).to_string();
            let line = self.objects.get(agent.obj).map_or(0, |o| o.line);
            let Some((peer_index, connect_line)) = agent.peer else {
                return Err(invalid(
                    line,
                    format!(
                        "agent '{name}' is attached to a node but never connected; add: $ns connect ..."
                    ),
                ));
            };
            let Some(peer) = self.traffic.get(peer_index) else {
                continue;
            };
            let (Some(n), Some(peer_node)) = (agent.node, peer.node) else {
                continue;
            };
            // A source row is named after its CBR and targets the sink agent;
            // a sink row is named after itself and targets the source's CBR.
            let (source, sink) = if agent.class.is_source() {
                (agent, peer)
            } else {
                (peer, agent)
            };
            let Some(cbr) = source.application.and_then(|c| self.cbrs.get(c)) else {
                return Err(invalid(
                    connect_line,
                    format!(
                        "agent '{}' sends traffic but no CBR source is attached to it; add: $CBR attach-agent ${}",
                        self.name_of(source.obj),
                        self.name_of(source.obj)
                    ),
                ));
            };
            let proto = if source.class == super::TrafficClass::Udp {
                "udp"
            } else {
                "tcp"
            };
            let cbr_name = self.name_of(cbr.obj).to_string();
            let sink_name = self.name_of(sink.obj).to_string();
            let (vname, role, target_vname) = if agent.class.is_source() {
                (cbr_name, "source", sink_name)
            } else {
                (sink_name, "sink", cbr_name)
            };
            let ip = self.port_ip(n, 0).ok_or_else(|| {
                invalid(
                    connect_line,
                    format!(
                        "node '{}' carries traffic but has no link or LAN",
                        self.node_name(n)
                    ),
                )
            })?;
            let target_ip = self.port_ip(peer_node, 0).ok_or_else(|| {
                invalid(
                    connect_line,
                    format!(
                        "node '{}' carries traffic but has no link or LAN",
                        self.node_name(peer_node)
                    ),
                )
            })?;
            rows.push(VirtTrafgen {
                vnode: self.node_name(n).to_string(),
                vname,
                role: role.to_string(),
                proto: proto.to_string(),
                port: agent.port,
                ip,
                target_vnode: self.node_name(peer_node).to_string(),
                target_vname,
                target_port: peer.port,
                target_ip,
                generator: "TG".to_string(),
            });
        }
        Ok(rows)
    }

    fn agent_rows(
        &self,
        simulator_name: &str,
        programs: &[VirtProgram],
        trafgens: &[VirtTrafgen],
    ) -> NsResult<Vec<VirtAgent>> {
        let agent = |vnode: &str, vname: &str, objtype: &str| VirtAgent {
            vname: vname.to_string(),
            vnode: vnode.to_string(),
            objtype: objtype.to_string(),
        };
        let mut rows = vec![
            agent("*", simulator_name, OBJ_SIMULATOR),
            agent("*", "linktest", OBJ_LINKTEST),
            agent("*", "slothd", OBJ_SLOTHD),
        ];
        rows.extend(
            programs
                .iter()
                .map(|p| agent(&p.vnode, &p.vname, OBJ_PROGRAM)),
        );
        rows.extend(
            trafgens
                .iter()
                .map(|t| agent(&t.vnode, &t.vname, OBJ_TRAFGEN)),
        );
        for (l, lanlink) in self.lanlinks.iter().enumerate() {
            let name = self.name_of(lanlink.obj);
            rows.push(agent("*", name, OBJ_LINK));
            for member in &lanlink.members {
                let member_agent = format!("{name}-{}", self.node_name(member.node));
                // A link's member agent is its own queue object; any other
                // object of that name would make the agent ambiguous.
                if let Some(other) = self.lookup(&member_agent) {
                    let is_own_queue = match self.objects.get(other).map(|o| o.kind) {
                        Some(ObjKind::Queue(q)) => {
                            self.queues.get(q).is_some_and(|d| d.lanlink == l)
                        }
                        _ => false,
                    };
                    if !is_own_queue {
                        let line = self.objects.get(other).map_or(0, |o| o.line);
                        return Err(NsError::at(
                            line,
                            NsErrorKind::NameConflict {
                                name: member_agent,
                                other: format!("the member agent Emulab creates for '{name}'"),
                            },
                        ));
                    }
                }
                rows.push(agent("*", &member_agent, OBJ_LINK));
            }
        }
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for row in &rows {
            if !seen.insert((row.vname.as_str(), row.vnode.as_str())) {
                return Err(invalid(
                    0,
                    format!(
                        "two agents would both be called '{}' on '{}'; rename one object",
                        row.vname, row.vnode
                    ),
                ));
            }
        }
        Ok(rows)
    }

    fn group_rows(&self) -> Vec<GroupRow> {
        let mut rows = Vec::new();
        for group in &self.groups {
            for &member in &group.members {
                rows.push(GroupRow {
                    group_name: self.name_of(group.obj).to_string(),
                    agent_name: self.name_of(member).to_string(),
                });
            }
        }
        rows
    }

    fn event_rows(&self) -> NsResult<Vec<StaticEvent>> {
        let mut rows = Vec::with_capacity(self.events.len());
        for event in &self.events {
            let vname = self.name_of(event.target).to_string();
            let kind = self.objects.get(event.target).map(|o| o.kind);
            let vnode = match kind {
                Some(ObjKind::LanLink(_) | ObjKind::Queue(_)) => String::new(),
                Some(ObjKind::Simulator) => "*".to_string(),
                Some(ObjKind::Program(p)) => match self.programs.get(p).and_then(|d| d.node) {
                    Some(n) => self.node_name(n).to_string(),
                    None => {
                        return Err(invalid(
                            event.line,
                            format!("program '{vname}' is never placed on a node"),
                        ));
                    }
                },
                Some(ObjKind::Cbr(c)) => {
                    match self
                        .cbrs
                        .get(c)
                        .and_then(|d| d.agent)
                        .and_then(|t| self.traffic.get(t))
                        .and_then(|a| a.node)
                    {
                        Some(n) => self.node_name(n).to_string(),
                        None => {
                            return Err(invalid(
                                event.line,
                                format!(
                                    "CBR source '{vname}' is not on a node (attach it to an agent on a node)"
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(invalid(
                        event.line,
                        format!("'{vname}' cannot receive events"),
                    ));
                }
            };
            rows.push(StaticEvent {
                time: event.time,
                vnode,
                vname,
                objtype: event.objtype.to_string(),
                eventtype: event.eventtype.to_string(),
                arguments: event.arguments.clone(),
                atstring: event.atstring.clone(),
            });
        }
        Ok(rows)
    }
}

fn subnet_of(ip: Ipv4Addr) -> [u8; 3] {
    let [a, b, c, _] = ip.octets();
    [a, b, c]
}
