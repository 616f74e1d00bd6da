//! [`Subscription`]: a compiled expression, ready to evaluate.

use std::fmt;
use std::str::FromStr;

use elvin_proto::AttributeLookup;

use crate::compiled::Pred;
use crate::error::{SubscriptionError, codes, excerpt};
use crate::index::{self, Constraint};
use crate::limits::Limits;
use crate::{Truth, parser};

/// A compiled subscription expression.
///
/// Compiling checks and folds the expression once; evaluating it against a
/// notification then takes no allocation (unless the expression uses
/// `fold-case` or `decompose` on a string that changes) and time bounded by
/// the compiled size. A `Subscription` is immutable, `Send` and `Sync`, so a
/// router can share one across threads.
#[derive(Clone, Debug)]
pub struct Subscription {
    root: Pred,
    expression: Box<str>,
    /// Bytes of the distinct compiled `regex` patterns it uses.
    regex_bytes: usize,
}

impl Subscription {
    /// Compiles `expression` under `limits`.
    ///
    /// Fails with a [`SubscriptionError`] whose code, message, column and
    /// token are what the router should put in its Nack: see the crate
    /// documentation for which code each kind of error gets.
    ///
    /// ```
    /// use elvin_sublang::{Limits, Subscription, codes};
    ///
    /// let sub = Subscription::compile(r#"EXPT == "p/e" && SCHEDULER == 0"#, &Limits::default())?;
    /// assert_eq!(sub.expression(), r#"EXPT == "p/e" && SCHEDULER == 0"#);
    ///
    /// let err = Subscription::compile("1 == 1", &Limits::default()).unwrap_err();
    /// assert_eq!(err.code, codes::EXP_IS_TRIVIAL);
    /// # Ok::<(), elvin_sublang::SubscriptionError>(())
    /// ```
    pub fn compile(expression: &str, limits: &Limits) -> Result<Subscription, SubscriptionError> {
        if expression.len() > limits.max_length {
            let message = format!(
                "Subscription expression is {} bytes long; the limit is {} bytes",
                expression.len(),
                limits.max_length
            );
            return Err(SubscriptionError::whole(codes::IMPL_LIMIT, message));
        }
        let (root, regexes) = parser::parse(expression, limits)?;
        let regex_bytes = regexes.iter().map(|r| r.bytes()).sum();
        if let Pred::Const(truth) = root {
            let outcome = match truth {
                Truth::True => "always true",
                Truth::False => "always false",
                Truth::Bottom => "always undefined, so it never matches",
            };
            let message = format!(
                "Expression is constant: {} ({outcome})",
                excerpt(expression.trim())
            );
            return Err(SubscriptionError::whole(codes::EXP_IS_TRIVIAL, message));
        }
        Ok(Subscription {
            root,
            expression: expression.into(),
            regex_bytes,
        })
    }

    /// Heap bytes of the distinct compiled `regex` patterns this
    /// subscription uses (shared with other subscriptions that use the
    /// same pattern), for the router's per-connection budget.
    pub fn regex_bytes(&self) -> usize {
        self.regex_bytes
    }

    /// Evaluates the subscription against a notification's attributes:
    /// true, false, or ⊥ (undefined).
    pub fn evaluate<L: AttributeLookup + ?Sized>(&self, attributes: &L) -> Truth {
        self.root.eval(attributes)
    }

    /// Whether the notification should be delivered: true only when
    /// [`evaluate`](Self::evaluate) is [`Truth::True`]; false and ⊥ both
    /// mean no delivery.
    pub fn matches<L: AttributeLookup + ?Sized>(&self, attributes: &L) -> bool {
        self.evaluate(attributes) == Truth::True
    }

    /// The equality constraints that every matching notification satisfies,
    /// for the router's index (see [`Constraint`] and the crate
    /// documentation for the exact promise). Each attribute appears at most
    /// once. An empty list means "no index information": evaluate always.
    pub fn constraints(&self) -> Vec<Constraint> {
        index::constraints(&self.root)
    }

    /// The expression as the client sent it.
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// Compiles with [`Limits::default`].
impl FromStr for Subscription {
    type Err = SubscriptionError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Subscription::compile(expression, &Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Subscription>();
    }

    #[test]
    fn length_limit_is_checked_first() {
        let limits = Limits {
            max_length: 10,
            ..Limits::default()
        };
        let err = Subscription::compile("a == 1 && b == 2", &limits).unwrap_err();
        assert_eq!(
            (err.code, err.column, err.token.as_str()),
            (codes::IMPL_LIMIT, 0, "")
        );
        assert!(err.message.contains("16 bytes"), "{}", err.message);
        assert!(Subscription::compile("a == 1", &limits).is_ok());
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let sub: Subscription = "a == 1".parse().unwrap();
        assert_eq!(sub.to_string(), "a == 1");
        assert!("a ==".parse::<Subscription>().is_err());
    }
}
