//! Recursive-descent parser reproducing Avis's grammar.
//!
//! From the loosest binding to the tightest:
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
//! error.
//!
//! # Bounds
//!
//! Every construct that recurses (`(`, `!`, a unary operator, a function
//! call) first checks the nesting depth against the limit, so 100,000 `(`
//! produce NESTING_TOO_DEEP, not a stack overflow. Runs of one operator are
//! built as a single n-ary node by iteration, so a long run costs no stack.
//! Every node is counted against the node limit as it is made.

use crate::ast::{BinOp, CmpOp, Logic, Node, NodeKind, UnaryOp};
use crate::error::{Span, SubscriptionError, codes};
use crate::lexer::{Lexer, Op, Token, TokenKind};
use crate::limits::Limits;

/// Parses `source` into a syntax tree, enforcing the depth and node limits.
/// (The length limit is the caller's, checked before any work is done.)
pub(crate) fn parse(source: &str, limits: &Limits) -> Result<Node, SubscriptionError> {
    let mut lexer = Lexer::new(source);
    let current = lexer.next_token()?;
    let mut parser = Parser {
        lexer,
        current,
        depth: 0,
        max_depth: limits.effective_max_depth(),
        nodes: 0,
        max_nodes: limits.max_nodes,
    };
    let root = parser.parse_logic(Logic::Or)?;
    if parser.current.kind != TokenKind::End {
        let expected = match parser.current.kind {
            TokenKind::Op(Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) => {
                "&&, || or ^^ (comparisons do not chain: write a < b && b < c)"
            }
            TokenKind::RParen => "&&, || or ^^ (this ) has no matching ()",
            TokenKind::LParen => {
                "&&, || or ^^ (a function name must be followed by ( with no space in between)"
            }
            _ => "&&, ||, ^^ or the end of the expression (names and operators must be separated by spaces)",
        };
        return Err(parser.unexpected(expected));
    }
    Ok(root)
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    /// The next unconsumed token (one token of lookahead).
    current: Token,
    depth: usize,
    max_depth: usize,
    nodes: usize,
    max_nodes: usize,
}

