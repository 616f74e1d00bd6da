//! linktest end to end on real network namespaces: three nodes in a line
//! (`a — link0 — b — link1 — c`, static routes through `b`), each link
//! shaped by a kernel token bucket (tbf) to the bandwidth the NS file asks
//! for, one real `eventd`, one real `linktest` daemon per node (probes
//! inside the node's namespace), and the real `tbevents linktest` running
//! as an unprivileged user.
//!
//! Traffic stays inside the test's own namespaces; everything the test
//! makes is removed when it ends (the [`Lab`] guard), also on failure.
//! The kernels we run on have no netem, so configured delay and loss stay
//! 0 here: these tests cover connectivity, latency against a zero delay,
//! routing, zero loss and bandwidth, and a changed bandwidth or a broken
//! link behind linktest's back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tbevents_testkit::{Proc, Router, bin_path};

/// One lab at a time: the daemons listen on fixed probe ports inside the
/// namespaces, and the controller's pid file is per experiment.
static LAB_LOCK: Mutex<()> = Mutex::new(());

const NOBODY: u32 = 65534;

const NS_FILE: &str = r#"
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

fn sh(args: &[&str]) -> Output {
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
struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    store: String,
    router: Router,
    daemons: Vec<Proc>,
}

impl Lab {
    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    fn veth(&self, link: u8, side: &str) -> String {
        format!("{}l{link}{side}", self.prefix)
    }

    /// Builds the lab, or returns `None` (with the reason printed) where
    /// this machine cannot: not root, or no `ip`/`tc`.
    fn build() -> Option<Lab> {
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
        let prefix = format!("lt{}", std::process::id() % 1_000_000);
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
            prefix,
            dir,
            store,
            router,
            daemons: Vec::new(),
        };
        lab.make_network();
        lab.make_experiment();
        for node in ["a", "b", "c"] {
            lab.start_daemon(node);
        }
        Some(lab)
    }

    fn make_network(&self) {
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

    /// Shapes what `node` sends on `veth` with a token bucket.
    fn shape(&self, node: &str, veth: &str, rate: &str, verb: &str) {
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

    fn tbevents(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_path("tbevents"));
        cmd.arg("--store").arg(&self.store).args(args);
        cmd
    }

    fn expdir(&self) -> PathBuf {
        self.dir.path().join("exp")
    }

    fn make_experiment(&self) {
        let ns_file = self.dir.path().join("line.ns");
        std::fs::write(&ns_file, NS_FILE).unwrap();
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

    fn key_file(&self) -> PathBuf {
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
    fn linktest(&self, args: &[&str]) -> Command {
        let port = self.router.port.to_string();
        let mut cmd = self.tbevents(&["linktest", "-e", "lt/line", "-s", "127.0.0.1", "-p", &port]);
        cmd.args(args);
        std::os::unix::process::CommandExt::uid(&mut cmd, NOBODY);
        std::os::unix::process::CommandExt::gid(&mut cmd, NOBODY);
        cmd
    }

    fn run_linktest(&self, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = self.linktest(args).arg("--json").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n--- stderr\n{stderr}"));
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    fn error_file(&self, node: &str) -> Option<String> {
        std::fs::read_to_string(self.expdir().join(format!("tbdata/linktest/{node}.error"))).ok()
    }

    fn daemon_logs(&self) -> String {
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
        for node in ["a", "b", "c"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(node)])
                .status();
        }
    }
}

fn assert_no_errors(code: i32, json: &serde_json::Value, lab: &Lab) {
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

#[test]
fn a_correct_topology_passes_every_level_then_a_changed_bandwidth_fails_level_4() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build() else { return };
    let (code, json, _) = lab.run_linktest(&[]);
    assert_no_errors(code, &json, &lab);
    // Latency (1), routing (1), loss: two rounds of send + check (4),
    // bandwidth: four directed edges, each its own round (8).
    assert_eq!(json["steps_planned"], 14, "{json:#}");
    assert_eq!(json["skipped"], serde_json::json!([]), "{json:#}");
    assert!(lab.error_file("a").is_none());
    assert!(lab.expdir().join("tbdata/linktest/ltmap").exists());

    // Behind linktest's back, b now sends to c at 10 Mb/s instead of 20.
    lab.shape("b", &lab.veth(1, "x"), "10mbit", "change");
    let (code, json, _) = lab.run_linktest(&["--start-level", "4", "--level", "4"]);
    assert_eq!(code, 1, "one node (c, the receiver) has errors: {json:#}");
    let errors = json["errors"].as_object().unwrap();
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["c"], "{json:#}");
    let c = lab.error_file("c").expect("c.error");
    assert!(
        c.starts_with(
            "Bandwidth\n  Link:  b to c (20 Mbps, 0ms, 0% loss)\n  Error: Bandwidth estimate "
        ),
        "{c}"
    );
    assert!(c.contains("differs from the expected 20.000 Mbps"), "{c}");
}

