//! The tokeniser: expression text to tokens, with exact positions.
//!
//! Written by hand because the language's lexical rules are unusual and the
//! error positions must be exact:
//!
//! - **Names** start with an ASCII letter, `_` or a backslash escape, and
//!   continue with letters, digits, `_`, escapes *and most operator
//!   characters*: `!`, `#$%&`, `*+`, `-./0-9:;<=>?@A-Z`, and everything from
//!   `^` (0x5E) to U+00FF. A name is the longest such run, so `a==1` is one
//!   name and operators must be separated from names by whitespace. A
//!   backslash makes the next character part of the name and is itself
//!   dropped (`\ x` is the name ` x`). There are no reserved words.
//! - **Strings** are quoted with `"` or `'`; a backslash makes the next
//!   character literal and is dropped, so `\n` is the letter `n` (there are
//!   no C escapes). Strings may span lines.
//! - **Integers** are decimal (`[1-9][0-9]*`), hex (`0x…`) or octal
//!   (`0[0-7]*`, so `0` itself is octal). A trailing `l` or `L` makes them
//!   int64. `08` is the two tokens `0` and `8`. There is no sign: `-5` is
//!   unary minus applied to `5`. A value too large for its type is
//!   OVERFLOW (2105); hex and octal literals must fit the positive range
//!   too (`0xFFFFFFFF` overflows; write `0xFFFFFFFFL`).
//! - **Reals** are `[0-9]+.[0-9]+` with an optional exponent
//!   (`e`/`E`, optional sign, digits). `1.`, `.5` and `1e3` are not reals.
//!   A real too large to represent (`1.0e999`) is OVERFLOW (2105).
//! - **Whitespace** is space, tab, CR and LF; nothing else.
//!
//! Positions are 1-based lines and columns, counting characters (Unicode
//! scalar values), with CR, LF and CRLF each ending a line, as Avis's
//! generated tokeniser counts them. A tab counts as one column.
//!
//! The lexer is pulled one token at a time by the parser, so no token list
//! is ever materialised and a hostile expression costs no more memory than
//! its own text.

use crate::error::{Span, SubscriptionError, codes};

/// An operator token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Not,
    AndAnd,
    XorXor,
    OrOr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Shl,
    Shr,
    Ushr,
    Amp,
    Caret,
    Pipe,
    Tilde,
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    /// A name, with escapes removed.
    Name(String),
    /// A string literal's value, with quotes and escapes removed.
    Str(String),
    Int32(i32),
    Int64(i64),
    Real(f64),
    LParen,
    RParen,
    Comma,
    Op(Op),
    /// The end of the expression.
    End,
}

/// A token and where it was found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// The tokeniser state: a cursor into the source with its line and column.
pub(crate) struct Lexer<'s> {
    source: &'s str,
    /// Byte offset of the next unread character.
    offset: usize,
    /// Line of the next unread character.
    line: u32,
    /// Column of the next unread character.
    column: u32,
}

/// True for the characters that may continue a name (without an escape).
fn continues_name(c: char) -> bool {
    matches!(c as u32, 0x21 | 0x23..=0x26 | 0x2A..=0x2B | 0x2D..=0x5A | 0x5E..=0xFF)
}

