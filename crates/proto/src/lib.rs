//! The Elvin 4 client protocol: wire types and the framed XDR codec.
//!
//! (Module overview to be completed with the codec.)

pub mod value;

pub use value::{AttributeLookup, Attributes, AttributesRef, Value, ValueRef, ValueType};
