//! router: work in progress (see the crate description).
