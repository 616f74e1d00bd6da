//! What the testbed will build for an experiment, computed from its rows
//! alone, before anything is touched.
//!
//! Planning is a pure function of the experiment's virtual topology
//! (`virt_nodes`, `virt_lans`, `virt_programs`, `virt_trafgens`) and its
//! swap-in mapping, so it can be checked in unit tests without root, and so
//! that a bad experiment is refused before any namespace exists. The
//! [`crate::testbed`] module then carries the plan out.
//!
//! The shape follows an Emulab swap-in:
//!
//! - every virtual node is a network namespace with its experimental
//!   interfaces `eth<vport>` and their addresses from `virt_lans`;
//! - a duplex link is one veth pair between its two nodes, or, when it is
//!   shaped, two pairs through a delay node (a namespace where `delay-agent
//!   --backend shaper` bridges sides `a` and `b`);
//! - a LAN is a switch namespace holding a Linux bridge, with one veth pair
//!   per member; a shaped LAN gets a delay node per member, as Emulab puts a
//!   delay pipe on each member's port;
//! - with `$ns rtproto Static` (or Session), every node gets routes to the
//!   subnets it is not on, along shortest paths, and nodes with more than one
//!   interface forward.
//!
//! A link or LAN member is shaped when Emulab would give it a delay node:
//! an event changes it or its queue is RED (`mustdelay`), it has a delay or
//! a loss rate, or its bandwidth is not a native interface speed (100 Mb/s,
//! 1 Gb/s, 10 Gb/s).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tbevents_store::{NodeAssignment, VirtLanMember, VirtualExperiment};

use crate::names;

/// The address the control forwarder listens on inside every namespace
/// that runs a router: "the event server" as a node sees it.
pub const BOSS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The port of the node's own router (and of the forwarder) inside a
/// namespace: the standard Elvin port.
pub const NODE_ROUTER_PORT: u16 = 2917;
/// First control address of delay nodes; delay node `k` (from 0) gets
/// 127.254.k/256.k%256+1.
const DELAY_CONTROL_BASE: u32 = 0x7ffe_0001;
/// Bandwidths (kb/s) a veth carries without shaping, as Emulab treats its
/// native interface speeds.
const NATIVE_SPEEDS_KBPS: [u64; 3] = [100_000, 1_000_000, 10_000_000];

/// The kind of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    /// A virtual node.
    Node,
    /// A LAN's switch.
    Lan,
    /// A delay node shaping one link or LAN member.
    Delay,
}

/// One namespace to make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePlan {
    /// Its name under /run/netns.
    pub name: String,
    /// What it stands for.
    pub kind: NamespaceKind,
    /// The virtual node, LAN or shaped link it stands for.
    pub vname: String,
    /// For nodes and delay nodes: the control address (the `HOST` its
    /// events carry). LAN switches have none.
    pub control_ip: Option<String>,
    /// Whether it forwards IPv4 between its interfaces (routers).
    pub forwarding: bool,
}

/// One end of a veth pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethEnd {
    /// The namespace it lives in.
    pub namespace: String,
    /// Its interface name there.
    pub interface: String,
    /// Its address as `ip/prefixlen`, if any.
    pub address: Option<String>,
    /// The bridge it is a port of, if any.
    pub bridge: Option<String>,
    /// Whether transmit checksum offload must be off: the end sends into a
    /// user-space shaper, which forwards frames as they are, so their
    /// checksums must be complete when they leave.
    pub full_checksums: bool,
}

/// One veth pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethPlan {
    /// The link or LAN it belongs to.
    pub lan: String,
    /// First end.
    pub a: VethEnd,
    /// Second end.
    pub b: VethEnd,
}

/// A delay node's shaper: which interfaces `delay-agent` bridges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShaperPlan {
    /// The link agent's name (the link, or `<lan>-<vnode>`).
    pub link: String,
    /// The delay node's namespace.
    pub namespace: String,
    /// The node side's interface.
    pub side_a: String,
    /// The far side's interface.
    pub side_b: String,
}

/// A static route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    /// The namespace it goes into.
    pub namespace: String,
    /// Destination subnet, `a.b.c.d/len`.
    pub destination: String,
    /// The next hop's address.
    pub via: String,
}

/// What an agent process to start is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// `program-agent`: the node's `virt_programs`.
    ProgramAgent,
    /// `trafgen`: the node's `virt_trafgens`.
    Trafgen,
    /// `delay-agent --backend shaper`: a delay node's link.
    DelayAgent,
    /// `linktest`: the node's linktest daemon (every node with a link).
    Linktest,
}

