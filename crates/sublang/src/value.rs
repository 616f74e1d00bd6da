//! Values during evaluation, and the arithmetic and comparison rules.
//!
//! The same functions serve constant folding at compile time and evaluation
//! at run time, so a folded constant always equals what evaluation would
//! have produced. `None` stands for bottom (⊥, "undefined") throughout.
//!
//! - **Promotion**: if either operand is real64 both become real64,
//!   otherwise if either is int64 both become int64, otherwise both are
//!   int32. Results keep the promoted type.
//! - **Integer arithmetic wraps** (two's complement); `/` truncates toward
//!   zero and `%` takes the dividend's sign; dividing by zero is ⊥.
//! - **Shifts and bitwise operators** take integers only. The shift count is
//!   masked to 5 bits for int32 and 6 bits for int64; `>>` is arithmetic and
//!   `>>>` logical.
//! - **Reals** follow IEEE 754 (`/` by zero is ±Inf or NaN; `%` is the C
//!   `fmod`), but compare as a total order in which every NaN is one value,
//!   above +Inf, and -0.0 is below 0.0 (so `-0.0 == 0.0` is false).
//! - **Strings** compare by code point. **Opaque** values compare with
//!   nothing, not even themselves. Mixed string and number is ⊥.

use std::borrow::Cow;
use std::cmp::Ordering;

use elvin_proto::ValueRef;

use crate::ast::{BinOp, CmpOp, UnaryOp};

/// A value produced during evaluation. Strings borrow from the notification
/// or from the compiled expression, and are owned only when a string
/// function (`fold-case`, `decompose`) had to build a new one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val<'a> {
    Int32(i32),
    Int64(i64),
    Real64(f64),
    Str(Cow<'a, str>),
    Opaque(&'a [u8]),
}

/// A number, the operand type of arithmetic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    Int32(i32),
    Int64(i64),
    Real64(f64),
}

impl<'a> From<ValueRef<'a>> for Val<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Int32(v) => Val::Int32(v),
            ValueRef::Int64(v) => Val::Int64(v),
            ValueRef::Real64(v) => Val::Real64(v),
            ValueRef::String(s) => Val::Str(Cow::Borrowed(s)),
            ValueRef::Opaque(b) => Val::Opaque(b),
        }
    }
}

impl From<Num> for Val<'_> {
    fn from(n: Num) -> Self {
        match n {
            Num::Int32(v) => Val::Int32(v),
            Num::Int64(v) => Val::Int64(v),
            Num::Real64(v) => Val::Real64(v),
        }
    }
}

impl Val<'_> {
    /// The value as a number, or `None` for strings and opaque values.
    pub(crate) fn as_num(&self) -> Option<Num> {
        match *self {
            Val::Int32(v) => Some(Num::Int32(v)),
            Val::Int64(v) => Some(Num::Int64(v)),
            Val::Real64(v) => Some(Num::Real64(v)),
            Val::Str(_) | Val::Opaque(_) => None,
        }
    }
}

/// Both operands after promotion to a common type.
enum Promoted {
    Int32(i32, i32),
    Int64(i64, i64),
    Real64(f64, f64),
}

fn promote(a: Num, b: Num) -> Promoted {
    match (a, b) {
        (Num::Int32(x), Num::Int32(y)) => Promoted::Int32(x, y),
        (Num::Real64(x), y) => Promoted::Real64(x, as_real(y)),
        (x, Num::Real64(y)) => Promoted::Real64(as_real(x), y),
        (x, y) => Promoted::Int64(as_int64(x), as_int64(y)),
    }
}

/// A number as real64 (int64 values beyond 2^53 round, as in Java).
fn as_real(n: Num) -> f64 {
    match n {
        Num::Int32(v) => f64::from(v),
        // Rounding to nearest is the promotion rule, not an accident.
        #[allow(clippy::cast_precision_loss)]
        Num::Int64(v) => v as f64,
        Num::Real64(v) => v,
    }
}

/// An integer as int64; only called once reals are ruled out.
fn as_int64(n: Num) -> i64 {
    match n {
        Num::Int32(v) => i64::from(v),
        Num::Int64(v) => v,
        // Unreachable from `promote`, which sends reals elsewhere; saturate
        // rather than panic should that ever change.
        #[allow(clippy::cast_possible_truncation)]
        Num::Real64(v) => v as i64,
    }
}

