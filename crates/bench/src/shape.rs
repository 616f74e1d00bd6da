//! The traffic the benchmarks send: Emulab-shaped events and subscriptions,
//! and the ping notifications of the latency test.
//!
//! Throughput is only meaningful for a realistic load, so the events look
//! like what Emulab's event library sends (docs/emulab-model.md §1): the seven
//! address-tuple strings, `SCHEDULER`, `___SENDER___`, `ARGS`,
//! `time_sec`/`time_usec` and a 20-byte `__hmac__`: 13 attributes and about
//! 400 bytes on the wire. The bench-specific data rides in fields an Emulab
//! event already has, so the shape is unchanged:
//!
//! - `time_sec`/`time_usec` carry the **send time** (microseconds on this
//!   process's monotonic clock, see [`now_us`]); the receiver subtracts it
//!   from its own clock to get the delivery latency;
//! - `ARGS` carries the publisher number and the sequence number in
//!   Emulab's `KEY=value` style, in fixed-width decimal
//!   (`PUB=0003 SEQ=000000001234`), which lets the receiver check order and
//!   loss per publisher.
//!
//! Encoding an event per send would make the tool's own cost part of the
//! measurement, so each publisher encodes its event once as a
//! [`EventTemplate`] and patches the digits and the timestamp in place for
//! every copy.

use std::sync::OnceLock;
use std::time::Instant;

use elvin_proto::raw::{self, Reader};
use elvin_proto::{
    DecodeError, DecodeErrorKind, Message, NotifyDeliver, NotifyEmit, ValueRef, ValueType,
};

use crate::error::BenchError;
use crate::wire::walk_attributes;

/// `EXPT` of the benchmark's events (`pid/eid`).
pub const EVENT_EXPT: &str = "emulab-ops/eventd-bench";
/// `HOST` of the benchmark's events: a node's control address, as Emulab
/// addresses events.
pub const EVENT_HOST: &str = "10.0.0.1";
/// Number of attributes in an event.
pub const EVENT_ATTRIBUTES: usize = 13;
/// Largest publisher number that fits the `PUB=` field.
pub const MAX_PUBLISHERS: u32 = 9_999;
/// Largest sequence number that fits the `SEQ=` field.
pub const MAX_SEQUENCE: u64 = 999_999_999_999;

const PUB_DIGITS: usize = 4;
const SEQ_DIGITS: usize = 12;
const ARGS_PREFIX: &str = "PUB=0000 SEQ=000000000000";
const PUB_AT: usize = 4;
const SEQ_AT: usize = 13;

/// The subscription every throughput subscriber installs: Emulab's shape
/// for an agent on node [`EVENT_HOST`] of experiment [`EVENT_EXPT`]
/// (directed and broadcast events, live events only).
pub fn matching_subscription() -> String {
    format!(
        r#" ( EXPT == "{EVENT_EXPT}" ) && ( HOST == "*" || HOST == "{EVENT_HOST}" ) && SCHEDULER == 0 "#
    )
}

