//! Integration tests for `evproxy`: two real `eventd` routers (the event
//! server and a node's own router) with the real `evproxy` binary between
//! them, and agents on both sides using the event library.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use elvin_client::{Attributes, Client, ConnectOptions, SubscribeOptions, Subscription};
use tbevents_event::{
    AddressTuple, EventHandle, EventKey, EventNotification, HMAC_LENGTH, RegisterOptions, Value,
};
use tbevents_testkit::{Proc, Router, free_port, signals};

/// How long a test waits for something that should happen promptly.
const PROMPT: Duration = Duration::from_secs(10);

/// The experiment key, as Emulab writes it.
const KEY: &[u8] = b"5f4dcc3b5aa765d61d8327deb882cf99";

const EXPT: &str = "testbed/proxy";

fn key() -> EventKey {
    EventKey::from_bytes(KEY).unwrap()
}

/// `evproxy` with a clean environment (no event server or configuration
/// file inherited from the machine running the tests).
fn evproxy_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evproxy"));
    cmd.args(args)
        .env_remove("TBEVENTS_SERVER")
        .env("TBEVENTS_CONFIG", "/nonexistent/tbevents-tests.toml")
        .env_remove("RUST_LOG");
    cmd
}

/// Starts `evproxy` between `upstream_port` and `local_port` for
/// [`EXPT`] with `extra` arguments; waits until it is forwarding unless
/// `wait` is false.
fn start_evproxy(upstream_port: u16, local_port: u16, extra: &[&str], wait: bool) -> Proc {
    let upstream_port = upstream_port.to_string();
    let local = format!("127.0.0.1:{local_port}");
    let mut args = vec![
        "-s",
        "127.0.0.1",
        "-p",
        upstream_port.as_str(),
        "-l",
        local.as_str(),
        "-e",
        EXPT,
        "--retry-interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn("evproxy", evproxy_command(&args));
    if wait {
        proc.wait_for_output("forwarding", PROMPT);
    }
    proc
}

/// Waits until `proc`'s stderr contains `needle` at least `count` times.
fn wait_for_count(proc: &mut Proc, needle: &str, count: usize) {
    let deadline = Instant::now() + PROMPT;
    while proc.stderr().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "expected {count} x {needle:?}; stderr:\n{}",
            proc.stderr()
        );
        assert!(
            proc.try_wait().is_none(),
            "evproxy exited:\n{}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A keyed event-library handle on `router`.
async fn keyed(router: &Router) -> EventHandle {
    EventHandle::register_with(&router.uri(), RegisterOptions::new().key(key()))
        .await
        .unwrap()
}

/// A raw Elvin subscriber on `router` to every notification of both test
/// experiments, whatever its SCHEDULER.
async fn raw_watcher(router: &Router) -> (Client, Subscription) {
    let client = Client::connect(router.uri().as_str(), ConnectOptions::default())
        .await
        .unwrap();
    let subscription = client
        .subscribe(
            r#"EXPT == "testbed/proxy" || EXPT == "testbed/other""#,
            SubscribeOptions::default(),
        )
        .await
        .unwrap();
    (client, subscription)
}

/// The next notification of a raw subscription.
async fn next_raw(subscription: &mut Subscription) -> Attributes {
    let notification = tokio::time::timeout(PROMPT, subscription.recv())
        .await
        .expect("a notification within the prompt time")
        .expect("the subscription is live");
    (*notification.attributes).clone()
}

/// Asserts that the next notification on a raw subscription is the
/// sentinel `objname`. The caller sends the sentinel after everything that
/// must not arrive, along the same path, so anything that should not have
/// come would be ahead of it.
async fn assert_sentinel_next(subscription: &mut Subscription, objname: &str, what: &str) {
    let got = next_raw(subscription).await;
    assert_eq!(
        got.get_str("OBJNAME"),
        Some(objname),
        "{what}: expected the sentinel next, got {got:?}"
    );
}

/// A producer event for this experiment.
fn event(handle: &EventHandle, expt: &str, host: &str, objname: &str) -> EventNotification {
    handle.new_notification(
        &AddressTuple::new()
            .expt(expt)
            .host(host)
            .objtype("PROGRAM")
            .objname(objname)
            .eventtype("START"),
    )
}

/// Attributes sorted by name, for comparisons that must not depend on the
/// order a router keeps them in.
fn sorted(attributes: &Attributes) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = attributes
        .iter()
        .map(|(name, value)| (name.to_owned(), format!("{value:?}")))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_only_this_nodes_and_broadcast_events_with_their_signatures() {
    let upstream = Router::start(&[]);
    let local = Router::start(&[]);
    // No -i: the node address is the one the event server sees, 127.0.0.1.
    let mut proxy = start_evproxy(
        upstream.port,
        local.port,
        &["-d", "--stats-interval", "300ms"],
        true,
    );
    assert!(
        proxy.stderr().contains("node_address=127.0.0.1"),
        "{}",
        proxy.stderr()
    );

    // An agent on the node, checking signatures with the experiment key,
    // and a raw watcher seeing everything that reaches the local router.
    let agent = keyed(&local).await;
    let mut agent_events = agent
        .subscribe(&AddressTuple::new().expt(EXPT))
        .await
        .unwrap();
    let (_watcher, mut local_raw) = raw_watcher(&local).await;

    let producer = keyed(&upstream).await;
    let mut sent = Vec::new();
    for (expt, host, objname, expected) in [
        (EXPT, "*", "broadcast", true),
        (EXPT, "127.0.0.1", "for-this-node", true),
        (EXPT, "10.9.9.9", "for-another-node", false),
        ("testbed/other", "*", "other-experiment", false),
    ] {
        let mut notification = event(&producer, expt, host, objname);
        producer.notify(&mut notification).await.unwrap();
        if expected {
            sent.push(notification.attributes().clone());
        }
    }
    // A scheduler request for this experiment stays upstream.
    let mut request = event(&producer, EXPT, "*", "request");
    producer
        .schedule(&mut request, SystemTime::now())
        .await
        .unwrap();
    let mut last = event(&producer, EXPT, "*", "last");
    producer.notify(&mut last).await.unwrap();
    sent.push(last.attributes().clone());

    // The agent gets exactly the expected events, in order, and every
    // signature checks out.
    for expected in &sent {
        let got = tokio::time::timeout(PROMPT, agent_events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.objname(), expected.get_str("OBJNAME"));
        assert!(got.is_signed_with(&key()), "verified with the key");
    }
    assert_eq!(agent_events.rejected(), 0, "no signature failed");

    // Byte for byte what the producer sent, __hmac__ included.
    for expected in &sent {
        let got = next_raw(&mut local_raw).await;
        assert_eq!(sorted(&got), sorted(expected));
        match got.get("__hmac__") {
            Some(Value::Opaque(mac)) => assert_eq!(mac.len(), HMAC_LENGTH),
            other => panic!("__hmac__ not kept: {other:?}"),
        }
        key()
            .verify(&got)
            .expect("the forwarded signature verifies");
    }
    // Nothing more: a sentinel sent last is next.
    let mut sentinel = event(&producer, EXPT, "*", "sentinel");
    producer.notify(&mut sentinel).await.unwrap();
    assert_sentinel_next(&mut local_raw, "sentinel", "local router").await;

    // -d: one line per forwarded event; the periodic summary counts them.
    let log = proxy.stderr();
    assert!(
        log.contains("upstream->local") && log.contains("START PROGRAM broadcast"),
        "{log}"
    );
    assert!(!log.contains("for-another-node"), "{log}");
    wait_for_count(&mut proxy, "upstream_to_local=4", 1);

    proxy.signal(signals::SIGTERM);
    let status = proxy.wait(PROMPT);
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
    let log = proxy.stderr();
    let exiting = log
        .lines()
        .find(|line| line.contains("evproxy exiting"))
        .unwrap_or_else(|| panic!("no final line:\n{log}"));
    assert!(exiting.contains("upstream_to_local=4"), "{exiting}");
    assert!(exiting.contains("local_to_upstream=0"), "{exiting}");
    assert!(exiting.contains("upstream_to_local_failed=0"), "{exiting}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_requests_go_upstream_and_local_fired_events_do_not() {
    let upstream = Router::start(&[]);
    let local = Router::start(&[]);
    let mut proxy = start_evproxy(upstream.port, local.port, &["-i", "10.1.1.2"], true);

    // The experiment's scheduler upstream (keyed, requests only) and a raw
    // watcher of everything upstream.
    let scheduler = keyed(&upstream).await;
    let mut requests = scheduler
        .subscribe(&AddressTuple::new().expt(EXPT).scheduler(1))
        .await
        .unwrap();
    let (_watcher, mut upstream_raw) = raw_watcher(&upstream).await;
    let (_local_watcher, mut local_raw) = raw_watcher(&local).await;

    // An agent on the node publishes a fired event locally (stays local),
    // then asks the scheduler for COMPLETE, once broadcast and once with
    // a HOST of its own (both go up: HOST is not required to be "*").
    let agent = keyed(&local).await;
    let mut local_only = event(&agent, EXPT, "*", "local-only");
    agent.notify(&mut local_only).await.unwrap();
    let mut sent = Vec::new();
    for host in ["*", "10.1.1.2"] {
        let mut complete = agent.new_notification(
            &AddressTuple::new()
                .expt(EXPT)
                .host(host)
                .objname("prog0")
                .eventtype("COMPLETE"),
        );
        agent
            .schedule(&mut complete, SystemTime::now())
            .await
            .unwrap();
        sent.push(complete.attributes().clone());
    }
    // A request for another experiment is not this proxy's business.
    let mut foreign = event(&agent, "testbed/other", "*", "foreign");
    agent
        .schedule(&mut foreign, SystemTime::now())
        .await
        .unwrap();

    for expected in &sent {
        let got = tokio::time::timeout(PROMPT, requests.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.scheduler(), Some(1));
        assert_eq!(got.host(), expected.get_str("HOST"));
        assert!(got.is_signed_with(&key()));
        assert_eq!(sorted(got.attributes()), sorted(expected), "unchanged");
    }
    assert_eq!(requests.rejected(), 0);

    // Upstream saw the two requests and nothing else: not the local
    // SCHEDULER 0 event, not the other experiment's request.
    for expected in &sent {
        assert_eq!(sorted(&next_raw(&mut upstream_raw).await), sorted(expected));
    }
    // Not the foreign request (sent after them) either: a request sent
    // last is the next thing upstream sees.
    let mut sentinel = event(&agent, EXPT, "*", "up-sentinel");
    agent
        .schedule(&mut sentinel, SystemTime::now())
        .await
        .unwrap();
    assert_sentinel_next(&mut upstream_raw, "up-sentinel", "upstream router").await;

    // No loop on the node either: the local event was seen once, plus
    // the four requests the agent made there, and nothing came back. A
    // fired event sent upstream now comes down the same path any looped
    // copy would, after it, so it must be next.
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(
            next_raw(&mut local_raw)
                .await
                .get_str("OBJNAME")
                .map(str::to_owned),
        );
    }
    assert_eq!(
        seen.iter()
            .filter(|name| name.as_deref() == Some("local-only"))
            .count(),
        1,
        "{seen:?}"
    );
    let down = keyed(&upstream).await;
    let mut sentinel = event(&down, EXPT, "*", "down-sentinel");
    down.notify(&mut sentinel).await.unwrap();
    assert_sentinel_next(&mut local_raw, "down-sentinel", "local router").await;

    proxy.signal(signals::SIGINT);
    assert_eq!(proxy.wait(PROMPT).code(), Some(0));
    let log = proxy.stderr();
    let exiting = log.lines().find(|l| l.contains("evproxy exiting")).unwrap();
    assert!(exiting.contains("local_to_upstream=3"), "{exiting}");
    assert!(exiting.contains("upstream_to_local=1"), "{exiting}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_address_selects_that_nodes_events() {
    let upstream = Router::start(&[]);
    let local = Router::start(&[]);
    let proxy = start_evproxy(upstream.port, local.port, &["-i", "10.1.1.2"], true);
    assert!(proxy.stderr().contains("node_address=10.1.1.2"));
    assert!(
        proxy
            .stderr()
            .contains(r#"( HOST == "*" || HOST == "10.1.1.2" )"#),
        "{}",
        proxy.stderr()
    );

    let (_watcher, mut local_raw) = raw_watcher(&local).await;
    let producer = keyed(&upstream).await;
    for host in ["127.0.0.1", "10.1.1.2"] {
        let mut notification = event(&producer, EXPT, host, host);
        producer.notify(&mut notification).await.unwrap();
    }
    assert_eq!(
        next_raw(&mut local_raw).await.get_str("HOST"),
        Some("10.1.1.2")
    );
    let mut sentinel = event(&producer, EXPT, "10.1.1.2", "sentinel");
    producer.notify(&mut sentinel).await.unwrap();
    assert_sentinel_next(&mut local_raw, "sentinel", "local router").await;
}

/// Publishes broadcast events upstream (through fresh connections, since
/// the router may just have restarted) until one reaches `subscription`.
async fn until_forwarded(upstream: &Router, subscription: &mut Subscription, objname: &str) {
    let deadline = Instant::now() + PROMPT;
    let producer = keyed(upstream).await;
    loop {
        let mut notification = event(&producer, EXPT, "*", objname);
        producer.notify(&mut notification).await.unwrap();
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(300), subscription.recv()).await
        {
            assert_eq!(got.attributes.get_str("OBJNAME"), Some(objname));
            return;
        }
        assert!(Instant::now() < deadline, "{objname} was never forwarded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_routers_that_start_late_and_restart() {
    // The event server is not up yet when evproxy starts: it keeps trying.
    let upstream_port = free_port();
    let local = Router::start(&[]);
    let mut proxy = start_evproxy(upstream_port, local.port, &[], false);
    proxy.wait_for_output("could not connect; retrying", PROMPT);
    assert!(
        proxy.try_wait().is_none(),
        "evproxy waits for the event server"
    );
    let mut upstream = Router::start_on(upstream_port, &[]);
    proxy.wait_for_output("forwarding", PROMPT);

    let (_watcher, mut local_raw) = raw_watcher(&local).await;
    until_forwarded(&upstream, &mut local_raw, "before-restart").await;

    // Kill the event server and bring it back on the same port.
    upstream.proc.kill();
    wait_for_count(&mut proxy, "upstream router connection lost", 1);
    drop(upstream);
    let upstream = Router::start_on(upstream_port, &[]);
    wait_for_count(&mut proxy, "upstream router connection re-established", 1);
    until_forwarded(&upstream, &mut local_raw, "after-upstream-restart").await;

    // The same for the node's own router.
    let local_port = local.port;
    let mut local = local;
    local.proc.kill();
    wait_for_count(&mut proxy, "local router connection lost", 1);
    drop(local);
    let local = Router::start_on(local_port, &[]);
    wait_for_count(&mut proxy, "local router connection re-established", 1);
    let (_watcher, mut local_raw) = raw_watcher(&local).await;
    until_forwarded(&upstream, &mut local_raw, "after-local-restart").await;

    // Requests still go up after both restarts.
    let scheduler = keyed(&upstream).await;
    let mut requests = scheduler
        .subscribe(&AddressTuple::new().expt(EXPT).scheduler(1))
        .await
        .unwrap();
    let agent = keyed(&local).await;
    let mut complete = event(&agent, EXPT, "*", "prog0");
    agent
        .schedule(&mut complete, SystemTime::now())
        .await
        .unwrap();
    let got = tokio::time::timeout(PROMPT, requests.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.objname(), Some("prog0"));

    assert!(
        proxy.try_wait().is_none(),
        "the same evproxy process throughout"
    );
    proxy.signal(signals::SIGTERM);
    assert_eq!(proxy.wait(PROMPT).code(), Some(0));
}

#[test]
fn help_is_a_manual_page_and_bad_arguments_are_refused() {
    let output = evproxy_command(&["--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SIGNATURES",
        "LOOPS",
        "NODE ADDRESS",
        "CONNECTIONS",
        "LOGGING",
        "SIGNALS",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(
            help.lines().any(|line| line == section),
            "no {section} section in:\n{help}"
        );
    }

    for (args, needle) in [
        (&["-s", "127.0.0.1"][..], "--experiment"),
        (&["-e", "testbed"], "pid/eid"),
        (&["-e", "a/b,c/d"], "','"),
        (&["-e", EXPT, "-i", "node1"], "IPv4"),
        (&["-e", EXPT, "-l", "localhost:0"], "port"),
        (
            &["-e", EXPT, "-s", "elvin://ops", "-p", "5"],
            "inside the URI",
        ),
        (&["-e", EXPT, "--retry-interval", "5"], "unit"),
        (&["-e", EXPT, "--retry-interval", "0"], "longer than zero"),
        (&["-e", EXPT, "-x"], "-x"),
    ] {
        let output = evproxy_command(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }

    // The same router on both sides would loop: refused at start.
    let port = free_port().to_string();
    let local = format!("127.0.0.1:{port}");
    let output = evproxy_command(&["-s", "127.0.0.1", "-p", &port, "-l", &local, "-e", EXPT])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would loop"), "{stderr}");
}

#[test]
fn sigterm_while_waiting_for_the_routers_exits_zero() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut proxy = start_evproxy(closed.port(), free_port(), &[], false);
    proxy.wait_for_output("could not connect; retrying", PROMPT);
    proxy.signal(signals::SIGTERM);
    assert_eq!(proxy.wait(PROMPT).code(), Some(0), "{}", proxy.stderr());
    assert!(
        proxy.stderr().contains("before it connected"),
        "{}",
        proxy.stderr()
    );
}
