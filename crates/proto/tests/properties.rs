//! Property tests: every packet and value type round-trips exactly (reals
//! compared bit for bit), and no input, however hostile, makes the decoders
//! or the framer panic or return an out-of-bounds length.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::num::NonZeroI32;

use elvin_proto::frame::{frame_len, split_frame};
use elvin_proto::keys::{KeyEntry, Keys};
use elvin_proto::packet::*;
use elvin_proto::sub_ast::SubAst;
use elvin_proto::{
    Attributes, Value, decode_notify_emit, decode_unotify, encode_notify_deliver_raw,
};
use proptest::prelude::*;
use proptest::strategy::Union;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        // Any bit pattern: NaNs with payloads, -0.0, infinities, subnormals.
        any::<u64>().prop_map(|bits| Value::Real64(f64::from_bits(bits))),
        prop_oneof![Just(f64::NAN), Just(-0.0), Just(f64::INFINITY)].prop_map(Value::Real64),
        ".{0,12}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Opaque),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z_]{0,10}", ".{0,6}"]
}

fn attributes() -> impl Strategy<Value = Attributes> {
    prop::collection::vec((name(), value()), 0..6).prop_map(|pairs| pairs.into_iter().collect())
}

fn options() -> impl Strategy<Value = Options> {
    prop::collection::vec((name(), value()), 0..5)
}

fn key_set() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..24), 0..3)
}

fn keys() -> impl Strategy<Value = Keys> {
    let entry = prop_oneof![
        (key_set(), key_set())
            .prop_map(|(producer, consumer)| KeyEntry::Dual { producer, consumer }),
        key_set().prop_map(KeyEntry::Producer),
        key_set().prop_map(KeyEntry::Consumer),
    ];
    prop::collection::vec(entry, 0..4).prop_map(|entries| Keys { entries })
}

fn nonzero_i32() -> impl Strategy<Value = i32> {
    any::<i32>().prop_filter("xid 0 is reserved", |x| *x != 0)
}

fn nonzero_i64() -> impl Strategy<Value = i64> {
    any::<i64>().prop_filter("id 0 is never issued", |x| *x != 0)
}

fn code() -> impl Strategy<Value = NonZeroI32> {
    any::<i32>().prop_filter_map("code 0 is the empty tree", NonZeroI32::new)
}

fn sub_ast() -> impl Strategy<Value = SubAst> {
    let leaf = prop_oneof![
        Just(SubAst::Empty),
        (code(), value()).prop_map(|(code, value)| SubAst::Leaf { code, value }),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        (code(), prop::collection::vec(inner, 0..4))
            .prop_map(|(code, children)| SubAst::Node { code, children })
    })
}

fn ids() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(any::<i64>(), 0..5)
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 0..4)
}

