//! The subscription index: which subscriptions can possibly match a
//! notification, found without looking at the others.
//!
//! **Composite filing.** A subscription with two or more necessary
//! equality constraints is filed under all of them at once: under the
//! tuple of its values for the sorted set of those attribute names (a
//! *schema*), one key per combination of a disjunction's values. The
//! testbed's layout shows why: every node's agents subscribe
//! `EXPT == "p/e" && (HOST == "*" || HOST == "10.1.1.2") && SCHEDULER == 0`,
//! so filing under EXPT alone puts a whole experiment on one list, and
//! filing under HOST alone puts every subscription of the testbed under
//! `"*"`. Filed under (EXPT, HOST, SCHEDULER) with keys
//! `("p/e", "*", 0)` and `("p/e", "10.1.1.2", 0)`, an event directed at one
//! node meets only that node's subscriptions and a broadcast (`HOST == "*"`)
//! meets only its experiment's. A notification probes each schema once,
//! with the tuple of its own values, so the cost follows the number of
//! schemas (a handful: the shapes clients use), not the table. Limits keep
//! hostile subscriptions from making that expensive: at most
//! [`MAX_SCHEMA_ATTRIBUTES`] names per schema, [`MAX_COMPOSITE_KEYS`] keys
//! per subscription (the product of its disjunctions), [`MAX_SCHEMAS`]
//! schemas; past them a subscription is filed the single-attribute way
//! below.
//!
//! **Single-attribute filing.** Otherwise a subscription is filed under
//! **one** of its necessary equality constraints ([`elvin_sublang::Subscription::constraints`]): the one
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

use std::hash::{Hash, Hasher};

use elvin_proto::{AttributeLookup, AttributesRef, ValueRef};
use elvin_sublang::{Constraint, IndexKey};
use rustc_hash::{FxHashMap, FxHasher};
use smallvec::SmallVec;

/// A subscription's handle in the index (its slot in the routing table).
pub type Slot = u32;

/// One posting list: the slots filed under one (attribute, value), or the
/// unindexed list.
#[derive(Default, Debug)]
struct Postings {
    slots: Vec<Slot>,
}

/// Which list a posting is on.
#[derive(Debug, Clone, PartialEq)]
enum PostingKey {
    /// The unindexed list.
    Unindexed,
    /// One value of the filing attribute.
    Single(IndexKey),
    /// One tuple of the filing schema.
    Tuple(Box<[IndexKey]>),
}

/// Where one slot sits in one posting list.
#[derive(Debug, Clone)]
struct Posting {
    key: PostingKey,
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

/// Most attribute names combined into one schema.
pub const MAX_SCHEMA_ATTRIBUTES: usize = 4;
/// Most composite keys one subscription is filed under (the product of the
/// sizes of its disjunctions).
pub const MAX_COMPOSITE_KEYS: usize = 16;
/// Most schemas at once; every notification probes each of them.
pub const MAX_SCHEMAS: usize = 64;

/// Where a slot is filed: its attribute or schema (none for the unindexed
/// list) and its positions.
#[derive(Debug, Clone, Default)]
struct Filing {
    attribute: Option<Box<str>>,
    schema: Option<Box<[Box<str>]>>,
    postings: SmallVec<[Posting; 2]>,
}

/// One composite posting list: the slots filed under one tuple of values.
#[derive(Debug)]
struct TupleList {
    key: Box<[IndexKey]>,
    postings: Postings,
}

/// Everything filed under one set of attribute names.
#[derive(Debug)]
struct Schema {
    /// The attribute names, sorted.
    names: Box<[Box<str>]>,
    /// Tuple lists by the hash of their key (collisions chain).
    buckets: FxHashMap<u64, Vec<TupleList>>,
    /// Subscriptions filed under this schema.
    subscriptions: usize,
}

impl Schema {
    fn list_mut(&mut self, key: &[IndexKey]) -> Option<&mut Postings> {
        self.buckets
            .get_mut(&hash_keys(key))?
            .iter_mut()
            .find(|l| &*l.key == key)
            .map(|l| &mut l.postings)
    }

    fn list_or_insert(&mut self, key: &[IndexKey]) -> &mut Postings {
        let bucket = self.buckets.entry(hash_keys(key)).or_default();
        let at = match bucket.iter().position(|l| &*l.key == key) {
            Some(at) => at,
            None => {
                bucket.push(TupleList {
                    key: key.into(),
                    postings: Postings::default(),
                });
                bucket.len() - 1
            }
        };
        &mut bucket[at].postings
    }

