//! Wildcard patterns for the `wildcard` function.
//!
//! A pattern matches the **whole** string. `*` matches any run of
//! characters (including none), `?` matches exactly one character, a
//! backslash makes the next character literal, and everything else,
//! brackets included, matches itself, case-sensitively. Characters are
//! Unicode scalar values.
//!
//! Unlike Avis, `*` and `?` also match a newline: a glob that stops at line
//! breaks surprises anyone who has used a shell, and no Emulab attribute
//! relies on it.
//!
//! Matching needs no backtracking. The pattern is split at its stars into
//! fixed-length segments; the first must match at the start, the last at the
//! end, and each middle one is placed at its leftmost match after the
//! previous one, which is optimal because every segment has a fixed length.
//! Segments without `?` are found with the standard library's linear
//! substring search, so the common patterns (`prefix*`, `*suffix`,
//! `*word*`) cost one pass over the string. A segment containing `?` is
//! found with the bit-parallel Shift-And algorithm: one pass over the
//! string, a few word operations per character (one word per 64 pattern
//! characters), so `*?{1500}z*` against a 500 KB value is one pass of 24
//! words per character instead of trying the segment at every position.

/// One element of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// This exact character.
    Char(char),
    /// Any one character (`?`).
    Any,
}

/// A run of pattern items between two stars.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    items: Vec<Item>,
    /// The segment as a plain string when it has no `?`, for fast search.
    literal: Option<String>,
    /// The Shift-And tables when it has a `?`.
    shift_and: Option<ShiftAnd>,
}

/// Bit-parallel matcher for a segment with `?`: bit `i` of the state is
/// set when the last `i + 1` characters match the segment's first `i + 1`
/// items.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ShiftAnd {
    /// Items in the segment.
    len: usize,
    /// Positions of `?` items: what any character matches.
    any: Vec<u64>,
    /// Positions each literal character matches (plus the `?` positions).
    chars: Vec<(char, Vec<u64>)>,
}

impl ShiftAnd {
    fn new(items: &[Item]) -> Self {
        let words = items.len().div_ceil(64);
        let mut any = vec![0u64; words];
        for (i, item) in items.iter().enumerate() {
            if *item == Item::Any {
                any[i / 64] |= 1 << (i % 64);
            }
        }
        let mut chars: Vec<(char, Vec<u64>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Item::Char(c) = item {
                let at = match chars.iter().position(|(k, _)| k == c) {
                    Some(at) => at,
                    None => {
                        chars.push((*c, any.clone()));
                        chars.len() - 1
                    }
                };
                chars[at].1[i / 64] |= 1 << (i % 64);
            }
        }
        chars.sort_by_key(|(c, _)| *c);
        ShiftAnd {
            len: items.len(),
            any,
            chars,
        }
    }

    /// The byte offset just after the leftmost (earliest-ending) match in
    /// `s`; since all matches have the same length, that is the leftmost.
    fn find_end(&self, s: &str) -> Option<usize> {
        if self.len == 0 {
            return Some(0);
        }
        let last_word = (self.len - 1) / 64;
        let last_bit = 1u64 << ((self.len - 1) % 64);
        let mut state = vec![0u64; self.any.len()];
        for (at, c) in s.char_indices() {
            let mask = match self.chars.binary_search_by_key(&c, |(k, _)| *k) {
                Ok(i) => &self.chars[i].1,
                Err(_) => &self.any,
            };
            let mut carry = 1u64;
            for (word, m) in state.iter_mut().zip(mask) {
                let next_carry = *word >> 63;
                *word = ((*word << 1) | carry) & m;
                carry = next_carry;
            }
            if state[last_word] & last_bit != 0 {
                return Some(at + c.len_utf8());
            }
        }
        None
    }
}

impl Segment {
    fn new(items: Vec<Item>) -> Self {
        let literal = items
            .iter()
            .map(|item| match item {
                Item::Char(c) => Some(*c),
                Item::Any => None,
            })
            .collect::<Option<String>>();
        let shift_and = literal.is_none().then(|| ShiftAnd::new(&items));
        Segment {
            items,
            literal,
            shift_and,
        }
    }

    /// If the segment matches at the start of `s`, the byte length it
    /// covers.
    fn match_prefix(&self, s: &str) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return s.starts_with(literal.as_str()).then_some(literal.len());
        }
        let mut chars = s.char_indices();
        let mut end = 0;
        for item in &self.items {
            let (at, c) = chars.next()?;
            if let Item::Char(expected) = item
                && *expected != c
            {
                return None;
            }
            end = at + c.len_utf8();
        }
        Some(end)
    }

    /// The byte offset in `s` just after the leftmost place where the
    /// segment matches.
    fn find_end(&self, s: &str) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return Some(s.find(literal.as_str())? + literal.len());
        }
        self.shift_and.as_ref()?.find_end(s)
    }

    /// The byte offset in `s` where the segment would have to start to end
    /// exactly at the end of `s`, or `None` if `s` is too short.
    fn suffix_start(&self, s: &str) -> Option<usize> {
        match self.items.len() {
            0 => Some(s.len()),
            n => s.char_indices().rev().nth(n - 1).map(|(at, _)| at),
        }
    }
}

/// A compiled wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    /// The pattern split at its stars: one segment if there is no star,
    /// otherwise one more than the number of star runs.
    segments: Vec<Segment>,
}

