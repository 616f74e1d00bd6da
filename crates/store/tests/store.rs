//! Behaviour of the SQLite experiment store through its public interface,
//! on real database files in temporary directories.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tbevents_store::{
    AgentRow, EventRow, ExperimentId, ExperimentState, ExperimentStore, Group, GroupMembership,
    GroupRow, NewExperiment, NodeAssignment, SqliteStore, StaticEvent, StoreError, Trust,
    TypeEntry, TypeTable, User, VirtAgent, VirtLanMember, VirtNode, VirtProgram, VirtTrafgen,
    VirtualExperiment, generate_event_key, open, write_event_key_file,
};
use tempfile::TempDir;

mod common;
use common::TestDb;

both_backends!(
    every_table_mapping_matches_the_schema,
    type_tables_hold_the_spec_rows,
    eventlist_rows_carry_type_indexes,
    load_virtual_round_trips_every_table,
    experiments_do_not_see_each_others_rows,
    unknown_type_names_are_rejected_and_nothing_is_written,
    malformed_virtual_rows_are_rejected_atomically,
    agents_resolve_node_ids_and_control_ips,
    control_ip_is_the_physical_hosts,
    swapin_validates_assignments,
    groups_come_back_in_load_order,
    events_are_ordered_by_time_then_load_order,
    reads_of_a_missing_experiment_say_how_to_create_it,
    experiment_life_cycle,
    bad_names_and_paths_are_refused,
    states_are_emulabs_and_validated,
    users_groups_and_memberships,
);

// ----- fixtures -----

fn temp_store() -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tbevents.db");
    let store = SqliteStore::open(&path).expect("open store");
    (dir, path, store)
}

fn exp(eid: &str) -> ExperimentId {
    ExperimentId::new("testbed", eid)
}

fn create(store: &dyn ExperimentStore, id: &ExperimentId) {
    let path = format!("/proj/{}/exp/{}", id.pid, id.eid);
    store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            id.pid.clone(),
            "alice",
            path,
        ))
        .expect("create experiment");
}

fn agent(vname: &str, vnode: &str, objtype: &str) -> VirtAgent {
    VirtAgent {
        vname: vname.into(),
        vnode: vnode.into(),
        objtype: objtype.into(),
    }
}

fn event(time: f64, vname: &str, objtype: &str, eventtype: &str, args: &str) -> StaticEvent {
    StaticEvent {
        time,
        vnode: String::new(),
        vname: vname.into(),
        objtype: objtype.into(),
        eventtype: eventtype.into(),
        arguments: args.into(),
        atstring: format!("$ns at {time} \"${vname} {}\"", eventtype.to_lowercase()),
    }
}

fn node(vname: &str) -> VirtNode {
    VirtNode {
        vname: vname.into(),
        node_type: "pc850".into(),
        osname: "FBSD-STD".into(),
        routertype: "static".into(),
        ips: "0:10.1.1.2 1:10.1.2.2".into(),
    }
}

/// A virtual experiment that uses every table and unusual values.
fn full_virtual() -> VirtualExperiment {
    VirtualExperiment {
        nodes: vec![node("nodeB"), node("nodeA"), node("router")],
        lan_members: vec![
            VirtLanMember {
                vname: "link0".into(),
                vnode: "nodeB".into(),
                vport: 0,
                ip: "10.1.1.2".into(),
                mask: "255.255.255.0".into(),
                delay: 12.5,
                bandwidth: 100_000,
                lossrate: 0.05,
                rdelay: 0.25,
                rbandwidth: 10_000_000_000,
                rlossrate: 1.0,
                // Every queue column away from its default.
                q_limit: 4_000_000,
                q_maxthresh: 40,
                q_minthresh: 0,
                q_weight: 0.125,
                q_linterm: 3,
                q_qinbytes: true,
                q_bytes: true,
                q_meanpsize: 1500,
                q_wait: false,
                q_setbit: true,
                q_droptail: false,
                q_red: true,
                q_gentle: true,
                member: "nodeB:0".into(),
                is_lan: false,
                mustdelay: true,
            },
            VirtLanMember {
                vname: "link0".into(),
                vnode: "nodeA".into(),
                vport: 1,
                ip: "10.1.1.3".into(),
                mask: "255.255.255.0".into(),
                member: "nodeA:1".into(),
                is_lan: true,
                ..VirtLanMember::default()
            },
        ],
        agents: vec![
            agent("ns", "*", "SIMULATOR"),
            agent("prog0", "nodeB", "PROGRAM"),
            agent("cbr0", "nodeA", "TRAFGEN"),
            agent("link0", "*", "LINK"),
            agent("tl", "*", "TIMELINE"),
        ],
        programs: vec![VirtProgram {
            vnode: "nodeB".into(),
            vname: "prog0".into(),
            command: "/bin/echo 'hé llo' \"$HOME\"".into(),
            dir: "/tmp/run".into(),
            timeout: 30,
            expected_exit_code: 3,
        }],
        trafgens: vec![VirtTrafgen {
            vnode: "nodeA".into(),
            vname: "cbr0".into(),
            role: "source".into(),
            proto: "udp".into(),
            port: 3001,
            ip: "10.1.1.3".into(),
            target_vnode: "nodeB".into(),
            target_vname: "null0".into(),
            target_port: 3002,
            target_ip: "10.1.1.2".into(),
            generator: "TG".into(),
        }],
        groups: vec![
            GroupRow {
                group_name: "both".into(),
                agent_name: "prog0".into(),
            },
            GroupRow {
                group_name: "both".into(),
                agent_name: "cbr0".into(),
            },
        ],
        events: vec![
            event(
                10.0,
                "cbr0",
                "TRAFGEN",
                "START",
                "PACKETSIZE=500 RATE=100000",
            ),
            event(0.1 + 0.2, "link0", "LINK", "MODIFY", "BANDWIDTH=1000"),
            event(10.0, "prog0", "PROGRAM", "START", "COMMAND='ls -l'"),
            event(86_400.125, "ns", "SIMULATOR", "HALT", ""),
            event(5.0, "tl", "TIMELINE", "RUN", ""),
        ],
        simulator_name: "ns".into(),
    }
}

