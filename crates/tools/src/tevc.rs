//! `tevc`: send one Emulab event from the command line.
//!
//! Two modes, as in the original tool:
//!
//! - **experiment events** (`tevc -e pid/eid TIME OBJNAME EVENT [ARGS...]`):
//!   a request, signed with the experiment's key, asking the experiment's
//!   scheduler to fire `EVENT` at `OBJNAME` at `TIME`;
//! - **testbed control** (`tevc -c EVENT`, root only): a `TBCONTROL` event
//!   sent at once, unsigned, to the boss node's private router.
//!
//! `src/bin/tevc.rs` parses the command line into a [`Request`] and calls [`execute`].
//! Everything the user typed is checked (time, event name, experiment,
//! arguments, key file) before any connection is made, so a mistake never
//! half-sends. Every failure prints one `tevc: ...` line and exits with
//! status 255, the original's status, which scripts test.
//!
//! # Decisions where the original was buggy or vague
//!
//! - `+N.F` adds N seconds and F as a decimal fraction (`+1.7` is 1 s +
//!   700 000 µs). The original rounded N.F to the nearest second and could
//!   send a negative microsecond count. Digits of F past the sixth are
//!   ignored.
//! - `+N` with anything but digits is an error; the original silently used
//!   +0.
//! - An absolute time naming a day or time that does not exist (month 13,
//!   February 30, 25:00) is an error rather than being rolled over; a local
//!   time that occurs twice (the hour the clocks go back) is the first
//!   occurrence; one skipped by a daylight-saving change is an error.
//!   Two-digit years follow POSIX `strptime`: 69-99 are 19xx, 00-68 20xx.
//! - `now` is accepted in any letter case.
//! - An argument `KEY=value` whose key is empty (or only `_`) is an error;
//!   the original sent `=value`.
//! - The `ARGS` string is limited to [`MAX_ARGS_LENGTH`] bytes.
//! - The server for experiment events is chosen by `-s`, then
//!   `TBEVENTS_SERVER`, then `event_server` in the configuration file, then
//!   `event-server` ([`tbevents_event::config`]). Control mode ignores the
//!   environment and the file: it always means the local boss router unless
//!   `-s` says otherwise.
//! - `-k` and `-e` are ignored in control mode, with a warning.
//! - `-d` prints the server, the key file and every attribute sent (the
//!   original's `-d` did nothing).

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{
    DateTime, Datelike, Local, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
};
use tbevents_event::blocking::EventHandle;
use tbevents_event::config::{self, ServerSource};
use tbevents_event::constants::{
    BOSS_EVENT_PORT, LATER_EVENT_TYPES, SEED_EVENT_TYPES, experiment_key_path,
    is_control_event_type, is_known_event_type,
};
use tbevents_event::{
    AddressTuple, EventError, EventKey, EventNotification, FiringTime, KeyError, RegisterOptions,
    Value, server_uri,
};

/// The exit status of every failure, usage errors included (the
/// original's `exit(-1)`).
pub const EXIT_FAILURE: u8 = 255;

/// The longest `ARGS` string `tevc` builds, in bytes.
pub const MAX_ARGS_LENGTH: usize = 16 * 1024;

/// The usage lines, repeated in usage errors.
pub const SYNOPSIS: &str = "\
usage: tevc [-d] [-s server] [-p port] [-k keyfile] -e pid/eid TIME OBJNAME EVENT [ARGS...]
       tevc [-s server] [-p port] -c EVENT";

/// The `--help` text: a manual page.
/// What the command line asked for, as `tevc`'s arguments give it (the
/// binary's parser fills it; [`execute`] checks it).
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `-s`: the server host.
    pub server: Option<String>,
    /// `-p`: the server port.
    pub port: Option<u16>,
    /// `-k`: the key file.
    pub keyfile: Option<PathBuf>,
    /// `-e`: the experiment, `pid/eid`.
    pub experiment: Option<String>,
    /// `-c`: a control event (root only).
    pub control: bool,
    /// `TIME OBJNAME EVENT [ARGS...]`, or `EVENT` with `-c`.
    pub positional: Vec<String>,
}

/// Checks `request` and sends its event; `debug` prints what is sent,
/// `warn` receives warnings (an unknown event type, say).
pub fn execute(request: Request, debug: bool, warn: &mut dyn FnMut(&str)) -> Result<(), TevcError> {
    plan(request, warn).and_then(|plan| send(plan, debug))
}