/// Why a wildcard pattern was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GlobError {
    /// The pattern ends with a backslash that escapes nothing.
    TrailingBackslash,
}

impl Glob {
    /// Compiles a pattern (already unescaped once as a string literal).
    pub(crate) fn new(pattern: &str) -> Result<Glob, GlobError> {
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // Consecutive stars are one star.
                    if !current.is_empty() || segments.is_empty() {
                        segments.push(Segment::new(std::mem::take(&mut current)));
                    }
                }
                '?' => current.push(Item::Any),
                '\\' => current.push(Item::Char(
                    chars.next().ok_or(GlobError::TrailingBackslash)?,
                )),
                c => current.push(Item::Char(c)),
            }
        }
        segments.push(Segment::new(current));
        Ok(Glob { segments })
    }

    /// Whether the pattern matches all of `s`.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let Some((first, rest)) = self.segments.split_first() else {
            return s.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            // No star: the single segment must cover the whole string.
            return first.match_prefix(s) == Some(s.len());
        };
        let Some(prefix_end) = first.match_prefix(s) else {
            return false;
        };
        let Some(after_prefix) = s.get(prefix_end..) else {
            return false;
        };
        let Some(tail_start) = last.suffix_start(after_prefix) else {
            return false;
        };
        let (mut hay, tail) = after_prefix.split_at(tail_start);
        if last.match_prefix(tail) != Some(tail.len()) {
            return false;
        }
        for segment in middle {
            let Some(end) = segment.find_end(hay) else {
                return false;
            };
            hay = hay.get(end..).unwrap_or("");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn whole_string_matching() {
        assert!(glob("abc").matches("abc"));
        assert!(!glob("abc").matches("abcd"));
        assert!(!glob("abc").matches("ab"));
        assert!(glob("").matches(""));
        assert!(!glob("").matches("a"));
    }

    #[test]
    fn star_matches_any_run() {
        assert!(glob("*").matches(""));
        assert!(glob("*").matches("anything\nat all"));
        assert!(glob("a*").matches("a"));
        assert!(glob("a*").matches("abc"));
        assert!(!glob("a*").matches("ba"));
        assert!(glob("*c").matches("abc"));
        assert!(glob("a*c").matches("ac"));
        assert!(glob("a*b*c").matches("aXbYc"));
        assert!(glob("a*b*c").matches("abbbc"));
        assert!(!glob("a*b*c").matches("acb"));
        assert!(glob("**a**").matches("xay"));
        assert!(glob("*ab*ab*").matches("xabyab"));
        assert!(!glob("*ab*ab*").matches("xaby"));
        // Prefix and suffix may not overlap.
        assert!(!glob("ab*ba").matches("aba"));
        assert!(glob("ab*ba").matches("abba"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        assert!(glob("?").matches("\u{e9}"));
        assert!(!glob("?").matches(""));
        assert!(!glob("?").matches("ab"));
        assert!(glob("a?c").matches("a\u{1F600}c"));
        assert!(glob("*?").matches("x"));
        assert!(!glob("*?").matches(""));
        assert!(glob("*a?c*").matches("zzabcz"));
        assert!(glob("?*?").matches("ab"));
        assert!(!glob("?*?").matches("a"));
        assert!(glob("*b?d").matches("abcbxd"));
    }

    #[test]
    fn backslash_makes_metacharacters_literal() {
        assert!(glob(r"a\*").matches("a*"));
        assert!(!glob(r"a\*").matches("ab"));
        assert!(glob(r"\?").matches("?"));
        assert!(!glob(r"\?").matches("x"));
        assert!(glob(r"a\\b").matches(r"a\b"));
        assert!(glob("[ab]").matches("[ab]"));
        assert!(!glob("[ab]").matches("a"));
        assert_eq!(Glob::new(r"abc\"), Err(GlobError::TrailingBackslash));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!glob("ABC*").matches("abcd"));
    }

    #[test]
    fn long_question_mark_runs_are_one_pass() {
        // The issue's attack: 1,500 `?` before a `z`, against 500 KB.
        let haystack = "a".repeat(500_000);
        let pattern = format!("*{}z*", "?".repeat(1500));
        assert!(!glob(&pattern).matches(&haystack));
        let mut with_z = haystack.clone();
        with_z.push('z');
        assert!(glob(&pattern).matches(&with_z));
        // (The speed is measured by `cargo bench -p elvin-sublang`,
        // "wildcard attack".)
        // Shift-And agrees with the definition across word boundaries.
        let p = format!("*a{}b*", "?".repeat(70));
        assert!(glob(&p).matches(&format!("xxa{}byy", "c".repeat(70))));
        assert!(!glob(&p).matches(&format!("xxa{}byy", "c".repeat(69))));
        assert!(glob("*a?c?e*").matches("zzabcdez"));
        assert!(!glob("*a?c?e*").matches("zzabcdz"));
        assert!(glob("*\u{e9}?\u{e9}*").matches("x\u{e9}\u{1F600}\u{e9}y"));
    }

    #[test]
    fn adversarial_pattern_stays_fast() {
        let haystack = "a".repeat(20_000);
        let pattern = format!("{}b", "*a".repeat(500));
        assert!(!glob(&pattern).matches(&haystack));
        let pattern = format!("{}*", "*a?".repeat(300));
        assert!(glob(&pattern).matches(&haystack));
    }
}
