//! The run's steps, computed the same way on the controller and on every
//! node from the same topology, so they agree on what step `k` means
//! without sending it.
//!
//! Level 1 (latency) is one step in which every link pair is pinged in
//! parallel; level 2 (static routing) is one step; levels 3 (loss) and 4
//! (bandwidth) run in rounds, because streams that share a node would
//! disturb each other's measurement. A round takes edges greedily, in
//! sorted order, whose endpoints are both still unused in that round. Each
//! loss or bandwidth round is two steps: *send*, in which the senders
//! stream, then *check*, in which the receivers judge what arrived. The
//! controller starts a step only when every node finished the previous
//! one, so by the time a check runs, every stream of its round has ended.

use std::collections::BTreeSet;

use crate::topology::{Edge, Topology};

/// Test titles, as the original printed them.
pub const LATENCY_TITLE: &str = "Latency (Round Trip)";
/// Level 2.
pub const ROUTING_TITLE: &str = "Static Routing";
/// Level 3.
pub const LOSS_TITLE: &str = "Loss";
/// Level 4.
pub const BANDWIDTH_TITLE: &str = "Bandwidth";

/// The highest level.
pub const MAX_LEVEL: u8 = 4;

/// One step of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// 1-based step number.
    pub number: u32,
    /// The test level it belongs to.
    pub level: u8,
    /// What the nodes do.
    pub action: Action,
}

/// What the nodes do in a step. Edges are indexes into
/// [`Topology::edges`].
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// For each pair, the destination of the first edge pings its source
    /// (so the pair's round trip crosses both edges): `(forward, reverse)`.
    Latency(Vec<(usize, usize)>),
    /// Every node probes every node it does not share a link with.
    Routing,
    /// Both ends of each pair stream to each other.
    LossSend(Vec<usize>),
    /// The receivers of these edges judge what the previous step sent.
    LossCheck(Vec<usize>),
    /// The sources of these edges flood their destinations.
    BandwidthSend(Vec<usize>),
    /// The receivers judge the previous step's floods.
    BandwidthCheck(Vec<usize>),
}

impl Step {
    /// The title of the test this step belongs to.
    pub fn title(&self) -> &'static str {
        match self.level {
            1 => LATENCY_TITLE,
            2 => ROUTING_TITLE,
            3 => LOSS_TITLE,
            _ => BANDWIDTH_TITLE,
        }
    }
}

/// Whether the loss test can judge this edge: the stream it needs must fit
/// in the link (docs/linktest.md, "Loss").
pub fn loss_testable(edge: &Edge) -> bool {
    edge.loss < 1.0 && crate::probe::loss_plan(edge).is_some()
}

/// Whether the bandwidth test can judge this edge: shaped between
/// 64 kb/s and 100 Mb/s, and without configured loss (which would lower
/// what arrives).
pub fn bandwidth_testable(edge: &Edge) -> bool {
    (64_000..=100_000_000).contains(&edge.bandwidth_bps) && edge.loss == 0.0
}

/// Every step of a run over levels `start..=stop`.
pub fn steps(topo: &Topology, start: u8, stop: u8) -> Vec<Step> {
    let mut out = Vec::new();
    let mut push = |level: u8, action: Action| {
        let number = out.len() as u32 + 1;
        out.push(Step {
            number,
            level,
            action,
        });
    };
    for level in start.max(1)..=stop.min(MAX_LEVEL) {
        match level {
            1 => push(1, Action::Latency(pairs(topo, |_| true))),
            2 => {
                if topo.static_routing {
                    push(2, Action::Routing);
                }
            }
            3 => {
                let testable = pairs(topo, loss_testable);
                for round in rounds(topo, &testable) {
                    let edges: Vec<usize> = round.iter().flat_map(|&(f, r)| [f, r]).collect();
                    push(3, Action::LossSend(edges.clone()));
                    push(3, Action::LossCheck(edges));
                }
            }
            _ => {
                let testable: Vec<(usize, usize)> = (0..topo.edges.len())
                    .filter(|&i| bandwidth_testable(&topo.edges[i]))
                    .map(|i| (i, i))
                    .collect();
                for round in rounds(topo, &testable) {
                    let edges: Vec<usize> = round.iter().map(|&(e, _)| e).collect();
                    push(4, Action::BandwidthSend(edges.clone()));
                    push(4, Action::BandwidthCheck(edges));
                }
            }
        }
    }
    out
}

