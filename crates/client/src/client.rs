//! The async client: [`Client`], [`Subscription`] and the state they share
//! with the connection task.
//!
//! # Shape
//!
//! One background task per client owns the socket (see [`crate::session`]).
//! Callers never touch the socket: a request is encoded by the caller,
//! registered in the pending table under a fresh xid, and handed to the
//! task's writer; the task's reader matches the reply to the xid and
//! completes the caller's one-shot channel. Everything the reader must
//! update *at the moment a reply arrives* (a new subscription's router id,
//! so that a NotifyDeliver right behind the SubRply is routed; a modified
//! subscription's expression and keys, kept for resubscription) is recorded
//! as a [`PendingAction`] next to the xid and applied by the reader under
//! the same lock, so there is no window where a delivery can be lost.
//!
//! The shared state is a plain mutex held only for short, non-async
//! sections. Memory is bounded everywhere: pending requests (a fixed cap),
//! encoded frames waiting for the socket (a byte budget, a semaphore),
//! undelivered notifications (per-queue capacity, drop-oldest).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use elvin_proto::{
    Attributes, DisconnRqst, ElvinUri, EncodeError, Keys, Message, NotifyEmit, Packet, SecRqst,
    SubAddRqst, SubDelRqst, SubModRqst, UNotify, xdr,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{ClientError, NackError, TimeoutKind};
use crate::options::{
    ConnectOptions, KeyChange, NegotiatedOptions, SubscribeOptions, SubscriptionChange,
};
use crate::queue::{DeliveryQueue, Ended, Notification, SubscriptionId};
use crate::session;
use crate::transport::{CLIENT_MAJOR, CLIENT_MINOR, Config, deadline_after};

/// Most requests that may wait for replies at once. Far above any real
/// use; it only stops a router that never answers from growing the pending
/// table without limit.
pub(crate) const MAX_PENDING: usize = 65_536;

/// Anything that names a router: a URI string or a parsed [`ElvinUri`].
pub trait IntoElvinUri {
    /// Parses (or clones) the URI.
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError>;
}

impl IntoElvinUri for &str {
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError> {
        Ok(ElvinUri::parse(self)?)
    }
}

impl IntoElvinUri for String {
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError> {
        Ok(ElvinUri::parse(&self)?)
    }
}

impl IntoElvinUri for &String {
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError> {
        Ok(ElvinUri::parse(self)?)
    }
}

impl IntoElvinUri for ElvinUri {
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError> {
        Ok(self)
    }
}

impl IntoElvinUri for &ElvinUri {
    fn into_elvin_uri(self) -> Result<ElvinUri, ClientError> {
        Ok(self.clone())
    }
}

/// The connection's state, as seen through [`Client::state`] and
/// [`Client::state_changes`].
#[derive(Clone, Debug)]
pub enum ConnectionState {
    /// Connected and, after a reconnect, every subscription re-established.
    Connected,
    /// The connection was lost and automatic reconnect is trying again.
    Reconnecting {
        /// The attempt in progress (1 for the first).
        attempt: u32,
        /// Why the connection was lost (or why the last attempt failed).
        error: ClientError,
    },
    /// The connection is gone for good.
    Closed {
        /// `None` when closed by the user; otherwise what ended it.
        error: Option<ClientError>,
    },
}

impl ConnectionState {
    /// True when requests can be sent now.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}

/// A change of connection state, as broadcast by [`Client::events`].
#[derive(Clone, Debug)]
pub enum ConnectionEvent {
    /// The connection was lost; reconnecting.
    Lost {
        /// Why.
        error: ClientError,
    },
    /// One reconnect attempt failed.
    ReconnectFailed {
        /// Which attempt.
        attempt: u32,
        /// Why it failed.
        error: ClientError,
    },
    /// A new connection was accepted and subscriptions re-established.
    Reconnected {
        /// The attempt that succeeded.
        attempt: u32,
        /// Subscriptions re-established.
        resubscribed: usize,
        /// Subscriptions the router refused this time (their handles have
        /// ended with the router's error).
        failed: usize,
    },
    /// The client is closed for good.
    Closed {
        /// `None` when closed by the user.
        error: Option<ClientError>,
    },
}

/// Where the client stands; drives what requests are allowed.
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    Connected,
    /// Connected again after a loss, resubscriptions in progress.
    Resubscribing {
        attempt: u32,
    },
    Reconnecting {
        attempt: u32,
    },
    Closing,
    Closed(Option<ClientError>),
}

/// A subscription as the client remembers it (for routing and for
/// re-establishing it after a reconnect).
pub(crate) struct SubEntry {
    pub(crate) expression: String,
    pub(crate) accept_insecure: bool,
    pub(crate) keys: Keys,
    pub(crate) queue: Arc<DeliveryQueue>,
    /// True when the queue belongs to this subscription alone (ended with
    /// it); false for the blocking client's shared queue.
    pub(crate) owns_queue: bool,
    pub(crate) status: SubStatus,
}

