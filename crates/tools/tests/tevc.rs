//! The real `tevc` binary through a real `eventd`, checked by a subscriber
//! holding the experiment key: every attribute of what it sends, every
//! time form, control mode, the server precedence, and each failure's
//! message and exit status.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Collector, KEY, Outcome, Router, command, key_file, run, tool};
use tbevents_event::{AddressTuple, EventNotification};

fn now_micros() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_micros()).unwrap()
}

fn firing_micros(event: &EventNotification) -> i64 {
    let t = event.firing_time().expect("time_sec and time_usec");
    assert!((0..1_000_000).contains(&t.usec), "usec out of range: {t:?}");
    i64::from(t.sec) * 1_000_000 + i64::from(t.usec)
}

/// Runs `tevc -s 127.0.0.1 -p <port> -k <key> -e p/e <args...>`.
fn tevc(router: &Router, key: &std::path::Path, args: &[&str]) -> Outcome {
    let mut cmd = command("tevc");
    cmd.args(["-s", "127.0.0.1", "-p", &router.port.to_string(), "-k"])
        .arg(key)
        .args(["-e", "p/e"])
        .args(args);
    run("tevc", cmd)
}

fn requests(router: &Router, key: &std::path::Path) -> Collector {
    Collector::start(
        router,
        Some(key),
        &AddressTuple::new().expt("p/e").scheduler(1),
    )
}

#[test]
fn every_attribute_of_an_experiment_event() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let collector = requests(&router, &key.path);

    let before = now_micros();
    let outcome = tevc(
        &router,
        &key.path,
        &[
            "now",
            "cbr0",
            "set",
            "interval_=0.2",
            "size=512",
            "{tcl",
            "code}",
        ],
    );
    let after = now_micros();
    assert_eq!(outcome.status, 0, "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, "");

    let event = collector.next();
    assert_eq!(event.site(), Some("*"));
    assert_eq!(event.expt(), Some("p/e"));
    assert_eq!(event.group(), Some("*"));
    assert_eq!(event.host(), Some("*"));
    assert_eq!(event.objtype(), Some("*"));
    assert_eq!(event.objname(), Some("cbr0"));
    assert_eq!(event.eventtype(), Some("MODIFY"), "SET means MODIFY");
    assert_eq!(event.scheduler(), Some(1));
    assert_eq!(event.sender(), Some("127.0.0.1"));
    assert_eq!(event.arguments(), Some("INTERVAL=0.2 SIZE=512 {tclcode}"));
    let when = firing_micros(&event);
    assert!(
        before <= when && when <= after,
        "{before} <= {when} <= {after}"
    );
    // The collector holds the key: reaching it means the MAC verified.
    assert!(event.has_hmac());
    assert_eq!(event.hmac().map(<[u8]>::len), Some(20));
    let names: Vec<&str> = event.attributes().iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "ARGS",
            "EVENTTYPE",
            "EXPT",
            "GROUP",
            "HOST",
            "OBJNAME",
            "OBJTYPE",
            "SCHEDULER",
            "SITE",
            "___SENDER___",
            "__hmac__",
            "time_sec",
            "time_usec"
        ]
    );
}

#[test]
fn relative_and_absolute_times() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let collector = requests(&router, &key.path);

    // +N: whole seconds; no ARGS attribute without arguments.
    let before = now_micros();
    let outcome = tevc(&router, &key.path, &["+10", "cbr0", "start"]);
    let after = now_micros();
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    let event = collector.next();
    assert_eq!(event.eventtype(), Some("START"));
    assert_eq!(event.arguments(), None);
    let when = firing_micros(&event);
    assert!(before + 10_000_000 <= when && when <= after + 10_000_000);

    // +N.F: 1.7 s exactly, never a negative microsecond count (the
    // original sent +2 s and -300 000 µs).
    for (spec, micros) in [
        ("+1.7", 1_700_000),
        ("+0.25", 250_000),
        ("+2.000001", 2_000_001),
    ] {
        let before = now_micros();
        let outcome = tevc(&router, &key.path, &[spec, "cbr0", "stop"]);
        let after = now_micros();
        assert_eq!(outcome.status, 0, "{spec}: {}", outcome.stderr);
        let when = firing_micros(&collector.next());
        assert!(
            before + micros <= when && when <= after + micros,
            "{spec}: {before}+{micros} <= {when} <= {after}+{micros}"
        );
    }

    // Absolute, in the time zone tevc runs in.
    for (tz, expected) in [("UTC0", 1_922_348_710), ("XXX-5", 1_922_348_710 - 5 * 3600)] {
        let mut cmd = command("tevc");
        cmd.env("TZ", tz)
            .args(["-s", "127.0.0.1", "-p", &router.port.to_string(), "-k"])
            .arg(&key.path)
            .args(["-e", "p/e", "301201094510", "link0", "down"]);
        let outcome = run("tevc", cmd);
        assert_eq!(outcome.status, 0, "{tz}: {}", outcome.stderr);
        let t = collector.next().firing_time().unwrap();
        assert_eq!((t.sec, t.usec), (expected, 0), "TZ={tz}");
    }
}

