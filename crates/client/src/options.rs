//! Settings: how to connect ([`ConnectOptions`]), which connection options
//! to ask the router for ([`RequestedOptions`]), what the router granted
//! ([`NegotiatedOptions`]), automatic reconnect ([`Reconnect`]) and
//! per-subscription settings ([`SubscribeOptions`], [`SubscriptionChange`]).
//!
//! Everything is a plain value with builder methods and sensible defaults,
//! so the common case is `ConnectOptions::default()` and anything unusual
//! is one method call. Limits that protect the client's memory (delivery
//! queue length, send buffer) live here too, with their defaults explained.

use std::time::Duration;

use elvin_proto::options::{DropPolicy, names};
use elvin_proto::{DEFAULT_MAX_PACKET_LENGTH, Keys, Value, lookup_option};

use crate::tls::TlsOptions;

/// Default time allowed to open a connection: TCP, TLS and ConnRqst.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for the router to answer one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for a clean close (DisconnRqst to DisconnRply).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of undelivered notifications kept per subscription.
pub const DEFAULT_DELIVERY_CAPACITY: usize = 1024;
/// Default bytes of encoded packets that may wait to be written.
pub const DEFAULT_SEND_BUFFER: usize = 4 * 1024 * 1024;

/// Connection options to request in the ConnRqst, in order.
///
/// Typed setters cover the standard options; [`RequestedOptions::raw`]
/// sends anything else (a legacy name, a vendor option) as given. Setting
/// an option twice under the same name (compared case-insensitively)
/// replaces the earlier value, so a setter can be called again to change
/// its mind. Options written in the URI (`elvin://h;Packet.Max-Length=8192`)
/// are requested too, unless the same name is set here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestedOptions {
    entries: Vec<(String, Value)>,
}

impl RequestedOptions {
    /// No options: the router's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests `name` = `value` exactly as given (any name, any type).
    pub fn raw(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name.into(), value.into());
        self
    }

    /// Largest packet either side may send, in bytes (`Packet.Max-Length`).
    pub fn packet_max_length(self, bytes: i32) -> Self {
        self.raw(names::PACKET_MAX_LENGTH, bytes)
    }

    /// Ask the router to disable Nagle's algorithm (`TCP.Send-Immediately`).
    pub fn send_immediately(self, on: bool) -> Self {
        self.raw(names::TCP_SEND_IMMEDIATELY, i32::from(on))
    }

    /// Most subscriptions this connection may hold (`Subscription.Max-Count`).
    pub fn subscription_max_count(self, count: i32) -> Self {
        self.raw(names::SUBSCRIPTION_MAX_COUNT, count)
    }

    /// Longest subscription expression (`Subscription.Max-Length`).
    pub fn subscription_max_length(self, bytes: i32) -> Self {
        self.raw(names::SUBSCRIPTION_MAX_LENGTH, bytes)
    }

    /// Bytes the router may queue for this client (`Send-Queue.Max-Length`).
    pub fn send_queue_max_length(self, bytes: i32) -> Self {
        self.raw(names::SEND_QUEUE_MAX_LENGTH, bytes)
    }

    /// What the router drops when its queue for this client is full
    /// (`Send-Queue.Drop-Policy`).
    pub fn send_queue_drop_policy(self, policy: DropPolicy) -> Self {
        self.raw(names::SEND_QUEUE_DROP_POLICY, policy.name())
    }

    /// Bytes of this client's input the router may queue
    /// (`Receive-Queue.Max-Length`).
    pub fn receive_queue_max_length(self, bytes: i32) -> Self {
        self.raw(names::RECEIVE_QUEUE_MAX_LENGTH, bytes)
    }

    /// What the router drops when this client's input queue is full
    /// (`Receive-Queue.Drop-Policy`).
    pub fn receive_queue_drop_policy(self, policy: DropPolicy) -> Self {
        self.raw(names::RECEIVE_QUEUE_DROP_POLICY, policy.name())
    }

    /// Most attributes per notification (`Attribute.Max-Count`).
    pub fn attribute_max_count(self, count: i32) -> Self {
        self.raw(names::ATTRIBUTE_MAX_COUNT, count)
    }

    /// Asks for the router's key schemes (`Supported-Key-Schemes`).
    pub fn supported_key_schemes(self, schemes: &str) -> Self {
        self.raw(names::SUPPORTED_KEY_SCHEMES, schemes)
    }

    /// The options in the order they will be sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// True when nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn set(&mut self, name: String, value: Value) {
        match self
            .entries
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(slot) => *slot = (name, value),
            None => self.entries.push((name, value)),
        }
    }

    /// These options followed by the URI's options whose names are not
    /// set here: what goes into the ConnRqst.
    pub(crate) fn merged_with_uri(
        &self,
        uri_options: Vec<(String, Value)>,
    ) -> Vec<(String, Value)> {
        let mut merged = self.entries.clone();
        for (name, value) in uri_options {
            if !merged.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                merged.push((name, value));
            }
        }
        merged
    }
}

