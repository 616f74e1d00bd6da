//! The client's private state: what the API ([`crate::client`]) and the
//! connection task ([`crate::session`]) share, and the request machinery
//! behind every [`Client`](crate::Client) call.
//!
//! [`Inner`] is everything behind a client: the [`Shared`] table (phase,
//! subscriptions, pending requests, under one short-held mutex) and the
//! [`Link`] to the current connection's writer. The public types in
//! `client.rs` are thin handles over it; see that module's docs for the
//! request/reply shape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use elvin_proto::{
    Attributes, EncodeError, Keys, Message, NotifyEmit, Packet, SubAddRqst, SubDelRqst, SubModRqst,
    UNotify, raw,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{ClientError, TimeoutKind};
use crate::options::{KeyChange, NegotiatedOptions, SubscribeOptions, SubscriptionChange};
use crate::queue::{DeliveryQueue, Ended, SubscriptionId};
use crate::transport::{CLIENT_MAJOR, CLIENT_MINOR, Config, deadline_after};

use crate::client::{ConnectionEvent, ConnectionState, MAX_PENDING};

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
    /// A client's state before its first connection.
    pub(crate) fn new(config: Config) -> Inner {
        let (notification_keys, subscription_keys) = (
            config.options.notification_keys.clone(),
            config.options.subscription_keys.clone(),
        );
        let (state_tx, _) = watch::channel(ConnectionState::Connected);
        let (events_tx, _) = broadcast::channel(64);
        Inner {
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
        }
    }

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
    pub(crate) fn link(&self, shared: &Shared) -> Result<Arc<Link>, ClientError> {
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
    pub(crate) async fn request_on(
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
    pub(crate) async fn request(
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
    let length = 4 + version_len + raw::name_values_len(pairs()) + 4 + keys.encoded_len();
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
    raw::put_u32(&mut out, u32::try_from(length).unwrap_or(u32::MAX));
    if unotify {
        raw::put_i32(&mut out, <UNotify as Message>::ID);
        raw::put_i32(&mut out, CLIENT_MAJOR);
        raw::put_i32(&mut out, CLIENT_MINOR);
    } else {
        raw::put_i32(&mut out, <NotifyEmit as Message>::ID);
    }
    raw::put_name_values(&mut out, pairs());
    raw::put_bool(&mut out, deliver_insecure);
    keys.encode(&mut out);
    Ok(out)
}

/// Keeps the connection task alive while any [`Client`] clone or
/// [`Subscription`] exists; when the last goes, the task says goodbye to
/// the router and stops.
pub(crate) struct ClientHandle {
    pub(crate) inner: Arc<Inner>,
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.inner.request_shutdown();
    }
}
