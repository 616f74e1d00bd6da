//! The header every trafgen packet starts with.
//!
//! A sink measures loss and delay from what the source wrote into each
//! packet, so both ends agree on this layout (all numbers big-endian):
//!
//! ```text
//! offset  size  field
//!      0     2  magic 0x5447 ("TG")
//!      2     1  version (1)
//!      3     1  reserved (0)
//!      4     4  length of this packet in bytes, header included
//!      8     4  flow: a random number per source process, so a sink
//!               tells a restarted source from a continuing one
//!     12     8  sequence number, from 0, one per packet of the flow
//!     20     8  send time, nanoseconds since the Unix epoch
//!     28     -  padding (zeros) up to the packet size
//! ```
//!
//! Over UDP a packet is one datagram. Over TCP packets follow each other
//! in the byte stream and the length field frames them. Packets are never
//! shorter than the header ([`HEADER_LEN`], 28 bytes): a smaller
//! `PACKETSIZE` is sent as 28 bytes. The send time lets a sink report
//! one-way delay, which is meaningful when both ends share a clock (the
//! emulated testbed's namespaces on one machine).

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of header at the start of every packet.
pub const HEADER_LEN: usize = 28;
/// The magic number.
pub const MAGIC: u16 = 0x5447;
/// The header version.
pub const VERSION: u8 = 1;
/// Largest packet: the largest UDP payload over IPv4.
pub const MAX_PACKET: usize = 65_507;

/// One packet's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packet length, header included.
    pub length: u32,
    /// The source's flow number.
    pub flow: u32,
    /// Sequence number within the flow.
    pub seq: u64,
    /// Send time, ns since the epoch.
    pub sent_ns: u64,
}

/// Why bytes are not a trafgen packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than a header.
    #[error("packet of {0} bytes is shorter than the 28-byte trafgen header")]
    Short(usize),
    /// The magic number or version is wrong.
    #[error("not a trafgen packet (bad magic or version)")]
    NotTrafgen,
    /// The length field is outside 28..=65507.
    #[error("trafgen packet claims a length of {0} bytes")]
    BadLength(u32),
}

/// Nanoseconds since the epoch now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `packet`
    /// (which must be at least that long; shorter buffers are left alone).
    pub fn write(&self, packet: &mut [u8]) {
        let Some(head) = packet.get_mut(..HEADER_LEN) else {
            return;
        };
        head[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        head[2] = VERSION;
        head[3] = 0;
        head[4..8].copy_from_slice(&self.length.to_be_bytes());
        head[8..12].copy_from_slice(&self.flow.to_be_bytes());
        head[12..20].copy_from_slice(&self.seq.to_be_bytes());
        head[20..28].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a header from the start of `bytes`.
    pub fn read(bytes: &[u8]) -> Result<Header, PacketError> {
        let head: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(PacketError::Short(bytes.len()))?;
        let [
            m0,
            m1,
            version,
            _,
            l0,
            l1,
            l2,
            l3,
            f0,
            f1,
            f2,
            f3,
            rest @ ..,
        ] = *head;
        if u16::from_be_bytes([m0, m1]) != MAGIC || version != VERSION {
            return Err(PacketError::NotTrafgen);
        }
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        if !(HEADER_LEN as u32..=MAX_PACKET as u32).contains(&length) {
            return Err(PacketError::BadLength(length));
        }
        let [
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            t6,
            t7,
        ] = rest;
        Ok(Header {
            length,
            flow: u32::from_be_bytes([f0, f1, f2, f3]),
            seq: u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            sent_ns: u64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let header = Header {
            length: 100,
            flow: 0xdead_beef,
            seq: 1 << 40,
            sent_ns: 123_456_789,
        };
        let mut packet = vec![0u8; 100];
        header.write(&mut packet);
        assert_eq!(Header::read(&packet), Ok(header));
        assert_eq!(&packet[..3], &[0x54, 0x47, 1]);

        assert_eq!(Header::read(&packet[..10]), Err(PacketError::Short(10)));
        let mut bad = packet.clone();
        bad[0] = 0;
        assert_eq!(Header::read(&bad), Err(PacketError::NotTrafgen));
        let mut long = packet.clone();
        long[4..8].copy_from_slice(&70_000u32.to_be_bytes());
        assert_eq!(Header::read(&long), Err(PacketError::BadLength(70_000)));
        let mut short = packet;
        short[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(Header::read(&short), Err(PacketError::BadLength(3)));
        // Writing into too small a buffer does nothing (and does not panic).
        let mut tiny = [0u8; 4];
        header.write(&mut tiny);
        assert_eq!(tiny, [0; 4]);
    }
}
