//! Compile-time checking and constant folding, one node at a time.
//!
//! The parser calls these builders bottom-up as it reduces each operator,
//! so checking needs no pass of its own and no recursion: each builder gets
//! operands that are already checked and folded, and returns the checked
//! and folded node. Each builder does four things:
//!
//! 1. **Type checks** what the literals make known. Names can hold any type,
//!    so only a literal (or a folded constant, or a function with a fixed
//!    result type) can make an operation certainly wrong: `a + "x"`,
//!    `~1.5`, `"x" < 1`, `begins-with(s, 1)`, `size("abc")`. Those are
//!    TYPE_MISMATCH (2106). Everything else is left to run time, where a
//!    wrong type is ⊥.
//! 2. **Checks functions**: the name must be known (UNKNOWN_FUNC 2104), the
//!    argument count right (TOO_FEW_ARGS 2107, TOO_MANY_ARGS 2108), each
//!    argument of the right kind (a bare attribute name, a string-valued
//!    argument, or a string literal, per function), and every `regex` and
//!    `wildcard` pattern must compile (INVALID_REGEXP 2109,
//!    REGEXP_TOO_COMPLEX 2111).
//! 3. **Folds constants** with the evaluator's own arithmetic, so
//!    `2147483647 + 1` becomes -2147483648 and `a == 1 && 1 == 1` becomes
//!    `a == 1`. Logical folding follows the three-valued tables exactly: a
//!    true operand of `&&` disappears, a false one makes the whole `&&`
//!    false, a ⊥ one stays (the `&&` can then be false or ⊥, never true), and
//!    a true operand of `^^` negates the rest.
//! 4. **Specialises** the shapes that dominate routing (`name == "lit"`,
//!    `name == "a" || name == "b"`, `name op literal`) into dedicated nodes.
//!
//! [`Checker::root`] then requires a predicate (not a value) at the root;
//! rejecting a root that folded to a constant (EXP_IS_TRIVIAL 2110) is the
//! caller's job.

use std::borrow::Cow;

use crate::regex_cache::{RegexCache, RegexFailure, SharedRegex};
use elvin_proto::ValueType;

use crate::Truth;
use crate::ast::{BinOp, CmpOp, Logic, UnaryOp};
use crate::compiled::{Expr, Literal, Pred, StrFn, StrTest};
use crate::error::{Span, SubscriptionError, codes, excerpt};
use crate::glob::{Glob, GlobError};
use crate::limits::Limits;
use crate::value::{self, Num};

/// What is known at compile time about the type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaticType {
    Int32,
    Int64,
    Real64,
    /// Some number, type unknown (arithmetic on a name).
    Number,
    String,
    /// An attribute: any type at all.
    Attribute,
}

impl StaticType {
    fn name(self) -> &'static str {
        match self {
            StaticType::Int32 => "int32",
            StaticType::Int64 => "int64",
            StaticType::Real64 => "real64",
            StaticType::Number => "number",
            StaticType::String => "string",
            StaticType::Attribute => "attribute",
        }
    }

    /// Could be a number at run time.
    fn may_be_number(self) -> bool {
        self != StaticType::String
    }

    /// Could be an integer at run time.
    fn may_be_integer(self) -> bool {
        !matches!(self, StaticType::String | StaticType::Real64)
    }

    /// Certainly a number.
    fn is_number(self) -> bool {
        matches!(
            self,
            StaticType::Int32 | StaticType::Int64 | StaticType::Real64 | StaticType::Number
        )
    }

    /// The type of an arithmetic result from operands of these types.
    fn promote(self, other: StaticType) -> StaticType {
        use StaticType::*;
        match (self, other) {
            (Real64, _) | (_, Real64) => Real64,
            (Number | Attribute | String, _) | (_, Number | Attribute | String) => Number,
            (Int64, _) | (_, Int64) => Int64,
            (Int32, Int32) => Int32,
        }
    }

    fn of_literal(literal: &Literal) -> StaticType {
        match literal {
            Literal::Int32(_) => StaticType::Int32,
            Literal::Int64(_) => StaticType::Int64,
            Literal::Real64(_) => StaticType::Real64,
            Literal::String(_) => StaticType::String,
        }
    }
}

