//! Byte-exact examples from the protocol notes (§1, §2, §3.2, §4.2), both
//! ways, and rejection of every malformed case the notes list (§2, §3, §5.4).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use elvin_proto::codes::{disconn, nack};
use elvin_proto::frame::{DEFAULT_MAX_PACKET_LENGTH, FrameError, frame_len, split_frame};
use elvin_proto::keys::{KeyEntry, Keys};
use elvin_proto::{
    Attributes, ConnRqst, DecodeError, DecodeErrorKind, Disconn, Message, Nack, NotifyEmit, Packet,
    SubAddRqst, SubDelRqst, TestConn, Value, decode_notify_emit,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn words(w: &[i32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn frame_of(packet: impl Into<Packet>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.into().encode(&mut out);
    out
}

/// Decodes a whole frame, checking the framing first.
fn decode_frame(frame: &[u8]) -> Result<Packet, DecodeError> {
    let (body, used) = split_frame(frame, DEFAULT_MAX_PACKET_LENGTH)
        .unwrap()
        .unwrap();
    assert_eq!(used, frame.len());
    Packet::decode(body)
}

fn decode_err(body: &[u8]) -> DecodeError {
    Packet::decode(body).expect_err("malformed body was accepted")
}

#[test]
fn test_conn_frame() {
    let wire = hex("00000004 0000003F");
    assert_eq!(frame_of(TestConn), wire);
    assert_eq!(decode_frame(&wire).unwrap(), Packet::TestConn(TestConn));
    assert_eq!(Packet::TestConn(TestConn).encoded_len(), 4);
}

#[test]
fn conn_rqst_example() {
    let wire = hex("0000001C 00000031 00000001 00000004 00000000 00000000 00000000 00000000");
    let packet = ConnRqst {
        xid: 1,
        client_major: 4,
        client_minor: 0,
        options: vec![],
        notification_keys: Keys::new(),
        subscription_keys: Keys::new(),
    };
    assert_eq!(frame_of(packet.clone()), wire);
    assert_eq!(
        decode_frame(&wire).unwrap(),
        Packet::ConnRqst(packet.clone())
    );
    assert_eq!(packet.encoded_len(), 28);
}

#[test]
fn attribute_example_inside_a_notify_emit() {
    // NotifyEmit { Number: int32 42 }, insecure, no keys.
    let body =
        hex("00000038 00000001 00000006 4E756D62 65720000 00000001 0000002A 00000001 00000000");
    let mut attributes = Attributes::new();
    attributes.insert("Number", 42);
    let emit = NotifyEmit {
        attributes,
        deliver_insecure: true,
        keys: Keys::new(),
    };
    assert_eq!(&frame_of(emit.clone())[4..], &body[..]);
    assert_eq!(Packet::decode(&body).unwrap(), Packet::NotifyEmit(emit));
    let borrowed = decode_notify_emit(&body).unwrap();
    assert_eq!(
        borrowed.raw_attributes,
        &hex("00000001 00000006 4E756D62 65720000 00000001 0000002A")[..]
    );
}

#[test]
fn xdr_examples_in_packets() {
    // string "abc" and string[] ["a", "bc"] as they appear in packets.
    let sub = SubAddRqst {
        xid: 7,
        expression: "abc".into(),
        accept_insecure: true,
        keys: Keys::new(),
    };
    assert_eq!(
        frame_of(sub)[4..],
        hex("0000003A 00000007 00000003 61626300 00000001 00000000")[..]
    );
    let qnch = elvin_proto::QnchAddRqst {
        xid: 1,
        names: vec!["a".into(), "bc".into()],
        deliver_insecure: false,
        keys: Keys::new(),
    };
    assert_eq!(
        frame_of(qnch)[4..],
        hex("00000050 00000001 00000002 00000001 61000000 00000002 62630000 00000000 00000000")[..]
    );
    // opaque of 5 bytes inside a Nack argument.
    let nack = Nack {
        xid: 2,
        error: nack::NO_SUCH_SUB,
        message: String::new(),
        args: vec![Value::Opaque(vec![1, 2, 3, 4, 5])],
    };
    assert_eq!(
        frame_of(nack)[4..],
        hex("00000030 00000002 000003EA 00000000 00000001 00000005 00000005 01020304 05000000")[..]
    );
    // int64 array [7] inside a NotifyDeliver.
    let deliver = elvin_proto::NotifyDeliver {
        attributes: Attributes::new(),
        secure_matches: vec![7],
        insecure_matches: vec![],
    };
    assert_eq!(
        frame_of(deliver)[4..],
        hex("00000039 00000000 00000001 00000000 00000007 00000000")[..]
    );
}

#[test]
fn disconn_reason_codes() {
    let wire = frame_of(Disconn {
        reason: disconn::PROTOCOL_VIOLATION,
        args: "bye".into(),
    });
    assert_eq!(wire, hex("00000010 00000035 00000004 00000003 62796500"));
    assert_eq!((disconn::SHUTDOWN, disconn::REDIRECT), (1, 2));
    assert_eq!(
        (
            nack::PROT_INCOMPAT,
            nack::IMPL_LIMIT,
            nack::NOT_IMPL,
            nack::PARSE_ERROR
        ),
        (1, 2006, 2007, 2101)
    );
}

#[test]
fn framing_rejections() {
    assert_eq!(
        frame_len(&hex("00000006 00000000"), 1024),
        Err(FrameError::Unaligned { length: 6 })
    );
    assert_eq!(
        frame_len(&hex("00000000"), 1024),
        Err(FrameError::TooShort { length: 0 })
    );
    assert_eq!(
        frame_len(&hex("00200004"), DEFAULT_MAX_PACKET_LENGTH),
        Err(FrameError::TooLarge {
            length: 0x0020_0004,
            max: DEFAULT_MAX_PACKET_LENGTH
        })
    );
}

#[test]
fn unknown_and_missing_packet_ids() {
    let err = decode_err(&words(&[7]));
    assert_eq!(err.kind, DecodeErrorKind::UnknownPacketId(7));
    assert_eq!(err.to_string(), "Unknown message type: ID = 7");
    // Federation and discovery ids are not client packets.
    for id in [16, 65, 192, 195] {
        assert_eq!(
            decode_err(&words(&[id])).kind,
            DecodeErrorKind::UnknownPacketId(id)
        );
    }
    assert_eq!(decode_err(&[0, 0]).kind, DecodeErrorKind::MissingPacketId);
    assert_eq!(decode_err(&[]).kind, DecodeErrorKind::MissingPacketId);
}

#[test]
fn bad_bool() {
    // NotifyEmit with no attributes, deliver_insecure = 2.
    let err = decode_err(&words(&[56, 0, 2, 0]));
    assert_eq!(err.kind, DecodeErrorKind::BadBool(2));
    assert_eq!(err.packet, Some("NotifyEmit"));
    assert_eq!(
        err.to_string(),
        "Error decoding NotifyEmit: boolean value 2 is not 0 or 1"
    );
}

#[test]
fn negative_string_length() {
    let err = decode_err(&words(&[58, 1, -1, 1, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::NegativeLength {
            offset: 8,
            length: -1
        }
    );
    assert_eq!(err.packet, Some("SubAddRqst"));
}

#[test]
fn negative_array_count() {
    let err = decode_err(&words(&[57, 0, -2, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::NegativeCount {
            offset: 8,
            count: -2
        }
    );
    let err = decode_err(&words(&[56, -1, 1, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::NegativeCount {
            offset: 4,
            count: -1
        }
    );
}

#[test]
fn string_past_the_end() {
    let mut body = words(&[58, 1, 100]);
    body.extend_from_slice(b"abcd");
    let err = decode_err(&body);
    assert_eq!(
        err.kind,
        DecodeErrorKind::LengthPastEnd {
            offset: 8,
            length: 100,
            available: 4
        }
    );
}

#[test]
fn bad_utf8() {
    let mut body = words(&[58, 1, 2]);
    body.extend_from_slice(&[0xC3, 0x28, 0, 0]);
    body.extend_from_slice(&words(&[1, 0]));
    let err = decode_err(&body);
    assert_eq!(err.kind, DecodeErrorKind::BadUtf8 { offset: 12 });
    assert_eq!(
        err.to_string(),
        "Error decoding SubAddRqst: invalid UTF-8 in string at offset 12"
    );
}

#[test]
fn unknown_value_type_code() {
    // NotifyEmit { "A": type 9 }.
    let mut body = words(&[56, 1, 1]);
    body.extend_from_slice(b"A\0\0\0");
    body.extend_from_slice(&words(&[9, 0, 1, 0]));
    let err = decode_err(&body);
    assert_eq!(err.kind, DecodeErrorKind::UnknownValueType(9));
    assert!(decode_notify_emit(&body).is_err());
    // And in Nack arguments.
    let err = decode_err(&words(&[48, 1, 1001, 0, 1, 6, 0]));
    assert_eq!(err.kind, DecodeErrorKind::UnknownValueType(6));
}

#[test]
fn key_block_errors() {
    // NotifyEmit, no attributes, insecure, keys = [scheme 4].
    let err = decode_err(&words(&[56, 0, 1, 1, 4, 1, 0]));
    assert_eq!(err.kind, DecodeErrorKind::UnknownKeyScheme(4));
    assert_eq!(
        err.to_string(),
        "Error decoding NotifyEmit: unknown key scheme 4"
    );
    // Dual with one set.
    let err = decode_err(&words(&[56, 0, 1, 1, 1, 1, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::BadKeySetCount {
            scheme: 1,
            expected: 2,
            count: 1
        }
    );
    // Producer with two sets.
    let err = decode_err(&words(&[56, 0, 1, 1, 2, 2, 0, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::BadKeySetCount {
            scheme: 2,
            expected: 1,
            count: 2
        }
    );
    // Consumer with an empty key.
    let err = decode_err(&words(&[56, 0, 1, 1, 3, 1, 1, 0]));
    assert_eq!(err.kind, DecodeErrorKind::EmptyKey { scheme: 3 });
    // The same in the second key block of a ConnRqst.
    let err = decode_err(&words(&[49, 1, 4, 0, 0, 0, 1, 9, 1, 0]));
    assert_eq!(err.kind, DecodeErrorKind::UnknownKeyScheme(9));
    assert_eq!(err.packet, Some("ConnRqst"));
}

#[test]
fn zero_xid_and_zero_ids_in_requests() {
    let err = decode_err(&words(&[49, 0, 4, 0, 0, 0, 0]));
    assert_eq!(err.kind, DecodeErrorKind::ZeroXid);
    assert_eq!(
        err.to_string(),
        "Error decoding ConnRqst: transaction id 0 is reserved"
    );
    assert_eq!(decode_err(&words(&[51, 0])).kind, DecodeErrorKind::ZeroXid);
    assert_eq!(
        decode_err(&words(&[60, 0, 0, 1])).kind,
        DecodeErrorKind::ZeroXid
    );
    assert_eq!(
        decode_err(&words(&[60, 3, 0, 0])).kind,
        DecodeErrorKind::ZeroId {
            what: "subscription id"
        }
    );
    assert_eq!(
        decode_err(&words(&[82, 3, 0, 0])).kind,
        DecodeErrorKind::ZeroId { what: "quench id" }
    );
    // Any other xid is accepted, including negative ones, and echoed.
    match Packet::decode(&words(&[60, -5, 0, 9])).unwrap() {
        Packet::SubDelRqst(SubDelRqst {
            xid,
            subscription_id,
        }) => assert_eq!((xid, subscription_id), (-5, 9)),
        other => panic!("decoded as {other:?}"),
    }
    // Replies are read leniently.
    assert!(Packet::decode(&words(&[52, 0])).is_ok());
}

#[test]
fn leftover_bytes() {
    let err = decode_err(&words(&[63, 0]));
    assert_eq!(err.kind, DecodeErrorKind::LeftoverBytes(4));
    assert_eq!(
        err.to_string(),
        "Error decoding TestConn: 4 bytes left over after the last field"
    );
    let err = decode_err(&words(&[61, 1, 0, 5, 0]));
    assert_eq!(err.kind, DecodeErrorKind::LeftoverBytes(4));
}

#[test]
fn truncated_fields() {
    let err = decode_err(&words(&[61, 1, 0]));
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Truncated {
                needed: 8,
                available: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn huge_counts_with_few_bytes() {
    // Attribute count 2^31 - 1 with 8 bytes left.
    let err = decode_err(&words(&[56, i32::MAX, 0, 0]));
    assert_eq!(
        err.kind,
        DecodeErrorKind::CountPastEnd {
            offset: 4,
            count: i32::MAX as usize,
            available: 8
        }
    );
    // Match list count 2^31 - 1.
    let err = decode_err(&words(&[57, 0, i32::MAX, 0, 0]));
    assert!(matches!(err.kind, DecodeErrorKind::CountPastEnd { .. }));
    // Key entry count.
    let err = decode_err(&words(&[56, 0, 1, i32::MAX, 1]));
    assert!(matches!(err.kind, DecodeErrorKind::CountPastEnd { .. }));
    // Nack argument count.
    let err = decode_err(&words(&[48, 1, 1, 0, 0x4000_0000, 1, 2]));
    assert!(matches!(err.kind, DecodeErrorKind::CountPastEnd { .. }));
}

#[test]
fn keys_round_trip_through_packets() {
    let keys = Keys {
        entries: vec![
            KeyEntry::Dual {
                producer: vec![b"p".to_vec()],
                consumer: vec![b"c1".to_vec(), b"c2".to_vec()],
            },
            KeyEntry::Producer(vec![b"abcde".to_vec()]),
        ],
    };
    let emit = NotifyEmit {
        attributes: Attributes::new(),
        deliver_insecure: false,
        keys: keys.clone(),
    };
    assert_eq!(
        decode_frame(&frame_of(emit.clone())).unwrap(),
        Packet::NotifyEmit(emit)
    );
}

#[test]
fn try_encode_refuses_packets_over_the_peer_limit() {
    let mut attributes = Attributes::new();
    attributes.insert("blob", vec![0u8; 2000]);
    let packet = Packet::NotifyEmit(NotifyEmit {
        attributes,
        deliver_insecure: true,
        keys: Keys::new(),
    });
    let mut out = Vec::new();
    let err = packet.try_encode(&mut out, 1024).unwrap_err();
    assert!(out.is_empty());
    assert!(
        err.to_string()
            .contains("NotifyEmit of 2032 bytes is larger than the peer's maximum of 1024"),
        "{err}"
    );
    packet.try_encode(&mut out, 4096).unwrap();
    assert_eq!(out.len(), packet.encoded_len() + 4);
}

#[test]
fn ids_names_and_xids() {
    let all: [(i32, &str); 27] = [
        (32, "UNotify"),
        (48, "Nack"),
        (49, "ConnRqst"),
        (50, "ConnRply"),
        (51, "DisconnRqst"),
        (52, "DisconnRply"),
        (53, "Disconn"),
        (54, "SecRqst"),
        (55, "SecRply"),
        (56, "NotifyEmit"),
        (57, "NotifyDeliver"),
        (58, "SubAddRqst"),
        (59, "SubModRqst"),
        (60, "SubDelRqst"),
        (61, "SubRply"),
        (62, "DropWarn"),
        (63, "TestConn"),
        (64, "ConfConn"),
        (70, "QosRqst"),
        (71, "QosRply"),
        (80, "QnchAddRqst"),
        (81, "QnchModRqst"),
        (82, "QnchDelRqst"),
        (83, "QnchRply"),
        (84, "SubAddNotify"),
        (85, "SubModNotify"),
        (86, "SubDelNotify"),
    ];
    for (id, name) in all {
        assert_eq!(Packet::name_of(id), Some(name));
    }
    assert_eq!(Packet::name_of(33), None);
    let rply = Packet::SubRply(elvin_proto::SubRply {
        xid: 9,
        subscription_id: 1,
    });
    assert_eq!(
        (rply.id(), rply.name(), rply.xid()),
        (61, "SubRply", Some(9))
    );
    assert_eq!(Packet::TestConn(TestConn).xid(), None);
}
