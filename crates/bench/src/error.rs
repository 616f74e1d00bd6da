//! The one error type of `eventd-bench`.
//!
//! A benchmark fails for a small number of reasons an operator can act on:
//! the router is not there, refused us, went silent, hung up, or sent
//! something that is not Elvin; or the command line asks for something the
//! tool cannot do. Each variant's message says which, with the detail the
//! router gave (Nack code and text, Disconn reason) and what to try next.

use std::time::Duration;

use elvin_proto::{DecodeError, FrameError, UriError};

/// Why a benchmark could not run or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line or configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The router URI does not parse.
    #[error("bad --router URI: {0}")]
    Uri(#[from] UriError),

    /// The TCP connection could not be opened.
    #[error(
        "cannot connect to the router at {address}: {source} (is it running and listening there?)"
    )]
    Connect {
        /// `host:port` we tried.
        address: String,
        /// The socket error.
        source: std::io::Error,
    },

    /// The router answered ConnRqst with a Nack.
    #[error("the router refused the Elvin connection: Nack {code}: {message}")]
    ConnectRefused {
        /// Nack error code.
        code: i32,
        /// Nack message, with its arguments substituted.
        message: String,
    },

    /// The router answered a SubAddRqst with a Nack.
    #[error(
        "the router refused subscription {expression:?}: Nack {code}: {message}{hint}",
        hint = subscribe_hint(*code)
    )]
    SubscribeRefused {
        /// The expression that was refused.
        expression: String,
        /// Nack error code.
        code: i32,
        /// Nack message, with its arguments substituted.
        message: String,
    },

    /// The router closed the session with a Disconn.
    #[error("the router disconnected us during {phase}: Disconn reason {reason}: {args}")]
    Disconnected {
        /// What the tool was doing.
        phase: &'static str,
        /// Disconn reason code.
        reason: i32,
        /// Disconn text.
        args: String,
    },

    /// The router closed the TCP connection without a Disconn.
    #[error("the router closed the connection during {phase} without saying why")]
    Closed {
        /// What the tool was doing.
        phase: &'static str,
    },

    /// Nothing arrived from the router for too long.
    #[error(
        "timed out after {:.1} s waiting for {what}: the router is not answering (raise --timeout if it is merely slow)",
        timeout.as_secs_f64()
    )]
    Timeout {
        /// What the tool was waiting for.
        what: String,
        /// How long it waited.
        timeout: Duration,
    },

    /// The router broke the framing rules.
    #[error("the router sent a malformed frame during {phase}: {source}")]
    Frame {
        /// What the tool was doing.
        phase: &'static str,
        /// The framing fault.
        source: FrameError,
    },

    /// The router sent a frame that does not decode.
    #[error("the router sent an undecodable packet during {phase}: {source}")]
    Decode {
        /// What the tool was doing.
        phase: &'static str,
        /// The decoding fault.
        source: DecodeError,
    },

    /// The router sent a well-formed packet the tool did not expect.
    #[error("unexpected {packet} from the router during {phase}")]
    Unexpected {
        /// What the tool was doing.
        phase: &'static str,
        /// The packet's name.
        packet: String,
    },

    /// A socket error on an established connection.
    #[error("I/O error talking to the router during {phase}: {source}")]
    Io {
        /// What the tool was doing.
        phase: &'static str,
        /// The socket error.
        source: std::io::Error,
    },

    /// A local resource (file descriptors, a helper process) is missing.
    #[error("{0}")]
    Local(String),
}

fn subscribe_hint(code: i32) -> &'static str {
    if code == elvin_proto::codes::nack::IMPL_LIMIT || code == elvin_proto::codes::nack::QOS_LIMIT {
        " (the router limits subscriptions per connection: spread them over more connections with --sub-conns)"
    } else {
        ""
    }
}

/// Substitutes a Nack's `%1`, `%2`, … placeholders with its arguments, so
/// the message reads as the router meant it.
pub fn format_nack(message: &str, args: &[elvin_proto::Value]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        let argument = digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| args.get(i));
        match argument {
            Some(value) => out.push_str(&value.to_string()),
            None => {
                out.push('%');
                out.push_str(&digits);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::Value;

    #[test]
    fn nack_placeholders_are_filled_in_order() {
        let args = [Value::Int64(7), Value::from("x")];
        assert_eq!(
            format_nack("No subscription with ID %1 (%2)", &args),
            "No subscription with ID 7L (\"x\")"
        );
    }

    #[test]
    fn unknown_placeholders_and_stray_percent_signs_are_kept() {
        assert_eq!(format_nack("100% sure %3", &[]), "100% sure %3");
        assert_eq!(format_nack("%", &[]), "%");
        assert_eq!(
            format_nack("%99999999999999999999999 ü", &[]),
            "%99999999999999999999999 ü"
        );
        assert_eq!(format_nack("%0 and %1%1", &[Value::Int32(3)]), "%0 and 33");
    }
}
