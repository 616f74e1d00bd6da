//! The Elvin 4 client-protocol packets (docs/protocol.md §4): one struct per message and
//! the [`Packet`] enum over all of them.
//!
//! Each message is a plain struct with public fields named after the spec's
//! fields, implementing [`Message`] (its id, name, and how its fields are
//! read and written). Keeping one type per message makes impossible states
//! unrepresentable (a SubRply cannot lack its subscription id) and lets the
//! router and client match exhaustively on [`Packet`].
//!
//! Decoding is strict: every field must be present and well-formed, and the
//! body must be consumed exactly. Transaction ids (xids) of requests must be
//! non-zero (any other value is accepted and should be echoed unchanged);
//! subscription and quench ids in requests must be non-zero. Replies are read
//! leniently on those two points, since a client gains nothing by refusing a
//! router's reply.
//!
//! Owned decoding copies strings out of the frame. The router's per-
//! notification path does not use it: see [`crate::notify`] for the borrowed
//! NotifyEmit/UNotify decoder and the raw NotifyDeliver encoder.

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::keys::Keys;
use crate::sub_ast::SubAst;
use crate::value::{Attributes, Value};
use crate::xdr::{self, Reader, XdrResult};

/// Connection options as sent: names with typed values, in wire order,
/// duplicates kept (a client may send both the standard and the legacy name
/// of one option, and each is answered).
pub type Options = Vec<(String, Value)>;

/// A client-protocol message: its packet id and name, and its field codec.
///
/// The field methods handle what follows the packet id; the provided
/// methods add the length prefix and id to produce a whole frame.
pub trait Message: Sized {
    /// The packet type id (docs/protocol.md §4.1).
    const ID: i32;
    /// The packet's name as used in the spec and in error messages.
    const NAME: &'static str;

    /// Reads the fields that follow the packet id. Does not check for
    /// leftover bytes.
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self>;

    /// Appends the fields that follow the packet id.
    fn encode_fields(&self, out: &mut Vec<u8>);

    /// Size of the fields that follow the packet id.
    fn fields_len(&self) -> usize;

    /// Size of the packet body (packet id and fields, without the 4-byte
    /// frame length prefix): the number to compare with the peer's
    /// `Packet.Max-Length`.
    fn encoded_len(&self) -> usize {
        4 + self.fields_len()
    }

    /// Appends one complete frame: length prefix, packet id, fields.
    fn encode_frame(&self, out: &mut Vec<u8>) {
        let body_len = self.encoded_len();
        out.reserve(4 + body_len);
        xdr::put_u32(out, u32::try_from(body_len).unwrap_or(u32::MAX));
        xdr::put_i32(out, Self::ID);
        let start = out.len();
        self.encode_fields(out);
        debug_assert_eq!(
            out.len() - start + 4,
            body_len,
            "{} length mismatch",
            Self::NAME
        );
    }
}

fn read_request_xid(reader: &mut Reader<'_>) -> XdrResult<i32> {
    match reader.read_i32()? {
        0 => Err(DecodeErrorKind::ZeroXid),
        xid => Ok(xid),
    }
}

fn read_request_id(reader: &mut Reader<'_>, what: &'static str) -> XdrResult<i64> {
    match reader.read_i64()? {
        0 => Err(DecodeErrorKind::ZeroId { what }),
        id => Ok(id),
    }
}

fn read_attributes(reader: &mut Reader<'_>) -> XdrResult<Attributes> {
    Ok(reader.read_attributes_ref()?.to_owned())
}

fn put_attributes(out: &mut Vec<u8>, attributes: &Attributes) {
    xdr::put_name_values(out, attributes.iter().map(|(n, v)| (n, v.as_ref())));
}

fn attributes_len(attributes: &Attributes) -> usize {
    xdr::name_values_len(attributes.iter().map(|(n, v)| (n, v.as_ref())))
}

