//! The compiled form of an expression, and its evaluator.
//!
//! The checker turns the syntax tree into two kinds of node: [`Pred`]s,
//! which yield a [`Truth`], and [`Expr`]s, which yield a value or ⊥. Constants
//! are already folded and literals already converted, patterns already
//! compiled, and the shapes that dominate real subscriptions have nodes of
//! their own:
//!
//! - [`Pred::AttrIn`] is `name == "lit"`, and `name == "a" || name == "b"`
//!   (and `equals(name, "a", "b")`): one attribute lookup, then string
//!   comparisons, no allocation.
//! - [`Pred::AttrCmp`] is `name op literal` for any comparison and literal.
//!
//! Evaluation walks the tree recursively; its depth is bounded by the
//! parser's nesting limit (runs of one operator are n-ary nodes evaluated by
//! iteration), and its work by the node count and the regex size limit, so
//! one evaluation of one notification is bounded by the compiled size. It
//! allocates only when a string function must build a new string.

use std::borrow::Cow;

use elvin_proto::{AttributeLookup, ValueRef, ValueType};
use std::sync::Arc;

use crate::regex_cache::SharedRegex;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfd_quick, is_nfkd_quick};

use crate::Truth;
use crate::ast::{BinOp, CmpOp, UnaryOp};
use crate::glob::Glob;
use crate::value::{self, Num, Val};

/// A literal value after folding.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Int32(i32),
    Int64(i64),
    Real64(f64),
    String(Box<str>),
}

impl Literal {
    /// The literal as an evaluation value, borrowing its string.
    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            Literal::Int32(v) => Val::Int32(*v),
            Literal::Int64(v) => Val::Int64(*v),
            Literal::Real64(v) => Val::Real64(*v),
            Literal::String(s) => Val::Str(Cow::Borrowed(s)),
        }
    }

    /// The literal as a notification value, for index keys.
    pub(crate) fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Literal::Int32(v) => ValueRef::Int32(*v),
            Literal::Int64(v) => ValueRef::Int64(*v),
            Literal::Real64(v) => ValueRef::Real64(*v),
            Literal::String(s) => ValueRef::String(s),
        }
    }
}

/// Which substring test a string predicate applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrTest {
    BeginsWith,
    EndsWith,
    Contains,
}

/// Which string-to-string function an [`Expr::StrFn`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrFn {
    /// Unicode lowercase (`str::to_lowercase`).
    FoldCase,
    /// Canonical decomposition (NFD).
    Decompose,
    /// Compatibility decomposition (NFKD).
    DecomposeCompat,
}

impl StrFn {
    /// Applies the function, borrowing when the string is already in the
    /// result form.
    pub(crate) fn apply<'a>(self, s: Cow<'a, str>) -> Cow<'a, str> {
        match self {
            StrFn::FoldCase => {
                if s.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()) {
                    Cow::Owned(s.to_lowercase())
                } else {
                    s
                }
            }
            StrFn::Decompose => {
                if is_nfd_quick(s.chars()) == IsNormalized::Yes {
                    s
                } else {
                    Cow::Owned(s.nfd().collect())
                }
            }
            StrFn::DecomposeCompat => {
                if is_nfkd_quick(s.chars()) == IsNormalized::Yes {
                    s
                } else {
                    Cow::Owned(s.nfkd().collect())
                }
            }
        }
    }
}

/// A node that yields a truth value.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    /// A folded constant. Only ever the root when the whole expression is
    /// constant (which compile rejects), or ⊥ inside an `&&` or `||`.
    Const(Truth),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
    Xor(Box<[Pred]>),
    Not(Box<Pred>),
    /// The attribute is a string equal to one of `values`; ⊥ if it is
    /// missing or not a string.
    AttrIn {
        attr: Box<str>,
        values: Box<[Box<str>]>,
    },
    /// `attr op literal`.
    AttrCmp {
        attr: Box<str>,
        op: CmpOp,
        literal: Literal,
    },
    /// `lhs op rhs` in general.
    Cmp {
        op: CmpOp,
        lhs: Expr,
        rhs: Expr,
    },
    /// `equals(subject, candidates…)`: `subject == c1 || subject == c2 …`.
    Equals {
        subject: Expr,
        candidates: Box<[Expr]>,
    },
    /// `require(attr)`.
    Require(Box<str>),
    /// `int32(attr)`, `string(attr)` and so on.
    TypeIs(Box<str>, ValueType),
    /// `nan(attr)`.
    IsNan(Box<str>),
    /// `begins-with`, `ends-with`, `contains`.
    StrTest {
        test: StrTest,
        subject: Expr,
        patterns: Box<[Box<str>]>,
    },
    /// `wildcard(subject, patterns…)`.
    Wildcard {
        subject: Expr,
        patterns: Box<[Glob]>,
    },
    /// `regex(subject, patterns…)`.
    Regex {
        subject: Expr,
        patterns: Box<[Arc<SharedRegex>]>,
    },
}

