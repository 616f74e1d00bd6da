//! The MySQL/MariaDB backend: Emulab's own kind of database, on Emulab's
//! table and column names (`mysql://user:password@host:port/database`).
//!
//! Why the blocking `mysql` crate and its pool: the store's interface is
//! synchronous ([`crate::store`]), so an async driver (`mysql_async`,
//! `sqlx`) would need a runtime inside every call for nothing; `mysql` is
//! the well-kept synchronous driver of the same authors as `mysql_async`,
//! speaks the binary (prepared-statement) protocol, caches statements per
//! connection and pools connections, which is what a scheduler that reads
//! a few times per run and an operator command need. It is built with its
//! pure-Rust compression backend and no TLS (the server is on the boss
//! machine or on loopback; a site that crosses a network tunnels it).
//!
//! Shape:
//! * A [`mysql::Pool`] of at most [`POOL_MAX`] connections, none opened in
//!   advance. Every store call takes a connection, runs one transaction
//!   (`REPEATABLE READ`, read-only for reads and for a read-only store) and
//!   gives it back. The pool checks a connection's health before lending
//!   it, so a server that restarted mid-run costs one reconnect, not an
//!   error; a read that fails because the connection broke is retried once
//!   on a fresh connection ([`READ_ATTEMPTS`]). A server that stays away
//!   gives [`StoreError::Unreachable`] naming `host:port`.
//! * Every session runs in strict SQL mode (a value that does not fit is an
//!   error, never silently truncated), UTF-8 (`utf8mb4`) and UTC.
//! * The queries are [`crate::engine`]'s, shared with SQLite; this module
//!   supplies connections, transactions, migrations
//!   ([`crate::mysql_schema`]) and the translation of driver errors.
//! * Opening a writable store creates the database if it is missing (when
//!   the account may) and migrates it; [`MysqlStore::open_read_only`] does
//!   neither, so the scheduler's account needs only `SELECT` (see
//!   `docs/store.md` for the grants).

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{
    AccessMode, IsolationLevel, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts,
    PooledConn, TxOpts,
};

use crate::engine::SqlBackend;
use crate::error::StoreError;
use crate::mysql_schema::{MYSQL_MIGRATIONS, VERSION_TABLE};
use crate::schema::latest_version;
use crate::sql::{DbError, Dialect, Row, Tx, Value};

/// Most connections one store holds open.
pub const POOL_MAX: usize = 4;

/// How long connecting to the server may take before it counts as
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one read or write on an established connection may stall.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a read is tried when the connection breaks under it.
pub const READ_ATTEMPTS: usize = 2;

/// MySQL's "duplicate entry" error codes (`ER_DUP_ENTRY`, `ER_DUP_UNIQUE`).
const DUPLICATE_CODES: [u16; 2] = [1062, 1169];

/// `ER_BAD_DB_ERROR`: the database does not exist.
const UNKNOWN_DATABASE: u16 = 1049;

/// Statements every new connection runs first.
const SESSION_SETUP: [&str; 3] = [
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,\
     NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'",
    "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
    "SET SESSION time_zone = '+00:00'",
];

/// An experiment store in a MySQL or MariaDB database.
pub struct MysqlStore {
    pool: Pool,
    /// The URL without its password.
    location: String,
    /// `host:port`, for "cannot reach" messages.
    server: String,
    read_only: bool,
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What failing calls were doing, to build operator-facing errors.
struct Ctx<'a> {
    location: &'a str,
    server: &'a str,
    doing: &'a str,
}