fn read_options(reader: &mut Reader<'_>) -> XdrResult<Options> {
    reader.read_array(xdr::MIN_NAME_VALUE_LEN, |r| {
        let name = r.read_str()?;
        let value = r.read_value()?;
        Ok((name.to_owned(), value.to_owned()))
    })
}

fn put_options(out: &mut Vec<u8>, options: &Options) {
    xdr::put_name_values(out, options.iter().map(|(n, v)| (n.as_str(), v.as_ref())));
}

fn options_len(options: &Options) -> usize {
    xdr::name_values_len(options.iter().map(|(n, v)| (n.as_str(), v.as_ref())))
}

fn read_strings(reader: &mut Reader<'_>) -> XdrResult<Vec<String>> {
    reader.read_array(xdr::MIN_OPAQUE_LEN, |r| r.read_str().map(str::to_owned))
}

/// Session-less notification (32): a NotifyEmit without a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct UNotify {
    /// Client protocol major version.
    pub client_major: i32,
    /// Client protocol minor version.
    pub client_minor: i32,
    /// The notification.
    pub attributes: Attributes,
    /// May be delivered to subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// The notification's keys.
    pub keys: Keys,
}

impl Message for UNotify {
    const ID: i32 = 32;
    const NAME: &'static str = "UNotify";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(UNotify {
            client_major: reader.read_i32()?,
            client_minor: reader.read_i32()?,
            attributes: read_attributes(reader)?,
            deliver_insecure: reader.read_bool()?,
            keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.client_major);
        xdr::put_i32(out, self.client_minor);
        put_attributes(out, &self.attributes);
        xdr::put_bool(out, self.deliver_insecure);
        self.keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        8 + attributes_len(&self.attributes) + 4 + self.keys.encoded_len()
    }
}

/// Negative reply to a request (48).
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    /// The xid of the refused request.
    pub xid: i32,
    /// Error code (see [`crate::codes::nack`]).
    pub error: i32,
    /// Message template; `%1`, `%2`, … stand for the arguments.
    pub message: String,
    /// Arguments for the template.
    pub args: Vec<Value>,
}

impl Message for Nack {
    const ID: i32 = 48;
    const NAME: &'static str = "Nack";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(Nack {
            xid: reader.read_i32()?,
            error: reader.read_i32()?,
            message: reader.read_str()?.to_owned(),
            args: reader.read_values()?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_i32(out, self.error);
        xdr::put_str(out, &self.message);
        xdr::put_values(out, &self.args);
    }
    fn fields_len(&self) -> usize {
        8 + xdr::opaque_encoded_len(self.message.len()) + xdr::values_len(&self.args)
    }
}

/// Connection request (49).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// Client protocol major version.
    pub client_major: i32,
    /// Client protocol minor version.
    pub client_minor: i32,
    /// Requested connection options.
    pub options: Options,
    /// Keys applied to every notification of this connection.
    pub notification_keys: Keys,
    /// Keys applied to every subscription of this connection.
    pub subscription_keys: Keys,
}

impl Message for ConnRqst {
    const ID: i32 = 49;
    const NAME: &'static str = "ConnRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(ConnRqst {
            xid: read_request_xid(reader)?,
            client_major: reader.read_i32()?,
            client_minor: reader.read_i32()?,
            options: read_options(reader)?,
            notification_keys: Keys::decode(reader)?,
            subscription_keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_i32(out, self.client_major);
        xdr::put_i32(out, self.client_minor);
        put_options(out, &self.options);
        self.notification_keys.encode(out);
        self.subscription_keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        12 + options_len(&self.options)
            + self.notification_keys.encoded_len()
            + self.subscription_keys.encoded_len()
    }
}

/// Connection accepted (50), with the options in effect.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnRply {
    /// The ConnRqst's xid.
    pub xid: i32,
    /// Negotiated options.
    pub options: Options,
}

impl Message for ConnRply {
    const ID: i32 = 50;
    const NAME: &'static str = "ConnRply";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(ConnRply {
            xid: reader.read_i32()?,
            options: read_options(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        put_options(out, &self.options);
    }
    fn fields_len(&self) -> usize {
        4 + options_len(&self.options)
    }
}

