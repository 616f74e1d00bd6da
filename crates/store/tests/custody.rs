//! Key custody, snapshots, the importer and the read-only view, on real
//! files, a real MariaDB and real Unix users.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use tbevents_store::{
    ExperimentId, ExperimentState, ExperimentStore, Group, GroupMembership, NewExperiment,
    NodeAssignment, StaticEvent, StoreError, Trust, User, VirtAgent, VirtNode, VirtualExperiment,
    import_store, open, open_read_only, write_event_key_file_for_group, write_experiment_snapshot,
};

mod common;
use common::{Kind, TestDb};

both_backends!(
    snapshot_holds_only_its_experiment_and_no_key,
    read_only_stores_refuse_writes,
    import_refuses_a_store_that_is_not_empty,
);

fn virt(tag: &str) -> VirtualExperiment {
    VirtualExperiment {
        nodes: vec![VirtNode {
            vname: format!("{tag}node"),
            ..VirtNode::default()
        }],
        agents: vec![
            VirtAgent {
                vname: format!("{tag}prog"),
                vnode: format!("{tag}node"),
                objtype: "PROGRAM".into(),
            },
            VirtAgent {
                vname: "ns".into(),
                vnode: "*".into(),
                objtype: "SIMULATOR".into(),
            },
        ],
        events: (0..5)
            .map(|i| StaticEvent {
                time: f64::from(i),
                vname: format!("{tag}prog"),
                objtype: "PROGRAM".into(),
                eventtype: "START".into(),
                arguments: format!("COMMAND='echo {tag}{i}'"),
                ..StaticEvent::default()
            })
            .collect(),
        simulator_name: "ns".into(),
        ..VirtualExperiment::default()
    }
}

/// Fills a store with two experiments (keys in the store), users, groups.
fn populate(store: &dyn ExperimentStore) -> (ExperimentId, ExperimentId) {
    let a = ExperimentId::new("proja", "expa");
    let b = ExperimentId::new("projb", "expb");
    for (id, tag, ip) in [(&a, "a", "10.9.0.1"), (&b, "b", "10.9.0.2")] {
        store
            .create_experiment(&NewExperiment::new(
                id.clone(),
                id.pid.clone(),
                "alice",
                format!("/proj/{}/exp/{}", id.pid, id.eid),
            ))
            .expect("create");
        store.load_virtual(id, &virt(tag)).expect("load");
        store
            .record_swapin(
                id,
                &[NodeAssignment {
                    vnode: format!("{tag}node"),
                    node_id: format!("pc{tag}"),
                    control_ip: ip.into(),
                }],
            )
            .expect("swapin");
        store
            .set_event_key(id, &format!("{tag}secretkey{tag}"))
            .expect("key");
        store.set_state(id, ExperimentState::Active).expect("state");
    }
    for uid in ["alice", "bob"] {
        store
            .create_user(&User {
                uid: uid.into(),
                unix_uid: 5000,
                status: "active".into(),
                admin: uid == "alice",
            })
            .expect("user");
    }
    for (pid, gid) in [("proja", "proja"), ("projb", "projb")] {
        store
            .create_group(&Group {
                pid: pid.into(),
                gid: gid.into(),
                unix_gid: 6000,
                unix_name: gid.into(),
            })
            .expect("group");
    }
    store
        .add_member(&GroupMembership {
            uid: "bob".into(),
            pid: "projb".into(),
            gid: "projb".into(),
            trust: Trust::LocalRoot,
        })
        .expect("member");
    (a, b)
}

