//! One test per edge case of the protocol notes' case list (elvin-protocol.md
//! §11.9), named after its label, plus the Emulab expression shapes of
//! docs/emulab-model.md §2.
//!
//! The notes give each label's topic ("L17 and L18: integer division by
//! zero") and state the expected behaviour in §10–§12; each test below
//! takes a concrete instance of its topic and checks the behaviour stated
//! there. The error catalogue E01–E24 is not itemised in the notes (only
//! E13, literal overflow, is named), so E01–E24 here walk through every
//! error the notes describe, in the order §10 and §11.8 describe them.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{emulab_event, error, eval, notification};
use elvin_proto::Value;
use elvin_sublang::Truth::{Bottom, False, True};
use elvin_sublang::{IndexKey, codes};

// ---------------------------------------------------------------------------
// L: logic, numbers and precedence

/// L02: a missing attribute under `!` stays ⊥: `!` does not turn "undefined"
/// into true, so the notification is not delivered.
#[test]
fn l02_not_of_missing_attribute_is_bottom() {
    let empty = notification([]);
    assert_eq!(eval("! a == 1", &empty), Bottom);
    assert_eq!(eval("! require(a)", &empty), Bottom);
}

/// L03: `!` over a predicate that mixes a missing and a present attribute:
/// `!(F && ⊥)` is `!F`, true; `!(T && ⊥)` is `!⊥`, ⊥.
#[test]
fn l03_not_over_partly_missing_conjunction() {
    let b1 = notification([("b", Value::Int32(1))]);
    assert_eq!(eval("!(b == 2 && a == 1)", &b1), True);
    assert_eq!(eval("!(b == 1 && a == 1)", &b1), Bottom);
}

/// L04: `!=` is `!(==)`, so `a != 1` with `a` missing is ⊥ and not delivered.
#[test]
fn l04_not_equal_on_missing_attribute_is_bottom() {
    let empty = notification([]);
    assert_eq!(eval("a != 1", &empty), Bottom);
    assert_eq!(
        eval("a != 1", &notification([("a", Value::Int32(2))])),
        True
    );
}

/// L10: `^^` with a missing operand is ⊥ whatever the other operand is.
#[test]
fn l10_xor_with_missing_attribute_is_bottom() {
    let b1 = notification([("b", Value::Int32(1))]);
    assert_eq!(eval("a == 1 ^^ b == 1", &b1), Bottom);
    assert_eq!(eval("a == 1 ^^ b == 2", &b1), Bottom);
    assert_eq!(eval("b == 1 ^^ b == 2", &b1), True);
}

/// L11: comparing values of incompatible types (string attribute with a
/// number) is ⊥, and so is its `!=`.
#[test]
fn l11_type_mismatch_in_comparison_is_bottom() {
    let s = notification([("a", Value::from("1"))]);
    assert_eq!(eval("a == 1", &s), Bottom);
    assert_eq!(eval("a != 1", &s), Bottom);
    assert_eq!(eval("a < 1", &s), Bottom);
}

/// L12: an operator applied to a value of the wrong type is ⊥: arithmetic
/// on a string, ordering an int against a string literal.
#[test]
fn l12_type_mismatch_in_arithmetic_is_bottom() {
    let attrs = notification([("s", Value::from("x")), ("i", Value::Int32(1))]);
    assert_eq!(eval("s + 1 == 2", &attrs), Bottom);
    assert_eq!(eval("i < \"b\"", &attrs), Bottom);
    assert_eq!(eval("s + 1 == 2 || i == 1", &attrs), True);
}

/// L13: int32 and int64 compare numerically after promotion.
#[test]
fn l13_int32_against_int64() {
    let attrs = notification([("a", Value::Int32(1)), ("b", Value::Int64(1))]);
    assert_eq!(eval("a == 1L", &attrs), True);
    assert_eq!(eval("b == 1", &attrs), True);
    assert_eq!(eval("a == b", &attrs), True);
    assert_eq!(eval("b < 2", &attrs), True);
}

/// L14: int32 and real64 compare numerically after promotion.
#[test]
fn l14_int32_against_real64() {
    let attrs = notification([("a", Value::Int32(1))]);
    assert_eq!(eval("a == 1.0", &attrs), True);
    assert_eq!(eval("a < 1.5", &attrs), True);
    assert_eq!(eval("a > 0.999", &attrs), True);
}

/// L15: int64 and real64 compare numerically after promotion.
#[test]
fn l15_int64_against_real64() {
    let attrs = notification([("a", Value::Int64(2)), ("r", Value::Real64(2.0))]);
    assert_eq!(eval("a == 2.0", &attrs), True);
    assert_eq!(eval("r == 2L", &attrs), True);
    assert_eq!(eval("a >= r", &attrs), True);
}

