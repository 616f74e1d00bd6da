//! Bounded delivery queues between the connection task and consumers.
//!
//! The connection task must never wait for a consumer: a slow callback in
//! one subscription would otherwise stall every other subscription and,
//! through TCP, the router's send queue for this client. So pushes never
//! block. Each queue holds at most `capacity` notifications; when a push
//! finds it full, the **oldest** queued notification is discarded, a
//! per-queue counter is incremented and a `tracing` warning is logged (at
//! the 1st, 2nd, 4th, 8th, … drop, so a persistently slow consumer does not
//! flood the log). Dropping the oldest keeps what the consumer eventually
//! sees as fresh as possible, which suits event streams where the latest
//! state matters most.
//!
//! A queue is consumed either asynchronously (a stored `Waker`, so one
//! consumer can poll it as a `Stream`) or by a blocking thread (a
//! `Condvar`); both are woken on every push and on close. Queues are shared
//! by `Arc`: the async API gives each subscription its own queue, the
//! blocking API feeds all of a client's subscriptions into one queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use elvin_proto::Attributes;

use crate::error::ClientError;

/// A stable, client-local identifier of a subscription.
///
/// It does not change when the router assigns a new id (after a reconnect
/// or a modify); see [`crate::Subscription::router_id`] for the router's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

impl SubscriptionId {
    /// The number behind the id (unique within one client).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One notification delivered to one subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The subscription it matched.
    pub subscription: SubscriptionId,
    /// The notification's attributes (shared, not copied, when several
    /// subscriptions match the same notification).
    pub attributes: Arc<Attributes>,
    /// True when the router matched it with keys (it was listed among the
    /// secure matches), false for an insecure match.
    pub secure: bool,
}

/// Why a queue stopped producing items.
#[derive(Clone, Debug)]
pub(crate) enum Ended {
    /// Removed by the user or the client was closed: a normal end.
    Normally,
    /// Ended by an error (connection lost for good, or a resubscription
    /// refused).
    Failed(ClientError),
}

struct State {
    items: VecDeque<Notification>,
    ended: Option<Ended>,
    waker: Option<Waker>,
    /// Set by [`DeliveryQueue::interrupt`] to wake a blocking receiver
    /// without an item; consumed by the receiver.
    interrupted: bool,
}

/// What a blocking receive produced.
#[derive(Debug)]
pub(crate) enum BlockingRecv {
    Item(Notification),
    Ended(Ended),
    TimedOut,
    Interrupted,
}

/// A bounded, drop-oldest notification queue.
pub(crate) struct DeliveryQueue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    label: String,
}