/// A checked node: a predicate or a value.
pub(crate) enum Checked {
    Pred(Pred),
    Value(Expr, StaticType),
}

/// How an operand was written, for functions whose arguments must be
/// written a certain way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// A bare attribute name (possibly in parentheses).
    Name,
    /// A string literal (possibly in parentheses).
    StringLiteral,
    /// Anything else.
    Other,
}

/// A checked node with its place in the source.
pub(crate) struct Operand {
    pub checked: Checked,
    pub form: Form,
    /// The node's first token (for a parenthesised node, the `(`).
    pub span: Span,
    /// Byte offset just past the node's last token.
    pub end: usize,
    /// The node's nesting depth: 1 for a name or literal, one more than its
    /// deepest operand for an operator or call, and one more than its
    /// contents for a parenthesised node.
    pub height: usize,
}

/// Where a node made of `operands` starts and ends, and its height (one
/// more than its tallest operand).
fn extent(operands: &[Operand]) -> (Span, usize, usize) {
    let span = operands.first().map(|o| o.span).unwrap_or(Span {
        start: 0,
        end: 0,
        line: 1,
        column: 1,
    });
    let end = operands.last().map_or(span.end, |o| o.end);
    let height = operands
        .iter()
        .map(|o| o.height)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    (span, end, height)
}

impl Operand {
    /// The node's source text (cut short if long), for error messages.
    fn text<'s>(&self, source: &'s str) -> Cow<'s, str> {
        excerpt(source.get(self.span.start..self.end).unwrap_or(""))
    }

    /// A leaf for a name.
    pub(crate) fn name(name: String, span: Span) -> Operand {
        let checked = Checked::Value(Expr::Attr(name.into()), StaticType::Attribute);
        Operand {
            checked,
            form: Form::Name,
            span,
            end: span.end,
            height: 1,
        }
    }

    /// A leaf for a literal.
    pub(crate) fn literal(literal: Literal, span: Span) -> Operand {
        let ty = StaticType::of_literal(&literal);
        let form = if ty == StaticType::String {
            Form::StringLiteral
        } else {
            Form::Other
        };
        Operand {
            checked: Checked::Value(Expr::Literal(literal), ty),
            form,
            span,
            end: span.end,
            height: 1,
        }
    }

    /// The operand wrapped in parentheses: same meaning and form, wider
    /// text, one level deeper.
    pub(crate) fn parenthesised(self, open: Span, close_end: usize) -> Operand {
        Operand {
            span: open,
            end: close_end,
            height: self.height.saturating_add(1),
            ..self
        }
    }
}

/// A value operand taken apart, for the builders.
struct ValueOperand {
    expr: Expr,
    ty: StaticType,
    span: Span,
}

/// The functions of the language and their argument counts (min, max).
fn arity(function: &str) -> Option<(usize, Option<usize>)> {
    Some(match function {
        "require" | "int32" | "int64" | "real64" | "string" | "opaque" | "nan" | "size"
        | "fold-case" | "decompose" | "decompose-compat" => (1, Some(1)),
        "equals" | "begins-with" | "ends-with" | "contains" | "wildcard" | "regex" => (2, None),
        _ => return None,
    })
}

const FUNCTION_LIST: &str = "require, int32, int64, real64, string, opaque, nan, size, equals, \
                             begins-with, ends-with, contains, wildcard, regex, fold-case, decompose, decompose-compat";

/// Builds checked nodes from checked operands.
pub(crate) struct Checker<'s, 'l> {
    pub source: &'s str,
    pub limits: &'l Limits,
    /// The distinct compiled patterns so far, for the subscription's budget.
    pub regexes: std::rc::Rc<std::cell::RefCell<Vec<std::sync::Arc<SharedRegex>>>>,
}

impl Checker<'_, '_> {
    fn error(&self, code: u32, message: String, span: Span) -> SubscriptionError {
        SubscriptionError::at(code, message, span, self.source)
    }

