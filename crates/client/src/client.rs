//! The async client's public API: [`Client`], [`Subscription`],
//! [`CallbackSubscription`] and [`unotify`]. The state they share with the
//! connection task lives in [`crate::state`], after this API.
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
//! as a [`PendingAction`](crate::state::PendingAction) next to the xid and applied by the reader under
//! the same lock, so there is no window where a delivery can be lost.
//!
//! The shared state is a plain mutex held only for short, non-async
//! sections. Memory is bounded everywhere: pending requests (a fixed cap),
//! encoded frames waiting for the socket (a byte budget, a semaphore),
//! undelivered notifications (per-queue capacity, drop-oldest).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use elvin_proto::{Attributes, DisconnRqst, ElvinUri, Keys, Packet, SecRqst};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{ClientError, NackError, TimeoutKind};
use crate::options::{
    ConnectOptions, KeyChange, NegotiatedOptions, SubscribeOptions, SubscriptionChange,
};
use crate::queue::{DeliveryQueue, Ended, Notification, SubscriptionId};
use crate::session;
use crate::state::{ClientHandle, Inner, PendingAction, Phase, encode_notification};
use crate::transport::{Config, deadline_after};

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
        let inner = Arc::new(Inner::new(config));

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
