//! The routing table shared by every connection, and the routing of one
//! notification to the clients whose subscriptions match it.
//!
//! [`Broker`] holds the clients that have a session, their subscriptions
//! and the [`SubscriptionIndex`] over them, behind one `parking_lot`
//! read-write lock: routing a notification takes the read lock (so
//! producers on different threads route in parallel); adding, changing or
//! removing a subscription, registering a client or changing its keys
//! takes the write lock for the few microseconds the change needs. Anything
//! slow (compiling an expression, hashing keys) happens before the lock is
//! taken.
//!
//! Routing ([`Broker::route`]) visits only the index's candidates, checks
//! the key rules of docs/protocol.md §8.4, evaluates the expression, and collects
//! the matches in a reusable scratch vector. The matches are then grouped
//! per client so that each client gets **one** NotifyDeliver listing all
//! its matching subscription ids (secure and insecure separately), encoded
//! straight from the producer's raw attribute bytes into the client's
//! outbox. The outboxes touched are remembered so the producer's reader
//! can flush each one once at the end of its read batch.
//!
//! The Emulab case, where nobody uses keys, costs nothing extra: when the
//! producer has no keys at all, no subscription can be a secure match, so
//! key matching is skipped and only `deliver_insecure && accept_insecure`
//! is checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use elvin_proto::{AttributesRef, Keys, keys_match};
use elvin_sublang::Subscription;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::index::{Slot, SubscriptionIndex};
use crate::metrics::{self, Metrics};
use crate::outbox::{DeliverOutcome, Outbox, OutboxState};

/// A client's handle in the routing table.
pub type ClientId = u32;

/// Touched outboxes searched linearly before a set takes over.
const TOUCHED_SCAN_LIMIT: usize = 16;

#[derive(Debug)]
struct ClientEntry {
    outbox: Arc<Outbox>,
    /// The connection's subscription keys (public form).
    keys: Keys,
    /// Slots of this client's subscriptions.
    subscriptions: FxHashSet<Slot>,
}

#[derive(Debug)]
struct SubEntry {
    id: i64,
    client: ClientId,
    subscription: Subscription,
    accept_insecure: bool,
    /// The subscription's own keys (public form).
    keys: Keys,
}

/// A slab of values addressed by `u32`, reusing freed slots.
#[derive(Debug)]
struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop()
            && let Some(entry) = self.entries.get_mut(slot as usize)
        {
            *entry = Some(value);
            return slot;
        }
        let slot = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(Some(value));
        slot
    }

    fn get(&self, slot: u32) -> Option<&T> {
        self.entries.get(slot as usize)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.entries.get_mut(slot as usize)?.as_mut()
    }

    fn remove(&mut self, slot: u32) -> Option<T> {
        let value = self.entries.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(value)
    }
}

#[derive(Debug, Default)]
struct Table {
    clients: Slab<ClientEntry>,
    subscriptions: Slab<SubEntry>,
    by_id: FxHashMap<i64, Slot>,
    index: SubscriptionIndex,
}

/// A notification being routed, with its keys already in public form.
#[derive(Clone, Copy, Debug)]
pub struct Notification<'a> {
    /// The attributes, borrowed from the producer's frame.
    pub attributes: &'a AttributesRef<'a>,
    /// The encoded attribute list, copied verbatim into each NotifyDeliver.
    pub raw_attributes: &'a [u8],
    /// May go to subscriptions without matching keys.
    pub deliver_insecure: bool,
    /// Keys attached to the notification (public form).
    pub message_keys: &'a Keys,
    /// The producer connection's notification keys (public form; empty for
    /// UNotify).
    pub producer_keys: &'a Keys,
}

/// Per-reader scratch space for routing, reused across notifications so
/// the hot path does not allocate, plus the batch's counters and the
/// outboxes it touched.
#[derive(Debug, Default)]
pub struct RouteScratch {
    /// (client, subscription id, secure) for each match of the current
    /// notification.
    matches: Vec<(ClientId, i64, bool)>,
    secure: Vec<i64>,
    insecure: Vec<i64>,
    /// Outboxes that received frames in this batch, to flush once.
    touched: Vec<Arc<Outbox>>,
    /// Addresses of the outboxes in `touched`, once it is long.
    touched_set: FxHashSet<usize>,
    /// Notifications routed in this batch.
    pub notifications: u64,
    /// NotifyDelivers queued in this batch.
    pub deliveries: u64,
    /// Expressions evaluated in this batch.
    pub evaluations: u64,
}