fn packet() -> impl Strategy<Value = Packet> {
    let arms: Vec<BoxedStrategy<Packet>> = vec![
        (
            any::<i32>(),
            any::<i32>(),
            attributes(),
            any::<bool>(),
            keys(),
        )
            .prop_map(
                |(client_major, client_minor, attributes, deliver_insecure, keys)| {
                    UNotify {
                        client_major,
                        client_minor,
                        attributes,
                        deliver_insecure,
                        keys,
                    }
                    .into()
                },
            )
            .boxed(),
        (
            any::<i32>(),
            any::<i32>(),
            ".{0,20}",
            prop::collection::vec(value(), 0..4),
        )
            .prop_map(|(xid, error, message, args)| {
                Nack {
                    xid,
                    error,
                    message,
                    args,
                }
                .into()
            })
            .boxed(),
        (
            nonzero_i32(),
            any::<i32>(),
            any::<i32>(),
            options(),
            keys(),
            keys(),
        )
            .prop_map(
                |(
                    xid,
                    client_major,
                    client_minor,
                    options,
                    notification_keys,
                    subscription_keys,
                )| {
                    ConnRqst {
                        xid,
                        client_major,
                        client_minor,
                        options,
                        notification_keys,
                        subscription_keys,
                    }
                    .into()
                },
            )
            .boxed(),
        (any::<i32>(), options())
            .prop_map(|(xid, options)| ConnRply { xid, options }.into())
            .boxed(),
        nonzero_i32()
            .prop_map(|xid| DisconnRqst { xid }.into())
            .boxed(),
        any::<i32>()
            .prop_map(|xid| DisconnRply { xid }.into())
            .boxed(),
        (any::<i32>(), ".{0,30}")
            .prop_map(|(reason, args)| Disconn { reason, args }.into())
            .boxed(),
        (nonzero_i32(), keys(), keys(), keys(), keys())
            .prop_map(|(xid, a, b, c, d)| {
                SecRqst {
                    xid,
                    add_notification_keys: a,
                    del_notification_keys: b,
                    add_subscription_keys: c,
                    del_subscription_keys: d,
                }
                .into()
            })
            .boxed(),
        any::<i32>().prop_map(|xid| SecRply { xid }.into()).boxed(),
        (attributes(), any::<bool>(), keys())
            .prop_map(|(attributes, deliver_insecure, keys)| {
                NotifyEmit {
                    attributes,
                    deliver_insecure,
                    keys,
                }
                .into()
            })
            .boxed(),
        (attributes(), ids(), ids())
            .prop_map(|(attributes, secure_matches, insecure_matches)| {
                NotifyDeliver {
                    attributes,
                    secure_matches,
                    insecure_matches,
                }
                .into()
            })
            .boxed(),
        (nonzero_i32(), ".{0,40}", any::<bool>(), keys())
            .prop_map(|(xid, expression, accept_insecure, keys)| {
                SubAddRqst {
                    xid,
                    expression,
                    accept_insecure,
                    keys,
                }
                .into()
            })
            .boxed(),
        (
            nonzero_i32(),
            nonzero_i64(),
            ".{0,40}",
            any::<bool>(),
            keys(),
            keys(),
        )
            .prop_map(
                |(xid, subscription_id, expression, accept_insecure, add_keys, del_keys)| {
                    SubModRqst {
                        xid,
                        subscription_id,
                        expression,
                        accept_insecure,
                        add_keys,
                        del_keys,
                    }
                    .into()
                },
            )
            .boxed(),
        (nonzero_i32(), nonzero_i64())
            .prop_map(|(xid, subscription_id)| {
                SubDelRqst {
                    xid,
                    subscription_id,
                }
                .into()
            })
            .boxed(),
        (any::<i32>(), any::<i64>())
            .prop_map(|(xid, subscription_id)| {
                SubRply {
                    xid,
                    subscription_id,
                }
                .into()
            })
            .boxed(),
        Just(DropWarn.into()).boxed(),
        Just(TestConn.into()).boxed(),
        Just(ConfConn.into()).boxed(),
        (nonzero_i32(), options())
            .prop_map(|(xid, options)| QosRqst { xid, options }.into())
            .boxed(),
        (any::<i32>(), options())
            .prop_map(|(xid, options)| QosRply { xid, options }.into())
            .boxed(),
        (nonzero_i32(), strings(), any::<bool>(), keys())
            .prop_map(|(xid, names, deliver_insecure, keys)| {
                QnchAddRqst {
                    xid,
                    names,
                    deliver_insecure,
                    keys,
                }
                .into()
            })
            .boxed(),
        (
            nonzero_i32(),
            nonzero_i64(),
            strings(),
            strings(),
            any::<bool>(),
            keys(),
            keys(),
        )
            .prop_map(
                |(xid, quench_id, names_add, names_del, deliver_insecure, add_keys, del_keys)| {
                    QnchModRqst {
                        xid,
                        quench_id,
                        names_add,
                        names_del,
                        deliver_insecure,
                        add_keys,
                        del_keys,
                    }
                    .into()
                },
            )
            .boxed(),
        (nonzero_i32(), nonzero_i64())
            .prop_map(|(xid, quench_id)| QnchDelRqst { xid, quench_id }.into())
            .boxed(),
        (any::<i32>(), any::<i64>())
            .prop_map(|(xid, quench_id)| QnchRply { xid, quench_id }.into())
            .boxed(),
        (ids(), ids(), any::<i64>(), sub_ast())
            .prop_map(
                |(secure_quench_ids, insecure_quench_ids, term_id, sub_expr)| {
                    SubAddNotify {
                        secure_quench_ids,
                        insecure_quench_ids,
                        term_id,
                        sub_expr,
                    }
                    .into()
                },
            )
            .boxed(),
        (ids(), ids(), any::<i64>(), sub_ast())
            .prop_map(
                |(secure_quench_ids, insecure_quench_ids, term_id, sub_expr)| {
                    SubModNotify {
                        secure_quench_ids,
                        insecure_quench_ids,
                        term_id,
                        sub_expr,
                    }
                    .into()
                },
            )
            .boxed(),
        (ids(), any::<i64>())
            .prop_map(|(quench_ids, term_id)| {
                SubDelNotify {
                    quench_ids,
                    term_id,
                }
                .into()
            })
            .boxed(),
    ];
    assert_eq!(arms.len(), 27, "one strategy per packet type");
    Union::new(arms)
}

