//! `floor`: the round trip no router can beat on this machine.
//!
//! `pingpong` goes pinger → router → echoer → router → pinger. Part of
//! that time is the router's work and part is the operating system's:
//! four loopback hops and two wake-ups of another process. This test sends
//! the same bytes through the same hops with the router replaced by a
//! **relay** that does nothing but copy bytes between two sockets, in a
//! separate process (started from this same binary as `eventd-bench
//! relay`), with the pinger and echoer on the same async runtime as in
//! `pingpong`. The difference between the two figures is what the router
//! adds.
//!
//! The relay uses one blocking thread per direction with plain read/write
//! calls: the cheapest forwarding a process can do, hence a floor.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::StopReason;
use crate::error::BenchError;
use crate::stats::{LatencyRecorder, LatencySummary};

/// Settings of a floor run.
#[derive(Clone, Debug)]
pub struct FloorConfig {
    /// The program to start as the relay (this tool's own binary); it is
    /// run as `<program> relay --listen 127.0.0.1:0 --lifetime <secs>`.
    pub relay_program: PathBuf,
    /// Measured round trips.
    pub count: u64,
    /// Longest measured phase.
    pub duration: Duration,
    /// Round trips sent and discarded first.
    pub warmup: u64,
    /// Bytes per message (the size of a ping frame).
    pub message_bytes: usize,
    /// Longest wait for the relay or a reply.
    pub timeout: Duration,
}

/// Result of a floor run.
#[derive(Clone, Debug, Serialize)]
pub struct FloorReport {
    /// Bytes per message.
    pub message_bytes: usize,
    /// Warm-up round trips (not in the figures).
    pub warmup: u64,
    /// Round-trip times through the relay.
    pub round_trip: LatencySummary,
    /// Length of the measured phase in seconds.
    pub elapsed_s: f64,
    /// What ended the measured phase.
    pub stopped_by: StopReason,
}

/// Runs the relay: accepts two connections on `listen` and copies bytes
/// between them until either closes, or until `lifetime` has passed (so
/// an orphaned relay never lingers). Prints `relay listening on ADDR` on
/// stdout once ready.
pub fn run_relay(listen: &str, lifetime: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "relay listening on {address}")?;
        stdout.flush()?;
    }
    std::thread::spawn(move || {
        std::thread::sleep(lifetime);
        std::process::exit(0);
    });
    let (first, _) = listener.accept()?;
    let (second, _) = listener.accept()?;
    first.set_nodelay(true)?;
    second.set_nodelay(true)?;
    let first_clone = first.try_clone()?;
    let second_clone = second.try_clone()?;
    let forward = std::thread::spawn(move || copy_until_closed(first_clone, second_clone));
    copy_until_closed(second, first);
    let _ = forward.join();
    Ok(())
}

/// Copies `from` to `to` with one read and one write per chunk.
fn copy_until_closed(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Some(chunk) = buffer.get(..n) else { break };
                if to.write_all(chunk).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Runs the floor test.
pub async fn run(config: &FloorConfig) -> Result<FloorReport, BenchError> {
    if config.count == 0 || config.message_bytes == 0 {
        return Err(BenchError::Config(
            "--count and the message size must be at least 1".into(),
        ));
    }
    let lifetime = config
        .duration
        .saturating_add(config.timeout.saturating_mul(4))
        .saturating_add(Duration::from_secs(60));
    let mut relay = tokio::process::Command::new(&config.relay_program)
        .args(["relay", "--listen", "127.0.0.1:0", "--lifetime"])
        .arg(lifetime.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            BenchError::Local(format!(
                "cannot start the relay {}: {e}",
                config.relay_program.display()
            ))
        })?;
    let stdout = relay
        .stdout
        .take()
        .ok_or_else(|| BenchError::Local("the relay has no stdout".into()))?;
    let mut line = String::new();
    let mut lines = tokio::io::BufReader::new(stdout);
    match tokio::time::timeout(config.timeout, lines.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            return Err(BenchError::Local(
                "the relay did not start (no address printed)".into(),
            ));
        }
    }
    let address = line
        .trim()
        .strip_prefix("relay listening on ")
        .ok_or_else(|| {
            BenchError::Local(format!("the relay printed {line:?} instead of its address"))
        })?
        .to_owned();
    let connect = |what: &'static str| {
        let address = address.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(&address)
                .await
                .map_err(|source| BenchError::Connect {
                    address: format!("{address} ({what})"),
                    source,
                })?;
            stream.set_nodelay(true).map_err(|source| BenchError::Io {
                phase: "relay setup",
                source,
            })?;
            Ok::<_, BenchError>(stream)
        }
    };
    // The relay pairs connections in accept order: pinger first.
    let mut pinger = connect("pinger").await?;
    let echoer = connect("echoer").await?;
    let size = config.message_bytes;
    let echo_task = tokio::spawn(async move {
        let mut echoer = echoer;
        let mut buffer = vec![0u8; size];
        loop {
            if echoer.read_exact(&mut buffer).await.is_err() {
                return;
            }
            if echoer.write_all(&buffer).await.is_err() {
                return;
            }
        }
    });
    let result = ping_through_relay(&mut pinger, config).await;
    echo_task.abort();
    drop(pinger);
    let _ = relay.kill().await;
    result
}

async fn ping_through_relay(
    pinger: &mut tokio::net::TcpStream,
    config: &FloorConfig,
) -> Result<FloorReport, BenchError> {
    const PHASE: &str = "floor";
    let message: Vec<u8> = (0..config.message_bytes).map(|i| (i % 251) as u8).collect();
    let mut reply = vec![0u8; config.message_bytes];
    let mut recorder = LatencyRecorder::new();
    let total = config.warmup.saturating_add(config.count);
    let mut measured_start = None;
    let mut stopped_by = StopReason::Count;
    for n in 0..total {
        if n == config.warmup {
            measured_start = Some(Instant::now());
        }
        if let Some(start) = measured_start
            && start.elapsed() >= config.duration
        {
            stopped_by = StopReason::Duration;
            break;
        }
        let sent = Instant::now();
        pinger
            .write_all(&message)
            .await
            .map_err(|source| BenchError::Io {
                phase: PHASE,
                source,
            })?;
        match tokio::time::timeout(config.timeout, pinger.read_exact(&mut reply)).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(BenchError::Io {
                    phase: PHASE,
                    source,
                });
            }
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("echo {n} through the relay"),
                    timeout: config.timeout,
                });
            }
        }
        let round_trip = sent.elapsed();
        if reply != message {
            return Err(BenchError::Local("the relay corrupted a message".into()));
        }
        if measured_start.is_some() {
            recorder.record(round_trip);
        }
    }
    Ok(FloorReport {
        message_bytes: config.message_bytes,
        warmup: config.warmup,
        round_trip: recorder.summary(),
        elapsed_s: measured_start.map_or(0.0, |start| start.elapsed().as_secs_f64()),
        stopped_by,
    })
}
