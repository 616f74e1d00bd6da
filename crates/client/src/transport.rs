//! Opening a connection: TCP, optional TLS, and the ConnRqst/ConnRply
//! exchange; plus the frame reader used for the connection's lifetime.
//!
//! Everything here is bounded. The whole opening is limited by the connect
//! timeout (the TCP/TLS part and the ConnRply wait are reported as
//! different [`TimeoutKind`]s so the operator knows which stage hung). The
//! frame reader checks each length header against the `Packet.Max-Length`
//! in force as soon as its four bytes arrive, so a hostile or broken router
//! can never make the client buffer more than one maximum-size frame.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use elvin_proto::{
    ConfConn, ConnRqst, DEFAULT_MAX_PACKET_LENGTH, ElvinUri, Keys, Packet, Transport, frame_len,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::error::{ClientError, NackError, ProtocolViolation, TimeoutKind, disconn_reason_name};
use crate::options::{ConnectOptions, NegotiatedOptions};

/// Elvin protocol version spoken by this client.
pub(crate) const CLIENT_MAJOR: i32 = 4;
/// Elvin protocol minor version.
pub(crate) const CLIENT_MINOR: i32 = 0;

/// Smallest read the frame reader asks the socket for.
const READ_CHUNK: usize = 16 * 1024;

/// `from + wait`, saturating at a far-off instant instead of overflowing
/// when a caller configures an absurdly long timeout.
pub(crate) fn deadline_after(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait)
        .unwrap_or_else(|| from + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A byte stream to a router: plain TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The boxed stream type.
pub(crate) type BoxedIo = Box<dyn Io>;

/// Settings fixed for the client's lifetime.
pub(crate) struct Config {
    pub(crate) uri: ElvinUri,
    /// The URI in canonical form, for messages.
    pub(crate) uri_text: String,
    pub(crate) options: ConnectOptions,
    pub(crate) tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Config {
    /// Checks the URI against the TLS settings and prepares TLS.
    pub(crate) fn new(uri: ElvinUri, options: ConnectOptions) -> Result<Config, ClientError> {
        let uri_text = uri.to_string();
        let tls = match uri.transport {
            Transport::Tcp => None,
            Transport::Ssl => {
                let settings = options.tls.as_ref().ok_or_else(|| {
                    ClientError::Config(format!(
                        "{uri_text} is a TLS (secure) URI but no TLS settings were given: \
                         use ConnectOptions::tls(TlsOptions::new().ca_file(...))"
                    ))
                })?;
                let config = settings.client_config()?;
                let name = settings
                    .server_name_for(&uri.host)
                    .map_err(ClientError::Config)?;
                Some((config, name))
            }
        };
        Ok(Config {
            uri,
            uri_text,
            options,
            tls,
        })
    }
}

/// Reads whole frames from a stream.
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max: DEFAULT_MAX_PACKET_LENGTH,
        }
    }

    /// Sets the largest frame body accepted from now on.
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The next frame's body (packet id onwards), or `Ok(None)` on a clean
    /// end of stream between frames. Cancel-safe: bytes already read stay
    /// buffered.
    pub(crate) async fn next_frame(&mut self, uri: &str) -> Result<Option<Bytes>, ClientError> {
        loop {
            match frame_len(&self.buf, self.max) {
                Err(e) => return Err(ClientError::protocol(uri, ProtocolViolation::Frame(e))),
                Ok(Some(total)) => {
                    let frame = self.buf.split_to(total).freeze();
                    return Ok(Some(frame.slice(4..)));
                }
                Ok(None) => {}
            }
            // Reserve what the current frame still needs (its header has
            // been checked against the maximum, so this is bounded), or a
            // chunk while the header is incomplete.
            let wanted = match self.buf.first_chunk::<4>() {
                Some(header) => (u32::from_be_bytes(*header) as usize)
                    .saturating_add(4)
                    .saturating_sub(self.buf.len())
                    .max(1),
                None => READ_CHUNK,
            };
            self.buf.reserve(wanted.min(self.max.saturating_add(4)));
            let read = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ClientError::io(uri, e))?;
            if read == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ClientError::Closed {
                        mid_frame: true,
                        uri: uri.to_owned(),
                    })
                };
            }
        }
    }
}

/// Decodes a frame body, mapping failures to a protocol error.
pub(crate) fn decode(body: &[u8], uri: &str) -> Result<Packet, ClientError> {
    Packet::decode(body).map_err(|e| ClientError::protocol(uri, ProtocolViolation::Decode(e)))
}

/// An open, accepted connection.
pub(crate) struct Established {
    pub(crate) reader: FrameReader<ReadHalf<BoxedIo>>,
    pub(crate) writer: WriteHalf<BoxedIo>,
    pub(crate) negotiated: NegotiatedOptions,
}

