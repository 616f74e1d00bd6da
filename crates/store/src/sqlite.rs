//! The default backend: an embedded SQLite database (rusqlite, bundled).
//!
//! Why SQLite: a testbed operator gets a working store with nothing to
//! install or run; the file lives at a documented path (see
//! [`crate::resolve_store_url`]); SQLite's transactions give the atomic
//! "replace all virtual rows" that `load_virtual` promises.
//!
//! Shape:
//! * One [`rusqlite::Connection`] behind a mutex per [`SqliteStore`]. Store
//!   calls are short transactions, so serialising them inside one process
//!   costs nothing noticeable; separate processes (the scheduler reading
//!   while `tbevents` writes) coordinate through SQLite's own locking.
//! * WAL journal mode, so readers never block the writer or each other, and
//!   a busy timeout ([`BUSY_TIMEOUT`]) so a writer waits for another writer
//!   instead of failing at once. `synchronous = NORMAL` is the documented
//!   safe pairing with WAL (a power cut can lose the last commit, never
//!   corrupt the file).
//! * Reads run in a deferred transaction so the existence check and the
//!   rows come from one snapshot; writes take the write lock up front
//!   (`BEGIN IMMEDIATE`) so they never fail half-way on a lock upgrade.
//! * The schema is created and upgraded by [`crate::schema`]'s migrations on
//!   open. Before touching anything the store checks the file is ours
//!   (`PRAGMA application_id`) or empty, and refuses a newer schema.
//! * Every statement is prepared once and cached (`prepare_cached`); bulk
//!   loads run in one transaction, which is what makes 100,000 inserts fast.
//!
//! Physical mapping: a real Emulab database has an inventory of `nodes`,
//! `node_types` and `interfaces`. The SQLite store has none of its own, so
//! [`ExperimentStore::record_swapin`] writes the rows that make the control
//! IP resolve through Emulab's join (a node of type [`NODE_TYPE`] that is
//! its own physical host, with a control interface [`CONTROL_IFACE`]
//! carrying the given IP), and swap-out removes node rows no reservation
//! uses any more.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use rustc_hash::FxHashMap;

use crate::error::StoreError;
use crate::eventkey::validate_event_key;
use crate::model::{
    AgentRow, EventRow, Experiment, ExperimentId, ExperimentState, Group, GroupMembership,
    GroupRow, MAX_GID_LEN, MAX_PID_LEN, MAX_UID_LEN, NewExperiment, NodeAssignment, StaticEvent,
    Trust, TypeEntry, TypeTable, User, VirtAgent, VirtLanMember, VirtNode, VirtProgram,
    VirtTrafgen, VirtualExperiment, check_name, shorten,
};
use crate::schema::{APPLICATION_ID, ColumnAddition, MIGRATIONS, latest_version};
use crate::store::ExperimentStore;

/// How long a store call waits for another process's write lock before
/// failing with [`StoreError::Busy`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `node_types.type` the SQLite store gives nodes it records at swap-in.
pub const NODE_TYPE: &str = "pc";

/// The control interface name of [`NODE_TYPE`] (`node_types.control_iface`).
pub const CONTROL_IFACE: &str = "ctrl0";

/// Longest experiment path accepted (Linux `PATH_MAX`).
const MAX_PATH_LEN: usize = 4096;

/// Longest physical node id accepted at swap-in.
const MAX_NODE_ID_LEN: usize = 64;

/// An experiment store in one SQLite database file (or in memory).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    location: String,
    /// The busy timeout in force, for error messages.
    busy_timeout: Mutex<Duration>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What a failing database call was doing, to turn a bare SQLite error into
/// a [`StoreError`] an operator can act on.
struct Ctx<'a> {
    location: &'a str,
    doing: &'a str,
    busy_timeout: Duration,
}

impl<'a> Ctx<'a> {
    fn new(location: &'a str, doing: &'a str) -> Self {
        Ctx {
            location,
            doing,
            busy_timeout: BUSY_TIMEOUT,
        }
    }

    fn db(&self, err: rusqlite::Error) -> StoreError {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
                location: self.location.to_owned(),
                waited: self.busy_timeout,
                doing: self.doing.to_owned(),
            },
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
                StoreError::CannotOpen {
                    location: self.location.to_owned(),
                    reason: err.to_string(),
                }
            }
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                location: self.location.to_owned(),
            },
            _ => StoreError::Database {
                location: self.location.to_owned(),
                doing: self.doing.to_owned(),
                source: err,
            },
        }
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            location: self.location.to_owned(),
            detail,
        }
    }
}

/// `.or_db(&cx)?` turns a rusqlite result into a store result.
trait OrDb<T> {
    fn or_db(self, cx: &Ctx<'_>) -> Result<T, StoreError>;
}

impl<T> OrDb<T> for rusqlite::Result<T> {
    fn or_db(self, cx: &Ctx<'_>) -> Result<T, StoreError> {
        self.map_err(|err| cx.db(err))
    }
}

/// True when the error is a UNIQUE / PRIMARY KEY violation.
fn is_constraint(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, creating its
    /// parent directory if missing, and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CannotOpen {
                location: location.clone(),
                reason: format!("creating directory {}: {source}", parent.display()),
            })?;
        }
        let cx = Ctx::new(&location, "opening the database");
        let conn = Connection::open(path).or_db(&cx)?;
        Self::init(conn, location, true, latest_version())
    }

    /// Opens a private, empty in-memory database (for tests and demos; it
    /// vanishes with the store).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let location = "sqlite::memory:".to_owned();
        let cx = Ctx::new(&location, "opening an in-memory database");
        let conn = Connection::open_in_memory().or_db(&cx)?;
        Self::init(conn, location, false, latest_version())
    }

    /// Opens a file but migrates it only up to `version`, to build the
    /// "older database" that upgrade tests start from.
    #[cfg(test)]
    pub(crate) fn open_at_version(path: &Path, version: i64) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        let cx = Ctx::new(&location, "opening the database");
        let conn = Connection::open(path).or_db(&cx)?;
        Self::init(conn, location, true, version)
    }

    fn init(
        mut conn: Connection,
        location: String,
        on_disk: bool,
        target_version: i64,
    ) -> Result<Self, StoreError> {
        let cx = Ctx::new(&location, "checking the database");
        conn.busy_timeout(BUSY_TIMEOUT).or_db(&cx)?;
        // Look before writing anything: a foreign or newer file is left as is.
        check_ownership(&conn, &cx)?;
        if on_disk {
            let cx = Ctx::new(&location, "switching to WAL journal mode");
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .or_db(&cx)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(cx.corrupt(format!(
                    "SQLite refused WAL journal mode (got `{mode}`); the file system may not \
                     support shared memory: put the database on a local disk"
                )));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")
                .or_db(&cx)?;
        }

        migrate(&mut conn, &location, target_version)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            location,
            busy_timeout: Mutex::new(BUSY_TIMEOUT),
        })
    }

    /// Changes how long calls wait for another process's lock before
    /// failing with [`StoreError::Busy`] (default [`BUSY_TIMEOUT`]).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        let cx = self.cx("setting the busy timeout");
        conn.busy_timeout(timeout).or_db(&cx)?;
        *self.busy_timeout.lock() = timeout;
        Ok(())
    }

    fn cx<'a>(&'a self, doing: &'a str) -> Ctx<'a> {
        Ctx {
            location: &self.location,
            doing,
            busy_timeout: *self.busy_timeout.lock(),
        }
    }

    /// Runs `work` in a deferred (read) transaction.
    fn read<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&Transaction<'_>, &Ctx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let cx = self.cx(doing);
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .or_db(&cx)?;
        let out = work(&tx, &cx)?;
        tx.commit().or_db(&cx)?;
        Ok(out)
    }

    /// Runs `work` in an immediate (write) transaction; any error rolls
    /// everything back.
    fn write<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&Transaction<'_>, &Ctx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let cx = self.cx(doing);
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_db(&cx)?;
        let out = work(&tx, &cx)?;
        tx.commit().or_db(&cx)?;
        Ok(out)
    }
}

