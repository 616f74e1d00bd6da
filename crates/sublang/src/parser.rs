//! The parser: Avis's grammar, parsed without recursion, checked as it goes.
//!
//! The grammar, from the loosest binding to the tightest:
//!
//! ```text
//! expression := xor-list ( "||" xor-list )*
//! xor-list   := and-list ( "^^" and-list )*
//! and-list   := predicate ( "&&" predicate )*
//! predicate  := "!" predicate
//!             | math [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) math ]
//! math       := eleven levels, one operator each, loosest first:
//!               -   +   *   /   %   <<   >>   >>>   |   ^   &
//!               each level is  next-level ( op next-level )*
//! primary    := name "(" [ expression ( "," expression )* ] ")"   (no space before "(")
//!             | name | integer | real | string
//!             | ( "-" | "+" | "~" ) primary
//!             | "(" expression ")"
//! ```
//!
//! Because `-` and `+` are separate levels, `a - 1 + 1` is `a - (1 + 1)` and
//! `a * 2 / 4` is `a * (2 / 4)`; bit operators bind tighter than `*`, so
//! `a << 1 + 1` is `(a << 1) + 1`. This is unconventional, but it is what
//! Avis (and, by its account, Elvin) does, so clients get the same answers
//! from us. A comparison takes exactly two operands: `a < b < c` is a parse
//! error. `!` may only start a predicate, so `a == !b` is a parse error too.
//!
//! # How
//!
//! The grammar is all binary operators with one precedence level each, plus
//! prefix operators and brackets, so an operator-precedence parser with an
//! explicit operator stack accepts exactly the same language as a
//! recursive-descent one, but uses heap instead of stack: an expression's
//! shape cannot overflow the stack, however it nests. A run of one operator
//! (`a - b - c`, `x || y || z`) is kept as one pending n-ary operator, which
//! gives the left-associative meaning and keeps the tree flat.
//!
//! Each time an operator is reduced, the [`Checker`] builds the checked,
//! folded node from its already-checked operands, so type errors are found
//! in the same pass and no tree of syntax is ever built.
//!
//! # Bounds
//!
//! The nesting depth of an expression is the height of its tree: a name or
//! literal is 1, and each operator, function call, `!`, unary operator and
//! pair of parentheses adds one to the deepest thing inside it. It is
//! checked as each node is made, and, so that 100,000 `(` are refused at the
//! first one too many rather than after reading them all, also as each
//! bracket or prefix operator opens. Every later pass (evaluation,
//! constraints, dropping the tree) recurses at most that deep. Every node is
//! counted against the node limit as it is made.

use crate::ast::{BinOp, CmpOp, Logic, UnaryOp};
use crate::check::{Checker, Operand};
use crate::compiled::{Literal, Pred};
use crate::error::{Span, SubscriptionError, codes};
use crate::lexer::{Lexer, Op, Token, TokenKind};
use crate::limits::Limits;

/// Parses and checks `source`, returning the root predicate (possibly a
/// constant: rejecting that is the caller's job). The length limit is the
/// caller's too, checked before any work is done.
pub(crate) fn parse(
    source: &str,
    limits: &Limits,
) -> Result<(Pred, Vec<std::sync::Arc<crate::regex_cache::SharedRegex>>), SubscriptionError> {
    let mut lexer = Lexer::new(source);
    let current = lexer.next_token()?;
    let regexes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let parser = Parser {
        lexer,
        checker: Checker {
            source,
            limits,
            regexes: std::rc::Rc::clone(&regexes),
        },
        current,
        operands: Vec::new(),
        pending: Vec::new(),
        open_levels: 0,
        max_depth: limits.effective_max_depth(),
        nodes: 0,
        max_nodes: limits.max_nodes,
    };
    let root = parser.run()?;
    let compiled = regexes.take();
    Ok((root, compiled))
}

/// Any binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binary {
    Logic(Logic),
    Cmp(CmpOp),
    Math(BinOp),
}

