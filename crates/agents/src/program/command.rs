//! Turning a program's command line into something to execute, and
//! signal names into signals.
//!
//! A command runs **without a shell** when it is plain words: it is split
//! on whitespace and the first word executed directly (looked up in
//! `PATH` when it has no `/`). That avoids a shell between the agent and
//! the program, so `STOP` and `KILL` reach the program itself and nothing
//! in the command is re-interpreted. A command that uses shell syntax
//! runs as `/bin/sh -c COMMAND`. Shell syntax means any of
//! [`SHELL_METACHARACTERS`] (pipes, redirections, lists, substitutions,
//! quotes, globs, comments, `~`, braces, `!`) anywhere, or a `=` in the
//! first word (a variable assignment such as `FOO=1 prog`), or a first
//! word that is a shell builtin or keyword ([`SHELL_WORDS`]: `cd`, `exit`,
//! `export`, `for`, ...).
//!
//! Emulab's agent always used `/bin/csh -f -c`; ours uses POSIX `sh`
//! where a shell is needed (see docs/decisions.md).

use nix::sys::signal::Signal;

/// Characters that make a command need a shell.
pub const SHELL_METACHARACTERS: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
    '{', '}', '!', '\n',
];

/// First words that are shell builtins or keywords: there is no program
/// of that name to execute, so such commands need a shell too.
pub const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "case", "cd", "command", "eval", "exec", "exit", "export", "for",
    "function", "if", "read", "readonly", "return", "set", "shift", "source", "times", "trap",
    "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// The shell used for commands that need one.
pub const SHELL: &str = "/bin/sh";

/// What to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The program (a path or a name looked up in `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// True when the command runs through `/bin/sh -c`.
    pub shell: bool,
}

/// Why a command cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing but whitespace.
    #[error("the command is empty")]
    Empty,
    /// A NUL byte cannot be passed to exec.
    #[error("the command contains a NUL byte")]
    Nul,
}

/// True when `command` needs a shell (see the module docs).
pub fn needs_shell(command: &str) -> bool {
    command.contains(SHELL_METACHARACTERS)
        || command
            .split_whitespace()
            .next()
            .is_some_and(|first| first.contains('=') || SHELL_WORDS.contains(&first))
}

/// How to run `command`.
pub fn invocation(command: &str) -> Result<Invocation, CommandError> {
    if command.contains('\0') {
        return Err(CommandError::Nul);
    }
    let trimmed = command.trim();
    if trimmed.is_empty() {
        return Err(CommandError::Empty);
    }
    if needs_shell(trimmed) {
        return Ok(Invocation {
            program: SHELL.to_owned(),
            args: vec!["-c".to_owned(), trimmed.to_owned()],
            shell: true,
        });
    }
    let mut words = trimmed.split_whitespace().map(str::to_owned);
    let program = words.next().ok_or(CommandError::Empty)?;
    Ok(Invocation {
        program,
        args: words.collect(),
        shell: false,
    })
}

/// Parses a signal as `KILL SIGNAL=` gives it: a name with or without
/// `SIG`, in any letter case (`INT`, `sigterm`, `SIGKILL`), or a number.
pub fn parse_signal(text: &str) -> Option<Signal> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_run_directly() {
        let run = invocation("  /bin/echo hello   world ").unwrap();
        assert_eq!(run.program, "/bin/echo");
        assert_eq!(run.args, ["hello", "world"]);
        assert!(!run.shell);
        // `=` after the first word is an ordinary argument.
        assert!(
            !invocation("dd if=/dev/zero of=/dev/null count=1")
                .unwrap()
                .shell
        );
        assert!(!invocation("sleep 10").unwrap().shell);
    }

    #[test]
    fn shell_syntax_goes_through_sh() {
        for command in [
            "echo a | wc",
            "a && b",
            "a; b",
            "a > f",
            "echo $HOME",
            "echo `date`",
            "echo 'x y'",
            "ls *.log",
            "FOO=1 prog",
            "cd ~",
            "a\nb",
            "echo {a,b}",
            "exit 3",
            "cd /tmp",
        ] {
            let run = invocation(command).unwrap();
            assert!(run.shell, "{command}");
            assert_eq!(run.program, SHELL);
            assert_eq!(run.args, ["-c", command.trim()]);
        }
    }

    #[test]
    fn empty_and_nul_are_refused() {
        assert_eq!(invocation(" \t"), Err(CommandError::Empty));
        assert_eq!(invocation("a\0b"), Err(CommandError::Nul));
    }

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("INT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("sigterm"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("Hup"), Some(Signal::SIGHUP));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("usr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("FROB"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
        assert_eq!(parse_signal(""), None);
    }
}
