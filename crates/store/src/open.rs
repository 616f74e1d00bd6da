//! Choosing and opening a store from a URL.
//!
//! Every program (`tbevents`, `event-sched`, later the control plane) finds
//! the store the same way, through [`resolve_store_url`]: an explicit URL
//! (a command-line flag) wins, then the `TBEVENTS_STORE` environment
//! variable, then [`DEFAULT_STORE_URL`]. [`open`] then turns the URL into a
//! boxed [`ExperimentStore`], so each backend (SQLite, `mysql://`, and the planned XML-RPC one) is
//! one branch here.
//!
//! Accepted forms (anything else is refused with a message that lists them):
//! * `sqlite:/abs/path.db` and `sqlite:///abs/path.db`: a file by absolute path;
//! * `sqlite:relative/path.db`: relative to the current directory;
//! * `sqlite::memory:`: a private in-memory database;
//! * a plain path (`/var/lib/tbevents/tbevents.db`, `./x.db`, `x.db`): SQLite;
//! * `mysql://user:password@host:port/database`: MySQL/MariaDB.
//!
//! A string counts as having a scheme when it starts with letters, digits,
//! `+`, `-` or `.` followed by `:` and the first `:` comes before any `/`;
//! so `x:y.db` is read as scheme `x` and refused: write `./x:y.db` or
//! `sqlite:x:y.db` for such a file name.

use std::path::PathBuf;

use crate::error::StoreError;
use crate::mysql::MysqlStore;
use crate::sqlite::SqliteStore;
use crate::store::ExperimentStore;

/// The environment variable that overrides the default store.
pub const STORE_ENV_VAR: &str = "TBEVENTS_STORE";

/// Where the store lives when nothing else is said.
pub const DEFAULT_STORE_URL: &str = "sqlite:/var/lib/tbevents/tbevents.db";

/// Opens a store for a URL whose scheme a linked-in crate registered.
pub type SchemeOpener = fn(&str) -> Result<Box<dyn ExperimentStore>, StoreError>;

/// Schemes registered by other crates (the XML-RPC client registers
/// `xmlrpc+https` and `xmlrpc+ssh`), so the store crate need not depend on
/// them.
static REGISTERED: std::sync::RwLock<Vec<(String, SchemeOpener)>> =
    std::sync::RwLock::new(Vec::new());

/// Makes [`open`] hand URLs with one of `schemes` to `opener`.
pub fn register_scheme(schemes: &[&str], opener: SchemeOpener) {
    let mut table = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    for scheme in schemes {
        let scheme = scheme.to_ascii_lowercase();
        table.retain(|(s, _)| *s != scheme);
        table.push((scheme, opener));
    }
}

fn registered_opener(url: &str) -> Option<SchemeOpener> {
    let (scheme, _) = split_scheme(url)?;
    let scheme = scheme.to_ascii_lowercase();
    let table = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    table.iter().find(|(s, _)| *s == scheme).map(|(_, o)| *o)
}

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// A MySQL/MariaDB database (`mysql://user:password@host:port/db`; the
    /// text is kept whole for the driver to parse).
    Mysql(String),
    /// An SQLite database file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
}

impl StoreUrl {
    /// Parses one of the accepted forms (see the module docs).
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let refuse = |reason: &str| StoreError::UnsupportedUrl {
            url: crate::model::shorten(url),
            reason: reason.to_owned(),
        };
        if url.is_empty() {
            return Err(refuse("the URL is empty"));
        }
        if url.contains('\0') {
            return Err(refuse("the URL contains a NUL byte"));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            return Ok(StoreUrl::SqliteFile(PathBuf::from(url)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {}
            "mysql" => return Ok(StoreUrl::Mysql(url.to_owned())),
            "http" | "https" | "xmlrpc" | "ssh" | "xmlrpc+https" | "xmlrpc+ssh" => {
                return Err(refuse(
                    "XML-RPC stores are written xmlrpc+https://boss:3069 or xmlrpc+ssh://user@boss, \
                     and only programs that link the XML-RPC client (event-sched) open them",
                ));
            }
            _ => return Err(refuse(&format!("unknown scheme `{scheme}`"))),
        }
        if rest == ":memory:" {
            return Ok(StoreUrl::SqliteMemory);
        }
        let path = match rest.strip_prefix("//") {
            // URL style: an empty authority followed by an absolute path.
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(refuse(
                    "a host in an sqlite URL is not supported; use sqlite:///absolute/path.db",
                ));
            }
            None => rest,
        };
        if path.is_empty() {
            return Err(refuse("the sqlite URL names no file"));
        }
        Ok(StoreUrl::SqliteFile(PathBuf::from(path)))
    }
}

/// Splits `scheme:rest` when the text starts with a URL scheme.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut bytes = scheme.bytes();
    let starts_with_letter = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let scheme_chars = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if starts_with_letter && scheme_chars {
        Some((scheme, rest))
    } else {
        None
    }
}