fn encode(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// encode → frame → decode gives the same packet: the same bytes again
    /// (so reals survive bit for bit) and the same structure (Debug shows
    /// -0.0 and NaN distinctly, where `==` would not).
    #[test]
    fn every_packet_round_trips(packet in packet()) {
        let frame = encode(&packet);
        prop_assert_eq!(frame.len(), packet.encoded_len() + 4);
        prop_assert_eq!(frame.len() % 4, 0);
        let (body, used) = split_frame(&frame, usize::MAX).unwrap().unwrap();
        prop_assert_eq!(used, frame.len());
        let decoded = Packet::decode(body).unwrap();
        prop_assert_eq!(decoded.id(), packet.id());
        prop_assert_eq!(encode(&decoded), frame);
        prop_assert_eq!(format!("{decoded:?}"), format!("{packet:?}"));
    }

    /// The borrowed hot path agrees with the owned decoder, and the raw
    /// NotifyDeliver equals an encoded one.
    #[test]
    fn hot_path_agrees_with_owned_decoding(
        attributes in attributes(), deliver_insecure in any::<bool>(), keys in keys(),
        secure in ids(), insecure in ids(),
    ) {
        let emit = NotifyEmit { attributes: attributes.clone(), deliver_insecure, keys: keys.clone() };
        let frame = encode(&emit.clone().into());
        let notify = decode_notify_emit(&frame[4..]).unwrap();
        prop_assert_eq!(format!("{:?}", notify.attributes.to_owned()), format!("{:?}", attributes));
        prop_assert_eq!(notify.deliver_insecure, deliver_insecure);
        prop_assert_eq!(&notify.keys, &keys);

        let mut raw = Vec::new();
        encode_notify_deliver_raw(&mut raw, notify.raw_attributes, &secure, &insecure);
        let owned = encode(&NotifyDeliver { attributes, secure_matches: secure, insecure_matches: insecure }.into());
        prop_assert_eq!(raw, owned);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Packet::decode(&body);
        let _ = decode_notify_emit(&body);
        let _ = decode_unotify(&body);
    }

    /// Arbitrary words behind every real packet id reach deep into each
    /// decoder, which random bytes rarely do.
    #[test]
    fn decoding_arbitrary_fields_never_panics(
        id in prop::sample::select(vec![32i32, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
                                         70, 71, 80, 81, 82, 83, 84, 85, 86]),
        words in prop::collection::vec(prop_oneof![0..8i32, -2..2i32, any::<i32>()], 0..48),
    ) {
        let mut body = id.to_be_bytes().to_vec();
        body.extend(words.iter().flat_map(|w| w.to_be_bytes()));
        let _ = Packet::decode(&body);
        let _ = decode_notify_emit(&body);
        let _ = decode_unotify(&body);
    }

    /// Corrupting or truncating a valid packet gives an error or another
    /// valid packet, never a panic; anything accepted re-encodes exactly.
    #[test]
    fn corrupted_packets_never_panic(packet in packet(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let frame = encode(&packet);
        let mut body = frame[4..].to_vec();
        for (index, byte) in flips {
            let i = index.index(body.len());
            body[i] = byte;
        }
        if let Ok(decoded) = Packet::decode(&body) {
            // Whatever was accepted is a packet like any other: its encoding
            // decodes and re-encodes to itself.
            let once = encoded_body(&decoded);
            let again = Packet::decode(&once).unwrap();
            prop_assert_eq!(encoded_body(&again), once);
        }
        // Decoding is prefix-deterministic, so no strict prefix of a valid
        // body is valid.
        let truncated = &frame[4..4 + cut.index(frame.len() - 4)];
        prop_assert!(Packet::decode(truncated).is_err());
    }

    #[test]
    fn frame_len_never_panics_or_overreaches(buf in prop::collection::vec(any::<u8>(), 0..64), max in 0usize..64) {
        if let Ok(Some(total)) = frame_len(&buf, max) {
            prop_assert!(total >= 8);
            prop_assert!(total - 4 <= max);
            prop_assert!(total <= buf.len());
            prop_assert_eq!(total % 4, 0);
        }
    }

    #[test]
    fn frame_len_reads_any_header(header in any::<u32>(), max in any::<usize>()) {
        let buf = header.to_be_bytes();
        match frame_len(&buf, max) {
            Ok(Some(total)) => prop_assert!(total == 4 + header as usize && header as usize <= max),
            Ok(None) => prop_assert!(header % 4 == 0 && header >= 4 && header as usize <= max),
            Err(_) => prop_assert!(header % 4 != 0 || header < 4 || header as usize > max),
        }
    }
}

fn encoded_body(packet: &Packet) -> Vec<u8> {
    encode(packet).split_off(4)
}
