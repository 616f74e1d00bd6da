//! Turning `argv` into a program's clap struct with tbevents' exit
//! conventions, so every program reports a bad command line the same way.

use std::ffi::OsString;

/// Parses `args` (program name first) into `C`. On failure clap's message
/// is printed (to stdout for `--help` and `--version`, to stderr for
/// errors) and the exit status is returned: clap's own (0 for help and
/// version), or `usage_exit` for an error.
pub fn parse_or_exit<C, I, T>(args: I, usage_exit: u8) -> Result<C, u8>
where
    C: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    C::try_parse_from(args).map_err(|error| {
        let _ = error.print();
        match error.exit_code() {
            0 => 0,
            _ => usage_exit,
        }
    })
}

/// The problem a clap error describes, in one line without clap's
/// `error: ` prefix: for the Emulab-compatible tools that print their own
/// usage line after it.
pub fn usage_problem(error: &clap::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("bad usage");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[arg(long)]
        count: u8,
    }

    #[test]
    fn errors_exit_with_the_usage_status_and_help_with_zero() {
        assert_eq!(
            parse_or_exit::<Probe, _, _>(["p", "--count", "3"], 2)
                .unwrap()
                .count,
            3
        );
        assert_eq!(
            parse_or_exit::<Probe, _, _>(["p", "--count", "x"], 2).unwrap_err(),
            2
        );
        assert_eq!(
            parse_or_exit::<Probe, _, _>(["p", "--help"], 2).unwrap_err(),
            0
        );
    }

    #[test]
    fn the_problem_is_one_line_without_the_prefix() {
        let error = Probe::try_parse_from(["p", "--nope"]).unwrap_err();
        let problem = usage_problem(&error);
        assert!(!problem.starts_with("error:"), "{problem}");
        assert!(problem.contains("--nope"), "{problem}");
        assert!(!problem.contains('\n'));
    }
}
