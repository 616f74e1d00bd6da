//! What the XML-RPC end-to-end tests share: the boss store they serve, a
//! child process that is reaped, and a user's real `event-sched` that loads
//! its experiment through a store URL and fires its events.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tbevents_store::{
    ExperimentId, ExperimentState, Group, GroupMembership, NewExperiment, NodeAssignment,
    StaticEvent, Trust, User, VirtAgent, VirtNode, VirtualExperiment,
};

/// A child process killed and reaped when the test ends.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Static events in the experiment.
pub const EVENTS: usize = 50;

/// Builds boss's store: users alice (member of tproj) and mallory
/// (member of another project), and the active experiment `id` with
/// [`EVENTS`] static events for program `p0` on node `n0`.
pub fn build_store(url: &str, id: &ExperimentId) {
    let store = tbevents_store::open(url).unwrap();
    for (uid, n) in [("alice", 2001), ("mallory", 2002)] {
        store
            .create_user(&User {
                uid: uid.into(),
                unix_uid: n,
                status: "active".into(),
                admin: false,
            })
            .unwrap();
    }
    for pid in ["tproj", "other"] {
        store
            .create_group(&Group {
                pid: pid.into(),
                gid: pid.into(),
                unix_gid: if pid == "tproj" { 3001 } else { 3002 },
                unix_name: pid.into(),
            })
            .unwrap();
    }
    for (uid, pid) in [("alice", "tproj"), ("mallory", "other")] {
        store
            .add_member(&GroupMembership {
                uid: uid.into(),
                pid: pid.into(),
                gid: pid.into(),
                trust: Trust::User,
            })
            .unwrap();
    }
    store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "tproj",
            "alice",
            "/tmp/tproj",
        ))
        .unwrap();
    let virt = VirtualExperiment {
        nodes: vec![VirtNode {
            vname: "n0".into(),
            routertype: "none".into(),
            ..VirtNode::default()
        }],
        agents: vec![
            VirtAgent {
                vname: "p0".into(),
                vnode: "n0".into(),
                objtype: "PROGRAM".into(),
            },
            VirtAgent {
                vname: "ns".into(),
                vnode: "*".into(),
                objtype: "SIMULATOR".into(),
            },
        ],
        events: (0..EVENTS)
            .map(|i| StaticEvent {
                time: i as f64 * 0.25,
                vnode: "n0".into(),
                vname: "p0".into(),
                objtype: "PROGRAM".into(),
                eventtype: "START".into(),
                arguments: format!("COMMAND='echo <{i}> & done'"),
                atstring: String::new(),
            })
            .collect(),
        simulator_name: "ns".into(),
        ..VirtualExperiment::default()
    };
    store.load_virtual(id, &virt).unwrap();
    store
        .record_swapin(
            id,
            &[NodeAssignment {
                vnode: "n0".into(),
                node_id: "pc1".into(),
                control_ip: "127.0.9.1".into(),
            }],
        )
        .unwrap();
    store.set_state(id, ExperimentState::Active).unwrap();
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `event-sched` as `nobody` (never root) with `store_url` and the
/// extra environment `env`, and checks that it fires TIME START and its
/// first static events, signed with the experiment's key, to a real eventd.
/// `dir` must be readable by nobody; the key file is written there.
pub fn scheduler_fires_its_events(dir: &Path, store_url: &str, env: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let key = dir.join("eventkey");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let id = ExperimentId::new("tproj", "texp");
    let log = dir.join("event-sched.log");
    let router = tbevents_testkit::Router::start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handle, mut events) = runtime.block_on(async {
        let handle = tbevents_event::EventHandle::register_with_keyfile(&router.uri(), &key)
            .await
            .unwrap();
        let tuple = tbevents_event::AddressTuple::new()
            .expt(id.to_string())
            .scheduler(0);
        let events = handle.subscribe(&tuple).await.unwrap();
        (handle, events)
    });
    let mut sched = Command::new(tbevents_testkit::bin_path("event-sched"));
    sched
        .args(["-s", "127.0.0.1", "-p", &router.port.to_string(), "-k"])
        .arg(&key)
        .args([
            "--store",
            store_url,
            "--start-delay",
            "0",
            "--",
            "tproj",
            "texp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .envs(env.iter().copied())
        .uid(65534)
        .gid(65534);
    let mut child = Server {
        child: sched.spawn().unwrap(),
    };
    // TIME START, then the first static events, signed with the key.
    let got: Vec<(String, String)> = runtime.block_on(async {
        let mut got = Vec::new();
        while got.len() < 4 {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the scheduler fired nothing within 30 s; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                })
                .expect("the subscription ended");
            got.push((
                event.objtype().unwrap_or_default().to_owned(),
                event.host().unwrap_or_default().to_owned(),
            ));
        }
        got
    });
    assert_eq!(got[0], ("TIME".to_owned(), "*".to_owned()), "{got:?}");
    for event in &got[1..] {
        assert_eq!(
            event,
            &("PROGRAM".to_owned(), "127.0.9.1".to_owned()),
            "{got:?}"
        );
    }
    let _ = child.child.kill();
    let _ = child.child.wait();
    runtime.block_on(async {
        let _ = handle.unregister().await;
    });
}
