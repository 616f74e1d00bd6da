//! What a run found, and the files and summary it leaves.
//!
//! Like the original, each node with errors gets one file,
//! `<results>/<node>.error`, in the original's format:
//!
//! ```text
//! Latency (Round Trip)
//!   Link:  client to router (100 Mbps, 10ms, 0% loss)
//!   Error: Probable latency misconfiguration (expected=20.03ms, measured mean=60.11ms, n=10)
//!
//! ```
//!
//! and the run's exit status is the number of such files. The controller
//! writes the files (nodes send their errors as events), so nodes need no
//! shared file system. `--json` prints [`Summary`] instead of the text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

/// One error a node found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorRecord {
    /// The test's title (`Latency (Round Trip)`, ...).
    pub test: String,
    /// The link, as [`crate::topology::Edge::describe`] writes it; empty
    /// for node-level errors (routing).
    pub link: String,
    /// What is wrong.
    pub message: String,
}

impl ErrorRecord {
    /// The record in the original's error-file format.
    pub fn to_error_file_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.test);
        if !self.link.is_empty() {
            let _ = writeln!(out, "  Link:  {}", self.link);
        }
        let _ = writeln!(out, "  Error: {}", self.message);
        out.push('\n');
        out
    }
}

/// A run's outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `pid/eid`.
    pub experiment: String,
    /// The run id.
    pub run: u32,
    /// First and last level run.
    pub levels: (u8, u8),
    /// Nodes that took part.
    pub nodes: Vec<String>,
    /// Steps completed / planned.
    pub steps_completed: u32,
    /// Steps planned.
    pub steps_planned: u32,
    /// Errors per node (only nodes with errors).
    pub errors: BTreeMap<String, Vec<ErrorRecord>>,
    /// Tests that could not be run, and why.
    pub skipped: Vec<String>,
    /// Whether the run was cancelled (killed, timed out, a node vanished).
    pub cancelled: Option<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Summary {
    /// The exit status: the number of nodes with errors (as the original),
    /// or 255 for a cancelled run that found none.
    pub fn exit_status(&self) -> u8 {
        let nodes = self.errors.len().min(254) as u8;
        if self.cancelled.is_some() && nodes == 0 {
            255
        } else {
            nodes
        }
    }

    /// Writes `<dir>/<node>.error` for every node with errors.
    pub fn write_error_files(&self, dir: &Path) -> io::Result<()> {
        for (node, records) in &self.errors {
            let text: String = records
                .iter()
                .map(ErrorRecord::to_error_file_text)
                .collect();
            std::fs::write(dir.join(format!("{node}.error")), text)?;
        }
        Ok(())
    }

    /// The text the controller prints at the end.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (node, records) in &self.errors {
            let _ = writeln!(out, "==> {node}.error <==");
            for record in records {
                out.push_str(&record.to_error_file_text());
            }
        }
        for skipped in &self.skipped {
            let _ = writeln!(out, "Skipped: {skipped}");
        }
        match &self.cancelled {
            Some(reason) => {
                let _ = writeln!(out, "Linktest has been cancelled: {reason}");
            }
            None => {
                let _ = writeln!(out, "Linktest completed normally.");
            }
        }
        let _ = writeln!(
            out,
            "{} of {} steps on {} nodes in {:.1} s; {} node(s) with errors.",
            self.steps_completed,
            self.steps_planned,
            self.nodes.len(),
            self.seconds,
            self.errors.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ErrorRecord {
        ErrorRecord {
            test: "Loss".into(),
            link: "a to b (1 Mbps, 10ms, 20% loss)".into(),
            message: "Probable loss misconfiguration".into(),
        }
    }

    #[test]
    fn error_files_use_the_original_format_and_the_status_counts_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let mut summary = Summary::default();
        summary.errors.insert("b".into(), vec![record(), record()]);
        summary.errors.insert(
            "c".into(),
            vec![ErrorRecord {
                test: "Static Routing".into(),
                link: String::new(),
                message: "c could not ping a".into(),
            }],
        );
        summary.write_error_files(dir.path()).unwrap();
        let b = std::fs::read_to_string(dir.path().join("b.error")).unwrap();
        assert_eq!(
            b,
            "Loss\n  Link:  a to b (1 Mbps, 10ms, 20% loss)\n  Error: Probable loss misconfiguration\n\n"
                .repeat(2)
        );
        let c = std::fs::read_to_string(dir.path().join("c.error")).unwrap();
        assert_eq!(c, "Static Routing\n  Error: c could not ping a\n\n");
        assert_eq!(summary.exit_status(), 2);
        summary.cancelled = Some("killed".into());
        assert_eq!(summary.exit_status(), 2);
        summary.errors.clear();
        assert_eq!(summary.exit_status(), 255);
        assert!(
            summary
                .to_text()
                .contains("Linktest has been cancelled: killed")
        );
    }
}
