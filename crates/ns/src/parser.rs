//! The Tcl syntax layer: turns script text into commands made of words.
//!
//! Tcl's grammar is tiny (the "dodekalogue"): a script is commands separated
//! by newlines or `;`; a command is words separated by blanks; a word is
//! `{literal}`, `"substituted"` or bare, and substitution means `$var`,
//! `${var}`, `$arr(index)`, `[command]` and backslash escapes. A `#` where a
//! command may start begins a comment; backslash-newline joins lines.
//!
//! We parse a whole script up front into [`Command`]s whose words keep their
//! substitutions as [`Part`]s, then the interpreter evaluates them. Parsing
//! first means unbalanced quotes, braces and brackets are reported with the
//! exact line and column where the unclosed one was opened, before anything
//! runs. Every word and command remembers its line so that errors found
//! while evaluating (even inside a loop body or a `[...]`) point at the right
//! line of the file.
//!
//! The scanner works on bytes: every character with a meaning in Tcl is
//! ASCII, so splitting only ever happens at ASCII positions and the pieces of
//! a UTF-8 text stay valid UTF-8. Nesting of `[...]` is the only recursion
//! and it is capped by [`MAX_NESTING`].

use crate::error::{NsError, NsErrorKind, NsResult};
use crate::limits::MAX_NESTING;

/// One command: the words as written, and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Command {
    /// 1-based line of the command's first word.
    pub line: u32,
    /// The words; never empty.
    pub words: Vec<Word>,
}

/// One word of a command.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Word {
    /// 1-based line where the word's text starts (inside the brace or quote
    /// for braced and quoted words), used as the first line when the word is
    /// later evaluated as a script (a loop body).
    pub line: u32,
    /// The pieces whose concatenation, after substitution, is the word.
    pub parts: Vec<Part>,
}

/// A piece of a word.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Part {
    /// Text taken as is (escapes already resolved).
    Literal(String),
    /// `$name`, `${name}` or `$name(index)`.
    Variable {
        /// The variable (or array) name.
        name: String,
        /// For `$name(index)`, the index's own parts (it is substituted too).
        index: Option<Vec<Part>>,
        /// Line of the `$`.
        line: u32,
    },
    /// `[script]`: the commands between the brackets.
    Script(Vec<Command>),
}

/// Parses a whole script whose first line is `first_line`.
pub(crate) fn parse_script(text: &str, first_line: u32) -> NsResult<Vec<Command>> {
    let mut parser = Parser::new(text, first_line);
    parser.commands(None)
}

/// Parses `text` as the inside of a double-quoted word (substitutions
/// active, no terminator); used by `expr`, which substitutes its argument
/// itself.
pub(crate) fn parse_template(text: &str, first_line: u32) -> NsResult<Vec<Part>> {
    let mut parser = Parser::new(text, first_line);
    parser.substituted(Mode::Template)
}

/// What ends the word being scanned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A bare word: blank, newline, `;`, or the closing bracket if any.
    Bare { in_brackets: bool },
    /// A `"..."` word: the closing quote.
    Quoted,
    /// An array index: `)`.
    Index,
    /// The whole text (no terminator).
    Template,
}

