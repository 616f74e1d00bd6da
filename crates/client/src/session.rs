//! The connection task: the one task that owns a client's socket.
//!
//! For each connection it runs the reader and the writer side by side (in
//! the same task, so a router that stops reading cannot stop us from
//! reading, and vice versa), plus the keep-alive timer. The reader decodes
//! every frame and acts on it at once:
//!
//! - replies (SubRply, SecRply, DisconnRply, Nack) are matched to the
//!   pending request by xid and the request's recorded action is applied;
//! - NotifyDeliver is routed to every local subscription named in its two
//!   id lists (secure matches first, each subscription at most once);
//! - TestConn is answered with ConfConn; DropWarn is counted and logged;
//! - Disconn ends the connection with its reason;
//! - anything a router never sends to a client ends the connection as a
//!   protocol error.
//!
//! When a connection ends, every waiting request fails with the reason and
//! every subscription is marked for re-establishment. Without automatic
//! reconnect the client is then closed for good; with it, the task retries
//! and, once connected, re-sends every live subscription in the background
//! while new requests are already accepted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use elvin_proto::{ConfConn, DisconnRqst, NotifyDeliver, Packet, SubAddRqst, SubDelRqst, TestConn};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ConnectionEvent, ConnectionState, nack_error};
use crate::error::{
    ClientError, NackCategory, ProtocolViolation, TimeoutKind, disconn_reason_name,
};
use crate::options::Reconnect;
use crate::queue::{Ended, Notification, SubscriptionId};
use crate::state::{
    Inner, Link, OutFrame, Pending, PendingAction, Phase, Reply, Shared, SubStatus,
};
use crate::transport::{self, Established, deadline_after};

/// Opens a connection with the client's current connection keys.
pub(crate) async fn establish_for(inner: &Inner) -> Result<Established, ClientError> {
    let (xid, notification_keys, subscription_keys) = {
        let mut shared = inner.lock();
        (
            shared.allocate_xid(inner.uri())?,
            shared.notification_keys.clone(),
            shared.subscription_keys.clone(),
        )
    };
    transport::establish(&inner.config, xid, notification_keys, subscription_keys).await
}

/// True for failures that another attempt may get past (the router is
/// down or restarting), false for refusals and bad settings.
pub(crate) fn is_retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Nack(nack) => nack.category != NackCategory::Connection,
        ClientError::Config(_)
        | ClientError::InvalidUri(_)
        | ClientError::TooLarge(_)
        | ClientError::ClientClosed => false,
        _ => true,
    }
}

/// Installs the first connection and starts the connection task.
pub(crate) fn start(inner: &Arc<Inner>, established: Established) -> JoinHandle<()> {
    let (link, frames) = install(inner, &established, Phase::Connected);
    let task_inner = inner.clone();
    inner
        .runtime
        .spawn(async move { connection_task(task_inner, established, link, frames).await })
}

/// Publishes a new connection's link and moves to `phase`.
fn install(
    inner: &Inner,
    established: &Established,
    phase: Phase,
) -> (Arc<Link>, mpsc::UnboundedReceiver<OutFrame>) {
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let max_packet = established.negotiated.packet_max_length();
    // At least one maximum-size frame always fits, so a large notification
    // can never wait for ever.
    let budget_total = inner
        .config
        .options
        .send_buffer
        .max(max_packet.saturating_add(4))
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let link = Arc::new(Link {
        frames: frames_tx,
        budget: Arc::new(Semaphore::new(budget_total)),
        budget_total,
        max_packet,
        negotiated: established.negotiated.clone(),
        wake: tokio::sync::Notify::new(),
        confconn_due: Default::default(),
        testconn_due: Default::default(),
    });
    let mut shared = inner.lock();
    shared.link = Some(link.clone());
    shared.generation = shared.generation.wrapping_add(1);
    if !matches!(shared.phase, Phase::Closing | Phase::Closed(_)) {
        shared.phase = phase;
    }
    (link, frames_rx)
}

/// How one connection ended.
enum SessionEnd {
    /// The client is stopping.
    Shutdown,
    /// The connection failed.
    Failed(ClientError),
}

