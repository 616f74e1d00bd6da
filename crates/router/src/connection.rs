//! The per-connection tasks: read, split frames, hand them to the session,
//! flush, and close cleanly.
//!
//! Each connection has **one reader task**. It reads whatever the socket
//! has into a buffer, splits every complete frame with `frame_len` (whose
//! size check happens on the 4-byte header, before the buffer grows for
//! the body), and handles each frame synchronously: no await between the
//! frames of one read, so a burst of notifications is routed back to back
//! and every outbox it touched is flushed once at the end of the batch.
//!
//! Input is never queued beyond what one read brings: the buffer holds at
//! most one read chunk plus one partial frame (bounded by the negotiated
//! Packet.Max-Length), and the kernel's socket buffer holds the rest. When
//! the client's own outbox is over its limit (it sends requests but does
//! not read the replies) the reader stops reading until the outbox drains,
//! which throttles the client through TCP flow control instead of dropping
//! its requests. The buffer is released whenever it is empty and the
//! socket has nothing more to read, so an idle connection holds no buffer.
//!
//! Closing: after the session queued its last frame (DisconnRply or
//! Disconn), the reader drains the outbox (bounded in time), shuts down
//! the write side so the client sees the last frame followed by EOF, and
//! reads and discards whatever the client still sends for a moment, so
//! that unread input does not turn the close into a reset that could
//! destroy the last frame before the client reads it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use elvin_proto::frame_len;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::broker::RouteScratch;
use crate::outbox::{FlushOutcome, Outbox, OutboxState, Sink};
use crate::server::{Domain, ServerContext};
use crate::session::{Session, Step};

/// Bytes requested from the socket per read, at most.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes requested by a connection's first reads: most connections only
/// ever send a ConnRqst and a few subscriptions, so they start small and
/// grow (doubling up to [`READ_CHUNK`]) only when reads fill the buffer.
const FIRST_READ: usize = 4 * 1024;
/// Read batches handled back to back before yielding to other tasks.
const BATCHES_BEFORE_YIELD: u32 = 16;
/// Most bytes moved to a TLS writer per batch.
const TLS_WRITE_BATCH: usize = 256 * 1024;
/// How long a closing connection keeps reading (and discarding) input.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// Why a reader loop stopped.
enum Ending {
    /// The session queued its last frame: drain and close.
    Close,
    /// The peer went away or the socket failed: just drop everything.
    Gone,
}

