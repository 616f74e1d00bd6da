//! Root-only pid files that identify one process beyond doubt.
//!
//! A pid alone is not an identity: after the scheduler dies its pid can be
//! reused by any process, and a stop that trusted the number would kill a
//! stranger. So the pid file records the process's start time (field 22
//! of `/proc/<pid>/stat`, clock ticks since boot, which never repeats for
//! a pid) and the experiment, and a stop signals the process only when
//! both the start time and its command line (`event-sched ... -- pid eid`)
//! still match. The signal goes through a pidfd opened *before* the
//! checks, so the process checked is the process signalled.
//!
//! The files live in a directory only root can write ([`check_root_only`]
//! refuses anything else), are written to a temporary name and renamed,
//! and are mode 0644: users may read them (`tbevents state` does), never
//! write them.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tbevents_store::ExperimentId;

use crate::error::ControlError;

/// Mode of the pid-file directory.
pub const RUN_DIR_MODE: u32 = 0o755;
/// Mode of a pid file.
pub const PID_FILE_MODE: u32 = 0o644;

/// What a pid file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidRecord {
    /// The scheduler's process id.
    pub pid: i32,
    /// Its start time, in clock ticks since boot.
    pub start_time: u64,
    /// The experiment it runs for.
    pub experiment: ExperimentId,
}

impl PidRecord {
    /// The file's text: `pid`, `start_time` and `pid/eid`, one a line.
    pub fn render(&self) -> String {
        format!("{}\n{}\n{}\n", self.pid, self.start_time, self.experiment)
    }

    /// Parses [`PidRecord::render`]'s text.
    pub fn parse(text: &str) -> Option<PidRecord> {
        let mut lines = text.lines();
        let pid = lines
            .next()?
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 1)?;
        let start_time = lines.next()?.trim().parse().ok()?;
        let experiment = ExperimentId::parse(lines.next()?.trim())?;
        Some(PidRecord {
            pid,
            start_time,
            experiment,
        })
    }
}

/// Creates `dir` (mode 0755) if missing, then checks that it is owned by
/// root (or by us, when we are not root: tests) and writable by nobody
/// else, and that every directory above it is owned by root and not
/// writable by everyone (unless sticky, like /tmp).
pub fn ensure_root_only_dir(dir: &Path) -> Result<(), ControlError> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(RUN_DIR_MODE)
            .create(dir)
            .map_err(ControlError::io("creating the directory", dir))?;
        // The umask may have narrowed it; users need to read it for status.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(RUN_DIR_MODE))
            .map_err(ControlError::io("setting the mode of", dir))?;
    }
    check_root_only(dir)?;
    // Above our own directory a symbolic link is fine (Debian's /var/run
    // points at /run) as long as what it leads to is root-only too.
    let mut current = dir.parent();
    while let Some(path) = current {
        let target = std::fs::canonicalize(path).map_err(ControlError::io("resolving", path))?;
        check_owner_and_mode(&target, 0o002)?;
        current = path.parent();
    }
    Ok(())
}

/// Checks that `path` is owned by root (or our effective uid) and not
/// writable by group or others (a sticky directory such as /tmp is
/// accepted above our own directory: nobody can rename what is in it).
pub fn check_root_only(path: &Path) -> Result<(), ControlError> {
    check_owner_and_mode(path, 0o022)
}

