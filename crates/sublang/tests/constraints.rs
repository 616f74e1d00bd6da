//! Index constraints and index keys: worked examples, and property tests of
//! the two promises the router relies on: (1) whenever a subscription is
//! true, each of its constraints holds; (2) index keys are equal exactly
//! when the values are `==`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use elvin_proto::{Attributes, Value, ValueRef};
use elvin_sublang::{Constraint, IndexKey, Limits, Subscription, Truth};
use proptest::prelude::*;

fn constraints(expr: &str) -> Vec<(String, Vec<IndexKey>)> {
    common::compile(expr)
        .constraints()
        .into_iter()
        .map(|Constraint { attribute, values }| (attribute, values))
        .collect()
}

fn s(v: &str) -> IndexKey {
    IndexKey::String(v.into())
}

fn int(v: i64) -> IndexKey {
    IndexKey::Integer(v)
}

#[test]
fn emulab_shape_constrains_every_clause() {
    let got = constraints(
        r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.0.0.1" ) && SCHEDULER == 0 "#,
    );
    assert_eq!(
        got,
        [
            ("EXPT".to_owned(), vec![s("p/e")]),
            ("HOST".to_owned(), vec![s("*"), s("10.0.0.1")]),
            ("SCHEDULER".to_owned(), vec![int(0)]),
        ]
    );
}

#[test]
fn literal_on_either_side_and_equals() {
    assert_eq!(constraints("1 == a"), [("a".to_owned(), vec![int(1)])]);
    assert_eq!(
        constraints("equals(a, 1, \"x\", 1.0, 2.5)"),
        [(
            "a".to_owned(),
            vec![int(1), s("x"), IndexKey::Real(2.5f64.to_bits())]
        )]
    );
    assert_eq!(
        constraints("a == 2 + 3"),
        [("a".to_owned(), vec![int(5)])],
        "folded constants count"
    );
}

#[test]
fn numbers_of_every_type_share_keys() {
    assert_eq!(
        constraints("a == 1 || a == 1L || a == 1.0"),
        [("a".to_owned(), vec![int(1)])]
    );
    assert_eq!(
        constraints("a == -0.0"),
        [("a".to_owned(), vec![IndexKey::Real((-0.0f64).to_bits())])]
    );
}

#[test]
fn disjunctions_constrain_only_attributes_in_every_branch() {
    assert_eq!(
        constraints("a == 1 || a == 2"),
        [("a".to_owned(), vec![int(1), int(2)])]
    );
    assert_eq!(constraints("a == 1 || b == 2"), []);
    assert_eq!(
        constraints("(a == 1 && b == 1) || (a == 2 && c == 1)"),
        [("a".to_owned(), vec![int(1), int(2)])]
    );
    // A branch that can never be true does not count.
    assert_eq!(
        constraints("a == 1 || 1 / 0 == 1"),
        [("a".to_owned(), vec![int(1)])]
    );
}

#[test]
fn conjunctions_intersect_constraints_on_one_attribute() {
    assert_eq!(
        constraints("a == 1 && (a == 1 || a == 2)"),
        [("a".to_owned(), vec![int(1)])]
    );
    assert_eq!(
        constraints("a == 1 && b == \"x\""),
        [
            ("a".to_owned(), vec![int(1)]),
            ("b".to_owned(), vec![s("x")])
        ]
    );
    assert_eq!(
        constraints("a == 1 && a == 2"),
        [("a".to_owned(), vec![])],
        "never true: empty set"
    );
}

#[test]
fn nothing_is_derived_through_negation_xor_or_other_operators() {
    for expr in [
        "!(a == 1)",
        "a != 1",
        "a == 1 ^^ b == 1",
        "a < 1",
        "a >= 1",
        "a + 1 == 2",
        "fold-case(a) == \"x\"",
        "a == b",
        "require(a)",
        "begins-with(a, \"x\")",
        "equals(a, b)",
        "a == 1 ^^ 1 == 1",
    ] {
        assert_eq!(constraints(expr), [], "{expr}");
    }
}

#[test]
fn inexact_literals_give_no_constraint() {
    assert_eq!(constraints("a == 9007199254740993L"), []);
    assert_eq!(constraints("a == 9007199254740992L"), []);
    assert_eq!(constraints("a == 9007199254740992.0"), []);
    assert_eq!(constraints("a == 1.0e300"), []);
    assert_eq!(
        constraints("a == 9007199254740991L"),
        [("a".to_owned(), vec![int(9_007_199_254_740_991)])]
    );
    assert_eq!(
        constraints("a == 1 || a == 9007199254740993L"),
        [],
        "one unkeyed branch voids the ||"
    );
    assert_eq!(constraints("equals(a, 1, 9007199254740993L)"), []);
}

// ---------------------------------------------------------------------------
// Property tests

/// Values chosen to sit on every boundary the keys care about.
fn interesting_value() -> impl Strategy<Value = Value> {
    let limit = 1i64 << 53;
    prop_oneof![
        prop::sample::select(vec![0, 1, -1, 2, i32::MAX, i32::MIN]).prop_map(Value::Int32),
        prop::sample::select(vec![
            0,
            1,
            -1,
            2,
            limit - 1,
            limit,
            limit + 1,
            -limit,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(Value::Int64),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            -9_007_199_254_740_992.0,
            4_503_599_627_370_495.5,
        ])
        .prop_map(Value::Real64),
        prop::sample::select(vec!["", "x", "y", "X"]).prop_map(Value::from),
        Just(Value::Opaque(vec![1])),
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        any::<f64>().prop_map(Value::Real64),
    ]
}

