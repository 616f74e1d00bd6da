//! A blocking client for tools and programs without an async runtime.
//!
//! [`Client`] runs the async client on a current-thread tokio runtime on a
//! dedicated thread (`elvin-client`), so calling threads simply block. It
//! follows the shape of the original Emulab event library: subscribe any
//! number of expressions, then poll ([`Client::try_recv`]), poll with a
//! time limit ([`Client::recv_timeout`]), block ([`Client::recv`]) or hand
//! control to a main loop ([`Client::run`]) that a [`Stopper`] ends from
//! another thread or a signal handler thread.
//!
//! All of a client's subscriptions feed one bounded inbox (drop-oldest,
//! [`Client::dropped`] counts), and every [`Notification`] says which
//! subscription it matched, so one loop can dispatch for all of them.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use elvin_client::blocking::Client;
//! use elvin_client::{ConnectOptions, SubscribeOptions};
//!
//! # fn main() -> Result<(), elvin_client::ClientError> {
//! let client = Client::connect("elvin://localhost:2917", ConnectOptions::default())?;
//! let _sub = client.subscribe("EVENTTYPE == \"START\"", SubscribeOptions::default())?;
//! let stopper = client.stopper();
//! std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(60));
//!     stopper.stop();
//! });
//! client.run(|notification| {
//!     println!("{:?}", notification.attributes);
//!     ControlFlow::Continue(())
//! })?;
//! client.close()?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use elvin_proto::{Attributes, Keys};

use crate::client::{ConnectionState, IntoElvinUri};
use crate::error::ClientError;
use crate::options::{
    ConnectOptions, KeyChange, NegotiatedOptions, SubscribeOptions, SubscriptionChange,
};
use crate::queue::{BlockingRecv, DeliveryQueue, Ended, Notification, SubscriptionId};

/// A blocking Elvin client. See the [module docs](self).
pub struct Client {
    client: Option<crate::Client>,
    runtime: tokio::runtime::Handle,
    stop_runtime: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    inbox: Arc<DeliveryQueue>,
    stop: Arc<AtomicBool>,
}

/// Stops a running [`Client::run`] from another thread.
#[derive(Clone)]
pub struct Stopper {
    inbox: Arc<DeliveryQueue>,
    stop: Arc<AtomicBool>,
}

impl Stopper {
    /// Makes the current (or, if none is running, the next) `run` return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.inbox.interrupt();
    }
}

