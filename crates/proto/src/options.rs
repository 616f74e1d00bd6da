//! Connection options (docs/protocol.md §6): the table of standard options, their
//! legacy (Mantara elvind 4.0) names, types and the limits this router
//! enforces, plus the per-option validation used in negotiation.
//!
//! Negotiation itself (collecting a ConnRqst's options, building the
//! ConnRply) belongs to the router, but deciding what one requested
//! `(name, value)` is answered with is a pure function of this table, so it
//! lives here where the client library's tests can use it too.
//!
//! The rules, as Elvin routers apply them (docs/protocol.md §6.1):
//! - names match case-insensitively, under the standard or the legacy name;
//! - a value of the wrong type (no conversion is done: "1024" is not an
//!   int32), out of range, or outside the allowed set is rejected and
//!   answered with the value in effect (the default);
//! - an accepted value is answered with the value as requested;
//! - an unknown name is left out of the reply (`negotiate_option` returns
//!   `None`).
//!
//! The legacy `router.coalesce-delay` means the opposite of
//! `TCP.Send-Immediately`: coalesce-delay 0 (no delay) is send-immediately 1.
//! Any non-negative coalesce delay is accepted (a non-zero delay simply means
//! "coalescing allowed", i.e. send-immediately 0) and echoed as requested; a
//! negative one is rejected and answered with the default expressed in
//! legacy terms (1).
//!
//! Limits follow what Avis enforces, with two deliberate differences:
//! `Send-Queue.Max-Length` is enforced (default 2 MiB, from 1 KiB to
//! 1 GiB) because an unbounded send queue lets one slow consumer exhaust the
//! router's memory; and the drop policies accept both the spec's `none`
//! and Avis's `fail`.

use crate::value::Value;

/// The router identity returned in `Vendor-Identification`.
pub const VENDOR_IDENTIFICATION: &str = concat!("tbevents ", env!("CARGO_PKG_VERSION"));

const K: i32 = 1024;
const M: i32 = 1024 * 1024;
const MAX: i32 = i32::MAX;

/// Standard option names.
pub mod names {
    /// Maximum attributes per notification.
    pub const ATTRIBUTE_MAX_COUNT: &str = "Attribute.Max-Count";
    /// Maximum bytes in an attribute name.
    pub const ATTRIBUTE_NAME_MAX_LENGTH: &str = "Attribute.Name.Max-Length";
    /// Maximum bytes in an opaque value.
    pub const ATTRIBUTE_OPAQUE_MAX_LENGTH: &str = "Attribute.Opaque.Max-Length";
    /// Maximum bytes in a string value.
    pub const ATTRIBUTE_STRING_MAX_LENGTH: &str = "Attribute.String.Max-Length";
    /// Maximum bytes of one packet.
    pub const PACKET_MAX_LENGTH: &str = "Packet.Max-Length";
    /// What to drop when the input queue is full.
    pub const RECEIVE_QUEUE_DROP_POLICY: &str = "Receive-Queue.Drop-Policy";
    /// Bytes in the per-client input queue.
    pub const RECEIVE_QUEUE_MAX_LENGTH: &str = "Receive-Queue.Max-Length";
    /// What to drop when the output queue is full.
    pub const SEND_QUEUE_DROP_POLICY: &str = "Send-Queue.Drop-Policy";
    /// Bytes in the per-client output queue.
    pub const SEND_QUEUE_MAX_LENGTH: &str = "Send-Queue.Max-Length";
    /// Subscriptions per client.
    pub const SUBSCRIPTION_MAX_COUNT: &str = "Subscription.Max-Count";
    /// Maximum length of one subscription expression.
    pub const SUBSCRIPTION_MAX_LENGTH: &str = "Subscription.Max-Length";
    /// Key schemes the router supports.
    pub const SUPPORTED_KEY_SCHEMES: &str = "Supported-Key-Schemes";
    /// The router's identity.
    pub const VENDOR_IDENTIFICATION: &str = "Vendor-Identification";
    /// Disable Nagle's algorithm on the connection.
    pub const TCP_SEND_IMMEDIATELY: &str = "TCP.Send-Immediately";
    /// Keys per connection key set.
    pub const CONNECTION_MAX_KEYS: &str = "Connection.Max-Keys";
    /// Keys per subscription.
    pub const SUBSCRIPTION_MAX_KEYS: &str = "Subscription.Max-Keys";
}

