//! One client connection's protocol state machine (docs/protocol.md §5).
//!
//! A [`Session`] is fed complete frames by its connection's reader task and
//! handles each one synchronously: it decodes the packet, checks it against
//! the connection's state and limits, changes the routing table through the
//! [`Broker`], and queues replies on its own [`Outbox`] (so replies and
//! deliveries to this client stay in order). It never touches the socket,
//! which keeps the whole protocol testable without one and shared between
//! TCP and TLS.
//!
//! Life cycle:
//!
//! - **Fresh**: only ConnRqst, UNotify and TestConn are allowed. A ConnRqst
//!   with a version other than 4.0 gets Nack 1 and the channel stays open;
//!   too many keys get Nack 2006. Any other request closes the connection
//!   with Disconn 4 "No connection established for session".
//! - **Session-less** (after a UNotify): more UNotify, TestConn, or a
//!   ConnRqst to upgrade.
//! - **Connected**: everything; a second ConnRqst is Disconn 4 "Already
//!   connected". QosRqst and quench requests get Nack 2007.
//!
//! Packet types that only a router sends (ConnRply, NotifyDeliver, …) are
//! decoded, logged and ignored in every state, as Avis does. A frame that
//! fails to decode is a protocol violation: Disconn 4 with the decoder's
//! text, and the connection closes.

use std::sync::Arc;
use std::time::Instant;

use elvin_proto::codes::{disconn, nack};
use elvin_proto::options::DropPolicy;
use elvin_proto::{
    ConnRply, ConnRqst, DecodeError, Disconn, DisconnRply, Keys, Nack, Packet, SecRply, SecRqst,
    SubAddRqst, SubDelRqst, SubModRqst, SubRply, Value, decode_notify_emit, decode_unotify,
    peek_packet_id,
};
use elvin_sublang::{Limits, Subscription, SubscriptionError};
use rustc_hash::FxHashMap;

use crate::broker::{Broker, ClientId, Notification, RouteScratch};
use crate::config::ConnectionLimits;
use crate::metrics;
use crate::negotiation::{SessionOptions, negotiate};
use crate::outbox::{Outbox, QueueLimits};

/// Disconn text for a request before ConnRqst.
pub const NOT_CONNECTED: &str = "No connection established for session";
/// Disconn text for a second ConnRqst.
pub const ALREADY_CONNECTED: &str = "Already connected";
/// Nack text for a ConnRqst with a version other than 4.0.
pub const VERSION_MESSAGE: &str = "Max supported protocol version is 4.0: use a connection URI \
                                   like elvin:4.0//hostname to specify protocol version";
/// Disconn text at shutdown.
pub const SHUTDOWN_MESSAGE: &str = "Router is shutting down";

/// What the reader should do after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Continue,
    /// The last frame (DisconnRply or Disconn) is queued: stop reading,
    /// flush and close.
    Close,
}

#[derive(Debug)]
struct Connected {
    client: ClientId,
    options: SessionOptions,
    /// The connection's notification keys, public form.
    notification_keys: Keys,
    /// The connection's subscription keys, public form.
    subscription_keys: Keys,
    /// This client's subscriptions and their keys (public form).
    subscriptions: FxHashMap<i64, Keys>,
    /// Compiled-regex bytes of each subscription that uses `regex()`, and
    /// their sum, against the per-connection budget.
    regex_bytes: FxHashMap<i64, usize>,
    regex_total: usize,
}

#[derive(Debug)]
enum State {
    Fresh,
    SessionLess,
    Connected(Box<Connected>),
    Closed,
}

/// The protocol state of one client connection.
#[derive(Debug)]
pub struct Session {
    conn_id: u64,
    peer: String,
    broker: Arc<Broker>,
    outbox: Arc<Outbox>,
    limits: Arc<ConnectionLimits>,
    state: State,
    /// When the channel last proved it is an Elvin client (opened, or last
    /// UNotify), for the idle timeout.
    last_established_activity: Instant,
    /// Packet.Max-Length in force, both ways: the configured value until
    /// ConnRqst, then the negotiated one.
    max_packet: usize,
}

