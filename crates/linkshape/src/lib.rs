//! Link shaping for tbevents: Emulab's link agent (`delay-agent`) and the
//! machinery under it.
//!
//! An experiment's links carry a bandwidth, a delay, a loss rate and a
//! queue per direction. Events (`LINK UP`, `DOWN`, `MODIFY BANDWIDTH=...`)
//! change them while the experiment runs. This crate holds:
//!
//! - [`params`]: what one direction of a link is set to ([`PipeParams`]),
//!   and the parser for the `MODIFY` arguments that change it;
//! - [`spec`]: the `--link` mapping from link names to interfaces, and
//!   which directions an event's object name selects;
//! - [`store_params`]: a link's settings as the experiment store has them;
//! - [`backend`]: the [`LinkBackend`] trait with two implementations,
//!   [`tc`] (kernel queueing disciplines) and [`shaper`] (a user-space
//!   bridge that shapes packets itself, like Emulab's delay nodes);
//! - [`agent`]: the event loop of `delay-agent`;
//! - [`netns`]: network-namespace helpers the tests, the benchmarks and
//!   the emulated testbed share.
//!
//! The shaper is a library first: [`shaper::Shaper`] bridges two interfaces
//! and takes new settings live, so linktest and the testbed can run it
//! without the agent.

pub mod agent;
pub mod backend;
pub mod netns;
pub mod offload;
pub mod params;
pub mod probe;
pub mod shaper;
pub mod spec;
pub mod store_params;
pub mod tc;

pub use backend::{BackendError, LinkBackend};
pub use params::{Direction, PipeParams, QueueParams, RedParams};
pub use spec::LinkSpec;
