//! Raw Elvin 4 sessions over TCP, built directly on the `elvin-proto` codec.
//!
//! The tool measures routers, so its own per-packet cost has to be small
//! and easy to see. It therefore does not use a client library: a
//! [`Session`] is a TCP stream split into halves, a [`FrameReader`] that
//! reads large chunks into one growing buffer and cuts frames out of it
//! with [`elvin_proto::frame_len`], and a write half that callers fill with
//! whole batches of pre-encoded frames. Control traffic (ConnRqst,
//! SubAddRqst and their replies) goes through the ordinary [`Packet`]
//! codec; notifications are read with [`walk_attributes`], which borrows
//! from the buffer and allocates nothing.
//!
//! Every wait on the router is bounded by a timeout, so a router that
//! stops answering ends the run with [`BenchError::Timeout`] instead of
//! hanging it.

use std::time::Duration;

use elvin_proto::raw::{self, Reader};
use elvin_proto::{
    ConnRqst, DEFAULT_MAX_PACKET_LENGTH, DecodeError, DecodeErrorKind, ElvinUri, Keys, Message,
    NotifyDeliver, NotifyEmit, Options, Packet, SubAddRqst, Transport, Value, ValueRef, frame_len,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::{BenchError, format_nack};

/// Bytes asked of the kernel per read: large enough that a busy subscriber
/// takes a hundred or more notifications per system call.
const READ_CHUNK: usize = 256 * 1024;

/// Requests are written in batches of about this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

/// Where the router is: the parsed URI and the address to dial.
#[derive(Clone, Debug)]
pub struct Target {
    /// The router URI as written by the user.
    pub text: String,
    /// The parsed URI.
    pub uri: ElvinUri,
    /// `host:port` to connect to.
    pub address: String,
}

impl Target {
    /// Parses an `elvin:` URI. Only the `tcp,none,xdr` stack is supported:
    /// TLS would measure the TLS library as much as the router.
    pub fn parse(text: &str) -> Result<Target, BenchError> {
        let uri = ElvinUri::parse(text)?;
        if uri.transport != Transport::Tcp {
            return Err(BenchError::Config(format!(
                "{text}: eventd-bench speaks plain TCP only (tcp,none,xdr); point it at the router's TCP listener"
            )));
        }
        let address = uri.authority();
        Ok(Target {
            text: text.trim().to_owned(),
            uri,
            address,
        })
    }

    /// True when the router is on this host (its resident memory can then
    /// be read from /proc).
    pub fn is_loopback(&self) -> bool {
        let host = self.uri.host.as_str();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Reads a byte stream and cuts it into Elvin frames.
///
/// The buffer grows to at most the largest frame allowed plus one read
/// chunk: [`frame_len`] rejects an oversize header before its body is
/// buffered.
#[derive(Debug)]
pub struct FrameReader<R> {
    source: R,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already handed out as frames.
    consumed: usize,
    max_frame: usize,
    /// Free space ensured before each read.
    chunk: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader accepting frames of up to `max_frame` bytes (after the
    /// length prefix).
    pub fn new(source: R, max_frame: usize) -> Self {
        Self::with_chunk(source, max_frame, READ_CHUNK)
    }

    /// A reader that keeps `chunk` bytes free for each read: small for the
    /// thousands of idle sessions of the `connections` test, large for
    /// busy subscribers.
    pub fn with_chunk(source: R, max_frame: usize, chunk: usize) -> Self {
        FrameReader {
            source,
            buffer: Vec::with_capacity(chunk),
            consumed: 0,
            max_frame,
            chunk: chunk.max(64),
        }
    }

    /// The socket, dropping whatever is buffered.
    pub fn into_inner(self) -> R {
        self.source
    }

    /// The next whole frame's body (packet id onwards), if one is buffered.
    pub fn next_frame(&mut self, phase: &'static str) -> Result<Option<&[u8]>, BenchError> {
        let pending = self.buffer.get(self.consumed..).unwrap_or_default();
        match frame_len(pending, self.max_frame) {
            Ok(Some(total)) => {
                let start = self.consumed + 4;
                self.consumed += total;
                Ok(self.buffer.get(start..self.consumed))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(BenchError::Frame { phase, source }),
        }
    }

    /// Reads more bytes from the socket (waiting as long as it takes).
    /// End of stream is [`BenchError::Closed`].
    pub async fn fill(&mut self, phase: &'static str) -> Result<(), BenchError> {
        if self.consumed > 0 {
            // Move the partial frame (if any) to the front so the buffer
            // never grows past one frame plus one chunk.
            self.buffer.copy_within(self.consumed.., 0);
            self.buffer
                .truncate(self.buffer.len().saturating_sub(self.consumed));
            self.consumed = 0;
        }
        self.buffer.reserve(self.chunk);
        let read = self
            .source
            .read_buf(&mut self.buffer)
            .await
            .map_err(|source| BenchError::Io { phase, source })?;
        if read == 0 {
            return Err(BenchError::Closed { phase });
        }
        Ok(())
    }

    /// Like [`fill`](Self::fill), failing with [`BenchError::Timeout`] when
    /// nothing arrives within `timeout`.
    pub async fn fill_within(
        &mut self,
        timeout: Duration,
        phase: &'static str,
        what: impl FnOnce() -> String,
    ) -> Result<(), BenchError> {
        match tokio::time::timeout(timeout, self.fill(phase)).await {
            Ok(result) => result,
            Err(_) => Err(BenchError::Timeout {
                what: what(),
                timeout,
            }),
        }
    }

    /// Waits for the next frame and decodes it as a whole packet. For
    /// control traffic; notifications should use [`next_frame`](Self::next_frame).
    pub async fn next_packet(
        &mut self,
        timeout: Duration,
        phase: &'static str,
    ) -> Result<Packet, BenchError> {
        loop {
            if let Some(body) = self.next_frame(phase)? {
                return Packet::decode(body).map_err(|source| BenchError::Decode { phase, source });
            }
            self.fill_within(timeout, phase, || format!("a reply during {phase}"))
                .await?;
        }
    }
}

/// What to ask for when connecting.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Longest wait for the TCP connect and for ConnRply.
    pub timeout: Duration,
    /// Extra connection options to request (besides `TCP.Send-Immediately`,
    /// which is always requested).
    pub options: Options,
}

impl ConnectOptions {
    /// Just `TCP.Send-Immediately = 1`, with `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ConnectOptions {
            timeout,
            options: Vec::new(),
        }
    }
}

/// A connected Elvin session: the two halves of its socket.
#[derive(Debug)]
pub struct Session {
    /// Frames from the router.
    pub reader: FrameReader<OwnedReadHalf>,
    /// Bytes to the router.
    pub writer: OwnedWriteHalf,
    /// The router's `Packet.Max-Length` (what it will accept from us).
    pub max_packet_len: usize,
    /// Options the router returned in ConnRply.
    pub options: Options,
    next_xid: i32,
}

/// Opens a TCP connection with Nagle's algorithm off, as every latency
/// measurement needs.
pub async fn open_tcp(target: &Target, timeout: Duration) -> Result<TcpStream, BenchError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(&target.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(BenchError::Connect {
                address: target.address.clone(),
                source,
            });
        }
        Err(_) => {
            return Err(BenchError::Timeout {
                what: format!("a TCP connection to {}", target.address),
                timeout,
            });
        }
    };
    stream.set_nodelay(true).map_err(|source| BenchError::Io {
        phase: "connection setup",
        source,
    })?;
    Ok(stream)
}

