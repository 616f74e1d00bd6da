//! The check behind the `parse` fuzz target, shared with the corpus
//! replay test (`tests/fuzz_corpus.rs`): any input must compile to a
//! subscription or to a well-formed error, never panic, overflow the stack
//! or run away; a compiled subscription must evaluate and yield
//! constraints without panicking.

use elvin_proto::{AttributesRef, ValueRef};
use elvin_sublang::{Limits, Subscription};

/// Panics if `data` exposes a bug in the subscription language.
pub fn check(data: &[u8]) {
    let Ok(expression) = std::str::from_utf8(data) else {
        return;
    };
    // Lift the length limit so the fuzzer explores deep nesting and long
    // runs; the depth and node limits still apply.
    let limits = Limits {
        max_length: 1 << 20,
        ..Limits::default()
    };
    match Subscription::compile(expression, &limits) {
        Ok(sub) => {
            let notification = AttributesRef {
                entries: vec![
                    ("a", ValueRef::Int32(1)),
                    ("b", ValueRef::Real64(f64::NAN)),
                    ("s", ValueRef::String("x")),
                    ("o", ValueRef::Opaque(b"o")),
                ],
            };
            let _ = sub.evaluate(&notification);
            let _ = sub.constraints();
        }
        Err(error) => {
            assert!(
                (2000..3000).contains(&error.code),
                "code {} out of range",
                error.code
            );
            assert!(error.column >= 0);
        }
    }
}
