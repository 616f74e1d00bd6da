//! The one-machine emulated testbed: an experiment's nodes, links and
//! agents built from the store in Linux network namespaces.
//!
//! `tbevents testbed up -e pid/eid` (and any program through [`up`])
//! turns a swapped-in experiment into something that runs: a namespace per
//! node with its experimental interfaces and addresses, veth pairs for its
//! links, a switch namespace per LAN, a delay node (namespace plus
//! `delay-agent --backend shaper`) for every shaped link, static routes,
//! and on every node a router (`eventd`) fed by `evproxy` from the
//! experiment's event server, with the node's agents. [`down`] removes all
//! of it, and only it. See docs/testbed.md.
//!
//! The modules, in the order `up` uses them:
//!
//! - [`names`]: the prefix every made thing carries, and interface names;
//! - [`plan`](mod@plan): what to build, computed from the rows alone (pure, tested
//!   without root);
//! - [`netns`]: `ip`, work inside a namespace, processes started there;
//! - [`forward`]: the control forwarder that lets nodes reach the event
//!   server on the host without giving the host any new address or route;
//! - [`process`]: starting, recording and stopping processes;
//! - [`probe`]: our own round-trip probe between two namespaces;
//! - [`testbed`]: `up`, `down`, `status` and the state file.

pub mod forward;
pub mod names;
pub mod netns;
pub mod plan;
pub mod probe;
pub mod process;
pub mod testbed;

pub use plan::{Plan, plan};
pub use testbed::{
    Config, DEFAULT_STATE_DIR, Removed, State, Status, down, plan_for, require_root, status, up,
};
