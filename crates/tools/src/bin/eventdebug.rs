//! `eventdebug`: watch events as they pass. The command line lives here;
//! connecting, filtering and printing are `tbevents_tools::eventdebug`,
//! and docs/eventdebug.md describes the program.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tbevents_cli::runtime::Threads;
use tbevents_event::constants::BOSS_EVENT_PORT;
use tbevents_event::{EventError, EventKey, server_uri};
use tbevents_tools::eventdebug::{EXIT_USAGE, EventdebugError, SYNOPSIS, Settings, run};

fn main() -> ExitCode {
    ExitCode::from(run_main())
}

/// The manual `-h` prints.
const HELP: &str = "\
NAME
    eventdebug - print the events passing through an event router

SYNOPSIS
    eventdebug [-b] [-s server] [-p port] [-k keyfile] [-e pid/eid]
               [--scheduler] [--json] [pid/eid]
    eventdebug -h | --help

DESCRIPTION
    Subscribes to every live event on the router (SCHEDULER == 0) and
    prints one line per event on standard output, flushed at once:

        Event: <time> <SITE> <EXPT> <GROUP> <HOST> <OBJTYPE> <OBJNAME> <EVENTTYPE>

    <time> is when the event was received, in seconds since the epoch. A
    missing attribute prints as nothing. If the event has arguments, they
    follow on a continuation line:

            ARGS: <ARGS>

    Control characters in values are printed escaped (\\n, \\t, \\u{1b}).

    Once subscribed, eventdebug says on standard error where it listens
    and with which subscription. When the connection to the router is
    lost, it says so on standard error and reconnects every second until
    the router is back.

OPTIONS
    -s server     The router's host. Default: localhost.
    -p port       The router's port. Default: 2917 (wins over -b).
    -b            Use the boss node's private event port, 2927.
    -k keyfile    Check each event's HMAC with this experiment key; events
                  whose signature is missing or wrong are dropped with a
                  warning on standard error. Without -k everything is shown.
    -e pid/eid    Only events of this experiment (EXPT == pid/eid). The
                  experiment may also be given as the last argument.
    --scheduler   Also show scheduler requests (SCHEDULER == 1), marked
                  with [scheduler request for <time_sec>.<time_usec>].
    --json        Print one JSON object per line with every attribute and
                  its type: {\"received\": <seconds>, \"scheduler_request\":
                  <bool>, \"attributes\": {\"<NAME>\": {\"type\": \"string\",
                  \"value\": ...}, ...}}. Opaque values are hex.
    -h, --help    Print this manual and exit.

EXAMPLES
    eventdebug                       all live events on the local router
    eventdebug -b                    the boss node's private router
    eventdebug -s event-server testbed/demo
    eventdebug --scheduler --json -e testbed/demo | jq .

EXIT STATUS
    0      Stopped by SIGINT or SIGTERM, or the output pipe was closed.
    1      Bad command line.
    255    The router could not be reached or refused the subscription at
           start-up, or the key file is unusable.

ENVIRONMENT
    RUST_LOG   Diagnostic detail on standard error (default: warn).
";

#[derive(Debug, Parser)]
#[command(
    name = "eventdebug",
    disable_help_flag = true,
    disable_version_flag = true,
    override_usage = SYNOPSIS
)]
struct Cli {
    #[arg(short = 's', value_name = "server")]
    server: Option<String>,
    #[arg(short = 'p', value_name = "port")]
    port: Option<u16>,
    #[arg(short = 'b')]
    boss: bool,
    #[arg(short = 'k', value_name = "keyfile")]
    keyfile: Option<PathBuf>,
    #[arg(short = 'e', value_name = "pid/eid")]
    experiment: Option<String>,
    #[arg(long = "scheduler")]
    scheduler: bool,
    #[arg(long = "json")]
    json: bool,
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(value_name = "pid/eid")]
    positional_experiment: Option<String>,
}

