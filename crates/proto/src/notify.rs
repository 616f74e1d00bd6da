//! The router's hot path: borrowed decoding of NotifyEmit and UNotify, and
//! NotifyDeliver encoding that copies the attributes verbatim.
//!
//! A router forwards each notification to many subscribers. Decoding it into
//! owned strings and re-encoding it per subscriber would dominate the cost,
//! so instead:
//!
//! - [`decode_notify_emit`] and [`decode_unotify`] return a [`NotifyRef`]
//!   whose attribute names and values borrow from the frame (one vector
//!   allocation for the attribute list; none for an empty key block), plus
//!   `raw_attributes`, the exact bytes of the attribute list as received;
//! - [`encode_notify_deliver_raw`] writes a NotifyDeliver frame by copying
//!   those raw bytes and appending the subscription id lists, so delivering
//!   to N clients costs N memcpys rather than N re-encodings.
//!
//! The raw bytes are exactly what the producer sent. A list that repeats a
//! name is the exception: the router delivers
//! [`AttributesRef::deduplicated_encoding`] instead (one entry per name,
//! the last value: the one it matched on).
//! Validation is as strict as [`crate::Packet::decode`]: the whole frame is
//! checked before any of it is forwarded.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::keys::Keys;
use crate::packet::{Message, NotifyDeliver, NotifyEmit, UNotify};
use crate::value::AttributesRef;
use crate::xdr::{self, Reader, XdrResult};

/// A notification decoded without copying its attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyRef<'a> {
    /// The attributes, borrowed from the frame, in wire order.
    pub attributes: AttributesRef<'a>,
    /// The exact encoded attribute list (count and entries) from the frame,
    /// ready to be copied into a NotifyDeliver.
    pub raw_attributes: &'a [u8],
    /// May be delivered to subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// The notification's keys as sent (private parts not yet hashed).
    pub keys: Keys,
}

/// A session-less notification decoded without copying its attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct UNotifyRef<'a> {
    /// Client protocol major version.
    pub client_major: i32,
    /// Client protocol minor version.
    pub client_minor: i32,
    /// The notification.
    pub notify: NotifyRef<'a>,
}

/// Reads the packet id and checks it is `M`'s.
fn expect_packet<M: Message>(reader: &mut Reader<'_>) -> Result<(), DecodeError> {
    let id = reader
        .read_i32()
        .map_err(|_| DecodeError::bare(DecodeErrorKind::MissingPacketId))?;
    if id != M::ID {
        return Err(DecodeError::in_packet(
            M::NAME,
            DecodeErrorKind::WrongPacketType {
                expected: M::NAME,
                found: id,
            },
        ));
    }
    Ok(())
}

/// Reads attributes, deliver_insecure and keys, then requires the end.
fn read_notification<'a>(reader: &mut Reader<'a>) -> XdrResult<NotifyRef<'a>> {
    let start = reader.position();
    let attributes = reader.read_attributes_ref()?;
    let raw_attributes = reader.since(start);
    let deliver_insecure = reader.read_bool()?;
    let keys = Keys::decode(reader)?;
    reader.finish()?;
    Ok(NotifyRef {
        attributes,
        raw_attributes,
        deliver_insecure,
        keys,
    })
}

/// Decodes a NotifyEmit frame body (starting with packet id 56) without
/// copying its attributes.
pub fn decode_notify_emit(body: &[u8]) -> Result<NotifyRef<'_>, DecodeError> {
    let mut reader = Reader::new(body);
    expect_packet::<NotifyEmit>(&mut reader)?;
    read_notification(&mut reader).map_err(|kind| DecodeError::in_packet(NotifyEmit::NAME, kind))
}

/// Decodes a UNotify frame body (starting with packet id 32) without copying
/// its attributes.
pub fn decode_unotify(body: &[u8]) -> Result<UNotifyRef<'_>, DecodeError> {
    let mut reader = Reader::new(body);
    expect_packet::<UNotify>(&mut reader)?;
    let fields = |reader: &mut Reader<'_>| -> XdrResult<(i32, i32)> {
        Ok((reader.read_i32()?, reader.read_i32()?))
    };
    let wrap = |kind| DecodeError::in_packet(UNotify::NAME, kind);
    let (client_major, client_minor) = fields(&mut reader).map_err(wrap)?;
    let notify = read_notification(&mut reader).map_err(wrap)?;
    Ok(UNotifyRef {
        client_major,
        client_minor,
        notify,
    })
}

/// Body length of the NotifyDeliver that [`encode_notify_deliver_raw`]
/// writes, to check against the subscriber's `Packet.Max-Length`.
pub fn notify_deliver_raw_len(raw_attributes: &[u8], secure: &[i64], insecure: &[i64]) -> usize {
    4 + raw_attributes.len() + xdr::i64_array_len(secure) + xdr::i64_array_len(insecure)
}