/// The ConnRqst this tool sends: protocol 4.0, `TCP.Send-Immediately` = 1
/// (so the router writes each delivery at once) plus `extra` options, no
/// keys.
pub fn conn_request(xid: i32, extra: &Options) -> ConnRqst {
    let mut options: Options = vec![("TCP.Send-Immediately".to_owned(), Value::Int32(1))];
    options.extend(extra.iter().cloned());
    ConnRqst {
        xid,
        client_major: 4,
        client_minor: 0,
        options,
        notification_keys: Keys::new(),
        subscription_keys: Keys::new(),
    }
}

/// Connects and completes the Elvin handshake.
pub async fn connect(target: &Target, options: &ConnectOptions) -> Result<Session, BenchError> {
    let stream = open_tcp(target, options.timeout).await?;
    let (read_half, mut writer) = stream.into_split();
    let mut reader = FrameReader::new(read_half, DEFAULT_MAX_PACKET_LENGTH);
    let mut frame = Vec::new();
    conn_request(1, &options.options).encode_frame(&mut frame);
    writer
        .write_all(&frame)
        .await
        .map_err(|source| BenchError::Io {
            phase: "connection setup",
            source,
        })?;
    let reply_options = await_conn_reply(&mut reader, 1, options.timeout).await?;
    let max_packet_len = negotiated_max_packet_len(&reply_options);
    Ok(Session {
        reader,
        writer,
        max_packet_len,
        options: reply_options,
        next_xid: 2,
    })
}

