//! Scheduler control as root with a real `eventd`, real `event-sched`
//! processes and an unprivileged user made for the test.
//!
//! Every test skips (saying why) when not run as root or when `useradd`
//! is missing. Each test has its own user (removed by a Drop guard), store,
//! run and log directories, and router.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tbevents_control::pidfile::{self, PidRecord};
use tbevents_control::{Control, ControlConfig, ControlError, Started, Status, Stopped};
use tbevents_store::{
    ExperimentId, ExperimentState, ExperimentStore, Group, GroupMembership, NewExperiment, Trust,
    User,
};
use tbevents_testkit::{Router, TestUser};

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<&'static str> {
    TestUser::skip_reason()
}

macro_rules! root_only {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// One experiment owned by a test user, with everything around it.
struct Lab {
    user: TestUser,
    dir: tempfile::TempDir,
    config: ControlConfig,
    store: Box<dyn ExperimentStore>,
    id: ExperimentId,
    _router: Router,
}

const NS: &str = "set ns [new Simulator]\nset n0 [$ns node]\n$ns at 100 \"$ns halt\"\n$ns run\n";

impl Lab {
    fn new(tag: &str) -> Lab {
        let user = TestUser::create(tag);
        let router = Router::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        // The scheduler reads a snapshot, never this store: it stays root's.
        let store_dir = dir.path().join("store");
        std::fs::create_dir(&store_dir).unwrap();
        let store_url = format!("sqlite:{}", store_dir.join("tb.db").display());
        let store = tbevents_store::open(&store_url).unwrap();
        let id = ExperimentId::new(format!("p{}", std::process::id()), format!("e{tag}"));
        let exp_dir = dir.path().join("exp");
        store
            .create_experiment(&NewExperiment::new(
                id.clone(),
                user.name.clone(),
                user.name.clone(),
                exp_dir.to_str().unwrap(),
            ))
            .unwrap();
        let virt = tbevents_ns::parse_str(NS, "t.ns").unwrap();
        store.load_virtual(&id, &virt).unwrap();
        let key = tbevents_store::generate_event_key();
        let key_path = tbevents_store::write_event_key_file(&exp_dir, &key).unwrap();
        store.set_event_key(&id, &key).unwrap();
        store.set_state(&id, ExperimentState::Active).unwrap();
        // The key: the experiment's group may read it (as `tbevents create`
        // leaves it).
        for path in [&exp_dir, &exp_dir.join("tbdata"), &key_path] {
            std::os::unix::fs::chown(path, Some(0), Some(user.gid)).unwrap();
        }
        std::fs::set_permissions(&exp_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        // The temporary directory itself must let the user through.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = ControlConfig {
            run_dir: dir.path().join("run/evsched"),
            log_dir: dir.path().join("log/evsched"),
            snapshot_dir: dir.path().join("lib/snapshots"),
            event_sched: tbevents_testkit::bin_path("event-sched"),
            store: Some(store_url),
            server: "127.0.0.1".to_owned(),
            port: Some(router.port),
            scheduler_args: vec![
                "--start-delay".into(),
                "0.2".into(),
                "--poll-interval".into(),
                "0.1".into(),
            ],
            stop_timeout: Duration::from_secs(5),
            ..ControlConfig::default()
        };
        Lab {
            user,
            dir,
            config,
            store,
            id,
            _router: router,
        }
    }

    fn control(&self) -> Control<'_> {
        Control::new(&self.config, &*self.store)
    }

    fn pid_path(&self) -> PathBuf {
        self.control().pid_path(&self.id)
    }

    /// Every live `event-sched` for this experiment.
    fn schedulers(&self) -> Vec<i32> {
        let tail = ["--".to_owned(), self.id.pid.clone(), self.id.eid.clone()];
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let pidfile::ProcState::Live { argv, .. } = pidfile::proc_state(pid)
                && argv.len() >= 3
                && argv[argv.len() - 3..] == tail
                && argv[0].ends_with("event-sched")
            {
                found.push(pid);
            }
        }
        found
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.control().stop(&self.id);
        for pid in self.schedulers() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proc_ids(pid: i32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line[field.len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn started_pid(result: Result<Started, ControlError>) -> i32 {
    match result {
        Ok(Started::Started { pid, .. }) => pid,
        other => panic!("expected a new scheduler, got {other:?}"),
    }
}

#[test]
fn start_stop_replay_run_one_scheduler_as_the_user() {
    root_only!();
    let lab = Lab::new("a");
    let control = lab.control();
    // Not swapped in: refused, nothing started.
    lab.store
        .set_state(&lab.id, ExperimentState::Swapped)
        .unwrap();
    let err = control.start(&lab.id).unwrap_err();
    assert!(matches!(err, ControlError::NotActive { .. }), "{err}");
    assert!(lab.schedulers().is_empty());
    lab.store
        .set_state(&lab.id, ExperimentState::Active)
        .unwrap();
    let pid = started_pid(control.start(&lab.id));

    // As the swapper, with its group, never root.
    assert_eq!(proc_ids(pid, "Uid:"), vec![lab.user.uid; 4]);
    assert_eq!(proc_ids(pid, "Gid:"), vec![lab.user.gid; 4]);
    assert!(!proc_ids(pid, "Groups:").contains(&0));
    // Really running: it loaded the experiment from its snapshot (not from
    // the site's store, which it cannot read) and armed time zero.
    let log = control.log_path(&lab.id);
    wait_until(
        "the scheduler to load its events",
        Duration::from_secs(20),
        || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("time zero")),
    );
    let snapshot = control.snapshot_path(&lab.id);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("sqlite:{}", snapshot.display())),
        "{text}"
    );
    let snap_meta = std::fs::metadata(&snapshot).unwrap();
    assert_eq!(
        (snap_meta.uid(), snap_meta.gid(), snap_meta.mode() & 0o777),
        (0, lab.user.gid, 0o640)
    );
    // The pid file: root's, 0644, in a root-only directory.
    let meta = std::fs::metadata(lab.pid_path()).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    let log_meta = std::fs::metadata(&log).unwrap();
    assert_eq!(
        (log_meta.uid(), log_meta.gid(), log_meta.mode() & 0o777),
        (0, lab.user.gid, 0o640)
    );
    assert_eq!(control.status(&lab.id).unwrap(), Status::Running { pid });

    // Start twice: still one scheduler.
    assert_eq!(
        control.start(&lab.id).unwrap(),
        Started::AlreadyRunning { pid }
    );
    assert_eq!(lab.schedulers(), vec![pid]);

    // Replay: the old one is gone, a new one runs, the old log is kept.
    let (stopped, started) = control.replay(&lab.id).unwrap();
    assert_eq!(stopped, Stopped::Stopped { pid, killed: false });
    let second = started_pid(Ok(started));
    assert_ne!(second, pid);
    assert_eq!(lab.schedulers(), vec![second]);
    let old = std::fs::read_to_string(format!("{}.old", log.display())).unwrap();
    assert!(old.contains("registered with the event router"), "{old}");

    // Stop, and stop again.
    assert_eq!(
        control.stop(&lab.id).unwrap(),
        Stopped::Stopped {
            pid: second,
            killed: false
        }
    );
    assert!(lab.schedulers().is_empty());
    assert!(!lab.pid_path().exists());
    assert!(!snapshot.exists(), "the snapshot goes with the scheduler");
    assert_eq!(control.stop(&lab.id).unwrap(), Stopped::NotRunning);
    assert_eq!(control.status(&lab.id).unwrap(), Status::NotRunning);
}

