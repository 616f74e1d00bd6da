//! `reserved`: which physical node holds which vnode of which experiment.

use super::Table;

/// The table and the columns swap-in writes.
pub const TABLE: Table = Table {
    name: "reserved",
    columns: &["node_id", "pid", "eid", "vname"],
};
