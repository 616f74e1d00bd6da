//! The user-space shaper: a two-port bridge that shapes each direction,
//! like one of Emulab's delay nodes.
//!
//! [`Shaper::start`] opens an AF_PACKET socket on each interface (see
//! [`socket`]) and runs one thread per direction. Each thread receives
//! frames from its input interface, runs them through a [`pipe::Pipe`]
//! (down, loss, queue, bandwidth, delay) and sends them out of the other
//! interface when they are due. Waiting uses `ppoll` with a nanosecond
//! timeout and a 1 µs timer slack, so a packet leaves within tens of
//! microseconds of its due time.
//!
//! Settings change live: [`Shaper::set_params`] swaps the direction's
//! [`PipeConfig`] (an `Arc` behind a mutex plus a version counter the
//! thread checks per batch, so the fast path takes no lock). Packets
//! already queued keep their computed times; nothing queued is dropped by
//! a change.
//!
//! The shaper is a library first: linktest and the emulated testbed start
//! it directly; `delay-agent --backend shaper` wraps it as a
//! [`LinkBackend`].

pub mod pipe;
pub mod socket;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::backend::{BackendError, LinkBackend};
use crate::params::{Direction, PipeParams};
use pipe::{Drop as DropReason, Pipe, PipeConfig};
use socket::{PacketSocket, VNET_HDR_LEN, wire_bytes};

/// Largest frame accepted, header included (a 64 KiB GSO frame plus the
/// virtio-net header and Ethernet header).
const MAX_FRAME: usize = 65_536 + VNET_HDR_LEN + 64;

/// Frames received per wake-up before the thread sends what is due.
const RECEIVE_BATCH: usize = 64;

/// The longest a direction thread sleeps; bounds how late it notices
/// a stop request.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Counters of one direction, readable while the shaper runs.
#[derive(Debug, Default)]
pub struct DirectionStats {
    /// Frames received from the input interface.
    pub received: AtomicU64,
    /// Frames sent out of the output interface.
    pub forwarded: AtomicU64,
    /// Dropped because the link was down.
    pub dropped_down: AtomicU64,
    /// Dropped by random loss.
    pub dropped_loss: AtomicU64,
    /// Dropped by the queue (full, or RED).
    pub dropped_queue: AtomicU64,
    /// Dropped by the memory bound, or because sending failed.
    pub dropped_other: AtomicU64,
}

/// A snapshot of [`DirectionStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Frames received.
    pub received: u64,
    /// Frames forwarded.
    pub forwarded: u64,
    /// Dropped: down.
    pub dropped_down: u64,
    /// Dropped: loss.
    pub dropped_loss: u64,
    /// Dropped: queue.
    pub dropped_queue: u64,
    /// Dropped: memory bound or send error.
    pub dropped_other: u64,
}

impl DirectionStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped_down: self.dropped_down.load(Ordering::Relaxed),
            dropped_loss: self.dropped_loss.load(Ordering::Relaxed),
            dropped_queue: self.dropped_queue.load(Ordering::Relaxed),
            dropped_other: self.dropped_other.load(Ordering::Relaxed),
        }
    }
}

/// What the agent and the direction thread share.
struct DirectionShared {
    config: Mutex<Arc<PipeConfig>>,
    version: AtomicU64,
    stats: DirectionStats,
}

impl DirectionShared {
    fn new() -> DirectionShared {
        DirectionShared {
            config: Mutex::new(Arc::new(PipeConfig::default())),
            version: AtomicU64::new(0),
            stats: DirectionStats::default(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut PipeConfig)) {
        let mut guard = self.config.lock();
        let mut next = **guard;
        change(&mut next);
        *guard = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }
}

struct Shared {
    stop: AtomicBool,
    directions: [DirectionShared; 2],
}

/// A running shaper bridging two interfaces. Dropping it stops it.
pub struct Shaper {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    a: String,
    b: String,
}

impl Shaper {
    /// Bridges `a` and `b` in the current network namespace, unshaped
    /// until [`Shaper::set_params`]. Both interfaces are set up and
    /// promiscuous, and their receive offloads are turned off where the
    /// kernel allows (see [`crate::offload`]).
    pub fn start(a: &str, b: &str) -> Result<Shaper, BackendError> {
        let io_error = |what: String| move |source: io::Error| BackendError::Io { what, source };
        for iface in [a, b] {
            crate::netns::run_ip(&["link", "set", "dev", iface, "up"])
                .map_err(|e| BackendError::Unsupported(format!("cannot set {iface} up: {e}")))?;
            if let Err(error) = crate::offload::disable_offloads(iface) {
                tracing::warn!(
                    iface,
                    "offloads left on ({error}); GSO frames are forwarded whole and counted by segment"
                );
            }
        }
        let socket_a = PacketSocket::open(a).map_err(io_error(format!("opening {a}")))?;
        let socket_b = PacketSocket::open(b).map_err(io_error(format!("opening {b}")))?;
        Ok(Shaper::from_sockets(socket_a, socket_b))
    }

