//! A link's starting settings, from the experiment store's `virt_lans`
//! rows.
//!
//! Each member row holds the member's half of the link: `delay`,
//! `bandwidth` and `lossrate` on the way from the member into the link,
//! `rdelay`, `rbandwidth` and `rlossrate` on the way back, and the `q_*`
//! columns of its outgoing queue (see `docs/ns-files.md`). A direction
//! from member X to member Y is therefore X's outgoing half followed by
//! Y's incoming half: the delays add, the bandwidth is the smaller one,
//! the loss rates combine (1 - (1 - a)(1 - b)), and the queue is X's.

use std::time::Duration;

use tbevents_store::model::VirtLanMember;

use crate::params::{PipeParams, QueueParams, RedParams};
use crate::spec::{LinkKind, LinkSpec};

/// A link's settings could not be derived from the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("link {link}: {reason}")]
pub struct StoreParamsError {
    link: String,
    reason: String,
}

/// The queue of a member's row.
pub fn queue_of(row: &VirtLanMember) -> QueueParams {
    QueueParams {
        limit: row.q_limit.max(1),
        in_bytes: row.q_qinbytes,
        red: row.q_red.then_some(RedParams {
            min_thresh: row.q_minthresh,
            max_thresh: row.q_maxthresh,
            weight: row.q_weight,
            linterm: row.q_linterm.max(1),
            gentle: row.q_gentle,
            thresholds_in_bytes: row.q_bytes,
        }),
    }
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64((ms / 1000.0).clamp(0.0, crate::params::MAX_DELAY.as_secs_f64()))
}

fn combine_loss(a: f64, b: f64) -> f64 {
    (1.0 - (1.0 - a.clamp(0.0, 1.0)) * (1.0 - b.clamp(0.0, 1.0))).clamp(0.0, 1.0)
}

fn min_bandwidth(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Member `from`'s outgoing half followed by member `to`'s incoming half.
pub fn direction_between(from: &VirtLanMember, to: &VirtLanMember) -> PipeParams {
    PipeParams {
        bandwidth_kbps: min_bandwidth(from.bandwidth, to.rbandwidth),
        delay: millis(from.delay + to.rdelay),
        plr: combine_loss(from.lossrate, to.rlossrate),
        queue: queue_of(from),
    }
}

/// The pipes (A to B, B to A) of `spec`, from the rows of its link.
///
/// - duplex link: A to B is [`direction_between`] A and B, and back;
/// - LAN member: A to B is the member's outgoing half (its queue), B to A
///   its incoming half (default queue);
/// - tc egress with a node: a duplex link's A-to-other direction; on a
///   LAN, the member's outgoing plus incoming half, since egress is the
///   only place tc shapes (exact for LANs whose members are alike);
/// - no node named: an error (the rows cannot be told apart).
pub fn pipes_for(
    spec: &LinkSpec,
    rows: &[VirtLanMember],
) -> Result<[PipeParams; 2], StoreParamsError> {
    let err = |reason: String| StoreParamsError {
        link: spec.name.clone(),
        reason,
    };
    let members: Vec<&VirtLanMember> = rows.iter().filter(|r| r.vname == spec.name).collect();
    if members.is_empty() {
        return Err(err("the store has no virt_lans rows for it".into()));
    }
    let row = |vnode: &str| {
        members
            .iter()
            .copied()
            .find(|r| r.vnode == vnode)
            .ok_or_else(|| err(format!("the store has no member {vnode:?}")))
    };
    let Some(a_node) = spec.a.vnode.as_deref() else {
        return Err(err(
            "name the node behind the interface (NAME:VNODE=IFACE) to read its settings".into(),
        ));
    };
    let a = row(a_node)?;
    match spec.kind() {
        LinkKind::Duplex => {
            let b_node = spec.b.as_ref().and_then(|b| b.vnode.as_deref()).unwrap_or("");
            let b = row(b_node)?;
            Ok([direction_between(a, b), direction_between(b, a)])
        }
        LinkKind::LanMember => Ok([
            PipeParams {
                bandwidth_kbps: a.bandwidth,
                delay: millis(a.delay),
                plr: a.lossrate.clamp(0.0, 1.0),
                queue: queue_of(a),
            },
            PipeParams {
                bandwidth_kbps: a.rbandwidth,
                delay: millis(a.rdelay),
                plr: a.rlossrate.clamp(0.0, 1.0),
                queue: QueueParams::default(),
            },
        ]),
        LinkKind::Egress => {
            let out = if a.is_lan || members.len() != 2 {
                PipeParams {
                    bandwidth_kbps: min_bandwidth(a.bandwidth, a.rbandwidth),
                    delay: millis(a.delay + a.rdelay),
                    plr: combine_loss(a.lossrate, a.rlossrate),
                    queue: queue_of(a),
                }
            } else {
                let other = members
                    .iter()
                    .copied()
                    .find(|r| r.vnode != a_node)
                    .ok_or_else(|| err("the other member is missing".into()))?;
                direction_between(a, other)
            };
            Ok([out, PipeParams::default()])
        }
        LinkKind::Anonymous => Err(err(
            "name the nodes behind the interfaces (NAME:VA=IFACE_A:VB=IFACE_B) to read their settings"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(vname: &str, vnode: &str, is_lan: bool) -> VirtLanMember {
        VirtLanMember {
            vname: vname.into(),
            vnode: vnode.into(),
            delay: 5.0,
            rdelay: 5.0,
            bandwidth: 100_000,
            rbandwidth: 100_000,
            lossrate: 0.01,
            rlossrate: 0.01,
            is_lan,
            ..VirtLanMember::default()
        }
    }

    #[test]
    fn a_duplex_link_adds_the_two_halves() {
        let mut client = member("access", "client", false);
        let mut router = member("access", "router", false);
        router.q_limit = 100;
        router.rbandwidth = 50_000;
        client.q_red = true;
        client.q_gentle = true;
        let spec = LinkSpec::parse("access:client=a:router=b").unwrap();
        let [ab, ba] = pipes_for(&spec, &[client, router]).unwrap();
        assert_eq!(ab.delay, Duration::from_millis(10));
        assert_eq!(ab.bandwidth_kbps, 50_000);
        assert!((ab.plr - 0.0199).abs() < 1e-9);
        assert!(ab.queue.red.unwrap().gentle);
        assert_eq!(ba.queue.limit, 100);
        assert_eq!(ba.queue.red, None);
        assert_eq!(ba.bandwidth_kbps, 100_000);
    }

    #[test]
    fn lan_members_and_tc_egress() {
        let rows = vec![
            member("lan0", "s1", true),
            member("lan0", "s2", true),
            member("lan0", "r", true),
        ];
        let spec = LinkSpec::parse("lan0:s1=a:b").unwrap();
        let [out, back] = pipes_for(&spec, &rows).unwrap();
        assert_eq!(out.delay, Duration::from_millis(5));
        assert_eq!(back.delay, Duration::from_millis(5));
        let spec = LinkSpec::parse("lan0:s1=eth0").unwrap();
        let [egress, _] = pipes_for(&spec, &rows).unwrap();
        assert_eq!(egress.delay, Duration::from_millis(10));
        let spec = LinkSpec::parse("lan0:eth0").unwrap();
        assert!(pipes_for(&spec, &rows).is_err());
        let spec = LinkSpec::parse("lan0:nobody=eth0").unwrap();
        assert!(
            pipes_for(&spec, &rows)
                .unwrap_err()
                .to_string()
                .contains("nobody")
        );
    }
}
