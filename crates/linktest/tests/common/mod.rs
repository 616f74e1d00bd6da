//! The linktest test lab: real network namespaces, one real `eventd`, a
//! real `linktest` daemon per node (probes inside the node's namespace) and
//! the real `tbevents linktest` run as an unprivileged user.
//!
//! Two topologies:
//! - [`Topology::Line`]: `a — link0 — b — link1 — c`, static routes through
//!   `b`, each link shaped by a kernel token bucket (tbf) to its NS
//!   bandwidth, no delay or loss (the kernels we run on have no netem);
//! - [`Topology::Shaped`]: `a — link0 — b` through a delay node: a third
//!   namespace where the user-space shaper (`tbevents-linkshape`) bridges
//!   the two halves and applies the link's delay and loss.
//!
//! Traffic stays inside the lab's namespaces; everything is removed when
//! the lab is dropped, also on failure.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use tbevents_testkit::{Proc, Router, bin_path};

/// One lab at a time: the daemons listen on fixed probe ports inside the
/// namespaces, and the controller's pid file is per experiment.
pub static LAB_LOCK: Mutex<()> = Mutex::new(());

pub const NOBODY: u32 = 65534;

/// Which lab to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Three nodes in a line, tbf-shaped, static routes.
    Line,
    /// Two nodes through a user-space delay node.
    Shaped,
}

/// The shaped lab's link: 10 Mb/s, 20 ms one way (NS gives a duplex link's
/// delay per direction), 10 % loss.
const SHAPED_NS_FILE: &str = r#"
set ns [new Simulator]
source tb_compat.tcl
set a [$ns node]
set b [$ns node]
set link0 [$ns duplex-link $a $b 10Mb 20ms DropTail]
tb-set-link-loss $link0 0.1
tb-set-ip-link $a $link0 10.93.1.1
tb-set-ip-link $b $link0 10.93.1.2
$ns run
"#;

const LINE_NS_FILE: &str = r#"
set ns [new Simulator]
source tb_compat.tcl
set a [$ns node]
set b [$ns node]
set c [$ns node]
set link0 [$ns duplex-link $a $b 10Mb 0ms DropTail]
set link1 [$ns duplex-link $b $c 20Mb 0ms DropTail]
tb-set-ip-link $a $link0 10.91.1.1
tb-set-ip-link $b $link0 10.91.1.2
tb-set-ip-link $b $link1 10.91.2.1
tb-set-ip-link $c $link1 10.91.2.2
$ns rtproto Static
$ns run
"#;

