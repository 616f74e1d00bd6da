//! The SQLite schema, as an ordered list of migrations.
//!
//! Why migrations rather than one `CREATE TABLE` script: the database file
//! outlives the program that created it. Every build of tbevents carries the
//! full list below; opening a database applies, in order, each migration
//! newer than the file's `PRAGMA user_version`, each in its own transaction
//! together with the version bump, so a crash leaves the file at a clean
//! version boundary. A file whose version is newer than the list is refused
//! (an older binary must not write data it does not understand).
//!
//! Rules for editing this file: never change a migration that has shipped;
//! add a new one at the end. Migration 1 is the Emulab seed-era schema
//! (table and column names as in docs/emulab-model.md §8, with SQLite types);
//! migration 2 adds what Emulab HEAD added (more object/event types,
//! `event_triggertypes`, `eventlist.triggertype` and `eventlist.parent`),
//! which is also how an older tbevents database upgrades; migration 3 adds
//! the rest of Emulab's queue columns to `virt_lans` (`q_maxthresh` to
//! `q_gentle`; migration 1 only had `q_limit`); migration 4 adds Emulab
//! HEAD's `dir`, `timeout` and `expected_exit_code` to `virt_programs`.
//!
//! A migration is SQL run as one batch, plus columns to add *if missing*
//! (`Migration::add_columns`). SQLite has no `ADD COLUMN IF NOT EXISTS`,
//! and a column added by hand (or by a development build) must not make
//! the upgrade fail with "duplicate column", so those columns are looked up
//! in `PRAGMA table_info` first, inside the migration's transaction.
//!
//! Column defaults are chosen so that a row written before the column
//! existed reads back as what it was. The queue columns default to
//! Emulab's NS queue defaults (limit aside: 15/5/0.002/10 for the RED
//! thresholds, weight and linterm, mean packet size 500, `wait` and
//! `drop-tail` on, everything else off), because the front end that wrote
//! an older row dropped every queue setting but the limit: the queue it
//! recorded was a default queue.
//!
//! Type choices: Emulab's `varchar`/`tinytext` become `TEXT`, integer
//! widths become `INTEGER`, `float(10,3)` becomes `REAL` (we keep the full
//! double the NS front end computed instead of rounding to milliseconds).
//! Keys follow Emulab (`PRIMARY KEY (pid, eid, idx)` and so on); the extra
//! indexes are the ones the scheduler's queries need to avoid table scans
//! and sorts (`eventlist (pid, eid, time, idx)` serves `events()` in order).
//!
//! Columns Emulab does not have, all with defaults: `experiments.simulator_name`
//! (the NS simulator object's name, so a virtual experiment round-trips) and
//! `virt_lans.is_lan` (link or LAN; Emulab kept that in a separate table).
//! Type names are `UNIQUE` so a name maps to exactly one index.

/// One schema step: applying `sql` to a database at version `version - 1`
/// brings it to `version`.
pub(crate) struct Migration {
    /// The `user_version` after this migration.
    pub version: i64,
    /// What it does, for logs and error messages.
    pub description: &'static str,
    /// The statements, run as one batch inside the migration's transaction.
    pub sql: &'static str,
    /// Columns to add after `sql`, each only if its table lacks it.
    pub add_columns: &'static [ColumnAddition],
}

/// A column a migration adds unless the table already has one of that name.
pub(crate) struct ColumnAddition {
    /// The table (a constant identifier, never user input).
    pub table: &'static str,
    /// The column name.
    pub column: &'static str,
    /// Type and constraints, as in `ALTER TABLE .. ADD COLUMN name <this>`.
    pub declaration: &'static str,
}

/// Marks a database file as ours (`PRAGMA application_id`, ASCII "TBEV"),
/// so that another program's SQLite file is never mistaken for an empty
/// tbevents store.
pub(crate) const APPLICATION_ID: i64 = 0x5442_4556;

/// Every migration, oldest first; versions are 1, 2, 3, ... without gaps.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "Emulab seed schema and seed type tables",
        sql: SEED_SCHEMA,
        add_columns: &[],
    },
    Migration {
        version: 2,
        description: "Emulab HEAD additions: object/event/trigger types, eventlist.triggertype and parent",
        sql: HEAD_ADDITIONS,
        add_columns: &[],
    },
    Migration {
        version: 3,
        description: "Emulab's queue columns in virt_lans (q_maxthresh .. q_gentle)",
        sql: "",
        add_columns: QUEUE_COLUMNS,
    },
    Migration {
        version: 4,
        description: "Emulab HEAD's program columns in virt_programs (dir, timeout, expected_exit_code)",
        sql: "",
        add_columns: PROGRAM_COLUMNS,
    },
];