fn snapshot_holds_only_its_experiment_and_no_key(db: &TestDb) {
    let store = db.store();
    let (a, b) = populate(&*store);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("a.db");
    // The groups row's Unix gid (6000) is used when run as root.
    write_experiment_snapshot(&*store, &a, &dest).expect("snapshot");
    let meta = std::fs::metadata(&dest).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 6000),
            "root:<experiment group>"
        );
    }
    let snap = open_read_only(&format!("sqlite:{}", dest.display())).expect("open snapshot");
    let listed = snap.list_experiments().expect("list");
    assert_eq!(listed.len(), 1, "only experiment A");
    assert_eq!(listed[0].id, a);
    assert_eq!(listed[0].eventkey, None, "no key in a snapshot");
    assert_eq!(listed[0].state, ExperimentState::Active);
    assert!(matches!(
        snap.events(&b),
        Err(StoreError::ExperimentNotFound(_))
    ));
    assert!(snap.list_users().expect("users").is_empty());
    assert!(snap.list_groups().expect("groups").is_empty());
    assert_eq!(snap.events(&a).expect("e"), store.events(&a).expect("e"));
    assert_eq!(snap.agents(&a).expect("a"), store.agents(&a).expect("a"));
    assert_eq!(snap.groups(&a).expect("g"), store.groups(&a).expect("g"));
    assert_eq!(
        snap.virtual_experiment(&a).expect("v"),
        store.virtual_experiment(&a).expect("v")
    );
    // No other experiment's text anywhere in the file.
    let bytes = std::fs::read(&dest).expect("read");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("secretkey"), "no key");
    assert!(
        !text.contains("expb") && !text.contains("bprog"),
        "no B rows"
    );
    // Rewriting replaces it in place.
    write_experiment_snapshot(&*store, &a, &dest).expect("again");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

fn read_only_stores_refuse_writes(db: &TestDb) {
    let store = db.store();
    let (a, _) = populate(&*store);
    drop(store);
    let reader = open_read_only(&db.url).expect("read-only");
    assert_eq!(reader.state(&a).expect("state"), ExperimentState::Active);
    assert_eq!(reader.events(&a).expect("events").len(), 5);
    let err = reader
        .set_state(&a, ExperimentState::Swapped)
        .expect_err("refused");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(reader.state(&a).expect("state"), ExperimentState::Active);
}

fn import_refuses_a_store_that_is_not_empty(db: &TestDb) {
    let source = db.store();
    populate(&*source);
    let target = open("sqlite::memory:").expect("memory");
    target
        .create_user(&User {
            uid: "carol".into(),
            unix_uid: 1,
            status: "active".into(),
            admin: false,
        })
        .expect("user");
    let err = import_store(&*source, &*target).expect_err("refused");
    assert!(err.to_string().contains("empty store"), "{err}");
}

/// Everything a store holds, in comparable form (idx and timestamps are
/// stamped by each store and left out).
fn contents(store: &dyn ExperimentStore) -> String {
    let mut out = String::new();
    for mut e in store.list_experiments().expect("list") {
        let virt = store.virtual_experiment(&e.id).expect("virt");
        let mapping = store.physical_mapping(&e.id).expect("map");
        let agents = store.agents(&e.id).expect("agents");
        e.idx = 0;
        e.expt_created = String::new();
        out += &format!("{e:?}\n{virt:?}\n{mapping:?}\n{agents:?}\n");
    }
    for user in store.list_users().expect("users") {
        out += &format!("{user:?} {:?}\n", store.memberships(&user.uid).expect("m"));
    }
    out += &format!("{:?}\n", store.list_groups().expect("groups"));
    out
}

#[test]
fn import_copies_everything_sqlite_to_mariadb_and_back() {
    let sqlite = TestDb::new(Kind::Sqlite);
    let mariadb = TestDb::new(Kind::Mariadb);
    let back = TestDb::new(Kind::Sqlite);
    let source = sqlite.store();
    populate(&*source);
    let expected = contents(&*source);
    assert!(expected.contains("asecretkeya"), "keys are in this source");

    let summary = import_store(&*source, &*mariadb.store()).expect("to mariadb");
    assert_eq!(
        (
            summary.experiments,
            summary.events,
            summary.users,
            summary.groups,
            summary.memberships
        ),
        (2, 10, 2, 2, 1)
    );
    assert_eq!(contents(&*mariadb.store()), expected, "sqlite -> mariadb");
    import_store(&*mariadb.store(), &*back.store()).expect("back to sqlite");
    assert_eq!(contents(&*back.store()), expected, "mariadb -> sqlite");
}