/// Where a subscription stands with the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubStatus {
    /// SubAddRqst sent under this xid, no reply yet.
    Adding(i32),
    /// The router knows it under this id.
    Live(i64),
    /// The connection was lost; to be re-sent after reconnecting.
    NeedsResubscribe,
    /// Re-sent under this xid, no reply yet.
    Resubscribing(i32),
}

/// What the reader does when the reply to a request arrives.
#[derive(Debug)]
pub(crate) enum PendingAction {
    /// Nothing beyond completing the caller.
    Plain,
    /// A new subscription: record its router id.
    SubAdd(SubscriptionId),
    /// A subscription re-sent after reconnecting.
    Resubscribe(SubscriptionId),
    /// A change: record what changed.
    SubMod {
        local: SubscriptionId,
        expression: Option<String>,
        accept_insecure: bool,
        add_keys: Keys,
        del_keys: Keys,
    },
    /// A removal: forget the subscription.
    SubDel(SubscriptionId),
    /// A key change: record the connection's new keys.
    Sec(KeyChange),
    /// A close.
    Disconn,
    /// A subscription whose requester gave up: unsubscribe when the
    /// SubRply arrives.
    AbandonedSubAdd,
}

impl PendingAction {
    /// The reply packet this request expects.
    pub(crate) fn expected_reply(&self) -> &'static str {
        match self {
            PendingAction::Plain
            | PendingAction::SubAdd(_)
            | PendingAction::Resubscribe(_)
            | PendingAction::SubMod { .. }
            | PendingAction::SubDel(_)
            | PendingAction::AbandonedSubAdd => "SubRply",
            PendingAction::Sec(_) => "SecRply",
            PendingAction::Disconn => "DisconnRply",
        }
    }
}

/// What a successful reply carried.
#[derive(Debug)]
pub(crate) enum Reply {
    Sub,
    Sec,
    Disconn,
}

/// A request waiting for its reply.
pub(crate) struct Pending {
    /// The request's packet name, for messages.
    pub(crate) request: &'static str,
    /// Completes the caller; `None` when nobody waits (cleanup requests).
    pub(crate) reply: Option<oneshot::Sender<Result<Reply, ClientError>>>,
    pub(crate) action: PendingAction,
}

/// The state shared by the API and the connection task.
pub(crate) struct Shared {
    pub(crate) phase: Phase,
    /// The current connection's sending side, while there is one.
    pub(crate) link: Option<Arc<Link>>,
    /// Bumped for every new connection, so work started for an old one can
    /// tell it is stale.
    pub(crate) generation: u64,
    next_xid: i32,
    pub(crate) pending: HashMap<i32, Pending>,
    pub(crate) subs: HashMap<SubscriptionId, SubEntry>,
    pub(crate) by_router_id: HashMap<i64, SubscriptionId>,
    next_sub: u64,
    /// The connection keys as they stand now (initial keys plus every
    /// accepted SecRqst), re-sent on reconnect.
    pub(crate) notification_keys: Keys,
    pub(crate) subscription_keys: Keys,
    pub(crate) test_waiters: Vec<oneshot::Sender<()>>,
}

impl Shared {
    /// A fresh, non-zero xid not used by any outstanding request.
    pub(crate) fn allocate_xid(&mut self, uri: &str) -> Result<i32, ClientError> {
        if self.pending.len() >= MAX_PENDING {
            return Err(ClientError::TooManyPending {
                limit: MAX_PENDING,
                uri: uri.to_owned(),
            });
        }
        loop {
            let xid = self.next_xid;
            self.next_xid = xid.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&xid) {
                return Ok(xid);
            }
        }
    }

    /// Registers a request with no waiting caller and returns its frame
    /// (for cleanup unsubscribes); `None` if the xid space is exhausted.
    pub(crate) fn quiet_request(
        &mut self,
        uri: &str,
        build: impl FnOnce(i32) -> Packet,
    ) -> Option<Vec<u8>> {
        let xid = self.allocate_xid(uri).ok()?;
        let packet = build(xid);
        let mut frame = Vec::new();
        packet.encode(&mut frame);
        self.pending.insert(
            xid,
            Pending {
                request: packet.name(),
                reply: None,
                action: PendingAction::Plain,
            },
        );
        Some(frame)
    }
}

/// One encoded frame waiting for the writer, holding its share of the
/// send budget until written.
pub(crate) struct OutFrame {
    pub(crate) bytes: Vec<u8>,
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// The sending side of one connection.
pub(crate) struct Link {
    pub(crate) frames: mpsc::UnboundedSender<OutFrame>,
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) budget_total: usize,
    pub(crate) max_packet: usize,
    pub(crate) negotiated: NegotiatedOptions,
    /// Wakes the writer for the control flags below.
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) confconn_due: AtomicBool,
    pub(crate) testconn_due: AtomicBool,
}