/// Defines a message whose only field is an xid.
macro_rules! xid_only_message {
    ($(#[$doc:meta])* $name:ident, $id:expr, $read:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Transaction id.
            pub xid: i32,
        }

        impl Message for $name {
            const ID: i32 = $id;
            const NAME: &'static str = stringify!($name);
            fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
                Ok($name { xid: $read(reader)? })
            }
            fn encode_fields(&self, out: &mut Vec<u8>) {
                xdr::put_i32(out, self.xid);
            }
            fn fields_len(&self) -> usize {
                4
            }
        }
    };
}

xid_only_message!(
    /// Client asks to close the connection (51).
    DisconnRqst, 51, read_request_xid
);
xid_only_message!(
    /// Router confirms the close (52); the last packet it sends.
    DisconnRply, 52, Reader::read_i32
);
xid_only_message!(
    /// Router confirms a SecRqst (55).
    SecRply, 55, Reader::read_i32
);

/// Router closes the connection (53).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconn {
    /// Reason code (see [`crate::codes::disconn`]).
    pub reason: i32,
    /// Explanation, or the redirect address for reason 2.
    pub args: String,
}

impl Message for Disconn {
    const ID: i32 = 53;
    const NAME: &'static str = "Disconn";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(Disconn {
            reason: reader.read_i32()?,
            args: reader.read_str()?.to_owned(),
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.reason);
        xdr::put_str(out, &self.args);
    }
    fn fields_len(&self) -> usize {
        4 + xdr::opaque_encoded_len(self.args.len())
    }
}

/// Change the connection's keys (54).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// Notification keys to add.
    pub add_notification_keys: Keys,
    /// Notification keys to remove.
    pub del_notification_keys: Keys,
    /// Subscription keys to add.
    pub add_subscription_keys: Keys,
    /// Subscription keys to remove.
    pub del_subscription_keys: Keys,
}

impl Message for SecRqst {
    const ID: i32 = 54;
    const NAME: &'static str = "SecRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(SecRqst {
            xid: read_request_xid(reader)?,
            add_notification_keys: Keys::decode(reader)?,
            del_notification_keys: Keys::decode(reader)?,
            add_subscription_keys: Keys::decode(reader)?,
            del_subscription_keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        self.add_notification_keys.encode(out);
        self.del_notification_keys.encode(out);
        self.add_subscription_keys.encode(out);
        self.del_subscription_keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        4 + self.add_notification_keys.encoded_len()
            + self.del_notification_keys.encoded_len()
            + self.add_subscription_keys.encoded_len()
            + self.del_subscription_keys.encoded_len()
    }
}

/// Publish a notification on a connection (56). No reply.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyEmit {
    /// The notification.
    pub attributes: Attributes,
    /// May be delivered to subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// The notification's keys.
    pub keys: Keys,
}

impl Message for NotifyEmit {
    const ID: i32 = 56;
    const NAME: &'static str = "NotifyEmit";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(NotifyEmit {
            attributes: read_attributes(reader)?,
            deliver_insecure: reader.read_bool()?,
            keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        put_attributes(out, &self.attributes);
        xdr::put_bool(out, self.deliver_insecure);
        self.keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        attributes_len(&self.attributes) + 4 + self.keys.encoded_len()
    }
}

/// A notification delivered to a client (57), with the ids of the client's
/// matching subscriptions.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyDeliver {
    /// The notification.
    pub attributes: Attributes,
    /// Subscriptions matched with keys.
    pub secure_matches: Vec<i64>,
    /// Subscriptions matched without keys.
    pub insecure_matches: Vec<i64>,
}

