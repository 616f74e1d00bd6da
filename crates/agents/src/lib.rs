//! Node agents: the programs on an experiment's nodes that act on the
//! events the scheduler fires.
//!
//! In Emulab the event system exists for the agents: a `$ns at 10 "$cbr0
//! start"` line is useless until something on the node starts sending
//! traffic. This crate holds the small runtime every agent shares and the
//! agents built on it. Each agent is a thin binary over a library module,
//! so the testbed code and the tests can drive the same code.
//!
//! | module | what it holds |
//! |---|---|
//! | [`runtime`] | register with the node's router, subscribe with the Emulab shape, receive verified events, publish replies |
//! | [`rows`] | read this node's rows (`virt_programs`, `virt_trafgens`, its control IP) from the store |
//! | [`args`] | typed reading of `ARGS`, with errors that say what was wrong |
//! | [`privilege`] | who the program agent runs as: never root |
//! | [`logging`] | tracing to stderr |
//! | [`program`] | the program agent (`program-agent`) |
//! | [`trafgen`] | the constant-bit-rate traffic generator (`trafgen`) |
//!
//! `docs/agents.md` describes the agents for operators: flags, events,
//! ARGS, log files and the COMPLETE reply.
//!
//! # Rules every agent follows
//!
//! - Every event is checked against the experiment's key before it is
//!   looked at; unsigned or forged events are dropped and logged by the
//!   event library.
//! - An unknown event type, a malformed `ARGS` string or a bad value is
//!   logged and the event ignored: nothing an event says can stop an
//!   agent. Only start-up problems (unreadable key, unknown experiment or
//!   node) are fatal, with a message that says what to fix.
//! - The router may come and go: agents wait for it at start and
//!   reconnect (with their subscriptions) after a lost connection.

pub mod args;
pub mod logging;
pub mod privilege;
pub mod program;
pub mod rows;
pub mod runtime;
pub mod trafgen;
