//! Address tuples: who an event is for, and what a subscriber wants.
//!
//! One struct serves both directions, as in the original library, because
//! producers and subscribers must agree on the same seven routing fields.
//! The two directions read an unset field differently:
//!
//! | field value | producer ([`crate::EventNotification::from_tuple`]) | subscriber ([`AddressTuple::subscription_expression`]) |
//! |---|---|---|
//! | `None` ("ANY") | sent as the string `"*"` | no clause: matches anything |
//! | `Some("*")` ("ALL") | sent as `"*"`: for everyone | the literal `*` only |
//! | `Some("a,b c")` | sent as the single string `a,b c` | `a` or `b` or `c` |
//!
//! There is no wildcard matching: a subscriber that wants both broadcast
//! and directed events lists both (`"*,10.1.1.2"`).
//!
//! # The expression
//!
//! [`AddressTuple::subscription_expression`] writes the Elvin expression
//! byte for byte as the original library did, so expressions can be
//! compared with the original's in tests and logs:
//!
//! ```text
//!  ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.1.1.2" ) && SCHEDULER == 0
//! ```
//!
//! (with a leading and a trailing space). Fields come in the fixed order
//! SITE, EXPT, GROUP, HOST, OBJTYPE, OBJNAME, EVENTTYPE, TIMELINE; each set
//! field's value is split on spaces and commas (empty pieces skipped) into
//! one parenthesised `||` group; groups are joined with `&&`; and
//! ` SCHEDULER == N ` always ends the expression.
//!
//! Where the original produced broken or wider expressions, this one is
//! safe by construction:
//!
//! - a `"` or `\` in a value is escaped with a backslash, so a value can
//!   neither end its string literal early nor add clauses: the value
//!   `x" || EXPT == "y` is split into the literals `x"`, `||`, `EXPT`,
//!   `==` and `"y`, each compared for equality;
//! - an empty value (`Some("")`, or only separators) is an error
//!   ([`ExpressionError::EmptyValue`]) instead of the invalid `()`;
//! - an expression longer than [`MAX_EXPRESSION_LENGTH`] bytes is an error
//!   ([`ExpressionError::TooLong`]) instead of a truncated one.

use std::fmt::Write as _;

use crate::constants::{
    ATTR_EVENTTYPE, ATTR_EXPT, ATTR_GROUP, ATTR_HOST, ATTR_OBJNAME, ATTR_OBJTYPE, ATTR_SITE,
    ATTR_TIMELINE,
};

/// The longest subscription expression built from a tuple, in bytes.
///
/// 8192 is the later original's buffer size (raised from 1024 so a node
/// could run dozens of program agents). The router has its own limit
/// (`Subscription.Max-Length`; `eventd` allows 2048 by default and its
/// configuration can raise it), which refuses longer expressions with a
/// Nack when subscribing.
pub const MAX_EXPRESSION_LENGTH: usize = 8192;

/// Where an event goes (producer) or what events to receive (subscriber).
///
/// See the [module docs](self) for how `None` and `"*"` differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddressTuple {
    /// `SITE`: which Emulab site (in practice `*`).
    pub site: Option<String>,
    /// `EXPT`: the experiment, `pid/eid`.
    pub expt: Option<String>,
    /// `GROUP`: a user-defined node group.
    pub group: Option<String>,
    /// `HOST`: the target node's control IPv4 address, or `*`.
    pub host: Option<String>,
    /// `OBJTYPE`: the kind of object (`LINK`, `PROGRAM`, ...).
    pub objtype: Option<String>,
    /// `OBJNAME`: the object's name.
    pub objname: Option<String>,
    /// `EVENTTYPE`: what happens (`START`, `STOP`, ...).
    pub eventtype: Option<String>,
    /// `TIMELINE`: the timeline (a later addition to the original).
    ///
    /// Unlike the other fields, a producer whose `timeline` is `None`
    /// sends no `TIMELINE` attribute at all, so plain events carry exactly
    /// the original attribute set. A subscriber's `None` adds no clause, as
    /// for every field.
    pub timeline: Option<String>,
    /// `SCHEDULER`: 0 for events to act on now, 1 for requests to the
    /// experiment's scheduler. Producers send it as the `SCHEDULER`
    /// attribute; subscriptions always require it.
    pub scheduler: i32,
}

/// Why no subscription expression could be built from a tuple.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// A field was set but held no value once split on spaces and commas.
    #[error(
        "the {field} value {value:?} is empty: give at least one value, or leave the field unset to match any {field}"
    )]
    EmptyValue {
        /// The attribute name (`HOST`, ...).
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// The expression would be longer than [`MAX_EXPRESSION_LENGTH`].
    #[error(
        "the subscription expression would be {length} bytes, over the limit of {limit}: list fewer values or split the subscription"
    )]
    TooLong {
        /// Length the expression reached before building stopped (at least
        /// `limit + 1`).
        length: usize,
        /// The limit, [`MAX_EXPRESSION_LENGTH`].
        limit: usize,
    },
}

