//! The caps that keep parsing bounded in memory and time.
//!
//! NS files come from users, so the front end must survive anything: a file
//! of a million `[`, a loop that never ends, a string doubled in a loop. Each
//! constant below bounds one way input can make work grow, and exceeding it
//! is a clear [`crate::NsErrorKind::LimitExceeded`] (or, for events,
//! [`crate::NsErrorKind::TooManyEvents`]) rather than a hang or an abort.
//! The values are far above what real Emulab experiments use.

/// Most `$ns at` events (eventlist rows) one file may produce, counting each
/// member of an event group. Emulab's seed front end refused more than 4000.
pub const MAX_EVENTS: usize = 4000;

/// Largest NS file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest nesting of `[...]` command substitutions, `$a(...)` indexes and
/// loop bodies.
pub const MAX_NESTING: u32 = 48;

/// Longest string any single substitution may produce, in bytes.
pub const MAX_STRING_BYTES: usize = 1024 * 1024;

/// Total bytes all variables may hold at once.
pub const MAX_VARIABLE_BYTES: usize = 16 * 1024 * 1024;

/// Most distinct variables (array elements count one each).
pub const MAX_VARIABLES: usize = 100_000;

/// Total bytes substitution may produce over the whole run; bounds the time
/// spent copying strings.
pub const MAX_WORK_BYTES: u64 = 64 * 1024 * 1024;

/// Most commands evaluated over the whole run (loop bodies count each time).
pub const MAX_COMMANDS: u64 = 1_000_000;

/// Most loop iterations (`for` and `foreach` together) over the whole run.
pub const MAX_LOOP_ITERATIONS: u64 = 100_000;

/// Most NS objects (nodes, links, agents, ...) one file may create.
pub const MAX_OBJECTS: usize = 20_000;

/// Most link and LAN memberships (one per node per link or LAN) in a file.
pub const MAX_LINK_MEMBERS: usize = 100_000;

/// Most event-group memberships in a file.
pub const MAX_GROUP_MEMBERS: usize = 100_000;

/// Longest text of one event (the part of a `$ns at` string between `;`).
pub const MAX_EVENT_TEXT_BYTES: usize = 4096;

/// Longest program-agent command line.
pub const MAX_COMMAND_LINE_BYTES: usize = 4096;

/// Longest object name; Emulab's `virt_nodes.vname` and `virt_lans.vname`
/// columns are `varchar(32)`.
pub const MAX_NAME_CHARS: usize = 32;
