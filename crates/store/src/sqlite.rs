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
//! * The queries themselves are not here: [`crate::engine`] holds them once
//!   for both SQL backends; this module supplies the connection, the
//!   transactions, the migrations and the translation of SQLite's errors.
//! * [`SqliteStore::open_read_only`] opens a file without ever writing to
//!   it (no migration, no journal-mode change): what `event-sched` uses,
//!   so the scheduler needs only read access to its snapshot.
//! * A database file this module creates is mode 0600 (the directory it
//!   creates 0700): it may hold event keys, which only root may read.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior, params};

use crate::engine::SqlBackend;
use crate::error::StoreError;
use crate::schema::{APPLICATION_ID, ColumnAddition, MIGRATIONS, latest_version};
use crate::sql::{DbError, Dialect, Row, Tx, Value};

pub use crate::engine::{CONTROL_IFACE, NODE_TYPE};

/// How long a store call waits for another process's write lock before
/// failing with [`StoreError::Busy`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Mode of a database file the store creates: owner only.
pub const DATABASE_FILE_MODE: u32 = 0o600;

/// An experiment store in one SQLite database file (or in memory).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    location: String,
    /// The busy timeout in force, for error messages.
    busy_timeout: Mutex<Duration>,
    read_only: bool,
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

/// Creates the database file (mode 0600) and its directory (0700) when
/// missing, so the first open never leaves a world-readable store.
fn create_private_file(path: &Path, location: &str) -> Result<(), StoreError> {
    let cannot = |doing: String, source: std::io::Error| StoreError::CannotOpen {
        location: location.to_owned(),
        reason: format!("{doing}: {source}"),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| cannot(format!("creating directory {}", parent.display()), e))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATABASE_FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(cannot(format!("creating {}", path.display()), err)),
    }
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file at `path`,
    /// creating its parent directory if missing, and brings its schema up
    /// to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        create_private_file(path, &location)?;
        let cx = Ctx::new(&location, "opening the database");
        let conn = Connection::open(path).or_db(&cx)?;
        Self::init(conn, location, true, latest_version())
    }

    /// Opens an existing database file for reading only: nothing is
    /// written, not even a migration, so read access to the file is all
    /// the caller needs. A file at an older schema version is refused with
    /// a message asking for `tbevents` to upgrade it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        let cx = Ctx::new(&location, "opening the database read-only");
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_db(&cx)?;
        conn.busy_timeout(BUSY_TIMEOUT).or_db(&cx)?;
        check_ownership(&conn, &cx)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .or_db(&cx)?;
        if version < latest_version() {
            return Err(cx.corrupt(format!(
                "the schema is at version {version}, older than this build's {}: open it once \
                 with `tbevents` (which upgrades it) before the scheduler reads it",
                latest_version()
            )));
        }
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            location,
            busy_timeout: Mutex::new(BUSY_TIMEOUT),
            read_only: true,
        })
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
            read_only: false,
        })
    }

    /// Changes how long calls wait for another process's lock before
    /// failing with [`StoreError::Busy`] (default [`BUSY_TIMEOUT`]).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        let cx = Ctx::new(&self.location, "setting the busy timeout");
        conn.busy_timeout(timeout).or_db(&cx)?;
        *self.busy_timeout.lock() = timeout;
        Ok(())
    }

    /// Switches the file to a rollback journal (`DELETE` mode), so readers
    /// that may not create the `-wal`/`-shm` files beside it (a scheduler
    /// reading a root-owned snapshot) can open it read-only.
    pub fn use_rollback_journal(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        let cx = Ctx::new(&self.location, "switching to a rollback journal");
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))
            .or_db(&cx)?;
        Ok(())
    }

    fn run<T>(
        &self,
        doing: &str,
        behavior: TransactionBehavior,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let busy_timeout = *self.busy_timeout.lock();
        let cx = Ctx {
            location: &self.location,
            doing,
            busy_timeout,
        };
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(behavior).or_db(&cx)?;
        let mut handle = SqliteTx { tx: &tx, cx: &cx };
        let out = work(&mut handle)?;
        tx.commit().or_db(&cx)?;
        Ok(out)
    }
}

impl SqlBackend for SqliteStore {
    fn backend_location(&self) -> String {
        self.location.clone()
    }

    fn backend_schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock();
        let cx = Ctx::new(&self.location, "reading the schema version");
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .or_db(&cx)
    }

    fn read<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(doing, TransactionBehavior::Deferred, work)
    }

    fn write<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                location: self.location.clone(),
                doing: doing.to_owned(),
            });
        }
        self.run(doing, TransactionBehavior::Immediate, work)
    }
}

/// One SQLite transaction seen through [`Tx`].
struct SqliteTx<'t, 'c> {
    tx: &'t Transaction<'t>,
    cx: &'c Ctx<'c>,
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Null => V::Null,
        Value::Int(number) => V::Integer(*number),
        Value::Real(number) => V::Real(*number),
        Value::Text(text) => V::Text(text.clone()),
    }
}

impl SqliteTx<'_, '_> {
    fn fail(&self, err: rusqlite::Error) -> DbError {
        if err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
            DbError::Duplicate(err.to_string())
        } else {
            DbError::Store(self.cx.db(err))
        }
    }
}

impl Tx for SqliteTx<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn location(&self) -> &str {
        self.cx.location
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.fail(e))?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter().map(to_sql)))
            .map_err(|e| self.fail(e))?;
        let mut buffer = Row {
            values: Vec::with_capacity(width),
        };
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            buffer.values.clear();
            for column in 0..width {
                use rusqlite::types::ValueRef;
                let value = match row.get_ref(column).map_err(|e| self.fail(e))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(number) => Value::Int(number),
                    ValueRef::Real(number) => Value::Real(number),
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                        Value::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                };
                buffer.values.push(value);
            }
            each(&mut buffer)?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.fail(e))?;
        let changed = stmt
            .execute(rusqlite::params_from_iter(params.iter().map(to_sql)))
            .map_err(|e| self.fail(e))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ExperimentId, NewExperiment, StaticEvent, TypeTable, VirtAgent, VirtLanMember, VirtProgram,
        VirtualExperiment,
    };
    use crate::store::ExperimentStore;

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