/// A node that yields a value or ⊥.
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Literal(Literal),
    /// A folded constant ⊥ (such as `1 / 0`).
    Bottom,
    Attr(Box<str>),
    Unary(UnaryOp, Box<Expr>),
    /// `operands[0] op operands[1] op …`, left to right.
    Chain(BinOp, Box<[Expr]>),
    /// `size(attr)`.
    Size(Box<str>),
    StrFn(StrFn, Box<Expr>),
}

impl Truth {
    /// The truth of `a op b` (⊥ when the values are not comparable).
    pub(crate) fn from_comparison(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> Truth {
        Truth::from_ordering(op, value::compare(a, b))
    }

    fn from_ordering(op: CmpOp, ordering: Option<std::cmp::Ordering>) -> Truth {
        match ordering {
            Some(o) => Truth::from(value::holds(op, o)),
            None => Truth::Bottom,
        }
    }
}

impl Pred {
    /// Evaluates the predicate against a notification.
    pub(crate) fn eval<L: AttributeLookup + ?Sized>(&self, attrs: &L) -> Truth {
        match self {
            Pred::Const(t) => *t,
            Pred::And(children) => {
                let mut result = Truth::True;
                for child in children {
                    match child.eval(attrs) {
                        Truth::False => return Truth::False,
                        Truth::Bottom => result = Truth::Bottom,
                        Truth::True => {}
                    }
                }
                result
            }
            Pred::Or(children) => {
                let mut result = Truth::False;
                for child in children {
                    match child.eval(attrs) {
                        Truth::True => return Truth::True,
                        Truth::Bottom => result = Truth::Bottom,
                        Truth::False => {}
                    }
                }
                result
            }
            Pred::Xor(children) => {
                let mut odd = false;
                for child in children {
                    match child.eval(attrs) {
                        Truth::Bottom => return Truth::Bottom,
                        Truth::True => odd = !odd,
                        Truth::False => {}
                    }
                }
                Truth::from(odd)
            }
            Pred::Not(child) => !child.eval(attrs),
            Pred::AttrIn { attr, values } => match attrs.lookup(attr) {
                Some(ValueRef::String(s)) => Truth::from(values.iter().any(|v| **v == *s)),
                _ => Truth::Bottom,
            },
            Pred::AttrCmp { attr, op, literal } => match attrs.lookup(attr) {
                Some(v) => {
                    Truth::from_ordering(*op, value::compare(&Val::from(v), &literal.as_val()))
                }
                None => Truth::Bottom,
            },
            Pred::Cmp { op, lhs, rhs } => match (lhs.eval(attrs), rhs.eval(attrs)) {
                (Some(a), Some(b)) => Truth::from_ordering(*op, value::compare(&a, &b)),
                _ => Truth::Bottom,
            },
            Pred::Equals {
                subject,
                candidates,
            } => {
                let Some(subject) = subject.eval(attrs) else {
                    return Truth::Bottom;
                };
                let mut result = Truth::False;
                for candidate in candidates {
                    let equal = match candidate.eval(attrs) {
                        Some(c) => Truth::from_ordering(CmpOp::Eq, value::compare(&subject, &c)),
                        None => Truth::Bottom,
                    };
                    match equal {
                        Truth::True => return Truth::True,
                        Truth::Bottom => result = Truth::Bottom,
                        Truth::False => {}
                    }
                }
                result
            }
            Pred::Require(attr) => match attrs.lookup(attr) {
                Some(_) => Truth::True,
                None => Truth::Bottom,
            },
            Pred::TypeIs(attr, ty) => match attrs.lookup(attr) {
                Some(v) => Truth::from(v.value_type() == *ty),
                None => Truth::Bottom,
            },
            Pred::IsNan(attr) => match attrs.lookup(attr) {
                Some(ValueRef::Real64(v)) => Truth::from(v.is_nan()),
                _ => Truth::Bottom,
            },
            Pred::StrTest {
                test,
                subject,
                patterns,
            } => match subject.eval(attrs) {
                Some(Val::Str(s)) => Truth::from(patterns.iter().any(|p| match test {
                    StrTest::BeginsWith => s.starts_with(p.as_ref()),
                    StrTest::EndsWith => s.ends_with(p.as_ref()),
                    StrTest::Contains => s.contains(p.as_ref()),
                })),
                _ => Truth::Bottom,
            },
            Pred::Wildcard { subject, patterns } => match subject.eval(attrs) {
                Some(Val::Str(s)) => Truth::from(patterns.iter().any(|g| g.matches(&s))),
                _ => Truth::Bottom,
            },
            Pred::Regex { subject, patterns } => match subject.eval(attrs) {
                Some(Val::Str(s)) => Truth::from(patterns.iter().any(|r| r.is_match(&s))),
                _ => Truth::Bottom,
            },
        }
    }
}

impl Expr {
    /// Evaluates the expression against a notification; `None` is ⊥.
    pub(crate) fn eval<'a, L: AttributeLookup + ?Sized>(&'a self, attrs: &'a L) -> Option<Val<'a>> {
        match self {
            Expr::Literal(literal) => Some(literal.as_val()),
            Expr::Bottom => None,
            Expr::Attr(name) => attrs.lookup(name).map(Val::from),
            Expr::Unary(op, operand) => {
                let n = operand.eval(attrs)?.as_num()?;
                value::unary(*op, n).map(Val::from)
            }
            Expr::Chain(op, operands) => {
                let (first, rest) = operands.split_first()?;
                let mut acc: Num = first.eval(attrs)?.as_num()?;
                for operand in rest {
                    let n = operand.eval(attrs)?.as_num()?;
                    acc = value::binary(*op, acc, n)?;
                }
                Some(Val::from(acc))
            }
            Expr::Size(attr) => {
                let len = match attrs.lookup(attr)? {
                    ValueRef::String(s) => s.len(),
                    ValueRef::Opaque(b) => b.len(),
                    _ => return None,
                };
                i32::try_from(len).ok().map(Val::Int32)
            }
            Expr::StrFn(function, operand) => match operand.eval(attrs)? {
                Val::Str(s) => Some(Val::Str(function.apply(s))),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::Attributes;

    #[test]
    fn string_functions_borrow_when_nothing_changes() {
        assert!(matches!(
            StrFn::FoldCase.apply(Cow::Borrowed("abc-1")),
            Cow::Borrowed("abc-1")
        ));
        assert_eq!(StrFn::FoldCase.apply(Cow::Borrowed("AbC")), "abc");
        assert_eq!(
            StrFn::FoldCase.apply(Cow::Borrowed("\u{c9}T\u{c9}")),
            "\u{e9}t\u{e9}"
        );
        assert!(matches!(
            StrFn::Decompose.apply(Cow::Borrowed("plain")),
            Cow::Borrowed(_)
        ));
        assert_eq!(StrFn::Decompose.apply(Cow::Borrowed("\u{e9}")), "e\u{301}");
        assert_eq!(
            StrFn::DecomposeCompat.apply(Cow::Borrowed("\u{fb01}")),
            "fi"
        );
        assert_eq!(
            StrFn::Decompose.apply(Cow::Borrowed("\u{fb01}")),
            "\u{fb01}"
        );
    }

    #[test]
    fn chain_stops_at_the_first_bottom() {
        let attrs: Attributes = [("s", "x")].into_iter().collect();
        let chain = Expr::Chain(
            BinOp::Add,
            vec![Expr::Literal(Literal::Int32(1)), Expr::Attr("s".into())].into(),
        );
        assert_eq!(chain.eval(&attrs), None);
        let empty = Expr::Chain(BinOp::Add, Vec::new().into());
        assert_eq!(empty.eval(&attrs), None);
    }

    #[test]
    fn size_counts_bytes() {
        let mut attrs = Attributes::new();
        attrs.insert("s", "\u{e9}");
        attrs.insert("o", vec![1u8, 2, 3]);
        attrs.insert("i", 7);
        assert_eq!(Expr::Size("s".into()).eval(&attrs), Some(Val::Int32(2)));
        assert_eq!(Expr::Size("o".into()).eval(&attrs), Some(Val::Int32(3)));
        assert_eq!(Expr::Size("i".into()).eval(&attrs), None);
        assert_eq!(Expr::Size("missing".into()).eval(&attrs), None);
    }
}