async fn connection_task(
    inner: Arc<Inner>,
    mut established: Established,
    mut link: Arc<Link>,
    mut frames: mpsc::UnboundedReceiver<OutFrame>,
) {
    loop {
        let end = run_session(&inner, established, &link, frames).await;
        let error = match end {
            SessionEnd::Shutdown => None,
            SessionEnd::Failed(error) => Some(error),
        };
        let stopping = inner.shutdown_requested.load(Ordering::SeqCst)
            || inner.closed_by_user.load(Ordering::SeqCst);
        teardown(&inner, error.clone().unwrap_or(ClientError::ClientClosed));
        let (error, policy) = match (error, inner.config.options.reconnect) {
            (Some(error), Some(policy)) if !stopping => (error, policy),
            (error, _) => {
                finalize(&inner, if stopping { None } else { error });
                return;
            }
        };
        tracing::warn!(uri = %inner.uri(), error = %error, "connection lost; reconnecting");
        let _ = inner.events_tx.send(ConnectionEvent::Lost {
            error: error.clone(),
        });
        match reconnect(&inner, policy, error).await {
            Some((new_established, attempt)) => {
                let (new_link, new_frames) =
                    install(&inner, &new_established, Phase::Resubscribing { attempt });
                let generation = inner.lock().generation;
                let resubscriber = inner.clone();
                inner.runtime.spawn(async move {
                    resubscribe_all(resubscriber, generation, attempt).await;
                });
                established = new_established;
                link = new_link;
                frames = new_frames;
            }
            None => return,
        }
    }
}

/// Retries until connected, the policy gives up, or the client stops.
/// Returns `None` after finalizing when it gives up.
async fn reconnect(
    inner: &Arc<Inner>,
    policy: Reconnect,
    mut error: ClientError,
) -> Option<(Established, u32)> {
    let mut attempt: u32 = 0;
    loop {
        if policy.max_retries.is_some_and(|max| attempt >= max) {
            tracing::error!(uri = %inner.uri(), attempts = attempt, error = %error, "giving up reconnecting");
            finalize(inner, Some(error));
            return None;
        }
        attempt = attempt.saturating_add(1);
        set_phase(inner, Phase::Reconnecting { attempt });
        inner.state_tx.send_replace(ConnectionState::Reconnecting {
            attempt,
            error: error.clone(),
        });
        tokio::select! {
            () = tokio::time::sleep(policy.retry_interval) => {}
            () = inner.shutdown.notified() => {}
        }
        if inner.shutdown_requested.load(Ordering::SeqCst) {
            finalize(inner, None);
            return None;
        }
        let attempt_result = tokio::select! {
            result = establish_for(inner) => Some(result),
            () = inner.shutdown.notified() => None,
        };
        match attempt_result {
            None => {
                finalize(inner, None);
                return None;
            }
            Some(Ok(established)) => return Some((established, attempt)),
            Some(Err(failure)) => {
                tracing::info!(uri = %inner.uri(), attempt, error = %failure, "reconnect attempt failed");
                let _ = inner.events_tx.send(ConnectionEvent::ReconnectFailed {
                    attempt,
                    error: failure.clone(),
                });
                if !is_retryable(&failure) {
                    finalize(inner, Some(failure));
                    return None;
                }
                error = failure;
            }
        }
    }
}

fn set_phase(inner: &Inner, phase: Phase) {
    let mut shared = inner.lock();
    if !matches!(shared.phase, Phase::Closing | Phase::Closed(_)) {
        shared.phase = phase;
    }
}