impl Link {
    /// Queues a frame after waiting (until `deadline`) for room in the send
    /// budget.
    pub(crate) async fn send(
        &self,
        bytes: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
        uri: &str,
    ) -> Result<(), ClientError> {
        let wanted = u32::try_from(bytes.len().clamp(1, self.budget_total)).unwrap_or(u32::MAX);
        let permit =
            tokio::time::timeout_at(deadline, self.budget.clone().acquire_many_owned(wanted))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: TimeoutKind::Write,
                    after: timeout,
                    uri: uri.to_owned(),
                })?
                .map_err(|_| lost(uri))?;
        self.frames
            .send(OutFrame {
                bytes,
                _permit: Some(permit),
            })
            .map_err(|_| lost(uri))
    }

    /// Queues a small control frame without waiting for budget.
    pub(crate) fn send_now(&self, bytes: Vec<u8>) {
        let _ = self.frames.send(OutFrame {
            bytes,
            _permit: None,
        });
    }
}

fn lost(uri: &str) -> ClientError {
    ClientError::Closed {
        mid_frame: false,
        uri: uri.to_owned(),
    }
}

/// Everything behind a [`Client`].
pub(crate) struct Inner {
    pub(crate) config: Config,
    shared: Mutex<Shared>,
    pub(crate) state_tx: watch::Sender<ConnectionState>,
    pub(crate) events_tx: broadcast::Sender<ConnectionEvent>,
    /// Wakes the connection task to stop.
    pub(crate) shutdown: tokio::sync::Notify,
    pub(crate) shutdown_requested: AtomicBool,
    /// True when the stop comes from [`Client::close`], which has already
    /// said goodbye; false when every handle was dropped.
    pub(crate) closed_by_user: AtomicBool,
    pub(crate) drop_warnings: AtomicU64,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        // The shared state is updated in small steps that leave it
        // consistent; a panic elsewhere while holding the lock must not
        // make the whole client unusable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn uri(&self) -> &str {
        &self.config.uri_text
    }

    /// The error to report for a request made in the current phase, or
    /// the link to send it on.
    fn link(&self, shared: &Shared) -> Result<Arc<Link>, ClientError> {
        match (&shared.phase, &shared.link) {
            (Phase::Connected | Phase::Resubscribing { .. }, Some(link)) => Ok(link.clone()),
            _ => Err(self.unavailable(shared)),
        }
    }

    /// Why no request can be sent now.
    pub(crate) fn unavailable(&self, shared: &Shared) -> ClientError {
        match &shared.phase {
            Phase::Reconnecting { attempt } | Phase::Resubscribing { attempt } => {
                ClientError::NotConnected {
                    attempt: *attempt,
                    uri: self.uri().to_owned(),
                }
            }
            Phase::Closed(Some(error)) => ClientError::ConnectionLost(Box::new(error.clone())),
            Phase::Closed(None) | Phase::Closing => ClientError::ClientClosed,
            Phase::Connected => lost(self.uri()),
        }
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
        self.shutdown.notify_one();
    }

    /// Sends a request on `link` and waits for its reply.
    async fn request_on(
        &self,
        link: &Link,
        build: impl FnOnce(i32) -> Packet,
        action: PendingAction,
        timeout_kind: TimeoutKind,
        timeout: Duration,
        on_xid: impl FnOnce(&mut Shared, i32),
    ) -> Result<Reply, ClientError> {
        let deadline = deadline_after(Instant::now(), timeout);
        let (tx, rx) = oneshot::channel();
        let (xid, frame) = {
            let mut shared = self.lock();
            let xid = shared.allocate_xid(self.uri())?;
            let packet = build(xid);
            let mut frame = Vec::new();
            packet.try_encode(&mut frame, link.max_packet)?;
            shared.pending.insert(
                xid,
                Pending {
                    request: packet.name(),
                    reply: Some(tx),
                    action,
                },
            );
            on_xid(&mut shared, xid);
            (xid, frame)
        };
        let mut guard = PendingGuard {
            inner: self,
            xid,
            armed: true,
        };
        let timeout_error = || ClientError::Timeout {
            what: timeout_kind,
            after: timeout,
            uri: self.uri().to_owned(),
        };
        if let Err(error) = link.send(frame, deadline, timeout, self.uri()).await {
            // Never sent, so no reply will come: forget the request.
            self.lock().pending.remove(&xid);
            guard.armed = false;
            return Err(error);
        }
        let outcome = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            // The connection task dropped the request: the connection ended.
            Ok(Err(_)) => Err(self.unavailable(&self.lock())),
            Err(_) => Err(timeout_error()),
        };
        if !matches!(outcome, Err(ClientError::Timeout { .. })) {
            guard.armed = false;
        }
        outcome
    }

    /// Sends a request on the current connection and waits for its reply.
    async fn request(
        &self,
        build: impl FnOnce(i32) -> Packet,
        action: PendingAction,
        timeout_kind: TimeoutKind,
        on_xid: impl FnOnce(&mut Shared, i32),
    ) -> Result<Reply, ClientError> {
        let link = self.link(&self.lock())?;
        let timeout = self.config.options.request_timeout;
        self.request_on(&link, build, action, timeout_kind, timeout, on_xid)
            .await
    }

    /// Forgets a subscription: ends its queue, and tells the router if it
    /// knows it (without waiting for the answer). Used when a handle is
    /// dropped and when a subscribe is abandoned.
    pub(crate) fn discard_subscription(&self, local: SubscriptionId) {
        let mut shared = self.lock();
        let Some(entry) = shared.subs.remove(&local) else {
            return;
        };
        if entry.owns_queue {
            entry.queue.end(Ended::Normally);
        }
        match entry.status {
            SubStatus::Live(router_id) => {
                shared.by_router_id.remove(&router_id);
                if let Some(link) = shared.link.clone() {
                    let uri = self.config.uri_text.clone();
                    if let Some(frame) = shared.quiet_request(&uri, |xid| {
                        Packet::SubDelRqst(SubDelRqst {
                            xid,
                            subscription_id: router_id,
                        })
                    }) {
                        tracing::debug!(subscription = %local, router_id, "unsubscribing a dropped subscription");
                        link.send_now(frame);
                    }
                }
            }
            SubStatus::Adding(xid) | SubStatus::Resubscribing(xid) => {
                if let Some(pending) = shared.pending.get_mut(&xid) {
                    pending.action = PendingAction::AbandonedSubAdd;
                }
            }
            SubStatus::NeedsResubscribe => {}
        }
    }

    /// Adds a subscription, delivering into `queue`.
    pub(crate) async fn subscribe_into(
        self: &Arc<Self>,
        expression: &str,
        options: &SubscribeOptions,
        queue: Arc<DeliveryQueue>,
        owns_queue: bool,
    ) -> Result<SubscriptionId, ClientError> {
        let local = {
            let mut shared = self.lock();
            let local = SubscriptionId(shared.next_sub);
            shared.next_sub = shared.next_sub.saturating_add(1);
            local
        };
        let mut guard = SubscribeGuard {
            inner: self,
            local,
            armed: true,
        };
        let entry = SubEntry {
            expression: expression.to_owned(),
            accept_insecure: options.accept_insecure,
            keys: options.keys.clone(),
            queue,
            owns_queue,
            status: SubStatus::NeedsResubscribe,
        };
        let mut entry = Some(entry);
        let reply = self
            .request(
                |xid| {
                    Packet::SubAddRqst(SubAddRqst {
                        xid,
                        expression: expression.to_owned(),
                        accept_insecure: options.accept_insecure,
                        keys: options.keys.clone(),
                    })
                },
                PendingAction::SubAdd(local),
                TimeoutKind::Request("SubAddRqst"),
                |shared, xid| {
                    if let Some(mut entry) = entry.take() {
                        entry.status = SubStatus::Adding(xid);
                        shared.subs.insert(local, entry);
                    }
                },
            )
            .await;
        match reply {
            Ok(Reply::Sub) => {
                guard.armed = false;
                Ok(local)
            }
            Ok(_) => Err(lost(self.uri())),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn router_id(&self, local: SubscriptionId) -> Option<i64> {
        match self.lock().subs.get(&local)?.status {
            SubStatus::Live(id) => Some(id),
            _ => None,
        }
    }

    pub(crate) fn expression(&self, local: SubscriptionId) -> Option<String> {
        Some(self.lock().subs.get(&local)?.expression.clone())
    }

    pub(crate) async fn modify(
        &self,
        local: SubscriptionId,
        change: SubscriptionChange,
    ) -> Result<(), ClientError> {
        let (router_id, accept_insecure) = {
            let shared = self.lock();
            let entry = shared
                .subs
                .get(&local)
                .ok_or(ClientError::SubscriptionEnded)?;
            match entry.status {
                SubStatus::Live(id) => {
                    (id, change.accept_insecure.unwrap_or(entry.accept_insecure))
                }
                _ => return Err(self.unavailable(&shared)),
            }
        };
        let SubscriptionChange {
            expression,
            add_keys,
            del_keys,
            ..
        } = change;
        // An empty expression means "keep" on the wire.
        let expression = expression.filter(|e| !e.is_empty());
        let packet_expression = expression.clone().unwrap_or_default();
        let packet_add = add_keys.clone();
        let packet_del = del_keys.clone();
        self.request(
            |xid| {
                Packet::SubModRqst(SubModRqst {
                    xid,
                    subscription_id: router_id,
                    expression: packet_expression,
                    accept_insecure,
                    add_keys: packet_add,
                    del_keys: packet_del,
                })
            },
            PendingAction::SubMod {
                local,
                expression,
                accept_insecure,
                add_keys,
                del_keys,
            },
            TimeoutKind::Request("SubModRqst"),
            |_, _| {},
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn remove(&self, local: SubscriptionId) -> Result<(), ClientError> {
        let router_id = {
            let shared = self.lock();
            match shared.subs.get(&local).map(|e| e.status) {
                None => return Ok(()),
                Some(SubStatus::Live(id)) if shared.link.is_some() => Some(id),
                Some(_) => None,
            }
        };
        let Some(router_id) = router_id else {
            // The router does not know it (reconnecting): forget it locally.
            self.discard_subscription(local);
            return Ok(());
        };
        let result = self
            .request(
                |xid| {
                    Packet::SubDelRqst(SubDelRqst {
                        xid,
                        subscription_id: router_id,
                    })
                },
                PendingAction::SubDel(local),
                TimeoutKind::Request("SubDelRqst"),
                |_, _| {},
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(ClientError::NotConnected { .. }) => {
                self.discard_subscription(local);
                Ok(())
            }
            Err(error) => {
                // Whatever the router said, the caller wants it gone.
                self.discard_subscription(local);
                Err(error)
            }
        }
    }
}

/// Cleans up a request whose caller stopped waiting (timeout or a dropped
/// future): the reply, if it still comes, is ignored, and a subscription
/// it would have created is removed.
struct PendingGuard<'a> {
    inner: &'a Inner,
    xid: i32,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut shared = self.inner.lock();
        if let Some(pending) = shared.pending.get_mut(&self.xid) {
            pending.reply = None;
            if matches!(pending.action, PendingAction::SubAdd(_)) {
                pending.action = PendingAction::AbandonedSubAdd;
            }
        }
    }
}

/// Removes a subscription that `subscribe` did not hand to its caller.
struct SubscribeGuard<'a> {
    inner: &'a Inner,
    local: SubscriptionId,
    armed: bool,
}

