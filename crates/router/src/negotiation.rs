//! Connection option negotiation (ConnRqst → ConnRply, docs/protocol.md §6).
//!
//! `elvin-proto`'s option table knows every option's names, type and the
//! protocol's lower bounds; this module applies the router's own limits on
//! top of it. For the options that protect the router (packet size,
//! subscription count and length, keys, queue sizes) the configured value
//! is both the default and the ceiling: a client may ask for less, never
//! for more, so the operator's configuration is the authority (Avis lets a
//! client raise Packet.Max-Length to 10 MiB on its own; we make that the
//! operator's decision).
//!
//! The reply follows §6.1 exactly: an accepted option is echoed with the
//! requested value; a rejected one (out of range, wrong value type, not an
//! allowed name) is answered with the value in effect; an unknown name is
//! left out; a legacy name is answered under the spelling the client used,
//! with `router.coalesce-delay` converted to and from its inverted meaning.
//! `Vendor-Identification` is always added under both of its names and
//! `Supported-Key-Schemes` is always added, which is all the router adds.

use elvin_proto::options::{DropPolicy, OptionKind, VENDOR_IDENTIFICATION, names};
use elvin_proto::{Options, Value, lookup_option};

use crate::config::ConnectionLimits;

/// The option values in force on one connection after negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Largest packet accepted from and sent to the client, bytes.
    pub packet_max_length: usize,
    /// Most subscriptions.
    pub subscription_max_count: usize,
    /// Longest expression, bytes.
    pub subscription_max_length: usize,
    /// Most keys on one subscription.
    pub subscription_max_keys: usize,
    /// Most keys in each connection key set.
    pub connection_max_keys: usize,
    /// Send queue bound, bytes.
    pub send_queue_max_length: usize,
    /// What to drop when the send queue is full.
    pub send_queue_drop_policy: DropPolicy,
    /// Receive queue size reported to the client, bytes.
    pub receive_queue_max_length: usize,
    /// Receive drop policy the client asked for (recorded; input is never
    /// dropped).
    pub receive_queue_drop_policy: DropPolicy,
    /// TCP_NODELAY wanted on this connection.
    pub send_immediately: bool,
}

impl SessionOptions {
    /// The values a client gets without asking for anything.
    pub fn defaults(limits: &ConnectionLimits) -> Self {
        SessionOptions {
            packet_max_length: limits.packet_max_length,
            subscription_max_count: limits.subscription_max_count,
            subscription_max_length: limits.subscription_max_length,
            subscription_max_keys: limits.subscription_max_keys,
            connection_max_keys: limits.connection_max_keys,
            send_queue_max_length: limits.send_queue_max_length,
            send_queue_drop_policy: limits.send_queue_drop_policy,
            receive_queue_max_length: limits.receive_queue_max_length,
            receive_queue_drop_policy: DropPolicy::Oldest,
            send_immediately: limits.tcp_nodelay,
        }
    }
}

/// The answer to one requested option.
struct Answer {
    /// Value to put in the reply under the requested name.
    reply: Value,
    /// The value in effect in standard terms, when the request was accepted.
    accepted: Option<Value>,
}

fn clamp_to_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// An int32 option accepted within `[min, max]`, otherwise answered with
/// `current`.
fn int_answer(requested: &Value, min: i32, max: i32, current: i32) -> Answer {
    match requested {
        Value::Int32(v) if (min..=max).contains(v) => Answer {
            reply: requested.clone(),
            accepted: Some(requested.clone()),
        },
        _ => Answer {
            reply: Value::Int32(current),
            accepted: None,
        },
    }
}

/// A drop-policy option: any of the five names, case-insensitively.
fn policy_answer(requested: &Value, current: DropPolicy) -> (Answer, Option<DropPolicy>) {
    match requested.as_str().and_then(DropPolicy::from_name) {
        Some(policy) => (
            Answer {
                reply: requested.clone(),
                accepted: Some(requested.clone()),
            },
            Some(policy),
        ),
        None => (
            Answer {
                reply: Value::String(current.name().to_owned()),
                accepted: None,
            },
            None,
        ),
    }
}