impl Ctx<'_> {
    fn db(&self, err: mysql::Error) -> StoreError {
        if is_connection_error(&err) {
            return StoreError::Unreachable {
                server: self.server.to_owned(),
                reason: err.to_string(),
            };
        }
        if let mysql::Error::MySqlError(server) = &err {
            // Access denied (1044, 1045, 1142, 1143): the account's grants.
            if matches!(server.code, 1044 | 1045 | 1142 | 1143) {
                return StoreError::CannotOpen {
                    location: self.location.to_owned(),
                    reason: format!(
                        "{} (while {}); see docs/store.md for the grants each program needs",
                        server.message, self.doing
                    ),
                };
            }
        }
        StoreError::Mysql {
            location: self.location.to_owned(),
            doing: self.doing.to_owned(),
            source: err,
        }
    }
}

/// True when the error means the connection, not the statement, failed.
fn is_connection_error(err: &mysql::Error) -> bool {
    match err {
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) => true,
        // 2006 "server has gone away", 2013 "lost connection during query",
        // 1927 "connection killed" (MariaDB), 1053 "server shutdown".
        mysql::Error::MySqlError(server) => matches!(server.code, 2006 | 2013 | 1927 | 1053),
        _ => false,
    }
}

/// The URL with its password replaced, for messages and logs.
fn redact(opts: &Opts) -> String {
    let user = opts.get_user().unwrap_or("");
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!(
        "mysql://{at}{}:{}/{}",
        opts.get_ip_or_hostname(),
        opts.get_tcp_port(),
        opts.get_db_name().unwrap_or("")
    )
}

