//! Per-client send queues: bounded, with drop policies and DropWarn.
//!
//! Every connection has one [`Outbox`]: a queue of encoded frames behind a
//! mutex, plus the way to write them. Producers' reader tasks append
//! NotifyDeliver frames while they route a read batch and then flush each
//! outbox they touched *directly* from their own task with a non-blocking
//! write (`TcpStream::try_write_vectored` takes `&self`, so the socket is
//! shared by `Arc`). That keeps the common path free of task hops (good for
//! latency) and gives one write system call per client per read batch (good
//! for throughput). Only when the socket cannot take everything does a
//! flush task start (one at most per connection) to wait for writability
//! and drain the rest. TLS connections cannot share their stream that way;
//! their outbox wakes a writer task that owns the TLS stream instead.
//!
//! # Bounds
//!
//! The queue holds at most `Send-Queue.Max-Length` bytes of *droppable*
//! frames: NotifyDeliver and ConfConn. When a new NotifyDeliver does not
//! fit, the connection's `Send-Queue.Drop-Policy` decides:
//!
//! | policy | effect |
//! |---|---|
//! | `oldest` | drop the oldest queued droppable frames until the new one fits |
//! | `newest` | drop the new frame |
//! | `largest` | drop the largest droppable frames (the new one included) until it fits |
//! | `fail`, `none` | the client can neither lose data nor grow the queue: its queued notifications are discarded and the connection is closed with Disconn |
//!
//! A frame already partly written is never dropped (that would corrupt the
//! stream). After a drop, one DropWarn is placed ahead of the next frame
//! the client will receive; further drops before that DropWarn has been
//! written belong to the same episode and add nothing. ConfConn is dropped
//! silently.
//!
//! Replies (SubRply, Nack, ConnRply, …) are never dropped. They can only be
//! produced by the client's own requests, so instead of dropping them the
//! client's reader stops reading while the queue is over the limit
//! ([`Outbox::wait_for_space`]): a client that sends requests without
//! reading the answers is throttled, and memory stays bounded by the limit
//! plus the replies to one read batch.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use elvin_proto::options::DropPolicy;
use elvin_proto::{Message, encode_notify_deliver_raw, notify_deliver_raw_len};
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::metrics::{self, Metrics};

/// Most frames gathered into one vectored write.
const MAX_IOVECS: usize = 256;
/// Most bytes offered to one vectored write.
const MAX_WRITE_BYTES: usize = 256 * 1024;

/// What a frame is, for the drop policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A NotifyDeliver: droppable, counted when dropped.
    Deliver,
    /// A ConfConn: droppable silently.
    ConfConn,
    /// The DropWarn of the current drop episode.
    DropWarn,
    /// A reply or Disconn: never dropped.
    Reply,
}

impl FrameKind {
    fn droppable(self) -> bool {
        matches!(self, FrameKind::Deliver | FrameKind::ConfConn)
    }
}

#[derive(Debug)]
struct Frame {
    data: Vec<u8>,
    kind: FrameKind,
}

/// The life cycle of an outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxState {
    /// Accepting frames.
    Open,
    /// The last frame (DisconnRply or Disconn) is queued; nothing more is
    /// accepted.
    Closing,
    /// The drop policy is `fail`/`none` and the queue overflowed: the
    /// connection must be closed.
    Overflowed,
    /// Writing failed (the peer went away); everything is discarded.
    Broken,
}

/// What happened to a NotifyDeliver offered to an outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverOutcome {
    /// Queued (possibly after dropping older frames).
    Queued,
    /// Not queued: dropped by the policy or too large for the client.
    Dropped,
    /// Not queued, and the connection must now be closed (policy `fail`).
    Overflow,
    /// Not queued: the outbox is closing or broken.
    Closed,
}

/// The result of a flush attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Nothing left to write.
    Empty,
    /// Frames remain; the socket is full (or a writer task was woken).
    Pending,
    /// Writing failed; the outbox is broken.
    Broken,
}

