//! Hostile input: deep nesting, huge expressions, pathological patterns and
//! random text must give clean errors (or bounded work), never a panic or a
//! stack overflow.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::thread;

use elvin_proto::Value;
use elvin_sublang::{Limits, MAX_DEPTH_CEILING, Subscription, SubscriptionError, Truth, codes};
use proptest::prelude::*;

/// Limits with the length and node bounds lifted, so that the nesting
/// bound is the one a test exercises.
fn roomy() -> Limits {
    Limits {
        max_length: 10_000_000,
        max_nodes: 10_000_000,
        ..Limits::default()
    }
}

/// Runs `f` on a thread with a `stack`-byte stack, so that a test fails
/// (by overflowing) if the code needs more stack than that.
fn on_small_stack<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    match thread::Builder::new().stack_size(stack).spawn(f) {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| panic!("the test thread panicked")),
        Err(e) => panic!("cannot spawn a test thread: {e}"),
    }
}

const HALF_MIB: usize = 512 * 1024;
const TWO_MIB: usize = 2 * 1024 * 1024;

fn compile_err(expr: &str, limits: &Limits) -> SubscriptionError {
    match Subscription::compile(expr, limits) {
        Ok(_) => panic!("compiled, but an error was expected"),
        Err(e) => e,
    }
}

fn assert_too_deep(expr: String, column: i32, token: &'static str) {
    on_small_stack(HALF_MIB, move || {
        let err = compile_err(&expr, &roomy());
        assert_eq!(err.code, codes::NESTING_TOO_DEEP, "{}", err.message);
        assert_eq!((err.column, err.token.as_str()), (column, token));
        assert!(err.message.contains("64 levels"), "{}", err.message);
    });
}

#[test]
fn hundred_thousand_open_parentheses() {
    assert_too_deep(format!("{}a == 1", "(".repeat(100_000)), 65, "(");
}

#[test]
fn hundred_thousand_balanced_parentheses() {
    assert_too_deep(
        format!("{}a == 1{}", "(".repeat(100_000), ")".repeat(100_000)),
        65,
        "(",
    );
}

#[test]
fn hundred_thousand_nots() {
    assert_too_deep(format!("{}a == 1", "!".repeat(100_000)), 65, "!");
}

#[test]
fn hundred_thousand_unary_minuses() {
    assert_too_deep(format!("{}a == 1", "- ".repeat(100_000)), 129, "-");
    assert_too_deep(format!("a == {}1", "~".repeat(100_000)), 70, "~");
}

#[test]
fn hundred_thousand_nested_calls() {
    assert_too_deep(
        format!(
            "{}a{} == \"x\"",
            "fold-case(".repeat(100_000),
            ")".repeat(100_000)
        ),
        641,
        "fold-case",
    );
}

/// Depth is the tree's height: `a == 1` is 2, and each pair of
/// parentheses adds one, so 62 pairs are exactly the default 64.
#[test]
fn nesting_at_the_default_limit_is_accepted() {
    let attrs = common::notification([("a", Value::Int32(1))]);
    let at_limit = format!("{}a == 1{}", "(".repeat(62), ")".repeat(62));
    let sub = Subscription::compile(&at_limit, &Limits::default());
    assert_eq!(sub.map(|s| s.evaluate(&attrs)), Ok(Truth::True));
    let over = format!("{}a == 1{}", "(".repeat(63), ")".repeat(63));
    let err = compile_err(&over, &Limits::default());
    assert_eq!(
        (err.code, err.column, err.token.as_str()),
        (codes::NESTING_TOO_DEEP, 1, "(")
    );
}

#[test]
fn hostile_input_under_default_limits_hits_the_length_limit_first() {
    let err = compile_err(&"(".repeat(100_000), &Limits::default());
    assert_eq!(
        (err.code, err.column, err.token.as_str()),
        (codes::IMPL_LIMIT, 0, "")
    );
    assert!(
        err.message.contains("100000 bytes") && err.message.contains("4096"),
        "{}",
        err.message
    );
}

#[test]
fn the_length_limit_is_exact() {
    let limits = Limits::default();
    let base = "a == \"\"";
    let fits = format!("a == \"{}\"", "x".repeat(4096 - base.len()));
    assert_eq!(fits.len(), 4096);
    assert!(Subscription::compile(&fits, &limits).is_ok());
    let over = format!("a == \"{}\"", "x".repeat(4097 - base.len()));
    assert_eq!(compile_err(&over, &limits).code, codes::IMPL_LIMIT);
}

#[test]
fn too_many_nodes() {
    let expr = vec!["a == 1"; 1000].join(" || ");
    let err = compile_err(
        &expr,
        &Limits {
            max_length: 1 << 20,
            ..Limits::default()
        },
    );
    assert_eq!(err.code, codes::IMPL_LIMIT);
    assert!(err.message.contains("2048"), "{}", err.message);
}

