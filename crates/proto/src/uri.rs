//! Elvin router URIs (docs/protocol.md §1; Emulab usage in docs/emulab-model.md §5).
//!
//! General form: `elvin:[major.minor]/[stack]/host[:port][;name=value]...`.
//! The forms seen in practice are all accepted:
//!
//! | URI | meaning |
//! |---|---|
//! | `elvin://host` | TCP, default port 2917 (Emulab's form) |
//! | `elvin://host:2927` | TCP, explicit port |
//! | `elvin:4.0/tcp,none,xdr/host:2917` | explicit version and stack |
//! | `elvin:4.0//host` | explicit version, default stack |
//! | `elvin:/secure/host:2917` | TLS (`secure` is the alias of `ssl,none,xdr`) |
//! | `elvin://[::1]:2917` | IPv6 literal in brackets |
//! | `elvin://host;Packet.Max-Length=4096` | with connection options |
//!
//! Only the stacks `tcp,none,xdr` and `ssl,none,xdr` exist in this
//! implementation and only protocol version 4.0 is spoken; anything else is
//! a [`UriError`] that says what would work instead. The secure stack uses
//! the same default port as plain TCP (2917), since the spec names no other.
//!
//! [`ElvinUri`]'s `Display` gives a canonical form that parses back to the
//! same value: the port is always written, the default stack is left empty
//! and the TLS stack is written `secure`.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::value::Value;

/// The IANA port of the Elvin client protocol.
pub const DEFAULT_PORT: u16 = 2917;

/// The transport layer of the protocol stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP (`tcp,none,xdr`).
    Tcp,
    /// TLS over TCP (`ssl,none,xdr`, alias `secure`).
    Ssl,
}

impl Transport {
    /// The full protocol stack name.
    pub fn stack(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp,none,xdr",
            Transport::Ssl => "ssl,none,xdr",
        }
    }
}

/// A parsed Elvin URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElvinUri {
    /// Protocol version written in the URI, if any (always 4.0 once
    /// parsed).
    pub version: Option<(u32, u32)>,
    /// Transport of the protocol stack.
    pub transport: Transport,
    /// Host name or address; IPv6 addresses without brackets.
    pub host: String,
    /// Port (2917 when not written).
    pub port: u16,
    /// `;name=value` options, in order, values as written.
    pub options: Vec<(String, String)>,
}

/// Why a string is not a usable Elvin URI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The scheme is not `elvin:`.
    #[error("{0:?} is not an Elvin URI: it must start with \"elvin:\", as in elvin://host:2917")]
    NotElvin(String),
    /// The version/stack/endpoint slashes are missing.
    #[error("{0:?} is malformed: write elvin://host[:port] or elvin:4.0/tcp,none,xdr/host[:port]")]
    Malformed(String),
    /// The version is not a number pair.
    #[error("bad protocol version {0:?} in Elvin URI: write it as major.minor, e.g. 4.0")]
    BadVersion(String),
    /// A version other than 4.0 was requested.
    #[error("protocol version {major}.{minor} is not supported: this router speaks Elvin 4.0")]
    UnsupportedVersion {
        /// Requested major version.
        major: u32,
        /// Requested minor version.
        minor: u32,
    },
    /// A protocol stack other than `tcp,none,xdr` or `ssl,none,xdr`.
    #[error(
        "protocol stack {0:?} is not supported: use tcp,none,xdr (the default), ssl,none,xdr or its alias secure"
    )]
    UnsupportedStack(String),
    /// No host.
    #[error("Elvin URI has no host: write elvin://host[:port]")]
    EmptyHost,
    /// The host contains characters no host name or address has.
    #[error(
        "bad host {0:?} in Elvin URI: use a host name, an IPv4 address or an IPv6 address in brackets"
    )]
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("bad port {0:?} in Elvin URI: use a number from 1 to 65535")]
    BadPort(String),
    /// An option is not `name=value`.
    #[error("bad option {0:?} in Elvin URI: options are written ;name=value")]
    BadOption(String),
}

