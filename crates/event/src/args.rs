//! The `ARGS` attribute: reading and writing `KEY=value` argument lists.
//!
//! Events carry their parameters as one string, conventionally
//! `KEY=value KEY2=value2 ` (what `tevc` writes). A value that holds spaces
//! is quoted with single quotes (`COMMAND='ls -l'`) or, when it contains
//! single quotes itself, with braces, which nest
//! (`SCRIPT={puts {a b}}`).
//!
//! # Reading ([`arg_get`], [`parse_args`])
//!
//! The string is read left to right as whitespace-separated items:
//!
//! - `KEY=value`: the value runs to the next whitespace;
//! - `KEY='value'`: the value runs to the next `'` (no escapes);
//! - `KEY={value}`: the value runs to the matching `}`; inner braces nest
//!   and are kept, the outer pair is not;
//! - an item without `=` (a bare word, as `tevc` passes through verbatim)
//!   is skipped.
//!
//! Keys match without regard to ASCII case (`interval` finds `INTERVAL=`);
//! the first matching item wins. A quote or brace that is never closed is
//! an [`ArgsError`] (only if reading reaches it: [`arg_get`] stops at the
//! first match). Reading borrows from the string and never allocates per
//! value, so any input costs time and memory linear in its length.
//!
//! # Writing ([`ArgsBuilder`])
//!
//! Each argument is written `KEY=value` followed by one space, the format
//! `tevc` produces, quoting the value only when it needs it. Whatever the
//! builder writes, [`parse_args`] reads back to the same keys and values.

use std::fmt::{self, Write as _};

/// One `KEY=value` item, borrowed from the `ARGS` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argument<'a> {
    /// The key as written.
    pub key: &'a str,
    /// The value without its quotes or outer braces.
    pub value: &'a str,
}

/// A malformed `ARGS` string, or a value that cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A `'` opening a value was never closed.
    #[error("the value of {key} opens a quote (') at byte {offset} that is never closed")]
    UnterminatedQuote {
        /// The key whose value is broken.
        key: String,
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// A `{` opening a value was never matched by a `}`.
    #[error("the value of {key} opens a brace ({{) at byte {offset} that is never closed")]
    UnterminatedBrace {
        /// The key whose value is broken.
        key: String,
        /// Byte offset of the opening brace.
        offset: usize,
    },
    /// A key for [`ArgsBuilder`] is empty or contains `=` or whitespace.
    #[error("{key:?} cannot be an argument key: keys must be non-empty, without '=' or spaces")]
    InvalidKey {
        /// The key given.
        key: String,
    },
    /// A value holds both a `'` and unbalanced braces, so neither quoting
    /// form can carry it.
    #[error(
        "the value of {key} cannot be written: it contains both a single quote and unbalanced braces"
    )]
    Unquotable {
        /// The key.
        key: String,
    },
}

/// Iterates over the `KEY=value` items of an `ARGS` string.
struct Items<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Argument<'a>, ArgsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        loop {
            // Skip whitespace to the start of an item.
            while bytes
                .get(self.position)
                .is_some_and(|b| b.is_ascii_whitespace())
            {
                self.position += 1;
            }
            let start = self.position;
            if start >= bytes.len() {
                return None;
            }
            // The key runs to '=' or whitespace.
            let mut end = start;
            while bytes
                .get(end)
                .is_some_and(|b| *b != b'=' && !b.is_ascii_whitespace())
            {
                end += 1;
            }
            if bytes.get(end) != Some(&b'=') || end == start {
                // A bare word (or "=..." with no key): skip to whitespace.
                self.position = end;
                while bytes
                    .get(self.position)
                    .is_some_and(|b| !b.is_ascii_whitespace())
                {
                    self.position += 1;
                }
                continue;
            }
            let key = self.text.get(start..end)?;
            let value_start = end + 1;
            let item = match bytes.get(value_start) {
                Some(b'\'') => self.quoted(key, value_start),
                Some(b'{') => self.braced(key, value_start),
                _ => {
                    let mut value_end = value_start;
                    while bytes
                        .get(value_end)
                        .is_some_and(|b| !b.is_ascii_whitespace())
                    {
                        value_end += 1;
                    }
                    self.position = value_end;
                    self.text
                        .get(value_start..value_end)
                        .map(|value| Ok(Argument { key, value }))
                }
            };
            if matches!(item, Some(Err(_))) {
                // Stop after reporting a broken item.
                self.position = bytes.len();
            }
            return item;
        }
    }
}

