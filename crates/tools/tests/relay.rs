//! Integration tests for `tbevents-relay`: the real binary between real
//! TCP clients and servers on loopback, and between the Elvin client
//! library and a real `eventd`.
//!
//! Each test starts its own relay on a free port, drives traffic through
//! it, and checks both what the clients see and the relay's one log line
//! per connection.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use elvin_client::{Attributes, Client, ConnectOptions, Keys, SubscribeOptions};
use tbevents_testkit::{Proc, Router, free_port, signals};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a test waits for something that should happen promptly.
const PROMPT: Duration = Duration::from_secs(10);

/// A running relay and the address it listens on.
struct RelayProc {
    proc: Proc,
    addr: SocketAddr,
}

impl RelayProc {
    /// Starts `tbevents-relay --listen 127.0.0.1:<free> --target <target>`
    /// plus `extra` and waits until it says it is relaying. (Not by
    /// probing the port: a probe would be relayed to the target like any
    /// other connection.)
    fn start(target: &str, extra: &[&str]) -> RelayProc {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listen = addr.to_string();
        let mut args = vec!["--listen", listen.as_str(), "--target", target];
        args.extend_from_slice(extra);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tbevents-relay"));
        cmd.args(&args).env_remove("RUST_LOG");
        let mut proc = Proc::spawn("tbevents-relay", cmd);
        proc.wait_for_output("relaying connections", PROMPT);
        RelayProc { proc, addr }
    }

