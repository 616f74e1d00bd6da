//! A table of expressions evaluated against one notification that holds a
//! value of every type and every awkward number, covering every operator
//! and every function, with the expected truth value or compile error.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use elvin_proto::{Attributes, Value};
use elvin_sublang::Truth::{self, Bottom as B, False as F, True as T};
use elvin_sublang::{Limits, Subscription, codes};

/// What a table row expects.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Is(Truth),
    Error(u32),
}

use Expect::{Error as E, Is};

/// The notification every row is evaluated against.
fn standard_notification() -> Attributes {
    common::notification([
        ("i", Value::Int32(5)),
        ("j", Value::Int32(-1)),
        ("z", Value::Int32(0)),
        ("imax", Value::Int32(i32::MAX)),
        ("imin", Value::Int32(i32::MIN)),
        ("l", Value::Int64(5)),
        ("lneg", Value::Int64(-1)),
        ("lbig", Value::Int64(1 << 40)),
        ("r", Value::Real64(2.5)),
        ("nan", Value::Real64(f64::NAN)),
        ("inf", Value::Real64(f64::INFINITY)),
        ("ninf", Value::Real64(f64::NEG_INFINITY)),
        ("nz", Value::Real64(-0.0)),
        ("pz", Value::Real64(0.0)),
        ("s", Value::from("hello")),
        ("S", Value::from("HeLLo")),
        ("e", Value::from("")),
        ("acc", Value::from("\u{e9}")),
        ("fi", Value::from("\u{fb01}")),
        ("ml", Value::from("line1\nline2")),
        ("glob", Value::from("a*b?c")),
        ("o", Value::Opaque(vec![1, 2, 3])),
        ("eo", Value::Opaque(Vec::new())),
        ("pipe=", Value::Int32(30)),
        (" sp", Value::from("x")),
        ("a-b", Value::Int32(7)),
    ])
}

