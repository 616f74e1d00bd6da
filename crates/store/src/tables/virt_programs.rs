//! `virt_programs`: program agents, their command lines and run settings.

use super::Table;
use crate::model::{ExperimentId, VirtProgram};
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "virt_programs",
    columns: &[
        "pid",
        "eid",
        "vnode",
        "vname",
        "command",
        "dir",
        "timeout",
        "expected_exit_code",
    ],
};

/// The row for one program.
pub fn to_params(id: &ExperimentId, program: &VirtProgram) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        (&program.vnode).into(),
        (&program.vname).into(),
        (&program.command).into(),
        (&program.dir).into(),
        program.timeout.into(),
        Value::Int(i64::from(program.expected_exit_code)),
    ]
}

/// The program a row holds (a NULL command reads as empty).
pub fn from_row(row: &mut Named<'_>) -> Result<VirtProgram, ColumnError> {
    Ok(VirtProgram {
        vnode: row.text("vnode")?,
        vname: row.text("vname")?,
        command: row.opt_text("command")?.unwrap_or_default(),
        dir: row.text("dir")?,
        timeout: row.int_as("timeout")?,
        expected_exit_code: row.int_as("expected_exit_code")?,
    })
}