    /// The per-connection log lines written so far.
    fn closed_lines(&self) -> Vec<String> {
        self.proc
            .stderr()
            .lines()
            .filter(|line| line.contains("connection closed"))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `count` connection lines contain `needle`;
    /// returns those lines.
    fn wait_for_closed(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + PROMPT;
        loop {
            let lines: Vec<String> = self
                .closed_lines()
                .into_iter()
                .filter(|line| line.contains(needle))
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} connection lines with {needle:?}, got {}; stderr:\n{}",
                lines.len(),
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let start = line.find(&key)? + key.len();
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// An echo server on a free loopback port: every connection gets its
/// bytes back, and the server closes after the client's EOF.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    addr
}

/// Distinct data for connection `index`: `length` bytes of a pattern that
/// depends on the index, so data crossing between connections is caught.
fn pattern(index: usize, length: usize) -> Vec<u8> {
    let mut state = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Sends `data` through `relay`, half-closes, and returns everything read
/// back until EOF.
async fn round_trip(relay: SocketAddr, data: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(relay).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let send = async {
        writer.write_all(data).await.unwrap();
        writer.shutdown().await.unwrap();
    };
    let mut received = Vec::new();
    let receive = reader.read_to_end(&mut received);
    let ((), read) = tokio::join!(send, receive);
    read.unwrap();
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections_each_get_their_own_data_back() {
    let echo = echo_server().await;
    let relay = RelayProc::start(&echo.to_string(), &[]);
    const CONNECTIONS: usize = 200;
    const LENGTH: usize = 48 * 1024;

    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..CONNECTIONS {
        let addr = relay.addr;
        tasks.spawn(async move {
            let sent = pattern(index, LENGTH);
            let received = round_trip(addr, &sent).await;
            assert_eq!(received.len(), sent.len(), "connection {index}: length");
            assert!(received == sent, "connection {index}: data differs");
        });
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("all connections finish within 60 s");

    let lines = relay.wait_for_closed("end=completed", CONNECTIONS);
    assert_eq!(lines.len(), CONNECTIONS, "one line per connection");
    for line in &lines {
        assert_eq!(field(line, "to_target"), Some("49152"), "{line}");
        assert_eq!(field(line, "to_client"), Some("49152"), "{line}");
        assert_eq!(
            field(line, "target_addr"),
            Some(echo.to_string().as_str()),
            "{line}"
        );
        assert!(
            field(line, "peer").is_some_and(|p| p.starts_with("127.0.0.1:")),
            "{line}"
        );
        assert!(
            field(line, "duration").is_some_and(|d| d.ends_with('s')),
            "{line}"
        );
    }
}

/// A server that reads the request to EOF, then answers with `reply`
/// bytes in small chunks spread over `spread`, then closes.
async fn slow_reply_server(reply: usize, spread: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        let header = format!("got {} bytes\n", request.len());
        stream.write_all(header.as_bytes()).await.unwrap();
        const CHUNKS: usize = 20;
        let chunk = vec![b'x'; reply / CHUNKS];
        for _ in 0..CHUNKS {
            tokio::time::sleep(spread / CHUNKS as u32).await;
            stream.write_all(&chunk).await.unwrap();
        }
        stream.shutdown().await.unwrap();
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_client_still_receives_the_rest_of_the_reply() {
    // The reply keeps flowing for 2 s after the client's EOF, longer than
    // the 500 ms linger: the linger must only count silence.
    let server = slow_reply_server(200_000, Duration::from_secs(2)).await;
    let relay = RelayProc::start(&server.to_string(), &["--linger", "500ms"]);

    let started = Instant::now();
    let received = round_trip(relay.addr, &[7u8; 5000]).await;
    let text = String::from_utf8(received).unwrap();
    assert!(
        text.starts_with("got 5000 bytes\n"),
        "{:?}",
        &text[..40.min(text.len())]
    );
    assert_eq!(text.len(), "got 5000 bytes\n".len() + 200_000);
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let lines = relay.wait_for_closed("end=completed", 1);
    assert_eq!(field(&lines[0], "to_target"), Some("5000"));
    assert_eq!(field(&lines[0], "to_client"), Some("200015"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_half_open_connection_is_closed_after_the_linger() {
    // The server reads to EOF and then neither answers nor closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        let _ = held_tx.send(request.len());
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let relay = RelayProc::start(&server.to_string(), &["--linger", "400ms"]);

    let started = Instant::now();
    let received = round_trip(relay.addr, b"hello").await;
    let waited = started.elapsed();
    assert!(received.is_empty());
    assert_eq!(held_rx.await.unwrap(), 5, "the server saw the client's EOF");
    assert!(
        waited >= Duration::from_millis(350),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
    let lines = relay.wait_for_closed("end=linger-expired", 1);
    assert!(lines[0].contains("client closed first"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_quiet_connections_but_not_busy_ones() {
    let echo = echo_server().await;
    let relay = RelayProc::start(&echo.to_string(), &["--idle-timeout", "600ms"]);

    // Busy: a message every 200 ms for 2 s keeps its connection open,
    // while a quiet connection opened alongside is closed after 600 ms.
    let mut busy = TcpStream::connect(relay.addr).await.unwrap();
    let mut quiet = TcpStream::connect(relay.addr).await.unwrap();
    let keep_busy = async {
        let mut buffer = [0u8; 4];
        for round in 0..10u32 {
            busy.write_all(&round.to_be_bytes()).await.unwrap();
            busy.read_exact(&mut buffer).await.unwrap();
            assert_eq!(u32::from_be_bytes(buffer), round);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let wait_quiet = async {
        let started = Instant::now();
        let mut buffer = [0u8; 4];
        let read = tokio::time::timeout(PROMPT, quiet.read(&mut buffer))
            .await
            .unwrap();
        assert_eq!(read.unwrap(), 0, "EOF from the relay");
        started.elapsed()
    };
    let ((), quiet_for) = tokio::join!(keep_busy, wait_quiet);
    assert!(quiet_for >= Duration::from_millis(550), "{quiet_for:?}");
    let lines = relay.wait_for_closed("end=idle-timeout", 1);
    assert_eq!(lines.len(), 1, "only the quiet connection timed out");
    assert_eq!(field(&lines[0], "to_target"), Some("0"));
}

/// A loopback port that accepts no more connections: its listen queue
/// (backlog 0) is full, so the kernel drops further SYNs and connecting
/// to it hangs. Keep the returned sockets alive while it is in use.
fn black_hole() -> (SocketAddr, Vec<std::net::TcpStream>, socket2::Socket) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        {
            fillers.push(stream);
        }
    }
    // Check it really is a black hole now.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "the listen queue did not fill"
    );
    (addr, fillers, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_closes_the_client_when_the_target_does_not_answer() {
    let (target, _fillers, _socket) = black_hole();
    let relay = RelayProc::start(&target.to_string(), &["--connect-timeout", "700ms"]);

    let mut client = TcpStream::connect(relay.addr).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(PROMPT, client.read(&mut buffer))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(read.unwrap(), 0);
    assert!(
        waited >= Duration::from_millis(600),
        "gave up too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "gave up too late: {waited:?}"
    );
    let lines = relay.wait_for_closed("end=connect-timeout", 1);
    assert_eq!(field(&lines[0], "target_addr"), Some("-"));
    assert!(
        lines[0].contains("WARN"),
        "failures are warnings: {}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_target_port_closes_the_client_at_once() {
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let relay = RelayProc::start(&closed.to_string(), &[]);

    let mut client = TcpStream::connect(relay.addr).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    assert_eq!(client.read(&mut buffer).await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(2));
    let lines = relay.wait_for_closed("end=connect-failed", 1);
    assert!(lines[0].contains("refused"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once_and_logged() {
    let echo = echo_server().await;
    let relay = RelayProc::start(&echo.to_string(), &["--max-connections", "2"]);

    let mut first = TcpStream::connect(relay.addr).await.unwrap();
    let mut second = TcpStream::connect(relay.addr).await.unwrap();
    let mut buffer = [0u8; 3];
    for stream in [&mut first, &mut second] {
        stream.write_all(b"abc").await.unwrap();
        stream.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"abc");
    }

    // The third is accepted and closed at once.
    let mut third = TcpStream::connect(relay.addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buffer))
        .await
        .expect("the over-limit connection is closed promptly");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let lines = relay.wait_for_closed("end=over-limit", 1);
    assert!(lines[0].contains("limit=2"), "{}", lines[0]);

    // Once one closes, a new connection is relayed again.
    drop(first);
    relay.wait_for_closed("end=completed", 1);
    let received = round_trip(relay.addr, b"again").await;
    assert_eq!(received, b"again");
    // The two still relayed never saw a difference.
    second.write_all(b"xyz").await.unwrap();
    second.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"xyz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_closes_connections_and_exits_zero() {
    let echo = echo_server().await;
    let mut relay = RelayProc::start(&echo.to_string(), &[]);
    let mut open = TcpStream::connect(relay.addr).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut buffer = [0u8; 4];
    open.read_exact(&mut buffer).await.unwrap();

    relay.proc.signal(signals::SIGTERM);
    let status = relay.proc.wait(PROMPT);
    assert_eq!(status.code(), Some(0), "{}", relay.proc.stderr());
    let read = tokio::time::timeout(PROMPT, open.read(&mut buffer))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the open connection was closed: {read:?}"
    );
    let stderr = relay.proc.stderr();
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("end=shutdown"), "{stderr}");
    assert!(stderr.contains("relay stopped"), "{stderr}");
    assert!(
        TcpStream::connect(relay.addr).await.is_err(),
        "no longer accepting after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elvin_clients_subscribe_and_notify_through_the_relay_to_eventd() {
    let router = Router::start(&[]);
    let relay = RelayProc::start(&router.addr().to_string(), &[]);
    let through_relay = format!("elvin://{}", relay.addr);

    // A subscriber and a publisher, both through the relay, as old nodes
    // would be.
    let subscriber = Client::connect(through_relay.as_str(), ConnectOptions::default())
        .await
        .unwrap();
    let mut events = subscriber
        .subscribe(
            r#"EXPT == "testbed/relay" && SCHEDULER == 0"#,
            SubscribeOptions::default(),
        )
        .await
        .unwrap();
    let publisher = Client::connect(through_relay.as_str(), ConnectOptions::default())
        .await
        .unwrap();
    // A publisher connected directly reaches the relayed subscriber too.
    let direct = Client::connect(router.uri().as_str(), ConnectOptions::default())
        .await
        .unwrap();

    let mut event = Attributes::new();
    event.insert("EXPT", "testbed/relay");
    event.insert("OBJNAME", "link0");
    event.insert("EVENTTYPE", "DOWN");
    event.insert("SCHEDULER", 0);
    event.insert("__hmac__", vec![0xABu8; 20]);
    publisher.notify(&event, true, &Keys::new()).await.unwrap();
    let got = tokio::time::timeout(PROMPT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *got.attributes, event,
        "delivered unchanged through the relay"
    );

    event.insert("EVENTTYPE", "UP");
    direct.notify(&event, true, &Keys::new()).await.unwrap();
    let got = tokio::time::timeout(PROMPT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.attributes.get_str("EVENTTYPE"), Some("UP"));

    // Not matching: not delivered.
    let mut other = event.clone();
    other.insert("EXPT", "testbed/other");
    publisher.notify(&other, true, &Keys::new()).await.unwrap();
    // A matching sentinel after it, on the same connection: it must be
    // the next delivery.
    let mut sentinel = event.clone();
    sentinel.insert("EVENTTYPE", "SENTINEL");
    publisher
        .notify(&sentinel, true, &Keys::new())
        .await
        .unwrap();
    let got = tokio::time::timeout(PROMPT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.attributes.get_str("EVENTTYPE"),
        Some("SENTINEL"),
        "the non-matching event was not delivered"
    );

    // A round trip through the relay works as well (TestConn / ConfConn).
    subscriber.test_connection().await.unwrap();

    subscriber.close().await.unwrap();
    publisher.close().await.unwrap();
    direct.close().await.unwrap();
    let lines = relay.wait_for_closed("connection closed", 2);
    for line in &lines {
        let up: u64 = field(line, "to_target").unwrap().parse().unwrap();
        let down: u64 = field(line, "to_client").unwrap().parse().unwrap();
        assert!(up > 0 && down > 0, "{line}");
        assert_eq!(
            field(line, "target_addr"),
            Some(router.addr().to_string().as_str())
        );
    }
}

#[test]
fn help_is_a_manual_page_and_bad_arguments_exit_2() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tbevents-relay"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "BEHAVIOUR",
        "SIGNALS",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(
            help.lines().any(|line| line == section),
            "no {section} section in:\n{help}"
        );
    }

    for args in [
        &["--listen", "127.0.0.1:0"][..],
        &["--listen", "127.0.0.1:0", "--target", "ops"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--target",
            "ops:2917",
            "--linger",
            "3",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--target",
            "ops:2917",
            "--max-connections",
            "0",
        ],
        &["--listen", "nowhere", "--target", "ops:2917"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tbevents-relay"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?} says why");
    }

    // A port it cannot listen on is a runtime failure (1), with the reason.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tbevents-relay"))
        .args(["--listen", &listen, "--target", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}
