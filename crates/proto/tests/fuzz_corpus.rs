//! Replays the decode_frame fuzz target's tracked seeds (`fuzz/seeds/decode_frame/`)
//! and 20000 deterministic mutations of them as an ordinary test, so every
//! CI run exercises the fuzz check on the stable toolchain (`fuzz/README.md`
//! says how to run the fuzzer itself).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "../fuzz/fuzz_targets/decode_frame_check.rs"]
mod decode_frame_check;

#[test]
fn the_seeds_and_their_mutations_pass_the_fuzz_check() {
    tbevents_testkit::replay_fuzz_seeds(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/decode_frame"),
        20000,
        decode_frame_check::check,
    );
}
