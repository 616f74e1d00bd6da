//! A small blocking raw-socket Elvin client for the router's integration
//! tests, built directly on `elvin-proto` so the tests see exactly the
//! packets on the wire (the client library is not used on purpose: it is
//! developed separately and would hide protocol details).
//!
//! Everything panics on failure with a message saying what was expected:
//! this is test code.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use elvin_proto::{
    Attributes, ConnRqst, Keys, NotifyEmit, Options, Packet, SubAddRqst, Value, split_frame,
};
pub use tbevents_testkit::Router;

/// How long a test waits for an expected packet.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts the `eventd` program on a free loopback port with `extra` flags,
/// for the tests that need a process (signals, exit codes, its memory).
pub fn eventd_process(extra: &[&str]) -> Router {
    Router::start(extra)
}

/// Runs the router library in this test process with default flags (see
/// [`eventd_with`]).
pub fn eventd() -> InProcess {
    eventd_with(|_| {})
}

/// Runs the router library in this test process: `configure` sets the
/// flags (as `eventd`'s command line would; a listener on a free loopback
/// port unless it names one), the router is bound and served on its own
/// runtime thread, and dropping the value shuts it down cleanly.
pub fn eventd_with(configure: impl FnOnce(&mut elvin_router::Flags)) -> InProcess {
    let mut flags = elvin_router::Flags::default();
    configure(&mut flags);
    if flags.listen.is_empty() {
        // Listen URIs need a real port; the test kit hands out ports no
        // other test process is using.
        let port = tbevents_testkit::free_port();
        flags.listen.push(format!("elvin://127.0.0.1:{port}"));
    }
    let settings = elvin_router::Settings::load(&flags).unwrap_or_else(|e| panic!("{e}"));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the router");
        runtime.block_on(async move {
            let router = match elvin_router::Router::bind(settings).await {
                Ok(router) => router,
                Err(error) => {
                    let _ = ready_tx.send(Err(format!("{error:#}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok((router.local_addrs(), router.metrics_addr())));
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = router.run(shutdown).await {
                panic!("the router failed: {error:#}");
            }
        });
    });
    let (addrs, metrics) = ready_rx
        .recv_timeout(WAIT)
        .expect("the router did not start")
        .unwrap_or_else(|e| panic!("the router did not start: {e}"));
    InProcess {
        port: addrs[0].port(),
        addrs,
        metrics,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// A router running in this process (see [`eventd`]).
pub struct InProcess {
    /// The first endpoint's port.
    pub port: u16,
    /// Every endpoint's address.
    pub addrs: Vec<SocketAddr>,
    /// The metrics listener's address, if asked for.
    pub metrics: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// The first endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The first endpoint's URI.
    pub fn uri(&self) -> String {
        format!("elvin://{}", self.addr())
    }

    /// Completes the router's shutdown future (every client gets
    /// Disconn) without waiting for it to finish.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the router down (every client gets Disconn) and waits for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A raw Elvin client over any byte stream.
pub struct Client<S: Read + Write = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
    next_xid: i32,
    eof: bool,
}

impl Client<TcpStream> {
    /// Opens a TCP connection (no ConnRqst yet).
    pub fn open(addr: SocketAddr) -> Client<TcpStream> {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        Client::over(stream)
    }

    /// Opens a connection and completes ConnRqst/ConnRply with no options.
    pub fn connect(addr: SocketAddr) -> Client<TcpStream> {
        let mut client = Client::open(addr);
        client.handshake(vec![]);
        client
    }
}

/// Stream types whose read timeout can be set.
pub trait Timeouts {
    fn set_read_timeout_to(&self, timeout: Duration);
}

impl Timeouts for TcpStream {
    fn set_read_timeout_to(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).unwrap();
    }
}

impl Timeouts for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_read_timeout_to(&self, timeout: Duration) {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
    }
}

impl<S: Read + Write + Timeouts> Client<S> {
    /// Wraps an open stream.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
            next_xid: 1,
            eof: false,
        }
    }

    /// A fresh transaction id.
    pub fn xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        xid
    }

    /// Sends one packet.
    pub fn send(&mut self, packet: impl Into<Packet>) {
        let mut frame = Vec::new();
        packet.into().encode(&mut frame);
        self.send_raw(&frame);
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends raw bytes, tolerating a connection the router already closed.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok() && self.stream.flush().is_ok()
    }

    /// The next packet, or `None` at EOF or if nothing complete arrives
    /// within `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((body, used)) = split_frame(&self.buf, usize::MAX / 2).unwrap() {
                let packet = Packet::decode(body)
                    .unwrap_or_else(|e| panic!("router sent an undecodable packet: {e}"));
                self.buf.drain(..used);
                return Some(packet);
            }
            if self.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream
                .set_read_timeout_to((deadline - now).max(Duration::from_millis(1)));
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next packet; panics if none arrives within [`WAIT`].
    pub fn recv(&mut self) -> Packet {
        self.recv_within(WAIT)
            .expect("expected a packet from the router, got nothing (timeout or EOF)")
    }

    /// Asserts that the router has nothing queued for this client. A
    /// caller expecting nothing from another connection first makes that
    /// connection's round trip (`sync`), so the router has routed what it
    /// sent.
    pub fn expect_nothing(&mut self) {
        // The router answers TestConn in order, after anything it already
        // queued for this client: whatever arrives before the ConfConn is
        // what should not have come.
        self.send(elvin_proto::TestConn);
        match self.recv() {
            Packet::ConfConn(_) => {}
            packet => panic!("expected nothing from the router, got {packet:?}"),
        }
    }

    /// Asserts that the router closes the connection (EOF) with no further
    /// packets.
    pub fn expect_closed(&mut self) {
        match self.recv_within(WAIT) {
            None => assert!(
                self.eof,
                "expected the router to close the connection; it stayed open"
            ),
            Some(packet) => panic!("expected the connection to close, got {packet:?}"),
        }
    }

    /// Expects a Disconn with `reason`; returns its text. The connection
    /// must close right after.
    pub fn expect_disconn(&mut self, reason: i32) -> String {
        match self.recv() {
            Packet::Disconn(d) => {
                assert_eq!(d.reason, reason, "Disconn reason (text: {})", d.args);
                self.expect_closed();
                d.args
            }
            other => panic!("expected Disconn({reason}), got {other:?}"),
        }
    }

    /// ConnRqst 4.0 with `options`; returns the reply options. Panics on
    /// anything but a ConnRply with the same xid.
    pub fn handshake(&mut self, options: Options) -> Options {
        let xid = self.xid();
        self.send(ConnRqst {
            xid,
            client_major: 4,
            client_minor: 0,
            options,
            notification_keys: Keys::new(),
            subscription_keys: Keys::new(),
        });
        match self.recv() {
            Packet::ConnRply(reply) => {
                assert_eq!(reply.xid, xid);
                reply.options
            }
            other => panic!("expected ConnRply, got {other:?}"),
        }
    }

    /// Sends a SubAddRqst and returns the reply (SubRply or Nack).
    pub fn sub_add(&mut self, expression: &str, accept_insecure: bool, keys: Keys) -> Packet {
        let xid = self.xid();
        self.send(SubAddRqst {
            xid,
            expression: expression.to_owned(),
            accept_insecure,
            keys,
        });
        let reply = self.recv();
        assert_eq!(reply.xid(), Some(xid), "reply xid for {reply:?}");
        reply
    }

    /// Subscribes (no keys, accepting insecure) and returns the id.
    pub fn subscribe(&mut self, expression: &str) -> i64 {
        match self.sub_add(expression, true, Keys::new()) {
            Packet::SubRply(r) => r.subscription_id,
            other => panic!("expected SubRply for {expression:?}, got {other:?}"),
        }
    }

    /// Emits a notification (deliver_insecure, no keys).
    pub fn emit(&mut self, attributes: Attributes) {
        self.send(NotifyEmit {
            attributes,
            deliver_insecure: true,
            keys: Keys::new(),
        });
    }

    /// Sends a TestConn and waits for the ConfConn (a round trip that
    /// proves every earlier request was handled).
    pub fn sync(&mut self) {
        self.send(elvin_proto::TestConn);
        loop {
            match self.recv() {
                Packet::ConfConn(_) => return,
                Packet::NotifyDeliver(_) | Packet::DropWarn(_) => continue,
                other => panic!("expected ConfConn, got {other:?}"),
            }
        }
    }

    /// The next NotifyDeliver; panics on anything else.
    pub fn recv_deliver(&mut self) -> elvin_proto::NotifyDeliver {
        match self.recv() {
            Packet::NotifyDeliver(d) => d,
            other => panic!("expected NotifyDeliver, got {other:?}"),
        }
    }
}

/// An option list from pairs.
pub fn options(pairs: &[(&str, Value)]) -> Options {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect()
}

/// The value of `name` in an option list.
pub fn option<'a>(options: &'a Options, name: &str) -> Option<&'a Value> {
    options.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// An Emulab-shaped notification for experiment `expt`, numbered `seq`.
pub fn emulab_event(expt: &str, seq: i32) -> Attributes {
    let mut a = Attributes::new();
    a.insert("SITE", "emulab.net");
    a.insert("EXPT", expt);
    a.insert("GROUP", "testbed");
    a.insert("HOST", "*");
    a.insert("OBJTYPE", "LINK");
    a.insert("OBJNAME", "link0");
    a.insert("EVENTTYPE", "DOWN");
    a.insert("SCHEDULER", 0);
    a.insert("seq", seq);
    a
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
