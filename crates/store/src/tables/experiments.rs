//! `experiments`: one row per experiment.

use super::Table;
use crate::model::{Experiment, ExperimentId, ExperimentState};
use crate::sql::{ColumnError, Named};

/// The table and the columns the model reads.
pub const TABLE: Table = Table {
    name: "experiments",
    columns: &[
        "idx",
        "pid",
        "eid",
        "gid",
        "expt_head_uid",
        "expt_swap_uid",
        "state",
        "batchstate",
        "path",
        "logfile",
        "keyhash",
        "eventkey",
        "linktest_level",
        "expt_created",
    ],
};

/// The experiment a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<Experiment, ColumnError> {
    let id = ExperimentId::new(row.text("pid")?, row.text("eid")?);
    let state = row.text("state")?;
    let state = state.parse::<ExperimentState>().map_err(|_| {
        format!(
            "experiment {id} has state `{}`, which is not an Emulab experiment state; \
             set a valid one with `tbevents`",
            crate::model::shorten(&state)
        )
    })?;
    Ok(Experiment {
        idx: row.int_as("idx")?,
        gid: row.text("gid")?,
        expt_head_uid: row.text("expt_head_uid")?,
        expt_swap_uid: row.text("expt_swap_uid")?,
        state,
        batchstate: row.opt_text("batchstate")?,
        path: row.opt_text("path")?.unwrap_or_default(),
        logfile: row.opt_text("logfile")?,
        keyhash: row.opt_text("keyhash")?,
        eventkey: row.opt_text("eventkey")?,
        linktest_level: row.int_as("linktest_level")?,
        expt_created: row.text("expt_created")?,
        id,
    })
}