    /// The root: it must be a predicate.
    pub(crate) fn root(&self, operand: Operand) -> Result<Pred, SubscriptionError> {
        let text = operand.text(self.source);
        match operand.checked {
            Checked::Pred(pred) => Ok(pred),
            Checked::Value(_, ty) => {
                let hint = if operand.form == Form::Name {
                    format!(
                        "; a name alone is not a test: compare it (such as {text} == \"value\") or write require({text})"
                    )
                } else {
                    String::new()
                };
                let message = format!(
                    "Expression does not evaluate to boolean: {text} is a {} value{hint}",
                    ty.name()
                );
                Err(self.error(codes::TYPE_MISMATCH, message, operand.span))
            }
        }
    }

    /// An operand that must be a predicate (of the operator `op`).
    fn predicate(&self, operand: Operand, op: &str) -> Result<Pred, SubscriptionError> {
        match operand.checked {
            Checked::Pred(pred) => Ok(pred),
            Checked::Value(_, ty) => {
                let message = format!(
                    "{op} needs conditions as operands, but {} is a {} value (compare it with something)",
                    operand.text(self.source),
                    ty.name()
                );
                Err(self.error(codes::TYPE_MISMATCH, message, operand.span))
            }
        }
    }

    /// An operand that must be a value (of the operator or function `op`).
    fn value(&self, operand: Operand, op: &str) -> Result<ValueOperand, SubscriptionError> {
        match operand.checked {
            Checked::Value(expr, ty) => Ok(ValueOperand {
                expr,
                ty,
                span: operand.span,
            }),
            Checked::Pred(_) => {
                let message = format!(
                    "{op:?} needs a value as an argument, but {} is a condition (was boolean)",
                    operand.text(self.source)
                );
                Err(self.error(codes::TYPE_MISMATCH, message, operand.span))
            }
        }
    }

    /// `op operand` for a unary `-`, `+` or `~` at `op_span`.
    pub(crate) fn unary(
        &self,
        op: UnaryOp,
        op_span: Span,
        operand: Operand,
    ) -> Result<Operand, SubscriptionError> {
        let (end, height) = (operand.end, operand.height);
        let value = self.value(operand, op.symbol())?;
        let (ok, wanted) = match op {
            UnaryOp::BitNot => (value.ty.may_be_integer(), "an integer"),
            UnaryOp::Neg | UnaryOp::Plus => (value.ty.may_be_number(), "a number"),
        };
        if !ok {
            let message = format!(
                "{:?} needs {wanted} as an argument (was {})",
                op.symbol(),
                value.ty.name()
            );
            return Err(self.error(codes::TYPE_MISMATCH, message, value.span));
        }
        let ty = if value.ty == StaticType::Attribute {
            StaticType::Number
        } else {
            value.ty
        };
        let expr = match value.expr {
            Expr::Literal(literal) => {
                fold_num(literal.as_val().as_num().and_then(|n| value::unary(op, n)))
            }
            Expr::Bottom => Expr::Bottom,
            expr => Expr::Unary(op, Box::new(expr)),
        };
        Ok(Operand {
            checked: Checked::Value(expr, ty),
            form: Form::Other,
            span: op_span,
            end,
            height: height.saturating_add(1),
        })
    }

    /// `operands[0] op operands[1] op …`.
    pub(crate) fn chain(
        &self,
        op: BinOp,
        operands: Vec<Operand>,
    ) -> Result<Operand, SubscriptionError> {
        let (span, end, height) = extent(&operands);
        let mut exprs = Vec::with_capacity(operands.len());
        let mut ty: Option<StaticType> = None;
        for operand in operands {
            let value = self.value(operand, op.symbol())?;
            let (ok, wanted) = if op.integers_only() {
                (value.ty.may_be_integer(), "an integer")
            } else {
                (value.ty.may_be_number(), "a number")
            };
            if !ok {
                let message = format!(
                    "{:?} needs {wanted} as an argument (was {})",
                    op.symbol(),
                    value.ty.name()
                );
                return Err(self.error(codes::TYPE_MISMATCH, message, value.span));
            }
            ty = Some(ty.map_or(value.ty, |t| t.promote(value.ty)));
            exprs.push(value.expr);
        }
        let ty = match ty {
            Some(StaticType::Attribute) | None => StaticType::Number,
            Some(t) => t,
        };
        Ok(Operand {
            checked: Checked::Value(fold_chain(op, exprs), ty),
            form: Form::Other,
            span,
            end,
            height,
        })
    }