/// Negotiates a ConnRqst's options against the router's limits.
///
/// Returns the options in force and the ConnRply option list. Requests are
/// handled in order, so when one option is asked for twice (say under its
/// standard and its legacy name) the last accepted value wins, and each
/// request is answered.
pub fn negotiate(requested: &Options, limits: &ConnectionLimits) -> (SessionOptions, Options) {
    let mut effective = SessionOptions::defaults(limits);
    let mut reply: Options = Vec::with_capacity(requested.len() + 3);
    for (name, value) in requested {
        let Some(option) = lookup_option(name) else {
            continue;
        };
        let spec = option.spec;
        let protocol_min = match spec.kind {
            OptionKind::Int32 { min, .. } => min,
            OptionKind::String { .. } => 0,
        };
        // Options limited by the router: [protocol minimum, configured value].
        let bounded = |current: &mut usize, ceiling: usize| {
            let answer = int_answer(
                value,
                protocol_min,
                clamp_to_i32(ceiling),
                clamp_to_i32(*current),
            );
            if let Some(Value::Int32(v)) = &answer.accepted {
                *current = usize::try_from(*v).unwrap_or(*current);
            }
            answer
        };
        let answer = match spec.name {
            names::PACKET_MAX_LENGTH => {
                bounded(&mut effective.packet_max_length, limits.packet_max_length)
            }
            names::SUBSCRIPTION_MAX_COUNT => bounded(
                &mut effective.subscription_max_count,
                limits.subscription_max_count,
            ),
            names::SUBSCRIPTION_MAX_LENGTH => bounded(
                &mut effective.subscription_max_length,
                limits.subscription_max_length,
            ),
            names::SUBSCRIPTION_MAX_KEYS => bounded(
                &mut effective.subscription_max_keys,
                limits.subscription_max_keys,
            ),
            names::CONNECTION_MAX_KEYS => bounded(
                &mut effective.connection_max_keys,
                limits.connection_max_keys,
            ),
            names::SEND_QUEUE_MAX_LENGTH => bounded(
                &mut effective.send_queue_max_length,
                limits.send_queue_max_length,
            ),
            names::RECEIVE_QUEUE_MAX_LENGTH => bounded(
                &mut effective.receive_queue_max_length,
                limits.receive_queue_max_length,
            ),
            names::SEND_QUEUE_DROP_POLICY => {
                let (answer, policy) = policy_answer(value, effective.send_queue_drop_policy);
                if let Some(policy) = policy {
                    effective.send_queue_drop_policy = policy;
                }
                answer
            }
            names::RECEIVE_QUEUE_DROP_POLICY => {
                let (answer, policy) = policy_answer(value, effective.receive_queue_drop_policy);
                if let Some(policy) = policy {
                    effective.receive_queue_drop_policy = policy;
                }
                answer
            }
            names::TCP_SEND_IMMEDIATELY => {
                let current = i32::from(effective.send_immediately);
                if option.legacy && spec.legacy_inverted {
                    // router.coalesce-delay: 0 means send immediately, any
                    // positive delay means coalescing is allowed.
                    match value {
                        Value::Int32(delay) if *delay >= 0 => {
                            effective.send_immediately = *delay == 0;
                            Answer {
                                reply: value.clone(),
                                accepted: Some(value.clone()),
                            }
                        }
                        _ => Answer {
                            reply: Value::Int32(1 - current),
                            accepted: None,
                        },
                    }
                } else {
                    let answer = int_answer(value, 0, 1, current);
                    if let Some(Value::Int32(v)) = &answer.accepted {
                        effective.send_immediately = *v != 0;
                    }
                    answer
                }
            }
            // The attribute limits, the key schemes and the vendor: the
            // protocol table's fixed values.
            _ => {
                let negotiated = spec.negotiate(value, option.legacy);
                Answer {
                    reply: negotiated.reply_value,
                    accepted: negotiated.accepted.then_some(negotiated.value),
                }
            }
        };
        reply.push((name.clone(), answer.reply));
    }

    let has = |reply: &Options, wanted: &str| {
        reply
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
    };
    for vendor_name in [names::VENDOR_IDENTIFICATION, "router.vendor-identification"] {
        if !has(&reply, vendor_name) {
            reply.push((
                vendor_name.to_owned(),
                Value::String(VENDOR_IDENTIFICATION.to_owned()),
            ));
        }
    }
    if !has(&reply, names::SUPPORTED_KEY_SCHEMES) {
        reply.push((
            names::SUPPORTED_KEY_SCHEMES.to_owned(),
            Value::String(elvin_proto::keys::SUPPORTED_KEY_SCHEMES.to_owned()),
        ));
    }
    (effective, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(options: &[(&str, Value)]) -> (SessionOptions, Options) {
        let requested: Options = options
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        negotiate(&requested, &ConnectionLimits::default())
    }

    fn get<'a>(reply: &'a Options, name: &str) -> Option<&'a Value> {
        reply.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn empty_request_gets_vendor_under_both_names_and_key_schemes() {
        let (effective, reply) = ask(&[]);
        assert_eq!(
            effective,
            SessionOptions::defaults(&ConnectionLimits::default())
        );
        let names: Vec<&str> = reply.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Vendor-Identification",
                "router.vendor-identification",
                "Supported-Key-Schemes"
            ]
        );
        assert_eq!(
            get(&reply, "Vendor-Identification"),
            Some(&Value::String(VENDOR_IDENTIFICATION.into()))
        );
        assert_eq!(
            get(&reply, "Supported-Key-Schemes"),
            Some(&Value::String("SHA-1".into()))
        );
    }

    #[test]
    fn accepted_values_are_echoed_and_take_effect() {
        let (effective, reply) = ask(&[
            ("Packet.Max-Length", Value::Int32(4096)),
            ("Subscription.Max-Count", Value::Int32(16)),
            ("Send-Queue.Drop-Policy", Value::String("Newest".into())),
            ("Send-Queue.Max-Length", Value::Int32(10_000)),
        ]);
        assert_eq!(effective.packet_max_length, 4096);
        assert_eq!(effective.subscription_max_count, 16);
        assert_eq!(effective.send_queue_drop_policy, DropPolicy::Newest);
        assert_eq!(effective.send_queue_max_length, 10_000);
        assert_eq!(get(&reply, "Packet.Max-Length"), Some(&Value::Int32(4096)));
        assert_eq!(
            get(&reply, "Send-Queue.Drop-Policy"),
            Some(&Value::String("Newest".into()))
        );
    }

    #[test]
    fn rejected_values_are_answered_with_the_value_in_effect() {
        let (effective, reply) = ask(&[
            // Above the configured ceiling: only the operator may raise it.
            ("Packet.Max-Length", Value::Int32(4 * 1024 * 1024)),
            // Below the protocol minimum.
            ("Subscription.Max-Count", Value::Int32(2)),
            // Wrong type: no conversion.
            ("Subscription.Max-Length", Value::String("1024".into())),
            ("Send-Queue.Drop-Policy", Value::String("random".into())),
        ]);
        assert_eq!(
            effective,
            SessionOptions::defaults(&ConnectionLimits::default())
        );
        assert_eq!(
            get(&reply, "Packet.Max-Length"),
            Some(&Value::Int32(2 * 1024 * 1024))
        );
        assert_eq!(
            get(&reply, "Subscription.Max-Count"),
            Some(&Value::Int32(2048))
        );
        assert_eq!(
            get(&reply, "Subscription.Max-Length"),
            Some(&Value::Int32(2048))
        );
        assert_eq!(
            get(&reply, "Send-Queue.Drop-Policy"),
            Some(&Value::String("oldest".into()))
        );
    }

    #[test]
    fn unknown_names_are_left_out() {
        let (_, reply) = ask(&[("No.Such-Option", Value::Int32(1))]);
        assert!(get(&reply, "No.Such-Option").is_none());
        assert_eq!(reply.len(), 3);
    }

    #[test]
    fn legacy_names_are_answered_under_their_own_spelling() {
        let (effective, reply) = ask(&[
            ("router.packet.max-length", Value::Int32(8192)),
            ("Packet.Max-Length", Value::Int32(4096)),
            ("router.supported-keyschemes", Value::String("SHA-1".into())),
            ("router.vendor-identification", Value::String("x".into())),
        ]);
        assert_eq!(
            get(&reply, "router.packet.max-length"),
            Some(&Value::Int32(8192))
        );
        assert_eq!(get(&reply, "Packet.Max-Length"), Some(&Value::Int32(4096)));
        // Last request wins.
        assert_eq!(effective.packet_max_length, 4096);
        // The vendor is answered with ours, once per name.
        assert_eq!(
            reply
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("router.vendor-identification"))
                .count(),
            1
        );
        assert_eq!(
            get(&reply, "router.vendor-identification"),
            Some(&Value::String(VENDOR_IDENTIFICATION.into()))
        );
        // Supported-Key-Schemes is still added under its standard name.
        assert!(get(&reply, "Supported-Key-Schemes").is_some());
        assert!(get(&reply, "router.supported-keyschemes").is_some());
    }

    #[test]
    fn coalesce_delay_is_inverted_both_ways() {
        let limits = ConnectionLimits {
            tcp_nodelay: false,
            ..ConnectionLimits::default()
        };
        let requested = vec![("router.coalesce-delay".to_owned(), Value::Int32(0))];
        let (effective, reply) = negotiate(&requested, &limits);
        assert!(effective.send_immediately);
        assert_eq!(get(&reply, "router.coalesce-delay"), Some(&Value::Int32(0)));

        let requested = vec![("router.coalesce-delay".to_owned(), Value::Int32(25))];
        let (effective, reply) = negotiate(&requested, &ConnectionLimits::default());
        assert!(!effective.send_immediately);
        assert_eq!(
            get(&reply, "router.coalesce-delay"),
            Some(&Value::Int32(25))
        );

        // Invalid: answered with the value in effect, in legacy terms. With
        // TCP_NODELAY on by default the value in effect is send-immediately
        // 1, which is coalesce-delay 0.
        let requested = vec![("router.coalesce-delay".to_owned(), Value::Int32(-1))];
        let (effective, reply) = negotiate(&requested, &ConnectionLimits::default());
        assert!(effective.send_immediately);
        assert_eq!(get(&reply, "router.coalesce-delay"), Some(&Value::Int32(0)));
        let (_, reply) = negotiate(&requested, &limits);
        assert_eq!(get(&reply, "router.coalesce-delay"), Some(&Value::Int32(1)));

        let (effective, reply) = ask(&[("TCP.Send-Immediately", Value::Int32(2))]);
        assert!(effective.send_immediately);
        assert_eq!(get(&reply, "TCP.Send-Immediately"), Some(&Value::Int32(1)));
    }

    #[test]
    fn attribute_limits_are_pinned_at_max() {
        let (_, reply) = ask(&[("Attribute.Max-Count", Value::Int32(64))]);
        assert_eq!(
            get(&reply, "Attribute.Max-Count"),
            Some(&Value::Int32(i32::MAX))
        );
        let (_, reply) = ask(&[("attribute.max-count", Value::Int32(i32::MAX))]);
        assert_eq!(
            get(&reply, "attribute.max-count"),
            Some(&Value::Int32(i32::MAX))
        );
    }
}
