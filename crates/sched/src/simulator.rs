//! The SIMULATOR agent: `$ns swapout` and `$ns halt` events, which the
//! scheduler carries out itself instead of sending (docs/emulab-model.md
//! §6.6).
//!
//! `SWAPOUT` and `HALT` run operator-configured commands (defaults
//! `swapexp -s out {pid} {eid}` and `endexp {pid} {eid}`). A command line is
//! split on whitespace into a program and its arguments, `{pid}` and
//! `{eid}` are replaced in every word, and the program is executed
//! directly, never through a shell, so nothing in an experiment name can be
//! interpreted as shell syntax. Quoting is therefore not supported: a word
//! cannot contain spaces (use a wrapper script).
//!
//! Commands run one at a time on their own thread so a slow swap-out never
//! delays the firing thread; their output goes to the scheduler's log
//! (each line capped, at most [`MAX_LOGGED_LINES`] lines per stream, the
//! rest read and discarded). They never run as root: the scheduler refuses
//! to start as root, and the runner checks again before each command.
//! Other SIMULATOR event types (the original also knew `NSESWAP`) are
//! logged as unsupported.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use crate::firing::SimulatorRequest;
use crate::privilege::running_as_root;

/// Default command for `SWAPOUT`. The `--` ends the options, so no name
/// could be read as one (names also start with a letter).
pub const DEFAULT_SWAPOUT_COMMAND: &str = "swapexp -s out -- {pid} {eid}";
/// Default command for `HALT`.
pub const DEFAULT_HALT_COMMAND: &str = "endexp -- {pid} {eid}";
/// Most output lines logged per stream of one command.
pub const MAX_LOGGED_LINES: usize = 1000;
/// Longest output line logged; the rest of a longer line is cut.
pub const MAX_LINE_BYTES: usize = 4096;

/// A command line with `{pid}` / `{eid}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandTemplate {
    words: Vec<String>,
}

/// A command template that names no program.
#[derive(Debug, thiserror::Error)]
#[error("the command for SIMULATOR {event} is empty: give a program to run")]
pub struct EmptyCommand {
    /// Which event's command.
    pub event: &'static str,
}

impl CommandTemplate {
    /// Splits `line` on whitespace.
    pub fn parse(line: &str, event: &'static str) -> Result<CommandTemplate, EmptyCommand> {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            return Err(EmptyCommand { event });
        }
        Ok(CommandTemplate { words })
    }

    /// The program and arguments for one experiment.
    pub fn render(&self, pid: &str, eid: &str) -> Vec<String> {
        self.words
            .iter()
            .map(|word| word.replace("{pid}", pid).replace("{eid}", eid))
            .collect()
    }
}

/// The commands and the experiment they act on.
#[derive(Clone, Debug)]
pub struct SimulatorCommands {
    /// For `SWAPOUT`.
    pub swapout: CommandTemplate,
    /// For `HALT`.
    pub halt: CommandTemplate,
    /// Project id.
    pub pid: String,
    /// Experiment id.
    pub eid: String,
}

/// Starts the runner thread; it ends when every sender of `requests` is
/// gone.
pub fn start_runner(
    commands: SimulatorCommands,
    requests: Receiver<SimulatorRequest>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("event-sched-simulator".into())
        .spawn(move || {
            for request in requests {
                run_request(&commands, &request);
            }
        })
}

/// Carries out one SIMULATOR event.
pub fn run_request(commands: &SimulatorCommands, request: &SimulatorRequest) {
    let template = match request.eventtype.as_str() {
        "SWAPOUT" => &commands.swapout,
        "HALT" => &commands.halt,
        other => {
            tracing::error!(
                origin = ?request.origin,
                "cannot handle SIMULATOR event {other}: only SWAPOUT and HALT are supported"
            );
            return;
        }
    };
    if running_as_root() {
        tracing::error!(
            "Cannot run SIMULATOR {} as root: run event-sched as the experiment's user",
            request.eventtype
        );
        return;
    }
    let argv = template.render(&commands.pid, &commands.eid);
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    tracing::info!(
        "SIMULATOR {}: running {}",
        request.eventtype,
        argv.join(" ")
    );
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(
                "SIMULATOR {}: could not run `{program}`: {error} (check the command and PATH, \
                 or set --{}-command)",
                request.eventtype,
                request.eventtype.to_ascii_lowercase()
            );
            return;
        }
    };
    let out = child
        .stdout
        .take()
        .map(|s| std::thread::spawn(move || log_stream(s, "stdout")));
    let err = child
        .stderr
        .take()
        .map(|s| std::thread::spawn(move || log_stream(s, "stderr")));
    let status = child.wait();
    for reader in [out, err].into_iter().flatten() {
        let _ = reader.join();
    }
    match status {
        Ok(status) if status.success() => {
            tracing::info!("SIMULATOR {}: `{program}` succeeded", request.eventtype);
        }
        Ok(status) => {
            tracing::error!(
                "SIMULATOR {}: `{program}` failed ({status})",
                request.eventtype
            );
        }
        Err(error) => {
            tracing::error!(
                "SIMULATOR {}: waiting for `{program}` failed: {error}",
                request.eventtype
            );
        }
    }
}

/// Logs a child's output line by line, bounded in line length and count.
fn log_stream(mut stream: impl Read, label: &'static str) {
    let mut chunk = [0u8; 8192];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut logged = 0usize;
    let emit = |line: &mut Vec<u8>, logged: &mut usize| {
        if *logged < MAX_LOGGED_LINES {
            tracing::info!(stream = label, "| {}", String::from_utf8_lossy(line));
        } else if *logged == MAX_LOGGED_LINES {
            tracing::info!(stream = label, "| (further output not logged)");
        }
        *logged = logged.saturating_add(1);
        line.clear();
    };
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in chunk.get(..n).unwrap_or(&[]) {
            if byte == b'\n' {
                emit(&mut line, &mut logged);
            } else if line.len() < MAX_LINE_BYTES {
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut logged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_substitute_every_word_and_refuse_empty() {
        let t = CommandTemplate::parse("swapexp -s out {pid} {eid}", "SWAPOUT").unwrap();
        assert_eq!(t.render("p", "e"), ["swapexp", "-s", "out", "p", "e"]);
        let t = CommandTemplate::parse("/bin/x {pid}/{eid}", "HALT").unwrap();
        assert_eq!(t.render("p", "e"), ["/bin/x", "p/e"]);
        // No shell: a hostile name stays one argument.
        assert_eq!(t.render("p;rm", "e"), ["/bin/x", "p;rm/e"]);
        assert!(CommandTemplate::parse("  ", "HALT").is_err());
    }
}
