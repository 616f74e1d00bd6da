//! Compiled `regex()` patterns, shared and budgeted.
//!
//! A compiled regular expression can be large (a Unicode `\w{20}` is about
//! a megabyte), and one 2 KB subscription can name the same pattern a
//! hundred times. So every pattern is compiled **once per process** and
//! shared by every subscription that uses it (an `Arc`, found by pattern
//! text and size limits), and its compiled size counts against three
//! budgets: the subscription's ([`crate::Limits::regex_budget`], checked
//! here), the connection's (checked by the router with
//! [`crate::Subscription::regex_bytes`]) and the process's
//! ([`RegexCache::set_budget`]). Memory is given back when the last
//! subscription using a pattern goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use regex_automata::meta;
use regex_automata::util::syntax;

/// The process-wide default of [`RegexCache::set_budget`]: 256 MiB.
pub const DEFAULT_PROCESS_REGEX_BUDGET: usize = 256 << 20;

/// One compiled pattern, shared.
#[derive(Debug)]
pub struct SharedRegex {
    regex: meta::Regex,
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl SharedRegex {
    /// Unanchored search, as Elvin's `regex()` asks.
    pub fn is_match(&self, haystack: &str) -> bool {
        self.regex.is_match(haystack)
    }

    /// Heap bytes of the compiled pattern.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for SharedRegex {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Why a pattern could not be had.
#[derive(Debug)]
pub(crate) enum RegexFailure {
    /// The pattern alone compiles to more than the size limit.
    TooBig(usize),
    /// The process's budget for compiled patterns is spent.
    ProcessBudget { total: usize, budget: usize },
    /// Not a valid pattern; the text says why.
    Invalid(String),
}

type Key = (Box<str>, usize, usize);

/// The process's compiled patterns.
#[derive(Debug)]
pub struct RegexCache {
    entries: Mutex<HashMap<Key, Weak<SharedRegex>>>,
    total: Arc<AtomicUsize>,
    budget: AtomicUsize,
}

impl RegexCache {
    fn new() -> Self {
        RegexCache {
            entries: Mutex::new(HashMap::new()),
            total: Arc::new(AtomicUsize::new(0)),
            budget: AtomicUsize::new(DEFAULT_PROCESS_REGEX_BUDGET),
        }
    }

    /// The process's cache.
    pub fn global() -> &'static RegexCache {
        static GLOBAL: OnceLock<RegexCache> = OnceLock::new();
        GLOBAL.get_or_init(RegexCache::new)
    }

    /// Sets the most bytes all compiled patterns together may take; a new
    /// pattern past it is refused (patterns already compiled stay).
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of the compiled patterns alive now.
    pub fn total_bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The shared compiled form of `pattern`, compiling it if no live
    /// subscription has it.
    pub(crate) fn get(
        &self,
        pattern: &str,
        size_limit: usize,
        dfa_limit: usize,
    ) -> Result<Arc<SharedRegex>, RegexFailure> {
        let key: Key = (pattern.into(), size_limit, dfa_limit);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = entries.get(&key).and_then(Weak::upgrade) {
            return Ok(found);
        }
        let budget = self.budget.load(Ordering::Relaxed);
        let total = self.total_bytes();
        if total >= budget {
            return Err(RegexFailure::ProcessBudget { total, budget });
        }
        let regex = meta::Regex::builder()
            .syntax(syntax::Config::new().dot_matches_new_line(true))
            .configure(
                meta::Config::new()
                    .nfa_size_limit(Some(size_limit))
                    .hybrid_cache_capacity(dfa_limit),
            )
            .build(pattern)
            .map_err(|error| match error.size_limit() {
                Some(limit) => RegexFailure::TooBig(limit),
                None => RegexFailure::Invalid(error.to_string()),
            })?;
        let bytes = regex.memory_usage().max(1);
        if total.saturating_add(bytes) > budget {
            return Err(RegexFailure::ProcessBudget { total, budget });
        }
        self.total.fetch_add(bytes, Ordering::Relaxed);
        let shared = Arc::new(SharedRegex {
            regex,
            bytes,
            total: Arc::clone(&self.total),
        });
        // Forget patterns nobody uses any more, now and then.
        if entries.len() >= 64 && entries.len().is_power_of_two() {
            entries.retain(|_, weak| weak.strong_count() > 0);
        }
        entries.insert(key, Arc::downgrade(&shared));
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Limits, Subscription, codes};

    #[test]
    fn identical_patterns_are_compiled_once_and_distinct_ones_are_budgeted() {
        let one = r#"regex(x, "\\w{20}")"#;
        let repeated = vec![one; 80].join(" || ");
        let sub = Subscription::compile(&repeated, &Limits::default()).unwrap();
        let single = Subscription::compile(one, &Limits::default()).unwrap();
        assert!(single.regex_bytes() > 500_000, "{}", single.regex_bytes());
        assert_eq!(sub.regex_bytes(), single.regex_bytes(), "counted once");
        let distinct = (0..10)
            .map(|i| format!(r#"regex(x, "\\w{{20}}{i}")"#))
            .collect::<Vec<_>>()
            .join(" || ");
        let error = Subscription::compile(&distinct, &Limits::default()).unwrap_err();
        assert_eq!(error.code, codes::REGEXP_TOO_COMPLEX, "{}", error.message);
        assert!(
            error.message.contains("a subscription may use"),
            "{}",
            error.message
        );
        // ASCII-only classes are small: many fit.
        let small = (0..10)
            .map(|i| format!(r#"regex(x, "(?-u)\\w{{20}}{i}")"#))
            .collect::<Vec<_>>()
            .join(" || ");
        assert!(Subscription::compile(&small, &Limits::default()).is_ok());
    }
}