#[test]
fn a_broken_link_is_reported_at_level_1_and_routing_at_level_2() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build() else { return };
    // link1 silently down on c's side.
    sh(&[
        "ip",
        "-n",
        &lab.ns("c"),
        "link",
        "set",
        &lab.veth(1, "y"),
        "down",
    ]);
    let (code, json, _) = lab.run_linktest(&["--level", "2"]);
    let errors = json["errors"].as_object().unwrap();
    // Level 1: c pings b over link1 (the pair b→c sorts first, so its
    // destination c pings) and hears nothing. Level 2: a and c cannot
    // reach each other.
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["a", "c"],
        "{json:#}\n{}",
        lab.daemon_logs()
    );
    assert_eq!(code, 2);
    let c = lab.error_file("c").unwrap();
    assert!(
        c.contains("Latency (Round Trip)\n  Link:  b to c (20 Mbps, 0ms, 0% loss)\n  Error: No packets were received (n=10)"),
        "{c}"
    );
    assert!(
        c.contains("Static Routing\n  Error: c could not ping a"),
        "{c}"
    );
    let a = lab.error_file("a").unwrap();
    assert_eq!(a, "Static Routing\n  Error: a could not ping c\n\n");
}

#[test]
fn kill_stops_a_running_linktest_and_every_node_drops_its_part() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build() else { return };
    // Nothing to stop yet.
    let out = lab.linktest(&["--kill"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("linktest is not running on experiment lt/line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut running = Proc::spawn("tbevents-linktest", lab.linktest(&["--start-level", "4"]));
    running.wait_for_output("Testing Bandwidth", Duration::from_secs(60));
    // A second run is refused while this one holds the experiment.
    let out = lab.linktest(&["--level", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("linktest is already running on experiment lt/line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = lab.linktest(&["--kill"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("has been stopped"));
    let status = running.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(255), "{}", running.stdout());
    assert!(
        running
            .stdout()
            .contains("Linktest has been cancelled: cancelled by SIGTERM"),
        "{}",
        running.stdout()
    );
    assert!(
        running
            .stderr()
            .contains("Every node stopped its part of the run."),
        "{}\n--- daemons\n{}",
        running.stderr(),
        lab.daemon_logs()
    );
    assert!(!lab.expdir().join("tbdata/linktest/linktest.pid").exists());
    for daemon in &lab.daemons {
        assert!(
            daemon.stderr().contains("linktest run killed"),
            "{}",
            daemon.stderr()
        );
    }
    // The daemons are idle again: a new run works.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, json, _) = loop {
        let result = lab.run_linktest(&["--level", "1"]);
        if result.0 == 0 || Instant::now() > deadline {
            break result;
        }
    };
    assert_no_errors(code, &json, &lab);
}

#[test]
fn linktest_refuses_root_and_names_the_user_to_run_it_as() {
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::build() else { return };
    let port = lab.router.port.to_string();
    let out = lab
        .tbevents(&["linktest", "-e", "lt/line", "-s", "127.0.0.1", "-p", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never as root"), "{stderr}");
    assert!(!Path::new(&lab.expdir().join("tbdata/linktest/linktest.pid")).exists());
}
