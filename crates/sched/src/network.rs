//! The scheduler's side of the router connection.
//!
//! One keyed [`EventHandle`] does three things:
//!
//! * its subscription to ` ( EXPT == "pid/eid" ) && SCHEDULER == 1 `
//!   brings dynamic requests, already authenticated (the handle drops
//!   unsigned and forged ones), to the [`Intake`];
//! * [`RouterOutlet`] signs each fired notification with the experiment key
//!   and sends it; the firing thread calls it from outside the runtime, so
//!   it enters the runtime with `Handle::block_on` once per batch;
//! * its connection events are logged: when the router goes away the
//!   client library reconnects and re-subscribes on its own, and the
//!   schedule keeps running (sends while disconnected fail, are logged and
//!   counted).

use std::sync::{Arc, Mutex};

use elvin_client::ConnectionEvent;
use elvin_proto::Attributes;
use tbevents_event::{AddressTuple, EventError, EventHandle, EventKey, EventSubscription};

use crate::dynamic::Intake;
use crate::firing::{Outlet, attr};

/// Sends fired notifications through the router, signed with the key.
pub struct RouterOutlet {
    handle: EventHandle,
    key: EventKey,
    runtime: tokio::runtime::Handle,
}

impl RouterOutlet {
    /// An outlet over a registered handle.
    pub fn new(handle: EventHandle, key: EventKey, runtime: tokio::runtime::Handle) -> Self {
        RouterOutlet {
            handle,
            key,
            runtime,
        }
    }
}

impl Outlet for RouterOutlet {
    fn send_batch(&mut self, batch: &mut [Attributes]) -> Result<(), String> {
        for attributes in batch.iter_mut() {
            attributes.remove(attr::HMAC);
            let mac = self.key.sign(attributes);
            attributes.insert(attr::HMAC, mac.to_vec());
        }
        let handle = &self.handle;
        self.runtime.block_on(async {
            for attributes in batch.iter() {
                handle
                    .notify_raw(attributes)
                    .await
                    .map_err(|error| error.to_string())?;
            }
            Ok(())
        })
    }
}

/// The subscription tuple for an experiment's scheduler requests.
pub fn request_tuple(expt: &str) -> AddressTuple {
    AddressTuple::new().expt(expt).scheduler(1)
}

/// Subscribes to the experiment's requests.
pub async fn subscribe_requests(
    handle: &EventHandle,
    expt: &str,
) -> Result<EventSubscription, EventError> {
    handle.subscribe(&request_tuple(expt)).await
}

/// Feeds every authenticated request to the intake until the subscription
/// ends.
pub async fn pump_requests(mut subscription: EventSubscription, intake: Arc<Mutex<Intake>>) {
    while let Some(event) = subscription.recv().await {
        let attributes = event.into_attributes();
        match intake.lock() {
            Ok(mut intake) => intake.accept(attributes),
            Err(_) => {
                tracing::error!("the dynamic event intake is unusable; request dropped");
            }
        }
    }
    tracing::warn!(
        rejected = subscription.rejected(),
        "the subscription to dynamic events has ended; no more dynamic events will be accepted"
    );
}

/// Logs what happens to the router connection.
pub async fn log_connection_events(handle: EventHandle) {
    let mut events = handle.client().events();
    loop {
        match events.recv().await {
            Ok(ConnectionEvent::Lost { error }) => tracing::warn!(
                "lost the router connection ({error}); reconnecting. The schedule keeps running; \
                 events due while disconnected cannot be sent and are counted as send failures"
            ),
            Ok(ConnectionEvent::ReconnectFailed { attempt, error }) => {
                tracing::warn!("reconnect attempt {attempt} failed: {error}");
            }
            Ok(ConnectionEvent::Reconnected {
                attempt,
                resubscribed,
                failed,
            }) => tracing::info!(
                "reconnected to the router (attempt {attempt}); {resubscribed} subscription(s) \
                 restored, {failed} refused"
            ),
            Ok(ConnectionEvent::Closed { .. }) => {
                tracing::warn!("the router connection is closed for good");
                return;
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} connection events were not logged (logging fell behind)");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
