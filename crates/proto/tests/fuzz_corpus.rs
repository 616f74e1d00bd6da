//! Replays the decode_frame fuzz target's corpus (`fuzz/seeds/decode_frame/`) as
//! an ordinary test, plus 20000 deterministic mutations of it, so
//! every CI run exercises the fuzz check on the stable toolchain (cargo
//! fuzz needs a nightly one; `fuzz/README.md` says how to run it for real).

#[path = "../fuzz/fuzz_targets/decode_frame_check.rs"]
mod decode_frame_check;

/// A small, fixed-seed generator: the same mutations on every run, so a
/// failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/decode_frame");
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "the corpus in {dir} is too small");
    inputs
}

#[test]
fn the_corpus_passes_the_fuzz_check() {
    for input in corpus() {
        decode_frame_check::check(&input);
    }
}

#[test]
fn mutations_of_the_corpus_pass_the_fuzz_check() {
    let inputs = corpus();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20000 {
        let mut input = inputs[(rng.next() % inputs.len() as u64) as usize].clone();
        for _ in 0..(1 + rng.next() % 4) {
            let at = if input.is_empty() {
                0
            } else {
                (rng.next() % input.len() as u64) as usize
            };
            match rng.next() % 4 {
                0 if !input.is_empty() => input[at] ^= 1 << (rng.next() % 8),
                1 => input.insert(at, rng.next() as u8),
                2 if !input.is_empty() => {
                    input.remove(at);
                }
                _ => {
                    let other = &inputs[(rng.next() % inputs.len() as u64) as usize];
                    input.extend_from_slice(other);
                }
            }
        }
        decode_frame_check::check(&input);
    }
}
