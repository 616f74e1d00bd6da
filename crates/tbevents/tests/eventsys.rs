//! `tbevents swapin`/`swapout`/`state`/`eventsys` with scheduler control
//! installed: run as root with a test-made user, a real `eventd` and real
//! `event-sched` processes. Skips (saying why) when not root.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tbevents_testkit::{Router, TestUser};

struct Site {
    user: TestUser,
    dir: tempfile::TempDir,
    store: String,
    config: PathBuf,
    id: String,
    _router: Router,
}

impl Site {
    fn new() -> Site {
        let user = TestUser::create("cli");
        let router = Router::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let store_dir = dir.path().join("store");
        std::fs::create_dir(&store_dir).unwrap();
        let store = format!("sqlite:{}", store_dir.join("tb.db").display());
        let config = dir.path().join("control.toml");
        std::fs::write(
            &config,
            format!(
                "run_dir = {:?}\nlog_dir = {:?}\nsnapshot_dir = {:?}\nevent_sched = {:?}\nstore = {store:?}\n\
                 server = \"127.0.0.1\"\nport = {}\nscheduler_args = [\"--start-delay\", \"0.2\", \
                 \"--poll-interval\", \"0.1\"]\n",
                dir.path().join("run"),
                dir.path().join("log"),
                dir.path().join("snapshots"),
                tbevents_testkit::bin_path("event-sched"),
                router.port
            ),
        )
        .unwrap();
        let site = Site {
            id: format!("p{}/web", std::process::id()),
            user,
            dir,
            store,
            config,
            _router: router,
        };
        let exp_dir = site.dir.path().join("exp");
        let ns = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.ns");
        let name = site.user.name.clone();
        site.ok(&[
            "create",
            "-e",
            &site.id,
            "--uid",
            &name,
            "--gid",
            &name,
            "--path",
            exp_dir.to_str().unwrap(),
            ns.to_str().unwrap(),
        ]);
        // The scheduler runs as the user: it reads the key, and a snapshot
        // instead of the store (which stays root's).
        let owned = [
            exp_dir.clone(),
            exp_dir.join("tbdata"),
            exp_dir.join("tbdata/eventkey"),
        ];
        for path in owned {
            std::os::unix::fs::chown(&path, Some(site.user.uid), Some(site.user.gid)).unwrap();
        }
        site
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = tbevents_testkit::run_to_text(
            Command::new(env!("CARGO_BIN_EXE_tbevents"))
                .arg("--store")
                .arg(&self.store)
                .arg("--control-config")
                .arg(&self.config)
                .args(args),
        );
        assert!(ok, "tbevents {args:?} failed: {text}");
        text
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_tbevents"))
            .arg("--store")
            .arg(&self.store)
            .arg("--control-config")
            .arg(&self.config)
            .args(["eventsys", "stop", "-e", &self.id])
            .output();
    }
}

/// True while `pid` is a live (not exited, not zombie) process: an
/// exited scheduler may stay a zombie until its new parent reaps it.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

fn running_pid(state: &str) -> u32 {
    let at = state
        .find("running (pid ")
        .unwrap_or_else(|| panic!("not running: {state}"));
    state[at + 13..]
        .split(')')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

#[test]
fn swapin_starts_the_scheduler_state_shows_it_swapout_stops_it() {
    if let Some(reason) = TestUser::skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let site = Site::new();
    let id = site.id.as_str();
    let out = site.ok(&["swapin", "-e", id]);
    assert!(out.contains("started the event scheduler"), "{out}");
    let state = site.ok(&["state", "-e", id]);
    assert_eq!(state.lines().next(), Some("active"), "{state}");
    let first = running_pid(&state);
    let status = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    assert!(
        status.contains(&format!("Uid:\t{}\t", site.user.uid)),
        "runs as the swapper: {status}"
    );

    let out = site.ok(&["eventsys", "replay", "-e", id]);
    assert!(out.contains("stopped the event scheduler"), "{out}");
    let second = running_pid(&site.ok(&["eventsys", "status", "-e", id]));
    assert_ne!(first, second);
    assert!(!alive(first));

    let out = site.ok(&["swapout", "-e", id]);
    assert!(out.contains(&format!("(pid {second})")), "{out}");
    assert!(!alive(second));
    let state = site.ok(&["state", "-e", id]);
    assert!(
        state.starts_with("swapped\n") && state.contains("not running"),
        "{state}"
    );

    // Opting out at swap-in.
    let out = site.ok(&["swapin", "--no-eventsys", "-e", id]);
    assert!(!out.contains("started"), "{out}");
    assert!(site.ok(&["state", "-e", id]).contains("not running"));
    let out = site.ok(&["eventsys", "stop", "-e", id]);
    assert!(out.contains("was not running"), "{out}");
}