/// Refuses files that are not (empty or) tbevents databases of a version
/// this build understands.
fn check_ownership(conn: &Connection, cx: &Ctx<'_>) -> Result<(), StoreError> {
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .or_db(cx)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .or_db(cx)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .or_db(cx)?;
    let ours = application_id == APPLICATION_ID;
    let empty = application_id == 0 && version == 0 && objects == 0;
    if !ours && !empty {
        return Err(StoreError::ForeignDatabase {
            location: cx.location.to_owned(),
        });
    }
    if version > latest_version() {
        return Err(StoreError::NewerSchema {
            location: cx.location.to_owned(),
            found: version,
            supported: latest_version(),
        });
    }
    Ok(())
}

/// Applies every migration up to `target` that the file lacks, each in its
/// own immediate transaction that re-reads the version first, so two
/// processes opening the same new file concurrently apply each step exactly
/// once.
fn migrate(conn: &mut Connection, location: &str, target: i64) -> Result<(), StoreError> {
    // An up-to-date file needs no write lock: opening must not wait for
    // (or block) another process that is writing.
    let cx = Ctx::new(location, "reading the schema version");
    let start: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .or_db(&cx)?;
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > start && m.version <= target)
    {
        let doing = format!(
            "upgrading the schema to version {} ({})",
            migration.version, migration.description
        );
        let cx = Ctx::new(location, &doing);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_db(&cx)?;
        let current: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .or_db(&cx)?;
        if current > latest_version() {
            return Err(StoreError::NewerSchema {
                location: location.to_owned(),
                found: current,
                supported: latest_version(),
            });
        }
        if current >= migration.version {
            continue;
        }
        tx.execute_batch(migration.sql).or_db(&cx)?;
        for addition in migration.add_columns {
            add_column_if_missing(&tx, &cx, addition)?;
        }
        if migration.version == 1 {
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .or_db(&cx)?;
        }
        tx.pragma_update(None, "user_version", migration.version)
            .or_db(&cx)?;
        tx.commit().or_db(&cx)?;
    }
    Ok(())
}

/// `ALTER TABLE .. ADD COLUMN` unless the table already has the column
/// (SQLite has no `IF NOT EXISTS` for columns).
fn add_column_if_missing(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    addition: &ColumnAddition,
) -> Result<(), StoreError> {
    let present: i64 = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![addition.table, addition.column],
            |row| row.get(0),
        )
        .or_db(cx)?;
    if present == 0 {
        // Identifiers cannot be bound parameters; these are constants from
        // `schema`, never user input.
        tx.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            addition.table, addition.column, addition.declaration
        ))
        .or_db(cx)?;
    }
    Ok(())
}

// ----- helpers shared by the trait methods -----

/// Fails with [`StoreError::ExperimentNotFound`] unless the experiment exists.
fn require_experiment(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
) -> Result<(), StoreError> {
    let found = tx
        .prepare_cached("SELECT 1 FROM experiments WHERE pid = ?1 AND eid = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![id.pid, id.eid], |_| Ok(()))
                .optional()
        })
        .or_db(cx)?;
    found.ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))
}

const EXPERIMENT_COLUMNS: &str = "idx, pid, eid, gid, expt_head_uid, expt_swap_uid, state, \
     batchstate, path, logfile, keyhash, eventkey, linktest_level, expt_created";

/// An `experiments` row as SQLite returns it, before validation.
struct RawExperiment {
    idx: i64,
    pid: String,
    eid: String,
    gid: String,
    expt_head_uid: String,
    expt_swap_uid: String,
    state: String,
    batchstate: Option<String>,
    path: Option<String>,
    logfile: Option<String>,
    keyhash: Option<String>,
    eventkey: Option<String>,
    linktest_level: i64,
    expt_created: String,
}

fn raw_experiment(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawExperiment> {
    Ok(RawExperiment {
        idx: row.get(0)?,
        pid: row.get(1)?,
        eid: row.get(2)?,
        gid: row.get(3)?,
        expt_head_uid: row.get(4)?,
        expt_swap_uid: row.get(5)?,
        state: row.get(6)?,
        batchstate: row.get(7)?,
        path: row.get(8)?,
        logfile: row.get(9)?,
        keyhash: row.get(10)?,
        eventkey: row.get(11)?,
        linktest_level: row.get(12)?,
        expt_created: row.get(13)?,
    })
}

impl RawExperiment {
    fn into_experiment(self, cx: &Ctx<'_>) -> Result<Experiment, StoreError> {
        let id = ExperimentId::new(self.pid, self.eid);
        let state = self.state.parse::<ExperimentState>().map_err(|_| {
            cx.corrupt(format!(
                "experiment {id} has state `{}`, which is not an Emulab experiment state; \
                 set a valid one with `tbevents`",
                shorten(&self.state)
            ))
        })?;
        let idx = u64::try_from(self.idx)
            .map_err(|_| cx.corrupt(format!("experiment {id} has a negative idx {}", self.idx)))?;
        let linktest_level = u8::try_from(self.linktest_level).map_err(|_| {
            cx.corrupt(format!(
                "experiment {id} has linktest_level {}, outside 0..=255",
                self.linktest_level
            ))
        })?;
        Ok(Experiment {
            id,
            idx,
            gid: self.gid,
            expt_head_uid: self.expt_head_uid,
            expt_swap_uid: self.expt_swap_uid,
            state,
            batchstate: self.batchstate,
            path: self.path.unwrap_or_default(),
            logfile: self.logfile,
            keyhash: self.keyhash,
            eventkey: self.eventkey,
            linktest_level,
            expt_created: self.expt_created,
        })
    }
}

fn fetch_experiment(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
) -> Result<Experiment, StoreError> {
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE pid = ?1 AND eid = ?2");
    let raw = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![id.pid, id.eid], raw_experiment)
                .optional()
        })
        .or_db(cx)?
        .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))?;
    raw.into_experiment(cx)
}

/// The tables `load_virtual` replaces (Emulab's `@virtualTables` subset the
/// event system touches).
const VIRTUAL_TABLES: &[&str] = &[
    "virt_nodes",
    "virt_lans",
    "virt_agents",
    "virt_programs",
    "virt_trafgens",
    "event_groups",
    "eventlist",
];

fn delete_virtual_rows(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
) -> Result<(), StoreError> {
    for table in VIRTUAL_TABLES {
        let sql = format!("DELETE FROM {table} WHERE pid = ?1 AND eid = ?2");
        tx.prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid]))
            .or_db(cx)?;
    }
    Ok(())
}

/// Deletes the experiment's reservations, then the node and interface rows
/// that no reservation uses any more (the SQLite store has no inventory of
/// its own; see the module docs).
fn delete_reservations(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
) -> Result<(), StoreError> {
    let node_ids: Vec<String> = tx
        .prepare_cached("SELECT node_id FROM reserved WHERE pid = ?1 AND eid = ?2")
        .and_then(|mut stmt| {
            stmt.query_map(params![id.pid, id.eid], |row| row.get(0))?
                .collect()
        })
        .or_db(cx)?;
    tx.prepare_cached("DELETE FROM reserved WHERE pid = ?1 AND eid = ?2")
        .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid]))
        .or_db(cx)?;
    for node_id in &node_ids {
        tx.prepare_cached(
            "DELETE FROM interfaces WHERE node_id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM reserved WHERE node_id = ?1)",
        )
        .and_then(|mut stmt| stmt.execute(params![node_id]))
        .or_db(cx)?;
        tx.prepare_cached(
            "DELETE FROM nodes WHERE node_id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM reserved WHERE node_id = ?1)",
        )
        .and_then(|mut stmt| stmt.execute(params![node_id]))
        .or_db(cx)?;
    }
    Ok(())
}

/// Name → index of one type table.
fn type_map(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    table: TypeTable,
) -> Result<FxHashMap<String, i64>, StoreError> {
    let sql = format!("SELECT type, idx FROM {}", table.table_name());
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect()
        })
        .or_db(cx)
}