fn raw_count(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open(path).expect("raw open");
    conn.query_row(sql, [], |row| row.get(0))
        .expect("raw count")
}

// ----- migrations and opening -----

#[test]
fn new_file_gets_latest_schema_and_reopen_is_idempotent() {
    let (_dir, path, store) = temp_store();
    let version = store.schema_version().expect("version");
    assert_eq!(version, tbevents_store::schema::latest_version());
    assert!(version >= 2);
    let id = exp("keep");
    create(&store, &id);
    drop(store);

    for _ in 0..3 {
        let again = SqliteStore::open(&path).expect("reopen");
        assert_eq!(again.schema_version().expect("version"), version);
        assert_eq!(
            again.experiment(&id).expect("row survives").expt_head_uid,
            "alice"
        );
    }
    // Re-running the migrations did not duplicate seed rows.
    assert_eq!(
        raw_count(&path, "SELECT count(*) FROM event_objecttypes"),
        18
    );
    assert_eq!(
        raw_count(&path, "SELECT count(*) FROM event_eventtypes"),
        26
    );
    let conn = Connection::open(&path).expect("raw");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn all_tables_exist_with_emulab_names() {
    let (_dir, path, _store) = temp_store();
    for table in [
        "experiments",
        "eventlist",
        "event_eventtypes",
        "event_objecttypes",
        "event_triggertypes",
        "virt_agents",
        "event_groups",
        "reserved",
        "nodes",
        "node_types",
        "interfaces",
        "virt_nodes",
        "virt_lans",
        "virt_programs",
        "virt_trafgens",
        "users",
        "groups",
        "group_membership",
    ] {
        let sql =
            format!("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='{table}'");
        assert_eq!(raw_count(&path, &sql), 1, "table {table}");
    }
    for column in [
        "pid",
        "eid",
        "gid",
        "expt_head_uid",
        "expt_swap_uid",
        "state",
        "batchstate",
        "path",
        "logfile",
        "keyhash",
        "eventkey",
        "linktest_level",
        "idx",
    ] {
        let sql =
            format!("SELECT count(*) FROM pragma_table_info('experiments') WHERE name='{column}'");
        assert_eq!(raw_count(&path, &sql), 1, "experiments.{column}");
    }
    for column in [
        "pid",
        "eid",
        "idx",
        "time",
        "vnode",
        "vname",
        "objecttype",
        "eventtype",
        "isgroup",
        "arguments",
        "atstring",
        "triggertype",
        "parent",
    ] {
        let sql =
            format!("SELECT count(*) FROM pragma_table_info('eventlist') WHERE name='{column}'");
        assert_eq!(raw_count(&path, &sql), 1, "eventlist.{column}");
    }
    // virt_lans has every queue column of Emulab's.
    for column in [
        "q_limit",
        "q_maxthresh",
        "q_minthresh",
        "q_weight",
        "q_linterm",
        "q_qinbytes",
        "q_bytes",
        "q_meanpsize",
        "q_wait",
        "q_setbit",
        "q_droptail",
        "q_red",
        "q_gentle",
    ] {
        let sql =
            format!("SELECT count(*) FROM pragma_table_info('virt_lans') WHERE name='{column}'");
        assert_eq!(raw_count(&path, &sql), 1, "virt_lans.{column}");
    }
    // eventlist's primary key is Emulab's (pid, eid, idx).
    let pk = raw_count(
        &path,
        "SELECT count(*) FROM pragma_table_info('eventlist') WHERE pk > 0",
    );
    assert_eq!(pk, 3);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let (_dir, path, store) = temp_store();
    drop(store);
    Connection::open(&path)
        .expect("raw")
        .execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    let err = SqliteStore::open(&path).expect_err("must refuse");
    let latest = tbevents_store::schema::latest_version();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported,
                ..
            } if supported == latest
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("newer tbevents"), "{text}");
    assert!(text.contains(&format!("99 > {latest}")), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(raw_count(&path, "PRAGMA user_version"), 99);
}

#[test]
fn foreign_and_non_sqlite_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("other.db");
    Connection::open(&foreign)
        .expect("raw")
        .execute_batch("CREATE TABLE accounts (name TEXT)")
        .expect("foreign schema");
    let err = SqliteStore::open(&foreign).expect_err("refuse foreign");
    assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
    assert_eq!(
        raw_count(
            &foreign,
            "SELECT count(*) FROM sqlite_master WHERE name='experiments'"
        ),
        0
    );

    let text_file = dir.path().join("notes.txt");
    std::fs::write(
        &text_file,
        "this is not a database, just some text that is long enough\n".repeat(20),
    )
    .expect("write");
    let err = SqliteStore::open(&text_file).expect_err("refuse text");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
}