/// Cuts a text to at most 200 characters, marking the cut.
fn shorten(text: &str) -> String {
    const KEEP: usize = 200;
    match text.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or("")),
        None => text.to_owned(),
    }
}

fn frame_of(packet: impl Into<Packet>) -> Vec<u8> {
    let packet = packet.into();
    let mut out = Vec::with_capacity(packet.encoded_len() + 4);
    packet.encode(&mut out);
    out
}

impl Session {
    /// A session for a new connection from `peer`, replying through
    /// `outbox`, with the limits in force when it connected.
    pub fn new(
        conn_id: u64,
        peer: String,
        broker: Arc<Broker>,
        outbox: Arc<Outbox>,
        limits: Arc<ConnectionLimits>,
    ) -> Session {
        Session {
            conn_id,
            peer,
            broker,
            outbox,
            max_packet: limits.packet_max_length,
            limits,
            state: State::Fresh,
            last_established_activity: Instant::now(),
        }
    }

    /// The queue limits a connection has before ConnRqst.
    pub fn initial_queue_limits(limits: &ConnectionLimits) -> QueueLimits {
        QueueLimits {
            max_bytes: limits.send_queue_max_length,
            policy: limits.send_queue_drop_policy,
            max_packet: limits.packet_max_length,
        }
    }

    /// The largest frame body accepted now: the negotiated
    /// Packet.Max-Length, or the configured default before ConnRqst.
    pub fn max_frame_len(&self) -> usize {
        self.max_packet
    }

    /// For the idle timeout: when a channel without a session last showed
    /// life (its opening, or its last UNotify). `None` once connected.
    pub fn idle_since(&self) -> Option<Instant> {
        match self.state {
            State::Fresh | State::SessionLess => Some(self.last_established_activity),
            State::Connected(_) | State::Closed => None,
        }
    }

    /// True for a channel that has sent UNotify but no ConnRqst.
    pub fn is_session_less(&self) -> bool {
        matches!(self.state, State::SessionLess)
    }

    /// TCP_NODELAY wanted for this connection.
    pub fn send_immediately(&self) -> bool {
        match &self.state {
            State::Connected(c) => c.options.send_immediately,
            _ => self.limits.tcp_nodelay,
        }
    }

    /// Handles one complete frame body (packet id onwards).
    pub fn handle_frame(&mut self, body: &[u8], scratch: &mut RouteScratch) -> Step {
        if matches!(self.state, State::Closed) {
            return Step::Close;
        }
        match peek_packet_id(body) {
            Some(id) if id == <elvin_proto::NotifyEmit as elvin_proto::Message>::ID => {
                return self.notify_emit(body, scratch);
            }
            Some(id) if id == <elvin_proto::UNotify as elvin_proto::Message>::ID => {
                return self.unotify(body, scratch);
            }
            _ => {}
        }
        let packet = match Packet::decode(body) {
            Ok(packet) => packet,
            Err(error) => return self.decode_violation(&error),
        };
        match packet {
            Packet::TestConn(_) => {
                self.outbox.push_confconn();
                Step::Continue
            }
            Packet::ConnRqst(request) => self.conn_rqst(request),
            Packet::SubAddRqst(request) => self.when_connected(|s, c| s.sub_add(c, request)),
            Packet::SubModRqst(request) => self.when_connected(|s, c| s.sub_mod(c, request)),
            Packet::SubDelRqst(request) => self.when_connected(|s, c| s.sub_del(c, request)),
            Packet::SecRqst(request) => self.when_connected(|s, c| s.sec_rqst(c, request)),
            Packet::DisconnRqst(request) => {
                if !matches!(self.state, State::Connected(_)) {
                    return self.violation(NOT_CONNECTED.to_owned());
                }
                self.end();
                self.outbox
                    .push_final(frame_of(DisconnRply { xid: request.xid }));
                tracing::debug!(conn = self.conn_id, peer = %self.peer, "client disconnected");
                Step::Close
            }
            Packet::QosRqst(request) => self.when_connected(|s, _| {
                s.nack(
                    request.xid,
                    nack::NOT_IMPL,
                    "QoS renegotiation not supported".into(),
                    vec![],
                );
                Step::Continue
            }),
            Packet::QnchAddRqst(request) => self.quench(request.xid),
            Packet::QnchModRqst(request) => self.quench(request.xid),
            Packet::QnchDelRqst(request) => self.quench(request.xid),
            Packet::UNotify(_) | Packet::NotifyEmit(_) => Step::Continue,
            other => {
                tracing::debug!(
                    conn = self.conn_id,
                    peer = %self.peer,
                    packet = other.name(),
                    "ignoring a packet type only a router sends"
                );
                Step::Continue
            }
        }
    }

