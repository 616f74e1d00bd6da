//! Starting, stopping and inspecting one experiment's scheduler.
//!
//! Every operation on an experiment first takes an exclusive `flock` on
//! its lock file in the root-only run directory, so a start and a stop
//! (or two starts) for one experiment run one after the other: two
//! schedulers for one experiment can never both be started, and a stop
//! never races a half-finished start. Operations on different
//! experiments do not wait for each other.
//!
//! * start: when the pid file names our live scheduler, there is nothing
//!   to do (idempotent). An experiment that is not `active` is refused
//!   (its scheduler would wait for ever). Otherwise the scheduler's store
//!   is prepared: unless the configuration names one, a read-only
//!   snapshot of this experiment's rows alone (root-owned, readable by the
//!   experiment's group), so the scheduler never sees the site's store.
//!   The previous log becomes `.old`, a new log is created (root-owned,
//!   readable by the experiment's group), and `event-sched` is spawned in
//!   its own session with its output in the log, as the swapper's uid,
//!   the experiment's gid and the user's groups, with a clean
//!   environment. The pid file is written, and the scheduler is watched
//!   for one second: if it exits, the pid file is removed and the error
//!   carries the log's last lines.
//! * stop: no pid file, or a process that has exited, is success. A live
//!   process is signalled only when it is still our scheduler for this
//!   experiment (see [`crate::pidfile`]); SIGTERM, then SIGKILL after the
//!   configured time; the pid file and the snapshot are removed once it
//!   is gone.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tbevents_store::{ExperimentId, ExperimentState, ExperimentStore};

use crate::account::{self, RunAs};
use crate::config::ControlConfig;
use crate::error::ControlError;
use crate::pidfile::{self, PidRecord, ProcState};

/// How long a new scheduler must survive to count as started (the
/// original's check).
pub const STARTUP_GRACE: Duration = Duration::from_secs(1);

/// Log lines quoted when a scheduler dies at start.
pub const LOG_TAIL_LINES: usize = 20;

/// Mode of a scheduler's log file (the experiment's group may read it).
pub const LOG_FILE_MODE: u32 = 0o640;

/// The result of a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// A new scheduler is running.
    Started {
        /// Its process id.
        pid: i32,
        /// Its log file.
        log: PathBuf,
    },
    /// Our scheduler was already running; nothing was done.
    AlreadyRunning {
        /// Its process id.
        pid: i32,
    },
}

/// The result of a stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The scheduler was signalled and has exited.
    Stopped {
        /// Its process id.
        pid: i32,
        /// It needed SIGKILL.
        killed: bool,
    },
    /// No scheduler was running (a pid file of an exited one was removed).
    NotRunning,
}

/// What [`status`] finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Our scheduler runs.
    Running {
        /// Its process id.
        pid: i32,
    },
    /// No scheduler runs.
    NotRunning,
    /// A pid file names a process that is not our scheduler.
    Stale {
        /// The process id in the file.
        pid: i32,
        /// Why it is not ours.
        why: String,
    },
}

/// Scheduler control for one configuration and store.
pub struct Control<'a> {
    config: &'a ControlConfig,
    store: &'a dyn ExperimentStore,
}

impl<'a> Control<'a> {
    /// Control with these settings over this store.
    pub fn new(config: &'a ControlConfig, store: &'a dyn ExperimentStore) -> Self {
        Control { config, store }
    }

    /// The experiment's pid file.
    pub fn pid_path(&self, id: &ExperimentId) -> PathBuf {
        pidfile::pid_path(&self.config.run_dir, id)
    }

    /// The experiment's scheduler log.
    pub fn log_path(&self, id: &ExperimentId) -> PathBuf {
        self.config
            .log_dir
            .join(format!("{}_{}.log", id.pid, id.eid))
    }

    /// Refuses callers who may not control `id`'s scheduler (see
    /// [`account::authorize`]).
    pub fn authorize(&self, id: &ExperimentId, caller_uid: u32) -> Result<(), ControlError> {
        id.validate()?;
        let experiment = self.store.experiment(id)?;
        account::authorize(self.store, &experiment, caller_uid)
    }

