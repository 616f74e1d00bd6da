//! The operator guides name only commands and flags that exist: every
//! command line in docs/upgrading.md, docs/deploy.md and docs/eventsys.md
//! that starts with one of our programs is checked against that program's
//! `--help` (the subcommand's, for `tbevents` and the proxy).

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

/// Our programs, as the guides name them.
const PROGRAMS: &[&str] = &[
    "tbevents",
    "eventd",
    "tevc",
    "eventdebug",
    "evproxy",
    "tbevents-relay",
    "event-sched",
    "tbevents-eventsys-proxy",
    "xtask",
];

/// Programs whose first word after the name is a subcommand.
const WITH_SUBCOMMANDS: &[&str] = &["tbevents", "tbevents-eventsys-proxy", "xtask"];

/// Every command line in a Markdown text: the lines of code blocks and
/// the inline code spans.
fn command_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut continued = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let line = line.split(" #").next().unwrap_or("").trim();
            if let Some(head) = line.strip_suffix('\\') {
                continued.push_str(head);
                continued.push(' ');
                continue;
            }
            continued.push_str(line);
            lines.push(std::mem::take(&mut continued));
        } else {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    lines.push(span.to_owned());
                }
            }
        }
    }
    lines
}

fn help(program: &str, subcommand: Option<&str>) -> String {
    let path = if program == "xtask" {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
    } else {
        tbevents_testkit::bin_path(program)
    };
    let mut command = Command::new(path);
    if let Some(sub) = subcommand {
        command.arg(sub);
    }
    let (_, text) = tbevents_testkit::run_to_text(command.arg("--help"));
    text
}

/// True when `flag` appears in `help` as a whole option name.
fn mentions(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_command_in_the_operator_guides_exists_with_its_flags() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut checked = 0;
    let mut problems = Vec::new();
    for guide in ["upgrading.md", "deploy.md", "eventsys.md"] {
        let text = std::fs::read_to_string(docs.join(guide)).unwrap();
        for line in command_lines(&text) {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            // `cargo xtask install ...` is the xtask program.
            if words.starts_with(&["cargo", "xtask"]) {
                words.remove(0);
            }
            let Some(program) = words.first().copied() else {
                continue;
            };
            if !PROGRAMS.contains(&program) {
                continue;
            }
            let subcommand = words
                .get(1)
                .filter(|w| WITH_SUBCOMMANDS.contains(&program) && !w.starts_with('-'))
                .copied();
            let help_text = help(program, subcommand);
            if subcommand.is_some() && help_text.contains("unrecognized subcommand") {
                problems.push(format!("{guide}: `{line}`: no subcommand {subcommand:?}"));
                continue;
            }
            for word in &words[1..] {
                if !word.starts_with('-') || *word == "--" {
                    continue;
                }
                let flag = word.split('=').next().unwrap_or(word);
                if !mentions(&help_text, flag) {
                    problems.push(format!("{guide}: `{line}`: {program} has no {flag}"));
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} command lines found: is the parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