/// Handles every complete frame in `buf`, then removes them. Returns
/// `Step::Close` as soon as the session wants to close.
fn process_frames(session: &mut Session, buf: &mut Vec<u8>, scratch: &mut RouteScratch) -> Step {
    let mut consumed = 0;
    let mut step = Step::Continue;
    loop {
        let rest = buf.get(consumed..).unwrap_or(&[]);
        match frame_len(rest, session.max_frame_len()) {
            Ok(Some(total)) => {
                let body = rest.get(4..total).unwrap_or(&[]);
                step = session.handle_frame(body, scratch);
                consumed += total;
                if step == Step::Close {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                step = session.violation(error.to_string());
                break;
            }
        }
    }
    if step == Step::Close {
        buf.clear();
    } else {
        buf.drain(..consumed.min(buf.len()));
    }
    step
}

/// Room to read into: `chunk` bytes, or the rest of a partly received
/// frame whose header has already passed the size check.
fn reserve_for_read(buf: &mut Vec<u8>, chunk: usize, max_frame: usize) {
    let pending_frame = match buf.first_chunk::<4>() {
        Some(header) => {
            let body = u32::from_be_bytes(*header) as usize;
            body.min(max_frame).saturating_add(4)
        }
        None => 0,
    };
    let wanted = pending_frame.saturating_sub(buf.len()).max(chunk);
    if buf.capacity() - buf.len() < wanted {
        buf.reserve(wanted);
    }
}

/// Time at which an unestablished channel must be closed.
fn idle_deadline(session: &Session, idle_timeout: Duration) -> Option<tokio::time::Instant> {
    session
        .idle_since()
        .map(|since| tokio::time::Instant::from_std(since + idle_timeout))
}

/// The incomplete packet a connection is receiving: since when (counted
/// from the last completed packet, since a client streaming packets back to
/// back always has one in flight) and how many of its bytes are charged to
/// the router's budget for partial packets.
#[derive(Default)]
struct PartialFrame {
    since: Option<tokio::time::Instant>,
    charged: usize,
}

impl PartialFrame {
    /// Updates after `process_frames` turned a buffer of `before` bytes into
    /// `after`; false when the router's budget is passed.
    fn update(&mut self, ctx: &ServerContext, before: usize, after: usize) -> bool {
        let within = ctx.charge_partial(self.charged, after);
        self.charged = after;
        if after == 0 {
            self.since = None;
        } else if self.since.is_none() || after < before {
            self.since = Some(tokio::time::Instant::now());
        }
        within
    }

    /// When the packet times out, if one is incomplete.
    fn deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        self.since.map(|since| since + timeout)
    }

    /// Gives the charged bytes back.
    fn release(&mut self, ctx: &ServerContext) {
        ctx.charge_partial(self.charged, 0);
        self.charged = 0;
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Serves one plain TCP client until it disconnects.
pub async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ServerContext>,
    domain: Arc<Domain>,
) {
    let limits = ctx.limits();
    let limits_nodelay = limits.tcp_nodelay;
    if let Err(error) = stream.set_nodelay(limits_nodelay) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let stream = Arc::new(stream);
    let outbox = Outbox::new(
        Sink::Tcp(Arc::clone(&stream)),
        Session::initial_queue_limits(&limits),
        Arc::clone(&ctx.metrics),
    );
    let conn_id = ctx.next_connection_id();
    let mut session = Session::new(
        conn_id,
        peer.to_string(),
        Arc::clone(&domain.broker),
        Arc::clone(&outbox),
        limits,
    );
    let idle_timeout = ctx.idle_timeout();
    let mut shutdown = ctx.shutdown_receiver();
    let mut scratch = RouteScratch::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut read_size = FIRST_READ;
    let mut nodelay = limits_nodelay;
    let mut partial = PartialFrame::default();
    let frame_timeout = ctx.frame_timeout();

    let ending = 'reading: loop {
        if *shutdown.borrow() {
            session.shutdown();
            break Ending::Close;
        }
        if outbox.over_limit() {
            tokio::select! {
                _ = outbox.wait_for_space() => {}
                _ = shutdown.changed() => {}
                _ = outbox.alerted() => {}
            }
            if !matches!(outbox.state(), OutboxState::Open) {
                match outbox.state() {
                    OutboxState::Overflowed => {
                        session.send_queue_overflow();
                        break Ending::Close;
                    }
                    _ => break Ending::Gone,
                }
            }
            continue;
        }
        let deadline = idle_deadline(&session, idle_timeout);
        tokio::select! {
            biased;
            _ = shutdown.changed() => continue,
            _ = outbox.alerted() => {
                match outbox.state() {
                    OutboxState::Overflowed => {
                        session.send_queue_overflow();
                        break Ending::Close;
                    }
                    OutboxState::Broken => break Ending::Gone,
                    _ => continue,
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                session.idle_timeout(idle_timeout.as_secs_f64());
                break Ending::Close;
            }
            _ = tokio::time::sleep_until(partial.deadline(frame_timeout).unwrap_or_else(far_future)), if partial.since.is_some() => {
                session.cut_partial_frame(format!(
                    "A packet stayed incomplete for {} seconds",
                    frame_timeout.as_secs_f64()
                ));
                break Ending::Close;
            }
            ready = stream.readable() => {
                if ready.is_err() {
                    break Ending::Gone;
                }
            }
        }
        // Read and handle everything the socket has, batch by batch,
        // letting other tasks run now and then under a flood.
        let mut batches = 0u32;
        loop {
            batches += 1;
            if batches.is_multiple_of(BATCHES_BEFORE_YIELD) {
                tokio::task::yield_now().await;
            }
            reserve_for_read(&mut buf, read_size, session.max_frame_len());
            let spare = buf.capacity() - buf.len();
            match stream.try_read_buf(&mut buf) {
                Ok(0) => break 'reading Ending::Gone,
                Ok(n) => {
                    if n == spare {
                        read_size = (read_size * 2).min(READ_CHUNK);
                    }
                    let before = buf.len();
                    let step = process_frames(&mut session, &mut buf, &mut scratch);
                    scratch.finish_batch(&ctx.metrics);
                    outbox.flush_soon();
                    if !partial.update(&ctx, before, buf.len()) {
                        session.cut_partial_frame(
                            "The router's budget for partially received packets is spent".into(),
                        );
                        break 'reading Ending::Close;
                    }
                    // A client may ask for TCP_NODELAY (TCP.Send-Immediately
                    // 1); asking for 0 only permits coalescing, and the
                    // router already coalesces its writes, so it never
                    // turns TCP_NODELAY off.
                    if session.send_immediately() && !nodelay {
                        nodelay = true;
                        let _ = stream.set_nodelay(true);
                    }
                    if step == Step::Close {
                        break 'reading Ending::Close;
                    }
                    if outbox.over_limit() {
                        continue 'reading;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    if buf.is_empty() {
                        // Idle: hold no buffer while waiting.
                        buf = Vec::new();
                    }
                    continue 'reading;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(conn = conn_id, %peer, %error, "read failed");
                    break 'reading Ending::Gone;
                }
            }
        }
    };
    session.end();
    drop(buf);
    partial.release(&ctx);
    if let Ending::Close = ending {
        finish_tcp(&stream, &outbox, ctx.shutdown_timeout()).await;
    } else {
        outbox.mark_broken();
    }
    tracing::debug!(conn = conn_id, %peer, domain = %domain.name, "connection closed");
}

/// Writes out what is queued (bounded by `timeout`), then closes the
/// write side and lingers briefly on input.
async fn finish_tcp(stream: &TcpStream, outbox: &Outbox, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match outbox.flush() {
            FlushOutcome::Empty => break,
            FlushOutcome::Broken => return,
            FlushOutcome::Pending => {
                match tokio::time::timeout_at(deadline, stream.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => {
                        outbox.mark_broken();
                        return;
                    }
                }
            }
        }
    }
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
    let linger_until = tokio::time::Instant::now() + LINGER.min(timeout);
    let mut discarded = 0usize;
    // On the heap: an array here would live in every connection task's
    // state, idle or not.
    let mut scratch = vec![0u8; 4096];
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(linger_until, stream.readable()).await {
            Ok(Ok(())) => match stream.try_read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            },
            _ => break,
        }
    }
    outbox.mark_broken();
}

