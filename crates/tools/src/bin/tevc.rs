//! `tevc`: send an event to an experiment. The command line and the
//! manual live here; checking and sending are `tbevents_tools::tevc`, and
//! docs/tevc.md describes the program.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tbevents_tools::tevc::{EXIT_FAILURE, Request, SYNOPSIS, TevcError, execute};

fn main() -> ExitCode {
    ExitCode::from(run_main())
}

/// The manual `-h` prints.
const HELP: &str = "\
NAME
    tevc - send an event to an experiment, or a testbed-control event

SYNOPSIS
    tevc [-d] [-s server] [-p port] [-k keyfile] -e pid/eid TIME OBJNAME EVENT [ARGS...]
    tevc [-s server] [-p port] -c EVENT
    tevc -h | --help

DESCRIPTION
    The first form asks experiment pid/eid's event scheduler to deliver
    EVENT to the object OBJNAME (a link, traffic generator, program agent,
    group, ...) at TIME. The request is signed with the experiment's event
    key; whoever can read the key file may send events to the experiment.
    The scheduler looks OBJNAME up, fills in the agent's host and object
    type, and fires the event at TIME.

    EVENT is case-insensitive and must be a known event type (START, STOP,
    MODIFY, UP, DOWN, RESET, COMPLETE, ...); SET means MODIFY. OBJNAME is
    sent as typed.

    Each ARG of the form key=value is sent as KEY=value followed by a
    space: the key is upper-cased and one trailing underscore is removed,
    so interval_=0.2 becomes INTERVAL=0.2. An ARG without '=' is appended
    exactly as typed, with no separator (for NSE Tcl strings).

    The second form (-c) sends a TBCONTROL event at once, unsigned, to the
    boss node's private event router (localhost, port 2927, unless -s or
    -p say otherwise). Only root may send control events.

OPTIONS
    -e pid/eid   The experiment (required in the first form).
    -k keyfile   The experiment's event key file.
                 Default: /proj/<pid>/exp/<eid>/tbdata/eventkey
    -s server    The event server's host name or address.
                 Default: $TBEVENTS_SERVER, else event_server in the
                 configuration file, else event-server (with -c: localhost).
    -p port      The event server's port. Default: 2917 (with -c: 2927).
    -c           Control mode: send EVENT as a TBCONTROL event (root only).
    -d           Debug: print the server, the key file and every attribute
                 sent, on standard error.
    -h, --help   Print this manual and exit.

TIME
    now            Immediately.
    +N             N seconds from now (N is a whole number).
    +N.F           N.F seconds from now; +1.7 is 1.7 s (F to microseconds).
    [[[[yy]mm]dd]HH]MMss
                   An absolute local time: 4 digits give minutes and
                   seconds, 6 add the hour, 8 the day, 10 the month, 12 the
                   two-digit year (69-99: 19yy, 00-68: 20yy). Fields not
                   given are taken from the current local time.

EXAMPLES
    tevc -e pid/eid now cbr0 set interval_=0.2
    tevc -e pid/eid +10 cbr0 start
    tevc -e pid/eid +20 cbr0 stop
    tevc -e testbed/demo 1530 link0 down
    tevc -c reboot

EXIT STATUS
    0      The event was sent.
    255    Anything went wrong: bad usage, unknown event, bad time,
           unreadable key file, unreachable server. The reason is printed
           on standard error as a line starting with 'tevc: '.

FILES
    /proj/<pid>/exp/<eid>/tbdata/eventkey
           The experiment's event key (default for -k).
    /etc/tbevents/tbevents.toml
           Configuration; its event_server setting names the event server.

ENVIRONMENT
    TBEVENTS_SERVER   The event server, used when -s is not given
                      (not in control mode).
    TBEVENTS_CONFIG   Path of the configuration file to read instead of
                      /etc/tbevents/tbevents.toml.
    TZ                The time zone of absolute TIMEs.
    RUST_LOG          Diagnostic detail on standard error (default: warn).
";

/// The command line as typed (`-h` and `--help` are handled by us, so the
/// manual can be printed in full).
#[derive(Debug, Parser)]
#[command(
    name = "tevc",
    disable_help_flag = true,
    disable_version_flag = true,
    override_usage = SYNOPSIS
)]
struct Cli {
    /// Debug output.
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    debug: u8,
    /// Server host.
    #[arg(short = 's', value_name = "server")]
    server: Option<String>,
    /// Server port.
    #[arg(short = 'p', value_name = "port")]
    port: Option<u16>,
    /// Key file.
    #[arg(short = 'k', value_name = "keyfile")]
    keyfile: Option<PathBuf>,
    /// Experiment.
    #[arg(short = 'e', value_name = "pid/eid")]
    experiment: Option<String>,
    /// Control mode.
    #[arg(short = 'c')]
    control: bool,
    /// Help.
    #[arg(short = 'h', long = "help")]
    help: bool,
    /// TIME OBJNAME EVENT [ARGS...], or EVENT with -c.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    positional: Vec<String>,
}

/// Runs `tevc` and returns the exit status.
fn run_main() -> u8 {
    tbevents_cli::init_logging("tevc", None, "warn", tbevents_cli::LogStyle::Tool);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let problem = tbevents_cli::args::usage_problem(&error);
            eprintln!("tevc: {}", TevcError::Usage(problem));
            return EXIT_FAILURE;
        }
    };
    if cli.help {
        print!("{HELP}");
        return 0;
    }
    let debug = cli.debug > 0;
    let mut warn = |message: &str| eprintln!("tevc: warning: {message}");
    let request = Request {
        server: cli.server,
        port: cli.port,
        keyfile: cli.keyfile,
        experiment: cli.experiment,
        control: cli.control,
        positional: cli.positional,
    };
    let result = execute(request, debug, &mut warn);
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("tevc: {error}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_shapes() {
        let cli = Cli::try_parse_from([
            "tevc", "-d", "-e", "p/e", "now", "obj", "start", "-x=1", "--y",
        ])
        .unwrap();
        assert_eq!(cli.debug, 1);
        assert_eq!(cli.experiment.as_deref(), Some("p/e"));
        assert_eq!(cli.positional, ["now", "obj", "start", "-x=1", "--y"]);
        let cli = Cli::try_parse_from(["tevc", "-c", "reboot"]).unwrap();
        assert!(cli.control);
        assert!(Cli::try_parse_from(["tevc", "-p", "notaport", "-c", "x"]).is_err());
        let cli = Cli::try_parse_from(["tevc", "--help"]).unwrap();
        assert!(cli.help);
    }

    #[test]
    fn help_has_the_manual_sections() {
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "TIME",
            "EXAMPLES",
            "EXIT STATUS",
            "FILES",
            "ENVIRONMENT",
            "255",
            "TBEVENTS_SERVER",
            "TBEVENTS_CONFIG",
            "tevc -e pid/eid now cbr0 set interval_=0.2",
        ] {
            assert!(HELP.contains(section), "{section}");
        }
    }
}
