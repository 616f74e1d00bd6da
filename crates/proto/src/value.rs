//! Typed attribute values and attribute lists.
//!
//! Elvin has exactly five value types (docs/protocol.md §3.1): int32, int64, real64,
//! string and opaque. There is no boolean and no null. [`Value`] owns its
//! data and is what clients build and keep; [`ValueRef`] borrows from a
//! decoded frame and is what the router evaluates subscriptions against, so
//! that routing a notification never copies its strings.
//!
//! [`Attributes`] is a notification's name/value list. Names are
//! case-sensitive; a name appears at most once (inserting an existing name
//! replaces its value, as Avis keeps the last of duplicate names). Order is
//! insertion order, which Elvin does not promise to preserve on delivery.

use std::fmt;

/// The wire type code of a [`Value`] (docs/protocol.md §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ValueType {
    /// A 32-bit signed integer.
    Int32 = 1,
    /// A 64-bit signed integer.
    Int64 = 2,
    /// An IEEE 754 double.
    Real64 = 3,
    /// A UTF-8 string.
    String = 4,
    /// An opaque byte array.
    Opaque = 5,
}

impl ValueType {
    /// The type for a wire type code, or `None` for an unknown code.
    pub fn from_code(code: i32) -> Option<ValueType> {
        Some(match code {
            1 => ValueType::Int32,
            2 => ValueType::Int64,
            3 => ValueType::Real64,
            4 => ValueType::String,
            5 => ValueType::Opaque,
            _ => return None,
        })
    }

    /// The wire type code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The lower-case name used in messages and in the subscription
    /// language's type predicates (`int32`, `int64`, `real64`, `string`,
    /// `opaque`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int32 => "int32",
            ValueType::Int64 => "int64",
            ValueType::Real64 => "real64",
            ValueType::String => "string",
            ValueType::Opaque => "opaque",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An owned attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A 32-bit signed integer.
    Int32(i32),
    /// A 64-bit signed integer.
    Int64(i64),
    /// An IEEE 754 double.
    Real64(f64),
    /// A UTF-8 string.
    String(String),
    /// An opaque byte array.
    Opaque(Vec<u8>),
}