/// Serves one TLS client: the handshake, then a reader loop like the TCP
/// one, with a writer task that owns the TLS write half and drains the
/// outbox whenever it is woken.
pub async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Arc<ServerContext>,
    domain: Arc<Domain>,
) {
    let limits = ctx.limits();
    let _ = stream.set_nodelay(limits.tcp_nodelay);
    let idle_timeout = ctx.idle_timeout();
    let tls = match tokio::time::timeout(idle_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (mut reader, writer) = tokio::io::split(tls);
    let wake = Arc::new(Notify::new());
    let outbox = Outbox::new(
        Sink::Writer(Arc::clone(&wake)),
        Session::initial_queue_limits(&limits),
        Arc::clone(&ctx.metrics),
    );
    let writer_task = tokio::spawn(tls_writer(writer, Arc::clone(&outbox), Arc::clone(&wake)));
    let conn_id = ctx.next_connection_id();
    let mut session = Session::new(
        conn_id,
        peer.to_string(),
        Arc::clone(&domain.broker),
        Arc::clone(&outbox),
        limits,
    );
    let mut shutdown = ctx.shutdown_receiver();
    let mut scratch = RouteScratch::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut read_size = FIRST_READ;
    let mut partial = PartialFrame::default();
    let frame_timeout = ctx.frame_timeout();

    let ending = loop {
        if *shutdown.borrow() {
            session.shutdown();
            break Ending::Close;
        }
        if outbox.over_limit() {
            tokio::select! {
                _ = outbox.wait_for_space() => {}
                _ = shutdown.changed() => {}
                _ = outbox.alerted() => {}
            }
            match outbox.state() {
                OutboxState::Open => continue,
                OutboxState::Overflowed => {
                    session.send_queue_overflow();
                    break Ending::Close;
                }
                _ => break Ending::Gone,
            }
        }
        reserve_for_read(&mut buf, read_size, session.max_frame_len());
        let spare = buf.capacity() - buf.len();
        let deadline = idle_deadline(&session, idle_timeout);
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => continue,
            _ = outbox.alerted() => {
                match outbox.state() {
                    OutboxState::Overflowed => {
                        session.send_queue_overflow();
                        break Ending::Close;
                    }
                    OutboxState::Broken => break Ending::Gone,
                    _ => continue,
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                session.idle_timeout(idle_timeout.as_secs_f64());
                break Ending::Close;
            }
            _ = tokio::time::sleep_until(partial.deadline(frame_timeout).unwrap_or_else(far_future)), if partial.since.is_some() => {
                session.cut_partial_frame(format!(
                    "A packet stayed incomplete for {} seconds",
                    frame_timeout.as_secs_f64()
                ));
                break Ending::Close;
            }
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) | Err(_) => break Ending::Gone,
            Ok(n) => {
                if n == spare {
                    read_size = (read_size * 2).min(READ_CHUNK);
                }
                let before = buf.len();
                let step = process_frames(&mut session, &mut buf, &mut scratch);
                scratch.finish_batch(&ctx.metrics);
                outbox.flush_soon();
                if step == Step::Close {
                    break Ending::Close;
                }
                if !partial.update(&ctx, before, buf.len()) {
                    session.cut_partial_frame(
                        "The router's budget for partially received packets is spent".into(),
                    );
                    break Ending::Close;
                }
                if buf.is_empty() && buf.capacity() > READ_CHUNK {
                    buf = Vec::new();
                }
            }
        }
    };
    session.end();
    partial.release(&ctx);
    match ending {
        Ending::Close => {
            wake.notify_one();
            let timeout = ctx.shutdown_timeout();
            if tokio::time::timeout(timeout, writer_task).await.is_err() {
                outbox.mark_broken();
            }
        }
        Ending::Gone => {
            outbox.mark_broken();
            writer_task.abort();
        }
    }
    tracing::debug!(conn = conn_id, %peer, domain = %domain.name, "TLS connection closed");
}