/// The schema version this build writes and fully understands.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const SEED_SCHEMA: &str = r#"
CREATE TABLE experiments (
    idx             INTEGER PRIMARY KEY AUTOINCREMENT,
    pid             TEXT NOT NULL,
    eid             TEXT NOT NULL,
    gid             TEXT NOT NULL DEFAULT '',
    expt_head_uid   TEXT NOT NULL DEFAULT '',
    expt_swap_uid   TEXT NOT NULL DEFAULT '',
    expt_created    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    state           TEXT NOT NULL DEFAULT 'new',
    batchstate      TEXT,
    path            TEXT,
    logfile         TEXT,
    event_sched_pid INTEGER DEFAULT 0,
    keyhash         TEXT,
    eventkey        TEXT,
    linktest_level  INTEGER NOT NULL DEFAULT 0,
    linktest_pid    INTEGER DEFAULT 0,
    sync_server     TEXT,
    simulator_name  TEXT NOT NULL DEFAULT '',
    UNIQUE (pid, eid)
);

CREATE TABLE event_objecttypes (
    idx  INTEGER PRIMARY KEY,
    type TEXT NOT NULL UNIQUE
);

CREATE TABLE event_eventtypes (
    idx  INTEGER PRIMARY KEY,
    type TEXT NOT NULL UNIQUE
);

CREATE TABLE eventlist (
    pid        TEXT NOT NULL DEFAULT '',
    eid        TEXT NOT NULL DEFAULT '',
    idx        INTEGER NOT NULL,
    time       REAL NOT NULL DEFAULT 0,
    vnode      TEXT NOT NULL DEFAULT '',
    vname      TEXT NOT NULL DEFAULT '',
    objecttype INTEGER NOT NULL DEFAULT 0,
    eventtype  INTEGER NOT NULL DEFAULT 0,
    isgroup    INTEGER DEFAULT 0,
    arguments  TEXT,
    atstring   TEXT,
    PRIMARY KEY (pid, eid, idx)
);
CREATE INDEX eventlist_vnode ON eventlist (vnode);
CREATE INDEX eventlist_time ON eventlist (pid, eid, time, idx);

CREATE TABLE virt_agents (
    pid        TEXT NOT NULL DEFAULT '',
    eid        TEXT NOT NULL DEFAULT '',
    vname      TEXT NOT NULL DEFAULT '',
    vnode      TEXT NOT NULL DEFAULT '',
    objecttype INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pid, eid, vname, vnode)
);

CREATE TABLE event_groups (
    pid        TEXT NOT NULL DEFAULT '',
    eid        TEXT NOT NULL DEFAULT '',
    idx        INTEGER NOT NULL,
    group_name TEXT NOT NULL DEFAULT '',
    agent_name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pid, eid, idx)
);
CREATE INDEX event_groups_group_name ON event_groups (group_name);
CREATE INDEX event_groups_agent_name ON event_groups (agent_name);

CREATE TABLE virt_nodes (
    pid        TEXT NOT NULL DEFAULT '',
    eid        TEXT NOT NULL DEFAULT '',
    vname      TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL DEFAULT '',
    osname     TEXT NOT NULL DEFAULT '',
    routertype TEXT NOT NULL DEFAULT '',
    ips        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pid, eid, vname)
);

CREATE TABLE virt_lans (
    pid        TEXT NOT NULL DEFAULT '',
    eid        TEXT NOT NULL DEFAULT '',
    vname      TEXT NOT NULL DEFAULT '',
    vnode      TEXT NOT NULL DEFAULT '',
    vport      INTEGER NOT NULL DEFAULT 0,
    ip         TEXT NOT NULL DEFAULT '',
    mask       TEXT NOT NULL DEFAULT '',
    delay      REAL NOT NULL DEFAULT 0,
    bandwidth  INTEGER NOT NULL DEFAULT 0,
    lossrate   REAL NOT NULL DEFAULT 0,
    rdelay     REAL NOT NULL DEFAULT 0,
    rbandwidth INTEGER NOT NULL DEFAULT 0,
    rlossrate  REAL NOT NULL DEFAULT 0,
    q_limit    INTEGER NOT NULL DEFAULT 0,
    member     TEXT NOT NULL DEFAULT '',
    is_lan     INTEGER NOT NULL DEFAULT 0,
    mustdelay  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (pid, eid, vname, member)
);
CREATE INDEX virt_lans_vnode ON virt_lans (pid, eid, vnode);

