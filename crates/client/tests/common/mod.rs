//! Test doubles for the client: a scriptable fake router over real TCP
//! (every packet the client sends can be inspected, and the test decides
//! what, if anything, to send back — including garbage, Nacks and
//! Disconns), and a tiny auto-answering router for tests about behaviour
//! over time (reconnect, several clients).
//!
//! Test-only code: failures panic with a message.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use elvin_proto::{
    ConnRply, ConnRqst, DisconnRply, NotifyDeliver, Packet, SecRply, SubRply, Value, frame_len,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(5);

pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A listening fake router.
pub struct FakeServer {
    pub listener: TcpListener,
    pub port: u16,
}

impl FakeServer {
    pub async fn bind() -> FakeServer {
        Self::bind_port(0).await
    }

    /// Binds 127.0.0.1:`port` (0 for any), retrying briefly so a restart
    /// on the same port works.
    pub async fn bind_port(port: u16) -> FakeServer {
        let mut tries = 0;
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => {
                    let port = listener.local_addr().unwrap().port();
                    return FakeServer { listener, port };
                }
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
            }
        }
    }

    pub fn uri(&self) -> String {
        format!("elvin://127.0.0.1:{}", self.port)
    }

    pub async fn accept(&self) -> Peer {
        let (stream, _) = tokio::time::timeout(PROMPT, self.listener.accept())
            .await
            .expect("the client did not connect in time")
            .expect("accept");
        Peer::new(Box::new(stream))
    }

    /// Accepts, reads the ConnRqst and answers it with `options`.
    pub async fn accept_connected(&self, options: Vec<(String, Value)>) -> (Peer, ConnRqst) {
        let mut peer = self.accept().await;
        let rqst = peer.expect_conn_rqst().await;
        peer.send(Packet::ConnRply(ConnRply {
            xid: rqst.xid,
            options,
        }))
        .await;
        (peer, rqst)
    }
}

/// The router's side of one connection.
pub struct Peer {
    stream: Box<dyn Stream>,
    buf: BytesMut,
}

