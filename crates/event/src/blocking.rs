//! [`EventHandle`] for programs without an async runtime: tools and simple
//! agents, in the style of the original C library.
//!
//! Subscriptions register callbacks; nothing runs them until the program
//! dispatches, on its own thread, with one of:
//!
//! - [`EventHandle::poll`]: runs the callbacks of events that have already
//!   arrived and returns at once (at most [`POLL_BATCH`] per call, so a
//!   flood cannot keep it from returning);
//! - [`EventHandle::poll_blocking`]: waits up to a timeout for an event,
//!   then dispatches it and whatever else has arrived;
//! - [`EventHandle::main`]: dispatches for ever, until a [`StopHandle`]
//!   (from any thread) ends it or the connection is lost for good.
//!
//! Callbacks receive the handle, so they can send events in reply. They
//! must not dispatch themselves (that returns
//! [`EventError::AlreadyDispatching`]). Keys work as in the async handle:
//! sends are signed, and with a key, unauthenticated events are dropped
//! with a warning before any callback sees them.
//!
//! Underneath is [`elvin_client::blocking::Client`], which runs the
//! connection on its own thread; events queue there (bounded, oldest
//! dropped first) until dispatched.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use elvin_client::blocking::{Client, Stopper, Subscription};
use elvin_client::{
    ClientError, ConnectionState, Keys, Notification, Reconnect, SubscribeOptions, SubscriptionId,
};
use elvin_proto::{Attributes, ElvinUri};

use crate::auth::EventKey;
use crate::error::EventError;
use crate::handle::{RegisterOptions, Verifier, sign_for_send};
use crate::notification::{EventNotification, FiringTime};
use crate::sender::{self, SenderAddress, SenderSource};
use crate::tuple::AddressTuple;

/// Most events one [`EventHandle::poll`] call dispatches.
pub const POLL_BATCH: usize = 4096;

/// An event callback of the blocking handle.
pub type Callback = Box<dyn FnMut(&EventHandle, EventNotification) + Send + 'static>;

/// Names a subscription of a blocking handle (for
/// [`EventHandle::unsubscribe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionToken(SubscriptionId);

/// Ends a running [`EventHandle::main`] from any thread.
#[derive(Clone)]
pub struct StopHandle(Stopper);

