//! XDR primitives: a bounds-checked reader over a frame and writers that
//! append to a `Vec<u8>`.
//!
//! Elvin marshals everything as XDR (RFC 1832): big-endian, every item padded
//! to a multiple of 4 bytes. The reader is the only code in this crate that
//! touches raw frame bytes, so all bounds checking lives here:
//!
//! - every read checks the bytes remaining first and fails with a typed
//!   [`DecodeErrorKind`] instead of panicking;
//! - strings and opaques are returned as slices borrowed from the frame
//!   (no copy), strings after UTF-8 validation;
//! - an element count is checked against the bytes remaining *before* any
//!   vector is reserved, using the smallest encoded size an element can
//!   have, so a hostile count (say 2^31 with 8 bytes left) fails at once and
//!   memory stays proportional to the frame size;
//! - padding bytes are skipped without being checked (as other Elvin
//!   implementations do) and written as zeros.
//!
//! The writers never fail. Lengths are written as XDR's signed 32-bit
//! count; an item longer than `i32::MAX` bytes cannot be represented, which
//! is why packet encoders are checked against `Packet.Max-Length` (at most
//! `i32::MAX`) before encoding.

use crate::error::DecodeErrorKind;
use crate::value::{AttributesRef, Value, ValueRef, ValueType};

/// Result of an XDR read.
pub(crate) type XdrResult<T> = Result<T, DecodeErrorKind>;

/// Smallest encoding of a typed value: a type code and a 4-byte payload.
pub(crate) const MIN_VALUE_LEN: usize = 8;
/// Smallest encoding of a name/value pair: an empty name and a value.
pub const MIN_NAME_VALUE_LEN: usize = 4 + MIN_VALUE_LEN;
/// Smallest encoding of a string or opaque (its length word).
pub(crate) const MIN_OPAQUE_LEN: usize = 4;