impl Drop for SubscribeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.discard_subscription(self.local);
        }
    }
}

/// Encodes a NotifyEmit (or, with a version, a UNotify) frame straight from
/// borrowed attributes, checking the size first.
pub(crate) fn encode_notification(
    attributes: &Attributes,
    deliver_insecure: bool,
    keys: &Keys,
    unotify: bool,
    max_len: usize,
) -> Result<Vec<u8>, EncodeError> {
    let pairs = || {
        attributes
            .iter()
            .map(|(name, value)| (name, value.as_ref()))
    };
    let version_len = if unotify { 8 } else { 0 };
    let length = 4 + version_len + xdr::name_values_len(pairs()) + 4 + keys.encoded_len();
    let packet = if unotify { "UNotify" } else { "NotifyEmit" };
    let max = max_len.min(i32::MAX as usize);
    if length > max {
        return Err(EncodeError::TooLarge {
            packet,
            length,
            max,
        });
    }
    let mut out = Vec::with_capacity(4 + length);
    xdr::put_u32(&mut out, u32::try_from(length).unwrap_or(u32::MAX));
    if unotify {
        xdr::put_i32(&mut out, <UNotify as Message>::ID);
        xdr::put_i32(&mut out, CLIENT_MAJOR);
        xdr::put_i32(&mut out, CLIENT_MINOR);
    } else {
        xdr::put_i32(&mut out, <NotifyEmit as Message>::ID);
    }
    xdr::put_name_values(&mut out, pairs());
    xdr::put_bool(&mut out, deliver_insecure);
    keys.encode(&mut out);
    Ok(out)
}