/// Drop policies accepted for the queue options.
pub const DROP_POLICIES: &[&str] = &["oldest", "newest", "largest", "fail", "none"];

/// What a router drops when a per-client queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropPolicy {
    /// Drop the oldest queued packet.
    Oldest,
    /// Drop the packet being added.
    Newest,
    /// Drop the largest queued packet.
    Largest,
    /// Close the connection (Avis's name).
    Fail,
    /// Drop nothing: stop reading or writing until there is room (the
    /// spec's name).
    None,
}

impl DropPolicy {
    /// The policy for an option value (case-insensitive), if valid.
    pub fn from_name(name: &str) -> Option<DropPolicy> {
        [
            ("oldest", DropPolicy::Oldest),
            ("newest", DropPolicy::Newest),
            ("largest", DropPolicy::Largest),
            ("fail", DropPolicy::Fail),
            ("none", DropPolicy::None),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, policy)| policy)
    }

    /// The option value naming this policy.
    pub fn name(self) -> &'static str {
        match self {
            DropPolicy::Oldest => "oldest",
            DropPolicy::Newest => "newest",
            DropPolicy::Largest => "largest",
            DropPolicy::Fail => "fail",
            DropPolicy::None => "none",
        }
    }
}

/// The type and limits of an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// An int32 within `[min, max]`.
    Int32 {
        /// Smallest accepted value.
        min: i32,
        /// Value used when none (or an invalid one) is requested.
        default: i32,
        /// Largest accepted value.
        max: i32,
    },
    /// A string from a fixed set (compared case-insensitively).
    String {
        /// Value used when none (or an invalid one) is requested.
        default: &'static str,
        /// Accepted values.
        allowed: &'static [&'static str],
    },
}

/// One connection option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    /// Standard name.
    pub name: &'static str,
    /// Mantara elvind 4.0 name, if there is one.
    pub legacy_name: Option<&'static str>,
    /// True when the legacy name carries the inverted boolean meaning
    /// (`router.coalesce-delay` against `TCP.Send-Immediately`).
    pub legacy_inverted: bool,
    /// Type and limits.
    pub kind: OptionKind,
}

const fn int(
    name: &'static str,
    legacy: Option<&'static str>,
    min: i32,
    default: i32,
    max: i32,
) -> OptionSpec {
    OptionSpec {
        name,
        legacy_name: legacy,
        legacy_inverted: false,
        kind: OptionKind::Int32 { min, default, max },
    }
}

const fn string(
    name: &'static str,
    legacy: &'static str,
    default: &'static str,
    allowed: &'static [&'static str],
) -> OptionSpec {
    OptionSpec {
        name,
        legacy_name: Some(legacy),
        legacy_inverted: false,
        kind: OptionKind::String { default, allowed },
    }
}