impl AgentKind {
    /// The program's file name.
    pub fn program(self) -> &'static str {
        match self {
            AgentKind::ProgramAgent => "program-agent",
            AgentKind::Trafgen => "trafgen",
            AgentKind::DelayAgent => "delay-agent",
            AgentKind::Linktest => "linktest",
        }
    }

    /// The workspace package that builds the program.
    pub fn package(self) -> &'static str {
        match self {
            AgentKind::ProgramAgent | AgentKind::Trafgen => "tbevents-agents",
            AgentKind::DelayAgent => "tbevents-linkshape",
            AgentKind::Linktest => "tbevents-linktest",
        }
    }
}

/// An agent to start in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPlan {
    /// Which agent.
    pub kind: AgentKind,
    /// The namespace it runs in.
    pub namespace: String,
    /// The virtual node it serves (`--vnode`): the node, or the delay
    /// node's name for a delay agent.
    pub vnode: String,
    /// For a delay agent, its shaper.
    pub shaper: Option<ShaperPlan>,
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `pid/eid`.
    pub experiment: String,
    /// The name prefix of everything made (see [`names`]).
    pub prefix: String,
    /// Namespaces, nodes first.
    pub namespaces: Vec<NamespacePlan>,
    /// Veth pairs.
    pub veths: Vec<VethPlan>,
    /// Static routes.
    pub routes: Vec<RoutePlan>,
    /// Agents.
    pub agents: Vec<AgentPlan>,
}

impl Plan {
    /// The namespace of virtual node `vnode`.
    pub fn node(&self, vnode: &str) -> Option<&NamespacePlan> {
        self.namespaces
            .iter()
            .find(|ns| ns.kind == NamespaceKind::Node && ns.vname == vnode)
    }

    /// The programs carrying out this plan needs, each with the workspace
    /// package that builds it.
    pub fn programs(&self) -> Vec<(&'static str, &'static str)> {
        let mut programs = vec![
            ("eventd", "elvin-router"),
            ("evproxy", "tbevents-tools"),
            (crate::testbed::FORWARDER, "tbevents-testbed"),
        ];
        for agent in &self.agents {
            let entry = (agent.kind.program(), agent.kind.package());
            if !programs.contains(&entry) {
                programs.push(entry);
            }
        }
        programs
    }

    /// Namespaces that run a router (nodes and delay nodes).
    pub fn routed(&self) -> impl Iterator<Item = &NamespacePlan> {
        self.namespaces.iter().filter(|ns| ns.control_ip.is_some())
    }
}

/// The prefix length of a dotted-quad netmask, if it is contiguous.
pub fn prefix_len(mask: &str) -> anyhow::Result<u8> {
    let mask: Ipv4Addr = mask
        .parse()
        .with_context(|| format!("`{mask}` is not a netmask"))?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        bail!("netmask {mask} is not contiguous");
    }
    u8::try_from(len).context("netmask length")
}

/// The subnet `ip/len` containing address `ip`.
fn subnet_of(ip: Ipv4Addr, len: u8) -> String {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    format!("{}/{len}", Ipv4Addr::from(u32::from(ip) & mask))
}

/// Whether a member's row asks for shaping (see the module comment).
pub fn needs_shaping(m: &VirtLanMember) -> bool {
    let odd_speed = |kbps: u64| kbps != 0 && !NATIVE_SPEEDS_KBPS.contains(&kbps);
    m.mustdelay
        || m.delay > 0.0
        || m.rdelay > 0.0
        || m.lossrate > 0.0
        || m.rlossrate > 0.0
        || odd_speed(m.bandwidth)
        || odd_speed(m.rbandwidth)
}

/// A member with its parsed address.
struct Member<'a> {
    row: &'a VirtLanMember,
    ip: Ipv4Addr,
    len: u8,
}