/// Why `tevc` failed. Every variant exits with [`EXIT_FAILURE`].
#[derive(Debug, thiserror::Error)]
pub enum TevcError {
    /// The command line is not usable.
    #[error("{0}\n{SYNOPSIS}\nRun 'tevc --help' for the full manual.")]
    Usage(String),
    /// Control mode by a non-root user.
    #[error("Only root can send TBCONTROL events")]
    NotRoot,
    /// No `-e`.
    #[error("Must provide pid/eid (-e pid/eid)")]
    MissingExperiment,
    /// `-e` is not `pid/eid`.
    #[error(
        "Malformed pid/eid: {0:?} (expected the project and experiment names, as in -e testbed/demo)"
    )]
    MalformedExperiment(String),
    /// EVENT is not a known event type.
    #[error("Unknown event: {name} (known events: {known})")]
    UnknownEvent {
        /// The name, upper-cased.
        name: String,
        /// The accepted names.
        known: String,
    },
    /// EVENT is not a control event type.
    #[error("Unknown TBCONTROL event: {name} (known events: {known})")]
    UnknownControlEvent {
        /// The name, upper-cased.
        name: String,
        /// The accepted names.
        known: String,
    },
    /// TIME cannot be read.
    #[error("bad time {spec:?}: {reason}; use now, +N, +N.F or [[[[yy]mm]dd]HH]MMss")]
    BadTime {
        /// TIME as typed.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument cannot be sent.
    #[error("bad event argument {argument:?}: {reason}")]
    BadArgument {
        /// The argument as typed.
        argument: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The arguments add up to more than [`MAX_ARGS_LENGTH`].
    #[error("Too many event argument strings! (ARGS would exceed {MAX_ARGS_LENGTH} bytes)")]
    ArgsTooLong,
    /// The key file cannot be used.
    #[error("{}", key_message(path, source))]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The server configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Connecting failed.
    #[error("could not register with event system at {uri}: {source}")]
    Register {
        /// The server URI.
        uri: String,
        /// Why.
        source: EventError,
    },
    /// Sending failed.
    #[error("could not send event notification to {uri}: {source}")]
    Send {
        /// The server URI.
        uri: String,
        /// Why.
        source: EventError,
    },
    /// Closing the connection failed, so delivery is not certain.
    #[error(
        "could not unregister with event system at {uri} (the event may not have been delivered): {source}"
    )]
    Unregister {
        /// The server URI.
        uri: String,
        /// Why.
        source: EventError,
    },
}

/// The original's wording for an unreadable key file, or the key
/// library's explanation for a file that is readable but unusable.
fn key_message(path: &std::path::Path, error: &KeyError) -> String {
    match error {
        KeyError::Unreadable { source, .. } => format!(
            "Could not read {} : {source} (give the experiment's key file with -k, or check that this user may read it)",
            path.display()
        ),
        other => other.to_string(),
    }
}

/// When to fire, as typed (resolved against the clock just before
/// sending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// `now`.
    Now,
    /// `+N` or `+N.F`: an offset from now.
    Relative {
        /// Whole seconds.
        seconds: u64,
        /// Microseconds, below 1 000 000.
        micros: u32,
    },
    /// `[[[[yy]mm]dd]HH]MMss`: the fields given, from the right (seconds
    /// first).
    Absolute {
        /// Seconds, minutes, then optionally hour, day, month, year.
        fields: Vec<u32>,
    },
}