impl MysqlStore {
    /// Opens the database a `mysql://` URL names, creating it if it does
    /// not exist (when the account may) and bringing its schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url, false)?;
        store.migrate(latest_version())?;
        Ok(store)
    }

    /// Opens the database for reading only: no database is created, no
    /// migration runs, every transaction is `READ ONLY`, and every write
    /// is refused with [`StoreError::ReadOnly`] before reaching the server.
    /// An account with `SELECT` on the database is enough.
    pub fn open_read_only(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url, true)?;
        let version = store.stored_version()?;
        if version != latest_version() {
            return Err(StoreError::Corrupt {
                location: store.location.clone(),
                detail: format!(
                    "the schema is at version {version}, this build reads version {}: \
                     open it once with `tbevents` (which migrates it) first",
                    latest_version()
                ),
            });
        }
        Ok(store)
    }

    fn connect(url: &str, read_only: bool) -> Result<Self, StoreError> {
        let refuse = |reason: String| StoreError::UnsupportedUrl {
            url: crate::model::shorten(url),
            reason,
        };
        let opts = Opts::from_url(url).map_err(|err| refuse(err.to_string()))?;
        let Some(database) = opts.get_db_name().map(str::to_owned) else {
            return Err(refuse(
                "the URL names no database; use mysql://user:password@host:port/database"
                    .to_owned(),
            ));
        };
        if database.is_empty()
            || !database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(refuse(format!(
                "database name `{}` must be letters, digits and `_`",
                crate::model::shorten(&database)
            )));
        }
        let location = redact(&opts);
        let server = format!("{}:{}", opts.get_ip_or_hostname(), opts.get_tcp_port());
        let constraints = PoolConstraints::new(0, POOL_MAX)
            .ok_or_else(|| refuse("internal error: invalid connection pool bounds".to_owned()))?;
        let builder = OptsBuilder::from_opts(opts)
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .read_timeout(Some(IO_TIMEOUT))
            .write_timeout(Some(IO_TIMEOUT))
            .init(SESSION_SETUP.to_vec())
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            );
        let pool = Pool::new(builder.clone()).map_err(|err| {
            Ctx {
                location: &location,
                server: &server,
                doing: "connecting",
            }
            .db(err)
        })?;
        let store = MysqlStore {
            pool,
            location,
            server,
            read_only,
        };
        match store.pool.get_conn() {
            Ok(_) => Ok(store),
            Err(mysql::Error::MySqlError(err)) if err.code == UNKNOWN_DATABASE && !read_only => {
                store.create_database(builder, &database)?;
                Ok(store)
            }
            Err(err) => Err(store.cx("connecting").db(err)),
        }
    }

    /// Creates the database named in the URL through a connection that
    /// names no database.
    fn create_database(&self, builder: OptsBuilder, database: &str) -> Result<(), StoreError> {
        let cx = self.cx("creating the database");
        let mut conn = mysql::Conn::new(builder.db_name(None::<String>)).map_err(|e| cx.db(e))?;
        // The name was checked to be [A-Za-z0-9_]+, so quoting is safe.
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .map_err(|e| cx.db(e))
    }

    fn cx<'a>(&'a self, doing: &'a str) -> Ctx<'a> {
        Ctx {
            location: &self.location,
            server: &self.server,
            doing,
        }
    }

    fn conn(&self, cx: &Ctx<'_>) -> Result<PooledConn, StoreError> {
        self.pool.get_conn().map_err(|err| cx.db(err))
    }

    /// The version in `tbevents_schema`; 0 when the table is missing or
    /// empty. Refuses a database that has other tables but no version (some
    /// other program's, or an Emulab database not made by tbevents) and one
    /// newer than this build.
    fn stored_version(&self) -> Result<i64, StoreError> {
        let cx = self.cx("reading the schema version");
        let mut conn = self.conn(&cx)?;
        let tables: Vec<String> = conn
            .query(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = DATABASE()",
            )
            .map_err(|e| cx.db(e))?;
        let version = if tables.iter().any(|t| t == "tbevents_schema") {
            conn.query_first::<i64, _>("SELECT version FROM tbevents_schema WHERE id = 1")
                .map_err(|e| cx.db(e))?
                .unwrap_or(0)
        } else {
            0
        };
        if version == 0 && tables.iter().any(|t| t != "tbevents_schema") {
            return Err(StoreError::ForeignDatabase {
                location: self.location.clone(),
            });
        }
        if version > latest_version() {
            return Err(StoreError::NewerSchema {
                location: self.location.clone(),
                found: version,
                supported: latest_version(),
            });
        }
        Ok(version)
    }

    /// Applies the migrations the database lacks, under a named lock so
    /// concurrent openers take turns.
    fn migrate(&self, target: i64) -> Result<(), StoreError> {
        if self.stored_version()? >= target {
            return Ok(());
        }
        let cx = self.cx("upgrading the schema");
        let mut conn = self.conn(&cx)?;
        let locked: Option<i64> = conn
            .query_first("SELECT GET_LOCK(CONCAT('tbevents_migrate_', DATABASE()), 60)")
            .map_err(|e| cx.db(e))?;
        if locked != Some(1) {
            return Err(StoreError::Busy {
                location: self.location.clone(),
                waited: Duration::from_secs(60),
                doing: "waiting for another program to finish upgrading the schema".to_owned(),
            });
        }
        let result = self.migrate_locked(&mut conn, target);
        let released = conn
            .query_drop("SELECT RELEASE_LOCK(CONCAT('tbevents_migrate_', DATABASE()))")
            .map_err(|e| cx.db(e));
        result.and(released)
    }

    fn migrate_locked(&self, conn: &mut PooledConn, target: i64) -> Result<(), StoreError> {
        let start = self.stored_version()?;
        for migration in MYSQL_MIGRATIONS
            .iter()
            .filter(|m| m.version > start && m.version <= target)
        {
            let doing = format!(
                "upgrading the schema to version {} ({})",
                migration.version, migration.description
            );
            let cx = self.cx(&doing);
            conn.query_drop(VERSION_TABLE).map_err(|e| cx.db(e))?;
            for statement in migration.statements {
                conn.query_drop(*statement).map_err(|e| cx.db(e))?;
            }
            conn.exec_drop(
                "REPLACE INTO tbevents_schema (id, version) VALUES (1, ?)",
                (migration.version,),
            )
            .map_err(|e| cx.db(e))?;
        }
        Ok(())
    }

    fn run<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let cx = self.cx(doing);
        let mut conn = self.conn(&cx)?;
        let opts = TxOpts::default()
            .set_isolation_level(Some(IsolationLevel::RepeatableRead))
            .set_access_mode(Some(AccessMode::ReadWrite));
        let mut tx = conn.start_transaction(opts).map_err(|e| cx.db(e))?;
        let out = work(&mut MysqlTx {
            tx: &mut tx,
            cx: &cx,
        })?;
        tx.commit().map_err(|e| cx.db(e))?;
        Ok(out)
    }
}

