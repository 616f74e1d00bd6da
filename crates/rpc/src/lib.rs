//! Emulab's boss XML-RPC interface for the event system: the server
//! `tbevents-rpc` and the read-only store the scheduler uses on ops.
//!
//! See `docs/rpc.md` for the protocol, the transports and the
//! configuration.

pub mod client;
pub mod codec;
pub mod server;
pub mod service;

pub use client::{XmlRpcStore, register};
pub use codec::{CodecError, MethodCall, MethodResponse, Value};
