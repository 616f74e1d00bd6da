//! `event_groups`: event group membership, numbered in load order.

use super::Table;
use crate::model::{ExperimentId, GroupRow};
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "event_groups",
    columns: &["pid", "eid", "idx", "group_name", "agent_name"],
};

/// The row for the `idx`-th membership (1-based).
pub fn to_params(id: &ExperimentId, idx: i64, group: &GroupRow) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        idx.into(),
        (&group.group_name).into(),
        (&group.agent_name).into(),
    ]
}

/// The membership a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<GroupRow, ColumnError> {
    Ok(GroupRow {
        group_name: row.text("group_name")?,
        agent_name: row.text("agent_name")?,
    })
}