impl DeliveryQueue {
    /// A queue holding at most `capacity` (at least 1) notifications;
    /// `label` names it in warnings.
    pub(crate) fn new(capacity: usize, label: String) -> Arc<Self> {
        Arc::new(DeliveryQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                ended: None,
                waker: None,
                interrupted: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            label,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue in a state
        // worse than "some items missing", so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notifications discarded so far because the consumer fell behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queued, unread notifications.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Adds a notification, discarding the oldest one if the queue is full.
    /// Ignored after the queue has ended.
    pub(crate) fn push(&self, notification: Notification) {
        let waker = {
            let mut state = self.lock();
            if state.ended.is_some() {
                return;
            }
            if state.items.len() >= self.capacity {
                state.items.pop_front();
                let total = self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if total.is_power_of_two() {
                    tracing::warn!(
                        subscription = %self.label,
                        dropped = total,
                        capacity = self.capacity,
                        "consumer is not keeping up: dropped the oldest queued notification"
                    );
                }
            }
            state.items.push_back(notification);
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the queue: items already queued can still be read, then
    /// receivers see the end. The first reason given wins.
    pub(crate) fn end(&self, reason: Ended) {
        let waker = {
            let mut state = self.lock();
            if state.ended.is_none() {
                state.ended = Some(reason);
            }
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Why the queue ended, if it has.
    pub(crate) fn ended(&self) -> Option<Ended> {
        self.lock().ended.clone()
    }

    /// Polls for the next notification; `Ready(None)` once the queue has
    /// ended and is empty. Only the most recent waker is kept, so the
    /// queue has a single async consumer.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        let mut state = self.lock();
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.ended.is_some() {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(existing) if existing.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes the next notification without waiting.
    pub(crate) fn try_pop(&self) -> Result<Option<Notification>, Ended> {
        let mut state = self.lock();
        match state.items.pop_front() {
            Some(item) => Ok(Some(item)),
            None => match &state.ended {
                Some(ended) => Err(ended.clone()),
                None => Ok(None),
            },
        }
    }

    /// Waits on the calling thread for the next notification, up to
    /// `timeout` (`None`: no limit), or until [`DeliveryQueue::interrupt`].
    pub(crate) fn recv_blocking(&self, timeout: Option<Duration>) -> BlockingRecv {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return BlockingRecv::Item(item);
            }
            if let Some(ended) = &state.ended {
                return BlockingRecv::Ended(ended.clone());
            }
            if state.interrupted {
                state.interrupted = false;
                return BlockingRecv::Interrupted;
            }
            state = match (timeout, deadline) {
                (None, _) => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                (Some(_), Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return BlockingRecv::TimedOut;
                    }
                    self.ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                // A timeout so large that the deadline overflows: no limit.
                (Some(_), None) => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Wakes a blocked [`DeliveryQueue::recv_blocking`] with `Interrupted`
    /// (or the next one, if none is blocked now).
    pub(crate) fn interrupt(&self) {
        self.lock().interrupted = true;
        self.ready.notify_all();
    }

    /// Forgets a pending interrupt.
    pub(crate) fn clear_interrupt(&self) {
        self.lock().interrupted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: i32) -> Notification {
        Notification {
            subscription: SubscriptionId(1),
            attributes: Arc::new([("n", n)].into_iter().collect()),
            secure: false,
        }
    }

    fn n_of(item: &Notification) -> i32 {
        item.attributes.get_i32("n").unwrap_or(-1)
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let queue = DeliveryQueue::new(3, "test".into());
        for n in 0..10 {
            queue.push(note(n));
        }
        assert_eq!(queue.dropped(), 7);
        assert_eq!(queue.len(), 3);
        let got: Vec<i32> = std::iter::from_fn(|| queue.try_pop().ok().flatten())
            .map(|item| n_of(&item))
            .collect();
        assert_eq!(got, vec![7, 8, 9]);
    }

    #[test]
    fn items_queued_before_the_end_are_still_read() {
        let queue = DeliveryQueue::new(8, "test".into());
        queue.push(note(1));
        queue.end(Ended::Normally);
        queue.push(note(2)); // ignored after the end
        assert_eq!(queue.try_pop().ok().flatten().map(|i| n_of(&i)), Some(1));
        assert!(matches!(queue.try_pop(), Err(Ended::Normally)));
        assert!(matches!(
            queue.recv_blocking(Some(Duration::from_millis(1))),
            BlockingRecv::Ended(Ended::Normally)
        ));
    }

    #[test]
    fn blocking_receive_times_out_wakes_on_push_and_on_interrupt() {
        let queue = DeliveryQueue::new(8, "test".into());
        assert!(matches!(
            queue.recv_blocking(Some(Duration::from_millis(20))),
            BlockingRecv::TimedOut
        ));
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                queue.push(note(5));
            })
        };
        match queue.recv_blocking(None) {
            BlockingRecv::Item(item) => assert_eq!(n_of(&item), 5),
            other => panic!("expected an item, got {other:?}"),
        }
        pusher.join().unwrap();
        queue.interrupt();
        assert!(matches!(
            queue.recv_blocking(None),
            BlockingRecv::Interrupted
        ));
        // The interrupt is consumed.
        assert!(matches!(
            queue.recv_blocking(Some(Duration::from_millis(5))),
            BlockingRecv::TimedOut
        ));
    }
}
