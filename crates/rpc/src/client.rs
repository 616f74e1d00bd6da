//! The scheduler's read-only store over XML-RPC: `xmlrpc+https://` and
//! `xmlrpc+ssh://` URLs.
//!
//! On ops the scheduler runs as the user, with no database access; it asks
//! boss's `tbevents-rpc` for its experiment's state, agents, groups and
//! events. [`XmlRpcStore`] answers exactly those [`ExperimentStore`] reads;
//! every write (and every read the server does not offer) is refused with
//! an error that says the store is read-only. Transport failures (refused
//! connection, a dropped ssh) are retried with backoff; a TLS failure (a bad
//! or unknown certificate) is not, because retrying cannot fix it.
//!
//! URL forms (the query parameters are optional; environment variables
//! fill what the URL leaves out, see docs/rpc.md):
//! * `xmlrpc+https://boss:3069/RPC2?cert=/path/user.pem&key=/path/user.key&ca=/path/ca.pem`
//! * `xmlrpc+ssh://user@boss:22?command=xmlrpc`

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tbevents_store::model::{
    AgentRow, EventRow, Experiment, ExperimentId, ExperimentState, Group, GroupMembership,
    GroupRow, NewExperiment, NodeAssignment, TypeEntry, TypeTable, User, VirtualExperiment,
};
use tbevents_store::{ExperimentStore, StoreError};

use crate::codec::{self, MethodResponse, Value};
use crate::service::{Code, PROTOCOL_VERSION};

/// Environment variables for the client certificate, key and CA.
pub const CERT_ENV: &str = "TBEVENTS_RPC_CERT";
/// See [`CERT_ENV`].
pub const KEY_ENV: &str = "TBEVENTS_RPC_KEY";
/// See [`CERT_ENV`].
pub const CA_ENV: &str = "TBEVENTS_RPC_CA";
/// The ssh program to run (default `ssh`); tests point it at a pipe.
pub const SSH_ENV: &str = "TBEVENTS_RPC_SSH";

/// Largest response accepted (100,000 events are about 40 MB of XML).
const MAX_RESPONSE: usize = 512 * 1024 * 1024;
/// Attempts per call when the transport fails.
const ATTEMPTS: u32 = 5;

/// The URL schemes this module opens.
pub const SCHEMES: &[&str] = &["xmlrpc+https", "xmlrpc+ssh"];

fn remote(location: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Remote {
        location: location.to_owned(),
        reason: reason.into(),
    }
}

enum Transport {
    Https {
        addr: String,
        host: String,
        path: String,
        tls: Arc<rustls::ClientConfig>,
    },
    Ssh {
        argv: Vec<String>,
        session: Option<SshSession>,
    },
}

struct SshSession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The last lines ssh (or the forced command) wrote to stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Disconnected once the stderr thread has read to the end (it holds
    /// the sender), so `explain` can wait for ssh's last words.
    stderr_read: std::sync::mpsc::Receiver<()>,
}

/// Lines of ssh's stderr kept to explain a failed session.
const STDERR_TAIL: usize = 8;

impl SshSession {
    fn start(argv: &[String]) -> Result<SshSession, Failure> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::Permanent(format!("cannot run {}: {e}", argv[0])))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Permanent("ssh has no pipes".into()));
        };
        // Drained all the time so a chatty server never blocks on a full
        // pipe; every line is logged, the last few kept for the error.
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let keep = Arc::clone(&tail);
        let (reading, stderr_read) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("ssh-stderr".into())
            .spawn(move || {
                let _reading = reading;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    tracing::info!("ssh: {line}");
                    let mut tail = keep.lock();
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        if let Err(e) = spawned {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Permanent(format!("cannot start a thread: {e}")));
        }
        Ok(SshSession {
            child,
            stdin,
            stdout: BufReader::with_capacity(256 * 1024, stdout),
            stderr: tail,
            stderr_read,
        })
    }

    /// Turns a failed exchange into what the operator needs: ssh's own
    /// words, and whether trying again can help. ssh exits 255 for its own
    /// errors; a refused key or an unknown host key will not get better.
    fn explain(&mut self, failure: Failure) -> Failure {
        let Failure::Transient(reason) = failure else {
            return failure;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break None,
            }
        };
        // The stderr thread reaches the end once ssh has exited (unless
        // something ssh started still holds the pipe: then wait no more
        // than half a second).
        if status.is_some() {
            let _ = self.stderr_read.recv_timeout(Duration::from_millis(500));
        }
        let said = self
            .stderr
            .lock()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ");
        let Some(status) = status else {
            return Failure::Transient(reason);
        };
        let permanent =
            status.code() == Some(255) && PERMANENT_SSH_ERRORS.iter().any(|p| said.contains(p));
        let reason = if reason.contains("without an answer") {
            "the ssh session ended without an answer".to_owned()
        } else {
            reason
        };
        let mut text = format!("{reason}; ssh exited with {status}");
        if !said.is_empty() {
            text.push_str(&format!(" and said: {said}"));
        }
        if permanent {
            text.push_str(
                ": check the identity file, boss's authorized_keys entry and the known_hosts entry for boss",
            );
            Failure::Permanent(text)
        } else {
            Failure::Transient(text)
        }
    }
}