impl<'a> Items<'a> {
    fn quoted(&mut self, key: &'a str, open: usize) -> Option<Result<Argument<'a>, ArgsError>> {
        let body_start = open + 1;
        let rest = self.text.get(body_start..)?;
        match rest.find('\'') {
            Some(length) => {
                self.position = body_start + length + 1;
                let value = self.text.get(body_start..body_start + length)?;
                Some(Ok(Argument { key, value }))
            }
            None => Some(Err(ArgsError::UnterminatedQuote {
                key: key.to_owned(),
                offset: open,
            })),
        }
    }

    fn braced(&mut self, key: &'a str, open: usize) -> Option<Result<Argument<'a>, ArgsError>> {
        let bytes = self.text.as_bytes();
        let mut depth: usize = 0;
        let mut index = open;
        while let Some(byte) = bytes.get(index) {
            match byte {
                b'{' => depth = depth.saturating_add(1),
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.position = index + 1;
                        let value = self.text.get(open + 1..index)?;
                        return Some(Ok(Argument { key, value }));
                    }
                }
                _ => {}
            }
            index += 1;
        }
        Some(Err(ArgsError::UnterminatedBrace {
            key: key.to_owned(),
            offset: open,
        }))
    }
}

/// Every `KEY=value` item of `args`, in order (bare words skipped).
pub fn parse_args(args: &str) -> Result<Vec<Argument<'_>>, ArgsError> {
    Items {
        text: args,
        position: 0,
    }
    .collect()
}

/// The value of the first item whose key equals `key` (ASCII
/// case-insensitively), `Ok(None)` if there is none.
///
/// ```
/// use tbevents_event::args::arg_get;
/// let args = "INTERVAL=0.2 COMMAND='ls -l' SCRIPT={puts {a b}} ";
/// assert_eq!(arg_get(args, "interval").unwrap(), Some("0.2"));
/// assert_eq!(arg_get(args, "COMMAND").unwrap(), Some("ls -l"));
/// assert_eq!(arg_get(args, "script").unwrap(), Some("puts {a b}"));
/// assert_eq!(arg_get(args, "RATE").unwrap(), None);
/// ```
pub fn arg_get<'a>(args: &'a str, key: &str) -> Result<Option<&'a str>, ArgsError> {
    let items = Items {
        text: args,
        position: 0,
    };
    for item in items {
        let item = item?;
        if item.key.eq_ignore_ascii_case(key) {
            return Ok(Some(item.value));
        }
    }
    Ok(None)
}

/// Builds an `ARGS` string: `KEY=value ` per argument, quoted as needed.
///
/// ```
/// use tbevents_event::args::ArgsBuilder;
/// let mut args = ArgsBuilder::new();
/// args.push("RATE", 10)?.push("COMMAND", "ls -l")?;
/// assert_eq!(args.as_str(), "RATE=10 COMMAND='ls -l' ");
/// // A quote and an unbalanced brace cannot both be carried:
/// assert!(args.push("NOTE", "it's {odd").is_err());
/// assert_eq!(args.as_str(), "RATE=10 COMMAND='ls -l' ");
/// # Ok::<(), tbevents_event::args::ArgsError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgsBuilder {
    text: String,
}

impl ArgsBuilder {
    /// An empty argument list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value `, quoting the value with `'...'` when it is
    /// empty, holds whitespace, or starts with `'` or `{`, and with
    /// `{...}` when it also holds a `'`.
    pub fn push(&mut self, key: &str, value: impl fmt::Display) -> Result<&mut Self, ArgsError> {
        if key.is_empty() || key.contains('=') || key.chars().any(char::is_whitespace) {
            return Err(ArgsError::InvalidKey {
                key: key.to_owned(),
            });
        }
        let value = value.to_string();
        let needs_quotes = value.is_empty()
            || value.chars().any(|c| c.is_ascii_whitespace())
            || value.starts_with(['\'', '{']);
        let start = self.text.len();
        self.text.push_str(key);
        self.text.push('=');
        if !needs_quotes {
            self.text.push_str(&value);
        } else if !value.contains('\'') {
            let _ = write!(self.text, "'{value}'");
        } else if braces_balanced(&value) {
            let _ = write!(self.text, "{{{value}}}");
        } else {
            self.text.truncate(start);
            return Err(ArgsError::Unquotable {
                key: key.to_owned(),
            });
        }
        self.text.push(' ');
        Ok(self)
    }