/// Re-sends every subscription marked for it after a reconnect, then
/// reports the connection as up. Stops quietly if the connection changes
/// again meanwhile.
async fn resubscribe_all(inner: Arc<Inner>, generation: u64, attempt: u32) {
    let mut resubscribed = 0usize;
    let mut failed = 0usize;
    loop {
        // One at a time: the router answers in order anyway, and this
        // keeps the pending table small for clients with many
        // subscriptions.
        let next = {
            let mut shared = inner.lock();
            if shared.generation != generation {
                return;
            }
            let Some(link) = shared.link.clone() else {
                return;
            };
            let candidate = shared
                .subs
                .iter()
                .find(|(_, entry)| entry.status == SubStatus::NeedsResubscribe)
                .map(|(id, entry)| {
                    (
                        *id,
                        entry.expression.clone(),
                        entry.accept_insecure,
                        entry.keys.clone(),
                    )
                });
            let Some((local, expression, accept_insecure, keys)) = candidate else {
                break;
            };
            let xid = match shared.allocate_xid(inner.uri()) {
                Ok(xid) => xid,
                Err(_) => return,
            };
            let packet = Packet::SubAddRqst(SubAddRqst {
                xid,
                expression,
                accept_insecure,
                keys,
            });
            let mut frame = Vec::new();
            if let Err(error) = packet.try_encode(&mut frame, link.max_packet) {
                // The new router accepts smaller packets than the old one.
                if let Some(entry) = shared.subs.remove(&local) {
                    entry.queue.end(Ended::Failed(ClientError::TooLarge(error)));
                }
                failed += 1;
                continue;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            shared.pending.insert(
                xid,
                Pending {
                    request: "SubAddRqst",
                    reply: Some(tx),
                    action: PendingAction::Resubscribe(local),
                },
            );
            if let Some(entry) = shared.subs.get_mut(&local) {
                entry.status = SubStatus::Resubscribing(xid);
            }
            (link, frame, rx)
        };
        let (link, frame, rx) = next;
        let timeout = inner.config.options.request_timeout;
        if link
            .send(
                frame,
                deadline_after(Instant::now(), timeout),
                timeout,
                inner.uri(),
            )
            .await
            .is_err()
        {
            return;
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(_))) => resubscribed += 1,
            Ok(Ok(Err(ClientError::Nack(_)))) => failed += 1,
            // The connection failed (the task will start over) or the
            // router stopped answering (the keep-alive or the next
            // failure will notice).
            _ => return,
        }
    }
    {
        let mut shared = inner.lock();
        if shared.generation != generation {
            return;
        }
        if matches!(shared.phase, Phase::Resubscribing { .. }) {
            shared.phase = Phase::Connected;
        } else {
            return;
        }
    }
    tracing::info!(uri = %inner.uri(), attempt, resubscribed, failed, "reconnected");
    inner.state_tx.send_replace(ConnectionState::Connected);
    let _ = inner.events_tx.send(ConnectionEvent::Reconnected {
        attempt,
        resubscribed,
        failed,
    });
}

/// Forgets the dead connection: fails waiting requests with `error`, and
/// marks every subscription for re-establishment.
fn teardown(inner: &Inner, error: ClientError) {
    let mut shared = inner.lock();
    shared.link = None;
    shared.by_router_id.clear();
    shared.test_waiters.clear();
    let pending: Vec<Pending> = shared.pending.drain().map(|(_, p)| p).collect();
    for Pending { reply, action, .. } in pending {
        if let PendingAction::SubAdd(local) = action {
            // A subscribe in flight fails; its caller gets the error.
            if let Some(entry) = shared.subs.remove(&local)
                && entry.owns_queue
            {
                entry.queue.end(Ended::Failed(error.clone()));
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(Err(error.clone()));
        }
    }
    for entry in shared.subs.values_mut() {
        entry.status = SubStatus::NeedsResubscribe;
    }
}

/// Ends the client for good: `None` for a normal close, otherwise the
/// error that ended it. Idempotent.
pub(crate) fn finalize(inner: &Inner, error: Option<ClientError>) {
    {
        let mut shared = inner.lock();
        if matches!(shared.phase, Phase::Closed(_)) {
            return;
        }
        shared.phase = Phase::Closed(error.clone());
        shared.link = None;
        shared.by_router_id.clear();
        shared.test_waiters.clear();
        let failure = match &error {
            Some(error) => ClientError::ConnectionLost(Box::new(error.clone())),
            None => ClientError::ClientClosed,
        };
        for (_, pending) in shared.pending.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(failure.clone()));
            }
        }
        let ended = match &error {
            Some(error) => Ended::Failed(ClientError::ConnectionLost(Box::new(error.clone()))),
            None => Ended::Normally,
        };
        for (_, entry) in shared.subs.drain() {
            entry.queue.end(ended.clone());
        }
    }
    match &error {
        Some(error) => tracing::warn!(uri = %inner.uri(), error = %error, "connection closed"),
        None => tracing::debug!(uri = %inner.uri(), "connection closed"),
    }
    inner.state_tx.send_replace(ConnectionState::Closed {
        error: error.clone(),
    });
    let _ = inner.events_tx.send(ConnectionEvent::Closed { error });
}

