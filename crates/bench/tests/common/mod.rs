//! A tiny in-test Elvin router, so the tool's tests do not depend on the
//! real `eventd` (which is developed separately) and can inject faults.
//!
//! It speaks just enough of the protocol for the benchmarks: ConnRqst,
//! SubAddRqst (compiled with `elvin-sublang`), NotifyEmit (delivered with
//! the raw attribute bytes to every session with a matching subscription,
//! in order), TestConn and DisconnRqst. Each session's deliveries go
//! through a bounded channel to a writer task, so a slow subscriber slows
//! the publisher instead of growing memory, as a careful router would.
//!
//! Faults for negative tests: drop every Nth delivery, or refuse every
//! subscription with a Nack.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use elvin_proto::{
    ConfConn, ConnRply, DEFAULT_MAX_PACKET_LENGTH, DisconnRply, Message, Nack, NotifyEmit, Packet,
    SubRply, Value, decode_notify_emit, encode_notify_deliver_raw, peek_packet_id, split_frame,
};
use elvin_sublang::{Limits, Subscription};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Faults the router can be told to commit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Drop every Nth delivery (counted across the router).
    pub drop_every: Option<u64>,
    /// Answer every SubAddRqst with Nack 2006.
    pub refuse_subscriptions: bool,
}

struct Client {
    outbox: mpsc::Sender<Vec<u8>>,
    subscriptions: Vec<(i64, Subscription)>,
}

#[derive(Default)]
struct State {
    clients: HashMap<u64, Client>,
    next_subscription: i64,
}

/// A running in-test router; stops when dropped.
pub struct TestRouter {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestRouter {
    /// Starts a router on a free loopback port.
    pub async fn start(faults: Faults) -> TestRouter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            next_subscription: 1,
            ..State::default()
        }));
        let deliveries = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            let mut next_client = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                next_client += 1;
                let state = Arc::clone(&state);
                let deliveries = Arc::clone(&deliveries);
                tokio::spawn(serve(stream, next_client, state, deliveries, faults));
            }
        });
        TestRouter { addr, task }
    }

    /// `elvin://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("elvin://{}", self.addr)
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    id: u64,
    state: Arc<Mutex<State>>,
    deliveries: Arc<AtomicU64>,
    faults: Faults,
) {
    stream.set_nodelay(true).unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut queue) = mpsc::channel::<Vec<u8>>(1024);
    state.lock().unwrap().clients.insert(
        id,
        Client {
            outbox: outbox.clone(),
            subscriptions: Vec::new(),
        },
    );
    let write_task = tokio::spawn(async move {
        let mut batch = Vec::new();
        while let Some(frame) = queue.recv().await {
            batch.clear();
            batch.extend_from_slice(&frame);
            while let Ok(more) = queue.try_recv() {
                batch.extend_from_slice(&more);
            }
            if writer.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = Vec::with_capacity(64 * 1024);
    'session: loop {
        let mut consumed = 0;
        while let Ok(Some((body, total))) =
            split_frame(&buffer[consumed..], DEFAULT_MAX_PACKET_LENGTH)
        {
            let body = body.to_vec();
            consumed += total;
            if !handle(&body, id, &state, &outbox, &deliveries, faults).await {
                break 'session;
            }
        }
        buffer.drain(..consumed);
        buffer.reserve(64 * 1024);
        match reader.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    state.lock().unwrap().clients.remove(&id);
    drop(outbox);
    let _ = write_task.await;
}

/// Handles one packet; false ends the session.
async fn handle(
    body: &[u8],
    id: u64,
    state: &Mutex<State>,
    outbox: &mpsc::Sender<Vec<u8>>,
    deliveries: &AtomicU64,
    faults: Faults,
) -> bool {
    if peek_packet_id(body) == Some(NotifyEmit::ID) {
        let Ok(notify) = decode_notify_emit(body) else {
            return true;
        };
        let mut targets = Vec::new();
        {
            let state = state.lock().unwrap();
            for client in state.clients.values() {
                let matched: Vec<i64> = client
                    .subscriptions
                    .iter()
                    .filter(|(_, sub)| sub.matches(&notify.attributes))
                    .map(|(sub_id, _)| *sub_id)
                    .collect();
                if !matched.is_empty() {
                    targets.push((client.outbox.clone(), matched));
                }
            }
        }
        for (target, matched) in targets {
            let n = deliveries.fetch_add(1, Ordering::Relaxed) + 1;
            if faults
                .drop_every
                .is_some_and(|every| n.is_multiple_of(every))
            {
                continue;
            }
            let mut frame = Vec::new();
            encode_notify_deliver_raw(&mut frame, notify.raw_attributes, &[], &matched);
            let _ = target.send(frame).await;
        }
        return true;
    }
    let Ok(packet) = Packet::decode(body) else {
        return false;
    };
    let mut reply = Vec::new();
    let mut keep_going = true;
    match packet {
        Packet::ConnRqst(request) => {
            let options = request
                .options
                .into_iter()
                .filter(|(name, _)| name == "TCP.Send-Immediately")
                .collect();
            ConnRply {
                xid: request.xid,
                options,
            }
            .encode_frame(&mut reply);
        }
        Packet::SubAddRqst(request) => {
            if faults.refuse_subscriptions {
                Nack {
                    xid: request.xid,
                    error: 2006,
                    message: "Too many subscriptions (%1)".into(),
                    args: vec![Value::Int32(0)],
                }
                .encode_frame(&mut reply);
            } else {
                match Subscription::compile(&request.expression, &Limits::default()) {
                    Ok(subscription) => {
                        let mut state = state.lock().unwrap();
                        let sub_id = state.next_subscription;
                        state.next_subscription += 1;
                        if let Some(client) = state.clients.get_mut(&id) {
                            client.subscriptions.push((sub_id, subscription));
                        }
                        SubRply {
                            xid: request.xid,
                            subscription_id: sub_id,
                        }
                        .encode_frame(&mut reply);
                    }
                    Err(error) => {
                        Nack {
                            xid: request.xid,
                            error: 2101,
                            message: error.to_string(),
                            args: vec![],
                        }
                        .encode_frame(&mut reply);
                    }
                }
            }
        }
        Packet::TestConn(_) => ConfConn.encode_frame(&mut reply),
        Packet::DisconnRqst(request) => {
            DisconnRply { xid: request.xid }.encode_frame(&mut reply);
            keep_going = false;
        }
        _ => {}
    }
    if !reply.is_empty() {
        let _ = outbox.send(reply).await;
    }
    keep_going
}

/// A listener that accepts connections and never says anything.
pub async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}