const TABLE: &[(&str, Expect)] = &[
    // Logic: ||, ^^, &&, ! in three values, and their precedence.
    ("i == 5", Is(T)),
    ("i == 6", Is(F)),
    ("missing == 5", Is(B)),
    ("i == 5 && s == \"hello\"", Is(T)),
    ("i == 5 && s == \"x\"", Is(F)),
    ("i == 5 && missing == 1", Is(B)),
    ("i == 6 && missing == 1", Is(F)),
    ("i == 5 || missing == 1", Is(T)),
    ("i == 6 || missing == 1", Is(B)),
    ("i == 6 || s == \"x\"", Is(F)),
    ("i == 5 ^^ s == \"hello\"", Is(F)),
    ("i == 5 ^^ s == \"x\"", Is(T)),
    ("i == 6 ^^ s == \"x\"", Is(F)),
    ("i == 5 ^^ missing == 1", Is(B)),
    ("i == 5 ^^ s == \"hello\" ^^ l == 5", Is(T)),
    ("! i == 5", Is(F)),
    ("! i == 6", Is(T)),
    ("! missing == 1", Is(B)),
    ("!! i == 5", Is(T)),
    ("!!! i == 5", Is(F)),
    ("i == 5 || i == 6 && missing == 1", Is(T)),
    ("(i == 6 || i == 5) && s == \"hello\"", Is(T)),
    ("i == 6 || i == 5 ^^ i == 5", Is(F)),
    ("i == 5 ^^ i == 6 && i == 5", Is(T)),
    // Comparisons.
    ("i != 5", Is(F)),
    ("i != 6", Is(T)),
    ("missing != 6", Is(B)),
    ("s != 5", Is(B)),
    ("i < 6", Is(T)),
    ("i < 5", Is(F)),
    ("i <= 5", Is(T)),
    ("i > 4", Is(T)),
    ("i >= 6", Is(F)),
    ("5 == i", Is(T)),
    ("6 > i", Is(T)),
    ("5 >= i", Is(T)),
    ("i == l", Is(T)),
    ("i == 5.0", Is(T)),
    ("i == 5L", Is(T)),
    ("i < r", Is(F)),
    ("r < i", Is(T)),
    ("l > lneg", Is(T)),
    ("lbig > imax", Is(T)),
    ("s == \"hello\"", Is(T)),
    ("s == \"HELLO\"", Is(F)),
    ("s < \"help\"", Is(T)),
    ("s > \"hello\"", Is(F)),
    ("s >= \"hello\"", Is(T)),
    ("S < s", Is(T)),
    ("e < s", Is(T)),
    ("s == i", Is(B)),
    ("o == o", Is(B)),
    ("o != o", Is(B)),
    ("o == s", Is(B)),
    ("o < 1", Is(B)),
    ("nan == nan", Is(T)),
    ("nan > inf", Is(T)),
    ("nan < 1.0", Is(F)),
    ("nan == 1.0", Is(F)),
    ("nz == pz", Is(F)),
    ("nz < pz", Is(T)),
    ("nz == 0", Is(F)),
    ("pz == 0", Is(T)),
    ("inf > 1.0e300", Is(T)),
    ("ninf < imin", Is(T)),
    // Arithmetic.
    ("i + 1 == 6", Is(T)),
    ("i - 1 == 4", Is(T)),
    ("i * 2 == 10", Is(T)),
    ("i / 2 == 2", Is(T)),
    ("j / 2 == 0", Is(T)),
    ("i % 3 == 2", Is(T)),
    ("j % 2 == -1", Is(T)),
    ("i / 0 == 1", Is(B)),
    ("i % 0 == 1", Is(B)),
    ("i / z == 1", Is(B)),
    ("l / z == 1", Is(B)),
    ("r / 0 == inf", Is(T)),
    ("r % 1.0 == 0.5", Is(T)),
    ("r * 2 == 5", Is(T)),
    ("i + r == 7.5", Is(T)),
    ("l + i == 10L", Is(T)),
    ("imax + 1 == imin", Is(T)),
    ("imin - 1 == imax", Is(T)),
    ("imin / -1 == imin", Is(T)),
    ("imin % -1 == 0", Is(T)),
    ("- i == -5", Is(T)),
    ("+ i == 5", Is(T)),
    ("- r == -2.5", Is(T)),
    ("-imin == imin", Is(T)),
    ("- nz == pz", Is(T)),
    ("i - 1 + 1 == 3", Is(T)),
    ("i * 2 / 4 == 0", Is(T)),
    ("i - -1 == 6", Is(T)),
    ("i - 1 - 1 == 3", Is(T)),
    ("100 / 10 / 5 == i - 3", Is(T)),
    ("s + 1 == 2", Is(B)),
    ("-s == 1", Is(B)),
    ("+s == 1", Is(B)),
    ("o + 1 == 1", Is(B)),
    ("missing + 1 == 1", Is(B)),
    ("i + 2147483647L == 2147483652L", Is(T)),
    // Shifts and bitwise operators.
    ("i & 4 == 4", Is(T)),
    ("i | 2 == 7", Is(T)),
    ("i ^ 1 == 4", Is(T)),
    ("~i == -6", Is(T)),
    ("~l == -6L", Is(T)),
    ("i << 1 == 10", Is(T)),
    ("i >> 1 == 2", Is(T)),
    ("j >> 28 == -1", Is(T)),
    ("j >>> 28 == 15", Is(T)),
    ("lneg >>> 60 == 15", Is(T)),
    ("i << 33 == 10", Is(T)),
    ("i << 33L == 42949672960L", Is(T)),
    ("i << -1 == imin", Is(T)),
    ("r & 1 == 1", Is(B)),
    ("~r == 1", Is(B)),
    ("r << 1 == 1", Is(B)),
    ("i | 2 ^ 3 & 1 == 7", Is(T)),
    ("i & 4 + 1 == 5", Is(T)),
    ("i & 1.5 == 1", E(codes::TYPE_MISMATCH)),
    ("~1.5 == i", E(codes::TYPE_MISMATCH)),
    ("i << \"x\" == 1", E(codes::TYPE_MISMATCH)),
    ("i >>> (1.5 + i) == 1", E(codes::TYPE_MISMATCH)),
    ("i >>> (r + 1) == 1", Is(B)),
    // require and the type tests.
    ("require(s)", Is(T)),
    ("require(missing)", Is(B)),
    ("require(e)", Is(T)),
    ("require(eo)", Is(T)),
    ("int32(i)", Is(T)),
    ("int32(l)", Is(F)),
    ("int64(l)", Is(T)),
    ("int64(i)", Is(F)),
    ("real64(r)", Is(T)),
    ("real64(i)", Is(F)),
    ("string(s)", Is(T)),
    ("string(o)", Is(F)),
    ("opaque(o)", Is(T)),
    ("opaque(s)", Is(F)),
    ("opaque(missing)", Is(B)),
    ("!int32(l)", Is(T)),
    ("nan(nan)", Is(T)),
    ("nan(r)", Is(F)),
    ("nan(i)", Is(B)),
    ("nan(missing)", Is(B)),
    // size.
    ("size(s) == 5", Is(T)),
    ("size(acc) == 2", Is(T)),
    ("size(o) == 3", Is(T)),
    ("size(eo) == 0", Is(T)),
    ("size(i) == 0", Is(B)),
    ("size(missing) == 0", Is(B)),
    ("size(s) + size(o) == 8", Is(T)),
    // equals.
    ("equals(i, 1, 5)", Is(T)),
    ("equals(i, 1, 2)", Is(F)),
    ("equals(s, \"x\", \"hello\")", Is(T)),
    ("equals(s, \"x\", \"y\")", Is(F)),
    ("equals(s, 1, \"hello\")", Is(T)),
    ("equals(i, \"x\", 5.0)", Is(T)),
    ("equals(missing, 1, 2)", Is(B)),
    ("equals(s, 1, 2)", Is(B)),
    ("equals(o, \"x\")", Is(B)),
    ("equals(fold-case(S), \"hello\")", Is(T)),
    ("equals(i, 2 + 3)", Is(T)),
    ("equals(i, 1 / 0, 5)", Is(T)),
    ("equals(i, 1 / 0, 6)", Is(B)),
    // begins-with, ends-with, contains.
    ("begins-with(s, \"he\")", Is(T)),
    ("begins-with(s, \"x\", \"hel\")", Is(T)),
    ("begins-with(s, \"x\", \"y\")", Is(F)),
    ("begins-with(i, \"5\")", Is(B)),
    ("begins-with(missing, \"5\")", Is(B)),
    ("ends-with(s, \"llo\")", Is(T)),
    ("ends-with(s, \"he\")", Is(F)),
    ("contains(s, \"ell\")", Is(T)),
    ("contains(s, \"\")", Is(T)),
    ("contains(e, \"\")", Is(T)),
    ("contains(s, \"xyz\")", Is(F)),
    ("contains(acc, \"\u{e9}\")", Is(T)),
    ("begins-with(fold-case(S), \"hel\")", Is(T)),
    ("ends-with(decompose(acc), \"\u{301}\")", Is(T)),
    // wildcard.
    ("wildcard(s, \"h*o\")", Is(T)),
    ("wildcard(s, \"h?llo\")", Is(T)),
    ("wildcard(s, \"h*x\")", Is(F)),
    ("wildcard(s, \"ell\")", Is(F)),
    ("wildcard(s, \"*ell*\")", Is(T)),
    ("wildcard(glob, \"a\\\\*b\\\\?c\")", Is(T)),
    ("wildcard(s, \"a\\\\*b\\\\?c\")", Is(F)),
    ("wildcard(s, \"H*\")", Is(F)),
    ("wildcard(ml, \"line1*\")", Is(T)),
    ("wildcard(ml, \"line1?line2\")", Is(T)),
    ("wildcard(i, \"*\")", Is(B)),
    ("wildcard(s, \"x\", \"*o\")", Is(T)),
    ("wildcard(s, \"[h]ello\")", Is(F)),
    ("wildcard(s, \"abc\\\\\")", E(codes::INVALID_REGEXP)),
    // regex.
    ("regex(s, \"l+\")", Is(T)),
    ("regex(s, \"^l\")", Is(F)),
    ("regex(s, \"^h.*o$\")", Is(T)),
    ("regex(ml, \"1.l\")", Is(T)),
    ("regex(s, \"x\", \"ll\")", Is(T)),
    ("regex(S, \"(?i)^hello$\")", Is(T)),
    ("regex(s, \"[[:digit:]]\")", Is(F)),
    ("regex(i, \".\")", Is(B)),
    ("regex(s, \"(\")", E(codes::INVALID_REGEXP)),
    ("regex(s, \"a{1000}{1000}\")", E(codes::REGEXP_TOO_COMPLEX)),
    // fold-case, decompose, decompose-compat.
    ("fold-case(S) == \"hello\"", Is(T)),
    ("fold-case(S) == s", Is(T)),
    ("fold-case(s) == s", Is(T)),
    ("fold-case(i) == \"5\"", Is(B)),
    ("decompose(acc) == \"e\u{301}\"", Is(T)),
    ("decompose(acc) == acc", Is(F)),
    ("decompose-compat(fi) == \"fi\"", Is(T)),
    ("decompose(fi) == \"fi\"", Is(F)),
    ("decompose-compat(i) == \"5\"", Is(B)),
    ("fold-case(decompose(\"\u{c9}\")) == decompose(acc)", Is(T)),
    (
        "decompose(fold-case(\"\u{c9}\")) == \"e\u{301}\"",
        E(codes::EXP_IS_TRIVIAL),
    ),
    // Names.
    ("pipe= > 20", Is(T)),
    ("\\ sp == \"x\"", Is(T)),
    ("a-b == 7", Is(T)),
    ("a-b==7", E(codes::TYPE_MISMATCH)),
    // Compile errors and folding.
    ("foo(s)", E(codes::UNKNOWN_FUNC)),
    ("size(s, s) == 1", E(codes::TOO_MANY_ARGS)),
    ("begins-with(s)", E(codes::TOO_FEW_ARGS)),
    ("equals(s)", E(codes::TOO_FEW_ARGS)),
    ("require(\"s\")", E(codes::TYPE_MISMATCH)),
    ("size(i + 1) == 1", E(codes::TYPE_MISMATCH)),
    ("begins-with(s, s)", E(codes::TYPE_MISMATCH)),
    ("begins-with(i + 1, \"1\")", E(codes::TYPE_MISMATCH)),
    ("i + \"x\" == 1", E(codes::TYPE_MISMATCH)),
    ("\"x\" < 1", E(codes::TYPE_MISMATCH)),
    ("size(s) == \"5\"", E(codes::TYPE_MISMATCH)),
    ("equals(fold-case(s), 1)", E(codes::TYPE_MISMATCH)),
    ("require(s) + 1 == 2", E(codes::TYPE_MISMATCH)),
    ("i == 5 && s", E(codes::TYPE_MISMATCH)),
    ("!s", E(codes::TYPE_MISMATCH)),
    ("i", E(codes::TYPE_MISMATCH)),
    ("i + 1", E(codes::TYPE_MISMATCH)),
    ("fold-case(s)", E(codes::TYPE_MISMATCH)),
    ("i == 1 && 1 == 1", Is(F)),
    ("i == 5 || 1 == 2", Is(T)),
    ("i == 5 ^^ 1 == 1", Is(F)),
    ("i == 5 ^^ 1 == 2", Is(T)),
    ("i == 5 && 1 / 0 == 1", Is(B)),
    ("i == 6 && 1 / 0 == 1", Is(F)),
    ("i == 5 || 1 / 0 == 1", Is(T)),
    ("i == 5 || 1 == 1", E(codes::EXP_IS_TRIVIAL)),
    ("i == 5 && 1 == 2", E(codes::EXP_IS_TRIVIAL)),
    ("i == 1 / 0", E(codes::EXP_IS_TRIVIAL)),
    ("i == 5 ^^ 1 / 0 == 1", E(codes::EXP_IS_TRIVIAL)),
    ("begins-with(\"abc\", \"a\")", E(codes::EXP_IS_TRIVIAL)),
    ("i == 2147483648", E(codes::OVERFLOW)),
    ("i == 5 &&", E(codes::PARSE_ERROR)),
    ("i == 5 i == 5", E(codes::PARSE_ERROR)),
    ("i < 6 < 7", E(codes::PARSE_ERROR)),
    ("s == \"abc", E(codes::UNTERM_STRING)),
    ("i == 5 # 1", E(codes::INVALID_TOKEN)),
];

