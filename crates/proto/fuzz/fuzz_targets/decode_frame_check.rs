//! The check behind the `decode_frame` fuzz target, shared with the
//! corpus replay test (`tests/fuzz_corpus.rs`): feed arbitrary bytes
//! through the framer and every decoder, as the router does with a
//! client's byte stream. Any panic, overflow or out-of-bounds access is a
//! bug; errors are expected and fine.

use elvin_proto::frame::{FRAME_HEADER_LEN, frame_len};
use elvin_proto::{Packet, decode_notify_emit, decode_unotify};

/// A small limit so that multi-frame inputs are exercised, not just one
/// frame that never completes.
const MAX_PACKET_LENGTH: usize = 64 * 1024;

/// Panics if `data` exposes a decoder bug.
pub fn check(data: &[u8]) {
    // Treat the input as a stream: take frames off the front until the
    // framer asks for more bytes or rejects a header.
    let mut stream = data;
    while let Ok(Some(total)) = frame_len(stream, MAX_PACKET_LENGTH) {
        assert!(total >= 2 * FRAME_HEADER_LEN && total - FRAME_HEADER_LEN <= MAX_PACKET_LENGTH);
        let (frame, rest) = stream.split_at(total);
        let body = &frame[FRAME_HEADER_LEN..];
        if let Ok(packet) = Packet::decode(body) {
            // Anything accepted must re-encode to a frame that decodes.
            let mut again = Vec::new();
            packet.encode(&mut again);
            assert!(Packet::decode(&again[FRAME_HEADER_LEN..]).is_ok());
        }
        let _ = decode_notify_emit(body);
        let _ = decode_unotify(body);
        stream = rest;
    }
    // The raw input as a body too, so decoders see inputs the framer would
    // have refused.
    let _ = Packet::decode(data);
    let _ = decode_notify_emit(data);
}