#[test]
fn open_accepts_every_url_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let abs = dir.path().join("abs.db");
    let store = open(&format!("sqlite:{}", abs.display())).expect("sqlite:/abs");
    create(store.as_ref(), &exp("a"));
    assert!(abs.exists());
    assert!(store.location().starts_with("sqlite:/"));

    let triple = dir.path().join("triple.db");
    open(&format!("sqlite://{}", triple.display())).expect("sqlite:///abs");
    assert!(triple.exists());

    let plain = dir.path().join("nested/dirs/plain.db");
    open(plain.to_str().expect("utf-8")).expect("plain path, parent created");
    assert!(plain.exists());

    // A relative path is relative to the current directory.
    let cwd = std::env::current_dir().expect("cwd");
    let ups = "../".repeat(cwd.components().count().saturating_sub(1));
    let relative_target = dir.path().join("relative.db");
    let relative = format!(
        "{ups}{}",
        relative_target
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    open(&format!("sqlite:{relative}")).expect("sqlite:relative");
    assert!(relative_target.exists());

    let memory = open("sqlite::memory:").expect("memory");
    create(memory.as_ref(), &exp("m"));
    assert_eq!(memory.list_experiments().expect("list").len(), 1);
    let other_memory = open("sqlite::memory:").expect("memory");
    assert!(
        other_memory.list_experiments().expect("list").is_empty(),
        "private per store"
    );

    for bad in ["https://boss:3069/RPC2", "ftp://x", ""] {
        let err = open(bad).expect_err("refuse");
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{bad}: {err:?}"
        );
        assert!(
            err.to_string().contains("sqlite:/absolute/path.db"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn unusable_locations_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    // The "directory" for the database is a regular file.
    let err = SqliteStore::open(&file.join("tbevents.db")).expect_err("cannot create");
    assert!(matches!(err, StoreError::CannotOpen { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("TBEVENTS_STORE"), "{text}");
    assert!(text.contains("plain-file"), "{text}");
}

// ----- type tables -----

fn entries(pairs: &[(u16, &str)]) -> Vec<TypeEntry> {
    pairs
        .iter()
        .map(|&(idx, name)| TypeEntry {
            idx,
            name: name.into(),
        })
        .collect()
}

fn type_tables_hold_the_spec_rows(db: &TestDb) {
    let store = db.store();
    assert_eq!(
        store.type_table(TypeTable::ObjectTypes).expect("objtypes"),
        entries(&[
            (0, "TBCONTROL"),
            (1, "LINK"),
            (2, "TRAFGEN"),
            (3, "TIME"),
            (4, "PROGRAM"),
            (5, "FRISBEE"),
            (6, "SIMULATOR"),
            (7, "LINKTEST"),
            (8, "NSE"),
            (9, "SLOTHD"),
            (10, "NODE"),
            (11, "SEQUENCE"),
            (12, "TIMELINE"),
            (13, "CONSOLE"),
            (14, "TOPOGRAPHY"),
            (15, "LINKTRACE"),
            (16, "EVPROXY"),
            (17, "BGMON"),
        ])
    );
    assert_eq!(
        store.type_table(TypeTable::EventTypes).expect("eventtypes"),
        entries(&[
            (0, "REBOOT"),
            (1, "START"),
            (2, "STOP"),
            (3, "UP"),
            (4, "DOWN"),
            (5, "UPDATE"),
            (6, "MODIFY"),
            (7, "SET"),
            (8, "TIME"),
            (9, "RESET"),
            (10, "KILL"),
            (11, "HALT"),
            (12, "SWAPOUT"),
            (13, "NSEEVENT"),
            (14, "REPORT"),
            (15, "ALERT"),
            (16, "SETDEST"),
            (17, "COMPLETE"),
            (18, "MESSAGE"),
            (19, "LOG"),
            (20, "RUN"),
            (21, "SNAPSHOT"),
            (22, "RELOAD"),
            (23, "CLEAR"),
            (24, "CREATE"),
            (25, "STOPRUN"),
        ])
    );
    assert_eq!(
        store.type_table(TypeTable::TriggerTypes).expect("triggers"),
        entries(&[(0, "TIMER"), (2, "SWAPOUT")])
    );
}

fn eventlist_rows_carry_type_indexes(db: &TestDb) {
    let store = db.store();
    let id = exp("idx");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");
    let start = db.raw_ints(
        "SELECT objecttype, eventtype, isgroup, triggertype FROM eventlist \
         WHERE pid='testbed' AND eid='idx' AND idx=1",
    );
    assert_eq!(start, vec![2, 1, 0, 0], "TRAFGEN START");
    let halt = db.raw_ints("SELECT objecttype, eventtype FROM eventlist WHERE eid='idx' AND idx=4");
    assert_eq!(halt, vec![6, 11], "SIMULATOR HALT");
}

// ----- virtual experiment -----

fn load_virtual_round_trips_every_table(db: &TestDb) {
    let store = db.store();
    let id = exp("round");
    create(&*store, &id);
    let virt = full_virtual();
    store.load_virtual(&id, &virt).expect("load");
    assert_eq!(store.virtual_experiment(&id).expect("read back"), virt);

    // A second load replaces everything, including with an empty experiment.
    let smaller = VirtualExperiment {
        nodes: vec![node("solo")],
        agents: vec![agent("solo-prog", "solo", "PROGRAM")],
        events: vec![event(1.5, "solo-prog", "PROGRAM", "STOP", "")],
        simulator_name: "sim".into(),
        ..VirtualExperiment::default()
    };
    store.load_virtual(&id, &smaller).expect("reload");
    assert_eq!(store.virtual_experiment(&id).expect("read back"), smaller);
    store
        .load_virtual(&id, &VirtualExperiment::default())
        .expect("empty");
    assert_eq!(
        store.virtual_experiment(&id).expect("read back"),
        VirtualExperiment::default()
    );
}

fn experiments_do_not_see_each_others_rows(db: &TestDb) {
    let store = db.store();
    let (one, two) = (exp("one"), exp("two"));
    create(&*store, &one);
    create(&*store, &two);
    store.load_virtual(&one, &full_virtual()).expect("load one");
    let other = VirtualExperiment {
        agents: vec![agent("x", "*", "LINK")],
        events: vec![event(2.0, "x", "LINK", "DOWN", "")],
        ..VirtualExperiment::default()
    };
    store.load_virtual(&two, &other).expect("load two");
    assert_eq!(store.virtual_experiment(&one).expect("one"), full_virtual());
    assert_eq!(store.events(&two).expect("two").len(), 1);
    assert_eq!(store.agents(&two).expect("two").len(), 1);
}

fn unknown_type_names_are_rejected_and_nothing_is_written(db: &TestDb) {
    let store = db.store();
    let id = exp("typo");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("good load");

    let mut bad_objtype = full_virtual();
    bad_objtype.nodes = vec![node("fresh")];
    bad_objtype.agents.push(agent("mystery", "*", "WIDGET"));
    let err = store.load_virtual(&id, &bad_objtype).expect_err("refuse");
    assert!(
        matches!(&err, StoreError::UnknownObjectType { name, .. } if name == "WIDGET"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("WIDGET") && text.contains("mystery"),
        "{text}"
    );
    assert!(
        text.contains("TBCONTROL, LINK, TRAFGEN"),
        "lists the known types: {text}"
    );

    let mut bad_eventtype = full_virtual();
    bad_eventtype
        .events
        .push(event(3.0, "prog0", "PROGRAM", "EXPLODE", ""));
    let err = store.load_virtual(&id, &bad_eventtype).expect_err("refuse");
    assert!(
        matches!(&err, StoreError::UnknownEventType { name, .. } if name == "EXPLODE"),
        "{err:?}"
    );
    assert!(err.to_string().contains("event 6"), "names the row: {err}");

    // The earlier good load is intact: no half-written replacement.
    assert_eq!(
        store.virtual_experiment(&id).expect("intact"),
        full_virtual()
    );
    assert_eq!(
        db.raw_count("SELECT count(*) FROM virt_nodes WHERE vname = 'fresh'"),
        0
    );
}

fn malformed_virtual_rows_are_rejected_atomically(db: &TestDb) {
    let store = db.store();
    let id = exp("bad");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("good load");

    let mut duplicate_agent = full_virtual();
    duplicate_agent
        .agents
        .push(agent("prog0", "nodeB", "PROGRAM"));
    let err = store
        .load_virtual(&id, &duplicate_agent)
        .expect_err("dup agent");
    assert!(
        matches!(err, StoreError::InvalidInput(ref m) if m.contains("prog0")),
        "{err:?}"
    );

    let mut duplicate_node = full_virtual();
    duplicate_node.nodes.push(node("nodeA"));
    assert!(matches!(
        store.load_virtual(&id, &duplicate_node),
        Err(StoreError::InvalidInput(_))
    ));

    for time in [-1.0, f64::NAN, f64::INFINITY] {
        let mut bad_time = full_virtual();
        bad_time
            .events
            .push(event(time, "prog0", "PROGRAM", "START", ""));
        let err = store.load_virtual(&id, &bad_time).expect_err("bad time");
        assert!(
            matches!(err, StoreError::InvalidInput(ref m) if m.contains("time")),
            "{err:?}"
        );
    }

    let mut bad_loss = full_virtual();
    bad_loss.lan_members[0].lossrate = 1.5;
    assert!(matches!(
        store.load_virtual(&id, &bad_loss),
        Err(StoreError::InvalidInput(_))
    ));

    for weight in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        let mut bad_weight = full_virtual();
        bad_weight.lan_members[1].q_weight = weight;
        let err = store
            .load_virtual(&id, &bad_weight)
            .expect_err("bad queue weight");
        assert!(
            matches!(err, StoreError::InvalidInput(ref m)
                if m.contains("queue weight") && m.contains("nodeA:1")),
            "{err:?}"
        );
    }

    let mut star_node = full_virtual();
    star_node.nodes.push(node("*"));
    assert!(matches!(
        store.load_virtual(&id, &star_node),
        Err(StoreError::InvalidInput(_))
    ));

    assert_eq!(
        store.virtual_experiment(&id).expect("intact"),
        full_virtual()
    );
}

// ----- scheduler reads -----

fn agents_resolve_node_ids_and_control_ips(db: &TestDb) {
    let store = db.store();
    let id = exp("map");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");

    // Before swap-in nothing is mapped.
    let unmapped = store.agents(&id).expect("agents");
    assert!(
        unmapped
            .iter()
            .all(|a| a.node_id.is_none() && a.ipaddr.is_none())
    );

    // Map nodeB only; nodeA stays unmapped.
    store
        .record_swapin(
            &id,
            &[NodeAssignment {
                vnode: "nodeB".into(),
                node_id: "pc17".into(),
                control_ip: "155.98.36.17".into(),
            }],
        )
        .expect("swapin");
    let agents = store.agents(&id).expect("agents");
    let mapped =
        |vname: &str, vnode: &str, objtype: &str, node: Option<&str>, ip: Option<&str>| AgentRow {
            vname: vname.into(),
            vnode: vnode.into(),
            objtype: objtype.into(),
            node_id: node.map(String::from),
            ipaddr: ip.map(String::from),
        };
    assert_eq!(
        agents,
        vec![
            mapped("ns", "*", "SIMULATOR", None, None),
            mapped(
                "prog0",
                "nodeB",
                "PROGRAM",
                Some("pc17"),
                Some("155.98.36.17")
            ),
            mapped("cbr0", "nodeA", "TRAFGEN", None, None),
            mapped("link0", "*", "LINK", None, None),
            mapped("tl", "*", "TIMELINE", None, None),
        ]
    );
    assert_eq!(
        store.physical_mapping(&id).expect("mapping"),
        vec![NodeAssignment {
            vnode: "nodeB".into(),
            node_id: "pc17".into(),
            control_ip: "155.98.36.17".into(),
        }]
    );

    // Swap-out removes the mapping.
    store.record_swapout(&id).expect("swapout");
    assert!(
        store
            .agents(&id)
            .expect("agents")
            .iter()
            .all(|a| a.node_id.is_none())
    );
    assert!(store.physical_mapping(&id).expect("mapping").is_empty());
}

fn control_ip_is_the_physical_hosts(db: &TestDb) {
    // A virtual node (pcvm1-1) hosted on pc1: Emulab resolves the control IP
    // through nodes.phys_nodeid, so the agent gets pc1's address.
    let store = db.store();
    let id = exp("vm");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");
    store
        .record_swapin(
            &id,
            &[NodeAssignment {
                vnode: "nodeB".into(),
                node_id: "pcvm1-1".into(),
                control_ip: "172.17.1.1".into(),
            }],
        )
        .expect("swapin");
    db.raw_exec(
        "INSERT INTO nodes (node_id, type, phys_nodeid) VALUES ('pc1', 'pc', 'pc1');
             INSERT INTO interfaces (node_id, card, port, IP, iface, role)
                 VALUES ('pc1', 0, 1, '155.98.36.1', 'ctrl0', 'ctrl');
             UPDATE nodes SET phys_nodeid = 'pc1' WHERE node_id = 'pcvm1-1';",
    );
    let prog = store
        .agents(&id)
        .expect("agents")
        .into_iter()
        .find(|a| a.vname == "prog0")
        .expect("prog0");
    assert_eq!(prog.node_id.as_deref(), Some("pcvm1-1"));
    assert_eq!(prog.ipaddr.as_deref(), Some("155.98.36.1"));
}

fn swapin_validates_assignments(db: &TestDb) {
    let store = db.store();
    let (one, two) = (exp("one"), exp("two"));
    create(&*store, &one);
    create(&*store, &two);
    store.load_virtual(&one, &full_virtual()).expect("load");
    store.load_virtual(&two, &full_virtual()).expect("load");
    let assign = |vnode: &str, node_id: &str, ip: &str| NodeAssignment {
        vnode: vnode.into(),
        node_id: node_id.into(),
        control_ip: ip.into(),
    };
    store
        .record_swapin(&one, &[assign("nodeA", "pc1", "10.0.0.1")])
        .expect("swapin one");

    let err = store
        .record_swapin(&two, &[assign("nodeA", "pc1", "10.0.0.9")])
        .expect_err("taken");
    assert!(
        matches!(&err, StoreError::NodeReserved { node_id, holder } if node_id == "pc1" && *holder == one),
        "{err:?}"
    );
    assert!(
        store.physical_mapping(&two).expect("mapping").is_empty(),
        "nothing recorded"
    );

    for bad in [
        vec![assign("nodeA", "pc2", "not-an-ip")],
        vec![
            assign("nodeA", "pc2", "10.0.0.2"),
            assign("nodeA", "pc3", "10.0.0.3"),
        ],
        vec![
            assign("nodeA", "pc2", "10.0.0.2"),
            assign("nodeB", "pc2", "10.0.0.3"),
        ],
        vec![assign("ghost", "pc2", "10.0.0.2")],
        vec![assign("nodeA", "pc 2", "10.0.0.2")],
    ] {
        let err = store.record_swapin(&two, &bad).expect_err("invalid");
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{bad:?}: {err:?}"
        );
    }

    // Re-recording replaces the previous mapping and frees its nodes.
    store
        .record_swapin(&one, &[assign("nodeB", "pc5", "10.0.0.5")])
        .expect("remap");
    store
        .record_swapin(&two, &[assign("nodeA", "pc1", "10.0.0.9")])
        .expect("pc1 is free now");
    let prog = store.agents(&two).expect("agents");
    let cbr = prog.iter().find(|a| a.vname == "cbr0").expect("cbr0");
    assert_eq!(
        cbr.ipaddr.as_deref(),
        Some("10.0.0.9"),
        "new control IP replaces the old one"
    );
}

fn groups_come_back_in_load_order(db: &TestDb) {
    let store = db.store();
    let id = exp("groups");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");
    assert_eq!(store.groups(&id).expect("groups"), full_virtual().groups);
}

fn events_are_ordered_by_time_then_load_order(db: &TestDb) {
    let store = db.store();
    let id = exp("order");
    create(&*store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");
    let events = store.events(&id).expect("events");
    let summary: Vec<(u64, f64, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.idx,
                e.time,
                e.vname.as_str(),
                e.objtype.as_str(),
                e.eventtype.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, 0.1 + 0.2, "link0", "LINK", "MODIFY"),
            (5, 5.0, "tl", "TIMELINE", "RUN"),
            (1, 10.0, "cbr0", "TRAFGEN", "START"),
            (3, 10.0, "prog0", "PROGRAM", "START"),
            (4, 86_400.125, "ns", "SIMULATOR", "HALT"),
        ]
    );
    assert_eq!(
        events[2],
        EventRow {
            idx: 1,
            time: 10.0,
            vnode: String::new(),
            vname: "cbr0".into(),
            objtype: "TRAFGEN".into(),
            eventtype: "START".into(),
            arguments: "PACKETSIZE=500 RATE=100000".into(),
        }
    );

    // Many equal times keep insertion order, whatever the row layout.
    let many: Vec<StaticEvent> = (0..500)
        .map(|i| event(f64::from(i % 3), &format!("a{i}"), "PROGRAM", "START", ""))
        .collect();
    let virt = VirtualExperiment {
        events: many,
        ..VirtualExperiment::default()
    };
    store.load_virtual(&id, &virt).expect("load many");
    let events = store.events(&id).expect("events");
    assert_eq!(events.len(), 500);
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            a.time < b.time || (a.time == b.time && a.idx < b.idx),
            "{a:?} then {b:?}"
        );
    }
}