/// Every connection option this router understands, with its limits.
pub static CONNECTION_OPTIONS: [OptionSpec; 16] = [
    int(
        names::ATTRIBUTE_MAX_COUNT,
        Some("router.attribute.max-count"),
        MAX,
        MAX,
        MAX,
    ),
    int(
        names::ATTRIBUTE_NAME_MAX_LENGTH,
        Some("router.attribute.name.max-length"),
        MAX,
        MAX,
        MAX,
    ),
    int(
        names::ATTRIBUTE_OPAQUE_MAX_LENGTH,
        Some("router.attribute.opaque.max-length"),
        MAX,
        MAX,
        MAX,
    ),
    int(
        names::ATTRIBUTE_STRING_MAX_LENGTH,
        Some("router.attribute.string.max-length"),
        MAX,
        MAX,
        MAX,
    ),
    int(
        names::PACKET_MAX_LENGTH,
        Some("router.packet.max-length"),
        K,
        2 * M,
        10 * M,
    ),
    string(
        names::RECEIVE_QUEUE_DROP_POLICY,
        "router.recv-queue.drop-policy",
        "oldest",
        DROP_POLICIES,
    ),
    int(
        names::RECEIVE_QUEUE_MAX_LENGTH,
        Some("router.recv-queue.max-length"),
        K,
        M,
        M,
    ),
    string(
        names::SEND_QUEUE_DROP_POLICY,
        "router.send-queue.drop-policy",
        "oldest",
        DROP_POLICIES,
    ),
    int(
        names::SEND_QUEUE_MAX_LENGTH,
        Some("router.send-queue.max-length"),
        K,
        2 * M,
        1024 * M,
    ),
    int(
        names::SUBSCRIPTION_MAX_COUNT,
        Some("router.subscription.max-count"),
        16,
        2 * K,
        2 * K,
    ),
    int(
        names::SUBSCRIPTION_MAX_LENGTH,
        Some("router.subscription.max-length"),
        K,
        2 * K,
        4 * K,
    ),
    string(
        names::SUPPORTED_KEY_SCHEMES,
        "router.supported-keyschemes",
        "SHA-1",
        &["SHA-1"],
    ),
    string(
        names::VENDOR_IDENTIFICATION,
        "router.vendor-identification",
        VENDOR_IDENTIFICATION,
        &[VENDOR_IDENTIFICATION],
    ),
    OptionSpec {
        name: names::TCP_SEND_IMMEDIATELY,
        legacy_name: Some("router.coalesce-delay"),
        legacy_inverted: true,
        kind: OptionKind::Int32 {
            min: 0,
            default: 0,
            max: 1,
        },
    },
    int(names::CONNECTION_MAX_KEYS, None, 0, K, K),
    int(names::SUBSCRIPTION_MAX_KEYS, None, 0, 256, K),
];

/// An option name resolved against the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionName {
    /// The option.
    pub spec: &'static OptionSpec,
    /// True when it was named by its legacy name (the reply must use the
    /// name as requested, and legacy values may need converting).
    pub legacy: bool,
}

/// Finds an option by its standard or legacy name, ignoring ASCII case.
pub fn lookup_option(name: &str) -> Option<OptionName> {
    CONNECTION_OPTIONS.iter().find_map(|spec| {
        if spec.name.eq_ignore_ascii_case(name) {
            Some(OptionName {
                spec,
                legacy: false,
            })
        } else if spec
            .legacy_name
            .is_some_and(|legacy| legacy.eq_ignore_ascii_case(name))
        {
            Some(OptionName { spec, legacy: true })
        } else {
            None
        }
    })
}

/// The outcome of one requested option.
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    /// True when the requested value was accepted as is.
    pub accepted: bool,
    /// The value in effect, in standard-name terms (for
    /// `router.coalesce-delay`, the `TCP.Send-Immediately` value).
    pub value: Value,
    /// The value to put in the reply under the name the client used: the
    /// requested value when accepted, otherwise the value in effect (in
    /// legacy terms when asked by legacy name).
    pub reply_value: Value,
}

impl OptionSpec {
    /// The default value, in standard-name terms.
    pub fn default_value(&self) -> Value {
        match self.kind {
            OptionKind::Int32 { default, .. } => Value::Int32(default),
            OptionKind::String { default, .. } => Value::String(default.to_owned()),
        }
    }

    /// True when `value` (in standard-name terms) has the right type and is
    /// within range or in the allowed set.
    pub fn is_valid(&self, value: &Value) -> bool {
        match (self.kind, value) {
            (OptionKind::Int32 { min, max, .. }, Value::Int32(v)) => (min..=max).contains(v),
            (OptionKind::String { allowed, .. }, Value::String(s)) => {
                allowed.iter().any(|a| a.eq_ignore_ascii_case(s))
            }
            _ => false,
        }
    }

    /// Decides the answer to a request for this option with `requested`,
    /// made under the legacy name when `legacy` is true.
    pub fn negotiate(&self, requested: &Value, legacy: bool) -> Negotiated {
        let inverted = legacy && self.legacy_inverted;
        let standard = if inverted {
            legacy_to_standard(requested)
        } else {
            Some(requested.clone())
        };
        match standard {
            Some(value) if self.is_valid(&value) => Negotiated {
                accepted: true,
                value,
                reply_value: requested.clone(),
            },
            _ => {
                let value = self.default_value();
                let reply_value = if inverted {
                    standard_to_legacy(&value)
                } else {
                    value.clone()
                };
                Negotiated {
                    accepted: false,
                    value,
                    reply_value,
                }
            }
        }
    }
}