impl Parser<'_> {
    /// Consumes the current token and returns it.
    fn advance(&mut self) -> Result<Token, SubscriptionError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    fn at_op(&self, op: Op) -> bool {
        self.current.kind == TokenKind::Op(op)
    }

    /// Opens one nesting level, failing before any recursion if that would
    /// exceed the limit.
    fn enter(&mut self, span: Span) -> Result<(), SubscriptionError> {
        if self.depth >= self.max_depth {
            let message = format!(
                "Expression nests more than {} levels deep (each (, !, unary operator and function call opens a level)",
                self.max_depth
            );
            return Err(SubscriptionError::at(codes::NESTING_TOO_DEEP, message, span, self.lexer.source()));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Makes a node, counting it against the node limit.
    fn node(&mut self, kind: NodeKind, span: Span, end: usize) -> Result<Node, SubscriptionError> {
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            let message = format!(
                "Expression is too complex: it has more than {} names, literals, operators and calls",
                self.max_nodes
            );
            return Err(SubscriptionError::at(codes::IMPL_LIMIT, message, span, self.lexer.source()));
        }
        Ok(Node { kind, span, end })
    }

    /// A parse error at the current token.
    fn unexpected(&self, expected: &str) -> SubscriptionError {
        let span = self.current.span;
        let source = self.lexer.source();
        if self.current.kind == TokenKind::End {
            let message = format!("Parse error at column {}: the expression ends too soon; expected {expected}", span.column);
            SubscriptionError::at(codes::PARSE_ERROR, message, span, source)
        } else {
            let message =
                format!("Parse error at column {}, token {:?}: expected {expected}", span.column, span.text(source));
            SubscriptionError::at(codes::PARSE_ERROR, message, span, source)
        }
    }

    /// One of the three logical levels: `level`-separated runs of the next
    /// tighter level.
    fn parse_logic(&mut self, level: Logic) -> Result<Node, SubscriptionError> {
        let op = match level {
            Logic::Or => Op::OrOr,
            Logic::Xor => Op::XorXor,
            Logic::And => Op::AndAnd,
        };
        let first = self.parse_logic_operand(level)?;
        if !self.at_op(op) {
            return Ok(first);
        }
        let span = first.span;
        let mut items = vec![first];
        while self.at_op(op) {
            self.advance()?;
            items.push(self.parse_logic_operand(level)?);
        }
        let end = items.last().map_or(span.end, |n| n.end);
        self.node(NodeKind::Logic(level, items), span, end)
    }

    fn parse_logic_operand(&mut self, level: Logic) -> Result<Node, SubscriptionError> {
        match level {
            Logic::Or => self.parse_logic(Logic::Xor),
            Logic::Xor => self.parse_logic(Logic::And),
            Logic::And => self.parse_predicate(),
        }
    }

    fn parse_predicate(&mut self) -> Result<Node, SubscriptionError> {
        if self.at_op(Op::Not) {
            let not = self.advance()?;
            self.enter(not.span)?;
            let inner = self.parse_predicate()?;
            self.leave();
            let end = inner.end;
            return self.node(NodeKind::Not(Box::new(inner)), not.span, end);
        }
        let lhs = self.parse_math(0)?;
        let op = match self.current.kind {
            TokenKind::Op(Op::Eq) => CmpOp::Eq,
            TokenKind::Op(Op::Ne) => CmpOp::Ne,
            TokenKind::Op(Op::Lt) => CmpOp::Lt,
            TokenKind::Op(Op::Le) => CmpOp::Le,
            TokenKind::Op(Op::Gt) => CmpOp::Gt,
            TokenKind::Op(Op::Ge) => CmpOp::Ge,
            _ => return Ok(lhs),
        };
        let op_span = self.advance()?.span;
        let rhs = self.parse_math(0)?;
        let (span, end) = (lhs.span, rhs.end);
        self.node(NodeKind::Compare { op, op_span, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span, end)
    }

    /// The math level `level` (an index into [`BinOp::BY_PRECEDENCE`]); past
    /// the last level, a primary.
    fn parse_math(&mut self, level: usize) -> Result<Node, SubscriptionError> {
        let Some(&op) = BinOp::BY_PRECEDENCE.get(level) else {
            return self.parse_primary();
        };
        let first = self.parse_math(level + 1)?;
        if self.current_binop() != Some(op) {
            return Ok(first);
        }
        let span = first.span;
        let mut operands = vec![first];
        while self.current_binop() == Some(op) {
            self.advance()?;
            operands.push(self.parse_math(level + 1)?);
        }
        let end = operands.last().map_or(span.end, |n| n.end);
        self.node(NodeKind::Chain(op, operands), span, end)
    }

    fn current_binop(&self) -> Option<BinOp> {
        let TokenKind::Op(op) = self.current.kind else { return None };
        Some(match op {
            Op::Minus => BinOp::Sub,
            Op::Plus => BinOp::Add,
            Op::Star => BinOp::Mul,
            Op::Slash => BinOp::Div,
            Op::Percent => BinOp::Rem,
            Op::Shl => BinOp::Shl,
            Op::Shr => BinOp::Shr,
            Op::Ushr => BinOp::Ushr,
            Op::Pipe => BinOp::BitOr,
            Op::Caret => BinOp::BitXor,
            Op::Amp => BinOp::BitAnd,
            _ => return None,
        })
    }

    fn parse_primary(&mut self) -> Result<Node, SubscriptionError> {
        let unary = match self.current.kind {
            TokenKind::Op(Op::Minus) => Some(UnaryOp::Neg),
            TokenKind::Op(Op::Plus) => Some(UnaryOp::Plus),
            TokenKind::Op(Op::Tilde) => Some(UnaryOp::BitNot),
            _ => None,
        };
        if let Some(op) = unary {
            let token = self.advance()?;
            self.enter(token.span)?;
            let operand = self.parse_primary()?;
            self.leave();
            let end = operand.end;
            return self.node(NodeKind::Unary(op, Box::new(operand)), token.span, end);
        }
        match self.current.kind {
            TokenKind::LParen => self.parse_parenthesised(),
            TokenKind::Name(_) | TokenKind::Str(_) | TokenKind::Int32(_) | TokenKind::Int64(_) | TokenKind::Real(_) => {
                let token = self.advance()?;
                let span = token.span;
                let kind = match token.kind {
                    TokenKind::Name(name) => {
                        // A name immediately followed by "(" is a call.
                        if self.current.kind == TokenKind::LParen && self.current.span.start == span.end {
                            return self.parse_call(name, span);
                        }
                        NodeKind::Name(name)
                    }
                    TokenKind::Str(value) => NodeKind::Str(value),
                    TokenKind::Int32(value) => NodeKind::Int32(value),
                    TokenKind::Int64(value) => NodeKind::Int64(value),
                    TokenKind::Real(value) => NodeKind::Real(value),
                    _ => return Err(self.unexpected("a value")),
                };
                self.node(kind, span, span.end)
            }
            _ => Err(self.unexpected("a name, a number, a string, a function call, a unary -, + or ~, or (")),
        }
    }

    fn parse_parenthesised(&mut self) -> Result<Node, SubscriptionError> {
        let open = self.advance()?;
        self.enter(open.span)?;
        let mut inner = self.parse_logic(Logic::Or)?;
        if self.current.kind != TokenKind::RParen {
            let expected = format!(") to close the ( at column {}", open.span.column);
            return Err(self.unexpected(&expected));
        }
        let close = self.advance()?;
        self.leave();
        // The parentheses belong to the node's text and position.
        inner.span = open.span;
        inner.end = close.span.end;
        Ok(inner)
    }

    /// The argument list of a call to `name`; the current token is the `(`.
    fn parse_call(&mut self, name: String, name_span: Span) -> Result<Node, SubscriptionError> {
        self.advance()?;
        self.enter(name_span)?;
        let mut args = Vec::new();
        if self.current.kind != TokenKind::RParen {
            loop {
                args.push(self.parse_logic(Logic::Or)?);
                match self.current.kind {
                    TokenKind::Comma => {
                        self.advance()?;
                    }
                    TokenKind::RParen => break,
                    _ => {
                        let expected = format!(", or ) in the arguments of {name}(");
                        return Err(self.unexpected(&expected));
                    }
                }
            }
        }
        let close = self.advance()?;
        self.leave();
        self.node(NodeKind::Call { name, args }, name_span, close.span.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a tree fully parenthesised, to check its shape.
    fn shape(node: &Node) -> String {
        match &node.kind {
            NodeKind::Name(n) => n.clone(),
            NodeKind::Str(s) => format!("{s:?}"),
            NodeKind::Int32(v) => v.to_string(),
            NodeKind::Int64(v) => format!("{v}L"),
            NodeKind::Real(v) => format!("{v:?}"),
            NodeKind::Call { name, args } => {
                format!("{name}({})", args.iter().map(shape).collect::<Vec<_>>().join(", "))
            }
            NodeKind::Unary(op, x) => format!("{}{}", op.symbol(), shape(x)),
            NodeKind::Chain(op, xs) => {
                format!("({})", xs.iter().map(shape).collect::<Vec<_>>().join(&format!(" {} ", op.symbol())))
            }
            NodeKind::Compare { op, lhs, rhs, .. } => format!("({} {} {})", shape(lhs), op.symbol(), shape(rhs)),
            NodeKind::Not(x) => format!("!{}", shape(x)),
            NodeKind::Logic(l, xs) => {
                format!("({})", xs.iter().map(shape).collect::<Vec<_>>().join(&format!(" {} ", l.symbol())))
            }
        }
    }

    fn parsed(src: &str) -> String {
        shape(&parse(src, &Limits::default()).unwrap())
    }

    fn error(src: &str) -> SubscriptionError {
        parse(src, &Limits::default()).unwrap_err()
    }

    #[test]
    fn logical_precedence_is_not_and_xor_or() {
        assert_eq!(parsed("a || b ^^ c && d"), "(a || (b ^^ (c && d)))");
        assert_eq!(parsed("! a == 1"), "!(a == 1)");
        assert_eq!(parsed("! a > 1 && b"), "(!(a > 1) && b)");
        assert_eq!(parsed("a && b && c || d"), "((a && b && c) || d)");
    }

    #[test]
    fn each_math_operator_has_its_own_level() {
        assert_eq!(parsed("a - 1 + 1"), "(a - (1 + 1))");
        assert_eq!(parsed("a * 2 / 4"), "(a * (2 / 4))");
        assert_eq!(parsed("a << 1 + 1"), "((a << 1) + 1)");
        assert_eq!(parsed("a - b - c"), "(a - b - c)");
        assert_eq!(parsed("1 | 2 ^ 3 & 4"), "(1 | (2 ^ (3 & 4)))");
        assert_eq!(parsed("a % b >> c >>> d << e"), "(a % ((b >> (c >>> d)) << e))");
    }

    #[test]
    fn unary_operators_bind_to_a_primary() {
        assert_eq!(parsed("-a * 2"), "(-a * 2)");
        assert_eq!(parsed("- - ~ + 1"), "--~+1");
        assert_eq!(parsed("-(a + 1)"), "-(a + 1)");
    }

    #[test]
    fn calls_need_the_paren_right_after_the_name() {
        assert_eq!(parsed("f(a, \"x\", 1.5, 2L)"), "f(a, \"x\", 1.5, 2L)");
        assert_eq!(parsed("f()"), "f()");
        let err = error("require (a)");
        assert_eq!(err.code, codes::PARSE_ERROR);
        assert_eq!((err.column, err.token.as_str()), (9, "("));
        assert_eq!(parsed("(a)"), "a");
    }

    #[test]
    fn comparisons_do_not_chain() {
        let err = error("a < b < c");
        assert_eq!(err.code, codes::PARSE_ERROR);
        assert_eq!((err.column, err.token.as_str()), (7, "<"));
        assert!(err.message.contains("do not chain"), "{}", err.message);
    }

    #[test]
    fn grammar_errors_name_column_and_token() {
        let err = error("a == 1 &&");
        assert_eq!((err.code, err.column, err.token.as_str()), (codes::PARSE_ERROR, 10, ""));
        assert!(err.message.contains("ends too soon"));
        let err = error("(a == 1");
        assert_eq!((err.code, err.column), (codes::PARSE_ERROR, 8));
        assert!(err.message.contains("close the ( at column 1"), "{}", err.message);
        let err = error("a == 1)");
        assert_eq!((err.column, err.token.as_str()), (7, ")"));
        let err = error("f(a b)");
        assert_eq!((err.column, err.token.as_str()), (5, "b"));
        let err = error("a == 08");
        assert_eq!((err.code, err.column, err.token.as_str()), (codes::PARSE_ERROR, 7, "8"));
        let err = error("");
        assert_eq!((err.code, err.column), (codes::PARSE_ERROR, 1));
        let err = error("f(,)");
        assert_eq!((err.column, err.token.as_str()), (3, ","));
    }

    #[test]
    fn node_text_covers_parentheses() {
        let root = parse(" ( a == 1 ) && b", &Limits::default()).unwrap();
        let NodeKind::Logic(_, items) = &root.kind else { panic!("not a logic node") };
        assert_eq!(items[0].text(" ( a == 1 ) && b"), "( a == 1 )");
        assert_eq!(root.text(" ( a == 1 ) && b"), "( a == 1 ) && b");
    }

    #[test]
    fn nesting_is_limited_before_recursing() {
        let limits = Limits { max_depth: 3, ..Limits::default() };
        assert!(parse("(((a)))", &limits).is_ok());
        let err = parse("((((a))))", &limits).unwrap_err();
        assert_eq!((err.code, err.column, err.token.as_str()), (codes::NESTING_TOO_DEEP, 4, "("));
        assert_eq!(parse("!!!!a", &limits).unwrap_err().code, codes::NESTING_TOO_DEEP);
        assert_eq!(parse("- - - - a", &limits).unwrap_err().code, codes::NESTING_TOO_DEEP);
        assert_eq!(parse("f(f(f(f(a))))", &limits).unwrap_err().code, codes::NESTING_TOO_DEEP);
        // Depth is released when a level closes, so siblings do not add up.
        assert!(parse("(((a))) && (((b))) && !!!c", &limits).is_ok());
    }

    #[test]
    fn node_count_is_limited() {
        let limits = Limits { max_nodes: 5, ..Limits::default() };
        assert!(parse("a == 1 && b == 2", &limits).is_err());
        assert!(parse("a == 1", &limits).is_ok());
        let err = parse("a + b + c + d + e + f", &limits).unwrap_err();
        assert_eq!(err.code, codes::IMPL_LIMIT);
    }

    #[test]
    fn long_runs_do_not_nest() {
        let src = vec!["a"; 5000].join(" + ");
        let root = parse(&src, &Limits { max_nodes: 10_000, ..Limits::default() }).unwrap();
        let NodeKind::Chain(BinOp::Add, operands) = root.kind else { panic!("not a chain") };
        assert_eq!(operands.len(), 5000);
    }
}