#[test]
fn concurrent_starts_give_one_scheduler() {
    root_only!();
    let lab = Lab::new("b");
    let results: Vec<Started> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| lab.control().start(&lab.id).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let new: Vec<i32> = results
        .iter()
        .filter_map(|r| match r {
            Started::Started { pid, .. } => Some(*pid),
            Started::AlreadyRunning { .. } => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "{results:?}");
    for r in &results {
        if let Started::AlreadyRunning { pid } = r {
            assert_eq!(*pid, new[0]);
        }
    }
    assert_eq!(lab.schedulers(), new);
}

#[test]
fn users_cannot_write_pid_files_and_forged_ones_kill_nothing() {
    root_only!();
    let lab = Lab::new("c");
    let control = lab.control();
    let pid = started_pid(control.start(&lab.id));

    // The user can neither rewrite the pid file nor add one.
    let pid_path = lab.pid_path();
    let forged = lab.config.run_dir.join("other.pid");
    let script = format!(
        "echo 1 > '{}' || echo 1 > '{}' && exit 0; exit 1",
        pid_path.display(),
        forged.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .uid(lab.user.uid)
        .gid(lab.user.gid)
        .status()
        .unwrap();
    assert!(!status.success(), "the user wrote into the run directory");
    assert_eq!(control.status(&lab.id).unwrap(), Status::Running { pid });

    // A pid file naming another process (a reused pid, with that process's
    // real start time): stop refuses and the process lives on.
    control.stop(&lab.id).unwrap();
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let victim_pid = victim.id() as i32;
    let record = PidRecord {
        pid: victim_pid,
        start_time: pidfile::start_time(victim_pid).unwrap(),
        experiment: lab.id.clone(),
    };
    pidfile::write(&pid_path, &record).unwrap();
    let err = control.stop(&lab.id).unwrap_err();
    assert!(matches!(err, ControlError::NotOurScheduler { .. }), "{err}");
    assert!(err.to_string().contains("not signalled"), "{err}");
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the other process was killed"
    );

    // The same with a stale start time.
    pidfile::write(
        &pid_path,
        &PidRecord {
            start_time: 1,
            ..record.clone()
        },
    )
    .unwrap();
    assert!(matches!(
        control.stop(&lab.id),
        Err(ControlError::NotOurScheduler { .. })
    ));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the other process was killed"
    );

    // A pid file someone else could write is never acted on.
    pidfile::write(&pid_path, &record).unwrap();
    std::os::unix::fs::chown(&pid_path, Some(lab.user.uid), None).unwrap();
    assert!(matches!(
        control.stop(&lab.id),
        Err(ControlError::Unsafe { .. })
    ));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the other process was killed"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();

    // A world-writable run directory is refused outright.
    std::fs::set_permissions(&lab.config.run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        control.start(&lab.id),
        Err(ControlError::Unsafe { .. })
    ));
    std::fs::set_permissions(&lab.config.run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_scheduler_that_dies_at_start_is_reported_with_its_log() {
    root_only!();
    let lab = Lab::new("d");
    let experiment = lab.store.experiment(&lab.id).unwrap();
    std::fs::remove_file(tbevents_store::event_key_path(Path::new(&experiment.path))).unwrap();
    let err = lab.control().start(&lab.id).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ControlError::DiedAtStart { .. }), "{text}");
    assert!(
        text.contains("key file"),
        "the log's last lines are quoted: {text}"
    );
    assert!(!lab.pid_path().exists());
    assert!(lab.schedulers().is_empty());
}