CREATE TABLE virt_programs (
    pid     TEXT NOT NULL DEFAULT '',
    eid     TEXT NOT NULL DEFAULT '',
    vnode   TEXT NOT NULL DEFAULT '',
    vname   TEXT NOT NULL DEFAULT '',
    command TEXT,
    PRIMARY KEY (pid, eid, vnode, vname)
);
CREATE INDEX virt_programs_vnode ON virt_programs (vnode);

CREATE TABLE virt_trafgens (
    pid          TEXT NOT NULL DEFAULT '',
    eid          TEXT NOT NULL DEFAULT '',
    vnode        TEXT NOT NULL DEFAULT '',
    vname        TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL DEFAULT '',
    proto        TEXT NOT NULL DEFAULT '',
    port         INTEGER NOT NULL DEFAULT 0,
    ip           TEXT NOT NULL DEFAULT '',
    target_vnode TEXT NOT NULL DEFAULT '',
    target_vname TEXT NOT NULL DEFAULT '',
    target_port  INTEGER NOT NULL DEFAULT 0,
    target_ip    TEXT NOT NULL DEFAULT '',
    generator    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pid, eid, vnode, vname)
);

CREATE TABLE reserved (
    node_id           TEXT NOT NULL PRIMARY KEY,
    pid               TEXT NOT NULL DEFAULT '',
    eid               TEXT NOT NULL DEFAULT '',
    rsrv_time         TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    vname             TEXT,
    erole             TEXT NOT NULL DEFAULT 'node',
    simhost_violation INTEGER NOT NULL DEFAULT 0,
    old_pid           TEXT NOT NULL DEFAULT '',
    old_eid           TEXT NOT NULL DEFAULT '',
    UNIQUE (pid, eid, vname)
);

