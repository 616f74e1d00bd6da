//! The Elvin 4 client protocol: wire types and the framed XDR codec.

pub mod codes;
pub mod error;
pub mod frame;
pub mod keys;
pub mod notify;
pub mod options;
pub mod packet;
pub mod sub_ast;
pub mod uri;
pub mod value;
pub mod xdr;

pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use frame::{DEFAULT_MAX_PACKET_LENGTH, FrameError, frame_len, split_frame};
pub use keys::{KeyEntry, KeyScheme, KeySet, Keys, keys_match};
pub use notify::{
    NotifyRef, UNotifyRef, decode_notify_emit, decode_unotify, encode_notify_deliver_raw,
};
pub use packet::*;
pub use sub_ast::SubAst;
pub use value::{AttributeLookup, Attributes, AttributesRef, Value, ValueRef, ValueType};