    /// `lhs op rhs` for a comparison at `op_span`.
    pub(crate) fn compare(
        &self,
        op: CmpOp,
        op_span: Span,
        lhs: Operand,
        rhs: Operand,
    ) -> Result<Operand, SubscriptionError> {
        let (span, end) = (lhs.span, rhs.end);
        let height = lhs.height.max(rhs.height).saturating_add(1);
        let (lhs_text, rhs_text) = (lhs.text(self.source), rhs.text(self.source));
        let lhs = self.value(lhs, op.symbol())?;
        let rhs = self.value(rhs, op.symbol())?;
        if !comparable(lhs.ty, rhs.ty) {
            let message = format!(
                "{:?} cannot compare {lhs_text} ({}) with {rhs_text} ({}): strings and numbers are never equal or ordered",
                op.symbol(),
                lhs.ty.name(),
                rhs.ty.name()
            );
            return Err(self.error(codes::TYPE_MISMATCH, message, op_span));
        }
        let checked = Checked::Pred(comparison(op, lhs.expr, rhs.expr));
        Ok(Operand {
            checked,
            form: Form::Other,
            span,
            end,
            height,
        })
    }

    /// `! operand` for the `!` at `op_span`.
    pub(crate) fn not(
        &self,
        op_span: Span,
        operand: Operand,
    ) -> Result<Operand, SubscriptionError> {
        let (end, height) = (operand.end, operand.height);
        let pred = negate(self.predicate(operand, "!")?);
        Ok(Operand {
            checked: Checked::Pred(pred),
            form: Form::Other,
            span: op_span,
            end,
            height: height.saturating_add(1),
        })
    }

    /// Two or more operands joined by one logical connective.
    pub(crate) fn logic(
        &self,
        logic: Logic,
        operands: Vec<Operand>,
    ) -> Result<Operand, SubscriptionError> {
        let (span, end, height) = extent(&operands);
        let mut preds = Vec::with_capacity(operands.len());
        for operand in operands {
            preds.push(self.predicate(operand, logic.symbol())?);
        }
        Ok(Operand {
            checked: Checked::Pred(combine(logic, preds)),
            form: Form::Other,
            span,
            end,
            height,
        })
    }

    /// A call of `name` (at `span`, with the closing `)` ending at `end`).
    pub(crate) fn call(
        &self,
        name: &str,
        span: Span,
        end: usize,
        args: Vec<Operand>,
    ) -> Result<Operand, SubscriptionError> {
        let height = args
            .iter()
            .map(|o| o.height)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let Some((min, max)) = arity(name) else {
            let message = format!("Unknown function: {name} (the functions are {FUNCTION_LIST})");
            return Err(self.error(codes::UNKNOWN_FUNC, message, span));
        };
        let count = args.len();
        if count < min {
            let message = match max {
                Some(_) => format!("{name} takes exactly {min} argument, but was given {count}"),
                None => format!(
                    "{name} takes at least {min} arguments (a value, then one or more to test it against), \
                     but was given {count}"
                ),
            };
            return Err(self.error(codes::TOO_FEW_ARGS, message, span));
        }
        if let Some(max) = max
            && count > max
        {
            let message = format!("{name} takes exactly {max} argument, but was given {count}");
            return Err(self.error(codes::TOO_MANY_ARGS, message, span));
        }
        let mut args = args.into_iter();
        let Some(first) = args.next() else {
            // The arity check above guarantees an argument.
            return Err(self.error(
                codes::TOO_FEW_ARGS,
                format!("{name} needs an argument"),
                span,
            ));
        };
        let type_test = match name {
            "int32" => Some(ValueType::Int32),
            "int64" => Some(ValueType::Int64),
            "real64" => Some(ValueType::Real64),
            "string" => Some(ValueType::String),
            "opaque" => Some(ValueType::Opaque),
            _ => None,
        };
        let checked = if let Some(ty) = type_test {
            Checked::Pred(Pred::TypeIs(self.name_argument(name, first)?, ty))
        } else {
            match name {
                "require" => Checked::Pred(Pred::Require(self.name_argument(name, first)?)),
                "nan" => Checked::Pred(Pred::IsNan(self.name_argument(name, first)?)),
                "size" => Checked::Value(
                    Expr::Size(self.name_argument(name, first)?),
                    StaticType::Int32,
                ),
                "fold-case" => self.string_function(StrFn::FoldCase, name, first)?,
                "decompose" => self.string_function(StrFn::Decompose, name, first)?,
                "decompose-compat" => self.string_function(StrFn::DecomposeCompat, name, first)?,
                "equals" => self.equals(name, first, args)?,
                "begins-with" => self.string_test(StrTest::BeginsWith, name, first, args)?,
                "ends-with" => self.string_test(StrTest::EndsWith, name, first, args)?,
                "contains" => self.string_test(StrTest::Contains, name, first, args)?,
                "wildcard" => self.wildcard(name, first, args)?,
                _ => self.regex(name, first, args)?,
            }
        };
        Ok(Operand {
            checked,
            form: Form::Other,
            span,
            end,
            height,
        })
    }

