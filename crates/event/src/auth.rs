//! HMAC authentication of events with an experiment's key.
//!
//! Anyone who can reach the event server can send events, so an experiment
//! proves its events are its own with a shared secret, the **event key**.
//! Whoever can read the key file can send events to that experiment.
//!
//! # Key files
//!
//! [`EventKey::from_file`] takes the file's content as the key bytes (by
//! convention 32 lower-case hex characters; the ASCII bytes themselves are
//! the key, not the 16 bytes they spell). Rules:
//!
//! - an empty file is refused ([`KeyError::EmptyFile`]);
//! - a file of more than [`MAX_KEY_LENGTH`] (2047) bytes is refused
//!   ([`KeyError::FileTooLarge`]); only that many bytes plus one are ever
//!   read, so a huge or endless file costs nothing;
//! - **one trailing line ending (`\n` or `\r\n`) is removed**, with a
//!   `tracing` warning. The original used every byte, so a key file written
//!   with `echo` silently failed every check; dropping the newline makes
//!   `echo KEY > file` and `echo -n KEY > file` mean the same key. Any
//!   other byte, including other whitespace, is part of the key.
//!
//! # The MAC
//!
//! HMAC-SHA1 with the key bytes, 20 bytes, stored as the opaque attribute
//! `__hmac__`. It is computed over this **canonical encoding** of the
//! notification (see [`canonical_encoding`]):
//!
//! ```text
//! int32    n                    number of attributes, __hmac__ excluded
//! n times, sorted by name (byte-wise, ascending):
//!   string name                 XDR string: int32 length, UTF-8 bytes, zero pad to 4
//!   int32  type code            1 int32, 2 int64, 3 real64, 4 string, 5 opaque
//!   value                       XDR: int32 / int64 big-endian, real64 IEEE-754
//!                               big-endian, string or opaque as length + bytes + pad
//! ```
//!
//! That is exactly the Elvin wire encoding of the attribute list (as in a
//! NotifyEmit) with the attributes sorted by name, produced by
//! [`elvin_proto::raw`]'s own writers. Because names, types and lengths
//! are covered, a value cannot be moved to another attribute, retyped or
//! split differently without breaking the MAC; because the order is
//! sorted, the router's attribute order does not matter.
//!
//! **This is deliberately not the original's MAC**, which fed only the
//! values (numbers in host byte order, strings without length) in libelvin
//! 4's internal hash-table order. That scheme cannot be reproduced without
//! re-creating libelvin's hash order, and it let attributes be swapped
//! undetected (`OBJNAME=a, EVENTTYPE=b` and `OBJNAME=b, EVENTTYPE=a` had
//! the same MAC when hashed in the same order). tbevents components agree
//! only with each other: an original Emulab agent holding the same key
//! would reject our events, and we would reject its.
//!
//! Verification recomputes the MAC and compares in constant time
//! (`hmac`'s `verify_slice`). There is no replay protection or timestamp
//! check, as in the original.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use elvin_proto::{Attributes, ValueRef, raw};
use hmac::{KeyInit, Mac};
use sha1::{Digest, Sha1};

use crate::constants::ATTR_HMAC;

type HmacSha1 = hmac::Hmac<Sha1>;

/// Length of the MAC in bytes (HMAC-SHA1).
pub const HMAC_LENGTH: usize = 20;

/// The longest key accepted, in bytes (the original's read buffer held
/// 2048 bytes and refused a file that filled it).
pub const MAX_KEY_LENGTH: usize = 2047;

/// An event key: the shared secret of one experiment.
///
/// `Debug` does not print the key.
#[derive(Clone)]
pub struct EventKey {
    bytes: Vec<u8>,
    id: KeyId,
    /// The keyed HMAC state, prepared once and cloned per message.
    keyed: HmacSha1,
}

/// A short, non-secret fingerprint of a key, used to remember which key a
/// notification was signed or verified with. Derived with SHA-1 from the
/// key; it identifies a key, it does not reveal it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(u64);

/// A key that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be opened or read.
    #[error(
        "cannot read the event key file {}: {source} (check the path and that this user may read it)",
        path.display()
    )]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (or holds only a line ending).
    #[error(
        "the event key file {} is empty: it must hold the experiment's key (32 hex characters)",
        path.display()
    )]
    EmptyFile {
        /// The key file.
        path: PathBuf,
    },
    /// The file is longer than [`MAX_KEY_LENGTH`].
    #[error(
        "the event key file {} is too big: keys are at most {limit} bytes (an experiment key is 32 hex characters); is this the right file?",
        path.display()
    )]
    FileTooLarge {
        /// The key file.
        path: PathBuf,
        /// [`MAX_KEY_LENGTH`].
        limit: usize,
    },
    /// A key given as bytes was empty.
    #[error("an event key cannot be empty")]
    Empty,
    /// A key given as bytes was longer than [`MAX_KEY_LENGTH`].
    #[error("an event key of {length} bytes is too long: keys are at most {limit} bytes")]
    TooLong {
        /// The length given.
        length: usize,
        /// [`MAX_KEY_LENGTH`].
        limit: usize,
    },
}

