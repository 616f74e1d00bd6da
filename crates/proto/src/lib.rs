//! The Elvin 4 client protocol: wire types and the framed XDR codec.

pub mod error;
pub mod keys;
pub mod value;
pub mod xdr;

pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use keys::{KeyEntry, KeyScheme, KeySet, Keys, keys_match};
pub use value::{AttributeLookup, Attributes, AttributesRef, Value, ValueRef, ValueType};
