//! Elvin key blocks (docs/protocol.md §3.3) and the key rules of secure delivery (§8).
//!
//! A key block is a list of scheme entries. Elvin registers three SHA-1
//! schemes: dual (1, two key sets: producer then consumer), producer (2) and
//! consumer (3), one key set each. [`Keys`] keeps the entries exactly as
//! sent (order, repeated schemes, repeated keys), so a decoded block
//! re-encodes to the same bytes.
//!
//! Security is plain hashing: a public key is SHA-1 of the private key. On
//! receipt the router hashes the "private" side of every block
//! ([`Keys::to_public_for_notification`] and
//! [`Keys::to_public_for_subscription`]) so that all later comparisons are
//! public key against public key, done by [`keys_match`]. The router calls
//! `keys_match` for every candidate subscription of every notification, so it
//! allocates nothing and stops at the first hit.
//!
//! Entries are not merged per scheme: when a block lists a scheme twice,
//! matching treats the union of its sets, which is what a router that stores
//! one set per scheme would see.

use sha1::{Digest, Sha1};

use crate::error::DecodeErrorKind;
use crate::xdr::{self, Reader, XdrResult};

/// Scheme id of SHA-1 dual keys (a producer set and a consumer set).
pub const SCHEME_SHA1_DUAL: i32 = 1;
/// Scheme id of SHA-1 producer keys.
pub const SCHEME_SHA1_PRODUCER: i32 = 2;
/// Scheme id of SHA-1 consumer keys.
pub const SCHEME_SHA1_CONSUMER: i32 = 3;

/// Name advertised in the `Supported-Key-Schemes` connection option.
pub const SUPPORTED_KEY_SCHEMES: &str = "SHA-1";

/// Length of a SHA-1 public key.
pub const PUBLIC_KEY_LEN: usize = 20;

/// A set of keys, each a non-empty byte string.
pub type KeySet = Vec<Vec<u8>>;

/// The public key of a private key: its SHA-1 digest.
pub fn sha1_public_key(private_key: &[u8]) -> [u8; PUBLIC_KEY_LEN] {
    Sha1::digest(private_key).into()
}

fn hash_set(set: &[Vec<u8>]) -> KeySet {
    set.iter()
        .map(|key| sha1_public_key(key).to_vec())
        .collect()
}

/// The three SHA-1 key schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScheme {
    /// SHA-1 dual: producer and consumer sets (id 1).
    Sha1Dual,
    /// SHA-1 producer (id 2).
    Sha1Producer,
    /// SHA-1 consumer (id 3).
    Sha1Consumer,
}

impl KeyScheme {
    /// The scheme for a wire id, or `None` if unknown.
    pub fn from_id(id: i32) -> Option<KeyScheme> {
        match id {
            SCHEME_SHA1_DUAL => Some(KeyScheme::Sha1Dual),
            SCHEME_SHA1_PRODUCER => Some(KeyScheme::Sha1Producer),
            SCHEME_SHA1_CONSUMER => Some(KeyScheme::Sha1Consumer),
            _ => None,
        }
    }

    /// The wire id.
    pub fn id(self) -> i32 {
        match self {
            KeyScheme::Sha1Dual => SCHEME_SHA1_DUAL,
            KeyScheme::Sha1Producer => SCHEME_SHA1_PRODUCER,
            KeyScheme::Sha1Consumer => SCHEME_SHA1_CONSUMER,
        }
    }

    /// Number of key sets an entry of this scheme carries.
    pub fn set_count(self) -> i32 {
        match self {
            KeyScheme::Sha1Dual => 2,
            KeyScheme::Sha1Producer | KeyScheme::Sha1Consumer => 1,
        }
    }
}

/// One scheme entry of a key block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyEntry {
    /// SHA-1 dual: the producer set, then the consumer set.
    Dual {
        /// Producer keys (private on notifications, public on subscriptions).
        producer: KeySet,
        /// Consumer keys (public on notifications, private on subscriptions).
        consumer: KeySet,
    },
    /// SHA-1 producer keys.
    Producer(KeySet),
    /// SHA-1 consumer keys.
    Consumer(KeySet),
}

impl KeyEntry {
    /// The entry's scheme.
    pub fn scheme(&self) -> KeyScheme {
        match self {
            KeyEntry::Dual { .. } => KeyScheme::Sha1Dual,
            KeyEntry::Producer(_) => KeyScheme::Sha1Producer,
            KeyEntry::Consumer(_) => KeyScheme::Sha1Consumer,
        }
    }