    /// Takes the experiment's lock, waiting for another start or stop.
    fn lock(&self, id: &ExperimentId) -> Result<Flock<File>, ControlError> {
        id.validate()?;
        pidfile::ensure_root_only_dir(&self.config.run_dir)?;
        let path = pidfile::lock_path(&self.config.run_dir, id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(ControlError::io("opening the lock file", &path))?;
        pidfile::check_root_only(&path)?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| ControlError::Os {
            doing: format!("locking {}", path.display()),
            source,
        })
    }

    /// Whether the experiment's scheduler runs.
    pub fn status(&self, id: &ExperimentId) -> Result<Status, ControlError> {
        status(self.config, id)
    }

    /// Starts the scheduler unless ours already runs.
    pub fn start(&self, id: &ExperimentId) -> Result<Started, ControlError> {
        let _lock = self.lock(id)?;
        self.start_locked(id)
    }

    /// Stops the scheduler if it runs.
    pub fn stop(&self, id: &ExperimentId) -> Result<Stopped, ControlError> {
        let _lock = self.lock(id)?;
        self.stop_locked(id)
    }

    /// Stops and starts again, under one lock (the original's `replay`).
    pub fn replay(&self, id: &ExperimentId) -> Result<(Stopped, Started), ControlError> {
        let _lock = self.lock(id)?;
        let stopped = self.stop_locked(id)?;
        let started = self.start_locked(id)?;
        Ok((stopped, started))
    }