#[test]
fn only_members_and_root_may_control_a_scheduler() {
    root_only!();
    let lab = Lab::new("e");
    let control = lab.control();
    control.authorize(&lab.id, 0).unwrap();
    control.authorize(&lab.id, lab.user.uid).unwrap();
    let stranger = TestUser::create("f");
    let err = control.authorize(&lab.id, stranger.uid).unwrap_err();
    assert!(matches!(err, ControlError::NotPermitted { .. }), "{err}");

    // With Emulab's tables: a member of the experiment's group may, an
    // applicant (trust none) may not, and the scheduler gets the groups
    // the store maps.
    let store = &*lab.store;
    let experiment = store.experiment(&lab.id).unwrap();
    store
        .create_group(&Group {
            pid: lab.id.pid.clone(),
            gid: experiment.gid.clone(),
            unix_gid: lab.user.gid,
            unix_name: lab.user.name.clone(),
        })
        .unwrap();
    for (user, admin) in [(&lab.user, false), (&stranger, false)] {
        store
            .create_user(&User {
                uid: user.name.clone(),
                unix_uid: user.uid,
                status: "active".into(),
                admin,
            })
            .unwrap();
    }
    let membership = |trust| GroupMembership {
        uid: stranger.name.clone(),
        pid: lab.id.pid.clone(),
        gid: experiment.gid.clone(),
        trust,
    };
    store.add_member(&membership(Trust::None)).unwrap();
    assert!(control.authorize(&lab.id, stranger.uid).is_err());
    store
        .remove_member(&stranger.name, &lab.id.pid, &experiment.gid)
        .unwrap();
    store.add_member(&membership(Trust::User)).unwrap();
    control.authorize(&lab.id, stranger.uid).unwrap();
    let run_as = tbevents_control::account::run_as(store, &experiment).unwrap();
    assert_eq!((run_as.uid, run_as.gid), (lab.user.uid, lab.user.gid));
    assert_eq!(run_as.groups[0], lab.user.gid);
}

#[test]
fn the_proxy_program_starts_and_stops_a_detached_scheduler() {
    root_only!();
    let lab = Lab::new("g");
    let config_path = lab.dir.path().join("control.toml");
    let c = &lab.config;
    std::fs::write(
        &config_path,
        format!(
            "run_dir = {:?}\nlog_dir = {:?}\nsnapshot_dir = {:?}\nevent_sched = {:?}\nstore = {:?}\nserver = \"127.0.0.1\"\n\
             port = {}\nscheduler_args = [\"--start-delay\", \"0.2\"]\n",
            c.run_dir, c.log_dir, c.snapshot_dir, c.event_sched, c.store.as_deref().unwrap(), c.port.unwrap()
        ),
    )
    .unwrap();
    let proxy = tbevents_testkit::bin_path("tbevents-eventsys-proxy");
    let run = |op: &str| {
        tbevents_testkit::run_to_text(
            Command::new(&proxy)
                .arg("--config")
                .arg(&config_path)
                .args([op, "-e", &lab.id.to_string()])
                .env_remove("SUDO_UID"),
        )
    };
    let (ok, text) = run("start");
    assert!(ok && text.contains("started the event scheduler"), "{text}");
    let running = lab.schedulers();
    assert_eq!(running.len(), 1);
    // Detached: its own session, not our child.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", running[0])).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(
        fields[3],
        running[0].to_string(),
        "session id is its own pid"
    );
    assert_ne!(fields[1], std::process::id().to_string(), "re-parented");
    let (ok, text) = run("status");
    assert!(ok && text.contains("running (pid"), "{text}");
    let (ok, text) = run("stop");
    assert!(ok && text.contains("stopped the event scheduler"), "{text}");
    assert!(lab.schedulers().is_empty());
    let (ok, text) = run("stop");
    assert!(ok && text.contains("was not running"), "{text}");
}