impl Value {
    /// The value's wire type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Int32(_) => ValueType::Int32,
            Value::Int64(_) => ValueType::Int64,
            Value::Real64(_) => ValueType::Real64,
            Value::String(_) => ValueType::String,
            Value::Opaque(_) => ValueType::Opaque,
        }
    }

    /// A borrowed view of this value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Int32(v) => ValueRef::Int32(*v),
            Value::Int64(v) => ValueRef::Int64(*v),
            Value::Real64(v) => ValueRef::Real64(*v),
            Value::String(s) => ValueRef::String(s),
            Value::Opaque(b) => ValueRef::Opaque(b),
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The int32, if this is an int32 value.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int32(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is an opaque value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Opaque(b) => Some(b),
            _ => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real64(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Opaque(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Opaque(v.to_vec())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

/// A value borrowed from a decoded frame or from an owned [`Value`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// A 32-bit signed integer.
    Int32(i32),
    /// A 64-bit signed integer.
    Int64(i64),
    /// An IEEE 754 double.
    Real64(f64),
    /// A UTF-8 string, borrowed.
    String(&'a str),
    /// An opaque byte array, borrowed.
    Opaque(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The value's wire type.
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::Int32(_) => ValueType::Int32,
            ValueRef::Int64(_) => ValueType::Int64,
            ValueRef::Real64(_) => ValueType::Real64,
            ValueRef::String(_) => ValueType::String,
            ValueRef::Opaque(_) => ValueType::Opaque,
        }
    }

    /// Copies the value into an owned [`Value`].
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::Int32(v) => Value::Int32(v),
            ValueRef::Int64(v) => Value::Int64(v),
            ValueRef::Real64(v) => Value::Real64(v),
            ValueRef::String(s) => Value::String(s.to_owned()),
            ValueRef::Opaque(b) => Value::Opaque(b.to_vec()),
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Human-readable rendering, as a subscription-language literal where one
/// exists: `42`, `42L`, `1.5`, `"text"`, and opaque bytes as `[0a ff]`.
impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Int32(v) => write!(f, "{v}"),
            ValueRef::Int64(v) => write!(f, "{v}L"),
            ValueRef::Real64(v) => write!(f, "{v:?}"),
            ValueRef::String(s) => write!(f, "{s:?}"),
            ValueRef::Opaque(b) => {
                f.write_str("[")?;
                for (i, byte) in b.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A notification's attributes: a list of unique names with their values,
/// in insertion order.
///
/// Lookups are linear scans. Notifications carry a dozen or so attributes,
/// where a scan of a small vector beats hashing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    entries: Vec<(String, Value)>,
}

impl Attributes {
    /// An empty attribute list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` attributes.
    pub fn with_capacity(n: usize) -> Self {
        Attributes {
            entries: Vec::with_capacity(n),
        }
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The string value of `name`, if present and a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The int32 value of `name`, if present and an int32.
    pub fn get_i32(&self, name: &str) -> Option<i32> {
        self.get(name).and_then(Value::as_i32)
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing (in place) any earlier value.
    /// Returns the earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let name = name.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(pos).1)
    }

    /// The attributes in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl<N: Into<String>, V: Into<Value>> FromIterator<(N, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut attrs = Attributes::new();
        for (n, v) in iter {
            attrs.insert(n, v);
        }
        attrs
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a str, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// Attribute lookup by name, over owned or borrowed attribute lists.
///
/// The subscription evaluator is written against this trait so that the
/// router can evaluate a borrowed, zero-copy view of a frame and a client
/// can evaluate an owned [`Attributes`].
pub trait AttributeLookup {
    /// The value of `name`, if present.
    fn lookup(&self, name: &str) -> Option<ValueRef<'_>>;
}

impl AttributeLookup for Attributes {
    fn lookup(&self, name: &str) -> Option<ValueRef<'_>> {
        self.get(name).map(Value::as_ref)
    }
}

/// A borrowed attribute list, as decoded from a frame without copying.
/// Duplicate names are resolved on lookup: the last occurrence wins, as in
/// Avis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttributesRef<'a> {
    /// The attributes in wire order, duplicates included.
    pub entries: Vec<(&'a str, ValueRef<'a>)>,
}

impl<'a> AttributesRef<'a> {
    /// The value of `name`, if present (the last one if repeated).
    pub fn get(&self, name: &str) -> Option<ValueRef<'a>> {
        self.entries
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// Copies into an owned [`Attributes`] (the last of repeated names wins,
    /// kept at the position of the first).
    ///
    /// Runs in linear time whatever the input: a hostile frame can carry
    /// over 100,000 attributes, where de-duplicating by repeated linear
    /// scans would take seconds.
    pub fn to_owned(&self) -> Attributes {
        /// Below this many entries a linear scan beats hashing.
        const HASH_THRESHOLD: usize = 16;
        if self.entries.len() <= HASH_THRESHOLD {
            let mut attrs = Attributes::with_capacity(self.entries.len());
            for (n, v) in &self.entries {
                attrs.insert(*n, v.to_owned());
            }
            return attrs;
        }
        let mut positions: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(self.entries.len());
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(self.entries.len());
        for (name, value) in &self.entries {
            match positions.get(name) {
                Some(&index) => {
                    if let Some(slot) = entries.get_mut(index) {
                        slot.1 = value.to_owned();
                    }
                }
                None => {
                    positions.insert(name, entries.len());
                    entries.push(((*name).to_owned(), value.to_owned()));
                }
            }
        }
        Attributes { entries }
    }

    /// Whether some name occurs more than once. Linear time, and cheap in
    /// the common case (every notification the router forwards asks): a
    /// 256-bit fingerprint of each name's length and end bytes proves most
    /// lists duplicate-free without comparing names; a fingerprint
    /// collision falls back to an exact check.
    pub fn has_duplicate_names(&self) -> bool {
        let mut seen = [0u64; 4];
        let mut collision = false;
        for (name, _) in &self.entries {
            let bytes = name.as_bytes();
            let at = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
            let len = bytes.len();
            let key = len as u64 | at(0) << 8 | at(len / 2) << 16 | at(len.wrapping_sub(1)) << 24;
            let bit = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if seen[word] & mask != 0 {
                collision = true;
                break;
            }
            seen[word] |= mask;
        }
        if !collision {
            return false;
        }
        const SCAN_LIMIT: usize = 16;
        let n = self.entries.len();
        if n <= SCAN_LIMIT {
            return (1..n).any(|i| {
                self.entries[..i]
                    .iter()
                    .any(|(m, _)| *m == self.entries[i].0)
            });
        }
        let mut names = std::collections::HashSet::with_capacity(n);
        !self.entries.iter().all(|(name, _)| names.insert(*name))
    }

    /// The encoded attribute list with one entry per name, the last value
    /// of a repeated name at the position of its first occurrence, or
    /// `None` when no name repeats (then the received bytes can be
    /// forwarded as they are). This is what the router delivers, so a
    /// subscriber sees the values the router matched on.
    pub fn deduplicated_encoding(&self) -> Option<Vec<u8>> {
        if !self.has_duplicate_names() {
            return None;
        }
        let owned = self.to_owned();
        let mut out = Vec::new();
        crate::xdr::put_count(&mut out, owned.len());
        for (name, value) in owned.iter() {
            crate::xdr::put_str(&mut out, name);
            crate::xdr::put_value(&mut out, value.as_ref());
        }
        Some(out)
    }
}

/// A borrowed attribute list with hashed lookup, for notifications too
/// large to scan once per name a subscription asks for (a hostile client
/// can send 100,000 attributes to subscriptions that each `require()` a
/// hundred names). Built once per notification; the last of a repeated
/// name wins, as in [`AttributesRef::get`]. The hasher is std's (keyed),
/// so crafted names cannot force collisions.
#[derive(Clone, Debug, Default)]
pub struct HashedAttributes<'a> {
    map: std::collections::HashMap<&'a str, ValueRef<'a>>,
}

impl<'a> HashedAttributes<'a> {
    /// Indexes `attributes`.
    pub fn new(attributes: &AttributesRef<'a>) -> Self {
        let mut map = std::collections::HashMap::with_capacity(attributes.entries.len());
        for (name, value) in &attributes.entries {
            map.insert(*name, *value);
        }
        HashedAttributes { map }
    }
}

impl AttributeLookup for HashedAttributes<'_> {
    fn lookup(&self, name: &str) -> Option<ValueRef<'_>> {
        self.map.get(name).copied()
    }
}

