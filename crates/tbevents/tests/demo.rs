//! `tbevents demo` end to end: real eventd, event-sched and tevc.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHORT_NS: &str = r#"
set ns [new Simulator]
source tb_compat.tcl
set a [$ns node]
set b [$ns node]
set link0 [$ns duplex-link $a $b 10Mb 5ms DropTail]
set p0 [$a program-agent -command "/bin/true"]
$ns at 0 "$p0 start"
$ns at 0.5 "$link0 down"
$ns at 1.0 "$link0 up"
$ns at 1.5 "$p0 stop"
$ns run
"#;

#[test]
fn the_demo_shows_every_event_and_marks_tevc_events_dynamic() {
    // Make sure the sibling programs exist (cargo test -p tbevents alone
    // does not build other packages' binaries).
    for name in ["eventd", "event-sched", "tevc"] {
        tbevents_testkit::bin_path(name);
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("short.ns");
    std::fs::write(&ns, SHORT_NS).unwrap();
    let port = tbevents_testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tbevents"))
        .args([
            "demo",
            "--no-testbed",
            "--start-delay",
            "1.5",
            "--grace",
            "1.5",
            "--port",
        ])
        .arg(port.to_string())
        .arg(&ns)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent_dynamic = false;
    let mut tevc_line = None;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if tevc_line.is_none() && line.contains("tevc") && line.contains(" -e tbdemo/demo ")
                {
                    tevc_line = Some(line.trim().to_owned());
                }
                let is_time_start = line.contains(" TIME ") && line.contains("START");
                lines.push(line);
                if is_time_start && !sent_dynamic {
                    // Type the printed command, as the operator would.
                    let command = tevc_line.clone().expect("the demo printed a tevc command");
                    let words: Vec<&str> = command.split_whitespace().collect();
                    let status = Command::new(words[0]).args(&words[1..]).status().unwrap();
                    assert!(status.success(), "{command}");
                    sent_dynamic = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "demo failed: {status}\n{}",
                        lines.join("\n")
                    );
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(
                    status.success(),
                    "demo failed: {status}\n{}\n{err}",
                    lines.join("\n")
                );
                break;
            }
        }
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the demo did not finish in time:\n{}", lines.join("\n"));
    }
    let text = lines.join("\n");
    assert!(sent_dynamic, "{text}");
    for (offset, object, event) in [
        ("+0.000 s", "p0", "START"),
        ("+0.500 s", "link0", "DOWN"),
        ("+1.000 s", "link0", "UP"),
        ("+1.500 s", "p0", "STOP"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(offset)
                && l.contains("static")
                && l.contains(object)
                && l.contains(event)
                && l.contains("late ")),
            "missing {offset} {object} {event}:\n{text}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DYNAMIC") && l.contains("p0") && l.contains("START")),
        "the tevc event is marked dynamic:\n{text}"
    );
    assert!(text.contains("static events seen: 4 of 4"), "{text}");
    assert!(text.contains("dynamic events seen: 1"), "{text}");
    assert!(
        text.contains("scheduler: events fired: 6 (4 static, 1 TIME START, 1 dynamic)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("elvin://127.0.0.1:{port}")),
        "{text}"
    );
}

#[test]
fn outside_a_build_tree_missing_programs_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tbevents");
    std::fs::copy(env!("CARGO_BIN_EXE_tbevents"), &copy).unwrap();
    let output = Command::new(&copy).arg("demo").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("eventd and event-sched and tevc not found"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo build --release"), "{stderr}");
}

#[test]
fn ctrl_c_stops_everything_and_removes_the_files() {
    for name in ["eventd", "event-sched", "tevc"] {
        tbevents_testkit::bin_path(name);
    }
    let port = tbevents_testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tbevents"))
        .args(["demo", "--no-testbed", "--start-delay", "0.5", "--port"])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut dir = None;
    for line in lines.by_ref() {
        if let Some(rest) = line.split("; log ").nth(1) {
            dir = std::path::Path::new(rest.trim())
                .parent()
                .map(|p| p.to_owned());
        }
        if line.contains(" TIME ") && line.contains("START") {
            break;
        }
    }
    let dir = dir.expect("the demo printed its scheduler log path");
    assert!(dir.is_dir());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "interrupted is an error exit");
    assert!(!dir.exists(), "{} was left behind", dir.display());
    let router = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        std::net::TcpStream::connect_timeout(&router, Duration::from_millis(300)).is_err(),
        "the router is still running"
    );
}

