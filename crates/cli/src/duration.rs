//! Durations on the command line.

use std::time::Duration;

/// Parses `3s`, `250ms`, `1m 30s`, ... (humantime's forms), for clap's
/// `value_parser`; the error says what a valid value looks like.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error}; write a number with a unit, such as 500ms, 3s or 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_required_and_explained() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        let error = parse_duration("3").unwrap_err();
        assert!(error.contains("such as 500ms"), "{error}");
    }
}