/// `a op b`, or ⊥ for integer division by zero and for bitwise or shift
/// operators on reals.
pub(crate) fn binary(op: BinOp, a: Num, b: Num) -> Option<Num> {
    // Shift counts are deliberately truncated and then masked by the
    // wrapping shifts (5 bits for i32, 6 for i64).
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let result = match promote(a, b) {
        Promoted::Int32(x, y) => Num::Int32(match op {
            BinOp::Add => x.wrapping_add(y),
            BinOp::Sub => x.wrapping_sub(y),
            BinOp::Mul => x.wrapping_mul(y),
            BinOp::Div if y == 0 => return None,
            BinOp::Div => x.wrapping_div(y),
            BinOp::Rem if y == 0 => return None,
            BinOp::Rem => x.wrapping_rem(y),
            BinOp::Shl => x.wrapping_shl(y as u32),
            BinOp::Shr => x.wrapping_shr(y as u32),
            BinOp::Ushr => (x as u32).wrapping_shr(y as u32) as i32,
            BinOp::BitAnd => x & y,
            BinOp::BitOr => x | y,
            BinOp::BitXor => x ^ y,
        }),
        Promoted::Int64(x, y) => Num::Int64(match op {
            BinOp::Add => x.wrapping_add(y),
            BinOp::Sub => x.wrapping_sub(y),
            BinOp::Mul => x.wrapping_mul(y),
            BinOp::Div if y == 0 => return None,
            BinOp::Div => x.wrapping_div(y),
            BinOp::Rem if y == 0 => return None,
            BinOp::Rem => x.wrapping_rem(y),
            BinOp::Shl => x.wrapping_shl(y as u32),
            BinOp::Shr => x.wrapping_shr(y as u32),
            BinOp::Ushr => (x as u64).wrapping_shr(y as u32) as i64,
            BinOp::BitAnd => x & y,
            BinOp::BitOr => x | y,
            BinOp::BitXor => x ^ y,
        }),
        Promoted::Real64(x, y) => Num::Real64(match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
            BinOp::Rem => x % y,
            BinOp::Shl
            | BinOp::Shr
            | BinOp::Ushr
            | BinOp::BitAnd
            | BinOp::BitOr
            | BinOp::BitXor => return None,
        }),
    };
    Some(result)
}

/// `op a`, or ⊥ for `~` on a real.
pub(crate) fn unary(op: UnaryOp, a: Num) -> Option<Num> {
    Some(match (op, a) {
        (UnaryOp::Plus, n) => n,
        (UnaryOp::Neg, Num::Int32(v)) => Num::Int32(v.wrapping_neg()),
        (UnaryOp::Neg, Num::Int64(v)) => Num::Int64(v.wrapping_neg()),
        (UnaryOp::Neg, Num::Real64(v)) => Num::Real64(-v),
        (UnaryOp::BitNot, Num::Int32(v)) => Num::Int32(!v),
        (UnaryOp::BitNot, Num::Int64(v)) => Num::Int64(!v),
        (UnaryOp::BitNot, Num::Real64(_)) => return None,
    })
}

/// The total order on reals used by comparisons: IEEE total order, except
/// that every NaN is one value (equal to every other NaN, above +Inf).
pub(crate) fn compare_reals(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.total_cmp(&b),
    }
}

/// Orders two numbers after promotion.
pub(crate) fn compare_nums(a: Num, b: Num) -> Ordering {
    match promote(a, b) {
        Promoted::Int32(x, y) => x.cmp(&y),
        Promoted::Int64(x, y) => x.cmp(&y),
        Promoted::Real64(x, y) => compare_reals(x, y),
    }
}

/// Orders two values, or `None` (⊥) if they are not comparable: a string
/// with a number, or anything with an opaque value.
pub(crate) fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Opaque(_), _) | (_, Val::Opaque(_)) => None,
        _ => Some(compare_nums(a.as_num()?, b.as_num()?)),
    }
}

