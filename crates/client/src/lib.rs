//! client: work in progress (see the crate description).
