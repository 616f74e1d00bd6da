//! Helpers for tbevents' multi-process integration tests.
//!
//! The project's tests run the real binaries (`eventd`, `tevc`,
//! `event-sched`, ...) as separate processes talking real TCP. This crate
//! holds the plumbing those tests share:
//!
//! - [`bin_path`] finds a workspace binary in the target directory and, if a
//!   test is run on its own (`cargo test -p x --test y`) before that binary
//!   was built, builds it once with cargo.
//! - [`Proc`] runs a binary with its output captured to files, kills it when
//!   dropped (so a failing test leaves no strays), and can wait for a line of
//!   output or for a TCP port to accept.
//! - [`free_port`] picks an unused loopback port.
//! - [`Router`] starts an `eventd` on a free loopback port.
//!
//! Everything here panics on failure: it is test-only code, where a panic
//! with a clear message is the right way to fail a test.

// Test support: failing loudly, with a message, is this crate's job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The target directory's profile directory (`target/debug` or
/// `target/release`) of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let deps = exe.parent().expect("test binary has a parent directory");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Path of the workspace binary `name`, building it with cargo if it is not
/// in the target directory yet (`tbevents_cli::programs`, as the demo
/// does).
///
/// `cargo test --workspace` builds every binary before any test runs, so the
/// build here only happens when a single package's tests run alone.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match tbevents_cli::programs::find_in(&dir, &[(name, "")], true) {
        Ok(mut found) => found.remove(0),
        Err(error) => panic!("{error}"),
    }
}