#[test]
fn debug_prints_what_is_sent() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let collector = requests(&router, &key.path);
    let outcome = tevc(&router, &key.path, &["-d", "now", "prog", "start"]);
    // -d comes before TIME, so it is an option (after TIME it would be an
    // event argument).
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    for needle in [
        "tevc: server elvin://127.0.0.1:",
        "(from -s)",
        "tevc: sending to elvin://127.0.0.1:",
        "EVENTTYPE (string) = \"START\"",
        "SCHEDULER (int32) = 1",
        "__hmac__ (opaque) = ",
        "time_sec (int32) = ",
    ] {
        assert!(
            outcome.stderr.contains(needle),
            "{needle:?} in {}",
            outcome.stderr
        );
    }
    assert_eq!(collector.next().objname(), Some("prog"));
}

#[test]
fn control_mode_as_root() {
    if !nix::unistd::geteuid().is_root() {
        // The refusal is tested below; sending needs root.
        let outcome = run("tevc", {
            let mut cmd = command("tevc");
            cmd.args(["-c", "reboot"]);
            cmd
        });
        assert_eq!(outcome.status, 255);
        assert!(
            outcome
                .stderr
                .contains("Only root can send TBCONTROL events")
        );
        return;
    }
    let router = Router::start(&[]);
    let watcher = Collector::start(&router, None, &AddressTuple::new().objtype("TBCONTROL"));

    let mut cmd = command("tevc");
    cmd.args([
        "-s",
        "127.0.0.1",
        "-p",
        &router.port.to_string(),
        "-c",
        "reboot",
    ]);
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    let event = watcher.next();
    assert_eq!(event.objtype(), Some("TBCONTROL"));
    assert_eq!(event.eventtype(), Some("REBOOT"));
    assert_eq!(event.scheduler(), Some(0), "sent at once");
    assert_eq!(event.expt(), Some("*"));
    assert_eq!(event.objname(), Some("*"));
    assert!(!event.contains("__hmac__"), "control events are not signed");
    assert!(!event.contains("time_sec"));

    // Unknown control event; events only valid for experiments are refused.
    for name in ["frob", "complete"] {
        let mut cmd = command("tevc");
        cmd.args([
            "-s",
            "127.0.0.1",
            "-p",
            &router.port.to_string(),
            "-c",
            name,
        ]);
        let outcome = run("tevc", cmd);
        assert_eq!(outcome.status, 255);
        assert!(
            outcome
                .stderr
                .contains(&format!("Unknown TBCONTROL event: {}", name.to_uppercase())),
            "{}",
            outcome.stderr
        );
    }
    // Exactly one EVENT.
    let mut cmd = command("tevc");
    cmd.args(["-c", "reboot", "extra"]);
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 255);
    assert!(
        outcome.stderr.contains("exactly one EVENT"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn control_mode_refuses_other_users() {
    if !nix::unistd::geteuid().is_root() {
        return; // covered by control_mode_as_root's non-root branch
    }
    // Run a copy of tevc as nobody (the copy sits in a directory anyone
    // may enter, wherever the target directory is).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("tevc");
    std::fs::copy(tool("tevc"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .args(["-c", "reboot"])
        .env_remove("TBEVENTS_SERVER");
    let outcome = run("setpriv", cmd);
    assert_eq!(outcome.status, 255, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("Only root can send TBCONTROL events"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn server_precedence_flag_env_file() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let collector = requests(&router, &key.path);
    let port = router.port.to_string();
    let config_dir = tempfile::tempdir().unwrap();
    let good_config = config_dir.path().join("good.toml");
    std::fs::write(&good_config, "event_server = \"127.0.0.1\"\n").unwrap();
    let bad_config = config_dir.path().join("bad.toml");
    std::fs::write(&bad_config, "event_server = \"no-such-host.invalid\"\n").unwrap();

    let base = |objname: &str| {
        let mut cmd = command("tevc");
        cmd.args(["-p", &port, "-k"])
            .arg(&key.path)
            .args(["-e", "p/e", "now", objname, "start"]);
        cmd
    };
    // The configuration file alone.
    let mut cmd = base("from-file");
    cmd.env("TBEVENTS_CONFIG", &good_config);
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(collector.next().objname(), Some("from-file"));

    // The environment beats the file.
    let mut cmd = base("from-env");
    cmd.env("TBEVENTS_CONFIG", &bad_config)
        .env("TBEVENTS_SERVER", "127.0.0.1");
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(collector.next().objname(), Some("from-env"));

    // The flag beats both.
    let mut cmd2 = command("tevc");
    cmd2.env("TBEVENTS_CONFIG", &bad_config)
        .env("TBEVENTS_SERVER", "no-such-host.invalid")
        .args(["-s", "127.0.0.1", "-p", &port, "-k"])
        .arg(&key.path)
        .args(["-e", "p/e", "now", "from-flag", "start"]);
    let outcome = run("tevc", cmd2);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(collector.next().objname(), Some("from-flag"));

    // The file's server is used (and fails) when nothing else is given.
    let mut cmd = base("unreachable");
    cmd.env("TBEVENTS_CONFIG", &bad_config);
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 255);
    assert!(
        outcome.stderr.contains("no-such-host.invalid"),
        "{}",
        outcome.stderr
    );

    // A named configuration file that does not exist is an error.
    let mut cmd = base("missing-config");
    cmd.env("TBEVENTS_CONFIG", config_dir.path().join("missing.toml"));
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 255);
    assert!(
        outcome.stderr.contains("missing.toml"),
        "{}",
        outcome.stderr
    );
    no_more_than_a_sentinel(&router, &key.path, &collector);
}

/// Asserts that nothing reached `collector` before a sentinel event sent
/// now by a successful tevc: each earlier tevc had finished (and so sent
/// whatever it sent) before this one started.
fn no_more_than_a_sentinel(router: &Router, key: &std::path::Path, collector: &Collector) {
    let outcome = tevc(router, key, &["now", "sentinel", "start"]);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(
        collector.next().objname(),
        Some("sentinel"),
        "nothing was sent before the sentinel"
    );
}

/// Runs tevc with `args` and checks it fails with status 255 and a
/// message containing `needle`.
fn fails(args: &[&str], needle: &str) {
    let mut cmd = command("tevc");
    cmd.args(args);
    let outcome = run("tevc", cmd);
    assert_eq!(outcome.status, 255, "{args:?}: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains(needle),
        "{args:?}: expected {needle:?} in {}",
        outcome.stderr
    );
    assert!(outcome.stderr.starts_with("tevc: "), "{}", outcome.stderr);
}

#[test]
fn failures_have_clear_messages_and_status_255() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let collector = requests(&router, &key.path);
    let port = router.port.to_string();
    let key_path = key.path.to_str().unwrap();
    let ok_prefix = ["-s", "127.0.0.1", "-p", port.as_str(), "-k", key_path];
    let with = |rest: &[&'static str]| -> Vec<String> {
        ok_prefix
            .iter()
            .map(|s| s.to_string())
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let check = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&refs, needle);
    };

    check(
        with(&["-e", "p/e", "now", "cbr0", "frob"]),
        "Unknown event: FROB",
    );
    check(
        with(&["-e", "pe", "now", "cbr0", "start"]),
        "Malformed pid/eid",
    );
    check(with(&["now", "cbr0", "start"]), "Must provide pid/eid");
    check(
        with(&["-e", "p/e", "now", "cbr0"]),
        "expected TIME OBJNAME EVENT",
    );
    check(
        with(&["-e", "p/e", "+x", "cbr0", "start"]),
        "bad time \"+x\"",
    );
    check(with(&["-e", "p/e", "+1.", "cbr0", "start"]), "bad time");
    check(
        with(&["-e", "p/e", "12345", "cbr0", "start"]),
        "even number of digits",
    );
    check(
        with(&["-e", "p/e", "soon", "cbr0", "start"]),
        "bad time \"soon\"",
    );
    check(
        with(&["-e", "p/e", "now", "cbr0", "start", "=3"]),
        "the key) is empty",
    );
    fails(
        &["-e", "p/e", "-p", "notaport", "now", "x", "start"],
        "invalid value",
    );

    // Unreadable key file: the default path, and an explicit missing one.
    fails(
        &[
            "-s",
            "127.0.0.1",
            "-e",
            "nosuchproj/nosuchexp",
            "now",
            "cbr0",
            "start",
        ],
        "Could not read /proj/nosuchproj/exp/nosuchexp/tbdata/eventkey",
    );
    let missing = key.dir.path().join("nokey");
    fails(
        &[
            "-k",
            missing.to_str().unwrap(),
            "-e",
            "p/e",
            "now",
            "cbr0",
            "start",
        ],
        "Could not read",
    );
    let empty = key_file(b"");
    fails(
        &[
            "-k",
            empty.path.to_str().unwrap(),
            "-e",
            "p/e",
            "now",
            "cbr0",
            "start",
        ],
        "is empty",
    );

    // Unreachable server.
    let closed = tbevents_testkit::free_port().to_string();
    fails(
        &[
            "-s",
            "127.0.0.1",
            "-p",
            &closed,
            "-k",
            key_path,
            "-e",
            "p/e",
            "now",
            "cbr0",
            "start",
        ],
        "could not register with event system",
    );

    // None of the failures sent anything.
    no_more_than_a_sentinel(&router, &key.path, &collector);
}

#[test]
fn help_is_a_manual_and_exits_0() {
    for flag in ["-h", "--help"] {
        let mut cmd = command("tevc");
        cmd.arg(flag);
        let outcome = run("tevc", cmd);
        assert_eq!(outcome.status, 0);
        for section in [
            "SYNOPSIS",
            "TIME",
            "EXAMPLES",
            "EXIT STATUS",
            "255",
            "ENVIRONMENT",
        ] {
            assert!(outcome.stdout.contains(section), "{section}");
        }
    }
}