    /// An argument that must be a bare attribute name.
    fn name_argument(
        &self,
        function: &str,
        operand: Operand,
    ) -> Result<Box<str>, SubscriptionError> {
        match operand.checked {
            Checked::Value(Expr::Attr(name), _) if operand.form == Form::Name => Ok(name),
            _ => {
                let message = format!(
                    "{function} needs an attribute name as its argument, not {}",
                    operand.text(self.source)
                );
                Err(self.error(codes::TYPE_MISMATCH, message, operand.span))
            }
        }
    }

    /// An argument that must be string-valued: a name, a string literal or
    /// a string function.
    fn string_argument(
        &self,
        function: &str,
        operand: Operand,
    ) -> Result<(Expr, StaticType), SubscriptionError> {
        let text = operand.text(self.source);
        let value = self.value(operand, function)?;
        match value.ty {
            StaticType::String | StaticType::Attribute => Ok((value.expr, value.ty)),
            ty => {
                let message = format!(
                    "{function} needs a string, an attribute name or a string function as its first argument, \
                     but {text} is a {} value",
                    ty.name()
                );
                Err(self.error(codes::TYPE_MISMATCH, message, value.span))
            }
        }
    }

    /// An argument that must be a string literal (a pattern).
    fn pattern_argument(
        &self,
        function: &str,
        operand: Operand,
    ) -> Result<(Box<str>, Span), SubscriptionError> {
        match operand.checked {
            Checked::Value(Expr::Literal(Literal::String(s)), _)
                if operand.form == Form::StringLiteral =>
            {
                Ok((s, operand.span))
            }
            _ => {
                let message = format!(
                    "{function} needs string literals after its first argument, not {}",
                    operand.text(self.source)
                );
                Err(self.error(codes::TYPE_MISMATCH, message, operand.span))
            }
        }
    }

    fn string_function(
        &self,
        function: StrFn,
        name: &str,
        arg: Operand,
    ) -> Result<Checked, SubscriptionError> {
        let expr = match self.string_argument(name, arg)?.0 {
            Expr::Literal(Literal::String(s)) => Expr::Literal(Literal::String(
                function.apply(Cow::Borrowed(s.as_ref())).into(),
            )),
            expr => Expr::StrFn(function, Box::new(expr)),
        };
        Ok(Checked::Value(expr, StaticType::String))
    }

    fn equals(
        &self,
        name: &str,
        first: Operand,
        rest: impl Iterator<Item = Operand>,
    ) -> Result<Checked, SubscriptionError> {
        let first_text = first.text(self.source);
        let (subject, subject_ty) = self.string_argument(name, first)?;
        let mut candidates = Vec::new();
        for operand in rest {
            let text = operand.text(self.source);
            let candidate = self.value(operand, name)?;
            if !comparable(subject_ty, candidate.ty) {
                let message = format!(
                    "{name} cannot compare {first_text} ({}) with {text} ({}): strings and numbers are never equal",
                    subject_ty.name(),
                    candidate.ty.name()
                );
                return Err(self.error(codes::TYPE_MISMATCH, message, candidate.span));
            }
            candidates.push(candidate.expr);
        }
        Ok(Checked::Pred(equals(subject, candidates)))
    }

