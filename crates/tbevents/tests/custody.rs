//! Every operator command against MariaDB, and the key custody model end
//! to end: real `tbevents`, real MariaDB, real `eventd`, real `event-sched`
//! running as a real unprivileged user created for the test.
//!
//! The scheduler reads the store in the two ways a site runs it: straight
//! from MariaDB through the least-privilege account `tbevents mysql-grants`
//! describes, and from the per-experiment snapshot `tbevents snapshot`
//! writes. Either way it reads only its own experiment's key file.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use tbevents_event::{AddressTuple, EventHandle};
use tbevents_testkit::{Proc, Router, ScratchDatabase, bin_path, mysql_admin};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn tbevents(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tbevents"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("TBEVENTS_STORE")
        .output()
        .expect("run tbevents")
}

fn ok(store: &str, args: &[&str]) -> String {
    let out = tbevents(store, args);
    assert!(
        out.status.success(),
        "tbevents {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(argv: &[&str]) {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
    assert!(status.success(), "{argv:?} failed");
}

/// Two experiment groups, a user in the first only, and a scheduler
/// database account; all removed on drop.
struct Site {
    group_a: String,
    group_b: String,
    user_a: String,
    db_user: String,
}

impl Site {
    fn create() -> Site {
        let tag = std::process::id();
        let site = Site {
            group_a: format!("tbe{tag}a"),
            group_b: format!("tbe{tag}b"),
            user_a: format!("tbe{tag}u"),
            db_user: format!("tbe{tag}sched"),
        };
        run(&["groupadd", &site.group_a]);
        run(&["groupadd", &site.group_b]);
        run(&["useradd", "-M", "-N", "-G", &site.group_a, &site.user_a]);
        site
    }

    /// `event-sched` as `user_a` with `group_a` and no other privilege.
    fn scheduler(&self, router: &Router, store: &str, key: &Path, expt: &str) -> Proc {
        let (pid, eid) = expt.split_once('/').expect("pid/eid");
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.user_a))
            .arg(format!("--regid={}", self.group_a))
            .arg("--init-groups")
            .arg(bin_path("event-sched"))
            .args(["-s", "127.0.0.1", "-p"])
            .arg(router.port.to_string())
            .arg("-k")
            .arg(key)
            .args([
                "--store",
                store,
                "--start-delay",
                "0",
                "--poll-interval",
                "0.1",
            ])
            .args(["--", pid, eid]);
        Proc::spawn("event-sched", cmd)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user_a).status();
        for group in [&self.group_a, &self.group_b] {
            let _ = Command::new("groupdel").arg(group).status();
        }
        let _ = mysql_admin().query_drop(format!(
            "DROP USER IF EXISTS '{}'@'127.0.0.1'",
            self.db_user
        ));
        let _ = mysql_admin().query_drop(format!(
            "DROP USER IF EXISTS '{}'@'localhost'",
            self.db_user
        ));
    }
}

