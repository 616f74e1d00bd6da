//! `pingpong`: round-trip latency through the router.
//!
//! Two sessions: the **echoer** subscribes to `PING == 1` (for this run) and
//! republishes every ping it receives as a pong; the **pinger** subscribes
//! to the pongs, then sends one ping at a time and times how long its pong
//! takes. A round trip is therefore publisher → router → echoer → router →
//! publisher: two passes through the router's matching and delivery, and
//! four loopback hops.
//!
//! One ping at a time (not a stream) is deliberate: it measures the latency
//! an idle router adds to one event, which is what an experiment's agents
//! see, free of queueing. The echo costs almost nothing: the pong is the
//! delivered attribute list copied verbatim with the four bytes of the name
//! `PING` changed to `PONG`. The `floor` subcommand measures the same
//! exchange through a relay that does no Elvin work, which is the part of
//! these figures no router can remove.

use std::time::{Duration, Instant};

use elvin_proto::{Disconn, DropWarn, Message, NotifyDeliver, peek_packet_id};
use serde::Serialize;
use tokio::net::tcp::OwnedWriteHalf;

use crate::StopReason;
use crate::error::BenchError;
use crate::shape::{self, PingTemplate, read_ping};
use crate::stats::{LatencyRecorder, LatencySummary};
use crate::wire::{
    self, ConnectOptions, FrameReader, Session, Target, disconn_error, encode_emit_raw,
};

/// Settings of a round-trip run.
#[derive(Clone, Debug)]
pub struct PingPongConfig {
    /// The router.
    pub target: Target,
    /// Measured pings (after the warm-up).
    pub count: u64,
    /// Longest measured phase.
    pub duration: Duration,
    /// Pings sent and discarded first (connection and cache warm-up).
    pub warmup: u64,
    /// Opaque payload bytes per ping.
    pub payload: usize,
    /// Longest wait for any reply from the router.
    pub timeout: Duration,
}

/// Result of a round-trip run.
#[derive(Clone, Debug, Serialize)]
pub struct PingPongReport {
    /// Router URI.
    pub router: String,
    /// Bytes of one ping frame.
    pub ping_bytes: usize,
    /// Warm-up pings (not in the figures).
    pub warmup: u64,
    /// Round-trip times of the measured pings.
    pub round_trip: LatencySummary,
    /// Length of the measured phase in seconds.
    pub elapsed_s: f64,
    /// What ended the measured phase.
    pub stopped_by: StopReason,
    /// DropWarn packets received (should be 0).
    pub drop_warns: u64,
}

/// A run number that keeps this run's pings apart from any other run on
/// the same router.
pub fn run_number() -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos ^ std::process::id().rotate_left(16);
    // Positive and non-zero.
    i32::try_from(mixed & 0x3fff_ffff).unwrap_or(1).max(1)
}

