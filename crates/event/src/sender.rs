//! Finding the address to put in `___SENDER___`.
//!
//! Receivers use `___SENDER___` to see which host an event came from, so
//! the most useful value is the address the router actually sees the
//! connection come from. The original looked up its own host name, which
//! on many hosts yields a loopback or wrong-interface address. This module
//! tries, in order:
//!
//! 1. **The route to the router**: the local IPv4 address the kernel picks
//!    for a connection to the router's address. It is read from a UDP
//!    socket *connected* (no packet is sent) to the router's first IPv4
//!    address, which selects the same source address as the TCP connection
//!    the client opens. (The Elvin client does not expose its socket's
//!    local address, so this is how it is obtained.)
//! 2. **The host name's address**: the host name resolved through the
//!    system resolver; the first non-loopback IPv4 address, else the first
//!    IPv4 address (the original's rule).
//! 3. **`/var/emulab/boot/myip`**, where Emulab nodes record their control
//!    address.
//! 4. `0.0.0.0`, with a warning: the event is still sent, and receivers can
//!    see that the sender was unknown.
//!
//! A router reached over IPv6 only gives no IPv4 source address, so step 1
//! is skipped and the later steps decide. Callers that know better pass an
//! address explicitly ([`crate::RegisterOptions::sender`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use crate::constants::NODE_MYIP_PATH;

/// Where a sender address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderSource {
    /// Given by the caller.
    Explicit,
    /// The local address of the route to the router.
    RouteToRouter,
    /// The host name's address.
    Hostname,
    /// `/var/emulab/boot/myip`.
    NodeFile,
    /// Nothing worked; `0.0.0.0`.
    Unknown,
}

/// The address chosen for `___SENDER___` and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderAddress {
    /// The address.
    pub address: Ipv4Addr,
    /// How it was found.
    pub source: SenderSource,
}

/// Chooses the sender address for a router at `host:port` (blocking: it
/// may resolve names).
pub fn discover(host: &str, port: u16) -> SenderAddress {
    if let Some(address) = route_to(host, port) {
        return SenderAddress {
            address,
            source: SenderSource::RouteToRouter,
        };
    }
    if let Some(address) = hostname_address() {
        return SenderAddress {
            address,
            source: SenderSource::Hostname,
        };
    }
    if let Some(address) = node_file_address() {
        return SenderAddress {
            address,
            source: SenderSource::NodeFile,
        };
    }
    tracing::warn!(
        router = %host,
        "cannot determine this host's IPv4 address; events will carry ___SENDER___ 0.0.0.0"
    );
    SenderAddress {
        address: Ipv4Addr::UNSPECIFIED,
        source: SenderSource::Unknown,
    }
}

/// The local IPv4 address used to reach `host:port`, if the router has an
/// IPv4 address and a route to it exists.
pub fn route_to(host: &str, port: u16) -> Option<Ipv4Addr> {
    let targets = (host, port).to_socket_addrs().ok()?;
    for target in targets.filter(SocketAddr::is_ipv4) {
        let Ok(socket) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
            continue;
        };
        if socket.connect(target).is_err() {
            continue;
        }
        if let Ok(SocketAddr::V4(local)) = socket.local_addr()
            && !local.ip().is_unspecified()
        {
            return Some(*local.ip());
        }
    }
    None
}

/// This host name's IPv4 address: the first non-loopback one, else the
/// first one.
pub fn hostname_address() -> Option<Ipv4Addr> {
    let name = nix::unistd::gethostname().ok()?;
    let name = name.to_str()?;
    let addresses: Vec<Ipv4Addr> = (name, 0)
        .to_socket_addrs()
        .ok()?
        .filter_map(|address| match address.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    addresses
        .iter()
        .find(|a| !a.is_loopback())
        .or_else(|| addresses.first())
        .copied()
}

/// The address in `/var/emulab/boot/myip`, if the file exists and holds
/// one.
pub fn node_file_address() -> Option<Ipv4Addr> {
    use std::io::Read as _;
    let file = std::fs::File::open(NODE_MYIP_PATH).ok()?;
    let mut text = String::new();
    // An address is at most 15 characters; read a little more, not the
    // whole file, whatever it holds.
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_to_loopback_is_loopback() {
        assert_eq!(route_to("127.0.0.1", 2917), Some(Ipv4Addr::LOCALHOST));
        let chosen = discover("127.0.0.1", 2917);
        assert_eq!(chosen.address, Ipv4Addr::LOCALHOST);
        assert_eq!(chosen.source, SenderSource::RouteToRouter);
    }

    #[test]
    fn ipv6_or_unresolvable_routers_fall_back() {
        assert_eq!(route_to("::1", 2917), None);
        assert_eq!(route_to("no-such-host.invalid", 2917), None);
        let chosen = discover("no-such-host.invalid", 2917);
        assert_ne!(chosen.source, SenderSource::RouteToRouter);
        assert_ne!(chosen.source, SenderSource::Explicit);
    }
}
