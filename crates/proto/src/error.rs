//! Typed decoding errors.
//!
//! Every way a frame can be malformed has its own [`DecodeErrorKind`] so that
//! callers can react precisely (the router answers some with a Nack and most
//! with `Disconn(4)`), while [`DecodeError`]'s `Display` produces the single
//! human-readable sentence that goes into a Disconn reason: for example
//! `Error decoding NotifyEmit: boolean value 2 is not 0 or 1`. That wording
//! follows the shape of the messages existing Elvin clients already log, so
//! operators comparing logs from different routers see familiar text.
//!
//! The XDR reader ([`crate::xdr::Reader`]) fails with a bare
//! [`DecodeErrorKind`], because it does not know which packet it is reading;
//! the packet decoder wraps that kind with the packet's name.

use std::fmt;

/// What exactly was wrong with the bytes of a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The frame ended before a field was complete.
    #[error("truncated: needed {needed} more bytes at offset {offset} but only {available} remain")]
    Truncated {
        /// Byte offset in the packet body where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A boolean field held something other than 0 or 1.
    #[error("boolean value {0} is not 0 or 1")]
    BadBool(i32),
    /// A string or opaque length was negative.
    #[error("negative length {length} at offset {offset}")]
    NegativeLength {
        /// Byte offset of the length word.
        offset: usize,
        /// The length as read.
        length: i32,
    },
    /// An array or list count was negative.
    #[error("negative element count {count} at offset {offset}")]
    NegativeCount {
        /// Byte offset of the count word.
        offset: usize,
        /// The count as read.
        count: i32,
    },
    /// A string or opaque length runs past the end of the frame.
    #[error(
        "length {length} at offset {offset} runs past the end of the frame ({available} bytes remain)"
    )]
    LengthPastEnd {
        /// Byte offset of the length word.
        offset: usize,
        /// The length as read.
        length: usize,
        /// Bytes left after the length word.
        available: usize,
    },
    /// An array or list count cannot fit in the bytes that remain, even at
    /// the smallest possible element size. Checked before allocating.
    #[error(
        "element count {count} at offset {offset} cannot fit in the {available} bytes that remain"
    )]
    CountPastEnd {
        /// Byte offset of the count word.
        offset: usize,
        /// The count as read.
        count: usize,
        /// Bytes left after the count word.
        available: usize,
    },
    /// A string was not valid UTF-8.
    #[error("invalid UTF-8 in string at offset {offset}")]
    BadUtf8 {
        /// Byte offset in the packet body of the first invalid byte (what
        /// Nack BAD_UTF8 1006 carries as its argument).
        offset: usize,
    },
    /// A value's type code was not one of 1–5.
    #[error("unknown value type code {0}")]
    UnknownValueType(i32),
    /// A key block named a key scheme other than 1, 2 or 3.
    #[error("unknown key scheme {0}")]
    UnknownKeyScheme(i32),
    /// A key block entry had the wrong number of key sets for its scheme
    /// (2 for dual, 1 for producer and consumer).
    #[error("key scheme {scheme} needs {expected} key sets, not {count}")]
    BadKeySetCount {
        /// The scheme id of the entry.
        scheme: i32,
        /// Key sets that scheme needs.
        expected: i32,
        /// Key sets that were sent.
        count: i32,
    },
    /// A key block held a zero-length key.
    #[error("empty key in key scheme {scheme}")]
    EmptyKey {
        /// The scheme id of the entry holding the empty key.
        scheme: i32,
    },
    /// A request carried transaction id 0, which Elvin reserves.
    #[error("transaction id 0 is reserved")]
    ZeroXid,
    /// A request carried subscription or quench id 0, which is never issued.
    #[error("{what} 0 is not a valid id")]
    ZeroId {
        /// Which id: "subscription id" or "quench id".
        what: &'static str,
    },
    /// The packet's fields ended before the frame did.
    #[error("{0} bytes left over after the last field")]
    LeftoverBytes(usize),
    /// A subscription syntax tree nested deeper than the decoder allows.
    #[error("subscription tree nested deeper than {limit} levels")]
    NestingTooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// The body was shorter than the 4-byte packet id.
    #[error("frame is too short to hold a packet type id")]
    MissingPacketId,
    /// The packet id is not one of the client-protocol packets.
    #[error("Unknown message type: ID = {0}")]
    UnknownPacketId(i32),
    /// A specialised decoder was handed a different packet type.
    #[error("expected a {expected} packet, found packet type {found}")]
    WrongPacketType {
        /// The packet the caller expected.
        expected: &'static str,
        /// The packet id found.
        found: i32,
    },
}