    fn remove_list_if_empty(&mut self, key: &[IndexKey]) {
        let hash = hash_keys(key);
        if let Some(bucket) = self.buckets.get_mut(&hash) {
            bucket.retain(|l| &*l.key != key || !l.postings.slots.is_empty());
            if bucket.is_empty() {
                self.buckets.remove(&hash);
            }
        }
    }

    /// The slots filed under the tuple of `lookup`'s values for this
    /// schema's names, if it has every name.
    fn visit(&self, lookup: &dyn AttributeLookup, visit: &mut impl FnMut(Slot)) {
        let mut hasher = FxHasher::default();
        let mut values: SmallVec<[ValueRef<'_>; MAX_SCHEMA_ATTRIBUTES]> = SmallVec::new();
        for name in &self.names {
            let Some(value) = lookup.lookup(name) else {
                return;
            };
            if !hash_value(&mut hasher, value) {
                return;
            }
            values.push(value);
        }
        let Some(bucket) = self.buckets.get(&hasher.finish()) else {
            return;
        };
        for list in bucket {
            if list
                .key
                .iter()
                .zip(&values)
                .all(|(key, value)| key_equals(key, *value))
            {
                for &slot in &list.postings.slots {
                    visit(slot);
                }
            }
        }
    }
}

/// Hashes one key part so that [`hash_value`] of an equal value agrees.
fn hash_key(hasher: &mut FxHasher, key: &IndexKey) {
    match key {
        IndexKey::String(s) => {
            hasher.write_u8(0);
            hasher.write(s.as_bytes());
            hasher.write_u8(0xff);
        }
        other => {
            hasher.write_u8(1);
            other.hash(hasher);
        }
    }
}

fn hash_keys(key: &[IndexKey]) -> u64 {
    let mut hasher = FxHasher::default();
    for part in key {
        hash_key(&mut hasher, part);
    }
    hasher.finish()
}

/// Hashes a notification's value like [`hash_key`] hashes its key; false
/// when the value has no key (it can then equal no constraint).
fn hash_value(hasher: &mut FxHasher, value: ValueRef<'_>) -> bool {
    match value {
        ValueRef::String(s) => {
            hasher.write_u8(0);
            hasher.write(s.as_bytes());
            hasher.write_u8(0xff);
            true
        }
        other => match IndexKey::of(other) {
            Some(key) => {
                hasher.write_u8(1);
                key.hash(hasher);
                true
            }
            None => false,
        },
    }
}

fn key_equals(key: &IndexKey, value: ValueRef<'_>) -> bool {
    match (key, value) {
        (IndexKey::String(k), ValueRef::String(v)) => &**k == v,
        (IndexKey::String(_), _) | (_, ValueRef::String(_)) => false,
        (key, other) => IndexKey::of(other).as_ref() == Some(key),
    }
}

/// The constraints to file a subscription under as a composite, or `None`
/// when single-attribute filing applies: fewer than two constraints, an
/// impossible one, or no pair within the key budget. Picks the
/// constraints with the fewest values first.
fn composite_choice(constraints: &[Constraint]) -> Option<Vec<&Constraint>> {
    if constraints.len() < 2 || constraints.iter().any(|c| c.values.is_empty()) {
        return None;
    }
    let mut by_size: Vec<&Constraint> = constraints.iter().collect();
    by_size.sort_by(|a, b| (a.values.len(), &a.attribute).cmp(&(b.values.len(), &b.attribute)));
    let mut chosen = Vec::new();
    let mut keys = 1usize;
    for constraint in by_size {
        let more = keys.saturating_mul(constraint.values.len());
        if more > MAX_COMPOSITE_KEYS || chosen.len() == MAX_SCHEMA_ATTRIBUTES {
            continue;
        }
        keys = more;
        chosen.push(constraint);
    }
    if chosen.len() < 2 {
        return None;
    }
    chosen.sort_by(|a, b| a.attribute.cmp(&b.attribute));
    Some(chosen)
}

/// Every combination of the chosen constraints' values, in name order.
fn tuples(chosen: &[&Constraint]) -> Vec<Vec<IndexKey>> {
    let mut out: Vec<Vec<IndexKey>> = vec![Vec::new()];
    for constraint in chosen {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                constraint.values.iter().map(move |value| {
                    let mut tuple = prefix.clone();
                    tuple.push(value.clone());
                    tuple
                })
            })
            .collect();
    }
    out
}

