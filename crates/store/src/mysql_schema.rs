//! The MySQL/MariaDB schema, as an ordered list of migrations.
//!
//! The same tables, columns, keys and seed rows as the SQLite schema
//! ([`crate::schema`]), step for step: migration 1 is the Emulab seed-era
//! schema, 2 adds what Emulab HEAD added (more types, `event_triggertypes`,
//! `eventlist.triggertype` and `parent`), 3 adds the rest of Emulab's queue
//! columns to `virt_lans`, 4 Emulab HEAD's `dir`, `timeout` and
//! `expected_exit_code` to `virt_programs`. The version numbers match the
//! SQLite ones, so
//! `schema_version()` means the same thing on both backends.
//!
//! The version lives in a one-row table, `tbevents_schema`. MySQL commits
//! DDL on its own (a migration cannot be one transaction as in SQLite), so
//! every statement is written to be re-runnable (`IF NOT EXISTS`, inserts
//! that ignore existing rows) and the runner holds a named lock
//! (`GET_LOCK`) while it migrates: two programs opening a new database at
//! once apply each step once, and a step cut short by a crash is simply run
//! again.
//!
//! Type choices: names that are part of a key are `VARCHAR` (InnoDB keys
//! need a bounded length; [`crate::model::MAX_VNAME_LEN`] bounds the virtual
//! names), free text is `TEXT`, times and rates `DOUBLE` (full precision, as
//! in SQLite, instead of Emulab's `float(10,3)`). Every table uses
//! `utf8mb4_bin`, so names compare byte for byte as SQLite compares them
//! (Emulab's case-insensitive default would make `Node1` and `node1` one
//! node). Tables whose read order is their load order get an
//! `AUTO_INCREMENT` column `seq` (SQLite's `rowid` plays that part there).

/// One schema step.
pub(crate) struct MysqlMigration {
    /// The version after this migration.
    pub version: i64,
    /// What it does, for messages.
    pub description: &'static str,
    /// The statements, run one by one.
    pub statements: &'static [&'static str],
}

/// Every migration, oldest first; versions 1, 2, 3, ... like SQLite's.
pub(crate) const MYSQL_MIGRATIONS: &[MysqlMigration] = &[
    MysqlMigration {
        version: 1,
        description: "Emulab seed schema and seed type tables",
        statements: SEED_SCHEMA,
    },
    MysqlMigration {
        version: 2,
        description: "Emulab HEAD additions: object/event/trigger types, eventlist.triggertype and parent",
        statements: HEAD_ADDITIONS,
    },
    MysqlMigration {
        version: 3,
        description: "Emulab's queue columns in virt_lans (q_maxthresh .. q_gentle)",
        statements: QUEUE_COLUMNS,
    },
    MysqlMigration {
        version: 4,
        description: "Emulab HEAD's program columns in virt_programs (dir, timeout, expected_exit_code)",
        statements: PROGRAM_COLUMNS,
    },
];

