//! The reason eventd starts as root at all: a port below 1024. It binds
//! one, gives up root, and must still serve it, with no uid, gid, group or
//! capability of root left; an account switch that would leave root
//! behind stops it at start instead.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use tbevents_testkit::Proc;

/// A privileged port on 127.0.0.1 that nothing listens on now.
fn free_low_port() -> Option<u16> {
    (900..1000).find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// The value fields of one `/proc/<pid>/status` line.
fn status_field(status: &str, name: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} line in {status}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn eventd_serves_a_low_port_bound_as_root_after_becoming_nobody() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: not running as root (binding a port below 1024 needs root)");
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        eprintln!("SKIPPED: there is no user nobody");
        return;
    };
    let Some(port) = free_low_port() else {
        eprintln!("SKIPPED: every port in 900..1000 on 127.0.0.1 is in use");
        return;
    };
    let listen = format!("elvin://127.0.0.1:{port}");
    let mut eventd = Proc::start("eventd", ["--listen", &listen, "--user", "nobody"]);
    eventd.wait_for_output("eventd ready", Duration::from_secs(20));

    let status = std::fs::read_to_string(format!("/proc/{}/status", eventd.pid())).unwrap();
    let uid = nobody.uid.as_raw().to_string();
    let gid = nobody.gid.as_raw().to_string();
    assert_eq!(status_field(&status, "Uid"), [uid.as_str(); 4], "{status}");
    assert_eq!(status_field(&status, "Gid"), [gid.as_str(); 4], "{status}");
    assert_eq!(status_field(&status, "Groups"), [gid.as_str()], "{status}");
    for caps in ["CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            status_field(&status, caps),
            ["0000000000000000"],
            "{status}"
        );
    }

    // The listener bound as root still takes clients.
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .unwrap();
}

#[test]
fn a_switch_to_root_is_refused_at_start() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: not running as root (--user needs root)");
        return;
    }
    let port = tbevents_testkit::free_port();
    let listen = format!("elvin://127.0.0.1:{port}");
    let mut command = std::process::Command::new(tbevents_testkit::bin_path("eventd"));
    command.args(["--listen", &listen, "--user", "root"]);
    let mut eventd = Proc::spawn("eventd", command);
    let status = eventd.wait(Duration::from_secs(20));
    assert!(!status.success());
    let stderr = eventd.stderr();
    assert!(
        stderr.contains("still holds uid 0") && stderr.contains("refusing to run"),
        "{stderr}"
    );
}
