//! Helpers shared by the integration tests: building notifications and
//! compiling or evaluating expressions in one call.

#![allow(dead_code)]

use elvin_proto::{Attributes, AttributesRef, Value, ValueRef};
use elvin_sublang::{Limits, Subscription, SubscriptionError, Truth};

/// A notification from (name, value) pairs.
pub fn notification<const N: usize>(pairs: [(&str, Value); N]) -> Attributes {
    pairs.into_iter().collect()
}

/// Compiles with default limits, panicking with the error if it fails.
pub fn compile(expr: &str) -> Subscription {
    Subscription::compile(expr, &Limits::default())
        .unwrap_or_else(|e| panic!("{expr:?} did not compile: {e}"))
}

/// Evaluates `expr` against `attrs`, checking that the owned and borrowed
/// attribute lists give the same answer.
pub fn eval(expr: &str, attrs: &Attributes) -> Truth {
    let sub = compile(expr);
    let owned = sub.evaluate(attrs);
    let entries: Vec<(&str, ValueRef<'_>)> = attrs.iter().map(|(n, v)| (n, v.as_ref())).collect();
    let borrowed = sub.evaluate(&AttributesRef { entries });
    assert_eq!(
        owned, borrowed,
        "{expr:?}: owned and borrowed lookups disagree"
    );
    assert_eq!(sub.matches(attrs), owned == Truth::True);
    owned
}

/// The error compiling `expr` gives, panicking if it compiles.
pub fn error(expr: &str) -> SubscriptionError {
    match Subscription::compile(expr, &Limits::default()) {
        Ok(_) => panic!("{expr:?} compiled, but an error was expected"),
        Err(e) => e,
    }
}

/// An Emulab-shaped event: the seven address strings, SCHEDULER, and the
/// sender.
pub fn emulab_event(
    expt: &str,
    host: &str,
    objtype: &str,
    objname: &str,
    scheduler: i32,
) -> Attributes {
    notification([
        ("SITE", Value::from("*")),
        ("EXPT", Value::from(expt)),
        ("GROUP", Value::from("*")),
        ("HOST", Value::from(host)),
        ("OBJTYPE", Value::from(objtype)),
        ("OBJNAME", Value::from(objname)),
        ("EVENTTYPE", Value::from("START")),
        ("SCHEDULER", Value::Int32(scheduler)),
        ("___SENDER___", Value::from("10.0.0.254")),
    ])
}
