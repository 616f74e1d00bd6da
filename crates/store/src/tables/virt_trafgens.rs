//! `virt_trafgens`: traffic generators.

use super::Table;
use crate::model::{ExperimentId, VirtTrafgen};
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "virt_trafgens",
    columns: &[
        "pid",
        "eid",
        "vnode",
        "vname",
        "role",
        "proto",
        "port",
        "ip",
        "target_vnode",
        "target_vname",
        "target_port",
        "target_ip",
        "generator",
    ],
};

/// The row for one generator.
pub fn to_params(id: &ExperimentId, tg: &VirtTrafgen) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        (&tg.vnode).into(),
        (&tg.vname).into(),
        (&tg.role).into(),
        (&tg.proto).into(),
        tg.port.into(),
        (&tg.ip).into(),
        (&tg.target_vnode).into(),
        (&tg.target_vname).into(),
        tg.target_port.into(),
        (&tg.target_ip).into(),
        (&tg.generator).into(),
    ]
}

/// The generator a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<VirtTrafgen, ColumnError> {
    Ok(VirtTrafgen {
        vnode: row.text("vnode")?,
        vname: row.text("vname")?,
        role: row.text("role")?,
        proto: row.text("proto")?,
        port: row.int_as("port")?,
        ip: row.text("ip")?,
        target_vnode: row.text("target_vnode")?,
        target_vname: row.text("target_vname")?,
        target_port: row.int_as("target_port")?,
        target_ip: row.text("target_ip")?,
        generator: row.text("generator")?,
    })
}