/// How the router looks attributes up in one notification: scanning the
/// list for the usual dozen attributes, hashing beyond
/// [`HASHED_LOOKUP_THRESHOLD`].
#[derive(Clone, Debug)]
pub enum NotificationLookup<'n, 'a> {
    /// A short list, scanned.
    Scan(&'n AttributesRef<'a>),
    /// A long list, hashed once.
    Hashed(HashedAttributes<'a>),
}

/// Above this many attributes, lookups go through a hash map.
pub const HASHED_LOOKUP_THRESHOLD: usize = 32;

impl<'n, 'a> NotificationLookup<'n, 'a> {
    /// The lookup suited to `attributes`' size.
    pub fn new(attributes: &'n AttributesRef<'a>) -> Self {
        if attributes.entries.len() > HASHED_LOOKUP_THRESHOLD {
            NotificationLookup::Hashed(HashedAttributes::new(attributes))
        } else {
            NotificationLookup::Scan(attributes)
        }
    }
}

impl AttributeLookup for NotificationLookup<'_, '_> {
    fn lookup(&self, name: &str) -> Option<ValueRef<'_>> {
        match self {
            NotificationLookup::Scan(attributes) => attributes.get(name),
            NotificationLookup::Hashed(hashed) => hashed.lookup(name),
        }
    }
}