/// Runs one connection until it fails or the client stops.
async fn run_session(
    inner: &Arc<Inner>,
    established: Established,
    link: &Arc<Link>,
    frames: mpsc::UnboundedReceiver<OutFrame>,
) -> SessionEnd {
    let Established {
        mut reader, writer, ..
    } = established;
    let uri = inner.uri().to_owned();
    let last_received = std::sync::Mutex::new(Instant::now());

    let read = async {
        loop {
            let body = match reader.next_frame(&uri).await {
                Ok(Some(body)) => body,
                Ok(None) => {
                    return ClientError::Closed {
                        mid_frame: false,
                        uri: uri.clone(),
                    };
                }
                Err(error) => return error,
            };
            *last_received.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            let packet = match transport::decode(&body, &uri) {
                Ok(packet) => packet,
                Err(error) => return error,
            };
            if let Err(error) = handle_packet(inner, link, packet) {
                return error;
            }
        }
    };
    let write = write_loop(writer, frames, link, &uri);
    tokio::pin!(read);
    tokio::pin!(write);

    let keepalive = inner.config.options.keepalive;
    let probe_timeout = inner.config.options.request_timeout;
    let mut probe_sent: Option<Instant> = None;
    loop {
        // The flag backs up the notification below, so a stop can never be
        // missed.
        if inner.shutdown_requested.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        let last = *last_received.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sent) = probe_sent
            && last >= sent
        {
            probe_sent = None;
        }
        let next_check = match (keepalive, probe_sent) {
            (None, _) => None,
            (Some(_), Some(sent)) => {
                if now >= deadline_after(sent, probe_timeout) {
                    return SessionEnd::Failed(ClientError::Timeout {
                        what: TimeoutKind::Liveness,
                        after: probe_timeout,
                        uri: uri.clone(),
                    });
                }
                Some(deadline_after(sent, probe_timeout))
            }
            (Some(idle), None) => {
                if now >= deadline_after(last, idle) {
                    link.testconn_due.store(true, Ordering::SeqCst);
                    link.wake.notify_one();
                    probe_sent = Some(now);
                    Some(deadline_after(now, probe_timeout))
                } else {
                    Some(deadline_after(last, idle))
                }
            }
        };
        let far = deadline_after(now, Duration::from_secs(24 * 3600));
        tokio::select! {
            error = &mut read => return SessionEnd::Failed(error),
            error = &mut write => return SessionEnd::Failed(error),
            () = inner.shutdown.notified() => break,
            () = tokio::time::sleep_until(next_check.unwrap_or(far)) => {}
        }
    }

    // Stopping. If the user called close(), the goodbye has been said;
    // otherwise (every handle dropped) say it now, briefly.
    if !inner.closed_by_user.load(Ordering::SeqCst) {
        let frame = {
            let mut shared = inner.lock();
            shared.quiet_request(&uri, |xid| Packet::DisconnRqst(DisconnRqst { xid }))
        };
        if let Some(frame) = frame {
            link.send_now(frame);
            let timeout = inner.config.options.close_timeout;
            let _ = tokio::time::timeout(timeout, async {
                tokio::select! {
                    _ = &mut read => {}
                    _ = &mut write => {}
                }
            })
            .await;
        }
    }
    SessionEnd::Shutdown
}

/// Writes queued frames and control packets, batching whatever is ready
/// into one flush.
async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    mut frames: mpsc::UnboundedReceiver<OutFrame>,
    link: &Link,
    uri: &str,
) -> ClientError {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let io_error = |e| ClientError::io(uri, e);
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if let Err(e) = writer.write_all(&frame.bytes).await {
                        return io_error(e);
                    }
                    drop(frame);
                    while let Ok(frame) = frames.try_recv() {
                        if let Err(e) = writer.write_all(&frame.bytes).await {
                            return io_error(e);
                        }
                    }
                }
                None => {
                    let _ = writer.shutdown().await;
                    return ClientError::Closed { mid_frame: false, uri: uri.to_owned() };
                }
            },
            () = link.wake.notified() => {}
        }
        let mut control = Vec::new();
        if link.confconn_due.swap(false, Ordering::SeqCst) {
            Packet::ConfConn(ConfConn).encode(&mut control);
        }
        if link.testconn_due.swap(false, Ordering::SeqCst) {
            Packet::TestConn(TestConn).encode(&mut control);
        }
        if !control.is_empty()
            && let Err(e) = writer.write_all(&control).await
        {
            return io_error(e);
        }
        if let Err(e) = writer.flush().await {
            return io_error(e);
        }
    }
}