impl Message for NotifyDeliver {
    const ID: i32 = 57;
    const NAME: &'static str = "NotifyDeliver";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(NotifyDeliver {
            attributes: read_attributes(reader)?,
            secure_matches: reader.read_i64_array()?,
            insecure_matches: reader.read_i64_array()?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        put_attributes(out, &self.attributes);
        xdr::put_i64_array(out, &self.secure_matches);
        xdr::put_i64_array(out, &self.insecure_matches);
    }
    fn fields_len(&self) -> usize {
        attributes_len(&self.attributes)
            + xdr::i64_array_len(&self.secure_matches)
            + xdr::i64_array_len(&self.insecure_matches)
    }
}

/// Add a subscription (58).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAddRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// Subscription expression.
    pub expression: String,
    /// Accept notifications delivered without matching keys.
    pub accept_insecure: bool,
    /// The subscription's keys.
    pub keys: Keys,
}

impl Message for SubAddRqst {
    const ID: i32 = 58;
    const NAME: &'static str = "SubAddRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(SubAddRqst {
            xid: read_request_xid(reader)?,
            expression: reader.read_str()?.to_owned(),
            accept_insecure: reader.read_bool()?,
            keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_str(out, &self.expression);
        xdr::put_bool(out, self.accept_insecure);
        self.keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        4 + xdr::opaque_encoded_len(self.expression.len()) + 4 + self.keys.encoded_len()
    }
}

/// Modify a subscription (59).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubModRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// The subscription to change (non-zero).
    pub subscription_id: i64,
    /// New expression; empty keeps the current one.
    pub expression: String,
    /// New accept-insecure setting (always applied).
    pub accept_insecure: bool,
    /// Keys to add.
    pub add_keys: Keys,
    /// Keys to remove.
    pub del_keys: Keys,
}

impl Message for SubModRqst {
    const ID: i32 = 59;
    const NAME: &'static str = "SubModRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(SubModRqst {
            xid: read_request_xid(reader)?,
            subscription_id: read_request_id(reader, "subscription id")?,
            expression: reader.read_str()?.to_owned(),
            accept_insecure: reader.read_bool()?,
            add_keys: Keys::decode(reader)?,
            del_keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_i64(out, self.subscription_id);
        xdr::put_str(out, &self.expression);
        xdr::put_bool(out, self.accept_insecure);
        self.add_keys.encode(out);
        self.del_keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        12 + xdr::opaque_encoded_len(self.expression.len())
            + 4
            + self.add_keys.encoded_len()
            + self.del_keys.encoded_len()
    }
}

/// Defines a message made of an xid and a 64-bit id.
macro_rules! xid_and_id_message {
    ($(#[$doc:meta])* $name:ident, $id:expr, $field:ident, $what:literal, request: $request:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Transaction id.
            pub xid: i32,
            #[doc = concat!("The ", $what, ".")]
            pub $field: i64,
        }

        impl Message for $name {
            const ID: i32 = $id;
            const NAME: &'static str = stringify!($name);
            fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
                if $request {
                    Ok($name { xid: read_request_xid(reader)?, $field: read_request_id(reader, $what)? })
                } else {
                    Ok($name { xid: reader.read_i32()?, $field: reader.read_i64()? })
                }
            }
            fn encode_fields(&self, out: &mut Vec<u8>) {
                xdr::put_i32(out, self.xid);
                xdr::put_i64(out, self.$field);
            }
            fn fields_len(&self) -> usize {
                12
            }
        }
    };
}

xid_and_id_message!(
    /// Remove a subscription (60).
    SubDelRqst, 60, subscription_id, "subscription id", request: true
);
xid_and_id_message!(
    /// Subscription added, changed or removed (61).
    SubRply, 61, subscription_id, "subscription id", request: false
);
xid_and_id_message!(
    /// Remove a quench (82).
    QnchDelRqst, 82, quench_id, "quench id", request: true
);
xid_and_id_message!(
    /// Quench added, changed or removed (83).
    QnchRply, 83, quench_id, "quench id", request: false
);