/// Why a notification failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// There is no `__hmac__` attribute.
    #[error("the notification carries no __hmac__ signature")]
    Missing,
    /// `__hmac__` is there but is not opaque.
    #[error("the notification's __hmac__ is a {found}, not opaque")]
    NotOpaque {
        /// The type found.
        found: &'static str,
    },
    /// `__hmac__` does not match the content for this key.
    #[error(
        "the notification's __hmac__ does not match its content (forged, modified after signing, or signed with another key)"
    )]
    Mismatch,
}

impl EventKey {
    /// A key from raw bytes (no newline handling).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<EventKey, KeyError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        if bytes.len() > MAX_KEY_LENGTH {
            return Err(KeyError::TooLong {
                length: bytes.len(),
                limit: MAX_KEY_LENGTH,
            });
        }
        let digest = Sha1::digest(&bytes);
        let mut prefix = [0u8; 8];
        for (slot, byte) in prefix.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
        // HMAC accepts keys of any length; the error arm cannot be taken
        // but is mapped rather than unwrapped.
        let keyed = HmacSha1::new_from_slice(&bytes).map_err(|_| KeyError::TooLong {
            length: bytes.len(),
            limit: MAX_KEY_LENGTH,
        })?;
        Ok(EventKey {
            bytes,
            id: KeyId(u64::from_be_bytes(prefix)),
            keyed,
        })
    }

    /// Loads a key file (see the [module docs](self) for the rules).
    pub fn from_file(path: impl AsRef<Path>) -> Result<EventKey, KeyError> {
        let path = path.as_ref();
        let unreadable = |source| KeyError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::with_capacity(64);
        // One byte more than allowed tells "too big" from "just fits".
        let limit = u64::try_from(MAX_KEY_LENGTH + 1).unwrap_or(u64::MAX);
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() > MAX_KEY_LENGTH {
            return Err(KeyError::FileTooLarge {
                path: path.to_owned(),
                limit: MAX_KEY_LENGTH,
            });
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            tracing::warn!(
                path = %path.display(),
                "the event key file ends with a line ending; it is not used as part of the key"
            );
        }
        if bytes.is_empty() {
            return Err(KeyError::EmptyFile {
                path: path.to_owned(),
            });
        }
        EventKey::from_bytes(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key's fingerprint.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn mac(&self) -> HmacSha1 {
        self.keyed.clone()
    }

    /// The MAC of `attributes` (any `__hmac__` among them is ignored).
    pub fn sign(&self, attributes: &Attributes) -> [u8; HMAC_LENGTH] {
        let mut mac = self.mac();
        mac.update(&canonical_encoding(attributes));
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; HMAC_LENGTH];
        for (slot, byte) in out.iter_mut().zip(tag.iter()) {
            *slot = *byte;
        }
        out
    }

    /// Checks the `__hmac__` of `attributes`, comparing in constant time.
    pub fn verify(&self, attributes: &Attributes) -> Result<(), AuthError> {
        let tag = match attributes.get(ATTR_HMAC) {
            None => return Err(AuthError::Missing),
            Some(value) => match value.as_bytes() {
                Some(tag) => tag,
                None => {
                    return Err(AuthError::NotOpaque {
                        found: value.value_type().name(),
                    });
                }
            },
        };
        let mut mac = self.mac();
        mac.update(&canonical_encoding(attributes));
        mac.verify_slice(tag).map_err(|_| AuthError::Mismatch)
    }
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventKey")
            .field("length", &self.bytes.len())
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EventKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for EventKey {}