/// The connection options the router sent in its ConnRply.
///
/// Lookups accept the standard or the legacy name of an option in any
/// case, whichever name the router answered under.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NegotiatedOptions {
    entries: Vec<(String, Value)>,
}

impl NegotiatedOptions {
    pub(crate) fn new(entries: Vec<(String, Value)>) -> Self {
        NegotiatedOptions { entries }
    }

    /// The value of an option, by its standard or legacy name.
    ///
    /// For `TCP.Send-Immediately` answered as the legacy, inverted
    /// `router.coalesce-delay`, the value is returned as the router sent it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        if let Some((_, value)) = self
            .entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(value);
        }
        let option = lookup_option(name)?;
        self.entries
            .iter()
            .find(|(n, _)| {
                lookup_option(n)
                    .is_some_and(|o| o.spec.name == option.spec.name && !o.spec.legacy_inverted)
            })
            .map(|(_, v)| v)
    }

    /// Every option as the router sent it, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The `Packet.Max-Length` in force: the router's value if it sent a
    /// usable one (a positive int32), otherwise the protocol default of
    /// 2 MiB.
    pub fn packet_max_length(&self) -> usize {
        match self.get(names::PACKET_MAX_LENGTH) {
            Some(Value::Int32(n)) if *n > 0 => {
                usize::try_from(*n).unwrap_or(DEFAULT_MAX_PACKET_LENGTH)
            }
            _ => DEFAULT_MAX_PACKET_LENGTH,
        }
    }

    /// The router's `Vendor-Identification`, if it sent one.
    pub fn vendor_identification(&self) -> Option<&str> {
        self.get(names::VENDOR_IDENTIFICATION)
            .and_then(Value::as_str)
    }
}

/// Automatic reconnect: what to do when the connection is lost.
///
/// With reconnect on, a lost connection (router restart, network failure,
/// Disconn) is retried every `retry_interval`; when a new connection is
/// accepted, every live subscription is re-established and the existing
/// [`crate::Subscription`] handles keep working. See the crate docs for the
/// full semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// Wait between attempts (and before the first one).
    pub retry_interval: Duration,
    /// Give up after this many failed attempts in a row; `None` retries
    /// for ever.
    pub max_retries: Option<u32>,
}

impl Default for Reconnect {
    /// Retry every second, for ever.
    fn default() -> Self {
        Reconnect {
            retry_interval: Duration::from_secs(1),
            max_retries: None,
        }
    }
}

/// How to connect to a router.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) requested: RequestedOptions,
    pub(crate) notification_keys: Keys,
    pub(crate) subscription_keys: Keys,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) reconnect: Option<Reconnect>,
    pub(crate) delivery_capacity: usize,
    pub(crate) send_buffer: usize,
    pub(crate) keepalive: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            requested: RequestedOptions::new(),
            notification_keys: Keys::new(),
            subscription_keys: Keys::new(),
            tls: None,
            reconnect: None,
            delivery_capacity: DEFAULT_DELIVERY_CAPACITY,
            send_buffer: DEFAULT_SEND_BUFFER,
            keepalive: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults: 10 s to connect, 10 s per request, 5 s to close, no
    /// options requested, no keys, no TLS, no reconnect, 1024 queued
    /// notifications per subscription, 4 MiB send buffer, no keep-alive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time allowed to open the connection, including TLS and the
    /// router's ConnRply.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for the router to answer each request (subscribe,
    /// modify, remove, set_keys, test_connection).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Time allowed for [`crate::Client::close`] to get the router's
    /// DisconnRply; after it the socket is closed anyway.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Connection options to request.
    pub fn options(mut self, options: RequestedOptions) -> Self {
        self.requested = options;
        self
    }

    /// Keys applied to every notification this connection sends.
    pub fn notification_keys(mut self, keys: Keys) -> Self {
        self.notification_keys = keys;
        self
    }

    /// Keys applied to every subscription of this connection.
    pub fn subscription_keys(mut self, keys: Keys) -> Self {
        self.subscription_keys = keys;
        self
    }

    /// TLS settings, required for `elvin:/secure/` URIs.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Turns on automatic reconnect.
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = Some(reconnect);
        self
    }

    /// Notifications kept per subscription when the consumer falls behind
    /// (at least 1). When full, the oldest is dropped and counted.
    pub fn delivery_capacity(mut self, capacity: usize) -> Self {
        self.delivery_capacity = capacity.max(1);
        self
    }

    /// Bytes of encoded packets allowed to wait for the socket. Senders
    /// wait (async) when it is full; that is the client's backpressure on
    /// producers. At least one maximum-size packet always fits.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes.max(1);
        self
    }

    /// Probes the router with a TestConn after `idle` without traffic, and
    /// treats the connection as dead if nothing arrives within the request
    /// timeout after that. This is how a dead peer (a crashed host, a
    /// dropped network path) is noticed without waiting for TCP.
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }
}

