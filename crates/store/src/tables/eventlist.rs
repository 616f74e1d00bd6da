//! `eventlist`: the static events. Object and event types are indexes
//! into the type tables; `triggertype` is always TIMER (0) and `parent`
//! empty (no timelines yet).

use super::Table;
use crate::model::ExperimentId;
use crate::sql::{ColumnError, Named, Value};

/// The table and its columns.
pub const TABLE: Table = Table {
    name: "eventlist",
    columns: &[
        "pid",
        "eid",
        "idx",
        "time",
        "vnode",
        "vname",
        "objecttype",
        "eventtype",
        "isgroup",
        "arguments",
        "atstring",
        "triggertype",
        "parent",
    ],
};

/// An event row as stored, before the type indexes are turned into names.
#[derive(Debug)]
pub struct StoredEvent {
    /// Load-order number, 1-based.
    pub idx: u64,
    /// Seconds after the start of the run.
    pub time: f64,
    /// Virtual node, or empty.
    pub vnode: String,
    /// Object (agent or group) name.
    pub vname: String,
    /// `event_objecttypes.idx`.
    pub objecttype: i64,
    /// `event_eventtypes.idx`.
    pub eventtype: i64,
    /// Whether `vname` is an event group.
    pub isgroup: bool,
    /// Argument string (NULL reads as empty).
    pub arguments: String,
    /// The original `$ns at` text (NULL reads as empty).
    pub atstring: String,
}

/// The row for one event.
pub fn to_params(id: &ExperimentId, event: &StoredEvent) -> Vec<Value> {
    vec![
        (&id.pid).into(),
        (&id.eid).into(),
        Value::Int(i64::try_from(event.idx).unwrap_or(i64::MAX)),
        event.time.into(),
        (&event.vnode).into(),
        (&event.vname).into(),
        event.objecttype.into(),
        event.eventtype.into(),
        event.isgroup.into(),
        (&event.arguments).into(),
        (&event.atstring).into(),
        Value::Int(0),
        Value::from(""),
    ]
}

/// The event a row holds.
pub fn from_row(row: &mut Named<'_>) -> Result<StoredEvent, ColumnError> {
    Ok(StoredEvent {
        idx: row.int_as("idx")?,
        time: row.real("time")?,
        vnode: row.text("vnode")?,
        vname: row.text("vname")?,
        objecttype: row.int("objecttype")?,
        eventtype: row.int("eventtype")?,
        isgroup: row.flag("isgroup")?,
        arguments: row.opt_text("arguments")?.unwrap_or_default(),
        atstring: row.opt_text("atstring")?.unwrap_or_default(),
    })
}

/// The columns the scheduler's read needs: [`TABLE`]'s, less the ones it
/// never uses (`isgroup`, `atstring`, `triggertype`, `parent`), so a
/// 100,000-event load moves only what it keeps.
pub const SCHEDULE: Table = Table {
    name: "eventlist",
    columns: &[
        "pid",
        "eid",
        "idx",
        "time",
        "vnode",
        "vname",
        "objecttype",
        "eventtype",
        "arguments",
    ],
};

/// An event as the scheduler reads it (a row selected with [`SCHEDULE`]).
pub fn scheduled_from_row(row: &mut Named<'_>) -> Result<StoredEvent, ColumnError> {
    Ok(StoredEvent {
        idx: row.int_as("idx")?,
        time: row.real("time")?,
        vnode: row.text("vnode")?,
        vname: row.text("vname")?,
        objecttype: row.int("objecttype")?,
        eventtype: row.int("eventtype")?,
        isgroup: false,
        arguments: row.opt_text("arguments")?.unwrap_or_default(),
        atstring: String::new(),
    })
}