impl TimeSpec {
    /// Reads TIME (see the module docs and the manual).
    pub fn parse(spec: &str) -> Result<TimeSpec, TevcError> {
        let bad = |reason: &str| TevcError::BadTime {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        if spec.eq_ignore_ascii_case("now") {
            return Ok(TimeSpec::Now);
        }
        if let Some(offset) = spec.strip_prefix('+') {
            let (whole, fraction) = match offset.split_once('.') {
                Some((whole, fraction)) => (whole, Some(fraction)),
                None => (offset, None),
            };
            if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "the offset after '+' must be a whole number of seconds, optionally with a decimal fraction",
                ));
            }
            let seconds: u64 = whole.parse().map_err(|_| bad("the offset is too large"))?;
            let micros = match fraction {
                None => 0,
                Some(fraction) => {
                    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad("the fraction after '.' must be digits"));
                    }
                    // The first six digits are microseconds; pad on the
                    // right ("7" is 700000), ignore digits past the sixth.
                    let mut micros: u32 = 0;
                    for position in 0..6 {
                        let digit = fraction
                            .as_bytes()
                            .get(position)
                            .map_or(0, |b| u32::from(b - b'0'));
                        micros = micros * 10 + digit;
                    }
                    micros
                }
            };
            return Ok(TimeSpec::Relative { seconds, micros });
        }
        if !spec.bytes().all(|b| b.is_ascii_digit()) || spec.is_empty() {
            return Err(bad("expected now, +N, +N.F or 4 to 12 digits"));
        }
        if !spec.len().is_multiple_of(2) || !(4..=12).contains(&spec.len()) {
            return Err(bad(
                "an absolute time has an even number of digits, 4 to 12 (MMss, HHMMss, ddHHMMss, mmddHHMMss or yymmddHHMMss)",
            ));
        }
        let fields = spec
            .as_bytes()
            .rchunks(2)
            .map(|pair| pair.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')))
            .collect();
        Ok(TimeSpec::Absolute { fields })
    }

    /// The firing time for this spec when the clock reads `now`.
    pub fn resolve(&self, spec: &str, now: DateTime<Local>) -> Result<FiringTime, TevcError> {
        let bad = |reason: String| TevcError::BadTime {
            spec: spec.to_owned(),
            reason,
        };
        let when = match self {
            TimeSpec::Now => now,
            TimeSpec::Relative { seconds, micros } => {
                let offset = i64::try_from(*seconds)
                    .ok()
                    .and_then(chrono::TimeDelta::try_seconds)
                    .map(|d| d + chrono::TimeDelta::microseconds(i64::from(*micros)))
                    .ok_or_else(|| bad("the offset is too large".into()))?;
                now.checked_add_signed(offset)
                    .ok_or_else(|| bad("the time is too far in the future".into()))?
            }
            TimeSpec::Absolute { fields } => absolute_time(fields, now).map_err(bad)?,
        };
        let since_epoch = when.timestamp();
        let sec = i32::try_from(since_epoch).map_err(|_| {
            bad(format!(
                "{when} is outside what events can carry (1970 to 2038)"
            ))
        })?;
        if sec < 0 {
            return Err(bad(format!("{when} is before 1970")));
        }
        let usec = i32::try_from(when.timestamp_subsec_micros()).unwrap_or(0);
        Ok(FiringTime { sec, usec })
    }
}

/// Fills the fields not given from `now` and converts the local time.
fn absolute_time(fields: &[u32], now: DateTime<Local>) -> Result<DateTime<Local>, String> {
    let field = |index: usize, default: u32| fields.get(index).copied().unwrap_or(default);
    let second = field(0, 0);
    let minute = field(1, now.minute());
    let hour = field(2, now.hour());
    let day = field(3, now.day());
    let month = field(4, now.month());
    let year = match fields.get(5) {
        Some(yy) if *yy >= 69 => 1900 + i32::try_from(*yy).unwrap_or(0),
        Some(yy) => 2000 + i32::try_from(*yy).unwrap_or(0),
        None => now.year(),
    };
    let time = NaiveTime::from_hms_opt(hour, minute, second)
        .ok_or_else(|| format!("{hour:02}:{minute:02}:{second:02} is not a time of day"))?;
    let date = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| format!("{year:04}-{month:02}-{day:02} is not a date"))?;
    let local = NaiveDateTime::new(date, time);
    match Local.from_local_datetime(&local) {
        LocalResult::Single(when) => Ok(when),
        // The hour the clocks go back happens twice: take the first.
        LocalResult::Ambiguous(first, _) => Ok(first),
        LocalResult::None => Err(format!(
            "{local} does not exist in the local time zone (skipped by a daylight-saving change)"
        )),
    }
}