/// Defines a message without fields.
macro_rules! empty_message {
    ($(#[$doc:meta])* $name:ident, $id:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl Message for $name {
            const ID: i32 = $id;
            const NAME: &'static str = stringify!($name);
            fn decode_fields(_reader: &mut Reader<'_>) -> XdrResult<Self> {
                Ok($name)
            }
            fn encode_fields(&self, _out: &mut Vec<u8>) {}
            fn fields_len(&self) -> usize {
                0
            }
        }
    };
}

empty_message!(
    /// The router dropped packets for this client (62).
    DropWarn, 62
);
empty_message!(
    /// Liveness probe (63); answered with ConfConn.
    TestConn, 63
);
empty_message!(
    /// Answer to TestConn (64).
    ConfConn, 64
);

/// Defines a message made of an xid and options.
macro_rules! xid_and_options_message {
    ($(#[$doc:meta])* $name:ident, $id:expr, $read_xid:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            /// Transaction id.
            pub xid: i32,
            /// Connection options.
            pub options: Options,
        }

        impl Message for $name {
            const ID: i32 = $id;
            const NAME: &'static str = stringify!($name);
            fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
                Ok($name { xid: $read_xid(reader)?, options: read_options(reader)? })
            }
            fn encode_fields(&self, out: &mut Vec<u8>) {
                xdr::put_i32(out, self.xid);
                put_options(out, &self.options);
            }
            fn fields_len(&self) -> usize {
                4 + options_len(&self.options)
            }
        }
    };
}

xid_and_options_message!(
    /// Renegotiate connection options (70).
    QosRqst, 70, read_request_xid
);
xid_and_options_message!(
    /// Options after renegotiation (71).
    QosRply, 71, Reader::read_i32
);

/// Register interest in subscriptions that use some attribute names (80).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QnchAddRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// Attribute names to watch.
    pub names: Vec<String>,
    /// Accept subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// The quench's keys.
    pub keys: Keys,
}

impl Message for QnchAddRqst {
    const ID: i32 = 80;
    const NAME: &'static str = "QnchAddRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(QnchAddRqst {
            xid: read_request_xid(reader)?,
            names: read_strings(reader)?,
            deliver_insecure: reader.read_bool()?,
            keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_str_array(out, &self.names);
        xdr::put_bool(out, self.deliver_insecure);
        self.keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        4 + xdr::str_array_len(&self.names) + 4 + self.keys.encoded_len()
    }
}

/// Change a quench (81).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QnchModRqst {
    /// Transaction id (non-zero).
    pub xid: i32,
    /// The quench to change (non-zero).
    pub quench_id: i64,
    /// Names to add.
    pub names_add: Vec<String>,
    /// Names to remove.
    pub names_del: Vec<String>,
    /// Accept subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// Keys to add.
    pub add_keys: Keys,
    /// Keys to remove.
    pub del_keys: Keys,
}

impl Message for QnchModRqst {
    const ID: i32 = 81;
    const NAME: &'static str = "QnchModRqst";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(QnchModRqst {
            xid: read_request_xid(reader)?,
            quench_id: read_request_id(reader, "quench id")?,
            names_add: read_strings(reader)?,
            names_del: read_strings(reader)?,
            deliver_insecure: reader.read_bool()?,
            add_keys: Keys::decode(reader)?,
            del_keys: Keys::decode(reader)?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i32(out, self.xid);
        xdr::put_i64(out, self.quench_id);
        xdr::put_str_array(out, &self.names_add);
        xdr::put_str_array(out, &self.names_del);
        xdr::put_bool(out, self.deliver_insecure);
        self.add_keys.encode(out);
        self.del_keys.encode(out);
    }
    fn fields_len(&self) -> usize {
        12 + xdr::str_array_len(&self.names_add)
            + xdr::str_array_len(&self.names_del)
            + 4
            + self.add_keys.encoded_len()
            + self.del_keys.encoded_len()
    }
}

