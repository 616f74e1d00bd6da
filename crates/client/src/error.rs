//! The client's error type.
//!
//! Every failure a caller can see is one variant of [`ClientError`], and
//! each variant's `Display` is a sentence an operator can act on: it names
//! the router, says what went wrong and, where there is an obvious next
//! step, what to do ("is eventd running?"). Variants keep the raw facts
//! (codes, arguments, addresses) in fields so programs can react precisely.
//!
//! `ClientError` is `Clone` because one connection failure is reported to
//! many waiters at once (every pending request, every subscription stream
//! and the connection-state watchers); I/O errors are therefore kept behind
//! an `Arc`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use elvin_proto::codes;
use elvin_proto::{DecodeError, EncodeError, FrameError, UriError, Value};

/// What the three ranges of Nack error codes mean (docs/protocol.md §7).
///
/// Clients are expected to act on the range rather than the exact code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NackCategory {
    /// 1–999: the connection could not be established (version, authorisation).
    Connection,
    /// 1000–1999: a protocol message was malformed; possible corruption.
    Protocol,
    /// 2000–2999: a well-formed request was refused (bad subscription, limits).
    Request,
    /// 0 and 3000 and above: reserved codes, which a client should treat as
    /// a protocol error.
    Reserved,
}

impl NackCategory {
    /// The category of a Nack error code.
    pub fn of(code: i32) -> NackCategory {
        match code {
            1..=999 => NackCategory::Connection,
            1000..=1999 => NackCategory::Protocol,
            2000..=2999 => NackCategory::Request,
            _ => NackCategory::Reserved,
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            NackCategory::Connection => "connection error",
            NackCategory::Protocol => "protocol error",
            NackCategory::Request => "request error",
            NackCategory::Reserved => "reserved error code",
        }
    }
}

/// A router's refusal of one request (a Nack packet), made readable.
#[derive(Clone, Debug, PartialEq)]
pub struct NackError {
    /// The request that was refused ("SubAddRqst", "ConnRqst", …).
    pub request: &'static str,
    /// The Nack error code (see [`elvin_proto::codes::nack`]).
    pub code: i32,
    /// The code's range.
    pub category: NackCategory,
    /// The message with `%1`, `%2`, … replaced by the arguments.
    pub message: String,
    /// The message as sent, before substitution.
    pub template: String,
    /// The arguments as sent.
    pub args: Vec<Value>,
}

impl NackError {
    /// Builds the error for a Nack answering `request`.
    pub fn new(request: &'static str, code: i32, template: String, args: Vec<Value>) -> Self {
        NackError {
            request,
            code,
            category: NackCategory::of(code),
            message: substitute_args(&template, &args),
            template,
            args,
        }
    }

    /// The symbolic name of the code, if it is one the protocol defines.
    pub fn code_name(&self) -> Option<&'static str> {
        nack_code_name(self.code)
    }
}