impl ElvinUri {
    /// A TCP URI for `host:port` with no version or options.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        ElvinUri {
            version: None,
            transport: Transport::Tcp,
            host: host.into(),
            port,
            options: Vec::new(),
        }
    }

    /// Parses a URI.
    pub fn parse(text: &str) -> Result<ElvinUri, UriError> {
        let text = text.trim();
        let rest = match text.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("elvin") => rest,
            _ => return Err(UriError::NotElvin(text.to_owned())),
        };
        let malformed = || UriError::Malformed(text.to_owned());
        let (version_text, rest) = rest.split_once('/').ok_or_else(malformed)?;
        let (stack_text, endpoint) = rest.split_once('/').ok_or_else(malformed)?;

        let version = parse_version(version_text)?;
        let transport = parse_stack(stack_text)?;

        let mut parts = endpoint.split(';');
        let host_port = parts.next().unwrap_or("");
        let (host, port) = parse_host_port(host_port)?;
        let options = parts.map(parse_option).collect::<Result<Vec<_>, _>>()?;

        Ok(ElvinUri {
            version,
            transport,
            host,
            port,
            options,
        })
    }

    /// `host:port` for connecting, with IPv6 addresses in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URI options as connection options: values that are decimal
    /// int32 numbers become int32 values, everything else a string.
    pub fn option_values(&self) -> Vec<(String, Value)> {
        self.options
            .iter()
            .map(|(name, value)| {
                let value = match value.parse::<i32>() {
                    Ok(number) => Value::Int32(number),
                    Err(_) => Value::String(value.clone()),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

fn parse_version(text: &str) -> Result<Option<(u32, u32)>, UriError> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || UriError::BadVersion(text.to_owned());
    let number = |s: &str| -> Result<u32, UriError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (major, minor) = match text.split_once('.') {
        Some((major, minor)) => (number(major)?, number(minor)?),
        None => (number(text)?, 0),
    };
    if (major, minor) != (4, 0) {
        return Err(UriError::UnsupportedVersion { major, minor });
    }
    Ok(Some((major, minor)))
}

fn parse_stack(text: &str) -> Result<Transport, UriError> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "" | "tcp,none,xdr" => Ok(Transport::Tcp),
        "secure" | "ssl,none,xdr" => Ok(Transport::Ssl),
        _ => Err(UriError::UnsupportedStack(text.to_owned())),
    }
}

fn parse_host_port(text: &str) -> Result<(String, u16), UriError> {
    let (host, port_text) = if let Some(bracketed) = text.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| UriError::BadHost(text.to_owned()))?;
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(UriError::BadHost(address.to_owned()));
        }
        let port_text = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| UriError::BadHost(text.to_owned()))?,
            ),
        };
        (address, port_text)
    } else if text.bytes().filter(|&b| b == b':').count() > 1 {
        // An IPv6 address without brackets: its port cannot be told apart.
        return Err(UriError::BadHost(text.to_owned()));
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::EmptyHost);
    }
    let host_chars_ok = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !text.starts_with('[') && !host_chars_ok(host) {
        return Err(UriError::BadHost(host.to_owned()));
    }
    let port = match port_text {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(UriError::BadPort(p.to_owned())),
        },
    };
    Ok((host.to_owned(), port))
}

fn parse_option(text: &str) -> Result<(String, String), UriError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(UriError::BadOption(text.to_owned())),
    }
}

impl FromStr for ElvinUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ElvinUri::parse(s)
    }
}

