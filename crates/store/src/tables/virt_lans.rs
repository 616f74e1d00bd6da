//! `virt_lans`: one row per member of a link or LAN, with its shaping and
//! Emulab's queue columns.

use super::Table;
use crate::model::{ExperimentId, VirtLanMember};
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "virt_lans",
    columns: &[
        "pid",
        "eid",
        "vname",
        "vnode",
        "vport",
        "ip",
        "mask",
        "delay",
        "bandwidth",
        "lossrate",
        "rdelay",
        "rbandwidth",
        "rlossrate",
        "q_limit",
        "q_maxthresh",
        "q_minthresh",
        "q_weight",
        "q_linterm",
        "q_qinbytes",
        "q_bytes",
        "q_meanpsize",
        "q_wait",
        "q_setbit",
        "q_droptail",
        "q_red",
        "q_gentle",
        "member",
        "is_lan",
        "mustdelay",
    ],
};

/// The row for one member. Bandwidths above `i64::MAX` were refused by
/// [`VirtLanMember::validate`](crate::model::VirtLanMember::validate).
pub fn to_params(id: &ExperimentId, lan: &VirtLanMember) -> Vec<Value> {
    let wide = |value: u64| Value::Int(i64::try_from(value).unwrap_or(i64::MAX));
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        (&lan.vname).into(),
        (&lan.vnode).into(),
        lan.vport.into(),
        (&lan.ip).into(),
        (&lan.mask).into(),
        lan.delay.into(),
        wide(lan.bandwidth),
        lan.lossrate.into(),
        lan.rdelay.into(),
        wide(lan.rbandwidth),
        lan.rlossrate.into(),
        lan.q_limit.into(),
        lan.q_maxthresh.into(),
        lan.q_minthresh.into(),
        lan.q_weight.into(),
        lan.q_linterm.into(),
        lan.q_qinbytes.into(),
        lan.q_bytes.into(),
        lan.q_meanpsize.into(),
        lan.q_wait.into(),
        lan.q_setbit.into(),
        lan.q_droptail.into(),
        lan.q_red.into(),
        lan.q_gentle.into(),
        (&lan.member).into(),
        lan.is_lan.into(),
        lan.mustdelay.into(),
    ]
}

/// The member a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<VirtLanMember, ColumnError> {
    Ok(VirtLanMember {
        vname: row.text("vname")?,
        vnode: row.text("vnode")?,
        vport: row.int_as("vport")?,
        ip: row.text("ip")?,
        mask: row.text("mask")?,
        delay: row.real("delay")?,
        bandwidth: row.int_as("bandwidth")?,
        lossrate: row.real("lossrate")?,
        rdelay: row.real("rdelay")?,
        rbandwidth: row.int_as("rbandwidth")?,
        rlossrate: row.real("rlossrate")?,
        q_limit: row.int_as("q_limit")?,
        q_maxthresh: row.int_as("q_maxthresh")?,
        q_minthresh: row.int_as("q_minthresh")?,
        q_weight: row.real("q_weight")?,
        q_linterm: row.int_as("q_linterm")?,
        q_qinbytes: row.flag("q_qinbytes")?,
        q_bytes: row.flag("q_bytes")?,
        q_meanpsize: row.int_as("q_meanpsize")?,
        q_wait: row.flag("q_wait")?,
        q_setbit: row.flag("q_setbit")?,
        q_droptail: row.flag("q_droptail")?,
        q_red: row.flag("q_red")?,
        q_gentle: row.flag("q_gentle")?,
        member: row.text("member")?,
        is_lan: row.flag("is_lan")?,
        mustdelay: row.flag("mustdelay")?,
    })
}