/// ssh's messages for failures that retrying cannot fix.
const PERMANENT_SSH_ERRORS: &[&str] = &[
    "Permission denied",
    "Host key verification failed",
    "Could not resolve hostname",
    "No such file or directory",
    "Bad configuration option",
    "bad permissions",
];

impl Drop for SshSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth retrying (connection refused, session dropped).
    Transient(String),
    /// Not worth retrying (TLS refused, a malformed answer).
    Permanent(String),
}

/// A read-only experiment store on a remote `tbevents-rpc`.
pub struct XmlRpcStore {
    location: String,
    transport: Mutex<Transport>,
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn load_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

impl XmlRpcStore {
    /// Opens a store from an `xmlrpc+https://` or `xmlrpc+ssh://` URL. Nothing
    /// is contacted yet; the first call connects.
    pub fn open(url: &str) -> Result<XmlRpcStore, StoreError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            remote(
                url,
                "expected xmlrpc+https://host:port or xmlrpc+ssh://user@host",
            )
        })?;
        let (authority_path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match authority_path.find('/') {
            Some(i) => (&authority_path[..i], &authority_path[i..]),
            None => (authority_path, ""),
        };
        if authority.is_empty() {
            return Err(remote(url, "the URL names no host"));
        }
        let location = match url.split_once('?') {
            Some((base, _)) => base.to_owned(),
            None => url.to_owned(),
        };
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "xmlrpc+https" => {
                let (host, port) = match authority.rsplit_once(':') {
                    Some((h, p)) => (
                        h.to_owned(),
                        p.parse::<u16>()
                            .map_err(|_| remote(url, format!("bad port `{p}`")))?,
                    ),
                    None => (authority.to_owned(), 3069),
                };
                let path = if path.is_empty() { "/RPC2" } else { path };
                let file = |param: &str, var: &str| -> Result<PathBuf, StoreError> {
                    query_param(query, param)
                        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
                        .map(PathBuf::from)
                        .ok_or_else(|| {
                            remote(
                                url,
                                format!(
                                    "no client {param}: add `{param}=PATH` to the URL or set {var}"
                                ),
                            )
                        })
                };
                let tls = client_tls(
                    &file("cert", CERT_ENV)?,
                    &file("key", KEY_ENV)?,
                    &file("ca", CA_ENV)?,
                )
                .map_err(|e| remote(url, e))?;
                Transport::Https {
                    addr: format!("{host}:{port}"),
                    host,
                    path: path.to_owned(),
                    tls,
                }
            }
            "xmlrpc+ssh" => {
                let (user, hostport) = match authority.split_once('@') {
                    Some((u, h)) => (Some(u.to_owned()), h),
                    None => (None, authority),
                };
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p.to_owned())),
                    None => (hostport, None),
                };
                let program = std::env::var(SSH_ENV).unwrap_or_else(|_| "ssh".to_owned());
                let mut argv: Vec<String> = program.split_whitespace().map(str::to_owned).collect();
                if argv.is_empty() {
                    return Err(remote(url, format!("{SSH_ENV} is empty")));
                }
                argv.extend(["-T", "-x", "-o", "BatchMode=yes"].map(String::from));
                if let Some(p) = port {
                    argv.extend(["-p".to_owned(), p]);
                }
                if let Some(identity) = query_param(query, "identity") {
                    argv.extend(["-i".to_owned(), identity]);
                }
                if let Some(u) = user {
                    argv.extend(["-l".to_owned(), u]);
                }
                argv.push(host.to_owned());
                argv.push(query_param(query, "command").unwrap_or_else(|| "xmlrpc".to_owned()));
                Transport::Ssh {
                    argv,
                    session: None,
                }
            }
            other => return Err(remote(url, format!("unknown scheme `{other}`"))),
        };
        Ok(XmlRpcStore {
            location,
            transport: Mutex::new(transport),
        })
    }

    /// Calls `method` for experiment `id` with Emulab's envelope and
    /// returns the reply's value.
    pub fn call(
        &self,
        method: &str,
        id: &ExperimentId,
        extra: &[(&str, Value)],
    ) -> Result<Value, StoreError> {
        let mut args = vec![
            ("proj".to_owned(), Value::string(id.pid.clone())),
            ("exp".to_owned(), Value::string(id.eid.clone())),
        ];
        args.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let body = codec::encode_call(
            method,
            &[Value::Double(PROTOCOL_VERSION), Value::Struct(args)],
        );
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1;
        let answer = loop {
            let result = self.transport.lock().exchange(body.as_bytes());
            match result {
                Ok(answer) => break answer,
                Err(Failure::Permanent(e)) => return Err(remote(&self.location, e)),
                Err(Failure::Transient(e)) if attempt >= ATTEMPTS => {
                    return Err(remote(
                        &self.location,
                        format!("{e} (gave up after {ATTEMPTS} attempts)"),
                    ));
                }
                Err(Failure::Transient(e)) => {
                    tracing::warn!("{method} on {}: {e}; retrying in {pause:?}", self.location);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
            }
        };
        let response = codec::decode_response(&answer)
            .map_err(|e| remote(&self.location, format!("undecodable answer: {e}")))?;
        let reply = match response {
            MethodResponse::Fault { code, message } => {
                return Err(remote(
                    &self.location,
                    format!("{method} failed (fault {code}): {message}"),
                ));
            }
            MethodResponse::Success(v) => v,
        };
        let code = reply.member("code").and_then(Value::as_int);
        let output = reply
            .member("output")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match code.and_then(Code::from_i64) {
            Some(Code::Success) => reply.member("value").cloned().ok_or_else(|| {
                remote(&self.location, format!("{method}: a reply without a value"))
            }),
            Some(Code::Error) if output.starts_with("No such experiment") => {
                Err(StoreError::ExperimentNotFound(id.clone()))
            }
            Some(Code::Forbidden) => Err(remote(
                &self.location,
                format!(
                    "permission refused: {output} (ask the project leader to add you to the experiment's group)"
                ),
            )),
            _ => Err(remote(
                &self.location,
                format!("{method} failed (code {}): {output}", code.unwrap_or(-1)),
            )),
        }
    }

    fn rows(
        &self,
        method: &str,
        id: &ExperimentId,
        width: usize,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let value = self.call(method, id, &[])?;
        let bad = || {
            remote(
                &self.location,
                format!("{method}: the answer is not a list of {width}-string rows"),
            )
        };
        let items = value.as_array().ok_or_else(bad)?;
        items
            .iter()
            .map(|row| {
                let cells = row.as_array().ok_or_else(bad)?;
                if cells.len() < width {
                    return Err(bad());
                }
                cells
                    .iter()
                    .map(|c| c.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect()
            })
            .collect()
    }

    /// A write: refused like any read-only store's.
    fn read_only(&self, what: &str) -> StoreError {
        StoreError::ReadOnly {
            location: self.location.clone(),
            doing: what.to_owned(),
        }
    }

    /// A read boss does not serve to schedulers.
    fn not_offered(&self, what: &str) -> StoreError {
        remote(
            &self.location,
            format!(
                "the XML-RPC store offers only the scheduler's reads; {what} needs boss's store (sqlite: or mysql:)"
            ),
        )
    }
}

fn client_tls(
    cert: &PathBuf,
    key: &PathBuf,
    ca: &PathBuf,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| format!("bad CA certificate in {}: {e}", ca.display()))?;
    }
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            format!(
                "the client certificate {} and its key do not match: {e}",
                cert.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// Reads a response frame: optional status line, headers, body.
fn read_response<R: BufRead>(reader: &mut R, http: bool) -> Result<Vec<u8>, Failure> {
    let mut length = None;
    let mut first = true;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(16 * 1024)
            .read_line(&mut line)
            .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?;
        if n == 0 {
            return Err(Failure::Transient(
                "the server closed the connection without an answer".into(),
            ));
        }
        let text = line.trim_end();
        if first && http {
            first = false;
            if !text.starts_with("HTTP/1.") || !text.contains(" 200") {
                return Err(Failure::Permanent(format!("the server answered `{text}`")));
            }
            continue;
        }
        first = false;
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length =
        length.ok_or_else(|| Failure::Permanent("an answer without Content-Length".into()))?;
    if length > MAX_RESPONSE {
        return Err(Failure::Permanent(format!(
            "an answer of {length} bytes is too large"
        )));
    }
    let mut body = vec![0u8; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| Failure::Transient(format!("the answer was cut short: {e}")))?;
    Ok(body)
}

impl Transport {
    fn exchange(&mut self, body: &[u8]) -> Result<Vec<u8>, Failure> {
        match self {
            Transport::Https {
                addr,
                host,
                path,
                tls,
            } => {
                let tcp = TcpStream::connect(addr.as_str())
                    .map_err(|e| Failure::Transient(format!("cannot connect to {addr}: {e}")))?;
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(600)));
                let _ = tcp.set_nodelay(true);
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| Failure::Permanent(format!("bad host name `{host}`: {e}")))?;
                let conn = rustls::ClientConnection::new(Arc::clone(tls), name)
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock).map_err(|e| {
                        Failure::Permanent(format!(
                            "TLS handshake with {addr} failed: {e}: check that the client certificate is signed by boss's CA and that the CA file holds the CA of boss's server certificate"
                        ))
                    })?;
                }
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tbevents-rpc\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let mut reader = BufReader::with_capacity(256 * 1024, stream);
                let sent = {
                    let stream = reader.get_mut();
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|()| stream.write_all(body))
                        .and_then(|()| stream.flush())
                        .map_err(|e| Failure::Transient(format!("sending to {addr} failed: {e}")))
                };
                // With TLS 1.3 the server judges the client certificate
                // after the client thinks the handshake is done, so a
                // refusal arrives as an alert on the first read or write.
                // A server that drops the session without an alert may
                // have refused the certificate too, or restarted: that is
                // retried, and the error says both.
                sent.and_then(|()| read_response(&mut reader, true))
                    .map_err(|failure| match failure {
                        Failure::Transient(e) if e.contains("alert") => Failure::Permanent(format!(
                            "{addr} refused the TLS session ({e}): check that the client certificate is signed by the CA boss trusts"
                        )),
                        Failure::Transient(e) => Failure::Transient(format!(
                            "{e} (if this persists, boss may be refusing the client certificate: check that it is signed by the CA boss trusts, and boss's log)"
                        )),
                        permanent => permanent,
                    })
            }
            Transport::Ssh { argv, session } => {
                if session.is_none() {
                    *session = Some(SshSession::start(argv)?);
                }
                let Some(s) = session.as_mut() else {
                    return Err(Failure::Transient("no ssh session".into()));
                };
                let head = format!(
                    "Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let result = s
                    .stdin
                    .write_all(head.as_bytes())
                    .and_then(|()| s.stdin.write_all(body))
                    .and_then(|()| s.stdin.flush())
                    .map_err(|e| Failure::Transient(format!("the ssh session failed: {e}")))
                    .and_then(|()| read_response(&mut s.stdout, false));
                match result {
                    Ok(answer) => Ok(answer),
                    Err(failure) => {
                        let failure = s.explain(failure);
                        *session = None;
                        Err(failure)
                    }
                }
            }
        }
    }
}

