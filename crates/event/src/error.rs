//! [`EventError`]: everything the event library's handles can report.
//!
//! One enum for the whole library keeps callers' `?` simple; each variant
//! wraps the typed error of the part that failed, whose message already
//! says what to do.

use elvin_client::ClientError;

use crate::args::ArgsError;
use crate::auth::KeyError;
use crate::notification::TimeOutOfRange;
use crate::tuple::ExpressionError;

/// An event-library failure.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Talking to the router failed (connect, subscribe, send, close).
    #[error(transparent)]
    Client(Box<ClientError>),
    /// The key file could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A tuple could not be turned into a subscription.
    #[error(transparent)]
    Expression(#[from] ExpressionError),
    /// A firing time does not fit the event's int32 time fields.
    #[error(transparent)]
    Time(#[from] TimeOutOfRange),
    /// An `ARGS` string or argument could not be handled.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// Signing was asked of a handle registered without a key.
    #[error(
        "this event handle has no key, so it cannot sign: register with the experiment's key file"
    )]
    NoKey,
    /// A dispatching call (`poll`, `poll_blocking`, `main`) was made while
    /// another was running on the same handle, for example from inside an
    /// event callback.
    #[error(
        "events are already being dispatched on this handle (poll or main called from a callback or from two threads at once)"
    )]
    AlreadyDispatching,
}

impl From<ClientError> for EventError {
    fn from(error: ClientError) -> Self {
        EventError::Client(Box::new(error))
    }
}

impl EventError {
    /// The client error underneath, if this is one.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            EventError::Client(error) => Some(error),
            _ => None,
        }
    }
}