/// L35: a string never compares with a number, and an opaque value with
/// nothing: all ⊥.
#[test]
fn l35_string_and_opaque_against_numbers() {
    let attrs = notification([
        ("s", Value::from("2")),
        ("o", Value::Opaque(vec![2])),
        ("i", Value::Int32(2)),
    ]);
    assert_eq!(eval("s == i", &attrs), Bottom);
    assert_eq!(eval("o == i", &attrs), Bottom);
    assert_eq!(eval("o == s", &attrs), Bottom);
}

/// L17: integer division by zero is ⊥ (not an error, not a crash).
#[test]
fn l17_integer_division_by_zero_is_bottom() {
    let attrs = notification([
        ("a", Value::Int32(7)),
        ("z", Value::Int32(0)),
        ("l", Value::Int64(7)),
    ]);
    assert_eq!(eval("a / z == 1", &attrs), Bottom);
    assert_eq!(eval("l / 0 == 1", &attrs), Bottom);
    assert_eq!(eval("!(a / z == 1)", &attrs), Bottom);
}

/// L18: integer modulo by zero is ⊥, and ⊥ only decides an `||` if nothing
/// is true.
#[test]
fn l18_integer_modulo_by_zero_is_bottom() {
    let attrs = notification([("a", Value::Int32(7)), ("z", Value::Int32(0))]);
    assert_eq!(eval("a % z == 0", &attrs), Bottom);
    assert_eq!(eval("a % z == 0 || a == 7", &attrs), True);
    assert_eq!(eval("a % z == 0 && a == 8", &attrs), False);
}

/// L23: `-` binds looser than `+`: `a - 1 + 1` is `a - (1 + 1)`.
#[test]
fn l23_minus_binds_looser_than_plus() {
    let attrs = notification([("a", Value::Int32(5))]);
    assert_eq!(eval("a - 1 + 1 == 3", &attrs), True);
    assert_eq!(eval("a - 1 + 1 == 5", &attrs), False);
}

/// L24: `*` binds looser than `/`: `a * 2 / 4` is `a * (2 / 4)`, which is
/// `a * 0` for integers.
#[test]
fn l24_times_binds_looser_than_divide() {
    let attrs = notification([("a", Value::Int32(10))]);
    assert_eq!(eval("a * 2 / 4 == 0", &attrs), True);
    assert_eq!(eval("(a * 2) / 4 == 5", &attrs), True);
}

/// L25: shifts and bitwise operators bind tighter than arithmetic:
/// `a << 1 + 1` is `(a << 1) + 1`.
#[test]
fn l25_shift_binds_tighter_than_plus() {
    let attrs = notification([("a", Value::Int32(1))]);
    assert_eq!(eval("a << 1 + 1 == 3", &attrs), True);
    assert_eq!(eval("a << (1 + 1) == 4", &attrs), True);
    assert_eq!(eval("a + 2 & 1 == 1", &attrs), True, "a + (2 & 1)");
}

/// L28: `>>` on -1 is arithmetic: the sign is kept.
#[test]
fn l28_arithmetic_shift_of_minus_one() {
    let attrs = notification([("a", Value::Int32(-1)), ("l", Value::Int64(-1))]);
    assert_eq!(eval("a >> 28 == -1", &attrs), True);
    assert_eq!(eval("l >> 60 == -1", &attrs), True);
}

/// L29: `>>>` on -1 is logical: zeros come in from the left.
#[test]
fn l29_logical_shift_of_minus_one() {
    let attrs = notification([("a", Value::Int32(-1)), ("l", Value::Int64(-1))]);
    assert_eq!(eval("a >>> 28 == 15", &attrs), True);
    assert_eq!(eval("l >>> 60 == 15", &attrs), True);
    assert_eq!(eval("a >>> 0 == -1", &attrs), True);
}

/// L31: a leading zero makes a literal octal.
#[test]
fn l31_octal_literal() {
    let attrs = notification([("a", Value::Int32(15)), ("b", Value::Int32(8))]);
    assert_eq!(eval("a == 017", &attrs), True);
    assert_eq!(eval("b == 010", &attrs), True);
    assert_eq!(eval("a == 0x0F", &attrs), True);
}

/// L37: `nan(x)` is true for a NaN, false for another real, ⊥ otherwise.
#[test]
fn l37_nan_function() {
    let attrs = notification([
        ("n", Value::Real64(f64::NAN)),
        ("r", Value::Real64(1.0)),
        ("i", Value::Int32(1)),
    ]);
    assert_eq!(eval("nan(n)", &attrs), True);
    assert_eq!(eval("nan(r)", &attrs), False);
    assert_eq!(eval("nan(i)", &attrs), Bottom);
    assert_eq!(eval("nan(missing)", &attrs), Bottom);
}

