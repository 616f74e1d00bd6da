//! Wall-clock time as whole microseconds since the Unix epoch.
//!
//! Event times travel as int32 `time_sec` / `time_usec` (spec
//! docs/emulab-model.md §4), absolute wall-clock times. Inside the scheduler a
//! due time is one `i64` of microseconds: it orders cheaply in the queue,
//! it cannot overflow for any time an int32 pair can express, and it keeps
//! the microseconds the original dropped from its base time (docs/emulab-model.md §6.4).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds per second.
pub const MICROS_PER_SEC: i64 = 1_000_000;

/// The longest offset a static event may have: ten years. Anything later
/// cannot be an experiment's schedule and would not fit int32 `time_sec`
/// for long anyway.
pub const MAX_OFFSET_SECS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

/// The current wall-clock time in microseconds since the epoch (negative
/// before 1970, which no real clock reports).
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros())
            .map(|us| -us)
            .unwrap_or(i64::MIN),
    }
}

/// `time_sec` / `time_usec` as one microsecond count. `usec` may be out of
/// the 0..1e6 range (`tevc +N.F` could send a negative one): the sum is
/// taken as written, which is what the two fields mean.
pub fn from_sec_usec(sec: i32, usec: i32) -> i64 {
    i64::from(sec) * MICROS_PER_SEC + i64::from(usec)
}

/// Splits a microsecond time into int32 `time_sec` and `time_usec`
/// (0..1e6), or `None` when the seconds do not fit an int32 (after 2038).
pub fn to_sec_usec(micros: i64) -> Option<(i32, i32)> {
    let sec = i32::try_from(micros.div_euclid(MICROS_PER_SEC)).ok()?;
    let usec = i32::try_from(micros.rem_euclid(MICROS_PER_SEC)).ok()?;
    Some((sec, usec))
}

/// A static event's offset in seconds as microseconds, rounded to the
/// nearest microsecond; `None` for a negative, non-finite or absurdly
/// large offset.
pub fn offset_micros(seconds: f64) -> Option<i64> {
    if !seconds.is_finite() || !(0.0..=MAX_OFFSET_SECS).contains(&seconds) {
        return None;
    }
    // In range by the check above, so the cast neither saturates nor wraps.
    Some((seconds * 1e6).round() as i64)
}

/// A duration in microseconds, saturating at `i64::MAX`.
pub fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Formats a microsecond time as `sec.usec` (for log lines that an
/// operator can compare with `time_sec`/`time_usec`).
pub fn format_sec_usec(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(MICROS_PER_SEC),
        micros.rem_euclid(MICROS_PER_SEC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_usec_round_trip() {
        let t = from_sec_usec(1_700_000_000, 123_456);
        assert_eq!(to_sec_usec(t), Some((1_700_000_000, 123_456)));
        assert_eq!(from_sec_usec(10, -250_000), 9_750_000);
        assert_eq!(to_sec_usec(9_750_000), Some((9, 750_000)));
        assert_eq!(to_sec_usec(i64::from(i32::MAX) * MICROS_PER_SEC * 2), None);
        assert_eq!(format_sec_usec(9_750_000), "9.750000");
    }

    #[test]
    fn offsets_keep_microseconds_and_refuse_nonsense() {
        assert_eq!(offset_micros(0.0), Some(0));
        assert_eq!(offset_micros(1.5), Some(1_500_000));
        assert_eq!(offset_micros(0.000_001), Some(1));
        assert_eq!(offset_micros(-1.0), None);
        assert_eq!(offset_micros(f64::NAN), None);
        assert_eq!(offset_micros(f64::INFINITY), None);
        assert_eq!(offset_micros(MAX_OFFSET_SECS * 2.0), None);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_micros() > from_sec_usec(1_577_836_800, 0));
    }
}