/// A run of 100,000 operators is one n-ary node: it compiles and evaluates
/// on a small stack, in time proportional to its length.
#[test]
fn hundred_thousand_term_runs_use_no_stack() {
    on_small_stack(HALF_MIB, || {
        let attrs = common::notification([("a", Value::Int32(1)), ("b", Value::from("x"))]);
        let sum = format!("{} == 100000", vec!["a"; 100_000].join(" + "));
        let sub = Subscription::compile(&sum, &roomy()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sub.evaluate(&attrs), Truth::True);
        let or = vec!["b == \"y\""; 100_000].join(" || ");
        let sub = Subscription::compile(&or, &roomy()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sub.evaluate(&attrs), Truth::False);
        let mixed = (0..50_000)
            .map(|k| format!("a == {k}"))
            .collect::<Vec<_>>()
            .join(" ^^ ");
        let sub = Subscription::compile(&mixed, &roomy()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sub.evaluate(&attrs), Truth::True);
    });
}

/// One way of nesting: the text of one more level around `inner`, and how
/// many levels of depth that adds.
struct Shape {
    name: &'static str,
    base: &'static str,
    base_height: usize,
    wrap: fn(&str) -> String,
    per_level: usize,
    /// For value shapes, what to compare the value with (one more level).
    compare_with: Option<&'static str>,
}

/// Shapes that make the evaluator recurse once per level and reach the
/// innermost level (given a = 1, b = 0, c = 0, d = 1).
const SHAPES: [Shape; 4] = [
    Shape {
        name: "every math level, then unary minus, in parentheses",
        base: "a",
        base_height: 1,
        wrap: |inner| format!("(a - a + a * a / a % a << a >> a >>> a | a ^ a & -{inner})"),
        per_level: 13,
        compare_with: Some("0"),
    },
    Shape {
        name: "every logical level, then !, in parentheses",
        base: "a == 1",
        base_height: 2,
        wrap: |inner| format!("(b == 1 || c == 1 ^^ d == 1 && !{inner})"),
        per_level: 5,
        compare_with: None,
    },
    Shape {
        name: "unary minus",
        base: "a",
        base_height: 1,
        wrap: |inner| format!("-{inner}"),
        per_level: 1,
        compare_with: Some("0"),
    },
    Shape {
        name: "nested string functions",
        base: "a",
        base_height: 1,
        wrap: |inner| format!("fold-case({inner})"),
        per_level: 1,
        compare_with: Some("\"x\""),
    },
];

/// The shape nested as deep as `depth` allows (plus `extra` levels), as a
/// predicate.
fn nest(shape: &Shape, depth: usize, extra: usize) -> String {
    // Comparing a value shape adds a level.
    let room = depth - shape.base_height - usize::from(shape.compare_with.is_some());
    let mut expr = shape.base.to_owned();
    for _ in 0..room / shape.per_level + extra {
        expr = (shape.wrap)(&expr);
    }
    match shape.compare_with {
        Some(other) => format!("{expr} == {other}"),
        None => expr,
    }
}

/// At the hard depth ceiling, the deepest expressions of every shape
/// compile, evaluate all the way down, and drop within a 2 MiB stack (the
/// Rust and tokio default) even in a debug build; one level more is refused.
#[test]
fn deepest_expressions_fit_a_two_mebibyte_stack() {
    on_small_stack(TWO_MIB, || {
        let limits = Limits {
            max_depth: usize::MAX,
            ..roomy()
        };
        let attrs = common::notification([
            ("a", Value::Int32(1)),
            ("b", Value::Int32(0)),
            ("c", Value::Int32(0)),
            ("d", Value::Int32(1)),
        ]);
        for shape in &SHAPES {
            let deepest = nest(shape, MAX_DEPTH_CEILING, 0);
            let sub = Subscription::compile(&deepest, &limits)
                .unwrap_or_else(|e| panic!("{}: {e}", shape.name));
            let _ = sub.evaluate(&attrs);
            let _ = sub.constraints();
            let deeper = nest(shape, MAX_DEPTH_CEILING, 1);
            assert_eq!(
                compile_err(&deeper, &limits).code,
                codes::NESTING_TOO_DEEP,
                "{}",
                shape.name
            );
        }
    });
}

#[test]
fn catastrophic_backtracking_patterns_run_in_linear_time() {
    // Each of these takes exponential time in a backtracking engine on this
    // input; here each is one linear pass.
    let input = format!("{}!", "a".repeat(100_000));
    let attrs = common::notification([("s", Value::from(input.as_str()))]);
    for pattern in ["(a+)+$", "(a|aa)+$", "(a*)*b", "^(a|a?)+$", "(.*a){12}x"] {
        let expr = format!("regex(s, \"{pattern}\")");
        assert_eq!(common::eval(&expr, &attrs), Truth::False, "{pattern}");
    }
}

