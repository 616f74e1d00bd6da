//! Index keys and the equality constraints a subscription implies.
//!
//! The router keeps an index from (attribute, value) to the subscriptions
//! that can only match notifications carrying that value, so that most
//! subscriptions are never evaluated for most notifications. For that to be
//! safe, two promises must hold exactly:
//!
//! 1. **[`IndexKey`] agrees with the evaluator's `==`.** For any two values
//!    that both have a key, the keys are equal exactly when `==` is true.
//!    Numbers compare after promotion, so int32 `1`, int64 `1L` and real64
//!    `1.0` share one key; reals compare as a total order, so `-0.0` has a
//!    key of its own (it is not `== 0`) and every NaN shares one key.
//!    Promotion to real64 rounds integers beyond ±2^53, which makes `==`
//!    non-transitive there (`2^53 + 1 == 2^53.0 == 2^53`), so such integers,
//!    and the reals that large, have **no key**; so do opaque values, which
//!    equal nothing.
//! 2. **Constraints are necessary conditions.** For each [`Constraint`] of a
//!    subscription, *whenever the subscription evaluates to true*, the
//!    notification has that attribute and the attribute's value has one of
//!    the constraint's keys. Constraints come from `name == literal`,
//!    `literal == name` and `equals(name, literals…)`; an `&&` has all of
//!    its operands' constraints (two on one attribute are intersected); an
//!    `||` has a constraint on an attribute only if every operand that can
//!    be true constrains it (the value sets are united). `!`, `^^`, `!=`,
//!    ordering comparisons and functions contribute nothing. A literal
//!    without a key (an integer beyond ±2^53, a real of magnitude ≥ 2^53)
//!    contributes nothing either, rather than a constraint that could be
//!    wrong.
//!
//! A router may therefore skip a subscription whenever the notification
//! lacks a constrained attribute, or the attribute's value has no key, or
//! its key is not in the set.

use std::fmt;

use elvin_proto::ValueRef;

use crate::Truth;
use crate::ast::CmpOp;
use crate::compiled::{Expr, Literal, Pred};

/// Integers at or beyond this magnitude lose exactness when promoted to
/// real64, so they get no key.
const EXACT_LIMIT: u64 = 1 << 53;

/// A hashable canonical form of a value, equal exactly when the values are
/// equal under the subscription language's `==`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKey {
    /// An integer-valued number of magnitude below 2^53: an int32, an int64
    /// or an integral real64 other than -0.0.
    Integer(i64),
    /// Any other real64 with a key: non-integral, infinite, or -0.0. Holds
    /// the IEEE bit pattern.
    Real(u64),
    /// Every NaN.
    NaN,
    /// A string, by its exact bytes.
    String(Box<str>),
}

impl IndexKey {
    /// The key of `value`, or `None` if it has none (opaque values,
    /// integers of magnitude ≥ 2^53, and reals that large).
    pub fn of(value: ValueRef<'_>) -> Option<IndexKey> {
        match value {
            ValueRef::Int32(v) => Some(IndexKey::Integer(i64::from(v))),
            ValueRef::Int64(v) => (v.unsigned_abs() < EXACT_LIMIT).then_some(IndexKey::Integer(v)),
            ValueRef::Real64(v) => real_key(v),
            ValueRef::String(s) => Some(IndexKey::String(s.into())),
            ValueRef::Opaque(_) => None,
        }
    }
}

fn real_key(v: f64) -> Option<IndexKey> {
    if v.is_nan() {
        return Some(IndexKey::NaN);
    }
    // -0.0 is integral but not equal to 0, so it keeps a key of its own.
    let negative_zero = v == 0.0 && v.is_sign_negative();
    if v.is_finite() && v.fract() == 0.0 && !negative_zero {
        // Below 2^53 in magnitude the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        return (v.abs() < 9_007_199_254_740_992.0).then_some(IndexKey::Integer(v as i64));
    }
    if v.is_finite() && v.abs() >= 9_007_199_254_740_992.0 {
        return None;
    }
    Some(IndexKey::Real(v.to_bits()))
}

impl fmt::Display for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexKey::Integer(v) => write!(f, "{v}"),
            IndexKey::Real(bits) => write!(f, "{:?}", f64::from_bits(*bits)),
            IndexKey::NaN => f.write_str("NaN"),
            IndexKey::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A necessary condition for a subscription to match: whenever it
/// evaluates to true, the notification has `attribute`, and that
/// attribute's [`IndexKey`] is one of `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// The attribute name.
    pub attribute: String,
    /// The keys the attribute's value may have, without duplicates, in the
    /// order they first appear in the expression. Empty only if the
    /// subscription can never be true.
    pub values: Vec<IndexKey>,
}

/// What is known about the notifications a predicate can be true for.
enum Need {
    /// The predicate can never be true.
    Never,
    /// Whenever the predicate is true, every listed constraint holds.
    All(Vec<Constraint>),
}

/// The constraints of a compiled predicate.
pub(crate) fn constraints(pred: &Pred) -> Vec<Constraint> {
    match need(pred) {
        Need::All(constraints) => constraints,
        Need::Never => Vec::new(),
    }
}

fn one(attribute: &str, values: Vec<IndexKey>) -> Need {
    Need::All(vec![Constraint {
        attribute: attribute.to_owned(),
        values,
    }])
}

fn nothing() -> Need {
    Need::All(Vec::new())
}

