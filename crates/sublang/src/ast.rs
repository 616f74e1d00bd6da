//! The operators of the language, shared by the parser, the checker and the
//! evaluator.

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
    pub(crate) const BY_PRECEDENCE: [BinOp; 11] = [
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
    pub(crate) fn symbol(self) -> &'static str {
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
    pub(crate) fn integers_only(self) -> bool {
        !matches!(
            self,
            BinOp::Sub | BinOp::Add | BinOp::Mul | BinOp::Div | BinOp::Rem
        )
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
    pub(crate) fn symbol(self) -> &'static str {
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
    pub(crate) fn symbol(self) -> &'static str {
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
    pub(crate) fn swapped(self) -> CmpOp {
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
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Logic::And => "&&",
            Logic::Or => "||",
            Logic::Xor => "^^",
        }
    }
}
