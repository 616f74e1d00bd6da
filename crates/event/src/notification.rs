//! [`EventNotification`]: one Emulab event, an Elvin attribute list plus a
//! note of which key (if any) it is known to be signed with.
//!
//! # Attributes
//!
//! [`EventNotification::from_tuple`] writes the full catalogue in the
//! original's order:
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `SITE`, `EXPT`, `GROUP`, `HOST`, `OBJTYPE`, `OBJNAME`, `EVENTTYPE` | string | the tuple's field, `"*"` when unset |
//! | `TIMELINE` | string | the tuple's timeline, only when set |
//! | `SCHEDULER` | int32 | the tuple's `scheduler` |
//! | `___SENDER___` | string | the sender's dotted IPv4 address |
//!
//! Later steps may add `ARGS` (string), `time_sec`/`time_usec` (int32, by
//! scheduling) and `__hmac__` (opaque, by signing).
//!
//! `SCHEDULER` takes the tuple's value, as the later original does (its
//! first release always wrote 0 and ignored the tuple). So a tuple built
//! for a scheduler subscription (`scheduler = 1`) also produces requests.
//!
//! Every setter replaces: an attribute name appears at most once, so
//! setting `HOST` twice, or scheduling the same notification twice, never
//! leaves a duplicate behind (the original added `time_sec` again on each
//! schedule).
//!
//! # The signature flag
//!
//! The original kept a per-notification "has a valid MAC" flag so that
//! forwarding a verified notification would not re-sign it. Here the
//! notification remembers *which key* signed or verified it
//! ([`crate::KeyId`]), and **every change clears it**: a handle with a key
//! signs what it sends unless the notification is unchanged since that same
//! key signed or verified it. A modified notification is therefore re-signed
//! by the next keyed send instead of going out with a stale MAC (in the
//! original a forgotten explicit re-sign meant receivers dropped the event).
//! Keyless handles never sign, so a relay forwards the producer's MAC
//! untouched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use elvin_proto::{Attributes, Value};

use crate::auth::{AuthError, EventKey, KeyId};
use crate::constants::{
    ATTR_ARGS, ATTR_EVENTTYPE, ATTR_EXPT, ATTR_GROUP, ATTR_HMAC, ATTR_HOST, ATTR_OBJNAME,
    ATTR_OBJTYPE, ATTR_SCHEDULER, ATTR_SENDER, ATTR_SITE, ATTR_TIME_SEC, ATTR_TIME_USEC,
    ATTR_TIMELINE,
};
use crate::tuple::AddressTuple;

/// What a producer sends for an unset tuple field ("ALL").
pub const ALL: &str = "*";

/// An Emulab event: its attributes and its signature state.
///
/// Cloning copies the attributes and the signature state, like the
/// original's clone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventNotification {
    attributes: Attributes,
    signed_with: Option<KeyId>,
}

/// A firing time as carried by `time_sec`/`time_usec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiringTime {
    /// Seconds since the Unix epoch.
    pub sec: i32,
    /// Microseconds, 0 to 999 999 when built by this library.
    pub usec: i32,
}

/// A time that cannot be carried in the int32 `time_sec`/`time_usec` pair.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} cannot be sent as an event time: time_sec is a 32-bit count of seconds since 1970, so times must fall between 1970-01-01 and 2038-01-19 UTC"
)]
pub struct TimeOutOfRange {
    /// The time, as text.
    pub what: String,
}

impl FiringTime {
    /// Splits a system time into seconds and microseconds.
    pub fn from_system_time(when: SystemTime) -> Result<FiringTime, TimeOutOfRange> {
        let since_epoch = when
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TimeOutOfRange {
                what: format!("{when:?} (before 1970)"),
            })?;
        let sec = i32::try_from(since_epoch.as_secs()).map_err(|_| TimeOutOfRange {
            what: format!("{} seconds after 1970", since_epoch.as_secs()),
        })?;
        // subsec_micros is below 1,000,000, which fits an i32.
        let usec = i32::try_from(since_epoch.subsec_micros()).unwrap_or(0);
        Ok(FiringTime { sec, usec })
    }

    /// The time as a system time, or `None` when negative or when the
    /// microseconds are outside 0..1,000,000.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let sec = u64::try_from(self.sec).ok()?;
        let usec = u64::try_from(self.usec).ok().filter(|u| *u < 1_000_000)?;
        UNIX_EPOCH.checked_add(Duration::from_secs(sec) + Duration::from_micros(usec))
    }
}

