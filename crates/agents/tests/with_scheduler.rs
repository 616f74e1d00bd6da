//! The program agent acts on exactly what the real scheduler fires: a
//! static `$ns at` START and a `tevc` START go through `event-sched`
//! (HOST rewritten to the node's control IP, re-signed), the agent runs
//! the program, and its COMPLETE comes back through the scheduler as an
//! event every watcher sees; a trafgen sink's REPORT takes the same way.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::{EXPT, Fixture, NODE, arg, next_for, nobody_uid, watch};
use tbevents_store::{ExperimentState, StaticEvent, VirtTrafgen};
use tbevents_testkit::{Proc, bin_path, free_port};

const WAIT: Duration = Duration::from_secs(15);

fn chown_tree(path: &std::path::Path, user: &nix::unistd::User) {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), user);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_and_tevc_starts_through_event_sched_and_complete_comes_back() {
    let (source_port, sink_port) = (free_port(), free_port());
    let trafgen_row = |name: &str, role: &str, port: u16, target: u16| VirtTrafgen {
        vnode: NODE.into(),
        vname: name.into(),
        role: role.into(),
        proto: "udp".into(),
        port: port.into(),
        ip: "127.0.0.1".into(),
        target_vnode: NODE.into(),
        target_vname: "peer".into(),
        target_port: target.into(),
        target_ip: "127.0.0.1".into(),
        generator: "TG".into(),
    };
    let fx = Fixture::with_events(
        &[("hello", "/bin/echo from the store")],
        vec![
            trafgen_row("src", "source", source_port, sink_port),
            trafgen_row("dst", "sink", sink_port, source_port),
        ],
        vec![StaticEvent {
            time: 0.0,
            vnode: NODE.into(),
            vname: "hello".into(),
            objtype: "PROGRAM".into(),
            eventtype: "START".into(),
            // What the NS front end writes for `$ns at 0 "$hello start"`.
            arguments: "COMMAND=/bin/echo static start".into(),
            atstring: "$hello start".into(),
        }],
    );
    tbevents_store::open(&fx.store_url)
        .unwrap()
        .set_state(&fx.id, ExperimentState::Active)
        .unwrap();
    // The scheduler never runs as root: as nobody it needs the store and
    // the key (the agent reads them as root before it switches).
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    if nobody_uid().is_some() {
        chown_tree(fx.dir.path(), &nobody);
    }

    let logdir = fx.logdir("logs");
    let mut args = fx.agent_args(&logdir);
    if nobody_uid().is_some() {
        args.extend(["-u".to_owned(), "nobody".to_owned()]);
    }
    let mut agent = Proc::start("program-agent", &args);
    agent.wait_for_output("waiting for events", WAIT);

    let watcher = fx.keyed().await;
    // Re-published completions are ordinary events (SCHEDULER 0).
    let mut completes = watch(&watcher, "COMPLETE", 0).await;

    let mut sched = Command::new(bin_path("event-sched"));
    sched
        .args(["-s", "127.0.0.1", "-p", &fx.router.port.to_string(), "-k"])
        .arg(&fx.key_path)
        .args([
            "--store",
            &fx.store_url,
            "--start-delay",
            "0.2",
            "--poll-interval",
            "0.1",
        ])
        .args(EXPT.split('/'));
    if nobody_uid().is_some() {
        sched.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    let sched = Proc::spawn("event-sched", sched);

    let done = match tokio::time::timeout(WAIT, next_for(&mut completes, "hello", WAIT * 2)).await {
        Ok(done) => done,
        Err(_) => panic!(
            "no COMPLETE\n--- event-sched\n{}\n--- program-agent\n{}",
            sched.stderr(),
            agent.stderr()
        ),
    };
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("0"), "{done:?}");
    assert_eq!(
        done.host(),
        Some(common::NODE_IP),
        "HOST from the agent table"
    );
    agent.wait_for_output("hello: run 1 started", WAIT);
    assert_eq!(
        std::fs::read_to_string(logdir.join("hello.out.1")).unwrap(),
        "static start\n"
    );

    // A dynamic event from the real tevc.
    let tevc = Command::new(bin_path("tevc"))
        .args(["-s", "127.0.0.1", "-p", &fx.router.port.to_string(), "-k"])
        .arg(&fx.key_path)
        .args(["-e", EXPT, "now", "hello", "start"])
        .output()
        .unwrap();
    assert!(
        tevc.status.success(),
        "{}",
        String::from_utf8_lossy(&tevc.stderr)
    );
    let done = next_for(&mut completes, "hello", WAIT).await;
    assert_eq!(arg(&done, "RUN").as_deref(), Some("2"), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(logdir.join("hello.out.2")).unwrap(),
        "from the store\n"
    );
    assert!(agent.try_wait().is_none());

    // trafgen: a tevc START reaches the source through the scheduler, and
    // the sink's REPORT comes back through it as an event.
    let mut trafgen = Proc::start(
        "trafgen",
        fx.agent_args(&fx.logdir("trafgen"))
            .into_iter()
            .chain(["--report-interval".to_owned(), "0.2".to_owned()]),
    );
    trafgen.wait_for_output("waiting for events", WAIT);
    let mut reports = watch(&watcher, "REPORT", 0).await;
    let tevc = Command::new(bin_path("tevc"))
        .args(["-s", "127.0.0.1", "-p", &fx.router.port.to_string(), "-k"])
        .arg(&fx.key_path)
        .args([
            "-e",
            EXPT,
            "now",
            "src",
            "start",
            "PACKETSIZE=500",
            "RATE=400",
        ])
        .output()
        .unwrap();
    assert!(
        tevc.status.success(),
        "{}",
        String::from_utf8_lossy(&tevc.stderr)
    );
    let report = next_for(&mut reports, "dst", WAIT).await;
    assert_eq!(report.host(), Some(common::NODE_IP), "{report:?}");
    assert_eq!(report.objtype(), Some("TRAFGEN"));
    assert!(arg(&report, "RATE").is_some(), "{report:?}");
    assert!(trafgen.try_wait().is_none());
}