/// The index from (attribute, value) to subscription slots.
#[derive(Default, Debug)]
pub struct SubscriptionIndex {
    attributes: FxHashMap<Box<str>, AttributePostings>,
    /// Names of the attributes that have postings, walked per notification.
    names: Vec<Box<str>>,
    unindexed: Postings,
    /// Composite schemas, probed per notification, and where each is.
    schemas: Vec<Schema>,
    schema_at: FxHashMap<Box<[Box<str>]>, usize>,
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

    /// Attribute names that currently have single-attribute postings.
    pub fn indexed_attributes(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// Number of composite schemas.
    pub fn schema_count(&self) -> usize {
        self.schemas.len()
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
        if let Some(chosen) = composite_choice(constraints)
            && self.insert_composite(slot, &chosen)
        {
            return;
        }
        let chosen = constraints
            .iter()
            .enumerate()
            .min_by_key(|(order, c)| (self.cost(c), c.values.len(), *order))
            .map(|(_, c)| c);
        let mut filing = Filing::default();
        match chosen {
            None => {
                filing.postings.push(Posting {
                    key: PostingKey::Unindexed,
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
                        key: PostingKey::Single(key.clone()),
                        position,
                    });
                }
                filing.attribute = Some(name);
            }
        }
        self.record(slot, filing);
    }

    fn record(&mut self, slot: Slot, filing: Filing) {
        let index = slot as usize;
        if self.filings.len() <= index {
            self.filings.resize(index + 1, None);
        }
        if let Some(entry) = self.filings.get_mut(index) {
            *entry = Some(filing);
        }
    }

    /// Files `slot` under the schema of `chosen`; false when that would
    /// need a new schema past [`MAX_SCHEMAS`].
    fn insert_composite(&mut self, slot: Slot, chosen: &[&Constraint]) -> bool {
        let names: Box<[Box<str>]> = chosen.iter().map(|c| c.attribute.as_str().into()).collect();
        let at = match self.schema_at.get(&names) {
            Some(&at) => at,
            None if self.schemas.len() >= MAX_SCHEMAS => return false,
            None => {
                self.schemas.push(Schema {
                    names: names.clone(),
                    buckets: FxHashMap::default(),
                    subscriptions: 0,
                });
                self.schema_at.insert(names.clone(), self.schemas.len() - 1);
                self.schemas.len() - 1
            }
        };
        let Some(schema) = self.schemas.get_mut(at) else {
            return false;
        };
        schema.subscriptions += 1;
        let mut filing = Filing {
            schema: Some(names),
            ..Filing::default()
        };
        for tuple in tuples(chosen) {
            let position = push_slot(schema.list_or_insert(&tuple), slot);
            filing.postings.push(Posting {
                key: PostingKey::Tuple(tuple.into()),
                position,
            });
        }
        self.record(slot, filing);
        true
    }

    /// Takes `slot` out of its schema's lists.
    fn remove_composite(&mut self, names: &[Box<str>], filing: &Filing) {
        let Some(&at) = self.schema_at.get(names) else {
            return;
        };
        let Some(schema) = self.schemas.get_mut(at) else {
            return;
        };
        for posting in &filing.postings {
            let PostingKey::Tuple(key) = &posting.key else {
                continue;
            };
            if let Some(list) = schema.list_mut(key)
                && let Some(moved) = swap_remove(list, posting.position)
            {
                fix_position(&mut self.filings, moved, &posting.key, posting.position);
            }
            schema.remove_list_if_empty(key);
        }
        schema.subscriptions = schema.subscriptions.saturating_sub(1);
        if schema.subscriptions == 0 {
            self.schema_at.remove(names);
            self.schemas.swap_remove(at);
            if let Some(moved) = self.schemas.get(at) {
                self.schema_at.insert(moved.names.clone(), at);
            }
        }
    }

