//! Shared helpers for the event library's integration tests: a real
//! `eventd`, key files, and waiting with a limit.
//!
//! Test-only code: failures panic with a message.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use tbevents_testkit::Router;

/// How long a test waits for something that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(5);

/// A 32-hex-character key like the ones Emulab generates.
pub const KEY: &[u8] = b"5f4dcc3b5aa765d61d8327deb882cf99";
/// A different key.
pub const OTHER_KEY: &[u8] = b"0cc175b9c0f1b6a831c399e269772661";

/// A key file holding `content`, in a fresh temporary directory.
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

/// Awaits `future`, failing the test after [`PROMPT`].
pub async fn soon<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PROMPT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing within {PROMPT:?}"),
    }
}

/// The `MARK` attributes of what `subscription` receives, in arrival
/// order, up to the moment every mark in `sentinels` has arrived (waiting
/// up to [`PROMPT`]); the sentinels themselves are left out. A test sends
/// each sentinel after the events under test on the same connection, so
/// by the time it arrives anything sent before it has arrived too: extra
/// or dropped deliveries show without waiting for quiet.
pub async fn marks(
    subscription: &mut tbevents_event::EventSubscription,
    sentinels: &[&str],
) -> Vec<String> {
    let mut missing: Vec<&str> = sentinels.to_vec();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PROMPT;
    while !missing.is_empty() {
        let event = match tokio::time::timeout_at(deadline, subscription.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the subscription ended; marks so far: {seen:?}"),
            Err(_) => panic!("sentinels {missing:?} not received; marks so far: {seen:?}"),
        };
        let mark = event.get_string("MARK").unwrap_or("?").to_owned();
        match missing.iter().position(|s| *s == mark) {
            Some(i) => {
                missing.remove(i);
            }
            None => seen.push(mark),
        }
    }
    seen
}