/// Appends a complete NotifyDeliver frame whose attribute list is
/// `raw_attributes` copied verbatim (it must be a [`NotifyRef::raw_attributes`]
/// or otherwise a well-formed encoded attribute list), followed by the
/// secure and insecure subscription id lists.
pub fn encode_notify_deliver_raw(
    out: &mut Vec<u8>,
    raw_attributes: &[u8],
    secure: &[i64],
    insecure: &[i64],
) {
    debug_assert_eq!(
        raw_attributes.len() % 4,
        0,
        "raw attributes must be XDR-aligned"
    );
    let body_len = notify_deliver_raw_len(raw_attributes, secure, insecure);
    out.reserve(4 + body_len);
    xdr::put_u32(out, u32::try_from(body_len).unwrap_or(u32::MAX));
    xdr::put_i32(out, NotifyDeliver::ID);
    out.extend_from_slice(raw_attributes);
    xdr::put_i64_array(out, secure);
    xdr::put_i64_array(out, insecure);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyEntry;
    use crate::packet::Packet;
    use crate::value::{Attributes, Value, ValueRef};

    fn emulab_emit() -> NotifyEmit {
        let mut attributes = Attributes::new();
        attributes.insert("SITE", "emulab.net");
        attributes.insert("EXPT", "testbed/exp1");
        attributes.insert("SCHEDULER", 0);
        attributes.insert("__hmac__", vec![7u8; 20]);
        attributes.insert("time", 1.5);
        attributes.insert("big", 1i64 << 40);
        NotifyEmit {
            attributes,
            deliver_insecure: true,
            keys: Keys::new(),
        }
    }

    fn body_of(packet: impl Into<Packet>) -> Vec<u8> {
        let mut frame = Vec::new();
        packet.into().encode(&mut frame);
        frame.split_off(4)
    }

    #[test]
    fn borrowed_decode_sees_the_same_notification_as_owned_decode() {
        let emit = emulab_emit();
        let body = body_of(emit.clone());
        let notify = decode_notify_emit(&body).unwrap();
        assert_eq!(notify.attributes.to_owned(), emit.attributes);
        assert_eq!(notify.attributes.get("SCHEDULER"), Some(ValueRef::Int32(0)));
        assert_eq!(
            notify.attributes.get("EXPT"),
            Some(ValueRef::String("testbed/exp1"))
        );
        assert!(notify.deliver_insecure);
        assert!(notify.keys.is_empty());
        assert_eq!(
            notify.keys.entries.capacity(),
            0,
            "empty key block must not allocate"
        );
        // Raw attributes are the exact bytes between the packet id and
        // deliver_insecure.
        assert_eq!(notify.raw_attributes, &body[4..body.len() - 8]);
    }

    #[test]
    fn raw_deliver_equals_an_encoded_notify_deliver() {
        let emit = emulab_emit();
        let body = body_of(emit.clone());
        let notify = decode_notify_emit(&body).unwrap();
        let mut raw = Vec::new();
        encode_notify_deliver_raw(&mut raw, notify.raw_attributes, &[3, 9], &[-1]);
        let mut owned = Vec::new();
        Packet::from(NotifyDeliver {
            attributes: emit.attributes,
            secure_matches: vec![3, 9],
            insecure_matches: vec![-1],
        })
        .encode(&mut owned);
        assert_eq!(raw, owned);
        assert_eq!(
            notify_deliver_raw_len(notify.raw_attributes, &[3, 9], &[-1]) + 4,
            raw.len()
        );
    }

    #[test]
    fn duplicate_names_are_forwarded_verbatim_and_last_wins_on_lookup() {
        let mut body = Vec::new();
        xdr::put_i32(&mut body, NotifyEmit::ID);
        xdr::put_count(&mut body, 2);
        xdr::put_str(&mut body, "A");
        xdr::put_value(&mut body, ValueRef::Int32(1));
        xdr::put_str(&mut body, "A");
        xdr::put_value(&mut body, ValueRef::Int32(2));
        xdr::put_bool(&mut body, false);
        xdr::put_count(&mut body, 0);
        let notify = decode_notify_emit(&body).unwrap();
        assert_eq!(notify.attributes.entries.len(), 2);
        assert_eq!(notify.attributes.get("A"), Some(ValueRef::Int32(2)));
        assert_eq!(notify.raw_attributes.len(), 4 + 2 * (8 + 8));
        match Packet::decode(&body).unwrap() {
            Packet::NotifyEmit(emit) => {
                assert_eq!(emit.attributes.get("A"), Some(&Value::Int32(2)))
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn keys_are_decoded_on_the_hot_path() {
        let mut emit = emulab_emit();
        emit.keys = Keys {
            entries: vec![KeyEntry::Producer(vec![b"secret".to_vec()])],
        };
        let body = body_of(emit.clone());
        assert_eq!(decode_notify_emit(&body).unwrap().keys, emit.keys);
    }

    #[test]
    fn unotify_carries_the_client_version() {
        let emit = emulab_emit();
        let body = body_of(UNotify {
            client_major: 4,
            client_minor: 0,
            attributes: emit.attributes.clone(),
            deliver_insecure: false,
            keys: Keys::new(),
        });
        let unotify = decode_unotify(&body).unwrap();
        assert_eq!((unotify.client_major, unotify.client_minor), (4, 0));
        assert_eq!(unotify.notify.attributes.to_owned(), emit.attributes);
        assert!(!unotify.notify.deliver_insecure);
    }

    #[test]
    fn hot_path_rejects_what_the_full_decoder_rejects() {
        let body = body_of(emulab_emit());
        // Wrong packet type.
        let err = decode_notify_emit(&body_of(crate::packet::TestConn)).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::WrongPacketType {
                expected: "NotifyEmit",
                found: 63
            }
        );
        // Leftover bytes.
        let mut long = body.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        let err = decode_notify_emit(&long).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::LeftoverBytes(4));
        assert_eq!(
            err.to_string(),
            "Error decoding NotifyEmit: 4 bytes left over after the last field"
        );
        // Bad deliver_insecure.
        let mut bad = body.clone();
        let at = bad.len() - 5;
        bad[at] = 2;
        assert_eq!(
            decode_notify_emit(&bad).unwrap_err().kind,
            DecodeErrorKind::BadBool(2)
        );
        // Truncation anywhere is an error, never a panic.
        for cut in 0..body.len() {
            assert!(
                decode_notify_emit(&body[..cut]).is_err(),
                "accepted a body cut at {cut}"
            );
        }
    }
}