/// The precedence of `!`: tighter than `&&`, looser than comparisons, so
/// that it applies to a whole predicate.
const NOT_PRECEDENCE: usize = 4;
/// The precedence of unary `-`, `+` and `~`: tighter than everything.
const UNARY_PRECEDENCE: usize = 6 + BinOp::BY_PRECEDENCE.len();

impl Binary {
    /// Higher binds tighter.
    fn precedence(self) -> usize {
        match self {
            Binary::Logic(Logic::Or) => 1,
            Binary::Logic(Logic::Xor) => 2,
            Binary::Logic(Logic::And) => 3,
            Binary::Cmp(_) => 5,
            Binary::Math(op) => {
                6 + BinOp::BY_PRECEDENCE
                    .iter()
                    .position(|o| *o == op)
                    .unwrap_or(0)
            }
        }
    }

    fn of(op: Op) -> Option<Binary> {
        Some(match op {
            Op::OrOr => Binary::Logic(Logic::Or),
            Op::XorXor => Binary::Logic(Logic::Xor),
            Op::AndAnd => Binary::Logic(Logic::And),
            Op::Eq => Binary::Cmp(CmpOp::Eq),
            Op::Ne => Binary::Cmp(CmpOp::Ne),
            Op::Lt => Binary::Cmp(CmpOp::Lt),
            Op::Le => Binary::Cmp(CmpOp::Le),
            Op::Gt => Binary::Cmp(CmpOp::Gt),
            Op::Ge => Binary::Cmp(CmpOp::Ge),
            Op::Minus => Binary::Math(BinOp::Sub),
            Op::Plus => Binary::Math(BinOp::Add),
            Op::Star => Binary::Math(BinOp::Mul),
            Op::Slash => Binary::Math(BinOp::Div),
            Op::Percent => Binary::Math(BinOp::Rem),
            Op::Shl => Binary::Math(BinOp::Shl),
            Op::Shr => Binary::Math(BinOp::Shr),
            Op::Ushr => Binary::Math(BinOp::Ushr),
            Op::Pipe => Binary::Math(BinOp::BitOr),
            Op::Caret => Binary::Math(BinOp::BitXor),
            Op::Amp => Binary::Math(BinOp::BitAnd),
            Op::Not | Op::Tilde => return None,
        })
    }
}

/// An operator or bracket waiting for its operands.
enum Pending {
    /// A run of `operators` occurrences of one binary operator, whose first
    /// occurrence is at `span`; it takes `operators + 1` operands.
    Binary {
        op: Binary,
        span: Span,
        operators: usize,
    },
    Not {
        span: Span,
    },
    Unary {
        op: UnaryOp,
        span: Span,
    },
    /// An open `(`.
    Paren {
        span: Span,
    },
    /// An open call of `name`, with the arguments read so far.
    Call {
        name: String,
        span: Span,
        args: Vec<Operand>,
    },
}

impl Pending {
    /// The precedence of an operator; `None` for brackets, which stop
    /// reductions.
    fn precedence(&self) -> Option<usize> {
        match self {
            Pending::Binary { op, .. } => Some(op.precedence()),
            Pending::Not { .. } => Some(NOT_PRECEDENCE),
            Pending::Unary { .. } => Some(UNARY_PRECEDENCE),
            Pending::Paren { .. } | Pending::Call { .. } => None,
        }
    }
}

/// What may stand where an operand is expected.
const OPERAND: &str = "a name, a number, a string, a function call, a unary -, + or ~, or (";

struct Parser<'s, 'l> {
    lexer: Lexer<'s>,
    checker: Checker<'s, 'l>,
    /// The next unconsumed token.
    current: Token,
    /// Checked operands waiting for their operators.
    operands: Vec<Operand>,
    /// Operators and brackets waiting for their operands.
    pending: Vec<Pending>,
    /// How many brackets and prefix operators are open.
    open_levels: usize,
    max_depth: usize,
    nodes: usize,
    max_nodes: usize,
}

