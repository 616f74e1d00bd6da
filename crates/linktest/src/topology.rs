//! The topology linktest checks: hosts, directed edges with the delay,
//! bandwidth and loss the experiment asked for, and whether static routing
//! was requested.
//!
//! The controller builds it from the experiment's `virt_nodes` and
//! `virt_lans` rows ([`Topology::from_virtual`]) and ships it to every node
//! daemon inside the signed START event as text ([`Topology::to_ltmap`],
//! [`Topology::parse_ltmap`]), so a node needs no database access, and
//! every node computes the same schedule from the same bytes.
//!
//! A link or LAN is expanded into every ordered pair of its members. For
//! the directed edge `src → dst` on LAN `L`, the store's per-member rows
//! give `src`'s outgoing half (`delay`, `bandwidth`, `lossrate`: member
//! toward the LAN) and `dst`'s incoming half (`rdelay`, `rbandwidth`,
//! `rlossrate`: LAN toward the member), so the edge has delay
//! `src.delay + dst.rdelay`, bandwidth `min(src.bandwidth, dst.rbandwidth)`
//! and loss `1 − (1 − src.lossrate)(1 − dst.rlossrate)` (docs/linktest.md).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use tbevents_store::VirtualExperiment;

/// The largest topology text a node accepts (the START event carries it).
pub const MAX_LTMAP_BYTES: usize = 1 << 20;

/// One direction of a link or LAN pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Sending node.
    pub src: String,
    /// Receiving node.
    pub dst: String,
    /// The link or LAN the two share.
    pub lan: String,
    /// `src`'s address on that LAN.
    pub src_ip: Ipv4Addr,
    /// `dst`'s address on that LAN.
    pub dst_ip: Ipv4Addr,
    /// Bandwidth in bits per second (0: not shaped).
    pub bandwidth_bps: u64,
    /// One-way delay in seconds.
    pub delay_s: f64,
    /// Loss rate, 0..=1.
    pub loss: f64,
}

impl Edge {
    /// The original's one-line description: `a to b (100 Mbps, 10ms, 0% loss)`.
    pub fn describe(&self) -> String {
        format!(
            "{} to {} ({} Mbps, {}ms, {}% loss)",
            self.src,
            self.dst,
            trim_float(self.bandwidth_bps as f64 / 1e6),
            trim_float(self.delay_s * 1000.0),
            trim_float(self.loss * 100.0)
        )
    }
}

/// Formats with up to three decimals and no trailing zeros.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// What linktest checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    /// Every node with at least one link, sorted.
    pub hosts: Vec<String>,
    /// Every directed edge, sorted by (src, dst, lan).
    pub edges: Vec<Edge>,
    /// `$ns rtproto Static` was given: level 2 checks routes.
    pub static_routing: bool,
}

/// Why a topology could not be built or read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    /// A `virt_lans` row has an address that is not a dotted quad.
    #[error("link {lan}: member {node} has no valid IPv4 address ({ip:?})")]
    BadAddress {
        /// The link or LAN.
        lan: String,
        /// The member.
        node: String,
        /// What the row holds.
        ip: String,
    },
    /// A line of topology text is malformed.
    #[error("topology line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The topology text is larger than [`MAX_LTMAP_BYTES`].
    #[error("the topology is {0} bytes, more than the {MAX_LTMAP_BYTES} a node accepts")]
    TooLarge(usize),
}

impl Topology {
    /// Builds the topology from an experiment's virtual rows.
    pub fn from_virtual(virt: &VirtualExperiment) -> Result<Topology, TopologyError> {
        let mut lans: BTreeMap<&str, Vec<&tbevents_store::VirtLanMember>> = BTreeMap::new();
        for member in &virt.lan_members {
            lans.entry(member.vname.as_str()).or_default().push(member);
        }
        let mut edges = Vec::new();
        let mut hosts = BTreeSet::new();
        for (lan, members) in &lans {
            for src in members {
                for dst in members {
                    if src.vnode == dst.vnode {
                        continue;
                    }
                    let ip = |m: &tbevents_store::VirtLanMember| {
                        m.ip.parse::<Ipv4Addr>()
                            .map_err(|_| TopologyError::BadAddress {
                                lan: (*lan).to_owned(),
                                node: m.vnode.clone(),
                                ip: m.ip.clone(),
                            })
                    };
                    let bw_kbps = match (src.bandwidth, dst.rbandwidth) {
                        (0, b) | (b, 0) => b,
                        (a, b) => a.min(b),
                    };
                    edges.push(Edge {
                        src: src.vnode.clone(),
                        dst: dst.vnode.clone(),
                        lan: (*lan).to_owned(),
                        src_ip: ip(src)?,
                        dst_ip: ip(dst)?,
                        bandwidth_bps: bw_kbps.saturating_mul(1000),
                        delay_s: round6((src.delay + dst.rdelay).max(0.0) / 1000.0),
                        loss: round6(
                            1.0 - (1.0 - src.lossrate.clamp(0.0, 1.0))
                                * (1.0 - dst.rlossrate.clamp(0.0, 1.0)),
                        ),
                    });
                    hosts.insert(src.vnode.clone());
                }
            }
        }
        edges.sort_by(|a, b| (&a.src, &a.dst, &a.lan).cmp(&(&b.src, &b.dst, &b.lan)));
        Ok(Topology {
            hosts: hosts.into_iter().collect(),
            edges,
            static_routing: virt
                .nodes
                .iter()
                .any(|n| n.routertype.eq_ignore_ascii_case("static")),
        })
    }