impl Client {
    /// Starts the runtime thread and connects (see
    /// [`crate::Client::connect`]).
    pub fn connect(uri: impl IntoElvinUri, options: ConnectOptions) -> Result<Client, ClientError> {
        let uri = uri.into_elvin_uri()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Config(format!("cannot start the client runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("elvin-client".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .map_err(|e| ClientError::Config(format!("cannot start the client thread: {e}")))?;
        let capacity = options.delivery_capacity;
        let mut this = Client {
            client: None,
            runtime: handle,
            stop_runtime: Some(stop_tx),
            thread: Some(thread),
            inbox: DeliveryQueue::new(capacity, "blocking client inbox".into()),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let client = this.block_on(crate::Client::connect(uri, options))??;
        // End the inbox when the connection ends for good, so receivers
        // wake up with the reason.
        let mut states = client.state_changes();
        let inbox = this.inbox.clone();
        this.runtime.spawn(async move {
            loop {
                if let ConnectionState::Closed { error } = &*states.borrow_and_update() {
                    inbox.end(match error {
                        Some(error) => {
                            Ended::Failed(ClientError::ConnectionLost(Box::new(error.clone())))
                        }
                        None => Ended::Normally,
                    });
                    return;
                }
                if states.changed().await.is_err() {
                    inbox.end(Ended::Normally);
                    return;
                }
            }
        });
        this.client = Some(client);
        Ok(this)
    }

    /// Runs a future on the runtime thread and waits for it.
    fn block_on<F>(&self, future: F) -> Result<F::Output, ClientError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        run_on(&self.runtime, future)
    }

    fn client(&self) -> Result<&crate::Client, ClientError> {
        self.client.as_ref().ok_or(ClientError::ClientClosed)
    }

    /// The async client underneath, for anything not wrapped here. Its
    /// futures must run on the client's runtime: use
    /// [`Client::runtime`]`.spawn` or `block_on` from a non-runtime thread.
    pub fn async_client(&self) -> Option<&crate::Client> {
        self.client.as_ref()
    }

    /// The handle of the client's runtime.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Subscribes; matching notifications arrive in this client's inbox.
    pub fn subscribe(
        &self,
        expression: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        let client = self.client()?.clone();
        let inbox = self.inbox.clone();
        let expression = expression.to_owned();
        let subscription = self.block_on(async move {
            let id = client
                .inner()
                .subscribe_into(&expression, &options, inbox.clone(), false)
                .await?;
            Ok::<_, ClientError>(crate::Subscription::from_parts(client, id, inbox))
        })??;
        Ok(Subscription {
            subscription: Some(subscription),
            runtime: self.runtime.clone(),
        })
    }

    /// Sends a notification (see [`crate::Client::notify`]).
    pub fn notify(
        &self,
        attributes: &Attributes,
        deliver_insecure: bool,
        keys: &Keys,
    ) -> Result<(), ClientError> {
        // Encode here, on the caller's thread, so the attributes need not
        // be copied into the runtime.
        let client = self.client()?.clone();
        let frame = client.encode_notify(attributes, deliver_insecure, keys)?;
        self.block_on(async move { client.send_encoded(frame).await })?
    }

    /// Changes the connection's keys (see [`crate::Client::set_keys`]).
    pub fn set_keys(&self, change: KeyChange) -> Result<(), ClientError> {
        let client = self.client()?.clone();
        self.block_on(async move { client.set_keys(change).await })?
    }

    /// Checks the router is alive (see [`crate::Client::test_connection`]).
    pub fn test_connection(&self) -> Result<Duration, ClientError> {
        let client = self.client()?.clone();
        self.block_on(async move { client.test_connection().await })?
    }

    /// Waits for the next notification of any subscription. Fails once the
    /// client is closed or the connection is lost for good.
    pub fn recv(&self) -> Result<Notification, ClientError> {
        loop {
            match self.inbox.recv_blocking(None) {
                BlockingRecv::Item(item) => return Ok(item),
                BlockingRecv::Ended(ended) => return Err(ended_error(ended)),
                BlockingRecv::TimedOut | BlockingRecv::Interrupted => {}
            }
        }
    }

    /// Waits up to `timeout` for the next notification; `Ok(None)` if none
    /// came (the blocking poll of the original library).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Notification>, ClientError> {
        match self.inbox.recv_blocking(Some(timeout)) {
            BlockingRecv::Item(item) => Ok(Some(item)),
            BlockingRecv::Ended(ended) => Err(ended_error(ended)),
            BlockingRecv::TimedOut | BlockingRecv::Interrupted => Ok(None),
        }
    }

    /// The next notification if one is waiting (the non-blocking poll).
    pub fn try_recv(&self) -> Result<Option<Notification>, ClientError> {
        self.inbox.try_pop().map_err(ended_error)
    }

    /// The main loop: calls `handler` for each notification until it
    /// returns `Break`, a [`Stopper`] stops it (`Ok`), or the connection
    /// ends (the error).
    pub fn run<F>(&self, mut handler: F) -> Result<(), ClientError>
    where
        F: FnMut(Notification) -> ControlFlow<()>,
    {
        loop {
            if self.stop.swap(false, Ordering::SeqCst) {
                self.inbox.clear_interrupt();
                return Ok(());
            }
            match self.inbox.recv_blocking(None) {
                BlockingRecv::Item(item) => {
                    if handler(item).is_break() {
                        return Ok(());
                    }
                }
                BlockingRecv::Ended(ended) => return Err(ended_error(ended)),
                BlockingRecv::TimedOut | BlockingRecv::Interrupted => {}
            }
        }
    }

    /// A handle that stops [`Client::run`] from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            inbox: self.inbox.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Notifications discarded because the inbox was full.
    pub fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        match &self.client {
            Some(client) => client.state(),
            None => ConnectionState::Closed { error: None },
        }
    }

    /// The options the router granted (`None` while disconnected).
    pub fn negotiated(&self) -> Option<NegotiatedOptions> {
        self.client.as_ref()?.negotiated()
    }

    /// Closes the connection (see [`crate::Client::close`]) and stops the
    /// runtime thread.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ClientError> {
        let result = match self.client.take() {
            Some(client) => self
                .block_on(async move { client.close().await })
                .and_then(|r| r),
            None => Ok(()),
        };
        self.inbox.end(Ended::Normally);
        if let Some(stop) = self.stop_runtime.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn ended_error(ended: Ended) -> ClientError {
    match ended {
        Ended::Normally => ClientError::ClientClosed,
        Ended::Failed(error) => error,
    }
}

/// A subscription of a blocking [`Client`]. Its notifications arrive in
/// the client's inbox. Dropping it unsubscribes in the background.
pub struct Subscription {
    subscription: Option<crate::Subscription>,
    runtime: tokio::runtime::Handle,
}

impl Subscription {
    fn get(&self) -> Result<&crate::Subscription, ClientError> {
        self.subscription
            .as_ref()
            .ok_or(ClientError::SubscriptionEnded)
    }

    /// The client-local id, as carried by [`Notification::subscription`].
    pub fn id(&self) -> Option<SubscriptionId> {
        self.subscription.as_ref().map(crate::Subscription::id)
    }

    /// The id the router knows it by now.
    pub fn router_id(&self) -> Option<i64> {
        self.subscription.as_ref()?.router_id()
    }

    /// Changes the subscription (see [`crate::Subscription::modify`]).
    pub fn modify(&self, change: SubscriptionChange) -> Result<(), ClientError> {
        let subscription = self.get()?;
        let client = subscription.client().clone();
        let id = subscription.id();
        run_on(&self.runtime, async move {
            client.inner().modify(id, change).await
        })?
    }

    /// Unsubscribes and waits for the router to confirm.
    pub fn remove(mut self) -> Result<(), ClientError> {
        let Some(subscription) = self.subscription.take() else {
            return Ok(());
        };
        run_on(&self.runtime, async move { subscription.remove().await })?
    }
}

fn run_on<F>(runtime: &tokio::runtime::Handle, future: F) -> Result<F::Output, ClientError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| ClientError::ClientClosed)
}
