//! The one error type every store operation returns.
//!
//! Callers of the store are operator-facing programs (`tbevents`,
//! `event-sched`), so each variant carries enough context to print a message
//! that says what went wrong *and what to do about it*, without the caller
//! having to know which backend is in use. Backend failures that have no
//! better classification keep their source error for `{:#}`-style chains.

use std::path::PathBuf;

use crate::model::ExperimentId;

/// Everything that can go wrong in the experiment store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The experiment is not in the store.
    #[error(
        "experiment {0} not found: create it with `tbevents create -e {0} FILE.ns` \
         (or check that TBEVENTS_STORE names the right database)"
    )]
    ExperimentNotFound(ExperimentId),

    /// `create_experiment` for a pid/eid that already exists.
    #[error(
        "experiment {0} already exists: pick another experiment name or delete the old one first"
    )]
    ExperimentExists(ExperimentId),

    /// A project, experiment, group or user name that Emulab would not accept.
    #[error("invalid {what} `{value}`: {rule}")]
    InvalidName {
        /// Which kind of name (`project id`, `experiment id`, ...).
        what: &'static str,
        /// The rejected value (possibly shortened for display).
        value: String,
        /// The rule it broke, phrased as what a valid name looks like.
        rule: &'static str,
    },

    /// An experiment state string that is not one of Emulab's EXPTSTATE values.
    #[error("unknown experiment state `{value}`: valid states are {valid}")]
    InvalidState {
        /// The rejected state text.
        value: String,
        /// The valid states, comma-separated.
        valid: String,
    },

    /// A trust level string that is not one of Emulab's `group_membership.trust` values.
    #[error(
        "unknown trust level `{value}`: valid levels are none, user, local_root, group_root, project_root"
    )]
    InvalidTrust {
        /// The rejected trust text.
        value: String,
    },

    /// An event key that cannot be stored or written to a key file.
    #[error("invalid event key: {0}")]
    InvalidEventKey(&'static str),

    /// A virtual experiment names an object type the type table does not have.
    #[error(
        "unknown object type `{name}` ({context}): known object types are {known}; \
         fix the NS file or the front end that produced it"
    )]
    UnknownObjectType {
        /// The type name as given.
        name: String,
        /// Which row carried it.
        context: String,
        /// The names in `event_objecttypes`, comma-separated.
        known: String,
    },

    /// A virtual experiment names an event type the type table does not have.
    #[error(
        "unknown event type `{name}` ({context}): known event types are {known}; \
         fix the NS file or the front end that produced it"
    )]
    UnknownEventType {
        /// The type name as given.
        name: String,
        /// Which row carried it.
        context: String,
        /// The names in `event_eventtypes`, comma-separated.
        known: String,
    },

    /// Input that is well-typed but not acceptable (a negative event time,
    /// a duplicate row, an unparsable IP address, ...). The text says which
    /// value and why.
    #[error("{0}")]
    InvalidInput(String),

    /// A physical node is already reserved by another experiment.
    #[error(
        "node {node_id} is already reserved by experiment {holder}: swap that experiment out \
         or assign another node"
    )]
    NodeReserved {
        /// The contested physical node.
        node_id: String,
        /// The experiment that holds it.
        holder: ExperimentId,
    },

    /// A user that is not in the `users` table.
    #[error("user `{0}` not found: create the user first")]
    UserNotFound(String),

    /// `create_user` for a uid that already exists.
    #[error("user `{0}` already exists")]
    UserExists(String),

    /// A project group that is not in the `groups` table.
    #[error("group {pid}/{gid} not found: create the group first")]
    GroupNotFound {
        /// Project of the group.
        pid: String,
        /// The group's name within the project.
        gid: String,
    },

    /// `create_group` for a pid/gid that already exists.
    #[error("group {pid}/{gid} already exists")]
    GroupExists {
        /// Project of the group.
        pid: String,
        /// The group's name within the project.
        gid: String,
    },

    /// `remove_member` for a membership that does not exist.
    #[error("user `{uid}` is not a member of group {pid}/{gid}")]
    MembershipNotFound {
        /// The user.
        uid: String,
        /// Project of the group.
        pid: String,
        /// The group's name within the project.
        gid: String,
    },

    /// The database was written by a newer tbevents with a schema this
    /// build does not know.
    #[error(
        "database at {location} was created by a newer tbevents (schema version {found} > {supported}): \
         upgrade tbevents, or point TBEVENTS_STORE at another database"
    )]
    NewerSchema {
        /// Where the database is.
        location: String,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// The file or database is some other program's.
    #[error(
        "{location} is a database of another program (it has tables but no tbevents schema): \
         refusing to modify it; point TBEVENTS_STORE at a new or tbevents database"
    )]
    ForeignDatabase {
        /// Where the database is.
        location: String,
    },

    /// The database file (or its directory) cannot be opened or written
    /// by this user.
    #[error(
        "cannot open or write the database at {location} ({reason}): check that the file and \
         its directory are readable and writable by this user, or set TBEVENTS_STORE to \
         another location"
    )]
    CannotOpen {
        /// Where the database is.
        location: String,
        /// SQLite's or the OS's explanation.
        reason: String,
    },

    /// The file exists but is not an SQLite database at all.
    #[error(
        "{location} is not an SQLite database: point TBEVENTS_STORE at a tbevents database \
         or at a path that does not exist yet"
    )]
    NotADatabase {
        /// Where the file is.
        location: String,
    },

    /// Another process held the database lock for longer than the busy timeout.
    #[error(
        "database at {location} stayed locked by another process for more than {waited:?} \
         while {doing}: retry, or find the process that keeps it locked"
    )]
    Busy {
        /// Where the database is.
        location: String,
        /// The busy timeout that expired.
        waited: std::time::Duration,
        /// What the store was doing.
        doing: String,
    },

    /// A store URL this build cannot open.
    #[error("cannot open store `{url}`: {reason}; {SUPPORTED_URLS}")]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// The environment variable that names the store is not usable.
    #[error(
        "environment variable {var} is not valid UTF-8: set it to a store URL such as sqlite:/var/lib/tbevents/tbevents.db"
    )]
    BadEnvironment {
        /// The variable's name.
        var: &'static str,
    },

    /// Rows in the database that the store did not write and cannot interpret
    /// (edited by hand, or written by a buggy tool).
    #[error("database at {location} holds data tbevents cannot read: {detail}")]
    Corrupt {
        /// Where the database is.
        location: String,
        /// What is wrong, naming the table and row.
        detail: String,
    },

    /// A file-system operation failed.
    #[error("{doing} {}: {source}", path.display())]
    Io {
        /// What the store was doing (`creating directory`, `writing`, ...).
        doing: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    /// A remote store (XML-RPC) refused or failed a request; the reason
    /// says what to do.
    #[error("store {location}: {reason}")]
    Remote {
        /// The store URL without its query.
        location: String,
        /// What failed and what to do.
        reason: String,
    },

    /// A write to a store opened read-only (the scheduler's view).
    #[error(
        "the store at {location} is open read-only, so it cannot be changed ({doing}): \
         run this as the operator with `tbevents`, not from the scheduler"
    )]
    ReadOnly {
        /// Where the store is.
        location: String,
        /// What the caller tried.
        doing: String,
    },

    /// The database server could not be reached (or was lost and could not
    /// be reached again).
    #[error(
        "cannot reach the database server {server} ({reason}): check that it runs and that \
         this host may connect to it, and the URL's user and password"
    )]
    Unreachable {
        /// `host:port` of the server.
        server: String,
        /// The driver's explanation.
        reason: String,
    },

    /// A MySQL/MariaDB error that has no better classification.
    #[error("database at {location}: {doing}: {source}")]
    Mysql {
        /// Where the database is (URL without the password).
        location: String,
        /// What the store was doing.
        doing: String,
        /// The driver's error.
        #[source]
        source: mysql::Error,
    },

    /// Any other database error, with what the store was doing.
    #[error("database at {location}: {doing}: {source}")]
    Database {
        /// Where the database is.
        location: String,
        /// What the store was doing.
        doing: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
}

/// The store URL forms this build accepts, for error messages and docs.
pub const SUPPORTED_URLS: &str = "supported stores are `sqlite:/absolute/path.db`, \
     `sqlite:relative/path.db`, `sqlite:///absolute/path.db`, `sqlite::memory:`, \
     a plain file path (meaning SQLite) and `mysql://user:password@host:port/database`";