/// `router.coalesce-delay` to `TCP.Send-Immediately`: no delay means send
/// immediately; negative delays and other types are invalid.
fn legacy_to_standard(requested: &Value) -> Option<Value> {
    match requested {
        Value::Int32(0) => Some(Value::Int32(1)),
        Value::Int32(delay) if *delay > 0 => Some(Value::Int32(0)),
        _ => None,
    }
}

/// `TCP.Send-Immediately` to `router.coalesce-delay`.
fn standard_to_legacy(value: &Value) -> Value {
    match value {
        Value::Int32(0) => Value::Int32(1),
        _ => Value::Int32(0),
    }
}

/// Looks up `name` and decides the answer to requesting it with
/// `requested`. `None` means the option is unknown and must be left out of
/// the reply.
pub fn negotiate_option(name: &str, requested: &Value) -> Option<(OptionName, Negotiated)> {
    let option = lookup_option(name)?;
    Some((option, option.spec.negotiate(requested, option.legacy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_and_legacy_name_resolves_case_insensitively() {
        for spec in &CONNECTION_OPTIONS {
            let found = lookup_option(&spec.name.to_ascii_uppercase()).unwrap();
            assert_eq!((found.spec.name, found.legacy), (spec.name, false));
            if let Some(legacy) = spec.legacy_name {
                let found = lookup_option(&legacy.to_ascii_uppercase()).unwrap();
                assert_eq!((found.spec.name, found.legacy), (spec.name, true));
            }
            // Every default is itself valid.
            assert!(spec.is_valid(&spec.default_value()), "{}", spec.name);
        }
        assert_eq!(
            lookup_option("router.packet.max-length").unwrap().spec.name,
            "Packet.Max-Length"
        );
        assert_eq!(
            lookup_option("packet.max-LENGTH").unwrap().spec.name,
            "Packet.Max-Length"
        );
        assert!(lookup_option("No.Such-Option").is_none());
        assert!(negotiate_option("No.Such-Option", &Value::Int32(1)).is_none());
    }

    #[test]
    fn in_range_values_are_accepted_and_echoed() {
        let (name, n) = negotiate_option("Packet.Max-Length", &Value::Int32(4096)).unwrap();
        assert!(!name.legacy);
        assert_eq!(
            n,
            Negotiated {
                accepted: true,
                value: Value::Int32(4096),
                reply_value: Value::Int32(4096)
            }
        );
        let (_, n) = negotiate_option("router.subscription.max-count", &Value::Int32(16)).unwrap();
        assert!(n.accepted);
    }

    #[test]
    fn out_of_range_values_are_answered_with_the_default() {
        for requested in [100, 10 * 1024 * 1024 + 1, -1] {
            let (_, n) = negotiate_option("Packet.Max-Length", &Value::Int32(requested)).unwrap();
            assert!(!n.accepted, "{requested}");
            assert_eq!(n.reply_value, Value::Int32(2 * 1024 * 1024));
            assert_eq!(n.value, Value::Int32(2 * 1024 * 1024));
        }
        // Avis pins the attribute limits at MAX.
        let (_, n) = negotiate_option("Attribute.Max-Count", &Value::Int32(64)).unwrap();
        assert_eq!(n.reply_value, Value::Int32(i32::MAX));
    }

    #[test]
    fn wrong_types_are_answered_with_the_default() {
        let (_, n) = negotiate_option("Packet.Max-Length", &Value::String("4096".into())).unwrap();
        assert!(!n.accepted);
        assert_eq!(n.reply_value, Value::Int32(2 * 1024 * 1024));
        let (_, n) = negotiate_option("Packet.Max-Length", &Value::Int64(4096)).unwrap();
        assert!(!n.accepted);
        let (_, n) = negotiate_option("Send-Queue.Drop-Policy", &Value::Int32(1)).unwrap();
        assert_eq!(n.reply_value, Value::String("oldest".into()));
    }

    #[test]
    fn send_queue_limit_is_enforced() {
        let spec = lookup_option("Send-Queue.Max-Length").unwrap().spec;
        assert_eq!(spec.default_value(), Value::Int32(2 * 1024 * 1024));
        assert!(spec.is_valid(&Value::Int32(1024)));
        assert!(spec.is_valid(&Value::Int32(1024 * 1024 * 1024)));
        assert!(!spec.is_valid(&Value::Int32(1023)));
        assert!(!spec.is_valid(&Value::Int32(1024 * 1024 * 1024 + 1)));
    }

    #[test]
    fn drop_policies_accept_all_five_names() {
        for policy in ["oldest", "newest", "largest", "fail", "none", "NONE"] {
            let (_, n) = negotiate_option(
                "router.send-queue.drop-policy",
                &Value::String(policy.into()),
            )
            .unwrap();
            assert!(n.accepted, "{policy}");
            assert_eq!(n.reply_value, Value::String(policy.into()));
            assert!(DropPolicy::from_name(policy).is_some());
        }
        let (_, n) =
            negotiate_option("Receive-Queue.Drop-Policy", &Value::String("random".into())).unwrap();
        assert!(!n.accepted);
        assert_eq!(n.reply_value, Value::String("oldest".into()));
        assert_eq!(DropPolicy::from_name("Largest"), Some(DropPolicy::Largest));
        assert_eq!(DropPolicy::Fail.name(), "fail");
    }

    #[test]
    fn coalesce_delay_is_the_inverse_of_send_immediately() {
        // No delay = send immediately.
        let (name, n) = negotiate_option("router.coalesce-delay", &Value::Int32(0)).unwrap();
        assert!(name.legacy);
        assert_eq!(name.spec.name, "TCP.Send-Immediately");
        assert_eq!(
            n,
            Negotiated {
                accepted: true,
                value: Value::Int32(1),
                reply_value: Value::Int32(0)
            }
        );
        // A delay = coalescing allowed.
        let (_, n) = negotiate_option("router.coalesce-delay", &Value::Int32(1)).unwrap();
        assert_eq!(
            n,
            Negotiated {
                accepted: true,
                value: Value::Int32(0),
                reply_value: Value::Int32(1)
            }
        );
        let (_, n) = negotiate_option("Router.Coalesce-Delay", &Value::Int32(250)).unwrap();
        assert_eq!(n.value, Value::Int32(0));
        assert_eq!(n.reply_value, Value::Int32(250));
        // Invalid: answered with the default (send-immediately 0) in legacy
        // terms (coalesce-delay 1).
        let (_, n) = negotiate_option("router.coalesce-delay", &Value::Int32(-5)).unwrap();
        assert_eq!(
            n,
            Negotiated {
                accepted: false,
                value: Value::Int32(0),
                reply_value: Value::Int32(1)
            }
        );
        let (_, n) = negotiate_option("router.coalesce-delay", &Value::String("0".into())).unwrap();
        assert_eq!(n.reply_value, Value::Int32(1));
        // The standard name is not inverted.
        let (_, n) = negotiate_option("TCP.Send-Immediately", &Value::Int32(1)).unwrap();
        assert_eq!(
            n,
            Negotiated {
                accepted: true,
                value: Value::Int32(1),
                reply_value: Value::Int32(1)
            }
        );
        let (_, n) = negotiate_option("TCP.Send-Immediately", &Value::Int32(2)).unwrap();
        assert_eq!(n.reply_value, Value::Int32(0));
    }

    #[test]
    fn informational_options_answer_with_the_router_value() {
        let (_, n) =
            negotiate_option("Vendor-Identification", &Value::String("Avis 1.2.2".into())).unwrap();
        assert!(!n.accepted);
        assert_eq!(n.reply_value, Value::String(VENDOR_IDENTIFICATION.into()));
        let (_, n) = negotiate_option(
            "router.supported-keyschemes",
            &Value::String("SHA-1".into()),
        )
        .unwrap();
        assert!(n.accepted);
        let (_, n) =
            negotiate_option("Supported-Key-Schemes", &Value::String("MD5".into())).unwrap();
        assert_eq!(n.reply_value, Value::String("SHA-1".into()));
    }

    #[test]
    fn avis_only_options_have_no_legacy_name() {
        assert_eq!(
            lookup_option("Connection.Max-Keys")
                .unwrap()
                .spec
                .legacy_name,
            None
        );
        let (_, n) = negotiate_option("Subscription.Max-Keys", &Value::Int32(2000)).unwrap();
        assert_eq!(n.reply_value, Value::Int32(256));
    }
}