/// Runs the round-trip test.
pub async fn run(config: &PingPongConfig) -> Result<PingPongReport, BenchError> {
    if config.count == 0 {
        return Err(BenchError::Config("--count must be at least 1".into()));
    }
    let run = run_number();
    let options = ConnectOptions::new(config.timeout);
    let mut echoer = wire::connect(&config.target, &options).await?;
    echoer
        .subscribe(&shape::ping_subscription(run), config.timeout)
        .await?;
    let mut pinger = wire::connect(&config.target, &options).await?;
    pinger
        .subscribe(&shape::pong_subscription(run), config.timeout)
        .await?;
    let template = PingTemplate::new(
        run,
        config.payload,
        pinger.max_packet_len.min(echoer.max_packet_len),
    )?;
    let echo_task = tokio::spawn(echo_loop(echoer, run));
    let outcome = ping_loop(&mut pinger, &template, run, config).await;
    echo_task.abort();
    let echo_result = echo_task.await;
    match outcome {
        Ok(report) => Ok(report),
        // A silent pinger is usually a failed echoer: report its cause.
        Err(error @ BenchError::Timeout { .. }) => match echo_result {
            Ok(Err(echo_error)) => Err(echo_error),
            _ => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// Sends pings one at a time and records their round trips.
pub(crate) async fn ping_loop(
    pinger: &mut Session,
    template: &PingTemplate,
    run: i32,
    config: &PingPongConfig,
) -> Result<PingPongReport, BenchError> {
    let mut frame = Vec::with_capacity(template.frame_len());
    let mut recorder = LatencyRecorder::new();
    let mut drop_warns = 0u64;
    let total = config.warmup.saturating_add(config.count);
    let mut measured_start = None;
    let mut stopped_by = StopReason::Count;
    for seq in 0..total {
        if seq == config.warmup {
            measured_start = Some(Instant::now());
        }
        if let Some(start) = measured_start
            && start.elapsed() >= config.duration
        {
            stopped_by = StopReason::Duration;
            break;
        }
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        template.write(&mut frame, seq);
        let sent = Instant::now();
        wire::write_batch(&mut pinger.writer, &frame, "pingpong").await?;
        wait_for_pong(
            &mut pinger.reader,
            run,
            seq,
            config.timeout,
            &mut drop_warns,
        )
        .await?;
        let round_trip = sent.elapsed();
        if measured_start.is_some() {
            recorder.record(round_trip);
        }
    }
    let elapsed_s = measured_start.map_or(0.0, |start| start.elapsed().as_secs_f64());
    Ok(PingPongReport {
        router: config.target.text.clone(),
        ping_bytes: template.frame_len(),
        warmup: config.warmup,
        round_trip: recorder.summary(),
        elapsed_s,
        stopped_by,
        drop_warns,
    })
}

/// Reads until the pong of ping `seq` arrives.
async fn wait_for_pong(
    reader: &mut FrameReader<tokio::net::tcp::OwnedReadHalf>,
    run: i32,
    seq: i64,
    timeout: Duration,
    drop_warns: &mut u64,
) -> Result<(), BenchError> {
    const PHASE: &str = "pingpong";
    loop {
        while let Some(body) = reader.next_frame(PHASE)? {
            match peek_packet_id(body) {
                Some(NotifyDeliver::ID) => {
                    let view = read_ping(body).map_err(|source| BenchError::Decode {
                        phase: PHASE,
                        source,
                    })?;
                    // Late pongs of earlier pings cannot happen with one
                    // ping in flight, but are harmless: skip them.
                    if view.is_some_and(|v| v.run == run && v.seq == seq) {
                        return Ok(());
                    }
                }
                Some(DropWarn::ID) => *drop_warns += 1,
                Some(Disconn::ID) => return Err(disconn_error(body, PHASE)),
                _ => {}
            }
        }
        reader
            .fill_within(timeout, PHASE, || format!("the pong of ping {seq}"))
            .await?;
    }
}

/// The echoer: turns every ping of run `run` into a pong. Runs until
/// aborted or until the router hangs up.
pub(crate) async fn echo_loop(session: Session, run: i32) -> Result<(), BenchError> {
    let Session {
        mut reader,
        mut writer,
        ..
    } = session;
    let mut out = Vec::with_capacity(4096);
    loop {
        reader.fill("echoing pings").await?;
        echo_buffered(&mut reader, &mut writer, &mut out, run).await?;
    }
}

async fn echo_buffered<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    writer: &mut OwnedWriteHalf,
    out: &mut Vec<u8>,
    run: i32,
) -> Result<(), BenchError> {
    const PHASE: &str = "echoing pings";
    out.clear();
    while let Some(body) = reader.next_frame(PHASE)? {
        match peek_packet_id(body) {
            Some(NotifyDeliver::ID) => {
                let view = read_ping(body).map_err(|source| BenchError::Decode {
                    phase: PHASE,
                    source,
                })?;
                if let Some(view) = view.filter(|v| v.run == run) {
                    append_pong(out, body, view);
                }
            }
            Some(Disconn::ID) => return Err(disconn_error(body, PHASE)),
            _ => {}
        }
    }
    if !out.is_empty() {
        wire::write_batch(writer, out, PHASE).await?;
    }
    Ok(())
}

/// Appends the pong for a delivered ping: its attribute list verbatim,
/// with the name `PING` rewritten as `PONG`.
fn append_pong(out: &mut Vec<u8>, body: &[u8], view: shape::PingView) {
    let (Some(ping_at), Some(raw)) = (view.ping_name_at, body.get(4..view.attributes_end)) else {
        return;
    };
    let base = out.len();
    encode_emit_raw(out, raw);
    // In `out` the list starts 8 bytes after `base` (length and packet
    // id); in `body` it starts 4 bytes in (packet id).
    let at = base + 4 + ping_at;
    if let Some(name) = out.get_mut(at..at + shape::PONG.len()) {
        name.copy_from_slice(shape::PONG.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::{Attributes, Keys, NotifyEmit, Packet};

    #[test]
    fn a_pong_is_the_ping_renamed() {
        let template = PingTemplate::new(5, 16, 1 << 20).unwrap();
        let mut ping = Vec::new();
        template.write(&mut ping, 3);
        let ping_attributes = match Packet::decode(&ping[4..]).unwrap() {
            Packet::NotifyEmit(emit) => emit.attributes,
            other => panic!("{other:?}"),
        };
        // What the router would deliver.
        let mut delivered = Vec::new();
        NotifyDeliver {
            attributes: ping_attributes.clone(),
            secure_matches: vec![],
            insecure_matches: vec![11],
        }
        .encode_frame(&mut delivered);
        let body = &delivered[4..];
        let view = read_ping(body).unwrap().unwrap();
        let mut out = Vec::new();
        append_pong(&mut out, body, view);
        let mut expected: Attributes = Attributes::new();
        for (name, value) in ping_attributes.iter() {
            let name = if name == "PING" { "PONG" } else { name };
            expected.insert(name, value.clone());
        }
        let mut expected_frame = Vec::new();
        NotifyEmit {
            attributes: expected,
            deliver_insecure: true,
            keys: Keys::new(),
        }
        .encode_frame(&mut expected_frame);
        assert_eq!(out, expected_frame);
    }

    #[test]
    fn run_numbers_are_positive() {
        for _ in 0..100 {
            assert!(run_number() > 0);
        }
    }
}