#[test]
fn table_has_at_least_150_cases() {
    assert!(TABLE.len() >= 150, "only {} cases", TABLE.len());
}

#[test]
fn every_table_case_gives_its_expected_result() {
    let attrs = standard_notification();
    let mut failures = Vec::new();
    for &(expr, expected) in TABLE {
        let got = match Subscription::compile(expr, &Limits::default()) {
            Ok(_) => Is(common::eval(expr, &attrs)),
            Err(e) => E(e.code),
        };
        if got != expected {
            failures.push(format!("{expr:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

/// The functions the language has, as they start a call.
const FUNCTIONS: [&str; 17] = [
    "require(",
    "int32(",
    "int64(",
    "real64(",
    "string(",
    "opaque(",
    "nan(",
    "size(",
    "equals(",
    "begins-with(",
    "ends-with(",
    "contains(",
    "wildcard(",
    "regex(",
    "fold-case(",
    "decompose(",
    "decompose-compat(",
];

/// Every evaluated row that calls a function gives the same result with
/// whitespace (space, tab, newline) between the function name and its
/// `(`, as the Elvin draft writes its examples (`fold-case (User)`).
#[test]
fn every_function_call_allows_whitespace_before_its_parenthesis() {
    let attrs = standard_notification();
    let mut checked = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for &(expr, expected) in TABLE {
        let Is(truth) = expected else { continue };
        for function in FUNCTIONS {
            if !expr.contains(function) {
                continue;
            }
            let name = function.trim_end_matches('(');
            for gap in [" ", "\t", "\n  ", " \r\n\t "] {
                // Only whole names: `decompose(` must not match inside
                // `decompose-compat(`.
                let spaced = replace_calls(expr, name, gap);
                match Subscription::compile(&spaced, &Limits::default()) {
                    Ok(_) => {
                        let got = common::eval(&spaced, &attrs);
                        if got != truth {
                            failures.push(format!("{spaced:?}: expected {truth:?}, got {got:?}"));
                        }
                    }
                    Err(e) => failures.push(format!("{spaced:?}: {}", e.message)),
                }
            }
            checked.insert(name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        checked.len(),
        FUNCTIONS.len(),
        "functions checked: {checked:?}"
    );
}

/// `expr` with `gap` between every call of `name` and its `(`.
fn replace_calls(expr: &str, name: &str, gap: &str) -> String {
    let pattern = format!("{name}(");
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find(&pattern) {
        let before = &rest[..at];
        // A name character right before means this is the tail of a longer
        // name (`compat(` in `decompose-compat(`).
        let whole = before
            .chars()
            .last()
            .is_none_or(|c| c == ' ' || c == '(' || c == ',' || c == '!');
        out.push_str(before);
        out.push_str(name);
        if whole {
            out.push_str(gap);
        }
        out.push('(');
        rest = &rest[at + pattern.len()..];
    }
    out.push_str(rest);
    out
}

/// The draft's own examples, written with a space before `(`, and names
/// that are also function names used as plain fields.
#[test]
fn the_drafts_examples_and_function_names_as_fields() {
    let attrs = common::notification([
        ("Presence-Protocol", Value::Int32(1000)),
        ("Groups", Value::from("elvin")),
        ("User", Value::from("Matthew@Work")),
        ("require", Value::Int32(1)),
        ("size", Value::from("abc")),
    ]);
    for (expr, expected) in [
        (
            "Presence-Protocol < 2000 && string (Groups) && fold-case (User) != \"matthew@home\"",
            T,
        ),
        ("fold-case (User) == \"matthew@work\"", T),
        ("begins-with (User, \"Matt\")", T),
        ("require (Groups) && int32 (Presence-Protocol)", T),
        ("equals (Presence-Protocol, 1, 1000)", T),
        // A function name not followed by ( is a field.
        ("require == 1", T),
        ("size (size) == 3", T),
        ("size == \"abc\"", T),
    ] {
        assert_eq!(common::eval(expr, &attrs), expected, "{expr}");
    }
    // A ( after anything but a function name is still an error.
    for expr in ["1 (2)", "\"s\" (x)", "(a == 1) (b)"] {
        let error = Subscription::compile(expr, &Limits::default()).unwrap_err();
        assert_eq!(error.code, codes::PARSE_ERROR, "{expr}: {error:?}");
    }
}

/// Every operator and function appears in the table.
#[test]
fn table_covers_every_operator_and_function() {
    let operators = [
        "||", "^^", "&&", "!", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "<<",
        ">>", ">>>", "&", "^", "|", "~",
    ];
    for token in operators.iter().chain(FUNCTIONS.iter()) {
        assert!(
            TABLE
                .iter()
                .any(|(expr, expected)| matches!(expected, Is(_)) && expr.contains(token)),
            "no evaluated case uses {token}"
        );
    }
}
