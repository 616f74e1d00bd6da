//! One fixture for "the same test on both backends": a fresh SQLite file
//! in a temporary directory, or a fresh, uniquely named database on the
//! MariaDB server the machines run (127.0.0.1:3306, root, no password;
//! `TBEVENTS_TEST_MYSQL` names another server). The MariaDB database is
//! dropped when the fixture is dropped, also when the test fails.
//!
//! A MariaDB that cannot be reached fails the test with the reason: CI
//! starts the server (`.ci/run`), so a silent skip would hide a broken
//! backend.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql::prelude::Queryable;
use tbevents_store::{ExperimentStore, open};
use tempfile::TempDir;

/// The server the MariaDB tests use, without a database name.
pub fn mysql_server() -> String {
    std::env::var("TBEVENTS_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

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
    database: Option<String>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn admin_conn() -> mysql::Conn {
    let url = mysql_server();
    mysql::Conn::new(mysql::Opts::from_url(&url).expect("server URL"))
        .unwrap_or_else(|err| panic!("cannot reach the MariaDB test server {url}: {err}; start it (`.ci/run` does) or set TBEVENTS_TEST_MYSQL"))
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "tbe_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin_conn();
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .expect("drop stale");
        conn.query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .expect("create database");
        TestDb {
            kind: Kind::Mariadb,
            url: format!("{}/{name}", mysql_server()),
            path: None,
            dir: None,
            database: Some(name),
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
                    (0..width).map(|i| row.get::<_, i64>(i)).collect::<Result<Vec<_>, _>>()
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
        mysql::Conn::new(mysql::Opts::from_url(&self.url).expect("url")).expect("raw connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.database {
            let url = mysql_server();
            if let Ok(opts) = mysql::Opts::from_url(&url)
                && let Ok(mut conn) = mysql::Conn::new(opts)
            {
                let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"));
            }
        }
        drop(self.dir.take());
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
