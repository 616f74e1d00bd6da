//! `groups`: project groups and their Unix groups. The name is reserved in
//! MySQL 8, so it is always written backquoted (SQLite accepts that too).

use super::Table;
use crate::model::Group;
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "`groups`",
    columns: &["pid", "gid", "unix_gid", "unix_name"],
};

/// The row for one group.
pub fn to_params(group: &Group) -> Vec<Value> {
    vec![
        (&group.pid).into(),
        (&group.gid).into(),
        group.unix_gid.into(),
        (&group.unix_name).into(),
    ]
}

/// The group a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<Group, ColumnError> {
    Ok(Group {
        pid: row.text("pid")?,
        gid: row.text("gid")?,
        unix_gid: row.int_as("unix_gid")?,
        unix_name: row.text("unix_name")?,
    })
}
