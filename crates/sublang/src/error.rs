//! Subscription errors and the Nack codes they carry.
//!
//! The router answers a rejected SubAddRqst or SubModRqst with a Nack whose
//! arguments are `[int32 column, string token]` (or `[0, ""]` when the error
//! is not tied to a token), which is what every Avis-era client expects. So a
//! [`SubscriptionError`] is exactly those four things: the code, a message
//! for a person, the column and the token. Nothing here depends on the wire
//! codec; the router copies the fields into its Nack.
//!
//! # Code policy
//!
//! Clients act on the *range* of a Nack code (2000–2999: "error in a
//! request"), so we are free to be specific. Every error gets the most
//! specific code the protocol defines for it:
//!
//! | code | constant | when |
//! |---|---|---|
//! | 2006 | [`codes::IMPL_LIMIT`] | expression longer than [`Limits::max_length`](crate::Limits::max_length) bytes, or more than [`Limits::max_nodes`](crate::Limits::max_nodes) nodes |
//! | 2101 | [`codes::PARSE_ERROR`] | a grammar error: a token where it cannot stand, a missing `)` or operand, chained comparisons |
//! | 2102 | [`codes::INVALID_TOKEN`] | a character that starts no token (`@`, `.`, `=`, a control character), a lone trailing backslash |
//! | 2103 | [`codes::UNTERM_STRING`] | a string literal without its closing quote |
//! | 2104 | [`codes::UNKNOWN_FUNC`] | a call to a function the language does not have |
//! | 2105 | [`codes::OVERFLOW`] | a numeric literal too large for its type (Avis sent no reply at all) |
//! | 2106 | [`codes::TYPE_MISMATCH`] | a type error visible at compile time, including a non-boolean expression |
//! | 2107 | [`codes::TOO_FEW_ARGS`] | a function call with too few arguments |
//! | 2108 | [`codes::TOO_MANY_ARGS`] | a function call with too many arguments |
//! | 2109 | [`codes::INVALID_REGEXP`] | a `regex` or `wildcard` pattern that does not compile |
//! | 2110 | [`codes::EXP_IS_TRIVIAL`] | the expression folds to a constant |
//! | 2111 | [`codes::REGEXP_TOO_COMPLEX`] | a `regex` pattern over the compiled-size limit |
//! | 2112 | [`codes::NESTING_TOO_DEEP`] | nesting deeper than [`Limits::max_depth`](crate::Limits::max_depth) |
//!
//! Avis sends 2101 for all of these except 2110; a router that must look
//! exactly like Avis can map every code in 2101..=2112 other than 2110 to
//! 2101 with [`SubscriptionError::avis_code`].

use std::borrow::Cow;
use std::fmt;

/// Nack error codes used for subscription errors (Elvin 4 client protocol,
/// error-code table). Only the codes this crate produces are listed.
pub mod codes {
    /// The request exceeds an implementation limit (expression length or
    /// size). Avis uses this code for over-long subscriptions.
    pub const IMPL_LIMIT: u32 = 2006;
    /// A grammar error.
    pub const PARSE_ERROR: u32 = 2101;
    /// A character sequence that is not a token.
    pub const INVALID_TOKEN: u32 = 2102;
    /// A string literal without its closing quote.
    pub const UNTERM_STRING: u32 = 2103;
    /// A call to an unknown function.
    pub const UNKNOWN_FUNC: u32 = 2104;
    /// A numeric literal that does not fit its type.
    pub const OVERFLOW: u32 = 2105;
    /// A type error detected at compile time.
    pub const TYPE_MISMATCH: u32 = 2106;
    /// Too few arguments to a function.
    pub const TOO_FEW_ARGS: u32 = 2107;
    /// Too many arguments to a function.
    pub const TOO_MANY_ARGS: u32 = 2108;
    /// A pattern that does not compile.
    pub const INVALID_REGEXP: u32 = 2109;
    /// The expression is a constant.
    pub const EXP_IS_TRIVIAL: u32 = 2110;
    /// A regular expression over the compiled-size limit.
    pub const REGEXP_TOO_COMPLEX: u32 = 2111;
    /// The expression nests too deeply.
    pub const NESTING_TOO_DEEP: u32 = 2112;

    /// The protocol's name for a code, for logs (`"PARSE_ERROR"`), or
    /// `"UNKNOWN"` for a code this crate never produces.
    pub fn name(code: u32) -> &'static str {
        match code {
            IMPL_LIMIT => "IMPL_LIMIT",
            PARSE_ERROR => "PARSE_ERROR",
            INVALID_TOKEN => "INVALID_TOKEN",
            UNTERM_STRING => "UNTERM_STRING",
            UNKNOWN_FUNC => "UNKNOWN_FUNC",
            OVERFLOW => "OVERFLOW",
            TYPE_MISMATCH => "TYPE_MISMATCH",
            TOO_FEW_ARGS => "TOO_FEW_ARGS",
            TOO_MANY_ARGS => "TOO_MANY_ARGS",
            INVALID_REGEXP => "INVALID_REGEXP",
            EXP_IS_TRIVIAL => "EXP_IS_TRIVIAL",
            REGEXP_TOO_COMPLEX => "REGEXP_TOO_COMPLEX",
            NESTING_TOO_DEEP => "NESTING_TOO_DEEP",
            _ => "UNKNOWN",
        }
    }
}

