//! `eventd --user/--group` gives up root after binding, and `--syslog`
//! sends its log lines to a syslog socket as well as stderr.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use tbevents_testkit::{Proc, free_port};

#[test]
fn eventd_binds_then_runs_as_the_given_account_and_logs_to_syslog() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: not running as root (dropping privileges needs root)");
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        eprintln!("SKIPPED: there is no user nobody");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket_path = dir.path().join("log");
    let syslog = UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let port = free_port();
    let listen = format!("elvin://127.0.0.1:{port}");
    let mut eventd = Proc::start(
        "eventd",
        [
            "--listen",
            &listen,
            "--user",
            "nobody",
            "--syslog-socket",
            socket_path.to_str().unwrap(),
        ],
    );
    eventd.wait_for_output("eventd ready", Duration::from_secs(20));
    let status = std::fs::read_to_string(format!("/proc/{}/status", eventd.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let ids: Vec<u32> = uid_line[4..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(ids, vec![nobody.uid.as_raw(); 4], "{status}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(
        !groups[7..].split_whitespace().any(|g| g == "0"),
        "{groups}"
    );
    // Still serving on the port it bound as root.
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .unwrap();

    // The syslog copy: facility daemon, the program's name, the lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("eventd ready")) {
        assert!(Instant::now() < deadline, "no syslog lines: {seen:?}");
        let mut buf = [0u8; 8192];
        if let Ok(n) = syslog.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("<30>eventd[") && l.contains("switched to an unprivileged")),
        "{seen:?}"
    );
}

#[test]
fn user_without_root_is_a_clear_error_at_start() {
    let port = free_port();
    let listen = format!("elvin://127.0.0.1:{port}");
    let eventd = tbevents_testkit::bin_path("eventd");
    // As root, start it as nobody so it lacks the privilege to switch.
    let mut command = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
            .arg(&eventd);
        c
    } else {
        std::process::Command::new(&eventd)
    };
    command.args(["--listen", &listen, "--user", "nobody"]);
    let mut proc = Proc::spawn("eventd", command);
    let status = proc.wait(Duration::from_secs(20));
    assert!(!status.success());
    let stderr = proc.stderr();
    assert!(stderr.contains("need eventd to start as root"), "{stderr}");
}