/// Link pairs `(e, reverse(e))` with `e` sorting first, both edges
/// passing `keep`.
fn pairs(topo: &Topology, keep: impl Fn(&Edge) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, e) in topo.edges.iter().enumerate() {
        if (e.src.as_str(), e.dst.as_str()) >= (e.dst.as_str(), e.src.as_str()) {
            continue;
        }
        let Some(j) = topo
            .edges
            .iter()
            .position(|r| r.src == e.dst && r.dst == e.src && r.lan == e.lan)
        else {
            continue;
        };
        if keep(e) && keep(&topo.edges[j]) {
            out.push((i, j));
        }
    }
    out
}

/// Greedy rounds: each round takes items in order whose endpoints are not
/// yet busy in that round.
fn rounds(topo: &Topology, items: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
    let mut left: Vec<(usize, usize)> = items.to_vec();
    let mut out = Vec::new();
    while !left.is_empty() {
        let mut busy = BTreeSet::new();
        let mut round = Vec::new();
        left.retain(|&(e, r)| {
            let edge = &topo.edges[e];
            let _ = r;
            if busy.contains(&edge.src) || busy.contains(&edge.dst) {
                return true;
            }
            busy.insert(edge.src.clone());
            busy.insert(edge.dst.clone());
            round.push((e, r));
            false
        });
        out.push(round);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        let text = "h a\nh b\nh c\n\
l a b 1000000 0.005 0 link0 10.0.1.1 10.0.1.2\n\
l b a 1000000 0.005 0 link0 10.0.1.2 10.0.1.1\n\
l b c 10000000 0.001 0.1 link1 10.0.2.1 10.0.2.2\n\
l c b 10000000 0.001 0.1 link1 10.0.2.2 10.0.2.1\n\
r static\n";
        Topology::parse_ltmap(text).unwrap()
    }

    #[test]
    fn every_level_has_its_steps_and_rounds_never_share_a_node() {
        let topo = topo();
        let steps = steps(&topo, 1, 4);
        let kinds: Vec<(u8, &str)> = steps
            .iter()
            .map(|s| {
                (
                    s.level,
                    match s.action {
                        Action::Latency(_) => "latency",
                        Action::Routing => "routing",
                        Action::LossSend(_) => "loss-send",
                        Action::LossCheck(_) => "loss-check",
                        Action::BandwidthSend(_) => "bw-send",
                        Action::BandwidthCheck(_) => "bw-check",
                    },
                )
            })
            .collect();
        // Two loss rounds (both links share b); two bandwidth rounds for
        // link0's two directions; link1 has loss, so no bandwidth test.
        assert_eq!(
            kinds,
            [
                (1, "latency"),
                (2, "routing"),
                (3, "loss-send"),
                (3, "loss-check"),
                (3, "loss-send"),
                (3, "loss-check"),
                (4, "bw-send"),
                (4, "bw-check"),
                (4, "bw-send"),
                (4, "bw-check"),
            ]
        );
        assert_eq!(steps[0].action, Action::Latency(vec![(0, 1), (2, 3)]));
        assert_eq!(steps[2].action, Action::LossSend(vec![0, 1]));
        assert_eq!(steps[4].action, Action::LossSend(vec![2, 3]));
        assert_eq!(steps[6].action, Action::BandwidthSend(vec![0]));
        assert_eq!(steps[8].action, Action::BandwidthSend(vec![1]));
        assert!(
            steps
                .iter()
                .enumerate()
                .all(|(i, s)| s.number == i as u32 + 1)
        );
    }

    #[test]
    fn levels_are_a_range_and_routing_needs_static_routes() {
        let mut topo = topo();
        assert_eq!(steps(&topo, 2, 2).len(), 1);
        topo.static_routing = false;
        assert!(steps(&topo, 2, 2).is_empty());
        assert_eq!(steps(&topo, 1, 1).len(), 1);
        assert!(steps(&topo, 3, 1).is_empty());
    }
}