    /// The topology as text, one record per line:
    /// `h NODE`, `l SRC DST BW_BPS DELAY_S LOSS LAN SRC_IP DST_IP`, `r static|none`.
    pub fn to_ltmap(&self) -> String {
        let mut out = String::new();
        for host in &self.hosts {
            let _ = writeln!(out, "h {host}");
        }
        for e in &self.edges {
            let _ = writeln!(
                out,
                "l {} {} {} {:.6} {:.6} {} {} {}",
                e.src, e.dst, e.bandwidth_bps, e.delay_s, e.loss, e.lan, e.src_ip, e.dst_ip
            );
        }
        let _ = writeln!(
            out,
            "r {}",
            if self.static_routing {
                "static"
            } else {
                "none"
            }
        );
        out
    }

    /// Reads [`Topology::to_ltmap`]'s text back, checking every field.
    pub fn parse_ltmap(text: &str) -> Result<Topology, TopologyError> {
        if text.len() > MAX_LTMAP_BYTES {
            return Err(TopologyError::TooLarge(text.len()));
        }
        let mut topo = Topology::default();
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: &str| TopologyError::BadLine {
                line: n + 1,
                reason: reason.to_owned(),
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                ["h", host] => topo.hosts.push(check_name(host).map_err(|r| bad(&r))?),
                ["l", src, dst, bw, delay, loss, lan, src_ip, dst_ip] => {
                    let delay_s: f64 = delay.parse().map_err(|_| bad("bad delay"))?;
                    let loss: f64 = loss.parse().map_err(|_| bad("bad loss"))?;
                    if !(0.0..=3600.0).contains(&delay_s) {
                        return Err(bad("delay out of range"));
                    }
                    if !(0.0..=1.0).contains(&loss) {
                        return Err(bad("loss out of range"));
                    }
                    topo.edges.push(Edge {
                        src: check_name(src).map_err(|r| bad(&r))?,
                        dst: check_name(dst).map_err(|r| bad(&r))?,
                        lan: check_name(lan).map_err(|r| bad(&r))?,
                        src_ip: src_ip.parse().map_err(|_| bad("bad source address"))?,
                        dst_ip: dst_ip.parse().map_err(|_| bad("bad destination address"))?,
                        bandwidth_bps: bw.parse().map_err(|_| bad("bad bandwidth"))?,
                        delay_s,
                        loss,
                    });
                }
                ["r", kind] => topo.static_routing = kind.eq_ignore_ascii_case("static"),
                _ => return Err(bad("unknown record")),
            }
        }
        topo.hosts.sort();
        topo.hosts.dedup();
        topo.edges
            .sort_by(|a, b| (&a.src, &a.dst, &a.lan).cmp(&(&b.src, &b.dst, &b.lan)));
        for e in &topo.edges {
            if topo.hosts.binary_search(&e.src).is_err()
                || topo.hosts.binary_search(&e.dst).is_err()
            {
                return Err(TopologyError::BadLine {
                    line: 0,
                    reason: format!("edge {} → {} names a node with no `h` line", e.src, e.dst),
                });
            }
        }
        Ok(topo)
    }

    /// The reverse of `edge` on the same LAN, if the topology has it.
    pub fn reverse(&self, edge: &Edge) -> Option<&Edge> {
        self.edges
            .iter()
            .find(|e| e.src == edge.dst && e.dst == edge.src && e.lan == edge.lan)
    }

    /// Whether `a` and `b` share a link or LAN.
    pub fn are_neighbors(&self, a: &str, b: &str) -> bool {
        self.edges.iter().any(|e| e.src == a && e.dst == b)
    }

    /// Number of hops on the shortest path from `from` to `to` (1 for
    /// neighbours), or `None` when `to` cannot be reached.
    pub fn hops(&self, from: &str, to: &str) -> Option<u32> {
        let mut seen = BTreeSet::from([from]);
        let mut queue = VecDeque::from([(from, 0u32)]);
        while let Some((node, dist)) = queue.pop_front() {
            if node == to {
                return Some(dist);
            }
            for e in self.edges.iter().filter(|e| e.src == node) {
                if seen.insert(e.dst.as_str()) {
                    queue.push_back((e.dst.as_str(), dist + 1));
                }
            }
        }
        None
    }

    /// The address other nodes use to reach `node` from afar: its address
    /// on the first of its links, in sorted order.
    pub fn address_of(&self, node: &str) -> Option<Ipv4Addr> {
        self.edges.iter().find(|e| e.src == node).map(|e| e.src_ip)
    }
}