/// Index → name of one type table.
fn type_names(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    table: TypeTable,
) -> Result<FxHashMap<i64, String>, StoreError> {
    let sql = format!("SELECT idx, type FROM {}", table.table_name());
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .collect()
        })
        .or_db(cx)
}

/// The names of a type map, sorted by index, comma-separated.
fn known_names(map: &FxHashMap<String, i64>) -> String {
    let mut entries: Vec<(&i64, &String)> = map.iter().map(|(name, idx)| (idx, name)).collect();
    entries.sort();
    let names: Vec<&str> = entries.into_iter().map(|(_, name)| name.as_str()).collect();
    names.join(", ")
}

fn lookup_objtype(
    map: &FxHashMap<String, i64>,
    name: &str,
    context: impl FnOnce() -> String,
) -> Result<i64, StoreError> {
    map.get(name)
        .copied()
        .ok_or_else(|| StoreError::UnknownObjectType {
            name: shorten(name),
            context: context(),
            known: known_names(map),
        })
}

fn lookup_eventtype(
    map: &FxHashMap<String, i64>,
    name: &str,
    context: impl FnOnce() -> String,
) -> Result<i64, StoreError> {
    map.get(name)
        .copied()
        .ok_or_else(|| StoreError::UnknownEventType {
            name: shorten(name),
            context: context(),
            known: known_names(map),
        })
}

/// Runs one insert, turning a uniqueness violation into `duplicate()`.
fn insert_row(
    result: rusqlite::Result<usize>,
    cx: &Ctx<'_>,
    duplicate: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_constraint(&err) => Err(StoreError::InvalidInput(duplicate())),
        Err(err) => Err(cx.db(err)),
    }
}

fn to_i64(value: u64, what: impl FnOnce() -> String) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::InvalidInput(format!(
            "{} is {value}, larger than the store can hold",
            what()
        ))
    })
}

/// A finite, non-negative quantity (times, delays).
fn check_non_negative(value: f64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}; it must be a finite number of at least 0",
            what()
        )))
    }
}

/// A loss rate: a probability.
fn check_rate(value: f64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}; it must be between 0 and 1",
            what()
        )))
    }
}

/// A RED queue weight: a fraction in (0, 1].
fn check_queue_weight(value: f64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{} is {value}; it must be more than 0 and at most 1",
            what()
        )))
    }
}

fn check_path(path: &str) -> Result<(), StoreError> {
    if !path.starts_with('/') || path.len() > MAX_PATH_LEN || path.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "experiment directory `{}` must be an absolute path (such as /proj/<pid>/exp/<eid>) \
             of at most {MAX_PATH_LEN} bytes",
            shorten(path)
        )));
    }
    Ok(())
}

fn check_node_id(node_id: &str) -> Result<(), StoreError> {
    let ok = !node_id.is_empty()
        && node_id.len() <= MAX_NODE_ID_LEN
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "physical node id `{}` must be 1 to {MAX_NODE_ID_LEN} characters from \
             A-Z, a-z, 0-9, `_`, `-` and `.`",
            shorten(node_id)
        )))
    }
}

fn write_nodes(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    nodes: &[VirtNode],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO virt_nodes (pid, eid, vname, type, osname, routertype, ips) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .or_db(cx)?;
    for node in nodes {
        if node.vname.is_empty() || node.vname == "*" {
            return Err(StoreError::InvalidInput(format!(
                "virtual node name `{}` is not usable: node names must be non-empty and not `*`",
                node.vname
            )));
        }
        insert_row(
            stmt.execute(params![
                id.pid,
                id.eid,
                node.vname,
                node.node_type,
                node.osname,
                node.routertype,
                node.ips
            ]),
            cx,
            || format!("virtual node `{}` is declared twice", shorten(&node.vname)),
        )?;
    }
    Ok(())
}

fn write_lan_members(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    members: &[VirtLanMember],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO virt_lans (pid, eid, vname, vnode, vport, ip, mask, delay, bandwidth, \
             lossrate, rdelay, rbandwidth, rlossrate, q_limit, q_maxthresh, q_minthresh, \
             q_weight, q_linterm, q_qinbytes, q_bytes, q_meanpsize, q_wait, q_setbit, \
             q_droptail, q_red, q_gentle, member, is_lan, mustdelay) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)",
        )
        .or_db(cx)?;
    for lan in members {
        let which = || {
            format!(
                "link/LAN `{}` member `{}`",
                shorten(&lan.vname),
                shorten(&lan.member)
            )
        };
        check_non_negative(lan.delay, || format!("delay of {}", which()))?;
        check_non_negative(lan.rdelay, || format!("reverse delay of {}", which()))?;
        check_rate(lan.lossrate, || format!("loss rate of {}", which()))?;
        check_rate(lan.rlossrate, || {
            format!("reverse loss rate of {}", which())
        })?;
        let bandwidth = to_i64(lan.bandwidth, || format!("bandwidth of {}", which()))?;
        let rbandwidth = to_i64(lan.rbandwidth, || {
            format!("reverse bandwidth of {}", which())
        })?;
        check_queue_weight(lan.q_weight, || format!("queue weight of {}", which()))?;
        insert_row(
            stmt.execute(params![
                id.pid,
                id.eid,
                lan.vname,
                lan.vnode,
                lan.vport,
                lan.ip,
                lan.mask,
                lan.delay,
                bandwidth,
                lan.lossrate,
                lan.rdelay,
                rbandwidth,
                lan.rlossrate,
                lan.q_limit,
                lan.q_maxthresh,
                lan.q_minthresh,
                lan.q_weight,
                lan.q_linterm,
                lan.q_qinbytes,
                lan.q_bytes,
                lan.q_meanpsize,
                lan.q_wait,
                lan.q_setbit,
                lan.q_droptail,
                lan.q_red,
                lan.q_gentle,
                lan.member,
                lan.is_lan,
                lan.mustdelay
            ]),
            cx,
            || format!("{} appears twice", which()),
        )?;
    }
    Ok(())
}

fn write_agents(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    agents: &[VirtAgent],
    objtypes: &FxHashMap<String, i64>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO virt_agents (pid, eid, vname, vnode, objecttype) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .or_db(cx)?;
    for agent in agents {
        let objtype = lookup_objtype(objtypes, &agent.objtype, || {
            format!(
                "agent `{}` on vnode `{}`",
                shorten(&agent.vname),
                shorten(&agent.vnode)
            )
        })?;
        insert_row(
            stmt.execute(params![id.pid, id.eid, agent.vname, agent.vnode, objtype]),
            cx,
            || declared_twice("agent", &agent.vname, &agent.vnode),
        )?;
    }
    Ok(())
}

/// The message for a row whose (vname, vnode) key is already taken.
fn declared_twice(what: &str, vname: &str, vnode: &str) -> String {
    format!(
        "{what} `{}` on vnode `{}` is declared twice",
        shorten(vname),
        shorten(vnode)
    )
}