/// Number of zero bytes that follow an item of `len` bytes to reach a
/// multiple of 4.
#[inline]
pub(crate) const fn padding(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

/// Encoded size of a string or opaque of `len` bytes: the length word, the
/// bytes and their padding.
#[inline]
pub(crate) const fn opaque_encoded_len(len: usize) -> usize {
    4 + len + padding(len)
}

/// A cursor over XDR bytes that never reads past the end.
///
/// Offsets reported in errors are relative to the start of the slice the
/// reader was created over (for packets: the body, starting at the packet
/// id), which is what Nack BAD_UTF8 expects.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The bytes from `start` (an earlier [`position`](Self::position)) up
    /// to the current position.
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    /// Succeeds only if every byte has been read: XDR packets must be
    /// consumed exactly.
    pub fn finish(&self) -> XdrResult<()> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(DecodeErrorKind::LeftoverBytes(left)),
        }
    }

    /// Takes the next `n` bytes.
    #[inline]
    fn take(&mut self, n: usize) -> XdrResult<&'a [u8]> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeErrorKind::Truncated {
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos = start + n;
        self.buf
            .get(start..self.pos)
            .ok_or(DecodeErrorKind::Truncated {
                offset: start,
                needed: n,
                available,
            })
    }

    /// Takes the next `N` bytes as an array.
    #[inline]
    fn take_array<const N: usize>(&mut self) -> XdrResult<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads a big-endian int32.
    #[inline]
    pub fn read_i32(&mut self) -> XdrResult<i32> {
        Ok(i32::from_be_bytes(self.take_array()?))
    }

    /// Reads a big-endian unsigned 32-bit word.
    #[inline]
    pub fn read_u32(&mut self) -> XdrResult<u32> {
        Ok(u32::from_be_bytes(self.take_array()?))
    }

    /// Reads a big-endian int64 (XDR hyper).
    #[inline]
    pub fn read_i64(&mut self) -> XdrResult<i64> {
        Ok(i64::from_be_bytes(self.take_array()?))
    }

    /// Reads a big-endian IEEE-754 double, bit for bit (NaN payloads and
    /// -0.0 survive).
    #[inline]
    pub fn read_f64(&mut self) -> XdrResult<f64> {
        Ok(f64::from_bits(u64::from_be_bytes(self.take_array()?)))
    }

    /// Reads an XDR boolean: exactly 0 or 1, anything else is an error.
    #[inline]
    pub fn read_bool(&mut self) -> XdrResult<bool> {
        match self.read_i32()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeErrorKind::BadBool(other)),
        }
    }

    /// Reads a variable-length opaque and returns the bytes (without
    /// padding), borrowed from the buffer.
    #[inline]
    pub fn read_opaque(&mut self) -> XdrResult<&'a [u8]> {
        let offset = self.pos;
        let length = self.read_i32()?;
        let length = usize::try_from(length)
            .map_err(|_| DecodeErrorKind::NegativeLength { offset, length })?;
        let available = self.remaining();
        let padded = length.saturating_add(padding(length));
        if padded > available {
            return Err(DecodeErrorKind::LengthPastEnd {
                offset,
                length,
                available,
            });
        }
        let with_padding = self.take(padded)?;
        Ok(with_padding.get(..length).unwrap_or(with_padding))
    }

    /// Reads a string: like an opaque, but the bytes must be UTF-8.
    #[inline]
    pub fn read_str(&mut self) -> XdrResult<&'a str> {
        let start = self.pos + 4;
        let bytes = self.read_opaque()?;
        std::str::from_utf8(bytes).map_err(|e| DecodeErrorKind::BadUtf8 {
            offset: start + e.valid_up_to(),
        })
    }

    /// Reads an element count and checks that `count` elements of at least
    /// `min_element_len` bytes each can fit in what remains, so the caller
    /// can reserve `count` slots without trusting the peer.
    pub fn read_count(&mut self, min_element_len: usize) -> XdrResult<usize> {
        let offset = self.pos;
        let count = self.read_i32()?;
        let count =
            usize::try_from(count).map_err(|_| DecodeErrorKind::NegativeCount { offset, count })?;
        let available = self.remaining();
        let fits = match count.checked_mul(min_element_len.max(1)) {
            Some(needed) => needed <= available,
            None => false,
        };
        if !fits {
            return Err(DecodeErrorKind::CountPastEnd {
                offset,
                count,
                available,
            });
        }
        Ok(count)
    }

    /// Reads a counted array, decoding each element with `element`.
    /// `min_element_len` is the smallest encoded size of one element (at
    /// least 4 for every XDR type), used to reject impossible counts before
    /// allocating.
    pub fn read_array<T>(
        &mut self,
        min_element_len: usize,
        mut element: impl FnMut(&mut Self) -> XdrResult<T>,
    ) -> XdrResult<Vec<T>> {
        let count = self.read_count(min_element_len)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(element(self)?);
        }
        Ok(items)
    }

    /// Reads an int64 array.
    pub fn read_i64_array(&mut self) -> XdrResult<Vec<i64>> {
        self.read_array(8, Self::read_i64)
    }

    /// Reads a string array, borrowing each string.
    pub fn read_str_array(&mut self) -> XdrResult<Vec<&'a str>> {
        self.read_array(MIN_OPAQUE_LEN, Self::read_str)
    }

    /// Reads a typed value (type code, then payload), borrowing strings and
    /// opaques from the buffer.
    #[inline]
    pub fn read_value(&mut self) -> XdrResult<ValueRef<'a>> {
        let code = self.read_i32()?;
        match ValueType::from_code(code) {
            Some(ValueType::Int32) => Ok(ValueRef::Int32(self.read_i32()?)),
            Some(ValueType::Int64) => Ok(ValueRef::Int64(self.read_i64()?)),
            Some(ValueType::Real64) => Ok(ValueRef::Real64(self.read_f64()?)),
            Some(ValueType::String) => Ok(ValueRef::String(self.read_str()?)),
            Some(ValueType::Opaque) => Ok(ValueRef::Opaque(self.read_opaque()?)),
            None => Err(DecodeErrorKind::UnknownValueType(code)),
        }
    }

    /// Reads the payload of a value whose type is already known (as in
    /// subscription-tree leaves, where the type is carried separately).
    pub fn read_value_of_type(&mut self, value_type: ValueType) -> XdrResult<ValueRef<'a>> {
        Ok(match value_type {
            ValueType::Int32 => ValueRef::Int32(self.read_i32()?),
            ValueType::Int64 => ValueRef::Int64(self.read_i64()?),
            ValueType::Real64 => ValueRef::Real64(self.read_f64()?),
            ValueType::String => ValueRef::String(self.read_str()?),
            ValueType::Opaque => ValueRef::Opaque(self.read_opaque()?),
        })
    }

    /// Reads an array of typed values (Nack arguments), copying them out.
    pub fn read_values(&mut self) -> XdrResult<Vec<Value>> {
        self.read_array(MIN_VALUE_LEN, |r| r.read_value().map(|v| v.to_owned()))
    }

    /// Reads a name/value list, borrowing names and values. Duplicate names
    /// are kept in wire order; [`AttributesRef::get`] resolves them (last
    /// wins).
    pub fn read_attributes_ref(&mut self) -> XdrResult<AttributesRef<'a>> {
        let entries = self.read_array(MIN_NAME_VALUE_LEN, |r| {
            let name = r.read_str()?;
            let value = r.read_value()?;
            Ok((name, value))
        })?;
        Ok(AttributesRef { entries })
    }
}