    /// Number of keys in the entry, across its sets.
    pub fn key_count(&self) -> usize {
        match self {
            KeyEntry::Dual { producer, consumer } => producer.len() + consumer.len(),
            KeyEntry::Producer(set) | KeyEntry::Consumer(set) => set.len(),
        }
    }
}

/// A key block: scheme entries in wire order.
///
/// `Keys::default()` is the empty block and does not allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Keys {
    /// The entries, as sent.
    pub entries: Vec<KeyEntry>,
}

impl Keys {
    /// The empty key block.
    pub const fn new() -> Self {
        Keys {
            entries: Vec::new(),
        }
    }

    /// True when the block holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of keys across every entry and set, as counted against
    /// `Connection.Max-Keys` and `Subscription.Max-Keys`.
    pub fn key_count(&self) -> usize {
        self.entries.iter().map(KeyEntry::key_count).sum()
    }

    /// Decodes a key block. Unknown schemes, wrong set counts and empty keys
    /// are errors that name the scheme id.
    pub fn decode(reader: &mut Reader<'_>) -> XdrResult<Keys> {
        // Each entry is at least a scheme id and a set count.
        let count = reader.read_count(8)?;
        if count == 0 {
            return Ok(Keys::new());
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(decode_entry(reader)?);
        }
        Ok(Keys { entries })
    }

    /// Appends the key block's encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        xdr::put_count(out, self.entries.len());
        for entry in &self.entries {
            xdr::put_i32(out, entry.scheme().id());
            xdr::put_i32(out, entry.scheme().set_count());
            match entry {
                KeyEntry::Dual { producer, consumer } => {
                    encode_set(out, producer);
                    encode_set(out, consumer);
                }
                KeyEntry::Producer(set) | KeyEntry::Consumer(set) => encode_set(out, set),
            }
        }
    }

    /// Size of the key block's encoding.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .entries
            .iter()
            .map(|entry| {
                8 + match entry {
                    KeyEntry::Dual { producer, consumer } => set_len(producer) + set_len(consumer),
                    KeyEntry::Producer(set) | KeyEntry::Consumer(set) => set_len(set),
                }
            })
            .sum::<usize>()
    }

    /// The block as the router stores it for a notification (NotifyEmit,
    /// UNotify, connection notification keys): producer keys and the
    /// producer half of dual entries are private and get hashed; consumer
    /// keys are already public and are kept.
    pub fn to_public_for_notification(&self) -> Keys {
        let entries = self
            .entries
            .iter()
            .map(|entry| match entry {
                KeyEntry::Dual { producer, consumer } => KeyEntry::Dual {
                    producer: hash_set(producer),
                    consumer: consumer.clone(),
                },
                KeyEntry::Producer(set) => KeyEntry::Producer(hash_set(set)),
                KeyEntry::Consumer(set) => KeyEntry::Consumer(set.clone()),
            })
            .collect();
        Keys { entries }
    }

    /// The block as the router stores it for a subscription (SubAddRqst,
    /// SubModRqst, connection subscription keys): consumer keys and the
    /// consumer half of dual entries are private and get hashed; producer
    /// keys are already public and are kept.
    pub fn to_public_for_subscription(&self) -> Keys {
        let entries = self
            .entries
            .iter()
            .map(|entry| match entry {
                KeyEntry::Dual { producer, consumer } => KeyEntry::Dual {
                    producer: producer.clone(),
                    consumer: hash_set(consumer),
                },
                KeyEntry::Producer(set) => KeyEntry::Producer(set.clone()),
                KeyEntry::Consumer(set) => KeyEntry::Consumer(hash_set(set)),
            })
            .collect();
        Keys { entries }
    }

    /// Adds every key of `other` that this block does not already hold,
    /// scheme by scheme (and half by half for dual). Keys already present
    /// are ignored, as Elvin routers ignore adding an existing key.
    pub fn add_keys(&mut self, other: &Keys) {
        for entry in &other.entries {
            let scheme = entry.scheme();
            if !self.entries.iter().any(|e| e.scheme() == scheme) {
                self.entries.push(empty_entry(scheme));
            }
            let Some(target) = self.entries.iter_mut().find(|e| e.scheme() == scheme) else {
                continue;
            };
            match (target, entry) {
                (
                    KeyEntry::Dual { producer, consumer },
                    KeyEntry::Dual {
                        producer: p,
                        consumer: c,
                    },
                ) => {
                    add_missing(producer, p);
                    add_missing(consumer, c);
                }
                (KeyEntry::Producer(set), KeyEntry::Producer(add))
                | (KeyEntry::Consumer(set), KeyEntry::Consumer(add)) => add_missing(set, add),
                _ => {}
            }
        }
    }

    /// Removes every key of `other` from this block, scheme by scheme (and
    /// half by half for dual); keys not present are ignored. Entries left
    /// with no keys at all are dropped.
    pub fn remove_keys(&mut self, other: &Keys) {
        for entry in &other.entries {
            for target in self
                .entries
                .iter_mut()
                .filter(|e| e.scheme() == entry.scheme())
            {
                match (target, entry) {
                    (
                        KeyEntry::Dual { producer, consumer },
                        KeyEntry::Dual {
                            producer: p,
                            consumer: c,
                        },
                    ) => {
                        producer.retain(|k| !p.contains(k));
                        consumer.retain(|k| !c.contains(k));
                    }
                    (KeyEntry::Producer(set), KeyEntry::Producer(del))
                    | (KeyEntry::Consumer(set), KeyEntry::Consumer(del)) => {
                        set.retain(|k| !del.contains(k))
                    }
                    _ => {}
                }
            }
        }
        self.entries.retain(|e| e.key_count() > 0);
    }
}

