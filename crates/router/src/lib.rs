//! `elvin-router`: the tbevents event router, an Elvin 4 router, and the
//! library behind the `eventd` binary.
//!
//! Every scheduler, tool and agent of tbevents connects to this router, and
//! existing Elvin 4 clients must keep working against it, so it speaks the
//! client protocol as Avis 1.2.2 does on the wire (see
//! `docs/protocol.md` for the protocol notes and
//! `docs/eventd.md` for operating it), with the deliberate differences
//! listed there: bounded send queues with DropWarn, Nack 2007 for QosRqst,
//! specific subscription error codes (including OVERFLOW 2105 where Avis
//! sent nothing), ⊥ for string functions on non-strings, and `size()` in
//! UTF-8 bytes.
//!
//! # Shape
//!
//! | module | role |
//! |---|---|
//! | [`config`] | TOML file, flags, validated [`config::Settings`] |
//! | [`negotiation`] | ConnRqst option negotiation against the configured limits |
//! | [`session`] | one connection's protocol state machine, socket-free |
//! | [`broker`] | the shared routing table and the routing of a notification |
//! | [`index`] | the subscription index that keeps routing cost proportional to matches |
//! | [`outbox`] | per-client bounded send queues, drop policies, DropWarn, direct flushing |
//! | [`connection`] | the reader task per connection (TCP and TLS) and clean closing |
//! | [`server`] | [`Router`]: bind, run until a shutdown future, reload, statistics |
//! | [`tls`] | rustls server configuration |
//! | [`metrics`] | counters and the Prometheus responder |
//! | [`privileges`] | switching to an unprivileged account once the endpoints are bound |
//!
//! The speed comes from three choices: each connection's reader handles a
//! whole read batch synchronously and then flushes every outbox it touched
//! once, directly with a non-blocking write (no task hop on the fast path,
//! one system call per client per batch); the index limits evaluation to
//! candidates; and deliveries copy the producer's raw attribute bytes
//! instead of re-encoding them.

pub mod broker;
pub mod config;
pub mod connection;
pub mod index;
pub mod metrics;
pub mod negotiation;
pub mod outbox;
pub mod privileges;
pub mod server;
pub mod session;
pub mod tls;

pub use broker::{Broker, Notification, RouteScratch};
pub use config::{ConnectionLimits, Flags, Settings};
pub use metrics::Metrics;
pub use outbox::{Outbox, QueueLimits, Sink};
pub use server::{Reloader, Router};