pub fn sh(args: &[&str]) -> Output {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Everything one test builds: namespaces, store, router, daemons.
pub struct Lab {
    pub topology: Topology,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub store: String,
    pub router: Router,
    pub daemons: Vec<Proc>,
    /// The shaped lab's delay node.
    pub shaper: Option<tbevents_linkshape::shaper::Shaper>,
}

impl Lab {
    pub fn nodes(&self) -> &'static [&'static str] {
        match self.topology {
            Topology::Line => &["a", "b", "c"],
            Topology::Shaped => &["a", "b", "d"],
        }
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    pub fn veth(&self, link: u8, side: &str) -> String {
        format!("{}l{link}{side}", self.prefix)
    }

    /// Builds the lab, or returns `None` (with the reason printed) where
    /// this machine cannot: not root, or no `ip`/`tc`.
    pub fn build(topology: Topology) -> Option<Lab> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: linktest namespace tests need root (network namespaces, tc)");
            return None;
        }
        for tool in ["ip", "tc"] {
            if Command::new(tool).arg("-V").output().is_err() {
                eprintln!("SKIPPED: `{tool}` is not installed");
                return None;
            }
        }
        let prefix = format!(
            "lt{}{}",
            std::process::id() % 1_000_000,
            if topology == Topology::Line { "" } else { "s" }
        );
        let dir = tempfile::tempdir().unwrap();
        // The controller runs as nobody: it must read the store and write
        // the experiment's results directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let store = format!("sqlite:{}", dir.path().join("store/store.db").display());
        let router = Router::start(&[]);
        let mut lab = Lab {
            topology,
            prefix,
            dir,
            store,
            router,
            daemons: Vec::new(),
            shaper: None,
        };
        match topology {
            Topology::Line => lab.make_line(),
            Topology::Shaped => lab.make_shaped(),
        }
        lab.make_experiment();
        let nodes: Vec<&str> = lab.nodes().iter().copied().filter(|n| *n != "d").collect();
        for node in nodes {
            lab.start_daemon(node);
        }
        Some(lab)
    }

    fn make_line(&self) {
        for node in ["a", "b", "c"] {
            let ns = self.ns(node);
            sh(&["ip", "netns", "add", &ns]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let links = [
            (0u8, "a", "10.91.1.1", "b", "10.91.1.2", "10mbit"),
            (1u8, "b", "10.91.2.1", "c", "10.91.2.2", "20mbit"),
        ];
        for (link, left, left_ip, right, right_ip, rate) in links {
            let (lv, rv) = (self.veth(link, "x"), self.veth(link, "y"));
            sh(&[
                "ip", "link", "add", &lv, "type", "veth", "peer", "name", &rv,
            ]);
            for (veth, node, ip) in [(&lv, left, left_ip), (&rv, right, right_ip)] {
                let ns = self.ns(node);
                sh(&["ip", "link", "set", veth, "netns", &ns]);
                sh(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    veth,
                ]);
                sh(&["ip", "-n", &ns, "link", "set", veth, "up"]);
                self.shape(node, veth, rate, "add");
            }
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns("b"),
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        sh(&[
            "ip",
            "-n",
            &self.ns("a"),
            "route",
            "add",
            "10.91.2.0/24",
            "via",
            "10.91.1.2",
        ]);
        sh(&[
            "ip",
            "-n",
            &self.ns("c"),
            "route",
            "add",
            "10.91.1.0/24",
            "via",
            "10.91.2.1",
        ]);
    }

    /// `a — d — b`: the delay node `d` bridges `l0x`'s peer and `l0y`'s
    /// peer with the user-space shaper, set to the NS file's link.
    fn make_shaped(&mut self) {
        for node in ["a", "b", "d"] {
            let ns = self.ns(node);
            sh(&["ip", "netns", "add", &ns]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let sides = [("a", "10.93.1.1", "x", "p"), ("b", "10.93.1.2", "y", "q")];
        for (node, ip, end, peer) in sides {
            let (veth, toward) = (self.veth(0, end), self.veth(0, peer));
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", &toward,
            ]);
            sh(&["ip", "link", "set", &veth, "netns", &self.ns(node)]);
            sh(&[
                "ip",
                "-n",
                &self.ns(node),
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                &veth,
            ]);
            sh(&["ip", "-n", &self.ns(node), "link", "set", &veth, "up"]);
            sh(&["ip", "link", "set", &toward, "netns", &self.ns("d")]);
            sh(&["ip", "-n", &self.ns("d"), "link", "set", &toward, "up"]);
        }
        let shaper = tbevents_linkshape::shaper::Shaper::start_in_netns(
            &self.ns("d"),
            &self.veth(0, "p"),
            &self.veth(0, "q"),
        )
        .expect("start the shaper");
        self.shaper = Some(shaper);
        self.set_link(Duration::from_millis(20), 0.1);
    }

    /// Sets the shaped link, both directions: one-way `delay`, loss `plr`,
    /// 10 Mb/s.
    pub fn set_link(&self, delay: Duration, plr: f64) {
        use tbevents_linkshape::{Direction, PipeParams};
        let params = PipeParams {
            bandwidth_kbps: 10_000,
            delay,
            plr,
            ..PipeParams::default()
        };
        let shaper = self.shaper.as_ref().expect("a shaped lab");
        shaper.set_params(Direction::AtoB, &params);
        shaper.set_params(Direction::BtoA, &params);
    }

    /// Shapes what `node` sends on `veth` with a token bucket.
    pub fn shape(&self, node: &str, veth: &str, rate: &str, verb: &str) {
        sh(&[
            "tc",
            "-n",
            &self.ns(node),
            "qdisc",
            verb,
            "dev",
            veth,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "16kb",
            "latency",
            "100ms",
        ]);
    }

    pub fn tbevents(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_path("tbevents"));
        cmd.arg("--store").arg(&self.store).args(args);
        cmd
    }

    pub fn expdir(&self) -> PathBuf {
        self.dir.path().join("exp")
    }

    fn make_experiment(&self) {
        let ns_file = self.dir.path().join("lab.ns");
        let text = match self.topology {
            Topology::Line => LINE_NS_FILE,
            Topology::Shaped => SHAPED_NS_FILE,
        };
        std::fs::write(&ns_file, text).unwrap();
        let expdir = self.expdir();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(self
            .tbevents(&["create", "-e", "lt/line", "--path"])
            .arg(&expdir)
            .arg(&ns_file));
        run(&mut self.tbevents(&["swapin", "-e", "lt/line"]));
        // The experiment's user (nobody here) owns its directory and key.
        sh(&[
            "chown",
            "-R",
            &format!("{NOBODY}:{NOBODY}"),
            &expdir.display().to_string(),
        ]);
        // This store is the experiment user's own here (a scheduler-side
        // read-only copy would do as well).
        let store_dir = self.dir.path().join("store");
        sh(&[
            "chown",
            "-R",
            &format!("{NOBODY}:{NOBODY}"),
            &store_dir.display().to_string(),
        ]);
    }

    pub fn key_file(&self) -> PathBuf {
        self.expdir().join("tbdata/eventkey")
    }

    fn start_daemon(&mut self, node: &str) {
        let port = self.router.port.to_string();
        let key = self.key_file();
        let ns = self.ns(node);
        let mut daemon = Proc::start(
            "linktest",
            [
                "-s",
                "127.0.0.1",
                "-p",
                &port,
                "-e",
                "lt/line",
                "-k",
                key.to_str().unwrap(),
                "--vnode",
                node,
                "--netns",
                &ns,
            ],
        );
        daemon.wait_for_output("linktest daemon ready", Duration::from_secs(30));
        self.daemons.push(daemon);
    }

    /// `tbevents linktest` as nobody.
    pub fn linktest(&self, args: &[&str]) -> Command {
        let port = self.router.port.to_string();
        let mut cmd = self.tbevents(&["linktest", "-e", "lt/line", "-s", "127.0.0.1", "-p", &port]);
        cmd.args(args);
        std::os::unix::process::CommandExt::uid(&mut cmd, NOBODY);
        std::os::unix::process::CommandExt::gid(&mut cmd, NOBODY);
        cmd
    }

    pub fn run_linktest(&self, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = self.linktest(args).arg("--json").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n--- stderr\n{stderr}"));
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    pub fn error_file(&self, node: &str) -> Option<String> {
        std::fs::read_to_string(self.expdir().join(format!("tbdata/linktest/{node}.error"))).ok()
    }

    pub fn daemon_logs(&self) -> String {
        self.daemons
            .iter()
            .map(Proc::stderr)
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            daemon.kill();
        }
        if let Some(mut shaper) = self.shaper.take() {
            shaper.stop();
        }
        for node in self.nodes() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(node)])
                .status();
        }
    }
}

pub fn assert_no_errors(code: i32, json: &serde_json::Value, lab: &Lab) {
    assert_eq!(
        json["errors"],
        serde_json::json!({}),
        "{json:#}\n--- daemons\n{}",
        lab.daemon_logs()
    );
    assert_eq!(json["cancelled"], serde_json::Value::Null, "{json:#}");
    assert_eq!(json["steps_completed"], json["steps_planned"], "{json:#}");
    assert_eq!(code, 0, "{json:#}");
}