impl AddressTuple {
    /// A tuple with every field unset (ANY) and `scheduler` 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `SITE`.
    pub fn site(mut self, value: impl Into<String>) -> Self {
        self.site = Some(value.into());
        self
    }

    /// Sets `EXPT` (`pid/eid`).
    pub fn expt(mut self, value: impl Into<String>) -> Self {
        self.expt = Some(value.into());
        self
    }

    /// Sets `GROUP`.
    pub fn group(mut self, value: impl Into<String>) -> Self {
        self.group = Some(value.into());
        self
    }

    /// Sets `HOST`.
    pub fn host(mut self, value: impl Into<String>) -> Self {
        self.host = Some(value.into());
        self
    }

    /// Sets `OBJTYPE`.
    pub fn objtype(mut self, value: impl Into<String>) -> Self {
        self.objtype = Some(value.into());
        self
    }

    /// Sets `OBJNAME`.
    pub fn objname(mut self, value: impl Into<String>) -> Self {
        self.objname = Some(value.into());
        self
    }

    /// Sets `EVENTTYPE`.
    pub fn eventtype(mut self, value: impl Into<String>) -> Self {
        self.eventtype = Some(value.into());
        self
    }

    /// Sets `TIMELINE`.
    pub fn timeline(mut self, value: impl Into<String>) -> Self {
        self.timeline = Some(value.into());
        self
    }

    /// Sets `SCHEDULER`.
    pub fn scheduler(mut self, value: i32) -> Self {
        self.scheduler = value;
        self
    }

    /// The routing fields with their attribute names, in expression order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 8] {
        [
            (ATTR_SITE, self.site.as_deref()),
            (ATTR_EXPT, self.expt.as_deref()),
            (ATTR_GROUP, self.group.as_deref()),
            (ATTR_HOST, self.host.as_deref()),
            (ATTR_OBJTYPE, self.objtype.as_deref()),
            (ATTR_OBJNAME, self.objname.as_deref()),
            (ATTR_EVENTTYPE, self.eventtype.as_deref()),
            (ATTR_TIMELINE, self.timeline.as_deref()),
        ]
    }

    /// The Elvin subscription expression for this tuple (see the
    /// [module docs](self) for the exact form and the safety rules).
    ///
    /// ```
    /// use tbevents_event::AddressTuple;
    /// let tuple = AddressTuple::new().expt("p/e").host("*,10.1.1.2");
    /// assert_eq!(
    ///     tuple.subscription_expression().unwrap(),
    ///     r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.1.1.2" ) && SCHEDULER == 0 "#
    /// );
    /// ```
    pub fn subscription_expression(&self) -> Result<String, ExpressionError> {
        let mut expression = String::new();
        let mut first_group = true;
        for (field, value) in self.fields() {
            let Some(value) = value else { continue };
            let mut terms = split_values(value).peekable();
            if terms.peek().is_none() {
                return Err(ExpressionError::EmptyValue {
                    field,
                    value: value.to_owned(),
                });
            }
            if !first_group {
                expression.push_str("&&");
            }
            first_group = false;
            expression.push_str(" (");
            for (index, term) in terms.enumerate() {
                if index > 0 {
                    expression.push_str("||");
                }
                // Refuse an oversized value before copying it: escaping
                // only ever lengthens it.
                let at_least = expression.len() + field.len() + term.len() + 7;
                if at_least > MAX_EXPRESSION_LENGTH {
                    return Err(ExpressionError::TooLong {
                        length: at_least,
                        limit: MAX_EXPRESSION_LENGTH,
                    });
                }
                expression.push(' ');
                expression.push_str(field);
                expression.push_str(" == \"");
                push_escaped(&mut expression, term);
                expression.push_str("\" ");
                check_length(&expression)?;
            }
            expression.push_str(") ");
        }
        if !first_group {
            expression.push_str("&&");
        }
        // Writing to a String cannot fail.
        let _ = write!(expression, " SCHEDULER == {} ", self.scheduler);
        check_length(&expression)?;
        Ok(expression)
    }
}

/// The non-empty pieces of a subscriber's field value, split on spaces and
/// commas.
pub fn split_values(value: &str) -> impl Iterator<Item = &str> {
    value.split([' ', ',']).filter(|piece| !piece.is_empty())
}

/// Appends `value` as the body of a double-quoted Elvin string literal: a
/// backslash makes the next character literal, so `"` and `\` are the only
/// characters that need one.
fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