impl SqlBackend for MysqlStore {
    fn backend_location(&self) -> String {
        self.location.clone()
    }

    fn backend_schema_version(&self) -> Result<i64, StoreError> {
        self.stored_version()
    }

    fn read<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A read can be repeated safely, so a connection that broke under it
        // (the server restarted) is replaced and the read tried again. The
        // work is `FnOnce`, so it runs at most once: a retry is only
        // possible when the failure came before the work started, which is
        // where a dead pooled connection shows (starting the transaction).
        let mut work = Some(work);
        let mut last = None;
        for _ in 0..READ_ATTEMPTS {
            let cx = self.cx(doing);
            let mut conn = match self.conn(&cx) {
                Ok(conn) => conn,
                Err(err) => {
                    last = Some(err);
                    continue;
                }
            };
            let opts = TxOpts::default()
                .set_isolation_level(Some(IsolationLevel::RepeatableRead))
                .set_access_mode(Some(AccessMode::ReadOnly));
            let mut tx = match conn.start_transaction(opts) {
                Ok(tx) => tx,
                Err(err) => {
                    last = Some(cx.db(err));
                    continue;
                }
            };
            let Some(work) = work.take() else { break };
            let out = work(&mut MysqlTx {
                tx: &mut tx,
                cx: &cx,
            })?;
            tx.commit().map_err(|e| cx.db(e))?;
            return Ok(out);
        }
        Err(last.unwrap_or_else(|| StoreError::Unreachable {
            server: self.server.clone(),
            reason: format!("no connection could be made while {doing}"),
        }))
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
        self.run(doing, work)
    }
}

/// One MySQL transaction seen through [`Tx`].
struct MysqlTx<'a, 't, 'c> {
    tx: &'a mut mysql::Transaction<'t>,
    cx: &'c Ctx<'c>,
}

fn to_mysql(value: &Value) -> mysql::Value {
    match value {
        Value::Null => mysql::Value::NULL,
        Value::Int(number) => mysql::Value::Int(*number),
        Value::Real(number) => mysql::Value::Double(*number),
        Value::Text(text) => mysql::Value::Bytes(text.clone().into_bytes()),
    }
}

fn from_mysql(value: mysql::Value) -> Value {
    match value {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Int(number) => Value::Int(number),
        mysql::Value::UInt(number) => Value::Int(i64::try_from(number).unwrap_or(i64::MAX)),
        mysql::Value::Float(number) => Value::Real(f64::from(number)),
        mysql::Value::Double(number) => Value::Real(number),
        mysql::Value::Bytes(bytes) => Value::Text(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }),
        mysql::Value::Date(year, month, day, hour, minute, second, _micros) => Value::Text(
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"),
        ),
        mysql::Value::Time(negative, days, hours, minutes, seconds, _micros) => {
            let sign = if negative { "-" } else { "" };
            let hours = u32::from(hours) + days * 24;
            Value::Text(format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"))
        }
    }
}

fn params(values: &[Value]) -> Params {
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values.iter().map(to_mysql).collect())
    }
}

impl MysqlTx<'_, '_, '_> {
    fn fail(&self, err: mysql::Error) -> DbError {
        match &err {
            mysql::Error::MySqlError(server) if DUPLICATE_CODES.contains(&server.code) => {
                DbError::Duplicate(server.message.clone())
            }
            _ => DbError::Store(self.cx.db(err)),
        }
    }
}