    fn string_test(
        &self,
        test: StrTest,
        name: &str,
        first: Operand,
        rest: impl Iterator<Item = Operand>,
    ) -> Result<Checked, SubscriptionError> {
        let (subject, _) = self.string_argument(name, first)?;
        let mut patterns = Vec::new();
        for operand in rest {
            patterns.push(self.pattern_argument(name, operand)?.0);
        }
        let pred = Pred::StrTest {
            test,
            subject,
            patterns: patterns.into(),
        };
        Ok(Checked::Pred(fold_if_constant_subject(pred)))
    }

    fn wildcard(
        &self,
        name: &str,
        first: Operand,
        rest: impl Iterator<Item = Operand>,
    ) -> Result<Checked, SubscriptionError> {
        let (subject, _) = self.string_argument(name, first)?;
        let mut patterns = Vec::new();
        for operand in rest {
            let (pattern, span) = self.pattern_argument(name, operand)?;
            match Glob::new(&pattern) {
                Ok(glob) => patterns.push(glob),
                Err(GlobError::TrailingBackslash) => {
                    let message = format!(
                        "Invalid wildcard pattern {pattern:?}: it ends with a backslash that escapes nothing \
                         (to match a backslash, the pattern needs two, written \"\\\\\\\\\" in a string literal)"
                    );
                    return Err(self.error(codes::INVALID_REGEXP, message, span));
                }
            }
        }
        let pred = Pred::Wildcard {
            subject,
            patterns: patterns.into(),
        };
        Ok(Checked::Pred(fold_if_constant_subject(pred)))
    }

    fn regex(
        &self,
        name: &str,
        first: Operand,
        rest: impl Iterator<Item = Operand>,
    ) -> Result<Checked, SubscriptionError> {
        let (subject, _) = self.string_argument(name, first)?;
        let mut patterns = Vec::new();
        for operand in rest {
            let (pattern, span) = self.pattern_argument(name, operand)?;
            let compiled = RegexCache::global().get(
                &pattern,
                self.limits.regex_size_limit,
                self.limits.regex_dfa_size_limit,
            );
            match compiled {
                Ok(regex) => {
                    let mut seen = self.regexes.borrow_mut();
                    if !seen.iter().any(|r| std::sync::Arc::ptr_eq(r, &regex)) {
                        seen.push(std::sync::Arc::clone(&regex));
                        let total: usize = seen.iter().map(|r| r.bytes()).sum();
                        if total > self.limits.regex_budget {
                            let message = format!(
                                "The regular expressions of this subscription compile to {total} bytes, \
                                 more than the {} a subscription may use (use fewer or smaller patterns; \
                                 (?-u) makes \\w, \\d and \\s ASCII-only and much smaller)",
                                self.limits.regex_budget
                            );
                            return Err(self.error(codes::REGEXP_TOO_COMPLEX, message, span));
                        }
                    }
                    patterns.push(regex);
                }
                Err(RegexFailure::TooBig(limit)) => {
                    let message = format!(
                        "Regular expression {pattern:?} is too complex: it compiles to more than {limit} bytes \
                         (use fewer or smaller repetitions; Unicode classes such as \\w and \\p{{L}} are large, \
                         and (?-u) makes \\w, \\d and \\s ASCII-only and much smaller)"
                    );
                    return Err(self.error(codes::REGEXP_TOO_COMPLEX, message, span));
                }
                Err(RegexFailure::ProcessBudget { total, budget }) => {
                    let message = format!(
                        "The router's compiled regular expressions already take {total} of its {budget} bytes; \
                         no new pattern can be compiled until subscriptions using others are removed"
                    );
                    return Err(self.error(codes::IMPL_LIMIT, message, span));
                }
                Err(RegexFailure::Invalid(text)) => {
                    let message = format!(
                        "Invalid regular expression {pattern:?}: {}",
                        regex_error_summary(&text)
                    );
                    return Err(self.error(codes::INVALID_REGEXP, message, span));
                }
            }
        }
        let pred = Pred::Regex {
            subject,
            patterns: patterns.into(),
        };
        Ok(Checked::Pred(fold_if_constant_subject(pred)))
    }
}

