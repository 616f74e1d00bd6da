//! The syntax tree the parser builds and the checker consumes.
//!
//! It is a plain owned tree that mirrors the source: no types, no folding.
//! Left-associative runs of one operator (`a - b - c`) and runs of one
//! logical operator (`a && b && c`) are single n-ary nodes, so the tree's
//! height grows only with nesting, never with the length of a run; that is
//! what lets every later pass recurse safely once the parser has bounded the
//! nesting depth.

use crate::error::Span;

/// A binary arithmetic, shift or bitwise operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Sub,
    Add,
    Mul,
    Div,
    Rem,
    Shl,
    Shr,
    Ushr,
    BitOr,
    BitXor,
    BitAnd,
}

impl BinOp {
    /// All binary operators, from the loosest-binding to the tightest. Each
    /// has a precedence level of its own (Avis's grammar).
    pub const BY_PRECEDENCE: [BinOp; 11] = [
        BinOp::Sub,
        BinOp::Add,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Rem,
        BinOp::Shl,
        BinOp::Shr,
        BinOp::Ushr,
        BinOp::BitOr,
        BinOp::BitXor,
        BinOp::BitAnd,
    ];

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Sub => "-",
            BinOp::Add => "+",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Ushr => ">>>",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::BitAnd => "&",
        }
    }

    /// True for the operators that take integers only (shifts and bitwise).
    pub fn integers_only(self) -> bool {
        !matches!(self, BinOp::Sub | BinOp::Add | BinOp::Mul | BinOp::Div | BinOp::Rem)
    }
}

/// A unary operator on values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Neg,
    Plus,
    BitNot,
}

impl UnaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Plus => "+",
            UnaryOp::BitNot => "~",
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The operator that gives the same answer with the operands swapped
    /// (`1 < a` is `a > 1`).
    pub fn swapped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }
}

/// A logical connective joining two or more predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Logic {
    And,
    Or,
    Xor,
}

impl Logic {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Logic::And => "&&",
            Logic::Or => "||",
            Logic::Xor => "^^",
        }
    }
}

/// One syntax-tree node with its place in the source.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// The node's first token (for a parenthesised node, the `(`): errors
    /// about the node point here.
    pub span: Span,
    /// Byte offset just past the node's last token, so that
    /// `source[span.start..end]` is the node's text.
    pub end: usize,
}

impl Node {
    /// The node's source text, for error messages.
    pub fn text<'s>(&self, source: &'s str) -> &'s str {
        source.get(self.span.start..self.end).unwrap_or("")
    }
}

/// What a node is.
#[derive(Debug)]
pub(crate) enum NodeKind {
    Name(String),
    Str(String),
    Int32(i32),
    Int64(i64),
    Real(f64),
    /// `name(args…)`; the node's span is the name's.
    Call { name: String, args: Vec<Node> },
    Unary(UnaryOp, Box<Node>),
    /// `operands[0] op operands[1] op …`, evaluated left to right.
    Chain(BinOp, Vec<Node>),
    /// `lhs op rhs`; `op_span` locates the operator.
    Compare { op: CmpOp, op_span: Span, lhs: Box<Node>, rhs: Box<Node> },
    Not(Box<Node>),
    /// Two or more predicates joined by one connective.
    Logic(Logic, Vec<Node>),
}
