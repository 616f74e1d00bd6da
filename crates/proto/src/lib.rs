//! The Elvin 4 client protocol: wire types and the framed XDR codec.
//!
//! Everything in tbevents that talks Elvin (the router, the client library,
//! the load generator) goes through this crate, so it is built to three
//! rules: exact (every example of the protocol notes round-trips byte for
//! byte), fast on the router's per-notification path, and impossible to
//! crash from the network.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`] | splitting a byte stream into length-prefixed frames, with the size limit applied to the header |
//! | `xdr` (private) | the bounds-checked XDR reader and the writers; the only code that touches raw bytes |
//! | [`raw`] | the curated raw writers and reader other crates may use to build or skim frames by hand (tests, the bench tool, signing) |
//! | [`value`] | the five Elvin value types, owned ([`Value`], [`Attributes`]) and borrowed ([`ValueRef`], [`AttributesRef`]) |
//! | [`keys`] | key blocks, SHA-1 public-key derivation and the secure-delivery key match |
//! | [`packet`] | one struct per client-protocol message and the [`Packet`] enum over them |
//! | [`sub_ast`] | subscription trees carried by the quench notifications |
//! | [`notify`] | the router's zero-copy NotifyEmit/UNotify decoder and raw NotifyDeliver encoder |
//! | [`options`] | the connection option table and per-option negotiation |
//! | [`uri`] | `elvin:` URIs |
//! | [`codes`] | Nack error codes and Disconn reasons |
//! | [`error`] | typed decoding errors whose text can go straight into a Disconn |
//!
//! # Design
//!
//! **A type per message.** Each of the 27 packets of the client protocol
//! is its own struct with the spec's fields ([`ConnRqst`], [`SubAddRqst`],
//! …), and [`Packet`] is the enum over them. Callers match exhaustively and
//! cannot build a packet with a field missing. [`Packet::decode`] takes a
//! frame body (after the length prefix) and [`Packet::encode`] appends a
//! whole frame; [`Packet::encoded_len`] gives the body size first, so a
//! sender can honour the peer's `Packet.Max-Length`
//! ([`Packet::try_encode`] does the check).
//!
//! **A borrowed hot path.** A router receives a notification once and
//! sends it to many subscribers. [`decode_notify_emit`] returns a
//! [`NotifyRef`] whose names and values borrow the frame, plus the exact
//! bytes of its attribute list; [`encode_notify_deliver_raw`] copies those
//! bytes into each subscriber's NotifyDeliver. Nothing is re-encoded, and an
//! empty key block (the usual case: Emulab uses none) allocates nothing.
//!
//! **Limits before allocation.** Untrusted lengths are checked before they
//! are used: [`frame_len`] rejects an oversize, unaligned or short header as
//! soon as its 4 bytes arrive, and every array, list or key-set count is
//! checked against the bytes actually remaining (at the smallest possible
//! element size) before anything is reserved. Memory used by a decode is
//! therefore proportional to the frame, and a frame is bounded by the
//! negotiated maximum. Recursive structures (subscription trees) have a
//! depth limit. Nothing in the decoders indexes or does arithmetic on
//! unchecked input, and every failure is a [`DecodeError`] naming the packet
//! and the fault.
//!
//! # Example
//!
//! ```
//! use elvin_proto::{DEFAULT_MAX_PACKET_LENGTH, Packet, SubAddRqst, Keys, split_frame};
//!
//! // A client's request, as it would arrive on a socket.
//! let mut stream = Vec::new();
//! Packet::from(SubAddRqst {
//!     xid: 1,
//!     expression: "EVENTTYPE == \"START\"".into(),
//!     accept_insecure: true,
//!     keys: Keys::new(),
//! })
//! .encode(&mut stream);
//!
//! // The router takes one frame off the front of its buffer and decodes it.
//! let (body, used) = split_frame(&stream, DEFAULT_MAX_PACKET_LENGTH)?.expect("a whole frame");
//! assert_eq!(used, stream.len());
//! match Packet::decode(body)? {
//!     Packet::SubAddRqst(request) => assert_eq!(request.expression, "EVENTTYPE == \"START\""),
//!     other => panic!("unexpected {}", other.name()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Choices where the protocol notes leave room
//!
//! - Request xids may be any non-zero int32 (Avis insists on positive ones);
//!   replies are decoded without the check. Subscription and quench ids in
//!   requests must be non-zero.
//! - Attribute lists with a repeated name keep the last value, as Avis does;
//!   the borrowed view keeps the wire list and resolves on lookup, so the
//!   raw bytes forwarded to subscribers are exactly what the producer sent.
//! - Connection options keep wire order and duplicates ([`Options`]), since
//!   a client may ask under both a standard and a legacy name.
//! - The option limits, the enforced send-queue bound and the
//!   `router.coalesce-delay` inversion are described in [`options`].
//! - Padding bytes are skipped unchecked on input and written as zeros.

pub mod codes;
pub mod error;
pub mod frame;
pub mod keys;
pub mod notify;
pub mod options;
pub mod packet;
pub mod raw;
pub mod sub_ast;
pub mod uri;
pub mod value;
mod xdr;

pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use frame::{DEFAULT_MAX_PACKET_LENGTH, FrameError, frame_len, split_frame};
pub use keys::{KeyEntry, KeyScheme, KeySet, Keys, keys_match};
pub use notify::{
    NotifyRef, UNotifyRef, decode_notify_emit, decode_unotify, encode_notify_deliver_raw,
    notify_deliver_raw_len,
};
pub use options::{Negotiated, OptionName, OptionSpec, lookup_option, negotiate_option};
pub use packet::{
    ConfConn, ConnRply, ConnRqst, Disconn, DisconnRply, DisconnRqst, DropWarn, Message, Nack,
    NotifyDeliver, NotifyEmit, Options, Packet, QnchAddRqst, QnchDelRqst, QnchModRqst, QnchRply,
    QosRply, QosRqst, SecRply, SecRqst, SubAddNotify, SubAddRqst, SubDelNotify, SubDelRqst,
    SubModNotify, SubModRqst, SubRply, TestConn, UNotify, peek_packet_id,
};
pub use sub_ast::SubAst;
pub use uri::{ElvinUri, Transport, UriError};
pub use value::{
    AttributeLookup, Attributes, AttributesRef, HASHED_LOOKUP_THRESHOLD, HashedAttributes,
    NotificationLookup, Value, ValueRef, ValueType,
};