/// Builds the plan. `mapping` is the swap-in mapping (every node must be
/// in it: the control address is what the node's events are addressed to).
pub fn plan(
    expt: &str,
    virt: &VirtualExperiment,
    mapping: &[NodeAssignment],
) -> anyhow::Result<Plan> {
    let prefix = names::prefix_for(expt);
    let mut namespaces = Vec::new();
    for node in &virt.nodes {
        if !names::valid_component(&node.vname) {
            bail!(
                "node name `{}` cannot name a namespace: use letters, digits, `_` and `-`",
                node.vname
            );
        }
        let assignment = mapping
            .iter()
            .find(|a| a.vnode == node.vname)
            .with_context(|| {
                format!(
                    "node `{}` of {expt} has no swap-in mapping: run `tbevents swapin -e {expt}` first",
                    node.vname
                )
            })?;
        let control: Ipv4Addr = assignment.control_ip.parse().with_context(|| {
            format!(
                "the control address `{}` of node `{}` is not IPv4",
                assignment.control_ip, node.vname
            )
        })?;
        if control == Ipv4Addr::LOCALHOST || control == BOSS_ADDRESS {
            bail!(
                "node `{}` has control address {control}, which the testbed uses inside every \
                 node; swap in again with another address (the default mapping never uses it)",
                node.vname
            );
        }
        namespaces.push(NamespacePlan {
            name: names::node_namespace(&prefix, &node.vname),
            kind: NamespaceKind::Node,
            vname: node.vname.clone(),
            control_ip: Some(control.to_string()),
            forwarding: false,
        });
    }

    // Group the member rows by link/LAN, in load order.
    let mut lans: Vec<(&str, Vec<Member<'_>>)> = Vec::new();
    for row in &virt.lan_members {
        if !names::valid_component(&row.vname) {
            bail!(
                "link name `{}` cannot name a namespace: use letters, digits, `_` and `-`",
                row.vname
            );
        }
        if !namespaces.iter().any(|ns| ns.vname == row.vnode) {
            bail!(
                "link `{}` names node `{}`, which is not a node of {expt}",
                row.vname,
                row.vnode
            );
        }
        let ip: Ipv4Addr = row.ip.parse().with_context(|| {
            format!(
                "member {} of `{}` has address `{}`, which is not IPv4",
                row.member, row.vname, row.ip
            )
        })?;
        let len = prefix_len(&row.mask)
            .with_context(|| format!("member {} of `{}`", row.member, row.vname))?;
        let member = Member { row, ip, len };
        match lans.iter_mut().find(|(name, _)| *name == row.vname) {
            Some((_, list)) => list.push(member),
            None => lans.push((&row.vname, vec![member])),
        }
    }

    let mut veths = Vec::new();
    let mut agents = Vec::new();
    let mut delay_count: u32 = 0;
    let mut add_delay =
        |namespaces: &mut Vec<NamespacePlan>, link: &str| -> anyhow::Result<String> {
            let name = names::delay_namespace(&prefix, link);
            if namespaces.iter().any(|ns| ns.name == name) {
                bail!("two shaped links would share the delay node `{name}`; rename one");
            }
            let control = Ipv4Addr::from(DELAY_CONTROL_BASE + delay_count);
            delay_count += 1;
            namespaces.push(NamespacePlan {
                name: name.clone(),
                kind: NamespaceKind::Delay,
                vname: format!("tbdelay-{link}"),
                control_ip: Some(control.to_string()),
                forwarding: false,
            });
            Ok(name)
        };
    let end = |namespace: &str, interface: String, address: Option<String>| VethEnd {
        namespace: namespace.to_owned(),
        interface,
        address,
        bridge: None,
        full_checksums: false,
    };
    let node_ns = |vnode: &str| names::node_namespace(&prefix, vnode);

    for (lan, members) in &lans {
        let is_lan = members.len() != 2 || members.iter().any(|m| m.row.is_lan);
        let shaped = members.iter().any(|m| needs_shaping(m.row));
        if !is_lan {
            let (first, second) = (&members[0], &members[1]);
            let a_end = end(
                &node_ns(&first.row.vnode),
                names::node_interface(first.row.vport),
                Some(format!("{}/{}", first.ip, first.len)),
            );
            let b_end = end(
                &node_ns(&second.row.vnode),
                names::node_interface(second.row.vport),
                Some(format!("{}/{}", second.ip, second.len)),
            );
            if shaped {
                let delay = add_delay(&mut namespaces, lan)?;
                let shaper = ShaperPlan {
                    link: (*lan).to_owned(),
                    namespace: delay.clone(),
                    side_a: "sidea".into(),
                    side_b: "sideb".into(),
                };
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: VethEnd {
                        full_checksums: true,
                        ..a_end
                    },
                    b: end(&delay, "sidea".into(), None),
                });
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: end(&delay, "sideb".into(), None),
                    b: VethEnd {
                        full_checksums: true,
                        ..b_end
                    },
                });
                agents.push(delay_agent(&namespaces, shaper));
            } else {
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: a_end,
                    b: b_end,
                });
            }
            continue;
        }
        let switch = names::lan_namespace(&prefix, lan);
        namespaces.push(NamespacePlan {
            name: switch.clone(),
            kind: NamespaceKind::Lan,
            vname: (*lan).to_owned(),
            control_ip: None,
            forwarding: false,
        });
        for (index, m) in members.iter().enumerate() {
            let node_end = end(
                &node_ns(&m.row.vnode),
                names::node_interface(m.row.vport),
                Some(format!("{}/{}", m.ip, m.len)),
            );
            let port = VethEnd {
                bridge: Some("br0".into()),
                ..end(&switch, names::lan_port(index), None)
            };
            if shaped {
                let link = format!("{lan}-{}", m.row.vnode);
                let delay = add_delay(&mut namespaces, &link)?;
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: VethEnd {
                        full_checksums: true,
                        ..node_end
                    },
                    b: end(&delay, "sidea".into(), None),
                });
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: end(&delay, "sideb".into(), None),
                    b: port,
                });
                let shaper = ShaperPlan {
                    link,
                    namespace: delay,
                    side_a: "sidea".into(),
                    side_b: "sideb".into(),
                };
                agents.push(delay_agent(&namespaces, shaper));
            } else {
                veths.push(VethPlan {
                    lan: (*lan).to_owned(),
                    a: node_end,
                    b: port,
                });
            }
        }
    }
    // Two members of one node on one link would both be called eth<vport>
    // only if the rows were inconsistent; check instead of failing in `ip`.
    let mut seen = std::collections::HashSet::new();
    for veth in &veths {
        for e in [&veth.a, &veth.b] {
            if !seen.insert((e.namespace.clone(), e.interface.clone())) {
                bail!(
                    "two links would both use interface {} in {}: the experiment's ports are \
                     inconsistent; re-create it from its NS file",
                    e.interface,
                    e.namespace
                );
            }
        }
    }

    for node in &virt.nodes {
        let namespace = node_ns(&node.vname);
        let kinds = [
            (
                AgentKind::ProgramAgent,
                virt.programs.iter().any(|p| p.vnode == node.vname),
            ),
            (
                AgentKind::Trafgen,
                virt.trafgens.iter().any(|t| t.vnode == node.vname),
            ),
            (
                AgentKind::Linktest,
                virt.lan_members.iter().any(|m| m.vnode == node.vname),
            ),
        ];
        for (kind, wanted) in kinds {
            if wanted {
                agents.push(AgentPlan {
                    kind,
                    namespace: namespace.clone(),
                    vnode: node.vname.clone(),
                    shaper: None,
                });
            }
        }
    }

    let routing = virt
        .nodes
        .iter()
        .any(|n| matches!(n.routertype.as_str(), "static" | "session"));
    let routes = if routing {
        static_routes(&prefix, &lans)
    } else {
        Vec::new()
    };
    if routing {
        for ns in &mut namespaces {
            if ns.kind == NamespaceKind::Node {
                let interfaces = virt
                    .lan_members
                    .iter()
                    .filter(|m| m.vnode == ns.vname)
                    .count();
                ns.forwarding = interfaces > 1;
            }
        }
    }
    Ok(Plan {
        experiment: expt.to_owned(),
        prefix,
        namespaces,
        veths,
        routes,
        agents,
    })
}

