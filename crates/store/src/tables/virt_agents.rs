//! `virt_agents`: the event agents (object name, vnode, object type index).

use super::Table;
use crate::model::ExperimentId;
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "virt_agents",
    columns: &["pid", "eid", "vname", "vnode", "objecttype"],
};

/// An agent row as stored: the object type is an index into
/// `event_objecttypes`.
pub struct StoredAgent {
    /// Object name.
    pub vname: String,
    /// Virtual node, or `*`.
    pub vnode: String,
    /// `event_objecttypes.idx`.
    pub objecttype: i64,
}

/// The row for one agent.
pub fn to_params(id: &ExperimentId, vname: &str, vnode: &str, objecttype: i64) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        vname.into(),
        vnode.into(),
        objecttype.into(),
    ]
}

/// The agent a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<StoredAgent, ColumnError> {
    Ok(StoredAgent {
        vname: row.text("vname")?,
        vnode: row.text("vnode")?,
        objecttype: row.int("objecttype")?,
    })
}