/// L38: NaN is above every number, so `NaN < x` is false.
#[test]
fn l38_nan_is_not_less_than_anything() {
    let attrs = notification([("n", Value::Real64(f64::NAN))]);
    assert_eq!(eval("n < 1.0", &attrs), False);
    assert_eq!(eval("n <= 1", &attrs), False);
}

/// L39: NaN is greater than ordinary numbers.
#[test]
fn l39_nan_is_greater_than_numbers() {
    let attrs = notification([("n", Value::Real64(f64::NAN))]);
    assert_eq!(eval("n > 1.0", &attrs), True);
    assert_eq!(eval("n > 9223372036854775807L", &attrs), True);
}

/// L40: NaN equals NaN (Java `Double.compareTo` semantics), whatever its
/// bit pattern.
#[test]
fn l40_nan_equals_nan() {
    let attrs = notification([
        ("n", Value::Real64(f64::NAN)),
        ("m", Value::Real64(-f64::NAN)),
    ]);
    assert_eq!(eval("n == m", &attrs), True);
    assert_eq!(eval("n != m", &attrs), False);
}

/// L45: -0.0 is below 0.0, so `-0.0 == 0.0` is false.
#[test]
fn l45_negative_zero_is_not_zero() {
    let attrs = notification([("nz", Value::Real64(-0.0)), ("pz", Value::Real64(0.0))]);
    assert_eq!(eval("nz == pz", &attrs), False);
    assert_eq!(eval("nz < pz", &attrs), True);
    assert_eq!(eval("nz == 0", &attrs), False);
    assert_eq!(eval("pz == 0", &attrs), True);
    assert_eq!(eval("nz == -0.0", &attrs), True);
}

/// L46: NaN is greater than +Inf.
#[test]
fn l46_nan_is_greater_than_infinity() {
    let attrs = notification([
        ("n", Value::Real64(f64::NAN)),
        ("inf", Value::Real64(f64::INFINITY)),
    ]);
    assert_eq!(eval("n > inf", &attrs), True);
    assert_eq!(eval("inf < n", &attrs), True);
}

/// L42: constant folding wraps like run-time arithmetic:
/// `2147483647 + 1` folds to -2147483648.
#[test]
fn l42_folded_overflow_wraps() {
    let attrs = notification([("a", Value::Int32(i32::MIN))]);
    assert_eq!(eval("a == 2147483647 + 1", &attrs), True);
    assert_eq!(eval("a == -2147483647 - 1", &attrs), True);
    assert_eq!(eval("a == 9223372036854775807L + 1", &attrs), False);
}

/// L47: equality across numeric types: `a == 1`, `a == 1.0` and `a == 1L`
/// are all true for int32 `a` = 1.
#[test]
fn l47_numeric_equality_across_types() {
    let attrs = notification([("a", Value::Int32(1))]);
    for expr in ["a == 1", "a == 1.0", "a == 1L"] {
        assert_eq!(eval(expr, &attrs), True, "{expr}");
    }
}

/// L48: the shift count is masked to 5 bits for int32: `1 << 33` is 2.
#[test]
fn l48_shift_count_is_masked() {
    let attrs = notification([("a", Value::Int32(1)), ("l", Value::Int64(1))]);
    assert_eq!(eval("a << 33 == 2", &attrs), True);
    assert_eq!(eval("l << 65 == 2", &attrs), True);
    assert_eq!(
        eval("a << 33L == 8589934592L", &attrs),
        True,
        "int64 count promotes"
    );
}

/// L20: `%` works on reals, with the sign of the dividend.
#[test]
fn l20_modulo_on_reals() {
    let attrs = notification([("a", Value::Real64(5.5)), ("b", Value::Real64(-5.5))]);
    assert_eq!(eval("a % 2 == 1.5", &attrs), True);
    assert_eq!(eval("b % 2.0 == -1.5", &attrs), True);
}

/// L41: real division by zero is the IEEE result (±Inf or NaN), not ⊥.
#[test]
fn l41_real_division_by_zero_is_ieee() {
    let attrs = notification([
        ("a", Value::Real64(1.0)),
        ("z", Value::Real64(0.0)),
        ("inf", Value::Real64(f64::INFINITY)),
        ("nan", Value::Real64(f64::NAN)),
    ]);
    assert_eq!(eval("a / 0 == inf", &attrs), True);
    assert_eq!(eval("-a / 0.0 < -1.0e300", &attrs), True);
    assert_eq!(eval("z / z == nan", &attrs), True);
}

/// L43: `-2147483648` is unary minus applied to 2147483648, which does not
/// fit an int32: OVERFLOW 2105 (Avis sent no reply at all). The workarounds
/// compile.
#[test]
fn l43_int32_minimum_literal_overflows() {
    let err = error("a == -2147483648");
    assert_eq!(err.code, codes::OVERFLOW);
    assert_eq!((err.column, err.token.as_str()), (7, "2147483648"));
    let attrs = notification([("a", Value::Int32(i32::MIN))]);
    assert_eq!(eval("a == -2147483647 - 1", &attrs), True);
    assert_eq!(eval("a == -2147483648L", &attrs), True);
}

