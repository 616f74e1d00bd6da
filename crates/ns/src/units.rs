//! Reading the quantities NS files write: bandwidths, delays, loss rates,
//! event times and the small numeric parameters of queues and CBR sources.
//!
//! Bandwidth follows Emulab's `parse_bw` exactly (docs/emulab-model.md §9): a number and a
//! unit, `b`/`bps` (bits, divided by 1000), `k`/`kb`/`kbps`, `M`/`Mb`/`Mbps`
//! (×1000), `G`/`Gb`/`Gbps` (×1e6); no unit means bits; the result is whole
//! kbit/s (fractions dropped) and anything under 10 kbit/s is refused. Units
//! are case-sensitive, as there: `m` is not `M`.
//!
//! Delays are ours to define (Emulab handed the text to `ns`): a
//! non-negative number followed by `ms`, `s`, or nothing, where a plain
//! number means milliseconds, because that is the unit every delay in an
//! Emulab experiment is stored and shaped in.
//!
//! Event times are plain seconds matching `^[0-9]+(\.[0-9]+)?$` or
//! `^\.[0-9]+$`, exactly as the original accepted.

use crate::error::{KindResult, NsErrorKind};

/// Largest bandwidth accepted, in kbit/s: the range of Emulab's
/// `virt_lans.bandwidth` column (`int unsigned`).
pub(crate) const MAX_BANDWIDTH_KBPS: u64 = u32::MAX as u64;

/// Smallest bandwidth accepted, in kbit/s (Emulab's `parse_bw` refuses less).
pub(crate) const MIN_BANDWIDTH_KBPS: u64 = 10;

/// Splits `text` into a leading unsigned decimal number (digits, optional
/// fraction, optional exponent) and the rest. `None` when no digits lead.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let bytes = text.as_bytes();
    let mut end = 0;
    let mut digits = 0;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
        digits += 1;
    }
    if bytes.get(end) == Some(&b'.') {
        end += 1;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp_end = end + 1;
        if matches!(bytes.get(exp_end), Some(b'+' | b'-')) {
            exp_end += 1;
        }
        let exp_digits_start = exp_end;
        while bytes.get(exp_end).is_some_and(u8::is_ascii_digit) {
            exp_end += 1;
        }
        if exp_end > exp_digits_start {
            end = exp_end;
        }
    }
    let (number, rest) = text.split_at(end);
    let value = number.parse::<f64>().ok()?;
    value.is_finite().then_some((value, rest))
}

/// Emulab's `parse_bw`: bandwidth text to whole kbit/s.
pub(crate) fn parse_bw(spec: &str) -> KindResult<u64> {
    let invalid = |reason: &str| NsErrorKind::InvalidBandwidth {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (value, unit) = split_number(spec.trim())
        .ok_or_else(|| invalid("it must be a number with an optional unit, such as 100Mb"))?;
    let kbps = match unit {
        "" | "b" | "bps" => value / 1000.0,
        "k" | "kb" | "kbps" => value,
        "M" | "Mb" | "Mbps" => value * 1000.0,
        "G" | "Gb" | "Gbps" => value * 1_000_000.0,
        _ => {
            return Err(invalid(
                "unknown unit; use b, bps, k, kb, kbps, M, Mb, Mbps, G, Gb or Gbps (case matters)",
            ));
        }
    };
    if !kbps.is_finite() || kbps > MAX_BANDWIDTH_KBPS as f64 {
        return Err(invalid("it is larger than 4294967295 kbit/s"));
    }
    // `as` truncates toward zero, like Tcl's int(); the value is finite,
    // non-negative and in range, so the conversion is exact in its integer part.
    let whole = kbps.trunc() as u64;
    if whole < MIN_BANDWIDTH_KBPS {
        return Err(invalid("it is below the 10 kbit/s minimum"));
    }
    Ok(whole)
}

/// A delay in milliseconds: `10ms`, `0.5ms`, `1s`, or a plain number (ms).
pub(crate) fn parse_delay(spec: &str) -> KindResult<f64> {
    let invalid = || NsErrorKind::InvalidDelay(spec.to_string());
    let (value, unit) = split_number(spec.trim()).ok_or_else(invalid)?;
    let ms = match unit {
        "" | "ms" => value,
        "s" => value * 1000.0,
        _ => return Err(invalid()),
    };
    if ms.is_finite() {
        Ok(ms)
    } else {
        Err(invalid())
    }
}

/// A loss rate: a number from 0 to 1 inclusive.
pub(crate) fn parse_loss(spec: &str) -> KindResult<f64> {
    let invalid = || NsErrorKind::InvalidLossRate(spec.to_string());
    let (value, rest) = split_number(spec.trim()).ok_or_else(invalid)?;
    if !rest.is_empty() || !(0.0..=1.0).contains(&value) {
        return Err(invalid());
    }
    Ok(value)
}

/// A `$ns at` time: plain seconds in the original's two accepted forms.
pub(crate) fn parse_time(spec: &str) -> KindResult<f64> {
    let invalid = || NsErrorKind::InvalidTime(spec.to_string());
    let (whole, fraction) = match spec.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (spec, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = match fraction {
        None => all_digits(whole),
        Some(fraction) => (whole.is_empty() || all_digits(whole)) && all_digits(fraction),
    };
    if !well_formed {
        return Err(invalid());
    }
    let value: f64 = spec.parse().map_err(|_| invalid())?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(invalid())
    }
}

/// A non-negative decimal number written as plain digits with an optional
/// fraction (`50`, `0.002`, `.5`); returns its value.
pub(crate) fn parse_plain_number(what: &str, spec: &str) -> KindResult<f64> {
    let invalid = || NsErrorKind::InvalidValue {
        what: what.to_string(),
        value: spec.to_string(),
        reason: "it must be a non-negative number such as 5 or 0.25".to_string(),
    };
    let (value, rest) = split_number(spec).ok_or_else(invalid)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(invalid())
    }
}