/// Settings for one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Accept notifications sent without matching keys (default true, which
    /// is what the Emulab event system uses).
    pub accept_insecure: bool,
    /// The subscription's own keys (consumer private keys, producer public
    /// keys).
    pub keys: Keys,
    /// Notifications kept when the consumer falls behind; `None` uses the
    /// connection's [`ConnectOptions::delivery_capacity`].
    pub capacity: Option<usize>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            accept_insecure: true,
            keys: Keys::new(),
            capacity: None,
        }
    }
}

impl SubscribeOptions {
    /// Only secure matches (keys required), with these keys.
    pub fn secure(keys: Keys) -> Self {
        SubscribeOptions {
            accept_insecure: false,
            keys,
            capacity: None,
        }
    }
}

/// A change to an existing subscription (SubModRqst).
///
/// Everything not set is kept: the expression, the insecure-delivery flag
/// (the client re-sends the current value, since the packet always carries
/// it) and the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// New expression; `None` keeps the current one.
    pub expression: Option<String>,
    /// New insecure-delivery flag; `None` keeps the current one.
    pub accept_insecure: Option<bool>,
    /// Keys to add.
    pub add_keys: Keys,
    /// Keys to remove.
    pub del_keys: Keys,
}

impl SubscriptionChange {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the expression.
    pub fn expression(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// Set the insecure-delivery flag.
    pub fn accept_insecure(mut self, accept: bool) -> Self {
        self.accept_insecure = Some(accept);
        self
    }

    /// Keys to add.
    pub fn add_keys(mut self, keys: Keys) -> Self {
        self.add_keys = keys;
        self
    }

    /// Keys to remove.
    pub fn del_keys(mut self, keys: Keys) -> Self {
        self.del_keys = keys;
        self
    }
}

/// A change to the connection's keys (SecRqst).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChange {
    /// Notification keys to add.
    pub add_notification_keys: Keys,
    /// Notification keys to remove.
    pub del_notification_keys: Keys,
    /// Subscription keys to add.
    pub add_subscription_keys: Keys,
    /// Subscription keys to remove.
    pub del_subscription_keys: Keys,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_an_option_again_replaces_it_and_uri_options_come_last() {
        let requested = RequestedOptions::new()
            .packet_max_length(4096)
            .raw("router.coalesce-delay", 0)
            .raw("packet.max-length", 8192);
        let merged = requested.merged_with_uri(vec![
            ("Packet.Max-Length".into(), Value::Int32(1)),
            ("Subscription.Max-Count".into(), Value::Int32(16)),
        ]);
        assert_eq!(
            merged,
            vec![
                ("packet.max-length".to_owned(), Value::Int32(8192)),
                ("router.coalesce-delay".to_owned(), Value::Int32(0)),
                ("Subscription.Max-Count".to_owned(), Value::Int32(16)),
            ]
        );
    }

    #[test]
    fn negotiated_lookup_accepts_either_name() {
        let negotiated = NegotiatedOptions::new(vec![
            ("router.packet.max-length".into(), Value::Int32(4096)),
            (
                "Vendor-Identification".into(),
                Value::String("tbevents".into()),
            ),
        ]);
        assert_eq!(
            negotiated.get("Packet.Max-Length"),
            Some(&Value::Int32(4096))
        );
        assert_eq!(negotiated.packet_max_length(), 4096);
        assert_eq!(negotiated.vendor_identification(), Some("tbevents"));
        assert_eq!(negotiated.get("Subscription.Max-Count"), None);

        let bad = NegotiatedOptions::new(vec![("Packet.Max-Length".into(), Value::Int32(-1))]);
        assert_eq!(bad.packet_max_length(), DEFAULT_MAX_PACKET_LENGTH);
        let wrong_type = NegotiatedOptions::new(vec![(
            "Packet.Max-Length".into(),
            Value::String("x".into()),
        )]);
        assert_eq!(wrong_type.packet_max_length(), DEFAULT_MAX_PACKET_LENGTH);
    }
}
