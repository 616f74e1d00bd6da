//! Raw XDR for code that must build or skim frames by hand: hostile-input
//! tests that send what the typed packets refuse to encode, the benchmark
//! tool that pre-builds frames and skims deliveries without a full decode,
//! and the canonical attribute-list encoding the event library signs.
//!
//! Everything else uses the packet types ([`crate::Packet`] and friends),
//! which apply the protocol's limits. The codec's internals (padding, array
//! helpers, length arithmetic) stay private to this crate; this module is
//! the curated part of it that other crates may rely on.

pub use crate::xdr::{
    MIN_NAME_VALUE_LEN, Reader, name_values_len, put_bool, put_count, put_i32, put_i64,
    put_name_values, put_opaque, put_str, put_u32, put_value,
};
