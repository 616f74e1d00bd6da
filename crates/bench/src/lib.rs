//! `eventd-bench`: a load generator and latency meter for any Elvin 4
//! router.
//!
//! The tool speaks Elvin 4 over TCP itself, with only the `elvin-proto`
//! codec, so it measures any router (ours, Avis, Mantara's elvind) the same
//! way and its own per-packet cost stays small and visible. Each
//! subcommand is a module with a config struct, an async `run` and a
//! serialisable report:
//!
//! | module | subcommand | measures |
//! |---|---|---|
//! | [`pingpong`] | `pingpong` | round-trip latency, one notification at a time, through two router passes |
//! | [`throughput`] | `throughput` | delivered Emulab events per second from P publishers to S subscribers, with a bounded in-flight window, delivery latency, order and loss |
//! | [`subscriptions`] | `subscriptions` | throughput beside K non-matching subscriptions, and how fast K subscriptions install |
//! | [`connections`] | `connections` | router memory with N idle subscribed sessions, and round trips through them |
//! | [`floor`] | `floor` | the same round trip through a byte-copying relay: the machine's floor |
//!
//! Shared pieces: [`wire`] (sessions and framing), [`shape`] (the
//! Emulab-shaped traffic), [`stats`] (histograms and percentiles),
//! [`procinfo`] (resident memory, file limits) and [`report`] (the
//! human-readable output).
//!
//! Every run is bounded: by a count and a duration (whichever ends
//! first), and every wait on the router by a timeout, so a dead router
//! ends a run with an error rather than hanging it.

pub mod connections;
pub mod error;
pub mod floor;
pub mod pingpong;
pub mod procinfo;
pub mod report;
pub mod shape;
pub mod stats;
pub mod subscriptions;
pub mod throughput;
pub mod wire;

pub use error::BenchError;

use serde::Serialize;

/// What ended a measured phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// The requested count was reached.
    Count,
    /// The requested duration passed.
    Duration,
    /// Another part of the run failed and stopped this one.
    Stall,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Count => "count reached",
            StopReason::Duration => "duration reached",
            StopReason::Stall => "stopped early",
        })
    }
}