fn write_programs(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    programs: &[VirtProgram],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO virt_programs (pid, eid, vnode, vname, command, dir, timeout, \
             expected_exit_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .or_db(cx)?;
    for program in programs {
        insert_row(
            stmt.execute(params![
                id.pid,
                id.eid,
                program.vnode,
                program.vname,
                program.command,
                program.dir,
                program.timeout,
                program.expected_exit_code
            ]),
            cx,
            || declared_twice("program", &program.vname, &program.vnode),
        )?;
    }
    Ok(())
}

fn write_trafgens(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    trafgens: &[VirtTrafgen],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO virt_trafgens (pid, eid, vnode, vname, role, proto, port, ip, \
             target_vnode, target_vname, target_port, target_ip, generator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .or_db(cx)?;
    for tg in trafgens {
        insert_row(
            stmt.execute(params![
                id.pid,
                id.eid,
                tg.vnode,
                tg.vname,
                tg.role,
                tg.proto,
                tg.port,
                tg.ip,
                tg.target_vnode,
                tg.target_vname,
                tg.target_port,
                tg.target_ip,
                tg.generator
            ]),
            cx,
            || declared_twice("traffic generator", &tg.vname, &tg.vnode),
        )?;
    }
    Ok(())
}

fn write_groups(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    groups: &[GroupRow],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO event_groups (pid, eid, idx, group_name, agent_name) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .or_db(cx)?;
    for (position, group) in groups.iter().enumerate() {
        let idx = i64::try_from(position)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        stmt.execute(params![
            id.pid,
            id.eid,
            idx,
            group.group_name,
            group.agent_name
        ])
        .or_db(cx)?;
    }
    Ok(())
}

fn write_events(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
    virt: &VirtualExperiment,
    objtypes: &FxHashMap<String, i64>,
    eventtypes: &FxHashMap<String, i64>,
) -> Result<(), StoreError> {
    let group_names: HashSet<&str> = virt.groups.iter().map(|g| g.group_name.as_str()).collect();
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO eventlist (pid, eid, idx, time, vnode, vname, objecttype, eventtype, \
             isgroup, arguments, atstring, triggertype, parent) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, '')",
        )
        .or_db(cx)?;
    for (position, event) in virt.events.iter().enumerate() {
        let idx = i64::try_from(position)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let which = || {
            format!(
                "event {idx} (`{}` {} at {})",
                shorten(&event.vname),
                shorten(&event.eventtype),
                event.time
            )
        };
        check_non_negative(event.time, || format!("the time of {}", which()))?;
        let objtype = lookup_objtype(objtypes, &event.objtype, which)?;
        let eventtype = lookup_eventtype(eventtypes, &event.eventtype, which)?;
        let isgroup = group_names.contains(event.vname.as_str());
        stmt.execute(params![
            id.pid,
            id.eid,
            idx,
            event.time,
            event.vnode,
            event.vname,
            objtype,
            eventtype,
            isgroup,
            event.arguments,
            event.atstring
        ])
        .or_db(cx)?;
    }
    Ok(())
}

/// Reads a type name that a LEFT JOIN may have left NULL.
fn type_name(
    cx: &Ctx<'_>,
    name: Option<String>,
    table: TypeTable,
    row: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    name.ok_or_else(|| {
        cx.corrupt(format!(
            "{} refers to a type index missing from {}",
            row(),
            table.table_name()
        ))
    })
}

fn read_memberships(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    sql: &str,
    key: &[&str],
) -> Result<Vec<GroupMembership>, StoreError> {
    let rows: Vec<(String, String, String, String)> = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(key.iter()), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect()
        })
        .or_db(cx)?;
    rows.into_iter()
        .map(|(uid, pid, gid, trust)| {
            let trust = trust.parse::<Trust>().map_err(|_| {
                cx.corrupt(format!(
                    "group_membership row {uid} in {pid}/{gid} has trust `{}`",
                    shorten(&trust)
                ))
            })?;
            Ok(GroupMembership {
                uid,
                pid,
                gid,
                trust,
            })
        })
        .collect()
}

fn require_user(tx: &Transaction<'_>, cx: &Ctx<'_>, uid: &str) -> Result<(), StoreError> {
    tx.prepare_cached("SELECT 1 FROM users WHERE uid = ?1")
        .and_then(|mut stmt| stmt.query_row(params![uid], |_| Ok(())).optional())
        .or_db(cx)?
        .ok_or_else(|| StoreError::UserNotFound(shorten(uid)))
}

fn require_group(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    pid: &str,
    gid: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached("SELECT 1 FROM groups WHERE pid = ?1 AND gid = ?2")
        .and_then(|mut stmt| stmt.query_row(params![pid, gid], |_| Ok(())).optional())
        .or_db(cx)?
        .ok_or_else(|| StoreError::GroupNotFound {
            pid: shorten(pid),
            gid: shorten(gid),
        })
}

/// The control IP of `node_id`'s physical host, as Emulab's
/// `mydb_nodeidtoip` resolves it (docs/emulab-model.md §6.3).
const CONTROL_IP_OF_NODE: &str = "SELECT i.IP FROM nodes n2 \
     JOIN nodes n1 ON n1.node_id = n2.phys_nodeid \
     JOIN node_types nt ON nt.type = n1.type \
     JOIN interfaces i ON i.node_id = n1.node_id AND i.iface = nt.control_iface \
     WHERE n2.node_id = r.node_id ORDER BY i.card, i.port LIMIT 1";