impl fmt::Display for ElvinUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("elvin:")?;
        if let Some((major, minor)) = self.version {
            write!(f, "{major}.{minor}")?;
        }
        f.write_str("/")?;
        if self.transport == Transport::Ssl {
            f.write_str("secure")?;
        }
        write!(f, "/{}", self.authority())?;
        for (name, value) in &self.options {
            write!(f, ";{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(version: Option<(u32, u32)>, transport: Transport, host: &str, port: u16) -> ElvinUri {
        ElvinUri {
            version,
            transport,
            host: host.to_owned(),
            port,
            options: Vec::new(),
        }
    }

    #[test]
    fn good_uris() {
        let cases = [
            (
                "elvin://localhost",
                uri(None, Transport::Tcp, "localhost", 2917),
            ),
            (
                "elvin://event-server",
                uri(None, Transport::Tcp, "event-server", 2917),
            ),
            (
                "elvin://localhost:2927",
                uri(None, Transport::Tcp, "localhost", 2927),
            ),
            (
                "elvin://10.1.2.3:16505",
                uri(None, Transport::Tcp, "10.1.2.3", 16505),
            ),
            (
                "elvin:4.0/tcp,none,xdr/boss.emulab.net:2917",
                uri(Some((4, 0)), Transport::Tcp, "boss.emulab.net", 2917),
            ),
            (
                "elvin:4.0//hostname",
                uri(Some((4, 0)), Transport::Tcp, "hostname", 2917),
            ),
            (
                "elvin:4/tcp,none,xdr/h",
                uri(Some((4, 0)), Transport::Tcp, "h", 2917),
            ),
            (
                "elvin:/tcp,none,xdr/localhost:2927",
                uri(None, Transport::Tcp, "localhost", 2927),
            ),
            (
                "elvin:/tcp,none,xdr/0.0.0.0:2917",
                uri(None, Transport::Tcp, "0.0.0.0", 2917),
            ),
            (
                "elvin:/secure/host:29170",
                uri(None, Transport::Ssl, "host", 29170),
            ),
            (
                "elvin:/ssl,none,xdr/host",
                uri(None, Transport::Ssl, "host", 2917),
            ),
            (
                "elvin:4.0/SECURE/host",
                uri(Some((4, 0)), Transport::Ssl, "host", 2917),
            ),
            ("elvin://[::1]:2917", uri(None, Transport::Tcp, "::1", 2917)),
            (
                "elvin://[fe80::1]",
                uri(None, Transport::Tcp, "fe80::1", 2917),
            ),
            ("ELVIN://Host_1", uri(None, Transport::Tcp, "Host_1", 2917)),
            ("  elvin://h:1  ", uri(None, Transport::Tcp, "h", 1)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                ElvinUri::parse(text),
                Ok(expected.clone()),
                "parsing {text}"
            );
            let canonical = expected.to_string();
            assert_eq!(
                ElvinUri::parse(&canonical),
                Ok(expected),
                "re-parsing {canonical}"
            );
        }
    }

    #[test]
    fn options_are_kept_in_order() {
        let parsed =
            ElvinUri::parse("elvin://h:3;Packet.Max-Length=4096;router.vendor=x=y;empty=").unwrap();
        assert_eq!(
            parsed.options,
            [
                ("Packet.Max-Length".to_owned(), "4096".to_owned()),
                ("router.vendor".to_owned(), "x=y".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert_eq!(
            parsed.to_string(),
            "elvin://h:3;Packet.Max-Length=4096;router.vendor=x=y;empty="
        );
        assert_eq!(
            parsed.option_values()[0],
            ("Packet.Max-Length".to_owned(), Value::Int32(4096))
        );
        assert_eq!(parsed.option_values()[1].1, Value::String("x=y".to_owned()));
    }

    #[test]
    fn canonical_display() {
        assert_eq!(
            ElvinUri::parse("elvin://h").unwrap().to_string(),
            "elvin://h:2917"
        );
        assert_eq!(
            ElvinUri::parse("elvin:4.0/tcp,none,xdr/h:1")
                .unwrap()
                .to_string(),
            "elvin:4.0//h:1"
        );
        assert_eq!(
            ElvinUri::parse("elvin:/ssl,none,xdr/h")
                .unwrap()
                .to_string(),
            "elvin:/secure/h:2917"
        );
        assert_eq!(
            ElvinUri::parse("elvin://[::1]").unwrap().authority(),
            "[::1]:2917"
        );
        assert_eq!(ElvinUri::tcp("a", 5).to_string(), "elvin://a:5");
    }

    #[test]
    fn bad_uris() {
        use UriError::*;
        let cases: [(&str, UriError); 20] = [
            ("http://h", NotElvin("http://h".into())),
            ("h:2917", NotElvin("h:2917".into())),
            ("", NotElvin(String::new())),
            ("elvin:h", Malformed("elvin:h".into())),
            ("elvin:/h", Malformed("elvin:/h".into())),
            ("elvin:5.0//h", UnsupportedVersion { major: 5, minor: 0 }),
            ("elvin:4.1//h", UnsupportedVersion { major: 4, minor: 1 }),
            ("elvin:x.0//h", BadVersion("x.0".into())),
            ("elvin:4.//h", BadVersion("4.".into())),
            (
                "elvin:/udp,none,xdr/h",
                UnsupportedStack("udp,none,xdr".into()),
            ),
            (
                "elvin:/tcp,ssl,xdr/h",
                UnsupportedStack("tcp,ssl,xdr".into()),
            ),
            ("elvin:/tcp/h", UnsupportedStack("tcp".into())),
            ("elvin://", EmptyHost),
            ("elvin://:2917", EmptyHost),
            ("elvin://h:", BadPort(String::new())),
            ("elvin://h:0", BadPort("0".into())),
            ("elvin://h:65536", BadPort("65536".into())),
            ("elvin://h:+80", BadPort("+80".into())),
            ("elvin://::1", BadHost("::1".into())),
            ("elvin://h;novalue", BadOption("novalue".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(ElvinUri::parse(text), Err(expected), "parsing {text:?}");
        }
        assert!(matches!(
            ElvinUri::parse("elvin://[nothex]:1"),
            Err(BadHost(_))
        ));
        assert!(matches!(ElvinUri::parse("elvin://[::1]x"), Err(BadHost(_))));
        assert!(matches!(ElvinUri::parse("elvin://[::1"), Err(BadHost(_))));
        assert!(matches!(ElvinUri::parse("elvin://ho st"), Err(BadHost(_))));
        assert!(matches!(
            ElvinUri::parse("elvin://h/extra"),
            Err(BadHost(_))
        ));
        assert!(matches!(ElvinUri::parse("elvin://h;=v"), Err(BadOption(_))));
    }

    #[test]
    fn errors_tell_the_operator_what_to_write() {
        let err = ElvinUri::parse("elvin:4.1//h").unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol version 4.1 is not supported: this router speaks Elvin 4.0"
        );
        let err = ElvinUri::parse("elvin:/udp,none,xdr/h").unwrap_err();
        assert!(err.to_string().contains("use tcp,none,xdr"), "{err}");
    }
}
