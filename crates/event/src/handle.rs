//! [`EventHandle`]: the async face of the library (tokio).
//!
//! A handle is one connection to an event router plus, optionally, the
//! experiment's key. It is the original library's "registered handle":
//!
//! - **register** ([`EventHandle::register`], `_with_keyfile`,
//!   `_with_retry`, or [`EventHandle::register_with`] and
//!   [`RegisterOptions`] for everything) connects, loads the key and picks
//!   the `___SENDER___` address ([`crate::sender`]);
//! - **subscribe** to an [`AddressTuple`] as a stream
//!   ([`EventHandle::subscribe`], an [`EventSubscription`] that is also a
//!   `futures_core::Stream`) or with a callback
//!   ([`EventHandle::subscribe_with`]);
//! - **notify** sends now, **schedule** sends a request to the
//!   experiment's scheduler;
//! - **unregister** closes the connection.
//!
//! # Keys
//!
//! A handle with a key signs every notification it sends unless the
//! notification is unchanged since this key signed or verified it (see
//! [`EventNotification::has_hmac`]), and checks every notification it
//! receives: one whose `__hmac__` is missing or wrong is dropped with a
//! `tracing` warning and counted ([`EventSubscription::rejected`]); the
//! stream or callback never sees it. A handle without a key neither signs
//! nor checks, which is what relays need: they forward the producer's
//! signature untouched.
//!
//! Handles are cheap to clone; clones share the connection.

use std::net::Ipv4Addr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use elvin_client::{
    CallbackSubscription, Client, ConnectOptions, Keys, Notification, Reconnect, SubscribeOptions,
    Subscription,
};
use elvin_proto::{Attributes, ElvinUri};

use crate::auth::EventKey;
use crate::error::EventError;
use crate::notification::{EventNotification, FiringTime};
use crate::sender::{self, SenderAddress, SenderSource};
use crate::tuple::AddressTuple;

/// How to register: key, reconnect policy, client settings, sender.
#[derive(Clone, Debug, Default)]
pub struct RegisterOptions {
    pub(crate) key: Option<EventKey>,
    pub(crate) retry: Option<Reconnect>,
    pub(crate) connect: ConnectOptions,
    pub(crate) sender: Option<Ipv4Addr>,
}

impl RegisterOptions {
    /// No key, no retry, default client settings, sender discovered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sign and verify with `key`.
    pub fn key(mut self, key: EventKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sign and verify with the key in `path` (see
    /// [`EventKey::from_file`]).
    pub fn key_file(self, path: impl AsRef<Path>) -> Result<Self, EventError> {
        Ok(self.key(EventKey::from_file(path)?))
    }

    /// Retry an unreachable router, and reconnect after a lost connection,
    /// with this policy (the original's "register with retry"; see
    /// [`elvin_client::Reconnect`]).
    pub fn retry(mut self, retry: Reconnect) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Client settings (timeouts, TLS, queue sizes). A retry policy set
    /// with [`RegisterOptions::retry`] is applied on top.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.connect = options;
        self
    }

    /// Use this `___SENDER___` address instead of discovering one.
    pub fn sender(mut self, address: Ipv4Addr) -> Self {
        self.sender = Some(address);
        self
    }

    pub(crate) fn client_options(&self) -> ConnectOptions {
        match self.retry {
            Some(retry) => self.connect.clone().reconnect(retry),
            None => self.connect.clone(),
        }
    }
}

/// Builds the `elvin://host[:port]` URI the original tools use (no port:
/// the Elvin default, 2917).
pub fn server_uri(host: &str, port: Option<u16>) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match port {
        Some(port) => format!("elvin://{host}:{port}"),
        None => format!("elvin://{host}"),
    }
}

/// Chooses the sender address for `uri`, off the async runtime when one
/// is running (it may resolve names).
pub(crate) async fn discover_sender_async(
    uri: &ElvinUri,
    explicit: Option<Ipv4Addr>,
) -> SenderAddress {
    if let Some(address) = explicit {
        return SenderAddress {
            address,
            source: SenderSource::Explicit,
        };
    }
    let (host, port) = (uri.host.clone(), uri.port);
    match tokio::task::spawn_blocking(move || sender::discover(&host, port)).await {
        Ok(found) => found,
        Err(_) => SenderAddress {
            address: Ipv4Addr::UNSPECIFIED,
            source: SenderSource::Unknown,
        },
    }
}

/// Checks received notifications against a handle's key.
#[derive(Clone, Debug, Default)]
pub(crate) struct Verifier {
    key: Option<Arc<EventKey>>,
    rejected: Arc<AtomicU64>,
}