/// Defines a subscription-change notification for quenchers (84, 85).
macro_rules! sub_notify_message {
    ($(#[$doc:meta])* $name:ident, $id:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            /// Quenches matched with keys.
            pub secure_quench_ids: Vec<i64>,
            /// Quenches matched without keys.
            pub insecure_quench_ids: Vec<i64>,
            /// The router's id for the subscription term.
            pub term_id: i64,
            /// The subscription expression as a tree.
            pub sub_expr: SubAst,
        }

        impl Message for $name {
            const ID: i32 = $id;
            const NAME: &'static str = stringify!($name);
            fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
                Ok($name {
                    secure_quench_ids: reader.read_i64_array()?,
                    insecure_quench_ids: reader.read_i64_array()?,
                    term_id: reader.read_i64()?,
                    sub_expr: SubAst::decode(reader)?,
                })
            }
            fn encode_fields(&self, out: &mut Vec<u8>) {
                xdr::put_i64_array(out, &self.secure_quench_ids);
                xdr::put_i64_array(out, &self.insecure_quench_ids);
                xdr::put_i64(out, self.term_id);
                self.sub_expr.encode(out);
            }
            fn fields_len(&self) -> usize {
                xdr::i64_array_len(&self.secure_quench_ids)
                    + xdr::i64_array_len(&self.insecure_quench_ids)
                    + 8
                    + self.sub_expr.encoded_len()
            }
        }
    };
}

sub_notify_message!(
    /// A subscription matching a quench was added (84).
    SubAddNotify, 84
);
sub_notify_message!(
    /// A subscription matching a quench was changed (85).
    SubModNotify, 85
);

/// A subscription matching a quench was removed (86).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubDelNotify {
    /// The quenches concerned.
    pub quench_ids: Vec<i64>,
    /// The router's id for the removed subscription term.
    pub term_id: i64,
}

impl Message for SubDelNotify {
    const ID: i32 = 86;
    const NAME: &'static str = "SubDelNotify";
    fn decode_fields(reader: &mut Reader<'_>) -> XdrResult<Self> {
        Ok(SubDelNotify {
            quench_ids: reader.read_i64_array()?,
            term_id: reader.read_i64()?,
        })
    }
    fn encode_fields(&self, out: &mut Vec<u8>) {
        xdr::put_i64_array(out, &self.quench_ids);
        xdr::put_i64(out, self.term_id);
    }
    fn fields_len(&self) -> usize {
        xdr::i64_array_len(&self.quench_ids) + 8
    }
}

/// Decodes the fields of `M` and checks that nothing is left over.
fn decode_exact<M: Message>(reader: &mut Reader<'_>) -> Result<M, DecodeError> {
    M::decode_fields(reader)
        .and_then(|message| reader.finish().map(|()| message))
        .map_err(|kind| DecodeError::in_packet(M::NAME, kind))
}

/// The packet id at the start of a body, if there are at least 4 bytes.
pub fn peek_packet_id(body: &[u8]) -> Option<i32> {
    Reader::new(body).read_i32().ok()
}

