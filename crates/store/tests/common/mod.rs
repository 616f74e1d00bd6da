//! One fixture for "the same test on both backends": a fresh SQLite file
//! in a temporary directory, or a fresh, uniquely named database on the
//! MariaDB server the machines run (127.0.0.1:3306, root, no password;
//! `TBEVENTS_TEST_MYSQL` names another server; see
//! `tbevents_testkit::ScratchDatabase`), dropped with the fixture.
//!
//! A MariaDB that cannot be reached fails the test with the reason: CI
//! starts the server (`.ci/run`), so a silent skip would hide a broken
//! backend.

#![allow(dead_code)]

use std::path::PathBuf;

use mysql::prelude::Queryable;
use tbevents_store::{ExperimentStore, open};
use tbevents_testkit::ScratchDatabase;
use tempfile::TempDir;

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An SQLite file.
    Sqlite,
    /// A MariaDB database.
    Mariadb,
}

/// A fresh, empty store location for one test.
pub struct TestDb {
    /// The backend.
    pub kind: Kind,
    /// The store URL.
    pub url: String,
    /// The SQLite file, for SQLite.
    pub path: Option<PathBuf>,
    dir: Option<TempDir>,
    database: Option<ScratchDatabase>,
}

impl TestDb {
    /// A new fixture of `kind`.
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => Self::sqlite(),
            Kind::Mariadb => Self::mariadb(),
        }
    }

    /// A new SQLite file (not yet created).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tbevents.db");
        TestDb {
            kind: Kind::Sqlite,
            url: format!("sqlite:{}", path.display()),
            path: Some(path),
            dir: Some(dir),
            database: None,
        }
    }

    /// A new, empty MariaDB database with a name no other test uses.
    pub fn mariadb() -> Self {
        let database = ScratchDatabase::create();
        TestDb {
            kind: Kind::Mariadb,
            url: database.url.clone(),
            path: None,
            dir: None,
            database: Some(database),
        }
    }

    /// Opens the store (creating and migrating it).
    pub fn store(&self) -> Box<dyn ExperimentStore> {
        open(&self.url).unwrap_or_else(|err| panic!("open {}: {err}", self.url))
    }

    /// Runs raw statements (separated by `;`) behind the store's back.
    pub fn raw_exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let path = self.path.as_ref().expect("path");
                rusqlite::Connection::open(path)
                    .expect("raw open")
                    .execute_batch(sql)
                    .expect("raw exec");
            }
            Kind::Mariadb => {
                let mut conn = self.raw_mysql();
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    conn.query_drop(statement).expect("raw exec");
                }
            }
        }
    }

    /// The integers of a raw query's first row.
    pub fn raw_ints(&self, sql: &str) -> Vec<i64> {
        match self.kind {
            Kind::Sqlite => {
                let path = self.path.as_ref().expect("path");
                let conn = rusqlite::Connection::open(path).expect("raw open");
                let mut stmt = conn.prepare(sql).expect("prepare");
                let width = stmt.column_count();
                stmt.query_row([], |row| {
                    (0..width)
                        .map(|i| row.get::<_, i64>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .expect("raw row")
            }
            Kind::Mariadb => {
                let row: mysql::Row = self
                    .raw_mysql()
                    .query_first(sql)
                    .expect("raw query")
                    .expect("a row");
                (0..row.len())
                    .map(|i| row.get::<i64, _>(i).expect("integer"))
                    .collect()
            }
        }
    }

    /// `SELECT count(*) ...` behind the store's back.
    pub fn raw_count(&self, sql: &str) -> i64 {
        self.raw_ints(sql)[0]
    }

    fn raw_mysql(&self) -> mysql::Conn {
        self.database.as_ref().expect("a MariaDB fixture").connect()
    }
}

/// Instantiates each named `fn(&TestDb)` as a test on each backend:
/// `both_backends!(a, b)` makes `sqlite::a`, `mariadb::a`, ...
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::common::TestDb::new($crate::common::Kind::Sqlite));
                }
            )*
        }
        mod mariadb {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::common::TestDb::new($crate::common::Kind::Mariadb));
                }
            )*
        }
    };
}
