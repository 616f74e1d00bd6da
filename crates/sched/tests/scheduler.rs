//! event-sched end to end: real eventd, real event-sched (as `nobody` when
//! run as root), a real SQLite store, keyed subscribers and the real tevc.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::{EID, Fixture, N0_IP, N1_IP, PID, collect, due_of, unprivileged, wait_log};
use tbevents_event::AddressTuple;
use tbevents_store::{ExperimentState, StaticEvent};
use tbevents_testkit::signals;

fn summary(event: &tbevents_event::EventNotification) -> (String, String, String, String) {
    let a = event.attributes();
    let text = |n: &str| a.get_str(n).unwrap_or("").to_owned();
    (
        text("OBJNAME"),
        text("EVENTTYPE"),
        text("HOST"),
        text("OBJTYPE"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_events_reach_their_agents_signed_and_in_order() {
    let fx = Fixture::standard(ExperimentState::Active);
    let watcher = fx.handle().await;
    let mut all = watcher
        .subscribe(&AddressTuple::new().expt(fx.expt()))
        .await
        .unwrap();
    let (_h0, mut p0) = fx.agent(N0_IP, "p0").await;
    let (_h1, mut p1) = fx.agent(N1_IP, "p1").await;
    let (_hl, mut link) = fx.agent("*", "link0").await;
    let mut sched = fx.start_sched(0.5, &[]);

    let events = collect(&mut all, 7, Duration::from_secs(15)).await;
    let seen: Vec<(String, String, String, String)> = events.iter().map(summary).collect();
    let expect = |o: &str, e: &str, h: &str, t: &str| {
        (o.to_owned(), e.to_owned(), h.to_owned(), t.to_owned())
    };
    assert_eq!(
        seen,
        [
            expect("*", "START", "*", "TIME"),
            expect("p0", "START", N0_IP, "PROGRAM"),
            expect("link0", "DOWN", "*", "LINK"),
            expect("p1", "START", N1_IP, "PROGRAM"),
            expect("link0", "UP", "*", "LINK"),
            expect("p0", "STOP", N0_IP, "PROGRAM"),
            expect("p1", "STOP", N1_IP, "PROGRAM"),
        ],
        "TIME START first, then equal-time events in file order"
    );
    let zero = due_of(&events[0]);
    for event in &events[..4] {
        assert_eq!(due_of(event), zero, "t=0 events are due at time zero");
    }
    assert_eq!(due_of(&events[4]), zero + 500_000);
    assert_eq!(due_of(&events[5]), zero + 1_000_000);
    for event in &events {
        let a = event.attributes();
        assert_eq!(a.get_str("EXPT"), Some("tproj/texp"));
        assert_eq!(a.get_i32("SCHEDULER"), Some(0));
        fx.key.verify(a).expect("valid HMAC for the experiment key");
    }
    assert_eq!(
        events[1].attributes().get_str("ARGS"),
        Some("COMMAND=/bin/echo zero")
    );
    assert!(
        !events[0].attributes().contains("ARGS"),
        "TIME START has no ARGS"
    );

    // Each agent's own keyed subscription gets exactly its events.
    let mine = collect(&mut p0, 2, Duration::from_secs(5)).await;
    let names: Vec<_> = mine
        .iter()
        .map(|e| e.eventtype().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names, ["START", "STOP"]);
    assert_eq!(collect(&mut p1, 2, Duration::from_secs(5)).await.len(), 2);
    let link_events = collect(&mut link, 2, Duration::from_secs(5)).await;
    assert_eq!(link_events.len(), 2);

    let log = wait_log(
        &mut sched,
        "loaded 8 agents, 1 event groups and 6 static events",
    );
    assert!(log.contains("time zero (TIME START) is"), "{log}");
    sched.signal(signals::SIGTERM);
    let status = sched.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let log = sched.stderr();
    assert!(
        log.contains("exiting: events fired: 7 (6 static, 1 TIME START, 0 dynamic)"),
        "{log}"
    );
    assert!(log.contains("SIGTERM received"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_group_event_reaches_every_member() {
    let mut virt = tbevents_ns::parse_str(common::NS, "test.ns").unwrap();
    virt.events = vec![StaticEvent {
        time: 0.2,
        vnode: String::new(),
        vname: "grp".into(),
        objtype: "PROGRAM".into(),
        eventtype: "START".into(),
        arguments: "GROUPED=1".into(),
        atstring: "$grp start".into(),
    }];
    let fx = Fixture::new(virt, ExperimentState::Active);
    let (_h0, mut p0) = fx.agent(N0_IP, "p0").await;
    let (_h1, mut p1) = fx.agent(N1_IP, "p1").await;
    let _sched = fx.start_sched(0.3, &[]);
    for (sub, name, host) in [(&mut p0, "p0", N0_IP), (&mut p1, "p1", N1_IP)] {
        let got = collect(sub, 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "{name} got the group event");
        let a = got[0].attributes();
        assert_eq!(a.get_str("OBJNAME"), Some(name));
        assert_eq!(a.get_str("HOST"), Some(host));
        assert_eq!(a.get_str("ARGS"), Some("GROUPED=1"));
        fx.key.verify(a).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_events_from_tevc_are_rewritten_and_resigned() {
    let mut virt = tbevents_ns::parse_str(common::NS, "test.ns").unwrap();
    virt.events.clear();
    let fx = Fixture::new(virt, ExperimentState::Active);
    let (_h0, mut p0) = fx.agent(N0_IP, "p0").await;
    let (_h1, mut p1) = fx.agent(N1_IP, "p1").await;
    let mut sched = fx.start_sched(0.0, &[]);
    wait_log(&mut sched, "time zero (TIME START)");

    // A group target fans out, OBJNAME becomes each member's name.
    fx.tevc(&["now", "grp", "start", "rate_=5"]);
    for (sub, name, host) in [(&mut p0, "p0", N0_IP), (&mut p1, "p1", N1_IP)] {
        let got = collect(sub, 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "{name} got the dynamic group event");
        let a = got[0].attributes();
        assert_eq!(a.get_str("OBJNAME"), Some(name));
        assert_eq!(a.get_str("HOST"), Some(host));
        assert_eq!(a.get_str("OBJTYPE"), Some("PROGRAM"));
        assert_eq!(a.get_str("EVENTTYPE"), Some("START"));
        assert_eq!(a.get_i32("SCHEDULER"), Some(0));
        assert!(a.get_str("ARGS").unwrap_or("").contains("RATE=5"), "{a:?}");
        fx.key.verify(a).expect("re-signed with the experiment key");
    }

    // A later time is honoured.
    let sent = tbevents_sched::time::now_micros();
    fx.tevc(&["+0.4", "p0", "stop"]);
    let got = collect(&mut p0, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let arrived = tbevents_sched::time::now_micros();
    assert!(
        arrived - sent >= 380_000,
        "fired too early: {} us",
        arrived - sent
    );
    assert!((due_of(&got[0]) - sent - 400_000).abs() < 200_000);

    // An unknown object is logged and dropped.
    fx.tevc(&["now", "ghost", "start"]);
    wait_log(&mut sched, "Could not map object to an agent: ghost");

    // An unsigned request never reaches the scheduler.
    let unkeyed = tbevents_event::EventHandle::register(&fx.router.uri())
        .await
        .unwrap();
    let mut forged = unkeyed.new_notification(
        &AddressTuple::new()
            .expt(fx.expt())
            .objname("p0")
            .eventtype("KILL"),
    );
    unkeyed
        .schedule(&mut forged, std::time::SystemTime::now())
        .await
        .unwrap();
    assert!(
        collect(&mut p0, 1, Duration::from_millis(700))
            .await
            .is_empty()
    );

    sched.signal(signals::SIGTERM);
    assert!(sched.wait(Duration::from_secs(10)).success());
    let log = sched.stderr();
    assert!(log.contains("3 received, 2 accepted"), "{log}");
    assert!(log.contains("1 dropped (1 unknown object)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_event_sent_before_the_experiment_is_active_is_not_lost() {
    let mut virt = tbevents_ns::parse_str(common::NS, "test.ns").unwrap();
    virt.events.clear();
    let fx = Fixture::new(virt, ExperimentState::Swapped);
    let (_h0, mut p0) = fx.agent(N0_IP, "p0").await;
    let mut sched = fx.start_sched(0.0, &[]);
    wait_log(&mut sched, "waiting for tproj/texp to become active");
    fx.tevc(&["now", "p0", "reset"]);
    wait_log(&mut sched, "held until they are");
    assert!(
        collect(&mut p0, 1, Duration::from_millis(300))
            .await
            .is_empty()
    );
    fx.set_state(ExperimentState::Active);
    let got = collect(&mut p0, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the early event was delivered");
    assert_eq!(got[0].eventtype(), Some("RESET"));
    assert_eq!(got[0].attributes().get_str("HOST"), Some(N0_IP));
    fx.key.verify(got[0].attributes()).unwrap();
    wait_log(
        &mut sched,
        "handling 1 dynamic event(s) that arrived before",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_swapout_and_halt_run_their_commands_unprivileged() {
    let ns = common::NS.replace(
        "$ns run",
        "$ns at 0.2 \"$ns swapout\"\n$ns at 0.4 \"$ns halt\"\n$ns run",
    );
    let fx = Fixture::new(
        tbevents_ns::parse_str(&ns, "sim.ns").unwrap(),
        ExperimentState::Active,
    );
    let marker = fx.dir.path().join("marker");
    let script = fx.dir.path().join("record.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$(id -u) $*\" >> {}\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let swapout = format!("{} swapout {{pid}} {{eid}}", script.display());
    let halt = format!("{} halt {{pid}}/{{eid}}", script.display());
    let watcher = fx.handle().await;
    let mut all = watcher
        .subscribe(&AddressTuple::new().expt(fx.expt()))
        .await
        .unwrap();
    let mut sched = fx.start_sched(
        0.2,
        &["--swapout-command", &swapout, "--halt-command", &halt],
    );
    wait_log(&mut sched, "SIMULATOR HALT: `");
    let text = std::fs::read_to_string(&marker).expect("the commands ran");
    let uid = unprivileged().map_or_else(|| nix::unistd::getuid().as_raw(), |(uid, _)| uid);
    assert_eq!(
        text,
        format!("{uid} swapout {PID} {EID}\n{uid} halt {PID}/{EID}\n")
    );
    let sent = collect(&mut all, 20, Duration::from_millis(1500)).await;
    assert!(
        sent.iter().all(|e| e.objtype() != Some("SIMULATOR")),
        "SIMULATOR events are never sent"
    );
    assert!(
        sched.stderr().contains("2 SIMULATOR events") || {
            sched.signal(signals::SIGTERM);
            sched.wait(Duration::from_secs(10));
            sched.stderr().contains("2 SIMULATOR events")
        }
    );
}

#[test]
fn refuses_to_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: nothing to check here (CI runs as root)");
        return;
    }
    let output = std::process::Command::new(tbevents_testkit::bin_path("event-sched"))
        .args(["-k", "/nonexistent", "p", "e"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to run with privilege"),
        "{stderr}"
    );
}

#[test]
fn refuses_group_root_and_supplementary_group_root() {
    let Some((uid, gid)) = common::unprivileged() else {
        eprintln!("not root: cannot change ids to check this (CI runs as root)");
        return;
    };
    let sched = tbevents_testkit::bin_path("event-sched");
    // Primary group 0 with an ordinary uid.
    let output = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&sched)
            .args(["-k", "/nonexistent", "p", "e"])
            .uid(uid)
            .gid(0)
            .output()
            .unwrap()
    };
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("group root"), "{stderr}");
    // Group 0 among the supplementary groups (setpriv sets them).
    let Ok(setpriv) = which_setpriv() else {
        panic!("setpriv (util-linux) is needed for this test and is missing");
    };
    let output = std::process::Command::new(setpriv)
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--groups=0")
        .arg(&sched)
        .args(["-k", "/nonexistent", "p", "e"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("supplementary"), "{stderr}");
}

fn which_setpriv() -> Result<std::path::PathBuf, ()> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or(())
}

#[test]
fn an_unknown_experiment_is_a_clear_error() {
    let fx = Fixture::standard(ExperimentState::Active);
    let command = fx.sched_command(0.0, &[]);
    // Replace the experiment name: rebuild with another eid.
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut fixed = std::process::Command::new(command.get_program());
    fixed.args(&args[..args.len() - 1]).arg("nosuch");
    if let Some((uid, gid)) = unprivileged() {
        use std::os::unix::process::CommandExt;
        fixed.uid(uid).gid(gid);
    }
    let output = fixed.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("experiment tproj/nosuch not found"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_survives_a_router_restart() {
    let mut virt = tbevents_ns::parse_str(common::NS, "test.ns").unwrap();
    virt.events = vec![StaticEvent {
        time: 4.0,
        vnode: "n0".into(),
        vname: "p0".into(),
        objtype: "PROGRAM".into(),
        eventtype: "STOP".into(),
        arguments: "AFTER=restart".into(),
        atstring: "$p0 stop".into(),
    }];
    let mut fx = Fixture::new(virt, ExperimentState::Active);
    let mut sched = fx.start_sched(0.0, &[]);
    wait_log(&mut sched, "time zero (TIME START)");
    let port = fx.router.port;
    fx.router.proc.kill();
    wait_log(&mut sched, "lost the router connection");
    fx.router = tbevents_testkit::Router::start_on(port, &[]);
    wait_log(&mut sched, "reconnected to the router");
    let (_h0, mut p0) = fx.agent(N0_IP, "p0").await;
    // The static event armed before the outage still fires...
    let got = collect(&mut p0, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{}", sched.stderr());
    assert_eq!(got[0].arguments(), Some("AFTER=restart"));
    // ...and the request subscription was restored.
    fx.tevc(&["now", "p0", "start"]);
    let got = collect(&mut p0, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{}", sched.stderr());
    assert_eq!(got[0].eventtype(), Some("START"));
}

#[test]
fn the_log_file_is_appended_with_mode_0640() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::standard(ExperimentState::Active);
    let log = fx.dir.path().join("sched.log");
    for _ in 0..2 {
        let command = fx.sched_command(0.0, &["-l", log.to_str().unwrap()]);
        // An unknown key file makes the run short: it logs and exits 1.
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let key_at = args.iter().position(|a| a == "-k").unwrap() + 1;
        let mut fixed = std::process::Command::new(command.get_program());
        for (i, arg) in args.iter().enumerate() {
            fixed.arg(if i == key_at {
                "/nonexistent/eventkey"
            } else {
                arg
            });
        }
        if let Some((uid, gid)) = unprivileged() {
            use std::os::unix::process::CommandExt;
            fixed.uid(uid).gid(gid);
        }
        let output = fixed.output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stderr.is_empty(), "everything goes to the log file");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("cannot use key file /nonexistent/eventkey")
            .count(),
        2,
        "{text}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}