fn reads_of_a_missing_experiment_say_how_to_create_it(db: &TestDb) {
    let store = db.store();
    let ghost = exp("ghost");
    let results = [
        store.events(&ghost).err(),
        store.agents(&ghost).err(),
        store.groups(&ghost).err(),
        store.state(&ghost).err(),
        store.experiment(&ghost).err(),
        store.virtual_experiment(&ghost).err(),
        store.physical_mapping(&ghost).err(),
        store.load_virtual(&ghost, &full_virtual()).err(),
        store.set_state(&ghost, ExperimentState::Active).err(),
        store.set_event_key(&ghost, "abc").err(),
        store.record_swapin(&ghost, &[]).err(),
        store.record_swapout(&ghost).err(),
        store.delete_experiment(&ghost).err(),
    ];
    for err in results {
        let err = err.expect("must fail");
        assert!(
            matches!(&err, StoreError::ExperimentNotFound(id) if *id == ghost),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("testbed/ghost not found") && text.contains("tbevents create"),
            "{text}"
        );
    }
}

// ----- experiments -----

fn experiment_life_cycle(db: &TestDb) {
    let store = db.store();
    let id = exp("life");
    let created = store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "testbed",
            "alice",
            "/proj/testbed/exp/life",
        ))
        .expect("create");
    assert_eq!(created.id, id);
    assert_eq!(created.state, ExperimentState::New);
    assert_eq!(created.gid, "testbed");
    assert_eq!(created.expt_head_uid, "alice");
    assert_eq!(created.expt_swap_uid, "alice");
    assert_eq!(created.path, "/proj/testbed/exp/life");
    assert_eq!(created.eventkey, None);
    assert_eq!(created.linktest_level, 0);
    assert!(created.idx >= 1);
    assert_eq!(
        created.expt_created.len(),
        19,
        "YYYY-MM-DD HH:MM:SS: {}",
        created.expt_created
    );

    let err = store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "testbed",
            "bob",
            "/elsewhere",
        ))
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::ExperimentExists(ref e) if *e == id),
        "{err:?}"
    );

    let key = generate_event_key();
    store.set_event_key(&id, &key).expect("key");
    assert_eq!(
        store.experiment(&id).expect("get").eventkey.as_deref(),
        Some(key.as_str())
    );
    assert!(matches!(
        store.set_event_key(&id, "two words"),
        Err(StoreError::InvalidEventKey(_))
    ));

    create(&*store, &exp("alpha"));
    let listed: Vec<String> = store
        .list_experiments()
        .expect("list")
        .into_iter()
        .map(|e| e.id.eid)
        .collect();
    assert_eq!(listed, vec!["alpha", "life"]);

    // Deleting removes the experiment with its virtual rows and reservations.
    store.load_virtual(&id, &full_virtual()).expect("load");
    store
        .record_swapin(
            &id,
            &[NodeAssignment {
                vnode: "nodeA".into(),
                node_id: "pc9".into(),
                control_ip: "10.9.9.9".into(),
            }],
        )
        .expect("swapin");
    store.delete_experiment(&id).expect("delete");
    assert!(matches!(
        store.experiment(&id),
        Err(StoreError::ExperimentNotFound(_))
    ));
    for table in [
        "eventlist",
        "virt_agents",
        "virt_nodes",
        "virt_lans",
        "event_groups",
        "reserved",
    ] {
        let sql = format!("SELECT count(*) FROM {table} WHERE eid = 'life'");
        assert_eq!(db.raw_count(&sql), 0, "{table}");
    }
    assert_eq!(
        db.raw_count("SELECT count(*) FROM nodes WHERE node_id = 'pc9'"),
        0
    );
    // An index is never reused.
    let again = store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "testbed",
            "alice",
            "/proj/x",
        ))
        .expect("recreate");
    assert!(again.idx > created.idx);
}

