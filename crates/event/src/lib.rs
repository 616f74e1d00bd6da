//! The Emulab event library: how every tbevents component speaks Emulab
//! events over an Elvin router.
//!
//! Experiments do not speak raw Elvin. An Emulab event is an Elvin
//! notification with a fixed set of routing attributes (`SITE`, `EXPT`,
//! `GROUP`, `HOST`, `OBJTYPE`, `OBJNAME`, `EVENTTYPE`, `SCHEDULER`), the
//! sender's address, optional `ARGS`, a firing time for scheduler requests,
//! and an HMAC made with the experiment's key. This crate builds, signs,
//! sends, subscribes to and checks such events; the scheduler, the tools,
//! the relays and the agents all go through it.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`tuple`](mod@tuple) | [`AddressTuple`] and the subscription expression built from it (ANY vs ALL, safe quoting, limits) |
//! | [`notification`] | [`EventNotification`]: the attribute catalogue, typed getters and setters, the signature flag |
//! | [`auth`] | [`EventKey`] (key files), the canonical MAC encoding, signing and verification |
//! | [`handle`] | the async [`EventHandle`]: register, subscribe (stream or callback), notify, schedule |
//! | [`blocking`] | [`blocking::EventHandle`]: the same for programs without a runtime, with poll, blocking poll and a stoppable main loop |
//! | [`args`] | reading and building `ARGS` (`KEY=value`, `KEY='quoted'`, `KEY={braced}`) |
//! | [`sender`] | choosing the `___SENDER___` address |
//! | [`config`] | which event server to use (flag, `TBEVENTS_SERVER`, config file, default) |
//! | [`constants`] | attribute names, ports, server and key-file names, object and event types |
//!
//! # Example
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use tbevents_event::{AddressTuple, EventHandle};
//!
//! # async fn demo() -> Result<(), tbevents_event::EventError> {
//! let handle = EventHandle::register_with_keyfile(
//!     "elvin://event-server",
//!     "/proj/testbed/exp/demo/tbdata/eventkey",
//! )
//! .await?;
//!
//! // Ask the experiment's scheduler to start cbr0 in ten seconds.
//! let tuple = AddressTuple::new().expt("testbed/demo").objname("cbr0").eventtype("START");
//! let mut event = handle.new_notification(&tuple);
//! event.set_arguments("RATE=10 ");
//! handle.schedule(&mut event, SystemTime::now() + Duration::from_secs(10)).await?;
//!
//! // Watch what the scheduler fires for this experiment.
//! let mut fired = handle.subscribe(&AddressTuple::new().expt("testbed/demo")).await?;
//! while let Some(event) = fired.recv().await {
//!     println!("{:?} {:?}", event.objname(), event.eventtype());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Where this library differs from the original
//!
//! Each choice is explained in the module named; `docs/event-library.md`
//! collects them.
//!
//! - The MAC covers names, types and values in a canonical order, so it is
//!   not compatible with the original's ([`auth`]).
//! - Subscription values are escaped, empty values and oversized
//!   expressions are errors ([`tuple`](mod@tuple)).
//! - `SCHEDULER` comes from the tuple (the later original's behaviour);
//!   setting an attribute replaces it; scheduling twice replaces the time
//!   ([`notification`]).
//! - Changing a signed notification clears its signature flag, so the next
//!   keyed send re-signs it ([`notification`]).
//! - A key file's single trailing newline is not part of the key ([`auth`]).
//! - `___SENDER___` is the address of the route to the router ([`sender`]).

pub mod args;
pub mod auth;
pub mod blocking;
pub mod config;
pub mod constants;
pub mod error;
pub mod handle;
pub mod notification;
pub mod sender;
pub mod tuple;

pub use args::{ArgsBuilder, ArgsError, Argument, arg_get, parse_args};
pub use auth::{
    AuthError, EventKey, HMAC_LENGTH, KeyError, KeyId, MAX_KEY_LENGTH, canonical_encoding,
};
pub use error::EventError;
pub use handle::{
    EventCallbackSubscription, EventHandle, EventSubscription, RegisterOptions, server_uri,
};
pub use notification::{EventNotification, FiringTime, TimeOutOfRange};
pub use sender::{SenderAddress, SenderSource};
pub use tuple::{AddressTuple, ExpressionError, MAX_EXPRESSION_LENGTH};

pub use elvin_client::Reconnect;
pub use elvin_proto::{Attributes, Value};
