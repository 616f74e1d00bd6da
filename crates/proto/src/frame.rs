//! Splitting a byte stream into Elvin frames.
//!
//! On the wire each packet is preceded by a 4-byte big-endian length N (the
//! packet's size, not counting those 4 bytes). The length header is checked
//! as soon as its 4 bytes arrive, before the body is read or any buffer is
//! grown for it: N must be a multiple of 4 (XDR is word-aligned), at least 4
//! (a packet starts with its type id) and at most the connection's
//! `Packet.Max-Length`. A peer therefore cannot make the reader reserve more
//! than that limit, whatever it sends.
//!
//! These functions only inspect a buffer; owning the buffer and reading the
//! socket is the caller's business, so the same code serves the async
//! router and the blocking client.

use std::fmt;

/// `Packet.Max-Length` before negotiation, and its default: 2 MiB.
pub const DEFAULT_MAX_PACKET_LENGTH: usize = 2 * 1024 * 1024;

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// A frame header that breaks the framing rules. The connection cannot be
/// resynchronised after one; the router answers with `Disconn(4, message)`
/// and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// N is not a multiple of 4.
    Unaligned {
        /// The length from the header.
        length: u32,
    },
    /// N is less than 4, too short for a packet id.
    TooShort {
        /// The length from the header.
        length: u32,
    },
    /// N is more than the maximum packet length in force.
    TooLarge {
        /// The length from the header.
        length: u32,
        /// The maximum in force.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Unaligned { .. } => f.write_str("Frame length not 4 byte aligned"),
            FrameError::TooShort { length } => write!(
                f,
                "Frame length of {length} bytes is too short: a packet holds at least its 4-byte type id"
            ),
            FrameError::TooLarge { length, max } => write!(
                f,
                "Frame size of {length} bytes is larger than maximum {max}. Use the Packet.Max-Length \
                 connection option to increase the maximum notification size."
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks a frame's length header `length` against the rules and `max`,
/// returning the body length.
pub fn check_frame_header(length: u32, max: usize) -> Result<usize, FrameError> {
    if !length.is_multiple_of(4) {
        return Err(FrameError::Unaligned { length });
    }
    if length < 4 {
        return Err(FrameError::TooShort { length });
    }
    match usize::try_from(length) {
        Ok(body_len) if body_len <= max => Ok(body_len),
        _ => Err(FrameError::TooLarge { length, max }),
    }
}

/// Looks at the start of `buf` for a frame.
///
/// Returns `Ok(Some(total))` when a whole frame is present, where `total`
/// is header plus body (so `total - 4 <= max`); `Ok(None)` when more bytes
/// are needed; and an error as soon as the 4 header bytes are present and
/// invalid, even if the body has not arrived.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let body_len = check_frame_header(u32::from_be_bytes(*header), max)?;
    match FRAME_HEADER_LEN.checked_add(body_len) {
        Some(total) if total <= buf.len() => Ok(Some(total)),
        _ => Ok(None),
    }
}

/// Like [`frame_len`], but returns the frame's body (packet id onwards,
/// ready for [`crate::Packet::decode`]) and the number of bytes to consume.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    Ok(frame_len(buf, max)?
        .and_then(|total| buf.get(FRAME_HEADER_LEN..total).map(|body| (body, total))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_conn_frame_is_found_whole() {
        let frame = [0, 0, 0, 4, 0, 0, 0, 0x3F];
        assert_eq!(frame_len(&frame, DEFAULT_MAX_PACKET_LENGTH), Ok(Some(8)));
        assert_eq!(
            split_frame(&frame, DEFAULT_MAX_PACKET_LENGTH),
            Ok(Some((&frame[4..], 8)))
        );
        for cut in 0..8 {
            assert_eq!(
                frame_len(&frame[..cut], DEFAULT_MAX_PACKET_LENGTH),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn only_the_first_frame_is_measured() {
        let two = [0, 0, 0, 4, 0, 0, 0, 0x3F, 0, 0, 0, 4, 0, 0, 0, 0x40];
        assert_eq!(frame_len(&two, 1024), Ok(Some(8)));
    }

    #[test]
    fn unaligned_length_is_rejected_with_avis_wording() {
        let err = frame_len(&[0, 0, 0, 5], 1024).unwrap_err();
        assert_eq!(err, FrameError::Unaligned { length: 5 });
        assert_eq!(err.to_string(), "Frame length not 4 byte aligned");
    }

    #[test]
    fn short_length_is_rejected() {
        assert_eq!(
            frame_len(&[0, 0, 0, 0], 1024),
            Err(FrameError::TooShort { length: 0 })
        );
    }

    #[test]
    fn oversize_length_is_rejected_before_the_body_arrives() {
        // 2 MiB + 4 with only the header present: no allocation, immediate
        // error.
        let header = ((DEFAULT_MAX_PACKET_LENGTH + 4) as u32).to_be_bytes();
        let err = frame_len(&header, DEFAULT_MAX_PACKET_LENGTH).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                length: 2_097_156,
                max: DEFAULT_MAX_PACKET_LENGTH
            }
        );
        assert_eq!(
            err.to_string(),
            "Frame size of 2097156 bytes is larger than maximum 2097152. Use the Packet.Max-Length \
             connection option to increase the maximum notification size."
        );
        // The largest value a header can hold.
        assert!(matches!(
            frame_len(&[0xFF, 0xFF, 0xFF, 0xFC], usize::MAX - 1),
            Ok(None)
        ));
        assert!(matches!(
            frame_len(&[0xFF, 0xFF, 0xFF, 0xFC], 1024),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0; 8]);
        assert_eq!(frame_len(&frame, 8), Ok(Some(12)));
        assert!(frame_len(&frame, 7).is_err());
    }
}
