//! The subscription index: which subscriptions can possibly match a
//! notification, found without looking at the others.
//!
//! Every subscription is filed under **one** of its necessary equality
//! constraints ([`elvin_sublang::Subscription::constraints`]): the one
//! whose values currently have the shortest posting lists, so a term that
//! everybody shares (`SCHEDULER == 0`) is not chosen over a selective one
//! (`EXPT == "p/e"`). A subscription with no constraint goes on the
//! *unindexed* list, which every notification visits.
//!
//! For a notification the router walks only the attribute names that have
//! postings (a short list: Emulab subscriptions constrain a handful of
//! names), looks each one up in the notification, and visits the posting
//! list of that value. (Should clients ever constrain more distinct names
//! than a notification has attributes, the walk turns around: each of the
//! notification's names is looked up in the index instead.) Because a subscription sits under one attribute, it
//! is visited at most once per notification, and the number visited is the
//! number of subscriptions whose constraint value equals the
//! notification's, plus the unindexed ones: the cost follows the matches,
//! not the table size.
//!
//! Posting lists are vectors (fast to walk) with O(1) removal: each
//! subscription remembers its position in each list it is on, and a
//! removal swaps the last entry into the hole and fixes that entry's
//! remembered position. String values are looked up by `&str`, so a
//! notification's strings are never copied to probe the index.

use elvin_proto::{AttributesRef, ValueRef};
use elvin_sublang::{Constraint, IndexKey};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// A subscription's handle in the index (its slot in the routing table).
pub type Slot = u32;

/// One posting list: the slots filed under one (attribute, value), or the
/// unindexed list.
#[derive(Default, Debug)]
struct Postings {
    slots: Vec<Slot>,
}

/// Where one slot sits in one posting list.
#[derive(Debug, Clone)]
struct Posting {
    /// The value (`None` for the unindexed list).
    key: Option<IndexKey>,
    /// Index into that list's `slots`.
    position: u32,
}

/// Everything filed under one attribute name.
#[derive(Default, Debug)]
struct AttributePostings {
    /// String values, looked up by `&str`.
    strings: FxHashMap<Box<str>, Postings>,
    /// Numeric values (and NaN).
    numbers: FxHashMap<IndexKey, Postings>,
    /// Subscriptions filed under this attribute.
    subscriptions: usize,
}

impl AttributePostings {
    fn list(&self, key: &IndexKey) -> Option<&Postings> {
        match key {
            IndexKey::String(s) => self.strings.get(&**s),
            other => self.numbers.get(other),
        }
    }

    fn list_mut(&mut self, key: &IndexKey) -> Option<&mut Postings> {
        match key {
            IndexKey::String(s) => self.strings.get_mut(&**s),
            other => self.numbers.get_mut(other),
        }
    }

    fn list_or_insert(&mut self, key: &IndexKey) -> &mut Postings {
        match key {
            IndexKey::String(s) => self.strings.entry(s.clone()).or_default(),
            other => self.numbers.entry(other.clone()).or_default(),
        }
    }

    fn remove_list_if_empty(&mut self, key: &IndexKey) {
        let empty = self.list(key).is_some_and(|l| l.slots.is_empty());
        if empty {
            match key {
                IndexKey::String(s) => {
                    self.strings.remove(&**s);
                }
                other => {
                    self.numbers.remove(other);
                }
            }
        }
    }
}

/// Where a slot is filed: its attribute (none for the unindexed list) and
/// its positions.
#[derive(Debug, Clone, Default)]
struct Filing {
    attribute: Option<Box<str>>,
    postings: SmallVec<[Posting; 2]>,
}

/// The index from (attribute, value) to subscription slots.
#[derive(Default, Debug)]
pub struct SubscriptionIndex {
    attributes: FxHashMap<Box<str>, AttributePostings>,
    /// Names of the attributes that have postings, walked per notification.
    names: Vec<Box<str>>,
    unindexed: Postings,
    /// Filing of each slot, indexed by slot.
    filings: Vec<Option<Filing>>,
}