    /// Removes `slot` from every posting list it is on. Unknown slots are
    /// ignored.
    pub fn remove(&mut self, slot: Slot) {
        let Some(filing) = self.filings.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if let Some(names) = &filing.schema {
            self.remove_composite(names, &filing);
            return;
        }
        match &filing.attribute {
            None => {
                for posting in &filing.postings {
                    if let Some(moved) = swap_remove(&mut self.unindexed, posting.position) {
                        fix_position(&mut self.filings, moved, &posting.key, posting.position);
                    }
                }
            }
            Some(name) => {
                let Some(attribute) = self.attributes.get_mut(name) else {
                    return;
                };
                for posting in &filing.postings {
                    let PostingKey::Single(key) = &posting.key else {
                        continue;
                    };
                    if let Some(list) = attribute.list_mut(key)
                        && let Some(moved) = swap_remove(list, posting.position)
                    {
                        fix_position(&mut self.filings, moved, &posting.key, posting.position);
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
    ///
    /// `lookup` answers attribute lookups (a hashed view for large
    /// notifications; `attributes` itself otherwise).
    pub fn for_each_candidate(
        &self,
        attributes: &AttributesRef<'_>,
        lookup: &dyn AttributeLookup,
        mut visit: impl FnMut(Slot),
    ) {
        for schema in &self.schemas {
            schema.visit(lookup, &mut visit);
        }
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
                let Some(value) = lookup.lookup(name) else {
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
fn fix_position(filings: &mut [Option<Filing>], moved: Slot, key: &PostingKey, position: u32) {
    if let Some(Some(filing)) = filings.get_mut(moved as usize)
        && let Some(posting) = filing.postings.iter_mut().find(|p| p.key == *key)
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
        index.for_each_candidate(&attributes, &attributes, |slot| out.push(slot));
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

    /// The testbed's layout: 3 experiments x 4 nodes, each node's agents
    /// `EXPT && (HOST == "*" || HOST == ip) && SCHEDULER == 0`, plus a
    /// program agent per node.
    fn testbed_layout() -> (SubscriptionIndex, Vec<(String, String, Slot)>) {
        let mut index = SubscriptionIndex::new();
        let mut nodes = Vec::new();
        let mut slot = 0;
        for e in 0..3 {
            for n in 0..4 {
                let expt = format!("p/e{e}");
                let ip = format!("10.{e}.0.{n}");
                index.insert(
                    slot,
                    &constraints(&format!(
                        r#" ( EXPT == "{expt}" ) && ( HOST == "*" || HOST == "{ip}" ) && SCHEDULER == 0 "#
                    )),
                );
                nodes.push((expt.clone(), ip, slot));
                slot += 1;
                index.insert(
                    slot,
                    &constraints(&format!(
                        r#" ( EXPT == "{expt}" ) && ( OBJTYPE == "PROGRAM" ) && ( OBJNAME == "prog{n}" || OBJNAME == "agent{n}" ) && SCHEDULER == 0 "#
                    )),
                );
                slot += 1;
            }
        }
        (index, nodes)
    }

    #[test]
    fn a_directed_event_meets_only_its_nodes_subscriptions() {
        let (index, nodes) = testbed_layout();
        assert_eq!(index.schema_count(), 2);
        let (expt, ip, slot) = &nodes[5];
        let found = candidates(
            &index,
            &[
                ("EXPT", ValueRef::String(expt)),
                ("HOST", ValueRef::String(ip)),
                ("OBJTYPE", ValueRef::String("LINK")),
                ("OBJNAME", ValueRef::String("link0")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
        );
        assert_eq!(found, [*slot]);
        // A broadcast meets its experiment's node subscriptions only.
        let found = candidates(
            &index,
            &[
                ("EXPT", ValueRef::String(expt)),
                ("HOST", ValueRef::String("*")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
        );
        let expected: Vec<Slot> = nodes.iter().filter(|n| &n.0 == expt).map(|n| n.2).collect();
        assert_eq!(found, expected);
        // A program event meets that program's agent only.
        let found = candidates(
            &index,
            &[
                ("EXPT", ValueRef::String("p/e2")),
                ("HOST", ValueRef::String("10.2.0.3")),
                ("OBJTYPE", ValueRef::String("PROGRAM")),
                ("OBJNAME", ValueRef::String("agent3")),
                ("SCHEDULER", ValueRef::Int32(0)),
            ],
        );
        assert_eq!(found, [nodes[11].2, nodes[11].2 + 1]);
    }

    #[test]
    fn composite_filings_are_removed_cleanly() {
        let (mut index, nodes) = testbed_layout();
        for slot in 0..24 {
            index.remove(slot);
        }
        assert_eq!(index.schema_count(), 0);
        let (expt, ip, _) = &nodes[0];
        assert!(
            candidates(
                &index,
                &[
                    ("EXPT", ValueRef::String(expt)),
                    ("HOST", ValueRef::String(ip)),
                    ("SCHEDULER", ValueRef::Int32(0)),
                ],
            )
            .is_empty()
        );
    }

    #[test]
    fn composite_limits_fall_back_to_single_filing() {
        let mut index = SubscriptionIndex::new();
        // 5 x 5 = 25 keys is over the budget: only one of the two
        // disjunctions joins the schema with the single-valued constraint.
        index.insert(
            0,
            &constraints(
                "(A == 1 || A == 2 || A == 3 || A == 4 || A == 5) && (B == 1 || B == 2 || B == 3 || B == 4 || B == 5) && C == 0",
            ),
        );
        assert_eq!(index.schema_count(), 1);
        let found = candidates(
            &index,
            &[
                ("A", ValueRef::Int32(3)),
                ("B", ValueRef::Int32(4)),
                ("C", ValueRef::Int32(0)),
            ],
        );
        assert_eq!(found, [0]);
        // Past MAX_SCHEMAS distinct schemas, subscriptions still file and
        // are still found.
        for i in 0..(MAX_SCHEMAS as u32 + 10) {
            index.insert(1 + i, &constraints(&format!("x{i} == 1 && y == 2")));
        }
        assert_eq!(index.schema_count(), MAX_SCHEMAS);
        let last = MAX_SCHEMAS as u32 + 9;
        let found = candidates(
            &index,
            &[
                (&format!("x{last}"), ValueRef::Int32(1)),
                ("y", ValueRef::Int32(2)),
            ],
        );
        assert!(found.contains(&(1 + last)), "{found:?}");
    }

    /// Whatever mix of subscriptions is filed, every subscription that
    /// matches a notification is among its candidates.
    #[test]
    fn the_index_never_loses_a_match() {
        struct Rng(u64);
        impl Rng {
            fn next(&mut self, n: u64) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 % n
            }
        }
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let names = ["A", "B", "C", "D"];
        let values = ["1", "2", "\"x\"", "\"y\"", "2.0"];
        let mut subs = Vec::new();
        let mut index = SubscriptionIndex::new();
        for slot in 0..400u32 {
            let clauses: Vec<String> = (0..1 + rng.next(4))
                .map(|_| {
                    let name = names[rng.next(4) as usize];
                    let alternatives: Vec<String> = (0..1 + rng.next(3))
                        .map(|_| format!("{name} == {}", values[rng.next(5) as usize]))
                        .collect();
                    format!("({})", alternatives.join(" || "))
                })
                .collect();
            let expression = if rng.next(10) == 0 {
                format!("{} || E == 1", clauses.join(" && "))
            } else {
                clauses.join(" && ")
            };
            let Ok(subscription) = Subscription::compile(&expression, &Limits::default()) else {
                continue;
            };
            index.insert(slot, &subscription.constraints());
            subs.push((slot, subscription));
            // Some churn.
            if rng.next(7) == 0
                && let Some((gone, _)) = subs.first()
            {
                let gone = *gone;
                index.remove(gone);
                subs.retain(|(s, _)| *s != gone);
            }
        }
        let pool = [
            ValueRef::Int32(1),
            ValueRef::Int32(2),
            ValueRef::Real64(2.0),
            ValueRef::Int64(1),
            ValueRef::String("x"),
            ValueRef::String("y"),
        ];
        for _ in 0..2000 {
            let mut entries = Vec::new();
            for name in names.iter().chain(["E"].iter()) {
                if rng.next(5) != 0 {
                    entries.push((*name, pool[rng.next(6) as usize]));
                }
            }
            let attrs = AttributesRef {
                entries: entries.clone(),
            };
            let found = candidates(&index, &entries);
            for (slot, subscription) in &subs {
                if subscription.matches(&attrs) {
                    assert!(
                        found.contains(slot),
                        "slot {slot} matches {entries:?} but is no candidate"
                    );
                }
            }
        }
    }
}
