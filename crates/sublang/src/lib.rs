//! The Elvin 4 subscription language: compile an expression once, then
//! evaluate it against every notification the router sees.
//!
//! ```
//! use elvin_proto::{AttributesRef, ValueRef};
//! use elvin_sublang::{IndexKey, Limits, Subscription, Truth};
//!
//! let sub = Subscription::compile(
//!     r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.0.0.1" ) && SCHEDULER == 0 "#,
//!     &Limits::default(),
//! )?;
//! let event = AttributesRef {
//!     entries: vec![
//!         ("EXPT", ValueRef::String("p/e")),
//!         ("HOST", ValueRef::String("*")),
//!         ("SCHEDULER", ValueRef::Int32(0)),
//!     ],
//! };
//! assert_eq!(sub.evaluate(&event), Truth::True);
//! assert!(sub.matches(&event));
//!
//! let constraints = sub.constraints();
//! assert_eq!(constraints[1].attribute, "HOST");
//! assert_eq!(constraints[1].values, [IndexKey::String("*".into()), IndexKey::String("10.0.0.1".into())]);
//! # Ok::<(), elvin_sublang::SubscriptionError>(())
//! ```
//!
//! # Pipeline
//!
//! [`Subscription::compile`] runs these stages:
//!
//! 1. **Length check**, before anything else ([`Limits::max_length`]).
//! 2. **Lex** (`lexer`): hand-written, pulled one token at a time, with
//!    1-based line and column positions in characters. Names may contain
//!    most operator characters, so `a==1` is one name: operators must be
//!    separated from names by spaces. There are no reserved words; a name
//!    immediately followed by `(` is a function call.
//! 3. **Parse** (`parser`): Avis's grammar, parsed by an operator-precedence
//!    parser with explicit stacks, so no input can exhaust the call stack.
//! 4. **Check and fold** (`check`), as the parser reduces each operator:
//!    type errors visible from literals, function names and arguments,
//!    pattern compilation, constant folding with the evaluator's own
//!    arithmetic, and specialisation of common shapes. No syntax tree is
//!    built; the result is the compiled form. The root must be a condition
//!    and must not fold to a constant.
//! 5. **Evaluate** (`compiled`): a tree of n-ary nodes evaluated with
//!    three-valued logic against any
//!    [`AttributeLookup`](elvin_proto::AttributeLookup), with no allocation
//!    unless a string function must build a new string.
//!
//! # Precedence
//!
//! From the loosest binding to the tightest:
//!
//! | level | operators |
//! |---|---|
//! | 1 | `\|\|` |
//! | 2 | `^^` |
//! | 3 | `&&` |
//! | 4 | `!` (applies to the whole following predicate: `! a == 1` is `!(a == 1)`) |
//! | 5 | `==` `!=` `<` `<=` `>` `>=` (exactly two operands; they do not chain) |
//! | 6–16 | `-`, then `+`, `*`, `/`, `%`, `<<`, `>>`, `>>>`, `\|`, `^`, `&`, **each on its own level**, left-associative within it |
//! | 17 | unary `-` `+` `~`, function calls, names, literals, `( … )` |
//!
//! This is Avis's grammar, reproduced exactly so clients get the answers
//! they got from Avis, and it is not conventional arithmetic: `a - 1 + 1`
//! is `a - (1 + 1)`, `a * 2 / 4` is `a * (2 / 4)`, and `a << 1 + 1` is
//! `(a << 1) + 1`. Use parentheses.
//!
//! # Semantics
//!
//! - Values are int32, int64, real64, string and opaque; there are no
//!   boolean values or literals, and no null. A missing attribute, a value
//!   of the wrong type for an operator or function, and integer division or
//!   remainder by zero give **⊥** (bottom, undefined), which propagates to
//!   the nearest logical operator. [`Truth`] documents the three-valued
//!   (Łukasiewicz) logic. Only [`Truth::True`] delivers.
//! - Numbers promote int32 → int64 → real64. Integer arithmetic wraps;
//!   shift counts are masked (5 bits for int32, 6 for int64); `>>` is
//!   arithmetic and `>>>` logical; `%` works on reals too (C `fmod`).
//! - Reals compare as a total order in which all NaNs are one value above
//!   +Inf and -0.0 is below 0.0: `NaN == NaN` is true, `-0.0 == 0.0` false.
//! - Strings compare by code point (ordering with `<` is allowed, as in
//!   Avis). Opaque values compare with nothing. `!=` is `!(==)`.
//!
//! # Functions
//!
//! | function | result |
//! |---|---|
//! | `require(name)` | true if present, else ⊥ |
//! | `int32(name)` … `opaque(name)` | true if present with that type, false if present with another, ⊥ if absent |
//! | `nan(name)` | true for a real64 NaN, false for another real64, else ⊥ |
//! | `size(name)` | length of a string in **UTF-8 bytes** (the spec's choice; Avis counts UTF-16 units) or of an opaque, in bytes; else ⊥ |
//! | `equals(x, v1, v2, …)` | `x == v1 \|\| x == v2 \|\| …` |
//! | `begins-with`, `ends-with`, `contains(x, "p1", "p2", …)` | true if the string `x` has any pattern as prefix, suffix or substring; ⊥ if `x` is not a string (Avis instead broke delivery for the whole connection) |
//! | `wildcard(x, "p1", …)` | whole-string glob: `*` any run, `?` one character, `\` escapes; unlike Avis, `*` and `?` also match newlines |
//! | `regex(x, "p1", …)` | unanchored search with the `regex` crate, `.` matching newlines |
//! | `fold-case(x)` | Unicode lowercase (`str::to_lowercase`, like Java's `toLowerCase` that Avis uses; `ß` stays `ß`, where full case folding would give `ss`) |
//! | `decompose(x)`, `decompose-compat(x)` | Unicode NFD and NFKD |
//!
//! The first argument of the string functions is a name, a string literal
//! or another string function; patterns must be string literals. Escapes
//! apply twice: the string literal `"a\\*"` is the pattern `a\*`, which
//! matches the text `a*`, while `"a\*"` is the pattern `a*`.
//!
//! **Regex dialect.** Patterns use the Rust `regex` crate's syntax, which
//! guarantees matching in time linear in the input. Compared with the Java
//! patterns Avis accepted: there are no backreferences, lookaround,
//! possessive quantifiers or atomic groups (such patterns are
//! INVALID_REGEXP); `\w`, `\d`, `\s` and `\b` are Unicode-aware; `$` matches
//! only at the very end (no final line terminator exception); POSIX
//! classes are written inside brackets (`[[:alpha:]]`). Compared with the
//! POSIX 1003.2 the specification names, matching is leftmost-first rather
//! than leftmost-longest, which does not change whether a search succeeds.
//!
//! # Bounds against hostile input
//!
//! [`Limits`] bounds the expression's length (default 4096 bytes), its
//! nesting depth (default 64), its node count (default 2048), and each
//! regex's compiled size. The nesting depth is the height of the
//! expression tree: a name or literal is 1, and each operator, function
//! call, `!`, unary operator and pair of parentheses adds one level (a run
//! of one operator, `a || b || c`, is one level however long). Parsing is
//! iterative, and open brackets and prefix operators are counted as they
//! are read, so 100,000 `(` are a clean NESTING_TOO_DEEP at the 65th.
//! Evaluation recurses once per level and nowhere else, its loops run over
//! a node's children and patterns only, and pattern matching is linear, so
//! one evaluation is bounded by the compiled size and the notification's
//! size. Depth settings above [`MAX_DEPTH_CEILING`] (256) are capped, which
//! keeps the deepest evaluation within about 64 KiB of stack in a release
//! build.
//!
//! # Error codes
//!
//! Errors carry the most specific Nack code the protocol defines (2101 for
//! grammar errors, 2102–2112 for the specific cases, 2006 for size
//! limits); the table is in the [`error`](crate::codes) module docs.
//! Clients act on the code's range, so this is compatible with Avis-era
//! clients, which saw 2101 for nearly everything;
//! [`SubscriptionError::avis_code`] gives the Avis code where exact
//! mimicry is wanted. Two Avis bugs are fixed: an integer literal that
//! overflows its type (`2147483648`, `4294967296`) is OVERFLOW 2105 rather
//! than no reply at all, and a string function on a non-string is ⊥ rather
//! than an exception. Error columns count characters within a line (tabs
//! count one); a token on a later line is reported in the message too.
//!
//! # Decisions where the original was vague or buggy
//!
//! - **Error codes** are specific (2102–2112) rather than Avis's blanket
//!   2101; see [`codes`]. Expression too long and too many nodes are
//!   IMPL_LIMIT 2006, as Avis does for over-long subscriptions.
//! - **Literal overflow** is OVERFLOW 2105 (Avis sent no reply). Hex and
//!   octal literals must fit the positive range like decimal ones
//!   (`0xFFFFFFFF` overflows; `0xFFFFFFFFL` does not), and a real literal
//!   that overflows to infinity (`1.0e400`) is OVERFLOW too, as the spec
//!   asks (Avis produced Infinity).
//! - **String functions on non-strings** are ⊥ (Avis threw and dropped the
//!   notification for the whole connection).
//! - **`size`** counts UTF-8 bytes, so `size` of "é" is 2 (Avis: 1).
//! - **`wildcard`**: `*` and `?` match newlines too (Avis: they do not); a
//!   pattern ending in a lone backslash is INVALID_REGEXP 2109.
//! - **`fold-case`** is `str::to_lowercase`, matching Avis's Java
//!   `toLowerCase` rather than full Unicode case folding (`ß` stays `ß`).
//! - **`regex`** uses the Rust `regex` dialect (above), with `.` matching
//!   newlines as Avis's DOTALL did.
//! - **Compile-time type errors** (TYPE_MISMATCH 2106) cover what Avis
//!   rejected (a literal of the wrong type for an operator or function) and
//!   anything else certainly wrong from the types alone: a condition used as
//!   a value (`(a == 1) + 1`), a value used as a condition (`a && b == 1`),
//!   a real-typed operand of a bitwise operator (`(a + 1.5) & 1`), a string
//!   function compared with a number (`fold-case(s) == 1`). A name can hold
//!   any type, so nothing involving only names is rejected.
//! - **Function arguments** marked "name" must be written as a name
//!   (`size("abc")` is 2106), and patterns must be string literals
//!   (`begins-with(s, t)` is 2106), as Avis required. `equals` takes a name
//!   or a string-valued first argument and any values after it.
//! - **Constants**: only an expression whose *result* folds to a constant is
//!   EXP_IS_TRIVIAL. `a == 1 && 1 / 0 == 1` is accepted although it can
//!   never be true (it is false or ⊥), because it is not a constant; its
//!   constraint list is empty.
//! - **Positions**: columns count characters, not UTF-16 units or bytes, and
//!   a tab is one column; CR, LF and CRLF end lines. A grammar error at the
//!   end of the expression has the end's column and an empty token.
//!   Messages quote at most 60 characters of the expression.
//! - **Depth** is the tree's height (see the bounds above), an exact measure
//!   of the evaluator's recursion, rather than Avis's unbounded recursion.
//!
//! # Index constraints
//!
//! [`Subscription::constraints`] returns [`Constraint`]s with this promise:
//! *whenever the subscription evaluates to true, the notification has each
//! constrained attribute, and that attribute's [`IndexKey`] is one of the
//! constraint's values*. [`IndexKey::of`] agrees exactly with `==` (int32
//! `1`, int64 `1L` and real64 `1.0` share a key; `-0.0` does not share
//! `0`'s; every NaN shares one key; values that promotion would make
//! inexact, beyond ±2^53, have no key). See the `index` module for how
//! constraints are derived through `&&` and `||`.