fn empty_entry(scheme: KeyScheme) -> KeyEntry {
    match scheme {
        KeyScheme::Sha1Dual => KeyEntry::Dual {
            producer: Vec::new(),
            consumer: Vec::new(),
        },
        KeyScheme::Sha1Producer => KeyEntry::Producer(Vec::new()),
        KeyScheme::Sha1Consumer => KeyEntry::Consumer(Vec::new()),
    }
}

fn add_missing(set: &mut KeySet, add: &[Vec<u8>]) {
    for key in add {
        if !set.contains(key) {
            set.push(key.clone());
        }
    }
}

fn decode_entry(reader: &mut Reader<'_>) -> XdrResult<KeyEntry> {
    let scheme_id = reader.read_i32()?;
    let scheme =
        KeyScheme::from_id(scheme_id).ok_or(DecodeErrorKind::UnknownKeyScheme(scheme_id))?;
    let set_count = reader.read_i32()?;
    if set_count != scheme.set_count() {
        return Err(DecodeErrorKind::BadKeySetCount {
            scheme: scheme_id,
            expected: scheme.set_count(),
            count: set_count,
        });
    }
    Ok(match scheme {
        KeyScheme::Sha1Dual => {
            let producer = decode_set(reader, scheme_id)?;
            let consumer = decode_set(reader, scheme_id)?;
            KeyEntry::Dual { producer, consumer }
        }
        KeyScheme::Sha1Producer => KeyEntry::Producer(decode_set(reader, scheme_id)?),
        KeyScheme::Sha1Consumer => KeyEntry::Consumer(decode_set(reader, scheme_id)?),
    })
}

fn decode_set(reader: &mut Reader<'_>, scheme: i32) -> XdrResult<KeySet> {
    // The count is bounded by the 4-byte length word alone (not the 8 bytes
    // of the smallest valid key) so that an empty key is reported as such
    // rather than as a count that does not fit.
    reader.read_array(xdr::MIN_OPAQUE_LEN, |r| {
        let key = r.read_opaque()?;
        if key.is_empty() {
            return Err(DecodeErrorKind::EmptyKey { scheme });
        }
        Ok(key.to_vec())
    })
}

fn encode_set(out: &mut Vec<u8>, set: &[Vec<u8>]) {
    xdr::put_count(out, set.len());
    for key in set {
        xdr::put_opaque(out, key);
    }
}

fn set_len(set: &[Vec<u8>]) -> usize {
    4 + set
        .iter()
        .map(|k| xdr::opaque_encoded_len(k.len()))
        .sum::<usize>()
}

/// Which key sets of a block take part in a comparison.
#[derive(Clone, Copy)]
enum Half {
    Producer,
    Consumer,
}

