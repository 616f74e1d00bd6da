//! Turning off an interface's segmentation and checksum offloads, so the
//! frames a shaper sees are the frames a real wire would carry.
//!
//! With TSO/GSO on, a sender hands 64 KiB "super-frames" to a veth and a
//! bridge sees them whole: a 50-packet queue would hold 3 MB, and 1 Mbit/s
//! would be shaped in half-second lumps. Emulab's delay nodes saw real
//! Ethernet frames. This module does what `ethtool -K IFACE tx off tso off
//! gso off gro off` does, through the `SIOCETHTOOL` ioctl (ethtool is not
//! installed everywhere). Turning off TX checksumming also turns off TSO
//! and scatter-gather on veths. Use it on the nodes' interfaces toward a
//! shaper (the shaper does it for its own).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn set(fd: &OwnedFd, iface: &str, cmd: u32) -> io::Result<()> {
    let mut value = EthtoolValue { cmd, data: 0 };
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: (&mut value as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    let bytes = iface.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    request.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `request` is a valid ifreq whose data points at a live
    // ethtool_value for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns off TX checksum, scatter-gather, TSO, GSO and GRO on `iface` in
/// the current network namespace. Every setting is tried; the first error
/// is returned (a driver without a feature refuses to change it, which
/// means it is off anyway).
pub fn disable_offloads(iface: &str) -> io::Result<()> {
    // SAFETY: plain socket(2) call.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut first_error = None;
    for cmd in [
        ETHTOOL_STXCSUM,
        ETHTOOL_SSG,
        ETHTOOL_STSO,
        ETHTOOL_SGSO,
        ETHTOOL_SGRO,
    ] {
        if let Err(error) = set(&fd, iface, cmd) {
            first_error.get_or_insert(io::Error::new(
                error.kind(),
                format!("ethtool ioctl {cmd:#x} on {iface}: {error}"),
            ));
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