impl ExperimentStore for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        self.read("reading the schema version", |tx, cx| {
            tx.pragma_query_value(None, "user_version", |row| row.get(0))
                .or_db(cx)
        })
    }

    fn create_experiment(&self, new: &NewExperiment) -> Result<Experiment, StoreError> {
        new.id.validate()?;
        check_name("group id", &new.gid, MAX_GID_LEN)?;
        check_name("user id", &new.creator_uid, MAX_UID_LEN)?;
        check_path(&new.path)?;
        self.write("creating an experiment", |tx, cx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO experiments (pid, eid, gid, expt_head_uid, expt_swap_uid, \
                     state, path) VALUES (?1, ?2, ?3, ?4, ?4, 'new', ?5)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        new.id.pid,
                        new.id.eid,
                        new.gid,
                        new.creator_uid,
                        new.path
                    ])
                });
            match inserted {
                Ok(_) => {}
                Err(err) if is_constraint(&err) => {
                    return Err(StoreError::ExperimentExists(new.id.clone()));
                }
                Err(err) => return Err(cx.db(err)),
            }
            fetch_experiment(tx, cx, &new.id)
        })
    }

    fn experiment(&self, id: &ExperimentId) -> Result<Experiment, StoreError> {
        self.read("reading an experiment", |tx, cx| {
            fetch_experiment(tx, cx, id)
        })
    }

    fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        self.read("listing experiments", |tx, cx| {
            let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY pid, eid");
            let raws: Vec<RawExperiment> = tx
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.query_map([], raw_experiment)?.collect())
                .or_db(cx)?;
            raws.into_iter()
                .map(|raw| raw.into_experiment(cx))
                .collect()
        })
    }

    fn delete_experiment(&self, id: &ExperimentId) -> Result<(), StoreError> {
        self.write("deleting an experiment", |tx, cx| {
            require_experiment(tx, cx, id)?;
            delete_virtual_rows(tx, cx, id)?;
            delete_reservations(tx, cx, id)?;
            tx.prepare_cached("DELETE FROM experiments WHERE pid = ?1 AND eid = ?2")
                .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid]))
                .or_db(cx)?;
            Ok(())
        })
    }

    fn state(&self, id: &ExperimentId) -> Result<ExperimentState, StoreError> {
        self.read("reading an experiment's state", |tx, cx| {
            let state: String = tx
                .prepare_cached("SELECT state FROM experiments WHERE pid = ?1 AND eid = ?2")
                .and_then(|mut stmt| {
                    stmt.query_row(params![id.pid, id.eid], |row| row.get(0))
                        .optional()
                })
                .or_db(cx)?
                .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))?;
            state.parse::<ExperimentState>().map_err(|_| {
                cx.corrupt(format!(
                    "experiment {id} has state `{}`, which is not an Emulab experiment state",
                    shorten(&state)
                ))
            })
        })
    }

    fn set_state(&self, id: &ExperimentId, state: ExperimentState) -> Result<(), StoreError> {
        self.write("setting an experiment's state", |tx, cx| {
            let changed = tx
                .prepare_cached("UPDATE experiments SET state = ?3 WHERE pid = ?1 AND eid = ?2")
                .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid, state.as_str()]))
                .or_db(cx)?;
            if changed == 0 {
                return Err(StoreError::ExperimentNotFound(id.clone()));
            }
            Ok(())
        })
    }

    fn set_event_key(&self, id: &ExperimentId, key: &str) -> Result<(), StoreError> {
        validate_event_key(key)?;
        self.write("setting an experiment's event key", |tx, cx| {
            let changed = tx
                .prepare_cached("UPDATE experiments SET eventkey = ?3 WHERE pid = ?1 AND eid = ?2")
                .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid, key]))
                .or_db(cx)?;
            if changed == 0 {
                return Err(StoreError::ExperimentNotFound(id.clone()));
            }
            Ok(())
        })
    }

    fn load_virtual(&self, id: &ExperimentId, virt: &VirtualExperiment) -> Result<(), StoreError> {
        self.write("loading a virtual experiment", |tx, cx| {
            require_experiment(tx, cx, id)?;
            let objtypes = type_map(tx, cx, TypeTable::ObjectTypes)?;
            let eventtypes = type_map(tx, cx, TypeTable::EventTypes)?;
            delete_virtual_rows(tx, cx, id)?;
            tx.prepare_cached(
                "UPDATE experiments SET simulator_name = ?3 WHERE pid = ?1 AND eid = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![id.pid, id.eid, virt.simulator_name]))
            .or_db(cx)?;
            write_nodes(tx, cx, id, &virt.nodes)?;
            write_lan_members(tx, cx, id, &virt.lan_members)?;
            write_agents(tx, cx, id, &virt.agents, &objtypes)?;
            write_programs(tx, cx, id, &virt.programs)?;
            write_trafgens(tx, cx, id, &virt.trafgens)?;
            write_groups(tx, cx, id, &virt.groups)?;
            write_events(tx, cx, id, virt, &objtypes, &eventtypes)
        })
    }

    fn virtual_experiment(&self, id: &ExperimentId) -> Result<VirtualExperiment, StoreError> {
        self.read("reading a virtual experiment", |tx, cx| {
            let simulator_name: String = tx
                .prepare_cached(
                    "SELECT simulator_name FROM experiments WHERE pid = ?1 AND eid = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![id.pid, id.eid], |row| row.get(0))
                        .optional()
                })
                .or_db(cx)?
                .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))?;
            let key = params![id.pid, id.eid];

            let nodes: Vec<VirtNode> = tx
                .prepare_cached(
                    "SELECT vname, type, osname, routertype, ips FROM virt_nodes \
                     WHERE pid = ?1 AND eid = ?2 ORDER BY rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(key, |row| {
                        Ok(VirtNode {
                            vname: row.get(0)?,
                            node_type: row.get(1)?,
                            osname: row.get(2)?,
                            routertype: row.get(3)?,
                            ips: row.get(4)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)?;

            let lan_members: Vec<VirtLanMember> = tx
                .prepare_cached(
                    "SELECT vname, vnode, vport, ip, mask, delay, bandwidth, lossrate, rdelay, \
                     rbandwidth, rlossrate, q_limit, q_maxthresh, q_minthresh, q_weight, \
                     q_linterm, q_qinbytes, q_bytes, q_meanpsize, q_wait, q_setbit, q_droptail, \
                     q_red, q_gentle, member, is_lan, mustdelay FROM virt_lans \
                     WHERE pid = ?1 AND eid = ?2 ORDER BY rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(key, |row| {
                        Ok(VirtLanMember {
                            vname: row.get(0)?,
                            vnode: row.get(1)?,
                            vport: row.get(2)?,
                            ip: row.get(3)?,
                            mask: row.get(4)?,
                            delay: row.get(5)?,
                            bandwidth: get_u64(row, 6)?,
                            lossrate: row.get(7)?,
                            rdelay: row.get(8)?,
                            rbandwidth: get_u64(row, 9)?,
                            rlossrate: row.get(10)?,
                            q_limit: row.get(11)?,
                            q_maxthresh: row.get(12)?,
                            q_minthresh: row.get(13)?,
                            q_weight: row.get(14)?,
                            q_linterm: row.get(15)?,
                            q_qinbytes: row.get(16)?,
                            q_bytes: row.get(17)?,
                            q_meanpsize: row.get(18)?,
                            q_wait: row.get(19)?,
                            q_setbit: row.get(20)?,
                            q_droptail: row.get(21)?,
                            q_red: row.get(22)?,
                            q_gentle: row.get(23)?,
                            member: row.get(24)?,
                            is_lan: row.get(25)?,
                            mustdelay: row.get(26)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)?;

            let raw_agents: Vec<(String, String, Option<String>)> = tx
                .prepare_cached(
                    "SELECT vi.vname, vi.vnode, ot.type FROM virt_agents vi \
                     LEFT JOIN event_objecttypes ot ON ot.idx = vi.objecttype \
                     WHERE vi.pid = ?1 AND vi.eid = ?2 ORDER BY vi.rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(key, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                        .collect()
                })
                .or_db(cx)?;
            let agents = raw_agents
                .into_iter()
                .map(|(vname, vnode, objtype)| {
                    let objtype = type_name(cx, objtype, TypeTable::ObjectTypes, || {
                        format!("virt_agents row `{vname}` of {id}")
                    })?;
                    Ok(VirtAgent {
                        vname,
                        vnode,
                        objtype,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;

            let programs: Vec<VirtProgram> = tx
                .prepare_cached(
                    "SELECT vnode, vname, command, dir, timeout, expected_exit_code \
                     FROM virt_programs WHERE pid = ?1 AND eid = ?2 ORDER BY rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(key, |row| {
                        Ok(VirtProgram {
                            vnode: row.get(0)?,
                            vname: row.get(1)?,
                            command: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            dir: row.get(3)?,
                            timeout: row.get(4)?,
                            expected_exit_code: row.get(5)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)?;

            let trafgens: Vec<VirtTrafgen> = tx
                .prepare_cached(
                    "SELECT vnode, vname, role, proto, port, ip, target_vnode, target_vname, \
                     target_port, target_ip, generator FROM virt_trafgens \
                     WHERE pid = ?1 AND eid = ?2 ORDER BY rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(key, |row| {
                        Ok(VirtTrafgen {
                            vnode: row.get(0)?,
                            vname: row.get(1)?,
                            role: row.get(2)?,
                            proto: row.get(3)?,
                            port: row.get(4)?,
                            ip: row.get(5)?,
                            target_vnode: row.get(6)?,
                            target_vname: row.get(7)?,
                            target_port: row.get(8)?,
                            target_ip: row.get(9)?,
                            generator: row.get(10)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)?;

            let groups = read_groups(tx, cx, id)?;

            let raw_events: Vec<RawEvent> = tx
                .prepare_cached(
                    "SELECT ex.idx, ex.time, ex.vnode, ex.vname, ot.type, et.type, \
                     ex.arguments, ex.atstring FROM eventlist ex \
                     LEFT JOIN event_objecttypes ot ON ot.idx = ex.objecttype \
                     LEFT JOIN event_eventtypes et ON et.idx = ex.eventtype \
                     WHERE ex.pid = ?1 AND ex.eid = ?2 ORDER BY ex.idx",
                )
                .and_then(|mut stmt| stmt.query_map(key, raw_event)?.collect())
                .or_db(cx)?;
            let events = raw_events
                .into_iter()
                .map(|raw| raw.into_static_event(cx, id))
                .collect::<Result<Vec<StaticEvent>, StoreError>>()?;

            Ok(VirtualExperiment {
                nodes,
                lan_members,
                agents,
                programs,
                trafgens,
                groups,
                events,
                simulator_name,
            })
        })
    }

    fn record_swapin(
        &self,
        id: &ExperimentId,
        assignments: &[NodeAssignment],
    ) -> Result<(), StoreError> {
        let mut vnodes = HashSet::new();
        let mut node_ids = HashSet::new();
        for assignment in assignments {
            check_node_id(&assignment.node_id)?;
            if assignment.control_ip.parse::<Ipv4Addr>().is_err() {
                return Err(StoreError::InvalidInput(format!(
                    "control IP `{}` of node {} is not a dotted-quad IPv4 address",
                    shorten(&assignment.control_ip),
                    assignment.node_id
                )));
            }
            if !vnodes.insert(assignment.vnode.as_str()) {
                return Err(StoreError::InvalidInput(format!(
                    "vnode `{}` is assigned twice; give each virtual node one physical node",
                    shorten(&assignment.vnode)
                )));
            }
            if !node_ids.insert(assignment.node_id.as_str()) {
                return Err(StoreError::InvalidInput(format!(
                    "physical node {} is assigned to two vnodes; give each its own node",
                    assignment.node_id
                )));
            }
        }
        self.write("recording a swap-in", |tx, cx| {
            require_experiment(tx, cx, id)?;
            for assignment in assignments {
                let known = tx
                    .prepare_cached(
                        "SELECT 1 FROM virt_nodes WHERE pid = ?1 AND eid = ?2 AND vname = ?3",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![id.pid, id.eid, assignment.vnode], |_| Ok(()))
                            .optional()
                    })
                    .or_db(cx)?;
                if known.is_none() {
                    return Err(StoreError::InvalidInput(format!(
                        "vnode `{}` is not a node of experiment {id}: load its virtual \
                         experiment first, or fix the assignment",
                        shorten(&assignment.vnode)
                    )));
                }
                let holder: Option<(String, String)> = tx
                    .prepare_cached(
                        "SELECT pid, eid FROM reserved WHERE node_id = ?1 \
                         AND NOT (pid = ?2 AND eid = ?3)",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![assignment.node_id, id.pid, id.eid], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .optional()
                    })
                    .or_db(cx)?;
                if let Some((pid, eid)) = holder {
                    return Err(StoreError::NodeReserved {
                        node_id: assignment.node_id.clone(),
                        holder: ExperimentId::new(pid, eid),
                    });
                }
            }
            delete_reservations(tx, cx, id)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO node_types (type, class, control_iface) \
                 VALUES (?1, ?1, ?2)",
            )
            .and_then(|mut stmt| stmt.execute(params![NODE_TYPE, CONTROL_IFACE]))
            .or_db(cx)?;
            let control_iface: String = tx
                .prepare_cached(
                    "SELECT COALESCE(control_iface, ?2) FROM node_types WHERE type = ?1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![NODE_TYPE, CONTROL_IFACE], |row| row.get(0))
                })
                .or_db(cx)?;
            for assignment in assignments {
                tx.prepare_cached(
                    "INSERT INTO reserved (node_id, pid, eid, vname) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        assignment.node_id,
                        id.pid,
                        id.eid,
                        assignment.vnode
                    ])
                })
                .or_db(cx)?;
                tx.prepare_cached(
                    "INSERT INTO nodes (node_id, type, phys_nodeid) VALUES (?1, ?2, ?1) \
                     ON CONFLICT (node_id) DO UPDATE SET type = excluded.type, \
                     phys_nodeid = excluded.phys_nodeid",
                )
                .and_then(|mut stmt| stmt.execute(params![assignment.node_id, NODE_TYPE]))
                .or_db(cx)?;
                tx.prepare_cached("DELETE FROM interfaces WHERE node_id = ?1 AND iface = ?2")
                    .and_then(|mut stmt| stmt.execute(params![assignment.node_id, control_iface]))
                    .or_db(cx)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO interfaces (node_id, card, port, IP, iface, role) \
                     VALUES (?1, 0, 1, ?2, ?3, 'ctrl')",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        assignment.node_id,
                        assignment.control_ip,
                        control_iface
                    ])
                })
                .or_db(cx)?;
            }
            Ok(())
        })
    }

    fn physical_mapping(&self, id: &ExperimentId) -> Result<Vec<NodeAssignment>, StoreError> {
        self.read("reading the physical mapping", |tx, cx| {
            require_experiment(tx, cx, id)?;
            let sql = format!(
                "SELECT r.vname, r.node_id, COALESCE(({CONTROL_IP_OF_NODE}), '') \
                 FROM reserved r WHERE r.pid = ?1 AND r.eid = ?2 ORDER BY r.vname"
            );
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params![id.pid, id.eid], |row| {
                        Ok(NodeAssignment {
                            vnode: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                            node_id: row.get(1)?,
                            control_ip: row.get(2)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)
        })
    }

    fn record_swapout(&self, id: &ExperimentId) -> Result<(), StoreError> {
        self.write("recording a swap-out", |tx, cx| {
            require_experiment(tx, cx, id)?;
            delete_reservations(tx, cx, id)
        })
    }

    fn agents(&self, id: &ExperimentId) -> Result<Vec<AgentRow>, StoreError> {
        self.read("reading the agent table", |tx, cx| {
            require_experiment(tx, cx, id)?;
            let sql = format!(
                "SELECT vi.vname, vi.vnode, ot.type, r.node_id, ({CONTROL_IP_OF_NODE}) \
                 FROM virt_agents vi \
                 LEFT JOIN reserved r ON r.pid = vi.pid AND r.eid = vi.eid \
                      AND r.vname = vi.vnode AND vi.vnode <> '*' \
                 LEFT JOIN event_objecttypes ot ON ot.idx = vi.objecttype \
                 WHERE vi.pid = ?1 AND vi.eid = ?2 ORDER BY vi.rowid"
            );
            type RawAgent = (
                String,
                String,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let raws: Vec<RawAgent> = tx
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params![id.pid, id.eid], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })?
                    .collect()
                })
                .or_db(cx)?;
            raws.into_iter()
                .map(|(vname, vnode, objtype, node_id, ipaddr)| {
                    let objtype = type_name(cx, objtype, TypeTable::ObjectTypes, || {
                        format!("virt_agents row `{vname}` of {id}")
                    })?;
                    Ok(AgentRow {
                        vname,
                        vnode,
                        objtype,
                        node_id,
                        ipaddr,
                    })
                })
                .collect()
        })
    }

    fn groups(&self, id: &ExperimentId) -> Result<Vec<GroupRow>, StoreError> {
        self.read("reading event groups", |tx, cx| {
            require_experiment(tx, cx, id)?;
            read_groups(tx, cx, id)
        })
    }

    fn events(&self, id: &ExperimentId) -> Result<Vec<EventRow>, StoreError> {
        self.read("reading the static events", |tx, cx| {
            require_experiment(tx, cx, id)?;
            // The type names are resolved in memory rather than by joining:
            // two small maps instead of 200,000 B-tree lookups.
            let objtypes = type_names(tx, cx, TypeTable::ObjectTypes)?;
            let eventtypes = type_names(tx, cx, TypeTable::EventTypes)?;
            // Sizing the vector up front avoids copying ~14 MB repeatedly
            // as 100,000 rows arrive; the count comes from the index.
            let count: i64 = tx
                .prepare_cached("SELECT count(*) FROM eventlist WHERE pid = ?1 AND eid = ?2")
                .and_then(|mut stmt| stmt.query_row(params![id.pid, id.eid], |row| row.get(0)))
                .or_db(cx)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT idx, time, vnode, vname, objecttype, eventtype, arguments \
                     FROM eventlist WHERE pid = ?1 AND eid = ?2 ORDER BY time, idx",
                )
                .or_db(cx)?;
            let mut rows = stmt.query(params![id.pid, id.eid]).or_db(cx)?;
            let mut events = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
            while let Some(row) = rows.next().or_db(cx)? {
                let idx = get_u64(row, 0).or_db(cx)?;
                let objtype_idx: i64 = row.get(4).or_db(cx)?;
                let eventtype_idx: i64 = row.get(5).or_db(cx)?;
                let row_name = || format!("eventlist row {idx} of {id}");
                let objtype = objtypes.get(&objtype_idx).cloned();
                let eventtype = eventtypes.get(&eventtype_idx).cloned();
                events.push(EventRow {
                    idx,
                    time: row.get(1).or_db(cx)?,
                    vnode: row.get(2).or_db(cx)?,
                    vname: row.get(3).or_db(cx)?,
                    objtype: type_name(cx, objtype, TypeTable::ObjectTypes, row_name)?,
                    eventtype: type_name(cx, eventtype, TypeTable::EventTypes, row_name)?,
                    arguments: row
                        .get::<_, Option<String>>(6)
                        .or_db(cx)?
                        .unwrap_or_default(),
                });
            }
            Ok(events)
        })
    }

    fn type_table(&self, table: TypeTable) -> Result<Vec<TypeEntry>, StoreError> {
        self.read("reading a type table", |tx, cx| {
            let sql = format!("SELECT idx, type FROM {} ORDER BY idx", table.table_name());
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map([], |row| {
                        Ok(TypeEntry {
                            idx: row.get(0)?,
                            name: row.get(1)?,
                        })
                    })?
                    .collect()
                })
                .or_db(cx)
        })
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        check_name("user id", &user.uid, MAX_UID_LEN)?;
        if user.status.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "user `{}` needs a status such as `active`",
                user.uid
            )));
        }
        self.write("creating a user", |tx, cx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO users (uid, unix_uid, status, admin) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![user.uid, user.unix_uid, user.status, user.admin])
                });
            match inserted {
                Ok(_) => Ok(()),
                Err(err) if is_constraint(&err) => Err(StoreError::UserExists(user.uid.clone())),
                Err(err) => Err(cx.db(err)),
            }
        })
    }

    fn user(&self, uid: &str) -> Result<User, StoreError> {
        self.read("reading a user", |tx, cx| {
            tx.prepare_cached("SELECT uid, unix_uid, status, admin FROM users WHERE uid = ?1")
                .and_then(|mut stmt| stmt.query_row(params![uid], user_row).optional())
                .or_db(cx)?
                .ok_or_else(|| StoreError::UserNotFound(shorten(uid)))
        })
    }

    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read("listing users", |tx, cx| {
            tx.prepare_cached("SELECT uid, unix_uid, status, admin FROM users ORDER BY uid")
                .and_then(|mut stmt| stmt.query_map([], user_row)?.collect())
                .or_db(cx)
        })
    }

    fn delete_user(&self, uid: &str) -> Result<(), StoreError> {
        self.write("deleting a user", |tx, cx| {
            require_user(tx, cx, uid)?;
            tx.prepare_cached("DELETE FROM group_membership WHERE uid = ?1")
                .and_then(|mut stmt| stmt.execute(params![uid]))
                .or_db(cx)?;
            tx.prepare_cached("DELETE FROM users WHERE uid = ?1")
                .and_then(|mut stmt| stmt.execute(params![uid]))
                .or_db(cx)?;
            Ok(())
        })
    }

    fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        check_name("project id", &group.pid, MAX_PID_LEN)?;
        check_name("group id", &group.gid, MAX_GID_LEN)?;
        check_name("Unix group name", &group.unix_name, MAX_GID_LEN)?;
        self.write("creating a group", |tx, cx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO groups (pid, gid, unix_gid, unix_name) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        group.pid,
                        group.gid,
                        group.unix_gid,
                        group.unix_name
                    ])
                });
            match inserted {
                Ok(_) => Ok(()),
                Err(err) if is_constraint(&err) => Err(StoreError::GroupExists {
                    pid: group.pid.clone(),
                    gid: group.gid.clone(),
                }),
                Err(err) => Err(cx.db(err)),
            }
        })
    }

    fn group(&self, pid: &str, gid: &str) -> Result<Group, StoreError> {
        self.read("reading a group", |tx, cx| {
            tx.prepare_cached(
                "SELECT pid, gid, unix_gid, unix_name FROM groups WHERE pid = ?1 AND gid = ?2",
            )
            .and_then(|mut stmt| stmt.query_row(params![pid, gid], group_row).optional())
            .or_db(cx)?
            .ok_or_else(|| StoreError::GroupNotFound {
                pid: shorten(pid),
                gid: shorten(gid),
            })
        })
    }

    fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.read("listing groups", |tx, cx| {
            tx.prepare_cached("SELECT pid, gid, unix_gid, unix_name FROM groups ORDER BY pid, gid")
                .and_then(|mut stmt| stmt.query_map([], group_row)?.collect())
                .or_db(cx)
        })
    }

    fn delete_group(&self, pid: &str, gid: &str) -> Result<(), StoreError> {
        self.write("deleting a group", |tx, cx| {
            require_group(tx, cx, pid, gid)?;
            tx.prepare_cached("DELETE FROM group_membership WHERE pid = ?1 AND gid = ?2")
                .and_then(|mut stmt| stmt.execute(params![pid, gid]))
                .or_db(cx)?;
            tx.prepare_cached("DELETE FROM groups WHERE pid = ?1 AND gid = ?2")
                .and_then(|mut stmt| stmt.execute(params![pid, gid]))
                .or_db(cx)?;
            Ok(())
        })
    }

    fn add_member(&self, membership: &GroupMembership) -> Result<(), StoreError> {
        self.write("adding a group member", |tx, cx| {
            require_user(tx, cx, &membership.uid)?;
            require_group(tx, cx, &membership.pid, &membership.gid)?;
            tx.prepare_cached(
                "INSERT INTO group_membership (uid, gid, pid, trust, date_applied, date_approved) \
                 VALUES (?1, ?2, ?3, ?4, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) \
                 ON CONFLICT (uid, gid, pid) DO UPDATE SET trust = excluded.trust",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    membership.uid,
                    membership.gid,
                    membership.pid,
                    membership.trust.as_str()
                ])
            })
            .or_db(cx)?;
            Ok(())
        })
    }

    fn remove_member(&self, uid: &str, pid: &str, gid: &str) -> Result<(), StoreError> {
        self.write("removing a group member", |tx, cx| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM group_membership WHERE uid = ?1 AND pid = ?2 AND gid = ?3",
                )
                .and_then(|mut stmt| stmt.execute(params![uid, pid, gid]))
                .or_db(cx)?;
            if removed == 0 {
                return Err(StoreError::MembershipNotFound {
                    uid: shorten(uid),
                    pid: shorten(pid),
                    gid: shorten(gid),
                });
            }
            Ok(())
        })
    }

    fn memberships(&self, uid: &str) -> Result<Vec<GroupMembership>, StoreError> {
        self.read("reading a user's groups", |tx, cx| {
            require_user(tx, cx, uid)?;
            read_memberships(
                tx,
                cx,
                "SELECT uid, pid, gid, trust FROM group_membership WHERE uid = ?1 \
                 ORDER BY date_approved, rowid",
                &[uid],
            )
        })
    }

    fn group_members(&self, pid: &str, gid: &str) -> Result<Vec<GroupMembership>, StoreError> {
        self.read("reading a group's members", |tx, cx| {
            require_group(tx, cx, pid, gid)?;
            read_memberships(
                tx,
                cx,
                "SELECT uid, pid, gid, trust FROM group_membership WHERE pid = ?1 AND gid = ?2 \
                 ORDER BY uid",
                &[pid, gid],
            )
        })
    }
}