impl Parser<'_, '_> {
    fn run(mut self) -> Result<Pred, SubscriptionError> {
        let mut expect_operand = true;
        // Whether a `!` may stand here: at the start of a predicate.
        let mut predicate_start = true;
        loop {
            if expect_operand {
                match &self.current.kind {
                    TokenKind::LParen => {
                        let open = self.advance()?;
                        self.open(Pending::Paren { span: open.span }, open.span)?;
                        predicate_start = true;
                    }
                    TokenKind::Op(Op::Not) if predicate_start => {
                        let not = self.advance()?;
                        self.open(Pending::Not { span: not.span }, not.span)?;
                    }
                    TokenKind::Op(Op::Not) => {
                        return Err(self.unexpected(&format!(
                            "{OPERAND} (! must start a condition: write !( … ) around the whole comparison)"
                        )));
                    }
                    TokenKind::Op(op @ (Op::Minus | Op::Plus | Op::Tilde)) => {
                        let op = match op {
                            Op::Minus => UnaryOp::Neg,
                            Op::Plus => UnaryOp::Plus,
                            _ => UnaryOp::BitNot,
                        };
                        let token = self.advance()?;
                        self.open(
                            Pending::Unary {
                                op,
                                span: token.span,
                            },
                            token.span,
                        )?;
                        predicate_start = false;
                    }
                    TokenKind::Name(_)
                    | TokenKind::Str(_)
                    | TokenKind::Int32(_)
                    | TokenKind::Int64(_)
                    | TokenKind::Real(_) => {
                        let token = self.advance()?;
                        let span = token.span;
                        let operand = match token.kind {
                            TokenKind::Name(name) => {
                                // A name followed by "(" is a call, with or
                                // without whitespace in between (the draft's
                                // own examples write `fold-case (User)`).
                                // There is no juxtaposition in the grammar,
                                // so this cannot be anything else.
                                if self.current.kind == TokenKind::LParen {
                                    self.advance()?;
                                    self.open(
                                        Pending::Call {
                                            name,
                                            span,
                                            args: Vec::new(),
                                        },
                                        span,
                                    )?;
                                    if self.current.kind == TokenKind::RParen {
                                        let close = self.advance()?;
                                        self.close_call(close.span.end)?;
                                        expect_operand = false;
                                    } else {
                                        predicate_start = true;
                                    }
                                    continue;
                                }
                                Operand::name(name, span)
                            }
                            TokenKind::Str(value) => {
                                Operand::literal(Literal::String(value.into()), span)
                            }
                            TokenKind::Int32(value) => {
                                Operand::literal(Literal::Int32(value), span)
                            }
                            TokenKind::Int64(value) => {
                                Operand::literal(Literal::Int64(value), span)
                            }
                            TokenKind::Real(value) => {
                                Operand::literal(Literal::Real64(value), span)
                            }
                            _ => return Err(self.unexpected(OPERAND)),
                        };
                        self.count_node(span)?;
                        self.operands.push(operand);
                        expect_operand = false;
                    }
                    _ => return Err(self.unexpected(OPERAND)),
                }
            } else {
                match self.current.kind {
                    TokenKind::Op(op) if Binary::of(op).is_some() => {
                        let Some(binary) = Binary::of(op) else {
                            return Err(self.unexpected(OPERAND));
                        };
                        self.binary(binary)?;
                        expect_operand = true;
                        predicate_start = matches!(binary, Binary::Logic(_));
                    }
                    TokenKind::RParen => self.close()?,
                    TokenKind::Comma => {
                        self.comma()?;
                        expect_operand = true;
                        predicate_start = true;
                    }
                    TokenKind::End => return self.finish(),
                    TokenKind::LParen => {
                        return Err(self.unexpected(
                            "an operator (only a function name may be followed by ()",
                        ));
                    }
                    _ => {
                        return Err(self.unexpected(
                            "an operator or the end of the expression (names and operators must be separated by spaces)",
                        ));
                    }
                }
            }
        }
    }