/// Why a subscription expression was rejected, in the shape of the Nack the
/// router sends: `Nack(code, message, [int32 column, string token])`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionError {
    /// The Nack error code (see [`codes`] and the module docs for the policy).
    pub code: u32,
    /// What went wrong and, where it helps, what to write instead.
    pub message: String,
    /// The 1-based column (in characters, within its line) of the offending
    /// token, or 0 when the error is not tied to a token.
    pub column: i32,
    /// The offending token as written in the expression, or `""`.
    pub token: String,
}

/// Where a token sits in the source expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters within the line.
    pub column: u32,
}

impl Span {
    /// The span's text in `source`, or `""` if the span does not lie on
    /// character boundaries of `source` (it always does for spans this crate
    /// makes; the check keeps error reporting panic-free regardless).
    pub(crate) fn text<'s>(&self, source: &'s str) -> &'s str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

/// The longest excerpt of the expression an error message quotes.
const EXCERPT_CHARS: usize = 60;

/// `text` cut to a readable length for quoting in a message (the Nack's
/// column and token locate the problem exactly).
pub(crate) fn excerpt(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", text.get(..cut).unwrap_or(text))),
        None => Cow::Borrowed(text),
    }
}

impl SubscriptionError {
    /// An error tied to the token at `span`. When the token is not on the
    /// first line the message says which line, since the Nack carries only
    /// a column.
    pub(crate) fn at(code: u32, message: impl Into<String>, span: Span, source: &str) -> Self {
        let mut message = message.into();
        if span.line > 1 {
            message = format!("{message} (line {}, column {})", span.line, span.column);
        }
        SubscriptionError {
            code,
            message,
            column: i32::try_from(span.column).unwrap_or(i32::MAX),
            token: span.text(source).to_owned(),
        }
    }

    /// An error not tied to a token: column 0, empty token.
    pub(crate) fn whole(code: u32, message: impl Into<String>) -> Self {
        SubscriptionError {
            code,
            message: message.into(),
            column: 0,
            token: String::new(),
        }
    }

    /// The protocol's name for [`code`](Self::code), such as
    /// `"NESTING_TOO_DEEP"`.
    pub fn code_name(&self) -> &'static str {
        codes::name(self.code)
    }

    /// The code Avis 1.2.2 would send for this error: 2110 for a constant
    /// expression, 2006 for a limit, and 2101 for every other subscription
    /// error. For routers configured to be byte-for-byte Avis-like.
    pub fn avis_code(&self) -> u32 {
        match self.code {
            codes::EXP_IS_TRIVIAL | codes::IMPL_LIMIT => self.code,
            _ => codes::PARSE_ERROR,
        }
    }
}

impl fmt::Display for SubscriptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.code_name(), self.message)?;
        if self.column > 0 {
            write!(f, " [column {}, token {:?}]", self.column, self.token)?;
        }
        Ok(())
    }
}

impl std::error::Error for SubscriptionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_on_a_later_line_names_the_line() {
        let src = "a == 1 &&\n  b ==";
        let span = Span {
            start: 12,
            end: 13,
            line: 2,
            column: 3,
        };
        let e = SubscriptionError::at(codes::PARSE_ERROR, "bad", span, src);
        assert_eq!(e.column, 3);
        assert_eq!(e.token, "b");
        assert_eq!(e.message, "bad (line 2, column 3)");
    }

    #[test]
    fn excerpts_are_cut_on_character_boundaries() {
        assert_eq!(excerpt("short"), "short");
        let long = "\u{e9}".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn span_outside_the_source_gives_an_empty_token() {
        let span = Span {
            start: 5,
            end: 50,
            line: 1,
            column: 6,
        };
        assert_eq!(span.text("short"), "");
    }

    #[test]
    fn avis_code_keeps_only_trivial_and_limit() {
        let mut e = SubscriptionError::whole(codes::NESTING_TOO_DEEP, "deep");
        assert_eq!(e.avis_code(), codes::PARSE_ERROR);
        e.code = codes::EXP_IS_TRIVIAL;
        assert_eq!(e.avis_code(), codes::EXP_IS_TRIVIAL);
        e.code = codes::IMPL_LIMIT;
        assert_eq!(e.avis_code(), codes::IMPL_LIMIT);
        assert_eq!(codes::name(9999), "UNKNOWN");
    }

    #[test]
    fn display_shows_code_name_and_position() {
        let e = SubscriptionError {
            code: codes::UNKNOWN_FUNC,
            message: "Unknown function: foo".into(),
            column: 1,
            token: "foo".into(),
        };
        assert_eq!(
            e.to_string(),
            "2104 (UNKNOWN_FUNC): Unknown function: foo [column 1, token \"foo\"]"
        );
    }
}