/// The table that records the schema version.
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS tbevents_schema (\
     id TINYINT NOT NULL PRIMARY KEY, version INT NOT NULL) \
     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const SEED_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS experiments (
        idx             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        pid             VARCHAR(48) NOT NULL,
        eid             VARCHAR(32) NOT NULL,
        gid             VARCHAR(32) NOT NULL DEFAULT '',
        expt_head_uid   VARCHAR(32) NOT NULL DEFAULT '',
        expt_swap_uid   VARCHAR(32) NOT NULL DEFAULT '',
        expt_created    DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        state           VARCHAR(16) NOT NULL DEFAULT 'new',
        batchstate      VARCHAR(16),
        path            TEXT,
        logfile         TEXT,
        event_sched_pid INT DEFAULT 0,
        keyhash         VARCHAR(64),
        eventkey        VARCHAR(64),
        linktest_level  TINYINT NOT NULL DEFAULT 0,
        linktest_pid    INT DEFAULT 0,
        sync_server     VARCHAR(32),
        simulator_name  VARCHAR(255) NOT NULL DEFAULT '',
        UNIQUE KEY pideid (pid, eid)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS event_objecttypes (
        idx  SMALLINT NOT NULL PRIMARY KEY,
        type VARCHAR(64) NOT NULL,
        UNIQUE KEY type (type)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS event_eventtypes (
        idx  SMALLINT NOT NULL PRIMARY KEY,
        type VARCHAR(64) NOT NULL,
        UNIQUE KEY type (type)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS eventlist (
        pid        VARCHAR(48) NOT NULL DEFAULT '',
        eid        VARCHAR(32) NOT NULL DEFAULT '',
        idx        BIGINT NOT NULL,
        time       DOUBLE NOT NULL DEFAULT 0,
        vnode      VARCHAR(255) NOT NULL DEFAULT '',
        vname      VARCHAR(255) NOT NULL DEFAULT '',
        objecttype SMALLINT NOT NULL DEFAULT 0,
        eventtype  SMALLINT NOT NULL DEFAULT 0,
        isgroup    TINYINT DEFAULT 0,
        arguments  TEXT,
        atstring   TEXT,
        PRIMARY KEY (pid, eid, idx),
        KEY vnode (vnode),
        KEY bytime (pid, eid, time, idx)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS virt_agents (
        pid        VARCHAR(48) NOT NULL DEFAULT '',
        eid        VARCHAR(32) NOT NULL DEFAULT '',
        vname      VARCHAR(255) NOT NULL DEFAULT '',
        vnode      VARCHAR(255) NOT NULL DEFAULT '',
        objecttype SMALLINT NOT NULL DEFAULT 0,
        seq        BIGINT NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (pid, eid, vname, vnode),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS event_groups (
        pid        VARCHAR(48) NOT NULL DEFAULT '',
        eid        VARCHAR(32) NOT NULL DEFAULT '',
        idx        BIGINT NOT NULL,
        group_name VARCHAR(255) NOT NULL DEFAULT '',
        agent_name VARCHAR(255) NOT NULL DEFAULT '',
        PRIMARY KEY (pid, eid, idx),
        KEY group_name (group_name),
        KEY agent_name (agent_name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS virt_nodes (
        pid        VARCHAR(48) NOT NULL DEFAULT '',
        eid        VARCHAR(32) NOT NULL DEFAULT '',
        vname      VARCHAR(255) NOT NULL DEFAULT '',
        type       VARCHAR(255) NOT NULL DEFAULT '',
        osname     TEXT NOT NULL,
        routertype VARCHAR(64) NOT NULL DEFAULT '',
        ips        TEXT NOT NULL,
        seq        BIGINT NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (pid, eid, vname),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS virt_lans (
        pid        VARCHAR(48) NOT NULL DEFAULT '',
        eid        VARCHAR(32) NOT NULL DEFAULT '',
        vname      VARCHAR(255) NOT NULL DEFAULT '',
        vnode      VARCHAR(255) NOT NULL DEFAULT '',
        vport      INT NOT NULL DEFAULT 0,
        ip         VARCHAR(64) NOT NULL DEFAULT '',
        mask       VARCHAR(64) NOT NULL DEFAULT '',
        delay      DOUBLE NOT NULL DEFAULT 0,
        bandwidth  BIGINT NOT NULL DEFAULT 0,
        lossrate   DOUBLE NOT NULL DEFAULT 0,
        rdelay     DOUBLE NOT NULL DEFAULT 0,
        rbandwidth BIGINT NOT NULL DEFAULT 0,
        rlossrate  DOUBLE NOT NULL DEFAULT 0,
        q_limit    INT NOT NULL DEFAULT 0,
        member     VARCHAR(255) NOT NULL DEFAULT '',
        is_lan     TINYINT NOT NULL DEFAULT 0,
        mustdelay  TINYINT NOT NULL DEFAULT 0,
        seq        BIGINT NOT NULL AUTO_INCREMENT,
        UNIQUE KEY vname_member (pid, eid, vname, member),
        KEY vnode (pid, eid, vnode),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS virt_programs (
        pid     VARCHAR(48) NOT NULL DEFAULT '',
        eid     VARCHAR(32) NOT NULL DEFAULT '',
        vnode   VARCHAR(255) NOT NULL DEFAULT '',
        vname   VARCHAR(255) NOT NULL DEFAULT '',
        command TEXT,
        seq     BIGINT NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (pid, eid, vnode, vname),
        KEY vnode (vnode),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS virt_trafgens (
        pid          VARCHAR(48) NOT NULL DEFAULT '',
        eid          VARCHAR(32) NOT NULL DEFAULT '',
        vnode        VARCHAR(255) NOT NULL DEFAULT '',
        vname        VARCHAR(255) NOT NULL DEFAULT '',
        role         VARCHAR(64) NOT NULL DEFAULT '',
        proto        VARCHAR(64) NOT NULL DEFAULT '',
        port         INT NOT NULL DEFAULT 0,
        ip           VARCHAR(64) NOT NULL DEFAULT '',
        target_vnode VARCHAR(255) NOT NULL DEFAULT '',
        target_vname VARCHAR(255) NOT NULL DEFAULT '',
        target_port  INT NOT NULL DEFAULT 0,
        target_ip    VARCHAR(64) NOT NULL DEFAULT '',
        generator    VARCHAR(64) NOT NULL DEFAULT '',
        seq          BIGINT NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (pid, eid, vnode, vname),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS reserved (
        node_id           VARCHAR(64) NOT NULL PRIMARY KEY,
        pid               VARCHAR(48) NOT NULL DEFAULT '',
        eid               VARCHAR(32) NOT NULL DEFAULT '',
        rsrv_time         DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        vname             VARCHAR(255),
        erole             VARCHAR(32) NOT NULL DEFAULT 'node',
        simhost_violation TINYINT NOT NULL DEFAULT 0,
        old_pid           VARCHAR(48) NOT NULL DEFAULT '',
        old_eid           VARCHAR(32) NOT NULL DEFAULT '',
        UNIQUE KEY vname (pid, eid, vname)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS node_types (
        type          VARCHAR(30) NOT NULL PRIMARY KEY,
        class         VARCHAR(30),
        control_iface VARCHAR(30),
        isvirtnode    TINYINT NOT NULL DEFAULT 0
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS nodes (
        node_id     VARCHAR(64) NOT NULL PRIMARY KEY,
        type        VARCHAR(30) NOT NULL DEFAULT '',
        phys_nodeid VARCHAR(64),
        eventstate  VARCHAR(20),
        KEY phys_nodeid (phys_nodeid)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS interfaces (
        node_id VARCHAR(64) NOT NULL DEFAULT '',
        card    INT NOT NULL DEFAULT 0,
        port    INT NOT NULL DEFAULT 0,
        mac     VARCHAR(12) NOT NULL DEFAULT '000000000000',
        IP      VARCHAR(15),
        iface   VARCHAR(32),
        role    VARCHAR(16),
        PRIMARY KEY (node_id, card, port),
        KEY iface (node_id, iface)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS users (
        uid      VARCHAR(32) NOT NULL PRIMARY KEY,
        unix_uid INT UNSIGNED NOT NULL,
        status   VARCHAR(16) NOT NULL DEFAULT 'active',
        admin    TINYINT NOT NULL DEFAULT 0
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS `groups` (
        pid       VARCHAR(48) NOT NULL,
        gid       VARCHAR(32) NOT NULL,
        unix_gid  INT UNSIGNED NOT NULL,
        unix_name VARCHAR(32) NOT NULL DEFAULT '',
        PRIMARY KEY (pid, gid)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS group_membership (
        uid           VARCHAR(32) NOT NULL,
        gid           VARCHAR(32) NOT NULL,
        pid           VARCHAR(48) NOT NULL,
        trust         VARCHAR(16) NOT NULL DEFAULT 'none',
        date_applied  DATETIME,
        date_approved DATETIME,
        seq           BIGINT NOT NULL AUTO_INCREMENT,
        PRIMARY KEY (uid, gid, pid),
        KEY grp (pid, gid),
        KEY seq (seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "INSERT IGNORE INTO event_objecttypes (idx, type) VALUES
        (0, 'TBCONTROL'), (1, 'LINK'), (2, 'TRAFGEN'), (3, 'TIME'), (4, 'PROGRAM'),
        (5, 'FRISBEE'), (6, 'SIMULATOR'), (7, 'LINKTEST'), (8, 'NSE'), (9, 'SLOTHD')",
    "INSERT IGNORE INTO event_eventtypes (idx, type) VALUES
        (0, 'REBOOT'), (1, 'START'), (2, 'STOP'), (3, 'UP'), (4, 'DOWN'), (5, 'UPDATE'),
        (6, 'MODIFY'), (7, 'SET'), (8, 'TIME'), (9, 'RESET'), (10, 'KILL'), (11, 'HALT'),
        (12, 'SWAPOUT'), (13, 'NSEEVENT'), (14, 'REPORT'), (15, 'ALERT')",
];

const HEAD_ADDITIONS: &[&str] = &[
    "INSERT IGNORE INTO event_objecttypes (idx, type) VALUES
        (10, 'NODE'), (11, 'SEQUENCE'), (12, 'TIMELINE'), (13, 'CONSOLE'), (14, 'TOPOGRAPHY'),
        (15, 'LINKTRACE'), (16, 'EVPROXY'), (17, 'BGMON')",
    "INSERT IGNORE INTO event_eventtypes (idx, type) VALUES
        (16, 'SETDEST'), (17, 'COMPLETE'), (18, 'MESSAGE'), (19, 'LOG'), (20, 'RUN'),
        (21, 'SNAPSHOT'), (22, 'RELOAD'), (23, 'CLEAR'), (24, 'CREATE'), (25, 'STOPRUN')",
    "CREATE TABLE IF NOT EXISTS event_triggertypes (
        idx  SMALLINT NOT NULL PRIMARY KEY,
        type VARCHAR(64) NOT NULL,
        UNIQUE KEY type (type)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "INSERT IGNORE INTO event_triggertypes (idx, type) VALUES (0, 'TIMER'), (2, 'SWAPOUT')",
    "ALTER TABLE eventlist ADD COLUMN IF NOT EXISTS triggertype SMALLINT NOT NULL DEFAULT 0",
    "ALTER TABLE eventlist ADD COLUMN IF NOT EXISTS parent VARCHAR(255) NOT NULL DEFAULT ''",
];

/// Migration 3, with Emulab's NS queue defaults (see [`crate::schema`]).
const QUEUE_COLUMNS: &[&str] = &["ALTER TABLE virt_lans \
     ADD COLUMN IF NOT EXISTS q_maxthresh INT NOT NULL DEFAULT 15, \
     ADD COLUMN IF NOT EXISTS q_minthresh INT NOT NULL DEFAULT 5, \
     ADD COLUMN IF NOT EXISTS q_weight DOUBLE NOT NULL DEFAULT 0.002, \
     ADD COLUMN IF NOT EXISTS q_linterm INT NOT NULL DEFAULT 10, \
     ADD COLUMN IF NOT EXISTS q_qinbytes TINYINT NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS q_bytes TINYINT NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS q_meanpsize INT NOT NULL DEFAULT 500, \
     ADD COLUMN IF NOT EXISTS q_wait TINYINT NOT NULL DEFAULT 1, \
     ADD COLUMN IF NOT EXISTS q_setbit TINYINT NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS q_droptail TINYINT NOT NULL DEFAULT 1, \
     ADD COLUMN IF NOT EXISTS q_red TINYINT NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS q_gentle TINYINT NOT NULL DEFAULT 0"];

/// Migration 4: Emulab HEAD's program settings, defaults as in SQLite.
const PROGRAM_COLUMNS: &[&str] = &["ALTER TABLE virt_programs \
     ADD COLUMN IF NOT EXISTS dir TEXT NOT NULL DEFAULT '', \
     ADD COLUMN IF NOT EXISTS timeout INT UNSIGNED NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS expected_exit_code TINYINT UNSIGNED NOT NULL DEFAULT 0"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_the_sqlite_list() {
        let sqlite: Vec<i64> = crate::schema::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect();
        let mysql: Vec<i64> = MYSQL_MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(sqlite, mysql);
    }
}