fn check_length(expression: &str) -> Result<(), ExpressionError> {
    if expression.len() > MAX_EXPRESSION_LENGTH {
        Err(ExpressionError::TooLong {
            length: expression.len(),
            limit: MAX_EXPRESSION_LENGTH,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original library's examples, byte for byte.
    #[test]
    fn specification_table() {
        let cases = [
            (AddressTuple::new(), " SCHEDULER == 0 "),
            (
                AddressTuple::new().host("*").objtype("TBEXAMPLE"),
                r#" ( HOST == "*" ) && ( OBJTYPE == "TBEXAMPLE" ) && SCHEDULER == 0 "#,
            ),
            (
                AddressTuple::new().expt("p/e").host("*,10.1.1.2"),
                r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.1.1.2" ) && SCHEDULER == 0 "#,
            ),
            (
                AddressTuple::new().expt("p/e").scheduler(1),
                r#" ( EXPT == "p/e" ) && SCHEDULER == 1 "#,
            ),
            (
                AddressTuple::new()
                    .expt("p/e")
                    .objtype("PROGRAM")
                    .objname("a,b"),
                r#" ( EXPT == "p/e" ) && ( OBJTYPE == "PROGRAM" ) && ( OBJNAME == "a" || OBJNAME == "b" ) && SCHEDULER == 0 "#,
            ),
        ];
        for (tuple, expected) in cases {
            assert_eq!(
                tuple.subscription_expression().unwrap(),
                expected,
                "{tuple:?}"
            );
        }
    }

    #[test]
    fn every_field_in_fixed_order_with_timeline_last() {
        let tuple = AddressTuple::new()
            .timeline("tl")
            .eventtype("START")
            .objname("o")
            .objtype("T")
            .host("h")
            .group("g")
            .expt("p/e")
            .site("s")
            .scheduler(-3);
        assert_eq!(
            tuple.subscription_expression().unwrap(),
            r#" ( SITE == "s" ) && ( EXPT == "p/e" ) && ( GROUP == "g" ) && ( HOST == "h" ) && ( OBJTYPE == "T" ) && ( OBJNAME == "o" ) && ( EVENTTYPE == "START" ) && ( TIMELINE == "tl" ) && SCHEDULER == -3 "#
        );
    }

    #[test]
    fn separators_mix_and_repeat() {
        let tuple = AddressTuple::new().host(" ,a,, b ,c ");
        assert_eq!(
            tuple.subscription_expression().unwrap(),
            r#" ( HOST == "a" || HOST == "b" || HOST == "c" ) && SCHEDULER == 0 "#
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let tuple = AddressTuple::new().objname(r#"x" || EXPT == "y"#);
        assert_eq!(
            tuple.subscription_expression().unwrap(),
            r#" ( OBJNAME == "x\"" || OBJNAME == "||" || OBJNAME == "EXPT" || OBJNAME == "==" || OBJNAME == "\"y" ) && SCHEDULER == 0 "#
        );
        let tuple = AddressTuple::new().objname(r"a\b\");
        assert_eq!(
            tuple.subscription_expression().unwrap(),
            r#" ( OBJNAME == "a\\b\\" ) && SCHEDULER == 0 "#
        );
    }

    #[test]
    fn empty_values_are_errors() {
        for value in ["", " ", ",", " , ,"] {
            let error = AddressTuple::new()
                .expt("p/e")
                .host(value)
                .subscription_expression()
                .unwrap_err();
            assert_eq!(
                error,
                ExpressionError::EmptyValue {
                    field: "HOST",
                    value: value.to_owned()
                }
            );
            assert!(error.to_string().contains("leave the field unset"));
        }
    }

    #[test]
    fn length_cap() {
        // Each term ` HOST == "vvvv" ` is 16 bytes plus `||`.
        let many: Vec<String> = (0..2000).map(|i| format!("{i:04}")).collect();
        let error = AddressTuple::new()
            .host(many.join(","))
            .subscription_expression()
            .unwrap_err();
        match error {
            ExpressionError::TooLong { length, limit } => {
                assert_eq!(limit, MAX_EXPRESSION_LENGTH);
                assert!(length > limit && length < limit + 64, "{length}");
            }
            other => panic!("{other:?}"),
        }
        // One huge value is refused without building it all.
        let error = AddressTuple::new()
            .host("x".repeat(100_000))
            .subscription_expression()
            .unwrap_err();
        assert!(matches!(error, ExpressionError::TooLong { .. }));
        // Just under the cap is fine.
        let fits: Vec<String> = (0..400).map(|i| format!("{i:04}")).collect();
        let expression = AddressTuple::new()
            .host(fits.join(","))
            .subscription_expression()
            .unwrap();
        assert!(expression.len() <= MAX_EXPRESSION_LENGTH);
    }

    #[test]
    fn star_is_a_plain_literal_for_subscribers() {
        let expression = AddressTuple::new()
            .host("*")
            .subscription_expression()
            .unwrap();
        assert_eq!(expression, r#" ( HOST == "*" ) && SCHEDULER == 0 "#);
    }
}