impl Tx for MysqlTx<'_, '_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn location(&self) -> &str {
        self.cx.location
    }

    fn query_each(
        &mut self,
        sql: &str,
        values: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let cx = self.cx;
        let fail = |err: mysql::Error| match &err {
            mysql::Error::MySqlError(server) if DUPLICATE_CODES.contains(&server.code) => {
                DbError::Duplicate(server.message.clone())
            }
            _ => DbError::Store(cx.db(err)),
        };
        let result = self.tx.exec_iter(sql, params(values)).map_err(fail)?;
        let mut buffer = Row { values: Vec::new() };
        for row in result {
            let row = row.map_err(fail)?;
            buffer.values.clear();
            buffer.values.extend(
                row.unwrap_raw()
                    .into_iter()
                    .map(|value| value.map_or(Value::Null, from_mysql)),
            );
            each(&mut buffer)?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        self.tx
            .exec_drop(sql, params(values))
            .map_err(|e| self.fail(e))?;
        Ok(self.tx.affected_rows())
    }
}

#[cfg(test)]
mod tests {
    use mysql::prelude::Queryable;
    use tbevents_testkit::ScratchDatabase;

    use super::*;
    use crate::model::{ExperimentId, NewExperiment, VirtProgram};
    use crate::store::ExperimentStore;

    #[test]
    fn an_older_database_is_upgraded_and_keeps_its_rows() {
        let db = ScratchDatabase::create();
        let id = ExperimentId::new("proj", "progs");
        {
            let old = MysqlStore::connect(&db.url, false).expect("connect");
            old.migrate(3).expect("migrate to version 3");
            assert_eq!(old.stored_version().expect("version"), 3);
            old.create_experiment(&NewExperiment::new(id.clone(), "proj", "alice", "/proj/x"))
                .expect("create");
        }
        // A row as a version-3 build wrote it: no program settings yet.
        db.connect()
            .query_drop(
                "INSERT INTO virt_programs (pid, eid, vnode, vname, command) \
                 VALUES ('proj', 'progs', 'n0', 'p0', '/bin/true')",
            )
            .expect("raw insert");
        // A read-only open refuses the old schema instead of migrating it.
        let err = MysqlStore::open_read_only(&db.url).expect_err("old schema");
        assert!(err.to_string().contains("version 3"), "{err}");

        let store = MysqlStore::open(&db.url).expect("open upgrades");
        assert_eq!(store.schema_version().expect("version"), latest_version());
        assert_eq!(
            store.virtual_experiment(&id).expect("read").programs,
            vec![VirtProgram {
                vnode: "n0".into(),
                vname: "p0".into(),
                command: "/bin/true".into(),
                ..VirtProgram::default()
            }]
        );
        // Opening again is a no-op; a newer schema is refused untouched.
        drop(MysqlStore::open(&db.url).expect("reopen"));
        db.connect()
            .query_drop("UPDATE tbevents_schema SET version = 99")
            .expect("bump");
        let err = MysqlStore::open(&db.url).expect_err("newer");
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn another_programs_database_is_left_alone() {
        let db = ScratchDatabase::create();
        db.connect()
            .query_drop("CREATE TABLE accounts (id INT PRIMARY KEY)")
            .expect("foreign table");
        let err = MysqlStore::open(&db.url).expect_err("foreign");
        assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
        let tables: Vec<String> = db.connect().query("SHOW TABLES").expect("tables");
        assert_eq!(tables, vec!["accounts".to_owned()], "nothing was created");
    }

    #[test]
    fn the_password_never_appears_in_the_location() {
        let db = ScratchDatabase::create();
        let url = db.url.replace("root@", "root:@");
        let store = MysqlStore::open(&url).expect("open");
        assert!(
            !store.backend_location().contains(':') || !store.backend_location().contains("root:")
        );
        let err = MysqlStore::open("mysql://root:hunter2@127.0.0.1:1/x").expect_err("unreachable");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
