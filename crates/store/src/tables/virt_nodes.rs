//! `virt_nodes`: the experiment's virtual nodes.

use super::Table;
use crate::model::{ExperimentId, VirtNode};
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "virt_nodes",
    columns: &["pid", "eid", "vname", "type", "osname", "routertype", "ips"],
};

/// The row for one node.
pub fn to_params(id: &ExperimentId, node: &VirtNode) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        (&node.vname).into(),
        (&node.node_type).into(),
        (&node.osname).into(),
        (&node.routertype).into(),
        (&node.ips).into(),
    ]
}

/// The node a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<VirtNode, ColumnError> {
    Ok(VirtNode {
        vname: row.text("vname")?,
        node_type: row.text("type")?,
        osname: row.text("osname")?,
        routertype: row.text("routertype")?,
        ips: row.text("ips")?,
    })
}
