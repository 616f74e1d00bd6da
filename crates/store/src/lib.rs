//! The experiment store: where tbevents keeps experiments, their virtual
//! topology and static events, the physical mapping made at swap-in, and
//! the users and groups the control plane checks.
//!
//! # Design
//!
//! * **One interface, several backends.** [`ExperimentStore`] is a trait
//!   that speaks in [`model`] types (never SQL), used by the scheduler
//!   (`event-sched`), the operator command (`tbevents`) and later the
//!   control plane. The default backend, [`SqliteStore`], is an embedded
//!   SQLite database: nothing to install or run. [`MysqlStore`] keeps the
//!   same tables in MySQL/MariaDB, Emulab's own kind of database. Callers
//!   hold a `Box<dyn ExperimentStore>` from [`open()`] (or
//!   [`open_read_only()`], the scheduler's view) and never see which.
//! * **Written once.** Both SQL backends run the same queries
//!   ([`engine`]) over the same per-table column lists and row mappings
//!   ([`tables`]), with the input checks in [`model`]; a backend supplies
//!   only connections, transactions, migrations and error translation.
//! * **Keys and rows kept apart.** Keys live in key files readable by the
//!   experiment's group ([`write_event_key_file_for_group`]) and in the
//!   store only where the operator asks; a scheduler reads a
//!   per-experiment [`snapshot`] or a restricted account, never the whole
//!   store (docs/store.md).
//! * **Synchronous.** Every backend is a blocking library, and the
//!   store is consulted a few times per experiment operation, not per
//!   event. Async callers run store calls in `spawn_blocking`; see
//!   [`store`] for the reasoning.
//! * **Emulab's tables and names.** The SQLite schema uses Emulab's table
//!   and column names (docs/emulab-model.md §8) so the MySQL backend
//!   and anyone who knows Emulab can read it; object and event types are
//!   stored as indexes into `event_objecttypes` / `event_eventtypes`,
//!   seeded with Emulab's rows (§2.7).
//! * **Migrated by the program.** The schema is a versioned list of
//!   migrations ([`schema`], [`mysql_schema`], the same steps) applied on
//!   open; an older database is upgraded, a newer one refused.
//! * **Found the same way by every program.** [`resolve_store_url`] picks a
//!   command-line URL, else `TBEVENTS_STORE`, else
//!   `sqlite:/var/lib/tbevents/tbevents.db`.
//!
//! Event keys ([`generate_event_key`], [`write_event_key_file`]) live here
//! too because creating an experiment means both storing the key and
//! writing the key file the scheduler and `tevc` read.
//!
//! # Decisions on points the original left open
//!
//! * Events are numbered `idx` 1, 2, 3, ... per experiment in load order
//!   (Emulab used a table-wide auto-increment), and [`ExperimentStore::events`]
//!   orders by `(time, idx)`: equal-time events keep file order, which the
//!   seed scheduler's heap did not guarantee (docs/emulab-model.md §6.4, §6.7).
//! * Event times keep full `f64` precision instead of Emulab's
//!   `float(10,3)`; negative, infinite or NaN times are refused.
//! * Broadcast (`*`) agents come back with `node_id` and `ipaddr` `None`
//!   (the scheduler turns that into HOST `*`), never with a literal `"*"`.
//! * An unknown object or event type name in [`ExperimentStore::load_virtual`]
//!   is an error naming the type and the row, and nothing is written;
//!   Emulab's front end would have written index 0 or failed in Tcl.
//! * The store does not enforce experiment life-cycle transitions (any
//!   state may follow any other, deleting an active experiment is allowed):
//!   that policy belongs to the control plane. It does validate the state
//!   *values* against Emulab's `EXPTSTATE_*` list.
//! * Users and groups are not required to exist when an experiment is
//!   created; the control plane checks permissions, the store only records.
//! * `eventlist.isgroup` (unused by Emulab) is set when the event's object
//!   name is an event group of the same experiment; `triggertype` is always
//!   `TIMER` (0) and `parent` empty, because the model has no timelines or
//!   swap-out triggers yet. `keyhash` and `logfile` are carried in
//!   [`Experiment`] but nothing sets them yet.
//! * The stores own no node inventory: swap-in writes the `nodes`,
//!   `node_types` and `interfaces` rows that make Emulab's control-IP join
//!   work, and swap-out removes the ones no reservation uses (see
//!   [`engine`]). A vnode must exist in the virtual topology to be mapped.

pub mod copy;
pub mod engine;
pub mod error;
pub mod eventkey;
pub mod model;
pub mod mysql;
pub mod mysql_schema;
pub mod open;
pub mod schema;
pub mod snapshot;
pub mod sql;
pub mod sqlite;
pub mod store;
pub mod tables;

pub use copy::{ImportSummary, import_store};
pub use error::{SUPPORTED_URLS, StoreError};
pub use eventkey::{
    EVENT_KEY_FILE_MODE, event_key_path, generate_event_key, try_generate_event_key,
    validate_event_key, write_event_key_file, write_event_key_file_for_group,
};
pub use model::{
    AgentRow, EventRow, Experiment, ExperimentId, ExperimentState, Group, GroupMembership,
    GroupRow, NewExperiment, NodeAssignment, StaticEvent, Trust, TypeEntry, TypeTable, User,
    VirtAgent, VirtLanMember, VirtNode, VirtProgram, VirtTrafgen, VirtualExperiment,
};
pub use mysql::MysqlStore;
pub use open::{
    DEFAULT_STORE_URL, STORE_ENV_VAR, StoreUrl, open, open_read_only, resolve_store_url,
};
pub use snapshot::write_experiment_snapshot;
pub use sqlite::SqliteStore;
pub use store::ExperimentStore;