/// First and one-past-last port [`free_port`] hands out: below Linux's
/// ephemeral range (32768-60999), so a port chosen for a server cannot be
/// taken in the meantime by one of the many client sockets the tests open.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// An unused TCP port on 127.0.0.1 (free when this returns; tests bind it
/// right away).
///
/// Ports come from `TEST_PORTS`, walked from an offset that depends on
/// the process id, so concurrent test processes start far apart and one
/// process never hands out the same port twice in a row.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // The first call picks this process's starting point.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = TEST_PORTS.start + u16::try_from(offset).expect("offset within the span");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// Waits until a TCP connection to `addr` succeeds.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing accepted connections on {addr} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process whose stdout and stderr go to files, killed on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts the workspace binary `name` with `args`.
    pub fn start<I, S>(name: &str, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(bin_path(name));
        cmd.args(args);
        Proc::spawn(name, cmd)
    }

    /// Starts a prepared command (for environment or working directory
    /// settings); its stdout and stderr are replaced by capture files.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::fs::File::create(dir.path().join("stdout")).expect("create stdout file");
        let err = std::fs::File::create(dir.path().join("stderr")).expect("create stderr file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            dir,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Directory holding the capture files (usable as a scratch directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until stdout or stderr contains `needle`; returns that output.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            let err = self.stderr();
            if out.contains(needle) {
                return out;
            }
            if err.contains(needle) {
                return err;
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "{} exited ({status}) before printing {needle:?}\n--- stdout\n{out}\n--- stderr\n{err}",
                    self.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} within {timeout:?}\n--- stdout\n{out}\n--- stderr\n{err}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
        {
            self.status = child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for the process to exit, killing it after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.name,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) with a pid we own and a plain signal number.
            unsafe {
                kill(child.id() as i32, signal);
            }
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.status.get_or_insert(status);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Signal numbers used by tests (Linux).
pub mod signals {
    /// Hang-up: reload the configuration.
    pub const SIGHUP: i32 = 1;
    /// Interrupt (Ctrl-C).
    pub const SIGINT: i32 = 2;
    /// Kill, uncatchable.
    pub const SIGKILL: i32 = 9;
    /// Terminate: the clean stop.
    pub const SIGTERM: i32 = 15;
    /// Stop (freeze) the process.
    pub const SIGSTOP: i32 = 19;
    /// Continue a stopped process.
    pub const SIGCONT: i32 = 18;
}

/// An `eventd` router on a free loopback port.
pub struct Router {
    /// The `eventd` process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Router {
    /// Starts `eventd --listen elvin://127.0.0.1:<free port>` plus `extra`
    /// arguments and waits until it accepts connections.
    pub fn start(extra: &[&str]) -> Router {
        // A port can still be taken between `free_port` and eventd's bind
        // (another test process); then eventd exits at once and we try
        // another port.
        for _ in 0..4 {
            if let Some(router) = Router::try_start_on(free_port(), extra) {
                return router;
            }
        }
        Router::start_on(free_port(), extra)
    }

    /// Starts `eventd` on a chosen port (for restart tests).
    pub fn start_on(port: u16, extra: &[&str]) -> Router {
        // The port may be briefly unavailable right after an earlier router
        // on it was killed.
        for _ in 0..20 {
            if let Some(router) = Router::try_start_on(port, extra) {
                return router;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("eventd could not listen on 127.0.0.1:{port}");
    }

    /// Starts `eventd` on `port`; `None` if it exited before it accepted a
    /// connection (typically: the port was taken).
    fn try_start_on(port: u16, extra: &[&str]) -> Option<Router> {
        let listen = format!("elvin://127.0.0.1:{port}");
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let mut proc = Proc::start("eventd", &args);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if proc.try_wait().is_some() {
                return None;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Whoever accepted, our router must still be running: a
                // router that failed to bind has exited by now.
                std::thread::sleep(Duration::from_millis(20));
                if proc.try_wait().is_some() {
                    return None;
                }
                return Some(Router { proc, port });
            }
            assert!(
                Instant::now() < deadline,
                "eventd did not accept connections on {addr} within 20 s\n--- stderr\n{}",
                proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The router's URI, `elvin://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("elvin://127.0.0.1:{}", self.port)
    }

    /// The router's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Serialises `useradd`/`userdel` within one test binary (they lock
/// /etc/passwd and fail rather than wait long).
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A Unix user with its own user group, made for one test with `useradd`
/// and removed (with its group) when dropped. Tests that need one run as
/// root; [`TestUser::skip_reason`] says when they cannot.
pub struct TestUser {
    /// The account name: `tbe<test process id><tag>`.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its user group's gid.
    pub gid: u32,
}

impl TestUser {
    /// Why test users cannot be made here (not root, no `useradd`), if so.
    pub fn skip_reason() -> Option<&'static str> {
        let uid = Command::new("id").arg("-u").output().ok();
        let is_root = uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !is_root {
            return Some("not running as root");
        }
        if Command::new("useradd").arg("--help").output().is_err() {
            return Some("useradd is not installed");
        }
        None
    }

    /// Makes the user `tbe<pid><tag>` (a stale one of that name is removed
    /// first).
    pub fn create(tag: &str) -> TestUser {
        let name = format!("tbe{}{tag}", std::process::id());
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&name).output();
        let _ = Command::new("groupdel").arg(&name).output();
        let out = Command::new("useradd")
            .args([
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .arg(flag)
                .arg(&name)
                .output()
                .expect("run id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("id {flag} {name} printed no number"))
        };
        TestUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// Runs `command` to completion; returns whether it succeeded and its
/// standard output followed by its standard error, as text.
pub fn run_to_text(command: &mut Command) -> (bool, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The MariaDB server tests use, without a database: `TBEVENTS_TEST_MYSQL`,
/// else the machines' server at 127.0.0.1:3306 (root, no password).
pub fn mysql_server() -> String {
    std::env::var("TBEVENTS_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A uniquely named, empty MariaDB database for one test, dropped when the
/// value is dropped (also when the test fails). A server that cannot be
/// reached fails the test with the reason: CI starts it (`.ci/run`), so a
/// silent skip would hide a broken backend.
pub struct ScratchDatabase {
    /// The database's name.
    pub name: String,
    /// `mysql://root@host:port/name`.
    pub url: String,
}

static NEXT_DATABASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A root connection to [`mysql_server`] with no database selected.
pub fn mysql_admin() -> mysql::Conn {
    let url = mysql_server();
    let opts = mysql::Opts::from_url(&url).expect("TBEVENTS_TEST_MYSQL is a mysql:// URL");
    mysql::Conn::new(opts).unwrap_or_else(|err| {
        panic!(
            "cannot reach the MariaDB test server {url}: {err}; start it (`.ci/run` does) or \
             set TBEVENTS_TEST_MYSQL"
        )
    })
}

impl ScratchDatabase {
    /// Creates the database (`utf8mb4_bin`, as tbevents creates its own).
    pub fn create() -> ScratchDatabase {
        use mysql::prelude::Queryable;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "tbe_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        mysql_admin()
            .query_drop(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .expect("create the scratch database");
        ScratchDatabase {
            url: format!("{}/{name}", mysql_server()),
            name,
        }
    }

    /// A root connection to this database, for statements behind the
    /// store's back.
    pub fn connect(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::Opts::from_url(&self.url).expect("url")).expect("connect")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(opts) = mysql::Opts::from_url(&mysql_server())
            && let Ok(mut conn) = mysql::Conn::new(opts)
        {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

/// Replays a fuzz target's tracked seeds (`dir`) through `check`, then
/// `mutations` deterministic mutations of them (bit flips, insertions,
/// deletions, splices, from a fixed seed so a failure reproduces): the
/// fuzz check on the stable toolchain, in every `cargo test` run.
pub fn replay_fuzz_seeds(dir: &str, mutations: usize, check: impl Fn(&[u8])) {
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| std::fs::read(entry.expect("a seed entry").path()).expect("a readable seed"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "the seeds in {dir} are too few");
    for input in &inputs {
        check(input);
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..mutations {
        let mut input = inputs[(next() % inputs.len() as u64) as usize].clone();
        for _ in 0..(1 + next() % 4) {
            let at = if input.is_empty() {
                0
            } else {
                (next() % input.len() as u64) as usize
            };
            match next() % 4 {
                0 if !input.is_empty() => input[at] ^= 1 << (next() % 8),
                1 => input.insert(at, next() as u8),
                2 if !input.is_empty() => {
                    input.remove(at);
                }
                _ => {
                    let other = &inputs[(next() % inputs.len() as u64) as usize];
                    input.extend_from_slice(other);
                }
            }
        }
        check(&input);
    }
}
