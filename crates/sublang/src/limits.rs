//! Bounds on what one subscription expression may cost.
//!
//! Subscription expressions come from any client, so every resource a
//! compiled expression can use is bounded here: its length, its nesting depth
//! (which bounds the stack used by the parser, the checker and the
//! evaluator, all of which recurse over the tree), its node count (which
//! bounds memory and evaluation time), and the compiled size of each regular
//! expression (which bounds both the memory a pattern holds and the per-byte
//! cost of matching it).

/// The largest nesting depth this crate will accept, whatever
/// [`Limits::max_depth`] says.
///
/// Parsing and checking use no recursion, but evaluating a compiled
/// expression, deriving its constraints and dropping it recurse once per
/// level of the expression tree, so the depth is what bounds their stack
/// use. Measured at this depth: about 64 KiB in a release build and 512 KiB
/// in a debug build, well within a 2 MiB thread stack (the Rust and tokio
/// default); a test checks the debug case.
pub const MAX_DEPTH_CEILING: usize = 256;

/// Limits applied when compiling a subscription expression.
///
/// The defaults suit a router facing untrusted clients: Emulab's own
/// expressions are at most 1024 bytes long and nest two levels deep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted expression, in bytes of UTF-8. Longer expressions
    /// get IMPL_LIMIT (2006). Default 4096.
    pub max_length: usize,
    /// Deepest accepted nesting: the height of the expression tree, where a
    /// name or literal is 1 and each operator, function call, `!`, unary
    /// `-`/`+`/`~` and pair of parentheses adds one level to the deepest
    /// thing inside it (a run of one operator, such as `a || b || c`, is one
    /// level). Deeper expressions get NESTING_TOO_DEEP (2112). Default 64
    /// (Emulab's expressions are 5 deep); values above [`MAX_DEPTH_CEILING`]
    /// are treated as the ceiling.
    pub max_depth: usize,
    /// Most syntax-tree nodes (names, literals, operators, calls) in one
    /// expression. More get IMPL_LIMIT (2006). Default 2048.
    pub max_nodes: usize,
    /// Largest compiled program, in bytes, for one `regex` pattern
    /// (`regex::RegexBuilder::size_limit`). Larger patterns get
    /// REGEXP_TOO_COMPLEX (2111). Default 1 MiB, which admits
    /// `^\p{L}{1,10}-\d{1,5}` (about 450 KB) and refuses `\w{100}` (about
    /// 5 MB; Unicode classes are large, and `(?-u)\w{100}` is 10 KB).
    pub regex_size_limit: usize,
    /// Cache size, in bytes, for the lazy DFA of one `regex` pattern
    /// (`regex::RegexBuilder::dfa_size_limit`). Matching stays linear when
    /// the cache is too small; it only gets slower. Default 1 MiB.
    pub regex_dfa_size_limit: usize,
    /// Most bytes all distinct `regex` patterns of one subscription may
    /// compile to together (identical patterns count once). More get
    /// REGEXP_TOO_COMPLEX (2111). Default 4 MiB.
    pub regex_budget: usize,
}

impl Limits {
    /// The nesting depth actually enforced: [`max_depth`](Self::max_depth)
    /// capped at [`MAX_DEPTH_CEILING`].
    pub fn effective_max_depth(&self) -> usize {
        self.max_depth.min(MAX_DEPTH_CEILING)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_length: 4096,
            max_depth: 64,
            max_nodes: 2048,
            regex_size_limit: 1024 * 1024,
            regex_dfa_size_limit: 1024 * 1024,
            regex_budget: 4 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_capped_at_the_ceiling() {
        let limits = Limits {
            max_depth: 1_000_000,
            ..Limits::default()
        };
        assert_eq!(limits.effective_max_depth(), MAX_DEPTH_CEILING);
        assert_eq!(Limits::default().effective_max_depth(), 64);
    }
}
