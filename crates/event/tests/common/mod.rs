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
/// How long a test waits to be confident something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

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

/// The `MARK` attributes of what `subscription` receives: waits up to
/// [`PROMPT`] for the first `expected`, then until it has been quiet for
/// [`QUIET`] (so extra deliveries are caught too).
pub async fn marks(
    subscription: &mut tbevents_event::EventSubscription,
    expected: usize,
) -> Vec<String> {
    let mark = |event: tbevents_event::EventNotification| {
        event.get_string("MARK").unwrap_or("?").to_owned()
    };
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PROMPT;
    while seen.len() < expected {
        match tokio::time::timeout_at(deadline, subscription.recv()).await {
            Ok(Some(event)) => seen.push(mark(event)),
            _ => return seen,
        }
    }
    while let Ok(Some(event)) = tokio::time::timeout(QUIET, subscription.recv()).await {
        seen.push(mark(event));
    }
    seen
}