/// Keeps the connection task alive while any [`Client`] clone or
/// [`Subscription`] exists; when the last goes, the task says goodbye to
/// the router and stops.
struct ClientHandle {
    inner: Arc<Inner>,
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.inner.request_shutdown();
    }
}

/// An Elvin client connection.
///
/// Cheap to clone: clones share the connection. The connection stays open
/// while any clone or any [`Subscription`] from it exists, or until
/// [`Client::close`].
#[derive(Clone)]
pub struct Client {
    handle: Arc<ClientHandle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.inner().config.uri_text)
            .field("state", &*self.inner().state_tx.borrow())
            .finish()
    }
}

impl Client {
    /// Connects to the router at `uri` (`"elvin://host:port"`,
    /// `"elvin:/secure/host:port"` or an [`ElvinUri`]).
    ///
    /// Opens TCP (and TLS), sends a ConnRqst with the requested options and
    /// connection keys, and returns once the router's ConnRply arrives. With
    /// [`ConnectOptions::reconnect`], failures to reach the router are
    /// retried like later reconnects ("register with retry"); refusals
    /// (a Nack, bad settings) are returned at once.
    pub async fn connect(
        uri: impl IntoElvinUri,
        options: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let uri = uri.into_elvin_uri()?;
        let config = Config::new(uri, options)?;
        let reconnect = config.options.reconnect;
        let (notification_keys, subscription_keys) = (
            config.options.notification_keys.clone(),
            config.options.subscription_keys.clone(),
        );
        let (state_tx, _) = watch::channel(ConnectionState::Connected);
        let (events_tx, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            config,
            shared: Mutex::new(Shared {
                phase: Phase::Connected,
                link: None,
                generation: 0,
                next_xid: 1,
                pending: HashMap::new(),
                subs: HashMap::new(),
                by_router_id: HashMap::new(),
                next_sub: 1,
                notification_keys,
                subscription_keys,
                test_waiters: Vec::new(),
            }),
            state_tx,
            events_tx,
            shutdown: tokio::sync::Notify::new(),
            shutdown_requested: AtomicBool::new(false),
            closed_by_user: AtomicBool::new(false),
            drop_warnings: AtomicU64::new(0),
            task: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
        });