/// Opens the store a URL names, creating and migrating an SQLite file as
/// needed.
pub fn open(url: &str) -> Result<Box<dyn ExperimentStore>, StoreError> {
    if let Some(opener) = registered_opener(url) {
        return opener(url);
    }
    match StoreUrl::parse(url)? {
        StoreUrl::SqliteFile(path) => Ok(Box::new(SqliteStore::open(&path)?)),
        StoreUrl::SqliteMemory => Ok(Box::new(SqliteStore::open_in_memory()?)),
        StoreUrl::Mysql(url) => Ok(Box::new(MysqlStore::open(&url)?)),
    }
}

/// Opens the store a URL names for reading only, as the scheduler does:
/// nothing is created or migrated and every write is refused, so read
/// access (a readable snapshot file, a `SELECT`-only account) is enough.
pub fn open_read_only(url: &str) -> Result<Box<dyn ExperimentStore>, StoreError> {
    // Registered (XML-RPC) stores are read-only already.
    if let Some(opener) = registered_opener(url) {
        return opener(url);
    }
    match StoreUrl::parse(url)? {
        StoreUrl::SqliteFile(path) => Ok(Box::new(SqliteStore::open_read_only(&path)?)),
        StoreUrl::SqliteMemory => Ok(Box::new(SqliteStore::open_in_memory()?)),
        StoreUrl::Mysql(url) => Ok(Box::new(MysqlStore::open_read_only(&url)?)),
    }
}

/// The store URL every program uses: `explicit` (a command-line flag) if
/// given, else the non-empty value of `TBEVENTS_STORE`, else
/// [`DEFAULT_STORE_URL`].
pub fn resolve_store_url(explicit: Option<&str>) -> Result<String, StoreError> {
    resolve_with(explicit, std::env::var_os(STORE_ENV_VAR))
}

/// [`resolve_store_url`] with the environment value passed in (testable
/// without touching the process environment).
fn resolve_with(
    explicit: Option<&str>,
    from_env: Option<std::ffi::OsString>,
) -> Result<String, StoreError> {
    if let Some(url) = explicit {
        return Ok(url.to_owned());
    }
    match from_env {
        Some(value) if !value.is_empty() => value
            .into_string()
            .map_err(|_| StoreError::BadEnvironment { var: STORE_ENV_VAR }),
        _ => Ok(DEFAULT_STORE_URL.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn file(path: &str) -> StoreUrl {
        StoreUrl::SqliteFile(PathBuf::from(path))
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            StoreUrl::parse("sqlite:/var/lib/x.db").unwrap(),
            file("/var/lib/x.db")
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/x.db").unwrap(),
            file("/var/lib/x.db")
        );
        assert_eq!(
            StoreUrl::parse("sqlite:rel/x.db").unwrap(),
            file("rel/x.db")
        );
        assert_eq!(StoreUrl::parse("SQLite:x.db").unwrap(), file("x.db"));
        assert_eq!(
            StoreUrl::parse("sqlite::memory:").unwrap(),
            StoreUrl::SqliteMemory
        );
        assert_eq!(StoreUrl::parse("/abs/x.db").unwrap(), file("/abs/x.db"));
        assert_eq!(StoreUrl::parse("x.db").unwrap(), file("x.db"));
        assert_eq!(StoreUrl::parse("./a:b.db").unwrap(), file("./a:b.db"));
        assert_eq!(StoreUrl::parse("sqlite:a:b.db").unwrap(), file("a:b.db"));
    }

    #[test]
    fn refuses_other_schemes_with_the_supported_list() {
        for url in ["https://boss/RPC2", "postgres://x", "sqlite://host/x.db"] {
            let err = StoreUrl::parse(url).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::UnsupportedUrl { .. }),
                "{url}: {text}"
            );
            assert!(
                text.contains("sqlite::memory:"),
                "{url}: message lists forms: {text}"
            );
        }
        assert!(StoreUrl::parse("").is_err());
        assert!(StoreUrl::parse("sqlite:").is_err());
        assert_eq!(
            StoreUrl::parse("mysql://u:p@db:3306/tbdb").unwrap(),
            StoreUrl::Mysql("mysql://u:p@db:3306/tbdb".into())
        );
    }

    #[test]
    fn resolution_order_is_flag_then_environment_then_default() {
        let env = Some(OsString::from("sqlite:/env.db"));
        assert_eq!(
            resolve_with(Some("sqlite:/flag.db"), env.clone()).unwrap(),
            "sqlite:/flag.db"
        );
        assert_eq!(resolve_with(None, env).unwrap(), "sqlite:/env.db");
        assert_eq!(resolve_with(None, None).unwrap(), DEFAULT_STORE_URL);
        assert_eq!(
            resolve_with(None, Some(OsString::new())).unwrap(),
            DEFAULT_STORE_URL
        );
        let bad = OsString::from_vec(vec![0xff, 0xfe]);
        assert!(matches!(
            resolve_with(None, Some(bad)),
            Err(StoreError::BadEnvironment { var: STORE_ENV_VAR })
        ));
    }
}