/// Waits for the ConnRply to ConnRqst `xid`, skipping anything else
/// harmless, and returns the negotiated options.
pub async fn await_conn_reply<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    xid: i32,
    timeout: Duration,
) -> Result<Options, BenchError> {
    const PHASE: &str = "connection setup";
    loop {
        match reader.next_packet(timeout, PHASE).await? {
            Packet::ConnRply(reply) if reply.xid == xid => return Ok(reply.options),
            Packet::Nack(nack) if nack.xid == xid => {
                return Err(BenchError::ConnectRefused {
                    code: nack.error,
                    message: format_nack(&nack.message, &nack.args),
                });
            }
            Packet::Disconn(disconn) => {
                return Err(BenchError::Disconnected {
                    phase: PHASE,
                    reason: disconn.reason,
                    args: disconn.args,
                });
            }
            Packet::ConfConn(_) | Packet::DropWarn(_) => {}
            other => {
                return Err(BenchError::Unexpected {
                    phase: PHASE,
                    packet: other.name().to_owned(),
                });
            }
        }
    }
}

/// The `Packet.Max-Length` a router returned (standard or legacy name),
/// or the protocol default.
pub fn negotiated_max_packet_len(options: &Options) -> usize {
    options
        .iter()
        .find(|(name, _)| {
            name.eq_ignore_ascii_case("Packet.Max-Length")
                || name.eq_ignore_ascii_case("router.packet.max-length")
        })
        .and_then(|(_, value)| value.as_i32())
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_MAX_PACKET_LENGTH)
}