/// The check behind [`check_root_only`], with the write bits that are
/// refused: group and others for our own files, others only for the
/// directories above them (Ubuntu's /var/log is group-writable by `syslog`,
/// a system group).
fn check_owner_and_mode(path: &Path, refused: u32) -> Result<(), ControlError> {
    let meta = std::fs::symlink_metadata(path).map_err(ControlError::io("examining", path))?;
    let unsafe_because = |why: String| ControlError::Unsafe {
        path: path.to_owned(),
        why,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_because("it is a symbolic link".to_owned()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_because(format!("owned by uid {}", meta.uid())));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & refused != 0 && !(meta.is_dir() && sticky) {
        return Err(unsafe_because(format!("mode {:o}", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// The pid file of an experiment's scheduler.
pub fn pid_path(run_dir: &Path, id: &ExperimentId) -> PathBuf {
    run_dir.join(format!("{}_{}.pid", id.pid, id.eid))
}

/// The lock file of an experiment's scheduler.
pub fn lock_path(run_dir: &Path, id: &ExperimentId) -> PathBuf {
    run_dir.join(format!("{}_{}.lock", id.pid, id.eid))
}

/// Reads a pid file; `None` when there is none. A file that is not
/// root-only or not in our format is an error (it is removed only by a
/// caller that decided to).
pub fn read(path: &Path) -> Result<Option<PidRecord>, ControlError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ControlError::io("reading the pid file", path)(error)),
    };
    check_root_only(path)?;
    PidRecord::parse(&text)
        .map(Some)
        .ok_or_else(|| ControlError::Unsafe {
            path: path.to_owned(),
            why: "its content is not a tbevents pid file".to_owned(),
        })
}

/// Writes a pid file atomically (temporary file, then rename), mode 0644.
pub fn write(path: &Path, record: &PidRecord) -> Result<(), ControlError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let temp = dir.join(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PID_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(ControlError::io("creating the pid file", &temp))?;
    file.set_permissions(std::fs::Permissions::from_mode(PID_FILE_MODE))
        .and_then(|()| file.write_all(record.render().as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(ControlError::io("writing the pid file", &temp))?;
    std::fs::rename(&temp, path).map_err(ControlError::io("renaming the pid file to", path))
}

/// Removes a pid file; a missing one is fine.
pub fn remove(path: &Path) -> Result<(), ControlError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ControlError::io("removing the pid file", path)(error)),
    }
}

/// What `/proc` says about a pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// No such process (or only a zombie: it has exited).
    Gone,
    /// A live process with this start time and command line.
    Live {
        /// Field 22 of `/proc/<pid>/stat`.
        start_time: u64,
        /// `argv`, split at NULs.
        argv: Vec<String>,
    },
}

/// Reads `/proc/<pid>/stat` and `cmdline`.
pub fn proc_state(pid: i32) -> ProcState {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return ProcState::Gone;
    };
    // The command name (field 2) is in parentheses and may hold anything;
    // the fields after the last ')' are plain.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return ProcState::Gone;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return ProcState::Gone;
    }
    let Some(start_time) = fields.get(19).and_then(|f| f.parse().ok()) else {
        return ProcState::Gone;
    };
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    ProcState::Live { start_time, argv }
}

/// The start time of a live process.
pub fn start_time(pid: i32) -> Option<u64> {
    match proc_state(pid) {
        ProcState::Live { start_time, .. } => Some(start_time),
        ProcState::Gone => None,
    }
}

/// Why the process `record` names is not the scheduler of its experiment,
/// or `None` when it is. `state` is its current `/proc` view.
pub fn mismatch(record: &PidRecord, state: &ProcState) -> Option<String> {
    let ProcState::Live { start_time, argv } = state else {
        return Some("it has exited".to_owned());
    };
    if *start_time != record.start_time {
        return Some(format!(
            "it started at tick {start_time}, not at tick {} as recorded (the pid was reused)",
            record.start_time
        ));
    }
    let program = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let tail_ok = argv.len() >= 3
        && argv[argv.len() - 3] == "--"
        && argv[argv.len() - 2] == record.experiment.pid
        && argv[argv.len() - 1] == record.experiment.eid;
    if program != "event-sched" || !tail_ok {
        return Some(format!(
            "its command line is `{}`, not `event-sched ... -- {} {}`",
            argv.join(" "),
            record.experiment.pid,
            record.experiment.eid
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_refused() {
        let r = PidRecord {
            pid: 4242,
            start_time: 123_456,
            experiment: ExperimentId::new("testbed", "web"),
        };
        assert_eq!(PidRecord::parse(&r.render()), Some(r));
        assert_eq!(PidRecord::parse("1\n5\na/b\n"), None, "pid 1 is never ours");
        assert_eq!(PidRecord::parse("x\n5\na/b\n"), None);
        assert_eq!(PidRecord::parse("12\n"), None);
    }

    #[test]
    fn symbolic_links_above_the_directory_are_followed_not_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("run");
        std::fs::create_dir(&real).unwrap();
        let link = base.path().join("varrun");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dir = link.join("tbevents/evsched");
        ensure_root_only_dir(&dir).unwrap();
        assert!(real.join("tbevents/evsched").is_dir());
        // The directory itself may not be a link.
        let leaf = base.path().join("leaf");
        std::os::unix::fs::symlink(&real, &leaf).unwrap();
        assert!(matches!(
            ensure_root_only_dir(&leaf),
            Err(ControlError::Unsafe { .. })
        ));
    }

    #[test]
    fn our_own_process_is_live_and_not_a_scheduler() {
        let me = std::process::id() as i32;
        let state = proc_state(me);
        let ProcState::Live { start_time, .. } = &state else {
            panic!("we are alive");
        };
        let record = PidRecord {
            pid: me,
            start_time: *start_time,
            experiment: ExperimentId::new("p", "e"),
        };
        let why = mismatch(&record, &state).unwrap();
        assert!(why.contains("command line"), "{why}");
        let wrong_time = PidRecord {
            start_time: start_time + 1,
            ..record
        };
        assert!(mismatch(&wrong_time, &state).unwrap().contains("reused"));
    }
}