/// How an outbox's frames reach the client.
#[derive(Debug)]
pub enum Sink {
    /// Plain TCP: written directly with non-blocking writes.
    Tcp(Arc<TcpStream>),
    /// A writer task (TLS) woken through this notifier, which drains frames
    /// with [`Outbox::take_batch`]. Also used detached (no task) in tests
    /// and benchmarks.
    Writer(Arc<Notify>),
}

/// Queue limits, set at connection time and again after ConnRqst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Bytes of droppable frames the queue may hold.
    pub max_bytes: usize,
    /// What to drop when full.
    pub policy: DropPolicy,
    /// The client's Packet.Max-Length: larger NotifyDelivers are dropped.
    pub max_packet: usize,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Frame>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Bytes of every queued frame (whole frames, written parts included).
    bytes: usize,
    limits: QueueLimits,
    /// A DropWarn is queued and not yet completely written.
    warn_queued: bool,
    state: OutboxState,
    /// The owner waits in [`Outbox::wait_for_space`].
    space_waiter: bool,
}

impl Queue {
    /// Index of the first frame that may be removed or preceded (a partly
    /// written head frame must stay first).
    fn first_movable(&self) -> usize {
        usize::from(self.head_written > 0)
    }

    fn remove_at(&mut self, index: usize) -> Option<Frame> {
        let frame = self.frames.remove(index)?;
        self.bytes = self.bytes.saturating_sub(frame.data.len());
        Some(frame)
    }

    fn append(&mut self, data: Vec<u8>, kind: FrameKind) {
        self.bytes = self.bytes.saturating_add(data.len());
        self.frames.push_back(Frame { data, kind });
    }

    /// Records `count` dropped NotifyDelivers and queues the episode's
    /// DropWarn ahead of the next frame to be written.
    fn note_drops(&mut self, count: u64, metrics: &Metrics) {
        if count == 0 {
            return;
        }
        metrics::add(&metrics.notifications_dropped, count);
        if !self.warn_queued {
            let mut data = Vec::with_capacity(8);
            elvin_proto::DropWarn.encode_frame(&mut data);
            self.bytes = self.bytes.saturating_add(data.len());
            let at = self.first_movable().min(self.frames.len());
            self.frames.insert(
                at,
                Frame {
                    data,
                    kind: FrameKind::DropWarn,
                },
            );
            self.warn_queued = true;
        }
    }

    /// Removes droppable frames (oldest first) until `incoming` more bytes
    /// fit; returns how many NotifyDelivers went.
    fn drop_oldest(&mut self, incoming: usize) -> u64 {
        let mut dropped = 0;
        let mut index = self.first_movable();
        while self.bytes.saturating_add(incoming) > self.limits.max_bytes
            && index < self.frames.len()
        {
            let kind = self.frames.get(index).map(|f| f.kind);
            match kind {
                Some(kind) if kind.droppable() => {
                    self.remove_at(index);
                    if kind == FrameKind::Deliver {
                        dropped += 1;
                    }
                }
                _ => index += 1,
            }
        }
        dropped
    }

    /// Removes the largest droppable frames while that makes room for
    /// `incoming` bytes; returns (NotifyDelivers dropped, whether the
    /// incoming frame fits now).
    fn drop_largest(&mut self, incoming: usize) -> (u64, bool) {
        let mut dropped = 0;
        while self.bytes.saturating_add(incoming) > self.limits.max_bytes {
            let start = self.first_movable();
            let largest = self
                .frames
                .iter()
                .enumerate()
                .skip(start)
                .filter(|(_, f)| f.kind.droppable())
                .max_by_key(|(_, f)| f.data.len())
                .map(|(i, f)| (i, f.data.len(), f.kind));
            match largest {
                Some((index, len, kind)) if len >= incoming => {
                    self.remove_at(index);
                    if kind == FrameKind::Deliver {
                        dropped += 1;
                    }
                }
                // The incoming frame is the largest: it is the one to go.
                _ => return (dropped, false),
            }
        }
        (dropped, true)
    }

