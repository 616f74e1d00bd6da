//! linktest: checks that a swapped-in experiment's links have the
//! connectivity, latency, loss and bandwidth its NS file asked for, and
//! that static routes take the expected paths.
//!
//! Emulab users run linktest after swap-in to check that the topology they
//! asked for is the one they got. It has two halves:
//!
//! - a **daemon on every node** ([`daemon`], the `linktest` binary), idle
//!   until a signed LINKTEST START names its node, which then runs its part
//!   of each test with its own UDP probes ([`probe`]) and reports errors as
//!   events;
//! - a **controller** ([`control`], `tbevents linktest`), run as the
//!   experiment's user, which builds the topology from the experiment
//!   store ([`topology`]), steps every node through the same deterministic
//!   schedule ([`schedule`]), judges nothing itself (nodes judge what they
//!   measured, [`verdict`]) and writes the original's per-node error files
//!   and a summary ([`report`]).
//!
//! They speak ordinary experiment events ([`protocol`]), so the run is
//! authenticated by the experiment's key, visible in `eventdebug`, and
//! needs no other server. docs/linktest.md describes levels, thresholds,
//! the event exchange and the differences from the original.

pub mod control;
pub mod daemon;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod schedule;
pub mod topology;
pub mod verdict;
