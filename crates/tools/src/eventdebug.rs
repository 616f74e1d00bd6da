//! `eventdebug`: print every event passing through an event router.
//!
//! It subscribes to all live events (` SCHEDULER == 0 `), optionally
//! narrowed to one experiment and optionally also to scheduler requests,
//! and prints one line per event on standard output, flushed at once so it
//! can be piped:
//!
//! ```text
//! Event: 1717171717 * testbed/demo * 10.1.1.2 TRAFGEN cbr0 START
//!     ARGS: RATE=10 SIZE=512
//! ```
//!
//! The time is when the event was received (whole seconds since the
//! epoch). A missing attribute prints as nothing, leaving two spaces. When
//! the event has a non-empty `ARGS`, it follows on a continuation line
//! starting with four spaces and `ARGS: `, so `grep '^Event:'` still gives
//! one line per event. Scheduler requests (with `--scheduler`) end with
//! ` [scheduler request for <time_sec>.<time_usec>]`. Control characters
//! in values are printed escaped (`\n`, `\t`, `\u{1b}`), so an event
//! cannot forge extra output lines.
//!
//! `--json` prints one JSON object per line instead, with every attribute
//! typed: `{"received": 1717171717.123456, "scheduler_request": false,
//! "attributes": {"EXPT": {"type": "string", "value": "testbed/demo"}, ...}}`.
//! Opaque values are lower-case hex; int64 are JSON numbers; real64 values
//! that JSON cannot represent (NaN, infinities) are strings.
//!
//! With `-k`, events whose HMAC is missing or wrong are dropped with a
//! warning on standard error. When the router goes away, `eventdebug` says
//! so on standard error and reconnects every second until it is back.
//!
//! Decisions where the original was vague or buggy:
//!
//! - `-b` is a plain flag (the original's `getopt` made it swallow the next
//!   argument); `-p` wins over it.
//! - The experiment may be given as `-e pid/eid` or positionally; giving
//!   both with different values is a usage error, and the value must look
//!   like `pid/eid`.
//! - `SIGINT` and `SIGTERM` end it with status 0; a closed output pipe
//!   (`eventdebug | head`) ends it quietly with status 0.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};
use tbevents_event::{
    AddressTuple, EventError, EventHandle, EventKey, EventNotification, EventSubscription,
    RegisterOptions, Value,
};

/// Exit status for a bad command line (the original's).
pub const EXIT_USAGE: u8 = 1;
/// Exit status when the router cannot be reached or the subscription is
/// refused at start-up, or the key file is unusable.
pub const EXIT_FAILURE: u8 = 255;

/// How long to wait between reconnection attempts.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// The one-line usage, repeated in usage errors.
pub const SYNOPSIS: &str = "usage: eventdebug [-b] [-s server] [-p port] [-k keyfile] [-e pid/eid] [--scheduler] [--json] [pid/eid]";

/// The `--help` text: a manual page.
/// What to watch and how to print it, checked.
#[derive(Debug)]
pub struct Settings {
    /// The router URI.
    pub uri: String,
    /// The key, when events are to be authenticated.
    pub key: Option<EventKey>,
    /// Narrow to this experiment.
    pub experiment: Option<String>,
    /// Also show scheduler requests.
    pub scheduler: bool,
    /// JSON output.
    pub json: bool,
}

/// Why `eventdebug` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EventdebugError {
    /// Bad command line.
    #[error("{0}\n{SYNOPSIS}\nRun 'eventdebug --help' for the full manual.")]
    Usage(String),
    /// The key file is unusable.
    #[error(transparent)]
    Key(#[from] tbevents_event::KeyError),
    /// Could not register or subscribe at start-up.
    #[error("Unable to register with event system at {uri}: {source}")]
    Register {
        /// The router URI.
        uri: String,
        /// Why.
        source: EventError,
    },
    /// The subscription was refused.
    #[error("Could not subscribe to events at {uri}: {source}")]
    Subscribe {
        /// The router URI.
        uri: String,
        /// Why.
        source: EventError,
    },
}