// ---------------------------------------------------------------------------
// S: strings and string functions

/// S05: the empty string is a prefix, suffix and substring of every string.
#[test]
fn s05_contains_empty_string() {
    let attrs = notification([("s", Value::from("abc")), ("e", Value::from(""))]);
    assert_eq!(eval("contains(s, \"\")", &attrs), True);
    assert_eq!(eval("begins-with(s, \"\")", &attrs), True);
    assert_eq!(eval("ends-with(e, \"\")", &attrs), True);
}

/// S06: a string predicate on a non-string is ⊥ (Avis threw, breaking
/// delivery for the whole connection; we do not copy that).
#[test]
fn s06_string_predicate_on_non_string_is_bottom() {
    let attrs = notification([("x", Value::Int32(1)), ("o", Value::Opaque(b"a".to_vec()))]);
    for expr in [
        "begins-with(x, \"a\")",
        "ends-with(x, \"a\")",
        "contains(o, \"a\")",
        "wildcard(x, \"*\")",
        "regex(o, \"a\")",
    ] {
        assert_eq!(eval(expr, &attrs), Bottom, "{expr}");
    }
    // Other operands still decide: the evaluation carries on.
    assert_eq!(eval("begins-with(x, \"a\") || x == 1", &attrs), True);
}

/// S07: a string function on a non-string is ⊥ too.
#[test]
fn s07_string_function_on_non_string_is_bottom() {
    let attrs = notification([("x", Value::Int32(1))]);
    assert_eq!(eval("fold-case(x) == \"1\"", &attrs), Bottom);
    assert_eq!(eval("decompose(x) == \"1\"", &attrs), Bottom);
    assert_eq!(eval("begins-with(fold-case(x), \"1\")", &attrs), Bottom);
}

/// S12: `regex` is an unanchored search, with `.` matching newlines.
#[test]
fn s12_regex_is_an_unanchored_search() {
    let attrs = notification([("s", Value::from("abc")), ("m", Value::from("a\nc"))]);
    assert_eq!(eval("regex(s, \"b\")", &attrs), True);
    assert_eq!(eval("regex(s, \"^b\")", &attrs), False);
    assert_eq!(eval("regex(s, \"^abc$\")", &attrs), True);
    assert_eq!(eval("regex(m, \"a.c\")", &attrs), True);
    assert_eq!(
        eval("regex(s, \"x\", \"c$\")", &attrs),
        True,
        "several patterns are ORed"
    );
}

/// S15: `decompose` is Unicode NFD.
#[test]
fn s15_decompose_is_nfd() {
    let attrs = notification([("s", Value::from("\u{e9}"))]);
    assert_eq!(eval("decompose(s) == \"e\u{301}\"", &attrs), True);
    assert_eq!(eval("decompose(s) == s", &attrs), False);
}

/// S16: `decompose-compat` is Unicode NFKD: compatibility characters
/// decompose too, which NFD leaves alone.
#[test]
fn s16_decompose_compat_is_nfkd() {
    let attrs = notification([("s", Value::from("\u{fb01}")), ("t", Value::from("\u{e9}"))]);
    assert_eq!(eval("decompose-compat(s) == \"fi\"", &attrs), True);
    assert_eq!(eval("decompose(s) == \"fi\"", &attrs), False);
    assert_eq!(eval("decompose-compat(t) == \"e\u{301}\"", &attrs), True);
}

/// S19: `size` counts a string in UTF-8 bytes (the spec; Avis counted
/// UTF-16 units and said 1): `size` of "é" is 2.
#[test]
fn s19_size_counts_utf8_bytes() {
    let attrs = notification([
        ("s", Value::from("\u{e9}")),
        ("t", Value::from("\u{1F600}")),
    ]);
    assert_eq!(eval("size(s) == 2", &attrs), True);
    assert_eq!(eval("size(t) == 4", &attrs), True);
}

/// S21: strings order lexicographically by code point, as Avis allows.
#[test]
fn s21_string_ordering() {
    let attrs = notification([("s", Value::from("a")), ("t", Value::from("c"))]);
    assert_eq!(eval("s < \"b\"", &attrs), True);
    assert_eq!(eval("t < \"b\"", &attrs), False);
    assert_eq!(eval("s <= \"a\"", &attrs), True);
    assert_eq!(eval("\"b\" < t", &attrs), True);
}

/// S22: opaque values are never comparable, even with themselves.
#[test]
fn s22_opaque_equality_is_bottom() {
    let attrs = notification([
        ("o", Value::Opaque(vec![1, 2])),
        ("p", Value::Opaque(vec![1, 2])),
    ]);
    assert_eq!(eval("o == o", &attrs), Bottom);
    assert_eq!(eval("o == p", &attrs), Bottom);
    assert_eq!(eval("o != p", &attrs), Bottom);
    assert_eq!(eval("equals(o, \"x\")", &attrs), Bottom);
}