impl StopHandle {
    /// Makes the running `main` (or, if none runs, the next one) return
    /// `Ok`.
    pub fn stop(&self) {
        self.0.stop();
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

struct Slot {
    /// Taken out while the callback runs, so the table is not locked
    /// during user code.
    callback: Option<Callback>,
    subscription: Subscription,
    verifier: Verifier,
}

/// A registered connection for blocking programs. See the
/// [module docs](self).
pub struct EventHandle {
    client: Client,
    key: Option<Arc<EventKey>>,
    sender: SenderAddress,
    sender_text: String,
    slots: Mutex<HashMap<SubscriptionId, Slot>>,
    dispatching: AtomicBool,
}

impl std::fmt::Debug for EventHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHandle")
            .field("sender", &self.sender)
            .field("keyed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// Clears the dispatching flag when a dispatch ends, however it ends.
struct DispatchGuard<'a>(&'a AtomicBool);

impl Drop for DispatchGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl EventHandle {
    /// Connects to `server` (an Elvin URI) without a key.
    pub fn register(server: &str) -> Result<EventHandle, EventError> {
        Self::register_with(server, RegisterOptions::new())
    }

    /// Connects with the key in `keyfile`.
    pub fn register_with_keyfile(
        server: &str,
        keyfile: impl AsRef<Path>,
    ) -> Result<EventHandle, EventError> {
        Self::register_with(server, RegisterOptions::new().key_file(keyfile)?)
    }

    /// Connects, retrying and reconnecting according to `retry`, with the
    /// key in `keyfile` if given.
    pub fn register_with_retry(
        server: &str,
        keyfile: Option<&Path>,
        retry: Reconnect,
    ) -> Result<EventHandle, EventError> {
        let mut options = RegisterOptions::new().retry(retry);
        if let Some(path) = keyfile {
            options = options.key_file(path)?;
        }
        Self::register_with(server, options)
    }

    /// Connects with `options`.
    pub fn register_with(
        server: &str,
        options: RegisterOptions,
    ) -> Result<EventHandle, EventError> {
        let uri = ElvinUri::parse(server).map_err(ClientError::from)?;
        let client = Client::connect(uri.clone(), options.client_options())?;
        let sender = match options.sender {
            Some(address) => SenderAddress {
                address,
                source: SenderSource::Explicit,
            },
            None => sender::discover(&uri.host, uri.port),
        };
        Ok(EventHandle {
            client,
            key: options.key.map(Arc::new),
            sender_text: sender.address.to_string(),
            sender,
            slots: Mutex::new(HashMap::new()),
            dispatching: AtomicBool::new(false),
        })
    }

    /// Closes the connection; subscriptions end.
    pub fn unregister(self) -> Result<(), EventError> {
        let EventHandle { client, slots, .. } = self;
        // Subscriptions hold the connection's runtime; drop them first.
        drop(slots);
        Ok(client.close()?)
    }

    /// The key, if registered with one.
    pub fn key(&self) -> Option<&EventKey> {
        self.key.as_deref()
    }

    /// The `___SENDER___` address and how it was chosen.
    pub fn sender(&self) -> SenderAddress {
        self.sender
    }

    /// The `___SENDER___` address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.sender.address
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.client.state()
    }

    /// The Elvin client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A new notification for `tuple` with this handle's sender address.
    pub fn new_notification(&self, tuple: &AddressTuple) -> EventNotification {
        EventNotification::from_tuple(tuple, &self.sender_text)
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<SubscriptionId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to the events `tuple` selects; `callback` runs for each
    /// when the program dispatches.
    pub fn subscribe<F>(
        &self,
        tuple: &AddressTuple,
        callback: F,
    ) -> Result<SubscriptionToken, EventError>
    where
        F: FnMut(&EventHandle, EventNotification) + Send + 'static,
    {
        let expression = tuple.subscription_expression()?;
        let subscription = self
            .client
            .subscribe(&expression, SubscribeOptions::default())?;
        let id = subscription.id().ok_or(ClientError::SubscriptionEnded)?;
        self.slots().insert(
            id,
            Slot {
                callback: Some(Box::new(callback)),
                subscription,
                verifier: Verifier::new(self.key.clone()),
            },
        );
        Ok(SubscriptionToken(id))
    }

    /// Unsubscribes (also from inside that subscription's callback).
    /// Events of it not yet dispatched are discarded.
    pub fn unsubscribe(&self, token: SubscriptionToken) -> Result<(), EventError> {
        let slot = self.slots().remove(&token.0);
        match slot {
            Some(slot) => Ok(slot.subscription.remove()?),
            None => Ok(()),
        }
    }

    /// Events of `token`'s subscription dropped because their signature
    /// was missing or wrong.
    pub fn rejected(&self, token: SubscriptionToken) -> u64 {
        self.slots()
            .get(&token.0)
            .map_or(0, |slot| slot.verifier.rejected())
    }

    /// Sends `notification` now, signing it first if needed (see
    /// [`crate::EventHandle::notify`]).
    pub fn notify(&self, notification: &mut EventNotification) -> Result<(), EventError> {
        sign_for_send(self.key.as_deref(), notification);
        Ok(self
            .client
            .notify(notification.attributes(), true, &Keys::new())?)
    }

    /// Sends a scheduling request for `when` (see
    /// [`crate::EventHandle::schedule`]).
    pub fn schedule(
        &self,
        notification: &mut EventNotification,
        when: SystemTime,
    ) -> Result<(), EventError> {
        self.schedule_at(notification, FiringTime::from_system_time(when)?)
    }

    /// [`EventHandle::schedule`] with the time already split.
    pub fn schedule_at(
        &self,
        notification: &mut EventNotification,
        when: FiringTime,
    ) -> Result<(), EventError> {
        notification.make_schedule_request(when);
        self.notify(notification)
    }

    /// Signs `notification` with this handle's key now.
    pub fn insert_hmac(&self, notification: &mut EventNotification) -> Result<(), EventError> {
        let key = self.key.as_deref().ok_or(EventError::NoKey)?;
        notification.insert_hmac(key);
        Ok(())
    }

    /// Sends raw attributes unchanged (no signing).
    pub fn notify_raw(&self, attributes: &Attributes) -> Result<(), EventError> {
        Ok(self.client.notify(attributes, true, &Keys::new())?)
    }

    fn begin_dispatch(&self) -> Result<DispatchGuard<'_>, EventError> {
        if self.dispatching.swap(true, Ordering::SeqCst) {
            return Err(EventError::AlreadyDispatching);
        }
        Ok(DispatchGuard(&self.dispatching))
    }

    /// Verifies one notification and runs its subscription's callback.
    /// Returns whether a callback ran.
    fn dispatch(&self, notification: Notification) -> bool {
        let id = notification.subscription;
        let (callback, verifier) = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&id) else {
                return false;
            };
            (slot.callback.take(), slot.verifier.clone())
        };
        let Some(mut callback) = callback else {
            return false;
        };
        let ran = match verifier.accept(notification) {
            Some(event) => {
                callback(self, event);
                true
            }
            None => false,
        };
        // Put the callback back unless the subscription went away while it
        // ran.
        if let Some(slot) = self.slots().get_mut(&id) {
            slot.callback = Some(callback);
        }
        ran
    }

    /// Runs the callbacks of events that have arrived (at most
    /// [`POLL_BATCH`]) without waiting. Returns how many callbacks ran.
    pub fn poll(&self) -> Result<usize, EventError> {
        let _guard = self.begin_dispatch()?;
        self.drain()
    }

    fn drain(&self) -> Result<usize, EventError> {
        let mut ran = 0;
        for _ in 0..POLL_BATCH {
            match self.client.try_recv()? {
                Some(notification) => {
                    if self.dispatch(notification) {
                        ran += 1;
                    }
                }
                None => break,
            }
        }
        Ok(ran)
    }

    /// Waits up to `timeout` (`None`: for ever) for an event, then runs the
    /// callbacks of it and of everything else that has arrived. Returns how
    /// many callbacks ran (0 when the time ran out).
    pub fn poll_blocking(&self, timeout: Option<Duration>) -> Result<usize, EventError> {
        let _guard = self.begin_dispatch()?;
        let first = match timeout {
            Some(timeout) => self.client.recv_timeout(timeout)?,
            None => Some(self.client.recv()?),
        };
        let Some(first) = first else {
            return Ok(0);
        };
        let mut ran = usize::from(self.dispatch(first));
        ran += self.drain()?;
        Ok(ran)
    }

    /// Dispatches events until a [`StopHandle`] stops it (`Ok`) or the
    /// connection is lost for good (the error).
    pub fn main(&self) -> Result<(), EventError> {
        let _guard = self.begin_dispatch()?;
        self.client.run(|notification| {
            self.dispatch(notification);
            ControlFlow::Continue(())
        })?;
        Ok(())
    }

    /// A handle that stops [`EventHandle::main`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.client.stopper())
    }
}