fn bad_names_and_paths_are_refused(db: &TestDb) {
    let store = db.store();
    let cases = [
        NewExperiment::new(ExperimentId::new("", "e"), "g", "u", "/p"),
        NewExperiment::new(ExperimentId::new("p", "a/b"), "g", "u", "/p"),
        NewExperiment::new(ExperimentId::new("p", "x".repeat(33)), "g", "u", "/p"),
        NewExperiment::new(ExperimentId::new("p;drop", "e"), "g", "u", "/p"),
        NewExperiment::new(ExperimentId::new("p", "e"), "g g", "u", "/p"),
        NewExperiment::new(ExperimentId::new("p", "e"), "g", "", "/p"),
    ];
    for case in &cases {
        let err = store.create_experiment(case).expect_err("refuse");
        assert!(
            matches!(err, StoreError::InvalidName { .. }),
            "{case:?}: {err:?}"
        );
    }
    let relative = NewExperiment::new(ExperimentId::new("p", "e"), "g", "u", "proj/p/exp/e");
    assert!(matches!(
        store.create_experiment(&relative),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(store.list_experiments().expect("list").is_empty());
    // Longest legal names are fine.
    let longest = NewExperiment::new(
        ExperimentId::new("p".repeat(48), "e".repeat(32)),
        "g",
        "u",
        "/p",
    );
    store.create_experiment(&longest).expect("48/32 characters");
}

fn states_are_emulabs_and_validated(db: &TestDb) {
    let store = db.store();
    let id = exp("state");
    create(&*store, &id);
    assert_eq!(store.state(&id).expect("state"), ExperimentState::New);
    let names = [
        "new",
        "prerunning",
        "swapped",
        "queued",
        "swapping",
        "activating",
        "active",
        "terminating",
        "ended",
        "modify_parse",
        "modify_reparse",
        "modify_reswap",
        "restarting",
    ];
    assert_eq!(ExperimentState::ALL.len(), names.len());
    for name in names {
        let state: ExperimentState = name.parse().expect("valid state");
        assert_eq!(state.as_str(), name);
        store.set_state(&id, state).expect("set");
        assert_eq!(store.state(&id).expect("get"), state);
        assert_eq!(store.experiment(&id).expect("row").state, state);
        assert_eq!(
            db.raw_count(&format!(
                "SELECT count(*) FROM experiments WHERE state = '{name}'"
            )),
            1
        );
    }
    for bad in ["Active", "running", "", "active "] {
        let err = bad.parse::<ExperimentState>().expect_err("invalid");
        let text = err.to_string();
        assert!(matches!(err, StoreError::InvalidState { .. }), "{bad}");
        assert!(text.contains("modify_reswap"), "lists valid states: {text}");
    }
    // A state written behind the store's back is reported, not guessed at.
    db.raw_exec("UPDATE experiments SET state = 'bogus' WHERE eid = 'state'");
    let err = store.state(&id).expect_err("corrupt state");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("bogus"));
}

// ----- users and groups -----

fn users_groups_and_memberships(db: &TestDb) {
    let store = db.store();
    let alice = User {
        uid: "alice".into(),
        unix_uid: 10001,
        status: "active".into(),
        admin: false,
    };
    let root = User {
        uid: "admin1".into(),
        unix_uid: 10000,
        status: "active".into(),
        admin: true,
    };
    store.create_user(&alice).expect("alice");
    store.create_user(&root).expect("admin");
    assert!(matches!(
        store.create_user(&alice),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(store.user("alice").expect("get"), alice);
    assert_eq!(
        store.list_users().expect("list"),
        vec![root.clone(), alice.clone()]
    );
    assert!(matches!(
        store.user("nobody"),
        Err(StoreError::UserNotFound(_))
    ));

    let project = Group {
        pid: "testbed".into(),
        gid: "testbed".into(),
        unix_gid: 6000,
        unix_name: "testbed".into(),
    };
    let sub = Group {
        pid: "testbed".into(),
        gid: "students".into(),
        unix_gid: 6001,
        unix_name: "tb-students".into(),
    };
    store.create_group(&project).expect("project group");
    store.create_group(&sub).expect("subgroup");
    assert!(matches!(
        store.create_group(&sub),
        Err(StoreError::GroupExists { .. })
    ));
    assert_eq!(store.group("testbed", "students").expect("get"), sub);
    assert_eq!(
        store.list_groups().expect("list"),
        vec![sub.clone(), project.clone()]
    );

    let member = |gid: &str, trust: Trust| GroupMembership {
        uid: "alice".into(),
        pid: "testbed".into(),
        gid: gid.into(),
        trust,
    };
    store
        .add_member(&member("testbed", Trust::User))
        .expect("join project");
    store
        .add_member(&member("students", Trust::LocalRoot))
        .expect("join subgroup");
    store
        .add_member(&member("testbed", Trust::GroupRoot))
        .expect("promote");
    assert_eq!(
        store.memberships("alice").expect("memberships"),
        vec![
            member("testbed", Trust::GroupRoot),
            member("students", Trust::LocalRoot)
        ],
        "oldest approval first; promotion keeps the original approval"
    );
    assert_eq!(
        store.group_members("testbed", "students").expect("members"),
        vec![member("students", Trust::LocalRoot)]
    );

    let stranger = GroupMembership {
        uid: "mallory".into(),
        ..member("testbed", Trust::User)
    };
    assert!(matches!(
        store.add_member(&stranger),
        Err(StoreError::UserNotFound(_))
    ));
    let nowhere = member("ghosts", Trust::User);
    assert!(matches!(
        store.add_member(&nowhere),
        Err(StoreError::GroupNotFound { .. })
    ));

    store
        .remove_member("alice", "testbed", "students")
        .expect("leave");
    assert!(matches!(
        store.remove_member("alice", "testbed", "students"),
        Err(StoreError::MembershipNotFound { .. })
    ));
    store
        .delete_group("testbed", "students")
        .expect("delete group");
    assert!(matches!(
        store.group("testbed", "students"),
        Err(StoreError::GroupNotFound { .. })
    ));
    store.delete_user("alice").expect("delete user");
    assert!(
        store
            .group_members("testbed", "testbed")
            .expect("members")
            .is_empty(),
        "memberships go with the user"
    );
    assert!("superuser".parse::<Trust>().is_err());
    assert_eq!(
        "project_root".parse::<Trust>().expect("trust"),
        Trust::ProjectRoot
    );
}

// ----- event keys -----

#[test]
fn event_key_file_is_exact_and_0640() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = generate_event_key();
    assert_eq!(key.len(), 32);
    assert!(
        key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{key}"
    );

    let written = write_event_key_file(dir.path(), &key).expect("write");
    assert_eq!(written, dir.path().join("tbdata/eventkey"));
    assert_eq!(
        std::fs::read(&written).expect("read"),
        key.as_bytes(),
        "no trailing newline"
    );
    let mode = std::fs::metadata(&written)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o640);

    // Replacing a key file that had a wider mode leaves exactly 0640 and
    // no temporary files behind.
    std::fs::set_permissions(&written, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let second = generate_event_key();
    assert_ne!(second, key);
    write_event_key_file(dir.path(), &second).expect("rewrite");
    assert_eq!(std::fs::read_to_string(&written).expect("read"), second);
    let mode = std::fs::metadata(&written)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tbdata"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("eventkey")]);

    // A key that would corrupt the file is refused before anything is written.
    let fresh = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        write_event_key_file(fresh.path(), "abc\n"),
        Err(StoreError::InvalidEventKey(_))
    ));
    assert!(!fresh.path().join("tbdata").exists());
}

