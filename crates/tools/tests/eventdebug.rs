//! The real `eventdebug` binary watching a real `eventd`: the text and
//! JSON formats for known events, `-e` narrowing (flag and positional),
//! `--scheduler`, `-k` dropping a forged event, reconnecting after the
//! router restarts, and stopping on SIGTERM.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{KEY, PROMPT, Proc, Router, command, key_file, run};
use tbevents_event::blocking::EventHandle;
use tbevents_event::{AddressTuple, EventNotification, FiringTime};
use tbevents_testkit::signals::SIGTERM;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Starts eventdebug against `router` with `args` and waits until it has
/// subscribed.
fn eventdebug(router: &Router, args: &[&str]) -> Proc {
    let mut cmd = command("eventdebug");
    cmd.args(["-s", "127.0.0.1", "-p", &router.port.to_string()])
        .args(args);
    let mut proc = Proc::spawn("eventdebug", cmd);
    proc.wait_for_output("eventdebug: listening on", PROMPT);
    proc
}

/// Waits until stdout has `lines` lines; returns them.
fn lines(proc: &mut Proc, lines: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + PROMPT;
    loop {
        let out = proc.stdout();
        let got: Vec<String> = out.lines().map(str::to_owned).collect();
        if got.len() >= lines && out.ends_with('\n') {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wanted {lines} lines, got:\n{out}\nstderr:\n{}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn producer(router: &Router) -> EventHandle {
    EventHandle::register(&router.uri()).expect("register the producer")
}

fn send(handle: &EventHandle, tuple: &AddressTuple, args: Option<&str>) -> EventNotification {
    let mut event = handle.new_notification(tuple);
    if let Some(args) = args {
        event.set_arguments(args);
    }
    handle.notify(&mut event).expect("notify");
    event
}

fn cbr0(expt: &str) -> AddressTuple {
    AddressTuple::new()
        .expt(expt)
        .host("10.1.1.2")
        .objtype("TRAFGEN")
        .objname("cbr0")
        .eventtype("START")
}

#[test]
fn text_output_for_known_events() {
    let router = Router::start(&[]);
    let mut watcher = eventdebug(&router, &[]);
    assert!(
        watcher.stderr().contains(" SCHEDULER == 0 "),
        "{}",
        watcher.stderr()
    );
    let events = producer(&router);
    let before = now_secs();
    send(&events, &cbr0("p/e"), Some("RATE=10 SIZE=512 "));
    send(&events, &AddressTuple::new().objname("bare"), None);
    let mut missing = EventNotification::new();
    missing.set_scheduler(0);
    missing.set_objname("only-objname");
    events.notify(&mut missing).unwrap();
    let got = lines(&mut watcher, 4);
    let after = now_secs();

    let (time, rest) = got[0]
        .strip_prefix("Event: ")
        .and_then(|l| l.split_once(' '))
        .expect("Event: <time> ...");
    let time: u64 = time.parse().expect("integer seconds");
    assert!(before <= time && time <= after, "{time}");
    assert_eq!(rest, "* p/e * 10.1.1.2 TRAFGEN cbr0 START");
    assert_eq!(got[1], "    ARGS: RATE=10 SIZE=512 ");
    assert!(got[2].ends_with(" * * * * * bare *"), "{}", got[2]);
    // Missing attributes print empty: two spaces between fields.
    let fields: Vec<&str> = got[3].split(' ').collect();
    assert_eq!(fields.len(), 9, "{:?}", got[3]);
    assert_eq!(fields[7], "only-objname");
    assert_eq!(&fields[2..7], ["", "", "", "", ""]);
    assert_eq!(fields[8], "");

    // Scheduler requests are not shown without --scheduler.
    let mut request = events.new_notification(&cbr0("p/e"));
    events
        .schedule_at(&mut request, FiringTime { sec: 5, usec: 6 })
        .unwrap();
    send(&events, &AddressTuple::new().objname("sentinel"), None);
    let got = lines(&mut watcher, 5);
    assert!(got[4].ends_with("sentinel *"), "{got:?}");
    assert!(!watcher.stdout().contains("scheduler request"));

    watcher.signal(SIGTERM);
    assert_eq!(watcher.wait(PROMPT).code(), Some(0));
}

#[test]
fn json_output_has_every_attribute_typed() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let mut watcher = eventdebug(&router, &["--json"]);
    let signer = EventHandle::register_with_keyfile(&router.uri(), &key.path).unwrap();
    let mut event = signer.new_notification(&cbr0("p/e"));
    event.set_arguments("RATE=10 ");
    event.put("BIG", 1i64 << 40);
    event.put("REAL", 2.5);
    signer.notify(&mut event).unwrap();
    let got = lines(&mut watcher, 1);
    assert_eq!(got.len(), 1, "one line per event: {got:?}");
    let json: serde_json::Value = serde_json::from_str(&got[0]).expect("valid JSON");
    assert!(json["received"].as_f64().unwrap() > 1.6e9);
    assert_eq!(json["scheduler_request"], false);
    let attributes = json["attributes"].as_object().unwrap();
    assert_eq!(attributes.len(), event.attributes().len());
    let typed = |name: &str| {
        (
            attributes[name]["type"].clone(),
            attributes[name]["value"].clone(),
        )
    };
    assert_eq!(typed("EXPT"), ("string".into(), "p/e".into()));
    assert_eq!(typed("HOST"), ("string".into(), "10.1.1.2".into()));
    assert_eq!(typed("SCHEDULER"), ("int32".into(), 0.into()));
    assert_eq!(typed("ARGS"), ("string".into(), "RATE=10 ".into()));
    assert_eq!(typed("___SENDER___"), ("string".into(), "127.0.0.1".into()));
    assert_eq!(typed("BIG"), ("int64".into(), (1i64 << 40).into()));
    assert_eq!(typed("REAL"), ("real64".into(), 2.5.into()));
    let mac = event.hmac().unwrap();
    assert_eq!(
        typed("__hmac__"),
        ("opaque".into(), hex::encode(mac).into())
    );
}

#[test]
fn experiment_narrowing_by_flag_or_argument() {
    let router = Router::start(&[]);
    let mut by_flag = eventdebug(&router, &["-e", "p/e"]);
    let mut positional = eventdebug(&router, &["p/e"]);
    assert!(
        by_flag.stderr().contains("( EXPT == \"p/e\" )"),
        "{}",
        by_flag.stderr()
    );
    let events = producer(&router);
    send(&events, &cbr0("q/e"), None);
    send(&events, &cbr0("p/e2"), None);
    send(&events, &AddressTuple::new().objname("no-expt"), None);
    send(&events, &cbr0("p/e"), None);
    for watcher in [&mut by_flag, &mut positional] {
        let got = lines(watcher, 1);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].ends_with("* p/e * 10.1.1.2 TRAFGEN cbr0 START"),
            "{got:?}"
        );
    }

    // Conflicting or malformed experiments are usage errors (status 1).
    for args in [&["-e", "p/e", "q/e"][..], &["nonsense"][..], &["-x"][..]] {
        let mut cmd = command("eventdebug");
        cmd.args(args);
        let outcome = run("eventdebug", cmd);
        assert_eq!(outcome.status, 1, "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stderr.starts_with("eventdebug: "),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn scheduler_requests_are_shown_and_marked() {
    let router = Router::start(&[]);
    let mut watcher = eventdebug(&router, &["--scheduler", "-e", "p/e"]);
    assert!(
        watcher.stderr().contains("SCHEDULER == 1"),
        "{}",
        watcher.stderr()
    );
    let events = producer(&router);
    let mut request = events.new_notification(&cbr0("p/e"));
    request.set_arguments("RATE=5 ");
    events
        .schedule_at(
            &mut request,
            FiringTime {
                sec: 1_900_000_000,
                usec: 42,
            },
        )
        .unwrap();
    let got = lines(&mut watcher, 2);
    assert!(
        got[0].ends_with(
            "* p/e * 10.1.1.2 TRAFGEN cbr0 START [scheduler request for 1900000000.000042]"
        ),
        "{got:?}"
    );
    assert_eq!(got[1], "    ARGS: RATE=5 ");
    send(&events, &cbr0("p/e"), None);
    let got = lines(&mut watcher, 3);
    assert!(
        got[2].ends_with("cbr0 START"),
        "live events unmarked: {got:?}"
    );

    // JSON marks requests too.
    let mut json = eventdebug(&router, &["--scheduler", "--json"]);
    events
        .schedule_at(&mut request, FiringTime { sec: 1, usec: 2 })
        .unwrap();
    let got = lines(&mut json, 1);
    let parsed: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(parsed["scheduler_request"], true);
    assert_eq!(parsed["attributes"]["time_usec"]["value"], 2);
}

#[test]
fn a_key_drops_forged_events_with_a_warning() {
    let router = Router::start(&[]);
    let key = key_file(KEY);
    let key_arg = key.path.to_str().unwrap().to_owned();
    let mut watcher = eventdebug(&router, &["-k", &key_arg]);
    let signer = EventHandle::register_with_keyfile(&router.uri(), &key.path).unwrap();

    // Forged: signed, then OBJNAME changed, sent as is.
    let mut forged = signer.new_notification(&cbr0("p/e"));
    signer.insert_hmac(&mut forged).unwrap();
    let mut attributes = forged.into_attributes();
    attributes.insert("OBJNAME", "forged");
    signer.notify_raw(&attributes).unwrap();
    // Unsigned.
    let unsigned = signer.new_notification(&AddressTuple::new().objname("unsigned"));
    signer.notify_raw(unsigned.attributes()).unwrap();
    // Genuine.
    send(&signer, &AddressTuple::new().objname("genuine"), None);

    let got = lines(&mut watcher, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with(" genuine *"), "{got:?}");
    let stderr = watcher.stderr();
    assert_eq!(
        stderr.matches("failed authentication").count(),
        2,
        "one warning per dropped event:\n{stderr}"
    );
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("no __hmac__"), "{stderr}");

    // An unusable key file is a start-up failure.
    let empty = key_file(b"");
    let mut cmd = command("eventdebug");
    cmd.args(["-s", "127.0.0.1", "-p", &router.port.to_string(), "-k"])
        .arg(&empty.path);
    let outcome = run("eventdebug", cmd);
    assert_eq!(outcome.status, 255);
    assert!(outcome.stderr.contains("is empty"), "{}", outcome.stderr);
}

#[test]
fn reconnects_after_the_router_restarts() {
    let mut router = Router::start(&[]);
    let port = router.port;
    let mut watcher = eventdebug(&router, &[]);
    send(
        &producer(&router),
        &AddressTuple::new().objname("before"),
        None,
    );
    lines(&mut watcher, 1);

    router.proc.kill();
    watcher.wait_for_output("eventdebug: lost the connection to", PROMPT);
    // A failed attempt, and it keeps going.
    watcher.wait_for_output("eventdebug: still cannot reach", PROMPT);
    assert!(
        watcher.try_wait().is_none(),
        "still running while the router is down"
    );
    let router = Router::start_on(port, &[]);
    watcher.wait_for_output("eventdebug: reconnected to", PROMPT);
    send(
        &producer(&router),
        &AddressTuple::new().objname("after"),
        None,
    );
    let got = lines(&mut watcher, 2);
    assert!(got[1].ends_with(" after *"), "{got:?}");

    watcher.signal(SIGTERM);
    assert_eq!(watcher.wait(PROMPT).code(), Some(0));
}

#[test]
fn unreachable_router_at_start_fails_with_255() {
    let port = tbevents_testkit::free_port().to_string();
    let mut cmd = command("eventdebug");
    cmd.args(["-s", "127.0.0.1", "-p", &port]);
    let outcome = run("eventdebug", cmd);
    assert_eq!(outcome.status, 255);
    assert!(
        outcome
            .stderr
            .contains("Unable to register with event system"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stdout, "");
}

#[test]
fn help_is_a_manual_and_exits_0() {
    let mut cmd = command("eventdebug");
    cmd.arg("--help");
    let outcome = run("eventdebug", cmd);
    assert_eq!(outcome.status, 0);
    for section in [
        "SYNOPSIS",
        "DESCRIPTION",
        "-b",
        "--scheduler",
        "--json",
        "EXIT STATUS",
    ] {
        assert!(outcome.stdout.contains(section), "{section}");
    }
}
