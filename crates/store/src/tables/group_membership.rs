//! `group_membership`: who belongs to which project group, with what trust.

use super::Table;
use crate::model::{GroupMembership, Trust};
use crate::sql::{ColumnError, Named};

/// The table and the columns the model reads (the dates are stamped by
/// the database).
pub const TABLE: Table = Table {
    name: "group_membership",
    columns: &["uid", "gid", "pid", "trust"],
};

/// The membership a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<GroupMembership, ColumnError> {
    let trust = row.text("trust")?;
    Ok(GroupMembership {
        uid: row.text("uid")?,
        pid: row.text("pid")?,
        gid: row.text("gid")?,
        trust: trust
            .parse::<Trust>()
            .map_err(|_| format!("trust `{trust}` is not an Emulab trust level"))?,
    })
}