/// Two nodes, a CBR flow across their link, a program.
const TESTBED_NS: &str = r#"
set ns [new Simulator]
source tb_compat.tcl
set a [$ns node]
set b [$ns node]
set link0 [$ns duplex-link $a $b 100Mb 0ms DropTail]
set hello [$b program-agent -command "/bin/echo hello"]
set udp0 [new Agent/UDP]
$ns attach-agent $a $udp0
set cbr0 [new Application/Traffic/CBR]
$cbr0 set packetSize_ 1000
$cbr0 set rate_ 8Mbps
$cbr0 attach-agent $udp0
set null0 [new Agent/Null]
$ns attach-agent $b $null0
$ns connect $udp0 $null0
$ns at 0.2 "$cbr0 start"
$ns at 0.5 "$hello start"
$ns at 4.5 "$cbr0 stop"
$ns run
"#;

#[test]
fn as_root_the_demo_runs_on_the_testbed_and_shows_measured_effects() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the demo uses the emulated testbed only as root");
        return;
    }
    for name in [
        "eventd",
        "event-sched",
        "tevc",
        "evproxy",
        "tbevents-ctlfwd",
        "program-agent",
        "trafgen",
    ] {
        tbevents_testkit::bin_path(name);
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("testbed.ns");
    std::fs::write(&ns, TESTBED_NS).unwrap();

    // First a demo that dies without cleaning up (SIGKILL) once its
    // testbed is up: the next demo must remove what it left.
    let killed_port = tbevents_testkit::free_port();
    let mut killed = Command::new(env!("CARGO_BIN_EXE_tbevents"))
        .args(["demo", "--start-delay", "30", "--port"])
        .arg(killed_port.to_string())
        .arg(&ns)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killed_prefix =
        tbevents_testbed::names::prefix_for(&format!("tbdemo/demo-{}", killed.id()));
    let mut killed_lines = BufReader::new(killed.stdout.take().unwrap()).lines();
    let header = killed_lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("  testbed  "))
        .expect("the first demo printed its testbed line");
    assert!(header.contains("2 namespaces"), "{header}");
    killed.kill().unwrap();
    killed.wait().unwrap();
    let ours = |prefix: &str| -> Vec<String> {
        tbevents_testbed::netns::list()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    assert_eq!(
        ours(&killed_prefix).len(),
        2,
        "the killed demo left its namespaces"
    );
    // Its router and scheduler were orphaned, not part of any testbed:
    // stop them by pid (found by the port only they use).
    let port_arg = format!("elvin://127.0.0.1:{killed_port}");
    let port_text = killed_port.to_string();
    let orphans: Vec<i32> = tbevents_testbed::process::find_by_arguments(&["--listen", &port_arg])
        .into_iter()
        .chain(tbevents_testbed::process::find_by_arguments(&[
            "-p", &port_text,
        ]))
        .collect();
    tbevents_testbed::process::stop_all(&orphans, Duration::from_secs(3));

    let port = tbevents_testkit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tbevents"))
        .args(["demo", "--start-delay", "1", "--grace", "1.5", "--port"])
        .arg(port.to_string())
        .arg(&ns)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = tbevents_testbed::names::prefix_for(&format!("tbdemo/demo-{}", child.id()));
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}\n{err}");
    assert!(
        text.contains("testbed     2 namespaces"),
        "the testbed was built:\n{text}\n{err}"
    );
    // The probe answers across the link; the sink's rate is measured.
    let effects: Vec<&str> = text.lines().filter(|l| l.contains(" effect ")).collect();
    assert!(
        effects
            .iter()
            .any(|l| l.contains("link0 rtt") && l.contains("answered")),
        "{text}"
    );
    let rates: Vec<f64> = effects
        .iter()
        .filter_map(|l| l.split("null0 ").nth(1))
        .filter_map(|rest| rest.split(" Mb/s").next())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        rates.iter().any(|r| (*r - 8.0).abs() < 0.4),
        "a window near the 8 Mb/s sent: {rates:?}\n{text}"
    );
    // The program ran on node b and told the scheduler.
    assert!(
        text.lines()
            .any(|l| l.contains("hello") && l.contains("COMPLETE") && l.contains("ERROR=0")),
        "{text}"
    );
    assert!(text.contains("testbed: removed"), "{text}");
    assert!(
        text.contains("removed the testbed of an earlier demo"),
        "{text}"
    );
    assert!(ours(&killed_prefix).is_empty());
    // Nothing is left.
    assert!(ours(&prefix).is_empty());
}