impl EventNotification {
    /// A notification with no attributes at all. It carries no `SCHEDULER`,
    /// so it matches no tuple subscription until one is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The notification a producer sends for `tuple` (see the
    /// [module docs](self) for the attributes). `sender` is the
    /// `___SENDER___` value; a registered handle's
    /// [`crate::EventHandle::new_notification`] fills it in.
    pub fn from_tuple(tuple: &AddressTuple, sender: &str) -> Self {
        let mut attributes = Attributes::with_capacity(13);
        for (name, value) in tuple.fields() {
            if name == ATTR_TIMELINE {
                if let Some(timeline) = value {
                    attributes.insert(name, timeline);
                }
                continue;
            }
            attributes.insert(name, value.unwrap_or(ALL));
        }
        attributes.insert(ATTR_SCHEDULER, tuple.scheduler);
        attributes.insert(ATTR_SENDER, sender);
        EventNotification {
            attributes,
            signed_with: None,
        }
    }

    /// Wraps received or hand-built attributes. The result is not
    /// considered signed by any key.
    pub fn from_attributes(attributes: Attributes) -> Self {
        EventNotification {
            attributes,
            signed_with: None,
        }
    }

    /// Wraps attributes that `key` has just verified.
    pub(crate) fn verified(attributes: Attributes, key: KeyId) -> Self {
        EventNotification {
            attributes,
            signed_with: Some(key),
        }
    }

    /// The attributes.
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// The attributes, taken out.
    pub fn into_attributes(self) -> Attributes {
        self.attributes
    }

    /// True when the notification is unchanged since a key signed or
    /// verified it (the original's `has_hmac`).
    pub fn has_hmac(&self) -> bool {
        self.signed_with.is_some()
    }

    /// True when the notification is unchanged since `key` signed or
    /// verified it, so sending it with `key` needs no new signature.
    pub fn is_signed_with(&self, key: &EventKey) -> bool {
        self.signed_with == Some(key.id())
    }

    /// The `__hmac__` bytes, if present and opaque.
    pub fn hmac(&self) -> Option<&[u8]> {
        self.get_opaque(ATTR_HMAC)
    }

    /// Signs with `key`: computes the MAC over every other attribute and
    /// stores it as `__hmac__`, replacing any earlier one.
    pub fn insert_hmac(&mut self, key: &EventKey) {
        let mac = key.sign(&self.attributes);
        self.attributes.insert(ATTR_HMAC, mac.to_vec());
        self.signed_with = Some(key.id());
    }

    /// Checks `__hmac__` against `key` (see [`EventKey::verify`]).
    pub fn verify(&self, key: &EventKey) -> Result<(), AuthError> {
        key.verify(&self.attributes)
    }

    /// The value of `name`, of any type.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }

    /// The string value of `name`; `None` if absent or not a string.
    pub fn get_string(&self, name: &str) -> Option<&str> {
        self.attributes.get_str(name)
    }

    /// The int32 value of `name`; `None` if absent or not an int32.
    pub fn get_int32(&self, name: &str) -> Option<i32> {
        self.attributes.get_i32(name)
    }

    /// The int64 value of `name`; `None` if absent or not an int64.
    pub fn get_int64(&self, name: &str) -> Option<i64> {
        match self.attributes.get(name) {
            Some(Value::Int64(v)) => Some(*v),
            _ => None,
        }
    }

    /// The real64 value of `name`; `None` if absent or not a real64.
    pub fn get_real64(&self, name: &str) -> Option<f64> {
        match self.attributes.get(name) {
            Some(Value::Real64(v)) => Some(*v),
            _ => None,
        }
    }