        let mut attempt: u32 = 0;
        let established = loop {
            match session::establish_for(&inner).await {
                Ok(established) => break established,
                Err(error) => {
                    let retry = match reconnect {
                        Some(policy) if session::is_retryable(&error) => {
                            policy.max_retries.is_none_or(|max| attempt < max)
                        }
                        _ => false,
                    };
                    if !retry {
                        return Err(error);
                    }
                    attempt = attempt.saturating_add(1);
                    let interval = reconnect.map(|r| r.retry_interval).unwrap_or_default();
                    tracing::warn!(
                        uri = %inner.uri(),
                        attempt,
                        error = %error,
                        "could not connect; retrying in {interval:?}"
                    );
                    tokio::time::sleep(interval).await;
                }
            }
        };
        let task = session::start(&inner, established);
        *inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Client {
            handle: Arc::new(ClientHandle { inner }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The router's URI.
    pub fn uri(&self) -> &ElvinUri {
        &self.inner().config.uri
    }

    /// The options the router granted on the current connection (`None`
    /// while disconnected).
    pub fn negotiated(&self) -> Option<NegotiatedOptions> {
        self.inner()
            .lock()
            .link
            .as_ref()
            .map(|link| link.negotiated.clone())
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        self.inner().state_tx.borrow().clone()
    }

    /// A watch that always holds the latest state.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.inner().state_tx.subscribe()
    }

    /// A stream of state-change events from now on. It holds the last 64
    /// events; a receiver that falls further behind skips the oldest.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner().events_tx.subscribe()
    }

    /// How many DropWarn packets the router has sent (each means it
    /// dropped packets for this client because it was not reading fast
    /// enough).
    pub fn drop_warnings(&self) -> u64 {
        self.inner().drop_warnings.load(Ordering::Relaxed)
    }

    /// Subscribes to notifications matching `expression` and waits for the
    /// router to accept it.
    pub async fn subscribe(
        &self,
        expression: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        let inner = self.inner();
        let capacity = options
            .capacity
            .unwrap_or(inner.config.options.delivery_capacity);
        let queue = DeliveryQueue::new(capacity, expression.chars().take(80).collect());
        let id = inner
            .subscribe_into(expression, &options, queue.clone(), true)
            .await?;
        Ok(Subscription {
            client: self.clone(),
            id,
            queue,
        })
    }

    /// Subscribes and calls `callback` for each notification, on the
    /// client's runtime. The callback runs on a runtime thread, so it should
    /// be quick; hand long work to another thread or task. The returned
    /// handle controls the subscription; dropping it unsubscribes.
    pub async fn subscribe_with<F>(
        &self,
        expression: &str,
        options: SubscribeOptions,
        callback: F,
    ) -> Result<CallbackSubscription, ClientError>
    where
        F: FnMut(Notification) + Send + 'static,
    {
        Ok(self
            .subscribe(expression, options)
            .await?
            .on_notification(callback))
    }

    /// Sends a notification (NotifyEmit). There is no reply; the call
    /// returns once the packet is queued for the socket, waiting (up to the
    /// request timeout) if the send buffer is full.
    ///
    /// `deliver_insecure` lets the router deliver it to subscriptions
    /// without matching keys; `keys` are the notification's own keys.
    pub async fn notify(
        &self,
        attributes: &Attributes,
        deliver_insecure: bool,
        keys: &Keys,
    ) -> Result<(), ClientError> {
        let frame = self.encode_notify(attributes, deliver_insecure, keys)?;
        self.send_encoded(frame).await
    }

    /// Encodes a NotifyEmit for the current connection's size limit.
    pub(crate) fn encode_notify(
        &self,
        attributes: &Attributes,
        deliver_insecure: bool,
        keys: &Keys,
    ) -> Result<Vec<u8>, ClientError> {
        let inner = self.inner();
        let link = inner.link(&inner.lock())?;
        Ok(encode_notification(
            attributes,
            deliver_insecure,
            keys,
            false,
            link.max_packet,
        )?)
    }