/// The key sets of `keys` that belong to `scheme` and `half`: the single set
/// of producer/consumer entries, or one half of dual entries.
fn sets_of(keys: &Keys, scheme: KeyScheme, half: Half) -> impl Iterator<Item = &[Vec<u8>]> {
    keys.entries
        .iter()
        .filter_map(move |entry| match (entry, scheme, half) {
            (KeyEntry::Producer(set), KeyScheme::Sha1Producer, _) => Some(set.as_slice()),
            (KeyEntry::Consumer(set), KeyScheme::Sha1Consumer, _) => Some(set.as_slice()),
            (KeyEntry::Dual { producer, .. }, KeyScheme::Sha1Dual, Half::Producer) => {
                Some(producer.as_slice())
            }
            (KeyEntry::Dual { consumer, .. }, KeyScheme::Sha1Dual, Half::Consumer) => {
                Some(consumer.as_slice())
            }
            _ => None,
        })
}

/// True when some key of `a`'s sets equals some key of `b`'s sets.
fn intersects(a: &Keys, b: &Keys, scheme: KeyScheme, half: Half) -> bool {
    sets_of(a, scheme, half)
        .any(|set_a| sets_of(b, scheme, half).any(|set_b| sets_intersect(set_a, set_b)))
}

/// Below this many key pairs, comparing every pair is cheapest.
const PAIRWISE_LIMIT: usize = 64;

/// Whether two key sets share a key, in time linear in their sizes: a
/// client may hold a thousand keys and a notification carry as many, and
/// comparing every pair (a million comparisons per candidate subscription)
/// would let one publisher stall routing. Small sets are compared pairwise;
/// larger ones through a hash set of the smaller side.
fn sets_intersect(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    if a.len().saturating_mul(b.len()) <= PAIRWISE_LIMIT {
        return a.iter().any(|key| b.iter().any(|other| other == key));
    }
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let set: std::collections::HashSet<&[u8]> = small.iter().map(Vec::as_slice).collect();
    large.iter().any(|key| set.contains(key.as_slice()))
}