fn looks_like_experiment(text: &str) -> bool {
    matches!(text.split_once('/'), Some((pid, eid)) if !pid.is_empty() && !eid.is_empty() && !eid.contains('/'))
}

fn settings(cli: Cli) -> Result<Settings, EventdebugError> {
    let experiment = match (cli.experiment, cli.positional_experiment) {
        (Some(a), Some(b)) if a != b => {
            return Err(EventdebugError::Usage(format!(
                "two different experiments given: -e {a} and {b}"
            )));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    if let Some(experiment) = &experiment
        && !looks_like_experiment(experiment)
    {
        return Err(EventdebugError::Usage(format!(
            "Malformed pid/eid: {experiment:?} (expected the project and experiment names, as in testbed/demo)"
        )));
    }
    let port = cli.port.or(cli.boss.then_some(BOSS_EVENT_PORT));
    let host = cli.server.unwrap_or_else(|| "localhost".to_owned());
    let key = match cli.keyfile {
        Some(path) => Some(EventKey::from_file(path)?),
        None => None,
    };
    Ok(Settings {
        uri: server_uri(&host, port),
        key,
        experiment,
        scheduler: cli.scheduler,
        json: cli.json,
    })
}

/// Runs `eventdebug` and returns the exit status.
fn run_main() -> u8 {
    tbevents_cli::init_logging("eventdebug", None, "warn", tbevents_cli::LogStyle::Tool);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let problem = tbevents_cli::args::usage_problem(&error);
            eprintln!("eventdebug: {}", EventdebugError::Usage(problem));
            return EXIT_USAGE;
        }
    };
    if cli.help {
        print!("{HELP}");
        return 0;
    }
    let result = settings(cli).and_then(|settings| {
        let uri = settings.uri.clone();
        tbevents_cli::runtime::block_on("eventdebug", Threads::Current, run(settings)).map_err(
            |error| EventdebugError::Register {
                uri,
                source: EventError::Client(Box::new(elvin_client::ClientError::Config(format!(
                    "cannot start the runtime: {error}"
                )))),
            },
        )?
    });
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("eventdebug: {error}");
            error.exit_status()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let parse = |args: &[&str]| {
            let mut full = vec!["eventdebug"];
            full.extend_from_slice(args);
            Cli::try_parse_from(full)
                .map_err(|e| e.to_string())
                .and_then(|cli| settings(cli).map_err(|e| e.to_string()))
        };
        assert_eq!(parse(&[]).unwrap().uri, "elvin://localhost");
        // -b is a plain flag: it does not swallow -s.
        let s = parse(&["-b", "-s", "boss"]).unwrap();
        assert_eq!(s.uri, "elvin://boss:2927");
        assert_eq!(
            parse(&["-b", "-p", "3000"]).unwrap().uri,
            "elvin://localhost:3000"
        );
        assert_eq!(
            parse(&["-p", "3000", "-b"]).unwrap().uri,
            "elvin://localhost:3000"
        );
        assert_eq!(parse(&["p/e"]).unwrap().experiment.as_deref(), Some("p/e"));
        assert_eq!(
            parse(&["-e", "p/e", "p/e"]).unwrap().experiment.as_deref(),
            Some("p/e")
        );
        assert!(
            parse(&["-e", "p/e", "q/e"])
                .unwrap_err()
                .contains("two different")
        );
        assert!(parse(&["nonsense"]).unwrap_err().contains("Malformed"));
        assert!(parse(&["a/b", "c/d"]).is_err());
        assert!(parse(&["-x"]).is_err());
        let s = parse(&["--scheduler", "--json"]).unwrap();
        assert!(s.scheduler && s.json);
    }

    #[test]
    fn help_has_the_manual_sections() {
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXAMPLES",
            "EXIT STATUS",
            "-b",
            "--json",
            "--scheduler",
            "ARGS:",
        ] {
            assert!(HELP.contains(section), "{section}");
        }
    }
}
