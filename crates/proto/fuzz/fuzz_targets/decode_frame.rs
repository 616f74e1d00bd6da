//! Fuzz target: see `decode_frame_check.rs` for what it checks.

#![no_main]

#[path = "decode_frame_check.rs"]
mod decode_frame_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| decode_frame_check::check(data));