/// Rounds to the six decimals the text form keeps, so that a topology
/// and its text form are equal.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Names are Emulab names (letters, digits, `-`, `_`, `.`): anything else
/// would not survive the text form or a report line.
fn check_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("bad name {name:?}"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tbevents_store::{VirtLanMember, VirtNode};

    fn member(lan: &str, node: &str, ip: &str, delay: f64, bw: u64, loss: f64) -> VirtLanMember {
        VirtLanMember {
            vname: lan.into(),
            vnode: node.into(),
            ip: ip.into(),
            mask: "255.255.255.0".into(),
            delay,
            rdelay: delay,
            bandwidth: bw,
            rbandwidth: bw,
            lossrate: loss,
            rlossrate: loss,
            ..VirtLanMember::default()
        }
    }

    fn line_with_lan() -> VirtualExperiment {
        VirtualExperiment {
            nodes: vec![
                VirtNode {
                    vname: "a".into(),
                    routertype: "static".into(),
                    ..VirtNode::default()
                },
                VirtNode {
                    vname: "b".into(),
                    ..VirtNode::default()
                },
            ],
            lan_members: vec![
                member("link0", "a", "10.1.1.1", 5.0, 1000, 0.0),
                member("link0", "b", "10.1.1.2", 5.0, 2000, 0.1),
                member("lan0", "b", "10.1.2.1", 0.0, 100_000, 0.0),
                member("lan0", "c", "10.1.2.2", 0.0, 100_000, 0.0),
                member("lan0", "d", "10.1.2.3", 0.0, 100_000, 0.0),
            ],
            ..VirtualExperiment::default()
        }
    }

    #[test]
    fn links_and_lans_expand_into_directed_edges_with_combined_parameters() {
        let topo = Topology::from_virtual(&line_with_lan()).unwrap();
        assert_eq!(topo.hosts, ["a", "b", "c", "d"]);
        assert_eq!(topo.edges.len(), 2 + 6);
        assert!(topo.static_routing);
        let ab = &topo.edges[0];
        assert_eq!((ab.src.as_str(), ab.dst.as_str()), ("a", "b"));
        assert_eq!(ab.bandwidth_bps, 1_000_000);
        assert!((ab.delay_s - 0.010).abs() < 1e-12);
        assert!((ab.loss - 0.1).abs() < 1e-12);
        assert_eq!(ab.src_ip, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(ab.describe(), "a to b (1 Mbps, 10ms, 10% loss)");
        let ba = topo.reverse(ab).unwrap();
        assert!((ba.loss - 0.1).abs() < 1e-12);
        assert_eq!(topo.hops("a", "d"), Some(2));
        assert_eq!(topo.hops("a", "a"), Some(0));
        assert!(topo.are_neighbors("c", "d"));
        assert!(!topo.are_neighbors("a", "c"));
        assert_eq!(topo.address_of("d"), Some(Ipv4Addr::new(10, 1, 2, 3)));
    }

    #[test]
    fn the_text_form_round_trips() {
        let topo = Topology::from_virtual(&line_with_lan()).unwrap();
        let text = topo.to_ltmap();
        assert!(text.starts_with("h a\nh b\n"), "{text}");
        assert!(text.ends_with("r static\n"), "{text}");
        assert_eq!(Topology::parse_ltmap(&text).unwrap(), topo);
    }

    #[test]
    fn hostile_text_is_refused_with_the_line() {
        for (text, needle) in [
            ("h a\nx y\n", "line 2: unknown record"),
            (
                "h a\nh b\nl a b 1 0.1 2.0 l0 10.0.0.1 10.0.0.2\n",
                "loss out of range",
            ),
            (
                "h a\nh b\nl a b 1 0.1 0 l0 10.0.0.1 nope\n",
                "bad destination address",
            ),
            ("h a\nl a b 1 0.1 0 l0 10.0.0.1 10.0.0.2\n", "no `h` line"),
            ("h a\"b\n", "bad name"),
        ] {
            let error = Topology::parse_ltmap(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
        let huge = "h a\n".repeat(MAX_LTMAP_BYTES / 4 + 1);
        assert!(matches!(
            Topology::parse_ltmap(&huge),
            Err(TopologyError::TooLarge(_))
        ));
    }

    #[test]
    fn a_member_without_an_address_is_reported() {
        let mut virt = line_with_lan();
        virt.lan_members[0].ip = String::new();
        let error = Topology::from_virtual(&virt).unwrap_err().to_string();
        assert!(error.contains("link0: member a"), "{error}");
    }
}