/// Replaces `%1`, `%2`, … in a Nack message template by the matching
/// argument (1-based). A `%` not followed by the number of an existing
/// argument is left as written, so a malformed template still shows
/// everything the router said.
pub fn substitute_args(template: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('%') {
        let (before, from_percent) = rest.split_at(pos);
        out.push_str(before);
        let after = from_percent.get(1..).unwrap_or_default();
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let (number, rest_after_number) = after.split_at_checked(digits).unwrap_or((after, ""));
        let argument = number
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|index| args.get(index));
        match argument {
            Some(value) => {
                push_argument(&mut out, value);
                rest = rest_after_number;
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Appends an argument as a reader expects to see it in a sentence:
/// strings without quotes, numbers as numbers, opaque bytes as hex.
fn push_argument(out: &mut String, value: &Value) {
    use std::fmt::Write;
    let _ = match value {
        Value::String(text) => write!(out, "{text}"),
        Value::Int32(n) => write!(out, "{n}"),
        Value::Int64(n) => write!(out, "{n}"),
        Value::Real64(x) => write!(out, "{x}"),
        Value::Opaque(bytes) => bytes.iter().try_for_each(|b| write!(out, "{b:02x}")),
    };
}

/// The protocol's name for a Nack code.
pub fn nack_code_name(code: i32) -> Option<&'static str> {
    use codes::nack::*;
    Some(match code {
        PROT_INCOMPAT => "PROT_INCOMPAT",
        AUTHZ_FAIL => "AUTHZ_FAIL",
        AUTHN_FAIL => "AUTHN_FAIL",
        PROT_ERROR => "PROT_ERROR",
        NO_SUCH_SUB => "NO_SUCH_SUB",
        NO_SUCH_QUENCH => "NO_SUCH_QUENCH",
        BAD_KEY_SCHEME => "BAD_KEY_SCHEME",
        BAD_KEY_INDEX => "BAD_KEY_INDEX",
        BAD_UTF8 => "BAD_UTF8",
        NO_SUCH_KEY => "NO_SUCH_KEY",
        KEY_EXISTS => "KEY_EXISTS",
        BAD_KEY => "BAD_KEY",
        NOTHING_TO_DO => "NOTHING_TO_DO",
        QOS_LIMIT => "QOS_LIMIT",
        IMPL_LIMIT => "IMPL_LIMIT",
        NOT_IMPL => "NOT_IMPL",
        PARSE_ERROR => "PARSE_ERROR",
        INVALID_TOKEN => "INVALID_TOKEN",
        UNTERM_STRING => "UNTERM_STRING",
        UNKNOWN_FUNC => "UNKNOWN_FUNC",
        OVERFLOW => "OVERFLOW",
        TYPE_MISMATCH => "TYPE_MISMATCH",
        TOO_FEW_ARGS => "TOO_FEW_ARGS",
        TOO_MANY_ARGS => "TOO_MANY_ARGS",
        INVALID_REGEXP => "INVALID_REGEXP",
        EXP_IS_TRIVIAL => "EXP_IS_TRIVIAL",
        REGEXP_TOO_COMPLEX => "REGEXP_TOO_COMPLEX",
        NESTING_TOO_DEEP => "NESTING_TOO_DEEP",
        EMPTY_QUENCH => "EMPTY_QUENCH",
        ATTR_EXISTS => "ATTR_EXISTS",
        NO_SUCH_ATTR => "NO_SUCH_ATTR",
        _ => return None,
    })
}

/// The name of a Disconn reason code.
pub fn disconn_reason_name(reason: i32) -> &'static str {
    match reason {
        codes::disconn::SHUTDOWN => "router shutting down",
        codes::disconn::REDIRECT => "redirected to another router",
        codes::disconn::PROTOCOL_VIOLATION => "protocol violation",
        _ => "unknown reason",
    }
}

/// Which operation ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Opening the TCP connection (and the TLS handshake, if any).
    Connect,
    /// Waiting for the ConnRply to a ConnRqst.
    ConnReply,
    /// Waiting for the reply to a request (the field names the request).
    Request(&'static str),
    /// Waiting for ConfConn after a TestConn.
    TestConn,
    /// Waiting for the DisconnRply after a DisconnRqst.
    Close,
    /// The keep-alive probe: nothing arrived from the router after a
    /// TestConn.
    Liveness,
    /// Writing to the router (its receive window stayed full).
    Write,
    /// A blocking receive with a time limit got nothing.
    Receive,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutKind::Connect => f.write_str("connecting"),
            TimeoutKind::ConnReply => {
                f.write_str("waiting for the router to accept the connection")
            }
            TimeoutKind::Request(name) => write!(f, "waiting for the router to answer a {name}"),
            TimeoutKind::TestConn => f.write_str("waiting for the router to answer a TestConn"),
            TimeoutKind::Close => f.write_str("waiting for the router to confirm the disconnect"),
            TimeoutKind::Liveness => f.write_str("waiting for any sign of life from the router"),
            TimeoutKind::Write => f.write_str("sending to the router"),
            TimeoutKind::Receive => f.write_str("waiting for a notification"),
        }
    }
}

/// A packet from the router that breaks the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtocolViolation {
    /// A frame whose fields could not be decoded.
    Decode(DecodeError),
    /// A frame header that breaks the framing rules (unaligned, too short,
    /// larger than the negotiated `Packet.Max-Length`).
    Frame(FrameError),
    /// A packet a router never sends to a client (a request, a quench
    /// notification for a client that has no quench, …).
    UnexpectedPacket {
        /// The packet's name.
        packet: &'static str,
    },
    /// A reply whose type does not fit the request with the same xid.
    MismatchedReply {
        /// The reply packet received.
        reply: &'static str,
        /// The request it claimed to answer.
        request: &'static str,
    },
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::Decode(e) => write!(f, "{e}"),
            ProtocolViolation::Frame(e) => write!(f, "{e}"),
            ProtocolViolation::UnexpectedPacket { packet } => {
                write!(
                    f,
                    "the router sent a {packet}, which routers never send to clients"
                )
            }
            ProtocolViolation::MismatchedReply { reply, request } => {
                write!(f, "the router answered a {request} with a {reply}")
            }
        }
    }
}