/// Reads a non-negative INTEGER column as `u64` (rusqlite only converts
/// unsigned 64-bit values with an optional feature).
fn get_u64(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        uid: row.get(0)?,
        unix_uid: row.get(1)?,
        status: row.get(2)?,
        admin: row.get(3)?,
    })
}

fn group_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        pid: row.get(0)?,
        gid: row.get(1)?,
        unix_gid: row.get(2)?,
        unix_name: row.get(3)?,
    })
}

fn read_groups(
    tx: &Transaction<'_>,
    cx: &Ctx<'_>,
    id: &ExperimentId,
) -> Result<Vec<GroupRow>, StoreError> {
    tx.prepare_cached(
        "SELECT group_name, agent_name FROM event_groups \
         WHERE pid = ?1 AND eid = ?2 ORDER BY idx",
    )
    .and_then(|mut stmt| {
        stmt.query_map(params![id.pid, id.eid], |row| {
            Ok(GroupRow {
                group_name: row.get(0)?,
                agent_name: row.get(1)?,
            })
        })?
        .collect()
    })
    .or_db(cx)
}

/// An `eventlist` row joined with the type tables, before the type names
/// are checked.
struct RawEvent {
    idx: u64,
    time: f64,
    vnode: String,
    vname: String,
    objtype: Option<String>,
    eventtype: Option<String>,
    arguments: Option<String>,
    atstring: Option<String>,
}