/// Acts on one packet from the router. An error ends the connection.
fn handle_packet(inner: &Inner, link: &Link, packet: Packet) -> Result<(), ClientError> {
    let uri = inner.uri();
    let mut shared = inner.lock();
    // Any packet proves the router is alive (it skips ConfConn when it has
    // other packets queued for us).
    for waiter in shared.test_waiters.drain(..) {
        let _ = waiter.send(());
    }
    match packet {
        Packet::NotifyDeliver(deliver) => {
            deliver_notification(&shared, deliver);
            Ok(())
        }
        Packet::Nack(_) | Packet::SubRply(_) | Packet::SecRply(_) | Packet::DisconnRply(_) => {
            handle_reply(inner, &mut shared, link, packet)
        }
        Packet::Disconn(disconn) => Err(ClientError::Disconnected {
            reason: disconn.reason,
            reason_name: disconn_reason_name(disconn.reason),
            text: disconn.args,
            uri: uri.to_owned(),
        }),
        Packet::DropWarn(_) => {
            let total = inner
                .drop_warnings
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            tracing::warn!(
                uri = %uri,
                drop_warnings = total,
                "the router dropped packets for this client (DropWarn): it is not reading fast enough"
            );
            Ok(())
        }
        Packet::TestConn(_) => {
            link.confconn_due.store(true, Ordering::SeqCst);
            link.wake.notify_one();
            Ok(())
        }
        Packet::ConfConn(_) => Ok(()),
        // A second ConnRply, a QosRply or QnchRply (never requested) and
        // every client-to-router packet.
        other => Err(ClientError::protocol(
            uri,
            ProtocolViolation::UnexpectedPacket {
                packet: other.name(),
            },
        )),
    }
}

/// Routes a NotifyDeliver to each matching local subscription, once each,
/// as secure if it is in the secure list.
fn deliver_notification(shared: &Shared, deliver: NotifyDeliver) {
    let NotifyDeliver {
        attributes,
        secure_matches,
        insecure_matches,
    } = deliver;
    let mut targets: Vec<(SubscriptionId, bool)> = secure_matches
        .iter()
        .map(|id| (id, true))
        .chain(insecure_matches.iter().map(|id| (id, false)))
        .filter_map(|(id, secure)| shared.by_router_id.get(id).map(|local| (*local, secure)))
        .collect();
    // Secure before insecure for the same subscription, then keep the first.
    targets.sort_by_key(|(local, secure)| (*local, !*secure));
    targets.dedup_by_key(|(local, _)| *local);
    if targets.is_empty() {
        tracing::debug!(
            "NotifyDeliver for no current subscription (a late delivery after a removal)"
        );
        return;
    }
    let attributes = Arc::new(attributes);
    for (local, secure) in targets {
        if let Some(entry) = shared.subs.get(&local) {
            entry.queue.push(Notification {
                subscription: local,
                attributes: attributes.clone(),
                secure,
            });
        }
    }
}

/// Matches a reply to its request and applies the request's action.
fn handle_reply(
    inner: &Inner,
    shared: &mut Shared,
    link: &Link,
    packet: Packet,
) -> Result<(), ClientError> {
    let uri = inner.uri();
    let Some(xid) = packet.xid() else {
        return Ok(());
    };
    let Some(pending) = shared.pending.remove(&xid) else {
        // A late reply to a request that timed out.
        tracing::debug!(
            xid,
            packet = packet.name(),
            "reply for no outstanding request"
        );
        return Ok(());
    };
    let Pending {
        request,
        reply,
        action,
    } = pending;
    let outcome = match packet {
        Packet::Nack(nack) => {
            let error = nack_error(request, nack);
            apply_refusal(shared, &action, &error);
            Err(error)
        }
        Packet::SubRply(rply) if action.expected_reply() == "SubRply" => {
            apply_sub_reply(inner, shared, link, action, rply.subscription_id);
            Ok(Reply::Sub)
        }
        Packet::SecRply(_) if action.expected_reply() == "SecRply" => {
            if let PendingAction::Sec(change) = action {
                shared
                    .notification_keys
                    .add_keys(&change.add_notification_keys);
                shared
                    .notification_keys
                    .remove_keys(&change.del_notification_keys);
                shared
                    .subscription_keys
                    .add_keys(&change.add_subscription_keys);
                shared
                    .subscription_keys
                    .remove_keys(&change.del_subscription_keys);
            }
            Ok(Reply::Sec)
        }
        Packet::DisconnRply(_) if action.expected_reply() == "DisconnRply" => Ok(Reply::Disconn),
        other => {
            let error = ClientError::protocol(
                uri,
                ProtocolViolation::MismatchedReply {
                    reply: other.name(),
                    request,
                },
            );
            // The caller learns the real reason, not just "connection lost".
            if let Some(reply) = reply {
                let _ = reply.send(Err(error.clone()));
            }
            return Err(error);
        }
    };
    if let Some(reply) = reply {
        let _ = reply.send(outcome);
    }
    Ok(())
}

