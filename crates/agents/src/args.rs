//! Typed reading of an event's `ARGS`.
//!
//! `ARGS` is a string of `KEY=value` items (`KEY='quoted'` and
//! `KEY={braced}` too; see `tbevents_event::args`). Keys match
//! case-insensitively, as in Emulab's later agents. An agent reads the
//! keys it knows with [`EventArgs`], which turns every problem (malformed
//! quoting, a value that is not a number, a number out of range) into a
//! [`BadArgs`] that names the key and what was expected, so the agent can
//! log one clear line and ignore the event. Keys an agent does not know
//! are reported by [`EventArgs::unknown_keys`] so it can warn about them.
//!
//! Programs are special: `COMMAND=` takes the **rest of the string**,
//! spaces included, because the NS front end writes `START` events as
//! `COMMAND=<the command line>` unquoted (Emulab's agents did the same).
//! [`split_command`] separates it from the keys before it.

use tbevents_event::args::{ArgsError, parse_args};

/// An `ARGS` value the agent cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadArgs {
    /// The string itself is malformed (an unclosed quote or brace).
    #[error("malformed ARGS: {0}")]
    Malformed(#[from] ArgsError),
    /// A value is not what the key needs.
    #[error("{key}={value:?} is not valid: {expected}")]
    Value {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What the key takes.
        expected: String,
    },
    /// A key the event needs is missing.
    #[error("{key}= is required: {expected}")]
    Missing {
        /// The key.
        key: String,
        /// What the key takes.
        expected: String,
    },
}

/// The parsed `KEY=value` items of one event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventArgs {
    items: Vec<(String, String)>,
}

impl EventArgs {
    /// Parses `ARGS` (an absent `ARGS` is the empty string).
    pub fn parse(text: &str) -> Result<EventArgs, BadArgs> {
        let items = parse_args(text)?
            .into_iter()
            .map(|a| (a.key.to_owned(), a.value.to_owned()))
            .collect();
        Ok(EventArgs { items })
    }

    /// The raw value of `key` (first match, case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// True when no item was given.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The keys not among `known` (case-insensitive), in order.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        self.items
            .iter()
            .filter(|(k, _)| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `key` as a finite number within `range`, `None` if absent.
    pub fn f64_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>, BadArgs> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && range.contains(&v) => Ok(Some(v)),
            _ => Err(bad(
                key,
                text,
                format!("give a number from {} to {}", range.start(), range.end()),
            )),
        }
    }

    /// `key` as a whole number within `range`, `None` if absent.
    pub fn i64_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, BadArgs> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        match text.trim().parse::<i64>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(bad(
                key,
                text,
                format!(
                    "give a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// Logs the keys an agent did not use (the event is still acted on).
pub fn warn_unknown(objname: &str, eventtype: &str, unknown: &[String]) {
    if !unknown.is_empty() {
        tracing::warn!(
            "{objname}: {eventtype}: unknown ARGS keys ignored: {}",
            unknown.join(", ")
        );
    }
}

/// A [`BadArgs::Value`].
pub fn bad(key: &str, value: &str, expected: impl Into<String>) -> BadArgs {
    BadArgs::Value {
        key: key.to_owned(),
        value: shorten(value),
        expected: expected.into(),
    }
}

/// Caps a value for log lines.
fn shorten(value: &str) -> String {
    const SHOWN: usize = 120;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Splits `ARGS` into the items before `COMMAND=` and the command, which
/// runs to the end of the string. The command is unwrapped when it is one
/// whole quoted (`'...'`) or braced (`{...}`) value. A `COMMAND=` inside
/// an earlier item's quotes does not count.
pub fn split_command(text: &str) -> (&str, Option<&str>) {
    const KEY: &str = "COMMAND=";
    let bytes = text.as_bytes();
    let mut search = 0;
    while let Some(found) = text
        .get(search..)
        .and_then(|rest| find_ignore_case(rest, KEY))
    {
        let at = search + found;
        let at_token_start = at == 0 || bytes.get(at - 1).is_some_and(u8::is_ascii_whitespace);
        let prefix = text.get(..at).unwrap_or("");
        // Inside an earlier item's quotes or braces the prefix ends in an
        // unclosed value, which the parser reports.
        if at_token_start && parse_args(prefix).is_ok() {
            let value = text.get(at + KEY.len()..).unwrap_or("").trim();
            return (prefix, Some(unwrap_whole(value)));
        }
        search = at + KEY.len();
    }
    (text, None)
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// `'x y'` gives `x y`, `{x y}` gives `x y` when the quotes or braces
/// enclose the whole value; anything else is returned as it is.
fn unwrap_whole(value: &str) -> &str {
    if value.len() >= 2 {
        if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
            && !inner.contains('\'')
        {
            return inner;
        }
        if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            // Only when the first `{` closes at the very end.
            let mut depth = 0usize;
            let closes_at_end = value.char_indices().all(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                depth > 0 || i == value.len() - 1
            });
            if closes_at_end {
                return inner;
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_and_errors_name_the_key() {
        let args = EventArgs::parse("RATE=10 interval=0.5 SIZE=x").unwrap();
        assert_eq!(args.f64_in("rate", 0.0..=100.0).unwrap(), Some(10.0));
        assert_eq!(args.f64_in("INTERVAL", 0.0..=1.0).unwrap(), Some(0.5));
        assert_eq!(args.f64_in("MISSING", 0.0..=1.0).unwrap(), None);
        let error = args.i64_in("SIZE", 1..=10).unwrap_err().to_string();
        assert!(
            error.contains("SIZE") && error.contains("1 to 10"),
            "{error}"
        );
        assert!(args.f64_in("RATE", 0.0..=5.0).is_err());
        assert_eq!(args.unknown_keys(&["rate", "interval"]), ["SIZE"]);
        assert!(EventArgs::parse("A='open").is_err());
        assert!(EventArgs::parse("").unwrap().is_empty());
        assert!(
            EventArgs::parse("X=nan")
                .unwrap()
                .f64_in("X", 0.0..=1.0)
                .is_err()
        );
    }

    #[test]
    fn command_is_the_rest_of_the_line() {
        assert_eq!(
            split_command("COMMAND=/bin/echo hello world"),
            ("", Some("/bin/echo hello world"))
        );
        assert_eq!(
            split_command("DIR=/tmp TIMEOUT=5 command=ls -l FOO=1"),
            ("DIR=/tmp TIMEOUT=5 ", Some("ls -l FOO=1"))
        );
        assert_eq!(split_command("COMMAND='ls -l'"), ("", Some("ls -l")));
        assert_eq!(split_command("COMMAND={echo {a}}"), ("", Some("echo {a}")));
        assert_eq!(split_command("COMMAND={a} {b}"), ("", Some("{a} {b}")));
        assert_eq!(split_command("COMMAND='a' 'b'"), ("", Some("'a' 'b'")));
        // Inside an earlier quoted value it is not the key.
        assert_eq!(
            split_command("DIR='x COMMAND=y' COMMAND=z"),
            ("DIR='x COMMAND=y' ", Some("z"))
        );
        assert_eq!(split_command("XCOMMAND=y"), ("XCOMMAND=y", None));
        assert_eq!(split_command("TIMEOUT=3"), ("TIMEOUT=3", None));
        assert_eq!(split_command("COMMAND="), ("", Some("")));
    }
}
