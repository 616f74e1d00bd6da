//! Fuzz target: see `parse_check.rs` for what it checks.

#![no_main]

#[path = "parse_check.rs"]
mod parse_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parse_check::check(data));