impl SubscriptionIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscriptions on the unindexed list.
    pub fn unindexed_len(&self) -> usize {
        self.unindexed.slots.len()
    }

    /// Attribute names that currently have postings.
    pub fn indexed_attributes(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// The attribute `slot` is filed under (`None` if unindexed or absent).
    pub fn attribute_of(&self, slot: Slot) -> Option<&str> {
        self.filings
            .get(slot as usize)?
            .as_ref()?
            .attribute
            .as_deref()
    }

    /// Current cost of filing under `constraint`: the summed length of its
    /// values' posting lists.
    fn cost(&self, constraint: &Constraint) -> usize {
        let Some(attribute) = self.attributes.get(constraint.attribute.as_str()) else {
            return 0;
        };
        constraint
            .values
            .iter()
            .map(|key| attribute.list(key).map_or(0, |l| l.slots.len()))
            .sum()
    }

    /// Files `slot` under the cheapest of `constraints`, or on the
    /// unindexed list when there are none. A slot already filed is moved.
    pub fn insert(&mut self, slot: Slot, constraints: &[Constraint]) {
        self.remove(slot);
        let chosen = constraints
            .iter()
            .enumerate()
            .min_by_key(|(order, c)| (self.cost(c), c.values.len(), *order))
            .map(|(_, c)| c);
        let mut filing = Filing::default();
        match chosen {
            None => {
                filing.postings.push(Posting {
                    key: None,
                    position: push_slot(&mut self.unindexed, slot),
                });
            }
            Some(constraint) => {
                let name: Box<str> = constraint.attribute.as_str().into();
                if !self.attributes.contains_key(&name) {
                    self.names.push(name.clone());
                }
                let attribute = self.attributes.entry(name.clone()).or_default();
                attribute.subscriptions += 1;
                for key in &constraint.values {
                    let position = push_slot(attribute.list_or_insert(key), slot);
                    filing.postings.push(Posting {
                        key: Some(key.clone()),
                        position,
                    });
                }
                filing.attribute = Some(name);
            }
        }
        let index = slot as usize;
        if self.filings.len() <= index {
            self.filings.resize(index + 1, None);
        }
        if let Some(entry) = self.filings.get_mut(index) {
            *entry = Some(filing);
        }
    }

    /// Removes `slot` from every posting list it is on. Unknown slots are
    /// ignored.
    pub fn remove(&mut self, slot: Slot) {
        let Some(filing) = self.filings.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        match &filing.attribute {
            None => {
                for posting in &filing.postings {
                    if let Some(moved) = swap_remove(&mut self.unindexed, posting.position) {
                        fix_position(&mut self.filings, moved, None, posting.position);
                    }
                }
            }
            Some(name) => {
                let Some(attribute) = self.attributes.get_mut(name) else {
                    return;
                };
                for posting in &filing.postings {
                    let Some(key) = &posting.key else { continue };
                    if let Some(list) = attribute.list_mut(key)
                        && let Some(moved) = swap_remove(list, posting.position)
                    {
                        fix_position(&mut self.filings, moved, Some(key), posting.position);
                    }
                    attribute.remove_list_if_empty(key);
                }
                attribute.subscriptions = attribute.subscriptions.saturating_sub(1);
                if attribute.subscriptions == 0 {
                    self.attributes.remove(name);
                    self.names.retain(|n| n != name);
                }
            }
        }
    }

    /// Calls `visit` once for every slot that may match a notification with
    /// `attributes`: the posting lists of its indexed attribute values and
    /// the unindexed list.
    pub fn for_each_candidate(&self, attributes: &AttributesRef<'_>, mut visit: impl FnMut(Slot)) {
        let entries = &attributes.entries;
        if self.names.len() > entries.len() && entries.len() <= SCAN_NOTIFICATION_LIMIT {
            // More indexed names than attributes: probe the index with each
            // of the notification's names instead. A repeated name counts
            // only at its last occurrence (the value the evaluator sees), so
            // no list is visited twice.
            for (i, (name, value)) in entries.iter().enumerate() {
                let repeated_later = entries
                    .get(i + 1..)
                    .is_some_and(|rest| rest.iter().any(|(later, _)| later == name));
                if repeated_later {
                    continue;
                }
                if let Some(postings) = self.attributes.get(*name) {
                    visit_list(postings, *value, &mut visit);
                }
            }
        } else {
            for name in &self.names {
                let Some(value) = attributes.get(name) else {
                    continue;
                };
                if let Some(postings) = self.attributes.get(name) {
                    visit_list(postings, value, &mut visit);
                }
            }
        }
        for &slot in &self.unindexed.slots {
            visit(slot);
        }
    }
}