/// Waits for the demo's `cbr0 start` (at +3 s) to arrive, through a
/// subscription keyed with the experiment's key (so it was signed with it).
async fn expect_demo_events(router: &Router, key: &Path, sched: &mut Proc) {
    let handle = EventHandle::register_with_keyfile(&router.uri(), key)
        .await
        .expect("register");
    let mut sub = handle
        .subscribe(&AddressTuple::new().expt("testbed/web"))
        .await
        .expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(o, e): &(String, String)| o == "cbr0" && e == "START")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "cbr0 START never fired; saw {seen:?}\n--- scheduler\n{}",
            sched.stderr()
        );
        if let Ok(Some(event)) = tokio::time::timeout(left, sub.recv()).await {
            let a = event.attributes();
            seen.push((
                a.get_str("OBJNAME").unwrap_or_default().to_owned(),
                a.get_str("EVENTTYPE").unwrap_or_default().to_owned(),
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_experiment_runs_with_least_privilege_and_its_own_key_only() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot create users (CI runs as root)");
        return;
    }
    let db = ScratchDatabase::create();
    let site = Site::create();
    let dir = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    for sub in ["", "web", "other"] {
        let path = dir.path().join(sub);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let ns = examples().join("demo.ns");
    let ns = ns.to_str().expect("utf-8");

    // Every operator command against MariaDB.
    for (expt, group, path) in [
        ("testbed/web", &site.group_a, dir.path().join("web")),
        ("testbed/other", &site.group_b, dir.path().join("other")),
    ] {
        let out = ok(
            &db.url,
            &[
                "create",
                "-e",
                expt,
                "--gid",
                group,
                "--path",
                path.to_str().expect("utf-8"),
                ns,
            ],
        );
        assert!(out.contains("13 static events"), "{out}");
        ok(&db.url, &["swapin", "-e", expt]);
    }
    assert!(ok(&db.url, &["list"]).contains("testbed/other"));
    assert_eq!(
        ok(&db.url, &["state", "-e", "testbed/web"]).trim(),
        "active"
    );
    assert!(ok(&db.url, &["agents", "-e", "testbed/web"]).contains("cbr0"));
    assert!(ok(&db.url, &["events", "-e", "testbed/web"]).contains("MODIFY"));
    let key_a = dir.path().join("web/tbdata/eventkey");
    let key_b = dir.path().join("other/tbdata/eventkey");

    // Keys stay out of the store unless asked for.
    let stored: Vec<Option<String>> = db
        .connect()
        .query("SELECT eventkey FROM experiments")
        .expect("query");
    assert_eq!(stored, vec![None, None], "no key in the store by default");

    // The scheduler's account, as `tbevents mysql-grants` prints it.
    let grants = ok(
        &db.url,
        &[
            "mysql-grants",
            "--user",
            &site.db_user,
            "--host",
            "127.0.0.1",
            "--password",
            "s3cret",
            "--database",
            &db.name,
        ],
    );
    let mut admin = mysql_admin();
    for statement in grants.split(';').filter(|s| !s.trim().is_empty()) {
        admin
            .query_drop(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let sched_url = format!("mysql://{}:s3cret@127.0.0.1:3306/{}", site.db_user, db.name);
    let mut limited = mysql::Conn::new(mysql::Opts::from_url(&sched_url).expect("url"))
        .expect("the scheduler account connects");
    assert!(
        limited
            .query_drop("SELECT eventkey FROM experiments")
            .is_err(),
        "the scheduler account cannot read keys"
    );
    assert!(
        limited.query_drop("DELETE FROM eventlist").is_err(),
        "the scheduler account cannot write"
    );
    assert!(
        limited.query_drop("SELECT * FROM users").is_err(),
        "nor read users"
    );

    let router = Router::start(&[]);

    // A scheduler for A may not read B's key.
    let mut wrong = site.scheduler(&router, &sched_url, &key_b, "testbed/other");
    let status = wrong.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        wrong.stderr().contains("Permission denied"),
        "{}",
        wrong.stderr()
    );

    // Straight from MariaDB, through the restricted account.
    let mut sched = site.scheduler(&router, &sched_url, &key_a, "testbed/web");
    expect_demo_events(&router, &key_a, &mut sched).await;
    sched.kill();

    // From the experiment's snapshot.
    let snapshot = dir.path().join("web.db");
    ok(
        &db.url,
        &[
            "snapshot",
            "-e",
            "testbed/web",
            "--to",
            snapshot.to_str().expect("utf-8"),
        ],
    );
    let mut sched = site.scheduler(
        &router,
        &format!("sqlite:{}", snapshot.display()),
        &key_a,
        "testbed/web",
    );
    expect_demo_events(&router, &key_a, &mut sched).await;
    sched.kill();

    // Delete and swapout work too.
    ok(&db.url, &["swapout", "-e", "testbed/other"]);
    ok(&db.url, &["delete", "-e", "testbed/other"]);
    assert!(!ok(&db.url, &["list"]).contains("testbed/other"));
}

#[test]
fn an_unreachable_database_server_is_named_by_the_scheduler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("eventkey");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").expect("key");
    let mut cmd = Command::new(bin_path("event-sched"));
    cmd.args(["-s", "127.0.0.1", "-p", "1", "-k"])
        .arg(&key)
        .args([
            "--store",
            "mysql://sched@127.0.0.1:1/tbdb",
            "--",
            "testbed",
            "web",
        ]);
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt;
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("lookup")
            .expect("nobody");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        cmd.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    let output = cmd.output().expect("run event-sched");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the database server 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn import_moves_a_site_to_mariadb_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite:{}", dir.path().join("site.db").display());
    let back = format!("sqlite:{}", dir.path().join("back.db").display());
    let db = ScratchDatabase::create();
    let ns = examples().join("demo.ns");
    ok(
        &sqlite,
        &[
            "create",
            "-e",
            "testbed/web",
            "--store-key",
            "--path",
            dir.path().join("web").to_str().expect("utf-8"),
            ns.to_str().expect("utf-8"),
        ],
    );
    ok(&sqlite, &["swapin", "-e", "testbed/web"]);
    let out = ok(&sqlite, &["import", "--from", &sqlite, "--to", &db.url]);
    assert!(
        out.contains("imported 1 experiments (13 static events)"),
        "{out}"
    );
    let out = ok(&db.url, &["import", "--from", &db.url, "--to", &back]);
    assert!(
        out.contains("imported 1 experiments (13 static events)"),
        "{out}"
    );
    for view in [
        ["events", "-e", "testbed/web"],
        ["agents", "-e", "testbed/web"],
    ] {
        let original = ok(&sqlite, &view);
        assert_eq!(ok(&db.url, &view), original, "{view:?} in MariaDB");
        assert_eq!(ok(&back, &view), original, "{view:?} back in SQLite");
    }
    // Into a store that is not empty: refused.
    let out = tbevents(&back, &["import", "--from", &sqlite, "--to", &back]);
    assert!(!out.status.success());
}

/// A TCP relay to the MariaDB server that the test can cut and restore,
/// standing in for a database server that goes away mid-run.
struct CuttableLink {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableLink {
    /// Starts relaying 127.0.0.1:`port` (0: any free port) to the server.
    async fn start(port: u16) -> CuttableLink {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => break listener,
                Err(err) => {
                    assert!(Instant::now() < deadline, "rebinding port {port}: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let port = listener.local_addr().expect("addr").port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = std::sync::Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:3306").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                shared.lock().expect("lock").push(relay);
            }
        });
        tasks.lock().expect("lock").push(accept);
        CuttableLink { port, tasks }
    }

    /// Closes the listener and every relayed connection.
    fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_rides_out_a_database_server_that_goes_away() {
    let db = ScratchDatabase::create();
    let dir = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exp = dir.path().join("web");
    let ns = examples().join("demo.ns");
    ok(
        &db.url,
        &[
            "create",
            "-e",
            "testbed/web",
            "--path",
            exp.to_str().expect("utf-8"),
            ns.to_str().expect("utf-8"),
        ],
    );
    ok(&db.url, &["swapin", "-e", "testbed/web"]);
    ok(&db.url, &["state", "-e", "testbed/web", "swapped"]);
    let key = exp.join("tbdata/eventkey");
    for path in [exp.clone(), exp.join("tbdata")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let link = CuttableLink::start(0).await;
    let server = format!("127.0.0.1:{}", link.port);
    let router = Router::start(&[]);
    let mut cmd = Command::new(bin_path("event-sched"));
    cmd.args(["-s", "127.0.0.1", "-p"])
        .arg(router.port.to_string())
        .arg("-k")
        .arg(&key)
        .arg("--store")
        // The driver would switch a loopback connection to the server's
        // Unix socket, around the link this test cuts.
        .arg(format!(
            "mysql://root@{server}/{}?prefer_socket=false",
            db.name
        ))
        .args([
            "--start-delay",
            "0",
            "--poll-interval",
            "0.1",
            "--",
            "testbed",
            "web",
        ]);
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt;
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("lookup")
            .expect("nobody");
        cmd.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    let mut sched = Proc::spawn("event-sched", cmd);
    sched.wait_for_output(
        "waiting for testbed/web to become active",
        Duration::from_secs(30),
    );

    // The server goes away while the scheduler waits: it says which server
    // it cannot reach and keeps waiting.
    link.cut();
    sched.wait_for_output(
        &format!("cannot reach the database server {server}"),
        Duration::from_secs(30),
    );
    assert!(sched.try_wait().is_none(), "still running");
    // It comes back; the scheduler reconnects and loads when active.
    let link = CuttableLink::start(link.port).await;
    ok(&db.url, &["state", "-e", "testbed/web", "active"]);

    let handle = EventHandle::register_with_keyfile(&router.uri(), &key)
        .await
        .expect("register");
    let mut sub = handle
        .subscribe(&AddressTuple::new().expt("testbed/web"))
        .await
        .expect("subscribe");
    wait_for(&mut sub, "cbr0", "START").await;
    // Gone again after the load: what was loaded keeps firing (the access
    // link's delay change is due at +6 s, its loss change at +8 s).
    link.cut();
    wait_for(&mut sub, "access", "MODIFY").await;
    wait_for(&mut sub, "access", "MODIFY").await;
    assert!(
        sched.try_wait().is_none(),
        "still running after losing the server"
    );
    sched.kill();
}

/// Receives events until `objname` `eventtype` arrives (30 s at most).
async fn wait_for(sub: &mut tbevents_event::EventSubscription, objname: &str, eventtype: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{objname} {eventtype} never fired");
        if let Ok(Some(event)) = tokio::time::timeout(left, sub.recv()).await {
            let a = event.attributes();
            if a.get_str("OBJNAME") == Some(objname) && a.get_str("EVENTTYPE") == Some(eventtype) {
                return;
            }
        }
    }
}