impl RouteScratch {
    /// Empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `outbox` has frames to flush at the end of the batch.
    pub fn touch(&mut self, outbox: &Arc<Outbox>) {
        // A short list is searched; past that a set keeps a wide fan-out
        // (thousands of subscribers) from costing quadratic time.
        if self.touched.len() < TOUCHED_SCAN_LIMIT {
            if self.touched.iter().any(|o| Arc::ptr_eq(o, outbox)) {
                return;
            }
        } else {
            if self.touched_set.is_empty() {
                self.touched_set
                    .extend(self.touched.iter().map(|o| Arc::as_ptr(o) as usize));
            }
            if !self.touched_set.insert(Arc::as_ptr(outbox) as usize) {
                return;
            }
        }
        self.touched.push(Arc::clone(outbox));
    }

    /// Ends a read batch: publishes the counters and flushes every touched
    /// outbox (each with one non-blocking write, handing the rest to a
    /// flush task if the socket is full).
    pub fn finish_batch(&mut self, metrics: &Metrics) {
        metrics::add(
            &metrics.notifications_in,
            std::mem::take(&mut self.notifications),
        );
        metrics::add(
            &metrics.deliveries_out,
            std::mem::take(&mut self.deliveries),
        );
        metrics::add(&metrics.evaluations, std::mem::take(&mut self.evaluations));
        self.touched_set.clear();
        for outbox in self.touched.drain(..) {
            outbox.flush_soon();
        }
    }

    /// Number of outboxes waiting to be flushed.
    pub fn touched_len(&self) -> usize {
        self.touched.len()
    }

    /// Drops the touched list without flushing (for benchmarks that drain
    /// outboxes themselves).
    pub fn forget_touched(&mut self) {
        self.touched.clear();
        self.touched_set.clear();
    }
}

/// A subscription change refused because the id is not the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no subscription with id {0} on this connection")]
pub struct NoSuchSubscription(pub i64);

/// The shared routing table.
#[derive(Debug)]
pub struct Broker {
    table: RwLock<Table>,
    next_subscription_id: AtomicI64,
    metrics: Arc<Metrics>,
    /// Most time one notification may spend in evaluation, in microseconds
    /// (0: no limit).
    evaluation_budget_us: std::sync::atomic::AtomicU64,
}

/// The default of [`Broker::set_evaluation_budget`].
pub const DEFAULT_EVALUATION_BUDGET: std::time::Duration = std::time::Duration::from_millis(20);

