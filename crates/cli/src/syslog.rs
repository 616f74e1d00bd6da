//! Log lines to the system log as well as to stderr.
//!
//! We speak the local syslog protocol ourselves: one datagram per event,
//! `<PRI>ident[pid]: message key=value ...`, sent to the `/dev/log` socket
//! (facility `daemon`, severity from the tracing level). That one socket
//! reaches journald on systemd hosts (which files it with the priority and
//! the program name, searchable with `journalctl -t eventd`) and rsyslog or
//! another syslogd elsewhere, with no new dependency and no C library
//! state (`openlog(3)` keeps a global identity). Under systemd, stderr
//! reaches the journal too; turning this on there gives every line twice,
//! so the units we ship leave it off and let journald read stderr.
//!
//! A missing or refusing socket never stops the program: the line still
//! went to stderr, and the first failure is reported there once.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The standard local syslog socket.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// Facility `daemon` (3), shifted as in the PRI field.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Longest datagram sent (journald and rsyslog accept more; 8 KiB keeps
/// one runaway field from becoming a huge packet).
const MAX_DATAGRAM: usize = 8192;

/// A tracing layer that sends each event to a syslog socket.
pub struct SyslogLayer {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    ident: String,
    pid: u32,
    warned: AtomicBool,
}

impl SyslogLayer {
    /// A layer sending to `path` (normally [`DEFAULT_SYSLOG_SOCKET`]) as
    /// program `ident`.
    pub fn new(ident: &str, path: &Path) -> SyslogLayer {
        SyslogLayer {
            socket: UnixDatagram::unbound().ok(),
            path: path.to_owned(),
            ident: ident.to_owned(),
            pid: std::process::id(),
            warned: AtomicBool::new(false),
        }
    }
}

/// The syslog severity of a tracing level.
pub fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Collects an event's message and fields into one line.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// One syslog datagram for an event at `level` with `text`; control
/// characters become spaces so a line is a line.
pub fn format_datagram(ident: &str, pid: u32, level: &Level, text: &str) -> Vec<u8> {
    let pri = FACILITY_DAEMON | severity(level);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = format!("<{pri}>{ident}[{pid}]: {clean}").into_bytes();
    if out.len() > MAX_DATAGRAM {
        out.truncate(MAX_DATAGRAM);
        // Do not leave half a UTF-8 character at the end.
        while std::str::from_utf8(&out).is_err() {
            out.pop();
        }
    }
    out
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(socket) = &self.socket else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let text = format!("{}{}", line.message, line.fields);
        let datagram = format_datagram(&self.ident, self.pid, event.metadata().level(), &text);
        if let Err(error) = socket.send_to(&datagram, &self.path)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "{}: cannot log to syslog socket {}: {error}; logging to stderr only",
                self.ident,
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_priority_ident_and_one_line() {
        let d = format_datagram("eventd", 42, &Level::WARN, "slow client\nx=1");
        assert_eq!(d, b"<28>eventd[42]: slow client x=1");
        let d = format_datagram("eventd", 1, &Level::ERROR, "boom");
        assert!(d.starts_with(b"<27>"));
        let long = "é".repeat(MAX_DATAGRAM);
        let d = format_datagram("e", 1, &Level::INFO, &long);
        assert!(d.len() <= MAX_DATAGRAM && std::str::from_utf8(&d).is_ok());
    }

    #[test]
    fn events_reach_a_syslog_socket() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(SyslogLayer::new("t", &path));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(peer = "10.0.0.1", "client connected");
        });
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("<30>t["), "{text}");
        assert!(
            text.ends_with("]: client connected peer=10.0.0.1"),
            "{text}"
        );
    }
}
