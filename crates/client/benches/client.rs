//! Client throughput and latency over loopback TCP, against an in-process
//! fake router (so the figures measure the client, not a router):
//!
//! - `notify`: NotifyEmit of a typical Emulab event into a router that
//!   discards what it reads (the producer path: encode, send budget,
//!   writer task, socket);
//! - `round_trip`: NotifyEmit out, NotifyDeliver back to a subscription,
//!   one at a time (the consumer path: framing, decode, routing, queue,
//!   wake-up).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use elvin_client::{Attributes, Client, ConnectOptions, Keys, SubscribeOptions};
use elvin_proto::{ConnRply, NotifyDeliver, Packet, SubRply, frame_len};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn emulab_event() -> Attributes {
    let mut event: Attributes = [
        ("SITE", "emulab.net"),
        ("EXPT", "testbed/demo"),
        ("GROUP", "testbed"),
        ("HOST", "*"),
        ("OBJTYPE", "LINK"),
        ("OBJNAME", "link0"),
        ("EVENTTYPE", "DOWN"),
        ("___SENDER___", "10.1.1.2"),
    ]
    .into_iter()
    .collect();
    event.insert("SCHEDULER", 0);
    event
}

/// A fake router: answers ConnRqst and SubAddRqst (id 1); when `echo` is
/// set, answers each NotifyEmit with a NotifyDeliver to subscription 1;
/// otherwise discards it.
async fn fake_router(echo: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let uri = format!(
        "elvin://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = BytesMut::with_capacity(1 << 16);
        let mut out = Vec::new();
        loop {
            while let Ok(Some(total)) = frame_len(&buf, 1 << 24) {
                let frame = buf.split_to(total);
                let reply = match Packet::decode(&frame[4..]) {
                    Ok(Packet::ConnRqst(r)) => Some(Packet::ConnRply(ConnRply {
                        xid: r.xid,
                        options: vec![],
                    })),
                    Ok(Packet::SubAddRqst(r)) => Some(Packet::SubRply(SubRply {
                        xid: r.xid,
                        subscription_id: 1,
                    })),
                    Ok(Packet::NotifyEmit(e)) if echo => {
                        Some(Packet::NotifyDeliver(NotifyDeliver {
                            attributes: e.attributes,
                            secure_matches: vec![],
                            insecure_matches: vec![1],
                        }))
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    reply.encode(&mut out);
                }
            }
            if !out.is_empty() {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    uri
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let event = emulab_event();
    let keys = Keys::new();

    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));

    let sink = runtime.block_on(async {
        let uri = fake_router(false).await;
        Client::connect(uri, ConnectOptions::default())
            .await
            .expect("connect")
    });
    group.bench_function("notify", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    sink.notify(&event, true, &keys).await.expect("notify");
                }
                started.elapsed()
            })
        })
    });

    let (echo, mut subscription) = runtime.block_on(async {
        let uri = fake_router(true).await;
        let client = Client::connect(uri, ConnectOptions::default())
            .await
            .expect("connect");
        let subscription = client
            .subscribe("require(EXPT)", SubscribeOptions::default())
            .await
            .expect("subscribe");
        (client, subscription)
    });
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    echo.notify(&event, true, &keys).await.expect("notify");
                    subscription.recv().await.expect("delivery");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(client, benches);
criterion_main!(client);
