//! The sibling programs the demo starts (`eventd`, `event-sched`, and
//! `tevc` for the command line the demo prints). Finding them, and
//! building them on a fresh clone, is `tbevents_cli::programs`.

pub(crate) use tbevents_cli::programs::{find_siblings, own_dir};

/// The programs the demo needs, with the package that builds each
/// (`tevc` so the command line the demo prints works as printed).
pub(crate) const DEMO_PROGRAMS: &[(&str, &str)] = &[
    ("eventd", "elvin-router"),
    ("event-sched", "tbevents-sched"),
    ("tevc", "tbevents-tools"),
];