impl Session {
    /// Installs `expressions`, pipelined: every SubAddRqst is written in
    /// large batches while the replies are read concurrently, and every
    /// reply is checked. Returns the subscription ids in request order.
    ///
    /// `timeout` bounds the silence between replies, not the whole
    /// operation, so a large but steady install is never cut short.
    pub async fn subscribe_all(
        &mut self,
        expressions: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, BenchError> {
        let count = expressions.len();
        let first_xid = self.next_xid;
        let last_xid = i32::try_from(count)
            .ok()
            .and_then(|n| first_xid.checked_add(n))
            .ok_or_else(|| {
                BenchError::Config(format!(
                    "{count} subscriptions on one connection is too many"
                ))
            })?;
        self.next_xid = last_xid;
        let writer = &mut self.writer;
        let reader = &mut self.reader;
        let write_all = async move {
            let mut batch = Vec::with_capacity(WRITE_BATCH + 1024);
            for (xid, expression) in (first_xid..).zip(expressions) {
                SubAddRqst {
                    xid,
                    expression: expression.clone(),
                    accept_insecure: true,
                    keys: Keys::new(),
                }
                .encode_frame(&mut batch);
                if batch.len() >= WRITE_BATCH {
                    write_batch(writer, &batch, "subscription setup").await?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write_batch(writer, &batch, "subscription setup").await?;
            }
            Ok::<(), BenchError>(())
        };
        let read_all = async move {
            const PHASE: &str = "subscription setup";
            let mut ids = vec![0i64; count];
            let mut answered = 0usize;
            while answered < count {
                let packet = reader.next_packet(timeout, PHASE).await?;
                let index = |xid: i32| {
                    xid.checked_sub(first_xid)
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|&i| i < count)
                };
                match packet {
                    Packet::SubRply(reply) => {
                        let slot = index(reply.xid).and_then(|i| ids.get_mut(i));
                        match slot {
                            Some(slot) if *slot == 0 => {
                                *slot = reply.subscription_id;
                                answered += 1;
                            }
                            _ => {
                                return Err(BenchError::Unexpected {
                                    phase: PHASE,
                                    packet: format!(
                                        "SubRply with unknown or repeated xid {}",
                                        reply.xid
                                    ),
                                });
                            }
                        }
                    }
                    Packet::Nack(nack) => {
                        let expression = index(nack.xid)
                            .and_then(|i| expressions.get(i))
                            .cloned()
                            .unwrap_or_default();
                        return Err(BenchError::SubscribeRefused {
                            expression,
                            code: nack.error,
                            message: format_nack(&nack.message, &nack.args),
                        });
                    }
                    Packet::Disconn(disconn) => {
                        return Err(BenchError::Disconnected {
                            phase: PHASE,
                            reason: disconn.reason,
                            args: disconn.args,
                        });
                    }
                    // Nothing should be delivered before the publishers
                    // start, but a shared router may carry other traffic.
                    Packet::NotifyDeliver(_) | Packet::ConfConn(_) | Packet::DropWarn(_) => {}
                    other => {
                        return Err(BenchError::Unexpected {
                            phase: PHASE,
                            packet: other.name().to_owned(),
                        });
                    }
                }
            }
            Ok(ids)
        };
        let ((), ids) = tokio::try_join!(write_all, read_all)?;
        Ok(ids)
    }

    /// Installs one subscription and waits for its SubRply.
    pub async fn subscribe(
        &mut self,
        expression: &str,
        timeout: Duration,
    ) -> Result<i64, BenchError> {
        let ids = self
            .subscribe_all(&[expression.to_owned()], timeout)
            .await?;
        ids.first().copied().ok_or(BenchError::Closed {
            phase: "subscription setup",
        })
    }
}

/// Writes one batch of frames.
pub async fn write_batch(
    writer: &mut OwnedWriteHalf,
    bytes: &[u8],
    phase: &'static str,
) -> Result<(), BenchError> {
    writer
        .write_all(bytes)
        .await
        .map_err(|source| BenchError::Io { phase, source })
}

/// Visits the attributes of a NotifyDeliver (or NotifyEmit) frame body
/// without copying: `visit(name, value, name_offset)` is called for each,
/// where `name_offset` is where the name's bytes start in `body`.
///
/// Returns the offset just past the attribute list. Fails, never panics, on
/// a truncated or malformed body.
pub fn walk_attributes<'a>(
    body: &'a [u8],
    mut visit: impl FnMut(&'a str, ValueRef<'a>, usize),
) -> Result<usize, DecodeError> {
    let fail = |kind| DecodeError::in_packet(NotifyDeliver::NAME, kind);
    let mut reader = Reader::new(body);
    reader
        .read_i32()
        .map_err(|_| DecodeError::bare(DecodeErrorKind::MissingPacketId))?;
    let count = reader.read_count(raw::MIN_NAME_VALUE_LEN).map_err(fail)?;
    for _ in 0..count {
        let name_offset = reader.position() + 4;
        let name = reader.read_str().map_err(fail)?;
        let value = reader.read_value().map_err(fail)?;
        visit(name, value, name_offset);
    }
    Ok(reader.position())
}

/// Appends a NotifyEmit frame whose attribute list is `raw_attributes`
/// verbatim (a well-formed, XDR-aligned encoded list), with
/// deliver_insecure set and no keys, as Emulab clients send.
pub fn encode_emit_raw(out: &mut Vec<u8>, raw_attributes: &[u8]) {
    // Packet id, the attributes, deliver_insecure and an empty key block.
    let body_len = 4 + raw_attributes.len() + 4 + 4;
    raw::put_u32(out, u32::try_from(body_len).unwrap_or(u32::MAX));
    raw::put_i32(out, NotifyEmit::ID);
    out.extend_from_slice(raw_attributes);
    raw::put_bool(out, true);
    raw::put_count(out, 0);
}