impl EventdebugError {
    /// The exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            EventdebugError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// Escapes control characters so a value cannot break the line format.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The text form of one event (with its continuation line, if any),
/// without the final newline.
pub fn format_text(event: &EventNotification, received: SystemTime, request: bool) -> String {
    let seconds = received
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let field = |value: Option<&str>| printable(value.unwrap_or("")).into_owned();
    let mut line = format!(
        "Event: {seconds} {} {} {} {} {} {} {}",
        field(event.site()),
        field(event.expt()),
        field(event.group()),
        field(event.host()),
        field(event.objtype()),
        field(event.objname()),
        field(event.eventtype()),
    );
    if request {
        match event.firing_time() {
            Some(when) => {
                line.push_str(&format!(
                    " [scheduler request for {}.{:06}]",
                    when.sec, when.usec
                ));
            }
            None => line.push_str(" [scheduler request]"),
        }
    }
    if let Some(args) = event.arguments().filter(|a| !a.trim().is_empty()) {
        line.push_str("\n    ARGS: ");
        line.push_str(&printable(args));
    }
    line
}

fn json_value(value: &Value) -> Json {
    let (kind, value) = match value {
        Value::Int32(v) => ("int32", json!(v)),
        Value::Int64(v) => ("int64", json!(v)),
        Value::Real64(v) if v.is_finite() => ("real64", json!(v)),
        Value::Real64(v) => ("real64", json!(v.to_string())),
        Value::String(v) => ("string", json!(v)),
        Value::Opaque(v) => ("opaque", json!(hex::encode(v))),
    };
    json!({ "type": kind, "value": value })
}

/// The JSON form of one event, on one line.
pub fn format_json(event: &EventNotification, received: SystemTime, request: bool) -> String {
    let received = received
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut attributes = Map::new();
    for (name, value) in event.attributes().iter() {
        attributes.insert(name.to_owned(), json_value(value));
    }
    json!({
        "received": received,
        "scheduler_request": request,
        "attributes": attributes,
    })
    .to_string()
}

/// Why the watch loop stopped.
enum Stop {
    /// A signal, or stdout closed: exit 0.
    Finished,
    /// The connection was lost: reconnect.
    Lost(String),
}

async fn next_event(
    live: &mut EventSubscription,
    requests: &mut Option<EventSubscription>,
) -> Option<(EventNotification, bool)> {
    match requests {
        Some(requests) => tokio::select! {
            event = live.recv() => event.map(|e| (e, false)),
            event = requests.recv() => event.map(|e| (e, true)),
        },
        None => live.recv().await.map(|e| (e, false)),
    }
}

/// Prints events until a signal, a closed stdout, or a lost connection.
async fn watch(
    settings: &Settings,
    mut live: EventSubscription,
    mut requests: Option<EventSubscription>,
    shutdown: &mut (impl std::future::Future<Output = &'static str> + Unpin),
) -> Stop {
    let stdout = std::io::stdout();
    loop {
        let next = tokio::select! {
            _ = &mut *shutdown => return Stop::Finished,
            next = next_event(&mut live, &mut requests) => next,
        };
        let Some((event, request)) = next else {
            let reason = live
                .end_reason()
                .or_else(|| requests.as_ref().and_then(EventSubscription::end_reason))
                .map_or_else(|| "the subscription ended".to_owned(), |e| e.to_string());
            return Stop::Lost(reason);
        };
        let received = SystemTime::now();
        let text = if settings.json {
            format_json(&event, received, request)
        } else {
            format_text(&event, received, request)
        };
        let mut out = stdout.lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            return Stop::Finished;
        }
    }
}

async fn connect(
    settings: &Settings,
) -> Result<(EventHandle, EventSubscription, Option<EventSubscription>), EventdebugError> {
    let mut options = RegisterOptions::new();
    if let Some(key) = &settings.key {
        options = options.key(key.clone());
    }
    let handle = EventHandle::register_with(&settings.uri, options)
        .await
        .map_err(|source| EventdebugError::Register {
            uri: settings.uri.clone(),
            source,
        })?;
    let mut tuple = AddressTuple::new();
    tuple.expt = settings.experiment.clone();
    let subscribe_error = |source| EventdebugError::Subscribe {
        uri: settings.uri.clone(),
        source,
    };
    let live = handle.subscribe(&tuple).await.map_err(subscribe_error)?;
    let requests = if settings.scheduler {
        Some(
            handle
                .subscribe(&tuple.clone().scheduler(1))
                .await
                .map_err(subscribe_error)?,
        )
    } else {
        None
    };
    Ok((handle, live, requests))
}

/// Runs with checked settings until stopped.
pub async fn run(settings: Settings) -> Result<(), EventdebugError> {
    // Without signal handlers eventdebug still works; it just dies by the
    // default action instead of exiting 0.
    let mut shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = &'static str> + Send>> =
        match tbevents_cli::termination() {
            Ok(termination) => Box::pin(termination),
            Err(error) => {
                tracing::warn!(%error, "cannot install the SIGTERM/SIGINT handlers");
                Box::pin(std::future::pending())
            }
        };
    let (mut handle, mut live, mut requests) = connect(&settings).await?;
    // Say where we listen, on stderr so stdout stays pure event lines.
    eprintln!(
        "eventdebug: listening on {} for{}{}",
        settings.uri,
        live.expression().unwrap_or_default(),
        requests
            .as_ref()
            .and_then(EventSubscription::expression)
            .map(|e| format!("and for{e}"))
            .unwrap_or_default()
    );
    loop {
        match watch(&settings, live, requests, &mut shutdown).await {
            Stop::Finished => {
                let _ = handle.unregister().await;
                return Ok(());
            }
            Stop::Lost(reason) => {
                eprintln!(
                    "eventdebug: lost the connection to {}: {reason}; reconnecting every {}s",
                    settings.uri,
                    RECONNECT_INTERVAL.as_secs()
                );
            }
        }
        drop(handle);
        // Reconnect until it works or we are told to stop; say once per
        // outage why it does not work yet.
        let mut said_why = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(RECONNECT_INTERVAL) => {}
            }
            match connect(&settings).await {
                Ok(connection) => {
                    (handle, live, requests) = connection;
                    eprintln!("eventdebug: reconnected to {}", settings.uri);
                    break;
                }
                Err(error) if !said_why => {
                    said_why = true;
                    eprintln!("eventdebug: still cannot reach {}: {error}", settings.uri);
                }
                Err(error) => {
                    tracing::debug!("reconnect failed: {error}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> EventNotification {
        let tuple = AddressTuple::new()
            .expt("p/e")
            .host("10.1.1.2")
            .objtype("TRAFGEN")
            .objname("cbr0")
            .eventtype("START");
        EventNotification::from_tuple(&tuple, "10.0.0.1")
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(seconds * 1000 + 250)
    }

    #[test]
    fn text_lines() {
        let mut e = event();
        assert_eq!(
            format_text(&e, at(1_700_000_000), false),
            "Event: 1700000000 * p/e * 10.1.1.2 TRAFGEN cbr0 START"
        );
        e.set_arguments("RATE=10 SIZE=512 ");
        e.clear_objtype();
        assert_eq!(
            format_text(&e, at(5), false),
            "Event: 5 * p/e * 10.1.1.2  cbr0 START\n    ARGS: RATE=10 SIZE=512 "
        );
        e.make_schedule_request(tbevents_event::FiringTime { sec: 9, usec: 7 });
        assert!(format_text(&e, at(5), true).contains("START [scheduler request for 9.000007]\n"));
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let mut e = event();
        e.set_objname("x\nEvent: 1 forged");
        e.set_arguments("A=1\r\n");
        let text = format_text(&e, at(1), false);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r"x\nEvent: 1 forged"));
        assert!(text.ends_with(r"A=1\r\n"));
    }

    #[test]
    fn json_lines_are_typed() {
        let mut e = event();
        e.put("L", 5i64);
        e.put("R", 0.5);
        e.put("N", f64::NAN);
        e.put("O", vec![0xde, 0xad]);
        let line = format_json(&e, at(3), true);
        assert!(!line.contains('\n'));
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["received"], json!(3.25));
        assert_eq!(parsed["scheduler_request"], json!(true));
        let a = &parsed["attributes"];
        assert_eq!(a["EXPT"], json!({"type": "string", "value": "p/e"}));
        assert_eq!(a["SCHEDULER"], json!({"type": "int32", "value": 0}));
        assert_eq!(a["L"], json!({"type": "int64", "value": 5}));
        assert_eq!(a["R"], json!({"type": "real64", "value": 0.5}));
        assert_eq!(a["N"], json!({"type": "real64", "value": "NaN"}));
        assert_eq!(a["O"], json!({"type": "opaque", "value": "dead"}));
    }
}