#[test]
fn new_sqlite_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/dir/tbevents.db");
    let store = open(&format!("sqlite:{}", path.display())).expect("open");
    populate(&*store);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "database file");
    assert_eq!(
        mode(path.parent().expect("dir")),
        0o700,
        "directory it made"
    );
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            assert_eq!(mode(&side) & 0o077, 0, "{suffix} is private too");
        }
    }
}

#[test]
fn an_unreachable_server_is_named() {
    // Port 1 on loopback: nothing listens there.
    let err = open("mysql://root@127.0.0.1:1/tbdb").expect_err("unreachable");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(text.contains("127.0.0.1:1"), "names the server: {text}");
    assert!(text.contains("cannot reach"), "{text}");
    let err = open_read_only("mysql://root@127.0.0.1:1/tbdb").expect_err("unreachable");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[test]
fn mysql_urls_are_checked() {
    for bad in [
        "mysql://root@127.0.0.1:3306",
        "mysql://root@127.0.0.1:3306/bad-name",
    ] {
        let err = open(bad).expect_err("refused");
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{bad}: {err:?}"
        );
    }
}

// ----- real Unix users -----

/// A Unix group and two users made for one test, removed on drop: `member`
/// is in the group, `outsider` is not.
struct Accounts {
    group: String,
    member: String,
    outsider: String,
}

impl Accounts {
    fn create() -> Option<Accounts> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: cannot create users (CI runs as root)");
            return None;
        }
        let tag = std::process::id();
        let accounts = Accounts {
            group: format!("tbe{tag}g"),
            member: format!("tbe{tag}m"),
            outsider: format!("tbe{tag}o"),
        };
        run(&["groupadd", &accounts.group]);
        run(&[
            "useradd",
            "-M",
            "-N",
            "-G",
            &accounts.group,
            &accounts.member,
        ]);
        run(&["useradd", "-M", "-N", &accounts.outsider]);
        Some(accounts)
    }

    fn gid(&self) -> u32 {
        nix::unistd::Group::from_name(&self.group)
            .expect("lookup")
            .expect("group exists")
            .gid
            .as_raw()
    }

    /// Whether `user` (with their own groups) can read `path`.
    fn can_read(&self, user: &str, path: &std::path::Path) -> bool {
        Command::new("setpriv")
            .arg(format!("--reuid={user}"))
            .arg("--regid=nogroup")
            .arg("--init-groups")
            .arg("cat")
            .arg(path)
            .output()
            .expect("run setpriv")
            .status
            .success()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in [&self.member, &self.outsider] {
            let _ = Command::new("userdel").arg(user).status();
        }
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

fn run(argv: &[&str]) {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
    assert!(status.success(), "{argv:?} failed");
}

#[test]
fn only_the_experiments_group_reads_its_key_and_its_snapshot() {
    let Some(accounts) = Accounts::create() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let key = write_event_key_file_for_group(
        &dir.path().join("exp"),
        "0123456789abcdef",
        Some(accounts.gid()),
    )
    .expect("key file");
    let meta = std::fs::metadata(&key).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), accounts.gid());
    // The experiment directory must be traversable for the test users.
    std::fs::set_permissions(
        dir.path().join("exp"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    assert!(
        accounts.can_read(&accounts.member, &key),
        "a member reads the key"
    );
    assert!(
        !accounts.can_read(&accounts.outsider, &key),
        "an outsider cannot"
    );

    let store = open("sqlite::memory:").expect("store");
    let (a, _) = populate(&*store);
    store.delete_group("proja", "proja").expect("replace group");
    store
        .create_group(&Group {
            pid: "proja".into(),
            gid: "proja".into(),
            unix_gid: accounts.gid(),
            unix_name: "proja".into(),
        })
        .expect("group");
    let snapshot = dir.path().join("a.db");
    write_experiment_snapshot(&*store, &a, &snapshot).expect("snapshot");
    assert!(
        accounts.can_read(&accounts.member, &snapshot),
        "a member reads the rows"
    );
    assert!(
        !accounts.can_read(&accounts.outsider, &snapshot),
        "an outsider cannot"
    );
}