/// True for the characters that may start a name (without an escape).
fn starts_name(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl<'s> Lexer<'s> {
    /// A lexer positioned at the start of `source`.
    pub(crate) fn new(source: &'s str) -> Self {
        Lexer {
            source,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    /// The source being tokenised.
    pub(crate) fn source(&self) -> &'s str {
        self.source
    }

    fn rest(&self) -> &'s str {
        self.source.get(self.offset..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    /// Consumes one character, keeping line and column up to date.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        match c {
            '\n' => {
                self.line = self.line.saturating_add(1);
                self.column = 1;
            }
            // A CR ends a line unless an LF follows, which ends it instead.
            '\r' if self.peek() != Some('\n') => {
                self.line = self.line.saturating_add(1);
                self.column = 1;
            }
            _ => self.column = self.column.saturating_add(1),
        }
        Some(c)
    }

    /// A span from the start position `(start, line, column)` to the cursor.
    fn span_from(&self, start: (usize, u32, u32)) -> Span {
        Span {
            start: start.0,
            end: self.offset,
            line: start.1,
            column: start.2,
        }
    }

    fn error(&self, code: u32, message: String, start: (usize, u32, u32)) -> SubscriptionError {
        SubscriptionError::at(code, message, self.span_from(start), self.source)
    }

    /// Reads the next token. After the end of the source it keeps returning
    /// [`TokenKind::End`].
    pub(crate) fn next_token(&mut self) -> Result<Token, SubscriptionError> {
        while self.peek().is_some_and(is_space) {
            self.bump();
        }
        let start = (self.offset, self.line, self.column);
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: TokenKind::End,
                span: self.span_from(start),
            });
        };
        let kind = match c {
            '(' => self.single(TokenKind::LParen),
            ')' => self.single(TokenKind::RParen),
            ',' => self.single(TokenKind::Comma),
            '"' | '\'' => self.string(start)?,
            '0'..='9' => self.number(start)?,
            '\\' => self.name(start)?,
            c if starts_name(c) => self.name(start)?,
            _ => match self.operator() {
                Some(op) => TokenKind::Op(op),
                None => {
                    self.bump();
                    let message = format!(
                        "Invalid character {:?} at column {}: operators are \
                         ! && ^^ || == != < <= > >= + - * / % << >> >>> & ^ | ~, \
                         names start with a letter or _, and strings are quoted",
                        c, start.2
                    );
                    return Err(self.error(codes::INVALID_TOKEN, message, start));
                }
            },
        };
        Ok(Token {
            kind,
            span: self.span_from(start),
        })
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.bump();
        kind
    }

    /// The longest operator at the cursor, consumed; `None` (nothing
    /// consumed) if no operator starts here.
    fn operator(&mut self) -> Option<Op> {
        const OPERATORS: [(&str, Op); 22] = [
            (">>>", Op::Ushr),
            ("&&", Op::AndAnd),
            ("^^", Op::XorXor),
            ("||", Op::OrOr),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<<", Op::Shl),
            (">>", Op::Shr),
            ("!", Op::Not),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("+", Op::Plus),
            ("-", Op::Minus),
            ("*", Op::Star),
            ("/", Op::Slash),
            ("%", Op::Percent),
            ("&", Op::Amp),
            ("^", Op::Caret),
            ("|", Op::Pipe),
            ("~", Op::Tilde),
        ];
        let rest = self.rest();
        let (text, op) = OPERATORS.iter().find(|(text, _)| rest.starts_with(text))?;
        for _ in 0..text.len() {
            self.bump();
        }
        Some(*op)
    }

    fn string(&mut self, start: (usize, u32, u32)) -> Result<TokenKind, SubscriptionError> {
        let quote = self.bump().unwrap_or('"');
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('\\') => match self.bump() {
                    Some(c) => value.push(c),
                    None => break,
                },
                Some(c) if c == quote => return Ok(TokenKind::Str(value)),
                Some(c) => value.push(c),
                None => break,
            }
        }
        let message = format!(
            "Unterminated string starting at column {}: add the closing {quote} \
             (a backslash makes the next character literal, so \\{quote} does not close it)",
            start.2
        );
        Err(self.error(codes::UNTERM_STRING, message, start))
    }

    fn name(&mut self, start: (usize, u32, u32)) -> Result<TokenKind, SubscriptionError> {
        let mut name = String::new();
        let mut first = true;
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.bump();
                match self.bump() {
                    Some(escaped) => name.push(escaped),
                    None => {
                        let message = "The expression ends with a lone backslash: \
                                       a backslash must be followed by the character it escapes"
                            .to_owned();
                        return Err(self.error(codes::INVALID_TOKEN, message, start));
                    }
                }
            } else if (first && starts_name(c)) || (!first && continues_name(c)) {
                self.bump();
                name.push(c);
            } else {
                break;
            }
            first = false;
        }
        Ok(TokenKind::Name(name))
    }

    fn number(&mut self, start: (usize, u32, u32)) -> Result<TokenKind, SubscriptionError> {
        // A real needs digits, a point and more digits; look ahead for that
        // shape before deciding, since `0` and `08` are integers.
        let rest = self.rest();
        let int_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = rest.as_bytes().get(int_digits..).unwrap_or(&[]);
        if after.first() == Some(&b'.') && after.get(1).is_some_and(u8::is_ascii_digit) {
            return self.real(start);
        }
        let first = self.bump().unwrap_or('0');
        let (radix, mut digits) = if first != '0' {
            (10, first.to_string())
        } else if matches!(self.peek(), Some('x' | 'X'))
            && self.peek_second().is_some_and(|c| c.is_ascii_hexdigit())
        {
            self.bump();
            (16, String::new())
        } else {
            (8, String::new())
        };
        while let Some(c) = self.peek() {
            if c.is_digit(radix) {
                self.bump();
                digits.push(c);
            } else {
                break;
            }
        }
        let long = matches!(self.peek(), Some('l' | 'L'));
        if long {
            self.bump();
        }
        // Octal "0" has no digits after the prefix.
        let magnitude = if digits.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(&digits, radix).ok()
        };
        let value = if long {
            magnitude
                .and_then(|m| i64::try_from(m).ok())
                .map(TokenKind::Int64)
        } else {
            magnitude
                .and_then(|m| i32::try_from(m).ok())
                .map(TokenKind::Int32)
        };
        value.ok_or_else(|| {
            let text = self.span_from(start).text(self.source).to_owned();
            let message = if long {
                format!(
                    "Number {text} is too large for an int64 (the largest is 9223372036854775807L)"
                )
            } else {
                format!(
                    "Number {text} is too large for an int32 (the largest is 2147483647): \
                     add an L suffix to make it an int64, or write -2147483648 as -2147483647 - 1"
                )
            };
            self.error(codes::OVERFLOW, message, start)
        })
    }

    fn real(&mut self, start: (usize, u32, u32)) -> Result<TokenKind, SubscriptionError> {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.bump(); // the point
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        // An exponent only counts if digits follow the e and optional sign.
        let rest = self.rest().as_bytes();
        if matches!(rest.first(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(rest.get(1), Some(b'+' | b'-')));
            if rest.get(1 + sign).is_some_and(u8::is_ascii_digit) {
                for _ in 0..=sign {
                    self.bump();
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
        let text = self.span_from(start).text(self.source);
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Real(value)),
            _ => {
                let message = format!("Number {text} is too large for a real64");
                Err(self.error(codes::OVERFLOW, message, start))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Result<Vec<TokenKind>, SubscriptionError> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token()?;
            if token.kind == TokenKind::End {
                return Ok(out);
            }
            out.push(token.kind);
        }
    }

    fn name(s: &str) -> TokenKind {
        TokenKind::Name(s.to_owned())
    }

    #[test]
    fn operator_characters_continue_names() {
        assert_eq!(kinds("a==1").unwrap(), [name("a==1")]);
        assert_eq!(
            kinds("pipe= > 20").unwrap(),
            [name("pipe="), TokenKind::Op(Op::Gt), TokenKind::Int32(20)]
        );
        assert_eq!(
            kinds("a-b.c/d:e;f<g>h?i@j!k#l$m%n&o*p+q").unwrap(),
            [name("a-b.c/d:e;f<g>h?i@j!k#l$m%n&o*p+q")]
        );
        assert_eq!(
            kinds("x^y_z`{|}~\u{e9}").unwrap(),
            [name("x^y_z`{|}~\u{e9}")]
        );
    }

    #[test]
    fn names_stop_at_quotes_parens_commas_brackets_and_space() {
        assert_eq!(
            kinds("f(a,b)").unwrap(),
            [
                name("f"),
                TokenKind::LParen,
                name("a"),
                TokenKind::Comma,
                name("b"),
                TokenKind::RParen
            ]
        );
        assert!(
            kinds("a[0]").is_err(),
            "[ is not a name character and starts no token"
        );
        assert_eq!(
            kinds("a\"x\"").unwrap(),
            [name("a"), TokenKind::Str("x".into())]
        );
    }

    #[test]
    fn backslash_escapes_in_names() {
        assert_eq!(
            kinds(r"\ we\ can\ have\ spaces").unwrap(),
            [name(" we can have spaces")]
        );
        assert_eq!(kinds(r"\1abc").unwrap(), [name("1abc")]);
        assert_eq!(kinds(r"a\(b\)").unwrap(), [name("a(b)")]);
        let err = kinds(r"abc\").unwrap_err();
        assert_eq!(err.code, codes::INVALID_TOKEN);
        assert_eq!((err.column, err.token.as_str()), (1, r"abc\"));
    }

    #[test]
    fn strings_with_both_quotes_and_literal_escapes() {
        assert_eq!(kinds(r#""a\"b""#).unwrap(), [TokenKind::Str("a\"b".into())]);
        assert_eq!(
            kinds(r#"'it\'s'"#).unwrap(),
            [TokenKind::Str("it's".into())]
        );
        assert_eq!(kinds(r#""\n\\""#).unwrap(), [TokenKind::Str("n\\".into())]);
        assert_eq!(
            kinds("'two\nlines'").unwrap(),
            [TokenKind::Str("two\nlines".into())]
        );
        assert_eq!(kinds(r#""x'y""#).unwrap(), [TokenKind::Str("x'y".into())]);
    }

    #[test]
    fn unterminated_strings() {
        for src in [r#"a == "abc"#, r#"a == "abc\""#, r#"a == 'x\"#] {
            let err = kinds(src).unwrap_err();
            assert_eq!(err.code, codes::UNTERM_STRING, "{src}");
            assert_eq!(err.column, 6, "{src}");
        }
    }

    #[test]
    fn integer_forms() {
        assert_eq!(
            kinds("0 7 10 0x1F 0XfF 017 5L 0x10l").unwrap(),
            [
                TokenKind::Int32(0),
                TokenKind::Int32(7),
                TokenKind::Int32(10),
                TokenKind::Int32(31),
                TokenKind::Int32(255),
                TokenKind::Int32(15),
                TokenKind::Int64(5),
                TokenKind::Int64(16),
            ]
        );
        assert_eq!(
            kinds("08").unwrap(),
            [TokenKind::Int32(0), TokenKind::Int32(8)]
        );
        assert_eq!(kinds("0x").unwrap(), [TokenKind::Int32(0), name("x")]);
        assert_eq!(kinds("1e3").unwrap(), [TokenKind::Int32(1), name("e3")]);
        assert_eq!(
            kinds("2147483647 9223372036854775807L").unwrap(),
            [TokenKind::Int32(i32::MAX), TokenKind::Int64(i64::MAX)]
        );
    }

    #[test]
    fn integer_overflow() {
        for (src, column) in [
            ("2147483648", 1),
            ("a == 4294967296", 6),
            ("0xFFFFFFFF", 1),
            ("9223372036854775808L", 1),
            ("99999999999999999999999999999999L", 1),
            ("040000000000", 1),
        ] {
            let err = kinds(src).unwrap_err();
            assert_eq!(err.code, codes::OVERFLOW, "{src}");
            assert_eq!(err.column, column, "{src}");
        }
    }

    #[test]
    fn real_forms() {
        assert_eq!(
            kinds("1.5 0.25e2 3.0E-1 12.5e+1").unwrap(),
            [
                TokenKind::Real(1.5),
                TokenKind::Real(25.0),
                TokenKind::Real(0.3),
                TokenKind::Real(125.0),
            ]
        );
        assert_eq!(kinds("089.5").unwrap(), [TokenKind::Real(89.5)]);
        assert_eq!(kinds("1.5e").unwrap(), [TokenKind::Real(1.5), name("e")]);
        assert_eq!(kinds("1.0e-999").unwrap(), [TokenKind::Real(0.0)]);
        assert_eq!(kinds("1.0e999").unwrap_err().code, codes::OVERFLOW);
        assert_eq!(kinds("1.").unwrap_err().code, codes::INVALID_TOKEN);
        assert_eq!(kinds(".5").unwrap_err().code, codes::INVALID_TOKEN);
    }

    #[test]
    fn operators_take_the_longest_match() {
        use Op::*;
        let ops: Vec<_> = kinds("! && ^^ || == != < <= > >= + - * / % << >> >>> & ^ | ~ !!")
            .unwrap()
            .into_iter()
            .map(|k| match k {
                TokenKind::Op(op) => op,
                other => panic!("not an operator: {other:?}"),
            })
            .collect();
        assert_eq!(
            ops,
            [
                Not, AndAnd, XorXor, OrOr, Eq, Ne, Lt, Le, Gt, Ge, Plus, Minus, Star, Slash,
                Percent, Shl, Shr, Ushr, Amp, Caret, Pipe, Tilde, Not, Not
            ]
        );
    }

    #[test]
    fn columns_count_characters_within_lines() {
        let mut lexer = Lexer::new("x\u{e9}\u{e9} == 'caf\u{e9}'\r\n  x\ry\n\tz");
        let mut positions = Vec::new();
        loop {
            let token = lexer.next_token().unwrap();
            positions.push((token.span.line, token.span.column));
            if token.kind == TokenKind::End {
                break;
            }
        }
        assert_eq!(
            positions,
            [(1, 1), (1, 5), (1, 8), (2, 3), (3, 1), (4, 2), (4, 3)]
        );
    }

    #[test]
    fn invalid_characters() {
        for (src, column, token) in [
            ("a == @", 6, "@"),
            ("=", 1, "="),
            ("a\u{b}", 2, "\u{b}"),
            ("\u{3b1}", 1, "\u{3b1}"),
        ] {
            let err = kinds(src).unwrap_err();
            assert_eq!(err.code, codes::INVALID_TOKEN, "{src:?}");
            assert_eq!((err.column, err.token.as_str()), (column, token), "{src:?}");
        }
    }
}