impl Verifier {
    pub(crate) fn new(key: Option<Arc<EventKey>>) -> Self {
        Verifier {
            key,
            rejected: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A fresh verifier with the same key and its own rejection count.
    pub(crate) fn for_subscription(&self) -> Self {
        Verifier::new(self.key.clone())
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The notification as an event, or `None` (logged and counted) when
    /// the handle has a key and the signature is missing or wrong.
    pub(crate) fn accept(&self, notification: Notification) -> Option<EventNotification> {
        let attributes =
            Arc::try_unwrap(notification.attributes).unwrap_or_else(|shared| (*shared).clone());
        let Some(key) = &self.key else {
            return Some(EventNotification::from_attributes(attributes));
        };
        match key.verify(&attributes) {
            Ok(()) => Some(EventNotification::verified(attributes, key.id())),
            Err(error) => {
                let count = self
                    .rejected
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                let field = |name: &str| attributes.get_str(name).unwrap_or("").to_owned();
                tracing::warn!(
                    expt = %field("EXPT"),
                    objname = %field("OBJNAME"),
                    eventtype = %field("EVENTTYPE"),
                    sender = %field("___SENDER___"),
                    rejected_so_far = count,
                    "dropped an event that failed authentication: {error}"
                );
                None
            }
        }
    }
}

/// Signs `notification` for sending with `key` unless it is already
/// signed with that key and unchanged since.
pub(crate) fn sign_for_send(key: Option<&EventKey>, notification: &mut EventNotification) {
    if let Some(key) = key
        && !notification.is_signed_with(key)
    {
        notification.insert_hmac(key);
    }
}

/// A registered connection to an event router. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct EventHandle {
    client: Client,
    key: Option<Arc<EventKey>>,
    sender: SenderAddress,
    sender_text: Arc<str>,
    verifier: Verifier,
}

impl EventHandle {
    /// Connects to `server` (an Elvin URI such as `elvin://event-server`,
    /// see [`server_uri`]) without a key.
    pub async fn register(server: &str) -> Result<EventHandle, EventError> {
        Self::register_with(server, RegisterOptions::new()).await
    }

    /// Connects with the key in `keyfile`.
    pub async fn register_with_keyfile(
        server: &str,
        keyfile: impl AsRef<Path>,
    ) -> Result<EventHandle, EventError> {
        Self::register_with(server, RegisterOptions::new().key_file(keyfile)?).await
    }

    /// Connects, retrying an unreachable router and reconnecting after a
    /// lost connection according to `retry`, with the key in `keyfile` if
    /// given.
    pub async fn register_with_retry(
        server: &str,
        keyfile: Option<&Path>,
        retry: Reconnect,
    ) -> Result<EventHandle, EventError> {
        let mut options = RegisterOptions::new().retry(retry);
        if let Some(path) = keyfile {
            options = options.key_file(path)?;
        }
        Self::register_with(server, options).await
    }

    /// Connects with `options`.
    pub async fn register_with(
        server: &str,
        options: RegisterOptions,
    ) -> Result<EventHandle, EventError> {
        let uri = ElvinUri::parse(server).map_err(elvin_client::ClientError::from)?;
        let client = Client::connect(uri.clone(), options.client_options()).await?;
        let sender = discover_sender_async(&uri, options.sender).await;
        tracing::debug!(router = %uri, sender = %sender.address, source = ?sender.source, "registered");
        let key = options.key.map(Arc::new);
        Ok(EventHandle {
            client,
            verifier: Verifier::new(key.clone()),
            key,
            sender_text: sender.address.to_string().into(),
            sender,
        })
    }

    /// Closes the connection (waiting briefly for the router to confirm).
    /// Subscriptions end.
    pub async fn unregister(self) -> Result<(), EventError> {
        Ok(self.client.close().await?)
    }

    /// The Elvin client underneath (connection state, events, raw access).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key, if registered with one.
    pub fn key(&self) -> Option<&EventKey> {
        self.key.as_deref()
    }

    /// The `___SENDER___` address this handle puts on new notifications,
    /// and how it was chosen.
    pub fn sender(&self) -> SenderAddress {
        self.sender
    }

    /// A new notification for `tuple`, with this handle's sender address
    /// (see [`EventNotification::from_tuple`]).
    pub fn new_notification(&self, tuple: &AddressTuple) -> EventNotification {
        EventNotification::from_tuple(tuple, &self.sender_text)
    }

    /// Subscribes to the events `tuple` selects; read them from the
    /// returned stream.
    pub async fn subscribe(&self, tuple: &AddressTuple) -> Result<EventSubscription, EventError> {
        let expression = tuple.subscription_expression()?;
        let inner = self
            .client
            .subscribe(&expression, SubscribeOptions::default())
            .await?;
        Ok(EventSubscription {
            inner,
            verifier: self.verifier.for_subscription(),
        })
    }

    /// Subscribes and calls `callback` with each event (on the client's
    /// runtime; keep it quick). Dropping the returned handle unsubscribes.
    pub async fn subscribe_with<F>(
        &self,
        tuple: &AddressTuple,
        mut callback: F,
    ) -> Result<EventCallbackSubscription, EventError>
    where
        F: FnMut(EventNotification) + Send + 'static,
    {
        let expression = tuple.subscription_expression()?;
        let verifier = self.verifier.for_subscription();
        let checker = verifier.clone();
        let inner = self
            .client
            .subscribe_with(&expression, SubscribeOptions::default(), move |n| {
                if let Some(event) = checker.accept(n) {
                    callback(event);
                }
            })
            .await?;
        Ok(EventCallbackSubscription { inner, verifier })
    }

    /// Sends `notification` now, signing it first if this handle has a key
    /// and it is not already signed with it.
    pub async fn notify(&self, notification: &mut EventNotification) -> Result<(), EventError> {
        sign_for_send(self.key.as_deref(), notification);
        Ok(self
            .client
            .notify(notification.attributes(), true, &Keys::new())
            .await?)
    }

    /// Sends `notification` as a request to the experiment's scheduler to
    /// fire it at `when`: `SCHEDULER` = 1 and `time_sec`/`time_usec`
    /// replace any earlier values, then it is signed (with a key) and sent.
    pub async fn schedule(
        &self,
        notification: &mut EventNotification,
        when: SystemTime,
    ) -> Result<(), EventError> {
        self.schedule_at(notification, FiringTime::from_system_time(when)?)
            .await
    }

    /// [`EventHandle::schedule`] with the time already split.
    pub async fn schedule_at(
        &self,
        notification: &mut EventNotification,
        when: FiringTime,
    ) -> Result<(), EventError> {
        notification.make_schedule_request(when);
        self.notify(notification).await
    }

    /// Signs `notification` with this handle's key now, replacing any
    /// earlier signature. Needed only to re-sign explicitly; `notify`
    /// signs changed notifications by itself.
    pub fn insert_hmac(&self, notification: &mut EventNotification) -> Result<(), EventError> {
        let key = self.key.as_deref().ok_or(EventError::NoKey)?;
        notification.insert_hmac(key);
        Ok(())
    }

    /// Sends raw attributes as they are: no signing, no changes. For
    /// relays and tests.
    pub async fn notify_raw(&self, attributes: &Attributes) -> Result<(), EventError> {
        Ok(self.client.notify(attributes, true, &Keys::new()).await?)
    }
}

/// A stream of the events one subscription selects (authenticated when the
/// handle has a key). Dropping it unsubscribes.
#[derive(Debug)]
pub struct EventSubscription {
    inner: Subscription,
    verifier: Verifier,
}

impl EventSubscription {
    /// The next event; `None` once the subscription has ended.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<EventNotification> {
        loop {
            let notification = self.inner.recv().await?;
            if let Some(event) = self.verifier.accept(notification) {
                return Some(event);
            }
        }
    }

    /// The next event if one has arrived; `Ok(None)` if none has. An error
    /// means the subscription has ended.
    pub fn try_recv(&mut self) -> Result<Option<EventNotification>, EventError> {
        loop {
            match self.inner.try_recv()? {
                None => return Ok(None),
                Some(notification) => {
                    if let Some(event) = self.verifier.accept(notification) {
                        return Ok(Some(event));
                    }
                }
            }
        }
    }

    /// Events dropped because their signature was missing or wrong.
    pub fn rejected(&self) -> u64 {
        self.verifier.rejected()
    }

    /// Events discarded because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// The subscription expression (`None` once it has ended).
    pub fn expression(&self) -> Option<String> {
        self.inner.expression()
    }

    /// Why the subscription ended (for example, the connection was lost);
    /// `None` while it is live.
    pub fn end_reason(&self) -> Option<elvin_client::ClientError> {
        self.inner.end_reason()
    }

    /// Unsubscribes and waits for the router.
    pub async fn remove(self) -> Result<(), EventError> {
        Ok(self.inner.remove().await?)
    }
}

impl futures_core::Stream for EventSubscription {
    type Item = EventNotification;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(notification)) => {
                    if let Some(event) = self.verifier.accept(notification) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A subscription delivering to a callback. Dropping it unsubscribes.
pub struct EventCallbackSubscription {
    inner: CallbackSubscription,
    verifier: Verifier,
}

impl std::fmt::Debug for EventCallbackSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCallbackSubscription")
            .field("id", &self.inner.id())
            .field("rejected", &self.verifier.rejected())
            .finish()
    }
}

impl EventCallbackSubscription {
    /// Events dropped because their signature was missing or wrong.
    pub fn rejected(&self) -> u64 {
        self.verifier.rejected()
    }

    /// Events discarded because the callback fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// Unsubscribes, waits for the router and stops the callbacks.
    pub async fn remove(self) -> Result<(), EventError> {
        Ok(self.inner.remove().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_like_the_original_tools() {
        assert_eq!(server_uri("localhost", None), "elvin://localhost");
        assert_eq!(server_uri("boss", Some(2927)), "elvin://boss:2927");
        assert_eq!(server_uri("::1", Some(2917)), "elvin://[::1]:2917");
        for uri in [
            server_uri("localhost", None),
            server_uri("::1", Some(5)),
            server_uri("[::1]", None),
        ] {
            assert!(ElvinUri::parse(&uri).is_ok(), "{uri}");
        }
    }
}
