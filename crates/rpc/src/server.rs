//! The transports: HTTPS with client certificates, and ssh's stdin/stdout.
//!
//! Both carry the same frames: a header block (an HTTP/1.1 request line and
//! headers, or for ssh just the headers, as Emulab's ssh transport framed
//! them) ending in a blank line, then a body of exactly `Content-Length`
//! bytes. One small reader serves both, with the limits that keep a hostile
//! peer from holding memory or a connection: the header block, the body
//! size, the time to read a request, and the number of connections.
//!
//! Who is calling comes from the transport, never from the request: over
//! HTTPS the verified client certificate's subject CN (mapped through the
//! configured subject map), over ssh the account ssh authenticated.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::codec::{self, MethodResponse};
use crate::service::{Code, Service, fault};

/// Limits on what one peer may ask of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body.
    pub max_request: usize,
    /// Longest time to read one request (headers and body).
    pub read_timeout: Duration,
    /// Idle time allowed between requests on one connection.
    pub idle_timeout: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 256,
        }
    }
}

/// Largest header block accepted.
const MAX_HEADERS: usize = 16 * 1024;

/// A request frame, or why there is none.
#[derive(Debug)]
pub enum Frame {
    /// A body to decode.
    Request {
        /// The XML-RPC request body.
        body: Vec<u8>,
        /// Whether the frame had an HTTP request line (HTTPS) rather than
        /// the ssh framing's bare headers.
        http: bool,
    },
    /// The peer closed the stream between requests.
    Closed,
    /// A bad frame: the code and message to answer with before closing.
    Bad(Code, String),
}

/// Reads one frame. Header names are matched case-insensitively.
pub async fn read_frame<R: AsyncBufRead + Unpin>(reader: &mut R, max_request: usize) -> Frame {
    let mut header_bytes = 0usize;
    let mut length: Option<usize> = None;
    let mut http = false;
    let mut first = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_HEADERS - header_bytes + 1) as u64;
        let n = match (&mut *reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            // A client that hangs up between requests without TLS's
            // close_notify has simply finished.
            Err(e) if first && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Frame::Closed;
            }
            Err(e) => return Frame::Bad(Code::BadArgs, format!("read failed: {e}")),
        };
        if n == 0 {
            return if first {
                Frame::Closed
            } else {
                Frame::Bad(Code::BadArgs, "the request ended inside its headers".into())
            };
        }
        header_bytes += n;
        if header_bytes > MAX_HEADERS || !line.ends_with(b"\n") {
            return Frame::Bad(Code::TooBig, "request headers too large".into());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first && text.is_empty() {
            // Tolerate blank lines between requests.
            header_bytes = 0;
            continue;
        }
        if first {
            first = false;
            if text.starts_with("POST ") || text.starts_with("GET ") || text.contains(" HTTP/") {
                http = true;
                if !text.starts_with("POST ") {
                    return Frame::Bad(Code::BadArgs, "only POST is supported".into());
                }
                continue;
            }
        }
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Frame::Bad(Code::BadArgs, "a malformed header line".into());
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<usize>() {
                Ok(v) => length = Some(v),
                Err(_) => return Frame::Bad(Code::BadArgs, "a malformed Content-Length".into()),
            }
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            return Frame::Bad(Code::BadArgs, "chunked requests are not supported".into());
        }
    }
    let Some(length) = length else {
        return Frame::Bad(Code::BadArgs, "the request has no Content-Length".into());
    };
    if length > max_request {
        return Frame::Bad(
            Code::TooBig,
            format!("request of {length} bytes is larger than the limit of {max_request}"),
        );
    }
    let mut body = vec![0u8; length];
    if let Err(e) = reader.read_exact(&mut body).await {
        return Frame::Bad(
            Code::BadArgs,
            format!("the request body was cut short: {e}"),
        );
    }
    Frame::Request { body, http }
}

