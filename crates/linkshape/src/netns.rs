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

/// Runs `ip ARGS`; the error names the command and carries ip's
/// standard error.
pub fn run_ip(args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["ip".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    crate::tc::run_command(&argv).map_err(|e| format!("{}: {e}", argv.join(" ")))
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

/// Address of node A in the probe topologies.
pub const ADDR_A: &str = "10.99.0.1";
/// Address of node B in the probe topologies.
pub const ADDR_B: &str = "10.99.0.2";

/// Gives a node namespace's `iface` an address in 10.99.0.0/24, sets it up
/// and turns its offloads off (so frames are real Ethernet frames).
pub fn setup_node_iface(ns: &str, iface: &str, addr: &str) -> Result<(), String> {
    run_ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", iface])?;
    run_ip(&["-n", ns, "link", "set", iface, "up"])?;
    let name = iface.to_string();
    match in_netns(ns, move || crate::offload::disable_offloads(&name)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!("offloads of {iface} in {ns} left on: {error}");
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Two node namespaces `<prefix>a` and `<prefix>b` joined by a veth pair
/// (`a0` in A with [`ADDR_A`], `b0` in B with [`ADDR_B`]), removed on drop.
pub struct Pair {
    /// Removes the namespaces.
    pub guard: NetnsGuard,
    /// Node A's namespace.
    pub a: String,
    /// Node B's namespace.
    pub b: String,
}

/// Builds a [`Pair`]; `prefix` should carry the process id.
pub fn pair(prefix: &str) -> Result<Pair, String> {
    let mut guard = NetnsGuard::new();
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    guard.add(&a)?;
    guard.add(&b)?;
    run_ip(&[
        "link", "add", "a0", "netns", &a, "type", "veth", "peer", "name", "b0", "netns", &b,
    ])?;
    setup_node_iface(&a, "a0", ADDR_A)?;
    setup_node_iface(&b, "b0", ADDR_B)?;
    Ok(Pair { guard, a, b })
}

/// Node A, a shaper namespace S and node B: `a0` (A) to `sa` (S), `sb`
/// (S) to `b0` (B); a shaper bridging `sa` and `sb` joins A and B.
pub struct Bridged {
    /// Removes the namespaces.
    pub guard: NetnsGuard,
    /// Node A's namespace.
    pub a: String,
    /// The shaper's namespace.
    pub s: String,
    /// Node B's namespace.
    pub b: String,
}

/// Builds a [`Bridged`] topology; `prefix` should carry the process id.
pub fn bridged(prefix: &str) -> Result<Bridged, String> {
    let mut guard = NetnsGuard::new();
    let (a, s, b) = (
        format!("{prefix}a"),
        format!("{prefix}s"),
        format!("{prefix}b"),
    );
    for ns in [&a, &s, &b] {
        guard.add(ns)?;
    }
    run_ip(&[
        "link", "add", "a0", "netns", &a, "type", "veth", "peer", "name", "sa", "netns", &s,
    ])?;
    run_ip(&[
        "link", "add", "b0", "netns", &b, "type", "veth", "peer", "name", "sb", "netns", &s,
    ])?;
    setup_node_iface(&a, "a0", ADDR_A)?;
    setup_node_iface(&b, "b0", ADDR_B)?;
    Ok(Bridged { guard, a, s, b })
}