// ----- concurrency -----

#[test]
fn readers_are_not_blocked_by_an_open_write() {
    let (_dir, path, store) = temp_store();
    let id = exp("wal");
    create(&store, &id);
    store.load_virtual(&id, &full_virtual()).expect("load");

    // Another process (here: a raw connection) holds the write lock.
    let mut writer = Connection::open(&path).expect("raw writer");
    let tx = writer
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("write lock");
    tx.execute("DELETE FROM eventlist WHERE eid = 'wal'", [])
        .expect("uncommitted delete");

    // The scheduler's reads still see the last committed state.
    let reader = SqliteStore::open(&path).expect("reader");
    assert_eq!(reader.events(&id).expect("events").len(), 5);

    // A second writer waits for the busy timeout, then says why it failed.
    reader
        .set_busy_timeout(Duration::from_millis(200))
        .expect("timeout");
    let err = reader
        .set_state(&id, ExperimentState::Active)
        .expect_err("busy");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    tx.rollback().expect("release");
    reader
        .set_state(&id, ExperimentState::Active)
        .expect("free again");
}

#[test]
fn one_store_is_shared_between_threads() {
    let (_dir, _path, store) = temp_store();
    let store: Arc<dyn ExperimentStore> = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let id = exp(&format!("t{n}"));
                create(store.as_ref(), &id);
                store.load_virtual(&id, &full_virtual()).expect("load");
                store.events(&id).expect("events").len()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().expect("thread"), 5);
    }
    assert_eq!(store.list_experiments().expect("list").len(), 4);
}

/// Every column list the store reads and writes exists in the schema the
/// backend's migrations built (a query naming a missing column fails).
fn every_table_mapping_matches_the_schema(db: &TestDb) {
    use tbevents_store::tables::{
        event_groups, eventlist, experiments, group_membership, groups, inventory, reserved, users,
        virt_agents, virt_lans, virt_nodes, virt_programs, virt_trafgens,
    };
    let _store = db.store();
    for table in [
        experiments::TABLE,
        eventlist::TABLE,
        eventlist::SCHEDULE,
        virt_agents::TABLE,
        event_groups::TABLE,
        virt_nodes::TABLE,
        virt_lans::TABLE,
        virt_programs::TABLE,
        virt_trafgens::TABLE,
        reserved::TABLE,
        inventory::NODES,
        inventory::NODE_TYPES,
        inventory::INTERFACES,
        users::TABLE,
        groups::TABLE,
        group_membership::TABLE,
    ] {
        let sql = format!(
            "SELECT count(*) FROM (SELECT {} FROM {}) AS t",
            table.select_list(),
            table.name
        );
        assert_eq!(db.raw_count(&sql), 0, "{}", table.name);
    }
}