fn delay_agent(namespaces: &[NamespacePlan], shaper: ShaperPlan) -> AgentPlan {
    let vnode = namespaces
        .iter()
        .find(|ns| ns.name == shaper.namespace)
        .map(|ns| ns.vname.clone())
        .unwrap_or_default();
    AgentPlan {
        kind: AgentKind::DelayAgent,
        namespace: shaper.namespace.clone(),
        vnode,
        shaper: Some(shaper),
    }
}

/// Shortest-path routes: for every node, to every subnet it is not on, via
/// the first hop towards the nearest node on that subnet (ties broken by
/// load order, so the plan is deterministic).
fn static_routes(prefix: &str, lans: &[(&str, Vec<Member<'_>>)]) -> Vec<RoutePlan> {
    // Adjacency: node -> [(neighbour, neighbour's address on the shared subnet)].
    let mut nodes: Vec<&str> = Vec::new();
    let mut adjacency: HashMap<&str, Vec<(&str, Ipv4Addr)>> = HashMap::new();
    let mut subnets: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut subnet_order: Vec<String> = Vec::new();
    for (_, members) in lans {
        for m in members {
            if !nodes.contains(&m.row.vnode.as_str()) {
                nodes.push(&m.row.vnode);
            }
            let subnet = subnet_of(m.ip, m.len);
            if !subnets.contains_key(&subnet) {
                subnet_order.push(subnet.clone());
            }
            subnets.entry(subnet).or_default().push(&m.row.vnode);
            for other in members {
                if other.row.vnode != m.row.vnode {
                    adjacency
                        .entry(&m.row.vnode)
                        .or_default()
                        .push((&other.row.vnode, other.ip));
                }
            }
        }
    }
    let mut routes = Vec::new();
    for &source in &nodes {
        // BFS from source: distance and first hop address per node.
        let mut first_hop: HashMap<&str, (usize, Option<Ipv4Addr>)> = HashMap::new();
        first_hop.insert(source, (0, None));
        let mut queue = VecDeque::from([source]);
        while let Some(current) = queue.pop_front() {
            let (distance, hop) = first_hop[current];
            for &(next, address) in adjacency.get(current).map(Vec::as_slice).unwrap_or(&[]) {
                if first_hop.contains_key(next) {
                    continue;
                }
                let via = hop.or(Some(address));
                first_hop.insert(next, (distance + 1, via));
                queue.push_back(next);
            }
        }
        for subnet in &subnet_order {
            let on_it = &subnets[subnet];
            if on_it.contains(&source) {
                continue;
            }
            let best = on_it
                .iter()
                .filter_map(|n| first_hop.get(n))
                .filter_map(|(distance, via)| via.map(|via| (*distance, via)))
                .min_by_key(|(distance, _)| *distance);
            if let Some((_, via)) = best {
                routes.push(RoutePlan {
                    namespace: names::node_namespace(prefix, source),
                    destination: subnet.clone(),
                    via: via.to_string(),
                });
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use tbevents_store::VirtNode;

    fn node(name: &str) -> VirtNode {
        VirtNode {
            vname: name.into(),
            routertype: "static".into(),
            ..VirtNode::default()
        }
    }

    fn member(lan: &str, vnode: &str, vport: u32, ip: &str, is_lan: bool) -> VirtLanMember {
        VirtLanMember {
            vname: lan.into(),
            vnode: vnode.into(),
            vport,
            ip: ip.into(),
            mask: "255.255.255.0".into(),
            bandwidth: 100_000,
            rbandwidth: 100_000,
            member: format!("{vnode}:{vport}"),
            is_lan,
            ..VirtLanMember::default()
        }
    }

    fn mapping(nodes: &[&str]) -> Vec<NodeAssignment> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeAssignment {
                vnode: (*n).into(),
                node_id: format!("pc{i}"),
                control_ip: format!("127.0.8.{}", i + 1),
            })
            .collect()
    }

    /// client --link0(shaped)-- router --lan0-- server1, server2
    fn demo_like() -> VirtualExperiment {
        let mut access = member("link0", "client", 0, "10.1.1.2", false);
        access.delay = 10.0;
        let mut access_r = member("link0", "router", 0, "10.1.1.3", false);
        access_r.delay = 10.0;
        VirtualExperiment {
            nodes: ["client", "router", "server1", "server2"]
                .into_iter()
                .map(node)
                .collect(),
            lan_members: vec![
                access,
                access_r,
                member("lan0", "router", 1, "10.1.2.2", true),
                member("lan0", "server1", 0, "10.1.2.3", true),
                member("lan0", "server2", 0, "10.1.2.4", true),
            ],
            ..VirtualExperiment::default()
        }
    }

    #[test]
    fn demo_topology_plan() {
        let virt = demo_like();
        let plan = plan(
            "p/e",
            &virt,
            &mapping(&["client", "router", "server1", "server2"]),
        )
        .unwrap();
        let p = &plan.prefix;
        let kinds: Vec<(NamespaceKind, &str)> = plan
            .namespaces
            .iter()
            .map(|n| (n.kind, n.vname.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (NamespaceKind::Node, "client"),
                (NamespaceKind::Node, "router"),
                (NamespaceKind::Node, "server1"),
                (NamespaceKind::Node, "server2"),
                (NamespaceKind::Delay, "tbdelay-link0"),
                (NamespaceKind::Lan, "lan0"),
            ]
        );
        assert_eq!(
            plan.namespaces[4].control_ip.as_deref(),
            Some("127.254.0.1")
        );
        assert!(plan.node("router").unwrap().forwarding);
        assert!(!plan.node("client").unwrap().forwarding);
        // The shaped link goes through the delay node, checksums complete.
        assert_eq!(plan.veths.len(), 5);
        assert_eq!(plan.veths[0].a.namespace, format!("{p}-n-client"));
        assert_eq!(plan.veths[0].a.interface, "eth0");
        assert_eq!(plan.veths[0].a.address.as_deref(), Some("10.1.1.2/24"));
        assert!(plan.veths[0].a.full_checksums);
        assert_eq!(plan.veths[0].b.namespace, format!("{p}-d-link0"));
        assert_eq!(plan.veths[1].b.namespace, format!("{p}-n-router"));
        assert_eq!(plan.veths[2].b.bridge.as_deref(), Some("br0"));
        assert_eq!(plan.veths[2].a.interface, "eth1");
        // One delay agent, bridging a and b, and a linktest daemon on each
        // of the four nodes.
        let kinds: Vec<AgentKind> = plan.agents.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == AgentKind::DelayAgent)
                .count(),
            1
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == AgentKind::Linktest).count(),
            4
        );
        let shaper = plan.agents.iter().find_map(|a| a.shaper.as_ref()).unwrap();
        assert_eq!(
            (
                shaper.link.as_str(),
                shaper.side_a.as_str(),
                shaper.side_b.as_str()
            ),
            ("link0", "sidea", "sideb")
        );
        // Routes: client reaches the LAN via the router; servers reach the
        // access link via the router; the router needs none.
        let routes: Vec<(String, &str, &str)> = plan
            .routes
            .iter()
            .map(|r| {
                (
                    r.namespace
                        .trim_start_matches(&format!("{p}-n-"))
                        .to_owned(),
                    r.destination.as_str(),
                    r.via.as_str(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            vec![
                ("client".into(), "10.1.2.0/24", "10.1.1.3"),
                ("server1".into(), "10.1.1.0/24", "10.1.2.2"),
                ("server2".into(), "10.1.1.0/24", "10.1.2.2"),
            ]
        );
    }

    #[test]
    fn unshaped_link_is_one_pair_and_no_routes_without_routing() {
        let mut virt = demo_like();
        for m in &mut virt.lan_members {
            m.delay = 0.0;
        }
        for n in &mut virt.nodes {
            n.routertype = "none".into();
        }
        let plan = plan(
            "p/e",
            &virt,
            &mapping(&["client", "router", "server1", "server2"]),
        )
        .unwrap();
        assert_eq!(plan.veths.len(), 4);
        // No programs, traffic or shaping: only the linktest daemons.
        assert!(plan.agents.iter().all(|a| a.kind == AgentKind::Linktest));
        assert!(plan.routes.is_empty());
        assert!(plan.namespaces.iter().all(|n| !n.forwarding));
    }

    #[test]
    fn shaping_rules() {
        let mut m = member("l", "a", 0, "10.0.0.1", false);
        assert!(!needs_shaping(&m));
        m.bandwidth = 1_000_000;
        assert!(!needs_shaping(&m));
        m.bandwidth = 1_000;
        assert!(needs_shaping(&m));
        m.bandwidth = 100_000;
        m.rlossrate = 0.1;
        assert!(needs_shaping(&m));
        m.rlossrate = 0.0;
        m.mustdelay = true;
        assert!(needs_shaping(&m));
    }

    #[test]
    fn bad_experiments_are_refused_with_reasons() {
        let virt = demo_like();
        let err = plan("p/e", &virt, &mapping(&["client", "router"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tbevents swapin -e p/e"), "{err}");
        let mut loopback = mapping(&["client", "router", "server1", "server2"]);
        loopback[0].control_ip = "127.0.0.1".into();
        assert!(plan("p/e", &virt, &loopback).is_err());
        let mut bad = demo_like();
        bad.lan_members[0].mask = "255.0.255.0".into();
        let err = format!(
            "{:#}",
            plan(
                "p/e",
                &bad,
                &mapping(&["client", "router", "server1", "server2"])
            )
            .unwrap_err()
        );
        assert!(err.contains("not contiguous"), "{err}");
    }

    #[test]
    fn masks_and_subnets() {
        assert_eq!(prefix_len("255.255.255.0").unwrap(), 24);
        assert_eq!(prefix_len("255.255.0.0").unwrap(), 16);
        assert_eq!(prefix_len("0.0.0.0").unwrap(), 0);
        assert_eq!(prefix_len("255.255.255.255").unwrap(), 32);
        assert!(prefix_len("banana").is_err());
        assert_eq!(subnet_of(Ipv4Addr::new(10, 1, 2, 3), 24), "10.1.2.0/24");
    }
}