impl ExperimentStore for XmlRpcStore {
    fn location(&self) -> String {
        self.location.clone()
    }
    fn schema_version(&self) -> Result<i64, StoreError> {
        Err(self.not_offered("the schema version"))
    }
    fn create_experiment(&self, _: &NewExperiment) -> Result<Experiment, StoreError> {
        Err(self.read_only("creating an experiment"))
    }
    fn experiment(&self, _: &ExperimentId) -> Result<Experiment, StoreError> {
        Err(self.not_offered("the experiment row"))
    }
    fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        Err(self.not_offered("listing experiments"))
    }
    fn delete_experiment(&self, _: &ExperimentId) -> Result<(), StoreError> {
        Err(self.read_only("deleting an experiment"))
    }
    fn state(&self, id: &ExperimentId) -> Result<ExperimentState, StoreError> {
        let value = self.call("experiment.state", id, &[])?;
        let text = value
            .as_str()
            .ok_or_else(|| remote(&self.location, "experiment.state: not a string"))?;
        text.parse()
    }
    fn set_state(&self, _: &ExperimentId, _: ExperimentState) -> Result<(), StoreError> {
        Err(self.read_only("setting the state"))
    }
    fn set_event_key(&self, _: &ExperimentId, _: &str) -> Result<(), StoreError> {
        Err(self.read_only("setting the event key"))
    }
    fn load_virtual(&self, _: &ExperimentId, _: &VirtualExperiment) -> Result<(), StoreError> {
        Err(self.read_only("loading a virtual experiment"))
    }
    fn virtual_experiment(&self, _: &ExperimentId) -> Result<VirtualExperiment, StoreError> {
        Err(self.not_offered("the virtual experiment"))
    }
    fn record_swapin(&self, _: &ExperimentId, _: &[NodeAssignment]) -> Result<(), StoreError> {
        Err(self.read_only("recording a swap-in"))
    }
    fn physical_mapping(&self, _: &ExperimentId) -> Result<Vec<NodeAssignment>, StoreError> {
        Err(self.not_offered("the physical mapping"))
    }
    fn record_swapout(&self, _: &ExperimentId) -> Result<(), StoreError> {
        Err(self.read_only("recording a swap-out"))
    }
    fn agents(&self, id: &ExperimentId) -> Result<Vec<AgentRow>, StoreError> {
        let none_if_empty = |s: String| (!s.is_empty()).then_some(s);
        Ok(self
            .rows("experiment.event_agentlist", id, 5)?
            .into_iter()
            .map(|mut r| AgentRow {
                objtype: std::mem::take(&mut r[4]),
                ipaddr: none_if_empty(std::mem::take(&mut r[3])),
                node_id: none_if_empty(std::mem::take(&mut r[2])),
                vnode: std::mem::take(&mut r[1]),
                vname: std::mem::take(&mut r[0]),
            })
            .collect())
    }
    fn groups(&self, id: &ExperimentId) -> Result<Vec<GroupRow>, StoreError> {
        Ok(self
            .rows("experiment.event_grouplist", id, 2)?
            .into_iter()
            .map(|mut r| GroupRow {
                agent_name: std::mem::take(&mut r[1]),
                group_name: std::mem::take(&mut r[0]),
            })
            .collect())
    }
    fn events(&self, id: &ExperimentId) -> Result<Vec<EventRow>, StoreError> {
        let rows = self.rows("experiment.event_eventlist", id, 6)?;
        let mut out = Vec::with_capacity(rows.len());
        for mut r in rows {
            let bad = |what: &str, text: &str| {
                remote(
                    &self.location,
                    format!("experiment.event_eventlist: bad {what} `{text}`"),
                )
            };
            let idx = r[0].parse::<u64>().map_err(|_| bad("idx", &r[0]))?;
            let time = r[1]
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| bad("time", &r[1]))?;
            out.push(EventRow {
                idx,
                time,
                vnode: r.get_mut(6).map(std::mem::take).unwrap_or_default(),
                vname: std::mem::take(&mut r[2]),
                objtype: std::mem::take(&mut r[3]),
                eventtype: std::mem::take(&mut r[4]),
                arguments: std::mem::take(&mut r[5]),
            });
        }
        Ok(out)
    }
    fn type_table(&self, _: TypeTable) -> Result<Vec<TypeEntry>, StoreError> {
        Err(self.not_offered("the type tables"))
    }
    fn create_user(&self, _: &User) -> Result<(), StoreError> {
        Err(self.read_only("creating a user"))
    }
    fn user(&self, _: &str) -> Result<User, StoreError> {
        Err(self.not_offered("reading a user"))
    }
    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Err(self.not_offered("listing users"))
    }
    fn delete_user(&self, _: &str) -> Result<(), StoreError> {
        Err(self.read_only("deleting a user"))
    }
    fn create_group(&self, _: &Group) -> Result<(), StoreError> {
        Err(self.read_only("creating a group"))
    }
    fn group(&self, _: &str, _: &str) -> Result<Group, StoreError> {
        Err(self.not_offered("reading a group"))
    }
    fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        Err(self.not_offered("listing groups"))
    }
    fn delete_group(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(self.read_only("deleting a group"))
    }
    fn add_member(&self, _: &GroupMembership) -> Result<(), StoreError> {
        Err(self.read_only("adding a member"))
    }
    fn remove_member(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        Err(self.read_only("removing a member"))
    }
    fn memberships(&self, _: &str) -> Result<Vec<GroupMembership>, StoreError> {
        Err(self.not_offered("reading memberships"))
    }
    fn group_members(&self, _: &str, _: &str) -> Result<Vec<GroupMembership>, StoreError> {
        Err(self.not_offered("reading group members"))
    }
}

/// Opens an XML-RPC store as a boxed [`ExperimentStore`] (the hook the
/// store's `open()` calls for [`SCHEMES`]).
pub fn open_store(url: &str) -> Result<Box<dyn ExperimentStore>, StoreError> {
    Ok(Box::new(XmlRpcStore::open(url)?))
}

/// Makes `tbevents_store::open` accept the `xmlrpc+https://` and
/// `xmlrpc+ssh://` URLs in this program.
pub fn register() {
    tbevents_store::open::register_scheme(SCHEMES, open_store);
}
