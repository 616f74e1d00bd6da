//! The program agent end to end: a real `eventd`, the real
//! `program-agent` binary (running programs as `nobody` when the tests run
//! as root), and signed events sent with the event library as the
//! scheduler fires them.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::{Fixture, arg, fire, next_for, nobody_uid, uid_of, wait_until, watch};
use tbevents_store::VirtProgram;
use tbevents_testkit::{Proc, signals};

const WAIT: Duration = Duration::from_secs(20);

const PROGRAMS: &[(&str, &str)] = &[
    ("sleeper", "sleep 30"),
    ("whoami", "echo hello from $USER; id -u; echo oops >&2"),
    ("stubborn", "trap '' TERM; echo ready; sleep 30"),
    ("three", "exit 3"),
];

/// Starts the agent (as root with `-u nobody`, else as the current user)
/// and waits until it is subscribed.
fn start_agent(fx: &Fixture, logdir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut args = fx.agent_args(logdir);
    if nobody_uid().is_some() {
        args.extend(["-u".to_owned(), "nobody".to_owned()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut agent = Proc::start("program-agent", &args);
    agent.wait_for_output("waiting for events", WAIT);
    agent
}

/// The pid the agent logged for `program`'s run `run`.
fn run_pid(agent: &mut Proc, program: &str, run: u64) -> i32 {
    let needle = format!("{program}: run {run} started, pid ");
    let log = agent.wait_for_output(&needle, WAIT);
    let at = log.find(&needle).unwrap() + needle.len();
    log[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // A zombie has been reaped by nobody yet; count only live processes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_kill_round_trip_as_an_unprivileged_user() {
    let fx = Fixture::new(PROGRAMS, Vec::new());
    let logdir = fx.logdir("logs");
    let mut agent = start_agent(&fx, &logdir, &[]);
    let sender = fx.keyed().await;
    let mut completes = watch(&sender, "COMPLETE", 1).await;

    // A program that prints and exits: COMPLETE with ERROR=0, logs kept.
    fire(&sender, "PROGRAM", "whoami", "START", "").await;
    let done = next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("0"), "{done:?}");
    assert_eq!(arg(&done, "EXIT_CODE").as_deref(), Some("0"));
    assert_eq!(arg(&done, "RUN").as_deref(), Some("1"));
    assert_eq!(done.objtype(), Some("PROGRAM"));
    assert_eq!(done.scheduler(), Some(1));
    assert!(
        done.firing_time().is_some(),
        "COMPLETE is a scheduler request with a time"
    );
    let out = std::fs::read_to_string(logdir.join("whoami.out.1")).unwrap();
    let err = std::fs::read_to_string(logdir.join("whoami.err.1")).unwrap();
    assert_eq!(err, "oops\n");
    let expected_uid = nobody_uid().unwrap_or_else(|| nix::unistd::getuid().as_raw());
    let expected_user = nix::unistd::User::from_uid(expected_uid.into())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(out, format!("hello from {expected_user}\n{expected_uid}\n"));
    let status = std::fs::read_to_string(logdir.join("whoami.status")).unwrap();
    assert!(
        status.contains("EXIT_CODE=0\n") && status.contains("RUN=1\n"),
        "{status}"
    );

    // A long runner: really started, as the unprivileged user; STOP ends it.
    fire(&sender, "PROGRAM", "sleeper", "START", "").await;
    let pid = run_pid(&mut agent, "sleeper", 1);
    assert_eq!(
        uid_of(pid),
        Some(expected_uid),
        "the program runs as {expected_user}"
    );
    fire(&sender, "PROGRAM", "sleeper", "STOP", "").await;
    let done = next_for(&mut completes, "sleeper", WAIT).await;
    assert_eq!(arg(&done, "SIGNAL").as_deref(), Some("SIGTERM"), "{done:?}");
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("143"));
    assert!(!alive(pid), "the stopped program is gone");

    // KILL with a signal name reaches the next run.
    fire(&sender, "PROGRAM", "sleeper", "START", "").await;
    let pid = run_pid(&mut agent, "sleeper", 2);
    fire(&sender, "PROGRAM", "sleeper", "KILL", "SIGNAL=int").await;
    let done = next_for(&mut completes, "sleeper", WAIT).await;
    assert_eq!(arg(&done, "SIGNAL").as_deref(), Some("SIGINT"), "{done:?}");
    assert_eq!(arg(&done, "RUN").as_deref(), Some("2"));
    assert!(!alive(pid));

    // START with a one-off COMMAND runs it; the program's command stays.
    fire(
        &sender,
        "PROGRAM",
        "whoami",
        "START",
        "COMMAND=/bin/echo one off",
    )
    .await;
    next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(
        std::fs::read_to_string(logdir.join("whoami.out.2")).unwrap(),
        "one off\n"
    );
    // MODIFY changes it for later starts.
    fire(
        &sender,
        "PROGRAM",
        "whoami",
        "MODIFY",
        "COMMAND=/bin/echo modified",
    )
    .await;
    fire(&sender, "PROGRAM", "whoami", "START", "").await;
    next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(
        std::fs::read_to_string(logdir.join("whoami.out.3")).unwrap(),
        "modified\n"
    );

    // The expected exit code turns exit 3 into success.
    fire(&sender, "PROGRAM", "three", "START", "").await;
    let done = next_for(&mut completes, "three", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("3"));
    fire(&sender, "PROGRAM", "three", "START", "EXPECTED_EXIT_CODE=3").await;
    let done = next_for(&mut completes, "three", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("0"), "{done:?}");
    assert_eq!(arg(&done, "EXIT_CODE").as_deref(), Some("3"));

    // A timeout stops the run and says so.
    fire(&sender, "PROGRAM", "sleeper", "START", "TIMEOUT=0.3").await;
    let done = next_for(&mut completes, "sleeper", WAIT).await;
    assert_eq!(
        arg(&done, "TIMEOUT_FIRED").as_deref(),
        Some("1"),
        "{done:?}"
    );
    assert_eq!(arg(&done, "RUN").as_deref(), Some("3"));

    // A command that does not exist ends at once with ERROR=127.
    fire(
        &sender,
        "PROGRAM",
        "whoami",
        "START",
        "COMMAND=/nonexistent/prog",
    )
    .await;
    let done = next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("127"), "{done:?}");
    let err = std::fs::read_to_string(logdir.join("whoami.err.4")).unwrap();
    assert!(err.contains("/nonexistent/prog"), "{err}");

    assert!(agent.try_wait().is_none(), "the agent is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_ignored_and_the_agent_lives_on() {
    let fx = Fixture::new(PROGRAMS, Vec::new());
    let logdir = fx.logdir("logs");
    let mut agent = start_agent(&fx, &logdir, &[]);
    let sender = fx.keyed().await;
    let mut completes = watch(&sender, "COMPLETE", 1).await;

    fire(&sender, "PROGRAM", "whoami", "FROBNICATE", "").await;
    agent.wait_for_output("unknown event type \"FROBNICATE\" ignored", WAIT);
    fire(&sender, "PROGRAM", "whoami", "KILL", "SIGNAL=NOSUCH").await;
    agent.wait_for_output("KILL ignored", WAIT);
    fire(&sender, "PROGRAM", "whoami", "START", "TIMEOUT='unclosed").await;
    agent.wait_for_output("START ignored: malformed ARGS", WAIT);
    fire(&sender, "PROGRAM", "whoami", "STOP", "").await;
    agent.wait_for_output("whoami: not running; STOP ignored", WAIT);

    // A START signed with another key never reaches the agent.
    let forger = fx.forger().await;
    fire(&forger, "PROGRAM", "whoami", "START", "").await;
    agent.wait_for_output("failed authentication", WAIT);

    // The agent is alive and still works; the forged START made no run.
    fire(&sender, "PROGRAM", "whoami", "START", "").await;
    let done = next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(arg(&done, "RUN").as_deref(), Some("1"), "{done:?}");
    assert!(!logdir.join("whoami.out.2").exists());
    assert!(agent.try_wait().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_and_shutdown_stops_programs() {
    let fx = Fixture::new(PROGRAMS, Vec::new());
    let logdir = fx.logdir("logs");
    let mut agent = start_agent(&fx, &logdir, &["--stop-grace", "0.5"]);
    let sender = fx.keyed().await;
    let mut completes = watch(&sender, "COMPLETE", 1).await;

    fire(&sender, "PROGRAM", "stubborn", "START", "").await;
    run_pid(&mut agent, "stubborn", 1);
    let out = logdir.join("stubborn.out.1");
    wait_until("the program to trap TERM", WAIT, || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("ready"))
    })
    .await;
    fire(&sender, "PROGRAM", "stubborn", "STOP", "").await;
    let done = next_for(&mut completes, "stubborn", WAIT).await;
    assert_eq!(arg(&done, "SIGNAL").as_deref(), Some("SIGKILL"), "{done:?}");
    agent.wait_for_output("sending SIGKILL", WAIT);

    // Asked to stop, the agent stops its programs and reports them.
    fire(&sender, "PROGRAM", "sleeper", "START", "").await;
    let pid = run_pid(&mut agent, "sleeper", 1);
    agent.signal(signals::SIGTERM);
    let done = next_for(&mut completes, "sleeper", WAIT).await;
    assert_eq!(arg(&done, "SIGNAL").as_deref(), Some("SIGTERM"), "{done:?}");
    let status = agent.wait(WAIT);
    assert!(status.success(), "{status}");
    assert!(!alive(pid));
}

#[test]
fn root_without_a_user_or_a_writable_log_directory_is_refused() {
    if nobody_uid().is_none() {
        eprintln!("skipped: needs root to check that root without -u is refused");
        return;
    }
    let fx = Fixture::new(PROGRAMS, Vec::new());
    let logdir = fx.logdir("logs");
    let mut agent = Proc::start("program-agent", fx.agent_args(&logdir));
    let status = agent.wait(WAIT);
    assert!(!status.success());
    assert!(
        agent.stderr().contains("without -u USER"),
        "{}",
        agent.stderr()
    );
    let mut agent = Proc::start(
        "program-agent",
        fx.agent_args(&logdir)
            .into_iter()
            .chain(["-u".into(), "root".into()]),
    );
    assert!(!agent.wait(WAIT).success());
    assert!(agent.stderr().contains("uid 0"), "{}", agent.stderr());

    // A log directory the user cannot write is refused at start.
    let closed = fx.logdir("closed");
    std::fs::create_dir(&closed).unwrap();
    let mut agent = Proc::start(
        "program-agent",
        fx.agent_args(&closed)
            .into_iter()
            .chain(["-u".into(), "nobody".into()]),
    );
    assert!(!agent.wait(WAIT).success());
    assert!(
        agent
            .stderr()
            .contains("cannot create files in the log directory"),
        "{}",
        agent.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_survives_a_router_restart() {
    let mut fx = Fixture::new(PROGRAMS, Vec::new());
    let logdir = fx.logdir("logs");
    let mut agent = start_agent(&fx, &logdir, &[]);
    let port = fx.router.port;

    // The router goes away and comes back on the same port.
    fx.router.proc.kill();
    fx.router = tbevents_testkit::Router::start_on(port, &[]);
    agent.wait_for_output("reconnected", WAIT);

    let sender = fx.keyed().await;
    let mut completes = watch(&sender, "COMPLETE", 1).await;
    fire(&sender, "PROGRAM", "whoami", "START", "").await;
    let done = next_for(&mut completes, "whoami", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("0"), "{done:?}");
    assert!(agent.try_wait().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_directory_timeout_and_expected_exit_code_apply() {
    let row = |name: &str, command: &str, dir: &str, timeout: u32, expected: u8| VirtProgram {
        vnode: common::NODE.into(),
        vname: name.into(),
        command: command.into(),
        dir: dir.into(),
        timeout,
        expected_exit_code: expected,
    };
    let fx = Fixture::with_rows(
        vec![
            row("where", "pwd", "/usr", 0, 0),
            row("slow", "sleep 30", "", 1, 0),
            row("seven", "exit 7", "", 0, 7),
        ],
        Vec::new(),
        Vec::new(),
    );
    let logdir = fx.logdir("logs");
    let _agent = start_agent(&fx, &logdir, &[]);
    let sender = fx.keyed().await;
    let mut completes = watch(&sender, "COMPLETE", 1).await;

    fire(&sender, "PROGRAM", "where", "START", "").await;
    next_for(&mut completes, "where", WAIT).await;
    assert_eq!(
        std::fs::read_to_string(logdir.join("where.out.1")).unwrap(),
        "/usr\n"
    );
    fire(&sender, "PROGRAM", "slow", "START", "").await;
    let done = next_for(&mut completes, "slow", WAIT).await;
    assert_eq!(
        arg(&done, "TIMEOUT_FIRED").as_deref(),
        Some("1"),
        "{done:?}"
    );
    fire(&sender, "PROGRAM", "seven", "START", "").await;
    let done = next_for(&mut completes, "seven", WAIT).await;
    assert_eq!(arg(&done, "ERROR").as_deref(), Some("0"), "{done:?}");
    assert_eq!(arg(&done, "EXIT_CODE").as_deref(), Some("7"));
}
