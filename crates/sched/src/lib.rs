//! `event-sched`, the per-experiment event scheduler, as a library.
//!
//! The scheduler is what experimenters notice: their `$ns at` lines must
//! happen on time, and the events they send with `tevc` must reach the
//! right agents. One process runs per experiment; `docs/scheduler.md`
//! describes it for operators, including every place it deliberately
//! differs from the original (docs/emulab-model.md §6).
//!
//! # Shape
//!
//! | module | role |
//! |---|---|
//! | [`run`] | start-up in the original's order, signal handling, exit summary |
//! | [`agents`] | the agent and group table (name → entries, groups fan out) |
//! | [`schedule`] | compact records keyed by (due time, sequence); static event loading |
//! | [`firing`] | the firing thread: precise waits, build + sign at fire time, batched sends |
//! | [`dynamic`] | `tevc` requests: rewrite per agent, hold until the table is loaded |
//! | [`simulator`] | SIMULATOR SWAPOUT / HALT commands |
//! | [`network`] | the keyed router connection: request subscription and the signing outlet |
//! | [`stats`] | counters and the lateness histogram |
//! | [`logging`], [`privilege`], [`intern`], [`time`] | plumbing (the command line is the binary's, `src/cli.rs`) |
//!
//! The async runtime (tokio) handles the network and the store; the
//! firing thread is a plain OS thread because tokio's millisecond timer
//! cannot meet the accuracy target (see [`firing`]).

pub mod agents;
pub mod dynamic;
pub mod firing;
pub mod intern;
pub mod logging;
pub mod network;
pub mod privilege;
pub mod run;
pub mod schedule;
pub mod simulator;
pub mod stats;
#[cfg(test)]
mod test_fixtures;
pub mod time;