/// A control packet that ends a measurement: Disconn becomes
/// [`BenchError::Disconnected`]; DropWarn is counted by the caller; the
/// rest are ignored.
pub fn disconn_error(body: &[u8], phase: &'static str) -> BenchError {
    match Packet::decode(body) {
        Ok(Packet::Disconn(disconn)) => BenchError::Disconnected {
            phase,
            reason: disconn.reason,
            args: disconn.args,
        },
        Ok(other) => BenchError::Unexpected {
            phase,
            packet: other.name().to_owned(),
        },
        Err(source) => BenchError::Decode { phase, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::{Attributes, Disconn, peek_packet_id};

    #[tokio::test]
    async fn frames_split_across_reads_are_reassembled() {
        let mut bytes = Vec::new();
        for i in 0..50 {
            let mut attributes = Attributes::new();
            attributes.insert("N", i);
            NotifyDeliver {
                attributes,
                secure_matches: vec![],
                insecure_matches: vec![1],
            }
            .encode_frame(&mut bytes);
        }
        // A reader that returns at most 7 bytes at a time.
        let (mut client, server) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            client.write_all(&bytes).await.unwrap();
        });
        let mut reader = FrameReader::new(server, 1024);
        let mut seen = Vec::new();
        while seen.len() < 50 {
            while let Some(body) = reader.next_frame("test").unwrap() {
                walk_attributes(body, |name, value, _| {
                    assert_eq!(name, "N");
                    if let ValueRef::Int32(n) = value {
                        seen.push(n);
                    }
                })
                .unwrap();
            }
            if seen.len() < 50 {
                reader.fill("test").await.unwrap();
            }
        }
        writer.await.unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert!(matches!(
            reader.fill("test").await,
            Err(BenchError::Closed { .. })
        ));
    }

    #[tokio::test]
    async fn oversize_frame_header_is_an_error_not_an_allocation() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[0x7f, 0xff, 0xff, 0xfc]).await.unwrap();
        let mut reader = FrameReader::new(server, 1024);
        reader.fill("test").await.unwrap();
        assert!(matches!(
            reader.next_frame("test"),
            Err(BenchError::Frame { .. })
        ));
    }

    #[test]
    fn walk_rejects_truncated_bodies() {
        let mut frame = Vec::new();
        let mut attributes = Attributes::new();
        attributes.insert("SITE", "emulab.net");
        attributes.insert("SCHEDULER", 0);
        NotifyDeliver {
            attributes,
            secure_matches: vec![],
            insecure_matches: vec![],
        }
        .encode_frame(&mut frame);
        let body = &frame[4..];
        for cut in 0..body.len() - 16 {
            assert!(
                walk_attributes(&body[..cut], |_, _, _| {}).is_err(),
                "cut {cut}"
            );
        }
        let mut names = Vec::new();
        walk_attributes(body, |name, _, offset| {
            assert_eq!(&body[offset..offset + name.len()], name.as_bytes());
            names.push(name);
        })
        .unwrap();
        assert_eq!(names, ["SITE", "SCHEDULER"]);
    }

    #[test]
    fn raw_emit_equals_an_encoded_notify_emit() {
        let mut attributes = Attributes::new();
        attributes.insert("PONG", 1);
        attributes.insert("SEQ", 9i64);
        let mut expected = Vec::new();
        NotifyEmit {
            attributes: attributes.clone(),
            deliver_insecure: true,
            keys: Keys::new(),
        }
        .encode_frame(&mut expected);
        // The attribute list is everything between the packet id and the
        // trailing deliver_insecure + key count.
        let raw = &expected[8..expected.len() - 8];
        let mut out = Vec::new();
        encode_emit_raw(&mut out, raw);
        assert_eq!(out, expected);
    }

    #[test]
    fn disconn_is_reported_with_reason_and_text() {
        let mut frame = Vec::new();
        Disconn {
            reason: 4,
            args: "bad".into(),
        }
        .encode_frame(&mut frame);
        assert_eq!(peek_packet_id(&frame[4..]), Some(Disconn::ID));
        let error = disconn_error(&frame[4..], "test");
        assert_eq!(
            error.to_string(),
            "the router disconnected us during test: Disconn reason 4: bad"
        );
    }

    #[test]
    fn targets_accept_tcp_only() {
        let target = Target::parse("elvin://127.0.0.1:2917").unwrap();
        assert_eq!(target.address, "127.0.0.1:2917");
        assert!(target.is_loopback());
        assert!(Target::parse("elvin:4.0/ssl,none,xdr/host:1").is_err());
        assert!(!Target::parse("elvin://example.org").unwrap().is_loopback());
    }

    #[test]
    fn max_packet_length_is_read_under_either_name() {
        let options: Options = vec![("router.packet.max-length".into(), Value::Int32(4096))];
        assert_eq!(negotiated_max_packet_len(&options), 4096);
        assert_eq!(
            negotiated_max_packet_len(&Vec::new()),
            DEFAULT_MAX_PACKET_LENGTH
        );
    }
}
