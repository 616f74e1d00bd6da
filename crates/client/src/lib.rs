//! An Elvin 4 client: connect to a router, subscribe, send notifications.
//!
//! Every tbevents program that talks to `eventd` (the tools, the scheduler,
//! the proxies, the Emulab event library) goes through this crate. It is
//! built on [`elvin_proto`] for the wire format and on tokio for I/O, and
//! offers two faces:
//!
//! - the async [`Client`] (tokio), the primary API;
//! - [`blocking::Client`], which runs the async client on its own thread
//!   for programs without a runtime, with poll, blocking poll and a main
//!   loop in the style of the original Emulab event library.
//!
//! # Example
//!
//! ```no_run
//! use elvin_client::{Attributes, Client, ConnectOptions, Keys, SubscribeOptions};
//!
//! # async fn demo() -> Result<(), elvin_client::ClientError> {
//! let client = Client::connect("elvin://localhost:2917", ConnectOptions::default()).await?;
//! let mut link_events = client
//!     .subscribe(r#"OBJTYPE == "LINK" && SCHEDULER == 0"#, SubscribeOptions::default())
//!     .await?;
//!
//! let event: Attributes = [("OBJTYPE", "LINK"), ("EVENTTYPE", "DOWN")].into_iter().collect();
//! let mut event = event;
//! event.insert("SCHEDULER", 0);
//! client.notify(&event, true, &Keys::new()).await?;
//!
//! if let Some(notification) = link_events.recv().await {
//!     println!("{:?} (secure: {})", notification.attributes, notification.secure);
//! }
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What happens underneath
//!
//! One background task owns the socket; API calls never touch it. Each
//! request gets a fresh non-zero transaction id (never reused while
//! outstanding), and the task matches the router's reply to it. The task
//! answers the router's TestConn with ConfConn, counts DropWarn packets
//! ([`Client::drop_warnings`]) and logs them, and ends the connection on a
//! Disconn (reported as [`ClientError::Disconnected`] with the reason) or
//! on anything a router never sends ([`ClientError::Protocol`]).
//!
//! A NotifyDeliver names the matching subscriptions of this client in two
//! lists (matched with keys, and without); each named [`Subscription`]
//! receives the notification once, marked [`Notification::secure`] if it
//! was in the first list.
//!
//! # Bounds
//!
//! Nothing a router sends, and no consumer that falls behind, can grow the
//! client's memory without limit:
//!
//! - **Incoming frames** are limited by the negotiated `Packet.Max-Length`
//!   (2 MiB by default), checked on the 4-byte header before the body is
//!   buffered. Outgoing packets over the limit fail with
//!   [`ClientError::TooLarge`] and are not sent.
//! - **Deliveries**: each subscription has a bounded queue
//!   ([`ConnectOptions::delivery_capacity`], default 1024; per subscription
//!   with [`SubscribeOptions::capacity`]). When a consumer does not keep
//!   up, the *oldest* queued notification is discarded, counted
//!   ([`Subscription::dropped`]) and reported with a `tracing` warning at
//!   the 1st, 2nd, 4th, 8th, … drop. The connection task never waits for a
//!   consumer, so one slow subscription cannot stall the others.
//! - **Sends**: encoded packets wait for the socket in a byte budget
//!   ([`ConnectOptions::send_buffer`], default 4 MiB). When it is full,
//!   `notify` and requests wait — that is the backpressure on a producer —
//!   but never longer than the request timeout.
//! - **Requests**: every request waits at most the request timeout
//!   (default 10 s); connecting at most the connect timeout; closing at most
//!   the close timeout. At most 65 536 requests can be outstanding.
//!
//! # Reconnecting
//!
//! With [`ConnectOptions::reconnect`], a lost connection is retried every
//! `retry_interval` (up to `max_retries` attempts in a row, or for ever).
//! [`Client::connect`] itself retries an unreachable router the same way,
//! like the original library's "register with retry". On success the client
//! re-sends its connection keys and every live subscription; the existing
//! [`Subscription`] handles keep working (the router's ids change
//! underneath; [`Subscription::id`] does not). While disconnected,
//! [`Client::notify`] and requests fail at once with
//! [`ClientError::NotConnected`]: nothing is queued, because a notification
//! delivered minutes late is usually worse than one reported as not sent.
//! Notifications the router would have delivered while the client was
//! disconnected are lost. Follow the state with [`Client::state_changes`]
//! (a watch) or [`Client::events`] (Lost, ReconnectFailed, Reconnected,
//! Closed).
//!
//! Without reconnect, a lost connection closes the client: subscriptions
//! end ([`Subscription::recv`] returns `None`, [`Subscription::end_reason`]
//! says why) and calls fail with [`ClientError::ConnectionLost`].
//!
//! # Dead peers
//!
//! TCP may take many minutes to notice a router host that vanished. Use
//! [`ConnectOptions::keepalive`] to probe with TestConn after a quiet
//! period; if nothing at all arrives within the request timeout, the
//! connection is treated as lost (and, with reconnect on, re-established).
//! [`Client::test_connection`] does one such probe on demand.
//!
//! # TLS
//!
//! `elvin:/secure/host:port` URIs use TLS (rustls with the `ring`
//! provider). Give the CA that signed the router's certificate, and a
//! client certificate if the router asks for one:
//!
//! ```no_run
//! use elvin_client::{Client, ConnectOptions, TlsOptions};
//! # async fn demo() -> Result<(), elvin_client::ClientError> {
//! let tls = TlsOptions::new()
//!     .ca_file("/etc/tbevents/ca.pem")
//!     .client_cert_files("/etc/tbevents/client.pem", "/etc/tbevents/client.key");
//! let client =
//!     Client::connect("elvin:/secure/boss:2917", ConnectOptions::new().tls(tls)).await?;
//! # Ok(())
//! # }
//! ```

pub mod blocking;
mod client;
pub mod error;
pub mod options;
mod queue;
mod session;
mod state;
pub mod tls;
mod transport;

pub use client::{
    CallbackSubscription, Client, ConnectionEvent, ConnectionState, IntoElvinUri, Subscription,
    unotify,
};
pub use error::{ClientError, NackCategory, NackError, ProtocolViolation, TimeoutKind};
pub use options::{
    ConnectOptions, KeyChange, NegotiatedOptions, Reconnect, RequestedOptions, SubscribeOptions,
    SubscriptionChange,
};
pub use queue::{Notification, SubscriptionId};
pub use tls::TlsOptions;

pub use elvin_proto::options::DropPolicy;
pub use elvin_proto::{Attributes, ElvinUri, KeyEntry, Keys, Value};