    /// Consumes the current token and returns it.
    fn advance(&mut self) -> Result<Token, SubscriptionError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    /// A parse error at the current token.
    fn unexpected(&self, expected: &str) -> SubscriptionError {
        let span = self.current.span;
        let source = self.lexer.source();
        let message = if self.current.kind == TokenKind::End {
            format!(
                "Parse error at column {}: the expression ends too soon; expected {expected}",
                span.column
            )
        } else {
            format!(
                "Parse error at column {}, token {:?}: expected {expected}",
                span.column,
                span.text(source)
            )
        };
        SubscriptionError::at(codes::PARSE_ERROR, message, span, source)
    }

    fn too_deep(&self, span: Span) -> SubscriptionError {
        let message = format!(
            "Expression nests more than {} levels deep (each operator, function call, !, unary operator and \
             pair of parentheses is a level)",
            self.max_depth
        );
        SubscriptionError::at(codes::NESTING_TOO_DEEP, message, span, self.lexer.source())
    }

    /// An internal inconsistency; unreachable, but reported rather than
    /// panicking.
    fn internal(&self, span: Span) -> SubscriptionError {
        let message =
            "Parse error: the expression could not be parsed (internal parser inconsistency)";
        SubscriptionError::at(codes::PARSE_ERROR, message, span, self.lexer.source())
    }