    /// Queues an encoded frame on the current connection.
    pub(crate) async fn send_encoded(&self, frame: Vec<u8>) -> Result<(), ClientError> {
        let inner = self.inner();
        let link = inner.link(&inner.lock())?;
        let timeout = inner.config.options.request_timeout;
        link.send(
            frame,
            deadline_after(Instant::now(), timeout),
            timeout,
            inner.uri(),
        )
        .await
    }

    /// Changes the connection's keys (SecRqst) and waits for the router to
    /// accept the change. The new keys are also used after a reconnect.
    pub async fn set_keys(&self, change: KeyChange) -> Result<(), ClientError> {
        let packet_change = change.clone();
        self.inner()
            .request(
                |xid| {
                    Packet::SecRqst(SecRqst {
                        xid,
                        add_notification_keys: packet_change.add_notification_keys,
                        del_notification_keys: packet_change.del_notification_keys,
                        add_subscription_keys: packet_change.add_subscription_keys,
                        del_subscription_keys: packet_change.del_subscription_keys,
                    })
                },
                PendingAction::Sec(change),
                TimeoutKind::Request("SecRqst"),
                |_, _| {},
            )
            .await
            .map(|_| ())
    }

    /// Checks that the router is alive: sends a TestConn and waits (up to
    /// the request timeout) for its ConfConn. Returns the round-trip time.
    ///
    /// A router skips the ConfConn when it already has packets queued for
    /// this client, so any packet arriving after the TestConn counts as an
    /// answer.
    pub async fn test_connection(&self) -> Result<Duration, ClientError> {
        let inner = self.inner();
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let link = {
            let mut shared = inner.lock();
            let link = inner.link(&shared)?;
            shared.test_waiters.retain(|waiter| !waiter.is_closed());
            shared.test_waiters.push(tx);
            link
        };
        link.testconn_due.store(true, Ordering::SeqCst);
        link.wake.notify_one();
        let timeout = inner.config.options.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err(inner.unavailable(&inner.lock())),
            Err(_) => Err(ClientError::Timeout {
                what: TimeoutKind::TestConn,
                after: timeout,
                uri: inner.uri().to_owned(),
            }),
        }
    }

    /// Closes the connection: sends DisconnRqst, waits (up to the close
    /// timeout) for the router's DisconnRply, then closes the socket and
    /// ends every subscription. Returns a timeout error if the router did
    /// not confirm, but the connection is closed either way. Closing an
    /// already closed client does nothing.
    pub async fn close(&self) -> Result<(), ClientError> {
        let inner = self.inner();
        let link = {
            let mut shared = inner.lock();
            match shared.phase {
                Phase::Closed(_) | Phase::Closing => return Ok(()),
                _ => {}
            }
            shared.phase = Phase::Closing;
            shared.link.clone()
        };
        inner.closed_by_user.store(true, Ordering::SeqCst);
        let timeout = inner.config.options.close_timeout;
        let result = match link {
            Some(link) => inner
                .request_on(
                    &link,
                    |xid| Packet::DisconnRqst(DisconnRqst { xid }),
                    PendingAction::Disconn,
                    TimeoutKind::Close,
                    timeout,
                    |_, _| {},
                )
                .await
                .map(|_| ()),
            None => Ok(()),
        };
        inner.request_shutdown();
        let task = inner.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            // The task only has to tear down local state now; the bound is
            // a safety net.
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!(uri = %inner.uri(), "connection task did not stop in time");
            }
        }
        session::finalize(inner, None);
        match result {
            // The router may close the socket right after DisconnRply,
            // before our reader saw the reply in rare orderings; that is
            // still a clean close.
            Err(ClientError::Closed { .. }) | Err(ClientError::ClientClosed) => Ok(()),
            other => other,
        }
    }

    /// True once the client is closed for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.state(), ConnectionState::Closed { .. })
    }
}