/// Everything that can go wrong in the client.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The router URI could not be parsed.
    #[error("{0}")]
    InvalidUri(#[from] UriError),

    /// The TCP connection could not be opened: refused, unreachable, or
    /// the host name does not resolve.
    #[error("could not connect to {uri}: {source}{}", connect_hint(source))]
    Refused {
        /// The router URI (canonical form).
        uri: String,
        /// The operating system's error.
        source: Arc<io::Error>,
    },

    /// An operation ran out of time.
    #[error("timed out after {after:?} {what} ({uri}){}", timeout_hint(*what))]
    Timeout {
        /// What was being waited for.
        what: TimeoutKind,
        /// The limit that expired.
        after: Duration,
        /// The router URI.
        uri: String,
    },

    /// The router refused a request with a Nack.
    #[error(
        "the router refused the {}: {} (Nack {}{}, {})",
        .0.request,
        .0.message,
        .0.code,
        .0.code_name().map(|n| format!(" {n}")).unwrap_or_default(),
        .0.category.name()
    )]
    Nack(NackError),

    /// The router closed the connection with a Disconn packet.
    #[error(
        "the router {uri} disconnected us ({reason_name}, reason {reason}){}",
        disconn_text(text)
    )]
    Disconnected {
        /// The Disconn reason code (see [`elvin_proto::codes::disconn`]).
        reason: i32,
        /// The reason's name.
        reason_name: &'static str,
        /// The router's explanation, or the address it redirects to.
        text: String,
        /// The router URI.
        uri: String,
    },

    /// The router closed the TCP connection without a Disconn.
    #[error(
        "the router {uri} closed the connection{}",
        if *mid_frame { " in the middle of a packet" } else { "" }
    )]
    Closed {
        /// True when the stream ended inside a frame (a communications
        /// error rather than a clean close).
        mid_frame: bool,
        /// The router URI.
        uri: String,
    },

    /// The router broke the protocol; the connection was closed.
    #[error("protocol error from {uri}: {violation}; the connection was closed")]
    Protocol {
        /// What was wrong.
        violation: ProtocolViolation,
        /// The router URI.
        uri: String,
    },

    /// TLS failed: the handshake, the certificate check, or the TLS
    /// settings themselves.
    #[error("TLS error with {uri}: {message}")]
    Tls {
        /// What failed.
        message: String,
        /// The router URI.
        uri: String,
    },

    /// A read or write on an established connection failed.
    #[error("I/O error talking to {uri}: {source}")]
    Io {
        /// The operating system's error.
        source: Arc<io::Error>,
        /// The router URI.
        uri: String,
    },

    /// The client is between connections (automatic reconnect is in
    /// progress); the request was not sent.
    #[error(
        "not connected to {uri}: the connection was lost and the client is reconnecting \
         (attempt {attempt}); retry later or watch Client::state_changes()"
    )]
    NotConnected {
        /// The reconnect attempt in progress.
        attempt: u32,
        /// The router URI.
        uri: String,
    },

    /// The connection is gone for good; the error says why.
    #[error("the connection is closed: {0}")]
    ConnectionLost(Box<ClientError>),

    /// The client was closed with [`crate::Client::close`] (or every handle
    /// was dropped).
    #[error("the client has been closed")]
    ClientClosed,

    /// A packet would be larger than the router accepts.
    #[error("{0}")]
    TooLarge(#[from] EncodeError),

    /// The subscription has ended (removed, or its connection closed).
    #[error("the subscription has ended")]
    SubscriptionEnded,

    /// Too many requests are waiting for replies.
    #[error(
        "too many requests are waiting for the router's replies ({limit}); \
         the router at {uri} is not keeping up"
    )]
    TooManyPending {
        /// The limit.
        limit: usize,
        /// The router URI.
        uri: String,
    },

    /// The client's settings are unusable (for example a TLS URI without
    /// TLS settings, or an unreadable certificate file).
    #[error("configuration error: {0}")]
    Config(String),
}

fn connect_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::ConnectionRefused => " — is eventd running, and on that port?",
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            " — check the host name and the network path to it"
        }
        io::ErrorKind::NotFound | io::ErrorKind::Other => " — check the host name in the URI",
        _ => "",
    }
}

fn timeout_hint(what: TimeoutKind) -> &'static str {
    match what {
        TimeoutKind::Connect => " — is the host up and the port reachable through firewalls?",
        TimeoutKind::ConnReply => {
            " — is this an Elvin router? (a TLS router needs an elvin:/secure/ URI)"
        }
        TimeoutKind::Liveness | TimeoutKind::TestConn => " — the router or the network may be down",
        _ => "",
    }
}