impl Peer {
    pub fn new(stream: Box<dyn Stream>) -> Peer {
        Peer {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// The next whole frame body, or `None` at end of stream.
    pub async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(total) = frame_len(&self.buf, 64 * 1024 * 1024).expect("client framing") {
                let frame = self.buf.split_to(total);
                return Some(frame[4..].to_vec());
            }
            let n = self.stream.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    /// The next packet from the client (panics on EOF or after 5 s).
    pub async fn recv(&mut self) -> Packet {
        let body = tokio::time::timeout(PROMPT, self.frame())
            .await
            .expect("no packet from the client in time")
            .expect("the client closed the connection");
        Packet::decode(&body).expect("the client sent an undecodable packet")
    }

    /// The next packet, or `None` if nothing arrives within `wait` or the
    /// stream ends.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Packet> {
        let body = tokio::time::timeout(wait, self.frame()).await.ok()??;
        Some(Packet::decode(&body).expect("the client sent an undecodable packet"))
    }

    pub async fn expect_conn_rqst(&mut self) -> ConnRqst {
        match self.recv().await {
            Packet::ConnRqst(rqst) => rqst,
            other => panic!("expected ConnRqst, got {other:?}"),
        }
    }

    pub async fn send(&mut self, packet: impl Into<Packet>) {
        let mut out = Vec::new();
        packet.into().encode(&mut out);
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A client that closed first makes writes fail; tests that care
        // check what the client saw.
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Waits for the client to close its side.
    pub async fn expect_eof(&mut self) {
        let end =
            tokio::time::timeout(PROMPT, async { while self.frame().await.is_some() {} }).await;
        assert!(end.is_ok(), "the client did not close the connection");
    }
}

/// What the mini router saw, for assertions.
#[derive(Debug, Clone)]
pub enum Seen {
    Connected { conn: usize, rqst: ConnRqst },
    Packet { conn: usize, packet: Packet },
}

/// A tiny router answering every request positively and delivering every
/// NotifyEmit to every subscription of every connection (as insecure
/// matches; no expression evaluation). Good enough to exercise the
/// client's behaviour over time.
pub struct MiniRouter {
    pub port: u16,
    task: JoinHandle<()>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    conns: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Vec<u8>>>>>,
}

/// Subscription ids are global across restarts, like a real router's
/// counter would not be: each run starts at a different base so tests can
/// see ids change.
static NEXT_SUB_ID: AtomicI64 = AtomicI64::new(1);

impl MiniRouter {
    pub async fn start() -> MiniRouter {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> MiniRouter {
        let server = FakeServer::bind_port(port).await;
        let port = server.port;
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let subs: Arc<Mutex<HashMap<usize, Vec<i64>>>> = Default::default();
        let conns: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Vec<u8>>>>> = Default::default();
        let conns_for_task = conns.clone();
        let task = tokio::spawn(async move {
            let mut next_conn = 0usize;
            loop {
                let Ok((stream, _)) = server.listener.accept().await else {
                    return;
                };
                next_conn += 1;
                let conn = next_conn;
                let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
                conns_for_task.lock().unwrap().insert(conn, tx);
                tokio::spawn(serve(
                    conn,
                    stream,
                    rx,
                    seen_tx.clone(),
                    subs.clone(),
                    conns_for_task.clone(),
                ));
            }
        });
        MiniRouter {
            port,
            task,
            seen,
            conns,
        }
    }

    pub fn uri(&self) -> String {
        format!("elvin://127.0.0.1:{}", self.port)
    }

    /// Stops listening and drops every connection (like a router crash).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.conns.lock().unwrap().clear();
    }

    /// Waits for the next packet of a given kind, skipping others.
    pub async fn wait_for(&mut self, mut wanted: impl FnMut(&Seen) -> bool) -> Seen {
        tokio::time::timeout(PROMPT * 2, async {
            loop {
                let seen = self.seen.recv().await.expect("mini router stopped");
                if wanted(&seen) {
                    return seen;
                }
            }
        })
        .await
        .expect("the mini router did not see the expected packet in time")
    }
}

async fn serve(
    conn: usize,
    stream: TcpStream,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    seen: mpsc::UnboundedSender<Seen>,
    subs: Arc<Mutex<HashMap<usize, Vec<i64>>>>,
    conns: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Vec<u8>>>>>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = BytesMut::new();
    let send = |conn: usize, packet: Packet| {
        let mut out = Vec::new();
        packet.encode(&mut out);
        if let Some(tx) = conns.lock().unwrap().get(&conn) {
            let _ = tx.send(out);
        }
    };
    'outer: loop {
        let body = loop {
            match frame_len(&buf, 64 * 1024 * 1024) {
                Ok(Some(total)) => break buf.split_to(total)[4..].to_vec(),
                Ok(None) => {}
                Err(_) => break 'outer,
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break 'outer,
                Ok(_) => {}
            }
        };
        let Ok(packet) = Packet::decode(&body) else {
            break;
        };
        match &packet {
            Packet::ConnRqst(rqst) => {
                let _ = seen.send(Seen::Connected {
                    conn,
                    rqst: rqst.clone(),
                });
                send(
                    conn,
                    Packet::ConnRply(ConnRply {
                        xid: rqst.xid,
                        options: vec![(
                            "Vendor-Identification".into(),
                            Value::String("mini".into()),
                        )],
                    }),
                );
                continue;
            }
            Packet::SubAddRqst(rqst) => {
                let id = NEXT_SUB_ID.fetch_add(1, Ordering::SeqCst);
                subs.lock().unwrap().entry(conn).or_default().push(id);
                send(
                    conn,
                    Packet::SubRply(SubRply {
                        xid: rqst.xid,
                        subscription_id: id,
                    }),
                );
            }
            Packet::SubModRqst(rqst) => send(
                conn,
                Packet::SubRply(SubRply {
                    xid: rqst.xid,
                    subscription_id: rqst.subscription_id,
                }),
            ),
            Packet::SubDelRqst(rqst) => {
                if let Some(list) = subs.lock().unwrap().get_mut(&conn) {
                    list.retain(|id| *id != rqst.subscription_id);
                }
                send(
                    conn,
                    Packet::SubRply(SubRply {
                        xid: rqst.xid,
                        subscription_id: rqst.subscription_id,
                    }),
                );
            }
            Packet::SecRqst(rqst) => send(conn, Packet::SecRply(SecRply { xid: rqst.xid })),
            Packet::TestConn(_) => send(conn, Packet::ConfConn(elvin_proto::ConfConn)),
            Packet::NotifyEmit(emit) => {
                let targets: Vec<(usize, Vec<i64>)> = subs
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, ids)| !ids.is_empty())
                    .map(|(c, ids)| (*c, ids.clone()))
                    .collect();
                for (target, ids) in targets {
                    send(
                        target,
                        Packet::NotifyDeliver(NotifyDeliver {
                            attributes: emit.attributes.clone(),
                            secure_matches: vec![],
                            insecure_matches: ids,
                        }),
                    );
                }
            }
            Packet::DisconnRqst(rqst) => {
                send(conn, Packet::DisconnRply(DisconnRply { xid: rqst.xid }));
                let _ = seen.send(Seen::Packet {
                    conn,
                    packet: packet.clone(),
                });
                break;
            }
            _ => {}
        }
        let _ = seen.send(Seen::Packet { conn, packet });
    }
    subs.lock().unwrap().remove(&conn);
    conns.lock().unwrap().remove(&conn);
    let _ = writer.await;
}