/// Keys of constant candidates; `None` if any candidate is not a constant
/// with a key. Constant ⊥ candidates are skipped: they are never equal.
fn literal_keys<'e>(candidates: impl IntoIterator<Item = &'e Expr>) -> Option<Vec<IndexKey>> {
    let mut keys = Vec::new();
    for candidate in candidates {
        match candidate {
            Expr::Literal(literal) => push_unique(&mut keys, IndexKey::of(literal.as_value_ref())?),
            Expr::Bottom => {}
            _ => return None,
        }
    }
    Some(keys)
}

/// The constraint of `attr == literal`, if the literal has a key.
fn literal_need(attr: &str, literal: &Literal) -> Need {
    match IndexKey::of(literal.as_value_ref()) {
        Some(key) => one(attr, vec![key]),
        None => nothing(),
    }
}

fn push_unique(keys: &mut Vec<IndexKey>, key: IndexKey) {
    if !keys.contains(&key) {
        keys.push(key);
    }
}

fn need(pred: &Pred) -> Need {
    match pred {
        Pred::Const(Truth::True) => nothing(),
        Pred::Const(Truth::False | Truth::Bottom) => Need::Never,
        Pred::AttrIn { attr, values } => {
            let mut keys = Vec::with_capacity(values.len());
            for v in values {
                push_unique(&mut keys, IndexKey::String(v.clone()));
            }
            one(attr, keys)
        }
        Pred::AttrCmp {
            attr,
            op: CmpOp::Eq,
            literal,
        } => literal_need(attr, literal),
        Pred::Cmp {
            op: CmpOp::Eq,
            lhs,
            rhs,
        } => match (lhs, rhs) {
            (Expr::Attr(attr), Expr::Literal(literal))
            | (Expr::Literal(literal), Expr::Attr(attr)) => literal_need(attr, literal),
            _ => nothing(),
        },
        Pred::Equals {
            subject: Expr::Attr(attr),
            candidates,
        } => literal_keys(candidates.iter()).map_or_else(nothing, |keys| one(attr, keys)),
        Pred::And(children) => {
            let mut all: Vec<Constraint> = Vec::new();
            for child in children {
                match need(child) {
                    Need::Never => return Need::Never,
                    Need::All(constraints) => {
                        for c in constraints {
                            intersect_into(&mut all, c);
                        }
                    }
                }
            }
            Need::All(all)
        }
        Pred::Or(children) => {
            // Only operands that can be true matter: a notification that
            // makes the || true makes one of them true.
            let mut common: Option<Vec<Constraint>> = None;
            for child in children {
                let Need::All(constraints) = need(child) else {
                    continue;
                };
                common = Some(match common {
                    None => constraints,
                    Some(previous) => unite(previous, constraints),
                });
            }
            common.map_or(Need::Never, Need::All)
        }
        _ => nothing(),
    }
}

/// Adds `c` to `all`, intersecting with an existing constraint on the same
/// attribute (both are necessary, so the intersection is).
fn intersect_into(all: &mut Vec<Constraint>, c: Constraint) {
    match all
        .iter_mut()
        .find(|existing| existing.attribute == c.attribute)
    {
        Some(existing) => existing.values.retain(|v| c.values.contains(v)),
        None => all.push(c),
    }
}

/// The constraints implied by "one of two operands is true": attributes
/// constrained by both, with the union of their values.
fn unite(previous: Vec<Constraint>, next: Vec<Constraint>) -> Vec<Constraint> {
    previous
        .into_iter()
        .filter_map(|mut c| {
            let other = next.iter().find(|n| n.attribute == c.attribute)?;
            for v in &other.values {
                push_unique(&mut c.values, v.clone());
            }
            Some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_share_keys_across_types() {
        let one = Some(IndexKey::Integer(1));
        assert_eq!(IndexKey::of(ValueRef::Int32(1)), one);
        assert_eq!(IndexKey::of(ValueRef::Int64(1)), one);
        assert_eq!(IndexKey::of(ValueRef::Real64(1.0)), one);
        assert_eq!(
            IndexKey::of(ValueRef::Real64(0.0)),
            Some(IndexKey::Integer(0))
        );
        assert_ne!(
            IndexKey::of(ValueRef::Real64(-0.0)),
            Some(IndexKey::Integer(0))
        );
        assert_eq!(
            IndexKey::of(ValueRef::Real64(f64::NAN)),
            IndexKey::of(ValueRef::Real64(-f64::NAN))
        );
        assert_eq!(
            IndexKey::of(ValueRef::Real64(0.5)),
            Some(IndexKey::Real(0.5f64.to_bits()))
        );
        assert!(IndexKey::of(ValueRef::Real64(f64::INFINITY)).is_some());
    }

    #[test]
    fn inexact_magnitudes_have_no_key() {
        let limit = 1i64 << 53;
        assert_eq!(
            IndexKey::of(ValueRef::Int64(limit - 1)),
            Some(IndexKey::Integer(limit - 1))
        );
        assert_eq!(
            IndexKey::of(ValueRef::Int64(-(limit - 1))),
            Some(IndexKey::Integer(-(limit - 1)))
        );
        assert_eq!(IndexKey::of(ValueRef::Int64(limit)), None);
        assert_eq!(IndexKey::of(ValueRef::Int64(i64::MIN)), None);
        assert_eq!(
            IndexKey::of(ValueRef::Real64(9_007_199_254_740_992.0)),
            None
        );
        assert_eq!(IndexKey::of(ValueRef::Real64(-1e300)), None);
        assert_eq!(IndexKey::of(ValueRef::Opaque(b"x")), None);
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(IndexKey::Integer(3).to_string(), "3");
        assert_eq!(IndexKey::Real(0.5f64.to_bits()).to_string(), "0.5");
        assert_eq!(IndexKey::NaN.to_string(), "NaN");
        assert_eq!(IndexKey::String("a".into()).to_string(), "\"a\"");
    }
}