mod ast;
mod check;
mod compiled;
mod error;
mod glob;
mod index;
mod lexer;
mod limits;
mod parser;
mod regex_cache;
mod subscription;
mod value;

pub use error::{SubscriptionError, codes};
pub use index::{Constraint, IndexKey};
pub use limits::{Limits, MAX_DEPTH_CEILING};
pub use regex_cache::{DEFAULT_PROCESS_REGEX_BUDGET, RegexCache, SharedRegex};
pub use subscription::Subscription;

/// A three-valued (Łukasiewicz) truth value: the result of evaluating a
/// subscription.
///
/// | A | B | `!A` | `A && B` | `A \|\| B` | `A ^^ B` |
/// |---|---|---|---|---|---|
/// | T | T | F | T | T | F |
/// | T | ⊥ | F | ⊥ | T | ⊥ |
/// | T | F | F | F | T | T |
/// | ⊥ | T | ⊥ | ⊥ | T | ⊥ |
/// | ⊥ | ⊥ | ⊥ | ⊥ | ⊥ | ⊥ |
/// | ⊥ | F | ⊥ | F | ⊥ | ⊥ |
/// | F | T | T | F | T | T |
/// | F | ⊥ | T | F | ⊥ | ⊥ |
/// | F | F | T | F | F | F |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Truth {
    /// The subscription matches.
    True,
    /// The subscription does not match.
    False,
    /// Undefined (⊥): a missing attribute, a type mismatch, a division by
    /// zero. Never delivers, like false, but `!⊥` is still ⊥.
    Bottom,
}