/// Builds `ARGS` from the extra arguments, as the original did: `key=value`
/// becomes `KEY=value ` (key upper-cased, one trailing `_` dropped);
/// anything without `=` is appended verbatim.
pub fn build_args(arguments: &[String]) -> Result<String, TevcError> {
    let mut args = String::new();
    for argument in arguments {
        match argument.split_once('=') {
            None => args.push_str(argument),
            Some((key, value)) => {
                let mut key = key.to_ascii_uppercase();
                if key.ends_with('_') {
                    key.pop();
                }
                if key.is_empty() {
                    return Err(TevcError::BadArgument {
                        argument: argument.clone(),
                        reason: "the part before '=' (the key) is empty".into(),
                    });
                }
                let _ = write!(args, "{key}={value} ");
            }
        }
        if args.len() > MAX_ARGS_LENGTH {
            return Err(TevcError::ArgsTooLong);
        }
    }
    Ok(args)
}

/// Splits `pid/eid` at the first `/`; both parts must be non-empty and the
/// experiment name must not contain another `/`.
pub fn split_experiment(experiment: &str) -> Result<(&str, &str), TevcError> {
    match experiment.split_once('/') {
        Some((pid, eid)) if !pid.is_empty() && !eid.is_empty() && !eid.contains('/') => {
            Ok((pid, eid))
        }
        _ => Err(TevcError::MalformedExperiment(experiment.to_owned())),
    }
}