impl Broker {
    /// An empty table reporting to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Broker> {
        Arc::new(Broker {
            table: RwLock::new(Table::default()),
            next_subscription_id: AtomicI64::new(1),
            metrics,
            evaluation_budget_us: std::sync::atomic::AtomicU64::new(
                DEFAULT_EVALUATION_BUDGET.as_micros() as u64,
            ),
        })
    }

    /// Sets the most time one notification may spend being evaluated
    /// against candidate subscriptions; past it, the remaining candidates
    /// are skipped (and counted in `notifications_truncated`), so one
    /// publisher cannot stall routing for everyone. Zero: no limit.
    pub fn set_evaluation_budget(&self, budget: std::time::Duration) {
        self.evaluation_budget_us.store(
            u64::try_from(budget.as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The counters this table reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Adds a client with a session; its deliveries go to `outbox`.
    pub fn register_client(&self, outbox: Arc<Outbox>, keys: Keys) -> ClientId {
        self.table.write().clients.insert(ClientEntry {
            outbox,
            keys,
            subscriptions: FxHashSet::default(),
        })
    }

    /// Removes a client and all its subscriptions; returns how many
    /// subscriptions went.
    pub fn unregister_client(&self, client: ClientId) -> usize {
        let mut guard = self.table.write();
        let table = &mut *guard;
        let Some(entry) = table.clients.remove(client) else {
            return 0;
        };
        let slots = entry.subscriptions;
        for &slot in &slots {
            if let Some(sub) = table.subscriptions.remove(slot) {
                table.by_id.remove(&sub.id);
                table.index.remove(slot);
            }
        }
        drop(guard);
        metrics::sub(&self.metrics.subscriptions, slots.len() as u64);
        slots.len()
    }

    /// Replaces a client's connection subscription keys.
    pub fn set_client_keys(&self, client: ClientId, keys: Keys) {
        if let Some(entry) = self.table.write().clients.get_mut(client) {
            entry.keys = keys;
        }
    }

    /// Adds a subscription for `client` and returns its new id.
    pub fn add_subscription(
        &self,
        client: ClientId,
        subscription: Subscription,
        accept_insecure: bool,
        keys: Keys,
    ) -> i64 {
        let id = self.next_subscription_id.fetch_add(1, Ordering::Relaxed);
        let constraints = subscription.constraints();
        let mut guard = self.table.write();
        let table = &mut *guard;
        let slot = table.subscriptions.insert(SubEntry {
            id,
            client,
            subscription,
            accept_insecure,
            keys,
        });
        if let Some(entry) = table.clients.get_mut(client) {
            entry.subscriptions.insert(slot);
        }
        table.by_id.insert(id, slot);
        table.index.insert(slot, &constraints);
        drop(guard);
        metrics::add(&self.metrics.subscriptions, 1);
        id
    }

    /// Changes a subscription of `client`: its expression (when `Some`),
    /// accept_insecure and keys. The id stays the same.
    pub fn update_subscription(
        &self,
        client: ClientId,
        id: i64,
        subscription: Option<Subscription>,
        accept_insecure: bool,
        keys: Keys,
    ) -> Result<(), NoSuchSubscription> {
        let constraints = subscription.as_ref().map(Subscription::constraints);
        let mut guard = self.table.write();
        let table = &mut *guard;
        let slot = *table.by_id.get(&id).ok_or(NoSuchSubscription(id))?;
        let entry = table
            .subscriptions
            .get_mut(slot)
            .filter(|e| e.client == client)
            .ok_or(NoSuchSubscription(id))?;
        entry.accept_insecure = accept_insecure;
        entry.keys = keys;
        if let (Some(subscription), Some(constraints)) = (subscription, constraints) {
            entry.subscription = subscription;
            table.index.insert(slot, &constraints);
        }
        Ok(())
    }

    /// Removes a subscription of `client`.
    pub fn remove_subscription(&self, client: ClientId, id: i64) -> Result<(), NoSuchSubscription> {
        let mut guard = self.table.write();
        let table = &mut *guard;
        let slot = *table.by_id.get(&id).ok_or(NoSuchSubscription(id))?;
        if table
            .subscriptions
            .get(slot)
            .is_none_or(|e| e.client != client)
        {
            return Err(NoSuchSubscription(id));
        }
        table.subscriptions.remove(slot);
        table.by_id.remove(&id);
        table.index.remove(slot);
        if let Some(entry) = table.clients.get_mut(client) {
            entry.subscriptions.remove(&slot);
        }
        drop(guard);
        metrics::sub(&self.metrics.subscriptions, 1);
        Ok(())
    }

    /// Number of subscriptions in the table.
    pub fn subscription_count(&self) -> usize {
        self.table.read().by_id.len()
    }

    /// Routes one notification: queues one NotifyDeliver on the outbox of
    /// every client with at least one matching subscription, and records
    /// those outboxes in `scratch` for flushing at the end of the batch.
    /// Returns the number of clients delivered to.
    pub fn route(&self, notification: &Notification<'_>, scratch: &mut RouteScratch) -> usize {
        scratch.notifications += 1;
        let producer_has_keys =
            !notification.message_keys.is_empty() || !notification.producer_keys.is_empty();
        if !producer_has_keys && !notification.deliver_insecure {
            // Only a secure match could deliver it, and there is none
            // without producer keys.
            return 0;
        }
        let lookup = elvin_proto::NotificationLookup::new(notification.attributes);
        let table = self.table.read();
        scratch.matches.clear();
        let mut evaluations = 0u64;
        let budget_us = self
            .evaluation_budget_us
            .load(std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let mut truncated = false;
        table
            .index
            .for_each_candidate(notification.attributes, &lookup, |slot| {
                let Some(sub) = table.subscriptions.get(slot) else {
                    return;
                };
                let secure = producer_has_keys && {
                    let client_keys = table.clients.get(sub.client).map(|c| &c.keys);
                    let by_client = client_keys.is_some_and(|keys| {
                        keys_match(keys, notification.producer_keys)
                            || keys_match(keys, notification.message_keys)
                    });
                    by_client
                        || keys_match(&sub.keys, notification.producer_keys)
                        || keys_match(&sub.keys, notification.message_keys)
                };
                let candidate = secure || (notification.deliver_insecure && sub.accept_insecure);
                if !candidate || truncated {
                    return;
                }
                evaluations += 1;
                // Checking the clock every 32 evaluations keeps its cost
                // out of the common case (a handful of candidates).
                if budget_us != 0
                    && evaluations.is_multiple_of(32)
                    && started.elapsed().as_micros() as u64 > budget_us
                {
                    truncated = true;
                    return;
                }
                if sub.subscription.matches(&lookup) {
                    scratch.matches.push((sub.client, sub.id, secure));
                }
            });
        scratch.evaluations += evaluations;
        if truncated {
            let total = self
                .metrics
                .notifications_truncated
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            // One line for the first and then one per thousand: an attack
            // must not flood the log as well.
            if total == 1 || total.is_multiple_of(1000) {
                tracing::warn!(
                    evaluations,
                    budget_us,
                    truncated_total = total,
                    "a notification hit the evaluation time budget; the remaining candidate subscriptions were skipped (notification_time_budget_ms)"
                );
            }
        }
        if scratch.matches.is_empty() {
            return 0;
        }
        scratch
            .matches
            .sort_unstable_by_key(|&(client, _, _)| client);
        let mut delivered = 0;
        let mut start = 0;
        let matches = std::mem::take(&mut scratch.matches);
        while let Some(&(client, _, _)) = matches.get(start) {
            let end = matches
                .iter()
                .skip(start)
                .position(|&(c, _, _)| c != client)
                .map_or(matches.len(), |offset| start + offset);
            scratch.secure.clear();
            scratch.insecure.clear();
            for &(_, id, secure) in matches.get(start..end).unwrap_or(&[]) {
                if secure {
                    scratch.secure.push(id);
                } else {
                    scratch.insecure.push(id);
                }
            }
            start = end;
            let Some(entry) = table.clients.get(client) else {
                continue;
            };
            let outcome = entry.outbox.push_deliver(
                notification.raw_attributes,
                &scratch.secure,
                &scratch.insecure,
            );
            match outcome {
                DeliverOutcome::Queued => {
                    delivered += 1;
                    scratch.deliveries += 1;
                    scratch.touch(&entry.outbox);
                }
                DeliverOutcome::Dropped => scratch.touch(&entry.outbox),
                DeliverOutcome::Overflow | DeliverOutcome::Closed => {}
            }
        }
        scratch.matches = matches;
        drop(table);
        delivered
    }

    /// Whether the outbox of `client` is still usable (for tests).
    pub fn client_outbox_state(&self, client: ClientId) -> Option<OutboxState> {
        self.table
            .read()
            .clients
            .get(client)
            .map(|c| c.outbox.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{QueueLimits, Sink};
    use elvin_proto::options::DropPolicy;
    use elvin_proto::{KeyEntry, Packet, ValueRef};
    use elvin_sublang::Limits;
    use tokio::sync::Notify;

    fn new_outbox(metrics: &Arc<Metrics>) -> Arc<Outbox> {
        Outbox::new(
            Sink::Writer(Arc::new(Notify::new())),
            QueueLimits {
                max_bytes: 1 << 24,
                policy: DropPolicy::Oldest,
                max_packet: 1 << 20,
            },
            metrics.clone(),
        )
    }

    fn compile(expression: &str) -> Subscription {
        Subscription::compile(expression, &Limits::default()).unwrap()
    }

    fn raw_of(attributes: &[(&str, ValueRef<'_>)]) -> Vec<u8> {
        let mut raw = Vec::new();
        elvin_proto::raw::put_name_values(&mut raw, attributes.iter().map(|(n, v)| (*n, *v)));
        raw
    }

    /// Routes `attributes` and returns the number of clients delivered to.
    fn route(
        broker: &Broker,
        attributes: &[(&str, ValueRef<'_>)],
        deliver_insecure: bool,
        message_keys: &Keys,
        scratch: &mut RouteScratch,
    ) -> usize {
        let attrs = AttributesRef {
            entries: attributes.to_vec(),
        };
        let raw = raw_of(attributes);
        let empty = Keys::new();
        broker.route(
            &Notification {
                attributes: &attrs,
                raw_attributes: &raw,
                deliver_insecure,
                message_keys,
                producer_keys: &empty,
            },
            scratch,
        )
    }

    fn delivered(outbox: &Outbox) -> Vec<(Vec<i64>, Vec<i64>)> {
        let mut bytes = Vec::new();
        outbox.take_batch(&mut bytes, usize::MAX);
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        while let Some((body, used)) = elvin_proto::split_frame(rest, 1 << 20).unwrap() {
            if let Packet::NotifyDeliver(d) = Packet::decode(body).unwrap() {
                let mut secure = d.secure_matches;
                let mut insecure = d.insecure_matches;
                secure.sort_unstable();
                insecure.sort_unstable();
                out.push((secure, insecure));
            }
            rest = &rest[used..];
        }
        out
    }

    #[test]
    fn one_deliver_per_client_with_every_matching_id() {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(metrics.clone());
        let a = new_outbox(&metrics);
        let b = new_outbox(&metrics);
        let ca = broker.register_client(a.clone(), Keys::new());
        let cb = broker.register_client(b.clone(), Keys::new());
        let a1 = broker.add_subscription(ca, compile(r#"EXPT == "p/e""#), true, Keys::new());
        let a2 = broker.add_subscription(ca, compile("SCHEDULER == 0"), true, Keys::new());
        let b1 = broker.add_subscription(cb, compile(r#"EXPT == "p/other""#), true, Keys::new());
        let mut scratch = RouteScratch::new();
        let n = route(
            &broker,
            &[
                ("EXPT", ValueRef::String("p/e")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
            true,
            &Keys::new(),
            &mut scratch,
        );
        assert_eq!(n, 1);
        assert_eq!(scratch.touched_len(), 1);
        assert_eq!(delivered(&a), [(vec![], vec![a1, a2])]);
        assert!(delivered(&b).is_empty());
        // Removal takes a subscription out of routing.
        broker.remove_subscription(ca, a1).unwrap();
        assert_eq!(
            broker.remove_subscription(cb, a2),
            Err(NoSuchSubscription(a2))
        );
        route(
            &broker,
            &[
                ("EXPT", ValueRef::String("p/e")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
            true,
            &Keys::new(),
            &mut scratch,
        );
        assert_eq!(delivered(&a), [(vec![], vec![a2])]);
        assert_eq!(broker.unregister_client(ca), 1);
        // What is left is b's subscription, and it still routes.
        assert_eq!(broker.subscription_count(), 1);
        route(
            &broker,
            &[("EXPT", ValueRef::String("p/other"))],
            true,
            &Keys::new(),
            &mut scratch,
        );
        assert_eq!(delivered(&b), [(vec![], vec![b1])]);
    }

    #[test]
    fn wide_fan_out_touches_each_outbox_once() {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(metrics.clone());
        let outboxes: Vec<_> = (0..100).map(|_| new_outbox(&metrics)).collect();
        for outbox in &outboxes {
            let client = broker.register_client(outbox.clone(), Keys::new());
            broker.add_subscription(client, compile("x == 1"), true, Keys::new());
            broker.add_subscription(client, compile("x > 0"), true, Keys::new());
        }
        let mut scratch = RouteScratch::new();
        for _ in 0..3 {
            assert_eq!(
                route(
                    &broker,
                    &[("x", ValueRef::Int32(1))],
                    true,
                    &Keys::new(),
                    &mut scratch
                ),
                100
            );
        }
        assert_eq!(scratch.touched_len(), 100);
        for outbox in &outboxes {
            let got = delivered(outbox);
            assert_eq!(got.len(), 3);
            assert!(
                got.iter()
                    .all(|(secure, insecure)| secure.is_empty() && insecure.len() == 2)
            );
        }
    }

    #[test]
    fn insecure_notifications_reach_only_accepting_subscriptions() {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(metrics.clone());
        let out = new_outbox(&metrics);
        let c = broker.register_client(out.clone(), Keys::new());
        let accepting = broker.add_subscription(c, compile("x == 1"), true, Keys::new());
        broker.add_subscription(c, compile("x == 1"), false, Keys::new());
        let mut scratch = RouteScratch::new();
        route(
            &broker,
            &[("x", ValueRef::Int32(1))],
            true,
            &Keys::new(),
            &mut scratch,
        );
        assert_eq!(delivered(&out), [(vec![], vec![accepting])]);
        // deliver_insecure false and no keys: nothing at all, not even
        // evaluated.
        let before = scratch.evaluations;
        assert_eq!(
            route(
                &broker,
                &[("x", ValueRef::Int32(1))],
                false,
                &Keys::new(),
                &mut scratch
            ),
            0
        );
        assert_eq!(scratch.evaluations, before);
    }

    #[test]
    fn producer_keys_make_secure_matches() {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(metrics.clone());
        let out = new_outbox(&metrics);
        let c = broker.register_client(out.clone(), Keys::new());
        let private = b"secret".to_vec();
        // The subscriber holds the producer's public key.
        let public = Keys {
            entries: vec![KeyEntry::Producer(vec![
                elvin_proto::keys::sha1_public_key(&private).to_vec(),
            ])],
        };
        let keyed = broker.add_subscription(c, compile("x == 1"), false, public);
        let open = broker.add_subscription(c, compile("x == 1"), true, Keys::new());
        let message_keys = Keys {
            entries: vec![KeyEntry::Producer(vec![private])],
        }
        .to_public_for_notification();
        let mut scratch = RouteScratch::new();
        route(
            &broker,
            &[("x", ValueRef::Int32(1))],
            true,
            &message_keys,
            &mut scratch,
        );
        assert_eq!(delivered(&out), [(vec![keyed], vec![open])]);
        route(
            &broker,
            &[("x", ValueRef::Int32(1))],
            false,
            &message_keys,
            &mut scratch,
        );
        assert_eq!(delivered(&out), [(vec![keyed], vec![])]);
    }

    #[test]
    fn evaluations_follow_candidates_not_table_size() {
        let metrics = Arc::new(Metrics::default());
        let broker = Broker::new(metrics.clone());
        let out = new_outbox(&metrics);
        let c = broker.register_client(out.clone(), Keys::new());
        for i in 0..100_000 {
            let expr = format!(
                r#"( EXPT == "p/e{i}" ) && ( HOST == "*" || HOST == "h{i}" ) && SCHEDULER == 0"#
            );
            broker.add_subscription(c, compile(&expr), true, Keys::new());
        }
        let wanted = broker.add_subscription(
            c,
            compile(r#"( EXPT == "p/target" ) && ( HOST == "*" ) && SCHEDULER == 0"#),
            true,
            Keys::new(),
        );
        assert_eq!(broker.subscription_count(), 100_001);
        let mut scratch = RouteScratch::new();
        let n = route(
            &broker,
            &[
                ("SITE", ValueRef::String("emulab.net")),
                ("EXPT", ValueRef::String("p/target")),
                ("HOST", ValueRef::String("*")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
            true,
            &Keys::new(),
            &mut scratch,
        );
        assert_eq!(n, 1);
        // At most the few subscriptions filed under a shared value before
        // the selective ones had postings can be candidates, plus the one
        // that matches.
        assert!(
            scratch.evaluations <= 3,
            "evaluated {}",
            scratch.evaluations
        );
        assert_eq!(delivered(&out), [(vec![], vec![wanted])]);
        let evaluated = scratch.evaluations;
        scratch.finish_batch(&metrics);
        assert_eq!(metrics.snapshot().evaluations, evaluated);
    }
}