    fn start_locked(&self, id: &ExperimentId) -> Result<Started, ControlError> {
        let pid_path = self.pid_path(id);
        match pidfile::read(&pid_path) {
            Ok(Some(record)) => match classify(&record) {
                Status::Running { pid } => return Ok(Started::AlreadyRunning { pid }),
                _ => pidfile::remove(&pid_path)?,
            },
            Ok(None) => {}
            // Not ours or unreadable: it names nothing we would signal.
            Err(ControlError::Unsafe { .. }) => pidfile::remove(&pid_path)?,
            Err(error) => return Err(error),
        }
        let experiment = self.store.experiment(id)?;
        if experiment.state != ExperimentState::Active {
            return Err(ControlError::NotActive {
                id: id.clone(),
                state: experiment.state.to_string(),
            });
        }
        let run_as = account::run_as(self.store, &experiment)?;
        let key = tbevents_store::event_key_path(Path::new(&experiment.path));
        let store_url = match &self.config.scheduler_store {
            Some(url) => url.clone(),
            None => self.write_snapshot(id)?,
        };
        let log_path = self.log_path(id);
        let log = open_fresh_log(&self.config.log_dir, &log_path, run_as.gid)?;
        let mut command = self.command(id, &key, &store_url, &run_as);
        let stderr = log
            .try_clone()
            .map_err(ControlError::io("duplicating the log file", &log_path))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(ControlError::io(
                "duplicating the log file",
                &log_path,
            ))?))
            .stderr(Stdio::from(stderr));
        let mut child = command.spawn().map_err(|source| ControlError::Spawn {
            program: self.config.event_sched.clone(),
            source,
        })?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        // The start time is read while the child cannot have been reaped
        // (it is our child until we wait for it).
        let Some(start_time) = pidfile::start_time(pid) else {
            let status = child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(died(id, status, &log_path));
        };
        let record = PidRecord {
            pid,
            start_time,
            experiment: id.clone(),
        };
        if let Err(error) = pidfile::write(&pid_path, &record) {
            // A scheduler nobody can find again must not run on.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        let deadline = Instant::now() + STARTUP_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    pidfile::remove(&pid_path)?;
                    let _ = self.remove_snapshot(id);
                    return Err(died(id, status.to_string(), &log_path));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    return Err(ControlError::io("watching the scheduler", &log_path)(error));
                }
            }
        }
        // The child runs on in its own session; when this process exits it
        // is re-parented (and reaped) by init.
        Ok(Started::Started { pid, log: log_path })
    }

    /// The experiment's snapshot file.
    pub fn snapshot_path(&self, id: &ExperimentId) -> PathBuf {
        self.config
            .snapshot_dir
            .join(format!("{}_{}.db", id.pid, id.eid))
    }

    /// Writes the experiment's read-only snapshot (root-owned, readable by
    /// its group) and returns its store URL.
    fn write_snapshot(&self, id: &ExperimentId) -> Result<String, ControlError> {
        pidfile::ensure_root_only_dir(&self.config.snapshot_dir)?;
        let path = self.snapshot_path(id);
        tbevents_store::write_experiment_snapshot(self.store, id, &path)?;
        Ok(format!("sqlite:{}", path.display()))
    }

    /// The scheduler's command line: flags, then `--`, then the names, so
    /// no name can be read as an option.
    fn command(&self, id: &ExperimentId, key: &Path, store_url: &str, run_as: &RunAs) -> Command {
        let c = self.config;
        let mut command = Command::new(&c.event_sched);
        command.arg("-s").arg(&c.server);
        if let Some(port) = c.port {
            command.arg("-p").arg(port.to_string());
        }
        command.arg("-k").arg(key).arg("--store").arg(store_url);
        command.args(&c.scheduler_args);
        command.arg("--").arg(&id.pid).arg(&id.eid);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &run_as.home)
            .env("USER", &run_as.name)
            .env("LOGNAME", &run_as.name)
            .current_dir("/");
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        let uid = run_as.uid;
        let gid = run_as.gid;
        let groups: Vec<libc::gid_t> = run_as.groups.clone();
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes async-signal-safe system calls on data prepared before
        // the fork.
        unsafe {
            command.pre_exec(move || drop_to(uid, gid, &groups));
        }
        command
    }

    /// Removes the experiment's snapshot once its scheduler is gone.
    fn remove_snapshot(&self, id: &ExperimentId) -> Result<(), ControlError> {
        let path = self.snapshot_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(ControlError::io("removing the snapshot", &path)(error)),
        }
    }

    fn stop_locked(&self, id: &ExperimentId) -> Result<Stopped, ControlError> {
        let pid_path = self.pid_path(id);
        let record = match pidfile::read(&pid_path) {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(Stopped::NotRunning),
            Err(ControlError::Unsafe { path, why }) => {
                // Someone else could have written it: never act on it.
                let _ = pidfile::remove(&pid_path);
                return Err(ControlError::Unsafe { path, why });
            }
            Err(error) => return Err(error),
        };
        if record.experiment != *id {
            pidfile::remove(&pid_path)?;
            return Err(ControlError::NotOurScheduler {
                id: id.clone(),
                pid: record.pid,
                path: pid_path,
                why: format!("the file is for {}", record.experiment),
            });
        }
        // Open the pidfd first: whatever we check below is then the very
        // process we signal, even if it exits and its pid is reused.
        let pidfd = match pidfd_open(record.pid) {
            Ok(fd) => fd,
            Err(nix::Error::ESRCH) => {
                reap(record.pid);
                pidfile::remove(&pid_path)?;
                self.remove_snapshot(id)?;
                return Ok(Stopped::NotRunning);
            }
            Err(source) => {
                return Err(ControlError::Os {
                    doing: format!("opening process {}", record.pid),
                    source,
                });
            }
        };
        let state = pidfile::proc_state(record.pid);
        if state == ProcState::Gone {
            reap(record.pid);
            pidfile::remove(&pid_path)?;
            self.remove_snapshot(id)?;
            return Ok(Stopped::NotRunning);
        }
        if let Some(why) = pidfile::mismatch(&record, &state) {
            pidfile::remove(&pid_path)?;
            return Err(ControlError::NotOurScheduler {
                id: id.clone(),
                pid: record.pid,
                path: pid_path,
                why,
            });
        }
        let signal_failed = |source| ControlError::Os {
            doing: format!("signalling the scheduler (process {})", record.pid),
            source,
        };
        pidfd_send_signal(&pidfd, libc::SIGTERM).map_err(signal_failed)?;
        let mut killed = false;
        if !wait_exit(&pidfd, record.pid, self.config.stop_timeout) {
            pidfd_send_signal(&pidfd, libc::SIGKILL).map_err(signal_failed)?;
            killed = true;
            if !wait_exit(&pidfd, record.pid, Duration::from_secs(5)) {
                return Err(ControlError::WouldNotDie {
                    id: id.clone(),
                    pid: record.pid,
                });
            }
        }
        pidfile::remove(&pid_path)?;
        self.remove_snapshot(id)?;
        Ok(Stopped::Stopped {
            pid: record.pid,
            killed,
        })
    }
}