    /// Discards every droppable frame not yet started.
    fn discard_droppable(&mut self) -> u64 {
        let start = self.first_movable();
        let mut dropped = 0;
        let mut index = start;
        while index < self.frames.len() {
            let kind = self.frames.get(index).map(|f| f.kind);
            match kind {
                Some(kind) if kind.droppable() => {
                    self.remove_at(index);
                    if kind == FrameKind::Deliver {
                        dropped += 1;
                    }
                }
                _ => index += 1,
            }
        }
        dropped
    }

    /// Accounts for `written` bytes having left through the socket;
    /// returns the number of DropWarns completed.
    fn consume(&mut self, mut written: usize) -> u64 {
        let mut warns = 0;
        while written > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let remaining = front.data.len().saturating_sub(self.head_written);
            if written >= remaining {
                written -= remaining;
                self.head_written = 0;
                if let Some(frame) = self.remove_at(0)
                    && frame.kind == FrameKind::DropWarn
                {
                    self.warn_queued = false;
                    warns += 1;
                }
            } else {
                self.head_written += written;
                written = 0;
            }
        }
        warns
    }
}

/// A client's send queue and the means to write it.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    sink: Sink,
    /// A flush task is running for this outbox.
    flush_task_active: AtomicBool,
    /// Wakes the owner waiting for room (throttled reading).
    space: Notify,
    /// Wakes the owner when the connection must end (overflow, broken).
    alert: Notify,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// A new, empty outbox.
    pub fn new(sink: Sink, limits: QueueLimits, metrics: Arc<Metrics>) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                head_written: 0,
                bytes: 0,
                limits,
                warn_queued: false,
                state: OutboxState::Open,
                space_waiter: false,
            }),
            sink,
            flush_task_active: AtomicBool::new(false),
            space: Notify::new(),
            alert: Notify::new(),
            metrics,
        })
    }

    /// Changes the limits (after ConnRqst negotiation).
    pub fn set_limits(&self, limits: QueueLimits) {
        self.queue.lock().limits = limits;
    }

    /// The current state.
    pub fn state(&self) -> OutboxState {
        self.queue.lock().state
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.lock().frames.is_empty()
    }

    /// Queues a reply (never dropped). Returns false if the outbox no
    /// longer accepts frames.
    pub fn push_reply(&self, frame: Vec<u8>) -> bool {
        let mut q = self.queue.lock();
        if q.state != OutboxState::Open {
            return false;
        }
        q.append(frame, FrameKind::Reply);
        true
    }

    /// Queues the connection's last frame (DisconnRply or Disconn); the
    /// outbox then accepts nothing more. Unsent notifications are kept
    /// ahead of it (they were sent before the close), except after an
    /// overflow, where they were already discarded.
    pub fn push_final(&self, frame: Vec<u8>) {
        let mut q = self.queue.lock();
        if matches!(q.state, OutboxState::Open | OutboxState::Overflowed) {
            q.append(frame, FrameKind::Reply);
            q.state = OutboxState::Closing;
        }
    }

    /// Queues a ConfConn if, and only if, nothing else is waiting to be
    /// written (docs/protocol.md §5.2). Returns whether it was queued.
    pub fn push_confconn(&self) -> bool {
        let mut q = self.queue.lock();
        if q.state != OutboxState::Open || !q.frames.is_empty() {
            return false;
        }
        let mut data = Vec::with_capacity(8);
        elvin_proto::ConfConn.encode_frame(&mut data);
        q.append(data, FrameKind::ConfConn);
        true
    }

    /// Queues a NotifyDeliver built from a notification's raw attribute
    /// bytes and the matching subscription ids, applying the size limit
    /// and the drop policy.
    pub fn push_deliver(
        &self,
        raw_attributes: &[u8],
        secure: &[i64],
        insecure: &[i64],
    ) -> DeliverOutcome {
        let body_len = notify_deliver_raw_len(raw_attributes, secure, insecure);
        let mut q = self.queue.lock();
        if q.state != OutboxState::Open {
            return DeliverOutcome::Closed;
        }
        if body_len > q.limits.max_packet {
            q.note_drops(1, &self.metrics);
            return DeliverOutcome::Dropped;
        }
        let frame_len = body_len.saturating_add(4);
        if q.bytes.saturating_add(frame_len) > q.limits.max_bytes {
            match q.limits.policy {
                DropPolicy::Newest => {
                    q.note_drops(1, &self.metrics);
                    return DeliverOutcome::Dropped;
                }
                DropPolicy::Oldest => {
                    let dropped = q.drop_oldest(frame_len);
                    let fits = q.bytes.saturating_add(frame_len) <= q.limits.max_bytes;
                    q.note_drops(dropped + u64::from(!fits), &self.metrics);
                    if !fits {
                        return DeliverOutcome::Dropped;
                    }
                }
                DropPolicy::Largest => {
                    let (dropped, fits) = q.drop_largest(frame_len);
                    q.note_drops(dropped + u64::from(!fits), &self.metrics);
                    if !fits {
                        return DeliverOutcome::Dropped;
                    }
                }
                DropPolicy::Fail | DropPolicy::None => {
                    let dropped = q.discard_droppable() + 1;
                    metrics::add(&self.metrics.notifications_dropped, dropped);
                    q.state = OutboxState::Overflowed;
                    drop(q);
                    self.alert.notify_one();
                    return DeliverOutcome::Overflow;
                }
            }
        }
        let mut data = Vec::with_capacity(frame_len);
        encode_notify_deliver_raw(&mut data, raw_attributes, secure, insecure);
        q.append(data, FrameKind::Deliver);
        DeliverOutcome::Queued
    }

    /// Moves whole frames, up to about `max_bytes`, into `out` (for a writer
    /// task, and for tests). Returns the number of bytes moved.
    pub fn take_batch(&self, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        let mut q = self.queue.lock();
        let mut moved = 0;
        let mut warns = 0;
        while moved < max_bytes {
            let Some(frame) = q.remove_at(0) else { break };
            let start = q.head_written.min(frame.data.len());
            q.head_written = 0;
            out.extend_from_slice(frame.data.get(start..).unwrap_or(&[]));
            moved += frame.data.len() - start;
            if frame.kind == FrameKind::DropWarn {
                q.warn_queued = false;
                warns += 1;
            }
        }
        let wake = q.space_waiter && q.bytes <= q.limits.max_bytes;
        if wake {
            q.space_waiter = false;
        }
        drop(q);
        metrics::add(&self.metrics.dropwarns_sent, warns);
        if wake {
            self.space.notify_one();
        }
        moved
    }

    /// Writes as much as the socket takes now, without blocking. For a
    /// writer-task sink, wakes the writer instead.
    pub fn flush(&self) -> FlushOutcome {
        let stream = match &self.sink {
            Sink::Tcp(stream) => stream,
            Sink::Writer(wake) => {
                let empty = self.is_empty();
                if empty {
                    return FlushOutcome::Empty;
                }
                wake.notify_one();
                return FlushOutcome::Pending;
            }
        };
        let mut q = self.queue.lock();
        let mut warns = 0;
        let outcome = loop {
            if q.state == OutboxState::Broken {
                break FlushOutcome::Broken;
            }
            if q.frames.is_empty() {
                break FlushOutcome::Empty;
            }
            let result = {
                let mut slices: SmallVec<[IoSlice<'_>; MAX_IOVECS]> = SmallVec::new();
                let mut offered = 0usize;
                for (i, frame) in q.frames.iter().enumerate() {
                    let data = if i == 0 {
                        frame.data.get(q.head_written..).unwrap_or(&[])
                    } else {
                        &frame.data[..]
                    };
                    slices.push(IoSlice::new(data));
                    offered += data.len();
                    if slices.len() >= MAX_IOVECS || offered >= MAX_WRITE_BYTES {
                        break;
                    }
                }
                stream.try_write_vectored(&slices)
            };
            match result {
                Ok(0) => {
                    q.state = OutboxState::Broken;
                    break FlushOutcome::Broken;
                }
                Ok(written) => warns += q.consume(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    break FlushOutcome::Pending;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(%error, "write to client failed");
                    q.state = OutboxState::Broken;
                    break FlushOutcome::Broken;
                }
            }
        };
        if outcome == FlushOutcome::Broken {
            q.frames.clear();
            q.bytes = 0;
            q.head_written = 0;
        }
        let wake_space =
            q.space_waiter && (q.bytes <= q.limits.max_bytes || outcome == FlushOutcome::Broken);
        if wake_space {
            q.space_waiter = false;
        }
        drop(q);
        metrics::add(&self.metrics.dropwarns_sent, warns);
        if wake_space {
            self.space.notify_one();
        }
        if outcome == FlushOutcome::Broken {
            self.alert.notify_one();
        }
        outcome
    }

    /// Flushes now and, if the socket is full, makes sure a flush task
    /// will finish the job when it becomes writable. Must run inside the
    /// tokio runtime.
    pub fn flush_soon(self: &Arc<Self>) {
        if self.flush_task_active.load(Ordering::Acquire) {
            // The running flush task writes as soon as the socket can take
            // more; writing here too would only meet a full socket.
            return;
        }
        if self.flush() == FlushOutcome::Pending {
            self.start_flush_task();
        }
    }

    fn start_flush_task(self: &Arc<Self>) {
        let Sink::Tcp(stream) = &self.sink else {
            return;
        };
        if self.flush_task_active.swap(true, Ordering::AcqRel) {
            return;
        }
        let outbox = Arc::clone(self);
        let stream = Arc::clone(stream);
        tokio::spawn(async move {
            loop {
                if stream.writable().await.is_err() {
                    outbox.mark_broken();
                }
                match outbox.flush() {
                    FlushOutcome::Pending => continue,
                    FlushOutcome::Empty | FlushOutcome::Broken => {
                        outbox.flush_task_active.store(false, Ordering::Release);
                        // A producer may have queued frames (and skipped
                        // flushing, seeing this task active) just before
                        // the flag was cleared: look once more.
                        let more = !outbox.is_empty() && outbox.state() != OutboxState::Broken;
                        if more && !outbox.flush_task_active.swap(true, Ordering::AcqRel) {
                            continue;
                        }
                        break;
                    }
                }
            }
        });
    }

    /// Marks the outbox broken (the connection is gone) and discards its
    /// frames.
    pub fn mark_broken(&self) {
        let mut q = self.queue.lock();
        q.state = OutboxState::Broken;
        q.frames.clear();
        q.bytes = 0;
        q.head_written = 0;
        q.space_waiter = false;
        drop(q);
        self.space.notify_one();
        self.alert.notify_one();
    }

    /// True when the queue holds more than its limit (only replies can put
    /// it there): the owner should stop reading until it drains.
    pub fn over_limit(&self) -> bool {
        let q = self.queue.lock();
        q.bytes > q.limits.max_bytes && q.state == OutboxState::Open
    }

    /// Waits until the queue is within its limit or the outbox is no
    /// longer open.
    pub async fn wait_for_space(&self) {
        loop {
            {
                let mut q = self.queue.lock();
                if q.bytes <= q.limits.max_bytes || q.state != OutboxState::Open {
                    return;
                }
                q.space_waiter = true;
            }
            self.space.notified().await;
        }
    }

    /// Resolves when the connection must end because of this outbox
    /// (overflow under policy `fail`, or a broken socket). Check
    /// [`Outbox::state`] after waking.
    pub async fn alerted(&self) {
        self.alert.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::Packet;

    fn outbox(max_bytes: usize, policy: DropPolicy) -> (Arc<Outbox>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let outbox = Outbox::new(
            Sink::Writer(Arc::new(Notify::new())),
            QueueLimits {
                max_bytes,
                policy,
                max_packet: 1 << 20,
            },
            metrics.clone(),
        );
        (outbox, metrics)
    }

    /// A raw attribute list `{ "n": int32 value }` of 20 bytes; its
    /// NotifyDeliver frame with one secure id is 4 + 4 + 20 + 12 + 4 = 44
    /// bytes.
    fn raw(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        elvin_proto::raw::put_count(&mut out, 1);
        elvin_proto::raw::put_str(&mut out, "n");
        elvin_proto::raw::put_value(&mut out, elvin_proto::ValueRef::Int32(value));
        out
    }

    const FRAME: usize = 44;

    /// Decodes everything queued: DropWarn as `None`, deliveries as the
    /// value of `n`.
    fn drain(outbox: &Outbox) -> Vec<Option<i32>> {
        let mut bytes = Vec::new();
        outbox.take_batch(&mut bytes, usize::MAX);
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while let Some((body, used)) = elvin_proto::split_frame(rest, 1 << 20).unwrap() {
            match Packet::decode(body).unwrap() {
                Packet::DropWarn(_) => out.push(None),
                Packet::NotifyDeliver(d) => out.push(d.attributes.get_i32("n")),
                Packet::SubRply(r) => out.push(Some(-(r.xid))),
                other => panic!("unexpected {other:?}"),
            }
            rest = &rest[used..];
        }
        out
    }

    #[test]
    fn frame_size_is_as_computed() {
        let (outbox, _) = outbox(1000, DropPolicy::Oldest);
        outbox.push_deliver(&raw(1), &[1], &[]);
        assert_eq!(outbox.queued_bytes(), FRAME);
    }

    #[test]
    fn oldest_policy_drops_from_the_front_and_warns_once() {
        let (outbox, metrics) = outbox(3 * FRAME, DropPolicy::Oldest);
        for v in 0..6 {
            assert_eq!(
                outbox.push_deliver(&raw(v), &[1], &[]),
                DeliverOutcome::Queued
            );
        }
        // The queue keeps its bound, DropWarn included (8 bytes over is
        // allowed only for the warning itself).
        assert!(outbox.queued_bytes() <= 3 * FRAME + 8);
        let got = drain(&outbox);
        assert_eq!(got.first(), Some(&None), "DropWarn goes first: {got:?}");
        assert_eq!(got.iter().filter(|v| v.is_none()).count(), 1);
        let values: Vec<i32> = got.into_iter().flatten().collect();
        assert_eq!(values, [4, 5]);
        let s = metrics.snapshot();
        assert_eq!(s.notifications_dropped, 4);
        assert_eq!(s.dropwarns_sent, 1);
        // A new episode after the warning went out warns again.
        for v in 10..14 {
            outbox.push_deliver(&raw(v), &[1], &[]);
        }
        let got = drain(&outbox);
        assert_eq!(got.iter().filter(|v| v.is_none()).count(), 1);
        assert_eq!(metrics.snapshot().dropwarns_sent, 2);
    }

    #[test]
    fn newest_policy_keeps_what_was_queued() {
        let (outbox, metrics) = outbox(2 * FRAME, DropPolicy::Newest);
        for v in 0..5 {
            outbox.push_deliver(&raw(v), &[1], &[]);
        }
        let got = drain(&outbox);
        assert_eq!(got, [None, Some(0), Some(1)]);
        assert_eq!(metrics.snapshot().notifications_dropped, 3);
    }

    #[test]
    fn largest_policy_drops_the_biggest_frames() {
        let (outbox, metrics) = outbox(4 * FRAME, DropPolicy::Largest);
        // One big frame (many ids), then small ones.
        let ids: Vec<i64> = (1..=10).collect();
        outbox.push_deliver(&raw(100), &ids, &[]);
        outbox.push_deliver(&raw(1), &[1], &[]);
        outbox.push_deliver(&raw(2), &[1], &[]);
        outbox.push_deliver(&raw(3), &[1], &[]);
        let got = drain(&outbox);
        assert_eq!(got, [None, Some(1), Some(2), Some(3)]);
        assert_eq!(metrics.snapshot().notifications_dropped, 1);
        // When the new frame is the largest, it is the one dropped.
        for v in 0..4 {
            outbox.push_deliver(&raw(v), &[1], &[]);
        }
        assert_eq!(
            outbox.push_deliver(&raw(9), &ids, &[]),
            DeliverOutcome::Dropped
        );
        let got = drain(&outbox);
        assert_eq!(got, [None, Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn fail_policy_overflows_and_discards_notifications() {
        let (outbox, _) = outbox(2 * FRAME, DropPolicy::Fail);
        outbox.push_deliver(&raw(0), &[1], &[]);
        outbox.push_deliver(&raw(1), &[1], &[]);
        assert_eq!(
            outbox.push_deliver(&raw(2), &[1], &[]),
            DeliverOutcome::Overflow
        );
        assert_eq!(outbox.state(), OutboxState::Overflowed);
        assert_eq!(
            outbox.push_deliver(&raw(3), &[1], &[]),
            DeliverOutcome::Closed
        );
        let mut disconn = Vec::new();
        Packet::from(elvin_proto::Disconn {
            reason: 4,
            args: "overflow".into(),
        })
        .encode(&mut disconn);
        outbox.push_final(disconn);
        assert_eq!(outbox.state(), OutboxState::Closing);
        let mut bytes = Vec::new();
        outbox.take_batch(&mut bytes, usize::MAX);
        let (body, _) = elvin_proto::split_frame(&bytes, 1 << 20).unwrap().unwrap();
        assert!(matches!(Packet::decode(body).unwrap(), Packet::Disconn(_)));
    }

    #[test]
    fn replies_are_never_dropped_and_mark_the_queue_over_limit() {
        let (outbox, _) = outbox(2 * FRAME, DropPolicy::Oldest);
        for xid in 1..=5 {
            let mut frame = Vec::new();
            Packet::from(elvin_proto::SubRply {
                xid,
                subscription_id: 1,
            })
            .encode(&mut frame);
            assert!(outbox.push_reply(frame));
        }
        assert!(outbox.over_limit());
        // A notification that cannot fit among the replies is dropped.
        assert_eq!(
            outbox.push_deliver(&raw(0), &[1], &[]),
            DeliverOutcome::Dropped
        );
        let got = drain(&outbox);
        assert_eq!(
            got,
            [None, Some(-1), Some(-2), Some(-3), Some(-4), Some(-5)]
        );
        assert!(!outbox.over_limit());
    }

    #[test]
    fn confconn_only_when_nothing_is_queued() {
        let (outbox, _) = outbox(1000, DropPolicy::Oldest);
        assert!(outbox.push_confconn());
        assert!(!outbox.push_confconn());
        let mut bytes = Vec::new();
        outbox.take_batch(&mut bytes, usize::MAX);
        assert_eq!(bytes, [0, 0, 0, 4, 0, 0, 0, 64]);
        outbox.push_deliver(&raw(0), &[1], &[]);
        assert!(!outbox.push_confconn());
    }

    #[test]
    fn oversize_deliveries_are_dropped_with_a_warning() {
        let metrics = Arc::new(Metrics::default());
        let outbox = Outbox::new(
            Sink::Writer(Arc::new(Notify::new())),
            QueueLimits {
                max_bytes: 10_000,
                policy: DropPolicy::Oldest,
                max_packet: 30,
            },
            metrics.clone(),
        );
        assert_eq!(
            outbox.push_deliver(&raw(0), &[1], &[]),
            DeliverOutcome::Dropped
        );
        assert_eq!(drain(&outbox), [None]);
        assert_eq!(metrics.snapshot().notifications_dropped, 1);
    }
}
