//! Shared set-up for the scheduler's integration tests: a real SQLite
//! store, a real `eventd`, a real `event-sched` (as `nobody` when the
//! tests run as root), keyed subscribers and the real `tevc`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tbevents_event::{AddressTuple, EventHandle, EventKey, EventNotification, EventSubscription};
use tbevents_store::{
    ExperimentId, ExperimentState, NewExperiment, NodeAssignment, VirtualExperiment,
};
use tbevents_testkit::{Proc, Router, bin_path};

/// The experiment every test uses.
pub const PID: &str = "tproj";
/// The experiment every test uses.
pub const EID: &str = "texp";

/// A test NS file: two nodes, a link, two programs in a group, and a
/// few static events, including three at time zero.
pub const NS: &str = r#"
set ns [new Simulator]
source tb_compat.tcl
set n0 [$ns node]
set n1 [$ns node]
set link0 [$ns duplex-link $n0 $n1 100Mb 10ms DropTail]
set p0 [$n0 program-agent -command "/bin/echo zero"]
set p1 [$n1 program-agent -command "/bin/echo one"]
set grp [$ns event-group [list $p0 $p1]]
$ns at 0 "$p0 start"
$ns at 0 "$link0 down"
$ns at 0 "$p1 start"
$ns at 0.5 "$link0 up"
$ns at 1.0 "$grp stop"
$ns run
"#;

/// Control IPs the fixture maps n0 and n1 to.
pub const N0_IP: &str = "127.0.9.1";
/// Control IP of n1.
pub const N1_IP: &str = "127.0.9.2";

/// A store with the experiment, a key, and a router.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store_url: String,
    pub key_path: PathBuf,
    pub key: EventKey,
    pub id: ExperimentId,
    pub router: Router,
}

/// The uid/gid tests run the scheduler as: `nobody` when root.
pub fn unprivileged() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("look up nobody")
        .expect("user nobody exists");
    Some((nobody.uid.as_raw(), nobody.gid.as_raw()))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

impl Fixture {
    /// Creates the experiment from `virt`, maps n0/n1, and sets `state`.
    pub fn new(virt: VirtualExperiment, state: ExperimentState) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store_url = format!("sqlite:{}", dir.path().join("store.db").display());
        let id = ExperimentId::new(PID, EID);
        let exp_dir = dir.path().join("exp");
        let store = tbevents_store::open(&store_url).unwrap();
        store
            .create_experiment(&NewExperiment::new(
                id.clone(),
                PID,
                "tester",
                exp_dir.to_str().unwrap(),
            ))
            .unwrap();
        store.load_virtual(&id, &virt).unwrap();
        let key_text = tbevents_store::generate_event_key();
        let key_path = tbevents_store::write_event_key_file(&exp_dir, &key_text).unwrap();
        store.set_event_key(&id, &key_text).unwrap();
        let mapping: Vec<NodeAssignment> = virt
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeAssignment {
                vnode: n.vname.clone(),
                node_id: format!("pc{i}"),
                control_ip: format!("127.0.9.{}", i + 1),
            })
            .collect();
        store.record_swapin(&id, &mapping).unwrap();
        store.set_state(&id, state).unwrap();
        drop(store);
        if let Some((uid, gid)) = unprivileged() {
            chown_tree(dir.path(), uid, gid);
        }
        let key = EventKey::from_file(&key_path).unwrap();
        Fixture {
            dir,
            store_url,
            key_path,
            key,
            id,
            router: Router::start(&[]),
        }
    }

    /// The default test experiment.
    pub fn standard(state: ExperimentState) -> Fixture {
        Fixture::new(
            tbevents_ns::parse_str(NS, "test.ns").expect("test NS parses"),
            state,
        )
    }

    pub fn expt(&self) -> String {
        self.id.to_string()
    }

    /// Sets the experiment's state.
    pub fn set_state(&self, state: ExperimentState) {
        let store = tbevents_store::open(&self.store_url).unwrap();
        store.set_state(&self.id, state).unwrap();
    }

    /// The scheduler command line (not started).
    pub fn sched_command(&self, start_delay: f64, extra: &[&str]) -> Command {
        let mut cmd = Command::new(bin_path("event-sched"));
        cmd.args(["-d", "-s", "127.0.0.1", "-p"])
            .arg(self.router.port.to_string())
            .arg("-k")
            .arg(&self.key_path)
            .arg("--store")
            .arg(&self.store_url)
            .arg("--start-delay")
            .arg(start_delay.to_string())
            .args(["--poll-interval", "0.1"])
            .args(extra)
            .args([PID, EID]);
        if let Some((uid, gid)) = unprivileged() {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Starts the scheduler.
    pub fn start_sched(&self, start_delay: f64, extra: &[&str]) -> Proc {
        Proc::spawn("event-sched", self.sched_command(start_delay, extra))
    }

    /// A keyed handle on the router.
    pub async fn handle(&self) -> EventHandle {
        EventHandle::register_with_keyfile(&self.router.uri(), &self.key_path)
            .await
            .expect("register with key")
    }

    /// A keyed subscription for one agent, as its node would subscribe.
    pub async fn agent(&self, host: &str, objname: &str) -> (EventHandle, EventSubscription) {
        let handle = self.handle().await;
        let sub = handle
            .subscribe(
                &AddressTuple::new()
                    .expt(self.expt())
                    .host(host)
                    .objname(objname),
            )
            .await
            .expect("subscribe");
        (handle, sub)
    }

    /// Runs the real tevc.
    pub fn tevc(&self, args: &[&str]) -> std::process::Output {
        let output = Command::new(bin_path("tevc"))
            .args(["-s", "127.0.0.1", "-p"])
            .arg(self.router.port.to_string())
            .arg("-k")
            .arg(&self.key_path)
            .arg("-e")
            .arg(self.expt())
            .args(args)
            .output()
            .expect("run tevc");
        assert!(
            output.status.success(),
            "tevc {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// Receives events until `count` arrived or `within` passed.
pub async fn collect(
    sub: &mut EventSubscription,
    count: usize,
    within: Duration,
) -> Vec<EventNotification> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, sub.recv()).await {
            Ok(Some(event)) => out.push(event),
            _ => break,
        }
    }
    out
}

/// `(time_sec, time_usec)` as microseconds.
pub fn due_of(event: &EventNotification) -> i64 {
    let a = event.attributes();
    i64::from(a.get_i32("time_sec").expect("time_sec")) * 1_000_000
        + i64::from(a.get_i32("time_usec").expect("time_usec"))
}

/// Waits until the scheduler's stderr contains `needle`.
pub fn wait_log(sched: &mut Proc, needle: &str) -> String {
    sched.wait_for_output(needle, Duration::from_secs(30))
}