/// Defines [`Packet`] and its dispatch over every message type.
macro_rules! packets {
    ($($variant:ident),* $(,)?) => {
        /// Any client-protocol packet.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Packet {
            $(
                #[doc = concat!("A ", stringify!($variant), " packet.")]
                $variant($variant),
            )*
        }

        impl Packet {
            /// The packet type id.
            pub fn id(&self) -> i32 {
                match self {
                    $(Packet::$variant(_) => $variant::ID,)*
                }
            }

            /// The packet's name ("NotifyEmit", …).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Packet::$variant(_) => $variant::NAME,)*
                }
            }

            /// The name of the packet with type id `id`, if it is a
            /// client-protocol packet.
            pub fn name_of(id: i32) -> Option<&'static str> {
                $(
                    if id == $variant::ID {
                        return Some($variant::NAME);
                    }
                )*
                None
            }

            /// Size of the packet body: packet id and fields, without the
            /// 4-byte frame length prefix. Compare it with the peer's
            /// `Packet.Max-Length` before encoding.
            pub fn encoded_len(&self) -> usize {
                match self {
                    $(Packet::$variant(message) => message.encoded_len(),)*
                }
            }

            /// Appends one complete frame (4-byte big-endian length, then
            /// the body).
            ///
            /// A body longer than `i32::MAX` bytes cannot be framed
            /// correctly; use [`Packet::try_encode`] wherever the size is
            /// not known to be within the peer's limit.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(Packet::$variant(message) => message.encode_frame(out),)*
                }
            }

            /// Decodes a frame body (the bytes after the length prefix,
            /// starting with the packet id). Every field must be valid and
            /// the body consumed exactly.
            pub fn decode(body: &[u8]) -> Result<Packet, DecodeError> {
                let mut reader = Reader::new(body);
                let id = reader.read_i32().map_err(|_| DecodeError::bare(DecodeErrorKind::MissingPacketId))?;
                $(
                    if id == $variant::ID {
                        return decode_exact::<$variant>(&mut reader).map(Packet::$variant);
                    }
                )*
                Err(DecodeError::bare(DecodeErrorKind::UnknownPacketId(id)))
            }
        }

        $(
            impl From<$variant> for Packet {
                fn from(message: $variant) -> Packet {
                    Packet::$variant(message)
                }
            }
        )*
    };
}

packets!(
    UNotify,
    Nack,
    ConnRqst,
    ConnRply,
    DisconnRqst,
    DisconnRply,
    Disconn,
    SecRqst,
    SecRply,
    NotifyEmit,
    NotifyDeliver,
    SubAddRqst,
    SubModRqst,
    SubDelRqst,
    SubRply,
    DropWarn,
    TestConn,
    ConfConn,
    QosRqst,
    QosRply,
    QnchAddRqst,
    QnchModRqst,
    QnchDelRqst,
    QnchRply,
    SubAddNotify,
    SubModNotify,
    SubDelNotify,
);

impl Packet {
    /// Appends one frame if its body fits within `max_len` bytes (the
    /// peer's `Packet.Max-Length`); otherwise appends nothing and says how
    /// large the packet was.
    pub fn try_encode(&self, out: &mut Vec<u8>, max_len: usize) -> Result<(), EncodeError> {
        let length = self.encoded_len();
        let max = max_len.min(i32::MAX as usize);
        if length > max {
            return Err(EncodeError::TooLarge {
                packet: self.name(),
                length,
                max,
            });
        }
        self.encode(out);
        Ok(())
    }

    /// The request's xid, for packets that carry one (requests and their
    /// replies).
    pub fn xid(&self) -> Option<i32> {
        Some(match self {
            Packet::Nack(p) => p.xid,
            Packet::ConnRqst(p) => p.xid,
            Packet::ConnRply(p) => p.xid,
            Packet::DisconnRqst(p) => p.xid,
            Packet::DisconnRply(p) => p.xid,
            Packet::SecRqst(p) => p.xid,
            Packet::SecRply(p) => p.xid,
            Packet::SubAddRqst(p) => p.xid,
            Packet::SubModRqst(p) => p.xid,
            Packet::SubDelRqst(p) => p.xid,
            Packet::SubRply(p) => p.xid,
            Packet::QosRqst(p) => p.xid,
            Packet::QosRply(p) => p.xid,
            Packet::QnchAddRqst(p) => p.xid,
            Packet::QnchModRqst(p) => p.xid,
            Packet::QnchDelRqst(p) => p.xid,
            Packet::QnchRply(p) => p.xid,
            Packet::UNotify(_)
            | Packet::Disconn(_)
            | Packet::NotifyEmit(_)
            | Packet::NotifyDeliver(_)
            | Packet::DropWarn(_)
            | Packet::TestConn(_)
            | Packet::ConfConn(_)
            | Packet::SubAddNotify(_)
            | Packet::SubModNotify(_)
            | Packet::SubDelNotify(_) => return None,
        })
    }
}