    fn quench(&mut self, xid: i32) -> Step {
        self.when_connected(|s, _| {
            s.nack(xid, nack::NOT_IMPL, "Quench not supported".into(), vec![]);
            Step::Continue
        })
    }

    /// Runs `f` on a connected session, or closes the connection with
    /// Disconn 4 when there is no session.
    fn when_connected(&mut self, f: impl FnOnce(&mut Self, &mut Connected) -> Step) -> Step {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match state {
            State::Connected(mut connected) => {
                let step = f(self, &mut connected);
                if matches!(self.state, State::Closed) {
                    self.state = State::Connected(connected);
                }
                step
            }
            other => {
                self.state = other;
                self.violation(NOT_CONNECTED.to_owned())
            }
        }
    }

    fn nack(&self, xid: i32, error: i32, message: String, args: Vec<Value>) {
        metrics::add(&self.broker.metrics().nacks, 1);
        tracing::debug!(conn = self.conn_id, peer = %self.peer, error, %message, "nack");
        let mut nack = Nack {
            xid,
            error,
            message,
            args,
        };
        if Packet::from(nack.clone()).encoded_len() > self.max_frame_len() {
            // Never send more than the client accepts: shorten the texts
            // (a long expression quoted back is the only way to get here).
            nack.message = shorten(&nack.message);
            for arg in &mut nack.args {
                if let Value::String(text) = arg {
                    *text = shorten(text);
                }
            }
        }
        self.outbox.push_reply(frame_of(nack));
    }

    fn sublang_nack(&self, xid: i32, error: SubscriptionError) {
        let code = i32::try_from(error.code).unwrap_or(nack::PARSE_ERROR);
        self.nack(
            xid,
            code,
            error.message,
            vec![Value::Int32(error.column), Value::String(error.token)],
        );
    }

    fn decode_violation(&mut self, error: &DecodeError) -> Step {
        self.violation(error.to_string())
    }

    /// Closes the connection for a protocol violation: Disconn 4 with
    /// `text`, and the session ends.
    pub fn violation(&mut self, text: String) -> Step {
        metrics::add(&self.broker.metrics().protocol_errors, 1);
        tracing::info!(
            conn = self.conn_id,
            peer = %self.peer,
            reason = %text,
            "closing connection: protocol violation"
        );
        self.close_with(disconn::PROTOCOL_VIOLATION, text)
    }

    /// Closes the connection with Disconn(`reason`, `text`).
    pub fn close_with(&mut self, reason: i32, text: String) -> Step {
        self.end();
        self.outbox
            .push_final(frame_of(Disconn { reason, args: text }));
        Step::Close
    }

    /// Closes the connection because the router is shutting down.
    pub fn shutdown(&mut self) {
        self.close_with(disconn::SHUTDOWN, SHUTDOWN_MESSAGE.to_owned());
    }

    /// Closes a channel that sent neither ConnRqst nor UNotify in time. A
    /// session-less (UNotify) channel is closed silently, since a router
    /// never writes to one; any other gets Disconn 4 saying why.
    pub fn idle_timeout(&mut self, seconds: f64) -> Step {
        tracing::info!(conn = self.conn_id, peer = %self.peer, "closing idle connection without a session");
        if self.is_session_less() {
            self.end();
            return Step::Close;
        }
        self.close_with(
            disconn::PROTOCOL_VIOLATION,
            format!("No ConnRqst or UNotify received within {seconds} seconds"),
        )
    }

