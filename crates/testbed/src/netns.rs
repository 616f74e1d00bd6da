//! Network namespaces: running `ip`, doing work inside a namespace, and
//! starting processes there.
//!
//! Namespaces and links are made with the `ip` command (iproute2) rather
//! than raw netlink: it is on every Linux machine the testbed targets, its
//! error messages are what an operator already knows, and every command we
//! run can be shown and re-run by hand. Work that must happen *inside* a
//! namespace from this process (binding a socket, writing a sysctl,
//! turning off checksum offload) runs on a short-lived thread that has
//! joined the namespace with `setns`, which changes only that thread's
//! namespace; the rest of the process stays where it was. A socket keeps
//! the namespace it was created in, so sockets made that way can be used
//! from any thread afterwards.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use nix::sched::CloneFlags;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `ip ARGS`, failing with the command line and its error output.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2): install it (Debian: apt-get install iproute2)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip ARGS` and returns its standard output.
pub fn ip_output(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2): install it (Debian: apt-get install iproute2)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The named namespaces that exist now.
pub fn list() -> anyhow::Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).context("cannot list /run/netns"),
    };
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Opens a namespace's handle, with a message that says what is missing.
fn open(name: &str) -> anyhow::Result<File> {
    File::open(path(name)).with_context(|| {
        format!(
            "network namespace {name} does not exist (is the testbed up? `tbevents testbed status`)"
        )
    })
}

/// Runs `work` on a thread inside namespace `name` and returns its result.
pub fn run_in<T, F>(name: &str, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let handle = open(name)?;
    let label = name.to_owned();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            nix::sched::setns(handle.as_fd(), CloneFlags::CLONE_NEWNET).with_context(|| {
                format!("cannot enter network namespace {label} (the testbed needs root)")
            })?;
            work()
        })
        .context("cannot start a thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("a thread working in namespace {name} panicked"))?
}

/// Writes a `/proc/sys` value inside a namespace (e.g.
/// `net/ipv4/ip_forward`).
pub fn sysctl(name: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let file = format!("/proc/sys/{key}");
    let value = value.to_owned();
    let ns = name.to_owned();
    run_in(name, move || {
        std::fs::write(&file, &value)
            .with_context(|| format!("cannot set {file} to {value} in namespace {ns}"))
    })
}

/// Turns off transmit checksum offload on `interface` in namespace `name`
/// (what `ethtool -K IFACE tx off` does), so frames leave with complete
/// checksums. A veth normally hands its peer half-done checksums, which a
/// user-space bridge would forward as they are and the receiver would drop.
pub fn full_checksums(name: &str, interface: &str) -> anyhow::Result<()> {
    let interface = interface.to_owned();
    run_in(name, move || ethtool_set_tx_csum(&interface, false))
}

/// Whether transmit checksum offload is on for `interface` in namespace
/// `name` (`ethtool -k IFACE`'s `tx-checksumming`).
pub fn tx_checksum_offload(name: &str, interface: &str) -> anyhow::Result<bool> {
    let interface = interface.to_owned();
    run_in(name, move || {
        ethtool_value(&interface, ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
    })
}

/// `ETHTOOL_STXCSUM` on the current thread's namespace.
fn ethtool_set_tx_csum(interface: &str, on: bool) -> anyhow::Result<()> {
    ethtool_value(interface, ETHTOOL_STXCSUM, u32::from(on))
        .map(|_| ())
        .with_context(|| format!("cannot turn off checksum offload on {interface}"))
}

/// Get transmit checksumming (`ETHTOOL_GTXCSUM`).
const ETHTOOL_GTXCSUM: u32 = 0x16;
/// Set transmit checksumming (`ETHTOOL_STXCSUM`).
const ETHTOOL_STXCSUM: u32 = 0x17;

/// One `SIOCETHTOOL` request with a `struct ethtool_value`, in the current
/// thread's namespace; returns the value's data field afterwards.
fn ethtool_value(interface: &str, cmd: u32, data: u32) -> anyhow::Result<u32> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let bytes = interface.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        bail!("`{interface}` is not an interface name");
    }
    let mut value = EthtoolValue { cmd, data };
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    for (slot, byte) in request.name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a plain datagram socket, closed below; the ioctl reads and
    // writes the request and the value it points to, both alive for the
    // call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot open a socket for ethtool");
        }
        let r = libc::ioctl(fd, libc::SIOCETHTOOL, &mut request as *mut IfReq);
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(error)
                .with_context(|| format!("ethtool request {cmd:#x} on {interface} failed"));
        }
    }
    Ok(value.data)
}

/// Makes a [`Command`] run inside namespace `name`, in a new session (so
/// it outlives the caller and is not hit by the caller's terminal signals).
pub fn command_in(name: &str, program: &Path) -> anyhow::Result<Command> {
    let handle = open(name)?;
    let mut command = Command::new(program);
    // SAFETY: setns and setsid are async-signal-safe system calls; the
    // namespace handle was opened before the fork and stays open in the
    // child until exec (it is close-on-exec).
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(handle.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    Ok(command)
}

/// The processes inside namespace `name` (`ip netns pids`).
pub fn pids(name: &str) -> Vec<i32> {
    ip_output(&["netns", "pids", name])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