/// What a Nack means for the local state.
fn apply_refusal(shared: &mut Shared, action: &PendingAction, error: &ClientError) {
    match action {
        PendingAction::SubAdd(local) => {
            if let Some(entry) = shared.subs.remove(local)
                && entry.owns_queue
            {
                entry.queue.end(Ended::Failed(error.clone()));
            }
        }
        PendingAction::Resubscribe(local) => {
            // The new router refuses what the old one accepted (different
            // limits or keys): the subscription ends with the reason.
            tracing::warn!(subscription = %local, error = %error, "resubscription refused");
            if let Some(entry) = shared.subs.remove(local) {
                entry.queue.end(Ended::Failed(error.clone()));
            }
        }
        PendingAction::SubDel(local) => {
            // Gone either way.
            if let Some(entry) = shared.subs.remove(local) {
                if let SubStatus::Live(id) = entry.status {
                    shared.by_router_id.remove(&id);
                }
                if entry.owns_queue {
                    entry.queue.end(Ended::Normally);
                }
            }
        }
        PendingAction::Plain
        | PendingAction::SubMod { .. }
        | PendingAction::Sec(_)
        | PendingAction::Disconn
        | PendingAction::AbandonedSubAdd => {}
    }
}

/// Applies a SubRply to the subscription its request concerned.
fn apply_sub_reply(
    inner: &Inner,
    shared: &mut Shared,
    link: &Link,
    action: PendingAction,
    router_id: i64,
) {
    let unsubscribe = |shared: &mut Shared| {
        if let Some(frame) = shared.quiet_request(inner.uri(), |xid| {
            Packet::SubDelRqst(SubDelRqst {
                xid,
                subscription_id: router_id,
            })
        }) {
            link.send_now(frame);
        }
    };
    match action {
        PendingAction::SubAdd(local) | PendingAction::Resubscribe(local) => {
            match shared.subs.get_mut(&local) {
                Some(entry) => {
                    entry.status = SubStatus::Live(router_id);
                    shared.by_router_id.insert(router_id, local);
                }
                // Dropped while the request was in flight.
                None => unsubscribe(shared),
            }
        }
        PendingAction::AbandonedSubAdd => unsubscribe(shared),
        PendingAction::SubMod {
            local,
            expression,
            accept_insecure,
            add_keys,
            del_keys,
        } => {
            if let Some(entry) = shared.subs.get_mut(&local) {
                if let Some(expression) = expression {
                    entry.expression = expression;
                }
                entry.accept_insecure = accept_insecure;
                entry.keys.add_keys(&add_keys);
                entry.keys.remove_keys(&del_keys);
                // The protocol lets a router give a modified subscription a
                // new id.
                if let SubStatus::Live(old) = entry.status
                    && old != router_id
                {
                    entry.status = SubStatus::Live(router_id);
                    shared.by_router_id.remove(&old);
                    shared.by_router_id.insert(router_id, local);
                }
            }
        }
        PendingAction::SubDel(local) => {
            shared.by_router_id.remove(&router_id);
            if let Some(entry) = shared.subs.remove(&local) {
                if let SubStatus::Live(id) = entry.status {
                    shared.by_router_id.remove(&id);
                }
                if entry.owns_queue {
                    entry.queue.end(Ended::Normally);
                }
            }
        }
        PendingAction::Plain | PendingAction::Sec(_) | PendingAction::Disconn => {}
    }
}