    /// Counts one node against the node limit.
    fn count_node(&mut self, span: Span) -> Result<(), SubscriptionError> {
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            let message = format!(
                "Expression is too complex: it has more than {} names, literals, operators and calls",
                self.max_nodes
            );
            return Err(SubscriptionError::at(
                codes::IMPL_LIMIT,
                message,
                span,
                self.lexer.source(),
            ));
        }
        Ok(())
    }

    /// Pushes a node made at `span`, checking the node and depth limits.
    fn push_node(&mut self, operand: Operand, span: Span) -> Result<(), SubscriptionError> {
        self.count_node(span)?;
        if operand.height > self.max_depth {
            return Err(self.too_deep(span));
        }
        self.operands.push(operand);
        Ok(())
    }

    /// Opens a bracket or prefix operator at `span`.
    fn open(&mut self, pending: Pending, span: Span) -> Result<(), SubscriptionError> {
        if self.open_levels >= self.max_depth {
            return Err(self.too_deep(span));
        }
        self.open_levels += 1;
        self.pending.push(pending);
        Ok(())
    }

    fn pop_operand(&mut self, span: Span) -> Result<Operand, SubscriptionError> {
        self.operands.pop().ok_or_else(|| self.internal(span))
    }

    /// Reduces pending operators that bind tighter than `precedence` (all
    /// of them, down to the nearest bracket, for 0).
    fn reduce_above(&mut self, precedence: usize) -> Result<(), SubscriptionError> {
        while let Some(top) = self.pending.last() {
            match top.precedence() {
                Some(p) if p > precedence => self.reduce()?,
                _ => break,
            }
        }
        Ok(())
    }

    /// Applies the top pending operator to its operands.
    fn reduce(&mut self) -> Result<(), SubscriptionError> {
        let span = self.current.span;
        match self.pending.pop() {
            Some(Pending::Binary {
                op,
                span,
                operators,
            }) => {
                let at = self
                    .operands
                    .len()
                    .checked_sub(operators + 1)
                    .ok_or_else(|| self.internal(span))?;
                let operands = self.operands.split_off(at);
                let node = match op {
                    Binary::Logic(logic) => self.checker.logic(logic, operands)?,
                    Binary::Math(math) => self.checker.chain(math, operands)?,
                    Binary::Cmp(cmp) => {
                        let mut operands = operands.into_iter();
                        let (Some(lhs), Some(rhs)) = (operands.next(), operands.next()) else {
                            return Err(self.internal(span));
                        };
                        self.checker.compare(cmp, span, lhs, rhs)?
                    }
                };
                self.push_node(node, span)
            }
            Some(Pending::Not { span }) => {
                let operand = self.pop_operand(span)?;
                self.open_levels = self.open_levels.saturating_sub(1);
                let node = self.checker.not(span, operand)?;
                self.push_node(node, span)
            }
            Some(Pending::Unary { op, span }) => {
                let operand = self.pop_operand(span)?;
                self.open_levels = self.open_levels.saturating_sub(1);
                let node = self.checker.unary(op, span, operand)?;
                self.push_node(node, span)
            }
            Some(bracket) => {
                self.pending.push(bracket);
                Err(self.internal(span))
            }
            None => Err(self.internal(span)),
        }
    }

    /// Handles a binary operator token (the current token).
    fn binary(&mut self, op: Binary) -> Result<(), SubscriptionError> {
        let precedence = op.precedence();
        self.reduce_above(precedence)?;
        if let (
            Binary::Cmp(_),
            Some(Pending::Binary {
                op: Binary::Cmp(_), ..
            }),
        ) = (op, self.pending.last())
        {
            return Err(
                self.unexpected("&&, || or ^^ (comparisons do not chain: write a < b && b < c)")
            );
        }
        let token = self.advance()?;
        if let Some(Pending::Binary {
            op: top, operators, ..
        }) = self.pending.last_mut()
            && *top == op
        {
            *operators += 1;
            return Ok(());
        }
        self.pending.push(Pending::Binary {
            op,
            span: token.span,
            operators: 1,
        });
        Ok(())
    }

    /// Handles `)` (the current token): closes a parenthesis or a call.
    fn close(&mut self) -> Result<(), SubscriptionError> {
        self.reduce_above(0)?;
        match self.pending.last() {
            Some(Pending::Paren { .. } | Pending::Call { .. }) => {}
            _ => {
                return Err(self.unexpected(
                    "an operator or the end of the expression (this ) has no matching ()",
                ));
            }
        }
        let close = self.advance()?;
        match self.pending.pop() {
            Some(Pending::Paren { span }) => {
                let inner = self.pop_operand(span)?;
                self.open_levels = self.open_levels.saturating_sub(1);
                let operand = inner.parenthesised(span, close.span.end);
                if operand.height > self.max_depth {
                    return Err(self.too_deep(span));
                }
                self.operands.push(operand);
                Ok(())
            }
            Some(Pending::Call {
                name,
                span,
                mut args,
            }) => {
                args.push(self.pop_operand(span)?);
                self.pending.push(Pending::Call { name, span, args });
                self.close_call(close.span.end)
            }
            _ => Err(self.internal(close.span)),
        }
    }

    /// Builds the call on top of the pending stack, whose `)` ends at `end`.
    fn close_call(&mut self, end: usize) -> Result<(), SubscriptionError> {
        let span = self.current.span;
        let Some(Pending::Call { name, span, args }) = self.pending.pop() else {
            return Err(self.internal(span));
        };
        self.open_levels = self.open_levels.saturating_sub(1);
        let node = self.checker.call(&name, span, end, args)?;
        self.push_node(node, span)
    }

    /// Handles `,` (the current token): ends one argument of a call.
    fn comma(&mut self) -> Result<(), SubscriptionError> {
        self.reduce_above(0)?;
        if !matches!(self.pending.last(), Some(Pending::Call { .. })) {
            return Err(self.unexpected("an operator or the end of the expression (commas only separate function arguments)"));
        }
        let comma = self.advance()?;
        let argument = self.pop_operand(comma.span)?;
        match self.pending.last_mut() {
            Some(Pending::Call { args, .. }) => {
                args.push(argument);
                Ok(())
            }
            _ => Err(self.internal(comma.span)),
        }
    }

    /// At the end of the expression: reduces everything and returns the
    /// root.
    fn finish(mut self) -> Result<Pred, SubscriptionError> {
        self.reduce_above(0)?;
        match self.pending.last() {
            None => {}
            Some(Pending::Paren { span }) => {
                return Err(self.unexpected(&format!(") to close the ( at column {}", span.column)));
            }
            Some(Pending::Call { name, .. }) => {
                return Err(self.unexpected(&format!(", or ) in the arguments of {name}(")));
            }
            Some(_) => return Err(self.internal(self.current.span)),
        }
        let root = self.pop_operand(self.current.span)?;
        if !self.operands.is_empty() {
            return Err(self.internal(self.current.span));
        }
        self.checker.root(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_proto::{Attributes, Value};

    use crate::Truth;

    fn parsed(src: &str) -> Result<Pred, SubscriptionError> {
        parse(src, &Limits::default()).map(|(pred, _)| pred)
    }

    fn error(src: &str) -> SubscriptionError {
        match parsed(src) {
            Ok(pred) => panic!("{src:?} parsed as {pred:?}"),
            Err(e) => e,
        }
    }

    /// Evaluates against a = 5, b = 2, c = 3 (int32).
    fn value_of(src: &str) -> Truth {
        let attrs: Attributes = [
            ("a", Value::Int32(5)),
            ("b", Value::Int32(2)),
            ("c", Value::Int32(3)),
        ]
        .into_iter()
        .collect();
        parsed(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .eval(&attrs)
    }

    #[test]
    fn logical_precedence_is_not_and_xor_or() {
        // && before ^^ before ||.
        assert_eq!(
            value_of("a == 5 || a == 5 ^^ a == 5 && a == 5"),
            Truth::True
        );
        assert_eq!(value_of("a == 5 ^^ a == 5 && a == 1"), Truth::True);
        assert_eq!(value_of("a == 1 && a == 5 || a == 5"), Truth::True);
        // ! takes the whole predicate, and only that.
        assert_eq!(value_of("! a == 1"), Truth::True);
        assert_eq!(value_of("! a > 1 && b == 2"), Truth::False);
        assert_eq!(value_of("! a > 9 && b == 2"), Truth::True);
    }

    #[test]
    fn each_math_operator_has_its_own_level() {
        assert_eq!(value_of("a - 1 + 1 == 3"), Truth::True);
        assert_eq!(value_of("a * 2 / 4 == 0"), Truth::True);
        assert_eq!(value_of("a << 1 + 1 == 11"), Truth::True);
        assert_eq!(value_of("a - b - c == 0"), Truth::True);
        assert_eq!(value_of("a - b * c - 1 == -2"), Truth::True);
        assert_eq!(value_of("1 | 2 ^ 3 & 1 == a - 2"), Truth::True);
        assert_eq!(value_of("a % b >> 1 == 0"), Truth::True, "a % (b >> 1)");
    }

    #[test]
    fn unary_operators_bind_to_a_primary() {
        assert_eq!(value_of("-a * 2 == -10"), Truth::True);
        assert_eq!(value_of("- - ~ + a == -6"), Truth::True);
        assert_eq!(value_of("-(a + 1) == -6"), Truth::True);
    }

    #[test]
    fn a_call_may_have_whitespace_before_its_paren() {
        assert_eq!(value_of("equals(a, 1, 5)"), Truth::True);
        assert_eq!(value_of("equals (a, 1, 5)"), Truth::True);
        assert_eq!(value_of("equals\t\n(a, 1, 5)"), Truth::True);
        assert_eq!(error("require ()").code, codes::TOO_FEW_ARGS);
        // Only a name starts a call.
        let err = error("5 (a)");
        assert_eq!(err.code, codes::PARSE_ERROR);
        assert_eq!((err.column, err.token.as_str()), (3, "("));
    }

    #[test]
    fn comparisons_do_not_chain() {
        let err = error("a < b < c");
        assert_eq!(err.code, codes::PARSE_ERROR);
        assert_eq!((err.column, err.token.as_str()), (7, "<"));
        assert!(err.message.contains("do not chain"), "{}", err.message);
        // Parenthesised, it parses, and is a type error instead.
        assert_eq!(error("(a < b) < c").code, codes::TYPE_MISMATCH);
    }

    #[test]
    fn not_only_starts_a_predicate() {
        let err = error("a == !b");
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::PARSE_ERROR, 6, "!")
        );
        assert_eq!(error("- !a").code, codes::PARSE_ERROR);
        assert_eq!(error("a + !b == 1").code, codes::PARSE_ERROR);
        assert_eq!(value_of("!!a == 5"), Truth::True);
        assert_eq!(value_of("equals(a, 1) || !(a == 1)"), Truth::True);
    }

    #[test]
    fn grammar_errors_name_column_and_token() {
        let err = error("a == 1 &&");
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::PARSE_ERROR, 10, "")
        );
        assert!(err.message.contains("ends too soon"));
        let err = error("(a == 1");
        assert_eq!((err.code, err.column), (codes::PARSE_ERROR, 8));
        assert!(
            err.message.contains("close the ( at column 1"),
            "{}",
            err.message
        );
        let err = error("a == 1)");
        assert_eq!((err.column, err.token.as_str()), (7, ")"));
        let err = error("f(a b)");
        assert_eq!((err.column, err.token.as_str()), (5, "b"));
        let err = error("a == 08");
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::PARSE_ERROR, 7, "8")
        );
        let err = error("");
        assert_eq!((err.code, err.column), (codes::PARSE_ERROR, 1));
        let err = error("f(,)");
        assert_eq!((err.column, err.token.as_str()), (3, ","));
        let err = error("a == 1, b == 2");
        assert_eq!((err.column, err.token.as_str()), (7, ","));
        let err = error("()");
        assert_eq!((err.column, err.token.as_str()), (2, ")"));
        let err = error("equals(a, 1");
        assert!(
            err.message.contains("arguments of equals("),
            "{}",
            err.message
        );
        let err = error("a == 1 b == 2");
        assert_eq!((err.column, err.token.as_str()), (8, "b"));
    }

    #[test]
    fn nesting_is_the_height_of_the_tree() {
        let limits = Limits {
            max_depth: 4,
            ..Limits::default()
        };
        // (a == 1): the name 1, the comparison 2, the parentheses 3.
        assert!(parse("(a == 1)", &limits).is_ok());
        assert!(parse("((a == 1))", &limits).is_ok());
        let err = parse("(((a == 1)))", &limits).unwrap_err();
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::NESTING_TOO_DEEP, 1, "(")
        );
        assert_eq!(
            parse("!!!a == 1", &limits).unwrap_err().code,
            codes::NESTING_TOO_DEEP
        );
        assert_eq!(
            parse("- - - a == 1", &limits).unwrap_err().code,
            codes::NESTING_TOO_DEEP
        );
        assert_eq!(
            parse("a + b * c == 1 && b == 1", &limits).unwrap_err().code,
            codes::NESTING_TOO_DEEP
        );
        // Long runs of one operator add one level, however long.
        assert!(parse("a + a + a + a + a + a == 1 || b == 1 || c == 1", &limits).is_ok());
        // Siblings do not add up.
        assert!(parse("(a == 1) && (b == 1) && !c == 1", &limits).is_ok());
    }

    #[test]
    fn open_brackets_are_refused_as_soon_as_they_are_too_many() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let err = parse("(((((((((((((((", &limits).unwrap_err();
        assert_eq!((err.code, err.column), (codes::NESTING_TOO_DEEP, 4));
        let err = parse("f(f(f(f(f(f(", &limits).unwrap_err();
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::NESTING_TOO_DEEP, 7, "f")
        );
    }

    #[test]
    fn node_count_is_limited() {
        let limits = Limits {
            max_nodes: 5,
            ..Limits::default()
        };
        assert!(parse("a == 1 && b == 2", &limits).is_err());
        assert!(parse("a == 1", &limits).is_ok());
        let err = parse("a + b + c + d + e + f == 1", &limits).unwrap_err();
        assert_eq!(err.code, codes::IMPL_LIMIT);
    }
}