/// The one-line gist of a regex compile error (the crate's messages are
/// multi-line, with a caret diagram).
fn regex_error_summary(text: &str) -> String {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// False when the types make a comparison certainly ⊥ (string with number).
fn comparable(a: StaticType, b: StaticType) -> bool {
    !((a == StaticType::String && b.is_number()) || (b == StaticType::String && a.is_number()))
}

/// A folded numeric result as an expression (⊥ stays ⊥).
fn fold_num(n: Option<Num>) -> Expr {
    match n {
        Some(Num::Int32(v)) => Expr::Literal(Literal::Int32(v)),
        Some(Num::Int64(v)) => Expr::Literal(Literal::Int64(v)),
        Some(Num::Real64(v)) => Expr::Literal(Literal::Real64(v)),
        None => Expr::Bottom,
    }
}

/// A chain with its leading literals folded; ⊥ if any operand is a
/// constant ⊥ (every operator propagates ⊥).
fn fold_chain(op: BinOp, exprs: Vec<Expr>) -> Expr {
    if exprs.iter().any(|e| matches!(e, Expr::Bottom)) {
        return Expr::Bottom;
    }
    let mut folded: Option<Num> = None;
    let mut rest = Vec::with_capacity(exprs.len());
    for expr in exprs {
        if rest.is_empty()
            && let Expr::Literal(literal) = &expr
            && let Some(n) = literal.as_val().as_num()
        {
            folded = match folded {
                None => Some(n),
                Some(acc) => match value::binary(op, acc, n) {
                    Some(result) => Some(result),
                    None => return Expr::Bottom,
                },
            };
            continue;
        }
        rest.push(expr);
    }
    match folded {
        None => Expr::Chain(op, rest.into()),
        Some(acc) if rest.is_empty() => fold_num(Some(acc)),
        Some(acc) => {
            let mut operands = Vec::with_capacity(rest.len() + 1);
            operands.push(fold_num(Some(acc)));
            operands.extend(rest);
            Expr::Chain(op, operands.into())
        }
    }
}

/// `lhs op rhs`, folded or specialised where possible.
fn comparison(op: CmpOp, lhs: Expr, rhs: Expr) -> Pred {
    match (lhs, rhs) {
        (Expr::Bottom, _) | (_, Expr::Bottom) => Pred::Const(Truth::Bottom),
        (Expr::Literal(a), Expr::Literal(b)) => {
            Pred::Const(Truth::from_comparison(op, &a.as_val(), &b.as_val()))
        }
        (Expr::Attr(attr), Expr::Literal(literal)) => attr_comparison(attr, op, literal),
        (Expr::Literal(literal), Expr::Attr(attr)) => attr_comparison(attr, op.swapped(), literal),
        (lhs, rhs) => Pred::Cmp { op, lhs, rhs },
    }
}

fn attr_comparison(attr: Box<str>, op: CmpOp, literal: Literal) -> Pred {
    match (op, literal) {
        (CmpOp::Eq, Literal::String(s)) => Pred::AttrIn {
            attr,
            values: vec![s].into(),
        },
        (op, literal) => Pred::AttrCmp { attr, op, literal },
    }
}

/// `equals(subject, candidates…)`, folded or specialised where possible.
fn equals(subject: Expr, candidates: Vec<Expr>) -> Pred {
    let all_constant = candidates
        .iter()
        .all(|c| matches!(c, Expr::Literal(_) | Expr::Bottom));
    match subject {
        Expr::Literal(subject) if all_constant => {
            let results = candidates.iter().map(|c| match c {
                Expr::Literal(c) => Pred::Const(Truth::from_comparison(
                    CmpOp::Eq,
                    &subject.as_val(),
                    &c.as_val(),
                )),
                _ => Pred::Const(Truth::Bottom),
            });
            combine(Logic::Or, results.collect())
        }
        Expr::Attr(attr)
            if candidates
                .iter()
                .all(|c| matches!(c, Expr::Literal(Literal::String(_)))) =>
        {
            let values: Vec<Box<str>> = candidates
                .into_iter()
                .filter_map(|c| match c {
                    Expr::Literal(Literal::String(s)) => Some(s),
                    _ => None,
                })
                .collect();
            combine(
                Logic::Or,
                values
                    .into_iter()
                    .map(|v| Pred::AttrIn {
                        attr: attr.clone(),
                        values: vec![v].into(),
                    })
                    .collect(),
            )
        }
        subject => Pred::Equals {
            subject,
            candidates: candidates.into(),
        },
    }
}

/// Evaluates a string predicate whose subject is a literal.
fn fold_if_constant_subject(pred: Pred) -> Pred {
    let constant_subject = match &pred {
        Pred::StrTest { subject, .. }
        | Pred::Wildcard { subject, .. }
        | Pred::Regex { subject, .. } => {
            matches!(subject, Expr::Literal(_))
        }
        _ => false,
    };
    if constant_subject {
        // No attribute is read, so any notification gives the answer.
        Pred::Const(pred.eval(&elvin_proto::Attributes::new()))
    } else {
        pred
    }
}

/// `!p`, folded: constants flip and a double negation cancels (in
/// three-valued logic `!!x` is `x`, ⊥ included).
fn negate(pred: Pred) -> Pred {
    match pred {
        Pred::Const(t) => Pred::Const(!t),
        Pred::Not(inner) => *inner,
        pred => Pred::Not(Box::new(pred)),
    }
}

/// Joins predicates with a connective, folding constants, flattening
/// nested runs of the same connective and, under `||`, merging string
/// equalities on one attribute into a single lookup.
fn combine(logic: Logic, preds: Vec<Pred>) -> Pred {
    let mut out: Vec<Pred> = Vec::with_capacity(preds.len());
    let mut seen_bottom = false;
    let mut odd = false;
    for pred in preds {
        match (logic, pred) {
            (Logic::And, Pred::Const(Truth::False)) => return Pred::Const(Truth::False),
            (Logic::Or, Pred::Const(Truth::True)) => return Pred::Const(Truth::True),
            (Logic::Xor, Pred::Const(Truth::Bottom)) => return Pred::Const(Truth::Bottom),
            (Logic::And, Pred::Const(Truth::True))
            | (Logic::Or | Logic::Xor, Pred::Const(Truth::False)) => {}
            (Logic::Xor, Pred::Const(Truth::True)) => odd = !odd,
            // One ⊥ operand of && or || is as good as several.
            (Logic::And | Logic::Or, Pred::Const(Truth::Bottom)) => {
                if !seen_bottom {
                    seen_bottom = true;
                    out.push(Pred::Const(Truth::Bottom));
                }
            }
            (Logic::And, Pred::And(children))
            | (Logic::Or, Pred::Or(children))
            | (Logic::Xor, Pred::Xor(children)) => {
                out.extend(children.into_vec());
            }
            (_, pred) => out.push(pred),
        }
    }
    if logic == Logic::Or {
        out = merge_attr_in(out);
    }
    let joined = match out.len() {
        0 => Pred::Const(Truth::from(logic == Logic::And)),
        1 => out.pop().unwrap_or(Pred::Const(Truth::Bottom)),
        _ => {
            let children = out.into_boxed_slice();
            match logic {
                Logic::And => Pred::And(children),
                Logic::Or => Pred::Or(children),
                Logic::Xor => Pred::Xor(children),
            }
        }
    };
    if odd { negate(joined) } else { joined }
}

/// Merges `AttrIn` nodes on the same attribute (operands of one `||`):
/// `a == "x" || a == "y"` is `a ∈ {x, y}`, ⊥ alike when `a` is missing or
/// not a string.
fn merge_attr_in(preds: Vec<Pred>) -> Vec<Pred> {
    let mut merged: Vec<Pred> = Vec::with_capacity(preds.len());
    for pred in preds {
        if let Pred::AttrIn { attr, values } = &pred
            && let Some(Pred::AttrIn {
                values: existing, ..
            }) = merged
                .iter_mut()
                .find(|p| matches!(p, Pred::AttrIn { attr: a, .. } if a == attr))
        {
            let mut all = std::mem::take(existing).into_vec();
            for v in values {
                if !all.contains(v) {
                    all.push(v.clone());
                }
            }
            *existing = all.into_boxed_slice();
            continue;
        }
        merged.push(pred);
    }
    merged
}