impl DecodeErrorKind {
    /// The Nack error code the spec assigns to this fault, for a router
    /// that answers a malformed request with a Nack rather than closing the
    /// connection: BAD_KEY_SCHEME (1004), BAD_KEY_INDEX (1005), BAD_UTF8
    /// (1006), or PROT_ERROR (1001) for everything else.
    pub fn nack_code(&self) -> i32 {
        match self {
            DecodeErrorKind::UnknownKeyScheme(_) => crate::codes::nack::BAD_KEY_SCHEME,
            DecodeErrorKind::BadKeySetCount { .. } => crate::codes::nack::BAD_KEY_INDEX,
            DecodeErrorKind::BadUtf8 { .. } => crate::codes::nack::BAD_UTF8,
            _ => crate::codes::nack::PROT_ERROR,
        }
    }

    /// The Nack arguments the spec lists for [`nack_code`](Self::nack_code):
    /// the scheme id; the scheme id and offending set count; the byte
    /// offset; or none.
    pub fn nack_args(&self) -> Vec<crate::value::Value> {
        use crate::value::Value;
        match *self {
            DecodeErrorKind::UnknownKeyScheme(scheme) => vec![Value::Int32(scheme)],
            DecodeErrorKind::BadKeySetCount { scheme, count, .. } => {
                vec![Value::Int32(scheme), Value::Int32(count)]
            }
            DecodeErrorKind::BadUtf8 { offset } => {
                vec![Value::Int32(i32::try_from(offset).unwrap_or(i32::MAX))]
            }
            _ => Vec::new(),
        }
    }
}

/// A frame that could not be decoded: which packet (when known) and why.
///
/// `Display` gives `Error decoding <Packet>: <reason>`, or just the reason
/// when the packet type itself is unknown (`Unknown message type: ID = 7`),
/// ready to be used as the text of a `Disconn(4)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The packet being decoded, if the packet id was recognised.
    pub packet: Option<&'static str>,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// An error in the named packet.
    pub fn in_packet(packet: &'static str, kind: DecodeErrorKind) -> Self {
        DecodeError {
            packet: Some(packet),
            kind,
        }
    }

    /// An error not tied to a particular packet type.
    pub fn bare(kind: DecodeErrorKind) -> Self {
        DecodeError { packet: None, kind }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.packet {
            Some(packet) => write!(f, "Error decoding {packet}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// A packet that cannot be encoded within the size the peer accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded body would exceed the peer's `Packet.Max-Length`.
    #[error(
        "{packet} of {length} bytes is larger than the peer's maximum of {max} bytes \
         (Packet.Max-Length); send less data or negotiate a larger maximum"
    )]
    TooLarge {
        /// The packet's name.
        packet: &'static str,
        /// The encoded body length.
        length: usize,
        /// The limit it was checked against.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn key_and_utf8_faults_map_to_their_nack_codes() {
        let kind = DecodeErrorKind::UnknownKeyScheme(7);
        assert_eq!(
            (kind.nack_code(), kind.nack_args()),
            (1004, vec![Value::Int32(7)])
        );
        let kind = DecodeErrorKind::BadKeySetCount {
            scheme: 1,
            expected: 2,
            count: 3,
        };
        assert_eq!(
            (kind.nack_code(), kind.nack_args()),
            (1005, vec![Value::Int32(1), Value::Int32(3)])
        );
        let kind = DecodeErrorKind::BadUtf8 { offset: 12 };
        assert_eq!(
            (kind.nack_code(), kind.nack_args()),
            (1006, vec![Value::Int32(12)])
        );
        let kind = DecodeErrorKind::BadBool(2);
        assert_eq!((kind.nack_code(), kind.nack_args()), (1001, vec![]));
    }

    #[test]
    fn display_names_the_packet_when_known() {
        let err = DecodeError::in_packet("SecRqst", DecodeErrorKind::EmptyKey { scheme: 2 });
        assert_eq!(
            err.to_string(),
            "Error decoding SecRqst: empty key in key scheme 2"
        );
        let err = DecodeError::bare(DecodeErrorKind::UnknownPacketId(99));
        assert_eq!(err.to_string(), "Unknown message type: ID = 99");
    }
}