#[test]
fn oversized_patterns_are_rejected_at_compile_time() {
    for pattern in [
        "a{1000}{1000}",
        "(\\\\w{100}){100}",
        "[\\\\s\\\\S]{10000}{10}",
        "\\\\w{100}",
    ] {
        let expr = format!("regex(s, \"{pattern}\")");
        let err = compile_err(&expr, &Limits::default());
        assert_eq!(
            err.code,
            codes::REGEXP_TOO_COMPLEX,
            "{pattern}: {}",
            err.message
        );
        assert_eq!(err.column, 10);
    }
    // A lower configured limit rejects smaller patterns.
    let small = Limits {
        regex_size_limit: 1000,
        ..Limits::default()
    };
    assert_eq!(
        compile_err("regex(s, \"a{500}\")", &small).code,
        codes::REGEXP_TOO_COMPLEX
    );
}

#[test]
fn pathological_wildcards_stay_bounded() {
    let input = "a".repeat(50_000);
    let attrs = common::notification([("s", Value::from(input.as_str()))]);
    let many_stars = format!("{}b", "*a".repeat(1000));
    assert_eq!(
        common::eval(&format!("wildcard(s, \"{many_stars}\")"), &attrs),
        Truth::False
    );
    let question_marks = format!("*{}b*", "?".repeat(1000));
    assert_eq!(
        common::eval(&format!("wildcard(s, \"{question_marks}\")"), &attrs),
        Truth::False
    );
    let ok = format!("*{}*", "a?".repeat(1000));
    assert_eq!(
        common::eval(&format!("wildcard(s, \"{ok}\")"), &attrs),
        Truth::True
    );
}

/// Fragments that make syntactically interesting soup.
const FRAGMENTS: &[&str] = &[
    "a",
    "b",
    "s",
    "(",
    ")",
    ",",
    "!",
    "&&",
    "||",
    "^^",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<<",
    ">>",
    ">>>",
    "&",
    "^",
    "|",
    "~",
    "1",
    "0",
    "08",
    "0x1F",
    "2147483648",
    "1L",
    "1.5",
    "1.",
    ".5",
    "1e3",
    "\"x\"",
    "'y'",
    "\"",
    "\\",
    "require(",
    "equals(",
    "size(",
    "regex(",
    "wildcard(",
    "fold-case(",
    "\"(\"",
    "\"*\\\\\"",
    " ",
    "\n",
    "\t",
    "\u{e9}",
    "\u{1F600}",
    "true",
];

fn evaluate_if_compiled(expr: &str) {
    let attrs = common::notification([
        ("a", Value::Int32(1)),
        ("b", Value::Real64(f64::NAN)),
        ("s", Value::from("x(")),
        ("o", Value::Opaque(vec![0])),
    ]);
    match Subscription::compile(expr, &Limits::default()) {
        Ok(sub) => {
            let _ = sub.evaluate(&attrs);
            let _ = sub.constraints();
        }
        Err(e) => {
            assert!(
                (2000..3000).contains(&e.code),
                "{expr:?}: code {} out of range",
                e.code
            );
            assert!(!e.message.is_empty());
            assert!(e.column >= 0);
            if e.column > 0 {
                assert!(
                    !e.token.is_empty() || e.code == codes::PARSE_ERROR,
                    "{expr:?}: {e}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(expr in any::<String>()) {
        evaluate_if_compiled(&expr);
    }

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40)) {
        evaluate_if_compiled(&parts.concat());
        evaluate_if_compiled(&parts.join(" "));
    }
}

/// The default regex limits leave room for ordinary patterns, including
/// Unicode-aware classes and bounded repetition.
#[test]
fn ordinary_patterns_fit_the_default_regex_limits() {
    let attrs = common::notification([("s", Value::from("node-17.example.net"))]);
    for (pattern, expected) in [
        (
            r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$",
            Truth::False,
        ),
        (r"\\w+", Truth::True),
        (r"^\\p{L}{1,10}-\\d{1,5}\\.", Truth::True),
        (r"(pc|node|vhost)-?\\d{1,4}", Truth::True),
        (r"^[[:alnum:]-]{1,63}(\\.[[:alnum:]-]{1,63})*$", Truth::True),
        (r"(?-u)\\w{1,50}\\.\\w{1,50}\\.\\w{1,50}", Truth::True),
    ] {
        let expr = format!("regex(s, \"{pattern}\")");
        let sub = Subscription::compile(&expr, &Limits::default())
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(sub.evaluate(&attrs), expected, "{pattern}");
    }
}