/// Converts an in-memory length to XDR's signed length word.
///
/// Lengths above `i32::MAX` cannot be represented. Such an item is larger
/// than any `Packet.Max-Length`, so senders that check `encoded_len()`
/// first (as `Packet::try_encode` does) never get here with one; the
/// writer saturates rather than panicking, and the receiver will reject the
/// frame.
fn wire_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Appends a big-endian int32.
#[inline]
pub fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian unsigned 32-bit word.
#[inline]
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian int64.
#[inline]
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian IEEE-754 double, bit for bit.
#[inline]
pub(crate) fn put_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_bits().to_be_bytes());
}

/// Appends an XDR boolean (1 or 0).
#[inline]
pub fn put_bool(out: &mut Vec<u8>, value: bool) {
    put_i32(out, i32::from(value));
}

/// Appends an element count.
#[inline]
pub fn put_count(out: &mut Vec<u8>, count: usize) {
    put_i32(out, wire_len(count));
}

/// Appends a variable-length opaque: length, bytes, zero padding.
#[inline]
pub fn put_opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    put_i32(out, wire_len(bytes.len()));
    out.extend_from_slice(bytes);
    out.extend_from_slice(&[0u8; 3][..padding(bytes.len())]);
}

/// Appends a string: length, UTF-8 bytes, zero padding.
#[inline]
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_opaque(out, text.as_bytes());
}

/// Appends an int64 array.
#[inline]
pub(crate) fn put_i64_array(out: &mut Vec<u8>, items: &[i64]) {
    put_count(out, items.len());
    for item in items {
        put_i64(out, *item);
    }
}

/// Encoded size of an int64 array.
pub(crate) fn i64_array_len(items: &[i64]) -> usize {
    4 + 8 * items.len()
}

/// Appends a string array.
pub(crate) fn put_str_array<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    put_count(out, items.len());
    for item in items {
        put_str(out, item.as_ref());
    }
}

/// Encoded size of a string array.
pub(crate) fn str_array_len<S: AsRef<str>>(items: &[S]) -> usize {
    4 + items
        .iter()
        .map(|s| opaque_encoded_len(s.as_ref().len()))
        .sum::<usize>()
}

/// Appends a value's payload without its type code.
pub(crate) fn put_value_payload(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Int32(v) => put_i32(out, v),
        ValueRef::Int64(v) => put_i64(out, v),
        ValueRef::Real64(v) => put_f64(out, v),
        ValueRef::String(s) => put_str(out, s),
        ValueRef::Opaque(b) => put_opaque(out, b),
    }
}

/// Encoded size of a value's payload without its type code.
pub(crate) fn value_payload_len(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Int32(_) => 4,
        ValueRef::Int64(_) | ValueRef::Real64(_) => 8,
        ValueRef::String(s) => opaque_encoded_len(s.len()),
        ValueRef::Opaque(b) => opaque_encoded_len(b.len()),
    }
}

/// Appends a typed value: type code, then payload.
pub fn put_value(out: &mut Vec<u8>, value: ValueRef<'_>) {
    put_i32(out, value.value_type().code());
    put_value_payload(out, value);
}