/// A subscription: a stream of the notifications that match it.
///
/// Read it with [`Subscription::recv`] or as a [`futures_core::Stream`].
/// Dropping it unsubscribes in the background (a SubDelRqst is sent
/// without waiting); [`Subscription::remove`] does it and waits for the
/// router. With automatic reconnect, the handle survives reconnects.
pub struct Subscription {
    client: Client,
    id: SubscriptionId,
    queue: Arc<DeliveryQueue>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("router_id", &self.router_id())
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Subscription {
    pub(crate) fn from_parts(
        client: Client,
        id: SubscriptionId,
        queue: Arc<DeliveryQueue>,
    ) -> Self {
        Subscription { client, id, queue }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The client-local id, stable across reconnects.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The id the router currently knows this subscription by (`None`
    /// while reconnecting or after it ended).
    pub fn router_id(&self) -> Option<i64> {
        self.client.inner().router_id(self.id)
    }

    /// The current expression (`None` after the subscription ended).
    pub fn expression(&self) -> Option<String> {
        self.client.inner().expression(self.id)
    }

    /// The next matching notification; `None` once the subscription has
    /// ended (see [`Subscription::end_reason`]). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Notification> {
        std::future::poll_fn(|cx| self.queue.poll_recv(cx)).await
    }

    /// The next notification if one is queued. `Ok(None)` means none yet;
    /// an error means the subscription has ended and says why.
    pub fn try_recv(&mut self) -> Result<Option<Notification>, ClientError> {
        self.queue.try_pop().map_err(ended_error)
    }

    /// Notifications discarded because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Why the subscription ended: `None` while it is live, then the
    /// error ([`ClientError::SubscriptionEnded`] for a normal end).
    pub fn end_reason(&self) -> Option<ClientError> {
        self.queue.ended().map(ended_error)
    }

    /// Changes the expression, insecure-delivery flag or keys, and waits
    /// for the router to accept. On a Nack the subscription is unchanged.
    pub async fn modify(&self, change: SubscriptionChange) -> Result<(), ClientError> {
        self.client.inner().modify(self.id, change).await
    }

    /// Unsubscribes and waits for the router to confirm. The subscription
    /// is forgotten locally whatever the router answers.
    pub async fn remove(self) -> Result<(), ClientError> {
        self.client.inner().remove(self.id).await
    }

    /// Hands the subscription to a task on the client's runtime that calls
    /// `callback` for each notification.
    pub fn on_notification<F>(self, mut callback: F) -> CallbackSubscription
    where
        F: FnMut(Notification) + Send + 'static,
    {
        let client = self.client.clone();
        let id = self.id;
        let queue = self.queue.clone();
        let mut subscription = self;
        let task = client.inner().runtime.spawn(async move {
            while let Some(notification) = subscription.recv().await {
                callback(notification);
            }
        });
        CallbackSubscription {
            client,
            id,
            queue,
            task,
        }
    }
}

fn ended_error(ended: Ended) -> ClientError {
    match ended {
        Ended::Normally => ClientError::SubscriptionEnded,
        Ended::Failed(error) => error,
    }
}

impl futures_core::Stream for Subscription {
    type Item = Notification;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        self.queue.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client.inner().discard_subscription(self.id);
    }
}

/// A subscription whose notifications go to a callback (see
/// [`Client::subscribe_with`]). Dropping it stops the callbacks and
/// unsubscribes.
pub struct CallbackSubscription {
    client: Client,
    id: SubscriptionId,
    queue: Arc<DeliveryQueue>,
    task: JoinHandle<()>,
}

impl CallbackSubscription {
    /// The client-local id.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Notifications discarded because the callback fell behind.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// True once the subscription has ended and every queued notification
    /// has been handed to the callback.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Changes the subscription (see [`Subscription::modify`]).
    pub async fn modify(&self, change: SubscriptionChange) -> Result<(), ClientError> {
        self.client.inner().modify(self.id, change).await
    }

    /// Unsubscribes, waits for the router, and stops the callbacks.
    pub async fn remove(self) -> Result<(), ClientError> {
        self.client.inner().remove(self.id).await
    }
}

impl Drop for CallbackSubscription {
    fn drop(&mut self) {
        self.task.abort();
        self.client.inner().discard_subscription(self.id);
    }
}

/// Sends one notification without a session (UNotify): opens a
/// connection, writes the packet, and closes. The router sends nothing
/// back, so success means only that the packet was written. Uses the
/// connect timeout and TLS settings of `options`; the size limit is the
/// protocol default (2 MiB), as no options are negotiated.
pub async fn unotify(
    uri: impl IntoElvinUri,
    options: &ConnectOptions,
    attributes: &Attributes,
    deliver_insecure: bool,
    keys: &Keys,
) -> Result<(), ClientError> {
    use tokio::io::AsyncWriteExt;

    let config = Config::new(uri.into_elvin_uri()?, options.clone())?;
    let frame = encode_notification(
        attributes,
        deliver_insecure,
        keys,
        true,
        elvin_proto::DEFAULT_MAX_PACKET_LENGTH,
    )?;
    let deadline = deadline_after(Instant::now(), options.connect_timeout);
    let mut stream = crate::transport::open_stream(&config, deadline).await?;
    let uri = &config.uri_text;
    let write = async {
        stream.write_all(&frame).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    tokio::time::timeout_at(deadline, write)
        .await
        .map_err(|_| ClientError::Timeout {
            what: TimeoutKind::Write,
            after: options.connect_timeout,
            uri: uri.clone(),
        })?
        .map_err(|e| ClientError::io(uri, e))
}

/// Builds the error for a Nack answering `request`.
pub(crate) fn nack_error(request: &'static str, nack: elvin_proto::Nack) -> ClientError {
    ClientError::Nack(NackError::new(request, nack.error, nack.message, nack.args))
}
