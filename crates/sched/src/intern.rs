//! A string interner for the scheduler's compact event records.
//!
//! An experiment with 100,000 static events repeats the same few hundred
//! strings (object names, types, control IPs, argument strings) over and
//! over. Keeping one copy of each and referring to it by a 4-byte [`Sym`]
//! is what keeps the armed schedule small (see `schedule`): a record is a
//! few integers, and the full notification is only built when it fires.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// A handle to an interned string: an index into its [`Interner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

/// Interned strings, each stored once.
#[derive(Debug, Default)]
pub struct Interner {
    strings: Vec<Arc<str>>,
    index: FxHashMap<Arc<str>, Sym>,
}

/// More distinct strings than a [`Sym`] can number.
#[derive(Debug, thiserror::Error)]
#[error("more than {} distinct strings in one schedule", u32::MAX)]
pub struct InternerFull;

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The symbol for `text`, adding it if it is new.
    pub fn intern(&mut self, text: &str) -> Result<Sym, InternerFull> {
        if let Some(sym) = self.index.get(text) {
            return Ok(*sym);
        }
        let sym = Sym(u32::try_from(self.strings.len()).map_err(|_| InternerFull)?);
        let shared: Arc<str> = Arc::from(text);
        self.strings.push(Arc::clone(&shared));
        self.index.insert(shared, sym);
        Ok(sym)
    }

    /// The symbol for `text` if it was interned.
    pub fn lookup(&self, text: &str) -> Option<Sym> {
        self.index.get(text).copied()
    }

    /// The text of `sym`. A symbol from another interner that is out of
    /// range resolves to the empty string rather than panicking.
    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings.get(sym.0 as usize).map(|s| &**s).unwrap_or("")
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Bytes of string data held (for the load log line).
    pub fn text_bytes(&self) -> usize {
        self.strings.iter().map(|s| s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_symbol() {
        let mut interner = Interner::new();
        let a = interner.intern("cbr0").unwrap();
        let b = interner.intern("link0").unwrap();
        let c = interner.intern("cbr0").unwrap();
        assert_eq!(a, c);
        assert_ne!(a, b);
        assert_eq!(interner.len(), 2);
        assert_eq!(interner.resolve(b), "link0");
        assert_eq!(interner.lookup("cbr0"), Some(a));
        assert_eq!(interner.lookup("nope"), None);
        assert_eq!(interner.resolve(Sym(99)), "");
    }
}
