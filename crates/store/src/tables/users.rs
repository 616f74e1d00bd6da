//! `users`: the accounts the control plane checks.

use super::Table;
use crate::model::User;
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "users",
    columns: &["uid", "unix_uid", "status", "admin"],
};

/// The row for one user.
pub fn to_params(user: &User) -> Vec<Value> {
    vec![
        (&user.uid).into(),
        user.unix_uid.into(),
        (&user.status).into(),
        user.admin.into(),
    ]
}

/// The user a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<User, ColumnError> {
    Ok(User {
        uid: row.text("uid")?,
        unix_uid: row.int_as("unix_uid")?,
        status: row.text("status")?,
        admin: row.flag("admin")?,
    })
}