    /// The opaque value of `name`; `None` if absent or not opaque.
    pub fn get_opaque(&self, name: &str) -> Option<&[u8]> {
        self.attributes.get(name).and_then(Value::as_bytes)
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.attributes.contains(name)
    }

    /// Sets `name` to `value` (any of the five types), replacing any
    /// earlier value of any type. Returns the earlier value.
    pub fn put(&mut self, name: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.signed_with = None;
        self.attributes.insert(name, value)
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let removed = self.attributes.remove(name);
        if removed.is_some() {
            self.signed_with = None;
        }
        removed
    }

    /// `SITE`.
    pub fn site(&self) -> Option<&str> {
        self.get_string(ATTR_SITE)
    }
    /// `EXPT` (`pid/eid`).
    pub fn expt(&self) -> Option<&str> {
        self.get_string(ATTR_EXPT)
    }
    /// `GROUP`.
    pub fn group(&self) -> Option<&str> {
        self.get_string(ATTR_GROUP)
    }
    /// `HOST`.
    pub fn host(&self) -> Option<&str> {
        self.get_string(ATTR_HOST)
    }
    /// `OBJTYPE`.
    pub fn objtype(&self) -> Option<&str> {
        self.get_string(ATTR_OBJTYPE)
    }
    /// `OBJNAME`.
    pub fn objname(&self) -> Option<&str> {
        self.get_string(ATTR_OBJNAME)
    }
    /// `EVENTTYPE`.
    pub fn eventtype(&self) -> Option<&str> {
        self.get_string(ATTR_EVENTTYPE)
    }
    /// `TIMELINE`.
    pub fn timeline(&self) -> Option<&str> {
        self.get_string(ATTR_TIMELINE)
    }
    /// `ARGS`.
    pub fn arguments(&self) -> Option<&str> {
        self.get_string(ATTR_ARGS)
    }
    /// `___SENDER___`.
    pub fn sender(&self) -> Option<&str> {
        self.get_string(ATTR_SENDER)
    }
    /// `SCHEDULER`.
    pub fn scheduler(&self) -> Option<i32> {
        self.get_int32(ATTR_SCHEDULER)
    }

    /// `time_sec`/`time_usec`, when both are present as int32.
    pub fn firing_time(&self) -> Option<FiringTime> {
        Some(FiringTime {
            sec: self.get_int32(ATTR_TIME_SEC)?,
            usec: self.get_int32(ATTR_TIME_USEC)?,
        })
    }

    /// Sets `SITE`.
    pub fn set_site(&mut self, value: impl Into<String>) {
        self.put(ATTR_SITE, value.into());
    }
    /// Sets `EXPT`.
    pub fn set_expt(&mut self, value: impl Into<String>) {
        self.put(ATTR_EXPT, value.into());
    }
    /// Sets `GROUP`.
    pub fn set_group(&mut self, value: impl Into<String>) {
        self.put(ATTR_GROUP, value.into());
    }
    /// Sets `HOST`.
    pub fn set_host(&mut self, value: impl Into<String>) {
        self.put(ATTR_HOST, value.into());
    }
    /// Sets `OBJTYPE`.
    pub fn set_objtype(&mut self, value: impl Into<String>) {
        self.put(ATTR_OBJTYPE, value.into());
    }
    /// Sets `OBJNAME`.
    pub fn set_objname(&mut self, value: impl Into<String>) {
        self.put(ATTR_OBJNAME, value.into());
    }
    /// Sets `EVENTTYPE`.
    pub fn set_eventtype(&mut self, value: impl Into<String>) {
        self.put(ATTR_EVENTTYPE, value.into());
    }
    /// Sets `TIMELINE`.
    pub fn set_timeline(&mut self, value: impl Into<String>) {
        self.put(ATTR_TIMELINE, value.into());
    }
    /// Sets `ARGS`.
    pub fn set_arguments(&mut self, value: impl Into<String>) {
        self.put(ATTR_ARGS, value.into());
    }
    /// Sets `___SENDER___`.
    pub fn set_sender(&mut self, value: impl Into<String>) {
        self.put(ATTR_SENDER, value.into());
    }
    /// Sets `SCHEDULER`.
    pub fn set_scheduler(&mut self, value: i32) {
        self.put(ATTR_SCHEDULER, value);
    }
    /// Sets `time_sec` and `time_usec`, replacing earlier values.
    pub fn set_firing_time(&mut self, when: FiringTime) {
        self.put(ATTR_TIME_SEC, when.sec);
        self.put(ATTR_TIME_USEC, when.usec);
    }