impl AttributeLookup for AttributesRef<'_> {
    fn lookup(&self, name: &str) -> Option<ValueRef<'_>> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_encode_once_with_the_last_value() {
        let unique = AttributesRef {
            entries: vec![("A", ValueRef::Int32(1)), ("B", ValueRef::String("x"))],
        };
        assert!(!unique.has_duplicate_names());
        assert_eq!(unique.deduplicated_encoding(), None);
        let repeated = AttributesRef {
            entries: vec![
                ("A", ValueRef::Int32(1)),
                ("B", ValueRef::String("x")),
                ("A", ValueRef::Int32(2)),
            ],
        };
        assert!(repeated.has_duplicate_names());
        let bytes = repeated.deduplicated_encoding().unwrap();
        let mut expected = Vec::new();
        crate::xdr::put_count(&mut expected, 2);
        crate::xdr::put_str(&mut expected, "A");
        crate::xdr::put_value(&mut expected, ValueRef::Int32(2));
        crate::xdr::put_str(&mut expected, "B");
        crate::xdr::put_value(&mut expected, ValueRef::String("x"));
        assert_eq!(bytes, expected);
        // Many entries take the hashed path.
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let mut many = AttributesRef {
            entries: names
                .iter()
                .map(|n| (n.as_str(), ValueRef::Int32(0)))
                .collect(),
        };
        assert!(!many.has_duplicate_names());
        many.entries.push(("n7", ValueRef::Int32(9)));
        assert!(many.has_duplicate_names());
    }

    #[test]
    fn hashed_lookup_agrees_with_the_scan_and_the_last_value_wins() {
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let mut entries: Vec<(&str, ValueRef<'_>)> = names
            .iter()
            .map(|n| (n.as_str(), ValueRef::Int32(1)))
            .collect();
        entries.push(("n3", ValueRef::Int32(7)));
        let attrs = AttributesRef { entries };
        let lookup = NotificationLookup::new(&attrs);
        assert!(matches!(lookup, NotificationLookup::Hashed(_)));
        assert_eq!(lookup.lookup("n3"), Some(ValueRef::Int32(7)));
        assert_eq!(lookup.lookup("n3"), attrs.get("n3"));
        assert_eq!(lookup.lookup("n99"), Some(ValueRef::Int32(1)));
        assert_eq!(lookup.lookup("missing"), None);
        let small = AttributesRef {
            entries: vec![("a", ValueRef::Int32(1))],
        };
        assert!(matches!(
            NotificationLookup::new(&small),
            NotificationLookup::Scan(_)
        ));
    }

    #[test]
    fn insert_replaces_in_place() {
        let mut a = Attributes::new();
        a.insert("A", 1);
        a.insert("B", "x");
        assert_eq!(a.insert("A", 2i64), Some(Value::Int32(1)));
        let names: Vec<_> = a.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(a.get("A"), Some(&Value::Int64(2)));
        assert_eq!(a.remove("A"), Some(Value::Int64(2)));
        assert!(!a.contains("A"));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn borrowed_lookup_takes_last_duplicate() {
        let r = AttributesRef {
            entries: vec![("A", ValueRef::Int32(1)), ("A", ValueRef::Int32(2))],
        };
        assert_eq!(r.lookup("A"), Some(ValueRef::Int32(2)));
        assert_eq!(r.to_owned().len(), 1);
        assert_eq!(r.lookup("B"), None);
    }

    #[test]
    fn large_borrowed_lists_dedupe_like_small_ones() {
        let names: Vec<String> = (0..100).map(|i| format!("n{}", i % 40)).collect();
        let r = AttributesRef {
            entries: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), ValueRef::Int32(i as i32)))
                .collect(),
        };
        let owned = r.to_owned();
        assert_eq!(owned.len(), 40);
        // First-occurrence order, last value.
        let first: Vec<_> = owned
            .iter()
            .take(2)
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect();
        assert_eq!(
            first,
            [
                ("n0".to_owned(), Value::Int32(80)),
                ("n1".to_owned(), Value::Int32(81))
            ]
        );
        assert_eq!(owned.get("n39"), Some(&Value::Int32(79)));
    }

    #[test]
    fn display_is_literal_like() {
        assert_eq!(Value::Int32(5).to_string(), "5");
        assert_eq!(Value::Int64(5).to_string(), "5L");
        assert_eq!(Value::Real64(1.0).to_string(), "1.0");
        assert_eq!(Value::from("a\"b").to_string(), "\"a\\\"b\"");
        assert_eq!(Value::Opaque(vec![0x0a, 0xff]).to_string(), "[0a ff]");
    }
}