/// Notifications with at most this many attributes may be walked
/// attribute by attribute (the duplicate check is quadratic in it).
const SCAN_NOTIFICATION_LIMIT: usize = 64;

/// Visits the posting list of `value` under one attribute, if any.
fn visit_list(postings: &AttributePostings, value: ValueRef<'_>, visit: &mut impl FnMut(Slot)) {
    let list = match value {
        ValueRef::String(s) => postings.strings.get(s),
        other => IndexKey::of(other).and_then(|key| postings.numbers.get(&key)),
    };
    if let Some(list) = list {
        for &slot in &list.slots {
            visit(slot);
        }
    }
}

/// Appends `slot`, returning its position.
fn push_slot(list: &mut Postings, slot: Slot) -> u32 {
    let position = u32::try_from(list.slots.len()).unwrap_or(u32::MAX);
    list.slots.push(slot);
    position
}

/// Removes the entry at `position` by swapping the last one into it;
/// returns the slot that moved, if any.
fn swap_remove(list: &mut Postings, position: u32) -> Option<Slot> {
    let position = position as usize;
    if position >= list.slots.len() {
        return None;
    }
    list.slots.swap_remove(position);
    list.slots.get(position).copied()
}

/// Records that `moved`'s posting for `key` is now at `position`.
fn fix_position(
    filings: &mut [Option<Filing>],
    moved: Slot,
    key: Option<&IndexKey>,
    position: u32,
) {
    if let Some(Some(filing)) = filings.get_mut(moved as usize)
        && let Some(posting) = filing.postings.iter_mut().find(|p| p.key.as_ref() == key)
    {
        posting.position = position;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elvin_sublang::{Limits, Subscription};

    fn constraints(expression: &str) -> Vec<Constraint> {
        Subscription::compile(expression, &Limits::default())
            .unwrap()
            .constraints()
    }

    fn candidates(index: &SubscriptionIndex, attributes: &[(&str, ValueRef<'_>)]) -> Vec<Slot> {
        let attributes = AttributesRef {
            entries: attributes.to_vec(),
        };
        let mut out = Vec::new();
        index.for_each_candidate(&attributes, |slot| out.push(slot));
        out.sort_unstable();
        out
    }

    #[test]
    fn selective_constraint_is_chosen_over_a_shared_one() {
        let mut index = SubscriptionIndex::new();
        // Many subscriptions share SCHEDULER == 0; each has its own EXPT.
        for slot in 0..50u32 {
            index.insert(
                slot,
                &constraints(&format!(r#"EXPT == "p/e{slot}" && SCHEDULER == 0"#)),
            );
        }
        // At most the first (when all lists were empty) went under
        // SCHEDULER; the rest chose EXPT.
        let under_scheduler = (0..50)
            .filter(|&s| index.attribute_of(s) == Some("SCHEDULER"))
            .count();
        assert!(under_scheduler <= 1, "{under_scheduler} under SCHEDULER");
        let found = candidates(
            &index,
            &[
                ("EXPT", ValueRef::String("p/e7")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
        );
        assert!(found.contains(&7));
        assert!(found.len() <= 2, "{found:?}");
    }

    #[test]
    fn unconstrained_subscriptions_are_always_candidates() {
        let mut index = SubscriptionIndex::new();
        index.insert(0, &constraints("a > 1"));
        index.insert(1, &constraints(r#"b == "x""#));
        assert_eq!(index.unindexed_len(), 1);
        assert_eq!(candidates(&index, &[]), [0]);
        assert_eq!(candidates(&index, &[("b", ValueRef::String("x"))]), [0, 1]);
        assert_eq!(candidates(&index, &[("b", ValueRef::String("y"))]), [0]);
    }

    #[test]
    fn numbers_are_found_across_types() {
        let mut index = SubscriptionIndex::new();
        index.insert(3, &constraints("n == 1"));
        for value in [
            ValueRef::Int32(1),
            ValueRef::Int64(1),
            ValueRef::Real64(1.0),
        ] {
            assert_eq!(candidates(&index, &[("n", value)]), [3], "{value:?}");
        }
        assert!(candidates(&index, &[("n", ValueRef::Int32(2))]).is_empty());
        assert!(candidates(&index, &[("n", ValueRef::Opaque(b"1"))]).is_empty());
    }

    #[test]
    fn disjunctions_are_filed_under_every_value_and_found_once() {
        let mut index = SubscriptionIndex::new();
        index.insert(0, &constraints(r#"HOST == "a" || HOST == "b""#));
        assert_eq!(candidates(&index, &[("HOST", ValueRef::String("a"))]), [0]);
        assert_eq!(candidates(&index, &[("HOST", ValueRef::String("b"))]), [0]);
        index.remove(0);
        assert!(candidates(&index, &[("HOST", ValueRef::String("a"))]).is_empty());
        assert_eq!(index.indexed_attributes().count(), 0);
    }

    #[test]
    fn removal_keeps_every_other_posting_findable() {
        let mut index = SubscriptionIndex::new();
        for slot in 0..200u32 {
            let expr = match slot % 3 {
                0 => r#"K == "v""#.to_owned(),
                1 => r#"K == "v" || K == "w""#.to_owned(),
                _ => format!("x > {slot}"),
            };
            index.insert(slot, &constraints(&expr));
        }
        // Remove every slot divisible by 5, in an order that exercises
        // swaps from the middle and the end.
        for slot in (0..200u32).rev().filter(|s| s % 5 == 0) {
            index.remove(slot);
        }
        index.remove(9999); // unknown: ignored
        let expected_v: Vec<Slot> = (0..200u32).filter(|s| s % 3 != 2 && s % 5 != 0).collect();
        let mut found = candidates(&index, &[("K", ValueRef::String("v"))]);
        found.retain(|s| s % 3 != 2);
        assert_eq!(found, expected_v);
        let expected_w: Vec<Slot> = (0..200u32).filter(|s| s % 3 == 1 && s % 5 != 0).collect();
        let mut found = candidates(&index, &[("K", ValueRef::String("w"))]);
        found.retain(|s| s % 3 != 2);
        assert_eq!(found, expected_w);
        let unindexed: Vec<Slot> = (0..200u32).filter(|s| s % 3 == 2 && s % 5 != 0).collect();
        assert_eq!(candidates(&index, &[]), unindexed);
        // Re-filing moves a slot rather than duplicating it.
        index.insert(1, &constraints(r#"K == "z""#));
        assert_eq!(candidates(&index, &[("K", ValueRef::String("z"))]), {
            let mut v = unindexed.clone();
            v.push(1);
            v.sort_unstable();
            v
        });
        assert!(!candidates(&index, &[("K", ValueRef::String("v"))]).contains(&1));
    }

    #[test]
    fn many_indexed_names_are_probed_from_the_notification_side() {
        let mut index = SubscriptionIndex::new();
        for slot in 0..20u32 {
            index.insert(slot, &constraints(&format!("attr{slot} == 1")));
        }
        assert_eq!(index.indexed_attributes().count(), 20);
        assert_eq!(candidates(&index, &[("attr7", ValueRef::Int32(1))]), [7]);
        // A repeated name: only its last value counts, and a slot is
        // visited once.
        assert_eq!(
            candidates(
                &index,
                &[("attr3", ValueRef::Int32(1)), ("attr3", ValueRef::Int32(2))]
            ),
            Vec::<Slot>::new()
        );
        assert_eq!(
            candidates(
                &index,
                &[("attr3", ValueRef::Int32(2)), ("attr3", ValueRef::Int32(1))]
            ),
            [3]
        );
        // More attributes than indexed names: the other walk, same answer.
        let mut many: Vec<(String, ValueRef<'_>)> = (0..30)
            .map(|i| (format!("x{i}"), ValueRef::Int32(1)))
            .collect();
        many.push(("attr5".into(), ValueRef::Int32(1)));
        let entries: Vec<(&str, ValueRef<'_>)> =
            many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(candidates(&index, &entries), [5]);
    }

    #[test]
    fn impossible_constraint_is_never_a_candidate() {
        let mut index = SubscriptionIndex::new();
        index.insert(0, &constraints("a == 1 && a == 2"));
        assert!(candidates(&index, &[("a", ValueRef::Int32(1))]).is_empty());
        assert!(candidates(&index, &[("a", ValueRef::Int32(2))]).is_empty());
        index.remove(0);
        assert_eq!(index.indexed_attributes().count(), 0);
    }
}