/// Literals in subscription syntax, matching the interesting values.
const LITERALS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "1L",
    "-1L",
    "0L",
    "9007199254740991L",
    "9007199254740992L",
    "9007199254740993L",
    "1.0",
    "0.0",
    "-0.0",
    "0.5",
    "2.0",
    "9007199254740992.0",
    "2147483647",
    "-2147483647 - 1",
    "\"x\"",
    "\"y\"",
    "\"\"",
];

const NAMES: &[&str] = &["a", "b", "c"];

/// Random expressions from a small grammar rich in equalities.
fn expression() -> impl Strategy<Value = String> {
    let name = prop::sample::select(NAMES);
    let literal = prop::sample::select(LITERALS);
    let leaf = prop_oneof![
        4 => (name.clone(), literal.clone()).prop_map(|(n, l)| format!("{n} == {l}")),
        2 => (literal.clone(), name.clone()).prop_map(|(l, n)| format!("{l} == {n}")),
        2 => (name.clone(), prop::collection::vec(literal.clone(), 1..4))
            .prop_map(|(n, ls)| format!("equals({n}, {})", ls.join(", "))),
        1 => (name.clone(), literal.clone()).prop_map(|(n, l)| format!("{n} != {l}")),
        1 => (name.clone(), literal.clone()).prop_map(|(n, l)| format!("{n} < {l}")),
        1 => (name.clone(), name.clone()).prop_map(|(n, m)| format!("{n} == {m}")),
        1 => name.clone().prop_map(|n| format!("require({n})")),
        1 => name.clone().prop_map(|n| format!("{n} + 1 == 2")),
        1 => Just("1 / 0 == 1".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("({x} && {y})")),
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("({x} || {y})")),
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("({x} ^^ {y})")),
            inner.clone().prop_map(|x| format!("!{x}")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(x, y, z)| format!("{x} && {y} || {z}")),
        ]
    })
}

/// A notification with each of a, b, c present or absent.
fn notification() -> impl Strategy<Value = Attributes> {
    prop::collection::vec(prop::option::of(interesting_value()), 3).prop_map(|values| {
        let mut attrs = Attributes::new();
        for (name, value) in NAMES.iter().zip(values) {
            if let Some(value) = value {
                attrs.insert(*name, value);
            }
        }
        attrs
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Whenever a subscription is true for a notification, every one of
    /// its constraints holds for that notification.
    #[test]
    fn constraints_hold_whenever_the_subscription_is_true(
        expr in expression(),
        notifications in prop::collection::vec(notification(), 1..8),
    ) {
        let Ok(sub) = Subscription::compile(&expr, &Limits::default()) else { return Ok(()) };
        let constraints = sub.constraints();
        for attrs in &notifications {
            if sub.evaluate(attrs) != Truth::True {
                continue;
            }
            for c in &constraints {
                let value = attrs.get(&c.attribute);
                prop_assert!(value.is_some(), "{expr}: true without {} in {attrs:?}", c.attribute);
                let key = value.and_then(|v| IndexKey::of(v.as_ref()));
                prop_assert!(
                    key.as_ref().is_some_and(|k| c.values.contains(k)),
                    "{expr}: true for {attrs:?} but {}'s key {key:?} is not in {:?}", c.attribute, c.values
                );
            }
        }
    }

    /// Two values with keys have equal keys exactly when `==` is true, and
    /// a value without a key is never `==` to one with a key.
    #[test]
    fn index_keys_agree_with_equality(a in interesting_value(), b in interesting_value()) {
        let equal = common::compile("a == b");
        let attrs: Attributes = [("a", a.clone()), ("b", b.clone())].into_iter().collect();
        let is_equal = equal.evaluate(&attrs) == Truth::True;
        match (IndexKey::of(a.as_ref()), IndexKey::of(b.as_ref())) {
            (Some(ka), Some(kb)) => prop_assert_eq!(ka == kb, is_equal, "{:?} vs {:?}", a, b),
            (None, None) => {}
            _ => prop_assert!(!is_equal, "{a:?} == {b:?} but only one has a key"),
        }
    }

    /// A literal's key is the key of the value it denotes: `a == literal`
    /// is true exactly when `a`'s key equals the literal's constraint key.
    #[test]
    fn literal_keys_agree_with_equality(a in interesting_value(), literal in prop::sample::select(LITERALS)) {
        let sub = common::compile(&format!("a == {literal}"));
        let attrs: Attributes = [("a", a.clone())].into_iter().collect();
        let is_equal = sub.evaluate(&attrs) == Truth::True;
        if let [c] = sub.constraints().as_slice() {
            let key = IndexKey::of(a.as_ref());
            prop_assert_eq!(key.is_some_and(|k| c.values.contains(&k)), is_equal, "{:?} == {}", a, literal);
        }
    }
}

#[test]
fn index_key_of_borrowed_and_owned_values_agree() {
    assert_eq!(
        IndexKey::of(ValueRef::String("x")),
        IndexKey::of(Value::from("x").as_ref())
    );
}