    /// Appends text as it is (the way `tevc` passes arguments without `=`).
    pub fn push_raw(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// The string so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The finished string.
    pub fn finish(self) -> String {
        self.text
    }
}

/// True when every `}` closes an earlier `{` and all are closed, so the
/// text survives inside an outer brace pair.
fn braces_balanced(text: &str) -> bool {
    let mut depth: usize = 0;
    for c in text.chars() {
        match c {
            '{' => depth = depth.saturating_add(1),
            '}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_forms() {
        let args = "A=1 B='two words' C={x {y z} w} D=";
        let parsed = parse_args(args).unwrap();
        assert_eq!(
            parsed,
            [
                Argument {
                    key: "A",
                    value: "1"
                },
                Argument {
                    key: "B",
                    value: "two words"
                },
                Argument {
                    key: "C",
                    value: "x {y z} w"
                },
                Argument {
                    key: "D",
                    value: ""
                },
            ]
        );
    }

    #[test]
    fn case_insensitive_first_match_and_bare_words() {
        let args = "tclcode{a} Rate=5 =junk RATE=6 ";
        assert_eq!(arg_get(args, "rate").unwrap(), Some("5"));
        assert_eq!(arg_get(args, "RATE").unwrap(), Some("5"));
        assert_eq!(arg_get(args, "tclcode{a}").unwrap(), None);
        assert_eq!(arg_get(args, "").unwrap(), None);
        assert_eq!(arg_get("", "X").unwrap(), None);
        // A key is whole: RATE does not match RATEX or XRATE.
        assert_eq!(arg_get("RATEX=1 XRATE=2", "RATE").unwrap(), None);
    }

    #[test]
    fn tevc_style_strings() {
        let args = "INTERVAL=0.2 SIZE=512 ";
        assert_eq!(arg_get(args, "interval").unwrap(), Some("0.2"));
        assert_eq!(arg_get(args, "size").unwrap(), Some("512"));
    }

    #[test]
    fn unterminated_forms_are_errors_when_reached() {
        assert_eq!(
            arg_get("A=1 B='open", "B"),
            Err(ArgsError::UnterminatedQuote {
                key: "B".into(),
                offset: 6
            })
        );
        assert_eq!(
            arg_get("A={x {y}", "Z"),
            Err(ArgsError::UnterminatedBrace {
                key: "A".into(),
                offset: 2
            })
        );
        // A match before the broken part is still found.
        assert_eq!(arg_get("A=1 B='open", "a").unwrap(), Some("1"));
        assert!(parse_args("A=1 B={").is_err());
    }

    #[test]
    fn after_a_closing_quote_parsing_goes_on() {
        let parsed = parse_args("A='x'B=2 C={y}D=3").unwrap();
        assert_eq!(
            parsed,
            [
                Argument {
                    key: "A",
                    value: "x"
                },
                Argument {
                    key: "B",
                    value: "2"
                },
                Argument {
                    key: "C",
                    value: "y"
                },
                Argument {
                    key: "D",
                    value: "3"
                },
            ]
        );
    }

    #[test]
    fn multibyte_text_is_fine() {
        let args = "NAME='héllo wörld' X=ü";
        assert_eq!(arg_get(args, "name").unwrap(), Some("héllo wörld"));
        assert_eq!(arg_get(args, "x").unwrap(), Some("ü"));
    }

    #[test]
    fn builder_quotes_only_when_needed() {
        let mut args = ArgsBuilder::new();
        args.push("A", 1)
            .unwrap()
            .push("B", "x y")
            .unwrap()
            .push("C", "it's {ok}")
            .unwrap()
            .push("D", "")
            .unwrap()
            .push("E", 2.5)
            .unwrap()
            .push("F", "{lead")
            .unwrap();
        assert_eq!(
            args.as_str(),
            "A=1 B='x y' C={it's {ok}} D='' E=2.5 F='{lead' "
        );
        assert_eq!(
            args.push("G", "it's {odd"),
            Err(ArgsError::Unquotable { key: "G".into() })
        );
        assert_eq!(
            args.push("", 1),
            Err(ArgsError::InvalidKey { key: String::new() })
        );
        assert!(args.push("A B", 1).is_err());
        assert!(args.push("A=B", 1).is_err());
        // Failed pushes leave no trace.
        assert_eq!(
            args.as_str(),
            "A=1 B='x y' C={it's {ok}} D='' E=2.5 F='{lead' "
        );
        args.push_raw("{tcl code}");
        assert!(args.as_str().ends_with("{tcl code}"));
    }

    proptest! {
        /// Whatever the builder accepts, the parser reads back.
        #[test]
        fn build_then_parse_round_trips(
            entries in proptest::collection::vec(
                ("[A-Za-z_][A-Za-z0-9_]{0,8}", "[ -~]{0,12}"),
                0..6,
            )
        ) {
            let mut builder = ArgsBuilder::new();
            let mut written = Vec::new();
            for (key, value) in &entries {
                if builder.push(key, value).is_ok() {
                    written.push((key.clone(), value.clone()));
                }
            }
            let text = builder.finish();
            let parsed = parse_args(&text).unwrap();
            let parsed: Vec<(String, String)> = parsed
                .into_iter()
                .map(|a| (a.key.to_owned(), a.value.to_owned()))
                .collect();
            prop_assert_eq!(parsed, written);
        }

        /// No input makes the parser panic, and it always terminates.
        #[test]
        fn parser_never_panics(text in "\\PC{0,64}") {
            let _ = parse_args(&text);
            let _ = arg_get(&text, "A");
        }
    }
}