    /// Closes the connection because a packet stayed incomplete too long,
    /// or because partially received packets passed the router's budget.
    pub fn cut_partial_frame(&mut self, reason: String) -> Step {
        tracing::warn!(conn = self.conn_id, peer = %self.peer, %reason, "closing connection");
        metrics::add(&self.broker.metrics().frames_cut, 1);
        self.close_with(disconn::PROTOCOL_VIOLATION, reason)
    }

    /// Closes the connection because its send queue overflowed under the
    /// `fail`/`none` drop policy.
    pub fn send_queue_overflow(&mut self) -> Step {
        let policy = match &self.state {
            State::Connected(c) => c.options.send_queue_drop_policy,
            _ => DropPolicy::Fail,
        };
        tracing::warn!(
            conn = self.conn_id,
            peer = %self.peer,
            policy = policy.name(),
            "closing connection: send queue full and the drop policy forbids dropping"
        );
        self.close_with(
            disconn::PROTOCOL_VIOLATION,
            format!(
                "Send queue overflow: the client did not read its notifications fast enough and \
                 Send-Queue.Drop-Policy is {}; use oldest, newest or largest to drop instead",
                policy.name()
            ),
        )
    }

    /// Ends the session: removes the client and its subscriptions from
    /// routing. Idempotent.
    pub fn end(&mut self) {
        if let State::Connected(connected) = std::mem::replace(&mut self.state, State::Closed) {
            self.broker.unregister_client(connected.client);
        }
    }