/// S24: a backslash makes a double quote literal inside a string.
#[test]
fn s24_escaped_double_quote() {
    let attrs = notification([("s", Value::from("a\"b"))]);
    assert_eq!(eval(r#"s == "a\"b""#, &attrs), True);
    assert_eq!(eval(r#"s == 'a"b'"#, &attrs), True);
}

/// S25: a backslash makes a single quote (or a backslash) literal.
#[test]
fn s25_escaped_single_quote_and_backslash() {
    let attrs = notification([("s", Value::from("it's")), ("b", Value::from("a\\b"))]);
    assert_eq!(eval(r"s == 'it\'s'", &attrs), True);
    assert_eq!(eval(r#"b == "a\\b""#, &attrs), True);
}

/// S26: there are no C escapes: `\n` is the letter n.
#[test]
fn s26_backslash_n_is_the_letter_n() {
    let n = notification([("s", Value::from("n"))]);
    let newline = notification([("s", Value::from("\n"))]);
    assert_eq!(eval(r#"s == "\n""#, &n), True);
    assert_eq!(eval(r#"s == "\n""#, &newline), False);
}

/// S28: a backslash in a wildcard pattern escapes `*`. The string literal
/// consumes one level of backslashes, so the pattern `a\*` is written
/// `"a\\*"`; `"a\*"` is the pattern `a*`.
#[test]
fn s28_escaped_star_in_wildcard() {
    let star = notification([("s", Value::from("a*"))]);
    let other = notification([("s", Value::from("ab"))]);
    assert_eq!(eval(r#"wildcard(s, "a\\*")"#, &star), True);
    assert_eq!(eval(r#"wildcard(s, "a\\*")"#, &other), False);
    assert_eq!(eval(r#"wildcard(s, "a\*")"#, &other), True);
}

// ---------------------------------------------------------------------------
// P: predicates on missing names

/// P06: `require` of a missing name is ⊥ (not false).
#[test]
fn p06_require_missing_is_bottom() {
    let attrs = notification([("e", Value::from(""))]);
    assert_eq!(eval("require(missing)", &attrs), Bottom);
    assert_eq!(eval("require(e)", &attrs), True, "present even if empty");
}

/// P07: type tests on a missing name are ⊥.
#[test]
fn p07_type_tests_on_missing_are_bottom() {
    let empty = notification([]);
    for f in ["int32", "int64", "real64", "string", "opaque"] {
        assert_eq!(eval(&format!("{f}(missing)"), &empty), Bottom, "{f}");
    }
}

/// P08: `nan` on a missing name is ⊥.
#[test]
fn p08_nan_on_missing_is_bottom() {
    assert_eq!(eval("nan(missing)", &notification([])), Bottom);
}

/// P09: string predicates on a missing name are ⊥.
#[test]
fn p09_string_predicates_on_missing_are_bottom() {
    let empty = notification([]);
    for expr in [
        "begins-with(m, \"a\")",
        "ends-with(m, \"a\")",
        "contains(m, \"\")",
        "wildcard(m, \"*\")",
        "regex(m, \"\")",
    ] {
        assert_eq!(eval(expr, &empty), Bottom, "{expr}");
    }
}

/// P10: `size` and `equals` on a missing name are ⊥.
#[test]
fn p10_size_and_equals_on_missing_are_bottom() {
    let empty = notification([]);
    assert_eq!(eval("size(m) == 0", &empty), Bottom);
    assert_eq!(eval("equals(m, 1, \"a\")", &empty), Bottom);
}

/// P13: `equals` with literals of mixed types compares each as `==` would
/// and ORs the results.
#[test]
fn p13_equals_with_mixed_literal_types() {
    let expr = "equals(a, 1, \"x\", 2.5)";
    assert_eq!(eval(expr, &notification([("a", Value::Int32(1))])), True);
    assert_eq!(eval(expr, &notification([("a", Value::Int64(1))])), True);
    assert_eq!(eval(expr, &notification([("a", Value::from("x"))])), True);
    assert_eq!(eval(expr, &notification([("a", Value::Real64(2.5))])), True);
    // No candidate equal, and some comparisons undefined: ⊥.
    assert_eq!(eval(expr, &notification([("a", Value::Int32(2))])), Bottom);
    assert_eq!(eval(expr, &notification([("a", Value::from("y"))])), Bottom);
    assert_eq!(
        eval("equals(a, 1, 2)", &notification([("a", Value::Int32(3))])),
        False
    );
}

// ---------------------------------------------------------------------------
// N: names

/// N01: a backslash escapes any character in a name, including spaces.
#[test]
fn n01_escaped_names() {
    let attrs = notification([
        (" we can have spaces", Value::Int32(1)),
        ("a(b)", Value::Int32(2)),
    ]);
    assert_eq!(eval(r"\ we\ can\ have\ spaces == 1", &attrs), True);
    assert_eq!(eval(r"a\(b\) == 2", &attrs), True);
}

/// N02: operator characters are part of names, so `a==1` is one name (a
/// non-boolean expression) and `pipe= > 20` compares a field named `pipe=`.
#[test]
fn n02_operator_characters_inside_names() {
    let err = error("a==1");
    assert_eq!(err.code, codes::TYPE_MISMATCH);
    assert!(
        err.message.contains("does not evaluate to boolean"),
        "{}",
        err.message
    );
    let attrs = notification([("pipe=", Value::Int32(30))]);
    assert_eq!(eval("pipe= > 20", &attrs), True);
}

/// N03: names may contain `-`, `.`, `/`, `:` and the like, and need no
/// quoting; there are no reserved words (`true` is a name).
#[test]
fn n03_punctuated_names_and_no_reserved_words() {
    let attrs = notification([
        ("a-b", Value::Int32(7)),
        ("x.y/z:w", Value::from("q")),
        ("true", Value::Int32(1)),
    ]);
    assert_eq!(eval("a-b == 7", &attrs), True);
    assert_eq!(eval("x.y/z:w == \"q\"", &attrs), True);
    assert_eq!(eval("true == 1", &attrs), True);
    assert_eq!(error("true").code, codes::TYPE_MISMATCH);
}

/// N06: the exact Emulab expression style evaluates as intended.
#[test]
fn n06_emulab_expression_style() {
    let expr = r#" (TAG == "v1" || TAG == "v2" ) && (TAG2 == "x" ) && SCHEDULER == 0 "#;
    let yes = notification([
        ("TAG", Value::from("v2")),
        ("TAG2", Value::from("x")),
        ("SCHEDULER", Value::Int32(0)),
    ]);
    let no = notification([
        ("TAG", Value::from("v3")),
        ("TAG2", Value::from("x")),
        ("SCHEDULER", Value::Int32(0)),
    ]);
    assert_eq!(eval(expr, &yes), True);
    assert_eq!(eval(expr, &no), False);
}

// ---------------------------------------------------------------------------
// E: the error catalogue

fn assert_error(expr: &str, code: u32, column: i32, token: &str) {
    let err = error(expr);
    assert_eq!(
        (err.code, err.column, err.token.as_str()),
        (code, column, token),
        "{expr:?}: {}",
        err.message
    );
    assert!(!err.message.is_empty());
}

/// E01: a missing operand is a parse error at the end of the expression.
#[test]
fn e01_missing_operand() {
    assert_error("a ==", codes::PARSE_ERROR, 5, "");
    let err = error("a ==");
    assert!(
        err.message.starts_with("Parse error at column 5"),
        "{}",
        err.message
    );
}

/// E02: an unbalanced parenthesis is a parse error.
#[test]
fn e02_unbalanced_parenthesis() {
    assert_error("(a == 1", codes::PARSE_ERROR, 8, "");
    assert_error("a == 1)", codes::PARSE_ERROR, 7, ")");
}

/// E03: an unterminated string is a lexical error (UNTERM_STRING).
#[test]
fn e03_unterminated_string() {
    assert_error("a == \"abc", codes::UNTERM_STRING, 6, "\"abc");
}

/// E04: a character that starts no token is INVALID_TOKEN.
#[test]
fn e04_invalid_character() {
    assert_error("a == 1 @", codes::INVALID_TOKEN, 8, "@");
    assert_error("a = 1", codes::INVALID_TOKEN, 3, "=");
}

/// E05: `1.` is not a real literal (digits are needed after the point).
#[test]
fn e05_real_without_fraction_digits() {
    assert_error("a == 1.", codes::INVALID_TOKEN, 7, ".");
}

/// E06: `.5` is not a real literal (digits are needed before the point).
#[test]
fn e06_real_without_integer_digits() {
    assert_error("a == .5", codes::INVALID_TOKEN, 6, ".");
}

/// E07: `1e3` is not a literal: it is `1` followed by the name `e3`.
#[test]
fn e07_exponent_without_point() {
    assert_error("a == 1e3", codes::PARSE_ERROR, 7, "e3");
}

/// E08: `08` is the tokens `0` and `8`, a parse error.
#[test]
fn e08_eight_after_leading_zero() {
    assert_error("a == 08", codes::PARSE_ERROR, 7, "8");
}

/// E09: a trailing lone backslash is an error.
#[test]
fn e09_trailing_backslash() {
    assert_error("a == 1 && b\\", codes::INVALID_TOKEN, 11, "b\\");
}

/// E10: an unknown function (UNKNOWN_FUNC), named in the message.
#[test]
fn e10_unknown_function() {
    assert_error("foo(a)", codes::UNKNOWN_FUNC, 1, "foo");
    assert!(error("foo(a)").message.starts_with("Unknown function: foo"));
}

/// E11: too few arguments (`begins-with(s)`).
#[test]
fn e11_too_few_arguments() {
    assert_error("begins-with(s)", codes::TOO_FEW_ARGS, 1, "begins-with");
    assert_error("require()", codes::TOO_FEW_ARGS, 1, "require");
}

/// E12: too many arguments (`size(s, t)`).
#[test]
fn e12_too_many_arguments() {
    assert_error("size(s, t) == 1", codes::TOO_MANY_ARGS, 1, "size");
}

/// E13: an integer literal that overflows its type: OVERFLOW, where Avis
/// sent no reply at all.
#[test]
fn e13_literal_overflow() {
    assert_error("a == 4294967296", codes::OVERFLOW, 6, "4294967296");
    assert_error("a == 2147483648", codes::OVERFLOW, 6, "2147483648");
    assert_error(
        "a == 99999999999999999999L",
        codes::OVERFLOW,
        6,
        "99999999999999999999L",
    );
    assert_error("a == 1.0e400", codes::OVERFLOW, 6, "1.0e400");
}

/// E14: a string literal as an arithmetic operand.
#[test]
fn e14_string_in_arithmetic() {
    assert_error("a + \"x\" == 1", codes::TYPE_MISMATCH, 5, "\"x\"");
    assert!(
        error("a + \"x\" == 1")
            .message
            .contains("\"+\" needs a number as an argument (was string)")
    );
}

/// E15: a number where a string function needs a string literal pattern.
#[test]
fn e15_non_string_pattern() {
    assert_error("begins-with(s, 1)", codes::TYPE_MISMATCH, 16, "1");
    assert_error("begins-with(s, t)", codes::TYPE_MISMATCH, 16, "t");
}

/// E16: a real literal as an operand of a bitwise operator.
#[test]
fn e16_real_in_bitwise_operation() {
    assert_error("~1.5 == a", codes::TYPE_MISMATCH, 2, "1.5");
    assert_error("a & 1.5 == 1", codes::TYPE_MISMATCH, 5, "1.5");
}

/// E17: comparing a string literal with a number literal.
#[test]
fn e17_string_compared_with_number() {
    assert_error("a == 1 && \"x\" < 1", codes::TYPE_MISMATCH, 15, "<");
}

/// E18: a bare name does not evaluate to a boolean.
#[test]
fn e18_name_is_not_boolean() {
    assert_error("a", codes::TYPE_MISMATCH, 1, "a");
    assert!(
        error("a")
            .message
            .starts_with("Expression does not evaluate to boolean: a")
    );
}

/// E19: arithmetic does not evaluate to a boolean.
#[test]
fn e19_arithmetic_is_not_boolean() {
    assert_error("a + 1", codes::TYPE_MISMATCH, 1, "a");
    assert!(error("a + 1").message.contains("a + 1 is a number value"));
}

/// E20: a string literal does not evaluate to a boolean.
#[test]
fn e20_string_is_not_boolean() {
    assert_error("\"abc\"", codes::TYPE_MISMATCH, 1, "\"abc\"");
}

/// E21: `true` is a name, not a boolean literal.
#[test]
fn e21_true_is_a_name() {
    assert_error("true", codes::TYPE_MISMATCH, 1, "true");
    assert_error("a == 1 && true", codes::TYPE_MISMATCH, 11, "true");
}

/// E22: an expression of literals only is constant: EXP_IS_TRIVIAL, with
/// the "Expression is constant" message and no token.
#[test]
fn e22_constant_expression() {
    for expr in [
        "1 == 1",
        "1 == 2",
        "\"a\" < \"b\"",
        "!(1 == 2)",
        "1 / 0 == 1",
    ] {
        let err = error(expr);
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::EXP_IS_TRIVIAL, 0, ""),
            "{expr}"
        );
        assert!(
            err.message.starts_with("Expression is constant: "),
            "{}",
            err.message
        );
    }
}

/// E23: an expression that folds to a constant through logic is trivial
/// too; one that folds to a non-constant is accepted.
#[test]
fn e23_expression_folding_to_constant() {
    assert_eq!(error("a == 1 || 1 == 1").code, codes::EXP_IS_TRIVIAL);
    assert_eq!(error("a == 1 && 1 == 2").code, codes::EXP_IS_TRIVIAL);
    let attrs = notification([("a", Value::Int32(1))]);
    assert_eq!(eval("a == 1 && 1 == 1", &attrs), True);
}

/// E24: an invalid regular expression is INVALID_REGEXP, pointing at the
/// pattern.
#[test]
fn e24_invalid_regex() {
    assert_error("regex(s, \"(\")", codes::INVALID_REGEXP, 10, "\"(\"");
    assert_error(
        "regex(s, \"a\", \"[z-a]\")",
        codes::INVALID_REGEXP,
        15,
        "\"[z-a]\"",
    );
    assert_error(
        "regex(s, \"(a)\\\\1\")",
        codes::INVALID_REGEXP,
        10,
        "\"(a)\\\\1\"",
    );
}

// ---------------------------------------------------------------------------
// Emulab expression shapes (docs/emulab-model.md §2), exact strings

#[test]
fn emulab_shape_eventdebug() {
    let expr = " SCHEDULER == 0 ";
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "LINK", "link0", 0)),
        True
    );
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "LINK", "link0", 1)),
        False
    );
    assert_eq!(
        eval(expr, &notification([])),
        Bottom,
        "no SCHEDULER: delivered to nobody"
    );
}

#[test]
fn emulab_shape_tbrecv() {
    let expr = r#" ( HOST == "*" ) && ( OBJTYPE == "TBEXAMPLE" ) && SCHEDULER == 0 "#;
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "TBEXAMPLE", "x", 0)),
        True
    );
    assert_eq!(
        eval(expr, &emulab_event("p/e", "10.1.1.2", "TBEXAMPLE", "x", 0)),
        False,
        "* is a literal"
    );
    assert_eq!(eval(expr, &emulab_event("p/e", "*", "LINK", "x", 0)), False);
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "TBEXAMPLE", "x", 1)),
        False
    );
}

#[test]
fn emulab_shape_evproxy() {
    let expr = r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.1.1.2" ) && SCHEDULER == 0 "#;
    assert_eq!(eval(expr, &emulab_event("p/e", "*", "LINK", "l", 0)), True);
    assert_eq!(
        eval(expr, &emulab_event("p/e", "10.1.1.2", "LINK", "l", 0)),
        True
    );
    assert_eq!(
        eval(expr, &emulab_event("p/e", "10.1.1.3", "LINK", "l", 0)),
        False
    );
    assert_eq!(
        eval(expr, &emulab_event("p/other", "*", "LINK", "l", 0)),
        False
    );
    let sub = common::compile(expr);
    let constraints = sub.constraints();
    assert_eq!(constraints.len(), 3);
    assert_eq!(constraints[1].attribute, "HOST");
    assert_eq!(
        constraints[1].values,
        [
            IndexKey::String("*".into()),
            IndexKey::String("10.1.1.2".into())
        ]
    );
}

#[test]
fn emulab_shape_event_sched() {
    let expr = r#" ( EXPT == "p/e" ) && SCHEDULER == 1 "#;
    assert_eq!(eval(expr, &emulab_event("p/e", "*", "LINK", "l", 1)), True);
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "LINK", "l", 0)),
        False,
        "fired events do not loop back"
    );
}