/// Writes one response frame in the style of the request.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    http: bool,
    close: bool,
) -> std::io::Result<()> {
    let mut head = String::new();
    if http {
        head.push_str("HTTP/1.1 200 OK\r\n");
        head.push_str("Server: tbevents-rpc\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
    }
    head.push_str("Content-Type: text/xml\r\n");
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await
}

/// Serves requests on one stream for `user` until the peer closes, a bad
/// frame arrives or a limit is hit.
pub async fn serve_stream<S>(stream: S, user: String, service: Arc<Service>, limits: &Limits)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = tokio::io::BufReader::new(read_half);
    let mut first = true;
    let mut last_http = false;
    loop {
        let wait = if first {
            limits.read_timeout
        } else {
            limits.idle_timeout
        };
        first = false;
        let frame =
            match tokio::time::timeout(wait, read_frame(&mut reader, limits.max_request)).await {
                Ok(frame) => frame,
                Err(_) => return,
            };
        let (response, http, close) = match frame {
            Frame::Closed => return,
            Frame::Bad(code, message) => {
                tracing::info!(user, "bad request: {message}");
                (fault(code, message), last_http, true)
            }
            Frame::Request { body, http } => {
                last_http = http;
                match codec::decode_call(&body) {
                    Ok(call) => {
                        let service = Arc::clone(&service);
                        let caller = user.clone();
                        let method = call.method.clone();
                        let answer =
                            tokio::task::spawn_blocking(move || service.call(&caller, &call)).await;
                        let response =
                            answer.unwrap_or_else(|_| fault(Code::ServerError, "the call failed"));
                        tracing::debug!(user, method, "answered");
                        (response, http, false)
                    }
                    Err(e) => (fault(Code::BadArgs, e.to_string()), http, true),
                }
            }
        };
        let body = codec::encode_response(&response);
        if write_frame(&mut write_half, body.as_bytes(), http, close)
            .await
            .is_err()
            || close
        {
            return;
        }
        if matches!(response, MethodResponse::Fault { .. }) && !http {
            // Emulab's ssh transport ends the session after a fault.
            return;
        }
    }
}

/// HTTPS settings.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM file with the server's private key.
    pub key: std::path::PathBuf,
    /// PEM file with the CA(s) that sign user certificates.
    pub client_ca: std::path::PathBuf,
    /// Subject CN -> Emulab uid; a CN not in the map is taken as the uid.
    pub subject_map: HashMap<String, String>,
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM certificate in {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", path.display());
    }
    Ok(certs)
}

/// A TLS acceptor that demands a client certificate signed by the CA.
pub fn build_acceptor(config: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = load_certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .with_context(|| format!("cannot read the private key in {}", config.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&config.client_ca)? {
        roots
            .add(ca)
            .with_context(|| format!("bad CA certificate in {}", config.client_ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("cannot build the client certificate verifier")?;
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the server certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The subject CN of a DER certificate.
pub fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Accepts HTTPS connections forever.
pub async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    config: Arc<TlsConfig>,
    service: Arc<Service>,
    limits: Limits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing");
            continue;
        };
        let acceptor = acceptor.clone();
        let service = Arc::clone(&service);
        let config = Arc::clone(&config);
        let limits = Arc::clone(&limits);
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.read_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, "TLS handshake refused: {e}");
                    return;
                }
                Err(_) => return,
            };
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(subject_cn);
            let Some(cn) = cn else {
                tracing::info!(%peer, "client certificate without a subject CN");
                return;
            };
            let user = config.subject_map.get(&cn).cloned().unwrap_or(cn);
            tracing::info!(%peer, user, "connection");
            serve_stream(tls, user, service, &limits).await;
        });
    }
}

/// Serves one ssh session on stdin/stdout as `user`.
pub async fn serve_stdio(user: String, service: Arc<Service>, limits: &Limits) {
    let stream = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
    serve_stream(stream, user, service, limits).await;
}