/// A non-negative integer within `min..=max`.
pub(crate) fn parse_integer_in(what: &str, spec: &str, min: u64, max: u64) -> KindResult<u64> {
    let invalid = || NsErrorKind::InvalidValue {
        what: what.to_string(),
        value: spec.to_string(),
        reason: format!("it must be a whole number from {min} to {max}"),
    };
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let value: u64 = spec.parse().map_err(|_| invalid())?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid())
    }
}

/// True when `spec` reads as the number zero (`0`, `0.0`, `.0`): Tcl's
/// `$x != 0` test that the CBR START arguments use to mean "not set".
pub(crate) fn is_numeric_zero(spec: &str) -> bool {
    split_number(spec.trim()).is_some_and(|(value, rest)| rest.is_empty() && value == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bw_units_exactly_as_emulab() {
        assert_eq!(parse_bw("100Mb").unwrap(), 100_000);
        assert_eq!(parse_bw("100Mbps").unwrap(), 100_000);
        assert_eq!(parse_bw("100M").unwrap(), 100_000);
        assert_eq!(parse_bw("1.5Mb").unwrap(), 1_500);
        assert_eq!(parse_bw("1Gb").unwrap(), 1_000_000);
        assert_eq!(parse_bw("2G").unwrap(), 2_000_000);
        assert_eq!(parse_bw("56kb").unwrap(), 56);
        assert_eq!(parse_bw("56k").unwrap(), 56);
        assert_eq!(parse_bw("56kbps").unwrap(), 56);
        assert_eq!(parse_bw("64000").unwrap(), 64);
        assert_eq!(parse_bw("64000b").unwrap(), 64);
        assert_eq!(parse_bw("64999bps").unwrap(), 64);
        assert_eq!(parse_bw("10kb").unwrap(), 10);
    }

    #[test]
    fn parse_bw_refusals() {
        for bad in [
            "9kb", "9999", "", "Mb", "100mb", "100 Mb", "-5Mb", "5Tb", "1e300Gb",
        ] {
            assert!(
                matches!(parse_bw(bad), Err(NsErrorKind::InvalidBandwidth { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("10ms").unwrap(), 10.0);
        assert_eq!(parse_delay("0.5ms").unwrap(), 0.5);
        assert_eq!(parse_delay("1s").unwrap(), 1000.0);
        assert_eq!(parse_delay("25").unwrap(), 25.0);
        assert_eq!(parse_delay("0ms").unwrap(), 0.0);
        for bad in ["", "ms", "-1ms", "10us", "ten"] {
            assert!(parse_delay(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loss_rates() {
        assert_eq!(parse_loss("0.01").unwrap(), 0.01);
        assert_eq!(parse_loss("1").unwrap(), 1.0);
        assert_eq!(parse_loss("0").unwrap(), 0.0);
        for bad in ["1.01", "-0.1", "x", "", "0.1x", "2"] {
            assert!(parse_loss(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_specs_follow_the_two_patterns() {
        assert_eq!(parse_time("10").unwrap(), 10.0);
        assert_eq!(parse_time("2.5").unwrap(), 2.5);
        assert_eq!(parse_time(".5").unwrap(), 0.5);
        for bad in [
            "", "1.", "-1", "+1", "1e3", "10s", "1.2.3", ".", " 1", "0x10",
        ] {
            assert_eq!(
                parse_time(bad),
                Err(NsErrorKind::InvalidTime(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numeric_zero() {
        assert!(is_numeric_zero("0"));
        assert!(is_numeric_zero("0.0"));
        assert!(!is_numeric_zero(""));
        assert!(!is_numeric_zero("0.5"));
    }
}
