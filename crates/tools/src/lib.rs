//! The tbevents command-line tools, one module per tool; each binary in
//! `src/bin/` is a thin wrapper that calls its module's `main`.

pub mod eventdebug;
pub mod evproxy;
pub mod relay;
pub mod tevc;