impl Truth {
    /// `self && other`: false if either is false, else ⊥ if either is ⊥.
    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Bottom, _) | (_, Truth::Bottom) => Truth::Bottom,
            (Truth::True, Truth::True) => Truth::True,
        }
    }

    /// `self || other`: true if either is true, else ⊥ if either is ⊥.
    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::Bottom, _) | (_, Truth::Bottom) => Truth::Bottom,
            (Truth::False, Truth::False) => Truth::False,
        }
    }

    /// `self ^^ other`: ⊥ if either is ⊥, else true if exactly one is true.
    pub fn xor(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::Bottom, _) | (_, Truth::Bottom) => Truth::Bottom,
            (a, b) => Truth::from(a != b),
        }
    }

    /// True only for [`Truth::True`].
    pub fn is_true(self) -> bool {
        self == Truth::True
    }
}

/// `!self`: swaps true and false; ⊥ stays ⊥.
impl std::ops::Not for Truth {
    type Output = Truth;

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Bottom => Truth::Bottom,
        }
    }
}

impl From<bool> for Truth {
    fn from(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

#[cfg(test)]
mod tests {
    use super::Truth::{self, Bottom as B, False as F, True as T};

    #[test]
    fn truth_tables_match_the_specification() {
        // (A, B, !A, A && B, A || B, A ^^ B), the table in the docs above.
        let table: [(Truth, Truth, Truth, Truth, Truth, Truth); 9] = [
            (T, T, F, T, T, F),
            (T, B, F, B, T, B),
            (T, F, F, F, T, T),
            (B, T, B, B, T, B),
            (B, B, B, B, B, B),
            (B, F, B, F, B, B),
            (F, T, T, F, T, T),
            (F, B, T, F, B, B),
            (F, F, T, F, F, F),
        ];
        for (a, b, not_a, and, or, xor) in table {
            assert_eq!(!a, not_a, "!{a:?}");
            assert_eq!(a.and(b), and, "{a:?} && {b:?}");
            assert_eq!(a.or(b), or, "{a:?} || {b:?}");
            assert_eq!(a.xor(b), xor, "{a:?} ^^ {b:?}");
        }
        assert!(T.is_true() && !F.is_true() && !B.is_true());
    }
}