/// The bytes the MAC covers: the XDR attribute list, sorted by name,
/// without `__hmac__` (see the [module docs](self) for the layout).
pub fn canonical_encoding(attributes: &Attributes) -> Vec<u8> {
    let mut entries: Vec<(&str, ValueRef<'_>)> = attributes
        .iter()
        .filter(|(name, _)| *name != ATTR_HMAC)
        .map(|(name, value)| (name, value.as_ref()))
        .collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(raw::name_values_len(entries.iter().copied()));
    raw::put_name_values(&mut out, entries);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::Value;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sample() -> Attributes {
        [
            ("OBJNAME", Value::from("a")),
            ("EVENTTYPE", Value::from("b")),
            ("SCHEDULER", Value::Int32(1)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn canonical_encoding_is_sorted_xdr_without_the_mac() {
        let mut attributes = sample();
        attributes.insert("__hmac__", vec![0u8; 20]);
        let bytes = canonical_encoding(&attributes);
        let mut expected = Vec::new();
        expected.extend_from_slice(&3i32.to_be_bytes());
        // EVENTTYPE, OBJNAME, SCHEDULER (byte order).
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.extend_from_slice(b"EVENTTYPE\0\0\0");
        expected.extend_from_slice(&4i32.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(b"b\0\0\0");
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(b"OBJNAME\0");
        expected.extend_from_slice(&4i32.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(b"a\0\0\0");
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.extend_from_slice(b"SCHEDULER\0\0\0");
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn order_does_not_matter_but_names_and_types_do() {
        let key = EventKey::from_bytes(KEY).unwrap();
        let forward = sample();
        let backward: Attributes = forward
            .iter()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect();
        assert_eq!(key.sign(&forward), key.sign(&backward));

        // Swapping two values between attributes changes the MAC (the
        // original's value-only MAC could not see this).
        let mut swapped = sample();
        swapped.insert("OBJNAME", "b");
        swapped.insert("EVENTTYPE", "a");
        assert_ne!(key.sign(&forward), key.sign(&swapped));

        // Same bytes, other type.
        let mut retyped = sample();
        retyped.insert("SCHEDULER", Value::Int64(1));
        assert_ne!(key.sign(&forward), key.sign(&retyped));

        // Renamed attribute.
        let mut renamed = sample();
        let value = renamed.remove("OBJNAME").unwrap();
        renamed.insert("OBJNAMF", value);
        assert_ne!(key.sign(&forward), key.sign(&renamed));
    }

    #[test]
    fn sign_then_verify() {
        let key = EventKey::from_bytes(KEY).unwrap();
        let mut attributes = sample();
        assert_eq!(key.verify(&attributes), Err(AuthError::Missing));
        let tag = key.sign(&attributes);
        attributes.insert("__hmac__", tag.to_vec());
        assert_eq!(key.verify(&attributes), Ok(()));
        // The MAC ignores its own attribute, so signing again is stable.
        assert_eq!(key.sign(&attributes), tag);

        let other = EventKey::from_bytes(b"other".to_vec()).unwrap();
        assert_eq!(other.verify(&attributes), Err(AuthError::Mismatch));

        let mut short = attributes.clone();
        short.insert("__hmac__", tag[..19].to_vec());
        assert_eq!(key.verify(&short), Err(AuthError::Mismatch));

        let mut text = attributes.clone();
        text.insert("__hmac__", "not bytes");
        assert_eq!(
            key.verify(&text),
            Err(AuthError::NotOpaque { found: "string" })
        );

        attributes.insert("OBJNAME", "changed");
        assert_eq!(key.verify(&attributes), Err(AuthError::Mismatch));
    }

    /// A published HMAC-SHA1 test vector (RFC 2202, case 2), to show the
    /// primitive is the standard one.
    #[test]
    fn hmac_sha1_is_standard() {
        let mut mac = HmacSha1::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };

        let plain = EventKey::from_file(write("plain", KEY)).unwrap();
        assert_eq!(plain.as_bytes(), KEY);

        let mut with_newline = KEY.to_vec();
        with_newline.push(b'\n');
        assert_eq!(
            EventKey::from_file(write("newline", &with_newline)).unwrap(),
            plain
        );
        let mut with_crlf = KEY.to_vec();
        with_crlf.extend_from_slice(b"\r\n");
        assert_eq!(
            EventKey::from_file(write("crlf", &with_crlf)).unwrap(),
            plain
        );
        // Only one line ending goes; other whitespace stays.
        let mut two = KEY.to_vec();
        two.extend_from_slice(b"\n\n");
        assert_eq!(
            EventKey::from_file(write("two", &two)).unwrap().as_bytes(),
            &two[..two.len() - 1]
        );
        let spaced = EventKey::from_file(write("space", b"abc ")).unwrap();
        assert_eq!(spaced.as_bytes(), b"abc ");

        let error = EventKey::from_file(write("empty", b"")).unwrap_err();
        assert!(matches!(error, KeyError::EmptyFile { .. }), "{error}");
        assert!(error.to_string().contains("is empty"));
        let error = EventKey::from_file(write("nl", b"\n")).unwrap_err();
        assert!(matches!(error, KeyError::EmptyFile { .. }), "{error}");

        let largest = vec![b'k'; MAX_KEY_LENGTH];
        assert_eq!(
            EventKey::from_file(write("largest", &largest))
                .unwrap()
                .as_bytes()
                .len(),
            MAX_KEY_LENGTH
        );
        let too_big = vec![b'k'; MAX_KEY_LENGTH + 1];
        let error = EventKey::from_file(write("big", &too_big)).unwrap_err();
        assert!(matches!(error, KeyError::FileTooLarge { .. }), "{error}");
        assert!(error.to_string().contains("too big"));

        let missing = dir.path().join("missing");
        let error = EventKey::from_file(&missing).unwrap_err();
        assert!(matches!(error, KeyError::Unreadable { .. }));
        assert!(error.to_string().contains(&missing.display().to_string()));

        let error = EventKey::from_file(dir.path()).unwrap_err();
        assert!(matches!(error, KeyError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn key_from_bytes_limits_and_debug_hides_the_key() {
        assert!(matches!(
            EventKey::from_bytes(Vec::new()),
            Err(KeyError::Empty)
        ));
        assert!(matches!(
            EventKey::from_bytes(vec![1u8; MAX_KEY_LENGTH + 1]),
            Err(KeyError::TooLong { .. })
        ));
        let key = EventKey::from_bytes(KEY).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert_ne!(key.id(), EventKey::from_bytes(b"x".to_vec()).unwrap().id());
    }
}