    /// Removes `HOST`.
    pub fn clear_host(&mut self) {
        self.remove(ATTR_HOST);
    }
    /// Removes `OBJTYPE`.
    pub fn clear_objtype(&mut self) {
        self.remove(ATTR_OBJTYPE);
    }
    /// Removes `OBJNAME`.
    pub fn clear_objname(&mut self) {
        self.remove(ATTR_OBJNAME);
    }
    /// Removes `ARGS`.
    pub fn clear_arguments(&mut self) {
        self.remove(ATTR_ARGS);
    }
    /// Removes `TIMELINE`.
    pub fn clear_timeline(&mut self) {
        self.remove(ATTR_TIMELINE);
    }

    /// Turns the notification into a request to the scheduler for `when`:
    /// `SCHEDULER` = 1 and `time_sec`/`time_usec`, replacing earlier
    /// values. (Sending it is [`crate::EventHandle::schedule`]'s job.)
    pub fn make_schedule_request(&mut self, when: FiringTime) {
        self.set_scheduler(1);
        self.set_firing_time(when);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &EventNotification) -> Vec<&str> {
        n.attributes().iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn producer_turns_unset_fields_into_star_in_catalogue_order() {
        let tuple = AddressTuple::new()
            .expt("p/e")
            .objname("cbr0")
            .eventtype("START")
            .scheduler(1);
        let n = EventNotification::from_tuple(&tuple, "10.0.0.1");
        assert_eq!(
            names(&n),
            [
                "SITE",
                "EXPT",
                "GROUP",
                "HOST",
                "OBJTYPE",
                "OBJNAME",
                "EVENTTYPE",
                "SCHEDULER",
                "___SENDER___"
            ]
        );
        assert_eq!(n.site(), Some("*"));
        assert_eq!(n.expt(), Some("p/e"));
        assert_eq!(n.group(), Some("*"));
        assert_eq!(n.host(), Some("*"));
        assert_eq!(n.objtype(), Some("*"));
        assert_eq!(n.objname(), Some("cbr0"));
        assert_eq!(n.eventtype(), Some("START"));
        assert_eq!(n.scheduler(), Some(1));
        assert_eq!(n.sender(), Some("10.0.0.1"));
        assert_eq!(n.timeline(), None);
        assert_eq!(n.arguments(), None);
        assert!(!n.has_hmac());
    }

    #[test]
    fn timeline_only_when_set_and_commas_not_special() {
        let tuple = AddressTuple::new().timeline("tl").host("a,b");
        let n = EventNotification::from_tuple(&tuple, "1.2.3.4");
        assert_eq!(n.timeline(), Some("tl"));
        assert_eq!(n.host(), Some("a,b"));
        assert_eq!(names(&n)[7], "TIMELINE");
    }

    #[test]
    fn setters_replace_and_clear() {
        let mut n = EventNotification::from_tuple(&AddressTuple::new(), "1.2.3.4");
        let count = n.attributes().len();
        n.set_host("10.1.1.2");
        n.set_host("10.1.1.3");
        n.set_objtype("LINK");
        n.set_objname("link0");
        n.set_arguments("BANDWIDTH=100 ");
        assert_eq!(n.attributes().len(), count + 1);
        assert_eq!(n.host(), Some("10.1.1.3"));
        assert_eq!(n.arguments(), Some("BANDWIDTH=100 "));
        n.clear_host();
        n.clear_objtype();
        n.clear_objname();
        n.clear_arguments();
        assert_eq!(n.host(), None);
        assert_eq!(n.objtype(), None);
        assert_eq!(n.objname(), None);
        assert_eq!(n.arguments(), None);
        assert_eq!(n.attributes().len(), count - 3);
    }

    #[test]
    fn typed_getters_check_the_type() {
        let mut n = EventNotification::new();
        n.put("S", "text");
        n.put("I", 7);
        n.put("L", 8i64);
        n.put("R", 1.5);
        n.put("O", vec![1u8, 2]);
        assert_eq!(n.get_string("S"), Some("text"));
        assert_eq!(n.get_int32("S"), None);
        assert_eq!(n.get_int32("I"), Some(7));
        assert_eq!(n.get_int64("I"), None);
        assert_eq!(n.get_int64("L"), Some(8));
        assert_eq!(n.get_real64("R"), Some(1.5));
        assert_eq!(n.get_opaque("O"), Some(&[1u8, 2][..]));
        assert_eq!(n.get_opaque("S"), None);
        assert_eq!(n.get_string("missing"), None);
        // Replacing changes the type and never duplicates.
        assert_eq!(n.put("S", 3), Some(Value::from("text")));
        assert_eq!(n.get_int32("S"), Some(3));
        assert_eq!(n.attributes().len(), 5);
        assert_eq!(n.remove("S"), Some(Value::Int32(3)));
        assert_eq!(n.remove("S"), None);
    }

    #[test]
    fn scheduling_twice_replaces_the_time() {
        let mut n = EventNotification::from_tuple(&AddressTuple::new(), "1.2.3.4");
        n.make_schedule_request(FiringTime { sec: 10, usec: 5 });
        n.make_schedule_request(FiringTime { sec: 20, usec: 6 });
        assert_eq!(n.scheduler(), Some(1));
        assert_eq!(n.firing_time(), Some(FiringTime { sec: 20, usec: 6 }));
        let count = n
            .attributes()
            .iter()
            .filter(|(name, _)| *name == "time_sec" || *name == "SCHEDULER")
            .count();
        assert_eq!(count, 2);
    }

    #[test]
    fn firing_time_conversions() {
        let when = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let t = FiringTime::from_system_time(when).unwrap();
        assert_eq!(
            t,
            FiringTime {
                sec: 1_700_000_000,
                usec: 123_456
            }
        );
        assert_eq!(
            t.to_system_time(),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000))
        );
        assert!(FiringTime::from_system_time(UNIX_EPOCH - Duration::from_secs(1)).is_err());
        let error =
            FiringTime::from_system_time(UNIX_EPOCH + Duration::from_secs(1 << 31)).unwrap_err();
        assert!(error.to_string().contains("2038"));
        assert_eq!(FiringTime { sec: 1, usec: -1 }.to_system_time(), None);
        assert_eq!(
            FiringTime {
                sec: 1,
                usec: 1_000_000
            }
            .to_system_time(),
            None
        );
    }

    #[test]
    fn changes_clear_the_signature_flag() {
        let key = EventKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let other = EventKey::from_bytes(b"another key".to_vec()).unwrap();
        let mut n = EventNotification::from_tuple(&AddressTuple::new(), "1.2.3.4");
        n.insert_hmac(&key);
        assert!(n.has_hmac());
        assert!(n.is_signed_with(&key));
        assert!(!n.is_signed_with(&other));
        assert!(n.verify(&key).is_ok());
        let copy = n.clone();
        assert!(copy.is_signed_with(&key));
        n.set_objname("x");
        assert!(!n.has_hmac());
        assert!(n.verify(&key).is_err());
        n.insert_hmac(&key);
        assert!(n.verify(&key).is_ok());
        // Removing an absent attribute changes nothing.
        n.remove("absent");
        assert!(n.has_hmac());
        // Exactly one __hmac__ after re-signing.
        n.insert_hmac(&key);
        assert_eq!(
            n.attributes()
                .iter()
                .filter(|(name, _)| *name == "__hmac__")
                .count(),
            1
        );
    }
}