CREATE TABLE node_types (
    type          TEXT NOT NULL PRIMARY KEY,
    class         TEXT,
    control_iface TEXT,
    isvirtnode    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE nodes (
    node_id     TEXT NOT NULL PRIMARY KEY,
    type        TEXT NOT NULL DEFAULT '',
    phys_nodeid TEXT,
    eventstate  TEXT
);
CREATE INDEX nodes_phys_nodeid ON nodes (phys_nodeid);

CREATE TABLE interfaces (
    node_id TEXT NOT NULL DEFAULT '',
    card    INTEGER NOT NULL DEFAULT 0,
    port    INTEGER NOT NULL DEFAULT 0,
    mac     TEXT NOT NULL DEFAULT '000000000000',
    IP      TEXT,
    iface   TEXT,
    role    TEXT,
    PRIMARY KEY (node_id, card, port)
);
CREATE INDEX interfaces_iface ON interfaces (node_id, iface);

CREATE TABLE users (
    uid      TEXT NOT NULL PRIMARY KEY,
    unix_uid INTEGER NOT NULL,
    status   TEXT NOT NULL DEFAULT 'active',
    admin    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE groups (
    pid       TEXT NOT NULL,
    gid       TEXT NOT NULL,
    unix_gid  INTEGER NOT NULL,
    unix_name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pid, gid)
);

CREATE TABLE group_membership (
    uid           TEXT NOT NULL,
    gid           TEXT NOT NULL,
    pid           TEXT NOT NULL,
    trust         TEXT NOT NULL DEFAULT 'none',
    date_applied  TEXT,
    date_approved TEXT,
    PRIMARY KEY (uid, gid, pid)
);
CREATE INDEX group_membership_group ON group_membership (pid, gid);

INSERT INTO event_objecttypes (idx, type) VALUES
    (0, 'TBCONTROL'), (1, 'LINK'), (2, 'TRAFGEN'), (3, 'TIME'), (4, 'PROGRAM'),
    (5, 'FRISBEE'), (6, 'SIMULATOR'), (7, 'LINKTEST'), (8, 'NSE'), (9, 'SLOTHD');

INSERT INTO event_eventtypes (idx, type) VALUES
    (0, 'REBOOT'), (1, 'START'), (2, 'STOP'), (3, 'UP'), (4, 'DOWN'), (5, 'UPDATE'),
    (6, 'MODIFY'), (7, 'SET'), (8, 'TIME'), (9, 'RESET'), (10, 'KILL'), (11, 'HALT'),
    (12, 'SWAPOUT'), (13, 'NSEEVENT'), (14, 'REPORT'), (15, 'ALERT');
"#;

const HEAD_ADDITIONS: &str = r#"
INSERT INTO event_objecttypes (idx, type) VALUES
    (10, 'NODE'), (11, 'SEQUENCE'), (12, 'TIMELINE'), (13, 'CONSOLE'), (14, 'TOPOGRAPHY'),
    (15, 'LINKTRACE'), (16, 'EVPROXY'), (17, 'BGMON');

INSERT INTO event_eventtypes (idx, type) VALUES
    (16, 'SETDEST'), (17, 'COMPLETE'), (18, 'MESSAGE'), (19, 'LOG'), (20, 'RUN'),
    (21, 'SNAPSHOT'), (22, 'RELOAD'), (23, 'CLEAR'), (24, 'CREATE'), (25, 'STOPRUN');

CREATE TABLE event_triggertypes (
    idx  INTEGER PRIMARY KEY,
    type TEXT NOT NULL UNIQUE
);
INSERT INTO event_triggertypes (idx, type) VALUES (0, 'TIMER'), (2, 'SWAPOUT');

ALTER TABLE eventlist ADD COLUMN triggertype INTEGER NOT NULL DEFAULT 0;
ALTER TABLE eventlist ADD COLUMN parent TEXT NOT NULL DEFAULT '';
"#;

/// Migration 3: every `virt_lans` queue column Emulab had besides
/// `q_limit`, with Emulab's NS defaults (see the module docs). Flags are
/// 0/1 integers, as Emulab's tinyints.
const QUEUE_COLUMNS: &[ColumnAddition] = &[
    queue_column("q_maxthresh", "INTEGER NOT NULL DEFAULT 15"),
    queue_column("q_minthresh", "INTEGER NOT NULL DEFAULT 5"),
    queue_column("q_weight", "REAL NOT NULL DEFAULT 0.002"),
    queue_column("q_linterm", "INTEGER NOT NULL DEFAULT 10"),
    queue_column("q_qinbytes", "INTEGER NOT NULL DEFAULT 0"),
    queue_column("q_bytes", "INTEGER NOT NULL DEFAULT 0"),
    queue_column("q_meanpsize", "INTEGER NOT NULL DEFAULT 500"),
    queue_column("q_wait", "INTEGER NOT NULL DEFAULT 1"),
    queue_column("q_setbit", "INTEGER NOT NULL DEFAULT 0"),
    queue_column("q_droptail", "INTEGER NOT NULL DEFAULT 1"),
    queue_column("q_red", "INTEGER NOT NULL DEFAULT 0"),
    queue_column("q_gentle", "INTEGER NOT NULL DEFAULT 0"),
];

/// Migration 4: the program settings Emulab HEAD added to
/// `virt_programs`. The defaults (no directory, no timeout, exit code 0)
/// are what an older row meant.
const PROGRAM_COLUMNS: &[ColumnAddition] = &[
    ColumnAddition {
        table: "virt_programs",
        column: "dir",
        declaration: "TEXT NOT NULL DEFAULT ''",
    },
    ColumnAddition {
        table: "virt_programs",
        column: "timeout",
        declaration: "INTEGER NOT NULL DEFAULT 0",
    },
    ColumnAddition {
        table: "virt_programs",
        column: "expected_exit_code",
        declaration: "INTEGER NOT NULL DEFAULT 0",
    },
];

const fn queue_column(column: &'static str, declaration: &'static str) -> ColumnAddition {
    ColumnAddition {
        table: "virt_lans",
        column,
        declaration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                migration.version,
                position as i64 + 1,
                "{}",
                migration.description
            );
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn queue_column_defaults_match_the_model_defaults() {
        use crate::model::VirtLanMember;
        let member = VirtLanMember::default();
        let default_of = |column: &str| {
            QUEUE_COLUMNS
                .iter()
                .find(|c| c.column == column)
                .and_then(|c| c.declaration.rsplit(' ').next())
                .unwrap_or_else(|| panic!("no column {column}"))
                .to_string()
        };
        let flag = |on: bool| if on { "1" } else { "0" }.to_string();
        assert_eq!(default_of("q_maxthresh"), member.q_maxthresh.to_string());
        assert_eq!(default_of("q_minthresh"), member.q_minthresh.to_string());
        assert_eq!(default_of("q_weight"), member.q_weight.to_string());
        assert_eq!(default_of("q_linterm"), member.q_linterm.to_string());
        assert_eq!(default_of("q_qinbytes"), flag(member.q_qinbytes));
        assert_eq!(default_of("q_bytes"), flag(member.q_bytes));
        assert_eq!(default_of("q_meanpsize"), member.q_meanpsize.to_string());
        assert_eq!(default_of("q_wait"), flag(member.q_wait));
        assert_eq!(default_of("q_setbit"), flag(member.q_setbit));
        assert_eq!(default_of("q_droptail"), flag(member.q_droptail));
        assert_eq!(default_of("q_red"), flag(member.q_red));
        assert_eq!(default_of("q_gentle"), flag(member.q_gentle));
        assert_eq!(QUEUE_COLUMNS.len(), 12);
    }
}