#[test]
fn emulab_shape_program_agent() {
    let expr = r#" ( EXPT == "p/e" ) && ( OBJTYPE == "PROGRAM" ) && ( OBJNAME == "a" || OBJNAME == "b" ) && SCHEDULER == 0 "#;
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "PROGRAM", "a", 0)),
        True
    );
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "PROGRAM", "b", 0)),
        True
    );
    assert_eq!(
        eval(expr, &emulab_event("p/e", "*", "PROGRAM", "c", 0)),
        False
    );
    assert_eq!(eval(expr, &emulab_event("p/e", "*", "LINK", "a", 0)), False);
}

/// Emulab's client refuses an empty field value because it would produce
/// `()`, which is invalid; we reject it as a parse error too.
#[test]
fn emulab_empty_group_is_a_parse_error() {
    assert_eq!(
        error(r#" ( EXPT == "p/e" ) && () && SCHEDULER == 0 "#).code,
        codes::PARSE_ERROR
    );
}

/// N03: whitespace may stand between a function name and its `(`; the Elvin
/// draft writes its own examples that way, so clients send them.
#[test]
fn n03_function_name_then_space_then_paren() {
    let attrs = notification([
        ("Presence-Protocol", Value::Int32(1000)),
        ("Groups", Value::from("elvin")),
        ("User", Value::from("Matthew@Home")),
    ]);
    let draft =
        "Presence-Protocol < 2000 && string (Groups) && fold-case (User) != \"matthew@home\"";
    assert_eq!(eval(draft, &attrs), False);
    let other = notification([
        ("Presence-Protocol", Value::Int32(1000)),
        ("Groups", Value::from("elvin")),
        ("User", Value::from("someone@else")),
    ]);
    assert_eq!(eval(draft, &other), True);
    // A name not followed by "(" stays a field, even if it names a function.
    let field = notification([("require", Value::Int32(3))]);
    assert_eq!(eval("require == 3", &field), True);
}