fn disconn_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl ClientError {
    /// The Nack details, if this error is a Nack.
    pub fn as_nack(&self) -> Option<&NackError> {
        match self {
            ClientError::Nack(nack) => Some(nack),
            ClientError::ConnectionLost(inner) => inner.as_nack(),
            _ => None,
        }
    }

    /// True for errors that end the connection (as opposed to the refusal
    /// of one request, a size check or a bad argument).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Refused { .. }
                | ClientError::Disconnected { .. }
                | ClientError::Closed { .. }
                | ClientError::Protocol { .. }
                | ClientError::Tls { .. }
                | ClientError::Io { .. }
                | ClientError::ConnectionLost(_)
                | ClientError::Timeout {
                    what: TimeoutKind::Connect
                        | TimeoutKind::ConnReply
                        | TimeoutKind::Liveness
                        | TimeoutKind::Write,
                    ..
                }
        )
    }

    /// The underlying cause, looking through [`ClientError::ConnectionLost`].
    pub fn root(&self) -> &ClientError {
        match self {
            ClientError::ConnectionLost(inner) => inner.root(),
            other => other,
        }
    }

    pub(crate) fn io(uri: &str, source: io::Error) -> ClientError {
        // TLS failures after the handshake (an alert because the router
        // rejected our certificate, a bad record) surface as I/O errors;
        // report them as what they are.
        if let Some(tls) = source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return ClientError::Tls {
                message: format!(
                    "{tls}{}",
                    if matches!(tls, rustls::Error::AlertReceived(_)) {
                        " — the router rejected the TLS session; it may require a client \
                         certificate (TlsOptions::client_cert_files) signed by a CA it trusts"
                    } else {
                        ""
                    }
                ),
                uri: uri.to_owned(),
            };
        }
        ClientError::Io {
            source: Arc::new(source),
            uri: uri.to_owned(),
        }
    }

    pub(crate) fn protocol(uri: &str, violation: ProtocolViolation) -> ClientError {
        ClientError::Protocol {
            violation,
            uri: uri.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_substituted_by_position() {
        let args = vec![Value::Int32(7), Value::String("foo".into())];
        assert_eq!(
            substitute_args("Parse error at column %1, token \"%2\"", &args),
            "Parse error at column 7, token \"foo\""
        );
        // Repeats, out of order, missing and malformed references.
        assert_eq!(substitute_args("%2%1%2", &args), "foo7foo");
        assert_eq!(
            substitute_args("100% sure, %3 %0 %", &args),
            "100% sure, %3 %0 %"
        );
        assert_eq!(substitute_args("", &args), "");
        // A huge index does not overflow.
        assert_eq!(
            substitute_args("%99999999999999999999999", &args),
            "%99999999999999999999999"
        );
        // Multi-byte text around the markers survives.
        assert_eq!(substitute_args("é%1é", &args), "é7é");
    }

    #[test]
    fn categories_follow_the_code_ranges() {
        assert_eq!(NackCategory::of(1), NackCategory::Connection);
        assert_eq!(NackCategory::of(999), NackCategory::Connection);
        assert_eq!(NackCategory::of(1002), NackCategory::Protocol);
        assert_eq!(NackCategory::of(2101), NackCategory::Request);
        assert_eq!(NackCategory::of(0), NackCategory::Reserved);
        assert_eq!(NackCategory::of(3000), NackCategory::Reserved);
        assert_eq!(NackCategory::of(-5), NackCategory::Reserved);
    }

    #[test]
    fn messages_tell_the_operator_what_to_do() {
        let refused = ClientError::Refused {
            uri: "elvin://h:2917".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        let text = refused.to_string();
        assert!(
            text.starts_with("could not connect to elvin://h:2917: "),
            "{text}"
        );
        assert!(
            text.ends_with("is eventd running, and on that port?"),
            "{text}"
        );

        let nack = ClientError::Nack(NackError::new(
            "SubAddRqst",
            2101,
            "Parse error at column %1".into(),
            vec![Value::Int32(3)],
        ));
        assert_eq!(
            nack.to_string(),
            "the router refused the SubAddRqst: Parse error at column 3 \
             (Nack 2101 PARSE_ERROR, request error)"
        );

        let disconn = ClientError::Disconnected {
            reason: 1,
            reason_name: disconn_reason_name(1),
            text: "bye".into(),
            uri: "elvin://h:2917".into(),
        };
        assert_eq!(
            disconn.to_string(),
            "the router elvin://h:2917 disconnected us (router shutting down, reason 1): bye"
        );
    }
}