/// A position remembered for error messages.
#[derive(Clone, Copy)]
struct Mark {
    line: u32,
    line_start: usize,
    pos: usize,
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, first_line: u32) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: first_line,
            line_start: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos.saturating_add(offset)).copied()
    }

    /// Consumes one byte, keeping the line count.
    fn bump(&mut self) {
        if let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'\n' {
                self.line = self.line.saturating_add(1);
                self.line_start = self.pos;
            }
        }
    }

    /// Remembers the current position for a later error message. The
    /// column is only computed if an error is reported, so long lines cost
    /// nothing extra.
    fn mark(&self) -> Mark {
        Mark {
            line: self.line,
            line_start: self.line_start,
            pos: self.pos,
        }
    }

    /// 1-based column (in characters) of a marked position.
    fn column_of(&self, mark: Mark) -> u32 {
        let (start, pos) = (mark.line_start.min(mark.pos), mark.pos);
        let chars = self
            .text
            .get(start..pos)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        u32::try_from(chars).unwrap_or(u32::MAX).saturating_add(1)
    }

    fn syntax_error(&self, at: Mark, message: &str) -> NsError {
        NsError::at_column(
            at.line,
            self.column_of(at),
            NsErrorKind::Syntax(message.to_string()),
        )
    }

    /// True at a backslash that starts a line continuation.
    fn at_continuation(&self) -> bool {
        self.peek() == Some(b'\\')
            && (self.peek_at(1) == Some(b'\n')
                || (self.peek_at(1) == Some(b'\r') && self.peek_at(2) == Some(b'\n')))
    }

    /// Skips a backslash-newline and the blanks after it.
    fn skip_continuation(&mut self) {
        self.bump(); // backslash
        if self.peek() == Some(b'\r') {
            self.bump();
        }
        self.bump(); // newline
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// Skips blanks between words of one command.
    fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r') => self.bump(),
                Some(b'\\') if self.at_continuation() => self.skip_continuation(),
                _ => return,
            }
        }
    }

    /// Parses commands until the end of the text or, inside `[...]`, the
    /// closing bracket (consumed). `open` is where that bracket was.
    fn commands(&mut self, open: Option<Mark>) -> NsResult<Vec<Command>> {
        let in_brackets = open.is_some();
        let mut commands = Vec::new();
        loop {
            // Separators between commands.
            loop {
                match self.peek() {
                    Some(b' ' | b'\t' | b'\r' | b'\n' | b';') => self.bump(),
                    Some(b'\\') if self.at_continuation() => self.skip_continuation(),
                    _ => break,
                }
            }
            match self.peek() {
                None => {
                    if let Some(open) = open {
                        return Err(self
                            .syntax_error(open, "missing close-bracket for the '[' opened here"));
                    }
                    return Ok(commands);
                }
                Some(b']') if in_brackets => {
                    self.bump();
                    return Ok(commands);
                }
                Some(b'#') => {
                    self.skip_comment();
                    continue;
                }
                Some(_) => {}
            }
            let line = self.line;
            let mut words = Vec::new();
            loop {
                self.skip_blanks();
                match self.peek() {
                    None | Some(b'\n' | b';') => break,
                    Some(b']') if in_brackets => break,
                    Some(_) => words.push(self.word(in_brackets)?),
                }
            }
            if !words.is_empty() {
                commands.push(Command { line, words });
            }
        }
    }

    /// Skips a comment up to the end of its line (a backslash-newline
    /// continues the comment, as in Tcl).
    fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => return,
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                _ => self.bump(),
            }
        }
    }

    /// Parses one word; the current byte is its first.
    fn word(&mut self, in_brackets: bool) -> NsResult<Word> {
        match self.peek() {
            Some(b'{') => {
                let open = self.mark();
                if self.text.get(self.pos..).is_some_and(|rest| {
                    rest.starts_with("{*}")
                        && !matches!(
                            rest.as_bytes().get(3),
                            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';')
                        )
                }) {
                    return Err(NsError::at_column(
                        open.line,
                        self.column_of(open),
                        NsErrorKind::Unsupported(
                            "argument expansion {*} is not accepted in NS files".into(),
                        ),
                    ));
                }
                self.bump();
                let word_line = self.line;
                let text = self.braced(open)?;
                self.expect_word_end(in_brackets, "close-brace")?;
                Ok(Word {
                    line: word_line,
                    parts: vec![Part::Literal(text)],
                })
            }
            Some(b'"') => {
                let open = self.mark();
                self.bump();
                let word_line = self.line;
                let parts = self.substituted(Mode::Quoted).map_err(|err| {
                    if matches!(err.kind(), NsErrorKind::Syntax(m) if m == MISSING_QUOTE) {
                        self.syntax_error(open, "missing close-quote for the '\"' opened here")
                    } else {
                        err
                    }
                })?;
                self.expect_word_end(in_brackets, "close-quote")?;
                Ok(Word {
                    line: word_line,
                    parts,
                })
            }
            _ => {
                let line = self.line;
                let parts = self.substituted(Mode::Bare { in_brackets })?;
                Ok(Word { line, parts })
            }
        }
    }

    /// After a closing brace or quote, the word must end.
    fn expect_word_end(&self, in_brackets: bool, what: &str) -> NsResult<()> {
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';') => Ok(()),
            Some(b']') if in_brackets => Ok(()),
            Some(b'\\') if self.at_continuation() => Ok(()),
            Some(_) => {
                Err(self.syntax_error(self.mark(), &format!("extra characters after {what}")))
            }
        }
    }

    /// Reads a braced word's text; the opening brace is consumed. Nested
    /// braces balance; a backslash keeps the next character from counting;
    /// backslash-newline becomes one space (as Tcl does inside braces).
    fn braced(&mut self, open: Mark) -> NsResult<String> {
        let mut out: Vec<u8> = Vec::new();
        let mut level: u32 = 1;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.syntax_error(open, "missing close-brace for the '{' opened here"));
            };
            match b {
                b'\\' if self.at_continuation() => {
                    self.skip_continuation();
                    out.push(b' ');
                }
                b'\\' => {
                    out.push(b);
                    self.bump();
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.bump();
                    }
                }
                b'{' => {
                    level = level.saturating_add(1);
                    out.push(b);
                    self.bump();
                }
                b'}' => {
                    level -= 1;
                    self.bump();
                    if level == 0 {
                        return Ok(String::from_utf8_lossy(&out).into_owned());
                    }
                    out.push(b);
                }
                _ => {
                    out.push(b);
                    self.bump();
                }
            }
        }
    }

    /// Scans substituted text until the mode's terminator. For quoted words
    /// and indexes the terminator is consumed.
    fn substituted(&mut self, mode: Mode) -> NsResult<Vec<Part>> {
        let mut parts = Vec::new();
        let mut literal: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return match mode {
                    Mode::Quoted => Err(self.syntax_error(self.mark(), MISSING_QUOTE)),
                    Mode::Index => Err(self.syntax_error(self.mark(), MISSING_PAREN)),
                    Mode::Bare { .. } | Mode::Template => {
                        flush(&mut literal, &mut parts);
                        Ok(parts)
                    }
                };
            };
            match (mode, b) {
                (Mode::Quoted, b'"') | (Mode::Index, b')') => {
                    self.bump();
                    flush(&mut literal, &mut parts);
                    return Ok(parts);
                }
                (Mode::Bare { .. }, b' ' | b'\t' | b'\r' | b'\n' | b';')
                | (Mode::Bare { in_brackets: true }, b']') => {
                    flush(&mut literal, &mut parts);
                    return Ok(parts);
                }
                (Mode::Bare { .. }, b'\\') if self.at_continuation() => {
                    flush(&mut literal, &mut parts);
                    return Ok(parts);
                }
                (_, b'$') => {
                    if let Some(part) = self.variable()? {
                        flush(&mut literal, &mut parts);
                        parts.push(part);
                    } else {
                        literal.push(b'$');
                    }
                }
                (_, b'[') => {
                    let open = self.mark();
                    self.bump();
                    self.enter(open)?;
                    let commands = self.commands(Some(open))?;
                    self.depth -= 1;
                    flush(&mut literal, &mut parts);
                    parts.push(Part::Script(commands));
                }
                (_, b'\\') => self.escape(&mut literal),
                _ => {
                    literal.push(b);
                    self.bump();
                }
            }
        }
    }

    /// Counts one more level of nesting, refusing past the cap.
    fn enter(&mut self, at: Mark) -> NsResult<()> {
        if self.depth >= MAX_NESTING {
            return Err(NsError::at_column(
                at.line,
                self.column_of(at),
                NsErrorKind::LimitExceeded {
                    what: "nesting of [...] and $a(...)".into(),
                    limit: u64::from(MAX_NESTING),
                },
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// Parses a `$` substitution; the current byte is the `$`. Returns
    /// `None` (nothing consumed but the `$`) when no variable name follows,
    /// in which case the `$` is literal, as in Tcl.
    fn variable(&mut self) -> NsResult<Option<Part>> {
        let open = self.mark();
        let line = open.line;
        match self.peek_at(1) {
            Some(b'{') => {
                self.bump();
                self.bump();
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if b == b'}' {
                        let name = self.text.get(start..self.pos).unwrap_or("").to_string();
                        self.bump();
                        return Ok(Some(Part::Variable {
                            name,
                            index: None,
                            line,
                        }));
                    }
                    self.bump();
                }
                Err(self.syntax_error(open, "missing close-brace for the '${' opened here"))
            }
            Some(b) if is_name_byte(b) || (b == b':' && self.peek_at(2) == Some(b':')) => {
                self.bump();
                let start = self.pos;
                loop {
                    match self.peek() {
                        Some(b) if is_name_byte(b) => self.bump(),
                        Some(b':') if self.peek_at(1) == Some(b':') => {
                            self.bump();
                            self.bump();
                        }
                        _ => break,
                    }
                }
                let name = self.text.get(start..self.pos).unwrap_or("").to_string();
                let index = if self.peek() == Some(b'(') {
                    let index_open = self.mark();
                    self.bump();
                    self.enter(index_open)?;
                    let parts = self.substituted(Mode::Index).map_err(|err| {
                        if matches!(err.kind(), NsErrorKind::Syntax(m) if m == MISSING_PAREN) {
                            self.syntax_error(
                                index_open,
                                "missing ')' for the array index opened here",
                            )
                        } else {
                            err
                        }
                    })?;
                    self.depth -= 1;
                    Some(parts)
                } else {
                    None
                };
                Ok(Some(Part::Variable { name, index, line }))
            }
            _ => {
                self.bump();
                Ok(None)
            }
        }
    }

    /// Resolves a backslash escape into `out`; the current byte is the
    /// backslash.
    fn escape(&mut self, out: &mut Vec<u8>) {
        if self.at_continuation() {
            self.skip_continuation();
            out.push(b' ');
            return;
        }
        self.bump();
        let Some(b) = self.peek() else {
            out.push(b'\\');
            return;
        };
        let replacement = match b {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            _ => None,
        };
        match replacement {
            Some(r) => {
                out.push(r);
                self.bump();
            }
            None => {
                // Any other character stands for itself; copy the whole
                // (possibly multi-byte) character.
                let len = self
                    .text
                    .get(self.pos..)
                    .and_then(|rest| rest.chars().next())
                    .map(char::len_utf8)
                    .unwrap_or(1);
                for _ in 0..len {
                    if let Some(byte) = self.peek() {
                        out.push(byte);
                        self.bump();
                    }
                }
            }
        }
    }
}

const MISSING_QUOTE: &str = "missing close-quote";
const MISSING_PAREN: &str = "missing ')'";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn flush(literal: &mut Vec<u8>, parts: &mut Vec<Part>) {
    if !literal.is_empty() {
        parts.push(Part::Literal(String::from_utf8_lossy(literal).into_owned()));
        literal.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal_words(cmd: &Command) -> Vec<String> {
        cmd.words
            .iter()
            .map(|w| {
                w.parts
                    .iter()
                    .map(|p| match p {
                        Part::Literal(s) => s.clone(),
                        Part::Variable { name, .. } => format!("<${name}>"),
                        Part::Script(_) => "<[]>".to_string(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn splits_commands_on_newlines_and_semicolons() {
        let cmds = parse_script("set a 1; set b 2\nset c {x y}", 1).unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(literal_words(&cmds[2]), ["set", "c", "x y"]);
        assert_eq!(cmds[2].line, 2);
    }

    #[test]
    fn comments_only_at_command_start() {
        let cmds = parse_script("# a comment\nset a #notcomment ; # trailing\n", 1).unwrap();
        assert_eq!(cmds.len(), 1);
        assert_eq!(literal_words(&cmds[0]), ["set", "a", "#notcomment"]);
    }

    #[test]
    fn continuation_joins_lines_and_keeps_line_numbers() {
        let cmds = parse_script("set a \\\n   b\nset c d", 1).unwrap();
        assert_eq!(literal_words(&cmds[0]), ["set", "a", "b"]);
        assert_eq!(cmds[1].line, 3);
    }

    #[test]
    fn quotes_substitute_and_braces_do_not() {
        let cmds = parse_script("x \"a $b [c] \\n\" {a $b [c]}", 1).unwrap();
        assert_eq!(literal_words(&cmds[0]), ["x", "a <$b> <[]> \n", "a $b [c]"]);
    }

    #[test]
    fn nested_brackets_and_indexes() {
        let cmds = parse_script("set x [a [b $c($d)]]", 1).unwrap();
        let Part::Script(inner) = &cmds[0].words[2].parts[0] else {
            panic!("expected a script");
        };
        assert_eq!(inner[0].words.len(), 2);
    }

    #[test]
    fn unbalanced_delimiters_point_at_the_opening_one() {
        let err = parse_script("set a 1\nset b \"abc\n", 1).unwrap_err();
        assert_eq!((err.line(), err.column()), (2, Some(7)));
        assert!(err.to_string().contains("close-quote"));
        let err = parse_script("\n\nfor {a b\n", 1).unwrap_err();
        assert_eq!((err.line(), err.column()), (3, Some(5)));
        assert!(err.to_string().contains("close-brace"));
        let err = parse_script("set a [b c\n", 1).unwrap_err();
        assert_eq!((err.line(), err.column()), (1, Some(7)));
        assert!(err.to_string().contains("close-bracket"));
    }

    #[test]
    fn extra_characters_after_close_brace() {
        let err = parse_script("set a {b}c", 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("extra characters after close-brace")
        );
    }

    #[test]
    fn dollar_without_name_is_literal() {
        let cmds = parse_script("puts a$ $", 1).unwrap();
        assert_eq!(literal_words(&cmds[0]), ["puts", "a$", "$"]);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}x{}", "[".repeat(200), "]".repeat(200));
        let err = parse_script(&text, 1).unwrap_err();
        assert!(matches!(err.kind(), NsErrorKind::LimitExceeded { .. }));
    }
}
