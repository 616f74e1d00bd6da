//! Emulab's tables, one module each: the table's one column list and the
//! mapping between its rows and the [`crate::model`] types
//! (`from_row` / `to_params`).
//!
//! Both database backends use these lists, so a column is named in exactly
//! one place: the queries in [`crate::engine`] select `Table::columns` and
//! read the result with [`Named`], by column name. Checks on the values a
//! caller hands in live in [`crate::model`]; these modules only convert.
//!
//! Each list is the table's full column set as the schema declares it
//! ([`crate::schema`] for SQLite, [`crate::mysql_schema`] for MySQL), apart
//! from backend bookkeeping (SQLite's `rowid`, MySQL's `seq`).

use crate::model::ExperimentId;
use crate::sql::{Named, Row, Value};

pub mod event_groups;
pub mod eventlist;
pub mod experiments;
pub mod group_membership;
pub mod groups;
pub mod inventory;
pub mod reserved;
pub mod users;
pub mod virt_agents;
pub mod virt_lans;
pub mod virt_nodes;
pub mod virt_programs;
pub mod virt_trafgens;

/// A table and its column list.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The table name (backquoted where MySQL reserves it).
    pub name: &'static str,
    /// Every column, in the order `from_row` reads and `to_params` writes.
    pub columns: &'static [&'static str],
}

impl Table {
    /// `a, b, c`: the column list for a `SELECT`.
    pub fn select_list(&self) -> String {
        self.columns.join(", ")
    }

    /// `a.x, a.y`: the column list qualified by a table alias.
    pub fn select_list_as(&self, alias: &str) -> String {
        self.columns
            .iter()
            .map(|column| format!("{alias}.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads a row selected with [`Table::select_list`].
    pub fn named<'r>(&self, row: &'r mut Row) -> Named<'r> {
        Named::new(row, self.columns)
    }

    /// `SELECT <columns> FROM <table> WHERE pid = ? AND eid = ? ORDER BY <order>`.
    pub fn select_experiment_rows(&self, order: &str) -> String {
        format!(
            "SELECT {} FROM {} WHERE pid = ? AND eid = ? ORDER BY {order}",
            self.select_list(),
            self.name
        )
    }
}

/// The `pid, eid` parameters every per-experiment query starts with.
pub fn experiment_key(id: &ExperimentId) -> Vec<Value> {
    vec![Value::from(&id.pid), Value::from(&id.eid)]
}

/// The virtual tables `load_virtual` replaces (Emulab's `@virtualTables`
/// subset the event system touches), children before parents.
pub const VIRTUAL_TABLES: [Table; 7] = [
    virt_nodes::TABLE,
    virt_lans::TABLE,
    virt_agents::TABLE,
    virt_programs::TABLE,
    virt_trafgens::TABLE,
    event_groups::TABLE,
    eventlist::TABLE,
];