/// Whether `ordering` satisfies `op`.
pub(crate) fn holds(op: CmpOp, ordering: Ordering) -> bool {
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i32v(v: i32) -> Num {
        Num::Int32(v)
    }

    #[test]
    fn integer_arithmetic_wraps() {
        assert_eq!(
            binary(BinOp::Add, i32v(i32::MAX), i32v(1)),
            Some(i32v(i32::MIN))
        );
        assert_eq!(
            binary(BinOp::Mul, Num::Int64(i64::MAX), Num::Int64(2)),
            Some(Num::Int64(-2))
        );
        assert_eq!(
            binary(BinOp::Div, i32v(i32::MIN), i32v(-1)),
            Some(i32v(i32::MIN))
        );
        assert_eq!(binary(BinOp::Rem, i32v(i32::MIN), i32v(-1)), Some(i32v(0)));
        assert_eq!(
            binary(BinOp::Div, Num::Int64(i64::MIN), Num::Int64(-1)),
            Some(Num::Int64(i64::MIN))
        );
        assert_eq!(unary(UnaryOp::Neg, i32v(i32::MIN)), Some(i32v(i32::MIN)));
    }

    #[test]
    fn division_truncates_and_remainder_follows_the_dividend() {
        assert_eq!(binary(BinOp::Div, i32v(-7), i32v(2)), Some(i32v(-3)));
        assert_eq!(binary(BinOp::Rem, i32v(-7), i32v(2)), Some(i32v(-1)));
        assert_eq!(binary(BinOp::Rem, i32v(7), i32v(-2)), Some(i32v(1)));
        assert_eq!(binary(BinOp::Div, i32v(1), i32v(0)), None);
        assert_eq!(binary(BinOp::Rem, Num::Int64(1), Num::Int64(0)), None);
        assert_eq!(
            binary(BinOp::Rem, Num::Real64(5.5), Num::Real64(2.0)),
            Some(Num::Real64(1.5))
        );
        assert_eq!(
            binary(BinOp::Rem, Num::Real64(-5.5), Num::Real64(2.0)),
            Some(Num::Real64(-1.5))
        );
    }

    #[test]
    fn shifts_mask_their_count() {
        assert_eq!(binary(BinOp::Shl, i32v(1), i32v(33)), Some(i32v(2)));
        assert_eq!(binary(BinOp::Shl, i32v(1), i32v(-1)), Some(i32v(i32::MIN)));
        assert_eq!(
            binary(BinOp::Shl, Num::Int64(1), Num::Int64(65)),
            Some(Num::Int64(2))
        );
        assert_eq!(
            binary(BinOp::Shl, i32v(1), Num::Int64(33)),
            Some(Num::Int64(1 << 33))
        );
        assert_eq!(binary(BinOp::Shr, i32v(-1), i32v(28)), Some(i32v(-1)));
        assert_eq!(binary(BinOp::Ushr, i32v(-1), i32v(28)), Some(i32v(15)));
        assert_eq!(
            binary(BinOp::Ushr, Num::Int64(-1), Num::Int64(60)),
            Some(Num::Int64(15))
        );
        assert_eq!(binary(BinOp::Shl, Num::Real64(1.0), i32v(1)), None);
    }

    #[test]
    fn promotion_picks_the_widest_type() {
        assert_eq!(
            binary(BinOp::Add, i32v(1), Num::Int64(2)),
            Some(Num::Int64(3))
        );
        assert_eq!(
            binary(BinOp::Add, Num::Int64(1), Num::Real64(0.5)),
            Some(Num::Real64(1.5))
        );
        assert_eq!(
            binary(BinOp::Div, i32v(1), Num::Real64(0.0)),
            Some(Num::Real64(f64::INFINITY))
        );
    }

    #[test]
    fn reals_compare_as_a_total_order_with_one_nan() {
        let nan = f64::NAN;
        assert_eq!(compare_reals(nan, -nan), Ordering::Equal);
        assert_eq!(compare_reals(nan, f64::INFINITY), Ordering::Greater);
        assert_eq!(compare_reals(-nan, f64::NEG_INFINITY), Ordering::Greater);
        assert_eq!(compare_reals(-0.0, 0.0), Ordering::Less);
        assert_eq!(compare_nums(i32v(0), Num::Real64(-0.0)), Ordering::Greater);
        assert_eq!(compare_nums(i32v(1), Num::Real64(1.0)), Ordering::Equal);
    }

    #[test]
    fn incomparable_values_give_bottom() {
        let s = Val::Str(Cow::Borrowed("a"));
        let o = Val::Opaque(b"a");
        assert_eq!(compare(&s, &Val::Int32(1)), None);
        assert_eq!(compare(&o, &o), None);
        assert_eq!(
            compare(&s, &Val::Str(Cow::Owned("b".into()))),
            Some(Ordering::Less)
        );
        // Code-point order: U+FFFF sorts before U+10000 (UTF-16 would not).
        let bmp = Val::Str(Cow::Borrowed("\u{ffff}"));
        let astral = Val::Str(Cow::Borrowed("\u{10000}"));
        assert_eq!(compare(&bmp, &astral), Some(Ordering::Less));
    }

    #[test]
    fn holds_matches_each_operator() {
        use Ordering::*;
        let table = [
            (CmpOp::Eq, [false, true, false]),
            (CmpOp::Ne, [true, false, true]),
            (CmpOp::Lt, [true, false, false]),
            (CmpOp::Le, [true, true, false]),
            (CmpOp::Gt, [false, false, true]),
            (CmpOp::Ge, [false, true, true]),
        ];
        for (op, expected) in table {
            let got = [holds(op, Less), holds(op, Equal), holds(op, Greater)];
            assert_eq!(got, expected, "{op:?}");
        }
    }
}
