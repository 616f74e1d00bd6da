//! Shared helpers for the tools' integration tests: the real binaries, a
//! real `eventd`, key files, and an event-library subscriber.
//!
//! Test-only code: failures panic with a message.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use tbevents_testkit::{Proc, Router};

use tbevents_event::blocking::EventHandle;
use tbevents_event::{AddressTuple, EventNotification};

/// How long a test waits for something that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(10);

/// An experiment key, as Emulab writes it (no newline).
pub const KEY: &[u8] = b"5f4dcc3b5aa765d61d8327deb882cf99";

/// The path of one of this package's binaries.
pub fn tool(name: &str) -> PathBuf {
    match name {
        "tevc" => PathBuf::from(env!("CARGO_BIN_EXE_tevc")),
        "eventdebug" => PathBuf::from(env!("CARGO_BIN_EXE_eventdebug")),
        other => panic!("no tool {other}"),
    }
}

/// A command for `tool` with a clean tbevents environment (no server or
/// configuration file inherited from the machine running the tests).
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(tool(name));
    cmd.env_remove("TBEVENTS_SERVER")
        .env("TBEVENTS_CONFIG", "/nonexistent/tbevents-tests.toml")
        .env_remove("RUST_LOG");
    cmd
}

/// The outcome of running a tool to completion.
pub struct Outcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a prepared command to completion (at most [`PROMPT`]).
pub fn run(name: &str, cmd: Command) -> Outcome {
    let mut proc = Proc::spawn(name, cmd);
    let status = proc.wait(PROMPT);
    Outcome {
        status: status.code().unwrap_or(-1),
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

/// A key file in a fresh temporary directory.
pub struct KeyFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn key_file(content: &[u8]) -> KeyFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eventkey");
    std::fs::write(&path, content).expect("write key file");
    KeyFile { dir, path }
}

/// Collects what a subscription receives, on the handle's own thread.
pub struct Collector {
    pub handle: EventHandle,
    received: std::sync::Arc<std::sync::Mutex<Vec<EventNotification>>>,
}

impl Collector {
    /// Subscribes to `tuple` on `router`, with `key` if given.
    pub fn start(router: &Router, key: Option<&Path>, tuple: &AddressTuple) -> Collector {
        let handle = match key {
            Some(path) => EventHandle::register_with_keyfile(&router.uri(), path),
            None => EventHandle::register(&router.uri()),
        }
        .expect("register the test subscriber");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        handle
            .subscribe(tuple, move |_, event| sink.lock().unwrap().push(event))
            .expect("subscribe");
        Collector { handle, received }
    }

    /// Waits for the next event (dispatching on this thread).
    pub fn next(&self) -> EventNotification {
        let deadline = Instant::now() + PROMPT;
        loop {
            {
                let mut received = self.received.lock().unwrap();
                if !received.is_empty() {
                    return received.remove(0);
                }
            }
            assert!(Instant::now() < deadline, "no event within {PROMPT:?}");
            self.handle
                .poll_blocking(Some(Duration::from_millis(100)))
                .expect("poll");
        }
    }
}
