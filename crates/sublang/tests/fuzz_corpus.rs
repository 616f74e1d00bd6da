//! Replays the parse fuzz target's tracked seeds (`fuzz/seeds/parse/`)
//! and 5000 deterministic mutations of them as an ordinary test, so every
//! CI run exercises the fuzz check on the stable toolchain (`fuzz/README.md`
//! says how to run the fuzzer itself).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "../fuzz/fuzz_targets/parse_check.rs"]
mod parse_check;

#[test]
fn the_seeds_and_their_mutations_pass_the_fuzz_check() {
    tbevents_testkit::replay_fuzz_seeds(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/parse"),
        5000,
        parse_check::check,
    );
}
