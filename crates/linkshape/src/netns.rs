//! Network-namespace helpers: running code inside a named namespace, and
//! a guard that removes the namespaces a test or benchmark made.
//!
//! A thread's network namespace decides where the sockets it opens live;
//! once open, a socket stays in its namespace whatever thread uses it.
//! [`in_netns`] therefore runs a closure on a fresh thread that first
//! joins the namespace (`setns`), which leaves the calling thread alone.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs `f` on a new thread inside the namespace `name` (as made by
/// `ip netns add`, i.e. `/run/netns/NAME`) and returns its result.
pub fn in_netns<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = File::open(format!("/run/netns/{name}")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {name:?} not found in /run/netns: {e}"),
        )
    })?;
    let thread = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            // SAFETY: setns on a namespace file descriptor we hold open.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })?;
    thread
        .join()
        .map_err(|_| io::Error::other("the thread inside the namespace panicked"))?
}

/// Starts `f` on a new thread inside the namespace `name` and returns
/// at once; for servers that live as long as a test.
pub fn spawn_in_netns<T, F>(name: &str, f: F) -> io::Result<std::thread::JoinHandle<io::Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let file = File::open(format!("/run/netns/{name}")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {name:?} not found in /run/netns: {e}"),
        )
    })?;
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            // SAFETY: setns on a namespace file descriptor we hold open.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            drop(file);
            f()
        })
}

/// Runs `ip ARGS`; the error carries ip's standard error.
pub fn run_ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e} (is iproute2 installed?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Namespaces made with [`NetnsGuard::add`], deleted when the guard is
/// dropped (also when a test fails). Deleting a namespace removes its
/// veth ends, and with them their peers.
#[derive(Debug, Default)]
pub struct NetnsGuard {
    names: Vec<String>,
}

impl NetnsGuard {
    /// An empty guard.
    pub fn new() -> NetnsGuard {
        NetnsGuard::default()
    }

    /// Creates namespace `name` (deleting a stale one of that name
    /// first) with its loopback up, and remembers it.
    pub fn add(&mut self, name: &str) -> Result<(), String> {
        let _ = run_ip(&["netns", "del", name]);
        run_ip(&["netns", "add", name])?;
        self.names.push(name.to_string());
        run_ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// The namespaces held.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for name in self.names.drain(..).rev() {
            if let Err(error) = run_ip(&["netns", "del", &name]) {
                eprintln!("could not remove network namespace {name}: {error}");
            }
        }
    }
}