/// Whether the experiment's scheduler runs: needs no store and no
/// privilege (pid files are world-readable).
pub fn status(config: &ControlConfig, id: &ExperimentId) -> Result<Status, ControlError> {
    id.validate()?;
    let Some(record) = pidfile::read(&pidfile::pid_path(&config.run_dir, id))? else {
        return Ok(Status::NotRunning);
    };
    Ok(classify(&record))
}

/// Running or stale, from `/proc`.
fn classify(record: &PidRecord) -> Status {
    let state = pidfile::proc_state(record.pid);
    if state == ProcState::Gone {
        return Status::NotRunning;
    }
    match pidfile::mismatch(record, &state) {
        None => Status::Running { pid: record.pid },
        Some(why) => Status::Stale {
            pid: record.pid,
            why,
        },
    }
}

/// The error for a scheduler that exited at start, with its log's tail.
fn died(id: &ExperimentId, status: String, log: &Path) -> ControlError {
    ControlError::DiedAtStart {
        id: id.clone(),
        status,
        log: log.to_owned(),
        tail: log_tail(log, LOG_TAIL_LINES),
    }
}

/// The last `lines` lines of a log (at most its last 64 KiB), indented.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return "  (the log is empty)".to_owned();
    }
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keeps the previous log as `.old` and creates a new, empty one owned by
/// root with the experiment's group, mode 0640, in the root-only log
/// directory (so no user can point it elsewhere with a symbolic link).
fn open_fresh_log(dir: &Path, path: &Path, gid: u32) -> Result<File, ControlError> {
    pidfile::ensure_root_only_dir(dir)?;
    let mut old = path.as_os_str().to_owned();
    old.push(".old");
    match std::fs::rename(path, &old) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(ControlError::io("keeping the previous log of", path)(error)),
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(LOG_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(ControlError::io("creating the scheduler log", path))?;
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchown(&file, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(
            |source| ControlError::Os {
                doing: format!("giving {} to group {gid}", path.display()),
                source,
            },
        )?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(LOG_FILE_MODE))
        .map_err(ControlError::io("setting the mode of", path))?;
    Ok(file)
}

/// In the child: a new session, then the user's groups, gid and uid, in
/// that order (groups and gid need the privilege the uid change gives
/// up), and no way back to privilege.
fn drop_to(uid: u32, gid: u32, groups: &[libc::gid_t]) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain system calls on values owned by this closure.
    unsafe {
        check(libc::setsid())?;
        if libc::geteuid() == 0 {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))?;
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        if uid != 0 && (libc::getuid() == 0 || libc::geteuid() == 0) {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}

/// `pidfd_open(2)`.
fn pidfd_open(pid: i32) -> Result<OwnedFd, nix::Error> {
    // SAFETY: the syscall takes two integers and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(2)`.
fn pidfd_send_signal(fd: &OwnedFd, signal: i32) -> Result<(), nix::Error> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        let error = nix::Error::last();
        // Already exited (and not yet reaped): nothing left to signal.
        if error == nix::Error::ESRCH {
            return Ok(());
        }
        return Err(error);
    }
    Ok(())
}

/// Waits until the process behind `fd` has exited (the pidfd becomes
/// readable), reaping it if it is our child. False on timeout.
fn wait_exit(fd: &OwnedFd, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if rc > 0 {
            reap(pid);
            return true;
        }
        if rc == 0 || Instant::now() >= deadline {
            return false;
        }
        // EINTR: poll again.
    }
}

/// Reaps `pid` if it is an exited child of ours (in tests the scheduler
/// is our child; the proxy's children are re-parented to init).
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}
