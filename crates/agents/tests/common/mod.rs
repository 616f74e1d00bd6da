//! Shared set-up for the agents' integration tests: a real SQLite store
//! holding one experiment, its key file, a real `eventd`, and keyed
//! senders and watchers built on the event library.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tbevents_event::{AddressTuple, EventHandle, EventKey, EventNotification, EventSubscription};
use tbevents_store::{
    ExperimentId, NewExperiment, NodeAssignment, StaticEvent, VirtAgent, VirtNode, VirtProgram,
    VirtTrafgen, VirtualExperiment,
};
use tbevents_testkit::Router;

/// The experiment every test uses.
pub const EXPT: &str = "agproj/agexp";
/// The node the agents under test serve.
pub const NODE: &str = "n0";
/// The control IP the store maps n0 to.
pub const NODE_IP: &str = "127.0.9.1";

/// A store with the experiment, its key, and a router.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub id: ExperimentId,
    pub store_url: String,
    pub key_path: PathBuf,
    pub key: EventKey,
    pub router: Router,
}

impl Fixture {
    /// A fresh experiment with `programs` and `trafgens` (all on n0 unless
    /// their vnode says otherwise), swapped in with n0 at [`NODE_IP`].
    pub fn new(programs: &[(&str, &str)], trafgens: Vec<VirtTrafgen>) -> Fixture {
        Fixture::with_events(programs, trafgens, Vec::new())
    }

    /// [`Fixture::new`] with static events.
    pub fn with_events(
        programs: &[(&str, &str)],
        trafgens: Vec<VirtTrafgen>,
        events: Vec<StaticEvent>,
    ) -> Fixture {
        let programs = programs
            .iter()
            .map(|(name, command)| VirtProgram {
                vnode: NODE.into(),
                vname: (*name).into(),
                command: (*command).into(),
                ..Default::default()
            })
            .collect();
        Fixture::with_rows(programs, trafgens, events)
    }

    /// A fresh experiment with these rows (programs on their own vnodes).
    pub fn with_rows(
        programs: Vec<VirtProgram>,
        trafgens: Vec<VirtTrafgen>,
        events: Vec<StaticEvent>,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        // The agent's user (nobody, when root) must reach the log dirs.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.path().join("store.db");
        let store_url = format!("sqlite:{}", db.display());
        let store = tbevents_store::open(&store_url).unwrap();
        let id = ExperimentId::parse(EXPT).unwrap();
        let expdir = dir.path().join("exp");
        store
            .create_experiment(&NewExperiment::new(
                id.clone(),
                "agproj",
                "tester",
                expdir.display().to_string(),
            ))
            .unwrap();
        let node = |n: &str| VirtNode {
            vname: n.into(),
            ..Default::default()
        };
        let virt = VirtualExperiment {
            nodes: vec![node("n0"), node("n1")],

            agents: programs
                .iter()
                .map(|p| VirtAgent {
                    vname: p.vname.clone(),
                    vnode: p.vnode.clone(),
                    objtype: "PROGRAM".into(),
                })
                .chain(trafgens.iter().map(|t| VirtAgent {
                    vname: t.vname.clone(),
                    vnode: t.vnode.clone(),
                    objtype: "TRAFGEN".into(),
                }))
                .collect(),
            programs,
            trafgens,
            events,
            simulator_name: "ns".into(),
            ..Default::default()
        };
        store.load_virtual(&id, &virt).unwrap();
        store
            .record_swapin(
                &id,
                &[NodeAssignment {
                    vnode: NODE.into(),
                    node_id: "pc1".into(),
                    control_ip: NODE_IP.into(),
                }],
            )
            .unwrap();
        let key_text = tbevents_store::generate_event_key();
        store.set_event_key(&id, &key_text).unwrap();
        let key_path = tbevents_store::write_event_key_file(&expdir, &key_text).unwrap();
        let key = EventKey::from_bytes(key_text.as_bytes().to_vec()).unwrap();
        let router = Router::start(&[]);
        Fixture {
            dir,
            id,
            store_url,
            key_path,
            key,
            router,
        }
    }

    /// A log directory for one agent (created by the agent).
    pub fn logdir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The contract flags for an agent serving n0.
    pub fn agent_args(&self, logdir: &std::path::Path) -> Vec<String> {
        self.agent_args_for(logdir, NODE)
    }

    /// The contract flags for an agent serving `vnode`.
    pub fn agent_args_for(&self, logdir: &std::path::Path, vnode: &str) -> Vec<String> {
        [
            "-s",
            "127.0.0.1",
            "-p",
            &self.router.port.to_string(),
            "-e",
            EXPT,
            "-k",
            &self.key_path.display().to_string(),
            "--vnode",
            vnode,
            "--store",
            &self.store_url,
            "-l",
            &logdir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// A handle with the experiment's key.
    pub async fn keyed(&self) -> EventHandle {
        EventHandle::register_with(
            &self.router.uri(),
            tbevents_event::RegisterOptions::new().key(self.key.clone()),
        )
        .await
        .unwrap()
    }

    /// A handle signing with some other key (a forger).
    pub async fn forger(&self) -> EventHandle {
        let wrong = EventKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        EventHandle::register_with(
            &self.router.uri(),
            tbevents_event::RegisterOptions::new().key(wrong),
        )
        .await
        .unwrap()
    }
}

/// Sends an event to n0's agent as the scheduler fires it: SCHEDULER 0,
/// HOST = n0's control IP, signed by `handle`'s key.
pub async fn fire(handle: &EventHandle, objtype: &str, objname: &str, eventtype: &str, args: &str) {
    let tuple = AddressTuple::new()
        .expt(EXPT)
        .host(NODE_IP)
        .objtype(objtype)
        .objname(objname)
        .eventtype(eventtype);
    let mut event = handle.new_notification(&tuple);
    if !args.is_empty() {
        event.set_arguments(args);
    }
    handle.notify(&mut event).await.unwrap();
}

/// Subscribes to the experiment's events of `eventtype` with SCHEDULER
/// `scheduler` (COMPLETE goes to the scheduler: 1).
pub async fn watch(handle: &EventHandle, eventtype: &str, scheduler: i32) -> EventSubscription {
    let tuple = AddressTuple::new()
        .expt(EXPT)
        .eventtype(eventtype)
        .scheduler(scheduler);
    handle.subscribe(&tuple).await.unwrap()
}

/// The next event on `sub` for `objname`, within `timeout`.
pub async fn next_for(
    sub: &mut EventSubscription,
    objname: &str,
    timeout: Duration,
) -> EventNotification {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Some(event)) if event.objname() == Some(objname) => return event,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("subscription ended while waiting for {objname}"),
            Err(_) => panic!("no event for {objname} within {timeout:?}"),
        }
    }
}

/// The value of `key` in an event's ARGS.
pub fn arg(event: &EventNotification, key: &str) -> Option<String> {
    tbevents_event::arg_get(event.arguments().unwrap_or(""), key)
        .ok()
        .flatten()
        .map(str::to_owned)
}

/// Waits (polling, with a deadline) until `check` is true.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `nobody`'s uid when the tests run as root.
pub fn nobody_uid() -> Option<u32> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    Some(user.uid.as_raw())
}

/// The real uid of process `pid` (from /proc).
pub fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
