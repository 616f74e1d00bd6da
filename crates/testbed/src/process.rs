//! The processes the testbed starts, and stopping them again.
//!
//! A process is recorded by pid *and* its kernel start time (field 22 of
//! `/proc/<pid>/stat`), so that a pid reused by an unrelated program after
//! a reboot or a crash is never signalled. Processes are started in their
//! own session, with standard input closed and both output streams in one
//! log file, so they outlive `tbevents testbed up` and keep running until
//! `testbed down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process the testbed started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is (`eventd`, `evproxy`, `program-agent`, ...).
    pub program: String,
    /// The namespace it runs in (`None`: the host's).
    pub namespace: Option<String>,
    /// The virtual node (or delay node) it serves, if any.
    pub vnode: Option<String>,
    /// Its pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot.
    pub start_time: u64,
    /// Its log file.
    pub log: PathBuf,
}

impl ProcessRecord {
    /// Whether this very process is still running (not a reused pid, not
    /// a zombie).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(state, start)| start == self.start_time && state != 'Z')
    }
}

/// State and start time of a pid, from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; the
    // fields after the last ')' are plain.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After ')' come state (field 3) ... starttime (field 22).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` names a live (non-zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Starts `command` with its output to `log`, and records it. The child is
/// reaped by a background thread so it never lingers as a zombie in a
/// long-running caller (tests, the demo).
pub fn spawn(
    mut command: Command,
    program: &str,
    namespace: Option<&str>,
    vnode: Option<&str>,
    log: &Path,
) -> anyhow::Result<ProcessRecord> {
    let file = std::fs::File::create(log)
        .with_context(|| format!("cannot create the log file {}", log.display()))?;
    let err = file.try_clone().context("cannot share a log file")?;
    command.stdin(Stdio::null()).stdout(file).stderr(err);
    let mut child = command.spawn().with_context(|| {
        format!(
            "cannot start {program}{}",
            namespace
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        )
    })?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let start_time = stat(pid).map(|(_, start)| start).unwrap_or(0);
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || {
            let _ = child.wait();
        })
        .context("cannot start a thread")?;
    Ok(ProcessRecord {
        program: program.to_owned(),
        namespace: namespace.map(str::to_owned),
        vnode: vnode.map(str::to_owned),
        pid,
        start_time,
        log: log.to_owned(),
    })
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends SIGTERM to every pid, waits up to `patience` for them to exit,
/// then SIGKILLs the rest and waits for those too. Returns the pids that
/// were still alive at the end (none unless the kernel would not let go).
pub fn stop_all(pids: &[i32], patience: Duration) -> Vec<i32> {
    let signal_all = |signal: Signal| {
        for &pid in pids {
            if pid > 1 && pid_alive(pid) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
    };
    let wait = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let left: Vec<i32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    signal_all(Signal::SIGTERM);
    if wait(patience).is_empty() {
        return Vec::new();
    }
    signal_all(Signal::SIGKILL);
    wait(Duration::from_secs(5))
}

/// Processes whose command line contains every one of `needles`, as
/// separate arguments (used to find a forwarder whose record was lost).
pub fn find_by_arguments(needles: &[&str]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| u32::try_from(pid).ok() != Some(own))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|bytes| {
                let args: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
                needles
                    .iter()
                    .all(|needle| args.contains(&needle.as_bytes()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_is_readable_and_records_detect_reuse() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let (state, start) = stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(start > 0);
        let mut record = ProcessRecord {
            program: "x".into(),
            namespace: None,
            vnode: None,
            pid,
            start_time: start,
            log: PathBuf::new(),
        };
        assert!(record.alive());
        record.start_time += 1;
        assert!(!record.alive(), "a different start time is another process");
    }

    #[test]
    fn spawned_processes_stop_and_are_found_by_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("tbtest-{}", std::process::id());
        let mut command = Command::new("sh");
        command.args(["-c", "while :; do sleep 1; done", &tag]);
        let record = spawn(command, "sh", None, None, &dir.path().join("log")).unwrap();
        assert!(record.alive());
        // The kernel lets the parent go on at exec's point of no return,
        // before it has set up the new argument area, so for a moment
        // `/proc/<pid>/cmdline` is empty: wait for it, with a deadline.
        // (The shell's own forks for `sleep` may match too, until they exec.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while !find_by_arguments(&["-c", &tag]).contains(&record.pid) {
            assert!(
                Instant::now() < deadline,
                "the spawned shell was never found by its arguments"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(stop_all(&[record.pid], Duration::from_secs(5)).is_empty());
        assert!(!record.alive());
    }
}