fn raw_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        idx: get_u64(row, 0)?,
        time: row.get(1)?,
        vnode: row.get(2)?,
        vname: row.get(3)?,
        objtype: row.get(4)?,
        eventtype: row.get(5)?,
        arguments: row.get(6)?,
        atstring: row.get(7)?,
    })
}

impl RawEvent {
    fn into_static_event(self, cx: &Ctx<'_>, id: &ExperimentId) -> Result<StaticEvent, StoreError> {
        let idx = self.idx;
        let row_name = || format!("eventlist row {idx} of {id}");
        Ok(StaticEvent {
            time: self.time,
            vnode: self.vnode,
            vname: self.vname,
            objtype: type_name(cx, self.objtype, TypeTable::ObjectTypes, row_name)?,
            eventtype: type_name(cx, self.eventtype, TypeTable::EventTypes, row_name)?,
            arguments: self.arguments.unwrap_or_default(),
            atstring: self.atstring.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_database_is_upgraded_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let old = SqliteStore::open_at_version(&path, 1).expect("open at version 1");
            assert_eq!(old.schema_version().expect("version"), 1);
            let objtypes = old.type_table(TypeTable::ObjectTypes).expect("objtypes");
            assert_eq!(
                objtypes.len(),
                10,
                "seed schema has the 10 seed object types"
            );
            // A version-1 experiment with an event must survive the upgrade.
            let id = ExperimentId::new("proj", "old");
            old.create_experiment(&NewExperiment::new(id.clone(), "proj", "alice", "/proj/x"))
                .expect("create");
        }
        let store = SqliteStore::open(&path).expect("reopen upgrades");
        assert_eq!(store.schema_version().expect("version"), latest_version());
        let objtypes = store.type_table(TypeTable::ObjectTypes).expect("objtypes");
        assert_eq!(objtypes.len(), 18);
        let triggers = store.type_table(TypeTable::TriggerTypes).expect("triggers");
        assert_eq!(triggers.len(), 2);
        let id = ExperimentId::new("proj", "old");
        assert_eq!(store.experiment(&id).expect("kept").expt_head_uid, "alice");
        // The columns migration 2 added are usable.
        let virt = VirtualExperiment {
            agents: vec![VirtAgent {
                vname: "ns".into(),
                vnode: "*".into(),
                objtype: "TIMELINE".into(),
            }],
            events: vec![StaticEvent {
                time: 1.0,
                vname: "ns".into(),
                objtype: "TIMELINE".into(),
                eventtype: "RUN".into(),
                ..StaticEvent::default()
            }],
            ..VirtualExperiment::default()
        };
        store.load_virtual(&id, &virt).expect("load after upgrade");
        assert_eq!(store.events(&id).expect("events").len(), 1);
    }

    /// Writes one `virt_lans` row with only the columns every schema
    /// version has, as an older build did.
    fn insert_old_member(path: &Path, id: &ExperimentId, vnode: &str, q_limit: u32) {
        let conn = Connection::open(path).expect("raw open");
        conn.execute(
            "INSERT INTO virt_lans (pid, eid, vname, vnode, vport, ip, mask, delay, bandwidth, \
             q_limit, member, mustdelay) \
             VALUES (?1, ?2, 'link0', ?3, 0, '10.1.1.2', '255.255.255.0', 5.0, 100000, ?4, ?5, 1)",
            params![id.pid, id.eid, vnode, q_limit, format!("{vnode}:0")],
        )
        .expect("raw insert");
    }

    #[test]
    fn version_2_links_keep_their_rows_and_gain_default_queues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.db");
        let id = ExperimentId::new("proj", "links");
        {
            let old = SqliteStore::open_at_version(&path, 2).expect("open at version 2");
            old.create_experiment(&NewExperiment::new(id.clone(), "proj", "alice", "/proj/x"))
                .expect("create");
        }
        insert_old_member(&path, &id, "a", 20);
        insert_old_member(&path, &id, "b", 50);

        let store = SqliteStore::open(&path).expect("reopen upgrades");
        assert_eq!(store.schema_version().expect("version"), latest_version());
        let members = store.virtual_experiment(&id).expect("read").lan_members;
        let expected = |vnode: &str, q_limit: u32| VirtLanMember {
            vname: "link0".into(),
            vnode: vnode.into(),
            ip: "10.1.1.2".into(),
            mask: "255.255.255.0".into(),
            delay: 5.0,
            bandwidth: 100_000,
            q_limit,
            member: format!("{vnode}:0"),
            mustdelay: true,
            ..VirtLanMember::default()
        };
        // The old columns are kept; the new ones read as Emulab's defaults.
        assert_eq!(members, vec![expected("a", 20), expected("b", 50)]);

        // The new columns are written and read like the old ones.
        let mut virt = VirtualExperiment {
            lan_members: members,
            ..VirtualExperiment::default()
        };
        virt.lan_members[0].q_red = true;
        virt.lan_members[0].q_weight = 0.25;
        store.load_virtual(&id, &virt).expect("load after upgrade");
        assert_eq!(store.virtual_experiment(&id).expect("read"), virt);
    }

