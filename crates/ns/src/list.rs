//! Tcl lists: splitting a string into elements and building one back.
//!
//! NS files pass lists around as plain strings (`"$n0 $n1 $n2"` for a LAN,
//! `[list $a $b]` for an event group, the text of each `$ns at` event), so
//! the front end needs Tcl's list reading: elements are separated by blanks,
//! an element may be `{braced}` (taken literally, braces nest) or
//! `"quoted"`, and backslashes escape. No `$` or `[` substitution happens
//! here; that already happened when the string was built.

/// Splits a Tcl list into its elements, or says why the text is not a list.
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut elements = Vec::new();
    loop {
        while bytes.get(pos).is_some_and(|b| is_list_space(*b)) {
            pos += 1;
        }
        let Some(&first) = bytes.get(pos) else {
            return Ok(elements);
        };
        let mut element: Vec<u8> = Vec::new();
        match first {
            b'{' => {
                pos += 1;
                let mut level: u32 = 1;
                loop {
                    let Some(&b) = bytes.get(pos) else {
                        return Err("unmatched open brace in list".into());
                    };
                    pos += 1;
                    match b {
                        b'\\' => {
                            element.push(b);
                            if let Some(&next) = bytes.get(pos) {
                                element.push(next);
                                pos += 1;
                            }
                        }
                        b'{' => {
                            level += 1;
                            element.push(b);
                        }
                        b'}' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                            element.push(b);
                        }
                        _ => element.push(b),
                    }
                }
                if bytes.get(pos).is_some_and(|b| !is_list_space(*b)) {
                    return Err("list element in braces followed by other characters".into());
                }
            }
            b'"' => {
                pos += 1;
                loop {
                    let Some(&b) = bytes.get(pos) else {
                        return Err("unmatched open quote in list".into());
                    };
                    pos += 1;
                    match b {
                        b'"' => break,
                        b'\\' => pos = unescape(bytes, pos, &mut element),
                        _ => element.push(b),
                    }
                }
                if bytes.get(pos).is_some_and(|b| !is_list_space(*b)) {
                    return Err("list element in quotes followed by other characters".into());
                }
            }
            _ => {
                while let Some(&b) = bytes.get(pos) {
                    if is_list_space(b) {
                        break;
                    }
                    pos += 1;
                    if b == b'\\' {
                        pos = unescape(bytes, pos, &mut element);
                    } else {
                        element.push(b);
                    }
                }
            }
        }
        elements.push(String::from_utf8_lossy(&element).into_owned());
    }
}

/// Builds the canonical list string for `elements` (what Tcl's `list`
/// returns): plain elements as they are, others braced or escaped so that
/// [`split`] gives them back unchanged.
pub(crate) fn join<S: AsRef<str>>(elements: &[S]) -> String {
    let mut out = String::new();
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        quote_element(element.as_ref(), &mut out);
    }
    out
}

fn quote_element(element: &str, out: &mut String) {
    if element.is_empty() {
        out.push_str("{}");
        return;
    }
    let needs_quoting = element.starts_with('#')
        || element.bytes().any(|b| {
            is_list_space(b) || matches!(b, b'{' | b'}' | b'[' | b']' | b'$' | b'"' | b';' | b'\\')
        });
    if !needs_quoting {
        out.push_str(element);
        return;
    }
    if braces_balance(element) && !element.ends_with('\\') && !element.contains('\\') {
        out.push('{');
        out.push_str(element);
        out.push('}');
        return;
    }
    for c in element.chars() {
        if c.is_ascii() && (is_list_space(c as u8) || "{}[]$\";\\#".contains(c)) {
            out.push('\\');
            match c {
                '\n' => out.push('n'),
                '\t' => out.push('t'),
                '\r' => out.push('r'),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
}

fn braces_balance(text: &str) -> bool {
    let mut level: i64 = 0;
    for b in text.bytes() {
        match b {
            b'{' => level += 1,
            b'}' => {
                level -= 1;
                if level < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    level == 0
}

fn is_list_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Resolves the escape after a backslash at `pos - 1`; returns the new
/// position.
fn unescape(bytes: &[u8], pos: usize, out: &mut Vec<u8>) -> usize {
    let Some(&b) = bytes.get(pos) else {
        out.push(b'\\');
        return pos;
    };
    match b {
        b'n' => out.push(b'\n'),
        b't' => out.push(b'\t'),
        b'r' => out.push(b'\r'),
        b'\n' => {
            out.push(b' ');
            let mut next = pos + 1;
            while matches!(bytes.get(next), Some(b' ' | b'\t')) {
                next += 1;
            }
            return next;
        }
        _ => out.push(b),
    }
    pos + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_braced_and_quoted_elements() {
        assert_eq!(
            split("  a b\t{c d} \"e f\" ").unwrap(),
            ["a", "b", "c d", "e f"]
        );
        assert_eq!(split("{a {b c}} x").unwrap(), ["a {b c}", "x"]);
        assert_eq!(split("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_malformed_lists() {
        assert!(split("{a b").is_err());
        assert!(split("\"a b").is_err());
        assert!(split("{a}b").is_err());
    }

    #[test]
    fn join_round_trips() {
        let elements = ["plain", "two words", "", "br{ace", "x$y", "#c", "a\\b"];
        let joined = join(&elements);
        assert_eq!(split(&joined).unwrap(), elements);
        assert_eq!(join(&["n0", "n1"]), "n0 n1");
    }
}