fn known_list(names: &[&[&str]]) -> String {
    names
        .iter()
        .flat_map(|list| list.iter())
        .filter(|name| name.bytes().all(|b| !b.is_ascii_lowercase()))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the command line asks for, checked.
#[derive(Debug)]
enum Plan {
    Control { uri: String, event: String },
    Experiment(Box<ExperimentPlan>),
}

/// A checked experiment event, ready to send.
#[derive(Debug)]
struct ExperimentPlan {
    uri: String,
    server_source: ServerSource,
    experiment: String,
    key_path: PathBuf,
    key: EventKey,
    time_text: String,
    time: TimeSpec,
    objname: String,
    event: String,
    args: String,
}

fn plan(cli: Request, warn: &mut dyn FnMut(&str)) -> Result<Plan, TevcError> {
    if cli.control {
        if !nix::unistd::geteuid().is_root() {
            return Err(TevcError::NotRoot);
        }
        let [event] = cli.positional.as_slice() else {
            return Err(TevcError::Usage(format!(
                "control mode takes exactly one EVENT, not {} arguments",
                cli.positional.len()
            )));
        };
        if cli.keyfile.is_some() {
            warn("-k is ignored in control mode (control events are not signed)");
        }
        if cli.experiment.is_some() {
            warn("-e is ignored in control mode");
        }
        let event = event.to_ascii_uppercase();
        if !is_control_event_type(&event) {
            return Err(TevcError::UnknownControlEvent {
                name: event,
                known: known_list(&[SEED_EVENT_TYPES]),
            });
        }
        let host = cli.server.unwrap_or_else(|| "localhost".to_owned());
        let uri = server_uri(&host, Some(cli.port.unwrap_or(BOSS_EVENT_PORT)));
        return Ok(Plan::Control { uri, event });
    }

    let Some(experiment) = cli.experiment else {
        return Err(TevcError::MissingExperiment);
    };
    let (pid, eid) = split_experiment(&experiment)?;
    let [time_text, objname, event, extra @ ..] = cli.positional.as_slice() else {
        return Err(TevcError::Usage(format!(
            "expected TIME OBJNAME EVENT [ARGS...], got {} argument{}",
            cli.positional.len(),
            if cli.positional.len() == 1 { "" } else { "s" }
        )));
    };
    let time = TimeSpec::parse(time_text)?;
    let mut event = event.to_ascii_uppercase();
    if event == "SET" {
        event = "MODIFY".to_owned();
    }
    if !is_known_event_type(&event) {
        return Err(TevcError::UnknownEvent {
            name: event,
            known: known_list(&[SEED_EVENT_TYPES, LATER_EVENT_TYPES]),
        });
    }
    let args = build_args(extra)?;
    let key_path = cli.keyfile.unwrap_or_else(|| experiment_key_path(pid, eid));
    let key = EventKey::from_file(&key_path).map_err(|source| TevcError::Key {
        path: key_path.clone(),
        source,
    })?;
    let server = config::resolve_event_server(cli.server.as_deref())?;
    let uri = server_uri(&server.host, cli.port);
    Ok(Plan::Experiment(Box::new(ExperimentPlan {
        uri,
        server_source: server.source,
        experiment: format!("{pid}/{eid}"),
        key_path,
        key,
        time_text: time_text.clone(),
        time,
        objname: objname.clone(),
        event,
        args,
    })))
}

/// One attribute as `-d` prints it.
fn describe(name: &str, value: &Value) -> String {
    match value {
        Value::Opaque(bytes) => format!("{name} (opaque) = {}", hex::encode(bytes)),
        Value::String(text) => format!("{name} (string) = {text:?}"),
        other => format!("{name} ({}) = {other}", other.value_type()),
    }
}

fn debug_dump(uri: &str, event: &EventNotification) {
    eprintln!("tevc: sending to {uri}:");
    for (name, value) in event.attributes().iter() {
        eprintln!("tevc:   {}", describe(name, value));
    }
}

fn send(plan: Plan, debug: bool) -> Result<(), TevcError> {
    match plan {
        Plan::Control { uri, event } => {
            if debug {
                eprintln!("tevc: control event {event} to {uri} (unsigned)");
            }
            let handle = EventHandle::register(&uri).map_err(|source| TevcError::Register {
                uri: uri.clone(),
                source,
            })?;
            let tuple = AddressTuple::new().objtype("TBCONTROL").eventtype(event);
            let mut notification = handle.new_notification(&tuple);
            if debug {
                debug_dump(&uri, &notification);
            }
            handle
                .notify(&mut notification)
                .map_err(|source| TevcError::Send {
                    uri: uri.clone(),
                    source,
                })?;
            handle
                .unregister()
                .map_err(|source| TevcError::Unregister { uri, source })
        }
        Plan::Experiment(plan) => {
            let ExperimentPlan {
                uri,
                server_source,
                experiment,
                key_path,
                key,
                time_text,
                time,
                objname,
                event,
                args,
            } = *plan;
            if debug {
                let source = match &server_source {
                    ServerSource::Flag => "-s".to_owned(),
                    ServerSource::Environment => config::SERVER_ENV_VAR.to_owned(),
                    ServerSource::ConfigFile(path) => path.display().to_string(),
                    ServerSource::Default => "the default".to_owned(),
                };
                eprintln!(
                    "tevc: server {uri} (from {source}), key file {}",
                    key_path.display()
                );
            }
            let handle = EventHandle::register_with(&uri, RegisterOptions::new().key(key))
                .map_err(|source| TevcError::Register {
                    uri: uri.clone(),
                    source,
                })?;
            let tuple = AddressTuple::new()
                .expt(experiment)
                .objname(objname)
                .eventtype(event);
            let mut notification = handle.new_notification(&tuple);
            if !args.is_empty() {
                notification.set_arguments(args);
            }
            // Resolve the time now, after connecting, so +N counts from
            // the moment of sending.
            let when = time.resolve(&time_text, Local::now())?;
            notification.make_schedule_request(when);
            let signing = handle.insert_hmac(&mut notification);
            let send_error = |source| TevcError::Send {
                uri: uri.clone(),
                source,
            };
            signing.map_err(send_error)?;
            if debug {
                debug_dump(&uri, &notification);
            }
            handle.notify(&mut notification).map_err(send_error)?;
            handle
                .unregister()
                .map_err(|source| TevcError::Unregister { uri, source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Local> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        Local.from_local_datetime(&naive).earliest().unwrap()
    }

    fn resolve(spec: &str, now: DateTime<Local>) -> Result<FiringTime, TevcError> {
        TimeSpec::parse(spec)?.resolve(spec, now)
    }

    #[test]
    fn relative_times_add_exactly() {
        let now = at("2024-03-10 12:00:00.900000");
        let base = now.timestamp() as i32;
        assert_eq!(
            resolve("now", now).unwrap(),
            FiringTime {
                sec: base,
                usec: 900_000
            }
        );
        assert_eq!(resolve("NOW", now).unwrap().sec, base);
        assert_eq!(
            resolve("+10", now).unwrap(),
            FiringTime {
                sec: base + 10,
                usec: 900_000
            }
        );
        // +1.7 is 1 s + 700 000 µs, carried into the next second.
        assert_eq!(
            resolve("+1.7", now).unwrap(),
            FiringTime {
                sec: base + 2,
                usec: 600_000
            }
        );
        // The original rounded 1.4 down and 1.6 up, with negative µs.
        assert_eq!(
            resolve("+0.05", now).unwrap(),
            FiringTime {
                sec: base,
                usec: 950_000
            }
        );
        assert_eq!(
            resolve("+2.1234567", now).unwrap(),
            FiringTime {
                sec: base + 3,
                usec: 23_456
            }
        );
        for spec in ["+0.1", "+0.6", "+3.999999"] {
            let t = resolve(spec, now).unwrap();
            assert!((0..1_000_000).contains(&t.usec), "{spec}: {t:?}");
        }
    }

    #[test]
    fn bad_relative_times() {
        let now = Local::now();
        for spec in [
            "+", "+x", "+1x", "+-1", "+1.", "+.5", "+1.2.3", "+ 1", "+1e3",
        ] {
            let error = resolve(spec, now).unwrap_err();
            assert!(matches!(error, TevcError::BadTime { .. }), "{spec}");
        }
        assert!(resolve("+99999999999999999999999", now).is_err());
        assert!(
            resolve("+4000000000", now)
                .unwrap_err()
                .to_string()
                .contains("2038")
        );
    }

    #[test]
    fn absolute_times_fill_from_now() {
        let now = at("2024-03-10 12:34:56.250000");
        let expect = |text: &str| FiringTime {
            sec: at(text).timestamp() as i32,
            usec: 0,
        };
        assert_eq!(
            resolve("4510", now).unwrap(),
            expect("2024-03-10 12:45:10.0")
        );
        assert_eq!(
            resolve("094510", now).unwrap(),
            expect("2024-03-10 09:45:10.0")
        );
        assert_eq!(
            resolve("01094510", now).unwrap(),
            expect("2024-03-01 09:45:10.0")
        );
        assert_eq!(
            resolve("1201094510", now).unwrap(),
            expect("2024-12-01 09:45:10.0")
        );
        assert_eq!(
            resolve("991201094510", now).unwrap(),
            expect("1999-12-01 09:45:10.0")
        );
        assert_eq!(
            resolve("301201094510", now).unwrap(),
            expect("2030-12-01 09:45:10.0")
        );
    }

    #[test]
    fn bad_absolute_times() {
        let now = at("2024-03-10 12:34:56.0");
        for spec in [
            "",
            "1",
            "123",
            "12345",
            "1234567",
            "12345678901234",
            "12a4",
            "6000",
        ] {
            assert!(resolve(spec, now).is_err(), "{spec:?}");
        }
        let error = resolve("1302094510", now).unwrap_err();
        assert!(error.to_string().contains("not a date"), "{error}");
        let error = resolve("0230094510", now).unwrap_err();
        assert!(error.to_string().contains("not a date"), "{error}");
        let error = resolve("250000", now).unwrap_err();
        assert!(error.to_string().contains("not a time of day"), "{error}");
        // 2040 does not fit time_sec.
        let error = resolve("400101000000", now).unwrap_err();
        assert!(error.to_string().contains("2038"), "{error}");
    }

    #[test]
    fn args_like_the_original() {
        let args =
            |list: &[&str]| build_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]).unwrap(), "");
        assert_eq!(args(&["interval_=0.2"]).unwrap(), "INTERVAL=0.2 ");
        assert_eq!(
            args(&["rate=10", "size__=5", "Mixed_Case=Value=x"]).unwrap(),
            "RATE=10 SIZE_=5 MIXED_CASE=Value=x "
        );
        // Without '=': verbatim, no separator.
        assert_eq!(args(&["a", "b", "k=v", "c"]).unwrap(), "abK=v c");
        assert!(matches!(args(&["=5"]), Err(TevcError::BadArgument { .. })));
        assert!(matches!(args(&["_=5"]), Err(TevcError::BadArgument { .. })));
        let long = "x".repeat(MAX_ARGS_LENGTH + 1);
        assert!(matches!(args(&[&long]), Err(TevcError::ArgsTooLong)));
    }

    #[test]
    fn experiments() {
        assert_eq!(split_experiment("p/e").unwrap(), ("p", "e"));
        for bad in ["pe", "/e", "p/", "p/e/x", ""] {
            assert!(split_experiment(bad).is_err(), "{bad}");
        }
    }
}