    #[test]
    fn version_3_programs_keep_their_rows_and_gain_default_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v3.db");
        let id = ExperimentId::new("proj", "progs");
        {
            let old = SqliteStore::open_at_version(&path, 3).expect("open at version 3");
            old.create_experiment(&NewExperiment::new(id.clone(), "proj", "alice", "/proj/x"))
                .expect("create");
        }
        let conn = Connection::open(&path).expect("raw open");
        conn.execute(
            "INSERT INTO virt_programs (pid, eid, vnode, vname, command) \
             VALUES (?1, ?2, 'n0', 'p0', '/bin/true')",
            params![id.pid, id.eid],
        )
        .expect("raw insert");
        drop(conn);

        let store = SqliteStore::open(&path).expect("reopen upgrades");
        assert_eq!(store.schema_version().expect("version"), latest_version());
        let mut virt = store.virtual_experiment(&id).expect("read");
        assert_eq!(
            virt.programs,
            vec![VirtProgram {
                vnode: "n0".into(),
                vname: "p0".into(),
                command: "/bin/true".into(),
                ..VirtProgram::default()
            }]
        );
        // The new columns are written and read like the old ones.
        virt.programs[0].dir = "/tmp".into();
        virt.programs[0].timeout = 60;
        virt.programs[0].expected_exit_code = 2;
        store.load_virtual(&id, &virt).expect("load after upgrade");
        assert_eq!(store.virtual_experiment(&id).expect("read"), virt);
    }

    #[test]
    fn a_queue_column_added_by_hand_does_not_break_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("handmade.db");
        let id = ExperimentId::new("proj", "hand");
        {
            let old = SqliteStore::open_at_version(&path, 2).expect("open at version 2");
            old.create_experiment(&NewExperiment::new(id.clone(), "proj", "alice", "/proj/x"))
                .expect("create");
        }
        insert_old_member(&path, &id, "a", 30);
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.execute_batch(
                "ALTER TABLE virt_lans ADD COLUMN q_red INTEGER NOT NULL DEFAULT 0; \
                 UPDATE virt_lans SET q_red = 1;",
            )
            .expect("hand-made column");
        }
        let store = SqliteStore::open(&path).expect("upgrade skips the existing column");
        assert_eq!(store.schema_version().expect("version"), latest_version());
        let members = store.virtual_experiment(&id).expect("read").lan_members;
        assert_eq!(members.len(), 1);
        assert!(members[0].q_red, "the hand-made column's value is kept");
        assert_eq!(members[0].q_limit, 30);
        assert_eq!(members[0].q_maxthresh, VirtLanMember::DEFAULT_Q_MAXTHRESH);
        assert!(members[0].q_droptail);
    }
}
