//! An AF_PACKET raw socket on one interface, set up for bridging.
//!
//! - bound to the interface, all protocols (`ETH_P_ALL`);
//! - `PACKET_IGNORE_OUTGOING`: frames leaving the interface (those the
//!   shaper itself sends, and any other) are not captured, so the bridge
//!   never loops;
//! - promiscuous membership, so frames for any MAC address arrive;
//! - `PACKET_VNET_HDR`: every frame comes with a virtio-net header telling
//!   whether its checksum is still to be computed and whether it is a GSO
//!   super-frame; sending the header back lets the kernel finish both, so
//!   forwarded frames are valid whatever offloads the sender used.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Size of the virtio-net header in front of every frame.
pub const VNET_HDR_LEN: usize = 10;

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// An open, bound AF_PACKET socket.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    iface: String,
}

fn last_error(what: &str, iface: &str) -> io::Error {
    let error = io::Error::last_os_error();
    io::Error::new(error.kind(), format!("{what} on {iface}: {error}"))
}

fn set_option(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &impl Sized,
) -> io::Result<()> {
    // SAFETY: `value` points to a live, correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const _) as *const libc::c_void,
            std::mem::size_of_val(value) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The interface index of `iface` in the current network namespace.
pub fn ifindex(iface: &str) -> io::Result<i32> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: `name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {iface:?} in this network namespace"),
        ))
    } else {
        Ok(index as i32)
    }
}

impl PacketSocket {
    /// Opens and configures the socket on `iface` (current namespace).
    pub fn open(iface: &str) -> io::Result<PacketSocket> {
        let index = ifindex(iface)?;
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        };
        if raw < 0 {
            return Err(last_error(
                "opening an AF_PACKET socket (needs CAP_NET_RAW)",
                iface,
            ));
        }
        // SAFETY: `raw` is a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        set_option(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("PACKET_IGNORE_OUTGOING on {iface}: {e} (kernel 4.20 or newer needed)"),
            )
        })?;
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)
            .map_err(|e| io::Error::new(e.kind(), format!("PACKET_VNET_HDR on {iface}: {e}")))?;
        let buffer: libc::c_int = 8 << 20;
        // Bigger buffers absorb bursts; failure only costs drops under load.
        let _ = set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buffer);
        let _ = set_option(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buffer);
        // SAFETY: zeroed sockaddr_ll is a valid starting value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index;
        // SAFETY: `address` is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error("binding the AF_PACKET socket", iface));
        }
        // SAFETY: zeroed packet_mreq is valid; fields set below.
        let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
        membership.mr_ifindex = index;
        membership.mr_type = libc::PACKET_MR_PROMISC as u16;
        set_option(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &membership,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("promiscuous mode on {iface}: {e}")))?;
        Ok(PacketSocket {
            fd,
            iface: iface.to_string(),
        })
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The raw descriptor, for `poll`.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Receives one frame (with its virtio-net header) without blocking;
    /// `Ok(None)` when nothing is waiting.
    pub fn try_recv(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buffer` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(error),
        }
    }

    /// Sends one frame (with its virtio-net header).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is valid for reads of its length.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// Bytes the frame after `header` takes on the wire. A GSO super-frame
/// (gso_type != 0) is counted as the segments it will be cut into, each
/// with its own copy of the headers, so bandwidth accounting stays right.
pub fn wire_bytes(header: &[u8], frame_len: usize) -> u32 {
    if header.len() < VNET_HDR_LEN {
        return frame_len as u32;
    }
    let gso_type = header[1];
    let hdr_len = usize::from(u16::from_ne_bytes([header[2], header[3]]));
    let gso_size = usize::from(u16::from_ne_bytes([header[4], header[5]]));
    if gso_type == 0 || gso_size == 0 || hdr_len >= frame_len {
        return frame_len as u32;
    }
    let payload = frame_len - hdr_len;
    let segments = payload.div_ceil(gso_size);
    (frame_len + (segments.saturating_sub(1)) * hdr_len) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_frames_count_every_segment_header() {
        let plain = [0u8; VNET_HDR_LEN];
        assert_eq!(wire_bytes(&plain, 1514), 1514);
        let mut gso = [0u8; VNET_HDR_LEN];
        gso[1] = 1; // TCPv4
        gso[2..4].copy_from_slice(&66u16.to_ne_bytes());
        gso[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        // 3 segments of 1448 bytes of payload.
        assert_eq!(wire_bytes(&gso, 66 + 3 * 1448), (3 * (66 + 1448)) as u32);
    }
}