/// Opens the byte stream (TCP, then TLS if the URI asks for it) before
/// `deadline`.
pub(crate) async fn open_stream(
    config: &Config,
    deadline: Instant,
) -> Result<BoxedIo, ClientError> {
    let uri = &config.uri_text;
    let connect_timeout = |_| ClientError::Timeout {
        what: TimeoutKind::Connect,
        after: config.options.connect_timeout,
        uri: uri.clone(),
    };
    let tcp = timeout_at(deadline, TcpStream::connect(config.uri.authority()))
        .await
        .map_err(connect_timeout)?
        .map_err(|e| ClientError::Refused {
            uri: uri.clone(),
            source: Arc::new(e),
        })?;
    // Requests and replies are small; do not let Nagle delay them.
    let _ = tcp.set_nodelay(true);
    match &config.tls {
        None => Ok(Box::new(tcp)),
        Some((tls, server_name)) => {
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            let stream = timeout_at(deadline, connector.connect(server_name.clone(), tcp))
                .await
                .map_err(connect_timeout)?
                .map_err(|e| ClientError::Tls {
                    message: tls_failure_text(&e),
                    uri: uri.clone(),
                })?;
            Ok(Box::new(stream))
        }
    }
}

fn tls_failure_text(error: &std::io::Error) -> String {
    let detail = error
        .get_ref()
        .map(|inner| inner.to_string())
        .unwrap_or_else(|| error.to_string());
    if detail.contains("UnknownIssuer") || detail.contains("certificate") {
        format!(
            "handshake failed: {detail} — check that the CA file holds the CA that signed \
             the router's certificate and that the certificate names this host"
        )
    } else if matches!(
        error.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
    ) {
        format!(
            "handshake failed: {detail} — the router closed the connection; it may require a \
             client certificate or not speak TLS on this port"
        )
    } else {
        format!("handshake failed: {detail}")
    }
}

/// Opens a connection and performs the ConnRqst/ConnRply exchange, all
/// within the connect timeout.
pub(crate) async fn establish(
    config: &Config,
    xid: i32,
    notification_keys: Keys,
    subscription_keys: Keys,
) -> Result<Established, ClientError> {
    let started = Instant::now();
    let deadline = deadline_after(started, config.options.connect_timeout);
    let stream = open_stream(config, deadline).await?;
    let (read_half, mut writer) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read_half);
    let uri = &config.uri_text;

    let request = Packet::ConnRqst(ConnRqst {
        xid,
        client_major: CLIENT_MAJOR,
        client_minor: CLIENT_MINOR,
        options: config
            .options
            .requested
            .merged_with_uri(config.uri.option_values()),
        notification_keys,
        subscription_keys,
    });
    let mut frame = Vec::new();
    request.try_encode(&mut frame, DEFAULT_MAX_PACKET_LENGTH)?;

    let remaining = deadline.saturating_duration_since(Instant::now());
    let reply_timeout = |_| ClientError::Timeout {
        what: TimeoutKind::ConnReply,
        after: config.options.connect_timeout,
        uri: uri.clone(),
    };
    let handshake = async {
        writer
            .write_all(&frame)
            .await
            .map_err(|e| ClientError::io(uri, e))?;
        writer.flush().await.map_err(|e| ClientError::io(uri, e))?;
        loop {
            let Some(body) = reader.next_frame(uri).await? else {
                return Err(ClientError::Closed {
                    mid_frame: false,
                    uri: uri.clone(),
                });
            };
            match decode(&body, uri)? {
                Packet::ConnRply(reply) if reply.xid == xid => {
                    return Ok(NegotiatedOptions::new(reply.options));
                }
                Packet::Nack(nack) if nack.xid == xid => {
                    return Err(ClientError::Nack(NackError::new(
                        "ConnRqst",
                        nack.error,
                        nack.message,
                        nack.args,
                    )));
                }
                Packet::Disconn(disconn) => {
                    return Err(ClientError::Disconnected {
                        reason: disconn.reason,
                        reason_name: disconn_reason_name(disconn.reason),
                        text: disconn.args,
                        uri: uri.clone(),
                    });
                }
                Packet::TestConn(_) => {
                    let mut confconn = Vec::with_capacity(8);
                    Packet::ConfConn(ConfConn).encode(&mut confconn);
                    writer
                        .write_all(&confconn)
                        .await
                        .map_err(|e| ClientError::io(uri, e))?;
                }
                Packet::DropWarn(_) | Packet::ConfConn(_) => {}
                other => {
                    return Err(ClientError::protocol(
                        uri,
                        match other {
                            Packet::ConnRply(_) | Packet::Nack(_) => {
                                ProtocolViolation::MismatchedReply {
                                    reply: other.name(),
                                    request: "ConnRqst",
                                }
                            }
                            _ => ProtocolViolation::UnexpectedPacket {
                                packet: other.name(),
                            },
                        },
                    ));
                }
            }
        }
    };
    let negotiated = tokio::time::timeout(remaining.max(Duration::from_millis(1)), handshake)
        .await
        .map_err(reply_timeout)??;
    reader.set_max(negotiated.packet_max_length());
    tracing::debug!(uri = %uri, elapsed = ?started.elapsed(), "connected");
    Ok(Established {
        reader,
        writer,
        negotiated,
    })
}