    /// Bridges `a` and `b` inside the named network namespace (the
    /// sockets belong to it; the threads may run anywhere).
    pub fn start_in_netns(netns: &str, a: &str, b: &str) -> Result<Shaper, BackendError> {
        let (a, b) = (a.to_string(), b.to_string());
        crate::netns::in_netns(netns, move || Shaper::start(&a, &b)).map_err(|source| {
            BackendError::Io {
                what: format!("entering network namespace {netns}"),
                source,
            }
        })?
    }

    /// Bridges two already open sockets.
    pub fn from_sockets(a: PacketSocket, b: PacketSocket) -> Shaper {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            directions: [DirectionShared::new(), DirectionShared::new()],
        });
        let (a_name, b_name) = (a.iface().to_string(), b.iface().to_string());
        let a = Arc::new(a);
        let b = Arc::new(b);
        let mut threads = Vec::new();
        for (direction, input, output) in [
            (Direction::AtoB, a.clone(), b.clone()),
            (Direction::BtoA, b, a),
        ] {
            let shared = shared.clone();
            let name = format!("shaper-{}", direction.index());
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || run_direction(&shared, direction, &input, &output));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(error) => tracing::error!("cannot start a shaper thread: {error}"),
            }
        }
        Shaper {
            shared,
            threads,
            a: a_name,
            b: b_name,
        }
    }

    /// Changes the settings of `direction`; queued packets stay.
    pub fn set_params(&self, direction: Direction, params: &PipeParams) {
        self.shared.directions[direction.index()].update(|c| c.params = *params);
    }

    /// Lets traffic pass in both directions, or drops all of it.
    pub fn set_link_up(&self, up: bool) {
        for direction in &self.shared.directions {
            direction.update(|c| c.up = up);
        }
    }

    /// The counters of `direction`.
    pub fn stats(&self, direction: Direction) -> StatsSnapshot {
        self.shared.directions[direction.index()].stats.snapshot()
    }

    /// Stops both threads and waits for them.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::ops::Drop for Shaper {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LinkBackend for Shaper {
    fn apply(&mut self, direction: Direction, params: &PipeParams) -> Result<(), BackendError> {
        self.set_params(direction, params);
        Ok(())
    }

    fn set_up(&mut self, up: bool) -> Result<(), BackendError> {
        self.set_link_up(up);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("shaper bridging {} <-> {}", self.a, self.b)
    }
}

fn seed(direction: Direction) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    nanos ^ (u64::from(std::process::id()) << 32) ^ direction.index() as u64
}

/// Waits until `fd` is readable or `timeout` passes.
fn wait_readable(fd: i32, timeout: Duration) {
    let mut poll_fd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let spec = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask.
    unsafe {
        libc::ppoll(&mut poll_fd, 1, &spec, std::ptr::null());
    }
}

/// The loop of one direction: receive, shape, send what is due.
fn run_direction(
    shared: &Shared,
    direction: Direction,
    input: &PacketSocket,
    output: &PacketSocket,
) {
    // Wake-ups land within a microsecond of the asked time.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
    let mine = &shared.directions[direction.index()];
    let stats = &mine.stats;
    let mut version = u64::MAX;
    let mut config = PipeConfig::default();
    let mut pipe: Pipe<Vec<u8>> = Pipe::new(seed(direction));
    let mut buffer = vec![0u8; MAX_FRAME];
    let mut receive_errors_logged = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let current = mine.version.load(Ordering::Acquire);
        if current != version {
            config = **mine.config.lock();
            if version != u64::MAX {
                pipe.reconfigured(now);
            }
            version = current;
        }
        // Send everything due.
        while let Some(frame) = pipe.pop_due(now, Vec::len) {
            match output.send(&frame) {
                Ok(()) => stats.forwarded.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    tracing::debug!(iface = output.iface(), "send failed: {error}");
                    stats.dropped_other.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        // Receive a batch.
        let mut received = 0;
        while received < RECEIVE_BATCH {
            match input.try_recv(&mut buffer) {
                Ok(Some(n)) if n > buffer.len() || n < VNET_HDR_LEN + 14 => {
                    // Truncated or runt frame: nothing sensible to forward.
                    stats.dropped_other.fetch_add(1, Ordering::Relaxed);
                    received += 1;
                }
                Ok(Some(n)) => {
                    received += 1;
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let wire = wire_bytes(&buffer[..VNET_HDR_LEN], n - VNET_HDR_LEN);
                    let frame = buffer[..n].to_vec();
                    if let Err((reason, _)) = pipe.offer(Instant::now(), wire, frame, n, &config) {
                        let counter = match reason {
                            DropReason::Down => &stats.dropped_down,
                            DropReason::Loss => &stats.dropped_loss,
                            DropReason::Queue => &stats.dropped_queue,
                            DropReason::Overflow => &stats.dropped_other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    if !receive_errors_logged {
                        tracing::error!(iface = input.iface(), "receive failed: {error}");
                        receive_errors_logged = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        if received > 0 {
            continue;
        }
        let now = Instant::now();
        let sleep = match pipe.next_due() {
            Some(due) if due <= now => continue,
            Some(due) => (due - now).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        wait_readable(input.raw_fd(), sleep);
    }
}