    fn conn_rqst(&mut self, request: ConnRqst) -> Step {
        if matches!(self.state, State::Connected(_)) {
            return self.violation(ALREADY_CONNECTED.to_owned());
        }
        if (request.client_major, request.client_minor) != (4, 0) {
            self.nack(
                request.xid,
                nack::PROT_INCOMPAT,
                VERSION_MESSAGE.to_owned(),
                vec![],
            );
            return Step::Continue;
        }
        let (options, reply) = negotiate(&request.options, &self.limits);
        if request.notification_keys.key_count() > options.connection_max_keys
            || request.subscription_keys.key_count() > options.connection_max_keys
        {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Too many keys".into(),
                vec![],
            );
            return Step::Continue;
        }
        let notification_keys = request.notification_keys.to_public_for_notification();
        let subscription_keys = request.subscription_keys.to_public_for_subscription();
        self.outbox.set_limits(QueueLimits {
            max_bytes: options.send_queue_max_length,
            policy: options.send_queue_drop_policy,
            max_packet: options.packet_max_length,
        });
        self.max_packet = options.packet_max_length;
        let client = self
            .broker
            .register_client(Arc::clone(&self.outbox), subscription_keys.clone());
        tracing::debug!(conn = self.conn_id, peer = %self.peer, ?options, "client connected");
        self.state = State::Connected(Box::new(Connected {
            client,
            options,
            notification_keys,
            subscription_keys,
            subscriptions: FxHashMap::default(),
            regex_bytes: FxHashMap::default(),
            regex_total: 0,
        }));
        self.outbox.push_reply(frame_of(ConnRply {
            xid: request.xid,
            options: reply,
        }));
        Step::Continue
    }

    fn compile(
        &self,
        options: &SessionOptions,
        expression: &str,
    ) -> Result<Subscription, SubscriptionError> {
        let limits = Limits {
            max_length: options.subscription_max_length,
            regex_budget: self.limits.regex_bytes_per_subscription,
            ..Limits::default()
        };
        Subscription::compile(expression, &limits)
    }

    /// Nacks (and returns false) when `bytes` more compiled-regex bytes,
    /// replacing `replacing`, would pass the connection's budget.
    fn regex_budget_allows(&self, c: &Connected, xid: i32, bytes: usize, replacing: usize) -> bool {
        let after = c.regex_total - replacing + bytes;
        if bytes == 0 || after <= self.limits.regex_bytes_per_connection {
            return true;
        }
        self.nack(
            xid,
            nack::IMPL_LIMIT,
            format!(
                "This connection's regular expressions would take {after} bytes, more than the {} allowed per connection",
                self.limits.regex_bytes_per_connection
            ),
            vec![],
        );
        false
    }

    fn sub_add(&mut self, c: &mut Connected, request: SubAddRqst) -> Step {
        if c.subscriptions.len() >= c.options.subscription_max_count {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Too many subscriptions".into(),
                vec![],
            );
            return Step::Continue;
        }
        if request.expression.len() > c.options.subscription_max_length {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Subscription too long".into(),
                vec![],
            );
            return Step::Continue;
        }
        if request.keys.key_count() > c.options.subscription_max_keys {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Too many keys".into(),
                vec![],
            );
            return Step::Continue;
        }
        let subscription = match self.compile(&c.options, &request.expression) {
            Ok(subscription) => subscription,
            Err(error) => {
                self.sublang_nack(request.xid, error);
                return Step::Continue;
            }
        };
        let regex_bytes = subscription.regex_bytes();
        if !self.regex_budget_allows(c, request.xid, regex_bytes, 0) {
            return Step::Continue;
        }
        let keys = request.keys.to_public_for_subscription();
        let id = self.broker.add_subscription(
            c.client,
            subscription,
            request.accept_insecure,
            keys.clone(),
        );
        c.subscriptions.insert(id, keys);
        if regex_bytes > 0 {
            c.regex_bytes.insert(id, regex_bytes);
            c.regex_total += regex_bytes;
        }
        self.outbox.push_reply(frame_of(SubRply {
            xid: request.xid,
            subscription_id: id,
        }));
        Step::Continue
    }

    fn no_such_subscription(&self, xid: i32, id: i64) {
        self.nack(
            xid,
            nack::NO_SUCH_SUB,
            format!("No subscription with ID {id}"),
            vec![Value::Int64(id)],
        );
    }

    fn sub_mod(&mut self, c: &mut Connected, request: SubModRqst) -> Step {
        let id = request.subscription_id;
        let Some(current_keys) = c.subscriptions.get(&id) else {
            self.no_such_subscription(request.xid, id);
            return Step::Continue;
        };
        if request.expression.len() > c.options.subscription_max_length {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Subscription too long".into(),
                vec![],
            );
            return Step::Continue;
        }
        let mut keys = current_keys.clone();
        keys.add_keys(&request.add_keys.to_public_for_subscription());
        keys.remove_keys(&request.del_keys.to_public_for_subscription());
        if keys.key_count() > c.options.subscription_max_keys {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Too many keys".into(),
                vec![],
            );
            return Step::Continue;
        }
        let subscription = if request.expression.is_empty() {
            None
        } else {
            match self.compile(&c.options, &request.expression) {
                Ok(subscription) => Some(subscription),
                Err(error) => {
                    self.sublang_nack(request.xid, error);
                    return Step::Continue;
                }
            }
        };
        let old_regex_bytes = c.regex_bytes.get(&id).copied().unwrap_or(0);
        let new_regex_bytes = subscription
            .as_ref()
            .map_or(old_regex_bytes, Subscription::regex_bytes);
        if !self.regex_budget_allows(c, request.xid, new_regex_bytes, old_regex_bytes) {
            return Step::Continue;
        }
        match self.broker.update_subscription(
            c.client,
            id,
            subscription,
            request.accept_insecure,
            keys.clone(),
        ) {
            Ok(()) => {
                c.subscriptions.insert(id, keys);
                c.regex_total = c.regex_total - old_regex_bytes + new_regex_bytes;
                if new_regex_bytes > 0 {
                    c.regex_bytes.insert(id, new_regex_bytes);
                } else {
                    c.regex_bytes.remove(&id);
                }
                self.outbox.push_reply(frame_of(SubRply {
                    xid: request.xid,
                    subscription_id: id,
                }));
            }
            Err(_) => self.no_such_subscription(request.xid, id),
        }
        Step::Continue
    }

    fn sub_del(&mut self, c: &mut Connected, request: SubDelRqst) -> Step {
        let id = request.subscription_id;
        if c.subscriptions.remove(&id).is_none()
            || self.broker.remove_subscription(c.client, id).is_err()
        {
            self.no_such_subscription(request.xid, id);
            return Step::Continue;
        }
        if let Some(bytes) = c.regex_bytes.remove(&id) {
            c.regex_total -= bytes;
        }
        self.outbox.push_reply(frame_of(SubRply {
            xid: request.xid,
            subscription_id: id,
        }));
        Step::Continue
    }

    fn sec_rqst(&mut self, c: &mut Connected, request: SecRqst) -> Step {
        let mut notification_keys = c.notification_keys.clone();
        notification_keys.add_keys(&request.add_notification_keys.to_public_for_notification());
        notification_keys.remove_keys(&request.del_notification_keys.to_public_for_notification());
        let mut subscription_keys = c.subscription_keys.clone();
        subscription_keys.add_keys(&request.add_subscription_keys.to_public_for_subscription());
        subscription_keys.remove_keys(&request.del_subscription_keys.to_public_for_subscription());
        if notification_keys.key_count() > c.options.connection_max_keys
            || subscription_keys.key_count() > c.options.connection_max_keys
        {
            self.nack(
                request.xid,
                nack::IMPL_LIMIT,
                "Too many keys".into(),
                vec![],
            );
            return Step::Continue;
        }
        c.notification_keys = notification_keys;
        if subscription_keys != c.subscription_keys {
            self.broker
                .set_client_keys(c.client, subscription_keys.clone());
            c.subscription_keys = subscription_keys;
        }
        self.outbox
            .push_reply(frame_of(SecRply { xid: request.xid }));
        Step::Continue
    }

    fn notify_emit(&mut self, body: &[u8], scratch: &mut RouteScratch) -> Step {
        let State::Connected(connected) = &self.state else {
            return self.violation(NOT_CONNECTED.to_owned());
        };
        let notify = match decode_notify_emit(body) {
            Ok(notify) => notify,
            Err(error) => return self.decode_violation(&error),
        };
        let message_keys = if notify.keys.is_empty() {
            Keys::new()
        } else {
            notify.keys.to_public_for_notification()
        };
        // A repeated name is delivered once, with the value matching used
        // (the last); the common case forwards the received bytes as they are.
        let deduplicated = notify.attributes.deduplicated_encoding();
        self.broker.route(
            &Notification {
                attributes: &notify.attributes,
                raw_attributes: deduplicated.as_deref().unwrap_or(notify.raw_attributes),
                deliver_insecure: notify.deliver_insecure,
                message_keys: &message_keys,
                producer_keys: &connected.notification_keys,
            },
            scratch,
        );
        Step::Continue
    }

    fn unotify(&mut self, body: &[u8], scratch: &mut RouteScratch) -> Step {
        let unotify = match decode_unotify(body) {
            Ok(unotify) => unotify,
            Err(error) => return self.decode_violation(&error),
        };
        if matches!(self.state, State::Fresh) {
            self.state = State::SessionLess;
        }
        if matches!(self.state, State::SessionLess) {
            self.last_established_activity = Instant::now();
        }
        if (unotify.client_major, unotify.client_minor) != (4, 0) {
            // The spec says to discard it silently; a router never answers
            // a UNotify.
            tracing::debug!(
                conn = self.conn_id,
                peer = %self.peer,
                major = unotify.client_major,
                minor = unotify.client_minor,
                "discarding UNotify with an unsupported protocol version"
            );
            return Step::Continue;
        }
        let notify = unotify.notify;
        let message_keys = if notify.keys.is_empty() {
            Keys::new()
        } else {
            notify.keys.to_public_for_notification()
        };
        let no_connection_keys = Keys::new();
        let deduplicated = notify.attributes.deduplicated_encoding();
        self.broker.route(
            &Notification {
                attributes: &notify.attributes,
                raw_attributes: deduplicated.as_deref().unwrap_or(notify.raw_attributes),
                deliver_insecure: notify.deliver_insecure,
                message_keys: &message_keys,
                producer_keys: &no_connection_keys,
            },
            scratch,
        );
        Step::Continue
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}