/// Owns the TLS write half: whenever woken, moves queued frames out of the
/// outbox and writes them; after the last frame of a closing connection,
/// sends TLS close_notify and ends.
async fn tls_writer<W: AsyncWrite + Unpin>(mut writer: W, outbox: Arc<Outbox>, wake: Arc<Notify>) {
    let mut batch = Vec::new();
    loop {
        loop {
            batch.clear();
            if outbox.take_batch(&mut batch, TLS_WRITE_BATCH) == 0 {
                break;
            }
            if writer.write_all(&batch).await.is_err() {
                outbox.mark_broken();
                return;
            }
        }
        if writer.flush().await.is_err() {
            outbox.mark_broken();
            return;
        }
        match outbox.state() {
            OutboxState::Closing if outbox.is_empty() => {
                let _ = writer.shutdown().await;
                return;
            }
            OutboxState::Broken => return,
            _ => {}
        }
        if batch.capacity() > TLS_WRITE_BATCH {
            batch = Vec::new();
        }
        wake.notified().await;
    }
}

/// Counts live connection tasks so that shutdown can wait for them.
#[derive(Debug, Default)]
pub struct LiveConnections {
    count: std::sync::atomic::AtomicUsize,
    none_left: Notify,
}

impl LiveConnections {
    /// Records a new connection task; the guard un-records it when dropped.
    pub fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(Arc::clone(self))
    }

    /// Connection tasks running now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no connection task is left, or `deadline`.
    pub async fn wait_until_none(&self, deadline: Instant) {
        loop {
            let notified = self.none_left.notified();
            if self.count() == 0 {
                return;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Keeps a connection counted in [`LiveConnections`] while it lives.
#[derive(Debug)]
pub struct LiveGuard(Arc<LiveConnections>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// Every idle connection keeps its reader task's state alive; 10,000
    /// of them must fit in the router's memory budget, so nothing large may
    /// live in that state (a stack buffer held across an await once made
    /// it 5 KB).
    #[test]
    fn connection_task_state_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let settings =
                crate::config::Settings::resolve(&Default::default(), &Default::default()).unwrap();
            let ctx = crate::server::ServerContext::new(&settings);
            let domain = Arc::clone(&ctx.domains[0]);
            let task = super::serve_tcp(stream, addr, Arc::clone(&ctx), domain);
            let size = std::mem::size_of_val(&task);
            assert!(size <= 1536, "serve_tcp's state is {size} bytes");
        });
    }
}