/// The `index`th load subscription: the same Emulab shape, naming another
/// experiment, another node and an object of its own, so it never matches
/// a benchmark event. Routers that index on equality constraints can skip
/// it cheaply; routers that evaluate every subscription cannot.
pub fn non_matching_subscription(index: usize) -> String {
    // Node addresses 10.a.b.c from index + 2, so none is EVENT_HOST.
    let n = index.wrapping_add(2);
    let (a, b, c) = ((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    format!(
        r#" ( EXPT == "load{index}/exp{index}" ) && ( HOST == "*" || HOST == "10.{a}.{b}.{c}" ) && ( OBJNAME == "agent{index}" ) && SCHEDULER == 0 "#
    )
}

/// Nodes per experiment in the testbed layout.
pub const TESTBED_NODES: usize = 20;

/// The `index`th load subscription of a realistic testbed: experiment
/// `index / 20`, node `index % 20`. Experiment 0 is the benchmark's own
/// ([`EVENT_EXPT`]): its 20 load subscriptions belong to the other nodes,
/// so they share the benchmark events' EXPT but never match them. Every
/// fourth subscription is a program agent's (OBJTYPE PROGRAM, which the
/// benchmark events are not); the rest are node agents, `HOST == "*" ||
/// HOST == <node>`. An index that files on EXPT alone visits the whole
/// experiment for every event; a composite one visits none.
pub fn testbed_subscription(index: usize) -> String {
    let experiment = index / TESTBED_NODES;
    let node = index % TESTBED_NODES;
    let expt = if experiment == 0 {
        EVENT_EXPT.to_owned()
    } else {
        format!("load{experiment}/exp")
    };
    if index % 4 == 3 {
        format!(
            r#" ( EXPT == "{expt}" ) && ( OBJTYPE == "PROGRAM" ) && ( OBJNAME == "prog{node}" || OBJNAME == "agent{node}" ) && SCHEDULER == 0 "#
        )
    } else {
        // 10.x.y.(node + 2): never EVENT_HOST (10.0.0.1).
        let (x, y) = ((experiment >> 8) & 0xff, experiment & 0xff);
        let host = node + 2;
        format!(
            r#" ( EXPT == "{expt}" ) && ( HOST == "*" || HOST == "10.{x}.{y}.{host}" ) && SCHEDULER == 0 "#
        )
    }
}

/// Microseconds since this process first asked, on the monotonic clock.
/// Publishers and subscribers of one run share the process, hence the
/// clock.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// An encoded Emulab event with the positions of the fields that change
/// per copy.
#[derive(Clone, Debug)]
pub struct EventTemplate {
    frame: Vec<u8>,
    pub_at: usize,
    seq_at: usize,
    time_sec_at: usize,
    time_usec_at: usize,
}

/// What a receiver reads back from a benchmark event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventStamp {
    /// Publisher number.
    pub publisher: u32,
    /// Sequence number within that publisher.
    pub seq: u64,
    /// Send time, as [`now_us`] of the sender.
    pub sent_us: u64,
}

/// Appends an XDR string and returns where its bytes start.
fn put_str_at(out: &mut Vec<u8>, text: &str) -> usize {
    let at = out.len() + 4;
    raw::put_str(out, text);
    at
}

impl EventTemplate {
    /// The event of publisher `publisher`, with `padding` extra bytes in
    /// `ARGS` (0 for the standard ~400-byte event). The frame must fit the
    /// router's `max_packet_len`.
    pub fn new(publisher: u32, padding: usize, max_packet_len: usize) -> Result<Self, BenchError> {
        if publisher > MAX_PUBLISHERS {
            return Err(BenchError::Config(format!(
                "at most {} publishers are supported",
                MAX_PUBLISHERS + 1
            )));
        }
        let mut args = String::with_capacity(ARGS_PREFIX.len() + padding);
        args.push_str(ARGS_PREFIX);
        if padding > 0 {
            args.push(' ');
            args.extend(std::iter::repeat_n('.', padding - 1));
        }
        let strings = [
            ("SITE", "emulab.net"),
            ("EXPT", EVENT_EXPT),
            ("GROUP", "*"),
            ("HOST", EVENT_HOST),
            ("OBJTYPE", "TRAFGEN"),
            ("OBJNAME", "cbr0"),
            ("EVENTTYPE", "MODIFY"),
        ];
        // Frame: length, packet id, attribute count, attributes,
        // deliver_insecure, empty key block.
        let mut frame = Vec::with_capacity(512 + padding);
        raw::put_u32(&mut frame, 0);
        raw::put_i32(&mut frame, NotifyEmit::ID);
        raw::put_count(&mut frame, EVENT_ATTRIBUTES);
        for (name, value) in strings {
            raw::put_str(&mut frame, name);
            raw::put_value(&mut frame, ValueRef::String(value));
        }
        raw::put_str(&mut frame, "SCHEDULER");
        raw::put_value(&mut frame, ValueRef::Int32(0));
        raw::put_str(&mut frame, "___SENDER___");
        raw::put_value(&mut frame, ValueRef::String("10.0.0.254"));
        raw::put_str(&mut frame, "ARGS");
        raw::put_i32(&mut frame, elvin_proto::ValueType::String.code());
        let args_at = put_str_at(&mut frame, &args);
        raw::put_str(&mut frame, "time_sec");
        raw::put_i32(&mut frame, elvin_proto::ValueType::Int32.code());
        let time_sec_at = frame.len();
        raw::put_i32(&mut frame, 0);
        raw::put_str(&mut frame, "time_usec");
        raw::put_i32(&mut frame, elvin_proto::ValueType::Int32.code());
        let time_usec_at = frame.len();
        raw::put_i32(&mut frame, 0);
        raw::put_str(&mut frame, "__hmac__");
        // The router never checks the HMAC; any 20 bytes do.
        raw::put_value(&mut frame, ValueRef::Opaque(&[0xA5; 20]));
        raw::put_bool(&mut frame, true);
        raw::put_count(&mut frame, 0);
        let body_len = frame.len() - 4;
        if body_len > max_packet_len {
            return Err(BenchError::Config(format!(
                "an event with --padding {padding} is {body_len} bytes, more than the router's Packet.Max-Length of {max_packet_len}"
            )));
        }
        let length = u32::try_from(body_len)
            .map_err(|_| BenchError::Config(format!("--padding {padding} is too large")))?;
        if let Some(header) = frame.get_mut(..4) {
            header.copy_from_slice(&length.to_be_bytes());
        }
        let mut template = EventTemplate {
            frame,
            pub_at: args_at + PUB_AT,
            seq_at: args_at + SEQ_AT,
            time_sec_at,
            time_usec_at,
        };
        let pub_at = template.pub_at;
        write_digits(
            &mut template.frame,
            pub_at,
            PUB_DIGITS,
            u64::from(publisher),
        );
        Ok(template)
    }

    /// Bytes of one encoded event, length prefix included.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// Appends event number `seq`, stamped with send time `sent_us`.
    pub fn append(&self, out: &mut Vec<u8>, seq: u64, sent_us: u64) {
        let base = out.len();
        out.extend_from_slice(&self.frame);
        let secs = i32::try_from(sent_us / 1_000_000).unwrap_or(i32::MAX);
        // Below 1,000,000, so it fits.
        let micros = (sent_us % 1_000_000) as i32;
        write_digits(out, base + self.seq_at, SEQ_DIGITS, seq.min(MAX_SEQUENCE));
        put_i32_at(out, base + self.time_sec_at, secs);
        put_i32_at(out, base + self.time_usec_at, micros);
    }
}

fn put_i32_at(out: &mut [u8], at: usize, value: i32) {
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes `value` as `width` zero-padded decimal digits at `at`.
fn write_digits(out: &mut [u8], at: usize, width: usize, mut value: u64) {
    if let Some(slot) = out.get_mut(at..at + width) {
        for digit in slot.iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

/// Reads fixed-width decimal digits; `None` if any byte is not a digit.
fn read_digits(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

/// Parses `ARGS` of a benchmark event: publisher and sequence number.
fn parse_args(bytes: &[u8]) -> Option<(u32, u64)> {
    if bytes.get(..PUB_AT)? != b"PUB=" || bytes.get(PUB_AT + PUB_DIGITS..SEQ_AT)? != b" SEQ=" {
        return None;
    }
    let publisher = read_digits(bytes.get(PUB_AT..PUB_AT + PUB_DIGITS)?)?;
    let seq = read_digits(bytes.get(SEQ_AT..SEQ_AT + SEQ_DIGITS)?)?;
    Some((u32::try_from(publisher).ok()?, seq))
}

/// Reads the stamp of a delivered benchmark event from a NotifyDeliver
/// body. `Ok(None)` means a well-formed notification that is not one of
/// ours (a shared router may carry other traffic).
///
/// This is the subscribers' per-event cost, so it skims: names and string
/// values are compared as bytes, without the UTF-8 validation a full
/// decode does (the tool never uses them as text), and values it does not
/// need are skipped by length. Every read is still bounds-checked.
pub fn read_event(body: &[u8]) -> Result<Option<EventStamp>, DecodeError> {
    let fail = |kind| DecodeError::in_packet(NotifyDeliver::NAME, kind);
    let mut reader = Reader::new(body);
    reader
        .read_i32()
        .map_err(|_| DecodeError::bare(DecodeErrorKind::MissingPacketId))?;
    let count = reader.read_count(raw::MIN_NAME_VALUE_LEN).map_err(fail)?;
    let mut ids = None;
    let mut secs = None;
    let mut micros = None;
    for _ in 0..count {
        let name = reader.read_opaque().map_err(fail)?;
        let code = reader.read_i32().map_err(fail)?;
        match ValueType::from_code(code) {
            Some(ValueType::Int32) => {
                let value = reader.read_i32().map_err(fail)?;
                match name {
                    b"time_sec" => secs = u64::try_from(value).ok(),
                    b"time_usec" => micros = u64::try_from(value).ok(),
                    _ => {}
                }
            }
            Some(ValueType::Int64 | ValueType::Real64) => {
                reader.read_i64().map_err(fail)?;
            }
            Some(ValueType::String) => {
                let value = reader.read_opaque().map_err(fail)?;
                if name == b"ARGS" {
                    ids = parse_args(value);
                }
            }
            Some(ValueType::Opaque) => {
                reader.read_opaque().map_err(fail)?;
            }
            None => return Err(fail(DecodeErrorKind::UnknownValueType(code))),
        }
    }
    Ok(match (ids, secs, micros) {
        (Some((publisher, seq)), Some(secs), Some(micros)) => Some(EventStamp {
            publisher,
            seq,
            sent_us: secs.saturating_mul(1_000_000).saturating_add(micros),
        }),
        _ => None,
    })
}

/// The notification of the round-trip test: `PING = 1` (renamed `PONG` by
/// the echoer), the run's number, the sequence number and an opaque
/// payload that brings it to the size of an Emulab event.
#[derive(Clone, Debug)]
pub struct PingTemplate {
    frame: Vec<u8>,
    seq_at: usize,
}

/// Name of the attribute the echoer subscribes to.
pub const PING: &str = "PING";
/// What the echoer renames it to. Same length, so the echo is a copy with
/// four bytes changed.
pub const PONG: &str = "PONG";
/// Attribute carrying the run number, keeping concurrent runs apart.
pub const RUN: &str = "BENCH_RUN";
/// Attribute carrying the ping's sequence number (int64).
pub const SEQ: &str = "BENCH_SEQ";
/// Payload that makes a ping the size of the standard Emulab event.
pub const DEFAULT_PING_PAYLOAD: usize = 292;

/// Subscription of the echoer for run `run`.
pub fn ping_subscription(run: i32) -> String {
    format!(" {PING} == 1 && {RUN} == {run} ")
}

/// Subscription of the pinger for run `run`.
pub fn pong_subscription(run: i32) -> String {
    format!(" {PONG} == 1 && {RUN} == {run} ")
}

impl PingTemplate {
    /// A ping for run `run` with `payload` opaque bytes.
    pub fn new(run: i32, payload: usize, max_packet_len: usize) -> Result<Self, BenchError> {
        let mut frame = Vec::with_capacity(64 + payload);
        raw::put_u32(&mut frame, 0);
        raw::put_i32(&mut frame, NotifyEmit::ID);
        raw::put_count(&mut frame, 4);
        raw::put_str(&mut frame, PING);
        raw::put_value(&mut frame, ValueRef::Int32(1));
        raw::put_str(&mut frame, RUN);
        raw::put_value(&mut frame, ValueRef::Int32(run));
        raw::put_str(&mut frame, SEQ);
        raw::put_i32(&mut frame, elvin_proto::ValueType::Int64.code());
        let seq_at = frame.len();
        raw::put_i64(&mut frame, 0);
        raw::put_str(&mut frame, "PAYLOAD");
        raw::put_value(&mut frame, ValueRef::Opaque(&vec![0x5A; payload]));
        raw::put_bool(&mut frame, true);
        raw::put_count(&mut frame, 0);
        let body_len = frame.len() - 4;
        if body_len > max_packet_len {
            return Err(BenchError::Config(format!(
                "a ping with --padding {payload} is {body_len} bytes, more than the router's Packet.Max-Length of {max_packet_len}"
            )));
        }
        let length = u32::try_from(body_len)
            .map_err(|_| BenchError::Config(format!("--padding {payload} is too large")))?;
        if let Some(header) = frame.get_mut(..4) {
            header.copy_from_slice(&length.to_be_bytes());
        }
        Ok(PingTemplate { frame, seq_at })
    }

    /// Bytes of one encoded ping, length prefix included.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// Replaces `out` with ping number `seq`.
    pub fn write(&self, out: &mut Vec<u8>, seq: i64) {
        out.clear();
        out.extend_from_slice(&self.frame);
        if let Some(slot) = out.get_mut(self.seq_at..self.seq_at + 8) {
            slot.copy_from_slice(&seq.to_be_bytes());
        }
    }
}

/// The run number and sequence number of a delivered ping or pong, and
/// where its `PING` name and attribute list are in `body`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingView {
    /// Value of [`RUN`].
    pub run: i32,
    /// Value of [`SEQ`].
    pub seq: i64,
    /// Offset of the `PING` name bytes, if present.
    pub ping_name_at: Option<usize>,
    /// End of the attribute list in `body`.
    pub attributes_end: usize,
}

/// Reads a delivered ping or pong. `Ok(None)` for other notifications.
pub fn read_ping(body: &[u8]) -> Result<Option<PingView>, DecodeError> {
    let mut run = None;
    let mut seq = None;
    let mut ping_name_at = None;
    let attributes_end = walk_attributes(body, |name, value, at| match (name, value) {
        (PING, ValueRef::Int32(1)) => ping_name_at = Some(at),
        (RUN, ValueRef::Int32(v)) => run = Some(v),
        (SEQ, ValueRef::Int64(v)) => seq = Some(v),
        _ => {}
    })?;
    Ok(match (run, seq) {
        (Some(run), Some(seq)) => Some(PingView {
            run,
            seq,
            ping_name_at,
            attributes_end,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::{Packet, Value};
    use elvin_sublang::{Limits, Subscription};

    fn emitted(frame: &[u8]) -> elvin_proto::Attributes {
        match Packet::decode(&frame[4..]).expect("template decodes as a packet") {
            Packet::NotifyEmit(emit) => {
                assert!(emit.deliver_insecure);
                assert!(emit.keys.is_empty());
                emit.attributes
            }
            other => panic!("template decoded as {}", other.name()),
        }
    }

    #[test]
    fn the_testbed_layout_shares_the_events_experiment_but_never_matches() {
        let own: Vec<String> = (0..TESTBED_NODES).map(testbed_subscription).collect();
        assert!(own.iter().all(|s| s.contains(EVENT_EXPT)));
        assert!(
            own.iter()
                .all(|s| !s.contains(&format!("\"{EVENT_HOST}\"")))
        );
        assert_eq!(own.iter().filter(|s| s.contains("PROGRAM")).count(), 5);
        assert!(testbed_subscription(20).contains("load1/exp"));
        assert!(testbed_subscription(100_000 - 1).contains("load4999/exp"));
    }

    #[test]
    fn event_has_emulab_shape_13_attributes_about_400_bytes() {
        let template = EventTemplate::new(7, 0, 1 << 20).unwrap();
        assert!(
            (380..=420).contains(&template.frame_len()),
            "event is {} bytes",
            template.frame_len()
        );
        let mut frame = Vec::new();
        template.append(&mut frame, 1234, 5_000_123);
        let attributes = emitted(&frame);
        assert_eq!(attributes.len(), EVENT_ATTRIBUTES);
        for name in [
            "SITE",
            "EXPT",
            "GROUP",
            "HOST",
            "OBJTYPE",
            "OBJNAME",
            "EVENTTYPE",
            "ARGS",
            "___SENDER___",
        ] {
            assert!(attributes.get_str(name).is_some(), "{name} is not a string");
        }
        assert_eq!(attributes.get_i32("SCHEDULER"), Some(0));
        assert_eq!(attributes.get_i32("time_sec"), Some(5));
        assert_eq!(attributes.get_i32("time_usec"), Some(123));
        assert_eq!(
            attributes
                .get("__hmac__")
                .and_then(Value::as_bytes)
                .map(<[u8]>::len),
            Some(20)
        );
        assert_eq!(
            attributes.get_str("ARGS"),
            Some("PUB=0007 SEQ=000000001234")
        );
    }

    #[test]
    fn copies_differ_only_in_their_stamps() {
        let template = EventTemplate::new(12, 0, 1 << 20).unwrap();
        let mut batch = Vec::new();
        template.append(&mut batch, 1, 10);
        template.append(&mut batch, 2, 20);
        let (first, second) = batch.split_at(template.frame_len());
        let differing = first.iter().zip(second).filter(|(a, b)| a != b).count();
        assert!(differing <= 2, "{differing} bytes differ");
        for (frame, seq, sent) in [(first, 1, 10), (second, 2, 20)] {
            // Read back as a delivery would be: packet id, then the list.
            let stamp = read_event(&frame[4..]).unwrap().unwrap();
            assert_eq!(
                stamp,
                EventStamp {
                    publisher: 12,
                    seq,
                    sent_us: sent
                }
            );
        }
    }

    #[test]
    fn padding_grows_the_event_and_respects_the_packet_limit() {
        let plain = EventTemplate::new(0, 0, 1 << 20).unwrap().frame_len();
        let padded = EventTemplate::new(0, 1000, 1 << 20).unwrap();
        assert!(padded.frame_len() >= plain + 1000 && padded.frame_len() <= plain + 1004);
        let mut frame = Vec::new();
        padded.append(&mut frame, 99, 1);
        assert_eq!(read_event(&frame[4..]).unwrap().unwrap().seq, 99);
        assert!(matches!(
            EventTemplate::new(0, 5000, 2048),
            Err(BenchError::Config(_))
        ));
        assert!(EventTemplate::new(MAX_PUBLISHERS + 1, 0, 1 << 20).is_err());
    }

    #[test]
    fn foreign_notifications_are_not_mistaken_for_events() {
        let mut frame = Vec::new();
        let mut attributes = elvin_proto::Attributes::new();
        attributes.insert("ARGS", "PUB=12 SEQ=3");
        attributes.insert("time_sec", 1);
        attributes.insert("time_usec", 1);
        NotifyEmit {
            attributes,
            deliver_insecure: true,
            keys: Default::default(),
        }
        .encode_frame(&mut frame);
        assert_eq!(read_event(&frame[4..]).unwrap(), None);
        assert!(read_event(&frame[4..10]).is_err());
    }

    #[test]
    fn events_are_read_among_attributes_of_every_type() {
        let mut attributes = elvin_proto::Attributes::new();
        attributes.insert("big", 1i64 << 40);
        attributes.insert("real", 2.5);
        attributes.insert("blob", vec![1u8, 2, 3]);
        attributes.insert("ARGS", "PUB=0002 SEQ=000000000009");
        attributes.insert("time_sec", 3);
        attributes.insert("time_usec", 4);
        attributes.insert("text", "ü");
        let mut frame = Vec::new();
        NotifyEmit {
            attributes,
            deliver_insecure: true,
            keys: Default::default(),
        }
        .encode_frame(&mut frame);
        let stamp = read_event(&frame[4..]).unwrap().unwrap();
        assert_eq!(
            stamp,
            EventStamp {
                publisher: 2,
                seq: 9,
                sent_us: 3_000_004
            }
        );
        // An unknown type code is an error, not a skip.
        let mut bad = frame[4..].to_vec();
        // The first value's type code follows the id, count and "big".
        let code_at = 4 + 4 + 8;
        bad[code_at..code_at + 4].copy_from_slice(&9i32.to_be_bytes());
        assert!(read_event(&bad).is_err());
    }

    #[test]
    fn subscriptions_match_exactly_what_they_should() {
        let limits = Limits::default();
        let matching = Subscription::compile(&matching_subscription(), &limits).unwrap();
        let template = EventTemplate::new(0, 0, 1 << 20).unwrap();
        let mut frame = Vec::new();
        template.append(&mut frame, 0, 0);
        let event = emitted(&frame);
        assert!(matching.matches(&event));
        let mut seen = std::collections::HashSet::new();
        for index in [0, 1, 254, 255, 65_535, 99_999] {
            let text = non_matching_subscription(index);
            assert!(seen.insert(text.clone()), "duplicate subscription {text}");
            let sub = Subscription::compile(&text, &limits).unwrap();
            assert!(!sub.matches(&event), "{text} matches the event");
            assert!(text.len() < 1024, "Emulab caps expressions at 1024 bytes");
        }
    }

    #[test]
    fn pings_carry_run_and_sequence_and_match_only_their_run() {
        let template = PingTemplate::new(42, DEFAULT_PING_PAYLOAD, 1 << 20).unwrap();
        let mut frame = Vec::new();
        template.write(&mut frame, 77);
        let view = read_ping(&frame[4..]).unwrap().unwrap();
        assert_eq!((view.run, view.seq), (42, 77));
        let at = view.ping_name_at.unwrap();
        assert_eq!(&frame[4 + at..4 + at + 4], b"PING");
        let attributes = emitted(&frame);
        let limits = Limits::default();
        assert!(
            Subscription::compile(&ping_subscription(42), &limits)
                .unwrap()
                .matches(&attributes)
        );
        assert!(
            !Subscription::compile(&ping_subscription(43), &limits)
                .unwrap()
                .matches(&attributes)
        );
        assert!(
            !Subscription::compile(&pong_subscription(42), &limits)
                .unwrap()
                .matches(&attributes)
        );
    }

    #[test]
    fn digits_round_trip_and_reject_non_digits() {
        let mut buf = vec![b'x'; 6];
        write_digits(&mut buf, 1, 4, 42);
        assert_eq!(&buf, b"x0042x");
        assert_eq!(read_digits(b"0042"), Some(42));
        assert_eq!(read_digits(b"00a2"), None);
        assert_eq!(parse_args(b"PUB=0001 SEQ=000000000002"), Some((1, 2)));
        assert_eq!(parse_args(b"PUB=0001 SEQ=00000000000"), None);
        assert_eq!(parse_args(b"PUB=0001-SEQ=000000000002"), None);
    }
}