/// Encoded size of a typed value.
pub(crate) fn value_len(value: ValueRef<'_>) -> usize {
    4 + value_payload_len(value)
}

/// Appends an array of typed values.
pub(crate) fn put_values(out: &mut Vec<u8>, values: &[Value]) {
    put_count(out, values.len());
    for value in values {
        put_value(out, value.as_ref());
    }
}

/// Encoded size of an array of typed values.
pub(crate) fn values_len(values: &[Value]) -> usize {
    4 + values.iter().map(|v| value_len(v.as_ref())).sum::<usize>()
}

/// Appends a name/value list from any sequence of pairs.
pub fn put_name_values<'v, I>(out: &mut Vec<u8>, entries: I)
where
    I: IntoIterator<Item = (&'v str, ValueRef<'v>)>,
    I::IntoIter: ExactSizeIterator,
{
    let entries = entries.into_iter();
    put_count(out, entries.len());
    for (name, value) in entries {
        put_str(out, name);
        put_value(out, value);
    }
}

/// Encoded size of a name/value list.
pub fn name_values_len<'v, I>(entries: I) -> usize
where
    I: IntoIterator<Item = (&'v str, ValueRef<'v>)>,
{
    4 + entries
        .into_iter()
        .map(|(name, value)| opaque_encoded_len(name.len()) + value_len(value))
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_string_examples_both_ways() {
        for (text, wire) in [
            ("", "00000000"),
            ("abc", "00000003 61626300"),
            ("abcd", "00000004 61626364"),
        ] {
            let mut out = Vec::new();
            put_str(&mut out, text);
            assert_eq!(out, hex(wire), "encoding {text:?}");
            assert_eq!(opaque_encoded_len(text.len()), out.len());
            let mut r = Reader::new(&out);
            assert_eq!(r.read_str().unwrap(), text);
            r.finish().unwrap();
        }
    }

    #[test]
    fn spec_opaque_example_both_ways() {
        let wire = hex("00000005 01020304 05000000");
        let mut out = Vec::new();
        put_opaque(&mut out, &[1, 2, 3, 4, 5]);
        assert_eq!(out, wire);
        let mut r = Reader::new(&wire);
        assert_eq!(r.read_opaque().unwrap(), &[1, 2, 3, 4, 5]);
        r.finish().unwrap();
    }

    #[test]
    fn spec_array_examples_both_ways() {
        let wire = hex("00000001 00000000 00000007");
        let mut out = Vec::new();
        put_i64_array(&mut out, &[7]);
        assert_eq!(out, wire);
        assert_eq!(Reader::new(&wire).read_i64_array().unwrap(), vec![7]);

        let wire = hex("00000002 00000001 61000000 00000002 62630000");
        let mut out = Vec::new();
        put_str_array(&mut out, &["a", "bc"]);
        assert_eq!(out, wire);
        assert_eq!(str_array_len(&["a", "bc"]), wire.len());
        let mut r = Reader::new(&wire);
        assert_eq!(r.read_str_array().unwrap(), vec!["a", "bc"]);
        r.finish().unwrap();
    }

    #[test]
    fn spec_attribute_example_both_ways() {
        let wire = hex("00000006 4E756D62 65720000 00000001 0000002A");
        let mut out = Vec::new();
        put_str(&mut out, "Number");
        put_value(&mut out, ValueRef::Int32(42));
        assert_eq!(out, wire);
        let mut r = Reader::new(&wire);
        assert_eq!(r.read_str().unwrap(), "Number");
        assert_eq!(r.read_value().unwrap(), ValueRef::Int32(42));
        r.finish().unwrap();
    }

    #[test]
    fn padding_is_skipped_unchecked_on_input() {
        let wire = hex("00000001 61FFFFFF");
        assert_eq!(Reader::new(&wire).read_str().unwrap(), "a");
    }

    #[test]
    fn booleans_other_than_zero_and_one_are_rejected() {
        assert!(!Reader::new(&hex("00000000")).read_bool().unwrap());
        assert!(Reader::new(&hex("00000001")).read_bool().unwrap());
        assert_eq!(
            Reader::new(&hex("00000002")).read_bool(),
            Err(DecodeErrorKind::BadBool(2))
        );
        assert_eq!(
            Reader::new(&hex("FFFFFFFF")).read_bool(),
            Err(DecodeErrorKind::BadBool(-1))
        );
    }

    #[test]
    fn negative_length_and_count_are_rejected() {
        assert_eq!(
            Reader::new(&hex("FFFFFFFF")).read_str(),
            Err(DecodeErrorKind::NegativeLength {
                offset: 0,
                length: -1
            })
        );
        assert_eq!(
            Reader::new(&hex("80000000")).read_i64_array(),
            Err(DecodeErrorKind::NegativeCount {
                offset: 0,
                count: i32::MIN
            })
        );
    }

    #[test]
    fn lengths_past_the_end_are_rejected() {
        // Length 5 with only 4 bytes after it.
        assert_eq!(
            Reader::new(&hex("00000005 61626364")).read_str(),
            Err(DecodeErrorKind::LengthPastEnd {
                offset: 0,
                length: 5,
                available: 4
            })
        );
        // Length 3 with the data but without the padding byte.
        assert!(matches!(
            Reader::new(&hex("00000003 616263")).read_opaque(),
            Err(DecodeErrorKind::LengthPastEnd { .. })
        ));
        assert!(matches!(
            Reader::new(&hex("7FFFFFFF 00000000")).read_opaque(),
            Err(DecodeErrorKind::LengthPastEnd {
                length: 0x7FFF_FFFF,
                ..
            })
        ));
    }

    #[test]
    fn huge_counts_fail_before_allocating() {
        // 2^31 - 1 elements claimed, 8 bytes present: rejected by arithmetic,
        // not by running out of memory while reserving.
        let wire = hex("7FFFFFFF 00000000 00000000");
        assert_eq!(
            Reader::new(&wire).read_i64_array(),
            Err(DecodeErrorKind::CountPastEnd {
                offset: 0,
                count: 0x7FFF_FFFF,
                available: 8
            })
        );
        assert!(matches!(
            Reader::new(&wire).read_values(),
            Err(DecodeErrorKind::CountPastEnd { .. })
        ));
        assert!(matches!(
            Reader::new(&wire).read_attributes_ref(),
            Err(DecodeErrorKind::CountPastEnd { .. })
        ));
    }

    #[test]
    fn bad_utf8_reports_the_offset_of_the_bad_byte() {
        let wire = hex("00000000 00000003 61FF6200");
        let mut r = Reader::new(&wire);
        r.read_i32().unwrap();
        assert_eq!(r.read_str(), Err(DecodeErrorKind::BadUtf8 { offset: 9 }));
    }

    #[test]
    fn truncated_scalars_are_rejected() {
        assert_eq!(
            Reader::new(&[0, 0, 0]).read_i32(),
            Err(DecodeErrorKind::Truncated {
                offset: 0,
                needed: 4,
                available: 3
            })
        );
        assert!(matches!(
            Reader::new(&hex("00000000")).read_i64(),
            Err(DecodeErrorKind::Truncated { needed: 8, .. })
        ));
    }

    #[test]
    fn unknown_value_type_code_is_rejected() {
        assert_eq!(
            Reader::new(&hex("00000006 00000000")).read_value(),
            Err(DecodeErrorKind::UnknownValueType(6))
        );
        assert_eq!(
            Reader::new(&hex("00000000 00000000")).read_value(),
            Err(DecodeErrorKind::UnknownValueType(0))
        );
    }

    #[test]
    fn reals_round_trip_bit_for_bit() {
        for v in [
            f64::NAN,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(0x7FF8_0000_0000_0123),
        ] {
            let mut out = Vec::new();
            put_f64(&mut out, v);
            assert_eq!(Reader::new(&out).read_f64().unwrap().to_bits(), v.to_bits());
        }
    }

    #[test]
    fn finish_reports_leftover_bytes() {
        let wire = hex("00000001 00000002");
        let mut r = Reader::new(&wire);
        r.read_i32().unwrap();
        assert_eq!(r.finish(), Err(DecodeErrorKind::LeftoverBytes(4)));
        r.read_i32().unwrap();
        assert_eq!(r.finish(), Ok(()));
    }
}