/// Secure-delivery match (docs/protocol.md §8.3): do the consumer keys (a subscription's
/// or a subscriber connection's, already public) match the producer keys (a
/// notification's or a producer connection's, already public)?
///
/// False when either block is empty. Otherwise true when any scheme present
/// in both matches: producer and consumer schemes need a common key; dual
/// needs a common producer key *and* a common consumer key.
pub fn keys_match(consumer: &Keys, producer: &Keys) -> bool {
    if consumer.is_empty() || producer.is_empty() {
        return false;
    }
    intersects(consumer, producer, KeyScheme::Sha1Producer, Half::Producer)
        || intersects(consumer, producer, KeyScheme::Sha1Consumer, Half::Consumer)
        || (intersects(consumer, producer, KeyScheme::Sha1Dual, Half::Producer)
            && intersects(consumer, producer, KeyScheme::Sha1Dual, Half::Consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn public(s: &str) -> Vec<u8> {
        sha1_public_key(s.as_bytes()).to_vec()
    }

    fn decode(bytes: &[u8]) -> XdrResult<Keys> {
        let mut r = Reader::new(bytes);
        let keys = Keys::decode(&mut r)?;
        r.finish()?;
        Ok(keys)
    }

    fn words(words: &[i32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn large_key_sets_intersect_in_linear_time_with_the_same_answer() {
        let many: Vec<Vec<u8>> = (0..20_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let others: Vec<Vec<u8>> = (20_000..40_000u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert!(!sets_intersect(&many, &others));
        let mut with_one = others.clone();
        with_one.push(7u32.to_be_bytes().to_vec());
        assert!(sets_intersect(&many, &with_one));
        assert!(sets_intersect(&with_one, &many));
        assert!(sets_intersect(&[k("a")], &[k("b"), k("a")]));
        assert!(!sets_intersect(&[k("a")], &[]));
    }

    #[test]
    fn sha1_of_a_known_string() {
        // SHA-1("abc") from FIPS 180-1.
        let expected = [
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
        ];
        assert_eq!(sha1_public_key(b"abc"), expected);
    }

    #[test]
    fn empty_block_is_one_zero_word_and_does_not_allocate() {
        let keys = decode(&[0, 0, 0, 0]).unwrap();
        assert!(keys.is_empty());
        assert_eq!(keys.entries.capacity(), 0);
        let mut out = Vec::new();
        keys.encode(&mut out);
        assert_eq!(out, [0, 0, 0, 0]);
        assert_eq!(keys.encoded_len(), 4);
    }

    #[test]
    fn block_round_trips_in_wire_order() {
        let keys = Keys {
            entries: vec![
                KeyEntry::Consumer(vec![k("c1")]),
                KeyEntry::Dual {
                    producer: vec![k("p"), k("p")],
                    consumer: vec![],
                },
                KeyEntry::Producer(vec![k("abcde")]),
                KeyEntry::Consumer(vec![k("c2")]),
            ],
        };
        let mut out = Vec::new();
        keys.encode(&mut out);
        assert_eq!(out.len(), keys.encoded_len());
        assert_eq!(decode(&out).unwrap(), keys);
        assert_eq!(keys.key_count(), 5);
    }

    #[test]
    fn producer_entry_has_the_documented_layout() {
        let keys = Keys {
            entries: vec![KeyEntry::Producer(vec![k("ab")])],
        };
        let mut out = Vec::new();
        keys.encode(&mut out);
        assert_eq!(out, [words(&[1, 2, 1, 1, 2]), b"ab\0\0".to_vec()].concat());
    }

    #[test]
    fn unknown_scheme_is_rejected_with_its_id() {
        assert_eq!(
            decode(&words(&[1, 4, 1, 0])),
            Err(DecodeErrorKind::UnknownKeyScheme(4))
        );
        assert_eq!(
            decode(&words(&[1, 0, 1, 0])),
            Err(DecodeErrorKind::UnknownKeyScheme(0))
        );
    }

    #[test]
    fn wrong_set_counts_are_rejected() {
        assert_eq!(
            decode(&words(&[1, 1, 1, 0])),
            Err(DecodeErrorKind::BadKeySetCount {
                scheme: 1,
                expected: 2,
                count: 1
            })
        );
        assert_eq!(
            decode(&words(&[1, 2, 2, 0, 0])),
            Err(DecodeErrorKind::BadKeySetCount {
                scheme: 2,
                expected: 1,
                count: 2
            })
        );
        assert_eq!(
            decode(&words(&[1, 3, 0])),
            Err(DecodeErrorKind::BadKeySetCount {
                scheme: 3,
                expected: 1,
                count: 0
            })
        );
    }

    #[test]
    fn empty_key_is_rejected_with_its_scheme() {
        assert_eq!(
            decode(&words(&[1, 3, 1, 1, 0])),
            Err(DecodeErrorKind::EmptyKey { scheme: 3 })
        );
        assert_eq!(
            decode(&words(&[1, 1, 2, 0, 1, 0])),
            Err(DecodeErrorKind::EmptyKey { scheme: 1 })
        );
    }

    #[test]
    fn huge_entry_count_fails_before_allocating() {
        assert!(matches!(
            decode(&words(&[0x7FFF_FFFF, 2, 1])),
            Err(DecodeErrorKind::CountPastEnd {
                count: 0x7FFF_FFFF,
                ..
            })
        ));
        assert!(matches!(
            decode(&words(&[1, 2, 1, 0x4000_0000, 0])),
            Err(DecodeErrorKind::CountPastEnd {
                count: 0x4000_0000,
                ..
            })
        ));
    }

    #[test]
    fn notification_hashing_hashes_the_producer_side_only() {
        let keys = Keys {
            entries: vec![
                KeyEntry::Producer(vec![k("secret")]),
                KeyEntry::Consumer(vec![k("already-public")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![k("c")],
                },
            ],
        };
        let hashed = keys.to_public_for_notification();
        assert_eq!(
            hashed.entries,
            vec![
                KeyEntry::Producer(vec![public("secret")]),
                KeyEntry::Consumer(vec![k("already-public")]),
                KeyEntry::Dual {
                    producer: vec![public("p")],
                    consumer: vec![k("c")]
                },
            ]
        );
    }

    #[test]
    fn subscription_hashing_hashes_the_consumer_side_only() {
        let keys = Keys {
            entries: vec![
                KeyEntry::Producer(vec![k("already-public")]),
                KeyEntry::Consumer(vec![k("secret")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![k("c")],
                },
            ],
        };
        let hashed = keys.to_public_for_subscription();
        assert_eq!(
            hashed.entries,
            vec![
                KeyEntry::Producer(vec![k("already-public")]),
                KeyEntry::Consumer(vec![public("secret")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![public("c")]
                },
            ]
        );
    }

    #[test]
    fn producer_scheme_matches_when_subscriber_knows_the_public_key() {
        // The producer attaches its private key; the consumer attaches the
        // producer's public key.
        let notification = Keys {
            entries: vec![KeyEntry::Producer(vec![k("alice")])],
        }
        .to_public_for_notification();
        let good = Keys {
            entries: vec![KeyEntry::Producer(vec![k("x"), public("alice")])],
        }
        .to_public_for_subscription();
        let bad = Keys {
            entries: vec![KeyEntry::Producer(vec![public("mallory")])],
        }
        .to_public_for_subscription();
        assert!(keys_match(&good, &notification));
        assert!(!keys_match(&bad, &notification));
        // A raw key on the subscription side is not the public key.
        let raw = Keys {
            entries: vec![KeyEntry::Producer(vec![k("alice")])],
        }
        .to_public_for_subscription();
        assert!(!keys_match(&raw, &notification));
    }

    #[test]
    fn consumer_scheme_matches_when_producer_names_the_consumer() {
        let notification = Keys {
            entries: vec![KeyEntry::Consumer(vec![public("bob")])],
        }
        .to_public_for_notification();
        let bob = Keys {
            entries: vec![KeyEntry::Consumer(vec![k("bob")])],
        }
        .to_public_for_subscription();
        let eve = Keys {
            entries: vec![KeyEntry::Consumer(vec![k("eve")])],
        }
        .to_public_for_subscription();
        assert!(keys_match(&bob, &notification));
        assert!(!keys_match(&eve, &notification));
    }

    #[test]
    fn dual_scheme_needs_both_halves() {
        let notification = Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![k("alice")],
                consumer: vec![public("bob")],
            }],
        }
        .to_public_for_notification();
        let both = Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![public("alice")],
                consumer: vec![k("bob")],
            }],
        }
        .to_public_for_subscription();
        let producer_only = Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![public("alice")],
                consumer: vec![k("eve")],
            }],
        }
        .to_public_for_subscription();
        let consumer_only = Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![public("mallory")],
                consumer: vec![k("bob")],
            }],
        }
        .to_public_for_subscription();
        assert!(keys_match(&both, &notification));
        assert!(!keys_match(&producer_only, &notification));
        assert!(!keys_match(&consumer_only, &notification));
    }

    #[test]
    fn empty_collections_never_match() {
        let some = Keys {
            entries: vec![KeyEntry::Producer(vec![k("a")])],
        };
        assert!(!keys_match(&Keys::new(), &some));
        assert!(!keys_match(&some, &Keys::new()));
        assert!(!keys_match(&Keys::new(), &Keys::new()));
    }

    #[test]
    fn keys_under_different_schemes_do_not_match() {
        let producer = Keys {
            entries: vec![KeyEntry::Producer(vec![k("same")])],
        };
        let consumer = Keys {
            entries: vec![KeyEntry::Consumer(vec![k("same")])],
        };
        assert!(!keys_match(&consumer, &producer));
        assert!(!keys_match(&producer, &consumer));
    }

    #[test]
    fn any_common_scheme_is_enough() {
        let notification = Keys {
            entries: vec![
                KeyEntry::Consumer(vec![k("c")]),
                KeyEntry::Producer(vec![k("p")]),
            ],
        };
        let subscription = Keys {
            entries: vec![
                KeyEntry::Consumer(vec![k("other")]),
                KeyEntry::Producer(vec![k("p")]),
            ],
        };
        assert!(keys_match(&subscription, &notification));
    }

    #[test]
    fn repeated_scheme_entries_act_as_one_union() {
        let notification = Keys {
            entries: vec![
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![],
                },
                KeyEntry::Dual {
                    producer: vec![],
                    consumer: vec![k("c")],
                },
            ],
        };
        let subscription = Keys {
            entries: vec![KeyEntry::Dual {
                producer: vec![k("p")],
                consumer: vec![k("c")],
            }],
        };
        assert!(keys_match(&subscription, &notification));
    }

    #[test]
    fn add_and_remove_ignore_existing_and_missing_keys() {
        let mut keys = Keys {
            entries: vec![KeyEntry::Producer(vec![k("a")])],
        };
        keys.add_keys(&Keys {
            entries: vec![
                KeyEntry::Producer(vec![k("a"), k("b")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![],
                },
            ],
        });
        assert_eq!(
            keys.entries,
            vec![
                KeyEntry::Producer(vec![k("a"), k("b")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![]
                },
            ]
        );
        keys.remove_keys(&Keys {
            entries: vec![
                KeyEntry::Producer(vec![k("a"), k("zzz")]),
                KeyEntry::Dual {
                    producer: vec![k("p")],
                    consumer: vec![],
                },
                KeyEntry::Consumer(vec![k("nothing")]),
            ],
        });
        assert_eq!(keys.entries, vec![KeyEntry::Producer(vec![k("b")])]);
    }
}
